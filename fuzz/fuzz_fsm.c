/* libFuzzer target for the replicated state machine (replication/fsm.c and
 * the files that apply one kind of state: alarm_log.c, archive.c, audit.c,
 * actions.c): the apply of command bodies shaped by the outside, as a
 * leader that trusted a client, a PLC or a bug would commit them.
 *
 * Input layout: byte 0 selects the command type (byte 0 % 10, in the order
 * ALARM_STATE, HISTORY_BATCH, RETENTION_CUT, AUDIT, SETPOINT,
 * SETPOINT_RESULT, PUT, ARCHIVE_CLASSES, ALARM_CHANGES, HISTORY_SAMPLES);
 * the rest is the body: JSON, but binary for ALARM_CHANGES and
 * HISTORY_SAMPLES. Each input is encoded
 * as a command (term 1, fixed wall time, proposer 1) and handed to the
 * fsm's apply, as libraft would, on one database that lives across inputs
 * (so an input meets the state its predecessors left: a SETPOINT_RESULT can
 * find its action, a batch can meet stored samples). Every 1000 inputs the
 * database is deleted and a new one opened, so that a long run does not
 * slow down as it grows. Halfway through each database its cluster level
 * is raised to 2, three quarters through to 3 (settled into compressed
 * chunks next to the rows settled at level 2), and from level 2 on a
 * settle slice of one step runs before every input (with the history checks below after each batch or cut, and
 * the digest compared around the input only).
 *
 * Checked, after each input:
 *   - apply returns 0 and f->fatal stays 0: no body may cause an SQLite
 *     error (that would make every replica fail-stop at once);
 *   - the applied index advanced by one;
 *   - the outcome is VG_OK, VG_REPL_UNCHANGED, VG_EINVAL or
 *     VG_EUNSUPPORTED;
 *   - a rejection, and an "unchanged", leaves the state digest as it was;
 *   - after an accepted ALARM_STATE or ALARM_CHANGES the alarm states and
 *     the journal can be read and are well formed, and the restore's scan
 *     reads every stored state (none is unreadable);
 *   - after an accepted HISTORY_BATCH or HISTORY_SAMPLES the raw and the
 *     aggregated history of the batch's first tag over [0, 2^53) can be
 *     read and are well formed
 *     (samples of 3 values, buckets of 8, in time order);
 *   - after an accepted HISTORY_BATCH or RETENTION_CUT, archive_summary
 *     holds the number and the hash sum of the stored samples (the digest
 *     depends on it instead of hashing every row), and the archive info
 *     agrees with it; after a RETENTION_CUT or ARCHIVE_CLASSES the marks
 *     and the assignment can be read, marks are times below 2^53 and every
 *     tag's archive a name of 1..64 bytes;
 *   - after an accepted AUDIT, SETPOINT, ALARM_STATE or ALARM_CHANGES the
 *     audit trail, and after an accepted SETPOINT or SETPOINT_RESULT the
 *     action log, can be read and are well formed.
 * Any failed check aborts, which libFuzzer reports as a crash. */
#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "replication.h"

#include "fuzz_check.h"

/* Inputs applied to one database before it is replaced by an empty one. */
#define INPUTS_PER_DB 1000
/* Halfway through each database the cluster level rises to 2: from then
 * on history commands only stage, and a settle slice of one step runs
 * before each input, as a node's loop runs them between commands. */
#define LEVEL2_AT 500
#define LEVEL3_AT 750
/* From here retention cuts go in steps of CUT_STEP tags (level 4), so that
 * inputs with a few tags reach a cut in steps, its continue commands, and
 * new cuts and batches between the steps. */
#define LEVEL4_AT 875
#define CUT_STEP 2
#define TIME_MS UINT64_C(1700000000000)
#define TIME_END (UINT64_C(1) << 53)

static const unsigned types[] = {
    VG_CMD_ALARM_STATE, VG_CMD_HISTORY_BATCH,  VG_CMD_RETENTION_CUT,
    VG_CMD_AUDIT,       VG_CMD_SETPOINT,       VG_CMD_SETPOINT_RESULT,
    VG_CMD_PUT,         VG_CMD_ARCHIVE_CLASSES, VG_CMD_ALARM_CHANGES,
    VG_CMD_HISTORY_SAMPLES,
};
#define N_TYPES (sizeof types / sizeof types[0])

static struct {
    char dir[256]; /* "" until created */
    char path[300];
    struct vg_repl_fsm f;
    bool open;
    unsigned inputs; /* applied to the open database */
} g;

/* The database and the files SQLite keeps next to it in WAL mode. */
static void db_remove(void)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        char p[320];
        snprintf(p, sizeof p, "%s%s", g.path, suffixes[i]);
        if (unlink(p) != 0 && errno != ENOENT) {
            fprintf(stderr, "%s: %s\n", p, strerror(errno));
        }
    }
}

static void cleanup(void)
{
    if (g.open) {
        vg_repl_fsm_close(&g.f);
        g.open = false;
    }
    db_remove();
    rmdir(g.dir);
}

static void db_open(void)
{
    if (g.dir[0] == '\0') {
        fuzz_tmpdir(g.dir, sizeof g.dir, "fsm");
        snprintf(g.path, sizeof g.path, "%s/fsm.db", g.dir);
        atexit(cleanup);
    }
    if (vg_repl_fsm_open(&g.f, g.path) != VG_OK) {
        fprintf(stderr, "vg_repl_fsm_open: %s\n", g.f.errmsg);
        abort();
    }
    /* Small rounds, so that inputs of a few batches reach every state of
     * the recent rows: between rounds, in one, and its end; and steps that
     * read rows in small windows, which grow when they do not suffice. */
    vg_repl_fsm_archive_settle_limits(&g.f, 8, 3, 4);
    vg_repl_fsm_archive_settle_window(&g.f, 1);
    vg_repl_fsm_archive_cut_step(&g.f, CUT_STEP);
    g.open = true;
    g.inputs = 0;
}

static void raise_level(int level)
{
    char body[16];
    struct vg_cmd cmd = {.type = VG_CMD_CLUSTER_LEVEL, .term = 1, .time_ms = TIME_MS,
                         .proposer = 1, .body = body};
    cmd.body_len = (uint32_t)snprintf(body, sizeof body, "{\"level\":%d}", level);
    struct raft_buffer buf;
    void *result = NULL;
    CHECK(vg_cmd_encode(&cmd, &buf) == VG_OK);
    CHECK(g.f.fsm.apply(&g.f.fsm, &buf, &result) == 0);
    raft_free(buf.base);
    CHECK((int)(intptr_t)result == VG_OK);
}

static void digest_of(unsigned char out[VG_DIGEST_SIZE])
{
    if (vg_repl_fsm_digest(&g.f, out) != VG_OK) {
        fprintf(stderr, "vg_repl_fsm_digest: %s\n", g.f.errmsg);
        abort();
    }
}

/* ------------------------------------------------------------ alarms */

/* A stored state the restore's scan cannot read would leave a new leader
 * without that alarm's state: apply stores only states it checked. */
static bool scan_cb(void *data, const struct vg_repl_alarm_row *row)
{
    (void)data;
    CHECK(row->alarm != NULL && row->alarm[0] != '\0');
    CHECK(row->readable);
    CHECK(vg_repl_alarm_status_code(row->status) >= 0);
    CHECK(row->priority >= 0 && row->priority <= 4);
    return true;
}

static void check_alarms(void)
{
    struct vg_repl_journal_query q = {.limit = 10};
    json_t *states = NULL, *journal = NULL, *e;
    size_t i;

    CHECK(vg_repl_fsm_alarm_states(&g.f, &states) == VG_OK);
    CHECK(json_is_array(states));
    json_array_foreach(states, i, e) {
        CHECK(json_is_string(json_object_get(e, "alarm")));
        CHECK(json_is_object(json_object_get(e, "state")));
        CHECK(json_is_integer(json_object_get(e, "index")));
    }
    json_decref(states);
    CHECK(vg_repl_fsm_alarm_states_scan(&g.f, NULL, SIZE_MAX, scan_cb, NULL,
                                        NULL) == VG_OK);

    CHECK(vg_repl_fsm_alarm_journal(&g.f, &q, &journal) == VG_OK);
    CHECK(json_is_array(json_object_get(journal, "entries")));
    CHECK(json_array_size(json_object_get(journal, "entries")) <= 10);
    CHECK(json_is_boolean(json_object_get(journal, "more")));
    json_array_foreach(json_object_get(journal, "entries"), i, e) {
        CHECK(json_is_integer(json_object_get(e, "id")));
        CHECK(json_is_string(json_object_get(e, "alarm")));
        CHECK(json_is_string(json_object_get(e, "cause")));
    }
    json_decref(journal);
}

/* ------------------------------------------------------- audit, actions */

/* A value of the audit trail: a string, a number or null. */
static bool audit_value(json_t *v)
{
    return json_is_string(v) || json_is_number(v) || json_is_null(v);
}

static void check_audit(void)
{
    struct vg_repl_audit_query q = {.limit = 10};
    json_t *out = NULL, *r;
    size_t i;

    CHECK(vg_repl_fsm_audit(&g.f, &q, &out) == VG_OK);
    CHECK(json_is_array(json_object_get(out, "records")));
    CHECK(json_array_size(json_object_get(out, "records")) <= 10);
    CHECK(json_is_boolean(json_object_get(out, "more")));
    json_array_foreach(json_object_get(out, "records"), i, r) {
        CHECK(json_is_integer(json_object_get(r, "id")));
        CHECK(json_is_string(json_object_get(r, "kind")));
        CHECK(audit_value(json_object_get(r, "old_value")));
        CHECK(audit_value(json_object_get(r, "new_value")));
    }
    json_decref(out);
}

static void check_actions(void)
{
    json_t *list = NULL, *a;
    size_t i;

    CHECK(vg_repl_fsm_actions(&g.f, NULL, 10, &list) == VG_OK);
    CHECK(json_is_array(list) && json_array_size(list) >= 1 &&
          json_array_size(list) <= 10);
    json_array_foreach(list, i, a) {
        CHECK(json_is_integer(json_object_get(a, "action")));
        CHECK(json_is_string(json_object_get(a, "tag")));
        CHECK(json_is_number(json_object_get(a, "value")));
    }
    json_decref(list);
}

/* ------------------------------------------------------------ archive */

/* The row hash archive_summary adds up, as replication/archive.c documents
 * it: SipHash-2-4 (all-zero key) over u32 name length, name, u64 time,
 * u64 IEEE bits of the value with -0.0 as +0.0, u8 bad; little-endian. */
static uint64_t row_hash(const char *name, size_t len, uint64_t t, double v,
                         int bad)
{
    static const unsigned char key[crypto_shorthash_KEYBYTES] = {0};
    unsigned char buf[4 + 256 + 8 + 8 + 1], out[crypto_shorthash_BYTES];
    uint64_t bits, h = 0;
    size_t n = 0;

    CHECK(len <= 256);
    if (v == 0) {
        v = 0.0;
    }
    memcpy(&bits, &v, sizeof bits);
    for (int i = 0; i < 4; i++) {
        buf[n++] = (unsigned char)(len >> (8 * i));
    }
    memcpy(buf + n, name, len);
    n += len;
    for (int i = 0; i < 8; i++) {
        buf[n++] = (unsigned char)(t >> (8 * i));
    }
    for (int i = 0; i < 8; i++) {
        buf[n++] = (unsigned char)(bits >> (8 * i));
    }
    buf[n++] = (unsigned char)(bad != 0);
    crypto_shorthash(out, buf, n, key);
    for (int i = 7; i >= 0; i--) {
        h = h << 8 | out[i];
    }
    return h;
}

/* archive_summary must hold the count and hash sum of the stored rows (no
 * row at all when nothing was ever stored or cut). */
static void check_retention(void)
{
    json_t *marks = NULL, *classes = NULL, *v;
    const char *key;

    CHECK(vg_repl_fsm_retention_marks(&g.f, &marks) == VG_OK);
    json_object_foreach(marks, key, v) {
        CHECK(json_is_integer(v) && json_integer_value(v) > 0 &&
              (uint64_t)json_integer_value(v) < TIME_END);
    }
    json_decref(marks);
    CHECK(vg_repl_fsm_archive_classes(&g.f, &classes) == VG_OK);
    json_object_foreach(classes, key, v) {
        CHECK(*key != '\0' && json_is_string(v) &&
              json_string_length(v) >= 1 && json_string_length(v) <= 64);
    }
    json_decref(classes);
}

struct fold {
    uint64_t n, sum;
};

static int fold_sample(void *arg, const char *tag, size_t len, uint64_t t,
                       double value, bool bad)
{
    struct fold *fo = arg;
    fo->sum += row_hash(tag, len, t, value, bad);
    fo->n++;
    return VG_OK;
}

/* archive_summary holds the count and hash sum of every sample the archive
 * holds, settled or recent. */
static void check_summary(void)
{
    struct fold fo = {0};
    sqlite3_stmt *st;
    uint64_t n, sum;
    int rc;

    CHECK(vg_repl_fsm_archive_each(&g.f, fold_sample, &fo) == VG_OK);
    n = fo.n;
    sum = fo.sum;
    CHECK(sqlite3_prepare_v2(g.f.db,
                             "SELECT samples, hash_sum FROM archive_summary"
                             " WHERE slot = 0",
                             -1, &st, NULL) == SQLITE_OK);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        CHECK((uint64_t)sqlite3_column_int64(st, 0) == n);
        CHECK((uint64_t)sqlite3_column_int64(st, 1) == sum);
    } else {
        CHECK(rc == SQLITE_DONE);
        CHECK(n == 0);
    }
    sqlite3_finalize(st);
    {
        struct vg_repl_archive_info info;
        CHECK(vg_repl_fsm_archive_info(&g.f, &info) == VG_OK);
        CHECK(info.samples == n);
        CHECK(n == 0 || info.oldest_ms <= info.newest_ms);
    }
}

/* A stored sample as the queries give it: [time_ms, value, bad]. */
static void check_sample(json_t *s)
{
    CHECK(json_is_array(s) && json_array_size(s) == 3);
    CHECK(json_is_integer(json_array_get(s, 0)));
    CHECK(json_integer_value(json_array_get(s, 0)) >= 0);
    CHECK((uint64_t)json_integer_value(json_array_get(s, 0)) < TIME_END);
    CHECK(json_is_real(json_array_get(s, 1)));
    CHECK(json_is_integer(json_array_get(s, 2)));
    CHECK(json_integer_value(json_array_get(s, 2)) == 0 ||
          json_integer_value(json_array_get(s, 2)) == 1);
}

static void check_history(const char *body, size_t len, bool binary)
{
    json_t *b = NULL;
    const char *tag = NULL;
    char name[257];
    json_t *out = NULL, *e, *before;
    json_int_t prev = -1;
    size_t i;

    /* Accepted, so the body has a first tag: in the JSON form the first of
     * a non-empty tags array, in the binary one the first name after t0 and
     * the count (u16 length, 1..256 bytes). */
    if (binary) {
        const unsigned char *p = (const unsigned char *)body;
        size_t nl;
        CHECK(len >= 14);
        nl = (size_t)p[12] | ((size_t)p[13] << 8);
        CHECK(nl >= 1 && nl <= 256 && 14 + nl <= len);
        memcpy(name, p + 14, nl);
        name[nl] = '\0';
        tag = name;
    } else {
        b = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
        tag = json_string_value(json_array_get(json_object_get(b, "tags"), 0));
    }
    CHECK(tag != NULL);

    if (vg_repl_fsm_history_raw(&g.f, tag, 0, TIME_END, 1000, &out) != VG_OK) {
        fprintf(stderr, "vg_repl_fsm_history_raw: %s\n", g.f.errmsg);
        abort();
    }
    CHECK(json_is_array(json_object_get(out, "samples")));
    json_array_foreach(json_object_get(out, "samples"), i, e) {
        check_sample(e);
        CHECK(json_integer_value(json_array_get(e, 0)) > prev);
        prev = json_integer_value(json_array_get(e, 0));
    }
    CHECK(json_array_size(json_object_get(out, "samples")) <= 1000);
    CHECK(json_is_boolean(json_object_get(out, "more")));
    before = json_object_get(out, "before");
    CHECK(json_is_null(before)); /* nothing is before time 0 */
    json_decref(out);

    out = NULL;
    prev = -1;
    if (vg_repl_fsm_history_aggregate(&g.f, tag, 0, TIME_END, 16, &out) != VG_OK) {
        fprintf(stderr, "vg_repl_fsm_history_aggregate: %s\n", g.f.errmsg);
        abort();
    }
    CHECK(json_is_array(json_object_get(out, "buckets")));
    CHECK(json_array_size(json_object_get(out, "buckets")) <= 16);
    json_array_foreach(json_object_get(out, "buckets"), i, e) {
        /* [start_ms, n, min, max, avg, first, last, bad] */
        json_int_t n;
        CHECK(json_is_array(e) && json_array_size(e) == 8);
        CHECK(json_is_integer(json_array_get(e, 0)));
        CHECK(json_integer_value(json_array_get(e, 0)) > prev);
        prev = json_integer_value(json_array_get(e, 0));
        CHECK(json_is_integer(json_array_get(e, 1)));
        n = json_integer_value(json_array_get(e, 1));
        for (size_t k = 2; k <= 6; k++) {
            CHECK(n > 0 ? json_is_real(json_array_get(e, k))
                        : json_is_null(json_array_get(e, k)));
        }
        CHECK(json_is_integer(json_array_get(e, 7)));
        CHECK(n + json_integer_value(json_array_get(e, 7)) > 0);
    }
    json_decref(out);
    json_decref(b);
}

/* ------------------------------------------------------------ input */

int LLVMFuzzerTestOneInput(const uint8_t *input, size_t input_size)
{
    unsigned char before[VG_DIGEST_SIZE], after[VG_DIGEST_SIZE];
    struct vg_cmd cmd;
    struct raft_buffer buf;
    void *result = (void *)(intptr_t)-1;
    uint64_t index;
    unsigned type;
    int outcome;
    int rv;

    if (input_size < 1) {
        return 0;
    }
    type = types[input[0] % N_TYPES];
    cmd = (struct vg_cmd){
        .type = (uint16_t)type,
        .term = 1,
        .time_ms = TIME_MS,
        .proposer = 1,
        .body = (const char *)input + 1,
        .body_len = (uint32_t)(input_size - 1),
    };
    if (input_size - 1 > VG_CMD_MAX_BODY || vg_cmd_encode(&cmd, &buf) != VG_OK) {
        return 0;
    }

    if (g.open && g.inputs >= INPUTS_PER_DB) {
        vg_repl_fsm_close(&g.f);
        g.open = false;
        db_remove();
    }
    if (!g.open) {
        db_open();
    }
    g.inputs++;
    if (g.inputs == LEVEL2_AT || g.inputs == LEVEL3_AT || g.inputs == LEVEL4_AT) {
        raise_level(g.inputs == LEVEL2_AT ? 2 : g.inputs == LEVEL3_AT ? 3 : 4);
    }
    if (g.inputs > LEVEL2_AT &&
        vg_repl_fsm_archive_settle_some(&g.f, 0, NULL) != VG_OK) {
        fprintf(stderr, "settle slice failed: %s\n", g.f.errmsg);
        abort();
    }

    digest_of(before);
    index = g.f.applied_index;
    rv = g.f.fsm.apply(&g.f.fsm, &buf, &result);
    raft_free(buf.base);
    if (rv != 0 || g.f.fatal) {
        fprintf(stderr, "apply of a %s command failed: rv %d, fatal %d: %s\n",
                vg_cmd_type_name(type), rv, g.f.fatal, g.f.errmsg);
        abort();
    }
    CHECK(g.f.applied_index == index + 1);
    outcome = (int)(intptr_t)result;
    CHECK(outcome == VG_OK || outcome == VG_REPL_UNCHANGED ||
          outcome == VG_EINVAL || outcome == VG_EUNSUPPORTED);

    if (outcome != VG_OK) {
        /* Rejected, or valid with nothing to change: no trace in the
         * replicated state. */
        digest_of(after);
        CHECK(memcmp(before, after, sizeof before) == 0);
        return 0;
    }
    switch (type) {
    case VG_CMD_ALARM_STATE:
    case VG_CMD_ALARM_CHANGES:
        check_alarms();
        check_audit();
        break;
    case VG_CMD_AUDIT:
        check_audit();
        break;
    case VG_CMD_SETPOINT:
        check_audit();
        check_actions();
        break;
    case VG_CMD_SETPOINT_RESULT:
        check_actions();
        break;
    case VG_CMD_HISTORY_BATCH:
    case VG_CMD_HISTORY_SAMPLES:
        check_history(cmd.body, cmd.body_len, type == VG_CMD_HISTORY_SAMPLES);
        check_summary();
        break;
    case VG_CMD_RETENTION_CUT:
        check_summary();
        check_retention();
        break;
    case VG_CMD_ARCHIVE_CLASSES:
        check_retention();
        break;
    default:
        break;
    }
    return 0;
}
