/* The record tables' summaries: operator_actions, alarm_journal and audit
 * grow with every action and are not hashed row by row by the digest (that
 * was 30-150 ms per checkpoint after a day of acks, and unbounded); the
 * digest hashes record_summary instead, which holds each table's row count
 * and the wrapping sum of a 64-bit hash of every row (vg_row_hash).
 *
 * Who keeps the sums. Deletes (retention cuts) and updates (a setpoint's
 * outcome) go through triggers, so that no statement can forget them. The
 * inserts of alarm_journal and audit, one of each per acknowledgment, are
 * counted by the code that binds them instead (fsm_row_*): the trigger of
 * an insert (a trigger program, the row hash over SQLite values, and an
 * upsert of record_summary per row) was a third of applying an
 * acknowledgment (alarm_apply_bench: 15.7 against 10.4 us of CPU per ack
 * without the insert triggers). The binder hashes exactly the values it
 * binds, in the table's column order, and each column's type affinity
 * keeps those values as bound (integers in INTEGER columns, text in TEXT,
 * finite doubles in REAL, anything in the untyped audit values), so the
 * sum equals what the trigger computed; tests recompute it from the rows.
 * The pending counts go into record_summary at the end of each command
 * (fsm_summary_flush). No command inserts into a table and then updates or
 * deletes its rows, so a trigger never runs before the row it adjusts is
 * there, exactly as when inserts had triggers.
 *
 * Compatibility. The database keeps the triggers it always had (…_v1,
 * insert included): an older vigild that opens this file or a snapshot of
 * it counts with them as before. This connection turns the triggers of
 * "main" off (SQLITE_DBCONFIG_ENABLE_TRIGGER) and runs TEMP triggers of its
 * own for what the binder does not count; TEMP triggers are not part of the
 * file or the snapshot. */
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "fsm_internal.h"

static const struct {
    const char *table;
    bool counted_by_binder; /* inserts counted by fsm_row_insert */
} summarized[] = {
    [FSM_SUMMED_ACTIONS] = {"operator_actions", false},
    [FSM_SUMMED_JOURNAL] = {"alarm_journal", true},
    [FSM_SUMMED_AUDIT] = {"audit", true},
};
_Static_assert(sizeof summarized / sizeof summarized[0] == FSM_SUMMED_MAX,
               "a name for every summarized table");

/* ------------------------------------------------------------ row hash */

/* A value as vg_row_hash serializes it: SQLite's type code, then 8 bytes
 * little endian for an integer or a real (-0.0 as +0.0: a REAL column may
 * give back +0.0 for a stored -0.0, and a row must hash the same when
 * inserted and when deleted), a 4-byte length and the bytes for text or a
 * blob, nothing for null. */
static void put_u64(struct fsm_hash_buf *hb, unsigned char type, uint64_t x)
{
    unsigned char b[9];
    b[0] = type;
    for (int k = 0; k < 8; k++) {
        b[1 + k] = (unsigned char)(x >> (8 * k));
    }
    fsm_hb_put(hb, b, sizeof b);
}

static void put_int(struct fsm_hash_buf *hb, int64_t v)
{
    put_u64(hb, SQLITE_INTEGER, (uint64_t)v);
}

static void put_real(struct fsm_hash_buf *hb, double d)
{
    uint64_t x;
    if (d == 0.0) {
        d = 0.0;
    }
    memcpy(&x, &d, 8);
    put_u64(hb, SQLITE_FLOAT, x);
}

static void put_bytes(struct fsm_hash_buf *hb, unsigned char type, const void *p,
                      uint32_t len)
{
    unsigned char b[5] = {type, (unsigned char)len, (unsigned char)(len >> 8),
                          (unsigned char)(len >> 16), (unsigned char)(len >> 24)};
    fsm_hb_put(hb, b, sizeof b);
    if (len > 0) {
        fsm_hb_put(hb, p, len);
    }
}

static void put_null(struct fsm_hash_buf *hb)
{
    unsigned char type = SQLITE_NULL;
    fsm_hb_put(hb, &type, 1);
}

static uint64_t row_hash_end(struct fsm_hash_buf *hb)
{
    unsigned char out[8];
    uint64_t v = 0;

    fsm_hb_flush(hb);
    crypto_generichash_final(&hb->h, out, sizeof out);
    for (int k = 0; k < 8; k++) {
        v |= (uint64_t)out[k] << (8 * k);
    }
    return v;
}

static void row_hash_begin(struct fsm_hash_buf *hb)
{
    hb->n = 0;
    crypto_generichash_init(&hb->h, NULL, 0, 8);
}

/* vg_row_hash(v, ...): 64 bits of BLAKE2b over the values' serialization. */
static void fn_row_hash(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    struct fsm_hash_buf hb;

    row_hash_begin(&hb);
    for (int i = 0; i < argc; i++) {
        int type = sqlite3_value_type(argv[i]);
        if (type == SQLITE_INTEGER) {
            put_int(&hb, sqlite3_value_int64(argv[i]));
        } else if (type == SQLITE_FLOAT) {
            put_real(&hb, sqlite3_value_double(argv[i]));
        } else if (type == SQLITE_NULL) {
            put_null(&hb);
        } else {
            const void *p = sqlite3_value_blob(argv[i]);
            put_bytes(&hb, (unsigned char)type, p,
                      (uint32_t)sqlite3_value_bytes(argv[i]));
        }
    }
    sqlite3_result_int64(ctx, (int64_t)row_hash_end(&hb));
}

/* vg_add64(a, b) and vg_sub64(a, b): wrapping 64-bit arithmetic (SQLite's
 * own turns an overflowing sum into a float). */
static void fn_add64(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    sqlite3_result_int64(ctx, (int64_t)((uint64_t)sqlite3_value_int64(argv[0]) +
                                        (uint64_t)sqlite3_value_int64(argv[1])));
}

static void fn_sub64(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    sqlite3_result_int64(ctx, (int64_t)((uint64_t)sqlite3_value_int64(argv[0]) -
                                        (uint64_t)sqlite3_value_int64(argv[1])));
}

/* vg_sum64(x): the wrapping sum of a column, for the first summary. */
static void fn_sum64_step(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    uint64_t *acc = sqlite3_aggregate_context(ctx, sizeof *acc);
    (void)argc;
    if (acc != NULL) {
        *acc += (uint64_t)sqlite3_value_int64(argv[0]);
    }
}

static void fn_sum64_final(sqlite3_context *ctx)
{
    uint64_t *acc = sqlite3_aggregate_context(ctx, 0);
    sqlite3_result_int64(ctx, acc != NULL ? (int64_t)*acc : 0);
}

int fsm_summary_functions(struct vg_repl_fsm *f)
{
    const int fl = SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS;
    if (sqlite3_create_function(f->db, "vg_row_hash", -1, fl, NULL, fn_row_hash,
                                NULL, NULL) != SQLITE_OK ||
        sqlite3_create_function(f->db, "vg_add64", 2, fl, NULL, fn_add64, NULL,
                                NULL) != SQLITE_OK ||
        sqlite3_create_function(f->db, "vg_sub64", 2, fl, NULL, fn_sub64, NULL,
                                NULL) != SQLITE_OK ||
        sqlite3_create_function(f->db, "vg_sum64", 1, fl, NULL, NULL,
                                fn_sum64_step, fn_sum64_final) != SQLITE_OK) {
        return fsm_db_fail(f, "register SQL functions");
    }
    return VG_OK;
}

/* ---------------------------------------------------------- the binder */

void fsm_row_begin(struct fsm_row *r, sqlite3_stmt *st)
{
    r->st = st;
    r->col = 0;
    row_hash_begin(&r->hb);
}

void fsm_row_int(struct fsm_row *r, int64_t v)
{
    sqlite3_bind_int64(r->st, ++r->col, v);
    put_int(&r->hb, v);
}

void fsm_row_real(struct fsm_row *r, double v)
{
    /* SQLite stores a NaN as null. */
    if (isnan(v)) {
        fsm_row_null(r);
        return;
    }
    sqlite3_bind_double(r->st, ++r->col, v);
    put_real(&r->hb, v);
}

void fsm_row_text(struct fsm_row *r, const char *s)
{
    size_t len;
    if (s == NULL) {
        fsm_row_null(r);
        return;
    }
    len = strlen(s);
    sqlite3_bind_text(r->st, ++r->col, s, (int)len, SQLITE_STATIC);
    put_bytes(&r->hb, SQLITE_TEXT, s, (uint32_t)len);
}

void fsm_row_null(struct fsm_row *r)
{
    sqlite3_bind_null(r->st, ++r->col);
    put_null(&r->hb);
}

void fsm_row_json(struct fsm_row *r, json_t *v)
{
    if (v == NULL || json_is_null(v)) {
        fsm_row_null(r);
    } else if (json_is_string(v)) {
        fsm_row_text(r, json_string_value(v));
    } else if (json_is_integer(v)) {
        fsm_row_int(r, (int64_t)json_integer_value(v));
    } else {
        fsm_row_real(r, json_number_value(v));
    }
}

int fsm_row_insert(struct vg_repl_fsm *f, struct fsm_row *r, enum fsm_summed t,
                   const char *what)
{
    int rc = sqlite3_step(r->st);
    uint64_t h = row_hash_end(&r->hb);

    sqlite3_reset(r->st);
    if (rc != SQLITE_DONE) {
        return fsm_db_fail(f, what);
    }
    f->summary_pending[t].n++;
    f->summary_pending[t].hash_sum += h;
    return VG_OK;
}

int fsm_summary_flush(struct vg_repl_fsm *f)
{
    for (size_t t = 0; t < FSM_SUMMED_MAX; t++) {
        sqlite3_stmt *st;
        int rc;
        if (f->summary_pending[t].n == 0) {
            continue;
        }
        st = fsm_stmt(f, FSM_STMT_SUMMARY_ADD,
                      "INSERT INTO record_summary(tbl, n, hash_sum) VALUES(?, ?, ?)"
                      " ON CONFLICT(tbl) DO UPDATE SET n = n + excluded.n,"
                      " hash_sum = vg_add64(hash_sum, excluded.hash_sum)");
        if (st == NULL) {
            return VG_EDB;
        }
        sqlite3_bind_text(st, 1, summarized[t].table, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (int64_t)f->summary_pending[t].n);
        sqlite3_bind_int64(st, 3, (int64_t)f->summary_pending[t].hash_sum);
        rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE) {
            return fsm_db_fail(f, "record summary");
        }
        f->summary_pending[t].n = 0;
        f->summary_pending[t].hash_sum = 0;
    }
    return VG_OK;
}

void fsm_summary_discard(struct vg_repl_fsm *f)
{
    memset(f->summary_pending, 0, sizeof f->summary_pending);
}

/* ------------------------------------------------------------ triggers */

/* The columns of TBL as "NEW.a, NEW.b", "OLD.a, OLD.b" and "a, b"
 * (sqlite3_malloc'd, freed by the caller, also on failure). */
static int table_columns(struct vg_repl_fsm *f, const char *tbl, char **cols_new,
                         char **cols_old, char **cols)
{
    char *sql = sqlite3_mprintf("PRAGMA table_info(%s)", tbl);
    sqlite3_stmt *st;
    int rc, rv;

    *cols_new = sqlite3_mprintf("");
    *cols_old = sqlite3_mprintf("");
    *cols = sqlite3_mprintf("");
    if (sql == NULL || sqlite3_prepare_v2(f->db, sql, -1, &st, NULL) != SQLITE_OK) {
        sqlite3_free(sql);
        return fsm_db_fail(f, "summary columns");
    }
    sqlite3_free(sql);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && *cols_new != NULL &&
           *cols_old != NULL && *cols != NULL) {
        const char *c = (const char *)sqlite3_column_text(st, 1);
        const char *sep = **cols == '\0' ? "" : ", ";
        char *a = sqlite3_mprintf("%s%sNEW.\"%w\"", *cols_new, sep, c);
        char *b = sqlite3_mprintf("%s%sOLD.\"%w\"", *cols_old, sep, c);
        char *d = sqlite3_mprintf("%s%s\"%w\"", *cols, sep, c);
        sqlite3_free(*cols_new);
        sqlite3_free(*cols_old);
        sqlite3_free(*cols);
        *cols_new = a;
        *cols_old = b;
        *cols = d;
    }
    /* All the columns or an error. A pragma stopped early (sqlite3_interrupt
     * from a scrub's budget, a busy or failing read) has listed only the
     * first few, and the statement that uses them, begun after this one
     * ended, no longer sees the interrupt: a recount would hash the first
     * few columns and call a whole row changed (a trigger made from them
     * would hash too little for good). The loop stops on SQLITE_ROW only
     * when a list could not be grown (NULL, below). */
    rv = rc == SQLITE_DONE || rc == SQLITE_ROW ? VG_OK : fsm_db_fail(f, "summary columns");
    sqlite3_finalize(st);
    if (rv == VG_OK && (*cols_new == NULL || *cols_old == NULL || *cols == NULL ||
                        **cols == '\0')) {
        rv = fsm_db_fail(f, "summary columns");
    }
    return rv;
}

/* Whether MASTER (sqlite_master or sqlite_temp_master) has trigger NAME. */
static bool has_trigger(struct vg_repl_fsm *f, const char *master, const char *name,
                        int *rv)
{
    char *sql = sqlite3_mprintf("SELECT 1 FROM %s WHERE type = 'trigger'"
                                " AND name = %Q", master, name);
    sqlite3_stmt *st;
    bool have;

    *rv = VG_OK;
    if (sql == NULL || sqlite3_prepare_v2(f->db, sql, -1, &st, NULL) != SQLITE_OK) {
        sqlite3_free(sql);
        *rv = fsm_db_fail(f, "summary triggers");
        return false;
    }
    sqlite3_free(sql);
    have = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return have;
}

/* The triggers of the file, as every vigild since the summaries wrote
 * them: a database (or a snapshot image) from before them gets them here
 * and its summary computed once from the rows. The triggers list the
 * table's columns as they are at creation; a column added later needs new
 * trigger names (…_v2). */
static int file_triggers(struct vg_repl_fsm *f, const char *tbl)
{
    char *sql = NULL, *cols_new, *cols_old, *cols;
    char name[64];
    int rv;

    snprintf(name, sizeof name, "vg_sum_%s_ins_v1", tbl);
    if (has_trigger(f, "sqlite_master", name, &rv) || rv != VG_OK) {
        return rv;
    }
    if ((rv = table_columns(f, tbl, &cols_new, &cols_old, &cols)) == VG_OK) {
        sql = sqlite3_mprintf(
            "SAVEPOINT summaries;"
            "CREATE TRIGGER vg_sum_%s_ins_v1 AFTER INSERT ON %s BEGIN"
            " INSERT INTO record_summary(tbl, n, hash_sum)"
            "  VALUES('%s', 1, vg_row_hash(%s))"
            "  ON CONFLICT(tbl) DO UPDATE SET n = n + 1,"
            "  hash_sum = vg_add64(hash_sum, excluded.hash_sum); END;"
            "CREATE TRIGGER vg_sum_%s_del_v1 AFTER DELETE ON %s BEGIN"
            " UPDATE record_summary SET n = n - 1,"
            "  hash_sum = vg_sub64(hash_sum, vg_row_hash(%s)) WHERE tbl = '%s'; END;"
            "CREATE TRIGGER vg_sum_%s_upd_v1 AFTER UPDATE ON %s BEGIN"
            " UPDATE record_summary SET hash_sum = vg_add64(vg_sub64(hash_sum,"
            "  vg_row_hash(%s)), vg_row_hash(%s)) WHERE tbl = '%s'; END;"
            "DELETE FROM record_summary WHERE tbl = '%s';"
            "INSERT INTO record_summary(tbl, n, hash_sum)"
            " SELECT '%s', count(*), vg_sum64(vg_row_hash(%s)) FROM %s"
            " HAVING count(*) > 0;"
            "RELEASE summaries;",
            tbl, tbl, tbl, cols_new, tbl, tbl, cols_old, tbl, tbl, tbl, cols_old,
            cols_new, tbl, tbl, tbl, cols, tbl);
        if (sql == NULL) {
            rv = fsm_db_fail(f, "summary triggers");
        } else if (sqlite3_exec(f->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
            rv = fsm_db_fail(f, "summary triggers");
            sqlite3_exec(f->db, "ROLLBACK TO summaries; RELEASE summaries", NULL, NULL,
                         NULL);
        }
    }
    sqlite3_free(sql);
    sqlite3_free(cols_new);
    sqlite3_free(cols_old);
    sqlite3_free(cols);
    return rv;
}

/* This connection's TEMP triggers for TBL: the file's, less the insert
 * trigger where the binder counts inserts. Same bodies as the file's, so
 * that record_summary ends up as an older vigild leaves it. */
static int temp_triggers(struct vg_repl_fsm *f, const char *tbl, bool binder)
{
    char *sql = NULL, *ins = NULL, *cols_new, *cols_old, *cols;
    char name[64];
    int rv;

    snprintf(name, sizeof name, "vg_tsum_del_%s", tbl);
    if (has_trigger(f, "sqlite_temp_master", name, &rv) || rv != VG_OK) {
        return rv;
    }
    if ((rv = table_columns(f, tbl, &cols_new, &cols_old, &cols)) == VG_OK) {
        ins = binder ? sqlite3_mprintf("")
                     : sqlite3_mprintf(
                           "CREATE TEMP TRIGGER vg_tsum_ins_%s AFTER INSERT ON"
                           " main.%s BEGIN"
                           " INSERT INTO record_summary(tbl, n, hash_sum)"
                           "  VALUES('%s', 1, vg_row_hash(%s))"
                           "  ON CONFLICT(tbl) DO UPDATE SET n = n + 1,"
                           "  hash_sum = vg_add64(hash_sum, excluded.hash_sum); END;",
                           tbl, tbl, tbl, cols_new);
        sql = ins == NULL
                  ? NULL
                  : sqlite3_mprintf(
                        "%s"
                        "CREATE TEMP TRIGGER vg_tsum_del_%s AFTER DELETE ON main.%s"
                        " BEGIN UPDATE record_summary SET n = n - 1,"
                        "  hash_sum = vg_sub64(hash_sum, vg_row_hash(%s))"
                        "  WHERE tbl = '%s'; END;"
                        "CREATE TEMP TRIGGER vg_tsum_upd_%s AFTER UPDATE ON main.%s"
                        " BEGIN UPDATE record_summary SET hash_sum ="
                        "  vg_add64(vg_sub64(hash_sum, vg_row_hash(%s)),"
                        "  vg_row_hash(%s)) WHERE tbl = '%s'; END;",
                        ins, tbl, tbl, cols_old, tbl, tbl, tbl, cols_old, cols_new,
                        tbl);
        if (sql == NULL || sqlite3_exec(f->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
            rv = fsm_db_fail(f, "summary temp triggers");
        }
    }
    sqlite3_free(sql);
    sqlite3_free(ins);
    sqlite3_free(cols_new);
    sqlite3_free(cols_old);
    sqlite3_free(cols);
    return rv;
}

/* The rows of T hashed by the expression its triggers use, and its row of
 * record_summary (none: no rows, sum 0). */
int fsm_summary_recount(struct vg_repl_fsm *f, enum fsm_summed t,
                        struct fsm_recount *out)
{
    const char *tbl = summarized[t].table;
    char *sql = NULL, *cols_new, *cols_old, *cols;
    sqlite3_stmt *st;
    int rv;

    memset(out, 0, sizeof *out);
    out->table = tbl;
    if ((rv = table_columns(f, tbl, &cols_new, &cols_old, &cols)) == VG_OK) {
        sql = sqlite3_mprintf("SELECT (SELECT count(*) FROM %s),"
                              " (SELECT vg_sum64(vg_row_hash(%s)) FROM %s),"
                              " (SELECT n FROM record_summary WHERE tbl = '%s'),"
                              " (SELECT hash_sum FROM record_summary WHERE tbl = '%s')",
                              tbl, cols, tbl, tbl, tbl);
    }
    sqlite3_free(cols_new);
    sqlite3_free(cols_old);
    sqlite3_free(cols);
    if (rv != VG_OK) {
        return rv;
    }
    if (sql == NULL || sqlite3_prepare_v2(f->db, sql, -1, &st, NULL) != SQLITE_OK) {
        sqlite3_free(sql);
        return fsm_db_fail(f, "recount a record table");
    }
    sqlite3_free(sql);
    if (sqlite3_step(st) != SQLITE_ROW) {
        rv = fsm_db_fail(f, "recount a record table");
    } else {
        out->rows = (uint64_t)sqlite3_column_int64(st, 0);
        out->hash_sum = (uint64_t)sqlite3_column_int64(st, 1);
        out->want_rows = (uint64_t)sqlite3_column_int64(st, 2);
        out->want_hash_sum = (uint64_t)sqlite3_column_int64(st, 3);
    }
    sqlite3_finalize(st);
    return rv;
}

int fsm_summary_ensure(struct vg_repl_fsm *f)
{
    int off = -1, rv;

    if (sqlite3_db_config(f->db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, &off) !=
            SQLITE_OK ||
        off != 0) {
        return fsm_db_fail(f, "turn the file's triggers off");
    }
    for (size_t t = 0; t < FSM_SUMMED_MAX; t++) {
        if ((rv = file_triggers(f, summarized[t].table)) != VG_OK ||
            (rv = temp_triggers(f, summarized[t].table,
                                summarized[t].counted_by_binder)) != VG_OK) {
            return rv;
        }
    }
    return VG_OK;
}
