/* A VFS over SQLite's "unix" one that gathers the WAL writes of a commit
 * into few large writes.
 *
 * Why. SQLite writes every WAL frame with two pwrite calls, its 24-byte
 * header and its page: a commit of 1000 acknowledgments dirties about 190
 * pages, so 380 system calls, and on the virtual machines Vigil runs on a
 * system call costs as much as the copy it makes (perf: the header writes
 * took as long as the page writes; sqlite3WalFrames was a fifth of the
 * leader's loop during an acknowledgment storm).
 *
 * How. The WAL file of a connection opened with this VFS keeps appended
 * bytes in a buffer while each write continues the previous one. The
 * buffer goes to the file with one pwrite when it is full, when a write
 * does not continue it (SQLite rewrites a frame in place), before anything
 * else touches the file (read, sync, truncate, size, file control, close),
 * and as soon as the page of a commit frame (a frame header whose "database
 * size after commit" is not 0) is in it: that write's outcome is the
 * flush's, so a commit whose frames cannot be written fails as it would
 * without this VFS (SQLITE_FULL, SQLITE_IOERR: apply then stops the node).
 * The buffer stays below 128 KiB: SQLite's unix VFS writes at most
 * 0x1ffff bytes per call (a larger write comes back as SQLITE_FULL).
 *
 * Why that is safe. Frames in the WAL mean nothing to anybody until the
 * WAL index header in shared memory says they are there: SQLite writes the
 * frames, then publishes the header between two memory barriers
 * (walIndexWriteHdr calls xShmBarrier of the database file), and releases
 * its write lock through xShmLock. By then the commit frame has flushed
 * the buffer; as a second line, the database file of this VFS writes its
 * WAL's buffer out at every xShmBarrier and xShmLock, and since neither
 * can report a failed write, the process aborts rather than publish frames
 * that are not in the file. A transaction that rolls back leaves frames
 * nobody reads, written out when its lock is released. Durability is
 * SQLite's own: with synchronous=NORMAL the WAL is not synced at commit,
 * and xSync writes the buffer out before syncing. A crash loses at most
 * frames that no header published, as a crash in the middle of SQLite's
 * own writes would. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsm_internal.h"

/* Below the unix VFS's 0x1ffff bytes per write (see above). A commit of
 * an acknowledgment storm is ~780 KB of frames: 13 writes instead of 380. */
#define BUFFER_SIZE (64u * 1024u)
#define FRAME_HEADER 24

struct wal_file;

/* A file of this VFS: the real file follows the struct in the same
 * allocation (szOsFile). */
struct vfile {
    sqlite3_file base;
    sqlite3_file *real;
    struct wal_file *wal; /* database file: its open WAL, if any */
    /* Database file: writes SQLite made to its WAL, and writes that
     * reached the file (fsm_wal_writes). */
    uint64_t writes, flushes;
};

struct wal_file {
    struct vfile v;
    struct vfile *db;          /* the database file it belongs to */
    unsigned char *buf;        /* BUFFER_SIZE bytes, allocated at first use */
    sqlite3_int64 off;         /* file offset of buf[0] */
    size_t len;                /* bytes held */
    bool commit_next;          /* the last write was a commit frame's header */
};

static sqlite3_vfs vfs;
static sqlite3_vfs *real_vfs;

static sqlite3_file *real(sqlite3_file *f)
{
    return ((struct vfile *)f)->real;
}

/* ------------------------------------------------------------ the WAL */

static int wal_flush(struct wal_file *w)
{
    int rc;
    if (w->len == 0) {
        return SQLITE_OK;
    }
    rc = w->v.real->pMethods->xWrite(w->v.real, w->buf, (int)w->len, w->off);
    if (w->db != NULL) {
        w->db->flushes++;
    }
    w->len = 0;
    return rc;
}

/* A frame header (24 bytes: page number, database size after commit,
 * salts, checksums; big endian) whose commit field is not 0. */
static bool commit_header(const unsigned char *p, int n)
{
    return n == FRAME_HEADER && (p[4] | p[5] | p[6] | p[7]) != 0;
}

static int wal_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
    struct wal_file *w = (struct wal_file *)f;
    bool commit = w->commit_next;
    int rc;

    if (w->db != NULL) {
        w->db->writes++;
    }
    w->commit_next = commit_header(p, n);
    if (w->len > 0 && off == w->off + (sqlite3_int64)w->len &&
        w->len + (size_t)n <= BUFFER_SIZE) {
        memcpy(w->buf + w->len, p, (size_t)n);
        w->len += (size_t)n;
        return commit ? wal_flush(w) : SQLITE_OK;
    }
    if ((rc = wal_flush(w)) != SQLITE_OK) {
        return rc;
    }
    if (w->buf == NULL) {
        w->buf = malloc(BUFFER_SIZE);
    }
    if (w->buf == NULL || (size_t)n > BUFFER_SIZE) {
        if (w->db != NULL) {
            w->db->flushes++;
        }
        return w->v.real->pMethods->xWrite(w->v.real, p, n, off);
    }
    memcpy(w->buf, p, (size_t)n);
    w->off = off;
    w->len = (size_t)n;
    return commit ? wal_flush(w) : SQLITE_OK;
}

static int wal_close(sqlite3_file *f)
{
    struct wal_file *w = (struct wal_file *)f;
    int rc = wal_flush(w), rc2;

    if (w->db != NULL && w->db->wal == w) {
        w->db->wal = NULL;
    }
    rc2 = w->v.real->pMethods->xClose(w->v.real);
    free(w->buf);
    return rc != SQLITE_OK ? rc : rc2;
}

static int wal_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
    int rc = wal_flush((struct wal_file *)f);
    return rc != SQLITE_OK ? rc : real(f)->pMethods->xRead(real(f), p, n, off);
}

static int wal_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    int rc = wal_flush((struct wal_file *)f);
    return rc != SQLITE_OK ? rc : real(f)->pMethods->xTruncate(real(f), size);
}

static int wal_sync(sqlite3_file *f, int flags)
{
    int rc = wal_flush((struct wal_file *)f);
    return rc != SQLITE_OK ? rc : real(f)->pMethods->xSync(real(f), flags);
}

static int wal_size(sqlite3_file *f, sqlite3_int64 *size)
{
    int rc = wal_flush((struct wal_file *)f);
    return rc != SQLITE_OK ? rc : real(f)->pMethods->xFileSize(real(f), size);
}

static int wal_control(sqlite3_file *f, int op, void *arg)
{
    int rc = wal_flush((struct wal_file *)f);
    return rc != SQLITE_OK ? rc : real(f)->pMethods->xFileControl(real(f), op, arg);
}

/* ------------------------------------------------- plain pass-through */

static int pass_close(sqlite3_file *f)
{
    struct vfile *v = (struct vfile *)f;
    if (v->wal != NULL) {
        v->wal->db = NULL;
    }
    return v->real->pMethods->xClose(v->real);
}

static int pass_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
    return real(f)->pMethods->xRead(real(f), p, n, off);
}

static int pass_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
    return real(f)->pMethods->xWrite(real(f), p, n, off);
}

static int pass_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    return real(f)->pMethods->xTruncate(real(f), size);
}

static int pass_sync(sqlite3_file *f, int flags)
{
    return real(f)->pMethods->xSync(real(f), flags);
}

static int pass_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return real(f)->pMethods->xFileSize(real(f), size);
}

static int pass_lock(sqlite3_file *f, int level)
{
    return real(f)->pMethods->xLock(real(f), level);
}

static int pass_unlock(sqlite3_file *f, int level)
{
    return real(f)->pMethods->xUnlock(real(f), level);
}

static int pass_reserved(sqlite3_file *f, int *out)
{
    return real(f)->pMethods->xCheckReservedLock(real(f), out);
}

static int pass_control(sqlite3_file *f, int op, void *arg)
{
    return real(f)->pMethods->xFileControl(real(f), op, arg);
}

static int pass_sector(sqlite3_file *f)
{
    return real(f)->pMethods->xSectorSize(real(f));
}

static int pass_caps(sqlite3_file *f)
{
    return real(f)->pMethods->xDeviceCharacteristics(real(f));
}

/* The shared-memory methods of the database file: the WAL's buffer goes
 * out before any header is published or any lock changes (see above). */
static void db_wal_flush(sqlite3_file *f)
{
    struct vfile *v = (struct vfile *)f;
    int rc = v->wal != NULL ? wal_flush(v->wal) : SQLITE_OK;
    if (rc != SQLITE_OK) {
        fprintf(stderr, "vigil-wal: cannot write the WAL before publishing it"
                        " (%s): stopping\n", sqlite3_errstr(rc));
        abort();
    }
}

static int pass_shm_map(sqlite3_file *f, int page, int size, int extend,
                        void volatile **out)
{
    return real(f)->pMethods->xShmMap(real(f), page, size, extend, out);
}

static int pass_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    db_wal_flush(f);
    return real(f)->pMethods->xShmLock(real(f), offset, n, flags);
}

static void pass_shm_barrier(sqlite3_file *f)
{
    db_wal_flush(f);
    real(f)->pMethods->xShmBarrier(real(f));
}

static int pass_shm_unmap(sqlite3_file *f, int del)
{
    return real(f)->pMethods->xShmUnmap(real(f), del);
}

static int pass_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **out)
{
    return real(f)->pMethods->xFetch(real(f), off, n, out);
}

static int pass_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return real(f)->pMethods->xUnfetch(real(f), off, p);
}

static const sqlite3_io_methods pass_methods = {
    3, pass_close, pass_read, pass_write, pass_truncate, pass_sync, pass_size,
    pass_lock, pass_unlock, pass_reserved, pass_control, pass_sector, pass_caps,
    pass_shm_map, pass_shm_lock, pass_shm_barrier, pass_shm_unmap, pass_fetch,
    pass_unfetch,
};

static const sqlite3_io_methods wal_methods = {
    3, wal_close, wal_read, wal_write, wal_truncate, wal_sync, wal_size,
    pass_lock, pass_unlock, pass_reserved, wal_control, pass_sector, pass_caps,
    pass_shm_map, pass_shm_lock, pass_shm_barrier, pass_shm_unmap, pass_fetch,
    pass_unfetch,
};

/* ------------------------------------------------------------ the VFS */

static int vfs_open(sqlite3_vfs *self, const char *name, sqlite3_file *f, int flags,
                    int *out_flags)
{
    struct vfile *v = (struct vfile *)f;
    bool wal = (flags & SQLITE_OPEN_WAL) != 0;
    size_t head = wal ? sizeof(struct wal_file) : sizeof(struct vfile);
    int rc;

    (void)self;
    memset(v, 0, head);
    v->real = (sqlite3_file *)((char *)f + head);
    rc = real_vfs->xOpen(real_vfs, name, v->real, flags, out_flags);
    if (rc != SQLITE_OK || v->real->pMethods == NULL) {
        /* SQLite calls no method of a file whose open failed. */
        f->pMethods = NULL;
        return rc;
    }
    if (wal && name != NULL) {
        struct wal_file *w = (struct wal_file *)v;
        sqlite3_file *db = sqlite3_database_file_object(name);
        f->pMethods = &wal_methods;
        if (db != NULL && db->pMethods == &pass_methods) {
            w->db = (struct vfile *)db;
            w->db->wal = w;
        }
        return SQLITE_OK;
    }
    f->pMethods = &pass_methods;
    return SQLITE_OK;
}

static int vfs_delete(sqlite3_vfs *self, const char *name, int sync_dir)
{
    (void)self;
    return real_vfs->xDelete(real_vfs, name, sync_dir);
}

static int vfs_access(sqlite3_vfs *self, const char *name, int flags, int *out)
{
    (void)self;
    return real_vfs->xAccess(real_vfs, name, flags, out);
}

static int vfs_full_path(sqlite3_vfs *self, const char *name, int n, char *out)
{
    (void)self;
    return real_vfs->xFullPathname(real_vfs, name, n, out);
}

static void *vfs_dl_open(sqlite3_vfs *self, const char *name)
{
    (void)self;
    return real_vfs->xDlOpen(real_vfs, name);
}

static void vfs_dl_error(sqlite3_vfs *self, int n, char *msg)
{
    (void)self;
    real_vfs->xDlError(real_vfs, n, msg);
}

static void (*vfs_dl_sym(sqlite3_vfs *self, void *h, const char *sym))(void)
{
    (void)self;
    return real_vfs->xDlSym(real_vfs, h, sym);
}

static void vfs_dl_close(sqlite3_vfs *self, void *h)
{
    (void)self;
    real_vfs->xDlClose(real_vfs, h);
}

static int vfs_random(sqlite3_vfs *self, int n, char *out)
{
    (void)self;
    return real_vfs->xRandomness(real_vfs, n, out);
}

static int vfs_sleep(sqlite3_vfs *self, int us)
{
    (void)self;
    return real_vfs->xSleep(real_vfs, us);
}

static int vfs_time(sqlite3_vfs *self, double *out)
{
    (void)self;
    return real_vfs->xCurrentTime(real_vfs, out);
}

static int vfs_last_error(sqlite3_vfs *self, int n, char *out)
{
    (void)self;
    return real_vfs->xGetLastError(real_vfs, n, out);
}

static int vfs_time64(sqlite3_vfs *self, sqlite3_int64 *out)
{
    (void)self;
    return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

static int registered = SQLITE_ERROR;

static void register_once(void)
{
    real_vfs = sqlite3_vfs_find("unix");
    if (real_vfs == NULL || real_vfs->iVersion < 2) {
        return;
    }
    vfs.iVersion = 2;
    vfs.szOsFile = (int)sizeof(struct wal_file) + real_vfs->szOsFile;
    vfs.mxPathname = real_vfs->mxPathname;
    vfs.zName = FSM_WAL_VFS;
    vfs.xOpen = vfs_open;
    vfs.xDelete = vfs_delete;
    vfs.xAccess = vfs_access;
    vfs.xFullPathname = vfs_full_path;
    vfs.xDlOpen = vfs_dl_open;
    vfs.xDlError = vfs_dl_error;
    vfs.xDlSym = vfs_dl_sym;
    vfs.xDlClose = vfs_dl_close;
    vfs.xRandomness = vfs_random;
    vfs.xSleep = vfs_sleep;
    vfs.xCurrentTime = vfs_time;
    vfs.xGetLastError = vfs_last_error;
    vfs.xCurrentTimeInt64 = vfs_time64;
    registered = sqlite3_vfs_register(&vfs, 0);
}

int fsm_wal_vfs_register(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, register_once);
    return registered == SQLITE_OK ? VG_OK : VG_EDB;
}

void fsm_wal_writes(struct vg_repl_fsm *f, uint64_t *writes, uint64_t *flushes)
{
    sqlite3_file *db = NULL;

    *writes = *flushes = 0;
    if (f->db != NULL &&
        sqlite3_file_control(f->db, "main", SQLITE_FCNTL_FILE_POINTER, &db) ==
            SQLITE_OK &&
        db != NULL && db->pMethods == &pass_methods) {
        *writes = ((struct vfile *)db)->writes;
        *flushes = ((struct vfile *)db)->flushes;
    }
}
