/* Reads that take more than one request: a project version in chunks, and
 * the rows of a report in pages. Shared by vigilctl and vigil-hmi.
 *
 * Each function sends its requests through a vg_fetch_call_fn, so that the
 * caller decides where they go (vigilctl prefers the leader for freshness;
 * the station simply uses vg_client_call). An error answer from the cluster
 * ends the read with VG_EIO and its message and code in ERRMSG.
 *
 * Ownership: results are the caller's (free with vg_project_files_free /
 * json_decref); requests passed to CALL are borrowed by it and released by
 * the fetch function. */
#ifndef VG_CLIENT_FETCH_H
#define VG_CLIENT_FETCH_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "client.h"
#include "../config/project.h"

/* Send REQ (borrowed) and set *ANSWER (a new reference, possibly an error
 * object) like vg_client_call(). */
typedef int (*vg_fetch_call_fn)(void *ud, json_t *req, json_t **answer,
                                char *errmsg);

/* The vg_fetch_call_fn for a plain vg_client_call on UD (a vg_client). */
int vg_fetch_call_client(void *ud, json_t *req, json_t **answer, char *errmsg);

/* Fetch project VERSION (>= 1) chunk by chunk into FS and check it against
 * the digest the node announces (and against EXPECT_DIGEST, hex, when not
 * NULL). Returns VG_OK, or VG_EIO / VG_EMALFORMED / VG_ENOMEM with a
 * sentence. */
int vg_fetch_project_version(vg_fetch_call_fn call, void *ud, long long version,
                             const char *expect_digest,
                             struct vg_project_files *fs, char *errmsg);

/* Fetch the active project: its version and digest (project_show), then
 * its files. *VERSION is 0 and FS empty when no project was ever loaded. */
int vg_fetch_active_project(vg_fetch_call_fn call, void *ud,
                            struct vg_project_files *fs, long long *version,
                            char *errmsg);

/* The hex digest of FS (2 * VG_PROJECT_DIGEST_SIZE + 1 bytes). */
void vg_fetch_digest_hex(const struct vg_project_files *fs, char *out);

enum vg_fetch_report_kind {
    VG_FETCH_ALARMS, /* alarm journal rows, oldest first */
    VG_FETCH_AUDIT,  /* audit records, oldest first */
    VG_FETCH_TAGS,   /* per tag: a history answer with BUCKETS buckets */
};

struct vg_fetch_report {
    enum vg_fetch_report_kind kind;
    long long from_ms, to_ms;
    const char *const *sections; /* alarms: filter (n 0: all) */
    size_t n_sections;
    const char *const *tags;     /* tags: the series */
    size_t n_tags;
    unsigned buckets;            /* tags: 0 means 500 */
    const char *audit_kind;      /* audit: filters, NULL for none */
    const char *audit_user;
};

/* Fetch the data of a report in the shape node/reports/reports.h expects
 * for the kind (an array; *DATA is the caller's). Pages through the journal
 * and the audit trail (at most 1000 pages of 10000 rows). */
int vg_fetch_report_data(vg_fetch_call_fn call, void *ud,
                         const struct vg_fetch_report *q, json_t **data,
                         char *errmsg);

#endif /* VG_CLIENT_FETCH_H */
