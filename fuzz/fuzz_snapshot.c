/* libFuzzer target for the state machine's snapshot restore
 * (replication/fsm.c, fsm_restore, reached as libraft reaches it through
 * f->fsm.restore). A snapshot image arrives from another node over the
 * network: restore parses outside data, must never crash, and must refuse
 * what it cannot use.
 *
 * Once per process a state machine in a new directory under $TMPDIR gets
 * a handful of valid commands (ANNOUNCE, PUT, AUDIT, ALARM_STATE,
 * CLUSTER_LEVEL 3, HISTORY_BATCH twice, NODE_INFO, CHECKPOINT, PUT);
 * vg_repl_fsm_snapshot_copy takes two images of it, "mid" after the first
 * MID_COMMANDS (at level 1) and "base" after all of them, its archive
 * settled into a compressed chunk (level 3, archive_chunks.c).
 *
 * Input layout: byte 0 holds options.
 *   byte0 & 3      the image: 0 the rest of the input as it is; 1 the base
 *                  image with patches; 2 the base image cut to a length
 *                  (3 bytes, little-endian: bit 23 set, the low bits count
 *                  whole pages; clear, bytes), then patches; 3 the mid
 *                  image with patches.
 *   byte0 >> 2 & 3 the state machine restored into, opened on a new file:
 *                  0 and 1 empty; 2 holding the mid state (index below the
 *                  base image's); 3 holding the base state (the image is
 *                  not newer: "keep ours").
 *   byte0 & 16     that state machine's verdict is "diverged" (it must take
 *                  any image, older ones too).
 * A patch is [flags, page, offset u16 LE, n] and n % 32 + 1 bytes (fewer
 * at the end of the input): they are XOR-ed into (flags & 2: written over)
 * the image at OFFSET % page size in a page of it: page % pages, or with
 * flags & 1 one of the pages that matter most (page 1 with the header and
 * the schema, the roots of vg_meta, its index, kv, kv's index,
 * cluster_level and archive_chunks). Image and patches keep inputs short: the base image is
 * ~150 KB.
 *
 * Checked, for every input:
 *   - restore returns 0, RAFT_CORRUPT, RAFT_IOERR or RAFT_NOMEM;
 *   - f->fatal set (SQLite took the image but it broke the database) is
 *     accepted as fail-stop: the state machine is only closed;
 *   - a refusal leaves applied index, chain and digest as they were;
 *   - an image restore took has a vg_meta that SQLite can read; when it
 *     says an index not above ours (and we did not diverge) nothing
 *     changes, otherwise the applied index is the image's, the digest can
 *     be taken, and an image that is the unchanged base or mid image gives
 *     that image's digest and chain;
 *   - a self-check (scrub.c) of what restore left returns "adds up" or
 *     "damaged", never anything else or a crash; ours kept, or a pristine
 *     image restored, adds up.
 * Any failed check aborts, which libFuzzer reports as a crash. With
 * VG_FUZZ_STATS set in the environment the outcomes are counted on stderr
 * at exit. */
#include <errno.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "replication.h"

#include "fuzz_check.h"

#define TIME_MS UINT64_C(1700000000000)
#define MAX_HOT 7
#define PATCH_MAX 32

/* The state the images hold; CHECKPOINT's body is taken from the state
 * machine when its turn comes. */
static const struct {
    unsigned type;
    const char *body;
} commands[] = {
    {VG_CMD_ANNOUNCE,
     "{\"raft_address\":\"h1:1\",\"client_address\":\"h1:2\"}"},
    {VG_CMD_PUT, "{\"key\":\"pump.p1\",\"value\":\"on\"}"},
    {VG_CMD_AUDIT,
     "{\"kind\":\"limit\",\"object\":\"LT101.hh\",\"old_value\":3,"
     "\"new_value\":4.25,\"user\":\"ann\",\"station\":\"op1\"}"},
    {VG_CMD_ALARM_STATE,
     "{\"changes\":[{\"alarm\":\"LT101.hi\",\"tag\":\"LT101\","
     "\"section\":\"intake\",\"priority\":2,\"message\":{\"en\":\"Tank high\"},"
     "\"state\":{\"status\":\"unack_active\",\"active\":true,\"changed_ms\":5,"
     "\"pending\":false,\"pending_since_ms\":0,\"raised_ms\":5,\"acked_ms\":0,"
     "\"cleared_ms\":0,\"shelved\":false,\"shelved_ms\":0,"
     "\"shelved_until_ms\":0,\"shelve_reason\":\"\",\"shelve_user\":\"\","
     "\"out_of_service\":false,\"out_of_service_ms\":0},"
     "\"transition\":{\"cause\":\"raised\",\"from\":\"normal\","
     "\"to\":\"unack_active\",\"at_ms\":5,\"value\":4.5}}]}"},
    {VG_CMD_CLUSTER_LEVEL, "{\"level\":3}"},
    {VG_CMD_HISTORY_BATCH,
     "{\"t0\":1000,\"tags\":[\"a\"],\"s\":\"AAAAAAAAAAAAAAAAAAD4PwA=\"}"},
    /* a at 2000, 3000, 4000: 1.5, 1.75, 2 */
    {VG_CMD_HISTORY_BATCH,
     "{\"t0\":2000,\"tags\":[\"a\"],\"s\":"
     "\"AAAAAAAAAAAAAAAAAAD4PwAAAAAA6AMAAAAAAAAAAPw/AAAAAADQBwAAAAAAAAAAAEAA\"}"},
    {VG_CMD_NODE_INFO, "{\"node_id\":2,\"raft_address\":\"h2:1\","
                       "\"client_address\":\"h2:2\"}"},
    {VG_CMD_CHECKPOINT, NULL},
    {VG_CMD_PUT, "{\"key\":\"valve.v2\",\"value\":\"closed\"}"},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])
#define MID_COMMANDS 4

/* A pristine image and what restoring it must give. */
struct image {
    struct raft_buffer buf; /* raft_malloc'd, kept for the whole run */
    uint64_t index;
    unsigned char digest[VG_DIGEST_SIZE];
    unsigned char chain[VG_DIGEST_SIZE];
};

static struct {
    char dir[256]; /* "" until created */
    char base_path[300];
    char target_path[300];
    struct image mid, base;
    size_t page_size;
    unsigned hot[MAX_HOT]; /* page numbers, from 1 */
    size_t n_hot;
    struct {
        unsigned long refused, kept, restored, fatal, scrub_damaged;
    } stats;
} g;

/* ------------------------------------------------------------ files */

/* A database and the files SQLite keeps next to it in WAL mode. */
static void db_remove(const char *path)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        char p[320];
        snprintf(p, sizeof p, "%s%s", path, suffixes[i]);
        if (unlink(p) != 0 && errno != ENOENT) {
            fprintf(stderr, "%s: %s\n", p, strerror(errno));
        }
    }
}

static void cleanup(void)
{
    db_remove(g.base_path);
    db_remove(g.target_path);
    rmdir(g.dir);
    raft_free(g.mid.buf.base);
    raft_free(g.base.buf.base);
    if (getenv("VG_FUZZ_STATS") != NULL) {
        fprintf(stderr,
                "fuzz_snapshot: %lu refused, %lu kept ours, %lu restored"
                " (%lu found damaged by a self-check), %lu fail-stop\n",
                g.stats.refused, g.stats.kept, g.stats.restored,
                g.stats.scrub_damaged, g.stats.fatal);
    }
}

static void fsm_open(struct vg_repl_fsm *f, const char *path)
{
    if (vg_repl_fsm_open(f, path) != VG_OK) {
        fprintf(stderr, "vg_repl_fsm_open %s: %s\n", path, f->errmsg);
        abort();
    }
}

/* A self-check of F: VG_OK or VG_EDB (damage found); a database without
 * WAL cannot be checked and counts as adding up. */
static int scrub(struct vg_repl_fsm *f)
{
    int rv = vg_repl_fsm_scrub(f);
    if (rv != VG_OK && rv != VG_EDB && rv != VG_EUNSUPPORTED) {
        fprintf(stderr, "scrub returned %d: %s\n", rv, f->scrub.msg);
        abort();
    }
    return rv == VG_EUNSUPPORTED ? VG_OK : rv;
}

static void digest_of(struct vg_repl_fsm *f, unsigned char out[VG_DIGEST_SIZE])
{
    if (vg_repl_fsm_digest(f, out) != VG_OK) {
        fprintf(stderr, "vg_repl_fsm_digest: %s\n", f->errmsg);
        abort();
    }
}

/* Apply commands[from..to) to F (without libraft: index applied + 1). The
 * time stamps depend on the position only, so every state machine filled
 * to the same point holds the same state. */
static void fill(struct vg_repl_fsm *f, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        char *body = commands[i].body != NULL ? NULL
                                              : vg_repl_fsm_checkpoint_body(f);
        const char *text = commands[i].body != NULL ? commands[i].body : body;
        struct vg_cmd cmd = {.type = (uint16_t)commands[i].type,
                             .term = 1,
                             .time_ms = TIME_MS + i,
                             .proposer = 1,
                             .body = text,
                             .body_len = text != NULL ? (uint32_t)strlen(text) : 0};
        struct raft_buffer buf;
        void *result = NULL;

        CHECK(text != NULL);
        CHECK(vg_cmd_encode(&cmd, &buf) == VG_OK);
        CHECK(f->fsm.apply(&f->fsm, &buf, &result) == 0);
        raft_free(buf.base);
        free(body);
        if ((int)(intptr_t)result != VG_OK) {
            fprintf(stderr, "setup: %s command %zu refused (%d): %s\n",
                    vg_cmd_type_name(commands[i].type), i,
                    (int)(intptr_t)result, f->errmsg);
            abort();
        }
    }
}

static void take(struct vg_repl_fsm *f, struct image *img)
{
    if (vg_repl_fsm_snapshot_copy(f, &img->buf) != VG_OK) {
        fprintf(stderr, "vg_repl_fsm_snapshot_copy: %s\n", f->errmsg);
        abort();
    }
    img->index = f->applied_index;
    digest_of(f, img->digest);
    memcpy(img->chain, f->chain, sizeof img->chain);
}

/* ------------------------------------------------------------ images */

/* Open IMG (borrowed, read in place) in a connection of its own. */
static sqlite3 *image_open(const unsigned char *img, size_t len)
{
    sqlite3 *db = NULL;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
        sqlite3_deserialize(db, "main", (unsigned char *)img,
                            (sqlite3_int64)len, (sqlite3_int64)len,
                            SQLITE_DESERIALIZE_READONLY) != SQLITE_OK) {
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

/* The index the image's vg_meta gives, read as restore reads it (a scan
 * of the table, not through its key's index). False when it is not an
 * SQLite database or has no such row SQLite can read: restore must refuse
 * it. */
static bool image_index(const unsigned char *img, size_t len, uint64_t *out)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    int rc;

    *out = 0;
    if (len < 100 || memcmp(img, "SQLite format 3", 16) != 0 ||
        (db = image_open(img, len)) == NULL) {
        return false;
    }
    if (sqlite3_prepare_v2(db,
                           "SELECT value FROM vg_meta NOT INDEXED"
                           " WHERE key = 'applied_index'",
                           -1, &st, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return false;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = (uint64_t)sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc == SQLITE_ROW;
}

/* Page size and the pages patches aim at, from the base image. */
static void find_pages(void)
{
    const unsigned char *h = g.base.buf.base;
    sqlite3 *db;
    sqlite3_stmt *st;

    g.page_size = (size_t)h[16] << 8 | h[17];
    if (g.page_size == 1) {
        g.page_size = 65536;
    }
    CHECK(g.page_size >= 512 && g.base.buf.len % g.page_size == 0);
    g.hot[g.n_hot++] = 1;
    CHECK((db = image_open(h, g.base.buf.len)) != NULL);
    CHECK(sqlite3_prepare_v2(db,
                             "SELECT rootpage FROM sqlite_schema"
                             " WHERE tbl_name IN ('vg_meta', 'kv', 'cluster_level',"
                             " 'archive_chunks')"
                             " AND rootpage > 1 ORDER BY rootpage",
                             -1, &st, NULL) == SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW && g.n_hot < MAX_HOT) {
        g.hot[g.n_hot++] = (unsigned)sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    CHECK(g.n_hot >= 3); /* vg_meta and its primary key index at least */
}

/* The rows of TABLE in F. */
static long long count_of(struct vg_repl_fsm *f, const char *table)
{
    char sql[64];
    sqlite3_stmt *st;
    long long n = -1;
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    CHECK(sqlite3_prepare_v2(f->db, sql, -1, &st, NULL) == SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW) {
        n = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return n;
}

static void setup(void)
{
    struct vg_repl_fsm f;
    fuzz_tmpdir(g.dir, sizeof g.dir, "snapshot");
    snprintf(g.base_path, sizeof g.base_path, "%s/base.db", g.dir);
    snprintf(g.target_path, sizeof g.target_path, "%s/target.db", g.dir);
    atexit(cleanup);

    fsm_open(&f, g.base_path);
    /* Every recent row settles at the next slice. */
    vg_repl_fsm_archive_settle_limits(&f, 1, 1, 0);
    fill(&f, 0, MID_COMMANDS);
    take(&f, &g.mid);
    fill(&f, MID_COMMANDS, N_COMMANDS);
    for (uint64_t moved = 1; moved > 0;) {
        CHECK(vg_repl_fsm_archive_settle_some(&f, UINT64_C(1) << 40, &moved) == VG_OK);
    }
    CHECK(count_of(&f, "archive_chunks") == 1 && count_of(&f, "archive_recent") == 0);
    take(&f, &g.base);
    vg_repl_fsm_close(&f);
    db_remove(g.base_path);
    CHECK(g.mid.index == MID_COMMANDS && g.base.index == N_COMMANDS);
    find_pages();
}

/* XOR (or write) the patches in P[0..N) into IMG[0..LEN). */
static void patch(unsigned char *img, size_t len, const uint8_t *p, size_t n)
{
    size_t pages = len / g.page_size;

    while (n >= 5 && len > 0) {
        unsigned flags = p[0];
        size_t page = (flags & 1) ? g.hot[p[1] % g.n_hot] - 1
                                  : (pages > 0 ? p[1] % pages : 0);
        size_t at = page * g.page_size + ((size_t)p[2] | (size_t)p[3] << 8) % g.page_size;
        size_t k = (size_t)p[4] % PATCH_MAX + 1;

        p += 5;
        n -= 5;
        if (k > n) {
            k = n;
        }
        for (size_t i = 0; i < k && at + i < len; i++) {
            img[at + i] = (flags & 2) ? p[i] : (unsigned char)(img[at + i] ^ p[i]);
        }
        p += k;
        n -= k;
    }
}

/* The image INPUT describes, raft_malloc'd (at least one byte, as libraft
 * never hands over an empty buffer). *PRISTINE is the image it is a
 * byte-for-byte copy of, or NULL. */
static struct raft_buffer candidate(const uint8_t *input, size_t input_size,
                                    const struct image **pristine)
{
    unsigned mode = input[0] & 3;
    const uint8_t *p = input + 1;
    size_t n = input_size - 1;
    const struct image *from = mode == 3 ? &g.mid : &g.base;
    struct raft_buffer out;

    *pristine = NULL;
    if (mode == 0) {
        out.len = n;
        out.base = raft_malloc(n > 0 ? n : 1);
        CHECK(out.base != NULL);
        if (n > 0) {
            memcpy(out.base, p, n);
        }
        return out;
    }
    out.len = from->buf.len;
    if (mode == 2) {
        size_t v = 0;
        for (size_t i = 0; i < 3 && i < n; i++) {
            v |= (size_t)p[i] << (8 * i);
        }
        p += n < 3 ? n : 3;
        n -= n < 3 ? n : 3;
        out.len = (v & 0x800000) ? ((v & 0x7fffff) % (out.len / g.page_size + 1)) *
                                       g.page_size
                                 : v % (out.len + 1);
    }
    out.base = raft_malloc(out.len > 0 ? out.len : 1);
    CHECK(out.base != NULL);
    memcpy(out.base, from->buf.base, out.len);
    patch(out.base, out.len, p, n);
    if (out.len == from->buf.len && memcmp(out.base, from->buf.base, out.len) == 0) {
        *pristine = from;
    }
    return out;
}

/* ------------------------------------------------------------ input */

int LLVMFuzzerTestOneInput(const uint8_t *input, size_t input_size)
{
    unsigned char before[VG_DIGEST_SIZE], after[VG_DIGEST_SIZE];
    unsigned char chain[VG_DIGEST_SIZE];
    const struct image *pristine;
    struct raft_buffer img;
    struct vg_repl_fsm f;
    unsigned holds;
    bool diverged, known;
    uint64_t index, claimed = 0;
    int rv;

    if (input_size < 1) {
        return 0;
    }
    if (g.dir[0] == '\0') {
        setup();
    }
    holds = input[0] >> 2 & 3;
    diverged = (input[0] & 16) != 0;
    img = candidate(input, input_size, &pristine);
    known = image_index(img.base, img.len, &claimed);

    fsm_open(&f, g.target_path);
    fill(&f, 0, holds == 3 ? N_COMMANDS : holds == 2 ? MID_COMMANDS : 0);
    if (diverged) {
        f.verdict = VG_VERDICT_DIVERGED;
    }
    digest_of(&f, before);
    index = f.applied_index;
    memcpy(chain, f.chain, sizeof chain);

    rv = f.fsm.restore(&f.fsm, &img);
    if (rv != 0 && rv != RAFT_CORRUPT && rv != RAFT_IOERR && rv != RAFT_NOMEM) {
        fprintf(stderr, "restore returned %d: %s\n", rv, f.errmsg);
        abort();
    }
    if (rv != 0) {
        raft_free(img.base); /* still ours */
    }
    if (f.fatal) {
        /* SQLite took the image but it broke the database: fail-stop. */
        g.stats.fatal++;
    } else if (rv != 0) {
        /* Refused: nothing changed. */
        g.stats.refused++;
        CHECK(f.applied_index == index);
        CHECK(memcmp(f.chain, chain, sizeof chain) == 0);
        digest_of(&f, after);
        CHECK(memcmp(before, after, sizeof before) == 0);
    } else if (!known) {
        fprintf(stderr, "restore took an image without a readable vg_meta\n");
        abort();
    } else if (claimed <= index && !diverged) {
        /* Not newer than ours: ours is kept. */
        g.stats.kept++;
        CHECK(f.applied_index == index);
        CHECK(memcmp(f.chain, chain, sizeof chain) == 0);
        digest_of(&f, after);
        CHECK(memcmp(before, after, sizeof before) == 0);
        CHECK(scrub(&f) == VG_OK);
    } else {
        g.stats.restored++;
        if (f.applied_index != claimed) {
            fprintf(stderr, "restored index %llu, the image says %llu\n",
                    (unsigned long long)f.applied_index,
                    (unsigned long long)claimed);
            abort();
        }
        digest_of(&f, after);
        if (pristine != NULL) {
            CHECK(memcmp(after, pristine->digest, sizeof after) == 0);
            CHECK(memcmp(f.chain, pristine->chain, sizeof f.chain) == 0);
        }
        /* What restore took may still be damaged where its checks do not
         * look (a sample's value): the self-check reads all of it and
         * finds that, or says it adds up; a pristine image adds up. */
        rv = scrub(&f);
        CHECK(rv == VG_OK || rv == VG_EDB);
        CHECK(pristine == NULL || rv == VG_OK);
        if (rv == VG_EDB) {
            g.stats.scrub_damaged++;
        }
    }
    vg_repl_fsm_close(&f);
    db_remove(g.target_path);
    return 0;
}
