/* vigild's project requests: loading a plant project into the cluster,
 * reading the stored versions, and pushing "project" events.
 *
 * Loading (project_upload), happy path: the client sends the packed project
 * (vg_project_files_pack) to the ready leader in chunks of at most 512 KiB,
 * in order, on one connection. Offset 0 starts an upload (dropping any
 * earlier one of that connection) and reserves its total size against a
 * node-wide budget; each chunk is decoded straight into the upload's buffer
 * and answered with the byte count received so far. The last chunk hands the
 * buffer to a thread-pool job that unpacks the bundle, checks the files'
 * digest against the one the client announced, parses and validates the
 * project (the leader never trusts the client's own validation) and builds
 * the PROJECT_LOAD body. Back on the loop the node proposes it; once it is
 * applied the client is told the new version number, or that the files equal
 * the active version ("unchanged"). A version is one raft command, so it
 * becomes active on every node at the same log index or not at all.
 *
 * Failure modes:
 *   - not (or no longer) the ready leader at any chunk: not_leader and the
 *     upload is dropped. The client library follows the redirect and resends
 *     that chunk to the new leader, which answers "out of sequence" with
 *     expected_offset 0, and the client starts over;
 *   - a chunk out of order, or another total or digest mid-upload: invalid,
 *     with expected_offset; the upload is kept, so the client may go on
 *     from there (or start over at 0);
 *   - the node-wide budget for buffered uploads is used up: busy;
 *   - a bundle too large for one replicated command: too_big, before any
 *     byte beyond the first chunk is sent;
 *   - a malformed bundle, a digest that does not match the files, or a
 *     project that does not validate: invalid, with up to DIAGS_SENT_MAX
 *     diagnostics "file:line:col: error: message";
 *   - the connection closes while the job runs: the job holds a reference
 *     on the conn, finishes, nothing is proposed and its answer is dropped;
 *   - leadership lost after validation, before or after proposing:
 *     not_leader (once proposed, the outcome is unknown; loading the same
 *     files again is harmless: if the first load was committed the second is
 *     reported unchanged).
 *
 * Validations run one at a time (the others wait in a FIFO): a validation
 * takes a core and the project's size in memory. The parser itself keeps no
 * global state (config/ has no mutable statics), so the ready leader's PLC
 * duty (polling.c) parses the active version with the same helper,
 * node_project_bundle_parse, in a job of its own rather than behind this
 * queue: a failover must not wait for somebody's validation.
 *
 * Reads (project_show, project_history, project_get) are answered by any
 * node from its local replica, naming the node and its applied index.
 *
 * Events: a connection subscribed to "project" gets
 * {"type":"event","topic":"project","event":"activated",…} whenever a new
 * version becomes active on this node (applied, or arrived with a snapshot).
 * Events are queued like answers, under the connection's WRITE_QUEUE_LIMIT:
 * a subscriber that stops reading is disconnected rather than buffered for
 * without bound (it reconnects, subscribes and asks project_show). Events
 * are never coalesced or dropped while the connection lives. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../config/project.h"
#include "internal.h"

#define CHUNK_MAX (512u * 1024u)
#define UPLOAD_TOTAL_MAX (64u * 1024u * 1024u)
/* The largest packed project one load carries. Every node applies the load
 * on its loop thread (libraft 0.15 applies synchronously): parsing the JSON
 * body and decoding the base64 bundle cost about 30 ms per MiB of bundle
 * (measured: 4 MiB 120-150 ms, 12 MiB 400 ms on a 2-core VM). A stall near
 * the election timeout (300 ms) on all nodes at once would start elections,
 * so the cap keeps it well below. Real projects are far smaller: 10 000 tags
 * pack into about 190 KiB, 100 000 into 1.8 MiB (tools/projgen.py). */
#define LOAD_BUNDLE_MAX (4u * 1024u * 1024u)
_Static_assert(LOAD_BUNDLE_MAX / 3u * 4u + 64u * 1024u <= VG_CMD_MAX_BODY,
               "a maximal bundle, base64-encoded, must fit in one command");
/* Uploads and validations in flight may hold this many bytes per node. */
#define UPLOAD_BUDGET (128u * 1024u * 1024u)
#define DIAGS_SENT_MAX 200
#define COMMENT_MAX 1024
#define NAME_MAX_LEN 128
#define HISTORY_DEFAULT 100
#define HISTORY_MAX 200

struct upload {
    unsigned char *buf; /* TOTAL bytes */
    uint64_t total;
    uint64_t received;
    char digest[VG_DIGEST_HEX]; /* files digest announced by the client */
    char *comment;
    char *user;
    char *station;
};

/* The validation of a complete upload, run in libuv's thread pool. The
 * worker reads U and writes only the result fields; the loop thread touches
 * the job again only in load_after_cb. */
struct load_job {
    uv_work_t work;
    struct node *n;
    struct conn *c; /* referenced */
    long long id;
    struct upload *u; /* owned */
    /* results */
    int status;
    char errmsg[VG_ERRMSG_SIZE];
    char **diags;     /* formatted, at most DIAGS_SENT_MAX */
    size_t n_diags;
    size_t n_errors;  /* all of them, also those not formatted */
    char *name;
    char *body;       /* PROJECT_LOAD body when status is VG_OK */
    struct load_job *next; /* in the node's queue of waiting jobs */
};

/* A proposed load waiting for its commit. */
struct load_op {
    struct vg_repl_proposal p; /* first: the proposal callback casts back */
    struct node *n;
    struct conn *c; /* referenced */
    long long id;
    char digest[VG_DIGEST_HEX];
    char *name;
};

/* ------------------------------------------------------------ arguments */

static bool is_digest_hex(const char *s)
{
    size_t i;
    for (i = 0; s[i] != '\0'; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return i == VG_DIGEST_HEX - 1;
}

/* --------------------------------------------------------------- answers */

static json_t *opt_string(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

/* The metadata of one version as sent to clients. */
static json_t *version_json(const struct vg_repl_project *p)
{
    json_t *o = json_object();
    json_t *summary = p->summary != NULL ? json_loads(p->summary, 0, NULL) : NULL;
    json_object_set_new(o, "version", json_integer((json_int_t)p->version));
    json_object_set_new(o, "active", json_boolean(p->active));
    json_object_set_new(o, "name", opt_string(p->name));
    json_object_set_new(o, "label", opt_string(p->label));
    json_object_set_new(o, "digest", json_string(p->digest));
    json_object_set_new(o, "loaded_at", json_integer((json_int_t)p->loaded_at_ms));
    json_object_set_new(o, "loaded_by", opt_string(p->loaded_by));
    json_object_set_new(o, "station", opt_string(p->station));
    json_object_set_new(o, "comment", opt_string(p->comment));
    json_object_set_new(o, "summary", summary != NULL ? summary : json_null());
    json_object_set_new(o, "size", json_integer((json_int_t)p->bundle_size));
    json_object_set_new(o, "term", json_integer((json_int_t)p->term));
    json_object_set_new(o, "log_index", json_integer((json_int_t)p->log_index));
    return o;
}

/* An answer read from this node's replica says which node and how far. */
static json_t *local_answer(struct node *n, const char *type, long long id)
{
    json_t *a = node_answer(type, id);
    json_object_set_new(a, "node", json_integer((json_int_t)n->cfg->id));
    json_object_set_new(a, "applied_index",
                        json_integer((json_int_t)n->fsm.applied_index));
    return a;
}

/* Add LOCAL_ANSWER's members to INTO. */
static void merge_local(struct node *n, json_t *into, const char *type,
                        long long id)
{
    json_t *l = local_answer(n, type, id);
    json_object_update(into, l);
    json_decref(l);
}

static void send_db_error(struct node *n, struct conn *c, long long id, int rv)
{
    if (rv == VG_ENOMEM) {
        node_send_error(c, id, "failed", "out of memory");
    } else {
        node_send_error(c, id, "failed", "reading the replica failed: %s",
                        n->fsm.errmsg);
    }
}

/* VERSION (0: active) was not found on this node. */
static void send_no_version(struct node *n, struct conn *c, long long id,
                            uint64_t version)
{
    uint64_t active = 0;
    vg_repl_fsm_project_active(&n->fsm, &active, NULL);
    if (version == 0) {
        node_send_error(c, id, "invalid", "no project has been loaded (node %llu)",
                        (unsigned long long)n->cfg->id);
    } else {
        node_send_error(c, id, "invalid",
                        "project version %llu does not exist on node %llu "
                        "(active here: %llu)",
                        (unsigned long long)version,
                        (unsigned long long)n->cfg->id,
                        (unsigned long long)active);
    }
}

/* ---------------------------------------------------------------- events */

static void push_activated(struct node *n, uint64_t version)
{
    struct vg_repl_project p;
    struct conn *c;
    struct conn *next;

    n->project_notified = version;
    if (vg_repl_fsm_project_info(&n->fsm, version, &p) != VG_OK) {
        return;
    }
    node_log(n, "project: version %llu of '%s' is active (digest %.16s, loaded by "
                "%s at index %llu)",
             (unsigned long long)p.version, p.name, p.digest,
             p.loaded_by != NULL ? p.loaded_by : "?",
             (unsigned long long)p.log_index);
    for (c = n->conns; c != NULL; c = next) {
        next = c->next; /* node_send may close c, which unlinks it */
        if (c->sub_project) {
            json_t *ev = node_answer("event", -1);
            json_object_set_new(ev, "topic", json_string("project"));
            json_object_set_new(ev, "event", json_string("activated"));
            json_object_set_new(ev, "version", json_integer((json_int_t)version));
            json_object_set_new(ev, "name", json_string(p.name));
            json_object_set_new(ev, "label", opt_string(p.label));
            json_object_set_new(ev, "digest", json_string(p.digest));
            json_object_set_new(ev, "node", json_integer((json_int_t)n->cfg->id));
            node_send(c, ev);
        }
    }
    vg_repl_project_clear(&p);
}

void node_project_applied(struct node *n, uint64_t index, int result)
{
    uint64_t version;
    if (result == VG_OK &&
        vg_repl_fsm_project_at(&n->fsm, index, &version) == VG_OK) {
        push_activated(n, version);
    }
}

void node_project_check(struct node *n)
{
    uint64_t active = 0;
    if (vg_repl_fsm_project_active(&n->fsm, &active, NULL) == VG_OK &&
        active != 0 && active != n->project_notified) {
        push_activated(n, active);
    }
}

json_t *node_project_status(struct node *n)
{
    uint64_t version = 0;
    char digest[VG_DIGEST_HEX];
    bool known = vg_repl_fsm_project_active(&n->fsm, &version, digest) == VG_OK &&
                 version != 0;
    return json_pack("{s:I, s:o, s:I, s:I}", "version", (json_int_t)version,
                     "digest", known ? json_string(digest) : json_null(),
                     "upload_bytes", (json_int_t)n->upload_bytes, "validating",
                     (json_int_t)n->load_jobs);
}

/* ------------------------------------------------------------- uploads */

static void upload_free(struct node *n, struct upload *u)
{
    if (u == NULL) {
        return;
    }
    n->upload_bytes -= (size_t)u->total;
    free(u->buf);
    free(u->comment);
    free(u->user);
    free(u->station);
    free(u);
}

void node_project_conn_closing(struct conn *c)
{
    upload_free(c->n, c->upload);
    c->upload = NULL;
}

static char *dup_or_null(const char *s, bool *nomem)
{
    char *copy;
    if (s == NULL) {
        return NULL;
    }
    copy = strdup(s);
    *nomem = *nomem || copy == NULL;
    return copy;
}

/* The PROJECT_LOAD body for a validated project (see replication.h). */
static char *load_body(const struct load_job *j, const struct vg_project *p,
                       const char *digest, char *errmsg)
{
    size_t b64_size = sodium_base64_ENCODED_LEN(j->u->total,
                                                sodium_base64_VARIANT_ORIGINAL);
    char *b64 = malloc(b64_size);
    json_t *o;
    char *text;

    if (b64 == NULL) {
        vg_errf(errmsg, "out of memory");
        return NULL;
    }
    sodium_bin2base64(b64, b64_size, j->u->buf, (size_t)j->u->total,
                      sodium_base64_VARIANT_ORIGINAL);
    o = json_pack("{s:s, s:s?, s:s, s:o, s:s?, s:s?, s:s?,"
                  " s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}}",
                  "name", p->name, "label", p->label, "digest", digest,
                  "bundle", json_stringn_nocheck(b64, b64_size - 1),
                  "loaded_by", j->u->user, "station", j->u->station, "comment",
                  j->u->comment, "summary", "tags", (json_int_t)p->n_tags,
                  "alarms", (json_int_t)p->n_alarms, "screens",
                  (json_int_t)p->n_screens, "stations", (json_int_t)p->n_stations,
                  "roles", (json_int_t)p->n_roles, "plcs", (json_int_t)p->n_plcs,
                  "sections", (json_int_t)p->n_sections, "reports",
                  (json_int_t)p->n_reports);
    free(b64);
    if (o == NULL) {
        vg_errf(errmsg, "out of memory");
        return NULL;
    }
    text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    if (text == NULL) {
        vg_errf(errmsg, "out of memory");
    }
    return text;
}

int node_project_bundle_parse(const unsigned char *buf, size_t len,
                              const char *digest, struct vg_project **out,
                              struct vg_diags *d, char *errmsg)
{
    struct vg_project_files fs = {0};
    unsigned char raw[VG_PROJECT_DIGEST_SIZE];
    char hex[VG_DIGEST_HEX];
    int rv;

    *out = NULL;
    rv = vg_project_files_unpack(buf, len, &fs, errmsg);
    if (rv != VG_OK) {
        return rv == VG_ENOMEM ? VG_ENOMEM : VG_EMALFORMED;
    }
    vg_project_files_digest(&fs, raw);
    vg_hex(raw, sizeof raw, hex);
    if (digest != NULL && strcmp(hex, digest) != 0) {
        vg_errf(errmsg, "the files hash to %.16s…, expected %.16s…", hex, digest);
        vg_project_files_free(&fs);
        return VG_EINVAL;
    }
    *out = vg_project_parse(&fs, d);
    vg_project_files_free(&fs);
    if (*out == NULL) {
        vg_errf(errmsg, "out of memory parsing the project");
        return VG_ENOMEM;
    }
    return VG_OK;
}

/* Thread pool: everything slow happens here, off the loop. */
static void load_work_cb(uv_work_t *w)
{
    struct load_job *j = w->data;
    struct vg_project *p = NULL;
    struct vg_diags d;
    char why[VG_ERRMSG_SIZE] = "";
    bool nomem = false;
    int rv;

    vg_diags_init(&d);
    rv = node_project_bundle_parse(j->u->buf, (size_t)j->u->total, j->u->digest,
                                   &p, &d, why);
    if (rv == VG_EMALFORMED) {
        j->status = rv;
        vg_errf(j->errmsg, "the upload is not a project bundle: %s", why);
        goto out;
    }
    if (rv == VG_EINVAL) {
        j->status = rv;
        vg_errf(j->errmsg,
                "digest mismatch: %s, the digest the upload announced (changed "
                "or corrupted on the way)",
                why);
        goto out;
    }
    if (rv != VG_OK) {
        j->status = VG_ENOMEM;
        vg_errf(j->errmsg, "out of memory validating the project");
        goto out;
    }
    j->name = dup_or_null(p->name, &nomem);
    if (d.n > 0 || d.dropped > 0) {
        size_t keep = d.n < DIAGS_SENT_MAX ? d.n : DIAGS_SENT_MAX;
        vg_diags_sort(&d);
        j->diags = calloc(keep + 1, sizeof *j->diags);
        for (size_t i = 0; j->diags != NULL && i < keep; i++) {
            char line[1024];
            vg_diag_format(&d.v[i], line, sizeof line);
            j->diags[i] = dup_or_null(line, &nomem);
            j->n_diags += j->diags[i] != NULL;
        }
        j->n_errors = d.n + d.dropped;
        j->status = VG_EINVAL;
        vg_errf(j->errmsg, "project %s has %zu error%s; nothing was loaded",
                p->name != NULL ? p->name : "(unnamed)", j->n_errors,
                j->n_errors == 1 ? "" : "s");
        goto out;
    }
    j->body = load_body(j, p, j->u->digest, j->errmsg);
    if (j->body == NULL) {
        j->status = VG_ENOMEM;
    } else if (strlen(j->body) > VG_CMD_MAX_BODY) {
        /* The upload's size was checked at its start; the body adds only
         * metadata, so this means the limits above are inconsistent. */
        j->status = VG_ETOOBIG;
        vg_errf(j->errmsg, "the load command would be %zu bytes, over the %u-byte "
                           "limit of one replicated command",
                strlen(j->body), VG_CMD_MAX_BODY);
    }
out:
    if (nomem && j->status == VG_OK) {
        j->status = VG_ENOMEM;
        vg_errf(j->errmsg, "out of memory validating the project");
    }
    vg_project_free(p);
    vg_diags_free(&d);
}

static void job_free(struct load_job *j)
{
    for (size_t i = 0; j->diags != NULL && i < j->n_diags; i++) {
        free(j->diags[i]);
    }
    free(j->diags);
    free(j->name);
    free(j->body);
    free(j);
}

static void load_op_done(struct load_op *o)
{
    node_conn_unref(o->c);
    free(o->name);
    free(o);
}

static void load_committed_cb(struct vg_repl_proposal *p, int status,
                              uint64_t index, int result)
{
    struct load_op *o = (struct load_op *)p;
    struct node *n = o->n;
    uint64_t version = 0;
    json_t *a;

    if (status != 0) {
        node_log(n, "project: load of '%s' not committed here: %s", o->name,
                 raft_strerror(status));
        node_send_error(o->c, o->id, "not_leader",
                        "leadership was lost before the project load was "
                        "committed (%s); its outcome is unknown: load it again "
                        "(identical files are then reported unchanged)",
                        raft_strerror(status));
        load_op_done(o);
        return;
    }
    if (result != VG_OK && result != VG_REPL_UNCHANGED) {
        node_send_error(o->c, o->id, "failed",
                        "the cluster rejected the project load: %s",
                        vg_strerror(result));
        load_op_done(o);
        return;
    }
    if (result == VG_OK) {
        vg_repl_fsm_project_at(&n->fsm, index, &version);
    } else {
        vg_repl_fsm_project_active(&n->fsm, &version, NULL);
    }
    a = node_answer("project_loaded", o->id);
    json_object_set_new(a, "version", json_integer((json_int_t)version));
    json_object_set_new(a, "unchanged", json_boolean(result == VG_REPL_UNCHANGED));
    json_object_set_new(a, "digest", json_string(o->digest));
    json_object_set_new(a, "name", opt_string(o->name));
    json_object_set_new(a, "index", json_integer((json_int_t)index));
    node_send(o->c, a);
    load_op_done(o);
}

static void send_invalid_project(struct conn *c, const struct load_job *j)
{
    json_t *e = vg_proto_error(j->id, "invalid", j->errmsg);
    json_t *lines = json_array();
    for (size_t i = 0; i < j->n_diags; i++) {
        json_array_append_new(lines, json_string(j->diags[i]));
    }
    json_object_set_new(e, "diagnostics", lines);
    json_object_set_new(e, "errors", json_integer((json_int_t)j->n_errors));
    node_send(c, e);
}

static void propose_load(struct node *n, struct conn *c, struct load_job *j)
{
    struct load_op *o = calloc(1, sizeof *o);
    int rv;

    if (o == NULL) {
        node_send_error(c, j->id, "failed", "out of memory");
        return;
    }
    o->n = n;
    o->c = c;
    o->id = j->id;
    snprintf(o->digest, sizeof o->digest, "%s", j->u->digest);
    o->name = j->name;
    j->name = NULL;
    c->refs++;
    rv = vg_repl_propose(&n->lead, &o->p, VG_CMD_PROJECT_LOAD, j->body,
                         load_committed_cb);
    if (rv == VG_ENOTLEADER) {
        node_send_not_leader(n, c, j->id);
        load_op_done(o);
    } else if (rv != VG_OK) {
        node_send_error(c, j->id, "failed", "cannot submit the project load: %s",
                        vg_strerror(rv));
        load_op_done(o);
    } else {
        node_log(n, "project: '%s' (digest %.16s, %llu bytes) validated, proposed",
                 o->name, o->digest, (unsigned long long)j->u->total);
    }
}

static void start_next_job(struct node *n);

static void load_after_cb(uv_work_t *w, int status)
{
    struct load_job *j = w->data;
    struct node *n = j->n;
    struct conn *c = j->c;

    n->load_jobs--;
    n->job_running = false;
    if (status != 0 || c->closing || n->stopping) {
        /* Cancelled, or nobody to answer: propose nothing. */
    } else if (j->status == VG_EINVAL && j->diags != NULL) {
        send_invalid_project(c, j);
    } else if (j->status != VG_OK) {
        node_send_error(c, j->id,
                        j->status == VG_ENOMEM    ? "failed"
                        : j->status == VG_ETOOBIG ? "too_big"
                                                  : "invalid",
                        "%s", j->errmsg);
    } else if (!n->lead.ready) {
        node_send_not_leader(n, c, j->id);
    } else {
        propose_load(n, c, j);
    }
    upload_free(n, j->u);
    job_free(j);
    node_conn_unref(c);
    start_next_job(n);
}

/* Release a job that never ran. */
static void job_drop(struct node *n, struct load_job *j)
{
    struct conn *c = j->c;
    n->load_jobs--;
    upload_free(n, j->u);
    job_free(j);
    node_conn_unref(c);
}

/* Hand the oldest waiting job to the thread pool unless one runs already.
 * Jobs whose client left while they waited are dropped without running. */
static void start_next_job(struct node *n)
{
    while (!n->job_running && n->jobs_head != NULL) {
        struct load_job *j = n->jobs_head;
        int rv;

        n->jobs_head = j->next;
        if (n->jobs_head == NULL) {
            n->jobs_tail = NULL;
        }
        j->next = NULL;
        if (j->c->closing || n->stopping) {
            job_drop(n, j);
            continue;
        }
        rv = uv_queue_work(&n->loop, &j->work, load_work_cb, load_after_cb);
        if (rv != 0) {
            node_send_error(j->c, j->id, "failed", "cannot start validation: %s",
                            uv_strerror(rv));
            job_drop(n, j);
            continue;
        }
        n->job_running = true;
    }
}

/* Queue the validation of upload U (owned from now on). */
static void start_job(struct node *n, struct conn *c, long long id,
                      struct upload *u)
{
    struct load_job *j = calloc(1, sizeof *j);

    if (j == NULL) {
        upload_free(n, u);
        node_send_error(c, id, "failed", "out of memory");
        return;
    }
    j->n = n;
    j->c = c;
    j->id = id;
    j->u = u;
    j->work.data = j;
    c->refs++;
    n->load_jobs++;
    if (n->jobs_tail != NULL) {
        n->jobs_tail->next = j;
    } else {
        n->jobs_head = j;
    }
    n->jobs_tail = j;
    start_next_job(n);
}

static void send_out_of_sequence(struct conn *c, long long id, uint64_t expected,
                                 const char *why)
{
    char message[256];
    json_t *e;
    snprintf(message, sizeof message, "upload out of sequence: expected offset %llu%s",
             (unsigned long long)expected, why);
    e = vg_proto_error(id, "invalid", message);
    json_object_set_new(e, "expected_offset", json_integer((json_int_t)expected));
    node_send(c, e);
}

static void handle_upload(struct node *n, struct conn *c, json_t *msg,
                          long long id)
{
    static const char *const allowed[] = {"offset", "total", "data", "digest",
                                          "comment", "user", "station", NULL};
    static const char type[] = "project_upload";
    const char *data, *digest, *comment, *user, *station;
    uint64_t offset, total;
    struct upload *u = c->upload;
    size_t len;
    bool nomem = false;

    if (!node_members_ok(c, id, msg, type, allowed) ||
        !node_get_uint(c, id, msg, type, "offset", true, 0, UPLOAD_TOTAL_MAX - 1, 0,
                  &offset) ||
        !node_get_uint(c, id, msg, type, "total", true, 1, UPLOAD_TOTAL_MAX, 0,
                  &total) ||
        !node_get_str(c, id, msg, type, "data", true,
                 sodium_base64_ENCODED_LEN(CHUNK_MAX, sodium_base64_VARIANT_ORIGINAL),
                 &data) ||
        !node_get_str(c, id, msg, type, "digest", true, VG_DIGEST_HEX, &digest) ||
        !node_get_str(c, id, msg, type, "comment", false, COMMENT_MAX, &comment) ||
        !node_get_str(c, id, msg, type, "user", false, NAME_MAX_LEN, &user) ||
        !node_get_str(c, id, msg, type, "station", false, NAME_MAX_LEN, &station)) {
        return;
    }
    if (!is_digest_hex(digest)) {
        node_send_error(c, id, "invalid",
                        "%s: 'digest' must be 64 lowercase hex digits (the BLAKE2b "
                        "digest of the project's files)",
                        type);
        return;
    }
    if (!node_need_ready(n, c, id)) {
        node_project_conn_closing(c); /* a later leader starts from scratch */
        return;
    }
    if (offset == 0) {
        node_project_conn_closing(c);
        if (total > LOAD_BUNDLE_MAX) {
            node_send_error(c, id, "too_big",
                            "the packed project has %llu bytes; one load carries at "
                            "most %u",
                            (unsigned long long)total, LOAD_BUNDLE_MAX);
            return;
        }
        if (n->upload_bytes + total > UPLOAD_BUDGET) {
            node_send_error(c, id, "busy",
                            "node %llu is already receiving %zu bytes of project "
                            "uploads; try again shortly",
                            (unsigned long long)n->cfg->id, n->upload_bytes);
            return;
        }
        u = calloc(1, sizeof *u);
        if (u == NULL || (u->buf = malloc((size_t)total)) == NULL) {
            free(u);
            node_send_error(c, id, "failed", "out of memory");
            return;
        }
        u->total = total;
        snprintf(u->digest, sizeof u->digest, "%s", digest);
        u->comment = dup_or_null(comment, &nomem);
        u->user = dup_or_null(user, &nomem);
        u->station = dup_or_null(station, &nomem);
        n->upload_bytes += (size_t)total;
        c->upload = u;
        if (nomem) {
            node_project_conn_closing(c);
            node_send_error(c, id, "failed", "out of memory");
            return;
        }
    } else if (u == NULL || offset != u->received) {
        send_out_of_sequence(c, id, u != NULL ? u->received : 0,
                             u != NULL ? "" : " (no upload in progress here)");
        return;
    }
    if (total != u->total || strcmp(digest, u->digest) != 0) {
        send_out_of_sequence(c, id, u->received,
                             "; 'total' and 'digest' must stay those of the "
                             "chunk at offset 0");
        return;
    }
    /* Decode in place; a chunk can never write past the announced total. */
    if (sodium_base642bin(u->buf + u->received,
                          (size_t)(u->total - u->received) < CHUNK_MAX
                              ? (size_t)(u->total - u->received)
                              : CHUNK_MAX,
                          data, strlen(data), NULL, &len, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        len == 0) {
        node_send_error(c, id, "invalid",
                        "%s: 'data' must be base64 (with padding) of 1..%u bytes, "
                        "and no more than the %llu bytes still expected",
                        type, CHUNK_MAX,
                        (unsigned long long)(u->total - u->received));
        return;
    }
    u->received += len;
    if (u->received < u->total) {
        json_t *a = node_answer("upload", id);
        json_object_set_new(a, "received", json_integer((json_int_t)u->received));
        json_object_set_new(a, "total", json_integer((json_int_t)u->total));
        node_send(c, a);
        return;
    }
    c->upload = NULL; /* the job owns it now */
    start_job(n, c, id, u);
}

/* ---------------------------------------------------------------- reads */

static void handle_show(struct node *n, struct conn *c, json_t *msg, long long id)
{
    static const char *const allowed[] = {"version", NULL};
    struct vg_repl_project p;
    uint64_t version;
    uint64_t active = 0;
    json_t *a;
    int rv;

    if (!node_members_ok(c, id, msg, "project_show", allowed) ||
        !node_get_uint(c, id, msg, "project_show", "version", false, 1, INT64_MAX, 0,
                  &version)) {
        return;
    }
    rv = vg_repl_fsm_project_info(&n->fsm, version, &p);
    if (rv == VG_ENOTFOUND && version == 0) {
        a = local_answer(n, "project", id);
        json_object_set_new(a, "version", json_integer(0));
        json_object_set_new(a, "active_version", json_integer(0));
        json_object_set_new(a, "message", json_string("no project has been loaded"));
        node_send(c, a);
        return;
    }
    if (rv == VG_ENOTFOUND) {
        send_no_version(n, c, id, version);
        return;
    }
    if (rv != VG_OK) {
        send_db_error(n, c, id, rv);
        return;
    }
    vg_repl_fsm_project_active(&n->fsm, &active, NULL);
    a = version_json(&p);
    merge_local(n, a, "project", id);
    json_object_set_new(a, "active_version", json_integer((json_int_t)active));
    vg_repl_project_clear(&p);
    node_send(c, a);
}

static void handle_history(struct node *n, struct conn *c, json_t *msg,
                           long long id)
{
    static const char *const allowed[] = {"limit", NULL};
    struct vg_repl_project *v;
    size_t count, total;
    uint64_t limit;
    uint64_t active = 0;
    json_t *a, *list;
    int rv;

    if (!node_members_ok(c, id, msg, "project_history", allowed) ||
        !node_get_uint(c, id, msg, "project_history", "limit", false, 1, HISTORY_MAX,
                  HISTORY_DEFAULT, &limit)) {
        return;
    }
    rv = vg_repl_fsm_project_list(&n->fsm, (size_t)limit, &v, &count, &total);
    if (rv != VG_OK) {
        send_db_error(n, c, id, rv);
        return;
    }
    vg_repl_fsm_project_active(&n->fsm, &active, NULL);
    a = json_object();
    merge_local(n, a, "project_history", id);
    list = json_array();
    for (size_t i = 0; i < count; i++) {
        json_array_append_new(list, version_json(&v[i]));
    }
    vg_repl_project_list_free(v, count);
    json_object_set_new(a, "active_version", json_integer((json_int_t)active));
    json_object_set_new(a, "total", json_integer((json_int_t)total));
    json_object_set_new(a, "versions", list);
    node_send(c, a);
}

static void handle_get(struct node *n, struct conn *c, json_t *msg, long long id)
{
    static const char *const allowed[] = {"version", "offset", "length", NULL};
    static const char type[] = "project_get";
    struct vg_repl_project p;
    uint64_t version, offset, length, total;
    unsigned char *data;
    size_t len;
    char *b64;
    size_t b64_size;
    json_t *a;
    int rv;

    if (!node_members_ok(c, id, msg, type, allowed) ||
        !node_get_uint(c, id, msg, type, "version", false, 1, INT64_MAX, 0, &version) ||
        !node_get_uint(c, id, msg, type, "offset", true, 0, INT64_MAX, 0, &offset) ||
        !node_get_uint(c, id, msg, type, "length", false, 1, CHUNK_MAX, CHUNK_MAX,
                  &length)) {
        return;
    }
    rv = vg_repl_fsm_project_bundle(&n->fsm, version, offset, (size_t)length,
                                    &data, &len, &total, &p);
    if (rv == VG_ENOTFOUND) {
        send_no_version(n, c, id, version);
        return;
    }
    if (rv == VG_EINVAL) {
        node_send_error(c, id, "invalid",
                        "%s: offset %llu is past the end of the bundle (%llu bytes)",
                        type, (unsigned long long)offset, (unsigned long long)total);
        return;
    }
    if (rv != VG_OK) {
        send_db_error(n, c, id, rv);
        return;
    }
    b64_size = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    b64 = malloc(b64_size);
    if (b64 == NULL) {
        free(data);
        vg_repl_project_clear(&p);
        node_send_error(c, id, "failed", "out of memory");
        return;
    }
    sodium_bin2base64(b64, b64_size, data, len, sodium_base64_VARIANT_ORIGINAL);
    free(data);
    a = json_object();
    merge_local(n, a, "project_bundle", id);
    json_object_set_new(a, "version", json_integer((json_int_t)p.version));
    json_object_set_new(a, "name", json_string(p.name));
    json_object_set_new(a, "digest", json_string(p.digest));
    json_object_set_new(a, "total", json_integer((json_int_t)total));
    json_object_set_new(a, "offset", json_integer((json_int_t)offset));
    json_object_set_new(a, "length", json_integer((json_int_t)len));
    json_object_set_new(a, "data", json_stringn_nocheck(b64, b64_size - 1));
    free(b64);
    vg_repl_project_clear(&p);
    node_send(c, a);
}

static void handle_subscribe(struct node *n, struct conn *c, json_t *msg,
                             long long id)
{
    static const char *const allowed[] = {"topics", NULL};
    json_t *topics = json_object_get(msg, "topics");
    json_t *t;
    json_t *a;
    size_t i;
    bool project = false;

    if (!node_members_ok(c, id, msg, "subscribe", allowed)) {
        return;
    }
    if (!json_is_array(topics) || json_array_size(topics) > 16) {
        node_send_error(c, id, "invalid",
                        "subscribe: member 'topics' must be an array of topic "
                        "names (known: project); [] ends every subscription");
        return;
    }
    json_array_foreach(topics, i, t)
    {
        if (!json_is_string(t) || strcmp(json_string_value(t), "project") != 0) {
            node_send_error(c, id, "invalid",
                            "subscribe: unknown topic %s%.64s%s (known: project)",
                            json_is_string(t) ? "'" : "",
                            json_is_string(t) ? json_string_value(t) : "(not a string)",
                            json_is_string(t) ? "'" : "");
            return;
        }
        project = true;
    }
    c->sub_project = project;
    a = node_answer("subscribed", id);
    json_object_set_new(a, "topics", project ? json_pack("[s]", "project")
                                             : json_array());
    json_object_set_new(a, "node", json_integer((json_int_t)n->cfg->id));
    /* The state the events continue from, so a watcher misses nothing. */
    json_object_set_new(a, "project", node_project_status(n));
    node_send(c, a);
}

bool node_project_handle(struct node *n, struct conn *c, const char *type,
                         json_t *msg, long long id)
{
    if (strcmp(type, "project_upload") == 0) {
        handle_upload(n, c, msg, id);
    } else if (strcmp(type, "project_show") == 0) {
        handle_show(n, c, msg, id);
    } else if (strcmp(type, "project_history") == 0) {
        handle_history(n, c, msg, id);
    } else if (strcmp(type, "project_get") == 0) {
        handle_get(n, c, msg, id);
    } else if (strcmp(type, "subscribe") == 0) {
        handle_subscribe(n, c, msg, id);
    } else {
        return false;
    }
    return true;
}
