/* Readiness of a new leader, command proposals, and verified transfers.
 *
 * libraft 0.15 gives no leadership-change callback and a new leader appends
 * no no-op entry of its own term, so it may commit entries of an earlier
 * term by counting replicas (Raft §5.4.2). The defence: the owner polls
 * vg_repl_leadership_poll on every loop iteration; the first poll that finds
 * this node leader in a new term proposes an ANNOUNCE command. Committing an
 * entry of the current term commits everything before it, and libraft applies
 * in order, so when the announce is applied this node has applied the whole
 * committed log: only then, and only if it is still leader of the same term,
 * is it ready. Losing leadership or a term change clears readiness on the
 * next poll. */
#include <stdlib.h>
#include <string.h>

#include "replication.h"

static uint64_t default_wall_ms(struct vg_repl_leadership *l)
{
    (void)l;
    return vg_now_wall_ms();
}

void vg_repl_leadership_init(struct vg_repl_leadership *l, struct raft *r,
                             uint64_t node_id)
{
    memset(l, 0, sizeof *l);
    l->raft = r;
    l->node_id = node_id;
    l->wall_ms = default_wall_ms;
}

static void set_ready(struct vg_repl_leadership *l, bool ready)
{
    if (l->ready == ready) {
        return;
    }
    l->ready = ready;
    if (l->changed_cb != NULL) {
        l->changed_cb(l, ready);
    }
}

static bool leader_in(struct raft *r, raft_term term)
{
    return raft_state(r) == RAFT_LEADER && r->current_term == term;
}

static void proposal_cb(struct raft_apply *req, int status, void *result)
{
    struct vg_repl_proposal *p = req->data;
    int outcome = status == 0 ? (int)(intptr_t)result : VG_ERAFT;
    if (p->cb != NULL) { /* the header allows a NULL callback */
        p->cb(p, status, req->index, outcome);
    }
}

static int propose_bytes(struct vg_repl_leadership *l,
                         struct vg_repl_proposal *p, unsigned type,
                         const void *body, size_t len, vg_repl_proposal_cb cb)
{
    struct vg_cmd cmd;
    struct raft_buffer buf;
    int rv;

    if (raft_state(l->raft) != RAFT_LEADER) {
        return VG_ENOTLEADER;
    }
    if (len > VG_CMD_MAX_BODY) {
        return VG_EINVAL;
    }
    memset(&cmd, 0, sizeof cmd);
    cmd.type = (uint16_t)type;
    cmd.term = l->raft->current_term;
    cmd.time_ms = l->wall_ms(l);
    cmd.proposer = l->node_id;
    cmd.body = body;
    cmd.body_len = (uint32_t)len;
    rv = vg_cmd_encode(&cmd, &buf);
    if (rv != VG_OK) {
        return rv;
    }
    p->cb = cb;
    p->term = cmd.term;
    p->req.data = p;
    rv = raft_apply(l->raft, &p->req, &buf, 1, proposal_cb);
    if (rv != 0) {
        raft_free(buf.base);
        return rv == RAFT_NOTLEADER || rv == RAFT_LEADERSHIPLOST ? VG_ENOTLEADER
                                                                  : VG_ERAFT;
    }
    return VG_OK;
}

int vg_repl_propose_raw(struct vg_repl_leadership *l,
                        struct vg_repl_proposal *p, unsigned type,
                        const char *body, vg_repl_proposal_cb cb)
{
    if (body == NULL) {
        body = "{}";
    }
    return propose_bytes(l, p, type, body, strlen(body), cb);
}

int vg_repl_propose(struct vg_repl_leadership *l, struct vg_repl_proposal *p,
                    unsigned type, const char *body, vg_repl_proposal_cb cb)
{
    if (!l->ready || !leader_in(l->raft, l->term)) {
        return VG_ENOTLEADER;
    }
    return vg_repl_propose_raw(l, p, type, body, cb);
}

int vg_repl_propose_bytes(struct vg_repl_leadership *l,
                          struct vg_repl_proposal *p, unsigned type,
                          const void *body, size_t len, vg_repl_proposal_cb cb)
{
    if (!l->ready || !leader_in(l->raft, l->term)) {
        return VG_ENOTLEADER;
    }
    return propose_bytes(l, p, type, body, len, cb);
}

struct announce {
    struct vg_repl_proposal p;
    struct vg_repl_leadership *l;
};

static void announce(struct vg_repl_leadership *l);

static void announce_cb(struct vg_repl_proposal *p, int status, uint64_t index,
                        int result)
{
    struct announce *a = (struct announce *)p;
    struct vg_repl_leadership *l = a->l;
    raft_term term = p->term;
    (void)index;
    (void)result;
    free(a);
    l->pending--;
    if (l->closing) {
        return;
    }
    if (l->term != term || !leader_in(l->raft, term)) {
        return; /* leadership moved on; the next poll deals with it */
    }
    if (status == 0) {
        set_ready(l, true);
    }
    /* On failure the next poll proposes again (pending is 0 now). Never from
     * here: libraft 0.15 fails pending requests while stepping down, before
     * raft_state() stops saying leader, and raft_apply() then crashes. */
}

static void announce(struct vg_repl_leadership *l)
{
    struct announce *a = malloc(sizeof *a);
    char *body;
    int rv;
    if (a == NULL) {
        return; /* retried on the next poll: pending stays 0 */
    }
    a->l = l;
    body = l->announce_body != NULL ? l->announce_body(l) : NULL;
    rv = vg_repl_propose_raw(l, &a->p, VG_CMD_ANNOUNCE,
                             body != NULL ? body : "{}", announce_cb);
    free(body);
    if (rv != VG_OK) {
        free(a);
        return;
    }
    l->pending++;
    l->announces++;
}

void vg_repl_leadership_poll(struct vg_repl_leadership *l)
{
    struct raft *r = l->raft;
    if (l->closing) {
        set_ready(l, false);
        return;
    }
    if (raft_state(r) != RAFT_LEADER) {
        l->term = 0;
        set_ready(l, false);
        return;
    }
    if (r->current_term != l->term) {
        set_ready(l, false);
        l->term = r->current_term;
        announce(l);
        return;
    }
    if (!l->ready && l->pending == 0) {
        announce(l); /* an earlier attempt could not be submitted */
    }
}

/* --------------------------------------------------------------- transfer */

static void transfer_cb(struct raft_transfer *req)
{
    struct vg_repl_transfer *t = req->data;
    t->req_busy = false;
}

static int attempt(struct vg_repl_transfer *t)
{
    int rv;
    t->attempts++;
    t->attempt_start = t->raft->io->time(t->raft->io);
    t->req.data = t;
    rv = raft_transfer(t->raft, &t->req, t->target, transfer_cb);
    if (rv != 0) {
        vg_errf(t->errmsg, "transfer attempt %u: %s", t->attempts,
                raft_errmsg(t->raft)[0] ? raft_errmsg(t->raft)
                                        : raft_strerror(rv));
        return rv;
    }
    t->req_busy = true;
    return 0;
}

static void finish(struct vg_repl_transfer *t, int status)
{
    t->active = false;
    t->status = status;
    if (t->done_cb != NULL) {
        t->done_cb(t);
    }
}

int vg_repl_transfer_start(struct vg_repl_transfer *t, struct raft *r,
                           raft_id target, unsigned attempt_timeout_ms,
                           unsigned max_attempts)
{
    int rv;
    if (t->active) {
        return VG_EBUSY;
    }
    if (raft_state(r) != RAFT_LEADER) {
        return VG_ENOTLEADER;
    }
    if (target == r->id) {
        vg_errf(t->errmsg, "node %llu is already the leader",
                (unsigned long long)target);
        return VG_EINVAL;
    }
    t->raft = r;
    t->target = target;
    t->start_term = r->current_term;
    t->attempts = 0;
    t->max_attempts = max_attempts > 0 ? max_attempts : 1;
    t->attempt_timeout_ms = attempt_timeout_ms;
    t->status = VG_EAGAIN;
    t->landed = 0;
    t->errmsg[0] = '\0';
    rv = attempt(t);
    if (rv != 0) {
        return rv == RAFT_NOTLEADER ? VG_ENOTLEADER
               : rv == RAFT_BADID   ? VG_ENOTFOUND
                                    : VG_EINVAL;
    }
    t->active = true;
    return VG_OK;
}

void vg_repl_transfer_poll(struct vg_repl_transfer *t)
{
    struct raft *r = t->raft;
    raft_id leader_id = 0;
    const char *leader_address = NULL;
    raft_time now;

    if (!t->active) {
        return;
    }
    raft_leader(r, &leader_id, &leader_address);
    if (raft_state(r) != RAFT_LEADER) {
        /* We stepped down. It worked once someone else leads; which node it
         * is gets reported (a target of 0 accepts anyone). */
        if (leader_id != 0 && leader_id != r->id) {
            t->landed = leader_id;
            if (t->target != 0 && leader_id != t->target) {
                vg_errf(t->errmsg, "leadership went to node %llu, not %llu",
                        (unsigned long long)leader_id,
                        (unsigned long long)t->target);
            }
            finish(t, VG_OK);
        }
        return; /* election still running: wait */
    }
    if (r->current_term != t->start_term) {
        /* We lost and regained leadership meanwhile: the transfer failed. */
        t->start_term = r->current_term;
    }
    now = r->io->time(r->io);
    if (t->req_busy || now - t->attempt_start < t->attempt_timeout_ms) {
        return;
    }
    /* Still leader after the attempt's time: libraft silently dropped it. */
    if (t->attempts >= t->max_attempts) {
        vg_errf(t->errmsg,
                "leadership did not move after %u attempts; node %llu still leads",
                t->attempts, (unsigned long long)r->id);
        finish(t, VG_ETIMEDOUT);
        return;
    }
    if (attempt(t) != 0) {
        finish(t, VG_ERAFT);
    }
}
