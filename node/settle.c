/* vigild's settling of the archive's recent rows, from cluster level 2 on
 * (replication.h, "Apply levels"; replication/archive_recent.c).
 *
 * Why here and not in apply. At level 1 every history command settled a
 * step of at least 32 768 samples on top of staging its own, and libraft
 * applies every committed entry of an iteration in one go: with two
 * batches in one iteration, a node under a 200k samples/s archive load on
 * 2 cores spent up to 330 ms applying, above the 300 ms election timeout.
 * From level 2 on apply only stages, and each node moves the samples on
 * its own, in slices of about SLICE_US of its loop with at least
 * VG_SETTLE_GAP_MS between them, so that raft, clients and the leader's
 * duties run in between.
 *
 * Settling is background work: a loop busy with other things (an
 * acknowledgment storm on the leader) should not give half of itself to
 * the archive's index. So a slice runs only when the loop was idle at
 * least IDLE_MIN_PERCENT of the time since the last decision, at most one
 * per VG_SETTLE_GAP_MS, unless the recent rows hold more than
 * VG_SETTLE_BACKLOG_HIGH samples (settle_policy.h):
 * then one runs in every iteration whatever the load, so that the recent
 * rows (which apply, queries and slices search, and snapshots carry) stay
 * bounded. Either way one iteration spends at most about SLICE_US
 * settling.
 *
 * Settling writes most of a node's WAL (each round rewrites the last page
 * of every tag's chunks). When the WAL is longer than
 * VG_SETTLE_WAL_WAIT_PAGES, where it should start over, slices wait,
 * unless the recent rows hold more than VG_SETTLE_BACKLOG_MAX samples: the
 * WAL's checkpointer thread then copies the rest between two commands, and
 * the next commit starts the WAL over (replication/wal_checkpointer.c).
 * Without a wait, a node under a full archive load never let its WAL start
 * over after its first snapshot (records_bench --trace: the WAL at the
 * hard limit from then on, a checkpoint on the loop at every commit, loop
 * iterations of 1-2 s, the leader lost); with the wait at 16384 pages, the
 * loop itself checkpointed the tail once per 4096 pages, two fdatasyncs on
 * the loop thread that waited up to 316 ms for a busy disk. Apply goes on
 * meanwhile: it only stages, a fraction of those writes.
 *
 * A slice that fails (SQLite, or a broken invariant of the archive) sets
 * the fsm's fatal flag like a failed apply, and the node fail-stops at its
 * next iteration. */
#include "internal.h"
#include "settle_policy.h"

#define SLICE_US 10000u
#define IDLE_MIN_PERCENT 20u

/* Whether to run a slice now, and *GAP_MS until the next one
 * (vg_settle_decide, settle_policy.h): not while the WAL is longer than
 * VG_SETTLE_WAL_WAIT_PAGES and the recent rows hold at most
 * VG_SETTLE_BACKLOG_MAX samples (n->settle.wal_waits counts those
 * decisions); else now and at the next iteration (0) when they hold more
 * than VG_SETTLE_BACKLOG_HIGH; else when the loop was idle at least
 * IDLE_MIN_PERCENT of the time since the last decision, and
 * VG_SETTLE_GAP_MS after it. */
static bool may_settle(struct node *n, uint64_t *gap_ms)
{
    uint64_t now_ns = uv_hrtime(), idle_ns = uv_metrics_idle_time(&n->loop);
    uint64_t span = now_ns - n->settle.seen_ns, idle = idle_ns - n->settle.seen_idle_ns;
    bool quiet = n->settle.seen_ns != 0 && span > 0 &&
                 idle * 100u >= span * IDLE_MIN_PERCENT;
    struct vg_repl_wal_stats wal;

    enum vg_settle_verdict v;

    n->settle.seen_ns = now_ns;
    n->settle.seen_idle_ns = idle_ns;
    *gap_ms = VG_SETTLE_GAP_MS;
    if (vg_repl_fsm_archive_recent_samples(&n->fsm, &n->settle.backlog) != VG_OK) {
        return true; /* the slice reports what is wrong */
    }
    vg_repl_fsm_wal_stats(&n->fsm, &wal);
    v = vg_settle_decide(n->settle.backlog, wal.wal_frames, quiet, gap_ms);
    n->settle.wal_waits += v == VG_SETTLE_WAL_WAIT;
    return v == VG_SETTLE_RUN;
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
