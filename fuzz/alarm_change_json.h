/* Test support shared by fuzz_alarm_changes and
 * tests/unit/replication/test_alarm_changes.c: the JSON form (the body of
 * VG_CMD_ALARM_STATE, replication.h) of alarm changes given as structs, and
 * a field-by-field comparison of two changes. Both check the promise that
 * a change stores the same rows whichever form carried it, so they need
 * the JSON form of exactly the changes a binary body holds. */
#ifndef VG_FUZZ_ALARM_CHANGE_JSON_H
#define VG_FUZZ_ALARM_CHANGE_JSON_H

#include <jansson.h>
#include <stddef.h>

#include "replication.h"

/* CH as one element of "changes" (a new reference; NULL when out of
 * memory). Message languages keep CH's order; a value that is a whole
 * number of magnitude at most 2^53 (but not zero: -0.0 would lose its sign)
 * is written as a JSON integer, any other as a real, so both kinds of
 * number a leader may have written are exercised. */
json_t *alarm_change_json(const struct vg_repl_alarm_change *ch);

/* {"changes": [the N changes of V]} as compact JSON text (malloc'd; NULL
 * when out of memory). */
char *alarm_changes_json_body(const struct vg_repl_alarm_change *v, size_t n);

/* The name of the first member in which A and B differ ("alarm",
 * "state.raised_ms", "lang[2]", "transition.value", …), or NULL when they
 * are equal. Members that the format does not carry are not compared: the
 * state of a removed change, the transition of a change without one, the
 * languages of a change without a message. Strings compare by their bytes
 * (NULL only equals NULL), values by their bits. */
const char *alarm_change_diff(const struct vg_repl_alarm_change *a,
                              const struct vg_repl_alarm_change *b);

#endif /* VG_FUZZ_ALARM_CHANGE_JSON_H */
