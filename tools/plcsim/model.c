/* The simulated plant behind one PLC: every tag of the PLC gets a value
 * within its range, stepped DT simulated seconds at a time. The project says
 * nothing about how the process works, so the model reads it from the tag
 * names (the last name component is the "leaf", the rest the "scope"):
 *
 * Commands and states (bool)
 *   co  S.cmd           run/open command; starts at 1 (plant running)
 *   co  S.auto          starts at 1; other coils start at 0
 *   co  S.reset, S.X_req  pulses: the PLC clears them again after one step;
 *                       X_req also sets di S.X (e.g. a backwash) for 60 s
 *   di  S.running       = S.cmd (1 when there is none) and not S.fault, 1 s
 *                       after the command changed (a motor contactor)
 *   di  S.open          = S.cmd, 3 s after it changed (valve travel)
 *   di  *_ok, *.ready   1 (healthy)
 *   di  *.high, *.overflow / *.low, *.dry_run   level switches: 1 while the
 *                       level of S (or of S's parent) is above / below its
 *                       normal band
 *   di  others          0; those no alarm watches (doors) now and then go to
 *                       1 for 20..60 s
 *
 * Analog values (read-only numeric tags)
 *   The "drivers" of a tag in scope S are the running/open states of
 *   equipment in S or below; when there are none, of S's parent, and so on.
 *   A pump's drive is running x speed (its S.speed tag, 100 % when absent),
 *   a valve's is open.
 *   X with a writable X_sp (S.pos with a writable S.sp): follows the setpoint
 *                       while any driver is on (or there are none), else
 *                       falls to the bottom of its range
 *   *flow, *.current, *.power   bottom of range + mean drive x normal band
 *   *.pressure          low static pressure when nothing runs, else 30..90 %
 *                       of the normal band with the drive
 *   *.level             integrates inflow - outflow: pumps in S drain it,
 *                       valves in S fill it, drivers only found further up
 *                       fill it, and a slow wave stands in for what is
 *                       missing; held inside the normal band (the plant's
 *                       level control)
 *   *motor_temp, *.vibration, *.speed (without setpoint)   rise with drive
 *   *hours, *total, *.energy, *.count   counters: running hours, volume from
 *                       S.flow, energy from S.power, an event now and then
 *   *.heartbeat         seconds, wrapping at 65536
 *   *.alarm_word        bit i: the i-th alarm of this PLC is beyond its limit
 *   *.state             2 while S.backwash is 1, else 1
 *   anything else       the middle of its normal band, with a slow wave
 *                       of a tenth of the band either way (pH 7 +- 0.6)
 *   Every analog value follows its target with a lag of a few seconds and
 *   carries a little noise (0.4 % of its range), except counters.
 *
 * Ranges: a scaled tag lives in its engineering range, a writable one within
 * its write limits, anything else in a range guessed from its unit (m: 0..10,
 * NTU: 0..2, ...) and widened where a high (low) alarm limit sits at its top
 * (bottom), so an excursion has room to cross it. The "normal
 * band" is that range shrunk by 5 % and kept clear of the tag's alarm limits,
 * so that alarms come only from excursions:
 *
 * Excursions: every 1..4 minutes of simulated time, one alarm of this PLC
 * (on a read-only tag) is picked and its tag pushed past the limit for the
 * alarm's on-delay plus 20..60 s, then let back.
 *
 * Everything random comes from one generator seeded with --seed, and time is
 * the step count, so a run is the same for the same seed and the same
 * client writes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plcsim.h"

enum role {
    /* bool */
    B_CMD, B_PULSE, B_REQ, B_RUNNING, B_OPEN, B_OK, B_SWITCH_HIGH,
    B_SWITCH_LOW, B_RANDOM, B_ZERO,
    /* numeric */
    N_SETPOINT, N_FOLLOW, N_FLOW, N_PRESSURE, N_LEVEL, N_DRIVEN, N_HOURS,
    N_VOLUME, N_ENERGY, N_COUNT, N_HEARTBEAT, N_ALARM_WORD, N_STATE, N_WAVE,
};

struct stag {
    const struct vg_tag *t;
    enum role role;
    double lo, hi;        /* sane range */
    double blo, bhi;      /* normal band */
    double v;             /* current value, engineering units */
    double x;             /* levels: the integrated level; pulses: timer */
    double noise;
    double phase, period; /* the slow wave */
    double timer;         /* bool delays and random pulses */
    int link;             /* cmd (running/open), setpoint (follow), level
                           * (switches), running (hours), flow (volume),
                           * power (energy), req state (pulse), backwash
                           * state (state); -1 none */
    int fault;            /* running: S.fault */
    int speed;            /* running: S.speed */
    int *drivers;         /* running/open tags that drive this one */
    size_t n_drivers;
    bool drivers_own;     /* drivers were found in the tag's own scope */
    bool alarmed;         /* some alarm of this PLC watches the tag */
};

struct plcsim_model {
    const struct vg_project *p;
    size_t plc;
    struct stag *v;
    size_t n;
    int *by_proj;         /* project tag index -> index in v, or -1 */
    int *alarms;          /* project alarm indexes on this PLC's tags */
    size_t n_alarms;
    uint64_t rng;
    double dt;
    uint64_t steps;
    double t;             /* simulated seconds */
    /* The running excursion (alarm index into alarms, -1 none). */
    int exc;
    double exc_value, exc_end, exc_next;
};

/* splitmix64: small, good enough, and the same everywhere. */
static uint64_t rnd64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rnd(uint64_t *s) /* [0, 1) */
{
    return (double)(rnd64(s) >> 11) / 9007199254740992.0;
}

static double clamp(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static const char *leaf(const char *name)
{
    const char *d = strrchr(name, '.');
    return d ? d + 1 : name;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Index (in m->v) of the tag called SCOPE-of-NAME + "." + LEAF_NAME, or of
 * NAME + SUFFIX when LEAF_NAME is NULL; -1 when this PLC has none. */
static int sibling(const struct plcsim_model *m, const char *name,
                   const char *leaf_name, const char *suffix)
{
    char buf[256];
    size_t scope = (size_t)(leaf(name) - name);
    int i;

    if (leaf_name)
        snprintf(buf, sizeof buf, "%.*s%s", (int)scope, name, leaf_name);
    else
        snprintf(buf, sizeof buf, "%s%s", name, suffix);
    i = vg_project_find_tag(m->p, buf);
    return i < 0 ? -1 : m->by_proj[i];
}

/* The parent scope's level tag for a level switch S.high: S.level, else
 * PARENT(S).level. */
static int switch_level(const struct plcsim_model *m, const char *name)
{
    char buf[256];
    int i = sibling(m, name, "level", NULL);
    const char *d;

    if (i >= 0)
        return i;
    snprintf(buf, sizeof buf, "%s", name);
    d = strrchr(buf, '.');
    if (!d)
        return -1;
    buf[d - buf] = '\0';
    return sibling(m, buf, "level", NULL);
}

static enum role bool_role(const struct plcsim_model *m, const struct stag *s)
{
    const char *name = s->t->name, *l = leaf(name);
    char req[80];

    if (s->t->kind == VG_REG_COIL) {
        if (strcmp(l, "cmd") == 0 || strcmp(l, "auto") == 0)
            return B_CMD;
        if (strcmp(l, "reset") == 0 || ends_with(l, "_req"))
            return B_PULSE;
        return B_ZERO;
    }
    if (strcmp(l, "running") == 0)
        return B_RUNNING;
    if (strcmp(l, "open") == 0)
        return B_OPEN;
    snprintf(req, sizeof req, "%s_req", l);
    if (sibling(m, name, req, NULL) >= 0)
        return B_REQ;
    if (ends_with(l, "_ok") || strcmp(l, "ready") == 0)
        return B_OK;
    if ((strcmp(l, "high") == 0 || strcmp(l, "overflow") == 0) &&
        switch_level(m, name) >= 0)
        return B_SWITCH_HIGH;
    if ((strcmp(l, "low") == 0 || strcmp(l, "dry_run") == 0) &&
        switch_level(m, name) >= 0)
        return B_SWITCH_LOW;
    return s->alarmed ? B_ZERO : B_RANDOM;
}

static bool writable_sp(const struct plcsim_model *m, int i)
{
    return i >= 0 && m->v[i].t->writable && m->v[i].t->type != VG_DT_BOOL;
}

static enum role num_role(struct plcsim_model *m, struct stag *s)
{
    const char *name = s->t->name, *l = leaf(name);
    int sp;

    if (s->t->writable)
        return N_SETPOINT;
    sp = sibling(m, name, NULL, "_sp");
    if (!writable_sp(m, sp) && strcmp(l, "pos") == 0)
        sp = sibling(m, name, "sp", NULL);
    if (writable_sp(m, sp)) {
        s->link = sp;
        return N_FOLLOW;
    }
    if (ends_with(l, "hours")) {
        s->link = sibling(m, name, "running", NULL);
        return N_HOURS;
    }
    if (ends_with(l, "total")) {
        s->link = sibling(m, name, "flow", NULL);
        return N_VOLUME;
    }
    if (strcmp(l, "energy") == 0) {
        s->link = sibling(m, name, "power", NULL);
        return N_ENERGY;
    }
    if (strcmp(l, "count") == 0)
        return N_COUNT;
    if (strcmp(l, "heartbeat") == 0)
        return N_HEARTBEAT;
    if (strcmp(l, "alarm_word") == 0)
        return N_ALARM_WORD;
    if (strcmp(l, "state") == 0) {
        s->link = sibling(m, name, "backwash", NULL);
        return N_STATE;
    }
    if (strncmp(l, "net_", 4) == 0)
        return N_WAVE;
    if (ends_with(l, "flow") || strcmp(l, "current") == 0 ||
        strcmp(l, "power") == 0)
        return N_FLOW;
    if (strcmp(l, "pressure") == 0)
        return N_PRESSURE;
    if (strcmp(l, "level") == 0)
        return N_LEVEL;
    if (ends_with(l, "motor_temp") || strcmp(l, "vibration") == 0 ||
        strcmp(l, "speed") == 0)
        return N_DRIVEN;
    return N_WAVE;
}

/* A plausible range for an unscaled, non-writable numeric tag. */
static void unit_range(const struct vg_tag *t, double *lo, double *hi)
{
    static const struct { const char *unit; double lo, hi; } units[] = {
        {"m", 0, 10}, {"NTU", 0, 2}, {"µS/cm", 200, 900}, {"mV", 100, 400},
        {"W/m²", 0, 150}, {"J/m²", 300, 900}, {"kW", 0, 250},
        {"kWh/m³", 0.1, 0.8}, {"m³/h", 0, 200}, {"m³", 0, 5000},
        {"mg/l", 0, 20}, {"bar", 0, 10}, {"°C", 0, 40}, {"%", 0, 100},
        {"A", 0, 100},
    };
    size_t i;

    *lo = 0;
    *hi = 100;
    for (i = 0; i < sizeof units / sizeof units[0]; i++)
        if (t->unit && strcmp(t->unit, units[i].unit) == 0) {
            *lo = units[i].lo;
            *hi = units[i].hi;
        }
}

static bool is_counter(enum role r)
{
    return r == N_HOURS || r == N_VOLUME || r == N_ENERGY || r == N_COUNT ||
           r == N_HEARTBEAT || r == N_ALARM_WORD || r == N_STATE;
}

/* Ranges and bands; needs roles and the alarm list. */
static void set_ranges(struct plcsim_model *m, struct stag *s)
{
    const struct vg_tag *t = s->t;
    double tlo, thi, span, margin;
    size_t k;

    plcsim_tag_range(t, &tlo, &thi);
    if (t->has_limits) {
        s->lo = t->min;
        s->hi = t->max;
    } else if (t->type == VG_DT_BOOL || t->scaled || is_counter(s->role)) {
        s->lo = tlo;
        s->hi = thi;
    } else {
        unit_range(t, &s->lo, &s->hi);
        span = s->hi - s->lo;
        for (k = 0; k < m->n_alarms; k++) {
            const struct vg_alarm *a = &m->p->alarms[m->alarms[k]];
            bool high = a->kind == VG_ALARM_HIGH ||
                        a->kind == VG_ALARM_HIGH_HIGH;
            bool low = a->kind == VG_ALARM_LOW || a->kind == VG_ALARM_LOW_LOW;
            if (a->tag.index < 0 || m->by_proj[a->tag.index] != s - m->v ||
                !a->has_limit)
                continue;
            /* Room above a high limit and below a low one, so that an
             * excursion can cross it. */
            if (high && a->limit >= s->hi - 0.1 * span)
                s->hi = a->limit + 0.5 * span;
            if (low && a->limit <= s->lo + 0.1 * span)
                s->lo = a->limit - 0.5 * span;
        }
        s->lo = clamp(s->lo, tlo, thi);
        s->hi = clamp(s->hi, tlo, thi);
    }
    span = s->hi - s->lo;
    s->blo = s->lo + 0.05 * span;
    s->bhi = s->hi - 0.05 * span;
    if (t->type == VG_DT_BOOL || is_counter(s->role))
        return;
    for (k = 0; k < m->n_alarms; k++) {
        const struct vg_alarm *a = &m->p->alarms[m->alarms[k]];
        if (a->tag.index < 0 || m->by_proj[a->tag.index] != s - m->v ||
            !a->has_limit)
            continue;
        margin = fmax(a->hysteresis, 0.03 * span) + 0.01 * span;
        if (a->kind == VG_ALARM_HIGH || a->kind == VG_ALARM_HIGH_HIGH)
            s->bhi = fmin(s->bhi, a->limit - margin);
        if (a->kind == VG_ALARM_LOW || a->kind == VG_ALARM_LOW_LOW)
            s->blo = fmax(s->blo, a->limit + margin);
    }
    if (s->blo >= s->bhi) {
        s->blo = s->lo + 0.05 * span;
        s->bhi = s->hi - 0.05 * span;
    }
}

static bool is_driver(const struct stag *s)
{
    return s->role == B_RUNNING || s->role == B_OPEN;
}

/* Drivers of S: running/open states in S's scope or below, else in the
 * nearest enclosing scope that has any. */
static int find_drivers(struct plcsim_model *m, struct stag *s)
{
    char scope[256];
    char *d;
    size_t i, len;
    bool own = true;

    snprintf(scope, sizeof scope, "%s", s->t->name);
    while ((d = strrchr(scope, '.')) != NULL) {
        *d = '\0';
        len = strlen(scope);
        for (i = 0; i < m->n; i++) {
            const char *n = m->v[i].t->name;
            if (is_driver(&m->v[i]) && strncmp(n, scope, len) == 0 &&
                n[len] == '.') {
                int *nd = realloc(s->drivers,
                                  (s->n_drivers + 1) * sizeof *nd);
                if (!nd)
                    return VG_ENOMEM;
                s->drivers = nd;
                s->drivers[s->n_drivers++] = (int)i;
            }
        }
        if (s->n_drivers > 0) {
            s->drivers_own = own;
            return 0;
        }
        own = false;
    }
    return 0;
}

static double frac(const struct stag *s)
{
    return s->hi > s->lo ? clamp((s->v - s->lo) / (s->hi - s->lo), 0, 1) : 0;
}

static double drive(const struct plcsim_model *m, int i)
{
    const struct stag *d = &m->v[i];
    double on = d->v >= 0.5 ? 1 : 0;
    if (d->role == B_RUNNING && d->speed >= 0)
        return on * frac(&m->v[d->speed]);
    return on;
}

/* Mean drive of S's drivers of kind ROLE (-1: pumps when there are any,
 * else valves); *ANY_ON tells whether any of them is on, *N how many there
 * are. */
static double activity(const struct plcsim_model *m, const struct stag *s,
                       int role, bool *any_on, size_t *n)
{
    double sum = 0;
    size_t i, k = 0;

    *any_on = false;
    if (role < 0) {
        role = B_OPEN;
        for (i = 0; i < s->n_drivers; i++)
            if (m->v[s->drivers[i]].role == B_RUNNING)
                role = B_RUNNING;
    }
    for (i = 0; i < s->n_drivers; i++) {
        const struct stag *d = &m->v[s->drivers[i]];
        if ((int)d->role != role)
            continue;
        sum += drive(m, s->drivers[i]);
        *any_on = *any_on || d->v >= 0.5;
        k++;
    }
    *n = k;
    return k ? sum / (double)k : 0;
}

/* A slow sine wave in 0.15..0.85, S's own period and phase. */
static double wave(const struct plcsim_model *m, const struct stag *s,
                   double shift)
{
    return 0.5 + 0.35 * sin(2 * M_PI * m->t / s->period + s->phase + shift);
}

/* Analysers and the like sit near the middle of their band (pH 7, not pH
 * 2..12): a slow wave of a tenth of the band either way. */
static double calm(const struct plcsim_model *m, const struct stag *s)
{
    return s->blo + (s->bhi - s->blo) *
                        (0.5 + (wave(m, s, 0) - 0.5) * (0.1 / 0.35));
}

int plcsim_model_new(const struct vg_project *p, size_t plc, uint64_t seed,
                     double dt, struct plcsim_model **out, char *errmsg)
{
    struct plcsim_model *m = calloc(1, sizeof *m);
    size_t i;

    if (!m)
        goto err_nomem;
    m->p = p;
    m->plc = plc;
    m->dt = dt;
    m->rng = seed;
    m->exc = -1;
    m->by_proj = malloc((p->n_tags ? p->n_tags : 1) * sizeof *m->by_proj);
    m->v = calloc(p->n_tags ? p->n_tags : 1, sizeof *m->v);
    m->alarms = malloc((p->n_alarms ? p->n_alarms : 1) * sizeof *m->alarms);
    if (!m->by_proj || !m->v || !m->alarms)
        goto err_nomem;
    for (i = 0; i < p->n_tags; i++) {
        m->by_proj[i] = -1;
        if (p->tags[i].plc.index != (int)plc)
            continue;
        m->by_proj[i] = (int)m->n;
        m->v[m->n].t = &p->tags[i];
        m->v[m->n].link = m->v[m->n].fault = m->v[m->n].speed = -1;
        m->n++;
    }
    for (i = 0; i < p->n_alarms; i++) {
        int ti = p->alarms[i].tag.index;
        if (ti < 0 || m->by_proj[ti] < 0)
            continue;
        m->alarms[m->n_alarms++] = (int)i;
        m->v[m->by_proj[ti]].alarmed = true;
    }
    /* Bool roles first: numeric roles and drivers look at them. */
    for (i = 0; i < m->n; i++)
        if (m->v[i].t->type == VG_DT_BOOL)
            m->v[i].role = bool_role(m, &m->v[i]);
    for (i = 0; i < m->n; i++) {
        struct stag *s = &m->v[i];
        const char *n = s->t->name;
        char req[80];

        if (s->t->type != VG_DT_BOOL)
            s->role = num_role(m, s);
        s->phase = 2 * M_PI * rnd(&m->rng);
        s->period = 600 + 1200 * rnd(&m->rng);
        switch (s->role) {
        case B_RUNNING:
            s->link = sibling(m, n, "cmd", NULL);
            s->fault = sibling(m, n, "fault", NULL);
            s->speed = sibling(m, n, "speed", NULL);
            break;
        case B_OPEN:
            s->link = sibling(m, n, "cmd", NULL);
            break;
        case B_PULSE:
            if (ends_with(n, "_req")) {
                snprintf(req, sizeof req, "%.*s", (int)(strlen(leaf(n)) - 4),
                         leaf(n));
                s->link = sibling(m, n, req, NULL);
            }
            break;
        case B_SWITCH_HIGH:
        case B_SWITCH_LOW:
            s->link = switch_level(m, n);
            break;
        default:
            break;
        }
    }
    for (i = 0; i < m->n; i++)
        set_ranges(m, &m->v[i]);
    for (i = 0; i < m->n; i++) {
        struct stag *s = &m->v[i];
        if (s->t->type != VG_DT_BOOL && find_drivers(m, s) != 0)
            goto err_nomem;
    }
    /* Initial values. */
    for (i = 0; i < m->n; i++) {
        struct stag *s = &m->v[i];
        switch (s->role) {
        case B_CMD: case B_RUNNING: case B_OPEN: case B_OK:
            s->v = 1;
            break;
        case N_SETPOINT:
            s->v = (s->lo + s->hi) / 2;
            break;
        case N_HOURS:
            s->v = 2000 + floor(40000 * rnd(&m->rng));
            break;
        case N_VOLUME:
        case N_ENERGY:
            s->v = 100000 + floor(4000000 * rnd(&m->rng));
            break;
        case N_COUNT:
            s->v = floor(2000 * rnd(&m->rng));
            break;
        case N_STATE:
            s->v = 1;
            break;
        case N_WAVE:
            s->v = calm(m, s);
            break;
        default:
            if (s->t->type != VG_DT_BOOL)
                s->v = s->x = s->blo + (s->bhi - s->blo) * wave(m, s, 0);
            break;
        }
        if (s->t->type != VG_DT_BOOL && !is_counter(s->role))
            s->v = clamp(s->v, s->lo, s->hi);
    }
    m->exc_next = 60 + 180 * rnd(&m->rng);
    *out = m;
    return 0;

err_nomem:
    plcsim_model_free(m);
    vg_errf(errmsg, "out of memory for the plant model");
    return VG_ENOMEM;
}

void plcsim_model_free(struct plcsim_model *m)
{
    size_t i;

    if (!m)
        return;
    for (i = 0; i < m->n; i++)
        free(m->v[i].drivers);
    free(m->v);
    free(m->by_proj);
    free(m->alarms);
    free(m);
}

size_t plcsim_model_n_tags(const struct plcsim_model *m)
{
    return m->n;
}

void plcsim_model_map_size(const struct plcsim_model *m, unsigned nb[4])
{
    size_t i;

    nb[0] = nb[1] = nb[2] = nb[3] = 0;
    for (i = 0; i < m->n; i++) {
        const struct vg_tag *t = m->v[i].t;
        unsigned end = t->offset + vg_dtype_width(t->type);
        if (end > nb[t->kind])
            nb[t->kind] = end;
    }
}

void plcsim_model_start(struct plcsim_model *m, modbus_mapping_t *map)
{
    size_t i;

    for (i = 0; i < m->n; i++)
        plcsim_tag_put(m->v[i].t, m->v[i].v, map);
}

/* ------------------------------------------------------------ excursions */

static double value_of(const struct plcsim_model *m, int proj_tag)
{
    int i = proj_tag < 0 ? -1 : m->by_proj[proj_tag];
    return i < 0 ? NAN : m->v[i].v;
}

/* Whether alarm A's condition holds now (no hysteresis, no delays: this is
 * the PLC's own alarm word, not the alarm engine). */
static bool beyond(const struct plcsim_model *m, const struct vg_alarm *a)
{
    double v = value_of(m, a->tag.index), ref;

    switch (a->kind) {
    case VG_ALARM_HIGH: case VG_ALARM_HIGH_HIGH: return v > a->limit;
    case VG_ALARM_LOW: case VG_ALARM_LOW_LOW: return v < a->limit;
    case VG_ALARM_DIGITAL_ON: return v >= 0.5;
    case VG_ALARM_DIGITAL_OFF: return v < 0.5;
    case VG_ALARM_DEVIATION:
        ref = value_of(m, a->reference.index);
        return !isnan(ref) && fabs(v - ref) > a->limit;
    }
    return false;
}

/* Pick the next alarm to provoke and where to push its tag. */
static void excursion_start(struct plcsim_model *m)
{
    size_t tries;

    for (tries = 0; tries < 8 && m->n_alarms > 0; tries++) {
        int k = (int)(rnd64(&m->rng) % m->n_alarms);
        const struct vg_alarm *a = &m->p->alarms[m->alarms[k]];
        struct stag *s = &m->v[m->by_proj[a->tag.index]];
        double span = s->hi - s->lo, push = fmax(a->hysteresis, 0.02 * span) +
                                             0.05 * span, ref;

        if (s->t->writable)
            continue;
        switch (a->kind) {
        case VG_ALARM_HIGH: case VG_ALARM_HIGH_HIGH:
            m->exc_value = fmin(a->limit + push, s->hi);
            break;
        case VG_ALARM_LOW: case VG_ALARM_LOW_LOW:
            m->exc_value = fmax(a->limit - push, s->lo);
            break;
        case VG_ALARM_DIGITAL_ON: m->exc_value = 1; break;
        case VG_ALARM_DIGITAL_OFF: m->exc_value = 0; break;
        case VG_ALARM_DEVIATION:
            ref = value_of(m, a->reference.index);
            if (isnan(ref))
                continue;
            m->exc_value = ref + a->limit + push <= s->hi
                               ? ref + a->limit + push
                               : fmax(ref - a->limit - push, s->lo);
            break;
        }
        m->exc = k;
        m->exc_end = m->t + a->on_delay_ms / 1000.0 + 20 + 40 * rnd(&m->rng);
        return;
    }
    m->exc_next = m->t + 60 + 180 * rnd(&m->rng);
}

static void excursions(struct plcsim_model *m)
{
    if (m->exc >= 0 && m->t >= m->exc_end) {
        m->exc = -1;
        m->exc_next = m->t + 60 + 180 * rnd(&m->rng);
    }
    if (m->exc < 0 && m->t >= m->exc_next)
        excursion_start(m);
}

static struct stag *excursion_tag(const struct plcsim_model *m)
{
    if (m->exc < 0)
        return NULL;
    return &m->v[m->by_proj[m->p->alarms[m->alarms[m->exc]].tag.index]];
}

/* ------------------------------------------------------------------ step */

static bool delayed(struct stag *s, bool target, double delay, double dt)
{
    if ((s->v >= 0.5) == target) {
        s->timer = 0;
        return target;
    }
    s->timer += dt;
    if (s->timer >= delay) {
        s->timer = 0;
        return target;
    }
    return s->v >= 0.5;
}

static double on(const struct plcsim_model *m, int i, double none)
{
    return i < 0 ? none : m->v[i].v >= 0.5 ? 1 : 0;
}

static void step_bool(struct plcsim_model *m, struct stag *s,
                      modbus_mapping_t *map)
{
    double dt = m->dt;
    bool target;

    switch (s->role) {
    case B_CMD:
    case B_ZERO:
        if (s->t->kind == VG_REG_COIL)
            s->v = plcsim_tag_get(s->t, map);
        break;
    case B_PULSE:
        s->v = plcsim_tag_get(s->t, map);
        if (s->v >= 0.5) {
            /* The PLC takes the request and clears the coil. */
            if (s->link >= 0) {
                m->v[s->link].v = 1;
                m->v[s->link].timer = 60;
            }
            s->v = 0;
            plcsim_tag_put(s->t, 0, map);
        }
        break;
    case B_REQ:
        if (s->v >= 0.5) {
            s->timer -= dt;
            if (s->timer <= 0)
                s->v = 0;
        }
        break;
    case B_RUNNING:
        target = on(m, s->link, 1) >= 0.5 && on(m, s->fault, 0) < 0.5;
        s->v = delayed(s, target, 1.0, dt);
        break;
    case B_OPEN:
        s->v = delayed(s, on(m, s->link, 1) >= 0.5, 3.0, dt);
        break;
    case B_OK:
        s->v = 1;
        break;
    case B_SWITCH_HIGH:
        s->v = m->v[s->link].v > m->v[s->link].bhi;
        break;
    case B_SWITCH_LOW:
        s->v = m->v[s->link].v < m->v[s->link].blo;
        break;
    case B_RANDOM:
        if (s->v >= 0.5) {
            s->timer -= dt;
            if (s->timer <= 0)
                s->v = 0;
        } else if (rnd(&m->rng) < dt / 900) {
            s->v = 1;
            s->timer = 20 + 40 * rnd(&m->rng);
        }
        break;
    default:
        break;
    }
}

static uint16_t alarm_word(const struct plcsim_model *m)
{
    uint16_t w = 0;
    size_t k;

    for (k = 0; k < m->n_alarms && k < 16; k++)
        if (beyond(m, &m->p->alarms[m->alarms[k]]))
            w |= (uint16_t)(1u << k);
    return w;
}

/* The value S is heading for (before lag and noise). */
static double target(struct plcsim_model *m, struct stag *s)
{
    double dt = m->dt, act, in, out, band = s->bhi - s->blo;
    size_t n, n_pumps, n_valves;
    bool any_on, pumps_on, valves_on;

    switch (s->role) {
    case N_FOLLOW:
        act = activity(m, s, -1, &any_on, &n);
        return any_on || n == 0 ? m->v[s->link].v : s->lo;
    case N_FLOW:
        act = activity(m, s, -1, &any_on, &n);
        if (n == 0)
            act = wave(m, s, 0);
        return s->lo + act * (s->bhi - s->lo);
    case N_PRESSURE:
        act = activity(m, s, -1, &any_on, &n);
        if (n == 0)
            return s->blo + band * wave(m, s, 0);
        return any_on ? s->blo + band * (0.3 + 0.6 * act)
                      : s->lo + 0.05 * (s->hi - s->lo);
    case N_DRIVEN:
        act = activity(m, s, -1, &any_on, &n);
        if (n == 0)
            act = wave(m, s, 0);
        return s->blo + band * (0.45 + 0.4 * act);
    case N_LEVEL:
        if (s->drivers_own) {
            out = activity(m, s, B_RUNNING, &pumps_on, &n_pumps);
            in = 0.7 * activity(m, s, B_OPEN, &valves_on, &n_valves);
            if (n_pumps == 0)
                out = wave(m, s, 1.0);
            if (n_valves == 0)
                in = wave(m, s, 0);
        } else {
            in = s->n_drivers ? activity(m, s, -1, &any_on, &n)
                              : wave(m, s, 0);
            out = wave(m, s, 2.0);
        }
        s->x = clamp(s->x + 0.004 * band * (in - out) * dt, s->blo, s->bhi);
        return s->x;
    case N_HOURS:
        s->v += on(m, s->link, 1) * dt / 3600;
        return s->v;
    case N_VOLUME:
        s->v += (s->link >= 0 ? m->v[s->link].v : 200) * dt / 3600;
        return s->v;
    case N_ENERGY:
        s->v += (s->link >= 0 ? m->v[s->link].v : 50) * dt / 3600;
        return s->v;
    case N_COUNT:
        if (rnd(&m->rng) < dt / 3600)
            s->v += 1;
        return s->v;
    case N_HEARTBEAT:
        return fmod(floor(m->t), 65536);
    case N_ALARM_WORD:
        return alarm_word(m);
    case N_STATE:
        return on(m, s->link, 0) >= 0.5 ? 2 : 1;
    default:
        return calm(m, s);
    }
}

static void step_num(struct plcsim_model *m, struct stag *s,
                     const struct stag *exc)
{
    double tgt;

    if (s->role == N_SETPOINT)
        return;
    tgt = target(m, s);
    if (is_counter(s->role)) {
        s->v = tgt;
        return;
    }
    if (s == exc)
        tgt = m->exc_value;
    /* A first-order lag of about 3 s, and noise that wanders a little. */
    s->v += (tgt - s->v) * fmin(1, m->dt / 3.0);
    s->noise = 0.8 * s->noise + 0.2 * (2 * rnd(&m->rng) - 1);
    s->v = clamp(s->v, s->lo, s->hi);
}

void plcsim_model_step(struct plcsim_model *m, modbus_mapping_t *map)
{
    struct stag *exc;
    size_t i;

    m->steps++;
    m->t = (double)m->steps * m->dt;
    /* What clients wrote: setpoints are used within their write limits. */
    for (i = 0; i < m->n; i++) {
        struct stag *s = &m->v[i];
        if (s->role == N_SETPOINT)
            s->v = clamp(plcsim_tag_get(s->t, map), s->lo, s->hi);
    }
    excursions(m);
    exc = excursion_tag(m);
    for (i = 0; i < m->n; i++) {
        struct stag *s = &m->v[i];
        if (s->t->type == VG_DT_BOOL) {
            step_bool(m, s, map);
            if (s == exc)
                s->v = m->exc_value;
        } else {
            step_num(m, s, exc);
        }
    }
    for (i = 0; i < m->n; i++) {
        struct stag *s = &m->v[i];
        double amp = 0.004 * (s->hi - s->lo), v = s->v;
        if (s->t->writable)
            continue;
        if (s->t->type != VG_DT_BOOL && !is_counter(s->role))
            v = clamp(v + amp * s->noise, s->lo, s->hi);
        plcsim_tag_put(s->t, v, map);
    }
}
