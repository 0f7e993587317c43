/* The process-value archive (replication.h, VG_CMD_HISTORY_BATCH, the
 * archive part of VG_CMD_RETENTION_CUT, VG_CMD_ARCHIVE_CLASSES, and the
 * queries at the end of the header).
 *
 * Happy path of a batch: the whole body is validated first (time base, tag
 * names, base64, every packed sample), so that a malformed batch is rejected
 * before a single row is written. The tags that samples to be stored refer
 * to (not every name of the array) are then mapped to archive_tags ids (a
 * new name gets max(id) + 1, the same on every replica because ids are
 * assigned in apply order), and the samples are sorted by (tag id, time,
 * position in the batch). The first sample of a (tag, time) wins, in the
 * batch (the sort keeps batch order for equal keys, and later equal ones
 * are skipped) as across batches: rows_judge keeps a sample only if it is
 * newer than everything the archive holds of its tag (nearly all of them,
 * known from the tag cache) or, for a late one, if neither archive_samples
 * nor the recent rows hold that (tag, time). The accepted samples are then
 * staged as one archive_recent row and settled into archive_samples in
 * rounds by archive_recent.c, which explains why; every query here reads
 * both through one merged cursor, so the split never shows.
 *
 * The digest does not hash archive_samples row by row (millions of rows at
 * every checkpoint). Apply keeps archive_summary instead: the number of
 * samples and the wrapping 64-bit sum of a SipHash of each, added for every
 * sample accepted (when it is staged; settling moves it and changes
 * neither) and subtracted for every sample a retention cut deletes, settled
 * or recent. The row hash uses the tag's name rather than its id, and -0.0
 * counts as +0.0 (SQLite stores both as the integer 0), so the sum depends
 * only on what the archive holds. The summary row is created only when the
 * first sample is stored or the first cut applied: an archive never used
 * contributes nothing to the digest (the table is "lazy" in fsm.c).
 *
 * Failure modes: any malformed part gives VG_EINVAL and nothing stored; an
 * SQLite error or a failed allocation gives VG_EDB (fatal, the node
 * fail-stops) because neither is a property of the command and answering
 * anything else would let replicas disagree.
 *
 * Queries read the (tag, t) primary key and the recent rows one tag at a
 * time and never write; they run on any node's replica. */
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "fsm_internal.h"
#include "sample_chunk.h"

#define TAG_MAX 256
#define TAGS_MAX 65536
#define TIME_END FSM_TIME_END
#define RAW_LIMIT_MAX 100000
#define BUCKETS_MAX 10000
/* Length of the base64 text of the largest batch, padding included. */
#define S_MAX (((size_t)VG_HISTORY_BATCH_MAX * VG_HISTORY_SAMPLE_SIZE + 2) / 3 * 4)

/* One name of a batch's tags array (borrowed from the JSON body) and, once
 * mapped, its archive_tags id. */
struct batch_tag {
    const char *name;
    size_t len;
    int64_t id;
    struct cached_tag *cached; /* its entry in the tag cache, once mapped */
    bool used; /* a sample to store refers to it */
};

/* One sample to store, in the order the inserts happen. */
struct batch_row {
    int64_t id;
    uint64_t t;
    uint32_t pos; /* index in the batch: the first of equal keys wins */
    uint32_t tag;
};

struct batch {
    uint64_t t0;
    struct batch_tag *tags;
    size_t n_tags;
    unsigned char *raw; /* decoded samples */
    size_t n;           /* number of samples in raw */
    struct batch_row *rows;
    size_t n_rows;
};

/* Count and hash sum of the stored rows, and the retention watermark. */
struct summary {
    bool exists;
    uint64_t samples;
    uint64_t hash_sum;
    uint64_t watermark_ms;
};

static void batch_free(struct batch *b)
{
    free(b->tags);
    free(b->raw);
    free(b->rows);
}

static int nomem(struct vg_repl_fsm *f, const char *what)
{
    vg_errf(f->errmsg, "out of memory applying %s", what);
    return VG_EDB;
}

/* ---------------------------------------------------------- sample codec */

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}


void vg_repl_history_sample_pack(unsigned char *p, uint32_t tag, uint32_t dt,
                                 double value, bool bad)
{
    uint64_t bits;
    memcpy(&bits, &value, sizeof bits);
    for (int i = 0; i < 4; i++) {
        p[i] = (unsigned char)(tag >> (8 * i));
        p[4 + i] = (unsigned char)(dt >> (8 * i));
    }
    fsm_put_u64(p + 8, bits);
    p[16] = bad ? 1 : 0;
}

int vg_repl_history_samples_body(uint64_t t0, const char *const *names,
                                 size_t n_tags, const unsigned char *packed,
                                 size_t n, unsigned char **out, size_t *out_len)
{
    size_t len = 12, raw = n * VG_HISTORY_SAMPLE_SIZE;
    unsigned char *b, *o;

    *out = NULL;
    *out_len = 0;
    if (n_tags < 1 || n_tags > TAGS_MAX || n < 1 || n > VG_HISTORY_BATCH_MAX) {
        return VG_EINVAL;
    }
    for (size_t i = 0; i < n_tags; i++) {
        size_t nl = strlen(names[i]);
        if (nl < 1 || nl > TAG_MAX) {
            return VG_EINVAL;
        }
        len += 2 + nl;
    }
    len += raw;
    if ((b = malloc(len)) == NULL) {
        return VG_ENOMEM;
    }
    fsm_put_u64(b, t0);
    for (int i = 0; i < 4; i++) {
        b[8 + i] = (unsigned char)(n_tags >> (8 * i));
    }
    o = b + 12;
    for (size_t i = 0; i < n_tags; i++) {
        size_t nl = strlen(names[i]);
        o[0] = (unsigned char)nl;
        o[1] = (unsigned char)(nl >> 8);
        memcpy(o + 2, names[i], nl);
        o += 2 + nl;
    }
    memcpy(o, packed, raw);
    *out = b;
    *out_len = len;
    return VG_OK;
}

struct sample {
    uint32_t tag;
    uint32_t dt;
    double value;
    unsigned bad;
};

static void sample_read(const unsigned char *raw, size_t i, struct sample *s)
{
    const unsigned char *p = raw + i * VG_HISTORY_SAMPLE_SIZE;
    uint64_t bits = fsm_get_u64(p + 8);
    s->tag = get_u32(p);
    s->dt = get_u32(p + 4);
    memcpy(&s->value, &bits, sizeof s->value);
    s->bad = p[16];
}

/* The row hash that archive_summary.hash_sum adds up: SipHash-2-4 with an
 * all-zero key over u32 name length, name, u64 time, u64 IEEE bits of the
 * value (-0.0 as +0.0), u8 bad; integers little-endian. */
static uint64_t row_hash(const char *name, size_t len, uint64_t t,
                         double value, int bad)
{
    static const unsigned char key[crypto_shorthash_KEYBYTES] = {0};
    unsigned char buf[4 + TAG_MAX + 8 + 8 + 1];
    unsigned char out[crypto_shorthash_BYTES];
    uint64_t bits;
    size_t n = 0;

    if (value == 0.0) {
        value = 0.0; /* -0.0 compares equal and becomes +0.0 */
    }
    memcpy(&bits, &value, sizeof bits);
    for (int i = 0; i < 4; i++) {
        buf[n++] = (unsigned char)(len >> (8 * i));
    }
    memcpy(buf + n, name, len);
    n += len;
    fsm_put_u64(buf + n, t);
    n += 8;
    fsm_put_u64(buf + n, bits);
    n += 8;
    buf[n++] = (unsigned char)(bad != 0);
    crypto_shorthash(out, buf, n, key);
    return fsm_get_u64(out);
}

/* ------------------------------------------------------------ validation */

bool fsm_time_ok(json_t *v)
{
    return json_is_integer(v) && json_integer_value(v) >= 0 &&
           (uint64_t)json_integer_value(v) < TIME_END;
}

static int name_order(const struct batch_tag *x, const struct batch_tag *y)
{
    int c = memcmp(x->name, y->name, x->len < y->len ? x->len : y->len);
    if (c != 0) {
        return c;
    }
    return x->len < y->len ? -1 : x->len > y->len;
}

static int name_cmp(const void *a, const void *b)
{
    return name_order(*(const struct batch_tag *const *)a,
                      *(const struct batch_tag *const *)b);
}

/* Are the names distinct? Names in strictly rising order are (the leader
 * lists a batch's tags in project order, often sorted): one pass. Otherwise
 * sorted pointers make it O(n log n) for 65536. A hash set was tried
 * instead of the sort: SipHash and its scattered slots cost more than
 * sorting 16 384 names that were nearly in order (perf of
 * archive_apply_bench: 3.7 % against 1.3 %). */
static int tags_distinct(struct vg_repl_fsm *f, struct batch *b, bool *ok)
{
    struct batch_tag **v;

    *ok = true;
    for (size_t i = 1; i < b->n_tags && *ok; i++) {
        *ok = name_order(&b->tags[i - 1], &b->tags[i]) < 0;
    }
    if (*ok) {
        return VG_OK;
    }
    if ((v = malloc(b->n_tags * sizeof *v)) == NULL) {
        return nomem(f, "a history batch");
    }
    for (size_t i = 0; i < b->n_tags; i++) {
        v[i] = &b->tags[i];
    }
    qsort(v, b->n_tags, sizeof *v, name_cmp);
    *ok = true;
    for (size_t i = 1; i < b->n_tags && *ok; i++) {
        *ok = name_cmp(&v[i - 1], &v[i]) != 0;
    }
    free(v);
    return VG_OK;
}

/* TAGS into B: 1..65536 distinct strings of 1..256 bytes without NUL (a NUL
 * would make the name SQLite stores differ from the one hashed). */
static int parse_tags(struct vg_repl_fsm *f, json_t *tags, struct batch *b)
{
    bool distinct;
    int rv;

    if (!json_is_array(tags) || json_array_size(tags) < 1 ||
        json_array_size(tags) > TAGS_MAX) {
        return VG_EINVAL;
    }
    b->n_tags = json_array_size(tags);
    b->tags = calloc(b->n_tags, sizeof *b->tags);
    if (b->tags == NULL) {
        return nomem(f, "a history batch");
    }
    for (size_t i = 0; i < b->n_tags; i++) {
        json_t *name = json_array_get(tags, i);
        if (!json_is_string(name)) {
            return VG_EINVAL;
        }
        b->tags[i].name = json_string_value(name);
        b->tags[i].len = json_string_length(name);
        if (b->tags[i].len == 0 || b->tags[i].len > TAG_MAX ||
            strlen(b->tags[i].name) != b->tags[i].len) {
            return VG_EINVAL;
        }
    }
    if ((rv = tags_distinct(f, b, &distinct)) != VG_OK) {
        return rv;
    }
    return distinct ? VG_OK : VG_EINVAL;
}

/* S into b->raw: canonical padded base64, no characters ignored, a non-zero
 * whole number of samples, at most VG_HISTORY_BATCH_MAX. */
static int decode_samples(struct vg_repl_fsm *f, json_t *s, struct batch *b)
{
    size_t len, max, decoded;

    if (!json_is_string(s)) {
        return VG_EINVAL;
    }
    len = json_string_length(s);
    if (len == 0 || len > S_MAX) {
        return VG_EINVAL;
    }
    max = len / 4 * 3 + 3;
    b->raw = malloc(max);
    if (b->raw == NULL) {
        return nomem(f, "a history batch");
    }
    if (sodium_base642bin(b->raw, max, json_string_value(s), len, NULL,
                          &decoded, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
        decoded == 0 || decoded % VG_HISTORY_SAMPLE_SIZE != 0 ||
        decoded / VG_HISTORY_SAMPLE_SIZE > VG_HISTORY_BATCH_MAX) {
        return VG_EINVAL;
    }
    b->n = decoded / VG_HISTORY_SAMPLE_SIZE;
    return VG_OK;
}

static bool samples_valid(const struct batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        struct sample s;
        sample_read(b->raw, i, &s);
        if (s.tag >= b->n_tags || !isfinite(s.value) || s.bad > 1 ||
            b->t0 + s.dt >= TIME_END) {
            return false;
        }
    }
    return true;
}

static int batch_parse(struct vg_repl_fsm *f, json_t *body, struct batch *b)
{
    json_t *t0 = json_object_get(body, "t0");
    int rv;

    if (!fsm_time_ok(t0)) {
        return VG_EINVAL;
    }
    b->t0 = (uint64_t)json_integer_value(t0);
    if ((rv = parse_tags(f, json_object_get(body, "tags"), b)) != VG_OK ||
        (rv = decode_samples(f, json_object_get(body, "s"), b)) != VG_OK) {
        return rv;
    }
    return samples_valid(b) ? VG_OK : VG_EINVAL;
}

/* The body of a HISTORY_SAMPLES command into B (replication.h). The names
 * point into the body (they are used by length, never as C strings); the
 * samples are copied, as batch_free frees them. */
static int batch_parse_binary(struct vg_repl_fsm *f, const struct vg_cmd *cmd,
                              struct batch *b)
{
    const unsigned char *p = (const unsigned char *)cmd->body;
    size_t left = cmd->body_len, raw_len;
    bool distinct;
    int rv;

    if (left < 12) {
        return VG_EINVAL;
    }
    b->t0 = fsm_get_u64(p);
    b->n_tags = get_u32(p + 8);
    p += 12;
    left -= 12;
    if (b->t0 >= TIME_END || b->n_tags < 1 || b->n_tags > TAGS_MAX) {
        return VG_EINVAL;
    }
    b->tags = calloc(b->n_tags, sizeof *b->tags);
    if (b->tags == NULL) {
        return nomem(f, "a history batch");
    }
    for (size_t i = 0; i < b->n_tags; i++) {
        size_t len;
        if (left < 2) {
            return VG_EINVAL;
        }
        len = (size_t)p[0] | ((size_t)p[1] << 8);
        p += 2;
        left -= 2;
        if (len == 0 || len > TAG_MAX || len > left || !fsm_utf8_ok(p, len)) {
            return VG_EINVAL;
        }
        b->tags[i].name = (const char *)p;
        b->tags[i].len = len;
        p += len;
        left -= len;
    }
    raw_len = left;
    if (raw_len == 0 || raw_len % VG_HISTORY_SAMPLE_SIZE != 0 ||
        raw_len / VG_HISTORY_SAMPLE_SIZE > VG_HISTORY_BATCH_MAX) {
        return VG_EINVAL;
    }
    if ((rv = tags_distinct(f, b, &distinct)) != VG_OK) {
        return rv;
    }
    if (!distinct) {
        return VG_EINVAL;
    }
    b->raw = malloc(raw_len);
    if (b->raw == NULL) {
        return nomem(f, "a history batch");
    }
    memcpy(b->raw, p, raw_len);
    b->n = raw_len / VG_HISTORY_SAMPLE_SIZE;
    return samples_valid(b) ? VG_OK : VG_EINVAL;
}

/* ------------------------------------------------------------- tag cache */

/* What apply would otherwise ask SQLite for every tag of every batch: its
 * id (a lookup by name) and its newest stored time (a max() over the
 * primary key); for a batch of 50 000 samples of 20 000 tags these were a
 * third of the apply. NEWEST is never below the real newest time (-1: none
 * stored, UNKNOWN: ask): a row newer than it is then newer than every stored
 * one, which is all store_rows relies on. A retention cut only lowers the
 * real value, so the cache survives it; a rolled-back transaction may have
 * added ids that are not in the database, and a snapshot replaces the
 * database, so both drop the whole cache (fsm.c calls
 * fsm_tag_cache_free). The cache only saves work: what apply stores is the
 * same with or without it. */
#define UNKNOWN INT64_MIN

struct cached_tag {
    char *name;
    size_t len;
    int64_t id;
    int64_t newest;
};

struct vg_repl_tag_cache {
    unsigned char key[crypto_shorthash_KEYBYTES]; /* random: bounds probes */
    struct cached_tag **slots; /* open addressing, power-of-two size */
    size_t n, cap;
    /* fsm_recent_newest, read when an entry's newest is first needed: the
     * recent part of NEWEST. Staging through an entry keeps the entry
     * right; staging without one (out of memory) drops this copy. */
    struct fsm_recent_rec *recent;
    size_t n_recent;
    bool recent_ok;
};

void fsm_tag_cache_free(struct vg_repl_fsm *f)
{
    struct vg_repl_tag_cache *c = f->tag_cache;
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < c->cap; i++) {
        if (c->slots[i] != NULL) {
            free(c->slots[i]->name);
            free(c->slots[i]);
        }
    }
    free(c->slots);
    free(c->recent);
    free(c);
    f->tag_cache = NULL;
}

static size_t cache_slot(const struct vg_repl_tag_cache *c, const char *name,
                         size_t len)
{
    unsigned char h[crypto_shorthash_BYTES];
    crypto_shorthash(h, (const unsigned char *)name, len, c->key);
    return (size_t)fsm_get_u64(h) & (c->cap - 1);
}

static struct cached_tag *cache_find(struct vg_repl_tag_cache *c,
                                     const char *name, size_t len)
{
    if (c == NULL) {
        return NULL;
    }
    for (size_t i = cache_slot(c, name, len);; i = (i + 1) & (c->cap - 1)) {
        struct cached_tag *e = c->slots[i];
        if (e == NULL) {
            return NULL;
        }
        if (e->len == len && memcmp(e->name, name, len) == 0) {
            return e;
        }
    }
}

static void cache_put_slot(struct vg_repl_tag_cache *c, struct cached_tag *e)
{
    size_t i = cache_slot(c, e->name, e->len);
    while (c->slots[i] != NULL) {
        i = (i + 1) & (c->cap - 1);
    }
    c->slots[i] = e;
}

/* A new entry for NAME with id ID, or NULL when out of memory (the caller
 * then goes without the cache). */
static struct cached_tag *cache_add(struct vg_repl_fsm *f, const char *name,
                                    size_t len, int64_t id)
{
    struct vg_repl_tag_cache *c = f->tag_cache;
    struct cached_tag *e;

    if (c == NULL) {
        if ((c = calloc(1, sizeof *c)) == NULL ||
            (c->slots = calloc(1024, sizeof *c->slots)) == NULL) {
            free(c);
            return NULL;
        }
        c->cap = 1024;
        randombytes_buf(c->key, sizeof c->key);
        f->tag_cache = c;
    }
    if ((c->n + 1) * 2 > c->cap) {
        struct cached_tag **old = c->slots;
        size_t old_cap = c->cap;
        struct cached_tag **slots = calloc(old_cap * 2, sizeof *slots);
        if (slots == NULL) {
            return NULL;
        }
        c->slots = slots;
        c->cap = old_cap * 2;
        for (size_t i = 0; i < old_cap; i++) {
            if (old[i] != NULL) {
                cache_put_slot(c, old[i]);
            }
        }
        free(old);
    }
    e = malloc(sizeof *e);
    if (e == NULL || (e->name = malloc(len + 1)) == NULL) {
        free(e);
        return NULL;
    }
    memcpy(e->name, name, len);
    e->name[len] = '\0';
    e->len = len;
    e->id = id;
    e->newest = UNKNOWN;
    cache_put_slot(c, e);
    c->n++;
    return e;
}

/* --------------------------------------------------------------- summary */

static int summary_get(struct vg_repl_fsm *f, struct summary *s)
{
    sqlite3_stmt *st = fsm_stmt(f, FSM_STMT_ARCHIVE_SUMMARY_GET,
                                "SELECT samples, hash_sum, watermark_ms"
                                " FROM archive_summary WHERE slot = 0");
    int rc;

    memset(s, 0, sizeof *s);
    if (st == NULL) {
        return VG_EDB;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        s->exists = true;
        s->samples = (uint64_t)sqlite3_column_int64(st, 0);
        s->hash_sum = (uint64_t)sqlite3_column_int64(st, 1);
        s->watermark_ms = (uint64_t)sqlite3_column_int64(st, 2);
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE
               ? VG_OK
               : fsm_db_fail(f, "archive summary");
}

/* Write S as the summary row, creating it if needed. The uint64 sum is
 * stored as the int64 of the same bits. */
static int summary_put(struct vg_repl_fsm *f, const struct summary *s)
{
    sqlite3_stmt *st = fsm_stmt(f, FSM_STMT_ARCHIVE_SUMMARY_PUT,
                                "INSERT OR REPLACE INTO archive_summary(slot,"
                                " samples, hash_sum, watermark_ms)"
                                " VALUES(0, ?, ?, ?)");
    int rc;

    if (st == NULL) {
        return VG_EDB;
    }
    sqlite3_bind_int64(st, 1, (int64_t)s->samples);
    sqlite3_bind_int64(st, 2, (int64_t)s->hash_sum);
    sqlite3_bind_int64(st, 3, (int64_t)s->watermark_ms);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? VG_OK : fsm_db_fail(f, "archive summary update");
}

/* ------------------------------------------------------------ batch apply */

/* Rows to store: the samples not older than WATERMARK, with their tags
 * marked used. */
static int batch_select(struct vg_repl_fsm *f, struct batch *b,
                        uint64_t watermark)
{
    b->rows = malloc(b->n * sizeof *b->rows);
    if (b->rows == NULL) {
        return nomem(f, "a history batch");
    }
    for (size_t i = 0; i < b->n; i++) {
        struct sample s;
        sample_read(b->raw, i, &s);
        if (b->t0 + s.dt < watermark) {
            continue;
        }
        b->rows[b->n_rows++] = (struct batch_row){
            .t = b->t0 + s.dt, .pos = (uint32_t)i, .tag = s.tag};
        b->tags[s.tag].used = true;
    }
    return VG_OK;
}

/* The id of every used tag, new names inserted in the order of the tags
 * array. The cache, then a lookup, spare the insert for names already
 * known, which is nearly every name of nearly every batch. */
static int map_tags(struct vg_repl_fsm *f, struct batch *b)
{
    for (size_t i = 0; i < b->n_tags; i++) {
        struct batch_tag *t = &b->tags[i];
        sqlite3_stmt *st;
        int rc;

        if (!t->used) {
            continue;
        }
        if ((t->cached = cache_find(f->tag_cache, t->name, t->len)) != NULL) {
            t->id = t->cached->id;
            continue;
        }
        st = fsm_stmt(f, FSM_STMT_ARCHIVE_TAG_GET,
                      "SELECT id FROM archive_tags WHERE name = ?");
        if (st == NULL) {
            return VG_EDB;
        }
        sqlite3_bind_text(st, 1, t->name, (int)t->len, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            t->id = sqlite3_column_int64(st, 0);
        }
        sqlite3_reset(st);
        if (rc == SQLITE_DONE) {
            st = fsm_stmt(f, FSM_STMT_ARCHIVE_TAG_ADD,
                          "INSERT INTO archive_tags(name) VALUES(?)");
            if (st == NULL) {
                return VG_EDB;
            }
            sqlite3_bind_text(st, 1, t->name, (int)t->len, SQLITE_STATIC);
            rc = sqlite3_step(st);
            sqlite3_reset(st);
            if (rc != SQLITE_DONE) {
                return fsm_db_fail(f, "archive tag insert");
            }
            t->id = sqlite3_last_insert_rowid(f->db);
        } else if (rc != SQLITE_ROW) {
            return fsm_db_fail(f, "archive tag lookup");
        }
        t->cached = cache_add(f, t->name, t->len, t->id);
    }
    return VG_OK;
}

static int row_cmp(const void *a, const void *b)
{
    const struct batch_row *x = a, *y = b;
    if (x->id != y->id) {
        return x->id < y->id ? -1 : 1;
    }
    if (x->t != y->t) {
        return x->t < y->t ? -1 : 1;
    }
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* B's rows in row_cmp's order, (id, t, pos). They arrive in batch order
 * (pos), and a batch is time-major: each tag's times rise with pos. So a
 * stable counting sort by id alone, RADIX_BITS of the id per pass, gives
 * (id, t, pos) order; the result is checked, and should a tag's times go
 * back within the batch (or an id be negative) qsort sorts instead. qsort
 * of the rows and of the tag names together was 5 % of the nodes' CPU with
 * 25 000 tags archived (perf of records_bench); in archive_apply_bench the
 * row sort went from ~1.8 % to 0.4 %. VG_OK or VG_ENOMEM. */
#define RADIX_BITS 11
static int rows_sort(struct batch *b)
{
    struct batch_row *v = b->rows, *tmp;
    size_t n = b->n_rows;
    int64_t max = 0;
    bool sorted = true;

    for (size_t i = 0; i < n && sorted; i++) {
        sorted = v[i].id >= 0 && (i == 0 || v[i].pos > v[i - 1].pos);
        max = v[i].id > max ? v[i].id : max;
    }
    if (sorted && n > 1) {
        if ((tmp = malloc(n * sizeof *tmp)) == NULL) {
            return VG_ENOMEM;
        }
        for (unsigned shift = 0; shift < 64 && (max >> shift) > 0;
             shift += RADIX_BITS) {
            size_t count[(1u << RADIX_BITS) + 1] = {0};
            struct batch_row *x;
            for (size_t i = 0; i < n; i++) {
                count[(((uint64_t)v[i].id >> shift) & ((1u << RADIX_BITS) - 1)) + 1]++;
            }
            for (size_t d = 1; d <= (1u << RADIX_BITS); d++) {
                count[d] += count[d - 1];
            }
            for (size_t i = 0; i < n; i++) {
                tmp[count[((uint64_t)v[i].id >> shift) & ((1u << RADIX_BITS) - 1)]++] =
                    v[i];
            }
            x = v;
            v = tmp;
            tmp = x;
        }
        if (v != b->rows) {
            memcpy(b->rows, v, n * sizeof *v);
            tmp = v;
        }
        free(tmp);
        for (size_t i = 1; i < n && sorted; i++) {
            sorted = row_cmp(&b->rows[i - 1], &b->rows[i]) < 0;
        }
    }
    if (!sorted) {
        qsort(b->rows, n, sizeof *b->rows, row_cmp);
    }
    return VG_OK;
}

/* What becomes of each sorted row of a batch. */
enum row_fate { FATE_NEW, FATE_LATE, FATE_SKIP };

/* Is (ID, T) settled: in archive_samples or in a chunk? */
static int settled_has(struct vg_repl_fsm *f, int64_t id, uint64_t t, bool *has)
{
    sqlite3_stmt *st = fsm_stmt(f, FSM_STMT_ARCHIVE_EXISTS,
                                "SELECT 1 FROM archive_samples WHERE tag = ?"
                                " AND t = ?");
    int rc;

    if (st == NULL) {
        return VG_EDB;
    }
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, (int64_t)t);
    rc = sqlite3_step(st);
    *has = rc == SQLITE_ROW;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        return fsm_db_fail(f, "archive lookup");
    }
    return *has ? VG_OK : fsm_chunks_has(f, id, t, has);
}

/* Tag ID's newest recent time into *T (-1: none), from the cache's copy of
 * fsm_recent_newest, read once per cache. */
static int recent_newest(struct vg_repl_fsm *f, int64_t id, int64_t *t)
{
    struct vg_repl_tag_cache *c = f->tag_cache;
    struct fsm_recent_rec *v = NULL;
    size_t n = 0, lo = 0, hi;
    int rv = VG_OK;

    if (c != NULL && c->recent_ok) {
        v = c->recent;
        n = c->n_recent;
    } else if ((rv = fsm_recent_newest(f, &v, &n)) != VG_OK) {
        return rv;
    } else if (c != NULL) {
        c->recent = v;
        c->n_recent = n;
        c->recent_ok = true;
    }
    for (hi = n; lo < hi;) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid].id < id) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *t = lo < n && v[lo].id == id ? (int64_t)v[lo].t : -1;
    if (c == NULL || v != c->recent) {
        free(v);
    }
    return VG_OK;
}

/* Tag ID's newest time, settled or recent, into *T (-1 when it has none),
 * or a time not older from its cache entry C (may be NULL). */
static int newest_time(struct vg_repl_fsm *f, struct cached_tag *c, int64_t id,
                       int64_t *t)
{
    sqlite3_stmt *st;
    int64_t recent;
    int rc, rv;

    if (c != NULL && c->newest != UNKNOWN) {
        *t = c->newest;
        return VG_OK;
    }
    st = fsm_stmt(f, FSM_STMT_ARCHIVE_NEWEST,
                  "SELECT max(t) FROM archive_samples WHERE tag = ?");
    if (st == NULL) {
        return VG_EDB;
    }
    sqlite3_bind_int64(st, 1, id);
    rc = sqlite3_step(st);
    *t = rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL
             ? sqlite3_column_int64(st, 0)
             : -1;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW) {
        return fsm_db_fail(f, "archive newest");
    }
    if ((rv = recent_newest(f, id, &recent)) != VG_OK) {
        return rv;
    }
    *t = recent > *t ? recent : *t;
    if ((rv = fsm_chunks_newest(f, id, &recent)) != VG_OK) {
        return rv;
    }
    *t = recent > *t ? recent : *t;
    if (c != NULL) {
        c->newest = *t;
    }
    return VG_OK;
}

/* Decide each row's fate: a later duplicate within the batch is skipped; a
 * row newer than everything its tag holds is new; an older one is new only
 * if neither archive_samples nor a recent row holds its (tag, time). */
static int rows_judge(struct vg_repl_fsm *f, struct batch *b, unsigned char *fate)
{
    struct fsm_recent_rec *late = NULL;
    size_t *late_row = NULL, n_late = 0;
    bool *found = NULL;
    int64_t newest = -1;
    int rv = VG_OK;

    for (size_t i = 0; i < b->n_rows && rv == VG_OK; i++) {
        const struct batch_row *r = &b->rows[i];
        struct cached_tag *c = b->tags[r->tag].cached;
        bool first = i == 0 || r->id != r[-1].id;
        bool has;

        if (first && (rv = newest_time(f, c, r->id, &newest)) != VG_OK) {
            break;
        }
        if (c == NULL && f->tag_cache != NULL) {
            /* Staged without a cache entry: the cached copy of the
             * recent newest times would miss it. */
            f->tag_cache->recent_ok = false;
            free(f->tag_cache->recent);
            f->tag_cache->recent = NULL;
        }
        /* The last row of its tag has the tag's newest time in the batch. */
        if (c != NULL && c->newest != UNKNOWN &&
            (i + 1 == b->n_rows || b->rows[i + 1].id != r->id) &&
            (int64_t)r->t > c->newest) {
            c->newest = (int64_t)r->t;
        }
        if (!first && r->t == r[-1].t) {
            fate[i] = FATE_SKIP;
        } else if ((int64_t)r->t > newest) {
            fate[i] = FATE_NEW;
        } else if ((rv = settled_has(f, r->id, r->t, &has)) == VG_OK) {
            fate[i] = has ? FATE_SKIP : FATE_LATE;
            if (!has) {
                if (late == NULL &&
                    ((late = malloc(b->n_rows * sizeof *late)) == NULL ||
                     (late_row = malloc(b->n_rows * sizeof *late_row)) == NULL)) {
                    rv = nomem(f, "a history batch");
                    break;
                }
                late[n_late] = (struct fsm_recent_rec){.id = r->id, .t = r->t};
                late_row[n_late++] = i;
            }
        }
    }
    if (rv == VG_OK && n_late > 0) {
        if ((found = malloc(n_late * sizeof *found)) == NULL) {
            rv = nomem(f, "a history batch");
        } else if ((rv = fsm_recent_find(f, late, n_late, found)) == VG_OK) {
            for (size_t k = 0; k < n_late; k++) {
                fate[late_row[k]] = found[k] ? FATE_SKIP : FATE_NEW;
            }
        }
    }
    free(late);
    free(late_row);
    free(found);
    return rv;
}

/* Stage the new rows of B (sorted, judged) as one recent row; add them to
 * SUM; how many into *STAGED. */
static int rows_stage(struct vg_repl_fsm *f, struct batch *b,
                      const unsigned char *fate, struct summary *sum,
                      size_t *staged)
{
    struct fsm_recent_rec *recs = malloc(b->n_rows * sizeof *recs);
    size_t n = 0;
    int rv;

    *staged = 0;
    if (recs == NULL) {
        return nomem(f, "a history batch");
    }
    for (size_t i = 0; i < b->n_rows; i++) {
        const struct batch_row *r = &b->rows[i];
        const struct batch_tag *t = &b->tags[r->tag];
        struct sample s;
        if (fate[i] != FATE_NEW) {
            continue;
        }
        sample_read(b->raw, r->pos, &s);
        recs[n++] = (struct fsm_recent_rec){
            .id = r->id, .t = r->t, .value = s.value, .bad = s.bad != 0};
        sum->samples++;
        sum->hash_sum += row_hash(t->name, t->len, r->t, s.value, (int)s.bad);
        if (f->archive_floor.known && r->t < f->archive_floor.t) {
            f->archive_floor.t = r->t;
        }
        if (f->archive_floor_walk.on && r->t < f->archive_floor_walk.left) {
            f->archive_floor_walk.left = r->t;
        }
    }
    rv = fsm_recent_stage(f, recs, n);
    free(recs);
    *staged = n;
    return rv;
}

/* Store a parsed batch B (its samples checked): its new samples become a
 * recent row, and the settling of recent rows takes its next step. */
static int batch_store(struct vg_repl_fsm *f, struct batch *b)
{
    unsigned char *fate = NULL;
    struct summary sum;
    size_t staged = 0;
    uint64_t before;
    int rv;

    if ((rv = summary_get(f, &sum)) != VG_OK ||
        (rv = batch_select(f, b, sum.watermark_ms)) != VG_OK) {
        return rv;
    }
    if (b->n_rows == 0) {
        return VG_OK; /* every sample is older than the watermark */
    }
    before = sum.samples;
    if ((rv = map_tags(f, b)) != VG_OK) {
        return rv;
    }
    for (size_t i = 0; i < b->n_rows; i++) {
        b->rows[i].id = b->tags[b->rows[i].tag].id;
    }
    if (rows_sort(b) != VG_OK || (fate = malloc(b->n_rows)) == NULL) {
        return nomem(f, "a history batch");
    }
    if ((rv = rows_judge(f, b, fate)) == VG_OK) {
        rv = rows_stage(f, b, fate, &sum, &staged);
    }
    free(fate);
    if (rv == VG_OK && sum.samples != before) {
        rv = summary_put(f, &sum);
    }
    return rv == VG_OK ? fsm_recent_settle(f, staged) : rv;
}

int fsm_apply_history_batch(struct vg_repl_fsm *f, uint64_t index,
                            const struct vg_cmd *cmd, json_t *body)
{
    struct batch b = {0};
    int rv;

    (void)index;
    (void)cmd;
    if ((rv = batch_parse(f, body, &b)) == VG_OK) {
        rv = batch_store(f, &b);
    }
    batch_free(&b);
    return rv;
}

int fsm_apply_history_samples(struct vg_repl_fsm *f, uint64_t index,
                              const struct vg_cmd *cmd)
{
    struct batch b = {0};
    int rv;

    (void)index;
    if ((rv = batch_parse_binary(f, cmd, &b)) == VG_OK) {
        rv = batch_store(f, &b);
    }
    batch_free(&b);
    return rv;
}

/* ---------------------------------------------------------- retention cut */

/* A chunked sample a cut drops: out of the summary. */
struct cut_one {
    const char *name;
    size_t len;
    struct summary *sum;
};

static void cut_chunked(void *arg, const struct fsm_recent_rec *r)
{
    struct cut_one *c = arg;
    c->sum->hash_sum -= row_hash(c->name, c->len, r->t, r->value, r->bad);
}

/* Subtract the settled samples of tag ID (named NAME) older than BEFORE
 * from SUM, then delete them: the rows, then the chunks. */
static int cut_tag(struct vg_repl_fsm *f, sqlite3_stmt *sel, sqlite3_stmt *del,
                   int64_t id, const char *name, size_t len, uint64_t before,
                   struct summary *sum, uint64_t *left)
{
    struct cut_one one = {.name = name, .len = len, .sum = sum};
    uint64_t n = 0, chunked = 0;
    int rc, rv;

    if ((rv = fsm_chunks_cut(f, id, before, cut_chunked, &one, &chunked, left)) !=
        VG_OK) {
        return rv;
    }
    sum->samples -= chunked;
    sqlite3_bind_int64(sel, 1, id);
    while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
        uint64_t t = (uint64_t)sqlite3_column_int64(sel, 0);
        if (t >= before) {
            *left = t < *left ? t : *left; /* the oldest row kept */
            break;
        }
        sum->hash_sum -= row_hash(name, len, t, sqlite3_column_double(sel, 1),
                                  sqlite3_column_int(sel, 2));
        n++;
    }
    sqlite3_reset(sel);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        return fsm_db_fail(f, "archive cut select");
    }
    if (n == 0) {
        return VG_OK;
    }
    sqlite3_bind_int64(del, 1, id);
    sqlite3_bind_int64(del, 2, (int64_t)before);
    rc = sqlite3_step(del);
    sqlite3_reset(del);
    if (rc != SQLITE_DONE) {
        return fsm_db_fail(f, "archive cut delete");
    }
    if ((uint64_t)sqlite3_changes(f->db) != n) {
        vg_errf(f->errmsg, "archive cut: selected %llu rows but deleted %d",
                (unsigned long long)n, sqlite3_changes(f->db));
        return VG_EDB;
    }
    sum->samples -= n;
    return VG_OK;
}

/* The tags a cut of archive CLS walks, in id order from id FROM on (see
 * fsm_archive_cut). */
static int cut_tags_prepare(struct vg_repl_fsm *f, const char *cls, int64_t from,
                            sqlite3_stmt **st)
{
    const char *sql =
        cls == NULL ? "SELECT id, name FROM archive_tags WHERE id >= ?1 ORDER BY id"
        : *cls == '\0'
            ? "SELECT t.id, t.name FROM archive_tags t WHERE t.id >= ?1 AND"
              " NOT EXISTS (SELECT 1 FROM archive_classes c WHERE c.name = t.name)"
              " ORDER BY t.id"
            : "SELECT t.id, t.name FROM archive_tags t JOIN archive_classes c"
              " ON c.name = t.name WHERE t.id >= ?1 AND c.archive = ?2"
              " ORDER BY t.id";
    if (sqlite3_prepare_v2(f->db, sql, -1, st, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "prepare archive cut");
    }
    sqlite3_bind_int64(*st, 1, from);
    if (cls != NULL && *cls != '\0') {
        sqlite3_bind_text(*st, 2, cls, -1, SQLITE_STATIC);
    }
    return VG_OK;
}

/* The tags a cut walks, by id (ascending), for the recent rows' part. */
struct cut_tags {
    int64_t *ids;
    char **names;
    size_t n, cap;
    struct summary *sum;
    bool lost; /* a recent sample of a tag not in the list (a broken state) */
};

static int cut_tags_add(struct cut_tags *c, int64_t id, const char *name, size_t len)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        int64_t *ids = realloc(c->ids, cap * sizeof *ids);
        char **names;
        if (ids == NULL) {
            return VG_ENOMEM;
        }
        c->ids = ids;
        if ((names = realloc(c->names, cap * sizeof *names)) == NULL) {
            return VG_ENOMEM;
        }
        c->names = names;
        c->cap = cap;
    }
    if ((c->names[c->n] = malloc(len + 1)) == NULL) {
        return VG_ENOMEM;
    }
    memcpy(c->names[c->n], name, len);
    c->names[c->n][len] = '\0';
    c->ids[c->n++] = id;
    return VG_OK;
}

static void cut_tags_free(struct cut_tags *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->names[i]);
    }
    free(c->ids);
    free(c->names);
}

/* A recent sample the cut drops: out of the summary. */
static void cut_dropped(void *arg, const struct fsm_recent_rec *r)
{
    struct cut_tags *c = arg;
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->ids[mid] < r->id) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo == c->n || c->ids[lo] != r->id) {
        c->lost = true;
        return;
    }
    c->sum->hash_sum -= row_hash(c->names[lo], strlen(c->names[lo]), r->t, r->value,
                                 r->bad);
}

void vg_repl_fsm_archive_cut_step(struct vg_repl_fsm *f, uint32_t tags)
{
    f->archive_cut_step = tags;
}

/* Where a cut of every tag in steps stands for the floor (see
 * archive_floor_walk in replication.h): a step that does not follow the
 * one before of the same cut turns it off. */
static void floor_walk_begin(struct vg_repl_fsm *f, uint64_t before, int64_t from)
{
    if (from == 0) {
        f->archive_floor_walk.on = true;
        f->archive_floor_walk.before = before;
        f->archive_floor_walk.left = UINT64_MAX;
    } else if (f->archive_floor_walk.before != before ||
               f->archive_floor_walk.next != from) {
        f->archive_floor_walk.on = false;
    }
}

int fsm_archive_cut(struct vg_repl_fsm *f, const char *cls, uint64_t before,
                    int64_t from, bool step, int64_t *resume, bool *changed)
{
    sqlite3_stmt *tags = NULL, *sel = NULL, *del = NULL;
    struct cut_tags ct = {0};
    struct summary sum;
    uint64_t samples, dropped = 0, left = UINT64_MAX, recent;
    size_t walked = 0;
    bool skip;
    int rc = SQLITE_DONE;
    int rv;

    *changed = false;
    *resume = -1;
    if ((rv = summary_get(f, &sum)) != VG_OK) {
        return rv;
    }
    /* The watermark rises when a cut of every tag starts; its later steps
     * find it there. */
    if (cls == NULL && from == 0 && before <= sum.watermark_ms) {
        return VG_OK;
    }
    samples = sum.samples;
    ct.sum = &sum;
    /* No sample is that old: every tag's seek would find none. A step
     * still reads which tags it covers, because where the next one starts
     * is replicated state, the same on a replica that knows no floor. */
    skip = f->archive_floor.known && before <= f->archive_floor.t;
    if (skip && !step) {
        goto cut;
    }
    if (cls == NULL && !skip) {
        floor_walk_begin(f, before, from);
    }
    /* One range of the primary key per tag: (tag = ? AND t < ?) is a prefix
     * of (tag, t), where a bare t < ? would scan the whole table. */
    if ((rv = cut_tags_prepare(f, cls, from, &tags)) != VG_OK) {
        goto out;
    }
    if (sqlite3_prepare_v2(f->db,
                           "SELECT t, value, bad FROM archive_samples"
                           " WHERE tag = ? ORDER BY t",
                           -1, &sel, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(f->db,
                           "DELETE FROM archive_samples WHERE tag = ? AND t < ?",
                           -1, &del, NULL) != SQLITE_OK) {
        rv = fsm_db_fail(f, "prepare archive cut");
        goto out;
    }
    while (rv == VG_OK && (rc = sqlite3_step(tags)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(tags, 0);
        const char *name = (const char *)sqlite3_column_text(tags, 1);
        size_t len = (size_t)sqlite3_column_bytes(tags, 1);
        uint64_t tag_left = UINT64_MAX;
        if (step && walked == (f->archive_cut_step != 0 ? f->archive_cut_step
                                                        : FSM_CUT_STEP_TAGS)) {
            *resume = id; /* the next step's first tag */
            break;
        }
        walked++;
        if (skip) {
            continue;
        }
        rv = cut_tag(f, sel, del, id, name, len, before, &sum, &tag_left);
        left = tag_left < left ? tag_left : left;
        if (rv == VG_OK && cut_tags_add(&ct, id, name, len) != VG_OK) {
            rv = nomem(f, "a retention cut");
        }
    }
    if (rv == VG_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        rv = fsm_db_fail(f, "archive cut tags");
    }
    if (skip) {
        goto cut;
    }
    /* The same tags' recent samples (the tags come in id order). The last
     * step of a cut of every tag looks at every id, so that a recent
     * sample of a tag missing from archive_tags is found (ct.lost); the
     * steps before it have no such sample left behind them, because the
     * watermark the first step raised keeps older ones out of the archive. */
    if (rv == VG_OK &&
        (rv = fsm_recent_cut(f, cls == NULL && *resume < 0, ct.ids, ct.n, before,
                             cut_dropped, &ct, &dropped)) == VG_OK) {
        if (ct.lost) {
            vg_errf(f->errmsg, "archive cut: a recent sample of a tag that is not"
                               " archived (%s)", f->path);
            rv = VG_EDB;
        }
        sum.samples -= dropped;
    }
    if (rv == VG_OK && cls == NULL && f->archive_floor_walk.on) {
        uint64_t *seen = &f->archive_floor_walk.left;
        *seen = left < *seen ? left : *seen;
        f->archive_floor_walk.next = *resume;
        if (*resume < 0 && (rv = fsm_recent_oldest(f, &recent)) == VG_OK) {
            /* Every tag was walked: no sample is older than what each
             * kept, and what is staged from now on lowers the floor
             * (rows_stage). */
            f->archive_floor.known = true;
            f->archive_floor.t = recent < *seen ? recent : *seen;
            f->archive_floor_walk.on = false;
        }
    }
cut:
    /* A cut of every tag moves the watermark when it starts (and creates
     * the summary, as it always has); otherwise the summary is written
     * only when the step deleted something, so an archive never used
     * stays out of the digest. */
    if (rv == VG_OK && ((cls == NULL && from == 0) || sum.samples != samples)) {
        if (cls == NULL && before > sum.watermark_ms) {
            sum.watermark_ms = before;
        }
        rv = summary_put(f, &sum);
        *changed = rv == VG_OK;
    }
out:
    if (rv != VG_OK) {
        *resume = -1;
    }
    sqlite3_finalize(tags);
    sqlite3_finalize(sel);
    sqlite3_finalize(del);
    cut_tags_free(&ct);
    return rv;
}

/* ------------------------------------------------------ archive classes */

#define CLASS_TAGS_MAX 262144

struct class_row {
    const char *tag;   /* borrowed from the body */
    const char *cls;
};

static int class_row_cmp(const void *a, const void *b)
{
    return strcmp(((const struct class_row *)a)->tag,
                  ((const struct class_row *)b)->tag);
}

static bool name_ok(json_t *s, size_t min, size_t max)
{
    size_t len = json_string_length(s);
    return json_is_string(s) && len >= min && len <= max &&
           strlen(json_string_value(s)) == len;
}

/* The body's assignment into *ROWS sorted by tag, checked: VG_EINVAL for
 * any malformed part or a tag named twice. */
static int classes_parse(struct vg_repl_fsm *f, json_t *body,
                         struct class_row **rows, size_t *n_rows)
{
    json_t *classes = json_object_get(body, "classes");
    const char *cls;
    json_t *tags;
    size_t n = 0;

    *rows = NULL;
    *n_rows = 0;
    if (!json_is_object(classes) || json_object_size(classes) > FSM_ARCHIVES_MAX) {
        return VG_EINVAL;
    }
    json_object_foreach(classes, cls, tags) {
        size_t len = strlen(cls);
        if (len == 0 || len > FSM_ARCHIVE_NAME_MAX || !json_is_array(tags) ||
            json_array_size(tags) > CLASS_TAGS_MAX - n) {
            return VG_EINVAL;
        }
        n += json_array_size(tags);
    }
    if (n == 0) {
        return VG_OK;
    }
    if ((*rows = malloc(n * sizeof **rows)) == NULL) {
        return nomem(f, "archive classes");
    }
    json_object_foreach(classes, cls, tags) {
        size_t i;
        json_t *tag;
        json_array_foreach(tags, i, tag) {
            if (!name_ok(tag, 1, TAG_MAX)) {
                return VG_EINVAL;
            }
            (*rows)[(*n_rows)++] =
                (struct class_row){.tag = json_string_value(tag), .cls = cls};
        }
    }
    qsort(*rows, n, sizeof **rows, class_row_cmp);
    for (size_t i = 1; i < n; i++) {
        if (strcmp((*rows)[i - 1].tag, (*rows)[i].tag) == 0) {
            return VG_EINVAL;
        }
    }
    return VG_OK;
}

/* Is the stored assignment exactly ROWS (sorted by tag)? */
static int classes_same(struct vg_repl_fsm *f, const struct class_row *rows,
                        size_t n, bool *same)
{
    sqlite3_stmt *st;
    size_t i = 0;
    int rc;

    *same = true;
    if (sqlite3_prepare_v2(f->db,
                           "SELECT name, archive FROM archive_classes ORDER BY name",
                           -1, &st, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "prepare archive classes");
    }
    /* SQLite's default BINARY collation orders like strcmp. */
    while (*same && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *tag = (const char *)sqlite3_column_text(st, 0);
        const char *cls = (const char *)sqlite3_column_text(st, 1);
        *same = i < n && tag != NULL && cls != NULL &&
                strcmp(tag, rows[i].tag) == 0 && strcmp(cls, rows[i].cls) == 0;
        i++;
    }
    if (*same && rc != SQLITE_DONE) {
        sqlite3_finalize(st);
        return fsm_db_fail(f, "archive classes");
    }
    sqlite3_finalize(st);
    *same = *same && i == n;
    return VG_OK;
}

int fsm_apply_archive_classes(struct vg_repl_fsm *f, uint64_t index,
                              const struct vg_cmd *cmd, json_t *body)
{
    struct class_row *rows;
    sqlite3_stmt *ins = NULL;
    size_t n;
    bool same;
    int rv;

    (void)index;
    (void)cmd;
    if ((rv = classes_parse(f, body, &rows, &n)) != VG_OK ||
        (rv = classes_same(f, rows, n, &same)) != VG_OK) {
        goto out;
    }
    if (same) {
        rv = VG_REPL_UNCHANGED;
        goto out;
    }
    if (sqlite3_exec(f->db, "DELETE FROM archive_classes", NULL, NULL, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(f->db,
                           "INSERT INTO archive_classes(name, archive) VALUES(?, ?)",
                           -1, &ins, NULL) != SQLITE_OK) {
        rv = fsm_db_fail(f, "archive classes");
        goto out;
    }
    for (size_t i = 0; i < n && rv == VG_OK; i++) {
        sqlite3_bind_text(ins, 1, rows[i].tag, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 2, rows[i].cls, -1, SQLITE_STATIC);
        if (sqlite3_step(ins) != SQLITE_DONE) {
            rv = fsm_db_fail(f, "archive class insert");
        }
        sqlite3_reset(ins);
    }
out:
    sqlite3_finalize(ins);
    free(rows);
    return rv;
}

int vg_repl_fsm_archive_class_counts(struct vg_repl_fsm *f, json_t **out)
{
    return fsm_query_pairs(f,
                           "SELECT archive, count(*) FROM archive_classes"
                           " GROUP BY archive",
                           "archive class counts", out);
}

int vg_repl_fsm_archive_classes(struct vg_repl_fsm *f, json_t **out)
{
    return fsm_query_pairs(f, "SELECT name, archive FROM archive_classes",
                           "archive classes", out);
}

/* ---------------------------------------------------------------- queries */

/* Arguments every history query shares; a sentence in f->errmsg if bad. */
static int range_check(struct vg_repl_fsm *f, const char *tag, uint64_t from,
                       uint64_t to)
{
    if (tag == NULL) {
        vg_errf(f->errmsg, "a history query needs a tag");
        return VG_EINVAL;
    }
    if (from >= to || to > TIME_END) {
        vg_errf(f->errmsg,
                "history range [%llu, %llu) must not be empty and must end"
                " at or before 2^53",
                (unsigned long long)from, (unsigned long long)to);
        return VG_EINVAL;
    }
    return VG_OK;
}

/* TAG's id into *ID, or 0 when the archive never held that tag. */
static int tag_lookup(struct vg_repl_fsm *f, const char *tag, int64_t *id)
{
    sqlite3_stmt *st;
    int rc;

    *id = 0;
    if (sqlite3_prepare_v2(f->db, "SELECT id FROM archive_tags WHERE name = ?",
                           -1, &st, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "prepare archive tag lookup");
    }
    sqlite3_bind_text(st, 1, tag, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE
               ? VG_OK
               : fsm_db_fail(f, "archive tag lookup");
}

/* [time_ms, value, bad] of R. */
static json_t *sample_json(const struct fsm_recent_rec *r)
{
    json_t *a = json_array();
    json_array_append_new(a, json_integer((json_int_t)r->t));
    json_array_append_new(a, json_real(r->value));
    json_array_append_new(a, json_integer(r->bad ? 1 : 0));
    return a;
}

/* ID's samples in a time range, oldest first: the settled rows (a walk of
 * archive_samples' key) and chunks merged with the recent ones (never the
 * same time: a sample is in one of the three). */
struct cursor {
    sqlite3_stmt *st;
    int rc; /* of the last sqlite3_step */
    struct fsm_chunk_cursor chunks;
    struct fsm_recent_rec *recent;
    size_t n_recent, i_recent;
};

static int range_open(struct vg_repl_fsm *f, int64_t id, uint64_t from,
                      uint64_t to, int64_t limit, sqlite3_stmt **st);

static int cursor_open(struct vg_repl_fsm *f, int64_t id, uint64_t from,
                       uint64_t to, int64_t limit, struct cursor *c)
{
    int rv;

    memset(c, 0, sizeof *c);
    if ((rv = range_open(f, id, from, to, limit, &c->st)) != VG_OK) {
        return rv;
    }
    if ((rv = fsm_recent_range(f, id, from, to, &c->recent, &c->n_recent)) != VG_OK) {
        sqlite3_finalize(c->st);
        c->st = NULL;
        return rv;
    }
    if ((rv = fsm_chunk_cursor_open(f, id, from, to, &c->chunks)) != VG_OK) {
        sqlite3_finalize(c->st);
        free(c->recent);
        memset(c, 0, sizeof *c);
        return rv;
    }
    c->rc = sqlite3_step(c->st);
    return VG_OK;
}

/* The next sample into *R; false at the end or on an error (then c->rc is
 * neither SQLITE_ROW nor SQLITE_DONE). */
static bool cursor_next(struct cursor *c, struct fsm_recent_rec *r)
{
    const struct vg_chunk_sample *ch = fsm_chunk_cursor_head(&c->chunks);
    enum { NONE, ROW, CHUNK_HEAD, RECENT } from = NONE;
    uint64_t t = 0;

    if ((c->rc != SQLITE_ROW && c->rc != SQLITE_DONE) || c->chunks.rv != VG_OK) {
        return false;
    }
    if (c->rc == SQLITE_ROW) {
        t = (uint64_t)sqlite3_column_int64(c->st, 0);
        from = ROW;
    }
    if (ch != NULL && (from == NONE || ch->t < t)) {
        t = ch->t;
        from = CHUNK_HEAD;
    }
    if (c->i_recent < c->n_recent &&
        (from == NONE || c->recent[c->i_recent].t < t)) {
        from = RECENT;
    }
    switch (from) {
    case ROW:
        r->t = t;
        r->value = sqlite3_column_double(c->st, 1);
        r->bad = sqlite3_column_int(c->st, 2) != 0;
        c->rc = sqlite3_step(c->st);
        return true;
    case CHUNK_HEAD:
        *r = (struct fsm_recent_rec){.t = ch->t, .value = ch->value, .bad = ch->bad};
        fsm_chunk_cursor_pop(&c->chunks);
        return true;
    case RECENT:
        *r = c->recent[c->i_recent++];
        return true;
    case NONE:
        break;
    }
    return false;
}

/* Finish C: VG_OK, or fsm_db_fail's VG_EDB when the walk failed. */
static int cursor_close(struct vg_repl_fsm *f, struct cursor *c, const char *what)
{
    int rc = c->rc;
    int rv = fsm_chunk_cursor_close(&c->chunks);
    if (rv == VG_OK && rc != SQLITE_ROW && rc != SQLITE_DONE) {
        rv = fsm_db_fail(f, what);
    }
    sqlite3_finalize(c->st);
    free(c->recent);
    memset(c, 0, sizeof *c);
    return rv;
}

/* The newest sample of ID before FROM into *OUT (JSON null when none). */
static int before_sample(struct vg_repl_fsm *f, int64_t id, uint64_t from,
                         json_t **out)
{
    struct fsm_recent_rec newest = {0}, *recent = NULL;
    bool have = false;
    sqlite3_stmt *st;
    size_t n = 0;
    int rc, rv;

    *out = NULL;
    if (id == 0) {
        *out = json_null();
        return VG_OK;
    }
    if (sqlite3_prepare_v2(f->db,
                           "SELECT t, value, bad FROM archive_samples"
                           " WHERE tag = ? AND t < ? ORDER BY t DESC LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "prepare history before");
    }
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, (int64_t)from);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        newest = (struct fsm_recent_rec){
            .t = (uint64_t)sqlite3_column_int64(st, 0),
            .value = sqlite3_column_double(st, 1),
            .bad = sqlite3_column_int(st, 2) != 0};
        have = true;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        return fsm_db_fail(f, "history before");
    }
    {
        struct fsm_recent_rec chunked;
        bool in_chunk;
        if ((rv = fsm_chunks_before(f, id, from, &in_chunk, &chunked)) != VG_OK) {
            return rv;
        }
        if (in_chunk && (!have || chunked.t > newest.t)) {
            newest = chunked;
            have = true;
        }
    }
    /* A recent sample may be newer (sorted by time: the last one). */
    if (from > 0 && (rv = fsm_recent_range(f, id, 0, from, &recent, &n)) != VG_OK) {
        return rv;
    }
    if (n > 0 && (!have || recent[n - 1].t > newest.t)) {
        newest = recent[n - 1];
        have = true;
    }
    free(recent);
    *out = have ? sample_json(&newest) : json_null();
    return VG_OK;
}

/* Start iterating ID's samples in [FROM, TO) oldest first, at most LIMIT
 * (-1: all). */
static int range_open(struct vg_repl_fsm *f, int64_t id, uint64_t from,
                      uint64_t to, int64_t limit, sqlite3_stmt **st)
{
    if (sqlite3_prepare_v2(f->db,
                           "SELECT t, value, bad FROM archive_samples"
                           " WHERE tag = ? AND t >= ? AND t < ? ORDER BY t"
                           " LIMIT ?",
                           -1, st, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "prepare history range");
    }
    sqlite3_bind_int64(*st, 1, id);
    sqlite3_bind_int64(*st, 2, (int64_t)from);
    sqlite3_bind_int64(*st, 3, (int64_t)to);
    sqlite3_bind_int64(*st, 4, limit);
    return VG_OK;
}

int vg_repl_fsm_history_raw(struct vg_repl_fsm *f, const char *tag,
                            uint64_t from_ms, uint64_t to_ms, size_t limit,
                            json_t **out)
{
    json_t *samples, *before, *next = NULL;
    int64_t id;
    int rv;

    *out = NULL;
    if ((rv = range_check(f, tag, from_ms, to_ms)) != VG_OK) {
        return rv;
    }
    if (limit < 1 || limit > RAW_LIMIT_MAX) {
        vg_errf(f->errmsg, "history limit must be 1..%d", RAW_LIMIT_MAX);
        return VG_EINVAL;
    }
    if ((rv = tag_lookup(f, tag, &id)) != VG_OK) {
        return rv;
    }
    samples = json_array();
    if (id != 0) {
        struct cursor c;
        struct fsm_recent_rec r;
        /* One row more than asked says whether there is more, and where. */
        if ((rv = cursor_open(f, id, from_ms, to_ms, (int64_t)limit + 1, &c)) != VG_OK) {
            json_decref(samples);
            return rv;
        }
        while (next == NULL && cursor_next(&c, &r)) {
            if (json_array_size(samples) == limit) {
                next = json_integer((json_int_t)r.t);
                continue;
            }
            json_array_append_new(samples, sample_json(&r));
        }
        if ((rv = cursor_close(f, &c, "history range")) != VG_OK) {
            json_decref(samples);
            json_decref(next);
            return rv;
        }
    }
    if ((rv = before_sample(f, id, from_ms, &before)) != VG_OK) {
        json_decref(samples);
        json_decref(next);
        return rv;
    }
    *out = json_pack("{s:s, s:I, s:I, s:o, s:b, s:o, s:o}", "tag", tag,
                     "from_ms", (json_int_t)from_ms, "to_ms", (json_int_t)to_ms,
                     "samples", samples, "more", next != NULL, "next_from_ms",
                     next != NULL ? next : json_null(), "before", before);
    return *out != NULL ? VG_OK : VG_ENOMEM;
}

/* One bucket being filled. Only good samples enter the statistics. */
struct bucket {
    uint64_t start;
    uint64_t n, bad;
    double min, max, mean, first, last;
};

static void bucket_add(struct bucket *b, double value, int bad)
{
    if (bad) {
        b->bad++;
        return;
    }
    if (b->n == 0) {
        b->min = b->max = b->first = value;
    }
    b->min = value < b->min ? value : b->min;
    b->max = value > b->max ? value : b->max;
    b->last = value;
    b->n++;
    /* A running mean, in a form that cannot overflow: a sum of values
     * near DBL_MAX would (found by fuzz_fsm). */
    b->mean += value / (double)b->n - b->mean / (double)b->n;
}

static json_t *stat_json(const struct bucket *b, double v)
{
    return b->n > 0 && isfinite(v) ? json_real(v) : json_null();
}

/* [start_ms, n, min, max, avg, first, last, bad]. */
static json_t *bucket_json(const struct bucket *b)
{
    json_t *a = json_array();
    json_array_append_new(a, json_integer((json_int_t)b->start));
    json_array_append_new(a, json_integer((json_int_t)b->n));
    json_array_append_new(a, stat_json(b, b->min));
    json_array_append_new(a, stat_json(b, b->max));
    json_array_append_new(a, stat_json(b, b->mean));
    json_array_append_new(a, stat_json(b, b->first));
    json_array_append_new(a, stat_json(b, b->last));
    json_array_append_new(a, json_integer((json_int_t)b->bad));
    return a;
}

/* ID's samples in [FROM, TO) into LIST, one entry per non-empty bucket of
 * WIDTH ms. The rows arrive in time order, so a bucket is complete when the
 * first row of a later one arrives. */
static int aggregate_rows(struct vg_repl_fsm *f, int64_t id, uint64_t from,
                          uint64_t to, uint64_t width, json_t *list)
{
    struct bucket cur = {0};
    struct fsm_recent_rec r;
    struct cursor c;
    bool open = false;
    int rv;

    if ((rv = cursor_open(f, id, from, to, -1, &c)) != VG_OK) {
        return rv;
    }
    while (cursor_next(&c, &r)) {
        uint64_t t = r.t;
        uint64_t start = from + (t - from) / width * width;
        if (!open || start != cur.start) {
            if (open) {
                json_array_append_new(list, bucket_json(&cur));
            }
            cur = (struct bucket){.start = start};
            open = true;
        }
        bucket_add(&cur, r.value, r.bad);
    }
    if ((rv = cursor_close(f, &c, "history aggregate")) != VG_OK) {
        return rv;
    }
    if (open) {
        json_array_append_new(list, bucket_json(&cur));
    }
    return VG_OK;
}

int vg_repl_fsm_history_aggregate(struct vg_repl_fsm *f, const char *tag,
                                  uint64_t from_ms, uint64_t to_ms,
                                  unsigned buckets, json_t **out)
{
    json_t *list, *before;
    uint64_t width;
    int64_t id;
    int rv;

    *out = NULL;
    if ((rv = range_check(f, tag, from_ms, to_ms)) != VG_OK) {
        return rv;
    }
    if (buckets < 1 || buckets > BUCKETS_MAX) {
        vg_errf(f->errmsg, "history buckets must be 1..%d", BUCKETS_MAX);
        return VG_EINVAL;
    }
    width = (to_ms - from_ms + buckets - 1) / buckets;
    if ((rv = tag_lookup(f, tag, &id)) != VG_OK) {
        return rv;
    }
    list = json_array();
    if (id != 0 &&
        (rv = aggregate_rows(f, id, from_ms, to_ms, width, list)) != VG_OK) {
        json_decref(list);
        return rv;
    }
    if ((rv = before_sample(f, id, from_ms, &before)) != VG_OK) {
        json_decref(list);
        return rv;
    }
    *out = json_pack("{s:s, s:I, s:I, s:I, s:o, s:o}", "tag", tag, "from_ms",
                     (json_int_t)from_ms, "to_ms", (json_int_t)to_ms,
                     "bucket_ms", (json_int_t)width, "buckets", list, "before",
                     before);
    return *out != NULL ? VG_OK : VG_ENOMEM;
}

int vg_repl_fsm_archive_info(struct vg_repl_fsm *f,
                             struct vg_repl_archive_info *out)
{
    /* Per tag, min(t) and max(t) of a (tag, t) prefix are single B-tree
     * seeks; min(t) over the whole table would read every row. A tag with
     * no settled sample may still hold recent ones. */
    static const char sql[] =
        "SELECT a.id,"
        " (SELECT min(t) FROM archive_samples WHERE tag = a.id),"
        " (SELECT max(t) FROM archive_samples WHERE tag = a.id),"
        " (SELECT min(t_first) FROM archive_chunks WHERE tag = a.id),"
        " (SELECT t_last FROM archive_chunks WHERE tag = a.id"
        "  ORDER BY t_first DESC LIMIT 1)"
        " FROM archive_tags a ORDER BY a.id";
    struct summary sum;
    int64_t *unsettled = NULL;
    size_t n_unsettled = 0, cap = 0;
    bool any = false, *held = NULL;
    uint64_t r_old, r_new;
    sqlite3_stmt *st;
    int rc;
    int rv;

    memset(out, 0, sizeof *out);
    if ((rv = summary_get(f, &sum)) != VG_OK) {
        return rv;
    }
    out->samples = sum.samples;
    out->watermark_ms = sum.watermark_ms;
    if (sqlite3_prepare_v2(f->db, sql, -1, &st, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "prepare archive info");
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        bool rows = sqlite3_column_type(st, 1) != SQLITE_NULL;
        bool chunks = sqlite3_column_type(st, 3) != SQLITE_NULL;
        uint64_t lo, hi;
        if (!rows && !chunks) {
            if (n_unsettled == cap) {
                size_t nc = cap ? cap * 2 : 64;
                int64_t *v = realloc(unsettled, nc * sizeof *v);
                if (v == NULL) {
                    break;
                }
                unsettled = v;
                cap = nc;
            }
            unsettled[n_unsettled++] = sqlite3_column_int64(st, 0);
            continue;
        }
        lo = (uint64_t)sqlite3_column_int64(st, rows ? 1 : 3);
        hi = (uint64_t)sqlite3_column_int64(st, rows ? 2 : 4);
        if (rows && chunks) {
            uint64_t c_lo = (uint64_t)sqlite3_column_int64(st, 3);
            uint64_t c_hi = (uint64_t)sqlite3_column_int64(st, 4);
            lo = c_lo < lo ? c_lo : lo;
            hi = c_hi > hi ? c_hi : hi;
        }
        out->oldest_ms = out->tags == 0 || lo < out->oldest_ms ? lo : out->oldest_ms;
        out->newest_ms = hi > out->newest_ms ? hi : out->newest_ms;
        out->tags++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        free(unsettled);
        return rc == SQLITE_ROW ? nomem(f, "archive info")
                                : fsm_db_fail(f, "archive info");
    }
    if ((rv = fsm_recent_bounds(f, &any, &r_old, &r_new)) == VG_OK && any) {
        out->oldest_ms = out->tags == 0 || r_old < out->oldest_ms ? r_old : out->oldest_ms;
        out->newest_ms = r_new > out->newest_ms ? r_new : out->newest_ms;
        if (n_unsettled > 0 && (held = calloc(n_unsettled, sizeof *held)) == NULL) {
            rv = nomem(f, "archive info");
        } else if ((rv = fsm_recent_holds(f, unsettled, n_unsettled, held)) == VG_OK) {
            for (size_t i = 0; i < n_unsettled; i++) {
                out->tags += held[i];
            }
        }
    }
    free(held);
    free(unsettled);
    return rv;
}

/* vg_repl_fsm_archive_each: names by id. */
struct each_ctx {
    struct vg_repl_fsm *f;
    int (*cb)(void *arg, const char *tag, size_t len, uint64_t t_ms, double value,
              bool bad);
    void *arg;
    struct cut_tags tags;
    size_t last; /* the tag found last: samples come in id order */
};

/* The name of tag ID, or NULL (with a sentence in errmsg) when archive_tags
 * has none: a sample of no archived tag is a broken state. */
static const char *each_name(struct each_ctx *e, int64_t id, const char *where)
{
    size_t lo = 0, hi = e->tags.n;

    if (e->last < e->tags.n && e->tags.ids[e->last] == id) {
        return e->tags.names[e->last];
    }
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (e->tags.ids[mid] < id) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo == e->tags.n || e->tags.ids[lo] != id) {
        vg_errf(e->f->errmsg, "%s holds a sample of tag id %lld, which"
                              " archive_tags does not name (%s)",
                where, (long long)id, e->f->path);
        return NULL;
    }
    e->last = lo;
    return e->tags.names[lo];
}

/* R, found in table WHERE, to the caller's callback. */
static int each_emit(struct each_ctx *e, const struct fsm_recent_rec *r,
                     const char *where)
{
    const char *name = each_name(e, r->id, where);

    if (name == NULL) {
        return VG_EDB;
    }
    return e->cb(e->arg, name, strlen(name), r->t, r->value, r->bad);
}

static int each_chunked(void *arg, const struct fsm_recent_rec *r)
{
    return each_emit(arg, r, "archive_chunks");
}

static int each_recent(void *arg, const struct fsm_recent_rec *r)
{
    return each_emit(arg, r, "archive_recent");
}

int vg_repl_fsm_archive_each(struct vg_repl_fsm *f,
                             int (*cb)(void *arg, const char *tag, size_t len,
                                       uint64_t t_ms, double value, bool bad),
                             void *arg)
{
    struct each_ctx e = {.f = f, .cb = cb, .arg = arg};
    sqlite3_stmt *st;
    int rc, rv = VG_OK;

    if (sqlite3_prepare_v2(f->db, "SELECT id, name FROM archive_tags ORDER BY id",
                           -1, &st, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "prepare archive tags");
    }
    while (rv == VG_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (cut_tags_add(&e.tags, sqlite3_column_int64(st, 0),
                         (const char *)sqlite3_column_text(st, 1),
                         (size_t)sqlite3_column_bytes(st, 1)) != VG_OK) {
            rv = nomem(f, "archive tags");
        }
    }
    sqlite3_finalize(st);
    if (rv == VG_OK && rc != SQLITE_DONE) {
        rv = fsm_db_fail(f, "archive tags");
    }
    /* Not a join: a sample whose tag archive_tags lacks must not be left
     * out silently (the self-check counts on seeing every row). */
    if (rv == VG_OK &&
        sqlite3_prepare_v2(f->db, "SELECT tag, t, value, bad FROM archive_samples",
                           -1, &st, NULL) != SQLITE_OK) {
        rv = fsm_db_fail(f, "prepare archive samples");
    } else if (rv == VG_OK) {
        while (rv == VG_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
            const char *name = each_name(&e, sqlite3_column_int64(st, 0),
                                         "archive_samples");
            rv = name == NULL
                     ? VG_EDB
                     : cb(arg, name, strlen(name), (uint64_t)sqlite3_column_int64(st, 1),
                          sqlite3_column_double(st, 2), sqlite3_column_int(st, 3) != 0);
        }
        sqlite3_finalize(st);
        if (rv == VG_OK && rc != SQLITE_DONE) {
            rv = fsm_db_fail(f, "archive samples");
        }
    }
    if (rv == VG_OK) {
        rv = fsm_chunks_each(f, each_chunked, &e);
    }
    if (rv == VG_OK) {
        rv = fsm_recent_each(f, each_recent, &e);
    }
    cut_tags_free(&e.tags);
    return rv;
}

static int recount_cb(void *arg, const char *tag, size_t len, uint64_t t_ms,
                      double value, bool bad)
{
    struct fsm_recount *r = arg;
    r->rows++;
    r->hash_sum += row_hash(tag, len, t_ms, value, bad);
    return VG_OK;
}

int fsm_archive_recount(struct vg_repl_fsm *f, struct fsm_recount *out)
{
    struct summary s;
    int rv;

    memset(out, 0, sizeof *out);
    out->table = "the archive";
    if ((rv = summary_get(f, &s)) != VG_OK) {
        return rv;
    }
    out->want_rows = s.samples;
    out->want_hash_sum = s.hash_sum;
    return vg_repl_fsm_archive_each(f, recount_cb, out);
}
