/* Unit tests for the archive recorder (node/archive/archive.h): samples of
 * tags archived on change and cyclically, in simulated time; the bounded
 * buffer; batches taken as HISTORY_SAMPLES bodies, checked in their bytes
 * (tags sorted by name) and applied to a state machine whose history must
 * then answer exactly the recorded samples. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "../../../config/project.h"
#include "../../../node/plc/plc.h"
#include "../../../replication/replication.h"
#include "archive.h"

/* Tags in project order; names deliberately not in name order. */
enum { T_FLOW, T_LEVEL, T_TEMP, T_NONE, T_FAST, N_TAGS };

struct fx {
    struct vg_project pr;
    struct vg_tag tags[N_TAGS];
    struct vg_archive_recorder *r;
    /* Readings for cyclic archiving: has[] false = none yet. */
    bool has[N_TAGS];
    double value[N_TAGS];
    bool bad[N_TAGS];
};

static int setup(void **state)
{
    static const struct {
        const char *name;
        enum vg_archive archive;
        unsigned period_s;
    } defs[N_TAGS] = {
        [T_FLOW] = {"b.flow", VG_ARCHIVE_CHANGE, 0},
        [T_LEVEL] = {"a.level", VG_ARCHIVE_CHANGE, 0},
        [T_TEMP] = {"c.temp", VG_ARCHIVE_CYCLIC, 2},
        [T_NONE] = {"d.none", VG_ARCHIVE_NONE, 0},
        [T_FAST] = {"e.fast", VG_ARCHIVE_CYCLIC, 1},
    };
    struct fx *x = calloc(1, sizeof *x);
    assert_non_null(x);
    for (int i = 0; i < N_TAGS; i++) {
        x->tags[i].name = (char *)defs[i].name;
        x->tags[i].archive = defs[i].archive;
        x->tags[i].archive_period_s = defs[i].period_s;
    }
    x->pr.tags = x->tags;
    x->pr.n_tags = N_TAGS;
    x->r = vg_archive_recorder_new(100);
    assert_non_null(x->r);
    assert_int_equal(vg_archive_recorder_start(x->r, &x->pr), VG_OK);
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    struct fx *x = *state;
    vg_archive_recorder_free(x->r);
    free(x);
    return 0;
}

static bool reading(void *arg, uint32_t tag, double *value, bool *bad)
{
    struct fx *x = arg;
    assert_true(tag < N_TAGS);
    if (!x->has[tag]) {
        return false;
    }
    *value = x->value[tag];
    *bad = x->bad[tag];
    return true;
}

static void change(struct fx *x, uint32_t tag, uint64_t t, double v,
                   enum vg_plc_quality quality)
{
    struct vg_plc_change c = {.tag = tag, .quality = quality, .value = v, .t_ms = t};
    vg_archive_recorder_changed(x->r, &c, 1);
}

static size_t buffered(struct fx *x)
{
    struct vg_archive_recorder_stats st;
    vg_archive_recorder_stats(x->r, &st);
    return st.buffered;
}

/* A decoded sample of a body: the tag's name, time, value, bad. */
struct got {
    char name[32];
    uint64_t t;
    double v;
    bool bad;
};

static uint64_t get_le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

/* Take up to MAX samples and decode the body as replication.h lays it out;
 * the names must rise strictly. Returns how many samples, into OUT. */
static size_t take(struct fx *x, size_t max, struct got *out)
{
    unsigned char *body;
    size_t len, n, n_tags, off = 12;
    char names[N_TAGS][32];

    assert_int_equal(vg_archive_recorder_take(x->r, max, &body, &len, &n), VG_OK);
    if (n == 0) {
        assert_null(body);
        return 0;
    }
    n_tags = (size_t)get_le(body + 8, 4);
    assert_true(n_tags >= 1 && n_tags <= N_TAGS);
    for (size_t j = 0; j < n_tags; j++) {
        size_t nl = (size_t)get_le(body + off, 2);
        assert_true(nl > 0 && nl < 32);
        memcpy(names[j], body + off + 2, nl);
        names[j][nl] = '\0';
        off += 2 + nl;
        if (j > 0) {
            assert_true(strcmp(names[j - 1], names[j]) < 0);
        }
    }
    assert_int_equal(len - off, n * VG_HISTORY_SAMPLE_SIZE);
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p = body + off + i * VG_HISTORY_SAMPLE_SIZE;
        uint32_t idx = (uint32_t)get_le(p, 4);
        uint64_t bits = get_le(p + 8, 8);
        assert_true(idx < n_tags);
        snprintf(out[i].name, sizeof out[i].name, "%s", names[idx]);
        out[i].t = get_le(body, 8) + get_le(p + 4, 4);
        memcpy(&out[i].v, &bits, sizeof bits);
        out[i].bad = p[16] != 0;
    }
    free(body);
    return n;
}

/* Only tags archived on change get a sample per change; a bad reading is
 * archived bad with value 0; unknown tags are ignored. */
static void test_changes(void **state)
{
    struct fx *x = *state;
    struct vg_plc_change v[] = {
        {.tag = T_FLOW, .quality = VG_PLC_GOOD, .value = 1.5, .t_ms = 1000},
        {.tag = T_LEVEL, .quality = VG_PLC_GOOD, .value = 2.5, .t_ms = 1001},
        {.tag = T_TEMP, .quality = VG_PLC_GOOD, .value = 3.5, .t_ms = 1002},
        {.tag = T_NONE, .quality = VG_PLC_GOOD, .value = 4.5, .t_ms = 1003},
        {.tag = N_TAGS + 7, .quality = VG_PLC_GOOD, .value = 9, .t_ms = 1004},
        {.tag = T_FLOW, .quality = VG_PLC_BAD_COMM, .value = 7.0, .t_ms = 1005},
    };
    struct got g[8];

    vg_archive_recorder_changed(x->r, v, sizeof v / sizeof v[0]);
    assert_int_equal(buffered(x), 3);
    assert_int_equal(take(x, 100, g), 3);
    assert_string_equal(g[0].name, "b.flow");
    assert_true(g[0].t == 1000 && g[0].v == 1.5 && !g[0].bad);
    assert_string_equal(g[1].name, "a.level");
    assert_true(g[1].t == 1001 && g[1].v == 2.5 && !g[1].bad);
    assert_string_equal(g[2].name, "b.flow");
    assert_true(g[2].t == 1005 && g[2].v == 0.0 && g[2].bad);
    assert_int_equal(buffered(x), 0);
    assert_int_equal(take(x, 100, g), 0);

    /* Stopped: nothing is recorded. */
    vg_archive_recorder_stop(x->r);
    assert_null(vg_archive_recorder_project(x->r));
    change(x, T_FLOW, 2000, 1, VG_PLC_GOOD);
    assert_int_equal(buffered(x), 0);
}

/* One sample per period slot of the wall clock, stamped now; none before a
 * reading (the slot stays open until one comes); slots skipped are not
 * made up. */
static void test_cyclic_slots(void **state)
{
    struct fx *x = *state;
    struct got g[16];

    x->has[T_TEMP] = true;
    x->value[T_TEMP] = 20.0;
    vg_archive_recorder_cyclic(x->r, 10000, reading, x); /* temp slot 5 */
    assert_int_equal(take(x, 100, g), 1);
    assert_string_equal(g[0].name, "c.temp");
    assert_true(g[0].t == 10000 && g[0].v == 20.0);

    vg_archive_recorder_cyclic(x->r, 10500, reading, x);
    vg_archive_recorder_cyclic(x->r, 11999, reading, x);
    assert_int_equal(buffered(x), 0);

    /* e.fast gets its first reading, bad, within its slot 11. */
    x->has[T_FAST] = true;
    x->value[T_FAST] = 5.0;
    x->bad[T_FAST] = true;
    vg_archive_recorder_cyclic(x->r, 11999, reading, x);
    assert_int_equal(take(x, 100, g), 1);
    assert_string_equal(g[0].name, "e.fast");
    assert_true(g[0].t == 11999 && g[0].bad && g[0].v == 0.0);

    x->bad[T_FAST] = false;
    x->value[T_TEMP] = 21.0;
    vg_archive_recorder_cyclic(x->r, 12000, reading, x); /* both new slots */
    assert_int_equal(take(x, 100, g), 2);
    assert_true(strcmp(g[0].name, "c.temp") == 0 && g[0].v == 21.0);
    assert_true(strcmp(g[1].name, "e.fast") == 0 && g[1].v == 5.0 && !g[1].bad);

    /* 8 s later: one sample each, not one per slot missed. */
    vg_archive_recorder_cyclic(x->r, 20000, reading, x);
    vg_archive_recorder_cyclic(x->r, 20001, reading, x);
    assert_int_equal(take(x, 100, g), 2);
    assert_true(g[0].t == 20000 && g[1].t == 20000);

    /* A restart forgets the slots: the new leader samples at once. */
    assert_int_equal(vg_archive_recorder_start(x->r, &x->pr), VG_OK);
    vg_archive_recorder_cyclic(x->r, 20002, reading, x);
    assert_int_equal(buffered(x), 2);
}

/* Batches take the oldest first, at most MAX; the rest waits. */
static void test_take_limits(void **state)
{
    struct fx *x = *state;
    struct got g[8];
    for (uint64_t t = 1; t <= 5; t++) {
        change(x, t % 2 ? T_LEVEL : T_FLOW, 100 + t, (double)t, VG_PLC_GOOD);
    }
    assert_int_equal(take(x, 3, g), 3);
    assert_true(g[0].t == 101 && g[1].t == 102 && g[2].t == 103);
    assert_int_equal(buffered(x), 2);
    assert_int_equal(take(x, 3, g), 2);
    assert_true(g[0].t == 104 && g[1].t == 105);
}

/* A full buffer drops its oldest tenth, counted; start empties it. */
static void test_buffer_full(void **state)
{
    struct fx *x = *state;
    struct vg_archive_recorder_stats st;
    struct got *g = calloc(100, sizeof *g);
    assert_non_null(g);

    for (uint64_t t = 0; t < 105; t++) {
        change(x, T_LEVEL, 1000 + t, (double)t, VG_PLC_GOOD);
    }
    vg_archive_recorder_stats(x->r, &st);
    assert_int_equal(st.archived, 105);
    assert_int_equal(st.dropped, 10);
    assert_int_equal(st.buffered, 95);
    assert_int_equal(take(x, 100, g), 95);
    assert_int_equal(g[0].t, 1010);
    assert_int_equal(g[94].t, 1104);

    change(x, T_LEVEL, 5000, 1, VG_PLC_GOOD);
    assert_int_equal(vg_archive_recorder_start(x->r, &x->pr), VG_OK);
    vg_archive_recorder_stats(x->r, &st);
    assert_int_equal(st.buffered, 0);
    assert_int_equal(st.archived, 106);
    free(g);
}

/* What a batch carries is what a replica's history then answers. */
static void test_applied(void **state)
{
    struct fx *x = *state;
    struct vg_repl_fsm f;
    struct vg_cmd cmd = {.type = VG_CMD_HISTORY_SAMPLES, .term = 1, .time_ms = 1,
                         .proposer = 1};
    struct raft_buffer buf;
    unsigned char *body;
    size_t len, n;
    void *result = NULL;
    json_t *h;

    assert_int_equal(vg_repl_fsm_open(&f, ":memory:"), VG_OK);
    change(x, T_FLOW, 1700000000000, 1.25, VG_PLC_GOOD);
    change(x, T_LEVEL, 1700000000100, -3.0, VG_PLC_GOOD);
    change(x, T_FLOW, 1700000000200, 0, VG_PLC_BAD_COMM);
    x->has[T_TEMP] = true;
    x->value[T_TEMP] = 8.5;
    vg_archive_recorder_cyclic(x->r, 1700000000300, reading, x);
    assert_int_equal(vg_archive_recorder_take(x->r, 100, &body, &len, &n), VG_OK);
    assert_int_equal(n, 4);
    cmd.body = (const char *)body;
    cmd.body_len = (uint32_t)len;
    assert_int_equal(vg_cmd_encode(&cmd, &buf), VG_OK);
    free(body);
    assert_int_equal(f.fsm.apply(&f.fsm, &buf, &result), 0);
    assert_int_equal((int)(intptr_t)result, VG_OK);
    raft_free(buf.base);

    assert_int_equal(vg_repl_fsm_history_raw(&f, "b.flow", 0, UINT64_C(1) << 53, 10, &h),
                     VG_OK);
    assert_int_equal(json_array_size(json_object_get(h, "samples")), 2);
    assert_true(json_real_value(json_array_get(
                    json_array_get(json_object_get(h, "samples"), 0), 1)) == 1.25);
    assert_int_equal(json_integer_value(json_array_get(
                         json_array_get(json_object_get(h, "samples"), 1), 2)),
                     1);
    json_decref(h);
    assert_int_equal(vg_repl_fsm_history_raw(&f, "c.temp", 0, UINT64_C(1) << 53, 10, &h),
                     VG_OK);
    assert_int_equal(json_integer_value(json_array_get(
                         json_array_get(json_object_get(h, "samples"), 0), 0)),
                     1700000000300);
    json_decref(h);
    assert_int_equal(vg_repl_fsm_history_raw(&f, "a.level", 0, UINT64_C(1) << 53, 10, &h),
                     VG_OK);
    assert_int_equal(json_array_size(json_object_get(h, "samples")), 1);
    json_decref(h);
    vg_repl_fsm_close(&f);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_changes), T(test_cyclic_slots), T(test_take_limits),
        T(test_buffer_full), T(test_applied),
    };
    return cmocka_run_group_tests_name("archive-recorder", tests, NULL, NULL);
}
