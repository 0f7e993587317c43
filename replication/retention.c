/* Retention cuts (replication.h, VG_CMD_RETENTION_CUT): what is older than
 * its retention leaves every replica at the same log index.
 *
 * Happy path: the whole body is checked before anything is deleted; then the
 * legacy cut of every archive (before_ms), each named archive's cut, the
 * alarm journal's and the audit trail's, in that order. Each part but the
 * legacy one compares its time with its mark in retention_marks and is
 * skipped when it is not above it, so a cut proposed twice (a new leader,
 * a retried proposal) deletes nothing the second time; the mark is raised
 * in the same transaction as the delete.
 *
 * Why marks are replicated rows and not derived from the oldest row: the
 * leader's clock stamps the cut, and apply may not look at any clock; a
 * mark records what was decided, so a query can tell "cut" from "never
 * recorded".
 *
 * Failure modes: a malformed member gives VG_EINVAL before any row goes; an
 * SQLite error gives VG_EDB (fatal, the node fail-stops). */
#include <string.h>

#include "fsm_internal.h"

/* Mark WHAT into *MS (0 when never cut). */
static int mark_get(struct vg_repl_fsm *f, const char *what, uint64_t *ms)
{
    sqlite3_stmt *st;
    int rc;

    *ms = 0;
    if (sqlite3_prepare_v2(f->db,
                           "SELECT before_ms FROM retention_marks WHERE what = ?",
                           -1, &st, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "prepare retention mark");
    }
    sqlite3_bind_text(st, 1, what, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *ms = (uint64_t)sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? VG_OK
                                                 : fsm_db_fail(f, "retention mark");
}

static int mark_put(struct vg_repl_fsm *f, const char *what, uint64_t ms)
{
    sqlite3_stmt *st;
    int rc;

    if (sqlite3_prepare_v2(f->db,
                           "INSERT OR REPLACE INTO retention_marks(what, before_ms)"
                           " VALUES(?, ?)",
                           -1, &st, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "prepare retention mark update");
    }
    sqlite3_bind_text(st, 1, what, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (int64_t)ms);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? VG_OK : fsm_db_fail(f, "retention mark update");
}

/* Delete the rows of TABLE (alarm_journal or audit; both have an index on
 * time_ms) older than BEFORE, unless mark WHAT is already there. */
static int cut_records(struct vg_repl_fsm *f, const char *table,
                       const char *what, uint64_t before, bool *changed)
{
    char sql[96];
    uint64_t mark;
    int rv;

    if ((rv = mark_get(f, what, &mark)) != VG_OK || before <= mark) {
        return rv;
    }
    snprintf(sql, sizeof sql, "DELETE FROM %s WHERE time_ms < %llu", table,
             (unsigned long long)before);
    if (sqlite3_exec(f->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "record retention cut");
    }
    *changed = true;
    return mark_put(f, what, before);
}

/* One named archive's cut, unless its mark is already there. */
static int cut_archive(struct vg_repl_fsm *f, const char *cls, uint64_t before,
                       bool *changed)
{
    char what[8 + FSM_ARCHIVE_NAME_MAX + 1];
    uint64_t mark;
    bool cut;
    int rv;

    snprintf(what, sizeof what, "archive:%s", cls);
    if ((rv = mark_get(f, what, &mark)) != VG_OK || before <= mark) {
        return rv;
    }
    if ((rv = fsm_archive_cut(f, cls, before, &cut)) != VG_OK) {
        return rv;
    }
    *changed = true;
    return mark_put(f, what, before);
}

/* Every member known and well formed, and at least one of them. */
static bool body_ok(json_t *body)
{
    static const char *const times[] = {"before_ms", "journal_before_ms",
                                        "audit_before_ms"};
    json_t *archives = json_object_get(body, "archives");
    bool any = archives != NULL;
    const char *cls;
    json_t *v;

    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        json_t *t = json_object_get(body, times[i]);
        if (t != NULL && !fsm_time_ok(t)) {
            return false;
        }
        any = any || t != NULL;
    }
    if (archives != NULL && (!json_is_object(archives) ||
                             json_object_size(archives) > FSM_ARCHIVES_MAX)) {
        return false;
    }
    json_object_foreach(archives, cls, v) {
        if (strlen(cls) > FSM_ARCHIVE_NAME_MAX || !fsm_time_ok(v)) {
            return false;
        }
    }
    return any;
}

int fsm_apply_retention_cut(struct vg_repl_fsm *f, uint64_t index,
                            const struct vg_cmd *cmd, json_t *body)
{
    json_t *t, *archives = json_object_get(body, "archives");
    bool changed = false;
    const char *cls;
    int rv = VG_OK;

    (void)index;
    (void)cmd;
    if (!body_ok(body)) {
        return VG_EINVAL;
    }
    if ((t = json_object_get(body, "before_ms")) != NULL) {
        rv = fsm_archive_cut(f, NULL, (uint64_t)json_integer_value(t), &changed);
    }
    json_object_foreach(archives, cls, t) {
        if (rv != VG_OK) {
            break;
        }
        rv = cut_archive(f, cls, (uint64_t)json_integer_value(t), &changed);
    }
    if (rv == VG_OK && (t = json_object_get(body, "journal_before_ms")) != NULL) {
        rv = cut_records(f, "alarm_journal", "journal",
                         (uint64_t)json_integer_value(t), &changed);
    }
    if (rv == VG_OK && (t = json_object_get(body, "audit_before_ms")) != NULL) {
        rv = cut_records(f, "audit", "audit", (uint64_t)json_integer_value(t),
                         &changed);
    }
    if (rv != VG_OK) {
        return rv;
    }
    return changed ? VG_OK : VG_REPL_UNCHANGED;
}

int vg_repl_fsm_retention_marks(struct vg_repl_fsm *f, json_t **out)
{
    return fsm_query_pairs(f, "SELECT what, before_ms FROM retention_marks",
                           "retention marks", out);
}
