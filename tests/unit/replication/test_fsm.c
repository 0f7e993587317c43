/* Unit tests for the SQLite state machine (replication/fsm.c), driven
 * directly through its struct raft_fsm without raft: with f->raft == NULL
 * apply takes applied_index + 1 as the index; a struct raft whose
 * last_applied we set stands in for libraft where the index matters
 * (replays after a restart).
 *
 * Covered: commands applied and visible; invalid commands applied as
 * rejections (index and chain advance, state does not); durability of index
 * and chain across close/reopen and skipping of replays; snapshot and
 * restore (identical digest, older image ignored, garbage refused, diverged
 * replica rebuilt); consistency checkpoints detecting a corrupted replica;
 * SQLite errors making the fsm fail-stop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>
#include <sqlite3.h>
#include <unistd.h>

#include "replication.h"

/* ---- fixture ------------------------------------------------------------ */

struct fx {
    char dir[64];
    struct vg_repl_fsm a; /* plays the leader where it matters */
    struct vg_repl_fsm b;
    bool a_open;
    bool b_open;
    uint64_t time_ms; /* stamped into commands, advanced by each one */
};

static void path_in(struct fx *x, const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", x->dir, name);
}

static void open_fsm(struct fx *x, struct vg_repl_fsm *f, const char *name)
{
    char path[128];
    path_in(x, name, path, sizeof path);
    if (vg_repl_fsm_open(f, path) != VG_OK) {
        fail_msg("open %s: %s", path, f->errmsg);
    }
}

static int setup(void **state)
{
    struct fx *x = calloc(1, sizeof *x);
    assert_non_null(x);
    snprintf(x->dir, sizeof x->dir, "/tmp/vg-test-fsm-XXXXXX");
    assert_non_null(mkdtemp(x->dir));
    open_fsm(x, &x->a, "a.db");
    x->a_open = true;
    open_fsm(x, &x->b, "b.db");
    x->b_open = true;
    x->time_ms = 1700000000000ull;
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    struct fx *x = *state;
    if (x->a_open) {
        vg_repl_fsm_close(&x->a);
    }
    if (x->b_open) {
        vg_repl_fsm_close(&x->b);
    }
    vg_remove_tree(x->dir);
    free(x);
    return 0;
}

/* ---- helpers ------------------------------------------------------------ */

/* Apply a raw buffer; returns apply's return code and the outcome code. */
static int apply_buf(struct vg_repl_fsm *f, const struct raft_buffer *buf,
                     int *outcome)
{
    void *result = (void *)(intptr_t)-1;
    int rv = f->fsm.apply(&f->fsm, buf, &result);
    *outcome = (int)(intptr_t)result;
    return rv;
}

static struct raft_buffer make_cmd(struct fx *x, unsigned type,
                                   const char *body)
{
    struct vg_cmd cmd = {
        .type = (uint16_t)type,
        .term = 2,
        .time_ms = x->time_ms++,
        .proposer = 1,
        .body = body,
        .body_len = (uint32_t)strlen(body),
    };
    struct raft_buffer buf;
    assert_int_equal(vg_cmd_encode(&cmd, &buf), VG_OK);
    return buf;
}

/* Apply one command to F; the apply itself must succeed (return 0). Returns
 * the outcome (VG_OK or the rejection code). */
static int apply_cmd(struct fx *x, struct vg_repl_fsm *f, unsigned type,
                     const char *body)
{
    struct raft_buffer buf = make_cmd(x, type, body);
    int outcome;
    assert_int_equal(apply_buf(f, &buf, &outcome), 0);
    raft_free(buf.base);
    return outcome;
}

/* Apply the same command to both fsms (what replication does); time stamps
 * are identical because the command is encoded once. */
static int apply_both(struct fx *x, unsigned type, const char *body)
{
    struct raft_buffer buf = make_cmd(x, type, body);
    int oa, ob;
    assert_int_equal(apply_buf(&x->a, &buf, &oa), 0);
    assert_int_equal(apply_buf(&x->b, &buf, &ob), 0);
    assert_int_equal(oa, ob);
    raft_free(buf.base);
    return oa;
}

static void put(struct fx *x, struct vg_repl_fsm *f, const char *key,
                const char *value)
{
    char body[256];
    snprintf(body, sizeof body, "{\"key\":\"%s\",\"value\":\"%s\"}", key, value);
    assert_int_equal(apply_cmd(x, f, VG_CMD_PUT, body), VG_OK);
}

static void put_both(struct fx *x, const char *key, const char *value)
{
    char body[256];
    snprintf(body, sizeof body, "{\"key\":\"%s\",\"value\":\"%s\"}", key, value);
    assert_int_equal(apply_both(x, VG_CMD_PUT, body), VG_OK);
}

static void assert_value(struct vg_repl_fsm *f, const char *key,
                         const char *expected)
{
    char *value = (char *)"sentinel";
    assert_int_equal(vg_repl_fsm_get(f, key, &value), VG_OK);
    if (expected == NULL) {
        assert_null(value);
    } else {
        assert_non_null(value);
        assert_string_equal(value, expected);
    }
    free(value);
}

static void digest_of(struct vg_repl_fsm *f, unsigned char out[VG_DIGEST_SIZE])
{
    assert_int_equal(vg_repl_fsm_digest(f, out), VG_OK);
}

static void assert_same_digest(struct vg_repl_fsm *f1, struct vg_repl_fsm *f2)
{
    unsigned char d1[VG_DIGEST_SIZE], d2[VG_DIGEST_SIZE];
    digest_of(f1, d1);
    digest_of(f2, d2);
    assert_memory_equal(d1, d2, VG_DIGEST_SIZE);
}

static void sql(struct vg_repl_fsm *f, const char *text)
{
    char *err = NULL;
    if (sqlite3_exec(f->db, text, NULL, NULL, &err) != SQLITE_OK) {
        fail_msg("%s: %s", text, err ? err : "?");
    }
}

static long long sql_int(struct vg_repl_fsm *f, const char *text)
{
    sqlite3_stmt *st;
    long long v;
    assert_int_equal(sqlite3_prepare_v2(f->db, text, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Take a snapshot of F as libraft does: one buffer, owned by the caller. */
static struct raft_buffer *snapshot_of(struct vg_repl_fsm *f)
{
    struct raft_buffer *bufs = raft_malloc(sizeof *bufs);
    assert_non_null(bufs);
    assert_int_equal(vg_repl_fsm_snapshot_copy(f, &bufs[0]), VG_OK);
    assert_true(bufs[0].len >= 100);
    assert_memory_equal(bufs[0].base, "SQLite format 3", 16);
    return bufs;
}

/* Restore BUFS[0] into F. On success the fsm owns (and has freed) the data,
 * on failure it is still ours; the array is always ours. */
static int restore_into(struct vg_repl_fsm *f, struct raft_buffer *bufs)
{
    int rv = f->fsm.restore(&f->fsm, &bufs[0]);
    if (rv != 0) {
        raft_free(bufs[0].base);
    }
    raft_free(bufs);
    return rv;
}

/* ---- apply -------------------------------------------------------------- */

static void test_put_applied_and_visible(void **state)
{
    struct fx *x = *state;
    struct vg_repl_fsm *f = &x->a;

    assert_int_equal(f->applied_index, 0);
    assert_value(f, "pump.p1", NULL);
    put(x, f, "pump.p1", "on");
    assert_int_equal(f->applied_index, 1);
    assert_int_equal(f->n_applied, 1);
    assert_int_equal(f->n_rejected, 0);
    assert_int_equal(f->fatal, 0);
    assert_value(f, "pump.p1", "on");

    /* Overwrite; the row remembers the index, term and time of the command. */
    put(x, f, "pump.p1", "off");
    assert_value(f, "pump.p1", "off");
    assert_int_equal(sql_int(f, "SELECT idx FROM kv WHERE key='pump.p1'"), 2);
    assert_int_equal(sql_int(f, "SELECT term FROM kv WHERE key='pump.p1'"), 2);
    assert_int_equal(sql_int(f, "SELECT time_ms FROM kv WHERE key='pump.p1'"),
                     (long long)x->time_ms - 1);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM kv"), 1);
    assert_int_equal(f->applied_index, 2);
}

/* Values with characters that need JSON escapes survive as text. */
static void test_put_unicode_and_escapes(void **state)
{
    struct fx *x = *state;
    assert_int_equal(apply_cmd(x, &x->a, VG_CMD_PUT,
                               "{\"key\":\"t\\u00e4g\",\"value\":\"a\\\"b\\nc\"}"),
                     VG_OK);
    assert_value(&x->a, "t\xc3\xa4g", "a\"b\nc");
}

static void test_node_info_announce_and_forget(void **state)
{
    struct fx *x = *state;
    struct vg_repl_fsm *f = &x->a;
    char addr[64];

    assert_int_equal(apply_cmd(x, f, VG_CMD_NODE_INFO,
                               "{\"node_id\":2,\"raft_address\":\"h2:9001\","
                               "\"client_address\":\"h2:9443\"}"),
                     VG_OK);
    assert_int_equal(vg_repl_fsm_node_client_address(f, 2, addr, sizeof addr),
                     VG_OK);
    assert_string_equal(addr, "h2:9443");
    assert_int_equal(vg_repl_fsm_node_client_address(f, 9, addr, sizeof addr),
                     VG_ENOTFOUND);

    /* The announce records the leader (proposer 1, term 2) and fills in
     * peers nobody announced, without overriding what node 2 said. */
    assert_int_equal(
        apply_cmd(x, f, VG_CMD_ANNOUNCE,
                  "{\"raft_address\":\"h1:9001\",\"client_address\":\"h1:9443\","
                  "\"peers\":[{\"node_id\":2,\"raft_address\":\"x\","
                  "\"client_address\":\"stale\"},{\"node_id\":3,"
                  "\"raft_address\":\"h3:9001\",\"client_address\":\"h3:9443\"},"
                  "{\"node_id\":\"bad\"}]}"),
        VG_OK);
    assert_int_equal(sql_int(f, "SELECT node_id FROM leaders WHERE term=2"), 1);
    assert_int_equal(vg_repl_fsm_node_client_address(f, 1, addr, sizeof addr),
                     VG_OK);
    assert_string_equal(addr, "h1:9443");
    assert_int_equal(vg_repl_fsm_node_client_address(f, 2, addr, sizeof addr),
                     VG_OK);
    assert_string_equal(addr, "h2:9443");
    assert_int_equal(vg_repl_fsm_node_client_address(f, 3, addr, sizeof addr),
                     VG_OK);
    assert_string_equal(addr, "h3:9443");

    assert_int_equal(apply_cmd(x, f, VG_CMD_NODE_FORGET, "{\"node_id\":2}"),
                     VG_OK);
    assert_int_equal(vg_repl_fsm_node_client_address(f, 2, addr, sizeof addr),
                     VG_ENOTFOUND);
    assert_int_equal(f->applied_index, 3);
    assert_int_equal(f->n_rejected, 0);
}

/* A command that cannot be carried out is still applied, as a rejection:
 * every replica rejects it identically, so index and chain advance in step
 * while the replicated state is untouched. */
static void test_invalid_commands_are_applied_as_rejections(void **state)
{
    struct fx *x = *state;
    struct vg_repl_fsm *f = &x->a;
    static const struct {
        unsigned type;
        const char *body;
    } bad[] = {
        {VG_CMD_PUT, "not json"},
        {VG_CMD_PUT, "[\"an\",\"array\"]"},
        {VG_CMD_PUT, "{\"value\":\"no key\"}"},
        {VG_CMD_PUT, "{\"key\":\"k\"}"},
        {VG_CMD_PUT, "{\"key\":\"\",\"value\":\"empty key\"}"},
        {VG_CMD_PUT, "{\"key\":1,\"value\":\"number key\"}"},
        {VG_CMD_PUT, "{\"key\":\"k\",\"key\":\"dup\",\"value\":\"v\"}"},
        {VG_CMD_NODE_INFO, "{\"node_id\":0,\"raft_address\":\"a\","
                           "\"client_address\":\"b\"}"},
        {VG_CMD_NODE_INFO, "{\"node_id\":2}"},
        {VG_CMD_ANNOUNCE, "{}"},
        {VG_CMD_CHECKPOINT, "{\"ref_index\":1,\"ref_digest\":\"zz\"}"},
        {VG_CMD_NODE_FORGET, "{\"node_id\":\"2\"}"},
    };
    unsigned char before[VG_DIGEST_SIZE], after[VG_DIGEST_SIZE];
    unsigned char chain[VG_DIGEST_SIZE];

    put(x, f, "k", "good");
    digest_of(f, before);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t index = f->applied_index;
        memcpy(chain, f->chain, sizeof chain);
        if (apply_cmd(x, f, bad[i].type, bad[i].body) != VG_EINVAL) {
            fail_msg("command %zu (%s) was not rejected", i, bad[i].body);
        }
        assert_int_equal(f->applied_index, index + 1);
        assert_memory_not_equal(f->chain, chain, VG_DIGEST_SIZE);
        assert_int_equal(f->fatal, 0);
    }
    digest_of(f, after);
    assert_memory_equal(before, after, VG_DIGEST_SIZE);
    assert_value(f, "k", "good");
    assert_int_equal(f->n_rejected, sizeof bad / sizeof bad[0]);
    assert_int_equal(f->n_applied, 1 + sizeof bad / sizeof bad[0]);
    /* The index is durable too. */
    assert_int_equal(
        sql_int(f, "SELECT value FROM vg_meta WHERE key='applied_index'"),
        (long long)f->applied_index);
}

/* Bytes that are not a command at all (a corrupted entry) are rejected the
 * same way, with the decoder's code as the outcome. */
static void test_undecodable_entry_is_rejected(void **state)
{
    struct fx *x = *state;
    struct vg_repl_fsm *f = &x->a;
    unsigned char junk[16] = "garbage!";
    struct raft_buffer buf = {junk, sizeof junk};
    struct raft_buffer cmd = make_cmd(x, VG_CMD_PUT, "{\"key\":\"k\",\"value\":\"v\"}");
    int outcome;

    assert_int_equal(apply_buf(f, &buf, &outcome), 0);
    assert_int_equal(outcome, VG_EMALFORMED);
    ((unsigned char *)cmd.base)[0] = 7; /* a version from the future */
    assert_int_equal(apply_buf(f, &cmd, &outcome), 0);
    assert_int_equal(outcome, VG_EUNSUPPORTED);
    assert_int_equal(f->applied_index, 2);
    assert_int_equal(f->n_rejected, 2);
    assert_value(f, "k", NULL);
    raft_free(cmd.base);
}

/* Replicas that applied the same commands, valid or not, agree on the chain;
 * the padding of an entry does not enter the chain. */
static void test_chain_is_deterministic(void **state)
{
    struct fx *x = *state;
    put_both(x, "a", "1");
    apply_both(x, VG_CMD_PUT, "bogus");
    put_both(x, "b", "2");
    assert_memory_equal(x->a.chain, x->b.chain, VG_DIGEST_SIZE);
    assert_same_digest(&x->a, &x->b);
}

/* ---- applied_cb ----------------------------------------------------------- */

struct seen {
    unsigned calls;
    uint64_t index;
    int result;
    bool had_cmd;
    unsigned type;
    uint32_t body_len;
};

static void applied_cb(struct vg_repl_fsm *f, uint64_t index,
                       const struct vg_cmd *cmd, int result)
{
    struct seen *s = f->data;
    s->calls++;
    s->index = index;
    s->result = result;
    s->had_cmd = cmd != NULL;
    if (cmd != NULL) {
        s->type = cmd->type;
        s->body_len = cmd->body_len;
    }
}

static void test_applied_cb(void **state)
{
    struct fx *x = *state;
    struct vg_repl_fsm *f = &x->a;
    struct seen s = {0};
    unsigned char junk[8] = "junk";
    struct raft_buffer buf = {junk, sizeof junk};
    int outcome;

    f->applied_cb = applied_cb;
    f->data = &s;
    put(x, f, "k", "v");
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.index, 1);
    assert_int_equal(s.result, VG_OK);
    assert_true(s.had_cmd);
    assert_int_equal(s.type, VG_CMD_PUT);

    apply_cmd(x, f, VG_CMD_PUT, "{}");
    assert_int_equal(s.calls, 2);
    assert_int_equal(s.result, VG_EINVAL);
    assert_true(s.had_cmd); /* decoded fine, only invalid */

    assert_int_equal(apply_buf(f, &buf, &outcome), 0);
    assert_int_equal(s.calls, 3);
    assert_int_equal(s.index, 3);
    assert_int_equal(s.result, VG_EMALFORMED);
    assert_false(s.had_cmd);
}

/* A command that did not decode has no fields to show: the callback must
 * get NULL, not a struct the decoder never filled in. */
static void test_applied_cb_gets_no_cmd_for_unsupported_version(void **state)
{
    struct fx *x = *state;
    struct vg_repl_fsm *f = &x->a;
    struct seen s = {0};
    struct raft_buffer cmd = make_cmd(x, VG_CMD_PUT, "{\"key\":\"k\",\"value\":\"v\"}");
    int outcome;

    f->applied_cb = applied_cb;
    f->data = &s;
    ((unsigned char *)cmd.base)[0] = VG_CMD_VERSION + 1;
    assert_int_equal(apply_buf(f, &cmd, &outcome), 0);
    assert_int_equal(outcome, VG_EUNSUPPORTED);
    assert_int_equal(s.calls, 1);
    assert_false(s.had_cmd);
    raft_free(cmd.base);
}

/* ---- durability and replay ---------------------------------------------- */

static void test_reopen_keeps_index_chain_and_state(void **state)
{
    struct fx *x = *state;
    struct vg_repl_fsm *f = &x->a;
    unsigned char chain[VG_DIGEST_SIZE], digest[VG_DIGEST_SIZE];
    uint64_t index;

    put(x, f, "a", "1");
    apply_cmd(x, f, VG_CMD_PUT, "rejected");
    put(x, f, "b", "2");
    index = f->applied_index;
    assert_int_equal(index, 3);
    memcpy(chain, f->chain, sizeof chain);
    digest_of(f, digest);

    vg_repl_fsm_close(f);
    x->a_open = false;
    open_fsm(x, f, "a.db");
    x->a_open = true;

    assert_int_equal(f->applied_index, index);
    assert_memory_equal(f->chain, chain, VG_DIGEST_SIZE);
    assert_int_equal(f->n_applied, 0); /* counters are per process */
    assert_value(f, "a", "1");
    assert_value(f, "b", "2");
    {
        unsigned char again[VG_DIGEST_SIZE];
        digest_of(f, again);
        assert_memory_equal(again, digest, VG_DIGEST_SIZE);
    }
    /* With no raft the next apply continues after the stored index. */
    put(x, f, "c", "3");
    assert_int_equal(f->applied_index, index + 1);
}

/* After a restart libraft replays its log from its last snapshot; entries
 * the database already holds are skipped, not applied twice. */
static void test_replay_of_applied_index_is_skipped(void **state)
{
    struct fx *x = *state;
    struct vg_repl_fsm *f = &x->a;
    struct raft fake;
    unsigned char chain[VG_DIGEST_SIZE], digest[VG_DIGEST_SIZE];
    int outcome;
    struct raft_buffer buf;

    put(x, f, "a", "1");
    put(x, f, "b", "2");
    put(x, f, "c", "3");
    vg_repl_fsm_close(f);
    x->a_open = false;
    open_fsm(x, f, "a.db");
    x->a_open = true;
    memcpy(chain, f->chain, sizeof chain);
    digest_of(f, digest);

    memset(&fake, 0, sizeof fake);
    f->raft = &fake;
    for (raft_index last = 0; last < 3; last++) {
        fake.last_applied = last; /* so this entry's index is last + 1 <= 3 */
        buf = make_cmd(x, VG_CMD_PUT, "{\"key\":\"a\",\"value\":\"replayed\"}");
        assert_int_equal(apply_buf(f, &buf, &outcome), 0);
        assert_int_equal(outcome, VG_OK);
        raft_free(buf.base);
        assert_int_equal(f->n_skipped, last + 1);
    }
    assert_int_equal(f->n_applied, 0);
    assert_int_equal(f->applied_index, 3);
    assert_memory_equal(f->chain, chain, VG_DIGEST_SIZE);
    assert_value(f, "a", "1");
    {
        unsigned char again[VG_DIGEST_SIZE];
        digest_of(f, again);
        assert_memory_equal(again, digest, VG_DIGEST_SIZE);
    }

    /* The first new index is applied, at the index raft says. */
    fake.last_applied = 3;
    put(x, f, "a", "new");
    assert_int_equal(f->applied_index, 4);
    assert_value(f, "a", "new");
    /* Non-command entries (barriers, configurations) take indexes too: the
     * index comes from raft, not from counting commands. */
    fake.last_applied = 9;
    put(x, f, "d", "4");
    assert_int_equal(f->applied_index, 10);
    assert_int_equal(sql_int(f, "SELECT idx FROM kv WHERE key='d'"), 10);
    assert_int_equal(f->n_skipped, 3);
    f->raft = NULL;
}

/* ---- snapshot / restore --------------------------------------------------- */

static void fill(struct fx *x, struct vg_repl_fsm *f)
{
    char *body;
    put(x, f, "a", "1");
    put(x, f, "b", "2");
    assert_int_equal(apply_cmd(x, f, VG_CMD_ANNOUNCE,
                               "{\"raft_address\":\"h1:1\",\"client_address\":"
                               "\"h1:2\"}"),
                     VG_OK);
    assert_int_equal(apply_cmd(x, f, VG_CMD_NODE_INFO,
                               "{\"node_id\":2,\"raft_address\":\"h2:1\","
                               "\"client_address\":\"h2:2\"}"),
                     VG_OK);
    body = vg_repl_fsm_checkpoint_body(f);
    assert_non_null(body);
    assert_int_equal(apply_cmd(x, f, VG_CMD_CHECKPOINT, body), VG_OK);
    free(body);
    put(x, f, "c", "3");
}

static void test_snapshot_restore_into_fresh_fsm(void **state)
{
    struct fx *x = *state;
    struct raft_buffer *snap;
    char addr[32];
    char *mode = NULL;

    fill(x, &x->a);
    snap = snapshot_of(&x->a);
    assert_int_equal(restore_into(&x->b, snap), 0);

    assert_same_digest(&x->a, &x->b);
    assert_int_equal(x->b.applied_index, x->a.applied_index);
    assert_memory_equal(x->b.chain, x->a.chain, VG_DIGEST_SIZE);
    assert_int_equal(x->b.checkpoint_index, x->a.checkpoint_index);
    assert_memory_equal(x->b.checkpoint_digest, x->a.checkpoint_digest,
                        VG_DIGEST_SIZE);
    assert_value(&x->b, "a", "1");
    assert_value(&x->b, "b", "2");
    assert_value(&x->b, "c", "3");
    assert_int_equal(vg_repl_fsm_node_client_address(&x->b, 2, addr, sizeof addr),
                     VG_OK);
    assert_string_equal(addr, "h2:2");
    assert_int_equal(x->b.verdict, VG_VERDICT_UNKNOWN);
    assert_non_null(strstr(x->b.verdict_msg, "restored"));

    /* The live file is still a WAL database. */
    {
        sqlite3_stmt *st;
        assert_int_equal(sqlite3_prepare_v2(x->b.db, "PRAGMA journal_mode", -1,
                                            &st, NULL),
                         SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        mode = strdup((const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        assert_string_equal(mode, "wal");
        free(mode);
    }

    /* Both go on identically from there... */
    put_both(x, "d", "4");
    assert_same_digest(&x->a, &x->b);
    assert_memory_equal(x->b.chain, x->a.chain, VG_DIGEST_SIZE);

    /* ...and the restored state is durable. */
    vg_repl_fsm_close(&x->b);
    x->b_open = false;
    open_fsm(x, &x->b, "b.db");
    x->b_open = true;
    assert_same_digest(&x->a, &x->b);
    assert_int_equal(x->b.applied_index, x->a.applied_index);
    assert_value(&x->b, "d", "4");
}

/* libraft's version-3 snapshot: snapshot() on the loop, then the loop
 * applies on while snapshot_async() serializes on its pool. The image must
 * hold the state libraft records for the snapshot, the one snapshot() saw,
 * not one with the commands applied meanwhile. */
static void test_async_snapshot_holds_state_of_snapshot_call(void **state)
{
    struct fx *x = *state;
    struct raft_buffer *bufs = NULL;
    struct raft_buffer image;
    unsigned n_bufs = 0;
    struct vg_repl_fsm c;
    unsigned char at_pin[VG_DIGEST_SIZE], restored[VG_DIGEST_SIZE];
    uint64_t pinned;

    fill(x, &x->a);
    pinned = x->a.applied_index;
    digest_of(&x->a, at_pin);
    assert_int_equal(x->a.fsm.version, 3);
    assert_int_equal(x->a.fsm.snapshot(&x->a.fsm, &bufs, &n_bufs), 0);
    assert_non_null(x->a.snapshot_job);
    /* The pool has not run yet: libraft has nothing to store. */
    assert_int_equal(n_bufs, 0);
    put(x, &x->a, "d", "4");
    put(x, &x->a, "a", "changed");
    assert_int_equal(x->a.fsm.snapshot_async(&x->a.fsm, &bufs, &n_bufs), 0);
    assert_int_equal(n_bufs, 1);
    image.len = bufs[0].len;
    image.base = raft_malloc(image.len);
    assert_non_null(image.base);
    memcpy(image.base, bufs[0].base, image.len);
    assert_int_equal(x->a.fsm.snapshot_finalize(&x->a.fsm, &bufs, &n_bufs), 0);
    assert_null(x->a.snapshot_job);
    assert_int_equal(x->a.snapshots.taken, 1);
    assert_int_equal(x->a.snapshots.failed, 0);
    assert_int_equal(x->a.snapshots.last_index, pinned);
    assert_int_equal(x->a.snapshots.last_bytes, image.len);

    open_fsm(x, &c, "c.db");
    assert_int_equal(c.fsm.restore(&c.fsm, &image), 0);
    assert_int_equal(c.applied_index, pinned);
    digest_of(&c, restored);
    assert_memory_equal(restored, at_pin, VG_DIGEST_SIZE);
    assert_value(&c, "a", "1");
    assert_value(&c, "d", NULL);
    /* The writer went on meanwhile. */
    assert_int_equal(x->a.applied_index, pinned + 2);
    assert_value(&x->a, "a", "changed");
    vg_repl_fsm_close(&c);
}

/* libraft finalizes without snapshot_async when it cannot queue the work,
 * and never asks for a second snapshot before the first is finalized. */
static void test_snapshot_finalized_without_async(void **state)
{
    struct fx *x = *state;
    struct raft_buffer *bufs = NULL, *again = NULL;
    unsigned n_bufs = 0, n_again = 0;
    struct raft_buffer *snap;

    fill(x, &x->a);
    assert_int_equal(x->a.fsm.snapshot(&x->a.fsm, &bufs, &n_bufs), 0);
    assert_int_equal(x->a.fsm.snapshot(&x->a.fsm, &again, &n_again), RAFT_BUSY);
    assert_int_equal(n_again, 0);
    assert_int_equal(x->a.fsm.snapshot_finalize(&x->a.fsm, &bufs, &n_bufs), 0);
    assert_null(x->a.snapshot_job);
    assert_int_equal(x->a.snapshots.taken, 0);
    assert_int_equal(x->a.snapshots.failed, 1);
    assert_non_null(strstr(x->a.errmsg, "snapshot"));

    /* The next one works, and a snapshot begun and never finalized is
     * released by close (the sanitizer build checks for the leak). */
    snap = snapshot_of(&x->a);
    assert_int_equal(restore_into(&x->b, snap), 0);
    assert_same_digest(&x->a, &x->b);
    assert_int_equal(x->a.fsm.snapshot(&x->a.fsm, &bufs, &n_bufs), 0);
    vg_repl_fsm_close(&x->a);
    x->a_open = false;
}

/* A snapshot() that cannot pin the state (here: the file it would open a
 * reader on is gone) asks libraft to try again later, and for a second
 * does not try at all. */
static void test_snapshot_pin_failure_backs_off(void **state)
{
    struct fx *x = *state;
    struct raft_buffer *bufs = NULL;
    unsigned n_bufs = 0;
    char path[128];

    put(x, &x->a, "a", "1");
    path_in(x, "a.db", path, sizeof path);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(x->a.fsm.snapshot(&x->a.fsm, &bufs, &n_bufs), RAFT_BUSY);
    assert_null(x->a.snapshot_job);
    assert_int_equal(x->a.snapshots.failed, 1);
    assert_non_null(strstr(x->a.errmsg, "snapshot at index 1"));
    assert_int_equal(x->a.fsm.snapshot(&x->a.fsm, &bufs, &n_bufs), RAFT_BUSY);
    assert_int_equal(x->a.snapshots.failed, 1);
    assert_int_equal(n_bufs, 0);
}

/* A database without a WAL (in memory) has no second connection to read
 * from: snapshot() serializes it on the spot. */
static void test_snapshot_of_database_without_wal(void **state)
{
    struct fx *x = *state;
    struct vg_repl_fsm m;
    struct raft_buffer *snap;

    if (vg_repl_fsm_open(&m, ":memory:") != VG_OK) {
        fail_msg("open :memory:: %s", m.errmsg);
    }
    fill(x, &m);
    snap = snapshot_of(&m);
    assert_int_equal(m.snapshots.taken, 1);
    assert_int_equal(restore_into(&x->b, snap), 0);
    assert_same_digest(&m, &x->b);
    vg_repl_fsm_close(&m);
}

/* The usual case at start-up: libraft restores its last snapshot into an fsm
 * whose durable database is already past it; the database is kept. */
static void test_restore_older_image_is_ignored(void **state)
{
    struct fx *x = *state;
    struct raft_buffer *snap;
    unsigned char digest[VG_DIGEST_SIZE], after[VG_DIGEST_SIZE];

    put(x, &x->a, "a", "old");
    snap = snapshot_of(&x->a);
    put(x, &x->a, "a", "new");
    put(x, &x->a, "b", "2");
    digest_of(&x->a, digest);

    assert_int_equal(restore_into(&x->a, snap), 0);
    assert_int_equal(x->a.applied_index, 3);
    assert_value(&x->a, "a", "new");
    assert_value(&x->a, "b", "2");
    digest_of(&x->a, after);
    assert_memory_equal(digest, after, VG_DIGEST_SIZE);
    assert_null(strstr(x->a.verdict_msg, "restored"));

    /* An image at exactly our index is ignored as well. */
    snap = snapshot_of(&x->a);
    assert_int_equal(restore_into(&x->a, snap), 0);
    assert_int_equal(x->a.applied_index, 3);
    assert_null(strstr(x->a.verdict_msg, "restored"));
}

static void test_restore_garbage_fails_and_changes_nothing(void **state)
{
    struct fx *x = *state;
    unsigned char digest[VG_DIGEST_SIZE], after[VG_DIGEST_SIZE];
    unsigned char chain[VG_DIGEST_SIZE];
    struct raft_buffer *bufs;
    sqlite3 *plain;
    unsigned char *image;
    sqlite3_int64 size;

    put(x, &x->a, "a", "1");
    digest_of(&x->a, digest);
    memcpy(chain, x->a.chain, sizeof chain);

    /* Not a database at all. */
    bufs = raft_malloc(sizeof *bufs);
    bufs[0].len = 4096;
    bufs[0].base = raft_malloc(bufs[0].len);
    memset(bufs[0].base, 'x', bufs[0].len);
    assert_int_equal(restore_into(&x->a, bufs), RAFT_CORRUPT);
    assert_non_null(strstr(x->a.errmsg, "not a database"));

    /* Too short to hold a database header. */
    bufs = raft_malloc(sizeof *bufs);
    bufs[0].len = 20;
    bufs[0].base = raft_malloc(bufs[0].len);
    memcpy(bufs[0].base, "SQLite format 3\0abcd", 20);
    assert_int_equal(restore_into(&x->a, bufs), RAFT_CORRUPT);

    /* The right magic followed by garbage. */
    bufs = raft_malloc(sizeof *bufs);
    bufs[0].len = 8192;
    bufs[0].base = raft_malloc(bufs[0].len);
    memset(bufs[0].base, 0xa5, bufs[0].len);
    memcpy(bufs[0].base, "SQLite format 3", 16);
    assert_int_equal(restore_into(&x->a, bufs), RAFT_CORRUPT);

    /* A valid SQLite database that is not a Vigil image. */
    assert_int_equal(sqlite3_open(":memory:", &plain), SQLITE_OK);
    assert_int_equal(sqlite3_exec(plain, "CREATE TABLE t(x); INSERT INTO t VALUES(1)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    image = sqlite3_serialize(plain, "main", &size, 0);
    assert_non_null(image);
    bufs = raft_malloc(sizeof *bufs);
    bufs[0].len = (size_t)size;
    bufs[0].base = raft_malloc(bufs[0].len);
    memcpy(bufs[0].base, image, bufs[0].len);
    sqlite3_free(image);
    sqlite3_close(plain);
    assert_int_equal(restore_into(&x->a, bufs), RAFT_CORRUPT);
    assert_non_null(strstr(x->a.errmsg, "no applied index"));
    assert_int_equal(x->a.n_refused, 4);

    digest_of(&x->a, after);
    assert_memory_equal(digest, after, VG_DIGEST_SIZE);
    assert_memory_equal(chain, x->a.chain, VG_DIGEST_SIZE);
    assert_int_equal(x->a.applied_index, 1);
    assert_int_equal(x->a.fatal, 0);
    assert_value(&x->a, "a", "1");
    /* It still applies normally. */
    put(x, &x->a, "b", "2");
    assert_int_equal(x->a.applied_index, 2);
}

/* IMAGE (A's snapshot) changed by SQL run on a writable copy of it: a new
 * image in the shape libraft hands over. */
static struct raft_buffer *image_edited(const struct raft_buffer *image,
                                        const char *sql)
{
    struct raft_buffer *out = raft_malloc(sizeof *out);
    unsigned char *copy = sqlite3_malloc64(image->len), *edited;
    sqlite3_int64 size = 0;
    sqlite3 *db;

    assert_non_null(out);
    assert_non_null(copy);
    memcpy(copy, image->base, image->len);
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    assert_int_equal(sqlite3_deserialize(db, "main", copy, (sqlite3_int64)image->len,
                                         (sqlite3_int64)image->len,
                                         SQLITE_DESERIALIZE_FREEONCLOSE |
                                             SQLITE_DESERIALIZE_RESIZEABLE),
                     SQLITE_OK);
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    }
    edited = sqlite3_serialize(db, "main", &size, 0);
    assert_non_null(edited);
    out->len = (size_t)size;
    out->base = raft_malloc(out->len);
    assert_non_null(out->base);
    memcpy(out->base, edited, out->len);
    sqlite3_free(edited);
    sqlite3_close(db);
    return out;
}

/* IMAGE rewritten with pages of PAGE_SIZE bytes (a VACUUM of a
 * rollback-journal file in X's directory can change that). */
static struct raft_buffer *image_with_page_size(struct fx *x,
                                                const struct raft_buffer *image,
                                                int page_size)
{
    struct raft_buffer *out = raft_malloc(sizeof *out);
    char path[128], sql[64];
    unsigned char *bytes;
    sqlite3_int64 size = 0;
    sqlite3 *db;
    FILE *fp;

    assert_non_null(out);
    path_in(x, "resized.db", path, sizeof path);
    fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(image->base, 1, image->len, fp), image->len);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    snprintf(sql, sizeof sql, "PRAGMA page_size = %d; VACUUM", page_size);
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    }
    bytes = sqlite3_serialize(db, "main", &size, 0);
    assert_non_null(bytes);
    assert_int_equal((bytes[16] << 8 | bytes[17]), page_size);
    out->len = (size_t)size;
    out->base = raft_malloc(out->len);
    assert_non_null(out->base);
    memcpy(out->base, bytes, out->len);
    sqlite3_free(bytes);
    sqlite3_close(db);
    unlink(path);
    return out;
}

/* The page of IMAGE where table NAME's b-tree starts (its root). */
static unsigned char *root_page(const struct raft_buffer *image, const char *name)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    long long root = 0, page_size = 0;

    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    assert_int_equal(sqlite3_deserialize(db, "main", image->base,
                                         (sqlite3_int64)image->len,
                                         (sqlite3_int64)image->len,
                                         SQLITE_DESERIALIZE_READONLY),
                     SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT rootpage, (SELECT page_size FROM"
                                        " pragma_page_size) FROM sqlite_schema"
                                        " WHERE name = ?",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    root = sqlite3_column_int64(st, 0);
    page_size = sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
    assert_true(root >= 2 && (size_t)(root * page_size) <= image->len);
    return (unsigned char *)image->base + (root - 1) * page_size;
}

/* Refused images leave the replica exactly as it was (found by
 * fuzz_snapshot: a damaged page was copied over a sound database, and an
 * image without its applied index read as index 0). */
/* IMAGE refused by F (RAFT_CORRUPT), saying WHY (NULL: whatever). */
static void expect_refused(struct vg_repl_fsm *f, struct raft_buffer *image,
                           const char *why)
{
    assert_int_equal(restore_into(f, image), RAFT_CORRUPT);
    if (why != NULL && strstr(f->errmsg, why) == NULL) {
        fail_msg("refused, but for another reason: %s", f->errmsg);
    }
}

static void test_restore_refuses_damaged_images(void **state)
{
    struct fx *x = *state;
    unsigned char before[VG_DIGEST_SIZE], after[VG_DIGEST_SIZE];
    struct raft_buffer *good, *bad;
    char body[32];

    fill(x, &x->a);
    snprintf(body, sizeof body, "{\"level\":%u}", VG_REPL_APPLY_LEVEL);
    assert_int_equal(apply_cmd(x, &x->a, VG_CMD_CLUSTER_LEVEL, body), VG_OK);
    put(x, &x->b, "mine", "kept");
    digest_of(&x->b, before);
    good = snapshot_of(&x->a);

    /* A page that is not a b-tree page any more (kv's root). */
    bad = image_edited(good, "SELECT 1");
    root_page(bad, "kv")[0] = 0;
    expect_refused(&x->b, bad, "damaged");

    /* No applied index (also when vg_meta's key index cannot find it). */
    bad = image_edited(good, "DELETE FROM vg_meta WHERE key = 'applied_index'");
    expect_refused(&x->b, bad, "no applied index");
    bad = image_edited(good, "UPDATE vg_meta SET value = 'x' WHERE key = 'applied_index'");
    expect_refused(&x->b, bad, NULL);

    /* Another page size: a WAL database cannot take it. */
    bad = image_with_page_size(x, good, 8192);
    expect_refused(&x->b, bad, "page size 8192");

    /* A cluster level that cannot be read. */
    bad = image_edited(good, "UPDATE cluster_level SET level = 0");
    expect_refused(&x->b, bad, "cluster level");

    /* A table declared otherwise (quick_check finds nothing wrong). */
    bad = image_edited(good, "ALTER TABLE kv ADD COLUMN extra");
    expect_refused(&x->b, bad, "table kv is declared otherwise");

    assert_int_equal(x->b.n_refused, 6);
    assert_int_equal(x->b.n_restored, 0);
    assert_int_equal(x->b.fatal, 0);
    assert_non_null(strstr(x->b.verdict_msg, "refused a snapshot"));
    digest_of(&x->b, after);
    assert_memory_equal(before, after, VG_DIGEST_SIZE);
    assert_value(&x->b, "mine", "kept");

    /* A level this vigild does not apply stops the node, but copies
     * nothing first. */
    x->b.max_level = 1;
    bad = image_edited(good, "SELECT 1");
    assert_int_equal(restore_into(&x->b, bad), RAFT_IOERR);
    assert_int_equal(x->b.fatal, 1);
    assert_non_null(strstr(x->b.errmsg, "run a newer vigild"));
    digest_of(&x->b, after);
    assert_memory_equal(before, after, VG_DIGEST_SIZE);

    x->b.fatal = 0;
    x->b.max_level = 0;

    /* A declaration written otherwise but of the same shape (a vigild
     * that reformats its schema) is no reason to refuse. */
    bad = image_edited(good, "PRAGMA writable_schema = ON;"
                             "UPDATE sqlite_schema SET sql = replace(sql, '(', ' ( ')"
                             " WHERE name = 'kv'");
    assert_int_equal(restore_into(&x->b, bad), 0);
    assert_same_digest(&x->a, &x->b);
    assert_int_equal(x->b.n_restored, 1);
    assert_int_equal(x->b.n_refused, 6);

    /* The sound image is taken by a replica that applies its level. */
    x->b.verdict = VG_VERDICT_DIVERGED; /* takes it at its own index too */
    assert_int_equal(restore_into(&x->b, good), 0);
    assert_same_digest(&x->a, &x->b);
    assert_int_equal(x->b.n_restored, 2);
}

/* ---- checkpoints ---------------------------------------------------------- */

static int checkpoint_both(struct fx *x)
{
    char *body = vg_repl_fsm_checkpoint_body(&x->a);
    int rv;
    assert_non_null(body);
    rv = apply_both(x, VG_CMD_CHECKPOINT, body);
    free(body);
    return rv;
}

static void test_checkpoints_match_on_identical_replicas(void **state)
{
    struct fx *x = *state;
    uint64_t cp1;

    put_both(x, "a", "1");
    apply_both(x, VG_CMD_ANNOUNCE,
               "{\"raft_address\":\"h1:1\",\"client_address\":\"h1:2\"}");
    put_both(x, "b", "2");
    assert_same_digest(&x->a, &x->b);

    /* The first checkpoint has nothing to compare with yet. */
    assert_int_equal(checkpoint_both(x), VG_OK);
    cp1 = x->a.applied_index;
    assert_int_equal(x->a.checkpoint_index, cp1);
    assert_int_equal(x->b.checkpoint_index, cp1);
    assert_memory_equal(x->a.checkpoint_digest, x->b.checkpoint_digest,
                        VG_DIGEST_SIZE);
    assert_int_equal(x->a.verdict, VG_VERDICT_UNKNOWN);
    assert_int_equal(x->b.verdict, VG_VERDICT_UNKNOWN);

    /* The second compares the leader's digest at the first with ours. */
    put_both(x, "c", "3");
    assert_int_equal(checkpoint_both(x), VG_OK);
    assert_int_equal(x->a.verdict, VG_VERDICT_OK);
    assert_int_equal(x->b.verdict, VG_VERDICT_OK);
    assert_int_equal(x->b.checked_index, cp1);
    assert_non_null(strstr(x->b.verdict_msg, "matches"));
    assert_string_equal(vg_verdict_name(x->b.verdict), "ok");
    assert_same_digest(&x->a, &x->b);
}

static void test_checkpoint_detects_corrupted_replica(void **state)
{
    struct fx *x = *state;
    char leader_hex[VG_DIGEST_HEX];
    uint64_t cp;

    put_both(x, "a", "1");
    put_both(x, "b", "2");
    checkpoint_both(x);
    checkpoint_both(x);
    assert_int_equal(x->b.verdict, VG_VERDICT_OK);

    /* Someone edits b's database behind the state machine's back. */
    sql(&x->b, "UPDATE kv SET value='x'");

    assert_int_equal(checkpoint_both(x), VG_OK);
    cp = x->a.checkpoint_index;
    /* This checkpoint compared the one before the corruption: still fine. */
    assert_int_equal(x->b.verdict, VG_VERDICT_OK);
    assert_memory_not_equal(x->a.checkpoint_digest, x->b.checkpoint_digest,
                            VG_DIGEST_SIZE);

    vg_hex(x->a.checkpoint_digest, VG_DIGEST_SIZE, leader_hex);
    leader_hex[16] = '\0';
    assert_int_equal(checkpoint_both(x), VG_OK);
    assert_int_equal(x->a.verdict, VG_VERDICT_OK);
    assert_int_equal(x->b.verdict, VG_VERDICT_DIVERGED);
    assert_int_equal(x->b.checked_index, cp);
    assert_string_equal(vg_verdict_name(x->b.verdict), "diverged");
    assert_non_null(strstr(x->b.verdict_msg, "differs"));
    /* The message names the leader and its digest so an operator can
     * compare. */
    assert_non_null(strstr(x->b.verdict_msg, "leader 1"));
    assert_non_null(strstr(x->b.verdict_msg, leader_hex));
    /* The chain still agrees: the commands were the same, the state is not. */
    assert_memory_equal(x->a.chain, x->b.chain, VG_DIGEST_SIZE);
}

/* A checkpoint that references an index we have no checkpoint for (e.g. we
 * joined later) leaves the verdict alone. */
static void test_checkpoint_unknown_reference_leaves_verdict(void **state)
{
    struct fx *x = *state;
    char body[200];
    char hex[VG_DIGEST_HEX];
    unsigned char zero[VG_DIGEST_SIZE] = {0};
    vg_hex(zero, VG_DIGEST_SIZE, hex);
    snprintf(body, sizeof body, "{\"ref_index\":999,\"ref_digest\":\"%s\"}", hex);
    assert_int_equal(apply_cmd(x, &x->a, VG_CMD_CHECKPOINT, body), VG_OK);
    assert_int_equal(x->a.verdict, VG_VERDICT_UNKNOWN);
    assert_int_equal(x->a.checkpoint_index, 1);
}

/* A replica found diverged is rebuilt from a snapshot even when the image is
 * not newer than its own index. */
static void test_diverged_replica_is_rebuilt_from_snapshot(void **state)
{
    struct fx *x = *state;
    struct raft_buffer *snap;

    put_both(x, "a", "1");
    checkpoint_both(x);
    sql(&x->b, "UPDATE kv SET value='x'");
    checkpoint_both(x);
    checkpoint_both(x);
    assert_int_equal(x->b.verdict, VG_VERDICT_DIVERGED);

    snap = snapshot_of(&x->a);
    assert_int_equal(restore_into(&x->b, snap), 0);
    assert_int_equal(x->b.verdict, VG_VERDICT_UNKNOWN);
    assert_non_null(strstr(x->b.verdict_msg, "restored"));
    assert_value(&x->b, "a", "1");
    assert_same_digest(&x->a, &x->b);

    checkpoint_both(x);
    checkpoint_both(x);
    assert_int_equal(x->b.verdict, VG_VERDICT_OK);
}

/* The digest covers replicated tables only: node-local bookkeeping such as
 * the applied index does not make replicas differ. */
static void test_digest_ignores_local_meta(void **state)
{
    struct fx *x = *state;
    put_both(x, "a", "1");
    sql(&x->b, "INSERT OR REPLACE INTO vg_meta(key, value) VALUES('local', 42)");
    assert_same_digest(&x->a, &x->b);
    /* But any replicated table counts. */
    sql(&x->b, "INSERT INTO nodes(id, raft_address, client_address, idx) "
               "VALUES(9, 'r', 'c', 1)");
    {
        unsigned char d1[VG_DIGEST_SIZE], d2[VG_DIGEST_SIZE];
        digest_of(&x->a, d1);
        digest_of(&x->b, d2);
        assert_memory_not_equal(d1, d2, VG_DIGEST_SIZE);
    }
}

/* ---- fatal errors --------------------------------------------------------- */

/* An SQLite error during apply is not a rejection: the replica can no longer
 * follow the log, so apply fails, f->fatal is set and nothing more is
 * applied. */
static void test_sqlite_error_is_fatal(void **state)
{
    struct fx *x = *state;
    struct vg_repl_fsm *f = &x->a;
    struct raft_buffer buf;
    int outcome;

    put(x, f, "a", "1");
    sql(f, "DROP TABLE kv");
    buf = make_cmd(x, VG_CMD_PUT, "{\"key\":\"b\",\"value\":\"2\"}");
    assert_int_equal(apply_buf(f, &buf, &outcome), RAFT_IOERR);
    assert_int_equal(f->fatal, 1);
    assert_int_equal(f->applied_index, 1);
    assert_non_null(strstr(f->errmsg, "kv"));
    /* Nothing is applied afterwards, not even a command that would work. */
    raft_free(buf.base);
    buf = make_cmd(x, VG_CMD_NODE_FORGET, "{\"node_id\":1}");
    assert_int_equal(apply_buf(f, &buf, &outcome), RAFT_IOERR);
    assert_int_equal(f->applied_index, 1);
    assert_int_equal(
        sql_int(f, "SELECT value FROM vg_meta WHERE key='applied_index'"), 1);
    raft_free(buf.base);
}

static void test_open_error_reports_path(void **state)
{
    struct fx *x = *state;
    struct vg_repl_fsm f;
    char path[128];
    path_in(x, "no/such/dir/x.db", path, sizeof path);
    assert_int_equal(vg_repl_fsm_open(&f, path), VG_EDB);
    assert_non_null(strstr(f.errmsg, "no/such/dir"));
    assert_null(f.db);
    vg_repl_fsm_close(&f); /* harmless after a failed open */
}


/* ---- project versions ----------------------------------------------------- */

/* A PROJECT_LOAD body for BUNDLE (LEN bytes) whose files digest is 64 hex
 * digits made of DIGIT. malloc'd. */
static char *load_body(const char *name, char digit, const void *bundle,
                       size_t len, const char *comment)
{
    char digest[VG_DIGEST_HEX];
    size_t b64_size = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    char *b64 = malloc(b64_size);
    json_t *o;
    char *text;

    assert_non_null(b64);
    memset(digest, digit, VG_DIGEST_HEX - 1);
    digest[VG_DIGEST_HEX - 1] = '\0';
    sodium_bin2base64(b64, b64_size, bundle, len, sodium_base64_VARIANT_ORIGINAL);
    /* Keys deliberately unsorted: the stored summary must not depend on it. */
    o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s*, s:{s:i, s:i, s:i}}",
                  "name", name, "label", "2.3", "digest", digest, "bundle", b64,
                  "loaded_by", "engineer", "station", "eng-pc", "comment",
                  comment, "summary", "tags", 12, "alarms", 3, "screens", 2);
    assert_non_null(o);
    text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    free(b64);
    return text;
}

static int load_project(struct fx *x, struct vg_repl_fsm *f, char digit,
                        const char *bundle)
{
    char *body = load_body("waterworks", digit, bundle, strlen(bundle), "why");
    int rv = apply_cmd(x, f, VG_CMD_PROJECT_LOAD, body);
    free(body);
    return rv;
}

static int load_project_both(struct fx *x, char digit, const char *bundle)
{
    char *body = load_body("waterworks", digit, bundle, strlen(bundle), NULL);
    int rv = apply_both(x, VG_CMD_PROJECT_LOAD, body);
    free(body);
    return rv;
}

static void assert_active(struct vg_repl_fsm *f, uint64_t version, char digit)
{
    uint64_t v = 99;
    char hex[VG_DIGEST_HEX];
    assert_int_equal(vg_repl_fsm_project_active(f, &v, hex), VG_OK);
    assert_int_equal(v, version);
    if (version == 0) {
        assert_string_equal(hex, "");
    } else {
        for (size_t i = 0; i < VG_DIGEST_HEX - 1; i++) {
            assert_int_equal(hex[i], digit);
        }
    }
}

/* The whole bundle of VERSION read back in slices of STEP bytes. */
static char *read_bundle(struct vg_repl_fsm *f, uint64_t version, size_t step,
                         uint64_t *total)
{
    char *all = NULL;
    uint64_t offset = 0;
    for (;;) {
        unsigned char *data;
        size_t len;
        assert_int_equal(vg_repl_fsm_project_bundle(f, version, offset, step,
                                                    &data, &len, total, NULL),
                         VG_OK);
        all = realloc(all, offset + len + 1);
        assert_non_null(all);
        if (len > 0) {
            memcpy(all + offset, data, len);
        }
        free(data);
        offset += len;
        all[offset] = '\0';
        if (offset == *total) {
            return all;
        }
        assert_int_equal(len, step); /* only the last slice is short */
    }
}

static void test_project_load_creates_active_version(void **state)
{
    struct fx *x = *state;
    struct vg_repl_fsm *f = &x->a;
    struct vg_repl_project p;
    struct seen s = {0};
    uint64_t version, total;
    char *bundle;

    assert_active(f, 0, 0);
    assert_int_equal(vg_repl_fsm_project_info(f, 0, &p), VG_ENOTFOUND);
    f->applied_cb = applied_cb;
    f->data = &s;
    put(x, f, "k", "v");
    assert_int_equal(load_project(x, f, 'a', "bundle bytes of version one"), VG_OK);
    assert_int_equal(s.result, VG_OK);
    assert_int_equal(s.type, VG_CMD_PROJECT_LOAD);
    assert_active(f, 1, 'a');
    assert_int_equal(vg_repl_fsm_project_at(f, 2, &version), VG_OK);
    assert_int_equal(version, 1);
    assert_int_equal(vg_repl_fsm_project_at(f, 1, &version), VG_ENOTFOUND);

    assert_int_equal(vg_repl_fsm_project_info(f, 0, &p), VG_OK);
    assert_int_equal(p.version, 1);
    assert_true(p.active);
    assert_string_equal(p.name, "waterworks");
    assert_string_equal(p.label, "2.3");
    assert_string_equal(p.loaded_by, "engineer");
    assert_string_equal(p.station, "eng-pc");
    assert_string_equal(p.comment, "why");
    assert_string_equal(p.summary, "{\"alarms\":3,\"screens\":2,\"tags\":12}");
    assert_int_equal(p.loaded_at_ms, x->time_ms - 1); /* the command's time */
    assert_int_equal(p.term, 2);
    assert_int_equal(p.log_index, 2);
    assert_int_equal(p.bundle_size, strlen("bundle bytes of version one"));
    vg_repl_project_clear(&p);
    assert_null(p.name);

    bundle = read_bundle(f, 1, 5, &total);
    assert_string_equal(bundle, "bundle bytes of version one");
    assert_int_equal(total, strlen(bundle));
    free(bundle);
    bundle = read_bundle(f, 0, 1 << 20, &total);
    assert_string_equal(bundle, "bundle bytes of version one");
    free(bundle);
    assert_int_equal(f->n_rejected, 0);
}

static void test_project_same_digest_is_unchanged(void **state)
{
    struct fx *x = *state;
    struct vg_repl_fsm *f = &x->a;
    struct vg_repl_project *list;
    struct seen s = {0};
    unsigned char before[VG_DIGEST_SIZE], after[VG_DIGEST_SIZE];
    size_t n, total;
    uint64_t version;

    assert_int_equal(load_project(x, f, 'a', "one"), VG_OK);
    digest_of(f, before);
    f->applied_cb = applied_cb;
    f->data = &s;
    /* Same files (digest) again: nothing stored, not a rejection, but the
     * log index and chain advance like for any command. */
    assert_int_equal(load_project(x, f, 'a', "one, compressed differently"),
                     VG_REPL_UNCHANGED);
    assert_int_equal(s.result, VG_REPL_UNCHANGED);
    assert_int_equal(f->applied_index, 2);
    assert_int_equal(f->n_rejected, 0);
    assert_int_equal(vg_repl_fsm_project_at(f, 2, &version), VG_ENOTFOUND);
    digest_of(f, after);
    assert_memory_equal(before, after, VG_DIGEST_SIZE);
    assert_active(f, 1, 'a');

    /* New files: version 2. The files of version 1 again: they are not the
     * active ones, so they become version 3 (history is never rewritten). */
    assert_int_equal(load_project(x, f, 'b', "two"), VG_OK);
    assert_active(f, 2, 'b');
    assert_int_equal(load_project(x, f, 'a', "one"), VG_OK);
    assert_active(f, 3, 'a');

    assert_int_equal(vg_repl_fsm_project_list(f, 0, &list, &n, &total), VG_OK);
    assert_int_equal(n, 3);
    assert_int_equal(total, 3);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(list[i].version, i + 1);
        assert_int_equal(list[i].active, i == 2);
    }
    assert_int_equal(list[1].digest[0], 'b');
    assert_int_equal(list[1].bundle_size, 3);
    vg_repl_project_list_free(list, n);

    /* A limit keeps the newest, still oldest first. */
    assert_int_equal(vg_repl_fsm_project_list(f, 2, &list, &n, &total), VG_OK);
    assert_int_equal(n, 2);
    assert_int_equal(total, 3);
    assert_int_equal(list[0].version, 2);
    assert_int_equal(list[1].version, 3);
    vg_repl_project_list_free(list, n);
}

static void test_project_read_errors(void **state)
{
    struct fx *x = *state;
    struct vg_repl_fsm *f = &x->a;
    struct vg_repl_project p;
    unsigned char *data = (unsigned char *)"x";
    size_t len = 7;
    uint64_t total = 7;
    struct vg_repl_project *list = (struct vg_repl_project *)&p;
    size_t n = 9;

    assert_int_equal(vg_repl_fsm_project_bundle(f, 0, 0, 10, &data, &len,
                                                &total, NULL),
                     VG_ENOTFOUND);
    assert_null(data);
    assert_int_equal(vg_repl_fsm_project_list(f, 0, &list, &n, NULL), VG_OK);
    assert_int_equal(n, 0);
    free(list);

    assert_int_equal(load_project(x, f, 'a', "12345"), VG_OK);
    assert_int_equal(vg_repl_fsm_project_info(f, 2, &p), VG_ENOTFOUND);
    assert_int_equal(vg_repl_fsm_project_bundle(f, 2, 0, 10, &data, &len,
                                                &total, NULL),
                     VG_ENOTFOUND);
    /* The end is a valid offset (nothing left), past it is not. */
    assert_int_equal(vg_repl_fsm_project_bundle(f, 1, 5, 10, &data, &len,
                                                &total, &p),
                     VG_OK);
    assert_int_equal(len, 0);
    assert_null(data);
    assert_int_equal(total, 5);
    assert_int_equal(p.version, 1);
    vg_repl_project_clear(&p);
    assert_int_equal(vg_repl_fsm_project_bundle(f, 1, 6, 10, &data, &len,
                                                &total, NULL),
                     VG_EINVAL);
}

/* Loads the leader would never propose are rejected like any invalid
 * command: index advances, no version appears. */
static void test_project_malformed_loads_are_rejected(void **state)
{
    struct fx *x = *state;
    struct vg_repl_fsm *f = &x->a;
    static const char *const bad[] = {
        "{\"digest\":\"%s\",\"bundle\":\"AAAA\",\"summary\":{}}",
        "{\"name\":\"\",\"digest\":\"%s\",\"bundle\":\"AAAA\",\"summary\":{}}",
        "{\"name\":7,\"digest\":\"%s\",\"bundle\":\"AAAA\",\"summary\":{}}",
        "{\"name\":\"p\",\"digest\":\"%.63s\",\"bundle\":\"AAAA\",\"summary\":{}}",
        "{\"name\":\"p\",\"digest\":\"%sff\",\"bundle\":\"AAAA\",\"summary\":{}}",
        "{\"name\":\"p\",\"digest\":\"%.62sZZ\",\"bundle\":\"AAAA\",\"summary\":{}}",
        "{\"name\":\"p\",\"digest\":\"%s\",\"summary\":{}}",
        "{\"name\":\"p\",\"digest\":\"%s\",\"bundle\":\"\",\"summary\":{}}",
        "{\"name\":\"p\",\"digest\":\"%s\",\"bundle\":\"not base64!\",\"summary\":{}}",
        "{\"name\":\"p\",\"digest\":\"%s\",\"bundle\":\"AAAA====\",\"summary\":{}}",
        "{\"name\":\"p\",\"digest\":\"%s\",\"bundle\":\"AAAA\"}",
        "{\"name\":\"p\",\"digest\":\"%s\",\"bundle\":\"AAAA\",\"summary\":[]}",
        "{\"name\":\"p\",\"digest\":\"%s\",\"bundle\":\"AAAA\",\"summary\":{\"tags\":-1}}",
        "{\"name\":\"p\",\"digest\":\"%s\",\"bundle\":\"AAAA\",\"summary\":{\"tags\":\"3\"}}",
        "{\"name\":\"p\",\"digest\":\"%s\",\"bundle\":\"AAAA\",\"summary\":{},\"label\":2}",
        "{\"name\":\"p\",\"digest\":\"%s\",\"bundle\":\"AAAA\",\"summary\":{},\"comment\":[]}",
    };
    char hex[VG_DIGEST_HEX];
    char body[512];

    memset(hex, 'c', VG_DIGEST_HEX - 1);
    hex[VG_DIGEST_HEX - 1] = '\0';
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(body, sizeof body, bad[i], hex);
        if (apply_cmd(x, f, VG_CMD_PROJECT_LOAD, body) != VG_EINVAL) {
            fail_msg("load %zu (%s) was not rejected", i, body);
        }
    }
    assert_int_equal(f->n_rejected, sizeof bad / sizeof bad[0]);
    assert_active(f, 0, 0);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM project_versions"), 0);
    /* Null optional members are fine. */
    snprintf(body, sizeof body,
             "{\"name\":\"p\",\"digest\":\"%s\",\"bundle\":\"AAAA\","
             "\"summary\":{},\"label\":null}",
             hex);
    assert_int_equal(apply_cmd(x, f, VG_CMD_PROJECT_LOAD, body), VG_OK);
    assert_active(f, 1, 'c');
}

static void test_project_versions_survive_snapshot_and_reopen(void **state)
{
    struct fx *x = *state;
    struct raft_buffer *snap;
    struct vg_repl_project *la, *lb;
    size_t na, nb;
    uint64_t total;
    char *bundle;

    assert_int_equal(load_project(x, &x->a, 'a', "first"), VG_OK);
    put(x, &x->a, "k", "v");
    assert_int_equal(load_project(x, &x->a, 'b', "second"), VG_OK);
    snap = snapshot_of(&x->a);
    assert_int_equal(restore_into(&x->b, snap), 0);
    assert_same_digest(&x->a, &x->b);
    assert_active(&x->b, 2, 'b');
    bundle = read_bundle(&x->b, 1, 2, &total);
    assert_string_equal(bundle, "first");
    free(bundle);

    assert_int_equal(vg_repl_fsm_project_list(&x->a, 0, &la, &na, NULL), VG_OK);
    assert_int_equal(vg_repl_fsm_project_list(&x->b, 0, &lb, &nb, NULL), VG_OK);
    assert_int_equal(na, 2);
    assert_int_equal(nb, 2);
    for (size_t i = 0; i < na; i++) {
        assert_int_equal(la[i].version, lb[i].version);
        assert_string_equal(la[i].digest, lb[i].digest);
        assert_string_equal(la[i].summary, lb[i].summary);
        assert_int_equal(la[i].log_index, lb[i].log_index);
        assert_int_equal(la[i].loaded_at_ms, lb[i].loaded_at_ms);
        assert_int_equal(la[i].active, lb[i].active);
    }
    vg_repl_project_list_free(la, na);
    vg_repl_project_list_free(lb, nb);

    /* Both number the next version alike, and it is durable. */
    assert_int_equal(load_project_both(x, 'c', "third"), VG_OK);
    assert_active(&x->a, 3, 'c');
    assert_active(&x->b, 3, 'c');
    assert_same_digest(&x->a, &x->b);
    vg_repl_fsm_close(&x->b);
    x->b_open = false;
    open_fsm(x, &x->b, "b.db");
    x->b_open = true;
    assert_active(&x->b, 3, 'c');
    assert_same_digest(&x->a, &x->b);
    bundle = read_bundle(&x->b, 3, 100, &total);
    assert_string_equal(bundle, "third");
    free(bundle);
}

static void test_project_digest_covers_versions(void **state)
{
    struct fx *x = *state;
    unsigned char d1[VG_DIGEST_SIZE], d2[VG_DIGEST_SIZE];
    static const char *const tamper[] = {
        "UPDATE project_versions SET label = 'edited'",
        "UPDATE project_versions SET comment = 'added later'",
        "UPDATE project_versions SET bundle_hash = zeroblob(32)",
        "UPDATE project_versions SET bundle = X'00'",
        "UPDATE project_versions SET summary = '{}'",
        "UPDATE project_active SET version = 1",
        "DELETE FROM project_versions WHERE version = 2",
    };

    put_both(x, "k", "v");
    assert_int_equal(load_project_both(x, 'a', "one"), VG_OK);
    assert_int_equal(load_project_both(x, 'b', "two"), VG_OK);
    assert_same_digest(&x->a, &x->b);
    for (size_t i = 0; i < sizeof tamper / sizeof tamper[0]; i++) {
        sql(&x->b, "SAVEPOINT t");
        sql(&x->b, tamper[i]);
        digest_of(&x->a, d1);
        digest_of(&x->b, d2);
        if (memcmp(d1, d2, VG_DIGEST_SIZE) == 0) {
            fail_msg("digest did not change after: %s", tamper[i]);
        }
        sql(&x->b, "ROLLBACK TO t");
        sql(&x->b, "RELEASE t");
        assert_same_digest(&x->a, &x->b);
    }
}

/* The project tables contribute nothing to the digest while empty, so a
 * node from before them agrees with one that has them: the digest of a
 * database without the tables equals the digest with empty tables. */
static void test_project_tables_do_not_change_old_digests(void **state)
{
    struct fx *x = *state;
    unsigned char with[VG_DIGEST_SIZE];
    crypto_generichash_state h;
    unsigned char old[VG_DIGEST_SIZE];
    static const char *const queries[] = {
        "SELECT * FROM kv ORDER BY key",
        "SELECT * FROM nodes ORDER BY id",
        "SELECT * FROM leaders ORDER BY term",
        "SELECT * FROM checkpoints ORDER BY idx",
    };

    /* Empty original tables hash only their queries (the first release's
     * rule); recompute that by hand. */
    digest_of(&x->a, with);
    crypto_generichash_init(&h, NULL, 0, VG_DIGEST_SIZE);
    for (size_t i = 0; i < 4; i++) {
        crypto_generichash_update(&h, (const unsigned char *)queries[i],
                                  strlen(queries[i]));
    }
    crypto_generichash_final(&h, old, VG_DIGEST_SIZE);
    assert_memory_equal(with, old, VG_DIGEST_SIZE);
}

/* A data folder or snapshot image written before the project tables existed
 * gains them on open / restore, and then takes loads. */
static void test_project_tables_added_to_old_databases(void **state)
{
    struct fx *x = *state;
    struct raft_buffer *snap;

    put(x, &x->a, "k", "v");
    sql(&x->a, "DROP TABLE project_versions; DROP TABLE project_active");
    snap = snapshot_of(&x->a);
    vg_repl_fsm_close(&x->a);
    x->a_open = false;
    open_fsm(x, &x->a, "a.db");
    x->a_open = true;
    assert_int_equal(load_project(x, &x->a, 'a', "one"), VG_OK);
    assert_active(&x->a, 1, 'a');

    assert_int_equal(restore_into(&x->b, snap), 0);
    assert_value(&x->b, "k", "v");
    assert_active(&x->b, 0, 0);
    assert_int_equal(load_project(x, &x->b, 'b', "two"), VG_OK);
    assert_active(&x->b, 1, 'b');
    assert_int_equal(x->b.fatal, 0);
}

/* ---- record summaries ---------------------------------------------------- */

static void audit_n(struct fx *x, struct vg_repl_fsm *f, int n, const char *tag)
{
    char body[200];
    for (int i = 0; i < n; i++) {
        snprintf(body, sizeof body,
                 "{\"kind\":\"membership\",\"object\":\"%s %d\",\"old_value\":%d,"
                 "\"new_value\":%s,\"user\":\"u\",\"station\":null,\"detail\":null}",
                 tag, i, i, i % 2 ? "-0.0" : "\"x\"");
        assert_int_equal(apply_cmd(x, f, VG_CMD_AUDIT, body), VG_OK);
    }
}

/* record_summary holds what its triggers say: recomputed from the rows. */
static void assert_summary_matches(struct vg_repl_fsm *f, const char *tbl,
                                   const char *cols)
{
    char q[400];
    long long n;
    snprintf(q, sizeof q, "SELECT count(*) FROM %s", tbl);
    n = sql_int(f, q);
    snprintf(q, sizeof q, "SELECT coalesce((SELECT n FROM record_summary"
                          " WHERE tbl = '%s'), 0)", tbl);
    assert_int_equal(sql_int(f, q), n);
    snprintf(q, sizeof q,
             "SELECT coalesce((SELECT hash_sum FROM record_summary WHERE tbl = '%s'),"
             " 0) = (SELECT vg_sum64(vg_row_hash(%s)) FROM %s)", tbl, cols, tbl);
    assert_int_equal(sql_int(f, q), 1);
}

#define AUDIT_COLS "id, time_ms, kind, object, old_value, new_value, user," \
                   " station, detail, term, node"

static void test_record_summary_follows_rows(void **state)
{
    struct fx *x = *state;
    unsigned char da[VG_DIGEST_SIZE], db[VG_DIGEST_SIZE];
    char body[96];

    audit_n(x, &x->a, 20, "n");
    assert_int_equal(sql_int(&x->a, "SELECT n FROM record_summary WHERE tbl = 'audit'"),
                     20);
    assert_summary_matches(&x->a, "audit", AUDIT_COLS);
    /* A cut deletes through the triggers too. */
    snprintf(body, sizeof body, "{\"audit_before_ms\":%llu}",
             (unsigned long long)(x->time_ms - 5));
    assert_int_equal(apply_cmd(x, &x->a, VG_CMD_RETENTION_CUT, body), VG_OK);
    assert_int_equal(sql_int(&x->a, "SELECT count(*) FROM audit"), 5);
    assert_summary_matches(&x->a, "audit", AUDIT_COLS);
    /* An edit in place changes the digest (the summary follows it). */
    digest_of(&x->a, da);
    sql(&x->a, "UPDATE audit SET detail = 'edited' WHERE id = (SELECT min(id) FROM audit)");
    assert_summary_matches(&x->a, "audit", AUDIT_COLS);
    digest_of(&x->a, db);
    assert_memory_not_equal(da, db, VG_DIGEST_SIZE);
    /* Deleting every row leaves n 0 and the sum 0. */
    sql(&x->a, "DELETE FROM audit");
    assert_int_equal(sql_int(&x->a, "SELECT n = 0 AND hash_sum = 0 FROM record_summary"
                                    " WHERE tbl = 'audit'"),
                     1);
}

/* A database (or an image) from before the triggers gets them on open, with
 * a summary computed from its rows: it then digests like a replica that had
 * them all along. */
static void test_record_summary_added_to_old_databases(void **state)
{
    struct fx *x = *state;
    unsigned char da[VG_DIGEST_SIZE], db[VG_DIGEST_SIZE];
    struct raft_buffer *snap;

    audit_n(x, &x->a, 7, "o");
    x->time_ms -= 7;
    audit_n(x, &x->b, 7, "o");
    digest_of(&x->a, da);
    digest_of(&x->b, db);
    assert_memory_equal(da, db, VG_DIGEST_SIZE);
    sql(&x->b, "DROP TRIGGER vg_sum_audit_ins_v1; DROP TRIGGER vg_sum_audit_del_v1;"
               " DROP TRIGGER vg_sum_audit_upd_v1; DELETE FROM record_summary");
    snap = snapshot_of(&x->b);
    vg_repl_fsm_close(&x->b);
    x->b_open = false;
    open_fsm(x, &x->b, "b.db");
    x->b_open = true;
    assert_summary_matches(&x->b, "audit", AUDIT_COLS);
    digest_of(&x->b, db);
    assert_memory_equal(da, db, VG_DIGEST_SIZE);
    /* The same through a snapshot image into a fresh replica. */
    {
        struct vg_repl_fsm c;
        memset(&c, 0, sizeof c);
        open_fsm(x, &c, "c.db");
        assert_int_equal(restore_into(&c, snap), 0);
        assert_summary_matches(&c, "audit", AUDIT_COLS);
        digest_of(&c, da);
        assert_memory_equal(da, db, VG_DIGEST_SIZE);
        audit_n(x, &c, 3, "p");
        assert_summary_matches(&c, "audit", AUDIT_COLS);
        /* Deletes and updates are still counted after the restore (the
         * connection's own triggers outlive the image it copied in). */
        sql(&c, "DELETE FROM audit WHERE id = (SELECT min(id) FROM audit)");
        sql(&c, "UPDATE audit SET detail = 'edited' WHERE id = (SELECT max(id) FROM audit)");
        assert_summary_matches(&c, "audit", AUDIT_COLS);
        assert_int_equal(sql_int(&c, "SELECT n FROM record_summary WHERE tbl = 'audit'"),
                         9);
        /* The file keeps the triggers an older vigild counts with. */
        assert_int_equal(sql_int(&c, "SELECT count(*) FROM sqlite_master"
                                     " WHERE type = 'trigger' AND name LIKE 'vg_sum_%'"),
                         9);
        vg_repl_fsm_close(&c);
    }
}

/* Checkpoints keep the newest 64 rows: the table no longer grows with time. */
static void test_checkpoints_table_bounded(void **state)
{
    struct fx *x = *state;
    for (int i = 0; i < 100; i++) {
        char *body = vg_repl_fsm_checkpoint_body(&x->a);
        assert_non_null(body);
        assert_int_equal(apply_cmd(x, &x->a, VG_CMD_CHECKPOINT, body), VG_OK);
        free(body);
    }
    assert_int_equal(sql_int(&x->a, "SELECT count(*) FROM checkpoints"), 64);
    assert_int_equal(x->a.verdict, VG_VERDICT_OK);
}

/* ---- operator actions ---------------------------------------------------- */

/* The WAL is checkpointed by the fsm's own thread, not by apply: after
 * enough commits to pass SQLite's 1000-page threshold several times, the
 * thread has really copied frames into the database (SQLite 3.40 answers a
 * checkpoint on a connection that never read with OK and did nothing), the
 * WAL has started over, every value is still there, and a reopened
 * database holds them. */
static void test_wal_checkpointed_in_background(void **state)
{
    struct fx *x = *state;
    char key[32], value[3001];
    struct vg_repl_wal_stats ws = {0};
    sqlite3_stmt *st;
    int n = 0;

    memset(value, 'v', sizeof value - 1);
    value[sizeof value - 1] = '\0';
    /* Until the WAL started over: at least 4000 commits, at most 60 000
     * (each a few pages). */
    for (; n < 60000 && (n < 4000 || ws.restarts == 0); n++) {
        char *body;
        snprintf(key, sizeof key, "k%d", n);
        assert_true(asprintf(&body, "{\"key\":\"%s\",\"value\":\"%s\"}", key,
                             value) > 0);
        assert_int_equal(apply_cmd(x, &x->a, VG_CMD_PUT, body), VG_OK);
        free(body);
        vg_repl_fsm_wal_stats(&x->a, &ws);
    }
    for (int i = 0; i < 1000 && ws.copied == 0; i++) { /* at most 10 s */
        usleep(10000);
        vg_repl_fsm_wal_stats(&x->a, &ws);
    }
    assert_true(ws.done >= 1);
    assert_true(ws.copied >= 1000);
    assert_true(ws.restarts >= 1);
    assert_true(ws.wal_frames < 50000);
    vg_repl_fsm_close(&x->a);
    x->a_open = false;
    open_fsm(x, &x->a, "a.db");
    x->a_open = true;
    assert_int_equal(sqlite3_prepare_v2(x->a.db, "SELECT count(*), min(length(value))"
                                                 " FROM kv WHERE key LIKE 'k%'",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), n);
    assert_int_equal(sqlite3_column_int(st, 1), 3000);
    sqlite3_finalize(st);
    assert_int_equal(x->a.applied_index, (uint64_t)n);
}

/* The connection's settings apply relies on: WAL, and statement journals
 * in memory (a multi-row INSERT of the archive otherwise writes every page
 * it changes to a temporary file first; fsm.c, vg_repl_fsm_open). */
static void test_connection_settings(void **state)
{
    struct fx *x = *state;
    sqlite3_stmt *st;

    assert_int_equal(sql_int(&x->a, "PRAGMA temp_store"), 2); /* MEMORY */
    assert_int_equal(sqlite3_prepare_v2(x->a.db, "PRAGMA journal_mode", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
}

static int apply_in_term(struct fx *x, struct vg_repl_fsm *f, unsigned type,
                         uint64_t term, const char *body)
{
    struct vg_cmd cmd = {
        .type = (uint16_t)type,
        .term = term,
        .time_ms = x->time_ms++,
        .proposer = 3,
        .body = body,
        .body_len = (uint32_t)strlen(body),
    };
    struct raft_buffer buf;
    int outcome;
    assert_int_equal(vg_cmd_encode(&cmd, &buf), VG_OK);
    assert_int_equal(apply_buf(f, &buf, &outcome), 0);
    raft_free(buf.base);
    return outcome;
}

static json_t *actions_of(struct vg_repl_fsm *f, const char *tag, size_t limit)
{
    json_t *list = NULL;
    assert_int_equal(vg_repl_fsm_actions(f, tag, limit, &list), VG_OK);
    assert_true(json_is_array(list));
    return list;
}

static void test_setpoint_action_and_outcome(void **state)
{
    struct fx *x = *state;
    struct vg_repl_fsm *f = &x->a;
    json_t *list, *a;
    uint64_t open[4];
    size_t n;
    char body[128];

    assert_int_equal(apply_in_term(x, f, VG_CMD_SETPOINT, 4,
                                   "{\"tag\":\"FIC201.sp\",\"value\":42.5,"
                                   "\"project_version\":3,\"user\":\"alice\","
                                   "\"station\":\"cr-1\"}"),
                     VG_OK);
    assert_int_equal(apply_in_term(x, f, VG_CMD_SETPOINT, 4,
                                   "{\"tag\":\"P101.run\",\"value\":1,"
                                   "\"project_version\":3}"),
                     VG_OK);
    list = actions_of(f, NULL, 10);
    assert_int_equal(json_array_size(list), 2);
    a = json_array_get(list, 0);
    assert_int_equal(json_integer_value(json_object_get(a, "action")), 1);
    assert_string_equal(json_string_value(json_object_get(a, "kind")), "setpoint");
    assert_string_equal(json_string_value(json_object_get(a, "tag")), "FIC201.sp");
    assert_true(json_real_value(json_object_get(a, "value")) == 42.5);
    assert_string_equal(json_string_value(json_object_get(a, "user")), "alice");
    assert_string_equal(json_string_value(json_object_get(a, "station")), "cr-1");
    assert_int_equal(json_integer_value(json_object_get(a, "term")), 4);
    assert_int_equal(json_integer_value(json_object_get(a, "node")), 3);
    assert_true(json_is_null(json_object_get(a, "outcome")));
    assert_true(json_is_null(json_object_get(json_array_get(list, 1), "user")));
    json_decref(list);

    /* Open actions are those of earlier terms without an outcome. */
    assert_int_equal(vg_repl_fsm_actions_open(f, 4, open, 4, &n), VG_OK);
    assert_int_equal(n, 0);
    assert_int_equal(vg_repl_fsm_actions_open(f, 5, open, 4, &n), VG_OK);
    assert_int_equal(n, 2);
    assert_int_equal(open[0], 1);
    assert_int_equal(open[1], 2);
    assert_int_equal(vg_repl_fsm_actions_open(f, 5, open, 1, &n), VG_OK);
    assert_int_equal(n, 1);

    /* An outcome is recorded once; a second is "unchanged". */
    assert_int_equal(apply_in_term(x, f, VG_CMD_SETPOINT_RESULT, 4,
                                   "{\"action\":1,\"outcome\":\"written\"}"),
                     VG_OK);
    assert_int_equal(apply_in_term(x, f, VG_CMD_SETPOINT_RESULT, 5,
                                   "{\"action\":1,\"outcome\":\"unknown\","
                                   "\"message\":\"late\"}"),
                     VG_REPL_UNCHANGED);
    assert_int_equal(apply_in_term(x, f, VG_CMD_SETPOINT_RESULT, 5,
                                   "{\"action\":2,\"outcome\":\"failed\","
                                   "\"message\":\"PLC said no\"}"),
                     VG_OK);
    /* No such action. */
    assert_int_equal(apply_in_term(x, f, VG_CMD_SETPOINT_RESULT, 5,
                                   "{\"action\":99,\"outcome\":\"written\"}"),
                     VG_EINVAL);
    /* The actions' summary (kept by this connection's own insert and
     * update triggers) and the setpoints' audit records' (counted by the
     * binder) are what their rows give. */
    assert_summary_matches(f, "operator_actions",
                           "idx, kind, tag, value, project_version, user, station,"
                           " time_ms, term, node, outcome, message, outcome_ms,"
                           " outcome_idx");
    assert_int_equal(sql_int(f, "SELECT n FROM record_summary"
                                " WHERE tbl = 'operator_actions'"),
                     2);
    assert_summary_matches(f, "audit", AUDIT_COLS);
    assert_int_equal(vg_repl_fsm_actions_open(f, 9, open, 4, &n), VG_OK);
    assert_int_equal(n, 0);
    list = actions_of(f, "P101.run", 10);
    assert_int_equal(json_array_size(list), 1);
    a = json_array_get(list, 0);
    assert_string_equal(json_string_value(json_object_get(a, "outcome")), "failed");
    assert_string_equal(json_string_value(json_object_get(a, "message")), "PLC said no");
    assert_int_equal(json_integer_value(json_object_get(a, "outcome_ms")),
                     x->time_ms - 2);
    json_decref(list);
    list = actions_of(f, NULL, 10);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(list, 0), "outcome")),
        "written");
    json_decref(list);

    /* The newest LIMIT, oldest first. */
    for (int i = 0; i < 5; i++) {
        snprintf(body, sizeof body,
                 "{\"tag\":\"T%d\",\"value\":%d,\"project_version\":1}", i, i);
        assert_int_equal(apply_in_term(x, f, VG_CMD_SETPOINT, 6, body), VG_OK);
    }
    list = actions_of(f, NULL, 3);
    assert_int_equal(json_array_size(list), 3);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(list, 0), "tag")), "T2");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(list, 2), "tag")), "T4");
    json_decref(list);
    assert_int_equal(vg_repl_fsm_actions(f, NULL, 0, &list), VG_EINVAL);
    assert_int_equal(vg_repl_fsm_actions(f, NULL, 1001, &list), VG_EINVAL);
}

static void test_setpoint_malformed_is_rejected(void **state)
{
    struct fx *x = *state;
    struct vg_repl_fsm *f = &x->a;
    static const char *const bad[] = {
        "{}",
        "{\"tag\":\"\",\"value\":1,\"project_version\":1}",
        "{\"tag\":\"A\",\"value\":\"1\",\"project_version\":1}",
        "{\"tag\":\"A\",\"value\":1}",
        "{\"tag\":\"A\",\"value\":1,\"project_version\":0}",
        "{\"tag\":\"A\",\"value\":1,\"project_version\":1,\"user\":7}",
        "{\"tag\":7,\"value\":1,\"project_version\":1}",
    };
    static const char *const bad_results[] = {
        "{\"action\":1}",
        "{\"action\":1,\"outcome\":\"maybe\"}",
        "{\"action\":0,\"outcome\":\"written\"}",
        "{\"action\":1,\"outcome\":\"written\",\"message\":3}",
    };
    json_t *list;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(apply_in_term(x, f, VG_CMD_SETPOINT, 2, bad[i]), VG_EINVAL);
    }
    assert_int_equal(apply_in_term(x, f, VG_CMD_SETPOINT, 2,
                                   "{\"tag\":\"A\",\"value\":1,\"project_version\":1}"),
                     VG_OK);
    for (size_t i = 0; i < sizeof bad_results / sizeof bad_results[0]; i++) {
        assert_int_equal(apply_in_term(x, f, VG_CMD_SETPOINT_RESULT, 2, bad_results[i]),
                         VG_EINVAL);
    }
    list = actions_of(f, NULL, 100);
    assert_int_equal(json_array_size(list), 1);
    assert_true(json_is_null(json_object_get(json_array_get(list, 0), "outcome")));
    json_decref(list);
}

static void test_actions_digest_and_snapshot(void **state)
{
    struct fx *x = *state;
    unsigned char before[VG_DIGEST_SIZE], after[VG_DIGEST_SIZE];
    struct raft_buffer *snap;
    json_t *list;

    put_both(x, "k", "v");
    assert_same_digest(&x->a, &x->b);
    digest_of(&x->a, before);
    assert_int_equal(apply_both(x, VG_CMD_SETPOINT,
                                "{\"tag\":\"A\",\"value\":0.1,\"project_version\":1}"),
                     VG_OK);
    assert_same_digest(&x->a, &x->b);
    digest_of(&x->a, after);
    assert_memory_not_equal(before, after, VG_DIGEST_SIZE);
    /* An outcome changes the digest too. */
    memcpy(before, after, sizeof before);
    assert_int_equal(apply_both(x, VG_CMD_SETPOINT_RESULT,
                                "{\"action\":2,\"outcome\":\"written\"}"),
                     VG_OK);
    assert_same_digest(&x->a, &x->b);
    digest_of(&x->a, after);
    assert_memory_not_equal(before, after, VG_DIGEST_SIZE);
    /* A replica that lost the outcome differs. */
    sql(&x->b, "UPDATE operator_actions SET outcome = NULL");
    digest_of(&x->b, before);
    assert_memory_not_equal(before, after, VG_DIGEST_SIZE);
    /* The action log travels with snapshots (B is behind A by one command,
     * so it takes the image). */
    put(x, &x->a, "k2", "v2");
    snap = snapshot_of(&x->a);
    assert_int_equal(restore_into(&x->b, snap), 0);
    assert_same_digest(&x->a, &x->b);
    list = actions_of(&x->b, "A", 10);
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(list, 0), "outcome")),
        "written");
    json_decref(list);
}

/* ---- alarm states, journal, audit -------------------------------------- */

#define ALARM_STATE(status, active)                                           \
    "{\"status\":\"" status "\",\"active\":" active ",\"changed_ms\":5,"     \
    "\"pending\":false,\"pending_since_ms\":0,\"raised_ms\":5,\"acked_ms\":0,"\
    "\"cleared_ms\":0,\"shelved\":false,\"shelved_ms\":0,"                    \
    "\"shelved_until_ms\":0,\"shelve_reason\":\"\",\"shelve_user\":\"\","      \
    "\"out_of_service\":false,\"out_of_service_ms\":0}"

static json_t *journal_of(struct vg_repl_fsm *f, const char *alarm,
                          const char *cause)
{
    struct vg_repl_journal_query q = {.alarm = alarm, .cause = cause,
                                      .limit = 100};
    json_t *out = NULL;
    assert_int_equal(vg_repl_fsm_alarm_journal(f, &q, &out), VG_OK);
    return out;
}

static void test_alarm_state_journal_and_audit(void **state)
{
    struct fx *x = *state;
    json_t *states, *j, *e, *audit;
    struct vg_repl_audit_query aq = {.limit = 10};

    /* Raised by the engine: a state row and a journal entry, no audit. */
    assert_int_equal(
        apply_both(x, VG_CMD_ALARM_STATE,
                   "{\"changes\":[{\"alarm\":\"LT101.hi\",\"tag\":\"LT101\","
                   "\"section\":\"intake\",\"priority\":2,"
                   "\"message\":{\"en\":\"Tank high\",\"de\":\"Tank hoch\"},"
                   "\"state\":" ALARM_STATE("unack_active", "true") ","
                   "\"transition\":{\"cause\":\"raised\",\"from\":\"normal\","
                   "\"to\":\"unack_active\",\"at_ms\":5,\"value\":4.5}}]}"),
        VG_OK);
    /* Acknowledged by an operator, plus a bookkeeping-only change. */
    assert_int_equal(
        apply_both(x, VG_CMD_ALARM_STATE,
                   "{\"changes\":[{\"alarm\":\"LT101.hi\",\"tag\":\"LT101\","
                   "\"section\":\"intake\",\"priority\":2,\"message\":null,"
                   "\"state\":" ALARM_STATE("ack_active", "true") ","
                   "\"transition\":{\"cause\":\"acked\",\"from\":\"unack_active\","
                   "\"to\":\"ack_active\",\"at_ms\":9,\"user\":\"ann\","
                   "\"station\":\"op1\"}},"
                   "{\"alarm\":\"FT1.lo\",\"state\":" ALARM_STATE("normal", "false")
                   ",\"transition\":null}]}"),
        VG_OK);
    assert_same_digest(&x->a, &x->b);
    assert_int_equal(vg_repl_fsm_alarm_states(&x->b, &states), VG_OK);
    assert_int_equal(json_array_size(states), 2);
    e = json_array_get(states, 1);
    assert_string_equal(json_string_value(json_object_get(e, "alarm")), "LT101.hi");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(e, "state"), "status")),
                        "ack_active");
    json_decref(states);

    j = journal_of(&x->b, "LT101.hi", NULL);
    assert_int_equal(json_array_size(json_object_get(j, "entries")), 2);
    e = json_array_get(json_object_get(j, "entries"), 0); /* newest first */
    assert_string_equal(json_string_value(json_object_get(e, "cause")), "acked");
    assert_string_equal(json_string_value(json_object_get(e, "user")), "ann");
    assert_true(json_is_true(json_object_get(e, "active")));
    e = json_array_get(json_object_get(j, "entries"), 1);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(e, "message"), "de")),
                        "Tank hoch");
    assert_true(json_real_value(json_object_get(e, "value")) == 4.5);
    json_decref(j);
    /* The bookkeeping change has no journal entry. */
    j = journal_of(&x->b, "FT1.lo", NULL);
    assert_int_equal(json_array_size(json_object_get(j, "entries")), 0);
    json_decref(j);

    /* Only the operator's ack is audited. */
    assert_int_equal(vg_repl_fsm_audit(&x->b, &aq, &audit), VG_OK);
    assert_int_equal(json_array_size(json_object_get(audit, "records")), 1);
    e = json_array_get(json_object_get(audit, "records"), 0);
    assert_string_equal(json_string_value(json_object_get(e, "kind")), "alarm_acked");
    assert_string_equal(json_string_value(json_object_get(e, "object")), "LT101.hi");
    assert_string_equal(json_string_value(json_object_get(e, "old_value")),
                        "unack_active");
    assert_string_equal(json_string_value(json_object_get(e, "station")), "op1");
    json_decref(audit);

    /* A removed alarm loses its state row. */
    assert_int_equal(apply_both(x, VG_CMD_ALARM_STATE,
                                "{\"changes\":[{\"alarm\":\"FT1.lo\",\"state\":null,"
                                "\"transition\":null}]}"),
                     VG_OK);
    assert_int_equal(vg_repl_fsm_alarm_states(&x->a, &states), VG_OK);
    assert_int_equal(json_array_size(states), 1);
    json_decref(states);
    assert_same_digest(&x->a, &x->b);
}

static void test_alarm_state_malformed_is_rejected(void **state)
{
    struct fx *x = *state;
    static const char *const bad[] = {
        "{}",
        "{\"changes\":[]}",
        "{\"changes\":{}}",
        "{\"changes\":[1]}",
        "{\"changes\":[{\"state\":null}]}",
        "{\"changes\":[{\"alarm\":\"\",\"state\":null}]}",
        "{\"changes\":[{\"alarm\":\"a\"}]}",
        "{\"changes\":[{\"alarm\":\"a\",\"state\":{\"status\":\"normal\"}}]}",
        "{\"changes\":[{\"alarm\":\"a\",\"state\":"
        ALARM_STATE("weird", "true") "}]}",
        "{\"changes\":[{\"alarm\":\"a\",\"state\":"
        ALARM_STATE("normal", "1") "}]}",
        "{\"changes\":[{\"alarm\":\"a\",\"priority\":5,\"state\":null}]}",
        "{\"changes\":[{\"alarm\":\"a\",\"message\":{\"en\":3},\"state\":null}]}",
        "{\"changes\":[{\"alarm\":\"a\",\"state\":null,\"transition\":"
        "{\"cause\":\"exploded\",\"from\":\"normal\",\"to\":\"normal\","
        "\"at_ms\":1}}]}",
        "{\"changes\":[{\"alarm\":\"a\",\"state\":null,\"transition\":"
        "{\"cause\":\"raised\",\"from\":\"normal\",\"to\":\"normal\","
        "\"at_ms\":-1}}]}",
        /* One bad change spoils the whole command. */
        ("{\"changes\":[{\"alarm\":\"ok\",\"state\":null},{\"alarm\":7,"
         "\"state\":null}]}"),
    };
    json_t *states;
    unsigned char before[VG_DIGEST_SIZE], after[VG_DIGEST_SIZE];

    digest_of(&x->a, before);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(apply_cmd(x, &x->a, VG_CMD_ALARM_STATE, bad[i]),
                         VG_EINVAL);
    }
    assert_int_equal(apply_cmd(x, &x->a, VG_CMD_AUDIT, "{\"kind\":\"\"}"),
                     VG_EINVAL);
    assert_int_equal(apply_cmd(x, &x->a, VG_CMD_AUDIT,
                               "{\"kind\":\"x\",\"old_value\":[1]}"),
                     VG_EINVAL);
    assert_int_equal(apply_cmd(x, &x->a, VG_CMD_SETPOINT,
                               "{\"tag\":\"A\",\"value\":1,\"project_version\":1,"
                               "\"old_value\":\"x\"}"),
                     VG_EINVAL);
    digest_of(&x->a, after);
    assert_memory_equal(before, after, VG_DIGEST_SIZE);
    assert_int_equal(vg_repl_fsm_alarm_states(&x->a, &states), VG_OK);
    assert_int_equal(json_array_size(states), 0);
    json_decref(states);
}

static void test_audit_records_of_actions(void **state)
{
    struct fx *x = *state;
    struct vg_repl_audit_query q = {.limit = 2};
    json_t *out, *recs;
    uint64_t last_id;

    assert_int_equal(apply_both(x, VG_CMD_SETPOINT,
                                "{\"tag\":\"FIC1.sp\",\"value\":4.5,"
                                "\"project_version\":1,\"old_value\":3,"
                                "\"user\":\"ann\",\"station\":\"op1\"}"),
                     VG_OK);
    assert_int_equal(apply_both(x, VG_CMD_AUDIT,
                                "{\"kind\":\"membership\",\"object\":\"node 4\","
                                "\"new_value\":\"voter\",\"user\":\"admin\"}"),
                     VG_OK);
    assert_int_equal(apply_both(x, VG_CMD_NODE_FORGET, "{\"node_id\":4}"), VG_OK);
    assert_same_digest(&x->a, &x->b);
    /* Newest first, two per page. */
    assert_int_equal(vg_repl_fsm_audit(&x->b, &q, &out), VG_OK);
    recs = json_object_get(out, "records");
    assert_int_equal(json_array_size(recs), 2);
    assert_true(json_is_true(json_object_get(out, "more")));
    assert_string_equal(json_string_value(json_object_get(json_array_get(recs, 0),
                                                          "kind")),
                        "node_forget");
    last_id = (uint64_t)json_integer_value(
        json_object_get(json_array_get(recs, 1), "id"));
    json_decref(out);
    q.before_id = last_id;
    assert_int_equal(vg_repl_fsm_audit(&x->b, &q, &out), VG_OK);
    recs = json_object_get(out, "records");
    assert_int_equal(json_array_size(recs), 1);
    assert_false(json_is_true(json_object_get(out, "more")));
    assert_string_equal(json_string_value(json_object_get(json_array_get(recs, 0),
                                                          "kind")),
                        "setpoint");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(recs, 0),
                                                        "old_value")),
                     3);
    assert_true(json_real_value(json_object_get(json_array_get(recs, 0),
                                                "new_value")) == 4.5);
    json_decref(out);
    /* Filter by kind. */
    q.before_id = 0;
    q.kind = "membership";
    assert_int_equal(vg_repl_fsm_audit(&x->b, &q, &out), VG_OK);
    assert_int_equal(json_array_size(json_object_get(out, "records")), 1);
    json_decref(out);
    q.limit = 0;
    assert_int_equal(vg_repl_fsm_audit(&x->b, &q, &out), VG_EINVAL);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_put_applied_and_visible),
        T(test_put_unicode_and_escapes),
        T(test_node_info_announce_and_forget),
        T(test_invalid_commands_are_applied_as_rejections),
        T(test_undecodable_entry_is_rejected),
        T(test_chain_is_deterministic),
        T(test_applied_cb),
        T(test_applied_cb_gets_no_cmd_for_unsupported_version),
        T(test_reopen_keeps_index_chain_and_state),
        T(test_replay_of_applied_index_is_skipped),
        T(test_snapshot_restore_into_fresh_fsm),
        T(test_async_snapshot_holds_state_of_snapshot_call),
        T(test_snapshot_finalized_without_async),
        T(test_snapshot_pin_failure_backs_off),
        T(test_snapshot_of_database_without_wal),
        T(test_restore_older_image_is_ignored),
        T(test_restore_garbage_fails_and_changes_nothing),
        T(test_restore_refuses_damaged_images),
        T(test_checkpoints_match_on_identical_replicas),
        T(test_checkpoint_detects_corrupted_replica),
        T(test_checkpoint_unknown_reference_leaves_verdict),
        T(test_diverged_replica_is_rebuilt_from_snapshot),
        T(test_digest_ignores_local_meta),
        T(test_sqlite_error_is_fatal),
        T(test_open_error_reports_path),
        T(test_project_load_creates_active_version),
        T(test_project_same_digest_is_unchanged),
        T(test_project_read_errors),
        T(test_project_malformed_loads_are_rejected),
        T(test_project_versions_survive_snapshot_and_reopen),
        T(test_project_digest_covers_versions),
        T(test_project_tables_do_not_change_old_digests),
        T(test_project_tables_added_to_old_databases),
        T(test_record_summary_follows_rows),
        T(test_record_summary_added_to_old_databases),
        T(test_checkpoints_table_bounded),
        T(test_wal_checkpointed_in_background),
        T(test_connection_settings),
        T(test_setpoint_action_and_outcome),
        T(test_setpoint_malformed_is_rejected),
        T(test_actions_digest_and_snapshot),
        T(test_alarm_state_journal_and_audit),
        T(test_alarm_state_malformed_is_rejected),
        T(test_audit_records_of_actions),
    };
    return cmocka_run_group_tests_name("fsm", tests, NULL, NULL);
}
