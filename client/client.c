/* Blocking client for vigild that follows the leader (see client.h).
 *
 * Happy path of vg_client_call(): copy the request, give the copy a fresh
 * "id", connect to the first seed that accepts if there is no connection yet,
 * queue the frame, then poll() the socket: flush what is queued, read what
 * arrives, feed it to the proto decoder and drop every message whose "id" is
 * not ours (pongs, pushes, late answers to earlier requests) until ours comes.
 *
 * Failure modes and what the call does about each:
 *   - connect refused / unreachable / not finished within the dead time:
 *     note it, try the next seed; after a round where no seed accepted, back
 *     off (50, 100, 200, 400, 400 … ms) and start another round;
 *   - answer "not_leader" naming leader.client_address: close, connect there,
 *     resend (after two redirects in one call, back off before each further
 *     one so that two nodes with stale views cannot make us spin);
 *   - "not_leader" naming nobody (election running), or naming a node we
 *     just declared dead: close, back off, go on with the next seed;
 *   - answer "timeout": resend once on the same connection; the node
 *     redirects us if it lost leadership meanwhile;
 *   - answer "unavailable" (the leader changed nothing and cannot do it
 *     yet, e.g. still restoring alarm states after a takeover): back off
 *     and resend on the same connection, until the deadline;
 *   - peer closes, resets, says "bye", or sends nothing (not even a pong to
 *     our pings) for the dead time: close, remember it as dead for a while
 *     (its seed is tried last, redirects to it are ignored), reconnect
 *     elsewhere and resend; repeated losses are paced by the back-off too;
 *   - deadline: stop wherever we are and return VG_ETIMEDOUT (or VG_EIO if
 *     no connection could ever be made) with the addresses tried.
 *
 * Every wait is bounded by the call's deadline, so every loop ends.
 *
 * Pushed events ({"type":"event"}, no "id") that arrive on the client's own
 * connection during any wait are kept in a ring (the oldest dropped when it
 * is full) for vg_client_next_event(); other unsolicited frames are skipped.
 *
 * Remembered subscriptions (vg_client_subscribe): each keeps a copy of its
 * request and the generation of the connection it was established on; the
 * generation grows with every new connection. vg_client_next_event() sends
 * them again when one of them is not on the open connection, or when the
 * ring dropped events since they were established (the caller's picture has
 * a hole). The re-subscription is an ordinary call per request, under one
 * deadline. Ring order stays arrival order: conn_drain() stops at the
 * answer, leaving what follows it in the decoder, and the "resubscribed"
 * marker is queued right then, so the image pushed after the answer lands
 * behind it. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include "client.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../proto/proto.h"

#define HOST_MAX 256
#define ADDR_MAX (HOST_MAX + 16) /* "[" host "]:" port */
#define WHY_MAX 128
#define TRACE_MAX 8
#define BACKOFF_MIN_MS 50u
#define BACKOFF_MAX_MS 400u
#define QUICK_REDIRECTS 2u
#define READ_CHUNK 16384
#define READS_PER_WAKEUP 16
#define DRAIN_MAX 4096

struct addr {
    char text[ADDR_MAX]; /* as given, surrounding spaces removed */
    char host[HOST_MAX];
    int port;
};

/* One TCP connection with its decoder and a queue of unsent bytes. */
struct conn {
    int fd; /* -1 when closed */
    struct addr addr;
    struct vg_proto_decoder dec;
    char *out;
    size_t out_len; /* queued bytes */
    size_t out_off; /* of which already sent */
    size_t out_cap;
    bool gone;         /* EOF, error or "bye" seen; reason in lost */
    char lost[WHY_MAX];
    /* Keepalive state, carried from one wait to the next when they follow
     * each other closely (see conn_wait). 0 before the first wait. */
    uint64_t last_rx;   /* when a byte last arrived */
    uint64_t next_ping;
    uint64_t wait_end;  /* when the last wait returned */
};

/* What happened at each address during one call, for the error sentence. */
struct trace {
    struct {
        char addr[ADDR_MAX];
        char what[WHY_MAX];
    } at[TRACE_MAX];
    unsigned n;
    unsigned more; /* addresses that did not fit */
};

#define EVENT_RING VG_CLIENT_EVENT_QUEUE
#define MAX_SUBS 8

/* A remembered subscription. */
struct sub {
    json_t *req;       /* deep copy of the request, without "id" */
    unsigned long gen; /* conn_gen of the connection it was answered on */
};

struct vg_client {
    struct addr *seeds;
    size_t n_seeds;
    size_t next_seed; /* where the next connection round starts */
    unsigned timeout_ms;
    unsigned ping_ms;
    unsigned dead_ms;
    long long next_id;
    struct conn conn;
    unsigned long conn_gen; /* bumped whenever conn is (re)opened */
    /* The last peer declared dead or lost, avoided until dead_until. */
    char dead_addr[ADDR_MAX];
    uint64_t dead_until;
    /* Pushed events not yet taken, oldest at ev_head. */
    json_t *events[EVENT_RING];
    size_t ev_head;
    size_t ev_count;
    unsigned long ev_dropped;
    /* Remembered subscriptions, and ev_dropped when their events were last
     * known to be complete. */
    struct sub subs[MAX_SUBS];
    size_t n_subs;
    unsigned long subs_dropped;
};

/* Outcomes of waiting for an answer. */
enum { W_ANSWER, W_DEADLINE, W_LOST, W_DEAD, W_NOMEM, W_EVENT };

/* Waiting for an event rather than for an answer (ids are never negative). */
#define WAIT_EVENT (-1)

/* ------------------------------------------------------------------ */
/* Addresses                                                           */

static int addr_set(struct addr *a, const char *text, size_t len,
                    char *errmsg)
{
    while (len > 0 && (*text == ' ' || *text == '\t')) {
        text++;
        len--;
    }
    while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t')) {
        len--;
    }
    if (len == 0) {
        vg_errf(errmsg, "empty address, expected HOST:PORT");
        return VG_EINVAL;
    }
    if (len >= sizeof a->text) {
        vg_errf(errmsg, "address '%.40s…' is too long", text);
        return VG_EINVAL;
    }
    memcpy(a->text, text, len);
    a->text[len] = '\0';
    return vg_addr_parse(a->text, a->host, sizeof a->host, &a->port, errmsg);
}

/* ------------------------------------------------------------------ */
/* Time                                                                */

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* Milliseconds from NOW until UNTIL as a poll() timeout. */
static int poll_ms(uint64_t until, uint64_t now)
{
    if (until <= now) {
        return 0;
    }
    return until - now > (uint64_t)INT_MAX ? INT_MAX : (int)(until - now);
}

/* Sleep MS milliseconds, but never past DEADLINE. */
static void pause_ms(unsigned ms, uint64_t deadline)
{
    uint64_t now = vg_now_mono_ms();
    uint64_t until = min_u64(now + ms, deadline);
    struct timespec ts;

    while (now < until) {
        uint64_t left = until - now;
        ts.tv_sec = (time_t)(left / 1000u);
        ts.tv_nsec = (long)(left % 1000u) * 1000000L;
        nanosleep(&ts, NULL); /* EINTR: recompute and go on */
        now = vg_now_mono_ms();
    }
}

static void backoff_grow(unsigned *backoff)
{
    *backoff = *backoff * 2u > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : *backoff * 2u;
}

/* ------------------------------------------------------------------ */
/* Trace                                                               */

static void trace_note(struct trace *t, const char *addr, const char *fmt,
                       ...) __attribute__((format(printf, 3, 4)));

static void trace_note(struct trace *t, const char *addr, const char *fmt, ...)
{
    va_list ap;
    unsigned i;

    for (i = 0; i < t->n; i++) {
        if (strcmp(t->at[i].addr, addr) == 0) {
            break;
        }
    }
    if (i == t->n) {
        if (t->n == TRACE_MAX) {
            t->more++;
            return;
        }
        snprintf(t->at[i].addr, sizeof t->at[i].addr, "%s", addr);
        t->n++;
    }
    va_start(ap, fmt);
    vsnprintf(t->at[i].what, sizeof t->at[i].what, fmt, ap);
    va_end(ap);
}

static void trace_report(const struct trace *t, char *errmsg,
                         const char *lead)
{
    char buf[1024];
    size_t off;
    unsigned i;

    off = (size_t)snprintf(buf, sizeof buf, "%s", lead);
    for (i = 0; i < t->n && off < sizeof buf; i++) {
        off += (size_t)snprintf(buf + off, sizeof buf - off, "%s %s (%s)",
                                i == 0 ? "; tried" : ",", t->at[i].addr,
                                t->at[i].what);
    }
    if (t->more > 0 && off < sizeof buf) {
        snprintf(buf + off, sizeof buf - off, " and %u more", t->more);
    }
    vg_errf(errmsg, "%s", buf);
}

/* ------------------------------------------------------------------ */
/* Connections                                                         */

static void conn_reset(struct conn *k)
{
    memset(k, 0, sizeof *k);
    k->fd = -1;
}

static void conn_close(struct conn *k)
{
    if (k->fd >= 0) {
        close(k->fd);
        vg_proto_decoder_close(&k->dec);
    }
    free(k->out);
    conn_reset(k);
}

static void describe_errno(int err, char *why, size_t why_size)
{
    char buf[96];
    /* GNU strerror_r: _GNU_SOURCE is set project-wide. */
    snprintf(why, why_size, "%s", strerror_r(err, buf, sizeof buf));
}

/* Try one resolved address; returns a connected fd or -1 with WHY set. */
static int try_connect(const struct addrinfo *ai, uint64_t deadline, char *why,
                       size_t why_size)
{
    int one = 1;
    int fd;
    int err = 0;
    socklen_t len = sizeof err;

    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                ai->ai_protocol);
    if (fd < 0) {
        describe_errno(errno, why, why_size);
        return -1;
    }
    /* Requests are small and latency matters more than packet count. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
        return fd;
    }
    if (errno != EINPROGRESS) {
        describe_errno(errno, why, why_size);
        close(fd);
        return -1;
    }
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        uint64_t now = vg_now_mono_ms();
        int n;

        if (now >= deadline) {
            snprintf(why, why_size, "connect timed out");
            close(fd);
            return -1;
        }
        n = poll(&p, 1, poll_ms(deadline, now));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            describe_errno(errno, why, why_size);
            close(fd);
            return -1;
        }
        if (n > 0) {
            break;
        }
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
        err = errno;
    }
    if (err != 0) {
        describe_errno(err, why, why_size);
        close(fd);
        return -1;
    }
    return fd;
}

/* Open K to A, giving up at DEADLINE. Returns VG_OK, or VG_EIO with WHY. */
static int conn_open(struct conn *k, const struct addr *a, uint64_t deadline,
                     char *why, size_t why_size)
{
    struct addrinfo hints;
    struct addrinfo *res = NULL;
    const struct addrinfo *ai;
    char port[8];
    int fd = -1;
    int rv;

    conn_reset(k);
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(port, sizeof port, "%d", a->port);
    rv = getaddrinfo(a->host, port, &hints, &res);
    if (rv != 0) {
        snprintf(why, why_size, "cannot resolve: %s", gai_strerror(rv));
        return VG_EIO;
    }
    snprintf(why, why_size, "no usable address");
    for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = try_connect(ai, deadline, why, why_size);
    }
    freeaddrinfo(res);
    if (fd < 0) {
        return VG_EIO;
    }
    k->fd = fd;
    k->addr = *a;
    vg_proto_decoder_init(&k->dec);
    return VG_OK;
}

/* Append MSG as one frame to K's output queue. */
static int conn_queue(struct conn *k, json_t *msg)
{
    char *frame;
    size_t len;
    int rv;

    rv = vg_proto_encode(msg, &frame, &len);
    if (rv != VG_OK) {
        return rv;
    }
    if (k->out_off == k->out_len) {
        k->out_off = k->out_len = 0;
    }
    if (k->out_len + len > k->out_cap) {
        size_t cap = k->out_cap > 0 ? k->out_cap : 4096;
        char *p;
        while (cap < k->out_len + len) {
            cap *= 2;
        }
        p = realloc(k->out, cap);
        if (p == NULL) {
            free(frame);
            return VG_ENOMEM;
        }
        k->out = p;
        k->out_cap = cap;
    }
    memcpy(k->out + k->out_len, frame, len);
    k->out_len += len;
    free(frame);
    return VG_OK;
}

/* Send what the socket takes now; marks K gone on a hard error. */
static void conn_flush(struct conn *k)
{
    while (!k->gone && k->out_off < k->out_len) {
        ssize_t n = send(k->fd, k->out + k->out_off, k->out_len - k->out_off,
                         MSG_NOSIGNAL);
        if (n > 0) {
            k->out_off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            char e[96];
            describe_errno(n < 0 ? errno : EPIPE, e, sizeof e);
            snprintf(k->lost, sizeof k->lost, "send failed: %s", e);
            k->gone = true;
        }
    }
    if (k->out_off == k->out_len) {
        k->out_off = k->out_len = 0;
    }
}

/* Read what is there; returns bytes read, or -1 on out of memory. Marks K
 * gone on EOF or error (after keeping what was read before it). */
static long conn_read(struct conn *k)
{
    char buf[READ_CHUNK];
    long total = 0;
    int i;

    for (i = 0; i < READS_PER_WAKEUP && !k->gone; i++) {
        ssize_t n = recv(k->fd, buf, sizeof buf, 0);
        if (n > 0) {
            if (vg_proto_decoder_feed(&k->dec, buf, (size_t)n) != VG_OK) {
                return -1;
            }
            total += (long)n;
        } else if (n == 0) {
            snprintf(k->lost, sizeof k->lost, "connection closed by peer");
            k->gone = true;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
        } else {
            char e[96];
            describe_errno(errno, e, sizeof e);
            snprintf(k->lost, sizeof k->lost, "receive failed: %s", e);
            k->gone = true;
        }
    }
    return total;
}

static void event_push(struct vg_client *c, json_t *ev)
{
    if (c->ev_count == EVENT_RING) {
        json_decref(c->events[c->ev_head]);
        c->ev_head = (c->ev_head + 1) % EVENT_RING;
        c->ev_count--;
        c->ev_dropped++;
    }
    c->events[(c->ev_head + c->ev_count) % EVENT_RING] = ev;
    c->ev_count++;
}

static void events_clear(struct vg_client *c)
{
    while (c->ev_count > 0) {
        json_decref(c->events[c->ev_head]);
        c->events[c->ev_head] = NULL;
        c->ev_head = (c->ev_head + 1) % EVENT_RING;
        c->ev_count--;
    }
}

/* Take decoded messages out of K until the one with ID (or, with ID
 * WAIT_EVENT, until an event). Returns W_ANSWER, W_EVENT, W_LOST (the node
 * said "bye"), or -1 when nothing decisive is buffered. Events are queued
 * when K is the client's own connection, where subscriptions live. Frames
 * the decoder rejects are skipped: the answer may still follow. */
static int conn_drain(struct vg_client *c, struct conn *k, long long id,
                      json_t **answer)
{
    int i;

    for (i = 0; i < DRAIN_MAX; i++) {
        json_t *msg = NULL;
        int rv = vg_proto_decoder_next(&k->dec, &msg, NULL, NULL);
        const char *type;

        if (rv == VG_EAGAIN) {
            break;
        }
        if (rv != VG_OK) {
            continue;
        }
        type = vg_proto_get_str(msg, "type", "");
        if (id != WAIT_EVENT && vg_proto_get_int(msg, "id", -1) == id) {
            *answer = msg;
            return W_ANSWER;
        }
        if (strcmp(type, "bye") == 0) {
            snprintf(k->lost, sizeof k->lost, "node said bye: %s",
                     vg_proto_get_str(msg, "reason", "no reason given"));
            k->gone = true;
            json_decref(msg);
            return W_LOST;
        }
        if (strcmp(type, "event") == 0 && json_object_get(msg, "id") == NULL &&
            k == &c->conn) {
            event_push(c, msg);
            if (id == WAIT_EVENT) {
                return W_EVENT;
            }
            continue;
        }
        json_decref(msg); /* a pong, another push, or a late answer */
    }
    return -1;
}

static long long take_id(struct vg_client *c)
{
    return c->next_id++;
}

/* conn_wait() itself, keepalive state in K. */
static int conn_wait_keepalive(struct vg_client *c, struct conn *k, long long id,
                               uint64_t deadline, json_t **answer, char *why,
                               size_t why_size)
{
    uint64_t now;

    for (;;) {
        struct pollfd p;
        uint64_t wake;
        int n;

        n = conn_drain(c, k, id, answer);
        if (n == W_ANSWER || n == W_EVENT) {
            return n;
        }
        if (k->gone) {
            snprintf(why, why_size, "%s", k->lost);
            return W_LOST;
        }
        now = vg_now_mono_ms();
        if (now >= deadline) {
            return W_DEADLINE;
        }
        if (now - k->last_rx >= c->dead_ms) {
            snprintf(why, why_size, "no frame for %u ms, peer declared dead",
                     c->dead_ms);
            return W_DEAD;
        }
        if (now >= k->next_ping) {
            /* No point queueing pings behind bytes the peer is not taking. */
            if (k->out_off == k->out_len) {
                json_t *ping = vg_proto_request("ping", take_id(c));
                int rv = ping != NULL ? conn_queue(k, ping) : VG_ENOMEM;
                json_decref(ping);
                if (rv != VG_OK) {
                    return W_NOMEM;
                }
            }
            k->next_ping = now + c->ping_ms;
        }
        conn_flush(k);
        if (k->gone) {
            continue; /* report it at the top, after draining */
        }
        wake = min_u64(deadline, min_u64(k->last_rx + c->dead_ms, k->next_ping));
        p.fd = k->fd;
        p.events = POLLIN;
        if (k->out_off < k->out_len) {
            p.events |= POLLOUT;
        }
        p.revents = 0;
        n = poll(&p, 1, poll_ms(wake, now));
        if (n < 0 && errno != EINTR) {
            describe_errno(errno, why, why_size);
            return W_LOST;
        }
        if (n > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
            long got = conn_read(k);
            if (got < 0) {
                return W_NOMEM;
            }
            if (got > 0) {
                k->last_rx = vg_now_mono_ms();
            }
        }
    }
}

/* Wait on K for the answer with ID (already queued), pinging the peer.
 * Returns W_ANSWER with *ANSWER set, W_DEADLINE, W_LOST or W_DEAD with a
 * reason in WHY, or W_NOMEM. With ID WAIT_EVENT it waits for a pushed event
 * instead and returns W_EVENT once one is queued.
 *
 * The peer's silence is counted across waits that follow each other within
 * a ping interval: a caller polling vg_client_next_event() with timeouts
 * shorter than the dead time must still notice a paused node. Time between
 * waits that are further apart, when nobody pinged, does not count. */
static int conn_wait(struct vg_client *c, struct conn *k, long long id,
                     uint64_t deadline, json_t **answer, char *why,
                     size_t why_size)
{
    uint64_t now = vg_now_mono_ms();
    int w;

    if (k->wait_end == 0 || now - k->wait_end > c->ping_ms) {
        k->last_rx = now;
        k->next_ping = now + c->ping_ms;
    }
    w = conn_wait_keepalive(c, k, id, deadline, answer, why, why_size);
    k->wait_end = vg_now_mono_ms();
    return w;
}

/* ------------------------------------------------------------------ */
/* Public API                                                          */

struct vg_client *vg_client_new(const char *seeds, char *errmsg)
{
    struct vg_client *c;
    const char *p;
    size_t n = 1;

    if (seeds == NULL) {
        vg_errf(errmsg, "no cluster addresses given");
        return NULL;
    }
    for (p = seeds; *p != '\0'; p++) {
        n += *p == ',';
    }
    c = calloc(1, sizeof *c);
    if (c == NULL || (c->seeds = calloc(n, sizeof *c->seeds)) == NULL) {
        free(c);
        vg_errf(errmsg, "out of memory");
        return NULL;
    }
    for (p = seeds; c->n_seeds < n; c->n_seeds++) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        char why[VG_ERRMSG_SIZE];

        if (addr_set(&c->seeds[c->n_seeds], p, len, why) != VG_OK) {
            vg_errf(errmsg, "cluster address %zu of %zu in '%s': %s",
                    c->n_seeds + 1, n, seeds, why);
            free(c->seeds);
            free(c);
            return NULL;
        }
        p = comma != NULL ? comma + 1 : p + len;
    }
    c->timeout_ms = VG_CLIENT_DEFAULT_TIMEOUT_MS;
    c->ping_ms = VG_CLIENT_DEFAULT_PING_MS;
    c->dead_ms = VG_CLIENT_DEFAULT_DEAD_MS;
    c->next_id = 1;
    conn_reset(&c->conn);
    return c;
}

void vg_client_free(struct vg_client *c)
{
    if (c == NULL) {
        return;
    }
    events_clear(c);
    vg_client_forget_subscriptions(c);
    conn_close(&c->conn);
    free(c->seeds);
    free(c);
}

int vg_client_set_timeout(struct vg_client *c, unsigned ms)
{
    if (ms == 0) {
        return VG_EINVAL;
    }
    c->timeout_ms = ms;
    return VG_OK;
}

int vg_client_set_keepalive(struct vg_client *c, unsigned interval_ms,
                            unsigned dead_ms)
{
    if (interval_ms == 0 || dead_ms <= interval_ms) {
        return VG_EINVAL;
    }
    c->ping_ms = interval_ms;
    c->dead_ms = dead_ms;
    return VG_OK;
}

const char *vg_client_current(const struct vg_client *c)
{
    return c->conn.fd >= 0 ? c->conn.addr.text : NULL;
}

size_t vg_client_seed_count(const struct vg_client *c)
{
    return c->n_seeds;
}

const char *vg_client_seed(const struct vg_client *c, size_t i)
{
    return i < c->n_seeds ? c->seeds[i].text : NULL;
}

static bool is_dead(const struct vg_client *c, const char *addr)
{
    return vg_now_mono_ms() < c->dead_until &&
           strcmp(c->dead_addr, addr) == 0;
}

static void mark_dead(struct vg_client *c, const char *addr)
{
    snprintf(c->dead_addr, sizeof c->dead_addr, "%s", addr);
    c->dead_until = vg_now_mono_ms() + 2u * c->dead_ms;
}

static uint64_t connect_deadline(const struct vg_client *c, uint64_t deadline)
{
    return min_u64(deadline, vg_now_mono_ms() + c->dead_ms);
}

/* Connect to REDIRECT if given, else to the seeds in turn starting at
 * next_seed, a recently dead one last. Returns true when connected. */
static bool connect_somewhere(struct vg_client *c, const struct addr *redirect,
                              uint64_t deadline, struct trace *t)
{
    char why[WHY_MAX];
    bool avoid = vg_now_mono_ms() < c->dead_until;
    int pass;
    size_t i;

    if (redirect != NULL) {
        if (conn_open(&c->conn, redirect, connect_deadline(c, deadline), why,
                      sizeof why) == VG_OK) {
            c->conn_gen++;
            return true;
        }
        trace_note(t, redirect->text, "%s", why);
    }
    for (pass = 0; pass < 2; pass++) {
        for (i = 0; i < c->n_seeds; i++) {
            size_t at = (c->next_seed + i) % c->n_seeds;
            const struct addr *a = &c->seeds[at];
            bool dead = avoid && strcmp(a->text, c->dead_addr) == 0;

            if (dead != (pass == 1)) {
                continue;
            }
            if (vg_now_mono_ms() >= deadline) {
                return false;
            }
            if (conn_open(&c->conn, a, connect_deadline(c, deadline), why,
                          sizeof why) == VG_OK) {
                c->next_seed = (at + 1) % c->n_seeds;
                c->conn_gen++;
                return true;
            }
            trace_note(t, a->text, "%s", why);
        }
    }
    return false;
}

/* vg_client_call() up to DEADLINE (which the caller derives from the
 * timeout, as the error sentence says). */
static int call_until(struct vg_client *c, json_t *req, json_t **resp,
                      char *errmsg, uint64_t deadline)
{
    struct trace t;
    struct addr redirect;
    bool have_redirect = false;
    bool ever_connected = false;
    bool timeout_resent = false;
    unsigned redirects = 0;
    unsigned losses = 0;
    unsigned backoff = BACKOFF_MIN_MS;
    json_t *copy;
    int rv = VG_ETIMEDOUT;

    if (resp == NULL || !json_is_object(req)) {
        vg_errf(errmsg, "the request must be a JSON object");
        return VG_EINVAL;
    }
    *resp = NULL;
    copy = json_copy(req); /* shallow: we only set "id" and "v" on it */
    if (copy == NULL) {
        vg_errf(errmsg, "out of memory");
        return VG_ENOMEM;
    }
    memset(&t, 0, sizeof t);

    while (vg_now_mono_ms() < deadline) {
        char why[WHY_MAX];
        char here[ADDR_MAX];
        json_t *answer = NULL;
        long long id;
        int w;

        if (c->conn.fd < 0) {
            bool ok = connect_somewhere(c, have_redirect ? &redirect : NULL,
                                        deadline, &t);
            have_redirect = false;
            if (!ok) {
                pause_ms(backoff, deadline);
                backoff_grow(&backoff);
                continue;
            }
            ever_connected = true;
        }
        snprintf(here, sizeof here, "%s", c->conn.addr.text);

        id = take_id(c);
        if (json_object_set_new(copy, "id", json_integer(id)) != 0) {
            rv = VG_ENOMEM;
            vg_errf(errmsg, "out of memory");
            goto out;
        }
        rv = conn_queue(&c->conn, copy);
        if (rv != VG_OK) {
            vg_errf(errmsg, "cannot encode the request: %s", vg_strerror(rv));
            goto out;
        }
        w = conn_wait(c, &c->conn, id, deadline, &answer, why, sizeof why);
        if (w == W_NOMEM) {
            rv = VG_ENOMEM;
            vg_errf(errmsg, "out of memory");
            goto out;
        }
        if (w == W_DEADLINE) {
            trace_note(&t, here, "no answer before the deadline");
            break;
        }
        if (w == W_LOST || w == W_DEAD) {
            trace_note(&t, here, "%s", why);
            mark_dead(c, here);
            conn_close(&c->conn);
            if (++losses > 1) {
                pause_ms(backoff, deadline);
                backoff_grow(&backoff);
            }
            continue;
        }

        /* W_ANSWER */
        if (strcmp(vg_proto_get_str(answer, "type", ""), "error") == 0) {
            const char *code = vg_proto_get_str(answer, "code", "");

            if (strcmp(code, "not_leader") == 0) {
                const char *leader = vg_proto_get_str(
                    json_object_get(answer, "leader"), "client_address", NULL);

                conn_close(&c->conn);
                if (leader != NULL && strcmp(leader, here) != 0 &&
                    !is_dead(c, leader) &&
                    addr_set(&redirect, leader, strlen(leader), NULL) ==
                        VG_OK) {
                    trace_note(&t, here, "not the leader, redirected to %s",
                               leader);
                    have_redirect = true;
                    if (++redirects > QUICK_REDIRECTS) {
                        pause_ms(backoff, deadline);
                        backoff_grow(&backoff);
                    }
                } else {
                    trace_note(&t, here, "not the leader, leader unknown");
                    pause_ms(backoff, deadline);
                    backoff_grow(&backoff);
                }
                json_decref(answer);
                continue;
            }
            if (strcmp(code, "unavailable") == 0 &&
                vg_now_mono_ms() + backoff < deadline) {
                trace_note(&t, here, "not available yet, resent after %u ms", backoff);
                json_decref(answer);
                pause_ms(backoff, deadline);
                backoff_grow(&backoff);
                continue;
            }
            if (strcmp(code, "timeout") == 0 && !timeout_resent) {
                trace_note(&t, here, "commit timed out, resent");
                timeout_resent = true;
                json_decref(answer);
                continue;
            }
        }
        *resp = answer;
        rv = VG_OK;
        goto out;
    }

    {
        char lead[96];
        if (ever_connected) {
            rv = VG_ETIMEDOUT;
            snprintf(lead, sizeof lead, "no answer from the cluster within %u ms",
                     c->timeout_ms);
        } else {
            rv = VG_EIO;
            snprintf(lead, sizeof lead,
                     "could not connect to any node within %u ms",
                     c->timeout_ms);
        }
        trace_report(&t, errmsg, lead);
    }
out:
    json_decref(copy);
    return rv;
}

int vg_client_call(struct vg_client *c, json_t *req, json_t **resp,
                   char *errmsg)
{
    return call_until(c, req, resp, errmsg, vg_now_mono_ms() + c->timeout_ms);
}

int vg_client_call_at(struct vg_client *c, const char *addr, json_t *req,
                      json_t **resp, char *errmsg)
{
    uint64_t deadline = vg_now_mono_ms() + c->timeout_ms;
    struct conn tmp;
    struct conn *k;
    struct addr a;
    char why[WHY_MAX];
    json_t *copy;
    json_t *answer = NULL;
    bool broken = false;
    long long id;
    int rv;
    int w;

    if (resp == NULL || !json_is_object(req)) {
        vg_errf(errmsg, "the request must be a JSON object");
        return VG_EINVAL;
    }
    *resp = NULL;
    if (addr == NULL) {
        vg_errf(errmsg, "no address given");
        return VG_EINVAL;
    }
    if (addr_set(&a, addr, strlen(addr), errmsg) != VG_OK) {
        return VG_EINVAL;
    }
    if (c->conn.fd >= 0 && strcmp(c->conn.addr.text, a.text) == 0) {
        k = &c->conn;
    } else {
        k = &tmp;
        if (conn_open(k, &a, connect_deadline(c, deadline), why, sizeof why) !=
            VG_OK) {
            vg_errf(errmsg, "cannot connect to %s: %s", a.text, why);
            return VG_EIO;
        }
    }

    copy = json_copy(req);
    id = take_id(c);
    if (copy == NULL ||
        json_object_set_new(copy, "id", json_integer(id)) != 0) {
        vg_errf(errmsg, "out of memory");
        rv = VG_ENOMEM;
        goto out;
    }
    rv = conn_queue(k, copy);
    if (rv != VG_OK) {
        vg_errf(errmsg, "cannot encode the request: %s", vg_strerror(rv));
        goto out;
    }
    w = conn_wait(c, k, id, deadline, &answer, why, sizeof why);
    switch (w) {
    case W_ANSWER:
        *resp = answer;
        rv = VG_OK;
        break;
    case W_DEADLINE:
        vg_errf(errmsg, "no answer from %s within %u ms", a.text,
                c->timeout_ms);
        rv = VG_ETIMEDOUT;
        break;
    case W_DEAD:
        vg_errf(errmsg, "%s: %s", a.text, why);
        rv = VG_ETIMEDOUT;
        broken = true;
        break;
    case W_LOST:
        vg_errf(errmsg, "%s: %s", a.text, why);
        rv = VG_EIO;
        broken = true;
        break;
    default:
        vg_errf(errmsg, "out of memory");
        rv = VG_ENOMEM;
        broken = true; /* the queue may hold half a frame */
        break;
    }
out:
    json_decref(copy);
    /* A temporary connection always goes; ours only when it broke. */
    if (k == &tmp || broken) {
        conn_close(k);
    }
    return rv;
}

/* ------------------------------------------------------------------ */
/* Remembered subscriptions                                            */

static bool is_error_answer(const json_t *answer)
{
    return strcmp(vg_proto_get_str(answer, "type", ""), "error") == 0;
}

static bool names_some(const json_t *names)
{
    return json_is_array(names) && json_array_size(names) > 0;
}

/* Does REQ end the subscription of its type (MESSAGES.md)? */
static bool ends_subscription(const json_t *req)
{
    const char *type = vg_proto_get_str(req, "type", "");

    if (strcmp(type, "subscribe") == 0) {
        const json_t *topics = json_object_get(req, "topics");
        return json_is_array(topics) && json_array_size(topics) == 0;
    }
    if (strcmp(type, "tags_subscribe") == 0) {
        return !names_some(json_object_get(req, "tags")) &&
               !names_some(json_object_get(req, "screens")) &&
               !json_is_true(json_object_get(req, "all"));
    }
    return false;
}

/* Index of the remembered subscription of TYPE, or n_subs. */
static size_t sub_find(const struct vg_client *c, const char *type)
{
    size_t i;

    for (i = 0; i < c->n_subs; i++) {
        if (strcmp(vg_proto_get_str(c->subs[i].req, "type", ""), type) == 0) {
            break;
        }
    }
    return i;
}

static void sub_remove(struct vg_client *c, size_t i)
{
    json_decref(c->subs[i].req);
    memmove(&c->subs[i], &c->subs[i + 1],
            (c->n_subs - i - 1) * sizeof c->subs[0]);
    c->n_subs--;
}

/* Is some remembered subscription possibly not in force on the connection,
 * or has the caller missed events of it? A connection that is gone but still
 * open does not count yet: events it delivered before the end may wait in
 * its decoder, and the wait in vg_client_next_event() hands them out first
 * and only then reports the loss. */
static bool subs_need_renewal(const struct vg_client *c)
{
    size_t i;

    if (c->n_subs == 0) {
        return false;
    }
    if (c->conn.fd < 0 || c->ev_dropped != c->subs_dropped) {
        return true;
    }
    for (i = 0; i < c->n_subs; i++) {
        if (c->subs[i].gen != c->conn_gen) {
            return true;
        }
    }
    return false;
}

/* Send subscription I again under DEADLINE and queue its marker. Returns
 * VG_OK, VG_ECLOSED (no answer in time, or an error answer) or VG_ENOMEM,
 * with a sentence in ERRMSG. */
static int sub_renew(struct vg_client *c, size_t i, uint64_t deadline,
                     char *errmsg)
{
    const char *type = vg_proto_get_str(c->subs[i].req, "type", "?");
    char why[VG_ERRMSG_SIZE];
    json_t *answer = NULL;
    json_t *marker;
    int rv;

    rv = call_until(c, c->subs[i].req, &answer, why, deadline);
    if (rv == VG_ENOMEM) {
        vg_errf(errmsg, "out of memory");
        return rv;
    }
    if (rv != VG_OK) {
        vg_errf(errmsg, "cannot subscribe again (%s): %s", type, why);
        return VG_ECLOSED;
    }
    if (is_error_answer(answer)) {
        vg_errf(errmsg, "subscribing again (%s) at %s was refused: %s: %s",
                type, c->conn.addr.text,
                vg_proto_get_str(answer, "code", "?"),
                vg_proto_get_str(answer, "message", "no message"));
        json_decref(answer);
        return VG_ECLOSED;
    }
    marker = json_pack("{s:s, s:s, s:s, s:s}", "type", "event", "topic",
                       "client", "event", "resubscribed", "address",
                       c->conn.addr.text);
    if (marker == NULL) {
        json_decref(answer);
        vg_errf(errmsg, "out of memory");
        return VG_ENOMEM;
    }
    if (json_object_set_new(marker, "answer", answer) != 0) { /* stolen */
        json_decref(marker);
        vg_errf(errmsg, "out of memory");
        return VG_ENOMEM;
    }
    /* The answer was the last message taken from the connection, so the
     * marker goes exactly where it arrived. */
    event_push(c, marker);
    c->subs[i].gen = c->conn_gen;
    return VG_OK;
}

/* Establish every remembered subscription on one connection again. */
static int subs_renew(struct vg_client *c, char *errmsg)
{
    uint64_t deadline = vg_now_mono_ms() + c->timeout_ms;
    unsigned long dropped;
    bool first = true;
    size_t i;
    int rv;

    if (c->ev_dropped != c->subs_dropped) {
        /* A hole: start over on a new connection, where the node has
         * nothing of ours, and from fresh images. */
        conn_close(&c->conn);
        events_clear(c);
    }
    /* A connection that is gone is left to the calls below: they queue
     * what it still holds, then notice the loss and go elsewhere. */
    /* Drops during the round (more events than the ring holds before the
     * last answer) must cause another round, so the mark is taken now. */
    dropped = c->ev_dropped;
    for (;;) {
        bool settled = true;

        for (i = 0; i < c->n_subs; i++) {
            if (first || c->conn.fd < 0 || c->subs[i].gen != c->conn_gen) {
                if ((rv = sub_renew(c, i, deadline, errmsg)) != VG_OK) {
                    return rv;
                }
            }
        }
        first = false;
        /* A later answer may have come over a new connection (the first
         * one broke meanwhile): the earlier ones must follow it there. */
        for (i = 0; i < c->n_subs; i++) {
            settled = settled && c->subs[i].gen == c->conn_gen;
        }
        if (settled && c->conn.fd >= 0) {
            break;
        }
        if (vg_now_mono_ms() >= deadline) {
            vg_errf(errmsg, "cannot subscribe again: the connection kept "
                            "changing for %u ms", c->timeout_ms);
            return VG_ECLOSED;
        }
    }
    c->subs_dropped = dropped;
    return VG_OK;
}

int vg_client_subscribe(struct vg_client *c, json_t *req, json_t **resp,
                        char *errmsg)
{
    const char *type = vg_proto_get_str(req, "type", NULL);
    json_t *copy = NULL;
    bool ends;
    size_t i;
    int rv;

    if (resp == NULL || !json_is_object(req) || type == NULL) {
        vg_errf(errmsg, "the request must be a JSON object with a \"type\"");
        return VG_EINVAL;
    }
    *resp = NULL;
    i = sub_find(c, type);
    ends = ends_subscription(req);
    if (!ends && i == c->n_subs && c->n_subs == MAX_SUBS) {
        vg_errf(errmsg, "at most %d kinds of subscription can be remembered",
                MAX_SUBS);
        return VG_EINVAL;
    }
    if (!ends) {
        copy = json_deep_copy(req);
        if (copy == NULL) {
            vg_errf(errmsg, "out of memory");
            return VG_ENOMEM;
        }
        json_object_del(copy, "id"); /* the call sets its own */
    }
    rv = vg_client_call(c, req, resp, errmsg);
    if (rv != VG_OK || is_error_answer(*resp)) {
        json_decref(copy);
        return rv;
    }
    if (ends) {
        if (i < c->n_subs) {
            sub_remove(c, i);
        }
        return VG_OK;
    }
    if (c->n_subs == 0) {
        c->subs_dropped = c->ev_dropped; /* what was dropped before is not ours */
    }
    if (i == c->n_subs) {
        c->subs[c->n_subs++].req = NULL;
    }
    json_decref(c->subs[i].req);
    c->subs[i].req = copy;
    c->subs[i].gen = c->conn_gen; /* the answer came over the open connection */
    return VG_OK;
}

void vg_client_forget_subscriptions(struct vg_client *c)
{
    while (c->n_subs > 0) {
        sub_remove(c, c->n_subs - 1);
    }
}

int vg_client_next_event(struct vg_client *c, unsigned timeout_ms,
                         json_t **event, char *errmsg)
{
    uint64_t deadline = vg_now_mono_ms() + timeout_ms;
    char why[WHY_MAX];
    int rv;
    int w;

    if (event == NULL) {
        vg_errf(errmsg, "no place for the event");
        return VG_EINVAL;
    }
    *event = NULL;
    if (subs_need_renewal(c) && (rv = subs_renew(c, errmsg)) != VG_OK) {
        return rv;
    }
    if (c->ev_count == 0) {
        if (c->conn.fd < 0) {
            vg_errf(errmsg, "not connected; subscribe first");
            return VG_ECLOSED;
        }
        w = conn_wait(c, &c->conn, WAIT_EVENT, deadline, NULL, why, sizeof why);
        switch (w) {
        case W_EVENT:
            break;
        case W_DEADLINE:
            vg_errf(errmsg, "no event within %u ms", timeout_ms);
            return VG_ETIMEDOUT;
        case W_NOMEM:
            conn_close(&c->conn); /* the queue may hold half a frame */
            vg_errf(errmsg, "out of memory");
            return VG_ENOMEM;
        default: {
            char addr[ADDR_MAX];
            char renew[VG_ERRMSG_SIZE];

            snprintf(addr, sizeof addr, "%s", c->conn.addr.text);
            mark_dead(c, addr);
            conn_close(&c->conn);
            if (c->n_subs == 0) {
                vg_errf(errmsg, "connection to %s lost: %s", addr, why);
                return VG_ECLOSED;
            }
            if ((rv = subs_renew(c, renew)) != VG_OK) {
                vg_errf(errmsg, "connection to %s lost: %s; %s", addr, why,
                        renew);
                return rv;
            }
            break;
        }
        }
    }
    *event = c->events[c->ev_head];
    c->events[c->ev_head] = NULL;
    c->ev_head = (c->ev_head + 1) % EVENT_RING;
    c->ev_count--;
    return VG_OK;
}

unsigned long vg_client_events_dropped(const struct vg_client *c)
{
    return c->ev_dropped;
}
