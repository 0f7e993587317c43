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
 * between. At most SLICE_US / (SLICE_US + GAP_MS) of the loop goes to
 * settling; the archive needs far less at the rates a cluster commits
 * (figures in README "Measured"), and a node that falls behind only keeps
 * more recent rows, which queries read in place.
 *
 * A slice that fails (SQLite, or a broken invariant of the archive) sets
 * the fsm's fatal flag like a failed apply, and the node fail-stops at its
 * next iteration. */
#include "internal.h"

#define SLICE_US 10000u
#define GAP_MS 10u

void node_settle_update(struct node *n)
{
    uint64_t now = vg_now_mono_ms(), t0, us, moved = 0;

    if (now < n->settle.next_ms || n->fsm.fatal) {
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
    n->settle.next_ms = vg_now_mono_ms() + GAP_MS;
}

json_t *node_settle_status(struct node *n)
{
    return json_pack("{sIsIsfsf}", "slices", (json_int_t)n->settle.slices, "moved",
                     (json_int_t)n->settle.moved, "max_slice_ms",
                     (double)n->settle.max_us / 1000.0, "busy_ms",
                     (double)n->settle.busy_us / 1000.0);
}
