/* Private to node/: the objects of a running vigild shared by node.c (loop,
 * raft, connections, cluster requests) and project.c (project requests and
 * events), and the helpers both use to answer clients.
 *
 * Ownership: a struct conn is freed only in its close callback, once it is
 * closing and no operation holds a reference (refs). Whoever keeps a conn
 * across a callback (a proposal, a thread-pool job) takes a reference with
 * c->refs++ and drops it with node_conn_unref(); answers sent to a closing
 * conn are dropped. */
#ifndef VG_NODE_INTERNAL_H
#define VG_NODE_INTERNAL_H

#include <jansson.h>
#include <raft.h>
#include <raft/uv.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "../proto/proto.h"
#include "../replication/replication.h"
#include "node.h"

/* Bytes a connection may have queued for writing; beyond that it is closed
 * (a client that does not read must not make us buffer forever). Pushed
 * events count against the same bound. */
#define WRITE_QUEUE_LIMIT (8u * 1024u * 1024u)
#define EXIT_FAILSTOP 70

struct node;
struct upload;
struct load_job;
struct plc_set;
struct vg_project;
struct vg_diags;
struct vg_plc_poller;
struct vg_plc_change;
struct tag_sub;
struct tag_result;
struct alarm_sub;
struct alarm_duty;
struct archive_duty;
struct node_peers;

struct conn {
    uv_tcp_t tcp;
    struct node *n;
    struct vg_proto_decoder dec;
    unsigned refs;        /* the open connection + pending operations */
    bool closing;
    size_t queued;        /* bytes written but not yet flushed */
    uint64_t last_rx_ms;
    struct upload *upload; /* a project upload in progress (project.c) */
    bool sub_project;      /* subscribed to "project" events */
    struct tag_sub *tag_sub; /* live-value subscription (tags.c), or NULL */
    struct alarm_sub *alarm_sub; /* alarm subscription (alarm_duty.c), or NULL */
    struct conn *prev, *next;
    /* Frames held back while the node is corked (node_cork): written with
     * one uv_write at node_uncork. Counted in QUEUED already. */
    char *held;
    size_t held_len, held_cap;
    struct conn *held_next; /* on the node's list of connections holding */
};

/* A client request waiting for raft (commit, membership change, transfer). */
struct op {
    struct vg_repl_proposal p; /* first: the proposal callback casts back */
    struct raft_change change;
    struct conn *c;
    struct node *n;
    long long id;
    char kind[24];
    uint64_t target;
    int role;
    char raft_address[VG_NODE_ADDR_SIZE];
    /* Membership changes and transfers (membership.c): what the audit
     * record names. */
    char client_address[VG_NODE_ADDR_SIZE];
    bool has_user, has_station;
    char user[129], station[129];
    char audit_kind[32];
    char audit_object[32];
};

/* How busy the loop is (node.c, status "loop"). One iteration is the
 * time from one prepare callback to the next minus the time the loop slept
 * in the kernel waiting for I/O (libuv's idle-time metric): everything the
 * loop did in between, raft callbacks, client requests and leader duties
 * alike. A stalled iteration delays heartbeats, so tests and benchmarks
 * check the longest one. Kept per second for the last LOOP_WINDOW_S
 * seconds, each with a histogram for the 99th percentile. Beside the wall
 * time, the longest time on the CPU and the longest time in the state
 * machine's apply of one iteration: on a loaded host a thread waiting for a
 * CPU looks busy, and apply is the one large piece of work. */
#define LOOP_WINDOW_S 10u
#define LOOP_BINS 40u
struct loop_second {
    uint64_t second;           /* monotonic second this slot counts */
    uint64_t max_us;
    uint64_t max_cpu_us;       /* the thread's CPU time, longest iteration */
    uint64_t max_apply_us;     /* in fsm apply, longest iteration */
    uint64_t max_apply_cmds;   /* commands that iteration applied */
    uint32_t count;
    uint32_t bins[LOOP_BINS];  /* see node.c, loop_bin */
};
struct loop_stats {
    uint64_t last_ns;          /* uv_hrtime at the previous prepare; 0: none */
    uint64_t last_idle_ns;     /* uv_metrics_idle_time then */
    uint64_t last_cpu_ns;      /* the loop thread's CPU time then */
    uint64_t last_apply_ns;    /* fsm.apply_ns then */
    uint64_t last_applied;     /* fsm.n_applied then */
    uint64_t iterations;       /* since start */
    uint64_t max_us;           /* since start */
    /* Iterations longer than half the election timeout since start, and
     * when the last was logged (at most one line a second). */
    uint64_t stalls, stall_logged_ns;
    /* The loop thread's /proc/thread-self/schedstat (-1: none), and the
     * time it had waited for a CPU at the previous prepare. */
    int schedstat_fd;
    uint64_t last_wait_ns;
    /* getrusage(RUSAGE_THREAD) at the previous prepare: voluntary context
     * switches, major page faults, block reads. */
    long last_nvcsw, last_majflt, last_inblock;
    struct loop_second win[LOOP_WINDOW_S];
};

struct node {
    const struct vg_node_config *cfg;
    uv_loop_t loop;
    struct raft_uv_transport transport;
    struct raft_io uv_io;
    struct vg_repl_failstop failstop;
    struct raft raft;
    struct vg_repl_fsm fsm;
    struct vg_repl_leadership lead;
    struct vg_repl_transfer transfer;
    struct op *transfer_op;
    uv_tcp_t listener;
    uv_prepare_t prepare;
    uv_timer_t timer;
    uv_signal_t sigterm, sigint;
    struct conn *conns;
    unsigned corked;          /* node_cork depth */
    struct conn *holding;     /* connections with held frames */
    bool stopping;
    bool raft_started;
    int last_state;
    raft_term last_term;
    raft_id last_leader;
    uint64_t next_checkpoint_ms;
    bool last_cp_verifier;
    uint64_t checked_logged;
    uint64_t restored_logged;
    uint64_t snapshot_failures_logged;
    /* failstop.appends_cut(_from_start), as last logged */
    uint64_t appends_cut_logged, appends_cut_from_start_logged;
    uint64_t snapshots_held_logged, snapshots_delivered_logged;
    uint64_t refused_logged;
    int exit_code;
    struct loop_stats loop_stats;
    /* project.c */
    size_t upload_bytes;      /* reserved by uploads and jobs, node-wide */
    unsigned load_jobs;       /* validations running or waiting their turn */
    bool job_running;         /* one validation is in the thread pool */
    struct load_job *jobs_head, *jobs_tail; /* waiting, oldest first */
    uint64_t project_notified; /* active version last announced to subscribers */
    /* polling.c: the ready leader's PLC pollers */
    struct plc_set *plc_set;   /* pollers of the version being polled, or NULL */
    uint64_t plc_gen;          /* bumped whenever the wanted set changes */
    raft_term plc_term;        /* what the node polls (or is preparing to): */
    uint64_t plc_version;      /* term and version, 0/0 when nothing */
    char plc_error[VG_ERRMSG_SIZE]; /* why the wanted version is not polled */
    /* tags.c */
    raft_term actions_swept_term; /* term whose open actions were closed */
    struct tag_result *results_head, *results_tail; /* outcomes to propose */
    /* alarm_duty.c */
    struct alarm_duty *alarms;
    /* archive_duty.c */
    struct archive_duty *archive;
    unsigned info_jobs; /* archive extents being read in the thread pool */
    /* peers.c */
    struct node_peers *peers;
    /* cluster_level.c */
    struct {
        bool in_flight;      /* a CLUSTER_LEVEL proposal waits for its apply */
        uint64_t next_ms;    /* when to look again (monotonic) */
        uint64_t waiting_for; /* a member that does not apply the level yet */
    } level;
    /* log_budget.c */
    struct node_log_budget {
        uint64_t next_ms;        /* no look before (monotonic) */
        uint64_t entries, bytes; /* libraft's in-memory log at the last look */
        uint64_t max_bytes;      /* the most it held at a look */
        unsigned threshold, trailing; /* what libraft was last given */
        bool early;              /* the threshold is lowered */
        uint64_t early_snapshots; /* times it was */
    } log_budget;
    /* scrub.c */
    struct {
        uint64_t next_ms;          /* the next self-check (monotonic) */
        struct node_scrub_job *job; /* running on the pool, or NULL */
    } scrub;
    /* settle.c */
    struct {
        uint64_t next_ms;    /* no slice before (monotonic) */
        uint64_t seen_ns, seen_idle_ns; /* loop clock and idle time then */
        uint64_t slices, moved, busy_us, max_us;
        uint64_t deferred;   /* decisions to wait: the loop busy, the WAL long */
        uint64_t wal_waits;  /* of those, for the WAL (settle.c) */
        uint64_t backlog;    /* recent samples at the last busy decision */
    } settle;
};

/* A log line on stderr with time and node id. */
void node_log(struct node *n, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Queue MSG (reference taken over) for C; dropped if C is closing. */
void node_send(struct conn *c, json_t *msg);
/* Between node_cork and node_uncork (nested), what node_send queues for a
 * connection is held and then written with one uv_write per connection: a
 * committed command answers up to a thousand pipelined requests, which were
 * a write system call each. Cork only around code that sends a batch and
 * returns; node_conn_close writes what a closing connection holds. */
void node_cork(struct node *n);
void node_uncork(struct node *n);
void node_send_error(struct conn *c, long long id, const char *code,
                     const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* {"type":TYPE,"id":ID} (no id when ID < 0): a new reference. */
json_t *node_answer(const char *type, long long id);
/* Send C an answer of TYPE from this node's replica: {"type":TYPE,"id":ID,
 * "node":this node's id,"applied_index":…} plus every member of BODY
 * (reference taken over; may be NULL). For queries any node answers. */
void node_send_replica_answer(struct node *n, struct conn *c, const char *type,
                              long long id, json_t *body);
/* A not_leader error naming the leader when it is known. */
void node_send_not_leader(struct node *n, struct conn *c, long long id);
/* True when this node is the ready leader; otherwise answers not_leader. */
bool node_need_ready(struct node *n, struct conn *c, long long id);
void node_conn_unref(struct conn *c);

/* Request member checks shared by the handlers. Each answers `invalid`
 * naming TYPE and the member, and returns false, when the check fails.
 * node_members_ok: every member of MSG is v, type, id or one of ALLOWED
 * (NULL-terminated), so that a misspelt member is not silently ignored.
 * node_get_uint: KEY is an integer in MIN..MAX; absent gives DEF unless
 * REQUIRED. node_get_str: KEY is a string of at most MAX bytes; absent or
 * null gives NULL unless REQUIRED. */
bool node_members_ok(struct conn *c, long long id, json_t *msg,
                     const char *type, const char *const *allowed);
bool node_get_uint(struct conn *c, long long id, json_t *msg, const char *type,
                   const char *key, bool required, uint64_t min, uint64_t max,
                   uint64_t def, uint64_t *out);
bool node_get_str(struct conn *c, long long id, json_t *msg, const char *type,
                  const char *key, bool required, size_t max, const char **out);
void node_conn_close(struct conn *c);

/* An op answering request ID on C (C referenced until node_op_free), for
 * KIND ("add", "remove", …: named in messages); NULL when out of memory.
 * ID < 0: an internal follow-up nobody waits for. */
struct op *node_op_new(struct node *n, struct conn *c, long long id,
                       const char *kind);
void node_op_free(struct op *o);
/* A proposal callback for a struct op: answers "ok" with the index, or the
 * error (nothing when the op's id is < 0), and frees the op. */
void node_put_cb(struct vg_repl_proposal *p, int status, uint64_t index,
                 int result);

/* ---- membership.c: cluster_add/remove/assign and transfer, audited ---- */

/* Whether TYPE is one of those requests (then answered). */
bool node_membership_handle(struct node *n, struct conn *c, const char *type,
                            json_t *msg, long long id);
const char *node_role_name(int role);

/* ---- project.c ---- */

/* Handle a project request (project_upload, project_show, project_history,
 * project_get, subscribe). Returns false when TYPE is none of them. */
bool node_project_handle(struct node *n, struct conn *c, const char *type,
                         json_t *msg, long long id);
/* C is closing: release its upload. */
void node_project_conn_closing(struct conn *c);
/* The state machine applied a PROJECT_LOAD at INDEX with RESULT. */
void node_project_applied(struct node *n, uint64_t index, int result);
/* The active version may have changed without an apply (snapshot restore, or
 * start-up): announce it if it did. */
void node_project_check(struct node *n);
/* {"version":N,"digest":HEX|null,"upload_bytes":N,"validating":N}: the
 * active version and the uploads in flight, for status. */
json_t *node_project_status(struct node *n);
/* Unpack the bundle BUF[0..LEN), check that its files hash to DIGEST (hex;
 * NULL: no check), then parse and validate it. Any thread (the parser keeps
 * no global state). Returns VG_OK with a project in *OUT (caller frees;
 * problems found are in D, which the caller initialised: a project with
 * diagnostics must not be used), or VG_EMALFORMED (not a bundle), VG_EINVAL
 * (digest mismatch), VG_ENOMEM, with a sentence in ERRMSG and *OUT NULL. */
int node_project_bundle_parse(const unsigned char *buf, size_t len,
                              const char *digest, struct vg_project **out,
                              struct vg_diags *d, char *errmsg);

/* ---- polling.c ---- */

/* Bring the PLC pollers in line with the node: the ready leader polls every
 * PLC of the active project version, nobody else polls. Cheap when nothing
 * changed; called every loop iteration and whenever readiness changes.
 * Stopping is immediate; starting parses the version off the loop first. */
void node_plc_update(struct node *n);
/* Shutdown: stop every poller now and discard parses in flight. */
void node_plc_shutdown(struct node *n);
/* {"polling":bool,"project_version":N,"error":TEXT|null,"plcs":[…]} */
json_t *node_plc_status(struct node *n);
/* The running poller of PLC_INDEX of the polled version (for the setpoint
 * path: writes go through it, fenced with *TERM), or NULL when this node
 * does not poll that PLC. */
struct vg_plc_poller *node_plc_poller(struct node *n, size_t plc_index,
                                      raft_term *term);

/* The latest reading of one tag on the polling leader. */
struct node_tag_value {
    double value;  /* engineering units; meaningful when quality is GOOD */
    uint64_t t_ms; /* wall clock of the reading */
    int quality;   /* enum vg_plc_quality; -1 before the first reading */
};

/* The project version this node polls right now (ready leader, pollers
 * started), with *VERSION and *VALUES (one per project tag, owned by the
 * poller set: valid until the next loop iteration); NULL when it polls
 * nothing. */
const struct vg_project *node_plc_project(struct node *n, uint64_t *version,
                                          const struct node_tag_value **values);

/* The PLC confirmed that TAG now holds VALUE (engineering units, as the PLC
 * will read it back): take it as the tag's latest reading and pass it on to
 * subscribers at once, instead of a poll interval later. The next poll
 * corrects it should the PLC program have changed the register since. */
void node_plc_written(struct node *n, uint32_t tag, double value, uint64_t t_ms);

/* ---- tags.c: live values, setpoint writes, the action log ---- */

/* Handle tags_subscribe, tags_read, tag_write, actions. Returns false when
 * TYPE is none of them. */
bool node_tags_handle(struct node *n, struct conn *c, const char *type,
                      json_t *msg, long long id);
/* polling.c: the pollers delivered V[0..COUNT) (already in the values). */
void node_tags_changed(struct node *n, const struct vg_plc_change *v,
                       size_t count);
/* polling.c: the polled version changed (started, or stopped: then
 * node_plc_project is NULL). Subscriptions are resolved again. */
void node_tags_polling_changed(struct node *n);
/* node.c: C's output queue shrank; send what its subscription holds back. */
void node_tags_drained(struct conn *c);
/* node.c: C is closing: release its subscription. */
void node_tags_conn_closing(struct conn *c);
/* node.c: readiness was lost: say bye to and close every connection with a
 * tag subscription (they re-subscribe at the new leader). */
void node_tags_leadership_lost(struct node *n);
/* node.c, every iteration: a new ready leader records the actions of
 * earlier terms that have no outcome as "unknown" (once per term). */
void node_tags_update(struct node *n);

/* ---- alarm_duty.c: alarms on the ready leader, alarm requests ---- */

int node_alarms_init(struct node *n);
/* Shutdown: stop and release (the timer handle closes with the loop). */
void node_alarms_close(struct node *n);
/* Handle alarms_list, alarms_subscribe, alarm_ack, alarm_shelve,
 * alarm_unshelve, alarm_service, alarm_journal. Returns false when TYPE is
 * none of them. */
bool node_alarms_handle(struct node *n, struct conn *c, const char *type,
                        json_t *msg, long long id);
/* polling.c: new readings (already in the values). */
void node_alarms_changed(struct node *n, const struct vg_plc_change *v,
                         size_t count);
/* node.c, every iteration: build or drop the engine, go on restoring it
 * (a slice of RESTORE_BUDGET_MS per iteration) or, once restored, tick what
 * fell due, evaluate the system alarms; propose the queued changes. */
void node_alarms_update(struct node *n);
/* node.c, applied_cb: an ALARM_CHANGES (or older ALARM_STATE)
 * command was applied; push its
 * transitions to subscribed stations. */
void node_alarms_applied(struct node *n, uint64_t index, const struct vg_cmd *cmd,
                         int result);
/* node.c: readiness lost: drop the engine, say bye to alarm subscribers. */
void node_alarms_leadership_lost(struct node *n);
void node_alarms_conn_closing(struct conn *c);
/* node.c: C's output queue shrank; send more of its alarm image. */
void node_alarms_drained(struct conn *c);
/* {"state":"idle"|"restoring"|"evaluating","project_version","alarms",
 * "restored","removed","restore_ms","restore_iterations",
 * "evaluating_since_ms"}: the alarm duty, for status. */
json_t *node_alarms_status(struct node *n);

/* ---- archive_duty.c: process-value archive, history queries ---- */

int node_archive_init(struct node *n);
void node_archive_close(struct node *n);
/* Handle history_query, history_info. Returns false for other types. */
bool node_archive_handle(struct node *n, struct conn *c, const char *type,
                         json_t *msg, long long id);
/* polling.c: new readings (already in the values). */
void node_archive_changed(struct node *n, const struct vg_plc_change *v,
                          size_t count);
/* node.c, every iteration: cyclic samples, batches, retention cuts. */
void node_archive_update(struct node *n);
/* Answer C's request ID with the archive's status
 * {"samples","tags","oldest_ms","newest_ms","watermark_ms","retention_days",
 * "archiving","archived","committed","dropped","buffered","failed_batches",
 * …}: a history_info answer, or (STATUS) a whole status answer carrying it
 * (node_send_status). The extent of the archive is read on a thread of the
 * pool from a read-only connection, not on the loop (a few hundred ms under
 * load); at most INFO_JOBS_MAX such reads run at once, beyond which C gets
 * `unavailable` (clients send it again). */
void node_archive_status_send(struct node *n, struct conn *c, long long id,
                              bool status);
/* node.c: send C the status answer to request ID with ARCHIVE (reference
 * taken over) as its "archive" member. */
void node_send_status(struct node *n, struct conn *c, long long id, json_t *archive);

/* ---- peers.c: the ready leader's view of the other members' replicas ---- */

/* Allocate n->peers (VG_ENOMEM). */
int node_peers_init(struct node *n);
/* Shutdown: drop every connection and free n->peers; the handles finish
 * closing with the loop. */
void node_peers_close(struct node *n);
/* node.c, every iteration: while the ready leader, keep a connection to
 * every other member and ask for its status (consistency verdict) every
 * 2 s; otherwise drop them all. Never blocks. */
void node_peers_update(struct node *n);
/* node.c, applied_cb: a checkpoint was applied at INDEX; ask the members
 * again soon, until they applied it too. */
void node_peers_checkpoint_applied(struct node *n, uint64_t index);
/* node.c: readiness lost: drop every connection and what was learnt. */
void node_peers_leadership_lost(struct node *n);
/* The verdict (enum vg_verdict) member ID reported in its latest answer
 * since this node became the ready leader; VG_VERDICT_UNKNOWN when it has
 * not answered (or reported unknown). */
int node_peers_verdict(struct node *n, uint64_t id);
/* The apply level (replication.h) member ID's vigild reported in its
 * latest answer since this node became the ready leader (1 when the answer
 * had none: a vigild before levels); 0 when it has not answered. */
unsigned node_peers_apply_level(struct node *n, uint64_t id);
/* {"verdict","checked_index","applied_index","message","answered_ms",
 * "reachable","error","apply_level"} for member ID (a new reference), or NULL when this
 * node does not ask ID (not the ready leader, ID itself, not a member). */
json_t *node_peers_member_json(struct node *n, uint64_t id);

/* ---- cluster_level.c: raising the cluster's apply level ---------------- */

/* node.c, every iteration: while the ready leader, propose CLUSTER_LEVEL
 * --cluster-level (at most what this vigild applies) once the stored
 * level is lower and every member of the configuration reports applying
 * it (peers.c). Never blocks. */
void node_cluster_level_update(struct node *n);
/* {"applies","committed","waiting_for"} (a new reference). */
json_t *node_cluster_level_status(struct node *n);

/* ---- log_budget.c: the raft log's memory, bounded in bytes -------------- */

/* node.c, every iteration (looks every 100 ms): bring libraft's next
 * snapshot forward when its in-memory log passes --snapshot-log-mb, and
 * keep its trailing entries to a quarter of that. Set threshold and
 * trailing in n->log_budget to what raft_init was given first. */
void node_log_budget_update(struct node *n);
/* libraft's snapshot threshold for this node: --snapshot-threshold,
 * staggered by node id so that replicas do not all snapshot at once. */
unsigned node_log_budget_threshold(const struct node *n);
/* {"entries","bytes","max_bytes","budget_bytes","threshold","trailing",
 *  "early_snapshots"} (a new reference). */
json_t *node_log_budget_status(struct node *n);

/* ---- scrub.c: the replica's self-check, on the thread pool ------------- */

/* node.c, every iteration: every --scrub-every-s, pin the state and recount
 * it on the pool (vg_repl_fsm_scrub_*); log what was found. Never blocks. */
void node_scrub_update(struct node *n);
/* At shutdown: make a running self-check stop soon (its job ends by
 * itself; the loop runs until it has). */
void node_scrub_stop(struct node *n);
/* {"every_s","running","runs","damaged","damaged_runs","failed",
 *  "last_index","last_rows","last_ms","message"} (a new reference). */
json_t *node_scrub_status(struct node *n);

/* ---- settle.c: the archive's recent rows, settled between commands ----- */

/* node.c, every iteration: from cluster level 2 on, settle recent rows for
 * a bounded slice of time, with a pause between slices, when the loop has
 * time to spare or the rows are too full to wait. A failure sets
 * n->fsm.fatal (the next iteration fail-stops). */
void node_settle_update(struct node *n);
/* {"slices","moved","max_slice_ms","busy_ms","deferred","wal_waits","backlog"} (a new
 * reference). */
json_t *node_settle_status(struct node *n);

#endif /* VG_NODE_INTERNAL_H */
