/* The alarms of one project: a state per alarm, the latest reading of every
 * tag, and an index from each tag to the alarms that read it.
 *
 * The index is built once, as one array of alarm numbers grouped by tag
 * (TAG_START[t] .. TAG_START[t + 1] - 1), because a poll cycle delivers
 * many readings and each must find its alarms without scanning the project.
 * Alarms are added in ascending order, so every group is sorted; a deviation
 * alarm whose reference is its own tag is listed once.
 *
 * Deadlines are found by a scan over all alarms rather than a priority
 * queue: ticks happen only when a delay or a shelve runs out, projects have
 * hundreds to a few thousand alarms, and a scan has no second copy of the
 * deadlines that could disagree with the states after a restore. */
#include <stdlib.h>
#include <string.h>

#include "alarms.h"

struct vg_alarm_engine {
    const struct vg_project *project; /* borrowed */
    size_t n_alarms;
    size_t n_tags;
    struct vg_alarm_state *states;     /* n_alarms */
    uint64_t *evaluations;             /* n_alarms */
    struct vg_alarm_reading *readings; /* n_tags; quality NONE until read */
    size_t *tag_start;                 /* n_tags + 1 */
    size_t *tag_alarms;                /* tag_start[n_tags] */
};

static bool tag_ok(const struct vg_project *p, int index)
{
    return index >= 0 && (size_t)index < p->n_tags;
}

/* The tags alarm A reads, into DEPS; none when any of them did not resolve,
 * since such an alarm could never be evaluated correctly. */
static size_t alarm_deps(const struct vg_project *p, size_t a, size_t deps[2])
{
    const struct vg_alarm *def = &p->alarms[a];
    size_t n = 0;

    if (!tag_ok(p, def->tag.index))
        return 0;
    deps[n++] = (size_t)def->tag.index;
    if (def->kind == VG_ALARM_DEVIATION) {
        if (!tag_ok(p, def->reference.index))
            return 0;
        if (def->reference.index != def->tag.index)
            deps[n++] = (size_t)def->reference.index;
    }
    return n;
}

/* calloc that returns a usable pointer for N == 0 too, so that NULL always
 * means "out of memory". */
static void *alloc_array(size_t n, size_t size)
{
    return calloc(n ? n : 1, size);
}

int vg_alarm_engine_new(const struct vg_project *project,
                        struct vg_alarm_engine **out, char *errmsg)
{
    struct vg_alarm_engine *e = calloc(1, sizeof(*e));
    size_t *next;
    size_t deps[2];

    if (e == NULL)
        goto err_nomem;
    e->project = project;
    e->n_alarms = project->n_alarms;
    e->n_tags = project->n_tags;
    e->states = alloc_array(e->n_alarms, sizeof(*e->states));
    e->evaluations = alloc_array(e->n_alarms, sizeof(*e->evaluations));
    e->readings = alloc_array(e->n_tags, sizeof(*e->readings));
    e->tag_start = alloc_array(e->n_tags + 1, sizeof(*e->tag_start));
    if (e->states == NULL || e->evaluations == NULL || e->readings == NULL ||
        e->tag_start == NULL)
        goto err_after_engine;

    for (size_t a = 0; a < e->n_alarms; a++) {
        vg_alarm_state_init(&e->states[a]);
        size_t n = alarm_deps(project, a, deps);
        for (size_t i = 0; i < n; i++)
            e->tag_start[deps[i] + 1]++;
    }
    for (size_t t = 0; t < e->n_tags; t++)
        e->tag_start[t + 1] += e->tag_start[t];
    e->tag_alarms = alloc_array(e->tag_start[e->n_tags], sizeof(size_t));
    if (e->tag_alarms == NULL)
        goto err_after_engine;

    /* Fill each group from its start, using a copy of the starts as write
     * positions so that tag_start itself stays intact. */
    next = alloc_array(e->n_tags, sizeof(size_t));
    if (next == NULL)
        goto err_after_engine;
    if (e->n_tags > 0)
        memcpy(next, e->tag_start, e->n_tags * sizeof(size_t));
    for (size_t a = 0; a < e->n_alarms; a++) {
        size_t n = alarm_deps(project, a, deps);
        for (size_t i = 0; i < n; i++)
            e->tag_alarms[next[deps[i]]++] = a;
    }
    free(next);
    *out = e;
    return VG_OK;

err_after_engine:
    vg_alarm_engine_free(e);
err_nomem:
    vg_errf(errmsg, "Out of memory building the alarm engine for %zu alarms.",
            project->n_alarms);
    return VG_ENOMEM;
}

void vg_alarm_engine_free(struct vg_alarm_engine *e)
{
    if (e == NULL)
        return;
    free(e->states);
    free(e->evaluations);
    free(e->readings);
    free(e->tag_start);
    free(e->tag_alarms);
    free(e);
}

/* Tell CB what one call did to alarm A: each transition, or a bare state
 * change when there was none (BEFORE is the state before the call). */
static void report(struct vg_alarm_engine *e, size_t a,
                   const struct vg_alarm_state *before,
                   const struct vg_alarm_transition *t, unsigned n,
                   vg_alarm_engine_cb cb, void *data)
{
    if (cb == NULL)
        return;
    for (unsigned i = 0; i < n; i++)
        cb(data, a, &e->states[a], &t[i]);
    if (n == 0 && !vg_alarm_state_equal(before, &e->states[a]))
        cb(data, a, &e->states[a], NULL);
}

int vg_alarm_engine_update(struct vg_alarm_engine *e, size_t tag,
                           double value, bool good, uint64_t now_ms,
                           vg_alarm_engine_cb cb, void *data)
{
    struct vg_alarm_transition t[VG_ALARM_STEP_MAX];

    if (tag >= e->n_tags)
        return VG_EINVAL;
    e->readings[tag].value = value;
    e->readings[tag].quality = good ? VG_ALARM_Q_GOOD : VG_ALARM_Q_BAD;

    for (size_t i = e->tag_start[tag]; i < e->tag_start[tag + 1]; i++) {
        size_t a = e->tag_alarms[i];
        const struct vg_alarm *def = &e->project->alarms[a];
        struct vg_alarm_input in;
        struct vg_alarm_state before = e->states[a];

        /* The index holds only alarms whose tags resolved. */
        memset(&in, 0, sizeof(in));
        in.tag = e->readings[def->tag.index];
        if (def->kind == VG_ALARM_DEVIATION)
            in.reference = e->readings[def->reference.index];
        e->evaluations[a]++;
        unsigned n = vg_alarm_step(def, &e->states[a], &in, now_ms, t);
        report(e, a, &before, t, n, cb, data);
    }
    return VG_OK;
}

static void tick_one(struct vg_alarm_engine *e, size_t a, uint64_t now_ms,
                     vg_alarm_engine_cb cb, void *data)
{
    const struct vg_alarm *def = &e->project->alarms[a];
    struct vg_alarm_transition t[VG_ALARM_STEP_MAX];
    struct vg_alarm_state before;

    if (vg_alarm_next_deadline(def, &e->states[a]) > now_ms)
        return;
    before = e->states[a];
    unsigned n = vg_alarm_tick(def, &e->states[a], now_ms, t);
    report(e, a, &before, t, n, cb, data);
}

void vg_alarm_engine_tick(struct vg_alarm_engine *e, uint64_t now_ms,
                          vg_alarm_engine_cb cb, void *data)
{
    for (size_t a = 0; a < e->n_alarms; a++)
        tick_one(e, a, now_ms, cb, data);
}

uint64_t vg_alarm_engine_next_deadline(const struct vg_alarm_engine *e)
{
    uint64_t d = VG_ALARM_NEVER;

    for (size_t a = 0; a < e->n_alarms; a++) {
        uint64_t da = vg_alarm_next_deadline(&e->project->alarms[a],
                                             &e->states[a]);
        if (da < d)
            d = da;
    }
    return d;
}

int vg_alarm_engine_act(struct vg_alarm_engine *e, size_t alarm,
                        const struct vg_alarm_action *a, uint64_t now_ms,
                        struct vg_alarm_transition *out,
                        vg_alarm_engine_cb cb, void *data, char *errmsg)
{
    struct vg_alarm_transition t;
    struct vg_alarm_state *st;
    int rc;

    if (alarm >= e->n_alarms) {
        vg_errf(errmsg, "There is no alarm number %zu (the project has %zu).",
                alarm, e->n_alarms);
        return VG_ENOTFOUND;
    }
    if (a == NULL || (unsigned)a->kind > VG_ALARM_ACT_IN_SERVICE) {
        vg_errf(errmsg, "Unknown alarm action.");
        return VG_EINVAL;
    }
    st = &e->states[alarm];
    /* The action applies to the alarm as it is at NOW_MS, so whatever fell
     * due before (an expired shelve, say) happens first. */
    tick_one(e, alarm, now_ms, cb, data);

    switch (a->kind) {
    case VG_ALARM_ACT_ACK:
        rc = vg_alarm_ack(st, now_ms, &t);
        break;
    case VG_ALARM_ACT_SHELVE:
        rc = vg_alarm_shelve(st, a->until_ms, a->reason, a->user, now_ms, &t,
                             errmsg);
        break;
    case VG_ALARM_ACT_UNSHELVE:
        rc = vg_alarm_unshelve(st, now_ms, &t);
        break;
    case VG_ALARM_ACT_OUT_OF_SERVICE:
    case VG_ALARM_ACT_IN_SERVICE:
        rc = vg_alarm_set_out_of_service(
            st, a->kind == VG_ALARM_ACT_OUT_OF_SERVICE, now_ms, &t);
        break;
    default:
        rc = VG_EINVAL; /* unreachable: checked above */
        break;
    }
    if (rc != VG_OK)
        return rc;
    if (t.cause != VG_ALARM_CAUSE_NONE && cb != NULL)
        cb(data, alarm, st, &t);
    if (out != NULL)
        *out = t;
    return VG_OK;
}

int vg_alarm_engine_restore(struct vg_alarm_engine *e, size_t alarm,
                            const struct vg_alarm_state *st, char *errmsg)
{
    int rc;

    if (alarm >= e->n_alarms) {
        vg_errf(errmsg, "There is no alarm number %zu (the project has %zu).",
                alarm, e->n_alarms);
        return VG_ENOTFOUND;
    }
    rc = vg_alarm_state_check(st, errmsg);
    if (rc != VG_OK)
        return rc;
    e->states[alarm] = *st;
    return VG_OK;
}

size_t vg_alarm_engine_count(const struct vg_alarm_engine *e)
{
    return e->n_alarms;
}

const struct vg_alarm_state *
vg_alarm_engine_state(const struct vg_alarm_engine *e, size_t alarm)
{
    return alarm < e->n_alarms ? &e->states[alarm] : NULL;
}

const size_t *vg_alarm_engine_tag_alarms(const struct vg_alarm_engine *e,
                                         size_t tag, size_t *n)
{
    if (tag >= e->n_tags || e->tag_start[tag] == e->tag_start[tag + 1]) {
        *n = 0;
        return NULL;
    }
    *n = e->tag_start[tag + 1] - e->tag_start[tag];
    return &e->tag_alarms[e->tag_start[tag]];
}

uint64_t vg_alarm_engine_evaluations(const struct vg_alarm_engine *e,
                                     size_t alarm)
{
    return alarm < e->n_alarms ? e->evaluations[alarm] : 0;
}
