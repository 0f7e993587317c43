/* Unit tests for the archive's recent rows (replication/archive_recent.c):
 * history commands stage their samples in archive_recent and settle them
 * into archive_samples in rounds, yet every query, cut and digest must see
 * one archive, exactly as when each batch was stored at once.
 *
 * Driven through f->fsm.apply like test_archive.c (f->raft is NULL, so the
 * index is applied_index + 1). Replicas: A and A2 settle with small limits
 * (rounds of a few batches, a step per command; A reads a window of each
 * row for a step, A2 the rows whole), B with (1, 1, UINT32_MAX)
 * (every batch settled by the command that brings it, as before).
 *
 * Covered: a model-based randomized run (fixed seeds) of binary and JSON
 * batches with late samples, duplicates (in a batch, of recent and of
 * settled samples), bad-quality samples, samples under the watermark,
 * malformed batches, legacy and per-archive cuts and a change of archive
 * classes, every result of A and B checked against the model (raw, paged
 * raw, aggregate, the sample before, archive_info, archive_each, the
 * summary) and A's digest against A2's; cuts while a round is in progress,
 * on settled and unsettled tags; a reopen and a snapshot restore in the
 * middle of a round. From cluster level 2 (replication.h): apply only
 * stages, replicas settle on their own schedules in slices, and their
 * digests agree however they split; the CLUSTER_LEVEL command; a
 * read-only connection for queries off the loop. The self-check (scrub.c):
 * damage found and named, a pinned state, and recounts interrupted at
 * every point SQLite checks, which fail or are right. */
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

#include "fsm_internal.h" /* fsm_summary_recount, fsm_archive_recount */
#include "replication.h"
#include "sample_chunk.h"

#define T53 (UINT64_C(1) << 53)
#define NTAGS 25
#define NSLOTS 4
/* Tags a retention cut step walks at level 4 (vg_repl_fsm_archive_cut_step):
 * NTAGS take 7 steps. */
#define CUT_STEP 4

/* ---- fixture ------------------------------------------------------------ */

struct limits {
    uint32_t records, rows, step;
};

static const struct limits SMALL = {40, 3, 8};
static const struct limits AT_ONCE = {1, 1, UINT32_MAX};

struct fx {
    char dir[64];
    struct vg_repl_fsm *f[NSLOTS];
    char path[NSLOTS][128];
    struct limits lim[NSLOTS];
    unsigned n_db;
    uint64_t time_ms;
    int level;          /* the cluster level apply_level last set */
    unsigned cut_steps; /* RETENTION_CUT continue commands that did a step */
};

/* Where a check failed: seed and command of the randomized runs. */
static char ctx[160];

#define EXPECT(cond)                                                           \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fail_msg("%s: %s (line %d)", ctx, #cond, __LINE__);                \
        }                                                                      \
    } while (0)

#define EXPECT_EQ(a, b)                                                        \
    do {                                                                       \
        unsigned long long a_ = (unsigned long long)(a);                       \
        unsigned long long b_ = (unsigned long long)(b);                       \
        if (a_ != b_) {                                                        \
            fail_msg("%s: %s == %llu, expected %s == %llu (line %d)", ctx, #a, \
                     a_, #b, b_, __LINE__);                                    \
        }                                                                      \
    } while (0)

/* A2 (slot 1) reads whole rows at every settle step, the others as
 * little as they can (a margin of 1 record): the digests A and A2 are
 * compared on cover how each split its archive, so a step that read too
 * little to find the right end shows as a difference. */
static void set_limits(struct fx *x, int i)
{
    vg_repl_fsm_archive_settle_limits(x->f[i], x->lim[i].records, x->lim[i].rows,
                                      x->lim[i].step);
    vg_repl_fsm_archive_settle_window(x->f[i], i == 1 ? UINT32_MAX : 1);
    vg_repl_fsm_archive_cut_step(x->f[i], CUT_STEP);
}

/* Open slot I on a new database with limits L. */
static void open_slot(struct fx *x, int i, struct limits l)
{
    char path[128];
    if (x->f[i] == NULL) {
        x->f[i] = calloc(1, sizeof *x->f[i]);
        assert_non_null(x->f[i]);
    }
    snprintf(path, sizeof path, "%s/db%u.db", x->dir, x->n_db++);
    memcpy(x->path[i], path, sizeof path);
    if (vg_repl_fsm_open(x->f[i], x->path[i]) != VG_OK) {
        fail_msg("open %s: %s", x->path[i], x->f[i]->errmsg);
    }
    x->lim[i] = l;
    set_limits(x, i);
}

static void close_slot(struct fx *x, int i)
{
    if (x->f[i] != NULL && x->f[i]->db != NULL) {
        vg_repl_fsm_close(x->f[i]);
    }
}

static int setup(void **state)
{
    struct fx *x = calloc(1, sizeof *x);
    assert_non_null(x);
    snprintf(x->dir, sizeof x->dir, "/tmp/vg-test-archive-recent-XXXXXX");
    assert_non_null(mkdtemp(x->dir));
    open_slot(x, 0, SMALL);   /* A */
    open_slot(x, 1, SMALL);   /* A2 */
    open_slot(x, 2, AT_ONCE); /* B */
    x->time_ms = 1700000000000ull;
    x->level = 1;
    ctx[0] = '\0';
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    struct fx *x = *state;
    for (int i = 0; i < NSLOTS; i++) {
        close_slot(x, i);
        free(x->f[i]);
    }
    vg_remove_tree(x->dir);
    free(x);
    return 0;
}

/* ---- commands ----------------------------------------------------------- */

static int apply_buf(struct vg_repl_fsm *f, const struct raft_buffer *buf)
{
    void *result = (void *)(intptr_t)-1;
    if (f->fsm.apply(&f->fsm, buf, &result) != 0) {
        fail_msg("%s: apply failed: %s", ctx, f->errmsg);
    }
    return (int)(intptr_t)result;
}

/* Apply one command (BODY, LEN bytes) to the N fsms FS, which must agree
 * on the outcome; returns it. */
static int apply_to(struct fx *x, struct vg_repl_fsm *const *fs, size_t n,
                    unsigned type, const void *body, size_t len)
{
    struct vg_cmd cmd = {.type = (uint16_t)type, .term = 2, .time_ms = x->time_ms++,
                         .proposer = 1, .body = body, .body_len = (uint32_t)len};
    struct raft_buffer buf;
    int outcome = 0;
    assert_int_equal(vg_cmd_encode(&cmd, &buf), VG_OK);
    for (size_t i = 0; i < n; i++) {
        int o = apply_buf(fs[i], &buf);
        if (i == 0) {
            outcome = o;
        }
        EXPECT_EQ(o, outcome);
    }
    raft_free(buf.base);
    return outcome;
}

/* ---- model -------------------------------------------------------------- */

struct msmp {
    uint64_t t;
    double v;
    bool bad;
};

struct mtag {
    struct msmp *v; /* sorted by t */
    size_t n, cap;
    uint64_t clock; /* the newest time generated for it */
    int cls;        /* 0: the default archive, 1: "fast", 2: "slow" */
};

static const char *const CLS[] = {"", "fast", "slow"};

struct model {
    struct mtag tag[NTAGS];
    uint64_t watermark;
    uint64_t mark[3];
};

static char NAME[NTAGS][8];

static void names_init(void)
{
    for (int i = 0; i < NTAGS; i++) {
        snprintf(NAME[i], sizeof NAME[i], "t%02d", i);
    }
}

static void model_free(struct model *m)
{
    for (int i = 0; i < NTAGS; i++) {
        free(m->tag[i].v);
    }
    memset(m, 0, sizeof *m);
}

/* The first sample of TAG with a time >= T. */
static size_t m_lower(const struct mtag *g, uint64_t t)
{
    size_t lo = 0, hi = g->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (g->v[mid].t < t) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* A committed sample: stored unless under the watermark or its (tag, t)
 * is held already (the first wins). */
static void m_add(struct model *m, int tag, uint64_t t, double v, bool bad)
{
    struct mtag *g = &m->tag[tag];
    size_t k = m_lower(g, t);
    if (t < m->watermark || (k < g->n && g->v[k].t == t)) {
        return;
    }
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 64;
        g->v = realloc(g->v, g->cap * sizeof *g->v);
        assert_non_null(g->v);
    }
    memmove(g->v + k + 1, g->v + k, (g->n - k) * sizeof *g->v);
    g->v[k] = (struct msmp){t, v, bad};
    g->n++;
}

static void m_cut_tag(struct model *m, int tag, uint64_t before)
{
    struct mtag *g = &m->tag[tag];
    size_t k = m_lower(g, before);
    if (k > 0) { /* an empty tag has no array at all */
        memmove(g->v, g->v + k, (g->n - k) * sizeof *g->v);
        g->n -= k;
    }
}

/* A cut of every archive; true when it changes anything. */
static bool m_cut_all(struct model *m, uint64_t before)
{
    if (before <= m->watermark) {
        return false;
    }
    for (int i = 0; i < NTAGS; i++) {
        m_cut_tag(m, i, before);
    }
    m->watermark = before;
    return true;
}

/* A cut of archive CLS; true when it changes anything (the mark moves). */
static bool m_cut_cls(struct model *m, int cls, uint64_t before)
{
    if (before <= m->mark[cls]) {
        return false;
    }
    for (int i = 0; i < NTAGS; i++) {
        if (m->tag[i].cls == cls) {
            m_cut_tag(m, i, before);
        }
    }
    m->mark[cls] = before;
    return true;
}

/* ---- bodies ------------------------------------------------------------- */

/* A sample of a batch: K indexes the batch's names. */
struct gs {
    int tag;
    unsigned k;
    uint64_t t;
    double v;
    bool bad;
};

static uint64_t batch_t0(const struct gs *s, size_t n)
{
    uint64_t t0 = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        t0 = s[i].t < t0 ? s[i].t : t0;
    }
    return t0;
}

static unsigned char *packed_of(const struct gs *s, size_t n, uint64_t t0)
{
    unsigned char *p = malloc(n * VG_HISTORY_SAMPLE_SIZE);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) {
        assert_true(s[i].t - t0 <= UINT32_MAX);
        vg_repl_history_sample_pack(p + i * VG_HISTORY_SAMPLE_SIZE, s[i].k,
                                    (uint32_t)(s[i].t - t0), s[i].v, s[i].bad);
    }
    return p;
}

static const char **name_list(const int *tags, size_t n_tags)
{
    const char **names = malloc(n_tags * sizeof *names);
    assert_non_null(names);
    for (size_t i = 0; i < n_tags; i++) {
        names[i] = NAME[tags[i]];
    }
    return names;
}

/* The HISTORY_SAMPLES body of the batch S over the names of TAGS. */
static unsigned char *binary_body(const int *tags, size_t n_tags, const struct gs *s,
                                  size_t n, size_t *len)
{
    uint64_t t0 = batch_t0(s, n);
    unsigned char *packed = packed_of(s, n, t0), *body = NULL;
    const char **names = name_list(tags, n_tags);
    assert_int_equal(vg_repl_history_samples_body(t0, names, n_tags, packed, n,
                                                  &body, len),
                     VG_OK);
    free(packed);
    free(names);
    return body;
}

/* The HISTORY_BATCH (JSON) body of the same batch. */
static char *json_body(const int *tags, size_t n_tags, const struct gs *s, size_t n)
{
    uint64_t t0 = batch_t0(s, n);
    unsigned char *packed = packed_of(s, n, t0);
    size_t raw = n * VG_HISTORY_SAMPLE_SIZE;
    size_t size = sodium_base64_ENCODED_LEN(raw, sodium_base64_VARIANT_ORIGINAL);
    char *b64 = malloc(size), *text;
    json_t *names = json_array(), *o;
    assert_non_null(b64);
    sodium_bin2base64(b64, size, packed, raw, sodium_base64_VARIANT_ORIGINAL);
    for (size_t i = 0; i < n_tags; i++) {
        json_array_append_new(names, json_string(NAME[tags[i]]));
    }
    o = json_pack("{s:I, s:o, s:s}", "t0", (json_int_t)t0, "tags", names, "s", b64);
    assert_non_null(o);
    text = json_dumps(o, JSON_COMPACT);
    assert_non_null(text);
    json_decref(o);
    free(b64);
    free(packed);
    return text;
}

/* Apply the batch to FS as HISTORY_SAMPLES (or HISTORY_BATCH when AS_JSON)
 * and to the model; every fsm must accept it. */
static void apply_batch(struct fx *x, struct vg_repl_fsm *const *fs, size_t n_fs,
                        struct model *m, const int *tags, size_t n_tags,
                        const struct gs *s, size_t n, bool as_json)
{
    if (as_json) {
        char *body = json_body(tags, n_tags, s, n);
        EXPECT_EQ(apply_to(x, fs, n_fs, VG_CMD_HISTORY_BATCH, body, strlen(body)),
                  VG_OK);
        free(body);
    } else {
        size_t len;
        unsigned char *body = binary_body(tags, n_tags, s, n, &len);
        EXPECT_EQ(apply_to(x, fs, n_fs, VG_CMD_HISTORY_SAMPLES, body, len), VG_OK);
        free(body);
    }
    for (size_t i = 0; i < n; i++) {
        m_add(m, s[i].tag, s[i].t, s[i].v, s[i].bad);
    }
}

/* Apply a RETENTION_CUT of every archive at ALL (0: none) and of archive
 * CLS at BEFORE (CLS < 0: none), checking the outcome against the model. */
static void expect_same_digest(struct vg_repl_fsm *f1, struct vg_repl_fsm *f2);

/* Apply RETENTION_CUT {continue: true} until no cut is left in steps (level
 * 4), the replicas' digests compared
 * after every step; how many steps. The model cut at once: between the
 * steps some tags are cut and others not yet. */
static unsigned drain_steps(struct fx *x, struct vg_repl_fsm *const *fs, size_t n_fs)
{
    static const char body[] = "{\"continue\":true}";
    unsigned steps = 0;
    int o;

    if (x->level < 4) {
        return 0; /* malformed there, and a rejected command forgets the floor */
    }
    for (size_t i = 1; i < n_fs; i++) {
        expect_same_digest(fs[0], fs[i]); /* after the cut's first step */
    }
    while ((o = apply_to(x, fs, n_fs, VG_CMD_RETENTION_CUT, body, strlen(body))) ==
           VG_OK) {
        steps++;
        EXPECT(steps <= 2 * (NTAGS / CUT_STEP + 1));
        for (size_t i = 1; i < n_fs; i++) {
            expect_same_digest(fs[0], fs[i]);
        }
    }
    EXPECT_EQ(o, VG_REPL_UNCHANGED);
    for (size_t i = 0; i < n_fs; i++) {
        bool pending = true;
        EXPECT_EQ(vg_repl_fsm_retention_pending(fs[i], &pending), VG_OK);
        EXPECT(!pending);
    }
    x->cut_steps += steps;
    return steps;
}

static void apply_cut(struct fx *x, struct vg_repl_fsm *const *fs, size_t n_fs,
                      struct model *m, uint64_t all, int cls, uint64_t before)
{
    char body[160];
    bool changed = false;
    int n = snprintf(body, sizeof body, "{");
    if (all > 0) {
        n += snprintf(body + n, sizeof body - (size_t)n, "\"before_ms\":%llu%s",
                      (unsigned long long)all, cls >= 0 ? "," : "");
        changed = m_cut_all(m, all);
    }
    if (cls >= 0) {
        snprintf(body + n, sizeof body - (size_t)n, "\"archives\":{\"%s\":%llu}",
                 CLS[cls], (unsigned long long)before);
        changed = m_cut_cls(m, cls, before) || changed;
    }
    strcat(body, "}");
    EXPECT_EQ(apply_to(x, fs, n_fs, VG_CMD_RETENTION_CUT, body, strlen(body)),
              changed ? VG_OK : VG_REPL_UNCHANGED);
    drain_steps(x, fs, n_fs);
}

/* Apply the model's assignment of tags to archives. */
static void apply_classes(struct fx *x, struct vg_repl_fsm *const *fs, size_t n_fs,
                          const struct model *m, int expected)
{
    json_t *classes = json_object(), *o;
    char *text;
    for (int c = 1; c < 3; c++) {
        json_t *list = json_array();
        for (int i = 0; i < NTAGS; i++) {
            if (m->tag[i].cls == c) {
                json_array_append_new(list, json_string(NAME[i]));
            }
        }
        json_object_set_new(classes, CLS[c], list);
    }
    o = json_pack("{s:o}", "classes", classes);
    text = json_dumps(o, JSON_COMPACT);
    assert_non_null(text);
    EXPECT_EQ(apply_to(x, fs, n_fs, VG_CMD_ARCHIVE_CLASSES, text, strlen(text)),
              expected);
    free(text);
    json_decref(o);
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

/* The state of the running round: false when none runs. */
static bool settle_state(struct vg_repl_fsm *f, long long *upto, long long *next)
{
    sqlite3_stmt *st;
    bool running;
    assert_int_equal(sqlite3_prepare_v2(f->db, "SELECT upto, next FROM archive_settle",
                                        -1, &st, NULL),
                     SQLITE_OK);
    running = sqlite3_step(st) == SQLITE_ROW;
    *upto = running ? sqlite3_column_int64(st, 0) : 0;
    *next = running ? sqlite3_column_int64(st, 1) : 0;
    sqlite3_finalize(st);
    return running;
}

static void digest_of(struct vg_repl_fsm *f, unsigned char out[VG_DIGEST_SIZE])
{
    assert_int_equal(vg_repl_fsm_digest(f, out), VG_OK);
}

static void expect_same_digest(struct vg_repl_fsm *f1, struct vg_repl_fsm *f2)
{
    unsigned char d1[VG_DIGEST_SIZE], d2[VG_DIGEST_SIZE];
    digest_of(f1, d1);
    digest_of(f2, d2);
    EXPECT(memcmp(d1, d2, VG_DIGEST_SIZE) == 0);
}

/* The row hash as replication.h documents it (see test_archive.c). */
static uint64_t expected_row_hash(const char *name, uint64_t t, double v, int bad)
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

/* SAMPLE (a [t, value, bad] array) is S. */
static void expect_sample(json_t *sample, const struct msmp *s)
{
    EXPECT(json_is_array(sample) && json_array_size(sample) == 3);
    EXPECT(json_is_real(json_array_get(sample, 1)));
    EXPECT_EQ(json_integer_value(json_array_get(sample, 0)), s->t);
    EXPECT(json_real_value(json_array_get(sample, 1)) == s->v);
    EXPECT_EQ(json_integer_value(json_array_get(sample, 2)), s->bad);
}

static json_t *raw_of(struct vg_repl_fsm *f, int tag, uint64_t from, uint64_t to,
                      size_t limit)
{
    json_t *out = NULL;
    if (vg_repl_fsm_history_raw(f, NAME[tag], from, to, limit, &out) != VG_OK) {
        fail_msg("%s: history_raw: %s", ctx, f->errmsg);
    }
    return out;
}

/* The whole of TAG in one answer equals the model. */
static void check_raw(struct vg_repl_fsm *f, const struct model *m, int tag)
{
    const struct mtag *g = &m->tag[tag];
    json_t *r = raw_of(f, tag, 0, T53, 100000);
    json_t *samples = json_object_get(r, "samples");
    EXPECT_EQ(json_array_size(samples), g->n);
    for (size_t i = 0; i < g->n; i++) {
        expect_sample(json_array_get(samples, i), &g->v[i]);
    }
    EXPECT(json_is_false(json_object_get(r, "more")));
    EXPECT(json_is_null(json_object_get(r, "next_from_ms")));
    EXPECT(json_is_null(json_object_get(r, "before")));
    json_decref(r);
}

/* Pages of 7 walked by next_from_ms make up the model's list; each page's
 * before is the last sample of the one before. */
static void check_paged(struct vg_repl_fsm *f, const struct model *m, int tag)
{
    const struct mtag *g = &m->tag[tag];
    uint64_t from = 0;
    size_t got = 0, pages = 0;
    for (;;) {
        json_t *r = raw_of(f, tag, from, T53, 7);
        json_t *samples = json_object_get(r, "samples");
        size_t n = json_array_size(samples);
        bool more = json_is_true(json_object_get(r, "more"));
        EXPECT(got + n <= g->n);
        EXPECT_EQ(n, more ? 7 : g->n - got);
        for (size_t i = 0; i < n; i++) {
            expect_sample(json_array_get(samples, i), &g->v[got + i]);
        }
        if (got == 0) {
            EXPECT(json_is_null(json_object_get(r, "before")));
        } else {
            expect_sample(json_object_get(r, "before"), &g->v[got - 1]);
        }
        got += n;
        pages++;
        if (!more) {
            EXPECT(json_is_null(json_object_get(r, "next_from_ms")));
            json_decref(r);
            break;
        }
        EXPECT(got < g->n);
        EXPECT_EQ(json_integer_value(json_object_get(r, "next_from_ms")), g->v[got].t);
        from = g->v[got].t;
        json_decref(r);
    }
    EXPECT_EQ(got, g->n);
    EXPECT_EQ(pages, g->n == 0 ? 1 : (g->n + 6) / 7);
}

/* One page of 1 from FROM: the first sample at or after it, and the one
 * before it. */
static void check_before(struct vg_repl_fsm *f, const struct model *m, int tag,
                         uint64_t from)
{
    const struct mtag *g = &m->tag[tag];
    size_t k = m_lower(g, from);
    json_t *r = raw_of(f, tag, from, T53, 1);
    json_t *samples = json_object_get(r, "samples");
    EXPECT_EQ(json_array_size(samples), k < g->n ? 1 : 0);
    if (k < g->n) {
        expect_sample(json_array_get(samples, 0), &g->v[k]);
    }
    EXPECT(json_is_true(json_object_get(r, "more")) == (k + 1 < g->n));
    if (k == 0) {
        EXPECT(json_is_null(json_object_get(r, "before")));
    } else {
        expect_sample(json_object_get(r, "before"), &g->v[k - 1]);
    }
    json_decref(r);
}

struct mbucket {
    uint64_t start, n, bad;
    double min, max, mean, first, last;
};

/* Aggregate of [FROM, TO) in NB buckets against the model. */
static void check_aggregate(struct vg_repl_fsm *f, const struct model *m, int tag,
                            uint64_t from, uint64_t to, unsigned nb)
{
    const struct mtag *g = &m->tag[tag];
    uint64_t width = (to - from + nb - 1) / nb;
    struct mbucket e[16];
    size_t ne = 0;
    json_t *r = NULL, *list;

    assert_true(nb <= 16);
    for (size_t i = m_lower(g, from); i < g->n && g->v[i].t < to; i++) {
        uint64_t start = from + (g->v[i].t - from) / width * width;
        struct mbucket *b;
        if (ne == 0 || e[ne - 1].start != start) {
            e[ne++] = (struct mbucket){.start = start};
        }
        b = &e[ne - 1];
        if (g->v[i].bad) {
            b->bad++;
            continue;
        }
        if (b->n == 0) {
            b->min = b->max = b->first = g->v[i].v;
        }
        b->min = fmin(b->min, g->v[i].v);
        b->max = fmax(b->max, g->v[i].v);
        b->last = g->v[i].v;
        b->n++;
        b->mean += g->v[i].v / (double)b->n - b->mean / (double)b->n;
    }
    if (vg_repl_fsm_history_aggregate(f, NAME[tag], from, to, nb, &r) != VG_OK) {
        fail_msg("%s: history_aggregate: %s", ctx, f->errmsg);
    }
    EXPECT_EQ(json_integer_value(json_object_get(r, "bucket_ms")), width);
    list = json_object_get(r, "buckets");
    EXPECT_EQ(json_array_size(list), ne);
    for (size_t k = 0; k < ne; k++) {
        json_t *b = json_array_get(list, k);
        EXPECT_EQ(json_integer_value(json_array_get(b, 0)), e[k].start);
        EXPECT_EQ(json_integer_value(json_array_get(b, 1)), e[k].n);
        EXPECT_EQ(json_integer_value(json_array_get(b, 7)), e[k].bad);
        if (e[k].n == 0) {
            for (size_t c = 2; c <= 6; c++) {
                EXPECT(json_is_null(json_array_get(b, c)));
            }
            continue;
        }
        EXPECT(json_real_value(json_array_get(b, 2)) == e[k].min);
        EXPECT(json_real_value(json_array_get(b, 3)) == e[k].max);
        EXPECT(fabs(json_real_value(json_array_get(b, 4)) - e[k].mean) <=
               1e-9 * (1.0 + fabs(e[k].mean)));
        EXPECT(json_real_value(json_array_get(b, 5)) == e[k].first);
        EXPECT(json_real_value(json_array_get(b, 6)) == e[k].last);
    }
    {
        size_t k = m_lower(g, from);
        if (k == 0) {
            EXPECT(json_is_null(json_object_get(r, "before")));
        } else {
            expect_sample(json_object_get(r, "before"), &g->v[k - 1]);
        }
    }
    json_decref(r);
}

/* archive_each visits every sample of the model once, with its value. */
struct each {
    const struct model *m;
    bool *seen[NTAGS];
    uint64_t n, sum;
};

static int each_cb(void *arg, const char *tag, size_t len, uint64_t t, double v,
                   bool bad)
{
    struct each *e = arg;
    char name[16];
    int i;
    size_t k;
    EXPECT(len == 3 && tag[0] == 't');
    memcpy(name, tag, len);
    name[len] = '\0';
    i = atoi(name + 1);
    EXPECT(i >= 0 && i < NTAGS);
    k = m_lower(&e->m->tag[i], t);
    EXPECT(k < e->m->tag[i].n && e->m->tag[i].v[k].t == t);
    EXPECT(!e->seen[i][k]);
    EXPECT(e->m->tag[i].v[k].v == v && e->m->tag[i].v[k].bad == bad);
    e->seen[i][k] = true;
    e->n++;
    e->sum += expected_row_hash(name, t, v, bad);
    return VG_OK;
}

/* archive_info, archive_each and the summary row against the model. */
static void check_totals(struct vg_repl_fsm *f, const struct model *m)
{
    struct vg_repl_archive_info info;
    struct each e = {.m = m};
    uint64_t n = 0, sum = 0, tags = 0, oldest = UINT64_MAX, newest = 0;

    for (int i = 0; i < NTAGS; i++) {
        const struct mtag *g = &m->tag[i];
        for (size_t k = 0; k < g->n; k++) {
            sum += expected_row_hash(NAME[i], g->v[k].t, g->v[k].v, g->v[k].bad);
        }
        n += g->n;
        if (g->n > 0) {
            tags++;
            oldest = g->v[0].t < oldest ? g->v[0].t : oldest;
            newest = g->v[g->n - 1].t > newest ? g->v[g->n - 1].t : newest;
        }
        e.seen[i] = calloc(g->n + 1, sizeof *e.seen[i]);
        assert_non_null(e.seen[i]);
    }
    assert_int_equal(vg_repl_fsm_archive_info(f, &info), VG_OK);
    EXPECT_EQ(info.samples, n);
    EXPECT_EQ(info.tags, tags);
    EXPECT_EQ(info.oldest_ms, n > 0 ? oldest : 0);
    EXPECT_EQ(info.newest_ms, newest);
    EXPECT_EQ(info.watermark_ms, m->watermark);

    EXPECT_EQ(vg_repl_fsm_archive_each(f, each_cb, &e), VG_OK);
    EXPECT_EQ(e.n, n);
    EXPECT_EQ(e.sum, sum);
    for (int i = 0; i < NTAGS; i++) {
        free(e.seen[i]);
    }

    /* The self-check recounts the same from the rows. */
    if (f->db != NULL && strcmp(f->path, ":memory:") != 0) {
        uint64_t runs = f->scrub.runs;
        if (vg_repl_fsm_scrub(f) != VG_OK) {
            fail_msg("%s: scrub: %s", ctx, f->scrub.msg);
        }
        EXPECT_EQ(f->scrub.runs, runs + 1);
    }
    if (sql_int(f, "SELECT count(*) FROM archive_summary") == 0) {
        EXPECT_EQ(n, 0);
    } else {
        EXPECT_EQ(sql_int(f, "SELECT samples FROM archive_summary"), n);
        EXPECT_EQ(sql_int(f, "SELECT hash_sum FROM archive_summary"), sum);
        EXPECT_EQ(sql_int(f, "SELECT watermark_ms FROM archive_summary"),
                  m->watermark);
    }
}

/* ---- randomness --------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rnd(uint64_t n)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return n == 0 ? 0 : (rng_state * 0x2545F4914F6CDD1Dull >> 11) % n;
}

/* Every query of every tag against the model. */
static void check_all(struct vg_repl_fsm *f, const struct model *m)
{
    for (int i = 0; i < NTAGS; i++) {
        const struct mtag *g = &m->tag[i];
        uint64_t lo = g->n ? g->v[0].t : 1000000, hi = g->n ? g->v[g->n - 1].t : lo;
        uint64_t from = lo - rnd(100), to = hi + 1 + rnd(100);
        check_raw(f, m, i);
        check_paged(f, m, i);
        check_aggregate(f, m, i, from, to, 1 + (unsigned)rnd(6));
        /* An inner range too, buckets starting between samples. */
        from = lo + rnd(hi - lo + 1);
        check_aggregate(f, m, i, from, from + 1 + rnd(hi - lo + 50),
                        1 + (unsigned)rnd(6));
        check_before(f, m, i, lo - 20 + rnd(hi - lo + 40));
        check_before(f, m, i, 0);
    }
    check_totals(f, m);
}

/* ---- the randomized run ------------------------------------------------- */

/* One random batch over the model's tags: new times mostly, late ones,
 * duplicates in the batch and of stored samples, samples under the
 * watermark, a bad quality now and then. */
static size_t gen_batch(const struct model *m, uint64_t *clock, int *tags,
                        size_t *n_tags, struct gs *s)
{
    int all[NTAGS];
    size_t n = 1 + rnd(60);

    for (int i = 0; i < NTAGS; i++) {
        all[i] = i;
    }
    for (int i = NTAGS - 1; i > 0; i--) {
        int j = (int)rnd((uint64_t)i + 1), t = all[i];
        all[i] = all[j];
        all[j] = t;
    }
    *n_tags = 1 + rnd(NTAGS);
    memcpy(tags, all, *n_tags * sizeof *tags);
    for (size_t i = 0; i < n; i++) {
        unsigned k = (unsigned)rnd(*n_tags), kind = (unsigned)rnd(100);
        int tag = tags[k];
        const struct mtag *g = &m->tag[tag];
        uint64_t t;
        if (kind < 58) {
            t = clock[tag] += 1 + rnd(40);
        } else if (kind < 73) {
            t = clock[tag] - rnd(1500);
        } else if (kind < 83 && i > 0) {
            size_t j = rnd(i);
            k = s[j].k;
            tag = s[j].tag;
            t = s[j].t;
        } else if (kind < 93 && g->n > 0) {
            t = g->v[rnd(g->n)].t;
        } else {
            t = clock[tag] - 2000 - rnd(4000);
        }
        s[i] = (struct gs){.tag = tag, .k = k, .t = t,
                           .v = rnd(200) == 0 ? -0.0 : (double)((int64_t)rnd(4001) - 2000) / 8,
                           .bad = rnd(10) == 0};
    }
    return n;
}

enum { OPT_REOPEN = 1, OPT_SNAPSHOT = 2, OPT_LEVEL2 = 4, OPT_LEVEL3 = 8, OPT_LEVEL4 = 16 };

/* CLUSTER_LEVEL {level: LEVEL} to the N fsms FS; the outcome. */
static int apply_level(struct fx *x, struct vg_repl_fsm *const *fs, size_t n,
                       int level)
{
    char body[32];
    int len = snprintf(body, sizeof body, "{\"level\":%d}", level);
    int o = apply_to(x, fs, n, VG_CMD_CLUSTER_LEVEL, body, (size_t)len);
    if (o == VG_OK) {
        x->level = level;
    }
    return o;
}

static uint64_t settle_some(struct vg_repl_fsm *f, uint64_t budget_us)
{
    uint64_t moved = UINT64_MAX;
    if (vg_repl_fsm_archive_settle_some(f, budget_us, &moved) != VG_OK) {
        fail_msg("%s: settle: %s", ctx, f->errmsg);
    }
    EXPECT(moved != UINT64_MAX);
    return moved;
}

/* At level 2 each replica settles on its own schedule: A one step after
 * every command, A2 none to three steps or now and then everything, B
 * (whose step is unbounded) everything after every command. */
static void settle_level2(struct fx *x)
{
    unsigned k = (unsigned)rnd(4);
    settle_some(x->f[0], 0);
    if (rnd(10) == 0) {
        settle_some(x->f[1], UINT64_C(1) << 40);
    }
    while (k-- > 0) {
        settle_some(x->f[1], 0);
    }
    settle_some(x->f[2], 0);
}

/* What A went through, so that the run cannot pass vacuously. */
struct seen {
    bool round_with_settled; /* recent rows, a round and settled samples */
    bool mixed_tag; /* a tag with settled and recent samples at a check */
    unsigned rounds_done, cuts_mid_round, reopens, restores;
    bool rows_and_chunks; /* B: a tag with rows and chunks at a check */
};

static void observe(struct vg_repl_fsm *a, struct seen *o, bool *was_running)
{
    long long upto, next;
    bool running = settle_state(a, &upto, &next);
    long long recent = sql_int(a, "SELECT count(*) FROM archive_recent");
    long long settled = sql_int(a, "SELECT count(*) FROM archive_samples");
    o->round_with_settled = o->round_with_settled || (recent > 0 && running && settled > 0);
    o->rounds_done += *was_running && !running;
    *was_running = running;
}

static void observe_mixed(struct vg_repl_fsm *a, const struct model *m, struct seen *o)
{
    for (int i = 0; i < NTAGS && !o->mixed_tag; i++) {
        char sql[320];
        long long settled;
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM archive_samples s JOIN archive_tags a"
                 " ON a.id = s.tag WHERE a.name = '%s'", NAME[i]);
        settled = sql_int(a, sql);
        o->mixed_tag = settled > 0 && (size_t)settled < m->tag[i].n;
    }
}

/* Close A in the middle of a round and open it again. */
static void reopen_a(struct fx *x)
{
    unsigned char before[VG_DIGEST_SIZE], after[VG_DIGEST_SIZE];
    long long u1 = 0, n1 = 0, u2 = 0, n2 = 0;
    bool r1 = settle_state(x->f[0], &u1, &n1);
    uint64_t applied = x->f[0]->applied_index;

    digest_of(x->f[0], before);
    vg_repl_fsm_close(x->f[0]);
    if (vg_repl_fsm_open(x->f[0], x->path[0]) != VG_OK) {
        fail_msg("reopen: %s", x->f[0]->errmsg);
    }
    set_limits(x, 0);
    EXPECT_EQ(x->f[0]->applied_index, applied);
    EXPECT(r1 && settle_state(x->f[0], &u2, &n2));
    EXPECT_EQ(u1, u2);
    EXPECT_EQ(n1, n2);
    digest_of(x->f[0], after);
    EXPECT(memcmp(before, after, VG_DIGEST_SIZE) == 0);
}

/* Snapshot A in the middle of a round into a new fsm, which replaces A. */
static void restore_a(struct fx *x)
{
    struct raft_buffer *bufs = NULL;
    long long u1 = 0, n1 = 0, u2 = 0, n2 = 0;
    struct vg_repl_fsm *t;
    char path[128];
    int rv;

    EXPECT(settle_state(x->f[0], &u1, &n1));
    bufs = raft_malloc(sizeof *bufs);
    assert_non_null(bufs);
    assert_int_equal(vg_repl_fsm_snapshot_copy(x->f[0], &bufs[0]), VG_OK);
    close_slot(x, 3);
    open_slot(x, 3, SMALL);
    rv = x->f[3]->fsm.restore(&x->f[3]->fsm, &bufs[0]);
    if (rv != 0) {
        raft_free(bufs[0].base);
    }
    raft_free(bufs);
    assert_int_equal(rv, 0);
    EXPECT_EQ(x->f[3]->applied_index, x->f[0]->applied_index);
    EXPECT(settle_state(x->f[3], &u2, &n2));
    EXPECT_EQ(u1, u2);
    EXPECT_EQ(n1, n2);
    expect_same_digest(x->f[0], x->f[3]);
    /* The restored one goes on as A; the old A is closed. */
    close_slot(x, 0);
    t = x->f[0];
    x->f[0] = x->f[3];
    x->f[3] = t;
    memcpy(path, x->path[0], sizeof path);
    memcpy(x->path[0], x->path[3], sizeof path);
    memcpy(x->path[3], path, sizeof path);
}

static void run_random(struct fx *x, uint64_t seed, unsigned n_cmds, unsigned opts)
{
    struct model m = {0};
    struct seen o = {0};
    uint64_t clock[NTAGS];
    struct gs *s = calloc(64, sizeof *s);
    bool was_running = false, want_reopen = false, want_restore = false;
    bool level2 = false;
    int level = 1;
    int tags[NTAGS];
    size_t n_tags;

    assert_non_null(s);
    names_init();
    rng_state = seed;
    for (int i = 0; i < NTAGS; i++) {
        clock[i] = 1000000 + rnd(500);
        m.tag[i].cls = i < 8 ? 1 : i < 12 ? 2 : 0;
    }
    snprintf(ctx, sizeof ctx, "seed %llu classes", (unsigned long long)seed);
    apply_classes(x, x->f, 3, &m, VG_OK);

    for (unsigned c = 0; c < n_cmds; c++) {
        struct vg_repl_fsm *a = x->f[0], *b = x->f[2];
        unsigned kind = (unsigned)rnd(100);
        long long upto, next;
        uint64_t now = 0;

        snprintf(ctx, sizeof ctx, "seed %llu command %u", (unsigned long long)seed, c);
        for (int i = 0; i < NTAGS; i++) {
            now = clock[i] > now ? clock[i] : now;
        }
        if (c % 25 == 24 || (c % 25 == 12 && kind < 60)) {
            /* A legacy cut, sometimes not above the watermark; or one of an
             * archive, sometimes with a legacy one. */
            uint64_t before = rnd(5) == 0 ? m.watermark - rnd(m.watermark / 2 + 1)
                                          : now - 800 - rnd(1500);
            before = before > 1000 ? before : 1000;
            o.cuts_mid_round += settle_state(a, &upto, &next);
            if (c % 25 == 24) {
                apply_cut(x, x->f, 3, &m, before, -1, 0);
            } else {
                apply_cut(x, x->f, 3, &m, rnd(2) ? before - 500 : 0, (int)rnd(3),
                          before + rnd(600));
            }
        } else if ((opts & (OPT_LEVEL2 | OPT_LEVEL3)) && c == n_cmds / 3) {
            /* Most likely in the middle of a round: it goes on in slices
             * (at level 3 into chunks). */
            level = opts & OPT_LEVEL2 ? 2 : 3;
            EXPECT_EQ(apply_level(x, x->f, 3, level), VG_OK);
            level2 = true;
        } else if ((opts & OPT_LEVEL2) && (opts & OPT_LEVEL3) && c == n_cmds * 2 / 3) {
            /* From 2 to 3: rows settled at level 2 stay, more go to chunks. */
            level = 3;
            EXPECT_EQ(apply_level(x, x->f, 3, level), VG_OK);
        } else if ((opts & OPT_LEVEL4) && c == n_cmds * 2 / 3 + 1) {
            /* Cuts in steps from here on. */
            level = 4;
            EXPECT_EQ(apply_level(x, x->f, 3, level), VG_OK);
        } else if (c == n_cmds / 2) {
            /* Tags move between archives. */
            for (int i = 0; i < 6; i++) {
                m.tag[i].cls = (m.tag[i].cls + 1) % 3;
            }
            apply_classes(x, x->f, 3, &m, VG_OK);
        } else if (kind < 3) {
            /* A malformed batch: a sample of a tag index past the names.
             * Rejected whole, nothing changes. */
            size_t n = gen_batch(&m, clock, tags, &n_tags, s), len;
            unsigned char *body;
            s[n - 1].k = (unsigned)n_tags;
            body = binary_body(tags, n_tags, s, n, &len);
            EXPECT_EQ(apply_to(x, x->f, 3, VG_CMD_HISTORY_SAMPLES, body, len),
                      VG_EINVAL);
            free(body);
        } else {
            size_t n = gen_batch(&m, clock, tags, &n_tags, s);
            long long settled = sql_int(a, "SELECT count(*) FROM archive_samples");
            long long chunked = sql_int(a, "SELECT count(*) FROM archive_chunks");
            apply_batch(x, x->f, 3, &m, tags, n_tags, s, n, kind < 13);
            /* From level 2 on a command only stages. */
            EXPECT(!level2 ||
                   sql_int(a, "SELECT count(*) FROM archive_samples") == settled);
            EXPECT(!level2 ||
                   sql_int(a, "SELECT count(*) FROM archive_chunks") == chunked);
        }
        if (level2) {
            settle_level2(x);
        }

        observe(a, &o, &was_running);
        EXPECT_EQ(sql_int(b, "SELECT count(*) FROM archive_recent"), 0);
        EXPECT_EQ(sql_int(b, "SELECT count(*) FROM archive_settle"), 0);
        for (int k = 0; k < 3; k++) {
            int tag = (int)rnd(NTAGS);
            check_raw(a, &m, tag);
            check_raw(b, &m, tag);
        }
        if (c % 10 == 9 || c + 1 == n_cmds) {
            uint64_t saved = rng_state;
            check_all(a, &m);
            rng_state = saved;
            check_all(b, &m);
            expect_same_digest(a, x->f[1]);
            if (level2) {
                /* A2 lags A by a varying number of steps and B never
                 * keeps a recent row: the splits differ, the archives
                 * and their digests do not. */
                rng_state = saved;
                check_all(x->f[1], &m);
                expect_same_digest(a, b);
            }
            observe_mixed(a, &m, &o);
            o.rows_and_chunks = o.rows_and_chunks ||
                                sql_int(b, "SELECT count(*) FROM archive_tags t"
                                           " WHERE EXISTS (SELECT 1 FROM archive_samples"
                                           " WHERE tag = t.id) AND EXISTS (SELECT 1"
                                           " FROM archive_chunks WHERE tag = t.id)") > 0;
        }
        if ((opts & OPT_REOPEN) && c % 40 == 20) {
            want_reopen = true;
        }
        if ((opts & OPT_SNAPSHOT) && c % 50 == 30) {
            want_restore = true;
        }
        if (want_reopen && settle_state(a, &upto, &next)) {
            reopen_a(x);
            want_reopen = false;
            o.reopens++;
            check_all(x->f[0], &m);
        }
        if (want_restore && settle_state(a, &upto, &next)) {
            restore_a(x);
            want_restore = false;
            o.restores++;
            check_all(x->f[0], &m);
        }
    }
    snprintf(ctx, sizeof ctx, "seed %llu end", (unsigned long long)seed);
    expect_same_digest(x->f[0], x->f[1]);
    EXPECT(o.round_with_settled);
    EXPECT(o.mixed_tag);
    EXPECT(o.rounds_done >= 10);
    EXPECT(o.cuts_mid_round >= 2);
    if (opts & OPT_REOPEN) {
        EXPECT(o.reopens >= 3);
    }
    if (opts & OPT_SNAPSHOT) {
        EXPECT(o.restores >= 3);
    }
    if (opts & OPT_LEVEL4) {
        EXPECT(x->cut_steps >= 10);
        fprintf(stderr, "# seed %llu: %u retention cut steps\n",
                (unsigned long long)seed, x->cut_steps);
    }
    if (opts & OPT_LEVEL3) {
        /* Chunks were written, and late samples merged into them. B
         * settles every command at once, so it held rows from before the
         * level rose and chunks of the same tag at a check. */
        EXPECT(sql_int(x->f[2], "SELECT count(*) FROM archive_chunks") > 0);
        EXPECT(sql_int(x->f[0], "SELECT count(*) FROM archive_chunks") > 0);
        EXPECT(x->f[2]->archive_settle.chunk_merges > 0);
        EXPECT(o.rows_and_chunks);
        fprintf(stderr, "# seed %llu: B holds %lld chunks, merged late samples"
                        " into them %llu times\n",
                (unsigned long long)seed,
                sql_int(x->f[2], "SELECT count(*) FROM archive_chunks"),
                (unsigned long long)x->f[2]->archive_settle.chunk_merges);
    }
    fprintf(stderr, "# seed %llu: %u rounds, %u cuts mid-round, %u reopens,"
                    " %u restores, %zu samples held\n",
            (unsigned long long)seed, o.rounds_done, o.cuts_mid_round, o.reopens,
            o.restores, (size_t)sql_int(x->f[2], "SELECT count(*) FROM archive_samples"));
    free(s);
    model_free(&m);
}

static void test_random_against_model(void **state)
{
    static const uint64_t seeds[] = {0x9e3779b97f4a7c15ull, 12345, 0xdeadbeefcafeull};
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        struct fx *x = *state;
        if (i > 0) {
            /* Fresh replicas for every seed. */
            teardown(state);
            setup(state);
            x = *state;
        }
        run_random(x, seeds[i], 300, 0);
    }
}

static void test_reopen_mid_round(void **state)
{
    run_random(*state, 777, 300, OPT_REOPEN);
}

static void test_snapshot_mid_round(void **state)
{
    run_random(*state, 4242, 300, OPT_SNAPSHOT);
}

/* Level 2 from a third of the way on, with reopens and snapshots. */
static void test_level2_slices(void **state)
{
    run_random(*state, 9090, 300, OPT_LEVEL2 | OPT_REOPEN | OPT_SNAPSHOT);
}

/* Level 3 (chunks) from a third of the way on, straight from level 1, with
 * reopens and snapshots; then level 2 at a third and 3 at two thirds, so
 * that rows settled at level 2 and chunks hold a tag's samples together. */
static void test_level3_chunks(void **state)
{
    run_random(*state, 3131, 300, OPT_LEVEL3 | OPT_REOPEN | OPT_SNAPSHOT);
}

static void test_level2_then_3(void **state)
{
    run_random(*state, 2323, 300, OPT_LEVEL2 | OPT_LEVEL3 | OPT_SNAPSHOT);
}

/* Level 3 from a third on, 4 (cuts in steps of CUT_STEP tags) from two
 * thirds on, with reopens and snapshots: after every cut's last step each
 * replica holds what the model does, and the digests agree at every step. */
static void test_level4_cut_steps(void **state)
{
    run_random(*state, 4444, 300, OPT_LEVEL3 | OPT_LEVEL4 | OPT_REOPEN | OPT_SNAPSHOT);
}

/* CLUSTER_LEVEL: malformed bodies are rejected, a level not above the
 * stored one changes nothing, one above what this vigild applies stops the
 * replica (apply fails, fatal) rather than let it apply the wrong way. */
static void test_level_command(void **state)
{
    struct fx *x = *state;
    static const char *const bad[] = {
        "{}", "{\"level\":\"2\"}", "{\"level\":0}", "{\"level\":-1}",
        "{\"level\":2147483648}", "{\"level\":2.0}", "{\"level\":2,\"x\":1}",
        "[2]",
    };
    unsigned char d1[VG_DIGEST_SIZE], d2[VG_DIGEST_SIZE];
    char above[32], named[32];
    struct vg_cmd cmd = {.type = VG_CMD_CLUSTER_LEVEL, .term = 2, .proposer = 1,
                         .body = above};
    struct raft_buffer buf;
    void *result = NULL;
    uint32_t level = 0;

    snprintf(ctx, sizeof ctx, "level command");
    assert_int_equal(vg_repl_fsm_cluster_level(x->f[0], &level), VG_OK);
    assert_int_equal(level, 1);
    digest_of(x->f[0], d1);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        EXPECT_EQ(apply_to(x, x->f, 1, VG_CMD_CLUSTER_LEVEL, bad[i], strlen(bad[i])),
                  VG_EINVAL);
    }
    EXPECT_EQ(apply_level(x, x->f, 1, 1), VG_REPL_UNCHANGED);
    digest_of(x->f[0], d2);
    EXPECT(memcmp(d1, d2, VG_DIGEST_SIZE) == 0); /* a level-1 node's digest */
    EXPECT_EQ(apply_level(x, x->f, 1, 2), VG_OK);
    assert_int_equal(vg_repl_fsm_cluster_level(x->f[0], &level), VG_OK);
    assert_int_equal(level, 2);
    digest_of(x->f[0], d2);
    EXPECT(memcmp(d1, d2, VG_DIGEST_SIZE) != 0); /* the level is replicated */
    EXPECT_EQ(apply_level(x, x->f, 1, 2), VG_REPL_UNCHANGED);
    EXPECT_EQ(apply_level(x, x->f, 1, 1), VG_REPL_UNCHANGED);

    /* A level above what this vigild applies. */
    cmd.body_len = (size_t)snprintf(above, sizeof above, "{\"level\":%u}",
                                    VG_REPL_APPLY_LEVEL + 1);
    snprintf(named, sizeof named, "level %u", VG_REPL_APPLY_LEVEL + 1);
    assert_int_equal(vg_cmd_encode(&cmd, &buf), VG_OK);
    assert_int_not_equal(x->f[0]->fsm.apply(&x->f[0]->fsm, &buf, &result), 0);
    raft_free(buf.base);
    EXPECT(x->f[0]->fatal);
    EXPECT(strstr(x->f[0]->errmsg, named) != NULL);
    assert_int_equal(vg_repl_fsm_cluster_level(x->f[0], &level), VG_OK);
    assert_int_equal(level, 2);
    EXPECT(vg_repl_fsm_archive_settle_some(x->f[0], 0, NULL) == VG_EDB);
}

/* ---- cuts while a round runs -------------------------------------------- */

/* A (limits 1000 records, 2 rows, step 1) with a round in progress: tag
 * t00 settled, t01..t04 recent. Cuts of an archive and of every archive
 * drop exactly the samples they should from both, and the round goes on.
 * A2 has A's limits, B settles at once. */
static void test_cut_during_round(void **state)
{
    struct fx *x = *state;
    const struct limits round = {1000, 2, 1};
    struct vg_repl_fsm *fs[3];
    struct model m = {0};
    struct gs s[32];
    int tags[5] = {0, 1, 2, 3, 4};
    long long upto, next;
    size_t n = 0;

    names_init();
    snprintf(ctx, sizeof ctx, "cut during round");
    vg_repl_fsm_archive_settle_limits(x->f[0], round.records, round.rows, round.step);
    vg_repl_fsm_archive_settle_limits(x->f[1], round.records, round.rows, round.step);
    fs[0] = x->f[0];
    fs[1] = x->f[1];
    fs[2] = x->f[2];
    m.tag[0].cls = m.tag[2].cls = 1; /* t00, t02 in "fast" */
    apply_classes(x, fs, 3, &m, VG_OK);

    /* Batch 1: t00..t03 at 100..500. Ids 1..4. One row, no round yet. */
    for (unsigned k = 0; k < 4; k++) {
        for (uint64_t t = 100; t <= 500; t += 100) {
            s[n++] = (struct gs){.tag = (int)k, .k = k, .t = t,
                                 .v = (double)(k * 10) + (double)t / 100,
                                 .bad = k == 2 && t == 300};
        }
    }
    apply_batch(x, fs, 3, &m, tags, 4, s, n, false);
    EXPECT_EQ(sql_int(x->f[0], "SELECT count(*) FROM archive_recent"), 1);
    EXPECT_EQ(sql_int(x->f[0], "SELECT count(*) FROM archive_samples"), 0);
    EXPECT(!settle_state(x->f[0], &upto, &next));

    /* Batch 2: t04 at 600. Two rows: a round of both begins and its first
     * step (at least 2 samples, whole tags) moves t00's 5. */
    s[0] = (struct gs){.tag = 4, .k = 0, .t = 600, .v = 6.5};
    apply_batch(x, fs, 3, &m, tags + 4, 1, s, 1, false);
    EXPECT(settle_state(x->f[0], &upto, &next));
    EXPECT_EQ(upto, 2);
    EXPECT_EQ(next, 2);
    EXPECT_EQ(sql_int(x->f[0], "SELECT count(*) FROM archive_samples"), 5);
    EXPECT_EQ(sql_int(x->f[0], "SELECT count(*) FROM archive_recent"), 2);
    for (int i = 0; i < 5; i++) {
        check_raw(x->f[0], &m, i);
    }

    /* Archive "fast" (t00 settled, t02 recent) loses t < 300. */
    apply_cut(x, fs, 3, &m, 0, 1, 300);
    EXPECT_EQ(m.tag[0].n + m.tag[1].n + m.tag[2].n + m.tag[3].n + m.tag[4].n, 17);
    EXPECT(settle_state(x->f[0], &upto, &next));
    EXPECT_EQ(next, 2);
    EXPECT_EQ(sql_int(x->f[0], "SELECT count(*) FROM archive_samples"), 3);
    for (int i = 0; i < 5; i++) {
        check_raw(x->f[0], &m, i);
        check_raw(x->f[2], &m, i);
        check_paged(x->f[0], &m, i);
        check_before(x->f[0], &m, i, 301);
        check_aggregate(x->f[0], &m, i, 0, 1000, 4);
    }
    check_totals(x->f[0], &m);
    check_totals(x->f[2], &m);
    expect_same_digest(x->f[0], x->f[1]);

    /* Every archive loses t < 250: t01 and t03 (recent) lose 100 and 200;
     * the recent rows keep nothing older. */
    apply_cut(x, fs, 3, &m, 250, -1, 0);
    EXPECT_EQ(m.tag[1].n, 3);
    EXPECT(settle_state(x->f[0], &upto, &next));
    EXPECT_EQ(next, 2);
    EXPECT(sql_int(x->f[0], "SELECT min(t_min) FROM archive_recent") >= 250);
    for (int i = 0; i < 5; i++) {
        check_raw(x->f[0], &m, i);
        check_raw(x->f[2], &m, i);
    }
    check_totals(x->f[0], &m);
    check_totals(x->f[2], &m);

    /* Both in one command: every archive t < 350, the default one (t01,
     * t03, t04) t < 450. Then the same again changes nothing. */
    apply_cut(x, fs, 3, &m, 350, 0, 450);
    EXPECT_EQ(m.tag[0].n + m.tag[1].n + m.tag[2].n + m.tag[3].n + m.tag[4].n, 7);
    apply_cut(x, fs, 3, &m, 350, 0, 450);
    EXPECT(settle_state(x->f[0], &upto, &next));
    EXPECT_EQ(next, 2);
    /* Row 1 still holds t00's settled 400 and 500, and t02's recent 400. */
    EXPECT_EQ(sql_int(x->f[0], "SELECT min(t_min) FROM archive_recent"), 400);
    for (int i = 0; i < 5; i++) {
        check_raw(x->f[0], &m, i);
        check_raw(x->f[2], &m, i);
        check_paged(x->f[0], &m, i);
        check_aggregate(x->f[0], &m, i, 300, 700, 3);
    }
    check_totals(x->f[0], &m);
    check_totals(x->f[2], &m);
    expect_same_digest(x->f[0], x->f[1]);

    /* Batch 3: duplicates of a settled (t00 400) and a recent (t02 400)
     * sample, one under the watermark, one in the batch; stored: t01 450
     * (late) and t03 360 (under the default archive's mark, which is no
     * watermark). Its step (at least 2 x 2 samples, whole tags) moves
     * t01..t03 and leaves t04. */
    n = 0;
    s[n++] = (struct gs){.tag = 0, .k = 0, .t = 400, .v = 99};
    s[n++] = (struct gs){.tag = 2, .k = 2, .t = 400, .v = 99};
    s[n++] = (struct gs){.tag = 1, .k = 1, .t = 450, .v = 7.5, .bad = true};
    s[n++] = (struct gs){.tag = 3, .k = 3, .t = 300, .v = 1};
    s[n++] = (struct gs){.tag = 3, .k = 3, .t = 360, .v = 3.5};
    s[n++] = (struct gs){.tag = 3, .k = 3, .t = 360, .v = 4.5};
    apply_batch(x, fs, 3, &m, tags, 4, s, n, true);
    EXPECT_EQ(m.tag[0].n + m.tag[1].n + m.tag[2].n + m.tag[3].n + m.tag[4].n, 9);
    EXPECT(settle_state(x->f[0], &upto, &next));
    EXPECT_EQ(upto, 2);
    EXPECT_EQ(next, 5);
    for (int i = 0; i < 5; i++) {
        check_raw(x->f[0], &m, i);
        check_raw(x->f[2], &m, i);
    }
    check_totals(x->f[0], &m);
    check_totals(x->f[2], &m);
    expect_same_digest(x->f[0], x->f[1]);

    /* Batch 4: the round ends (t04 moved, rows 1 and 2 gone); rows 3 and 4
     * stay recent. */
    s[0] = (struct gs){.tag = 4, .k = 0, .t = 700, .v = 7};
    apply_batch(x, fs, 3, &m, tags + 4, 1, s, 1, false);
    EXPECT(!settle_state(x->f[0], &upto, &next));
    EXPECT_EQ(sql_int(x->f[0], "SELECT count(*) FROM archive_recent"), 2);
    EXPECT_EQ(sql_int(x->f[0], "SELECT min(seq) FROM archive_recent"), 3);
    for (int i = 0; i < 5; i++) {
        check_raw(x->f[0], &m, i);
        check_paged(x->f[0], &m, i);
    }
    check_totals(x->f[0], &m);
    check_totals(x->f[2], &m);
    expect_same_digest(x->f[0], x->f[1]);
    EXPECT_EQ(sql_int(x->f[2], "SELECT count(*) FROM archive_samples"), 10);
    model_free(&m);
}

/* ---- readers ------------------------------------------------------------ */

static void expect_same_info(const struct vg_repl_archive_info *a,
                             const struct vg_repl_archive_info *b)
{
    EXPECT_EQ(a->samples, b->samples);
    EXPECT_EQ(a->tags, b->tags);
    EXPECT_EQ(a->oldest_ms, b->oldest_ms);
    EXPECT_EQ(a->newest_ms, b->newest_ms);
    EXPECT_EQ(a->watermark_ms, b->watermark_ms);
}

/* A reader (another connection, as the node's thread pool opens one) sees
 * what A committed, one state per read transaction while A goes on, and
 * cannot write. */
static void test_reader(void **state)
{
    struct fx *x = *state;
    static const int tags[] = {0, 1, 2};
    struct gs s[3];
    struct vg_repl_archive_info wa, ra;
    struct vg_repl_fsm *r = calloc(1, sizeof *r);
    unsigned char *body;
    uint64_t applied = 0;
    size_t len;
    char bad[200];

    assert_non_null(r);
    names_init();
    snprintf(ctx, sizeof ctx, "reader");
    for (int b = 0; b < 2; b++) {
        for (int i = 0; i < 3; i++) {
            s[i] = (struct gs){.tag = tags[i], .k = (unsigned)i,
                               .t = 1000000 + 1000 * (uint64_t)b + (uint64_t)i,
                               .v = i + 0.5, .bad = false};
        }
        body = binary_body(tags, 3, s, 3, &len);
        EXPECT_EQ(apply_to(x, x->f, 1, VG_CMD_HISTORY_SAMPLES, body, len), VG_OK);
        free(body);
        if (b == 0) {
            assert_int_equal(vg_repl_fsm_open_reader(r, x->path[0]), VG_OK);
            assert_int_equal(vg_repl_fsm_read_begin(r, &applied), VG_OK);
            EXPECT_EQ(applied, x->f[0]->applied_index);
            assert_int_equal(vg_repl_fsm_archive_info(r, &ra), VG_OK);
            assert_int_equal(vg_repl_fsm_archive_info(x->f[0], &wa), VG_OK);
            expect_same_info(&ra, &wa);
            EXPECT_EQ(ra.samples, 3);
        }
    }
    /* Still the state of the first batch until the transaction ends. */
    assert_int_equal(vg_repl_fsm_archive_info(r, &ra), VG_OK);
    EXPECT_EQ(ra.samples, 3);
    EXPECT_EQ(ra.newest_ms, 1000002);
    vg_repl_fsm_read_end(r);
    assert_int_equal(vg_repl_fsm_read_begin(r, &applied), VG_OK);
    EXPECT_EQ(applied, x->f[0]->applied_index);
    assert_int_equal(vg_repl_fsm_archive_info(r, &ra), VG_OK);
    assert_int_equal(vg_repl_fsm_archive_info(x->f[0], &wa), VG_OK);
    expect_same_info(&ra, &wa);
    EXPECT_EQ(ra.samples, 6);
    EXPECT(sqlite3_exec(r->db, "DELETE FROM kv", NULL, NULL, NULL) != SQLITE_OK);
    vg_repl_fsm_read_end(r);
    vg_repl_fsm_close(r);

    snprintf(bad, sizeof bad, "%s/missing/state.db", x->dir);
    EXPECT_EQ(vg_repl_fsm_open_reader(r, bad), VG_EDB);
    EXPECT(strstr(r->errmsg, bad) != NULL);
    vg_repl_fsm_close(r);
    free(r);
}

/* ---- self-check (scrub.c) ----------------------------------------------- */

/* Run SQL on the file at PATH through a connection of its own, as someone's
 * sqlite3 shell would. */
static void tamper(const char *path, const char *sql)
{
    sqlite3 *db;
    char *err = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 2000);
    /* The file's summary triggers call functions only vigild registers (a
     * plain shell fails on them); a tamperer turns them off. */
    assert_int_equal(sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, NULL),
                     SQLITE_OK);
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fail_msg("%s: %s", sql, err);
    }
    sqlite3_close(db);
}

/* Flip byte K of the blob of archive_recent row SEQ (K < 0: cut the blob to
 * -K bytes). */
static void tamper_blob(const char *path, long long seq, int k)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    unsigned char *data;
    int len;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT data FROM archive_recent WHERE seq = ?",
                                        -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_int64(st, 1, seq);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    len = sqlite3_column_bytes(st, 0);
    data = malloc((size_t)len);
    assert_non_null(data);
    memcpy(data, sqlite3_column_blob(st, 0), (size_t)len);
    sqlite3_finalize(st);
    if (k >= 0) {
        assert_true(k < len);
        data[k] ^= 0x01;
    } else {
        len = -k;
    }
    assert_int_equal(sqlite3_prepare_v2(db, "UPDATE archive_recent SET data = ?"
                                            " WHERE seq = ?", -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_blob(st, 1, data, len, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, seq);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    sqlite3_close(db);
    free(data);
}

/* A fresh A holding settled samples (t00's), live recent records in two
 * rows of a round in progress, and an audit record. */
static void scrub_state(struct fx *x, struct model *m)
{
    struct vg_repl_fsm *fs[1];
    struct gs s[32];
    int tags[5] = {0, 1, 2, 3, 4};
    long long upto, next;
    const char *audit = "{\"kind\":\"test\",\"object\":\"t00\",\"old_value\":1,"
                        "\"new_value\":\"two\",\"user\":\"ann\",\"station\":\"s1\","
                        "\"detail\":null}";
    size_t n = 0;

    close_slot(x, 0);
    open_slot(x, 0, (struct limits){1000, 2, 1});
    fs[0] = x->f[0];
    model_free(m);
    memset(m, 0, sizeof *m);
    for (unsigned k = 0; k < 4; k++) {
        for (uint64_t t = 100; t <= 500; t += 100) {
            s[n++] = (struct gs){.tag = (int)k, .k = k, .t = t,
                                 .v = (double)(k * 10) + (double)t / 100};
        }
    }
    apply_batch(x, fs, 1, m, tags, 4, s, n, false);
    s[0] = (struct gs){.tag = 4, .k = 0, .t = 600, .v = 6.5};
    apply_batch(x, fs, 1, m, tags + 4, 1, s, 1, false);
    EXPECT(settle_state(x->f[0], &upto, &next));
    EXPECT_EQ(sql_int(x->f[0], "SELECT count(*) FROM archive_samples"), 5);
    EXPECT_EQ(apply_to(x, fs, 1, VG_CMD_AUDIT, audit, strlen(audit)), VG_OK);
    check_totals(x->f[0], m);
}

/* Commit two checkpoints, the second comparing the first's digest: a
 * replica whose digest matches is "ok" unless a scrub found damage. */
static void checkpoint_twice(struct fx *x)
{
    struct vg_repl_fsm *fs[1] = {x->f[0]};
    char body[200], hex[VG_DIGEST_HEX];
    snprintf(body, sizeof body, "{\"ref_index\":0}");
    EXPECT_EQ(apply_to(x, fs, 1, VG_CMD_CHECKPOINT, body, strlen(body)), VG_OK);
    for (int i = 0; i < VG_DIGEST_SIZE; i++) {
        snprintf(hex + 2 * i, 3, "%02x", x->f[0]->checkpoint_digest[i]);
    }
    snprintf(body, sizeof body, "{\"ref_index\":%llu,\"ref_digest\":\"%s\"}",
             (unsigned long long)x->f[0]->checkpoint_index, hex);
    EXPECT_EQ(apply_to(x, fs, 1, VG_CMD_CHECKPOINT, body, strlen(body)), VG_OK);
}

/* Every kind of damage the digest cannot see is found by a scrub, named,
 * and holds the verdict at diverged although checkpoints match. */
/* A's state was just tampered with: a scrub finds it and says EXPECT, the
 * verdict is diverged, and stays so although two checkpoints match (the
 * digest does not see it). */
static void expect_damage_found(struct fx *x, const char *expect)
{
    EXPECT_EQ(vg_repl_fsm_scrub(x->f[0]), VG_EDB);
    if (strstr(x->f[0]->scrub.msg, expect) == NULL) {
        fail_msg("%s: '%s' does not say '%s'", ctx, x->f[0]->scrub.msg, expect);
    }
    EXPECT(strstr(x->f[0]->scrub.msg, "self-check at index") != NULL);
    EXPECT(x->f[0]->scrub.damaged);
    EXPECT_EQ(x->f[0]->scrub.damaged_runs, 1);
    EXPECT_EQ(x->f[0]->scrub.failed, 0);
    EXPECT_EQ(x->f[0]->verdict, VG_VERDICT_DIVERGED);
    EXPECT(strcmp(x->f[0]->verdict_msg, x->f[0]->scrub.msg) == 0);
    checkpoint_twice(x);
    EXPECT_EQ(x->f[0]->verdict, VG_VERDICT_DIVERGED);
    EXPECT(strstr(x->f[0]->verdict_msg, "self-check") != NULL);
}

static void test_scrub_finds_damage(void **state)
{
    static const struct {
        const char *sql; /* NULL: a blob */
        long long seq;
        int k;
        const char *expect;
    } cases[] = {
        {"UPDATE archive_samples SET value = value + 1 WHERE t = 300", 0, 0,
         "the archive holds the 21 rows its summary counts, but"},
        {"DELETE FROM archive_samples WHERE t = 300", 0, 0,
         "the archive holds 20 rows, its summary says 21"},
        {"INSERT INTO archive_samples VALUES(1, 50, 0.5, 0)", 0, 0,
         "the archive holds 22 rows, its summary says 21"},
        {"UPDATE archive_samples SET tag = 77 WHERE t = 200", 0, 0,
         "archive_samples holds a sample of tag id 77, which archive_tags"},
        /* Row 1's last record (t03 at 500) is live; its value's low byte. */
        {NULL, 1, 19 * 25 + 16, "(a row was changed)"},
        /* Row 1's first record (t00, moved already) is dead: see below. */
        {NULL, 2, -24, "archive recent row 2 is 24 bytes"},
        {"UPDATE audit SET user = 'mallory'", 0, 0,
         "audit holds the 1 rows its summary counts, but"},
        {"DELETE FROM audit", 0, 0, "audit holds 0 rows, its summary says 1"},
        {"UPDATE archive_tags SET name = 'x00' WHERE name = 't00'", 0, 0,
         "(a row was changed)"},
    };
    struct fx *x = *state;
    struct model m = {0};

    names_init();
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        snprintf(ctx, sizeof ctx, "scrub case %zu", c);
        scrub_state(x, &m);
        EXPECT_EQ(vg_repl_fsm_scrub(x->f[0]), VG_OK);
        EXPECT_EQ(x->f[0]->scrub.last_rows, 22); /* 21 samples, 1 audit */
        EXPECT_EQ(x->f[0]->scrub.last_index, x->f[0]->applied_index);
        EXPECT(!x->f[0]->scrub.damaged);
        checkpoint_twice(x);
        EXPECT_EQ(x->f[0]->verdict, VG_VERDICT_OK);

        if (cases[c].sql != NULL) {
            tamper(x->path[0], cases[c].sql);
        } else {
            tamper_blob(x->path[0], cases[c].seq, cases[c].k);
        }
        expect_damage_found(x, cases[c].expect);
    }

    /* A record of row 1 already moved into archive_samples is not the
     * archive's any more: changing it is no damage. */
    snprintf(ctx, sizeof ctx, "scrub of a dead record");
    scrub_state(x, &m);
    tamper_blob(x->path[0], 1, 16);
    EXPECT_EQ(vg_repl_fsm_scrub(x->f[0]), VG_OK);
    check_totals(x->f[0], &m);
    model_free(&m);
}

/* A fresh A at level 3 whose 20 samples (t00..t03 at 100..500) are
 * settled into 4 chunks. */
static void chunk_state(struct fx *x, struct model *m)
{
    struct vg_repl_fsm *fs[1];
    struct gs s[20];
    int tags[4] = {0, 1, 2, 3};
    size_t n = 0;

    close_slot(x, 0);
    open_slot(x, 0, AT_ONCE);
    fs[0] = x->f[0];
    model_free(m);
    memset(m, 0, sizeof *m);
    EXPECT_EQ(apply_level(x, fs, 1, 3), VG_OK);
    for (unsigned k = 0; k < 4; k++) {
        for (uint64_t t = 100; t <= 500; t += 100) {
            s[n++] = (struct gs){.tag = (int)k, .k = k, .t = t,
                                 .v = (double)(k * 10) + (double)t / 100};
        }
    }
    apply_batch(x, fs, 1, m, tags, 4, s, n, false);
    while (settle_some(x->f[0], UINT64_C(1) << 40) > 0) {
    }
    EXPECT_EQ(sql_int(x->f[0], "SELECT count(*) FROM archive_chunks"), 4);
    EXPECT_EQ(sql_int(x->f[0], "SELECT count(*) FROM archive_recent"), 0);
    check_totals(x->f[0], m);
}

/* Write t01's chunk again, validly encoded, with its third value changed:
 * only the hashes can tell. */
static void tamper_chunk_value(const char *path)
{
    struct vg_chunk_sample v[VG_CHUNK_SAMPLES_MAX];
    unsigned char out[256];
    size_t n = 0, len = 0;
    sqlite3_stmt *st;
    sqlite3 *db;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT data FROM archive_chunks WHERE tag ="
                                            " (SELECT id FROM archive_tags WHERE name = 't01')",
                                        -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(vg_chunk_decode(sqlite3_column_blob(st, 0),
                                     (size_t)sqlite3_column_bytes(st, 0), v,
                                     VG_CHUNK_SAMPLES_MAX, &n, NULL), VG_OK);
    sqlite3_finalize(st);
    assert_int_equal(n, 5);
    v[2].value += 1;
    assert_true(vg_chunk_bound(n) <= sizeof out);
    assert_int_equal(vg_chunk_encode(v, n, out, &len), VG_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "UPDATE archive_chunks SET data = ? WHERE tag ="
                                            " (SELECT id FROM archive_tags WHERE name = 't01')",
                                        -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_blob(st, 1, out, (int)len, SQLITE_TRANSIENT);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* Level 3: a chunk changed, cut short, lost, or at odds with its columns is
 * found and named, and the verdict stays diverged. */
static void test_scrub_finds_chunk_damage(void **state)
{
    static const struct {
        const char *sql; /* NULL: tamper_chunk_value */
        const char *expect;
    } cases[] = {
        {NULL, "the archive holds the 20 rows its summary counts, but"},
        {"DELETE FROM archive_chunks WHERE tag ="
         " (SELECT id FROM archive_tags WHERE name = 't02')",
         "the archive holds 15 rows, its summary says 20"},
        {"UPDATE archive_chunks SET data = substr(data, 1, length(data) - 1)"
         " WHERE tag = (SELECT id FROM archive_tags WHERE name = 't03')",
         "is cut short"},
        {"UPDATE archive_chunks SET n = 4 WHERE tag ="
         " (SELECT id FROM archive_tags WHERE name = 't00')",
         "says 4 samples up to 500, its data 5"},
        {"UPDATE archive_chunks SET t_last = 600 WHERE tag ="
         " (SELECT id FROM archive_tags WHERE name = 't00')",
         "says 5 samples up to 600"},
        {"UPDATE archive_chunks SET tag = 77 WHERE tag ="
         " (SELECT id FROM archive_tags WHERE name = 't00')",
         "archive_chunks holds a sample of tag id 77, which archive_tags"},
    };
    struct fx *x = *state;
    struct model m = {0};

    names_init();
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        snprintf(ctx, sizeof ctx, "chunk scrub case %zu", c);
        chunk_state(x, &m);
        EXPECT_EQ(vg_repl_fsm_scrub(x->f[0]), VG_OK);
        EXPECT_EQ(x->f[0]->scrub.last_rows, 20);
        checkpoint_twice(x);
        EXPECT_EQ(x->f[0]->verdict, VG_VERDICT_OK);
        if (cases[c].sql != NULL) {
            tamper(x->path[0], cases[c].sql);
        } else {
            tamper_chunk_value(x->path[0]);
        }
        expect_damage_found(x, cases[c].expect);
    }
    model_free(&m);
}

/* A scrub reads the state pinned at begin while more commands are applied;
 * an interrupted one fails without a verdict; a restore meanwhile makes the
 * outcome moot; a restore clears found damage. */
static void test_scrub_pinned(void **state)
{
    struct fx *x = *state;
    struct vg_repl_fsm *fs[1];
    struct vg_repl_scrub *sc;
    struct raft_buffer buf;
    struct model m = {0};
    struct gs s[8];
    int tags[2] = {5, 6};
    uint64_t index, runs;

    names_init();
    snprintf(ctx, sizeof ctx, "scrub pinned");
    scrub_state(x, &m);
    fs[0] = x->f[0];
    index = x->f[0]->applied_index;
    EXPECT_EQ(vg_repl_fsm_scrub_begin(x->f[0], &sc), VG_OK);
    for (int b = 0; b < 4; b++) {
        s[0] = (struct gs){.tag = 5, .k = 0, .t = 1000u + (uint64_t)b, .v = b};
        s[1] = (struct gs){.tag = 6, .k = 1, .t = 1000u + (uint64_t)b, .v = -b};
        apply_batch(x, fs, 1, &m, tags, 2, s, 2, false);
    }
    vg_repl_scrub_run(sc);
    if (vg_repl_fsm_scrub_end(x->f[0], sc) != VG_OK) {
        fail_msg("%s: %s", ctx, x->f[0]->scrub.msg);
    }
    EXPECT_EQ(x->f[0]->scrub.last_index, index);
    EXPECT_EQ(x->f[0]->scrub.last_rows, 22);
    runs = x->f[0]->scrub.runs;
    EXPECT_EQ(vg_repl_fsm_scrub(x->f[0]), VG_OK);
    EXPECT_EQ(x->f[0]->scrub.last_rows, 30);
    EXPECT_EQ(x->f[0]->scrub.runs, runs + 1);

    /* Interrupted: failed, nothing found, the verdict untouched. */
    EXPECT_EQ(vg_repl_fsm_scrub_begin(x->f[0], &sc), VG_OK);
    vg_repl_scrub_interrupt(sc);
    vg_repl_scrub_run(sc);
    EXPECT(vg_repl_fsm_scrub_end(x->f[0], sc) != VG_OK);
    EXPECT_EQ(x->f[0]->scrub.failed, 1);
    EXPECT_EQ(x->f[0]->scrub.runs, runs + 1);
    EXPECT(!x->f[0]->scrub.damaged);
    EXPECT(x->f[0]->verdict != VG_VERDICT_DIVERGED);

    /* Damage found, then a snapshot of a sound replica (B, further on)
     * restored: the damage is gone with the rows. A scrub that began
     * before the restore records nothing. */
    close_slot(x, 2);
    open_slot(x, 2, (struct limits){1000, 2, 1});
    fs[0] = x->f[2];
    s[0] = (struct gs){.tag = 7, .k = 0, .t = 50, .v = 1};
    for (uint64_t i = 0; i <= x->f[0]->applied_index; i++) {
        char body[64];
        snprintf(body, sizeof body, "{\"key\":\"k\",\"value\":\"%llu\"}",
                 (unsigned long long)i);
        EXPECT_EQ(apply_to(x, fs, 1, VG_CMD_PUT, body, strlen(body)), VG_OK);
    }
    tamper(x->path[0], "DELETE FROM audit");
    EXPECT_EQ(vg_repl_fsm_scrub(x->f[0]), VG_EDB);
    EXPECT_EQ(x->f[0]->verdict, VG_VERDICT_DIVERGED);
    EXPECT_EQ(vg_repl_fsm_scrub_begin(x->f[0], &sc), VG_OK);
    assert_int_equal(vg_repl_fsm_snapshot_copy(x->f[2], &buf), VG_OK);
    assert_int_equal(x->f[0]->fsm.restore(&x->f[0]->fsm, &buf), 0);
    vg_repl_scrub_run(sc);
    EXPECT_EQ(vg_repl_fsm_scrub_end(x->f[0], sc), VG_EAGAIN);
    EXPECT(!x->f[0]->scrub.damaged);
    EXPECT(x->f[0]->verdict != VG_VERDICT_DIVERGED);
    EXPECT_EQ(vg_repl_fsm_scrub(x->f[0]), VG_OK);
    model_free(&m);
}

/* The Nth call of SQLite's progress handler interrupts the connection, as
 * a scrub's budget does from the loop's thread (vg_repl_scrub_interrupt):
 * sqlite3_interrupt, and the statement runs on until SQLite looks. */
struct nth_interrupt {
    sqlite3 *db;
    unsigned calls, nth;
};

static int nth_interrupt_cb(void *arg)
{
    struct nth_interrupt *ni = arg;
    if (++ni->calls == ni->nth) {
        sqlite3_interrupt(ni->db);
    }
    return 0;
}

/* Recount every summarized table of A (the record tables, then the
 * archive) with the interrupt at each check SQLite makes, until one
 * finishes before the interrupt comes: each fails or is right. */
static void recount_interrupted_everywhere(struct fx *x, const char *what)
{
    for (int t = 0; t <= FSM_SUMMED_MAX; t++) {
        unsigned failed = 0;
        for (unsigned nth = 1;; nth++) {
            struct vg_repl_fsm *r = calloc(1, sizeof *r);
            struct nth_interrupt ni = {.nth = nth};
            struct fsm_recount c;
            uint64_t seen;
            int rv;

            assert_non_null(r);
            snprintf(ctx, sizeof ctx, "%s: recount %d interrupted at check %u", what,
                     t, nth);
            EXPECT_EQ(vg_repl_fsm_open_reader(r, x->path[0]), VG_OK);
            EXPECT_EQ(fsm_summary_functions(r), VG_OK);
            EXPECT_EQ(vg_repl_fsm_read_begin(r, &seen), VG_OK);
            ni.db = r->db;
            sqlite3_progress_handler(r->db, 1, nth_interrupt_cb, &ni);
            rv = t < FSM_SUMMED_MAX ? fsm_summary_recount(r, (enum fsm_summed)t, &c)
                                    : fsm_archive_recount(r, &c);
            sqlite3_progress_handler(r->db, 0, NULL, NULL);
            if (rv == VG_OK &&
                (c.rows != c.want_rows || c.hash_sum != c.want_hash_sum)) {
                fail_msg("%s: %s: %llu rows hash to %016llx, the summary says"
                         " %llu rows, %016llx", ctx, c.table,
                         (unsigned long long)c.rows, (unsigned long long)c.hash_sum,
                         (unsigned long long)c.want_rows,
                         (unsigned long long)c.want_hash_sum);
            }
            failed += rv != VG_OK;
            vg_repl_fsm_read_end(r);
            vg_repl_fsm_close(r);
            free(r);
            if (ni.calls < nth) {
                /* Not interrupted: it must have come through. */
                EXPECT_EQ(rv, VG_OK);
                break;
            }
        }
        /* The interrupt did stop some (the sweep reached the reads). */
        EXPECT(failed > 0);
    }
}

/* A recount interrupted anywhere fails or is right, never wrong: a wrong
 * sum is damage (the replica calls itself diverged). It once was wrong: an
 * interrupt that stopped reading a table's columns (PRAGMA table_info)
 * left the recount hashing the row's first few, and the recount's own
 * statement, begun when none ran, no longer saw the interrupt; with
 * cluster-scrub's 1 ms budget a node reported its audit row changed. Both
 * states the scrub tests use: the audit row with samples settled and
 * recent (scrub_state), and level 3's chunks (chunk_state). */
static void test_recount_interrupted_anywhere(void **state)
{
    struct fx *x = *state;
    struct model m = {0};

    names_init();
    snprintf(ctx, sizeof ctx, "recount interrupted");
    scrub_state(x, &m);
    recount_interrupted_everywhere(x, "scrub state");
    snprintf(ctx, sizeof ctx, "recount interrupted, chunks");
    chunk_state(x, &m);
    recount_interrupted_everywhere(x, "chunk state");
    model_free(&m);
}

/* A cut of every archive learns how old the oldest sample it left is
 * (archive_floor in replication.h), and a later cut below that deletes
 * nothing and skips its seek into every tag. A late sample staged since
 * lowers the floor: the next cut must find it, wherever it is stored. */
static void test_cut_floor(void **state)
{
    struct fx *x = *state;
    struct vg_repl_fsm *fs[3] = {x->f[0], x->f[1], x->f[2]};
    struct model m = {0};
    struct gs s[64];
    int tags[3] = {0, 1, 2};
    size_t n = 0;

    names_init();
    snprintf(ctx, sizeof ctx, "cut floor");
    EXPECT_EQ(apply_level(x, fs, 3, 3), VG_OK);
    for (uint64_t t = 1000; t < 3000; t += 100) {
        for (unsigned k = 0; k < 3; k++) {
            s[n++] = (struct gs){.tag = (int)k, .k = k, .t = t, .v = (double)t + k};
        }
    }
    apply_batch(x, fs, 3, &m, tags, 3, s, n / 2, false);
    apply_batch(x, fs, 3, &m, tags, 3, s + n / 2, n - n / 2, false);
    for (int i = 0; i < 3; i++) {
        settle_some(x->f[i], UINT64_C(1) << 40);
    }
    EXPECT(sql_int(x->f[0], "SELECT count(*) FROM archive_chunks") > 0);
    EXPECT(!x->f[0]->archive_floor.known);

    /* Nothing older than 1000: the first cut walks every tag and learns it. */
    apply_cut(x, fs, 3, &m, 500, -1, 0);
    EXPECT(x->f[0]->archive_floor.known && x->f[2]->archive_floor.known);
    EXPECT_EQ(x->f[0]->archive_floor.t, 1000);
    EXPECT_EQ(x->f[2]->archive_floor.t, 1000);
    apply_cut(x, fs, 3, &m, 600, -1, 0);
    EXPECT_EQ(x->f[0]->archive_floor.t, 1000);

    /* Late samples above the watermark (600), below the floor. */
    s[0] = (struct gs){.tag = 0, .k = 0, .t = 700, .v = -7};
    s[1] = (struct gs){.tag = 1, .k = 1, .t = 650, .v = -6.5};
    apply_batch(x, fs, 3, &m, tags, 2, s, 2, false);
    EXPECT_EQ(x->f[0]->archive_floor.t, 650);
    apply_cut(x, fs, 3, &m, 690, -1, 0);
    EXPECT_EQ(m.tag[1].n, 20);
    EXPECT_EQ(x->f[0]->archive_floor.t, 700);
    for (int i = 0; i < 3; i++) {
        check_raw(x->f[0], &m, i);
        check_raw(x->f[2], &m, i);
    }
    check_totals(x->f[0], &m);
    check_totals(x->f[2], &m);

    /* A cut of one archive below the floor is skipped too; above it, it
     * walks that archive's tags, which does not raise the floor. */
    apply_cut(x, fs, 3, &m, 0, 0, 695);
    apply_cut(x, fs, 3, &m, 0, 0, 1100);
    EXPECT_EQ(m.tag[0].n, 19);
    EXPECT_EQ(x->f[0]->archive_floor.t, 700);
    for (int i = 0; i < 3; i++) {
        check_raw(x->f[0], &m, i);
        check_raw(x->f[1], &m, i);
    }
    check_totals(x->f[0], &m);
    check_totals(x->f[1], &m);
    expect_same_digest(x->f[0], x->f[1]);
    expect_same_digest(x->f[0], x->f[2]);

    /* A replica behind that restores a snapshot forgets its floor (that
     * of an empty archive: no sample at all) and walks at the next cut. */
    open_slot(x, 3, SMALL);
    {
        struct vg_repl_fsm *behind[1] = {x->f[3]};
        struct model empty = {0};
        struct raft_buffer buf;
        apply_cut(x, behind, 1, &empty, 100, -1, 0);
        EXPECT(x->f[3]->archive_floor.known);
        EXPECT_EQ(x->f[3]->archive_floor.t, UINT64_MAX);
        assert_int_equal(vg_repl_fsm_snapshot_copy(x->f[0], &buf), VG_OK);
        if (x->f[3]->fsm.restore(&x->f[3]->fsm, &buf) != 0) {
            raft_free(buf.base);
            fail_msg("restore: %s", x->f[3]->errmsg);
        }
        model_free(&empty);
    }
    EXPECT(!x->f[3]->archive_floor.known);
    fs[2] = x->f[3];
    apply_cut(x, fs, 3, &m, 1150, -1, 0);
    EXPECT(x->f[3]->archive_floor.known);
    EXPECT_EQ(x->f[3]->archive_floor.t, 1200);
    for (int i = 0; i < 3; i++) {
        check_raw(x->f[3], &m, i);
    }
    check_totals(x->f[3], &m);
    expect_same_digest(x->f[0], x->f[3]);
    model_free(&m);
}

/* ---- retention cuts in steps (level 4) ----------------------------------- */

/* How many samples of TAG older than T F holds. */
static size_t held_before(struct vg_repl_fsm *f, int tag, uint64_t t)
{
    json_t *r = raw_of(f, tag, 0, t, 100000);
    size_t n = json_array_size(json_object_get(r, "samples"));
    json_decref(r);
    return n;
}

static int cut_body(struct fx *x, struct vg_repl_fsm *const *fs, size_t n_fs,
                    const char *body)
{
    return apply_to(x, fs, n_fs, VG_CMD_RETENTION_CUT, body, strlen(body));
}

/* The model's tags in the order of their archive ids (every one has one). */
static void tags_by_id(struct vg_repl_fsm *f, int *order, int n)
{
    for (int i = 0; i < n; i++) {
        char sql[96];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM archive_tags WHERE id <"
                                  " (SELECT id FROM archive_tags WHERE name = '%s')",
                 NAME[i]);
        long long k = sql_int(f, sql);
        EXPECT(k >= 0 && k < n);
        order[k] = i;
    }
}

/* Level 4: a cut walks CUT_STEP tags a command and RETENTION_CUT {continue:
 * true} takes the next step. Between the steps: the cut's row in
 * retention_steps; the watermark raised by the first step of a cut of every
 * archive, an archive's mark only by the last; a new cut of the same
 * archive skipped; batches staged (under the watermark: ignored; of a named
 * archive's tags: cut only where the walk has not passed). A replica
 * restored from a snapshot and one reopened between two steps go on with
 * the same digests, and the floor is learned only by a replica that saw
 * every step. Below level 4, continue is not a member. */
static void test_cut_steps(void **state)
{
    struct fx *x = *state;
    struct vg_repl_fsm *fs[4] = {x->f[0], x->f[1], x->f[2], NULL};
    struct model m = {0};
    struct gs s[12 * 20];
    int tags[12], order[12], fast[6], n_fast = 0;
    size_t n = 0;
    bool pending = false;

    names_init();
    snprintf(ctx, sizeof ctx, "cut steps");
    for (int i = 0; i < 12; i++) {
        tags[i] = i;
        m.tag[i].cls = i % 2 == 0 ? 1 : 0; /* even tags: "fast" */
    }
    apply_classes(x, fs, 3, &m, VG_OK);
    EXPECT_EQ(apply_level(x, fs, 3, 3), VG_OK);
    EXPECT_EQ(cut_body(x, fs, 3, "{\"continue\":true}"), VG_EINVAL);
    EXPECT_EQ(apply_level(x, fs, 3, 4), VG_OK);
    EXPECT_EQ(cut_body(x, fs, 3, "{\"continue\":1}"), VG_EINVAL);
    EXPECT_EQ(cut_body(x, fs, 3, "{\"continue\":false}"), VG_EINVAL);
    EXPECT_EQ(cut_body(x, fs, 3, "{\"continue\":true}"), VG_REPL_UNCHANGED);
    for (uint64_t t = 1000; t < 3000; t += 100) {
        for (unsigned k = 0; k < 12; k++) {
            s[n++] = (struct gs){.tag = (int)k, .k = k, .t = t, .v = (double)t / 7 + k};
        }
    }
    apply_batch(x, fs, 3, &m, tags, 12, s, n / 2, false);
    apply_batch(x, fs, 3, &m, tags, 12, s + n / 2, n - n / 2, false);
    for (int i = 0; i < 3; i++) {
        settle_some(x->f[i], UINT64_C(1) << 40);
    }
    tags_by_id(x->f[0], order, 12);

    /* A cut of every archive: the first step walks 4 tags. */
    EXPECT_EQ(cut_body(x, fs, 3, "{\"before_ms\":1550}"), VG_OK);
    for (int i = 0; i < 3; i++) {
        EXPECT_EQ(vg_repl_fsm_retention_pending(x->f[i], &pending), VG_OK);
        EXPECT(pending);
    }
    EXPECT_EQ(sql_int(x->f[0], "SELECT count(*) FROM retention_steps WHERE"
                               " what = 'before_ms' AND before_ms = 1550"),
              1);
    EXPECT_EQ(sql_int(x->f[0], "SELECT watermark_ms FROM archive_summary"), 1550);
    for (int k = 0; k < 12; k++) {
        EXPECT_EQ(held_before(x->f[0], order[k], 1550), k < CUT_STEP ? 0 : 6);
        EXPECT_EQ(held_before(x->f[2], order[k], 1550), k < CUT_STEP ? 0 : 6);
    }
    expect_same_digest(x->f[0], x->f[1]);
    expect_same_digest(x->f[0], x->f[2]);
    /* Meanwhile: a later cut of every archive waits for this one, and a
     * late sample under the watermark is not stored. */
    EXPECT_EQ(cut_body(x, fs, 3, "{\"before_ms\":1600}"), VG_REPL_UNCHANGED);
    EXPECT_EQ(sql_int(x->f[0], "SELECT watermark_ms FROM archive_summary"), 1550);
    /* A sample under the watermark is not stored; one above it, of a tag
     * the walk passed, is older than any that tag kept (1600): what the
     * steps learn of the floor goes down with it. */
    {
        int two[2] = {order[11], order[0]};
        s[0] = (struct gs){.tag = order[11], .k = 0, .t = 1450, .v = 1.5};
        s[1] = (struct gs){.tag = order[0], .k = 1, .t = 1560, .v = 2.5};
        apply_batch(x, fs, 3, &m, two, 2, s, 2, false);
    }
    EXPECT_EQ(held_before(x->f[0], order[11], 1550), 6);
    EXPECT_EQ(held_before(x->f[0], order[0], 1600), 1);
    for (int i = 0; i < 3; i++) {
        settle_some(x->f[i], UINT64_C(1) << 40); /* B: out of the recent rows */
    }
    EXPECT_EQ(sql_int(x->f[2], "SELECT count(*) FROM archive_recent"), 0);

    /* The next step on A; then A is restored from its snapshot into slot 3,
     * and A2 is reopened, both between two steps. */
    EXPECT_EQ(cut_body(x, fs, 3, "{\"continue\":true}"), VG_OK);
    EXPECT(x->f[0]->archive_floor_walk.on);
    open_slot(x, 3, SMALL);
    {
        struct raft_buffer buf;
        assert_int_equal(vg_repl_fsm_snapshot_copy(x->f[0], &buf), VG_OK);
        if (x->f[3]->fsm.restore(&x->f[3]->fsm, &buf) != 0) {
            raft_free(buf.base);
            fail_msg("restore: %s", x->f[3]->errmsg);
        }
    }
    EXPECT(!x->f[3]->archive_floor_walk.on);
    vg_repl_fsm_close(x->f[1]);
    if (vg_repl_fsm_open(x->f[1], x->path[1]) != VG_OK) {
        fail_msg("reopen: %s", x->f[1]->errmsg);
    }
    set_limits(x, 1);
    fs[3] = x->f[3];
    EXPECT_EQ(drain_steps(x, fs, 4), 1);
    m_cut_all(&m, 1550);
    for (int i = 0; i < 4; i++) {
        for (int k = 0; k < 12; k++) {
            check_raw(x->f[i], &m, k);
        }
        check_totals(x->f[i], &m);
    }
    /* A and B saw every step: they know nothing is older than 1560; the
     * replicas that missed steps (restored, reopened) do not. */
    EXPECT(x->f[0]->archive_floor.known && x->f[2]->archive_floor.known);
    EXPECT_EQ(x->f[0]->archive_floor.t, 1560);
    EXPECT_EQ(x->f[2]->archive_floor.t, 1560);
    EXPECT(!x->f[1]->archive_floor.known && !x->f[3]->archive_floor.known);

    /* A cut of "fast" (6 tags: two steps) with a batch between its steps
     * of a late sample (1850) of every tag: where the walk passed, it
     * stays. The mark rises with the last step. */
    for (int k = 0; k < 12; k++) {
        if (m.tag[order[k]].cls == 1) {
            fast[n_fast++] = order[k];
        }
    }
    EXPECT_EQ(n_fast, 6);
    EXPECT_EQ(cut_body(x, fs, 4, "{\"archives\":{\"fast\":2000}}"), VG_OK);
    EXPECT_EQ(sql_int(x->f[0], "SELECT count(*) FROM retention_marks"
                               " WHERE what = 'archive:fast'"),
              0);
    for (int k = 0; k < CUT_STEP; k++) {
        m_cut_tag(&m, fast[k], 2000);
    }
    for (int k = 0; k < 12; k++) {
        s[k] = (struct gs){.tag = k, .k = (unsigned)k, .t = 1850, .v = -1.0 * k};
    }
    apply_batch(x, fs, 4, &m, tags, 12, s, 12, true);
    EXPECT_EQ(cut_body(x, fs, 4, "{\"archives\":{\"fast\":2100}}"), VG_REPL_UNCHANGED);
    EXPECT_EQ(drain_steps(x, fs, 4), 1);
    for (int k = CUT_STEP; k < n_fast; k++) {
        m_cut_tag(&m, fast[k], 2000);
    }
    m.mark[1] = 2000;
    EXPECT_EQ(sql_int(x->f[0], "SELECT before_ms FROM retention_marks"
                               " WHERE what = 'archive:fast'"),
              2000);
    for (int i = 0; i < 4; i++) {
        for (int k = 0; k < 12; k++) {
            check_raw(x->f[i], &m, k);
        }
        check_totals(x->f[i], &m);
    }
    EXPECT_EQ(held_before(x->f[0], fast[0], 2000), 1);
    EXPECT_EQ(held_before(x->f[0], fast[5], 2000), 0);

    /* A cut of every archive above the floor: the 1560 sample goes on
     * every replica, those that know the floor and those that walk. */
    apply_cut(x, fs, 4, &m, 1580, -1, 0);
    for (int i = 0; i < 4; i++) {
        check_raw(x->f[i], &m, order[0]);
        check_totals(x->f[i], &m);
    }
    expect_same_digest(x->f[0], x->f[1]);
    expect_same_digest(x->f[0], x->f[3]);

    /* Replicas that know the floor (1600) skip the seeks of a cut below
     * it, A2 reopened does not: their steps cover the same tags, so that
     * retention_steps and the digests agree at every step (drain_steps). */
    vg_repl_fsm_close(x->f[1]);
    if (vg_repl_fsm_open(x->f[1], x->path[1]) != VG_OK) {
        fail_msg("reopen: %s", x->f[1]->errmsg);
    }
    set_limits(x, 1);
    EXPECT(x->f[0]->archive_floor.known && !x->f[1]->archive_floor.known);
    EXPECT_EQ(x->f[0]->archive_floor.t, 1600);
    x->cut_steps = 0;
    apply_cut(x, fs, 4, &m, 1590, -1, 0);
    EXPECT_EQ(x->cut_steps, 2);
    EXPECT(x->f[1]->archive_floor.known);
    EXPECT_EQ(x->f[1]->archive_floor.t, 1600);
    for (int i = 0; i < 4; i++) {
        check_totals(x->f[i], &m);
    }
    model_free(&m);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_random_against_model),
        T(test_cut_during_round),
        T(test_cut_floor),
        T(test_reopen_mid_round),
        T(test_snapshot_mid_round),
        T(test_level2_slices),
        T(test_level3_chunks),
        T(test_level2_then_3),
        T(test_level4_cut_steps),
        T(test_cut_steps),
        T(test_level_command),
        T(test_reader),
        T(test_scrub_finds_damage),
        T(test_scrub_finds_chunk_damage),
        T(test_scrub_pinned),
        T(test_recount_interrupted_anywhere),
    };
    return cmocka_run_group_tests_name("archive-recent", tests, NULL, NULL);
}
