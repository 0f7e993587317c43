/* Checkpoints of the state machine's WAL on a thread of their own.
 *
 * SQLite's automatic checkpoint runs inside the COMMIT that pushes the WAL
 * past 1000 pages, on the connection that commits: here, apply, on the
 * node's loop thread. It copies those pages into the database file and
 * fsyncs it, which was a tenth of a follower's apply time during an
 * acknowledgment storm, and an fsync of a busy disk can stall the loop (and
 * with it raft's heartbeats) for far longer. So the automatic checkpoint is
 * replaced by a WAL hook that only signals this thread, which checkpoints
 * through its own connection in PASSIVE mode: it never blocks the writer,
 * and a writer that finds the WAL wholly checkpointed starts it over.
 *
 * But a writer that never pauses for as long as the thread's checkpoint
 * takes (apply under a steady archive load) never finds the WAL wholly
 * checkpointed, so the WAL never starts over: it grew to hundreds of MB,
 * every read of a page not cached searched a WAL index that large, and
 * applying a batch took three times as long. Most of those writes are the
 * node's settling of the archive (node/settle.c), which is background
 * work: once the WAL holds RESTART_PAGES pages it waits
 * (VG_SETTLE_WAL_WAIT_PAGES), so that between two commands the thread
 * copies the rest and the next commit starts the WAL over. Should the
 * writer still not pause (commands back to back), then once the WAL holds
 * WRITER_TAIL_PAGES pages and the thread, idle, has left at most TAIL_PAGES
 * of them unchecked, the hook checkpoints that tail itself (a few MB copied
 * and synced), and the next commit starts the WAL over. That tail used to
 * come at RESTART_PAGES, once per 16 MB written: its two fdatasyncs, on the
 * loop thread, waited up to 316 ms for a busy disk (status
 * wal.writer_max_ms; a sched_switch profile of the loop threads under a
 * 25 000-tag archive load found them, with the WAL header's sync when the
 * WAL starts over, behind the loop's blocked time). The header's sync
 * stays on the writer: SQLite needs it before frames overwrite the old
 * ones. Should the thread fall far behind (the WAL past HARD_LIMIT pages),
 * the hook checkpoints on the writer's connection as SQLite would have, so
 * the WAL stays bounded whatever happens to the thread (a looser bound while
 * a snapshot is serialized, see SNAPSHOT_HARD_LIMIT). Restoring a snapshot
 * (a backup into the database) pauses the thread: fsm_ckpt_pause waits for
 * a checkpoint in progress and holds the next one back.
 *
 * The thread's connection must have read the database once before it can
 * checkpoint: until then its pager has not opened the WAL, and SQLite
 * 3.40 (Debian 12) answers a checkpoint there with SQLITE_OK and -1 frames,
 * having done nothing. That went unnoticed for a while (the hard limit kept
 * the WAL bounded, on the loop); so the connection reads at start, a -1
 * answer makes it read again, and the counters report the frames the
 * thread really copied. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fsm_internal.h"

/* SQLite's own threshold for its automatic checkpoint. */
#define SOFT_LIMIT 1000
/* Where settling waits for the WAL to start over
 * (VG_SETTLE_WAL_WAIT_PAGES in node/settle_policy.h, the same number). */
#define RESTART_PAGES 4096
/* Where the writer checkpoints the thread's last TAIL_PAGES itself. */
#define WRITER_TAIL_PAGES (2 * RESTART_PAGES)
#define TAIL_PAGES 1024
#define HARD_LIMIT 50000
/* While a snapshot's read transaction pins the database (fsm_snapshot.c) no
 * checkpoint can copy the frames written since, nor start the WAL over: a
 * checkpoint on the writer at HARD_LIMIT would copy only what the thread
 * copies too, on the loop (588 ms once, archive_apply_bench with a 300 MB
 * snapshot). The WAL is left to grow for as long as the serialization
 * takes, up to this bound, and afterwards until the thread has caught up
 * and the WAL started over (fsm_ckpt_loosen). */
#define SNAPSHOT_HARD_LIMIT (4 * HARD_LIMIT)

struct fsm_ckpt {
    pthread_t thread;
    pthread_mutex_t lock; /* guards the fields below */
    pthread_cond_t wake;
    pthread_mutex_t run;  /* held during a checkpoint, and by a pause */
    sqlite3 *db;          /* the thread's connection */
    bool due, stop;
    bool running;         /* the thread is checkpointing */
    int backfilled;       /* WAL frames its last checkpoint left copied */
    /* Counters, for tests and status. */
    uint64_t done, failed, tails, copied, restarts;
    /* Checkpoints the hook ran on the writer's thread (tails and the hard
     * limit's): how many past HARD_LIMIT, and the longest of them. */
    uint64_t hard, writer_max_us;
    /* SNAPSHOT_HARD_LIMIT applies, not HARD_LIMIT. Read and written on
     * the writer's thread only (the WAL hook and fsm_ckpt_loosen). */
    bool loose;
    int last_log;         /* WAL frames at the last commit the hook saw */
};

/* A read of the database through DB, which opens its pager's WAL. */
static int wal_open(sqlite3 *db)
{
    return sqlite3_exec(db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL);
}

static void *ckpt_main(void *arg)
{
    struct fsm_ckpt *c = arg;
    pthread_mutex_lock(&c->lock);
    for (;;) {
        while (!c->due && !c->stop) {
            pthread_cond_wait(&c->wake, &c->lock);
        }
        if (c->stop) {
            break;
        }
        c->due = false;
        c->running = true;
        pthread_mutex_unlock(&c->lock);

        int log = 0, copied = 0;
        pthread_mutex_lock(&c->run);
        int rc = sqlite3_wal_checkpoint_v2(c->db, "main", SQLITE_CHECKPOINT_PASSIVE,
                                           &log, &copied);
        if (rc == SQLITE_OK && log < 0 && wal_open(c->db) == SQLITE_OK) {
            rc = sqlite3_wal_checkpoint_v2(c->db, "main", SQLITE_CHECKPOINT_PASSIVE,
                                           &log, &copied);
        }
        pthread_mutex_unlock(&c->run);

        pthread_mutex_lock(&c->lock);
        c->running = false;
        if (rc == SQLITE_OK && log >= 0) {
            /* COPIED counts the frames backfilled so far, by anyone. */
            if (copied > c->backfilled) {
                c->copied += (uint64_t)(copied - c->backfilled);
            } else if (copied < c->backfilled) {
                c->copied += (uint64_t)copied; /* the WAL started over */
            }
            c->backfilled = copied;
            c->done++;
        } else {
            c->failed++; /* busy or an I/O error: the next commit asks again */
        }
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* A checkpoint on the writer's thread, begun at T0, ended. */
static void writer_took(struct fsm_ckpt *c, uint64_t t0, bool hard)
{
    uint64_t us = now_us() - t0;
    pthread_mutex_lock(&c->lock);
    c->hard += hard;
    c->writer_max_us = us > c->writer_max_us ? us : c->writer_max_us;
    pthread_mutex_unlock(&c->lock);
}

static int wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
    struct vg_repl_fsm *f = arg;
    struct fsm_ckpt *c = f->ckpt;
    bool tail = false;
    pthread_mutex_lock(&c->lock);
    if (pages < c->last_log) {
        c->restarts++;
        c->loose = false;
    }
    c->last_log = pages;
    pthread_mutex_unlock(&c->lock);
    if (pages >= (c->loose ? SNAPSHOT_HARD_LIMIT : HARD_LIMIT)) {
        uint64_t t0 = now_us();
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        writer_took(c, t0, true);
        return SQLITE_OK;
    }
    if (pages >= WRITER_TAIL_PAGES) {
        pthread_mutex_lock(&c->lock);
        /* A count from before the WAL last started over is above PAGES. */
        int left = c->backfilled <= pages ? pages - c->backfilled : pages;
        tail = !c->running && !c->due && left <= TAIL_PAGES;
        pthread_mutex_unlock(&c->lock);
    }
    if (tail) {
        /* PASSIVE: should the thread start meanwhile, this returns busy at
         * once and the next commit tries again. */
        uint64_t t0 = now_us();
        int rc = sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL,
                                           NULL);
        writer_took(c, t0, false);
        if (rc == SQLITE_OK) {
            pthread_mutex_lock(&c->lock);
            c->tails++;
            pthread_mutex_unlock(&c->lock);
        }
        return SQLITE_OK;
    }
    if (pages >= SOFT_LIMIT) {
        pthread_mutex_lock(&c->lock);
        /* On the WAL's length, so while it does not start over the thread
         * is woken by every commit. Waking it only once 1000 frames were
         * not yet copied was tried and measured no faster (4caa01a). */
        if (!c->due) {
            c->due = true;
            pthread_cond_signal(&c->wake);
        }
        pthread_mutex_unlock(&c->lock);
    }
    return SQLITE_OK;
}

int fsm_ckpt_start(struct vg_repl_fsm *f)
{
    struct fsm_ckpt *c = calloc(1, sizeof *c);
    if (c == NULL) {
        vg_errf(f->errmsg, "out of memory starting the WAL checkpointer");
        return VG_ENOMEM;
    }
    if (sqlite3_open_v2(f->path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        vg_errf(f->errmsg, "cannot open database %s for checkpoints: %s", f->path,
                c->db != NULL ? sqlite3_errmsg(c->db) : "out of memory");
        sqlite3_close(c->db);
        free(c);
        return VG_EDB;
    }
    sqlite3_busy_timeout(c->db, 100);
    if (wal_open(c->db) != SQLITE_OK) {
        vg_errf(f->errmsg, "cannot read database %s for checkpoints: %s", f->path,
                sqlite3_errmsg(c->db));
        sqlite3_close(c->db);
        free(c);
        return VG_EDB;
    }
    pthread_mutex_init(&c->lock, NULL);
    pthread_mutex_init(&c->run, NULL);
    pthread_cond_init(&c->wake, NULL);
    if (pthread_create(&c->thread, NULL, ckpt_main, c) != 0) {
        vg_errf(f->errmsg, "cannot start the WAL checkpointer thread");
        pthread_cond_destroy(&c->wake);
        pthread_mutex_destroy(&c->run);
        pthread_mutex_destroy(&c->lock);
        sqlite3_close(c->db);
        free(c);
        return VG_EIO;
    }
    f->ckpt = c;
    sqlite3_wal_hook(f->db, wal_hook, f); /* replaces the automatic one */
    return VG_OK;
}

void fsm_ckpt_loosen(struct vg_repl_fsm *f)
{
    if (f->ckpt != NULL) {
        f->ckpt->loose = true;
    }
}

void fsm_ckpt_stop(struct vg_repl_fsm *f)
{
    struct fsm_ckpt *c = f->ckpt;
    if (c == NULL) {
        return;
    }
    if (f->db != NULL) {
        sqlite3_wal_hook(f->db, NULL, NULL);
    }
    pthread_mutex_lock(&c->lock);
    c->stop = true;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->thread, NULL);
    sqlite3_close(c->db);
    pthread_cond_destroy(&c->wake);
    pthread_mutex_destroy(&c->run);
    pthread_mutex_destroy(&c->lock);
    free(c);
    f->ckpt = NULL;
}

void fsm_ckpt_pause(struct vg_repl_fsm *f)
{
    if (f->ckpt != NULL) {
        pthread_mutex_lock(&f->ckpt->run);
    }
}

void fsm_ckpt_resume(struct vg_repl_fsm *f)
{
    if (f->ckpt != NULL) {
        pthread_mutex_unlock(&f->ckpt->run);
    }
}

void vg_repl_fsm_wal_stats(struct vg_repl_fsm *f, struct vg_repl_wal_stats *out)
{
    memset(out, 0, sizeof *out);
    if (f->ckpt != NULL) {
        pthread_mutex_lock(&f->ckpt->lock);
        out->done = f->ckpt->done;
        out->failed = f->ckpt->failed;
        out->copied = f->ckpt->copied;
        out->tails = f->ckpt->tails;
        out->restarts = f->ckpt->restarts;
        out->wal_frames = (uint64_t)f->ckpt->last_log;
        out->hard = f->ckpt->hard;
        out->writer_max_ms = (double)f->ckpt->writer_max_us / 1000.0;
        pthread_mutex_unlock(&f->ckpt->lock);
    }
    fsm_wal_writes(f, &out->wal_writes, &out->wal_file_writes);
}
