/* Replication on libraft's in-process cluster (raft/fixture.h): real
 * vg_repl_fsm instances over SQLite files, libraft 0.15's real consensus code,
 * simulated time, and the faults the fixture can inject (kills, saturated
 * links, disk errors).
 *
 * Each test builds a cluster (3 servers; 5 for the Figure 8 scenarios); each
 * server has its own state machine and a vg_repl_leadership that is polled
 * after every fixture step, as vigild polls it on every loop iteration, and
 * pre-vote on, as vigild configures it. Every wait is bounded in simulated
 * milliseconds. The tests cover the defences of DESIGN.md "Replication":
 * readiness only after the leader's ANNOUNCE is applied (including an entry
 * of an earlier term at the end of the new leader's log, and Raft's Figure 8
 * on five servers), fail-over and partitions with convergence to identical
 * digests, snapshot installation on a lagging or new node, membership
 * change, checkpoints detecting a corrupted replica, fail-stop on
 * synchronous and asynchronous disk errors, and verified, retried
 * transfers.
 *
 * VG_TEST_FILTER=<glob> runs a subset; LIBRAFT_TRACE=1 adds libraft's own
 * trace on stderr. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <raft/fixture.h>
#include <sqlite3.h>

#include "replication.h"

#define MAX_NODES 5
#define MAX_PROPS 512

/* Bounds, in simulated milliseconds. The fixture's election timeout is
 * 1000 ms + 100 ms per server index and its heartbeat 100 ms. */
#define ELECTION_BOUND 5000
#define COMMIT_BOUND 2000
/* Leader killed -> new ready leader: at most the slowest follower's election
 * timer (1200 ms after its last heartbeat) plus a pre-vote, a vote and the
 * announce round trips (measured: 1400 ms). */
#define FAILOVER_BOUND 1600
#define CATCH_UP_BOUND 10000

/* ---- cluster ------------------------------------------------------------ */

struct cluster;

struct node {
    struct cluster *c;
    unsigned i;
    struct vg_repl_fsm fsm;
    struct vg_repl_leadership lead;
    bool open;
    /* Readiness transitions seen through changed_cb. */
    unsigned n_ready;
    unsigned n_unready;
    bool announce_applied_when_ready; /* the last time it became ready */
    const char *watch_key;            /* if set: was it visible when ready? */
    bool watch_key_seen_when_ready;
    bool no_poll; /* an owner that never polls: no announce, never ready */
};

/* A proposal and what its callback reported. */
struct prop {
    struct vg_repl_proposal p;
    bool done;
    int status;
    uint64_t index;
    int result;
};

/* A recorded fail-stop report. */
struct fault {
    unsigned calls;
    int status;
    char what[VG_ERRMSG_SIZE];
};

struct change {
    struct raft_change req;
    bool done;
    int status;
};

struct cluster {
    struct raft_fixture f;
    unsigned n;
    struct node nodes[MAX_NODES];
    char dir[64];
    /* Everything libraft may still call back into lives here, so that it
     * outlives raft_fixture_close() even when a test fails half-way. */
    struct prop props[MAX_PROPS];
    unsigned n_props;
    struct vg_repl_failstop failstop[MAX_NODES];
    struct fault faults[MAX_NODES];
    struct change change;
    struct vg_repl_transfer transfer;
    bool poll_transfer;
};

static uint64_t wall_ms(struct vg_repl_leadership *l)
{
    struct node *n = l->data;
    return raft_fixture_time(&n->c->f);
}

static char *announce_body(struct vg_repl_leadership *l)
{
    struct node *n = l->data;
    struct raft *r = raft_fixture_get(&n->c->f, n->i);
    char *s = malloc(256);
    if (s != NULL) {
        snprintf(s, 256,
                 "{\"raft_address\":\"%s\",\"client_address\":\"127.0.0.1:%u\","
                 "\"peers\":[]}",
                 r->address, 9440 + (unsigned)r->id);
    }
    return s;
}

static bool has_leader_row(struct vg_repl_fsm *f, raft_term term,
                           raft_id node_id)
{
    sqlite3_stmt *st;
    bool found;
    assert_int_equal(sqlite3_prepare_v2(f->db,
                                        "SELECT 1 FROM leaders WHERE term = ?"
                                        " AND node_id = ?",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)term);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)node_id);
    found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return found;
}

static void changed_cb(struct vg_repl_leadership *l, bool ready)
{
    struct node *n = l->data;
    if (ready) {
        n->n_ready++;
        n->announce_applied_when_ready =
            has_leader_row(&n->fsm, l->term, l->node_id);
        if (n->watch_key != NULL) {
            char *value = NULL;
            n->watch_key_seen_when_ready =
                vg_repl_fsm_get(&n->fsm, n->watch_key, &value) == VG_OK &&
                value != NULL;
            free(value);
        }
    } else {
        n->n_unready++;
    }
}

/* Open a state machine in the cluster's directory, add it to the fixture as
 * a new server and give it a leadership tracker. Returns its index. */
static unsigned add_node(struct cluster *c)
{
    unsigned i = c->n;
    struct node *n = &c->nodes[i];
    char path[128];
    struct raft *r;
    int (*snapshot_async)(struct raft_fsm *, struct raft_buffer **, unsigned *);

    assert_true(i < MAX_NODES);
    snprintf(path, sizeof path, "%s/node%u.db", c->dir, i + 1);
    if (vg_repl_fsm_open(&n->fsm, path) != VG_OK) {
        fail_msg("open %s: %s", path, n->fsm.errmsg);
    }
    n->open = true;
    n->c = c;
    n->i = i;
    /* libraft 0.15's fixture io runs async_work but leaves its version at
     * 0, and raft_init refuses an asynchronous snapshot over an io below
     * version 2: grow with the synchronous methods, then give the fsm back
     * its version-3 snapshot (libraft reads it at every snapshot) and the
     * io the version its methods have. */
    n->fsm.fsm.version = 2;
    snapshot_async = n->fsm.fsm.snapshot_async;
    n->fsm.fsm.snapshot_async = NULL;
    assert_int_equal(raft_fixture_grow(&c->f, &n->fsm.fsm), 0);
    c->n++;
    r = raft_fixture_get(&c->f, i);
    assert_non_null(r->io->async_work);
    r->io->version = 2;
    n->fsm.fsm.version = 3;
    n->fsm.fsm.snapshot_async = snapshot_async;
    /* As vigild configures it. Without pre-vote libraft 0.15 turns every
     * leader loss into a split vote (a follower that still knows a leader
     * rejects the first candidate without adopting its term, then stands in
     * that same term itself), which costs a second election timeout. */
    raft_set_pre_vote(r, true);
    n->fsm.raft = r;
    vg_repl_leadership_init(&n->lead, r, r->id);
    n->lead.wall_ms = wall_ms;
    n->lead.announce_body = announce_body;
    n->lead.changed_cb = changed_cb;
    n->lead.data = n;
    return i;
}

static void wrap_io(struct cluster *c, unsigned i);

/* N servers, all voters, bootstrapped and started; with WRAP, each one's io
 * wrapped by the fail-stop wrapper before it starts, so that the wrapper
 * also sees what libraft receives. */
static int setup_n(void **state, unsigned n, bool wrap)
{
    struct cluster *c = calloc(1, sizeof *c);
    struct raft_configuration conf;

    assert_non_null(c);
    snprintf(c->dir, sizeof c->dir, "/tmp/vg-test-repl-XXXXXX");
    assert_non_null(mkdtemp(c->dir));
    assert_int_equal(raft_fixture_initialize(&c->f), 0);
    for (unsigned i = 0; i < n; i++) {
        add_node(c);
    }
    assert_int_equal(raft_fixture_configuration(&c->f, n, &conf), 0);
    assert_int_equal(raft_fixture_bootstrap(&c->f, &conf), 0);
    raft_configuration_close(&conf);
    for (unsigned i = 0; wrap && i < n; i++) {
        wrap_io(c, i);
    }
    assert_int_equal(raft_fixture_start(&c->f), 0);
    *state = c;
    return 0;
}

static int setup(void **state)
{
    return setup_n(state, 3, false);
}

static int setup5(void **state)
{
    return setup_n(state, 5, false);
}

static int setup_wrapped(void **state)
{
    return setup_n(state, 3, true);
}

static int teardown(void **state)
{
    struct cluster *c = *state;
    for (unsigned i = 0; i < c->n; i++) {
        c->nodes[i].lead.closing = true;
    }
    raft_fixture_close(&c->f);
    for (unsigned i = 0; i < c->n; i++) {
        if (c->nodes[i].open) {
            vg_repl_fsm_close(&c->nodes[i].fsm);
        }
    }
    vg_remove_tree(c->dir);
    free(c);
    return 0;
}

/* ---- stepping ------------------------------------------------------------ */

static struct raft *R(struct cluster *c, unsigned i)
{
    return raft_fixture_get(&c->f, i);
}

/* What vigild does on every loop iteration, for every live server. */
static void poll_all(struct cluster *c)
{
    for (unsigned i = 0; i < c->n; i++) {
        if (raft_fixture_alive(&c->f, i) && !c->nodes[i].no_poll) {
            vg_repl_leadership_poll(&c->nodes[i].lead);
        }
    }
    if (c->poll_transfer) {
        vg_repl_transfer_poll(&c->transfer);
    }
}

typedef bool (*pred_fn)(struct cluster *c, void *arg);

/* Step the fixture, polling after every step, until PRED holds or MAX_MSECS
 * of simulated time have passed. */
static bool step_until(struct cluster *c, pred_fn pred, void *arg,
                       unsigned max_msecs)
{
    raft_time start = raft_fixture_time(&c->f);
    poll_all(c);
    while (!pred(c, arg)) {
        if (raft_fixture_time(&c->f) - start >= max_msecs) {
            return false;
        }
        raft_fixture_step(&c->f);
        poll_all(c);
    }
    return true;
}

static bool pred_never(struct cluster *c, void *arg)
{
    (void)c;
    (void)arg;
    return false;
}

/* Let MSECS of simulated time pass, polling as usual. */
static void step_for(struct cluster *c, unsigned msecs)
{
    step_until(c, pred_never, NULL, msecs);
}

/* Index of the live, ready leader other than EXCLUDE, or c->n. */
static unsigned ready_leader(struct cluster *c, unsigned exclude)
{
    for (unsigned i = 0; i < c->n; i++) {
        if (i != exclude && raft_fixture_alive(&c->f, i) &&
            c->nodes[i].lead.ready) {
            return i;
        }
    }
    return c->n;
}

static bool pred_ready_leader(struct cluster *c, void *arg)
{
    unsigned exclude = arg != NULL ? *(unsigned *)arg : MAX_NODES;
    return ready_leader(c, exclude) < c->n;
}

static unsigned wait_ready_leader(struct cluster *c, unsigned exclude,
                                  unsigned max_msecs)
{
    if (!step_until(c, pred_ready_leader, &exclude, max_msecs)) {
        fail_msg("no ready leader within %u ms", max_msecs);
    }
    return ready_leader(c, exclude);
}

static bool pred_node_ready(struct cluster *c, void *arg)
{
    return c->nodes[*(unsigned *)arg].lead.ready;
}

static bool pred_prop_done(struct cluster *c, void *arg)
{
    (void)c;
    return ((struct prop *)arg)->done;
}

/* All live servers have applied at least *ARG. */
static bool pred_all_applied(struct cluster *c, void *arg)
{
    raft_index index = *(raft_index *)arg;
    for (unsigned i = 0; i < c->n; i++) {
        if (raft_fixture_alive(&c->f, i) && R(c, i)->last_applied < index) {
            return false;
        }
    }
    return true;
}

static void wait_all_applied(struct cluster *c, raft_index index,
                             unsigned max_msecs)
{
    if (!step_until(c, pred_all_applied, &index, max_msecs)) {
        fail_msg("index %llu not applied everywhere within %u ms",
                 (unsigned long long)index, max_msecs);
    }
}

/* ---- proposals ------------------------------------------------------------ */

static void prop_cb(struct vg_repl_proposal *p, int status, uint64_t index,
                    int result)
{
    struct prop *x = p->data;
    x->done = true;
    x->status = status;
    x->index = index;
    x->result = result;
}

/* Propose through node I's leadership; returns vg_repl_propose's code and the
 * proposal in *OUT. */
static int propose(struct cluster *c, unsigned i, unsigned type,
                   const char *body, struct prop **out)
{
    struct prop *x;
    assert_true(c->n_props < MAX_PROPS);
    x = &c->props[c->n_props++];
    memset(x, 0, sizeof *x);
    x->p.data = x;
    *out = x;
    return vg_repl_propose(&c->nodes[i].lead, &x->p, type, body, prop_cb);
}

/* Commit a command through the ready leader; returns its index. */
static uint64_t commit(struct cluster *c, unsigned type, const char *body)
{
    unsigned l = ready_leader(c, MAX_NODES);
    struct prop *x;
    int rv;
    if (l == c->n) {
        l = wait_ready_leader(c, MAX_NODES, ELECTION_BOUND);
    }
    rv = propose(c, l, type, body, &x);
    if (rv != VG_OK) {
        fail_msg("propose on node %u: %s", l, vg_strerror(rv));
    }
    if (!step_until(c, pred_prop_done, x, COMMIT_BOUND)) {
        fail_msg("command not committed within %d ms", COMMIT_BOUND);
    }
    assert_int_equal(x->status, 0);
    assert_int_equal(x->result, VG_OK);
    return x->index;
}

static uint64_t commit_put(struct cluster *c, const char *key,
                           const char *value)
{
    char body[256];
    snprintf(body, sizeof body, "{\"key\":\"%s\",\"value\":\"%s\"}", key, value);
    return commit(c, VG_CMD_PUT, body);
}

/* Commit KEY<from>..KEY<to-1> with values "v<n>"; returns the last index. */
static uint64_t commit_puts(struct cluster *c, const char *prefix,
                            unsigned from, unsigned to)
{
    uint64_t index = 0;
    for (unsigned k = from; k < to; k++) {
        char key[64], value[64];
        snprintf(key, sizeof key, "%s%u", prefix, k);
        snprintf(value, sizeof value, "v%u", k);
        index = commit_put(c, key, value);
    }
    return index;
}

/* ---- assertions -------------------------------------------------------------- */

static void assert_key(struct vg_repl_fsm *f, const char *key,
                       const char *expected)
{
    char *value = NULL;
    assert_int_equal(vg_repl_fsm_get(f, key, &value), VG_OK);
    if (expected == NULL) {
        if (value != NULL) {
            fail_msg("%s: key %s has value %s, expected none", f->path, key,
                     value);
        }
        return;
    }
    if (value == NULL || strcmp(value, expected) != 0) {
        fail_msg("%s: key %s is %s, expected %s", f->path, key,
                 value ? value : "(none)", expected);
    }
    free(value);
}

static void assert_keys(struct vg_repl_fsm *f, const char *prefix,
                        unsigned from, unsigned to)
{
    for (unsigned k = from; k < to; k++) {
        char key[64], value[64];
        snprintf(key, sizeof key, "%s%u", prefix, k);
        snprintf(value, sizeof value, "v%u", k);
        assert_key(f, key, value);
    }
}

/* Live servers have applied the same log prefix: same raft last_applied,
 * same fsm index and chain, same digest. Steps until the live servers agree
 * on last_applied first. */
static bool pred_same_applied(struct cluster *c, void *arg)
{
    raft_index first = 0;
    bool have = false;
    (void)arg;
    for (unsigned i = 0; i < c->n; i++) {
        if (!raft_fixture_alive(&c->f, i)) {
            continue;
        }
        if (have && R(c, i)->last_applied != first) {
            return false;
        }
        first = R(c, i)->last_applied;
        have = true;
    }
    return true;
}

static void assert_converged(struct cluster *c)
{
    unsigned char ref[VG_DIGEST_SIZE];
    unsigned ref_i = c->n;
    if (!step_until(c, pred_same_applied, NULL, CATCH_UP_BOUND)) {
        fail_msg("live servers did not reach the same applied index");
    }
    for (unsigned i = 0; i < c->n; i++) {
        unsigned char d[VG_DIGEST_SIZE];
        if (!raft_fixture_alive(&c->f, i)) {
            continue;
        }
        assert_int_equal(c->nodes[i].fsm.fatal, 0);
        assert_int_equal(vg_repl_fsm_digest(&c->nodes[i].fsm, d), VG_OK);
        if (ref_i == c->n) {
            memcpy(ref, d, sizeof ref);
            ref_i = i;
            continue;
        }
        if (memcmp(ref, d, sizeof ref) != 0) {
            char h1[VG_DIGEST_HEX], h2[VG_DIGEST_HEX];
            vg_hex(ref, VG_DIGEST_SIZE, h1);
            vg_hex(d, VG_DIGEST_SIZE, h2);
            fail_msg("digest of node %u (%s) differs from node %u (%s)", i + 1,
                     h2, ref_i + 1, h1);
        }
        assert_int_equal(c->nodes[i].fsm.applied_index,
                         c->nodes[ref_i].fsm.applied_index);
        assert_memory_equal(c->nodes[i].fsm.chain, c->nodes[ref_i].fsm.chain,
                            VG_DIGEST_SIZE);
    }
}

/* Commit a CHECKPOINT built by node L (the leader) and wait until every live
 * server applied it. */
static uint64_t commit_checkpoint(struct cluster *c, unsigned l)
{
    char *body = vg_repl_fsm_checkpoint_body(&c->nodes[l].fsm);
    uint64_t index;
    assert_non_null(body);
    index = commit(c, VG_CMD_CHECKPOINT, body);
    free(body);
    wait_all_applied(c, index, COMMIT_BOUND);
    return index;
}

/* ---- a. election ------------------------------------------------------------ */

/* A leader is elected, but it is not ready (and refuses to propose) until its
 * ANNOUNCE is applied; the announce reaches every replica. */
static void test_election_ready_only_after_announce(void **state)
{
    struct cluster *c = *state;
    unsigned l;
    raft_term term;
    struct prop *x;

    assert_true(raft_fixture_step_until_has_leader(&c->f, ELECTION_BOUND));
    l = raft_fixture_leader_index(&c->f);
    assert_true(l < c->n);
    assert_int_equal(raft_state(R(c, l)), RAFT_LEADER);
    /* Leader by raft, but nothing polled yet: not ready, nothing announced. */
    assert_false(c->nodes[l].lead.ready);
    assert_int_equal(c->nodes[l].lead.announces, 0);
    assert_int_equal(propose(c, l, VG_CMD_PUT, "{}", &x), VG_ENOTLEADER);

    /* The first poll submits the announce; still not ready. */
    poll_all(c);
    term = R(c, l)->current_term;
    assert_int_equal(c->nodes[l].lead.announces, 1);
    assert_int_equal(c->nodes[l].lead.pending, 1);
    assert_true(c->nodes[l].lead.term == term);
    assert_false(c->nodes[l].lead.ready);
    assert_false(has_leader_row(&c->nodes[l].fsm, term, R(c, l)->id));
    assert_int_equal(propose(c, l, VG_CMD_PUT, "{}", &x), VG_ENOTLEADER);

    if (!step_until(c, pred_node_ready, &l, COMMIT_BOUND)) {
        fail_msg("leader not ready within %d ms", COMMIT_BOUND);
    }
    assert_int_equal(c->nodes[l].n_ready, 1);
    assert_true(c->nodes[l].announce_applied_when_ready);
    assert_int_equal(c->nodes[l].lead.pending, 0);
    assert_int_equal(c->nodes[l].lead.announces, 1);

    wait_all_applied(c, R(c, l)->last_applied, COMMIT_BOUND);
    for (unsigned i = 0; i < c->n; i++) {
        char addr[64];
        char expected[64];
        assert_true(has_leader_row(&c->nodes[i].fsm, term, R(c, l)->id));
        assert_int_equal(vg_repl_fsm_node_client_address(&c->nodes[i].fsm,
                                                         R(c, l)->id, addr,
                                                         sizeof addr),
                         VG_OK);
        snprintf(expected, sizeof expected, "127.0.0.1:%u",
                 9440 + (unsigned)R(c, l)->id);
        assert_string_equal(addr, expected);
        if (i != l) {
            assert_false(c->nodes[i].lead.ready);
            assert_int_equal(c->nodes[i].lead.announces, 0);
            assert_int_equal(propose(c, i, VG_CMD_PUT, "{}", &x), VG_ENOTLEADER);
        }
    }
    /* The announce is stamped with the leader's (simulated) clock. */
    {
        sqlite3_stmt *st;
        assert_int_equal(sqlite3_prepare_v2(c->nodes[0].fsm.db,
                                            "SELECT time_ms FROM leaders",
                                            -1, &st, NULL),
                         SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_true(sqlite3_column_int64(st, 0) > 0);
        assert_true((raft_time)sqlite3_column_int64(st, 0) <=
                    raft_fixture_time(&c->f));
        sqlite3_finalize(st);
    }
    assert_converged(c);
}

/* A proposal's callback reports the entry's index and the state machine's
 * verdict on it; a rejected command is committed and reported as such. */
static void test_proposal_reports_index_and_outcome(void **state)
{
    struct cluster *c = *state;
    unsigned l;
    struct prop *good, *bad;

    l = wait_ready_leader(c, MAX_NODES, ELECTION_BOUND);
    assert_int_equal(propose(c, l, VG_CMD_PUT,
                             "{\"key\":\"a\",\"value\":\"1\"}", &good),
                     VG_OK);
    assert_int_equal(propose(c, l, VG_CMD_PUT, "{\"value\":\"no key\"}", &bad),
                     VG_OK);
    assert_true(step_until(c, pred_prop_done, bad, COMMIT_BOUND));
    assert_true(good->done);
    assert_int_equal(good->status, 0);
    assert_int_equal(good->result, VG_OK);
    assert_int_equal(bad->status, 0);
    assert_int_equal(bad->result, VG_EINVAL);
    assert_int_equal(bad->index, good->index + 1);
    assert_int_equal(c->nodes[l].fsm.applied_index, bad->index);
    assert_int_equal(c->nodes[l].fsm.n_rejected, 1);
    /* The key of the good one carries the index raft gave it everywhere. */
    wait_all_applied(c, bad->index, COMMIT_BOUND);
    for (unsigned i = 0; i < c->n; i++) {
        sqlite3_stmt *st;
        assert_int_equal(sqlite3_prepare_v2(c->nodes[i].fsm.db,
                                            "SELECT idx, term FROM kv WHERE key='a'",
                                            -1, &st, NULL),
                         SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int64(st, 0), (sqlite3_int64)good->index);
        assert_int_equal(sqlite3_column_int64(st, 1),
                         (sqlite3_int64)R(c, l)->current_term);
        sqlite3_finalize(st);
        assert_int_equal(c->nodes[i].fsm.n_rejected, 1);
    }
    assert_converged(c);
}

/* replication.h: "CB may be NULL" for vg_repl_propose. A fire-and-forget
 * proposal must commit without the library calling a NULL callback. */
static void test_propose_without_callback(void **state)
{
    struct cluster *c = *state;
    unsigned l;
    struct prop *x;
    uint64_t index;

    l = wait_ready_leader(c, MAX_NODES, ELECTION_BOUND);
    assert_true(c->n_props < MAX_PROPS);
    x = &c->props[c->n_props++];
    memset(x, 0, sizeof *x);
    assert_int_equal(vg_repl_propose(&c->nodes[l].lead, &x->p, VG_CMD_PUT,
                                     "{\"key\":\"quiet\",\"value\":\"1\"}",
                                     NULL),
                     VG_OK);
    index = raft_last_index(R(c, l));
    wait_all_applied(c, index, COMMIT_BOUND);
    for (unsigned i = 0; i < c->n; i++) {
        assert_key(&c->nodes[i].fsm, "quiet", "1");
    }
}

static void isolate(struct cluster *c, unsigned l, bool on)
{
    for (unsigned j = 0; j < c->n; j++) {
        if (j == l) {
            continue;
        }
        if (on) {
            raft_fixture_saturate(&c->f, l, j);
            raft_fixture_saturate(&c->f, j, l);
        } else {
            raft_fixture_desaturate(&c->f, l, j);
            raft_fixture_desaturate(&c->f, j, l);
        }
    }
}

struct partition_wait {
    unsigned old;
};

static bool pred_old_unready_new_ready(struct cluster *c, void *arg)
{
    unsigned old = ((struct partition_wait *)arg)->old;
    return !c->nodes[old].lead.ready && ready_leader(c, old) < c->n;
}

/* A new leader is cut off before its announce commits. libraft 0.15 steps
 * down by failing the pending requests first and changing state after, so
 * the announce callback runs while raft_state() still says leader: it must
 * not propose again from inside that callback. The leader never becomes
 * ready, and its announce is applied nowhere. */
static void test_leader_isolated_before_announce_commits(void **state)
{
    struct cluster *c = *state;
    struct partition_wait w;
    unsigned l, m;
    raft_term term;

    assert_true(raft_fixture_step_until_has_leader(&c->f, ELECTION_BOUND));
    l = raft_fixture_leader_index(&c->f);
    term = R(c, l)->current_term;
    isolate(c, l, true);
    poll_all(c); /* submits the announce, which cannot commit now */
    assert_int_equal(c->nodes[l].lead.pending, 1);

    w.old = l;
    if (!step_until(c, pred_old_unready_new_ready, &w, ELECTION_BOUND)) {
        fail_msg("no new ready leader");
    }
    m = ready_leader(c, l);
    assert_true(raft_state(R(c, l)) != RAFT_LEADER);
    assert_int_equal(c->nodes[l].n_ready, 0);
    assert_int_equal(c->nodes[l].lead.pending, 0);

    isolate(c, l, false);
    commit_put(c, "k", "v");
    assert_converged(c);
    assert_int_equal(ready_leader(c, MAX_NODES), m);
    for (unsigned i = 0; i < c->n; i++) {
        assert_false(has_leader_row(&c->nodes[i].fsm, term, R(c, l)->id));
        assert_true(has_leader_row(&c->nodes[i].fsm, R(c, m)->current_term,
                                   R(c, m)->id));
    }
}

/* ---- b. leader kill ------------------------------------------------------------ */

static void test_leader_kill_failover(void **state)
{
    struct cluster *c = *state;
    unsigned l, l2;
    raft_time killed_at, elapsed;

    l = wait_ready_leader(c, MAX_NODES, ELECTION_BOUND);
    commit_puts(c, "before", 0, 10);

    raft_fixture_kill(&c->f, l);
    killed_at = raft_fixture_time(&c->f);
    l2 = wait_ready_leader(c, l, ELECTION_BOUND);
    elapsed = raft_fixture_time(&c->f) - killed_at;
    print_message("# new ready leader %u after %llu simulated ms\n", l2 + 1,
                  (unsigned long long)elapsed);
    assert_true(l2 != l);
    assert_true(elapsed <= FAILOVER_BOUND);
    assert_true(R(c, l2)->current_term > R(c, l)->current_term);
    assert_true(c->nodes[l2].announce_applied_when_ready);

    commit_puts(c, "after", 0, 10);
    assert_converged(c);
    for (unsigned i = 0; i < c->n; i++) {
        if (i == l) {
            continue;
        }
        assert_keys(&c->nodes[i].fsm, "before", 0, 10);
        assert_keys(&c->nodes[i].fsm, "after", 0, 10);
        assert_true(has_leader_row(&c->nodes[i].fsm, R(c, l2)->current_term,
                                   R(c, l2)->id));
    }
    /* The dead leader applied the first batch only. */
    assert_keys(&c->nodes[l].fsm, "before", 0, 10);
    assert_key(&c->nodes[l].fsm, "after0", NULL);
}

static bool pred_has_entry(struct cluster *c, void *arg)
{
    const raft_index *want = arg; /* {server index, log index} */
    return raft_last_index(R(c, (unsigned)want[0])) >= want[1];
}

/* The old leader dies right after a follower stored a new entry but before
 * that follower learnt it was committed. The follower becomes leader with an
 * entry of an earlier term at the end of its log; it must not be ready
 * before that entry is applied (committing the announce commits it). */
static void test_new_leader_ready_only_after_previous_term_tail(void **state)
{
    struct cluster *c = *state;
    unsigned l, heir, l2;
    struct prop *x;
    raft_index want[2];

    l = wait_ready_leader(c, MAX_NODES, ELECTION_BOUND);
    commit_puts(c, "k", 0, 3);
    wait_all_applied(c, R(c, l)->last_applied, COMMIT_BOUND);
    heir = (l + 1) % c->n;
    /* Only the heir gets the entry: the third server hears nothing more. */
    raft_fixture_saturate(&c->f, l, (l + 2) % c->n);
    assert_int_equal(propose(c, l, VG_CMD_PUT,
                             "{\"key\":\"tail\",\"value\":\"t\"}", &x),
                     VG_OK);
    want[0] = heir;
    want[1] = raft_last_index(R(c, l));
    assert_true(step_until(c, pred_has_entry, want, COMMIT_BOUND));
    /* The link stays saturated: the entry is still in flight to the third
     * server and the fixture would deliver it even from a dead sender. */
    raft_fixture_kill(&c->f, l);
    assert_true(R(c, heir)->commit_index < want[1]);
    assert_key(&c->nodes[heir].fsm, "tail", NULL);

    for (unsigned i = 0; i < c->n; i++) {
        c->nodes[i].watch_key = "tail";
    }
    l2 = wait_ready_leader(c, l, ELECTION_BOUND);
    /* Only the heir's log is complete enough to win. */
    assert_int_equal(l2, heir);
    assert_true(c->nodes[l2].announce_applied_when_ready);
    assert_true(c->nodes[l2].watch_key_seen_when_ready);
    assert_converged(c);
    for (unsigned i = 0; i < c->n; i++) {
        if (i != l) {
            assert_key(&c->nodes[i].fsm, "tail", "t");
        }
    }
}

/* Raft paper §5.4.2, Figure 8, on five servers. libraft 0.15 may let a new
 * leader commit an entry of an earlier term by counting replicas; a server
 * that applied it could then see it overwritten. With the announce entry
 * proposed at once by every new leader, the old entry only commits together
 * with an entry of the leader's own term, after which the competing server
 * can no longer be elected: every replica ends with the same state.
 *
 *   a. S1 leads in term T and stores E (key "fig8") on S2 only; S1 and S2 die.
 *   b. X (one of S3..S5) is elected in T+1, appends its announce at E's index
 *      but gets nothing out, and dies.
 *   c. S1 and S2 come back; one of them (W) is elected in T+2 and replicates E
 *      (with its announce) to the others.
 *   d. W and its partner die, X comes back: it must not win and overwrite E.
 *   e. Everyone back: identical digests, E everywhere. */
static bool pred_leader_among(struct cluster *c, void *arg)
{
    unsigned *mask_and_out = arg; /* [0]: bit mask of candidates, [1]: out */
    for (unsigned i = 0; i < c->n; i++) {
        if ((mask_and_out[0] & (1u << i)) && raft_fixture_alive(&c->f, i) &&
            raft_state(R(c, i)) == RAFT_LEADER &&
            R(c, i)->current_term > mask_and_out[2]) {
            mask_and_out[1] = i;
            return true;
        }
    }
    return false;
}

static void saturate_from(struct cluster *c, unsigned i, bool on)
{
    for (unsigned j = 0; j < c->n; j++) {
        if (j == i) {
            continue;
        }
        if (on) {
            raft_fixture_saturate(&c->f, i, j);
        } else {
            raft_fixture_desaturate(&c->f, i, j);
        }
    }
}

static void figure8(struct cluster *c, bool defended)
{
    uint64_t announces_before;
    unsigned l, x, w, v, arg[3];
    raft_index e_index;
    raft_term t;
    struct prop *p;
    raft_index want[2];

    l = wait_ready_leader(c, MAX_NODES, ELECTION_BOUND);
    assert_int_equal(l, 0); /* server 0 has the shortest election timer */
    commit_puts(c, "k", 0, 3);
    wait_all_applied(c, R(c, l)->last_applied, COMMIT_BOUND);
    t = R(c, 0)->current_term;

    /* a. */
    for (unsigned j = 2; j < 5; j++) {
        raft_fixture_saturate(&c->f, 0, j);
    }
    assert_int_equal(propose(c, 0, VG_CMD_PUT,
                             "{\"key\":\"fig8\",\"value\":\"E\"}", &p),
                     VG_OK);
    e_index = raft_last_index(R(c, 0));
    want[0] = 1;
    want[1] = e_index;
    assert_true(step_until(c, pred_has_entry, want, COMMIT_BOUND));
    raft_fixture_kill(&c->f, 0);
    raft_fixture_kill(&c->f, 1);

    /* b. */
    arg[0] = (1u << 2) | (1u << 3) | (1u << 4);
    arg[2] = (unsigned)t;
    assert_true(step_until(c, pred_leader_among, arg, ELECTION_BOUND));
    x = arg[1];
    saturate_from(c, x, true);
    assert_int_equal(raft_last_index(R(c, x)), e_index); /* its announce */
    raft_fixture_kill(&c->f, x);
    for (unsigned j = 2; j < 5; j++) {
        assert_true(raft_last_index(R(c, j)) <= e_index);
        if (j != x) {
            assert_true(raft_last_index(R(c, j)) < e_index);
        }
    }

    /* c. */
    for (unsigned j = 2; j < 5; j++) {
        raft_fixture_desaturate(&c->f, 0, j);
    }
    raft_fixture_revive(&c->f, 0);
    raft_fixture_revive(&c->f, 1);
    c->nodes[0].no_poll = !defended;
    c->nodes[1].no_poll = !defended;
    announces_before = c->nodes[0].lead.announces + c->nodes[1].lead.announces;
    arg[0] = 3u;
    arg[2] = (unsigned)t + 1;
    assert_true(step_until(c, pred_leader_among, arg, ELECTION_BOUND));
    w = arg[1];
    v = w == 0 ? 1 : 0;
    if (!defended) {
        /* No announce: W commits E, an entry of term T, by counting
         * replicas while its log holds nothing of its own term. */
        step_for(c, 300);
        assert_int_equal(c->nodes[0].lead.announces + c->nodes[1].lead.announces,
                         announces_before);
        assert_true(R(c, w)->current_term >= t + 2);
        assert_int_equal(raft_last_index(R(c, w)), e_index);
        assert_true(R(c, w)->commit_index >= e_index);
        assert_key(&c->nodes[w].fsm, "fig8", "E");
        /* X, whose log ends with a later term at E's index, could now win
         * an election without W and its partner and overwrite E on
         * replicas that applied it (libraft then stops them). */
        return;
    }
    if (!step_until(c, pred_node_ready, &w, ELECTION_BOUND)) {
        fail_msg("W (node %u) not ready", w + 1);
    }
    wait_all_applied(c, R(c, w)->last_applied, COMMIT_BOUND);
    assert_key(&c->nodes[w].fsm, "fig8", "E");

    /* d. */
    raft_fixture_kill(&c->f, w);
    raft_fixture_kill(&c->f, v);
    saturate_from(c, x, false);
    raft_fixture_revive(&c->f, x);
    {
        unsigned l2 = wait_ready_leader(c, MAX_NODES, ELECTION_BOUND * 2);
        assert_true(l2 != w && l2 != v);
        assert_true(l2 != x);
        assert_key(&c->nodes[l2].fsm, "fig8", "E");
    }

    /* e. */
    raft_fixture_revive(&c->f, w);
    raft_fixture_revive(&c->f, v);
    /* W still believes it leads until its first tick or message; let it
     * find out before choosing whom to propose through. */
    step_for(c, 500);
    assert_false(c->nodes[w].lead.ready);
    commit_put(c, "end", "1");
    assert_converged(c);
    for (unsigned i = 0; i < c->n; i++) {
        assert_key(&c->nodes[i].fsm, "fig8", "E");
        assert_key(&c->nodes[i].fsm, "end", "1");
    }
}

static void test_figure8_old_term_entry_not_lost(void **state)
{
    figure8(*state, true);
}

/* Why the announce is needed: the same scenario with new leaders that do not
 * poll shows libraft 0.15 committing an earlier term's entry by counting
 * replicas (DESIGN.md, defect 1). If this fails after a libraft upgrade, the
 * defect is fixed upstream; the announce stays correct, drop this test. */
static void test_libraft_defect1_without_announce(void **state)
{
    figure8(*state, false);
}

/* ---- c. partition ------------------------------------------------------------ */

static void test_partitioned_leader_steps_down(void **state)
{
    struct cluster *c = *state;
    struct partition_wait w;
    unsigned l, m;
    struct prop *stale, *x;
    raft_term old_term;

    l = wait_ready_leader(c, MAX_NODES, ELECTION_BOUND);
    commit_puts(c, "k", 0, 5);
    old_term = R(c, l)->current_term;

    isolate(c, l, true);
    /* Still ready a moment after the cut: it accepts a proposal that can
     * never commit. */
    assert_int_equal(propose(c, l, VG_CMD_PUT,
                             "{\"key\":\"stale\",\"value\":\"lost\"}", &stale),
                     VG_OK);

    w.old = l;
    if (!step_until(c, pred_old_unready_new_ready, &w, ELECTION_BOUND)) {
        fail_msg("partition: old leader ready=%d, no new ready leader",
                 c->nodes[l].lead.ready);
    }
    m = ready_leader(c, l);
    assert_true(m != l);
    assert_true(R(c, m)->current_term > old_term);
    assert_true(c->nodes[l].n_unready >= 1);
    assert_true(raft_state(R(c, l)) != RAFT_LEADER ||
                R(c, l)->current_term != c->nodes[l].lead.term);
    /* The deposed leader refuses new work. */
    assert_int_equal(propose(c, l, VG_CMD_PUT, "{\"key\":\"no\",\"value\":\"x\"}",
                             &x),
                     VG_ENOTLEADER);
    /* The stale proposal failed rather than being reported committed. */
    assert_true(stale->done);
    assert_int_not_equal(stale->status, 0);

    commit_puts(c, "m", 0, 5);

    isolate(c, l, false);
    assert_converged(c);
    for (unsigned i = 0; i < c->n; i++) {
        assert_keys(&c->nodes[i].fsm, "k", 0, 5);
        assert_keys(&c->nodes[i].fsm, "m", 0, 5);
        assert_key(&c->nodes[i].fsm, "stale", NULL);
        assert_key(&c->nodes[i].fsm, "no", NULL);
    }
    /* After the heal the old leader follows; only M is ready. */
    assert_false(c->nodes[l].lead.ready);
    assert_int_equal(ready_leader(c, MAX_NODES), m);
}

/* ---- d. snapshot install ---------------------------------------------------- */

/* A snapshot every 8 entries, 2 kept after it, on every server. */
static void snapshot_often(struct cluster *c)
{
    for (unsigned i = 0; i < c->n; i++) {
        raft_set_snapshot_threshold(R(c, i), 8);
        raft_set_snapshot_trailing(R(c, i), 2);
    }
}

struct compaction {
    unsigned node;
    raft_index past; /* the log must start after this index */
};

static bool pred_compacted(struct cluster *c, void *arg)
{
    struct compaction *want = arg;
    return R(c, want->node)->log.offset > want->past;
}

/* Snapshots are taken on the fixture's pool (async_work) and stored after
 * its disk latency: the log is compacted a few steps after the commit that
 * crossed the threshold. */
static void wait_compacted(struct cluster *c, unsigned node, raft_index past)
{
    struct compaction want = {node, past};
    assert_true(step_until(c, pred_compacted, &want, COMMIT_BOUND));
    assert_true(c->nodes[node].fsm.snapshots.taken > 0);
    assert_int_equal(c->nodes[node].fsm.snapshots.failed, 0);
    assert_null(c->nodes[node].fsm.snapshot_job);
}

static void test_lagging_node_catches_up_from_snapshot(void **state)
{
    struct cluster *c = *state;
    unsigned l, lag;
    uint64_t applied_before, n_applied_before;
    raft_index lag_last;

    snapshot_often(c);
    l = wait_ready_leader(c, MAX_NODES, ELECTION_BOUND);
    lag = (l + 1) % c->n;
    commit_puts(c, "early", 0, 3);
    wait_all_applied(c, R(c, l)->last_applied, COMMIT_BOUND);

    raft_fixture_kill(&c->f, lag);
    applied_before = c->nodes[lag].fsm.applied_index;
    n_applied_before = c->nodes[lag].fsm.n_applied;
    lag_last = raft_last_index(R(c, lag));
    commit_puts(c, "k", 0, 50);
    /* The leader's log no longer reaches back to what the laggard has, so
     * only a snapshot can bring it up to date. */
    wait_compacted(c, l, lag_last + 1);

    raft_fixture_revive(&c->f, lag);
    assert_converged(c);

    assert_non_null(strstr(c->nodes[lag].fsm.verdict_msg, "restored"));
    /* It got the 50 commands as an image, not one by one. */
    assert_true(c->nodes[lag].fsm.n_applied - n_applied_before < 50);
    assert_true(c->nodes[lag].fsm.applied_index >= applied_before + 50);
    assert_keys(&c->nodes[lag].fsm, "early", 0, 3);
    assert_keys(&c->nodes[lag].fsm, "k", 0, 50);

    /* And it keeps applying normally afterwards, and agrees with the leader
     * at the next checkpoints. */
    commit_put(c, "after", "v");
    assert_converged(c);
    assert_key(&c->nodes[lag].fsm, "after", "v");
    commit_checkpoint(c, l);
    commit_checkpoint(c, l);
    for (unsigned i = 0; i < c->n; i++) {
        assert_int_equal(c->nodes[i].fsm.verdict, VG_VERDICT_OK);
    }
}

static bool pred_snapshot_busy(struct cluster *c, void *arg)
{
    return vg_repl_snapshot_busy(R(c, *(unsigned *)arg));
}

/* libraft 0.15 drops an InstallSnapshot that reaches a follower while it
 * takes or stores a snapshot of its own, and its leader sends it again
 * only after the install snapshot timeout (30 s): the fail-stop wrapper
 * holds the message until the follower is done (failstop.c). Here the
 * laggard's disk is slow, so that its own snapshot is still being stored
 * when, cut off meanwhile and healed, it is sent the leader's: with the
 * hold it catches up in a few of its disk writes; without, only after the
 * timeout, past CATCH_UP_BOUND. */
static void test_snapshot_sent_while_follower_snapshots(void **state)
{
    struct cluster *c = *state;
    unsigned l, lag;
    raft_index lag_last;
    raft_time healed;

    snapshot_often(c);
    l = wait_ready_leader(c, MAX_NODES, ELECTION_BOUND);
    lag = (l + 1) % c->n;
    raft_fixture_set_disk_latency(&c->f, lag, 3000);

    /* Commands until the laggard takes a snapshot of its own. */
    for (unsigned k = 0; !vg_repl_snapshot_busy(R(c, lag)); k++) {
        char key[32];
        assert_true(k < 64);
        snprintf(key, sizeof key, "early%u", k);
        commit_put(c, key, "v");
        step_until(c, pred_snapshot_busy, &lag, 100);
    }
    isolate(c, lag, true);
    lag_last = raft_last_index(R(c, lag));
    commit_puts(c, "k", 0, 30);
    {
        /* The leader's log no longer reaches back to the laggard's. */
        struct compaction want = {l, lag_last + 1};
        assert_true(step_until(c, pred_compacted, &want, COMMIT_BOUND));
    }
    assert_true(vg_repl_snapshot_busy(R(c, lag)));
    isolate(c, lag, false);
    healed = raft_fixture_time(&c->f);
    assert_converged(c);
    print_message("# caught up %llu ms after the heal; held %llu, delivered %llu, "
                  "longest hold %llu ms\n",
                  (unsigned long long)(raft_fixture_time(&c->f) - healed),
                  (unsigned long long)c->failstop[lag].snapshots_held,
                  (unsigned long long)c->failstop[lag].snapshots_delivered,
                  (unsigned long long)c->failstop[lag].snapshot_hold_max_ms);
    assert_true(c->failstop[lag].snapshots_held >= 1);
    assert_true(c->failstop[lag].snapshots_delivered >= 1);
    assert_non_null(strstr(c->nodes[lag].fsm.verdict_msg, "restored"));
    assert_keys(&c->nodes[lag].fsm, "k", 0, 30);
    for (unsigned i = 0; i < c->n; i++) {
        assert_int_equal(c->faults[i].calls, 0);
    }
}

/* ---- e. membership change ----------------------------------------------------- */

static void change_cb(struct raft_change *req, int status)
{
    struct change *ch = req->data;
    ch->done = true;
    ch->status = status;
}

static bool pred_change_done(struct cluster *c, void *arg)
{
    (void)arg;
    return c->change.done;
}

static void fourth_server_joins(struct cluster *c, bool compacted)
{
    unsigned l, n4;
    struct raft *r4;

    if (compacted) {
        snapshot_often(c);
    }
    l = wait_ready_leader(c, MAX_NODES, ELECTION_BOUND);
    commit_puts(c, "k", 0, 10);
    if (compacted) {
        wait_compacted(c, l, 1);
    }

    n4 = add_node(c);
    r4 = R(c, n4);
    assert_int_equal(raft_start(r4), 0);

    c->change.req.data = &c->change;
    assert_int_equal(raft_add(R(c, l), &c->change.req, r4->id, r4->address,
                              change_cb),
                     0);
    assert_true(step_until(c, pred_change_done, NULL, COMMIT_BOUND));
    assert_int_equal(c->change.status, 0);

    c->change.done = false;
    assert_int_equal(raft_assign(R(c, l), &c->change.req, r4->id, RAFT_VOTER,
                                 change_cb),
                     0);
    if (!step_until(c, pred_change_done, NULL, CATCH_UP_BOUND)) {
        fail_msg("promotion of server %llu not done",
                 (unsigned long long)r4->id);
    }
    assert_int_equal(c->change.status, 0);

    commit_puts(c, "later", 0, 3);
    assert_converged(c);
    assert_keys(&c->nodes[n4].fsm, "k", 0, 10);
    assert_keys(&c->nodes[n4].fsm, "later", 0, 3);
    assert_int_equal(r4->configuration.n, 4);
    for (unsigned i = 0; i < r4->configuration.n; i++) {
        assert_int_equal(r4->configuration.servers[i].role, RAFT_VOTER);
    }
    assert_false(c->nodes[n4].lead.ready);
    if (compacted) {
        assert_non_null(strstr(c->nodes[n4].fsm.verdict_msg, "restored"));
    } else {
        /* Replayed the whole log: every command applied one by one. */
        assert_int_equal(c->nodes[n4].fsm.n_applied,
                         c->nodes[l].fsm.n_applied);
        assert_null(strstr(c->nodes[n4].fsm.verdict_msg, "restored"));
    }
}

static void test_fourth_server_joins(void **state)
{
    fourth_server_joins(*state, false);
}

/* The same after the log was compacted: the newcomer starts from a
 * snapshot installed into its empty database. */
static void test_fourth_server_joins_from_snapshot(void **state)
{
    fourth_server_joins(*state, true);
}

/* ---- f. consistency checkpoint ---------------------------------------------- */

static void test_checkpoint_detects_corrupted_follower(void **state)
{
    struct cluster *c = *state;
    unsigned l, bad = 2;
    uint64_t cp1;
    char *err = NULL;

    l = wait_ready_leader(c, MAX_NODES, ELECTION_BOUND);
    if (l == bad) {
        bad = 1;
    }
    commit_puts(c, "k", 0, 10);
    wait_all_applied(c, R(c, l)->last_applied, COMMIT_BOUND);

    if (sqlite3_exec(c->nodes[bad].fsm.db, "UPDATE kv SET value='x'", NULL,
                     NULL, &err) != SQLITE_OK) {
        fail_msg("corrupt: %s", err);
    }

    cp1 = commit_checkpoint(c, l);
    for (unsigned i = 0; i < c->n; i++) {
        assert_int_equal(c->nodes[i].fsm.checkpoint_index, cp1);
        assert_int_equal(c->nodes[i].fsm.verdict, VG_VERDICT_UNKNOWN);
    }
    commit_checkpoint(c, l);

    for (unsigned i = 0; i < c->n; i++) {
        struct vg_repl_fsm *f = &c->nodes[i].fsm;
        if (i == bad) {
            assert_int_equal(f->verdict, VG_VERDICT_DIVERGED);
            assert_int_equal(f->checked_index, cp1);
            assert_non_null(strstr(f->verdict_msg, "differs"));
            print_message("# node %u: %s\n", i + 1, f->verdict_msg);
        } else {
            assert_int_equal(f->verdict, VG_VERDICT_OK);
            assert_int_equal(f->checked_index, cp1);
        }
    }
}

/* ---- g. fail-stop --------------------------------------------------------------- */

static void fault_cb(struct vg_repl_failstop *w, const char *what, int status)
{
    struct fault *ft = w->data;
    ft->calls++;
    ft->status = status;
    snprintf(ft->what, sizeof ft->what, "%s", what);
}

static void wrap_io(struct cluster *c, unsigned i)
{
    struct raft *r = R(c, i);
    struct vg_repl_failstop *w = &c->failstop[i];
    vg_repl_failstop_init(w, r->io);
    w->io.data = r;
    w->fault_cb = fault_cb;
    w->data = &c->faults[i];
    r->io = &w->io;
}

static bool pred_fault(struct cluster *c, void *arg)
{
    return c->faults[*(unsigned *)arg].calls > 0;
}

static void test_failstop_on_follower_disk_error(void **state)
{
    struct cluster *c = *state;
    unsigned l, fol;
    struct prop *x;

    l = wait_ready_leader(c, MAX_NODES, ELECTION_BOUND);
    fol = (l + 1) % c->n;
    wrap_io(c, fol);
    /* The wrapper is transparent while the disk works. */
    commit_puts(c, "k", 0, 3);
    wait_all_applied(c, R(c, l)->last_applied, COMMIT_BOUND);
    assert_int_equal(c->faults[fol].calls, 0);

    assert_int_equal(propose(c, l, VG_CMD_PUT, "{\"key\":\"f\",\"value\":\"1\"}",
                             &x),
                     VG_OK);
    raft_fixture_io_fault(&c->f, fol, 0, 1);
    if (!step_until(c, pred_fault, &fol, COMMIT_BOUND)) {
        fail_msg("no fault reported by node %u", fol + 1);
    }
    assert_int_equal(c->faults[fol].calls, 1);
    assert_int_equal(c->failstop[fol].faults, 1);
    assert_int_equal(c->faults[fol].status, RAFT_IOERR);
    assert_non_null(strstr(c->faults[fol].what, "appending entries failed"));
    assert_string_equal(c->faults[fol].what, c->failstop[fol].what);
    print_message("# fault: %s\n", c->faults[fol].what);
    /* The majority commits regardless. */
    assert_true(step_until(c, pred_prop_done, x, COMMIT_BOUND));
    assert_int_equal(x->status, 0);
}

/* libraft 0.15 keeps leadership after its own disk write failed; the
 * wrapper reports it so the node can stop instead. */
static void test_failstop_on_leader_disk_error(void **state)
{
    struct cluster *c = *state;
    unsigned l;
    struct prop *x;
    int rv;

    l = wait_ready_leader(c, MAX_NODES, ELECTION_BOUND);
    wrap_io(c, l);
    commit_puts(c, "k", 0, 3);
    assert_int_equal(c->faults[l].calls, 0);

    raft_fixture_io_fault(&c->f, l, 0, 1);
    rv = propose(c, l, VG_CMD_PUT, "{\"key\":\"f\",\"value\":\"1\"}", &x);
    if (rv == VG_OK) {
        step_until(c, pred_fault, &l, COMMIT_BOUND);
    }
    assert_int_equal(c->faults[l].calls, 1);
    assert_non_null(strstr(c->faults[l].what, "failed"));
    assert_non_null(strstr(c->faults[l].what, raft_strerror(RAFT_IOERR)));
    print_message("# propose: %s; fault: %s; still leader: %d\n",
                  vg_strerror(rv), c->faults[l].what,
                  raft_state(R(c, l)) == RAFT_LEADER);
}

/* The fixture fails appends synchronously, but libraft's uv backend reports
 * most disk errors through the append callback. This injector patches the
 * fixture io's append so that the next write completes with RAFT_IOERR,
 * exercising the wrapper's asynchronous path. */
static struct {
    int (*orig)(struct raft_io *io, struct raft_io_append *req,
                const struct raft_entry entries[], unsigned n,
                raft_io_append_cb cb);
    unsigned armed; /* fail this many completions */
    unsigned failed;
} inject;

struct inject_req {
    struct raft_io_append r;
    struct raft_io_append *outer;
    raft_io_append_cb cb;
};

static void inject_cb(struct raft_io_append *r, int status)
{
    struct inject_req *x = r->data;
    struct raft_io_append *outer = x->outer;
    raft_io_append_cb cb = x->cb;
    free(x);
    if (status == 0 && inject.armed > 0) {
        inject.armed--;
        inject.failed++;
        status = RAFT_IOERR;
    }
    outer->cb = cb;
    cb(outer, status);
}

static int inject_append(struct raft_io *io, struct raft_io_append *req,
                         const struct raft_entry entries[], unsigned n,
                         raft_io_append_cb cb)
{
    struct inject_req *x = malloc(sizeof *x);
    int rv;
    assert_non_null(x);
    x->r.data = x;
    x->outer = req;
    x->cb = cb;
    rv = inject.orig(io, &x->r, entries, n, inject_cb);
    if (rv != 0) {
        free(x);
    }
    return rv;
}

static void test_failstop_on_async_append_error(void **state)
{
    struct cluster *c = *state;
    unsigned l;
    struct prop *x;
    struct raft_io *inner;

    l = wait_ready_leader(c, MAX_NODES, ELECTION_BOUND);
    wrap_io(c, l);
    inner = c->failstop[l].inner;
    memset(&inject, 0, sizeof inject);
    inject.orig = inner->append;
    inner->append = inject_append;
    commit_puts(c, "k", 0, 2);
    assert_int_equal(c->faults[l].calls, 0);

    inject.armed = 1;
    assert_int_equal(propose(c, l, VG_CMD_PUT, "{\"key\":\"f\",\"value\":\"1\"}",
                             &x),
                     VG_OK);
    if (!step_until(c, pred_fault, &l, COMMIT_BOUND)) {
        fail_msg("asynchronous append failure not reported");
    }
    assert_int_equal(inject.failed, 1);
    assert_int_equal(c->faults[l].calls, 1);
    assert_int_equal(c->faults[l].status, RAFT_IOERR);
    assert_non_null(strstr(c->faults[l].what, "appending entries failed"));
    print_message("# async fault: %s; leader still leader: %d, ready: %d\n",
                  c->faults[l].what, raft_state(R(c, l)) == RAFT_LEADER,
                  c->nodes[l].lead.ready);
}

/* A new leader whose announce cannot be written is not ready; the next poll
 * (not libraft's callback) proposes the announce again. Both ways a write
 * can fail are covered: synchronously (raft_apply refuses) and through the
 * append callback. */
static void test_failed_announce_retried_by_next_poll(void **state)
{
    struct cluster *c = *state;
    unsigned l;

    assert_true(raft_fixture_step_until_has_leader(&c->f, ELECTION_BOUND));
    l = raft_fixture_leader_index(&c->f);
    wrap_io(c, l);

    /* Synchronous: the announce is not even submitted. */
    raft_fixture_io_fault(&c->f, l, 0, 1);
    poll_all(c);
    assert_int_equal(c->faults[l].calls, 1);
    assert_int_equal(c->nodes[l].lead.announces, 0);
    assert_int_equal(c->nodes[l].lead.pending, 0);
    assert_false(c->nodes[l].lead.ready);

    /* Asynchronous: submitted, then the write fails. */
    memset(&inject, 0, sizeof inject);
    inject.orig = c->failstop[l].inner->append;
    c->failstop[l].inner->append = inject_append;
    inject.armed = 1;
    poll_all(c);
    assert_int_equal(c->nodes[l].lead.announces, 1);
    assert_int_equal(c->nodes[l].lead.pending, 1);
    if (!step_until(c, pred_node_ready, &l, COMMIT_BOUND)) {
        fail_msg("leader never became ready (announces %llu, pending %u)",
                 (unsigned long long)c->nodes[l].lead.announces,
                 c->nodes[l].lead.pending);
    }
    assert_int_equal(inject.failed, 1);
    assert_int_equal(c->faults[l].calls, 2);
    print_message("# ready after %llu announces\n",
                  (unsigned long long)c->nodes[l].lead.announces);
    assert_true(c->nodes[l].lead.announces >= 2);
    assert_true(c->nodes[l].announce_applied_when_ready);
    commit_put(c, "k", "v");
    assert_converged(c);
}

/* ---- h. transfer ------------------------------------------------------------------ */

static bool pred_transfer_done(struct cluster *c, void *arg)
{
    (void)arg;
    return !c->transfer.active;
}

static void test_transfer_to_chosen_follower(void **state)
{
    struct cluster *c = *state;
    unsigned l, target;

    l = wait_ready_leader(c, MAX_NODES, ELECTION_BOUND);
    commit_puts(c, "k", 0, 3);
    target = (l + 2) % c->n;

    assert_int_equal(vg_repl_transfer_start(&c->transfer, R(c, l),
                                            R(c, target)->id, 1500, 3),
                     VG_OK);
    assert_true(c->transfer.active);
    assert_int_equal(vg_repl_transfer_start(&c->transfer, R(c, l),
                                            R(c, target)->id, 1500, 3),
                     VG_EBUSY);
    c->poll_transfer = true;
    if (!step_until(c, pred_transfer_done, NULL, CATCH_UP_BOUND)) {
        fail_msg("transfer still active after %d ms", CATCH_UP_BOUND);
    }
    c->poll_transfer = false;
    assert_int_equal(c->transfer.status, VG_OK);
    assert_int_equal(c->transfer.landed, R(c, target)->id);
    assert_string_equal(c->transfer.errmsg, "");
    /* libraft no longer owns the request: the struct can be reused. */
    assert_false(c->transfer.req_busy);
    print_message("# transfer landed on %llu after %u attempt(s)\n",
                  (unsigned long long)c->transfer.landed,
                  c->transfer.attempts);

    /* The target becomes the ready leader, the old one is not ready. */
    assert_int_equal(wait_ready_leader(c, MAX_NODES, ELECTION_BOUND), target);
    assert_false(c->nodes[l].lead.ready);
    commit_puts(c, "after", 0, 3);
    assert_converged(c);
}

static bool pred_timeout_now_sent(struct cluster *c, void *arg)
{
    return raft_fixture_n_send(&c->f, *(unsigned *)arg, RAFT_IO_TIMEOUT_NOW) > 0;
}

/* libraft 0.15 may silently not transfer; here the first TimeoutNow is lost
 * on the wire. The transfer notices that leadership did not move and tries
 * again. */
static void test_transfer_retried_when_timeout_now_lost(void **state)
{
    struct cluster *c = *state;
    unsigned l, target;

    l = wait_ready_leader(c, MAX_NODES, ELECTION_BOUND);
    commit_puts(c, "k", 0, 3);
    wait_all_applied(c, R(c, l)->last_applied, COMMIT_BOUND);
    target = (l + 1) % c->n;

    raft_fixture_saturate(&c->f, l, target);
    assert_int_equal(vg_repl_transfer_start(&c->transfer, R(c, l),
                                            R(c, target)->id, 1500, 3),
                     VG_OK);
    c->poll_transfer = true;
    assert_true(step_until(c, pred_timeout_now_sent, &l, COMMIT_BOUND));
    step_for(c, 50); /* past the network latency: the message is dropped */
    raft_fixture_desaturate(&c->f, l, target);
    assert_int_equal(raft_state(R(c, l)), RAFT_LEADER);

    if (!step_until(c, pred_transfer_done, NULL, CATCH_UP_BOUND)) {
        fail_msg("transfer still active after %d ms", CATCH_UP_BOUND);
    }
    c->poll_transfer = false;
    assert_int_equal(c->transfer.status, VG_OK);
    assert_int_equal(c->transfer.attempts, 2);
    assert_int_equal(c->transfer.landed, R(c, target)->id);
    assert_int_equal(wait_ready_leader(c, MAX_NODES, ELECTION_BOUND), target);
    commit_put(c, "after", "v");
    assert_converged(c);
}

static void test_transfer_refusals(void **state)
{
    struct cluster *c = *state;
    unsigned l, fol;

    l = wait_ready_leader(c, MAX_NODES, ELECTION_BOUND);
    fol = (l + 1) % c->n;
    assert_int_equal(vg_repl_transfer_start(&c->transfer, R(c, fol), R(c, l)->id,
                                            1000, 1),
                     VG_ENOTLEADER);
    assert_int_equal(vg_repl_transfer_start(&c->transfer, R(c, l), R(c, l)->id,
                                            1000, 1),
                     VG_EINVAL);
    assert_non_null(strstr(c->transfer.errmsg, "already the leader"));
    assert_int_equal(vg_repl_transfer_start(&c->transfer, R(c, l), 42, 1000, 1),
                     VG_ENOTFOUND);
    assert_false(c->transfer.active);
}

/* A target that cannot take over (it is dead) is retried and then reported
 * as a timeout; the leader stays leader. */
static void test_transfer_to_dead_follower_times_out(void **state)
{
    struct cluster *c = *state;
    unsigned l, target;

    l = wait_ready_leader(c, MAX_NODES, ELECTION_BOUND);
    target = (l + 1) % c->n;
    raft_fixture_kill(&c->f, target);
    assert_int_equal(vg_repl_transfer_start(&c->transfer, R(c, l),
                                            R(c, target)->id, 1500, 2),
                     VG_OK);
    c->poll_transfer = true;
    if (!step_until(c, pred_transfer_done, NULL, CATCH_UP_BOUND)) {
        fail_msg("transfer still active after %d ms", CATCH_UP_BOUND);
    }
    c->poll_transfer = false;
    assert_int_equal(c->transfer.status, VG_ETIMEDOUT);
    assert_int_equal(c->transfer.attempts, 2);
    assert_non_null(strstr(c->transfer.errmsg, "did not move"));
    assert_int_equal(raft_state(R(c, l)), RAFT_LEADER);
    step_for(c, 500);
    assert_true(c->nodes[l].lead.ready);
    commit_put(c, "still", "works");
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_election_ready_only_after_announce),
        T(test_proposal_reports_index_and_outcome),
        T(test_propose_without_callback),
        T(test_leader_isolated_before_announce_commits),
        T(test_leader_kill_failover),
        T(test_new_leader_ready_only_after_previous_term_tail),
        cmocka_unit_test_setup_teardown(test_figure8_old_term_entry_not_lost,
                                        setup5, teardown),
        cmocka_unit_test_setup_teardown(test_libraft_defect1_without_announce,
                                        setup5, teardown),
        T(test_partitioned_leader_steps_down),
        T(test_lagging_node_catches_up_from_snapshot),
        cmocka_unit_test_setup_teardown(test_snapshot_sent_while_follower_snapshots,
                                        setup_wrapped, teardown),
        T(test_fourth_server_joins),
        T(test_fourth_server_joins_from_snapshot),
        T(test_checkpoint_detects_corrupted_follower),
        T(test_failstop_on_follower_disk_error),
        T(test_failstop_on_leader_disk_error),
        T(test_failstop_on_async_append_error),
        T(test_failed_announce_retried_by_next_poll),
        T(test_transfer_to_chosen_follower),
        T(test_transfer_retried_when_timeout_now_lost),
        T(test_transfer_refusals),
        T(test_transfer_to_dead_follower_times_out),
    };
    /* e.g. VG_TEST_FILTER='*partition*' */
    if (getenv("VG_TEST_FILTER") != NULL) {
        cmocka_set_test_filter(getenv("VG_TEST_FILTER"));
    }
    return cmocka_run_group_tests_name("replication", tests, NULL, NULL);
}
