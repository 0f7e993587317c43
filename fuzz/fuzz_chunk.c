/* libFuzzer target for the archive's chunk codec (replication/sample_chunk.h).
 * Chunks come from the archive of another node, in snapshots and in
 * commands, so the decoder reads outside data.
 *
 * Every input is used twice.
 *
 * As a chunk: vg_chunk_decode must answer VG_OK or VG_EMALFORMED; a refusal
 * gives no samples and a message "archive chunk of LEN bytes, at byte K: …"
 * with K <= LEN; vg_chunk_count refuses whatever decode refuses in the
 * count and agrees with it otherwise. What decode accepts must be the one
 * encoding of its samples: they re-encode, within vg_chunk_bound, to the
 * input byte for byte.
 *
 * As samples: the bytes are read as a program that builds up to
 * VG_CHUNK_SAMPLES_MAX + 1 samples. Each sample takes an operation byte
 * and what it asks for (missing bytes read as 0):
 *   bits 0-1  the time: 0 the previous period plus a signed byte (the
 *             first sample: that byte); 1 the previous time plus a byte
 *             (0: the same time); 2 the previous time plus 6 bytes; 3 an
 *             absolute time of 7 bytes (may go back, or past 2^53)
 *   bits 2-4  the value: 0 unchanged; 1 one byte at a given position XOR'd
 *             in; 2 8 new bytes; 3 plus a signed byte (a polled whole
 *             number); 4 one of the special values (signed zeros, NaNs,
 *             infinities, subnormals, extremes); 5 its last bit flipped; 6
 *             its sign flipped; 7 2 bytes XOR'd in below the exponent
 *   bit 5     bad
 * vg_chunk_encode must accept the samples exactly when they are 1..
 * VG_CHUNK_SAMPLES_MAX with times strictly increasing and below 2^53
 * (checked here on their own), stay within vg_chunk_bound, and its chunk
 * must decode to the same samples, value bits included; vg_chunk_count
 * must agree, one byte less must be refused and so must a cap of one
 * sample fewer.
 *
 * Any failed check aborts, which libFuzzer reports as a crash. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../common/common.h"
#include "sample_chunk.h"

#include "fuzz_check.h"

#define T_END (UINT64_C(1) << 53)
#define MAX VG_CHUNK_SAMPLES_MAX

static uint64_t bits_of(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

static double from_bits(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof v);
    return v;
}

/* A refusal: VG_EMALFORMED, no samples, and a message that names a byte
 * of the LEN it was given. */
static void check_refusal(int rv, size_t n, const char *errmsg, size_t len)
{
    const char *at = strstr(errmsg, ", at byte ");
    char *end;
    unsigned long long k;

    CHECK(rv == VG_EMALFORMED);
    CHECK(n == 0);
    CHECK(strncmp(errmsg, "archive chunk of ", 17) == 0 && at != NULL);
    CHECK(strtoull(errmsg + 17, &end, 10) == len);
    CHECK(strncmp(end, " bytes, at byte ", 16) == 0 && end + 6 == at);
    k = strtoull(at + 10, &end, 10);
    CHECK(end != at + 10 && end[0] == ':' && k <= len);
}

/* Encode S (N samples, the encoder accepted them before) into a new buffer
 * and check that it stays within vg_chunk_bound. The caller frees *OUT. */
static size_t encode(const struct vg_chunk_sample *s, size_t n, unsigned char **out)
{
    size_t bound = vg_chunk_bound(n), len = 0;

    *out = malloc(bound);
    CHECK(*out != NULL);
    CHECK(vg_chunk_encode(s, n, *out, &len) == VG_OK);
    CHECK(len > 0 && len <= bound);
    return len;
}

static void fuzz_as_chunk(const uint8_t *input, size_t size)
{
    static struct vg_chunk_sample out[MAX];
    char errmsg[VG_ERRMSG_SIZE] = "", count_err[VG_ERRMSG_SIZE] = "";
    size_t n = 99, counted = 99, len;
    int rv = vg_chunk_decode(input, size, out, MAX, &n, errmsg);
    int count_rv = vg_chunk_count(input, size, &counted, count_err);
    unsigned char *again;

    if (count_rv != VG_OK) {
        check_refusal(count_rv, counted, count_err, size);
        /* decode reads the count first and refuses it in the same words */
        CHECK(rv == VG_EMALFORMED && strcmp(errmsg, count_err) == 0);
    } else {
        CHECK(counted >= 1 && counted <= MAX);
    }
    if (rv != VG_OK) {
        check_refusal(rv, n, errmsg, size);
        return;
    }
    CHECK(n == counted);
    len = encode(out, n, &again);
    CHECK(len == size && memcmp(again, input, size) == 0);
    free(again);
}

/* Reads the input a byte at a time; 0 past the end. */
struct reader {
    const uint8_t *p;
    size_t len, at;
};

static uint64_t next(struct reader *r, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++) {
        v |= (uint64_t)(r->at < r->len ? r->p[r->at++] : 0) << (8 * i);
    }
    return v;
}

static const uint64_t special_bits[] = {
    UINT64_C(0x0000000000000000), UINT64_C(0x8000000000000000),
    UINT64_C(0x7ff8000000000000), UINT64_C(0xfff8000000000001),
    UINT64_C(0x7ff0000000000001), UINT64_C(0x7fffffffffffffff),
    UINT64_C(0x7ff0000000000000), UINT64_C(0xfff0000000000000),
    UINT64_C(0x0000000000000001), UINT64_C(0x800fffffffffffff),
    UINT64_C(0x0010000000000000), UINT64_C(0x7fefffffffffffff),
    UINT64_C(0xffefffffffffffff), UINT64_C(0x3ff0000000000000),
};

#define N_SPECIAL (sizeof special_bits / sizeof special_bits[0])

static void fuzz_as_samples(const uint8_t *input, size_t size)
{
    static struct vg_chunk_sample s[MAX + 1], back[MAX];
    struct reader r = {.p = input, .len = size};
    uint64_t t = 0, period = 0, bits = 0;
    bool valid = true;
    size_t n = 0, got = 99, counted = 99, len;
    unsigned char *chunk, *shorter;
    char errmsg[VG_ERRMSG_SIZE];
    int rv;

    while (r.at < r.len && n < MAX + 1) {
        unsigned op = (unsigned)next(&r, 1);
        uint64_t prev_t = t;

        switch (op & 3) {
        case 0:
            t += period + (uint64_t)(int64_t)(int8_t)next(&r, 1);
            break;
        case 1:
            t += next(&r, 1);
            break;
        case 2:
            t += next(&r, 6);
            break;
        default:
            t = next(&r, 7);
        }
        if (n == 0) {
            /* The first time is where the program's first step took it. */
            valid = t < T_END;
        } else {
            valid = valid && t > prev_t && t < T_END;
            period = t - prev_t;
        }
        switch ((op >> 2) & 7) {
        case 0:
            break;
        case 1: {
            uint64_t byte = next(&r, 1);
            bits ^= byte << (8 * (next(&r, 1) & 7));
            break;
        }
        case 2:
            bits = next(&r, 8);
            break;
        case 3:
            bits = bits_of(from_bits(bits) + (double)(int8_t)next(&r, 1));
            break;
        case 4:
            bits = special_bits[next(&r, 1) % N_SPECIAL];
            break;
        case 5:
            bits ^= 1;
            break;
        case 6:
            bits ^= UINT64_C(1) << 63;
            break;
        default:
            bits ^= next(&r, 2) << 36;
        }
        s[n++] = (struct vg_chunk_sample){
            .t = t, .value = from_bits(bits), .bad = (op & 0x20) != 0};
    }
    valid = valid && n >= 1 && n <= MAX;

    chunk = malloc(vg_chunk_bound(MAX + 1));
    CHECK(chunk != NULL);
    rv = vg_chunk_encode(s, n, chunk, &len);
    free(chunk);
    CHECK(rv == (valid ? VG_OK : VG_EINVAL));
    if (!valid) {
        return;
    }
    len = encode(s, n, &chunk);
    CHECK(vg_chunk_decode(chunk, len, back, n, &got, errmsg) == VG_OK);
    CHECK(got == n);
    for (size_t i = 0; i < n; i++) {
        CHECK(back[i].t == s[i].t);
        CHECK(bits_of(back[i].value) == bits_of(s[i].value));
        CHECK(back[i].bad == s[i].bad);
    }
    CHECK(vg_chunk_count(chunk, len, &counted, errmsg) == VG_OK && counted == n);
    rv = vg_chunk_decode(chunk, len, back, n - 1, &got, errmsg);
    check_refusal(rv, got, errmsg, len);
    /* A copy one byte shorter (a chunk has at least 4), so that a read past
     * its end is seen. */
    shorter = malloc(len - 1);
    CHECK(shorter != NULL);
    memcpy(shorter, chunk, len - 1);
    rv = vg_chunk_decode(shorter, len - 1, back, n, &got, errmsg);
    check_refusal(rv, got, errmsg, len - 1);
    free(shorter);
    free(chunk);
}

int LLVMFuzzerTestOneInput(const uint8_t *input, size_t input_size)
{
    fuzz_as_chunk(input, input_size);
    fuzz_as_samples(input, input_size);
    return 0;
}
