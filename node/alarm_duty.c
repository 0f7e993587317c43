/* vigild's alarm duty: the ready leader evaluates the project's alarms and
 * the system alarms, commits every change through Raft, and serves the
 * stations (MESSAGES.md, "Alarms").
 *
 * Who decides. Only the ready leader runs an engine (node/alarms/), built
 * for the project version it polls and restored from the replicated
 * alarm_states table, so a new leader continues from the committed states:
 * an alarm raised before the failover is not raised again, a pending on- or
 * off-delay keeps its start time, a shelve keeps its expiry. Readings come
 * from the pollers (node_alarms_changed); a timer wakes the loop at the
 * engine's next deadline.
 *
 * Taking over without freezing the loop. A new leader restores 20 000
 * alarm states in slices, not in one go (that took 0.4-0.6 s of one loop
 * iteration, longer than an election timeout: followers stopped hearing
 * heartbeats and elected someone else, who then did the same). The engine
 * is built at once (a few ms); then every loop iteration reads the next
 * stored states by name after the last one read, within RESTORE_BUDGET_MS,
 * and once the table is exhausted feeds the latest readings (the poller
 * set keeps them) the same way; a zero timer keeps the loop iterating
 * meanwhile. Only then does the duty evaluate readings and actions: a
 * reading evaluated against a half-restored engine would raise an alarm
 * that is already raised, so readings are left in the values until their
 * tag is fed, and operator actions are answered "failed ... does not
 * evaluate alarms yet", which changes nothing and may be sent again.
 * Losing readiness or another project version or term abandons the restore
 * (duty_stop); the next start reads the table from the beginning. The
 * restore also waits for the commands this node still has in flight, so
 * that it reads the table they leave.
 *
 * What is committed. Every change the engine reports, bookkeeping included
 * (a delay started), is encoded into a queue; the queue is proposed as
 * ALARM_CHANGES commands (≤ CHANGES_PER_CMD changes each, at most ALARMS_IN_FLIGHT
 * waiting for their commit) from the loop iteration, never from inside a
 * raft callback (DESIGN.md, libraft 0.15). An operator action (ack, shelve,
 * unshelve, out of service) queues its changes behind every automatic change
 * it saw, so its command is ordered after them, and is answered once the
 * command holding its last change is committed. The engine runs ahead of the
 * log by at most the queue and the commands in flight; should one fail
 * while the node stays leader, the engine is rebuilt from the table once
 * nothing is in flight (what is still queued is dropped with it).
 *
 * What the stations see. Pushes are made from the applied command
 * (node_alarms_applied), not from the engine, so a station never sees a
 * change that was not committed, and the image of a new subscription is
 * read from the same table: committed state at index X, then every change
 * after X.
 *
 * Not exactly-once by magic: an acknowledgment whose answer was lost in a
 * failover is sent again by the client; on the new leader the alarm is
 * already acknowledged (the command was committed) or not (it was not), so
 * the second request either acknowledges it or answers "unchanged", and the
 * journal holds one ack either way. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../config/project.h"
#include "alarms/alarms.h"
#include "internal.h"
#include "plc/plc.h"

/* Changes per ALARM_CHANGES command (apply accepts up to 1024), and
 * ALARM_CHANGES commands proposed and not yet applied, at most (see
 * flush). Their product bounds an iteration's apply time during a storm:
 * every committed entry is applied in one loop iteration. With JSON bodies
 * 4 x 1024 changes made that 120-170 ms on a follower; since the binary
 * form, the record summaries, the state text buffers and the gathered WAL
 * writes a change applies in ~10 us, and 4096 in flight cost 43-57 ms of
 * apply in the iteration (loop 52-61 ms, 20 000 alarms raised at once).
 * How they split matters too: with 2 commands of 1024 in flight the
 * pipeline ran empty (acks alone 18.0-22.6k/s against 20.8-24.1k with 4;
 * while the archive takes 190k samples/s, 9.9k and 11.4k against 18.1k and
 * 19.7k: alarm commands wait behind history batches in the log), and with 8
 * of 512 the next commands are on their way while 4 are applied:
 * records_bench.py, 5 pairs of each kind interleaved against 4 of 1024:
 * acks alone 21.6-26.8k/s against 20.4-24.5k (faster in all 5); with the
 * archive's load 17.3-21.8k against 16.2-20.5k, medians 20.3k and 18.1k
 * (faster in 3 of 5); the raise storm's longest iteration 62-85 ms against
 * 56-82 ms. 16 of 256 were slower in 3 of 5 pairs (acks alone). */
#define CHANGES_PER_CMD 512
#define ALARMS_IN_FLIGHT 8u
#define NAME_MAX_BYTES 256u
#define WHO_MAX 128u
#define REASON_MAX 127u
#define SHELVE_MAX_S (30u * 24u * 3600u)
#define SECTIONS_MAX 64u
/* A PLC that stays unreachable this long raises its system alarm; a new
 * leader's pollers connect well within it. */
#define PLC_ALARM_DELAY_MS 3000u
/* A voter not heard from for this many election timeouts is "down". */
#define NODE_DOWN_TIMEOUTS 3u
#define SYS_EVERY_MS 250u
/* Restore work per loop iteration, at most (checked every RESTORE_CHECK
 * rows or tags; an election timeout is 300 ms in the tests, a heartbeat
 * 50 ms), and rows per query. */
#define RESTORE_BUDGET_MS 8u
#define RESTORE_CHECK 64u
#define RESTORE_SLICE 4096u

_Static_assert(VG_REPL_ALARM_REASON_SIZE == VG_ALARM_REASON_SIZE &&
                   VG_REPL_ALARM_USER_SIZE == VG_ALARM_USER_SIZE,
               "stored shelve strings must fit the engine's state");
/* What the project validator lets through, an alarm change must carry: a
 * message it cannot is never committed, and the engine is rebuilt after
 * every change of that alarm (see pending_add). */
_Static_assert(VG_PROJECT_MAX_ALARM_TEXT <= VG_REPL_ALARM_TEXT_MAX &&
                   VG_PROJECT_MAX_LANGS <= VG_REPL_ALARM_LANGS_MAX,
               "a project's alarm messages must fit an alarm change");

enum duty_phase {
    PHASE_IDLE,    /* no engine: not the ready leader, or nothing polled */
    PHASE_RESTORE, /* engine built; stored states read slice by slice */
    PHASE_FEED,    /* states restored; the latest readings fed tag by tag */
    PHASE_LIVE,    /* evaluating readings, ticks and operator actions */
};

struct sys_alarm {
    char name[96];
    char text_en[200];
    char text_de[200];
    struct vg_alarm def;        /* synthetic: digital_on, priority high */
    struct vg_alarm_state st;
};

/* A stored system alarm ("$…" row) found by the restore: sys_get continues
 * it, sys_update removes it once nothing asks for it. */
struct stored_sys {
    char *name;
    bool usable;                /* ST is the stored state */
    struct vg_alarm_state st;
};

struct alarm_sub {
    json_t *sections; /* expanded section names (object used as a set), or NULL */
    unsigned max_priority;
    /* The image still to send (image_pump), from entry IMAGE_OFF on, of
     * the state at IMAGE_INDEX; NULL once sent. Change events applied
     * meanwhile wait in HELD (HELD_BYTES of entries), in order. */
    json_t *image;
    size_t image_off;
    uint64_t image_index;
    json_t *held;      /* sent from HELD_OFF on, once the image is;
                        * HELD_BYTES: of those not yet sent (about) */
    size_t held_off, held_bytes;
};

struct alarm_duty {
    struct node *n;
    enum duty_phase phase;
    struct vg_alarm_engine *engine;
    const struct vg_project *pr;   /* borrowed from the poller set */
    uint64_t version;
    raft_term term;
    size_t *by_name;               /* alarm indexes sorted by name */
    /* Changes not yet proposed, encoded as ALARM_CHANGES records (replication.h):
     * record i ends at pending_end[i]; records before pending_first are
     * proposed (dropped from the buffer once per flush). */
    struct vg_repl_bytes pending;
    size_t *pending_end;
    size_t n_pending, cap_pending, pending_first;
    uint64_t appended, proposed;   /* changes ever queued / ever proposed */
    uint64_t committed;            /* the end of the last change committed */
    struct alarm_op *ops_head, *ops_tail; /* actions waiting, by seq_end */
    uint64_t engine_deadline;      /* cached vg_alarm_engine_next_deadline */
    bool deadline_dirty;           /* the engine changed since */
    struct stored_sys *stored;     /* restored rows of system alarms */
    size_t n_stored;
    unsigned in_flight;
    bool rebuild;
    char refused[VG_ERRMSG_SIZE];  /* why pending_add last refused a change */
    uint64_t last_now;
    uv_timer_t timer;
    bool timer_armed;
    /* Operator who causes the changes being reported, during an action. */
    const char *act_user, *act_station, *act_reason;
    struct sys_alarm *sys;
    size_t n_sys;
    uint64_t next_sys_ms;
    /* The restore (PHASE_RESTORE, PHASE_FEED). */
    char cursor[NAME_MAX_BYTES + 1]; /* last name read; "" before the first */
    size_t feed_next;              /* tags below it were fed */
    size_t restored, removed;      /* stored states taken, rows dropped */
    uint64_t restore_start_ns;     /* uv_hrtime at duty_start */
    uint64_t restore_ms;           /* how long the last restore took */
    unsigned restore_iterations;   /* loop iterations it took */
    uint64_t step_iteration;       /* loop iteration of the last restore step */
    uint64_t evaluating_since_ms;  /* wall clock when it went live; 0: not */
    uint64_t *seen_id, *seen_ms;   /* last contact with each voter */
    size_t n_seen;
};

/* An operator action waiting for the commit of its changes: answered when
 * the command holding change number SEQ_END - 1 is applied. */
struct alarm_op {
    struct alarm_op *next;
    struct conn *c;
    long long id;
    json_t *answer;
    uint64_t seq_end;
    bool noop; /* it changed nothing: its answer stands on earlier changes */
};

/* A proposed chunk of the queue: changes [.., SEQ_END). */
struct chunk_prop {
    struct vg_repl_proposal p; /* first: the proposal callback casts back */
    uint64_t seq_end;
};

/* ------------------------------------------------------------- helpers */

static uint64_t duty_now(struct alarm_duty *d)
{
    uint64_t now = vg_now_wall_ms();
    /* The engine wants time that does not run backwards within one run. */
    if (now < d->last_now) {
        now = d->last_now;
    }
    d->last_now = now;
    return now;
}

/* The state the engine holds, in the form a command carries. */
static void change_state(struct vg_repl_alarm_change *ch, const struct vg_alarm_state *st)
{
    int status = vg_repl_alarm_status_code(vg_alarm_status_name(st->status));
    ch->state.status = status >= 0 ? (unsigned)status : VG_REPL_ALARM_STATUS_COUNT;
    ch->state.active = st->active;
    ch->state.changed_ms = st->changed_ms;
    ch->state.pending = st->pending;
    ch->state.pending_since_ms = st->pending_since_ms;
    ch->state.raised_ms = st->raised_ms;
    ch->state.acked_ms = st->acked_ms;
    ch->state.cleared_ms = st->cleared_ms;
    ch->state.shelved = st->shelved;
    ch->state.shelved_ms = st->shelved_ms;
    ch->state.shelved_until_ms = st->shelved_until_ms;
    ch->state.shelve_reason = st->shelve_reason;
    ch->state.shelve_user = st->shelve_user;
    ch->state.out_of_service = st->out_of_service;
    ch->state.out_of_service_ms = st->out_of_service_ms;
}

/* A stored state read by the restore into ST; false (with a sentence in
 * ERRMSG) when it cannot be continued from. */
static bool row_state(const struct vg_repl_alarm_row *row,
                      struct vg_alarm_state *st, char *errmsg)
{
    vg_alarm_state_init(st);
    if (!row->readable || vg_alarm_status_parse(row->status, &st->status) != VG_OK) {
        vg_errf(errmsg, "no valid state stored");
        return false;
    }
    st->active = row->active;
    st->changed_ms = row->changed_ms;
    st->pending = row->pending;
    st->pending_since_ms = row->pending_since_ms;
    st->raised_ms = row->raised_ms;
    st->acked_ms = row->acked_ms;
    st->cleared_ms = row->cleared_ms;
    st->shelved = row->shelved;
    st->shelved_ms = row->shelved_ms;
    st->shelved_until_ms = row->shelved_until_ms;
    memcpy(st->shelve_reason, row->shelve_reason, sizeof st->shelve_reason);
    memcpy(st->shelve_user, row->shelve_user, sizeof st->shelve_user);
    st->out_of_service = row->out_of_service;
    st->out_of_service_ms = row->out_of_service_ms;
    return vg_alarm_state_check(st, errmsg) == VG_OK;
}

static const char *alarm_section(const struct vg_project *pr, size_t a)
{
    const struct vg_alarm *def = &pr->alarms[a];
    if (def->section.index >= 0) {
        return pr->sections[def->section.index].name;
    }
    if (def->tag.index >= 0 && pr->tags[def->tag.index].section.index >= 0) {
        return pr->sections[pr->tags[def->tag.index].section.index].name;
    }
    return NULL;
}

/* The project's message of alarm A in every language that has one. */
static void alarm_message(const struct vg_project *pr, size_t a,
                          struct vg_repl_alarm_change *ch)
{
    ch->has_message = true;
    for (size_t i = 0; i < pr->n_languages; i++) {
        const char *s = pr->alarms[a].message.s[i];
        if (s == NULL) {
            continue;
        }
        if (ch->n_message == VG_REPL_ALARM_LANGS_MAX) {
            /* The encoder refuses it, as apply would. */
            ch->n_message = VG_REPL_ALARM_LANGS_MAX + 1;
            return;
        }
        ch->lang[ch->n_message] = pr->languages[i];
        ch->text[ch->n_message] = s;
        ch->n_message++;
    }
}

static bool operator_cause(enum vg_alarm_cause c)
{
    return c == VG_ALARM_CAUSE_ACKED || c == VG_ALARM_CAUSE_SHELVED ||
           c == VG_ALARM_CAUSE_UNSHELVED || c == VG_ALARM_CAUSE_OOS ||
           c == VG_ALARM_CAUSE_IN_SERVICE;
}

/* The transition T, with the operator who caused it when a person did. */
static void change_transition(struct alarm_duty *d, struct vg_repl_alarm_change *ch,
                              const struct vg_alarm_transition *t)
{
    int cause = vg_repl_alarm_cause_code(vg_alarm_cause_name(t->cause));
    int from = vg_repl_alarm_status_code(vg_alarm_status_name(t->from));
    int to = vg_repl_alarm_status_code(vg_alarm_status_name(t->to));
    ch->has_transition = true;
    ch->transition.cause = cause >= 0 ? (unsigned)cause : VG_REPL_ALARM_CAUSE_COUNT;
    ch->transition.from = from >= 0 ? (unsigned)from : VG_REPL_ALARM_STATUS_COUNT;
    ch->transition.to = to >= 0 ? (unsigned)to : VG_REPL_ALARM_STATUS_COUNT;
    ch->transition.at_ms = t->at_ms;
    if (operator_cause(t->cause)) {
        ch->transition.user = d->act_user;
        ch->transition.station = d->act_station;
        ch->transition.reason = d->act_reason;
    }
}

/* vigild --test-refuse-alarm-change NAME, for tests only: a change of alarm
 * NAME that an operator makes (ack, shelve, unshelve, out of or back in
 * service) is handled below as one the format refuses. Why a hook: since
 * the project validator keeps alarm messages within what a change carries,
 * no input makes vg_repl_alarm_change_encode refuse a change (running out
 * of memory still may), yet what follows a refusal (the engine rebuilt from
 * the replicated table, actions refused meanwhile, none answered as done)
 * spans this duty, the raft commit and the restore, which no unit test
 * reaches. Only operators' changes: a refused raise would be refused again
 * after every rebuild, as the long messages were, and the engine would
 * never be seen to recover. Reachable through that flag only (listed in
 * --help and the README as for tests); tests/integration/
 * cluster_alarm_rebuild.py uses it. */
static bool refused_for_test(const struct alarm_duty *d,
                             const struct vg_repl_alarm_change *ch, char *errmsg)
{
    const char *name = d->n->cfg->test_refuse_alarm;
    unsigned cause = ch->transition.cause;

    if (name[0] == '\0' || strcmp(ch->alarm, name) != 0 || !ch->has_transition ||
        !(cause == VG_REPL_ALARM_CAUSE_ACKED || cause == VG_REPL_ALARM_CAUSE_SHELVED ||
          cause == VG_REPL_ALARM_CAUSE_UNSHELVED || cause == VG_REPL_ALARM_CAUSE_OOS ||
          cause == VG_REPL_ALARM_CAUSE_IN_SERVICE)) {
        return false;
    }
    vg_errf(errmsg, "alarm change of '%s' refused for a test "
                    "(--test-refuse-alarm-change)", ch->alarm);
    return true;
}

/* Append CH, encoded, to the queue of changes to propose. A change that
 * cannot be encoded (out of memory, or past a limit of the format, which
 * apply would refuse as well) is never committed, while the engine already
 * made it: the engine is then rebuilt from the table (d->rebuild). */
static void pending_add(struct alarm_duty *d, const struct vg_repl_alarm_change *ch)
{
    size_t before = d->pending.len;
    char errmsg[VG_ERRMSG_SIZE];

    if (d->n_pending == d->cap_pending) {
        size_t cap = d->cap_pending ? 2 * d->cap_pending : 256;
        size_t *e = realloc(d->pending_end, cap * sizeof *e);
        if (e == NULL) {
            vg_errf(d->refused, "out of memory queueing an alarm change");
            d->rebuild = true;
            return;
        }
        d->pending_end = e;
        d->cap_pending = cap;
    }
    if (refused_for_test(d, ch, errmsg) ||
        vg_repl_alarm_change_encode(&d->pending, ch, errmsg) != VG_OK) {
        node_log(d->n, "alarms: a change cannot be committed (%s); the alarm "
                       "states are read again from the replicated table",
                 errmsg);
        vg_errf(d->refused, "%s", errmsg);
        d->pending.len = before;
        d->pending.nomem = false;
        d->rebuild = true;
        return;
    }
    d->pending_end[d->n_pending++] = d->pending.len;
    d->appended++;
}

/* Queue one change of a project alarm or a system alarm: ST NULL for none
 * (removed), T NULL for bookkeeping only. */
static void queue_change(struct alarm_duty *d, struct vg_repl_alarm_change *ch,
                         const struct vg_alarm_state *st,
                         const struct vg_alarm_transition *t)
{
    ch->removed = st == NULL;
    if (st != NULL) {
        change_state(ch, st);
    }
    if (t != NULL) {
        change_transition(d, ch, t);
    }
    pending_add(d, ch);
}

static void engine_cb(void *data, size_t a, const struct vg_alarm_state *st,
                      const struct vg_alarm_transition *t)
{
    struct alarm_duty *d = data;
    const struct vg_project *pr = d->pr;
    const struct vg_alarm *def = &pr->alarms[a];
    const struct node_tag_value *values = NULL;
    struct vg_repl_alarm_change ch;
    uint64_t version;

    d->deadline_dirty = true;
    memset(&ch, 0, sizeof ch);
    ch.alarm = def->name;
    ch.tag = def->tag.index >= 0 ? pr->tags[def->tag.index].name : NULL;
    ch.section = alarm_section(pr, a);
    ch.priority = (unsigned)def->priority;
    alarm_message(pr, a, &ch);
    if (t != NULL && node_plc_project(d->n, &version, &values) == pr &&
        def->tag.index >= 0 && values[def->tag.index].quality == VG_PLC_GOOD) {
        ch.transition.has_value = true;
        ch.transition.value = values[def->tag.index].value;
    }
    queue_change(d, &ch, st, t);
}

static int cmp_by_name(const void *a, const void *b, void *arg)
{
    const struct vg_project *pr = arg;
    return strcmp(pr->alarms[*(const size_t *)a].name,
                  pr->alarms[*(const size_t *)b].name);
}

/* Project alarm named NAME, or -1. */
static long find_alarm(struct alarm_duty *d, const char *name)
{
    size_t lo = 0, hi = d->pr->n_alarms;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(name, d->pr->alarms[d->by_name[mid]].name);
        if (c == 0) {
            return (long)d->by_name[mid];
        }
        if (c < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return -1;
}

static struct sys_alarm *find_sys(struct alarm_duty *d, const char *name)
{
    for (size_t i = 0; i < d->n_sys; i++) {
        if (strcmp(d->sys[i].name, name) == 0) {
            return &d->sys[i];
        }
    }
    return NULL;
}

/* ----------------------------------------------------------- lifecycle */

/* Answer OP (taken off the list): committed at INDEX when CODE is NULL,
 * otherwise refused with CODE, WHY. */
static void op_answer(struct alarm_duty *d, struct alarm_op *op, uint64_t index,
                      const char *code, const char *why)
{
    if (code == NULL && op->noop && d->rebuild) {
        /* "Unchanged" was judged on an engine that ran ahead of a
         * change that will never be committed. */
        node_send_error(op->c, op->id, "unavailable",
                        "an earlier alarm change was not committed; nothing "
                        "was changed, send it again in a moment");
    } else if (code == NULL) {
        json_object_set_new(op->answer, "index",
                            op->noop ? json_null() : json_integer((json_int_t)index));
        node_send(op->c, op->answer);
        op->answer = NULL;
    } else {
        node_send_error(op->c, op->id, code, "%s", why);
    }
    json_decref(op->answer);
    node_conn_unref(op->c);
    free(op);
}

/* Answer every waiting action whose changes end at or before SEQ_END:
 * committed at INDEX when CODE is NULL, otherwise refused with CODE. */
static void ops_answer(struct alarm_duty *d, uint64_t seq_end, uint64_t index,
                       const char *code, const char *why)
{
    node_cork(d->n);
    while (d->ops_head != NULL && d->ops_head->seq_end <= seq_end) {
        struct alarm_op *op = d->ops_head;
        d->ops_head = op->next;
        if (d->ops_head == NULL) {
            d->ops_tail = NULL;
        }
        op_answer(d, op, index, code, why);
    }
    node_uncork(d->n);
}

/* Refuse with CODE, WHY every waiting action with a change that was never
 * proposed: none of its changes reaches the log (the queue is dropped), so
 * "nothing was changed" is true of it. The others (the list is in seq_end
 * order, so they come first) keep waiting: their changes are in libraft's
 * hands and may still be committed, and the proposals' callbacks answer
 * them with what happened (flush_cb). Returns how many still wait. */
static size_t ops_refuse_unproposed(struct alarm_duty *d, const char *code,
                                    const char *why)
{
    struct alarm_op **link = &d->ops_head, *last = NULL, *rest;
    size_t waiting = 0;

    if (d->in_flight == 0) {
        /* No callback is to come: whatever waits now never gets one. */
        ops_answer(d, UINT64_MAX, 0, code, why);
        return 0;
    }
    while (*link != NULL && (*link)->seq_end <= d->proposed) {
        last = *link;
        link = &last->next;
        waiting++;
    }
    rest = *link;
    *link = NULL;
    d->ops_tail = last;
    node_cork(d->n);
    while (rest != NULL) {
        struct alarm_op *op = rest;
        rest = op->next;
        op_answer(d, op, 0, code, why);
    }
    node_uncork(d->n);
    return waiting;
}

static void stored_free(struct alarm_duty *d)
{
    for (size_t i = 0; i < d->n_stored; i++) {
        free(d->stored[i].name);
    }
    free(d->stored);
    d->stored = NULL;
    d->n_stored = 0;
}

#define LOST "leadership lost before the alarm action was proposed; nothing " \
             "was changed, send it again to the new leader"

/* Back to PHASE_IDLE: from any phase, a restore half done included. Actions
 * with a change never proposed are answered CODE, WHY; actions whose
 * changes are all proposed wait for their commands' callbacks, which come
 * whatever the duty does next (libraft fails a deposed leader's proposals;
 * the restore of the next engine waits for them). Answering those "nothing
 * was changed" too, as before, was wrong when the command then committed:
 * the operator heard his ack had failed while every station showed the
 * alarm acknowledged (tests/integration/cluster_alarm_reload.py). */
static void duty_stop(struct alarm_duty *d, const char *code, const char *why)
{
    /* Changes never proposed are dropped: their actions did not happen.
     * The next engine is read from the table once what is in flight is
     * applied: none of its state waits for a commit. */
    size_t waiting = ops_refuse_unproposed(d, code, why);
    if (waiting > 0) {
        node_log(d->n, "alarms: engine stopped; %zu operator action(s) wait for "
                       "the %u command(s) in flight that hold their changes",
                 waiting, d->in_flight);
    }
    d->appended = d->proposed;
    d->committed = d->appended;
    d->phase = PHASE_IDLE;
    vg_alarm_engine_free(d->engine);
    d->engine = NULL;
    d->pr = NULL;
    free(d->by_name);
    d->by_name = NULL;
    d->pending.len = 0;
    d->pending.nomem = false;
    d->n_pending = d->pending_first = 0;
    stored_free(d);
    free(d->sys);
    d->sys = NULL;
    d->n_sys = 0;
    free(d->seen_id);
    free(d->seen_ms);
    d->seen_id = d->seen_ms = NULL;
    d->n_seen = 0;
    d->rebuild = false;
    d->deadline_dirty = true;
    d->evaluating_since_ms = 0;
    if (d->timer_armed) {
        uv_timer_stop(&d->timer);
        d->timer_armed = false;
    }
}

static void timer_cb(uv_timer_t *h)
{
    /* Nothing to do here: the loop's prepare step that follows runs
     * node_alarms_update, which ticks what fell due. */
    struct alarm_duty *d = h->data;
    d->timer_armed = false;
}

/* Build the engine for PR, all alarms in their initial state, and begin
 * restoring the committed states (PHASE_RESTORE). */
static void duty_start(struct alarm_duty *d, const struct vg_project *pr,
                       uint64_t version)
{
    struct node *n = d->n;
    char errmsg[VG_ERRMSG_SIZE];

    /* In the same term the engine is started again, not handed over. */
    if (d->phase != PHASE_IDLE && d->term == n->lead.term) {
        duty_stop(d, "unavailable",
                  d->rebuild ? "the alarm engine is read again from the replicated "
                               "table (a change was not committed) before the alarm "
                               "action was; nothing was changed, send it again in a "
                               "moment"
                             : "another project version became active before the "
                               "alarm action was proposed; nothing was changed, "
                               "send it again in a moment");
    } else {
        duty_stop(d, "not_leader", LOST);
    }
    d->restore_start_ns = uv_hrtime();
    if (vg_alarm_engine_new(pr, &d->engine, errmsg) != VG_OK) {
        node_log(n, "alarms: cannot build the engine: %s", errmsg);
        return;
    }
    d->pr = pr;
    d->version = version;
    d->term = n->lead.term;
    d->by_name = calloc(pr->n_alarms + 1, sizeof *d->by_name);
    if (d->by_name == NULL) {
        node_log(n, "alarms: out of memory building the engine");
        duty_stop(d, "unavailable", "out of memory building the alarm engine");
        return;
    }
    for (size_t i = 0; i < pr->n_alarms; i++) {
        d->by_name[i] = i;
    }
    qsort_r(d->by_name, pr->n_alarms, sizeof *d->by_name, cmp_by_name, (void *)pr);
    d->phase = PHASE_RESTORE;
    d->cursor[0] = '\0';
    d->feed_next = 0;
    d->restored = d->removed = 0;
    d->restore_iterations = 0;
    node_log(n, "alarms: restoring the states of %zu alarm(s) of project version "
                "%llu in term %llu",
             pr->n_alarms, (unsigned long long)version, (unsigned long long)d->term);
}

/* One stored row that cannot be continued (its alarm left the project, or
 * its state is unusable) goes, and an alarm still shown to operators leaves
 * with a journal entry. */
static void queue_removal(struct alarm_duty *d, const struct vg_repl_alarm_row *row,
                          uint64_t now)
{
    json_t *message = row->message != NULL ? json_loads(row->message, 0, NULL) : NULL;
    struct vg_repl_alarm_change ch;

    memset(&ch, 0, sizeof ch);
    ch.alarm = row->alarm;
    ch.removed = true;
    ch.tag = row->tag;
    ch.section = row->section;
    ch.priority = row->priority > 0 && row->priority <= 4 ? (unsigned)row->priority : 0;
    if (json_is_object(message)) {
        const char *lang;
        json_t *text;
        ch.has_message = true;
        json_object_foreach(message, lang, text) {
            if (ch.n_message < VG_REPL_ALARM_LANGS_MAX && json_is_string(text)) {
                ch.lang[ch.n_message] = lang;
                ch.text[ch.n_message++] = json_string_value(text);
            }
        }
    }
    if (row->readable && strcmp(row->status, "normal") != 0) {
        int from = vg_repl_alarm_status_code(row->status);
        ch.has_transition = true;
        ch.transition.cause = VG_REPL_ALARM_CAUSE_REMOVED;
        ch.transition.from = from >= 0 ? (unsigned)from : VG_REPL_ALARM_STATUS_COUNT;
        ch.transition.to = VG_REPL_ALARM_STATUS_NORMAL;
        ch.transition.at_ms = now;
    }
    pending_add(d, &ch);
    json_decref(message);
    d->removed++;
}

/* A stored system alarm, kept for sys_get (the few there are). */
static void stored_add(struct alarm_duty *d, const struct vg_repl_alarm_row *row)
{
    struct stored_sys *s = realloc(d->stored, (d->n_stored + 1) * sizeof *s);
    char errmsg[VG_ERRMSG_SIZE];

    if (s == NULL) {
        return; /* it starts afresh, as if it had not been stored */
    }
    d->stored = s;
    s = &d->stored[d->n_stored];
    if ((s->name = strdup(row->alarm)) == NULL) {
        return;
    }
    s->usable = row_state(row, &s->st, errmsg);
    d->n_stored++;
}

struct restore_slice {
    struct alarm_duty *d;
    uint64_t end_ns;   /* the iteration's budget ends here */
    uint64_t now;      /* wall clock for removal entries */
    size_t rows;
    bool out_of_time;
};

static bool restore_row_cb(void *data, const struct vg_repl_alarm_row *row)
{
    struct restore_slice *x = data;
    struct alarm_duty *d = x->d;
    char errmsg[VG_ERRMSG_SIZE];
    struct vg_alarm_state st;
    size_t len = strlen(row->alarm);
    long a = -1;

    /* Names are at most NAME_MAX_BYTES (apply checks); the next slice
     * starts after this one. */
    memcpy(d->cursor, row->alarm, len < NAME_MAX_BYTES ? len : NAME_MAX_BYTES);
    d->cursor[len < NAME_MAX_BYTES ? len : NAME_MAX_BYTES] = '\0';
    if (row->alarm[0] == '$') {
        stored_add(d, row);
    } else if ((a = find_alarm(d, row->alarm)) >= 0 && row_state(row, &st, errmsg) &&
               vg_alarm_engine_restore(d->engine, (size_t)a, &st, errmsg) == VG_OK) {
        d->restored++;
    } else {
        if (a >= 0) {
            node_log(d->n, "alarms: stored state of %s not usable (%s); it starts "
                           "afresh", row->alarm, errmsg);
        }
        queue_removal(d, row, x->now);
    }
    if (++x->rows % RESTORE_CHECK == 0 && uv_hrtime() >= x->end_ns) {
        x->out_of_time = true;
        return false;
    }
    return true;
}

/* Go on restoring until the budget that ends at END_NS is spent: stored
 * states first, then the readings the pollers hold (VALUES), then live. */
static void restore_step(struct alarm_duty *d, const struct node_tag_value *values,
                         uint64_t end_ns)
{
    struct node *n = d->n;
    uint64_t now = duty_now(d);

    d->restore_iterations++;
    while (d->phase == PHASE_RESTORE) {
        struct restore_slice x = {.d = d, .end_ns = end_ns, .now = now};
        size_t got = 0;

        if (uv_hrtime() >= end_ns) {
            return;
        }
        if (vg_repl_fsm_alarm_states_scan(&n->fsm,
                                          d->cursor[0] != '\0' ? d->cursor : NULL,
                                          RESTORE_SLICE, restore_row_cb, &x,
                                          &got) != VG_OK) {
            /* Abandoned; the next iteration starts over. */
            node_log(n, "alarms: cannot read the stored states: %s", n->fsm.errmsg);
            duty_stop(d, "unavailable", "the stored alarm states cannot be read");
            return;
        }
        if (!x.out_of_time && got < RESTORE_SLICE) {
            d->phase = PHASE_FEED;
        }
    }
    /* What the pollers already read. A tag is fed once; readings of tags
     * already fed go to the engine as they come (node_alarms_changed), the
     * others wait in VALUES, which always holds the latest. */
    while (d->feed_next < d->pr->n_tags) {
        size_t t = d->feed_next++;
        if (values[t].quality >= 0) {
            vg_alarm_engine_update(d->engine, t, values[t].value,
                                   values[t].quality == VG_PLC_GOOD, now, engine_cb,
                                   d);
        }
        if (d->feed_next % RESTORE_CHECK == 0 && uv_hrtime() >= end_ns) {
            return;
        }
    }
    d->phase = PHASE_LIVE;
    d->deadline_dirty = true;
    d->evaluating_since_ms = now;
    d->restore_ms = (uv_hrtime() - d->restore_start_ns) / 1000000u;
    node_log(n, "alarms: evaluating %zu alarm(s) of project version %llu in term "
                "%llu (%zu state(s) restored, %zu removed, in %llu ms and %u loop "
                "iteration(s))",
             d->pr->n_alarms, (unsigned long long)d->version,
             (unsigned long long)d->term, d->restored, d->removed,
             (unsigned long long)d->restore_ms, d->restore_iterations);
}

/* ----------------------------------------------------------- proposing */

static void flush_cb(struct vg_repl_proposal *p, int status, uint64_t index,
                     int result)
{
    struct alarm_duty *d = p->data;
    uint64_t seq_end = ((struct chunk_prop *)p)->seq_end;

    d->in_flight--;
    if (status == 0 && result == VG_OK && seq_end > d->committed) {
        d->committed = seq_end;
    }
    if (status != 0) {
        ops_answer(d, seq_end, 0, "not_leader",
                   "leadership lost before the alarm action was known to be "
                   "committed; the new leader may still commit it: send it again "
                   "there (an alarm already acknowledged is answered unchanged)");
    } else if (result != VG_OK) {
        ops_answer(d, seq_end, 0, "failed",
                   "the cluster rejected the alarm changes");
    } else {
        ops_answer(d, seq_end, index, NULL, NULL);
    }
    if ((status != 0 || result != VG_OK) && d->engine != NULL) {
        /* The engine ran ahead of a change that will never be committed. */
        d->rebuild = true;
    }
    free(p);
}

/* Propose the K queued changes from FIRST as one command. */
static int propose_changes(struct alarm_duty *d, size_t first, size_t k,
                           struct vg_repl_proposal *p, vg_repl_proposal_cb cb)
{
    size_t from = first > 0 ? d->pending_end[first - 1] : 0;
    size_t to = d->pending_end[first + k - 1];
    unsigned char *body;
    size_t len;
    int rv = vg_repl_alarm_changes_body(d->pending.p + from, to - from, k, &body, &len);

    if (rv != VG_OK) {
        return rv;
    }
    rv = vg_repl_propose_bytes(&d->n->lead, p, VG_CMD_ALARM_CHANGES, body, len, cb);
    free(body);
    if (rv == VG_OK) {
        d->in_flight++;
    }
    return rv;
}

/* Propose queued changes, in order, while fewer than ALARMS_IN_FLIGHT
 * commands wait for their commit; the rest wait in the queue for a later
 * iteration. libraft applies every committed entry in one go on the loop,
 * so this bounds how long one iteration can spend applying alarm changes
 * (20 000 alarms raised at once were 20 commands applied back to back,
 * long enough to miss heartbeats and lose leadership: now at most
 * ALARMS_IN_FLIGHT * CHANGES_PER_CMD changes per iteration); an ack queued
 * meanwhile goes out with the next command, so the bound costs no
 * throughput while commands are full. */
static void flush(struct alarm_duty *d)
{
    while (d->pending_first < d->n_pending && d->in_flight < ALARMS_IN_FLIGHT) {
        size_t k = d->n_pending - d->pending_first;
        size_t from = d->pending_first > 0 ? d->pending_end[d->pending_first - 1] : 0;
        struct chunk_prop *cp = calloc(1, sizeof *cp);
        int rv;

        if (k > CHANGES_PER_CMD) {
            k = CHANGES_PER_CMD;
        }
        /* And what fits one command's body (2 bytes of count, then the
         * changes): changes that carry long messages in several languages
         * weigh KBs each, and 1024 of them were refused as a whole (the
         * engine then rebuilt again and again). 512 of the heaviest the
         * validator allows (some 8.3 KB) fit; this keeps it so should
         * changes grow. One change always fits (pending_add keeps it
         * within the format's limits). */
        while (k > 1 && d->pending_end[d->pending_first + k - 1] - from + 2 >
                            VG_CMD_MAX_BODY) {
            k--;
        }
        if (cp != NULL) {
            cp->p.data = d;
            cp->seq_end = d->proposed + k;
        }
        if (cp == NULL ||
            (rv = propose_changes(d, d->pending_first, k, &cp->p, flush_cb)) != VG_OK) {
            node_log(d->n, "alarms: %zu change(s) could not be proposed (%s); the "
                           "alarm states are read again from the replicated table",
                     k, cp == NULL ? "out of memory" : vg_strerror(rv));
            free(cp);
            d->pending_first += k;
            d->proposed += k;
            d->rebuild = true;
            ops_answer(d, d->proposed, 0, "failed",
                       "cannot submit the alarm changes (not leader any more, or "
                       "out of memory)");
            continue;
        }
        d->pending_first += k;
        d->proposed += k;
    }
    /* Drop what was proposed, once per flush rather than once per command. */
    if (d->pending_first > 0) {
        size_t off = d->pending_end[d->pending_first - 1];
        size_t left = d->n_pending - d->pending_first;
        memmove(d->pending.p, d->pending.p + off, d->pending.len - off);
        d->pending.len -= off;
        for (size_t i = 0; i < left; i++) {
            d->pending_end[i] = d->pending_end[d->pending_first + i] - off;
        }
        d->n_pending = left;
        d->pending_first = 0;
    }
}

/* ------------------------------------------------------ system alarms */

static struct sys_alarm *sys_get(struct alarm_duty *d, const char *name,
                                 const char *en, const char *de)
{
    struct sys_alarm *s = find_sys(d, name);

    if (s != NULL) {
        return s;
    }
    s = realloc(d->sys, (d->n_sys + 1) * sizeof *d->sys);
    if (s == NULL) {
        return NULL;
    }
    d->sys = s;
    s = &d->sys[d->n_sys++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    snprintf(s->text_en, sizeof s->text_en, "%s", en);
    snprintf(s->text_de, sizeof s->text_de, "%s", de);
    s->def.name = s->name;
    s->def.kind = VG_ALARM_DIGITAL_ON;
    s->def.priority = VG_PRIO_HIGH;
    s->def.tag.index = -1;
    s->def.section.index = -1;
    s->def.reference.index = -1;
    vg_alarm_state_init(&s->st);
    for (size_t i = 0; i < d->n_stored; i++) {
        if (strcmp(d->stored[i].name, name) == 0) {
            if (d->stored[i].usable) {
                s->st = d->stored[i].st;
            }
            break;
        }
    }
    return s;
}

/* A change of system alarm S (no tag, no section, English and German). */
static void sys_change(const struct sys_alarm *s, struct vg_repl_alarm_change *ch)
{
    memset(ch, 0, sizeof *ch);
    ch->alarm = s->name;
    ch->priority = (unsigned)s->def.priority;
    ch->has_message = true;
    ch->n_message = 2;
    ch->lang[0] = "en";
    ch->text[0] = s->text_en;
    ch->lang[1] = "de";
    ch->text[1] = s->text_de;
}

static void sys_report(struct alarm_duty *d, struct sys_alarm *s,
                       const struct vg_alarm_transition *t, unsigned nt,
                       const struct vg_alarm_state *before)
{
    struct vg_repl_alarm_change ch;
    if (nt == 0 && vg_alarm_state_equal(before, &s->st)) {
        return;
    }
    if (nt == 0) {
        sys_change(s, &ch);
        queue_change(d, &ch, &s->st, NULL);
    }
    for (unsigned i = 0; i < nt; i++) {
        sys_change(s, &ch);
        queue_change(d, &ch, &s->st, &t[i]);
    }
}

/* Feed one system alarm: VALUE 1 = the problem exists; QUALITY NONE = not
 * known yet. */
static void sys_feed(struct alarm_duty *d, struct sys_alarm *s, double value,
                     enum vg_alarm_quality q, unsigned on_delay_ms, uint64_t now)
{
    struct vg_alarm_input in = {.tag = {.value = value, .quality = q}};
    struct vg_alarm_transition t[VG_ALARM_STEP_MAX];
    struct vg_alarm_state before = s->st;
    unsigned nt;

    s->def.on_delay_ms = on_delay_ms;
    nt = vg_alarm_step(&s->def, &s->st, &in, now, t);
    sys_report(d, s, t, nt, &before);
}

static void sys_update(struct alarm_duty *d, uint64_t now)
{
    struct node *n = d->n;
    const struct vg_project *pr = d->pr;
    struct raft *r = &n->raft;
    char name[96], en[200], de[200];

    /* PLC unreachable. */
    for (size_t i = 0; i < pr->n_plcs; i++) {
        struct vg_plc_poller_status st;
        raft_term pterm = 0;
        struct vg_plc_poller *p = node_plc_poller(n, i, &pterm);
        struct sys_alarm *s;
        enum vg_alarm_quality q = VG_ALARM_Q_NONE;
        double v = 0;

        snprintf(name, sizeof name, "$plc.%s", pr->plcs[i].name);
        snprintf(en, sizeof en, "PLC %s (%s:%d) unreachable", pr->plcs[i].name,
                 pr->plcs[i].host, pr->plcs[i].port);
        snprintf(de, sizeof de, "SPS %s (%s:%d) nicht erreichbar",
                 pr->plcs[i].name, pr->plcs[i].host, pr->plcs[i].port);
        if ((s = sys_get(d, name, en, de)) == NULL) {
            continue;
        }
        if (p != NULL) {
            vg_plc_poller_status(p, &st);
            if (st.connected) {
                q = VG_ALARM_Q_GOOD;
            } else if (st.comm_failures > 0) {
                q = VG_ALARM_Q_GOOD;
                v = 1;
            }
        }
        sys_feed(d, s, v, q, PLC_ALARM_DELAY_MS, now);
    }
    /* Node down: a voter the leader has not heard from. libraft resets
     * recent_recv at every election timeout, so remember when it was last
     * seen set. */
    if (r->state == RAFT_LEADER && r->leader_state.progress != NULL) {
        for (unsigned i = 0; i < r->configuration.n; i++) {
            const struct raft_server *srv = &r->configuration.servers[i];
            struct sys_alarm *s;
            size_t k;

            if (srv->id == n->cfg->id || srv->role != RAFT_VOTER) {
                continue;
            }
            for (k = 0; k < d->n_seen && d->seen_id[k] != srv->id; k++) {
            }
            if (k == d->n_seen) {
                uint64_t *ids = realloc(d->seen_id, (k + 1) * sizeof *ids);
                uint64_t *ms = ids != NULL ? realloc(d->seen_ms, (k + 1) * sizeof *ms)
                                           : NULL;
                if (ids != NULL) {
                    d->seen_id = ids;
                }
                if (ms == NULL) {
                    continue;
                }
                d->seen_ms = ms;
                d->seen_id[k] = srv->id;
                d->seen_ms[k] = now;
                d->n_seen++;
            }
            if (r->leader_state.progress[i].recent_recv) {
                d->seen_ms[k] = now;
            }
            snprintf(name, sizeof name, "$node.%llu", (unsigned long long)srv->id);
            snprintf(en, sizeof en, "Cluster node %llu (%s) down",
                     (unsigned long long)srv->id, srv->address);
            snprintf(de, sizeof de, "Clusterknoten %llu (%s) ausgefallen",
                     (unsigned long long)srv->id, srv->address);
            if ((s = sys_get(d, name, en, de)) == NULL) {
                continue;
            }
            sys_feed(d, s,
                     now - d->seen_ms[k] >
                             (uint64_t)NODE_DOWN_TIMEOUTS *
                                 n->cfg->election_timeout_ms,
                     VG_ALARM_Q_GOOD, 0, now);
        }
    }
    /* A member's replica diverged: the leader's own verdict, and every other
     * member's as it last reported it (peers.c). Raised on "diverged",
     * cleared on "ok" (after a rebuild); a verdict not known (no checkpoint
     * compared yet, or a member that does not answer: $node.ID covers that)
     * leaves the alarm as it is. Every member keeps its alarm alive so that
     * a stored one is not removed. */
    for (unsigned i = 0; i < r->configuration.n; i++) {
        uint64_t id = r->configuration.servers[i].id;
        int verdict = id == n->cfg->id ? n->fsm.verdict : node_peers_verdict(n, id);
        struct sys_alarm *s;
        snprintf(name, sizeof name, "$replica.%llu", (unsigned long long)id);
        snprintf(en, sizeof en, "Replica of node %llu diverged from the cluster",
                 (unsigned long long)id);
        snprintf(de, sizeof de, "Replikat von Knoten %llu weicht vom Cluster ab",
                 (unsigned long long)id);
        if ((s = sys_get(d, name, en, de)) != NULL &&
            verdict != VG_VERDICT_UNKNOWN) {
            sys_feed(d, s, verdict == VG_VERDICT_DIVERGED, VG_ALARM_Q_GOOD, 0, now);
        }
    }
    /* Stored system alarms nothing asks for any more (a PLC or node that is
     * gone) leave like removed project alarms. */
    for (size_t i = 0; i < d->n_stored;) {
        struct stored_sys *gone = &d->stored[i];
        bool shown_now = gone->usable && gone->st.status != VG_ALARM_NORMAL;
        struct vg_repl_alarm_change ch;

        if (find_sys(d, gone->name) != NULL) {
            i++;
            continue;
        }
        memset(&ch, 0, sizeof ch);
        ch.alarm = gone->name;
        ch.removed = true;
        if (shown_now) {
            int from = vg_repl_alarm_status_code(vg_alarm_status_name(gone->st.status));
            ch.has_transition = true;
            ch.transition.cause = VG_REPL_ALARM_CAUSE_REMOVED;
            ch.transition.from = from >= 0 ? (unsigned)from : VG_REPL_ALARM_STATUS_COUNT;
            ch.transition.to = VG_REPL_ALARM_STATUS_NORMAL;
            ch.transition.at_ms = now;
        }
        pending_add(d, &ch);
        free(gone->name);
        d->stored[i] = d->stored[--d->n_stored];
    }
}

static uint64_t sys_deadline(struct alarm_duty *d)
{
    uint64_t next = VG_ALARM_NEVER;
    for (size_t i = 0; i < d->n_sys; i++) {
        uint64_t t = vg_alarm_next_deadline(&d->sys[i].def, &d->sys[i].st);
        if (t < next) {
            next = t;
        }
    }
    return next;
}

static void sys_tick(struct alarm_duty *d, uint64_t now)
{
    for (size_t i = 0; i < d->n_sys; i++) {
        struct sys_alarm *s = &d->sys[i];
        struct vg_alarm_transition t[VG_ALARM_STEP_MAX];
        struct vg_alarm_state before = s->st;
        unsigned nt;
        if (vg_alarm_next_deadline(&s->def, &s->st) > now) {
            continue;
        }
        nt = vg_alarm_tick(&s->def, &s->st, now, t);
        sys_report(d, s, t, nt, &before);
    }
}

/* ------------------------------------------------------- loop iteration */

void node_alarms_update(struct node *n)
{
    struct alarm_duty *d = n->alarms;
    const struct node_tag_value *values;
    const struct vg_project *pr;
    uint64_t version = 0, now, next;
    uint64_t start_ns = uv_hrtime();

    if (d == NULL) {
        return;
    }
    pr = n->lead.ready ? node_plc_project(n, &version, &values) : NULL;
    if (pr == NULL) {
        if (d->phase != PHASE_IDLE && n->lead.ready) {
            /* Still the leader: the poller set is being replaced (another
             * project version) or stopped. */
            duty_stop(d, "unavailable",
                      "the alarm engine stopped (another project version is being "
                      "prepared, or the project cannot be polled) before the alarm "
                      "action was proposed; nothing was changed, send it again in "
                      "a moment");
        } else if (d->phase != PHASE_IDLE) {
            duty_stop(d, "not_leader", LOST);
        }
        return;
    }
    if (d->phase == PHASE_IDLE || d->pr != pr || d->version != version ||
        d->term != n->lead.term || (d->rebuild && d->in_flight == 0)) {
        duty_start(d, pr, version);
        if (d->phase == PHASE_IDLE) {
            return;
        }
        d->step_iteration = n->loop_stats.iterations - 1;
    }
    if (d->phase == PHASE_RESTORE || d->phase == PHASE_FEED) {
        /* Commands of this node still in flight change the table: read it
         * once they are applied (their callbacks wake the loop). */
        bool waiting = d->phase == PHASE_RESTORE && d->cursor[0] == '\0' &&
                       d->in_flight > 0;
        /* One step per loop iteration, whoever calls (prepare, the node's
         * timer, a request): the budget is per iteration. */
        if (!waiting && d->step_iteration != n->loop_stats.iterations) {
            d->step_iteration = n->loop_stats.iterations;
            restore_step(d, values, start_ns + RESTORE_BUDGET_MS * 1000000u);
        }
        flush(d);
        if (d->phase != PHASE_LIVE) {
            if (d->timer_armed) {
                uv_timer_stop(&d->timer);
                d->timer_armed = false;
            }
            if (!waiting && d->phase != PHASE_IDLE) {
                /* Come back at once: the loop polls I/O (heartbeats,
                 * requests) without sleeping, then the next step. */
                uv_timer_start(&d->timer, timer_cb, 0, 0);
                d->timer_armed = true;
            }
            return;
        }
    }
    now = duty_now(d);
    /* next_deadline is O(alarms): computed again only after the engine
     * changed or the cached deadline came. */
    if (d->deadline_dirty || d->engine_deadline <= now) {
        if (vg_alarm_engine_next_deadline(d->engine) <= now) {
            vg_alarm_engine_tick(d->engine, now, engine_cb, d);
        }
        d->engine_deadline = vg_alarm_engine_next_deadline(d->engine);
        d->deadline_dirty = false;
    }
    if (now >= d->next_sys_ms) {
        d->next_sys_ms = now + SYS_EVERY_MS;
        sys_update(d, now);
    } else {
        sys_tick(d, now);
    }
    flush(d);
    next = d->engine_deadline;
    {
        uint64_t sys_next = sys_deadline(d);
        next = sys_next < next ? sys_next : next;
    }
    if (d->next_sys_ms < next) {
        next = d->next_sys_ms;
    }
    if (d->timer_armed) {
        uv_timer_stop(&d->timer);
    }
    uv_timer_start(&d->timer, timer_cb, next > now ? next - now : 0, 0);
    d->timer_armed = true;
}

void node_alarms_changed(struct node *n, const struct vg_plc_change *v,
                         size_t count)
{
    struct alarm_duty *d = n->alarms;
    const struct node_tag_value *values;
    uint64_t now, version = 0;

    /* Not before the states are restored (the reading stays in the values
     * and is fed with them), and only readings of the engine's project. */
    if (d == NULL || !n->lead.ready ||
        (d->phase != PHASE_LIVE && d->phase != PHASE_FEED) ||
        node_plc_project(n, &version, &values) != d->pr || version != d->version) {
        return;
    }
    now = duty_now(d);
    for (size_t i = 0; i < count; i++) {
        if (d->phase == PHASE_FEED && v[i].tag >= d->feed_next) {
            continue; /* fed later from the values, which hold this reading */
        }
        vg_alarm_engine_update(d->engine, v[i].tag, v[i].value,
                               v[i].quality == VG_PLC_GOOD, now, engine_cb, d);
    }
    /* Proposed by the next loop iteration, together with whatever else
     * this iteration brings. */
}

/* ------------------------------------------------------------ entries */

/* What a station is shown of one alarm: the state's fields flattened,
 * plus name, tag, section, priority and message. */
static json_t *entry(const char *name, json_t *state, json_t *tag,
                     json_t *section, json_t *priority, json_t *message)
{
    json_t *e = json_object();
    json_object_set_new(e, "alarm", json_string(name));
    if (json_is_object(state)) {
        json_object_update(e, state);
        json_object_del(e, "pending");
        json_object_del(e, "pending_since_ms");
    }
    json_object_set(e, "tag", tag != NULL ? tag : json_null());
    json_object_set(e, "section", section != NULL ? section : json_null());
    json_object_set(e, "priority", priority != NULL ? priority : json_null());
    json_object_set(e, "message", message != NULL ? message : json_null());
    return e;
}

/* Worth showing: not normal, or suppressed. */
static bool shown(json_t *state)
{
    const char *status = json_string_value(json_object_get(state, "status"));
    return (status != NULL && strcmp(status, "normal") != 0) ||
           json_is_true(json_object_get(state, "shelved")) ||
           json_is_true(json_object_get(state, "out_of_service"));
}

/* Whether subscription S wants alarm NAME of SECTION (NULL: none) and
 * PRIORITY (0: none). */
static bool sub_wants(const struct alarm_sub *s, const char *name,
                      const char *section, unsigned priority)
{
    if (s->max_priority > 0 && priority > s->max_priority) {
        return false;
    }
    if (s->sections == NULL || name[0] == '$') {
        return true; /* system alarms concern every section */
    }
    return section != NULL && json_object_get(s->sections, section) != NULL;
}

/* ------------------------------------------------------------ requests */

/* SECTIONS (array of names, may be NULL) expanded to every section below
 * them, as an object used as a set; NULL for "all". False after answering
 * C when a name is unknown. */
static bool sections_expand(struct node *n, struct conn *c, long long id,
                            const char *type, json_t *msg, json_t **out)
{
    json_t *a = json_object_get(msg, "sections");
    const struct vg_project *pr;
    uint64_t version = 0;
    const struct node_tag_value *values;
    size_t i;
    json_t *v;

    *out = NULL;
    if (a == NULL || json_is_null(a)) {
        return true;
    }
    if (!json_is_array(a) || json_array_size(a) == 0 ||
        json_array_size(a) > SECTIONS_MAX) {
        node_send_error(c, id, "invalid",
                        "%s: member 'sections' must be an array of 1..%u section "
                        "names",
                        type, SECTIONS_MAX);
        return false;
    }
    pr = node_plc_project(n, &version, &values);
    *out = json_object();
    json_array_foreach(a, i, v) {
        int s = json_is_string(v) && pr != NULL
                    ? vg_project_find_section(pr, json_string_value(v))
                    : -1;
        if (!json_is_string(v)) {
            node_send_error(c, id, "invalid", "%s: sections[%zu] must be a name",
                            type, i);
            json_decref(*out);
            *out = NULL;
            return false;
        }
        if (pr != NULL && s < 0) {
            node_send_error(c, id, "invalid",
                            "%s: unknown section '%s' in project version %llu",
                            type, json_string_value(v), (unsigned long long)version);
            json_decref(*out);
            *out = NULL;
            return false;
        }
        json_object_set_new(*out, json_string_value(v), json_true());
    }
    /* Children: every section whose chain of parents reaches a named one. */
    for (size_t s = 0; pr != NULL && s < pr->n_sections; s++) {
        for (int p = pr->sections[s].parent; p >= 0; p = pr->sections[p].parent) {
            if (json_object_get(*out, pr->sections[p].name) != NULL) {
                json_object_set_new(*out, pr->sections[s].name, json_true());
                break;
            }
        }
    }
    return true;
}

/* Whether D evaluates the alarms of the version polled right now. */
static bool duty_live(struct node *n, struct alarm_duty *d)
{
    const struct node_tag_value *values;
    uint64_t version = 0;
    return d != NULL && d->phase == PHASE_LIVE &&
           node_plc_project(n, &version, &values) == d->pr && version == d->version;
}

/* The engine of the ready leader, or NULL after answering C. Until the
 * restore is complete the answer is "unavailable" saying so: nothing was
 * changed, and the client library sends the action again after a back-off
 * (proto/MESSAGES.md). Without a project to poll, or with one that cannot
 * be polled, it is "failed". */
static struct alarm_duty *need_engine(struct node *n, struct conn *c, long long id)
{
    struct alarm_duty *d = n->alarms;
    char why[VG_ERRMSG_SIZE];

    if (!node_need_ready(n, c, id)) {
        return NULL;
    }
    if (d != NULL && (!duty_live(n, d) || d->rebuild)) {
        /* Start or go on with it now if this iteration has not yet: a small
         * project is then restored at once. */
        node_alarms_update(n);
    }
    if (duty_live(n, d) && !d->rebuild) {
        return d;
    }
    if (d != NULL && d->phase == PHASE_LIVE && d->rebuild) {
        /* Its engine ran ahead of a change that was not committed: an
         * action judged on it now could be answered from that change. */
        snprintf(why, sizeof why,
                 "rebuilding the alarm engine after a change that was not "
                 "committed, once %u command(s) in flight are done",
                 d->in_flight);
    } else if (d != NULL && d->phase == PHASE_RESTORE) {
        snprintf(why, sizeof why,
                 "restoring the stored alarm states of project version %llu: "
                 "%zu read so far",
                 (unsigned long long)d->version, d->restored + d->removed + d->n_stored);
    } else if (d != NULL && d->phase == PHASE_FEED) {
        snprintf(why, sizeof why,
                 "feeding the latest readings to the restored alarms: %zu of %zu "
                 "tags",
                 d->feed_next, d->pr->n_tags);
    } else {
        snprintf(why, sizeof why, "%s",
                 n->plc_error[0] ? n->plc_error
                                 : "no project loaded, or preparing to poll");
    }
    /* Restoring, or about to poll a version: soon done. Nothing to poll, or
     * a version that cannot be polled: not until someone acts. "About to
     * poll" is a project being active, not the pollers' version: a leader
     * that became ready in this iteration (its barrier applied) sets that
     * at its next prepare, and an ack read in between was answered "failed"
     * (no project loaded), which the client library does not send again
     * (cluster-alarms, takeover, failed once in a fresh clone's CI run). */
    node_send_error(c, id,
                    (d != NULL && (d->phase == PHASE_RESTORE || d->phase == PHASE_FEED ||
                                   d->rebuild)) ||
                            (n->project_notified != 0 && n->plc_error[0] == '\0')
                        ? "unavailable"
                        : "failed",
                    "node %llu does not evaluate alarms yet (%s); nothing was "
                    "changed, send it again in a moment",
                    (unsigned long long)n->cfg->id, why);
    return NULL;
}

/* Entries per answer page and per image or change event: an entry is
 * usually a few hundred bytes, a frame at most 1 MiB. But an entry carries
 * its alarm's message, up to 1024 bytes in each of up to 8 languages, so a
 * frame also holds at most FRAME_ENTRY_BYTES of entries (the rest of the
 * frame is for the envelope); a thousand such entries did not fit, and the
 * answer or event was replaced by an error. */
#define ENTRIES_PER_FRAME 1000u
#define FRAME_ENTRY_BYTES (VG_PROTO_MAX_FRAME - 64u * 1024u)

/* What entry E adds to a frame: its compact JSON and a comma. */
static size_t entry_bytes(json_t *e)
{
    return json_dumpb(e, NULL, 0, JSON_COMPACT) + 1;
}

/* Whether a frame holding N entries of BYTES can take one of MORE bytes:
 * always when empty (an entry alone fits: the validator bounds messages). */
static bool frame_takes(size_t n, size_t bytes, size_t more)
{
    return n == 0 || (n < ENTRIES_PER_FRAME && bytes + more <= FRAME_ENTRY_BYTES);
}

/* The committed alarms a station should see through S, as entries: those
 * named after AFTER (NULL: all), at most LIMIT of them, and when PAGE at
 * most a frame's worth (frame_takes); *MORE (may be NULL) tells whether
 * another one follows. Read in slices, so that a page of a long list does
 * not read and parse every stored state. */
static json_t *committed_entries(struct node *n, const struct alarm_sub *s,
                                 bool all, const char *after, size_t limit,
                                 bool page, bool *more)
{
    json_t *list = json_array();
    char *cursor = after != NULL ? strdup(after) : NULL;
    size_t bytes = 0;
    bool done = false;

    if (more != NULL) {
        *more = false;
    }
    while (!done) {
        json_t *rows = NULL, *row;
        size_t i;

        if (vg_repl_fsm_alarm_states_page(&n->fsm, cursor, 2 * ENTRIES_PER_FRAME,
                                          &rows) != VG_OK) {
            break;
        }
        done = json_array_size(rows) < 2 * ENTRIES_PER_FRAME;
        json_array_foreach(rows, i, row) {
            const char *name = json_string_value(json_object_get(row, "alarm"));
            json_t *st = json_object_get(row, "state");
            if (name == NULL || (!all && !shown(st)) ||
                !sub_wants(s, name, json_string_value(json_object_get(row, "section")),
                           (unsigned)json_integer_value(json_object_get(row, "priority")))) {
                continue;
            }
            json_t *e = entry(name, st, json_object_get(row, "tag"),
                              json_object_get(row, "section"),
                              json_object_get(row, "priority"),
                              json_object_get(row, "message"));
            size_t eb = page ? entry_bytes(e) : 0;
            if (json_array_size(list) == limit ||
                (page && !frame_takes(json_array_size(list), bytes, eb))) {
                json_decref(e);
                if (more != NULL) {
                    *more = true;
                }
                done = true;
                break;
            }
            bytes += eb;
            json_array_append_new(list, e);
        }
        if (!done && json_array_size(rows) > 0) {
            /* Apply never stores a state without a name, but a damaged
             * replica (or a page built short of memory) could hand one
             * over: the walk ends there, the node goes on. */
            const char *last = json_string_value(json_object_get(
                json_array_get(rows, json_array_size(rows) - 1), "alarm"));
            free(cursor);
            cursor = last != NULL ? strdup(last) : NULL;
            done = cursor == NULL;
        }
        json_decref(rows);
    }
    free(cursor);
    return list;
}

static bool filter_args(struct node *n, struct conn *c, long long id,
                        const char *type, json_t *msg, struct alarm_sub *s)
{
    uint64_t maxp;
    if (!node_get_uint(c, id, msg, type, "max_priority", false, 0, 4, 0, &maxp) ||
        !sections_expand(n, c, id, type, msg, &s->sections)) {
        return false;
    }
    s->max_priority = (unsigned)maxp;
    return true;
}

static void handle_list(struct node *n, struct conn *c, json_t *msg, long long id)
{
    static const char *const allowed[] = {"sections", "max_priority", "all",
                                          "after", NULL};
    struct alarm_sub s = {0};
    json_t *page, *all = json_object_get(msg, "all");
    const char *after = NULL;
    bool more;

    if (!node_members_ok(c, id, msg, "alarms_list", allowed) ||
        !node_get_str(c, id, msg, "alarms_list", "after", false, NAME_MAX_BYTES,
                      &after) ||
        !filter_args(n, c, id, "alarms_list", msg, &s)) {
        return;
    }
    if (all != NULL && !json_is_boolean(all)) {
        node_send_error(c, id, "invalid",
                        "alarms_list: member 'all' must be true or false");
        json_decref(s.sections);
        return;
    }
    if (!node_need_ready(n, c, id)) {
        json_decref(s.sections);
        return;
    }
    /* Pages in name order: AFTER is the last name of the previous page. */
    page = committed_entries(n, &s, json_is_true(all), after, ENTRIES_PER_FRAME, true,
                             &more);
    node_send_replica_answer(n, c, "alarms", id,
                             json_pack("{s:b, s:o}", "more", more, "alarms", page));
    json_decref(s.sections);
}

static void sub_free(struct alarm_sub *s)
{
    if (s != NULL) {
        json_decref(s->sections);
        json_decref(s->image);
        json_decref(s->held);
        free(s);
    }
}

/* A subscription's image is sent a frame at a time while the connection
 * has less than IMAGE_QUEUE_BELOW bytes queued, and again as the client
 * reads (node_alarms_drained): an image of a thousand alarms with 1 KiB
 * messages in 8 languages (9.4 MB, tests/integration/cluster_alarm_bytes.py)
 * is more than the 8 MiB a connection may have queued (WRITE_QUEUE_LIMIT),
 * and queued at once it closed the connection of the station that
 * subscribed, every time; so would, by the ~300 bytes an entry takes besides
 * its messages, some 20 000 alarms with short ones (derived). */
#define IMAGE_QUEUE_BELOW (1024u * 1024u)
/* Entry bytes of change events a subscription may hold back while its
 * image is sent: four connections' worth of queue, so that an ack of every
 * alarm of such an image (as large again) fits; a client that reads
 * nothing meanwhile is closed beyond it, and subscribes again. */
#define HELD_MAX (4u * WRITE_QUEUE_LIMIT)

/* Send frames of C's image while there is room, then, once it is all
 * sent, the change events held meanwhile, as room allows too. */
static void image_pump(struct conn *c)
{
    struct alarm_sub *s = c->alarm_sub;
    size_t total;

    if (s == NULL || (s->image == NULL && s->held == NULL)) {
        return;
    }
    while (s->image == NULL && !c->closing && c->queued < IMAGE_QUEUE_BELOW) {
        if (s->held_off == json_array_size(s->held)) {
            json_decref(s->held);
            s->held = NULL;
            s->held_off = s->held_bytes = 0;
            return;
        }
        json_t *ev = json_array_get(s->held, s->held_off++);
        /* What still waits is what HELD_MAX bounds, not all ever held. */
        size_t sent = json_dumpb(json_object_get(ev, "alarms"), NULL, 0, JSON_COMPACT);
        s->held_bytes -= sent < s->held_bytes ? sent : s->held_bytes;
        node_send(c, json_incref(ev));
        if (c->alarm_sub != s) {
            return; /* the connection closed meanwhile */
        }
    }
    total = s->image != NULL ? json_array_size(s->image) : 0;
    while (s->image != NULL && !c->closing && c->queued < IMAGE_QUEUE_BELOW) {
        json_t *chunk = json_array();
        size_t bytes = 0, eb;
        for (; s->image_off < total &&
               frame_takes(json_array_size(chunk), bytes,
                           eb = entry_bytes(json_array_get(s->image, s->image_off)));
             s->image_off++) {
            bytes += eb;
            json_array_append(chunk, json_array_get(s->image, s->image_off));
        }
        node_send(c, json_pack("{s:s, s:s, s:s, s:I, s:o, s:b}", "type", "event",
                               "topic", "alarms", "event", "image", "index",
                               (json_int_t)s->image_index, "alarms", chunk, "last",
                               s->image_off >= total));
        if (c->alarm_sub != s) {
            return; /* the connection closed meanwhile */
        }
        if (s->image_off >= total) {
            json_decref(s->image);
            s->image = NULL;
            image_pump(c); /* the held events, as room allows */
            return;
        }
    }
}

void node_alarms_drained(struct conn *c)
{
    image_pump(c);
}

static void handle_subscribe(struct node *n, struct conn *c, json_t *msg,
                             long long id)
{
    static const char *const allowed[] = {"sections", "max_priority", NULL};
    struct alarm_sub *s = calloc(1, sizeof *s);
    json_t *a, *list;

    if (s == NULL) {
        node_send_error(c, id, "failed", "out of memory");
        return;
    }
    if (!node_members_ok(c, id, msg, "alarms_subscribe", allowed) ||
        !filter_args(n, c, id, "alarms_subscribe", msg, s) ||
        !node_need_ready(n, c, id)) {
        sub_free(s);
        return;
    }
    sub_free(c->alarm_sub);
    c->alarm_sub = s;
    list = committed_entries(n, s, false, NULL, SIZE_MAX, false, NULL);
    a = node_answer("alarms_subscribed", id);
    json_object_set_new(a, "node", json_integer((json_int_t)n->cfg->id));
    json_object_set_new(a, "count", json_integer((json_int_t)json_array_size(list)));
    json_object_set_new(a, "applied_index",
                        json_integer((json_int_t)n->fsm.applied_index));
    node_send(c, a);
    /* The image in frames (frame_takes), the last one marked, as the
     * client reads (image_pump). */
    if (c->alarm_sub == s) {
        s->image = list;
        s->image_index = n->fsm.applied_index;
        image_pump(c);
    } else {
        json_decref(list);
    }
}

/* Where the queue of changes stood when an action began. */
struct queue_mark {
    uint64_t appended;
    size_t n_pending, len;
};

static struct queue_mark queue_mark(const struct alarm_duty *d)
{
    struct queue_mark m = {d->appended, d->n_pending, d->pending.len};
    return m;
}

/* Answer ANSWER once the changes queued since the action began (since M)
 * are committed; at once when it changed nothing. The changes stay in the
 * queue, behind every automatic change queued before them, and go out with
 * whatever else this loop iteration queues (one command for many acks). */
/* Answer C's action once its changes are committed. One that changed
 * nothing ("unchanged": already acknowledged, not shelved, ...) was judged
 * on the engine, which runs ahead of the log: its answer too waits for the
 * changes queued before it, and becomes "send it again" if one of them is
 * not committed (leadership lost, the engine to be rebuilt). Answered at
 * once, an ack resent (or a second station's) while the first was still
 * uncommitted heard "nothing to acknowledge" although no majority could
 * commit anything; had that first ack been lost with the leader, the
 * operator's ack would have been lost (tests/integration/cluster_alarms.py,
 * premature_unchanged_case, kills both followers).
 *
 * An action whose own change could not be queued (pending_add: past a
 * limit of the format, out of memory) is undone as a whole: the engine ran
 * ahead of that change and waits to be rebuilt, its other changes leave the
 * queue (nothing is proposed during an action, only in the loop iteration),
 * and the operator hears "unavailable", nothing changed. Answered as usual,
 * such an action was reported done ("acked", index null) when nothing else
 * waited for a commit, and its other changes were committed when something
 * did (tests/integration/cluster_alarm_rebuild.py). need_engine refuses
 * actions while a rebuild waits, so a rebuild wanted now was wanted by this
 * action. */
static void commit_action(struct alarm_duty *d, struct conn *c, long long id,
                          const struct queue_mark *m, json_t *answer)
{
    struct alarm_op *op;
    bool changed = d->appended != m->appended;

    if (d->rebuild) {
        d->appended = m->appended;
        d->n_pending = m->n_pending;
        d->pending.len = m->len;
        json_decref(answer);
        node_send_error(c, id, "unavailable",
                        "node %llu cannot commit this alarm change (%s) and reads "
                        "the alarm states again from the replicated table; "
                        "nothing was changed, send it again in a moment",
                        (unsigned long long)d->n->cfg->id, d->refused);
        return;
    }
    if (!changed && d->committed >= d->appended) {
        json_object_set_new(answer, "index", json_null());
        node_send(c, answer);
        return;
    }
    op = calloc(1, sizeof *op);
    if (op == NULL) {
        json_decref(answer);
        node_send_error(c, id, "failed", "out of memory");
        return;
    }
    op->c = c;
    op->id = id;
    op->answer = answer;
    op->seq_end = d->appended;
    op->noop = !changed;
    c->refs++;
    if (d->ops_tail != NULL) {
        d->ops_tail->next = op;
    } else {
        d->ops_head = op;
    }
    d->ops_tail = op;
}

/* Act on one alarm (project or system) by name; the changes go to
 * d->pending. Returns VG_OK (with *NOOP), VG_ENOTFOUND or VG_EINVAL. */
static int act_one(struct alarm_duty *d, const char *name,
                   const struct vg_alarm_action *act, uint64_t now,
                   enum vg_alarm_noop *noop, char *errmsg)
{
    struct vg_alarm_transition t = {0};
    long a = find_alarm(d, name);
    int rv;

    if (a >= 0) {
        rv = vg_alarm_engine_act(d->engine, (size_t)a, act, now, &t, engine_cb, d,
                                 errmsg);
        *noop = t.noop;
        return rv;
    }
    {
        struct sys_alarm *s = find_sys(d, name);
        struct vg_alarm_transition tt[VG_ALARM_STEP_MAX];
        struct vg_alarm_state before;
        unsigned nt;
        if (s == NULL) {
            vg_errf(errmsg, "unknown alarm '%s'", name);
            return VG_ENOTFOUND;
        }
        before = s->st;
        nt = vg_alarm_tick(&s->def, &s->st, now, tt);
        sys_report(d, s, tt, nt, &before);
        before = s->st;
        switch (act->kind) {
        case VG_ALARM_ACT_ACK:
            rv = vg_alarm_ack(&s->st, now, &t);
            break;
        case VG_ALARM_ACT_SHELVE:
            rv = vg_alarm_shelve(&s->st, act->until_ms, act->reason, act->user, now,
                                 &t, errmsg);
            break;
        case VG_ALARM_ACT_UNSHELVE:
            rv = vg_alarm_unshelve(&s->st, now, &t);
            break;
        default:
            rv = vg_alarm_set_out_of_service(
                &s->st, act->kind == VG_ALARM_ACT_OUT_OF_SERVICE, now, &t);
        }
        if (rv == VG_OK && t.cause != VG_ALARM_CAUSE_NONE) {
            sys_report(d, s, &t, 1, &before);
        }
        *noop = t.noop;
        return rv;
    }
}

/* Names of the alarms an ack with SECTIONS (NULL: all) covers that need one:
 * project alarms in those sections; system alarms only with "all" (they
 * belong to no plant section). */
static json_t *ack_candidates(struct alarm_duty *d, json_t *sections)
{
    json_t *names = json_array();
    for (size_t a = 0; a < d->pr->n_alarms; a++) {
        const struct vg_alarm_state *st = vg_alarm_engine_state(d->engine, a);
        const char *sec = alarm_section(d->pr, a);
        if (st->status != VG_ALARM_UNACK_ACTIVE && st->status != VG_ALARM_UNACK_RTN) {
            continue;
        }
        if (sections != NULL && (sec == NULL || json_object_get(sections, sec) == NULL)) {
            continue;
        }
        json_array_append_new(names, json_string(d->pr->alarms[a].name));
    }
    for (size_t i = 0; sections == NULL && i < d->n_sys; i++) {
        if (d->sys[i].st.status == VG_ALARM_UNACK_ACTIVE ||
            d->sys[i].st.status == VG_ALARM_UNACK_RTN) {
            json_array_append_new(names, json_string(d->sys[i].name));
        }
    }
    return names;
}

static bool who_args(struct conn *c, long long id, json_t *msg, const char *type,
                     const char **user, const char **station)
{
    return node_get_str(c, id, msg, type, "user", false, WHO_MAX, user) &&
           node_get_str(c, id, msg, type, "station", false, WHO_MAX, station);
}

static void handle_ack(struct node *n, struct conn *c, json_t *msg, long long id)
{
    static const char *const allowed[] = {"alarms", "sections", "all", "user",
                                          "station", NULL};
    static const char type[] = "alarm_ack";
    json_t *names = json_object_get(msg, "alarms");
    json_t *all = json_object_get(msg, "all");
    json_t *sections = NULL, *acked, *unchanged, *unknown, *v, *answer;
    const char *user, *station;
    struct alarm_duty *d;
    unsigned selectors;
    size_t i;
    uint64_t now;
    struct queue_mark before;

    if (!node_members_ok(c, id, msg, type, allowed) ||
        !who_args(c, id, msg, type, &user, &station)) {
        return;
    }
    selectors = (names != NULL) + (json_object_get(msg, "sections") != NULL) +
                (all != NULL);
    if (selectors != 1 || (all != NULL && !json_is_true(all))) {
        node_send_error(c, id, "invalid",
                        "%s: give exactly one of 'alarms' (names), 'sections' "
                        "(every unacknowledged alarm in them) or 'all': true",
                        type);
        return;
    }
    if (names != NULL) {
        if (!json_is_array(names) || json_array_size(names) == 0 ||
            json_array_size(names) > 10000) {
            node_send_error(c, id, "invalid",
                            "%s: member 'alarms' must be an array of 1..10000 names",
                            type);
            return;
        }
        json_array_foreach(names, i, v) {
            if (!json_is_string(v) || json_string_length(v) == 0 ||
                json_string_length(v) > NAME_MAX_BYTES) {
                node_send_error(c, id, "invalid",
                                "%s: alarms[%zu] must be a name of 1..%u bytes",
                                type, i, NAME_MAX_BYTES);
                return;
            }
        }
    }
    if (!sections_expand(n, c, id, type, msg, &sections)) {
        return;
    }
    if ((d = need_engine(n, c, id)) == NULL) {
        json_decref(sections);
        return;
    }
    before = queue_mark(d);
    if (names == NULL) {
        names = ack_candidates(d, sections);
    } else {
        json_incref(names);
    }
    json_decref(sections);
    acked = json_array();
    unchanged = json_array();
    unknown = json_array();
    now = duty_now(d);
    d->act_user = user;
    d->act_station = station;
    d->act_reason = NULL;
    json_array_foreach(names, i, v) {
        struct vg_alarm_action act = {.kind = VG_ALARM_ACT_ACK};
        enum vg_alarm_noop noop = VG_ALARM_NOOP_NONE;
        char errmsg[VG_ERRMSG_SIZE];
        int rv = act_one(d, json_string_value(v), &act, now, &noop, errmsg);
        if (rv == VG_ENOTFOUND) {
            json_array_append(unknown, v);
        } else if (noop != VG_ALARM_NOOP_NONE) {
            json_array_append_new(unchanged,
                                  json_pack("{s:O, s:s}", "alarm", v, "reason",
                                            vg_alarm_noop_name(noop)));
        } else {
            json_array_append(acked, v);
        }
    }
    d->act_user = d->act_station = NULL;
    json_decref(names);
    answer = node_answer("alarms_acked", id);
    json_object_set_new(answer, "acked", acked);
    json_object_set_new(answer, "unchanged", unchanged);
    json_object_set_new(answer, "unknown", unknown);
    commit_action(d, c, id, &before, answer);
}

/* alarm_shelve, alarm_unshelve, alarm_service: one alarm each. */
static void handle_one(struct node *n, struct conn *c, json_t *msg, long long id,
                       const char *type)
{
    static const char *const allowed_shelve[] = {"alarm", "duration_s", "reason",
                                                 "user", "station", NULL};
    static const char *const allowed_unshelve[] = {"alarm", "user", "station", NULL};
    static const char *const allowed_service[] = {"alarm", "in_service", "reason",
                                                  "user", "station", NULL};
    bool shelve = strcmp(type, "alarm_shelve") == 0;
    bool service = strcmp(type, "alarm_service") == 0;
    const char *name, *user, *station, *reason = NULL;
    struct vg_alarm_action act = {0};
    enum vg_alarm_noop noop = VG_ALARM_NOOP_NONE;
    char errmsg[VG_ERRMSG_SIZE];
    struct alarm_duty *d;
    uint64_t duration = 0, now;
    json_t *in_service = json_object_get(msg, "in_service");
    json_t *answer;
    struct queue_mark before;
    int rv;

    if (!node_members_ok(c, id, msg, type,
                         shelve ? allowed_shelve
                                : service ? allowed_service : allowed_unshelve) ||
        !node_get_str(c, id, msg, type, "alarm", true, NAME_MAX_BYTES, &name) ||
        !who_args(c, id, msg, type, &user, &station) ||
        ((shelve || service) &&
         !node_get_str(c, id, msg, type, "reason", false, REASON_MAX, &reason)) ||
        (shelve && !node_get_uint(c, id, msg, type, "duration_s", true, 1,
                                  SHELVE_MAX_S, 0, &duration))) {
        return;
    }
    if (service && !json_is_boolean(in_service)) {
        node_send_error(c, id, "invalid",
                        "%s: member 'in_service' (true or false) is required", type);
        return;
    }
    if ((d = need_engine(n, c, id)) == NULL) {
        return;
    }
    before = queue_mark(d);
    now = duty_now(d);
    if (shelve) {
        act.kind = VG_ALARM_ACT_SHELVE;
        act.until_ms = now + duration * 1000u;
        act.reason = reason != NULL ? reason : "";
        act.user = user != NULL ? user : "";
    } else if (service) {
        act.kind = json_is_true(in_service) ? VG_ALARM_ACT_IN_SERVICE
                                            : VG_ALARM_ACT_OUT_OF_SERVICE;
    } else {
        act.kind = VG_ALARM_ACT_UNSHELVE;
    }
    d->act_user = user;
    d->act_station = station;
    d->act_reason = reason;
    rv = act_one(d, name, &act, now, &noop, errmsg);
    d->act_user = d->act_station = d->act_reason = NULL;
    if (rv != VG_OK) {
        /* What fell due before the action still happened; it stays queued
         * and is committed with the next iteration's changes. */
        node_send_error(c, id, "invalid", "%s: %s", type, errmsg);
        return;
    }
    answer = node_answer(shelve ? "alarm_shelved"
                                : service ? "alarm_service_set" : "alarm_unshelved",
                         id);
    json_object_set_new(answer, "alarm", json_string(name));
    json_object_set_new(answer, "changed", json_boolean(noop == VG_ALARM_NOOP_NONE));
    json_object_set_new(answer, "reason",
                        noop == VG_ALARM_NOOP_NONE
                            ? json_null()
                            : json_string(vg_alarm_noop_name(noop)));
    if (shelve) {
        json_object_set_new(answer, "until_ms", json_integer((json_int_t)act.until_ms));
    }
    commit_action(d, c, id, &before, answer);
}

static void handle_journal(struct node *n, struct conn *c, json_t *msg, long long id)
{
    static const char *const allowed[] = {"from_ms", "to_ms", "sections",
                                          "max_priority", "tag", "alarm", "state",
                                          "cause", "before_id", "limit", NULL};
    static const char type[] = "alarm_journal";
    struct vg_repl_journal_query q = {0};
    uint64_t from, to, maxp, before, limit;
    json_t *sections = NULL, *out = NULL;
    const char *names[SECTIONS_MAX * 8];
    const char *key;
    json_t *v;

    if (!node_members_ok(c, id, msg, type, allowed) ||
        !node_get_uint(c, id, msg, type, "from_ms", false, 0, UINT64_C(1) << 53, 0,
                       &from) ||
        !node_get_uint(c, id, msg, type, "to_ms", false, 0, UINT64_C(1) << 53, 0,
                       &to) ||
        !node_get_uint(c, id, msg, type, "max_priority", false, 0, 4, 0, &maxp) ||
        !node_get_uint(c, id, msg, type, "before_id", false, 0, INT64_MAX, 0,
                       &before) ||
        !node_get_uint(c, id, msg, type, "limit", false, 1, 10000, 100, &limit) ||
        !node_get_str(c, id, msg, type, "tag", false, NAME_MAX_BYTES, &q.tag) ||
        !node_get_str(c, id, msg, type, "alarm", false, NAME_MAX_BYTES, &q.alarm) ||
        !node_get_str(c, id, msg, type, "state", false, 32, &q.state) ||
        !node_get_str(c, id, msg, type, "cause", false, 32, &q.cause) ||
        !sections_expand(n, c, id, type, msg, &sections)) {
        return;
    }
    if (to != 0 && to < from) {
        node_send_error(c, id, "invalid", "%s: to_ms must not be before from_ms",
                        type);
        json_decref(sections);
        return;
    }
    json_object_foreach(sections, key, v) {
        if (q.n_sections < sizeof names / sizeof names[0]) {
            names[q.n_sections++] = key;
        }
    }
    q.sections = names;
    if (q.n_sections > 64) {
        q.n_sections = 64; /* the query's limit; a huge subtree is cut */
    }
    q.from_ms = from;
    q.to_ms = to;
    q.max_priority = (unsigned)maxp;
    q.before_id = before;
    q.limit = (size_t)limit;
    if (vg_repl_fsm_alarm_journal(&n->fsm, &q, &out) != VG_OK) {
        node_send_error(c, id, "failed", "cannot read the alarm journal: %s",
                        n->fsm.errmsg);
        json_decref(sections);
        return;
    }
    json_decref(sections);
    node_send_replica_answer(n, c, "alarm_journal", id, out);
}

bool node_alarms_handle(struct node *n, struct conn *c, const char *type,
                        json_t *msg, long long id)
{
    if (strcmp(type, "alarms_list") == 0) {
        handle_list(n, c, msg, id);
    } else if (strcmp(type, "alarms_subscribe") == 0) {
        handle_subscribe(n, c, msg, id);
    } else if (strcmp(type, "alarm_ack") == 0) {
        handle_ack(n, c, msg, id);
    } else if (strcmp(type, "alarm_shelve") == 0 ||
               strcmp(type, "alarm_unshelve") == 0 ||
               strcmp(type, "alarm_service") == 0) {
        handle_one(n, c, msg, id, type);
    } else if (strcmp(type, "alarm_journal") == 0) {
        handle_journal(n, c, msg, id);
    } else {
        return false;
    }
    return true;
}

/* -------------------------------------------------------------- pushes */

/* The state of CH as the stations get it (entry's members). */
static json_t *change_state_json(const struct vg_repl_alarm_change *ch)
{
    if (ch->removed) {
        return json_null();
    }
    return json_pack(
        "{s:s, s:b, s:I, s:I, s:I, s:I, s:b, s:I, s:I, s:s, s:s, s:b, s:I}",
        "status", vg_repl_alarm_status_name(ch->state.status), "active",
        ch->state.active, "changed_ms", (json_int_t)ch->state.changed_ms,
        "raised_ms", (json_int_t)ch->state.raised_ms, "acked_ms",
        (json_int_t)ch->state.acked_ms, "cleared_ms",
        (json_int_t)ch->state.cleared_ms, "shelved", ch->state.shelved,
        "shelved_ms", (json_int_t)ch->state.shelved_ms, "shelved_until_ms",
        (json_int_t)ch->state.shelved_until_ms, "shelve_reason",
        ch->state.shelve_reason, "shelve_user", ch->state.shelve_user,
        "out_of_service", ch->state.out_of_service, "out_of_service_ms",
        (json_int_t)ch->state.out_of_service_ms);
}

static json_t *opt_json_str(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

/* The event entry of CH, which has a transition. */
static json_t *change_entry(const struct vg_repl_alarm_change *ch)
{
    json_t *state = change_state_json(ch);
    json_t *tag = opt_json_str(ch->tag), *section = opt_json_str(ch->section);
    json_t *prio = ch->priority > 0 ? json_integer(ch->priority) : json_null();
    json_t *message = json_null(), *e;

    if (ch->has_message) {
        json_decref(message);
        message = json_object();
        for (unsigned i = 0; i < ch->n_message; i++) {
            json_object_set_new(message, ch->lang[i], json_string(ch->text[i]));
        }
    }
    e = entry(ch->alarm, state, tag, section, prio, message);
    json_decref(state);
    json_decref(tag);
    json_decref(section);
    json_decref(prio);
    json_decref(message);
    if (ch->removed) {
        json_object_set_new(e, "removed", json_true());
    }
    json_object_set_new(e, "cause",
                        json_string(vg_repl_alarm_cause_name(ch->transition.cause)));
    json_object_set_new(e, "at_ms", json_integer((json_int_t)ch->transition.at_ms));
    json_object_set_new(e, "value", ch->transition.has_value
                                        ? json_real(ch->transition.value)
                                        : json_null());
    json_object_set_new(e, "user", opt_json_str(ch->transition.user));
    json_object_set_new(e, "station", opt_json_str(ch->transition.station));
    return e;
}

/* One "changes" event of INDEX to C with LIST (consumed, BYTES of
 * entries): held back while C's image is still being sent, up to HELD_MAX
 * (beyond it C is closed, as a client that does not read). */
static void send_changes(struct conn *c, uint64_t index, json_t *list, size_t bytes)
{
    struct alarm_sub *s = c->alarm_sub;
    json_t *ev = json_pack("{s:s, s:s, s:s, s:I, s:o}", "type", "event", "topic",
                           "alarms", "event", "changes", "index", (json_int_t)index,
                           "alarms", list);

    if (s == NULL || (s->image == NULL && s->held == NULL)) {
        node_send(c, ev);
        return;
    }
    if (s->held == NULL) {
        s->held = json_array();
    }
    s->held_bytes += bytes;
    if (ev == NULL || s->held == NULL || s->held_bytes > HELD_MAX ||
        json_array_append(s->held, ev) != 0) {
        node_conn_close(c);
    }
    json_decref(ev);
}

void node_alarms_applied(struct node *n, uint64_t index, const struct vg_cmd *cmd,
                         int result)
{
    struct vg_repl_alarm_changes changes;
    json_t **entries;
    size_t *sizes;
    bool any = false;

    if (result != VG_OK) {
        return;
    }
    for (struct conn *c = n->conns; c != NULL && !any; c = c->next) {
        any = c->alarm_sub != NULL;
    }
    if (!any) {
        return;
    }
    if (vg_repl_alarm_changes_decode(cmd, &changes, NULL) != VG_OK) {
        vg_repl_alarm_changes_free(&changes);
        return; /* applied, so it decodes; unless out of memory */
    }
    /* Each entry is built and measured once, on demand, and shared by the
     * subscribers. A command's changes that do not fit one frame go out as
     * several events of the same index (frame_takes). */
    entries = calloc(changes.n, sizeof *entries);
    sizes = calloc(changes.n, sizeof *sizes);
    for (struct conn *c = n->conns, *next; c != NULL && entries != NULL && sizes != NULL;
         c = next) {
        json_t *list = NULL;
        size_t bytes = 0;
        next = c->next;
        if (c->alarm_sub == NULL) {
            continue;
        }
        for (size_t i = 0; i < changes.n; i++) {
            const struct vg_repl_alarm_change *ch = &changes.v[i];
            if (!ch->has_transition || !sub_wants(c->alarm_sub, ch->alarm, ch->section, ch->priority)) {
                continue;
            }
            if (entries[i] == NULL) {
                entries[i] = change_entry(ch);
                sizes[i] = entry_bytes(entries[i]);
            }
            if (list != NULL && !frame_takes(json_array_size(list), bytes, sizes[i])) {
                send_changes(c, index, list, bytes);
                list = NULL;
            }
            if (list == NULL) {
                list = json_array();
                bytes = 0;
            }
            bytes += sizes[i];
            json_array_append(list, entries[i]);
        }
        if (list != NULL) {
            send_changes(c, index, list, bytes);
        }
    }
    for (size_t i = 0; entries != NULL && i < changes.n; i++) {
        json_decref(entries[i]);
    }
    free(entries);
    free(sizes);
    vg_repl_alarm_changes_free(&changes);
}

/* ------------------------------------------------------------ plumbing */

json_t *node_alarms_status(struct node *n)
{
    static const char *const phases[] = {"idle", "restoring", "restoring",
                                         "evaluating"};
    struct alarm_duty *d = n->alarms;

    if (d == NULL) {
        return json_pack("{s:s}", "state", "idle");
    }
    return json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "state",
                     phases[d->phase], "project_version",
                     (json_int_t)(d->phase != PHASE_IDLE ? d->version : 0), "alarms",
                     (json_int_t)(d->pr != NULL ? d->pr->n_alarms : 0), "restored",
                     (json_int_t)d->restored, "removed", (json_int_t)d->removed,
                     "restore_ms", (json_int_t)d->restore_ms, "restore_iterations",
                     (json_int_t)d->restore_iterations, "evaluating_since_ms",
                     (json_int_t)d->evaluating_since_ms, "queued",
                     (json_int_t)(d->n_pending - d->pending_first), "in_flight",
                     (json_int_t)d->in_flight);
}

int node_alarms_init(struct node *n)
{
    struct alarm_duty *d = calloc(1, sizeof *d);
    if (d == NULL) {
        return VG_ENOMEM;
    }
    d->n = n;
    uv_timer_init(&n->loop, &d->timer);
    d->timer.data = d;
    n->alarms = d;
    return VG_OK;
}

static void timer_closed_cb(uv_handle_t *h)
{
    struct alarm_duty *d = h->data;
    free(d->pending.p);
    free(d->pending_end);
    free(d);
}

void node_alarms_close(struct node *n)
{
    struct alarm_duty *d = n->alarms;
    if (d == NULL) {
        return;
    }
    /* raft_close has run the proposals' callbacks: nothing still waits for
     * one, but whatever is left is answered here, as the duty goes. */
    ops_answer(d, UINT64_MAX, 0, "not_leader",
               "the node is stopping; send the alarm action again to the new leader");
    duty_stop(d, "not_leader", "the node is stopping; send the alarm action again "
                               "to the new leader");
    n->alarms = NULL;
    uv_close((uv_handle_t *)&d->timer, timer_closed_cb);
}

void node_alarms_leadership_lost(struct node *n)
{
    char reason[160];

    if (n->alarms != NULL) {
        duty_stop(n->alarms, "not_leader", LOST);
    }
    snprintf(reason, sizeof reason,
             "node %llu is no longer the leader; subscribe again at the new leader",
             (unsigned long long)n->cfg->id);
    for (struct conn *c = n->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (c->alarm_sub != NULL && !c->closing) {
            node_send(c, json_pack("{s:s, s:s}", "type", "bye", "reason", reason));
            node_conn_close(c);
        }
    }
}

void node_alarms_conn_closing(struct conn *c)
{
    sub_free(c->alarm_sub);
    c->alarm_sub = NULL;
}
