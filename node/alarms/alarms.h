/* Vigil alarm engine, the pure part: when an alarm condition holds (limits,
 * hysteresis, on/off delays, input quality), the ISA-18.2 / IEC 62682 state
 * model on top of it (acknowledge, shelve, out of service), and an engine
 * that evaluates a whole project's alarms as tag values arrive.
 *
 * Nothing here touches a socket, a thread, a clock or a database: every
 * function takes the current time as an argument. That keeps the rules in
 * one place that is unit-tested with simulated time, and it is what makes
 * failover work: the ready leader evaluates alarms, the node persists each
 * alarm's struct vg_alarm_state through Raft into the replicated SQLite
 * database, and a new leader restores those structs and carries on exactly
 * where the old one stopped, pending delays included.
 *
 * Time. All times are milliseconds of one clock that every node shares, i.e.
 * the leader's wall clock (vg_now_wall_ms), never a monotonic clock: the
 * times stored in a state were stamped by one node and are compared with the
 * clock of the next leader. Nothing breaks if that clock steps back: a delay
 * or a shelve then simply lasts longer. 0 in a timestamp means "never".
 *
 * Condition. Each alarm has a debounced process condition, ACTIVE in the
 * state. Which test a reading must pass to change it depends on ACTIVE, so
 * the hysteresis band between the two tests holds the current condition:
 *
 *   kind          becomes active when       returns (clears) when
 *   high          value >  limit            value <  limit - hysteresis
 *   high_high     value >  limit            value <  limit - hysteresis
 *   low           value <  limit            value >  limit + hysteresis
 *   low_low       value <  limit            value >  limit + hysteresis
 *   digital_on    value != 0                value == 0   (no hysteresis)
 *   digital_off   value == 0                value != 0   (no hysteresis)
 *   deviation     |value - ref| >  limit    |value - ref| <= limit - hysteresis
 *
 * Delays. A change of ACTIVE is first pending: it happens only once its test
 * has passed on every reading for on_delay_ms (to become active) or
 * off_delay_ms (to clear), counted from the first reading that passed. Any
 * reading that fails the test, including one inside the hysteresis band,
 * cancels the pending change, so a condition that flickers faster than the
 * delay never raises or clears. The state keeps only whether a change is
 * pending and since when (PENDING, PENDING_SINCE_MS); the deadline is that
 * time plus the delay of the alarm definition.
 *
 * Readings arrive only when a value changes, so the absence of a reading
 * means "unchanged": when a pending change reaches its deadline without a
 * new reading it happens at the deadline. vg_alarm_next_deadline tells the
 * node when to set a timer, vg_alarm_tick performs what is due; and because
 * vg_alarm_step first performs everything due up to its NOW, the outcome is
 * the same whether the timer fired in time or late (after a failover, say),
 * and transitions carry the time they happened, not the time they were
 * noticed.
 *
 * Quality. A bad reading (bad value, bad communication, or a value that is
 * not finite) makes the condition unknown: ACTIVE is held, nothing is raised
 * or cleared, and a pending change is cancelled, so its delay starts afresh
 * once good values come back. A deviation alarm needs both its tag and its
 * reference good. A reading that is not there at all (VG_ALARM_Q_NONE, e.g.
 * the reference tag of a deviation alarm that a new leader has not read yet)
 * is no information: nothing about the condition changes, not even a pending
 * delay. Alarms for unreachable PLCs are system alarms, made elsewhere.
 *
 * State model (ISA-18.2). STATUS is what the operator is shown:
 *
 *   normal        --condition active-->  unack_active   (raised)
 *   unack_active  --acknowledge------->  ack_active     (acked)
 *   unack_active  --condition clears-->  unack_rtn      (cleared)
 *   ack_active    --condition clears-->  normal         (cleared)
 *   unack_rtn     --acknowledge------->  normal         (acked)
 *   unack_rtn     --condition active-->  unack_active   (raised)
 *
 * Acknowledging normal or ack_active changes nothing and says so (a no-op,
 * not an error). Shelving (timed, with reason and user) and taking out of
 * service are two independent flags; while either is set the alarm is
 * suppressed: STATUS is normal and nothing is annunciated, yet ACTIVE keeps
 * following the process (and such changes are still reported, with from ==
 * to, so the journal and the persisted state know). When the last of the
 * two flags goes (unshelve, shelve expiry, return to service) the alarm is
 * evaluated afresh: unack_active (a new annunciation) if ACTIVE, otherwise
 * normal. So whenever an alarm is not suppressed, ACTIVE is true exactly when
 * STATUS is unack_active or ack_active.
 *
 * Ownership: struct vg_alarm_state is a plain value (no pointers) that may be
 * copied, stored and restored freely. The struct vg_alarm definitions and
 * the project are borrowed: they are only read, and the engine keeps a
 * pointer to its project, which must outlive it. Strings passed in are
 * copied. The engine is created with vg_alarm_engine_new and freed with
 * vg_alarm_engine_free. */
#ifndef VG_ALARMS_H
#define VG_ALARMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../config/project.h"

/* Sizes, terminating NUL included, of the shelve reason and user kept in a
 * state; longer ones are refused rather than cut. */
#define VG_ALARM_REASON_SIZE 128
#define VG_ALARM_USER_SIZE 64

/* The most transitions one vg_alarm_step can report: a shelve expiring, a
 * pending change falling due (both caught up from before NOW) and the new
 * reading taking effect at once (no delay). vg_alarm_tick reports at most
 * the first two. */
#define VG_ALARM_STEP_MAX 3

/* No deadline (vg_alarm_next_deadline). */
#define VG_ALARM_NEVER UINT64_MAX

/* ------------------------------------------------------------------ state */

/* What the operator is shown (ISA-18.2). */
enum vg_alarm_status {
    VG_ALARM_NORMAL,       /* "normal" */
    VG_ALARM_UNACK_ACTIVE, /* "unack_active": active, not acknowledged */
    VG_ALARM_ACK_ACTIVE,   /* "ack_active": active, acknowledged */
    VG_ALARM_UNACK_RTN,    /* "unack_rtn": returned to normal, not acknowledged */
};

/* Everything needed to continue an alarm: evaluation is a function of this
 * struct, the definition, the inputs and the time, nothing else. Initialise
 * with vg_alarm_state_init. Fields are public so that the node can persist
 * them; change them only through the functions below (or restore a stored
 * copy whole, see vg_alarm_state_check). */
struct vg_alarm_state {
    enum vg_alarm_status status;
    bool active;               /* debounced process condition */
    uint64_t changed_ms;       /* when ACTIVE last changed, also while suppressed */

    /* A change of ACTIVE waiting for its on (if !ACTIVE) or off (if ACTIVE)
     * delay, counted from PENDING_SINCE_MS (meaningless while !PENDING). */
    bool pending;
    uint64_t pending_since_ms;

    /* Annunciation times, set only by transitions the operator sees:
     * RAISED_MS when STATUS last became unack_active (a fresh annunciation
     * after unshelving counts), ACKED_MS and CLEARED_MS after that (0 when
     * not yet acknowledged / still active). */
    uint64_t raised_ms;
    uint64_t acked_ms;
    uint64_t cleared_ms;

    /* Shelving; all zero when not shelved. */
    bool shelved;
    uint64_t shelved_ms;       /* when shelved */
    uint64_t shelved_until_ms; /* unshelves itself at this time */
    char shelve_reason[VG_ALARM_REASON_SIZE];
    char shelve_user[VG_ALARM_USER_SIZE];

    bool out_of_service;
    uint64_t out_of_service_ms; /* when taken out of service; 0 when in service */
};

/* NORMAL, condition clear, nothing pending, not suppressed: how every alarm
 * starts when no stored state exists. An alarm whose condition holds at
 * start-up is raised after its on-delay like any other. */
void vg_alarm_state_init(struct vg_alarm_state *st);

/* Whether ST can be continued from: known status, NUL-terminated strings,
 * shelve fields zero unless shelved, and the invariant above (suppressed
 * implies normal; otherwise ACTIVE iff unack_active or ack_active). For
 * states read back from storage. Returns VG_OK or VG_EINVAL with a sentence
 * in ERRMSG (which may be NULL). */
int vg_alarm_state_check(const struct vg_alarm_state *st, char *errmsg);

/* Field-by-field equality (strings compared as strings). */
bool vg_alarm_state_equal(const struct vg_alarm_state *a,
                          const struct vg_alarm_state *b);

/* Shelved or out of service: nothing is annunciated. */
bool vg_alarm_state_suppressed(const struct vg_alarm_state *st);

/* ------------------------------------------------------------ transitions */

enum vg_alarm_cause {
    VG_ALARM_CAUSE_NONE,       /* "none": nothing happened (see noop) */
    VG_ALARM_CAUSE_RAISED,     /* "raised": the condition became active */
    VG_ALARM_CAUSE_CLEARED,    /* "cleared": the condition returned to normal */
    VG_ALARM_CAUSE_ACKED,      /* "acked" */
    VG_ALARM_CAUSE_SHELVED,    /* "shelved" (also a re-shelve with new terms) */
    VG_ALARM_CAUSE_UNSHELVED,  /* "unshelved" by an operator */
    VG_ALARM_CAUSE_EXPIRED,    /* "expired": the shelve time ran out */
    VG_ALARM_CAUSE_OOS,        /* "oos": taken out of service */
    VG_ALARM_CAUSE_IN_SERVICE, /* "in_service": returned to service */
};

/* Why an operator action changed nothing. */
enum vg_alarm_noop {
    VG_ALARM_NOOP_NONE,               /* "none": the action did something */
    VG_ALARM_NOOP_NOTHING_TO_ACK,     /* "nothing_to_acknowledge" */
    VG_ALARM_NOOP_NOT_SHELVED,        /* "not_shelved" */
    VG_ALARM_NOOP_ALREADY_OOS,        /* "already_out_of_service" */
    VG_ALARM_NOOP_ALREADY_IN_SERVICE, /* "already_in_service" */
};

/* One change of an alarm, for the journal, the Raft command and the
 * stations. FROM and TO are the status before and after (equal for a
 * condition change while suppressed and for shelving an alarm that was
 * already normal); ACTIVE, SHELVED and OUT_OF_SERVICE are the state after.
 * AT_MS is when it happened: the time of the action, or for a delay or a
 * shelve that ran out, its deadline (possibly before the NOW of the call). */
struct vg_alarm_transition {
    enum vg_alarm_cause cause;
    enum vg_alarm_noop noop; /* operator actions only; NONE when CAUSE is not */
    enum vg_alarm_status from;
    enum vg_alarm_status to;
    bool active;
    bool shelved;
    bool out_of_service;
    uint64_t at_ms;
};

/* Names as used by the protocol and the journal; "?" for values out of
 * range. The parse functions return VG_OK or VG_EINVAL for unknown names. */
const char *vg_alarm_status_name(enum vg_alarm_status s);
const char *vg_alarm_cause_name(enum vg_alarm_cause c);
const char *vg_alarm_noop_name(enum vg_alarm_noop n);
int vg_alarm_status_parse(const char *name, enum vg_alarm_status *out);
int vg_alarm_cause_parse(const char *name, enum vg_alarm_cause *out);

/* ------------------------------------------------------- one alarm, pure */

enum vg_alarm_quality {
    VG_ALARM_Q_NONE, /* no reading (zero-initialised inputs mean this) */
    VG_ALARM_Q_GOOD,
    VG_ALARM_Q_BAD,  /* bad value or bad communication */
};

struct vg_alarm_reading {
    double value; /* engineering units; bools as 0 / 1 */
    enum vg_alarm_quality quality;
};

/* The current readings an alarm depends on. REFERENCE is used by deviation
 * alarms only. */
struct vg_alarm_input {
    struct vg_alarm_reading tag;
    struct vg_alarm_reading reference;
};

/* Feed the current reading(s) IN at time NOW_MS. First performs whatever
 * fell due up to NOW_MS (as vg_alarm_tick), then evaluates IN: may start or
 * cancel a pending change, or change the condition at once when its delay
 * is 0. An analog alarm without a limit is never evaluated. Writes the
 * transitions, oldest first, to OUT and returns their number (0 when none;
 * ST may still have changed, e.g. a delay started: compare with
 * vg_alarm_state_equal when every change must be persisted). */
unsigned vg_alarm_step(const struct vg_alarm *def, struct vg_alarm_state *st,
                       const struct vg_alarm_input *in, uint64_t now_ms,
                       struct vg_alarm_transition out[VG_ALARM_STEP_MAX]);

/* Perform what fell due up to NOW_MS without a new reading: a pending change
 * whose delay has elapsed (the condition is taken to have held since the
 * last reading), a shelve that expired; in the order of their deadlines, the
 * pending change first on a tie. Returns the number of transitions written
 * to OUT (at most 2). */
unsigned vg_alarm_tick(const struct vg_alarm *def, struct vg_alarm_state *st,
                       uint64_t now_ms,
                       struct vg_alarm_transition out[VG_ALARM_STEP_MAX]);

/* The earliest time at which something happens to ST without a new reading
 * (a pending delay elapsing, a shelve expiring), or VG_ALARM_NEVER. It may
 * lie in the past when a tick is overdue; then tick at once. */
uint64_t vg_alarm_next_deadline(const struct vg_alarm *def,
                                const struct vg_alarm_state *st);

/* Operator actions at NOW_MS. Each returns VG_OK and fills *OUT: either a
 * transition, or CAUSE none with NOOP saying why nothing changed; only
 * vg_alarm_shelve can fail (VG_EINVAL, a sentence in ERRMSG, ST untouched).
 * They do not perform what fell due before NOW_MS: call vg_alarm_tick first
 * (vg_alarm_engine_act does).
 *
 * ack: unack_active -> ack_active, unack_rtn -> normal; otherwise
 * nothing_to_acknowledge (a suppressed alarm is normal, so the same).
 *
 * shelve: any status, until UNTIL_MS (> NOW_MS) with REASON and USER (not
 * NULL; may be empty; at most VG_ALARM_REASON_SIZE - 1 and
 * VG_ALARM_USER_SIZE - 1 bytes). Status becomes normal. Shelving a shelved
 * alarm replaces the terms (extend, shorten, other reason).
 *
 * unshelve: if shelved, evaluates afresh (see the state model) unless still
 * out of service; otherwise not_shelved.
 *
 * set_out_of_service: OOS true takes the alarm out of service (status
 * normal), false returns it to service and evaluates afresh unless still
 * shelved; already_out_of_service / already_in_service when nothing to do. */
int vg_alarm_ack(struct vg_alarm_state *st, uint64_t now_ms,
                 struct vg_alarm_transition *out);
int vg_alarm_shelve(struct vg_alarm_state *st, uint64_t until_ms,
                    const char *reason, const char *user, uint64_t now_ms,
                    struct vg_alarm_transition *out, char *errmsg);
int vg_alarm_unshelve(struct vg_alarm_state *st, uint64_t now_ms,
                      struct vg_alarm_transition *out);
int vg_alarm_set_out_of_service(struct vg_alarm_state *st, bool oos,
                                uint64_t now_ms,
                                struct vg_alarm_transition *out);

/* ----------------------------------------------------- a project's alarms */

/* One operator action, as it arrives from a station or in a command. */
enum vg_alarm_action_kind {
    VG_ALARM_ACT_ACK,
    VG_ALARM_ACT_SHELVE,
    VG_ALARM_ACT_UNSHELVE,
    VG_ALARM_ACT_OUT_OF_SERVICE,
    VG_ALARM_ACT_IN_SERVICE,
};

struct vg_alarm_action {
    enum vg_alarm_action_kind kind;
    uint64_t until_ms;  /* shelve only */
    const char *reason; /* shelve only; borrowed for the call */
    const char *user;   /* shelve only; borrowed for the call */
};

/* The alarms of one project with one state each, and an index from every
 * tag to the alarms that read it (as their tag or, for deviation alarms, as
 * their reference), so that a new value evaluates only those. The engine
 * also remembers the latest reading of every tag, which a deviation alarm
 * needs of the tag that did not change. Alarms are numbered as in
 * project->alarms, tags as in project->tags. Not thread-safe; the node
 * drives it from its loop. */
struct vg_alarm_engine;

/* Called for every change of an alarm's state. T is one transition; T is
 * NULL when only bookkeeping changed (a delay started or was cancelled),
 * which matters only for continuing exactly after a failover. ST is the
 * alarm's state after the whole call (the same for several transitions
 * from one call); it is borrowed for the duration of the callback. The
 * callback must not call back into the engine other than its getters. */
typedef void (*vg_alarm_engine_cb)(void *data, size_t alarm,
                                   const struct vg_alarm_state *st,
                                   const struct vg_alarm_transition *t);

/* Build an engine for PROJECT (borrowed: must outlive the engine and not
 * change), every alarm in vg_alarm_state_init. Alarms whose tag (or, for
 * deviation, reference tag) did not resolve are never evaluated. Returns
 * VG_OK with *OUT set, or VG_ENOMEM with a sentence in ERRMSG. */
int vg_alarm_engine_new(const struct vg_project *project,
                        struct vg_alarm_engine **out, char *errmsg);

/* Free E (NULL is fine). */
void vg_alarm_engine_free(struct vg_alarm_engine *e);

/* Remember the new reading of tag TAG (GOOD false: bad quality) and step
 * every alarm that depends on it at NOW_MS, reporting each change to CB
 * (which may be NULL). Returns VG_OK, or VG_EINVAL when TAG is out of range
 * (nothing changes). */
int vg_alarm_engine_update(struct vg_alarm_engine *e, size_t tag,
                           double value, bool good, uint64_t now_ms,
                           vg_alarm_engine_cb cb, void *data);

/* Tick every alarm whose deadline is NOW_MS or earlier. O(alarms). */
void vg_alarm_engine_tick(struct vg_alarm_engine *e, uint64_t now_ms,
                          vg_alarm_engine_cb cb, void *data);

/* The earliest deadline of all alarms, or VG_ALARM_NEVER. O(alarms). */
uint64_t vg_alarm_engine_next_deadline(const struct vg_alarm_engine *e);

/* Apply operator action A to alarm ALARM at NOW_MS, after ticking that alarm
 * to NOW_MS. Every change goes to CB (may be NULL); *OUT (may be NULL) gets
 * what the action itself did, including the no-op reason. Returns VG_OK,
 * VG_ENOTFOUND for an alarm out of range, VG_EINVAL for an unknown action
 * kind or refused shelve terms; with a sentence in ERRMSG (may be NULL).
 * Refused shelve terms leave the action undone, but what had fallen due
 * before NOW_MS has still happened (and been reported to CB). */
int vg_alarm_engine_act(struct vg_alarm_engine *e, size_t alarm,
                        const struct vg_alarm_action *a, uint64_t now_ms,
                        struct vg_alarm_transition *out,
                        vg_alarm_engine_cb cb, void *data, char *errmsg);

/* Replace the state of ALARM with a stored copy, e.g. on a new leader.
 * Returns VG_OK, VG_ENOTFOUND, or VG_EINVAL when vg_alarm_state_check
 * refuses ST (nothing changes); with a sentence in ERRMSG (may be NULL). */
int vg_alarm_engine_restore(struct vg_alarm_engine *e, size_t alarm,
                            const struct vg_alarm_state *st, char *errmsg);

size_t vg_alarm_engine_count(const struct vg_alarm_engine *e);

/* The state of ALARM (borrowed, valid until the engine changes or is freed),
 * or NULL when ALARM is out of range. */
const struct vg_alarm_state *
vg_alarm_engine_state(const struct vg_alarm_engine *e, size_t alarm);

/* The alarms that depend on TAG, ascending and without duplicates (borrowed
 * from E); *N is 0 (and NULL returned) for a tag out of range or read by no
 * alarm. */
const size_t *vg_alarm_engine_tag_alarms(const struct vg_alarm_engine *e,
                                         size_t tag, size_t *n);

/* How many times ALARM has been stepped by vg_alarm_engine_update (0 for an
 * alarm out of range): a diagnostic, and the proof in tests that a reading
 * evaluates only the alarms that depend on it. */
uint64_t vg_alarm_engine_evaluations(const struct vg_alarm_engine *e,
                                     size_t alarm);

#endif /* VG_ALARMS_H */
