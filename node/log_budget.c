/* The raft log's memory, bounded in bytes as well as in entries.
 *
 * libraft 0.15 keeps every entry since its last snapshot in memory, plus
 * --snapshot-trailing entries before it, and takes a snapshot every
 * --snapshot-threshold entries: a count, whatever the entries weigh. An
 * acknowledgment is a few hundred bytes, but a HISTORY_SAMPLES command of
 * the archive carries up to 16 384 samples and the names of their tags,
 * and at 200 000 samples/s a dozen of them a second: 4096 such entries
 * held gigabytes on every node before the first snapshot, and 1024
 * trailing ones stayed after it.
 *
 * So every LOOK_EVERY_MS the node sums what libraft's log holds (struct
 * raft_log is public in 0.15). Past --snapshot-log-mb, it lowers libraft's
 * threshold to the entries since the last snapshot, so the next apply
 * takes one (async, fsm_snapshot.c); the threshold goes back to
 * --snapshot-threshold once that is done. The trailing entries are kept to
 * TRAILING_SHARE of the budget by the log's mean entry size, at least
 * TRAILING_MIN of them: a follower that falls further behind than that is
 * sent a snapshot instead of entries, which costs a snapshot install but
 * no memory on every node. --snapshot-log-mb 0 leaves libraft's counts
 * alone.
 *
 * Replicas that apply the same log reach the same threshold at the same
 * index, so all of them serialized the whole database at once: three 598 MB
 * snapshots on a shared two-core host took 7-10 s each on the pool, and
 * replicas on virtual machines of one host (or one SAN) would share the
 * disk the same way. So node K's threshold and budget are (K mod 4)
 * eighths above the configured ones (staggered). */
#include "internal.h"

#define LOOK_EVERY_MS 100u
#define TRAILING_SHARE 4u /* a quarter of the budget */
#define TRAILING_MIN 16u

/* N, raised by (node id mod 4) eighths: this node's share of the stagger. */
static uint64_t staggered(const struct node *n, uint64_t v)
{
    return v + v * (n->cfg->id % 4u) / 8u;
}

unsigned node_log_budget_threshold(const struct node *n)
{
    uint64_t t = staggered(n, n->cfg->snapshot_threshold);
    return t > UINT32_MAX ? UINT32_MAX : (unsigned)t;
}

/* Entries and bytes of R's in-memory log: all of it, and those after the
 * last snapshot's index. */
static void log_weight(const struct raft *r, uint64_t *entries, uint64_t *bytes,
                       uint64_t *after_entries, uint64_t *after_bytes)
{
    const struct raft_log *l = &r->log;
    size_t n = l->size == 0 ? 0 : (l->back + l->size - l->front) % l->size;

    *entries = n;
    *bytes = *after_entries = *after_bytes = 0;
    for (size_t k = 0; k < n; k++) {
        const struct raft_entry *e = &l->entries[(l->front + k) % l->size];
        raft_index index = l->offset + 1 + k;
        *bytes += e->buf.len;
        if (index > l->snapshot.last_index) {
            *after_entries += 1;
            *after_bytes += e->buf.len;
        }
    }
}

void node_log_budget_update(struct node *n)
{
    struct node_log_budget *b = &n->log_budget;
    uint64_t now = vg_now_mono_ms(), budget, entries, bytes, after, after_bytes;
    unsigned threshold, trailing;

    if (now < b->next_ms) {
        return;
    }
    b->next_ms = now + LOOK_EVERY_MS;
    log_weight(&n->raft, &entries, &bytes, &after, &after_bytes);
    b->entries = entries;
    b->bytes = bytes;
    b->max_bytes = bytes > b->max_bytes ? bytes : b->max_bytes;
    budget = staggered(n, (uint64_t)n->cfg->snapshot_log_mb << 20);
    if (budget == 0) {
        return;
    }

    threshold = node_log_budget_threshold(n);
    if (after_bytes >= budget && after >= 2 && after < threshold) {
        /* libraft compares last_applied - snapshot index with the
         * threshold after each apply: the next one takes a snapshot. */
        threshold = (unsigned)after;
        if (!b->early) {
            b->early = true;
            b->early_snapshots++;
        }
    } else if (after_bytes < budget) {
        b->early = false;
    }
    trailing = n->cfg->snapshot_trailing;
    if (entries > 0 && bytes > 0) {
        uint64_t mean = bytes / entries + 1;
        uint64_t fit = budget / TRAILING_SHARE / mean;
        if (fit < TRAILING_MIN) {
            fit = TRAILING_MIN;
        }
        if (fit < trailing) {
            trailing = (unsigned)fit;
        }
    }
    if (threshold != b->threshold) {
        raft_set_snapshot_threshold(&n->raft, threshold);
        b->threshold = threshold;
    }
    if (trailing != b->trailing) {
        raft_set_snapshot_trailing(&n->raft, trailing);
        b->trailing = trailing;
    }
}

json_t *node_log_budget_status(struct node *n)
{
    const struct node_log_budget *b = &n->log_budget;
    return json_pack("{sIsIsIsIsIsIsI}", "entries", (json_int_t)b->entries, "bytes",
                     (json_int_t)b->bytes, "max_bytes", (json_int_t)b->max_bytes,
                     "budget_bytes",
                     (json_int_t)staggered(n, (uint64_t)n->cfg->snapshot_log_mb << 20),
                     "threshold", (json_int_t)b->threshold, "trailing",
                     (json_int_t)b->trailing, "early_snapshots",
                     (json_int_t)b->early_snapshots);
}
