/* Read-request planning: the fewest Modbus requests that read every tag of a
 * PLC, and among those the plan that reads the fewest registers.
 *
 * The problem, per register kind. The tags are intervals [s, e] of
 * registers (bits), 1 or 2 wide, sorted by s and not overlapping (validation
 * guarantees that). A request reads a window of at most L registers; it
 * serves the tags lying wholly inside it; between two of those tags it may
 * read at most G unused registers. Every tag must be served by some request.
 *
 * Lemma 1 (consecutive groups suffice). Take any valid plan and give each
 * tag to the first window (ordered by start) that contains it. If tag a < b
 * went to a later window W2 and b to an earlier window W1, then
 * W1.start <= W2.start <= s_a and e_a < s_b <= e_b <= W1.end, so W1 contains
 * a and a would have gone to W1: contradiction. Hence the groups are runs of
 * consecutive tags; shrinking each window to its group's span [s_first,
 * e_last] keeps it valid (its gaps are gaps the window already read) and
 * reads no more. So we may search partitions of the sorted tags into runs
 * whose span is <= L and whose gaps between neighbours are <= G.
 *
 * Lemma 2 (the greedy sweep is minimal in count). Start a run at the first
 * tag not yet served and extend it while the next tag keeps span <= L and
 * gap <= G. Let OPT(q) be the fewest runs covering tags q..n; OPT does not
 * increase with q (a plan for q..n covers any suffix of it). In any plan the
 * run containing q covers q..r with r no further than the greedy's r_max
 * (every condition that stops the greedy also stops that run), and tags
 * r+1..n need the other runs, so OPT(q) >= 1 + OPT(r+1) >= 1 + OPT(r_max+1),
 * which by induction is what the greedy uses. vg_plc_plan_min_requests is
 * this sweep.
 *
 * The plan itself: the greedy fixes the count but not where runs break, and
 * breaking at the widest gaps reads fewer registers. So vg_plc_plan_build
 * runs a dynamic programme over prefixes: best[i] is the lexicographically
 * smallest (requests, registers read) for tags 0..i-1, and
 * best[i] = min over valid last runs j..i-1 of best[j] + (1, span(j..i-1)).
 * By Lemma 1 this ranges over every plan worth considering, so it is
 * minimal in count first and registers second. Evaluated as a
 * sliding-window minimum (plan_kind), it is O(n); it runs once per project
 * version a leader polls. */
#include <stdlib.h>
#include <string.h>

#include "plc.h"

#define N_KINDS 4

/* One tag to plan, as an interval of its kind's address space. */
struct span {
    uint32_t s, e; /* first and last register (bit), inclusive */
    uint32_t tag;
};

struct limits {
    uint32_t len; /* L */
    uint32_t gap; /* G */
};

void vg_plc_plan_opts_default(struct vg_plc_plan_opts *o)
{
    o->max_gap_regs = VG_PLC_DEFAULT_MAX_GAP_REGS;
    o->max_gap_bits = VG_PLC_DEFAULT_MAX_GAP_BITS;
    o->max_regs = VG_PLC_MAX_READ_REGS;
    o->max_bits = VG_PLC_MAX_READ_BITS;
}

static bool is_bit_kind(enum vg_reg_kind k)
{
    return k == VG_REG_COIL || k == VG_REG_DISCRETE;
}

static uint8_t read_function(enum vg_reg_kind k)
{
    switch (k) {
    case VG_REG_COIL: return VG_PLC_FC_READ_COILS;
    case VG_REG_DISCRETE: return VG_PLC_FC_READ_DISCRETE;
    case VG_REG_HOLDING: return VG_PLC_FC_READ_HOLDING;
    case VG_REG_INPUT: return VG_PLC_FC_READ_INPUT;
    }
    return 0;
}

static int cmp_span(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    return x->s < y->s ? -1 : x->s > y->s;
}

/* The tags of PLC sorted into one array per kind: what both the planner and
 * the minimum count start from. */
struct sorted {
    struct span *v[N_KINDS];
    size_t n[N_KINDS];
    struct limits lim[N_KINDS];
};

static void sorted_free(struct sorted *so)
{
    for (int k = 0; k < N_KINDS; k++)
        free(so->v[k]);
}

static int sorted_build(const struct vg_tag *tags, size_t n_tags, int plc,
                        const struct vg_plc_plan_opts *o, struct sorted *so,
                        char *errmsg)
{
    struct vg_plc_plan_opts def;
    memset(so, 0, sizeof(*so));
    if (o == NULL) {
        vg_plc_plan_opts_default(&def);
        o = &def;
    }
    if (o->max_regs < 2 || o->max_regs > VG_PLC_MAX_READ_REGS ||
        o->max_bits < 1 || o->max_bits > VG_PLC_MAX_READ_BITS) {
        vg_errf(errmsg, "request size limits %u registers / %u bits are out "
                "of range (2..%d / 1..%d)", (unsigned)o->max_regs,
                (unsigned)o->max_bits, VG_PLC_MAX_READ_REGS,
                VG_PLC_MAX_READ_BITS);
        return VG_EINVAL;
    }
    if (n_tags > UINT32_MAX) {
        vg_errf(errmsg, "too many tags");
        return VG_EINVAL;
    }
    for (int k = 0; k < N_KINDS; k++) {
        so->lim[k].len = is_bit_kind(k) ? o->max_bits : o->max_regs;
        so->lim[k].gap = is_bit_kind(k) ? o->max_gap_bits : o->max_gap_regs;
    }

    size_t cap[N_KINDS] = {0};
    for (size_t i = 0; i < n_tags; i++) {
        if (tags[i].plc.index != plc)
            continue;
        if ((unsigned)tags[i].kind >= N_KINDS) {
            vg_errf(errmsg, "tag %s has an unknown register kind",
                    tags[i].name ? tags[i].name : "?");
            return VG_EINVAL;
        }
        cap[tags[i].kind]++;
    }
    for (int k = 0; k < N_KINDS; k++) {
        if (cap[k] == 0)
            continue;
        so->v[k] = malloc(cap[k] * sizeof(*so->v[k]));
        if (so->v[k] == NULL) {
            sorted_free(so);
            return VG_ENOMEM;
        }
    }
    for (size_t i = 0; i < n_tags; i++) {
        const struct vg_tag *t = &tags[i];
        if (t->plc.index != plc)
            continue;
        /* A bit kind holds one bit per tag whatever the (invalid) type
         * says; a register kind holds the type's width. */
        uint32_t w = is_bit_kind(t->kind) ? 1 : vg_dtype_width(t->type);
        if (w == 0 || (uint64_t)t->offset + w > 65536) {
            vg_errf(errmsg, "tag %s runs past address 65535",
                    t->name ? t->name : "?");
            sorted_free(so);
            return VG_EINVAL;
        }
        struct span *sp = &so->v[t->kind][so->n[t->kind]++];
        sp->s = t->offset;
        sp->e = t->offset + w - 1;
        sp->tag = (uint32_t)i;
    }
    for (int k = 0; k < N_KINDS; k++) {
        if (so->n[k] > 1)
            qsort(so->v[k], so->n[k], sizeof(*so->v[k]), cmp_span);
        for (size_t i = 1; i < so->n[k]; i++) {
            if (so->v[k][i].s <= so->v[k][i - 1].e) {
                vg_errf(errmsg, "tags %s and %s overlap at %s:%u",
                        tags[so->v[k][i - 1].tag].name
                            ? tags[so->v[k][i - 1].tag].name : "?",
                        tags[so->v[k][i].tag].name
                            ? tags[so->v[k][i].tag].name : "?",
                        vg_reg_kind_name(k), (unsigned)so->v[k][i].s);
                sorted_free(so);
                return VG_EINVAL;
            }
        }
    }
    return 0;
}

/* The unused registers between neighbours I-1 and I. */
static uint32_t gap_before(const struct span *v, size_t i)
{
    return v[i].s - v[i - 1].e - 1;
}

/* Lemma 2's sweep. */
static size_t greedy_count(const struct span *v, size_t n, struct limits lim)
{
    size_t count = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && v[j].e - v[i].s + 1 <= lim.len &&
               gap_before(v, j) <= lim.gap)
            j++;
        count++;
        i = j;
    }
    return count;
}

size_t vg_plc_plan_min_requests(const struct vg_tag *tags, size_t n_tags,
                                int plc, const struct vg_plc_plan_opts *o)
{
    struct sorted so;
    if (sorted_build(tags, n_tags, plc, o, &so, NULL) != 0)
        return SIZE_MAX;
    size_t count = 0;
    for (int k = 0; k < N_KINDS; k++)
        count += greedy_count(so.v[k], so.n[k], so.lim[k]);
    sorted_free(&so);
    return count;
}

struct best {
    size_t reqs;
    uint64_t units;
    size_t from; /* the last run is tags from..i-1 */
};

/* The dynamic programme for one kind: fills FROM so that the runs of an
 * optimal plan can be read backwards from n.
 *
 * best[i] = min over the valid last runs j..i-1 of best[j] + (1, span),
 * with span = e[i-1] + 1 - s[j]: for a fixed i, j is ranked by
 * (best[j].reqs, best[j].units - s[j]) alone. The valid j form a window
 * [lo, i-1] whose lower end never moves left as i grows (a run may not
 * span more than L, nor hold a gap wider than G), so the minimum is a
 * sliding-window minimum: a queue of candidates with rising keys, each
 * pushed and dropped once. O(n) rather than O(n * L): 20 000 discrete
 * inputs took 73-84 ms (L = 2000 bits), during a takeover. Ties go to
 * the largest j, as the search leftwards from i-1 that this replaced did,
 * so the plans are the same. QUEUE has room for n indexes. */
static bool key_le(const struct best *best, const struct span *v, size_t a,
                   size_t b)
{
    int64_t ka = (int64_t)best[a].units - v[a].s;
    int64_t kb = (int64_t)best[b].units - v[b].s;
    return best[a].reqs < best[b].reqs || (best[a].reqs == best[b].reqs && ka <= kb);
}

static int plan_kind(const struct span *v, size_t n, struct limits lim,
                     struct best *best, size_t *queue)
{
    size_t head = 0, tail = 0; /* queue[head..tail): candidates j */
    size_t brk = 0;            /* no run may start before a gap > G */

    best[0] = (struct best){0, 0, 0};
    for (size_t i = 1; i <= n; i++) {
        size_t j;
        /* j = i-1 joins: a key at least as large and older can never win. */
        while (tail > head && key_le(best, v, i - 1, queue[tail - 1]))
            tail--;
        queue[tail++] = i - 1;
        if (i >= 2 && gap_before(v, i - 1) > lim.gap)
            brk = i - 1;
        while (queue[head] < brk || v[i - 1].e - v[queue[head]].s + 1 > lim.len) {
            head++;
            /* A single tag always fits (L >= 2 for registers, >= 1 for
             * bits): i-1 itself stays. */
            if (head == tail)
                return VG_EINVAL;
        }
        j = queue[head];
        best[i] = (struct best){best[j].reqs + 1,
                                best[j].units + (v[i - 1].e - v[j].s + 1), j};
    }
    return 0;
}

void vg_plc_plan_free(struct vg_plc_plan *plan)
{
    free(plan->reqs);
    free(plan->items);
    memset(plan, 0, sizeof(*plan));
}

int vg_plc_plan_build(const struct vg_tag *tags, size_t n_tags, int plc,
                      const struct vg_plc_plan_opts *o,
                      struct vg_plc_plan *plan, char *errmsg)
{
    struct sorted so;
    struct best *best = NULL;
    size_t *queue = NULL;
    size_t n_all = 0, max_n = 0, n_reqs = 0;
    int rv;

    memset(plan, 0, sizeof(*plan));
    rv = sorted_build(tags, n_tags, plc, o, &so, errmsg);
    if (rv != 0)
        return rv;
    for (int k = 0; k < N_KINDS; k++) {
        n_all += so.n[k];
        if (so.n[k] > max_n)
            max_n = so.n[k];
    }
    if (n_all == 0) {
        sorted_free(&so);
        return 0;
    }
    best = malloc((max_n + 1) * sizeof(*best));
    queue = malloc((max_n + 1) * sizeof(*queue));
    plan->items = malloc(n_all * sizeof(*plan->items));
    /* At most one request per tag. */
    plan->reqs = malloc(n_all * sizeof(*plan->reqs));
    if (best == NULL || queue == NULL || plan->items == NULL || plan->reqs == NULL) {
        rv = VG_ENOMEM;
        goto err_after_alloc;
    }

    for (int k = 0; k < N_KINDS; k++) {
        const struct span *v = so.v[k];
        size_t n = so.n[k];
        if (n == 0)
            continue;
        rv = plan_kind(v, n, so.lim[k], best, queue);
        if (rv != 0) {
            vg_errf(errmsg, "internal error: no plan for %s",
                    vg_reg_kind_name(k));
            goto err_after_alloc;
        }
        /* The runs come out last first; write them backwards into their
         * final slots so requests stay in address order. */
        size_t k_reqs = best[n].reqs;
        size_t r = n_reqs + k_reqs;
        for (size_t i = n; i > 0; i = best[i].from) {
            size_t j = best[i].from;
            struct vg_plc_request *q = &plan->reqs[--r];
            q->kind = k;
            q->function = read_function(k);
            q->start = (uint16_t)v[j].s;
            q->count = (uint16_t)(v[i - 1].e - v[j].s + 1);
            q->first_item = plan->n_items + j;
            q->n_items = i - j;
            for (size_t m = j; m < i; m++) {
                plan->items[plan->n_items + m].tag = v[m].tag;
                plan->items[plan->n_items + m].pos = (uint16_t)(v[m].s - v[j].s);
            }
        }
        plan->n_items += n;
        n_reqs += k_reqs;
        plan->units_read += best[n].units;
    }
    plan->n_reqs = n_reqs;
    free(best);
    free(queue);
    sorted_free(&so);
    return 0;

err_after_alloc:
    free(best);
    free(queue);
    sorted_free(&so);
    vg_plc_plan_free(plan);
    return rv;
}
