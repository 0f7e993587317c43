/* vigild's PLC duty: the ready leader polls every PLC of the active project
 * version; no other node polls (DESIGN.md, "Leader duties and fencing").
 *
 * Happy path. node_plc_update runs on every loop iteration and from the
 * readiness callback. It compares what the node should poll — (term,
 * version) when it is the ready leader and a project version is active,
 * nothing otherwise — with what it polls or is preparing to poll. When the
 * ready leader finds a version it does not poll yet, it reads the version's
 * bundle from SQLite on the loop (the state machine's connection belongs to
 * the loop thread; a bundle is at most 4 MiB) and hands it to a thread-pool
 * job that unpacks, checks the digest, parses and validates it with
 * node_project_bundle_parse, the helper the upload validation uses. Back on
 * the loop the parsed project becomes a plc_set: one vg_plc_poller per PLC
 * and the latest reading (value, quality, time) of every tag, kept up to date
 * from the pollers' changes for the subscription code to serve from.
 * Starting a poller costs the loop next to nothing: each poller plans its
 * reads on its own thread (20 000 tags take 100-300 ms, which on the loop
 * froze a new leader mid-takeover) and reports the plan in planned_cb.
 *
 * Failure modes.
 *   - Readiness lost (step-down, new term) or shutdown: the set is detached
 *     and all its pollers stopped in the same call (vg_plc_poller_stop
 *     returns at once). Their close callbacks come later; the set, and the
 *     project the pollers borrow, is freed only after the last of them ran
 *     (refcount: one for the node's pointer, one per started poller). That
 *     also covers a poller stopped while its thread is still planning from
 *     the project: its close callback only comes once that thread has
 *     finished and been joined.
 *   - A new version activated while polling: the old set is stopped at once
 *     and the new version parsed, then polled (re-planned without restart).
 *   - A parse result arriving after readiness was lost or after another
 *     version became wanted: every job carries the generation (n->plc_gen)
 *     current when it was started; a job of an older generation is discarded.
 *   - Changes from a poller delivered in the loop iteration in which raft
 *     stepped down (before the next prepare): the changes callback polls
 *     leadership first, which stops the set if readiness is gone, and then
 *     drops them.
 *   - A bundle that does not parse or validate here (the leader that
 *     committed it validated it, so this means a parser of another version),
 *     a poller that cannot start, or one whose plan fails (planned_cb; a
 *     validated project cannot make it fail, but the check is the
 *     planner's): said in status ("error", or the PLC's last_error) and in
 *     the log; a poller whose plan failed is stopped, and the other PLCs are
 *     polled anyway. A version that failed is not retried until the wanted
 *     (term, version) changes.
 *
 * Writes (the setpoint path, tags.c) go through node_plc_poller, which hands
 * out the running poller of a PLC and the term to fence writes with; live
 * values are served from node_plc_project's values, and every change is
 * passed on to tags.c as it arrives. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../config/project.h"
#include "internal.h"
#include "plc/plc.h"

struct plc_slot {
    struct vg_plc_poller poller; /* poller.data points back here */
    struct plc_set *set;
    bool running;                 /* started, close callback still to come */
    bool stop_called;             /* stopped: by set_stop, or its plan failed */
    char errmsg[VG_ERRMSG_SIZE];  /* why it did not start or plan */
};

/* One parsed project version and its pollers. */
struct plc_set {
    struct node *n;
    struct vg_project *project; /* owned; borrowed by the pollers */
    raft_term term;
    uint64_t version;
    unsigned refs;              /* the node's pointer + running pollers */
    bool stopped;
    struct plc_slot *slots;     /* one per project PLC */
    struct node_tag_value *values;   /* one per project tag */
};

/* A parse of one version in the thread pool. The worker touches only the
 * input and result fields. */
struct plc_job {
    uv_work_t work;
    struct node *n;
    uint64_t gen;
    raft_term term;
    uint64_t version;
    unsigned char *bundle; /* freed by the worker */
    size_t len;
    char digest[VG_DIGEST_HEX];
    /* results */
    struct vg_project *project;
    int status;
    char errmsg[VG_ERRMSG_SIZE];
};

/* ------------------------------------------------------------------ sets */

static void set_unref(struct plc_set *s)
{
    if (--s->refs > 0) {
        return;
    }
    vg_project_free(s->project);
    free(s->slots);
    free(s->values);
    free(s);
}

static void poller_closed_cb(struct vg_plc_poller *p)
{
    struct plc_slot *slot = p->data;
    slot->running = false;
    set_unref(slot->set);
}

/* Stop every poller of S now and drop the node's reference. */
static void set_stop(struct plc_set *s)
{
    s->stopped = true;
    for (size_t i = 0; i < s->project->n_plcs; i++) {
        if (s->slots[i].running && !s->slots[i].stop_called) {
            s->slots[i].stop_called = true;
            vg_plc_poller_stop(&s->slots[i].poller, poller_closed_cb);
        }
    }
    set_unref(s);
}

/* A poller's thread has planned its reads (never after its stop). A failed
 * plan leaves the poller idle, so it is stopped and the PLC reported like
 * one whose poller could not start. */
static void planned_cb(struct vg_plc_poller *p, int status, const char *errmsg)
{
    struct plc_slot *slot = p->data;
    struct plc_set *s = slot->set;
    const struct vg_plc *plc = &s->project->plcs[slot - s->slots];

    if (status == VG_OK) {
        if (s->n->cfg->verbose) {
            struct vg_plc_poller_status st;
            vg_plc_poller_status(p, &st);
            node_log(s->n, "plc: %s planned: %zu tags, %zu read requests per cycle",
                     plc->name, st.n_tags, st.plan_requests);
        }
        return;
    }
    snprintf(slot->errmsg, sizeof slot->errmsg, "%s", errmsg);
    node_log(s->n, "plc: cannot poll %s: %s", plc->name, errmsg);
    slot->stop_called = true;
    vg_plc_poller_stop(p, poller_closed_cb);
}

static void changes_cb(struct vg_plc_poller *p, const struct vg_plc_change *v,
                       size_t count)
{
    struct plc_slot *slot = p->data;
    struct plc_set *s = slot->set;
    struct node *n = s->n;

    /* Raft may have stepped down earlier in this loop iteration: find out
     * before taking anything from a PLC (stops S when readiness is gone). */
    if (!s->stopped && !n->stopping) {
        vg_repl_leadership_poll(&n->lead);
    }
    if (s->stopped) {
        return;
    }
    for (size_t i = 0; i < count; i++) {
        struct node_tag_value *t;
        if (v[i].tag >= s->project->n_tags) {
            continue;
        }
        t = &s->values[v[i].tag];
        t->value = v[i].value;
        t->quality = (int)v[i].quality;
        t->t_ms = v[i].t_ms;
    }
    node_tags_changed(n, v, count);
    node_alarms_changed(n, v, count);
    node_archive_changed(n, v, count);
}

static void set_start(struct node *n, struct plc_job *j)
{
    struct vg_project *pr = j->project;
    struct plc_set *s = calloc(1, sizeof *s);
    size_t started = 0;

    if (s != NULL) {
        s->slots = calloc(pr->n_plcs + 1, sizeof *s->slots);
        s->values = calloc(pr->n_tags + 1, sizeof *s->values);
    }
    if (s == NULL || s->slots == NULL || s->values == NULL) {
        if (s != NULL) {
            free(s->slots);
            free(s->values);
            free(s);
        }
        vg_errf(n->plc_error, "out of memory starting the pollers of version %llu",
                (unsigned long long)j->version);
        node_log(n, "plc: %s", n->plc_error);
        return;
    }
    s->n = n;
    s->project = pr;
    j->project = NULL;
    s->term = j->term;
    s->version = j->version;
    s->refs = 1;
    for (size_t i = 0; i < pr->n_tags; i++) {
        s->values[i].quality = -1;
    }
    n->plc_set = s;
    for (size_t i = 0; i < pr->n_plcs; i++) {
        struct plc_slot *slot = &s->slots[i];
        struct vg_plc_poller_opts o;

        slot->set = s;
        slot->poller.data = slot;
        vg_plc_poller_opts_default(&o);
        o.changes_cb = changes_cb;
        o.planned_cb = planned_cb;
        /* Half an election timeout: a write still queued after that may
         * come from a leader that has been replaced while it was paused. */
        o.write_max_age_ms = n->cfg->election_timeout_ms / 2;
        /* Returns before the plan is built; PR stays alive until the close
         * callback (see set_unref), which the planning thread needs. */
        if (vg_plc_poller_start(&slot->poller, &n->loop, pr, (int)i, &o,
                                slot->errmsg) != 0) {
            node_log(n, "plc: cannot poll %s: %s", pr->plcs[i].name, slot->errmsg);
            continue;
        }
        slot->running = true;
        s->refs++;
        started++;
    }
    node_log(n, "plc: polling %zu of %zu PLC(s) of project version %llu in term "
                "%llu",
             started, pr->n_plcs, (unsigned long long)s->version,
             (unsigned long long)s->term);
    node_tags_polling_changed(n);
}

/* ------------------------------------------------------------------ jobs */

static void job_work_cb(uv_work_t *w)
{
    struct plc_job *j = w->data;
    struct vg_diags d;

    vg_diags_init(&d);
    j->status = node_project_bundle_parse(j->bundle, j->len, j->digest,
                                          &j->project, &d, j->errmsg);
    if (j->status == VG_OK && (d.n > 0 || d.dropped > 0)) {
        char first[512] = "";
        vg_diags_sort(&d);
        if (d.n > 0) {
            vg_diag_format(&d.v[0], first, sizeof first);
        }
        j->status = VG_EINVAL;
        vg_errf(j->errmsg, "%zu validation error(s) here, the first: %s",
                d.n + d.dropped, first);
        vg_project_free(j->project);
        j->project = NULL;
    }
    vg_diags_free(&d);
    free(j->bundle);
    j->bundle = NULL;
}

static void job_free(struct plc_job *j)
{
    free(j->bundle);
    vg_project_free(j->project);
    free(j);
}

static void job_after_cb(uv_work_t *w, int status)
{
    struct plc_job *j = w->data;
    struct node *n = j->n;

    if (status != 0 || n->stopping || j->gen != n->plc_gen) {
        /* Cancelled, shutting down, or no longer wanted (readiness lost or
         * another version activated while it was being parsed). */
        if (n->cfg->verbose) {
            node_log(n, "plc: parse of version %llu (term %llu) discarded",
                     (unsigned long long)j->version, (unsigned long long)j->term);
        }
    } else if (j->status != VG_OK) {
        vg_errf(n->plc_error, "project version %llu cannot be polled: %s",
                (unsigned long long)j->version, j->errmsg);
        node_log(n, "plc: %s", n->plc_error);
    } else {
        set_start(n, j);
    }
    job_free(j);
}

/* Read the wanted version's bundle and queue its parse. */
static void job_start(struct node *n)
{
    struct plc_job *j = calloc(1, sizeof *j);
    struct vg_repl_project info;
    uint64_t total;
    int rv;

    if (j == NULL) {
        vg_errf(n->plc_error, "out of memory");
        return;
    }
    j->n = n;
    j->gen = n->plc_gen;
    j->term = n->plc_term;
    j->version = n->plc_version;
    j->work.data = j;
    rv = vg_repl_fsm_project_bundle(&n->fsm, j->version, 0, SIZE_MAX, &j->bundle,
                                    &j->len, &total, &info);
    if (rv != VG_OK) {
        vg_errf(n->plc_error, "cannot read project version %llu: %s",
                (unsigned long long)j->version,
                rv == VG_EDB ? n->fsm.errmsg : vg_strerror(rv));
        node_log(n, "plc: %s", n->plc_error);
        job_free(j);
        return;
    }
    snprintf(j->digest, sizeof j->digest, "%s", info.digest);
    vg_repl_project_clear(&info);
    rv = uv_queue_work(&n->loop, &j->work, job_work_cb, job_after_cb);
    if (rv != 0) {
        vg_errf(n->plc_error, "cannot parse project version %llu: %s",
                (unsigned long long)j->version, uv_strerror(rv));
        node_log(n, "plc: %s", n->plc_error);
        job_free(j);
    }
}

/* ------------------------------------------------------------- interface */

/* Stop what runs and forget what was wanted: parses in flight are
 * discarded when they come back. */
static void detach(struct node *n)
{
    n->plc_gen++;
    n->plc_error[0] = '\0';
    if (n->plc_set != NULL) {
        node_log(n, "plc: stopping the pollers of project version %llu (term %llu)",
                 (unsigned long long)n->plc_set->version,
                 (unsigned long long)n->plc_set->term);
        set_stop(n->plc_set);
        n->plc_set = NULL;
        node_tags_polling_changed(n);
    }
}

void node_plc_update(struct node *n)
{
    raft_term term = 0;
    uint64_t version = 0;

    if (!n->stopping && n->lead.ready) {
        term = n->lead.term;
        version = n->project_notified;
    }
    if (term == n->plc_term && version == n->plc_version) {
        return;
    }
    detach(n);
    n->plc_term = term;
    n->plc_version = version;
    if (version != 0) {
        job_start(n);
    }
}

void node_plc_shutdown(struct node *n)
{
    detach(n);
    n->plc_term = 0;
    n->plc_version = 0;
}

json_t *node_plc_status(struct node *n)
{
    struct plc_set *s = n->plc_set;
    json_t *plcs = json_array();

    for (size_t i = 0; s != NULL && i < s->project->n_plcs; i++) {
        struct plc_slot *slot = &s->slots[i];
        struct vg_plc_poller_status st;
        size_t tags = 0, good = 0;
        const char *error;

        memset(&st, 0, sizeof st);
        if (slot->running) {
            vg_plc_poller_status(&slot->poller, &st);
        }
        error = slot->running ? st.last_error : slot->errmsg;
        for (size_t t = 0; t < s->project->n_tags; t++) {
            if (s->project->tags[t].plc.index == (int)i) {
                tags++;
                good += s->values[t].quality == VG_PLC_GOOD;
            }
        }
        json_array_append_new(
            plcs,
            json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:o, s:o, s:I, s:I}", "name",
                      s->project->plcs[i].name, "connected", st.connected,
                      "cycles", (json_int_t)st.cycles, "requests",
                      (json_int_t)st.requests, "requests_per_cycle",
                      (json_int_t)st.plan_requests, "reconnects",
                      (json_int_t)st.reconnects, "last_error",
                      error[0] != '\0' ? json_string(error) : json_null(),
                      "first_poll_ms",
                      st.first_cycle_ms != 0
                          ? json_integer((json_int_t)st.first_cycle_ms)
                          : json_null(),
                      "tags", (json_int_t)tags, "tags_good", (json_int_t)good));
    }
    return json_pack("{s:b, s:I, s:o, s:o}", "polling",
                     s != NULL && n->lead.ready, "project_version",
                     (json_int_t)(s != NULL ? s->version : 0), "error",
                     n->plc_error[0] != '\0' ? json_string(n->plc_error)
                                             : json_null(),
                     "plcs", plcs);
}

struct vg_plc_poller *node_plc_poller(struct node *n, size_t plc_index,
                                      raft_term *term)
{
    struct plc_set *s = n->plc_set;
    if (s == NULL || !n->lead.ready || s->term != n->lead.term ||
        plc_index >= s->project->n_plcs || !s->slots[plc_index].running ||
        s->slots[plc_index].stop_called) {
        return NULL;
    }
    *term = s->term;
    return &s->slots[plc_index].poller;
}

const struct vg_project *node_plc_project(struct node *n, uint64_t *version,
                                          const struct node_tag_value **values)
{
    struct plc_set *s = n->plc_set;
    if (s == NULL || s->stopped || !n->lead.ready || s->term != n->lead.term) {
        return NULL;
    }
    *version = s->version;
    *values = s->values;
    return s->project;
}

void node_plc_written(struct node *n, uint32_t tag, double value, uint64_t t_ms)
{
    struct plc_set *s = n->plc_set;
    struct vg_plc_change ch;

    if (s == NULL || s->stopped || tag >= s->project->n_tags) {
        return;
    }
    s->values[tag].value = value;
    s->values[tag].quality = VG_PLC_GOOD;
    s->values[tag].t_ms = t_ms;
    ch.tag = tag;
    ch.quality = VG_PLC_GOOD;
    ch.value = value;
    ch.t_ms = t_ms;
    node_tags_changed(n, &ch, 1);
    node_alarms_changed(n, &ch, 1);
    node_archive_changed(n, &ch, 1);
}
