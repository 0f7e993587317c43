/* Vigil client protocol codec: length-prefixed JSON frames (see proto.h and
 * MESSAGES.md).
 *
 * Decoding, happy path: vg_proto_decoder_feed() appends the bytes that
 * arrived; vg_proto_decoder_next() finds a complete frame at the front of the
 * buffer, parses it with jansson, checks "v" and "type", hands the object to
 * the caller and drops the frame from the buffer.
 *
 * Failure modes, each confined to the frame that caused it:
 *   - Oversized frame (length > VG_PROTO_MAX_FRAME). feed() notices the
 *     header as soon as its fourth byte arrives, keeps only the 4-byte header
 *     (a "stub") and sets d->skip to the payload length, so that the payload
 *     is discarded as it arrives and never buffered. When the stub reaches
 *     the front, next() reports VG_ETOOBIG and drops it. The invariant that
 *     makes this unambiguous: a header in the buffer whose length exceeds the
 *     limit is never followed by its payload.
 *   - Zero-length frame, NUL byte, invalid JSON, duplicate keys, non-object,
 *     missing or non-string "type": VG_EMALFORMED.
 *   - "v" missing or not the integer VG_PROTO_VERSION: VG_EUNSUPPORTED.
 *   - jansson out of memory while parsing a frame: VG_ENOMEM; that frame is
 *     dropped like a bad one. (When jansson fails to allocate a string token
 *     it reports a syntax error instead, so VG_EMALFORMED is possible too.)
 * In every case the whole frame is consumed, so the next call starts at the
 * next frame's header and the stream stays in sync.
 *
 * feed() is all-or-nothing: it first works out how many bytes it will keep,
 * reserves room for them, and only then changes the decoder, so VG_ENOMEM
 * leaves the decoder exactly as it was.
 *
 * Buffer layout. The struct has no read offset, and moving the remaining
 * bytes down after every frame would make draining a buffer of many small
 * frames quadratic (a 64 KiB read of 4-byte frames would move ~500 MB). So
 * d->buf points at the first unconsumed byte inside a larger allocation, the
 * allocation's start is stored in the PREFIX bytes just before d->buf
 * (consumed bytes, or the reserved prefix itself), and d->cap counts the
 * bytes usable from d->buf to the end of the allocation. Consuming a frame
 * advances d->buf; the unconsumed bytes are moved down only when the
 * allocation runs out at the end and enough was consumed to pay for the
 * move. */
#include "proto.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define PREFIX sizeof(unsigned char *)

/* An idle decoder keeps at most this much memory; bigger buffers (left over
 * from a large frame) are freed once they are empty. */
#define KEEP_IDLE (64u * 1024u)
#define MIN_ALLOC 4096u

/* ---- small helpers ---------------------------------------------------- */

static uint32_t get_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Length of the well-formed UTF-8 sequence at S (N bytes available), or 0 if
 * the bytes there are not one (overlong forms, surrogates and code points
 * above U+10FFFF are not). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    size_t need;
    size_t i;

    if (c < 0x80) {
        return 1;
    }
    if (c < 0xC2) {
        return 0;
    } else if (c < 0xE0) {
        need = 2;
    } else if (c < 0xF0) {
        need = 3;
        if (c == 0xE0) {
            lo = 0xA0;
        } else if (c == 0xED) {
            hi = 0x9F;
        }
    } else if (c < 0xF5) {
        need = 4;
        if (c == 0xF0) {
            lo = 0x90;
        } else if (c == 0xF4) {
            hi = 0x8F;
        }
    } else {
        return 0;
    }
    if (n < need || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (i = 2; i < need; i++) {
        if (s[i] < 0x80 || s[i] > 0xBF) {
            return 0;
        }
    }
    return need;
}

/* Replace, in place, every byte of S that is not part of well-formed UTF-8,
 * and every ASCII control character, by '?'. Error messages quote bytes from
 * the peer's frame (jansson's "near '...'") and may be cut in the middle of a
 * character by the VG_ERRMSG_SIZE limit; after this they can be logged and
 * sent back in an "error" message (json_string() refuses invalid UTF-8). */
static void sanitize(char *s)
{
    unsigned char *p = (unsigned char *)s;
    size_t n = strlen(s);

    while (n > 0) {
        size_t k = utf8_len(p, n);
        if (k == 0 || (k == 1 && (*p < 0x20 || *p == 0x7F))) {
            *p = '?';
            k = 1;
        }
        p += k;
        n -= k;
    }
}

/* "an integer", "a string", ... for error messages. */
static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a real number";
    case JSON_TRUE:
        return "true";
    case JSON_FALSE:
        return "false";
    case JSON_NULL:
        return "null";
    }
    return "an unknown JSON value";
}

/* ---- decoder buffer --------------------------------------------------- */

static unsigned char *alloc_start(const struct vg_proto_decoder *d)
{
    unsigned char *base;
    memcpy(&base, d->buf - PREFIX, sizeof base);
    return base;
}

/* Bytes already consumed in front of d->buf. */
static size_t consumed(const struct vg_proto_decoder *d)
{
    return (size_t)(d->buf - (alloc_start(d) + PREFIX));
}

/* Point d->buf at START inside the allocation BASE of PREFIX + TOTAL bytes. */
static void set_start(struct vg_proto_decoder *d, unsigned char *base,
                      size_t total, unsigned char *start)
{
    d->buf = start;
    d->cap = (size_t)(base + PREFIX + total - start);
    memcpy(start - PREFIX, &base, sizeof base);
}

/* Make room for EXTRA more bytes after the buffered ones. */
static int reserve(struct vg_proto_decoder *d, size_t extra)
{
    unsigned char *base = NULL;
    unsigned char *fresh;
    size_t total = 0;
    size_t need;

    if (extra <= d->cap - d->len) {
        return VG_OK;
    }
    if (extra > SIZE_MAX / 4 - d->len) {
        return VG_ENOMEM;
    }
    need = d->len + extra;
    if (d->buf != NULL) {
        size_t done = consumed(d);
        base = alloc_start(d);
        total = done + d->cap;
        /* Moving LEN bytes is paid for by at least LEN consumed ones. */
        if (need <= total && done >= d->len) {
            memmove(base + PREFIX, d->buf, d->len);
            set_start(d, base, total, base + PREFIX);
            return VG_OK;
        }
    }
    total = total * 2 > MIN_ALLOC ? total * 2 : MIN_ALLOC;
    if (total < need) {
        total = need;
    }
    fresh = malloc(PREFIX + total);
    if (fresh == NULL) {
        return VG_ENOMEM;
    }
    if (d->len > 0) {
        memcpy(fresh + PREFIX, d->buf, d->len);
    }
    free(base);
    set_start(d, fresh, total, fresh + PREFIX);
    return VG_OK;
}

/* Drop the first N buffered bytes. */
static void consume(struct vg_proto_decoder *d, size_t n)
{
    unsigned char *base = alloc_start(d);
    size_t total = consumed(d) + d->cap;

    d->len -= n;
    if (d->len > 0) {
        set_start(d, base, total, d->buf + n);
    } else if (total > KEEP_IDLE) {
        free(base);
        d->buf = NULL;
        d->cap = 0;
    } else {
        set_start(d, base, total, base + PREFIX);
    }
}

/* Size of the frame whose header is HDR, as stored in the buffer: an
 * oversized frame is stored as its bare header (see the file comment). */
static size_t stored_size(uint32_t length)
{
    return length > VG_PROTO_MAX_FRAME ? VG_PROTO_HEADER_SIZE
                                       : VG_PROTO_HEADER_SIZE + (size_t)length;
}

void vg_proto_decoder_init(struct vg_proto_decoder *d)
{
    memset(d, 0, sizeof *d);
}

void vg_proto_decoder_close(struct vg_proto_decoder *d)
{
    if (d->buf != NULL) {
        free(alloc_start(d));
    }
    memset(d, 0, sizeof *d);
}

/* Where feed() stands in the byte stream: bytes still to discard, and the
 * bytes present of the frame being assembled at the end of the buffer (its
 * header, once complete, is copied to HDR). */
struct scan {
    size_t skip;
    size_t have;
    unsigned char hdr[VG_PROTO_HEADER_SIZE];
};

static void scan_start(const struct vg_proto_decoder *d, struct scan *s)
{
    size_t pos = 0;

    /* Walk the complete frames; usually there are none, as callers drain
     * the decoder after every feed. */
    while (d->len - pos >= VG_PROTO_HEADER_SIZE) {
        size_t size = stored_size(get_be32(d->buf + pos));
        if (d->len - pos < size) {
            break;
        }
        pos += size;
    }
    s->skip = d->skip;
    s->have = d->len - pos;
    if (s->have > 0) {
        memcpy(s->hdr, d->buf + pos,
               s->have < VG_PROTO_HEADER_SIZE ? s->have : VG_PROTO_HEADER_SIZE);
    }
}

/* Run DATA through the framing state machine S. With COPY, append the bytes
 * to keep to the buffer (room must have been reserved); return their
 * count. */
static size_t scan_run(struct vg_proto_decoder *d, struct scan *s,
                       const unsigned char *data, size_t n, bool copy)
{
    size_t kept = 0;

    while (n > 0) {
        size_t k;
        size_t want;

        if (s->skip > 0) {
            k = s->skip < n ? s->skip : n;
            s->skip -= k;
            data += k;
            n -= k;
            continue;
        }
        if (s->have < VG_PROTO_HEADER_SIZE) {
            want = VG_PROTO_HEADER_SIZE - s->have;
        } else {
            want = stored_size(get_be32(s->hdr)) - s->have;
        }
        k = want < n ? want : n;
        if (s->have < VG_PROTO_HEADER_SIZE) {
            size_t h = VG_PROTO_HEADER_SIZE - s->have;
            memcpy(s->hdr + s->have, data, h < k ? h : k);
        }
        if (copy) {
            memcpy(d->buf + d->len, data, k);
            d->len += k;
        }
        kept += k;
        s->have += k;
        data += k;
        n -= k;
        if (s->have >= VG_PROTO_HEADER_SIZE) {
            uint32_t length = get_be32(s->hdr);
            if (s->have == stored_size(length)) {
                /* Frame complete (or a stub: start skipping its payload). */
                if (length > VG_PROTO_MAX_FRAME) {
                    s->skip = length;
                }
                s->have = 0;
            }
        }
    }
    return kept;
}

int vg_proto_decoder_feed(struct vg_proto_decoder *d, const void *data,
                          size_t n)
{
    struct scan dry;
    struct scan s;
    size_t keep;
    int rc;

    if (n == 0) {
        return VG_OK;
    }
    scan_start(d, &s);
    dry = s;
    keep = scan_run(d, &dry, data, n, false);
    rc = reserve(d, keep);
    if (rc != VG_OK) {
        return rc;
    }
    scan_run(d, &s, data, n, true);
    d->skip = s.skip;
    return VG_OK;
}

/* ---- decoding one frame ----------------------------------------------- */

/* Check a complete payload P of N bytes (frame number FRAME). */
static int parse(const unsigned char *p, size_t n, uint64_t frame,
                 json_t **msg, long long *id, char *errmsg)
{
    const unsigned char *nul;
    json_error_t err;
    json_t *v;
    json_t *member;

    if (n == 0) {
        vg_errf(errmsg, "frame %" PRIu64 ": empty frame (length 0)", frame);
        return VG_EMALFORMED;
    }
    /* jansson stops at a raw NUL and reports a confusing "end of file". */
    nul = memchr(p, '\0', n);
    if (nul != NULL) {
        vg_errf(errmsg, "frame %" PRIu64 ": NUL byte at offset %zu", frame,
                (size_t)(nul - p));
        return VG_EMALFORMED;
    }
    /* No JSON_ALLOW_NUL: "\u0000" in a string is refused too. DECODE_ANY
     * lets a scalar parse, so that it is reported as "not an object". */
    memset(&err, 0, sizeof err);
    v = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
                   &err);
    if (v == NULL) {
        /* When its very first allocation fails, jansson returns without
         * filling ERR (whose code then stays json_error_unknown, text
         * empty). */
        if (json_error_code(&err) == json_error_out_of_memory ||
            err.text[0] == '\0') {
            vg_errf(errmsg, "frame %" PRIu64 ": out of memory while parsing",
                    frame);
            return VG_ENOMEM;
        }
        vg_errf(errmsg, "frame %" PRIu64 ": invalid JSON at line %d column %d: %s",
                frame, err.line, err.column, err.text);
        return VG_EMALFORMED;
    }
    if (!json_is_object(v)) {
        vg_errf(errmsg, "frame %" PRIu64 ": expected a JSON object, got %s",
                frame, type_name(v));
        json_decref(v);
        return VG_EMALFORMED;
    }
    member = json_object_get(v, "id");
    if (json_is_integer(member) && json_integer_value(member) >= 0) {
        *id = json_integer_value(member);
    }
    member = json_object_get(v, "v");
    if (member == NULL) {
        vg_errf(errmsg, "frame %" PRIu64 ": missing protocol version \"v\"",
                frame);
        json_decref(v);
        return VG_EUNSUPPORTED;
    }
    if (!json_is_integer(member)) {
        vg_errf(errmsg,
                "frame %" PRIu64 ": protocol version \"v\" is %s, "
                "expected the integer %d",
                frame, type_name(member), VG_PROTO_VERSION);
        json_decref(v);
        return VG_EUNSUPPORTED;
    }
    if (json_integer_value(member) != VG_PROTO_VERSION) {
        vg_errf(errmsg,
                "frame %" PRIu64 ": unsupported protocol version %" JSON_INTEGER_FORMAT
                ", this node speaks %d",
                frame, json_integer_value(member), VG_PROTO_VERSION);
        json_decref(v);
        return VG_EUNSUPPORTED;
    }
    member = json_object_get(v, "type");
    if (member == NULL) {
        vg_errf(errmsg, "frame %" PRIu64 ": missing \"type\"", frame);
        json_decref(v);
        return VG_EMALFORMED;
    }
    if (!json_is_string(member)) {
        vg_errf(errmsg, "frame %" PRIu64 ": \"type\" is %s, expected a string",
                frame, type_name(member));
        json_decref(v);
        return VG_EMALFORMED;
    }
    *msg = v;
    return VG_OK;
}

int vg_proto_decoder_next(struct vg_proto_decoder *d, json_t **msg,
                          long long *id_out, char *errmsg)
{
    long long id = -1;
    uint32_t length;
    int rc;

    *msg = NULL;
    if (id_out != NULL) {
        *id_out = -1;
    }
    if (errmsg != NULL) {
        errmsg[0] = '\0';
    }
    if (d->len < VG_PROTO_HEADER_SIZE) {
        return VG_EAGAIN;
    }
    length = get_be32(d->buf);
    if (length > VG_PROTO_MAX_FRAME) {
        /* A stub: the payload was never buffered (d->skip may still be
         * discarding it). */
        d->frames++;
        consume(d, VG_PROTO_HEADER_SIZE);
        vg_errf(errmsg, "frame %" PRIu64 ": length %" PRIu32 " exceeds limit %u",
                d->frames, length, VG_PROTO_MAX_FRAME);
        return VG_ETOOBIG;
    }
    if (d->len - VG_PROTO_HEADER_SIZE < length) {
        return VG_EAGAIN;
    }
    d->frames++;
    rc = parse(d->buf + VG_PROTO_HEADER_SIZE, length, d->frames, msg, &id,
               errmsg);
    consume(d, VG_PROTO_HEADER_SIZE + (size_t)length);
    if (rc != VG_OK && errmsg != NULL) {
        sanitize(errmsg);
    }
    if (id_out != NULL) {
        *id_out = id;
    }
    return rc;
}

/* ---- encoding and builders -------------------------------------------- */

/* The frame being encoded, grown as jansson writes it. */
struct frame_out {
    char *buf;
    size_t len, cap;   /* LEN bytes written, the header's included */
    size_t skip;       /* bytes of jansson's output still to drop */
    bool too_big;
};

static int frame_put(const char *s, size_t n, void *arg)
{
    struct frame_out *o = arg;
    size_t drop = n < o->skip ? n : o->skip;

    o->skip -= drop;
    s += drop;
    n -= drop;
    if (n > VG_PROTO_HEADER_SIZE + VG_PROTO_MAX_FRAME - o->len) {
        o->too_big = true;
        return -1;
    }
    if (o->len + n > o->cap) {
        size_t cap = o->cap * 2;
        while (cap < o->len + n) {
            cap *= 2;
        }
        char *p = realloc(o->buf, cap);
        if (p == NULL) {
            return -1;
        }
        o->buf = p;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    return 0;
}

/* One pass of jansson's writer into a buffer that grows (it used to dump
 * twice, once to measure, and to copy MSG when "v" had to be added: a
 * tenth of the leader's time answering pipelined acks went there). With
 * no "v" in MSG, the frame starts with {"v":N and jansson's own "{" is
 * dropped: the bytes a copy of MSG with "v" first would give. */
int vg_proto_encode(json_t *msg, char **out, size_t *out_len)
{
    struct frame_out o = {.cap = 256};
    int n;

    if (!json_is_object(msg) || out == NULL || out_len == NULL) {
        return VG_EINVAL;
    }
    if ((o.buf = malloc(o.cap)) == NULL) {
        return VG_ENOMEM;
    }
    o.len = VG_PROTO_HEADER_SIZE;
    if (json_object_get(msg, "v") == NULL) {
        n = snprintf(o.buf + o.len, o.cap - o.len, "{\"v\":%d%s", VG_PROTO_VERSION,
                     json_object_size(msg) > 0 ? "," : "");
        o.len += (size_t)n;
        o.skip = 1;
    }
    /* It fails only when out of memory, when the frame grows past the
     * limit, or when MSG contains a reference cycle (which the builders
     * cannot create). */
    if (json_dump_callback(msg, frame_put, &o, JSON_COMPACT) != 0) {
        free(o.buf);
        return o.too_big ? VG_ETOOBIG : VG_ENOMEM;
    }
    put_be32((unsigned char *)o.buf, (uint32_t)(o.len - VG_PROTO_HEADER_SIZE));
    *out = o.buf;
    *out_len = o.len;
    return VG_OK;
}

/* A new {"v":1,"type":TYPE} object, with "id" when ID >= 0. */
static json_t *message(const char *type, long long id)
{
    json_t *m;

    if (type == NULL) {
        return NULL;
    }
    m = json_object();
    if (m == NULL ||
        json_object_set_new(m, "v", json_integer(VG_PROTO_VERSION)) != 0 ||
        json_object_set_new(m, "type", json_string(type)) != 0 ||
        (id >= 0 && json_object_set_new(m, "id", json_integer(id)) != 0)) {
        json_decref(m);
        return NULL;
    }
    return m;
}

json_t *vg_proto_request(const char *type, long long id)
{
    return message(type, id);
}

/* A string member from MESSAGE even when it is not valid UTF-8 (it often
 * quotes the peer's bytes): bad bytes become '?'. */
static json_t *lenient_string(const char *text)
{
    json_t *s = json_string(text);
    char *copy;

    if (s != NULL) {
        return s;
    }
    copy = strdup(text);
    if (copy == NULL) {
        return NULL;
    }
    sanitize(copy);
    s = json_string(copy);
    free(copy);
    return s;
}

json_t *vg_proto_error(long long id, const char *code, const char *message_text)
{
    json_t *m;

    if (code == NULL || message_text == NULL) {
        return NULL;
    }
    m = message("error", id);
    if (m == NULL ||
        json_object_set_new(m, "code", json_string(code)) != 0 ||
        json_object_set_new(m, "message", lenient_string(message_text)) != 0) {
        json_decref(m);
        return NULL;
    }
    return m;
}

const char *vg_proto_get_str(const json_t *msg, const char *key,
                             const char *def)
{
    const json_t *v = json_object_get(msg, key);
    return json_is_string(v) ? json_string_value(v) : def;
}

long long vg_proto_get_int(const json_t *msg, const char *key, long long def)
{
    const json_t *v = json_object_get(msg, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : def;
}

const char *vg_proto_text_in(const json_t *texts, const char *lang,
                             const char *def)
{
    const char *key;
    json_t *v;

    if (lang != NULL && json_is_string(json_object_get(texts, lang))) {
        return json_string_value(json_object_get(texts, lang));
    }
    if (json_is_string(json_object_get(texts, "en"))) {
        return json_string_value(json_object_get(texts, "en"));
    }
    json_object_foreach((json_t *)texts, key, v) {
        if (json_is_string(v)) {
            return json_string_value(v);
        }
    }
    return def;
}
