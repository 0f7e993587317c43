/* vigild's self-checks of its replica (replication/scrub.c): every
 * --scrub-every-s the node pins its state on the loop (about a millisecond:
 * a read transaction begun), recounts the record tables and the archive
 * on a thread of libuv's pool, and takes the outcome back on the loop.
 *
 * What it is for. Consistency checkpoints compare digests that cover the
 * big tables only through their summaries; a row damaged outside apply
 * goes unseen there. What a self-check finds makes the replica report
 * itself diverged (status "consistency", so the leader raises its system
 * alarm $replica.ID), and the node logs REPLICA DIVERGED with the finding;
 * `vigild --rebuild-state` repairs it.
 *
 * Schedule. The first check comes one period after start, node K's
 * (K mod 4)/8 of a period later, as snapshots are staggered (log_budget.c):
 * replicas on shared cores do not all read their archive at once. The
 * next check comes a period after the last one ended; one that could not
 * start (the database busy) is tried again in a minute at most. One that
 * reads longer than its budget is stopped (see budget_ms). At shutdown a
 * running check is interrupted; its job still ends through the loop,
 * which keeps running until it has. */
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

#define RETRY_MS 60000u

struct node_scrub_job {
    uv_work_t work;
    struct node *n;
    struct vg_repl_scrub *scrub;
    uint64_t started_ms; /* monotonic */
    bool over_budget;    /* interrupted for reading longer than budget_ms */
};

static uint64_t period_ms(const struct node *n)
{
    return (uint64_t)n->cfg->scrub_every_s * 1000u;
}

/* The longest a check may read (--scrub-budget-ms). Its read transaction
 * keeps the WAL from starting over, so under a full archive load the WAL
 * grows by tens of MB a second while it reads (the checkpointer's bound is
 * loosened meanwhile, as for a snapshot). The default, 120 s, at about 7 M
 * samples a second on one core (archive_apply_bench) is some 800 M
 * samples: larger archives are not checked (status scrub.failed, and the
 * log says why). The budget is looked at on every loop iteration (at least
 * every 20 ms, the node's timer), so a check is stopped that much late at
 * most, more when an iteration is long. */
static uint64_t budget_ms(const struct node *n)
{
    return n->cfg->scrub_budget_ms;
}

static void work_cb(uv_work_t *w)
{
    struct node_scrub_job *j = w->data;
    vg_repl_scrub_run(j->scrub);
}

static void after_cb(uv_work_t *w, int status)
{
    struct node_scrub_job *j = w->data;
    struct node *n = j->n;
    int rv;

    n->scrub.job = NULL;
    /* A period from the end, not the start: a check of a large archive
     * (about 7 M samples a second on one core, archive_apply_bench) must
     * not follow the last one at once. */
    n->scrub.next_ms = vg_now_mono_ms() + period_ms(n);
    if (status != 0) {
        /* Cancelled before it ran: it fails as interrupted. */
        vg_repl_scrub_interrupt(j->scrub);
        vg_repl_scrub_run(j->scrub);
    }
    rv = vg_repl_fsm_scrub_end(&n->fsm, j->scrub);
    if (rv == VG_EDB) {
        node_log(n, "REPLICA DIVERGED: %s", n->fsm.scrub.msg);
    } else if (rv == VG_OK) {
        if (n->cfg->verbose) {
            node_log(n, "%s (%.0f ms)", n->fsm.scrub.msg, n->fsm.scrub.last_ms);
        }
    } else if (j->over_budget) {
        /* Whole seconds as before the budget could be set ("120 s"). */
        unsigned b = n->cfg->scrub_budget_ms;
        node_log(n, "self-check stopped after %u %s: the archive is too large to"
                    " recount in one read (%s)",
                 b % 1000u == 0 ? b / 1000u : b, b % 1000u == 0 ? "s" : "ms",
                 n->fsm.scrub.msg);
    } else if (rv != VG_EAGAIN && !n->stopping) {
        node_log(n, "self-check failed: %s", n->fsm.scrub.msg);
    }
    free(j);
}

void node_scrub_update(struct node *n)
{
    uint64_t now = vg_now_mono_ms(), period = period_ms(n);
    struct node_scrub_job *j;
    int rv;

    if (n->scrub.job != NULL && !n->scrub.job->over_budget &&
        now - n->scrub.job->started_ms > budget_ms(n)) {
        n->scrub.job->over_budget = true;
        vg_repl_scrub_interrupt(n->scrub.job->scrub);
    }
    if (period == 0 || n->scrub.job != NULL || n->stopping) {
        return;
    }
    if (n->scrub.next_ms == 0) {
        n->scrub.next_ms = now + period + period * (n->cfg->id % 4u) / 8u;
        return;
    }
    if (now < n->scrub.next_ms) {
        return;
    }
    n->scrub.next_ms = now + period;
    if ((j = calloc(1, sizeof *j)) == NULL) {
        return;
    }
    rv = vg_repl_fsm_scrub_begin(&n->fsm, &j->scrub);
    if (rv != VG_OK) {
        node_log(n, "%s", n->fsm.errmsg);
        n->scrub.next_ms = now + (period < RETRY_MS ? period : RETRY_MS);
        free(j);
        return;
    }
    j->n = n;
    j->work.data = j;
    j->started_ms = now;
    if (uv_queue_work(&n->loop, &j->work, work_cb, after_cb) != 0) {
        vg_repl_scrub_interrupt(j->scrub);
        vg_repl_scrub_run(j->scrub); /* stops at once: frees the pin */
        vg_repl_fsm_scrub_end(&n->fsm, j->scrub);
        free(j);
        return;
    }
    n->scrub.job = j;
}

void node_scrub_stop(struct node *n)
{
    if (n->scrub.job != NULL) {
        vg_repl_scrub_interrupt(n->scrub.job->scrub);
    }
}

json_t *node_scrub_status(struct node *n)
{
    const struct vg_repl_fsm *f = &n->fsm;
    return json_pack("{sIsIsbsIsbsIsIsIsIsfss}", "every_s",
                     (json_int_t)n->cfg->scrub_every_s, "budget_ms",
                     (json_int_t)n->cfg->scrub_budget_ms, "running", n->scrub.job != NULL,
                     "runs", (json_int_t)f->scrub.runs, "damaged", f->scrub.damaged,
                     "damaged_runs", (json_int_t)f->scrub.damaged_runs, "failed",
                     (json_int_t)f->scrub.failed, "last_index",
                     (json_int_t)f->scrub.last_index, "last_rows",
                     (json_int_t)f->scrub.last_rows, "last_ms", f->scrub.last_ms,
                     "message", f->scrub.msg);
}
