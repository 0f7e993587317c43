/* vigild's part of apply levels (replication.h, "Apply levels"): the ready
 * leader raises the cluster's level to the one it is told to
 * (--cluster-level, at most what this vigild applies), once every member
 * applies it.
 *
 * Why the highest level by default. Level 2 moved the archive's settling
 * out of apply but did not pay on the 2-core machine where three nodes, the
 * PLC simulator and the load generator share the cores (its slices cost
 * more in all, and acknowledgments under an archive load fell from about
 * 20k to 10-15k/s), so clusters stayed at level 1 unless told otherwise.
 * Level 3 settles into compressed chunks (replication/archive_chunks.c):
 * the same archive load costs the slices a quarter of the time, the
 * cluster sustains more than level 1 does (records_bench, 25 000 tags,
 * 120 s: 206k committed samples/s against 171k) and acknowledgments under
 * the archive load are as fast as at level 1 (18.6-21.4k against
 * 20.5-21.4k/s). So a ready leader raises the cluster to the highest level
 * every member applies, unless --cluster-level holds it lower (an operator
 * who wants to compare, or to stay where an older vigild could still join).
 *
 * Why the leader asks the members rather than trusting a flag. An
 * operator upgrades a cluster node by node; the level may only rise when
 * the last member runs a vigild that applies it, and a member's vigild is
 * what its `status` says (apply_level; an older vigild says nothing, which
 * counts as level 1). The leader already asks every member for its status
 * (peers.c), so it knows. A member that has not answered since this node
 * became the ready leader (down, unreachable, just added) holds the level
 * where it is: better to stay at the lower level than to strand a member
 * that cannot apply the higher one (it would fail-stop at the command).
 *
 * Happy path: a fresh cluster starts at level 1 and the first ready
 * leader raises it (to 3, or to --cluster-level) within about one status
 * round (peers.c asks at once on connecting). Every LOOK_EVERY_MS while
 * the ready leader: read the stored level; if lower than the wanted one
 * (--cluster-level, at most vg_repl_fsm_max_level) and every other
 * member's latest answer reports applying at least that, propose
 * CLUSTER_LEVEL. A level is never lowered.
 * A refused or lost proposal is looked at again after LOOK_EVERY_MS.
 *
 * Limit: a node of an older vigild added after the level rose cannot apply
 * the cluster's log correctly; nothing here can stop an operator from
 * adding one (its status only answers once it runs). */
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

#define LOOK_EVERY_MS 1000u

static void level_cb(struct vg_repl_proposal *p, int status, uint64_t index,
                     int result)
{
    struct node *n = p->data;
    n->level.in_flight = false;
    if (status == 0 && result == VG_OK) {
        node_log(n, "cluster level raised at index %llu", (unsigned long long)index);
    } else if (status != 0 || result != VG_REPL_UNCHANGED) {
        node_log(n, "cluster level not raised (status %d, result %d); trying again",
                 status, result);
    }
    free(p);
}

/* The first other member of the configuration whose latest answer does not
 * report applying LEVEL, or 0 when every one does. */
static uint64_t member_behind(struct node *n, unsigned level)
{
    const struct raft_configuration *c = &n->raft.configuration;
    for (unsigned i = 0; i < c->n; i++) {
        raft_id id = c->servers[i].id;
        if (id != n->cfg->id && node_peers_apply_level(n, id) < level) {
            return id;
        }
    }
    return 0;
}

void node_cluster_level_update(struct node *n)
{
    struct vg_repl_proposal *p;
    uint64_t now = vg_now_mono_ms();
    uint32_t level, want = vg_repl_fsm_max_level(&n->fsm);
    char body[32];

    if (n->cfg->cluster_level < want) {
        want = n->cfg->cluster_level;
    }

    if (!n->lead.ready || n->level.in_flight || now < n->level.next_ms) {
        return;
    }
    n->level.next_ms = now + LOOK_EVERY_MS;
    if (vg_repl_fsm_cluster_level(&n->fsm, &level) != VG_OK) {
        node_log(n, "cluster level: %s", n->fsm.errmsg);
        return;
    }
    if (level >= want) {
        n->level.waiting_for = 0;
        return;
    }
    if ((n->level.waiting_for = member_behind(n, want)) != 0) {
        return;
    }
    snprintf(body, sizeof body, "{\"level\":%u}", (unsigned)want);
    if ((p = calloc(1, sizeof *p)) == NULL) {
        return;
    }
    p->data = n;
    if (vg_repl_propose(&n->lead, p, VG_CMD_CLUSTER_LEVEL, body, level_cb) != VG_OK) {
        free(p);
        return;
    }
    n->level.in_flight = true;
    node_log(n, "cluster level: every member applies level %u; raising it from %u",
             (unsigned)want, (unsigned)level);
}

json_t *node_cluster_level_status(struct node *n)
{
    uint32_t level = 0;
    json_t *o = json_object();
    json_object_set_new(o, "applies",
                        json_integer((json_int_t)vg_repl_fsm_max_level(&n->fsm)));
    json_object_set_new(o, "committed",
                        vg_repl_fsm_cluster_level(&n->fsm, &level) == VG_OK
                            ? json_integer((json_int_t)level)
                            : json_null());
    json_object_set_new(o, "waiting_for",
                        n->lead.ready && n->level.waiting_for != 0
                            ? json_integer((json_int_t)n->level.waiting_for)
                            : json_null());
    return o;
}
