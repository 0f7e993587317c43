/* Unit tests for node/plc/plc.h.
 *
 * The planner is checked against two brute forces on many seeded random
 * register maps: a breadth-first search over sets of served tags using every
 * possible request window (which assumes nothing about the shape of an
 * optimal plan) for the request count, and an enumeration of every
 * partition into consecutive runs for the registers read. Every plan is also
 * checked for its invariants (size limits, no split 32-bit tag, every tag
 * served exactly once at the right position, gaps within the limit).
 * Values are checked against hand-computed registers for every type and word
 * order, by encode/decode round trips, and for NaN/Inf as bad quality;
 * scaling both ways with its range errors; the deadband rule. Finally the
 * waterworks example is planned and its request counts reported as TAP
 * comments. The example's folder is the test's first argument. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>

#include "plc.h"

static const char *waterworks_dir;

/* ------------------------------------------------------------- helpers */

static uint64_t rng_state;

/* splitmix64: small, seedable, good enough to spread test cases. */
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint32_t rnd_below(uint32_t n)
{
    return (uint32_t)(rnd() % n);
}

static struct vg_tag tag_make(int plc, enum vg_reg_kind kind, uint32_t offset,
                              enum vg_dtype type)
{
    struct vg_tag t;
    memset(&t, 0, sizeof(t));
    t.name = "t";
    t.plc.index = plc;
    t.kind = kind;
    t.offset = offset;
    t.type = type;
    return t;
}

static bool bit_kind(enum vg_reg_kind k)
{
    return k == VG_REG_COIL || k == VG_REG_DISCRETE;
}

static uint32_t width(const struct vg_tag *t)
{
    return bit_kind(t->kind) ? 1 : vg_dtype_width(t->type);
}

/* Every property a plan must have, whatever its optimality. */
static void check_plan(const struct vg_tag *tags, size_t n_tags, int plc,
                       const struct vg_plc_plan_opts *o,
                       const struct vg_plc_plan *plan)
{
    static const uint8_t fc[] = {0x01, 0x02, 0x03, 0x04};
    size_t mine = 0;
    uint64_t units = 0;
    unsigned char *seen = calloc(n_tags ? n_tags : 1, 1);
    assert_non_null(seen);

    for (size_t i = 0; i < n_tags; i++)
        mine += tags[i].plc.index == plc;
    assert_int_equal(plan->n_items, mine);

    for (size_t r = 0; r < plan->n_reqs; r++) {
        const struct vg_plc_request *q = &plan->reqs[r];
        bool bits = bit_kind(q->kind);
        assert_int_equal(q->function, fc[q->kind]);
        assert_true(q->count >= 1);
        assert_true(q->count <= (bits ? o->max_bits : o->max_regs));
        assert_true(q->count <= (bits ? 2000 : 125));
        assert_true(q->n_items >= 1);
        assert_true(q->first_item + q->n_items <= plan->n_items);
        if (r > 0) {
            const struct vg_plc_request *p = &plan->reqs[r - 1];
            assert_true(p->kind < q->kind ||
                        (p->kind == q->kind &&
                         (uint32_t)p->start + p->count <= q->start));
        }
        units += q->count;
        uint32_t prev_end = 0;
        for (size_t m = 0; m < q->n_items; m++) {
            const struct vg_plc_item *it = &plan->items[q->first_item + m];
            assert_true(it->tag < n_tags);
            const struct vg_tag *t = &tags[it->tag];
            assert_int_equal(t->plc.index, plc);
            assert_int_equal(t->kind, q->kind);
            assert_false(seen[it->tag]);
            seen[it->tag] = 1;
            /* The whole tag, 32-bit ones included, lies in this response. */
            assert_int_equal(t->offset, (uint32_t)q->start + it->pos);
            assert_true((uint32_t)it->pos + width(t) <= q->count);
            if (m == 0) {
                assert_int_equal(it->pos, 0);
            } else {
                assert_true(it->pos >= prev_end);
                assert_true(it->pos - prev_end <=
                            (bits ? o->max_gap_bits : o->max_gap_regs));
            }
            prev_end = it->pos + width(t);
            if (m == q->n_items - 1)
                assert_int_equal(prev_end, q->count); /* no trailing waste */
        }
    }
    assert_true(plan->units_read == units);
    free(seen);
}

/* ------------------------------------------------ planner: brute force */

#define BF_MAX_ITEMS 12
#define BF_SPACE 64

struct bf_item {
    uint32_t s, e;
};

static bool run_ok(const struct bf_item *v, size_t from, size_t to,
                   uint32_t len, uint32_t gap)
{
    if (v[to].e - v[from].s + 1 > len)
        return false;
    for (size_t i = from + 1; i <= to; i++)
        if (v[i].s - v[i - 1].e - 1 > gap)
            return false;
    return true;
}

/* The fewest requests by breadth-first search over the sets of served
 * items, trying every window [a, a+len) of the address space: a window
 * serves the items wholly inside it, and is usable when the gaps between
 * those items are within the limit (unused registers before the first and
 * after the last would simply not be read). */
static int bf_min_windows(const struct bf_item *v, size_t n, uint32_t len,
                          uint32_t gap)
{
    uint32_t masks[BF_SPACE * BF_SPACE];
    size_t n_masks = 0;
    for (uint32_t a = 0; a < BF_SPACE; a++) {
        for (uint32_t l = 1; l <= len && a + l <= BF_SPACE; l++) {
            uint32_t m = 0;
            size_t first = n, last = 0;
            for (size_t i = 0; i < n; i++) {
                if (v[i].s >= a && v[i].e < a + l) {
                    m |= 1u << i;
                    if (first == n)
                        first = i;
                    last = i;
                }
            }
            if (m == 0 || !run_ok(v, first, last, len, gap))
                continue;
            masks[n_masks++] = m;
        }
    }
    uint32_t full = (1u << n) - 1;
    static int dist[1u << BF_MAX_ITEMS];
    static uint32_t queue[1u << BF_MAX_ITEMS];
    for (uint32_t i = 0; i <= full; i++)
        dist[i] = -1;
    size_t head = 0, tail = 0;
    dist[0] = 0;
    queue[tail++] = 0;
    while (head < tail) {
        uint32_t cur = queue[head++];
        if (cur == full)
            return dist[cur];
        for (size_t k = 0; k < n_masks; k++) {
            uint32_t nx = cur | masks[k];
            if (dist[nx] < 0) {
                dist[nx] = dist[cur] + 1;
                queue[tail++] = nx;
            }
        }
    }
    return -1;
}

/* The best (requests, registers) over every partition into consecutive
 * runs. */
static void bf_best_partition(const struct bf_item *v, size_t n, uint32_t len,
                              uint32_t gap, int *reqs, uint64_t *units)
{
    *reqs = -1;
    *units = 0;
    for (uint32_t breaks = 0; breaks < (1u << (n - 1)); breaks++) {
        int r = 0;
        uint64_t u = 0;
        bool ok = true;
        size_t from = 0;
        for (size_t i = 0; i < n && ok; i++) {
            if (i == n - 1 || (breaks >> i & 1)) {
                ok = run_ok(v, from, i, len, gap);
                r++;
                u += v[i].e - v[from].s + 1;
                from = i + 1;
            }
        }
        if (ok && (*reqs < 0 || r < *reqs || (r == *reqs && u < *units))) {
            *reqs = r;
            *units = u;
        }
    }
}

static void test_plan_brute_force(void **state)
{
    static const uint32_t gaps[] = {0, 1, 2, 3, 5, UINT32_MAX};
    (void)state;
    rng_state = 20240611;
    for (int round = 0; round < 600; round++) {
        enum vg_reg_kind kind = rnd_below(4);
        bool bits = bit_kind(kind);
        struct vg_tag tags[2 * BF_MAX_ITEMS];
        struct bf_item v[BF_MAX_ITEMS];
        size_t n = 0, n_tags = 0;
        uint32_t pos = rnd_below(4);
        size_t want = 1 + rnd_below(BF_MAX_ITEMS);
        while (n < want) {
            enum vg_dtype type =
                bits ? VG_DT_BOOL
                     : (rnd_below(3) == 0 ? VG_DT_FLOAT32 : VG_DT_INT16);
            uint32_t w = bits ? 1 : vg_dtype_width(type);
            if (pos + w > BF_SPACE)
                break;
            v[n] = (struct bf_item){pos, pos + w - 1};
            n++;
            tags[n_tags++] = tag_make(0, kind, pos, type);
            /* Another PLC's tag at the same address must not matter. */
            if (rnd_below(4) == 0)
                tags[n_tags++] = tag_make(1, kind, pos, type);
            uint32_t r = rnd_below(10);
            pos += w + (r < 4 ? 0 : r < 8 ? rnd_below(4) : rnd_below(12));
        }
        /* Shuffle: the planner must not rely on the input order. */
        for (size_t i = n_tags; i > 1; i--) {
            size_t j = rnd_below((uint32_t)i);
            struct vg_tag t = tags[i - 1];
            tags[i - 1] = tags[j];
            tags[j] = t;
        }

        struct vg_plc_plan_opts o;
        vg_plc_plan_opts_default(&o);
        uint32_t len = (bits ? 1 : 2) + rnd_below(11);
        uint32_t gap = gaps[rnd_below(6)];
        if (bits) {
            o.max_bits = len;
            o.max_gap_bits = gap;
        } else {
            o.max_regs = len;
            o.max_gap_regs = gap;
        }

        struct vg_plc_plan plan;
        char errmsg[VG_ERRMSG_SIZE];
        assert_int_equal(vg_plc_plan_build(tags, n_tags, 0, &o, &plan, errmsg),
                         0);
        check_plan(tags, n_tags, 0, &o, &plan);

        int bf = bf_min_windows(v, n, len, gap);
        int part_reqs;
        uint64_t part_units;
        bf_best_partition(v, n, len, gap, &part_reqs, &part_units);
        assert_int_equal(bf, part_reqs); /* Lemma 1 */
        assert_int_equal(plan.n_reqs, bf);
        assert_int_equal(vg_plc_plan_min_requests(tags, n_tags, 0, &o), bf);
        assert_true(plan.units_read == part_units);
        vg_plc_plan_free(&plan);
    }
}

/* Realistic sizes: thousands of tags of every kind and type, full-size
 * requests; the plan must reach the greedy minimum and keep its invariants. */
static void test_plan_large_random(void **state)
{
    (void)state;
    rng_state = 7;
    for (int round = 0; round < 40; round++) {
        size_t cap = 4000, n = 0;
        struct vg_tag *tags = calloc(cap, sizeof(*tags));
        assert_non_null(tags);
        for (enum vg_reg_kind k = 0; k < 4; k++) {
            uint32_t pos = rnd_below(100);
            uint32_t dense = 1 + rnd_below(40);
            while (n < cap && pos < 60000 && rnd_below(900) != 0) {
                enum vg_dtype type =
                    bit_kind(k) ? VG_DT_BOOL : (enum vg_dtype)(1 + rnd_below(5));
                tags[n] = tag_make((int)rnd_below(2), k, pos, type);
                tags[n].word_order = rnd_below(2);
                pos += width(&tags[n]) +
                       (rnd_below(dense) == 0 ? rnd_below(300) : rnd_below(3));
                n++;
            }
        }
        for (int plc = 0; plc < 2; plc++) {
            struct vg_plc_plan_opts o;
            vg_plc_plan_opts_default(&o);
            if (round % 2)
                o.max_gap_regs = o.max_gap_bits = UINT32_MAX;
            struct vg_plc_plan plan;
            assert_int_equal(vg_plc_plan_build(tags, n, plc, &o, &plan, NULL),
                             0);
            check_plan(tags, n, plc, &o, &plan);
            assert_int_equal(plan.n_reqs,
                             vg_plc_plan_min_requests(tags, n, plc, &o));
            vg_plc_plan_free(&plan);
        }
        free(tags);
    }
}

static size_t plan_count(const struct vg_tag *tags, size_t n,
                         const struct vg_plc_plan_opts *o, uint64_t *units)
{
    struct vg_plc_plan plan;
    assert_int_equal(vg_plc_plan_build(tags, n, 0, o, &plan, NULL), 0);
    check_plan(tags, n, 0, o, &plan);
    size_t r = plan.n_reqs;
    if (units)
        *units = plan.units_read;
    vg_plc_plan_free(&plan);
    return r;
}

static void test_plan_edges(void **state)
{
    static struct vg_tag tags[2100];
    struct vg_plc_plan_opts o;
    struct vg_plc_plan plan;
    char errmsg[VG_ERRMSG_SIZE];
    uint64_t units;
    (void)state;
    vg_plc_plan_opts_default(&o);

    /* Exactly 125 registers: one request; 126: two. */
    for (uint32_t i = 0; i < 126; i++)
        tags[i] = tag_make(0, VG_REG_HOLDING, i, VG_DT_UINT16);
    assert_int_equal(plan_count(tags, 125, &o, NULL), 1);
    assert_int_equal(plan_count(tags, 126, &o, NULL), 2);

    /* A float32 at 124..125 after 124 single registers does not fit the
     * first request and is not split: it goes whole into the second. */
    tags[124] = tag_make(0, VG_REG_HOLDING, 124, VG_DT_FLOAT32);
    assert_int_equal(vg_plc_plan_build(tags, 125, 0, &o, &plan, NULL), 0);
    assert_int_equal(plan.n_reqs, 2);
    assert_int_equal(plan.reqs[0].count, 124);
    assert_int_equal(plan.reqs[1].start, 124);
    assert_int_equal(plan.reqs[1].count, 2);
    vg_plc_plan_free(&plan);

    /* 2000 coils: one request; 2001: two. */
    for (uint32_t i = 0; i < 2001; i++)
        tags[i] = tag_make(0, VG_REG_COIL, i, VG_DT_BOOL);
    assert_int_equal(plan_count(tags, 2000, &o, NULL), 1);
    assert_int_equal(plan_count(tags, 2001, &o, NULL), 2);

    /* Gap limit (for PLCs that refuse unmapped addresses; the default is
     * any gap): 16 unused registers are bridged, 17 are not. */
    o.max_gap_regs = 16;
    o.max_gap_bits = 64;
    tags[0] = tag_make(0, VG_REG_INPUT, 0, VG_DT_INT16);
    tags[1] = tag_make(0, VG_REG_INPUT, 17, VG_DT_INT16);
    assert_int_equal(plan_count(tags, 2, &o, &units), 1);
    assert_true(units == 18);
    tags[1].offset = 18;
    assert_int_equal(plan_count(tags, 2, &o, &units), 2);
    assert_true(units == 2);
    /* Bits: 64 bridged, 65 not. */
    tags[0] = tag_make(0, VG_REG_DISCRETE, 100, VG_DT_BOOL);
    tags[1] = tag_make(0, VG_REG_DISCRETE, 165, VG_DT_BOOL);
    assert_int_equal(plan_count(tags, 2, &o, NULL), 1);
    tags[1].offset = 166;
    assert_int_equal(plan_count(tags, 2, &o, NULL), 2);

    /* Same count, fewer registers: with 10-register requests, the greedy
     * split [0..9] + [10] reads 11 registers, [0..1] + [7..10] only 6. */
    o.max_regs = 10;
    o.max_gap_regs = UINT32_MAX;
    static const uint32_t at[] = {0, 1, 7, 8, 9, 10};
    for (size_t i = 0; i < 6; i++)
        tags[i] = tag_make(0, VG_REG_HOLDING, at[i], VG_DT_UINT16);
    assert_int_equal(plan_count(tags, 6, &o, &units), 2);
    assert_true(units == 6);
    vg_plc_plan_opts_default(&o);

    /* Kinds are planned separately, in the order co, di, hr, ir. */
    tags[0] = tag_make(0, VG_REG_INPUT, 0, VG_DT_INT16);
    tags[1] = tag_make(0, VG_REG_HOLDING, 0, VG_DT_INT16);
    tags[2] = tag_make(0, VG_REG_COIL, 0, VG_DT_BOOL);
    tags[3] = tag_make(0, VG_REG_DISCRETE, 0, VG_DT_BOOL);
    assert_int_equal(vg_plc_plan_build(tags, 4, 0, NULL, &plan, NULL), 0);
    assert_int_equal(plan.n_reqs, 4);
    for (size_t r = 0; r < 4; r++) {
        assert_int_equal(plan.reqs[r].kind, (enum vg_reg_kind)r);
        assert_int_equal(plan.reqs[r].function, r + 1);
    }
    vg_plc_plan_free(&plan);

    /* No tags of this PLC: an empty plan. */
    assert_int_equal(vg_plc_plan_build(tags, 4, 5, NULL, &plan, NULL), 0);
    assert_int_equal(plan.n_reqs, 0);
    assert_int_equal(vg_plc_plan_min_requests(tags, 4, 5, NULL), 0);
    vg_plc_plan_free(&plan);

    /* Rejected input: overlap, past 65535, limits out of range. */
    tags[0] = tag_make(0, VG_REG_HOLDING, 10, VG_DT_INT32);
    tags[1] = tag_make(0, VG_REG_HOLDING, 11, VG_DT_INT16);
    assert_int_equal(vg_plc_plan_build(tags, 2, 0, NULL, &plan, errmsg),
                     VG_EINVAL);
    assert_non_null(strstr(errmsg, "overlap"));
    assert_int_equal(plan.n_reqs, 0);
    assert_int_equal(vg_plc_plan_min_requests(tags, 2, 0, NULL), SIZE_MAX);
    tags[0] = tag_make(0, VG_REG_HOLDING, 65535, VG_DT_FLOAT32);
    assert_int_equal(vg_plc_plan_build(tags, 1, 0, NULL, &plan, errmsg),
                     VG_EINVAL);
    tags[0].type = VG_DT_UINT16;
    assert_int_equal(plan_count(tags, 1, &o, NULL), 1);
    o.max_regs = 126;
    assert_int_equal(vg_plc_plan_build(tags, 1, 0, &o, &plan, errmsg),
                     VG_EINVAL);
    o.max_regs = 1; /* a 32-bit tag could never be read */
    assert_int_equal(vg_plc_plan_build(tags, 1, 0, &o, &plan, errmsg),
                     VG_EINVAL);
    vg_plc_plan_opts_default(&o);
    o.max_bits = 2001;
    assert_int_equal(vg_plc_plan_build(tags, 1, 0, &o, &plan, errmsg),
                     VG_EINVAL);
}

/* --------------------------------------------------------------- values */

static double decode(enum vg_dtype type, enum vg_word_order wo, uint16_t r0,
                     uint16_t r1)
{
    uint16_t regs[2] = {r0, r1};
    double v = -12345.0;
    assert_int_equal(vg_plc_regs_decode(type, wo, regs, &v), VG_PLC_GOOD);
    return v;
}

static void assert_bad(enum vg_word_order wo, uint16_t r0, uint16_t r1)
{
    uint16_t regs[2] = {r0, r1};
    double v = 42.0;
    assert_int_equal(vg_plc_regs_decode(VG_DT_FLOAT32, wo, regs, &v),
                     VG_PLC_BAD_VALUE);
    assert_true(v == 42.0); /* never passed on */
}

static void test_decode_hand(void **state)
{
    (void)state;
    assert_true(decode(VG_DT_INT16, VG_WO_BIG, 0x0000, 0) == 0);
    assert_true(decode(VG_DT_INT16, VG_WO_BIG, 0x7FFF, 0) == 32767);
    assert_true(decode(VG_DT_INT16, VG_WO_BIG, 0x8000, 0) == -32768);
    assert_true(decode(VG_DT_INT16, VG_WO_BIG, 0xFFFF, 0) == -1);
    assert_true(decode(VG_DT_INT16, VG_WO_BIG, 0xFF38, 0) == -200);
    assert_true(decode(VG_DT_UINT16, VG_WO_BIG, 0xFFFF, 0) == 65535);
    assert_true(decode(VG_DT_UINT16, VG_WO_BIG, 0x8000, 0) == 32768);

    /* 65538 = 0x0001 0002; -2 = 0xFFFF FFFE. */
    assert_true(decode(VG_DT_UINT32, VG_WO_BIG, 0x0001, 0x0002) == 65538);
    assert_true(decode(VG_DT_UINT32, VG_WO_LITTLE, 0x0002, 0x0001) == 65538);
    assert_true(decode(VG_DT_UINT32, VG_WO_BIG, 0xFFFF, 0xFFFF) == 4294967295.0);
    assert_true(decode(VG_DT_INT32, VG_WO_BIG, 0xFFFF, 0xFFFE) == -2);
    assert_true(decode(VG_DT_INT32, VG_WO_LITTLE, 0xFFFE, 0xFFFF) == -2);
    assert_true(decode(VG_DT_INT32, VG_WO_BIG, 0x8000, 0x0000) == -2147483648.0);
    assert_true(decode(VG_DT_INT32, VG_WO_LITTLE, 0xFFFF, 0x7FFF) == 2147483647.0);
    /* 100000 = 0x0001 86A0 */
    assert_true(decode(VG_DT_INT32, VG_WO_BIG, 0x0001, 0x86A0) == 100000);
    assert_true(decode(VG_DT_INT32, VG_WO_LITTLE, 0x86A0, 0x0001) == 100000);

    /* float32: 1.5 = 0x3FC00000, -2 = 0xC0000000, 100.25 = 0x42C88000,
     * 0.1f = 0x3DCCCCCD. */
    assert_true(decode(VG_DT_FLOAT32, VG_WO_BIG, 0x3FC0, 0x0000) == 1.5);
    assert_true(decode(VG_DT_FLOAT32, VG_WO_LITTLE, 0x0000, 0x3FC0) == 1.5);
    assert_true(decode(VG_DT_FLOAT32, VG_WO_BIG, 0xC000, 0x0000) == -2.0);
    assert_true(decode(VG_DT_FLOAT32, VG_WO_BIG, 0x42C8, 0x8000) == 100.25);
    assert_true(decode(VG_DT_FLOAT32, VG_WO_LITTLE, 0x8000, 0x42C8) == 100.25);
    assert_true(decode(VG_DT_FLOAT32, VG_WO_BIG, 0x3DCC, 0xCCCD) == (double)0.1f);
    assert_true(decode(VG_DT_FLOAT32, VG_WO_BIG, 0x7F7F, 0xFFFF) == (double)3.40282346638528859811704183484516925e+38f);

    /* NaN and infinities, in both word orders, are bad quality. */
    assert_bad(VG_WO_BIG, 0x7FC0, 0x0000);   /* quiet NaN */
    assert_bad(VG_WO_LITTLE, 0x0000, 0x7FC0);
    assert_bad(VG_WO_BIG, 0x7F80, 0x0001);   /* signalling NaN */
    assert_bad(VG_WO_LITTLE, 0x0001, 0x7F80);
    assert_bad(VG_WO_BIG, 0xFFC0, 0x0000);   /* negative NaN */
    assert_bad(VG_WO_BIG, 0x7F80, 0x0000);   /* +Inf */
    assert_bad(VG_WO_LITTLE, 0x0000, 0x7F80);
    assert_bad(VG_WO_BIG, 0xFF80, 0x0000);   /* -Inf */
    assert_bad(VG_WO_LITTLE, 0x0000, 0xFF80);
    /* ... while a little-order pair whose words would be NaN in big order
     * is a plain number. */
    assert_true(decode(VG_DT_FLOAT32, VG_WO_LITTLE, 0x7FC0, 0x0000) != 0);
}

static void test_tag_decode(void **state)
{
    (void)state;
    /* An S7 analog input 0..27648 = 0..100 %, at position 3 of a response. */
    struct vg_tag t = tag_make(0, VG_REG_INPUT, 103, VG_DT_INT16);
    t.scaled = true;
    t.raw_min = 0;
    t.raw_max = 27648;
    t.eng_min = 0;
    t.eng_max = 100;
    uint16_t regs[6] = {0, 0, 0, 13824, 0x3FC0, 0x0000};
    double v = 0;
    assert_int_equal(vg_plc_tag_decode(&t, regs, NULL, 3, &v), VG_PLC_GOOD);
    assert_true(v == 50.0);

    struct vg_tag f = tag_make(0, VG_REG_HOLDING, 104, VG_DT_FLOAT32);
    assert_int_equal(vg_plc_tag_decode(&f, regs, NULL, 4, &v), VG_PLC_GOOD);
    assert_true(v == 1.5);
    regs[4] = 0x7F80;
    v = 7;
    assert_int_equal(vg_plc_tag_decode(&f, regs, NULL, 4, &v),
                     VG_PLC_BAD_VALUE);
    assert_true(v == 7);

    struct vg_tag b = tag_make(0, VG_REG_COIL, 12, VG_DT_BOOL);
    uint8_t bits[4] = {0, 1, 0, 1};
    assert_int_equal(vg_plc_tag_decode(&b, NULL, bits, 1, &v), VG_PLC_GOOD);
    assert_true(v == 1);
    assert_int_equal(vg_plc_tag_decode(&b, NULL, bits, 2, &v), VG_PLC_GOOD);
    assert_true(v == 0);
}

/* Encode RAW as TYPE/WO and decode it again. */
static void round_trip(enum vg_dtype type, enum vg_word_order wo, double raw)
{
    uint16_t regs[2] = {0xDEAD, 0xBEEF};
    unsigned n = 0;
    char errmsg[VG_ERRMSG_SIZE];
    double back = -1;
    assert_int_equal(vg_plc_regs_encode(type, wo, raw, regs, &n, errmsg), 0);
    assert_int_equal(n, vg_dtype_width(type));
    assert_int_equal(vg_plc_regs_decode(type, wo, regs, &back), VG_PLC_GOOD);
    if (type == VG_DT_FLOAT32)
        assert_true(back == (double)(float)raw);
    else
        assert_true(back == raw);
}

static void test_round_trips(void **state)
{
    static const struct {
        enum vg_dtype type;
        double lo, hi;
    } types[] = {
        {VG_DT_INT16, -32768.0, 32767.0},
        {VG_DT_UINT16, 0, 65535.0},
        {VG_DT_INT32, -2147483648.0, 2147483647.0},
        {VG_DT_UINT32, 0, 4294967295.0},
        {VG_DT_FLOAT32, -3.4e38, 3.4e38},
    };
    (void)state;
    rng_state = 99;
    for (size_t k = 0; k < sizeof(types) / sizeof(types[0]); k++) {
        for (int wo = VG_WO_BIG; wo <= VG_WO_LITTLE; wo++) {
            round_trip(types[k].type, wo, types[k].lo);
            round_trip(types[k].type, wo, types[k].hi);
            round_trip(types[k].type, wo, 0);
            round_trip(types[k].type, wo, 1);
            if (types[k].lo < 0)
                round_trip(types[k].type, wo, -1);
            for (int i = 0; i < 2000; i++) {
                double x = types[k].lo +
                           (types[k].hi - types[k].lo) *
                               ((double)(rnd() >> 11) / 9007199254740992.0);
                if (types[k].type != VG_DT_FLOAT32)
                    x = floor(x);
                else if (i % 2)
                    x = ldexp((double)(int32_t)rnd(), -(int)rnd_below(60));
                round_trip(types[k].type, wo, x);
            }
        }
    }

    /* Hand-computed encodings. */
    uint16_t regs[2];
    unsigned n;
    assert_int_equal(vg_plc_regs_encode(VG_DT_FLOAT32, VG_WO_BIG, 1.5, regs, &n, NULL), 0);
    assert_int_equal(regs[0], 0x3FC0);
    assert_int_equal(regs[1], 0x0000);
    assert_int_equal(vg_plc_regs_encode(VG_DT_FLOAT32, VG_WO_LITTLE, 1.5, regs, &n, NULL), 0);
    assert_int_equal(regs[0], 0x0000);
    assert_int_equal(regs[1], 0x3FC0);
    assert_int_equal(vg_plc_regs_encode(VG_DT_INT32, VG_WO_BIG, -2, regs, &n, NULL), 0);
    assert_int_equal(regs[0], 0xFFFF);
    assert_int_equal(regs[1], 0xFFFE);
    assert_int_equal(vg_plc_regs_encode(VG_DT_UINT32, VG_WO_LITTLE, 65538, regs, &n, NULL), 0);
    assert_int_equal(regs[0], 0x0002);
    assert_int_equal(regs[1], 0x0001);
    assert_int_equal(vg_plc_regs_encode(VG_DT_INT16, VG_WO_BIG, -200, regs, &n, NULL), 0);
    assert_int_equal(n, 1);
    assert_int_equal(regs[0], 0xFF38);

    /* What does not fit is refused. */
    char errmsg[VG_ERRMSG_SIZE];
    assert_int_equal(vg_plc_regs_encode(VG_DT_INT16, VG_WO_BIG, 32768, regs, &n, errmsg), VG_EINVAL);
    assert_int_equal(vg_plc_regs_encode(VG_DT_UINT16, VG_WO_BIG, -1, regs, &n, errmsg), VG_EINVAL);
    assert_int_equal(vg_plc_regs_encode(VG_DT_UINT16, VG_WO_BIG, 1.5, regs, &n, errmsg), VG_EINVAL);
    assert_int_equal(vg_plc_regs_encode(VG_DT_UINT32, VG_WO_BIG, 4294967296.0, regs, &n, errmsg), VG_EINVAL);
    assert_int_equal(vg_plc_regs_encode(VG_DT_INT32, VG_WO_BIG, -2147483649.0, regs, &n, errmsg), VG_EINVAL);
    assert_int_equal(vg_plc_regs_encode(VG_DT_FLOAT32, VG_WO_BIG, 1e39, regs, &n, errmsg), VG_EINVAL);
    assert_int_equal(vg_plc_regs_encode(VG_DT_FLOAT32, VG_WO_BIG, NAN, regs, &n, errmsg), VG_EINVAL);
    assert_int_equal(vg_plc_regs_encode(VG_DT_FLOAT32, VG_WO_BIG, INFINITY, regs, &n, errmsg), VG_EINVAL);
    assert_int_equal(vg_plc_regs_encode(VG_DT_BOOL, VG_WO_BIG, 1, regs, &n, errmsg), VG_EINVAL);
}

static struct vg_tag scaled_tag(enum vg_dtype type, double raw_min,
                                double raw_max, double eng_min, double eng_max)
{
    struct vg_tag t = tag_make(0, VG_REG_HOLDING, 40, type);
    t.name = "sp";
    t.scaled = true;
    t.raw_min = raw_min;
    t.raw_max = raw_max;
    t.eng_min = eng_min;
    t.eng_max = eng_max;
    return t;
}

static void to_raw_ok(const struct vg_tag *t, double eng, double want)
{
    double raw = -12345;
    char errmsg[VG_ERRMSG_SIZE];
    assert_int_equal(vg_plc_scale_to_raw(t, eng, &raw, errmsg), 0);
    assert_true(raw == want);
}

static void to_raw_bad(const struct vg_tag *t, double eng)
{
    double raw = -12345;
    char errmsg[VG_ERRMSG_SIZE] = "";
    assert_int_equal(vg_plc_scale_to_raw(t, eng, &raw, errmsg), VG_EINVAL);
    assert_true(raw == -12345);
    assert_true(errmsg[0] != '\0');
}

static void test_scaling(void **state)
{
    (void)state;
    struct vg_tag s7 = scaled_tag(VG_DT_INT16, 0, 27648, 0, 100);
    assert_true(vg_plc_scale_to_eng(&s7, 0) == 0);
    assert_true(vg_plc_scale_to_eng(&s7, 27648) == 100);
    assert_true(vg_plc_scale_to_eng(&s7, 13824) == 50);
    assert_true(vg_plc_scale_to_eng(&s7, -27648) == -100); /* extrapolates */
    to_raw_ok(&s7, 50, 13824);
    to_raw_ok(&s7, 37, 10230);   /* 10229.76 rounds up */
    to_raw_ok(&s7, 37.001, 10230);
    to_raw_ok(&s7, 118, 32625);  /* 32624.64 */
    to_raw_bad(&s7, 118.6);      /* 32789.5: beyond int16 */
    to_raw_bad(&s7, -118.6);
    to_raw_bad(&s7, NAN);
    to_raw_bad(&s7, INFINITY);

    /* A falling characteristic (raw_min > raw_max) works both ways. */
    struct vg_tag inv = scaled_tag(VG_DT_UINT16, 1000, 0, 0, 100);
    assert_true(vg_plc_scale_to_eng(&inv, 250) == 75);
    to_raw_ok(&inv, 75, 250);
    to_raw_ok(&inv, 100, 0);
    to_raw_bad(&inv, 100.06); /* raw -0.6 rounds to -1 */
    to_raw_ok(&inv, 100.04, 0); /* raw -0.4 rounds to 0 */

    /* Unscaled: the value is the raw value, rounded, range-checked. */
    struct vg_tag i16 = tag_make(0, VG_REG_HOLDING, 0, VG_DT_INT16);
    assert_true(vg_plc_scale_to_eng(&i16, -5) == -5);
    to_raw_ok(&i16, 32767.4, 32767);
    to_raw_bad(&i16, 32767.5);
    to_raw_ok(&i16, -32768.4, -32768);
    to_raw_bad(&i16, -32768.5);
    to_raw_ok(&i16, 2.5, 3);  /* halves away from zero */
    to_raw_ok(&i16, -2.5, -3);
    struct vg_tag u16 = tag_make(0, VG_REG_HOLDING, 0, VG_DT_UINT16);
    to_raw_ok(&u16, 65535, 65535);
    to_raw_bad(&u16, 65536);
    to_raw_bad(&u16, -1);
    struct vg_tag i32 = tag_make(0, VG_REG_HOLDING, 0, VG_DT_INT32);
    to_raw_ok(&i32, -2147483648.0, -2147483648.0);
    to_raw_bad(&i32, 2147483648.0);
    struct vg_tag u32 = tag_make(0, VG_REG_HOLDING, 0, VG_DT_UINT32);
    to_raw_ok(&u32, 4294967295.0, 4294967295.0);
    to_raw_bad(&u32, 4294967295.5);
    struct vg_tag f32 = tag_make(0, VG_REG_HOLDING, 0, VG_DT_FLOAT32);
    to_raw_ok(&f32, 2.75, 2.75); /* not rounded */
    to_raw_ok(&f32, -3e38, -3e38);
    to_raw_bad(&f32, 1e39);
    struct vg_tag fs = scaled_tag(VG_DT_FLOAT32, 0, 10, 0, 1);
    to_raw_ok(&fs, 0.25, 2.5);
    struct vg_tag b = tag_make(0, VG_REG_COIL, 0, VG_DT_BOOL);
    to_raw_ok(&b, 0, 0);
    to_raw_ok(&b, 1, 1);
    to_raw_bad(&b, 0.6); /* a bool is not rounded */
    to_raw_bad(&b, 2);
    to_raw_bad(&b, -1);
}

static void test_write_encode(void **state)
{
    struct vg_plc_write w;
    char errmsg[VG_ERRMSG_SIZE];
    (void)state;

    struct vg_tag b = tag_make(0, VG_REG_COIL, 17, VG_DT_BOOL);
    assert_int_equal(vg_plc_write_encode(&b, 1, &w, errmsg), 0);
    assert_int_equal(w.function, VG_PLC_FC_WRITE_COIL);
    assert_int_equal(w.addr, 17);
    assert_int_equal(w.count, 1);
    assert_true(w.bit);
    assert_int_equal(vg_plc_write_encode(&b, 0, &w, errmsg), 0);
    assert_false(w.bit);

    struct vg_tag s7 = scaled_tag(VG_DT_INT16, 0, 27648, 0, 100);
    assert_int_equal(vg_plc_write_encode(&s7, 50, &w, errmsg), 0);
    assert_int_equal(w.function, VG_PLC_FC_WRITE_REGISTER);
    assert_int_equal(w.addr, 40);
    assert_int_equal(w.count, 1);
    assert_int_equal(w.regs[0], 13824);
    assert_int_equal(vg_plc_write_encode(&s7, 200, &w, errmsg), VG_EINVAL);

    struct vg_tag f = tag_make(0, VG_REG_HOLDING, 10, VG_DT_FLOAT32);
    for (int wo = VG_WO_BIG; wo <= VG_WO_LITTLE; wo++) {
        f.word_order = wo;
        assert_int_equal(vg_plc_write_encode(&f, 1.5, &w, errmsg), 0);
        assert_int_equal(w.function, VG_PLC_FC_WRITE_REGISTERS);
        assert_int_equal(w.count, 2);
        assert_int_equal(w.regs[wo == VG_WO_BIG ? 0 : 1], 0x3FC0);
        assert_int_equal(w.regs[wo == VG_WO_BIG ? 1 : 0], 0x0000);
        double v = 0;
        assert_int_equal(vg_plc_tag_decode(&f, w.regs, NULL, 0, &v),
                         VG_PLC_GOOD);
        assert_true(v == 1.5);
    }

    /* Read-only kinds cannot be written. */
    struct vg_tag ir = tag_make(0, VG_REG_INPUT, 0, VG_DT_INT16);
    assert_int_equal(vg_plc_write_encode(&ir, 1, &w, errmsg), VG_EINVAL);
    struct vg_tag di = tag_make(0, VG_REG_DISCRETE, 0, VG_DT_BOOL);
    assert_int_equal(vg_plc_write_encode(&di, 1, &w, errmsg), VG_EINVAL);
    assert_non_null(strstr(errmsg, "cannot be written"));
}

/* ------------------------------------------------------------- deadband */

static void test_deadband(void **state)
{
    (void)state;
    struct vg_plc_reported last = {0};
    /* The first reading is always reported, even a bad one. */
    assert_true(vg_plc_deadband_report(&last, 5, 1, VG_PLC_GOOD));
    assert_true(vg_plc_deadband_report(&last, 5, 0, VG_PLC_BAD_COMM));

    last = (struct vg_plc_reported){true, VG_PLC_GOOD, 10};
    /* Deadband 0: every change, but not a repeat. */
    assert_false(vg_plc_deadband_report(&last, 0, 10, VG_PLC_GOOD));
    assert_true(vg_plc_deadband_report(&last, 0, 10.000001, VG_PLC_GOOD));
    assert_true(vg_plc_deadband_report(&last, 0, 9.999999, VG_PLC_GOOD));
    /* Deadband 0.5: strictly more than 0.5 away from the last report. */
    assert_false(vg_plc_deadband_report(&last, 0.5, 10.5, VG_PLC_GOOD));
    assert_false(vg_plc_deadband_report(&last, 0.5, 9.5, VG_PLC_GOOD));
    assert_false(vg_plc_deadband_report(&last, 0.5, 10.25, VG_PLC_GOOD));
    assert_true(vg_plc_deadband_report(&last, 0.5, 10.51, VG_PLC_GOOD));
    assert_true(vg_plc_deadband_report(&last, 0.5, 9.49, VG_PLC_GOOD));
    /* A quality change is always reported, whatever the value. */
    assert_true(vg_plc_deadband_report(&last, 0.5, 10, VG_PLC_BAD_COMM));
    assert_true(vg_plc_deadband_report(&last, 0.5, 10, VG_PLC_BAD_VALUE));
    last = (struct vg_plc_reported){true, VG_PLC_BAD_COMM, 0};
    assert_false(vg_plc_deadband_report(&last, 0.5, 99, VG_PLC_BAD_COMM));
    assert_true(vg_plc_deadband_report(&last, 0.5, 0, VG_PLC_BAD_VALUE));
    assert_true(vg_plc_deadband_report(&last, 0.5, 0, VG_PLC_GOOD));

    /* A slow drift is reported once it has moved beyond the deadband from
     * the last *reported* value, not from the last reading. */
    last = (struct vg_plc_reported){true, VG_PLC_GOOD, 0};
    int reports = 0;
    for (int i = 1; i <= 100; i++) {
        double v = i * 0.1;
        if (vg_plc_deadband_report(&last, 1.0, v, VG_PLC_GOOD)) {
            last.value = v;
            reports++;
        }
    }
    assert_true(reports >= 8 && reports <= 10);
}

/* ------------------------------------------------------------ waterworks */

static void test_waterworks(void **state)
{
    struct vg_project_files fs = {0};
    struct vg_diags d;
    char errmsg[VG_ERRMSG_SIZE];
    (void)state;

    assert_non_null(waterworks_dir);
    assert_int_equal(vg_project_files_read_dir(&fs, waterworks_dir, errmsg), 0);
    vg_diags_init(&d);
    struct vg_project *p = vg_project_parse(&fs, &d);
    assert_non_null(p);
    assert_int_equal(d.n, 0);
    assert_true(p->n_plcs >= 2);

    size_t total = 0, total_min = 0;
    for (size_t i = 0; i < p->n_plcs; i++) {
        struct vg_plc_plan_opts o, any;
        struct vg_plc_plan plan, plan_any;
        vg_plc_plan_opts_default(&o);
        any = o;
        any.max_gap_regs = any.max_gap_bits = UINT32_MAX;

        assert_int_equal(vg_plc_plan_build(p->tags, p->n_tags, (int)i, &o,
                                           &plan, errmsg), 0);
        check_plan(p->tags, p->n_tags, (int)i, &o, &plan);
        size_t min = vg_plc_plan_min_requests(p->tags, p->n_tags, (int)i, &o);
        assert_int_equal(plan.n_reqs, min);

        assert_int_equal(vg_plc_plan_build(p->tags, p->n_tags, (int)i, &any,
                                           &plan_any, errmsg), 0);
        check_plan(p->tags, p->n_tags, (int)i, &any, &plan_any);
        size_t min_any =
            vg_plc_plan_min_requests(p->tags, p->n_tags, (int)i, &any);
        assert_int_equal(plan_any.n_reqs, min_any);
        assert_true(min_any <= min);

        size_t per_kind[4] = {0};
        for (size_t r = 0; r < plan.n_reqs; r++)
            per_kind[plan.reqs[r].kind]++;
        printf("# %s: %zu requests per cycle, minimum %zu (max gap %u "
               "registers / %u bits; co %zu, di %zu, hr %zu, ir %zu), "
               "%zu tags, %llu registers+bits read; with unbounded gaps "
               "%zu requests (minimum %zu), %llu read\n",
               p->plcs[i].name, plan.n_reqs, min, (unsigned)o.max_gap_regs,
               (unsigned)o.max_gap_bits, per_kind[0], per_kind[1],
               per_kind[2], per_kind[3], plan.n_items,
               (unsigned long long)plan.units_read, plan_any.n_reqs, min_any,
               (unsigned long long)plan_any.units_read);
        total += plan.n_reqs;
        total_min += min;
        vg_plc_plan_free(&plan);
        vg_plc_plan_free(&plan_any);
    }
    printf("# waterworks: %zu requests per cycle, minimum %zu\n", total,
           total_min);
    fflush(stdout);

    vg_project_free(p);
    vg_diags_free(&d);
    vg_project_files_free(&fs);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_brute_force),
        cmocka_unit_test(test_plan_large_random),
        cmocka_unit_test(test_plan_edges),
        cmocka_unit_test(test_decode_hand),
        cmocka_unit_test(test_tag_decode),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_scaling),
        cmocka_unit_test(test_write_encode),
        cmocka_unit_test(test_deadband),
        cmocka_unit_test(test_waterworks),
    };
    waterworks_dir = argc > 1 ? argv[1] : NULL;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
