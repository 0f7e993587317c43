/* vigild's settling of the archive's recent rows, from cluster level 2 on
 * (replication.h, "Apply levels"; replication/archive_recent.c).
 *
 * Why here and not in apply. At level 1 every history command settled a
 * step of at least 32 768 samples on top of staging its own, and libraft
 * applies every committed entry of an iteration in one go: with two
 * batches in one iteration, a node under a 200k samples/s archive load on
 * 2 cores spent up to 330 ms applying, above the 300 ms election timeout.
 * From level 2 on apply only stages, and each node moves the samples on
 * its own, in slices of about SLICE_US of its loop with at least GAP_MS
 * between them, so that raft, clients and the leader's duties run in
 * between.
 *
 * Settling is background work: a loop busy with other things (an
 * acknowledgment storm on the leader) should not give half of itself to
 * the archive's index. So a slice runs only when the loop was idle at
 * least IDLE_MIN_PERCENT of the time since the last decision, at most one
 * per GAP_MS, unless the recent rows hold more than BACKLOG_HIGH samples:
 * then one runs in every iteration whatever the load, so that the recent
 * rows (which apply, queries and slices search, and snapshots carry) stay
 * bounded. Either way one iteration spends at most about SLICE_US
 * settling.
 *
 * Settling writes most of a node's WAL (each round rewrites the last page
 * of every tag's chunks). When the WAL is longer than WAL_WAIT_PAGES its
 * checkpointer has fallen behind, or a snapshot's read pins it: slices
 * then wait, unless the recent rows hold more than BACKLOG_MAX samples.
 * Without that, a node under a full archive load never let its WAL start
 * over after its first snapshot (records_bench --trace: the WAL at the
 * hard limit from then on, a checkpoint on the loop at every commit, loop
 * iterations of 1-2 s, the leader lost). Apply goes on meanwhile: it only
 * stages, a fraction of those writes.
 *
 * A slice that fails (SQLite, or a broken invariant of the archive) sets
 * the fsm's fatal flag like a failed apply, and the node fail-stops at its
 * next iteration. */
#include "internal.h"

#define SLICE_US 10000u
#define GAP_MS 10u
#define IDLE_MIN_PERCENT 20u
/* Two rounds' worth (ROUND_RECORDS in archive_recent.c): a round running
 * plus what came in meanwhile is below it. */
#define BACKLOG_HIGH (2u * 1048576u)
/* The WAL starts over at about 4096 pages when its checkpointer keeps up
 * (replication/wal_checkpointer.c, RESTART_PAGES). */
#define WAL_WAIT_PAGES 16384u
/* Four rounds: what the recent rows may hold while slices wait for the
 * WAL. */
#define BACKLOG_MAX (4u * 1048576u)

/* Whether to run a slice now, and *GAP_MS until the next one: not while
 * the WAL is longer than WAL_WAIT_PAGES and the recent rows hold at most
 * BACKLOG_MAX samples (n->settle.wal_waits counts those decisions); else
 * now and at the next iteration (0) when they hold more than BACKLOG_HIGH;
 * else when the loop was idle at least IDLE_MIN_PERCENT of the time since
 * the last decision, and GAP_MS after it. */
static bool may_settle(struct node *n, uint64_t *gap_ms)
{
    uint64_t now_ns = uv_hrtime(), idle_ns = uv_metrics_idle_time(&n->loop);
    uint64_t span = now_ns - n->settle.seen_ns, idle = idle_ns - n->settle.seen_idle_ns;
    bool quiet = n->settle.seen_ns != 0 && span > 0 &&
                 idle * 100u >= span * IDLE_MIN_PERCENT;
    struct vg_repl_wal_stats wal;

    n->settle.seen_ns = now_ns;
    n->settle.seen_idle_ns = idle_ns;
    *gap_ms = GAP_MS;
    if (vg_repl_fsm_archive_recent_samples(&n->fsm, &n->settle.backlog) != VG_OK) {
        return true; /* the slice reports what is wrong */
    }
    vg_repl_fsm_wal_stats(&n->fsm, &wal);
    if (wal.wal_frames > WAL_WAIT_PAGES && n->settle.backlog <= BACKLOG_MAX) {
        n->settle.wal_waits++;
        return false;
    }
    *gap_ms = n->settle.backlog > BACKLOG_HIGH ? 0 : GAP_MS;
    return quiet || *gap_ms == 0;
}

void node_settle_update(struct node *n)
{
    uint64_t now = vg_now_mono_ms(), t0, us, moved = 0, gap_ms;

    if (now < n->settle.next_ms || n->fsm.fatal || n->fsm.archive_settle.idle) {
        return;
    }
    if (!may_settle(n, &gap_ms)) {
        n->settle.deferred++;
        n->settle.next_ms = now + gap_ms;
        return;
    }
    t0 = uv_hrtime();
    if (vg_repl_fsm_archive_settle_some(&n->fsm, SLICE_US, &moved) != VG_OK ||
        moved == 0) {
        return;
    }
    us = (uv_hrtime() - t0) / 1000u;
    n->settle.slices++;
    n->settle.moved += moved;
    n->settle.busy_us += us;
    n->settle.max_us = us > n->settle.max_us ? us : n->settle.max_us;
    n->settle.next_ms = vg_now_mono_ms() + gap_ms;
    /* The slice's own time is not idle time of the loop. */
    n->settle.seen_ns = uv_hrtime();
    n->settle.seen_idle_ns = uv_metrics_idle_time(&n->loop);
}

json_t *node_settle_status(struct node *n)
{
    if (vg_repl_fsm_archive_recent_samples(&n->fsm, &n->settle.backlog) != VG_OK) {
        n->settle.backlog = 0;
    }
    return json_pack("{sIsIsfsfsIsIsI}", "slices", (json_int_t)n->settle.slices,
                     "moved", (json_int_t)n->settle.moved, "max_slice_ms",
                     (double)n->settle.max_us / 1000.0, "busy_ms",
                     (double)n->settle.busy_us / 1000.0, "deferred",
                     (json_int_t)n->settle.deferred, "wal_waits",
                     (json_int_t)n->settle.wal_waits, "backlog",
                     (json_int_t)n->settle.backlog);
}
