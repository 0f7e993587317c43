/* Benchmark of the process-value archive in the replicated state machine
 * (replication/archive.c), without raft: one fsm in a fresh temporary
 * directory, commands encoded with vg_cmd_encode and applied through
 * f->fsm.apply exactly as libraft would on every node.
 *
 * Prints one JSON object per line:
 *   {"bench":"archive_apply","form":"json"|"binary","samples_per_s":…,
 *    "batches":…,"batch_samples":…}
 *       BATCHES history batches of BATCH_SAMPLES samples over TAGS tags
 *       (time-major, as the leader samples), apply time only: building and
 *       encoding the commands is not counted. Once as HISTORY_BATCH (JSON
 *       and base64), then as HISTORY_SAMPLES (binary), each on a fresh fsm
 *       (a fuller archive is slower to add to: one fsm for both would
 *       charge that to the second form). wal_copied is how many WAL
 *       frames the checkpointer thread copied, wal_frames the WAL's size
 *       at the end (pages), longest_batch_ms the longest apply of one
 *       batch (at level 1, a cluster's default, its settle step included:
 *       what one entry costs a node's loop). At --level 2 (vigild
 *       --cluster-level 2) the fsm is raised to it first and after
 *       each batch settle slices of SLICE_US run until the round is done
 *       or they moved twice the batch: samples_per_s counts their time
 *       too, longest_slice_ms is the longest slice, slices_s their total.
 *   {"bench":"history_aggregate_24h","buckets":500,"samples":86400,
 *    "median_ms":…,"p99_ms":…}
 *       20 aggregations of one tag's 24 h series at 1 s into 500 buckets,
 *       settled first (rows at levels 1 and 2, chunks from level 3 on).
 *   {"bench":"history_aggregate_loaded_tag","buckets":…,"samples":…,
 *    "median_ms":…,"p99_ms":…}
 *       20 aggregations into 100 buckets (those holding samples are
 *       counted) of the whole range of one tag the
 *       binary batches wrote (about BATCHES * BATCH_SAMPLES / TAGS samples),
 *       read from archive_samples and the recent rows not yet settled.
 *   {"bench":"archive_info","tags":…,"samples":…,"median_ms":…,"p99_ms":…}
 *       20 calls of vg_repl_fsm_archive_info (history_info; status
 *       without brief) on the archive the binary batches left.
 *   {"bench":"retention_cut_none","tags":…,"median_ms":…,"p99_ms":…}
 *       20 RETENTION_CUT commands applied to that archive, each with a
 *       before_ms older than every sample (a minute later each time, as
 *       the leader sends one a minute): what a cut that deletes nothing
 *       costs every node's apply.
 *   {"bench":"retention_cut_some","tags":…,"per_tag":K,"deleted":…,"ms":…,
 *    "commands":…,"longest_command_ms":…}
 *       (last) one RETENTION_CUT applied that deletes each tag's oldest K
 *       samples of that archive (30, then 300 more), all settled: what
 *       cutting a full archive's oldest minute costs (600 samples of each
 *       tag at 10 Hz). From level 4 on the cut goes in steps: ms is all of
 *       its commands, longest_command_ms the longest of them (what one
 *       apply holds every node's loop).
 *   {"bench":"scrub","rows":…,"ms":…,"rows_per_s":…}
 *       one self-check (vg_repl_fsm_scrub) of that archive: every sample
 *       recounted against archive_summary, on the calling thread.
 *   {"bench":"snapshot","bytes":…,"loop_ms":…,"pool_ms":…,
 *    "batches_meanwhile":…,"longest_batch_meanwhile_ms":…}
 *       one snapshot of that state machine as libraft takes it: loop_ms
 *       on the node's loop (the state pinned by a read transaction),
 *       pool_ms on a thread (the database serialized into memory) while
 *       the caller applies more binary batches, as the loop goes on doing;
 *       how many it applied meanwhile and the longest of them, the WAL's
 *       frames and the checkpoints on the writer at its hard limit
 *       meanwhile; then as many batches again, and the longest of those
 *       (the WAL that grew meanwhile is checkpointed then); restore_ms:
 *       the image checked (quick_check, schema) and restored into a fresh
 *       fsm, as a lagging follower's libraft does on its loop. Once, so read it as an order of
 *       magnitude.
 * Machines are shared and noisy: compare medians and ratios, not single runs.
 *
 * usage: archive_apply_bench [--batches N] [--batch-samples N] [--tags N]
 *                            [--dir PARENT] [--level N] */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdbool.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_args.h"
#include "replication.h"

#define QUERIES 20
/* The budget of a settle slice, as node/settle.c gives it. */
#define SLICE_US 10000u
#define DAY_S 86400

struct opts {
    unsigned level;
    unsigned batches;
    unsigned batch_samples;
    unsigned tags;
    const char *parent;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void pack(unsigned char *p, uint32_t tag, uint32_t dt, double v,
                 unsigned bad)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    for (int i = 0; i < 4; i++) {
        p[i] = (unsigned char)(tag >> (8 * i));
        p[4 + i] = (unsigned char)(dt >> (8 * i));
    }
    for (int i = 0; i < 8; i++) {
        p[8 + i] = (unsigned char)(bits >> (8 * i));
    }
    p[16] = (unsigned char)bad;
}

/* The encoded HISTORY_BATCH command (or with BINARY, HISTORY_SAMPLES) of
 * RAW (N packed samples) over NAMES with base T0, into *OUT
 * (raft_malloc'd). */
static int encode_batch(uint64_t t0, json_t *names, const unsigned char *raw,
                        size_t n, uint64_t stamp, bool binary,
                        struct raft_buffer *out)
{
    size_t len = (size_t)n * VG_HISTORY_SAMPLE_SIZE;
    struct vg_cmd cmd = {.type = VG_CMD_HISTORY_BATCH, .term = 1,
                         .time_ms = stamp, .proposer = 1};
    char *body;
    int rv;

    if (binary) {
        size_t k = json_array_size(names), blen;
        const char **v = malloc(k * sizeof *v);
        unsigned char *b = NULL;
        if (v == NULL) {
            return VG_ENOMEM;
        }
        for (size_t i = 0; i < k; i++) {
            v[i] = json_string_value(json_array_get(names, i));
        }
        rv = vg_repl_history_samples_body(t0, v, k, raw, n, &b, &blen);
        free(v);
        if (rv != VG_OK) {
            return rv;
        }
        cmd.type = VG_CMD_HISTORY_SAMPLES;
        cmd.body = (const char *)b;
        cmd.body_len = (uint32_t)blen;
        rv = vg_cmd_encode(&cmd, out);
        free(b);
        return rv;
    }
    {
        size_t size = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
        char *text = malloc(size);
        json_t *o;
        if (text == NULL) {
            return VG_ENOMEM;
        }
        sodium_bin2base64(text, size, raw, len, sodium_base64_VARIANT_ORIGINAL);
        o = json_pack("{s:I, s:O, s:s}", "t0", (json_int_t)t0, "tags", names, "s",
                      text);
        free(text);
        body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
    }
    if (body == NULL) {
        return VG_ENOMEM;
    }
    cmd.body = body;
    cmd.body_len = (uint32_t)strlen(body);
    rv = vg_cmd_encode(&cmd, out);
    free(body);
    return rv;
}

/* Apply BUF; the outcome must be VG_OK. */
static int apply(struct vg_repl_fsm *f, const struct raft_buffer *buf)
{
    void *result = NULL;
    if (f->fsm.apply(&f->fsm, buf, &result) != 0) {
        fprintf(stderr, "apply failed: %s\n", f->errmsg);
        return -1;
    }
    if ((int)(intptr_t)result != VG_OK) {
        fprintf(stderr, "batch rejected: %s\n", vg_strerror((int)(intptr_t)result));
        return -1;
    }
    return 0;
}

/* CLUSTER_LEVEL LEVEL, as the ready leader proposes it. */
static int raise_level(struct vg_repl_fsm *f, unsigned level)
{
    char body[32];
    int len = snprintf(body, sizeof body, "{\"level\":%u}", level);
    struct vg_cmd cmd = {.type = VG_CMD_CLUSTER_LEVEL, .term = 1, .proposer = 1,
                         .body = body, .body_len = (uint32_t)len};
    struct raft_buffer buf;
    int rv;
    if (vg_cmd_encode(&cmd, &buf) != VG_OK) {
        return -1;
    }
    rv = apply(f, &buf);
    raft_free(buf.base);
    return rv;
}

/* What a run of batches cost. */
struct run {
    unsigned batches;      /* applied */
    double total, longest; /* s: apply and slices; the longest apply */
    double longest_slice, slice_total;
};

/* Up to COUNT batches of BATCH_SAMPLES over TAGS tags, time-major, 1 ms
 * apart per step, from *CLOCK on; stops early once *STOP is set (NULL:
 * never). */
static int run_batches(struct vg_repl_fsm *f, const struct opts *o, bool binary,
                       uint64_t *clock, unsigned count, atomic_bool *stop,
                       struct run *out)
{
    unsigned steps = (o->batch_samples + o->tags - 1) / o->tags;
    unsigned char *raw = malloc((size_t)o->batch_samples * VG_HISTORY_SAMPLE_SIZE);
    json_t *names = json_array();
    uint64_t t = *clock;
    double took;
    char name[64];
    int rv = -1;

    memset(out, 0, sizeof *out);
    if (raw == NULL || names == NULL) {
        goto out;
    }
    for (unsigned i = 0; i < o->tags; i++) {
        snprintf(name, sizeof name, "plant.section%02u.tag%05u", i % 23, i);
        json_array_append_new(names, json_string(name));
    }
    for (unsigned b = 0; b < count && (stop == NULL || !atomic_load(stop)); b++) {
        struct raft_buffer buf;
        uint64_t t0 = t;
        double start;
        for (unsigned k = 0; k < o->batch_samples; k++) {
            unsigned step = k / o->tags, tag = k % o->tags;
            pack(raw + (size_t)k * VG_HISTORY_SAMPLE_SIZE, tag, step,
                 sin((double)(t0 + step) / 1e4 + tag) * 100.0, (k % 997) == 0);
        }
        t += steps;
        if (encode_batch(t0, names, raw, o->batch_samples, t0, binary, &buf) !=
            VG_OK) {
            fprintf(stderr, "cannot encode a batch\n");
            goto out;
        }
        start = now_s();
        rv = apply(f, &buf);
        took = now_s() - start;
        out->total += took;
        out->longest = took > out->longest ? took : out->longest;
        raft_free(buf.base);
        if (rv != 0) {
            goto out;
        }
        rv = -1;
        out->batches++;
        /* Level 2: the node's slices between commands (node/settle.c),
         * until the round is done or they moved twice what came in. */
        for (uint64_t moved = 0, m = 1; m > 0 && moved < 2ull * o->batch_samples;
             moved += m) {
            start = now_s();
            if (vg_repl_fsm_archive_settle_some(f, SLICE_US, &m) != VG_OK) {
                fprintf(stderr, "settle failed: %s\n", f->errmsg);
                goto out;
            }
            took = now_s() - start;
            out->total += took;
            out->slice_total += took;
            out->longest_slice =
                took > out->longest_slice ? took : out->longest_slice;
        }
    }
    *clock = t;
    rv = 0;
out:
    json_decref(names);
    free(raw);
    return rv;
}

/* BATCHES batches; prints the apply rate. */
static int bench_apply(struct vg_repl_fsm *f, const struct opts *o, bool binary,
                       uint64_t *clock)
{
    struct vg_repl_wal_stats ws;
    struct run r;

    if (run_batches(f, o, binary, clock, o->batches, NULL, &r) != 0) {
        return -1;
    }
    vg_repl_fsm_wal_stats(f, &ws);
    printf("{\"bench\":\"archive_apply\",\"form\":\"%s\",\"level\":%u,"
           "\"samples_per_s\":%.0f,"
           "\"batches\":%u,\"batch_samples\":%u,\"tags\":%u,\"wal_copied\":%llu,"
           "\"wal_frames\":%llu,\"longest_batch_ms\":%.1f,"
           "\"longest_slice_ms\":%.1f,\"slices_s\":%.2f}\n",
           binary ? "binary" : "json", o->level,
           (double)o->batches * o->batch_samples / r.total, o->batches,
           o->batch_samples, o->tags, (unsigned long long)ws.copied,
           (unsigned long long)ws.wal_frames, r.longest * 1e3,
           r.longest_slice * 1e3, r.slice_total);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* QUERIES calls of vg_repl_fsm_archive_info (history_info, status) on the
 * archive the binary batches left: a client's question answered on the
 * node's loop. */
static int bench_info(struct vg_repl_fsm *f)
{
    struct vg_repl_archive_info info;
    double ms[QUERIES];
    for (int q = 0; q < QUERIES; q++) {
        double start = now_s();
        if (vg_repl_fsm_archive_info(f, &info) != VG_OK) {
            fprintf(stderr, "archive info: %s\n", f->errmsg);
            return -1;
        }
        ms[q] = (now_s() - start) * 1e3;
    }
    qsort(ms, QUERIES, sizeof ms[0], cmp_double);
    printf("{\"bench\":\"archive_info\",\"tags\":%llu,\"samples\":%llu,"
           "\"median_ms\":%.2f,\"p99_ms\":%.2f}\n",
           (unsigned long long)info.tags, (unsigned long long)info.samples,
           (ms[QUERIES / 2 - 1] + ms[QUERIES / 2]) / 2,
           ms[(QUERIES * 99 + 99) / 100 - 1]);
    return 0;
}

/* Apply a RETENTION_CUT of every archive at BEFORE; how long into *MS. */
/* One command with BODY, its time added to *MS and kept in *LONGEST when
 * longer. */
static int apply_timed(struct vg_repl_fsm *f, const char *body, double *ms,
                       double *longest)
{
    struct vg_cmd cmd = {.type = VG_CMD_RETENTION_CUT, .term = 1, .proposer = 1,
                         .body = body, .body_len = (uint32_t)strlen(body)};
    struct raft_buffer buf;
    double start, took;
    int rv;

    if (vg_cmd_encode(&cmd, &buf) != VG_OK) {
        return -1;
    }
    start = now_s();
    rv = apply(f, &buf);
    took = (now_s() - start) * 1e3;
    raft_free(buf.base);
    *ms += took;
    *longest = took > *longest ? took : *longest;
    return rv;
}

/* A RETENTION_CUT of every archive before BEFORE, and from level 4 on the
 * {continue: true} commands that finish it, as the ready leader proposes
 * them: the time of all into *MS, of the longest into *LONGEST, how many
 * commands into *COMMANDS. */
static int apply_cut(struct vg_repl_fsm *f, uint64_t before, double *ms,
                     double *longest, unsigned *commands)
{
    char body[64];
    bool pending = false;

    *ms = *longest = 0;
    *commands = 1;
    snprintf(body, sizeof body, "{\"before_ms\":%llu}", (unsigned long long)before);
    if (apply_timed(f, body, ms, longest) != 0) {
        return -1;
    }
    while (vg_repl_fsm_retention_pending(f, &pending) == VG_OK && pending) {
        if (apply_timed(f, "{\"continue\":true}", ms, longest) != 0) {
            return -1;
        }
        ++*commands;
    }
    return 0;
}

/* QUERIES retention cuts of every archive that delete nothing (see the
 * top), the archive's samples starting at T0. */
static int bench_cut(struct vg_repl_fsm *f, const struct opts *o, uint64_t t0)
{
    double ms[QUERIES], longest;
    unsigned commands;
    for (int q = 0; q < QUERIES; q++) {
        if (apply_cut(f, t0 - 60000u * (QUERIES - q), &ms[q], &longest, &commands) != 0) {
            return -1;
        }
    }
    qsort(ms, QUERIES, sizeof ms[0], cmp_double);
    printf("{\"bench\":\"retention_cut_none\",\"tags\":%u,\"median_ms\":%.2f,"
           "\"p99_ms\":%.2f}\n",
           o->tags, (ms[QUERIES / 2 - 1] + ms[QUERIES / 2]) / 2,
           ms[(QUERIES * 99 + 99) / 100 - 1]);
    return 0;
}

/* Cuts that delete each tag's oldest 30, then 300 more samples of the
 * archive whose samples start at T0, one a step (see the top). */
static int bench_cut_some(struct vg_repl_fsm *f, const struct opts *o, uint64_t t0)
{
    static const unsigned per_tag[] = {30, 300};
    uint64_t before = t0;
    for (size_t i = 0; i < sizeof per_tag / sizeof per_tag[0]; i++) {
        struct vg_repl_archive_info a, b;
        double ms, longest;
        unsigned commands;
        before += per_tag[i];
        if (vg_repl_fsm_archive_info(f, &a) != VG_OK ||
            apply_cut(f, before, &ms, &longest, &commands) != 0 ||
            vg_repl_fsm_archive_info(f, &b) != VG_OK) {
            fprintf(stderr, "retention cut: %s\n", f->errmsg);
            return -1;
        }
        printf("{\"bench\":\"retention_cut_some\",\"tags\":%u,\"per_tag\":%u,"
               "\"deleted\":%llu,\"ms\":%.1f,\"commands\":%u,"
               "\"longest_command_ms\":%.1f}\n",
               o->tags, per_tag[i], (unsigned long long)(a.samples - b.samples), ms,
               commands, longest);
    }
    return 0;
}

/* One self-check (vg_repl_fsm_scrub, replication/scrub.c) of the archive
 * the binary batches left: the whole archive and the record tables
 * recounted on the calling thread, as a node's pool does every
 * --scrub-every-s. */
static int bench_scrub(struct vg_repl_fsm *f)
{
    double start = now_s(), ms;
    int rv = vg_repl_fsm_scrub(f);

    ms = (now_s() - start) * 1e3;
    if (rv != VG_OK) {
        fprintf(stderr, "scrub: %s\n", f->scrub.msg);
        return -1;
    }
    printf("{\"bench\":\"scrub\",\"rows\":%llu,\"ms\":%.1f,\"rows_per_s\":%.0f}\n",
           (unsigned long long)f->scrub.last_rows, ms,
           (double)f->scrub.last_rows / (ms / 1e3));
    return 0;
}

/* One snapshot of the loaded state machine, as libraft 0.15 takes it with
 * the fsm's version-3 methods: snapshot() on the node's loop, then
 * snapshot_async() on a thread of its pool while the loop goes on applying
 * (here: more batches, for as long as the thread works), then
 * snapshot_finalize() on the loop. */
struct snap_job {
    struct vg_repl_fsm *f;
    struct raft_buffer *bufs;
    unsigned n_bufs;
    int rv;
    double ms;
    atomic_bool done;
};

static void *snap_thread(void *arg)
{
    struct snap_job *j = arg;
    double start = now_s();
    j->rv = j->f->fsm.snapshot_async(&j->f->fsm, &j->bufs, &j->n_bufs);
    j->ms = (now_s() - start) * 1e3;
    atomic_store(&j->done, true);
    return NULL;
}

/* IMAGE restored into a fresh fsm next to PATH, as a lagging follower's
 * libraft does on its loop; *MS how long that took. Consumes IMAGE. */
static int bench_restore(const char *path, struct raft_buffer *image, double *ms)
{
    struct vg_repl_fsm *g = malloc(sizeof *g);
    char other[4200];
    double start;
    int rv;

    snprintf(other, sizeof other, "%s.restored", path);
    if (g == NULL || vg_repl_fsm_open(g, other) != VG_OK) {
        fprintf(stderr, "restore: %s\n", g != NULL ? g->errmsg : "out of memory");
        free(g);
        raft_free(image->base);
        return -1;
    }
    start = now_s();
    rv = g->fsm.restore(&g->fsm, image);
    *ms = (now_s() - start) * 1e3;
    if (rv != 0) {
        fprintf(stderr, "restore: %s\n", g->errmsg);
        raft_free(image->base);
    }
    vg_repl_fsm_close(g);
    free(g);
    return rv == 0 ? 0 : -1;
}

static int bench_snapshot(struct vg_repl_fsm *f, const struct opts *o,
                          uint64_t *clock)
{
    struct snap_job j = {.f = f};
    struct vg_repl_wal_stats w0, w1;
    double start = now_s(), loop_ms;
    size_t bytes = 0;
    pthread_t thread;
    struct run r, after;
    struct raft_buffer image = {NULL, 0};
    double restore_ms;
    int rv;

    atomic_init(&j.done, false);
    vg_repl_fsm_wal_stats(f, &w0);
    if (f->fsm.snapshot(&f->fsm, &j.bufs, &j.n_bufs) != 0) {
        fprintf(stderr, "snapshot: %s\n", f->errmsg);
        return -1;
    }
    loop_ms = (now_s() - start) * 1e3;
    if (pthread_create(&thread, NULL, snap_thread, &j) != 0) {
        fprintf(stderr, "snapshot: cannot start a thread\n");
        f->fsm.snapshot_finalize(&f->fsm, &j.bufs, &j.n_bufs);
        return -1;
    }
    rv = run_batches(f, o, true, clock, UINT32_MAX, &j.done, &r);
    pthread_join(thread, NULL);
    vg_repl_fsm_wal_stats(f, &w1);
    for (unsigned i = 0; i < j.n_bufs; i++) {
        bytes += j.bufs[i].len;
    }
    if (j.rv == 0 && j.n_bufs == 1) {
        image.base = raft_malloc(j.bufs[0].len);
        if (image.base != NULL) {
            memcpy(image.base, j.bufs[0].base, j.bufs[0].len);
            image.len = j.bufs[0].len;
        }
    }
    f->fsm.snapshot_finalize(&f->fsm, &j.bufs, &j.n_bufs);
    if (rv != 0 || j.rv != 0) {
        fprintf(stderr, "snapshot: %s\n", j.rv != 0 ? "serialization failed" : "apply");
        return -1;
    }
    /* As many again after it: the WAL it let grow is checkpointed now. */
    if (run_batches(f, o, true, clock, r.batches, NULL, &after) != 0 ||
        image.base == NULL) {
        raft_free(image.base);
        return -1;
    }
    if (bench_restore(f->path, &image, &restore_ms) != 0) {
        return -1;
    }
    printf("{\"bench\":\"snapshot\",\"bytes\":%zu,\"loop_ms\":%.2f,"
           "\"pool_ms\":%.1f,\"batches_meanwhile\":%u,"
           "\"longest_batch_meanwhile_ms\":%.1f,\"wal_frames_after\":%llu,"
           "\"wal_hard_meanwhile\":%llu,\"longest_batch_after_ms\":%.1f,"
           "\"restore_ms\":%.1f}\n",
           bytes, loop_ms, j.ms, r.batches, r.longest * 1e3,
           (unsigned long long)w1.wal_frames,
           (unsigned long long)(w1.hard - w0.hard), after.longest * 1e3,
           restore_ms);
    return 0;
}

/* One tag's day at 1 s in one batch, settled (a trend of the last day
 * reads mostly settled samples: rows at levels 1 and 2, chunks from 3 on),
 * then QUERIES aggregations of it. */
static int bench_aggregate(struct vg_repl_fsm *f)
{
    unsigned char *raw = malloc((size_t)DAY_S * VG_HISTORY_SAMPLE_SIZE);
    json_t *names = json_pack("[s]", "bench.day");
    const uint64_t from = 1800000000000ull;
    double ms[QUERIES];
    struct raft_buffer buf;
    int rv = -1;

    if (raw == NULL || names == NULL) {
        goto out;
    }
    for (unsigned i = 0; i < DAY_S; i++) {
        pack(raw + (size_t)i * VG_HISTORY_SAMPLE_SIZE, 0, i * 1000u,
             20.0 + 5.0 * sin(i / 3600.0), i % 500 == 7);
    }
    if (encode_batch(from, names, raw, DAY_S, from, true, &buf) != VG_OK) {
        goto out;
    }
    /* Every recent row settles at once: in apply at level 1, in the
     * slices below from level 2 on. */
    vg_repl_fsm_archive_settle_limits(f, 1, 1, UINT32_MAX);
    rv = apply(f, &buf);
    raft_free(buf.base);
    for (uint64_t moved = 1; rv == 0 && moved > 0;) {
        if (vg_repl_fsm_archive_settle_some(f, UINT64_C(1) << 40, &moved) != VG_OK) {
            fprintf(stderr, "settle: %s\n", f->errmsg);
            rv = -1;
        }
    }
    if (rv != 0) {
        goto out;
    }
    for (int q = 0; q < QUERIES; q++) {
        json_t *res = NULL;
        double start = now_s();
        if (vg_repl_fsm_history_aggregate(f, "bench.day", from,
                                          from + DAY_S * 1000ull, 500,
                                          &res) != VG_OK) {
            fprintf(stderr, "aggregate: %s\n", f->errmsg);
            rv = -1;
            goto out;
        }
        ms[q] = (now_s() - start) * 1e3;
        if (json_array_size(json_object_get(res, "buckets")) != 500) {
            fprintf(stderr, "aggregate: expected 500 buckets\n");
            json_decref(res);
            rv = -1;
            goto out;
        }
        json_decref(res);
    }
    qsort(ms, QUERIES, sizeof ms[0], cmp_double);
    printf("{\"bench\":\"history_aggregate_24h\",\"buckets\":500,\"samples\":%d,"
           "\"median_ms\":%.2f,\"p99_ms\":%.2f}\n",
           DAY_S, (ms[QUERIES / 2 - 1] + ms[QUERIES / 2]) / 2,
           ms[(QUERIES * 99 + 99) / 100 - 1]);
out:
    json_decref(names);
    free(raw);
    return rv;
}

/* QUERIES aggregations into 100 buckets of the whole range of a tag the
 * batches wrote: its samples are settled or still in the recent rows, and
 * a query reads both (every recent row holds a sample of every tag). */
static int bench_loaded_tag(struct vg_repl_fsm *f, const struct opts *o,
                            uint64_t clock)
{
    const uint64_t from = 1700000000000ull;
    double ms[QUERIES];
    size_t points = 0;

    for (int q = 0; q < QUERIES; q++) {
        json_t *res = NULL;
        double start = now_s();
        if (vg_repl_fsm_history_aggregate(f, "plant.section00.tag00000", from,
                                          clock + 1, 100, &res) != VG_OK) {
            fprintf(stderr, "aggregate: %s\n", f->errmsg);
            return -1;
        }
        ms[q] = (now_s() - start) * 1e3;
        points = json_array_size(json_object_get(res, "buckets"));
        json_decref(res);
        if (points == 0) {
            fprintf(stderr, "aggregate of a loaded tag: no bucket\n");
            return -1;
        }
    }
    qsort(ms, QUERIES, sizeof ms[0], cmp_double);
    printf("{\"bench\":\"history_aggregate_loaded_tag\",\"buckets\":%zu,"
           "\"samples\":%u,\"median_ms\":%.2f,\"p99_ms\":%.2f}\n",
           points, (unsigned)(((uint64_t)o->batches * o->batch_samples) / o->tags),
           (ms[QUERIES / 2 - 1] + ms[QUERIES / 2]) / 2,
           ms[(QUERIES * 99 + 99) / 100 - 1]);
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o = {.level = 1, .batches = 40,
                     .batch_samples = 50000, .tags = 1000, .parent = "/tmp"};
    struct vg_repl_fsm f;
    char dir[256], path[300];
    int rv;

    const struct bench_opt opts[] = {
        {"--batches", &o.batches, NULL, VG_HISTORY_BATCH_MAX},
        {"--batch-samples", &o.batch_samples, NULL, VG_HISTORY_BATCH_MAX},
        {"--tags", &o.tags, NULL, 65536},
        {"--dir", NULL, &o.parent, 0},
        {"--level", &o.level, NULL, VG_REPL_APPLY_LEVEL},
        {NULL, NULL, NULL, 0},
    };

    if (bench_args(argc, argv, opts) != 0) {
        fprintf(stderr, "usage: %s [--batches N] [--batch-samples N]"
                        " [--tags N (<= 65536)] [--dir PARENT] [--level N]\n",
                argv[0]);
        return 2;
    }
    snprintf(dir, sizeof dir, "%s/vg-archive-bench-XXXXXX", o.parent);
    if (mkdtemp(dir) == NULL) {
        perror(dir);
        return 1;
    }
    rv = 0;
    for (int binary = 0; binary <= 1 && rv == 0; binary++) {
        uint64_t clock = 1700000000000ull;
        snprintf(path, sizeof path, "%s/%s.db", dir, binary ? "binary" : "json");
        if (vg_repl_fsm_open(&f, path) != VG_OK) {
            fprintf(stderr, "%s\n", f.errmsg);
            rv = -1;
            break;
        }
        if (o.level > 1) {
            rv = raise_level(&f, o.level);
        }
        if (rv == 0) {
            rv = bench_apply(&f, &o, binary, &clock);
        }
        if (rv == 0 && binary) {
            rv = bench_loaded_tag(&f, &o, clock);
        }
        if (rv == 0 && binary) {
            rv = bench_info(&f);
        }
        if (rv == 0 && binary) {
            rv = bench_cut(&f, &o, 1700000000000ull);
        }
        if (rv == 0 && binary) {
            rv = bench_scrub(&f);
        }
        if (rv == 0 && binary) {
            rv = bench_snapshot(&f, &o, &clock);
        }
        if (rv == 0 && binary) {
            rv = bench_aggregate(&f);
        }
        if (rv == 0 && binary) {
            rv = bench_cut_some(&f, &o, 1700000000000ull);
        }
        vg_repl_fsm_close(&f);
    }
    vg_remove_tree(dir);
    return rv == 0 ? 0 : 1;
}
