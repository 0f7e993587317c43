/* The archive's settled samples from cluster level 3 on: compressed runs of
 * one tag's samples, one row each (sample_chunk.h has the format and why).
 *
 * State: archive_chunks(tag, t_first, t_last, n, data), key (tag, t_first).
 * A tag's chunks never overlap in time, so the chunk that may hold time t
 * is the one with the largest t_first <= t, one seek of the key, and a
 * range [from, to) is that chunk and those that begin before to.
 *
 * Settling (archive_recent.c) adds each tag's samples of a round as new
 * chunks after the tag's last one. A late sample (older than the tag's
 * newest: a new leader filling a gap) would overlap: the chunks it falls
 * into are read, merged with it and written again. A retention cut deletes
 * the chunks wholly before it and writes the one it splits again.
 *
 * Like archive_samples, the chunks are not digested: archive_summary
 * covers every sample whichever way a replica stores it, and how a node
 * splits its samples into chunks depends on when it settled (level 2's
 * slices are node-local). A node that settled at level 2 keeps those rows
 * in archive_samples: every reader takes the union of archive_samples, the
 * chunks and the live recent records, which hold each sample once.
 *
 * Every chunk read is decoded whole and checked against its columns; one
 * that does not decode, or disagrees, is a damaged replica (VG_EDB with a
 * sentence), which the self-check reports as such. */
#include <stdlib.h>
#include <string.h>

#include "fsm_internal.h"
#include "sample_chunk.h"

#define MAX VG_CHUNK_SAMPLES_MAX

/* Decode the chunk in columns COL.. of ST (t_first, t_last, n, data) of
 * tag ID into OUT (MAX samples); how many into *N. */
static int chunk_read(struct vg_repl_fsm *f, sqlite3_stmt *st, int col, int64_t id,
                      struct vg_chunk_sample *out, size_t *n)
{
    int64_t t_first = sqlite3_column_int64(st, col);
    int64_t t_last = sqlite3_column_int64(st, col + 1);
    int64_t count = sqlite3_column_int64(st, col + 2);
    const unsigned char *data = sqlite3_column_blob(st, col + 3);
    size_t len = (size_t)sqlite3_column_bytes(st, col + 3);
    char why[VG_ERRMSG_SIZE];

    *n = 0;
    if (data == NULL && len > 0) {
        vg_errf(f->errmsg, "out of memory reading an archive chunk");
        return VG_ENOMEM;
    }
    if (vg_chunk_decode(data, len, out, MAX, n, why) != VG_OK) {
        vg_errf(f->errmsg, "archive_chunks row (tag %lld, t_first %lld): %s (%s)",
                (long long)id, (long long)t_first, why, f->path);
        return VG_EDB;
    }
    if ((int64_t)*n != count || (int64_t)out[0].t != t_first ||
        (int64_t)out[*n - 1].t != t_last) {
        vg_errf(f->errmsg,
                "archive_chunks row (tag %lld, t_first %lld) says %lld samples"
                " up to %lld, its data %zu from %llu to %llu (%s)",
                (long long)id, (long long)t_first, (long long)count,
                (long long)t_last, *n, (unsigned long long)out[0].t,
                (unsigned long long)out[*n - 1].t, f->path);
        *n = 0;
        return VG_EDB;
    }
    return VG_OK;
}

/* Write S (N, 1..MAX, sorted, distinct) as one chunk of tag ID. */
static int chunk_put(struct vg_repl_fsm *f, int64_t id,
                     const struct vg_chunk_sample *s, size_t n)
{
    unsigned char buf[1 + 10 + MAX * 19];
    sqlite3_stmt *st;
    size_t len;
    int rc;

    if (vg_chunk_bound(n) > sizeof buf || vg_chunk_encode(s, n, buf, &len) != VG_OK) {
        vg_errf(f->errmsg, "archive chunk of tag %lld: %zu samples not in time"
                           " order (%s)", (long long)id, n, f->path);
        return VG_EDB;
    }
    st = fsm_stmt(f, FSM_STMT_CHUNK_ADD,
                  "INSERT INTO archive_chunks(tag, t_first, t_last, n, data)"
                  " VALUES(?, ?, ?, ?, ?)");
    if (st == NULL) {
        return VG_EDB;
    }
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, (int64_t)s[0].t);
    sqlite3_bind_int64(st, 3, (int64_t)s[n - 1].t);
    sqlite3_bind_int64(st, 4, (int64_t)n);
    sqlite3_bind_blob(st, 5, buf, (int)len, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_CONSTRAINT) {
        vg_errf(f->errmsg, "settling the archive: tag %lld already has a chunk"
                           " from %llu (%s)",
                (long long)id, (unsigned long long)s[0].t, f->path);
        return VG_EDB;
    }
    return rc == SQLITE_DONE ? VG_OK : fsm_db_fail(f, "archive chunk insert");
}

/* Write S (N sorted, distinct) as chunks of at most MAX, of even sizes. */
static int chunks_put(struct vg_repl_fsm *f, int64_t id,
                      const struct vg_chunk_sample *s, size_t n)
{
    size_t parts = (n + MAX - 1) / MAX, done = 0;
    for (size_t p = 0; p < parts; p++) {
        size_t end = n * (p + 1) / parts;
        int rv = chunk_put(f, id, s + done, end - done);
        if (rv != VG_OK) {
            return rv;
        }
        done = end;
    }
    return VG_OK;
}

static int db_step_done(struct vg_repl_fsm *f, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? VG_OK : fsm_db_fail(f, what);
}

/* Delete tag ID's chunks with T_LO <= t_first < T_HI. */
static int chunks_delete(struct vg_repl_fsm *f, int64_t id, uint64_t t_lo,
                         uint64_t t_hi)
{
    sqlite3_stmt *st = fsm_stmt(f, FSM_STMT_CHUNK_DEL,
                                "DELETE FROM archive_chunks WHERE tag = ?"
                                " AND t_first >= ? AND t_first < ?");
    if (st == NULL) {
        return VG_EDB;
    }
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, (int64_t)t_lo);
    sqlite3_bind_int64(st, 3, (int64_t)t_hi);
    return db_step_done(f, st, "archive chunk delete");
}

/* A growable array of samples. */
struct run {
    struct vg_chunk_sample *v;
    size_t n, cap;
};

static int run_reserve(struct vg_repl_fsm *f, struct run *r, size_t more)
{
    if (r->n + more > r->cap) {
        size_t cap = r->cap ? r->cap : 1024;
        struct vg_chunk_sample *v;
        while (cap < r->n + more) {
            cap *= 2;
        }
        if ((v = realloc(r->v, cap * sizeof *v)) == NULL) {
            vg_errf(f->errmsg, "out of memory settling the archive");
            return VG_ENOMEM;
        }
        r->v = v;
        r->cap = cap;
    }
    return VG_OK;
}

/* The late path of fsm_chunks_add: merge RECS (N, sorted) with the chunks
 * of tag ID that overlap their span and write the result as chunks again.
 * Late samples come from leaders whose batches crossed at a failover, a
 * few seconds older than the newest: a chunk or two. A span reaching far
 * back would rewrite every chunk within it (correct, not fast). */
static int chunks_merge(struct vg_repl_fsm *f, int64_t id,
                        const struct fsm_recent_rec *recs, size_t n)
{
    struct run old = {0}, out = {0};
    struct vg_chunk_sample buf[MAX];
    uint64_t lo = UINT64_MAX, hi = 0;
    sqlite3_stmt *st;
    size_t i = 0, j = 0, k;
    int rc, rv = VG_OK;

    /* The chunks that overlap [recs[0].t, recs[n-1].t]: the one that may
     * hold recs[0] and those beginning up to recs[n-1]. */
    if (sqlite3_prepare_v2(f->db,
                           "SELECT t_first, t_last, n, data FROM archive_chunks"
                           " WHERE tag = ?1 AND t_first <= ?3 AND t_first >="
                           " coalesce((SELECT t_first FROM archive_chunks"
                           " WHERE tag = ?1 AND t_first <= ?2"
                           " ORDER BY t_first DESC LIMIT 1), ?2)"
                           " ORDER BY t_first",
                           -1, &st, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "prepare archive chunk merge");
    }
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, (int64_t)recs[0].t);
    sqlite3_bind_int64(st, 3, (int64_t)recs[n - 1].t);
    while (rv == VG_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((uint64_t)sqlite3_column_int64(st, 1) < recs[0].t) {
            continue; /* ends before the new samples: stays as it is */
        }
        if ((rv = chunk_read(f, st, 0, id, buf, &k)) == VG_OK &&
            (rv = run_reserve(f, &old, k)) == VG_OK) {
            memcpy(old.v + old.n, buf, k * sizeof *buf);
            old.n += k;
            lo = buf[0].t < lo ? buf[0].t : lo;
            hi = buf[0].t > hi ? buf[0].t : hi;
        }
    }
    if (rv == VG_OK && rc != SQLITE_DONE) {
        rv = fsm_db_fail(f, "archive chunk merge");
    }
    sqlite3_finalize(st);
    if (rv == VG_OK) {
        rv = run_reserve(f, &out, old.n + n);
    }
    while (rv == VG_OK && (i < old.n || j < n)) {
        if (j == n || (i < old.n && old.v[i].t < recs[j].t)) {
            out.v[out.n++] = old.v[i++];
        } else if (i < old.n && old.v[i].t == recs[j].t) {
            vg_errf(f->errmsg, "settling the archive: tag %lld already has a"
                               " sample at %llu (%s)",
                    (long long)id, (unsigned long long)recs[j].t, f->path);
            rv = VG_EDB;
        } else {
            out.v[out.n++] = (struct vg_chunk_sample){
                .t = recs[j].t, .value = recs[j].value, .bad = recs[j].bad};
            j++;
        }
    }
    if (rv == VG_OK && old.n > 0) {
        rv = chunks_delete(f, id, lo, hi + 1);
    }
    if (rv == VG_OK) {
        rv = chunks_put(f, id, out.v, out.n);
    }
    free(old.v);
    free(out.v);
    return rv;
}

int fsm_chunks_newest(struct vg_repl_fsm *f, int64_t id, int64_t *t)
{
    sqlite3_stmt *st = fsm_stmt(f, FSM_STMT_CHUNK_NEWEST,
                                "SELECT t_last FROM archive_chunks WHERE tag = ?"
                                " ORDER BY t_first DESC LIMIT 1");
    int rc;

    *t = -1;
    if (st == NULL) {
        return VG_EDB;
    }
    sqlite3_bind_int64(st, 1, id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *t = sqlite3_column_int64(st, 0);
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? VG_OK
                                                 : fsm_db_fail(f, "archive chunk newest");
}

int fsm_chunks_add(struct vg_repl_fsm *f, int64_t id, const struct fsm_recent_rec *recs,
                   size_t n)
{
    struct run r = {0};
    int64_t newest;
    int rv;

    if (n == 0) {
        return VG_OK;
    }
    if ((rv = fsm_chunks_newest(f, id, &newest)) != VG_OK) {
        return rv;
    }
    if (newest >= 0 && (uint64_t)newest >= recs[0].t) {
        f->archive_settle.chunk_merges++;
        return chunks_merge(f, id, recs, n);
    }
    if ((rv = run_reserve(f, &r, n)) != VG_OK) {
        return rv;
    }
    for (size_t i = 0; i < n; i++) {
        r.v[i] = (struct vg_chunk_sample){
            .t = recs[i].t, .value = recs[i].value, .bad = recs[i].bad};
    }
    rv = chunks_put(f, id, r.v, n);
    free(r.v);
    return rv;
}

/* The chunk of tag ID with the largest t_first <= T (LE) or < T (not LE),
 * decoded into OUT (MAX); *N 0 when there is none. */
static int chunk_at(struct vg_repl_fsm *f, int64_t id, uint64_t t, bool le,
                    struct vg_chunk_sample *out, size_t *n)
{
    sqlite3_stmt *st = le ? fsm_stmt(f, FSM_STMT_CHUNK_AT,
                                     "SELECT t_first, t_last, n, data FROM"
                                     " archive_chunks WHERE tag = ? AND t_first <= ?"
                                     " ORDER BY t_first DESC LIMIT 1")
                          : fsm_stmt(f, FSM_STMT_CHUNK_BEFORE,
                                     "SELECT t_first, t_last, n, data FROM"
                                     " archive_chunks WHERE tag = ? AND t_first < ?"
                                     " ORDER BY t_first DESC LIMIT 1");
    int rc, rv = VG_OK;

    *n = 0;
    if (st == NULL) {
        return VG_EDB;
    }
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, (int64_t)t);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        rv = chunk_read(f, st, 0, id, out, n);
    } else if (rc != SQLITE_DONE) {
        rv = fsm_db_fail(f, "archive chunk lookup");
    }
    sqlite3_reset(st);
    return rv;
}

int fsm_chunks_has(struct vg_repl_fsm *f, int64_t id, uint64_t t, bool *has)
{
    struct vg_chunk_sample buf[MAX];
    size_t n, lo = 0, hi;
    int rv;

    *has = false;
    if ((rv = chunk_at(f, id, t, true, buf, &n)) != VG_OK || n == 0 ||
        buf[n - 1].t < t) {
        return rv;
    }
    for (hi = n; lo < hi;) {
        size_t mid = lo + (hi - lo) / 2;
        if (buf[mid].t < t) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *has = lo < n && buf[lo].t == t;
    return VG_OK;
}

int fsm_chunks_before(struct vg_repl_fsm *f, int64_t id, uint64_t t, bool *have,
                      struct fsm_recent_rec *out)
{
    struct vg_chunk_sample buf[MAX];
    size_t n;
    int rv;

    *have = false;
    if ((rv = chunk_at(f, id, t, false, buf, &n)) != VG_OK) {
        return rv;
    }
    /* It begins before T, so its last sample before T exists. */
    while (n > 0 && buf[n - 1].t >= t) {
        n--;
    }
    if (n > 0) {
        *out = (struct fsm_recent_rec){
            .id = id, .t = buf[n - 1].t, .value = buf[n - 1].value, .bad = buf[n - 1].bad};
        *have = true;
    }
    return VG_OK;
}

/* ------------------------------------------------------------------ cursor */

/* Load chunks until one holds a sample in range at c->i, or the end. */
static void cursor_fill(struct fsm_chunk_cursor *c)
{
    while (c->rv == VG_OK && c->i == c->n && !c->done) {
        int rc = sqlite3_step(c->st);
        if (rc == SQLITE_DONE) {
            c->done = true;
            break;
        }
        if (rc != SQLITE_ROW) {
            c->rv = fsm_db_fail(c->f, "archive chunks");
            break;
        }
        c->i = 0;
        if ((c->rv = chunk_read(c->f, c->st, 0, c->id, c->buf, &c->n)) != VG_OK) {
            c->n = 0;
            break;
        }
        while (c->i < c->n && c->buf[c->i].t < c->from) {
            c->i++;
        }
    }
    if (c->i < c->n && c->buf[c->i].t >= c->to) {
        c->i = c->n;
        c->done = true;
    }
}

int fsm_chunk_cursor_open(struct vg_repl_fsm *f, int64_t id, uint64_t from,
                          uint64_t to, struct fsm_chunk_cursor *c)
{
    memset(c, 0, sizeof *c);
    c->f = f;
    c->id = id;
    c->from = from;
    c->to = to;
    if ((c->buf = malloc(MAX * sizeof *c->buf)) == NULL) {
        vg_errf(f->errmsg, "out of memory reading archive chunks");
        return VG_ENOMEM;
    }
    if (sqlite3_prepare_v2(f->db,
                           "SELECT t_first, t_last, n, data FROM archive_chunks"
                           " WHERE tag = ?1 AND t_first < ?3 AND t_first >="
                           " coalesce((SELECT t_first FROM archive_chunks"
                           " WHERE tag = ?1 AND t_first <= ?2"
                           " ORDER BY t_first DESC LIMIT 1), 0)"
                           " ORDER BY t_first",
                           -1, &c->st, NULL) != SQLITE_OK) {
        free(c->buf);
        c->buf = NULL;
        return fsm_db_fail(f, "prepare archive chunks");
    }
    sqlite3_bind_int64(c->st, 1, id);
    sqlite3_bind_int64(c->st, 2, (int64_t)from);
    sqlite3_bind_int64(c->st, 3, (int64_t)to);
    cursor_fill(c);
    return VG_OK;
}

const struct vg_chunk_sample *fsm_chunk_cursor_head(const struct fsm_chunk_cursor *c)
{
    return c->i < c->n ? &c->buf[c->i] : NULL;
}

void fsm_chunk_cursor_pop(struct fsm_chunk_cursor *c)
{
    if (c->i < c->n) {
        c->i++;
        cursor_fill(c);
    }
}

int fsm_chunk_cursor_close(struct fsm_chunk_cursor *c)
{
    int rv = c->rv;
    sqlite3_finalize(c->st);
    free(c->buf);
    memset(c, 0, sizeof *c);
    return rv;
}

/* --------------------------------------------------------------------- cut */

int fsm_chunks_cut(struct vg_repl_fsm *f, int64_t id, uint64_t before,
                   void (*dropped)(void *arg, const struct fsm_recent_rec *r),
                   void *arg, uint64_t *n_dropped, uint64_t *left)
{
    struct vg_chunk_sample *buf = NULL, *keep = NULL;
    size_t n_keep = 0, n;
    sqlite3_stmt *st;
    bool any = false;
    int rc, rv = VG_OK;

    *n_dropped = 0;
    *left = 0;
    if (before == 0) {
        return VG_OK;
    }
    *left = UINT64_MAX;
    /* Up to the first chunk that begins at or after the cut, which is
     * kept whole: its t_first is the oldest time left (fsm_archive_cut). */
    st = fsm_stmt(f, FSM_STMT_CHUNK_CUT,
                  "SELECT t_first, t_last, n, data FROM archive_chunks"
                  " WHERE tag = ? ORDER BY t_first");
    if (st == NULL) {
        return VG_EDB;
    }
    sqlite3_bind_int64(st, 1, id);
    while (rv == VG_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((uint64_t)sqlite3_column_int64(st, 0) >= before) {
            *left = n_keep > 0 ? keep[0].t : (uint64_t)sqlite3_column_int64(st, 0);
            break;
        }
        if (n_keep > 0) {
            /* A chunk after one that reaches past the cut: they overlap. */
            vg_errf(f->errmsg, "archive chunks of tag %lld overlap at %llu (%s)",
                    (long long)id, (unsigned long long)keep[0].t, f->path);
            rv = VG_EDB;
            break;
        }
        if (!any && ((buf = malloc(MAX * sizeof *buf)) == NULL ||
                     (keep = malloc(MAX * sizeof *keep)) == NULL)) {
            vg_errf(f->errmsg, "out of memory cutting archive chunks");
            rv = VG_ENOMEM;
            break;
        }
        any = true;
        if ((rv = chunk_read(f, st, 0, id, buf, &n)) != VG_OK) {
            break;
        }
        for (size_t i = 0; i < n; i++) {
            if (buf[i].t < before) {
                struct fsm_recent_rec r = {
                    .id = id, .t = buf[i].t, .value = buf[i].value, .bad = buf[i].bad};
                dropped(arg, &r);
                (*n_dropped)++;
            } else {
                /* Only the last chunk can straddle the cut. */
                keep[n_keep++] = buf[i];
            }
        }
    }
    if (rv == VG_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        rv = fsm_db_fail(f, "archive chunk cut");
    }
    sqlite3_reset(st);
    if (rv == VG_OK && n_keep > 0 && *left == UINT64_MAX) {
        *left = keep[0].t; /* the split chunk was the tag's last */
    }
    if (rv == VG_OK && any) {
        rv = chunks_delete(f, id, 0, before);
    }
    if (rv == VG_OK && n_keep > 0) {
        rv = chunk_put(f, id, keep, n_keep);
    }
    free(buf);
    free(keep);
    return rv;
}

/* -------------------------------------------------------------------- each */

int fsm_chunks_each(struct vg_repl_fsm *f,
                    int (*cb)(void *arg, const struct fsm_recent_rec *r), void *arg)
{
    struct vg_chunk_sample *buf = malloc(MAX * sizeof *buf);
    sqlite3_stmt *st;
    size_t n;
    int rc = SQLITE_DONE, rv = VG_OK;

    if (buf == NULL) {
        vg_errf(f->errmsg, "out of memory reading archive chunks");
        return VG_ENOMEM;
    }
    if (sqlite3_prepare_v2(f->db,
                           "SELECT tag, t_first, t_last, n, data FROM archive_chunks",
                           -1, &st, NULL) != SQLITE_OK) {
        free(buf);
        return fsm_db_fail(f, "prepare archive chunks");
    }
    while (rv == VG_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        if ((rv = chunk_read(f, st, 1, id, buf, &n)) != VG_OK) {
            break;
        }
        for (size_t i = 0; i < n && rv == VG_OK; i++) {
            struct fsm_recent_rec r = {
                .id = id, .t = buf[i].t, .value = buf[i].value, .bad = buf[i].bad};
            rv = cb(arg, &r);
        }
    }
    if (rv == VG_OK && rc != SQLITE_DONE) {
        rv = fsm_db_fail(f, "archive chunks");
    }
    sqlite3_finalize(st);
    free(buf);
    return rv;
}
