/* vigild's view of the other members' replicas: the ready leader asks every
 * other member of the raft configuration for its consistency verdict, so
 * that a diverged follower raises its system alarm $replica.ID on the
 * operator stations (alarm_duty.c) instead of only writing "REPLICA
 * DIVERGED" into its own log.
 *
 * Why over the client protocol. Each node compares its replica with the
 * leader's at every consistency checkpoint (replication/fsm.c) and reports
 * the verdict in its `status` answer (MESSAGES.md). `status` needs no login
 * and any node answers it from its own replica, so the leader asks the same
 * question vigilctl asks, at the member's client address, with the framing
 * of proto/. Nothing new is replicated and raft's traffic is not touched.
 *
 * Happy path. While this node is the ready leader, node_peers_update (every
 * loop iteration; the node's timer makes one at least every 20 ms) keeps one
 * peer per other member of the configuration (synchronised every
 * SYNC_EVERY_MS). A peer connects (uv_tcp_connect), reads, and sends
 * {"type":"status"} at once and then every ASK_EVERY_MS on the same
 * connection (or every half client idle timeout, when that is shorter: the
 * member would otherwise close a connection on which nothing arrived; the
 * nodes of a cluster run with the same flags). After a checkpoint was applied here it asks every ASK_SOON_MS
 * for SOON_WINDOW_MS, until the member reports an applied index at or past
 * that checkpoint (its verdict then covers the comparison that checkpoint
 * carried). The answer's verdict, checked index, message and the time of
 * the answer are recorded; the connection stays open for the next question.
 *
 * Failure modes. A connect that does not complete within
 * CONNECT_TIMEOUT_MS, a question not answered within ANSWER_TIMEOUT_MS, a
 * read or write error, the member closing the connection (it shuts down,
 * or drops us after its idle timeout), a frame that does not decode, or an
 * answer that comes from another node than the one asked (an address reused
 * by another node): the connection is closed, the reason kept in the peer's
 * `error`, and a new connection is tried after a back-off that doubles from
 * BACKOFF_MIN_MS to BACKOFF_MAX_MS and starts over after an answer. The
 * last verdict is kept meanwhile: an unreachable member does not change its
 * replica alarm (its $node.ID alarm covers that). An `error` answer is
 * recorded and asked again at the next period. A member whose client
 * address changed is reconnected; a member that left the configuration is
 * dropped. Addresses must be numeric IP addresses, as vigild requires for
 * the addresses it binds and announces; another one is reported as the
 * peer's error, never resolved on the loop.
 *
 * Readiness. Losing readiness (or shutdown) drops every peer and what it
 * learnt: a later term starts from nothing, and until a member answers its
 * replica alarm keeps the committed state. Nothing is ever sent or read on
 * a node that is not the ready leader.
 *
 * Ownership. node_peers_init allocates n->peers, node_peers_close frees it
 * (after dropping the peers). A peer is malloc'd; once its TCP handle is
 * initialised it is freed only in the handle's close callback, which libuv
 * runs after the callbacks of its connect and write requests (these get
 * UV_ECANCELED). A dropped peer is unlinked at once and marked dead, so its
 * close callback touches nothing but the peer itself; the module may be
 * freed before it runs. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define ASK_EVERY_MS 2000u
#define ASK_SOON_MS 100u
#define SOON_WINDOW_MS 2000u
#define CONNECT_TIMEOUT_MS 1000u
#define ANSWER_TIMEOUT_MS 1000u
#define BACKOFF_MIN_MS 100u
#define BACKOFF_MAX_MS 5000u
#define SYNC_EVERY_MS 250u

enum peer_state {
    PEER_IDLE,       /* no handle: waiting for next_connect_ms */
    PEER_CONNECTING, /* handle open, connect request pending */
    PEER_CONNECTED,  /* reading; at most one question in flight */
    PEER_CLOSING,    /* uv_close called, close callback to come */
};

struct peer {
    struct node_peers *ps; /* the module; valid while the peer is not dead */
    struct peer *next;
    uint64_t id;
    char address[VG_NODE_ADDR_SIZE]; /* client address; "" when unknown */
    enum peer_state state;
    bool dead; /* dropped: the close callback frees it */
    uv_tcp_t tcp;
    uv_connect_t connect;
    struct vg_proto_decoder dec; /* initialised while the handle is open */
    uint64_t deadline_ms;        /* connect or answer deadline (monotonic) */
    uint64_t next_connect_ms;    /* back-off (monotonic) */
    unsigned backoff_ms;
    uint64_t asked_ms;           /* when the last question was sent */
    long long asked_id;          /* id of the question in flight, -1 none */
    long long next_id;
    /* What the member said last (since this node became ready). */
    bool answered;
    int verdict;                 /* enum vg_verdict */
    uint64_t checked_index;
    uint64_t applied_index;
    unsigned apply_level;        /* 1 when the answer had none */
    uint64_t answered_ms;        /* wall clock of the last answer */
    char message[VG_ERRMSG_SIZE];
    char error[VG_ERRMSG_SIZE];  /* why the last attempt failed; "" if it did not */
};

struct node_peers {
    struct node *n;
    struct peer *head;
    uint64_t next_sync_ms;
    uint64_t soon_index;    /* the latest checkpoint applied here */
    uint64_t soon_until_ms; /* ask every ASK_SOON_MS until then */
};

/* A question on its way out; freed in its write callback. */
struct peer_write {
    uv_write_t req;
    struct peer *p;
    char *data;
};

static void peer_closed_cb(uv_handle_t *h)
{
    struct peer *p = h->data;
    vg_proto_decoder_close(&p->dec);
    if (p->dead) {
        free(p);
        return;
    }
    p->state = PEER_IDLE;
}

/* Close P's connection (when it has one); a new one is tried after
 * DELAY_MS. */
static void peer_disconnect(struct peer *p, uint64_t now, unsigned delay_ms)
{
    p->asked_id = -1;
    p->deadline_ms = 0;
    p->next_connect_ms = now + delay_ms;
    if (p->state == PEER_CONNECTING || p->state == PEER_CONNECTED) {
        p->state = PEER_CLOSING;
        uv_close((uv_handle_t *)&p->tcp, peer_closed_cb);
    }
}

/* The attempt failed: say why, close, and back off. */
static void peer_fail(struct node_peers *ps, struct peer *p, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void peer_fail(struct node_peers *ps, struct peer *p, const char *fmt, ...)
{
    va_list ap;
    bool first = p->error[0] == '\0';

    va_start(ap, fmt);
    vsnprintf(p->error, sizeof p->error, fmt, ap);
    va_end(ap);
    /* One line per outage, not one per retry. */
    if (first) {
        node_log(ps->n, "peers: node %llu: %s", (unsigned long long)p->id, p->error);
    }
    peer_disconnect(p, vg_now_mono_ms(), p->backoff_ms);
    p->backoff_ms = p->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
                                                       : p->backoff_ms * 2;
}

/* Unlinked by the caller; freed now or by its close callback. */
static void peer_drop(struct peer *p)
{
    p->dead = true;
    if (p->state == PEER_IDLE) {
        free(p);
    } else if (p->state != PEER_CLOSING) {
        p->state = PEER_CLOSING;
        uv_close((uv_handle_t *)&p->tcp, peer_closed_cb);
    }
    /* PEER_CLOSING: the pending close callback sees dead and frees it. */
}

static void drop_all(struct node_peers *ps)
{
    while (ps->head != NULL) {
        struct peer *p = ps->head;
        ps->head = p->next;
        peer_drop(p);
    }
    ps->soon_index = 0;
    ps->soon_until_ms = 0;
    ps->next_sync_ms = 0;
}

/* ------------------------------------------------------------ answers */

static int verdict_of(const char *name)
{
    if (name != NULL && strcmp(name, vg_verdict_name(VG_VERDICT_OK)) == 0) {
        return VG_VERDICT_OK;
    }
    if (name != NULL && strcmp(name, vg_verdict_name(VG_VERDICT_DIVERGED)) == 0) {
        return VG_VERDICT_DIVERGED;
    }
    return VG_VERDICT_UNKNOWN;
}

static void peer_answer(struct node_peers *ps, struct peer *p, json_t *msg)
{
    const char *type = vg_proto_get_str(msg, "type", "");
    long long id = vg_proto_get_int(msg, "id", -1);
    const json_t *cons;
    int verdict;

    if (p->asked_id < 0 || id != p->asked_id) {
        return; /* a push (e.g. "bye" before it closes): not our answer */
    }
    p->asked_id = -1;
    p->deadline_ms = 0;
    if (strcmp(type, "status") != 0) {
        snprintf(p->error, sizeof p->error, "status answered %.32s: %.160s", type,
                 vg_proto_get_str(msg, "message", ""));
        return;
    }
    if (vg_proto_get_int(msg, "node_id", -1) != (long long)p->id) {
        peer_fail(ps, p, "%s answers as node %lld, not node %llu", p->address,
                  vg_proto_get_int(msg, "node_id", -1), (unsigned long long)p->id);
        return;
    }
    cons = json_object_get(msg, "consistency");
    verdict = verdict_of(vg_proto_get_str(cons, "verdict", NULL));
    if (verdict != VG_VERDICT_UNKNOWN && (!p->answered || verdict != p->verdict)) {
        node_log(ps->n, "peers: node %llu reports its replica %s: %.200s",
                 (unsigned long long)p->id, vg_verdict_name(verdict),
                 vg_proto_get_str(cons, "message", ""));
    }
    p->answered = true;
    p->verdict = verdict;
    p->checked_index = (uint64_t)vg_proto_get_int(cons, "checked_index", 0);
    p->applied_index = (uint64_t)vg_proto_get_int(msg, "applied_index", 0);
    {
        long long level = vg_proto_get_int(msg, "apply_level", 1);
        /* Garbage counts as the lowest level: it never raises the cluster. */
        p->apply_level = level >= 1 && level <= INT32_MAX ? (unsigned)level : 1;
    }
    p->answered_ms = vg_now_wall_ms();
    snprintf(p->message, sizeof p->message, "%s",
             vg_proto_get_str(cons, "message", ""));
    p->error[0] = '\0';
    p->backoff_ms = BACKOFF_MIN_MS;
}

/* ------------------------------------------------------------ I/O */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    /* The loop is single-threaded and read_cb copies into the decoder at
     * once: one buffer serves every peer. */
    static char chunk[65536];
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(chunk, sizeof chunk);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct peer *p = s->data;
    struct node_peers *ps = p->ps;
    char errmsg[VG_ERRMSG_SIZE];
    json_t *msg;
    int rv;

    if (p->state != PEER_CONNECTED) {
        return; /* closing (maybe dead: then PS must not be used) */
    }
    if (nread < 0) {
        peer_fail(ps, p, "%s: %s", p->address,
                  nread == UV_EOF ? "the node closed the connection"
                                  : uv_strerror((int)nread));
        return;
    }
    if (nread == 0) {
        return;
    }
    if (vg_proto_decoder_feed(&p->dec, buf->base, (size_t)nread) != VG_OK) {
        peer_fail(ps, p, "out of memory reading from %s", p->address);
        return;
    }
    while (p->state == PEER_CONNECTED) {
        msg = NULL;
        rv = vg_proto_decoder_next(&p->dec, &msg, NULL, errmsg);
        if (rv == VG_EAGAIN) {
            break;
        }
        if (rv != VG_OK) {
            peer_fail(ps, p, "%s sent a bad frame: %s", p->address, errmsg);
            break;
        }
        peer_answer(ps, p, msg);
        json_decref(msg);
    }
}

static void write_cb(uv_write_t *req, int status)
{
    struct peer_write *w = (struct peer_write *)req;
    struct peer *p = w->p;
    free(w->data);
    free(w);
    /* The peer lives until its close callback, which comes after this. */
    if (status < 0 && p->state == PEER_CONNECTED) {
        peer_fail(p->ps, p, "%s: write: %s", p->address, uv_strerror(status));
    }
}

static void ask(struct node_peers *ps, struct peer *p, uint64_t now)
{
    struct peer_write *w;
    json_t *q = vg_proto_request("status", p->next_id);
    char *data = NULL;
    size_t len = 0;
    uv_buf_t buf;

    /* Brief: the full answer reads the member's archive (tens to hundreds
     * of ms of a thread of its pool at 20 000 tags and a few million
     * samples, at most two at a time), and after a checkpoint the member
     * is asked every ASK_SOON_MS. */
    if (q != NULL) {
        json_object_set_new(q, "brief", json_true());
    }
    if (q == NULL || vg_proto_encode(q, &data, &len) != VG_OK ||
        (w = malloc(sizeof *w)) == NULL) {
        json_decref(q);
        free(data);
        peer_fail(ps, p, "out of memory");
        return;
    }
    json_decref(q);
    w->p = p;
    w->data = data;
    buf = uv_buf_init(data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&p->tcp, &buf, 1, write_cb) != 0) {
        free(data);
        free(w);
        peer_fail(ps, p, "%s: cannot write", p->address);
        return;
    }
    p->asked_id = p->next_id++;
    p->asked_ms = now;
    p->deadline_ms = now + ANSWER_TIMEOUT_MS;
}

static void connect_cb(uv_connect_t *req, int status)
{
    struct peer *p = req->data;
    struct node_peers *ps = p->ps;
    int rv;

    if (status == UV_ECANCELED || p->state != PEER_CONNECTING) {
        return; /* closed meanwhile (maybe dead: then PS must not be used) */
    }
    if (status < 0) {
        peer_fail(ps, p, "cannot connect to %s: %s", p->address, uv_strerror(status));
        return;
    }
    uv_tcp_nodelay(&p->tcp, 1);
    rv = uv_read_start((uv_stream_t *)&p->tcp, alloc_cb, read_cb);
    if (rv != 0) {
        peer_fail(ps, p, "%s: %s", p->address, uv_strerror(rv));
        return;
    }
    p->state = PEER_CONNECTED;
    p->deadline_ms = 0;
    ask(ps, p, vg_now_mono_ms());
}

static void peer_connect(struct node_peers *ps, struct peer *p, uint64_t now)
{
    struct sockaddr_storage sa;
    char host[VG_NODE_ADDR_SIZE];
    int port, rv;

    memset(&sa, 0, sizeof sa);
    if (vg_addr_parse(p->address, host, sizeof host, &port, NULL) != VG_OK ||
        (uv_ip4_addr(host, port, (struct sockaddr_in *)&sa) != 0 &&
         uv_ip6_addr(host, port, (struct sockaddr_in6 *)&sa) != 0)) {
        snprintf(p->error, sizeof p->error,
                 "client address %.100s is not a numeric IP address and port",
                 p->address);
        p->next_connect_ms = now + BACKOFF_MAX_MS;
        return;
    }
    rv = uv_tcp_init(&ps->n->loop, &p->tcp);
    if (rv != 0) {
        snprintf(p->error, sizeof p->error, "%s", uv_strerror(rv));
        p->next_connect_ms = now + BACKOFF_MAX_MS;
        return;
    }
    p->tcp.data = p;
    p->connect.data = p;
    vg_proto_decoder_init(&p->dec);
    p->state = PEER_CONNECTING;
    p->deadline_ms = now + CONNECT_TIMEOUT_MS;
    rv = uv_tcp_connect(&p->connect, &p->tcp, (struct sockaddr *)&sa, connect_cb);
    if (rv != 0) {
        /* Reported here only: no callback follows a failed start. */
        peer_fail(ps, p, "cannot connect to %s: %s", p->address, uv_strerror(rv));
    }
}

/* ------------------------------------------------------------ the duty */

static struct peer *find(struct node_peers *ps, uint64_t id)
{
    struct peer *p = ps->head;
    while (p != NULL && p->id != id) {
        p = p->next;
    }
    return p;
}

/* One peer per other member of the configuration, with its current client
 * address. */
static void sync_members(struct node_peers *ps, uint64_t now)
{
    struct node *n = ps->n;
    const struct raft_configuration *conf = &n->raft.configuration;
    struct peer **pp;

    for (unsigned i = 0; i < conf->n; i++) {
        uint64_t id = conf->servers[i].id;
        char addr[VG_NODE_ADDR_SIZE];
        struct peer *p;

        if (id == n->cfg->id) {
            continue;
        }
        if (vg_repl_fsm_node_client_address(&n->fsm, id, addr, sizeof addr) != VG_OK) {
            addr[0] = '\0';
        }
        p = find(ps, id);
        if (p == NULL) {
            p = calloc(1, sizeof *p);
            if (p == NULL) {
                continue; /* tried again at the next sync */
            }
            p->ps = ps;
            p->id = id;
            p->state = PEER_IDLE;
            p->backoff_ms = BACKOFF_MIN_MS;
            p->asked_id = -1;
            p->next_id = 1;
            p->verdict = VG_VERDICT_UNKNOWN;
            p->next = ps->head;
            ps->head = p;
        }
        if (strcmp(p->address, addr) != 0) {
            snprintf(p->address, sizeof p->address, "%s", addr);
            peer_disconnect(p, now, 0);
            p->backoff_ms = BACKOFF_MIN_MS;
            p->error[0] = '\0';
        }
        if (addr[0] == '\0') {
            snprintf(p->error, sizeof p->error, "no client address known");
        }
    }
    /* Members that left. */
    pp = &ps->head;
    while (*pp != NULL) {
        struct peer *p = *pp;
        bool member = false;
        for (unsigned i = 0; i < conf->n && !member; i++) {
            member = conf->servers[i].id == p->id;
        }
        if (member) {
            pp = &p->next;
        } else {
            *pp = p->next;
            peer_drop(p);
        }
    }
}

static uint64_t ask_every_ms(const struct node *n)
{
    unsigned half_idle = n->cfg->client_idle_timeout_ms / 2;
    return half_idle < ASK_EVERY_MS ? half_idle : ASK_EVERY_MS;
}

static void drive(struct node_peers *ps, struct peer *p, uint64_t now)
{
    uint64_t due;

    switch (p->state) {
    case PEER_IDLE:
        if (p->address[0] != '\0' && now >= p->next_connect_ms) {
            peer_connect(ps, p, now);
        }
        break;
    case PEER_CONNECTING:
        if (now >= p->deadline_ms) {
            peer_fail(ps, p, "no connection to %s within %u ms", p->address,
                      CONNECT_TIMEOUT_MS);
        }
        break;
    case PEER_CONNECTED:
        if (p->asked_id >= 0) {
            if (now >= p->deadline_ms) {
                peer_fail(ps, p, "%s did not answer within %u ms", p->address,
                          ANSWER_TIMEOUT_MS);
            }
            break;
        }
        due = p->asked_ms + ask_every_ms(ps->n);
        if (now < ps->soon_until_ms && p->applied_index < ps->soon_index &&
            p->asked_ms + ASK_SOON_MS < due) {
            due = p->asked_ms + ASK_SOON_MS;
        }
        if (now >= due) {
            ask(ps, p, now);
        }
        break;
    case PEER_CLOSING:
        break;
    }
}

void node_peers_update(struct node *n)
{
    struct node_peers *ps = n->peers;
    uint64_t now;

    if (ps == NULL) {
        return;
    }
    if (!n->lead.ready || n->stopping) {
        if (ps->head != NULL) {
            drop_all(ps);
        }
        return;
    }
    now = vg_now_mono_ms();
    if (now >= ps->next_sync_ms) {
        ps->next_sync_ms = now + SYNC_EVERY_MS;
        sync_members(ps, now);
    }
    /* drive may close a peer's handle, never unlink or free it. */
    for (struct peer *p = ps->head; p != NULL; p = p->next) {
        drive(ps, p, now);
    }
}

void node_peers_checkpoint_applied(struct node *n, uint64_t index)
{
    struct node_peers *ps = n->peers;
    if (ps == NULL || !n->lead.ready) {
        return;
    }
    ps->soon_index = index;
    ps->soon_until_ms = vg_now_mono_ms() + SOON_WINDOW_MS;
}

void node_peers_leadership_lost(struct node *n)
{
    if (n->peers != NULL) {
        drop_all(n->peers);
    }
}

int node_peers_verdict(struct node *n, uint64_t id)
{
    struct peer *p = n->peers != NULL ? find(n->peers, id) : NULL;
    return p != NULL && p->answered ? p->verdict : VG_VERDICT_UNKNOWN;
}

unsigned node_peers_apply_level(struct node *n, uint64_t id)
{
    struct peer *p = n->peers != NULL ? find(n->peers, id) : NULL;
    return p != NULL && p->answered ? p->apply_level : 0;
}

json_t *node_peers_member_json(struct node *n, uint64_t id)
{
    struct peer *p = n->peers != NULL ? find(n->peers, id) : NULL;
    json_t *o;

    if (p == NULL) {
        return NULL;
    }
    o = json_pack("{sssIsIsssb}", "verdict",
                  p->answered ? vg_verdict_name(p->verdict)
                              : vg_verdict_name(VG_VERDICT_UNKNOWN),
                  "checked_index", (json_int_t)p->checked_index, "applied_index",
                  (json_int_t)p->applied_index, "message",
                  p->answered ? p->message : "not answered yet", "reachable",
                  p->state == PEER_CONNECTED);
    if (o == NULL) {
        return NULL;
    }
    json_object_set_new(o, "answered_ms",
                        p->answered ? json_integer((json_int_t)p->answered_ms)
                                    : json_null());
    json_object_set_new(o, "error", p->error[0] != '\0' ? json_string(p->error)
                                                        : json_null());
    json_object_set_new(o, "apply_level", p->answered
                                              ? json_integer((json_int_t)p->apply_level)
                                              : json_null());
    return o;
}

int node_peers_init(struct node *n)
{
    struct node_peers *ps = calloc(1, sizeof *ps);
    if (ps == NULL) {
        return VG_ENOMEM;
    }
    ps->n = n;
    n->peers = ps;
    return VG_OK;
}

void node_peers_close(struct node *n)
{
    struct node_peers *ps = n->peers;
    if (ps == NULL) {
        return;
    }
    drop_all(ps);
    n->peers = NULL;
    free(ps);
}
