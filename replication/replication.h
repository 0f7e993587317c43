/* Vigil replication: the typed command log, the SQLite state machine that
 * applies it, and the defences against the known defects of libraft 0.15.
 *
 * This module knows nothing of PLCs, sockets or clients. It is used by vigild
 * (node/) with libraft's libuv I/O and by the integration tests with
 * raft/fixture.h, so nothing here touches a loop or a clock except through
 * the values passed in.
 *
 * Pieces:
 *   vg_cmd_*           typed, deterministic commands: the leader stamps term,
 *                      wall time and proposer into every command; apply never
 *                      reads a clock or a random source.
 *   vg_repl_fsm_*      a struct raft_fsm over one SQLite database file (WAL):
 *                      one transaction per command, last applied index and the
 *                      running chain hash stored in the same transaction, so a
 *                      restart does not re-apply; snapshots are the database
 *                      image; checkpoints compare state digests across nodes.
 *   vg_repl_failstop_* a struct raft_io decorator that reports any disk error
 *                      of the wrapped I/O (libraft 0.15 may keep leadership
 *                      after a failed write; Vigil fail-stops instead).
 *   vg_repl_leadership_* readiness of a new leader: it commits an ANNOUNCE
 *                      command in its own term (a no-op entry and a barrier at
 *                      once) and is ready only when that is applied while it is
 *                      still leader of the same term.
 *   vg_repl_transfer_* leadership transfer that is verified and retried.
 */
#ifndef VG_REPLICATION_H
#define VG_REPLICATION_H

#include <jansson.h>
#include <raft.h>
#include <stdbool.h>
#include <stdint.h>

#include "../common/common.h"

/* ---------------------------------------------------------------- commands */

enum vg_cmd_type {
    VG_CMD_ANNOUNCE = 1,   /* new leader: {raft_address, client_address, peers[]} */
    VG_CMD_PUT = 2,        /* replicated setting: {key, value} */
    VG_CMD_NODE_INFO = 3,  /* {node_id, raft_address, client_address} */
    VG_CMD_CHECKPOINT = 4, /* {ref_index, ref_digest}: consistency check */
    VG_CMD_NODE_FORGET = 5, /* {node_id}: node removed from the cluster */
    VG_CMD_PROJECT_LOAD = 6, /* a plant project version, see below */
    VG_CMD_SETPOINT = 7,   /* an operator's setpoint write, see below */
    VG_CMD_SETPOINT_RESULT = 8, /* what became of a setpoint, see below */
    VG_CMD_ALARM_STATE = 9, /* alarm state changes and journal, see below */
    VG_CMD_HISTORY_BATCH = 10, /* archived process values, see below */
    VG_CMD_RETENTION_CUT = 11, /* drop archived values before a time */
    VG_CMD_AUDIT = 12,     /* an audit record of its own, see below */
    VG_CMD_ARCHIVE_CLASSES = 13, /* which archive each tag belongs to */
    VG_CMD_ALARM_CHANGES = 14, /* ALARM_STATE in binary form, see below */
    VG_CMD_HISTORY_SAMPLES = 15, /* HISTORY_BATCH in binary form, see below */
    VG_CMD_CLUSTER_LEVEL = 16, /* raise the cluster's apply level, see below */
    VG_CMD_TYPE_MAX
};

#define VG_CMD_VERSION 1
#define VG_CMD_HEADER_SIZE 40
/* A project load carries the whole packed project (base64) in one command so
 * that a version is committed on every node at once or not at all; 8 MiB
 * holds the largest bundle vigild accepts (4 MiB, see node/project.c). */
#define VG_CMD_MAX_BODY (8u * 1024u * 1024u)

/* Body of VG_CMD_PROJECT_LOAD (JSON object):
 *   name      string, required: the project's name
 *   digest    string, required: 64 lowercase hex digits, the BLAKE2b-256 of
 *             the project's files (vg_project_files_digest); the identity of
 *             a version
 *   bundle    string, required: base64 (RFC 4648, with padding) of the packed
 *             files (vg_project_files_pack); not empty
 *   summary   object, required: counts of what the project holds, each a
 *             non-negative integer ({"tags":N,"alarms":N,…})
 *   label, loaded_by, station, comment   string or null, optional
 * The leader has validated the project before proposing; apply checks only
 * the shape above (it must not depend on the project parser's version).
 * Outcome: VG_OK (a new version, max+1, became active), VG_REPL_UNCHANGED
 * (the digest equals the active version's: nothing stored) or VG_EINVAL. */

/* Body of VG_CMD_SETPOINT (JSON object): an operator action, stored in the
 * replicated action log under its log index before anything is written to a
 * PLC (DESIGN.md, fencing):
 *   tag              string, 1..256 bytes, required
 *   value            number, finite, required (engineering units)
 *   project_version  integer >= 1, required: the version it was checked against
 *   user, station    string (<= 128 bytes) or null, optional
 * Time, term and node come from the command header. Outcome VG_OK or
 * VG_EINVAL.
 *
 * Body of VG_CMD_SETPOINT_RESULT: {action: the SETPOINT's log index,
 * outcome: "written" | "failed" | "unknown", message: string (<= 512
 * bytes) or null}. Records the outcome once: VG_OK, VG_REPL_UNCHANGED when
 * the action already has one, VG_EINVAL when there is no such action. */

/* Body of VG_CMD_HISTORY_BATCH (JSON object): process values the leader
 * archived since its previous batch (it sends one about every 250 ms):
 *   t0     integer, 0 <= t0 < 2^53: base time in ms (leader's wall clock)
 *   tags   array of 1..65536 tag names (strings of 1..256 bytes, distinct)
 *   s      string: base64 (RFC 4648, padded) of N >= 1 packed samples of
 *          VG_HISTORY_SAMPLE_SIZE bytes each, all little-endian:
 *            u32 tag    index into tags
 *            u32 dt     ms after t0
 *            f64 value  IEEE 754 binary64, finite
 *            u8  bad    0 good, 1 bad quality
 *          at most VG_HISTORY_BATCH_MAX samples; t0 + dt < 2^53.
 *          The base64 must be canonical: padded, no white space or other
 *          ignored characters, unused bits zero (libsodium's decoder).
 *   Tag names must not contain NUL ("\u0000"); members other than these
 *   three are ignored.
 * Every node stores the samples in archive_samples keyed (tag, time). A
 * sample whose (tag, time) is already stored is ignored (the first one
 * wins: an earlier batch, or an earlier position in the same batch), as is
 * one older than the retention watermark (the newest before_ms of any
 * RETENTION_CUT applied; a sample at exactly the watermark is kept).
 * Outcome VG_OK (also when every sample was ignored), or VG_EINVAL for any
 * malformed part (then nothing of the batch is stored).
 *
 * Body of VG_CMD_HISTORY_SAMPLES: the same batch without JSON and base64,
 * which were a sixth of its apply on every node and of its making on the
 * leader; stored exactly as HISTORY_BATCH. Little endian:
 *   u64 t0        as above
 *   u32 n_tags    1..65536, then n_tags names: u16 length (1..256), that
 *                 many bytes of UTF-8 without NUL; distinct
 *   the samples   the rest of the body: N >= 1 packed samples as above
 *                 (a whole number of them, at most VG_HISTORY_BATCH_MAX).
 * Outcome as HISTORY_BATCH.
 *
 * Body of VG_CMD_RETENTION_CUT (JSON object), at least one of:
 *   before_ms          integer, 0 <= before_ms < 2^53: deletes every
 *                      archived sample with time < before_ms, of every
 *                      archive, and raises the watermark to before_ms
 *                      (unchanged when not above it; the watermark starts
 *                      at 0). The only member before per-archive
 *                      retention, and what a leader still sends for a
 *                      project without archives or record retention, so
 *                      that older nodes apply the same.
 *   archives           object {archive: before_ms}, at most 1024 members,
 *                      names 0..64 bytes without NUL: deletes the samples
 *                      older than before_ms of the tags in that archive
 *                      (ARCHIVE_CLASSES; "" is every tag not in one);
 *                      skipped when not above that archive's mark.
 *   journal_before_ms  deletes alarm_journal entries with time_ms < it;
 *   audit_before_ms    deletes audit records with time_ms < it; both
 *                      skipped when not above their mark.
 *   continue           true (from level 4 on; ignored below): the next step
 *                      of the first archive cut still in steps (by its
 *                      "what": "archive:NAME", or "before_ms" for the cut
 *                      of every archive). From level 4 on, before_ms and
 *                      each archive's cut walk at most 1024 tags (in id
 *                      order) and leave a row in retention_steps when more
 *                      are left; an archive's mark rises with its last
 *                      step (the watermark with the first), and a cut of
 *                      an archive whose cut is still in steps is skipped.
 * Marks (except the watermark, in archive_summary) are kept in
 * retention_marks as "archive:NAME", "journal" and "audit". A sample older
 * than its archive's mark is still stored and goes with the next cut (only
 * the watermark filters batches). The leader proposes a cut (now -
 * retention) about once a minute, so each is small and every replica
 * deletes exactly the same rows. Outcome VG_OK when anything was cut or a
 * mark raised, VG_REPL_UNCHANGED when nothing was, VG_EINVAL for a bad
 * member (then nothing is cut).
 *
 * Body of VG_CMD_ARCHIVE_CLASSES: {classes: {archive: [tag, …], …}}: the
 * whole assignment of tags to named archives, replacing the stored one
 * (archive_classes); a tag named nowhere is in the default archive "".
 * Archive names 1..64 bytes, at most 1024; tag names 1..256 bytes, at most
 * 262144 in all, each in one archive only; no NUL in any name. The ready
 * leader proposes it when the active project's assignment differs from the
 * stored one. Outcome VG_OK, VG_REPL_UNCHANGED (the same assignment), or
 * VG_EINVAL. */
#define VG_HISTORY_SAMPLE_SIZE 17

/* Pack one sample (the layout above) at P. */
void vg_repl_history_sample_pack(unsigned char *p, uint32_t tag, uint32_t dt,
                                 double value, bool bad);

/* The body of a HISTORY_SAMPLES command: T0, the N_TAGS names (borrowed),
 * then the N samples packed at PACKED (their tag numbers index NAMES), into
 * *OUT (malloc'd, *OUT_LEN bytes). Returns VG_OK, VG_EINVAL (a count or a
 * name length out of range) or VG_ENOMEM. Apply checks the rest. */
int vg_repl_history_samples_body(uint64_t t0, const char *const *names,
                                 size_t n_tags, const unsigned char *packed,
                                 size_t n, unsigned char **out, size_t *out_len);
#define VG_HISTORY_BATCH_MAX 300000

/* Apply levels. A change to what apply does with the same commands (how
 * replicas store the same state, or what the digest covers) cannot start on
 * one node before the others: replicas that apply the same command
 * differently report a divergence. So such a change is a level, and a
 * cluster applies at the level its replicated state names (cluster_level;
 * 1 when absent, which is what every vigild before levels applied). The
 * ready leader raises it by committing CLUSTER_LEVEL once every member of
 * the configuration reports (status "apply_level") that its vigild applies
 * that level; nodes of an older vigild must not join a cluster afterwards.
 *
 *   1  archive_recent rows are settled by each history command in steps
 *      decided by replicated constants; the rows and archive_settle are in
 *      the digest.
 *   2  history commands only stage their samples; each node settles its
 *      recent rows on its own, in slices bounded in time between commands
 *      (vg_repl_fsm_archive_settle_some), and the split between the rows and
 *      archive_samples, which is node-local now, leaves the digest. What the
 *      archive holds is digested as before (archive_summary).
 *   3  as 2, but settling writes each tag's samples as compressed chunks
 *      (archive_chunks, sample_chunk.h) instead of one archive_samples row
 *      per sample. Rows settled before stay where they are; every reader
 *      takes the union. A level of its own because a leader's snapshot
 *      holds chunks, which a vigild of level 2 would not see.
 *   4  as 3, but a retention cut of an archive walks at most 1024 of its
 *      tags a command; the rest follow in RETENTION_CUT {continue: true}
 *      commands the ready leader proposes while retention_steps (digested)
 *      says a cut is unfinished (retention.c explains why).
 *
 * VG_REPL_APPLY_LEVEL is the highest level this vigild applies. */
#define VG_REPL_APPLY_LEVEL 4u

/* Body of VG_CMD_CLUSTER_LEVEL (JSON object): {level: N}, 1 <= N < 2^31.
 * Outcome VG_OK when N is above the stored level (which becomes N),
 * VG_REPL_UNCHANGED when not, VG_EINVAL when malformed. A node that does
 * not apply level N fail-stops (VG_EDB): applying later commands at a
 * lower level than its peers would make its replica diverge silently. */

/* Body of VG_CMD_ALARM_STATE (JSON object): changes of alarm states that the
 * leader's alarm engine made in one loop iteration, in order:
 *   changes  array of 1..1024 objects:
 *     alarm        string 1..256 bytes: the alarm's name ("$…" for system
 *                  alarms)
 *     state        object: the complete state after the change, the fields
 *                  of struct vg_alarm_state (node/alarms/alarms.h) by name:
 *                  status (name), active, changed_ms, pending,
 *                  pending_since_ms, raised_ms, acked_ms, cleared_ms,
 *                  shelved, shelved_ms, shelved_until_ms, shelve_reason,
 *                  shelve_user, out_of_service, out_of_service_ms; or null
 *                  when the alarm is gone from the project (row deleted)
 *     tag, section string or null; priority integer 1..4 or null;
 *     message      object {language: text} or null: what the journal shows
 *     transition   null (bookkeeping only, e.g. a delay started), or
 *                  {cause, from, to, at_ms, value (number or null),
 *                   user, station, reason (string or null)}
 * Stored: alarm_states (one row per alarm, the latest state) and, for every
 * change with a transition, a row of alarm_journal whose id is
 * index * 1024 + position. Operator transitions (acked, shelved, unshelved,
 * oos, in_service) also add an audit record. Outcome VG_OK or VG_EINVAL.
 *
 * Body of VG_CMD_AUDIT: an action that leaves no other replicated trace
 * (membership changes, later logins): {kind: string 1..64, object: string
 * or null, old_value, new_value: string, number or null, user, station,
 * detail: string or null}. Outcome VG_OK or VG_EINVAL.
 *
 * Audit records are also written by the apply of SETPOINT (kind
 * "setpoint", old_value from its optional "old_value" field),
 * PROJECT_LOAD ("project_load"), NODE_FORGET ("node_forget") and
 * ALARM_STATE as above, inside the same transaction: an action and its
 * audit record are committed together or not at all. */

/* Body of VG_CMD_ALARM_CHANGES: the same changes as ALARM_STATE, stored the
 * same way (a change applied from either form leaves byte-identical rows),
 * in a binary form that the leader writes straight from its engine and
 * every node reads without building a JSON tree: building, dumping and
 * parsing the JSON of an acknowledgment was half of its cost on the leader
 * and a third on a follower. Little endian:
 *   u16 n                  number of changes, 1..VG_REPL_ALARM_CHANGES_MAX
 *   n changes, each:
 *     u8  flags            bit 0 removed (state null), 1 transition,
 *                          2 message, 3 value; other bits 0
 *     str alarm            1..256 bytes
 *     str tag, section     nullable, ..256 bytes
 *     u8  priority         0 (none) or 1..4
 *     unless removed: u8 status (VG_REPL_ALARM_STATUS_*), u8 booleans (bit 0
 *         active, 1 pending, 2 shelved, 3 out_of_service; others 0), u64
 *         changed_ms, pending_since_ms, raised_ms, acked_ms, cleared_ms,
 *         shelved_ms, shelved_until_ms, out_of_service_ms (each < 2^63),
 *         str shelve_reason (< VG_REPL_ALARM_REASON_SIZE bytes), str
 *         shelve_user (< VG_REPL_ALARM_USER_SIZE)
 *     with a message: u8 languages 0..16, then for each str language
 *         (1..16 bytes, no two alike) and str text (..1024 bytes)
 *     with a transition: u8 cause (VG_REPL_ALARM_CAUSE_*), u8 from, u8 to,
 *         u64 at_ms (< 2^63), with a value f64 (finite), str user, str
 *         station (nullable, ..128 bytes), str reason (nullable, ..512)
 *   nothing after the last change.
 * str: u16 length then that many bytes of UTF-8 without NUL; a nullable
 * str has length 0xFFFF for null. Outcome VG_OK or VG_EINVAL. */
#define VG_REPL_ALARM_CHANGES_MAX 1024
#define VG_REPL_ALARM_LANGS_MAX 16
#define VG_REPL_ALARM_TEXT_MAX 1024 /* bytes of a message's text */

enum {
    VG_REPL_ALARM_STATUS_NORMAL,
    VG_REPL_ALARM_STATUS_UNACK_ACTIVE,
    VG_REPL_ALARM_STATUS_ACK_ACTIVE,
    VG_REPL_ALARM_STATUS_UNACK_RTN,
    VG_REPL_ALARM_STATUS_COUNT
};

enum {
    VG_REPL_ALARM_CAUSE_RAISED,
    VG_REPL_ALARM_CAUSE_CLEARED,
    VG_REPL_ALARM_CAUSE_ACKED,
    VG_REPL_ALARM_CAUSE_SHELVED,
    VG_REPL_ALARM_CAUSE_UNSHELVED,
    VG_REPL_ALARM_CAUSE_EXPIRED,
    VG_REPL_ALARM_CAUSE_OOS,
    VG_REPL_ALARM_CAUSE_IN_SERVICE,
    VG_REPL_ALARM_CAUSE_REMOVED,
    VG_REPL_ALARM_CAUSE_COUNT
};

/* Names of the codes above as the JSON form and the journal spell them
 * ("unack_active", "acked"); "?" for a code out of range. The _code
 * functions give the code of a name, or -1. */
const char *vg_repl_alarm_status_name(unsigned code);
const char *vg_repl_alarm_cause_name(unsigned code);
int vg_repl_alarm_status_code(const char *name);
int vg_repl_alarm_cause_code(const char *name);

/* One change of either form. Strings are NUL-terminated and borrowed (from
 * the decoded changes, or from the caller when encoding); NULL where the
 * format allows null. */
struct vg_repl_alarm_change {
    const char *alarm;
    bool removed; /* the alarm is gone from the project: STATE is unused */
    struct {
        unsigned status; /* VG_REPL_ALARM_STATUS_* */
        bool active, pending, shelved, out_of_service;
        uint64_t changed_ms, pending_since_ms, raised_ms, acked_ms, cleared_ms,
            shelved_ms, shelved_until_ms, out_of_service_ms;
        const char *shelve_reason, *shelve_user; /* never NULL */
    } state;
    const char *tag, *section;
    unsigned priority; /* 1..4, 0: none */
    bool has_message;  /* false: null; true: N_MESSAGE languages (maybe 0) */
    unsigned n_message;
    const char *lang[VG_REPL_ALARM_LANGS_MAX], *text[VG_REPL_ALARM_LANGS_MAX];
    bool has_transition; /* false: bookkeeping only (no journal row) */
    struct {
        unsigned cause, from, to; /* VG_REPL_ALARM_CAUSE_*, _STATUS_* */
        uint64_t at_ms;
        bool has_value;
        double value;
        const char *user, *station, *reason;
    } transition;
};

struct vg_cmd;

/* The changes of an applied ALARM_STATE or ALARM_CHANGES command. */
struct vg_repl_alarm_changes {
    struct vg_repl_alarm_change *v;
    size_t n;
    /* private: what the strings point into */
    char *arena;
    json_t *json;
};

/* Decode and validate the changes of CMD (ALARM_STATE or ALARM_CHANGES)
 * into OUT, which owns what it points to until vg_repl_alarm_changes_free
 * (also to be called after a failure). Returns VG_OK, VG_EINVAL (a sentence
 * that names the change and the field in ERRMSG, may be NULL) or
 * VG_ENOMEM. */
int vg_repl_alarm_changes_decode(const struct vg_cmd *cmd,
                                 struct vg_repl_alarm_changes *out,
                                 char *errmsg);
void vg_repl_alarm_changes_free(struct vg_repl_alarm_changes *c);

/* A growing byte buffer (free P when done). A failed allocation sets NOMEM
 * and makes every later append a no-op. */
struct vg_repl_bytes {
    unsigned char *p;
    size_t len, cap;
    bool nomem;
};
void vg_repl_bytes_put(struct vg_repl_bytes *b, const void *p, size_t n);

/* Append the encoding of CH (one change, no count) to B. Returns VG_OK, or
 * VG_EINVAL (ERRMSG, may be NULL) when CH breaks a limit above: what is
 * encoded always decodes. */
int vg_repl_alarm_change_encode(struct vg_repl_bytes *b,
                                const struct vg_repl_alarm_change *ch,
                                char *errmsg);
/* The body of an ALARM_CHANGES command of N changes whose encodings are the
 * LEN bytes at RECORDS, into *OUT (malloc'd, *OUT_LEN bytes). VG_OK,
 * VG_EINVAL (N out of range) or VG_ENOMEM. */
int vg_repl_alarm_changes_body(const unsigned char *records, size_t len,
                               size_t n, unsigned char **out, size_t *out_len);

/* Outcome of applying a command that succeeded without changing anything;
 * distinct from every VG_E… code. Delivered as `result` to proposal
 * callbacks and applied_cb like the others. */
#define VG_REPL_UNCHANGED 0x100

/* A decoded command. BODY points into the decoded buffer (not terminated);
 * it is JSON text whose schema depends on TYPE, except for ALARM_CHANGES
 * (binary). */
struct vg_cmd {
    uint16_t type;
    uint64_t term;     /* leader's term when proposed */
    uint64_t time_ms;  /* leader's wall clock when proposed */
    uint64_t proposer; /* node id of the proposing leader */
    const char *body;
    uint32_t body_len;
};

/* Encode CMD into a new raft_malloc'd buffer (ownership passes to the caller,
 * normally on to raft_apply). */
int vg_cmd_encode(const struct vg_cmd *cmd, struct raft_buffer *out);

/* Decode BUF into CMD (which borrows BUF's memory). Returns VG_EMALFORMED or
 * VG_EUNSUPPORTED with a sentence in ERRMSG on bad input. */
int vg_cmd_decode(const struct raft_buffer *buf, struct vg_cmd *cmd,
                  char *errmsg);

const char *vg_cmd_type_name(unsigned type);

/* ----------------------------------------------------------- state machine */

#define VG_DIGEST_SIZE 32
#define VG_DIGEST_HEX (VG_DIGEST_SIZE * 2 + 1)

enum vg_verdict {
    VG_VERDICT_UNKNOWN = 0, /* no checkpoint compared yet */
    VG_VERDICT_OK,          /* last compared checkpoint matched */
    VG_VERDICT_DIVERGED,    /* this replica differs from the leader */
};

const char *vg_verdict_name(int verdict);

struct sqlite3;

struct vg_repl_fsm {
    struct raft_fsm fsm;   /* hand &this->fsm to raft_init / fixture */
    struct raft *raft;     /* set after raft_init: apply derives the index */
    struct sqlite3 *db;    /* owned */
    char path[4096];
    uint64_t applied_index;          /* last command index applied to db */
    unsigned char chain[VG_DIGEST_SIZE]; /* running hash of applied commands */
    uint64_t n_applied;              /* commands applied by this process */
    uint64_t n_skipped;              /* replayed commands already in db */
    uint64_t n_rejected;             /* commands applied as rejected */
    uint64_t n_restored;             /* snapshots copied into the db */
    uint64_t n_refused;              /* damaged snapshots refused (restore) */
    uint64_t apply_ns;               /* wall time spent in apply, in all */
    /* Consistency: the latest checkpoint taken and the latest compared. */
    uint64_t checkpoint_index;
    unsigned char checkpoint_digest[VG_DIGEST_SIZE];
    uint64_t checked_index;
    int verdict;
    char verdict_msg[VG_ERRMSG_SIZE];
    /* Called after each command is applied (may be NULL): lets the node wake
     * waiting clients or log. Must not call back into raft. */
    void (*applied_cb)(struct vg_repl_fsm *f, uint64_t index,
                       const struct vg_cmd *cmd, int result);
    void *data;
    int fatal;                       /* an SQLite error made apply fail */
    char errmsg[VG_ERRMSG_SIZE];
    /* Private to replication/: apply's statements, prepared once per
     * connection (fsm_internal.h, fsm_stmt), the archive's cache of tag
     * ids and newest times (archive.c), and where the last settle step left
     * the round (archive_recent.c). */
    struct sqlite3_stmt *stmts[32];
    struct vg_repl_tag_cache *tag_cache;
    struct vg_repl_settle_cache *settle_cache;
    /* No archived sample is older than t, when known (archive.c,
     * fsm_archive_cut): a retention cut below it deletes nothing and skips
     * its seek into every tag. Node-local; forgotten with the caches. */
    struct {
        bool known;
        uint64_t t;
    } archive_floor;
    /* A cut of every tag in steps (level 4) learns the floor as it walks:
     * the oldest time left by the steps so far of the cut before BEFORE,
     * whose next step starts at tag NEXT. Off when a step was missed. */
    struct {
        bool on;
        uint64_t before, left;
        int64_t next;
    } archive_floor_walk;
    /* Tags a retention cut step walks at level 4; 0: the built-in 1024
     * (vg_repl_fsm_archive_cut_step). */
    uint32_t archive_cut_step;
    /* archive_recent.c's thresholds; 0: the built-in ones. */
    struct {
        uint32_t round_records, round_rows, step_min, window_margin;
        /* Level 2: the last slice found no round to run and no command
         * staged a row since (vg_repl_fsm_archive_settle_some). */
        bool idle;
        /* Level 3: how often a tag's new samples had to be merged into
         * chunks already stored (late samples; archive_chunks.c). */
        uint64_t chunk_merges;
    } archive_settle;
    /* The highest apply level this replica applies; 0: VG_REPL_APPLY_LEVEL.
     * Lower only to act as an older vigild (rolling-upgrade tests). Set
     * after vg_repl_fsm_open. */
    uint32_t max_level;
    struct fsm_ckpt *ckpt; /* the WAL checkpointer (wal_checkpointer.c) */
    /* Rows the current command inserted into each record table and the sum
     * of their hashes, not yet in record_summary (record_summary.c). */
    struct {
        uint64_t n, hash_sum;
    } summary_pending[3];
    /* The snapshot libraft is taking (fsm_snapshot.c), and what the ones
     * taken cost: the part on the caller's loop and the part on the pool. */
    struct fsm_snapshot_job *snapshot_job;
    struct {
        uint64_t taken, failed;
        uint64_t last_index, last_bytes;
        double last_loop_ms, max_loop_ms, last_pool_ms;
        uint64_t retry_ms; /* after a failed snapshot(): none before */
    } snapshots;
    /* Self-checks (scrub.c): those that read the whole state (runs; of
     * them damaged_runs found damage) and those that could not (failed);
     * the last one's index, rows and time on its thread; msg what the
     * last one found. DAMAGED holds the verdict at diverged until the
     * database is replaced (a snapshot restored). */
    struct {
        uint64_t runs, damaged_runs, failed;
        uint64_t last_index, last_rows;
        double last_ms;
        bool damaged;
        char msg[VG_ERRMSG_SIZE];
    } scrub;
};

/* Open (create if needed) the SQLite database at PATH and load the last
 * applied index and chain hash. On error returns a VG_E… code with a sentence
 * in f->errmsg; the fsm is then closed. */
int vg_repl_fsm_open(struct vg_repl_fsm *f, const char *path);
void vg_repl_fsm_close(struct vg_repl_fsm *f);

/* A read-only connection to the database at PATH for queries off the
 * node's loop (another thread): F answers the query functions below (not
 * apply, digest or snapshots) from what has been committed. One thread at
 * a time per reader; vg_repl_fsm_close releases it. VG_OK or VG_EDB with a
 * sentence in f->errmsg. */
int vg_repl_fsm_open_reader(struct vg_repl_fsm *f, const char *path);
/* Between these, every read of F sees one state, the one after command
 * *APPLIED (a read transaction: the writer goes on meanwhile). */
int vg_repl_fsm_read_begin(struct vg_repl_fsm *f, uint64_t *applied);
void vg_repl_fsm_read_end(struct vg_repl_fsm *f);

/* A whole snapshot of F taken in the calling thread through the three steps
 * libraft runs (snapshot on the loop, snapshot_async on its pool,
 * snapshot_finalize): the image in OUT, raft_malloc'd, owned by the caller
 * (hand it to restore or raft_free it). For tests, benchmarks and tools.
 * VG_OK, or VG_EDB / VG_ENOMEM with a sentence in f->errmsg. */
int vg_repl_fsm_snapshot_copy(struct vg_repl_fsm *f, struct raft_buffer *out);

/* Self-check (scrub.c): the tables that the digest covers only through
 * their summaries (operator_actions, alarm_journal, audit: record_summary;
 * the archive's samples, settled and recent: archive_summary) recounted
 * from their rows and compared with the summaries, which catches a row
 * changed, lost or added outside apply. In three steps, so that the
 * reading happens off the node's loop:
 *
 *   vg_repl_fsm_scrub_begin  on F's thread: open a reader and pin the state
 *                            after the last applied command; *OUT is the
 *                            caller's until scrub_end. VG_OK; VG_EUNSUPPORTED
 *                            for a database without WAL; VG_EDB / VG_ENOMEM
 *                            (a sentence in f->errmsg);
 *   vg_repl_scrub_run        on any one thread: read and compare; touches
 *                            only S (vg_repl_scrub_interrupt, from any
 *                            thread, makes it stop soon: the scrub fails);
 *   vg_repl_fsm_scrub_end    on F's thread: record the outcome in f->scrub
 *                            (and f->errmsg) and free S. Returns VG_OK (the
 *                            rows add up), VG_EDB (damage found: f->verdict
 *                            becomes diverged with the finding as its
 *                            message, and stays so until a snapshot replaces
 *                            the database), VG_EAGAIN (a snapshot was
 *                            restored meanwhile: nothing recorded) or another
 *                            code (the scrub failed: interrupted, I/O, memory).
 *
 * vg_repl_fsm_scrub runs the three in the caller's thread (tests, tools). */
struct vg_repl_scrub;
int vg_repl_fsm_scrub_begin(struct vg_repl_fsm *f, struct vg_repl_scrub **out);
void vg_repl_scrub_run(struct vg_repl_scrub *s);
void vg_repl_scrub_interrupt(struct vg_repl_scrub *s);
int vg_repl_fsm_scrub_end(struct vg_repl_fsm *f, struct vg_repl_scrub *s);
int vg_repl_fsm_scrub(struct vg_repl_fsm *f);

/* The WAL of the database is checkpointed on a thread of its own, not by the
 * commits of apply on the caller's thread (wal_checkpointer.c). All 0 for a
 * database that is not in WAL mode. */
struct vg_repl_wal_stats {
    uint64_t done;       /* checkpoints of the thread */
    uint64_t failed;     /* busy or I/O; retried at the next commit */
    uint64_t copied;     /* WAL frames the thread copied into the database */
    uint64_t tails;      /* tail checkpoints by the writer (at RESTART_PAGES) */
    uint64_t restarts;   /* times a commit found the WAL started over */
    uint64_t wal_frames; /* frames in the WAL at the last commit */
    uint64_t hard;       /* checkpoints on the writer's thread at HARD_LIMIT */
    double writer_max_ms; /* longest checkpoint on the writer's thread */
    /* Writes SQLite made to the WAL (two per frame) and writes that went
     * to the file, gathered (wal_writes.c). */
    uint64_t wal_writes, wal_file_writes;
};
void vg_repl_fsm_wal_stats(struct vg_repl_fsm *f, struct vg_repl_wal_stats *out);

/* Digest of the replicated state (every replicated table, in key order).
 * Deterministic across replicas that applied the same commands. */
int vg_repl_fsm_digest(struct vg_repl_fsm *f, unsigned char out[VG_DIGEST_SIZE]);

/* Read a replicated setting. *value is malloc'd (caller frees) or NULL when
 * the key does not exist. */
int vg_repl_fsm_get(struct vg_repl_fsm *f, const char *key, char **value);

/* Known client address of NODE_ID into OUT, or VG_ENOTFOUND. */
int vg_repl_fsm_node_client_address(struct vg_repl_fsm *f, uint64_t node_id,
                                    char *out, size_t size);

/* Build the body of a CHECKPOINT command that references this node's latest
 * checkpoint (the leader proposes it). Returns a malloc'd string. */
char *vg_repl_fsm_checkpoint_body(struct vg_repl_fsm *f);

void vg_hex(const unsigned char *bytes, size_t n, char *out);

/* --------------------------------------------------------- project versions */

/* Metadata of one stored project version (no bundle). Strings are malloc'd
 * and owned by the struct (NULL when the load did not give them); release
 * with vg_repl_project_clear. */
struct vg_repl_project {
    uint64_t version;
    char digest[VG_DIGEST_HEX]; /* files digest, hex */
    char *name;
    char *label;
    char *loaded_by;
    char *station;
    char *comment;
    char *summary;        /* JSON object text, keys sorted */
    uint64_t loaded_at_ms; /* the proposing leader's wall clock */
    uint64_t term;
    uint64_t log_index;
    uint64_t bundle_size; /* bytes of the packed bundle */
    bool active;
};

void vg_repl_project_clear(struct vg_repl_project *p);
void vg_repl_project_list_free(struct vg_repl_project *v, size_t n);

/* The active version: *VERSION is 0 (and DIGEST_HEX "") when no project was
 * ever loaded. DIGEST_HEX may be NULL. */
int vg_repl_fsm_project_active(struct vg_repl_fsm *f, uint64_t *version,
                               char *digest_hex);

/* Metadata of VERSION (0: the active one) into OUT (zeroed first).
 * VG_ENOTFOUND when there is no such version (or none active). */
int vg_repl_fsm_project_info(struct vg_repl_fsm *f, uint64_t version,
                             struct vg_repl_project *out);

/* The newest LIMIT versions (0: all), oldest first, in a malloc'd array of
 * *N entries (free with vg_repl_project_list_free); *TOTAL (may be NULL)
 * receives the number of versions stored. */
int vg_repl_fsm_project_list(struct vg_repl_fsm *f, size_t limit,
                             struct vg_repl_project **out, size_t *n,
                             size_t *total);

/* Bytes [OFFSET, OFFSET+MAX) of VERSION's packed bundle (0: the active
 * version) into a malloc'd *DATA of *LEN bytes (NULL when *LEN is 0);
 * *TOTAL receives the bundle's size and INFO (may be NULL) its metadata.
 * VG_ENOTFOUND for an unknown version, VG_EINVAL when OFFSET > size. */
int vg_repl_fsm_project_bundle(struct vg_repl_fsm *f, uint64_t version,
                               uint64_t offset, size_t max,
                               unsigned char **data, size_t *len,
                               uint64_t *total, struct vg_repl_project *info);

/* The version that the PROJECT_LOAD command at log INDEX created, or
 * VG_ENOTFOUND (it created none: unchanged or rejected). */
int vg_repl_fsm_project_at(struct vg_repl_fsm *f, uint64_t index,
                           uint64_t *version);

/* ------------------------------------------------------- operator actions */

/* The newest LIMIT (1..1000) actions, of TAG only when TAG is not NULL, as a
 * JSON array, oldest first, each {"action","kind","tag","value",
 * "project_version","user","station","time_ms","term","node","outcome",
 * "message","outcome_ms"} (MESSAGES.md, "actions"). *OUT is a new
 * reference. */
int vg_repl_fsm_actions(struct vg_repl_fsm *f, const char *tag, size_t limit,
                        json_t **out);

/* Log indexes of up to MAX actions proposed in a term before TERM that have
 * no outcome yet, oldest first, into IDX; their number in *N. A new leader
 * records these as "unknown": their leader may or may not have written them
 * before it lost leadership. */
int vg_repl_fsm_actions_open(struct vg_repl_fsm *f, uint64_t term,
                             uint64_t *idx, size_t max, size_t *n);

/* ------------------------------------------------------------ archive */

/* Archived samples of TAG with FROM_MS <= time < TO_MS, oldest first, at
 * most LIMIT (1..100000), as a new JSON object (MESSAGES.md, "history"):
 *   {"tag", "from_ms", "to_ms", "samples": [[time_ms, value, bad], …],
 *    "more": bool, "next_from_ms": integer or null,
 *    "before": [time_ms, value, bad] or null}
 * Times are JSON integers, values reals, bad 0 or 1. MORE says the range
 * held more than LIMIT; NEXT_FROM_MS is where the next page starts (the
 * time of the first sample not returned; null unless MORE). BEFORE is the
 * newest sample before FROM_MS (a trend drawn from a value archived on
 * change needs it). An unknown tag gives no samples, not an error. The
 * range must be non-empty and end at or before 2^53 (archived times are
 * below it, so TO_MS = 2^53 means "to the end"). VG_EINVAL (sentence in
 * f->errmsg) for a NULL tag, a bad range or limit. */
int vg_repl_fsm_history_raw(struct vg_repl_fsm *f, const char *tag,
                            uint64_t from_ms, uint64_t to_ms, size_t limit,
                            json_t **out);

/* TAG's samples in [FROM_MS, TO_MS) aggregated into BUCKETS (1..10000)
 * buckets of equal width (the last may be shorter), as a new JSON object:
 *   {"tag", "from_ms", "to_ms", "bucket_ms", "buckets": [[start_ms, n, min,
 *    max, avg, first, last, bad], …], "before": […] or null}
 * Only buckets holding at least one sample are listed; N counts the good
 * samples, which alone enter min/max/avg/first/last (null when N is 0), and
 * BAD counts the bad ones. BUCKET_MS is ceil((TO_MS - FROM_MS) / BUCKETS)
 * and bucket k starts at FROM_MS + k * BUCKET_MS, so the rounding may cover
 * the range with fewer buckets than asked (10 ms in 6 buckets: 5 of 2 ms).
 * BEFORE is as in vg_repl_fsm_history_raw. Range and tag rules as there;
 * VG_EINVAL also for BUCKETS out of range. */
int vg_repl_fsm_history_aggregate(struct vg_repl_fsm *f, const char *tag,
                                  uint64_t from_ms, uint64_t to_ms,
                                  unsigned buckets, json_t **out);

/* What the archive holds: samples (archive_summary's count), tags that hold
 * at least one sample now, oldest and newest time, the retention watermark
 * (0 before any cut). */
struct vg_repl_archive_info {
    uint64_t samples;
    uint64_t tags;
    uint64_t oldest_ms;  /* 0 when empty */
    uint64_t newest_ms;
    uint64_t watermark_ms;
};
int vg_repl_fsm_archive_info(struct vg_repl_fsm *f,
                             struct vg_repl_archive_info *out);

/* CB for every sample the archive holds (settled or recent), in no
 * particular order, with its tag's name (LEN bytes, not NUL-terminated),
 * until CB returns other than VG_OK, which is then returned. For checks and
 * tools: it reads the whole archive. A sample of a tag that archive_tags
 * does not name (a damaged database) fails it: VG_EDB, with a sentence in
 * f->errmsg. */
int vg_repl_fsm_archive_each(struct vg_repl_fsm *f,
                             int (*cb)(void *arg, const char *tag, size_t len,
                                       uint64_t t_ms, double value, bool bad),
                             void *arg);

/* How a history command's samples are settled from the recent rows into
 * archive_samples (replication/archive_recent.c): a round begins at
 * ROUND_RECORDS recent samples or ROUND_ROWS rows, and each step moves at
 * least STEP_MIN samples; 0 keeps the built-in value. For tests and
 * benchmarks, after vg_repl_fsm_open: at cluster level 1 every replica
 * must use the same values, or they split their archives differently and
 * their digests differ (from level 2 on the split is node-local). (1, 1,
 * UINT32_MAX) settles every batch in the command that brings it, as nodes
 * before the recent rows stored it (at level 2: in the next slice). */
void vg_repl_fsm_archive_settle_limits(struct vg_repl_fsm *f,
                                       uint32_t round_records,
                                       uint32_t round_rows, uint32_t step_min);

/* How many tags a step of a retention cut walks from level 4 on (0: the
 * built-in 1024; replication/retention.c). For tests, after
 * vg_repl_fsm_open: every replica must use the same value, or they cut
 * different tags at the same index and their digests differ. */
void vg_repl_fsm_archive_cut_step(struct vg_repl_fsm *f, uint32_t tags);

/* How much of each row a settle step reads: its share of the step plus
 * MARGIN records, more if that does not decide the step (0: the built-in
 * 64; UINT32_MAX: every row whole). Unlike the limits above it changes
 * only what is read, never what is settled, so replicas may differ; tests
 * set it to compare a replica reading little with one reading everything. */
void vg_repl_fsm_archive_settle_window(struct vg_repl_fsm *f, uint32_t margin);

/* The level this replica applies at (see VG_REPL_APPLY_LEVEL) into *OUT. */
int vg_repl_fsm_cluster_level(struct vg_repl_fsm *f, uint32_t *out);
/* The highest level this replica can apply (f->max_level or
 * VG_REPL_APPLY_LEVEL). */
uint32_t vg_repl_fsm_max_level(const struct vg_repl_fsm *f);
/* VG_OK when this replica can apply at the stored level; VG_EDB with a
 * sentence in f->errmsg when the state is at a level above
 * vg_repl_fsm_max_level (a database or snapshot of a cluster that raised
 * its level, opened by a vigild that cannot apply it). */
int vg_repl_fsm_level_check(struct vg_repl_fsm *f);

/* At cluster level 2 and above: settle recent archive rows into
 * archive_samples for about BUDGET_US microseconds (at least one step when
 * there is work), in a transaction of its own; the node calls it between
 * commands (its loop), never during apply. *MOVED (may be NULL) gets the
 * samples moved. A round begins as in level 1 (ROUND_RECORDS samples or
 * ROUND_ROWS rows, vg_repl_fsm_archive_settle_limits) and its steps
 * move SLICE_STEP samples (or the limits' STEP_MIN when set). VG_OK also when there was nothing to do or the
 * level is 1; VG_EDB with f->errmsg (and f->fatal set, as for a failed
 * apply) when SQLite failed or the archive broke an invariant. */
int vg_repl_fsm_archive_settle_some(struct vg_repl_fsm *f, uint64_t budget_us,
                                    uint64_t *moved);
/* Samples the recent rows hold, settled parts of the running round's rows
 * included, into *OUT: how far settling is behind (0 when none). */
int vg_repl_fsm_archive_recent_samples(struct vg_repl_fsm *f, uint64_t *out);

/* The stored assignment of tags to named archives as a new JSON object
 * {tag: archive} (tags of the default archive are absent). */
int vg_repl_fsm_archive_classes(struct vg_repl_fsm *f, json_t **out);

/* How many tags each named archive holds, as a new JSON object {archive: n}
 * (one indexed pass, for status answers). */
int vg_repl_fsm_archive_class_counts(struct vg_repl_fsm *f, json_t **out);

/* The retention marks as a new JSON object {"archive:NAME" | "journal" |
 * "audit": before_ms}: what the last applied cut of each removed. */
int vg_repl_fsm_retention_marks(struct vg_repl_fsm *f, json_t **out);

/* Does a retention cut wait for its next step (RETENTION_CUT {continue:
 * true}, level 4)? VG_OK and *PENDING, or VG_EDB with a sentence. */
int vg_repl_fsm_retention_pending(struct vg_repl_fsm *f, bool *pending);

/* ------------------------------------------------------------ alarms */

/* Every stored alarm state (alarms in a state other than the initial one
 * since the project defines them), as a new JSON array ordered by name:
 * {"alarm", "state": {the VG_CMD_ALARM_STATE state object}, "tag",
 * "section", "priority", "message", "index": log index of the last change}.
 * A new leader restores its engine from this. */
int vg_repl_fsm_alarm_states(struct vg_repl_fsm *f, json_t **out);

/* The same for at most LIMIT alarms whose names come after AFTER (NULL:
 * from the first), in name order: a page of a list does not read and parse
 * every state of 20 000 alarms. */
int vg_repl_fsm_alarm_states_page(struct vg_repl_fsm *f, const char *after,
                                  size_t limit, json_t **out);

/* Sizes, NUL included, of the strings a stored state may hold (apply
 * refuses longer ones); the alarm engine's VG_ALARM_REASON_SIZE and
 * VG_ALARM_USER_SIZE. */
#define VG_REPL_ALARM_REASON_SIZE 128
#define VG_REPL_ALARM_USER_SIZE 64

/* One row of alarm_states as a new leader restores it: the members of the
 * VG_CMD_ALARM_STATE state object as plain values, no JSON built. Strings
 * marked borrowed belong to the query and are valid only during the
 * callback that receives the row. */
struct vg_repl_alarm_row {
    const char *alarm;       /* borrowed */
    bool readable;           /* false: the stored state is not a valid state
                              * object (the fields below are zero) */
    char status[16];         /* "normal", "unack_active", … */
    bool active, pending, shelved, out_of_service;
    uint64_t changed_ms, pending_since_ms, raised_ms, acked_ms, cleared_ms,
        shelved_ms, shelved_until_ms, out_of_service_ms;
    char shelve_reason[VG_REPL_ALARM_REASON_SIZE];
    char shelve_user[VG_REPL_ALARM_USER_SIZE];
    const char *tag, *section; /* borrowed; NULL when the change had none */
    int priority;              /* 1..4; 0 when the change had none */
    const char *message;       /* borrowed JSON text ({"en":…}), or NULL */
    uint64_t index;            /* log index of the last change */
};

/* Receives each row; returns false to stop the scan after this row. */
typedef bool (*vg_repl_alarm_row_cb)(void *data,
                                     const struct vg_repl_alarm_row *row);

/* Read at most LIMIT stored states whose names come after AFTER (NULL:
 * from the first), in name order, handing each to CB; *N_READ (may be
 * NULL) gets the number of rows CB received. Fewer than LIMIT rows and CB
 * never said stop: the table has no more. For the restore of a new leader,
 * which reads 20 000 states in slices between loop iterations: a state is
 * read straight from the text apply stored, without jansson. Returns VG_OK
 * or VG_EDB (f->errmsg). CB must not use F. */
int vg_repl_fsm_alarm_states_scan(struct vg_repl_fsm *f, const char *after,
                                  size_t limit, vg_repl_alarm_row_cb cb,
                                  void *data, size_t *n_read);

struct vg_repl_journal_query {
    uint64_t from_ms;             /* time >= from_ms */
    uint64_t to_ms;               /* time < to_ms; 0: no upper bound */
    const char *const *sections;  /* any of these (exact names); n 0: all */
    size_t n_sections;            /* 0..64 */
    unsigned max_priority;        /* 1..4: priority <= it; 0: all */
    const char *tag, *alarm;      /* NULL: any */
    const char *state;            /* status after the change; NULL: any */
    const char *cause;            /* NULL: any */
    uint64_t before_id;           /* paging: entries with id < it; 0: newest */
    size_t limit;                 /* 1..10000 */
};

/* Journal entries matching Q, newest first, as a new JSON object
 * {"entries": [{"id", "time_ms", "alarm", "tag", "section", "priority",
 * "cause", "from", "to", "active", "shelved", "out_of_service", "value",
 * "user", "station", "reason", "message", "term", "node"}, …],
 * "more": bool}; the next page: before_id = the last entry's id. */
int vg_repl_fsm_alarm_journal(struct vg_repl_fsm *f,
                              const struct vg_repl_journal_query *q,
                              json_t **out);

/* ------------------------------------------------------------ audit trail */

struct vg_repl_audit_query {
    uint64_t from_ms;    /* time >= from_ms */
    uint64_t to_ms;      /* time < to_ms; 0: no upper bound */
    const char *kind;    /* NULL: every kind */
    const char *user;    /* NULL: every user */
    uint64_t before_id;  /* paging: records with id < before_id; 0: newest */
    size_t limit;        /* 1..10000 */
};

/* Audit records matching Q, newest first, as a new JSON object
 * {"records": [{"id", "time_ms", "kind", "object", "old_value", "new_value",
 * "user", "station", "detail", "term", "node"}, …], "more": bool}; the next
 * page is asked for with before_id = the last record's id. */
int vg_repl_fsm_audit(struct vg_repl_fsm *f, const struct vg_repl_audit_query *q,
                      json_t **out);

/* ------------------------------------------------------------- fail-stop */

/* Wraps INNER. Hand &w->io to raft_init instead of INNER. FAULT_CB is called
 * (at most once per fault) with what failed and the status; the owner should
 * then stop the node. */
struct vg_repl_failstop {
    struct raft_io io;
    struct raft_io *inner;
    void (*fault_cb)(struct vg_repl_failstop *w, const char *what, int status);
    void *data;
    unsigned faults;
    bool closing; /* close was called: late snapshot work is cancelled */
    char what[VG_ERRMSG_SIZE];
    /* libraft's receive callback, which the wrapper's own one calls after
     * vg_repl_append_guard (set by start). */
    raft_io_recv_cb recv;
    /* AppendEntries messages that vg_repl_append_guard cut, and how many of
     * them started at index 1 (the ones libraft 0.15 crashed on; the
     * others it would have refused). */
    uint64_t appends_cut, appends_cut_from_start;
    /* While libraft handles a cut message: its synchronous answer to
     * CLAMP_SERVER claims no more than CLAMP_INDEX (failstop.c, io_recv);
     * how many answers were lowered so. */
    bool clamp_armed;
    raft_id clamp_server;
    raft_index clamp_index;
    uint64_t results_clamped;
    /* libraft's tick callback, which the wrapper's own one calls after it
     * handed over a held InstallSnapshot (set by start). */
    raft_io_tick_cb tick;
    /* An InstallSnapshot that arrived while libraft took or stored a
     * snapshot of its own, held back until it is done (failstop.c,
     * hold_snapshot): the message, which the wrapper owns while it holds
     * it, a copy of the sender's address, and since when (io time). */
    bool held;
    struct raft_message held_msg;
    char *held_address;
    raft_time held_since;
    /* Messages held; of them, replaced by a later one while held, and
     * handed to libraft; the longest hold, in ms. */
    uint64_t snapshots_held, snapshots_replaced, snapshots_delivered;
    uint64_t snapshot_hold_max_ms;
};

void vg_repl_failstop_init(struct vg_repl_failstop *w, struct raft_io *inner);

/* libraft 0.15's follower crashes on an AppendEntries whose previous index
 * is 0 while its own log starts after index 1 (it holds a snapshot): it
 * appends the entries after its last one, finds none at index 1, and on
 * that error path truncates its log from index 1, past its first entry,
 * into a NULL dereference (found by ack_chaos.py --partitions; see
 * failstop.c). Entries at or below this node's snapshot (SNAP_INDEX,
 * SNAP_TERM) are committed and already here, so the wrapper's receive
 * callback cuts A to start after the snapshot: the entries at or below it
 * are dropped (their memory freed as libraft would have), and the previous
 * index and term become the snapshot's. A message whose entry at
 * SNAP_INDEX has another term than SNAP_TERM is left alone (it cannot
 * come from a legitimate leader). Returns whether A was cut. */
bool vg_repl_append_guard(struct raft_append_entries *a, raft_index snap_index,
                          raft_term snap_term);

/* libraft 0.15's follower drops an InstallSnapshot that arrives while it
 * takes or stores a snapshot of its own ("already taking or installing
 * snapshot": no answer, and the message's data is not freed). Its leader
 * waits for the answer, takes the refusals of its heartbeats meanwhile
 * for stale ones, and sends the snapshot again only after the install
 * snapshot timeout (30 s): a node cut off and healed stayed behind for
 * 20-30 s (ack_chaos.py --partitions with a snapshot every 64 entries,
 * LIBRAFT_TRACE). Whether R is in that state now: then the wrapper holds
 * the message and hands it over once R is done (at the next message or
 * tick, every heartbeat). */
bool vg_repl_snapshot_busy(const struct raft *r);

/* ------------------------------------------------------------ leadership */

/* Tracks this node's readiness as leader. Call vg_repl_leadership_poll on every
 * loop iteration (and after every fixture step): libraft 0.15 has no
 * leadership-change callback. */
struct vg_repl_leadership {
    struct raft *raft;
    uint64_t node_id;
    raft_term term;          /* term we are (becoming) leader in, or 0 */
    bool ready;
    unsigned pending;        /* announce requests in flight */
    uint64_t announces;      /* announce commands submitted */
    /* Builds the ANNOUNCE body (malloc'd JSON text). */
    char *(*announce_body)(struct vg_repl_leadership *l);
    /* Called when readiness changes (ready or not). May be NULL. */
    void (*changed_cb)(struct vg_repl_leadership *l, bool ready);
    uint64_t (*wall_ms)(struct vg_repl_leadership *l); /* clock for stamping */
    void *data;
    bool closing;
};

void vg_repl_leadership_init(struct vg_repl_leadership *l, struct raft *r,
                             uint64_t node_id);
void vg_repl_leadership_poll(struct vg_repl_leadership *l);

/* Propose a command stamped with the current term, wall time and this node as
 * proposer. BODY is copied. CB may be NULL. Returns VG_ENOTLEADER unless this
 * node is the ready leader. */
struct vg_repl_proposal;
typedef void (*vg_repl_proposal_cb)(struct vg_repl_proposal *p, int status,
                                    uint64_t index, int result);
struct vg_repl_proposal {
    struct raft_apply req;
    vg_repl_proposal_cb cb;
    void *data;
    raft_term term;
};
int vg_repl_propose(struct vg_repl_leadership *l, struct vg_repl_proposal *p,
                    unsigned type, const char *body, vg_repl_proposal_cb cb);
/* Like vg_repl_propose but for use while not (yet) ready, e.g. the announce. */
int vg_repl_propose_raw(struct vg_repl_leadership *l,
                        struct vg_repl_proposal *p, unsigned type,
                        const char *body, vg_repl_proposal_cb cb);
/* Like vg_repl_propose for a body of LEN bytes that need not be text. */
int vg_repl_propose_bytes(struct vg_repl_leadership *l,
                          struct vg_repl_proposal *p, unsigned type,
                          const void *body, size_t len, vg_repl_proposal_cb cb);

/* -------------------------------------------------------------- transfer */

/* Verified leadership transfer. libraft 0.15 may silently not transfer
 * (TimeoutNow ignored), so the result is checked by polling and the transfer
 * retried up to MAX_ATTEMPTS times. Call vg_repl_transfer_poll every loop
 * iteration while active. TARGET 0 lets the library pick the most up-to-date
 * voter. */
struct vg_repl_transfer {
    struct raft *raft;
    struct raft_transfer req;
    raft_id target;
    raft_term start_term;
    unsigned attempts;
    unsigned max_attempts;
    raft_time attempt_start;
    unsigned attempt_timeout_ms;
    bool active;
    bool req_busy;          /* libraft still owns req */
    int status;             /* VG_OK when leadership landed elsewhere */
    raft_id landed;         /* leader id seen afterwards */
    void (*done_cb)(struct vg_repl_transfer *t);
    void *data;
    char errmsg[VG_ERRMSG_SIZE];
};

int vg_repl_transfer_start(struct vg_repl_transfer *t, struct raft *r,
                           raft_id target, unsigned attempt_timeout_ms,
                           unsigned max_attempts);
void vg_repl_transfer_poll(struct vg_repl_transfer *t);

#endif /* VG_REPLICATION_H */
