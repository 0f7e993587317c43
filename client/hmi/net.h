/* The station's network side (client/hmi/net.c): two threads, each with its
 * own vg_client, so that the GTK main thread never waits on the network.
 *
 *   live thread     holds the subscriptions (tags of the shown screen, the
 *                   alarms, project activations) on a connection to the
 *                   ready leader, follows the leader when the connection is
 *                   lost, and fetches the active project when it changes;
 *   request thread  runs jobs one after the other: single requests
 *                   (setpoints, acks, history queries) and multi-request
 *                   jobs (a report fetches many pages).
 *
 * Everything the threads learn is handed to the main thread through
 * g_main_context_invoke on the default main context, as hmi_net_event
 * callbacks and job completions, in the order it happened.
 *
 * Ownership: the caller owns the struct hmi_net and must call hmi_net_stop()
 * before it frees what the callbacks use. Events and answers passed to the
 * callbacks are the callback's to keep (json references it must decref,
 * projects it must free with hmi_net_project_free). */
#ifndef VG_HMI_NET_H
#define VG_HMI_NET_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "../client.h"
#include "../../config/project.h"

struct hmi_net;

enum hmi_net_event_kind {
    HMI_NET_CONNECTING, /* the live connection is gone; trying (text: why) */
    HMI_NET_CONNECTED,  /* subscribed again at ADDRESS; images follow */
    HMI_NET_PROJECT,    /* PROJECT (version VERSION) is active: take it */
    HMI_NET_TAGS,       /* JSON: a tags "image" or "values" event */
    HMI_NET_ALARMS,     /* JSON: an alarms "image" or "changes" event */
};

struct hmi_net_event {
    enum hmi_net_event_kind kind;
    const char *text;         /* CONNECTING: the reason; CONNECTED: address */
    json_t *json;             /* TAGS, ALARMS: the event (callback's ref) */
    struct vg_project *project; /* PROJECT: parsed and valid (callback's) */
    void *project_owner;      /* PROJECT: pass to hmi_net_project_free */
    long long version;        /* PROJECT */
    int64_t at_ms;            /* wall clock when the thread saw it */
};

typedef void (*hmi_net_event_fn)(const struct hmi_net_event *ev, void *ud);

/* A job run on the request thread with the request client C. It returns an
 * answer (a new reference; may be an error object from the cluster) or NULL
 * with a sentence in ERRMSG (VG_ERRMSG_SIZE bytes). ARG is the job's. */
typedef json_t *(*hmi_job_fn)(struct vg_client *c, void *arg, char *errmsg);
/* Called on the main thread when a job finished: ANSWER (owned by the
 * callback; NULL on a transport failure, then ERRMSG says why). */
typedef void (*hmi_done_fn)(json_t *answer, const char *errmsg, void *ud);

/* Start both threads for SEEDS ("host:port,…"). Events go to EVENT_FN with
 * UD on the main thread. Returns NULL with a sentence in ERRMSG when SEEDS
 * is not valid. The live thread connects at once. */
struct hmi_net *hmi_net_start(const char *seeds, hmi_net_event_fn event_fn,
                              void *ud, char *errmsg);

/* Stop both threads (waits for them; a request in flight finishes or times
 * out first, so this may take up to the client timeout) and free NET. Jobs
 * not yet run are dropped without calling their callbacks. */
void hmi_net_stop(struct hmi_net *net);

/* Which screen's tags to subscribe to (NULL: none). Takes effect within
 * about 50 ms; an image of the new set follows as HMI_NET_TAGS. Extra tag
 * names (e.g. of an open trend) may be given too. Copied. */
void hmi_net_watch(struct hmi_net *net, const char *screen,
                   const char *const *tags, size_t n_tags);

/* Queue a job; DONE runs on the main thread when it finished. ARG is
 * released with FREE_ARG (may be NULL) after the job ran or was dropped. */
void hmi_net_job(struct hmi_net *net, hmi_job_fn job, void *arg,
                 void (*free_arg)(void *), hmi_done_fn done, void *ud);

/* Queue one request REQ (stolen); DONE gets its answer. */
void hmi_net_request(struct hmi_net *net, json_t *req, hmi_done_fn done,
                     void *ud);

void hmi_net_project_free(struct vg_project *p, void *owner);

#endif /* VG_HMI_NET_H */
