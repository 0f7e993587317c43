/* The replicated state machine: libraft commands applied to SQLite.
 *
 * Happy path of apply: libraft hands over a committed command; its index is
 * raft->last_applied + 1 (libraft 0.15 applies strictly in order and bumps
 * last_applied after apply returns). If the database already holds that index
 * (we are replaying the log after a restart) the command is skipped. Otherwise
 * one SQLite transaction applies the command, advances the chain hash and
 * stores the index and hash in vg_meta, then commits.
 *
 * Failure modes: a malformed or invalid command is still "applied" as a
 * rejection (index and hash advance, state does not) so every replica stays
 * in step; an SQLite error is fatal: apply returns an error, libraft stops
 * applying, and f->fatal tells the node to fail-stop.
 *
 * Project versions (VG_CMD_PROJECT_LOAD) are rows like any other state: the
 * bundle is a BLOB in project_versions and the active version a one-row
 * table, both replicated, digested and carried by snapshots.
 *
 * Snapshots are the database image (sqlite3_serialize). Restore copies an
 * image into the live database with the backup API, unless the live database
 * is already at or past the image's index: a node restarting with its own
 * durable database keeps it and libraft's replay of the log is skipped. */
#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fsm_internal.h"

/* Tables of replicated state, the order that makes their digest
 * deterministic, and the columns hashed. vg_meta is node-local bookkeeping
 * and is not in the digest.
 *
 * A project version's bundle is represented by its hash (taken once, at
 * apply) rather than hashed again at every checkpoint: bundles are megabytes
 * and the digest is computed inside apply, on the node's loop.
 *
 * Tables marked "lazy" contribute nothing while empty. They were added after
 * the first release: a node that predates them computes the same digest for
 * the same state as long as they are empty, so a rolling upgrade does not
 * report a false divergence (the original tables always hashed their query,
 * and must keep doing so for the same reason). */
static const struct {
    const char *table;
    const char *order;
    const char *columns;
    bool lazy;
    /* Digested only below this apply level (0: always); see
     * replication.h, "Apply levels". */
    uint32_t below_level;
} digest_tables[] = {
    {"kv", "key", "*", false, 0},
    {"nodes", "id", "*", false, 0},
    {"leaders", "term", "*", false, 0},
    {"checkpoints", "idx", "*", false, 0},
    {"project_versions", "version",
     "version, name, label, digest, bundle_hash, length(bundle), loaded_at,"
     " loaded_by, station, comment, summary, term, log_index",
     true, 0},
    {"project_active", "slot", "*", true, 0},
    /* operator_actions, alarm_journal and audit grow with every action and
     * are not hashed row by row either (that was 30-150 ms per checkpoint
     * after a day of acks, and unbounded): triggers keep their count and
     * an order-independent sum of row hashes in record_summary (see
     * record_summary.c). */
    {"record_summary", "tbl", "*", true, 0},
    /* The archive's samples are not hashed row by row (millions of rows at
     * every checkpoint): archive_summary keeps their count and an
     * order-independent sum of per-row hashes, maintained by apply. */
    {"archive_tags", "id", "*", true, 0},
    {"archive_summary", "slot", "*", true, 0},
    /* The recent rows' samples are in archive_summary already; these say
     * how each replica has split them between the rows and archive_samples
     * (archive_recent.c), without hashing megabytes of blobs. From level 2
     * on each node splits them in its own time: not replicated state. */
    {"archive_recent", "seq", "seq, n, t_min, t_max, id_min, id_max, length(data)",
     true, 2},
    {"archive_settle", "slot", "*", true, 2},
    {"alarm_states", "name", "*", true, 0},
    {"archive_classes", "name", "*", true, 0},
    {"retention_marks", "what", "*", true, 0},
    {"retention_steps", "what", "*", true, 0},
    {"cluster_level", "slot", "*", true, 0},
};

/* Schema of a fresh database. Every statement is idempotent: it also runs on
 * every open and after every snapshot restore, which is how databases (and
 * snapshot images) written by an older vigild gain the tables added since. */
static const char schema[] =
    "CREATE TABLE IF NOT EXISTS vg_meta(key TEXT PRIMARY KEY, value);"
    "CREATE TABLE IF NOT EXISTS kv(key TEXT PRIMARY KEY, value TEXT NOT NULL,"
    "  idx INTEGER NOT NULL, term INTEGER NOT NULL, time_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS nodes(id INTEGER PRIMARY KEY,"
    "  raft_address TEXT, client_address TEXT, idx INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS leaders(term INTEGER PRIMARY KEY,"
    "  node_id INTEGER NOT NULL, idx INTEGER NOT NULL, time_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS checkpoints(idx INTEGER PRIMARY KEY,"
    "  digest BLOB NOT NULL, chain BLOB NOT NULL, time_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS project_versions(version INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL, label TEXT, digest TEXT NOT NULL,"
    "  bundle BLOB NOT NULL, bundle_hash BLOB NOT NULL,"
    "  loaded_at INTEGER NOT NULL, loaded_by TEXT, station TEXT, comment TEXT,"
    "  summary TEXT NOT NULL, term INTEGER NOT NULL, log_index INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS project_versions_log_index"
    "  ON project_versions(log_index);"
    "CREATE TABLE IF NOT EXISTS project_active(slot INTEGER PRIMARY KEY"
    "  CHECK (slot = 0), version INTEGER NOT NULL, log_index INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS operator_actions(idx INTEGER PRIMARY KEY,"
    "  kind TEXT NOT NULL, tag TEXT NOT NULL, value REAL NOT NULL,"
    "  project_version INTEGER NOT NULL, user TEXT, station TEXT,"
    "  time_ms INTEGER NOT NULL, term INTEGER NOT NULL, node INTEGER NOT NULL,"
    "  outcome TEXT, message TEXT, outcome_ms INTEGER, outcome_idx INTEGER);"
    "CREATE INDEX IF NOT EXISTS operator_actions_tag ON operator_actions(tag, idx);"
    "CREATE INDEX IF NOT EXISTS operator_actions_open ON operator_actions(term)"
    "  WHERE outcome IS NULL;"
    /* archive.c */
    "CREATE TABLE IF NOT EXISTS archive_tags(id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE);"
    "CREATE TABLE IF NOT EXISTS archive_samples(tag INTEGER NOT NULL,"
    "  t INTEGER NOT NULL, value REAL NOT NULL, bad INTEGER NOT NULL,"
    "  PRIMARY KEY(tag, t)) WITHOUT ROWID;"
    /* archive_recent.c */
    "CREATE TABLE IF NOT EXISTS archive_recent(seq INTEGER PRIMARY KEY,"
    "  n INTEGER NOT NULL, t_min INTEGER NOT NULL, t_max INTEGER NOT NULL,"
    "  id_min INTEGER NOT NULL, id_max INTEGER NOT NULL, data BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS archive_settle(slot INTEGER PRIMARY KEY"
    "  CHECK (slot = 0), upto INTEGER NOT NULL, next INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS archive_summary(slot INTEGER PRIMARY KEY"
    "  CHECK (slot = 0), samples INTEGER NOT NULL, hash_sum INTEGER NOT NULL,"
    "  watermark_ms INTEGER NOT NULL);"
    /* alarm_log.c */
    "CREATE TABLE IF NOT EXISTS alarm_states(name TEXT PRIMARY KEY,"
    "  status TEXT NOT NULL, state TEXT NOT NULL, tag TEXT, section TEXT,"
    "  priority INTEGER, message TEXT, idx INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS alarm_journal(id INTEGER PRIMARY KEY,"
    "  time_ms INTEGER NOT NULL, alarm TEXT NOT NULL, tag TEXT, section TEXT,"
    "  priority INTEGER, cause TEXT NOT NULL, from_status TEXT NOT NULL,"
    "  to_status TEXT NOT NULL, active INTEGER NOT NULL,"
    "  shelved INTEGER NOT NULL, oos INTEGER NOT NULL, value REAL, user TEXT,"
    "  station TEXT, reason TEXT, message TEXT, term INTEGER NOT NULL,"
    "  node INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS alarm_journal_time ON alarm_journal(time_ms);"
    "CREATE INDEX IF NOT EXISTS alarm_journal_alarm ON alarm_journal(alarm, id);"
    /* audit.c */
    "CREATE TABLE IF NOT EXISTS audit(id INTEGER PRIMARY KEY,"
    "  time_ms INTEGER NOT NULL, kind TEXT NOT NULL, object TEXT, old_value,"
    "  new_value, user TEXT, station TEXT, detail TEXT, term INTEGER NOT NULL,"
    "  node INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS audit_time ON audit(time_ms);"
    /* archive.c, retention.c */
    "CREATE TABLE IF NOT EXISTS archive_classes(name TEXT PRIMARY KEY,"
    "  archive TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS archive_classes_archive"
    "  ON archive_classes(archive);"
    "CREATE TABLE IF NOT EXISTS retention_marks(what TEXT PRIMARY KEY,"
    "  before_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS retention_steps(what TEXT PRIMARY KEY,"
    "  before_ms INTEGER NOT NULL, next_id INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS record_summary(tbl TEXT PRIMARY KEY,"
    "  n INTEGER NOT NULL, hash_sum INTEGER NOT NULL);"
    /* cluster_level.c */
    "CREATE TABLE IF NOT EXISTS cluster_level(slot INTEGER PRIMARY KEY"
    "  CHECK (slot = 0), level INTEGER NOT NULL, log_index INTEGER NOT NULL);";

/* The rest (one string may not be longer than C11 promises to take). */
static const char schema_more[] =
    /* archive_chunks.c */
    "CREATE TABLE IF NOT EXISTS archive_chunks(tag INTEGER NOT NULL,"
    "  t_first INTEGER NOT NULL, t_last INTEGER NOT NULL, n INTEGER NOT NULL,"
    "  data BLOB NOT NULL, PRIMARY KEY(tag, t_first)) WITHOUT ROWID;";

void vg_hex(const unsigned char *bytes, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

static int unhex(const char *s, unsigned char *out, size_t n)
{
    if (strlen(s) != 2 * n) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        int v = 0;
        for (int k = 0; k < 2; k++) {
            char c = s[2 * i + (size_t)k];
            int d = (c >= '0' && c <= '9')   ? c - '0'
                    : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                                             : -1;
            if (d < 0) {
                return -1;
            }
            v = v * 16 + d;
        }
        out[i] = (unsigned char)v;
    }
    return 0;
}

const char *vg_verdict_name(int verdict)
{
    switch (verdict) {
    case VG_VERDICT_OK:
        return "ok";
    case VG_VERDICT_DIVERGED:
        return "diverged";
    default:
        return "unknown";
    }
}

int fsm_db_fail(struct vg_repl_fsm *f, const char *what)
{
    vg_errf(f->errmsg, "%s: %s (%s)", what, sqlite3_errmsg(f->db), f->path);
    return VG_EDB;
}

int fsm_query_pairs(struct vg_repl_fsm *f, const char *sql, const char *what,
                    json_t **out)
{
    sqlite3_stmt *st;
    json_t *o = json_object();
    int rc;

    *out = NULL;
    if (o == NULL) {
        vg_errf(f->errmsg, "out of memory reading %s", what);
        return VG_ENOMEM;
    }
    if (sqlite3_prepare_v2(f->db, sql, -1, &st, NULL) != SQLITE_OK) {
        json_decref(o);
        return fsm_db_fail(f, what);
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *key = (const char *)sqlite3_column_text(st, 0);
        json_t *v = sqlite3_column_type(st, 1) == SQLITE_INTEGER
                        ? json_integer(sqlite3_column_int64(st, 1))
                        : json_string((const char *)sqlite3_column_text(st, 1));
        if (key != NULL && json_object_set_new(o, key, v) != 0) {
            rc = SQLITE_NOMEM;
            break;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        json_decref(o);
        return fsm_db_fail(f, what);
    }
    *out = o;
    return VG_OK;
}

static int exec(struct vg_repl_fsm *f, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(f->db, sql, NULL, NULL, &err) != SQLITE_OK) {
        vg_errf(f->errmsg, "%s: %s (%s)", sql, err ? err : "?", f->path);
        sqlite3_free(err);
        return VG_EDB;
    }
    return VG_OK;
}

sqlite3_stmt *fsm_stmt(struct vg_repl_fsm *f, enum fsm_stmt_slot slot,
                       const char *sql)
{
    _Static_assert(FSM_STMT_MAX <= sizeof f->stmts / sizeof f->stmts[0],
                   "vg_repl_fsm.stmts has a slot for every statement");
    sqlite3_stmt *st = f->stmts[slot];

    if (st == NULL) {
        if (sqlite3_prepare_v3(f->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st,
                               NULL) != SQLITE_OK) {
            sqlite3_finalize(st);
            fsm_db_fail(f, "prepare");
            return NULL;
        }
        f->stmts[slot] = st;
        return st;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return st;
}

static void stmts_finalize(struct vg_repl_fsm *f)
{
    for (size_t i = 0; i < sizeof f->stmts / sizeof f->stmts[0]; i++) {
        sqlite3_finalize(f->stmts[i]);
        f->stmts[i] = NULL;
    }
}

static int meta_set(struct vg_repl_fsm *f, const char *key, int64_t i,
                    const void *blob, int n)
{
    sqlite3_stmt *st = fsm_stmt(f, FSM_STMT_META,
                                "INSERT OR REPLACE INTO vg_meta(key, value)"
                                " VALUES(?, ?)");
    int rc;
    if (st == NULL) {
        return VG_EDB;
    }
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (blob != NULL) {
        sqlite3_bind_blob(st, 2, blob, n, SQLITE_STATIC);
    } else {
        sqlite3_bind_int64(st, 2, i);
    }
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? VG_OK : fsm_db_fail(f, "write meta");
}

/* Load applied index, chain hash and the latest checkpoint from the db. */
static int load_meta(struct vg_repl_fsm *f)
{
    sqlite3_stmt *st;

    f->applied_index = 0;
    memset(f->chain, 0, sizeof f->chain);
    f->checkpoint_index = 0;
    memset(f->checkpoint_digest, 0, sizeof f->checkpoint_digest);

    if (sqlite3_prepare_v2(f->db, "SELECT key, value FROM vg_meta", -1, &st,
                           NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "read meta");
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *key = (const char *)sqlite3_column_text(st, 0);
        if (key == NULL) {
            continue;
        }
        if (strcmp(key, "applied_index") == 0) {
            f->applied_index = (uint64_t)sqlite3_column_int64(st, 1);
        } else if (strcmp(key, "chain") == 0 &&
                   sqlite3_column_bytes(st, 1) == VG_DIGEST_SIZE) {
            memcpy(f->chain, sqlite3_column_blob(st, 1), VG_DIGEST_SIZE);
        }
    }
    sqlite3_finalize(st);

    if (sqlite3_prepare_v2(f->db,
                           "SELECT idx, digest FROM checkpoints ORDER BY idx DESC LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "read checkpoints");
    }
    if (sqlite3_step(st) == SQLITE_ROW &&
        sqlite3_column_bytes(st, 1) == VG_DIGEST_SIZE) {
        f->checkpoint_index = (uint64_t)sqlite3_column_int64(st, 0);
        memcpy(f->checkpoint_digest, sqlite3_column_blob(st, 1),
               VG_DIGEST_SIZE);
    }
    sqlite3_finalize(st);
    return VG_OK;
}

void fsm_hb_put(struct fsm_hash_buf *hb, const void *p, size_t len)
{
    if (hb->n + len > sizeof hb->b) {
        crypto_generichash_update(&hb->h, hb->b, hb->n);
        hb->n = 0;
        if (len > sizeof hb->b) {
            crypto_generichash_update(&hb->h, p, len);
            return;
        }
    }
    memcpy(hb->b + hb->n, p, len);
    hb->n += len;
}

void fsm_hb_flush(struct fsm_hash_buf *hb)
{
    if (hb->n > 0) {
        crypto_generichash_update(&hb->h, hb->b, hb->n);
        hb->n = 0;
    }
}

static void hash_value(struct fsm_hash_buf *h, sqlite3_stmt *st, int c)
{
    unsigned char tag = (unsigned char)sqlite3_column_type(st, c);
    fsm_hb_put(h, &tag, 1);
    switch (tag) {
    case SQLITE_INTEGER: {
        int64_t v = sqlite3_column_int64(st, c);
        unsigned char b[8];
        for (int i = 0; i < 8; i++) {
            b[i] = (unsigned char)((uint64_t)v >> (8 * i));
        }
        fsm_hb_put(h, b, 8);
        break;
    }
    case SQLITE_FLOAT: {
        double v = sqlite3_column_double(st, c);
        fsm_hb_put(h, &v, 8);
        break;
    }
    case SQLITE_NULL:
        break;
    default: {
        const void *p = sqlite3_column_blob(st, c);
        uint32_t len = (uint32_t)sqlite3_column_bytes(st, c);
        unsigned char b[4] = {(unsigned char)len, (unsigned char)(len >> 8),
                              (unsigned char)(len >> 16),
                              (unsigned char)(len >> 24)};
        fsm_hb_put(h, b, 4);
        if (len > 0) {
            fsm_hb_put(h, p, len);
        }
    }
    }
}

int vg_repl_fsm_digest(struct vg_repl_fsm *f, unsigned char out[VG_DIGEST_SIZE])
{
    struct fsm_hash_buf *hb;
    char sql[320];
    uint32_t level;
    int rv;

    if ((rv = fsm_cluster_level(f, &level)) != VG_OK) {
        return rv;
    }
    if ((hb = malloc(sizeof *hb)) == NULL) {
        vg_errf(f->errmsg, "out of memory computing the digest");
        return VG_EDB;
    }
    hb->n = 0;
    crypto_generichash_init(&hb->h, NULL, 0, VG_DIGEST_SIZE);
    for (size_t t = 0; t < sizeof digest_tables / sizeof digest_tables[0]; t++) {
        sqlite3_stmt *st;
        bool hashed_query = false;
        int rc;
        if (digest_tables[t].below_level != 0 &&
            level >= digest_tables[t].below_level) {
            continue;
        }
        snprintf(sql, sizeof sql, "SELECT %s FROM %s ORDER BY %s",
                 digest_tables[t].columns, digest_tables[t].table,
                 digest_tables[t].order);
        if (sqlite3_prepare_v2(f->db, sql, -1, &st, NULL) != SQLITE_OK) {
            free(hb);
            return fsm_db_fail(f, "digest");
        }
        if (!digest_tables[t].lazy) {
            fsm_hb_put(hb, sql, strlen(sql));
            hashed_query = true;
        }
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            int n = sqlite3_column_count(st);
            if (!hashed_query) {
                fsm_hb_put(hb, sql, strlen(sql));
                hashed_query = true;
            }
            for (int c = 0; c < n; c++) {
                hash_value(hb, st, c);
            }
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) {
            free(hb);
            return fsm_db_fail(f, "digest step");
        }
    }
    fsm_hb_flush(hb);
    crypto_generichash_final(&hb->h, out, VG_DIGEST_SIZE);
    free(hb);
    return VG_OK;
}

/* ------------------------------------------------------------ commands */

/* Each apply_* returns VG_OK, VG_REPL_UNCHANGED (valid, nothing to change),
 * a rejection code (VG_EINVAL: the command is invalid and changes nothing) or
 * VG_EDB (fatal). */

static int apply_put(struct vg_repl_fsm *f, uint64_t index,
                     const struct vg_cmd *cmd, json_t *body)
{
    const char *key = json_string_value(json_object_get(body, "key"));
    const char *value = json_string_value(json_object_get(body, "value"));
    sqlite3_stmt *st;
    int rc;

    if (key == NULL || value == NULL || *key == '\0') {
        return VG_EINVAL;
    }
    if (sqlite3_prepare_v2(f->db,
                           "INSERT OR REPLACE INTO kv(key, value, idx, term, time_ms)"
                           " VALUES(?, ?, ?, ?, ?)",
                           -1, &st, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "prepare put");
    }
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, (int64_t)index);
    sqlite3_bind_int64(st, 4, (int64_t)cmd->term);
    sqlite3_bind_int64(st, 5, (int64_t)cmd->time_ms);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? VG_OK : fsm_db_fail(f, "put");
}

static int node_upsert(struct vg_repl_fsm *f, uint64_t index, json_int_t id,
                       const char *raft_address, const char *client_address,
                       bool replace)
{
    sqlite3_stmt *st;
    int rc;
    const char *sql =
        replace ? "INSERT OR REPLACE INTO nodes(id, raft_address, client_address, idx)"
                  " VALUES(?, ?, ?, ?)"
                : "INSERT OR IGNORE INTO nodes(id, raft_address, client_address, idx)"
                  " VALUES(?, ?, ?, ?)";
    if (id <= 0) {
        return VG_EINVAL;
    }
    if (sqlite3_prepare_v2(f->db, sql, -1, &st, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "prepare node");
    }
    sqlite3_bind_int64(st, 1, (int64_t)id);
    sqlite3_bind_text(st, 2, raft_address, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, client_address, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, (int64_t)index);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? VG_OK : fsm_db_fail(f, "node");
}

static int apply_node_info(struct vg_repl_fsm *f, uint64_t index,
                           json_t *body)
{
    json_t *id = json_object_get(body, "node_id");
    const char *raft = json_string_value(json_object_get(body, "raft_address"));
    const char *client =
        json_string_value(json_object_get(body, "client_address"));
    if (!json_is_integer(id) || raft == NULL || client == NULL) {
        return VG_EINVAL;
    }
    return node_upsert(f, index, json_integer_value(id), raft, client, true);
}

static int apply_node_forget(struct vg_repl_fsm *f, uint64_t index,
                             const struct vg_cmd *cmd, json_t *body)
{
    json_t *id = json_object_get(body, "node_id");
    sqlite3_stmt *st;
    int rc;
    if (!json_is_integer(id)) {
        return VG_EINVAL;
    }
    if (sqlite3_prepare_v2(f->db, "DELETE FROM nodes WHERE id = ?", -1, &st,
                           NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "prepare forget");
    }
    sqlite3_bind_int64(st, 1, (int64_t)json_integer_value(id));
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return fsm_db_fail(f, "forget");
    }
    {
        const char *user = NULL, *station = NULL;
        char object[32];
        /* Who asked, when the proposer says so (optional, not validated
         * beyond being strings: older leaders do not send them). */
        if (fsm_opt_string(body, "user", &user) != VG_OK) {
            user = NULL;
        }
        if (fsm_opt_string(body, "station", &station) != VG_OK) {
            station = NULL;
        }
        snprintf(object, sizeof object, "node %lld",
                 (long long)json_integer_value(id));
        return fsm_audit_add(f, index * 1024, cmd, "node_forget", object, NULL,
                             NULL, user, station, NULL);
    }
}

static int apply_announce(struct vg_repl_fsm *f, uint64_t index,
                          const struct vg_cmd *cmd, json_t *body)
{
    const char *raft = json_string_value(json_object_get(body, "raft_address"));
    const char *client =
        json_string_value(json_object_get(body, "client_address"));
    json_t *peers = json_object_get(body, "peers");
    sqlite3_stmt *st;
    size_t i;
    json_t *peer;
    int rv;

    if (raft == NULL || client == NULL || cmd->proposer == 0) {
        return VG_EINVAL;
    }
    if (sqlite3_prepare_v2(f->db,
                           "INSERT OR REPLACE INTO leaders(term, node_id, idx, time_ms)"
                           " VALUES(?, ?, ?, ?)",
                           -1, &st, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "prepare announce");
    }
    sqlite3_bind_int64(st, 1, (int64_t)cmd->term);
    sqlite3_bind_int64(st, 2, (int64_t)cmd->proposer);
    sqlite3_bind_int64(st, 3, (int64_t)index);
    sqlite3_bind_int64(st, 4, (int64_t)cmd->time_ms);
    rv = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rv != SQLITE_DONE) {
        return fsm_db_fail(f, "announce");
    }
    rv = node_upsert(f, index, (json_int_t)cmd->proposer, raft, client, true);
    if (rv != VG_OK) {
        return rv;
    }
    /* Peers the leader was configured with fill in addresses nobody has
     * announced yet; they never override what a node said of itself. */
    json_array_foreach(peers, i, peer)
    {
        json_t *id = json_object_get(peer, "node_id");
        const char *pr = json_string_value(json_object_get(peer, "raft_address"));
        const char *pc =
            json_string_value(json_object_get(peer, "client_address"));
        if (!json_is_integer(id) || pr == NULL || pc == NULL) {
            continue;
        }
        rv = node_upsert(f, index, json_integer_value(id), pr, pc, false);
        if (rv == VG_EDB) {
            return rv;
        }
    }
    return VG_OK;
}

#define CHECKPOINTS_KEPT "64"

/* A checkpoint first compares the leader's digest of an earlier checkpoint
 * with ours, then records our digest at this point of the log. Comparing
 * one checkpoint late is what makes it work: when the leader proposes
 * checkpoint N+1 it knows its own digest at checkpoint N, taken at the same
 * log position as everybody else's. */
static int apply_checkpoint(struct vg_repl_fsm *f, uint64_t index,
                            const struct vg_cmd *cmd, json_t *body)
{
    json_t *ref = json_object_get(body, "ref_index");
    const char *ref_hex = json_string_value(json_object_get(body, "ref_digest"));
    unsigned char digest[VG_DIGEST_SIZE];
    sqlite3_stmt *st;
    int rv;

    if (json_is_integer(ref) && json_integer_value(ref) > 0 && ref_hex != NULL) {
        unsigned char theirs[VG_DIGEST_SIZE];
        uint64_t ref_index = (uint64_t)json_integer_value(ref);
        if (unhex(ref_hex, theirs, VG_DIGEST_SIZE) != 0) {
            return VG_EINVAL;
        }
        if (sqlite3_prepare_v2(f->db, "SELECT digest FROM checkpoints WHERE idx = ?",
                               -1, &st, NULL) != SQLITE_OK) {
            return fsm_db_fail(f, "prepare checkpoint lookup");
        }
        sqlite3_bind_int64(st, 1, (int64_t)ref_index);
        if (sqlite3_step(st) == SQLITE_ROW &&
            sqlite3_column_bytes(st, 0) == VG_DIGEST_SIZE) {
            char mine_hex[VG_DIGEST_HEX];
            vg_hex(sqlite3_column_blob(st, 0), VG_DIGEST_SIZE, mine_hex);
            f->checked_index = ref_index;
            if (f->scrub.damaged) {
                /* The digest cannot see what the self-check found. */
            } else if (memcmp(sqlite3_column_blob(st, 0), theirs, VG_DIGEST_SIZE) ==
                       0) {
                f->verdict = VG_VERDICT_OK;
                snprintf(f->verdict_msg, sizeof f->verdict_msg,
                         "state at index %llu matches the leader's",
                         (unsigned long long)ref_index);
            } else {
                f->verdict = VG_VERDICT_DIVERGED;
                snprintf(f->verdict_msg, sizeof f->verdict_msg,
                         "state at index %llu differs: local digest %.16s…, "
                         "leader %llu has %.16s…",
                         (unsigned long long)ref_index, mine_hex,
                         (unsigned long long)cmd->proposer, ref_hex);
            }
        }
        sqlite3_finalize(st);
    }

    rv = vg_repl_fsm_digest(f, digest);
    if (rv != VG_OK) {
        return rv;
    }
    if (sqlite3_prepare_v2(f->db,
                           "INSERT OR REPLACE INTO checkpoints(idx, digest, chain, time_ms)"
                           " VALUES(?, ?, ?, ?)",
                           -1, &st, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "prepare checkpoint");
    }
    sqlite3_bind_int64(st, 1, (int64_t)index);
    sqlite3_bind_blob(st, 2, digest, VG_DIGEST_SIZE, SQLITE_TRANSIENT);
    sqlite3_bind_blob(st, 3, f->chain, VG_DIGEST_SIZE, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, (int64_t)cmd->time_ms);
    rv = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rv != SQLITE_DONE) {
        return fsm_db_fail(f, "checkpoint");
    }
    /* The table is digested whole and grew by a row every checkpoint
     * interval, forever; only the newest are ever compared (the next
     * checkpoint refers to this one). */
    if (exec(f, "DELETE FROM checkpoints WHERE idx NOT IN"
                " (SELECT idx FROM checkpoints ORDER BY idx DESC LIMIT "
                CHECKPOINTS_KEPT ")") != VG_OK) {
        return VG_EDB;
    }
    f->checkpoint_index = index;
    memcpy(f->checkpoint_digest, digest, VG_DIGEST_SIZE);
    return VG_OK;
}

/* An optional string member: absent or null gives NULL; anything else but a
 * string is invalid. */
int fsm_opt_string(json_t *body, const char *key, const char **out)
{
    json_t *v = json_object_get(body, key);
    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        return VG_OK;
    }
    if (!json_is_string(v)) {
        return VG_EINVAL;
    }
    *out = json_string_value(v);
    return VG_OK;
}

json_t *fsm_column_json(sqlite3_stmt *st, int col)
{
    switch (sqlite3_column_type(st, col)) {
    case SQLITE_NULL:
        return json_null();
    case SQLITE_INTEGER:
        return json_integer((json_int_t)sqlite3_column_int64(st, col));
    case SQLITE_FLOAT:
        return json_real(sqlite3_column_double(st, col));
    default:
        return json_string((const char *)sqlite3_column_text(st, col));
    }
}

void fsm_bind_opt_text(sqlite3_stmt *st, int col, const char *s)
{
    if (s != NULL) {
        sqlite3_bind_text(st, col, s, -1, SQLITE_TRANSIENT);
    } else {
        sqlite3_bind_null(st, col);
    }
}

/* The active version's digest into HEX ("" when none). */
static int active_digest(struct vg_repl_fsm *f, char hex[VG_DIGEST_HEX],
                         uint64_t *version)
{
    sqlite3_stmt *st;
    int rc;
    hex[0] = '\0';
    *version = 0;
    if (sqlite3_prepare_v2(f->db,
                           "SELECT v.version, v.digest FROM project_active a"
                           " JOIN project_versions v ON v.version = a.version"
                           " WHERE a.slot = 0",
                           -1, &st, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "prepare active project");
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *d = (const char *)sqlite3_column_text(st, 1);
        *version = (uint64_t)sqlite3_column_int64(st, 0);
        snprintf(hex, VG_DIGEST_HEX, "%s", d != NULL ? d : "");
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? VG_OK
                                                 : fsm_db_fail(f, "active project");
}

/* A project load stores the bundle as a new version and makes it active, in
 * the one transaction of this command: every node switches at the same log
 * index or, if the command is never committed, not at all. Loading the files
 * of the active version again stores nothing (VG_REPL_UNCHANGED). Version
 * numbers come from the table, never from a counter outside it, so a replica
 * restored from a snapshot numbers the next version like everybody else. */
static int apply_project_load(struct vg_repl_fsm *f, uint64_t index,
                              const struct vg_cmd *cmd, json_t *body)
{
    const char *name = json_string_value(json_object_get(body, "name"));
    const char *digest = json_string_value(json_object_get(body, "digest"));
    json_t *b64 = json_object_get(body, "bundle");
    json_t *summary = json_object_get(body, "summary");
    const char *label, *loaded_by, *station, *comment;
    unsigned char raw_digest[VG_DIGEST_SIZE];
    unsigned char bundle_hash[VG_DIGEST_SIZE];
    char active[VG_DIGEST_HEX];
    unsigned char *bundle = NULL;
    size_t bundle_len = 0;
    uint64_t active_version, next;
    char *summary_text = NULL;
    const char *key;
    json_t *value;
    sqlite3_stmt *st;
    int rv;

    if (name == NULL || *name == '\0' || digest == NULL ||
        unhex(digest, raw_digest, VG_DIGEST_SIZE) != 0 ||
        !json_is_string(b64) || json_string_length(b64) == 0 ||
        !json_is_object(summary) || fsm_opt_string(body, "label", &label) != VG_OK ||
        fsm_opt_string(body, "loaded_by", &loaded_by) != VG_OK ||
        fsm_opt_string(body, "station", &station) != VG_OK ||
        fsm_opt_string(body, "comment", &comment) != VG_OK) {
        return VG_EINVAL;
    }
    json_object_foreach(summary, key, value)
    {
        if (!json_is_integer(value) || json_integer_value(value) < 0) {
            return VG_EINVAL;
        }
    }
    rv = active_digest(f, active, &active_version);
    if (rv != VG_OK) {
        return rv;
    }
    if (strcmp(active, digest) == 0) {
        return VG_REPL_UNCHANGED;
    }

    bundle = malloc(json_string_length(b64) / 4 * 3 + 3);
    if (bundle == NULL) {
        /* Not a property of the command: failing here would make replicas
         * disagree, so it is fatal like an SQLite error. */
        vg_errf(f->errmsg, "out of memory decoding a project bundle");
        return VG_EDB;
    }
    if (sodium_base642bin(bundle, json_string_length(b64) / 4 * 3 + 3,
                          json_string_value(b64), json_string_length(b64), NULL,
                          &bundle_len, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
        bundle_len == 0) {
        free(bundle);
        return VG_EINVAL;
    }
    crypto_generichash(bundle_hash, sizeof bundle_hash, bundle, bundle_len,
                       NULL, 0);
    /* Sorted keys: the stored text is the same on every replica however the
     * leader ordered them. */
    summary_text = json_dumps(summary, JSON_COMPACT | JSON_SORT_KEYS);
    if (summary_text == NULL) {
        free(bundle);
        vg_errf(f->errmsg, "out of memory storing a project summary");
        return VG_EDB;
    }

    if (sqlite3_prepare_v2(f->db,
                           "SELECT coalesce(max(version), 0) FROM project_versions",
                           -1, &st, NULL) != SQLITE_OK) {
        rv = fsm_db_fail(f, "prepare project version");
        goto out;
    }
    rv = sqlite3_step(st);
    next = (uint64_t)sqlite3_column_int64(st, 0) + 1;
    sqlite3_finalize(st);
    if (rv != SQLITE_ROW) {
        rv = fsm_db_fail(f, "project version");
        goto out;
    }

    if (sqlite3_prepare_v2(f->db,
                           "INSERT INTO project_versions(version, name, label,"
                           " digest, bundle, bundle_hash, loaded_at, loaded_by,"
                           " station, comment, summary, term, log_index)"
                           " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           -1, &st, NULL) != SQLITE_OK) {
        rv = fsm_db_fail(f, "prepare project load");
        goto out;
    }
    sqlite3_bind_int64(st, 1, (int64_t)next);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
    fsm_bind_opt_text(st, 3, label);
    sqlite3_bind_text(st, 4, digest, -1, SQLITE_TRANSIENT);
    sqlite3_bind_blob64(st, 5, bundle, bundle_len, SQLITE_STATIC);
    sqlite3_bind_blob(st, 6, bundle_hash, VG_DIGEST_SIZE, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 7, (int64_t)cmd->time_ms);
    fsm_bind_opt_text(st, 8, loaded_by);
    fsm_bind_opt_text(st, 9, station);
    fsm_bind_opt_text(st, 10, comment);
    sqlite3_bind_text(st, 11, summary_text, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 12, (int64_t)cmd->term);
    sqlite3_bind_int64(st, 13, (int64_t)index);
    rv = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rv != SQLITE_DONE) {
        rv = fsm_db_fail(f, "project load");
        goto out;
    }

    if (sqlite3_prepare_v2(f->db,
                           "INSERT OR REPLACE INTO project_active(slot, version,"
                           " log_index) VALUES(0, ?, ?)",
                           -1, &st, NULL) != SQLITE_OK) {
        rv = fsm_db_fail(f, "prepare project activate");
        goto out;
    }
    sqlite3_bind_int64(st, 1, (int64_t)next);
    sqlite3_bind_int64(st, 2, (int64_t)index);
    rv = sqlite3_step(st);
    sqlite3_finalize(st);
    rv = rv == SQLITE_DONE ? VG_OK : fsm_db_fail(f, "project activate");
    if (rv == VG_OK) {
        json_t *old_v = active_version > 0 ? json_integer((json_int_t)active_version)
                                           : json_null();
        json_t *new_v = json_integer((json_int_t)next);
        rv = fsm_audit_add(f, index * 1024, cmd, "project_load", name, old_v,
                           new_v, loaded_by, station, comment);
        json_decref(old_v);
        json_decref(new_v);
    }
out:
    free(summary_text);
    free(bundle);
    return rv;
}

static int dispatch(struct vg_repl_fsm *f, uint64_t index,
                    const struct vg_cmd *cmd)
{
    json_error_t jerr;
    json_t *body;
    int rv;

    /* The binary bodies: no JSON. */
    if (cmd->type == VG_CMD_ALARM_CHANGES) {
        return fsm_apply_alarm_changes(f, index, cmd);
    }
    if (cmd->type == VG_CMD_HISTORY_SAMPLES) {
        return fsm_apply_history_samples(f, index, cmd);
    }
    body = json_loadb(cmd->body, cmd->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(body)) {
        json_decref(body);
        return VG_EINVAL;
    }
    switch (cmd->type) {
    case VG_CMD_ANNOUNCE:
        rv = apply_announce(f, index, cmd, body);
        break;
    case VG_CMD_PUT:
        rv = apply_put(f, index, cmd, body);
        break;
    case VG_CMD_NODE_INFO:
        rv = apply_node_info(f, index, body);
        break;
    case VG_CMD_CHECKPOINT:
        rv = apply_checkpoint(f, index, cmd, body);
        break;
    case VG_CMD_NODE_FORGET:
        rv = apply_node_forget(f, index, cmd, body);
        break;
    case VG_CMD_PROJECT_LOAD:
        rv = apply_project_load(f, index, cmd, body);
        break;
    case VG_CMD_SETPOINT:
        rv = fsm_apply_setpoint(f, index, cmd, body);
        break;
    case VG_CMD_SETPOINT_RESULT:
        rv = fsm_apply_setpoint_result(f, index, cmd, body);
        break;
    case VG_CMD_ALARM_STATE:
        rv = fsm_apply_alarm_state(f, index, cmd, body);
        break;
    case VG_CMD_HISTORY_BATCH:
        rv = fsm_apply_history_batch(f, index, cmd, body);
        break;
    case VG_CMD_RETENTION_CUT:
        rv = fsm_apply_retention_cut(f, index, cmd, body);
        break;
    case VG_CMD_AUDIT:
        rv = fsm_apply_audit(f, index, cmd, body);
        break;
    case VG_CMD_ARCHIVE_CLASSES:
        rv = fsm_apply_archive_classes(f, index, cmd, body);
        break;
    case VG_CMD_CLUSTER_LEVEL:
        rv = fsm_apply_cluster_level(f, index, body);
        break;
    default:
        rv = VG_EUNSUPPORTED;
    }
    json_decref(body);
    return rv;
}

static void chain_advance(unsigned char chain[VG_DIGEST_SIZE], uint64_t index,
                          const struct raft_buffer *buf, size_t len)
{
    crypto_generichash_state h;
    unsigned char b[8];
    for (int i = 0; i < 8; i++) {
        b[i] = (unsigned char)(index >> (8 * i));
    }
    crypto_generichash_init(&h, NULL, 0, VG_DIGEST_SIZE);
    crypto_generichash_update(&h, chain, VG_DIGEST_SIZE);
    crypto_generichash_update(&h, b, 8);
    crypto_generichash_update(&h, buf->base, len);
    crypto_generichash_final(&h, chain, VG_DIGEST_SIZE);
}

void fsm_caches_free(struct vg_repl_fsm *f)
{
    fsm_tag_cache_free(f);
    fsm_settle_cache_free(f);
    f->archive_floor.known = false;
    f->archive_floor_walk.on = false;
}

static int apply_one(struct raft_fsm *fsm, const struct raft_buffer *buf,
                     void **result)
{
    struct vg_repl_fsm *f = fsm->data;
    struct vg_cmd cmd;
    uint64_t index;
    unsigned char chain[VG_DIGEST_SIZE];
    size_t hashed_len;
    int outcome;
    int rv;

    *result = NULL;
    if (f->fatal) {
        return RAFT_IOERR;
    }
    index = f->raft != NULL ? (uint64_t)f->raft->last_applied + 1
                            : f->applied_index + 1;
    if (index <= f->applied_index) {
        /* Replay after a restart: the database already has it. */
        f->n_skipped++;
        *result = (void *)(intptr_t)VG_OK;
        return 0;
    }

    outcome = vg_cmd_decode(buf, &cmd, NULL);
    hashed_len = outcome == VG_OK ? VG_CMD_HEADER_SIZE + cmd.body_len : buf->len;

    if (exec(f, "BEGIN IMMEDIATE") != VG_OK) {
        goto fatal;
    }
    if (outcome == VG_OK) {
        fsm_summary_discard(f);
        outcome = dispatch(f, index, &cmd);
        if ((outcome == VG_OK || outcome == VG_REPL_UNCHANGED) &&
            fsm_summary_flush(f) != VG_OK) {
            outcome = VG_EDB;
        }
        if (outcome == VG_EDB) {
            exec(f, "ROLLBACK");
            fsm_summary_discard(f);
            fsm_caches_free(f);
            goto fatal;
        }
        if (outcome != VG_OK && outcome != VG_REPL_UNCHANGED) {
            /* A rejected command must leave no partial effect, nor a cached
             * tag id or pending summary that the rollback took away. */
            exec(f, "ROLLBACK");
            fsm_summary_discard(f);
            fsm_caches_free(f);
            if (exec(f, "BEGIN IMMEDIATE") != VG_OK) {
                goto fatal;
            }
        }
    }
    memcpy(chain, f->chain, sizeof chain);
    chain_advance(chain, index, buf, hashed_len);
    rv = meta_set(f, "applied_index", (int64_t)index, NULL, 0);
    if (rv == VG_OK) {
        rv = meta_set(f, "chain", 0, chain, VG_DIGEST_SIZE);
    }
    if (rv != VG_OK || exec(f, "COMMIT") != VG_OK) {
        exec(f, "ROLLBACK");
        fsm_caches_free(f);
        goto fatal;
    }
    memcpy(f->chain, chain, sizeof chain);
    f->applied_index = index;
    f->n_applied++;
    if (outcome != VG_OK && outcome != VG_REPL_UNCHANGED) {
        f->n_rejected++;
    }
    *result = (void *)(intptr_t)outcome;
    if (f->applied_cb != NULL) {
        /* A command that did not decode has no fields to show. */
        f->applied_cb(f, index, outcome == VG_EMALFORMED || outcome == VG_EUNSUPPORTED
                                    ? NULL : &cmd, outcome);
    }
    return 0;

fatal:
    f->fatal = 1;
    return RAFT_IOERR;
}

/* apply_one, timed: the node tells a long loop iteration spent applying
 * from one spent elsewhere (status "loop"). */
static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf,
                     void **result)
{
    struct vg_repl_fsm *f = fsm->data;
    struct timespec t0, t1;
    int rv;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    rv = apply_one(fsm, buf, result);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    f->apply_ns += (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000ll +
                              (t1.tv_nsec - t0.tv_nsec));
    return rv;
}

/* ------------------------------------------------------ snapshot/restore */

/* One integer from SQL on DB into *OUT: VG_OK, VG_ENOTFOUND when no row,
 * VG_EMALFORMED otherwise. */
static int image_int(sqlite3 *db, const char *sql, sqlite3_int64 *out)
{
    sqlite3_stmt *st;
    int rc;
    *out = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        return VG_EMALFORMED;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (sqlite3_column_type(st, 0) != SQLITE_INTEGER) {
            rc = SQLITE_MISMATCH;
        }
        *out = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? VG_OK : rc == SQLITE_DONE ? VG_ENOTFOUND : VG_EMALFORMED;
}

/* The index an image holds: the applied_index row of vg_meta, found by
 * scanning the table as load_meta does (through the key's index, one
 * damaged page made a newer image read as index 0, found by fuzz_snapshot).
 * Missing or not an integer: not an image of ours. */
static int image_applied_index(sqlite3 *img, uint64_t *out)
{
    sqlite3_int64 v;
    int rv = image_int(img,
                       "SELECT value FROM vg_meta NOT INDEXED"
                       " WHERE key = 'applied_index'",
                       &v);
    *out = rv == VG_OK && v >= 0 ? (uint64_t)v : 0;
    return rv == VG_OK && v >= 0 ? VG_OK : VG_EMALFORMED;
}

/* What a table or index of DB is made of, in a form that does not depend
 * on how its CREATE statement was written (whitespace, quoting: a vigild
 * that reformats its schema must still take an older node's image): a
 * table's columns with their declared type, NOT NULL and key position, an
 * index's columns. Parameters: ?1 'table' or 'index', ?2 its name. */
static const char shape_sql[] =
    "SELECT CASE ?1 WHEN 'table' THEN"
    " (SELECT group_concat(x, ',') FROM (SELECT name || ' ' || type || ' ' ||"
    "  \"notnull\" || ' ' || pk AS x FROM pragma_table_info(?2) ORDER BY cid))"
    " ELSE (SELECT group_concat(x, ',') FROM (SELECT coalesce(name, '#' || cid)"
    "  AS x FROM pragma_index_info(?2) ORDER BY seqno)) END";

/* The shape of TYPE NAME in the database of ST (shape_sql, prepared), into
 * OUT: false when it has none (no such table or index). */
static bool shape_of(sqlite3_stmt *st, const unsigned char *type,
                     const unsigned char *name, char *out, size_t size)
{
    bool found = false;
    sqlite3_bind_text(st, 1, (const char *)type, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, (const char *)name, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        snprintf(out, size, "%s", (const char *)sqlite3_column_text(st, 0));
        found = true;
    }
    sqlite3_reset(st);
    return found;
}

/* Whether a table or index of IMG is made otherwise than ours (WHY names
 * it). One of ours it lacks is not: an older vigild's image. */
static bool image_schema_differs(struct vg_repl_fsm *f, sqlite3 *img, char *why,
                                 size_t size)
{
    sqlite3_stmt *list = NULL, *theirs = NULL, *mine = NULL;
    char a[4096], b[4096];
    bool differs = false;
    int rc = SQLITE_ERROR;

    if (sqlite3_prepare_v2(img,
                           "SELECT type, name FROM sqlite_schema"
                           " WHERE type IN ('table', 'index')",
                           -1, &list, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(img, shape_sql, -1, &theirs, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(f->db, shape_sql, -1, &mine, NULL) != SQLITE_OK) {
        snprintf(why, size, "its schema cannot be read");
        differs = true;
        goto out;
    }
    while (!differs && (rc = sqlite3_step(list)) == SQLITE_ROW) {
        const unsigned char *type = sqlite3_column_text(list, 0);
        const unsigned char *name = sqlite3_column_text(list, 1);
        if (type == NULL || name == NULL) {
            continue;
        }
        if (!shape_of(mine, type, name, b, sizeof b)) {
            continue; /* not one of ours */
        }
        if (!shape_of(theirs, type, name, a, sizeof a) || strcmp(a, b) != 0) {
            snprintf(why, size, "its %s %.64s is declared otherwise", type, name);
            differs = true;
        }
    }
    if (!differs && rc != SQLITE_DONE) {
        snprintf(why, size, "its schema cannot be read");
        differs = true;
    }
out:
    sqlite3_finalize(list);
    sqlite3_finalize(theirs);
    sqlite3_finalize(mine);
    return differs;
}

/* Whether IMG may replace F's database: checked before anything of it is
 * copied, so that a refused image leaves the replica as it was. VG_OK;
 * VG_EMALFORMED (refuse: a damaged image) or VG_EUNSUPPORTED (this vigild
 * cannot apply the image's cluster level) with a sentence in WHY. */
static int image_check(struct vg_repl_fsm *f, sqlite3 *img, char *why, size_t size)
{
    sqlite3_int64 mine = 0, theirs = 0, level = 1, tables = 0;
    sqlite3_stmt *st;
    bool ok = false;
    int rv;

    /* A WAL database cannot change its page size: the copy would fail
     * halfway, with our database already partly overwritten. */
    if (image_int(f->db, "PRAGMA page_size", &mine) != VG_OK ||
        image_int(img, "PRAGMA page_size", &theirs) != VG_OK || mine != theirs) {
        snprintf(why, size, "its page size %lld is not the database's %lld",
                 (long long)theirs, (long long)mine);
        return VG_EMALFORMED;
    }
    /* Every page and b-tree of the image, without comparing indexes with
     * their tables (integrity_check's part, several times slower): a
     * damaged page must not be copied over a sound database. */
    if (sqlite3_prepare_v2(img, "PRAGMA quick_check(1)", -1, &st, NULL) == SQLITE_OK) {
        ok = sqlite3_step(st) == SQLITE_ROW &&
             sqlite3_stricmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
        sqlite3_finalize(st);
    }
    if (!ok) {
        snprintf(why, size, "it is damaged (quick_check: %s)", sqlite3_errmsg(img));
        return VG_EMALFORMED;
    }
    /* Tables are created once, never altered (schema, IF NOT EXISTS): a
     * table or index the image shares with us must be declared alike, or
     * every statement on it would fail after the copy (a damaged schema
     * page that quick_check passes, found by fuzz_snapshot). An image of
     * an older vigild lacks some; they are created after the copy. */
    if (image_schema_differs(f, img, why, size)) {
        return VG_EMALFORMED;
    }
    /* No table (an older vigild's image) or no row: level 1. */
    rv = image_int(img,
                   "SELECT count(*) FROM sqlite_schema"
                   " WHERE type = 'table' AND name = 'cluster_level'",
                   &tables);
    if (rv == VG_OK && tables > 0) {
        rv = image_int(img, "SELECT level FROM cluster_level WHERE slot = 0", &level);
        if (rv == VG_ENOTFOUND) {
            level = 1;
            rv = VG_OK;
        }
    }
    if (rv != VG_OK || level < 1 || level > INT32_MAX) {
        snprintf(why, size, "its cluster level cannot be read");
        return VG_EMALFORMED;
    }
    if ((uint64_t)level > vg_repl_fsm_max_level(f)) {
        snprintf(why, size,
                 "it is at cluster level %lld; this vigild applies up to level %u:"
                 " run a newer vigild on this node",
                 (long long)level, (unsigned)vg_repl_fsm_max_level(f));
        return VG_EUNSUPPORTED;
    }
    return VG_OK;
}

/* libraft hands a snapshot to restore at start-up (its latest one, usually
 * older than our durable database: kept) and when the leader sends one to
 * a follower too far behind. A damaged image is refused (RAFT_CORRUPT)
 * before anything of it is copied: the replica keeps its state and says so
 * (errmsg, verdict message, n_refused); libraft 0.15 then applies nothing
 * more until a sound one arrives. An image this vigild cannot apply stops
 * the node (fatal), like a command of a level above it. Only a failure
 * while copying or after it leaves the database replaced halfway: fatal. */
static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct vg_repl_fsm *f = fsm->data;
    sqlite3 *img = NULL;
    sqlite3_backup *bk;
    uint64_t image_index;
    char why[VG_ERRMSG_SIZE - 80];
    int rv = RAFT_CORRUPT;

    if (buf->len < 100 || memcmp(buf->base, "SQLite format 3", 16) != 0) {
        snprintf(why, sizeof why, "%zu bytes that are not a database", buf->len);
        goto refuse;
    }
    /* Read in place: the image is only read, and stays ours until IMG is
     * closed below. A copy of it cost 0.4 s of the follower's loop at
     * 153 MB (archive_apply_bench restore_ms: 0.85-1.05 s with it). */
    if (sqlite3_open(":memory:", &img) != SQLITE_OK ||
        sqlite3_deserialize(img, "main", buf->base, (sqlite3_int64)buf->len,
                            (sqlite3_int64)buf->len,
                            SQLITE_DESERIALIZE_READONLY) != SQLITE_OK) {
        snprintf(why, sizeof why, "it cannot be opened");
        goto refuse;
    }
    if (image_applied_index(img, &image_index) != VG_OK) {
        snprintf(why, sizeof why, "it has no applied index");
        goto refuse;
    }
    if (image_index <= f->applied_index && f->verdict != VG_VERDICT_DIVERGED) {
        /* Our durable database already holds everything in the snapshot (the
         * usual case at start-up): keep it. */
        rv = 0;
        goto out;
    }
    switch (image_check(f, img, why, sizeof why)) {
    case VG_OK:
        break;
    case VG_EUNSUPPORTED:
        vg_errf(f->errmsg, "restore: snapshot at index %llu refused: %s",
                (unsigned long long)image_index, why);
        f->fatal = 1;
        rv = RAFT_IOERR;
        goto out;
    default:
        goto refuse;
    }
    bk = sqlite3_backup_init(f->db, "main", img, "main");
    if (bk == NULL) {
        fsm_db_fail(f, "restore: backup init");
        rv = RAFT_IOERR;
        goto out;
    }
    fsm_caches_free(f); /* another database from here on */
    f->archive_settle.idle = false; /* it may hold recent rows */
    fsm_ckpt_pause(f);
    if (sqlite3_backup_step(bk, -1) != SQLITE_DONE) {
        sqlite3_backup_finish(bk);
        fsm_ckpt_resume(f);
        fsm_db_fail(f, "restore: backup");
        f->fatal = 1;
        rv = RAFT_IOERR;
        goto out;
    }
    sqlite3_backup_finish(bk);
    fsm_ckpt_resume(f);
    /* An image written by an older vigild lacks the tables (and the
     * summary triggers) added since. */
    if (exec(f, schema) != VG_OK || exec(f, schema_more) != VG_OK || fsm_summary_ensure(f) != VG_OK ||
        load_meta(f) != VG_OK || vg_repl_fsm_level_check(f) != VG_OK) {
        f->fatal = 1;
        rv = RAFT_IOERR;
        goto out;
    }
    if (f->applied_index != image_index) {
        vg_errf(f->errmsg, "restore: the restored database holds index %llu,"
                           " its image said %llu",
                (unsigned long long)f->applied_index, (unsigned long long)image_index);
        f->fatal = 1;
        rv = RAFT_IOERR;
        goto out;
    }
    f->n_restored++;
    f->scrub.damaged = false; /* the rows it found damaged are gone */
    f->verdict = VG_VERDICT_UNKNOWN;
    snprintf(f->verdict_msg, sizeof f->verdict_msg,
             "restored from snapshot at index %llu",
             (unsigned long long)f->applied_index);
    rv = 0;
    goto out;

refuse:
    f->n_refused++;
    vg_errf(f->errmsg, "restore: snapshot refused, %s", why);
    snprintf(f->verdict_msg, sizeof f->verdict_msg,
             "refused a snapshot: %s; still at index %llu", why,
             (unsigned long long)f->applied_index);
    rv = RAFT_CORRUPT;
out:
    sqlite3_close(img);
    if (rv == 0) {
        raft_free(buf->base);
    }
    return rv;
}

/* ------------------------------------------------------------ lifecycle */

/* Whether the database ended up in WAL mode (a path SQLite cannot give a
 * WAL, such as ":memory:", stays in its own mode). */
static bool wal_mode(struct vg_repl_fsm *f)
{
    sqlite3_stmt *st;
    bool wal = false;
    if (sqlite3_prepare_v2(f->db, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK) {
        wal = sqlite3_step(st) == SQLITE_ROW &&
              sqlite3_stricmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
        sqlite3_finalize(st);
    }
    return wal;
}

/* SQLite counts every allocation for sqlite3_memory_used() under a global
 * mutex, which perf showed at 4 % of a node's time during an
 * acknowledgment storm (a lock and an unlock per malloc and free, on the
 * loop and on the checkpointer thread). Vigil never reads those counters.
 * The setting only takes before SQLite initialises: should something in
 * the process have used SQLite first, it fails and nothing changes. */
static void sqlite_configure(void)
{
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}
static pthread_once_t sqlite_configured = PTHREAD_ONCE_INIT;

/* Open f->db on PATH with FLAGS through VFS (NULL: the default one);
 * VG_OK, or VG_EDB with a sentence in f->errmsg. */
static int connect_db(struct vg_repl_fsm *f, const char *path, int flags,
                      const char *vfs)
{
    pthread_once(&sqlite_configured, sqlite_configure);
    if (sqlite3_open_v2(path, &f->db, flags, vfs) != SQLITE_OK) {
        vg_errf(f->errmsg, "cannot open database %s%s: %s", path,
                (flags & SQLITE_OPEN_READONLY) ? " to read" : "",
                f->db ? sqlite3_errmsg(f->db) : "out of memory");
        sqlite3_close(f->db);
        f->db = NULL;
        return VG_EDB;
    }
    sqlite3_busy_timeout(f->db, 2000);
    return VG_OK;
}

int vg_repl_fsm_open(struct vg_repl_fsm *f, const char *path)
{
    int rv;

    /* Before the VFS is registered: that initialises SQLite. */
    pthread_once(&sqlite_configured, sqlite_configure);
    memset(f, 0, sizeof *f);
    if (sodium_init() < 0) {
        vg_errf(f->errmsg, "libsodium failed to initialise");
        return VG_EIO;
    }
    snprintf(f->path, sizeof f->path, "%s", path);
    if (fsm_wal_vfs_register() != VG_OK) {
        vg_errf(f->errmsg, "cannot register SQLite VFS %s", FSM_WAL_VFS);
        return VG_EDB;
    }
    if (connect_db(f, path,
                   SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                   FSM_WAL_VFS) != VG_OK) {
        return VG_EDB;
    }
    /* synchronous=NORMAL in WAL mode: a power cut may lose the last
     * transactions but never corrupts; those are replayed from the raft log,
     * which libraft fsyncs. */
    if ((rv = exec(f, "PRAGMA journal_mode=WAL")) != VG_OK ||
        (rv = exec(f, "PRAGMA synchronous=NORMAL")) != VG_OK ||
        (rv = exec(f, "PRAGMA cache_size=-65536")) != VG_OK ||
        /* A statement that inserts several rows keeps a journal of the
         * pages it changes, to undo itself should it fail midway; past
         * 64 KiB SQLite writes that journal to a temporary file. The
         * archive's moves (archive_recent.c) change hundreds of pages per
         * statement: every page went through pwrite a second time, and
         * applying a history batch took twice as long (archive_apply_bench
         * at 20 000 tags: 616k against 296k samples/s). In memory it is
         * bounded by one statement's pages. */
        (rv = exec(f, "PRAGMA temp_store=MEMORY")) != VG_OK ||
        (rv = fsm_summary_functions(f)) != VG_OK ||
        (rv = exec(f, schema)) != VG_OK || (rv = exec(f, schema_more)) != VG_OK || (rv = fsm_summary_ensure(f)) != VG_OK ||
        (rv = load_meta(f)) != VG_OK ||
        (wal_mode(f) && (rv = fsm_ckpt_start(f)) != VG_OK)) {
        stmts_finalize(f);
        sqlite3_close(f->db);
        f->db = NULL;
        return rv;
    }
    f->fsm.data = f;
    f->fsm.apply = fsm_apply;
    f->fsm.restore = fsm_restore;
    fsm_snapshot_init(f);
    f->verdict = VG_VERDICT_UNKNOWN;
    snprintf(f->verdict_msg, sizeof f->verdict_msg, "no checkpoint compared yet");
    return VG_OK;
}

int vg_repl_fsm_open_reader(struct vg_repl_fsm *f, const char *path)
{
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", path);
    /* The plain unix VFS: a reader writes nothing, and the writer's WAL
     * frames reach the file before their commit is visible
     * (wal_writes.c). */
    return connect_db(f, path, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
}

int vg_repl_fsm_read_begin(struct vg_repl_fsm *f, uint64_t *applied)
{
    sqlite3_stmt *st;
    int rc;

    *applied = 0;
    if (exec(f, "BEGIN") != VG_OK) {
        return VG_EDB;
    }
    /* The first read fixes the state the transaction sees. */
    if (sqlite3_prepare_v2(f->db,
                           "SELECT value FROM vg_meta WHERE key = 'applied_index'",
                           -1, &st, NULL) != SQLITE_OK) {
        fsm_db_fail(f, "read applied index");
        exec(f, "ROLLBACK");
        return VG_EDB;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *applied = (uint64_t)sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        fsm_db_fail(f, "read applied index");
        exec(f, "ROLLBACK");
        return VG_EDB;
    }
    return VG_OK;
}

void vg_repl_fsm_read_end(struct vg_repl_fsm *f)
{
    if (!sqlite3_get_autocommit(f->db)) {
        sqlite3_exec(f->db, "ROLLBACK", NULL, NULL, NULL);
    }
}

void vg_repl_fsm_close(struct vg_repl_fsm *f)
{
    fsm_snapshot_drop(f);
    fsm_ckpt_stop(f);
    stmts_finalize(f);
    fsm_caches_free(f);
    if (f->db != NULL) {
        sqlite3_close(f->db);
        f->db = NULL;
    }
}

int vg_repl_fsm_get(struct vg_repl_fsm *f, const char *key, char **value)
{
    sqlite3_stmt *st;
    int rc;
    *value = NULL;
    if (sqlite3_prepare_v2(f->db, "SELECT value FROM kv WHERE key = ?", -1, &st,
                           NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "get");
    }
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        *value = strdup(v != NULL ? v : "");
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        return fsm_db_fail(f, "get");
    }
    return rc == SQLITE_ROW && *value == NULL ? VG_ENOMEM : VG_OK;
}

int vg_repl_fsm_node_client_address(struct vg_repl_fsm *f, uint64_t node_id,
                                    char *out, size_t size)
{
    sqlite3_stmt *st;
    int rv = VG_ENOTFOUND;
    if (sqlite3_prepare_v2(f->db, "SELECT client_address FROM nodes WHERE id = ?",
                           -1, &st, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "node lookup");
    }
    sqlite3_bind_int64(st, 1, (int64_t)node_id);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL) {
        snprintf(out, size, "%s", (const char *)sqlite3_column_text(st, 0));
        rv = VG_OK;
    }
    sqlite3_finalize(st);
    return rv;
}

char *vg_repl_fsm_checkpoint_body(struct vg_repl_fsm *f)
{
    char hex[VG_DIGEST_HEX];
    json_t *o;
    char *s;
    vg_hex(f->checkpoint_digest, VG_DIGEST_SIZE, hex);
    o = json_pack("{sIss}", "ref_index", (json_int_t)f->checkpoint_index,
                  "ref_digest", hex);
    if (o == NULL) {
        return NULL;
    }
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

/* ------------------------------------------------------ project versions */

void vg_repl_project_clear(struct vg_repl_project *p)
{
    free(p->name);
    free(p->label);
    free(p->loaded_by);
    free(p->station);
    free(p->comment);
    free(p->summary);
    memset(p, 0, sizeof *p);
}

void vg_repl_project_list_free(struct vg_repl_project *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        vg_repl_project_clear(&v[i]);
    }
    free(v);
}

int vg_repl_fsm_project_active(struct vg_repl_fsm *f, uint64_t *version,
                               char *digest_hex)
{
    char hex[VG_DIGEST_HEX];
    int rv = active_digest(f, hex, version);
    if (digest_hex != NULL) {
        snprintf(digest_hex, VG_DIGEST_HEX, "%s", rv == VG_OK ? hex : "");
    }
    return rv;
}

/* Columns read by row_to_project, in its order. */
#define PROJECT_COLUMNS                                                        \
    "v.version, v.digest, v.name, v.label, v.loaded_by, v.station, v.comment," \
    " v.summary, v.loaded_at, v.term, v.log_index, length(v.bundle),"          \
    " v.version = coalesce((SELECT version FROM project_active WHERE slot = 0), 0)"

static char *column_dup(sqlite3_stmt *st, int c, bool *nomem)
{
    const char *s = (const char *)sqlite3_column_text(st, c);
    char *copy;
    if (s == NULL) {
        return NULL;
    }
    copy = strdup(s);
    if (copy == NULL) {
        *nomem = true;
    }
    return copy;
}

static int row_to_project(sqlite3_stmt *st, struct vg_repl_project *p)
{
    const char *digest = (const char *)sqlite3_column_text(st, 1);
    bool nomem = false;
    memset(p, 0, sizeof *p);
    p->version = (uint64_t)sqlite3_column_int64(st, 0);
    snprintf(p->digest, sizeof p->digest, "%s", digest != NULL ? digest : "");
    p->name = column_dup(st, 2, &nomem);
    p->label = column_dup(st, 3, &nomem);
    p->loaded_by = column_dup(st, 4, &nomem);
    p->station = column_dup(st, 5, &nomem);
    p->comment = column_dup(st, 6, &nomem);
    p->summary = column_dup(st, 7, &nomem);
    p->loaded_at_ms = (uint64_t)sqlite3_column_int64(st, 8);
    p->term = (uint64_t)sqlite3_column_int64(st, 9);
    p->log_index = (uint64_t)sqlite3_column_int64(st, 10);
    p->bundle_size = (uint64_t)sqlite3_column_int64(st, 11);
    p->active = sqlite3_column_int(st, 12) != 0;
    if (nomem) {
        vg_repl_project_clear(p);
        return VG_ENOMEM;
    }
    return VG_OK;
}

/* VERSION 0 means the active version: resolve it. */
static int resolve_version(struct vg_repl_fsm *f, uint64_t *version)
{
    char hex[VG_DIGEST_HEX];
    int rv;
    if (*version != 0) {
        return VG_OK;
    }
    rv = active_digest(f, hex, version);
    if (rv == VG_OK && *version == 0) {
        rv = VG_ENOTFOUND;
    }
    return rv;
}

int vg_repl_fsm_project_info(struct vg_repl_fsm *f, uint64_t version,
                             struct vg_repl_project *out)
{
    sqlite3_stmt *st;
    int rv;

    memset(out, 0, sizeof *out);
    if ((rv = resolve_version(f, &version)) != VG_OK) {
        return rv;
    }
    if (sqlite3_prepare_v2(f->db,
                           "SELECT " PROJECT_COLUMNS
                           " FROM project_versions v WHERE v.version = ?",
                           -1, &st, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "prepare project info");
    }
    sqlite3_bind_int64(st, 1, (int64_t)version);
    rv = sqlite3_step(st);
    if (rv == SQLITE_ROW) {
        rv = row_to_project(st, out);
    } else {
        rv = rv == SQLITE_DONE ? VG_ENOTFOUND : fsm_db_fail(f, "project info");
    }
    sqlite3_finalize(st);
    return rv;
}

int vg_repl_fsm_project_list(struct vg_repl_fsm *f, size_t limit,
                             struct vg_repl_project **out, size_t *n,
                             size_t *total)
{
    struct vg_repl_project *v = NULL;
    size_t count = 0;
    sqlite3_stmt *st;
    int64_t stored;
    int rc;
    int rv = VG_OK;

    *out = NULL;
    *n = 0;
    if (sqlite3_prepare_v2(f->db, "SELECT count(*) FROM project_versions", -1,
                           &st, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "prepare project count");
    }
    rc = sqlite3_step(st);
    stored = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) {
        return fsm_db_fail(f, "project count");
    }
    if (total != NULL) {
        *total = (size_t)stored;
    }
    /* The newest LIMIT, then reversed into oldest-first order. */
    if (sqlite3_prepare_v2(f->db,
                           "SELECT " PROJECT_COLUMNS
                           " FROM project_versions v ORDER BY v.version DESC"
                           " LIMIT ?",
                           -1, &st, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "prepare project list");
    }
    sqlite3_bind_int64(st, 1, limit > 0 ? (int64_t)limit : -1);
    v = calloc(limit > 0 && (int64_t)limit < stored ? limit : (size_t)stored + 1,
               sizeof *v);
    if (v == NULL) {
        sqlite3_finalize(st);
        return VG_ENOMEM;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && (int64_t)count < stored) {
        if ((rv = row_to_project(st, &v[count])) != VG_OK) {
            break;
        }
        count++;
    }
    sqlite3_finalize(st);
    if (rv == VG_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        rv = fsm_db_fail(f, "project list");
    }
    if (rv != VG_OK) {
        vg_repl_project_list_free(v, count);
        return rv;
    }
    for (size_t i = 0; i < count / 2; i++) {
        struct vg_repl_project tmp = v[i];
        v[i] = v[count - 1 - i];
        v[count - 1 - i] = tmp;
    }
    *out = v;
    *n = count;
    return VG_OK;
}

int vg_repl_fsm_project_bundle(struct vg_repl_fsm *f, uint64_t version,
                               uint64_t offset, size_t max,
                               unsigned char **data, size_t *len,
                               uint64_t *total, struct vg_repl_project *info)
{
    struct vg_repl_project meta;
    sqlite3_stmt *st;
    size_t want;
    int rc;
    int rv;

    *data = NULL;
    *len = 0;
    *total = 0;
    if (info != NULL) {
        memset(info, 0, sizeof *info);
    }
    if ((rv = vg_repl_fsm_project_info(f, version, &meta)) != VG_OK) {
        return rv;
    }
    *total = meta.bundle_size;
    if (offset > meta.bundle_size) {
        vg_repl_project_clear(&meta);
        return VG_EINVAL;
    }
    want = meta.bundle_size - offset < max ? (size_t)(meta.bundle_size - offset)
                                           : max;
    if (want > 0) {
        /* substr() on a BLOB counts bytes from 1; only the slice is copied
         * out of SQLite. */
        if (sqlite3_prepare_v2(f->db,
                               "SELECT substr(bundle, ?, ?) FROM project_versions"
                               " WHERE version = ?",
                               -1, &st, NULL) != SQLITE_OK) {
            vg_repl_project_clear(&meta);
            return fsm_db_fail(f, "prepare project bundle");
        }
        sqlite3_bind_int64(st, 1, (int64_t)offset + 1);
        sqlite3_bind_int64(st, 2, (int64_t)want);
        sqlite3_bind_int64(st, 3, (int64_t)meta.version);
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW || (size_t)sqlite3_column_bytes(st, 0) != want) {
            sqlite3_finalize(st);
            vg_repl_project_clear(&meta);
            return rc == SQLITE_ROW ? VG_EMALFORMED : fsm_db_fail(f, "project bundle");
        }
        *data = malloc(want);
        if (*data == NULL) {
            sqlite3_finalize(st);
            vg_repl_project_clear(&meta);
            return VG_ENOMEM;
        }
        memcpy(*data, sqlite3_column_blob(st, 0), want);
        *len = want;
        sqlite3_finalize(st);
    }
    if (info != NULL) {
        *info = meta;
    } else {
        vg_repl_project_clear(&meta);
    }
    return VG_OK;
}

int vg_repl_fsm_project_at(struct vg_repl_fsm *f, uint64_t index,
                           uint64_t *version)
{
    sqlite3_stmt *st;
    int rc;
    *version = 0;
    if (sqlite3_prepare_v2(f->db,
                           "SELECT version FROM project_versions WHERE log_index = ?",
                           -1, &st, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "prepare project lookup");
    }
    sqlite3_bind_int64(st, 1, (int64_t)index);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *version = (uint64_t)sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        return fsm_db_fail(f, "project lookup");
    }
    return rc == SQLITE_ROW ? VG_OK : VG_ENOTFOUND;
}
