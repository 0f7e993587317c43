/* The chunk codec (sample_chunk.h has the format and why). */
#include <string.h>

#include "../common/common.h"
#include "sample_chunk.h"

#define VERSION 1u
#define T_END (UINT64_C(1) << 53)
#define VARINT_MAX 10u

size_t vg_chunk_bound(size_t n)
{
    /* version, n, and per sample a head, a varint and 8 value bytes */
    return 1 + VARINT_MAX + n * (1 + VARINT_MAX + 8);
}

static size_t put_varint(unsigned char *p, uint64_t v)
{
    size_t k = 0;
    while (v >= 0x80) {
        p[k++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    p[k++] = (unsigned char)v;
    return k;
}

static uint64_t zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static int64_t unzigzag(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

static uint64_t bits_of(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

int vg_chunk_encode(const struct vg_chunk_sample *s, size_t n, unsigned char *out,
                    size_t *len)
{
    uint64_t prev_bits = 0, prev_t = 0, prev_period = 0;
    size_t k = 0;

    *len = 0;
    if (n < 1 || n > VG_CHUNK_SAMPLES_MAX) {
        return VG_EINVAL;
    }
    out[k++] = VERSION;
    k += put_varint(out + k, n);
    for (size_t i = 0; i < n; i++) {
        uint64_t bits = bits_of(s[i].value), x = bits ^ prev_bits, tv;
        unsigned lz = 0, tz = 0, m;

        if (s[i].t >= T_END || (i > 0 && s[i].t <= prev_t)) {
            return VG_EINVAL;
        }
        if (x != 0) {
            while ((x >> (56 - 8 * lz)) == 0) {
                lz++;
            }
            while (((x >> (8 * tz)) & 0xff) == 0) {
                tz++;
            }
        }
        m = x == 0 ? 0 : 8 - lz - tz;
        out[k++] = (unsigned char)((s[i].bad ? 0x80 : 0) | (x == 0 ? 0 : lz << 4) | m);
        if (i == 0) {
            tv = s[i].t;
        } else if (i == 1) {
            tv = s[i].t - prev_t;
        } else {
            tv = zigzag((int64_t)(s[i].t - prev_t) - (int64_t)prev_period);
        }
        k += put_varint(out + k, tv);
        for (unsigned b = 0; b < m; b++) {
            out[k++] = (unsigned char)(x >> (8 * (7 - lz - b)));
        }
        if (i > 0) {
            prev_period = s[i].t - prev_t;
        }
        prev_t = s[i].t;
        prev_bits = bits;
    }
    *len = k;
    return VG_OK;
}

/* A reader of DATA that remembers where it is, for the messages. */
struct reader {
    const unsigned char *p;
    size_t len, at;
    char *errmsg;
};

static int fail(struct reader *r, const char *what)
{
    vg_errf(r->errmsg, "archive chunk of %zu bytes, at byte %zu: %s", r->len, r->at,
            what);
    return VG_EMALFORMED;
}

static int get_varint(struct reader *r, const char *what, uint64_t *out)
{
    uint64_t v = 0;
    size_t start = r->at;

    for (unsigned i = 0;; i++) {
        unsigned char c;
        if (r->at == r->len) {
            r->at = start;
            return fail(r, what);
        }
        c = r->p[r->at++];
        /* The tenth byte holds bit 63 only. */
        if (i == VARINT_MAX - 1 && c > 1) {
            r->at = start;
            return fail(r, "a number longer than 64 bits");
        }
        v |= (uint64_t)(c & 0x7f) << (7 * i);
        if ((c & 0x80) == 0) {
            if (c == 0 && i > 0) {
                r->at = start;
                return fail(r, "a number with a redundant zero byte");
            }
            break;
        }
    }
    *out = v;
    return VG_OK;
}

int vg_chunk_count(const unsigned char *data, size_t len, size_t *n, char *errmsg)
{
    struct reader r = {.p = data, .len = len, .errmsg = errmsg};
    uint64_t v;
    int rv;

    *n = 0;
    if (len == 0 || data[0] != VERSION) {
        return fail(&r, len == 0 ? "empty" : "not format version 1");
    }
    r.at = 1;
    if ((rv = get_varint(&r, "the sample count is cut short", &v)) != VG_OK) {
        return rv;
    }
    if (v < 1 || v > VG_CHUNK_SAMPLES_MAX) {
        r.at = 1;
        return fail(&r, "the sample count is not 1..1024");
    }
    *n = (size_t)v;
    return VG_OK;
}

int vg_chunk_decode(const unsigned char *data, size_t len, struct vg_chunk_sample *out,
                    size_t cap, size_t *n_out, char *errmsg)
{
    struct reader r = {.p = data, .len = len, .errmsg = errmsg};
    uint64_t prev_bits = 0, prev_t = 0, prev_period = 0;
    size_t n;
    int rv;

    *n_out = 0;
    if ((rv = vg_chunk_count(data, len, &n, errmsg)) != VG_OK) {
        return rv;
    }
    if (n > cap) {
        r.at = 1;
        return fail(&r, "more samples than expected");
    }
    r.at = 1;
    while (data[r.at++] & 0x80) {
        /* the count, checked above */
    }
    for (size_t i = 0; i < n; i++) {
        unsigned head, lz, m;
        uint64_t tv, t, x = 0;
        size_t t_at;

        if (r.at == len) {
            return fail(&r, "cut short: fewer samples than its count");
        }
        head = data[r.at];
        lz = (head >> 4) & 7;
        m = head & 15;
        if (m > 8 || lz + m > 8 || (m == 0 && lz != 0)) {
            return fail(&r, "a sample's head is not valid");
        }
        r.at++;
        t_at = r.at;
        if ((rv = get_varint(&r, "a sample's time is cut short", &tv)) != VG_OK) {
            return rv;
        }
        r.at = t_at; /* a time refused below is named where it begins */
        if (i == 0) {
            t = tv;
        } else if (i == 1) {
            t = prev_t + tv;
            if (tv == 0 || tv >= T_END) {
                return fail(&r, "times do not increase");
            }
        } else {
            int64_t d = unzigzag(tv);
            /* prev_period < 2^53, so d beyond +-2^54 is out of range anyway */
            if (d <= -(int64_t)T_END * 2 || d >= (int64_t)T_END * 2 ||
                (int64_t)prev_period + d <= 0) {
                return fail(&r, "times do not increase");
            }
            t = prev_t + (uint64_t)((int64_t)prev_period + d);
        }
        if (t >= T_END) {
            return fail(&r, "a time at or beyond 2^53");
        }
        while (data[r.at++] & 0x80) {
            /* past the time's varint, read above */
        }
        if (len - r.at < m) {
            return fail(&r, "a sample's value is cut short");
        }
        for (unsigned b = 0; b < m; b++) {
            x |= (uint64_t)data[r.at + b] << (8 * (7 - lz - b));
        }
        if (m > 0 && (data[r.at] == 0 || data[r.at + m - 1] == 0)) {
            return fail(&r, "a value's bytes are not in their shortest form");
        }
        r.at += m;
        prev_bits ^= x;
        memcpy(&out[i].value, &prev_bits, sizeof out[i].value);
        out[i].t = t;
        out[i].bad = (head & 0x80) != 0;
        if (i > 0) {
            prev_period = t - prev_t;
        }
        prev_t = t;
    }
    if (r.at != len) {
        return fail(&r, "bytes after the last sample");
    }
    *n_out = n;
    return VG_OK;
}
