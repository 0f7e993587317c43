/* When a node settles its archive's recent rows (node/settle.c): the
 * decision alone, without the node, so that it can be tested as a table
 * (tests/unit/node/test_settle_policy.c). Why each rule: node/settle.c. */
#ifndef VG_NODE_SETTLE_POLICY_H
#define VG_NODE_SETTLE_POLICY_H

#include <stdbool.h>
#include <stdint.h>

/* Between slices, while the loop is busy. */
#define VG_SETTLE_GAP_MS 10u
/* Two rounds' worth (ROUND_RECORDS in replication/archive_recent.c): a
 * round running plus what came in meanwhile is below it. */
#define VG_SETTLE_BACKLOG_HIGH (2u * 1048576u)
/* Where the WAL should start over (replication/wal_checkpointer.c,
 * RESTART_PAGES): settling, most of the node's writes, waits there so that
 * its checkpointer thread catches up between two commands and the next
 * commit starts the WAL over; else the loop itself checkpoints the tail,
 * two fdatasyncs on the loop thread. */
#define VG_SETTLE_WAL_WAIT_PAGES 4096u
/* Four rounds: what the recent rows may hold while slices wait for the
 * WAL. */
#define VG_SETTLE_BACKLOG_MAX (4u * 1048576u)

_Static_assert(VG_SETTLE_BACKLOG_HIGH < VG_SETTLE_BACKLOG_MAX,
               "the WAL gate holds back less than the recent rows may reach");

enum vg_settle_verdict {
    VG_SETTLE_RUN,      /* a slice now */
    VG_SETTLE_BUSY,     /* wait: the loop was busy */
    VG_SETTLE_WAL_WAIT, /* wait: the WAL is long */
};

/* With BACKLOG recent samples, a WAL of WAL_PAGES pages, and QUIET when the
 * loop was idle enough since the last decision: whether to run a slice,
 * and *GAP_MS until the next decision (0: the next loop iteration). */
static inline enum vg_settle_verdict vg_settle_decide(uint64_t backlog,
                                                      uint64_t wal_pages, bool quiet,
                                                      uint64_t *gap_ms)
{
    *gap_ms = VG_SETTLE_GAP_MS;
    if (wal_pages > VG_SETTLE_WAL_WAIT_PAGES && backlog <= VG_SETTLE_BACKLOG_MAX) {
        return VG_SETTLE_WAL_WAIT;
    }
    if (backlog > VG_SETTLE_BACKLOG_HIGH) {
        *gap_ms = 0;
        return VG_SETTLE_RUN;
    }
    return quiet ? VG_SETTLE_RUN : VG_SETTLE_BUSY;
}

#endif /* VG_NODE_SETTLE_POLICY_H */
