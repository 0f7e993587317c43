/* Tests of the client library against fake vigild nodes, and of vigilctl's
 * argument handling by running the built binary (its path is argv[1]).
 *
 * A fake node is a thread with a listening socket on 127.0.0.1 (port 0)
 * speaking the real frame format through proto/. It answers pings with
 * pongs and every other request according to its mode. Tests synchronise on
 * what the fakes saw (request and ping counters), never on sleeps; time is
 * only measured to check upper bounds. Each test's teardown stops its fakes
 * (joining their threads and closing every socket) even when it failed. */
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
};

struct fake_conn {
    int fd;
    struct vg_proto_decoder dec;
    long long pending; /* request id waiting for pings, or -1 */
    unsigned pings_since;
};

struct fake {
    int listen_fd;
    int wake[2]; /* pipe: a byte asks the thread to stop */
    pthread_t thread;
    char addr[32];
    enum fake_mode mode;
    struct fake_conn conns[MAX_CONNS]; /* the thread's own */
    pthread_mutex_t lock;    /* guards everything below */
    json_t *answer;          /* template; its "id" is set per request */
    unsigned answer_after;   /* answer only after this many further pings */
    unsigned requests;       /* non-ping requests received */
    unsigned pings;
    unsigned connections;
    unsigned burst;          /* FAKE_EVENTS, set before the thread starts */
    unsigned ping_events;
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

static void fake_answer(struct fake *f, int fd, long long id)
{
    json_t *a;
    json_t *noise;

    pthread_mutex_lock(&f->lock);
    a = json_deep_copy(f->answer);
    pthread_mutex_unlock(&f->lock);

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
            fake_answer(f, k->fd, k->pending);
            k->pending = -1;
        }
        return true;
    }

    pthread_mutex_lock(&f->lock);
    n = ++f->requests;
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
    case FAKE_ANSWER:
        break;
    }
    if (fake_after(f) > 0) {
        k->pending = id;
        k->pings_since = 0;
    } else {
        fake_answer(f, k->fd, id);
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
            break;
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
    close(f->listen_fd);
    json_decref(f->answer);
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
    f->answer = answer != NULL
                    ? answer
                    : json_pack("{s:s, s:s}", "type", "ok", "served_by", name);
    for (i = 0; i < MAX_CONNS; i++) {
        f->conns[i].fd = -1;
    }
    pthread_mutex_init(&f->lock, NULL);
    f->listen_fd = listen_any(&port, true);
    snprintf(f->addr, sizeof f->addr, "127.0.0.1:%d", port);
    assert_int_equal(pipe(f->wake), 0);
    assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
    e->fakes[e->n++] = f;
    return f;
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
    struct fake *f = events_fake(e, 300, 0);
    struct vg_client *c = client_for(e, f->addr);
    json_t *resp = NULL;
    int rv;

    assert_int_equal(put(c, &resp, NULL), VG_OK);
    json_decref(resp);
    assert_int_equal(vg_client_events_dropped(c), 300 - 256);
    for (long long want = 300 - 256 + 1; want <= 300; want++) {
        assert_int_equal(next_version(c, 0, &rv), want);
    }
    assert_int_equal(next_version(c, 0, &rv), -1);
    assert_int_equal(rv, VG_ETIMEDOUT);
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
        cmocka_unit_test(test_vigilctl_usage_errors),
        cmocka_unit_test(test_vigilctl_help),
        cmocka_unit_test_setup_teardown(test_vigilctl_operations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vigilctl_status, setup, teardown),
    };

    vigilctl_path = argc > 1 ? argv[1] : getenv("VIGILCTL");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
