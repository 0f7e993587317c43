/* libFuzzer target for the binary body of VG_CMD_ALARM_CHANGES
 * (replication/alarm_changes.c): the body every node reads without jansson,
 * in the format replication.h documents, and applies (alarm_log.c) under
 * the promise that a change stores the same rows whichever form, this or
 * the JSON of ALARM_STATE, carried it.
 *
 * Input: the body itself. Checked, for each input:
 *   - vg_repl_alarm_changes_decode answers VG_OK or VG_EINVAL, and a
 *     refusal comes with a message ("alarm changes: …");
 *   - what is accepted holds 1..1024 changes; each re-encodes
 *     (vg_repl_alarm_change_encode accepts it) and the changes put into a
 *     body (vg_repl_alarm_changes_body) give the input back byte for byte:
 *     the format has one encoding per change;
 *   - the JSON form of the decoded changes (fuzz/alarm_change_json.c)
 *     decodes, as an ALARM_STATE body, to the same changes;
 *   - applied to two state machines, once as ALARM_STATE and once as
 *     ALARM_CHANGES (same term, time and proposer, through f->fsm.apply as
 *     libraft would), both accept without an SQLite error and the digests
 *     stay equal. The two databases (in a new directory under $TMPDIR,
 *     removed at exit) live across inputs, so a change meets the states
 *     earlier ones left; every 1000 accepted inputs both are replaced.
 * Any failed check aborts, which libFuzzer reports as a crash. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alarm_change_json.h"
#include "replication.h"

#include "fuzz_check.h"

#define INPUTS_PER_DB 1000
#define TIME_MS UINT64_C(1700000000000)

static const char *const db_names[2] = {"json.db", "bin.db"};

static struct {
    char dir[256]; /* "" until created */
    struct vg_repl_fsm f[2]; /* [0] applies ALARM_STATE, [1] ALARM_CHANGES */
    bool open;
    unsigned inputs; /* applied to the open databases */
} g;

static void db_path(int i, const char *suffix, char *out, size_t size)
{
    snprintf(out, size, "%s/%s%s", g.dir, db_names[i], suffix);
}

/* The databases and the files SQLite keeps next to them in WAL mode. */
static void db_remove(void)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (int i = 0; i < 2; i++) {
        for (size_t k = 0; k < sizeof suffixes / sizeof suffixes[0]; k++) {
            char p[320];
            db_path(i, suffixes[k], p, sizeof p);
            if (unlink(p) != 0 && errno != ENOENT) {
                fprintf(stderr, "%s: %s\n", p, strerror(errno));
            }
        }
    }
}

static void db_close(void)
{
    if (g.open) {
        vg_repl_fsm_close(&g.f[0]);
        vg_repl_fsm_close(&g.f[1]);
        g.open = false;
    }
}

static void cleanup(void)
{
    db_close();
    db_remove();
    rmdir(g.dir);
}

static void db_open(void)
{
    if (g.dir[0] == '\0') {
        fuzz_tmpdir(g.dir, sizeof g.dir, "changes");
        atexit(cleanup);
    }
    for (int i = 0; i < 2; i++) {
        char p[320];
        db_path(i, "", p, sizeof p);
        if (vg_repl_fsm_open(&g.f[i], p) != VG_OK) {
            fprintf(stderr, "vg_repl_fsm_open: %s\n", g.f[i].errmsg);
            abort();
        }
    }
    g.open = true;
    g.inputs = 0;
}

/* Apply BODY as a command of TYPE to F: accepted, without an SQLite error. */
static void apply(struct vg_repl_fsm *f, unsigned type, const void *body,
                  size_t len)
{
    struct vg_cmd cmd = {.type = (uint16_t)type,
                         .term = 1,
                         .time_ms = TIME_MS,
                         .proposer = 1,
                         .body = body,
                         .body_len = (uint32_t)len};
    struct raft_buffer buf;
    void *result = (void *)(intptr_t)-1;
    uint64_t index = f->applied_index;
    int rv;

    CHECK(vg_cmd_encode(&cmd, &buf) == VG_OK);
    rv = f->fsm.apply(&f->fsm, &buf, &result);
    raft_free(buf.base);
    if (rv != 0 || f->fatal || (int)(intptr_t)result != VG_OK) {
        fprintf(stderr, "apply of %s: rv %d, fatal %d, outcome %d: %s\n",
                vg_cmd_type_name(type), rv, f->fatal, (int)(intptr_t)result,
                f->errmsg);
        abort();
    }
    CHECK(f->applied_index == index + 1);
}

/* The decoded changes C re-encoded: exactly the input. */
static void check_canonical(const struct vg_repl_alarm_changes *c,
                            const uint8_t *input, size_t input_size)
{
    struct vg_repl_bytes b = {0};
    char err[VG_ERRMSG_SIZE];
    unsigned char *body;
    size_t len;

    for (size_t i = 0; i < c->n; i++) {
        if (vg_repl_alarm_change_encode(&b, &c->v[i], err) != VG_OK) {
            fprintf(stderr, "change %zu decoded but does not encode: %s\n", i, err);
            abort();
        }
    }
    CHECK(!b.nomem);
    CHECK(vg_repl_alarm_changes_body(b.p, b.len, c->n, &body, &len) == VG_OK);
    CHECK(len == input_size);
    CHECK(memcmp(body, input, len) == 0);
    free(body);
    free(b.p);
}

/* The JSON form of C decodes to the same changes. Returns the JSON body
 * (the caller frees it). */
static char *check_json_form(const struct vg_repl_alarm_changes *c)
{
    char *json = alarm_changes_json_body(c->v, c->n);
    struct vg_cmd cmd = {.type = VG_CMD_ALARM_STATE, .term = 1, .proposer = 1};
    struct vg_repl_alarm_changes back;
    char err[VG_ERRMSG_SIZE];

    CHECK(json != NULL);
    cmd.body = json;
    cmd.body_len = (uint32_t)strlen(json);
    if (vg_repl_alarm_changes_decode(&cmd, &back, err) != VG_OK) {
        fprintf(stderr, "the JSON form is refused: %s\n%s\n", err, json);
        abort();
    }
    CHECK(back.n == c->n);
    for (size_t i = 0; i < c->n; i++) {
        const char *diff = alarm_change_diff(&c->v[i], &back.v[i]);
        if (diff != NULL) {
            fprintf(stderr, "change %zu: the JSON form differs in %s\n", i, diff);
            abort();
        }
    }
    vg_repl_alarm_changes_free(&back);
    return json;
}

static void check_same_rows(const char *json, const uint8_t *input,
                            size_t input_size)
{
    unsigned char d[2][VG_DIGEST_SIZE];

    if (strlen(json) > VG_CMD_MAX_BODY) {
        return;
    }
    if (g.open && g.inputs >= INPUTS_PER_DB) {
        db_close();
        db_remove();
    }
    if (!g.open) {
        db_open();
    }
    g.inputs++;
    apply(&g.f[0], VG_CMD_ALARM_STATE, json, strlen(json));
    apply(&g.f[1], VG_CMD_ALARM_CHANGES, input, input_size);
    for (int i = 0; i < 2; i++) {
        if (vg_repl_fsm_digest(&g.f[i], d[i]) != VG_OK) {
            fprintf(stderr, "vg_repl_fsm_digest: %s\n", g.f[i].errmsg);
            abort();
        }
    }
    if (memcmp(d[0], d[1], VG_DIGEST_SIZE) != 0) {
        fprintf(stderr, "the forms stored different rows; JSON form:\n%s\n", json);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *input, size_t input_size)
{
    struct vg_cmd cmd = {.type = VG_CMD_ALARM_CHANGES,
                         .term = 1,
                         .time_ms = TIME_MS,
                         .proposer = 1,
                         .body = (const char *)input,
                         .body_len = (uint32_t)input_size};
    struct vg_repl_alarm_changes c;
    char err[VG_ERRMSG_SIZE] = "";
    char *json;
    int rv;

    if (input_size > VG_CMD_MAX_BODY) {
        return 0;
    }
    rv = vg_repl_alarm_changes_decode(&cmd, &c, err);
    if (rv != VG_OK) {
        CHECK(rv == VG_EINVAL);
        CHECK(strncmp(err, "alarm changes: ", 15) == 0 && err[15] != '\0');
        vg_repl_alarm_changes_free(&c);
        return 0;
    }
    CHECK(c.n >= 1 && c.n <= VG_REPL_ALARM_CHANGES_MAX);
    check_canonical(&c, input, input_size);
    json = check_json_form(&c);
    vg_repl_alarm_changes_free(&c);
    check_same_rows(json, input, input_size);
    free(json);
    return 0;
}
