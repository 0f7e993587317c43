/* Unit tests for the command codec (replication/command.c): every type
 * survives an encode/decode round trip, the byte layout stays what the
 * header comment promises, every command is padded to 8 bytes and the
 * decoder ignores the padding, and every kind of bad buffer is refused with a
 * sentence that names what was wrong. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "replication.h"

/* ---- helpers ---------------------------------------------------------- */

static void put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* Encode a command of TYPE with BODY (NUL-terminated) and fixed stamps. */
static struct raft_buffer encode(unsigned type, const char *body)
{
    struct vg_cmd cmd = {
        .type = (uint16_t)type,
        .term = 7,
        .time_ms = 1700000000123ull,
        .proposer = 3,
        .body = body,
        .body_len = body != NULL ? (uint32_t)strlen(body) : 0,
    };
    struct raft_buffer buf = {NULL, 0};
    assert_int_equal(vg_cmd_encode(&cmd, &buf), VG_OK);
    assert_non_null(buf.base);
    return buf;
}

/* Decode BUF expecting failure with CODE and an errmsg containing WORD. */
static void expect_reject(const struct raft_buffer *buf, int code,
                          const char *word)
{
    struct vg_cmd cmd;
    char errmsg[VG_ERRMSG_SIZE] = "";
    assert_int_equal(vg_cmd_decode(buf, &cmd, errmsg), code);
    if (strstr(errmsg, word) == NULL) {
        fail_msg("errmsg \"%s\" does not mention \"%s\"", errmsg, word);
    }
}

/* ---- round trips -------------------------------------------------------- */

static void test_round_trip_every_type(void **state)
{
    static const char *const bodies[] = {
        "{\"raft_address\":\"10.0.0.1:9001\",\"client_address\":\"10.0.0.1:9443\","
        "\"peers\":[]}",
        "{\"key\":\"plant.mode\",\"value\":\"auto\"}",
        "{\"node_id\":2,\"raft_address\":\"a:1\",\"client_address\":\"a:2\"}",
        "{\"ref_index\":12,\"ref_digest\":\"00ff\"}",
        "{\"node_id\":5}",
        "{\"name\":\"plant\",\"digest\":\"00\",\"bundle\":\"AA==\","
        "\"summary\":{}}",
        "{\"tag\":\"FIC201.sp\",\"value\":42.5,\"project_version\":3}",
        "{\"action\":212,\"outcome\":\"written\",\"message\":null}",
        "{\"changes\":[]}",
        "{\"t0\":0,\"tags\":[\"a\"],\"s\":\"\"}",
        "{\"before_ms\":1000}",
        "{\"kind\":\"membership\",\"object\":\"node 4\"}",
        "{\"classes\":{\"fast\":[\"FIC201.pv\"]}}",
        "\x01\x02\x03binary", /* ALARM_CHANGES: the envelope does not read it */
        "\x04\x05\x06samples", /* HISTORY_SAMPLES, likewise */
        "{\"level\":2}",
    };
    (void)state;
    /* A new command type needs a body here too. */
    assert_int_equal(sizeof bodies / sizeof bodies[0], VG_CMD_TYPE_MAX - 1);
    for (unsigned type = 1; type < VG_CMD_TYPE_MAX; type++) {
        const char *body = bodies[type - 1];
        struct vg_cmd in = {
            .type = (uint16_t)type,
            .term = 0x0102030405060708ull + type,
            .time_ms = UINT64_MAX - type,
            .proposer = 0xfedcba9876543210ull,
            .body = body,
            .body_len = (uint32_t)strlen(body),
        };
        struct vg_cmd out;
        struct raft_buffer buf;
        char errmsg[VG_ERRMSG_SIZE] = "";

        assert_int_equal(vg_cmd_encode(&in, &buf), VG_OK);
        assert_int_equal(vg_cmd_decode(&buf, &out, errmsg), VG_OK);
        assert_string_equal(errmsg, "");
        assert_int_equal(out.type, type);
        assert_true(out.term == in.term);
        assert_true(out.time_ms == in.time_ms);
        assert_true(out.proposer == in.proposer);
        assert_int_equal(out.body_len, in.body_len);
        assert_memory_equal(out.body, body, in.body_len);
        /* The body borrows the buffer, it is not a copy. */
        assert_ptr_equal(out.body, (const char *)buf.base + VG_CMD_HEADER_SIZE);
        assert_string_not_equal(vg_cmd_type_name(type), "unknown");
        raft_free(buf.base);
    }
}

static void test_round_trip_empty_body(void **state)
{
    struct vg_cmd in = {.type = VG_CMD_PUT, .term = 1, .body = NULL,
                        .body_len = 0};
    struct vg_cmd out;
    struct raft_buffer buf;
    (void)state;
    assert_int_equal(vg_cmd_encode(&in, &buf), VG_OK);
    assert_int_equal(buf.len, VG_CMD_HEADER_SIZE);
    assert_int_equal(vg_cmd_decode(&buf, &out, NULL), VG_OK);
    assert_int_equal(out.body_len, 0);
    assert_int_equal(out.type, VG_CMD_PUT);
    raft_free(buf.base);
}

/* The layout is a wire and disk format: a log written by one build must be
 * read by the next, so pin every field's offset and byte order. */
static void test_layout_is_little_endian_at_fixed_offsets(void **state)
{
    struct vg_cmd in = {
        .type = VG_CMD_CHECKPOINT,
        .term = 0x1122334455667788ull,
        .time_ms = 0x0102030405060708ull,
        .proposer = 0x99,
        .body = "{}",
        .body_len = 2,
    };
    struct raft_buffer buf;
    const unsigned char *p;
    (void)state;
    assert_int_equal(vg_cmd_encode(&in, &buf), VG_OK);
    p = buf.base;
    assert_int_equal(p[0], VG_CMD_VERSION);
    assert_int_equal(p[1], 0);
    assert_int_equal(p[2], VG_CMD_CHECKPOINT);
    assert_int_equal(p[3], 0);
    assert_int_equal(p[4], 2);
    assert_int_equal(p[5] | p[6] | p[7], 0);
    assert_true(get64(p + 8) == in.term);
    assert_int_equal(p[8], 0x88);
    assert_true(get64(p + 16) == in.time_ms);
    assert_true(get64(p + 24) == 0x99);
    assert_true(get64(p + 32) == 0);
    assert_memory_equal(p + 40, "{}", 2);
    raft_free(buf.base);
}

static void test_type_names(void **state)
{
    (void)state;
    assert_string_equal(vg_cmd_type_name(VG_CMD_ANNOUNCE), "announce");
    assert_string_equal(vg_cmd_type_name(VG_CMD_PUT), "put");
    assert_string_equal(vg_cmd_type_name(VG_CMD_NODE_INFO), "node_info");
    assert_string_equal(vg_cmd_type_name(VG_CMD_CHECKPOINT), "checkpoint");
    assert_string_equal(vg_cmd_type_name(VG_CMD_NODE_FORGET), "node_forget");
    assert_string_equal(vg_cmd_type_name(VG_CMD_PROJECT_LOAD), "project_load");
    assert_string_equal(vg_cmd_type_name(0), "unknown");
    assert_string_equal(vg_cmd_type_name(VG_CMD_TYPE_MAX), "unknown");
    assert_string_equal(vg_cmd_type_name(65535), "unknown");
}

/* ---- padding ------------------------------------------------------------ */

static void test_padding_to_multiple_of_8(void **state)
{
    char body[32];
    (void)state;
    for (size_t n = 0; n < sizeof body; n++) {
        struct raft_buffer buf;
        struct vg_cmd out;
        const unsigned char *p;
        memset(body, 'a' + (int)(n % 26), n);
        body[n] = '\0';
        buf = encode(VG_CMD_PUT, body);
        p = buf.base;
        assert_int_equal(buf.len % 8, 0);
        assert_true(buf.len >= VG_CMD_HEADER_SIZE + n);
        assert_true(buf.len < VG_CMD_HEADER_SIZE + n + 8);
        for (size_t i = VG_CMD_HEADER_SIZE + n; i < buf.len; i++) {
            assert_int_equal(p[i], 0);
        }
        /* The decoder reports the body without the padding. */
        assert_int_equal(vg_cmd_decode(&buf, &out, NULL), VG_OK);
        assert_int_equal(out.body_len, n);
        assert_memory_equal(out.body, body, n);
        raft_free(buf.base);
    }
}

/* A buffer that is exactly header + body (as another writer or an older
 * transport might deliver) decodes too: padding is allowed, not required. */
static void test_decode_unpadded_exact_length(void **state)
{
    struct raft_buffer buf = encode(VG_CMD_PUT, "{\"key\":\"k\"}"); /* 11 */
    struct vg_cmd out;
    (void)state;
    assert_int_equal(buf.len, 56);
    buf.len = VG_CMD_HEADER_SIZE + 11;
    assert_int_equal(vg_cmd_decode(&buf, &out, NULL), VG_OK);
    assert_int_equal(out.body_len, 11);
    raft_free(buf.base);
}

/* ---- decoder rejects ----------------------------------------------------- */

static void test_reject_short_buffer(void **state)
{
    struct raft_buffer buf = encode(VG_CMD_PUT, "{}");
    struct raft_buffer null_buf = {NULL, 100};
    (void)state;
    for (size_t len = 0; len < VG_CMD_HEADER_SIZE; len++) {
        struct raft_buffer shorter = {buf.base, len};
        expect_reject(&shorter, VG_EMALFORMED, "header");
    }
    expect_reject(&null_buf, VG_EMALFORMED, "header");
    /* The sentence says how long it was. */
    {
        struct raft_buffer shorter = {buf.base, 39};
        expect_reject(&shorter, VG_EMALFORMED, "39 bytes");
    }
    raft_free(buf.base);
}

static void test_reject_wrong_version(void **state)
{
    struct raft_buffer buf = encode(VG_CMD_PUT, "{}");
    unsigned char *p = buf.base;
    (void)state;
    p[0] = 0;
    expect_reject(&buf, VG_EUNSUPPORTED, "version");
    p[0] = VG_CMD_VERSION + 1;
    expect_reject(&buf, VG_EUNSUPPORTED, "version 2");
    p[0] = 255;
    expect_reject(&buf, VG_EUNSUPPORTED, "version");
    raft_free(buf.base);
}

static void test_reject_unknown_type(void **state)
{
    struct raft_buffer buf = encode(VG_CMD_PUT, "{}");
    unsigned char *p = buf.base;
    (void)state;
    put16(p + 2, 0);
    expect_reject(&buf, VG_EUNSUPPORTED, "unknown command type 0");
    put16(p + 2, VG_CMD_TYPE_MAX);
    expect_reject(&buf, VG_EUNSUPPORTED, "unknown command type");
    put16(p + 2, 0xffff);
    expect_reject(&buf, VG_EUNSUPPORTED, "65535");
    raft_free(buf.base);
}

static void test_reject_body_longer_than_buffer(void **state)
{
    struct raft_buffer buf = encode(VG_CMD_PUT, "{\"key\":\"k\"}"); /* 56 */
    unsigned char *p = buf.base;
    (void)state;
    /* One byte more than header + padded body. */
    put32(p + 4, (uint32_t)(buf.len - VG_CMD_HEADER_SIZE + 1));
    expect_reject(&buf, VG_EMALFORMED, "does not fit");
    put32(p + 4, UINT32_MAX);
    expect_reject(&buf, VG_EMALFORMED, "body length");
    /* Exactly the padded length is still accepted. */
    put32(p + 4, (uint32_t)(buf.len - VG_CMD_HEADER_SIZE));
    {
        struct vg_cmd out;
        assert_int_equal(vg_cmd_decode(&buf, &out, NULL), VG_OK);
    }
    raft_free(buf.base);
}

/* A body length above the limit is refused even when the buffer is big
 * enough to hold it. */
static void test_reject_body_over_limit_in_big_buffer(void **state)
{
    size_t len = VG_CMD_HEADER_SIZE + VG_CMD_MAX_BODY + 8;
    unsigned char *p = calloc(1, len);
    struct raft_buffer buf = {p, len};
    struct vg_cmd out;
    (void)state;
    assert_non_null(p);
    p[0] = VG_CMD_VERSION;
    put16(p + 2, VG_CMD_PUT);
    put32(p + 4, VG_CMD_MAX_BODY + 1);
    expect_reject(&buf, VG_EMALFORMED, "body length");
    put32(p + 4, VG_CMD_MAX_BODY);
    assert_int_equal(vg_cmd_decode(&buf, &out, NULL), VG_OK);
    assert_int_equal(out.body_len, VG_CMD_MAX_BODY);
    free(p);
}

/* Errors go to the errmsg buffer only when one is given (apply passes
 * NULL). */
static void test_reject_without_errmsg(void **state)
{
    struct raft_buffer buf = encode(VG_CMD_PUT, "{}");
    struct raft_buffer shorter = {buf.base, 10};
    struct vg_cmd out;
    (void)state;
    assert_int_equal(vg_cmd_decode(&shorter, &out, NULL), VG_EMALFORMED);
    ((unsigned char *)buf.base)[0] = 9;
    assert_int_equal(vg_cmd_decode(&buf, &out, NULL), VG_EUNSUPPORTED);
    raft_free(buf.base);
}

/* ---- encoder rejects ----------------------------------------------------- */

static void test_encode_rejects_bad_type(void **state)
{
    struct vg_cmd cmd = {.type = 0, .body = "{}", .body_len = 2};
    struct raft_buffer buf = {NULL, 0};
    (void)state;
    assert_int_equal(vg_cmd_encode(&cmd, &buf), VG_EINVAL);
    assert_null(buf.base);
    cmd.type = VG_CMD_TYPE_MAX;
    assert_int_equal(vg_cmd_encode(&cmd, &buf), VG_EINVAL);
    cmd.type = 0xffff;
    assert_int_equal(vg_cmd_encode(&cmd, &buf), VG_EINVAL);
    assert_null(buf.base);
}

static void test_encode_rejects_body_over_limit(void **state)
{
    char *body = malloc(VG_CMD_MAX_BODY + 1);
    struct vg_cmd cmd = {.type = VG_CMD_PUT, .body = body};
    struct raft_buffer buf = {NULL, 0};
    struct vg_cmd out;
    (void)state;
    assert_non_null(body);
    memset(body, ' ', VG_CMD_MAX_BODY + 1);
    cmd.body_len = VG_CMD_MAX_BODY + 1;
    assert_int_equal(vg_cmd_encode(&cmd, &buf), VG_EINVAL);
    assert_null(buf.base);
    /* The limit itself is allowed and round-trips. */
    cmd.body_len = VG_CMD_MAX_BODY;
    assert_int_equal(vg_cmd_encode(&cmd, &buf), VG_OK);
    assert_int_equal(buf.len, VG_CMD_HEADER_SIZE + VG_CMD_MAX_BODY);
    assert_int_equal(vg_cmd_decode(&buf, &out, NULL), VG_OK);
    assert_int_equal(out.body_len, VG_CMD_MAX_BODY);
    raft_free(buf.base);
    free(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_type),
        cmocka_unit_test(test_round_trip_empty_body),
        cmocka_unit_test(test_layout_is_little_endian_at_fixed_offsets),
        cmocka_unit_test(test_type_names),
        cmocka_unit_test(test_padding_to_multiple_of_8),
        cmocka_unit_test(test_decode_unpadded_exact_length),
        cmocka_unit_test(test_reject_short_buffer),
        cmocka_unit_test(test_reject_wrong_version),
        cmocka_unit_test(test_reject_unknown_type),
        cmocka_unit_test(test_reject_body_longer_than_buffer),
        cmocka_unit_test(test_reject_body_over_limit_in_big_buffer),
        cmocka_unit_test(test_reject_without_errmsg),
        cmocka_unit_test(test_encode_rejects_bad_type),
        cmocka_unit_test(test_encode_rejects_body_over_limit),
    };
    return cmocka_run_group_tests_name("command", tests, NULL, NULL);
}
