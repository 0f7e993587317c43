/* A raft_io decorator that turns disk errors into a fail-stop.
 *
 * libraft 0.15 may keep leadership after a failed disk write (and in general
 * carries on after I/O errors in ways later versions fixed). Vigil's rule is
 * simpler: any failed write of term, vote, entries, truncation or snapshot
 * means this node's disk can no longer be trusted, so the owner is told at
 * once (fault_cb) and stops the process. Network errors are not faults: peers
 * come and go.
 *
 * It also guards what libraft receives (io_recv, vg_repl_append_guard in
 * replication.h): libraft 0.15's follower dereferenced NULL on an
 * AppendEntries from index 1 while its log started after a snapshot (two
 * core files of ack_chaos.py --partitions --seed 11: a restarted node,
 * snapshot at 4609 and at 5121, previous index 0 from the new leader; the
 * append path found no entry at index 1 and truncated its log from index
 * 1, past its first entry). Entries at or below the snapshot are committed
 * and already applied here, so the message is cut to start after it.
 *
 * And it holds back an InstallSnapshot that libraft 0.15 would drop because
 * it is taking or storing a snapshot of its own (vg_repl_snapshot_busy in
 * replication.h), and hands it over once libraft is done: at the next
 * message received or the next tick, whichever comes first.
 *
 * raft_init() stores the raft pointer in the outer io's data; libraft's tick
 * and receive callbacks read it from the io they are handed, which is the
 * inner one, so init/start copy it across. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replication.h"

#define WRAP(io) ((struct vg_repl_failstop *)(io)->impl)

static void fault(struct vg_repl_failstop *w, const char *what, int status)
{
    w->faults++;
    /* Precision-limited so that the sentence always fits. */
    if (w->inner->errmsg[0] != '\0') {
        snprintf(w->what, sizeof w->what, "%.40s failed: %.40s (%.160s)", what,
                 raft_strerror(status), w->inner->errmsg);
    } else {
        snprintf(w->what, sizeof w->what, "%.40s failed: %.40s", what,
                 raft_strerror(status));
    }
    if (w->fault_cb != NULL) {
        w->fault_cb(w, w->what, status);
    }
}

/* Free a held InstallSnapshot as libraft frees one it has handled. */
static void held_free(struct vg_repl_failstop *w)
{
    if (!w->held) {
        return;
    }
    raft_configuration_close(&w->held_msg.install_snapshot.conf);
    raft_free(w->held_msg.install_snapshot.data.base);
    free(w->held_address);
    w->held_address = NULL;
    w->held = false;
}

static int io_init(struct raft_io *io, raft_id id, const char *address)
{
    struct vg_repl_failstop *w = WRAP(io);
    int rv;
    w->inner->data = io->data;
    rv = w->inner->init(w->inner, id, address);
    if (rv != 0) {
        snprintf(io->errmsg, sizeof io->errmsg, "%s", w->inner->errmsg);
    }
    return rv;
}

static void io_close(struct raft_io *io, raft_io_close_cb cb)
{
    /* The inner io calls CB with itself; libraft's close callback reads the
     * raft pointer from io->data, which the inner io carries too. */
    WRAP(io)->closing = true;
    held_free(WRAP(io));
    WRAP(io)->inner->close(WRAP(io)->inner, cb);
}

static int io_load(struct raft_io *io, raft_term *term, raft_id *voted_for,
                   struct raft_snapshot **snapshot, raft_index *start_index,
                   struct raft_entry *entries[], size_t *n_entries)
{
    struct vg_repl_failstop *w = WRAP(io);
    int rv = w->inner->load(w->inner, term, voted_for, snapshot, start_index,
                            entries, n_entries);
    if (rv != 0) {
        snprintf(io->errmsg, sizeof io->errmsg, "%s", w->inner->errmsg);
    }
    return rv;
}

/* Free the memory of entries E[FROM..TO) as libraft frees a received
 * message's entries: one batch holds them all (the uv transport's), or
 * each has its own buffer. KEEP, when not NULL, is a batch still in use. */
static void entries_free(struct raft_entry *e, unsigned from, unsigned to,
                         const void *keep)
{
    void *freed = NULL;
    for (unsigned i = from; i < to; i++) {
        if (e[i].batch == NULL) {
            raft_free(e[i].buf.base);
        } else if (e[i].batch != keep && e[i].batch != freed) {
            freed = e[i].batch;
            raft_free(freed);
        }
    }
}

bool vg_repl_append_guard(struct raft_append_entries *a, raft_index snap_index,
                          raft_term snap_term)
{
    uint64_t below;
    unsigned k;

    if (snap_index == 0 || a->prev_log_index >= snap_index) {
        return false;
    }
    /* How many of the entries are at or below the snapshot. */
    below = snap_index - a->prev_log_index;
    k = a->n_entries < below ? a->n_entries : (unsigned)below;
    /* The entry at the snapshot's index, when the message carries it,
     * must be the snapshot's (committed entries match everywhere). */
    if (k > 0 && a->prev_log_index + k == snap_index &&
        a->entries[k - 1].term != snap_term) {
        return false;
    }
    if (k == a->n_entries) {
        /* A heartbeat, as the transport decodes one: no array. */
        entries_free(a->entries, 0, k, NULL);
        raft_free(a->entries);
        a->entries = NULL;
        a->n_entries = 0;
    } else if (k > 0) {
        entries_free(a->entries, 0, k, a->entries[k].batch);
        memmove(a->entries, a->entries + k, (a->n_entries - k) * sizeof *a->entries);
        a->n_entries -= k;
    }
    a->prev_log_index = snap_index;
    a->prev_log_term = snap_term;
    return true;
}

bool vg_repl_snapshot_busy(const struct raft *r)
{
    /* The condition libraft 0.15 tests before it drops the message. */
    return r->snapshot.pending.term != 0 || r->snapshot.put.data != NULL;
}

/* Keep M, an InstallSnapshot libraft cannot take now, in place of any
 * message held before (the later one is the leader's newer snapshot, or
 * the same one sent again). False when there is no memory to copy the
 * sender's address: then libraft gets it now, as without the wrapper. */
static bool hold_snapshot(struct vg_repl_failstop *w, const struct raft_message *m)
{
    char *address = strdup(m->server_address != NULL ? m->server_address : "");
    if (address == NULL) {
        return false;
    }
    if (w->held) {
        held_free(w);
        w->snapshots_replaced++;
    }
    w->held = true;
    w->held_msg = *m;
    w->held_address = address;
    w->held_msg.server_address = address;
    w->held_since = w->inner->time(w->inner);
    w->snapshots_held++;
    return true;
}

/* Hand the held message to libraft once it is no longer busy. Its data
 * becomes libraft's; the address copy is ours (libraft copies the
 * leader's address while it handles the message). */
static void deliver_held(struct raft_io *inner, struct raft *r,
                         struct vg_repl_failstop *w)
{
    struct raft_message m;
    char *address;
    raft_time now;

    if (!w->held || w->closing || vg_repl_snapshot_busy(r)) {
        return;
    }
    m = w->held_msg;
    address = w->held_address;
    w->held = false;
    w->held_address = NULL;
    now = w->inner->time(w->inner);
    if (now > w->held_since && now - w->held_since > w->snapshot_hold_max_ms) {
        w->snapshot_hold_max_ms = now - w->held_since;
    }
    w->snapshots_delivered++;
    w->recv(inner, &m);
    free(address);
}

/* Called by the inner io with itself; libraft's raft is in its data (copied
 * by init and start) and the wrapper is that raft's io. */
static void io_recv(struct raft_io *inner, struct raft_message *m)
{
    struct raft *r = inner->data;
    struct vg_repl_failstop *w = WRAP(r->io);

    /* What was held goes first: messages reach libraft in the order they
     * arrived. */
    deliver_held(inner, r, w);
    if (m->type == RAFT_IO_INSTALL_SNAPSHOT && !w->closing &&
        vg_repl_snapshot_busy(r) && hold_snapshot(w, m)) {
        return;
    }
    if (m->type == RAFT_IO_APPEND_ENTRIES) {
        bool from_start = m->append_entries.prev_log_index == 0;
        if (vg_repl_append_guard(&m->append_entries, r->log.snapshot.last_index,
                                 r->log.snapshot.last_term)) {
            w->appends_cut++;
            w->appends_cut_from_start += from_start;
            /* libraft answers a success with the last index it stored,
             * which may lie past what this message matched (entries of an
             * old term after the snapshot, not yet truncated): the leader
             * would count them as matching. An answer sent while libraft
             * handles the cut message (a heartbeat, or entries it already
             * had) says no more than the message's end; one sent later,
             * once new entries are stored, names exactly those. */
            w->clamp_armed = true;
            w->clamp_server = m->server_id;
            w->clamp_index = m->append_entries.prev_log_index +
                             m->append_entries.n_entries;
        }
    }
    w->recv(inner, m);
    w->clamp_armed = false;
}

/* Called by the inner io with itself, as io_recv. */
static void io_tick(struct raft_io *inner)
{
    struct raft *r = inner->data;
    struct vg_repl_failstop *w = WRAP(r->io);

    deliver_held(inner, r, w);
    if (w->tick != NULL) {
        w->tick(inner);
    }
}

static int io_start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                    raft_io_recv_cb recv)
{
    struct vg_repl_failstop *w = WRAP(io);
    w->inner->data = io->data;
    w->recv = recv;
    w->tick = tick;
    return w->inner->start(w->inner, msecs, io_tick, io_recv);
}

static int io_bootstrap(struct raft_io *io, const struct raft_configuration *c)
{
    struct vg_repl_failstop *w = WRAP(io);
    int rv = w->inner->bootstrap(w->inner, c);
    if (rv != 0) {
        snprintf(io->errmsg, sizeof io->errmsg, "%s", w->inner->errmsg);
    }
    return rv;
}

static int io_recover(struct raft_io *io, const struct raft_configuration *c)
{
    struct vg_repl_failstop *w = WRAP(io);
    return w->inner->recover(w->inner, c);
}

static int io_set_term(struct raft_io *io, raft_term term)
{
    struct vg_repl_failstop *w = WRAP(io);
    int rv = w->inner->set_term(w->inner, term);
    if (rv != 0) {
        fault(w, "persisting the term", rv);
    }
    return rv;
}

static int io_set_vote(struct raft_io *io, raft_id server_id)
{
    struct vg_repl_failstop *w = WRAP(io);
    int rv = w->inner->set_vote(w->inner, server_id);
    if (rv != 0) {
        fault(w, "persisting the vote", rv);
    }
    return rv;
}

static int io_send(struct raft_io *io, struct raft_io_send *req,
                   const struct raft_message *message, raft_io_send_cb cb)
{
    struct vg_repl_failstop *w = WRAP(io);

    /* The answer to a message the guard cut, sent while libraft handles it
     * (io_recv): see there. libraft copies what it sends before returning,
     * so a changed copy on the stack will do. */
    if (w->clamp_armed && message->type == RAFT_IO_APPEND_ENTRIES_RESULT &&
        message->server_id == w->clamp_server &&
        message->append_entries_result.rejected == 0 &&
        message->append_entries_result.last_log_index > w->clamp_index) {
        struct raft_message m = *message;
        m.append_entries_result.last_log_index = w->clamp_index;
        w->results_clamped++;
        return w->inner->send(w->inner, req, &m, cb);
    }
    return w->inner->send(w->inner, req, message, cb);
}

/* Requests whose completion we need to see: a wrapper request goes to the
 * inner io and the outer request is completed from its callback. */
struct append_wrap {
    struct raft_io_append inner;
    struct raft_io_append *outer;
    struct vg_repl_failstop *w;
};

static void append_cb(struct raft_io_append *inner, int status)
{
    struct append_wrap *a = inner->data;
    struct raft_io_append *outer = a->outer;
    struct vg_repl_failstop *w = a->w;
    free(a);
    if (status != 0 && status != RAFT_CANCELED) {
        fault(w, "appending entries", status);
    }
    outer->cb(outer, status);
}

static int io_append(struct raft_io *io, struct raft_io_append *req,
                     const struct raft_entry entries[], unsigned n,
                     raft_io_append_cb cb)
{
    struct vg_repl_failstop *w = WRAP(io);
    struct append_wrap *a = malloc(sizeof *a);
    int rv;
    if (a == NULL) {
        return RAFT_NOMEM;
    }
    a->inner.data = a;
    a->outer = req;
    a->w = w;
    req->cb = cb;
    rv = w->inner->append(w->inner, &a->inner, entries, n, append_cb);
    if (rv != 0) {
        free(a);
        fault(w, "appending entries", rv);
    }
    return rv;
}

static int io_truncate(struct raft_io *io, raft_index index)
{
    struct vg_repl_failstop *w = WRAP(io);
    int rv = w->inner->truncate(w->inner, index);
    if (rv != 0) {
        fault(w, "truncating the log", rv);
    }
    return rv;
}

struct put_wrap {
    struct raft_io_snapshot_put inner;
    struct raft_io_snapshot_put *outer;
    struct vg_repl_failstop *w;
};

static void put_cb(struct raft_io_snapshot_put *inner, int status)
{
    struct put_wrap *p = inner->data;
    struct raft_io_snapshot_put *outer = p->outer;
    struct vg_repl_failstop *w = p->w;
    free(p);
    if (status != 0 && status != RAFT_CANCELED) {
        fault(w, "storing a snapshot", status);
    }
    outer->cb(outer, status);
}

static int io_snapshot_put(struct raft_io *io, unsigned trailing,
                           struct raft_io_snapshot_put *req,
                           const struct raft_snapshot *snapshot,
                           raft_io_snapshot_put_cb cb)
{
    struct vg_repl_failstop *w = WRAP(io);
    struct put_wrap *p;
    int rv;
    if (w->closing) {
        /* An asynchronous snapshot that finishes while the node shuts down
         * is stored only after the io began closing: libraft 0.15's uv io
         * is not known to refuse that, and it is not a disk fault. */
        return RAFT_CANCELED;
    }
    p = malloc(sizeof *p);
    if (p == NULL) {
        return RAFT_NOMEM;
    }
    p->inner.data = p;
    p->outer = req;
    p->w = w;
    req->cb = cb;
    rv = w->inner->snapshot_put(w->inner, trailing, &p->inner, snapshot, put_cb);
    if (rv != 0) {
        free(p);
        fault(w, "storing a snapshot", rv);
    }
    return rv;
}

struct get_wrap {
    struct raft_io_snapshot_get inner;
    struct raft_io_snapshot_get *outer;
    struct vg_repl_failstop *w;
};

static void get_cb(struct raft_io_snapshot_get *inner,
                   struct raft_snapshot *snapshot, int status)
{
    struct get_wrap *g = inner->data;
    struct raft_io_snapshot_get *outer = g->outer;
    struct vg_repl_failstop *w = g->w;
    free(g);
    if (status != 0 && status != RAFT_CANCELED) {
        fault(w, "loading a snapshot", status);
    }
    outer->cb(outer, snapshot, status);
}

static int io_snapshot_get(struct raft_io *io, struct raft_io_snapshot_get *req,
                           raft_io_snapshot_get_cb cb)
{
    struct vg_repl_failstop *w = WRAP(io);
    struct get_wrap *g = malloc(sizeof *g);
    int rv;
    if (g == NULL) {
        return RAFT_NOMEM;
    }
    g->inner.data = g;
    g->outer = req;
    g->w = w;
    req->cb = cb;
    rv = w->inner->snapshot_get(w->inner, &g->inner, get_cb);
    if (rv != 0) {
        free(g);
        fault(w, "loading a snapshot", rv);
    }
    return rv;
}

static raft_time io_time(struct raft_io *io)
{
    return WRAP(io)->inner->time(WRAP(io)->inner);
}

static int io_random(struct raft_io *io, int min, int max)
{
    return WRAP(io)->inner->random(WRAP(io)->inner, min, max);
}

static int io_async_work(struct raft_io *io, struct raft_io_async_work *req,
                         raft_io_async_work_cb cb)
{
    if (WRAP(io)->closing) {
        return RAFT_CANCELED;
    }
    return WRAP(io)->inner->async_work(WRAP(io)->inner, req, cb);
}

void vg_repl_failstop_init(struct vg_repl_failstop *w, struct raft_io *inner)
{
    struct raft_io *io = &w->io;
    w->inner = inner;
    w->faults = 0;
    w->closing = false;
    w->recv = NULL;
    w->appends_cut = 0;
    w->appends_cut_from_start = 0;
    w->clamp_armed = false;
    w->results_clamped = 0;
    w->tick = NULL;
    w->held = false;
    w->held_address = NULL;
    w->held_since = 0;
    w->snapshots_held = 0;
    w->snapshots_replaced = 0;
    w->snapshots_delivered = 0;
    w->snapshot_hold_max_ms = 0;
    w->what[0] = '\0';
    /* libraft 0.15's uv io implements async_work but reports version 1
     * (its fixture io: 0), and raft_init refuses an fsm with asynchronous
     * snapshots (fsm version 3) over an io below version 2. The wrapper
     * has every method of version 2 when the inner io has async_work. */
    io->version = inner->async_work != NULL && inner->version < 2 ? 2 : inner->version;
    io->data = inner->data;
    io->impl = w;
    io->errmsg[0] = '\0';
    io->init = io_init;
    io->close = io_close;
    io->load = io_load;
    io->start = io_start;
    io->bootstrap = io_bootstrap;
    io->recover = io_recover;
    io->set_term = io_set_term;
    io->set_vote = io_set_vote;
    io->send = io_send;
    io->append = io_append;
    io->truncate = io_truncate;
    io->snapshot_put = io_snapshot_put;
    io->snapshot_get = io_snapshot_get;
    io->time = io_time;
    io->random = io_random;
    io->async_work = inner->async_work != NULL ? io_async_work : NULL;
}
