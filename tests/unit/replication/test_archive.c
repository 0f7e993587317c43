/* Unit tests for the process-value archive (replication/archive.c), driven
 * through the state machine's struct raft_fsm like test_fsm.c: commands are
 * encoded with vg_cmd_encode and applied with f->fsm.apply (f->raft is NULL,
 * so the index is applied_index + 1).
 *
 * Covered: batches stored and read back raw (values, order, quality,
 * paging, the sample before a range); the first sample of a (tag, time)
 * winning; every kind of malformed batch rejected with nothing stored;
 * aggregation checked against statistics computed here; retention cuts
 * (exact rows, watermark, later old samples ignored, unchanged cuts); the
 * digest (equal on replicas, sensitive to content, the summary's hash sum
 * recomputed here from the documented row encoding, -0.0 as +0.0);
 * snapshot and restore; archive_info; query argument checks. One case
 * prints (does not assert) how long a 50 000-sample batch takes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <sodium.h>
#include <sqlite3.h>
#include <time.h>
#include <unistd.h>

#include "replication.h"

#define T53 (UINT64_C(1) << 53)

/* ---- fixture ------------------------------------------------------------ */

struct fx {
    char dir[64];
    struct vg_repl_fsm a;
    struct vg_repl_fsm b;
    uint64_t time_ms; /* stamped into commands */
};

static void open_fsm(struct fx *x, struct vg_repl_fsm *f, const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", x->dir, name);
    if (vg_repl_fsm_open(f, path) != VG_OK) {
        fail_msg("open %s: %s", path, f->errmsg);
    }
    /* Every batch settled by the command that brings it: these tests read
     * archive_samples with SQL. test_archive_recent covers the rounds. */
    vg_repl_fsm_archive_settle_limits(f, 1, 1, UINT32_MAX);
}

static int setup(void **state)
{
    struct fx *x = calloc(1, sizeof *x);
    assert_non_null(x);
    snprintf(x->dir, sizeof x->dir, "/tmp/vg-test-archive-XXXXXX");
    assert_non_null(mkdtemp(x->dir));
    open_fsm(x, &x->a, "a.db");
    open_fsm(x, &x->b, "b.db");
    x->time_ms = 1700000000000ull;
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    struct fx *x = *state;
    vg_repl_fsm_close(&x->a);
    vg_repl_fsm_close(&x->b);
    vg_remove_tree(x->dir);
    free(x);
    return 0;
}

/* ---- commands ----------------------------------------------------------- */

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

static int apply_buf(struct vg_repl_fsm *f, const struct raft_buffer *buf)
{
    void *result = (void *)(intptr_t)-1;
    assert_int_equal(f->fsm.apply(&f->fsm, buf, &result), 0);
    return (int)(intptr_t)result;
}

/* Apply BODY to F; returns the outcome. */
static int apply_cmd(struct fx *x, struct vg_repl_fsm *f, unsigned type,
                     const char *body)
{
    struct raft_buffer buf = make_cmd(x, type, body);
    int outcome = apply_buf(f, &buf);
    raft_free(buf.base);
    return outcome;
}

/* Apply BODY to both fsms (what replication does); returns the outcome. */
static int apply_both(struct fx *x, unsigned type, const char *body)
{
    struct raft_buffer buf = make_cmd(x, type, body);
    int oa = apply_buf(&x->a, &buf);
    int ob = apply_buf(&x->b, &buf);
    assert_int_equal(oa, ob);
    raft_free(buf.base);
    return oa;
}

/* One sample as the test thinks of it: absolute time. */
struct smp {
    uint32_t tag;
    uint64_t t;
    double v;
    unsigned bad;
};

static void pack(unsigned char *p, uint32_t tag, uint32_t dt, double v,
                 unsigned bad)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    for (int i = 0; i < 4; i++) {
        p[i] = (unsigned char)(tag >> (8 * i));
        p[4 + i] = (unsigned char)(dt >> (8 * i));
    }
    for (int i = 0; i < 8; i++) {
        p[8 + i] = (unsigned char)(bits >> (8 * i));
    }
    p[16] = (unsigned char)bad;
}

static char *b64(const unsigned char *bytes, size_t n)
{
    size_t size = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
    char *s = malloc(size);
    assert_non_null(s);
    sodium_bin2base64(s, size, bytes, n, sodium_base64_VARIANT_ORIGINAL);
    return s;
}

/* A batch body with base T0 (JSON value TEXT), TAGS (a JSON array text) and
 * S (JSON value text). Returns a malloc'd string. */
static char *body_of(const char *t0, const char *tags, const char *s)
{
    size_t size = strlen(t0) + strlen(tags) + strlen(s) + 64;
    char *body = malloc(size);
    assert_non_null(body);
    snprintf(body, size, "{\"t0\":%s,\"tags\":%s,\"s\":%s}", t0, tags, s);
    return body;
}

/* A well-formed batch of the N samples S over NAMES, with base T0; a
 * malloc'd string. */
static char *batch_body(uint64_t t0, const char *const *names, size_t n_names,
                        const struct smp *s, size_t n)
{
    unsigned char *raw = malloc(n * VG_HISTORY_SAMPLE_SIZE + 1);
    json_t *tags = json_array();
    json_t *o;
    char *text, *body;
    assert_non_null(raw);
    for (size_t i = 0; i < n; i++) {
        assert_true(s[i].t >= t0 && s[i].t - t0 <= UINT32_MAX);
        pack(raw + i * VG_HISTORY_SAMPLE_SIZE, s[i].tag,
             (uint32_t)(s[i].t - t0), s[i].v, s[i].bad);
    }
    for (size_t i = 0; i < n_names; i++) {
        json_array_append_new(tags, json_string(names[i]));
    }
    text = b64(raw, n * VG_HISTORY_SAMPLE_SIZE);
    o = json_pack("{s:I, s:o, s:s}", "t0", (json_int_t)t0, "tags", tags, "s",
                  text);
    assert_non_null(o);
    body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    free(text);
    free(raw);
    assert_non_null(body);
    return body;
}

/* Apply a batch to F (or to both when F is NULL); returns the outcome. */
static int apply_batch(struct fx *x, struct vg_repl_fsm *f, uint64_t t0,
                       const char *const *names, size_t n_names,
                       const struct smp *s, size_t n)
{
    char *body = batch_body(t0, names, n_names, s, n);
    int outcome = f != NULL ? apply_cmd(x, f, VG_CMD_HISTORY_BATCH, body)
                            : apply_both(x, VG_CMD_HISTORY_BATCH, body);
    free(body);
    return outcome;
}

static int cut(struct fx *x, struct vg_repl_fsm *f, uint64_t before)
{
    char body[64];
    snprintf(body, sizeof body, "{\"before_ms\":%llu}", (unsigned long long)before);
    return f != NULL ? apply_cmd(x, f, VG_CMD_RETENTION_CUT, body)
                     : apply_both(x, VG_CMD_RETENTION_CUT, body);
}

/* ---- inspection --------------------------------------------------------- */

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

static void assert_other_digest(struct vg_repl_fsm *f1, struct vg_repl_fsm *f2)
{
    unsigned char d1[VG_DIGEST_SIZE], d2[VG_DIGEST_SIZE];
    digest_of(f1, d1);
    digest_of(f2, d2);
    assert_memory_not_equal(d1, d2, VG_DIGEST_SIZE);
}

/* The row hash as replication.h's archive section and archive.c document
 * it, written out again here so that a change of the encoding (which would
 * split a cluster of mixed versions) fails a test. */
static uint64_t expected_row_hash(const char *name, uint64_t t, double v,
                                  int bad)
{
    unsigned char key[crypto_shorthash_KEYBYTES] = {0};
    unsigned char buf[512], out[8];
    size_t len = strlen(name), n = 0;
    uint64_t bits, h = 0;
    if (v == 0) {
        v = 0.0;
    }
    memcpy(&bits, &v, 8);
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
    buf[n++] = (unsigned char)bad;
    crypto_shorthash(out, buf, n, key);
    for (int i = 7; i >= 0; i--) {
        h = h << 8 | out[i];
    }
    return h;
}

/* The summary row must hold the count and hash sum of what is stored. */
static void assert_summary_consistent(struct vg_repl_fsm *f)
{
    sqlite3_stmt *st;
    uint64_t sum = 0;
    long long n = 0;
    assert_int_equal(sqlite3_prepare_v2(f->db,
                                        "SELECT a.name, s.t, s.value, s.bad"
                                        " FROM archive_samples s"
                                        " JOIN archive_tags a ON a.id = s.tag",
                                        -1, &st, NULL),
                     SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        sum += expected_row_hash((const char *)sqlite3_column_text(st, 0),
                                 (uint64_t)sqlite3_column_int64(st, 1),
                                 sqlite3_column_double(st, 2),
                                 sqlite3_column_int(st, 3));
        n++;
    }
    sqlite3_finalize(st);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM archive_samples"), n);
    if (sql_int(f, "SELECT count(*) FROM archive_summary") == 0) {
        assert_int_equal(n, 0);
        return;
    }
    assert_int_equal(sql_int(f, "SELECT samples FROM archive_summary"), n);
    assert_int_equal((uint64_t)sql_int(f, "SELECT hash_sum FROM archive_summary"),
                     sum);
}

static json_t *raw_of(struct vg_repl_fsm *f, const char *tag, uint64_t from,
                      uint64_t to, size_t limit)
{
    json_t *out = NULL;
    if (vg_repl_fsm_history_raw(f, tag, from, to, limit, &out) != VG_OK) {
        fail_msg("history_raw: %s", f->errmsg);
    }
    assert_non_null(out);
    return out;
}

static json_t *agg_of(struct vg_repl_fsm *f, const char *tag, uint64_t from,
                      uint64_t to, unsigned buckets)
{
    json_t *out = NULL;
    if (vg_repl_fsm_history_aggregate(f, tag, from, to, buckets, &out) != VG_OK) {
        fail_msg("history_aggregate: %s", f->errmsg);
    }
    assert_non_null(out);
    return out;
}

/* SAMPLE (a [t, value, bad] array) is (T, V, BAD), with V exact. */
static void assert_sample(json_t *sample, uint64_t t, double v, int bad)
{
    assert_true(json_is_array(sample));
    assert_int_equal(json_array_size(sample), 3);
    assert_true(json_is_integer(json_array_get(sample, 0)));
    assert_true(json_is_real(json_array_get(sample, 1)));
    assert_true(json_is_integer(json_array_get(sample, 2)));
    assert_int_equal(json_integer_value(json_array_get(sample, 0)), t);
    assert_true(json_real_value(json_array_get(sample, 1)) == v);
    assert_int_equal(json_integer_value(json_array_get(sample, 2)), bad);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *const AB[] = {"a", "b"};

/* ---- raw ---------------------------------------------------------------- */

static void test_batch_read_back_raw(void **state)
{
    struct fx *x = *state;
    struct vg_repl_fsm *f = &x->a;
    /* Out of time order and interleaved, as a leader may send them. */
    const struct smp s[] = {
        {0, 1030, 3.5, 0},  {1, 1000, -1.25, 1}, {0, 1000, 1.5, 0},
        {0, 1010, 2.5, 1},  {1, 1020, 1e300, 0}, {0, 1040, -0.0, 0},
        {0, 999999, 7, 0},
    };
    json_t *r, *samples;

    assert_int_equal(apply_batch(x, f, 1000, AB, 2, s, 7), VG_OK);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM archive_samples"), 7);
    assert_summary_consistent(f);

    r = raw_of(f, "a", 1000, 1041, 100);
    assert_string_equal(json_string_value(json_object_get(r, "tag")), "a");
    assert_int_equal(json_integer_value(json_object_get(r, "from_ms")), 1000);
    assert_int_equal(json_integer_value(json_object_get(r, "to_ms")), 1041);
    samples = json_object_get(r, "samples");
    assert_int_equal(json_array_size(samples), 4);
    assert_sample(json_array_get(samples, 0), 1000, 1.5, 0);
    assert_sample(json_array_get(samples, 1), 1010, 2.5, 1);
    assert_sample(json_array_get(samples, 2), 1030, 3.5, 0);
    assert_sample(json_array_get(samples, 3), 1040, 0.0, 0);
    assert_true(json_is_false(json_object_get(r, "more")));
    assert_true(json_is_null(json_object_get(r, "next_from_ms")));
    assert_true(json_is_null(json_object_get(r, "before")));
    json_decref(r);

    /* The end is exclusive; BEFORE is the newest sample before FROM. */
    r = raw_of(f, "a", 1011, 1040, 100);
    samples = json_object_get(r, "samples");
    assert_int_equal(json_array_size(samples), 1);
    assert_sample(json_array_get(samples, 0), 1030, 3.5, 0);
    assert_sample(json_object_get(r, "before"), 1010, 2.5, 1);
    json_decref(r);

    r = raw_of(f, "b", 0, T53, 100);
    samples = json_object_get(r, "samples");
    assert_int_equal(json_array_size(samples), 2);
    assert_sample(json_array_get(samples, 0), 1000, -1.25, 1);
    assert_sample(json_array_get(samples, 1), 1020, 1e300, 0);
    json_decref(r);

    /* An unknown tag has no samples and is not an error. */
    r = raw_of(f, "nope", 0, T53, 100);
    assert_int_equal(json_array_size(json_object_get(r, "samples")), 0);
    assert_true(json_is_null(json_object_get(r, "before")));
    assert_true(json_is_false(json_object_get(r, "more")));
    json_decref(r);
}

static void test_raw_paging(void **state)
{
    struct fx *x = *state;
    struct vg_repl_fsm *f = &x->a;
    const char *const names[] = {"p"};
    struct smp s[25];
    uint64_t from = 5000, expected_next[] = {0, 0};
    size_t got = 0;

    for (size_t i = 0; i < 25; i++) {
        s[i] = (struct smp){0, 5000 + 100 * i, (double)i, i % 7 == 3};
    }
    assert_int_equal(apply_batch(x, f, 5000, names, 1, s, 25), VG_OK);
    expected_next[0] = 5000 + 100 * 10;
    expected_next[1] = 5000 + 100 * 20;
    for (int page = 0; page < 3; page++) {
        json_t *r = raw_of(f, "p", from, 5000 + 100 * 25, 10);
        json_t *samples = json_object_get(r, "samples");
        json_t *before = json_object_get(r, "before");
        size_t n = json_array_size(samples);
        assert_int_equal(n, page < 2 ? 10 : 5);
        for (size_t i = 0; i < n; i++) {
            assert_sample(json_array_get(samples, i), s[got + i].t, s[got + i].v,
                          (int)s[got + i].bad);
        }
        if (page == 0) {
            assert_true(json_is_null(before));
        } else {
            /* The last sample of the previous page. */
            assert_sample(before, s[got - 1].t, s[got - 1].v, (int)s[got - 1].bad);
        }
        got += n;
        if (page < 2) {
            assert_true(json_is_true(json_object_get(r, "more")));
            assert_int_equal(json_integer_value(json_object_get(r, "next_from_ms")),
                             expected_next[page]);
            from = (uint64_t)json_integer_value(json_object_get(r, "next_from_ms"));
        } else {
            assert_true(json_is_false(json_object_get(r, "more")));
            assert_true(json_is_null(json_object_get(r, "next_from_ms")));
        }
        json_decref(r);
    }
    assert_int_equal(got, 25);
}

/* ---- first sample wins -------------------------------------------------- */

static void test_duplicate_first_wins_counted_once(void **state)
{
    struct fx *x = *state;
    const struct smp twice[] = {{0, 5, 1.0, 0}, {1, 5, 9.0, 0}, {0, 5, 2.0, 1}};
    const struct smp again[] = {{0, 5, 3.0, 0}, {0, 6, 4.0, 0}};
    const struct smp once[] = {{0, 5, 1.0, 0}, {1, 5, 9.0, 0}};
    const struct smp later[] = {{0, 6, 4.0, 0}};
    json_t *r;

    assert_int_equal(apply_batch(x, &x->a, 0, AB, 2, twice, 3), VG_OK);
    assert_int_equal(sql_int(&x->a, "SELECT count(*) FROM archive_samples"), 2);
    assert_int_equal(apply_batch(x, &x->a, 0, AB, 2, again, 2), VG_OK);
    assert_int_equal(sql_int(&x->a, "SELECT count(*) FROM archive_samples"), 3);
    assert_int_equal(sql_int(&x->a, "SELECT samples FROM archive_summary"), 3);
    assert_summary_consistent(&x->a);
    r = raw_of(&x->a, "a", 0, 100, 10);
    assert_int_equal(json_array_size(json_object_get(r, "samples")), 2);
    assert_sample(json_array_get(json_object_get(r, "samples"), 0), 5, 1.0, 0);
    assert_sample(json_array_get(json_object_get(r, "samples"), 1), 6, 4.0, 0);
    json_decref(r);

    /* A replica that never saw the losing duplicates holds the same state. */
    assert_int_equal(apply_batch(x, &x->b, 0, AB, 2, once, 2), VG_OK);
    assert_int_equal(apply_batch(x, &x->b, 0, AB, 2, later, 1), VG_OK);
    assert_same_digest(&x->a, &x->b);
}

/* Larger batches take the path that inserts many rows per statement; in-batch
 * duplicates, rows older than stored ones (filling gaps, meeting stored
 * rows) and newer ones mixed, against a replica given only the winners. */
static void test_duplicates_in_large_batches(void **state)
{
    struct fx *x = *state;
    const char *const names[] = {"c", "d"};
    struct smp *s = calloc(1000, sizeof *s), *w = calloc(1000, sizeof *w);
    size_t n = 0, nw = 0;
    json_t *r;

    assert_non_null(s);
    assert_non_null(w);
    /* Batch 1: every time of c twice in a row (the first wins), d once. */
    for (uint64_t t = 0; t < 1000; t += 10) {
        s[n++] = (struct smp){0, t, (double)t, 0};
        s[n++] = (struct smp){0, t, -1.0, 1};
        s[n++] = (struct smp){1, t, (double)t / 2, 0};
    }
    assert_int_equal(apply_batch(x, &x->a, 0, names, 2, s, n), VG_OK);
    assert_int_equal(sql_int(&x->a, "SELECT count(*) FROM archive_samples"), 200);
    /* Batch 2: c's gaps (older than its newest), c's stored times again
     * (ignored), c's new times with a duplicate at the end. */
    n = 0;
    for (uint64_t t = 5; t < 1000; t += 10) {
        s[n++] = (struct smp){0, t, (double)t, 0};
    }
    for (uint64_t t = 0; t < 1000; t += 10) {
        s[n++] = (struct smp){0, t, -2.0, 0};
    }
    for (uint64_t t = 1000; t < 1400; t += 10) {
        s[n++] = (struct smp){0, t, (double)t, 0};
    }
    s[n++] = (struct smp){0, 1390, -3.0, 0};
    assert_int_equal(apply_batch(x, &x->a, 0, names, 2, s, n), VG_OK);
    assert_int_equal(sql_int(&x->a, "SELECT count(*) FROM archive_samples"),
                     200 + 100 + 40);
    assert_int_equal(sql_int(&x->a, "SELECT count(*) FROM archive_samples"
                                    " WHERE value < 0"),
                     0);
    assert_summary_consistent(&x->a);
    r = raw_of(&x->a, "c", 0, T53, 1000);
    assert_int_equal(json_array_size(json_object_get(r, "samples")), 240);
    for (size_t i = 0; i < 240; i++) {
        uint64_t t = i < 200 ? 5 * i : 1000 + 10 * (i - 200);
        assert_sample(json_array_get(json_object_get(r, "samples"), i), t,
                      (double)t, 0);
    }
    json_decref(r);

    /* The winners alone, in one batch, give the same state. */
    for (uint64_t t = 0; t < 1000; t += 10) {
        w[nw++] = (struct smp){0, t, (double)t, 0};
        w[nw++] = (struct smp){1, t, (double)t / 2, 0};
    }
    for (uint64_t t = 5; t < 1000; t += 10) {
        w[nw++] = (struct smp){0, t, (double)t, 0};
    }
    for (uint64_t t = 1000; t < 1400; t += 10) {
        w[nw++] = (struct smp){0, t, (double)t, 0};
    }
    assert_int_equal(apply_batch(x, &x->b, 0, names, 2, w, nw), VG_OK);
    assert_same_digest(&x->a, &x->b);
    free(s);
    free(w);
}

/* ---- malformed batches -------------------------------------------------- */

/* One valid sample of tag 0 at t0 + 1, as base64 in a JSON string. */
static char *one_sample_s(uint32_t tag, double v, unsigned bad, uint32_t dt)
{
    unsigned char raw[VG_HISTORY_SAMPLE_SIZE];
    char *text, *quoted;
    pack(raw, tag, dt, v, bad);
    text = b64(raw, sizeof raw);
    quoted = malloc(strlen(text) + 3);
    assert_non_null(quoted);
    sprintf(quoted, "\"%s\"", text);
    free(text);
    return quoted;
}

static char *s_of_bytes(const unsigned char *raw, size_t n)
{
    char *text = b64(raw, n);
    char *quoted = malloc(strlen(text) + 3);
    assert_non_null(quoted);
    sprintf(quoted, "\"%s\"", text);
    free(text);
    return quoted;
}

static void test_malformed_batches_rejected(void **state)
{
    struct fx *x = *state;
    struct vg_repl_fsm *f = &x->a;
    const struct smp base[] = {{0, 100, 1.0, 0}, {1, 100, 2.0, 0}};
    unsigned char two[2 * VG_HISTORY_SAMPLE_SIZE], odd[18] = {0};
    unsigned char before[VG_DIGEST_SIZE], after[VG_DIGEST_SIZE];
    char long_name[300], long_tags[320];
    char *good = one_sample_s(0, 1.0, 0, 1);
    char *nan_s = one_sample_s(0, NAN, 0, 1);
    char *inf_s = one_sample_s(0, -INFINITY, 0, 1);
    char *bad2_s = one_sample_s(0, 1.0, 2, 1);
    char *idx_s = one_sample_s(2, 1.0, 0, 1);
    char *late_s = one_sample_s(0, 1.0, 0, 10);
    char *odd_s = s_of_bytes(odd, sizeof odd);
    char *mixed_s, *spaced_s;
    size_t n_cases;

    /* A good sample followed by one with a bad tag index: nothing of the
     * batch may be stored. */
    pack(two, 0, 1, 5.0, 0);
    pack(two + VG_HISTORY_SAMPLE_SIZE, 7, 2, 6.0, 0);
    mixed_s = s_of_bytes(two, sizeof two);
    /* Valid base64 with a line break in it (decoders that skip white space
     * would accept it; the contract does not). */
    spaced_s = malloc(strlen(good) + 3);
    assert_non_null(spaced_s);
    snprintf(spaced_s, strlen(good) + 3, "%.9s\\n%s", good, good + 9);
    memset(long_name, 'x', 257);
    long_name[257] = '\0';
    snprintf(long_tags, sizeof long_tags, "[\"%s\"]", long_name);

    {
        const char *cases[][3] = {
            /* t0, tags, s */
            {"1000", "[\"a\",\"b\"]", "\"!!!!\""},       /* not base64 */
            {"1000", "[\"a\",\"b\"]", "\"AAA\""},        /* unpadded */
            {"1000", "[\"a\",\"b\"]", spaced_s},         /* ignored chars */
            {"1000", "[\"a\",\"b\"]", "\"\""},           /* no samples */
            {"1000", "[\"a\",\"b\"]", odd_s},            /* 18 bytes */
            {"1000", "[\"a\",\"b\"]", idx_s},            /* tag index 2 */
            {"1000", "[\"a\",\"b\"]", mixed_s},          /* second sample bad */
            {"1000", "[\"a\",\"b\"]", nan_s},            /* NaN */
            {"1000", "[\"a\",\"b\"]", inf_s},            /* -Inf */
            {"1000", "[\"a\",\"b\"]", bad2_s},           /* bad byte 2 */
            {"1000", "[\"a\",\"a\"]", good},             /* duplicate names */
            {"1000", "[]", good},                        /* no tags */
            {"1000", "[\"\"]", good},                    /* empty name */
            {"1000", long_tags, good},                   /* 257 bytes */
            {"1000", "[\"a\\u0000b\"]", good},           /* NUL in name */
            {"1000", "[\"a\",3]", good},                 /* name not a string */
            {"1000", "\"a\"", good},                     /* tags not an array */
            {"-1", "[\"a\",\"b\"]", good},               /* t0 negative */
            {"1000.5", "[\"a\",\"b\"]", good},           /* t0 not integer */
            {"1000.0", "[\"a\",\"b\"]", good},           /* t0 a real */
            {"\"1000\"", "[\"a\",\"b\"]", good},         /* t0 a string */
            {"9007199254740992", "[\"a\",\"b\"]", good}, /* t0 = 2^53 */
            {"9007199254740982", "[\"a\",\"b\"]", late_s}, /* t0+dt = 2^53 */
            {"1000", "[\"a\",\"b\"]", "12"},             /* s a number */
            {"1000", "[\"a\",\"b\"]", "[\"AAAA\"]"},     /* s an array */
            {"1000", "[\"a\",\"b\"]", "null"},           /* s null */
        };
        n_cases = sizeof cases / sizeof cases[0];

        /* On an empty archive first: not even the summary row appears. */
        for (size_t i = 0; i < n_cases; i++) {
            char *body = body_of(cases[i][0], cases[i][1], cases[i][2]);
            int outcome = apply_cmd(x, &x->b, VG_CMD_HISTORY_BATCH, body);
            if (outcome != VG_EINVAL) {
                fail_msg("case %zu (%s) gave %d", i, body, outcome);
            }
            free(body);
        }
        assert_int_equal(sql_int(&x->b, "SELECT count(*) FROM archive_samples"), 0);
        assert_int_equal(sql_int(&x->b, "SELECT count(*) FROM archive_tags"), 0);
        assert_int_equal(sql_int(&x->b, "SELECT count(*) FROM archive_summary"), 0);

        /* Then on one holding data: nothing changes. */
        assert_int_equal(apply_batch(x, f, 100, AB, 2, base, 2), VG_OK);
        digest_of(f, before);
        for (size_t i = 0; i < n_cases; i++) {
            char *body = body_of(cases[i][0], cases[i][1], cases[i][2]);
            assert_int_equal(apply_cmd(x, f, VG_CMD_HISTORY_BATCH, body), VG_EINVAL);
            free(body);
        }
    }
    /* Missing members. */
    assert_int_equal(apply_cmd(x, f, VG_CMD_HISTORY_BATCH,
                               "{\"tags\":[\"a\"],\"s\":\"AAAA\"}"),
                     VG_EINVAL);
    assert_int_equal(apply_cmd(x, f, VG_CMD_HISTORY_BATCH, "{\"t0\":1,\"s\":\"AAAA\"}"),
                     VG_EINVAL);
    assert_int_equal(apply_cmd(x, f, VG_CMD_HISTORY_BATCH, "{\"t0\":1,\"tags\":[\"a\"]}"),
                     VG_EINVAL);
    assert_int_equal(apply_cmd(x, f, VG_CMD_HISTORY_BATCH, "{}"), VG_EINVAL);
    assert_true(n_cases + 4 >= 12);

    digest_of(f, after);
    assert_memory_equal(before, after, VG_DIGEST_SIZE);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM archive_samples"), 2);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM archive_tags"), 2);
    assert_summary_consistent(f);
    /* The good variants of the same pieces are accepted. */
    {
        char *body = body_of("1000", "[\"a\",\"b\"]", good);
        assert_int_equal(apply_cmd(x, f, VG_CMD_HISTORY_BATCH, body), VG_OK);
        free(body);
    }
    assert_int_equal(sql_int(f, "SELECT count(*) FROM archive_samples"), 3);
    free(good);
    free(nan_s);
    free(inf_s);
    free(bad2_s);
    free(idx_s);
    free(late_s);
    free(odd_s);
    free(mixed_s);
    free(spaced_s);
}

/* The largest batch is accepted, one sample more is not. */
static void test_batch_size_limit(void **state)
{
    struct fx *x = *state;
    size_t n = VG_HISTORY_BATCH_MAX + 1;
    unsigned char *raw = calloc(n, VG_HISTORY_SAMPLE_SIZE);
    char *s, *body;
    assert_non_null(raw);
    for (size_t i = 0; i < n; i++) {
        pack(raw + i * VG_HISTORY_SAMPLE_SIZE, 0, (uint32_t)i, 1.0, 0);
    }
    s = s_of_bytes(raw, n * VG_HISTORY_SAMPLE_SIZE);
    body = body_of("0", "[\"a\"]", s);
    assert_int_equal(apply_cmd(x, &x->a, VG_CMD_HISTORY_BATCH, body), VG_EINVAL);
    free(s);
    free(body);
    s = s_of_bytes(raw, (n - 1) * VG_HISTORY_SAMPLE_SIZE);
    body = body_of("0", "[\"a\"]", s);
    assert_int_equal(apply_cmd(x, &x->a, VG_CMD_HISTORY_BATCH, body), VG_OK);
    assert_int_equal(sql_int(&x->a, "SELECT count(*) FROM archive_samples"),
                     VG_HISTORY_BATCH_MAX);
    free(s);
    free(body);
    free(raw);
}

/* ---- aggregate ---------------------------------------------------------- */

static double series(size_t i)
{
    return 50.0 * sin((double)i / 1000.0) + 0.001 * (double)i - 20.0;
}

static bool series_bad(size_t i)
{
    return i % 997 == 13;
}

struct expect {
    uint64_t n, bad;
    double min, max, sum, first, last;
};

static void test_aggregate_known_series(void **state)
{
    struct fx *x = *state;
    struct vg_repl_fsm *f = &x->a;
    const char *const names[] = {"flow"};
    const size_t n = 86400, nb = 500;
    const uint64_t from = 1700000000000ull, to = from + 86400000ull;
    const uint64_t width = 172800; /* 86 400 000 / 500 */
    struct smp *s = calloc(n, sizeof *s);
    struct expect *e = calloc(nb, sizeof *e);
    json_t *r, *buckets;
    size_t listed = 0;

    assert_non_null(s);
    assert_non_null(e);
    for (size_t i = 0; i < n; i++) {
        s[i] = (struct smp){0, from + 1000 * i, series(i), series_bad(i)};
    }
    assert_int_equal(apply_batch(x, f, from, names, 1, s, n), VG_OK);

    /* The statistics, straight from the series definition. */
    for (size_t i = 0; i < n; i++) {
        struct expect *b = &e[i * 1000 / width];
        double v = series(i);
        if (series_bad(i)) {
            b->bad++;
            continue;
        }
        if (b->n == 0) {
            b->first = b->min = b->max = v;
        }
        b->min = fmin(b->min, v);
        b->max = fmax(b->max, v);
        b->sum += v;
        b->last = v;
        b->n++;
    }

    r = agg_of(f, "flow", from, to, (unsigned)nb);
    assert_int_equal(json_integer_value(json_object_get(r, "bucket_ms")), width);
    assert_int_equal(json_integer_value(json_object_get(r, "from_ms")), from);
    assert_int_equal(json_integer_value(json_object_get(r, "to_ms")), to);
    assert_true(json_is_null(json_object_get(r, "before")));
    buckets = json_object_get(r, "buckets");
    assert_int_equal(json_array_size(buckets), nb);
    for (size_t k = 0; k < nb; k++) {
        json_t *b = json_array_get(buckets, k);
        double avg;
        assert_int_equal(json_array_size(b), 8);
        assert_int_equal(json_integer_value(json_array_get(b, 0)), from + k * width);
        assert_int_equal(json_integer_value(json_array_get(b, 1)), e[k].n);
        assert_true(json_real_value(json_array_get(b, 2)) == e[k].min);
        assert_true(json_real_value(json_array_get(b, 3)) == e[k].max);
        avg = json_real_value(json_array_get(b, 4));
        assert_true(fabs(avg - e[k].sum / (double)e[k].n) <=
                    1e-9 * (1.0 + fabs(avg)));
        assert_true(json_real_value(json_array_get(b, 5)) == e[k].first);
        assert_true(json_real_value(json_array_get(b, 6)) == e[k].last);
        assert_int_equal(json_integer_value(json_array_get(b, 7)), e[k].bad);
        listed += (size_t)(e[k].n + e[k].bad);
    }
    assert_int_equal(listed, n);
    json_decref(r);
    free(s);
    free(e);
}

static void test_aggregate_bad_only_empty_and_partial_buckets(void **state)
{
    struct fx *x = *state;
    struct vg_repl_fsm *f = &x->a;
    const char *const names[] = {"x"};
    /* [1000, 2001) in 4 buckets of ceil(1001 / 4) = 251 ms:
     * [1000,1251) good and bad, [1251,1502) bad only, [1502,1753) empty,
     * [1753,2001) the shorter last one. */
    const struct smp s[] = {
        {0, 999, 0.5, 0},  {0, 1000, 1.0, 0}, {0, 1100, 3.0, 0},
        {0, 1200, -5, 1},  {0, 1300, 8.0, 1}, {0, 1400, 9.0, 1},
        {0, 1800, 7.0, 0}, {0, 2000, 8.0, 0}, {0, 2001, 100, 0},
    };
    json_t *r, *buckets, *b;

    assert_int_equal(apply_batch(x, f, 999, names, 1, s, 9), VG_OK);
    r = agg_of(f, "x", 1000, 2001, 4);
    assert_int_equal(json_integer_value(json_object_get(r, "bucket_ms")), 251);
    assert_sample(json_object_get(r, "before"), 999, 0.5, 0);
    buckets = json_object_get(r, "buckets");
    assert_int_equal(json_array_size(buckets), 3);

    b = json_array_get(buckets, 0);
    assert_int_equal(json_integer_value(json_array_get(b, 0)), 1000);
    assert_int_equal(json_integer_value(json_array_get(b, 1)), 2);
    assert_true(json_real_value(json_array_get(b, 2)) == 1.0);
    assert_true(json_real_value(json_array_get(b, 3)) == 3.0);
    assert_true(json_real_value(json_array_get(b, 4)) == 2.0);
    assert_true(json_real_value(json_array_get(b, 5)) == 1.0);
    assert_true(json_real_value(json_array_get(b, 6)) == 3.0);
    assert_int_equal(json_integer_value(json_array_get(b, 7)), 1);

    b = json_array_get(buckets, 1);
    assert_int_equal(json_integer_value(json_array_get(b, 0)), 1251);
    assert_int_equal(json_integer_value(json_array_get(b, 1)), 0);
    for (size_t c = 2; c <= 6; c++) {
        assert_true(json_is_null(json_array_get(b, c)));
    }
    assert_int_equal(json_integer_value(json_array_get(b, 7)), 2);

    b = json_array_get(buckets, 2);
    assert_int_equal(json_integer_value(json_array_get(b, 0)), 1753);
    assert_int_equal(json_integer_value(json_array_get(b, 1)), 2);
    assert_true(json_real_value(json_array_get(b, 2)) == 7.0);
    assert_true(json_real_value(json_array_get(b, 3)) == 8.0);
    assert_true(json_real_value(json_array_get(b, 4)) == 7.5);
    assert_true(json_real_value(json_array_get(b, 5)) == 7.0);
    assert_true(json_real_value(json_array_get(b, 6)) == 8.0);
    assert_int_equal(json_integer_value(json_array_get(b, 7)), 0);
    json_decref(r);

    /* Rounding up the width may need fewer buckets than asked. */
    r = agg_of(f, "x", 1000, 1010, 6);
    assert_int_equal(json_integer_value(json_object_get(r, "bucket_ms")), 2);
    assert_int_equal(json_array_size(json_object_get(r, "buckets")), 1);
    json_decref(r);

    /* An unknown tag: no buckets, no error. */
    r = agg_of(f, "nope", 0, 5000, 10);
    assert_int_equal(json_array_size(json_object_get(r, "buckets")), 0);
    assert_true(json_is_null(json_object_get(r, "before")));
    json_decref(r);
}

static void test_query_arguments(void **state)
{
    struct fx *x = *state;
    struct vg_repl_fsm *f = &x->a;
    json_t *out = (json_t *)&out;

#define REJECTED(call)                                                         \
    do {                                                                       \
        f->errmsg[0] = '\0';                                                   \
        assert_int_equal(call, VG_EINVAL);                                     \
        assert_null(out);                                                      \
        assert_true(strlen(f->errmsg) > 0);                                    \
        out = (json_t *)&out;                                                  \
    } while (0)

    REJECTED(vg_repl_fsm_history_raw(f, NULL, 0, 10, 10, &out));
    REJECTED(vg_repl_fsm_history_raw(f, "a", 10, 10, 10, &out));
    REJECTED(vg_repl_fsm_history_raw(f, "a", 11, 10, 10, &out));
    REJECTED(vg_repl_fsm_history_raw(f, "a", 0, T53 + 1, 10, &out));
    REJECTED(vg_repl_fsm_history_raw(f, "a", 0, 10, 0, &out));
    REJECTED(vg_repl_fsm_history_raw(f, "a", 0, 10, 100001, &out));
    REJECTED(vg_repl_fsm_history_aggregate(f, NULL, 0, 10, 10, &out));
    REJECTED(vg_repl_fsm_history_aggregate(f, "a", 10, 10, 10, &out));
    REJECTED(vg_repl_fsm_history_aggregate(f, "a", 10, 5, 10, &out));
    REJECTED(vg_repl_fsm_history_aggregate(f, "a", 0, 10, 0, &out));
    REJECTED(vg_repl_fsm_history_aggregate(f, "a", 0, 10, 10001, &out));
#undef REJECTED

    /* The limits themselves are fine. */
    assert_int_equal(vg_repl_fsm_history_raw(f, "a", 0, T53, 100000, &out), VG_OK);
    json_decref(out);
    assert_int_equal(vg_repl_fsm_history_aggregate(f, "a", 0, T53, 10000, &out),
                     VG_OK);
    json_decref(out);
}

/* ---- retention ---------------------------------------------------------- */

static void test_retention_cut(void **state)
{
    struct fx *x = *state;
    struct vg_repl_fsm *f = &x->a;
    const char *const abc[] = {"a", "b", "c"};
    const struct smp old[] = {{2, 450, 1.0, 0}, {2, 500, 2.0, 1}, {0, 499, 3, 0}};
    struct smp s[20];
    struct vg_repl_archive_info info;

    for (size_t i = 0; i < 20; i++) {
        s[i] = (struct smp){(uint32_t)(i % 2), 100 + 100 * (i / 2), (double)i, 0};
    }
    assert_int_equal(apply_batch(x, f, 100, AB, 2, s, 20), VG_OK);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM archive_samples"), 20);

    assert_int_equal(cut(x, f, 500), VG_OK);
    /* t = 100..400 of both tags are gone, 500..1000 stay. */
    assert_int_equal(sql_int(f, "SELECT count(*) FROM archive_samples WHERE t < 500"), 0);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM archive_samples"), 12);
    assert_int_equal(sql_int(f, "SELECT min(t) FROM archive_samples"), 500);
    assert_int_equal(sql_int(f, "SELECT watermark_ms FROM archive_summary"), 500);
    assert_summary_consistent(f);
    assert_int_equal(vg_repl_fsm_archive_info(f, &info), VG_OK);
    assert_int_equal(info.samples, 12);
    assert_int_equal(info.watermark_ms, 500);
    assert_int_equal(info.oldest_ms, 500);
    assert_int_equal(info.newest_ms, 1000);

    /* Samples older than the watermark are ignored; one at it is kept. */
    assert_int_equal(apply_batch(x, f, 450, abc, 3, old, 3), VG_OK);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM archive_samples"), 13);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM archive_samples WHERE t < 500"), 0);
    assert_summary_consistent(f);

    /* Cuts at or below the watermark change nothing. */
    assert_int_equal(cut(x, f, 500), VG_REPL_UNCHANGED);
    assert_int_equal(cut(x, f, 300), VG_REPL_UNCHANGED);
    assert_int_equal(cut(x, f, 0), VG_REPL_UNCHANGED);
    assert_int_equal(sql_int(f, "SELECT watermark_ms FROM archive_summary"), 500);

    /* Malformed cuts. */
    assert_int_equal(apply_cmd(x, f, VG_CMD_RETENTION_CUT, "{}"), VG_EINVAL);
    assert_int_equal(apply_cmd(x, f, VG_CMD_RETENTION_CUT, "{\"before_ms\":-1}"),
                     VG_EINVAL);
    assert_int_equal(apply_cmd(x, f, VG_CMD_RETENTION_CUT, "{\"before_ms\":900.5}"),
                     VG_EINVAL);
    assert_int_equal(apply_cmd(x, f, VG_CMD_RETENTION_CUT, "{\"before_ms\":\"900\"}"),
                     VG_EINVAL);
    assert_int_equal(apply_cmd(x, f, VG_CMD_RETENTION_CUT,
                               "{\"before_ms\":9007199254740992}"),
                     VG_EINVAL);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM archive_samples"), 13);

    /* A cut past everything empties the archive; tags may stay. */
    assert_int_equal(cut(x, f, 5000), VG_OK);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM archive_samples"), 0);
    assert_summary_consistent(f);
    assert_int_equal(vg_repl_fsm_archive_info(f, &info), VG_OK);
    assert_int_equal(info.samples, 0);
    assert_int_equal(info.tags, 0);
    assert_int_equal(info.oldest_ms, 0);
    assert_int_equal(info.watermark_ms, 5000);
}

/* A cut subtracts exactly the hashes of what it deletes: a replica that
 * stored and cut old samples equals one that never had them. */
static void test_cut_leaves_same_digest_as_never_stored(void **state)
{
    struct fx *x = *state;
    const struct smp old[] = {{0, 100, 1.0, 0}, {1, 150, 2.0, 1}, {0, 199, -3, 0}};
    const struct smp recent[] = {{0, 200, 4.0, 0}, {1, 250, 5.0, 0}};

    assert_int_equal(apply_batch(x, &x->a, 100, AB, 2, old, 3), VG_OK);
    assert_int_equal(apply_batch(x, &x->a, 200, AB, 2, recent, 2), VG_OK);
    assert_int_equal(cut(x, &x->a, 200), VG_OK);

    assert_int_equal(apply_batch(x, &x->b, 200, AB, 2, recent, 2), VG_OK);
    assert_int_equal(cut(x, &x->b, 200), VG_OK);
    assert_summary_consistent(&x->a);
    assert_summary_consistent(&x->b);
    assert_same_digest(&x->a, &x->b);
}

/* ---- digest ------------------------------------------------------------- */

static void test_digest_replicas(void **state)
{
    struct fx *x = *state;
    const struct smp s1[] = {{0, 10, 1.0, 0}, {1, 10, 2.0, 1}};
    const struct smp s2[] = {{0, 20, 3.0, 0}};
    const struct smp s2x[] = {{0, 20, 3.5, 0}};
    unsigned char empty[VG_DIGEST_SIZE], d[VG_DIGEST_SIZE];
    char *rejected = body_of("-1", "[\"a\"]", "\"AAAA\"");

    /* An archive never used contributes nothing: a rejected batch and a
     * fresh database digest alike. */
    digest_of(&x->a, empty);
    assert_int_equal(apply_cmd(x, &x->a, VG_CMD_HISTORY_BATCH, rejected), VG_EINVAL);
    digest_of(&x->a, d);
    assert_memory_equal(empty, d, VG_DIGEST_SIZE);
    assert_same_digest(&x->a, &x->b);
    free(rejected);

    assert_int_equal(apply_batch(x, NULL, 10, AB, 2, s1, 2), VG_OK);
    assert_same_digest(&x->a, &x->b);
    digest_of(&x->a, d);
    assert_memory_not_equal(empty, d, VG_DIGEST_SIZE);
    assert_int_equal(cut(x, NULL, 15), VG_OK);
    assert_same_digest(&x->a, &x->b);

    /* Replicas that stored different values differ. */
    assert_int_equal(apply_batch(x, &x->a, 20, AB, 2, s2, 1), VG_OK);
    assert_other_digest(&x->a, &x->b);
    assert_int_equal(apply_batch(x, &x->b, 20, AB, 2, s2x, 1), VG_OK);
    assert_other_digest(&x->a, &x->b);
    assert_summary_consistent(&x->a);
    assert_summary_consistent(&x->b);
}

/* SQLite stores -0.0 as 0; the row hash treats them alike, so replicas
 * agree whatever sign of zero the leader sent. */
static void test_digest_negative_zero(void **state)
{
    struct fx *x = *state;
    const struct smp neg[] = {{0, 10, -0.0, 0}};
    const struct smp pos[] = {{0, 10, 0.0, 0}};
    assert_int_equal(apply_batch(x, &x->a, 10, AB, 1, neg, 1), VG_OK);
    assert_int_equal(apply_batch(x, &x->b, 10, AB, 1, pos, 1), VG_OK);
    assert_same_digest(&x->a, &x->b);
    assert_summary_consistent(&x->a);
}

/* Ids come from apply order, and names of samples that are not stored are
 * not registered. */
static void test_tag_ids_deterministic(void **state)
{
    struct fx *x = *state;
    const char *const names[] = {"z", "y", "unused"};
    const struct smp s[] = {{1, 10, 1.0, 0}, {0, 10, 2.0, 0}};
    assert_int_equal(apply_batch(x, NULL, 10, names, 3, s, 2), VG_OK);
    assert_int_equal(sql_int(&x->a, "SELECT count(*) FROM archive_tags"), 2);
    assert_int_equal(sql_int(&x->a, "SELECT id FROM archive_tags WHERE name = 'z'"), 1);
    assert_int_equal(sql_int(&x->a, "SELECT id FROM archive_tags WHERE name = 'y'"), 2);
    assert_same_digest(&x->a, &x->b);
}

/* ---- snapshot ----------------------------------------------------------- */

static void test_snapshot_restore_keeps_archive(void **state)
{
    struct fx *x = *state;
    struct smp s[300];
    struct raft_buffer *bufs = NULL;
    struct vg_repl_archive_info ia, ib;
    json_t *ra, *rb;
    int rv;

    for (size_t i = 0; i < 300; i++) {
        s[i] = (struct smp){(uint32_t)(i % 2), 1000 + 10 * (i / 2),
                            (double)i * 0.5, i % 11 == 0};
    }
    assert_int_equal(apply_batch(x, &x->a, 1000, AB, 2, s, 300), VG_OK);
    assert_int_equal(cut(x, &x->a, 1200), VG_OK);

    bufs = raft_malloc(sizeof *bufs);
    assert_non_null(bufs);
    assert_int_equal(vg_repl_fsm_snapshot_copy(&x->a, &bufs[0]), VG_OK);
    rv = x->b.fsm.restore(&x->b.fsm, &bufs[0]);
    if (rv != 0) {
        raft_free(bufs[0].base);
    }
    raft_free(bufs);
    assert_int_equal(rv, 0);

    assert_same_digest(&x->a, &x->b);
    assert_summary_consistent(&x->b);
    assert_int_equal(sql_int(&x->b, "SELECT count(*) FROM archive_samples"),
                     sql_int(&x->a, "SELECT count(*) FROM archive_samples"));
    assert_int_equal(sql_int(&x->b, "SELECT hash_sum FROM archive_summary"),
                     sql_int(&x->a, "SELECT hash_sum FROM archive_summary"));
    assert_int_equal(vg_repl_fsm_archive_info(&x->a, &ia), VG_OK);
    assert_int_equal(vg_repl_fsm_archive_info(&x->b, &ib), VG_OK);
    assert_memory_equal(&ia, &ib, sizeof ia);
    ra = raw_of(&x->a, "b", 0, T53, 1000);
    rb = raw_of(&x->b, "b", 0, T53, 1000);
    assert_true(json_equal(ra, rb));
    json_decref(ra);
    json_decref(rb);

    /* Both go on alike. */
    assert_int_equal(apply_batch(x, NULL, 1000, AB, 2, s, 300), VG_OK);
    assert_same_digest(&x->a, &x->b);
}

/* ---- info --------------------------------------------------------------- */

static void test_archive_info(void **state)
{
    struct fx *x = *state;
    struct vg_repl_fsm *f = &x->a;
    const char *const abc[] = {"a", "b", "c"};
    const struct smp s[] = {{0, 300, 1, 0}, {1, 100, 2, 0}, {2, 900, 3, 1},
                            {1, 200, 4, 0}};
    struct vg_repl_archive_info info;

    memset(&info, 0xff, sizeof info);
    assert_int_equal(vg_repl_fsm_archive_info(f, &info), VG_OK);
    assert_int_equal(info.samples, 0);
    assert_int_equal(info.tags, 0);
    assert_int_equal(info.oldest_ms, 0);
    assert_int_equal(info.newest_ms, 0);
    assert_int_equal(info.watermark_ms, 0);

    assert_int_equal(apply_batch(x, f, 100, abc, 3, s, 4), VG_OK);
    assert_int_equal(vg_repl_fsm_archive_info(f, &info), VG_OK);
    assert_int_equal(info.samples, 4);
    assert_int_equal(info.tags, 3);
    assert_int_equal(info.oldest_ms, 100);
    assert_int_equal(info.newest_ms, 900);

    /* Tag b loses its samples to a cut: it is no longer counted. */
    assert_int_equal(cut(x, f, 250), VG_OK);
    assert_int_equal(vg_repl_fsm_archive_info(f, &info), VG_OK);
    assert_int_equal(info.samples, 2);
    assert_int_equal(info.tags, 2);
    assert_int_equal(info.oldest_ms, 300);
    assert_int_equal(info.newest_ms, 900);
    assert_int_equal(info.watermark_ms, 250);
}

/* ---- speed (printed, not asserted) -------------------------------------- */

static void test_apply_50k_batch_timing(void **state)
{
    struct fx *x = *state;
    struct vg_repl_fsm *f = &x->a;
    enum { TAGS = 1000, PER_TAG = 50, N = TAGS * PER_TAG };
    char **names = calloc(TAGS, sizeof *names);
    struct smp *s = calloc(N, sizeof *s);
    double took[2];

    assert_non_null(names);
    assert_non_null(s);
    for (size_t i = 0; i < TAGS; i++) {
        names[i] = malloc(32);
        assert_non_null(names[i]);
        snprintf(names[i], 32, "plant.section%02zu.tag%04zu", i % 17, i);
    }
    for (int round = 0; round < 2; round++) {
        uint64_t t0 = 1700000000000ull + (uint64_t)round * PER_TAG * 5;
        struct raft_buffer buf;
        char *body;
        double start;
        /* Time-major, as the leader samples: every tag at each step. */
        for (size_t k = 0; k < PER_TAG; k++) {
            for (size_t i = 0; i < TAGS; i++) {
                s[k * TAGS + i] = (struct smp){(uint32_t)i, t0 + 5 * k,
                                               (double)(i * 31 + k) * 0.25,
                                               (i + k) % 101 == 0};
            }
        }
        body = batch_body(t0, (const char *const *)names, TAGS, s, N);
        buf = make_cmd(x, VG_CMD_HISTORY_BATCH, body);
        start = now_s();
        assert_int_equal(apply_buf(f, &buf), VG_OK);
        took[round] = now_s() - start;
        raft_free(buf.base);
        free(body);
    }
    assert_int_equal(sql_int(f, "SELECT count(*) FROM archive_samples"), 2 * N);
    assert_summary_consistent(f);
    fprintf(stderr,
            "# archive: applying a %d-sample batch over %d tags took %.1f ms"
            " (new tags), %.1f ms (known tags)\n",
            N, TAGS, took[0] * 1e3, took[1] * 1e3);
    for (size_t i = 0; i < TAGS; i++) {
        free(names[i]);
    }
    free(names);
    free(s);
}

/* ---- archives and record retention -------------------------------------- */

static const char *const FSX[] = {"fast", "slow", "x"};

/* Tags fast (archive "fast"), slow (archive "slow") and x (the default
 * archive), 10 samples each at t = 100..1000, on both replicas. */
static void fill_classes(struct fx *x)
{
    struct smp s[30];
    for (size_t i = 0; i < 30; i++) {
        s[i] = (struct smp){(uint32_t)(i % 3), 100 + 100 * (uint32_t)(i / 3), (double)i, 0};
    }
    assert_int_equal(apply_both(x, VG_CMD_ARCHIVE_CLASSES,
                                "{\"classes\":{\"fast\":[\"fast\"],"
                                "\"slow\":[\"slow\"]}}"),
                     VG_OK);
    assert_int_equal(apply_batch(x, &x->a, 100, FSX, 3, s, 30), VG_OK);
    assert_int_equal(apply_batch(x, &x->b, 100, FSX, 3, s, 30), VG_OK);
}

static long long samples_of(struct vg_repl_fsm *f, const char *tag)
{
    char sql[160];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM archive_samples s JOIN archive_tags a"
             " ON a.id = s.tag WHERE a.name = '%s'", tag);
    return sql_int(f, sql);
}

static void test_archive_classes_apply(void **state)
{
    struct fx *x = *state;
    struct vg_repl_fsm *f = &x->a;
    json_t *got = NULL;
    static const char *const bad[] = {
        "{}",
        "{\"classes\":[]}",
        "{\"classes\":{\"\":[\"a\"]}}",                  /* empty name */
        "{\"classes\":{\"a\":\"b\"}}",                   /* not a list */
        "{\"classes\":{\"a\":[\"t\",\"t\"]}}",           /* twice */
        "{\"classes\":{\"a\":[\"t\"],\"b\":[\"t\"]}}",   /* in two */
        "{\"classes\":{\"a\":[\"\"]}}",
        "{\"classes\":{\"a\":[1]}}",
        "{\"classes\":{\"a\":[\"t\\u0000u\"]}}",
        "{\"classes\":{\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\":[\"t\"]}}",
    };

    assert_int_equal(apply_cmd(x, f, VG_CMD_ARCHIVE_CLASSES,
                               "{\"classes\":{\"a\":[\"t1\",\"t2\"],\"b\":[\"t3\"]}}"),
                     VG_OK);
    assert_int_equal(vg_repl_fsm_archive_classes(f, &got), VG_OK);
    assert_int_equal(json_object_size(got), 3);
    assert_string_equal(json_string_value(json_object_get(got, "t2")), "a");
    assert_string_equal(json_string_value(json_object_get(got, "t3")), "b");
    json_decref(got);
    /* The same assignment in another order changes nothing. */
    assert_int_equal(apply_cmd(x, f, VG_CMD_ARCHIVE_CLASSES,
                               "{\"classes\":{\"b\":[\"t3\"],\"a\":[\"t2\",\"t1\"]}}"),
                     VG_REPL_UNCHANGED);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (apply_cmd(x, f, VG_CMD_ARCHIVE_CLASSES, bad[i]) != VG_EINVAL) {
            fail_msg("accepted: %s", bad[i]);
        }
    }
    assert_int_equal(sql_int(f, "SELECT count(*) FROM archive_classes"), 3);
    /* A new assignment replaces the whole old one. */
    assert_int_equal(apply_cmd(x, f, VG_CMD_ARCHIVE_CLASSES,
                               "{\"classes\":{\"a\":[\"t3\"]}}"),
                     VG_OK);
    assert_int_equal(vg_repl_fsm_archive_classes(f, &got), VG_OK);
    assert_int_equal(json_object_size(got), 1);
    assert_string_equal(json_string_value(json_object_get(got, "t3")), "a");
    json_decref(got);
    assert_int_equal(apply_cmd(x, f, VG_CMD_ARCHIVE_CLASSES, "{\"classes\":{}}"),
                     VG_OK);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM archive_classes"), 0);
}

static void test_cut_per_archive(void **state)
{
    struct fx *x = *state;
    unsigned char da[VG_DIGEST_SIZE], db[VG_DIGEST_SIZE];
    json_t *marks = NULL;

    fill_classes(x);
    /* "fast" keeps t >= 800, the default archive t >= 300, "slow" all. */
    assert_int_equal(apply_both(x, VG_CMD_RETENTION_CUT,
                                "{\"archives\":{\"fast\":800,\"\":300}}"),
                     VG_OK);
    assert_int_equal(samples_of(&x->a, "fast"), 3);
    assert_int_equal(samples_of(&x->a, "x"), 8);
    assert_int_equal(samples_of(&x->a, "slow"), 10);
    assert_int_equal(sql_int(&x->a, "SELECT min(t) FROM archive_samples s JOIN"
                                    " archive_tags a ON a.id = s.tag"
                                    " WHERE a.name = 'fast'"),
                     800);
    assert_summary_consistent(&x->a);
    /* The watermark is for cuts of every archive only. */
    assert_int_equal(sql_int(&x->a, "SELECT watermark_ms FROM archive_summary"), 0);
    assert_int_equal(vg_repl_fsm_retention_marks(&x->a, &marks), VG_OK);
    assert_int_equal(json_integer_value(json_object_get(marks, "archive:fast")), 800);
    assert_int_equal(json_integer_value(json_object_get(marks, "archive:")), 300);
    assert_null(json_object_get(marks, "archive:slow"));
    json_decref(marks);

    /* The same cut again, or an older one, changes nothing. */
    assert_int_equal(apply_both(x, VG_CMD_RETENTION_CUT,
                                "{\"archives\":{\"fast\":800,\"\":200}}"),
                     VG_REPL_UNCHANGED);
    /* An archive nothing is in: only its mark moves. */
    assert_int_equal(apply_both(x, VG_CMD_RETENTION_CUT,
                                "{\"archives\":{\"none\":5000}}"),
                     VG_OK);
    assert_int_equal(sql_int(&x->a, "SELECT count(*) FROM archive_samples"), 21);

    /* A tag moved to the default archive is cut with it from then on. */
    assert_int_equal(apply_both(x, VG_CMD_ARCHIVE_CLASSES,
                                "{\"classes\":{\"fast\":[\"fast\"]}}"),
                     VG_OK);
    assert_int_equal(apply_both(x, VG_CMD_RETENTION_CUT,
                                "{\"archives\":{\"\":600}}"),
                     VG_OK);
    assert_int_equal(samples_of(&x->a, "slow"), 5);
    assert_int_equal(samples_of(&x->a, "x"), 5);
    assert_int_equal(samples_of(&x->a, "fast"), 3);
    assert_summary_consistent(&x->a);
    assert_summary_consistent(&x->b);
    digest_of(&x->a, da);
    digest_of(&x->b, db);
    assert_memory_equal(da, db, VG_DIGEST_SIZE);

    /* Malformed: nothing is cut. */
    assert_int_equal(apply_cmd(x, &x->a, VG_CMD_RETENTION_CUT,
                               "{\"archives\":{\"fast\":-1}}"),
                     VG_EINVAL);
    assert_int_equal(apply_cmd(x, &x->a, VG_CMD_RETENTION_CUT,
                               "{\"archives\":[1]}"),
                     VG_EINVAL);
    assert_int_equal(apply_cmd(x, &x->a, VG_CMD_RETENTION_CUT,
                               "{\"archives\":{\"\":900},\"audit_before_ms\":\"x\"}"),
                     VG_EINVAL);
    assert_int_equal(apply_cmd(x, &x->a, VG_CMD_RETENTION_CUT,
                               "{\"journal_before_ms\":9007199254740992}"),
                     VG_EINVAL);
    assert_int_equal(sql_int(&x->a, "SELECT count(*) FROM archive_samples"), 13);
}

/* A cut of every archive (the form older nodes know) still cuts tags of
 * named archives too. */
static void test_legacy_cut_covers_archives(void **state)
{
    struct fx *x = *state;
    fill_classes(x);
    assert_int_equal(cut(x, NULL, 500), VG_OK);
    assert_int_equal(samples_of(&x->a, "fast"), 6);
    assert_int_equal(samples_of(&x->a, "slow"), 6);
    assert_int_equal(samples_of(&x->a, "x"), 6);
    assert_summary_consistent(&x->a);
}

static void test_cut_journal_and_audit(void **state)
{
    struct fx *x = *state;
    struct vg_repl_fsm *f = &x->a;
    char body[160];
    json_t *marks = NULL;
    uint64_t t0 = x->time_ms;

    for (int i = 0; i < 10; i++) {
        snprintf(body, sizeof body,
                 "{\"kind\":\"membership\",\"object\":\"node %d\",\"old_value\":null,"
                 "\"new_value\":null,\"user\":\"u\",\"station\":null,\"detail\":null}",
                 i);
        assert_int_equal(apply_cmd(x, f, VG_CMD_AUDIT, body), VG_OK);
    }
    assert_int_equal(sql_int(f, "SELECT count(*) FROM audit"), 10);
    /* Records are stamped with the command's time: t0, t0 + 1, … */
    snprintf(body, sizeof body, "{\"audit_before_ms\":%llu,\"journal_before_ms\":5}",
             (unsigned long long)(t0 + 4));
    assert_int_equal(apply_cmd(x, f, VG_CMD_RETENTION_CUT, body), VG_OK);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM audit"), 6);
    assert_int_equal(vg_repl_fsm_retention_marks(f, &marks), VG_OK);
    assert_int_equal(json_integer_value(json_object_get(marks, "audit")),
                     (json_int_t)(t0 + 4));
    assert_int_equal(json_integer_value(json_object_get(marks, "journal")), 5);
    json_decref(marks);
    assert_int_equal(apply_cmd(x, f, VG_CMD_RETENTION_CUT, body), VG_REPL_UNCHANGED);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM audit"), 6);
}

/* ---- the binary form (HISTORY_SAMPLES) ------------------------------------ */

/* The HISTORY_SAMPLES body of the same batch as batch_body, into *LEN. */
static unsigned char *samples_body(uint64_t t0, const char *const *names,
                                   size_t n_names, const struct smp *s, size_t n,
                                   size_t *len)
{
    size_t names_len = 0;
    unsigned char *b, *o;
    for (size_t i = 0; i < n_names; i++) {
        names_len += 2 + strlen(names[i]);
    }
    *len = 12 + names_len + n * VG_HISTORY_SAMPLE_SIZE;
    b = malloc(*len);
    assert_non_null(b);
    for (int i = 0; i < 8; i++) {
        b[i] = (unsigned char)(t0 >> (8 * i));
    }
    for (int i = 0; i < 4; i++) {
        b[8 + i] = (unsigned char)(n_names >> (8 * i));
    }
    o = b + 12;
    for (size_t i = 0; i < n_names; i++) {
        size_t nl = strlen(names[i]);
        o[0] = (unsigned char)nl;
        o[1] = (unsigned char)(nl >> 8);
        memcpy(o + 2, names[i], nl);
        o += 2 + nl;
    }
    for (size_t i = 0; i < n; i++, o += VG_HISTORY_SAMPLE_SIZE) {
        pack(o, s[i].tag, (uint32_t)(s[i].t - t0), s[i].v, s[i].bad);
    }
    return b;
}

/* Apply the binary body B (LEN bytes) to F; returns the outcome. */
static int apply_samples(struct fx *x, struct vg_repl_fsm *f,
                         const unsigned char *b, size_t len)
{
    struct vg_cmd cmd = {.type = VG_CMD_HISTORY_SAMPLES, .term = 2,
                         .time_ms = x->time_ms++, .proposer = 1,
                         .body = (const char *)b, .body_len = (uint32_t)len};
    struct raft_buffer buf;
    int outcome;
    assert_int_equal(vg_cmd_encode(&cmd, &buf), VG_OK);
    outcome = apply_buf(f, &buf);
    raft_free(buf.base);
    return outcome;
}

/* The same batches applied as JSON to one replica and in binary to the
 * other store the same samples: equal digests, equal rows. */
static void test_binary_batch_same_as_json(void **state)
{
    struct fx *x = *state;
    static const char *const names[] = {"a", "b\xc3\xa4r", "c.d"};
    const struct smp s[] = {
        {0, 1000, 1.5, 0}, {1, 1000, -2.25, 0}, {2, 1001, 0.0, 1},
        {0, 1002, 3.0, 0}, {0, 1002, 99.0, 0}, /* same (tag, t): first wins */
        {1, 1500, -0.0, 0}, {2, 5000, 1e300, 0},
    };
    size_t len;
    unsigned char *b = samples_body(1000, names, 3, s, 7, &len);
    char *body = batch_body(1000, names, 3, s, 7);

    /* The library's encoder writes the documented layout, as this test's. */
    {
        unsigned char packed[7 * VG_HISTORY_SAMPLE_SIZE], *lib = NULL;
        size_t lib_len = 0;
        for (size_t i = 0; i < 7; i++) {
            vg_repl_history_sample_pack(packed + i * VG_HISTORY_SAMPLE_SIZE, s[i].tag,
                                        (uint32_t)(s[i].t - 1000), s[i].v, s[i].bad);
        }
        assert_int_equal(vg_repl_history_samples_body(1000, names, 3, packed, 7, &lib,
                                                      &lib_len),
                         VG_OK);
        assert_int_equal(lib_len, len);
        assert_memory_equal(lib, b, len);
        free(lib);
        assert_int_equal(vg_repl_history_samples_body(1000, names, 0, packed, 7, &lib,
                                                      &lib_len),
                         VG_EINVAL);
        assert_int_equal(vg_repl_history_samples_body(1000, names, 3, packed, 0, &lib,
                                                      &lib_len),
                         VG_EINVAL);
        {
            const char *empty[] = {"a", ""};
            assert_int_equal(vg_repl_history_samples_body(1000, empty, 2, packed, 1,
                                                          &lib, &lib_len),
                             VG_EINVAL);
        }
        assert_null(lib);
    }
    assert_int_equal(apply_cmd(x, &x->a, VG_CMD_HISTORY_BATCH, body), VG_OK);
    assert_int_equal(apply_samples(x, &x->b, b, len), VG_OK);
    assert_int_equal(sql_int(&x->b, "SELECT count(*) FROM archive_samples"), 6);
    assert_same_digest(&x->a, &x->b);
    assert_summary_consistent(&x->b);
    {
        json_t *raw = raw_of(&x->b, "a", 0, 10000, 100);
        assert_int_equal(json_array_size(json_object_get(raw, "samples")), 2);
        assert_sample(json_array_get(json_object_get(raw, "samples"), 1), 1002, 3.0, 0);
        json_decref(raw);
    }
    free(body);
    free(b);
}

/* Every malformed binary batch is refused whole, and nothing is stored. */
static void test_binary_batch_malformed(void **state)
{
    struct fx *x = *state;
    static const char *const names[] = {"a", "b"};
    const struct smp s[] = {{0, 100, 1.0, 0}, {1, 101, 2.0, 0}};
    size_t len;
    unsigned char *good = samples_body(100, names, 2, s, 2, &len);
    unsigned char bad[128];
    assert_true(len + 1 <= sizeof bad);

    /* Every proper prefix: truncated names, a partial sample, or none; not
     * the one that ends after the first sample, which is a valid batch. */
    for (size_t cut_at = 0; cut_at < len; cut_at++) {
        if (cut_at == len - VG_HISTORY_SAMPLE_SIZE) {
            continue;
        }
        memcpy(bad, good, cut_at);
        assert_int_equal(apply_samples(x, &x->a, bad, cut_at), VG_EINVAL);
    }
    /* A trailing partial sample. */
    memcpy(bad, good, len);
    bad[len] = 0;
    assert_int_equal(apply_samples(x, &x->a, bad, len + 1), VG_EINVAL);
    /* t0 at 2^53. */
    memcpy(bad, good, len);
    bad[6] = 0x20;
    assert_int_equal(apply_samples(x, &x->a, bad, len), VG_EINVAL);
    /* No tags; more tags than the body holds. */
    memcpy(bad, good, len);
    bad[8] = 0;
    assert_int_equal(apply_samples(x, &x->a, bad, len), VG_EINVAL);
    bad[8] = 3;
    assert_int_equal(apply_samples(x, &x->a, bad, len), VG_EINVAL);
    /* An empty name; a name with NUL; invalid UTF-8; the same name twice. */
    memcpy(bad, good, len);
    bad[12] = 0;
    assert_int_equal(apply_samples(x, &x->a, bad, len), VG_EINVAL);
    memcpy(bad, good, len);
    bad[14] = '\0';
    assert_int_equal(apply_samples(x, &x->a, bad, len), VG_EINVAL);
    bad[14] = (char)0xC3;
    assert_int_equal(apply_samples(x, &x->a, bad, len), VG_EINVAL);
    bad[14] = 'b';
    assert_int_equal(apply_samples(x, &x->a, bad, len), VG_EINVAL);
    /* A sample of a tag index past the names; a non-finite value; bad 2. */
    memcpy(bad, good, len);
    bad[12 + 6] = 2;
    assert_int_equal(apply_samples(x, &x->a, bad, len), VG_EINVAL);
    memcpy(bad, good, len);
    memset(bad + 12 + 6 + 8, 0xFF, 8);
    assert_int_equal(apply_samples(x, &x->a, bad, len), VG_EINVAL);
    memcpy(bad, good, len);
    bad[12 + 6 + 16] = 2;
    assert_int_equal(apply_samples(x, &x->a, bad, len), VG_EINVAL);

    assert_int_equal(sql_int(&x->a, "SELECT count(*) FROM archive_samples"), 0);
    assert_int_equal(apply_samples(x, &x->a, good, len), VG_OK);
    assert_int_equal(sql_int(&x->a, "SELECT count(*) FROM archive_samples"), 2);
    free(good);
}


#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_batch_read_back_raw),
        T(test_binary_batch_same_as_json),
        T(test_binary_batch_malformed),
        T(test_raw_paging),
        T(test_duplicate_first_wins_counted_once),
        T(test_duplicates_in_large_batches),
        T(test_malformed_batches_rejected),
        T(test_batch_size_limit),
        T(test_aggregate_known_series),
        T(test_aggregate_bad_only_empty_and_partial_buckets),
        T(test_query_arguments),
        T(test_retention_cut),
        T(test_cut_leaves_same_digest_as_never_stored),
        T(test_archive_classes_apply),
        T(test_cut_per_archive),
        T(test_legacy_cut_covers_archives),
        T(test_cut_journal_and_audit),
        T(test_digest_replicas),
        T(test_digest_negative_zero),
        T(test_tag_ids_deterministic),
        T(test_snapshot_restore_keeps_archive),
        T(test_archive_info),
        T(test_apply_50k_batch_timing),
    };
    return cmocka_run_group_tests_name("archive", tests, NULL, NULL);
}
