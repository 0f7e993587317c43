/* The admin's requests that change the cluster itself: cluster_add,
 * cluster_remove, cluster_assign (membership) and transfer (leadership),
 * each recorded in the audit trail with who asked and from where.
 *
 * Why the record comes first. A setpoint or a project load commits its
 * audit record in its own transaction. A membership change is raft's own
 * configuration entry and a transfer is no entry at all: no state machine
 * command can share their transaction. So the leader commits the record
 * (VG_CMD_AUDIT) first and makes the change in its callback: a change is
 * never made without a record of it. Should the change then fail, a
 * second record, KIND_failed with the reason as its detail, says so.
 * Should the leader fail in between, the first record stands for a change
 * that may not have been made; the admin was answered "not_leader"
 * (outcome unknown), and `cluster members` tells.
 *
 * Checks that need no raft round trip (is the node a member, does it have
 * that role already, is a transfer running) come before the record, so
 * that a request refused at once leaves none. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define WHO_MAX 128u

const char *node_role_name(int role)
{
    switch (role) {
    case RAFT_VOTER:
        return "voter";
    case RAFT_STANDBY:
        return "standby";
    case RAFT_SPARE:
        return "spare";
    default:
        return "unknown";
    }
}

/* The member TARGET of the current configuration, or NULL. */
static const struct raft_server *member(const struct node *n, uint64_t target)
{
    for (unsigned i = 0; i < n->raft.configuration.n; i++) {
        if (n->raft.configuration.servers[i].id == target) {
            return &n->raft.configuration.servers[i];
        }
    }
    return NULL;
}

static int get_node_id(struct conn *c, json_t *msg, long long id, uint64_t *out)
{
    json_t *v = json_object_get(msg, "node_id");
    if (!json_is_integer(v) || json_integer_value(v) <= 0) {
        node_send_error(c, id, "invalid", "member 'node_id' must be a positive integer");
        return -1;
    }
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

/* The request's optional "user" and "station" into O (older clients send
 * neither: the record then names nobody). False after answering. */
static bool who_into(struct op *o, json_t *msg, const char *type)
{
    const char *user, *station;

    if (!node_get_str(o->c, o->id, msg, type, "user", false, WHO_MAX, &user) ||
        !node_get_str(o->c, o->id, msg, type, "station", false, WHO_MAX, &station)) {
        return false;
    }
    o->has_user = user != NULL;
    o->has_station = station != NULL;
    snprintf(o->user, sizeof o->user, "%s", user != NULL ? user : "");
    snprintf(o->station, sizeof o->station, "%s", station != NULL ? station : "");
    return true;
}

/* A new op of KIND for request ID on C about node TARGET (0: none), its
 * record of AUDIT_KIND naming who asked (from MSG, a TYPE request); NULL
 * after answering. */
static struct op *op_for(struct node *n, struct conn *c, long long id, json_t *msg,
                         const char *type, const char *kind, uint64_t target,
                         const char *audit_kind)
{
    struct op *o = node_op_new(n, c, id, kind);

    if (o == NULL) {
        node_send_error(c, id, "failed", "out of memory");
        return NULL;
    }
    if (!who_into(o, msg, type)) {
        node_op_free(o);
        return NULL;
    }
    o->target = target;
    snprintf(o->audit_kind, sizeof o->audit_kind, "%s", audit_kind);
    if (target != 0) {
        snprintf(o->audit_object, sizeof o->audit_object, "node %llu",
                 (unsigned long long)target);
    }
    return o;
}

/* An audit record's body: KIND (suffixed "_failed" when FAILED) of O's
 * object, OLD_VALUE and NEW_VALUE (taken over; NULL for null), DETAIL. */
static char *audit_body(const struct op *o, bool failed, json_t *old_value,
                        json_t *new_value, const char *detail)
{
    char kind[48];
    json_t *b;
    char *text;

    snprintf(kind, sizeof kind, "%s%s", o->audit_kind, failed ? "_failed" : "");
    b = json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o}", "kind", kind, "object",
                  o->audit_object[0] != '\0' ? json_string(o->audit_object)
                                             : json_null(),
                  "old_value", old_value != NULL ? old_value : json_null(),
                  "new_value", new_value != NULL ? new_value : json_null(), "user",
                  o->has_user ? json_string(o->user) : json_null(), "station",
                  o->has_station ? json_string(o->station) : json_null(), "detail",
                  detail != NULL ? json_string(detail) : json_null());
    text = b != NULL ? json_dumps(b, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(b);
    return text;
}

/* Commit O's record; CB makes the change once it is committed. False after
 * answering (and freeing O). */
static bool audit_first(struct op *o, json_t *old_value, json_t *new_value,
                        const char *detail, vg_repl_proposal_cb cb)
{
    char *body = audit_body(o, false, old_value, new_value, detail);
    int rv = body != NULL ? vg_repl_propose(&o->n->lead, &o->p, VG_CMD_AUDIT, body, cb)
                          : VG_ENOMEM;
    free(body);
    if (rv == VG_ENOTLEADER) {
        node_send_not_leader(o->n, o->c, o->id);
    } else if (rv != VG_OK) {
        node_send_error(o->c, o->id, "failed", "cannot submit the audit record: %s",
                        vg_strerror(rv));
    }
    if (rv != VG_OK) {
        node_op_free(o);
        return false;
    }
    return true;
}

/* The record of O's failure, WHY, if this node still leads (nobody waits
 * for it: best effort, see the top of the file). */
static void audit_failure(const struct op *o, const char *why)
{
    struct node *n = o->n;
    struct op *f;
    char *body;

    if (!n->lead.ready || (f = node_op_new(n, o->c, -1, "audit")) == NULL) {
        return;
    }
    body = audit_body(o, true, NULL, NULL, why);
    if (body == NULL ||
        vg_repl_propose(&n->lead, &f->p, VG_CMD_AUDIT, body, node_put_cb) != VG_OK) {
        node_op_free(f);
    }
    free(body);
}

/* Answer a record's proposal that did not commit; true when it did. */
static bool audit_committed(struct op *o, int status, int result)
{
    if (status != 0) {
        node_send_error(o->c, o->id, "not_leader",
                        "leadership lost before the audit record of the %s was "
                        "committed (%s); the change was not made here, but a new "
                        "leader may still commit the record: see 'cluster members'",
                        o->kind, raft_strerror(status));
    } else if (result != VG_OK) {
        node_send_error(o->c, o->id, "failed",
                        "the cluster rejected the audit record of the %s: %s", o->kind,
                        vg_strerror(result));
    } else {
        return true;
    }
    return false;
}

/* ------------------------------------------------------------ membership */

static void change_failed(struct op *o, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void change_failed(struct op *o, const char *code, const char *fmt, ...)
{
    char why[VG_ERRMSG_SIZE];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    node_send_error(o->c, o->id, code, "%s", why);
    audit_failure(o, why);
    node_op_free(o);
}

static void change_cb(struct raft_change *req, int status)
{
    struct op *o = req->data;
    struct node *n = o->n;
    if (status != 0) {
        change_failed(o, "failed", "%s of node %llu failed: %s", o->kind,
                      (unsigned long long)o->target, raft_strerror(status));
        return;
    }
    node_log(n, "membership: %s node %llu done", o->kind,
             (unsigned long long)o->target);
    if (strcmp(o->kind, "remove") == 0 && n->lead.ready) {
        /* Forget its addresses too; a failure here is harmless. Its record
         * (node_forget) names who removed it. */
        struct op *f = node_op_new(n, o->c, -1, "forget");
        json_t *b = json_pack("{s:I, s:o, s:o}", "node_id", (json_int_t)o->target,
                              "user", o->has_user ? json_string(o->user) : json_null(),
                              "station",
                              o->has_station ? json_string(o->station) : json_null());
        char *body = b != NULL ? json_dumps(b, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(b);
        if (f != NULL && (body == NULL ||
                          vg_repl_propose(&n->lead, &f->p, VG_CMD_NODE_FORGET, body,
                                          node_put_cb) != VG_OK)) {
            node_op_free(f);
        }
        free(body);
    }
    node_send(o->c, node_answer("ok", o->id));
    node_op_free(o);
}

/* RV from raft_add/remove/assign, refused at once: answered and recorded. */
static void change_refused(struct op *o, int rv)
{
    struct node *n = o->n;
    if (rv == RAFT_CANTCHANGE) {
        change_failed(o, "busy", "a membership change is already in progress");
    } else if (rv == RAFT_NOTLEADER) {
        node_send_not_leader(n, o->c, o->id);
        audit_failure(o, "this node no longer leads");
        node_op_free(o);
    } else if (rv == RAFT_NOTFOUND || rv == RAFT_BADID) {
        change_failed(o, "invalid", "node %llu is not a member",
                      (unsigned long long)o->target);
    } else if (rv == RAFT_BADROLE) {
        change_failed(o, "invalid", "node %llu already has role %s",
                      (unsigned long long)o->target, node_role_name(o->role));
    } else {
        change_failed(o, "failed", "%s",
                      raft_errmsg(&n->raft)[0] ? raft_errmsg(&n->raft)
                                               : raft_strerror(rv));
    }
}

/* cluster_add, third step: the addresses are committed (so that every node
 * can redirect clients to it later); add it to the configuration. */
static void add_info_cb(struct vg_repl_proposal *p, int status, uint64_t index,
                        int result)
{
    struct op *o = (struct op *)p;
    int rv;
    (void)index;
    if (status != 0 || result != VG_OK) {
        change_failed(o, "failed", "could not record the addresses of node %llu",
                      (unsigned long long)o->target);
        return;
    }
    o->change.data = o;
    rv = raft_add(&o->n->raft, &o->change, o->target, o->raft_address, change_cb);
    if (rv != 0) {
        change_refused(o, rv);
    }
}

/* cluster_add, second step: the record is committed; commit the
 * addresses. */
static void add_audit_cb(struct vg_repl_proposal *p, int status, uint64_t index,
                         int result)
{
    struct op *o = (struct op *)p;
    json_t *info;
    char *body;
    int rv;
    (void)index;
    if (!audit_committed(o, status, result)) {
        node_op_free(o);
        return;
    }
    info = json_pack("{sIssss}", "node_id", (json_int_t)o->target, "raft_address",
                     o->raft_address, "client_address", o->client_address);
    body = info != NULL ? json_dumps(info, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(info);
    rv = body != NULL ? vg_repl_propose(&o->n->lead, &o->p, VG_CMD_NODE_INFO, body,
                                        add_info_cb)
                      : VG_ENOMEM;
    free(body);
    if (rv != VG_OK) {
        change_failed(o, "failed", "cannot submit the addresses of node %llu: %s",
                      (unsigned long long)o->target, vg_strerror(rv));
    }
}

/* cluster_remove and cluster_assign, second step: the record is
 * committed; change the configuration. */
static void change_audit_cb(struct vg_repl_proposal *p, int status, uint64_t index,
                            int result)
{
    struct op *o = (struct op *)p;
    int rv;
    (void)index;
    if (!audit_committed(o, status, result)) {
        node_op_free(o);
        return;
    }
    o->change.data = o;
    rv = strcmp(o->kind, "remove") == 0
             ? raft_remove(&o->n->raft, &o->change, o->target, change_cb)
             : raft_assign(&o->n->raft, &o->change, o->target, o->role, change_cb);
    if (rv != 0) {
        change_refused(o, rv);
    }
}

static void handle_add(struct node *n, struct conn *c, json_t *msg, long long id)
{
    static const char type[] = "cluster_add";
    const char *raft_address = vg_proto_get_str(msg, "raft_address", NULL);
    const char *client_address = vg_proto_get_str(msg, "client_address", NULL);
    char host[VG_NODE_ADDR_SIZE], why[VG_ERRMSG_SIZE], detail[2 * VG_NODE_ADDR_SIZE + 32];
    uint64_t target;
    int port;
    struct op *o;

    if (get_node_id(c, msg, id, &target) != 0) {
        return;
    }
    if (raft_address == NULL || client_address == NULL ||
        strlen(raft_address) >= VG_NODE_ADDR_SIZE ||
        strlen(client_address) >= VG_NODE_ADDR_SIZE ||
        vg_addr_parse(raft_address, host, sizeof host, &port, why) != VG_OK ||
        vg_addr_parse(client_address, host, sizeof host, &port, why) != VG_OK) {
        node_send_error(c, id, "invalid",
                        "'raft_address' and 'client_address' must be HOST:PORT");
        return;
    }
    if (!node_need_ready(n, c, id)) {
        return;
    }
    if (member(n, target) != NULL) {
        node_send_error(c, id, "invalid", "node %llu is already a member",
                        (unsigned long long)target);
        return;
    }
    if ((o = op_for(n, c, id, msg, type, "add", target, "member_add")) == NULL) {
        return;
    }
    o->role = RAFT_SPARE;
    snprintf(o->raft_address, sizeof o->raft_address, "%s", raft_address);
    snprintf(o->client_address, sizeof o->client_address, "%s", client_address);
    snprintf(detail, sizeof detail, "raft %s, client %s", raft_address,
             client_address);
    audit_first(o, NULL, json_string(node_role_name(RAFT_SPARE)), detail, add_audit_cb);
}

static void handle_change(struct node *n, struct conn *c, json_t *msg, long long id,
                          const char *type)
{
    bool remove = strcmp(type, "cluster_remove") == 0;
    const struct raft_server *s;
    int role = RAFT_VOTER;
    uint64_t target;
    struct op *o;

    if (get_node_id(c, msg, id, &target) != 0) {
        return;
    }
    if (!remove) {
        const char *r = vg_proto_get_str(msg, "role", "");
        if (strcmp(r, "voter") == 0) {
            role = RAFT_VOTER;
        } else if (strcmp(r, "standby") == 0) {
            role = RAFT_STANDBY;
        } else if (strcmp(r, "spare") == 0) {
            role = RAFT_SPARE;
        } else {
            node_send_error(c, id, "invalid",
                            "'role' must be voter, standby or spare, not '%s'", r);
            return;
        }
    }
    if (!node_need_ready(n, c, id)) {
        return;
    }
    if ((s = member(n, target)) == NULL) {
        node_send_error(c, id, "invalid", "node %llu is not a member",
                        (unsigned long long)target);
        return;
    }
    if (!remove && s->role == role) {
        node_send_error(c, id, "invalid", "node %llu already has role %s",
                        (unsigned long long)target, node_role_name(role));
        return;
    }
    if ((o = op_for(n, c, id, msg, type, remove ? "remove" : "assign", target,
                    remove ? "member_remove" : "member_assign")) == NULL) {
        return;
    }
    o->role = role;
    audit_first(o, json_string(node_role_name(s->role)),
                remove ? NULL : json_string(node_role_name(role)), NULL,
                change_audit_cb);
}

/* -------------------------------------------------------------- transfer */

static void transfer_done_cb(struct vg_repl_transfer *t)
{
    struct node *n = t->data;
    struct op *o = n->transfer_op;
    n->transfer_op = NULL;
    if (o == NULL) {
        return;
    }
    if (t->status == VG_OK) {
        json_t *a = node_answer("ok", o->id);
        json_object_set_new(a, "leader_id", json_integer((json_int_t)t->landed));
        json_object_set_new(a, "attempts", json_integer(t->attempts));
        if (t->errmsg[0] != '\0') {
            json_object_set_new(a, "message", json_string(t->errmsg));
        }
        node_log(n, "transfer: leadership moved to node %llu after %u attempt(s)",
                 (unsigned long long)t->landed, t->attempts);
        node_send(o->c, a);
        node_op_free(o);
    } else {
        change_failed(o, "failed", "%s", t->errmsg);
    }
}

/* transfer, second step: the record is committed; start the transfer. */
static void transfer_audit_cb(struct vg_repl_proposal *p, int status, uint64_t index,
                              int result)
{
    struct op *o = (struct op *)p;
    struct node *n = o->n;
    int rv;
    (void)index;
    if (!audit_committed(o, status, result)) {
        n->transfer_op = NULL;
        node_op_free(o);
        return;
    }
    n->transfer.data = n;
    n->transfer.done_cb = transfer_done_cb;
    rv = vg_repl_transfer_start(&n->transfer, &n->raft, o->target,
                                n->cfg->election_timeout_ms * 3, 3);
    if (rv != VG_OK) {
        n->transfer_op = NULL;
        change_failed(o, rv == VG_ENOTFOUND ? "invalid" : "failed",
                      "cannot transfer to node %llu: %s", (unsigned long long)o->target,
                      n->transfer.errmsg[0] ? n->transfer.errmsg : vg_strerror(rv));
    }
}

static void handle_transfer(struct node *n, struct conn *c, json_t *msg, long long id)
{
    static const char type[] = "transfer";
    json_t *v = json_object_get(msg, "node_id");
    uint64_t target = 0;
    struct op *o;

    if (v != NULL && (!json_is_integer(v) || json_integer_value(v) < 0)) {
        node_send_error(c, id, "invalid", "'node_id' must be a non-negative integer");
        return;
    }
    if (v != NULL) {
        target = (uint64_t)json_integer_value(v);
    }
    if (!node_need_ready(n, c, id)) {
        return;
    }
    /* transfer_op is set from the record's proposal on: a second request
     * meanwhile must not start a second transfer. */
    if (n->transfer.active || n->transfer_op != NULL) {
        node_send_error(c, id, "busy", "a leadership transfer is already in progress");
        return;
    }
    if (target != 0) {
        const struct raft_server *s = member(n, target);
        const char *why = target == n->cfg->id ? "it is already the leader"
                          : s == NULL          ? "it is not a member"
                          : s->role != RAFT_VOTER ? "it is not a voter"
                                                  : NULL;
        if (why != NULL) {
            node_send_error(c, id, "invalid", "cannot transfer to node %llu: %s",
                            (unsigned long long)target, why);
            return;
        }
    }
    if ((o = op_for(n, c, id, msg, type, "transfer", target, "leadership_transfer")) ==
        NULL) {
        return;
    }
    n->transfer_op = o;
    if (!audit_first(o, json_integer((json_int_t)n->cfg->id),
                     target != 0 ? json_integer((json_int_t)target) : NULL,
                     target != 0 ? NULL : "to a node the leader chooses",
                     transfer_audit_cb)) {
        n->transfer_op = NULL;
    }
}

bool node_membership_handle(struct node *n, struct conn *c, const char *type,
                            json_t *msg, long long id)
{
    if (strcmp(type, "cluster_add") == 0) {
        handle_add(n, c, msg, id);
    } else if (strcmp(type, "cluster_remove") == 0 ||
               strcmp(type, "cluster_assign") == 0) {
        handle_change(n, c, msg, id, type);
    } else if (strcmp(type, "transfer") == 0) {
        handle_transfer(n, c, msg, id);
    } else {
        return false;
    }
    return true;
}
