/* The replicated action log: operators' setpoint writes and what became of
 * them (replication.h, VG_CMD_SETPOINT and VG_CMD_SETPOINT_RESULT).
 *
 * An action is stored when its SETPOINT command is applied, before any PLC
 * sees the value: that is the fencing rule (DESIGN.md), and it makes the log
 * complete even when the leader dies between commit and write. The outcome
 * arrives later in its own command, proposed by the leader that wrote (or
 * failed to write) the PLC, or by the next leader as "unknown" for actions
 * whose leader vanished before recording one. An outcome is recorded once;
 * a second one for the same action changes nothing, so the two leaders of a
 * step-down race cannot overwrite each other.
 *
 * Apply reads nothing but the command and the table: time, term and node come
 * from the command header the leader stamped. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fsm_internal.h"

#define TAG_MAX 256
#define WHO_MAX 128
#define MESSAGE_MAX 512

static bool short_string(json_t *body, const char *key, size_t max,
                         const char **out)
{
    if (fsm_opt_string(body, key, out) != VG_OK) {
        return false;
    }
    return *out == NULL || strlen(*out) <= max;
}

int fsm_apply_setpoint(struct vg_repl_fsm *f, uint64_t index,
                       const struct vg_cmd *cmd, json_t *body)
{
    json_t *tag = json_object_get(body, "tag");
    json_t *value = json_object_get(body, "value");
    json_t *version = json_object_get(body, "project_version");
    const char *user, *station;
    sqlite3_stmt *st;
    int rc;

    if (!json_is_string(tag) || json_string_length(tag) == 0 ||
        json_string_length(tag) > TAG_MAX || !json_is_number(value) ||
        !isfinite(json_number_value(value)) || !json_is_integer(version) ||
        json_integer_value(version) < 1 ||
        !short_string(body, "user", WHO_MAX, &user) ||
        !short_string(body, "station", WHO_MAX, &station)) {
        return VG_EINVAL;
    }
    if (sqlite3_prepare_v2(f->db,
                           "INSERT INTO operator_actions(idx, kind, tag, value,"
                           " project_version, user, station, time_ms, term, node)"
                           " VALUES(?, 'setpoint', ?, ?, ?, ?, ?, ?, ?, ?)",
                           -1, &st, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "prepare setpoint");
    }
    sqlite3_bind_int64(st, 1, (int64_t)index);
    sqlite3_bind_text(st, 2, json_string_value(tag), -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(st, 3, json_number_value(value));
    sqlite3_bind_int64(st, 4, (int64_t)json_integer_value(version));
    fsm_bind_opt_text(st, 5, user);
    fsm_bind_opt_text(st, 6, station);
    sqlite3_bind_int64(st, 7, (int64_t)cmd->time_ms);
    sqlite3_bind_int64(st, 8, (int64_t)cmd->term);
    sqlite3_bind_int64(st, 9, (int64_t)cmd->proposer);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return fsm_db_fail(f, "setpoint");
    }
    /* The value the leader last read, when it knew one: the audit trail
     * shows old and new. */
    {
        json_t *old_value = json_object_get(body, "old_value");
        if (old_value != NULL && !json_is_null(old_value) &&
            (!json_is_number(old_value) ||
             !isfinite(json_number_value(old_value)))) {
            return VG_EINVAL;
        }
        return fsm_audit_add(f, index * 1024, cmd, "setpoint",
                             json_string_value(tag), old_value, value, user,
                             station, NULL);
    }
}

int fsm_apply_setpoint_result(struct vg_repl_fsm *f, uint64_t index,
                              const struct vg_cmd *cmd, json_t *body)
{
    json_t *action = json_object_get(body, "action");
    const char *outcome = NULL;
    const char *message;
    sqlite3_stmt *st;
    int rc;
    int exists;

    if (!json_is_integer(action) || json_integer_value(action) < 1 ||
        fsm_opt_string(body, "outcome", &outcome) != VG_OK || outcome == NULL ||
        (strcmp(outcome, "written") != 0 && strcmp(outcome, "failed") != 0 &&
         strcmp(outcome, "unknown") != 0) ||
        !short_string(body, "message", MESSAGE_MAX, &message)) {
        return VG_EINVAL;
    }
    if (sqlite3_prepare_v2(f->db,
                           "UPDATE operator_actions SET outcome = ?, message = ?,"
                           " outcome_ms = ?, outcome_idx = ?"
                           " WHERE idx = ? AND outcome IS NULL",
                           -1, &st, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "prepare setpoint result");
    }
    sqlite3_bind_text(st, 1, outcome, -1, SQLITE_TRANSIENT);
    fsm_bind_opt_text(st, 2, message);
    sqlite3_bind_int64(st, 3, (int64_t)cmd->time_ms);
    sqlite3_bind_int64(st, 4, (int64_t)index);
    sqlite3_bind_int64(st, 5, (int64_t)json_integer_value(action));
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return fsm_db_fail(f, "setpoint result");
    }
    if (sqlite3_changes(f->db) > 0) {
        return VG_OK;
    }
    /* Nothing updated: the action has an outcome already, or never existed. */
    if (sqlite3_prepare_v2(f->db, "SELECT count(*) FROM operator_actions WHERE idx = ?",
                           -1, &st, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "prepare setpoint lookup");
    }
    sqlite3_bind_int64(st, 1, (int64_t)json_integer_value(action));
    rc = sqlite3_step(st);
    exists = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) {
        return fsm_db_fail(f, "setpoint lookup");
    }
    return exists ? VG_REPL_UNCHANGED : VG_EINVAL;
}

int vg_repl_fsm_actions(struct vg_repl_fsm *f, const char *tag, size_t limit,
                        json_t **out)
{
    /* The newest LIMIT, turned around so that the answer reads oldest first. */
    static const char sql_all[] =
        "SELECT * FROM (SELECT idx, kind, tag, value, project_version, user,"
        " station, time_ms, term, node, outcome, message, outcome_ms"
        " FROM operator_actions ORDER BY idx DESC LIMIT ?) ORDER BY idx";
    static const char sql_tag[] =
        "SELECT * FROM (SELECT idx, kind, tag, value, project_version, user,"
        " station, time_ms, term, node, outcome, message, outcome_ms"
        " FROM operator_actions WHERE tag = ? ORDER BY idx DESC LIMIT ?)"
        " ORDER BY idx";
    sqlite3_stmt *st;
    json_t *list;
    int rc;

    *out = NULL;
    if (limit < 1 || limit > 1000) {
        vg_errf(f->errmsg, "limit must be 1..1000");
        return VG_EINVAL;
    }
    if (sqlite3_prepare_v2(f->db, tag != NULL ? sql_tag : sql_all, -1, &st,
                           NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "prepare actions");
    }
    if (tag != NULL) {
        sqlite3_bind_text(st, 1, tag, -1, SQLITE_TRANSIENT);
    }
    sqlite3_bind_int64(st, tag != NULL ? 2 : 1, (int64_t)limit);
    list = json_array();
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *a = json_object();
        json_object_set_new(a, "action", json_integer(sqlite3_column_int64(st, 0)));
        json_object_set_new(a, "kind", fsm_column_json(st, 1));
        json_object_set_new(a, "tag", fsm_column_json(st, 2));
        json_object_set_new(a, "value", json_real(sqlite3_column_double(st, 3)));
        json_object_set_new(a, "project_version", fsm_column_json(st, 4));
        json_object_set_new(a, "user", fsm_column_json(st, 5));
        json_object_set_new(a, "station", fsm_column_json(st, 6));
        json_object_set_new(a, "time_ms", fsm_column_json(st, 7));
        json_object_set_new(a, "term", fsm_column_json(st, 8));
        json_object_set_new(a, "node", fsm_column_json(st, 9));
        json_object_set_new(a, "outcome", fsm_column_json(st, 10));
        json_object_set_new(a, "message", fsm_column_json(st, 11));
        json_object_set_new(a, "outcome_ms", fsm_column_json(st, 12));
        json_array_append_new(list, a);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        json_decref(list);
        return fsm_db_fail(f, "actions");
    }
    *out = list;
    return VG_OK;
}

int vg_repl_fsm_actions_open(struct vg_repl_fsm *f, uint64_t term,
                             uint64_t *idx, size_t max, size_t *n)
{
    sqlite3_stmt *st;
    int rc;

    *n = 0;
    if (sqlite3_prepare_v2(f->db,
                           "SELECT idx FROM operator_actions"
                           " WHERE outcome IS NULL AND term < ? ORDER BY idx LIMIT ?",
                           -1, &st, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "prepare open actions");
    }
    sqlite3_bind_int64(st, 1, (int64_t)term);
    sqlite3_bind_int64(st, 2, (int64_t)max);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < max) {
        idx[(*n)++] = (uint64_t)sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? VG_OK
                                                 : fsm_db_fail(f, "open actions");
}
