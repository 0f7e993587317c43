/* Unit tests for what the fail-stop io wrapper (replication/failstop.c)
 * does to the messages libraft 0.15 receives.
 *
 * vg_repl_append_guard: the cut of a received AppendEntries that reaches
 * below this node's snapshot, which libraft 0.15's follower mishandles (a
 * NULL dereference when the previous index is 0 and its log starts after
 * a snapshot). Covered: messages at or above the snapshot are left alone;
 * a message whose entries all lie at or below the snapshot becomes a
 * heartbeat at the snapshot, its batch freed; one that straddles the
 * snapshot keeps the entries after it, in order, with the snapshot's index
 * and term as the previous ones; entries with buffers of their own are
 * freed one by one; a message whose entry at the snapshot's index has
 * another term is left alone; a node without a snapshot never cuts;
 * through the io wrapper, libraft receives the cut message and its
 * immediate answer claims no more than the message matched.
 *
 * The held InstallSnapshot, which libraft 0.15 drops while it takes or
 * stores a snapshot of its own: it reaches libraft only once that is
 * done, at the next tick or before the next message, with its data and a
 * copy of the sender's address; a later one replaces it; one that arrives
 * while libraft is not busy passes at once; closing frees a held one.
 *
 * Memory is checked by the sanitizer build (every entry the guard drops
 * and every held message replaced or closed must be freed once, every one
 * kept must stay valid). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "replication.h"

#define ENTRY_BYTES 8u

/* A message as the uv transport hands it over: N entries from FIRST, the
 * term of entry index I given by TERM_OF, their buffers in one batch (or
 * each its own when !BATCH), the array allocated with raft_malloc. */
static void message(struct raft_append_entries *a, raft_index first, unsigned n,
                    raft_term (*term_of)(raft_index), bool batch)
{
    uint8_t *b = batch && n > 0 ? raft_malloc(n * ENTRY_BYTES) : NULL;

    memset(a, 0, sizeof *a);
    a->term = 9;
    a->prev_log_index = first - 1;
    a->prev_log_term = first > 1 ? term_of(first - 1) : 0;
    a->leader_commit = first + n;
    a->n_entries = n;
    a->entries = n > 0 ? raft_calloc(n, sizeof *a->entries) : NULL;
    for (unsigned i = 0; i < n; i++) {
        struct raft_entry *e = &a->entries[i];
        e->term = term_of(first + i);
        e->type = RAFT_COMMAND;
        e->buf.len = ENTRY_BYTES;
        e->buf.base = batch ? b + i * ENTRY_BYTES : raft_malloc(ENTRY_BYTES);
        e->batch = batch ? b : NULL;
        /* Each entry carries its own index, to check what is kept. */
        memcpy(e->buf.base, &(uint64_t){first + i}, sizeof(uint64_t));
    }
}

/* What libraft does with a received message's entries once done. */
static void release(struct raft_append_entries *a)
{
    if (a->n_entries > 0 && a->entries[0].batch != NULL) {
        raft_free(a->entries[0].batch);
    } else {
        for (unsigned i = 0; i < a->n_entries; i++) {
            raft_free(a->entries[i].buf.base);
        }
    }
    raft_free(a->entries);
}

static uint64_t index_in(const struct raft_entry *e)
{
    uint64_t v;
    memcpy(&v, e->buf.base, sizeof v);
    return v;
}

/* Terms: 1 up to index 100, 2 up to 200, 3 after. */
static raft_term terms(raft_index i)
{
    return i <= 100 ? 1 : i <= 200 ? 2 : 3;
}

/* Another history: term 4 from index 150 on (a deposed leader's). */
static raft_term other_terms(raft_index i)
{
    return i < 150 ? terms(i) : 4;
}

static void test_at_or_above_the_snapshot(void **state)
{
    struct raft_append_entries a;
    (void)state;

    message(&a, 181, 10, terms, true); /* previous index 180 = the snapshot */
    assert_false(vg_repl_append_guard(&a, 180, 2));
    assert_int_equal(a.prev_log_index, 180);
    assert_int_equal(a.n_entries, 10);
    release(&a);

    message(&a, 300, 5, terms, true);
    assert_false(vg_repl_append_guard(&a, 180, 2));
    assert_int_equal(a.prev_log_index, 299);
    assert_int_equal(a.prev_log_term, 3);
    release(&a);

    /* No snapshot: nothing is below it. */
    message(&a, 1, 5, terms, true);
    assert_false(vg_repl_append_guard(&a, 0, 0));
    assert_int_equal(a.prev_log_index, 0);
    assert_int_equal(a.n_entries, 5);
    release(&a);
}

/* The crash's message: previous index 0, entries from 1, all below the
 * snapshot. */
static void test_all_below(void **state)
{
    struct raft_append_entries a;
    (void)state;

    message(&a, 1, 50, terms, true);
    assert_true(vg_repl_append_guard(&a, 180, 2));
    assert_int_equal(a.prev_log_index, 180);
    assert_int_equal(a.prev_log_term, 2);
    assert_int_equal(a.n_entries, 0);
    assert_null(a.entries); /* a heartbeat, as the transport decodes one */
    release(&a);

    /* Ending exactly at the snapshot. */
    message(&a, 101, 80, terms, false);
    assert_true(vg_repl_append_guard(&a, 180, 2));
    assert_int_equal(a.prev_log_index, 180);
    assert_int_equal(a.n_entries, 0);
    release(&a);

    /* A heartbeat below the snapshot. */
    message(&a, 11, 0, terms, true);
    assert_true(vg_repl_append_guard(&a, 180, 2));
    assert_int_equal(a.prev_log_index, 180);
    assert_int_equal(a.prev_log_term, 2);
    assert_int_equal(a.n_entries, 0);
    release(&a);
}

static void test_straddling(void **state)
{
    struct raft_append_entries a;
    (void)state;

    for (int batch = 0; batch < 2; batch++) {
        message(&a, 1, 250, terms, batch);
        assert_true(vg_repl_append_guard(&a, 180, 2));
        assert_int_equal(a.prev_log_index, 180);
        assert_int_equal(a.prev_log_term, 2);
        assert_int_equal(a.n_entries, 70);
        for (unsigned i = 0; i < a.n_entries; i++) {
            assert_int_equal(index_in(&a.entries[i]), 181 + i);
            assert_int_equal(a.entries[i].term, terms(181 + i));
        }
        release(&a);
    }

    /* Starting one below the snapshot: only the snapshot's entry goes. */
    message(&a, 180, 3, terms, true);
    assert_true(vg_repl_append_guard(&a, 180, 2));
    assert_int_equal(a.prev_log_index, 180);
    assert_int_equal(a.n_entries, 2);
    assert_int_equal(index_in(&a.entries[0]), 181);
    release(&a);
}

/* Entries that disagree with the snapshot at its index are not cut: a
 * legitimate leader cannot send them, and libraft may judge them. */
static void test_disagreeing(void **state)
{
    struct raft_append_entries a;
    (void)state;

    message(&a, 1, 250, other_terms, true);
    assert_false(vg_repl_append_guard(&a, 180, 2));
    assert_int_equal(a.prev_log_index, 0);
    assert_int_equal(a.n_entries, 250);
    assert_int_equal(index_in(&a.entries[0]), 1);
    release(&a);

    message(&a, 101, 80, other_terms, false); /* ends at the snapshot */
    assert_false(vg_repl_append_guard(&a, 180, 2));
    assert_int_equal(a.n_entries, 80);
    release(&a);
}

/* ---- the wrapper's receive path, with a fake inner io and a fake
 * libraft that answers at once with its last stored index ---- */

struct fake {
    struct raft_io inner;
    raft_io_recv_cb recv; /* the wrapper's, given to start */
    raft_io_tick_cb tick; /* the wrapper's, given to start */
    struct raft raft;     /* only log.snapshot, snapshot and io are read */
    struct vg_repl_failstop w;
    struct raft_message sent; /* the last message sent through the inner io */
    unsigned n_sent;
    struct raft_append_entries seen; /* what "libraft" received */
    raft_index last_stored;
    raft_time now;                   /* the inner io's clock */
    /* What "libraft" received, in order: message types, and of the last
     * InstallSnapshot its index, data and sender. */
    int types[8];
    unsigned n_recv, n_ticks;
    raft_index snapshot_index;
    void *snapshot_data;
    char snapshot_from[64];
};

static struct fake *the_fake;

static int inner_start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                       raft_io_recv_cb recv)
{
    (void)io;
    (void)msecs;
    the_fake->tick = tick;
    the_fake->recv = recv;
    return 0;
}

static raft_time inner_time(struct raft_io *io)
{
    (void)io;
    return the_fake->now;
}

static void inner_close(struct raft_io *io, raft_io_close_cb cb)
{
    (void)io;
    (void)cb;
}

static int inner_send(struct raft_io *io, struct raft_io_send *req,
                      const struct raft_message *m, raft_io_send_cb cb)
{
    (void)io;
    (void)req;
    (void)cb;
    the_fake->sent = *m;
    the_fake->n_sent++;
    return 0;
}

/* libraft's part: note the message. An AppendEntries is answered with
 * success at once, with the last stored index, through the (outer) io, and
 * its entries freed as libraft does; an InstallSnapshot's data and
 * configuration are freed as libraft does once it has stored one. */
static void libraft_recv(struct raft_io *io, struct raft_message *m)
{
    struct raft *r = io->data;
    struct raft_message answer = {.type = RAFT_IO_APPEND_ENTRIES_RESULT,
                                  .server_id = m->server_id};
    struct fake *f = the_fake;

    if (f->n_recv < sizeof f->types / sizeof f->types[0]) {
        f->types[f->n_recv] = m->type;
    }
    f->n_recv++;
    if (m->type == RAFT_IO_INSTALL_SNAPSHOT) {
        f->snapshot_index = m->install_snapshot.last_index;
        f->snapshot_data = m->install_snapshot.data.base;
        snprintf(f->snapshot_from, sizeof f->snapshot_from, "%s", m->server_address);
        raft_configuration_close(&m->install_snapshot.conf);
        raft_free(m->install_snapshot.data.base);
        return;
    }
    the_fake->seen = m->append_entries;
    answer.append_entries_result.term = 9;
    answer.append_entries_result.last_log_index = the_fake->last_stored;
    r->io->send(r->io, NULL, &answer, NULL);
    release(&m->append_entries);
}

static void libraft_tick(struct raft_io *io)
{
    (void)io;
    the_fake->n_ticks++;
}

static void fake_start(struct fake *f, raft_index snap_index, raft_term snap_term)
{
    memset(f, 0, sizeof *f);
    the_fake = f;
    f->inner.start = inner_start;
    f->inner.send = inner_send;
    f->inner.time = inner_time;
    f->inner.close = inner_close;
    vg_repl_failstop_init(&f->w, &f->inner);
    f->raft.io = &f->w.io;
    f->raft.log.snapshot.last_index = snap_index;
    f->raft.log.snapshot.last_term = snap_term;
    f->w.io.data = &f->raft;
    assert_int_equal(f->w.io.start(&f->w.io, 100, libraft_tick, libraft_recv), 0);
    assert_non_null(f->recv);
    assert_non_null(f->tick);
}

/* The crash's message from index 1 reaches libraft as a heartbeat at the
 * snapshot, and its answer claims no more than the snapshot even though
 * "libraft" stored more (an old term's entries past the snapshot). */
static void test_wrapper_cuts_and_lowers_the_answer(void **state)
{
    struct fake f;
    struct raft_message m = {.type = RAFT_IO_APPEND_ENTRIES, .server_id = 3};
    (void)state;

    fake_start(&f, 180, 2);
    f.last_stored = 240;
    message(&m.append_entries, 1, 50, terms, true);
    f.recv(&f.inner, &m);
    assert_int_equal(f.seen.prev_log_index, 180);
    assert_int_equal(f.seen.n_entries, 0);
    assert_int_equal(f.n_sent, 1);
    assert_int_equal(f.sent.server_id, 3);
    assert_int_equal(f.sent.append_entries_result.last_log_index, 180);
    assert_int_equal(f.w.appends_cut, 1);
    assert_int_equal(f.w.appends_cut_from_start, 1);
    assert_int_equal(f.w.results_clamped, 1);

    /* Straddling: the answer says no more than the message's end. */
    message(&m.append_entries, 171, 20, terms, true);
    f.recv(&f.inner, &m);
    assert_int_equal(f.seen.prev_log_index, 180);
    assert_int_equal(f.seen.n_entries, 10);
    assert_int_equal(f.sent.append_entries_result.last_log_index, 190);
    assert_int_equal(f.w.appends_cut_from_start, 1);
    assert_int_equal(f.w.results_clamped, 2);

    /* A message at the snapshot is libraft's alone, answer included. */
    message(&m.append_entries, 181, 5, terms, true);
    f.recv(&f.inner, &m);
    assert_int_equal(f.seen.prev_log_index, 180);
    assert_int_equal(f.seen.n_entries, 5);
    assert_int_equal(f.sent.append_entries_result.last_log_index, 240);
    assert_int_equal(f.w.appends_cut, 2);
    assert_int_equal(f.w.results_clamped, 2);
    assert_int_equal(f.n_sent, 3);
}

/* An InstallSnapshot as the uv transport hands it over: the data and the
 * configuration allocated for libraft to free, the sender's address in the
 * transport's memory (FROM). */
static void snapshot_message(struct raft_message *m, raft_index index, char *from)
{
    memset(m, 0, sizeof *m);
    m->type = RAFT_IO_INSTALL_SNAPSHOT;
    m->server_id = 2;
    m->server_address = from;
    m->install_snapshot.term = 9;
    m->install_snapshot.last_index = index;
    m->install_snapshot.last_term = 9;
    m->install_snapshot.conf_index = 1;
    raft_configuration_init(&m->install_snapshot.conf);
    assert_int_equal(raft_configuration_add(&m->install_snapshot.conf, 1,
                                            "10.0.0.1:9001", RAFT_VOTER), 0);
    m->install_snapshot.data.len = 64;
    m->install_snapshot.data.base = raft_malloc(64);
    assert_non_null(m->install_snapshot.data.base);
}

/* While libraft takes a snapshot of its own (pending), an InstallSnapshot
 * waits; the tick after libraft is done hands it over with its data and
 * the sender's address, which the transport's memory no longer holds. */
static void test_snapshot_held_until_done(void **state)
{
    struct fake f;
    struct raft_message m;
    char from[32] = "10.0.0.2:9001";
    void *data;
    (void)state;

    fake_start(&f, 180, 2);
    f.raft.snapshot.pending.term = 9;
    f.now = 1000;
    snapshot_message(&m, 300, from);
    data = m.install_snapshot.data.base;
    f.recv(&f.inner, &m);
    memset(from, 'x', sizeof from - 1); /* the transport reuses its memory */
    assert_int_equal(f.n_recv, 0);
    assert_true(f.w.held);
    assert_int_equal(f.w.snapshots_held, 1);

    /* Still busy: the tick is libraft's, the message stays. */
    f.now = 1040;
    f.tick(&f.inner);
    assert_int_equal(f.n_ticks, 1);
    assert_int_equal(f.n_recv, 0);

    f.raft.snapshot.pending.term = 0;
    f.now = 1090;
    f.tick(&f.inner);
    assert_int_equal(f.n_ticks, 2);
    assert_int_equal(f.n_recv, 1);
    assert_int_equal(f.types[0], RAFT_IO_INSTALL_SNAPSHOT);
    assert_int_equal(f.snapshot_index, 300);
    assert_ptr_equal(f.snapshot_data, data);
    assert_string_equal(f.snapshot_from, "10.0.0.2:9001");
    assert_false(f.w.held);
    assert_int_equal(f.w.snapshots_delivered, 1);
    assert_int_equal(f.w.snapshot_hold_max_ms, 90);

    /* Not busy: the next one passes at once. */
    snprintf(from, sizeof from, "10.0.0.2:9001");
    snapshot_message(&m, 400, from);
    f.recv(&f.inner, &m);
    assert_int_equal(f.n_recv, 2);
    assert_int_equal(f.snapshot_index, 400);
    assert_int_equal(f.w.snapshots_held, 1);
}

/* While libraft stores a snapshot (put), a later InstallSnapshot replaces
 * the held one (freed), and it reaches libraft before the next message,
 * once libraft is done. */
static void test_snapshot_replaced_and_in_order(void **state)
{
    struct fake f;
    struct raft_message m;
    struct raft_message h = {.type = RAFT_IO_APPEND_ENTRIES, .server_id = 2};
    char from[32] = "10.0.0.2:9001";
    int put_data;
    (void)state;

    fake_start(&f, 180, 2);
    f.raft.snapshot.put.data = &put_data;
    snapshot_message(&m, 300, from);
    f.recv(&f.inner, &m);
    snapshot_message(&m, 364, from);
    f.recv(&f.inner, &m);
    assert_int_equal(f.n_recv, 0);
    assert_int_equal(f.w.snapshots_held, 2);
    assert_int_equal(f.w.snapshots_replaced, 1);

    /* A heartbeat while still busy reaches libraft; the snapshot waits. */
    message(&h.append_entries, 181, 0, terms, true);
    f.recv(&f.inner, &h);
    assert_int_equal(f.n_recv, 1);
    assert_int_equal(f.types[0], RAFT_IO_APPEND_ENTRIES);

    f.raft.snapshot.put.data = NULL;
    message(&h.append_entries, 181, 0, terms, true);
    f.recv(&f.inner, &h);
    assert_int_equal(f.n_recv, 3);
    assert_int_equal(f.types[1], RAFT_IO_INSTALL_SNAPSHOT);
    assert_int_equal(f.types[2], RAFT_IO_APPEND_ENTRIES);
    assert_int_equal(f.snapshot_index, 364);
    assert_int_equal(f.w.snapshots_delivered, 1);
}

/* Closing the io frees a message still held; it never reaches libraft. */
static void test_snapshot_held_at_close(void **state)
{
    struct fake f;
    struct raft_message m;
    char from[32] = "10.0.0.2:9001";
    (void)state;

    fake_start(&f, 180, 2);
    f.raft.snapshot.pending.term = 9;
    snapshot_message(&m, 300, from);
    f.recv(&f.inner, &m);
    assert_true(f.w.held);
    f.w.io.close(&f.w.io, NULL);
    assert_false(f.w.held);
    f.raft.snapshot.pending.term = 0;
    f.tick(&f.inner);
    assert_int_equal(f.n_recv, 0);
    assert_int_equal(f.w.snapshots_delivered, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_at_or_above_the_snapshot),
        cmocka_unit_test(test_all_below),
        cmocka_unit_test(test_straddling),
        cmocka_unit_test(test_disagreeing),
        cmocka_unit_test(test_wrapper_cuts_and_lowers_the_answer),
        cmocka_unit_test(test_snapshot_held_until_done),
        cmocka_unit_test(test_snapshot_replaced_and_in_order),
        cmocka_unit_test(test_snapshot_held_at_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
