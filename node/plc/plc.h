/* Vigil PLC coupling, the pure part: which Modbus requests to send each poll
 * cycle, how to turn the registers and bits that come back into values, how
 * to turn an operator's setpoint into registers, and when a new value is
 * worth reporting. Nothing in those parts touches a socket, a thread or a
 * clock, so the poller (which does) stays small and all of this is
 * unit-tested directly. The poller itself is the last section of this
 * header (poller.c; libmodbus, libuv, one thread per PLC).
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

/* =============================================================== poller */

/* The network half (poller.c): one struct vg_plc_poller polls ONE PLC of a
 * project over Modbus TCP (libmodbus) and hands the tags that changed to a
 * libuv loop.
 *
 * Threading. libmodbus is blocking, so every poller runs its own thread: a
 * slow or dead PLC holds up only that thread. The thread owns the Modbus
 * connection and the deadband state; the loop thread owns the callbacks.
 * They meet in one mutex-protected block per poller: a change queue with one
 * slot per tag of the PLC (a newer change of a tag overwrites the pending
 * one, so a loop that falls behind costs neither memory nor staleness, only
 * intermediate values), the write queue, the finished writes and the status.
 * The thread wakes the loop with a uv_async_t; the loop wakes the thread with
 * a condition variable (interval and back-off sleeps) and, on stop, with
 * shutdown() of the socket (a connect or read in progress ends at once).
 *
 * Planning. The poller's thread, not vg_plc_poller_start, plans the PLC's
 * reads (vg_plc_plan_build), before its first connect: 20 000 tags take
 * 100-300 ms to plan, and a new leader starts its pollers on its loop thread
 * in the middle of a takeover, when a loop that stops for that long stops
 * sending heartbeats. Until the plan is built the status says planned = false
 * (plan_requests and n_tags are 0), nothing is polled and writes wait;
 * then OPTS->planned_cb reports the outcome on the loop thread. A plan that
 * fails (only for tags a validated project never has, or out of memory)
 * leaves the poller idle: last_error says why, writes fail, and it waits for
 * vg_plc_poller_stop like any other.
 *
 * Cycles. A cycle sends the plan's read requests, decodes every tag and
 * queues those that pass the deadband. Cycles start on a fixed schedule
 * (next = previous + poll interval, so no drift); a cycle that ends after
 * the next start time counts an overrun and the next starts at once.
 * Queued writes always go before the next cycle.
 *
 * Failures. A connection failure, a timeout or a garbled answer closes the
 * connection and reports every tag of the PLC once with VG_PLC_BAD_COMM (no
 * stale good values), then reconnects with exponential back-off (by default
 * 100 ms doubling to 5 s; reset after a complete good cycle, so a PLC that
 * accepts connections but never answers is not hammered). A Modbus exception
 * to one read request marks only that request's tags bad; the connection
 * stays.
 *
 * Lifetime (libuv style). The caller owns the struct vg_plc_poller;
 * vg_plc_poller_start fills it, vg_plc_poller_stop asks the thread to end and
 * returns at once; CLOSE_CB is called on the loop thread once the thread has
 * been joined and the async handle closed, and only then may the struct be
 * freed. A stop while the thread is planning takes effect when the plan is
 * done (planning cannot be interrupted), so CLOSE_CB may then come a few
 * hundred ms later; the loop thread is not held up meanwhile. The PROJECT
 * given to start is borrowed: the caller keeps it alive and unchanged until
 * CLOSE_CB, not merely until start returns, because the thread reads it
 * (planning, decoding, writes) until it is joined, and stopping before the
 * plan is built does not shorten that. */

struct uv_loop_s;
struct vg_plc_poller;
struct vg_plc_poller_impl;

/* One tag's new reading. */
struct vg_plc_change {
    uint32_t tag;                /* index into project->tags */
    enum vg_plc_quality quality;
    double value;                /* engineering units; 0 unless GOOD */
    uint64_t t_ms;               /* wall clock: answer received / failure seen */
};

/* Called on the loop thread with a batch of changes, at most one per tag and
 * in no particular order. V is valid only during the call. Not called after
 * vg_plc_poller_stop. */
typedef void (*vg_plc_changes_cb)(struct vg_plc_poller *p,
                                  const struct vg_plc_change *v, size_t n);

/* Called on the loop thread once the thread has planned the reads (see
 * "Planning"), before the first changes: STATUS 0 (the status now has
 * plan_requests and n_tags), or VG_EINVAL (tags that overlap or run past
 * address 65535) or VG_ENOMEM, with a sentence in ERRMSG (valid during the
 * call; the same text is in the status's last_error). After an error the
 * poller does not poll; the caller should stop it. Not called after
 * vg_plc_poller_stop, so a poller stopped while planning never reports. */
typedef void (*vg_plc_planned_cb)(struct vg_plc_poller *p, int status,
                                  const char *errmsg);

/* Called on the loop thread when the write queued by vg_plc_poller_write is
 * done: STATUS 0 (fencing registers and value written), or VG_EIO (not
 * connected, connection lost, the PLC answered with an exception),
 * VG_ETIMEDOUT (no answer in time, or not sent within
 * write_max_age_ms) or VG_ECLOSED (the poller was stopped
 * before the write was sent), with a sentence in ERRMSG (valid during the
 * call). Called exactly once per accepted write, before the close callback. */
typedef void (*vg_plc_write_cb)(struct vg_plc_poller *p, int status,
                                const char *errmsg, void *data);

typedef void (*vg_plc_poller_close_cb)(struct vg_plc_poller *p);

struct vg_plc_poller_opts {
    vg_plc_changes_cb changes_cb;  /* required */
    vg_plc_planned_cb planned_cb;  /* may be NULL */
    struct vg_plc_plan_opts plan;  /* request planning */
    /* Overrides of the project's PLC settings (tests, simulators):
     * NULL / 0 take the project's. HOST is copied. */
    const char *host;
    int port;
    unsigned poll_ms;
    unsigned timeout_ms;           /* response timeout, also for connect */
    unsigned backoff_min_ms;       /* 0: 100 */
    unsigned backoff_max_ms;       /* 0: 5000 */
    size_t max_writes;             /* writes queued at once; 0: 64 */
    /* A write the thread could not start sending within this many ms of
     * vg_plc_poller_write fails with VG_ETIMEDOUT instead of being sent
     * late (0: no limit). vigild sets it below its election timeout so that
     * a leader that was paused, and may have been replaced meanwhile, never
     * writes after it woke up. */
    unsigned write_max_age_ms;
};

/* Defaults: no overrides, default planning, changes_cb and planned_cb
 * NULL. */
void vg_plc_poller_opts_default(struct vg_plc_poller_opts *o);

/* A snapshot of a poller's health (vg_plc_poller_status). */
struct vg_plc_poller_status {
    bool connected;
    char last_error[VG_ERRMSG_SIZE]; /* "" until the first failure */
    uint64_t cycles;        /* complete read cycles */
    uint64_t first_cycle_ms; /* wall clock when the first cycle completed
                              * (0 before): a new leader's "polling again" */
    uint64_t requests;      /* read requests sent */
    uint64_t overruns;      /* cycles that ended after the next start time */
    uint64_t connects;      /* successful connects */
    uint64_t attempts;      /* connect attempts, successful or not */
    uint64_t reconnects;    /* attempts after a failure (after a back-off) */
    uint64_t comm_failures; /* connections lost or attempts failed */
    unsigned backoff_ms;    /* the back-off being or last waited (0: none) */
    uint64_t changes;       /* changes queued */
    uint64_t coalesced;     /* queued changes replaced before delivery */
    uint64_t writes_ok, writes_failed;
    unsigned last_cycle_ms; /* duration of the last complete cycle */
    unsigned max_cycle_ms;
    /* The plan, known once the thread has built it (see "Planning"): until
     * then, and for good when planning failed, PLANNED is false and the two
     * counts are 0, which does not mean the PLC has no tags. */
    bool planned;
    size_t plan_requests;   /* read requests per cycle in the plan */
    size_t n_tags;          /* tags of this PLC */
};

struct vg_plc_poller {
    void *data;                     /* for the user */
    struct vg_plc_poller_impl *impl; /* private */
};

/* Start polling PLC_INDEX of PROJECT (borrowed until CLOSE_CB, see above) on
 * its own thread, delivering to LOOP. Returns 0, or VG_EINVAL (bad index or
 * options, request size limits included), VG_ENOMEM, VG_EIO (thread or
 * async handle could not be created) with a sentence in ERRMSG; on error
 * nothing was started and no close callback follows. Returns without
 * planning the reads and never blocks on the network: the plan and even the
 * first connect are made on the poller's thread, so an error in the plan
 * comes later (planned_cb, last_error) and the caller must still stop the
 * poller. */
int vg_plc_poller_start(struct vg_plc_poller *p, struct uv_loop_s *loop,
                        const struct vg_project *project, int plc_index,
                        const struct vg_plc_poller_opts *opts, char *errmsg);

/* Stop polling. Returns at once (interrupting a blocked connect or read);
 * CLOSE_CB (may be NULL) follows on the loop thread when everything is
 * released. May be called from any poller callback. Call once. */
void vg_plc_poller_stop(struct vg_plc_poller *p,
                        vg_plc_poller_close_cb close_cb);

/* Queue a write of ENG_VALUE (engineering units) to tag TAG_INDEX (an index
 * into project->tags, on this PLC, of kind co or hr). The poller thread
 * first writes NODE_ID and TERM to the PLC's fencing registers (when it has
 * them: hr[f..f+1] = node id, hr[f+2..f+3] = term, uint32 high word first,
 * one function 0x10 request), then the value (function 0x05, 0x06 or 0x10),
 * before its next read cycle; CB (required) reports the outcome. Limits
 * (tag min/max) and leadership are the caller's business.
 *
 * Returns 0 when queued; otherwise CB is not called and the return is
 * VG_EINVAL (tag not on this PLC, not writable by kind, value does not fit
 * the type), VG_EBUSY (too many writes queued), VG_ECLOSED (stopping) or
 * VG_ENOMEM, with a sentence in ERRMSG. Loop thread only. A write queued
 * while the PLC is unreachable fails at once with the last connection error
 * rather than waiting for the next reconnect. A write queued before the plan
 * is built waits for it and the first connect (write_max_age_ms still
 * applies); if the plan fails, it fails with VG_EIO and the plan's error. */
int vg_plc_poller_write(struct vg_plc_poller *p, uint32_t tag_index,
                        double eng_value, uint32_t node_id, uint32_t term,
                        vg_plc_write_cb cb, void *data, char *errmsg);

/* Copy the poller's current status into ST. Any thread. */
void vg_plc_poller_status(struct vg_plc_poller *p,
                          struct vg_plc_poller_status *st);

#endif /* VG_PLC_H */
