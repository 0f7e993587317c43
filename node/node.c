/* vigild's runtime: raft + state machine + client listener on one libuv loop.
 *
 * Start-up: create the data folder, open state.db, set up libraft's uv I/O
 * under the fail-stop decorator, bootstrap on a fresh folder when told to,
 * bind the client port (a port in use is a clear start-up error), start raft.
 *
 * Every loop iteration (a uv_prepare handle, plus a short timer so that an
 * idle loop still iterates) the node polls leadership: readiness changes take
 * effect before any client request of that iteration is handled, and a fatal
 * state (raft disk error, SQLite error in apply) exits with status 70. The
 * same prepare callback times every iteration (status "loop"): a leader
 * whose loop stalls for an election timeout loses its followers.
 *
 * Shutdown on SIGTERM/SIGINT: stop listening, close clients, raft_close()
 * from the signal callback (never from inside a raft callback: libraft 0.15
 * aborts), then release the uv I/O and close the remaining handles; the loop
 * ends when nothing is left open (a project validation still running in the
 * thread pool keeps it alive until it finishes; its answer is dropped).
 *
 * This file holds the cluster requests; the project requests and the events
 * pushed to subscribers are in project.c, the ready leader's PLC pollers in
 * polling.c, the leader's questions to the other members about their
 * replicas in peers.c (internal.h shares the objects). Losing readiness stops the
 * pollers from inside the readiness callback, before anything else of that
 * iteration; starting them waits for the next iteration's check. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <raft.h>
#include <raft/uv.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "internal.h"

void node_log(struct node *n, const char *fmt, ...)
{
    va_list ap;
    struct timespec ts;
    struct tm tm;
    char when[32];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof when, "%H:%M:%S", &tm);
    fprintf(stderr, "%s.%03ld vigild[%llu] ", when, ts.tv_nsec / 1000000,
            (unsigned long long)n->cfg->id);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void failstop(struct node *n, const char *why)
{
    node_log(n, "FATAL: %s; stopping this node (fail-stop)", why);
    fflush(stderr);
    _exit(EXIT_FAILSTOP);
}

static const char *state_name(int state)
{
    switch (state) {
    case RAFT_FOLLOWER:
        return "follower";
    case RAFT_CANDIDATE:
        return "candidate";
    case RAFT_LEADER:
        return "leader";
    default:
        return "unavailable";
    }
}

/* --------------------------------------------------------------- writing */

struct write_req {
    uv_write_t req;
    struct conn *c;
    size_t len;
    char *data;
};

static void write_cb(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    w->c->queued -= w->len;
    if (w->c->tag_sub != NULL && status == 0) {
        node_tags_drained(w->c); /* room again for held-back live values */
    }
    if (w->c->alarm_sub != NULL && status == 0) {
        node_alarms_drained(w->c); /* room again for the alarm image */
    }
    free(w->data);
    node_conn_unref(w->c);
    free(w);
    (void)status;
}

static void write_out(struct conn *c, char *data, size_t len);
static void hold(struct conn *c, char *data, size_t len);

void node_send(struct conn *c, json_t *msg)
{
    char *data;
    size_t len;

    if (c->closing) {
        json_decref(msg);
        return;
    }
    if (vg_proto_encode(msg, &data, &len) != VG_OK) {
        /* Answers are built to fit in a frame; should one not, the client
         * still gets an answer rather than waiting for its deadline. */
        long long id = vg_proto_get_int(msg, "id", -1);
        json_decref(msg);
        msg = vg_proto_error(id, "failed", "the answer does not fit in a frame");
        if (msg == NULL || vg_proto_encode(msg, &data, &len) != VG_OK) {
            json_decref(msg);
            return;
        }
    }
    json_decref(msg);
    if (c->queued + len > WRITE_QUEUE_LIMIT) {
        /* A client that does not read must not make us buffer forever. */
        free(data);
        node_conn_close(c);
        return;
    }
    if (c->n->corked > 0) {
        hold(c, data, len);
        return;
    }
    write_out(c, data, len);
}

/* Write LEN bytes of DATA (taken over) to C, counted in QUEUED until
 * written; a failure closes C. */
static void write_out(struct conn *c, char *data, size_t len)
{
    struct write_req *w = malloc(sizeof *w);
    uv_buf_t buf;

    if (w == NULL) {
        free(data);
        node_conn_close(c);
        return;
    }
    w->c = c;
    w->len = len;
    w->data = data;
    buf = uv_buf_init(data, (unsigned)len);
    c->refs++;
    c->queued += len;
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, write_cb) != 0) {
        c->queued -= len;
        c->refs--;
        free(data);
        free(w);
        node_conn_close(c);
    }
}

/* Append a frame (DATA, taken over) to what C holds while corked. */
static void hold(struct conn *c, char *data, size_t len)
{
    if (c->held_len + len > c->held_cap) {
        size_t cap = c->held_cap > 0 ? c->held_cap : 4096;
        char *p;
        while (cap < c->held_len + len) {
            cap *= 2;
        }
        p = realloc(c->held, cap);
        if (p == NULL) {
            free(data);
            node_conn_close(c);
            return;
        }
        c->held = p;
        c->held_cap = cap;
    }
    memcpy(c->held + c->held_len, data, len);
    free(data);
    if (c->held_len == 0) {
        c->held_next = c->n->holding;
        c->n->holding = c;
        c->refs++; /* until node_uncork has written it */
    }
    c->held_len += len;
    c->queued += len;
}

/* Write what C holds (one uv_write), leaving it holding nothing. */
static void release(struct conn *c)
{
    char *data = c->held;
    size_t len = c->held_len;

    c->held = NULL;
    c->held_len = c->held_cap = 0;
    c->queued -= len;
    if (len > 0 && !c->closing) {
        write_out(c, data, len);
    } else {
        free(data);
    }
}

void node_cork(struct node *n)
{
    n->corked++;
}

void node_uncork(struct node *n)
{
    if (n->corked == 0 || --n->corked > 0) {
        return;
    }
    while (n->holding != NULL) {
        struct conn *c = n->holding;
        n->holding = c->held_next;
        c->held_next = NULL;
        release(c); /* nothing if it closed meanwhile (it wrote then) */
        node_conn_unref(c);
    }
}

void node_send_error(struct conn *c, long long id, const char *code,
                     const char *fmt, ...)
{
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    node_send(c, vg_proto_error(id, code, message));
}

json_t *node_answer(const char *type, long long id)
{
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string(type));
    if (id >= 0) {
        json_object_set_new(o, "id", json_integer(id));
    }
    return o;
}

void node_send_replica_answer(struct node *n, struct conn *c, const char *type,
                              long long id, json_t *body)
{
    json_t *a = node_answer(type, id);
    json_object_set_new(a, "node", json_integer((json_int_t)n->cfg->id));
    json_object_set_new(a, "applied_index",
                        json_integer((json_int_t)n->fsm.applied_index));
    if (body != NULL) {
        json_object_update(a, body);
        json_decref(body);
    }
    node_send(c, a);
}

/* Redirect: name the leader when raft knows one and we know its client
 * address; otherwise the client tries the next node. */
void node_send_not_leader(struct node *n, struct conn *c, long long id)
{
    raft_id leader_id = 0;
    const char *leader_raft = NULL;
    char client[VG_NODE_ADDR_SIZE];
    json_t *e;

    raft_leader(&n->raft, &leader_id, &leader_raft);
    if (leader_id == n->cfg->id) {
        e = vg_proto_error(id, "not_leader",
                           "this node was just elected and is not ready yet");
    } else if (leader_id == 0) {
        e = vg_proto_error(id, "not_leader", "no leader known (election running)");
    } else {
        char message[128];
        snprintf(message, sizeof message, "node %llu is not the leader; node %llu is",
                 (unsigned long long)n->cfg->id, (unsigned long long)leader_id);
        e = vg_proto_error(id, "not_leader", message);
        if (vg_repl_fsm_node_client_address(&n->fsm, leader_id, client,
                                            sizeof client) == VG_OK) {
            json_object_set_new(e, "leader",
                                json_pack("{sIss}", "id", (json_int_t)leader_id,
                                          "client_address", client));
        }
    }
    node_send(c, e);
}

/* ------------------------------------------------ request members */

/* Every member of MSG must be one of ALLOWED (or v, type, id): a misspelt
 * member must not be silently ignored. */
bool node_members_ok(struct conn *c, long long id, json_t *msg,
                       const char *type, const char *const *allowed)
{
    const char *key;
    json_t *value;

    json_object_foreach(msg, key, value)
    {
        bool known = strcmp(key, "v") == 0 || strcmp(key, "type") == 0 ||
                     strcmp(key, "id") == 0;
        for (size_t i = 0; !known && allowed[i] != NULL; i++) {
            known = strcmp(key, allowed[i]) == 0;
        }
        if (!known) {
            node_send_error(c, id, "invalid", "%s: unknown member '%.64s'", type,
                            key);
            return false;
        }
    }
    return true;
}

/* Member KEY as an integer in MIN..MAX into *OUT; when absent, *OUT = DEF
 * unless REQUIRED. Answers invalid and returns false otherwise. */
bool node_get_uint(struct conn *c, long long id, json_t *msg, const char *type,
                     const char *key, bool required, uint64_t min, uint64_t max,
                     uint64_t def, uint64_t *out)
{
    json_t *v = json_object_get(msg, key);
    if (v == NULL && !required) {
        *out = def;
        return true;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        (uint64_t)json_integer_value(v) < min ||
        (uint64_t)json_integer_value(v) > max) {
        node_send_error(c, id, "invalid", "%s: member '%s' must be an integer "
                                          "in %llu..%llu%s",
                        type, key, (unsigned long long)min,
                        (unsigned long long)max, required ? " (required)" : "");
        return false;
    }
    *out = (uint64_t)json_integer_value(v);
    return true;
}

/* Member KEY as a string of at most MAX bytes (NULL when absent or null and
 * not REQUIRED). */
bool node_get_str(struct conn *c, long long id, json_t *msg, const char *type,
                    const char *key, bool required, size_t max, const char **out)
{
    json_t *v = json_object_get(msg, key);
    *out = NULL;
    if ((v == NULL || json_is_null(v)) && !required) {
        return true;
    }
    if (!json_is_string(v) || json_string_length(v) > max) {
        node_send_error(c, id, "invalid",
                        "%s: member '%s' must be a string of at most %zu bytes%s",
                        type, key, max, required ? " (required)" : "");
        return false;
    }
    *out = json_string_value(v);
    return true;
}

/* ------------------------------------------------------------ loop timing */

/* Histogram bin of an iteration of US microseconds: one bin per
 * millisecond below 32 ms, then one per doubling (32..64 ms, …), the last
 * open-ended. Fine where the figures matter (a few ms against a heartbeat
 * of 50 and an election timeout of 300), coarse where they are bad anyway. */
static unsigned loop_bin(uint64_t us)
{
    uint64_t ms = us / 1000u;
    unsigned b = 32;

    if (ms < 32) {
        return (unsigned)ms;
    }
    for (ms /= 64; ms > 0 && b < LOOP_BINS - 1; ms /= 2) {
        b++;
    }
    return b;
}

/* The upper bound of bin B in ms (the last bin has none: UINT64_MAX). */
static uint64_t loop_bin_top_ms(unsigned b)
{
    return b < 32 ? b + 1u : b < LOOP_BINS - 1 ? UINT64_C(64) << (b - 32) : UINT64_MAX;
}

/* How long the loop thread has waited on a run queue (ns, the second
 * field of schedstat), or 0 when the kernel does not say. Read at every
 * prepare (a pread of a file kept open, microseconds) so that a long
 * iteration can tell time the machine did not give the loop from work. */
static uint64_t loop_wait_ns(struct loop_stats *ls)
{
    char buf[96];
    unsigned long long run, wait;
    ssize_t k;

    if (ls->schedstat_fd < 0) {
        return 0;
    }
    k = pread(ls->schedstat_fd, buf, sizeof buf - 1, 0);
    if (k <= 0) {
        return 0;
    }
    buf[k] = '\0';
    return sscanf(buf, "%llu %llu", &run, &wait) == 2 ? (uint64_t)wait : 0;
}

/* Called at the start of every loop iteration (prepare): account the
 * iteration that just ended. */
static void loop_account(struct node *n)
{
    struct loop_stats *ls = &n->loop_stats;
    uint64_t now = uv_hrtime();
    uint64_t idle = uv_metrics_idle_time(&n->loop);
    uint64_t applied = n->fsm.apply_ns, cpu = 0, waited = loop_wait_ns(ls);
    uint64_t busy_us, second, cpu_us, apply_us;
    struct loop_second *w;
    struct rusage ru;

    /* One call for the CPU time and for what tells blocking: voluntary
     * context switches (the thread slept in a syscall or a page fault),
     * major page faults and block reads (it waited for the disk). */
    memset(&ru, 0, sizeof ru);
    if (getrusage(RUSAGE_THREAD, &ru) == 0) {
        cpu = ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) *
                  1000000000u +
              ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000u;
    }
    if (ls->last_ns != 0) {
        uint64_t wall = now - ls->last_ns;
        uint64_t slept = idle - ls->last_idle_ns;
        busy_us = (wall > slept ? wall - slept : 0) / 1000u;
        cpu_us = (cpu > ls->last_cpu_ns ? cpu - ls->last_cpu_ns : 0) / 1000u;
        apply_us = (applied - ls->last_apply_ns) / 1000u;
        second = now / 1000000000u;
        w = &ls->win[second % LOOP_WINDOW_S];
        if (w->second != second) {
            memset(w, 0, sizeof *w);
            w->second = second;
        }
        w->count++;
        w->bins[loop_bin(busy_us)]++;
        if (busy_us > w->max_us) {
            w->max_us = busy_us;
        }
        if (cpu_us > w->max_cpu_us) {
            w->max_cpu_us = cpu_us;
        }
        if (apply_us > w->max_apply_us) {
            w->max_apply_us = apply_us;
            w->max_apply_cmds = n->fsm.n_applied - ls->last_applied;
        }
        if (busy_us > ls->max_us) {
            ls->max_us = busy_us;
        }
        /* Half the election timeout is where a follower's heartbeats (or a
         * leader's) start to be late enough to matter. The line tells the
         * loop's own work (CPU, apply) from time it was not running at all
         * (preempted on a busy machine, a page fault, blocking I/O). */
        if (busy_us * 2 > (uint64_t)n->cfg->election_timeout_ms * 1000u) {
            ls->stalls++;
            if (now - ls->stall_logged_ns >= 1000000000u) {
                uint64_t wait_us = waited > ls->last_wait_ns
                                       ? (waited - ls->last_wait_ns) / 1000u
                                       : 0;
                uint64_t rest_us = busy_us > cpu_us + wait_us
                                       ? busy_us - cpu_us - wait_us
                                       : 0;
                ls->stall_logged_ns = now;
                node_log(n,
                         "loop: an iteration took %llu ms (%llu ms on the loop"
                         " thread's CPU, %llu ms waiting for a CPU, %llu ms"
                         " neither: %ld sleep(s), %ld major page fault(s), %ld"
                         " block read(s); %llu ms applying %llu command(s));"
                         " the election timeout is %u ms (%llu such iterations)",
                         (unsigned long long)(busy_us / 1000u),
                         (unsigned long long)(cpu_us / 1000u),
                         (unsigned long long)(wait_us / 1000u),
                         (unsigned long long)(rest_us / 1000u),
                         ru.ru_nvcsw - ls->last_nvcsw, ru.ru_majflt - ls->last_majflt,
                         ru.ru_inblock - ls->last_inblock,
                         (unsigned long long)(apply_us / 1000u),
                         (unsigned long long)(n->fsm.n_applied - ls->last_applied),
                         n->cfg->election_timeout_ms, (unsigned long long)ls->stalls);
            }
        }
        ls->iterations++;
    }
    ls->last_ns = now;
    ls->last_wait_ns = waited;
    ls->last_idle_ns = idle;
    ls->last_cpu_ns = cpu;
    ls->last_nvcsw = ru.ru_nvcsw;
    ls->last_majflt = ru.ru_majflt;
    ls->last_inblock = ru.ru_inblock;
    ls->last_apply_ns = applied;
    ls->last_applied = n->fsm.n_applied;
}

static json_t *ms_json(uint64_t us)
{
    return json_real((double)((us + 50u) / 100u) / 10.0);
}

/* {"window_s","iterations","max_ms","p99_ms","max_cpu_ms","max_apply_ms",
 * "max_apply_commands","iterations_all","max_ms_all","stalls_all"}: the last
 * LOOP_WINDOW_S seconds and everything since start (stalls_all: iterations
 * longer than half the election timeout, each logged, one a second). p99_ms is the top of
 * the histogram bin holding the 99th percentile, at most max_ms; max_cpu_ms
 * and max_apply_ms the longest CPU and apply time of one iteration in the
 * window, max_apply_commands how many commands that apply was. */
static json_t *loop_json(struct node *n)
{
    const struct loop_stats *ls = &n->loop_stats;
    uint64_t second = uv_hrtime() / 1000000000u, max_us = 0, count = 0, seen = 0;
    uint64_t max_cpu_us = 0, max_apply_us = 0, max_apply_cmds = 0;
    uint64_t p99_us = 0;
    uint32_t bins[LOOP_BINS] = {0};

    for (unsigned i = 0; i < LOOP_WINDOW_S; i++) {
        const struct loop_second *w = &ls->win[i];
        if (w->count == 0 || w->second + LOOP_WINDOW_S <= second) {
            continue;
        }
        count += w->count;
        max_us = w->max_us > max_us ? w->max_us : max_us;
        max_cpu_us = w->max_cpu_us > max_cpu_us ? w->max_cpu_us : max_cpu_us;
        if (w->max_apply_us > max_apply_us) {
            max_apply_us = w->max_apply_us;
            max_apply_cmds = w->max_apply_cmds;
        }
        for (unsigned b = 0; b < LOOP_BINS; b++) {
            bins[b] += w->bins[b];
        }
    }
    for (unsigned b = 0; b < LOOP_BINS && count > 0; b++) {
        seen += bins[b];
        if (seen * 100u >= count * 99u) {
            uint64_t top = loop_bin_top_ms(b);
            p99_us = top == UINT64_MAX || top * 1000u > max_us ? max_us : top * 1000u;
            break;
        }
    }
    return json_pack("{s:I, s:I, s:o, s:o, s:o, s:o, s:I, s:I, s:o, s:I}", "window_s",
                     (json_int_t)LOOP_WINDOW_S, "iterations", (json_int_t)count,
                     "max_ms", ms_json(max_us), "p99_ms", ms_json(p99_us),
                     "max_cpu_ms", ms_json(max_cpu_us), "max_apply_ms",
                     ms_json(max_apply_us), "max_apply_commands",
                     (json_int_t)max_apply_cmds,
                     "iterations_all", (json_int_t)ls->iterations, "max_ms_all",
                     ms_json(ls->max_us), "stalls_all", (json_int_t)ls->stalls);
}

/* ------------------------------------------------------------- requests */

/* ARCHIVE (reference taken over; NULL for a brief status) is the archive's
 * part, which costs a query of the archive off the loop (see "status" in
 * MESSAGES.md): the leader asks every member for a brief one that often. */
static json_t *status_json(struct node *n, json_t *archive)
{
    struct raft *r = &n->raft;
    raft_id leader_id = 0;
    const char *leader_raft = NULL;
    char addr[VG_NODE_ADDR_SIZE];
    char hex[VG_DIGEST_HEX];
    char chain[VG_DIGEST_HEX];
    json_t *o = json_object();
    json_t *members = json_array();

    raft_leader(r, &leader_id, &leader_raft);
    json_object_set_new(o, "node_id", json_integer((json_int_t)n->cfg->id));
    json_object_set_new(o, "raft_address", json_string(n->cfg->raft_address));
    json_object_set_new(o, "client_address", json_string(n->cfg->client_address));
    json_object_set_new(o, "state", json_string(state_name(raft_state(r))));
    json_object_set_new(o, "ready", json_boolean(n->lead.ready));
    json_object_set_new(o, "term", json_integer((json_int_t)r->current_term));
    json_object_set_new(o, "commit_index", json_integer((json_int_t)r->commit_index));
    json_object_set_new(o, "applied_index",
                        json_integer((json_int_t)n->fsm.applied_index));
    json_object_set_new(o, "last_index", json_integer((json_int_t)raft_last_index(r)));
    json_object_set_new(o, "leader_id", json_integer((json_int_t)leader_id));
    if (leader_id != 0 && vg_repl_fsm_node_client_address(
                              &n->fsm, leader_id, addr, sizeof addr) == VG_OK) {
        json_object_set_new(o, "leader_client_address", json_string(addr));
    } else {
        json_object_set_new(o, "leader_client_address", json_null());
    }
    for (unsigned i = 0; i < r->configuration.n; i++) {
        const struct raft_server *s = &r->configuration.servers[i];
        json_t *m = json_pack("{sIsssssb}", "id", (json_int_t)s->id,
                              "raft_address", s->address, "role",
                              node_role_name(s->role), "self", s->id == n->cfg->id);
        if (vg_repl_fsm_node_client_address(&n->fsm, s->id, addr,
                                            sizeof addr) == VG_OK) {
            json_object_set_new(m, "client_address", json_string(addr));
        } else {
            json_object_set_new(m, "client_address", json_null());
        }
        /* The ready leader knows every member's verdict (peers.c); its own
         * is the one below. */
        if (n->lead.ready && s->id == n->cfg->id) {
            json_object_set_new(
                m, "consistency",
                json_pack("{sssIsIsssIsbsn}", "verdict",
                          vg_verdict_name(n->fsm.verdict), "checked_index",
                          (json_int_t)n->fsm.checked_index, "applied_index",
                          (json_int_t)n->fsm.applied_index, "message",
                          n->fsm.verdict_msg, "answered_ms",
                          (json_int_t)vg_now_wall_ms(), "reachable", true,
                          "error"));
        } else if (n->lead.ready) {
            json_t *pc = node_peers_member_json(n, s->id);
            if (pc != NULL) {
                json_object_set_new(m, "consistency", pc);
            }
        }
        json_array_append_new(members, m);
    }
    json_object_set_new(o, "members", members);
    json_object_set_new(o, "project", node_project_status(n));
    json_object_set_new(o, "plc", node_plc_status(n));
    if (archive != NULL) {
        json_object_set_new(o, "archive", archive);
    }
    json_object_set_new(o, "alarms", node_alarms_status(n));
    json_object_set_new(o, "loop", loop_json(n));
    json_object_set_new(o, "apply_level",
                        json_integer((json_int_t)vg_repl_fsm_max_level(&n->fsm)));
    json_object_set_new(o, "cluster_level", node_cluster_level_status(n));
    json_object_set_new(o, "settle", node_settle_status(n));
    json_object_set_new(o, "raft_log", node_log_budget_status(n));
    json_object_set_new(o, "appends_cut",
                        json_pack("{sIsIsI}", "cut", (json_int_t)n->failstop.appends_cut,
                                  "from_index_1",
                                  (json_int_t)n->failstop.appends_cut_from_start,
                                  "answers_lowered",
                                  (json_int_t)n->failstop.results_clamped));
    json_object_set_new(
        o, "snapshots_held",
        json_pack("{sIsIsIsI}", "held", (json_int_t)n->failstop.snapshots_held,
                  "replaced", (json_int_t)n->failstop.snapshots_replaced,
                  "delivered", (json_int_t)n->failstop.snapshots_delivered,
                  "longest_ms", (json_int_t)n->failstop.snapshot_hold_max_ms));
    json_object_set_new(o, "scrub", node_scrub_status(n));
    json_object_set_new(
        o, "snapshots",
        json_pack("{sIsIsIsIsfsfsf}", "taken", (json_int_t)n->fsm.snapshots.taken,
                  "failed", (json_int_t)n->fsm.snapshots.failed, "last_index",
                  (json_int_t)n->fsm.snapshots.last_index, "last_bytes",
                  (json_int_t)n->fsm.snapshots.last_bytes, "last_loop_ms",
                  n->fsm.snapshots.last_loop_ms, "max_loop_ms",
                  n->fsm.snapshots.max_loop_ms, "last_pool_ms",
                  n->fsm.snapshots.last_pool_ms));
    {
        /* The WAL's health: a checkpointer thread that falls behind shows
         * as checkpoints on the loop (writer_max_ms, hard). */
        struct vg_repl_wal_stats ws;
        vg_repl_fsm_wal_stats(&n->fsm, &ws);
        json_object_set_new(
            o, "wal",
            json_pack("{sIsIsIsIsIsIsIsf}", "frames", (json_int_t)ws.wal_frames,
                      "checkpoints", (json_int_t)ws.done, "failed",
                      (json_int_t)ws.failed, "copied", (json_int_t)ws.copied,
                      "tails", (json_int_t)ws.tails, "restarts",
                      (json_int_t)ws.restarts, "hard", (json_int_t)ws.hard,
                      "writer_max_ms", ws.writer_max_ms));
    }
    vg_hex(n->fsm.checkpoint_digest, VG_DIGEST_SIZE, hex);
    vg_hex(n->fsm.chain, VG_DIGEST_SIZE, chain);
    json_object_set_new(
        o, "consistency",
        json_pack("{sssIsIssssss}", "verdict", vg_verdict_name(n->fsm.verdict),
                  "checkpoint_index", (json_int_t)n->fsm.checkpoint_index,
                  "checked_index", (json_int_t)n->fsm.checked_index,
                  "state_digest", hex, "chain_hash", chain, "message",
                  n->fsm.verdict_msg));
    return o;
}

void node_send_status(struct node *n, struct conn *c, long long id, json_t *archive)
{
    json_t *a = status_json(n, archive);
    json_object_set_new(a, "type", json_string("status"));
    if (id >= 0) {
        json_object_set_new(a, "id", json_integer(id));
    }
    node_send(c, a);
}

struct op *node_op_new(struct node *n, struct conn *c, long long id,
                       const char *kind)
{
    struct op *o = calloc(1, sizeof *o);
    if (o == NULL) {
        return NULL;
    }
    o->n = n;
    o->c = c;
    o->id = id;
    snprintf(o->kind, sizeof o->kind, "%s", kind);
    c->refs++;
    return o;
}

void node_op_free(struct op *o)
{
    node_conn_unref(o->c);
    free(o);
}

void node_put_cb(struct vg_repl_proposal *p, int status, uint64_t index,
                 int result)
{
    struct op *o = (struct op *)p;
    if (o->id < 0) {
        /* An internal follow-up (e.g. forgetting a removed node's
         * addresses): nobody waits for an answer. */
    } else if (status != 0) {
        node_send_error(o->c, o->id, "not_leader",
                        "leadership lost before the command was committed (%s); "
                        "its outcome is unknown",
                        raft_strerror(status));
    } else if (result != VG_OK) {
        node_send_error(o->c, o->id, "invalid", "the cluster rejected the command: %s",
                        vg_strerror(result));
    } else {
        json_t *a = node_answer("ok", o->id);
        json_object_set_new(a, "index", json_integer((json_int_t)index));
        node_send(o->c, a);
    }
    node_op_free(o);
}

static void propose_for(struct node *n, struct conn *c, long long id,
                        unsigned type, json_t *body)
{
    struct op *o = node_op_new(n, c, id, "propose");
    char *text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    int rv;
    json_decref(body);
    if (o == NULL || text == NULL) {
        free(text);
        if (o != NULL) {
            node_op_free(o);
        }
        node_send_error(c, id, "failed", "out of memory");
        return;
    }
    rv = vg_repl_propose(&n->lead, &o->p, type, text, node_put_cb);
    free(text);
    if (rv == VG_ENOTLEADER) {
        node_send_not_leader(n, c, id);
        node_op_free(o);
    } else if (rv != VG_OK) {
        node_send_error(c, id, "failed", "cannot submit: %s", vg_strerror(rv));
        node_op_free(o);
    }
}

bool node_need_ready(struct node *n, struct conn *c, long long id)
{
    if (!n->lead.ready) {
        node_send_not_leader(n, c, id);
        return false;
    }
    return true;
}

static void handle(struct node *n, struct conn *c, json_t *msg)
{
    const char *type = vg_proto_get_str(msg, "type", "");
    long long id = vg_proto_get_int(msg, "id", -1);

    if (strcmp(type, "ping") == 0) {
        raft_id leader_id = 0;
        const char *leader_raft = NULL;
        json_t *a = node_answer("pong", id);
        raft_leader(&n->raft, &leader_id, &leader_raft);
        json_object_set_new(a, "node_id", json_integer((json_int_t)n->cfg->id));
        json_object_set_new(a, "leader_id", json_integer((json_int_t)leader_id));
        json_object_set_new(a, "term", json_integer((json_int_t)n->raft.current_term));
        json_object_set_new(a, "ready", json_boolean(n->lead.ready));
        node_send(c, a);
    } else if (strcmp(type, "status") == 0) {
        if (json_is_true(json_object_get(msg, "brief"))) {
            node_send_status(n, c, id, NULL);
        } else {
            node_archive_status_send(n, c, id, true);
        }
    } else if (strcmp(type, "get") == 0) {
        const char *key = vg_proto_get_str(msg, "key", NULL);
        char *value = NULL;
        json_t *a;
        if (key == NULL) {
            node_send_error(c, id, "invalid", "member 'key' (string) is required");
            return;
        }
        if (vg_repl_fsm_get(&n->fsm, key, &value) != VG_OK) {
            node_send_error(c, id, "failed", "%s", n->fsm.errmsg);
            return;
        }
        a = node_answer("value", id);
        json_object_set_new(a, "key", json_string(key));
        json_object_set_new(a, "value", value ? json_string(value) : json_null());
        json_object_set_new(a, "applied", json_integer((json_int_t)n->fsm.applied_index));
        free(value);
        node_send(c, a);
    } else if (strcmp(type, "put") == 0) {
        const char *key = vg_proto_get_str(msg, "key", NULL);
        const char *value = vg_proto_get_str(msg, "value", NULL);
        if (key == NULL || value == NULL || *key == '\0' || strlen(key) > 256 ||
            strlen(value) > 65536) {
            node_send_error(c, id, "invalid",
                            "'key' (1..256 bytes) and 'value' (≤ 64 KiB) strings are required");
            return;
        }
        if (!node_need_ready(n, c, id)) {
            return;
        }
        propose_for(n, c, id, VG_CMD_PUT,
                    json_pack("{ssss}", "key", key, "value", value));
    } else if (!node_membership_handle(n, c, type, msg, id) &&
               !node_tags_handle(n, c, type, msg, id) &&
               !node_alarms_handle(n, c, type, msg, id) &&
               !node_archive_handle(n, c, type, msg, id) &&
               !node_project_handle(n, c, type, msg, id)) {
        node_send_error(c, id, "unknown_type", "unknown request type '%s'", type);
    }
}

/* -------------------------------------------------------- connections */

static void conn_free_cb(uv_handle_t *h)
{
    struct conn *c = h->data;
    vg_proto_decoder_close(&c->dec);
    free(c->held);
    free(c);
}

void node_conn_unref(struct conn *c)
{
    c->refs--;
    if (c->refs == 0 && c->closing) {
        uv_close((uv_handle_t *)&c->tcp, conn_free_cb);
    }
}

/* Closing is deferred while operations still point at the conn: they answer
 * into a closing conn (dropped) and release it when they finish. */
void node_conn_close(struct conn *c)
{
    struct node *n = c->n;
    if (c->closing) {
        return;
    }
    if (c->held_len > 0) {
        /* Frames sent before the close (a bye) go out before it. The
         * connection stays on the holding list, holding nothing, and
         * keeps its reference until node_uncork drops it. */
        release(c);
        if (c->closing) {
            return; /* the write failed, and closed C */
        }
    }
    c->closing = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    node_project_conn_closing(c);
    node_tags_conn_closing(c);
    node_alarms_conn_closing(c);
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        n->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    c->prev = c->next = NULL;
    node_conn_unref(c); /* the reference the open connection held */
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char chunk[65536];
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(chunk, sizeof chunk);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    struct node *n = c->n;
    json_t *msg;
    long long id;
    char errmsg[VG_ERRMSG_SIZE];
    int rv;

    if (nread < 0) {
        node_conn_close(c);
        return;
    }
    if (nread == 0) {
        return;
    }
    c->last_rx_ms = vg_now_mono_ms();
    if (vg_proto_decoder_feed(&c->dec, buf->base, (size_t)nread) != VG_OK) {
        node_conn_close(c);
        return;
    }
    /* Leadership may have changed since the last iteration began. */
    vg_repl_leadership_poll(&n->lead);
    /* Answers to requests pipelined in one read leave in one write. */
    node_cork(n);
    while (!c->closing) {
        msg = NULL;
        rv = vg_proto_decoder_next(&c->dec, &msg, &id, errmsg);
        if (rv == VG_EAGAIN) {
            break;
        }
        if (rv != VG_OK) {
            const char *code = rv == VG_ETOOBIG       ? "too_big"
                               : rv == VG_EUNSUPPORTED ? "unsupported"
                                                       : "malformed";
            node_send(c, vg_proto_error(id, code, errmsg));
            continue;
        }
        handle(n, c, msg);
        json_decref(msg);
    }
    node_uncork(n);
}

static void accept_cb(uv_stream_t *server, int status)
{
    struct node *n = server->data;
    struct conn *c;
    if (status != 0) {
        return;
    }
    c = calloc(1, sizeof *c);
    if (c == NULL) {
        return;
    }
    c->n = n;
    c->refs = 1; /* the open connection itself */
    vg_proto_decoder_init(&c->dec);
    uv_tcp_init(&n->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        c->closing = true;
        node_conn_unref(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->last_rx_ms = vg_now_mono_ms();
    c->next = n->conns;
    if (n->conns) {
        n->conns->prev = c;
    }
    n->conns = c;
    if (n->stopping) {
        node_conn_close(c);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

/* ------------------------------------------------------ loop iteration */

static char *announce_body(struct vg_repl_leadership *l)
{
    struct node *n = l->data;
    json_t *peers = json_array();
    json_t *body;
    char *s;
    for (unsigned i = 0; i < n->cfg->n_peers; i++) {
        json_array_append_new(
            peers, json_pack("{sIssss}", "node_id", (json_int_t)n->cfg->peers[i].id,
                             "raft_address", n->cfg->peers[i].raft_address,
                             "client_address", n->cfg->peers[i].client_address));
    }
    /* The packed object must be released after dumping (it leaked once per
     * announce before). */
    body = json_pack("{ssssso}", "raft_address", n->cfg->raft_address,
                     "client_address", n->cfg->client_address, "peers", peers);
    s = body != NULL ? json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(body);
    return s;
}

static void ready_changed_cb(struct vg_repl_leadership *l, bool ready)
{
    struct node *n = l->data;
    if (ready) {
        node_log(n, "ready leader in term %llu (applied index %llu)",
                 (unsigned long long)n->raft.current_term,
                 (unsigned long long)n->fsm.applied_index);
        n->next_checkpoint_ms = vg_now_mono_ms() + 200;
        n->last_cp_verifier = false;
    } else {
        /* Leader duties stop before anything else happens; starting them
         * waits for the next iteration (we may be inside a raft callback). */
        node_plc_update(n);
        node_tags_leadership_lost(n);
        node_alarms_leadership_lost(n);
        node_peers_leadership_lost(n);
        node_log(n, "no longer the ready leader (state %s, term %llu)",
                 state_name(raft_state(&n->raft)),
                 (unsigned long long)n->raft.current_term);
    }
}

static void checkpoint_cb(struct vg_repl_proposal *p, int status,
                          uint64_t index, int result)
{
    (void)status;
    (void)index;
    (void)result;
    free(p);
}

static void maybe_checkpoint(struct node *n)
{
    struct vg_repl_fsm *f = &n->fsm;
    struct vg_repl_proposal *p;
    bool activity;
    char *body;
    uint64_t now = vg_now_mono_ms();

    if (!n->lead.ready || now < n->next_checkpoint_ms) {
        return;
    }
    n->next_checkpoint_ms = now + n->cfg->checkpoint_interval_ms;
    /* Checkpoint after activity, then once more so that the last one gets
     * compared; an idle cluster then stops adding entries. */
    activity = f->applied_index > f->checkpoint_index;
    if (!activity && n->last_cp_verifier) {
        return;
    }
    body = vg_repl_fsm_checkpoint_body(f);
    p = malloc(sizeof *p);
    if (body == NULL || p == NULL ||
        vg_repl_propose(&n->lead, p, VG_CMD_CHECKPOINT, body, checkpoint_cb) !=
            VG_OK) {
        free(p);
    } else {
        n->last_cp_verifier = !activity;
    }
    free(body);
}

static void iterate(struct node *n)
{
    raft_id leader_id = 0;
    const char *leader_raft = NULL;
    int state;

    if (n->fsm.fatal) {
        failstop(n, n->fsm.errmsg);
    }
    if (!n->raft_started || n->stopping) {
        return;
    }
    vg_repl_leadership_poll(&n->lead);
    vg_repl_transfer_poll(&n->transfer);
    state = raft_state(&n->raft);
    raft_leader(&n->raft, &leader_id, &leader_raft);
    if (state != n->last_state || n->raft.current_term != n->last_term ||
        leader_id != n->last_leader) {
        node_log(n, "raft: %s, term %llu, leader %llu", state_name(state),
                 (unsigned long long)n->raft.current_term,
                 (unsigned long long)leader_id);
        n->last_state = state;
        n->last_term = n->raft.current_term;
        n->last_leader = leader_id;
    }
    if (n->fsm.n_restored != n->restored_logged) {
        n->restored_logged = n->fsm.n_restored;
        node_log(n, "state restored from a snapshot at index %llu",
                 (unsigned long long)n->fsm.applied_index);
        node_project_check(n);
    }
    if (n->fsm.n_refused != n->refused_logged) {
        n->refused_logged = n->fsm.n_refused;
        node_log(n, "SNAPSHOT REFUSED: %s", n->fsm.errmsg);
    }
    if (n->fsm.snapshots.failed != n->snapshot_failures_logged) {
        n->snapshot_failures_logged = n->fsm.snapshots.failed;
        node_log(n, "%s", n->fsm.errmsg);
    }
    if (n->failstop.appends_cut != n->appends_cut_logged) {
        node_log(n, "raft: cut %llu AppendEntries reaching below this node's "
                    "snapshot at index %llu to start after it (%llu from index 1, "
                    "which libraft 0.15 crashes on; answers lowered to what a cut "
                    "message matched since the node started: %llu)",
                 (unsigned long long)(n->failstop.appends_cut - n->appends_cut_logged),
                 (unsigned long long)n->raft.log.snapshot.last_index,
                 (unsigned long long)(n->failstop.appends_cut_from_start -
                                      n->appends_cut_from_start_logged),
                 (unsigned long long)n->failstop.results_clamped);
        n->appends_cut_logged = n->failstop.appends_cut;
        n->appends_cut_from_start_logged = n->failstop.appends_cut_from_start;
    }
    if (n->failstop.snapshots_held != n->snapshots_held_logged) {
        node_log(n, "raft: holding an InstallSnapshot from node %llu (index %llu) "
                    "while this node stores a snapshot of its own: libraft 0.15 "
                    "would drop it, and its leader would send it again only after "
                    "the install snapshot timeout (held since the node started: "
                    "%llu, replaced by a later one: %llu)",
                 (unsigned long long)n->failstop.held_msg.server_id,
                 (unsigned long long)n->failstop.held_msg.install_snapshot.last_index,
                 (unsigned long long)n->failstop.snapshots_held,
                 (unsigned long long)n->failstop.snapshots_replaced);
        n->snapshots_held_logged = n->failstop.snapshots_held;
    }
    if (n->failstop.snapshots_delivered != n->snapshots_delivered_logged) {
        node_log(n, "raft: handed %llu held InstallSnapshot(s) to libraft once its "
                    "own snapshot was stored (longest hold since the node started: "
                    "%llu ms)",
                 (unsigned long long)(n->failstop.snapshots_delivered -
                                      n->snapshots_delivered_logged),
                 (unsigned long long)n->failstop.snapshot_hold_max_ms);
        n->snapshots_delivered_logged = n->failstop.snapshots_delivered;
    }
    node_plc_update(n);
    node_tags_update(n);
    node_alarms_update(n);
    node_archive_update(n);
    node_peers_update(n);
    node_cluster_level_update(n);
    node_settle_update(n);
    node_log_budget_update(n);
    node_scrub_update(n);
    if (n->fsm.checked_index != n->checked_logged) {
        n->checked_logged = n->fsm.checked_index;
        if (n->fsm.verdict == VG_VERDICT_DIVERGED) {
            node_log(n, "REPLICA DIVERGED: %s", n->fsm.verdict_msg);
        } else if (n->cfg->verbose) {
            node_log(n, "consistency: %s", n->fsm.verdict_msg);
        }
    }
    maybe_checkpoint(n);
}

/* Runs inside libraft's apply callback: it may answer clients and push
 * events, and must never call back into raft. */
static void applied_cb(struct vg_repl_fsm *f, uint64_t index,
                       const struct vg_cmd *cmd, int result)
{
    if (cmd != NULL && cmd->type == VG_CMD_PROJECT_LOAD) {
        node_project_applied(f->data, index, result);
    } else if (cmd != NULL && (cmd->type == VG_CMD_ALARM_CHANGES ||
                               cmd->type == VG_CMD_ALARM_STATE)) {
        node_alarms_applied(f->data, index, cmd, result);
    } else if (cmd != NULL && cmd->type == VG_CMD_CHECKPOINT) {
        node_peers_checkpoint_applied(f->data, index);
    }
}

static void prepare_cb(uv_prepare_t *h)
{
    /* Prepare handles run once per loop iteration, right before the loop
     * waits for I/O: the one place that sees every iteration. */
    loop_account(h->data);
    iterate(h->data);
}

static void timer_cb(uv_timer_t *h)
{
    struct node *n = h->data;
    uint64_t now = vg_now_mono_ms();
    struct conn *c = n->conns;
    while (c != NULL) {
        struct conn *next = c->next;
        if (now - c->last_rx_ms > n->cfg->client_idle_timeout_ms) {
            node_conn_close(c);
        }
        c = next;
    }
    iterate(n);
}

/* ------------------------------------------------------------ shutdown */

static void handle_closed_cb(uv_handle_t *h)
{
    (void)h;
}

static void raft_closed_cb(struct raft *r)
{
    struct node *n = r->data;
    raft_uv_close(&n->uv_io);
    raft_uv_tcp_close(&n->transport);
    uv_close((uv_handle_t *)&n->prepare, handle_closed_cb);
    uv_close((uv_handle_t *)&n->timer, handle_closed_cb);
    uv_close((uv_handle_t *)&n->sigterm, handle_closed_cb);
    uv_close((uv_handle_t *)&n->sigint, handle_closed_cb);
    /* After raft_close: its callbacks (failed proposals) are done. */
    node_alarms_close(n);
    node_archive_close(n);
    node_peers_close(n);
}

static void stop(struct node *n)
{
    if (n->stopping) {
        return;
    }
    n->stopping = true;
    node_log(n, "shutting down");
    node_scrub_stop(n);
    node_plc_shutdown(n);
    node_alarms_leadership_lost(n);
    node_peers_leadership_lost(n);
    n->lead.closing = true;
    uv_close((uv_handle_t *)&n->listener, handle_closed_cb);
    while (n->conns != NULL) {
        node_conn_close(n->conns);
    }
    /* Called from a signal callback, not from inside libraft. */
    raft_close(&n->raft, raft_closed_cb);
}

static void signal_cb(uv_signal_t *h, int signum)
{
    (void)signum;
    stop(h->data);
}

static void io_fault_cb(struct vg_repl_failstop *w, const char *what, int status)
{
    (void)status;
    failstop(w->data, what);
}

/* -------------------------------------------------------------- start */

static int mkdirs(const char *path, char *errmsg)
{
    char tmp[1100];
    struct stat st;
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0750) != 0 && errno != EEXIST) {
                vg_errf(errmsg, "cannot create %s: %s", tmp, strerror(errno));
                return VG_EIO;
            }
            *p = '/';
        }
    }
    if (mkdir(tmp, 0750) != 0 && errno != EEXIST) {
        vg_errf(errmsg, "cannot create %s: %s", tmp, strerror(errno));
        return VG_EIO;
    }
    if (stat(tmp, &st) != 0 || !S_ISDIR(st.st_mode)) {
        vg_errf(errmsg, "%s is not a folder", tmp);
        return VG_EIO;
    }
    if (access(tmp, R_OK | W_OK | X_OK) != 0) {
        vg_errf(errmsg, "data folder %s is not readable and writable: %s", tmp,
                strerror(errno));
        return VG_EIO;
    }
    return VG_OK;
}

static bool dir_is_empty(const char *path)
{
    char probe[1200];
    /* libraft writes a metadata1/metadata2 file as soon as it has state. */
    snprintf(probe, sizeof probe, "%s/metadata1", path);
    if (access(probe, F_OK) == 0) {
        return false;
    }
    snprintf(probe, sizeof probe, "%s/metadata2", path);
    return access(probe, F_OK) != 0;
}

/* FLAG's ADDRESS ("host:port", already checked by the config parser) as a
 * socket address; the host must be a numeric IPv4 or IPv6 address. */
static int sockaddr_of(const char *flag, const char *address,
                       struct sockaddr_storage *sa, char *errmsg)
{
    char host[VG_NODE_ADDR_SIZE];
    int port;

    vg_addr_parse(address, host, sizeof host, &port, NULL);
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)sa) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)sa) != 0) {
        vg_errf(errmsg, "%s %s: host must be a numeric IP address", flag, address);
        return VG_EINVAL;
    }
    return VG_OK;
}

static int listen_clients(struct node *n, char *errmsg)
{
    struct sockaddr_storage sa;
    int rv;

    if ((rv = sockaddr_of("--client-address", n->cfg->client_address, &sa,
                          errmsg)) != VG_OK) {
        return rv;
    }
    uv_tcp_init(&n->loop, &n->listener);
    n->listener.data = n;
    rv = uv_tcp_bind(&n->listener, (struct sockaddr *)&sa, 0);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t *)&n->listener, 128, accept_cb);
    }
    if (rv != 0) {
        vg_errf(errmsg, "cannot listen for clients on %s: %s",
                n->cfg->client_address, uv_strerror(rv));
        return VG_EIO;
    }
    return VG_OK;
}

/* libraft reports a raft port in use only as "I/O error"; try the bind
 * ourselves first so that the operator reads the real reason. */
static int probe_raft_port(struct node *n, char *errmsg)
{
    struct sockaddr_storage sa;
    uv_os_sock_t fd;
    int rv;

    if ((rv = sockaddr_of("--raft-address", n->cfg->raft_address, &sa,
                          errmsg)) != VG_OK) {
        return rv;
    }
    fd = socket(sa.ss_family, SOCK_STREAM, 0);
    if (fd < 0) {
        return VG_OK; /* let libraft report it */
    }
    rv = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &(int){1}, sizeof(int));
    if (rv == 0) {
        rv = bind(fd, (struct sockaddr *)&sa,
                  sa.ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                          : sizeof(struct sockaddr_in6));
    }
    if (rv != 0) {
        vg_errf(errmsg, "cannot listen for raft traffic on %s: %s",
                n->cfg->raft_address, strerror(errno));
        close(fd);
        return VG_EIO;
    }
    close(fd);
    return VG_OK;
}

static void close_walk_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

int vg_node_run(const struct vg_node_config *cfg, char *errmsg)
{
    struct node *n = calloc(1, sizeof *n);
    char raft_dir[1100];
    char db_path[1100];
    bool fresh;
    int rv;

    if (n == NULL) {
        vg_errf(errmsg, "out of memory");
        return VG_ENOMEM;
    }
    n->cfg = cfg;
    n->last_state = -1;
    snprintf(raft_dir, sizeof raft_dir, "%s/raft", cfg->data_dir);
    snprintf(db_path, sizeof db_path, "%s/state.db", cfg->data_dir);
    if ((rv = mkdirs(cfg->data_dir, errmsg)) != VG_OK ||
        (rv = mkdirs(raft_dir, errmsg)) != VG_OK) {
        free(n);
        return rv;
    }
    fresh = dir_is_empty(raft_dir);
    if (fresh && cfg->n_peers == 0 && !cfg->join) {
        vg_errf(errmsg, "data folder %s is new: give --bootstrap to start a new "
                        "cluster or --join to be added to one",
                cfg->data_dir);
        free(n);
        return VG_EINVAL;
    }
    if (cfg->rebuild_state) {
        /* The raft log and snapshots are the source of truth: without a
         * database, libraft's start-up restores the latest snapshot into an
         * empty one and replays every entry after it. */
        static const char *const suffixes[] = {"", "-wal", "-shm"};
        for (size_t i = 0; i < 3; i++) {
            char victim[1200];
            snprintf(victim, sizeof victim, "%s%s", db_path, suffixes[i]);
            if (unlink(victim) != 0 && errno != ENOENT) {
                vg_errf(errmsg, "--rebuild-state: cannot remove %s: %s", victim,
                        strerror(errno));
                free(n);
                return VG_EIO;
            }
        }
        fprintf(stderr, "vigild[%llu] --rebuild-state: removed %s; rebuilding from "
                        "the raft log\n",
                (unsigned long long)cfg->id, db_path);
    }
    if ((rv = vg_repl_fsm_open(&n->fsm, db_path)) != VG_OK) {
        vg_errf(errmsg, "%s", n->fsm.errmsg);
        free(n);
        return rv;
    }
    n->fsm.max_level = cfg->max_apply_level;
    if ((rv = vg_repl_fsm_level_check(&n->fsm)) != VG_OK) {
        vg_errf(errmsg, "%s", n->fsm.errmsg);
        vg_repl_fsm_close(&n->fsm);
        free(n);
        return rv;
    }
    n->fsm.applied_cb = applied_cb;
    n->fsm.data = n;
    vg_repl_fsm_project_active(&n->fsm, &n->project_notified, NULL);
    uv_loop_init(&n->loop);
    /* The loop timing (status "loop") subtracts the time spent waiting for
     * I/O; without this metric it would count sleeping as work. */
    uv_loop_configure(&n->loop, UV_METRICS_IDLE_TIME);
    /* Opened on the loop's thread: the file is that thread's. */
    n->loop_stats.schedstat_fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);

    if ((rv = probe_raft_port(n, errmsg)) != VG_OK ||
        (rv = listen_clients(n, errmsg)) != VG_OK) {
        goto err_after_loop;
    }
    rv = raft_uv_tcp_init(&n->transport, &n->loop);
    if (rv != 0) {
        vg_errf(errmsg, "raft transport: %s", raft_strerror(rv));
        rv = VG_ERAFT;
        goto err_after_loop;
    }
    rv = raft_uv_init(&n->uv_io, &n->loop, raft_dir, &n->transport);
    if (rv != 0) {
        vg_errf(errmsg, "raft storage in %s: %s", raft_dir, n->uv_io.errmsg);
        rv = VG_ERAFT;
        goto err_after_transport;
    }
    vg_repl_failstop_init(&n->failstop, &n->uv_io);
    n->failstop.fault_cb = io_fault_cb;
    n->failstop.data = n;
    rv = raft_init(&n->raft, &n->failstop.io, &n->fsm.fsm, cfg->id,
                   cfg->raft_address);
    if (rv != 0) {
        vg_errf(errmsg, "raft init: %s", raft_errmsg(&n->raft));
        rv = VG_ERAFT;
        goto err_after_io;
    }
    n->raft.data = n;
    n->fsm.raft = &n->raft;
    raft_set_election_timeout(&n->raft, cfg->election_timeout_ms);
    raft_set_heartbeat_timeout(&n->raft, cfg->heartbeat_ms);
    raft_set_snapshot_threshold(&n->raft, node_log_budget_threshold(n));
    raft_set_snapshot_trailing(&n->raft, cfg->snapshot_trailing);
    n->log_budget.threshold = node_log_budget_threshold(n);
    n->log_budget.trailing = cfg->snapshot_trailing;
    raft_set_pre_vote(&n->raft, true);
    raft_uv_set_connect_retry_delay(&n->uv_io, 50);

    if (fresh && cfg->n_peers > 0) {
        struct raft_configuration conf;
        raft_configuration_init(&conf);
        for (unsigned i = 0; i < cfg->n_peers; i++) {
            raft_configuration_add(&conf, cfg->peers[i].id,
                                   cfg->peers[i].raft_address, RAFT_VOTER);
        }
        rv = raft_bootstrap(&n->raft, &conf);
        raft_configuration_close(&conf);
        if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) {
            vg_errf(errmsg, "bootstrap: %s", raft_errmsg(&n->raft));
            rv = VG_ERAFT;
            goto err_after_raft;
        }
    }

    vg_repl_leadership_init(&n->lead, &n->raft, cfg->id);
    n->lead.data = n;
    n->lead.announce_body = announce_body;
    n->lead.changed_cb = ready_changed_cb;

    rv = raft_start(&n->raft);
    if (rv != 0) {
        vg_errf(errmsg, "raft start on %s: %s", cfg->raft_address,
                raft_errmsg(&n->raft)[0] ? raft_errmsg(&n->raft)
                                         : raft_strerror(rv));
        rv = VG_ERAFT;
        goto err_after_raft;
    }
    n->raft_started = true;

    uv_prepare_init(&n->loop, &n->prepare);
    n->prepare.data = n;
    uv_prepare_start(&n->prepare, prepare_cb);
    uv_timer_init(&n->loop, &n->timer);
    n->timer.data = n;
    uv_timer_start(&n->timer, timer_cb, 20, 20);
    if (node_archive_init(n) != VG_OK) {
        node_log(n, "archive: out of memory; this node will not archive");
    }
    if (node_alarms_init(n) != VG_OK) {
        node_log(n, "alarms: out of memory; this node will not evaluate alarms");
    }
    if (node_peers_init(n) != VG_OK) {
        node_log(n, "peers: out of memory; as leader this node will not learn "
                    "the other replicas' verdicts");
    }
    uv_signal_init(&n->loop, &n->sigterm);
    n->sigterm.data = n;
    uv_signal_start(&n->sigterm, signal_cb, SIGTERM);
    uv_signal_init(&n->loop, &n->sigint);
    n->sigint.data = n;
    uv_signal_start(&n->sigint, signal_cb, SIGINT);

    node_log(n, "started: raft %s, clients %s, data %s (%s), election timeout %u ms, "
             "heartbeat %u ms",
             cfg->raft_address, cfg->client_address, cfg->data_dir,
             fresh ? (cfg->join ? "fresh, waiting to be added" : "bootstrapped")
                : "restarted",
             cfg->election_timeout_ms, cfg->heartbeat_ms);

    uv_run(&n->loop, UV_RUN_DEFAULT);
    uv_loop_close(&n->loop);
    vg_repl_fsm_close(&n->fsm);
    node_log(n, "stopped");
    if (n->loop_stats.schedstat_fd >= 0) {
        close(n->loop_stats.schedstat_fd);
    }
    free(n);
    return VG_OK;

err_after_raft:
    /* raft_close needs a running loop to finish. */
    raft_close(&n->raft, NULL);
    uv_run(&n->loop, UV_RUN_NOWAIT);
err_after_io:
    raft_uv_close(&n->uv_io);
err_after_transport:
    raft_uv_tcp_close(&n->transport);
err_after_loop:
    uv_walk(&n->loop, close_walk_cb, NULL);
    uv_run(&n->loop, UV_RUN_DEFAULT);
    uv_loop_close(&n->loop);
    vg_repl_fsm_close(&n->fsm);
    if (n->loop_stats.schedstat_fd >= 0) {
        close(n->loop_stats.schedstat_fd);
    }
    free(n);
    return rv;
}
