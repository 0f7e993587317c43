/* Unit tests for the client protocol codec (proto/proto.h): framing under
 * every kind of split, recovery after each kind of bad frame, the encoder's
 * limits, the builders and accessors, and jansson allocation failures
 * injected at every step of a decode and an encode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto.h"

/* ---- helpers ---------------------------------------------------------- */

/* A growing byte string used to build wire streams. */
struct bytes {
    unsigned char *p;
    size_t len;
    size_t cap;
};

static void bytes_raw(struct bytes *b, const void *data, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap * 2 + n + 64;
        b->p = realloc(b->p, cap);
        assert_non_null(b->p);
        b->cap = cap;
    }
    if (n > 0) {
        memcpy(b->p + b->len, data, n);
    }
    b->len += n;
}

static void bytes_header(struct bytes *b, uint32_t length)
{
    unsigned char h[4] = {(unsigned char)(length >> 24),
                          (unsigned char)(length >> 16),
                          (unsigned char)(length >> 8), (unsigned char)length};
    bytes_raw(b, h, sizeof h);
}

/* A frame whose header matches its N-byte payload. */
static void bytes_frame(struct bytes *b, const void *payload, size_t n)
{
    bytes_header(b, (uint32_t)n);
    bytes_raw(b, payload, n);
}

static void bytes_json(struct bytes *b, const char *json)
{
    bytes_frame(b, json, strlen(json));
}

static void bytes_free(struct bytes *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

static void assert_contains(const char *haystack, const char *needle)
{
    if (strstr(haystack, needle) == NULL) {
        print_error("\"%s\" does not contain \"%s\"\n", haystack, needle);
        fail();
    }
}

/* The frame {"v":1,"type":"ping","id":ID}. */
static void bytes_ping(struct bytes *b, long long id)
{
    char json[64];
    snprintf(json, sizeof json, "{\"v\":1,\"type\":\"ping\",\"id\":%lld}", id);
    bytes_json(b, json);
}

/* Pull one message and check it is a ping with ID. */
static void expect_ping(struct vg_proto_decoder *d, long long id)
{
    char errmsg[VG_ERRMSG_SIZE];
    long long got_id = -2;
    json_t *msg = (json_t *)&got_id; /* must be overwritten */

    assert_int_equal(vg_proto_decoder_next(d, &msg, &got_id, errmsg), VG_OK);
    assert_non_null(msg);
    assert_string_equal(vg_proto_get_str(msg, "type", ""), "ping");
    assert_int_equal(vg_proto_get_int(msg, "id", -1), id);
    assert_int_equal(got_id, id);
    assert_string_equal(errmsg, "");
    json_decref(msg);
}

static void expect_again(struct vg_proto_decoder *d)
{
    long long id = -2;
    json_t *msg = (json_t *)&id;

    assert_int_equal(vg_proto_decoder_next(d, &msg, &id, NULL), VG_EAGAIN);
    assert_null(msg);
    assert_int_equal(id, -1);
}

/* Pull one message that must fail with RC, ID and an error message equal to
 * EXACT (when not NULL) and containing PART. */
static void expect_error(struct vg_proto_decoder *d, int rc, long long id,
                         const char *exact, const char *part)
{
    char errmsg[VG_ERRMSG_SIZE];
    long long got_id = -2;
    json_t *msg = (json_t *)&got_id;
    json_t *as_json;

    assert_int_equal(vg_proto_decoder_next(d, &msg, &got_id, errmsg), rc);
    assert_null(msg);
    assert_int_equal(got_id, id);
    if (exact != NULL) {
        assert_string_equal(errmsg, exact);
    }
    if (part != NULL) {
        assert_contains(errmsg, part);
    }
    /* The message can always be sent back in an error answer. */
    as_json = json_string(errmsg);
    assert_non_null(as_json);
    json_decref(as_json);
}

static void feed(struct vg_proto_decoder *d, const void *data, size_t n)
{
    assert_int_equal(vg_proto_decoder_feed(d, data, n), VG_OK);
}

/* ---- round trip and framing ------------------------------------------- */

static void test_roundtrip(void **state)
{
    struct vg_proto_decoder d;
    json_t *msg = vg_proto_request("put", 7);
    json_t *back = NULL;
    char *out = NULL;
    size_t out_len = 0;
    long long id = -2;
    char errmsg[VG_ERRMSG_SIZE];
    uint32_t length;

    (void)state;
    assert_non_null(msg);
    json_object_set_new(msg, "key", json_string("pump/3/speed"));
    json_object_set_new(msg, "value", json_string("1450 tr/min \xc3\xa9t\xc3\xa9"));
    json_object_set_new(msg, "nested", json_pack("{s:[i,f,b,n]}", "a", -3,
                                                 0.1, 1));

    assert_int_equal(vg_proto_encode(msg, &out, &out_len), VG_OK);
    assert_true(out_len > 4);
    length = (uint32_t)(unsigned char)out[0] << 24 |
             (uint32_t)(unsigned char)out[1] << 16 |
             (uint32_t)(unsigned char)out[2] << 8 | (unsigned char)out[3];
    assert_int_equal(length, out_len - 4);
    assert_memory_equal(out + 4, "{\"v\":1,\"type\":\"put\",\"id\":7,", 27);

    vg_proto_decoder_init(&d);
    feed(&d, out, out_len);
    assert_int_equal(vg_proto_decoder_next(&d, &back, &id, errmsg), VG_OK);
    assert_non_null(back);
    assert_true(json_equal(msg, back));
    assert_int_equal(id, 7);
    assert_int_equal(d.frames, 1);
    expect_again(&d);
    assert_int_equal(d.len, 0);

    json_decref(back);
    json_decref(msg);
    free(out);
    vg_proto_decoder_close(&d);
}

static void test_encode_adds_version(void **state)
{
    struct vg_proto_decoder d;
    json_t *msg = json_pack("{s:s,s:i}", "type", "ping", "id", 4);
    json_t *v2 = json_pack("{s:i,s:s,s:i}", "v", 2, "type", "ping", "id", 5);
    char *out = NULL;
    size_t out_len = 0;

    (void)state;
    assert_int_equal(vg_proto_encode(msg, &out, &out_len), VG_OK);
    assert_int_equal(out_len, 4 + strlen("{\"v\":1,\"type\":\"ping\",\"id\":4}"));
    assert_memory_equal(out + 4, "{\"v\":1,\"type\":\"ping\",\"id\":4}", out_len - 4);
    /* The caller's object is left as it was. */
    assert_null(json_object_get(msg, "v"));
    assert_int_equal(json_object_size(msg), 2);

    vg_proto_decoder_init(&d);
    feed(&d, out, out_len);
    expect_ping(&d, 4);
    free(out);

    /* An empty object gets the version alone. */
    json_t *empty = json_object();
    assert_int_equal(vg_proto_encode(empty, &out, &out_len), VG_OK);
    assert_int_equal(out_len, 4 + strlen("{\"v\":1}"));
    assert_memory_equal(out, "\0\0\0\7{\"v\":1}", out_len);
    assert_int_equal(json_object_size(empty), 0);
    json_decref(empty);
    free(out);

    /* An explicit version is kept, so that tests can send a wrong one. */
    assert_int_equal(vg_proto_encode(v2, &out, &out_len), VG_OK);
    feed(&d, out, out_len);
    expect_error(&d, VG_EUNSUPPORTED, 5, NULL,
                 "frame 2: unsupported protocol version 2");
    free(out);

    json_decref(msg);
    json_decref(v2);
    vg_proto_decoder_close(&d);
}

static void test_byte_at_a_time(void **state)
{
    struct vg_proto_decoder d;
    struct bytes b = {0};
    size_t ends[3];
    size_t i;
    int done = 0;

    (void)state;
    bytes_ping(&b, 1);
    ends[0] = b.len;
    bytes_json(&b, "{\"v\":1,\"type\":\"get\",\"id\":2,\"key\":\"a\\u00e9\"}");
    ends[1] = b.len;
    bytes_ping(&b, 3);
    ends[2] = b.len;

    vg_proto_decoder_init(&d);
    for (i = 0; i < b.len; i++) {
        json_t *msg = NULL;
        long long id = -2;
        int rc;

        feed(&d, b.p + i, 1);
        rc = vg_proto_decoder_next(&d, &msg, &id, NULL);
        if (i + 1 == ends[done]) {
            /* Exactly when the last byte of a frame arrives. */
            assert_int_equal(rc, VG_OK);
            assert_int_equal(id, done + 1);
            if (done == 1) {
                assert_string_equal(vg_proto_get_str(msg, "key", ""),
                                    "a\xc3\xa9");
            }
            json_decref(msg);
            done++;
            expect_again(&d);
        } else {
            assert_int_equal(rc, VG_EAGAIN);
            assert_null(msg);
        }
    }
    assert_int_equal(done, 3);
    assert_int_equal(d.frames, 3);
    bytes_free(&b);
    vg_proto_decoder_close(&d);
}

static void test_several_frames_one_feed(void **state)
{
    struct vg_proto_decoder d;
    struct bytes b = {0};
    long long i;

    (void)state;
    for (i = 0; i < 5; i++) {
        bytes_ping(&b, 100 + i);
    }
    /* Half of a sixth frame stays buffered. */
    bytes_ping(&b, 105);
    vg_proto_decoder_init(&d);
    feed(&d, b.p, b.len - 10);
    for (i = 0; i < 5; i++) {
        expect_ping(&d, 100 + i);
    }
    expect_again(&d);
    feed(&d, b.p + b.len - 10, 10);
    expect_ping(&d, 105);
    expect_again(&d);
    bytes_free(&b);
    vg_proto_decoder_close(&d);
}

/* Many small frames drained from one buffer, in order. */
static void test_many_small_frames(void **state)
{
    struct vg_proto_decoder d;
    struct bytes b = {0};
    long long i;

    (void)state;
    for (i = 0; i < 20000; i++) {
        bytes_ping(&b, i);
    }
    vg_proto_decoder_init(&d);
    feed(&d, b.p, b.len);
    for (i = 0; i < 20000; i++) {
        expect_ping(&d, i);
    }
    expect_again(&d);
    assert_int_equal(d.len, 0);
    bytes_free(&b);
    vg_proto_decoder_close(&d);
}

/* A long stream whose frames straddle every feed, drained after each feed:
 * the buffer is reused rather than grown. */
static void test_buffer_bounded(void **state)
{
    struct vg_proto_decoder d;
    struct bytes b = {0};
    size_t pos;
    long long i;
    long long next = 0;

    (void)state;
    for (i = 0; i < 100000; i++) {
        bytes_ping(&b, i);
    }
    vg_proto_decoder_init(&d);
    for (pos = 0; pos < b.len; pos += 997) {
        size_t n = b.len - pos < 997 ? b.len - pos : 997;
        json_t *msg = NULL;

        feed(&d, b.p + pos, n);
        while (vg_proto_decoder_next(&d, &msg, NULL, NULL) == VG_OK) {
            assert_int_equal(vg_proto_get_int(msg, "id", -1), next);
            next++;
            json_decref(msg);
        }
        assert_true(d.cap <= 8192);
    }
    assert_int_equal(next, 100000);
    assert_int_equal(d.len, 0);
    bytes_free(&b);
    vg_proto_decoder_close(&d);
}

static void test_truncated(void **state)
{
    struct vg_proto_decoder d;
    struct bytes b = {0};

    (void)state;
    bytes_ping(&b, 9);
    vg_proto_decoder_init(&d);
    expect_again(&d);
    feed(&d, b.p, 3); /* part of the header */
    expect_again(&d);
    feed(&d, b.p + 3, 1); /* the header */
    expect_again(&d);
    feed(&d, b.p + 4, b.len - 5); /* all but the last byte */
    expect_again(&d);
    assert_int_equal(d.frames, 0);
    feed(&d, b.p + b.len - 1, 1);
    expect_ping(&d, 9);
    expect_again(&d);
    bytes_free(&b);
    vg_proto_decoder_close(&d);
}

/* ---- oversized frames ------------------------------------------------- */

static void test_oversized_streamed(void **state)
{
    struct vg_proto_decoder d;
    struct bytes b = {0};
    static unsigned char chunk[65536];
    size_t left = 5000000;

    (void)state;
    memset(chunk, 'x', sizeof chunk);
    vg_proto_decoder_init(&d);
    bytes_header(&b, 5000000);
    feed(&d, b.p, b.len);
    assert_int_equal(d.skip, 5000000);
    expect_error(&d, VG_ETOOBIG, -1,
                 "frame 1: length 5000000 exceeds limit 1048576", NULL);
    while (left > 0) {
        size_t n = left < sizeof chunk ? left : sizeof chunk;
        feed(&d, chunk, n);
        left -= n;
        /* Nothing of the payload is kept. */
        assert_int_equal(d.len, 0);
        assert_int_equal(d.skip, left);
        expect_again(&d);
    }
    assert_true(d.cap <= 64 * 1024);
    b.len = 0;
    bytes_ping(&b, 77);
    feed(&d, b.p, b.len);
    expect_ping(&d, 77);
    assert_int_equal(d.frames, 2);
    expect_again(&d);
    bytes_free(&b);
    vg_proto_decoder_close(&d);
}

/* The whole oversized frame and the next one arrive in a single feed,
 * behind a good frame, before anything is pulled. */
static void test_oversized_in_one_feed(void **state)
{
    struct vg_proto_decoder d;
    struct bytes b = {0};
    unsigned char *payload = malloc(VG_PROTO_MAX_FRAME + 1);

    (void)state;
    assert_non_null(payload);
    memset(payload, '{', VG_PROTO_MAX_FRAME + 1);
    bytes_ping(&b, 1);
    bytes_frame(&b, payload, VG_PROTO_MAX_FRAME + 1);
    bytes_ping(&b, 2);
    vg_proto_decoder_init(&d);
    feed(&d, b.p, b.len);
    /* Only the two pings and the oversized header were kept. */
    assert_int_equal(d.len, b.len - (VG_PROTO_MAX_FRAME + 1));
    assert_int_equal(d.skip, 0);
    expect_ping(&d, 1);
    expect_error(&d, VG_ETOOBIG, -1,
                 "frame 2: length 1048577 exceeds limit 1048576", NULL);
    expect_ping(&d, 2);
    expect_again(&d);
    free(payload);
    bytes_free(&b);
    vg_proto_decoder_close(&d);
}

/* An oversized frame whose payload is still arriving sits behind a good
 * frame; the frame after it must wait for the payload to pass. */
static void test_oversized_pending(void **state)
{
    struct vg_proto_decoder d;
    struct bytes b = {0};
    unsigned char payload[3000];

    (void)state;
    memset(payload, 'z', sizeof payload);
    bytes_ping(&b, 1);
    bytes_header(&b, VG_PROTO_MAX_FRAME + 1000);
    bytes_raw(&b, payload, 1000);
    vg_proto_decoder_init(&d);
    feed(&d, b.p, b.len);
    assert_int_equal(d.skip, VG_PROTO_MAX_FRAME);
    expect_ping(&d, 1);
    expect_error(&d, VG_ETOOBIG, -1, NULL, "frame 2: length 1049576");
    expect_again(&d);
    b.len = 0;
    while (d.skip > sizeof payload) {
        feed(&d, payload, sizeof payload);
    }
    bytes_raw(&b, payload, d.skip);
    bytes_ping(&b, 3);
    feed(&d, b.p, b.len);
    expect_ping(&d, 3);
    expect_again(&d);
    bytes_free(&b);
    vg_proto_decoder_close(&d);
}

/* A payload of exactly VG_PROTO_MAX_FRAME bytes is accepted, one more is not,
 * on both sides. */
static void test_limit_boundary(void **state)
{
    struct vg_proto_decoder d;
    const size_t overhead = strlen("{\"v\":1,\"type\":\"put\",\"value\":\"\"}");
    size_t n = VG_PROTO_MAX_FRAME - overhead;
    char *pad = malloc(n + 2);
    json_t *msg = json_pack("{s:i,s:s}", "v", 1, "type", "put");
    json_t *back = NULL;
    char *out = NULL;
    size_t out_len = 0;

    (void)state;
    assert_non_null(pad);
    memset(pad, 'p', n + 1);
    pad[n] = '\0';
    json_object_set_new(msg, "value", json_string(pad));
    assert_int_equal(vg_proto_encode(msg, &out, &out_len), VG_OK);
    assert_int_equal(out_len, 4 + VG_PROTO_MAX_FRAME);

    vg_proto_decoder_init(&d);
    feed(&d, out, out_len);
    assert_int_equal(vg_proto_decoder_next(&d, &back, NULL, NULL), VG_OK);
    assert_true(json_equal(back, msg));
    json_decref(back);
    free(out);

    pad[n] = 'p';
    pad[n + 1] = '\0';
    json_object_set_new(msg, "value", json_string(pad));
    out = NULL;
    assert_int_equal(vg_proto_encode(msg, &out, &out_len), VG_ETOOBIG);
    assert_null(out);

    /* The same when the encoder adds "v" itself. */
    json_object_del(msg, "v");
    assert_int_equal(vg_proto_encode(msg, &out, &out_len), VG_ETOOBIG);
    assert_null(out);
    pad[n] = '\0';
    json_object_set_new(msg, "value", json_string(pad));
    assert_int_equal(vg_proto_encode(msg, &out, &out_len), VG_OK);
    assert_int_equal(out_len, 4 + VG_PROTO_MAX_FRAME);
    feed(&d, out, out_len);
    assert_int_equal(vg_proto_decoder_next(&d, &back, NULL, NULL), VG_OK);
    assert_int_equal(json_integer_value(json_object_get(back, "v")), 1);
    json_object_del(back, "v");
    assert_true(json_equal(back, msg));
    json_decref(back);
    free(out);

    json_decref(msg);
    free(pad);
    vg_proto_decoder_close(&d);
}

/* ---- bad frames ------------------------------------------------------- */

struct bad_case {
    const char *payload;
    size_t len; /* 0: strlen(payload) */
    int rc;
    long long id;
    const char *exact; /* whole error message, or NULL */
    const char *part;  /* part of it, or NULL */
};

static const struct bad_case bad_cases[] = {
    {"{\"v\":1,\"type\":}", 0, VG_EMALFORMED, -1,
     "frame 1: invalid JSON at line 1 column 15: unexpected token near '}'",
     NULL},
    {"{\"v\":1,\"type\":\"ping\",\"id\":3", 0, VG_EMALFORMED, -1,
     "frame 1: invalid JSON at line 1 column 27: '}' expected near end of file",
     NULL},
    {"{\"v\":1,\"type\":\"ping\"} x", 0, VG_EMALFORMED, -1, NULL,
     "frame 1: invalid JSON at line 1 column 23: end of file expected"},
    {"{\"v\":1,\n\"type\":\"ping\",\n\"id\":3,,}", 0, VG_EMALFORMED, -1, NULL,
     "frame 1: invalid JSON at line 3 column "},
    {"[1,2]", 0, VG_EMALFORMED, -1,
     "frame 1: expected a JSON object, got an array", NULL},
    {"42", 0, VG_EMALFORMED, -1, "frame 1: expected a JSON object, got an integer",
     NULL},
    {"\"ping\"", 0, VG_EMALFORMED, -1,
     "frame 1: expected a JSON object, got a string", NULL},
    {"null", 0, VG_EMALFORMED, -1, "frame 1: expected a JSON object, got null",
     NULL},
    {"{\"v\":1,\"id\":5}", 0, VG_EMALFORMED, 5, "frame 1: missing \"type\"",
     NULL},
    {"{\"v\":1,\"id\":6,\"type\":7}", 0, VG_EMALFORMED, 6,
     "frame 1: \"type\" is an integer, expected a string", NULL},
    {"{\"v\":1,\"id\":6,\"type\":null}", 0, VG_EMALFORMED, 6,
     "frame 1: \"type\" is null, expected a string", NULL},
    {"{\"v\":2,\"id\":8,\"type\":\"ping\"}", 0, VG_EUNSUPPORTED, 8,
     "frame 1: unsupported protocol version 2, this node speaks 1", NULL},
    {"{\"id\":9,\"type\":\"ping\"}", 0, VG_EUNSUPPORTED, 9,
     "frame 1: missing protocol version \"v\"", NULL},
    {"{\"v\":\"1\",\"id\":10,\"type\":\"ping\"}", 0, VG_EUNSUPPORTED, 10,
     "frame 1: protocol version \"v\" is a string, expected the integer 1",
     NULL},
    {"{\"v\":1.0,\"id\":10,\"type\":\"ping\"}", 0, VG_EUNSUPPORTED, 10, NULL,
     "is a real number"},
    /* Version is checked before type: a v2 frame may lay out differently. */
    {"{\"v\":0,\"id\":12}", 0, VG_EUNSUPPORTED, 12, NULL, "version 0"},
    {"{\"v\":1,\"id\":11,\"type\":\"ping\",\"type\":\"put\"}", 0, VG_EMALFORMED,
     -1, NULL, "frame 1: invalid JSON at line 1 column 35: duplicate object key"},
    {"{\"v\":1,\"type\":\"ping\",\"x\":{\"a\":1,\"a\":1}}", 0, VG_EMALFORMED, -1,
     NULL, "duplicate object key"},
    {"", 0, VG_EMALFORMED, -1, "frame 1: empty frame (length 0)", NULL},
    {"{\"v\":1,\"type\":\"a\0b\"}", 20, VG_EMALFORMED, -1,
     "frame 1: NUL byte at offset 16", NULL},
    {"{\"v\":1,\"type\":\"ping\"}\0", 22, VG_EMALFORMED, -1,
     "frame 1: NUL byte at offset 21", NULL},
    {"{\"v\":1,\"type\":\"a\\u0000b\"}", 0, VG_EMALFORMED, -1, NULL,
     "\\u0000 is not allowed"},
    {"{\"v\":1,\"type\":\"\xff\xfe\"}", 0, VG_EMALFORMED, -1, NULL,
     "unable to decode byte 0xff"},
    {"{\"v\":1,\"type\":\"ping\",\"id\":99999999999999999999}", 0, VG_EMALFORMED,
     -1, NULL, "too big integer"},
    {"{\"v\":2,\"id\":-4,\"type\":\"x\"}", 0, VG_EUNSUPPORTED, -1, NULL, NULL},
    {"{\"v\":2,\"id\":\"4\",\"type\":\"x\"}", 0, VG_EUNSUPPORTED, -1, NULL, NULL},
    {"{\"v\":2,\"id\":4.5,\"type\":\"x\"}", 0, VG_EUNSUPPORTED, -1, NULL, NULL},
};

/* Each bad frame, followed by a good one, fed at once and byte by byte. */
static void test_bad_frames(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const struct bad_case *c = &bad_cases[i];
        size_t len = c->len != 0 ? c->len : strlen(c->payload);
        int bytewise;

        for (bytewise = 0; bytewise < 2; bytewise++) {
            struct vg_proto_decoder d;
            struct bytes b = {0};
            size_t k;

            print_message("# case %zu%s\n", i, bytewise ? " byte by byte" : "");
            bytes_frame(&b, c->payload, len);
            bytes_ping(&b, 99);
            vg_proto_decoder_init(&d);
            if (bytewise) {
                for (k = 0; k < b.len; k++) {
                    feed(&d, b.p + k, 1);
                }
            } else {
                feed(&d, b.p, b.len);
            }
            expect_error(&d, c->rc, c->id, c->exact, c->part);
            expect_ping(&d, 99);
            assert_int_equal(d.frames, 2);
            expect_again(&d);
            bytes_free(&b);
            vg_proto_decoder_close(&d);
        }
    }
}

/* Bad frames in a row, with NULL id/errmsg pointers. */
static void test_bad_frames_in_a_row(void **state)
{
    struct vg_proto_decoder d;
    struct bytes b = {0};
    json_t *msg = NULL;
    int i;

    (void)state;
    bytes_json(&b, "");
    bytes_json(&b, "}");
    bytes_header(&b, 0xFFFFFFFFu);
    vg_proto_decoder_init(&d);
    feed(&d, b.p, b.len);
    for (i = 0; i < 2; i++) {
        assert_int_equal(vg_proto_decoder_next(&d, &msg, NULL, NULL),
                         VG_EMALFORMED);
        assert_null(msg);
    }
    assert_int_equal(vg_proto_decoder_next(&d, &msg, NULL, NULL), VG_ETOOBIG);
    assert_int_equal(d.skip, 0xFFFFFFFFu);
    assert_int_equal(vg_proto_decoder_next(&d, &msg, NULL, NULL), VG_EAGAIN);
    assert_int_equal(d.frames, 3);
    bytes_free(&b);
    vg_proto_decoder_close(&d);
    /* Closing twice, or an unused decoder, is harmless. */
    vg_proto_decoder_close(&d);
}

/* Error messages quote the peer's bytes (jansson's "near '...'"); control
 * characters among them are replaced, so that the message can be logged and
 * sent back safely; and a token too long to quote does not overflow it. */
static void test_errmsg_printable(void **state)
{
    struct vg_proto_decoder d;
    struct bytes b = {0};
    char json[600];
    size_t n;

    (void)state;
    bytes_json(&b, "\x01");
    bytes_json(&b, "{\"v\":1,\"type\":\x1b[2J}");
    bytes_json(&b, "{\"v\":1,\"id\":\x7f}");
    n = (size_t)snprintf(json, sizeof json, "{\"v\":1,\"type\":\"a");
    while (n < 500) {
        json[n++] = '\xc3';
        json[n++] = '\xa9';
    }
    json[n++] = '\x01';
    json[n++] = '"';
    json[n++] = '}';
    json[n] = '\0';
    bytes_json(&b, json);
    vg_proto_decoder_init(&d);
    feed(&d, b.p, b.len);
    expect_error(&d, VG_EMALFORMED, -1,
                 "frame 1: invalid JSON at line 1 column 1: "
                 "invalid token near '?'",
                 NULL);
    expect_error(&d, VG_EMALFORMED, -1,
                 "frame 2: invalid JSON at line 1 column 15: "
                 "invalid token near '?'",
                 NULL);
    expect_error(&d, VG_EMALFORMED, -1,
                 "frame 3: invalid JSON at line 1 column 13: "
                 "invalid token near '?'",
                 NULL);
    expect_error(&d, VG_EMALFORMED, -1,
                 "frame 4: invalid JSON at line 1 column 258: "
                 "control character 0x1",
                 NULL);
    bytes_free(&b);
    vg_proto_decoder_close(&d);
}

/* ---- encoder ---------------------------------------------------------- */

static void test_encode_refuses(void **state)
{
    json_t *arr = json_pack("[i]", 1);
    json_t *str = json_string("ping");
    json_t *obj = json_object();
    char *out = (char *)"untouched";
    size_t out_len = 12345;
    char *big = malloc(VG_PROTO_MAX_FRAME + 1);

    (void)state;
    assert_int_equal(vg_proto_encode(arr, &out, &out_len), VG_EINVAL);
    assert_int_equal(vg_proto_encode(str, &out, &out_len), VG_EINVAL);
    assert_int_equal(vg_proto_encode(NULL, &out, &out_len), VG_EINVAL);
    assert_int_equal(vg_proto_encode(obj, NULL, &out_len), VG_EINVAL);
    assert_string_equal(out, "untouched");
    assert_int_equal(out_len, 12345);

    assert_non_null(big);
    memset(big, 'b', VG_PROTO_MAX_FRAME);
    big[VG_PROTO_MAX_FRAME] = '\0';
    json_object_set_new(obj, "type", json_string("put"));
    json_object_set_new(obj, "value", json_string(big));
    assert_int_equal(vg_proto_encode(obj, &out, &out_len), VG_ETOOBIG);
    assert_string_equal(out, "untouched");

    free(big);
    json_decref(arr);
    json_decref(str);
    json_decref(obj);
}

/* ---- builders and accessors ------------------------------------------- */

static void test_error_builder(void **state)
{
    struct vg_proto_decoder d;
    json_t *e = vg_proto_error(7, "not_leader", "node 2 is a follower");
    json_t *expected = json_pack("{s:i,s:s,s:i,s:s,s:s}", "v", 1, "type",
                                 "error", "id", 7, "code", "not_leader",
                                 "message", "node 2 is a follower");
    json_t *back = NULL;
    char *out = NULL;
    size_t out_len = 0;
    long long id = -2;

    (void)state;
    assert_non_null(e);
    assert_true(json_equal(e, expected));
    assert_int_equal(vg_proto_encode(e, &out, &out_len), VG_OK);
    vg_proto_decoder_init(&d);
    feed(&d, out, out_len);
    assert_int_equal(vg_proto_decoder_next(&d, &back, &id, NULL), VG_OK);
    assert_int_equal(id, 7);
    assert_true(json_equal(back, expected));
    json_decref(back);
    json_decref(e);
    json_decref(expected);
    free(out);
    vg_proto_decoder_close(&d);

    /* No id: a push, or an answer to a frame whose id could not be read. */
    e = vg_proto_error(-1, "malformed", "frame 1: empty frame (length 0)");
    assert_non_null(e);
    assert_null(json_object_get(e, "id"));
    assert_string_equal(vg_proto_get_str(e, "code", ""), "malformed");
    assert_string_equal(vg_proto_get_str(e, "type", ""), "error");
    json_decref(e);

    /* A message that is not UTF-8 is repaired rather than lost. */
    e = vg_proto_error(3, "malformed", "near '\xff\xc3'");
    assert_non_null(e);
    assert_string_equal(vg_proto_get_str(e, "message", ""), "near '?" "?'");
    json_decref(e);

    assert_null(vg_proto_error(1, NULL, "x"));
    assert_null(vg_proto_error(1, "failed", NULL));
}

static void test_request_builder(void **state)
{
    json_t *r = vg_proto_request("status", 3);
    json_t *push = vg_proto_request("bye", -1);
    json_t *expected = json_pack("{s:i,s:s,s:i}", "v", 1, "type", "status",
                                 "id", 3);

    (void)state;
    assert_true(json_equal(r, expected));
    assert_non_null(push);
    assert_null(json_object_get(push, "id"));
    assert_string_equal(vg_proto_get_str(push, "type", ""), "bye");
    assert_null(vg_proto_request(NULL, 1));
    json_decref(r);
    json_decref(push);
    json_decref(expected);
}

static void test_accessors(void **state)
{
    json_t *m = json_pack("{s:s,s:i,s:f,s:s,s:b,s:n,s:I}", "type", "put", "n",
                          42, "real", 1.0, "numstr", "5", "flag", 1, "nil",
                          "big", (json_int_t)9007199254740993LL);

    (void)state;
    assert_string_equal(vg_proto_get_str(m, "type", "def"), "put");
    assert_string_equal(vg_proto_get_str(m, "absent", "def"), "def");
    assert_string_equal(vg_proto_get_str(m, "n", "def"), "def");
    assert_null(vg_proto_get_str(m, "nil", NULL));
    assert_string_equal(vg_proto_get_str(NULL, "type", "def"), "def");

    assert_int_equal(vg_proto_get_int(m, "n", -1), 42);
    assert_true(vg_proto_get_int(m, "big", -1) == 9007199254740993LL);
    assert_int_equal(vg_proto_get_int(m, "absent", -1), -1);
    assert_int_equal(vg_proto_get_int(m, "real", -1), -1);
    assert_int_equal(vg_proto_get_int(m, "numstr", -1), -1);
    assert_int_equal(vg_proto_get_int(m, "flag", -1), -1);
    assert_int_equal(vg_proto_get_int(m, "nil", -1), -1);
    assert_int_equal(vg_proto_get_int(m, "type", -7), -7);
    assert_int_equal(vg_proto_get_int(NULL, "n", -1), -1);
    json_decref(m);
}

/* ---- allocation failures ---------------------------------------------- */

/* jansson allocations: fail the one numbered fail_at (1-based; 0 never), and
 * count the blocks still live. */
static long fail_at;
static long alloc_calls;
static long live_blocks;

static void *counting_malloc(size_t n)
{
    void *p;
    alloc_calls++;
    if (fail_at != 0 && alloc_calls == fail_at) {
        return NULL;
    }
    p = malloc(n);
    if (p != NULL) {
        live_blocks++;
    }
    return p;
}

static void counting_free(void *p)
{
    if (p != NULL) {
        live_blocks--;
    }
    free(p);
}

static int counting_setup(void **state)
{
    (void)state;
    fail_at = 0;
    alloc_calls = 0;
    live_blocks = 0;
    json_set_alloc_funcs(counting_malloc, counting_free);
    return 0;
}

static int counting_teardown(void **state)
{
    (void)state;
    json_set_alloc_funcs(malloc, free);
    assert_int_equal(live_blocks, 0);
    return 0;
}

/* Every jansson allocation of a decode fails in turn: the frame is reported
 * as VG_ENOMEM and dropped, the next frame decodes, nothing leaks. */
static void test_decode_alloc_failures(void **state)
{
    static const char json[] =
        "{\"v\":1,\"type\":\"put\",\"id\":1,\"key\":\"k\",\"value\":[1,{\"a\":\"b\"}]}";
    long n;
    long nomem = 0;
    int succeeded = 0;

    (void)state;
    for (n = 1; !succeeded; n++) {
        struct vg_proto_decoder d;
        struct bytes b = {0};
        char errmsg[VG_ERRMSG_SIZE];
        json_t *msg = NULL;
        int rc;

        assert_true(n < 1000);
        bytes_json(&b, json);
        bytes_ping(&b, 2);
        vg_proto_decoder_init(&d);
        feed(&d, b.p, b.len);
        alloc_calls = 0;
        fail_at = n;
        rc = vg_proto_decoder_next(&d, &msg, NULL, errmsg);
        fail_at = 0;
        if (rc == VG_OK) {
            assert_true(n > alloc_calls); /* nothing was refused */
            json_decref(msg);
            succeeded = 1;
        } else if (rc == VG_ENOMEM) {
            assert_null(msg);
            assert_string_equal(errmsg, "frame 1: out of memory while parsing");
            nomem++;
        } else {
            /* jansson turns a failed allocation of a string token into a
             * syntax error ("not very nice", says its source): the frame is
             * still dropped cleanly. */
            assert_int_equal(rc, VG_EMALFORMED);
            assert_null(msg);
            assert_contains(errmsg, "frame 1: invalid JSON");
        }
        expect_ping(&d, 2);
        assert_int_equal(live_blocks, 0);
        bytes_free(&b);
        vg_proto_decoder_close(&d);
    }
    assert_true(n > 3);     /* the loop did inject failures */
    assert_true(nomem > 0); /* and some were reported as such */
}

/* Every jansson allocation of an encode (with "v" to add) fails in turn. */
static void test_encode_alloc_failures(void **state)
{
    json_t *msg = json_pack("{s:s,s:i,s:{s:[i,i]}}", "type", "status", "id", 3,
                            "x", "y", 1, 2);
    long before = live_blocks;
    long n;
    int succeeded = 0;

    (void)state;
    assert_non_null(msg);
    for (n = 1; !succeeded; n++) {
        char *out = NULL;
        size_t out_len = 0;
        int rc;

        assert_true(n < 1000);
        alloc_calls = 0;
        fail_at = n;
        rc = vg_proto_encode(msg, &out, &out_len);
        fail_at = 0;
        if (rc == VG_OK) {
            assert_true(n > alloc_calls);
            assert_non_null(out);
            free(out);
            succeeded = 1;
        } else {
            assert_int_equal(rc, VG_ENOMEM);
            assert_null(out);
        }
        assert_int_equal(live_blocks, before);
        assert_null(json_object_get(msg, "v"));
    }
    assert_true(n > 2);
    json_decref(msg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_encode_adds_version),
        cmocka_unit_test(test_byte_at_a_time),
        cmocka_unit_test(test_several_frames_one_feed),
        cmocka_unit_test(test_many_small_frames),
        cmocka_unit_test(test_buffer_bounded),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_oversized_streamed),
        cmocka_unit_test(test_oversized_in_one_feed),
        cmocka_unit_test(test_oversized_pending),
        cmocka_unit_test(test_limit_boundary),
        cmocka_unit_test(test_bad_frames),
        cmocka_unit_test(test_bad_frames_in_a_row),
        cmocka_unit_test(test_errmsg_printable),
        cmocka_unit_test(test_encode_refuses),
        cmocka_unit_test(test_error_builder),
        cmocka_unit_test(test_request_builder),
        cmocka_unit_test(test_accessors),
        cmocka_unit_test_setup_teardown(test_decode_alloc_failures,
                                        counting_setup, counting_teardown),
        cmocka_unit_test_setup_teardown(test_encode_alloc_failures,
                                        counting_setup, counting_teardown),
    };
    return cmocka_run_group_tests_name("proto", tests, NULL, NULL);
}
