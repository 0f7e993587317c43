/* The settle decision (node/settle_policy.h) as a table: the WAL gate and
 * its backlog bound, the backlog above which a slice runs in every
 * iteration, and the loop's idleness otherwise, at and around each bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../../node/settle_policy.h"

#define HIGH VG_SETTLE_BACKLOG_HIGH
#define MAX VG_SETTLE_BACKLOG_MAX
#define WAL VG_SETTLE_WAL_WAIT_PAGES

struct row {
    uint64_t backlog, wal;
    bool quiet;
    enum vg_settle_verdict want;
    uint64_t want_gap;
};

static const struct row rows[] = {
    /* A short WAL: the loop's idleness decides, at a gap. */
    {0, 0, true, VG_SETTLE_RUN, VG_SETTLE_GAP_MS},
    {0, 0, false, VG_SETTLE_BUSY, VG_SETTLE_GAP_MS},
    {HIGH, WAL, false, VG_SETTLE_BUSY, VG_SETTLE_GAP_MS},
    /* A backlog above HIGH: every iteration, busy or not. */
    {HIGH + 1, 0, false, VG_SETTLE_RUN, 0},
    {HIGH + 1, WAL, true, VG_SETTLE_RUN, 0},
    /* A long WAL: wait, quiet or not, up to MAX recent samples. */
    {0, WAL + 1, true, VG_SETTLE_WAL_WAIT, VG_SETTLE_GAP_MS},
    {HIGH + 1, WAL + 1, true, VG_SETTLE_WAL_WAIT, VG_SETTLE_GAP_MS},
    {MAX, WAL + 1, false, VG_SETTLE_WAL_WAIT, VG_SETTLE_GAP_MS},
    /* Beyond MAX the recent rows must not grow: every iteration again. */
    {MAX + 1, WAL + 1, false, VG_SETTLE_RUN, 0},
    {MAX + 1, UINT64_MAX, true, VG_SETTLE_RUN, 0},
};

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        uint64_t gap = 12345;
        enum vg_settle_verdict v =
            vg_settle_decide(rows[i].backlog, rows[i].wal, rows[i].quiet, &gap);
        if (v != rows[i].want || gap != rows[i].want_gap) {
            fail_msg("row %zu (backlog %llu, WAL %llu pages, %s): verdict %d gap %llu,"
                     " expected %d gap %llu",
                     i, (unsigned long long)rows[i].backlog,
                     (unsigned long long)rows[i].wal, rows[i].quiet ? "quiet" : "busy",
                     (int)v, (unsigned long long)gap, (int)rows[i].want,
                     (unsigned long long)rows[i].want_gap);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
    };
    return cmocka_run_group_tests_name("settle-policy", tests, NULL, NULL);
}
