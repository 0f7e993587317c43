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
 * byte-identical whichever form carried the change. The text is exactly
 * what json_dumps(JSON_COMPACT | JSON_SORT_KEYS) makes of those members
 * (stored rows are hashed by the digest, so it must not change), written
 * directly because building and dumping an object per change was a tenth
 * of an acknowledgment's apply. */
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

/* S as jansson dumps a string: plain bytes are copied, anything it would
 * escape goes through jansson itself. */
static void text_string(struct text *t, const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == '"' || c == '\\') {
            json_t *v = json_stringn(s, n);
            char *esc = v != NULL ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT)
                                  : NULL;
            json_decref(v);
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

/* V in decimal, as jansson writes an integer. */
static void text_u64(struct text *t, uint64_t v)
{
    char num[20];
    size_t i = sizeof num;
    do {
        num[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    text_put(t, num + i, sizeof num - i);
}

/* The state of CH as text into T (emptied first); false when out of
 * memory. */
static bool state_text(const struct vg_repl_alarm_change *ch, struct text *t)
{
    struct vg_repl_alarm_row r;

    /* The members by their place in a row, so that one table (state_members)
     * serves the writer and the reader. */
    memset(&r, 0, sizeof r);
    r.active = ch->state.active;
    r.pending = ch->state.pending;
    r.shelved = ch->state.shelved;
    r.out_of_service = ch->state.out_of_service;
    r.changed_ms = ch->state.changed_ms;
    r.pending_since_ms = ch->state.pending_since_ms;
    r.raised_ms = ch->state.raised_ms;
    r.acked_ms = ch->state.acked_ms;
    r.cleared_ms = ch->state.cleared_ms;
    r.shelved_ms = ch->state.shelved_ms;
    r.shelved_until_ms = ch->state.shelved_until_ms;
    r.out_of_service_ms = ch->state.out_of_service_ms;
    t->len = 0;
    text_put(t, "{", 1);
    for (size_t i = 0; i < N_MEMBERS; i++) {
        const struct state_member *m = &state_members[i];
        const void *field = (const char *)&r + m->off;
        text_key(t, m->key);
        if (m->kind == 'b') {
            bool b = *(const bool *)field;
            text_put(t, b ? "true" : "false", b ? 4 : 5);
        } else if (m->kind == 'i') {
            text_u64(t, *(const uint64_t *)field);
        } else if (m->off == offsetof(struct vg_repl_alarm_row, status)) {
            text_string(t, vg_repl_alarm_status_name(ch->state.status));
        } else if (m->off == offsetof(struct vg_repl_alarm_row, shelve_reason)) {
            text_string(t, ch->state.shelve_reason);
        } else {
            text_string(t, ch->state.shelve_user);
        }
    }
    text_put(t, "}", 1);
    return !t->nomem;
}

/* The message as json_dumps(JSON_COMPACT | JSON_SORT_KEYS) writes an object
 * of its languages (in strcmp order of the language) into T, emptied first;
 * NULL when the change has none, or (with T->nomem set) when out of
 * memory. */
static const char *message_text(const struct vg_repl_alarm_change *ch,
                                struct text *t)
{
    unsigned order[VG_REPL_ALARM_LANGS_MAX];

    if (!ch->has_message) {
        return NULL;
    }
    for (unsigned i = 0; i < ch->n_message; i++) {
        unsigned k = i;
        while (k > 0 && strcmp(ch->lang[order[k - 1]], ch->lang[i]) > 0) {
            order[k] = order[k - 1];
            k--;
        }
        order[k] = i;
    }
    t->len = 0;
    text_put(t, "{", 1);
    for (unsigned i = 0; i < ch->n_message; i++) {
        if (i > 0) {
            text_put(t, ",", 1);
        }
        text_string(t, ch->lang[order[i]]);
        text_put(t, ":", 1);
        text_string(t, ch->text[order[i]]);
    }
    text_put(t, "}", 1);
    return t->nomem ? NULL : t->p;
}

static void bind_opt_prio(sqlite3_stmt *st, int col, unsigned priority)
{
    if (priority > 0) {
        sqlite3_bind_int(st, col, (int)priority);
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
                                       "INSERT INTO alarm_states(name,"
                                       " status, state, tag, section, priority,"
                                       " message, idx)"
                                       " VALUES(?, ?, ?, ?, ?, ?, ?, ?)"
                                       " ON CONFLICT(name) DO UPDATE SET"
                                       " status = excluded.status,"
                                       " state = excluded.state,"
                                       " tag = excluded.tag,"
                                       " section = excluded.section,"
                                       " priority = excluded.priority,"
                                       " message = excluded.message,"
                                       " idx = excluded.idx");
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

/* Strings are bound SQLITE_STATIC: they outlive the step, and every use of
 * a statement starts with clear_bindings. */
static void bind_str(sqlite3_stmt *st, int col, const char *s)
{
    if (s != NULL) {
        sqlite3_bind_text(st, col, s, -1, SQLITE_STATIC);
    } else {
        sqlite3_bind_null(st, col);
    }
}

/* STATE: the state's text (state_text), or NULL for a removed alarm. */
static int store_state(struct vg_repl_fsm *f, struct stmts *ss, uint64_t index,
                       const struct vg_repl_alarm_change *ch, const char *state,
                       const char *message)
{
    sqlite3_stmt *st = ch->removed ? ss->del : ss->put;
    int rc;

    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    bind_str(st, 1, ch->alarm);
    if (!ch->removed) {
        bind_str(st, 2, vg_repl_alarm_status_name(ch->state.status));
        bind_str(st, 3, state);
        bind_str(st, 4, ch->tag);
        bind_str(st, 5, ch->section);
        bind_opt_prio(st, 6, ch->priority);
        bind_str(st, 7, message);
        sqlite3_bind_int64(st, 8, (int64_t)index);
    }
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? VG_OK : fsm_db_fail(f, "alarm state");
}

static int journal_add(struct vg_repl_fsm *f, struct stmts *ss, uint64_t id,
                       const struct vg_cmd *cmd,
                       const struct vg_repl_alarm_change *ch, const char *message)
{
    struct fsm_row r;

    /* Every column in the table's order (fsm_row_*). */
    fsm_row_begin(&r, ss->journal);
    fsm_row_int(&r, (int64_t)id);
    fsm_row_int(&r, (int64_t)ch->transition.at_ms);
    fsm_row_text(&r, ch->alarm);
    fsm_row_text(&r, ch->tag);
    fsm_row_text(&r, ch->section);
    if (ch->priority > 0) {
        fsm_row_int(&r, (int64_t)ch->priority);
    } else {
        fsm_row_null(&r);
    }
    fsm_row_text(&r, vg_repl_alarm_cause_name(ch->transition.cause));
    fsm_row_text(&r, vg_repl_alarm_status_name(ch->transition.from));
    fsm_row_text(&r, vg_repl_alarm_status_name(ch->transition.to));
    /* A removed alarm's journal row shows no flags (its state is null). */
    fsm_row_int(&r, !ch->removed && ch->state.active);
    fsm_row_int(&r, !ch->removed && ch->state.shelved);
    fsm_row_int(&r, !ch->removed && ch->state.out_of_service);
    if (ch->transition.has_value) {
        fsm_row_real(&r, ch->transition.value);
    } else {
        fsm_row_null(&r);
    }
    fsm_row_text(&r, ch->transition.user);
    fsm_row_text(&r, ch->transition.station);
    fsm_row_text(&r, ch->transition.reason);
    fsm_row_text(&r, message);
    fsm_row_int(&r, (int64_t)cmd->term);
    fsm_row_int(&r, (int64_t)cmd->proposer);
    return fsm_row_insert(f, &r, FSM_SUMMED_JOURNAL, "alarm journal");
}

/* Causes that a person brings about are audited. */
static bool operator_cause(unsigned cause)
{
    return cause == VG_REPL_ALARM_CAUSE_ACKED || cause == VG_REPL_ALARM_CAUSE_SHELVED ||
           cause == VG_REPL_ALARM_CAUSE_UNSHELVED || cause == VG_REPL_ALARM_CAUSE_OOS ||
           cause == VG_REPL_ALARM_CAUSE_IN_SERVICE;
}

static int audit_transition(struct vg_repl_fsm *f, uint64_t id,
                            const struct vg_cmd *cmd,
                            const struct vg_repl_alarm_change *ch)
{
    char kind[32];

    if (!operator_cause(ch->transition.cause)) {
        return VG_OK;
    }
    snprintf(kind, sizeof kind, "alarm_%s",
             vg_repl_alarm_cause_name(ch->transition.cause));
    return fsm_audit_add_text(f, id, cmd, kind, ch->alarm,
                              vg_repl_alarm_status_name(ch->transition.from),
                              vg_repl_alarm_status_name(ch->transition.to),
                              ch->transition.user, ch->transition.station,
                              ch->transition.reason);
}

/* Store C (checked by its reader): the state rows, and for each change with
 * a transition a journal row (id INDEX * 1024 + position) and, when a
 * person caused it, an audit record. */
static int store_changes(struct vg_repl_fsm *f, uint64_t index,
                         const struct vg_cmd *cmd,
                         const struct vg_repl_alarm_changes *c)
{
    struct stmts ss;
    int rv;

    /* One buffer for every state text of the command and one for every
     * message: a malloc and reallocs per change were a tenth of it. */
    struct text state = {0}, message = {0};

    if ((rv = stmts_prepare(f, &ss)) != VG_OK) {
        return rv;
    }
    for (size_t i = 0; i < c->n && rv == VG_OK; i++) {
        const struct vg_repl_alarm_change *ch = &c->v[i];
        uint64_t id = index * 1024 + i;
        const char *msg = message_text(ch, &message);
        if ((!ch->removed && !state_text(ch, &state)) || message.nomem) {
            rv = VG_EDB;
            vg_errf(f->errmsg, "out of memory storing an alarm state");
            break;
        }
        rv = store_state(f, &ss, index, ch, ch->removed ? NULL : state.p, msg);
        if (rv == VG_OK && ch->has_transition) {
            rv = journal_add(f, &ss, id, cmd, ch, msg);
            if (rv == VG_OK) {
                rv = audit_transition(f, id, cmd, ch);
            }
        }
    }
    free(state.p);
    free(message.p);
    return rv;
}

int fsm_apply_alarm_state(struct vg_repl_fsm *f, uint64_t index,
                          const struct vg_cmd *cmd, json_t *body)
{
    struct vg_repl_alarm_changes c = {0};
    int rv = fsm_alarm_changes_from_json(body, &c, NULL);
    if (rv == VG_OK) {
        rv = store_changes(f, index, cmd, &c);
    } else if (rv == VG_ENOMEM) {
        vg_errf(f->errmsg, "out of memory reading alarm changes");
        rv = VG_EDB;
    }
    c.json = NULL; /* the body belongs to the caller */
    vg_repl_alarm_changes_free(&c);
    return rv;
}

int fsm_apply_alarm_changes(struct vg_repl_fsm *f, uint64_t index,
                            const struct vg_cmd *cmd)
{
    struct vg_repl_alarm_changes c;
    int rv = vg_repl_alarm_changes_decode(cmd, &c, NULL);
    if (rv == VG_OK) {
        rv = store_changes(f, index, cmd, &c);
    } else if (rv == VG_ENOMEM) {
        vg_errf(f->errmsg, "out of memory reading alarm changes");
        rv = VG_EDB;
    }
    vg_repl_alarm_changes_free(&c);
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
        if (row.alarm == NULL) {
            /* The range excludes NULL names: SQLite had no memory to give
             * this one. The callbacks rely on a name. */
            rc = SQLITE_NOMEM;
            break;
        }
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
