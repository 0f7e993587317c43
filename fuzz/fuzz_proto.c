/* libFuzzer target for the client protocol decoder (proto/proto.h).
 *
 * Input layout: byte 0 holds options, bytes 1..N (N = byte 0 & 7) are chunk
 * sizes, the rest is a piece of the byte stream a peer would send. The stream
 * is that piece repeated 1 + 3 * (byte 0 >> 4) times, so that short inputs
 * still make the decoder grow, compact and release its buffer. It is fed to
 * one decoder in chunks of those sizes (cycled; each is 1..256 bytes; N = 0
 * feeds the whole stream at once), pulling messages after every chunk or, if
 * bit 3 of the options is set, only at the end so that many frames pile up in
 * the buffer. A second decoder gets the whole stream in one feed. Checked:
 *   - the two decoders produce the same results (code, id, message, error
 *     text): how the bytes are split never matters;
 *   - every result is one of the documented codes, with *msg set exactly on
 *     VG_OK, an error text on each error, in UTF-8 so that it can be sent
 *     back;
 *   - a valid message has "v":1 and a string "type";
 *   - a valid message re-encodes (unless re-encoding grew it past the limit)
 *     and decodes again to an equal message.
 * Any failed check aborts, which libFuzzer reports as a crash. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

#include "fuzz_check.h"

struct result {
    int rc;
    long long id;
    json_t *msg;
    char errmsg[VG_ERRMSG_SIZE];
};

struct results {
    struct result *r;
    size_t n;
    size_t cap;
};

static void check_roundtrip(json_t *msg)
{
    struct vg_proto_decoder d;
    json_t *back = NULL;
    char *out = NULL;
    size_t out_len = 0;
    int rc = vg_proto_encode(msg, &out, &out_len);

    /* Escapes and number forms can make the re-encoded text longer than
     * the frame it came from ("1e2" becomes "100.0"). */
    CHECK(rc == VG_OK || rc == VG_ETOOBIG);
    if (rc != VG_OK) {
        return;
    }
    CHECK(out_len > VG_PROTO_HEADER_SIZE &&
          out_len <= VG_PROTO_HEADER_SIZE + VG_PROTO_MAX_FRAME);
    vg_proto_decoder_init(&d);
    CHECK(vg_proto_decoder_feed(&d, out, out_len) == VG_OK);
    CHECK(vg_proto_decoder_next(&d, &back, NULL, NULL) == VG_OK);
    CHECK(json_equal(msg, back));
    json_decref(back);
    CHECK(vg_proto_decoder_next(&d, &back, NULL, NULL) == VG_EAGAIN);
    CHECK(back == NULL && d.len == 0);
    vg_proto_decoder_close(&d);
    free(out);
}

/* Pull everything D has into RS, checking each result on its own. */
static void drain(struct vg_proto_decoder *d, struct results *rs)
{
    for (;;) {
        struct result r;
        json_t *text;

        r.msg = NULL;
        r.id = -2;
        r.rc = vg_proto_decoder_next(d, &r.msg, &r.id, r.errmsg);
        if (r.rc == VG_EAGAIN) {
            CHECK(r.msg == NULL && r.id == -1 && r.errmsg[0] == '\0');
            return;
        }
        CHECK(r.rc == VG_OK || r.rc == VG_ETOOBIG || r.rc == VG_EMALFORMED ||
              r.rc == VG_EUNSUPPORTED);
        CHECK(r.id >= -1);
        if (r.rc == VG_OK) {
            json_t *v;
            json_t *id;

            CHECK(r.msg != NULL && json_is_object(r.msg));
            CHECK(r.errmsg[0] == '\0');
            v = json_object_get(r.msg, "v");
            CHECK(json_is_integer(v) &&
                  json_integer_value(v) == VG_PROTO_VERSION);
            CHECK(json_is_string(json_object_get(r.msg, "type")));
            id = json_object_get(r.msg, "id");
            CHECK(r.id == (json_is_integer(id) && json_integer_value(id) >= 0
                               ? json_integer_value(id)
                               : -1));
            check_roundtrip(r.msg);
        } else {
            CHECK(r.msg == NULL);
            CHECK(strncmp(r.errmsg, "frame ", 6) == 0);
            text = json_string(r.errmsg);
            CHECK(text != NULL);
            json_decref(text);
        }
        if (rs->n == rs->cap) {
            size_t cap = rs->cap * 2 + 16;
            struct result *grown = realloc(rs->r, cap * sizeof *grown);
            CHECK(grown != NULL);
            rs->r = grown;
            rs->cap = cap;
        }
        rs->r[rs->n++] = r;
    }
}

static void results_free(struct results *rs)
{
    size_t i;
    for (i = 0; i < rs->n; i++) {
        json_decref(rs->r[i].msg);
    }
    free(rs->r);
}

int LLVMFuzzerTestOneInput(const uint8_t *input, size_t input_size)
{
    struct vg_proto_decoder chunked;
    struct vg_proto_decoder whole;
    struct results a = {0};
    struct results b = {0};
    const uint8_t *sizes;
    unsigned char *data;
    size_t piece;
    size_t nsizes;
    size_t repeat;
    int drain_at_end;
    size_t size;
    size_t pos;
    size_t i;

    if (input_size == 0) {
        return 0;
    }
    nsizes = input[0] & 7u;
    drain_at_end = (input[0] & 8u) != 0;
    repeat = 1 + 3 * (size_t)(input[0] >> 4);
    if (input_size < 1 + nsizes) {
        return 0;
    }
    sizes = input + 1;
    piece = input_size - 1 - nsizes;
    size = piece * repeat;
    data = malloc(size + 1);
    CHECK(data != NULL);
    for (i = 0; i < repeat; i++) {
        memcpy(data + i * piece, input + 1 + nsizes, piece);
    }

    vg_proto_decoder_init(&chunked);
    CHECK(vg_proto_decoder_feed(&chunked, data, 0) == VG_OK);
    for (pos = 0, i = 0; pos < size; i++) {
        size_t n = nsizes == 0 ? size : (size_t)sizes[i % nsizes] + 1;
        if (n > size - pos) {
            n = size - pos;
        }
        CHECK(vg_proto_decoder_feed(&chunked, data + pos, n) == VG_OK);
        pos += n;
        if (!drain_at_end) {
            drain(&chunked, &a);
        }
    }
    drain(&chunked, &a);

    vg_proto_decoder_init(&whole);
    CHECK(vg_proto_decoder_feed(&whole, data, size) == VG_OK);
    drain(&whole, &b);

    CHECK(a.n == b.n);
    for (i = 0; i < a.n; i++) {
        CHECK(a.r[i].rc == b.r[i].rc);
        CHECK(a.r[i].id == b.r[i].id);
        CHECK(strcmp(a.r[i].errmsg, b.r[i].errmsg) == 0);
        CHECK((a.r[i].msg == NULL) == (b.r[i].msg == NULL));
        CHECK(a.r[i].msg == NULL || json_equal(a.r[i].msg, b.r[i].msg));
    }
    CHECK(chunked.frames == b.n && whole.frames == b.n);
    CHECK(chunked.len == whole.len && chunked.skip == whole.skip);
    CHECK(whole.len == 0 || memcmp(chunked.buf, whole.buf, whole.len) == 0);

    free(data);
    results_free(&a);
    results_free(&b);
    vg_proto_decoder_close(&chunked);
    vg_proto_decoder_close(&whole);
    return 0;
}
