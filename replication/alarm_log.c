/* Replicated alarm states and the alarm journal (replication.h,
 * VG_CMD_ALARM_STATE).
 *
 * The leader's alarm engine (node/alarms/) decides; this file only records.
 * Each command carries the complete state of every alarm it changes, so a
 * new leader restores the engine from alarm_states without replaying
 * anything, and the journal row of a transition is written in the same
 * transaction as the state it led to: an acknowledgment is either committed
 * with its journal entry and audit record on every node, or not at all.
 *
 * Apply validates shapes and names only. It does not link the alarm engine:
 * the rules belong to the leader, and a replica must apply what the leader
 * committed even if its own engine would have decided differently.
 *
 * A state is stored as the text state_text writes, and a new leader reads
 * every one of them back (vg_repl_fsm_alarm_states_scan): the writer and
 * its inverse, state_read_canonical, share one table of members, so the
 * restore does not build and free a JSON object per alarm. Text in any
 * other form (a string with an escape) is read with jansson. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsm_internal.h"

#define NAME_MAX_LEN 256
#define WHO_MAX 128
#define REASON_MAX 512
#define CHANGES_MAX 1024
#define MESSAGE_LANGS_MAX 16
#define MESSAGE_TEXT_MAX 1024

static const char *const status_names[] = {"normal", "unack_active",
                                           "ack_active", "unack_rtn"};
static const char *const cause_names[] = {
    "raised", "cleared", "acked", "shelved", "unshelved",
    "expired", "oos", "in_service", "removed"};
/* Causes that a person brings about: these are audited. */
static const char *const operator_causes[] = {"acked", "shelved", "unshelved",
                                              "oos", "in_service"};

static bool in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; s != NULL && i < n; i++) {
        if (strcmp(s, list[i]) == 0) {
            return true;
        }
    }
    return false;
}

static bool is_status(json_t *v)
{
    return json_is_string(v) &&
           in_list(json_string_value(v), status_names,
                   sizeof status_names / sizeof status_names[0]);
}

static bool opt_short(json_t *obj, const char *key, size_t max)
{
    const char *s;
    return fsm_opt_string(obj, key, &s) == VG_OK &&
           (s == NULL || strlen(s) <= max);
}

static bool time_field(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) && json_integer_value(v) >= 0;
}

/* The members of a stored state in the order json_dumps(JSON_SORT_KEYS)
 * writes them (as strcmp sorts them), which state_text must keep since
 * stored rows are hashed by the digest; their kind ('b' boolean, 'i'
 * integer, 's' string); and where the restore's reader puts each in a
 * struct vg_repl_alarm_row. */
#define ROW_FIELD(f)                                                           \
    offsetof(struct vg_repl_alarm_row, f),                                     \
        sizeof(((struct vg_repl_alarm_row *)0)->f)
static const struct state_member {
    const char *key;
    char kind;
    size_t off, size;
} state_members[] = {
    {"acked_ms", 'i', ROW_FIELD(acked_ms)},
    {"active", 'b', ROW_FIELD(active)},
    {"changed_ms", 'i', ROW_FIELD(changed_ms)},
    {"cleared_ms", 'i', ROW_FIELD(cleared_ms)},
    {"out_of_service", 'b', ROW_FIELD(out_of_service)},
    {"out_of_service_ms", 'i', ROW_FIELD(out_of_service_ms)},
    {"pending", 'b', ROW_FIELD(pending)},
    {"pending_since_ms", 'i', ROW_FIELD(pending_since_ms)},
    {"raised_ms", 'i', ROW_FIELD(raised_ms)},
    {"shelve_reason", 's', ROW_FIELD(shelve_reason)},
    {"shelve_user", 's', ROW_FIELD(shelve_user)},
    {"shelved", 'b', ROW_FIELD(shelved)},
    {"shelved_ms", 'i', ROW_FIELD(shelved_ms)},
    {"shelved_until_ms", 'i', ROW_FIELD(shelved_until_ms)},
    {"status", 's', ROW_FIELD(status)},
};
#define N_MEMBERS (sizeof state_members / sizeof state_members[0])

static const char *const state_bools[] = {"active", "pending", "shelved",
                                          "out_of_service"};
static const char *const state_times[] = {
    "changed_ms", "pending_since_ms", "raised_ms", "acked_ms", "cleared_ms",
    "shelved_ms", "shelved_until_ms", "out_of_service_ms"};
#define N_BOOLS (sizeof state_bools / sizeof state_bools[0])
#define N_TIMES (sizeof state_times / sizeof state_times[0])

static bool state_ok(json_t *st)
{
    const char *reason, *user;
    if (!json_is_object(st) || !is_status(json_object_get(st, "status"))) {
        return false;
    }
    for (size_t i = 0; i < N_BOOLS; i++) {
        if (!json_is_boolean(json_object_get(st, state_bools[i]))) {
            return false;
        }
    }
    for (size_t i = 0; i < N_TIMES; i++) {
        if (!time_field(st, state_times[i])) {
            return false;
        }
    }
    return fsm_opt_string(st, "shelve_reason", &reason) == VG_OK &&
           reason != NULL && strlen(reason) < VG_REPL_ALARM_REASON_SIZE &&
           fsm_opt_string(st, "shelve_user", &user) == VG_OK && user != NULL &&
           strlen(user) < VG_REPL_ALARM_USER_SIZE;
}

/* Only the known members, in key order: what every replica stores is then
 * byte-identical even if a leader sent extra members. The text is exactly
 * what json_dumps(JSON_COMPACT | JSON_SORT_KEYS) makes of those members
 * (stored rows are hashed by the digest, so it must not change), written
 * directly because building and dumping an object per change was a tenth
 * of an acknowledgment's apply. ST passed state_ok. */
struct text {
    char *p;
    size_t len, cap;
    bool nomem;
};

static void text_put(struct text *t, const char *s, size_t n)
{
    if (t->nomem) {
        return;
    }
    if (t->len + n + 1 > t->cap) {
        size_t cap = (t->len + n + 1) * 2;
        char *p = realloc(t->p, cap);
        if (p == NULL) {
            t->nomem = true;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
}

static void text_key(struct text *t, const char *key)
{
    text_put(t, t->len > 1 ? ",\"" : "\"", t->len > 1 ? 2 : 1);
    text_put(t, key, strlen(key));
    text_put(t, "\":", 2);
}

/* A string as jansson dumps it: plain bytes are copied, anything it would
 * escape goes through jansson itself. */
static void text_string(struct text *t, json_t *v)
{
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == '"' || c == '\\') {
            char *esc = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
            if (esc == NULL) {
                t->nomem = true;
                return;
            }
            text_put(t, esc, strlen(esc));
            free(esc);
            return;
        }
    }
    text_put(t, "\"", 1);
    text_put(t, s, n);
    text_put(t, "\"", 1);
}

static char *state_text(json_t *st)
{
    struct text t = {0};
    char num[24];

    text_put(&t, "{", 1);
    for (size_t i = 0; i < N_MEMBERS; i++) {
        json_t *v = json_object_get(st, state_members[i].key);
        text_key(&t, state_members[i].key);
        if (state_members[i].kind == 'b') {
            text_put(&t, json_is_true(v) ? "true" : "false",
                     json_is_true(v) ? 4 : 5);
        } else if (state_members[i].kind == 'i') {
            int n = snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT,
                             json_integer_value(v));
            text_put(&t, num, (size_t)n);
        } else {
            text_string(&t, v);
        }
    }
    text_put(&t, "}", 1);
    if (t.nomem) {
        free(t.p);
        return NULL;
    }
    return t.p;
}

static bool message_ok(json_t *m)
{
    const char *lang;
    json_t *text;
    if (m == NULL || json_is_null(m)) {
        return true;
    }
    if (!json_is_object(m) || json_object_size(m) > MESSAGE_LANGS_MAX) {
        return false;
    }
    json_object_foreach(m, lang, text) {
        if (strlen(lang) == 0 || strlen(lang) > 16 || !json_is_string(text) ||
            json_string_length(text) > MESSAGE_TEXT_MAX) {
            return false;
        }
    }
    return true;
}

static bool transition_ok(json_t *t)
{
    json_t *value = json_object_get(t, "value");
    if (t == NULL || json_is_null(t)) {
        return true;
    }
    return json_is_object(t) && json_is_string(json_object_get(t, "cause")) &&
           in_list(json_string_value(json_object_get(t, "cause")), cause_names,
                   sizeof cause_names / sizeof cause_names[0]) &&
           is_status(json_object_get(t, "from")) &&
           is_status(json_object_get(t, "to")) && time_field(t, "at_ms") &&
           (value == NULL || json_is_null(value) ||
            (json_is_number(value) && isfinite(json_number_value(value)))) &&
           opt_short(t, "user", WHO_MAX) && opt_short(t, "station", WHO_MAX) &&
           opt_short(t, "reason", REASON_MAX);
}

static bool change_ok(json_t *ch)
{
    json_t *name = json_object_get(ch, "alarm");
    json_t *state = json_object_get(ch, "state");
    json_t *prio = json_object_get(ch, "priority");
    return json_is_object(ch) && json_is_string(name) &&
           json_string_length(name) > 0 &&
           json_string_length(name) <= NAME_MAX_LEN && state != NULL &&
           (json_is_null(state) || state_ok(state)) &&
           opt_short(ch, "tag", NAME_MAX_LEN) &&
           opt_short(ch, "section", NAME_MAX_LEN) &&
           (prio == NULL || json_is_null(prio) ||
            (json_is_integer(prio) && json_integer_value(prio) >= 1 &&
             json_integer_value(prio) <= 4)) &&
           message_ok(json_object_get(ch, "message")) &&
           transition_ok(json_object_get(ch, "transition"));
}

static const char *str_or_null(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void bind_json_text(sqlite3_stmt *st, int col, json_t *v)
{
    if (v == NULL || json_is_null(v)) {
        sqlite3_bind_null(st, col);
    } else {
        char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
        sqlite3_bind_text(st, col, text != NULL ? text : "null", -1,
                          SQLITE_TRANSIENT);
        free(text);
    }
}

static void bind_opt_int(sqlite3_stmt *st, int col, json_t *v)
{
    if (json_is_integer(v)) {
        sqlite3_bind_int64(st, col, (int64_t)json_integer_value(v));
    } else {
        sqlite3_bind_null(st, col);
    }
}

/* Statements of apply, prepared once per connection (fsm_stmt): a command
 * carries up to 1024 changes, and an acknowledgment's command often one. */
struct stmts {
    sqlite3_stmt *del, *put, *journal;
};

static int stmts_prepare(struct vg_repl_fsm *f, struct stmts *s)
{
    s->del = fsm_stmt(f, FSM_STMT_ALARM_DEL,
                      "DELETE FROM alarm_states WHERE name = ?");
    s->put = s->del == NULL ? NULL
                            : fsm_stmt(f, FSM_STMT_ALARM_PUT,
                                       "INSERT OR REPLACE INTO alarm_states(name,"
                                       " status, state, tag, section, priority,"
                                       " message, idx)"
                                       " VALUES(?, ?, ?, ?, ?, ?, ?, ?)");
    s->journal =
        s->put == NULL
            ? NULL
            : fsm_stmt(f, FSM_STMT_ALARM_JOURNAL,
                       "INSERT INTO alarm_journal(id, time_ms, alarm, tag,"
                       " section, priority, cause, from_status, to_status,"
                       " active, shelved, oos, value, user, station, reason,"
                       " message, term, node) VALUES(?, ?, ?, ?, ?, ?, ?, ?,"
                       " ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    return s->journal != NULL ? VG_OK : VG_EDB;
}

static int store_state(struct vg_repl_fsm *f, struct stmts *ss, uint64_t index,
                       json_t *ch)
{
    json_t *state = json_object_get(ch, "state");
    sqlite3_stmt *st;
    char *text = NULL;
    int rc;

    if (json_is_null(state)) {
        st = ss->del;
    } else {
        text = state_text(state);
        if (text == NULL) {
            vg_errf(f->errmsg, "out of memory storing an alarm state");
            return VG_EDB;
        }
        st = ss->put;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    sqlite3_bind_text(st, 1, str_or_null(ch, "alarm"), -1, SQLITE_TRANSIENT);
    if (text != NULL) {
        sqlite3_bind_text(st, 2, str_or_null(state, "status"), -1,
                          SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, text, -1, SQLITE_TRANSIENT);
        fsm_bind_opt_text(st, 4, str_or_null(ch, "tag"));
        fsm_bind_opt_text(st, 5, str_or_null(ch, "section"));
        bind_opt_int(st, 6, json_object_get(ch, "priority"));
        bind_json_text(st, 7, json_object_get(ch, "message"));
        sqlite3_bind_int64(st, 8, (int64_t)index);
    }
    rc = sqlite3_step(st);
    free(text);
    return rc == SQLITE_DONE ? VG_OK : fsm_db_fail(f, "alarm state");
}

static bool state_bool(json_t *state, const char *key)
{
    return json_is_true(json_object_get(state, key));
}

static int journal_add(struct vg_repl_fsm *f, struct stmts *ss, uint64_t id,
                       const struct vg_cmd *cmd, json_t *ch)
{
    json_t *t = json_object_get(ch, "transition");
    json_t *state = json_object_get(ch, "state");
    json_t *value = json_object_get(t, "value");
    sqlite3_stmt *st = ss->journal;
    int rc;

    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    sqlite3_bind_int64(st, 1, (int64_t)id);
    sqlite3_bind_int64(st, 2, (int64_t)json_integer_value(json_object_get(t, "at_ms")));
    sqlite3_bind_text(st, 3, str_or_null(ch, "alarm"), -1, SQLITE_TRANSIENT);
    fsm_bind_opt_text(st, 4, str_or_null(ch, "tag"));
    fsm_bind_opt_text(st, 5, str_or_null(ch, "section"));
    bind_opt_int(st, 6, json_object_get(ch, "priority"));
    sqlite3_bind_text(st, 7, str_or_null(t, "cause"), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 8, str_or_null(t, "from"), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 9, str_or_null(t, "to"), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 10, state_bool(state, "active"));
    sqlite3_bind_int(st, 11, state_bool(state, "shelved"));
    sqlite3_bind_int(st, 12, state_bool(state, "out_of_service"));
    if (json_is_number(value)) {
        sqlite3_bind_double(st, 13, json_number_value(value));
    } else {
        sqlite3_bind_null(st, 13);
    }
    fsm_bind_opt_text(st, 14, str_or_null(t, "user"));
    fsm_bind_opt_text(st, 15, str_or_null(t, "station"));
    fsm_bind_opt_text(st, 16, str_or_null(t, "reason"));
    bind_json_text(st, 17, json_object_get(ch, "message"));
    sqlite3_bind_int64(st, 18, (int64_t)cmd->term);
    sqlite3_bind_int64(st, 19, (int64_t)cmd->proposer);
    rc = sqlite3_step(st);
    return rc == SQLITE_DONE ? VG_OK : fsm_db_fail(f, "alarm journal");
}

static int audit_transition(struct vg_repl_fsm *f, uint64_t id,
                            const struct vg_cmd *cmd, json_t *ch)
{
    json_t *t = json_object_get(ch, "transition");
    const char *cause = str_or_null(t, "cause");
    char kind[32];
    int rv;

    if (!in_list(cause, operator_causes,
                 sizeof operator_causes / sizeof operator_causes[0])) {
        return VG_OK;
    }
    snprintf(kind, sizeof kind, "alarm_%s", cause);
    {
        json_t *from = json_string(str_or_null(t, "from"));
        json_t *to = json_string(str_or_null(t, "to"));
        rv = fsm_audit_add(f, id, cmd, kind, str_or_null(ch, "alarm"), from, to,
                           str_or_null(t, "user"), str_or_null(t, "station"),
                           str_or_null(t, "reason"));
        json_decref(from);
        json_decref(to);
    }
    return rv;
}

int fsm_apply_alarm_state(struct vg_repl_fsm *f, uint64_t index,
                          const struct vg_cmd *cmd, json_t *body)
{
    json_t *changes = json_object_get(body, "changes");
    struct stmts ss;
    size_t i;
    json_t *ch;
    int rv = VG_OK;

    if (!json_is_array(changes) || json_array_size(changes) == 0 ||
        json_array_size(changes) > CHANGES_MAX) {
        return VG_EINVAL;
    }
    json_array_foreach(changes, i, ch) {
        if (!change_ok(ch)) {
            return VG_EINVAL;
        }
    }
    if ((rv = stmts_prepare(f, &ss)) != VG_OK) {
        return rv;
    }
    json_array_foreach(changes, i, ch) {
        uint64_t id = index * 1024 + i;
        if ((rv = store_state(f, &ss, index, ch)) != VG_OK) {
            break;
        }
        if (json_is_object(json_object_get(ch, "transition")) &&
            ((rv = journal_add(f, &ss, id, cmd, ch)) != VG_OK ||
             (rv = audit_transition(f, id, cmd, ch)) != VG_OK)) {
            break;
        }
    }
    return rv;
}

/* --------------------------------------------------------------- queries */

/* A column holding JSON text written by apply, parsed back (null if absent). */
static json_t *col_parsed(sqlite3_stmt *st, int col)
{
    json_t *v;
    if (sqlite3_column_type(st, col) == SQLITE_NULL) {
        return json_null();
    }
    v = json_loads((const char *)sqlite3_column_text(st, col), 0, NULL);
    return v != NULL ? v : json_null();
}

int vg_repl_fsm_alarm_states_page(struct vg_repl_fsm *f, const char *after,
                                  size_t limit, json_t **out)
{
    sqlite3_stmt *st;
    json_t *list;
    int rc;

    *out = NULL;
    if (sqlite3_prepare_v2(f->db,
                           "SELECT name, state, tag, section, priority, message,"
                           " idx FROM alarm_states WHERE ?1 IS NULL OR name > ?1"
                           " ORDER BY name LIMIT ?2",
                           -1, &st, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "prepare alarm states");
    }
    fsm_bind_opt_text(st, 1, after);
    sqlite3_bind_int64(st, 2, limit > INT64_MAX ? -1 : (int64_t)limit);
    list = json_array();
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *a = json_object();
        json_object_set_new(a, "alarm", fsm_column_json(st, 0));
        json_object_set_new(a, "state", col_parsed(st, 1));
        json_object_set_new(a, "tag", fsm_column_json(st, 2));
        json_object_set_new(a, "section", fsm_column_json(st, 3));
        json_object_set_new(a, "priority", fsm_column_json(st, 4));
        json_object_set_new(a, "message", col_parsed(st, 5));
        json_object_set_new(a, "index", fsm_column_json(st, 6));
        json_array_append_new(list, a);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        json_decref(list);
        return fsm_db_fail(f, "alarm states");
    }
    *out = list;
    return VG_OK;
}

int vg_repl_fsm_alarm_states(struct vg_repl_fsm *f, json_t **out)
{
    return vg_repl_fsm_alarm_states_page(f, NULL, SIZE_MAX, out);
}

static void *row_field(struct vg_repl_alarm_row *r, const struct state_member *m)
{
    return (char *)r + m->off;
}

/* TEXT as state_text wrote it, into R: exactly its members in its order,
 * booleans, integers as "%lld" writes them (never negative: apply checked),
 * and strings whose bytes needed no escape, which state_text copies as
 * they are. False for anything else (a string with an escape, a member out
 * of place), which the caller then reads with jansson: this is the inverse
 * of state_text, not a JSON parser. Jansson took a tenth of a second to
 * parse and free the states of 20 000 alarms; this takes a few ms. */
static bool state_read_canonical(const char *p, struct vg_repl_alarm_row *r)
{
    for (size_t i = 0; i < N_MEMBERS; i++) {
        const struct state_member *m = &state_members[i];
        size_t klen = strlen(m->key);
        void *field = row_field(r, m);

        if (*p++ != (i == 0 ? '{' : ',') || *p++ != '"' ||
            strncmp(p, m->key, klen) != 0 || p[klen] != '"' ||
            p[klen + 1] != ':') {
            return false;
        }
        p += klen + 2;
        if (m->kind == 'b') {
            if (strncmp(p, "true", 4) == 0) {
                *(bool *)field = true;
                p += 4;
            } else if (strncmp(p, "false", 5) == 0) {
                *(bool *)field = false;
                p += 5;
            } else {
                return false;
            }
        } else if (m->kind == 'i') {
            /* At most 19 digits: INT64_MAX has 19, and no 19-digit number
             * overflows a uint64_t. */
            uint64_t v = 0;
            size_t digits = 0;
            for (; *p >= '0' && *p <= '9' && digits < 20; p++, digits++) {
                v = v * 10u + (uint64_t)(*p - '0');
            }
            if (digits == 0 || digits > 19) {
                return false;
            }
            *(uint64_t *)field = v;
        } else {
            /* No backslash inside: then the next quote closes the string
             * (a quote or a control character in it would be escaped). */
            const char *end;
            if (*p++ != '"' || (end = strchr(p, '"')) == NULL ||
                memchr(p, '\\', (size_t)(end - p)) != NULL ||
                (size_t)(end - p) >= m->size) {
                return false;
            }
            memcpy(field, p, (size_t)(end - p));
            ((char *)field)[end - p] = '\0';
            p = end + 1;
        }
    }
    return p[0] == '}' && p[1] == '\0' &&
           in_list(r->status, status_names,
                   sizeof status_names / sizeof status_names[0]);
}

/* TEXT parsed with jansson into R, when it is a valid state object. */
static bool state_read_json(const char *text, struct vg_repl_alarm_row *r)
{
    json_t *st = json_loads(text, 0, NULL);
    bool ok = st != NULL && state_ok(st);

    for (size_t i = 0; ok && i < N_MEMBERS; i++) {
        const struct state_member *m = &state_members[i];
        json_t *v = json_object_get(st, m->key);
        void *field = row_field(r, m);
        if (m->kind == 'b') {
            *(bool *)field = json_is_true(v);
        } else if (m->kind == 'i') {
            *(uint64_t *)field = (uint64_t)json_integer_value(v);
        } else {
            /* state_ok bounded the lengths by the field sizes. */
            snprintf(field, m->size, "%s", json_string_value(v));
        }
    }
    json_decref(st);
    return ok;
}

static const char *col_text(sqlite3_stmt *st, int col)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL
               ? NULL
               : (const char *)sqlite3_column_text(st, col);
}

int vg_repl_fsm_alarm_states_scan(struct vg_repl_fsm *f, const char *after,
                                  size_t limit, vg_repl_alarm_row_cb cb,
                                  void *data, size_t *n_read)
{
    sqlite3_stmt *st;
    size_t n = 0;
    int rc;

    if (n_read != NULL) {
        *n_read = 0;
    }
    /* Names are 1..256 bytes, so "" comes before every one: a plain range
     * over the primary key, which costs the rows of the slice only. */
    if (sqlite3_prepare_v2(f->db,
                           "SELECT name, state, tag, section, priority, message,"
                           " idx FROM alarm_states WHERE name > ?1"
                           " ORDER BY name LIMIT ?2",
                           -1, &st, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "prepare alarm states scan");
    }
    sqlite3_bind_text(st, 1, after != NULL ? after : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, limit > INT64_MAX ? -1 : (int64_t)limit);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct vg_repl_alarm_row row;
        const char *text = col_text(st, 1);

        memset(&row, 0, sizeof row);
        row.readable = text != NULL && (state_read_canonical(text, &row) ||
                                        state_read_json(text, &row));
        if (!row.readable) {
            memset(&row, 0, sizeof row);
        }
        row.alarm = col_text(st, 0);
        row.tag = col_text(st, 2);
        row.section = col_text(st, 3);
        row.priority = sqlite3_column_type(st, 4) == SQLITE_INTEGER
                           ? sqlite3_column_int(st, 4)
                           : 0;
        row.message = col_text(st, 5);
        row.index = (uint64_t)sqlite3_column_int64(st, 6);
        n++;
        if (!cb(data, &row)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_finalize(st);
    if (n_read != NULL) {
        *n_read = n;
    }
    return rc == SQLITE_DONE ? VG_OK : fsm_db_fail(f, "alarm states scan");
}

static void append_in(char *sql, size_t size, const char *col, size_t n)
{
    size_t len = strlen(sql);
    snprintf(sql + len, size - len, " AND %s IN (", col);
    for (size_t i = 0; i < n; i++) {
        len = strlen(sql);
        snprintf(sql + len, size - len, i == 0 ? "?" : ", ?");
    }
    len = strlen(sql);
    snprintf(sql + len, size - len, ")");
}

int vg_repl_fsm_alarm_journal(struct vg_repl_fsm *f,
                              const struct vg_repl_journal_query *q,
                              json_t **out)
{
    static const char *const cols[] = {
        "id", "time_ms", "alarm", "tag", "section", "priority", "cause", "from",
        "to", "active", "shelved", "out_of_service", "value", "user",
        "station", "reason", "message", "term", "node"};
    char sql[2048];
    sqlite3_stmt *st;
    json_t *rows;
    int rc, col = 1;
    bool more = false;

    *out = NULL;
    if (q->limit < 1 || q->limit > 10000 ||
        (q->to_ms != 0 && q->to_ms < q->from_ms) || q->n_sections > 64 ||
        q->max_priority > 4) {
        vg_errf(f->errmsg, "limit must be 1..10000, from_ms <= to_ms, at most "
                           "64 sections and max_priority 0..4");
        return VG_EINVAL;
    }
    snprintf(sql, sizeof sql,
             "SELECT id, time_ms, alarm, tag, section, priority, cause,"
             " from_status, to_status, active, shelved, oos, value, user,"
             " station, reason, message, term, node FROM alarm_journal"
             " WHERE time_ms >= ?");
    if (q->to_ms != 0) {
        strcat(sql, " AND time_ms < ?");
    }
    if (q->n_sections > 0) {
        append_in(sql, sizeof sql, "section", q->n_sections);
    }
    if (q->max_priority > 0) {
        strcat(sql, " AND priority <= ?");
    }
    if (q->tag != NULL) {
        strcat(sql, " AND tag = ?");
    }
    if (q->alarm != NULL) {
        strcat(sql, " AND alarm = ?");
    }
    if (q->state != NULL) {
        strcat(sql, " AND to_status = ?");
    }
    if (q->cause != NULL) {
        strcat(sql, " AND cause = ?");
    }
    if (q->before_id != 0) {
        strcat(sql, " AND id < ?");
    }
    /* Newest first, so that paging goes back in time with BEFORE_ID. */
    strcat(sql, " ORDER BY id DESC LIMIT ?");
    if (sqlite3_prepare_v2(f->db, sql, -1, &st, NULL) != SQLITE_OK) {
        return fsm_db_fail(f, "prepare alarm journal query");
    }
    sqlite3_bind_int64(st, col++, (int64_t)q->from_ms);
    if (q->to_ms != 0) {
        sqlite3_bind_int64(st, col++, (int64_t)q->to_ms);
    }
    for (size_t i = 0; i < q->n_sections; i++) {
        sqlite3_bind_text(st, col++, q->sections[i], -1, SQLITE_TRANSIENT);
    }
    if (q->max_priority > 0) {
        sqlite3_bind_int(st, col++, (int)q->max_priority);
    }
    if (q->tag != NULL) {
        sqlite3_bind_text(st, col++, q->tag, -1, SQLITE_TRANSIENT);
    }
    if (q->alarm != NULL) {
        sqlite3_bind_text(st, col++, q->alarm, -1, SQLITE_TRANSIENT);
    }
    if (q->state != NULL) {
        sqlite3_bind_text(st, col++, q->state, -1, SQLITE_TRANSIENT);
    }
    if (q->cause != NULL) {
        sqlite3_bind_text(st, col++, q->cause, -1, SQLITE_TRANSIENT);
    }
    if (q->before_id != 0) {
        sqlite3_bind_int64(st, col++, (int64_t)q->before_id);
    }
    sqlite3_bind_int64(st, col, (int64_t)q->limit + 1);
    rows = json_array();
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *r;
        if (json_array_size(rows) == q->limit) {
            more = true;
            continue;
        }
        r = json_object();
        for (int c = 0; c < (int)(sizeof cols / sizeof cols[0]); c++) {
            json_t *v;
            if (c == 16) {
                v = col_parsed(st, c);
            } else if (c >= 9 && c <= 11) {
                v = json_boolean(sqlite3_column_int(st, c) != 0);
            } else {
                v = fsm_column_json(st, c);
            }
            json_object_set_new(r, cols[c], v);
        }
        json_array_append_new(rows, r);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        json_decref(rows);
        return fsm_db_fail(f, "alarm journal query");
    }
    *out = json_pack("{s:o, s:b}", "entries", rows, "more", more);
    return *out != NULL ? VG_OK : VG_ENOMEM;
}
