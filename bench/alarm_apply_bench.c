/* Benchmark of alarm changes in the replicated state machine
 * (replication/alarm_log.c), without raft: one fsm in a fresh temporary
 * directory, ALARM_CHANGES commands encoded as the leader's alarm duty
 * encodes them and applied through f->fsm.apply as libraft would on every
 * node. It isolates what one acknowledgment costs a node's apply from the
 * cluster's noise (bench/records_bench.py measures the whole path).
 *
 * Prints one JSON object per phase:
 *   {"bench":"alarm_apply","phase":"raise"|"ack","changes":…,"per_cmd":…,
 *    "changes_per_s":…,"cpu_us_per_change":…,"wal_copied":…,
 *    "wal_writes":…,"wal_file_writes":…,"longest_cmd_ms":…}
 *       raise: ALARMS alarms raised (a journal row each, no audit record);
 *       ack: all of them acknowledged by a user (a journal row and an audit
 *       record each), in name order as a station's "acknowledge all" or
 *       the cluster benchmark sends them. Commands of PER_CMD changes.
 *       changes_per_s is apply wall time only (encoding not counted);
 *       cpu_us_per_change the process CPU time (the WAL checkpointer thread
 *       included) per change; wal_copied the WAL frames the checkpointer
 *       copied during the phase: pages written twice per change;
 *       wal_writes the writes SQLite made to the WAL (two per frame),
 *       wal_file_writes how many of those reached the file once gathered
 *       (replication/wal_writes.c).
 * Machines are shared and noisy: compare medians and ratios, not single runs.
 *
 * usage: alarm_apply_bench [--alarms N] [--per-cmd N] [--dir PARENT] */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_args.h"
#include "replication.h"

struct opts {
    unsigned alarms;
    unsigned per_cmd;
    const char *parent;
};

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One alarm's change as the duty writes it: the full state, the message in
 * the project's language, and the transition. */
static void fill(struct vg_repl_alarm_change *ch, unsigned i, bool ack,
                 uint64_t t, char name[32], char tag[32], char text[48])
{
    snprintf(tag, 32, "b.%05u", i);
    snprintf(name, 32, "b.%05u.off", i);
    snprintf(text, 48, "Input %u off", i);
    memset(ch, 0, sizeof *ch);
    ch->alarm = name;
    ch->tag = tag;
    ch->section = "bench";
    ch->priority = 2;
    ch->has_message = true;
    ch->n_message = 1;
    ch->lang[0] = "en";
    ch->text[0] = text;
    ch->state.status =
        ack ? VG_REPL_ALARM_STATUS_ACK_ACTIVE : VG_REPL_ALARM_STATUS_UNACK_ACTIVE;
    ch->state.active = true;
    ch->state.raised_ms = 1700000000000ull;
    ch->state.changed_ms = ack ? t : ch->state.raised_ms;
    ch->state.acked_ms = ack ? t : 0;
    ch->state.shelve_reason = "";
    ch->state.shelve_user = "";
    ch->has_transition = true;
    ch->transition.cause = ack ? VG_REPL_ALARM_CAUSE_ACKED : VG_REPL_ALARM_CAUSE_RAISED;
    ch->transition.from =
        ack ? VG_REPL_ALARM_STATUS_UNACK_ACTIVE : VG_REPL_ALARM_STATUS_NORMAL;
    ch->transition.to = ch->state.status;
    ch->transition.at_ms = ch->state.changed_ms;
    ch->transition.has_value = !ack;
    ch->transition.value = 0.0;
    ch->transition.user = ack ? "bench" : NULL;
}

/* The ALARM_CHANGES command of alarms FIRST..FIRST+N-1, into *OUT. */
static int encode(unsigned first, unsigned n, bool ack, uint64_t t,
                  struct raft_buffer *out)
{
    struct vg_repl_bytes b = {0};
    struct vg_cmd cmd = {.type = VG_CMD_ALARM_CHANGES, .term = 1, .time_ms = t,
                         .proposer = 1};
    unsigned char *body = NULL;
    size_t len;
    int rv = VG_OK;

    for (unsigned i = first; i < first + n && rv == VG_OK; i++) {
        struct vg_repl_alarm_change ch;
        char name[32], tag[32], text[48];
        fill(&ch, i, ack, t, name, tag, text);
        rv = vg_repl_alarm_change_encode(&b, &ch, NULL);
    }
    if (rv == VG_OK && b.nomem) {
        rv = VG_ENOMEM;
    }
    if (rv == VG_OK) {
        rv = vg_repl_alarm_changes_body(b.p, b.len, n, &body, &len);
    }
    free(b.p);
    if (rv != VG_OK) {
        return rv;
    }
    cmd.body = (const char *)body;
    cmd.body_len = (uint32_t)len;
    rv = vg_cmd_encode(&cmd, out);
    free(body);
    return rv;
}

static int phase(struct vg_repl_fsm *f, const struct opts *o, bool ack,
                 uint64_t *t)
{
    double wall = 0, longest = 0, cpu0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    struct vg_repl_wal_stats ws0, ws1;

    vg_repl_fsm_wal_stats(f, &ws0);
    for (unsigned first = 0; first < o->alarms; first += o->per_cmd) {
        unsigned n = o->alarms - first < o->per_cmd ? o->alarms - first : o->per_cmd;
        struct raft_buffer buf;
        void *result = NULL;
        double start, took;
        if (encode(first, n, ack, ++*t, &buf) != VG_OK) {
            fprintf(stderr, "cannot encode alarm changes\n");
            return -1;
        }
        start = clock_s(CLOCK_MONOTONIC);
        if (f->fsm.apply(&f->fsm, &buf, &result) != 0) {
            fprintf(stderr, "apply failed: %s\n", f->errmsg);
            raft_free(buf.base);
            return -1;
        }
        took = clock_s(CLOCK_MONOTONIC) - start;
        raft_free(buf.base);
        if ((int)(intptr_t)result != VG_OK) {
            fprintf(stderr, "alarm changes rejected: %s\n",
                    vg_strerror((int)(intptr_t)result));
            return -1;
        }
        wall += took;
        longest = took > longest ? took : longest;
    }
    vg_repl_fsm_wal_stats(f, &ws1);
    printf("{\"bench\":\"alarm_apply\",\"phase\":\"%s\",\"changes\":%u,"
           "\"per_cmd\":%u,\"changes_per_s\":%.0f,\"cpu_us_per_change\":%.1f,"
           "\"wal_copied\":%llu,\"wal_writes\":%llu,\"wal_file_writes\":%llu,"
           "\"longest_cmd_ms\":%.1f}\n",
           ack ? "ack" : "raise", o->alarms, o->per_cmd, o->alarms / wall,
           (clock_s(CLOCK_PROCESS_CPUTIME_ID) - cpu0) * 1e6 / o->alarms,
           (unsigned long long)(ws1.copied - ws0.copied),
           (unsigned long long)(ws1.wal_writes - ws0.wal_writes),
           (unsigned long long)(ws1.wal_file_writes - ws0.wal_file_writes),
           longest * 1e3);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o = {.alarms = 20000, .per_cmd = 1000, .parent = "/tmp"};
    struct vg_repl_fsm f;
    char dir[256], path[300];
    uint64_t t = 1700000000000ull;
    int rv;

    const struct bench_opt opts[] = {
        {"--alarms", &o.alarms, NULL, 1000000},
        {"--per-cmd", &o.per_cmd, NULL, VG_REPL_ALARM_CHANGES_MAX},
        {"--dir", NULL, &o.parent, 0},
        {NULL, NULL, NULL, 0},
    };

    if (bench_args(argc, argv, opts) != 0) {
        fprintf(stderr, "usage: %s [--alarms N] [--per-cmd N (<= %d)] [--dir PARENT]\n",
                argv[0], VG_REPL_ALARM_CHANGES_MAX);
        return 2;
    }
    snprintf(dir, sizeof dir, "%s/vg-alarm-bench-XXXXXX", o.parent);
    if (mkdtemp(dir) == NULL) {
        perror(dir);
        return 1;
    }
    snprintf(path, sizeof path, "%s/fsm.db", dir);
    if (vg_repl_fsm_open(&f, path) != VG_OK) {
        fprintf(stderr, "%s\n", f.errmsg);
        rv = -1;
    } else {
        rv = phase(&f, &o, false, &t);
        if (rv == 0) {
            rv = phase(&f, &o, true, &t);
        }
        vg_repl_fsm_close(&f);
    }
    vg_remove_tree(dir);
    return rv == 0 ? 0 : 1;
}
