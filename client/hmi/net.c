/* The station's network threads (net.h). */
#include "net.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <glib.h>

#include "../../proto/proto.h"
#include "../fetch.h"

/* What the main thread may still be handed after hmi_net_stop(): deliveries
 * hold a reference and check CLOSED, so nothing reaches freed callbacks. */
struct gate {
    gint refs;
    gboolean closed; /* main thread only */
};

struct job {
    hmi_job_fn fn;
    void *arg;
    void (*free_arg)(void *);
    hmi_done_fn done;
    void *ud;
    json_t *answer;
    char errmsg[VG_ERRMSG_SIZE];
    struct gate *gate;
};

struct parsed {
    struct vg_project_files fs;
    struct vg_project *p;
    struct vg_diags d;
};

struct delivery {
    struct hmi_net_event ev;
    char text[VG_ERRMSG_SIZE];
    hmi_net_event_fn fn;
    void *ud;
    struct gate *gate;
};

struct hmi_net {
    char *seeds;
    hmi_net_event_fn event_fn;
    void *ud;
    struct gate *gate;
    GThread *live, *worker;
    GMutex mu;
    GCond cond;     /* jobs queued or stop */
    bool stop;      /* under MU */
    GQueue jobs;    /* struct job *, under MU */
    /* What to watch, under MU; GEN counts changes. */
    char *screen;
    char **tags;
    size_t n_tags;
    unsigned gen;
};

static int64_t wall_ms(void)
{
    return (int64_t)vg_now_wall_ms();
}

static struct gate *gate_ref(struct gate *g)
{
    g_atomic_int_inc(&g->refs);
    return g;
}

static void gate_unref(struct gate *g)
{
    if (g_atomic_int_dec_and_test(&g->refs)) {
        g_free(g);
    }
}

void hmi_net_project_free(struct vg_project *p, void *owner)
{
    struct parsed *pp = owner;
    (void)p;
    if (pp != NULL) {
        vg_project_free(pp->p);
        vg_diags_free(&pp->d);
        vg_project_files_free(&pp->fs);
        free(pp);
    }
}

static gboolean deliver_event(gpointer p)
{
    struct delivery *d = p;

    if (!d->gate->closed) {
        d->ev.text = d->text;
        d->fn(&d->ev, d->ud);
    } else {
        json_decref(d->ev.json);
        hmi_net_project_free(d->ev.project, d->ev.project_owner);
    }
    gate_unref(d->gate);
    g_free(d);
    return G_SOURCE_REMOVE;
}

/* Hand an event to the main thread (JSON and PROJECT are given away). */
static void post(struct hmi_net *net, enum hmi_net_event_kind kind,
                 const char *text, json_t *json, struct parsed *pp,
                 long long version)
{
    struct delivery *d = g_new0(struct delivery, 1);

    d->ev.kind = kind;
    d->ev.json = json;
    d->ev.project = pp != NULL ? pp->p : NULL;
    d->ev.project_owner = pp;
    d->ev.version = version;
    d->ev.at_ms = wall_ms();
    snprintf(d->text, sizeof d->text, "%s", text != NULL ? text : "");
    d->fn = net->event_fn;
    d->ud = net->ud;
    d->gate = gate_ref(net->gate);
    g_main_context_invoke(NULL, deliver_event, d);
}

static bool stopping(struct hmi_net *net)
{
    bool s;
    g_mutex_lock(&net->mu);
    s = net->stop;
    g_mutex_unlock(&net->mu);
    return s;
}

static void nap(struct hmi_net *net, long ms)
{
    gint64 until = g_get_monotonic_time() + ms * 1000;
    g_mutex_lock(&net->mu);
    while (!net->stop && g_cond_wait_until(&net->cond, &net->mu, until)) {
    }
    g_mutex_unlock(&net->mu);
}

/* ------------------------------------------------------------ live side */

struct live {
    struct hmi_net *net;
    struct vg_client *c;
    long long version;                 /* project delivered last */
    char digest[2 * VG_PROJECT_DIGEST_SIZE + 1];
    unsigned gen;                      /* watch generation subscribed */
    char address[300];                 /* connection the subscriptions live on */
};

/* Fetch and parse VERSION (0: the active one) unless it is the one already
 * delivered; deliver it. */
static int refresh_project(struct live *l, long long version, const char *digest,
                           char *errmsg)
{
    struct parsed *pp;
    long long got = version;
    char hex[sizeof l->digest];
    int rv;

    if (version > 0 && version == l->version && digest != NULL &&
        strcmp(digest, l->digest) == 0) {
        return VG_OK;
    }
    if ((pp = calloc(1, sizeof *pp)) == NULL) {
        vg_errf(errmsg, "out of memory");
        return VG_ENOMEM;
    }
    vg_diags_init(&pp->d);
    if (version > 0) {
        rv = vg_fetch_project_version(vg_fetch_call_client, l->c, version, digest,
                                      &pp->fs, errmsg);
    } else {
        rv = vg_fetch_active_project(vg_fetch_call_client, l->c, &pp->fs, &got,
                                     errmsg);
        if (rv == VG_OK && got == 0) {
            vg_errf(errmsg, "no project has been loaded into the cluster yet");
            rv = VG_ENOTFOUND;
        }
    }
    if (rv != VG_OK) {
        hmi_net_project_free(NULL, pp);
        return rv;
    }
    vg_fetch_digest_hex(&pp->fs, hex);
    if (got == l->version && strcmp(hex, l->digest) == 0) {
        hmi_net_project_free(NULL, pp);
        return VG_OK;
    }
    if ((pp->p = vg_project_parse(&pp->fs, &pp->d)) == NULL) {
        hmi_net_project_free(NULL, pp);
        vg_errf(errmsg, "out of memory");
        return VG_ENOMEM;
    }
    l->version = got;
    snprintf(l->digest, sizeof l->digest, "%s", hex);
    post(l->net, HMI_NET_PROJECT, NULL, NULL, pp, got);
    return VG_OK;
}

static json_t *tags_request(struct hmi_net *net, unsigned *gen)
{
    json_t *req = vg_proto_request("tags_subscribe", -1);
    json_t *screens = json_array(), *tags = json_array();

    g_mutex_lock(&net->mu);
    if (net->screen != NULL) {
        json_array_append_new(screens, json_string(net->screen));
    }
    for (size_t i = 0; i < net->n_tags; i++) {
        json_array_append_new(tags, json_string(net->tags[i]));
    }
    *gen = net->gen;
    g_mutex_unlock(&net->mu);
    json_object_set_new(req, "screens", screens);
    json_object_set_new(req, "tags", tags);
    return req;
}

/* Send REQ (released) and accept only an answer of type WANT. */
static int call_want(struct live *l, json_t *req, const char *want, char *errmsg)
{
    json_t *ans = NULL;
    int rv = vg_client_call(l->c, req, &ans, errmsg);

    json_decref(req);
    if (rv != VG_OK) {
        return rv;
    }
    if (strcmp(vg_proto_get_str(ans, "type", ""), want) != 0) {
        vg_errf(errmsg, "%s (%s)", vg_proto_get_str(ans, "message", "unexpected answer"),
                vg_proto_get_str(ans, "code", vg_proto_get_str(ans, "type", "?")));
        json_decref(ans);
        return VG_EIO;
    }
    json_decref(ans);
    return VG_OK;
}

static bool same_connection(struct live *l)
{
    const char *cur = vg_client_current(l->c);
    return cur != NULL && strcmp(cur, l->address) == 0;
}

/* Subscribe tags, alarms and project activations on one connection to the
 * ready leader. The tag subscription goes first: it needs the leader, so
 * the client follows "not_leader" there; the others are then made on the
 * same connection (checked: a reconnect in between starts over). */
static int subscribe_all(struct live *l, char *errmsg)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        json_t *req = tags_request(l->net, &l->gen);
        int rv = call_want(l, req, "tags_subscribed", errmsg);
        const char *cur;

        if (rv != VG_OK) {
            return rv;
        }
        if ((cur = vg_client_current(l->c)) == NULL) {
            continue;
        }
        snprintf(l->address, sizeof l->address, "%s", cur);
        rv = call_want(l, vg_proto_request("alarms_subscribe", -1),
                       "alarms_subscribed", errmsg);
        if (rv != VG_OK) {
            return rv;
        }
        rv = call_want(l, json_pack("{s:s, s:[s]}", "type", "subscribe", "topics",
                                    "project"),
                       "subscribed", errmsg);
        if (rv != VG_OK) {
            return rv;
        }
        if (same_connection(l)) {
            return VG_OK;
        }
    }
    vg_errf(errmsg, "the connection kept moving while subscribing");
    return VG_EIO;
}

static gpointer live_main(gpointer p)
{
    struct hmi_net *net = p;
    struct live l;
    char errmsg[VG_ERRMSG_SIZE];
    bool subscribed = false, lost_said = false;
    unsigned long dropped = 0;

    memset(&l, 0, sizeof l);
    l.net = net;
    l.c = vg_client_new(net->seeds, errmsg);
    if (l.c == NULL) {
        post(net, HMI_NET_CONNECTING, errmsg, NULL, NULL, 0);
        return NULL;
    }
    vg_client_set_timeout(l.c, 3000);
    post(net, HMI_NET_CONNECTING, "connecting", NULL, NULL, 0);
    lost_said = true;
    while (!stopping(net)) {
        json_t *ev = NULL;
        unsigned gen;
        int rv;

        if (!subscribed) {
            if (refresh_project(&l, 0, NULL, errmsg) != VG_OK ||
                subscribe_all(&l, errmsg) != VG_OK) {
                if (!lost_said) {
                    post(net, HMI_NET_CONNECTING, errmsg, NULL, NULL, 0);
                    lost_said = true;
                }
                nap(net, 200);
                continue;
            }
            subscribed = true;
            lost_said = false;
            dropped = vg_client_events_dropped(l.c);
            post(net, HMI_NET_CONNECTED, l.address, NULL, NULL, 0);
        }
        rv = vg_client_next_event(l.c, 50, &ev, errmsg);
        if (rv == VG_OK) {
            const char *topic = vg_proto_get_str(ev, "topic", "");
            if (strcmp(topic, "tags") == 0) {
                post(net, HMI_NET_TAGS, NULL, ev, NULL, 0);
            } else if (strcmp(topic, "alarms") == 0) {
                post(net, HMI_NET_ALARMS, NULL, ev, NULL, 0);
            } else if (strcmp(topic, "project") == 0) {
                long long v = vg_proto_get_int(ev, "version", 0);
                char digest[sizeof l.digest];
                snprintf(digest, sizeof digest, "%s", vg_proto_get_str(ev, "digest", ""));
                json_decref(ev);
                /* The node re-resolves the tag subscription by itself; the
                 * station needs the new screens. */
                if (v > 0 && refresh_project(&l, v, digest, errmsg) != VG_OK) {
                    subscribed = false;
                }
            } else {
                json_decref(ev);
            }
        } else if (rv != VG_ETIMEDOUT) {
            subscribed = false;
            post(net, HMI_NET_CONNECTING, errmsg, NULL, NULL, 0);
            lost_said = true;
            continue;
        }
        if (vg_client_events_dropped(l.c) != dropped) {
            /* A hole in the picture: subscribe again on the same
             * connection; fresh images replace what was missed. */
            subscribed = false;
            continue;
        }
        g_mutex_lock(&net->mu);
        gen = net->gen;
        g_mutex_unlock(&net->mu);
        if (subscribed && gen != l.gen) {
            rv = call_want(&l, tags_request(net, &l.gen), "tags_subscribed", errmsg);
            if (rv != VG_OK || !same_connection(&l)) {
                /* The call reconnected elsewhere (the leader went away while
                 * it ran): the other subscriptions are gone with the old
                 * connection. */
                subscribed = false;
                post(net, HMI_NET_CONNECTING,
                     rv != VG_OK ? errmsg : "the connection moved to another node",
                     NULL, NULL, 0);
                lost_said = true;
            }
        }
    }
    vg_client_free(l.c);
    return NULL;
}

/* ---------------------------------------------------------- request side */

static gboolean deliver_job(gpointer p)
{
    struct job *j = p;

    if (!j->gate->closed && j->done != NULL) {
        j->done(j->answer, j->errmsg, j->ud);
    } else {
        json_decref(j->answer);
    }
    gate_unref(j->gate);
    g_free(j);
    return G_SOURCE_REMOVE;
}

static void job_drop(struct job *j)
{
    if (j->free_arg != NULL) {
        j->free_arg(j->arg);
    }
    json_decref(j->answer);
    gate_unref(j->gate);
    g_free(j);
}

static gpointer worker_main(gpointer p)
{
    struct hmi_net *net = p;
    char errmsg[VG_ERRMSG_SIZE];
    struct vg_client *c = vg_client_new(net->seeds, errmsg);

    for (;;) {
        struct job *j;

        g_mutex_lock(&net->mu);
        while (!net->stop && g_queue_is_empty(&net->jobs)) {
            g_cond_wait(&net->cond, &net->mu);
        }
        if (net->stop) {
            g_mutex_unlock(&net->mu);
            break;
        }
        j = g_queue_pop_head(&net->jobs);
        g_mutex_unlock(&net->mu);
        if (c == NULL) {
            snprintf(j->errmsg, sizeof j->errmsg, "%s", errmsg);
        } else {
            j->answer = j->fn(c, j->arg, j->errmsg);
        }
        if (j->free_arg != NULL) {
            j->free_arg(j->arg);
            j->arg = NULL;
        }
        g_main_context_invoke(NULL, deliver_job, j);
    }
    vg_client_free(c);
    return NULL;
}

static json_t *request_job(struct vg_client *c, void *arg, char *errmsg)
{
    json_t *ans = NULL;
    if (vg_client_call(c, arg, &ans, errmsg) != VG_OK) {
        return NULL;
    }
    return ans;
}

static void request_free(void *arg)
{
    json_decref(arg);
}

void hmi_net_job(struct hmi_net *net, hmi_job_fn fn, void *arg,
                 void (*free_arg)(void *), hmi_done_fn done, void *ud)
{
    struct job *j = g_new0(struct job, 1);

    j->fn = fn;
    j->arg = arg;
    j->free_arg = free_arg;
    j->done = done;
    j->ud = ud;
    j->gate = gate_ref(net->gate);
    g_mutex_lock(&net->mu);
    g_queue_push_tail(&net->jobs, j);
    g_cond_broadcast(&net->cond);
    g_mutex_unlock(&net->mu);
}

void hmi_net_request(struct hmi_net *net, json_t *req, hmi_done_fn done, void *ud)
{
    hmi_net_job(net, request_job, req, request_free, done, ud);
}

/* ------------------------------------------------------------- lifetime */

void hmi_net_watch(struct hmi_net *net, const char *screen,
                   const char *const *tags, size_t n_tags)
{
    g_mutex_lock(&net->mu);
    g_free(net->screen);
    net->screen = g_strdup(screen);
    for (size_t i = 0; i < net->n_tags; i++) {
        g_free(net->tags[i]);
    }
    g_free(net->tags);
    net->tags = g_new0(char *, n_tags + 1);
    for (size_t i = 0; i < n_tags; i++) {
        net->tags[i] = g_strdup(tags[i]);
    }
    net->n_tags = n_tags;
    net->gen++;
    g_mutex_unlock(&net->mu);
}

struct hmi_net *hmi_net_start(const char *seeds, hmi_net_event_fn event_fn,
                              void *ud, char *errmsg)
{
    struct vg_client *probe = vg_client_new(seeds, errmsg);
    struct hmi_net *net;

    if (probe == NULL) {
        return NULL;
    }
    vg_client_free(probe);
    net = g_new0(struct hmi_net, 1);
    net->seeds = g_strdup(seeds);
    net->event_fn = event_fn;
    net->ud = ud;
    net->gate = g_new0(struct gate, 1);
    net->gate->refs = 1;
    g_mutex_init(&net->mu);
    g_cond_init(&net->cond);
    g_queue_init(&net->jobs);
    net->live = g_thread_new("hmi-live", live_main, net);
    net->worker = g_thread_new("hmi-requests", worker_main, net);
    return net;
}

void hmi_net_stop(struct hmi_net *net)
{
    struct job *j;

    if (net == NULL) {
        return;
    }
    net->gate->closed = TRUE;
    g_mutex_lock(&net->mu);
    net->stop = true;
    g_cond_broadcast(&net->cond);
    g_mutex_unlock(&net->mu);
    g_thread_join(net->live);
    g_thread_join(net->worker);
    while ((j = g_queue_pop_head(&net->jobs)) != NULL) {
        job_drop(j);
    }
    hmi_net_watch(net, NULL, NULL, 0);
    g_free(net->screen);
    g_free(net->tags);
    g_free(net->seeds);
    g_mutex_clear(&net->mu);
    g_cond_clear(&net->cond);
    gate_unref(net->gate);
    g_free(net);
}
