/* Vigil common definitions: error codes shared by every module, and small
 * helpers that every program needs (monotonic time, "host:port" parsing,
 * removing a directory tree).
 *
 * Library code returns one of the VG_E… codes below (0 means success) and,
 * where the caller needs details, writes a sentence into an errmsg buffer of
 * VG_ERRMSG_SIZE bytes. Only main() prints or exits. */
#ifndef VG_COMMON_H
#define VG_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define VG_ERRMSG_SIZE 256

enum {
    VG_OK = 0,
    VG_ENOMEM,       /* out of memory */
    VG_EINVAL,       /* invalid argument or input */
    VG_EMALFORMED,   /* malformed data from outside (frame, command, file) */
    VG_ETOOBIG,      /* input larger than the limit allows */
    VG_EIO,          /* file system or socket error */
    VG_ENOTLEADER,   /* this node is not the ready leader */
    VG_ENOTFOUND,    /* no such object */
    VG_EBUSY,        /* an operation of this kind is already in progress */
    VG_ETIMEDOUT,    /* no answer in time */
    VG_ECLOSED,      /* connection or object was closed */
    VG_EUNSUPPORTED, /* version or type not supported */
    VG_EDB,          /* SQLite error */
    VG_ERAFT,        /* libraft returned an error */
    VG_EAGAIN,       /* need more data; call again */
    VG_EDENIED,      /* not authorized */
    VG_E_COUNT
};

/* A static English description of CODE; never NULL. */
const char *vg_strerror(int code);

/* Milliseconds from CLOCK_MONOTONIC / CLOCK_REALTIME. */
uint64_t vg_now_mono_ms(void);
uint64_t vg_now_wall_ms(void);

/* Split "host:port" (IPv4 name or address, or "[v6]:port") into HOST (at most
 * HOST_SIZE bytes with the terminator) and PORT (1..65535). Returns VG_EINVAL
 * with a sentence in ERRMSG when the text is not of that form. */
int vg_addr_parse(const char *text, char *host, size_t host_size, int *port,
                  char *errmsg);

/* Remove PATH and everything below it, without following symbolic links
 * (the temporary directories of tests and benchmarks). 0, or -1 with errno
 * set by the first removal that failed. */
int vg_remove_tree(const char *path);

/* snprintf into a VG_ERRMSG_SIZE buffer; ERRMSG may be NULL. */
void vg_errf(char *errmsg, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif /* VG_COMMON_H */
