/* The JSON form of alarm changes, and their comparison (alarm_change_json.h).
 * Built with jansson from the schema that replication.h documents for
 * VG_CMD_ALARM_STATE, independently of the readers under test. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alarm_change_json.h"

/* A string member, or null. */
static json_t *opt_string(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

static json_t *time_value(uint64_t t)
{
    return json_integer((json_int_t)t);
}

static json_t *state_json(const struct vg_repl_alarm_change *ch)
{
    return json_pack("{s:s, s:b, s:o, s:b, s:o, s:o, s:o, s:o, s:b, s:o, s:o,"
                     " s:s, s:s, s:b, s:o}",
                     "status", vg_repl_alarm_status_name(ch->state.status),
                     "active", ch->state.active,
                     "changed_ms", time_value(ch->state.changed_ms),
                     "pending", ch->state.pending,
                     "pending_since_ms", time_value(ch->state.pending_since_ms),
                     "raised_ms", time_value(ch->state.raised_ms),
                     "acked_ms", time_value(ch->state.acked_ms),
                     "cleared_ms", time_value(ch->state.cleared_ms),
                     "shelved", ch->state.shelved,
                     "shelved_ms", time_value(ch->state.shelved_ms),
                     "shelved_until_ms", time_value(ch->state.shelved_until_ms),
                     "shelve_reason", ch->state.shelve_reason,
                     "shelve_user", ch->state.shelve_user,
                     "out_of_service", ch->state.out_of_service,
                     "out_of_service_ms",
                     time_value(ch->state.out_of_service_ms));
}

static json_t *value_json(double v)
{
    if (v != 0 && v == floor(v) && fabs(v) <= 9007199254740992.0) {
        return json_integer((json_int_t)v);
    }
    return json_real(v);
}

static json_t *transition_json(const struct vg_repl_alarm_change *ch)
{
    return json_pack(
        "{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o}",
        "cause", vg_repl_alarm_cause_name(ch->transition.cause),
        "from", vg_repl_alarm_status_name(ch->transition.from),
        "to", vg_repl_alarm_status_name(ch->transition.to),
        "at_ms", time_value(ch->transition.at_ms),
        "value", ch->transition.has_value ? value_json(ch->transition.value)
                                          : json_null(),
        "user", opt_string(ch->transition.user),
        "station", opt_string(ch->transition.station),
        "reason", opt_string(ch->transition.reason));
}

static json_t *message_json(const struct vg_repl_alarm_change *ch)
{
    json_t *m = json_object();
    for (unsigned i = 0; m != NULL && i < ch->n_message; i++) {
        if (json_object_set_new(m, ch->lang[i], json_string(ch->text[i])) != 0) {
            json_decref(m);
            m = NULL;
        }
    }
    return m;
}

json_t *alarm_change_json(const struct vg_repl_alarm_change *ch)
{
    return json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o}",
                     "alarm", ch->alarm,
                     "state", ch->removed ? json_null() : state_json(ch),
                     "tag", opt_string(ch->tag),
                     "section", opt_string(ch->section),
                     "priority", ch->priority > 0 ? json_integer(ch->priority)
                                                  : json_null(),
                     "message", ch->has_message ? message_json(ch) : json_null(),
                     "transition",
                     ch->has_transition ? transition_json(ch) : json_null());
}

char *alarm_changes_json_body(const struct vg_repl_alarm_change *v, size_t n)
{
    json_t *changes = json_array();
    json_t *body;
    char *text;

    for (size_t i = 0; changes != NULL && i < n; i++) {
        if (json_array_append_new(changes, alarm_change_json(&v[i])) != 0) {
            json_decref(changes);
            changes = NULL;
        }
    }
    body = json_pack("{s:o}", "changes", changes);
    text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    return text;
}

static bool same_str(const char *a, const char *b)
{
    return a == NULL ? b == NULL : b != NULL && strcmp(a, b) == 0;
}

const char *alarm_change_diff(const struct vg_repl_alarm_change *a,
                              const struct vg_repl_alarm_change *b)
{
    static const char *const langs[VG_REPL_ALARM_LANGS_MAX] = {
        "lang[0]",  "lang[1]",  "lang[2]",  "lang[3]",  "lang[4]",  "lang[5]",
        "lang[6]",  "lang[7]",  "lang[8]",  "lang[9]",  "lang[10]", "lang[11]",
        "lang[12]", "lang[13]", "lang[14]", "lang[15]"};
    static const char *const texts[VG_REPL_ALARM_LANGS_MAX] = {
        "text[0]",  "text[1]",  "text[2]",  "text[3]",  "text[4]",  "text[5]",
        "text[6]",  "text[7]",  "text[8]",  "text[9]",  "text[10]", "text[11]",
        "text[12]", "text[13]", "text[14]", "text[15]"};

    if (!same_str(a->alarm, b->alarm)) {
        return "alarm";
    }
    if (a->removed != b->removed) {
        return "removed";
    }
    if (!a->removed) {
        if (a->state.status != b->state.status) {
            return "state.status";
        }
        if (a->state.active != b->state.active) {
            return "state.active";
        }
        if (a->state.pending != b->state.pending) {
            return "state.pending";
        }
        if (a->state.shelved != b->state.shelved) {
            return "state.shelved";
        }
        if (a->state.out_of_service != b->state.out_of_service) {
            return "state.out_of_service";
        }
        if (a->state.changed_ms != b->state.changed_ms) {
            return "state.changed_ms";
        }
        if (a->state.pending_since_ms != b->state.pending_since_ms) {
            return "state.pending_since_ms";
        }
        if (a->state.raised_ms != b->state.raised_ms) {
            return "state.raised_ms";
        }
        if (a->state.acked_ms != b->state.acked_ms) {
            return "state.acked_ms";
        }
        if (a->state.cleared_ms != b->state.cleared_ms) {
            return "state.cleared_ms";
        }
        if (a->state.shelved_ms != b->state.shelved_ms) {
            return "state.shelved_ms";
        }
        if (a->state.shelved_until_ms != b->state.shelved_until_ms) {
            return "state.shelved_until_ms";
        }
        if (a->state.out_of_service_ms != b->state.out_of_service_ms) {
            return "state.out_of_service_ms";
        }
        if (!same_str(a->state.shelve_reason, b->state.shelve_reason)) {
            return "state.shelve_reason";
        }
        if (!same_str(a->state.shelve_user, b->state.shelve_user)) {
            return "state.shelve_user";
        }
    }
    if (!same_str(a->tag, b->tag)) {
        return "tag";
    }
    if (!same_str(a->section, b->section)) {
        return "section";
    }
    if (a->priority != b->priority) {
        return "priority";
    }
    if (a->has_message != b->has_message) {
        return "has_message";
    }
    if (a->has_message) {
        if (a->n_message != b->n_message) {
            return "n_message";
        }
        for (unsigned i = 0; i < a->n_message && i < VG_REPL_ALARM_LANGS_MAX; i++) {
            if (!same_str(a->lang[i], b->lang[i])) {
                return langs[i];
            }
            if (!same_str(a->text[i], b->text[i])) {
                return texts[i];
            }
        }
    }
    if (a->has_transition != b->has_transition) {
        return "has_transition";
    }
    if (a->has_transition) {
        if (a->transition.cause != b->transition.cause) {
            return "transition.cause";
        }
        if (a->transition.from != b->transition.from) {
            return "transition.from";
        }
        if (a->transition.to != b->transition.to) {
            return "transition.to";
        }
        if (a->transition.at_ms != b->transition.at_ms) {
            return "transition.at_ms";
        }
        if (a->transition.has_value != b->transition.has_value) {
            return "transition.has_value";
        }
        if (a->transition.has_value &&
            memcmp(&a->transition.value, &b->transition.value,
                   sizeof a->transition.value) != 0) {
            return "transition.value";
        }
        if (!same_str(a->transition.user, b->transition.user)) {
            return "transition.user";
        }
        if (!same_str(a->transition.station, b->transition.station)) {
            return "transition.station";
        }
        if (!same_str(a->transition.reason, b->transition.reason)) {
            return "transition.reason";
        }
    }
    return NULL;
}
