/* The archive's recent samples: staged by archive.c as one row per history
 * command, settled here into archive_samples in rounds.
 *
 * Why. archive_samples is keyed by (tag, t), so that one tag's range is one
 * walk of the B-tree, which is what trends read. But a history batch holds
 * about one sample of each of thousands of tags, and each goes to the end
 * of its own tag's range: another leaf page per sample. With 20 000 tags a
 * batch of 16 384 samples rewrote some 16 000 pages (64 MB of WAL) and took
 * 0.4 s to apply once the table held a few million rows, on every node and
 * on the node's loop, and the leader lost its followers.
 *
 * So apply first stores a batch as it comes: one archive_recent row whose
 * blob holds the batch's accepted samples sorted by (tag id, t). That
 * writes the blob's own pages and nothing else. Once the recent rows hold
 * ROUND_RECORDS samples or ROUND_ROWS rows, a round begins: it takes every
 * row present then (seq <= upto) and moves their samples into
 * archive_samples, whole tags at a time in id order, one step per history
 * command applied afterwards. A step moves at least STEP_MIN samples and at
 * least twice what that command staged, so the rows drain faster than they
 * fill. A round writes each tag's last page once for all the samples it
 * holds of that tag (about 50 at 20 000 tags), not once per sample. When
 * its last tag is moved, the round's rows are deleted.
 *
 * State. archive_recent(seq, n, t_min, t_max, id_min, id_max, data) and,
 * while a round runs, archive_settle(slot 0, upto, next): the rows with
 * seq <= upto have had the samples of tag ids below next moved. A row's
 * samples are sorted by id, so the ones still recent ("live") are always a
 * suffix of its blob: from the first of id >= next in a row of the round,
 * the whole blob otherwise. The bounds columns describe the whole blob and
 * only serve to skip rows. Everything is decided by the replicated state
 * and constants every replica shares, so every replica splits its archive
 * the same way. Both tables are digested (lazily: empty, they add nothing,
 * and a node that settles a batch at once, as the tests configure it,
 * digests exactly what an older node does).
 *
 * From cluster level 2 on (replication.h, "Apply levels") a history
 * command only stages. Rounds and steps are the same, but each node runs
 * them itself between commands, in slices bounded in time
 * (vg_repl_fsm_archive_settle_some, called by node/settle.c), each slice a
 * transaction of its own; the split is then node-local and leaves the
 * digest. Nothing else reads it: every query and every apply (the checks
 * that a sample is new, the retention cut) sees the union of the rows and
 * archive_samples, which does not depend on the split.
 *
 * From level 3 on a step moves each tag's samples into compressed chunks
 * (archive_chunks.c) instead of one archive_samples row per sample: the
 * same rounds and steps, a fraction of the bytes written.
 *
 * A staged sample differs in (tag, t) from every sample stored or staged
 * (archive.c makes sure before staging), so a move is a plain INSERT: a
 * conflict would be a broken invariant and fails the apply (fatal).
 *
 * A record of the blob: u64 tag id, u64 t, u64 IEEE bits of the value,
 * u8 bad, little-endian: RECENT_REC_SIZE bytes. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fsm_internal.h"

/* A round of 1 Mi samples rather than 512 Ki halves the pages a sample
 * costs once the archive is large: archive_apply_bench --batches 600
 * --batch-samples 16384 --tags 20000 (9.8 M samples), 3 alternating pairs,
 * 412-453k against 248-315k samples/s, 379k against 647k WAL frames
 * checkpointed, longest batch 223-233 against 231-332 ms. In the 3-node
 * cluster on 2 cores (records_bench, 20 000 tags) it made no difference
 * that stands out of the noise: 167k against 173k samples/s committed
 * over 15 s (2 pairs), 119k against 116k over 60 s (1 pair, where both
 * fell behind and dropped samples). 2 Mi, tried once steps read windows
 * and moved tag by tag: archive_apply_bench 767-770k against 647-672k
 * samples/s (2 pairs), but in the cluster 200.4k against 198.6k over 60 s
 * at 25 000 tags (1 pair), and the recent part of a query 2-3 times
 * slower (history_aggregate_loaded_tag 0.79-1.02 against 0.31-0.34 ms):
 * not taken. The recent rows
 * hold a round's samples plus what arrives while it drains (a step moves
 * at least twice what its command staged, so at most half as many again:
 * about 1.5 Mi samples, 38 MB of blobs at 25 bytes a sample; derived, not
 * measured), which history queries search in place
 * (fsm_recent_range) and settle steps read in windows (step_end). Every
 * replica must use the same value: it
 * decides how each splits its archive, which the digest covers. */
#define ROUND_RECORDS 1048576u
#define ROUND_ROWS 128u
#define STEP_MIN 32768u
/* Records a step moves at level 2, where each node settles in slices of
 * its own between commands (vg_repl_fsm_archive_settle_some): the unit
 * within which a slice cannot stop, so small enough to keep a slice near
 * its budget on a busy machine, large enough that finding the step's end
 * in every row of the round is not most of the work. */
#define SLICE_STEP 4096u
/* Records read from each row beyond its share of a step (step_end). */
#define WINDOW_MARGIN 64u
/* From level 2 on the windows are kept from one step to the next (struct
 * vg_repl_settle_cache), and each is read this many times further than the
 * step needs. Reading a blob at an offset walks its overflow chain from
 * the start up to there (SQLite keeps the walk only while the handle stays
 * on the row), so a row read once every few steps instead of twice in each
 * costs a fraction of the walks. */
#define READ_AHEAD 8u

#define REC_SIZE FSM_RECENT_REC_SIZE
#define CHUNK 32
#define ROW_SQL "(?, ?, ?, ?)"

/* One archive_recent row, loaded: its blob (owned) and where its live
 * records begin. */
struct row {
    int64_t seq;
    unsigned char *data;
    size_t n;  /* records in data */
    size_t lo; /* the first live one */
};

struct rows {
    struct row *v;
    size_t n;
};

struct settle {
    bool running;
    int64_t upto;
    int64_t next;
};

static void limits(const struct vg_repl_fsm *f, uint64_t *records,
                   uint64_t *rows, uint64_t *step)
{
    *records = f->archive_settle.round_records ? f->archive_settle.round_records
                                               : ROUND_RECORDS;
    *rows = f->archive_settle.round_rows ? f->archive_settle.round_rows : ROUND_ROWS;
    *step = f->archive_settle.step_min ? f->archive_settle.step_min : STEP_MIN;
}

void vg_repl_fsm_archive_settle_limits(struct vg_repl_fsm *f,
                                       uint32_t round_records,
                                       uint32_t round_rows, uint32_t step_min)
{
    f->archive_settle.round_records = round_records;
    f->archive_settle.round_rows = round_rows;
    f->archive_settle.step_min = step_min;
}

void vg_repl_fsm_archive_settle_window(struct vg_repl_fsm *f, uint32_t margin)
{
    f->archive_settle.window_margin = margin;
}

/* ----------------------------------------------------------------- records */

static int64_t rec_id(const unsigned char *data, size_t i)
{
    return (int64_t)fsm_get_u64(data + i * REC_SIZE);
}

static uint64_t rec_t(const unsigned char *data, size_t i)
{
    return fsm_get_u64(data + i * REC_SIZE + 8);
}

static void rec_get(const unsigned char *data, size_t i, struct fsm_recent_rec *r)
{
    const unsigned char *p = data + i * REC_SIZE;
    uint64_t bits = fsm_get_u64(p + 16);
    r->id = (int64_t)fsm_get_u64(p);
    r->t = fsm_get_u64(p + 8);
    memcpy(&r->value, &bits, sizeof r->value);
    r->bad = p[24] != 0;
}

static void rec_put(unsigned char *p, const struct fsm_recent_rec *r)
{
    uint64_t bits;
    memcpy(&bits, &r->value, sizeof bits);
    fsm_put_u64(p, (uint64_t)r->id);
    fsm_put_u64(p + 8, r->t);
    fsm_put_u64(p + 16, bits);
    p[24] = r->bad ? 1 : 0;
}

/* The first record of DATA (N records sorted by id) whose id is >= ID. */
static size_t lower_id(const unsigned char *data, size_t n, int64_t id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (rec_id(data, mid) < id) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* ------------------------------------------------------------------- state */

static int settle_get(struct vg_repl_fsm *f, struct settle *s)
{
    sqlite3_stmt *st = fsm_stmt(f, FSM_STMT_SETTLE_GET,
                                "SELECT upto, next FROM archive_settle"
                                " WHERE slot = 0");
    int rc;

    memset(s, 0, sizeof *s);
    if (st == NULL) {
        return VG_EDB;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        s->running = true;
        s->upto = sqlite3_column_int64(st, 0);
        s->next = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? VG_OK
                                                 : fsm_db_fail(f, "archive settle state");
}

/* Run SQL with its N_ARGS (1 or 2) parameters bound to A and B. */
static int exec_ints(struct vg_repl_fsm *f, const char *sql, int n_args,
                     int64_t a, int64_t b, const char *what)
{
    sqlite3_stmt *st;
    int rc;

    if (sqlite3_prepare_v2(f->db, sql, -1, &st, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, what);
    }
    sqlite3_bind_int64(st, 1, a);
    if (n_args > 1) {
        sqlite3_bind_int64(st, 2, b);
    }
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? VG_OK : fsm_db_fail(f, what);
}

static int settle_put(struct vg_repl_fsm *f, int64_t upto, int64_t next)
{
    return exec_ints(f,
                     "INSERT OR REPLACE INTO archive_settle(slot, upto, next)"
                     " VALUES(0, ?, ?)",
                     2, upto, next, "archive settle update");
}

/* The round is over: its rows and the state go. */
static int settle_end(struct vg_repl_fsm *f, int64_t upto)
{
    int rv = exec_ints(f, "DELETE FROM archive_recent WHERE seq <= ?", 1, upto, 0,
                       "archive recent delete");
    if (rv != VG_OK) {
        return rv;
    }
    if (sqlite3_exec(f->db, "DELETE FROM archive_settle", NULL, NULL, NULL) !=
        SQLITE_OK) {
        return fsm_db_fail(f, "archive settle end");
    }
    return VG_OK;
}

/* ------------------------------------------------------------------- rows */

static void rows_free(struct rows *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->v[i].data);
    }
    free(r->v);
    r->v = NULL;
    r->n = 0;
}

/* The rows with seq <= UPTO whose bounds admit a record with an id in
 * [ID_LO, ID_HI] and a time in [T_LO, T_HI), oldest first, each with where
 * its live suffix begins. Rows without a live record are left out unless
 * SETTLED_TOO. */
static int rows_load(struct vg_repl_fsm *f, int64_t upto, int64_t id_lo,
                     int64_t id_hi, uint64_t t_lo, uint64_t t_hi, bool settled_too,
                     struct rows *out)
{
    struct settle s;
    sqlite3_stmt *st;
    size_t cap = 0;
    int rc, rv;

    memset(out, 0, sizeof *out);
    if ((rv = settle_get(f, &s)) != VG_OK) {
        return rv;
    }
    if (sqlite3_prepare_v2(f->db,
                           "SELECT seq, data FROM archive_recent WHERE seq <= ?"
                           " AND id_max >= ? AND id_min <= ? AND t_max >= ?"
                           " AND t_min < ? ORDER BY seq",
                           -1, &st, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "prepare archive recent");
    }
    sqlite3_bind_int64(st, 1, upto);
    sqlite3_bind_int64(st, 2, id_lo);
    sqlite3_bind_int64(st, 3, id_hi);
    sqlite3_bind_int64(st, 4, (int64_t)t_lo);
    sqlite3_bind_int64(st, 5, (int64_t)t_hi);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct row r = {.seq = sqlite3_column_int64(st, 0)};
        size_t bytes = (size_t)sqlite3_column_bytes(st, 1);
        const void *blob = sqlite3_column_blob(st, 1);

        if (bytes % REC_SIZE != 0 || (bytes > 0 && blob == NULL)) {
            sqlite3_finalize(st);
            rows_free(out);
            vg_errf(f->errmsg, "archive recent row %lld is %zu bytes, not a"
                               " whole number of samples (%s)",
                    (long long)r.seq, bytes, f->path);
            return VG_EDB;
        }
        r.n = bytes / REC_SIZE;
        if (r.n == 0) {
            continue;
        }
        if ((r.data = malloc(bytes)) == NULL) {
            break;
        }
        memcpy(r.data, blob, bytes);
        r.lo = s.running && r.seq <= s.upto ? lower_id(r.data, r.n, s.next) : 0;
        if (r.lo == r.n && !settled_too) {
            free(r.data);
            continue;
        }
        if (out->n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            struct row *v = realloc(out->v, nc * sizeof *v);
            if (v == NULL) {
                free(r.data);
                break;
            }
            out->v = v;
            cap = nc;
        }
        out->v[out->n++] = r;
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW) {
        rows_free(out);
        vg_errf(f->errmsg, "out of memory reading the archive's recent samples");
        return VG_EDB;
    }
    if (rc != SQLITE_DONE) {
        rows_free(out);
        return fsm_db_fail(f, "archive recent");
    }
    return VG_OK;
}

static int rows_load_all(struct vg_repl_fsm *f, struct rows *out)
{
    return rows_load(f, INT64_MAX, INT64_MIN, INT64_MAX, 0, FSM_TIME_END, false, out);
}

/* ------------------------------------------------------------------- stage */

int fsm_recent_stage(struct vg_repl_fsm *f, const struct fsm_recent_rec *recs,
                     size_t n)
{
    sqlite3_stmt *st;
    unsigned char *data;
    uint64_t t_min = UINT64_MAX, t_max = 0;
    int rc;

    if (n == 0) {
        return VG_OK;
    }
    if ((data = malloc(n * REC_SIZE)) == NULL) {
        vg_errf(f->errmsg, "out of memory staging %zu archive samples", n);
        return VG_EDB;
    }
    for (size_t i = 0; i < n; i++) {
        rec_put(data + i * REC_SIZE, &recs[i]);
        t_min = recs[i].t < t_min ? recs[i].t : t_min;
        t_max = recs[i].t > t_max ? recs[i].t : t_max;
    }
    st = fsm_stmt(f, FSM_STMT_RECENT_ADD,
                  "INSERT INTO archive_recent(n, t_min, t_max, id_min, id_max,"
                  " data) VALUES(?, ?, ?, ?, ?, ?)");
    if (st == NULL) {
        free(data);
        return VG_EDB;
    }
    sqlite3_bind_int64(st, 1, (int64_t)n);
    sqlite3_bind_int64(st, 2, (int64_t)t_min);
    sqlite3_bind_int64(st, 3, (int64_t)t_max);
    sqlite3_bind_int64(st, 4, recs[0].id);
    sqlite3_bind_int64(st, 5, recs[n - 1].id);
    sqlite3_bind_blob(st, 6, data, (int)(n * REC_SIZE), SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    free(data);
    return rc == SQLITE_DONE ? VG_OK : fsm_db_fail(f, "archive recent insert");
}

static int rec_t_cmp(const void *a, const void *b)
{
    const struct fsm_recent_rec *x = a, *y = b;
    return x->t < y->t ? -1 : x->t > y->t;
}

/* Double the room of *V (CAP records, 0 at first). */
static int recs_grow(struct fsm_recent_rec **v, size_t *cap)
{
    size_t nc = *cap ? *cap * 2 : 64;
    struct fsm_recent_rec *nv = realloc(*v, nc * sizeof *nv);
    if (nv == NULL) {
        return VG_ENOMEM;
    }
    *v = nv;
    *cap = nc;
    return VG_OK;
}

/* ------------------------------------------------------------------ settle */

/* Inserts into archive_samples, CHUNK rows to a statement. */
struct mover {
    struct vg_repl_fsm *f;
    sqlite3_stmt *one, *many;
    struct fsm_recent_rec chunk[CHUNK];
    size_t n_chunk;
};

static void bind_rec(sqlite3_stmt *st, int col, const struct fsm_recent_rec *r)
{
    sqlite3_bind_int64(st, col, r->id);
    sqlite3_bind_int64(st, col + 1, (int64_t)r->t);
    sqlite3_bind_double(st, col + 2, r->value);
    sqlite3_bind_int(st, col + 3, r->bad ? 1 : 0);
}

static int step_done(struct mover *m, sqlite3_stmt *st, int rows)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_CONSTRAINT) {
        vg_errf(m->f->errmsg,
                "settling the archive: a recent sample is already stored (%s)",
                m->f->path);
        return VG_EDB;
    }
    if (rc != SQLITE_DONE || sqlite3_changes(m->f->db) != rows) {
        return fsm_db_fail(m->f, "archive settle insert");
    }
    return VG_OK;
}

static int mover_flush(struct mover *m)
{
    size_t n = m->n_chunk;
    m->n_chunk = 0;
    if (n == CHUNK) {
        for (size_t i = 0; i < CHUNK; i++) {
            bind_rec(m->many, (int)(4 * i + 1), &m->chunk[i]);
        }
        return step_done(m, m->many, CHUNK);
    }
    for (size_t i = 0; i < n; i++) {
        int rv;
        bind_rec(m->one, 1, &m->chunk[i]);
        if ((rv = step_done(m, m->one, 1)) != VG_OK) {
            return rv;
        }
    }
    return VG_OK;
}

static int mover_prepare(struct mover *m)
{
    char sql[96 + CHUNK * sizeof ", " ROW_SQL];
    size_t n = (size_t)snprintf(sql, sizeof sql,
                                "INSERT INTO archive_samples(tag, t, value, bad)"
                                " VALUES " ROW_SQL);

    if ((m->one = fsm_stmt(m->f, FSM_STMT_ARCHIVE_ONE, sql)) == NULL) {
        return VG_EDB;
    }
    for (int i = 1; i < CHUNK; i++) {
        n += (size_t)snprintf(sql + n, sizeof sql - n, ", " ROW_SQL);
    }
    m->many = fsm_stmt(m->f, FSM_STMT_ARCHIVE_MANY, sql);
    return m->many != NULL ? VG_OK : VG_EDB;
}

/* A row of the round being settled and the part of it loaded: records
 * [lo, end) of its n, in data (owned), and how far the step has moved. */
struct win {
    int64_t seq, id_max;
    size_t n, lo, end;
    unsigned char *data;
    size_t at; /* in data: the next record to move */
};

/* The round's rows with live records, oldest first, and a blob handle
 * open on one of them. */
struct wins {
    struct vg_repl_fsm *f;
    struct win *v;
    size_t n;
    int64_t id_max; /* the largest id any of them holds */
    uint64_t live;  /* their live records */
    /* All rows of the round, live or not, and their records: what a kept
     * copy is checked against (wins_take). */
    uint64_t rows, records;
    bool ahead; /* read READ_AHEAD times further: kept for the next step */
    sqlite3_blob *blob;
};

/* The windows as the last step of a slice left them, for the round's
 * state (upto, next) it left. A retention cut rewrites rows of the round
 * and a restore replaces them, so both drop it (fsm_settle_cache_free,
 * fsm_caches_free), as does every rollback; a step checks the round's rows
 * and records against it besides (wins_take). */
struct vg_repl_settle_cache {
    int64_t upto, next;
    struct wins w;
};

static void wins_free(struct wins *w)
{
    for (size_t i = 0; i < w->n; i++) {
        free(w->v[i].data);
    }
    free(w->v);
    sqlite3_blob_close(w->blob);
    memset(w, 0, sizeof *w);
}

void fsm_settle_cache_free(struct vg_repl_fsm *f)
{
    if (f->settle_cache != NULL) {
        wins_free(&f->settle_cache->w);
        free(f->settle_cache);
        f->settle_cache = NULL;
    }
}

/* Point *B (opened if NULL) at row SEQ, which must hold N records. */
static int blob_seek(struct vg_repl_fsm *f, sqlite3_blob **b, int64_t seq, size_t n)
{
    int rc = *b == NULL ? sqlite3_blob_open(f->db, "main", "archive_recent", "data",
                                            seq, 0, b)
                        : sqlite3_blob_reopen(*b, seq);
    if (rc != SQLITE_OK) {
        return fsm_db_fail(f, "open an archive recent row");
    }
    if ((size_t)sqlite3_blob_bytes(*b) != n * REC_SIZE) {
        vg_errf(f->errmsg, "archive recent row %lld holds %d bytes, not its"
                           " %zu samples (%s)",
                (long long)seq, sqlite3_blob_bytes(*b), n, f->path);
        return VG_EDB;
    }
    return VG_OK;
}

/* The first record of the blob the handle is on (N records) whose id is
 * >= ID, read where it lies. */
static int blob_lower_id(struct vg_repl_fsm *f, sqlite3_blob *b, size_t n,
                         int64_t id, size_t *out)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        unsigned char p[8];
        if (sqlite3_blob_read(b, p, sizeof p, (int)(mid * REC_SIZE)) != SQLITE_OK) {
            return fsm_db_fail(f, "read an archive recent row");
        }
        if ((int64_t)fsm_get_u64(p) < id) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *out = lo;
    return VG_OK;
}

/* The rows of the round (seq <= UPTO) that still hold live records (ids
 * from NEXT on), each with nothing loaded yet. */
static int wins_open(struct vg_repl_fsm *f, int64_t upto, int64_t next,
                     struct wins *w)
{
    sqlite3_stmt *st;
    size_t cap = 0;
    int rc, rv = VG_OK;

    memset(w, 0, sizeof *w);
    w->f = f;
    w->id_max = INT64_MIN;
    st = fsm_stmt(f, FSM_STMT_SETTLE_ROWS,
                  "SELECT seq, n, id_max FROM archive_recent WHERE seq <= ?"
                  " ORDER BY seq");
    if (st == NULL) {
        return VG_EDB;
    }
    sqlite3_bind_int64(st, 1, upto);
    while (rv == VG_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct win r = {.seq = sqlite3_column_int64(st, 0),
                        .id_max = sqlite3_column_int64(st, 2)};
        int64_t n = sqlite3_column_int64(st, 1);

        if (n < 0 || (uint64_t)n > SIZE_MAX / REC_SIZE) {
            vg_errf(f->errmsg, "archive recent row %lld claims %lld samples (%s)",
                    (long long)r.seq, (long long)n, f->path);
            rv = VG_EDB;
            break;
        }
        w->rows++;
        w->records += (uint64_t)n;
        if (n == 0) {
            continue; /* staging never writes one; nothing to move */
        }
        r.n = (size_t)n;
        if ((rv = blob_seek(f, &w->blob, r.seq, r.n)) != VG_OK ||
            (next != INT64_MIN &&
             (rv = blob_lower_id(f, w->blob, r.n, next, &r.lo)) != VG_OK)) {
            break;
        }
        if (r.lo == r.n) {
            continue;
        }
        r.end = r.lo;
        if (w->n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            struct win *v = realloc(w->v, nc * sizeof *v);
            if (v == NULL) {
                vg_errf(f->errmsg, "out of memory settling the archive");
                rv = VG_EDB;
                break;
            }
            w->v = v;
            cap = nc;
        }
        w->v[w->n++] = r;
        w->live += r.n - r.lo;
        w->id_max = r.id_max > w->id_max ? r.id_max : w->id_max;
    }
    if (rv == VG_OK && rc != SQLITE_DONE) {
        rv = fsm_db_fail(f, "archive recent rows");
    }
    sqlite3_reset(st);
    if (rv != VG_OK) {
        wins_free(w);
    }
    return rv;
}

/* Load row R up to record END (at most its n). */
static int win_extend(struct wins *w, struct win *r, size_t end)
{
    unsigned char *data;

    end = end < r->n ? end : r->n;
    if (end <= r->end) {
        return VG_OK;
    }
    if ((data = realloc(r->data, (end - r->lo) * REC_SIZE)) == NULL) {
        vg_errf(w->f->errmsg, "out of memory settling the archive");
        return VG_EDB;
    }
    r->data = data;
    if (blob_seek(w->f, &w->blob, r->seq, r->n) != VG_OK) {
        return VG_EDB;
    }
    if (sqlite3_blob_read(w->blob, data + (r->end - r->lo) * REC_SIZE,
                          (int)((end - r->end) * REC_SIZE),
                          (int)(r->end * REC_SIZE)) != SQLITE_OK) {
        return fsm_db_fail(w->f, "read an archive recent row");
    }
    r->end = end;
    return VG_OK;
}

/* The rows of the round (seq <= UPTO) and their records, into *ROWS and
 * *RECORDS. */
static int round_size(struct vg_repl_fsm *f, int64_t upto, uint64_t *rows,
                      uint64_t *records)
{
    sqlite3_stmt *st = fsm_stmt(f, FSM_STMT_SETTLE_SIZE,
                                "SELECT count(*), coalesce(sum(n), 0)"
                                " FROM archive_recent WHERE seq <= ?");
    int rc;

    if (st == NULL) {
        return VG_EDB;
    }
    sqlite3_bind_int64(st, 1, upto);
    rc = sqlite3_step(st);
    *rows = (uint64_t)sqlite3_column_int64(st, 0);
    *records = (uint64_t)sqlite3_column_int64(st, 1);
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? VG_OK : fsm_db_fail(f, "archive recent round size");
}

/* The windows of the running round S: the kept ones when they describe S
 * and the round still has the rows and records they were read from, else
 * read anew (wins_open). The cache is emptied either way. */
static int wins_take(struct vg_repl_fsm *f, const struct settle *s, struct wins *w)
{
    struct vg_repl_settle_cache *c = f->settle_cache;
    uint64_t rows, records;
    int rv;

    f->settle_cache = NULL;
    if (c != NULL && c->upto == s->upto && c->next == s->next) {
        if ((rv = round_size(f, s->upto, &rows, &records)) != VG_OK) {
            wins_free(&c->w);
            free(c);
            return rv;
        }
        if (rows == c->w.rows && records == c->w.records) {
            *w = c->w;
            free(c);
            return VG_OK;
        }
    }
    if (c != NULL) {
        wins_free(&c->w);
        free(c);
    }
    return wins_open(f, s->upto, s->next, w);
}

/* Keep W, which a step left at NEXT in the round up to UPTO, for the next
 * step: each row's moved records dropped, its live ones from the first. W
 * is consumed. */
static void wins_keep(struct vg_repl_fsm *f, int64_t upto, int64_t next,
                      struct wins *w)
{
    struct vg_repl_settle_cache *c = malloc(sizeof *c);
    size_t kept = 0;

    sqlite3_blob_close(w->blob); /* a handle left open would pin a read */
    w->blob = NULL;
    if (c == NULL) {
        wins_free(w);
        return; /* the next step reads them again */
    }
    w->live = 0;
    w->id_max = INT64_MIN;
    for (size_t i = 0; i < w->n; i++) {
        struct win r = w->v[i];
        if (r.lo + r.at == r.n) {
            free(r.data);
            continue;
        }
        memmove(r.data, r.data + r.at * REC_SIZE, (r.end - r.lo - r.at) * REC_SIZE);
        r.lo += r.at;
        r.at = 0;
        w->live += r.n - r.lo;
        w->id_max = r.id_max > w->id_max ? r.id_max : w->id_max;
        w->v[kept++] = r;
    }
    w->n = kept;
    c->upto = upto;
    c->next = next;
    c->w = *w;
    memset(w, 0, sizeof *w);
    fsm_settle_cache_free(f);
    f->settle_cache = c;
}

/* Live records with an id below E, counted in the loaded parts. */
static uint64_t count_below(const struct wins *w, int64_t e)
{
    uint64_t c = 0;
    for (size_t i = 0; i < w->n; i++) {
        c += lower_id(w->v[i].data, w->v[i].end - w->v[i].lo, e);
    }
    return c;
}

/* The smallest id E such that at least TARGET live records of the round
 * have ids below it, or INT64_MAX when there are no more than TARGET (or
 * the largest id is INT64_MAX): the step moves the ids below E, whole tags.
 *
 * A step moves a few percent of the round, and loading every row whole
 * for it (25 MB at 1 Mi samples) cost more than the moves: a quarter of a
 * node's CPU under a sustained archive load (perf, records_bench 60 s). So
 * only a window of each row is read, in proportion to the row's share of
 * the live records, with a margin. Ids below the last one loaded of every
 * row cut short are complete in the windows, so the count there is exact;
 * when it does not reach TARGET, the windows double. E is the same as with
 * the rows whole, which the replicas' split of their archive depends on. */
static int step_end(struct wins *w, uint64_t target, int64_t *end)
{
    uint64_t scale = 1, margin = w->f->archive_settle.window_margin
                                     ? w->f->archive_settle.window_margin
                                     : WINDOW_MARGIN;

    *end = INT64_MAX;
    if (w->live <= target || w->id_max == INT64_MAX || margin == UINT32_MAX) {
        for (size_t i = 0; i < w->n; i++) {
            if (win_extend(w, &w->v[i], w->v[i].n) != VG_OK) {
                return VG_EDB;
            }
        }
        if (w->live <= target || w->id_max == INT64_MAX) {
            return VG_OK;
        }
    }
    for (;;) {
        int64_t lo = INT64_MAX, hi = w->id_max + 1;
        bool cut_short = false;

        for (size_t i = 0; i < w->n; i++) {
            struct win *r = &w->v[i];
            uint64_t live = r->n - r->lo;
            uint64_t want = (live * target / w->live + margin) * scale * 5 / 4;
            if (r->end - r->lo < (want < live ? want : live)) {
                want *= w->ahead ? READ_AHEAD : 1;
                if (win_extend(w, r, r->lo + (want < live ? want : live)) != VG_OK) {
                    return VG_EDB;
                }
            }
            lo = rec_id(r->data, 0) < lo ? rec_id(r->data, 0) : lo;
            if (r->end < r->n) {
                int64_t last = rec_id(r->data, r->end - r->lo - 1);
                hi = last < hi ? last : hi;
                cut_short = true;
            }
        }
        /* count_below(lo) is 0 < target; count_below(hi) is exact, and is
         * all of them (>= target) when nothing was cut short. */
        if (!cut_short || count_below(w, hi) >= target) {
            while (hi - lo > 1) {
                int64_t mid = lo + (hi - lo) / 2;
                if (count_below(w, mid) >= target) {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            *end = hi;
            return VG_OK;
        }
        scale *= 2;
    }
}

/* Begin a round into *S unless one runs or none is due (S->running tells). */
static int round_begin(struct vg_repl_fsm *f, uint64_t round_records,
                       uint64_t round_rows, struct settle *s)
{
    sqlite3_stmt *st;
    int rc, rv;

    if ((rv = settle_get(f, s)) != VG_OK || s->running) {
        return rv;
    }
    st = fsm_stmt(f, FSM_STMT_RECENT_STATS,
                  "SELECT count(*), total(n), max(seq) FROM archive_recent");
    if (st == NULL) {
        return VG_EDB;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_int64(st, 0) > 0 &&
        ((uint64_t)sqlite3_column_int64(st, 0) >= round_rows ||
         sqlite3_column_double(st, 1) >= (double)round_records)) {
        s->running = true;
        s->upto = sqlite3_column_int64(st, 2);
        s->next = INT64_MIN;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW) {
        return fsm_db_fail(f, "archive recent stats");
    }
    return s->running ? settle_put(f, s->upto, s->next) : VG_OK;
}

/* One tag's records of a step, gathered from every row of the round. */
struct tag_run {
    struct fsm_recent_rec *v;
    size_t n, cap;
};

/* Move tag ID's records at the windows' positions into chunks
 * (archive_chunks.c), adding how many to *MOVED. Rows are in commit order
 * and a later one may hold an older sample of the tag (a late one), so the
 * run is sorted by time unless it already is. */
static int tag_run_settle(struct vg_repl_fsm *f, struct wins *w, int64_t id,
                          struct tag_run *run, uint64_t *moved)
{
    bool sorted = true;

    run->n = 0;
    for (size_t i = 0; i < w->n; i++) {
        struct win *r = &w->v[i];
        for (; r->at < r->end - r->lo && rec_id(r->data, r->at) == id; r->at++) {
            if (run->n == run->cap &&
                recs_grow(&run->v, &run->cap) != VG_OK) {
                vg_errf(f->errmsg, "out of memory settling the archive");
                return VG_EDB;
            }
            rec_get(r->data, r->at, &run->v[run->n]);
            sorted = sorted && (run->n == 0 || run->v[run->n - 1].t < run->v[run->n].t);
            run->n++;
        }
    }
    if (!sorted) {
        qsort(run->v, run->n, sizeof *run->v, rec_t_cmp);
    }
    *moved += run->n;
    return fsm_chunks_add(f, id, run->v, run->n);
}

/* One step of the running round S: move whole tags, at least TARGET
 * records unless the round ends first, adding how many to *MOVED; ends the
 * round or records how far it got. KEEP: the windows are taken from and
 * left for the next step (struct vg_repl_settle_cache); only where nothing
 * rolls the step back alone (a slice's rollback drops them). */
static int round_step(struct vg_repl_fsm *f, const struct settle *s,
                      uint64_t target, bool chunks, bool keep, uint64_t *moved)
{
    struct mover m = {.f = f};
    struct tag_run run = {0};
    struct wins w;
    int64_t end;
    bool left = false;
    int rv;

    if ((rv = keep ? wins_take(f, s, &w) : wins_open(f, s->upto, s->next, &w)) !=
        VG_OK) {
        return rv;
    }
    w.ahead = keep;
    if ((rv = step_end(&w, target, &end)) == VG_OK && w.n > 0 && !chunks) {
        rv = mover_prepare(&m);
    }
    /* Tag by tag, each tag's records in row order: the inserts for one
     * tag follow each other into its last leaf page. */
    for (;;) {
        int64_t id = end;
        for (size_t i = 0; i < w.n; i++) {
            const struct win *r = &w.v[i];
            if (r->at < r->end - r->lo && rec_id(r->data, r->at) < id) {
                id = rec_id(r->data, r->at);
            }
        }
        if (id == end || rv != VG_OK) {
            break;
        }
        if (chunks) {
            rv = tag_run_settle(f, &w, id, &run, moved);
            continue;
        }
        for (size_t i = 0; i < w.n && rv == VG_OK; i++) {
            struct win *r = &w.v[i];
            for (; r->at < r->end - r->lo && rec_id(r->data, r->at) == id &&
                   rv == VG_OK;
                 r->at++) {
                rec_get(r->data, r->at, &m.chunk[m.n_chunk++]);
                (*moved)++;
                if (m.n_chunk == CHUNK) {
                    rv = mover_flush(&m);
                }
            }
        }
    }
    free(run.v);
    for (size_t i = 0; i < w.n; i++) {
        left = left || w.v[i].lo + w.v[i].at < w.v[i].n;
    }
    if (rv == VG_OK) {
        rv = mover_flush(&m);
    }
    if (rv == VG_OK && left && keep) {
        wins_keep(f, s->upto, end, &w);
    }
    wins_free(&w);
    if (rv != VG_OK) {
        return rv;
    }
    return left ? settle_put(f, s->upto, end) : settle_end(f, s->upto);
}

int fsm_recent_settle(struct vg_repl_fsm *f, size_t staged)
{
    uint64_t round_records, round_rows, step_min, target, moved = 0;
    struct settle s;
    uint32_t level;
    int rv;

    if ((rv = fsm_cluster_level(f, &level)) != VG_OK) {
        return rv;
    }
    if (level >= 2) {
        f->archive_settle.idle = false;
        return VG_OK;
    }
    fsm_settle_cache_free(f); /* none below level 2; a rollback would void it */
    limits(f, &round_records, &round_rows, &step_min);
    if ((rv = round_begin(f, round_records, round_rows, &s)) != VG_OK ||
        !s.running) {
        return rv;
    }
    target = (uint64_t)staged * 2 > step_min ? (uint64_t)staged * 2 : step_min;
    return round_step(f, &s, target, false, false, &moved);
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Outside apply, so nothing else opens, commits or rolls back this
 * transaction. The tag cache needs nothing: moving a sample changes no
 * tag's newest time, and a stale copy of the recent newest times is never
 * below the real one, which is all the cache promises (archive.c). */
int vg_repl_fsm_archive_settle_some(struct vg_repl_fsm *f, uint64_t budget_us,
                                    uint64_t *moved)
{
    uint64_t round_records, round_rows, step_min, done = 0;
    uint64_t start = now_us(), step_start, last_us = 0;
    uint32_t level;
    bool stepped = false;
    int rv;

    if (moved != NULL) {
        *moved = 0;
    }
    if (f->fatal || f->archive_settle.idle) {
        return f->fatal ? VG_EDB : VG_OK;
    }
    if ((rv = fsm_cluster_level(f, &level)) != VG_OK) {
        goto fatal;
    }
    if (level < 2) {
        f->archive_settle.idle = true; /* apply settles; CLUSTER_LEVEL wakes us */
        return VG_OK;
    }
    limits(f, &round_records, &round_rows, &step_min);
    if (f->archive_settle.step_min == 0) {
        step_min = SLICE_STEP;
    }
    if (sqlite3_exec(f->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        rv = fsm_db_fail(f, "archive settle begin");
        goto fatal;
    }
    for (;;) {
        struct settle s;
        if ((rv = round_begin(f, round_records, round_rows, &s)) != VG_OK) {
            break;
        }
        if (!s.running) {
            f->archive_settle.idle = true;
            break;
        }
        /* Stop before a step that would likely overrun the budget. */
        if (stepped && now_us() - start + last_us > budget_us) {
            break;
        }
        step_start = now_us();
        if ((rv = round_step(f, &s, step_min, level >= 3, true, &done)) != VG_OK) {
            break;
        }
        last_us = now_us() - step_start;
        stepped = true;
    }
    if (rv != VG_OK) {
        sqlite3_exec(f->db, "ROLLBACK", NULL, NULL, NULL);
        goto fatal;
    }
    if (sqlite3_exec(f->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        rv = fsm_db_fail(f, "archive settle commit");
        sqlite3_exec(f->db, "ROLLBACK", NULL, NULL, NULL);
        goto fatal;
    }
    if (moved != NULL) {
        *moved = done;
    }
    return VG_OK;

fatal:
    fsm_settle_cache_free(f);
    f->archive_settle.idle = false;
    f->fatal = 1;
    return VG_EDB;
}

int fsm_recent_oldest(struct vg_repl_fsm *f, uint64_t *t)
{
    sqlite3_stmt *st;
    int rc;

    if (sqlite3_prepare_v2(f->db, "SELECT min(t_min) FROM archive_recent", -1, &st,
                           NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "prepare archive recent oldest");
    }
    rc = sqlite3_step(st);
    *t = rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL
             ? (uint64_t)sqlite3_column_int64(st, 0)
             : UINT64_MAX;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? VG_OK : fsm_db_fail(f, "archive recent oldest");
}

int vg_repl_fsm_archive_recent_samples(struct vg_repl_fsm *f, uint64_t *out)
{
    sqlite3_stmt *st = fsm_stmt(f, FSM_STMT_RECENT_STATS,
                                "SELECT count(*), total(n), max(seq) FROM archive_recent");
    int rc;

    *out = 0;
    if (st == NULL) {
        return VG_EDB;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = (uint64_t)sqlite3_column_double(st, 1);
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? VG_OK : fsm_db_fail(f, "archive recent stats");
}

/* ------------------------------------------------------------------ queries */

/* Record I of the blob B into *R. */
static int blob_rec(sqlite3_blob *b, size_t i, struct fsm_recent_rec *r)
{
    unsigned char p[REC_SIZE];
    if (sqlite3_blob_read(b, p, REC_SIZE, (int)(i * REC_SIZE)) != SQLITE_OK) {
        return VG_EDB;
    }
    rec_get(p, 0, r);
    return VG_OK;
}

/* Add R to V (N of CAP), growing it. */
static int recs_push(struct fsm_recent_rec **v, size_t *n, size_t *cap,
                     const struct fsm_recent_rec *r)
{
    if (*n == *cap && recs_grow(v, cap) != VG_OK) {
        return VG_ENOMEM;
    }
    (*v)[(*n)++] = *r;
    return VG_OK;
}

/* A history query wants one tag, and every recent row holds a sample of
 * every tag: loading the rows (rows_load) read the whole recent part, some
 * 13-26 MB, for each query (a 100-bucket aggregation of one tag took 42 ms
 * at 10 M samples). So each row's blob is searched where it lies
 * (sqlite3_blob: a binary search on the ids, then the tag's records). */
int fsm_recent_range(struct vg_repl_fsm *f, int64_t id, uint64_t from,
                     uint64_t to, struct fsm_recent_rec **out, size_t *n_out)
{
    struct fsm_recent_rec *v = NULL;
    size_t n = 0, cap = 0;
    sqlite3_blob *b = NULL;
    sqlite3_stmt *st;
    struct settle s;
    int rc, rv = VG_OK;

    *out = NULL;
    *n_out = 0;
    if ((rv = settle_get(f, &s)) != VG_OK) {
        return rv;
    }
    if (sqlite3_prepare_v2(f->db,
                           "SELECT seq, n FROM archive_recent WHERE id_max >= ?1"
                           " AND id_min <= ?1 AND t_max >= ?2 AND t_min < ?3"
                           " ORDER BY seq",
                           -1, &st, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "prepare archive recent");
    }
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, (int64_t)from);
    sqlite3_bind_int64(st, 3, (int64_t)to);
    while (rv == VG_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64(st, 0);
        int64_t count = sqlite3_column_int64(st, 1);
        size_t lo = 0;
        struct fsm_recent_rec r;

        if (s.running && seq <= s.upto && id < s.next) {
            continue; /* the round moved this tag's samples of the row */
        }
        if (count < 0 || (uint64_t)count > SIZE_MAX / REC_SIZE) {
            vg_errf(f->errmsg, "archive recent row %lld claims %lld samples (%s)",
                    (long long)seq, (long long)count, f->path);
            rv = VG_EDB;
            break;
        }
        if ((rv = blob_seek(f, &b, seq, (size_t)count)) != VG_OK) {
            break;
        }
        if ((rv = blob_lower_id(f, b, (size_t)count, id, &lo)) != VG_OK) {
            break;
        }
        for (; rv == VG_OK && lo < (size_t)count; lo++) {
            if ((rv = blob_rec(b, lo, &r)) != VG_OK || r.id != id) {
                break;
            }
            if (r.t >= from && r.t < to && recs_push(&v, &n, &cap, &r) != VG_OK) {
                rv = VG_ENOMEM;
            }
        }
        if (rv == VG_EDB) {
            rv = fsm_db_fail(f, "read an archive recent row");
        }
    }
    if (rv == VG_OK && rc != SQLITE_DONE) {
        rv = fsm_db_fail(f, "archive recent");
    }
    sqlite3_finalize(st);
    sqlite3_blob_close(b);
    if (rv == VG_ENOMEM) {
        vg_errf(f->errmsg, "out of memory reading recent samples");
    }
    if (rv != VG_OK) {
        free(v);
        return rv;
    }
    if (n > 1) {
        qsort(v, n, sizeof *v, rec_t_cmp);
    }
    *out = v;
    *n_out = n;
    return VG_OK;
}

int fsm_recent_each(struct vg_repl_fsm *f,
                    int (*cb)(void *arg, const struct fsm_recent_rec *r), void *arg)
{
    struct rows r;
    int rv;

    if ((rv = rows_load_all(f, &r)) != VG_OK) {
        return rv;
    }
    for (size_t i = 0; i < r.n && rv == VG_OK; i++) {
        for (size_t k = r.v[i].lo; k < r.v[i].n && rv == VG_OK; k++) {
            struct fsm_recent_rec rec;
            rec_get(r.v[i].data, k, &rec);
            rv = cb(arg, &rec);
        }
    }
    rows_free(&r);
    return rv;
}

static int rec_key_cmp(const void *a, const void *b)
{
    const struct fsm_recent_rec *x = a, *y = b;
    if (x->id != y->id) {
        return x->id < y->id ? -1 : 1;
    }
    return x->t < y->t ? -1 : x->t > y->t;
}

int fsm_recent_newest(struct vg_repl_fsm *f, struct fsm_recent_rec **out,
                      size_t *n_out)
{
    struct fsm_recent_rec *v = NULL;
    size_t n = 0, total = 0, k = 0;
    struct rows r;
    int rv;

    *out = NULL;
    *n_out = 0;
    if ((rv = rows_load_all(f, &r)) != VG_OK) {
        return rv;
    }
    for (size_t i = 0; i < r.n; i++) {
        total += r.v[i].n - r.v[i].lo;
    }
    if (total > 0 && (v = malloc(total * sizeof *v)) == NULL) {
        rows_free(&r);
        vg_errf(f->errmsg, "out of memory reading recent samples");
        return VG_ENOMEM;
    }
    for (size_t i = 0; i < r.n; i++) {
        for (size_t j = r.v[i].lo; j < r.v[i].n; j++) {
            rec_get(r.v[i].data, j, &v[k++]);
        }
    }
    rows_free(&r);
    if (total > 1) {
        qsort(v, total, sizeof *v, rec_key_cmp);
    }
    /* Keep the last (newest) of each id. */
    for (size_t i = 0; i < total; i++) {
        if (i + 1 == total || v[i + 1].id != v[i].id) {
            v[n++] = v[i];
        }
    }
    *out = v;
    *n_out = n;
    return VG_OK;
}

int fsm_recent_find(struct vg_repl_fsm *f, const struct fsm_recent_rec *keys,
                    size_t n, bool *found)
{
    struct rows r;
    int rv;

    memset(found, 0, n * sizeof *found);
    if (n == 0) {
        return VG_OK;
    }
    if ((rv = rows_load(f, INT64_MAX, keys[0].id, keys[n - 1].id, 0, FSM_TIME_END,
                        false, &r)) != VG_OK) {
        return rv;
    }
    for (size_t i = 0; i < r.n; i++) {
        const struct row *w = &r.v[i];
        for (size_t j = 0; j < n; j++) {
            size_t k = lower_id(w->data, w->n, keys[j].id);
            k = k < w->lo ? w->lo : k;
            for (; !found[j] && k < w->n && rec_id(w->data, k) == keys[j].id; k++) {
                found[j] = rec_t(w->data, k) == keys[j].t;
            }
        }
    }
    rows_free(&r);
    return VG_OK;
}

int fsm_recent_holds(struct vg_repl_fsm *f, const int64_t *ids, size_t n,
                     bool *held)
{
    struct rows r;
    int rv;

    if (n == 0) {
        return VG_OK; /* HELD may be NULL then, and memset wants a pointer */
    }
    memset(held, 0, n * sizeof *held);
    if ((rv = rows_load(f, INT64_MAX, ids[0], ids[n - 1], 0, FSM_TIME_END, false,
                        &r)) != VG_OK) {
        return rv;
    }
    for (size_t i = 0; i < r.n; i++) {
        const struct row *w = &r.v[i];
        for (size_t j = 0; j < n; j++) {
            size_t k = lower_id(w->data, w->n, ids[j]);
            k = k < w->lo ? w->lo : k;
            held[j] = held[j] || (k < w->n && rec_id(w->data, k) == ids[j]);
        }
    }
    rows_free(&r);
    return VG_OK;
}

int fsm_recent_bounds(struct vg_repl_fsm *f, bool *any, uint64_t *oldest,
                      uint64_t *newest)
{
    sqlite3_stmt *st;
    int rc;

    *any = false;
    *oldest = *newest = 0;
    if (sqlite3_prepare_v2(f->db,
                           "SELECT count(*), min(t_min), max(t_max)"
                           " FROM archive_recent",
                           -1, &st, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "prepare archive recent bounds");
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_int64(st, 0) > 0) {
        *any = true;
        *oldest = (uint64_t)sqlite3_column_int64(st, 1);
        *newest = (uint64_t)sqlite3_column_int64(st, 2);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? VG_OK : fsm_db_fail(f, "archive recent bounds");
}

/* ---------------------------------------------------------------------- cut */

static bool id_in(const int64_t *ids, size_t n, int64_t id)
{
    size_t lo = 0, hi = n;
    if (ids == NULL) {
        return true;
    }
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ids[mid] < id) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < n && ids[lo] == id;
}

/* Write row W back with the records KEEP[k] says to keep, or delete it when
 * none is left. */
static int row_rewrite(struct vg_repl_fsm *f, const struct row *w, const bool *keep)
{
    unsigned char *data = malloc(w->n * REC_SIZE);
    uint64_t t_min = UINT64_MAX, t_max = 0;
    sqlite3_stmt *st;
    size_t n = 0;
    int rc;

    if (data == NULL) {
        vg_errf(f->errmsg, "out of memory cutting recent samples");
        return VG_EDB;
    }
    for (size_t k = 0; k < w->n; k++) {
        if (keep[k]) {
            uint64_t t = rec_t(w->data, k);
            memcpy(data + n * REC_SIZE, w->data + k * REC_SIZE, REC_SIZE);
            n++;
            t_min = t < t_min ? t : t_min;
            t_max = t > t_max ? t : t_max;
        }
    }
    if (n == 0) {
        free(data);
        return exec_ints(f, "DELETE FROM archive_recent WHERE seq = ?", 1, w->seq,
                         0, "archive recent cut");
    }
    if (sqlite3_prepare_v2(f->db,
                           "UPDATE archive_recent SET n = ?, t_min = ?, t_max = ?,"
                           " id_min = ?, id_max = ?, data = ? WHERE seq = ?",
                           -1, &st, NULL) != SQLITE_OK) {
        free(data);
        return fsm_db_fail(f, "prepare archive recent cut");
    }
    sqlite3_bind_int64(st, 1, (int64_t)n);
    sqlite3_bind_int64(st, 2, (int64_t)t_min);
    sqlite3_bind_int64(st, 3, (int64_t)t_max);
    sqlite3_bind_int64(st, 4, rec_id(data, 0));
    sqlite3_bind_int64(st, 5, rec_id(data, n - 1));
    sqlite3_bind_blob(st, 6, data, (int)(n * REC_SIZE), SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, w->seq);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    free(data);
    return rc == SQLITE_DONE ? VG_OK : fsm_db_fail(f, "archive recent cut");
}

/* Settled records of a round's rows are dropped too (the cut of
 * archive_samples has deleted their copies), so that no row holds a sample
 * older than the cut and the rows' t_min bounds what the archive holds. */
int fsm_recent_cut(struct vg_repl_fsm *f, bool every, const int64_t *ids,
                   size_t n_ids, uint64_t before,
                   void (*dropped)(void *arg, const struct fsm_recent_rec *r),
                   void *arg, uint64_t *n_dropped)
{
    struct rows r;
    bool *keep = NULL;
    int rv;

    *n_dropped = 0;
    fsm_settle_cache_free(f); /* row_rewrite moves records within their rows */
    if (every) {
        ids = NULL; /* id_in: every id */
    } else if (n_ids == 0) {
        return VG_OK;
    }
    if (before == 0) {
        return VG_OK;
    }
    rv = rows_load(f, INT64_MAX, ids != NULL ? ids[0] : INT64_MIN,
                   ids != NULL ? ids[n_ids - 1] : INT64_MAX, 0, before, true, &r);
    if (rv != VG_OK) {
        return rv;
    }
    for (size_t i = 0; i < r.n && rv == VG_OK; i++) {
        const struct row *w = &r.v[i];
        size_t cut = 0;
        bool *k = realloc(keep, w->n * sizeof *k);
        if (k == NULL) {
            vg_errf(f->errmsg, "out of memory cutting recent samples");
            rv = VG_EDB;
            break;
        }
        keep = k;
        for (size_t j = 0; j < w->n; j++) {
            struct fsm_recent_rec rec;
            rec_get(w->data, j, &rec);
            keep[j] = rec.t >= before || !id_in(ids, n_ids, rec.id);
            if (!keep[j]) {
                cut++;
                if (j >= w->lo) {
                    dropped(arg, &rec);
                    (*n_dropped)++;
                }
            }
        }
        if (cut > 0) {
            rv = row_rewrite(f, w, keep);
        }
    }
    free(keep);
    rows_free(&r);
    return rv;
}
