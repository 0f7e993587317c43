/* vigild's live values and setpoints: tag subscriptions, reads and writes on
 * the polling leader, and the replicated action log (MESSAGES.md, "Live
 * values").
 *
 * Subscriptions. A connection's subscription keeps the names it asked for
 * (tags, screens, all) and, resolved against the version being polled, a
 * bitmap of member tags, a bitmap of tags with something unsent ("dirty")
 * and a FIFO of the dirty tags. A change from a poller only sets a dirty bit
 * (once per tag) and queues the tag; frames are built from the FIFO, with
 * each tag's newest value, while the connection's output queue is below
 * FLUSH_BELOW, and resume from node_tags_drained when the client has read.
 * So a slow client costs at most its bitmaps and FIFO (bounded by the
 * project's size), sees the newest values rather than all of them, and
 * holds up no one. The image after a subscribe or a new project version goes
 * through the same FIFO: every member is queued in tag order, and frames
 * are marked "image" until the FIFO first runs empty.
 *
 * Setpoints. A tag_write is checked against the polled project, committed as
 * a SETPOINT command, and written to the PLC from the proposal callback only
 * if the node is still the ready leader of the term the command was
 * proposed (and so committed) in, through the poller of that term (which
 * writes the fencing registers first and drops a write it could not start
 * in time). The outcome is answered to the client and recorded with a
 * SETPOINT_RESULT command. The confirmed value (as the PLC holds it after
 * rounding) is pushed to subscribers at once, so another station sees an
 * operator's action without waiting for the next poll. Results are queued and proposed from the loop
 * iteration (node_tags_update), never from inside a raft callback (libraft
 * 0.15 crashes on raft_apply while it is failing requests during a
 * step-down). A new leader closes the actions of earlier terms that have no
 * outcome as "unknown".
 *
 * Failure modes.
 *   - Readiness lost: node_tags_leadership_lost says bye to every subscribed
 *     connection and closes it (the client re-subscribes at the new
 *     leader); pending results are dropped (the next leader records
 *     "unknown"); a write still queued in a poller fails with VG_ECLOSED and
 *     is answered not_leader.
 *   - Polling stops or switches version: subscriptions become unresolved
 *     (nothing is sent) and are resolved again, with a fresh image, when the
 *     new version is polled. A write committed against an older version is
 *     not carried out (the tag may mean something else now).
 *   - Client gone while its write is in flight: the answer is dropped, the
 *     write and its record go ahead (the op holds a connection reference). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../config/project.h"
#include "internal.h"
#include "plc/plc.h"

#define FRAME_VALUES 1000
#define FLUSH_BELOW (256u * 1024u)
#define MAX_NAMES 100000u
#define NAME_MAX_BYTES 256u
#define READ_MAX 10000u
#define WHO_MAX 128u
#define SWEEP_MAX 1000u

struct tag_sub {
    struct conn *c;
    json_t *tags;    /* the names asked for (arrays; NULL when absent) */
    json_t *screens;
    bool all;
    /* Resolved against the version polled now (resolved false: nothing is
     * polled, nothing is sent). */
    bool resolved;
    uint64_t version;
    size_t n_tags;          /* tags of that version */
    unsigned char *member;  /* bit per tag: subscribed */
    unsigned char *dirty;   /* bit per tag: in the FIFO */
    uint32_t *fifo;         /* dirty tags, fifo[head..tail) */
    size_t head, tail, cap; /* cap: the number of members */
    size_t count;           /* members */
    json_t *unknown;        /* names of neither a tag nor a screen */
    bool image;             /* frames sent now belong to the image */
    bool image_started;     /* the image's first frame went out */
};

/* A setpoint on its way: committed, then written, then answered. */
struct write_op {
    struct vg_repl_proposal p; /* first: the proposal callback casts back */
    struct node *n;
    struct conn *c;
    long long id;
    uint32_t tag;
    double value;
    double readback;  /* VALUE as the PLC holds it (after rounding) */
    uint64_t version;
    uint64_t action;
    char name[NAME_MAX_BYTES + 1];
};

/* An outcome waiting to be proposed from the loop iteration. */
struct tag_result {
    struct vg_repl_proposal p;
    struct tag_result *next;
    uint64_t action;
    raft_term term;
    char outcome[16];
    char message[512];
};

static bool bit(const unsigned char *b, uint32_t i)
{
    return (b[i >> 3] >> (i & 7)) & 1;
}

static void bit_set(unsigned char *b, uint32_t i)
{
    b[i >> 3] |= (unsigned char)(1u << (i & 7));
}

static void bit_clear(unsigned char *b, uint32_t i)
{
    b[i >> 3] &= (unsigned char)~(1u << (i & 7));
}

static const char *quality_name(int q)
{
    switch (q) {
    case VG_PLC_GOOD:
        return "good";
    case VG_PLC_BAD_VALUE:
        return "bad_value";
    case VG_PLC_BAD_COMM:
        return "bad_comm";
    default:
        return "pending";
    }
}

static json_t *entry(const struct vg_project *pr,
                     const struct node_tag_value *values, uint32_t i)
{
    const struct node_tag_value *v = &values[i];
    return json_pack("{s:s, s:o, s:s, s:o}", "tag", pr->tags[i].name, "value",
                     v->quality == VG_PLC_GOOD ? json_real(v->value) : json_null(),
                     "quality", quality_name(v->quality), "t",
                     v->quality >= 0 ? json_integer((json_int_t)v->t_ms)
                                     : json_null());
}

/* ------------------------------------------------------- subscriptions */

static void sub_unresolve(struct tag_sub *s)
{
    free(s->member);
    free(s->dirty);
    free(s->fifo);
    json_decref(s->unknown);
    s->member = s->dirty = NULL;
    s->fifo = NULL;
    s->unknown = NULL;
    s->head = s->tail = s->cap = s->count = 0;
    s->resolved = false;
    s->version = 0;
    s->image = s->image_started = false;
}

static void sub_free(struct tag_sub *s)
{
    if (s == NULL) {
        return;
    }
    sub_unresolve(s);
    json_decref(s->tags);
    json_decref(s->screens);
    free(s);
}

static void fifo_push(struct tag_sub *s, uint32_t t)
{
    if (s->tail == s->cap) {
        /* Compact: at most COUNT tags are ever queued at once. */
        memmove(s->fifo, s->fifo + s->head, (s->tail - s->head) * sizeof *s->fifo);
        s->tail -= s->head;
        s->head = 0;
    }
    s->fifo[s->tail++] = t;
    bit_set(s->dirty, t);
}

static void mark(struct tag_sub *s, const struct vg_project *pr, const char *name,
                 bool *found)
{
    int t = vg_project_find_tag(pr, name);
    if (t >= 0) {
        bit_set(s->member, (uint32_t)t);
        *found = true;
    }
}

/* Resolve S's names against PR (version VERSION) and queue the image. Out of
 * memory leaves S unresolved (it says so in the log; the client sees no
 * image and can subscribe again). */
static void sub_resolve(struct node *n, struct tag_sub *s,
                        const struct vg_project *pr, uint64_t version)
{
    size_t bytes;
    size_t i;
    json_t *name;

    sub_unresolve(s);
    if (pr == NULL) {
        return;
    }
    bytes = (pr->n_tags + 7) / 8 + 1;
    s->member = calloc(bytes, 1);
    s->dirty = calloc(bytes, 1);
    s->unknown = json_array();
    if (s->member == NULL || s->dirty == NULL || s->unknown == NULL) {
        goto nomem;
    }
    s->n_tags = pr->n_tags;
    if (s->all) {
        for (uint32_t t = 0; t < pr->n_tags; t++) {
            bit_set(s->member, t);
        }
    }
    json_array_foreach(s->tags, i, name)
    {
        bool found = false;
        mark(s, pr, json_string_value(name), &found);
        if (!found) {
            json_array_append(s->unknown, name);
        }
    }
    json_array_foreach(s->screens, i, name)
    {
        int sc = vg_project_find_screen(pr, json_string_value(name));
        if (sc < 0) {
            json_array_append(s->unknown, name);
            continue;
        }
        for (size_t o = 0; o < pr->screens[sc].n_objects; o++) {
            const struct vg_screen_object *ob = &pr->screens[sc].objects[o];
            if (ob->tag.name != NULL && ob->tag.index >= 0) {
                bit_set(s->member, (uint32_t)ob->tag.index);
            }
            for (size_t k = 0; k < ob->n_tags; k++) {
                if (ob->tags[k].name != NULL && ob->tags[k].index >= 0) {
                    bit_set(s->member, (uint32_t)ob->tags[k].index);
                }
            }
        }
    }
    for (uint32_t t = 0; t < pr->n_tags; t++) {
        s->count += bit(s->member, t);
    }
    s->cap = s->count;
    s->fifo = malloc((s->cap + 1) * sizeof *s->fifo);
    if (s->fifo == NULL) {
        goto nomem;
    }
    for (uint32_t t = 0; t < pr->n_tags; t++) {
        if (bit(s->member, t)) {
            fifo_push(s, t);
        }
    }
    s->resolved = true;
    s->version = version;
    s->image = true;
    s->image_started = false;
    return;
nomem:
    node_log(n, "tags: out of memory resolving a subscription of %zu tags",
             pr->n_tags);
    sub_unresolve(s);
}

/* Send what S holds back while the connection has room. */
static void sub_flush(struct node *n, struct tag_sub *s)
{
    struct conn *c = s->c;
    const struct node_tag_value *values;
    const struct vg_project *pr;
    uint64_t version = 0;

    if (!s->resolved || c->closing) {
        return;
    }
    pr = node_plc_project(n, &version, &values);
    if (pr == NULL || version != s->version) {
        return;
    }
    while (!c->closing && c->queued < FLUSH_BELOW &&
           (s->tail > s->head || (s->image && !s->image_started))) {
        json_t *list = json_array();
        json_t *ev;
        size_t k;

        for (k = 0; k < FRAME_VALUES && s->head < s->tail; k++) {
            uint32_t t = s->fifo[s->head++];
            bit_clear(s->dirty, t);
            json_array_append_new(list, entry(pr, values, t));
        }
        if (s->head == s->tail) {
            s->head = s->tail = 0;
        }
        ev = json_pack("{s:s, s:s, s:s, s:I, s:o}", "type", "event", "topic",
                       "tags", "event", s->image ? "image" : "values", "version",
                       (json_int_t)version, "values", list);
        if (s->image) {
            bool last = s->tail == s->head;
            if (!s->image_started) {
                json_object_set(ev, "unknown", s->unknown);
                s->image_started = true;
            }
            json_object_set_new(ev, "last", json_boolean(last));
            if (last) {
                s->image = false;
            }
        }
        node_send(c, ev);
    }
}

void node_tags_changed(struct node *n, const struct vg_plc_change *v,
                       size_t count)
{
    const struct node_tag_value *values;
    uint64_t version = 0;

    if (node_plc_project(n, &version, &values) == NULL) {
        return;
    }
    for (struct conn *c = n->conns; c != NULL; c = c->next) {
        struct tag_sub *s = c->tag_sub;
        if (s == NULL || !s->resolved || s->version != version) {
            continue;
        }
        for (size_t i = 0; i < count; i++) {
            uint32_t t = v[i].tag;
            if (t < s->n_tags && bit(s->member, t) && !bit(s->dirty, t)) {
                fifo_push(s, t);
            }
        }
    }
    /* Flushing may close a connection (and unlink it): walk again, safely. */
    for (struct conn *c = n->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (c->tag_sub != NULL) {
            sub_flush(n, c->tag_sub);
        }
    }
}

void node_tags_polling_changed(struct node *n)
{
    const struct node_tag_value *values;
    uint64_t version = 0;
    const struct vg_project *pr = node_plc_project(n, &version, &values);

    for (struct conn *c = n->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (c->tag_sub != NULL) {
            sub_resolve(n, c->tag_sub, pr, version);
            sub_flush(n, c->tag_sub);
        }
    }
}

void node_tags_drained(struct conn *c)
{
    if (c->tag_sub != NULL && !c->closing) {
        sub_flush(c->n, c->tag_sub);
    }
}

void node_tags_conn_closing(struct conn *c)
{
    sub_free(c->tag_sub);
    c->tag_sub = NULL;
}

void node_tags_leadership_lost(struct node *n)
{
    char reason[160];

    snprintf(reason, sizeof reason,
             "node %llu is no longer the leader; subscribe again at the new leader",
             (unsigned long long)n->cfg->id);
    for (struct conn *c = n->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (c->tag_sub != NULL) {
            node_send(c, json_pack("{s:s, s:s}", "type", "bye", "reason", reason));
            node_conn_close(c);
        }
    }
    /* Outcomes not yet proposed cannot be any more: the next leader records
     * those actions as "unknown". */
    while (n->results_head != NULL) {
        struct tag_result *r = n->results_head;
        n->results_head = r->next;
        free(r);
    }
    n->results_tail = NULL;
}

/* Check that MEMBER of MSG, when present, is an array of 1..NAME_MAX_BYTES
 * byte strings; adds their number to *TOTAL. */
static bool names_ok(struct conn *c, long long id, json_t *msg, const char *type,
                     const char *member, size_t *total)
{
    json_t *a = json_object_get(msg, member);
    size_t i;
    json_t *v;

    if (a == NULL || json_is_null(a)) {
        return true;
    }
    if (!json_is_array(a)) {
        node_send_error(c, id, "invalid", "%s: member '%s' must be an array of names",
                        type, member);
        return false;
    }
    json_array_foreach(a, i, v)
    {
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            json_string_length(v) > NAME_MAX_BYTES) {
            node_send_error(c, id, "invalid",
                            "%s: %s[%zu] must be a name of 1..%u bytes", type,
                            member, i, NAME_MAX_BYTES);
            return false;
        }
    }
    *total += json_array_size(a);
    return true;
}

static json_t *names_copy(json_t *msg, const char *member)
{
    json_t *a = json_object_get(msg, member);
    return json_is_array(a) && json_array_size(a) > 0 ? json_deep_copy(a) : NULL;
}

static void handle_subscribe(struct node *n, struct conn *c, json_t *msg,
                             long long id)
{
    static const char *const allowed[] = {"tags", "screens", "all", NULL};
    static const char type[] = "tags_subscribe";
    json_t *all = json_object_get(msg, "all");
    const struct node_tag_value *values;
    const struct vg_project *pr;
    uint64_t version = 0;
    size_t total = 0;
    struct tag_sub *s;
    json_t *a;

    if (!node_members_ok(c, id, msg, type, allowed) ||
        !names_ok(c, id, msg, type, "tags", &total) ||
        !names_ok(c, id, msg, type, "screens", &total)) {
        return;
    }
    if (all != NULL && !json_is_boolean(all)) {
        node_send_error(c, id, "invalid", "%s: member 'all' must be true or false",
                        type);
        return;
    }
    if (total > MAX_NAMES) {
        node_send_error(c, id, "invalid", "%s: %zu names, at most %u allowed", type,
                        total, MAX_NAMES);
        return;
    }
    if (!node_need_ready(n, c, id)) {
        return;
    }
    sub_free(c->tag_sub);
    c->tag_sub = NULL;
    pr = node_plc_project(n, &version, &values);
    a = node_answer("tags_subscribed", id);
    json_object_set_new(a, "node", json_integer((json_int_t)n->cfg->id));
    if (total == 0 && !json_is_true(all)) {
        /* Nothing named: the subscription ends. */
        json_object_set_new(a, "version", json_integer((json_int_t)version));
        json_object_set_new(a, "count", json_integer(0));
        json_object_set_new(a, "unknown", json_array());
        node_send(c, a);
        return;
    }
    s = calloc(1, sizeof *s);
    if (s == NULL) {
        json_decref(a);
        node_send_error(c, id, "failed", "out of memory");
        return;
    }
    s->c = c;
    s->tags = names_copy(msg, "tags");
    s->screens = names_copy(msg, "screens");
    s->all = json_is_true(all);
    c->tag_sub = s;
    sub_resolve(n, s, pr, version);
    json_object_set_new(a, "version",
                        json_integer((json_int_t)(s->resolved ? version : 0)));
    json_object_set_new(a, "count", json_integer((json_int_t)s->count));
    json_object_set_new(a, "unknown",
                        s->unknown != NULL ? json_incref(s->unknown) : json_array());
    node_send(c, a);
    sub_flush(n, s); /* the image, right behind the answer */
}

/* The project the ready leader polls, or NULL after answering C: not_leader,
 * or failed while it does not poll (yet). */
static const struct vg_project *polled_project(struct node *n, struct conn *c,
                                               long long id, uint64_t *version,
                                               const struct node_tag_value **values)
{
    const struct vg_project *pr;

    if (!node_need_ready(n, c, id)) {
        return NULL;
    }
    pr = node_plc_project(n, version, values);
    if (pr == NULL) {
        node_send_error(c, id, "failed", "node %llu does not poll yet (%s)",
                        (unsigned long long)n->cfg->id,
                        n->plc_error[0] ? n->plc_error
                                        : "no project loaded, or preparing to poll");
    }
    return pr;
}

static void handle_read(struct node *n, struct conn *c, json_t *msg, long long id)
{
    static const char *const allowed[] = {"tags", NULL};
    static const char type[] = "tags_read";
    json_t *names = json_object_get(msg, "tags");
    const struct node_tag_value *values;
    const struct vg_project *pr;
    uint64_t version = 0;
    size_t total = 0;
    json_t *list, *unknown, *name, *a;
    size_t i;

    if (!node_members_ok(c, id, msg, type, allowed) ||
        !names_ok(c, id, msg, type, "tags", &total)) {
        return;
    }
    if (total == 0 || total > READ_MAX) {
        node_send_error(c, id, "invalid",
                        "%s: member 'tags' must name 1..%u tags (required)", type,
                        READ_MAX);
        return;
    }
    pr = polled_project(n, c, id, &version, &values);
    if (pr == NULL) {
        return;
    }
    list = json_array();
    unknown = json_array();
    json_array_foreach(names, i, name)
    {
        int t = vg_project_find_tag(pr, json_string_value(name));
        if (t < 0) {
            json_array_append(unknown, name);
        } else {
            /* Readers print units; subscribers have the project already. */
            json_t *e = entry(pr, values, (uint32_t)t);
            json_object_set_new(e, "unit", json_string(pr->tags[t].unit));
            json_array_append_new(list, e);
        }
    }
    if (json_array_size(unknown) > 0) {
        json_t *e = vg_proto_error(id, "invalid", "");
        char message[384];
        snprintf(message, sizeof message,
                 "%zu unknown tag(s) in project version %llu, the first '%.256s'",
                 json_array_size(unknown), (unsigned long long)version,
                 json_string_value(json_array_get(unknown, 0)));
        json_object_set_new(e, "message", json_string(message));
        json_object_set_new(e, "unknown", unknown);
        json_decref(list);
        node_send(c, e);
        return;
    }
    json_decref(unknown);
    a = node_answer("tags_values", id);
    json_object_set_new(a, "node", json_integer((json_int_t)n->cfg->id));
    json_object_set_new(a, "version", json_integer((json_int_t)version));
    json_object_set_new(a, "values", list);
    node_send(c, a);
}

/* ------------------------------------------------------------ setpoints */

static void result_queue(struct node *n, uint64_t action, raft_term term,
                         const char *outcome, const char *message)
{
    struct tag_result *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return; /* the next leader records it as unknown */
    }
    r->action = action;
    r->term = term;
    snprintf(r->outcome, sizeof r->outcome, "%s", outcome);
    snprintf(r->message, sizeof r->message, "%s", message != NULL ? message : "");
    if (n->results_tail != NULL) {
        n->results_tail->next = r;
    } else {
        n->results_head = r;
    }
    n->results_tail = r;
}

static void op_free(struct write_op *op)
{
    node_conn_unref(op->c);
    free(op);
}

/* Answer OP's client with code CODE and record the outcome OUTCOME. */
static void op_fail(struct write_op *op, const char *code, const char *outcome,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void op_fail(struct write_op *op, const char *code, const char *outcome,
                    const char *fmt, ...)
{
    char why[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    node_send_error(op->c, op->id, code, "action %llu (%s = %g) was committed but %s",
                    (unsigned long long)op->action, op->name, op->value, why);
    if (outcome != NULL) {
        result_queue(op->n, op->action, op->p.term, outcome, why);
    }
}

static void write_done_cb(struct vg_plc_poller *p, int status,
                          const char *errmsg, void *data)
{
    struct write_op *op = data;
    struct node *n = op->n;
    (void)p;

    if (status == 0) {
        uint64_t now = vg_now_wall_ms();
        json_t *a = node_answer("tag_written", op->id);
        node_plc_written(n, op->tag, op->readback, now);
        json_object_set_new(a, "tag", json_string(op->name));
        json_object_set_new(a, "value", json_real(op->value));
        json_object_set_new(a, "action", json_integer((json_int_t)op->action));
        json_object_set_new(a, "term", json_integer((json_int_t)op->p.term));
        json_object_set_new(a, "node", json_integer((json_int_t)n->cfg->id));
        json_object_set_new(a, "written_ms", json_integer((json_int_t)now));
        node_send(op->c, a);
        result_queue(n, op->action, op->p.term, "written", NULL);
    } else if (status == VG_ECLOSED) {
        op_fail(op, "not_leader", "failed",
                "not written: node %llu stopped polling before the write (%s)",
                (unsigned long long)n->cfg->id, errmsg);
    } else {
        op_fail(op, "failed", "failed", "the PLC write failed: %s", errmsg);
    }
    op_free(op);
}

static void setpoint_cb(struct vg_repl_proposal *p, int status, uint64_t index,
                        int result)
{
    struct write_op *op = (struct write_op *)p;
    struct node *n = op->n;
    const struct node_tag_value *values;
    const struct vg_project *pr;
    struct vg_plc_poller *poller = NULL;
    uint64_t version = 0;
    raft_term term = 0;
    char errmsg[VG_ERRMSG_SIZE];

    op->action = index;
    if (status != 0) {
        node_send_error(op->c, op->id, "not_leader",
                        "leadership lost before the setpoint %s = %g was committed "
                        "(%s); it was not written, and should the new leader "
                        "commit it after all, it records it as 'unknown' without "
                        "writing it",
                        op->name, op->value, raft_strerror(status));
        op_free(op);
        return;
    }
    if (result != VG_OK) {
        node_send_error(op->c, op->id, "invalid",
                        "the cluster rejected the setpoint %s = %g: %s", op->name,
                        op->value, vg_strerror(result));
        op_free(op);
        return;
    }
    /* Committed. Write only as the ready leader of the term it was proposed
     * (and therefore committed) in, through that term's poller. */
    if (!n->lead.ready || n->lead.term != p->term ||
        raft_state(&n->raft) != RAFT_LEADER || n->raft.current_term != p->term) {
        op_fail(op, "not_leader", NULL,
                "not written: node %llu lost leadership of term %llu",
                (unsigned long long)n->cfg->id, (unsigned long long)p->term);
        op_free(op);
        return;
    }
    pr = node_plc_project(n, &version, &values);
    if (pr != NULL && version == op->version) {
        poller = node_plc_poller(n, (size_t)pr->tags[op->tag].plc.index, &term);
    }
    if (poller == NULL || term != p->term) {
        op_fail(op, "failed", "failed",
                "not written: project version %llu is no longer polled",
                (unsigned long long)op->version);
        op_free(op);
        return;
    }
    if (vg_plc_poller_write(poller, op->tag, op->value, (uint32_t)n->cfg->id,
                            (uint32_t)p->term, write_done_cb, op, errmsg) != 0) {
        op_fail(op, "failed", "failed", "not written: %s", errmsg);
        op_free(op);
    }
    /* Otherwise write_done_cb answers and frees. */
}

/* The value of a write request for tag T into *OUT, or false with a sentence
 * in WHY. */
static bool write_value(const struct vg_tag *t, json_t *v, double *out,
                        char *why, size_t size)
{
    if (t->type == VG_DT_BOOL) {
        if (json_is_boolean(v)) {
            *out = json_is_true(v) ? 1 : 0;
            return true;
        }
        if (json_is_number(v) &&
            (json_number_value(v) == 0 || json_number_value(v) == 1)) {
            *out = json_number_value(v);
            return true;
        }
        snprintf(why, size, "tag %s is a bool: 'value' must be true, false, 0 or 1",
                 t->name);
        return false;
    }
    if (!json_is_number(v) || !isfinite(json_number_value(v))) {
        snprintf(why, size, "tag %s is %s: 'value' must be a number", t->name,
                 vg_dtype_name(t->type));
        return false;
    }
    *out = json_number_value(v);
    if (t->has_limits && (*out < t->min || *out > t->max)) {
        snprintf(why, size, "value %g of %s is out of limits %g .. %g%s%s", *out,
                 t->name, t->min, t->max, t->unit[0] ? " " : "", t->unit);
        return false;
    }
    return true;
}

static void handle_write(struct node *n, struct conn *c, json_t *msg,
                         long long id)
{
    static const char *const allowed[] = {"tag", "value", "user", "station", NULL};
    static const char type[] = "tag_write";
    const struct node_tag_value *values;
    const struct vg_project *pr;
    const struct vg_tag *t;
    const char *name, *user, *station;
    struct vg_plc_poller_status st;
    struct vg_plc_poller *poller;
    struct vg_plc_write w;
    struct write_op *op;
    uint64_t version = 0;
    raft_term term = 0;
    char why[VG_ERRMSG_SIZE];
    double value;
    json_t *body;
    char *text;
    int idx, rv;

    if (!node_members_ok(c, id, msg, type, allowed) ||
        !node_get_str(c, id, msg, type, "tag", true, NAME_MAX_BYTES, &name) ||
        !node_get_str(c, id, msg, type, "user", false, WHO_MAX, &user) ||
        !node_get_str(c, id, msg, type, "station", false, WHO_MAX, &station)) {
        return;
    }
    if (json_object_get(msg, "value") == NULL) {
        node_send_error(c, id, "invalid", "%s: member 'value' is required", type);
        return;
    }
    pr = polled_project(n, c, id, &version, &values);
    if (pr == NULL) {
        return;
    }
    idx = vg_project_find_tag(pr, name);
    if (idx < 0) {
        node_send_error(c, id, "invalid", "unknown tag '%s' in project version %llu",
                        name, (unsigned long long)version);
        return;
    }
    t = &pr->tags[idx];
    if (!t->writable) {
        node_send_error(c, id, "invalid", "tag %s is not writable", t->name);
        return;
    }
    if (!write_value(t, json_object_get(msg, "value"), &value, why, sizeof why)) {
        node_send_error(c, id, "invalid", "%s", why);
        return;
    }
    if (vg_plc_write_encode(t, value, &w, why) != VG_OK) {
        node_send_error(c, id, "invalid", "%s", why);
        return;
    }
    poller = node_plc_poller(n, (size_t)t->plc.index, &term);
    if (poller == NULL) {
        node_send_error(c, id, "failed", "PLC %s is not polled by node %llu",
                        pr->plcs[t->plc.index].name, (unsigned long long)n->cfg->id);
        return;
    }
    vg_plc_poller_status(poller, &st);
    if (!st.connected) {
        node_send_error(c, id, "failed", "PLC %s is unreachable: %s",
                        pr->plcs[t->plc.index].name,
                        st.last_error[0] ? st.last_error : "not connected yet");
        return;
    }

    op = calloc(1, sizeof *op);
    body = json_pack("{s:s, s:f, s:I, s:o, s:o}", "tag", t->name, "value", value,
                     "project_version", (json_int_t)version, "user",
                     user != NULL ? json_string(user) : json_null(), "station",
                     station != NULL ? json_string(station) : json_null());
    if (body != NULL && values[idx].quality == VG_PLC_GOOD) {
        /* For the audit trail: what the operator changed it from. */
        json_object_set_new(body, "old_value", json_real(values[idx].value));
    }
    text = body != NULL ? json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(body);
    if (op == NULL || text == NULL) {
        free(op);
        free(text);
        node_send_error(c, id, "failed", "out of memory");
        return;
    }
    op->n = n;
    op->c = c;
    op->id = id;
    op->tag = (uint32_t)idx;
    op->value = value;
    op->readback = value;
    if (t->type != VG_DT_BOOL) {
        double raw;
        if (vg_plc_scale_to_raw(t, value, &raw, why) == VG_OK) {
            op->readback = vg_plc_scale_to_eng(t, raw);
        }
    }
    op->version = version;
    snprintf(op->name, sizeof op->name, "%s", t->name);
    c->refs++;
    rv = vg_repl_propose(&n->lead, &op->p, VG_CMD_SETPOINT, text, setpoint_cb);
    free(text);
    if (rv == VG_ENOTLEADER) {
        node_send_not_leader(n, c, id);
        op_free(op);
    } else if (rv != VG_OK) {
        node_send_error(c, id, "failed", "cannot submit the setpoint: %s",
                        vg_strerror(rv));
        op_free(op);
    }
}

static void handle_actions(struct node *n, struct conn *c, json_t *msg,
                           long long id)
{
    static const char *const allowed[] = {"limit", "tag", NULL};
    static const char type[] = "actions";
    const char *tag;
    uint64_t limit;
    json_t *list = NULL;

    if (!node_members_ok(c, id, msg, type, allowed) ||
        !node_get_uint(c, id, msg, type, "limit", false, 1, 1000, 100, &limit) ||
        !node_get_str(c, id, msg, type, "tag", false, NAME_MAX_BYTES, &tag)) {
        return;
    }
    if (vg_repl_fsm_actions(&n->fsm, tag, (size_t)limit, &list) != VG_OK) {
        node_send_error(c, id, "failed", "cannot read the action log: %s",
                        n->fsm.errmsg);
        return;
    }
    node_send_replica_answer(n, c, "actions", id, json_pack("{s:o}", "actions", list));
}

static void handle_audit(struct node *n, struct conn *c, json_t *msg,
                         long long id)
{
    static const char *const allowed[] = {"from_ms", "to_ms", "kind", "user",
                                          "before_id", "limit", NULL};
    static const char type[] = "audit";
    struct vg_repl_audit_query q = {0};
    uint64_t from, to, before, limit;
    json_t *out = NULL;

    if (!node_members_ok(c, id, msg, type, allowed) ||
        !node_get_uint(c, id, msg, type, "from_ms", false, 0, UINT64_C(1) << 53, 0,
                       &from) ||
        !node_get_uint(c, id, msg, type, "to_ms", false, 0, UINT64_C(1) << 53, 0,
                       &to) ||
        !node_get_uint(c, id, msg, type, "before_id", false, 0, INT64_MAX, 0,
                       &before) ||
        !node_get_uint(c, id, msg, type, "limit", false, 1, 10000, 100, &limit) ||
        !node_get_str(c, id, msg, type, "kind", false, 64, &q.kind) ||
        !node_get_str(c, id, msg, type, "user", false, WHO_MAX, &q.user)) {
        return;
    }
    if (to != 0 && to < from) {
        node_send_error(c, id, "invalid", "%s: to_ms must not be before from_ms",
                        type);
        return;
    }
    q.from_ms = from;
    q.to_ms = to;
    q.before_id = before;
    q.limit = (size_t)limit;
    if (vg_repl_fsm_audit(&n->fsm, &q, &out) != VG_OK) {
        node_send_error(c, id, "failed", "cannot read the audit trail: %s",
                        n->fsm.errmsg);
        return;
    }
    node_send_replica_answer(n, c, "audit", id, out);
}

bool node_tags_handle(struct node *n, struct conn *c, const char *type,
                      json_t *msg, long long id)
{
    if (strcmp(type, "tags_subscribe") == 0) {
        handle_subscribe(n, c, msg, id);
    } else if (strcmp(type, "tags_read") == 0) {
        handle_read(n, c, msg, id);
    } else if (strcmp(type, "tag_write") == 0) {
        handle_write(n, c, msg, id);
    } else if (strcmp(type, "actions") == 0) {
        handle_actions(n, c, msg, id);
    } else if (strcmp(type, "audit") == 0) {
        handle_audit(n, c, msg, id);
    } else {
        return false;
    }
    return true;
}

/* ------------------------------------------------------- loop iteration */

static void result_cb(struct vg_repl_proposal *p, int status, uint64_t index,
                      int result)
{
    (void)status;
    (void)index;
    (void)result;
    free(p);
}

static int propose_result(struct node *n, struct vg_repl_proposal *p,
                          uint64_t action, const char *outcome,
                          const char *message)
{
    json_t *body = json_pack("{s:I, s:s, s:o}", "action", (json_int_t)action,
                             "outcome", outcome, "message",
                             message != NULL && message[0] != '\0'
                                 ? json_string(message)
                                 : json_null());
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS)
                              : NULL;
    int rv;
    json_decref(body);
    if (text == NULL) {
        return VG_ENOMEM;
    }
    rv = vg_repl_propose(&n->lead, p, VG_CMD_SETPOINT_RESULT, text, result_cb);
    free(text);
    return rv;
}

void node_tags_update(struct node *n)
{
    if (!n->lead.ready) {
        return;
    }
    /* Outcomes of this term's writes. */
    while (n->results_head != NULL) {
        struct tag_result *r = n->results_head;
        n->results_head = r->next;
        if (n->results_head == NULL) {
            n->results_tail = NULL;
        }
        if (r->term != n->lead.term ||
            propose_result(n, &r->p, r->action, r->outcome, r->message) != VG_OK) {
            free(r);
        }
    }
    /* Once per term: actions of earlier terms nobody recorded an outcome
     * for. Their leader is gone; whether it wrote them is unknown. */
    if (n->actions_swept_term != n->lead.term) {
        uint64_t idx[SWEEP_MAX];
        size_t count = 0;
        char message[128];

        n->actions_swept_term = n->lead.term;
        if (vg_repl_fsm_actions_open(&n->fsm, n->lead.term, idx, SWEEP_MAX,
                                     &count) != VG_OK) {
            node_log(n, "actions: cannot list open actions: %s", n->fsm.errmsg);
            return;
        }
        snprintf(message, sizeof message,
                 "its leader lost leadership before recording an outcome; "
                 "recorded by node %llu in term %llu",
                 (unsigned long long)n->cfg->id, (unsigned long long)n->lead.term);
        for (size_t i = 0; i < count; i++) {
            struct vg_repl_proposal *p = malloc(sizeof *p);
            if (p == NULL || propose_result(n, p, idx[i], "unknown", message) != VG_OK) {
                free(p);
                break;
            }
        }
        if (count > 0) {
            node_log(n, "actions: %zu action(s) of earlier terms recorded as unknown",
                     count);
        }
    }
}
