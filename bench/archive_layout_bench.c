/* What a storage layout of the archive costs to settle into, without the
 * state machine: plain SQLite (WAL, synchronous=NORMAL, 64 MiB cache, as
 * the fsm opens its database) in a fresh temporary directory.
 *
 * A settle round (replication/archive_recent.c) moves about ROUND_PER
 * samples of each of TAGS tags into the archive, tag after tag, committing
 * every 32 768 samples. Two layouts:
 *   rows    archive_samples as today: one row per sample, key (tag, t);
 *   chunks  one row per tag and round, key (tag, t0), the round's samples
 *           of the tag in a blob of --chunk-bytes bytes per sample (17:
 *           uncompressed t, value, bad; 3-6: what a delta/XOR encoding of
 *           a regularly polled value would take; the bytes are filler: the
 *           encoding is not part of the measure).
 * The question it answers: is a round's cost the number of rows inserted
 * or the bytes (pages) written? (Each tag's samples go to the end of its
 * own key range, mid-tree: another leaf page per tag and round either way.)
 *
 * Prints one JSON object per measured round:
 *   {"bench":"archive_layout","layout":"rows"|"chunks","chunk_bytes":…,
 *    "round":k,"samples":…,"round_s":…,"samples_per_s":…,"db_mb":…}
 * every 4th round and the last; db_mb is the database file's size after
 * it (the WAL not counted: small runs show 0).
 *
 * Measured (one process, 2-core machine, quiet), round 23 of 24 at 25 000
 * tags (25.2 M samples): rows 3.03 and 3.71 s (347k and 283k samples/s,
 * 686 and 654 MB), chunks of 17 B/sample 2.05 s (513k/s, 582 MB), 6 B
 * 1.23 s (854k/s, 200 MB), 4 B 0.82 s (1.29 M/s, 124 MB), 3 B 0.63 s
 * (1.66 M/s, 105 MB): the bytes decide, not the rows.
 *
 * usage: archive_layout_bench [--tags N] [--rounds N] [--round-per N]
 *                             [--layout rows|chunks] [--chunk-bytes N]
 *                             [--dir PARENT] */
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench_args.h"

#define COMMIT_EVERY 32768u

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int run(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "%s: %s\n", sql, err);
        sqlite3_free(err);
        return -1;
    }
    return 0;
}

static double file_mb(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (double)st.st_size / 1048576.0 : -1;
}

int main(int argc, char **argv)
{
    unsigned tags = 25000, rounds = 24, per = 42, chunk_bytes = 17;
    const char *parent = "/tmp", *layout = "chunks";
    int chunks;
    const struct bench_opt opts[] = {
        {"--tags", &tags, NULL, 1000000},
        {"--rounds", &rounds, NULL, 10000},
        {"--round-per", &per, NULL, 100000},
        {"--chunk-bytes", &chunk_bytes, NULL, 64},
        {"--layout", NULL, &layout, 0},
        {"--dir", NULL, &parent, 0},
        {NULL, NULL, NULL, 0},
    };
    char dir[4096], path[4200], wal[4300];
    unsigned char *blob;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    uint64_t t_base = 1700000000000ull;
    int rv = 1;

    if (bench_args(argc, argv, opts) != 0) {
        return 2;
    }
    if (strcmp(layout, "rows") != 0 && strcmp(layout, "chunks") != 0) {
        fprintf(stderr, "--layout: 'rows' or 'chunks', not '%s'\n", layout);
        return 2;
    }
    chunks = strcmp(layout, "chunks") == 0;
    snprintf(dir, sizeof dir, "%s/vg-archive-layout-XXXXXX", parent);
    if (mkdtemp(dir) == NULL) {
        perror(dir);
        return 1;
    }
    snprintf(path, sizeof path, "%s/archive.db", dir);
    snprintf(wal, sizeof wal, "%s-wal", path);
    blob = calloc((size_t)per, chunk_bytes);
    if (blob == NULL || sqlite3_open(path, &db) != SQLITE_OK ||
        run(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                " PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY") != 0 ||
        run(db, chunks ? "CREATE TABLE archive_chunks(tag INTEGER NOT NULL,"
                         " t0 INTEGER NOT NULL, t1 INTEGER NOT NULL, n INTEGER NOT NULL,"
                         " data BLOB NOT NULL, PRIMARY KEY(tag, t0)) WITHOUT ROWID"
                       : "CREATE TABLE archive_samples(tag INTEGER NOT NULL,"
                         " t INTEGER NOT NULL, value REAL NOT NULL, bad INTEGER NOT NULL,"
                         " PRIMARY KEY(tag, t)) WITHOUT ROWID") != 0 ||
        sqlite3_prepare_v2(db, chunks ? "INSERT INTO archive_chunks VALUES(?, ?, ?, ?, ?)"
                                      : "INSERT INTO archive_samples VALUES(?, ?, ?, ?)",
                           -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "set-up: %s\n", db ? sqlite3_errmsg(db) : "out of memory");
        goto out;
    }
    for (unsigned r = 0; r < rounds; r++) {
        uint64_t t0 = t_base + (uint64_t)r * per * 100u;
        unsigned in_tx = 0;
        double start = now_s();

        if (run(db, "BEGIN") != 0) {
            goto out;
        }
        for (unsigned g = 1; g <= tags; g++) {
            if (chunks) {
                /* Filler that differs per tag and round (no page is a
                 * copy of another). */
                for (unsigned k = 0; k < per * chunk_bytes; k++) {
                    blob[k] = (unsigned char)(g * 31u + r * 7u + k);
                }
                sqlite3_bind_int64(st, 1, g);
                sqlite3_bind_int64(st, 2, (sqlite3_int64)t0);
                sqlite3_bind_int64(st, 3, (sqlite3_int64)(t0 + (per - 1) * 100u));
                sqlite3_bind_int(st, 4, (int)per);
                sqlite3_bind_blob(st, 5, blob, (int)(per * chunk_bytes), SQLITE_STATIC);
                if (sqlite3_step(st) != SQLITE_DONE) {
                    fprintf(stderr, "insert: %s\n", sqlite3_errmsg(db));
                    goto out;
                }
                sqlite3_reset(st);
                in_tx += per;
            } else {
                for (unsigned k = 0; k < per; k++) {
                    sqlite3_bind_int64(st, 1, g);
                    sqlite3_bind_int64(st, 2, (sqlite3_int64)(t0 + k * 100u));
                    sqlite3_bind_double(st, 3, g + k * 0.1);
                    sqlite3_bind_int(st, 4, 0);
                    if (sqlite3_step(st) != SQLITE_DONE) {
                        fprintf(stderr, "insert: %s\n", sqlite3_errmsg(db));
                        goto out;
                    }
                    sqlite3_reset(st);
                }
                in_tx += per;
            }
            if (in_tx >= COMMIT_EVERY && (run(db, "COMMIT") != 0 || run(db, "BEGIN") != 0)) {
                goto out;
            }
            if (in_tx >= COMMIT_EVERY) {
                in_tx = 0;
            }
        }
        if (run(db, "COMMIT") != 0) {
            goto out;
        }
        if (r % 4 == 0 || r + 1 == rounds) {
            double dt = now_s() - start;
            printf("{\"bench\":\"archive_layout\",\"layout\":\"%s\",\"chunk_bytes\":%u,"
                   "\"round\":%u,\"samples\":%llu,\"round_s\":%.3f,"
                   "\"samples_per_s\":%.0f,\"db_mb\":%.1f}\n",
                   chunks ? "chunks" : "rows", chunks ? chunk_bytes : 0, r,
                   (unsigned long long)(r + 1) * tags * per, dt,
                   (double)tags * per / dt, file_mb(path));
            fflush(stdout);
        }
    }
    rv = 0;
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    free(blob);
    unlink(wal);
    snprintf(wal, sizeof wal, "%s-shm", path);
    unlink(wal);
    unlink(path);
    rmdir(dir);
    return rv;
}
