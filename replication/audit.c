/* The replicated audit trail: who did what, where, when, with the old and
 * the new value (replication.h, VG_CMD_AUDIT).
 *
 * Most records are not commands of their own: the apply of a setpoint, an
 * alarm action, a project load or a node removal adds its record in the same
 * transaction, so an action without its record (or the reverse) cannot be
 * committed. VG_CMD_AUDIT carries only actions that leave no other trace in
 * the state machine, such as a raft membership change. */
#include <math.h>
#include <string.h>

#include "fsm_internal.h"

#define KIND_MAX 64
#define TEXT_MAX 512

static bool value_ok(json_t *v)
{
    if (v == NULL || json_is_null(v)) {
        return true;
    }
    if (json_is_string(v)) {
        return json_string_length(v) <= TEXT_MAX;
    }
    return json_is_number(v) && isfinite(json_number_value(v));
}

static void bind_value(sqlite3_stmt *st, int col, json_t *v)
{
    if (v == NULL || json_is_null(v)) {
        sqlite3_bind_null(st, col);
    } else if (json_is_string(v)) {
        sqlite3_bind_text(st, col, json_string_value(v), -1, SQLITE_TRANSIENT);
    } else if (json_is_integer(v)) {
        sqlite3_bind_int64(st, col, (int64_t)json_integer_value(v));
    } else {
        sqlite3_bind_double(st, col, json_number_value(v));
    }
}

/* The audit statement with everything but the two values bound; NULL
 * after fsm_db_fail. */
static sqlite3_stmt *audit_stmt(struct vg_repl_fsm *f, uint64_t id,
                                const struct vg_cmd *cmd, const char *kind,
                                const char *object, const char *user,
                                const char *station, const char *detail)
{
    sqlite3_stmt *st = fsm_stmt(f, FSM_STMT_AUDIT,
                                "INSERT INTO audit(id, time_ms, kind, object,"
                                " old_value, new_value, user, station, detail,"
                                " term, node) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?,"
                                " ?, ?)");
    if (st == NULL) {
        return NULL;
    }
    sqlite3_bind_int64(st, 1, (int64_t)id);
    sqlite3_bind_int64(st, 2, (int64_t)cmd->time_ms);
    sqlite3_bind_text(st, 3, kind, -1, SQLITE_TRANSIENT);
    fsm_bind_opt_text(st, 4, object);
    fsm_bind_opt_text(st, 7, user);
    fsm_bind_opt_text(st, 8, station);
    fsm_bind_opt_text(st, 9, detail);
    sqlite3_bind_int64(st, 10, (int64_t)cmd->term);
    sqlite3_bind_int64(st, 11, (int64_t)cmd->proposer);
    return st;
}

static int audit_step(struct vg_repl_fsm *f, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? VG_OK : fsm_db_fail(f, "audit");
}

int fsm_audit_add(struct vg_repl_fsm *f, uint64_t id, const struct vg_cmd *cmd,
                  const char *kind, const char *object, json_t *old_value,
                  json_t *new_value, const char *user, const char *station,
                  const char *detail)
{
    sqlite3_stmt *st = audit_stmt(f, id, cmd, kind, object, user, station, detail);
    if (st == NULL) {
        return VG_EDB;
    }
    bind_value(st, 5, old_value);
    bind_value(st, 6, new_value);
    return audit_step(f, st);
}

int fsm_audit_add_text(struct vg_repl_fsm *f, uint64_t id, const struct vg_cmd *cmd,
                       const char *kind, const char *object, const char *old_value,
                       const char *new_value, const char *user, const char *station,
                       const char *detail)
{
    sqlite3_stmt *st = audit_stmt(f, id, cmd, kind, object, user, station, detail);
    if (st == NULL) {
        return VG_EDB;
    }
    fsm_bind_opt_text(st, 5, old_value);
    fsm_bind_opt_text(st, 6, new_value);
    return audit_step(f, st);
}

static bool short_opt(json_t *body, const char *key, size_t max,
                      const char **out)
{
    return fsm_opt_string(body, key, out) == VG_OK &&
           (*out == NULL || strlen(*out) <= max);
}

int fsm_apply_audit(struct vg_repl_fsm *f, uint64_t index,
                    const struct vg_cmd *cmd, json_t *body)
{
    const char *kind, *object, *user, *station, *detail;
    json_t *old_value = json_object_get(body, "old_value");
    json_t *new_value = json_object_get(body, "new_value");

    if (!short_opt(body, "kind", KIND_MAX, &kind) || kind == NULL ||
        kind[0] == '\0' || !short_opt(body, "object", TEXT_MAX, &object) ||
        !short_opt(body, "user", 128, &user) ||
        !short_opt(body, "station", 128, &station) ||
        !short_opt(body, "detail", TEXT_MAX, &detail) || !value_ok(old_value) ||
        !value_ok(new_value)) {
        return VG_EINVAL;
    }
    return fsm_audit_add(f, index * 1024, cmd, kind, object, old_value,
                         new_value, user, station, detail);
}

int vg_repl_fsm_audit(struct vg_repl_fsm *f, const struct vg_repl_audit_query *q,
                      json_t **out)
{
    static const char *const cols[] = {"id", "time_ms", "kind", "object",
                                       "old_value", "new_value", "user",
                                       "station", "detail", "term", "node"};
    char sql[768];
    sqlite3_stmt *st;
    json_t *rows;
    size_t limit = q->limit;
    int rc, col = 1;
    bool more = false;

    *out = NULL;
    if (limit < 1 || limit > 10000 || (q->to_ms != 0 && q->to_ms < q->from_ms)) {
        vg_errf(f->errmsg, "limit must be 1..10000 and from_ms <= to_ms");
        return VG_EINVAL;
    }
    /* Newest first, so that paging goes back in time with BEFORE_ID. */
    snprintf(sql, sizeof sql,
             "SELECT id, time_ms, kind, object, old_value, new_value, user,"
             " station, detail, term, node FROM audit WHERE time_ms >= ?%s%s%s%s"
             " ORDER BY id DESC LIMIT ?",
             q->to_ms != 0 ? " AND time_ms < ?" : "",
             q->kind != NULL ? " AND kind = ?" : "",
             q->user != NULL ? " AND user = ?" : "",
             q->before_id != 0 ? " AND id < ?" : "");
    if (sqlite3_prepare_v2(f->db, sql, -1, &st, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "prepare audit query");
    }
    sqlite3_bind_int64(st, col++, (int64_t)q->from_ms);
    if (q->to_ms != 0) {
        sqlite3_bind_int64(st, col++, (int64_t)q->to_ms);
    }
    if (q->kind != NULL) {
        sqlite3_bind_text(st, col++, q->kind, -1, SQLITE_TRANSIENT);
    }
    if (q->user != NULL) {
        sqlite3_bind_text(st, col++, q->user, -1, SQLITE_TRANSIENT);
    }
    if (q->before_id != 0) {
        sqlite3_bind_int64(st, col++, (int64_t)q->before_id);
    }
    sqlite3_bind_int64(st, col, (int64_t)limit + 1);
    rows = json_array();
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *r;
        if (json_array_size(rows) == limit) {
            more = true;
            continue;
        }
        r = json_object();
        for (int c = 0; c < (int)(sizeof cols / sizeof cols[0]); c++) {
            json_object_set_new(r, cols[c], fsm_column_json(st, c));
        }
        json_array_append_new(rows, r);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        json_decref(rows);
        return fsm_db_fail(f, "audit query");
    }
    *out = json_pack("{s:o, s:b}", "records", rows, "more", more);
    return *out != NULL ? VG_OK : VG_ENOMEM;
}
