/* Unit tests for node/alarms/alarms.h, all with simulated time.
 *
 * The core is a table of scenarios, one per TAP test: an alarm definition
 * (kind, limit, hysteresis, delays) and a sequence of steps (a reading, a
 * tick or an operator action at a time), each with the transitions it must
 * report ("cause@time", oldest first) and the state it must leave ("status"
 * plus "active", "pending@since", "shelved", "oos"). Together the rows cover
 * every alarm kind, every transition of the ISA-18.2 state model, the
 * hysteresis boundaries, delays interrupted and not, bad quality, shelving,
 * out of service and the no-op answers. Every scenario is then run twice
 * more, and must give the same transcript and final state:
 *
 *   failover: split at every step; the first part runs on one state, which
 *     is stored as bytes and restored into a fresh struct (as a new leader
 *     would from the database), and the rest continues on that copy;
 *   timers on time: before each step, tick at every deadline that passed,
 *     as a node whose timer never runs late would; the transitions must be
 *     the same, with the same times, as when a late reading catches up.
 *
 * After every step the state must pass vg_alarm_state_check (so that it can
 * always be restored), nothing may be left overdue, and the transitions must
 * chain (each FROM the previous TO, the flags those of the state).
 *
 * Then the engine: a small hand-made project for the tag index (deviation
 * references, unresolved tags, a self-reference), the callback, actions and
 * restore; and the waterworks example (the test's first argument), whose
 * index is checked against a brute force, whose every tag must evaluate
 * exactly the alarms that depend on it, and whose chlorine alarms go through
 * a failover mid-delay onto a new engine that has seen no readings yet. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>
#include <math.h>

#include <cmocka.h>

#include "alarms.h"

static const char *waterworks_dir;

/* ------------------------------------------------------------ scenarios */

enum opk { END, IN, TICK, ACK, SHELVE, UNSHELVE, OOS, INSVC };

struct op {
    enum opk k;
    uint64_t t;
    double v;
    enum vg_alarm_quality q;
    double ref;
    enum vg_alarm_quality rq;
    uint64_t until;
};

struct step {
    struct op o;
    const char *tr; /* "cause@at ..." or "noop:reason"; "" for none */
    const char *st; /* see fmt_state */
};

struct scenario {
    const char *name;
    enum vg_alarm_kind kind;
    bool no_limit;
    double limit, hyst;
    unsigned on, off;
    struct step steps[24];
};

#define G VG_ALARM_Q_GOOD
#define B VG_ALARM_Q_BAD
#define NONE VG_ALARM_Q_NONE
/* A reading of the alarm's tag, good or bad; a deviation reading with both. */
#define R(t_, v_) {.k = IN, .t = (t_), .v = (v_), .q = G}
#define RB(t_) {.k = IN, .t = (t_), .q = B}
#define D(t_, v_, r_) {.k = IN, .t = (t_), .v = (v_), .q = G, .ref = (r_), .rq = G}
#define DQ(t_, v_, q_, r_, rq_) \
    {.k = IN, .t = (t_), .v = (v_), .q = (q_), .ref = (r_), .rq = (rq_)}
#define T(t_) {.k = TICK, .t = (t_)}
#define A(t_) {.k = ACK, .t = (t_)}
#define SH(t_, u_) {.k = SHELVE, .t = (t_), .until = (u_)}
#define US(t_) {.k = UNSHELVE, .t = (t_)}
#define OS(t_) {.k = OOS, .t = (t_)}
#define IS(t_) {.k = INSVC, .t = (t_)}

static const struct scenario scenarios[] = {
    {"high: limit and hysteresis boundaries", VG_ALARM_HIGH, false, 100, 5, 0, 0, {
        {R(1000, 99), "", "normal"},
        {R(1100, 100), "", "normal"},                 /* == limit: not above */
        {R(1200, 100.5), "raised@1200", "unack_active active"},
        {R(1300, 97), "", "unack_active active"},     /* inside the band */
        {R(1400, 95), "", "unack_active active"},     /* == limit - hyst */
        {R(1500, 94.5), "cleared@1500", "unack_rtn"},
        {R(1600, 99), "", "unack_rtn"},
        {R(1700, 100), "", "unack_rtn"},
        {A(1800), "acked@1800", "normal"},
    }},
    {"high_high: acknowledged while active, then cleared", VG_ALARM_HIGH_HIGH,
     false, 120, 2, 0, 0, {
        {R(1000, 121), "raised@1000", "unack_active active"},
        {A(1100), "acked@1100", "ack_active active"},
        {A(1150), "noop:nothing_to_acknowledge", "ack_active active"},
        {R(1200, 118), "", "ack_active active"},      /* == limit - hyst */
        {R(1300, 117.9), "cleared@1300", "normal"},
        {A(1400), "noop:nothing_to_acknowledge", "normal"},
        {R(1500, 120), "", "normal"},
    }},
    {"high: no hysteresis", VG_ALARM_HIGH, false, 100, 0, 0, 0, {
        {R(1000, 100), "", "normal"},
        {R(1100, 100.1), "raised@1100", "unack_active active"},
        {R(1200, 100), "", "unack_active active"},    /* not below the limit */
        {R(1300, 99.9), "cleared@1300", "unack_rtn"},
    }},
    {"low: boundaries, return and raise again", VG_ALARM_LOW, false, 10, 1, 0, 0, {
        {R(1000, 10), "", "normal"},
        {R(1100, 9.5), "raised@1100", "unack_active active"},
        {R(1200, 11), "", "unack_active active"},     /* == limit + hyst */
        {R(1300, 11.5), "cleared@1300", "unack_rtn"},
        {R(1400, 10), "", "unack_rtn"},
        {R(1500, 9), "raised@1500", "unack_active active"}, /* rtn -> active */
        {A(1600), "acked@1600", "ack_active active"},
        {R(1700, 12), "cleared@1700", "normal"},
    }},
    {"low_low: boundaries", VG_ALARM_LOW_LOW, false, 5, 0.5, 0, 0, {
        {R(1000, 5), "", "normal"},
        {R(1100, 4.9), "raised@1100", "unack_active active"},
        {R(1200, 5.5), "", "unack_active active"},
        {R(1300, 5.51), "cleared@1300", "unack_rtn"},
        {A(1400), "acked@1400", "normal"},
        {A(1500), "noop:nothing_to_acknowledge", "normal"},
    }},
    {"low_low: delays, rtn raised again after its on-delay", VG_ALARM_LOW_LOW,
     false, 5, 0.5, 1000, 1000, {
        {R(1000, 4), "", "normal pending@1000"},
        {T(2000), "raised@2000", "unack_active active"},
        {R(2500, 6), "", "unack_active active pending@2500"},
        {R(3000, 4), "", "unack_active active"},
        {R(3200, 6), "", "unack_active active pending@3200"},
        {T(4200), "cleared@4200", "unack_rtn"},
        {R(4300, 4), "", "unack_rtn pending@4300"},
        {T(5299), "", "unack_rtn pending@4300"},
        {T(5300), "raised@5300", "unack_active active"},
    }},
    {"digital_on: hysteresis ignored", VG_ALARM_DIGITAL_ON, true, 0, 5, 0, 0, {
        {R(1000, 0), "", "normal"},
        {R(1100, 1), "raised@1100", "unack_active active"},
        {R(1200, 1), "", "unack_active active"},
        {R(1300, 0), "cleared@1300", "unack_rtn"},
        {R(1400, 1), "raised@1400", "unack_active active"},
        {A(1500), "acked@1500", "ack_active active"},
        {R(1600, 0), "cleared@1600", "normal"},
    }},
    {"digital_off", VG_ALARM_DIGITAL_OFF, true, 0, 0, 0, 0, {
        {R(1000, 1), "", "normal"},
        {R(1100, 0), "raised@1100", "unack_active active"},
        {A(1200), "acked@1200", "ack_active active"},
        {R(1300, 1), "cleared@1300", "normal"},
        {R(1400, 0), "raised@1400", "unack_active active"},
        {R(1500, 1), "cleared@1500", "unack_rtn"},
        {A(1600), "acked@1600", "normal"},
    }},
    {"digital_on: on-delay 2 s, off-delay 10 s", VG_ALARM_DIGITAL_ON, true,
     0, 0, 2000, 10000, {
        {R(1000, 1), "", "normal pending@1000"},
        {T(2999), "", "normal pending@1000"},
        {T(3000), "raised@3000", "unack_active active"},
        {R(4000, 0), "", "unack_active active pending@4000"},
        {R(5000, 1), "", "unack_active active"},
        {R(6000, 0), "", "unack_active active pending@6000"},
        {T(15999), "", "unack_active active pending@6000"},
        {T(16000), "cleared@16000", "unack_rtn"},
    }},
    {"deviation: absolute difference and boundaries", VG_ALARM_DEVIATION,
     false, 10, 2, 0, 0, {
        {D(1000, 50, 40), "", "normal"},              /* |d| == limit */
        {D(1100, 50, 39.5), "raised@1100", "unack_active active"},
        {D(1200, 40, 52), "", "unack_active active"}, /* |d| 12, below ref */
        {D(1300, 50, 42), "cleared@1300", "unack_rtn"}, /* |d| == limit - hyst */
        {D(1400, 30, 41), "raised@1400", "unack_active active"},
        {D(1500, 41, 32), "", "unack_active active"}, /* |d| 9: in the band */
        {A(1600), "acked@1600", "ack_active active"},
        {D(1700, 40, 32), "cleared@1700", "normal"},
    }},
    {"deviation: bad reference holds, missing reference is no news",
     VG_ALARM_DEVIATION, false, 10, 2, 1000, 0, {
        {DQ(1000, 60, G, 40, G), "", "normal pending@1000"},
        {DQ(1500, 60, G, 40, B), "", "normal"},
        {DQ(1600, 60, G, 40, G), "", "normal pending@1600"},
        {DQ(2000, 60, G, 0, NONE), "", "normal pending@1600"},
        {DQ(2600, 60, G, 40, G), "raised@2600", "unack_active active"},
        {DQ(2700, 40, G, 40, B), "", "unack_active active"},
        {DQ(2800, 40, B, 40, G), "", "unack_active active"},
        {DQ(2850, 40, NONE, 40, B), "", "unack_active active"},
        {DQ(2900, 40, G, 40, G), "cleared@2900", "unack_rtn"},
    }},
    {"high: on-delay interrupted, then not", VG_ALARM_HIGH, false, 100, 5, 2000, 0, {
        {R(1000, 101), "", "normal pending@1000"},
        {R(2000, 102), "", "normal pending@1000"},    /* the start stays */
        {R(2999, 99), "", "normal"},                  /* 1 ms short */
        {R(3000, 101), "", "normal pending@3000"},
        {T(4999), "", "normal pending@3000"},
        {T(5000), "raised@5000", "unack_active active"},
        {T(6000), "", "unack_active active"},
    }},
    {"high: on-delay elapsing exactly at a reading", VG_ALARM_HIGH, false,
     100, 5, 2000, 0, {
        {R(1000, 101), "", "normal pending@1000"},
        {R(3000, 105), "raised@3000", "unack_active active"},
    }},
    {"high: a late reading catches up with the elapsed on-delay",
     VG_ALARM_HIGH, false, 100, 5, 2000, 0, {
        {R(1000, 101), "", "normal pending@1000"},
        {R(4000, 50), "raised@3000 cleared@4000", "unack_rtn"},
        {A(4100), "acked@4100", "normal"},
    }},
    {"high: off-delay interrupted, then not", VG_ALARM_HIGH, false, 100, 5, 0, 3000, {
        {R(1000, 110), "raised@1000", "unack_active active"},
        {R(2000, 90), "", "unack_active active pending@2000"},
        {R(3000, 97), "", "unack_active active"},     /* back in the band */
        {R(4000, 94), "", "unack_active active pending@4000"},
        {A(5000), "acked@5000", "ack_active active pending@4000"},
        {T(6999), "", "ack_active active pending@4000"},
        {T(7000), "cleared@7000", "normal"},
        {R(8000, 101), "raised@8000", "unack_active active"},
        {R(8500, 94), "", "unack_active active pending@8500"},
        {R(11500, 94.9), "cleared@11500", "unack_rtn"},
    }},
    {"high: bad quality holds the state and restarts delays", VG_ALARM_HIGH,
     false, 100, 5, 2000, 2000, {
        {R(1000, 101), "", "normal pending@1000"},
        {RB(2000), "", "normal"},
        {R(2500, 101), "", "normal pending@2500"},
        {T(3000), "", "normal pending@2500"},         /* the old deadline */
        {T(4500), "raised@4500", "unack_active active"},
        {RB(5000), "", "unack_active active"},
        {R(5500, 50), "", "unack_active active pending@5500"},
        {RB(6000), "", "unack_active active"},
        {T(7500), "", "unack_active active"},
        {R(8000, 50), "", "unack_active active pending@8000"},
        {R(9000, NAN), "", "unack_active active"},   /* not a value: bad */
        {R(9500, 50), "", "unack_active active pending@9500"},
        {R(11500, 50), "cleared@11500", "unack_rtn"},
    }},
    {"high: a bad reading at the deadline comes too late", VG_ALARM_HIGH,
     false, 100, 5, 1000, 0, {
        {R(1000, 101), "", "normal pending@1000"},
        {RB(2000), "raised@2000", "unack_active active"},
    }},
    {"high: a new leader's clock behind the delay start", VG_ALARM_HIGH,
     false, 100, 5, 2000, 0, {
        {R(5000, 101), "", "normal pending@5000"},
        {R(3000, 102), "", "normal pending@5000"},
        {T(6999), "", "normal pending@5000"},
        {T(7000), "raised@7000", "unack_active active"},
    }},
    {"high: an analog alarm without a limit never raises", VG_ALARM_HIGH,
     true, 0, 0, 0, 0, {
        {R(1000, 1e9), "", "normal"},
        {RB(1100), "", "normal"},
    }},
    {"shelve: tracked silently, expiry annunciates afresh", VG_ALARM_HIGH,
     false, 100, 5, 0, 0, {
        {R(1000, 101), "raised@1000", "unack_active active"},
        {SH(2000, 10000), "shelved@2000", "normal active shelved"},
        {A(2500), "noop:nothing_to_acknowledge", "normal active shelved"},
        {R(3000, 90), "cleared@3000", "normal shelved"},
        {R(4000, 101), "raised@4000", "normal active shelved"},
        {T(9999), "", "normal active shelved"},
        {T(10000), "expired@10000", "unack_active active"},
        {A(10100), "acked@10100", "ack_active active"},
    }},
    {"shelve: unack_rtn shelved, expiry while clear is normal", VG_ALARM_HIGH,
     false, 100, 5, 0, 0, {
        {R(1000, 101), "raised@1000", "unack_active active"},
        {R(1500, 90), "cleared@1500", "unack_rtn"},
        {SH(2000, 5000), "shelved@2000", "normal shelved"},
        {R(3000, 101), "raised@3000", "normal active shelved"},
        {R(3500, 90), "cleared@3500", "normal shelved"},
        {T(5000), "expired@5000", "normal"},
        {A(5100), "noop:nothing_to_acknowledge", "normal"},
    }},
    {"shelve: operator unshelve, active and clear", VG_ALARM_HIGH, false,
     100, 5, 0, 0, {
        {R(1000, 101), "raised@1000", "unack_active active"},
        {A(1100), "acked@1100", "ack_active active"},
        {SH(1200, 100000), "shelved@1200", "normal active shelved"},
        {US(2000), "unshelved@2000", "unack_active active"},
        {US(2100), "noop:not_shelved", "unack_active active"},
        {A(2200), "acked@2200", "ack_active active"},
        {SH(2300, 50000), "shelved@2300", "normal active shelved"},
        {R(2400, 90), "cleared@2400", "normal shelved"},
        {US(2500), "unshelved@2500", "normal"},
    }},
    {"shelve: shelving again replaces the terms", VG_ALARM_HIGH, false,
     100, 5, 0, 0, {
        {R(1000, 101), "raised@1000", "unack_active active"},
        {SH(1100, 5000), "shelved@1100", "normal active shelved"},
        {SH(4000, 9000), "shelved@4000", "normal active shelved"},
        {T(5000), "", "normal active shelved"},
        {T(9000), "expired@9000", "unack_active active"},
        {SH(9100, 20000), "shelved@9100", "normal active shelved"},
        {SH(9200, 9300), "shelved@9200", "normal active shelved"},
        {T(9300), "expired@9300", "unack_active active"},
    }},
    {"shelve: expiry and on-delay caught up by one reading", VG_ALARM_HIGH,
     false, 100, 5, 2000, 0, {
        {R(1000, 101), "", "normal pending@1000"},
        {SH(1500, 2500), "shelved@1500", "normal pending@1000 shelved"},
        {R(5000, 50), "expired@2500 raised@3000 cleared@5000", "unack_rtn"},
        {A(5100), "acked@5100", "normal"},
        {R(6000, 101), "", "normal pending@6000"},
        {SH(6500, 8000), "shelved@6500", "normal pending@6000 shelved"},
        /* Both due at 8000: the condition first, so that the expiry shows
         * the alarm as it is then. */
        {T(8000), "raised@8000 expired@8000", "unack_active active"},
    }},
    {"out of service: silent until returned", VG_ALARM_HIGH, false, 100, 5, 0, 0, {
        {R(1000, 101), "raised@1000", "unack_active active"},
        {OS(1100), "oos@1100", "normal active oos"},
        {OS(1150), "noop:already_out_of_service", "normal active oos"},
        {A(1200), "noop:nothing_to_acknowledge", "normal active oos"},
        {R(1300, 90), "cleared@1300", "normal oos"},
        {R(1400, 101), "raised@1400", "normal active oos"},
        {IS(1500), "in_service@1500", "unack_active active"},
        {IS(1600), "noop:already_in_service", "unack_active active"},
        {OS(1700), "oos@1700", "normal active oos"},
        {R(1800, 90), "cleared@1800", "normal oos"},
        {IS(1900), "in_service@1900", "normal"},
    }},
    {"shelved and out of service at once", VG_ALARM_HIGH, false, 100, 5, 0, 0, {
        {R(1000, 101), "raised@1000", "unack_active active"},
        {SH(1100, 3000), "shelved@1100", "normal active shelved"},
        {OS(1200), "oos@1200", "normal active shelved oos"},
        {T(3000), "expired@3000", "normal active oos"},
        {IS(3100), "in_service@3100", "unack_active active"},
        {OS(3200), "oos@3200", "normal active oos"},
        {SH(3300, 9000), "shelved@3300", "normal active shelved oos"},
        {IS(3400), "in_service@3400", "normal active shelved"},
        {US(3500), "unshelved@3500", "unack_active active"},
    }},
    {"acknowledge: no-ops in normal and ack_active", VG_ALARM_LOW, false,
     10, 1, 0, 0, {
        {A(1000), "noop:nothing_to_acknowledge", "normal"},
        {R(1100, 5), "raised@1100", "unack_active active"},
        {A(1200), "acked@1200", "ack_active active"},
        {A(1300), "noop:nothing_to_acknowledge", "ack_active active"},
        {R(1400, 50), "cleared@1400", "normal"},
        {A(1500), "noop:nothing_to_acknowledge", "normal"},
    }},
};

#define N_SCENARIOS (sizeof(scenarios) / sizeof(scenarios[0]))

/* -------------------------------------------------------------- helpers */

static struct vg_alarm def_of(const struct scenario *sc)
{
    struct vg_alarm def;
    memset(&def, 0, sizeof(def));
    def.name = (char *)"test";
    def.kind = sc->kind;
    def.has_limit = !sc->no_limit;
    def.limit = sc->limit;
    def.hysteresis = sc->hyst;
    def.on_delay_ms = sc->on;
    def.off_delay_ms = sc->off;
    def.priority = VG_PRIO_HIGH;
    def.tag.index = 0;
    def.reference.index = sc->kind == VG_ALARM_DEVIATION ? 1 : -1;
    return def;
}

static void fmt_state(const struct vg_alarm_state *st, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s", vg_alarm_status_name(st->status));
    if (st->active)
        n += snprintf(buf + n, size - (size_t)n, " active");
    if (st->pending)
        n += snprintf(buf + n, size - (size_t)n, " pending@%" PRIu64,
                      st->pending_since_ms);
    if (st->shelved)
        n += snprintf(buf + n, size - (size_t)n, " shelved");
    if (st->out_of_service)
        snprintf(buf + n, size - (size_t)n, " oos");
}

static void fmt_transitions(const struct vg_alarm_transition *t, unsigned n,
                            char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < n; i++) {
        if (t[i].cause == VG_ALARM_CAUSE_NONE)
            len += (size_t)snprintf(buf + len, size - len, "%snoop:%s",
                                    i ? " " : "", vg_alarm_noop_name(t[i].noop));
        else
            len += (size_t)snprintf(buf + len, size - len, "%s%s@%" PRIu64,
                                    i ? " " : "",
                                    vg_alarm_cause_name(t[i].cause), t[i].at_ms);
    }
}

/* Perform one step. Operator actions first tick to their time, as
 * vg_alarm_engine_act does; a no-op is reported as an entry too. */
static unsigned do_op(const struct vg_alarm *def, struct vg_alarm_state *st,
                      const struct op *o, struct vg_alarm_transition *out)
{
    struct vg_alarm_input in;
    char errmsg[VG_ERRMSG_SIZE];
    unsigned n;
    int rc = VG_OK;

    if (o->k == IN) {
        memset(&in, 0, sizeof(in));
        in.tag.value = o->v;
        in.tag.quality = o->q;
        in.reference.value = o->ref;
        in.reference.quality = o->rq;
        return vg_alarm_step(def, st, &in, o->t, out);
    }
    n = vg_alarm_tick(def, st, o->t, out);
    switch (o->k) {
    case TICK:
        return n;
    case ACK:
        rc = vg_alarm_ack(st, o->t, &out[n]);
        break;
    case SHELVE:
        rc = vg_alarm_shelve(st, o->until, "sensor being replaced", "op1",
                             o->t, &out[n], errmsg);
        break;
    case UNSHELVE:
        rc = vg_alarm_unshelve(st, o->t, &out[n]);
        break;
    case OOS:
    case INSVC:
        rc = vg_alarm_set_out_of_service(st, o->k == OOS, o->t, &out[n]);
        break;
    default:
        fail_msg("bad op %d", (int)o->k);
    }
    assert_int_equal(rc, VG_OK);
    return n + 1;
}

static size_t n_steps(const struct scenario *sc)
{
    size_t n = 0;
    while (n < sizeof(sc->steps) / sizeof(sc->steps[0]) &&
           sc->steps[n].o.k != END)
        n++;
    return n;
}

enum { CHECK_TRANSITIONS = 1, AUTO_TICK = 2 };

/* What must hold after every step whatever the scenario. */
static void check_invariants(const struct scenario *sc, size_t i,
                             const struct vg_alarm *def,
                             const struct vg_alarm_state *before,
                             const struct vg_alarm_state *st,
                             const struct vg_alarm_transition *t, unsigned n)
{
    char errmsg[VG_ERRMSG_SIZE] = "";
    enum vg_alarm_status cur = before->status;

    if (vg_alarm_state_check(st, errmsg) != VG_OK)
        fail_msg("%s, step %zu: state refused: %s", sc->name, i, errmsg);
    if (vg_alarm_next_deadline(def, st) <= sc->steps[i].o.t)
        fail_msg("%s, step %zu: a deadline is left overdue", sc->name, i);
    for (unsigned k = 0; k < n; k++) {
        if (t[k].from != cur)
            fail_msg("%s, step %zu: transition %u from %s, expected from %s",
                     sc->name, i, k, vg_alarm_status_name(t[k].from),
                     vg_alarm_status_name(cur));
        if (t[k].cause == VG_ALARM_CAUSE_NONE && t[k].to != t[k].from)
            fail_msg("%s, step %zu: a no-op changed the status", sc->name, i);
        cur = t[k].to;
    }
    if (cur != st->status)
        fail_msg("%s, step %zu: transitions end in %s, state is %s", sc->name,
                 i, vg_alarm_status_name(cur), vg_alarm_status_name(st->status));
    if (n > 0 && (t[n - 1].active != st->active ||
                  t[n - 1].shelved != st->shelved ||
                  t[n - 1].out_of_service != st->out_of_service))
        fail_msg("%s, step %zu: the last transition's flags differ from the "
                 "state", sc->name, i);
    if (n == 0 && before->status != st->status)
        fail_msg("%s, step %zu: status changed without a transition", sc->name, i);
}

/* Run steps FROM..TO-1 of SC on ST, checking each against the table, and
 * append every transition to TRANSCRIPT. */
static void run(const struct scenario *sc, const struct vg_alarm *def,
                struct vg_alarm_state *st, size_t from, size_t to,
                char *transcript, size_t size, unsigned mode)
{
    struct vg_alarm_transition t[VG_ALARM_STEP_MAX + 1];
    char got[512], state[128];

    for (size_t i = from; i < to; i++) {
        const struct step *s = &sc->steps[i];
        struct vg_alarm_state before;
        unsigned n;

        if (mode & AUTO_TICK) {
            uint64_t d;
            while ((d = vg_alarm_next_deadline(def, st)) <= s->o.t) {
                n = vg_alarm_tick(def, st, d, t);
                assert_true(n >= 1);
                fmt_transitions(t, n, got, sizeof(got));
                snprintf(transcript + strlen(transcript),
                         size - strlen(transcript), "%s ", got);
            }
        }
        before = *st;
        n = do_op(def, st, &s->o, t);
        assert_true(n <= VG_ALARM_STEP_MAX);
        fmt_transitions(t, n, got, sizeof(got));
        fmt_state(st, state, sizeof(state));
        if ((mode & CHECK_TRANSITIONS) && strcmp(got, s->tr) != 0)
            fail_msg("%s, step %zu (t=%" PRIu64 "): transitions \"%s\", "
                     "expected \"%s\"", sc->name, i, s->o.t, got, s->tr);
        if (strcmp(state, s->st) != 0)
            fail_msg("%s, step %zu (t=%" PRIu64 "): state \"%s\", expected "
                     "\"%s\"", sc->name, i, s->o.t, state, s->st);
        check_invariants(sc, i, def, &before, st, t, n);
        if (n > 0)
            snprintf(transcript + strlen(transcript), size - strlen(transcript),
                     "%s ", got);
    }
}

/* One scenario: straight, then split for failover at every step, then with
 * timers that always fire on time. */
static void test_scenario(void **state)
{
    const struct scenario *sc = *state;
    struct vg_alarm def = def_of(sc);
    size_t n = n_steps(sc);
    char whole[4096] = "", other[4096];
    struct vg_alarm_state st, a, b;
    unsigned char stored[sizeof(struct vg_alarm_state)];

    assert_true(n > 0);
    vg_alarm_state_init(&st);
    run(sc, &def, &st, 0, n, whole, sizeof(whole), CHECK_TRANSITIONS);

    for (size_t k = 0; k <= n; k++) {
        other[0] = '\0';
        vg_alarm_state_init(&a);
        run(sc, &def, &a, 0, k, other, sizeof(other), CHECK_TRANSITIONS);
        /* The old leader's state goes to storage as bytes; the new leader's
         * struct starts as garbage and is restored from them. */
        memcpy(stored, &a, sizeof(stored));
        memset(&a, 0x5a, sizeof(a));
        memset(&b, 0xa5, sizeof(b));
        memcpy(&b, stored, sizeof(b));
        assert_int_equal(vg_alarm_state_check(&b, NULL), VG_OK);
        run(sc, &def, &b, k, n, other, sizeof(other), CHECK_TRANSITIONS);
        assert_string_equal(other, whole);
        assert_true(vg_alarm_state_equal(&b, &st));
    }

    other[0] = '\0';
    vg_alarm_state_init(&a);
    run(sc, &def, &a, 0, n, other, sizeof(other), AUTO_TICK);
    assert_string_equal(other, whole);
    assert_true(vg_alarm_state_equal(&a, &st));
}

/* ------------------------------------------------------ targeted tests */

static void test_names(void **state)
{
    static const char *const st_names[] = {"normal", "unack_active",
                                           "ack_active", "unack_rtn"};
    static const char *const cause_names[] = {
        "none", "raised", "cleared", "acked", "shelved", "unshelved",
        "expired", "oos", "in_service"};
    enum vg_alarm_status s;
    enum vg_alarm_cause c;
    (void)state;

    for (int i = 0; i < 4; i++) {
        assert_string_equal(vg_alarm_status_name((enum vg_alarm_status)i),
                            st_names[i]);
        assert_int_equal(vg_alarm_status_parse(st_names[i], &s), VG_OK);
        assert_int_equal(s, i);
    }
    for (int i = 0; i < 9; i++) {
        assert_string_equal(vg_alarm_cause_name((enum vg_alarm_cause)i),
                            cause_names[i]);
        assert_int_equal(vg_alarm_cause_parse(cause_names[i], &c), VG_OK);
        assert_int_equal(c, i);
    }
    assert_string_equal(vg_alarm_status_name((enum vg_alarm_status)4), "?");
    assert_string_equal(vg_alarm_status_name((enum vg_alarm_status)-1), "?");
    assert_string_equal(vg_alarm_cause_name((enum vg_alarm_cause)9), "?");
    assert_string_equal(vg_alarm_noop_name(VG_ALARM_NOOP_NOTHING_TO_ACK),
                        "nothing_to_acknowledge");
    assert_string_equal(vg_alarm_noop_name(VG_ALARM_NOOP_NOT_SHELVED),
                        "not_shelved");
    assert_string_equal(vg_alarm_noop_name(VG_ALARM_NOOP_ALREADY_OOS),
                        "already_out_of_service");
    assert_string_equal(vg_alarm_noop_name(VG_ALARM_NOOP_ALREADY_IN_SERVICE),
                        "already_in_service");
    assert_string_equal(vg_alarm_noop_name((enum vg_alarm_noop)5), "?");
    assert_int_equal(vg_alarm_status_parse("Normal", &s), VG_EINVAL);
    assert_int_equal(vg_alarm_status_parse(NULL, &s), VG_EINVAL);
    assert_int_equal(vg_alarm_cause_parse("", &c), VG_EINVAL);
}

static struct vg_alarm high_def(unsigned on, unsigned off)
{
    struct vg_alarm def;
    memset(&def, 0, sizeof(def));
    def.kind = VG_ALARM_HIGH;
    def.has_limit = true;
    def.limit = 100;
    def.hysteresis = 5;
    def.on_delay_ms = on;
    def.off_delay_ms = off;
    def.tag.index = 0;
    def.reference.index = -1;
    return def;
}

static unsigned feed(const struct vg_alarm *def, struct vg_alarm_state *st,
                     double v, uint64_t now, struct vg_alarm_transition *t)
{
    struct vg_alarm_input in;
    memset(&in, 0, sizeof(in));
    in.tag.value = v;
    in.tag.quality = VG_ALARM_Q_GOOD;
    return vg_alarm_step(def, st, &in, now, t);
}

/* Timestamps and shelve terms, which the scenario strings do not show. */
static void test_timestamps(void **state)
{
    struct vg_alarm def = high_def(1000, 0);
    struct vg_alarm_state st;
    struct vg_alarm_transition t[VG_ALARM_STEP_MAX];
    (void)state;

    vg_alarm_state_init(&st);
    assert_int_equal(feed(&def, &st, 101, 10000, t), 0);
    assert_int_equal(feed(&def, &st, 101, 12000, t), 1); /* caught up */
    assert_int_equal(t[0].at_ms, 11000);
    assert_true(t[0].active);
    assert_int_equal(st.raised_ms, 11000);
    assert_int_equal(st.changed_ms, 11000);
    assert_int_equal(st.acked_ms, 0);
    assert_int_equal(st.cleared_ms, 0);

    assert_int_equal(vg_alarm_ack(&st, 13000, &t[0]), VG_OK);
    assert_int_equal(st.acked_ms, 13000);
    assert_int_equal(feed(&def, &st, 50, 14000, t), 1);
    assert_int_equal(st.cleared_ms, 14000);
    assert_int_equal(st.changed_ms, 14000);
    assert_int_equal(st.acked_ms, 13000);
    assert_int_equal(st.raised_ms, 11000);

    /* Raised and shelved: the condition's change time moves, the
     * annunciation times do not. */
    assert_int_equal(vg_alarm_shelve(&st, 90000, "filter backwash", "anna",
                                     15000, &t[0], NULL), VG_OK);
    assert_int_equal(st.shelved_ms, 15000);
    assert_int_equal(st.shelved_until_ms, 90000);
    assert_string_equal(st.shelve_reason, "filter backwash");
    assert_string_equal(st.shelve_user, "anna");
    assert_int_equal(feed(&def, &st, 101, 16000, t), 0);
    assert_int_equal(feed(&def, &st, 101, 17000, t), 1);
    assert_int_equal(t[0].cause, VG_ALARM_CAUSE_RAISED);
    assert_int_equal(t[0].from, VG_ALARM_NORMAL);
    assert_int_equal(t[0].to, VG_ALARM_NORMAL);
    assert_true(t[0].shelved);
    assert_int_equal(st.changed_ms, 17000);
    assert_int_equal(st.raised_ms, 11000);

    /* Unshelving while active is a fresh annunciation, shelve terms go. */
    assert_int_equal(vg_alarm_unshelve(&st, 20000, &t[0]), VG_OK);
    assert_int_equal(st.status, VG_ALARM_UNACK_ACTIVE);
    assert_int_equal(st.raised_ms, 20000);
    assert_int_equal(st.acked_ms, 0);
    assert_int_equal(st.cleared_ms, 0);
    assert_false(st.shelved);
    assert_int_equal(st.shelved_ms, 0);
    assert_int_equal(st.shelved_until_ms, 0);
    assert_string_equal(st.shelve_reason, "");
    assert_string_equal(st.shelve_user, "");

    assert_int_equal(vg_alarm_set_out_of_service(&st, true, 21000, &t[0]),
                     VG_OK);
    assert_int_equal(st.out_of_service_ms, 21000);
    assert_int_equal(vg_alarm_set_out_of_service(&st, false, 22000, &t[0]),
                     VG_OK);
    assert_int_equal(st.out_of_service_ms, 0);
    assert_int_equal(st.raised_ms, 22000);
    assert_int_equal(vg_alarm_state_check(&st, NULL), VG_OK);
}

static void test_shelve_refused(void **state)
{
    struct vg_alarm_state st, copy;
    struct vg_alarm_transition t;
    char errmsg[VG_ERRMSG_SIZE];
    char longer[VG_ALARM_REASON_SIZE + 1];
    (void)state;

    vg_alarm_state_init(&st);
    copy = st;
    errmsg[0] = '\0';
    assert_int_equal(vg_alarm_shelve(&st, 1000, "r", "u", 1000, &t, errmsg),
                     VG_EINVAL);
    assert_string_not_equal(errmsg, "");
    assert_int_equal(vg_alarm_shelve(&st, 999, "r", "u", 1000, &t, errmsg),
                     VG_EINVAL);
    assert_int_equal(vg_alarm_shelve(&st, 2000, NULL, "u", 1000, &t, errmsg),
                     VG_EINVAL);
    assert_int_equal(vg_alarm_shelve(&st, 2000, "r", NULL, 1000, &t, errmsg),
                     VG_EINVAL);

    /* The longest reason that fits, and one byte more. */
    memset(longer, 'x', sizeof(longer));
    longer[VG_ALARM_REASON_SIZE] = '\0';
    assert_int_equal(vg_alarm_shelve(&st, 2000, longer, "u", 1000, &t, errmsg),
                     VG_EINVAL);
    longer[VG_ALARM_USER_SIZE] = '\0';
    assert_int_equal(vg_alarm_shelve(&st, 2000, "r", longer, 1000, &t, errmsg),
                     VG_EINVAL);
    assert_true(vg_alarm_state_equal(&st, &copy));

    longer[VG_ALARM_USER_SIZE - 1] = '\0';
    assert_int_equal(vg_alarm_shelve(&st, 2000, "", longer, 1000, &t, errmsg),
                     VG_OK);
    assert_string_equal(st.shelve_user, longer);
    memset(longer, 'y', sizeof(longer));
    longer[VG_ALARM_REASON_SIZE - 1] = '\0';
    assert_int_equal(vg_alarm_shelve(&st, 3000, longer, "u", 1500, &t, errmsg),
                     VG_OK);
    assert_string_equal(st.shelve_reason, longer);
    assert_int_equal(vg_alarm_state_check(&st, NULL), VG_OK);
}

/* Stored states that cannot be continued from are refused. */
static void test_state_check(void **state)
{
    struct vg_alarm_state good, st;
    char errmsg[VG_ERRMSG_SIZE];
    (void)state;

    vg_alarm_state_init(&good);
    assert_int_equal(vg_alarm_state_check(&good, NULL), VG_OK);

#define REFUSED(change)                                                      \
    do {                                                                     \
        st = good;                                                           \
        change;                                                              \
        errmsg[0] = '\0';                                                    \
        assert_int_equal(vg_alarm_state_check(&st, errmsg), VG_EINVAL);      \
        assert_string_not_equal(errmsg, "");                                 \
    } while (0)

    REFUSED(st.status = (enum vg_alarm_status)7);
    REFUSED(st.status = VG_ALARM_UNACK_ACTIVE);          /* not active */
    REFUSED(st.status = VG_ALARM_UNACK_RTN; st.active = true);
    REFUSED(st.active = true);                           /* active, normal */
    REFUSED(st.shelved = true; st.active = true; st.status = VG_ALARM_ACK_ACTIVE);
    REFUSED(st.out_of_service = true; st.status = VG_ALARM_UNACK_RTN);
    REFUSED(st.pending_since_ms = 5);
    REFUSED(st.shelved_until_ms = 5);
    REFUSED(st.shelve_user[0] = 'x');
    REFUSED(st.out_of_service_ms = 5);
    REFUSED(st.shelved = true;
            memset(st.shelve_reason, 'x', sizeof(st.shelve_reason)));
#undef REFUSED

    st = good;
    st.out_of_service = true;
    st.active = true;
    assert_int_equal(vg_alarm_state_check(&st, NULL), VG_OK);
}

static void test_next_deadline(void **state)
{
    struct vg_alarm def = high_def(2000, 7000);
    struct vg_alarm_state st;
    struct vg_alarm_transition t[VG_ALARM_STEP_MAX];
    (void)state;

    vg_alarm_state_init(&st);
    assert_true(vg_alarm_next_deadline(&def, &st) == VG_ALARM_NEVER);
    feed(&def, &st, 101, 1000, t);
    assert_int_equal(vg_alarm_next_deadline(&def, &st), 3000);
    assert_int_equal(vg_alarm_shelve(&st, 2500, "r", "u", 1500, t, NULL), VG_OK);
    assert_int_equal(vg_alarm_next_deadline(&def, &st), 2500);
    assert_int_equal(vg_alarm_tick(&def, &st, 2600, t), 1);
    assert_int_equal(vg_alarm_next_deadline(&def, &st), 3000);
    assert_int_equal(vg_alarm_tick(&def, &st, 3000, t), 1);
    assert_true(vg_alarm_next_deadline(&def, &st) == VG_ALARM_NEVER);
    feed(&def, &st, 0, 4000, t);                 /* the off-delay */
    assert_int_equal(vg_alarm_next_deadline(&def, &st), 11000);

    /* Extreme times neither overflow nor loop. */
    assert_int_equal(vg_alarm_tick(&def, &st, UINT64_MAX, t), 1);
    assert_int_equal(vg_alarm_tick(&def, &st, UINT64_MAX, t), 0);
    def.on_delay_ms = 5000;
    feed(&def, &st, 101, UINT64_MAX - 10, t);
    assert_true(vg_alarm_next_deadline(&def, &st) == UINT64_MAX);
    assert_int_equal(vg_alarm_tick(&def, &st, UINT64_MAX - 1, t), 0);
    assert_int_equal(vg_alarm_tick(&def, &st, UINT64_MAX, t), 1);
    assert_int_equal(vg_alarm_tick(&def, &st, UINT64_MAX, t), 0);
}

/* A quality value that is none of the enum's counts as bad. */
static void test_strange_quality(void **state)
{
    struct vg_alarm def = high_def(1000, 0);
    struct vg_alarm_state st;
    struct vg_alarm_transition t[VG_ALARM_STEP_MAX];
    struct vg_alarm_input in;
    (void)state;

    vg_alarm_state_init(&st);
    feed(&def, &st, 101, 1000, t);
    assert_true(st.pending);
    memset(&in, 0, sizeof(in));
    in.tag.value = 200;
    in.tag.quality = (enum vg_alarm_quality)17;
    assert_int_equal(vg_alarm_step(&def, &st, &in, 1500, t), 0);
    assert_false(st.pending);
    in.tag.value = INFINITY;
    in.tag.quality = VG_ALARM_Q_GOOD;
    feed(&def, &st, 101, 1600, t);
    assert_int_equal(vg_alarm_step(&def, &st, &in, 1700, t), 0);
    assert_false(st.pending);
}

/* ------------------------------------------------------------- engine */

struct recorder {
    const struct vg_project *p;
    uint64_t base;
    char text[8192];
    unsigned calls;
};

static void record_cb(void *data, size_t alarm, const struct vg_alarm_state *st,
                      const struct vg_alarm_transition *t)
{
    struct recorder *r = data;
    size_t len = strlen(r->text);
    const char *name = r->p->alarms[alarm].name;

    r->calls++;
    assert_int_equal(vg_alarm_state_check(st, NULL), VG_OK);
    if (t == NULL)
        snprintf(r->text + len, sizeof(r->text) - len, "%s:state ", name);
    else
        snprintf(r->text + len, sizeof(r->text) - len, "%s:%s@%" PRIu64 " ",
                 name, vg_alarm_cause_name(t->cause), t->at_ms - r->base);
}

static struct vg_alarm mk_alarm(const char *name, enum vg_alarm_kind kind,
                                int tag, int ref, double limit, unsigned on)
{
    struct vg_alarm a;
    memset(&a, 0, sizeof(a));
    a.name = (char *)name;
    a.kind = kind;
    a.tag.index = tag;
    a.reference.index = ref;
    a.has_limit = kind != VG_ALARM_DIGITAL_ON && kind != VG_ALARM_DIGITAL_OFF;
    a.limit = limit;
    a.on_delay_ms = on;
    a.priority = VG_PRIO_MEDIUM;
    return a;
}

static void assert_list(const struct vg_alarm_engine *e, size_t tag,
                        const size_t *want, size_t n_want)
{
    size_t n;
    const size_t *got = vg_alarm_engine_tag_alarms(e, tag, &n);
    assert_int_equal(n, n_want);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(got[i], want[i]);
}

static void test_engine_small(void **state)
{
    struct vg_tag tags[4];
    struct vg_alarm alarms[6];
    struct vg_project p;
    struct vg_alarm_engine *e = NULL;
    struct recorder r;
    struct vg_alarm_transition out;
    struct vg_alarm_action act;
    struct vg_alarm_state bad;
    char errmsg[VG_ERRMSG_SIZE];
    (void)state;

    memset(tags, 0, sizeof(tags));
    memset(&p, 0, sizeof(p));
    alarms[0] = mk_alarm("hi_a", VG_ALARM_HIGH, 0, -1, 10, 0);
    alarms[1] = mk_alarm("dev_ab", VG_ALARM_DEVIATION, 0, 1, 5, 1000);
    alarms[2] = mk_alarm("dev_a_unresolved", VG_ALARM_DEVIATION, 0, -1, 5, 0);
    alarms[3] = mk_alarm("on_c", VG_ALARM_DIGITAL_ON, 2, -1, 0, 0);
    alarms[4] = mk_alarm("unresolved", VG_ALARM_HIGH, -1, -1, 1, 0);
    alarms[5] = mk_alarm("dev_bb", VG_ALARM_DEVIATION, 1, 1, 5, 0);
    p.tags = tags;
    p.n_tags = 4;
    p.alarms = alarms;
    p.n_alarms = 6;

    assert_int_equal(vg_alarm_engine_new(&p, &e, NULL), VG_OK);
    assert_int_equal(vg_alarm_engine_count(e), 6);
    assert_list(e, 0, (const size_t[]){0, 1}, 2);
    assert_list(e, 1, (const size_t[]){1, 5}, 2);
    assert_list(e, 2, (const size_t[]){3}, 1);
    assert_list(e, 3, NULL, 0);
    assert_list(e, 4, NULL, 0);

    memset(&r, 0, sizeof(r));
    r.p = &p;
    /* The deviation alarm has no reference reading yet: not a change. */
    assert_int_equal(vg_alarm_engine_update(e, 0, 20, true, 1000, record_cb, &r),
                     VG_OK);
    assert_string_equal(r.text, "hi_a:raised@1000 ");
    assert_int_equal(vg_alarm_engine_evaluations(e, 0), 1);
    assert_int_equal(vg_alarm_engine_evaluations(e, 1), 1);
    assert_int_equal(vg_alarm_engine_evaluations(e, 2), 0);
    assert_int_equal(vg_alarm_engine_evaluations(e, 5), 0);

    /* Now it has both: its delay starts (a bare state change). */
    assert_int_equal(vg_alarm_engine_update(e, 1, 0, true, 1100, record_cb, &r),
                     VG_OK);
    assert_string_equal(r.text, "hi_a:raised@1000 dev_ab:state ");
    assert_int_equal(vg_alarm_engine_evaluations(e, 0), 1);
    assert_int_equal(vg_alarm_engine_evaluations(e, 1), 2);
    assert_int_equal(vg_alarm_engine_evaluations(e, 5), 1);
    assert_int_equal(vg_alarm_engine_next_deadline(e), 2100);

    r.text[0] = '\0';
    vg_alarm_engine_tick(e, 2099, record_cb, &r);
    assert_string_equal(r.text, "");
    vg_alarm_engine_tick(e, 2100, record_cb, &r);
    assert_string_equal(r.text, "dev_ab:raised@2100 ");
    assert_true(vg_alarm_engine_next_deadline(e) == VG_ALARM_NEVER);

    /* A bad reference holds the raised deviation; nothing to report. */
    r.text[0] = '\0';
    assert_int_equal(vg_alarm_engine_update(e, 1, 20, false, 2200, record_cb, &r),
                     VG_OK);
    assert_string_equal(r.text, "");
    assert_int_equal(vg_alarm_engine_state(e, 1)->status, VG_ALARM_UNACK_ACTIVE);
    assert_int_equal(vg_alarm_engine_update(e, 4, 1, true, 2200, record_cb, &r),
                     VG_EINVAL);
    assert_int_equal(vg_alarm_engine_update(e, 2, 1, true, 2300, NULL, NULL),
                     VG_OK);
    assert_int_equal(vg_alarm_engine_state(e, 3)->status, VG_ALARM_UNACK_ACTIVE);

    /* Actions. */
    memset(&act, 0, sizeof(act));
    act.kind = VG_ALARM_ACT_ACK;
    assert_int_equal(vg_alarm_engine_act(e, 0, &act, 3000, &out, record_cb, &r,
                                         NULL), VG_OK);
    assert_int_equal(out.cause, VG_ALARM_CAUSE_ACKED);
    assert_string_equal(r.text, "hi_a:acked@3000 ");
    assert_int_equal(vg_alarm_engine_act(e, 0, &act, 3100, &out, record_cb, &r,
                                         NULL), VG_OK);
    assert_int_equal(out.cause, VG_ALARM_CAUSE_NONE);
    assert_int_equal(out.noop, VG_ALARM_NOOP_NOTHING_TO_ACK);
    assert_string_equal(r.text, "hi_a:acked@3000 ");
    errmsg[0] = '\0';
    assert_int_equal(vg_alarm_engine_act(e, 6, &act, 3100, &out, NULL, NULL,
                                         errmsg), VG_ENOTFOUND);
    assert_string_not_equal(errmsg, "");
    act.kind = (enum vg_alarm_action_kind)9;
    assert_int_equal(vg_alarm_engine_act(e, 0, &act, 3100, &out, NULL, NULL,
                                         NULL), VG_EINVAL);
    assert_int_equal(vg_alarm_engine_act(e, 0, NULL, 3100, &out, NULL, NULL,
                                         NULL), VG_EINVAL);
    act.kind = VG_ALARM_ACT_SHELVE;
    act.until_ms = 3000;
    act.reason = "calibration";
    act.user = "op1";
    errmsg[0] = '\0';
    assert_int_equal(vg_alarm_engine_act(e, 1, &act, 3100, &out, NULL, NULL,
                                         errmsg), VG_EINVAL);
    assert_string_not_equal(errmsg, "");
    act.until_ms = 5000;
    assert_int_equal(vg_alarm_engine_act(e, 1, &act, 3100, NULL, record_cb, &r,
                                         NULL), VG_OK);
    assert_int_equal(vg_alarm_engine_next_deadline(e), 5000);
    /* Acknowledging after the shelve ran out (no tick in between): the
     * expiry is reported first, then the acknowledgement of the fresh
     * annunciation. */
    r.text[0] = '\0';
    act.kind = VG_ALARM_ACT_ACK;
    assert_int_equal(vg_alarm_engine_act(e, 1, &act, 6000, &out, record_cb, &r,
                                         NULL), VG_OK);
    assert_string_equal(r.text, "dev_ab:expired@5000 dev_ab:acked@6000 ");
    act.kind = VG_ALARM_ACT_OUT_OF_SERVICE;
    assert_int_equal(vg_alarm_engine_act(e, 3, &act, 6100, &out, NULL, NULL,
                                         NULL), VG_OK);
    assert_true(vg_alarm_engine_state(e, 3)->out_of_service);
    act.kind = VG_ALARM_ACT_IN_SERVICE;
    assert_int_equal(vg_alarm_engine_act(e, 3, &act, 6200, &out, NULL, NULL,
                                         NULL), VG_OK);
    assert_int_equal(out.cause, VG_ALARM_CAUSE_IN_SERVICE);
    act.kind = VG_ALARM_ACT_UNSHELVE;
    assert_int_equal(vg_alarm_engine_act(e, 3, &act, 6300, &out, NULL, NULL,
                                         NULL), VG_OK);
    assert_int_equal(out.noop, VG_ALARM_NOOP_NOT_SHELVED);

    /* Restore. */
    vg_alarm_state_init(&bad);
    bad.active = true;
    errmsg[0] = '\0';
    assert_int_equal(vg_alarm_engine_restore(e, 0, &bad, errmsg), VG_EINVAL);
    assert_string_not_equal(errmsg, "");
    assert_int_equal(vg_alarm_engine_state(e, 0)->status, VG_ALARM_ACK_ACTIVE);
    assert_int_equal(vg_alarm_engine_restore(e, 6, &bad, NULL), VG_ENOTFOUND);
    bad.status = VG_ALARM_UNACK_ACTIVE;
    assert_int_equal(vg_alarm_engine_restore(e, 0, &bad, NULL), VG_OK);
    assert_int_equal(vg_alarm_engine_state(e, 0)->status, VG_ALARM_UNACK_ACTIVE);

    assert_null(vg_alarm_engine_state(e, 6));
    assert_int_equal(vg_alarm_engine_evaluations(e, 6), 0);
    vg_alarm_engine_free(e);
    vg_alarm_engine_free(NULL);

    /* A project without alarms or tags. */
    memset(&p, 0, sizeof(p));
    assert_int_equal(vg_alarm_engine_new(&p, &e, NULL), VG_OK);
    assert_int_equal(vg_alarm_engine_count(e), 0);
    assert_true(vg_alarm_engine_next_deadline(e) == VG_ALARM_NEVER);
    vg_alarm_engine_tick(e, 1000, NULL, NULL);
    assert_int_equal(vg_alarm_engine_update(e, 0, 1, true, 1000, NULL, NULL),
                     VG_EINVAL);
    vg_alarm_engine_free(e);
}

static struct vg_project *load_waterworks(void)
{
    struct vg_project_files fs;
    struct vg_diags d;
    char errmsg[VG_ERRMSG_SIZE];
    struct vg_project *p;

    memset(&fs, 0, sizeof(fs));
    if (vg_project_files_read_dir(&fs, waterworks_dir, errmsg) != VG_OK)
        fail_msg("reading %s: %s", waterworks_dir, errmsg);
    vg_diags_init(&d);
    p = vg_project_parse(&fs, &d);
    assert_non_null(p);
    assert_int_equal(d.n, 0);
    vg_diags_free(&d);
    vg_project_files_free(&fs);
    return p;
}

static bool depends(const struct vg_alarm *a, size_t tag)
{
    return (size_t)a->tag.index == tag ||
           (a->kind == VG_ALARM_DEVIATION && (size_t)a->reference.index == tag);
}

/* The index against a brute force, and every tag's reading evaluating
 * exactly its alarms. */
static void test_engine_waterworks_index(void **state)
{
    struct vg_project *p;
    struct vg_alarm_engine *e;
    uint64_t *before;
    size_t listed = 0, deviations = 0;
    (void)state;

    if (waterworks_dir == NULL)
        skip();
    p = load_waterworks();
    assert_true(p->n_alarms > 50);
    assert_int_equal(vg_alarm_engine_new(p, &e, NULL), VG_OK);
    before = calloc(p->n_alarms, sizeof(*before));
    assert_non_null(before);

    for (size_t t = 0; t < p->n_tags; t++) {
        size_t n, k = 0;
        const size_t *got = vg_alarm_engine_tag_alarms(e, t, &n);
        for (size_t a = 0; a < p->n_alarms; a++) {
            if (!depends(&p->alarms[a], t))
                continue;
            assert_true(k < n);
            assert_int_equal(got[k], a);
            k++;
        }
        assert_int_equal(k, n);
        listed += n;
    }
    for (size_t a = 0; a < p->n_alarms; a++)
        deviations += p->alarms[a].kind == VG_ALARM_DEVIATION;
    /* Every alarm is listed under its tag, deviations under their
     * reference too. */
    assert_int_equal(listed, p->n_alarms + deviations);
    assert_true(deviations >= 4);

    for (size_t t = 0; t < p->n_tags; t++) {
        for (size_t a = 0; a < p->n_alarms; a++)
            before[a] = vg_alarm_engine_evaluations(e, a);
        assert_int_equal(vg_alarm_engine_update(e, t, 1.0, true,
                                                1000 + t, NULL, NULL), VG_OK);
        for (size_t a = 0; a < p->n_alarms; a++)
            assert_int_equal(vg_alarm_engine_evaluations(e, a) - before[a],
                             depends(&p->alarms[a], t) ? 1 : 0);
    }

    free(before);
    vg_alarm_engine_free(e);
    vg_project_free(p);
}

/* The chlorine alarms of the waterworks through a failover in the middle of
 * their delays: the new leader's engine has only the stored states, not one
 * reading, and must report what the old one would have. */
static void test_engine_waterworks_failover(void **state)
{
    const uint64_t t0 = 1700000000000ull; /* wall-clock milliseconds */
    struct vg_project *p;
    struct vg_alarm_engine *old_e, *new_e, *e[2];
    struct recorder r[2];
    int cl, sp;
    char errmsg[VG_ERRMSG_SIZE];
    (void)state;

    if (waterworks_dir == NULL)
        skip();
    p = load_waterworks();
    cl = vg_project_find_tag(p, "treatment.disinfection.chlorine");
    sp = vg_project_find_tag(p, "treatment.disinfection.chlorine_sp");
    assert_true(cl >= 0 && sp >= 0);
    assert_int_equal(vg_alarm_engine_new(p, &old_e, NULL), VG_OK);
    memset(r, 0, sizeof(r));
    r[0].p = r[1].p = p;
    r[0].base = r[1].base = t0;

    assert_int_equal(vg_alarm_engine_update(old_e, (size_t)sp, 0.3, true, t0,
                                            record_cb, &r[0]), VG_OK);
    assert_int_equal(vg_alarm_engine_update(old_e, (size_t)cl, 0.3, true, t0,
                                            record_cb, &r[0]), VG_OK);
    assert_string_equal(r[0].text, "");
    /* Chlorine drops: low (60 s), low_low (30 s) and the deviation from the
     * setpoint (600 s) start their on-delays. */
    assert_int_equal(vg_alarm_engine_update(old_e, (size_t)cl, 0.04, true,
                                            t0 + 10000, record_cb, &r[0]),
                     VG_OK);
    assert_string_equal(r[0].text,
                        "treatment.disinfection.chlorine.low:state "
                        "treatment.disinfection.chlorine.low_low:state "
                        "treatment.disinfection.chlorine.deviation:state ");
    assert_int_equal(vg_alarm_engine_next_deadline(old_e), t0 + 40000);

    /* Failover: the new leader restores every stored state. */
    assert_int_equal(vg_alarm_engine_new(p, &new_e, NULL), VG_OK);
    for (size_t a = 0; a < p->n_alarms; a++) {
        struct vg_alarm_state copy = *vg_alarm_engine_state(old_e, a);
        assert_int_equal(vg_alarm_engine_restore(new_e, a, &copy, errmsg),
                         VG_OK);
    }
    assert_int_equal(vg_alarm_engine_next_deadline(new_e), t0 + 40000);

    /* The same future on both engines. The new one learns the setpoint only
     * late, which must not cancel the deviation's delay. */
    e[0] = old_e;
    e[1] = new_e;
    for (int i = 0; i < 2; i++) {
        r[i].text[0] = '\0';
        vg_alarm_engine_tick(e[i], t0 + 40000, record_cb, &r[i]);
        assert_int_equal(vg_alarm_engine_update(e[i], (size_t)cl, 0.045, true,
                                                t0 + 50000, record_cb, &r[i]),
                         VG_OK);
        vg_alarm_engine_tick(e[i], t0 + 70000, record_cb, &r[i]);
        assert_int_equal(vg_alarm_engine_update(e[i], (size_t)sp, 0.3, true,
                                                t0 + 100000, record_cb, &r[i]),
                         VG_OK);
        assert_int_equal(vg_alarm_engine_next_deadline(e[i]), t0 + 610000);
        vg_alarm_engine_tick(e[i], t0 + 610000, record_cb, &r[i]);
        assert_int_equal(vg_alarm_engine_update(e[i], (size_t)cl, 0.3, true,
                                                t0 + 700000, record_cb, &r[i]),
                         VG_OK);
    }
    assert_string_equal(r[0].text,
                        "treatment.disinfection.chlorine.low_low:raised@40000 "
                        "treatment.disinfection.chlorine.low:raised@70000 "
                        "treatment.disinfection.chlorine.deviation:raised@610000 "
                        "treatment.disinfection.chlorine.low:cleared@700000 "
                        "treatment.disinfection.chlorine.low_low:cleared@700000 "
                        "treatment.disinfection.chlorine.deviation:cleared@700000 ");
    assert_string_equal(r[1].text, r[0].text);
    for (size_t a = 0; a < p->n_alarms; a++)
        assert_true(vg_alarm_state_equal(vg_alarm_engine_state(old_e, a),
                                         vg_alarm_engine_state(new_e, a)));
    for (size_t a = 0; a < p->n_alarms; a++)
        if (strncmp(p->alarms[a].name, "treatment.disinfection.chlorine.",
                    32) == 0)
            assert_int_equal(vg_alarm_engine_state(new_e, a)->status,
                             strstr(p->alarms[a].name, "high")
                                 ? VG_ALARM_NORMAL : VG_ALARM_UNACK_RTN);

    vg_alarm_engine_free(old_e);
    vg_alarm_engine_free(new_e);
    vg_project_free(p);
}

int main(int argc, char **argv)
{
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_timestamps),
        cmocka_unit_test(test_shelve_refused),
        cmocka_unit_test(test_state_check),
        cmocka_unit_test(test_next_deadline),
        cmocka_unit_test(test_strange_quality),
        cmocka_unit_test(test_engine_small),
        cmocka_unit_test(test_engine_waterworks_index),
        cmocka_unit_test(test_engine_waterworks_failover),
    };
    enum { N_FIXED = sizeof(fixed) / sizeof(fixed[0]) };
    struct CMUnitTest tests[N_SCENARIOS + N_FIXED];

    if (argc > 1)
        waterworks_dir = argv[1];
    for (size_t i = 0; i < N_SCENARIOS; i++) {
        struct CMUnitTest t = {scenarios[i].name, test_scenario, NULL, NULL,
                               (void *)&scenarios[i]};
        tests[i] = t;
    }
    for (size_t i = 0; i < N_FIXED; i++)
        tests[N_SCENARIOS + i] = fixed[i];
    return _cmocka_run_group_tests("alarms", tests, N_SCENARIOS + N_FIXED,
                                   NULL, NULL);
}
