/* Private to replication/: helpers of the state machine (fsm.c) shared with
 * the files that apply and query one kind of replicated state (actions.c).
 * Everything here runs on the thread that owns the fsm's SQLite connection. */
#ifndef VG_REPL_FSM_INTERNAL_H
#define VG_REPL_FSM_INTERNAL_H

#include <jansson.h>
#include <sqlite3.h>

#include "replication.h"

/* Write "WHAT: sqlite's message (path)" into f->errmsg; returns VG_EDB. */
int fsm_db_fail(struct vg_repl_fsm *f, const char *what);

/* BODY[KEY] as a string into *OUT; absent or null gives NULL. VG_EINVAL when
 * it is something else. */
int fsm_opt_string(json_t *body, const char *key, const char **out);

/* Bind S, or NULL when S is NULL. */
void fsm_bind_opt_text(sqlite3_stmt *st, int col, const char *s);

/* actions.c: apply VG_CMD_SETPOINT / VG_CMD_SETPOINT_RESULT at INDEX
 * (inside fsm.c's transaction). Return VG_OK, VG_REPL_UNCHANGED, VG_EINVAL
 * (rejected) or VG_EDB (fatal). */
int fsm_apply_setpoint(struct vg_repl_fsm *f, uint64_t index,
                       const struct vg_cmd *cmd, json_t *body);
int fsm_apply_setpoint_result(struct vg_repl_fsm *f, uint64_t index,
                              const struct vg_cmd *cmd, json_t *body);

#endif /* VG_REPL_FSM_INTERNAL_H */
