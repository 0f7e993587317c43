/* vigild's node: one member of a Vigil cluster, run on a libuv loop.
 *
 * A node owns its raft instance (libraft over TCP with the libuv backend,
 * wrapped by the fail-stop decorator), its SQLite state machine, the
 * leadership tracker, and a listener for client connections speaking the
 * protocol of proto/. Only the ready leader (see replication.h) serves
 * requests that need the leader; the others answer with a redirect.
 *
 * Lifecycle: vg_node_config_parse fills a config from argv; vg_node_run runs
 * the node until SIGTERM/SIGINT (returns 0) or a fatal error (returns a VG_E…
 * code with a sentence in errmsg). A raft disk error or an SQLite error while
 * applying exits the process with status 70 at once (fail-stop). */
#ifndef VG_NODE_H
#define VG_NODE_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/common.h"

#define VG_NODE_MAX_PEERS 16
#define VG_NODE_ADDR_SIZE 128

struct vg_node_peer {
    uint64_t id;
    char raft_address[VG_NODE_ADDR_SIZE];
    char client_address[VG_NODE_ADDR_SIZE];
};

struct vg_node_config {
    uint64_t id;
    char raft_address[VG_NODE_ADDR_SIZE];
    char client_address[VG_NODE_ADDR_SIZE];
    char data_dir[1024];
    bool join;                  /* wait to be added by an admin */
    unsigned n_peers;           /* --bootstrap: the initial cluster */
    struct vg_node_peer peers[VG_NODE_MAX_PEERS];
    unsigned election_timeout_ms;
    unsigned heartbeat_ms;
    unsigned snapshot_threshold;
    unsigned snapshot_trailing;
    unsigned snapshot_log_mb;   /* raft log bytes that bring a snapshot
                                   forward (0: entry counts only) */
    unsigned checkpoint_interval_ms;
    unsigned scrub_every_s;     /* self-checks of the replica (0: none) */
    unsigned scrub_budget_ms;   /* a check that reads longer is stopped */
    unsigned archive_retention_days; /* 0: keep archived values forever */
    unsigned client_idle_timeout_ms;
    bool verbose;
    bool rebuild_state;         /* drop state.db and rebuild it from raft */
    unsigned max_apply_level;   /* 0: every level this vigild implements */
    unsigned cluster_level;     /* what the ready leader raises the cluster
                                   to once every member applies it */
    char test_refuse_alarm[257]; /* tests only: operators' changes of this
                                    alarm are refused ("": none; see
                                    node/alarm_duty.c, refused_for_test) */
};

/* Parse vigild's command line. Returns VG_OK, VG_EINVAL with a sentence in
 * ERRMSG, or VG_EAGAIN when --help was given (usage already written to
 * stdout). */
int vg_node_config_parse(struct vg_node_config *c, int argc, char **argv,
                         char *errmsg);

/* Parse a --bootstrap list "ID=RAFT_ADDR/CLIENT_ADDR,…" into C->peers. */
int vg_node_peers_parse(struct vg_node_config *c, const char *spec,
                        char *errmsg);

int vg_node_run(const struct vg_node_config *c, char *errmsg);

#endif /* VG_NODE_H */
