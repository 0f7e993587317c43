/* Benchmark of the consistency checkpoint's state digest
 * (vg_repl_fsm_digest, replication/fsm.c) as the alarm journal and the
 * audit trail grow: one fsm in a fresh temporary directory, AUDIT commands
 * applied through f->fsm.apply as libraft would (each writes one audit
 * row), then the digest computed repeatedly. Every checkpoint computes it
 * inside apply, on every node's loop, so it must not grow with the records.
 *
 * Prints one JSON object per line, for each size in --rows:
 *   {"bench":"checkpoint_digest","audit_rows":…,"median_ms":…,"max_ms":…}
 *       10 digests over a database holding that many audit rows.
 * Machines are shared and noisy: compare medians and ratios.
 *
 * usage: digest_bench [--rows N[,N…]] [--dir PARENT] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "replication.h"

#define DIGESTS 10

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int apply_audit(struct vg_repl_fsm *f, uint64_t n)
{
    char body[256];
    struct vg_cmd cmd = {.type = VG_CMD_AUDIT, .term = 2, .proposer = 1};
    struct raft_buffer buf;
    void *result = NULL;
    int rv;

    snprintf(body, sizeof body,
             "{\"kind\":\"alarm_acked\",\"object\":\"area.unit%llu.alarm\","
             "\"old_value\":\"active_unacked\",\"new_value\":\"active_acked\","
             "\"user\":\"operator\",\"station\":\"control-room\",\"detail\":null}",
             (unsigned long long)(n % 20000));
    cmd.time_ms = 1700000000000ull + n;
    cmd.body = body;
    cmd.body_len = (uint32_t)strlen(body);
    if (vg_cmd_encode(&cmd, &buf) != VG_OK) {
        return -1;
    }
    rv = f->fsm.apply(&f->fsm, &buf, &result);
    raft_free(buf.base);
    return rv == 0 && (intptr_t)result == VG_OK ? 0 : -1;
}

int main(int argc, char **argv)
{
    const char *rows = "10000,100000,300000", *parent = "/tmp";
    char dir[256], path[300];
    struct vg_repl_fsm f;
    uint64_t have = 0;

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--rows") == 0) {
            rows = argv[i + 1];
        } else if (strcmp(argv[i], "--dir") == 0) {
            parent = argv[i + 1];
        } else {
            fprintf(stderr, "usage: digest_bench [--rows N[,N...]] [--dir PARENT]\n");
            return 2;
        }
    }
    snprintf(dir, sizeof dir, "%s/vg-digest-bench-XXXXXX", parent);
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof path, "%s/state.db", dir);
    memset(&f, 0, sizeof f);
    if (vg_repl_fsm_open(&f, path) != VG_OK) {
        fprintf(stderr, "open: %s\n", f.errmsg);
        vg_remove_tree(dir);
        return 1;
    }
    for (const char *p = rows; *p != '\0';) {
        char *end;
        uint64_t want = strtoull(p, &end, 10);
        double t[DIGESTS];
        unsigned char d[VG_DIGEST_SIZE];

        if (end == p || want > 10000000) {
            fprintf(stderr, "digest_bench: bad --rows '%s'\n", rows);
            break;
        }
        p = *end == ',' ? end + 1 : end;
        while (have < want) {
            if (apply_audit(&f, have++) != 0) {
                fprintf(stderr, "apply failed: %s\n", f.errmsg);
                goto out;
            }
        }
        for (int k = 0; k < DIGESTS; k++) {
            double t0 = now_s();
            if (vg_repl_fsm_digest(&f, d) != VG_OK) {
                fprintf(stderr, "digest: %s\n", f.errmsg);
                goto out;
            }
            t[k] = (now_s() - t0) * 1000.0;
        }
        qsort(t, DIGESTS, sizeof t[0], cmp_double);
        printf("{\"bench\":\"checkpoint_digest\",\"audit_rows\":%llu,"
               "\"median_ms\":%.3f,\"max_ms\":%.3f}\n",
               (unsigned long long)have, (t[DIGESTS / 2 - 1] + t[DIGESTS / 2]) / 2,
               t[DIGESTS - 1]);
        fflush(stdout);
    }
out:
    vg_repl_fsm_close(&f);
    vg_remove_tree(dir);
    return 0;
}
