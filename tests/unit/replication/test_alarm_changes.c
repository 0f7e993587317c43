/* Unit tests for the binary body of VG_CMD_ALARM_CHANGES: its codec
 * (replication/alarm_changes.c) and its apply (alarm_log.c), against the
 * format documented in replication.h.
 *
 * Covered: the round trip encode -> body -> decode of every kind of change
 * (full, removed, bookkeeping, empty message, nulls, UTF-8 and characters
 * that JSON escapes, every limit at its maximum), and that it is canonical
 * (what decodes re-encodes to the same bytes); the bytes of one change as
 * the header spells them out; the encoder refusing every broken limit
 * without writing anything; the decoder refusing garbage with VG_EINVAL
 * and a message that names the change and the field (every prefix of a
 * valid body, trailing bytes, counts, unknown bits, nulls where none may
 * be, bad UTF-8, NUL, lengths past the end, each limit); the JSON form
 * decoding to the same changes. Then, on real state machines in a temp
 * folder: the same changes applied once as ALARM_STATE (JSON) and once as
 * ALARM_CHANGES leave byte-identical alarm_states, alarm_journal and audit
 * rows and the same digest; the stored text is what the older JSON apply
 * wrote; the restore's scan reads the binary-applied states back; and a
 * rejected binary command stores nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <sqlite3.h>

#include "alarm_change_json.h"
#include "replication.h"

#define TIME_MAX ((uint64_t)INT64_MAX)

/* ---- changes ------------------------------------------------------------- */

/* Strings at (and one byte past) the limits of the format, filled by
 * limits_init. */
static struct {
    char name256[257], name257[258];
    char reason127[128], reason128[129];
    char user63[64], user64[65];
    char who128[129], who129[130];
    char why512[513], why513[514];
    char lang16[16][17], lang17[18];
    char text1024[1025], text1025[1026];
} lim;

static void fill(char *buf, size_t n, char c)
{
    memset(buf, c, n);
    buf[n] = '\0';
}

static void limits_init(void)
{
    fill(lim.name256, 256, 'n');
    fill(lim.name257, 257, 'n');
    fill(lim.reason127, 127, 'r');
    fill(lim.reason128, 128, 'r');
    fill(lim.user63, 63, 'u');
    fill(lim.user64, 64, 'u');
    fill(lim.who128, 128, 'w');
    fill(lim.who129, 129, 'w');
    fill(lim.why512, 512, 'y');
    fill(lim.why513, 513, 'y');
    for (int i = 0; i < 16; i++) {
        fill(lim.lang16[i], 16, 'l');
        lim.lang16[i][0] = (char)('a' + i); /* all different */
    }
    fill(lim.lang17, 17, 'l');
    fill(lim.text1024, 1024, 't');
    fill(lim.text1025, 1025, 't');
}

/* Raised, with every member set and distinct times, a value, a message in
 * three languages out of order, and a transition with user, station and
 * reason. */
static struct vg_repl_alarm_change full_change(void)
{
    return (struct vg_repl_alarm_change){
        .alarm = "LT101.hi",
        .state = {.status = VG_REPL_ALARM_STATUS_UNACK_ACTIVE,
                  .active = true,
                  .pending = false,
                  .shelved = true,
                  .out_of_service = true,
                  .changed_ms = 1700000000001,
                  .pending_since_ms = 1700000000002,
                  .raised_ms = 1700000000003,
                  .acked_ms = 1700000000004,
                  .cleared_ms = 1700000000005,
                  .shelved_ms = 1700000000006,
                  .shelved_until_ms = 1700000000007,
                  .out_of_service_ms = 1700000000008,
                  .shelve_reason = "maintenance",
                  .shelve_user = "ann"},
        .tag = "LT101",
        .section = "intake",
        .priority = 2,
        .has_message = true,
        .n_message = 3,
        .lang = {"fr", "en", "de"},
        .text = {"Niveau haut", "Tank high", "Tank hoch"},
        .has_transition = true,
        .transition = {.cause = VG_REPL_ALARM_CAUSE_RAISED,
                       .from = VG_REPL_ALARM_STATUS_NORMAL,
                       .to = VG_REPL_ALARM_STATUS_UNACK_ACTIVE,
                       .at_ms = 1700000000009,
                       .has_value = true,
                       .value = 87.25,
                       .user = "bob",
                       .station = "hmi-2",
                       .reason = "test run"},
    };
}

/* Gone from the project: state null, a "removed" transition. */
static struct vg_repl_alarm_change removed_change(void)
{
    return (struct vg_repl_alarm_change){
        .alarm = "FT1.lo",
        .removed = true,
        .tag = "FT1",
        .section = "intake",
        .priority = 3,
        .has_transition = true,
        .transition = {.cause = VG_REPL_ALARM_CAUSE_REMOVED,
                       .from = VG_REPL_ALARM_STATUS_UNACK_RTN,
                       .to = VG_REPL_ALARM_STATUS_NORMAL,
                       .at_ms = 1700000000100},
    };
}

/* A delay started: a state, no message, no transition. */
static struct vg_repl_alarm_change bookkeeping_change(void)
{
    return (struct vg_repl_alarm_change){
        .alarm = "PT7.hihi",
        .state = {.status = VG_REPL_ALARM_STATUS_NORMAL,
                  .pending = true,
                  .pending_since_ms = 1700000000200,
                  .shelve_reason = "",
                  .shelve_user = ""},
        .tag = "PT7",
        .section = "pumps",
        .priority = 1,
    };
}

/* A message object without languages, and no tag, section or priority. */
static struct vg_repl_alarm_change empty_message_change(void)
{
    return (struct vg_repl_alarm_change){
        .alarm = "$system.disk",
        .state = {.status = VG_REPL_ALARM_STATUS_ACK_ACTIVE,
                  .active = true,
                  .changed_ms = 5,
                  .raised_ms = 5,
                  .acked_ms = 6,
                  .shelve_reason = "",
                  .shelve_user = ""},
        .has_message = true,
        .n_message = 0,
        .has_transition = true,
        .transition = {.cause = VG_REPL_ALARM_CAUSE_ACKED,
                       .from = VG_REPL_ALARM_STATUS_UNACK_ACTIVE,
                       .to = VG_REPL_ALARM_STATUS_ACK_ACTIVE,
                       .at_ms = 6,
                       .has_value = true,
                       .value = -0.0},
    };
}

/* German umlauts, a 4-byte character, and every character JSON escapes
 * (quote, backslash, newline, tab) in every string member that can hold
 * them. */
static struct vg_repl_alarm_change escapes_change(void)
{
    return (struct vg_repl_alarm_change){
        .alarm = "F\xc3\xbcllstand.hoch",
        .state = {.status = VG_REPL_ALARM_STATUS_UNACK_RTN,
                  .shelved = true,
                  .changed_ms = TIME_MAX,
                  .shelved_until_ms = TIME_MAX,
                  .shelve_reason = "Wartung \"P1\" \\ Pumpe\ttauschen\n",
                  .shelve_user = "J\xc3\xbcrgen"},
        .tag = "Beh\xc3\xa4lter \"B1\"",
        .section = "Halle\\S\xc3\xbc" "d",
        .priority = 4,
        .has_message = true,
        .n_message = 2,
        .lang = {"de", "en"},
        .text = {"F\xc3\xbcllstand \"hoch\"\nBitte pr\xc3\xbc" "fen \xe2\x82\xac",
                 "Level high \\ \xf0\x9f\x98\x80"},
        .has_transition = true,
        .transition = {.cause = VG_REPL_ALARM_CAUSE_SHELVED,
                       .from = VG_REPL_ALARM_STATUS_UNACK_ACTIVE,
                       .to = VG_REPL_ALARM_STATUS_UNACK_RTN,
                       .at_ms = TIME_MAX,
                       .has_value = true,
                       .value = 42,
                       .user = "J\xc3\xbcrgen",
                       .station = "Leitstand \"S\xc3\xbc" "d\"",
                       .reason = "Quittiert\nweiter \\ beobachten"},
    };
}

/* Every string at its longest, 16 languages, the extreme numbers. */
static struct vg_repl_alarm_change limits_change(void)
{
    struct vg_repl_alarm_change ch = {
        .alarm = lim.name256,
        .state = {.status = VG_REPL_ALARM_STATUS_UNACK_RTN,
                  .active = true,
                  .pending = true,
                  .shelved = true,
                  .out_of_service = true,
                  .changed_ms = TIME_MAX,
                  .pending_since_ms = TIME_MAX,
                  .raised_ms = TIME_MAX,
                  .acked_ms = TIME_MAX,
                  .cleared_ms = TIME_MAX,
                  .shelved_ms = TIME_MAX,
                  .shelved_until_ms = TIME_MAX,
                  .out_of_service_ms = TIME_MAX,
                  .shelve_reason = lim.reason127,
                  .shelve_user = lim.user63},
        .tag = lim.name256,
        .section = lim.name256,
        .priority = 4,
        .has_message = true,
        .n_message = VG_REPL_ALARM_LANGS_MAX,
        .has_transition = true,
        .transition = {.cause = VG_REPL_ALARM_CAUSE_COUNT - 1,
                       .from = VG_REPL_ALARM_STATUS_COUNT - 1,
                       .to = VG_REPL_ALARM_STATUS_COUNT - 1,
                       .at_ms = TIME_MAX,
                       .has_value = true,
                       .value = -DBL_MAX,
                       .user = lim.who128,
                       .station = lim.who128,
                       .reason = lim.why512},
    };
    for (int i = 0; i < VG_REPL_ALARM_LANGS_MAX; i++) {
        ch.lang[i] = lim.lang16[i];
        ch.text[i] = lim.text1024;
    }
    return ch;
}

static void all_kinds(struct vg_repl_alarm_change v[6])
{
    v[0] = full_change();
    v[1] = removed_change();
    v[2] = bookkeeping_change();
    v[3] = empty_message_change();
    v[4] = escapes_change();
    v[5] = limits_change();
}

/* ---- codec helpers ------------------------------------------------------- */

/* The body of the N changes of V, encoded one by one (as the leader does);
 * every change must encode. The caller frees *BODY. */
static void body_of(const struct vg_repl_alarm_change *v, size_t n,
                    unsigned char **body, size_t *len)
{
    struct vg_repl_bytes b = {0};
    char err[VG_ERRMSG_SIZE] = "";

    for (size_t i = 0; i < n; i++) {
        if (vg_repl_alarm_change_encode(&b, &v[i], err) != VG_OK) {
            fail_msg("change %zu does not encode: %s", i, err);
        }
    }
    assert_false(b.nomem);
    assert_int_equal(vg_repl_alarm_changes_body(b.p, b.len, n, body, len), VG_OK);
    assert_int_equal(*len, b.len + 2);
    free(b.p);
}

/* Decode LEN bytes at BODY as the body of an ALARM_CHANGES command. */
static int decode(const void *body, size_t len, struct vg_repl_alarm_changes *out,
                  char *err)
{
    struct vg_cmd cmd = {.type = VG_CMD_ALARM_CHANGES,
                         .term = 2,
                         .time_ms = 1700000000000,
                         .proposer = 1,
                         .body = body,
                         .body_len = (uint32_t)len};
    if (err != NULL) {
        err[0] = '\0';
    }
    return vg_repl_alarm_changes_decode(&cmd, out, err);
}

static void assert_changes_equal(const struct vg_repl_alarm_change *want, size_t n,
                                 const struct vg_repl_alarm_changes *got)
{
    assert_int_equal(got->n, n);
    for (size_t i = 0; i < n; i++) {
        const char *diff = alarm_change_diff(&want[i], &got->v[i]);
        if (diff != NULL) {
            fail_msg("change %zu comes back with another %s", i, diff);
        }
    }
}

/* Decoded changes re-encoded one by one must give BODY again: the format
 * has one encoding per change. */
static void assert_canonical(const struct vg_repl_alarm_changes *c,
                             const unsigned char *body, size_t len)
{
    unsigned char *again;
    size_t again_len;
    body_of(c->v, c->n, &again, &again_len);
    assert_int_equal(again_len, len);
    assert_memory_equal(again, body, len);
    free(again);
}

/* Decoding BODY fails with VG_EINVAL, and the message names change INDEX
 * and contains FIELD. */
static void assert_refused(const void *body, size_t len, size_t index,
                           const char *field)
{
    struct vg_repl_alarm_changes c;
    char err[VG_ERRMSG_SIZE];
    char where[32];

    assert_int_equal(decode(body, len, &c, err), VG_EINVAL);
    vg_repl_alarm_changes_free(&c);
    snprintf(where, sizeof where, "change %zu: ", index);
    if (strstr(err, where) == NULL || strstr(err, field) == NULL) {
        fail_msg("expected \"%s\" and \"%s\" in \"%s\"", where, field, err);
    }
}

/* ---- round trips ---------------------------------------------------------- */

static void test_round_trip_each_kind(void **state)
{
    struct vg_repl_alarm_change v[6];
    (void)state;

    all_kinds(v);
    for (size_t i = 0; i < 6; i++) {
        struct vg_repl_alarm_changes c;
        char err[VG_ERRMSG_SIZE];
        unsigned char *body;
        size_t len;

        body_of(&v[i], 1, &body, &len);
        if (decode(body, len, &c, err) != VG_OK) {
            fail_msg("kind %zu: %s", i, err);
        }
        assert_changes_equal(&v[i], 1, &c);
        assert_canonical(&c, body, len);
        vg_repl_alarm_changes_free(&c);
        free(body);
    }
}

/* All kinds in one body, twice over: each change starts where the one
 * before ended. */
static void test_round_trip_one_body(void **state)
{
    struct vg_repl_alarm_change v[12];
    struct vg_repl_alarm_changes c;
    char err[VG_ERRMSG_SIZE];
    unsigned char *body;
    size_t len;
    (void)state;

    all_kinds(v);
    all_kinds(v + 6);
    body_of(v, 12, &body, &len);
    if (decode(body, len, &c, err) != VG_OK) {
        fail_msg("%s", err);
    }
    assert_changes_equal(v, 12, &c);
    assert_canonical(&c, body, len);
    vg_repl_alarm_changes_free(&c);
    free(body);
}

/* The bytes of one change exactly as replication.h spells the format out,
 * so that the encoder and decoder cannot drift from it together. */
static const unsigned char golden[] = {
    0x01, 0x00,                                     /*   0 n = 1 */
    0x0E,                                           /*   2 flags: T, M, V */
    0x01, 0x00, 'A',                                /*   3 alarm */
    0x01, 0x00, 'T',                                /*   6 tag */
    0xFF, 0xFF,                                     /*   9 section null */
    0x03,                                           /*  11 priority */
    0x02,                                           /*  12 ack_active */
    0x05,                                           /*  13 active, shelved */
    0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /*  14 changed_ms */
    0x11, 0, 0, 0, 0, 0, 0, 0,                      /*  22 pending_since_ms */
    0x12, 0, 0, 0, 0, 0, 0, 0,                      /*  30 raised_ms */
    0x13, 0, 0, 0, 0, 0, 0, 0,                      /*  38 acked_ms */
    0x14, 0, 0, 0, 0, 0, 0, 0,                      /*  46 cleared_ms */
    0x15, 0, 0, 0, 0, 0, 0, 0,                      /*  54 shelved_ms */
    0x16, 0, 0, 0, 0, 0, 0, 0,                      /*  62 shelved_until_ms */
    0x17, 0, 0, 0, 0, 0, 0, 0,                      /*  70 out_of_service_ms */
    0x01, 0x00, 'r',                                /*  78 shelve_reason */
    0x00, 0x00,                                     /*  81 shelve_user "" */
    0x01,                                           /*  83 one language */
    0x02, 0x00, 'e', 'n',                           /*  84 language */
    0x02, 0x00, 'h', 'i',                           /*  88 text */
    0x02, 0x01, 0x02,                               /*  92 acked, from, to */
    0x10, 0, 0, 0, 0, 0, 0, 0,                      /*  95 at_ms */
    0, 0, 0, 0, 0, 0, 0xF8, 0x3F,                   /* 103 value 1.5 */
    0x01, 0x00, 'u',                                /* 111 user */
    0xFF, 0xFF,                                     /* 114 station null */
    0xFF, 0xFF,                                     /* 116 reason null */
};                                                  /* 118 */

static struct vg_repl_alarm_change golden_change(void)
{
    return (struct vg_repl_alarm_change){
        .alarm = "A",
        .state = {.status = VG_REPL_ALARM_STATUS_ACK_ACTIVE,
                  .active = true,
                  .shelved = true,
                  .changed_ms = 0x0102030405060708,
                  .pending_since_ms = 0x11,
                  .raised_ms = 0x12,
                  .acked_ms = 0x13,
                  .cleared_ms = 0x14,
                  .shelved_ms = 0x15,
                  .shelved_until_ms = 0x16,
                  .out_of_service_ms = 0x17,
                  .shelve_reason = "r",
                  .shelve_user = ""},
        .tag = "T",
        .priority = 3,
        .has_message = true,
        .n_message = 1,
        .lang = {"en"},
        .text = {"hi"},
        .has_transition = true,
        .transition = {.cause = VG_REPL_ALARM_CAUSE_ACKED,
                       .from = VG_REPL_ALARM_STATUS_UNACK_ACTIVE,
                       .to = VG_REPL_ALARM_STATUS_ACK_ACTIVE,
                       .at_ms = 0x10,
                       .has_value = true,
                       .value = 1.5,
                       .user = "u"},
    };
}

static void test_golden_bytes(void **state)
{
    struct vg_repl_alarm_change ch = golden_change();
    struct vg_repl_alarm_changes c;
    unsigned char *body;
    size_t len;
    (void)state;

    assert_int_equal(sizeof golden, 118);
    body_of(&ch, 1, &body, &len);
    assert_int_equal(len, sizeof golden);
    assert_memory_equal(body, golden, sizeof golden);
    free(body);
    assert_int_equal(decode(golden, sizeof golden, &c, NULL), VG_OK);
    assert_changes_equal(&ch, 1, &c);
    vg_repl_alarm_changes_free(&c);
}

/* The JSON form of the same changes decodes to the same structs
 * (languages in the order of the object). */
static void test_json_form_decodes_the_same(void **state)
{
    struct vg_repl_alarm_change v[6];
    struct vg_repl_alarm_changes c;
    char err[VG_ERRMSG_SIZE] = "";
    char *json;
    struct vg_cmd cmd = {.type = VG_CMD_ALARM_STATE, .term = 2, .proposer = 1};
    (void)state;

    all_kinds(v);
    json = alarm_changes_json_body(v, 6);
    assert_non_null(json);
    cmd.body = json;
    cmd.body_len = (uint32_t)strlen(json);
    if (vg_repl_alarm_changes_decode(&cmd, &c, err) != VG_OK) {
        fail_msg("%s", err);
    }
    assert_changes_equal(v, 6, &c);
    vg_repl_alarm_changes_free(&c);
    free(json);

    /* Neither form is some other command's. */
    cmd.type = VG_CMD_AUDIT;
    cmd.body = "{}";
    cmd.body_len = 2;
    assert_int_equal(vg_repl_alarm_changes_decode(&cmd, &c, err), VG_EINVAL);
    assert_int_not_equal(err[0], '\0');
    vg_repl_alarm_changes_free(&c);
}

/* ---- the encoder ------------------------------------------------------- */

/* The Kth way to break a limit of CH (its description), or NULL after the
 * last. */
static const char *broken(struct vg_repl_alarm_change *ch, unsigned k)
{
    switch (k) {
    case 0: ch->alarm = lim.name257; return "alarm of 257 bytes";
    case 1: ch->alarm = ""; return "empty alarm";
    case 2: ch->alarm = NULL; return "no alarm";
    case 3: ch->tag = lim.name257; return "tag of 257 bytes";
    case 4: ch->section = lim.name257; return "section of 257 bytes";
    case 5: ch->priority = 5; return "priority 5";
    case 6: ch->n_message = VG_REPL_ALARM_LANGS_MAX + 1; return "17 languages";
    case 7: ch->lang[1] = "fr"; return "a language twice";
    case 8: ch->lang[2] = ""; return "an empty language";
    case 9: ch->lang[0] = lim.lang17; return "a language of 17 bytes";
    case 10: ch->text[1] = lim.text1025; return "a text of 1025 bytes";
    case 11: ch->transition.value = NAN; return "a NaN value";
    case 12: ch->transition.value = INFINITY; return "an infinite value";
    case 13: ch->transition.value = -INFINITY; return "value -inf";
    case 14: ch->state.shelve_user = lim.user64; return "shelve_user of 64";
    case 15: ch->state.shelve_reason = lim.reason128; return "reason of 128";
    case 16: ch->state.shelve_user = NULL; return "shelve_user null";
    case 17: ch->state.shelve_reason = NULL; return "shelve_reason null";
    case 18: ch->state.status = VG_REPL_ALARM_STATUS_COUNT; return "status 4";
    case 19: ch->transition.cause = VG_REPL_ALARM_CAUSE_COUNT; return "cause 9";
    case 20: ch->transition.from = VG_REPL_ALARM_STATUS_COUNT; return "from 4";
    case 21: ch->transition.to = 255; return "to 255";
    case 22: ch->transition.user = lim.who129; return "user of 129";
    case 23: ch->transition.station = lim.who129; return "station of 129";
    case 24: ch->transition.reason = lim.why513; return "reason of 513";
    case 25: ch->state.changed_ms = TIME_MAX + 1; return "changed_ms 2^63";
    case 26: ch->state.pending_since_ms = UINT64_MAX; return "pending_since";
    case 27: ch->state.raised_ms = TIME_MAX + 1; return "raised_ms 2^63";
    case 28: ch->state.acked_ms = TIME_MAX + 1; return "acked_ms 2^63";
    case 29: ch->state.cleared_ms = TIME_MAX + 1; return "cleared_ms 2^63";
    case 30: ch->state.shelved_ms = TIME_MAX + 1; return "shelved_ms 2^63";
    case 31: ch->state.shelved_until_ms = TIME_MAX + 1; return "until 2^63";
    case 32: ch->state.out_of_service_ms = TIME_MAX + 1; return "oos_ms 2^63";
    case 33: ch->transition.at_ms = TIME_MAX + 1; return "at_ms 2^63";
    case 34: ch->alarm = "LT\xff"; return "alarm not UTF-8";
    case 35: ch->tag = "\xc3"; return "tag ends inside a character";
    case 36: ch->section = "\xc0\xaf"; return "section with an overlong";
    case 37: ch->lang[0] = "\xed\xa0\x80"; return "language a surrogate";
    case 38: ch->text[2] = "\xf4\x90\x80\x80"; return "text past U+10FFFF";
    case 39: ch->state.shelve_reason = "\x80"; return "reason a continuation";
    case 40: ch->state.shelve_user = "\xfe"; return "shelve_user 0xfe";
    case 41: ch->transition.user = "\xe2\x82"; return "user cut short";
    case 42: ch->transition.station = "\xf8\x88\x80\x80\x80"; return "5 bytes";
    case 43: ch->transition.reason = "ok \xc3\x28"; return "reason bad 2nd";
    default: return NULL;
    }
}

/* Each broken change is refused with VG_EINVAL and a message, and leaves
 * the buffer as it was: a body made of what was written holds only the
 * good change before it. */
static void test_encoder_refuses_broken_limits(void **state)
{
    const char *what;
    (void)state;

    for (unsigned k = 0;; k++) {
        struct vg_repl_alarm_change good = full_change(), bad = full_change();
        struct vg_repl_bytes b = {0};
        struct vg_repl_alarm_changes c;
        char err[VG_ERRMSG_SIZE] = "";
        unsigned char *body;
        size_t len, before;

        what = broken(&bad, k);
        if (what == NULL) {
            assert_true(k > 40);
            break;
        }
        assert_int_equal(vg_repl_alarm_change_encode(&b, &good, err), VG_OK);
        before = b.len;
        if (vg_repl_alarm_change_encode(&b, &bad, err) != VG_EINVAL) {
            fail_msg("%s: encoded", what);
        }
        if (err[0] == '\0') {
            fail_msg("%s: no message", what);
        }
        if (b.len != before || b.nomem) {
            fail_msg("%s: %zu bytes written", what, b.len - before);
        }
        assert_int_equal(vg_repl_alarm_changes_body(b.p, b.len, 1, &body, &len),
                         VG_OK);
        assert_int_equal(decode(body, len, &c, err), VG_OK);
        assert_changes_equal(&good, 1, &c);
        vg_repl_alarm_changes_free(&c);
        free(body);
        free(b.p);
    }
}

/* A removed change carries no state: whatever the struct holds there is
 * neither checked nor written. A message flag off hides the languages. */
static void test_encoder_ignores_what_is_not_carried(void **state)
{
    struct vg_repl_alarm_change ch = removed_change(), plain = removed_change();
    struct vg_repl_bytes b1 = {0}, b2 = {0};
    (void)state;

    ch.state.status = 77;
    ch.state.changed_ms = UINT64_MAX;
    ch.state.shelve_reason = "\xff";
    ch.n_message = 99; /* has_message is false */
    assert_int_equal(vg_repl_alarm_change_encode(&b1, &ch, NULL), VG_OK);
    assert_int_equal(vg_repl_alarm_change_encode(&b2, &plain, NULL), VG_OK);
    assert_int_equal(b1.len, b2.len);
    assert_memory_equal(b1.p, b2.p, b1.len);
    free(b1.p);
    free(b2.p);
}

static void test_encoder_out_of_memory_is_reported(void **state)
{
    struct vg_repl_alarm_change ch = full_change();
    struct vg_repl_bytes b = {.nomem = true};
    char err[VG_ERRMSG_SIZE] = "";
    (void)state;

    assert_int_equal(vg_repl_alarm_change_encode(&b, &ch, err), VG_ENOMEM);
    assert_int_not_equal(err[0], '\0');
    assert_null(b.p);
}

static void test_body_refuses_bad_counts(void **state)
{
    static const unsigned char rec[] = {0x00};
    unsigned char *body = (unsigned char *)"sentinel";
    size_t len = 99;
    (void)state;

    assert_int_equal(vg_repl_alarm_changes_body(rec, 1, 0, &body, &len), VG_EINVAL);
    assert_null(body);
    assert_int_equal(len, 0);
    assert_int_equal(vg_repl_alarm_changes_body(rec, 1, VG_REPL_ALARM_CHANGES_MAX + 1,
                                                &body, &len),
                     VG_EINVAL);
    /* Longer than a command may be: refused before a byte is read. */
    assert_int_equal(vg_repl_alarm_changes_body(rec, VG_CMD_MAX_BODY - 1, 1, &body,
                                                &len),
                     VG_EINVAL);
    assert_null(body);
    assert_int_equal(vg_repl_alarm_changes_body(rec, 1, VG_REPL_ALARM_CHANGES_MAX,
                                                &body, &len),
                     VG_OK);
    assert_int_equal(len, 3);
    assert_int_equal(body[0], 0x00);
    assert_int_equal(body[1], 0x04);
    assert_int_equal(body[2], 0x00);
    free(body);
}

/* The largest count is accepted: 1024 changes decode. */
static void test_decode_1024_changes(void **state)
{
    struct vg_repl_alarm_change *v = calloc(VG_REPL_ALARM_CHANGES_MAX, sizeof *v);
    struct vg_repl_alarm_changes c;
    unsigned char *body;
    size_t len;
    (void)state;

    assert_non_null(v);
    for (size_t i = 0; i < VG_REPL_ALARM_CHANGES_MAX; i++) {
        v[i] = i % 2 ? bookkeeping_change() : escapes_change();
    }
    body_of(v, VG_REPL_ALARM_CHANGES_MAX, &body, &len);
    assert_int_equal(decode(body, len, &c, NULL), VG_OK);
    assert_changes_equal(v, VG_REPL_ALARM_CHANGES_MAX, &c);
    vg_repl_alarm_changes_free(&c);
    free(body);
    free(v);
}

/* ---- the decoder ------------------------------------------------------- */

/* Every prefix of a valid body of several changes is refused, with a
 * message that names the change the cut fell in (the count for a cut
 * inside it). */
static void test_decoder_refuses_every_prefix(void **state)
{
    struct vg_repl_alarm_change v[7];
    size_t end[7]; /* where each change ends in the body */
    unsigned char *body;
    size_t len;
    (void)state;

    all_kinds(v);
    v[6] = golden_change();
    for (size_t i = 0; i < 7; i++) {
        unsigned char *part;
        size_t part_len;
        body_of(&v[i], 1, &part, &part_len);
        end[i] = (i == 0 ? 2 : end[i - 1]) + part_len - 2;
        free(part);
    }
    body_of(v, 7, &body, &len);
    assert_int_equal(end[6], len);

    for (size_t cut = 0; cut < len; cut++) {
        /* A copy of exactly CUT bytes, so that ASan sees any read past. */
        unsigned char *p = malloc(cut > 0 ? cut : 1);
        struct vg_repl_alarm_changes c;
        char err[VG_ERRMSG_SIZE];
        size_t k = 0;

        assert_non_null(p);
        memcpy(p, body, cut);
        assert_int_equal(decode(p, cut, &c, err), VG_EINVAL);
        vg_repl_alarm_changes_free(&c);
        if (cut < 2) {
            assert_non_null(strstr(err, "count"));
        } else {
            char where[48];
            while (end[k] <= cut) {
                k++;
            }
            snprintf(where, sizeof where, "change %zu: bad or truncated ", k);
            if (strstr(err, where) == NULL ||
                strlen(strstr(err, where)) <= strlen(where)) {
                fail_msg("cut at %zu: expected \"%s<field>\" in \"%s\"", cut, where,
                         err);
            }
        }
        free(p);
    }
    free(body);
}

/* A copy of the golden body with the byte at OFF set to V. */
static unsigned char *golden_with(size_t off, unsigned char v)
{
    unsigned char *p = malloc(sizeof golden);
    assert_non_null(p);
    memcpy(p, golden, sizeof golden);
    p[off] = v;
    return p;
}

/* The golden body with DEL bytes at OFF replaced by the INS_LEN bytes of
 * INS; its length in *LEN. */
static unsigned char *golden_splice(size_t off, size_t del, const char *ins,
                                    size_t ins_len, size_t *len)
{
    unsigned char *p;
    *len = sizeof golden - del + ins_len;
    p = malloc(*len);
    assert_non_null(p);
    memcpy(p, golden, off);
    memcpy(p + off, ins, ins_len);
    memcpy(p + off + ins_len, golden + off + del, sizeof golden - off - del);
    return p;
}

/* The golden body with the DEL bytes of the string at OFF replaced by a
 * string of N letters. */
static unsigned char *golden_long_string(size_t off, size_t del, size_t n,
                                         size_t *len)
{
    char *ins = malloc(n + 2);
    unsigned char *p;
    assert_non_null(ins);
    ins[0] = (char)(n & 0xFF);
    ins[1] = (char)(n >> 8);
    memset(ins + 2, 'x', n);
    p = golden_splice(off, del, ins, n + 2, len);
    free(ins);
    return p;
}

static void assert_long_string_refused(size_t off, size_t del, size_t n,
                                       const char *field)
{
    size_t len;
    unsigned char *p = golden_long_string(off, del, n, &len);
    assert_refused(p, len, 0, field);
    free(p);
}

static void test_decoder_refuses_bad_bytes(void **state)
{
    static const struct {
        size_t off;
        unsigned char v;
        const char *field;
    } bad[] = {
        {2, 0x1E, "flags (unknown bits)"},
        {2, 0x2E, "flags (unknown bits)"},
        {2, 0x4E, "flags (unknown bits)"},
        {2, 0x8E, "flags (unknown bits)"},
        {2, 0x0C, "flags (a value without a transition)"},
        {13, 0x15, "state booleans (unknown bits)"},
        {13, 0x25, "state booleans (unknown bits)"},
        {13, 0x45, "state booleans (unknown bits)"},
        {13, 0x85, "state booleans (unknown bits)"},
        {3, 0xF0, "alarm"},           /* 240 bytes: past the end */
        {5, 0xFF, "alarm"},           /* not UTF-8 */
        {5, 0x00, "alarm"},           /* NUL */
        {5, 0xC3, "alarm"},           /* a character cut short */
        {8, 0x00, "tag"},             /* NUL */
        {8, 0x80, "tag"},             /* a lone continuation byte */
        {11, 5, "priority"},
        {11, 0xFF, "priority"},
        {12, 4, "state ("},
        {21, 0x80, "state ("},        /* changed_ms >= 2^63 */
        {77, 0x80, "state ("},        /* out_of_service_ms >= 2^63 */
        {80, 0x00, "state.shelve_reason"},
        {83, 17, "message (more than 16 languages)"},
        {86, 0xFF, "message language"},
        {90, 0x00, "message text"},
        {92, 9, "transition ("},
        {93, 4, "transition ("},
        {94, 0xFF, "transition ("},
        {102, 0x80, "transition ("},  /* at_ms >= 2^63 */
        {111, 0x09, "transition.user"},
        {113, 0xFF, "transition.user"},
        {116, 0x05, "transition.reason"}, /* past the end */
    };
    (void)state;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        unsigned char *p = golden_with(bad[i].off, bad[i].v);
        assert_refused(p, sizeof golden, 0, bad[i].field);
        free(p);
    }
}

/* Nulls where none may be, values that are not finite, strings that break
 * a limit after decoding, and trouble in a later change or after the last:
 * bodies that need more than one byte changed. */
static void test_decoder_refuses_bad_shapes(void **state)
{
    static const struct {
        size_t off, del;
        const char *ins;
        size_t ins_len;
        const char *field;
    } bad[] = {
        {3, 3, "\xff\xff", 2, "alarm"},
        {3, 3, "\x00\x00", 2, "alarm (a name of 1..256 bytes)"},
        {78, 3, "\xff\xff", 2, "state.shelve_reason"},
        {81, 2, "\xff\xff", 2, "state.shelve_user"},
        {84, 4, "\xff\xff", 2, "message language"},
        {84, 4, "\x00\x00", 2, "message (languages of 1..16 bytes"},
        {88, 4, "\xff\xff", 2, "message text"},
        {103, 8, "\x00\x00\x00\x00\x00\x00\xf8\x7f", 8, "transition ("}, /* NaN */
        {103, 8, "\x00\x00\x00\x00\x00\x00\xf0\x7f", 8, "transition ("}, /* inf */
        {103, 8, "\x00\x00\x00\x00\x00\x00\xf0\xff", 8, "transition ("}, /* -inf */
        {103, 8, "\x01\x00\x00\x00\x00\x00\xf0\x7f", 8, "transition ("}, /* sNaN */
        /* A language twice: two languages, both "en". */
        {83, 9, "\x02\x02\x00" "en" "\x02\x00" "hi" "\x02\x00" "en" "\x00\x00",
         15, "message (a language twice)"},
        /* A string of 0xFFFE bytes: far past the end. */
        {111, 3, "\xfe\xff", 2, "transition.user"},
        /* UTF-8 that RFC 3629 forbids: an overlong '/', a surrogate, a
         * code point past U+10FFFF, a 5-byte form; and a NUL last. */
        {3, 3, "\x02\x00\xc0\xaf", 4, "alarm"},
        {6, 3, "\x03\x00\xed\xa0\x80", 5, "tag"},
        {6, 3, "\x03\x00\xed\xbf\xbf", 5, "tag"},
        {88, 4, "\x04\x00\xf4\x90\x80\x80", 6, "message text"},
        {111, 3, "\x05\x00\xf8\x88\x80\x80\x80", 7, "transition.user"},
        {78, 3, "\x02\x00r\x00", 4, "state.shelve_reason"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t len;
        unsigned char *p =
            golden_splice(bad[i].off, bad[i].del, bad[i].ins, bad[i].ins_len, &len);
        assert_refused(p, len, 0, bad[i].field);
        free(p);
    }
    /* The largest code point is UTF-8 all the same. */
    {
        struct vg_repl_alarm_changes c;
        size_t len;
        unsigned char *p = golden_splice(6, 3, "\x04\x00\xf4\x8f\xbf\xbf", 6, &len);
        assert_int_equal(decode(p, len, &c, NULL), VG_OK);
        assert_string_equal(c.v[0].tag, "\xf4\x8f\xbf\xbf");
        vg_repl_alarm_changes_free(&c);
        free(p);
    }
    /* Well-formed strings one byte over their limits. */
    assert_long_string_refused(3, 3, 257, "alarm (a name of 1..256 bytes)");
    assert_long_string_refused(6, 3, 257, "tag (at most 256 bytes)");
    assert_long_string_refused(9, 2, 257, "section (at most 256 bytes)");
    assert_long_string_refused(78, 3, 128, "state.shelve_reason/shelve_user");
    assert_long_string_refused(81, 2, 64, "state.shelve_reason/shelve_user");
    assert_long_string_refused(84, 4, 17, "message (languages of 1..16 bytes");
    assert_long_string_refused(88, 4, 1025, "message (languages of 1..16 bytes");
    assert_long_string_refused(111, 3, 129, "transition.user/station/reason");
    assert_long_string_refused(114, 2, 129, "transition.user/station/reason");
    assert_long_string_refused(116, 2, 513, "transition.user/station/reason");
    /* ... and at them. */
    {
        static const struct {
            size_t off, del, n;
        } ok[] = {{3, 3, 256},  {6, 3, 256},  {9, 2, 256},    {78, 3, 127},
                  {81, 2, 63},  {84, 4, 16},  {88, 4, 1024}, {111, 3, 128},
                  {114, 2, 128}, {116, 2, 512}};
        for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
            struct vg_repl_alarm_changes c;
            size_t len;
            unsigned char *p = golden_long_string(ok[i].off, ok[i].del, ok[i].n, &len);
            assert_int_equal(decode(p, len, &c, NULL), VG_OK);
            vg_repl_alarm_changes_free(&c);
            free(p);
        }
    }
}

static void test_decoder_refuses_counts_and_trailing_bytes(void **state)
{
    struct vg_repl_alarm_changes c;
    char err[VG_ERRMSG_SIZE];
    unsigned char *p;
    size_t len;
    (void)state;

    /* Count 0, with and without a change after it. */
    assert_int_equal(decode("\x00\x00", 2, &c, err), VG_EINVAL);
    assert_non_null(strstr(err, "count"));
    vg_repl_alarm_changes_free(&c);
    p = golden_with(0, 0x00);
    assert_int_equal(decode(p, sizeof golden, &c, err), VG_EINVAL);
    assert_non_null(strstr(err, "count"));
    vg_repl_alarm_changes_free(&c);
    free(p);

    /* Count 1025 (0x0401). */
    p = golden_with(1, 0x04);
    assert_int_equal(decode(p, sizeof golden, &c, err), VG_EINVAL);
    assert_non_null(strstr(err, "count"));
    vg_repl_alarm_changes_free(&c);
    free(p);

    /* Count 2 of a body of one change: the second is missing. */
    p = golden_with(0, 0x02);
    assert_refused(p, sizeof golden, 1, "flags");
    free(p);

    /* Count 1 of two changes, and one byte too many. */
    p = golden_splice(sizeof golden, 0, (const char *)golden + 2,
                      sizeof golden - 2, &len);
    assert_int_equal(decode(p, len, &c, err), VG_EINVAL);
    assert_non_null(strstr(err, "after the last change"));
    vg_repl_alarm_changes_free(&c);
    p[0] = 0x02;
    assert_int_equal(decode(p, len, &c, err), VG_OK);
    assert_int_equal(c.n, 2);
    vg_repl_alarm_changes_free(&c);
    free(p);
    p = golden_splice(sizeof golden, 0, "\x00", 1, &len);
    assert_int_equal(decode(p, len, &c, err), VG_EINVAL);
    assert_non_null(strstr(err, "1 byte(s) after the last change"));
    vg_repl_alarm_changes_free(&c);
    free(p);

    /* An empty body, and the message is optional. */
    assert_int_equal(decode("", 0, &c, NULL), VG_EINVAL);
    vg_repl_alarm_changes_free(&c);
}

/* Trouble in the second change is reported as change 1. */
static void test_decoder_names_the_change(void **state)
{
    struct vg_repl_alarm_change v[2] = {full_change(), golden_change()};
    unsigned char *body;
    size_t len, start;
    (void)state;

    body_of(v, 2, &body, &len);
    /* The second change is the golden one, at the end: its priority. */
    start = len - (sizeof golden - 2);
    body[start + 11 - 2] = 7;
    assert_refused(body, len, 1, "priority");
    body[start + 11 - 2] = 3;
    body[len - 1] = 0x00; /* reason: 255 bytes, past the end */
    assert_refused(body, len, 1, "transition.reason");
    free(body);
}

/* ---- on state machines ------------------------------------------------- */

struct fx {
    char dir[64];
    struct vg_repl_fsm json; /* applies ALARM_STATE */
    struct vg_repl_fsm bin;  /* applies ALARM_CHANGES */
    uint64_t time_ms;
};

static void open_fsm(struct fx *x, struct vg_repl_fsm *f, const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", x->dir, name);
    if (vg_repl_fsm_open(f, path) != VG_OK) {
        fail_msg("open %s: %s", path, f->errmsg);
    }
}

static int setup(void **state)
{
    struct fx *x = calloc(1, sizeof *x);
    assert_non_null(x);
    snprintf(x->dir, sizeof x->dir, "/tmp/vg-test-changes-XXXXXX");
    assert_non_null(mkdtemp(x->dir));
    open_fsm(x, &x->json, "json.db");
    open_fsm(x, &x->bin, "bin.db");
    x->time_ms = 1700000000000;
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    struct fx *x = *state;
    vg_repl_fsm_close(&x->json);
    vg_repl_fsm_close(&x->bin);
    vg_remove_tree(x->dir);
    free(x);
    return 0;
}

/* Apply a command of TYPE with BODY to F as libraft would; the apply must
 * succeed. Returns the outcome. */
static int apply(struct fx *x, struct vg_repl_fsm *f, unsigned type,
                 const void *body, size_t len)
{
    struct vg_cmd cmd = {.type = (uint16_t)type,
                         .term = 3,
                         .time_ms = x->time_ms,
                         .proposer = 2,
                         .body = body,
                         .body_len = (uint32_t)len};
    struct raft_buffer buf;
    void *result = (void *)(intptr_t)-1;
    uint64_t index = f->applied_index;

    assert_int_equal(vg_cmd_encode(&cmd, &buf), VG_OK);
    assert_int_equal(f->fsm.apply(&f->fsm, &buf, &result), 0);
    raft_free(buf.base);
    assert_int_equal(f->fatal, 0);
    assert_int_equal(f->applied_index, index + 1);
    return (int)(intptr_t)result;
}

/* Apply the N changes of V to x->json as ALARM_STATE and to x->bin as
 * ALARM_CHANGES, with the same term, time and proposer; both accept. */
static void apply_both_forms(struct fx *x, const struct vg_repl_alarm_change *v,
                             size_t n)
{
    char *json = alarm_changes_json_body(v, n);
    unsigned char *body;
    size_t len;

    assert_non_null(json);
    body_of(v, n, &body, &len);
    assert_int_equal(apply(x, &x->json, VG_CMD_ALARM_STATE, json, strlen(json)),
                     VG_OK);
    assert_int_equal(apply(x, &x->bin, VG_CMD_ALARM_CHANGES, body, len), VG_OK);
    x->time_ms += 1000;
    free(json);
    free(body);
}

struct text {
    char *p;
    size_t len;
};

static void text_add(struct text *t, const void *p, size_t n)
{
    char *q = realloc(t->p, t->len + n + 1);
    assert_non_null(q);
    memcpy(q + t->len, p, n);
    t->len += n;
    q[t->len] = '\0';
    t->p = q;
}

/* The rows SELECT gives, as text that keeps every column's type and exact
 * bytes (reals by their bits): equal texts are byte-identical rows. Rows
 * counted into *N_ROWS. The caller frees the text. */
static char *rows_of(struct vg_repl_fsm *f, const char *select, size_t *n_rows)
{
    struct text t = {0};
    sqlite3_stmt *st;
    int rc;

    text_add(&t, "", 0);
    *n_rows = 0;
    assert_int_equal(sqlite3_prepare_v2(f->db, select, -1, &st, NULL), SQLITE_OK);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        for (int c = 0; c < sqlite3_column_count(st); c++) {
            char head[64];
            int type = sqlite3_column_type(st, c);
            if (type == SQLITE_INTEGER) {
                snprintf(head, sizeof head, "i%lld|",
                         (long long)sqlite3_column_int64(st, c));
                text_add(&t, head, strlen(head));
            } else if (type == SQLITE_FLOAT) {
                double d = sqlite3_column_double(st, c);
                uint64_t bits;
                memcpy(&bits, &d, sizeof bits);
                snprintf(head, sizeof head, "f%016llx|", (unsigned long long)bits);
                text_add(&t, head, strlen(head));
            } else if (type == SQLITE_NULL) {
                text_add(&t, "n|", 2);
            } else {
                const void *p = type == SQLITE_TEXT
                                    ? (const void *)sqlite3_column_text(st, c)
                                    : sqlite3_column_blob(st, c);
                int n = sqlite3_column_bytes(st, c);
                snprintf(head, sizeof head, "%c%d:", type == SQLITE_TEXT ? 't' : 'b',
                         n);
                text_add(&t, head, strlen(head));
                text_add(&t, p, (size_t)n);
                text_add(&t, "|", 1);
            }
        }
        text_add(&t, "\n", 1);
        (*n_rows)++;
    }
    assert_int_equal(rc, SQLITE_DONE);
    sqlite3_finalize(st);
    return t.p;
}

/* SELECT gives the same rows, byte for byte, in both fsms: N of them. */
static void assert_same_rows(struct fx *x, const char *select, size_t n)
{
    size_t n_json, n_bin;
    char *a = rows_of(&x->json, select, &n_json);
    char *b = rows_of(&x->bin, select, &n_bin);
    assert_int_equal(n_json, n);
    assert_int_equal(n_bin, n);
    assert_string_equal(a, b);
    free(a);
    free(b);
}

static void assert_same_digest(struct fx *x)
{
    unsigned char a[VG_DIGEST_SIZE], b[VG_DIGEST_SIZE];
    assert_int_equal(vg_repl_fsm_digest(&x->json, a), VG_OK);
    assert_int_equal(vg_repl_fsm_digest(&x->bin, b), VG_OK);
    assert_memory_equal(a, b, VG_DIGEST_SIZE);
}

/* record_summary's count and hash sum of TBL are what vg_row_hash gives
 * its rows now: the binder that counts the inserts (record_summary.c)
 * hashed what SQLite stored. */
static void assert_summary_from_rows(struct vg_repl_fsm *f, const char *tbl)
{
    char cols[512] = "", q[1024];
    sqlite3_stmt *st;

    snprintf(q, sizeof q, "PRAGMA table_info(%s)", tbl);
    assert_int_equal(sqlite3_prepare_v2(f->db, q, -1, &st, NULL), SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        size_t len = strlen(cols);
        snprintf(cols + len, sizeof cols - len, "%s%s", len > 0 ? ", " : "",
                 (const char *)sqlite3_column_text(st, 1));
    }
    sqlite3_finalize(st);
    snprintf(q, sizeof q,
             "SELECT (SELECT n FROM record_summary WHERE tbl = '%s') = count(*)"
             " AND (SELECT hash_sum FROM record_summary WHERE tbl = '%s') ="
             " vg_sum64(vg_row_hash(%s)) AND count(*) > 0 FROM %s",
             tbl, tbl, cols, tbl);
    assert_int_equal(sqlite3_prepare_v2(f->db, q, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    if (sqlite3_column_int(st, 0) != 1) {
        fail_msg("record_summary of %s differs from its rows", tbl);
    }
    sqlite3_finalize(st);
}

#define SELECT_STATES "SELECT * FROM alarm_states ORDER BY name"
#define SELECT_JOURNAL "SELECT * FROM alarm_journal ORDER BY id"
#define SELECT_AUDIT "SELECT * FROM audit ORDER BY id"

/* The history the fsm tests apply, in four commands (log indexes 1..4).
 * Raised, a delay started, a system alarm; acked and shelved by Jürgen;
 * three operator changes of one alarm in one command, a raise and clear;
 * a removal. Escapes, umlauts, several languages out of order, null tag,
 * section and priority, an empty message, a value that JSON writes as an
 * integer, -0.0, times at 2^63 - 1. */
static const char *const langs3[] = {"fr", "de", "en"};
static const char *const texts3[] = {"Niveau \"haut\"", "F\xc3\xbcllstand hoch\n",
                                     "Level \\ high"};

static void history_step(unsigned step, struct vg_repl_alarm_change *v, size_t *n)
{
    struct vg_repl_alarm_change lt = full_change();
    struct vg_repl_alarm_change fuell = escapes_change();
    struct vg_repl_alarm_change ft = bookkeeping_change();
    struct vg_repl_alarm_change sys = empty_message_change();

    *n = 0;
    lt.state.shelved = false;
    lt.state.out_of_service = false;
    lt.state.shelve_reason = "";
    lt.state.shelve_user = "";
    lt.n_message = 3;
    for (int i = 0; i < 3; i++) {
        lt.lang[i] = langs3[i];
        lt.text[i] = texts3[i];
    }
    ft.alarm = "FT1.lo";
    ft.tag = "FT1";
    switch (step) {
    case 0:
        lt.transition.user = NULL;
        lt.transition.station = NULL;
        lt.transition.reason = NULL;
        v[(*n)++] = lt;
        v[(*n)++] = ft; /* bookkeeping: no journal row */
        fuell.state.status = VG_REPL_ALARM_STATUS_UNACK_ACTIVE;
        fuell.state.shelved = false;
        fuell.state.shelve_reason = "";
        fuell.state.shelve_user = "";
        fuell.transition.cause = VG_REPL_ALARM_CAUSE_RAISED;
        fuell.transition.from = VG_REPL_ALARM_STATUS_NORMAL;
        fuell.transition.to = VG_REPL_ALARM_STATUS_UNACK_ACTIVE;
        fuell.transition.user = NULL;
        fuell.transition.station = NULL;
        v[(*n)++] = fuell;
        sys.state.status = VG_REPL_ALARM_STATUS_UNACK_ACTIVE;
        sys.transition.cause = VG_REPL_ALARM_CAUSE_RAISED;
        sys.transition.from = VG_REPL_ALARM_STATUS_NORMAL;
        sys.transition.to = VG_REPL_ALARM_STATUS_UNACK_ACTIVE;
        v[(*n)++] = sys;
        break;
    case 1:
        lt.state.status = VG_REPL_ALARM_STATUS_ACK_ACTIVE;
        lt.has_message = false; /* null */
        lt.transition.cause = VG_REPL_ALARM_CAUSE_ACKED;
        lt.transition.from = VG_REPL_ALARM_STATUS_UNACK_ACTIVE;
        lt.transition.to = VG_REPL_ALARM_STATUS_ACK_ACTIVE;
        lt.transition.has_value = false;
        lt.transition.user = "J\xc3\xbcrgen";
        lt.transition.station = "Leitstand \"S\xc3\xbc" "d\"";
        lt.transition.reason = "Quittiert\nweiter beobachten";
        v[(*n)++] = lt;
        v[(*n)++] = fuell; /* shelved, as escapes_change has it */
        break;
    case 2:
        fuell.state.shelved = false;
        fuell.transition.cause = VG_REPL_ALARM_CAUSE_UNSHELVED;
        fuell.transition.value = 1e300;
        v[(*n)++] = fuell;
        fuell.state.out_of_service = true;
        fuell.state.out_of_service_ms = 1700000002000;
        fuell.transition.cause = VG_REPL_ALARM_CAUSE_OOS;
        fuell.transition.has_value = false;
        v[(*n)++] = fuell;
        fuell.state.out_of_service = false;
        fuell.transition.cause = VG_REPL_ALARM_CAUSE_IN_SERVICE;
        fuell.transition.value = 5e-324;
        fuell.transition.has_value = true;
        fuell.transition.reason = NULL;
        v[(*n)++] = fuell;
        ft.state.status = VG_REPL_ALARM_STATUS_UNACK_ACTIVE;
        ft.state.active = true;
        ft.state.pending = false;
        ft.has_transition = true;
        ft.transition.cause = VG_REPL_ALARM_CAUSE_RAISED;
        ft.transition.from = VG_REPL_ALARM_STATUS_NORMAL;
        ft.transition.to = VG_REPL_ALARM_STATUS_UNACK_ACTIVE;
        ft.transition.at_ms = 1700000002100;
        ft.transition.has_value = true;
        ft.transition.value = -3.5;
        v[(*n)++] = ft;
        ft.state.status = VG_REPL_ALARM_STATUS_UNACK_RTN;
        ft.state.active = false;
        ft.transition.cause = VG_REPL_ALARM_CAUSE_CLEARED;
        ft.transition.from = VG_REPL_ALARM_STATUS_UNACK_ACTIVE;
        ft.transition.to = VG_REPL_ALARM_STATUS_UNACK_RTN;
        ft.transition.value = 0.25;
        v[(*n)++] = ft;
        lt.state.status = VG_REPL_ALARM_STATUS_NORMAL;
        lt.state.active = false;
        lt.transition.cause = VG_REPL_ALARM_CAUSE_EXPIRED;
        lt.transition.user = NULL;
        lt.transition.station = NULL;
        lt.transition.reason = NULL;
        v[(*n)++] = lt;
        break;
    default:
        v[(*n)++] = removed_change(); /* FT1.lo */
        break;
    }
}

#define HISTORY_STEPS 4
#define HISTORY_STATES 3  /* $system.disk, Füllstand.hoch, LT101.hi */
#define HISTORY_JOURNAL 12 /* every change with a transition */
#define HISTORY_AUDIT 5    /* acked, shelved, unshelved, oos, in_service */

/* The change that last set ALARM's state in the history, and the log index
 * of its command; false when the alarm ends removed or never appears. */
static bool history_last(const char *alarm, struct vg_repl_alarm_change *out,
                         uint64_t *index)
{
    bool found = false;
    for (unsigned s = 0; s < HISTORY_STEPS; s++) {
        struct vg_repl_alarm_change v[8];
        size_t n;
        history_step(s, v, &n);
        for (size_t i = 0; i < n; i++) {
            if (strcmp(v[i].alarm, alarm) == 0) {
                *out = v[i];
                *index = s + 1;
                found = !v[i].removed;
            }
        }
    }
    return found;
}

static char *json_text(json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    assert_non_null(text);
    return text;
}

/* The stored state and message of ALARM are what the JSON apply has always
 * written: json_dumps(JSON_COMPACT | JSON_SORT_KEYS) of the state object
 * and of the message object (older replicas and snapshots hold that). */
static void assert_stored_text(struct vg_repl_fsm *f, const char *alarm)
{
    struct vg_repl_alarm_change ch;
    uint64_t index;
    json_t *j;
    char *state_text, *message_text;
    sqlite3_stmt *st;

    assert_true(history_last(alarm, &ch, &index));
    j = alarm_change_json(&ch);
    assert_non_null(j);
    state_text = json_text(json_object_get(j, "state"));
    message_text = ch.has_message ? json_text(json_object_get(j, "message")) : NULL;
    assert_int_equal(sqlite3_prepare_v2(f->db,
                                        "SELECT state, message, status, idx"
                                        " FROM alarm_states WHERE name = ?",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, alarm, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), state_text);
    if (message_text != NULL) {
        assert_string_equal((const char *)sqlite3_column_text(st, 1), message_text);
    } else {
        assert_int_equal(sqlite3_column_type(st, 1), SQLITE_NULL);
    }
    assert_string_equal((const char *)sqlite3_column_text(st, 2),
                        vg_repl_alarm_status_name(ch.state.status));
    assert_int_equal(sqlite3_column_int64(st, 3), (int64_t)index);
    sqlite3_finalize(st);
    free(state_text);
    free(message_text);
    json_decref(j);
}

static void apply_history(struct fx *x)
{
    for (unsigned s = 0; s < HISTORY_STEPS; s++) {
        struct vg_repl_alarm_change v[8];
        size_t n;
        history_step(s, v, &n);
        apply_both_forms(x, v, n);
    }
}

static void test_both_forms_store_identical_rows(void **state)
{
    struct fx *x = *state;
    struct vg_repl_audit_query aq = {.limit = 10};
    json_t *audit;

    apply_history(x);
    assert_same_rows(x, SELECT_STATES, HISTORY_STATES);
    assert_same_rows(x, SELECT_JOURNAL, HISTORY_JOURNAL);
    assert_same_rows(x, SELECT_AUDIT, HISTORY_AUDIT);
    /* The journal's and the audit trail's count and hash sum, as the rows
     * give them (-0.0, 5e-324, nulls, escapes and umlauts among them). */
    assert_same_rows(x, "SELECT * FROM record_summary ORDER BY tbl", 2);
    assert_summary_from_rows(&x->bin, "alarm_journal");
    assert_summary_from_rows(&x->bin, "audit");
    assert_summary_from_rows(&x->json, "alarm_journal");
    assert_same_digest(x);

    /* Not trivially equal: the rows hold what was sent. */
    assert_stored_text(&x->bin, "LT101.hi");
    assert_stored_text(&x->bin, "F\xc3\xbcllstand.hoch");
    assert_stored_text(&x->bin, "$system.disk");
    assert_stored_text(&x->json, "F\xc3\xbcllstand.hoch");
    assert_int_equal(vg_repl_fsm_audit(&x->bin, &aq, &audit), VG_OK);
    {
        json_t *r = json_array_get(json_object_get(audit, "records"), 4);
        assert_string_equal(json_string_value(json_object_get(r, "kind")),
                            "alarm_acked");
        assert_string_equal(json_string_value(json_object_get(r, "user")),
                            "J\xc3\xbcrgen");
        assert_string_equal(json_string_value(json_object_get(r, "station")),
                            "Leitstand \"S\xc3\xbc" "d\"");
        assert_string_equal(json_string_value(json_object_get(r, "new_value")),
                            "ack_active");
    }
    json_decref(audit);
}

/* The journal rows read back with the values, flags and nulls sent. */
static void test_binary_journal_reads_back(void **state)
{
    struct fx *x = *state;
    struct vg_repl_journal_query q = {.limit = 100};
    json_t *out, *entries, *e;
    double v;

    apply_history(x);
    assert_int_equal(vg_repl_fsm_alarm_journal(&x->bin, &q, &out), VG_OK);
    entries = json_object_get(out, "entries");
    assert_int_equal(json_array_size(entries), HISTORY_JOURNAL);
    /* Newest first: the removal of FT1.lo (log index 4, position 0). */
    e = json_array_get(entries, 0);
    assert_int_equal(json_integer_value(json_object_get(e, "id")), 4 * 1024);
    assert_string_equal(json_string_value(json_object_get(e, "cause")), "removed");
    assert_false(json_is_true(json_object_get(e, "active")));
    assert_true(json_is_null(json_object_get(e, "value")));
    assert_true(json_is_null(json_object_get(e, "message")));
    assert_true(json_is_null(json_object_get(e, "user")));
    /* in_service of Füllstand.hoch (index 3, position 2): 5e-324. */
    e = json_array_get(entries, 4);
    assert_int_equal(json_integer_value(json_object_get(e, "id")), 3 * 1024 + 2);
    assert_string_equal(json_string_value(json_object_get(e, "cause")), "in_service");
    v = json_number_value(json_object_get(e, "value"));
    assert_true(v == 5e-324);
    assert_string_equal(json_string_value(json_object_get(e, "section")),
                        "Halle\\S\xc3\xbc" "d");
    /* The raise of $system.disk (index 1, position 3): no tag, section or
     * priority, an empty message, a value of -0.0. */
    e = json_array_get(entries, 9);
    assert_int_equal(json_integer_value(json_object_get(e, "id")), 1024 + 3);
    assert_true(json_is_null(json_object_get(e, "tag")));
    assert_true(json_is_null(json_object_get(e, "section")));
    assert_true(json_is_null(json_object_get(e, "priority")));
    assert_true(json_is_real(json_object_get(e, "value")));
    assert_true(json_real_value(json_object_get(e, "value")) == 0);
    json_decref(out);
}

struct scanned {
    struct vg_repl_alarm_row row[8];
    char *alarm[8], *tag[8], *section[8], *message[8];
    size_t n;
};

static char *dup_or_null(const char *s)
{
    char *d = s != NULL ? strdup(s) : NULL;
    assert_true(s == NULL || d != NULL);
    return d;
}

static bool scan_cb(void *data, const struct vg_repl_alarm_row *row)
{
    struct scanned *s = data;
    if (s->n == 8) {
        return false;
    }
    s->row[s->n] = *row;
    s->alarm[s->n] = dup_or_null(row->alarm);
    s->tag[s->n] = dup_or_null(row->tag);
    s->section[s->n] = dup_or_null(row->section);
    s->message[s->n] = dup_or_null(row->message);
    s->n++;
    return true;
}

static void scanned_free(struct scanned *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->alarm[i]);
        free(s->tag[i]);
        free(s->section[i]);
        free(s->message[i]);
    }
}

static void assert_opt_string(const char *got, const char *want)
{
    if (want == NULL) {
        assert_null(got);
    } else {
        assert_non_null(got);
        assert_string_equal(got, want);
    }
}

/* A new leader's restore reads the binary-applied states back, escapes and
 * all, member by member; the JSON-applied fsm reads the same. */
static void scan_of(struct vg_repl_fsm *f, struct scanned *s)
{
    size_t n_read = 0;
    assert_int_equal(vg_repl_fsm_alarm_states_scan(f, NULL, 100, scan_cb, s, &n_read),
                     VG_OK);
    assert_int_equal(n_read, HISTORY_STATES);
    assert_int_equal(s->n, HISTORY_STATES);
}

static void test_scan_reads_binary_states(void **state)
{
    static const char *const names[HISTORY_STATES] = {
        "$system.disk", "F\xc3\xbcllstand.hoch", "LT101.hi"};
    struct fx *x = *state;
    struct scanned s = {0}, sj = {0};

    apply_history(x);
    scan_of(&x->bin, &s);
    scan_of(&x->json, &sj);
    for (size_t i = 0; i < HISTORY_STATES; i++) {
        const struct vg_repl_alarm_row *r = &s.row[i], *rj = &sj.row[i];
        struct vg_repl_alarm_change ch;
        uint64_t index;
        json_t *j;

        assert_true(history_last(names[i], &ch, &index));
        assert_string_equal(s.alarm[i], names[i]);
        assert_true(r->readable);
        assert_string_equal(r->status, vg_repl_alarm_status_name(ch.state.status));
        assert_int_equal(r->active, ch.state.active);
        assert_int_equal(r->pending, ch.state.pending);
        assert_int_equal(r->shelved, ch.state.shelved);
        assert_int_equal(r->out_of_service, ch.state.out_of_service);
        assert_int_equal(r->changed_ms, ch.state.changed_ms);
        assert_int_equal(r->pending_since_ms, ch.state.pending_since_ms);
        assert_int_equal(r->raised_ms, ch.state.raised_ms);
        assert_int_equal(r->acked_ms, ch.state.acked_ms);
        assert_int_equal(r->cleared_ms, ch.state.cleared_ms);
        assert_int_equal(r->shelved_ms, ch.state.shelved_ms);
        assert_int_equal(r->shelved_until_ms, ch.state.shelved_until_ms);
        assert_int_equal(r->out_of_service_ms, ch.state.out_of_service_ms);
        assert_string_equal(r->shelve_reason, ch.state.shelve_reason);
        assert_string_equal(r->shelve_user, ch.state.shelve_user);
        assert_opt_string(s.tag[i], ch.tag);
        assert_opt_string(s.section[i], ch.section);
        assert_int_equal(r->priority, ch.priority);
        assert_int_equal(r->index, index);
        j = alarm_change_json(&ch);
        if (ch.has_message) {
            char *m = json_text(json_object_get(j, "message"));
            assert_opt_string(s.message[i], m);
            free(m);
        } else {
            assert_null(s.message[i]);
        }
        json_decref(j);

        /* The row as the JSON-applied fsm holds it: the same, field by
         * field (the borrowed strings compared through their copies). */
        assert_string_equal(sj.alarm[i], s.alarm[i]);
        assert_opt_string(sj.tag[i], s.tag[i]);
        assert_opt_string(sj.section[i], s.section[i]);
        assert_opt_string(sj.message[i], s.message[i]);
        assert_true(rj->readable);
        assert_string_equal(rj->status, r->status);
        assert_string_equal(rj->shelve_reason, r->shelve_reason);
        assert_string_equal(rj->shelve_user, r->shelve_user);
        assert_int_equal(rj->shelved_until_ms, r->shelved_until_ms);
        assert_int_equal(rj->index, r->index);
    }
    scanned_free(&s);
    scanned_free(&sj);
}

/* ---- rejected commands ---------------------------------------------------- */

/* Apply LEN bytes at P as ALARM_CHANGES to x->bin: refused. */
static void assert_apply_refused(struct fx *x, const unsigned char *p, size_t len)
{
    /* A copy of exactly LEN bytes (ASan sees any read past). */
    unsigned char *copy = malloc(len > 0 ? len : 1);
    assert_non_null(copy);
    memcpy(copy, p, len);
    assert_int_equal(apply(x, &x->bin, VG_CMD_ALARM_CHANGES, copy, len), VG_EINVAL);
    free(copy);
}

/* A binary command that is refused stores nothing of its valid changes:
 * the index advances, the rows and the digest stay. */
static void test_rejected_binary_stores_nothing(void **state)
{
    static const char *const selects[3] = {SELECT_STATES, SELECT_JOURNAL,
                                           SELECT_AUDIT};
    struct fx *x = *state;
    /* The golden change first (an acknowledgment: audited if stored). */
    struct vg_repl_alarm_change v[2] = {golden_change(), full_change()};
    const size_t second = 2 + (sizeof golden - 2); /* where change 1 starts */
    unsigned char before[VG_DIGEST_SIZE], after[VG_DIGEST_SIZE];
    unsigned char *body, *p;
    size_t len, n;
    char *rows[3];

    apply_history(x);
    v[1].alarm = "NEW.second"; /* the golden one is "A": new too */
    body_of(v, 2, &body, &len);
    assert_memory_equal(body + 2, golden + 2, sizeof golden - 2);
    assert_int_equal(vg_repl_fsm_digest(&x->bin, before), VG_OK);
    for (int t = 0; t < 3; t++) {
        rows[t] = rows_of(&x->bin, selects[t], &n);
        assert_int_equal(n, t == 0   ? HISTORY_STATES
                            : t == 1 ? HISTORY_JOURNAL
                                     : HISTORY_AUDIT);
    }

    /* Every prefix. */
    for (size_t cut = 0; cut < len; cut++) {
        assert_apply_refused(x, body, cut);
    }
    p = malloc(len + 1);
    assert_non_null(p);
    /* One byte too many. */
    memcpy(p, body, len);
    p[len] = 0x00;
    assert_apply_refused(x, p, len + 1);
    /* Unknown flag bits in the second change. */
    p[second] |= 0x40;
    assert_apply_refused(x, p, len);
    /* A priority out of range in the first. */
    memcpy(p, body, len);
    p[11] = 9;
    assert_apply_refused(x, p, len);
    /* A third change announced but missing. */
    memcpy(p, body, len);
    p[0] = 3;
    assert_apply_refused(x, p, len);
    free(p);

    assert_int_equal(vg_repl_fsm_digest(&x->bin, after), VG_OK);
    assert_memory_equal(before, after, VG_DIGEST_SIZE);
    for (int t = 0; t < 3; t++) {
        char *now = rows_of(&x->bin, selects[t], &n);
        assert_string_equal(now, rows[t]);
        free(now);
        free(rows[t]);
    }

    /* The whole body is accepted, and stores both changes, the journal
     * rows and the acknowledgment's audit record. */
    assert_int_equal(apply(x, &x->bin, VG_CMD_ALARM_CHANGES, body, len), VG_OK);
    free(rows_of(&x->bin, SELECT_STATES, &n));
    assert_int_equal(n, HISTORY_STATES + 2);
    free(rows_of(&x->bin, SELECT_JOURNAL, &n));
    assert_int_equal(n, HISTORY_JOURNAL + 2);
    free(rows_of(&x->bin, SELECT_AUDIT, &n));
    assert_int_equal(n, HISTORY_AUDIT + 1);
    free(body);
}

#define T(name) cmocka_unit_test(name)
#define TF(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_round_trip_each_kind),
        T(test_round_trip_one_body),
        T(test_golden_bytes),
        T(test_json_form_decodes_the_same),
        T(test_encoder_refuses_broken_limits),
        T(test_encoder_ignores_what_is_not_carried),
        T(test_encoder_out_of_memory_is_reported),
        T(test_body_refuses_bad_counts),
        T(test_decode_1024_changes),
        T(test_decoder_refuses_every_prefix),
        T(test_decoder_refuses_bad_bytes),
        T(test_decoder_refuses_bad_shapes),
        T(test_decoder_refuses_counts_and_trailing_bytes),
        T(test_decoder_names_the_change),
        TF(test_both_forms_store_identical_rows),
        TF(test_binary_journal_reads_back),
        TF(test_scan_reads_binary_states),
        TF(test_rejected_binary_stores_nothing),
    };
    limits_init();
    return cmocka_run_group_tests_name("alarm-changes", tests, NULL, NULL);
}
