/* One alarm, pure: the condition tests with hysteresis, the on/off delays,
 * quality, and the ISA-18.2 state model with shelving and out of service
 * (see alarms.h for the rules).
 *
 * Everything is a function of (definition, state, input, now), so a state
 * copied to another node continues identically. Two rules keep that true
 * when timers are late: vg_alarm_step always catches up first (tick to NOW),
 * and a change that falls due is stamped with its deadline, not with the
 * time somebody noticed. Fields that carry no meaning (pending_since_ms when
 * nothing is pending, shelve terms when not shelved) are kept at zero, so a
 * state has one canonical form and equality is plain comparison. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "alarms.h"

/* ------------------------------------------------------------------ names */

static const char *const status_names[] = {
    [VG_ALARM_NORMAL] = "normal",
    [VG_ALARM_UNACK_ACTIVE] = "unack_active",
    [VG_ALARM_ACK_ACTIVE] = "ack_active",
    [VG_ALARM_UNACK_RTN] = "unack_rtn",
};

static const char *const cause_names[] = {
    [VG_ALARM_CAUSE_NONE] = "none",
    [VG_ALARM_CAUSE_RAISED] = "raised",
    [VG_ALARM_CAUSE_CLEARED] = "cleared",
    [VG_ALARM_CAUSE_ACKED] = "acked",
    [VG_ALARM_CAUSE_SHELVED] = "shelved",
    [VG_ALARM_CAUSE_UNSHELVED] = "unshelved",
    [VG_ALARM_CAUSE_EXPIRED] = "expired",
    [VG_ALARM_CAUSE_OOS] = "oos",
    [VG_ALARM_CAUSE_IN_SERVICE] = "in_service",
};

static const char *const noop_names[] = {
    [VG_ALARM_NOOP_NONE] = "none",
    [VG_ALARM_NOOP_NOTHING_TO_ACK] = "nothing_to_acknowledge",
    [VG_ALARM_NOOP_NOT_SHELVED] = "not_shelved",
    [VG_ALARM_NOOP_ALREADY_OOS] = "already_out_of_service",
    [VG_ALARM_NOOP_ALREADY_IN_SERVICE] = "already_in_service",
};

#define N_STATUS (sizeof(status_names) / sizeof(status_names[0]))
#define N_CAUSE (sizeof(cause_names) / sizeof(cause_names[0]))
#define N_NOOP (sizeof(noop_names) / sizeof(noop_names[0]))

/* Enums are compared as unsigned so that a negative value read from storage
 * is out of range too. */
const char *vg_alarm_status_name(enum vg_alarm_status s)
{
    return (unsigned)s < N_STATUS ? status_names[s] : "?";
}

const char *vg_alarm_cause_name(enum vg_alarm_cause c)
{
    return (unsigned)c < N_CAUSE ? cause_names[c] : "?";
}

const char *vg_alarm_noop_name(enum vg_alarm_noop n)
{
    return (unsigned)n < N_NOOP ? noop_names[n] : "?";
}

static int find_name(const char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; name != NULL && i < n; i++)
        if (strcmp(names[i], name) == 0)
            return (int)i;
    return -1;
}

int vg_alarm_status_parse(const char *name, enum vg_alarm_status *out)
{
    int i = find_name(status_names, N_STATUS, name);
    if (i < 0)
        return VG_EINVAL;
    *out = (enum vg_alarm_status)i;
    return VG_OK;
}

int vg_alarm_cause_parse(const char *name, enum vg_alarm_cause *out)
{
    int i = find_name(cause_names, N_CAUSE, name);
    if (i < 0)
        return VG_EINVAL;
    *out = (enum vg_alarm_cause)i;
    return VG_OK;
}

/* ------------------------------------------------------------------ state */

void vg_alarm_state_init(struct vg_alarm_state *st)
{
    memset(st, 0, sizeof(*st));
    st->status = VG_ALARM_NORMAL;
}

bool vg_alarm_state_suppressed(const struct vg_alarm_state *st)
{
    return st->shelved || st->out_of_service;
}

static bool status_active(enum vg_alarm_status s)
{
    return s == VG_ALARM_UNACK_ACTIVE || s == VG_ALARM_ACK_ACTIVE;
}

int vg_alarm_state_check(const struct vg_alarm_state *st, char *errmsg)
{
    if ((unsigned)st->status >= N_STATUS) {
        vg_errf(errmsg, "The alarm status %u is not a known status.",
                (unsigned)st->status);
        return VG_EINVAL;
    }
    if (memchr(st->shelve_reason, '\0', sizeof(st->shelve_reason)) == NULL ||
        memchr(st->shelve_user, '\0', sizeof(st->shelve_user)) == NULL) {
        vg_errf(errmsg, "The shelve reason or user is not terminated.");
        return VG_EINVAL;
    }
    if (!st->pending && st->pending_since_ms != 0) {
        vg_errf(errmsg, "A delay start is set but nothing is pending.");
        return VG_EINVAL;
    }
    if (!st->shelved &&
        (st->shelved_ms != 0 || st->shelved_until_ms != 0 ||
         st->shelve_reason[0] != '\0' || st->shelve_user[0] != '\0')) {
        vg_errf(errmsg, "Shelve terms are set on an alarm that is not shelved.");
        return VG_EINVAL;
    }
    if (!st->out_of_service && st->out_of_service_ms != 0) {
        vg_errf(errmsg, "An out-of-service time is set on an alarm in service.");
        return VG_EINVAL;
    }
    if (vg_alarm_state_suppressed(st)) {
        if (st->status != VG_ALARM_NORMAL) {
            vg_errf(errmsg, "A suppressed alarm must be normal, not %s.",
                    vg_alarm_status_name(st->status));
            return VG_EINVAL;
        }
    } else if (st->active != status_active(st->status)) {
        vg_errf(errmsg, "The status %s contradicts the condition being %s.",
                vg_alarm_status_name(st->status),
                st->active ? "active" : "clear");
        return VG_EINVAL;
    }
    return VG_OK;
}

bool vg_alarm_state_equal(const struct vg_alarm_state *a,
                          const struct vg_alarm_state *b)
{
    return a->status == b->status && a->active == b->active &&
           a->changed_ms == b->changed_ms && a->pending == b->pending &&
           a->pending_since_ms == b->pending_since_ms &&
           a->raised_ms == b->raised_ms && a->acked_ms == b->acked_ms &&
           a->cleared_ms == b->cleared_ms && a->shelved == b->shelved &&
           a->shelved_ms == b->shelved_ms &&
           a->shelved_until_ms == b->shelved_until_ms &&
           strcmp(a->shelve_reason, b->shelve_reason) == 0 &&
           strcmp(a->shelve_user, b->shelve_user) == 0 &&
           a->out_of_service == b->out_of_service &&
           a->out_of_service_ms == b->out_of_service_ms;
}

/* ------------------------------------------------------------ transitions */

static void record(struct vg_alarm_transition *t, enum vg_alarm_cause cause,
                   enum vg_alarm_status from, const struct vg_alarm_state *st,
                   uint64_t at_ms)
{
    t->cause = cause;
    t->noop = VG_ALARM_NOOP_NONE;
    t->from = from;
    t->to = st->status;
    t->active = st->active;
    t->shelved = st->shelved;
    t->out_of_service = st->out_of_service;
    t->at_ms = at_ms;
}

static void record_noop(struct vg_alarm_transition *t, enum vg_alarm_noop why,
                        const struct vg_alarm_state *st, uint64_t at_ms)
{
    record(t, VG_ALARM_CAUSE_NONE, st->status, st, at_ms);
    t->noop = why;
}

/* A fresh annunciation: whatever was shown before is replaced. */
static void annunciate(struct vg_alarm_state *st, uint64_t at_ms)
{
    st->status = VG_ALARM_UNACK_ACTIVE;
    st->raised_ms = at_ms;
    st->acked_ms = 0;
    st->cleared_ms = 0;
}

/* The condition flips at AT_MS. While suppressed only ACTIVE follows. */
static void flip(struct vg_alarm_state *st, uint64_t at_ms,
                 struct vg_alarm_transition *t)
{
    enum vg_alarm_status from = st->status;

    st->active = !st->active;
    st->changed_ms = at_ms;
    st->pending = false;
    st->pending_since_ms = 0;
    if (!vg_alarm_state_suppressed(st)) {
        if (st->active) {
            annunciate(st, at_ms);
        } else {
            st->status = from == VG_ALARM_UNACK_ACTIVE ? VG_ALARM_UNACK_RTN
                                                       : VG_ALARM_NORMAL;
            st->cleared_ms = at_ms;
        }
    }
    record(t, st->active ? VG_ALARM_CAUSE_RAISED : VG_ALARM_CAUSE_CLEARED,
           from, st, at_ms);
}

/* The last suppression was lifted: show the condition as it is now. */
static void reevaluate(struct vg_alarm_state *st, uint64_t at_ms)
{
    if (vg_alarm_state_suppressed(st))
        return;
    if (st->active)
        annunciate(st, at_ms);
    else
        st->status = VG_ALARM_NORMAL;
}

static void clear_shelve(struct vg_alarm_state *st)
{
    st->shelved = false;
    st->shelved_ms = 0;
    st->shelved_until_ms = 0;
    memset(st->shelve_reason, 0, sizeof(st->shelve_reason));
    memset(st->shelve_user, 0, sizeof(st->shelve_user));
}

static void unshelve_at(struct vg_alarm_state *st, enum vg_alarm_cause cause,
                        uint64_t at_ms, struct vg_alarm_transition *t)
{
    enum vg_alarm_status from = st->status;

    clear_shelve(st);
    reevaluate(st, at_ms);
    record(t, cause, from, st, at_ms);
}

/* ----------------------------------------------------------- evaluation */

enum eval {
    EV_SKIP, /* no information: change nothing */
    EV_BAD,  /* condition unknown: hold, cancel a pending change */
    EV_HOLD, /* the test for a change fails: cancel a pending change */
    EV_PASS, /* the test for a change passes */
};

/* Unknown quality values (from a corrupt caller) count as bad: holding is
 * the safe reaction to an input nobody can vouch for. */
static enum eval quality(const struct vg_alarm_reading *r)
{
    if (r->quality == VG_ALARM_Q_NONE)
        return EV_SKIP;
    if (r->quality != VG_ALARM_Q_GOOD || !isfinite(r->value))
        return EV_BAD;
    return EV_PASS;
}

/* Does IN pass the test that would change the condition from ACTIVE? */
static enum eval evaluate(const struct vg_alarm *def, bool active,
                          const struct vg_alarm_input *in)
{
    enum eval q = quality(&in->tag);
    /* A negative or NaN hysteresis (never valid) acts as none. */
    double h = def->hysteresis > 0 ? def->hysteresis : 0;
    double v = in->tag.value;
    bool pass;

    if (def->kind == VG_ALARM_DEVIATION) {
        enum eval r = quality(&in->reference);
        /* Bad wins over missing: a known-bad input is information. */
        if (q == EV_BAD || r == EV_BAD)
            return EV_BAD;
        if (q == EV_SKIP || r == EV_SKIP)
            return EV_SKIP;
    } else if (q != EV_PASS) {
        return q;
    }
    if (def->kind != VG_ALARM_DIGITAL_ON && def->kind != VG_ALARM_DIGITAL_OFF &&
        (!def->has_limit || !isfinite(def->limit)))
        return EV_SKIP;

    switch (def->kind) {
    case VG_ALARM_HIGH:
    case VG_ALARM_HIGH_HIGH:
        pass = active ? v < def->limit - h : v > def->limit;
        break;
    case VG_ALARM_LOW:
    case VG_ALARM_LOW_LOW:
        pass = active ? v > def->limit + h : v < def->limit;
        break;
    case VG_ALARM_DIGITAL_ON:
        pass = active ? v == 0 : v != 0;
        break;
    case VG_ALARM_DIGITAL_OFF:
        pass = active ? v != 0 : v == 0;
        break;
    case VG_ALARM_DEVIATION: {
        double d = fabs(v - in->reference.value);
        pass = active ? d <= def->limit - h : d > def->limit;
        break;
    }
    default:
        return EV_SKIP;
    }
    return pass ? EV_PASS : EV_HOLD;
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* When the pending change falls due, or VG_ALARM_NEVER. */
static uint64_t pending_deadline(const struct vg_alarm *def,
                                 const struct vg_alarm_state *st)
{
    if (!st->pending)
        return VG_ALARM_NEVER;
    return add_sat(st->pending_since_ms,
                   st->active ? def->off_delay_ms : def->on_delay_ms);
}

uint64_t vg_alarm_next_deadline(const struct vg_alarm *def,
                                const struct vg_alarm_state *st)
{
    uint64_t d = pending_deadline(def, st);
    if (st->shelved && st->shelved_until_ms < d)
        d = st->shelved_until_ms;
    return d;
}

unsigned vg_alarm_tick(const struct vg_alarm *def, struct vg_alarm_state *st,
                       uint64_t now_ms,
                       struct vg_alarm_transition out[VG_ALARM_STEP_MAX])
{
    unsigned n = 0;

    /* Each round ends a pending change or a shelve, so this runs at most
     * twice; the flags (not the deadlines) decide, so that a deadline of
     * VG_ALARM_NEVER cannot loop when NOW_MS is UINT64_MAX too. */
    for (;;) {
        uint64_t dp = pending_deadline(def, st);
        uint64_t ds = st->shelved ? st->shelved_until_ms : VG_ALARM_NEVER;
        if (st->pending && dp <= now_ms && (!st->shelved || dp <= ds))
            flip(st, dp, &out[n++]);
        else if (st->shelved && ds <= now_ms)
            unshelve_at(st, VG_ALARM_CAUSE_EXPIRED, ds, &out[n++]);
        else
            break;
    }
    return n;
}

unsigned vg_alarm_step(const struct vg_alarm *def, struct vg_alarm_state *st,
                       const struct vg_alarm_input *in, uint64_t now_ms,
                       struct vg_alarm_transition out[VG_ALARM_STEP_MAX])
{
    unsigned n = vg_alarm_tick(def, st, now_ms, out);

    switch (evaluate(def, st->active, in)) {
    case EV_SKIP:
        break;
    case EV_BAD:
    case EV_HOLD:
        st->pending = false;
        st->pending_since_ms = 0;
        break;
    case EV_PASS: {
        if (!st->pending) {
            st->pending = true;
            st->pending_since_ms = now_ms;
        }
        /* Due now only with a zero delay (or a clock that stepped back far
         * enough to make an older start look elapsed): the tick above has
         * already handled every deadline before NOW_MS. */
        uint64_t due = pending_deadline(def, st);
        if (due <= now_ms)
            flip(st, due, &out[n++]);
        break;
    }
    }
    return n;
}

/* ------------------------------------------------------ operator actions */

int vg_alarm_ack(struct vg_alarm_state *st, uint64_t now_ms,
                 struct vg_alarm_transition *out)
{
    enum vg_alarm_status from = st->status;

    if (from == VG_ALARM_UNACK_ACTIVE)
        st->status = VG_ALARM_ACK_ACTIVE;
    else if (from == VG_ALARM_UNACK_RTN)
        st->status = VG_ALARM_NORMAL;
    else {
        record_noop(out, VG_ALARM_NOOP_NOTHING_TO_ACK, st, now_ms);
        return VG_OK;
    }
    st->acked_ms = now_ms;
    record(out, VG_ALARM_CAUSE_ACKED, from, st, now_ms);
    return VG_OK;
}

/* Copy S (known to fit) into DST of SIZE bytes, zero-filled so that the
 * stored form does not depend on what was there before. */
static void copy_text(char *dst, size_t size, const char *s)
{
    memset(dst, 0, size);
    memcpy(dst, s, strlen(s));
}

int vg_alarm_shelve(struct vg_alarm_state *st, uint64_t until_ms,
                    const char *reason, const char *user, uint64_t now_ms,
                    struct vg_alarm_transition *out, char *errmsg)
{
    enum vg_alarm_status from = st->status;

    if (reason == NULL || user == NULL) {
        vg_errf(errmsg, "Shelving needs a reason and a user.");
        return VG_EINVAL;
    }
    if (until_ms <= now_ms) {
        vg_errf(errmsg, "The end of shelving must lie in the future.");
        return VG_EINVAL;
    }
    if (strlen(reason) >= VG_ALARM_REASON_SIZE) {
        vg_errf(errmsg, "The shelve reason is longer than %d bytes.",
                VG_ALARM_REASON_SIZE - 1);
        return VG_EINVAL;
    }
    if (strlen(user) >= VG_ALARM_USER_SIZE) {
        vg_errf(errmsg, "The user name is longer than %d bytes.",
                VG_ALARM_USER_SIZE - 1);
        return VG_EINVAL;
    }
    copy_text(st->shelve_reason, sizeof(st->shelve_reason), reason);
    copy_text(st->shelve_user, sizeof(st->shelve_user), user);
    st->shelved = true;
    st->shelved_ms = now_ms;
    st->shelved_until_ms = until_ms;
    st->status = VG_ALARM_NORMAL;
    record(out, VG_ALARM_CAUSE_SHELVED, from, st, now_ms);
    return VG_OK;
}

int vg_alarm_unshelve(struct vg_alarm_state *st, uint64_t now_ms,
                      struct vg_alarm_transition *out)
{
    if (!st->shelved)
        record_noop(out, VG_ALARM_NOOP_NOT_SHELVED, st, now_ms);
    else
        unshelve_at(st, VG_ALARM_CAUSE_UNSHELVED, now_ms, out);
    return VG_OK;
}

int vg_alarm_set_out_of_service(struct vg_alarm_state *st, bool oos,
                                uint64_t now_ms,
                                struct vg_alarm_transition *out)
{
    enum vg_alarm_status from = st->status;

    if (oos == st->out_of_service) {
        record_noop(out, oos ? VG_ALARM_NOOP_ALREADY_OOS
                             : VG_ALARM_NOOP_ALREADY_IN_SERVICE,
                    st, now_ms);
        return VG_OK;
    }
    st->out_of_service = oos;
    st->out_of_service_ms = oos ? now_ms : 0;
    if (oos)
        st->status = VG_ALARM_NORMAL;
    else
        reevaluate(st, now_ms);
    record(out, oos ? VG_ALARM_CAUSE_OOS : VG_ALARM_CAUSE_IN_SERVICE, from, st,
           now_ms);
    return VG_OK;
}
