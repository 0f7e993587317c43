/* Unit tests for the VFS that gathers the fsm's WAL writes
 * (replication/wal_writes.c), through the fsm's own connection (opened
 * with it) and a second, plain connection of SQLite's unix VFS standing
 * in for the checkpointer thread and for any other reader.
 *
 * Covered: every commit is in the file when it returns (another
 * connection reads it at once), for commits of one frame and of hundreds
 * (beyond the unix VFS's 128 KiB per write); a transaction that spills its
 * cache into the WAL and rolls back leaves the database intact; writes are
 * gathered (far fewer file writes than SQLite's); a commit whose frames
 * cannot be written fails with SQLite's error instead of being published
 * (a file size limit in a child process). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "replication.h"

struct fx {
    char dir[64];
    char path[128];
    struct vg_repl_fsm f;
    sqlite3 *plain; /* unix VFS, as the checkpointer's connection */
};

static int setup(void **state)
{
    struct fx *x = calloc(1, sizeof *x);
    assert_non_null(x);
    snprintf(x->dir, sizeof x->dir, "/tmp/vg-test-walw-XXXXXX");
    assert_non_null(mkdtemp(x->dir));
    snprintf(x->path, sizeof x->path, "%s/fsm.db", x->dir);
    if (vg_repl_fsm_open(&x->f, x->path) != VG_OK) {
        fail_msg("open: %s", x->f.errmsg);
    }
    assert_int_equal(sqlite3_exec(x->f.db, "CREATE TABLE t(k INTEGER PRIMARY KEY, v)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_open_v2(x->path, &x->plain, SQLITE_OPEN_READWRITE, "unix"),
                     SQLITE_OK);
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    struct fx *x = *state;
    sqlite3_close(x->plain);
    vg_repl_fsm_close(&x->f);
    vg_remove_tree(x->dir);
    free(x);
    return 0;
}

static long long plain_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    long long v;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void plain_intact(sqlite3 *db)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
}

/* N rows of SIZE random bytes from key FIRST, in one transaction. */
static int insert_rows(sqlite3 *db, int first, int n, int size)
{
    char sql[160];
    snprintf(sql, sizeof sql,
             "WITH RECURSIVE c(i) AS (SELECT %d UNION ALL SELECT i + 1 FROM c"
             " WHERE i < %d) INSERT INTO t SELECT i, randomblob(%d) FROM c",
             first, first + n - 1, size);
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

/* Small and large commits: each is in the file when it returns. The large
 * ones are hundreds of frames, several times the unix VFS's largest write. */
static void test_commits_are_in_the_file(void **state)
{
    struct fx *x = *state;
    struct vg_repl_wal_stats ws;
    int rows = 0;

    for (int i = 0; i < 40; i++) {
        int n = i % 4 == 3 ? 400 : 1;
        assert_int_equal(insert_rows(x->f.db, rows + 1, n, 3000), SQLITE_OK);
        rows += n;
        assert_int_equal(plain_int(x->plain, "SELECT count(*) FROM t"), rows);
        assert_int_equal(plain_int(x->plain, "SELECT max(k) FROM t"), rows);
    }
    plain_intact(x->plain);
    vg_repl_fsm_wal_stats(&x->f, &ws);
    /* Gathered: two writes per frame from SQLite, far fewer to the file. */
    assert_true(ws.wal_writes > 2000);
    assert_true(ws.wal_file_writes > 0);
    assert_true(ws.wal_file_writes * 10 < ws.wal_writes);
    /* And the fsm's own connection reads what it wrote. */
    assert_int_equal(sqlite3_exec(x->f.db, "PRAGMA integrity_check", NULL, NULL, NULL),
                     SQLITE_OK);
}

/* A transaction larger than the page cache spills frames into the WAL
 * before its commit; rolled back, it leaves nothing, and the next commit
 * (which rewrites the WAL from where the last commit ended) is whole. */
static void test_spilled_rollback(void **state)
{
    struct fx *x = *state;

    assert_int_equal(insert_rows(x->f.db, 1, 10, 100), SQLITE_OK);
    assert_int_equal(sqlite3_exec(x->f.db, "PRAGMA cache_size = 20; BEGIN", NULL, NULL,
                                  NULL),
                     SQLITE_OK);
    assert_int_equal(insert_rows(x->f.db, 100, 300, 3000), SQLITE_OK);
    assert_int_equal(plain_int(x->plain, "SELECT count(*) FROM t"), 10);
    assert_int_equal(sqlite3_exec(x->f.db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(plain_int(x->plain, "SELECT count(*) FROM t"), 10);
    assert_int_equal(insert_rows(x->f.db, 1000, 200, 3000), SQLITE_OK);
    assert_int_equal(plain_int(x->plain, "SELECT count(*) FROM t"), 210);
    plain_intact(x->plain);
    /* The plain connection checkpoints everything, the next commit starts
     * the WAL over: still whole. */
    assert_int_equal(sqlite3_wal_checkpoint_v2(x->plain, "main",
                                               SQLITE_CHECKPOINT_PASSIVE, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(insert_rows(x->f.db, 5000, 50, 3000), SQLITE_OK);
    assert_int_equal(plain_int(x->plain, "SELECT count(*) FROM t"), 260);
    plain_intact(x->plain);
}

/* With the file size limited, a commit that would grow the WAL past it
 * fails with SQLite's error on the fsm's connection (not an abort, and not
 * a commit published without its frames). In a child: the limit and
 * SIGXFSZ are the process's. */
static void test_failed_write_fails_the_commit(void **state)
{
    struct fx *x = *state;
    pid_t pid;
    int status;

    /* Fill the WAL past its start, so the limit falls in its middle. */
    assert_int_equal(insert_rows(x->f.db, 1, 20, 3000), SQLITE_OK);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit rl;
        sqlite3 *other;
        int rc;
        long wal_size;
        FILE *wal;
        char wal_path[160];

        signal(SIGXFSZ, SIG_IGN);
        snprintf(wal_path, sizeof wal_path, "%s-wal", x->path);
        wal = fopen(wal_path, "rb");
        if (wal == NULL || fseek(wal, 0, SEEK_END) != 0) {
            _exit(10);
        }
        wal_size = ftell(wal);
        fclose(wal);
        rl.rlim_cur = rl.rlim_max = (rlim_t)wal_size + 8000;
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0) {
            _exit(11);
        }
        /* 5 rows of 3000 bytes: a few frames, held until the commit frame
         * (the write that fails is the commit's). */
        if (insert_rows(x->f.db, 1000, 5, 3000) == SQLITE_OK) {
            _exit(12);
        }
        /* 400 rows: ~1.6 MB of frames, written in chunks before the commit
         * (the write that fails is a chunk's). */
        if (insert_rows(x->f.db, 1000, 400, 3000) == SQLITE_OK) {
            _exit(15);
        }
        /* Nothing of it is visible to another connection. */
        if (sqlite3_open_v2(x->path, &other, SQLITE_OPEN_READONLY, "unix") != SQLITE_OK) {
            _exit(13);
        }
        rc = (int)plain_int(other, "SELECT count(*) FROM t");
        sqlite3_close(other);
        _exit(rc == 20 ? 0 : 14);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status)) {
        fail_msg("the child died of signal %d", WTERMSIG(status));
    }
    assert_int_equal(WEXITSTATUS(status), 0);
    /* The parent's connection, without the limit, goes on. */
    assert_int_equal(insert_rows(x->f.db, 2000, 400, 3000), SQLITE_OK);
    assert_int_equal(plain_int(x->plain, "SELECT count(*) FROM t"), 420);
    plain_intact(x->plain);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_commits_are_in_the_file),
        T(test_spilled_rollback),
        T(test_failed_write_fails_the_commit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
