/* Snapshots of the state machine that do not hold the node's loop.
 *
 * libraft takes a snapshot on the node's loop every --snapshot-threshold
 * entries. Serializing the whole database there held every node's loop for
 * 0.85 s at 153 MB and 2.13 s at 300 MB (archive_apply_bench): several
 * election timeouts in one iteration, a few minutes apart under an archive
 * load. libraft's fsm version 3 splits the work in three:
 *
 *   snapshot()           on the loop: open a read-only connection and begin
 *                        a read transaction on it. Its first read fixes the
 *                        state it sees, the one after the last applied
 *                        command (apply commits every command), which is the
 *                        index libraft records for the snapshot;
 *   snapshot_async()     on a thread of the pool (io->async_work), while the
 *                        loop goes on applying through the writer: serialize
 *                        that state page by page, end the transaction;
 *   snapshot_finalize()  on the loop, once the image is stored or failed:
 *                        free the image and the connection.
 *
 * The image is handed to libraft as SQLite allocated it (finalize frees it),
 * not copied into a second buffer of the same size.
 *
 * The thread touches only the job; everything in struct vg_repl_fsm is the
 * loop's. While the read transaction is open the checkpointer cannot start
 * the WAL over, so the WAL grows for as long as the serialization takes.
 * A database that is not in WAL mode (":memory:" in tests) has no second
 * connection to read from: it is serialized in snapshot(), as before. */
#include <string.h>
#include <time.h>

#include "fsm_internal.h"

#define RETRY_MS 1000u

struct fsm_snapshot_job {
    struct vg_repl_fsm reader; /* reader.db: the pinned read transaction */
    bool pinned;
    uint64_t index;            /* the state the image holds */
    unsigned char *image;      /* sqlite3_malloc'd; the snapshot's data */
    sqlite3_int64 size;
    struct raft_buffer buf;    /* what libraft is handed: the image */
    double loop_ms, pool_ms;
    char errmsg[VG_ERRMSG_SIZE]; /* written by the thread, read at finalize */
};

static double ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 +
           (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* Serialize DB ("main") into the job's image. On the thread for a pinned
 * reader, on the loop for a database without WAL. */
static int serialize(struct fsm_snapshot_job *job, sqlite3 *db, const char *path)
{
    job->image = sqlite3_serialize(db, "main", &job->size, 0);
    if (job->image == NULL || job->size < 100) {
        sqlite3_free(job->image);
        job->image = NULL;
        snprintf(job->errmsg, sizeof job->errmsg,
                 "snapshot: cannot serialize database %s (%s)", path,
                 sqlite3_errmsg(db));
        return RAFT_NOMEM;
    }
    /* The live file is in WAL mode (format bytes 18/19 = 2); an in-memory
     * copy of it can only be opened as a rollback-journal database. */
    job->image[18] = 1;
    job->image[19] = 1;
    job->buf.base = job->image;
    job->buf.len = (size_t)job->size;
    return 0;
}

/* The loop must not wait for the pin: a busy database (a WAL being
 * recovered) fails the snapshot, and libraft tries again at the next
 * apply. Pages are read through a mapping of the file, one copy each
 * instead of a pread and a copy (those still in the WAL are read from it);
 * measured at 153 MB: 607-717 ms against 590-844 ms, within the machine's
 * noise, so kept for the copy it saves rather than for a figure. */
static int snapshot_reader_setup(sqlite3 *db)
{
    sqlite3_busy_timeout(db, 50);
    return sqlite3_exec(db, "PRAGMA mmap_size=1099511627776", NULL, NULL, NULL);
}

static void job_free(struct fsm_snapshot_job *job)
{
    if (job->pinned) {
        vg_repl_fsm_read_end(&job->reader);
    }
    vg_repl_fsm_close(&job->reader);
    sqlite3_free(job->image);
    sqlite3_free(job);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A snapshot() that fails leaves nothing for finalize: libraft calls it only
 * after a successful snapshot(). RAFT_BUSY makes libraft try again at the
 * next apply instead of failing it; until RETRY_MS have passed those tries
 * return at once, so that a lasting failure (no file descriptor left) costs
 * neither an open per apply nor a log line each. */
static int fail_take(struct vg_repl_fsm *f, struct fsm_snapshot_job *job,
                     const char *why)
{
    vg_errf(f->errmsg, "snapshot at index %llu: %s",
            (unsigned long long)f->applied_index, why);
    f->snapshots.failed++;
    f->snapshots.retry_ms = now_ms() + RETRY_MS;
    job_free(job);
    return RAFT_BUSY;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                        unsigned *n_bufs)
{
    struct vg_repl_fsm *f = fsm->data;
    struct fsm_snapshot_job *job;
    struct timespec t0;
    uint64_t seen = 0;

    *bufs = NULL;
    *n_bufs = 0;
    if (f->snapshot_job != NULL) {
        return RAFT_BUSY; /* libraft takes one at a time; never seen */
    }
    if (f->snapshots.retry_ms != 0 && now_ms() < f->snapshots.retry_ms) {
        return RAFT_BUSY;
    }
    job = sqlite3_malloc(sizeof *job);
    if (job == NULL) {
        return RAFT_NOMEM;
    }
    memset(job, 0, sizeof *job);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    job->index = f->applied_index;
    if (f->ckpt == NULL) {
        if (serialize(job, f->db, f->path) != 0) {
            vg_errf(f->errmsg, "%s", job->errmsg);
            f->snapshots.failed++;
            job_free(job);
            return RAFT_NOMEM;
        }
    } else {
        if (vg_repl_fsm_open_reader(&job->reader, f->path) != VG_OK ||
            snapshot_reader_setup(job->reader.db) != SQLITE_OK ||
            vg_repl_fsm_read_begin(&job->reader, &seen) != VG_OK) {
            char why[VG_ERRMSG_SIZE];
            snprintf(why, sizeof why, "%s", job->reader.errmsg);
            return fail_take(f, job, why);
        }
        job->pinned = true;
        fsm_ckpt_loosen(f);
        if (seen != f->applied_index) {
            /* A transaction of the writer left open across commands would
             * make the image hold another index than libraft records. */
            char why[160];
            snprintf(why, sizeof why, "a reader sees index %llu",
                     (unsigned long long)seen);
            return fail_take(f, job, why);
        }
    }
    job->loop_ms = ms_since(&t0);
    f->snapshot_job = job;
    return 0;
}

/* On a thread of the pool: reads only the job, which the loop leaves alone
 * until finalize. */
static int fsm_snapshot_async(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                              unsigned *n_bufs)
{
    struct vg_repl_fsm *f = fsm->data;
    struct fsm_snapshot_job *job = f->snapshot_job;
    struct timespec t0;
    int rv = 0;

    if (job == NULL) {
        return RAFT_NOMEM;
    }
    if (job->image == NULL) {
        clock_gettime(CLOCK_MONOTONIC, &t0);
        rv = serialize(job, job->reader.db, job->reader.path);
        vg_repl_fsm_read_end(&job->reader);
        job->pinned = false;
        job->pool_ms = ms_since(&t0);
    }
    if (rv == 0) {
        *bufs = &job->buf;
        *n_bufs = 1;
    }
    return rv;
}

static int fsm_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                                 unsigned *n_bufs)
{
    struct vg_repl_fsm *f = fsm->data;
    struct fsm_snapshot_job *job = f->snapshot_job;

    *bufs = NULL;
    *n_bufs = 0;
    if (job == NULL) {
        return 0;
    }
    f->snapshot_job = NULL;
    if (job->image != NULL) {
        f->snapshots.taken++;
        f->snapshots.last_index = job->index;
        f->snapshots.last_bytes = (uint64_t)job->size;
        f->snapshots.last_loop_ms = job->loop_ms;
        f->snapshots.last_pool_ms = job->pool_ms;
        if (job->loop_ms > f->snapshots.max_loop_ms) {
            f->snapshots.max_loop_ms = job->loop_ms;
        }
    } else {
        /* The serialization failed, or libraft could not queue it. */
        f->snapshots.failed++;
        vg_errf(f->errmsg, "%s",
                job->errmsg[0] != '\0' ? job->errmsg : "snapshot: not taken");
    }
    job_free(job);
    return 0;
}

void fsm_snapshot_init(struct vg_repl_fsm *f)
{
    f->fsm.version = 3;
    f->fsm.snapshot = fsm_snapshot;
    f->fsm.snapshot_async = fsm_snapshot_async;
    f->fsm.snapshot_finalize = fsm_snapshot_finalize;
}

void fsm_snapshot_drop(struct vg_repl_fsm *f)
{
    if (f->snapshot_job != NULL) {
        job_free(f->snapshot_job);
        f->snapshot_job = NULL;
    }
}

int vg_repl_fsm_snapshot_copy(struct vg_repl_fsm *f, struct raft_buffer *out)
{
    struct raft_buffer *bufs = NULL;
    unsigned n_bufs = 0;
    int rv;

    out->base = NULL;
    out->len = 0;
    rv = f->fsm.snapshot(&f->fsm, &bufs, &n_bufs);
    if (rv != 0) {
        return rv == RAFT_NOMEM ? VG_ENOMEM : VG_EDB;
    }
    rv = f->fsm.snapshot_async(&f->fsm, &bufs, &n_bufs);
    if (rv == 0 && n_bufs == 1) {
        out->base = raft_malloc(bufs[0].len);
        if (out->base != NULL) {
            memcpy(out->base, bufs[0].base, bufs[0].len);
            out->len = bufs[0].len;
        }
    }
    f->fsm.snapshot_finalize(&f->fsm, &bufs, &n_bufs);
    if (rv != 0) {
        return VG_EDB;
    }
    if (out->base == NULL) {
        vg_errf(f->errmsg, "snapshot: out of memory copying the image");
        return VG_ENOMEM;
    }
    return VG_OK;
}
