/* Unit tests for the reading side of a new leader's alarm restore:
 * vg_repl_fsm_alarm_states_scan (replication/alarm_log.c), which reads the
 * stored states without building JSON, on a real state machine in a temp
 * folder (ALARM_STATE commands applied through its struct raft_fsm, no raft).
 *
 * The reference is the JSON reader the stations' lists use
 * (vg_repl_fsm_alarm_states): every member of every row must read the same
 * through both, for states in the canonical text apply writes (the fast
 * path) and for states whose strings hold escapes (read with jansson). Then
 * the slicing the restore relies on: LIMIT, AFTER, a callback that stops
 * early, an empty table; and rows that cannot be read (not JSON, a state
 * object that apply would refuse, text in another member order) are marked
 * unreadable, or read, without the scan failing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>
#include <unistd.h>

#include "replication.h"

struct fx {
    char dir[64];
    struct vg_repl_fsm f;
    uint64_t time_ms;
};

static int setup(void **state)
{
    struct fx *x = calloc(1, sizeof *x);
    char path[128];

    assert_non_null(x);
    snprintf(x->dir, sizeof x->dir, "/tmp/vg-test-restore-XXXXXX");
    assert_non_null(mkdtemp(x->dir));
    snprintf(path, sizeof path, "%s/state.db", x->dir);
    if (vg_repl_fsm_open(&x->f, path) != VG_OK) {
        fail_msg("open %s: %s", path, x->f.errmsg);
    }
    x->time_ms = 1700000000000ull;
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    struct fx *x = *state;
    vg_repl_fsm_close(&x->f);
    vg_remove_tree(x->dir);
    free(x);
    return 0;
}

/* Apply one ALARM_STATE command with BODY; it must be accepted. */
static void apply_changes(struct fx *x, const char *body)
{
    struct vg_cmd cmd = {
        .type = VG_CMD_ALARM_STATE,
        .term = 2,
        .time_ms = x->time_ms++,
        .proposer = 1,
        .body = body,
        .body_len = (uint32_t)strlen(body),
    };
    struct raft_buffer buf;
    void *result = NULL;

    assert_int_equal(vg_cmd_encode(&cmd, &buf), VG_OK);
    assert_int_equal(x->f.fsm.apply(&x->f.fsm, &buf, &result), 0);
    raft_free(buf.base);
    assert_int_equal((int)(intptr_t)result, VG_OK);
}

/* A change of ALARM to a state with the given members (the rest initial). */
static char *change(const char *alarm, const char *status, bool active,
                    uint64_t raised_ms, bool shelved, const char *reason,
                    const char *user, uint64_t until_ms)
{
    json_t *st = json_pack(
        "{s:s, s:b, s:I, s:b, s:I, s:I, s:I, s:I, s:b, s:I, s:I, s:s, s:s, s:b, s:I}",
        "status", status, "active", active, "changed_ms", (json_int_t)raised_ms,
        "pending", !active && !shelved, "pending_since_ms",
        (json_int_t)(!active && !shelved ? raised_ms + 7 : 0), "raised_ms",
        (json_int_t)raised_ms, "acked_ms", (json_int_t)0, "cleared_ms",
        (json_int_t)0, "shelved", shelved, "shelved_ms",
        (json_int_t)(shelved ? raised_ms : 0), "shelved_until_ms",
        (json_int_t)until_ms, "shelve_reason", reason, "shelve_user", user,
        "out_of_service", false, "out_of_service_ms", (json_int_t)0);
    json_t *ch = json_pack("{s:s, s:o, s:s, s:s, s:i, s:{s:s}, s:n}", "alarm", alarm,
                           "state", st, "tag", "LT101", "section", "intake",
                           "priority", 2, "message", "en", "Tank high",
                           "transition");
    char *text = json_dumps(ch, JSON_COMPACT);
    json_decref(ch);
    assert_non_null(text);
    return text;
}

static void apply_one(struct fx *x, char *change_text)
{
    char body[4096];
    snprintf(body, sizeof body, "{\"changes\":[%s]}", change_text);
    free(change_text);
    apply_changes(x, body);
}

/* Rows collected by a scan (names copied: they are borrowed). */
struct seen {
    struct vg_repl_alarm_row rows[16];
    char names[16][64];
    size_t n;
    size_t stop_after; /* 0: never stop */
};

static bool collect_cb(void *data, const struct vg_repl_alarm_row *row)
{
    struct seen *s = data;
    assert_true(s->n < 16);
    s->rows[s->n] = *row;
    snprintf(s->names[s->n], sizeof s->names[0], "%s", row->alarm);
    s->rows[s->n].alarm = s->names[s->n];
    s->rows[s->n].tag = s->rows[s->n].section = s->rows[s->n].message = NULL;
    s->n++;
    return s->stop_after == 0 || s->n < s->stop_after;
}

/* ROW must hold what the JSON reader makes of the stored state E. */
static void assert_row_matches(const struct vg_repl_alarm_row *row, json_t *e)
{
    json_t *st = json_object_get(e, "state");
    static const char *const bools[] = {"active", "pending", "shelved",
                                        "out_of_service"};
    const bool row_bools[] = {row->active, row->pending, row->shelved,
                              row->out_of_service};
    static const char *const times[] = {
        "changed_ms", "pending_since_ms", "raised_ms", "acked_ms",
        "cleared_ms", "shelved_ms", "shelved_until_ms", "out_of_service_ms"};
    const uint64_t row_times[] = {row->changed_ms, row->pending_since_ms,
                                  row->raised_ms, row->acked_ms,
                                  row->cleared_ms, row->shelved_ms,
                                  row->shelved_until_ms, row->out_of_service_ms};

    assert_string_equal(row->alarm,
                        json_string_value(json_object_get(e, "alarm")));
    assert_true(row->readable);
    assert_string_equal(row->status,
                        json_string_value(json_object_get(st, "status")));
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(row_bools[i], json_is_true(json_object_get(st, bools[i])));
    }
    for (size_t i = 0; i < 8; i++) {
        assert_int_equal(row_times[i],
                         (uint64_t)json_integer_value(json_object_get(st, times[i])));
    }
    assert_string_equal(row->shelve_reason,
                        json_string_value(json_object_get(st, "shelve_reason")));
    assert_string_equal(row->shelve_user,
                        json_string_value(json_object_get(st, "shelve_user")));
    assert_int_equal(row->index,
                     (uint64_t)json_integer_value(json_object_get(e, "index")));
}

static void test_same_as_json_reader(void **state)
{
    struct fx *x = *state;
    struct seen s = {0};
    json_t *all = NULL, *e;
    size_t n_read = 0, i;

    apply_one(x, change("a.plain", "unack_active", true, 1795303180120ull, false,
                        "", "", 0));
    /* UTF-8 needs no escape: still the canonical text. */
    apply_one(x, change("b.utf8", "normal", true, 1795303180121ull, true,
                        "Pumpe läuft trocken", "jörg", 1795303990000ull));
    /* Quote, backslash and a control character are escaped: jansson. */
    apply_one(x, change("c.escaped", "normal", false, 5, true,
                        "say \"no\" \\ then\nstop", "a\tb", 99));
    apply_one(x, change("d.pending", "unack_rtn", false, 9007199254740991ull,
                        false, "", "", 0));
    /* The longest strings apply accepts. */
    {
        char reason[VG_REPL_ALARM_REASON_SIZE], user[VG_REPL_ALARM_USER_SIZE];
        memset(reason, 'r', sizeof reason - 1);
        reason[sizeof reason - 1] = '\0';
        memset(user, 'u', sizeof user - 1);
        user[sizeof user - 1] = '\0';
        apply_one(x, change("e.long", "normal", false, 11, true, reason, user, 12));
    }

    assert_int_equal(vg_repl_fsm_alarm_states_scan(&x->f, NULL, 100, collect_cb, &s,
                                                   &n_read),
                     VG_OK);
    assert_int_equal(n_read, 5);
    assert_int_equal(s.n, 5);
    assert_int_equal(vg_repl_fsm_alarm_states(&x->f, &all), VG_OK);
    assert_int_equal(json_array_size(all), 5);
    json_array_foreach(all, i, e) {
        assert_row_matches(&s.rows[i], e);
    }
    json_decref(all);
    assert_string_equal(s.rows[2].shelve_reason, "say \"no\" \\ then\nstop");
    assert_string_equal(s.rows[1].shelve_user, "jörg");
}

static bool tag_cb(void *data, const struct vg_repl_alarm_row *row)
{
    json_t *m = row->message != NULL ? json_loads(row->message, 0, NULL) : NULL;
    assert_string_equal(row->tag, "LT101");
    assert_string_equal(row->section, "intake");
    assert_int_equal(row->priority, 2);
    assert_non_null(m);
    assert_string_equal(json_string_value(json_object_get(m, "en")), "Tank high");
    json_decref(m);
    (*(int *)data)++;
    return true;
}

static void test_row_columns(void **state)
{
    struct fx *x = *state;
    int rows = 0;

    apply_one(x, change("a", "unack_active", true, 1, false, "", "", 0));
    assert_int_equal(vg_repl_fsm_alarm_states_scan(&x->f, NULL, 10, tag_cb, &rows,
                                                   NULL),
                     VG_OK);
    assert_int_equal(rows, 1);
}

static void test_slices(void **state)
{
    struct fx *x = *state;
    char name[16];
    struct seen s = {0};
    size_t n_read = 99;

    /* Empty table. */
    assert_int_equal(vg_repl_fsm_alarm_states_scan(&x->f, NULL, 4, collect_cb, &s,
                                                   &n_read),
                     VG_OK);
    assert_int_equal(n_read, 0);
    assert_int_equal(s.n, 0);

    for (int i = 9; i >= 0; i--) {
        snprintf(name, sizeof name, "alarm.%02d", i);
        apply_one(x, change(name, "unack_active", true, 100 + (uint64_t)i, false,
                            "", "", 0));
    }
    /* LIMIT, in name order whatever the order of the commands. */
    assert_int_equal(vg_repl_fsm_alarm_states_scan(&x->f, NULL, 4, collect_cb, &s,
                                                   &n_read),
                     VG_OK);
    assert_int_equal(n_read, 4);
    assert_string_equal(s.names[0], "alarm.00");
    assert_string_equal(s.names[3], "alarm.03");
    assert_int_equal(s.rows[3].raised_ms, 103);
    /* AFTER the last one read: the next slice, then the rest (fewer than
     * LIMIT: the table is exhausted). */
    memset(&s, 0, sizeof s);
    assert_int_equal(vg_repl_fsm_alarm_states_scan(&x->f, "alarm.03", 4, collect_cb,
                                                   &s, &n_read),
                     VG_OK);
    assert_int_equal(n_read, 4);
    assert_string_equal(s.names[0], "alarm.04");
    memset(&s, 0, sizeof s);
    assert_int_equal(vg_repl_fsm_alarm_states_scan(&x->f, "alarm.07", 4, collect_cb,
                                                   &s, &n_read),
                     VG_OK);
    assert_int_equal(n_read, 2);
    assert_string_equal(s.names[1], "alarm.09");
    /* A name between two stored ones. */
    memset(&s, 0, sizeof s);
    assert_int_equal(vg_repl_fsm_alarm_states_scan(&x->f, "alarm.05x", 1, collect_cb,
                                                   &s, &n_read),
                     VG_OK);
    assert_string_equal(s.names[0], "alarm.06");
    /* The callback stops the scan: that row was the last one read. */
    memset(&s, 0, sizeof s);
    s.stop_after = 3;
    assert_int_equal(vg_repl_fsm_alarm_states_scan(&x->f, NULL, 8, collect_cb, &s,
                                                   &n_read),
                     VG_OK);
    assert_int_equal(n_read, 3);
    assert_string_equal(s.names[2], "alarm.02");
}

static void put_raw(struct fx *x, const char *name, const char *state_text)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(x->f.db,
                                        "INSERT INTO alarm_states(name, status,"
                                        " state, idx) VALUES(?, 'normal', ?, 1)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, state_text, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
}

static void test_unreadable_rows(void **state)
{
    struct fx *x = *state;
    struct seen s = {0};
    size_t n_read = 0;

    /* Written by hand, as a damaged or foreign database might hold them. */
    put_raw(x, "a.garbage", "not json at all");
    put_raw(x, "b.bad_status", "{\"status\":\"panic\"}");
    put_raw(x, "c.truncated",
            "{\"acked_ms\":0,\"active\":true,\"changed_ms\":12");
    put_raw(x, "d.negative",
            "{\"acked_ms\":-1,\"active\":true,\"changed_ms\":1,\"cleared_ms\":0,"
            "\"out_of_service\":false,\"out_of_service_ms\":0,\"pending\":false,"
            "\"pending_since_ms\":0,\"raised_ms\":1,\"shelve_reason\":\"\","
            "\"shelve_user\":\"\",\"shelved\":false,\"shelved_ms\":0,"
            "\"shelved_until_ms\":0,\"status\":\"unack_active\"}");
    /* Valid, but not in the canonical member order and with spaces. */
    put_raw(x, "e.other_order",
            "{ \"status\": \"ack_active\", \"active\": true, \"changed_ms\": 3,"
            " \"pending\": false, \"pending_since_ms\": 0, \"raised_ms\": 2,"
            " \"acked_ms\": 3, \"cleared_ms\": 0, \"shelved\": false,"
            " \"shelved_ms\": 0, \"shelved_until_ms\": 0, \"shelve_reason\": \"\","
            " \"shelve_user\": \"\", \"out_of_service\": false,"
            " \"out_of_service_ms\": 0 }");

    assert_int_equal(vg_repl_fsm_alarm_states_scan(&x->f, NULL, 10, collect_cb, &s,
                                                   &n_read),
                     VG_OK);
    assert_int_equal(n_read, 5);
    for (size_t i = 0; i < 4; i++) {
        assert_false(s.rows[i].readable);
        assert_string_equal(s.rows[i].status, "");
        assert_int_equal(s.rows[i].changed_ms, 0);
    }
    assert_string_equal(s.names[0], "a.garbage");
    assert_true(s.rows[4].readable);
    assert_string_equal(s.rows[4].status, "ack_active");
    assert_int_equal(s.rows[4].acked_ms, 3);
    assert_true(s.rows[4].active);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_same_as_json_reader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_row_columns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slices, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreadable_rows, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
