/* The replica's self-check ("scrub"): do the rows add up to their summaries?
 *
 * Why. The digest that consistency checkpoints compare covers the tables
 * that grow without bound only through their summaries: record_summary for
 * operator_actions, alarm_journal and audit, archive_summary for the
 * archive's samples (a count and a wrapping sum of row hashes, which apply
 * keeps in step with every row it writes). That keeps a checkpoint cheap,
 * but a row changed, lost or added outside apply (a damaged disk, someone's
 * sqlite3 shell, a bug in the settling that each node runs on its own from
 * level 2 on) leaves every replica's digest alike: the replica would answer
 * history queries and reports from rows nobody agreed on, and be called
 * "ok". A scrub recounts every summarized table from its rows and compares.
 * Summaries that the digest shows equal on every replica, and rows that add
 * up to their summary on this one, make rows equal to every other
 * replica's (up to a collision of 64-bit sums of row hashes).
 *
 * How. vg_repl_fsm_scrub_begin, on the node's loop, opens a read-only
 * connection and begins a read transaction on it: the state after the last
 * applied command (apply commits every command, and a level-2 settle slice
 * moves samples and the settle state in one transaction, so any committed
 * state adds up). vg_repl_scrub_run, on a thread, recounts that state
 * while the loop applies on; the thread touches only the job.
 * vg_repl_fsm_scrub_end, back on the loop, records the outcome in F.
 *
 * Outcomes. Rows that do not add up, a page SQLite finds corrupt, a recent
 * row that is not a whole number of samples, a sample of a tag that
 * archive_tags lacks: the replica is damaged. F's verdict becomes diverged
 * and stays so (a matching checkpoint does not clear it: the digest cannot
 * see what was found) until the database is replaced by a snapshot or
 * rebuilt (vigild --rebuild-state). An interruption, an I/O error or a
 * lack of memory only fails the scrub: nothing was learned. A snapshot
 * restored while the scrub ran makes its outcome moot: it is dropped.
 *
 * Cost. The whole archive is read once (a pinned read transaction: the WAL
 * cannot start over meanwhile, so the checkpointer loosens its bound as
 * for a snapshot). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fsm_internal.h"

struct vg_repl_scrub {
    struct vg_repl_fsm reader; /* reader.db: the pinned read transaction */
    bool pinned;
    uint64_t index;            /* the state it reads */
    uint64_t restored;         /* F's n_restored at begin */
    atomic_int interrupted;    /* vg_repl_scrub_interrupt was called */
    /* Written by the thread, read at end. */
    int outcome;               /* VG_OK, VG_EDB (damaged) or other: failed */
    uint64_t rows;
    double ms;
    char msg[VG_ERRMSG_SIZE];
};

static double ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 +
           (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

static void scrub_free(struct vg_repl_scrub *s)
{
    if (s->pinned) {
        vg_repl_fsm_read_end(&s->reader);
    }
    vg_repl_fsm_close(&s->reader);
    free(s);
}

int vg_repl_fsm_scrub_begin(struct vg_repl_fsm *f, struct vg_repl_scrub **out)
{
    struct vg_repl_scrub *s;
    uint64_t seen = 0;

    *out = NULL;
    if (f->ckpt == NULL) {
        vg_errf(f->errmsg, "self-check: %s is not in WAL mode (no reader beside"
                           " the writer)", f->path);
        return VG_EUNSUPPORTED;
    }
    if ((s = calloc(1, sizeof *s)) == NULL) {
        vg_errf(f->errmsg, "self-check: out of memory");
        return VG_ENOMEM;
    }
    if (vg_repl_fsm_open_reader(&s->reader, f->path) != VG_OK ||
        fsm_summary_functions(&s->reader) != VG_OK ||
        vg_repl_fsm_read_begin(&s->reader, &seen) != VG_OK) {
        vg_errf(f->errmsg, "self-check: %s", s->reader.errmsg);
        scrub_free(s);
        return VG_EDB;
    }
    s->pinned = true;
    s->index = seen;
    s->restored = f->n_restored;
    fsm_ckpt_loosen(f);
    *out = s;
    return VG_OK;
}

/* Why a failure of the reader is damage rather than bad luck: what SQLite
 * says last, unless it was stopped, ran short, or could not read. */
static bool damage_not_luck(struct vg_repl_scrub *s, int rv)
{
    int code = sqlite3_extended_errcode(s->reader.db) & 0xff;

    if (s->interrupted || rv == VG_ENOMEM) {
        return false;
    }
    return code != SQLITE_INTERRUPT && code != SQLITE_NOMEM && code != SQLITE_IOERR &&
           code != SQLITE_BUSY && code != SQLITE_LOCKED && code != SQLITE_FULL;
}

/* Compare one recount; a sentence into S->msg when it does not add up. */
static bool adds_up(struct vg_repl_scrub *s, const struct fsm_recount *r)
{
    if (r->rows == r->want_rows && r->hash_sum == r->want_hash_sum) {
        return true;
    }
    if (r->rows != r->want_rows) {
        snprintf(s->msg, sizeof s->msg,
                 "self-check at index %llu: %s holds %llu rows, its summary"
                 " says %llu",
                 (unsigned long long)s->index, r->table,
                 (unsigned long long)r->rows, (unsigned long long)r->want_rows);
    } else {
        snprintf(s->msg, sizeof s->msg,
                 "self-check at index %llu: %s holds the %llu rows its summary"
                 " counts, but their hashes add up to %016llx, not %016llx"
                 " (a row was changed)",
                 (unsigned long long)s->index, r->table,
                 (unsigned long long)r->rows, (unsigned long long)r->hash_sum,
                 (unsigned long long)r->want_hash_sum);
    }
    return false;
}

void vg_repl_scrub_run(struct vg_repl_scrub *s)
{
    struct timespec t0;
    struct fsm_recount r;
    int rv = VG_OK;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    s->outcome = VG_OK;
    for (int t = 0; t < FSM_SUMMED_MAX + 1 && s->outcome == VG_OK; t++) {
        if (s->interrupted) {
            /* sqlite3_interrupt stops a statement running, not the next. */
            s->outcome = VG_ECLOSED;
            vg_errf(s->msg, "self-check at index %llu: interrupted",
                    (unsigned long long)s->index);
            break;
        }
        rv = t < FSM_SUMMED_MAX
                 ? fsm_summary_recount(&s->reader, (enum fsm_summed)t, &r)
                 : fsm_archive_recount(&s->reader, &r);
        if (rv != VG_OK) {
            bool damaged = damage_not_luck(s, rv);
            s->outcome = damaged ? VG_EDB : (s->interrupted ? VG_ECLOSED : rv);
            vg_errf(s->msg, "self-check at index %llu: %s%s",
                     (unsigned long long)s->index,
                     s->interrupted ? "interrupted: " : "", s->reader.errmsg);
        } else if (s->interrupted) {
            /* A recount that ran while it was stopped is not judged. Each
             * of its reads fails when interrupted rather than end early
             * (test_recount_interrupted_anywhere), but one that took the
             * interrupt for its end would call the rows damaged: reading
             * the columns to hash (record_summary.c) did, and cluster-scrub's
             * 1 ms budget had a node call its whole audit row changed and
             * itself diverged. A check its budget stopped keeps nothing. */
            s->outcome = VG_ECLOSED;
            vg_errf(s->msg, "self-check at index %llu: interrupted",
                    (unsigned long long)s->index);
        } else {
            s->rows += r.rows;
            if (!adds_up(s, &r)) {
                s->outcome = VG_EDB;
            }
        }
    }
    vg_repl_fsm_read_end(&s->reader);
    s->pinned = false;
    s->ms = ms_since(&t0);
    if (s->outcome == VG_OK) {
        snprintf(s->msg, sizeof s->msg,
                 "self-check at index %llu: %llu rows add up to their summaries",
                 (unsigned long long)s->index, (unsigned long long)s->rows);
    }
}

void vg_repl_scrub_interrupt(struct vg_repl_scrub *s)
{
    s->interrupted = 1;
    sqlite3_interrupt(s->reader.db);
}

int vg_repl_fsm_scrub_end(struct vg_repl_fsm *f, struct vg_repl_scrub *s)
{
    int outcome = s->outcome;

    if (f->n_restored != s->restored) {
        /* The state it read is gone; a restore clears what was found. */
        outcome = VG_EAGAIN;
    } else if (outcome == VG_OK) {
        f->scrub.runs++;
        f->scrub.last_index = s->index;
        f->scrub.last_rows = s->rows;
        f->scrub.last_ms = s->ms;
    } else if (outcome == VG_EDB) {
        f->scrub.runs++;
        f->scrub.damaged_runs++;
        f->scrub.last_index = s->index;
        f->scrub.last_rows = s->rows;
        f->scrub.last_ms = s->ms;
        f->scrub.damaged = true;
        f->verdict = VG_VERDICT_DIVERGED;
        vg_errf(f->verdict_msg, "%s", s->msg);
    } else {
        f->scrub.failed++;
    }
    if (outcome != VG_EAGAIN) {
        vg_errf(f->scrub.msg, "%s", s->msg);
        vg_errf(f->errmsg, "%s", s->msg);
    }
    scrub_free(s);
    return outcome;
}

int vg_repl_fsm_scrub(struct vg_repl_fsm *f)
{
    struct vg_repl_scrub *s;
    int rv = vg_repl_fsm_scrub_begin(f, &s);

    if (rv != VG_OK) {
        return rv;
    }
    vg_repl_scrub_run(s);
    return vg_repl_fsm_scrub_end(f, s);
}
