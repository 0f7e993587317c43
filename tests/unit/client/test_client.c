/* Tests of the client library against fake vigild nodes, and of vigilctl's
 * argument handling by running the built binary (its path is argv[1]).
 *
 * A fake node is a thread with a listening socket on 127.0.0.1 (port 0)
 * speaking the real frame format through proto/. It answers pings with
 * pongs and every other request according to its mode. Tests synchronise on
 * what the fakes saw (request and ping counters), never on sleeps; time is
 * only measured to check upper bounds. A test changes what a running fake
 * does through its control pipe (close every connection, say "bye", stop
 * listening) and waits until the fake has done it. Each test's teardown
 * stops its fakes (joining their threads and closing every socket) even
 * when it failed. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "client.h"
#include "../../../proto/proto.h"

extern char **environ;

#define MAX_CONNS 8
#define FAKE_LIFETIME_MS 60000u
#define CHILD_LIMIT_MS 20000u

enum fake_mode {
    FAKE_ANSWER,        /* answer with the template (after noise) */
    FAKE_SILENT,        /* read everything, never write a byte */
    FAKE_PONG_ONLY,     /* answer pings, never the requests */
    FAKE_CLOSE_FIRST,   /* drop the connection on the first request */
    FAKE_TIMEOUT_FIRST, /* answer the first request with code "timeout" */
    FAKE_EVENTS,        /* push `burst` events before each answer and one
                           after each pong, `ping_events` in all; then go
                           silent (no pongs) */
    FAKE_SUBS,          /* a node with subscriptions: answer "subscribe" and
                           "tags_subscribe", then push `image` tag events
                           (unless the answer is an error); push `burst` tag
                           events before answering anything else */
};

/* Bytes on a fake's control pipe. */
enum {
    CTL_STOP = 1,  /* end the thread */
    CTL_KICK = 'k', /* close every connection */
    CTL_BYE = 'b',  /* say "bye" on every connection, then close it */
    CTL_DOWN = 'd', /* close every connection and stop listening */
    CTL_MUTE = 'm', /* from now on, read everything and write nothing */
};

#define MAX_TYPED 4

struct fake_conn {
    int fd;
    struct vg_proto_decoder dec;
    long long pending; /* request id waiting for pings, or -1 */
    unsigned pings_since;
    char pending_type[32];
};

struct fake {
    int listen_fd;
    int wake[2]; /* control pipe: CTL_… bytes */
    pthread_t thread;
    char addr[32];
    char name[8];
    enum fake_mode mode;
    struct fake_conn conns[MAX_CONNS]; /* the thread's own */
    pthread_mutex_t lock;    /* guards everything below */
    json_t *answer;          /* template; its "id" is set per request */
    unsigned answer_after;   /* answer only after this many further pings */
    unsigned requests;       /* non-ping requests received */
    unsigned pings;
    unsigned connections;
    unsigned burst;          /* FAKE_EVENTS, FAKE_SUBS */
    unsigned ping_events;
    unsigned image;          /* FAKE_SUBS */
    bool drop_after_image;   /* FAKE_SUBS: close the connection after it */
    struct {
        char type[32];
        json_t *answer;
    } typed[MAX_TYPED];      /* answers for one request type */
    unsigned n_typed;
    json_t *last_request;    /* the last non-ping request received */
    unsigned controls_done;
    pthread_cond_t done;     /* signalled when controls_done grows */
    unsigned events_sent;    /* numbered 1, 2, …; the thread's own */
};

/* ------------------------------------------------------------------ */
/* The fake node                                                       */

static void fake_send(int fd, json_t *msg)
{
    char *frame;
    size_t len;
    size_t off = 0;

    if (vg_proto_encode(msg, &frame, &len) != VG_OK) {
        return;
    }
    while (off < len) {
        ssize_t n = send(fd, frame + off, len - off, MSG_NOSIGNAL);
        if (n <= 0) {
            break; /* the client went away; that is its business */
        }
        off += (size_t)n;
    }
    free(frame);
}

static bool is_subscription(const char *type)
{
    return strcmp(type, "subscribe") == 0 || strcmp(type, "tags_subscribe") == 0;
}

/* Answer request ID of TYPE on FD: the answer configured for TYPE, else (in
 * FAKE_SUBS, to a subscription) what a node answers, else the template.
 * Returns false if the answer was an error object. */
static bool fake_answer(struct fake *f, int fd, long long id, const char *type)
{
    json_t *a = NULL;
    json_t *noise;
    bool ok;
    unsigned i;

    pthread_mutex_lock(&f->lock);
    for (i = 0; i < f->n_typed; i++) {
        if (strcmp(f->typed[i].type, type) == 0) {
            a = json_deep_copy(f->typed[i].answer);
        }
    }
    if (a == NULL && f->mode == FAKE_SUBS && is_subscription(type)) {
        a = json_pack("{s:s, s:s, s:i, s:i, s:i, s:[]}", "type",
                      strcmp(type, "subscribe") == 0 ? "subscribed"
                                                     : "tags_subscribed",
                      "served_by", f->name, "node", 1, "version", 3, "count", 1,
                      "unknown");
    }
    if (a == NULL) {
        a = json_deep_copy(f->answer);
    }
    pthread_mutex_unlock(&f->lock);
    ok = strcmp(vg_proto_get_str(a, "type", ""), "error") != 0;

    /* Noise first: a pong for a ping never sent, a push, and a late answer
     * to another request. The client must skip all three. */
    noise = json_pack("{s:s, s:I}", "type", "pong", "id", (json_int_t)999999);
    fake_send(fd, noise);
    json_decref(noise);
    noise = json_pack("{s:s, s:s}", "type", "tag_update", "tag", "T1");
    fake_send(fd, noise);
    json_decref(noise);
    noise = json_pack("{s:s, s:I, s:s}", "type", "ok", "id",
                      (json_int_t)(id + 100000), "served_by", "nobody");
    fake_send(fd, noise);
    json_decref(noise);

    json_object_set_new(a, "id", json_integer(id));
    fake_send(fd, a);
    json_decref(a);
    return ok;
}

static void conn_drop(struct fake_conn *k)
{
    close(k->fd);
    vg_proto_decoder_close(&k->dec);
    k->fd = -1;
}

static unsigned fake_after(struct fake *f)
{
    unsigned n;
    pthread_mutex_lock(&f->lock);
    n = f->answer_after;
    pthread_mutex_unlock(&f->lock);
    return n;
}

/* Change what F answers (ANSWER is taken over; NULL keeps the template) and
 * after how many pings; safe while its thread runs. */
static void fake_configure(struct fake *f, json_t *answer, unsigned after)
{
    json_t *old = NULL;

    pthread_mutex_lock(&f->lock);
    if (answer != NULL) {
        old = f->answer;
        f->answer = answer;
    }
    f->answer_after = after;
    pthread_mutex_unlock(&f->lock);
    json_decref(old);
}

/* FAKE_EVENTS' parameters, set by the test while the thread runs. */
static void fake_event_params(struct fake *f, unsigned *burst, unsigned *total)
{
    pthread_mutex_lock(&f->lock);
    *burst = f->burst;
    *total = f->burst + f->ping_events;
    pthread_mutex_unlock(&f->lock);
}

/* A tag event as the node pushes them: one value entry, numbered. */
static void fake_tag_event(struct fake *f, int fd, const char *kind, bool last)
{
    unsigned seq = ++f->events_sent;
    char tag[16];
    json_t *ev;

    snprintf(tag, sizeof tag, "T%u", seq);
    ev = json_pack("{s:s, s:s, s:s, s:i, s:s, s:i, s:b,"
                   " s:[{s:s, s:f, s:s, s:I}]}",
                   "type", "event", "topic", "tags", "event", kind, "version", 3,
                   "served_by", f->name, "seq", (int)seq, "last", (int)last,
                   "values", "tag", tag, "value", seq * 1.5, "quality", "good",
                   "t", (json_int_t)(1715000000000 + seq));
    fake_send(fd, ev);
    json_decref(ev);
}

static void fake_event(struct fake *f, int fd)
{
    json_t *ev = json_pack("{s:s, s:s, s:s, s:I}", "type", "event", "topic",
                           "project", "event", "activated", "version",
                           (json_int_t)++f->events_sent);
    fake_send(fd, ev);
    json_decref(ev);
}

/* Handle one decoded message on K; returns false if K was dropped. */
static bool fake_handle(struct fake *f, struct fake_conn *k, json_t *msg)
{
    const char *type = vg_proto_get_str(msg, "type", "");
    long long id = vg_proto_get_int(msg, "id", -1);
    unsigned burst, total;
    unsigned n;

    fake_event_params(f, &burst, &total);
    if (strcmp(type, "ping") == 0) {
        pthread_mutex_lock(&f->lock);
        f->pings++;
        pthread_mutex_unlock(&f->lock);
        if (f->mode == FAKE_SILENT ||
            (f->mode == FAKE_EVENTS && f->events_sent >= total)) {
            return true;
        }
        {
            json_t *pong = json_pack("{s:s, s:I, s:i, s:i, s:i, s:b}", "type",
                                     "pong", "id", (json_int_t)id, "node_id",
                                     1, "leader_id", 1, "term", 1, "ready", 1);
            fake_send(k->fd, pong);
            json_decref(pong);
        }
        if (f->mode == FAKE_EVENTS) {
            fake_event(f, k->fd);
        }
        if (k->pending >= 0 && ++k->pings_since >= fake_after(f)) {
            fake_answer(f, k->fd, k->pending, k->pending_type);
            k->pending = -1;
        }
        return true;
    }

    pthread_mutex_lock(&f->lock);
    n = ++f->requests;
    json_decref(f->last_request);
    f->last_request = json_deep_copy(msg);
    pthread_mutex_unlock(&f->lock);
    switch (f->mode) {
    case FAKE_SILENT:
    case FAKE_PONG_ONLY:
        return true;
    case FAKE_CLOSE_FIRST:
        if (n == 1) {
            conn_drop(k);
            return false;
        }
        break;
    case FAKE_TIMEOUT_FIRST:
        if (n == 1) {
            json_t *e = vg_proto_error(id, "timeout", "not committed in time");
            fake_send(k->fd, e);
            json_decref(e);
            return true;
        }
        break;
    case FAKE_EVENTS:
        for (unsigned i = 0; i < burst; i++) {
            fake_event(f, k->fd);
        }
        break;
    case FAKE_SUBS:
        if (is_subscription(type)) {
            unsigned image;
            bool drop;

            pthread_mutex_lock(&f->lock);
            image = f->image;
            drop = f->drop_after_image;
            pthread_mutex_unlock(&f->lock);
            if (!fake_answer(f, k->fd, id, type)) {
                return true;
            }
            for (unsigned i = 0; i < image; i++) {
                fake_tag_event(f, k->fd, "image", i + 1 == image);
            }
            if (drop) {
                conn_drop(k);
                return false;
            }
            return true;
        }
        for (unsigned i = 0; i < burst; i++) {
            fake_tag_event(f, k->fd, "values", false);
        }
        break;
    case FAKE_ANSWER:
        break;
    }
    if (fake_after(f) > 0) {
        k->pending = id;
        k->pings_since = 0;
        snprintf(k->pending_type, sizeof k->pending_type, "%s", type);
    } else {
        fake_answer(f, k->fd, id, type);
    }
    return true;
}

static void fake_read(struct fake *f, struct fake_conn *k)
{
    char buf[4096];
    ssize_t n = recv(k->fd, buf, sizeof buf, 0);
    json_t *msg;
    int i;

    if (n <= 0) {
        conn_drop(k);
        return;
    }
    vg_proto_decoder_feed(&k->dec, buf, (size_t)n);
    for (i = 0; i < 1000; i++) {
        int rv = vg_proto_decoder_next(&k->dec, &msg, NULL, NULL);
        if (rv == VG_EAGAIN) {
            break;
        }
        if (rv != VG_OK) {
            continue;
        }
        if (!fake_handle(f, k, msg)) {
            json_decref(msg);
            return;
        }
        json_decref(msg);
    }
}

/* Carry out control byte WHAT (not CTL_STOP) and tell the test. */
static void fake_control_run(struct fake *f, char what)
{
    int i;

    if (what == CTL_MUTE) {
        f->mode = FAKE_SILENT; /* the mode is the thread's own */
    }
    for (i = 0; i < MAX_CONNS && what != CTL_MUTE; i++) {
        if (f->conns[i].fd < 0) {
            continue;
        }
        if (what == CTL_BYE) {
            json_t *bye = json_pack("{s:s, s:s}", "type", "bye", "reason",
                                    "lost leadership");
            fake_send(f->conns[i].fd, bye);
            json_decref(bye);
        }
        conn_drop(&f->conns[i]);
    }
    if (what == CTL_DOWN && f->listen_fd >= 0) {
        close(f->listen_fd);
        f->listen_fd = -1; /* poll() ignores it from now on */
    }
    pthread_mutex_lock(&f->lock);
    f->controls_done++;
    pthread_cond_broadcast(&f->done);
    pthread_mutex_unlock(&f->lock);
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    uint64_t end = vg_now_mono_ms() + FAKE_LIFETIME_MS;
    int i;

    while (vg_now_mono_ms() < end) {
        struct pollfd p[2 + MAX_CONNS];
        int map[2 + MAX_CONNS];
        int n = 0;

        p[n].fd = f->wake[0];
        p[n++].events = POLLIN;
        p[n].fd = f->listen_fd;
        p[n++].events = POLLIN;
        for (i = 0; i < MAX_CONNS; i++) {
            if (f->conns[i].fd >= 0) {
                map[n] = i;
                p[n].fd = f->conns[i].fd;
                p[n++].events = POLLIN;
            }
        }
        if (poll(p, (nfds_t)n, 1000) <= 0) {
            continue;
        }
        if (p[0].revents != 0) {
            char what = CTL_STOP;
            if (read(f->wake[0], &what, 1) != 1 || what == CTL_STOP) {
                break;
            }
            fake_control_run(f, what);
            continue; /* the connections changed under p[] */
        }
        if (p[1].revents & POLLIN) {
            int fd = accept(f->listen_fd, NULL, NULL);
            for (i = 0; fd >= 0 && i < MAX_CONNS; i++) {
                if (f->conns[i].fd < 0) {
                    f->conns[i].fd = fd;
                    f->conns[i].pending = -1;
                    vg_proto_decoder_init(&f->conns[i].dec);
                    pthread_mutex_lock(&f->lock);
                    f->connections++;
                    pthread_mutex_unlock(&f->lock);
                    fd = -1;
                }
            }
            if (fd >= 0) {
                close(fd); /* full: the test has a bug; the client will see it */
            }
        }
        for (i = 2; i < n; i++) {
            if (p[i].revents != 0 && f->conns[map[i]].fd >= 0) {
                fake_read(f, &f->conns[map[i]]);
            }
        }
    }
    for (i = 0; i < MAX_CONNS; i++) {
        if (f->conns[i].fd >= 0) {
            conn_drop(&f->conns[i]);
        }
    }
    return NULL;
}

/* Bind a listening socket on 127.0.0.1, any port; returns fd, port in *PORT. */
static int listen_any(int *port, bool do_listen)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    if (do_listen) {
        assert_int_equal(listen(fd, 16), 0);
    }
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

/* An address where nothing listens: bind a port, never listen, close. */
static void closed_addr(char *out, size_t size)
{
    int port;
    int fd = listen_any(&port, false);
    close(fd);
    snprintf(out, size, "127.0.0.1:%d", port);
}

/* ------------------------------------------------------------------ */
/* Per-test state                                                      */

#define MAX_FAKES 3

struct env {
    struct fake *fakes[MAX_FAKES];
    int n;
    struct vg_client *c;
};

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof *e);
    if (e == NULL) {
        return -1;
    }
    *state = e;
    return 0;
}

static void fake_stop(struct fake *f)
{
    char b = 1;
    ssize_t w = write(f->wake[1], &b, 1);
    (void)w;
    pthread_join(f->thread, NULL);
    close(f->wake[0]);
    close(f->wake[1]);
    if (f->listen_fd >= 0) {
        close(f->listen_fd);
    }
    json_decref(f->answer);
    for (unsigned i = 0; i < f->n_typed; i++) {
        json_decref(f->typed[i].answer);
    }
    json_decref(f->last_request);
    pthread_cond_destroy(&f->done);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

static int teardown(void **state)
{
    struct env *e = *state;
    int i;

    vg_client_free(e->c);
    for (i = 0; i < e->n; i++) {
        fake_stop(e->fakes[i]);
    }
    free(e);
    return 0;
}

/* Start a fake node in MODE answering ANSWER (a JSON text; may be NULL for
 * a plain {"type":"ok","served_by":NAME}). */
static struct fake *fake_start(struct env *e, enum fake_mode mode,
                               const char *name, json_t *answer)
{
    struct fake *f = calloc(1, sizeof *f);
    int port;
    int i;

    assert_non_null(f);
    assert_true(e->n < MAX_FAKES);
    f->mode = mode;
    snprintf(f->name, sizeof f->name, "%s", name);
    f->answer = answer != NULL
                    ? answer
                    : json_pack("{s:s, s:s}", "type", "ok", "served_by", name);
    for (i = 0; i < MAX_CONNS; i++) {
        f->conns[i].fd = -1;
    }
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->done, NULL);
    f->listen_fd = listen_any(&port, true);
    snprintf(f->addr, sizeof f->addr, "127.0.0.1:%d", port);
    assert_int_equal(pipe(f->wake), 0);
    assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
    e->fakes[e->n++] = f;
    return f;
}

/* Make F do WHAT (CTL_KICK, CTL_BYE, CTL_DOWN, CTL_MUTE) and wait until it
 * has. */
static void fake_control(struct fake *f, char what)
{
    unsigned target;

    pthread_mutex_lock(&f->lock);
    target = f->controls_done + 1;
    pthread_mutex_unlock(&f->lock);
    assert_int_equal(write(f->wake[1], &what, 1), 1);
    pthread_mutex_lock(&f->lock);
    while (f->controls_done < target) {
        pthread_cond_wait(&f->done, &f->lock);
    }
    pthread_mutex_unlock(&f->lock);
}

/* Answer requests of TYPE with ANSWER (taken over) from now on. */
static void fake_answer_type(struct fake *f, const char *type, json_t *answer)
{
    assert_true(f->n_typed < MAX_TYPED); /* only the test adds */
    pthread_mutex_lock(&f->lock);
    snprintf(f->typed[f->n_typed].type, sizeof f->typed[0].type, "%s", type);
    f->typed[f->n_typed++].answer = answer;
    pthread_mutex_unlock(&f->lock);
}

/* A copy of the last request F received (the caller's), or NULL. */
static json_t *fake_last_request(struct fake *f)
{
    json_t *r;
    pthread_mutex_lock(&f->lock);
    r = json_deep_copy(f->last_request);
    pthread_mutex_unlock(&f->lock);
    return r;
}

static unsigned fake_requests(struct fake *f)
{
    unsigned n;
    pthread_mutex_lock(&f->lock);
    n = f->requests;
    pthread_mutex_unlock(&f->lock);
    return n;
}

static unsigned fake_pings(struct fake *f)
{
    unsigned n;
    pthread_mutex_lock(&f->lock);
    n = f->pings;
    pthread_mutex_unlock(&f->lock);
    return n;
}

static unsigned fake_connections(struct fake *f)
{
    unsigned n;
    pthread_mutex_lock(&f->lock);
    n = f->connections;
    pthread_mutex_unlock(&f->lock);
    return n;
}

static json_t *not_leader(const char *leader_addr)
{
    json_t *e = vg_proto_error(-1, "not_leader", "this node is a follower");
    if (leader_addr != NULL) {
        json_object_set_new(e, "leader",
                            json_pack("{s:i, s:s}", "id", 2, "client_address",
                                      leader_addr));
    }
    return e;
}

static struct vg_client *client_for(struct env *e, const char *seeds)
{
    char errmsg[VG_ERRMSG_SIZE] = "";
    e->c = vg_client_new(seeds, errmsg);
    if (e->c == NULL) {
        fail_msg("vg_client_new(%s): %s", seeds, errmsg);
    }
    return e->c;
}

/* Call with a fresh {"type":"put"} request; returns the code, sets *RESP. */
static int put(struct vg_client *c, json_t **resp, char *errmsg)
{
    json_t *req = json_pack("{s:s, s:s, s:s}", "type", "put", "key", "k",
                            "value", "v");
    int rv = vg_client_call(c, req, resp, errmsg);
    /* The request is borrowed and must come back untouched. */
    assert_null(json_object_get(req, "id"));
    json_decref(req);
    return rv;
}

static const char *served_by(const json_t *resp)
{
    return vg_proto_get_str(resp, "served_by", "(none)");
}

/* ------------------------------------------------------------------ */
/* Client library tests                                                */

static void test_answer_matching(void **state)
{
    struct env *e = *state;
    struct fake *a = fake_start(e, FAKE_ANSWER, "A", NULL);
    char errmsg[VG_ERRMSG_SIZE] = "";
    json_t *resp = NULL;
    int i;

    /* The answer comes only after two more pings, so the client must keep
     * pinging and skip pongs, a push and a foreign answer meanwhile. */
    fake_configure(a, NULL, 2);
    client_for(e, a->addr);
    assert_null(vg_client_current(e->c));
    assert_int_equal(vg_client_set_keepalive(e->c, 20, 1000), VG_OK);
    for (i = 0; i < 3; i++) {
        assert_int_equal(put(e->c, &resp, errmsg), VG_OK);
        assert_string_equal(served_by(resp), "A");
        assert_string_equal(vg_proto_get_str(resp, "type", ""), "ok");
        json_decref(resp);
    }
    assert_int_equal(fake_requests(a), 3);
    assert_true(fake_pings(a) >= 6);
    assert_int_equal(fake_connections(a), 1); /* the connection is reused */
    assert_non_null(vg_client_current(e->c));
    assert_string_equal(vg_client_current(e->c), a->addr);
}

static void test_redirect(void **state)
{
    struct env *e = *state;
    struct fake *b = fake_start(e, FAKE_ANSWER, "B", NULL);
    struct fake *a = fake_start(e, FAKE_ANSWER, "A", not_leader(b->addr));
    char errmsg[VG_ERRMSG_SIZE] = "";
    json_t *resp = NULL;

    client_for(e, a->addr);
    assert_int_equal(put(e->c, &resp, errmsg), VG_OK);
    assert_string_equal(served_by(resp), "B");
    json_decref(resp);
    assert_string_equal(vg_client_current(e->c), b->addr);
    assert_int_equal(fake_requests(a), 1);
    assert_int_equal(fake_requests(b), 1);
}

static void test_no_leader_next_seed(void **state)
{
    struct env *e = *state;
    struct fake *a = fake_start(e, FAKE_ANSWER, "A", not_leader(NULL));
    struct fake *b = fake_start(e, FAKE_ANSWER, "B", NULL);
    char seeds[80];
    char errmsg[VG_ERRMSG_SIZE] = "";
    json_t *resp = NULL;

    snprintf(seeds, sizeof seeds, "%s,%s", a->addr, b->addr);
    client_for(e, seeds);
    assert_int_equal(put(e->c, &resp, errmsg), VG_OK);
    assert_string_equal(served_by(resp), "B");
    json_decref(resp);
    assert_int_equal(fake_requests(a), 1);
    assert_int_equal(fake_requests(b), 1);
}

static void test_refused_seed(void **state)
{
    struct env *e = *state;
    struct fake *b = fake_start(e, FAKE_ANSWER, "B", NULL);
    char dead[32];
    char seeds[80];
    char errmsg[VG_ERRMSG_SIZE] = "";
    json_t *resp = NULL;

    closed_addr(dead, sizeof dead);
    snprintf(seeds, sizeof seeds, "%s, %s", dead, b->addr);
    client_for(e, seeds);
    assert_int_equal(put(e->c, &resp, errmsg), VG_OK);
    assert_string_equal(served_by(resp), "B");
    json_decref(resp);
    assert_string_equal(vg_client_current(e->c), b->addr);
}

static void test_dead_peer(void **state)
{
    struct env *e = *state;
    struct fake *a = fake_start(e, FAKE_SILENT, "A", NULL);
    struct fake *b = fake_start(e, FAKE_ANSWER, "B", NULL);
    char seeds[80];
    char errmsg[VG_ERRMSG_SIZE] = "";
    json_t *resp = NULL;
    uint64_t t0;
    uint64_t took;

    snprintf(seeds, sizeof seeds, "%s,%s", a->addr, b->addr);
    client_for(e, seeds);
    t0 = vg_now_mono_ms();
    assert_int_equal(put(e->c, &resp, errmsg), VG_OK);
    took = vg_now_mono_ms() - t0;
    assert_string_equal(served_by(resp), "B");
    json_decref(resp);
    /* Dead after 1000 ms of silence; generous bound for a loaded machine. */
    assert_true(took >= 900);
    assert_true(took < 4000);
    assert_int_equal(fake_requests(a), 1);
    assert_true(fake_pings(a) >= 2); /* it was pinged while we waited */
    assert_int_equal(fake_requests(b), 1);
    assert_string_equal(vg_client_current(e->c), b->addr);
}

static void test_deadline(void **state)
{
    struct env *e = *state;
    struct fake *a = fake_start(e, FAKE_PONG_ONLY, "A", NULL);
    char errmsg[VG_ERRMSG_SIZE] = "";
    json_t *resp = NULL;
    uint64_t t0;
    uint64_t took;

    /* The node is alive (it pongs) but never answers: no failover, the call
     * ends at its deadline and names the node. */
    client_for(e, a->addr);
    assert_int_equal(vg_client_set_timeout(e->c, 600), VG_OK);
    t0 = vg_now_mono_ms();
    assert_int_equal(put(e->c, &resp, errmsg), VG_ETIMEDOUT);
    took = vg_now_mono_ms() - t0;
    assert_null(resp);
    assert_true(took >= 550);
    assert_true(took < 3000);
    assert_non_null(strstr(errmsg, a->addr));
    assert_int_equal(fake_requests(a), 1);
}

static void test_deadline_all_refused(void **state)
{
    struct env *e = *state;
    char d1[32];
    char d2[32];
    char seeds[80];
    char errmsg[VG_ERRMSG_SIZE] = "";
    json_t *resp = NULL;
    uint64_t t0;
    uint64_t took;

    closed_addr(d1, sizeof d1);
    closed_addr(d2, sizeof d2);
    snprintf(seeds, sizeof seeds, "%s,%s", d1, d2);
    client_for(e, seeds);
    assert_int_equal(vg_client_set_timeout(e->c, 400), VG_OK);
    t0 = vg_now_mono_ms();
    assert_int_equal(put(e->c, &resp, errmsg), VG_EIO);
    took = vg_now_mono_ms() - t0;
    assert_null(resp);
    assert_true(took < 3000);
    assert_non_null(strstr(errmsg, d1));
    assert_non_null(strstr(errmsg, d2));
    assert_null(vg_client_current(e->c));
}

static void test_connection_lost_resend(void **state)
{
    struct env *e = *state;
    struct fake *a = fake_start(e, FAKE_CLOSE_FIRST, "A", NULL);
    char errmsg[VG_ERRMSG_SIZE] = "";
    json_t *resp = NULL;

    client_for(e, a->addr);
    assert_int_equal(put(e->c, &resp, errmsg), VG_OK);
    assert_string_equal(served_by(resp), "A");
    json_decref(resp);
    assert_int_equal(fake_requests(a), 2);
    assert_int_equal(fake_connections(a), 2);
}

static void test_timeout_resent_once(void **state)
{
    struct env *e = *state;
    struct fake *a = fake_start(e, FAKE_TIMEOUT_FIRST, "A", NULL);
    char errmsg[VG_ERRMSG_SIZE] = "";
    json_t *resp = NULL;

    client_for(e, a->addr);
    assert_int_equal(put(e->c, &resp, errmsg), VG_OK);
    assert_string_equal(served_by(resp), "A");
    json_decref(resp);
    assert_int_equal(fake_requests(a), 2);
}

static void test_error_answer_returned(void **state)
{
    struct env *e = *state;
    struct fake *a = fake_start(e, FAKE_ANSWER, "A",
                                vg_proto_error(-1, "busy", "change in progress"));
    char errmsg[VG_ERRMSG_SIZE] = "";
    json_t *resp = NULL;

    client_for(e, a->addr);
    assert_int_equal(put(e->c, &resp, errmsg), VG_OK);
    assert_string_equal(vg_proto_get_str(resp, "type", ""), "error");
    assert_string_equal(vg_proto_get_str(resp, "code", ""), "busy");
    json_decref(resp);
    assert_int_equal(fake_requests(a), 1);
}

static void test_call_at_no_redirect(void **state)
{
    struct env *e = *state;
    struct fake *b = fake_start(e, FAKE_ANSWER, "B", NULL);
    struct fake *a = fake_start(e, FAKE_ANSWER, "A", not_leader(b->addr));
    char dead[32];
    char errmsg[VG_ERRMSG_SIZE] = "";
    json_t *req = vg_proto_request("status", -1);
    json_t *resp = NULL;

    client_for(e, b->addr);
    assert_int_equal(vg_client_call_at(e->c, a->addr, req, &resp, errmsg),
                     VG_OK);
    assert_string_equal(vg_proto_get_str(resp, "code", ""), "not_leader");
    json_decref(resp);
    assert_int_equal(fake_requests(a), 1);
    assert_int_equal(fake_requests(b), 0);
    assert_null(vg_client_current(e->c)); /* temporary connection only */

    closed_addr(dead, sizeof dead);
    resp = NULL;
    assert_int_equal(vg_client_call_at(e->c, dead, req, &resp, errmsg), VG_EIO);
    assert_null(resp);
    assert_non_null(strstr(errmsg, dead));
    assert_int_equal(vg_client_call_at(e->c, "nonsense", req, &resp, errmsg),
                     VG_EINVAL);
    json_decref(req);
}

static void test_bad_seeds(void **state)
{
    static const char *const bad[] = {
        "", "nonsense", "host:", ":7000", "host:0", "host:65536",
        "host:12x", "a:1,,b:2", "a:1,", ",a:1", "[::1", "[::1]7000",
        " , ", "a:1,b",
    };
    char errmsg[VG_ERRMSG_SIZE];
    struct vg_client *c;
    size_t i;

    (void)state;
    errmsg[0] = '\0';
    assert_null(vg_client_new(NULL, errmsg));
    assert_true(errmsg[0] != '\0');
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errmsg[0] = '\0';
        c = vg_client_new(bad[i], errmsg);
        if (c != NULL) {
            vg_client_free(c);
            fail_msg("seeds '%s' were accepted", bad[i]);
        }
        assert_true(errmsg[0] != '\0');
    }

    c = vg_client_new(" 127.0.0.1:7101 ,localhost:7102,[::1]:7103", errmsg);
    assert_non_null(c);
    assert_int_equal(vg_client_seed_count(c), 3);
    assert_string_equal(vg_client_seed(c, 0), "127.0.0.1:7101");
    assert_string_equal(vg_client_seed(c, 2), "[::1]:7103");
    assert_null(vg_client_seed(c, 3));
    assert_int_equal(vg_client_set_timeout(c, 0), VG_EINVAL);
    assert_int_equal(vg_client_set_keepalive(c, 0, 1000), VG_EINVAL);
    assert_int_equal(vg_client_set_keepalive(c, 500, 500), VG_EINVAL);
    assert_int_equal(vg_client_set_keepalive(c, 100, 500), VG_OK);
    vg_client_free(c);
}

/* ------------------------------------------------------------------ */
/* Pushed events                                                       */

static struct fake *events_fake(struct env *e, unsigned burst,
                                unsigned ping_events)
{
    struct fake *f = fake_start(e, FAKE_EVENTS, "A", NULL);
    /* The thread reads these only after a client connected. */
    pthread_mutex_lock(&f->lock);
    f->burst = burst;
    f->ping_events = ping_events;
    pthread_mutex_unlock(&f->lock);
    return f;
}

static long long next_version(struct vg_client *c, unsigned timeout_ms, int *rv)
{
    json_t *ev = NULL;
    char errmsg[VG_ERRMSG_SIZE] = "";
    long long v = -1;
    *rv = vg_client_next_event(c, timeout_ms, &ev, errmsg);
    if (*rv == VG_OK) {
        assert_non_null(ev);
        assert_string_equal(vg_proto_get_str(ev, "type", ""), "event");
        v = vg_proto_get_int(ev, "version", -1);
        json_decref(ev);
    } else {
        assert_null(ev);
        assert_true(errmsg[0] != '\0');
    }
    return v;
}

/* Events that arrive before an answer are kept, in order, and a call is not
 * disturbed by them; waiting for more pings the node, which then pushes. */
static void test_events_queued_and_awaited(void **state)
{
    struct env *e = *state;
    struct fake *f = events_fake(e, 3, 2);
    struct vg_client *c = client_for(e, f->addr);
    json_t *resp = NULL;
    uint64_t t0;
    int rv;

    vg_client_set_keepalive(c, 50, 300);
    assert_int_equal(put(c, &resp, NULL), VG_OK);
    assert_string_equal(served_by(resp), "A");
    json_decref(resp);
    for (long long want = 1; want <= 3; want++) {
        assert_int_equal(next_version(c, 0, &rv), want);
    }
    /* Nothing queued: wait. The pings make the fake push events 4 and 5. */
    t0 = vg_now_mono_ms();
    assert_int_equal(next_version(c, 5000, &rv), 4);
    assert_int_equal(next_version(c, 5000, &rv), 5);
    assert_true(vg_now_mono_ms() - t0 < 4000);
    /* Now the fake goes silent: the peer is declared dead, the connection
     * closed, and the caller told to subscribe again. */
    assert_int_equal(next_version(c, 5000, &rv), -1);
    assert_int_equal(rv, VG_ECLOSED);
    assert_null(vg_client_current(c));
    assert_int_equal(vg_client_events_dropped(c), 0);
}

static void test_events_timeout_and_not_connected(void **state)
{
    struct env *e = *state;
    struct fake *f = fake_start(e, FAKE_ANSWER, "A", NULL);
    struct vg_client *c = client_for(e, f->addr);
    json_t *resp = NULL;
    uint64_t t0;
    int rv;

    assert_int_equal(next_version(c, 100, &rv), -1);
    assert_int_equal(rv, VG_ECLOSED); /* never connected */
    assert_int_equal(put(c, &resp, NULL), VG_OK);
    json_decref(resp);
    /* The plain fake pushes a non-event ("tag_update") with every answer:
     * skipped, not queued. */
    t0 = vg_now_mono_ms();
    assert_int_equal(next_version(c, 300, &rv), -1);
    assert_int_equal(rv, VG_ETIMEDOUT);
    assert_true(vg_now_mono_ms() - t0 >= 300);
    assert_non_null(vg_client_current(c)); /* a timeout keeps the connection */
}

/* A burst larger than the queue keeps the newest; the rest are counted. */
static void test_events_overflow_drops_oldest(void **state)
{
    struct env *e = *state;
    const unsigned burst = VG_CLIENT_EVENT_QUEUE + 44;
    struct fake *f = events_fake(e, burst, 0);
    struct vg_client *c = client_for(e, f->addr);
    json_t *resp = NULL;
    int rv;

    assert_int_equal(put(c, &resp, NULL), VG_OK);
    json_decref(resp);
    assert_int_equal(vg_client_events_dropped(c), 44);
    for (long long want = 44 + 1; want <= burst; want++) {
        assert_int_equal(next_version(c, 0, &rv), want);
    }
    assert_int_equal(next_version(c, 0, &rv), -1);
    assert_int_equal(rv, VG_ETIMEDOUT);
}

/* ------------------------------------------------------------------ */
/* Remembered subscriptions                                            */

static struct fake *subs_fake(struct env *e, const char *name, unsigned image,
                              unsigned burst)
{
    struct fake *f = fake_start(e, FAKE_SUBS, name, NULL);
    pthread_mutex_lock(&f->lock);
    f->image = image;
    f->burst = burst;
    pthread_mutex_unlock(&f->lock);
    return f;
}

static json_t *subscription(const char *type)
{
    if (strcmp(type, "subscribe") == 0) {
        return json_pack("{s:s, s:[s]}", "type", "subscribe", "topics", "project");
    }
    return json_pack("{s:s, s:[s]}", "type", "tags_subscribe", "tags", "T1");
}

/* Subscribe with REQ (consumed) and expect an answer from node SERVED. */
static void subscribe_ok(struct vg_client *c, json_t *req, const char *served)
{
    char errmsg[VG_ERRMSG_SIZE] = "";
    json_t *resp = NULL;
    int rv = vg_client_subscribe(c, req, &resp, errmsg);

    if (rv != VG_OK) {
        fail_msg("vg_client_subscribe: %s: %s", vg_strerror(rv), errmsg);
    }
    assert_null(json_object_get(req, "id")); /* borrowed, untouched */
    assert_string_equal(served_by(resp), served);
    json_decref(resp);
    json_decref(req);
}

static json_t *take_event(struct vg_client *c, unsigned timeout_ms)
{
    char errmsg[VG_ERRMSG_SIZE] = "";
    json_t *ev = NULL;
    int rv = vg_client_next_event(c, timeout_ms, &ev, errmsg);

    if (rv != VG_OK) {
        fail_msg("vg_client_next_event: %s: %s", vg_strerror(rv), errmsg);
    }
    return ev;
}

/* The next event is a tags image frame from node SERVED numbered SEQ (any
 * number if SEQ is 0). */
static void expect_image(struct vg_client *c, const char *served, int seq)
{
    json_t *ev = take_event(c, 5000);

    assert_string_equal(vg_proto_get_str(ev, "topic", ""), "tags");
    assert_string_equal(vg_proto_get_str(ev, "event", ""), "image");
    assert_string_equal(served_by(ev), served);
    if (seq > 0) {
        assert_int_equal(vg_proto_get_int(ev, "seq", -1), seq);
    }
    json_decref(ev);
}

/* The next event is the library's marker for a renewed subscription whose
 * answer of TYPE came from node SERVED at ADDR. */
static void expect_resubscribed(struct vg_client *c, const char *addr,
                                const char *type, const char *served)
{
    json_t *ev = take_event(c, 5000);
    const json_t *answer = json_object_get(ev, "answer");

    assert_string_equal(vg_proto_get_str(ev, "type", ""), "event");
    assert_string_equal(vg_proto_get_str(ev, "topic", ""), "client");
    assert_string_equal(vg_proto_get_str(ev, "event", ""), "resubscribed");
    assert_string_equal(vg_proto_get_str(ev, "address", ""), addr);
    assert_string_equal(vg_proto_get_str(answer, "type", ""), type);
    assert_string_equal(served_by(answer), served);
    json_decref(ev);
}

/* next_event fails with RV within TIMEOUT_MS + slack; returns errmsg's
 * first bytes through WHY. */
static void expect_no_event(struct vg_client *c, unsigned timeout_ms, int want,
                            char *why)
{
    char errmsg[VG_ERRMSG_SIZE] = "";
    json_t *ev = NULL;
    int rv = vg_client_next_event(c, timeout_ms, &ev, errmsg);

    if (rv != want) {
        fail_msg("next_event gave %s (%s), wanted %s", vg_strerror(rv),
                 ev != NULL ? vg_proto_get_str(ev, "event", "?") : errmsg,
                 vg_strerror(want));
    }
    assert_null(ev);
    assert_true(errmsg[0] != '\0');
    if (why != NULL) {
        snprintf(why, VG_ERRMSG_SIZE, "%s", errmsg);
    }
}

/* The node closes the connection: the next wait subscribes again on the
 * other node, and the marker comes before that node's image. */
static void test_subscription_follows_failover(void **state)
{
    struct env *e = *state;
    struct fake *a = subs_fake(e, "A", 2, 0);
    struct fake *b = subs_fake(e, "B", 2, 0);
    char seeds[80];
    uint64_t t0;

    snprintf(seeds, sizeof seeds, "%s,%s", a->addr, b->addr);
    client_for(e, seeds);
    subscribe_ok(e->c, subscription("tags_subscribe"), "A");
    expect_image(e->c, "A", 1);
    expect_image(e->c, "A", 2);

    fake_control(a, CTL_KICK);
    t0 = vg_now_mono_ms();
    expect_resubscribed(e->c, b->addr, "tags_subscribed", "B");
    assert_true(vg_now_mono_ms() - t0 < 4000);
    expect_image(e->c, "B", 1);
    expect_image(e->c, "B", 2);
    expect_no_event(e->c, 100, VG_ETIMEDOUT, NULL);
    assert_string_equal(vg_client_current(e->c), b->addr);
    assert_int_equal(fake_requests(a), 1);
    assert_int_equal(fake_requests(b), 1);
}

/* The node closes the connection right after the image that follows its
 * answer: the image still counts and comes before the marker of the renewal.
 * Whether the client reads the close together with the answer is up to the
 * scheduler, so the scenario runs a few times. */
static void test_events_before_close_delivered(void **state)
{
    struct env *e = *state;
    struct fake *a = subs_fake(e, "A", 2, 0);
    struct fake *b = subs_fake(e, "B", 1, 0);
    char seeds[80];
    int round;

    pthread_mutex_lock(&a->lock);
    a->drop_after_image = true;
    pthread_mutex_unlock(&a->lock);
    snprintf(seeds, sizeof seeds, "%s,%s", a->addr, b->addr);
    for (round = 0; round < 20; round++) {
        client_for(e, seeds);
        subscribe_ok(e->c, subscription("tags_subscribe"), "A");
        expect_image(e->c, "A", 2 * round + 1);
        expect_image(e->c, "A", 2 * round + 2);
        expect_resubscribed(e->c, b->addr, "tags_subscribed", "B");
        expect_image(e->c, "B", round + 1);
        vg_client_free(e->c);
        e->c = NULL;
    }
}

/* The node falls silent (paused, or a cable pulled) while the caller polls
 * with waits shorter than the dead time: the silence still adds up, the
 * node is declared dead and the subscription renewed elsewhere. */
static void test_subscription_dead_peer_short_waits(void **state)
{
    struct env *e = *state;
    struct fake *a = subs_fake(e, "A", 1, 0);
    struct fake *b = subs_fake(e, "B", 1, 0);
    char seeds[80];
    char errmsg[VG_ERRMSG_SIZE];
    json_t *ev = NULL;
    uint64_t t0;
    unsigned pings;
    int waits = 0;
    int rv;

    snprintf(seeds, sizeof seeds, "%s,%s", a->addr, b->addr);
    client_for(e, seeds);
    assert_int_equal(vg_client_set_keepalive(e->c, 50, 400), VG_OK);
    subscribe_ok(e->c, subscription("tags_subscribe"), "A");
    expect_image(e->c, "A", 1);

    /* Alive but quiet: short waits time out, pings keep it alive. */
    pings = fake_pings(a);
    for (waits = 0; waits < 12; waits++) {
        expect_no_event(e->c, 30, VG_ETIMEDOUT, NULL);
    }
    assert_true(fake_pings(a) > pings);

    fake_control(a, CTL_MUTE);
    t0 = vg_now_mono_ms();
    do {
        rv = vg_client_next_event(e->c, 30, &ev, errmsg);
    } while (rv == VG_ETIMEDOUT && vg_now_mono_ms() - t0 < 5000);
    if (rv != VG_OK) {
        fail_msg("next_event: %s: %s", vg_strerror(rv), errmsg);
    }
    assert_true(vg_now_mono_ms() - t0 < 3000);
    assert_string_equal(vg_proto_get_str(ev, "event", ""), "resubscribed");
    assert_string_equal(vg_proto_get_str(ev, "address", ""), b->addr);
    json_decref(ev);
    expect_image(e->c, "B", 1);
}

/* Two subscriptions, and the node says "bye": both are renewed on the other
 * node, each marker where its answer arrived. The image of the first
 * arrives while the second is being sent and must stay between the two
 * markers. */
static void test_resubscription_keeps_arrival_order(void **state)
{
    struct env *e = *state;
    struct fake *a = subs_fake(e, "A", 2, 0);
    struct fake *b = subs_fake(e, "B", 2, 0);
    char seeds[80];
    int i;

    snprintf(seeds, sizeof seeds, "%s,%s", a->addr, b->addr);
    client_for(e, seeds);
    subscribe_ok(e->c, subscription("subscribe"), "A");
    subscribe_ok(e->c, subscription("tags_subscribe"), "A");
    for (i = 1; i <= 4; i++) {
        expect_image(e->c, "A", i);
    }

    fake_control(a, CTL_BYE);
    expect_resubscribed(e->c, b->addr, "subscribed", "B");
    expect_image(e->c, "B", 1);
    expect_image(e->c, "B", 2);
    expect_resubscribed(e->c, b->addr, "tags_subscribed", "B");
    expect_image(e->c, "B", 3);
    expect_image(e->c, "B", 4);
    expect_no_event(e->c, 100, VG_ETIMEDOUT, NULL);
    assert_int_equal(fake_requests(b), 2);
}

/* A call between events followed a redirect to another node: the
 * subscription stayed behind on the old connection, so the next wait
 * renews it where the client now is. */
static void test_resubscription_after_call_reconnected(void **state)
{
    struct env *e = *state;
    struct fake *b = subs_fake(e, "B", 1, 0);
    struct fake *a = subs_fake(e, "A", 1, 0);
    json_t *resp = NULL;

    fake_answer_type(a, "put", not_leader(b->addr));
    client_for(e, a->addr);
    subscribe_ok(e->c, subscription("tags_subscribe"), "A");
    expect_image(e->c, "A", 1);

    assert_int_equal(put(e->c, &resp, NULL), VG_OK);
    assert_string_equal(served_by(resp), "B");
    json_decref(resp);
    assert_string_equal(vg_client_current(e->c), b->addr);

    expect_resubscribed(e->c, b->addr, "tags_subscribed", "B");
    expect_image(e->c, "B", 1);
    expect_no_event(e->c, 100, VG_ETIMEDOUT, NULL);
    assert_int_equal(fake_requests(a), 2); /* tags_subscribe, put */
    assert_int_equal(fake_requests(b), 2); /* put, tags_subscribe */
}

/* More events than the queue holds arrive during a call: the caller's
 * picture has a hole, so the subscription is renewed on a new connection
 * and the stale queue is replaced by the marker and a fresh image. */
static void test_resubscription_after_overflow(void **state)
{
    struct env *e = *state;
    struct fake *a = subs_fake(e, "A", 1, VG_CLIENT_EVENT_QUEUE + 10);
    json_t *resp = NULL;

    client_for(e, a->addr);
    subscribe_ok(e->c, subscription("tags_subscribe"), "A");
    assert_int_equal(put(e->c, &resp, NULL), VG_OK); /* image + burst */
    json_decref(resp);
    assert_int_equal(vg_client_events_dropped(e->c), 11);

    expect_resubscribed(e->c, a->addr, "tags_subscribed", "A");
    expect_image(e->c, "A", 0);
    expect_no_event(e->c, 100, VG_ETIMEDOUT, NULL);
    assert_int_equal(fake_connections(a), 2);
    assert_int_equal(vg_client_events_dropped(e->c), 11);
}

/* Forgetting, an ending request and an error answer all leave nothing to
 * renew: a lost connection is then VG_ECLOSED as without subscriptions. */
static void test_subscriptions_forgotten(void **state)
{
    struct env *e = *state;
    struct fake *a = subs_fake(e, "A", 1, 0);
    struct fake *b = subs_fake(e, "B", 1, 0);
    char seeds[80];
    char why[VG_ERRMSG_SIZE];
    json_t *req;
    json_t *resp = NULL;

    snprintf(seeds, sizeof seeds, "%s,%s", a->addr, b->addr);
    client_for(e, seeds);
    subscribe_ok(e->c, subscription("tags_subscribe"), "A");
    expect_image(e->c, "A", 1);
    vg_client_forget_subscriptions(e->c);
    fake_control(a, CTL_KICK);
    expect_no_event(e->c, 5000, VG_ECLOSED, why);
    assert_non_null(strstr(why, "lost"));
    assert_null(vg_client_current(e->c));
    assert_int_equal(fake_requests(b), 0);

    /* An error answer is not remembered. */
    fake_answer_type(b, "subscribe",
                     vg_proto_error(-1, "invalid", "unknown topic 'projekt'"));
    req = subscription("subscribe");
    assert_int_equal(vg_client_subscribe(e->c, req, &resp, NULL), VG_OK);
    assert_string_equal(vg_proto_get_str(resp, "code", ""), "invalid");
    json_decref(resp);
    json_decref(req);

    /* Subscribe (on B: A was just lost), then end it. */
    subscribe_ok(e->c, subscription("tags_subscribe"), "B");
    expect_image(e->c, "B", 1);
    subscribe_ok(e->c, json_pack("{s:s, s:[], s:[], s:b}", "type", "tags_subscribe",
                                 "tags", "screens", "all", 0),
                 "B");
    expect_image(e->c, "B", 2); /* a node answers "nothing" with an empty image */
    fake_control(b, CTL_KICK);
    expect_no_event(e->c, 5000, VG_ECLOSED, why);
    assert_non_null(strstr(why, "lost"));
    assert_int_equal(fake_requests(a), 1);
    assert_int_equal(fake_requests(b), 3);
}

/* The subscription was lost, and the renewal gets an error answer. */
static void test_resubscription_refused(void **state)
{
    struct env *e = *state;
    struct fake *a = subs_fake(e, "A", 1, 0);
    struct fake *b = subs_fake(e, "B", 1, 0);
    char seeds[80];
    char why[VG_ERRMSG_SIZE];

    fake_answer_type(b, "tags_subscribe",
                     vg_proto_error(-1, "busy", "too many subscribers"));
    snprintf(seeds, sizeof seeds, "%s,%s", a->addr, b->addr);
    client_for(e, seeds);
    subscribe_ok(e->c, subscription("tags_subscribe"), "A");
    expect_image(e->c, "A", 1);
    fake_control(a, CTL_KICK);
    expect_no_event(e->c, 5000, VG_ECLOSED, why);
    assert_non_null(strstr(why, "refused"));
    assert_non_null(strstr(why, "too many subscribers"));
    assert_int_equal(fake_requests(b), 1);
}

/* Nothing to connect to: the renewal gives up at the call deadline with
 * VG_ECLOSED, and the next wait tries again. */
static void test_resubscription_unreachable(void **state)
{
    struct env *e = *state;
    struct fake *a = subs_fake(e, "A", 1, 0);
    char why[VG_ERRMSG_SIZE];
    uint64_t t0;
    uint64_t took;
    int i;

    client_for(e, a->addr);
    assert_int_equal(vg_client_set_timeout(e->c, 500), VG_OK);
    subscribe_ok(e->c, subscription("tags_subscribe"), "A");
    expect_image(e->c, "A", 1);
    fake_control(a, CTL_DOWN);
    for (i = 0; i < 2; i++) {
        t0 = vg_now_mono_ms();
        expect_no_event(e->c, 5000, VG_ECLOSED, why);
        took = vg_now_mono_ms() - t0;
        assert_true(took >= 400);
        assert_true(took < 2500);
        assert_non_null(strstr(why, "cannot subscribe again"));
        assert_non_null(strstr(why, a->addr));
    }
    assert_int_equal(fake_requests(a), 1);
}

/* ------------------------------------------------------------------ */
/* vigilctl                                                            */

static const char *vigilctl_path;

struct run {
    int status; /* exit code, or -1 if it did not exit normally */
    char out[8192];
    char err[8192];
};

/* Run vigilctl with ARGV (NULL-terminated, without argv[0]) and, unless
 * CLUSTER_ENV is NULL, VIGIL_CLUSTER=CLUSTER_ENV; VIGIL_CLUSTER is removed
 * from the environment otherwise. */
static void run_vigilctl(const char *const *args, const char *cluster_env,
                         struct run *r)
{
    char *argv[32];
    char **envp;
    char cluster_var[128];
    int out[2];
    int err[2];
    size_t n_env = 0;
    size_t i;
    size_t n_out = 0;
    size_t n_err = 0;
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int wstatus;
    uint64_t end;
    bool out_open = true;
    bool err_open = true;

    if (vigilctl_path == NULL) {
        skip();
    }
    argv[0] = (char *)vigilctl_path;
    for (i = 0; args[i] != NULL && i + 2 < 32; i++) {
        argv[i + 1] = (char *)args[i];
    }
    argv[i + 1] = NULL;

    for (i = 0; environ[i] != NULL; i++) {
    }
    envp = calloc(i + 2, sizeof *envp);
    assert_non_null(envp);
    for (i = 0; environ[i] != NULL; i++) {
        if (strncmp(environ[i], "VIGIL_CLUSTER=", 14) != 0) {
            envp[n_env++] = environ[i];
        }
    }
    if (cluster_env != NULL) {
        snprintf(cluster_var, sizeof cluster_var, "VIGIL_CLUSTER=%s",
                 cluster_env);
        envp[n_env++] = cluster_var;
    }

    assert_int_equal(pipe(out), 0);
    assert_int_equal(pipe(err), 0);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    posix_spawn_file_actions_addclose(&fa, err[0]);
    assert_int_equal(posix_spawn(&pid, vigilctl_path, &fa, NULL, argv, envp),
                     0);
    posix_spawn_file_actions_destroy(&fa);
    free(envp);
    close(out[1]);
    close(err[1]);

    end = vg_now_mono_ms() + CHILD_LIMIT_MS;
    while ((out_open || err_open) && vg_now_mono_ms() < end) {
        struct pollfd p[2] = {{.fd = out_open ? out[0] : -1, .events = POLLIN},
                              {.fd = err_open ? err[0] : -1, .events = POLLIN}};
        if (poll(p, 2, 1000) <= 0) {
            continue;
        }
        if (p[0].revents != 0) {
            ssize_t k = read(out[0], r->out + n_out, sizeof r->out - 1 - n_out);
            if (k <= 0) {
                out_open = false;
            } else {
                n_out += (size_t)k;
            }
        }
        if (p[1].revents != 0) {
            ssize_t k = read(err[0], r->err + n_err, sizeof r->err - 1 - n_err);
            if (k <= 0) {
                err_open = false;
            } else {
                n_err += (size_t)k;
            }
        }
    }
    r->out[n_out] = '\0';
    r->err[n_err] = '\0';
    close(out[0]);
    close(err[0]);
    if (out_open || err_open) {
        kill(pid, SIGKILL); /* our own child, over its time limit */
    }
    assert_int_equal(waitpid(pid, &wstatus, 0), pid);
    r->status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
}

static void expect_usage_error(const char *const *args, const char *cluster,
                               const char *needle)
{
    struct run r;
    size_t i;

    memset(&r, 0, sizeof r);
    run_vigilctl(args, cluster, &r);
    if (r.status != 2 || strstr(r.err, needle) == NULL) {
        fprintf(stderr, "# vigilctl");
        for (i = 0; args[i] != NULL; i++) {
            fprintf(stderr, " %s", args[i]);
        }
        fail_msg("exit %d, stderr '%s', wanted exit 2 and '%s'", r.status,
                 r.err, needle);
    }
    assert_string_equal(r.out, ""); /* nothing on stdout */
}

static void test_vigilctl_usage_errors(void **state)
{
    static const char *const none[] = {NULL};
    static const char *const unknown_cmd[] = {"frobnicate", NULL};
    static const char *const unknown_sub[] = {"cluster", "explode", NULL};
    static const char *const no_sub[] = {"cluster", NULL};
    static const char *const unknown_opt[] = {"--verbose", "get", "k", NULL};
    static const char *const id_zero[] = {"cluster", "remove", "0", NULL};
    static const char *const id_junk[] = {"cluster", "remove", "12x", NULL};
    static const char *const id_neg[] = {"cluster", "promote", "-3", NULL};
    static const char *const id_neg2[] = {"cluster", "promote", "--", "-3", NULL};
    static const char *const id_huge[] = {"cluster", "remove",
                                          "99999999999999999999", NULL};
    static const char *const rm_missing[] = {"cluster", "remove", NULL};
    static const char *const rm_extra[] = {"cluster", "remove", "1", "2", NULL};
    static const char *const add_short[] = {"cluster", "add", "4", "h:1", NULL};
    static const char *const add_addr[] = {"cluster", "add", "4", "h:1",
                                           "nope", NULL};
    static const char *const demote_role[] = {"cluster", "demote", "3",
                                              "boss", NULL};
    static const char *const transfer_extra[] = {"cluster", "transfer", "1",
                                                 "2", NULL};
    static const char *const status_extra[] = {"cluster", "status", "x", NULL};
    static const char *const put_short[] = {"put", "k", NULL};
    static const char *const get_extra[] = {"get", "k", "v", NULL};
    static const char *const timeout_bad[] = {"--timeout", "abc", "get", "k",
                                              NULL};
    static const char *const timeout_zero[] = {"--timeout=0", "get", "k", NULL};
    static const char *const timeout_missing[] = {"get", "k", "--timeout", NULL};
    static const char *const no_cluster[] = {"get", "k", NULL};
    static const char *const bad_cluster[] = {"--cluster", "garbage", "get",
                                              "k", NULL};
    static const char *const proj_no_sub[] = {"project", NULL};
    static const char *const proj_bad_sub[] = {"project", "publish", NULL};
    static const char *const proj_validate_no_dir[] = {"project", "validate", NULL};
    static const char *const proj_load_extra[] = {"project", "load", "a", "b", NULL};
    static const char *const proj_show_bad[] = {"project", "show", "x1", NULL};
    static const char *const proj_show_zero[] = {"project", "show", "0", NULL};
    static const char *const proj_diff_short[] = {"project", "diff", "1", NULL};
    static const char *const proj_diff_bad[] = {"project", "diff", "1", "two", NULL};
    static const char *const proj_history_extra[] = {"project", "history", "1",
                                                     NULL};
    static const char *const proj_watch_extra[] = {"project", "watch", "now",
                                                   NULL};
    static const char *const comment_elsewhere[] = {"--comment", "why", "get",
                                                    "k", NULL};
    static const char *const comment_missing[] = {"project", "load", "d",
                                                  "--comment", NULL};
    static const char *const proj_load_no_cluster[] = {"project", "load", "d",
                                                       NULL};
    static const char *const tags_no_sub[] = {"tags", NULL};
    static const char *const tags_bad_sub[] = {"tags", "frob", NULL};
    static const char *const tags_read_no_tag[] = {"tags", "read", NULL};
    static const char *const tags_read_empty[] = {"tags", "read", "", NULL};
    static const char *const tags_write_no_tag[] = {"tags", "write", NULL};
    static const char *const tags_write_no_value[] = {"tags", "write", "T", NULL};
    static const char *const tags_write_bad[] = {"tags", "write", "T", "4x", NULL};
    static const char *const tags_write_hex[] = {"tags", "write", "T", "0x10",
                                                 NULL};
    static const char *const tags_write_nan[] = {"tags", "write", "T", "nan", NULL};
    static const char *const tags_write_extra[] = {"tags", "write", "T", "1", "2",
                                                   NULL};
    static const char *const tags_write_neg[] = {"tags", "write", "T", "-1", NULL};
    static const char *const tags_write_user[] = {"tags", "write", "T", "1",
                                                  "--user=", NULL};
    static const char *const tags_watch_nothing[] = {"tags", "watch", NULL};
    static const char *const tags_count_bad[] = {"tags", "watch", "T", "--count",
                                                 "x", NULL};
    static const char *const tags_count_zero[] = {"tags", "watch", "T",
                                                  "--count=0", NULL};
    static const char *const tags_count_missing[] = {"tags", "watch", "T",
                                                     "--count", NULL};
    static const char *const tags_for_bad[] = {"tags", "watch", "--all", "--for",
                                               "1s", NULL};
    static const char *const tags_plc_elsewhere[] = {"--plc", "p", "tags", "read",
                                                     "T", NULL};
    static const char *const tags_screen_elsewhere[] = {"tags", "list", "--screen",
                                                        "s", NULL};
    static const char *const tags_count_elsewhere[] = {"tags", "read", "T",
                                                       "--count", "1", NULL};
    static const char *const tags_list_extra[] = {"tags", "list", "a", "b", NULL};
    static const char *const tags_limit_bad[] = {"tags", "history", "--limit",
                                                 "1001", NULL};
    static const char *const tags_history_extra[] = {"tags", "history", "a", "b",
                                                     NULL};
    static const char *const tags_no_cluster[] = {"tags", "read", "T", NULL};
    (void)state;

    expect_usage_error(none, "127.0.0.1:1", "missing command");
    expect_usage_error(unknown_cmd, "127.0.0.1:1", "unknown command 'frobnicate'");
    expect_usage_error(unknown_sub, "127.0.0.1:1", "unknown subcommand 'explode'");
    expect_usage_error(no_sub, "127.0.0.1:1", "missing subcommand");
    expect_usage_error(unknown_opt, "127.0.0.1:1", "unknown option '--verbose'");
    expect_usage_error(id_zero, "127.0.0.1:1", "ID must be a positive integer, got '0'");
    expect_usage_error(id_junk, "127.0.0.1:1", "got '12x'");
    expect_usage_error(id_neg, "127.0.0.1:1", "unknown option '-3'");
    expect_usage_error(id_neg2, "127.0.0.1:1", "got '-3'");
    expect_usage_error(id_huge, "127.0.0.1:1", "ID must be a positive integer");
    expect_usage_error(rm_missing, "127.0.0.1:1", "cluster remove: missing argument");
    expect_usage_error(rm_extra, "127.0.0.1:1", "cluster remove: too many arguments");
    expect_usage_error(add_short, "127.0.0.1:1", "cluster add: missing argument");
    expect_usage_error(add_addr, "127.0.0.1:1", "bad CLIENT_ADDR");
    expect_usage_error(demote_role, "127.0.0.1:1", "got 'boss'");
    expect_usage_error(transfer_extra, "127.0.0.1:1", "too many arguments");
    expect_usage_error(status_extra, "127.0.0.1:1", "too many arguments");
    expect_usage_error(put_short, "127.0.0.1:1", "put: missing argument");
    expect_usage_error(get_extra, "127.0.0.1:1", "get: too many arguments");
    expect_usage_error(timeout_bad, "127.0.0.1:1", "--timeout must be");
    expect_usage_error(timeout_zero, "127.0.0.1:1", "--timeout must be");
    expect_usage_error(timeout_missing, "127.0.0.1:1", "--timeout needs a value");
    expect_usage_error(no_cluster, NULL, "no cluster given");
    expect_usage_error(bad_cluster, NULL, "bad --cluster");
    expect_usage_error(no_cluster, "x:1,,y:2", "bad VIGIL_CLUSTER");
    expect_usage_error(proj_no_sub, "127.0.0.1:1", "project: missing subcommand");
    expect_usage_error(proj_bad_sub, "127.0.0.1:1", "unknown subcommand 'publish'");
    expect_usage_error(proj_validate_no_dir, NULL,
                       "project validate: missing argument");
    expect_usage_error(proj_load_extra, "127.0.0.1:1", "too many arguments");
    expect_usage_error(proj_show_bad, "127.0.0.1:1", "got 'x1'");
    expect_usage_error(proj_show_zero, "127.0.0.1:1",
                       "VERSION must be a positive integer");
    expect_usage_error(proj_diff_short, "127.0.0.1:1", "missing argument");
    expect_usage_error(proj_diff_bad, "127.0.0.1:1", "got 'two'");
    expect_usage_error(proj_history_extra, "127.0.0.1:1", "too many arguments");
    expect_usage_error(proj_watch_extra, "127.0.0.1:1", "too many arguments");
    expect_usage_error(comment_elsewhere, "127.0.0.1:1",
                       "--comment applies only to 'project load'");
    expect_usage_error(comment_missing, "127.0.0.1:1", "--comment needs a value");
    expect_usage_error(proj_load_no_cluster, NULL, "no cluster given");
    expect_usage_error(tags_no_sub, "127.0.0.1:1", "tags: missing subcommand");
    expect_usage_error(tags_bad_sub, "127.0.0.1:1", "unknown subcommand 'frob'");
    expect_usage_error(tags_read_no_tag, "127.0.0.1:1", "tags read: missing TAG");
    expect_usage_error(tags_read_empty, "127.0.0.1:1", "TAG must not be empty");
    expect_usage_error(tags_write_no_tag, "127.0.0.1:1",
                       "tags write: missing TAG and VALUE");
    expect_usage_error(tags_write_no_value, "127.0.0.1:1",
                       "tags write: missing VALUE");
    expect_usage_error(tags_write_bad, "127.0.0.1:1",
                       "VALUE must be a decimal number, true or false, got '4x'");
    expect_usage_error(tags_write_hex, "127.0.0.1:1", "got '0x10'");
    expect_usage_error(tags_write_nan, "127.0.0.1:1", "got 'nan'");
    expect_usage_error(tags_write_extra, "127.0.0.1:1",
                       "tags write: too many arguments");
    expect_usage_error(tags_write_neg, "127.0.0.1:1", "unknown option '-1'");
    expect_usage_error(tags_write_user, "127.0.0.1:1", "--user must not be empty");
    expect_usage_error(tags_watch_nothing, "127.0.0.1:1",
                       "name at least one TAG, --screen NAME or --all");
    expect_usage_error(tags_count_bad, "127.0.0.1:1",
                       "--count must be a whole number 1..");
    expect_usage_error(tags_count_zero, "127.0.0.1:1", "--count must be");
    expect_usage_error(tags_count_missing, "127.0.0.1:1", "--count needs a value");
    expect_usage_error(tags_for_bad, "127.0.0.1:1", "--for must be");
    expect_usage_error(tags_plc_elsewhere, "127.0.0.1:1",
                       "--plc applies only to 'tags list'");
    expect_usage_error(tags_screen_elsewhere, "127.0.0.1:1",
                       "--screen applies only to 'tags watch'");
    expect_usage_error(tags_count_elsewhere, "127.0.0.1:1",
                       "--count applies only to 'tags watch'");
    expect_usage_error(tags_list_extra, "127.0.0.1:1",
                       "tags list: too many arguments");
    expect_usage_error(tags_limit_bad, "127.0.0.1:1", "--limit must be");
    expect_usage_error(tags_history_extra, "127.0.0.1:1", "too many arguments");
    expect_usage_error(tags_no_cluster, NULL, "no cluster given");
}

static void test_vigilctl_help(void **state)
{
    static const char *const help[] = {"--help", NULL};
    static const char *const cluster_help[] = {"cluster", "--help", NULL};
    struct run r;

    (void)state;
    memset(&r, 0, sizeof r);
    run_vigilctl(help, NULL, &r);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "Usage: vigilctl"));
    memset(&r, 0, sizeof r);
    run_vigilctl(cluster_help, NULL, &r);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "cluster demote ID [standby|spare]"));
    /* The project commands are documented. */
    assert_non_null(strstr(r.out, "project validate DIR"));
    assert_non_null(strstr(r.out, "project load DIR [--comment TEXT]"));
    assert_non_null(strstr(r.out, "project show [VERSION]"));
    assert_non_null(strstr(r.out, "project history"));
    assert_non_null(strstr(r.out, "project diff V1 V2"));
    assert_non_null(strstr(r.out, "project watch"));
    /* So are the tags commands. */
    assert_non_null(strstr(r.out, "tags list [PATTERN] [--plc NAME] [--section NAME]"));
    assert_non_null(strstr(r.out, "tags read TAG..."));
    assert_non_null(strstr(r.out, "tags write TAG VALUE [--user U] [--station S]"));
    assert_non_null(strstr(r.out, "tags watch [TAG...] [--screen NAME]... [--all]"));
    assert_non_null(strstr(r.out, "tags history [TAG] [--limit N]"));
}

static void test_vigilctl_operations(void **state)
{
    struct env *e = *state;
    struct fake *busy = fake_start(e, FAKE_ANSWER, "A",
                                   vg_proto_error(-1, "busy", "change in progress"));
    struct fake *val = fake_start(
        e, FAKE_ANSWER, "B",
        json_pack("{s:s, s:s, s:s, s:i}", "type", "value", "key", "k", "value",
                  "hello world", "applied", 7));
    static const char *remove3[] = {"--cluster", NULL, "cluster", "remove", "3",
                                    NULL};
    static const char *const get_k[] = {"get", "k", NULL};
    static const char *const get_json[] = {"get", "k", "--json", NULL};
    struct run r;

    remove3[1] = busy->addr;
    memset(&r, 0, sizeof r);
    run_vigilctl(remove3, NULL, &r);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "busy"));
    assert_non_null(strstr(r.err, "change in progress"));

    memset(&r, 0, sizeof r);
    run_vigilctl(get_k, val->addr, &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "hello world\n");

    memset(&r, 0, sizeof r);
    run_vigilctl(get_json, val->addr, &r);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "\"value\": \"hello world\""));
}

static void test_vigilctl_status(void **state)
{
    struct env *e = *state;
    struct fake *a;
    char dead[32];
    json_t *st;
    static const char *const status[] = {"cluster", "status", NULL};
    static const char *const status_json[] = {"--json", "cluster", "status",
                                              NULL};
    struct run r;

    closed_addr(dead, sizeof dead);
    a = fake_start(e, FAKE_ANSWER, "A", NULL);
    st = json_pack(
        "{s:s, s:i, s:s, s:s, s:s, s:b, s:i, s:i, s:i, s:i, s:i, s:s,"
        " s:[{s:i, s:s, s:s, s:s}, {s:i, s:s, s:s, s:s}],"
        " s:{s:s, s:i, s:i, s:s}}",
        "type", "status", "node_id", 1, "raft_address", "127.0.0.1:7001",
        "client_address", a->addr, "state", "leader", "ready", 1, "term", 4,
        "commit_index", 120, "applied_index", 120, "last_index", 120,
        "leader_id", 1, "leader_client_address", a->addr, "members", "id", 1,
        "raft_address", "127.0.0.1:7001", "client_address", a->addr, "role",
        "voter", "id", 2, "raft_address", "127.0.0.1:7002", "client_address",
        dead, "role", "standby", "consistency", "verdict", "ok",
        "checkpoint_index", 110, "checked_index", 100, "state_digest", "ab12");
    assert_non_null(st);
    fake_configure(a, st, 0);

    memset(&r, 0, sizeof r);
    run_vigilctl(status, a->addr, &r);
    if (r.status != 0 || strstr(r.out, "unreachable") == NULL ||
        strstr(r.out, "leader: node 1") == NULL ||
        strstr(r.out, "standby") == NULL) {
        fail_msg("exit %d\nstdout:\n%s\nstderr:\n%s", r.status, r.out, r.err);
    }

    memset(&r, 0, sizeof r);
    run_vigilctl(status_json, a->addr, &r);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "\"error\""));
    assert_non_null(strstr(r.out, "\"node_id\": 1"));
}

/* Count the lines of TEXT. */
static int line_count(const char *text)
{
    int n = 0;
    for (; *text != '\0'; text++) {
        n += *text == '\n';
    }
    return n;
}

static void expect_run(const char *const *args, const char *cluster,
                       int status, struct run *r)
{
    memset(r, 0, sizeof *r);
    run_vigilctl(args, cluster, r);
    if (r->status != status) {
        fail_msg("exit %d, wanted %d\nstdout:\n%s\nstderr:\n%s", r->status,
                 status, r->out, r->err);
    }
}

static void test_vigilctl_tags_read_write(void **state)
{
    struct env *e = *state;
    struct fake *rd = fake_start(
        e, FAKE_ANSWER, "R",
        json_pack("{s:s, s:i, s:i, s:[{s:s, s:f, s:s, s:I}, {s:s, s:n, s:s, s:I}]}",
                  "type", "tags_values", "node", 1, "version", 3, "values",
                  "tag", "LT101", "value", 3.25, "quality", "good", "t",
                  (json_int_t)1715000000123, "tag", "P101.run", "value",
                  "quality", "bad_comm", "t", (json_int_t)1715000000456));
    struct fake *bad = fake_start(e, FAKE_ANSWER, "X", NULL);
    struct fake *wr = fake_start(
        e, FAKE_ANSWER, "W",
        json_pack("{s:s, s:s, s:f, s:i, s:i, s:i, s:I}", "type", "tag_written",
                  "tag", "FIC201.sp", "value", 42.5, "action", 212, "term", 4,
                  "node", 1, "written_ms", (json_int_t)1715000000456));
    static const char *const read2[] = {"tags", "read", "LT101", "P101.run", NULL};
    static const char *const read_nope[] = {"tags", "read", "LT101", "NOPE", NULL};
    static const char *const write1[] = {"tags", "write", "FIC201.sp", "42.5",
                                         "--user", "alice", NULL};
    json_t *unknown = vg_proto_error(-1, "invalid", "unknown tag");
    json_t *req;
    char host[256] = "";
    struct run r;

    /* The units come from the project version the leader polls; this node
     * has none, which is said but does not fail the read. */
    fake_answer_type(rd, "project_get",
                     vg_proto_error(-1, "invalid", "no version 3 here"));
    expect_run(read2, rd->addr, 0, &r);
    if (strstr(r.out, "LT101") == NULL || strstr(r.out, "3.25") == NULL ||
        strstr(r.out, " good ") == NULL || strstr(r.out, ".123") == NULL ||
        strstr(r.out, "bad_comm") == NULL || line_count(r.out) != 2 ||
        strstr(r.err, "no version 3 here") == NULL) {
        fail_msg("stdout:\n%s\nstderr:\n%s", r.out, r.err);
    }

    json_object_set_new(unknown, "unknown", json_pack("[s]", "NOPE"));
    fake_configure(bad, unknown, 0);
    expect_run(read_nope, bad->addr, 1, &r);
    assert_non_null(strstr(r.err, "unknown tag"));
    assert_non_null(strstr(r.err, "NOPE"));

    expect_run(write1, wr->addr, 0, &r);
    assert_string_equal(r.out,
                        "FIC201.sp = 42.5 written (action 212, term 4, node 1)\n");
    req = fake_last_request(wr);
    assert_string_equal(vg_proto_get_str(req, "type", ""), "tag_write");
    assert_string_equal(vg_proto_get_str(req, "tag", ""), "FIC201.sp");
    assert_true(json_is_real(json_object_get(req, "value")));
    assert_true(json_real_value(json_object_get(req, "value")) == 42.5);
    assert_string_equal(vg_proto_get_str(req, "user", ""), "alice");
    assert_int_equal(gethostname(host, sizeof host - 1), 0);
    assert_string_equal(vg_proto_get_str(req, "station", ""), host);
    json_decref(req);
}

static void test_vigilctl_tags_watch(void **state)
{
    struct env *e = *state;
    struct fake *b = subs_fake(e, "B", 2, 0);
    struct fake *a = subs_fake(e, "A", 1, 0);
    static const char *const watch_json[] = {"tags", "watch", "--all", "--json",
                                             "--count", "2", NULL};
    static const char *const watch_for[] = {"tags", "watch", "T1", "--for",
                                            "300", NULL};
    static const char *watch3[] = {"--cluster", NULL, "tags", "watch", "T1",
                                   "--screen", "overview", "--count", "3", NULL};
    char seeds[80];
    json_t *req;
    struct run r;
    uint64_t t0;

    /* A closes the connection right after its image: vigilctl prints A's
     * entry, says where it subscribed again, and then B's image. */
    pthread_mutex_lock(&a->lock);
    a->drop_after_image = true;
    pthread_mutex_unlock(&a->lock);
    snprintf(seeds, sizeof seeds, "%s,%s", a->addr, b->addr);
    watch3[1] = seeds;
    expect_run(watch3, NULL, 0, &r);
    if (line_count(r.out) != 3 || strstr(r.out, " T1 1.5 good\n") == NULL ||
        strstr(r.out, " T2 3 good\n") == NULL ||
        strstr(r.err, "resubscribed at") == NULL ||
        strstr(r.err, b->addr) == NULL ||
        strstr(r.err, "(project version 3)") == NULL) {
        fail_msg("stdout:\n%s\nstderr:\n%s", r.out, r.err);
    }
    req = fake_last_request(b);
    assert_string_equal(vg_proto_get_str(req, "type", ""), "tags_subscribe");
    assert_string_equal(json_string_value(json_array_get(
                            json_object_get(req, "screens"), 0)),
                        "overview");
    json_decref(req);

    /* --json: the raw events, one per line. */
    expect_run(watch_json, b->addr, 0, &r);
    assert_int_equal(line_count(r.out), 2);
    assert_non_null(strstr(r.out, "\"topic\":\"tags\""));
    req = fake_last_request(b);
    assert_true(json_is_true(json_object_get(req, "all")));
    json_decref(req);

    /* --for ends a quiet watch in time. */
    t0 = vg_now_mono_ms();
    expect_run(watch_for, b->addr, 0, &r);
    assert_true(vg_now_mono_ms() - t0 < 5000);
    assert_int_equal(line_count(r.out), 2);
}

static void test_vigilctl_tags_history(void **state)
{
    struct env *e = *state;
    struct fake *f = fake_start(
        e, FAKE_ANSWER, "H",
        json_pack("{s:s, s:i, s:i, s:[{s:i, s:s, s:s, s:f, s:s, s:s, s:I,"
                  " s:s, s:n}]}",
                  "type", "actions", "node", 2, "applied_index", 300, "actions",
                  "action", 212, "kind", "setpoint", "tag", "FIC201.sp", "value",
                  42.5, "user", "alice", "station", "cr-1", "time_ms",
                  (json_int_t)1715000000400, "outcome", "written", "message"));
    static const char *const history[] = {"tags", "history", "FIC201.sp",
                                          "--limit", "20", NULL};
    json_t *req;
    struct run r;

    expect_run(history, f->addr, 0, &r);
    if (strstr(r.out, "212") == NULL || strstr(r.out, "alice") == NULL ||
        strstr(r.out, "cr-1") == NULL || strstr(r.out, "written") == NULL ||
        strstr(r.out, "42.5") == NULL || line_count(r.out) != 2) {
        fail_msg("stdout:\n%s\nstderr:\n%s", r.out, r.err);
    }
    req = fake_last_request(f);
    assert_string_equal(vg_proto_get_str(req, "type", ""), "actions");
    assert_int_equal(vg_proto_get_int(req, "limit", 0), 20);
    assert_string_equal(vg_proto_get_str(req, "tag", ""), "FIC201.sp");
    json_decref(req);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_answer_matching, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redirect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_leader_next_seed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_seed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_peer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline_all_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_lost_resend, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_resent_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_answer_returned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_at_no_redirect, setup, teardown),
        cmocka_unit_test(test_bad_seeds),
        cmocka_unit_test_setup_teardown(test_events_queued_and_awaited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_timeout_and_not_connected, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_events_overflow_drops_oldest, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_subscription_follows_failover, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_events_before_close_delivered, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_subscription_dead_peer_short_waits,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_resubscription_keeps_arrival_order,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_resubscription_after_call_reconnected,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_resubscription_after_overflow, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_subscriptions_forgotten, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_resubscription_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_resubscription_unreachable, setup,
                                        teardown),
        cmocka_unit_test(test_vigilctl_usage_errors),
        cmocka_unit_test(test_vigilctl_help),
        cmocka_unit_test_setup_teardown(test_vigilctl_operations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vigilctl_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vigilctl_tags_read_write, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_vigilctl_tags_watch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vigilctl_tags_history, setup,
                                        teardown),
    };

    vigilctl_path = argc > 1 ? argv[1] : getenv("VIGILCTL");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
