/* Unit tests for the chunk codec (replication/sample_chunk.c): runs of
 * samples of every shape survive an encode/decode round trip bit for bit
 * (value bits, not value equality, so that -0.0 and NaN payloads count);
 * the bytes are the ones the header's format describes; a polled signal
 * compresses to the few bytes a sample that the archive's layout counts on;
 * no chunk is longer than vg_chunk_bound; and the decoder refuses, with
 * VG_EMALFORMED and the byte it stopped at, everything that is not exactly
 * what the encoder writes, so that a chunk has one encoding only.
 *
 * Random inputs come from a fixed-seed PRNG, so a failure repeats. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../common/common.h"
#include "sample_chunk.h"

#define T_END (UINT64_C(1) << 53)
#define MAX VG_CHUNK_SAMPLES_MAX
/* A time in 2023, as the archive would see it. */
#define T_NOW UINT64_C(1700000000000)
/* Written past the end of vg_chunk_bound's bytes, to see that the encoder
 * stays inside them. */
#define GUARD 64
#define GUARD_BYTE 0xa5

/* ---- helpers ------------------------------------------------------------ */

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

/* splitmix64: small, and good enough that every byte of a random double
 * varies. */
static uint64_t rng_state;

static uint64_t rng(void)
{
    uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* A whole number in [LO, HI]. */
static int64_t rng_range(int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rng() % (uint64_t)(hi - lo + 1));
}

/* The N samples' times: T0, then periods PERIOD plus a jitter in
 * [-JITTER, JITTER]. */
static void fill_times(struct vg_chunk_sample *s, size_t n, uint64_t t0,
                       int64_t period, int64_t jitter)
{
    for (size_t i = 0; i < n; i++) {
        s[i].t = t0 + (uint64_t)((int64_t)i * period) +
                 (uint64_t)(i > 0 ? rng_range(-jitter, jitter) : 0);
    }
}

/* Encode S (N samples) into a new buffer of vg_chunk_bound(N) bytes and a
 * guard, and check that the guard is untouched and the length within the
 * bound. The caller frees *OUT. */
static size_t encode(const struct vg_chunk_sample *s, size_t n, unsigned char **out)
{
    size_t bound = vg_chunk_bound(n), len = 0;
    unsigned char *buf = malloc(bound + GUARD);

    assert_non_null(buf);
    memset(buf, GUARD_BYTE, bound + GUARD);
    assert_int_equal(vg_chunk_encode(s, n, buf, &len), VG_OK);
    assert_true(len > 0);
    assert_true(len <= bound);
    for (size_t i = bound; i < bound + GUARD; i++) {
        assert_int_equal(buf[i], GUARD_BYTE);
    }
    *out = buf;
    return len;
}

/* Check that A and B (N samples each) are the same samples, value bits
 * included. */
static void assert_same_samples(const struct vg_chunk_sample *a,
                                const struct vg_chunk_sample *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (a[i].t != b[i].t || bits_of(a[i].value) != bits_of(b[i].value) ||
            a[i].bad != b[i].bad) {
            fail_msg("sample %zu: t %llu value %016llx bad %d, expected t %llu "
                     "value %016llx bad %d",
                     i, (unsigned long long)b[i].t,
                     (unsigned long long)bits_of(b[i].value), b[i].bad,
                     (unsigned long long)a[i].t,
                     (unsigned long long)bits_of(a[i].value), a[i].bad);
        }
    }
}

/* Encode S (N samples), decode it, and check that the samples come back
 * bit for bit, that vg_chunk_count agrees, and that a CAP of one sample
 * fewer is refused. Returns the chunk's length. */
static size_t round_trip(const struct vg_chunk_sample *s, size_t n)
{
    unsigned char *buf;
    size_t len = encode(s, n, &buf), got = 99, counted = 0;
    struct vg_chunk_sample *back = calloc(n, sizeof *back);
    char errmsg[VG_ERRMSG_SIZE] = "";

    assert_non_null(back);
    assert_int_equal(vg_chunk_decode(buf, len, back, n, &got, errmsg), VG_OK);
    assert_int_equal(got, n);
    assert_same_samples(s, back, n);
    assert_int_equal(vg_chunk_count(buf, len, &counted, errmsg), VG_OK);
    assert_int_equal(counted, n);
    assert_int_equal(vg_chunk_decode(buf, len, back, n - 1, &got, errmsg),
                     VG_EMALFORMED);
    assert_int_equal(got, 0);
    assert_non_null(strstr(errmsg, "more samples than expected"));
    free(back);
    free(buf);
    return len;
}

/* The offset "at byte N" in ERRMSG names, or fails the test when there is
 * none. */
static size_t errmsg_offset(const char *errmsg)
{
    const char *at = strstr(errmsg, "at byte ");
    unsigned long long off = 0;

    if (at == NULL || sscanf(at, "at byte %llu", &off) != 1) {
        fail_msg("errmsg \"%s\" names no byte", errmsg);
    }
    return (size_t)off;
}

/* Decode DATA (LEN bytes, room for CAP samples) expecting VG_EMALFORMED, a
 * message with WORD (unless NULL) and an offset in [AT_LO, AT_HI]. NAME
 * says which case failed. */
static void expect_malformed(const char *name, const unsigned char *data, size_t len,
                             size_t cap, const char *word, size_t at_lo, size_t at_hi)
{
    struct vg_chunk_sample out[64];
    char errmsg[VG_ERRMSG_SIZE] = "";
    size_t n = 99, at;
    int rv;

    assert_true(cap <= 64);
    rv = vg_chunk_decode(data, len, out, cap, &n, errmsg);
    if (rv != VG_EMALFORMED || n != 0) {
        fail_msg("%s: decode answered %d with %zu samples", name, rv, n);
    }
    if (word != NULL && strstr(errmsg, word) == NULL) {
        fail_msg("%s: errmsg \"%s\" does not mention \"%s\"", name, errmsg, word);
    }
    at = errmsg_offset(errmsg);
    if (at < at_lo || at > at_hi) {
        fail_msg("%s: errmsg \"%s\": expected a byte in %zu..%zu", name, errmsg,
                 at_lo, at_hi);
    }
    /* Without a message buffer the answer is the same. */
    assert_int_equal(vg_chunk_decode(data, len, out, cap, &n, NULL), VG_EMALFORMED);
}

/* ---- round trips -------------------------------------------------------- */

/* Values whose bits a codec that went through arithmetic or comparisons
 * would lose: signed zeros, NaNs with payloads and signs, infinities,
 * subnormals and the extremes. */
static const uint64_t special_bits[] = {
    UINT64_C(0x0000000000000000), /* +0.0 */
    UINT64_C(0x8000000000000000), /* -0.0 */
    UINT64_C(0x7ff8000000000000), /* the quiet NaN */
    UINT64_C(0xfff8000000000001), /* a negative quiet NaN with a payload */
    UINT64_C(0x7ff0000000000001), /* a signalling NaN */
    UINT64_C(0x7ff4000000000000), /* a signalling NaN, payload up high */
    UINT64_C(0x7fffffffffffffff), /* the NaN with every payload bit */
    UINT64_C(0x7ff0000000000000), /* +inf */
    UINT64_C(0xfff0000000000000), /* -inf */
    UINT64_C(0x0000000000000001), /* the least subnormal */
    UINT64_C(0x800fffffffffffff), /* the greatest negative subnormal */
    UINT64_C(0x0010000000000000), /* DBL_MIN */
    UINT64_C(0x7fefffffffffffff), /* DBL_MAX */
    UINT64_C(0xffefffffffffffff), /* -DBL_MAX */
    UINT64_C(0x3ff0000000000000), /* 1.0 */
    UINT64_C(0x3ff0000000000001), /* the next double after 1.0 */
};

#define N_SPECIAL (sizeof special_bits / sizeof special_bits[0])

/* Each generator fills S with N samples of one shape. */
typedef void gen_fn(struct vg_chunk_sample *s, size_t n);

static void gen_regular(struct vg_chunk_sample *s, size_t n)
{
    fill_times(s, n, T_NOW, 1000, 0);
    for (size_t i = 0; i < n; i++) {
        s[i].value = 21.5 + (double)(i % 7);
        s[i].bad = i % 5 == 3;
    }
}

static void gen_jitter(struct vg_chunk_sample *s, size_t n)
{
    fill_times(s, n, T_NOW + 17, 1000, 3);
    for (size_t i = 0; i < n; i++) {
        s[i].value = (double)rng_range(-5, 5) * 0.125;
        s[i].bad = (rng() & 15) == 0;
    }
}

/* The first time at 0, the second at the last time there can be. */
static void gen_huge_gap(struct vg_chunk_sample *s, size_t n)
{
    assert_int_equal(n, 2);
    s[0] = (struct vg_chunk_sample){.t = 0, .value = 1.0};
    s[1] = (struct vg_chunk_sample){.t = T_END - 1, .value = -1.0, .bad = true};
}

/* A period of 1 ms, then the whole remaining range, then 1 ms again: the
 * largest changes of period there can be, both ways. */
static void gen_huge_period_changes(struct vg_chunk_sample *s, size_t n)
{
    static const uint64_t t[] = {0, 1, T_END - 3, T_END - 2, T_END - 1};
    assert_int_equal(n, sizeof t / sizeof t[0]);
    for (size_t i = 0; i < n; i++) {
        s[i] = (struct vg_chunk_sample){.t = t[i], .value = (double)i};
    }
}

/* Periods that double up to 2^40 ms and halve back down to 1. */
static void gen_shrink_grow(struct vg_chunk_sample *s, size_t n)
{
    uint64_t t = T_NOW, period = 1;
    bool growing = true;

    for (size_t i = 0; i < n; i++) {
        s[i] = (struct vg_chunk_sample){.t = t, .value = 3.0};
        t += period;
        if (growing && period == UINT64_C(1) << 40) {
            growing = false;
        } else if (!growing && period == 1) {
            growing = true;
        }
        period = growing ? period * 2 : period / 2;
    }
}

/* Periods that alternate between 1 ms and an hour. */
static void gen_alternating_periods(struct vg_chunk_sample *s, size_t n)
{
    uint64_t t = 5;
    for (size_t i = 0; i < n; i++) {
        s[i] = (struct vg_chunk_sample){.t = t, .value = 7.0};
        t += i % 2 == 0 ? 1 : 3600000;
    }
}

static void gen_constant(struct vg_chunk_sample *s, size_t n)
{
    fill_times(s, n, T_NOW, 1000, 0);
    for (size_t i = 0; i < n; i++) {
        s[i].value = 42.0;
        s[i].bad = false;
    }
}

/* A NaN with a payload, the same every time: unchanged bits, though
 * NaN != NaN. */
static void gen_constant_nan(struct vg_chunk_sample *s, size_t n)
{
    fill_times(s, n, 1, 250, 0);
    for (size_t i = 0; i < n; i++) {
        s[i].value = from_bits(UINT64_C(0x7ff800000000beef));
        s[i].bad = true;
    }
}

/* The sign bit flips every sample: every XOR starts at the top byte. */
static void gen_alternating_sign(struct vg_chunk_sample *s, size_t n)
{
    fill_times(s, n, T_NOW, 1000, 3);
    for (size_t i = 0; i < n; i++) {
        s[i].value = i % 2 == 0 ? 12.75 : -12.75;
        s[i].bad = false;
    }
}

/* Pairs of special values: at 2K, value K % N; at 2K + 1, value K / N (for
 * K < N * N), so that each XOR between two of them is seen; and the bad
 * flag in every combination. */
static void gen_special(struct vg_chunk_sample *s, size_t n)
{
    fill_times(s, n, T_NOW, 1000, 2);
    for (size_t i = 0; i < n; i++) {
        size_t k = i / 2;
        s[i].value = from_bits(special_bits[i % 2 == 0 ? k % N_SPECIAL
                                                       : (k / N_SPECIAL) % N_SPECIAL]);
        s[i].bad = (i / 3) % 2 == 1;
    }
}

static void gen_random(struct vg_chunk_sample *s, size_t n)
{
    fill_times(s, n, rng() % T_NOW, 60000, 29999);
    for (size_t i = 0; i < n; i++) {
        s[i].value = from_bits(rng());
        s[i].bad = rng() & 1;
    }
}

/* XORs of every width and position: one changed byte anywhere, runs of
 * changed bytes with zero bytes inside them. */
static void gen_random_bytes_changed(struct vg_chunk_sample *s, size_t n)
{
    uint64_t bits = rng();

    fill_times(s, n, T_NOW, 100, 0);
    for (size_t i = 0; i < n; i++) {
        unsigned first = (unsigned)(rng() % 8), last = (unsigned)(rng() % 8);
        uint64_t x = 0;
        if (first > last) {
            unsigned tmp = first;
            first = last;
            last = tmp;
        }
        for (unsigned b = first; b <= last; b++) {
            /* A zero byte inside the run is kept; the ends are not zero. */
            uint64_t byte = b == first || b == last ? 1 + rng() % 255 : rng() % 256;
            x |= byte << (8 * b);
        }
        bits ^= i % 4 == 0 ? 0 : x;
        s[i].value = from_bits(bits);
        s[i].bad = false;
    }
}

static void test_round_trips(void **state)
{
    static const struct {
        const char *name;
        gen_fn *gen;
        size_t n;
    } cases[] = {
        {"one sample", gen_regular, 1},
        {"two samples", gen_regular, 2},
        {"three samples", gen_regular, 3},
        {"the most samples", gen_regular, MAX},
        {"1000 ms with jitter", gen_jitter, 600},
        {"the most samples with jitter", gen_jitter, MAX},
        {"t=0, then t=2^53-1", gen_huge_gap, 2},
        {"periods of 1 ms and nearly 2^53", gen_huge_period_changes, 5},
        {"periods that grow and shrink", gen_shrink_grow, 200},
        {"periods of 1 ms and an hour", gen_alternating_periods, 101},
        {"a constant value", gen_constant, MAX},
        {"a constant NaN", gen_constant_nan, 77},
        {"alternating sign", gen_alternating_sign, 300},
        {"special values", gen_special, N_SPECIAL * N_SPECIAL * 2},
        {"random doubles", gen_random, MAX},
        {"random bytes changed", gen_random_bytes_changed, 500},
    };
    (void)state;

    rng_state = 1;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct vg_chunk_sample *s = calloc(cases[c].n, sizeof *s);
        size_t len;

        assert_non_null(s);
        cases[c].gen(s, cases[c].n);
        len = round_trip(s, cases[c].n);
        printf("# %s: %zu samples in %zu bytes\n", cases[c].name, cases[c].n, len);
        free(s);
    }
}

/* One sample of each special value alone, so that each is also the first
 * value of a chunk (XOR'd with 0), and the bad flag both ways. */
static void test_round_trip_special_first(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_SPECIAL; i++) {
        for (int bad = 0; bad < 2; bad++) {
            struct vg_chunk_sample s = {
                .t = i * 1000, .value = from_bits(special_bits[i]), .bad = bad};
            round_trip(&s, 1);
        }
    }
}

/* Many random runs: random lengths, periods of random magnitude, values
 * that repeat, change a little or change entirely. */
static void test_round_trip_random_runs(void **state)
{
    (void)state;
    rng_state = 2;
    for (int run = 0; run < 300; run++) {
        size_t n = 1 + (size_t)(rng() % MAX);
        struct vg_chunk_sample *s = calloc(n, sizeof *s);
        unsigned magnitude = (unsigned)(rng() % 40);
        uint64_t t = rng() % (UINT64_C(1) << 44);
        double v = (double)(int64_t)(rng() % 1000);

        assert_non_null(s);
        for (size_t i = 0; i < n; i++) {
            switch (rng() % 4) {
            case 0:
                break;
            case 1:
                v += (double)rng_range(-3, 3);
                break;
            case 2:
                v = from_bits(bits_of(v) ^ (UINT64_C(1) << (rng() % 64)));
                break;
            default:
                v = from_bits(rng());
            }
            s[i] = (struct vg_chunk_sample){.t = t, .value = v, .bad = rng() % 8 == 0};
            t += 1 + (rng() & ((UINT64_C(1) << magnitude) - 1));
        }
        round_trip(s, n);
        free(s);
    }
}

/* ---- the bytes ---------------------------------------------------------- */

/* The bytes of a small chunk, worked out by hand from the header's format,
 * so that the encoder and decoder cannot agree on something else. */
static void test_layout(void **state)
{
    static const struct vg_chunk_sample s[] = {
        {.t = 1000, .value = 1.0},             /* 0x3ff0000000000000 */
        {.t = 2000, .value = 1.0, .bad = true}, /* the same bits */
        {.t = 3005, .value = 1.5},             /* 0x3ff8000000000000 */
        {.t = 4005, .value = -1.5},            /* 0xbff8000000000000 */
    };
    static const unsigned char expected[] = {
        0x01,                   /* version */
        0x04,                   /* n */
        0x02, 0xe8, 0x07,       /* m 2; t 1000 */
        0x3f, 0xf0,             /* the bytes of 1.0 from the top */
        0x80, 0xe8, 0x07,       /* bad, unchanged; t - 1000 = 1000 */
        0x11, 0x0a, 0x08,       /* lz 1, m 1; zigzag(1005 - 1000) = 10; 0x08 */
        0x01, 0x09, 0x80,       /* m 1; zigzag(1000 - 1005) = 9; the sign */
    };
    unsigned char *buf;
    size_t len;
    (void)state;

    len = encode(s, 4, &buf);
    assert_int_equal(len, sizeof expected);
    assert_memory_equal(buf, expected, sizeof expected);
    free(buf);
    round_trip(s, 4);
}

/* ---- size --------------------------------------------------------------- */

/* S (MAX samples of a polled signal, values of at most 3 changing bytes)
 * round-trips and encodes to at most 5 bytes a sample: the first two
 * samples cost more (a 6-byte time, T_NOW < 2^42, up to 8 value bytes, then
 * a 2-byte time delta), the count takes 2 bytes. Prints what it took. */
static void expect_polled_size(const struct vg_chunk_sample *s, const char *what)
{
    unsigned char *buf;
    size_t len = encode(s, MAX, &buf);

    free(buf);
    round_trip(s, MAX);
    printf("# %s, 1000 ms +-3 ms: %.2f bytes/sample (%zu bytes)\n", what,
           (double)len / MAX, len);
    assert_true(len <= 1 + 2 + (1 + 6 + 8) + (1 + 2 + 3) + (MAX - 2) * 5);
    assert_true(len <= 5 * MAX);
}

/* A polled signal, the case the archive's layout is sized for: a 1000 ms
 * period that the poller misses by up to 3 ms either way. Each sample then
 * costs a head, a one-byte varint (a change of period in -6..6, zigzag at
 * most 12) and its changed value bytes. */
static void test_size_polled_signal(void **state)
{
    struct vg_chunk_sample s[MAX];
    int64_t level = 100;
    (void)state;

    /* Whole numbers in 1..255 that step by -2..2: a double of at most 8
     * significant bits changes at most its sign-and-exponent byte (7), the
     * byte of the exponent's low bits and the mantissa's top 4 (6) and the
     * next one (5), so at most 3 value bytes, 5 bytes a sample. The first
     * two samples cost more: a 6-byte time (T_NOW < 2^42) and up to 8
     * value bytes, then a 2-byte time delta; the count takes 2 bytes. */
    rng_state = 3;
    fill_times(s, MAX, T_NOW, 1000, 3);
    for (size_t i = 0; i < MAX; i++) {
        level += rng_range(-2, 2);
        level = level < 1 ? 1 : level > 255 ? 255 : level;
        s[i].value = (double)level;
        s[i].bad = false;
    }
    expect_polled_size(s, "whole-number steps");

    /* 20.0 + k * 0.25 up to 275.75: at most 10 significant bits below the
     * exponent (2^7 .. 2^-2), so again bytes 7..5 of the XOR at most. */
    for (size_t i = 0; i < MAX; i++) {
        s[i].value = 20.0 + (double)i * 0.25;
    }
    expect_polled_size(s, "20.0 + k * 0.25");
}

/* A value that does not change at an exact period costs 2 bytes a sample
 * (a head of 0 and a change of period of 0), exactly. */
static void test_size_constant_exact_period(void **state)
{
    struct vg_chunk_sample s[MAX];
    unsigned char *buf;
    size_t len;
    (void)state;

    gen_constant(s, MAX);
    len = encode(s, MAX, &buf);
    free(buf);
    /* version, count 1024 (2 bytes), then the first sample: head, T_NOW
     * (6 bytes), 42.0 = 0x4045000000000000 (2 bytes); the second: head and
     * 1000 (2 bytes); the rest 2 bytes each. */
    assert_int_equal(len, 1 + 2 + (1 + 6 + 2) + (1 + 2) + (MAX - 2) * 2);
    printf("# constant at an exact period: %.2f bytes/sample\n", (double)len / MAX);
}

/* The worst cases: every value byte changes and every change of period is
 * as large as the times allow. */
static void test_bound_never_exceeded(void **state)
{
    struct vg_chunk_sample *s = calloc(MAX, sizeof *s);
    uint64_t t = 0;
    (void)state;

    assert_non_null(s);
    rng_state = 4;
    /* Periods alternating between 1 ms and 2^43 ms (512 of those fit below
     * 2^53), values with random bits whose first and last bytes always
     * differ from the previous value's, so that m is 8. */
    for (size_t i = 0; i < MAX; i++) {
        uint64_t prev = i == 0 ? 0 : bits_of(s[i - 1].value);
        uint64_t x = rng() | UINT64_C(0x0100000000000001);
        s[i] = (struct vg_chunk_sample){
            .t = t, .value = from_bits(prev ^ x), .bad = true};
        t += i % 2 == 0 ? UINT64_C(1) << 43 : 1;
    }
    /* Each change of period is about +-2^43, a zigzag of about 2^44: 7
     * bytes, so every sample after the second costs 1 + 7 + 8 bytes (the
     * first: t = 0 in 1 byte; the second: a period of 2^43 in 7). */
    assert_int_equal(round_trip(s, MAX), 1 + 2 + (1 + 1 + 8) + (MAX - 1) * (1 + 7 + 8));
    /* At each length, the first time as large as it can be. */
    for (size_t n = 1; n <= 40; n++) {
        for (size_t i = 0; i < n; i++) {
            uint64_t bits = rng() | UINT64_C(0x0100000000000001);
            s[i] = (struct vg_chunk_sample){.t = T_END - n + i, .value = from_bits(bits)};
        }
        round_trip(s, n);
    }
    /* The largest period, then 1 ms, then the largest left. */
    gen_huge_period_changes(s, 5);
    for (size_t i = 0; i < 5; i++) {
        s[i].value = from_bits(~bits_of(s[i].value) ^ (i * UINT64_C(0x0101010101010101)));
    }
    round_trip(s, 5);
    free(s);
}

/* ---- what encode refuses ------------------------------------------------ */

static void test_encode_rejects(void **state)
{
    static const struct {
        const char *name;
        uint64_t t[3];
        size_t n;
    } cases[] = {
        {"equal times", {5, 5, 6}, 2},
        {"equal times later on", {5, 6, 6}, 3},
        {"decreasing times", {5, 4, 6}, 2},
        {"decreasing times later on", {5, 7, 6}, 3},
        {"the first time at 2^53", {T_END, 0, 0}, 1},
        {"a later time at 2^53", {T_END - 2, T_END - 1, T_END}, 3},
        {"the largest time there is", {UINT64_MAX, 0, 0}, 1},
        {"a later time that wraps to a smaller one", {10, UINT64_MAX, 0}, 2},
    };
    struct vg_chunk_sample s[MAX + 1];
    unsigned char *buf = malloc(vg_chunk_bound(MAX + 1));
    size_t len = 99;
    (void)state;

    assert_non_null(buf);
    memset(s, 0, sizeof s);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (size_t i = 0; i < cases[c].n; i++) {
            s[i] = (struct vg_chunk_sample){.t = cases[c].t[i], .value = 1.0};
        }
        if (vg_chunk_encode(s, cases[c].n, buf, &len) != VG_EINVAL) {
            fail_msg("%s: not refused", cases[c].name);
        }
    }
    fill_times(s, MAX + 1, T_NOW, 1000, 0);
    assert_int_equal(vg_chunk_encode(s, 0, buf, &len), VG_EINVAL);
    assert_int_equal(vg_chunk_encode(s, MAX + 1, buf, &len), VG_EINVAL);
    assert_int_equal(vg_chunk_encode(s, MAX, buf, &len), VG_OK);
    free(buf);
}

/* ---- what decode refuses ------------------------------------------------ */

/* Chunks written out by hand, each wrong in one way, with the word the
 * message must have and the byte it must name. A time the decoder finds
 * wrong is named somewhere within its sample (the head up to the end of
 * its varint). */
static void test_decode_rejects(void **state)
{
    static const struct {
        const char *name;
        unsigned char data[24];
        size_t len, cap;
        const char *word;
        size_t at_lo, at_hi;
    } cases[] = {
        {"empty", {0}, 0, 4, "empty", 0, 0},
        {"version 0", {0, 1, 0, 5}, 4, 4, "version", 0, 0},
        {"version 2", {2, 1, 0, 5}, 4, 4, "version", 0, 0},
        {"count cut short", {1}, 1, 4, "count", 1, 1},
        {"count's varint cut short", {1, 0x81}, 2, 4, "count", 1, 1},
        {"count 0", {1, 0}, 2, 4, "1..1024", 1, 1},
        {"count 1025", {1, 0x81, 0x08}, 3, 4, "1..1024", 1, 1},
        {"count 2^63",
         {1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01},
         11, 4, "1..1024", 1, 1},
        {"count with a redundant zero byte", {1, 0x81, 0x00, 0, 5}, 5, 4,
         "redundant", 1, 1},
        {"count above cap", {1, 2, 0, 5, 0, 1}, 6, 1, "more samples", 1, 1},
        {"count above a cap of 0", {1, 1, 0, 5}, 4, 0, "more samples", 1, 1},
        {"fewer samples than the count", {1, 2, 0, 5}, 4, 4, "fewer samples", 4, 4},
        {"a byte after the last sample", {1, 1, 0, 5, 0}, 5, 4, "after the last", 4,
         4},
        {"head with m 9", {1, 1, 0x09, 5, 1, 2, 3, 4, 5, 6, 7, 8, 9}, 13, 4, "head",
         2, 2},
        {"head with m 15", {1, 1, 0x0f, 5}, 4, 4, "head", 2, 2},
        {"head with lz 1 and m 8", {1, 1, 0x18, 5, 1, 2, 3, 4, 5, 6, 7, 8}, 12, 4,
         "head", 2, 2},
        {"head with lz 7 and m 2", {1, 1, 0x72, 5, 1, 2}, 6, 4, "head", 2, 2},
        {"head with m 0 and lz 1", {1, 1, 0x10, 5}, 4, 4, "head", 2, 2},
        {"bad head with m 0 and lz 7", {1, 1, 0xf0, 5}, 4, 4, "head", 2, 2},
        {"head of a later sample", {1, 2, 0, 5, 0x19, 1}, 6, 4, "head", 4, 4},
        {"time with a redundant zero byte", {1, 1, 0, 0x85, 0x00}, 5, 4, "redundant",
         3, 3},
        {"time 0 with a redundant zero byte", {1, 1, 0, 0x80, 0x00}, 5, 4,
         "redundant", 3, 3},
        {"time of 11 bytes",
         {1, 1, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01},
         14, 4, "64 bits", 3, 3},
        {"time of 10 bytes, the last above 1",
         {1, 1, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02}, 13,
         4, "64 bits", 3, 3},
        {"time's varint cut short", {1, 1, 0, 0x85}, 4, 4, "time", 3, 3},
        {"value's first byte 0", {1, 1, 0x02, 5, 0x00, 0x01}, 6, 4, "shortest", 4,
         4},
        {"value's last byte 0", {1, 1, 0x02, 5, 0x3f, 0x00}, 6, 4, "shortest", 4, 4},
        {"value's only byte 0", {1, 1, 0x31, 5, 0x00}, 5, 4, "shortest", 4, 4},
        {"value cut short", {1, 1, 0x03, 5, 0x3f, 0xf0}, 6, 4, "value", 4, 4},
        {"second time delta 0", {1, 2, 0, 5, 0, 0}, 6, 4, "increase", 4, 6},
        {"second time delta 2^63",
         {1, 2, 0, 5, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01},
         15, 4, NULL, 4, 15},
        /* 1 + (2^64 - 1) would wrap around to 0. */
        {"second time delta 2^64-1",
         {1, 2, 0, 1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
         15, 4, NULL, 4, 15},
        /* 5, 15, then zigzag(-10) = 19: a period of 0. */
        {"period becomes 0", {1, 3, 0, 5, 0, 10, 0, 19}, 8, 4, "increase", 6, 8},
        /* zigzag(-11) = 21: a period of -1. */
        {"period becomes -1", {1, 3, 0, 5, 0, 10, 0, 21}, 8, 4, "increase", 6, 8},
        /* zigzag(-2^63) = 2^64 - 1, as far down as a change can go. */
        {"period change -2^63",
         {1, 3, 0, 5, 0, 10, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
          0x01},
         17, 4, NULL, 6, 17},
        /* zigzag(2^63 - 1) = 2^64 - 2, as far up as a change can go. */
        {"period change 2^63-1",
         {1, 3, 0, 5, 0, 10, 0, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
          0x01},
         17, 4, NULL, 6, 17},
        {"first time 2^53", {1, 1, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10},
         11, 4, "2^53", 2, 11},
        /* 2^53 - 1, then a delta of 1. */
        {"second time 2^53",
         {1, 2, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 1}, 13, 4,
         "2^53", 11, 13},
        /* 2^53 - 3, then a delta of 1, then a period of 1 + 1 (zigzag 2). */
        {"third time 2^53",
         {1, 3, 0, 0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 1, 0, 2}, 15,
         4, "2^53", 13, 15},
    };
    (void)state;

    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        expect_malformed(cases[c].name, cases[c].data, cases[c].len, cases[c].cap,
                         cases[c].word, cases[c].at_lo, cases[c].at_hi);
    }
}

/* A valid chunk of the right shape for the tests below: every kind of head
 * (unchanged, 1..8 bytes, lz 0..7, bad or not) and times of 1 to 7 bytes. */
static size_t varied_chunk(unsigned char **out, size_t *n)
{
    static struct vg_chunk_sample s[48];
    uint64_t bits = UINT64_C(0x4059000000000000), t = T_NOW;

    for (size_t i = 0; i < 48; i++) {
        unsigned lz = (unsigned)(i % 8), m = 1 + (unsigned)(i / 8) % (8 - lz);
        uint64_t x = 0;
        for (unsigned b = 0; b < m; b++) {
            x |= (uint64_t)(b == 0 || b == m - 1 ? 0x81 : 0x00) << (8 * (7 - lz - b));
        }
        bits ^= i % 6 == 5 ? 0 : x;
        s[i] = (struct vg_chunk_sample){
            .t = t, .value = from_bits(bits), .bad = i % 3 == 0};
        t += (uint64_t)1 << (i % 42);
    }
    *n = 48;
    return encode(s, 48, out);
}

/* Every prefix of a valid chunk is refused, and the byte it names is
 * within the prefix (or just past its end: where more was expected). */
static void test_decode_rejects_every_truncation(void **state)
{
    unsigned char *buf;
    size_t n, len = varied_chunk(&buf, &n);
    (void)state;

    assert_true(n <= 64);
    for (size_t cut = 0; cut < len; cut++) {
        /* A separate allocation of exactly CUT bytes, so that the sanitizer
         * build sees a read past the end (and none at all for 0 bytes). */
        unsigned char *prefix = cut > 0 ? malloc(cut) : NULL;
        char name[64];

        assert_true(cut == 0 || prefix != NULL);
        if (cut > 0) {
            memcpy(prefix, buf, cut);
        }
        snprintf(name, sizeof name, "the first %zu of %zu bytes", cut, len);
        expect_malformed(name, prefix, cut, n, NULL, 0, cut);
        free(prefix);
    }
    free(buf);
}

/* A byte of any value after a valid chunk is refused at that byte. */
static void test_decode_rejects_trailing_bytes(void **state)
{
    unsigned char *buf, *longer;
    size_t n, len = varied_chunk(&buf, &n);
    struct vg_chunk_sample out[48];
    char errmsg[VG_ERRMSG_SIZE] = "";
    (void)state;

    longer = malloc(len + 1);
    assert_non_null(longer);
    memcpy(longer, buf, len);
    for (unsigned v = 0; v < 256; v++) {
        size_t got = 99;
        longer[len] = (unsigned char)v;
        assert_int_equal(vg_chunk_decode(longer, len + 1, out, 48, &got, errmsg),
                         VG_EMALFORMED);
        assert_int_equal(got, 0);
        assert_non_null(strstr(errmsg, "after the last sample"));
        assert_int_equal(errmsg_offset(errmsg), len);
    }
    free(longer);
    free(buf);
}

/* vg_chunk_count reads the count only: it agrees with decode on valid
 * chunks, and refuses the heads decode refuses for the same reason. */
static void test_count(void **state)
{
    static const unsigned char only_head[] = {1, 0x80, 0x08};
    static const unsigned char redundant[] = {1, 0x81, 0x00};
    static const unsigned char too_many[] = {1, 0x81, 0x08};
    static const unsigned char version[] = {9, 1, 0, 5};
    unsigned char *buf;
    char errmsg[VG_ERRMSG_SIZE] = "";
    size_t n, counted = 99, len = varied_chunk(&buf, &n);
    (void)state;

    assert_int_equal(vg_chunk_count(buf, len, &counted, errmsg), VG_OK);
    assert_int_equal(counted, n);
    free(buf);
    /* The samples need not be there. */
    assert_int_equal(vg_chunk_count(only_head, sizeof only_head, &counted, NULL), VG_OK);
    assert_int_equal(counted, 1024);

    assert_int_equal(vg_chunk_count(only_head, 0, &counted, errmsg), VG_EMALFORMED);
    assert_int_equal(counted, 0);
    assert_non_null(strstr(errmsg, "at byte 0"));
    assert_int_equal(vg_chunk_count(version, sizeof version, &counted, errmsg),
                     VG_EMALFORMED);
    assert_non_null(strstr(errmsg, "at byte 0"));
    assert_int_equal(vg_chunk_count(only_head, 2, &counted, errmsg), VG_EMALFORMED);
    assert_non_null(strstr(errmsg, "at byte 1"));
    assert_int_equal(vg_chunk_count(redundant, sizeof redundant, &counted, errmsg),
                     VG_EMALFORMED);
    assert_non_null(strstr(errmsg, "at byte 1"));
    assert_int_equal(vg_chunk_count(too_many, sizeof too_many, &counted, errmsg),
                     VG_EMALFORMED);
    assert_non_null(strstr(errmsg, "at byte 1"));
    assert_int_equal(counted, 0);
}

/* ---- one encoding only -------------------------------------------------- */

/* Decode DATA (LEN bytes): either it is refused with a byte named, or what
 * it decodes to re-encodes to DATA exactly. True when it was accepted. */
static bool accepted_only_if_canonical(const unsigned char *data, size_t len)
{
    struct vg_chunk_sample out[MAX];
    char errmsg[VG_ERRMSG_SIZE] = "";
    size_t n = 99;
    int rv = vg_chunk_decode(data, len, out, MAX, &n, errmsg);
    unsigned char *again;
    size_t again_len;

    if (rv != VG_OK) {
        assert_int_equal(rv, VG_EMALFORMED);
        assert_int_equal(n, 0);
        (void)errmsg_offset(errmsg);
        return false;
    }
    assert_true(n >= 1 && n <= MAX);
    again_len = encode(out, n, &again);
    assert_int_equal(again_len, len);
    assert_memory_equal(again, data, len);
    free(again);
    return true;
}

/* Every byte of valid chunks changed by each of several masks: nothing the
 * decoder accepts has a second encoding, and nothing crashes. */
static void test_decode_single_byte_mutations(void **state)
{
    static const unsigned char masks[] = {0x01, 0x02, 0x04, 0x08, 0x10,
                                          0x20, 0x40, 0x80, 0x7f, 0xff};
    struct vg_chunk_sample polled[64];
    unsigned char *chunks[3];
    size_t lens[3], n, accepted = 0, refused = 0;
    (void)state;

    lens[0] = varied_chunk(&chunks[0], &n);
    rng_state = 5;
    gen_jitter(polled, 64);
    lens[1] = encode(polled, 64, &chunks[1]);
    gen_special(polled, 64);
    lens[2] = encode(polled, 64, &chunks[2]);
    for (size_t c = 0; c < 3; c++) {
        unsigned char *copy = malloc(lens[c]);
        assert_non_null(copy);
        for (size_t i = 0; i < lens[c]; i++) {
            for (size_t k = 0; k < sizeof masks; k++) {
                memcpy(copy, chunks[c], lens[c]);
                copy[i] ^= masks[k];
                if (accepted_only_if_canonical(copy, lens[c])) {
                    accepted++;
                } else {
                    refused++;
                }
            }
        }
        free(copy);
        free(chunks[c]);
    }
    printf("# single-byte mutations: %zu accepted, %zu refused\n", accepted, refused);
    /* Changed value bytes that stay non-zero are other valid chunks, and
     * most changes of a head or a varint are not: both kinds were seen. */
    assert_true(accepted > 0);
    assert_true(refused > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_round_trip_special_first),
        cmocka_unit_test(test_round_trip_random_runs),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_size_polled_signal),
        cmocka_unit_test(test_size_constant_exact_period),
        cmocka_unit_test(test_bound_never_exceeded),
        cmocka_unit_test(test_encode_rejects),
        cmocka_unit_test(test_decode_rejects),
        cmocka_unit_test(test_decode_rejects_every_truncation),
        cmocka_unit_test(test_decode_rejects_trailing_bytes),
        cmocka_unit_test(test_count),
        cmocka_unit_test(test_decode_single_byte_mutations),
    };

    return cmocka_run_group_tests_name("sample_chunk", tests, NULL, NULL);
}
