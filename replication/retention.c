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
 * From level 4 on an archive's cut is applied in steps: each command walks
 * at most FSM_CUT_STEP_TAGS tags (fsm_archive_cut), and where the walk
 * stopped is replicated state (retention_steps: what, before_ms, next_id).
 * The ready leader sees it and proposes {continue: true}, whose apply takes
 * the next step of the first cut still in steps (by what); the last step
 * raises the mark ("archive:NAME"), or, for the cut of every archive
 * (what "before_ms"), the first step raised the watermark already. A new
 * cut of an archive whose previous cut is still in steps is skipped (the
 * leader proposes the next a minute later). Why: once an archive holds its
 * whole retention, every cut deletes each tag's oldest minute, some 35 us a
 * tag (decoding, hashing every dropped sample out of the summary, seeking,
 * deleting, rewriting the chunk it splits); at 25 000 tags one command did
 * 0.5-0.7 s of that on every node's loop at once, above the election
 * timeout (bench/archive_apply_bench, retention_cut_some). Steps bound it
 * by the number of tags, the same on every replica; the time a tag takes
 * is not (how a node split its samples between rows, chunks and recent
 * rows is its own), and a tag with much to delete (a retention just
 * shortened) still takes its whole cut in one step.
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

/* ------------------------------------------------------------------ steps */

#define EVERY "before_ms" /* the cut of every archive in retention_steps */

/* Is WHAT's cut still in steps (a row in retention_steps)? */
static int step_busy(struct vg_repl_fsm *f, const char *what, bool *busy)
{
    sqlite3_stmt *st;
    int rc;

    *busy = false;
    if (sqlite3_prepare_v2(f->db, "SELECT 1 FROM retention_steps WHERE what = ?", -1,
                           &st, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "prepare retention step");
    }
    sqlite3_bind_text(st, 1, what, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    *busy = rc == SQLITE_ROW;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? VG_OK
                                                 : fsm_db_fail(f, "retention step");
}

/* Record that WHAT's cut before BEFORE goes on at tag NEXT, or (NEXT < 0)
 * that it is done. */
static int step_put(struct vg_repl_fsm *f, const char *what, uint64_t before,
                    int64_t next)
{
    sqlite3_stmt *st;
    int rc;

    if (sqlite3_prepare_v2(f->db,
                           next < 0 ? "DELETE FROM retention_steps WHERE what = ?1"
                                    : "INSERT OR REPLACE INTO retention_steps"
                                      "(what, before_ms, next_id) VALUES(?1, ?2, ?3)",
                           -1, &st, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "prepare retention step update");
    }
    sqlite3_bind_text(st, 1, what, -1, SQLITE_STATIC);
    if (next >= 0) {
        sqlite3_bind_int64(st, 2, (int64_t)before);
        sqlite3_bind_int64(st, 3, next);
    }
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? VG_OK : fsm_db_fail(f, "retention step update");
}

/* The archive WHAT names ("archive:NAME") or NULL for EVERY. */
static const char *step_class(const char *what)
{
    return strcmp(what, EVERY) == 0 ? NULL : what + strlen("archive:");
}

/* One step of WHAT's cut before BEFORE from tag FROM (0: it starts), as
 * the cluster's LEVEL does it: in steps from level 4 on, else whole. The
 * step that ends a named archive's cut raises its mark. */
static int cut_step(struct vg_repl_fsm *f, uint32_t level, const char *what,
                    uint64_t before, int64_t from, bool *changed)
{
    const char *cls = step_class(what);
    int64_t resume;
    bool cut;
    int rv;

    if ((rv = fsm_archive_cut(f, cls, before, from, level >= 4, &resume, &cut)) !=
        VG_OK) {
        return rv;
    }
    *changed = *changed || cut;
    if (level >= 4 && (resume >= 0 || from > 0)) {
        /* The row says where the next step starts, and goes with the last. */
        if ((rv = step_put(f, what, before, resume)) != VG_OK) {
            return rv;
        }
        *changed = true;
    }
    if (resume < 0 && cls != NULL) {
        *changed = true;
        return mark_put(f, what, before);
    }
    return VG_OK;
}

/* The cut of every archive (the legacy before_ms), unless one is in steps. */
static int cut_every(struct vg_repl_fsm *f, uint32_t level, uint64_t before,
                     bool *changed)
{
    bool busy = false;
    int rv;

    if (level >= 4 && (rv = step_busy(f, EVERY, &busy)) != VG_OK) {
        return rv;
    }
    return busy ? VG_OK : cut_step(f, level, EVERY, before, 0, changed);
}

/* One named archive's cut, unless its mark is already there or its last
 * cut is still in steps. */
static int cut_archive(struct vg_repl_fsm *f, uint32_t level, const char *cls,
                       uint64_t before, bool *changed)
{
    char what[8 + FSM_ARCHIVE_NAME_MAX + 1];
    uint64_t mark;
    bool busy = false;
    int rv;

    snprintf(what, sizeof what, "archive:%s", cls);
    if ((rv = mark_get(f, what, &mark)) != VG_OK || before <= mark) {
        return rv;
    }
    if (level >= 4 && (rv = step_busy(f, what, &busy)) != VG_OK) {
        return rv;
    }
    return busy ? VG_OK : cut_step(f, level, what, before, 0, changed);
}

/* {continue: true}: the next step of the first cut in steps, if any. */
static int cut_continue(struct vg_repl_fsm *f, uint32_t level, bool *changed)
{
    char what[8 + FSM_ARCHIVE_NAME_MAX + 1];
    sqlite3_stmt *st;
    uint64_t before = 0;
    int64_t next = 0;
    bool found = false;
    int rc;

    if (sqlite3_prepare_v2(f->db,
                           "SELECT what, before_ms, next_id FROM retention_steps"
                           " ORDER BY what LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "prepare retention steps");
    }
    if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *w = (const char *)sqlite3_column_text(st, 0);
        /* Only step_put writes the table, with a what cut_archive made. */
        if (w != NULL && strlen(w) < sizeof what) {
            found = true;
            strcpy(what, w);
            before = (uint64_t)sqlite3_column_int64(st, 1);
            next = sqlite3_column_int64(st, 2);
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        return fsm_db_fail(f, "retention steps");
    }
    if (rc == SQLITE_ROW && (!found || next <= 0 ||
                             (strcmp(what, EVERY) != 0 &&
                              strncmp(what, "archive:", 8) != 0))) {
        vg_errf(f->errmsg, "retention_steps holds a row apply never writes (%s)",
                f->path);
        return VG_EDB;
    }
    return found ? cut_step(f, level, what, before, next, changed) : VG_OK;
}

int fsm_retention_steps_pending(struct vg_repl_fsm *f, bool *pending)
{
    /* Prepared once: the leader asks at every loop iteration. */
    sqlite3_stmt *st = fsm_stmt(f, FSM_STMT_STEPS_PENDING,
                                "SELECT 1 FROM retention_steps LIMIT 1");
    int rc;

    *pending = false;
    if (st == NULL) {
        return VG_EDB;
    }
    rc = sqlite3_step(st);
    *pending = rc == SQLITE_ROW;
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? VG_OK
                                                 : fsm_db_fail(f, "retention steps");
}

/* Every member known and well formed, and at least one of them; continue
 * (true) is one from level 4 on, and ignored below, as an older vigild
 * ignores a member it does not know. */
static bool body_ok(json_t *body, uint32_t level)
{
    static const char *const times[] = {"before_ms", "journal_before_ms",
                                        "audit_before_ms"};
    json_t *archives = json_object_get(body, "archives");
    json_t *cont = json_object_get(body, "continue");
    bool any = archives != NULL;

    if (level >= 4 && cont != NULL) {
        if (!json_is_true(cont)) {
            return false;
        }
        any = true;
    }
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
    uint32_t level;
    int rv;

    (void)index;
    (void)cmd;
    if ((rv = fsm_cluster_level(f, &level)) != VG_OK) {
        return rv;
    }
    if (!body_ok(body, level)) {
        return VG_EINVAL;
    }
    /* The step goes first: a cut it ends lets one of the same archive in
     * this body start. */
    if (level >= 4 && json_object_get(body, "continue") != NULL) {
        rv = cut_continue(f, level, &changed);
    }
    if (rv == VG_OK && (t = json_object_get(body, "before_ms")) != NULL) {
        rv = cut_every(f, level, (uint64_t)json_integer_value(t), &changed);
    }
    json_object_foreach(archives, cls, t) {
        if (rv != VG_OK) {
            break;
        }
        rv = cut_archive(f, level, cls, (uint64_t)json_integer_value(t), &changed);
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

int vg_repl_fsm_retention_pending(struct vg_repl_fsm *f, bool *pending)
{
    return fsm_retention_steps_pending(f, pending);
}
