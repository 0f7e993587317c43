/* The cluster's apply level (replication.h, "Apply levels"; VG_CMD_CLUSTER_LEVEL).
 *
 * Why a replicated level rather than a version check at start-up. A change
 * to how replicas store the same commands has to take effect at the same
 * log index on every replica, or the consistency checkpoints report a
 * divergence that is not one (and a node that really diverged would hide
 * among them). The log is the only clock all replicas share, so the switch
 * is a command: before it every node applies as the oldest vigild does,
 * after it every node applies the new way. Which vigild a member runs is
 * not replicated; the ready leader learns it from the member's `status`
 * (node/peers.c) and proposes the command only when every member applies
 * the level (node/cluster_level.c).
 *
 * State: cluster_level(slot 0, level, log_index), absent while the level is
 * 1, and digested lazily (fsm.c), so that a cluster that never raised its
 * level digests exactly what a vigild before levels does. */
#include <stdlib.h>

#include "fsm_internal.h"

int fsm_cluster_level(struct vg_repl_fsm *f, uint32_t *out)
{
    sqlite3_stmt *st = fsm_stmt(f, FSM_STMT_LEVEL_GET,
                                "SELECT level FROM cluster_level WHERE slot = 0");
    int rc;

    *out = 1;
    if (st == NULL) {
        return VG_EDB;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        sqlite3_int64 v = sqlite3_column_int64(st, 0);
        /* apply only stores 2..2^31-1; anything else was written by hand. */
        if (v < 1 || v > INT32_MAX) {
            sqlite3_reset(st);
            vg_errf(f->errmsg, "cluster_level holds level %lld, not 1..%d (%s)",
                    (long long)v, INT32_MAX, f->path);
            return VG_EDB;
        }
        *out = (uint32_t)v;
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? VG_OK
                                                 : fsm_db_fail(f, "cluster level");
}

int vg_repl_fsm_cluster_level(struct vg_repl_fsm *f, uint32_t *out)
{
    return fsm_cluster_level(f, out);
}

uint32_t vg_repl_fsm_max_level(const struct vg_repl_fsm *f)
{
    return f->max_level != 0 && f->max_level < VG_REPL_APPLY_LEVEL
               ? f->max_level
               : VG_REPL_APPLY_LEVEL;
}

int vg_repl_fsm_level_check(struct vg_repl_fsm *f)
{
    uint32_t level;
    int rv = fsm_cluster_level(f, &level);
    if (rv == VG_OK && level > vg_repl_fsm_max_level(f)) {
        vg_errf(f->errmsg,
                "%s is at cluster level %u; this vigild applies up to level %u:"
                " run a newer vigild on this node",
                f->path, (unsigned)level, (unsigned)vg_repl_fsm_max_level(f));
        return VG_EDB;
    }
    return rv;
}

int fsm_apply_cluster_level(struct vg_repl_fsm *f, uint64_t index, json_t *body)
{
    json_t *v = json_object_get(body, "level");
    json_int_t level;
    uint32_t now;
    sqlite3_stmt *st;
    int rc, rv;

    if (!json_is_integer(v) || json_object_size(body) != 1) {
        return VG_EINVAL;
    }
    level = json_integer_value(v);
    if (level < 1 || level > INT32_MAX) {
        return VG_EINVAL;
    }
    if ((rv = fsm_cluster_level(f, &now)) != VG_OK) {
        return rv;
    }
    if ((uint64_t)level <= now) {
        return VG_REPL_UNCHANGED;
    }
    if ((uint64_t)level > vg_repl_fsm_max_level(f)) {
        vg_errf(f->errmsg,
                "command %llu raises the cluster to apply level %lld; this vigild"
                " applies up to level %u: run a newer vigild on this node",
                (unsigned long long)index, (long long)level,
                (unsigned)vg_repl_fsm_max_level(f));
        return VG_EDB;
    }
    if (sqlite3_prepare_v2(f->db,
                           "INSERT OR REPLACE INTO cluster_level(slot, level,"
                           " log_index) VALUES(0, ?, ?)",
                           -1, &st, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "prepare cluster level");
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)level);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)index);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return fsm_db_fail(f, "cluster level");
    }
    /* From level 2 on a node settles its recent rows itself: look for a
     * round at the next slice. */
    f->archive_settle.idle = false;
    return VG_OK;
}
