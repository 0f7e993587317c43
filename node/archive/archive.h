/* Vigil archive recorder, the pure part of the leader's archive duty: which
 * readings of the polled tags become samples of the process-value archive,
 * the buffer that holds them until they are committed, and the
 * HISTORY_SAMPLES command bodies that carry them (replication/replication.h).
 *
 * What is archived. A tag archived on change (the project's archive "change")
 * gets a sample for every change the poller reports: the poller reports a
 * value only when it moved beyond the tag's deadband or its quality changed,
 * and always the first reading, so a new leader closes the gap a failover
 * left as soon as it polls. A tag archived cyclically (archive "cyclic",
 * archive_period_s) gets one sample in every period of the shared wall
 * clock (the slot now / period), of its latest reading, whichever node
 * leads then; none before its first reading. A reading of bad quality is
 * archived as bad, value 0.
 *
 * Buffer. Samples wait in arrival order until taken into a batch. At most
 * BUFFER_MAX wait; when full, the oldest tenth is dropped (and counted):
 * a cluster that cannot commit as fast as the plant changes must not make
 * the leader grow without bound, and the newest values matter most.
 *
 * Batches. vg_archive_recorder_take moves the oldest samples into one body:
 * t0 (the earliest time), the names of the tags they refer to, sorted by
 * name (the state machine checks them distinct in one pass), then the
 * packed samples. Taken samples leave the buffer whatever becomes of the
 * body; the caller proposes it.
 *
 * Nothing here touches a socket, a thread, a clock or a database: the time
 * is an argument, so the rules are unit-tested with simulated time
 * (tests/unit/archive/). Ownership: the recorder borrows the project given
 * to start (it must outlive the recorder's use of it, until the next start
 * or stop); everything else it allocates and frees itself. */
#ifndef VG_ARCHIVE_H
#define VG_ARCHIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vg_project;
struct vg_plc_change;
struct vg_archive_recorder;

struct vg_archive_recorder_stats {
    uint64_t archived; /* samples recorded since new */
    uint64_t dropped;  /* of those, dropped: buffer full or out of memory */
    size_t buffered;   /* waiting to be taken now */
};

/* A recorder whose buffer holds at most BUFFER_MAX samples (at least 10);
 * NULL when out of memory. */
struct vg_archive_recorder *vg_archive_recorder_new(size_t buffer_max);
void vg_archive_recorder_free(struct vg_archive_recorder *r);

/* Record the tags of PR (borrowed) from now on: the buffer is emptied and
 * the cyclic slots forgotten (a new leader or a new project version).
 * VG_OK, or VG_ENOMEM (the recorder is then stopped). */
int vg_archive_recorder_start(struct vg_archive_recorder *r,
                              const struct vg_project *pr);
/* Record nothing (leadership lost): the buffer is emptied. */
void vg_archive_recorder_stop(struct vg_archive_recorder *r);
/* The project recorded, or NULL when stopped. */
const struct vg_project *vg_archive_recorder_project(const struct vg_archive_recorder *r);

/* The poller's changes V (N of them): a sample for each of a tag archived
 * on change. Changes of tags outside the project are ignored. */
void vg_archive_recorder_changed(struct vg_archive_recorder *r,
                                 const struct vg_plc_change *v, size_t n);

/* A tag's latest reading, for cyclic archiving: false when it has none yet,
 * else its value and whether its quality is bad. */
typedef bool (*vg_archive_reading_fn)(void *arg, uint32_t tag, double *value,
                                      bool *bad);
/* At wall-clock time NOW_MS: a sample, stamped NOW_MS, of every cyclic tag
 * whose period slot changed since its last sample and that has a reading
 * (READING). Call it every loop iteration: a slot missed is not made up. */
void vg_archive_recorder_cyclic(struct vg_archive_recorder *r, uint64_t now_ms,
                                vg_archive_reading_fn reading, void *arg);

/* Move the oldest buffered samples, at most MAX (and at most
 * VG_HISTORY_BATCH_MAX), into a new HISTORY_SAMPLES body (*BODY, *LEN
 * bytes, malloc'd, the caller frees it) of *SAMPLES samples. VG_OK
 * (*SAMPLES may be 0: nothing buffered, *BODY NULL), VG_ENOMEM or VG_EINVAL
 * (a tag name longer than the command carries): the samples are dropped. */
int vg_archive_recorder_take(struct vg_archive_recorder *r, size_t max,
                             unsigned char **body, size_t *len, size_t *samples);

void vg_archive_recorder_stats(const struct vg_archive_recorder *r,
                               struct vg_archive_recorder_stats *out);

#endif /* VG_ARCHIVE_H */
