/* The Modbus TCP poller: one thread per PLC (libmodbus is blocking), one
 * uv_async_t per poller to hand results to the loop thread.
 *
 * Happy path. vg_plc_poller_start checks the settings, creates the async
 * handle and the thread, and returns. The thread first plans the PLC's reads
 * and sizes its per-tag arrays (planning 20 000 tags takes 100-300 ms, which
 * on the loop thread froze a new leader's loop during a takeover long
 * enough to stop its heartbeats), publishes the plan's size in the status
 * and wakes the loop to call planned_cb. Then it connects (its own
 * non-blocking connect, so that stop can break it), hands the socket to
 * libmodbus, then runs cycles on a fixed schedule: send every request of
 * the plan, decode every tag, keep those that pass the deadband, and merge
 * them into the shared change queue (one slot per tag: a newer change
 * replaces a pending one) and wake the loop. Between cycles it sleeps on a
 * condition variable, woken early by a queued write (writes go before the
 * next cycle) or by stop. On the loop thread, async_cb swaps the change
 * queue with a second buffer of the same size (no allocation, the lock held
 * only for the swap) and calls changes_cb, then calls the callbacks of
 * finished writes.
 *
 * Failure modes.
 *   - The plan cannot be built (tags that overlap or run past 65535, which
 *     a validated project never has; out of memory): the error goes into
 *     the status's last_error and to planned_cb, and the thread never
 *     connects; it only fails writes (VG_EIO, with that error) until stop.
 *     The request size options are checked by start, synchronously.
 *   - Connect refused, unreachable, or not done within the timeout: every tag
 *     not already BAD_COMM is reported BAD_COMM, the thread waits the back-off
 *     (100 ms doubling to 5 s by default) and tries again. Writes queued
 *     meanwhile fail at once with the last error (an operator must not wait
 *     5 s to learn that the PLC is away).
 *   - Timeout, reset or garbled answer during a cycle or a write: the
 *     connection is closed (a late answer would otherwise be taken for the
 *     next request's), tags go BAD_COMM, then as above. The back-off is reset
 *     only by a complete good cycle, so a PLC that accepts connections and
 *     never answers is retried ever more slowly.
 *   - A Modbus exception to a read: that request's tags are BAD_COMM, the
 *     connection stays. To a write: the write fails with VG_EIO.
 *   - Stop: sets a flag under the lock, signals the condition variable and
 *     shutdown()s the socket the thread is using, if any, which ends a
 *     blocking connect (poll) or read (select inside libmodbus) at once.
 *     Planning cannot be interrupted: a stop while the thread plans takes
 *     effect when the plan is done (close_cb comes that much later; the
 *     loop is not held up), and a thread that sees the stop before it
 *     starts planning does not plan at all. Until the thread is joined it
 *     may read the project, which is why the project must outlive close_cb
 *     (plc.h). The thread fails the writes still queued with VG_ECLOSED,
 *     marks itself exited and wakes the loop; async_cb then joins it (it is
 *     about to return, so the join does not block the loop), closes the
 *     async handle, and close_cb runs from the handle's close callback after
 *     every internal allocation is freed.
 *
 * Locking. The socket descriptor is published under the lock, and the
 * thread sets it back to -1 under the lock before closing it, so the loop
 * thread never shuts down a descriptor number that was reused. The per-tag
 * arrays the loop thread touches (the change queue and the delivery buffer
 * it is swapped with) are NULL until the thread publishes them under the
 * lock together with the plan's size; before that the queue is empty, so
 * async_cb's swap of two NULL buffers delivers nothing. Host name
 * resolution (getaddrinfo) is the one call stop cannot interrupt; PLCs are
 * normally given by address. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <modbus.h>
#include <uv.h>

#include "plc.h"

#define DEFAULT_BACKOFF_MIN_MS 100u
#define DEFAULT_BACKOFF_MAX_MS 5000u
#define DEFAULT_MAX_WRITES 64u

struct wreq {
    struct wreq *next;
    uint32_t tag;
    struct vg_plc_write w;
    uint32_t node, term;
    uint64_t queued_ms; /* monotonic, for write_max_age_ms */
    vg_plc_write_cb cb;
    void *data;
    int status;
    char errmsg[VG_ERRMSG_SIZE];
};

struct wqueue {
    struct wreq *head, *tail;
    size_t n;
};

struct vg_plc_poller_impl {
    struct vg_plc_poller *p;

    /* Fixed after start; read by both threads. */
    const struct vg_project *project;
    int plc_index;
    char *host;
    int port, unit_id, fencing;
    unsigned poll_ms, timeout_ms, backoff_min_ms, backoff_max_ms;
    size_t max_writes;
    unsigned write_max_age_ms;
    struct vg_plc_plan_opts plan_opts;
    vg_plc_changes_cb changes_cb;
    vg_plc_planned_cb planned_cb;

    /* Loop thread only, except that the thread sets DELIVER and
     * DELIVER_ITEM once, under LOCK, when it publishes the plan (see
     * Locking); async_cb swaps them with PEND under LOCK. */
    uv_async_t async;
    pthread_t thread;
    bool stop_called;
    bool joined;
    bool plan_reported;            /* planned_cb called (or skipped) */
    vg_plc_poller_close_cb close_cb;
    struct vg_plc_change *deliver; /* n_items */
    uint32_t *deliver_item;

    /* Poller thread only; the loop thread frees them after the join. */
    struct vg_plc_plan plan;       /* built by the thread, then fixed */
    modbus_t *ctx;
    bool connected;
    unsigned backoff_ms;           /* next back-off; 0 after a good cycle */
    struct vg_plc_reported *reported; /* n_items */
    struct vg_plc_change *batch;   /* n_items: one cycle's changes */
    uint32_t *batch_item;
    size_t n_batch;

    /* Shared, under LOCK. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stopping;
    bool exited;
    int fd;                        /* the socket in use, -1 none */
    struct vg_plc_change *pend;    /* n_items */
    uint32_t *pend_item;
    size_t n_pend;
    int32_t *slot;                 /* per item: index into pend, -1 none */
    struct wqueue writes, done;
    struct vg_plc_poller_status st;
    bool plan_done;                /* planned or failed: PLAN_RV says */
    int plan_rv;
    char plan_errmsg[VG_ERRMSG_SIZE]; /* when PLAN_RV != 0 */
};

/* ------------------------------------------------------------- helpers */

void vg_plc_poller_opts_default(struct vg_plc_poller_opts *o)
{
    memset(o, 0, sizeof(*o));
    vg_plc_plan_opts_default(&o->plan);
}

static void wq_push(struct wqueue *q, struct wreq *r)
{
    r->next = NULL;
    if (q->tail)
        q->tail->next = r;
    else
        q->head = r;
    q->tail = r;
    q->n++;
}

static struct wreq *wq_pop(struct wqueue *q)
{
    struct wreq *r = q->head;
    if (r) {
        q->head = r->next;
        if (!q->head)
            q->tail = NULL;
        q->n--;
    }
    return r;
}

static unsigned ms_between(uint64_t from, uint64_t to)
{
    return to > from ? (unsigned)(to - from) : 0;
}

/* libmodbus reports its own errors as errno values above MODBUS_ENOBASE;
 * the exceptions a PLC answers with are the first of them. */
static bool is_exception(int err)
{
    return err > MODBUS_ENOBASE && err <= EMBXGTAR;
}

static const char *err_text(int err, char *buf, size_t size)
{
    if (err >= MODBUS_ENOBASE)
        return modbus_strerror(err);
    /* GNU strerror_r (we build with _GNU_SOURCE) returns the text. */
    return strerror_r(err, buf, size);
}

static int err_status(int err)
{
    return err == ETIMEDOUT ? VG_ETIMEDOUT : VG_EIO;
}

/* ------------------------------------------------- poller thread: queue */

/* Note a new reading of item I for the current batch when it passes the
 * deadband. */
static void batch_add(struct vg_plc_poller_impl *s, size_t i, double value,
                      enum vg_plc_quality q, uint64_t t_ms)
{
    const struct vg_tag *t = &s->project->tags[s->plan.items[i].tag];

    if (q != VG_PLC_GOOD)
        value = 0;
    if (!vg_plc_deadband_report(&s->reported[i], t->deadband, value, q))
        return;
    s->reported[i].valid = true;
    s->reported[i].quality = q;
    s->reported[i].value = value;
    s->batch[s->n_batch] = (struct vg_plc_change){
        .tag = s->plan.items[i].tag, .quality = q, .value = value,
        .t_ms = t_ms};
    s->batch_item[s->n_batch] = (uint32_t)i;
    s->n_batch++;
}

/* Merge the batch into the shared queue (coalescing per tag), add the
 * cycle's counters, and wake the loop. */
static void batch_flush(struct vg_plc_poller_impl *s)
{
    bool wake = s->n_batch > 0;

    pthread_mutex_lock(&s->lock);
    for (size_t k = 0; k < s->n_batch; k++) {
        uint32_t i = s->batch_item[k];
        if (s->slot[i] >= 0) {
            s->pend[s->slot[i]] = s->batch[k];
            s->st.coalesced++;
        } else {
            s->slot[i] = (int32_t)s->n_pend;
            s->pend[s->n_pend] = s->batch[k];
            s->pend_item[s->n_pend] = i;
            s->n_pend++;
        }
    }
    s->st.changes += s->n_batch;
    pthread_mutex_unlock(&s->lock);
    s->n_batch = 0;
    if (wake)
        uv_async_send(&s->async);
}

static void mark_all_bad(struct vg_plc_poller_impl *s)
{
    uint64_t now = vg_now_wall_ms();
    for (size_t i = 0; i < s->plan.n_items; i++)
        batch_add(s, i, 0, VG_PLC_BAD_COMM, now);
    batch_flush(s);
}

/* ---------------------------------------------- poller thread: waiting */

/* Sleep until monotonic DEADLINE_MS, stop, or (when WAKE_ON_WRITE) a queued
 * write. Returns with the lock held, so the caller can look at why. */
static void wait_locked(struct vg_plc_poller_impl *s, uint64_t deadline_ms,
                        bool wake_on_write)
{
    struct timespec ts = {
        .tv_sec = (time_t)(deadline_ms / 1000),
        .tv_nsec = (long)(deadline_ms % 1000) * 1000000L};

    pthread_mutex_lock(&s->lock);
    while (!s->stopping && !(wake_on_write && s->writes.head) &&
           vg_now_mono_ms() < deadline_ms) {
        int rv = pthread_cond_timedwait(&s->cond, &s->lock, &ts);
        if (rv == ETIMEDOUT)
            break;
    }
}

/* --------------------------------------- poller thread: the connection */

static void set_error(struct vg_plc_poller_impl *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_error(struct vg_plc_poller_impl *s, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&s->lock);
    va_start(ap, fmt);
    vsnprintf(s->st.last_error, sizeof(s->st.last_error), fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&s->lock);
}

static void close_socket(struct vg_plc_poller_impl *s)
{
    pthread_mutex_lock(&s->lock);
    s->fd = -1;
    s->st.connected = false;
    pthread_mutex_unlock(&s->lock);
    modbus_close(s->ctx); /* closes the descriptor set with modbus_set_socket */
    modbus_set_socket(s->ctx, -1);
    s->connected = false;
}

/* Publish FD as the socket in use; false (and FD closed) when stopping. */
static bool publish_fd(struct vg_plc_poller_impl *s, int fd)
{
    bool ok;
    pthread_mutex_lock(&s->lock);
    ok = !s->stopping;
    s->fd = ok ? fd : -1;
    pthread_mutex_unlock(&s->lock);
    if (!ok)
        close(fd);
    return ok;
}

static void unpublish_fd(struct vg_plc_poller_impl *s, int fd)
{
    pthread_mutex_lock(&s->lock);
    s->fd = -1;
    pthread_mutex_unlock(&s->lock);
    close(fd);
}

/* Connect to one address within the timeout. Returns the socket, or -1 with
 * *ERR set (ECANCELED when stopped). */
static int connect_one(struct vg_plc_poller_impl *s, const struct addrinfo *a,
                       int *err)
{
    int fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    a->ai_protocol);
    if (fd < 0) {
        *err = errno;
        return -1;
    }
    if (!publish_fd(s, fd)) {
        *err = ECANCELED;
        return -1;
    }
    if (connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
        if (errno != EINPROGRESS) {
            *err = errno;
            goto err_after_publish;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        uint64_t deadline = vg_now_mono_ms() + s->timeout_ms;
        for (;;) {
            uint64_t now = vg_now_mono_ms();
            int rv = poll(&pfd, 1, (int)ms_between(now, deadline));
            if (rv < 0 && errno == EINTR)
                continue;
            if (rv < 0) {
                *err = errno;
                goto err_after_publish;
            }
            if (rv == 0) {
                *err = ETIMEDOUT;
                goto err_after_publish;
            }
            break;
        }
        pthread_mutex_lock(&s->lock);
        bool stopping = s->stopping;
        pthread_mutex_unlock(&s->lock);
        if (stopping) {
            *err = ECANCELED;
            goto err_after_publish;
        }
        int so = 0;
        socklen_t len = sizeof(so);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &len) < 0)
            so = errno;
        if (so == 0 && (pfd.revents & (POLLERR | POLLHUP)))
            so = ECONNABORTED;
        if (so != 0) {
            *err = so;
            goto err_after_publish;
        }
    }
    /* libmodbus reads and writes with select/recv/send on a blocking
     * socket. */
    int flags = fcntl(fd, F_GETFL);
    int one = 1;
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
        *err = errno;
        goto err_after_publish;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;

err_after_publish:
    unpublish_fd(s, fd);
    return -1;
}

/* One connect attempt. Returns true when connected. */
static bool try_connect(struct vg_plc_poller_impl *s)
{
    struct addrinfo hints, *res = NULL;
    char port[16], buf[128];
    int err = 0, fd = -1, rv;

    pthread_mutex_lock(&s->lock);
    s->st.attempts++;
    pthread_mutex_unlock(&s->lock);

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof(port), "%d", s->port);
    rv = getaddrinfo(s->host, port, &hints, &res);
    if (rv != 0) {
        set_error(s, "cannot resolve PLC %s: %s", s->host, gai_strerror(rv));
        return false;
    }
    for (const struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = connect_one(s, a, &err);
        if (err == ECANCELED)
            break;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        if (err != ECANCELED)
            set_error(s, "cannot connect to PLC at %s:%d: %s", s->host,
                      s->port, err_text(err, buf, sizeof(buf)));
        return false;
    }
    modbus_set_socket(s->ctx, fd);
    s->connected = true;
    pthread_mutex_lock(&s->lock);
    s->st.connected = true;
    s->st.connects++;
    pthread_mutex_unlock(&s->lock);
    return true;
}

/* The connection failed (ERR from libmodbus, during WHAT): close it and
 * report every tag bad once. */
static void comm_failed(struct vg_plc_poller_impl *s, int err,
                        const char *what)
{
    char buf[128];
    pthread_mutex_lock(&s->lock);
    bool stopping = s->stopping;
    s->st.comm_failures++;
    pthread_mutex_unlock(&s->lock);
    if (!stopping)
        set_error(s, "PLC %s:%d: %s: %s", s->host, s->port, what,
                  err_text(err, buf, sizeof(buf)));
    close_socket(s);
    mark_all_bad(s);
}

/* -------------------------------------------- poller thread: the work */

static void finish_write(struct vg_plc_poller_impl *s, struct wreq *r)
{
    pthread_mutex_lock(&s->lock);
    if (r->status == 0)
        s->st.writes_ok++;
    else
        s->st.writes_failed++;
    wq_push(&s->done, r);
    pthread_mutex_unlock(&s->lock);
    uv_async_send(&s->async);
}

/* Fail every queued write with STATUS and the text of the last error. */
static void fail_writes(struct vg_plc_poller_impl *s, int status,
                        const char *why)
{
    for (;;) {
        pthread_mutex_lock(&s->lock);
        struct wreq *r = wq_pop(&s->writes);
        if (r)
            snprintf(r->errmsg, sizeof(r->errmsg), "%s%s", why,
                     status == VG_ECLOSED ? "" : s->st.last_error);
        pthread_mutex_unlock(&s->lock);
        if (!r)
            return;
        r->status = status;
        finish_write(s, r);
    }
}

/* Send one queued write: fencing registers, then the value. Returns false
 * when the connection failed. */
static bool do_write(struct vg_plc_poller_impl *s, struct wreq *r)
{
    const struct vg_tag *t = &s->project->tags[r->tag];
    char buf[128];
    int rv;

    if (s->write_max_age_ms > 0 &&
        vg_now_mono_ms() - r->queued_ms > s->write_max_age_ms) {
        /* The thread got to it too late (a long cycle against a slow PLC,
         * or the whole process was paused): the leader that queued it may
         * have been replaced meanwhile, so it must not reach the PLC now. */
        r->status = VG_ETIMEDOUT;
        snprintf(r->errmsg, sizeof(r->errmsg),
                 "writing %s: not sent within %u ms of being queued, dropped "
                 "so that it cannot reach the PLC late",
                 t->name, s->write_max_age_ms);
        return true;
    }
    if (s->fencing >= 0) {
        uint16_t regs[4] = {(uint16_t)(r->node >> 16), (uint16_t)r->node,
                            (uint16_t)(r->term >> 16), (uint16_t)r->term};
        if (modbus_write_registers(s->ctx, s->fencing, 4, regs) != 4) {
            int err = errno;
            r->status = is_exception(err) ? VG_EIO : err_status(err);
            snprintf(r->errmsg, sizeof(r->errmsg),
                     "writing %s: fencing registers hr %d..%d: %s", t->name,
                     s->fencing, s->fencing + 3,
                     err_text(err, buf, sizeof(buf)));
            if (is_exception(err))
                return true;
            comm_failed(s, err, "fencing write");
            return false;
        }
    }
    switch (r->w.function) {
    case VG_PLC_FC_WRITE_COIL:
        rv = modbus_write_bit(s->ctx, r->w.addr, r->w.bit) == 1;
        break;
    case VG_PLC_FC_WRITE_REGISTER:
        rv = modbus_write_register(s->ctx, r->w.addr, r->w.regs[0]) == 1;
        break;
    default:
        rv = modbus_write_registers(s->ctx, r->w.addr, r->w.count,
                                    r->w.regs) == (int)r->w.count;
        break;
    }
    if (!rv) {
        int err = errno;
        r->status = is_exception(err) ? VG_EIO : err_status(err);
        snprintf(r->errmsg, sizeof(r->errmsg), "writing %s (%s %u): %s",
                 t->name, vg_reg_kind_name(t->kind), (unsigned)r->w.addr,
                 err_text(err, buf, sizeof(buf)));
        if (is_exception(err))
            return true;
        comm_failed(s, err, "write");
        return false;
    }
    r->status = 0;
    r->errmsg[0] = '\0';
    return true;
}

/* Send every queued write. Returns false when the connection failed. */
static bool do_writes(struct vg_plc_poller_impl *s)
{
    for (;;) {
        pthread_mutex_lock(&s->lock);
        struct wreq *r = s->stopping ? NULL : wq_pop(&s->writes);
        pthread_mutex_unlock(&s->lock);
        if (!r)
            return true;
        bool ok = do_write(s, r);
        finish_write(s, r);
        if (!ok)
            return false;
    }
}

/* One read cycle. Returns false when the connection failed. */
static bool do_cycle(struct vg_plc_poller_impl *s)
{
    uint16_t regs[VG_PLC_MAX_READ_REGS];
    uint8_t bits[VG_PLC_MAX_READ_BITS];
    uint64_t start = vg_now_mono_ms();
    size_t sent = 0;

    for (size_t r = 0; r < s->plan.n_reqs; r++) {
        const struct vg_plc_request *q = &s->plan.reqs[r];
        int n;

        sent++;
        switch (q->kind) {
        case VG_REG_COIL:
            n = modbus_read_bits(s->ctx, q->start, q->count, bits);
            break;
        case VG_REG_DISCRETE:
            n = modbus_read_input_bits(s->ctx, q->start, q->count, bits);
            break;
        case VG_REG_HOLDING:
            n = modbus_read_registers(s->ctx, q->start, q->count, regs);
            break;
        default:
            n = modbus_read_input_registers(s->ctx, q->start, q->count, regs);
            break;
        }
        int err = n == q->count ? 0 : (n < 0 ? errno : EMBBADDATA);
        uint64_t now = vg_now_wall_ms();
        if (err && !is_exception(err)) {
            char what[64];
            snprintf(what, sizeof(what), "reading %s %u+%u",
                     vg_reg_kind_name(q->kind), (unsigned)q->start,
                     (unsigned)q->count);
            batch_flush(s); /* what this cycle read so far is still news */
            pthread_mutex_lock(&s->lock);
            s->st.requests += sent;
            pthread_mutex_unlock(&s->lock);
            comm_failed(s, err, what);
            return false;
        }
        if (err) {
            char buf[128];
            set_error(s, "PLC %s:%d: reading %s %u+%u: %s", s->host, s->port,
                      vg_reg_kind_name(q->kind), (unsigned)q->start,
                      (unsigned)q->count, err_text(err, buf, sizeof(buf)));
        }
        for (size_t k = q->first_item; k < q->first_item + q->n_items; k++) {
            const struct vg_plc_item *it = &s->plan.items[k];
            double v = 0;
            enum vg_plc_quality qual = VG_PLC_BAD_COMM;
            if (!err)
                qual = vg_plc_tag_decode(&s->project->tags[it->tag], regs,
                                         bits, it->pos, &v);
            batch_add(s, k, v, qual, now);
        }
    }
    batch_flush(s);

    unsigned took = ms_between(start, vg_now_mono_ms());
    pthread_mutex_lock(&s->lock);
    s->st.requests += sent;
    if (s->st.cycles == 0)
        s->st.first_cycle_ms = vg_now_wall_ms();
    s->st.cycles++;
    s->st.last_cycle_ms = took;
    if (took > s->st.max_cycle_ms)
        s->st.max_cycle_ms = took;
    pthread_mutex_unlock(&s->lock);
    s->backoff_ms = 0;
    return true;
}

/* -------------------------------------------- poller thread: planning */

/* Plan the reads and size the per-item arrays (see the top comment for why
 * this is done here and not in start). The arrays only this thread uses are
 * set at once; the shared ones and the status fields are published under
 * the lock in one step. Returns 0, or VG_EINVAL / VG_ENOMEM with ERRMSG;
 * whatever was set is freed by impl_free. */
static int plan_build(struct vg_plc_poller_impl *s, char *errmsg)
{
    struct vg_plc_change *pend, *deliver;
    uint32_t *pend_item, *deliver_item;
    int32_t *slot;
    size_t n;
    int rv;

    rv = vg_plc_plan_build(s->project->tags, s->project->n_tags, s->plc_index,
                           &s->plan_opts, &s->plan, errmsg);
    if (rv != 0)
        return rv;
    n = s->plan.n_items ? s->plan.n_items : 1;
    s->batch = calloc(n, sizeof(*s->batch));
    s->batch_item = calloc(n, sizeof(*s->batch_item));
    s->reported = calloc(n, sizeof(*s->reported));
    pend = calloc(n, sizeof(*pend));
    pend_item = calloc(n, sizeof(*pend_item));
    deliver = calloc(n, sizeof(*deliver));
    deliver_item = calloc(n, sizeof(*deliver_item));
    slot = malloc(n * sizeof(*slot));
    if (!s->batch || !s->batch_item || !s->reported || !pend || !pend_item ||
        !deliver || !deliver_item || !slot) {
        free(pend);
        free(pend_item);
        free(deliver);
        free(deliver_item);
        free(slot);
        vg_errf(errmsg, "out of memory");
        return VG_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        slot[i] = -1;

    pthread_mutex_lock(&s->lock);
    s->pend = pend;
    s->pend_item = pend_item;
    s->deliver = deliver;
    s->deliver_item = deliver_item;
    s->slot = slot;
    s->st.planned = true;
    s->st.plan_requests = s->plan.n_reqs;
    s->st.n_tags = s->plan.n_items;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

/* Plan, and tell the loop how it went. Returns false when the thread must
 * not poll: stopped, or the plan failed (then it has waited for the stop,
 * failing the writes queued meanwhile). */
static bool plan_or_wait(struct vg_plc_poller_impl *s)
{
    char errmsg[VG_ERRMSG_SIZE] = "";
    bool stopping;
    int rv;

    pthread_mutex_lock(&s->lock);
    stopping = s->stopping;
    pthread_mutex_unlock(&s->lock);
    if (stopping)
        return false; /* stopped before it began: no use planning */

    rv = plan_build(s, errmsg);
    if (rv != 0)
        set_error(s, "cannot plan the reads: %s", errmsg);
    pthread_mutex_lock(&s->lock);
    s->plan_done = true;
    s->plan_rv = rv;
    if (rv != 0)
        snprintf(s->plan_errmsg, sizeof(s->plan_errmsg), "%s",
                 s->st.last_error);
    pthread_mutex_unlock(&s->lock);
    uv_async_send(&s->async);
    if (rv == 0)
        return true;

    /* Never poll with a broken plan (mark_all_bad and do_cycle would walk
     * arrays that do not exist); writes fail at once, as they do while the
     * PLC is unreachable. */
    for (;;) {
        fail_writes(s, VG_EIO, "PLC not polled: ");
        pthread_mutex_lock(&s->lock);
        while (!s->stopping && !s->writes.head)
            pthread_cond_wait(&s->cond, &s->lock);
        stopping = s->stopping;
        pthread_mutex_unlock(&s->lock);
        if (stopping)
            return false;
    }
}

static void *thread_main(void *arg)
{
    struct vg_plc_poller_impl *s = arg;
    uint64_t next = 0;
    bool first = true;

    if (!plan_or_wait(s))
        goto stopped;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        bool stopping = s->stopping;
        pthread_mutex_unlock(&s->lock);
        if (stopping)
            break;

        if (!s->connected) {
            if (!first) {
                /* Back off; writes arriving meanwhile fail at once. */
                s->backoff_ms = s->backoff_ms
                    ? (s->backoff_ms >= s->backoff_max_ms / 2
                           ? s->backoff_max_ms : s->backoff_ms * 2)
                    : s->backoff_min_ms;
                uint64_t until = vg_now_mono_ms() + s->backoff_ms;
                pthread_mutex_lock(&s->lock);
                s->st.backoff_ms = s->backoff_ms;
                pthread_mutex_unlock(&s->lock);
                for (;;) {
                    fail_writes(s, VG_EIO, "PLC not connected: ");
                    wait_locked(s, until, true);
                    bool again = !s->stopping && s->writes.head;
                    pthread_mutex_unlock(&s->lock);
                    if (!again)
                        break;
                }
                pthread_mutex_lock(&s->lock);
                stopping = s->stopping;
                if (!stopping)
                    s->st.reconnects++;
                pthread_mutex_unlock(&s->lock);
                if (stopping)
                    break;
            }
            first = false;
            if (!try_connect(s)) {
                pthread_mutex_lock(&s->lock);
                stopping = s->stopping;
                if (!stopping)
                    s->st.comm_failures++;
                pthread_mutex_unlock(&s->lock);
                if (stopping)
                    break;
                mark_all_bad(s);
                continue;
            }
            next = vg_now_mono_ms();
        }

        if (!do_writes(s))
            continue;
        wait_locked(s, next, true);
        bool writes = s->writes.head != NULL;
        stopping = s->stopping;
        pthread_mutex_unlock(&s->lock);
        if (stopping)
            break;
        if (writes)
            continue; /* before the cycle, and then wait for NEXT again */

        if (!do_cycle(s))
            continue;
        next += s->poll_ms;
        uint64_t now = vg_now_mono_ms();
        if (next <= now) {
            pthread_mutex_lock(&s->lock);
            s->st.overruns++;
            pthread_mutex_unlock(&s->lock);
            next = now;
        }
    }

stopped:
    if (s->connected)
        close_socket(s);
    fail_writes(s, VG_ECLOSED, "the poller was stopped before the write "
                               "was sent");
    pthread_mutex_lock(&s->lock);
    s->exited = true;
    pthread_mutex_unlock(&s->lock);
    uv_async_send(&s->async);
    return NULL;
}

/* ------------------------------------------------------ loop thread */

static void impl_free(struct vg_plc_poller_impl *s)
{
    if (s->ctx)
        modbus_free(s->ctx);
    vg_plc_plan_free(&s->plan);
    free(s->host);
    free(s->deliver);
    free(s->deliver_item);
    free(s->reported);
    free(s->batch);
    free(s->batch_item);
    free(s->pend);
    free(s->pend_item);
    free(s->slot);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static void closed_cb(uv_handle_t *h)
{
    struct vg_plc_poller_impl *s = h->data;
    struct vg_plc_poller *p = s->p;
    vg_plc_poller_close_cb cb = s->close_cb;

    impl_free(s);
    if (!p)
        return; /* a failed start: the caller's struct is not ours anymore */
    p->impl = NULL;
    if (cb)
        cb(p);
}

static void async_cb(uv_async_t *h)
{
    struct vg_plc_poller_impl *s = h->data;
    struct vg_plc_poller *p = s->p;
    struct wqueue done;
    size_t n = 0;
    bool exited;

    if (s->joined)
        return;
    if (!s->plan_reported) {
        /* First, so that the plan is reported before its first changes;
         * PLAN_ERRMSG is not written again once PLAN_DONE is set. */
        bool planned;
        int rv;
        pthread_mutex_lock(&s->lock);
        planned = s->plan_done;
        rv = s->plan_rv;
        pthread_mutex_unlock(&s->lock);
        if (planned) {
            s->plan_reported = true;
            if (s->planned_cb && !s->stop_called)
                s->planned_cb(p, rv, rv != 0 ? s->plan_errmsg : "");
        }
    }
    pthread_mutex_lock(&s->lock);
    if (!s->stop_called) {
        /* Swap the queue with the delivery buffer; free the slots. */
        struct vg_plc_change *c = s->pend;
        uint32_t *ci = s->pend_item;
        n = s->n_pend;
        s->pend = s->deliver;
        s->pend_item = s->deliver_item;
        s->deliver = c;
        s->deliver_item = ci;
        s->n_pend = 0;
        for (size_t k = 0; k < n; k++)
            s->slot[s->deliver_item[k]] = -1;
    }
    done = s->done;
    s->done = (struct wqueue){0};
    exited = s->exited;
    pthread_mutex_unlock(&s->lock);

    if (n > 0)
        s->changes_cb(p, s->deliver, n);
    for (struct wreq *r; (r = wq_pop(&done));) {
        r->cb(p, r->status, r->errmsg, r->data);
        free(r);
    }
    /* EXITED is only set after stop was called, and the thread sends no
     * more after it; a callback above may have called stop, then the
     * thread's final wake-up comes later. */
    if (exited && !s->joined) {
        s->joined = true;
        pthread_join(s->thread, NULL);
        uv_close((uv_handle_t *)&s->async, closed_cb);
    }
}

int vg_plc_poller_start(struct vg_plc_poller *p, struct uv_loop_s *loop,
                        const struct vg_project *project, int plc_index,
                        const struct vg_plc_poller_opts *opts, char *errmsg)
{
    struct vg_plc_poller_impl *s;
    pthread_condattr_t ca;
    const struct vg_plc *plc;
    int rv;

    if (!opts || !opts->changes_cb) {
        vg_errf(errmsg, "a poller needs a changes callback");
        return VG_EINVAL;
    }
    if (!project || plc_index < 0 || (size_t)plc_index >= project->n_plcs) {
        vg_errf(errmsg, "no PLC number %d in the project", plc_index);
        return VG_EINVAL;
    }
    plc = &project->plcs[plc_index];
    s = calloc(1, sizeof(*s));
    if (!s) {
        vg_errf(errmsg, "out of memory");
        return VG_ENOMEM;
    }
    s->p = p;
    s->project = project;
    s->plc_index = plc_index;
    s->changes_cb = opts->changes_cb;
    s->planned_cb = opts->planned_cb;
    s->plan_opts = opts->plan;
    s->port = opts->port ? opts->port : plc->port;
    s->unit_id = plc->unit_id;
    s->fencing = plc->fencing_register;
    s->poll_ms = opts->poll_ms ? opts->poll_ms : plc->poll_ms;
    s->timeout_ms = opts->timeout_ms ? opts->timeout_ms : plc->timeout_ms;
    s->backoff_min_ms =
        opts->backoff_min_ms ? opts->backoff_min_ms : DEFAULT_BACKOFF_MIN_MS;
    s->backoff_max_ms =
        opts->backoff_max_ms ? opts->backoff_max_ms : DEFAULT_BACKOFF_MAX_MS;
    s->max_writes = opts->max_writes ? opts->max_writes : DEFAULT_MAX_WRITES;
    s->write_max_age_ms = opts->write_max_age_ms;
    s->fd = -1;
    if (s->poll_ms == 0 || s->timeout_ms == 0 ||
        s->backoff_max_ms < s->backoff_min_ms || s->port < 1 ||
        s->port > 65535 || s->unit_id < 0 || s->unit_id > 255 ||
        s->fencing > 65532) {
        vg_errf(errmsg, "PLC %s: bad poll interval, timeout, back-off, port, "
                "unit id or fencing register", plc->name);
        free(s);
        return VG_EINVAL;
    }
    rv = pthread_mutex_init(&s->lock, NULL);
    if (rv != 0) {
        vg_errf(errmsg, "cannot create a mutex: %s", strerror(rv));
        free(s);
        return VG_EIO;
    }
    if (pthread_condattr_init(&ca) != 0 ||
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&s->cond, &ca) != 0) {
        vg_errf(errmsg, "cannot create a condition variable");
        pthread_mutex_destroy(&s->lock);
        free(s);
        return VG_EIO;
    }
    pthread_condattr_destroy(&ca);

    /* From here on impl_free releases whatever was allocated.
     *
     * The plan itself is built by the thread (see the top comment), but bad
     * request size options are still refused here: planning no tags checks
     * them and costs nothing. What only the full plan can find (tags that
     * overlap, which a validated project never has) comes later, through
     * planned_cb and last_error. */
    rv = vg_plc_plan_build(project->tags, 0, plc_index, &s->plan_opts,
                           &s->plan, errmsg);
    if (rv != 0)
        goto err_after_sync;
    if (opts->host == NULL && plc->host == NULL) {
        /* Validation requires a host; a project parsed short of memory
         * may still lack one. */
        vg_errf(errmsg, "PLC %s has no host", plc->name != NULL ? plc->name : "?");
        rv = VG_EINVAL;
        goto err_after_sync;
    }
    s->host = strdup(opts->host ? opts->host : plc->host);
    if (!s->host) {
        vg_errf(errmsg, "out of memory");
        rv = VG_ENOMEM;
        goto err_after_sync;
    }

    /* The TCP context only carries the framing and timeouts: the socket is
     * ours (connect_one), handed over with modbus_set_socket. */
    s->ctx = modbus_new_tcp(NULL, s->port);
    if (!s->ctx || modbus_set_slave(s->ctx, s->unit_id) != 0) {
        vg_errf(errmsg, "cannot create a Modbus context: %s",
                modbus_strerror(errno));
        rv = VG_ENOMEM;
        goto err_after_sync;
    }
    modbus_set_response_timeout(s->ctx, s->timeout_ms / 1000,
                                (s->timeout_ms % 1000) * 1000);
    modbus_set_byte_timeout(s->ctx, s->timeout_ms / 1000,
                            (s->timeout_ms % 1000) * 1000);
    modbus_set_error_recovery(s->ctx, MODBUS_ERROR_RECOVERY_NONE);

    rv = uv_async_init(loop, &s->async, async_cb);
    if (rv != 0) {
        vg_errf(errmsg, "cannot create an async handle: %s", uv_strerror(rv));
        rv = VG_EIO;
        goto err_after_sync;
    }
    s->async.data = s;
    p->impl = s;
    rv = pthread_create(&s->thread, NULL, thread_main, s);
    if (rv != 0) {
        vg_errf(errmsg, "cannot create the poller thread: %s", strerror(rv));
        p->impl = NULL;
        /* The handle exists and must be closed before its memory goes, but
         * start's contract says no callback follows: closed_cb only frees
         * (the loop must run once more for that). */
        s->p = NULL;
        s->joined = true;
        s->stop_called = true;
        uv_close((uv_handle_t *)&s->async, closed_cb);
        return VG_EIO;
    }
    return 0;

err_after_sync:
    impl_free(s);
    return rv;
}

void vg_plc_poller_stop(struct vg_plc_poller *p,
                        vg_plc_poller_close_cb close_cb)
{
    struct vg_plc_poller_impl *s = p->impl;

    if (!s || s->stop_called)
        return;
    s->stop_called = true;
    s->close_cb = close_cb;
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    if (s->fd >= 0)
        shutdown(s->fd, SHUT_RDWR);
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

int vg_plc_poller_write(struct vg_plc_poller *p, uint32_t tag_index,
                        double eng_value, uint32_t node_id, uint32_t term,
                        vg_plc_write_cb cb, void *data, char *errmsg)
{
    struct vg_plc_poller_impl *s = p->impl;
    const struct vg_tag *t;
    struct vg_plc_write w;
    struct wreq *r;
    int rv;

    if (!s || s->stop_called) {
        vg_errf(errmsg, "the poller is stopped");
        return VG_ECLOSED;
    }
    if (!cb) {
        vg_errf(errmsg, "a write needs a callback");
        return VG_EINVAL;
    }
    if (tag_index >= s->project->n_tags ||
        s->project->tags[tag_index].plc.index != s->plc_index) {
        vg_errf(errmsg, "tag %u is not on PLC %s", (unsigned)tag_index,
                s->project->plcs[s->plc_index].name);
        return VG_EINVAL;
    }
    t = &s->project->tags[tag_index];
    rv = vg_plc_write_encode(t, eng_value, &w, errmsg);
    if (rv != 0)
        return rv;
    r = calloc(1, sizeof(*r));
    if (!r) {
        vg_errf(errmsg, "out of memory");
        return VG_ENOMEM;
    }
    r->tag = tag_index;
    r->w = w;
    r->node = node_id;
    r->term = term;
    r->queued_ms = vg_now_mono_ms();
    r->cb = cb;
    r->data = data;
    pthread_mutex_lock(&s->lock);
    if (s->writes.n >= s->max_writes) {
        pthread_mutex_unlock(&s->lock);
        free(r);
        vg_errf(errmsg, "%zu writes to PLC %s are already waiting",
                s->max_writes, s->project->plcs[s->plc_index].name);
        return VG_EBUSY;
    }
    wq_push(&s->writes, r);
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

void vg_plc_poller_status(struct vg_plc_poller *p,
                          struct vg_plc_poller_status *st)
{
    struct vg_plc_poller_impl *s = p->impl;

    if (!s) {
        memset(st, 0, sizeof(*st));
        return;
    }
    pthread_mutex_lock(&s->lock);
    *st = s->st;
    pthread_mutex_unlock(&s->lock);
}
