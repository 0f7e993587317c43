/* Chunks: a run of one tag's archive samples, compressed, as the archive
 * stores its settled samples from cluster level 3 on (archive_chunks.c).
 *
 * Why. A settled sample stored as a row of archive_samples costs some 20
 * bytes of key and value plus the B-tree's share, and settling is bounded
 * by the pages that writes (bench/archive_layout_bench: 3.0-3.7 s a round
 * of 1 Mi samples at 25 M held, against 0.6-1.2 s for 3-6 bytes a sample
 * in per-tag chunks). A polled value compresses well: its times come at a
 * near-constant period and its value changes in a few bits of the mantissa
 * or not at all, so each sample stores how its period differs from the
 * previous one and which bytes of its value differ from the previous value
 * (the idea of Facebook's Gorilla, on byte rather than bit boundaries:
 * simpler to check, a little larger).
 *
 * Format (all of it; a decoder checks every part):
 *   u8      version, 1
 *   varint  n, 1..VG_CHUNK_SAMPLES_MAX
 *   n times:
 *     u8    head: bit 7 bad; bits 4-6 zero bytes leading the XOR of the
 *           value's IEEE bits with the previous value's (0 before the
 *           first), bits 0-3 how many bytes follow (0..8; 0: the same bits
 *           as the previous value, and then bits 4-6 are 0)
 *     varint time: the first sample's t; the second's t minus the first's
 *           (> 0); later ones the zigzag of (this period - the previous
 *           period), where a period must be > 0
 *     bytes the XOR's bytes from the most significant non-zero one, the
 *           first and the last of them non-zero (so each chunk has exactly
 *           one encoding, and the encoder's output is what it decodes)
 * A varint is LEB128 (7 bits a byte, low first), at most 10 bytes, without
 * a redundant trailing zero byte. Times are < 2^53 and strictly increasing.
 *
 * Pure functions: no allocation, no I/O. */
#ifndef VG_SAMPLE_CHUNK_H
#define VG_SAMPLE_CHUNK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* At most this many samples in a chunk. A settle round stores about 40 of
 * each tag at 25 000 tags; merged chunks (late samples) and tags with few
 * peers split at this. */
#define VG_CHUNK_SAMPLES_MAX 1024u

struct vg_chunk_sample {
    uint64_t t; /* ms since the epoch, < 2^53 */
    double value;
    bool bad;
};

/* The most bytes N samples encode to. */
size_t vg_chunk_bound(size_t n);

/* Encode S (N samples, 1..VG_CHUNK_SAMPLES_MAX, t strictly increasing and
 * < 2^53) into OUT (at least vg_chunk_bound(N) bytes); the length into
 * *LEN. VG_OK, or VG_EINVAL (nothing useful in OUT) when S breaks those
 * rules. */
int vg_chunk_encode(const struct vg_chunk_sample *s, size_t n, unsigned char *out,
                    size_t *len);

/* The number of samples DATA (LEN bytes) says it holds into *N, without
 * decoding them. VG_OK or VG_EMALFORMED (a sentence in ERRMSG, a
 * VG_ERRMSG_SIZE buffer; may be NULL). */
int vg_chunk_count(const unsigned char *data, size_t len, size_t *n, char *errmsg);

/* Decode DATA (LEN bytes) into OUT, room for CAP samples; how many into *N.
 * VG_OK, or VG_EMALFORMED with a sentence in ERRMSG (may be NULL) that says
 * what is wrong and at which byte, for anything that is not exactly what
 * vg_chunk_encode writes (also more samples than CAP). */
int vg_chunk_decode(const unsigned char *data, size_t len, struct vg_chunk_sample *out,
                    size_t cap, size_t *n, char *errmsg);

#endif /* VG_SAMPLE_CHUNK_H */
