/* Private to replication/: helpers of the state machine (fsm.c) shared with
 * the files that apply and query one kind of replicated state (actions.c).
 * Everything here runs on the thread that owns the fsm's SQLite connection. */
#ifndef VG_REPL_FSM_INTERNAL_H
#define VG_REPL_FSM_INTERNAL_H

#include <jansson.h>
#include <sodium.h>
#include <sqlite3.h>

#include "replication.h"

/* Write "WHAT: sqlite's message (path)" into f->errmsg; returns VG_EDB. */
int fsm_db_fail(struct vg_repl_fsm *f, const char *what);

/* BODY[KEY] as a string into *OUT; absent or null gives NULL. VG_EINVAL when
 * it is something else. */
int fsm_opt_string(json_t *body, const char *key, const char **out);

/* Column COL of the current row as a new JSON value: null, integer, real
 * or string, as SQLite stores it. */
json_t *fsm_column_json(sqlite3_stmt *st, int col);

/* Statements that apply runs for nearly every command or row, prepared once
 * per connection: preparing costs more than the insert it prepares. */
enum fsm_stmt_slot {
    FSM_STMT_META,
    FSM_STMT_AUDIT,
    FSM_STMT_ALARM_DEL,
    FSM_STMT_ALARM_PUT,
    FSM_STMT_ALARM_JOURNAL,
    FSM_STMT_ARCHIVE_ONE,
    FSM_STMT_ARCHIVE_MANY,
    FSM_STMT_ARCHIVE_NEWEST,
    FSM_STMT_ARCHIVE_TAG_GET,
    FSM_STMT_ARCHIVE_TAG_ADD,
    FSM_STMT_ARCHIVE_SUMMARY_GET,
    FSM_STMT_ARCHIVE_SUMMARY_PUT,
    FSM_STMT_ARCHIVE_EXISTS,
    FSM_STMT_RECENT_ADD,
    FSM_STMT_RECENT_STATS,
    FSM_STMT_SETTLE_GET,
    FSM_STMT_SETTLE_ROWS,
    FSM_STMT_SETTLE_SIZE,
    FSM_STMT_SUMMARY_ADD,
    FSM_STMT_LEVEL_GET,
    FSM_STMT_CHUNK_ADD,
    FSM_STMT_CHUNK_DEL,
    FSM_STMT_CHUNK_NEWEST,
    FSM_STMT_CHUNK_AT,
    FSM_STMT_CHUNK_BEFORE,
    FSM_STMT_CHUNK_CUT,
    FSM_STMT_STEPS_PENDING,
    FSM_STMT_MAX
};

/* The statement of SLOT, prepared from SQL at its first use (SQL must be the
 * same at every call for that slot), reset and with its bindings cleared;
 * NULL after fsm_db_fail. Owned by F (finalized by vg_repl_fsm_close); a
 * caller that steps a query without running it to the end resets it. */
sqlite3_stmt *fsm_stmt(struct vg_repl_fsm *f, enum fsm_stmt_slot slot,
                       const char *sql);

/* Bind S, or NULL when S is NULL. */
void fsm_bind_opt_text(sqlite3_stmt *st, int col, const char *s);

/* Input to BLAKE2b gathered in B and handed over a few hundred bytes at a
 * time: the hash of a stream does not depend on how it is cut, and one
 * call per column value cost more than the hashing itself. */
struct fsm_hash_buf {
    crypto_generichash_state h;
    size_t n;
    unsigned char b[512];
};
void fsm_hb_put(struct fsm_hash_buf *hb, const void *p, size_t len);
void fsm_hb_flush(struct fsm_hash_buf *hb);

/* wal_writes.c: the VFS the fsm's connection is opened with (its WAL's
 * writes gathered per commit). Registered once per process; VG_OK or
 * VG_EDB. fsm_wal_writes gives the writes SQLite made to F's WAL and those
 * that reached the file (both 0 for a connection of another VFS). */
#define FSM_WAL_VFS "vigil-wal"
int fsm_wal_vfs_register(void);
void fsm_wal_writes(struct vg_repl_fsm *f, uint64_t *writes, uint64_t *flushes);

/* record_summary.c: the count and hash sum of each record table's rows,
 * which the digest hashes in place of the rows. */
enum fsm_summed {
    FSM_SUMMED_ACTIONS, /* operator_actions */
    FSM_SUMMED_JOURNAL, /* alarm_journal */
    FSM_SUMMED_AUDIT,   /* audit */
    FSM_SUMMED_MAX
};
/* Register vg_row_hash, vg_add64, vg_sub64 and vg_sum64 on F's connection. */
int fsm_summary_functions(struct vg_repl_fsm *f);
/* The file's summary triggers (and a summary computed from the rows where
 * they were missing), and this connection's own; after every open and
 * every restore. VG_OK or VG_EDB. */
int fsm_summary_ensure(struct vg_repl_fsm *f);

/* An insert into alarm_journal or audit, bound column by column in the
 * table's order (every column, ?1 first) by fsm_row_*, which also hash
 * what they bind as vg_row_hash would hash the stored row. Strings are
 * bound SQLITE_STATIC: they must outlive fsm_row_insert. */
struct fsm_row {
    sqlite3_stmt *st;
    int col;
    struct fsm_hash_buf hb;
};
void fsm_row_begin(struct fsm_row *r, sqlite3_stmt *st);
void fsm_row_int(struct fsm_row *r, int64_t v);
void fsm_row_real(struct fsm_row *r, double v); /* NaN binds null */
void fsm_row_text(struct fsm_row *r, const char *s); /* NULL binds null */
void fsm_row_null(struct fsm_row *r);
void fsm_row_json(struct fsm_row *r, json_t *v); /* null, string or number */
/* Step the insert (WHAT names it in an error) and count its row as pending
 * for table T. VG_OK or VG_EDB. */
int fsm_row_insert(struct vg_repl_fsm *f, struct fsm_row *r, enum fsm_summed t,
                   const char *what);
/* Add the pending rows to record_summary: at the end of every command that
 * was applied. VG_OK or VG_EDB. */
int fsm_summary_flush(struct vg_repl_fsm *f);
/* Forget the pending rows: the command was rolled back. */
void fsm_summary_discard(struct vg_repl_fsm *f);

/* A summarized table recounted from its rows (scrub.c): how many rows it
 * holds and the wrapping sum of their hashes, and what its summary says. */
struct fsm_recount {
    const char *table; /* static */
    uint64_t rows, hash_sum;
    uint64_t want_rows, want_hash_sum;
};
/* Recount record table T from its rows into OUT. VG_OK or VG_EDB. */
int fsm_summary_recount(struct vg_repl_fsm *f, enum fsm_summed t,
                        struct fsm_recount *out);

/* actions.c: apply VG_CMD_SETPOINT / VG_CMD_SETPOINT_RESULT at INDEX
 * (inside fsm.c's transaction). Return VG_OK, VG_REPL_UNCHANGED, VG_EINVAL
 * (rejected) or VG_EDB (fatal). */
int fsm_apply_setpoint(struct vg_repl_fsm *f, uint64_t index,
                       const struct vg_cmd *cmd, json_t *body);
int fsm_apply_setpoint_result(struct vg_repl_fsm *f, uint64_t index,
                              const struct vg_cmd *cmd, json_t *body);

/* archive.c: VG_CMD_HISTORY_BATCH and VG_CMD_ARCHIVE_CLASSES. */
int fsm_apply_history_batch(struct vg_repl_fsm *f, uint64_t index,
                            const struct vg_cmd *cmd, json_t *body);
int fsm_apply_archive_classes(struct vg_repl_fsm *f, uint64_t index,
                              const struct vg_cmd *cmd, json_t *body);

/* archive.c, for retention.c: delete the samples older than BEFORE of the
 * tags in archive CLS ("" the default one; NULL every tag, which also
 * raises the watermark to BEFORE and is unchanged when BEFORE is not above
 * it), keeping archive_summary in step, walking the tags whose id is at
 * least FROM (0: the start of a cut). With STEP (level 4, retention.c),
 * the walk stops after FSM_CUT_STEP_TAGS tags and *RESUME is the id the
 * next step starts from; otherwise, or when no tag is left, *RESUME is -1.
 * *CHANGED tells whether anything was stored. */
#define FSM_CUT_STEP_TAGS 1024

/* retention.c: is a cut in steps (level 4) waiting for its next step? */
int fsm_retention_steps_pending(struct vg_repl_fsm *f, bool *pending);
int fsm_archive_cut(struct vg_repl_fsm *f, const char *cls, uint64_t before,
                    int64_t from, bool step, int64_t *resume, bool *changed);

/* fsm.c: the rows of SQL (two columns: a text key and an integer or text
 * value) as a new JSON object {key: value} in *OUT; WHAT names it in errors. */
int fsm_query_pairs(struct vg_repl_fsm *f, const char *sql, const char *what,
                    json_t **out);

/* archive.c: times in commands are integers 0 <= t < FSM_TIME_END (ms;
 * exact in a double, so in JSON). */
#define FSM_TIME_END (UINT64_C(1) << 53)
bool fsm_time_ok(json_t *v);

/* An archive's name in ARCHIVE_CLASSES and RETENTION_CUT: at most this many
 * bytes, and at most FSM_ARCHIVES_MAX archives in one command. */
#define FSM_ARCHIVE_NAME_MAX 64
#define FSM_ARCHIVES_MAX 1024

/* archive.c: VG_CMD_HISTORY_SAMPLES (binary). */
int fsm_apply_history_samples(struct vg_repl_fsm *f, uint64_t index,
                              const struct vg_cmd *cmd);

/* retention.c: VG_CMD_RETENTION_CUT. */
int fsm_apply_retention_cut(struct vg_repl_fsm *f, uint64_t index,
                            const struct vg_cmd *cmd, json_t *body);

/* Little-endian integers of the binary forms. */
static inline uint64_t fsm_get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = v << 8 | p[i];
    }
    return v;
}

static inline void fsm_put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

/* archive_recent.c: the archive's recent samples, staged one row per
 * history command and settled into archive_samples in rounds (see there).
 * "Live" records are the staged ones not settled yet. */
#define FSM_RECENT_REC_SIZE 25
struct fsm_recent_rec {
    int64_t id; /* archive_tags id */
    uint64_t t;
    double value;
    bool bad;
};

/* Stage RECS (N, sorted by (id, t), each distinct from every sample stored
 * or staged) as one row. */
int fsm_recent_stage(struct vg_repl_fsm *f, const struct fsm_recent_rec *recs,
                     size_t n);
/* At level 1: begin a round if one is due, and take one step of the
 * running one; STAGED is how many records the command being applied
 * staged. From level 2 on it only notes that there may be work for
 * vg_repl_fsm_archive_settle_some. */
int fsm_recent_settle(struct vg_repl_fsm *f, size_t staged);
/* Tag ID's live records with FROM <= t < TO, sorted by t, into a new array
 * *OUT (the caller frees it; NULL when there are none). */
int fsm_recent_range(struct vg_repl_fsm *f, int64_t id, uint64_t from,
                     uint64_t to, struct fsm_recent_rec **out, size_t *n);
/* One record per id with live records, sorted by id, t its newest time. */
int fsm_recent_newest(struct vg_repl_fsm *f, struct fsm_recent_rec **out,
                      size_t *n);
/* Is each of KEYS (N, sorted by (id, t)) a live record? into FOUND[N]. */
int fsm_recent_find(struct vg_repl_fsm *f, const struct fsm_recent_rec *keys,
                    size_t n, bool *found);
/* Does a live record have each of IDS (N, sorted ascending)? into HELD[N]. */
int fsm_recent_holds(struct vg_repl_fsm *f, const int64_t *ids, size_t n,
                     bool *held);
/* The range of times the rows hold, *ANY false when there are none. Every
 * live record is in it, and every time in it is held by a live or a
 * settled sample (a cut trims the rows too). */
int fsm_recent_bounds(struct vg_repl_fsm *f, bool *any, uint64_t *oldest,
                      uint64_t *newest);
/* CB for every live record until it returns other than VG_OK, which is then
 * returned. */
int fsm_recent_each(struct vg_repl_fsm *f,
                    int (*cb)(void *arg, const struct fsm_recent_rec *r), void *arg);
/* Drop the live records older than BEFORE of every tag (EVERY) or of the
 * tags in IDS (N_IDS, sorted ascending), calling DROPPED for each; how many
 * into *N_DROPPED. */
int fsm_recent_cut(struct vg_repl_fsm *f, bool every, const int64_t *ids,
                   size_t n_ids, uint64_t before,
                   void (*dropped)(void *arg, const struct fsm_recent_rec *r),
                   void *arg, uint64_t *n_dropped);

/* archive_chunks.c: the settled samples of cluster level 3 on, in
 * compressed per-tag chunks that never overlap in time (sample_chunk.h).
 * A damaged chunk fails any of these with VG_EDB and a sentence. */
struct vg_chunk_sample;
/* Store RECS (N, all of tag ID, sorted by t, none stored or staged). */
int fsm_chunks_add(struct vg_repl_fsm *f, int64_t id, const struct fsm_recent_rec *recs,
                   size_t n);
/* Tag ID's newest chunked time into *T, -1 when it has none. */
int fsm_chunks_newest(struct vg_repl_fsm *f, int64_t id, int64_t *t);
/* Does a chunk hold (ID, T)? */
int fsm_chunks_has(struct vg_repl_fsm *f, int64_t id, uint64_t t, bool *has);
/* Tag ID's newest chunked sample before T into *OUT, *HAVE false if none. */
int fsm_chunks_before(struct vg_repl_fsm *f, int64_t id, uint64_t t, bool *have,
                      struct fsm_recent_rec *out);
/* Drop tag ID's chunked samples older than BEFORE, calling DROPPED for each
 * (how many into *N_DROPPED); the time of its oldest chunked sample left
 * into *LEFT (UINT64_MAX: none; 0 when BEFORE is 0). */
int fsm_chunks_cut(struct vg_repl_fsm *f, int64_t id, uint64_t before,
                   void (*dropped)(void *arg, const struct fsm_recent_rec *r),
                   void *arg, uint64_t *n_dropped, uint64_t *left);
/* CB for every chunked sample (by tag, then time) until it returns other
 * than VG_OK, which is then returned. */
int fsm_chunks_each(struct vg_repl_fsm *f,
                    int (*cb)(void *arg, const struct fsm_recent_rec *r), void *arg);
/* Tag ID's chunked samples with FROM <= t < TO, oldest first: head is the
 * next one (NULL at the end or after a failure), pop moves on, close says
 * VG_OK or what failed (and frees). Reads one chunk at a time. */
struct fsm_chunk_cursor {
    struct vg_repl_fsm *f;
    sqlite3_stmt *st;
    int64_t id;
    uint64_t from, to;
    struct vg_chunk_sample *buf; /* one decoded chunk */
    size_t n, i;
    bool done;
    int rv;
};
int fsm_chunk_cursor_open(struct vg_repl_fsm *f, int64_t id, uint64_t from,
                          uint64_t to, struct fsm_chunk_cursor *c);
const struct vg_chunk_sample *fsm_chunk_cursor_head(const struct fsm_chunk_cursor *c);
void fsm_chunk_cursor_pop(struct fsm_chunk_cursor *c);
int fsm_chunk_cursor_close(struct fsm_chunk_cursor *c);

/* cluster_level.c: the stored apply level (1 when none is) into *OUT, and
 * VG_CMD_CLUSTER_LEVEL. */
int fsm_cluster_level(struct vg_repl_fsm *f, uint32_t *out);
int fsm_apply_cluster_level(struct vg_repl_fsm *f, uint64_t index, json_t *body);

/* archive.c: recount the archive (archive_samples and the live recent
 * records, archive_chunks) against archive_summary into OUT (table "the
 * archive").
 * VG_OK, or VG_EDB (also for a sample of a tag archive_tags lacks). */
int fsm_archive_recount(struct vg_repl_fsm *f, struct fsm_recount *out);

/* archive.c: drop the cache of tag ids and newest times (after a rollback
 * or a restore; harmless at any time). */
void fsm_tag_cache_free(struct vg_repl_fsm *f);

/* archive_recent.c: drop where the last settle step left the round (after
 * anything but a step changed the recent rows, a rollback or a restore;
 * harmless at any time). */
void fsm_settle_cache_free(struct vg_repl_fsm *f);

/* archive_recent.c: a time no recent record is older than into *T (the
 * rows' t_min; UINT64_MAX when there are none). */
int fsm_recent_oldest(struct vg_repl_fsm *f, uint64_t *t);

/* Both of the above, and archive_floor: the database may not be what they
 * describe. */
void fsm_caches_free(struct vg_repl_fsm *f);

/* alarm_log.c: VG_CMD_ALARM_STATE (BODY parsed by the caller) and
 * VG_CMD_ALARM_CHANGES. */
int fsm_apply_alarm_state(struct vg_repl_fsm *f, uint64_t index,
                          const struct vg_cmd *cmd, json_t *body);
int fsm_apply_alarm_changes(struct vg_repl_fsm *f, uint64_t index,
                            const struct vg_cmd *cmd);

/* alarm_changes.c: N bytes at S are UTF-8 as RFC 3629 has it, without NUL
 * (what a JSON string decoded by jansson holds). */
bool fsm_utf8_ok(const unsigned char *s, size_t n);

/* alarm_changes.c: the changes of an ALARM_STATE body into OUT (whose
 * strings borrow from BODY; OUT->json stays NULL). As
 * vg_repl_alarm_changes_decode. */
int fsm_alarm_changes_from_json(json_t *body, struct vg_repl_alarm_changes *out,
                                char *errmsg);

/* audit.c: VG_CMD_AUDIT, and the audit record that other commands' apply
 * adds in the same transaction. ID is the log index * 1024 + a position
 * unique within the command. OLD_VALUE and NEW_VALUE are strings, numbers
 * or NULL (borrowed). */
int fsm_apply_audit(struct vg_repl_fsm *f, uint64_t index,
                    const struct vg_cmd *cmd, json_t *body);
int fsm_audit_add(struct vg_repl_fsm *f, uint64_t id, const struct vg_cmd *cmd,
                  const char *kind, const char *object, json_t *old_value,
                  json_t *new_value, const char *user, const char *station,
                  const char *detail);
/* The same with text values (NULL: null) for OLD_VALUE and NEW_VALUE. */
int fsm_audit_add_text(struct vg_repl_fsm *f, uint64_t id, const struct vg_cmd *cmd,
                       const char *kind, const char *object, const char *old_value,
                       const char *new_value, const char *user, const char *station,
                       const char *detail);

/* wal_checkpointer.c: start the thread that checkpoints F's WAL (F->path in
 * WAL mode, opened) and replace SQLite's automatic checkpoint; stop it
 * (before F->db closes; harmless when not started); hold it back while the
 * database is replaced (pause waits for a checkpoint in progress). */
int fsm_ckpt_start(struct vg_repl_fsm *f);
void fsm_ckpt_stop(struct vg_repl_fsm *f);
void fsm_ckpt_pause(struct vg_repl_fsm *f);
void fsm_ckpt_resume(struct vg_repl_fsm *f);
/* A snapshot pins the database: checkpoints on the writer wait for a looser
 * bound until the WAL has started over (on the writer's thread). */
void fsm_ckpt_loosen(struct vg_repl_fsm *f);

/* fsm_snapshot.c: install the version-3 snapshot methods in F->fsm (after
 * the database is open); free a snapshot libraft began and never finalized
 * (at close). */
void fsm_snapshot_init(struct vg_repl_fsm *f);
void fsm_snapshot_drop(struct vg_repl_fsm *f);

#endif /* VG_REPL_FSM_INTERNAL_H */
