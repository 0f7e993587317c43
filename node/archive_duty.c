/* vigild's archive duty: the ready leader records process values as the
 * project says (on change beyond the deadband, or cyclically: the recorder
 * of node/archive/ decides and buffers), commits them
 * in batches (HISTORY_SAMPLES about every ARCHIVE_FLUSH_MS), cuts what is
 * older than the retention (RETENTION_CUT about once a minute), and answers
 * history queries from the replicated archive (MESSAGES.md, "History").
 *
 * Retention. A project may define archives, each with its retention, and
 * a retention for the alarm journal and the audit trail (FORMAT.md). Which
 * tag belongs to which archive is replicated state (ARCHIVE_CLASSES): the
 * ready leader compares the active project's assignment with the stored
 * one and proposes the project's when they differ, before its first cut,
 * so that every replica cuts the same tags. Tags of the default archive
 * (or of none) are cut after the default archive's retention, else after
 * the node's --archive-retention-days. A project without archives or
 * record retention gets the cut older nodes understand ({before_ms}).
 *
 * Gaps. A batch not yet committed when the leader dies is lost with it, so
 * a failover leaves a gap of at most the failover plus one flush interval
 * in a tag that changes; the new leader archives every tag's first reading
 * (the poller reports it as a change) and so closes the gap as soon as it
 * polls. Cyclic tags are archived at every multiple of their period of the
 * wall clock, on whichever node is leader then.
 *
 * Back-pressure. At most ARCHIVE_IN_FLIGHT batches wait for their commit;
 * meanwhile samples accumulate, up to ARCHIVE_BUFFER_MAX, beyond which the
 * oldest are dropped and counted (a cluster that cannot commit that fast
 * has bigger problems, and the node must not grow without bound). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../config/project.h"
#include "archive/archive.h"
#include "internal.h"
#include "plc/plc.h"

#define ARCHIVE_FLUSH_MS 250u
/* Batches proposed and not yet applied, and samples per batch, at most:
 * libraft applies every committed entry in one go on the loop, so together
 * they bound how long one iteration can spend applying history (8 batches
 * of up to 300 000 samples were seconds, and leadership went). A batch of
 * 16 384 samples of 20 000 tags applies in about 0.1 s on a small machine
 * (bench/archive_apply_bench, its settle step included). With three in
 * flight a 3-node cluster on 2 cores at 150k samples/s had iterations of
 * 330-400 ms, almost all apply (status "loop" max_apply_ms), above the
 * 300 ms election timeout; with two 227-237 ms, and as many samples
 * committed (records_bench: 153-159k against 146-155k/s). With one, the
 * leader's longest iteration is 88-94 ms at 20 000 tags (two: 148 ms, same
 * day) and 112-139 ms at 25 000 (two: 158-276 ms), and the cluster still
 * commits 174-175k and 181-197k samples/s (two: 173k, 170-198k): the
 * second batch in flight bought no throughput here, only longer loops. */
#define ARCHIVE_IN_FLIGHT 1u
#define ARCHIVE_BATCH_MAX 16384u
#define ARCHIVE_BUFFER_MAX 1000000u
#define CUT_EVERY_MS 60000u
/* A refused or lost ARCHIVE_CLASSES proposal is retried after this. */
#define CLASSES_RETRY_MS 1000u
#define NAME_MAX_BYTES 256u

struct archive_duty {
    /* What becomes a sample, buffered until proposed (node/archive/). */
    struct vg_archive_recorder *rec; /* its project: the one archived now */
    uint64_t version;
    raft_term term;
    uint64_t last_flush_ms;
    uint64_t next_cut_ms;
    unsigned in_flight;
    /* The stored assignment of tags to archives matches the project's
     * (checked once per start), or a proposal to make it so is pending. */
    bool classes_ok, classes_in_flight;
    uint64_t classes_retry_ms;
    /* A RETENTION_CUT {continue: true} waits for its apply. */
    bool step_in_flight;
    /* Counters for status. */
    uint64_t committed, failed_batches, cut_steps;
};

/* The project version archived now (borrowed from the poller set), or
 * NULL. */
static const struct vg_project *duty_project(const struct archive_duty *d)
{
    return vg_archive_recorder_project(d->rec);
}

static void duty_reset(struct archive_duty *d)
{
    vg_archive_recorder_stop(d->rec);
    d->classes_ok = false;
}

static bool start(struct node *n, struct archive_duty *d,
                  const struct vg_project *pr, uint64_t version)
{
    duty_reset(d);
    if (vg_archive_recorder_start(d->rec, pr) != VG_OK) {
        node_log(n, "archive: out of memory");
        return false;
    }
    d->version = version;
    d->term = n->lead.term;
    d->last_flush_ms = vg_now_wall_ms();
    /* A new leader or project version cuts as soon as the assignment is
     * agreed: the retention may have changed with the version. */
    d->next_cut_ms = 0;
    return true;
}

void node_archive_changed(struct node *n, const struct vg_plc_change *v,
                          size_t count)
{
    struct archive_duty *d = n->archive;
    /* A stopped recorder records nothing. */
    if (d != NULL && n->lead.ready) {
        vg_archive_recorder_changed(d->rec, v, count);
    }
}

/* The latest reading of TAG for cyclic archiving (ARG: the poller set's
 * values, one per project tag). */
static bool reading(void *arg, uint32_t tag, double *value, bool *bad)
{
    const struct node_tag_value *values = arg;
    if (values[tag].quality < 0) {
        return false;
    }
    *value = values[tag].value;
    *bad = values[tag].quality != VG_PLC_GOOD;
    return true;
}

struct batch_prop {
    struct vg_repl_proposal p; /* first: the callback casts back */
    size_t samples;
};

static void batch_cb(struct vg_repl_proposal *p, int status, uint64_t index,
                     int result)
{
    struct archive_duty *d = p->data;
    size_t samples = ((struct batch_prop *)p)->samples;
    (void)index;
    d->in_flight--;
    if (status == 0 && result == VG_OK) {
        d->committed += samples;
    } else {
        d->failed_batches++;
    }
    free(p);
}

/* Propose up to ARCHIVE_BATCH_MAX buffered samples as one HISTORY_SAMPLES
 * command (replication.h). */
static void flush_batch(struct node *n, struct archive_duty *d)
{
    struct batch_prop *bp = calloc(1, sizeof *bp);
    unsigned char *body = NULL;
    size_t len = 0, samples = 0;

    if (bp == NULL) {
        return;
    }
    if (vg_archive_recorder_take(d->rec, ARCHIVE_BATCH_MAX, &body, &len, &samples) !=
            VG_OK ||
        samples == 0) {
        free(bp);
        return;
    }
    bp->p.data = d;
    bp->samples = samples;
    if (vg_repl_propose_bytes(&n->lead, &bp->p, VG_CMD_HISTORY_SAMPLES, body, len,
                              batch_cb) != VG_OK) {
        /* Not retried: a proposal that cannot be made now (not the
         * leader any more, out of memory) would not be made on a retry. */
        d->failed_batches++;
        free(bp);
    } else {
        d->in_flight++;
    }
    free(body);
}

/* The archive a tag's samples are cut with: NULL for the default one. */
static const char *tag_class(const struct vg_project *pr, const struct vg_tag *t)
{
    const struct vg_archive_def *a = vg_tag_archive(pr, t);
    return a != NULL && !a->is_default ? a->name : NULL;
}

static void classes_cb(struct vg_repl_proposal *p, int status, uint64_t index,
                       int result)
{
    struct archive_duty *d = p->data;
    (void)index;
    d->classes_in_flight = false;
    if (status != 0 || (result != VG_OK && result != VG_REPL_UNCHANGED)) {
        d->classes_retry_ms = vg_now_mono_ms() + CLASSES_RETRY_MS;
    }
    /* Either way the next iteration compares again. */
    free(p);
}

/* Make the stored assignment of tags to archives the project's: compare,
 * and propose the project's when they differ. */
static void check_classes(struct node *n, struct archive_duty *d)
{
    const struct vg_project *pr = duty_project(d);
    json_t *want = json_object(), *stored = NULL, *body = NULL;
    struct vg_repl_proposal *p = NULL;
    char *text = NULL;

    if (d->classes_in_flight || vg_now_mono_ms() < d->classes_retry_ms ||
        want == NULL) {
        goto out;
    }
    for (size_t i = 0; i < pr->n_tags; i++) {
        const struct vg_tag *t = &pr->tags[i];
        const char *cls = t->archive != VG_ARCHIVE_NONE ? tag_class(pr, t) : NULL;
        if (cls != NULL) {
            json_object_set_new(want, t->name, json_string(cls));
        }
    }
    if (vg_repl_fsm_archive_classes(&n->fsm, &stored) != VG_OK) {
        node_log(n, "archive: cannot read the archive classes: %s", n->fsm.errmsg);
        d->classes_retry_ms = vg_now_mono_ms() + CLASSES_RETRY_MS;
        goto out;
    }
    if (json_equal(want, stored)) {
        d->classes_ok = true;
        goto out;
    }
    /* {tag: archive} becomes {classes: {archive: [tag, ...]}}. */
    {
        json_t *classes = json_object();
        const char *tag;
        json_t *cls;
        body = json_pack("{s:o}", "classes", classes);
        json_object_foreach(want, tag, cls) {
            json_t *list = json_object_get(classes, json_string_value(cls));
            if (list == NULL) {
                list = json_array();
                json_object_set_new(classes, json_string_value(cls), list);
            }
            json_array_append_new(list, json_string(tag));
        }
    }
    text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    p = calloc(1, sizeof *p);
    if (text == NULL || p == NULL) {
        d->classes_retry_ms = vg_now_mono_ms() + CLASSES_RETRY_MS;
        goto out;
    }
    p->data = d;
    if (vg_repl_propose(&n->lead, p, VG_CMD_ARCHIVE_CLASSES, text, classes_cb) ==
        VG_OK) {
        d->classes_in_flight = true;
        node_log(n, "archive: %zu tag(s) assigned to named archives",
                 json_object_size(want));
        p = NULL;
    } else {
        d->classes_retry_ms = vg_now_mono_ms() + CLASSES_RETRY_MS;
    }
out:
    free(p);
    free(text);
    json_decref(body);
    json_decref(stored);
    json_decref(want);
}

static void cut_cb(struct vg_repl_proposal *p, int status, uint64_t index,
                   int result)
{
    (void)status;
    (void)index;
    (void)result;
    free(p);
}

/* Set member KEY of O to NOW - KEEP, when there is such a time. */
static void cut_time(json_t *o, const char *key, uint64_t now, uint64_t keep)
{
    if (keep > 0 && now > keep) {
        json_object_set_new(o, key, json_integer((json_int_t)(now - keep)));
    }
}

/* The RETENTION_CUT body for NOW, or NULL when nothing is to be cut. */
static json_t *cut_body(struct node *n, const struct vg_project *pr, uint64_t now)
{
    uint64_t keep_default = (uint64_t)n->cfg->archive_retention_days * 86400000u;
    json_t *o = json_object(), *archives = json_object();

    if (pr->n_archives == 0 && pr->journal_retention_ms == 0 &&
        pr->audit_retention_ms == 0) {
        json_decref(archives);
        cut_time(o, "before_ms", now, keep_default);
    } else {
        for (size_t i = 0; i < pr->n_archives; i++) {
            const struct vg_archive_def *a = &pr->archives[i];
            if (a->is_default) {
                keep_default = a->retention_ms;
            } else {
                cut_time(archives, a->name, now, a->retention_ms);
            }
        }
        cut_time(archives, "", now, keep_default);
        if (json_object_size(archives) > 0) {
            json_object_set(o, "archives", archives);
        }
        json_decref(archives);
        cut_time(o, "journal_before_ms", now, pr->journal_retention_ms);
        cut_time(o, "audit_before_ms", now, pr->audit_retention_ms);
    }
    if (json_object_size(o) == 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static void maybe_cut(struct node *n, struct archive_duty *d, uint64_t now)
{
    json_t *body;
    char *text;
    struct vg_repl_proposal *p;

    if (now < d->next_cut_ms) {
        return;
    }
    d->next_cut_ms = now + CUT_EVERY_MS;
    if ((body = cut_body(n, duty_project(d), now)) == NULL) {
        return;
    }
    text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    p = calloc(1, sizeof *p);
    if (text != NULL && p != NULL &&
        vg_repl_propose(&n->lead, p, VG_CMD_RETENTION_CUT, text, cut_cb) == VG_OK) {
        p = NULL;
    }
    free(p);
    free(text);
}

static void step_cb(struct vg_repl_proposal *p, int status, uint64_t index,
                    int result)
{
    struct archive_duty *d = p->data;
    (void)index;
    d->step_in_flight = false;
    if (status == 0 && result == VG_OK) {
        d->cut_steps++;
    }
    free(p);
}

/* From level 4 on a retention cut walks 1024 tags a command (retention.c):
 * while one is unfinished, propose its next step, one at a time, so that
 * the steps come as fast as the cluster applies them and no faster. A new
 * leader finds the unfinished cut in the replicated state and goes on. */
static void maybe_step(struct node *n, struct archive_duty *d)
{
    static const char body[] = "{\"continue\":true}";
    struct vg_repl_proposal *p;
    bool pending;

    if (d->step_in_flight) {
        return;
    }
    if (vg_repl_fsm_retention_pending(&n->fsm, &pending) != VG_OK) {
        node_log(n, "archive: cannot read the retention steps: %s", n->fsm.errmsg);
        return;
    }
    if (!pending || (p = calloc(1, sizeof *p)) == NULL) {
        return;
    }
    p->data = d;
    if (vg_repl_propose(&n->lead, p, VG_CMD_RETENTION_CUT, body, step_cb) == VG_OK) {
        d->step_in_flight = true;
    } else {
        free(p);
    }
}

void node_archive_update(struct node *n)
{
    struct archive_duty *d = n->archive;
    struct vg_archive_recorder_stats rs;
    const struct node_tag_value *values;
    const struct vg_project *pr;
    uint64_t version = 0, now;

    if (d == NULL) {
        return;
    }
    pr = n->lead.ready ? node_plc_project(n, &version, &values) : NULL;
    if (pr == NULL) {
        if (duty_project(d) != NULL) {
            duty_reset(d);
        }
        return;
    }
    if (duty_project(d) != pr || d->version != version || d->term != n->lead.term) {
        /* Samples of the previous version still go out: they are history. */
        if (duty_project(d) != NULL && d->term == n->lead.term) {
            flush_batch(n, d);
        }
        if (!start(n, d, pr, version)) {
            return;
        }
    }
    now = vg_now_wall_ms();
    vg_archive_recorder_cyclic(d->rec, now, reading, (void *)values);
    vg_archive_recorder_stats(d->rec, &rs);
    if (rs.buffered > 0 && d->in_flight < ARCHIVE_IN_FLIGHT &&
        (now - d->last_flush_ms >= ARCHIVE_FLUSH_MS || rs.buffered >= ARCHIVE_BATCH_MAX)) {
        d->last_flush_ms = now;
        while (d->in_flight < ARCHIVE_IN_FLIGHT &&
               (vg_archive_recorder_stats(d->rec, &rs), rs.buffered > 0)) {
            flush_batch(n, d);
        }
    }
    /* Cuts wait until every replica agrees which tags each archive holds. */
    if (!d->classes_ok) {
        check_classes(n, d);
    }
    if (d->classes_ok) {
        maybe_cut(n, d, now);
        maybe_step(n, d);
    }
}

/* The archive part of status and history_info: INFO, read off the loop,
 * and what the loop knows. */
static json_t *archive_status(struct node *n, const struct vg_repl_archive_info *info)
{
    struct archive_duty *d = n->archive;
    json_t *o = json_object();

    json_object_set_new(o, "samples", json_integer((json_int_t)info->samples));
    json_object_set_new(o, "tags", json_integer((json_int_t)info->tags));
    json_object_set_new(o, "oldest_ms", json_integer((json_int_t)info->oldest_ms));
    json_object_set_new(o, "newest_ms", json_integer((json_int_t)info->newest_ms));
    json_object_set_new(o, "watermark_ms", json_integer((json_int_t)info->watermark_ms));
    json_object_set_new(o, "retention_days",
                        json_integer((json_int_t)n->cfg->archive_retention_days));
    {
        json_t *marks = NULL, *classes = NULL;
        bool pending;
        if (vg_repl_fsm_retention_marks(&n->fsm, &marks) == VG_OK) {
            json_object_set_new(o, "retention_marks", marks);
        }
        /* A cut goes on in steps (level 4, replicated state). */
        if (vg_repl_fsm_retention_pending(&n->fsm, &pending) == VG_OK) {
            json_object_set_new(o, "cut_in_steps", json_boolean(pending));
        }
        /* How many tags each named archive holds, as replicated. */
        if (vg_repl_fsm_archive_class_counts(&n->fsm, &classes) == VG_OK) {
            json_object_set_new(o, "archive_tags", classes);
        }
    }
    if (d != NULL) {
        json_object_set_new(o, "archiving", json_boolean(duty_project(d) != NULL));
        struct vg_archive_recorder_stats rs;
        vg_archive_recorder_stats(d->rec, &rs);
        json_object_set_new(o, "archived", json_integer((json_int_t)rs.archived));
        json_object_set_new(o, "committed", json_integer((json_int_t)d->committed));
        json_object_set_new(o, "dropped", json_integer((json_int_t)rs.dropped));
        json_object_set_new(o, "buffered", json_integer((json_int_t)rs.buffered));
        json_object_set_new(o, "failed_batches",
                            json_integer((json_int_t)d->failed_batches));
        json_object_set_new(o, "classes_agreed", json_boolean(d->classes_ok));
        /* Retention cut steps this node proposed as leader and saw applied. */
        json_object_set_new(o, "cut_steps", json_integer((json_int_t)d->cut_steps));
    }
    return o;
}

/* Why off the loop. The archive's extent (oldest and newest sample, tags
 * holding samples) takes two B-tree seeks per tag and a read of the recent
 * rows: on a quiet machine (archive_apply_bench, 16 384 tags) 20 ms with
 * 2.5 M samples and 62-75 ms with 4.9-9.8 M; 142-196 ms at 20 000-25 000
 * tags under a full archive load on 2 cores (records_bench
 * history_info_ms, level 1), every node's loop blocked meanwhile. A
 * read transaction of its own sees one committed state while apply goes
 * on; the answer carries the applied index of that state. */
#define INFO_JOBS_MAX 2u

struct info_job {
    uv_work_t work;
    struct node *n;
    struct conn *c;    /* referenced */
    long long id;
    bool status;       /* a status answer, else history_info */
    char path[4096];
    struct vg_repl_archive_info info;
    uint64_t applied;
    int rv;
    char errmsg[VG_ERRMSG_SIZE];
};

static void info_work_cb(uv_work_t *w)
{
    struct info_job *j = w->data;
    struct vg_repl_fsm *r = malloc(sizeof *r);

    if (r == NULL) {
        j->rv = VG_ENOMEM;
        vg_errf(j->errmsg, "out of memory");
        return;
    }
    j->rv = vg_repl_fsm_open_reader(r, j->path);
    if (j->rv == VG_OK) {
        if ((j->rv = vg_repl_fsm_read_begin(r, &j->applied)) == VG_OK) {
            j->rv = vg_repl_fsm_archive_info(r, &j->info);
            vg_repl_fsm_read_end(r);
        }
        if (j->rv != VG_OK) {
            vg_errf(j->errmsg, "%s", r->errmsg);
        }
        vg_repl_fsm_close(r);
    } else {
        vg_errf(j->errmsg, "%s", r->errmsg);
    }
    free(r);
}

static void info_after_cb(uv_work_t *w, int status)
{
    struct info_job *j = w->data;
    struct node *n = j->n;
    struct conn *c = j->c;
    const char *what = j->status ? "status" : "history_info";

    n->info_jobs--;
    if (status != 0 || c->closing || n->stopping) {
        /* Cancelled, or nobody to answer. */
    } else if (j->rv != VG_OK) {
        node_send_error(c, j->id, "failed", "%s: %s", what, j->errmsg);
    } else if (j->status) {
        node_send_status(n, c, j->id, archive_status(n, &j->info));
    } else {
        node_send_replica_answer(n, c, "history_info", j->id,
                                 json_pack("{s:o, s:I}", "archive",
                                           archive_status(n, &j->info),
                                           "applied_index", (json_int_t)j->applied));
    }
    node_conn_unref(c);
    free(j);
}

void node_archive_status_send(struct node *n, struct conn *c, long long id,
                              bool status)
{
    const char *what = status ? "status" : "history_info";
    struct info_job *j;

    if (n->info_jobs >= INFO_JOBS_MAX) {
        node_send_error(c, id, "unavailable",
                        "%s: %u reads of the archive are running; send it again"
                        " in a moment",
                        what, n->info_jobs);
        return;
    }
    if ((j = calloc(1, sizeof *j)) == NULL) {
        node_send_error(c, id, "failed", "%s: out of memory", what);
        return;
    }
    j->work.data = j;
    j->n = n;
    j->c = c;
    j->id = id;
    j->status = status;
    snprintf(j->path, sizeof j->path, "%s", n->fsm.path);
    if (uv_queue_work(&n->loop, &j->work, info_work_cb, info_after_cb) != 0) {
        node_send_error(c, id, "failed", "%s: cannot start reading the archive", what);
        free(j);
        return;
    }
    c->refs++;
    n->info_jobs++;
}

/* ------------------------------------------------------------ requests */

static void handle_query(struct node *n, struct conn *c, json_t *msg, long long id)
{
    static const char *const allowed[] = {"tag", "from_ms", "to_ms", "buckets",
                                          "limit", NULL};
    static const char type[] = "history_query";
    const char *tag;
    uint64_t from, to, buckets, limit;
    json_t *out = NULL;
    int rv;

    if (!node_members_ok(c, id, msg, type, allowed) ||
        !node_get_str(c, id, msg, type, "tag", true, NAME_MAX_BYTES, &tag) ||
        !node_get_uint(c, id, msg, type, "from_ms", true, 0, UINT64_C(1) << 53, 0,
                       &from) ||
        !node_get_uint(c, id, msg, type, "to_ms", true, 1, UINT64_C(1) << 53, 0,
                       &to) ||
        !node_get_uint(c, id, msg, type, "buckets", false, 1, 10000, 0, &buckets) ||
        !node_get_uint(c, id, msg, type, "limit", false, 1, 100000, 0, &limit)) {
        return;
    }
    if (to <= from) {
        node_send_error(c, id, "invalid", "%s: to_ms must be after from_ms", type);
        return;
    }
    if ((buckets > 0) == (limit > 0)) {
        node_send_error(c, id, "invalid",
                        "%s: give either 'buckets' (aggregated) or 'limit' (raw "
                        "samples)",
                        type);
        return;
    }
    rv = buckets > 0 ? vg_repl_fsm_history_aggregate(&n->fsm, tag, from, to,
                                                     (unsigned)buckets, &out)
                     : vg_repl_fsm_history_raw(&n->fsm, tag, from, to,
                                               (size_t)limit, &out);
    if (rv != VG_OK) {
        node_send_error(c, id, rv == VG_EINVAL ? "invalid" : "failed", "%s: %s",
                        type, n->fsm.errmsg);
        return;
    }
    node_send_replica_answer(n, c, "history", id, out);
}

bool node_archive_handle(struct node *n, struct conn *c, const char *type,
                         json_t *msg, long long id)
{
    if (strcmp(type, "history_query") == 0) {
        handle_query(n, c, msg, id);
    } else if (strcmp(type, "history_info") == 0) {
        static const char *const allowed[] = {NULL};
        if (node_members_ok(c, id, msg, type, allowed)) {
            node_archive_status_send(n, c, id, false);
        }
    } else {
        return false;
    }
    return true;
}

int node_archive_init(struct node *n)
{
    n->archive = calloc(1, sizeof *n->archive);
    if (n->archive == NULL ||
        (n->archive->rec = vg_archive_recorder_new(ARCHIVE_BUFFER_MAX)) == NULL) {
        free(n->archive);
        n->archive = NULL;
        return VG_ENOMEM;
    }
    return VG_OK;
}

void node_archive_close(struct node *n)
{
    struct archive_duty *d = n->archive;
    if (d != NULL) {
        vg_archive_recorder_free(d->rec);
        free(d);
        n->archive = NULL;
    }
}
