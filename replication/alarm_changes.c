/* The two forms of a command's alarm changes (replication.h): the JSON body
 * of ALARM_STATE, which logs written before ALARM_CHANGES still hold, and
 * the binary body of ALARM_CHANGES, which the leader now proposes. Both are
 * read into the same struct vg_repl_alarm_change and checked against the
 * same limits (change_check), so apply and the pushes to stations have one
 * path, and a change stores the same rows whichever form carried it.
 *
 * The binary reader trusts nothing: every length is checked against what
 * is left before it is used, strings must be UTF-8 without NUL (what a JSON
 * string can hold), flags and booleans may not have unknown bits, and
 * trailing bytes are refused. The encoder checks the same limits first, so
 * that what it writes always decodes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsm_internal.h"

#define NAME_MAX_LEN 256
#define WHO_MAX 128
#define REASON_MAX 512
#define LANG_MAX 16
#define TEXT_MAX VG_REPL_ALARM_TEXT_MAX
#define NULL_LEN 0xFFFFu
#define TIME_MAX ((uint64_t)INT64_MAX)

#define F_REMOVED 0x01u
#define F_TRANSITION 0x02u
#define F_MESSAGE 0x04u
#define F_VALUE 0x08u
#define F_ALL 0x0Fu

#define B_ACTIVE 0x01u
#define B_PENDING 0x02u
#define B_SHELVED 0x04u
#define B_OOS 0x08u
#define B_ALL 0x0Fu

static const char *const status_names[VG_REPL_ALARM_STATUS_COUNT] = {
    "normal", "unack_active", "ack_active", "unack_rtn"};
static const char *const cause_names[VG_REPL_ALARM_CAUSE_COUNT] = {
    "raised", "cleared", "acked", "shelved", "unshelved",
    "expired", "oos", "in_service", "removed"};

const char *vg_repl_alarm_status_name(unsigned code)
{
    return code < VG_REPL_ALARM_STATUS_COUNT ? status_names[code] : "?";
}

const char *vg_repl_alarm_cause_name(unsigned code)
{
    return code < VG_REPL_ALARM_CAUSE_COUNT ? cause_names[code] : "?";
}

static int code_of(const char *name, const char *const *names, int n)
{
    for (int i = 0; name != NULL && i < n; i++) {
        if (strcmp(name, names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

int vg_repl_alarm_status_code(const char *name)
{
    return code_of(name, status_names, VG_REPL_ALARM_STATUS_COUNT);
}

int vg_repl_alarm_cause_code(const char *name)
{
    return code_of(name, cause_names, VG_REPL_ALARM_CAUSE_COUNT);
}

/* ----------------------------------------------------------------- limits */

static bool len_ok(const char *s, size_t min, size_t max)
{
    size_t n;
    if (s == NULL) {
        return min == 0;
    }
    n = strlen(s);
    return n >= min && n <= max;
}

/* CH within the limits of the format (replication.h). Both readers and the
 * encoder end here; *WHAT names the first field that is not. */
static bool change_check(const struct vg_repl_alarm_change *ch, const char **what)
{
    const char *bad = NULL;
    if (ch->alarm == NULL || !len_ok(ch->alarm, 1, NAME_MAX_LEN)) {
        bad = "alarm (a name of 1..256 bytes)";
    } else if (!len_ok(ch->tag, 0, NAME_MAX_LEN)) {
        bad = "tag (at most 256 bytes)";
    } else if (!len_ok(ch->section, 0, NAME_MAX_LEN)) {
        bad = "section (at most 256 bytes)";
    } else if (ch->priority > 4) {
        bad = "priority (1..4 or none)";
    } else if (!ch->removed &&
               (ch->state.status >= VG_REPL_ALARM_STATUS_COUNT ||
                ch->state.changed_ms > TIME_MAX ||
                ch->state.pending_since_ms > TIME_MAX ||
                ch->state.raised_ms > TIME_MAX || ch->state.acked_ms > TIME_MAX ||
                ch->state.cleared_ms > TIME_MAX ||
                ch->state.shelved_ms > TIME_MAX ||
                ch->state.shelved_until_ms > TIME_MAX ||
                ch->state.out_of_service_ms > TIME_MAX)) {
        bad = "state (a status name and times below 2^63)";
    } else if (!ch->removed &&
               (ch->state.shelve_reason == NULL || ch->state.shelve_user == NULL ||
                strlen(ch->state.shelve_reason) >= VG_REPL_ALARM_REASON_SIZE ||
                strlen(ch->state.shelve_user) >= VG_REPL_ALARM_USER_SIZE)) {
        bad = "state.shelve_reason/shelve_user (strings below 128/64 bytes)";
    } else if (ch->has_message && ch->n_message > VG_REPL_ALARM_LANGS_MAX) {
        bad = "message (at most 16 languages)";
    } else if (ch->has_transition &&
               (ch->transition.cause >= VG_REPL_ALARM_CAUSE_COUNT ||
                ch->transition.from >= VG_REPL_ALARM_STATUS_COUNT ||
                ch->transition.to >= VG_REPL_ALARM_STATUS_COUNT ||
                ch->transition.at_ms > TIME_MAX ||
                (ch->transition.has_value && !isfinite(ch->transition.value)))) {
        bad = "transition (cause, from, to, at_ms or value)";
    } else if (ch->has_transition &&
               (!len_ok(ch->transition.user, 0, WHO_MAX) ||
                !len_ok(ch->transition.station, 0, WHO_MAX) ||
                !len_ok(ch->transition.reason, 0, REASON_MAX))) {
        bad = "transition.user/station/reason (at most 128/128/512 bytes)";
    }
    for (unsigned i = 0; bad == NULL && ch->has_message && i < ch->n_message; i++) {
        if (!len_ok(ch->lang[i], 1, LANG_MAX) || !len_ok(ch->text[i], 0, TEXT_MAX)) {
            bad = "message (languages of 1..16 bytes, texts of at most 1024)";
        }
        for (unsigned k = 0; bad == NULL && k < i; k++) {
            if (strcmp(ch->lang[i], ch->lang[k]) == 0) {
                bad = "message (a language twice)";
            }
        }
    }
    *what = bad;
    return bad == NULL;
}

/* UTF-8 as RFC 3629 allows it (no overlongs, surrogates or code points past
 * U+10FFFF), without NUL: what a JSON string decoded by jansson holds. */
bool fsm_utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k;
        unsigned cp, min;
        if (c == 0) {
            return false;
        }
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            k = 1, cp = c & 0x1F, min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 2, cp = c & 0x0F, min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i <= k) {
            return false;
        }
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        i += k + 1;
    }
    return true;
}

/* ---------------------------------------------------------- binary reader */

struct reader {
    const unsigned char *p;
    size_t left;
    char *arena; /* strings are copied here, NUL-terminated */
    size_t used;
    const char *what; /* what was being read when it failed; NULL: ok */
};

static bool need(struct reader *r, size_t n, const char *what)
{
    if (r->what != NULL) {
        return false;
    }
    if (r->left < n) {
        r->what = what;
        return false;
    }
    return true;
}

static unsigned rd_u8(struct reader *r, const char *what)
{
    unsigned v;
    if (!need(r, 1, what)) {
        return 0;
    }
    v = r->p[0];
    r->p++;
    r->left--;
    return v;
}

static unsigned rd_u16(struct reader *r, const char *what)
{
    unsigned v;
    if (!need(r, 2, what)) {
        return 0;
    }
    v = (unsigned)r->p[0] | ((unsigned)r->p[1] << 8);
    r->p += 2;
    r->left -= 2;
    return v;
}

static uint64_t rd_u64(struct reader *r, const char *what)
{
    uint64_t v = 0;
    if (!need(r, 8, what)) {
        return 0;
    }
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | r->p[i];
    }
    r->p += 8;
    r->left -= 8;
    return v;
}

/* A str (or, with NULLABLE, a nullable str) copied into the arena. The
 * arena is as long as the body: every string is preceded by its 2-byte
 * length, which leaves room for its NUL. */
static const char *rd_str(struct reader *r, bool nullable, const char *what)
{
    unsigned len = rd_u16(r, what);
    char *s;
    if (r->what != NULL) {
        return NULL;
    }
    if (len == NULL_LEN) {
        if (!nullable) {
            r->what = what;
        }
        return NULL;
    }
    if (!need(r, len, what) || !fsm_utf8_ok(r->p, len)) {
        r->what = what;
        return NULL;
    }
    s = r->arena + r->used;
    memcpy(s, r->p, len);
    s[len] = '\0';
    r->used += (size_t)len + 1;
    r->p += len;
    r->left -= len;
    return s;
}

static void read_change(struct reader *r, struct vg_repl_alarm_change *ch)
{
    unsigned flags = rd_u8(r, "flags");
    if (r->what == NULL && (flags & ~F_ALL) != 0) {
        r->what = "flags (unknown bits)";
    }
    memset(ch, 0, sizeof *ch);
    ch->removed = (flags & F_REMOVED) != 0;
    ch->has_transition = (flags & F_TRANSITION) != 0;
    ch->has_message = (flags & F_MESSAGE) != 0;
    ch->alarm = rd_str(r, false, "alarm");
    ch->tag = rd_str(r, true, "tag");
    ch->section = rd_str(r, true, "section");
    ch->priority = rd_u8(r, "priority");
    if (!ch->removed) {
        unsigned b;
        ch->state.status = rd_u8(r, "state.status");
        b = rd_u8(r, "state booleans");
        if (r->what == NULL && (b & ~B_ALL) != 0) {
            r->what = "state booleans (unknown bits)";
        }
        ch->state.active = (b & B_ACTIVE) != 0;
        ch->state.pending = (b & B_PENDING) != 0;
        ch->state.shelved = (b & B_SHELVED) != 0;
        ch->state.out_of_service = (b & B_OOS) != 0;
        ch->state.changed_ms = rd_u64(r, "state.changed_ms");
        ch->state.pending_since_ms = rd_u64(r, "state.pending_since_ms");
        ch->state.raised_ms = rd_u64(r, "state.raised_ms");
        ch->state.acked_ms = rd_u64(r, "state.acked_ms");
        ch->state.cleared_ms = rd_u64(r, "state.cleared_ms");
        ch->state.shelved_ms = rd_u64(r, "state.shelved_ms");
        ch->state.shelved_until_ms = rd_u64(r, "state.shelved_until_ms");
        ch->state.out_of_service_ms = rd_u64(r, "state.out_of_service_ms");
        ch->state.shelve_reason = rd_str(r, false, "state.shelve_reason");
        ch->state.shelve_user = rd_str(r, false, "state.shelve_user");
    }
    if (ch->has_message) {
        ch->n_message = rd_u8(r, "message languages");
        if (r->what == NULL && ch->n_message > VG_REPL_ALARM_LANGS_MAX) {
            r->what = "message (more than 16 languages)";
        }
        for (unsigned i = 0; r->what == NULL && i < ch->n_message; i++) {
            ch->lang[i] = rd_str(r, false, "message language");
            ch->text[i] = rd_str(r, false, "message text");
        }
    }
    if (ch->has_transition) {
        ch->transition.cause = rd_u8(r, "transition.cause");
        ch->transition.from = rd_u8(r, "transition.from");
        ch->transition.to = rd_u8(r, "transition.to");
        ch->transition.at_ms = rd_u64(r, "transition.at_ms");
        if ((flags & F_VALUE) != 0) {
            uint64_t bits = rd_u64(r, "transition.value");
            ch->transition.has_value = true;
            memcpy(&ch->transition.value, &bits, sizeof bits);
        }
        ch->transition.user = rd_str(r, true, "transition.user");
        ch->transition.station = rd_str(r, true, "transition.station");
        ch->transition.reason = rd_str(r, true, "transition.reason");
    } else if (r->what == NULL && (flags & F_VALUE) != 0) {
        r->what = "flags (a value without a transition)";
    }
}

static int decode_binary(const struct vg_cmd *cmd, struct vg_repl_alarm_changes *out,
                         char *errmsg)
{
    struct reader r = {.p = (const unsigned char *)cmd->body, .left = cmd->body_len};
    size_t n = rd_u16(&r, "count");

    if (r.what != NULL || n == 0 || n > VG_REPL_ALARM_CHANGES_MAX) {
        vg_errf(errmsg, "alarm changes: the count must be 1..%d",
                VG_REPL_ALARM_CHANGES_MAX);
        return VG_EINVAL;
    }
    out->arena = malloc(cmd->body_len);
    out->v = calloc(n, sizeof *out->v);
    if (out->arena == NULL || out->v == NULL) {
        return VG_ENOMEM;
    }
    r.arena = out->arena;
    for (size_t i = 0; i < n; i++) {
        const char *what;
        read_change(&r, &out->v[i]);
        if (r.what != NULL) {
            vg_errf(errmsg, "alarm changes: change %zu: bad or truncated %s", i,
                    r.what);
            return VG_EINVAL;
        }
        if (!change_check(&out->v[i], &what)) {
            vg_errf(errmsg, "alarm changes: change %zu: bad %s", i, what);
            return VG_EINVAL;
        }
        out->n = i + 1;
    }
    if (r.left != 0) {
        vg_errf(errmsg, "alarm changes: %zu byte(s) after the last change", r.left);
        return VG_EINVAL;
    }
    return VG_OK;
}

/* ------------------------------------------------------------ JSON reader */

/* A member that may be absent or null (*OUT NULL) or a string. */
static bool opt_str(json_t *obj, const char *key, const char **out)
{
    json_t *v = json_object_get(obj, key);
    *out = json_is_string(v) ? json_string_value(v) : NULL;
    return v == NULL || json_is_null(v) || json_is_string(v);
}

static bool opt_time(json_t *obj, const char *key, uint64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        return false;
    }
    *out = (uint64_t)json_integer_value(v);
    return true;
}

static bool req_bool(json_t *obj, const char *key, bool *out)
{
    json_t *v = json_object_get(obj, key);
    *out = json_is_true(v);
    return json_is_boolean(v);
}

static bool json_state(json_t *st, struct vg_repl_alarm_change *ch)
{
    int status;
    if (!json_is_object(st)) {
        return false;
    }
    status = vg_repl_alarm_status_code(json_string_value(json_object_get(st, "status")));
    ch->state.status = (unsigned)status;
    return status >= 0 && req_bool(st, "active", &ch->state.active) &&
           req_bool(st, "pending", &ch->state.pending) &&
           req_bool(st, "shelved", &ch->state.shelved) &&
           req_bool(st, "out_of_service", &ch->state.out_of_service) &&
           opt_time(st, "changed_ms", &ch->state.changed_ms) &&
           opt_time(st, "pending_since_ms", &ch->state.pending_since_ms) &&
           opt_time(st, "raised_ms", &ch->state.raised_ms) &&
           opt_time(st, "acked_ms", &ch->state.acked_ms) &&
           opt_time(st, "cleared_ms", &ch->state.cleared_ms) &&
           opt_time(st, "shelved_ms", &ch->state.shelved_ms) &&
           opt_time(st, "shelved_until_ms", &ch->state.shelved_until_ms) &&
           opt_time(st, "out_of_service_ms", &ch->state.out_of_service_ms) &&
           opt_str(st, "shelve_reason", &ch->state.shelve_reason) &&
           opt_str(st, "shelve_user", &ch->state.shelve_user) &&
           ch->state.shelve_reason != NULL && ch->state.shelve_user != NULL;
}

static bool json_message(json_t *m, struct vg_repl_alarm_change *ch)
{
    const char *lang;
    json_t *text;
    if (m == NULL || json_is_null(m)) {
        return true;
    }
    if (!json_is_object(m) || json_object_size(m) > VG_REPL_ALARM_LANGS_MAX) {
        return false;
    }
    ch->has_message = true;
    json_object_foreach(m, lang, text) {
        if (!json_is_string(text)) {
            return false;
        }
        ch->lang[ch->n_message] = lang;
        ch->text[ch->n_message] = json_string_value(text);
        ch->n_message++;
    }
    return true;
}

static bool json_transition(json_t *t, struct vg_repl_alarm_change *ch)
{
    json_t *value = json_object_get(t, "value");
    int cause, from, to;
    if (t == NULL || json_is_null(t)) {
        return true;
    }
    if (!json_is_object(t)) {
        return false;
    }
    ch->has_transition = true;
    cause = vg_repl_alarm_cause_code(json_string_value(json_object_get(t, "cause")));
    from = vg_repl_alarm_status_code(json_string_value(json_object_get(t, "from")));
    to = vg_repl_alarm_status_code(json_string_value(json_object_get(t, "to")));
    if (cause < 0 || from < 0 || to < 0 ||
        !opt_time(t, "at_ms", &ch->transition.at_ms)) {
        return false;
    }
    ch->transition.cause = (unsigned)cause;
    ch->transition.from = (unsigned)from;
    ch->transition.to = (unsigned)to;
    if (json_is_number(value)) {
        ch->transition.has_value = true;
        ch->transition.value = json_number_value(value);
    } else if (value != NULL && !json_is_null(value)) {
        return false;
    }
    return opt_str(t, "user", &ch->transition.user) &&
           opt_str(t, "station", &ch->transition.station) &&
           opt_str(t, "reason", &ch->transition.reason);
}

static bool json_change(json_t *o, struct vg_repl_alarm_change *ch)
{
    json_t *state = json_object_get(o, "state");
    json_t *prio = json_object_get(o, "priority");
    memset(ch, 0, sizeof *ch);
    if (!json_is_object(o) || state == NULL) {
        return false;
    }
    ch->alarm = json_string_value(json_object_get(o, "alarm"));
    ch->removed = json_is_null(state);
    if (json_is_integer(prio) && json_integer_value(prio) >= 1 &&
        json_integer_value(prio) <= 4) {
        ch->priority = (unsigned)json_integer_value(prio);
    } else if (prio != NULL && !json_is_null(prio)) {
        return false;
    }
    return (ch->removed || json_state(state, ch)) && opt_str(o, "tag", &ch->tag) &&
           opt_str(o, "section", &ch->section) &&
           json_message(json_object_get(o, "message"), ch) &&
           json_transition(json_object_get(o, "transition"), ch);
}

int fsm_alarm_changes_from_json(json_t *body, struct vg_repl_alarm_changes *out,
                                char *errmsg)
{
    json_t *changes = json_object_get(body, "changes");
    size_t n = json_array_size(changes);

    if (!json_is_array(changes) || n == 0 || n > VG_REPL_ALARM_CHANGES_MAX) {
        vg_errf(errmsg, "alarm state: 'changes' must be an array of 1..%d",
                VG_REPL_ALARM_CHANGES_MAX);
        return VG_EINVAL;
    }
    out->v = calloc(n, sizeof *out->v);
    if (out->v == NULL) {
        return VG_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const char *what = "shape (types of the members)";
        if (!json_change(json_array_get(changes, i), &out->v[i]) ||
            !change_check(&out->v[i], &what)) {
            vg_errf(errmsg, "alarm state: change %zu: bad %s", i, what);
            return VG_EINVAL;
        }
        out->n = i + 1;
    }
    return VG_OK;
}

int vg_repl_alarm_changes_decode(const struct vg_cmd *cmd,
                                 struct vg_repl_alarm_changes *out, char *errmsg)
{
    memset(out, 0, sizeof *out);
    if (cmd->type == VG_CMD_ALARM_CHANGES) {
        return decode_binary(cmd, out, errmsg);
    }
    if (cmd->type != VG_CMD_ALARM_STATE) {
        vg_errf(errmsg, "not a command of alarm changes");
        return VG_EINVAL;
    }
    out->json = json_loadb(cmd->body, cmd->body_len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(out->json)) {
        vg_errf(errmsg, "alarm state: the body is not a JSON object");
        return VG_EINVAL;
    }
    return fsm_alarm_changes_from_json(out->json, out, errmsg);
}

void vg_repl_alarm_changes_free(struct vg_repl_alarm_changes *c)
{
    free(c->v);
    free(c->arena);
    json_decref(c->json);
    memset(c, 0, sizeof *c);
}

/* ---------------------------------------------------------------- encoder */

void vg_repl_bytes_put(struct vg_repl_bytes *b, const void *p, size_t n)
{
    if (b->nomem || n == 0) {
        return;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        unsigned char *q;
        while (cap < b->len + n) {
            cap *= 2;
        }
        q = realloc(b->p, cap);
        if (q == NULL) {
            b->nomem = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void put_u8(struct vg_repl_bytes *b, unsigned v)
{
    unsigned char c = (unsigned char)v;
    vg_repl_bytes_put(b, &c, 1);
}

static void put_u16(struct vg_repl_bytes *b, unsigned v)
{
    unsigned char c[2] = {(unsigned char)v, (unsigned char)(v >> 8)};
    vg_repl_bytes_put(b, c, 2);
}

static void put_u64(struct vg_repl_bytes *b, uint64_t v)
{
    unsigned char c[8];
    for (int i = 0; i < 8; i++) {
        c[i] = (unsigned char)(v >> (8 * i));
    }
    vg_repl_bytes_put(b, c, 8);
}

static void put_str(struct vg_repl_bytes *b, const char *s)
{
    size_t n;
    if (s == NULL) {
        put_u16(b, NULL_LEN);
        return;
    }
    n = strlen(s); /* change_check bounded it below NULL_LEN */
    put_u16(b, (unsigned)n);
    vg_repl_bytes_put(b, s, n);
}

static bool strings_utf8(const struct vg_repl_alarm_change *ch)
{
    const char *s[8 + 2 * VG_REPL_ALARM_LANGS_MAX] = {
        ch->alarm, ch->tag, ch->section};
    size_t n = 3;
    if (!ch->removed) {
        s[n++] = ch->state.shelve_reason;
        s[n++] = ch->state.shelve_user;
    }
    if (ch->has_transition) {
        s[n++] = ch->transition.user;
        s[n++] = ch->transition.station;
        s[n++] = ch->transition.reason;
    }
    for (unsigned i = 0; ch->has_message && i < ch->n_message; i++) {
        s[n++] = ch->lang[i];
        s[n++] = ch->text[i];
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] != NULL && !fsm_utf8_ok((const unsigned char *)s[i], strlen(s[i]))) {
            return false;
        }
    }
    return true;
}

int vg_repl_alarm_change_encode(struct vg_repl_bytes *b,
                                const struct vg_repl_alarm_change *ch,
                                char *errmsg)
{
    const char *what;
    unsigned flags = 0;

    if (!change_check(ch, &what)) {
        vg_errf(errmsg, "alarm change of '%s': bad %s",
                ch->alarm != NULL ? ch->alarm : "?", what);
        return VG_EINVAL;
    }
    if (!strings_utf8(ch)) {
        vg_errf(errmsg, "alarm change of '%s': a string is not UTF-8", ch->alarm);
        return VG_EINVAL;
    }
    flags |= ch->removed ? F_REMOVED : 0;
    flags |= ch->has_transition ? F_TRANSITION : 0;
    flags |= ch->has_message ? F_MESSAGE : 0;
    flags |= ch->has_transition && ch->transition.has_value ? F_VALUE : 0;
    put_u8(b, flags);
    put_str(b, ch->alarm);
    put_str(b, ch->tag);
    put_str(b, ch->section);
    put_u8(b, ch->priority);
    if (!ch->removed) {
        put_u8(b, ch->state.status);
        put_u8(b, (ch->state.active ? B_ACTIVE : 0) | (ch->state.pending ? B_PENDING : 0) |
                      (ch->state.shelved ? B_SHELVED : 0) |
                      (ch->state.out_of_service ? B_OOS : 0));
        put_u64(b, ch->state.changed_ms);
        put_u64(b, ch->state.pending_since_ms);
        put_u64(b, ch->state.raised_ms);
        put_u64(b, ch->state.acked_ms);
        put_u64(b, ch->state.cleared_ms);
        put_u64(b, ch->state.shelved_ms);
        put_u64(b, ch->state.shelved_until_ms);
        put_u64(b, ch->state.out_of_service_ms);
        put_str(b, ch->state.shelve_reason);
        put_str(b, ch->state.shelve_user);
    }
    if (ch->has_message) {
        put_u8(b, ch->n_message);
        for (unsigned i = 0; i < ch->n_message; i++) {
            put_str(b, ch->lang[i]);
            put_str(b, ch->text[i]);
        }
    }
    if (ch->has_transition) {
        put_u8(b, ch->transition.cause);
        put_u8(b, ch->transition.from);
        put_u8(b, ch->transition.to);
        put_u64(b, ch->transition.at_ms);
        if (ch->transition.has_value) {
            uint64_t bits;
            double v = ch->transition.value;
            memcpy(&bits, &v, sizeof bits);
            put_u64(b, bits);
        }
        put_str(b, ch->transition.user);
        put_str(b, ch->transition.station);
        put_str(b, ch->transition.reason);
    }
    if (b->nomem) {
        vg_errf(errmsg, "out of memory encoding an alarm change");
        return VG_ENOMEM;
    }
    return VG_OK;
}

int vg_repl_alarm_changes_body(const unsigned char *records, size_t len,
                               size_t n, unsigned char **out, size_t *out_len)
{
    unsigned char *p;
    *out = NULL;
    *out_len = 0;
    if (n == 0 || n > VG_REPL_ALARM_CHANGES_MAX || len + 2 > VG_CMD_MAX_BODY) {
        return VG_EINVAL;
    }
    p = malloc(len + 2);
    if (p == NULL) {
        return VG_ENOMEM;
    }
    p[0] = (unsigned char)n;
    p[1] = (unsigned char)(n >> 8);
    if (len > 0) {
        memcpy(p + 2, records, len);
    }
    *out = p;
    *out_len = len + 2;
    return VG_OK;
}
