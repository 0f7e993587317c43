/* Vigil PLC coupling, the pure part: which Modbus requests to send each poll
 * cycle, how to turn the registers and bits that come back into values, how
 * to turn an operator's setpoint into registers, and when a new value is
 * worth reporting. Nothing here touches a socket, a thread or a clock, so the
 * poller (which does) stays small and all of this is unit-tested directly.
 *
 * Request planning. Every Modbus read costs one network round trip, which is
 * far more than the few bytes of unused registers it may carry, so a PLC's
 * tags are coalesced into the fewest read requests the register map allows:
 * per register kind (coils 0x01, discrete inputs 0x02, holding registers
 * 0x03, input registers 0x04) a request covers a contiguous range of at most
 * 125 registers or 2000 bits, may read unused gaps between tags (their
 * contents are ignored) up to a configurable maximum gap, and never splits a
 * 32-bit tag. Among plans with the fewest requests the planner picks one
 * that reads the fewest registers (see plan.c for the algorithm and the proof
 * that it is minimal).
 *
 * Values. A tag's raw value is decoded from its response (bool from a bit;
 * 16- and 32-bit integers with sign; float32 in either word order), then
 * scaled linearly to engineering units. A float32 that is NaN or infinite is
 * bad quality, never a value. Writing goes the other way: engineering value
 * to raw (rounded to the nearest integer for integer types and checked
 * against what the type can hold), then to registers or a coil.
 *
 * Ownership: a struct vg_plc_plan owns its arrays (free with
 * vg_plc_plan_free). The tags given to the planner are only read during the
 * call; the plan refers to them by index into that same array. */
#ifndef VG_PLC_H
#define VG_PLC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../config/project.h"

/* Modbus limits per read request (Modbus Application Protocol v1.1b3,
 * 6.1-6.4): 125 registers, 2000 bits. */
#define VG_PLC_MAX_READ_REGS 125
#define VG_PLC_MAX_READ_BITS 2000

/* Modbus function codes. */
#define VG_PLC_FC_READ_COILS 0x01
#define VG_PLC_FC_READ_DISCRETE 0x02
#define VG_PLC_FC_READ_HOLDING 0x03
#define VG_PLC_FC_READ_INPUT 0x04
#define VG_PLC_FC_WRITE_COIL 0x05
#define VG_PLC_FC_WRITE_REGISTER 0x06
#define VG_PLC_FC_WRITE_REGISTERS 0x10

/* ------------------------------------------------------------- planning */

struct vg_plc_plan_opts {
    /* Largest run of unused registers (bits) a request may read between two
     * tags. UINT32_MAX means "any gap": then only the size limits below
     * bound a request. */
    uint32_t max_gap_regs;
    uint32_t max_gap_bits;
    /* Size limits per request: 2..125 registers, 1..2000 bits. Smaller
     * values are for PLCs that refuse full-size requests (and for tests). */
    uint32_t max_regs;
    uint32_t max_bits;
};

/* By default any gap may be bridged: the fewest requests the register map
 * allows (18 instead of 41 per cycle for waterworks; the unused registers
 * read cost a few hundred bytes). A PLC that answers "illegal data address"
 * for unmapped registers inside a block needs a gap limit: that is what
 * max_gap_* are for (a per-PLC project setting is still to come). */
#define VG_PLC_DEFAULT_MAX_GAP_REGS UINT32_MAX
#define VG_PLC_DEFAULT_MAX_GAP_BITS UINT32_MAX

/* Defaults: any gap, full-size requests. */
void vg_plc_plan_opts_default(struct vg_plc_plan_opts *o);

/* One tag served by a request. */
struct vg_plc_item {
    uint32_t tag; /* index into the tags array given to the planner */
    uint16_t pos; /* its first register (bit) within the response */
};

/* One read request and the tags it serves. */
struct vg_plc_request {
    enum vg_reg_kind kind;
    uint8_t function;  /* VG_PLC_FC_READ_* for KIND */
    uint16_t start;    /* first register (bit), 0-based */
    uint16_t count;    /* registers (bits) to read, >= 1 */
    size_t first_item; /* its tags: items[first_item .. first_item+n_items) */
    size_t n_items;    /* in address order */
};

/* Requests are ordered by kind (coils, discrete inputs, holding, input),
 * then by start address. */
struct vg_plc_plan {
    struct vg_plc_request *reqs;
    size_t n_reqs;
    struct vg_plc_item *items;
    size_t n_items;
    uint64_t units_read; /* registers + bits read per cycle, gaps included */
};

/* Plan the reads for PLC (an index into the project's plcs): TAGS[0..N_TAGS)
 * is usually project->tags; those whose plc.index equals PLC are planned,
 * the others ignored. O (NULL: defaults) bounds the requests. PLAN must be
 * zeroed or freed first; on error it stays empty.
 *
 * Returns VG_EINVAL with a sentence in ERRMSG when O is out of range or when
 * two tags overlap or a tag runs past address 65535 (which a validated
 * project never has), VG_ENOMEM when out of memory. */
int vg_plc_plan_build(const struct vg_tag *tags, size_t n_tags, int plc,
                      const struct vg_plc_plan_opts *o,
                      struct vg_plc_plan *plan, char *errmsg);

void vg_plc_plan_free(struct vg_plc_plan *plan);

/* The fewest read requests any plan can have for the same tags and options,
 * computed independently of vg_plc_plan_build (by a greedy sweep whose
 * optimality plan.c proves), so that reports can state "requests per cycle
 * vs minimum". With O->max_gap_* = UINT32_MAX it is the lower bound the
 * register map itself allows. Returns 0 when no tag belongs to PLC, and
 * SIZE_MAX on the same input errors as vg_plc_plan_build. */
size_t vg_plc_plan_min_requests(const struct vg_tag *tags, size_t n_tags,
                                int plc, const struct vg_plc_plan_opts *o);

/* --------------------------------------------------------------- values */

enum vg_plc_quality {
    VG_PLC_GOOD = 0,
    VG_PLC_BAD_VALUE, /* the PLC sent something that is not a number */
    VG_PLC_BAD_COMM,  /* no answer: PLC unreachable, timeout, exception */
};

/* The raw value of a register-kind tag of TYPE (not bool) stored in
 * REGS[0] (and REGS[1] for 32-bit types) in word order WO. Returns
 * VG_PLC_BAD_VALUE, leaving *RAW unchanged, when a float32 is NaN or
 * infinite. */
enum vg_plc_quality vg_plc_regs_decode(enum vg_dtype type,
                                       enum vg_word_order wo,
                                       const uint16_t *regs, double *raw);

/* The engineering value of tag T from its request's response: REGS for
 * register kinds, BITS (one byte per bit, 0 or 1, as libmodbus delivers them)
 * for coils and discrete inputs; POS is the item's pos. */
enum vg_plc_quality vg_plc_tag_decode(const struct vg_tag *t,
                                      const uint16_t *regs,
                                      const uint8_t *bits, uint16_t pos,
                                      double *value);

/* Linear scaling raw -> engineering (identity for an unscaled tag). */
double vg_plc_scale_to_eng(const struct vg_tag *t, double raw);

/* Engineering -> raw for a write: the inverse scaling, rounded to the
 * nearest integer (halves away from zero) for integer types. Returns
 * VG_EINVAL with a sentence in ERRMSG when ENG is not finite or the raw value
 * does not fit T's type (e.g. 40000 for int16, 2 for bool). */
int vg_plc_scale_to_raw(const struct vg_tag *t, double eng, double *raw,
                        char *errmsg);

/* RAW (which must be integral and in range for integer types, finite and
 * within float range for float32) as the registers of TYPE in word order WO:
 * writes 1 or 2 registers into REGS and their number into *N. Returns
 * VG_EINVAL with ERRMSG otherwise. Not for bool. */
int vg_plc_regs_encode(enum vg_dtype type, enum vg_word_order wo, double raw,
                       uint16_t regs[2], unsigned *n, char *errmsg);

/* One write request: a coil (bool on co), one register, or two. */
struct vg_plc_write {
    uint8_t function; /* VG_PLC_FC_WRITE_COIL / _REGISTER / _REGISTERS */
    uint16_t addr;
    uint16_t count;   /* 1 (coil or 16-bit) or 2 (32-bit) */
    bool bit;         /* the coil's state */
    uint16_t regs[2];
};

/* The write that sets tag T to engineering value ENG (scaled, rounded,
 * range-checked as vg_plc_scale_to_raw). Returns VG_EINVAL with a sentence
 * in ERRMSG when T is not on a writable kind (co, hr) or the value does not
 * fit. Write limits (t->min/max) are the command path's business. */
int vg_plc_write_encode(const struct vg_tag *t, double eng,
                        struct vg_plc_write *w, char *errmsg);

/* ------------------------------------------------------------- deadband */

/* What was last reported for a tag. */
struct vg_plc_reported {
    bool valid; /* false until the first report */
    enum vg_plc_quality quality;
    double value; /* meaningful when quality is good */
};

/* Whether a new reading (VALUE, Q) of a tag with DEADBAND (engineering
 * units, >= 0) must be reported given LAST: always the first reading and
 * any change of quality; never a repeated bad quality; otherwise when
 * |VALUE - LAST->value| > DEADBAND (so deadband 0 reports every change). */
bool vg_plc_deadband_report(const struct vg_plc_reported *last,
                            double deadband, double value,
                            enum vg_plc_quality q);

#endif /* VG_PLC_H */
