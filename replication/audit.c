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

/* The old and the new value of a record: JSON values (null, string or
 * number), or with TEXT set, strings (NULL for null). */
struct audit_values {
    bool text;
    json_t *old_json, *new_json;
    const char *old_text, *new_text;
};

/* Insert one record, every column in the table's order (fsm_row_*). */
static int audit_insert(struct vg_repl_fsm *f, uint64_t id, const struct vg_cmd *cmd,
                        const char *kind, const char *object,
                        const struct audit_values *v, const char *user,
                        const char *station, const char *detail)
{
    sqlite3_stmt *st = fsm_stmt(f, FSM_STMT_AUDIT,
                                "INSERT INTO audit(id, time_ms, kind, object,"
                                " old_value, new_value, user, station, detail,"
                                " term, node) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?,"
                                " ?, ?)");
    struct fsm_row r;

    if (st == NULL) {
        return VG_EDB;
    }
    fsm_row_begin(&r, st);
    fsm_row_int(&r, (int64_t)id);
    fsm_row_int(&r, (int64_t)cmd->time_ms);
    fsm_row_text(&r, kind);
    fsm_row_text(&r, object);
    if (v->text) {
        fsm_row_text(&r, v->old_text);
        fsm_row_text(&r, v->new_text);
    } else {
        fsm_row_json(&r, v->old_json);
        fsm_row_json(&r, v->new_json);
    }
    fsm_row_text(&r, user);
    fsm_row_text(&r, station);
    fsm_row_text(&r, detail);
    fsm_row_int(&r, (int64_t)cmd->term);
    fsm_row_int(&r, (int64_t)cmd->proposer);
    return fsm_row_insert(f, &r, FSM_SUMMED_AUDIT, "audit");
}

int fsm_audit_add(struct vg_repl_fsm *f, uint64_t id, const struct vg_cmd *cmd,
                  const char *kind, const char *object, json_t *old_value,
                  json_t *new_value, const char *user, const char *station,
                  const char *detail)
{
    struct audit_values v = {.old_json = old_value, .new_json = new_value};
    return audit_insert(f, id, cmd, kind, object, &v, user, station, detail);
}

int fsm_audit_add_text(struct vg_repl_fsm *f, uint64_t id, const struct vg_cmd *cmd,
                       const char *kind, const char *object, const char *old_value,
                       const char *new_value, const char *user, const char *station,
                       const char *detail)
{
    struct audit_values v = {.text = true, .old_text = old_value,
                             .new_text = new_value};
    return audit_insert(f, id, cmd, kind, object, &v, user, station, detail);
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
