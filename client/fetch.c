/* Multi-request reads: project versions in chunks, report rows in pages
 * (fetch.h). */
#include "fetch.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "../proto/proto.h"

int vg_fetch_call_client(void *ud, json_t *req, json_t **answer, char *errmsg)
{
    return vg_client_call(ud, req, answer, errmsg);
}

void vg_fetch_digest_hex(const struct vg_project_files *fs, char *out)
{
    unsigned char raw[VG_PROJECT_DIGEST_SIZE];
    vg_project_files_digest(fs, raw);
    for (size_t i = 0; i < sizeof raw; i++) {
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    }
}

/* One request; an error answer becomes VG_EIO with its message. REQ is
 * released. */
static int ask(vg_fetch_call_fn call, void *ud, json_t *req, json_t **answer,
               char *errmsg)
{
    int rv;

    *answer = NULL;
    if (req == NULL) {
        vg_errf(errmsg, "out of memory");
        return VG_ENOMEM;
    }
    rv = call(ud, req, answer, errmsg);
    json_decref(req);
    if (rv != VG_OK) {
        *answer = NULL;
        return rv;
    }
    if (strcmp(vg_proto_get_str(*answer, "type", ""), "error") == 0) {
        vg_errf(errmsg, "%s (%s)", vg_proto_get_str(*answer, "message", "error"),
                vg_proto_get_str(*answer, "code", "?"));
        json_decref(*answer);
        *answer = NULL;
        return VG_EIO;
    }
    return VG_OK;
}

int vg_fetch_project_version(vg_fetch_call_fn call, void *ud, long long version,
                             const char *expect_digest,
                             struct vg_project_files *fs, char *errmsg)
{
    unsigned char *bundle = NULL;
    long long total = -1, offset = 0;
    char digest[2 * VG_PROJECT_DIGEST_SIZE + 1] = "";
    char hex[2 * VG_PROJECT_DIGEST_SIZE + 1];
    int rv;

    memset(fs, 0, sizeof *fs);
    while (total < 0 || offset < total) {
        json_t *answer;
        const char *data;
        size_t len = 0;

        rv = ask(call, ud,
                 json_pack("{s:s, s:I, s:I}", "type", "project_get", "version",
                           (json_int_t)version, "offset", (json_int_t)offset),
                 &answer, errmsg);
        if (rv != VG_OK) {
            free(bundle);
            return rv;
        }
        data = vg_proto_get_str(answer, "data", NULL);
        if (total < 0) {
            total = vg_proto_get_int(answer, "total", -1);
            snprintf(digest, sizeof digest, "%s",
                     vg_proto_get_str(answer, "digest", ""));
            if (expect_digest != NULL && strcmp(digest, expect_digest) != 0) {
                vg_errf(errmsg, "version %lld: the node sends digest %s, not %s "
                                "as announced", version, digest, expect_digest);
                json_decref(answer);
                return VG_EMALFORMED;
            }
            bundle = total > 0 ? malloc((size_t)total) : NULL;
            if (bundle == NULL) {
                vg_errf(errmsg, "version %lld: bad size %lld", version, total);
                json_decref(answer);
                return VG_EMALFORMED;
            }
        }
        /* Chunks may come from different nodes if the connection changes;
         * they hold the same version, which the digest checks below. */
        if (vg_proto_get_int(answer, "total", -2) != total ||
            strcmp(vg_proto_get_str(answer, "digest", ""), digest) != 0 ||
            vg_proto_get_int(answer, "offset", -1) != offset || data == NULL ||
            sodium_base642bin(bundle + offset, (size_t)(total - offset), data,
                              strlen(data), NULL, &len, NULL,
                              sodium_base64_VARIANT_ORIGINAL) != 0 ||
            len == 0) {
            vg_errf(errmsg, "version %lld: inconsistent chunk at offset %lld",
                    version, offset);
            json_decref(answer);
            free(bundle);
            return VG_EMALFORMED;
        }
        offset += (long long)len;
        json_decref(answer);
    }
    rv = vg_project_files_unpack(bundle, (size_t)total, fs, errmsg);
    free(bundle);
    if (rv != VG_OK) {
        return rv;
    }
    vg_fetch_digest_hex(fs, hex);
    if (strcmp(hex, digest) != 0) {
        vg_errf(errmsg, "version %lld: the files fetched hash to %s, not to the "
                        "stored digest %s", version, hex, digest);
        vg_project_files_free(fs);
        return VG_EMALFORMED;
    }
    return VG_OK;
}

int vg_fetch_active_project(vg_fetch_call_fn call, void *ud,
                            struct vg_project_files *fs, long long *version,
                            char *errmsg)
{
    char digest[2 * VG_PROJECT_DIGEST_SIZE + 1];
    json_t *answer;
    int rv;

    memset(fs, 0, sizeof *fs);
    *version = 0;
    if ((rv = ask(call, ud, vg_proto_request("project_show", -1), &answer,
                  errmsg)) != VG_OK) {
        return rv;
    }
    *version = vg_proto_get_int(answer, "version", 0);
    snprintf(digest, sizeof digest, "%s", vg_proto_get_str(answer, "digest", ""));
    json_decref(answer);
    if (*version <= 0) {
        *version = 0;
        return VG_OK;
    }
    return vg_fetch_project_version(call, ud, *version, digest[0] ? digest : NULL,
                                    fs, errmsg);
}

static json_t *str_array(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(a, json_string(v[i]));
    }
    return a;
}

/* Page through a newest-first list LIST of REQ (borrowed) with before_id and
 * return its rows oldest first. */
static int collect_oldest_first(vg_fetch_call_fn call, void *ud, json_t *req,
                                const char *list, json_t **out, char *errmsg)
{
    long long before = 0;
    json_t *newest_first = json_array(), *all;

    for (int pages = 0; pages < 1000; pages++) {
        json_t *r = json_deep_copy(req), *ans, *rows, *row;
        size_t i;
        int rv;

        json_object_set_new(r, "limit", json_integer(10000));
        if (before > 0) {
            json_object_set_new(r, "before_id", json_integer(before));
        }
        if ((rv = ask(call, ud, r, &ans, errmsg)) != VG_OK) {
            json_decref(newest_first);
            return rv;
        }
        rows = json_object_get(ans, list);
        json_array_foreach(rows, i, row) {
            json_array_append(newest_first, row);
            before = vg_proto_get_int(row, "id", 0);
        }
        if (!json_is_true(json_object_get(ans, "more")) || json_array_size(rows) == 0) {
            json_decref(ans);
            break;
        }
        json_decref(ans);
    }
    /* Reversed once at the end: inserting each row at the front would
     * move the whole array every time. */
    all = json_array();
    for (size_t i = json_array_size(newest_first); i > 0; i--) {
        json_array_append(all, json_array_get(newest_first, i - 1));
    }
    json_decref(newest_first);
    *out = all;
    return VG_OK;
}

int vg_fetch_report_data(vg_fetch_call_fn call, void *ud,
                         const struct vg_fetch_report *q, json_t **data,
                         char *errmsg)
{
    json_t *req;
    int rv = VG_OK;

    *data = NULL;
    if (q->kind == VG_FETCH_ALARMS || q->kind == VG_FETCH_AUDIT) {
        bool alarms = q->kind == VG_FETCH_ALARMS;
        req = vg_proto_request(alarms ? "alarm_journal" : "audit", -1);
        json_object_set_new(req, "from_ms", json_integer(q->from_ms));
        json_object_set_new(req, "to_ms", json_integer(q->to_ms));
        if (alarms && q->n_sections > 0) {
            json_object_set_new(req, "sections", str_array(q->sections, q->n_sections));
        }
        if (!alarms && q->audit_kind != NULL) {
            json_object_set_new(req, "kind", json_string(q->audit_kind));
        }
        if (!alarms && q->audit_user != NULL) {
            json_object_set_new(req, "user", json_string(q->audit_user));
        }
        rv = collect_oldest_first(call, ud, req, alarms ? "entries" : "records",
                                  data, errmsg);
        json_decref(req);
        return rv;
    }
    if (q->n_tags == 0) {
        vg_errf(errmsg, "a tag report needs at least one tag");
        return VG_EINVAL;
    }
    *data = json_array();
    for (size_t t = 0; t < q->n_tags && rv == VG_OK; t++) {
        json_t *ans;
        req = vg_proto_request("history_query", -1);
        json_object_set_new(req, "tag", json_string(q->tags[t]));
        json_object_set_new(req, "from_ms", json_integer(q->from_ms));
        json_object_set_new(req, "to_ms", json_integer(q->to_ms));
        json_object_set_new(req, "buckets", json_integer(q->buckets ? q->buckets : 500));
        if ((rv = ask(call, ud, req, &ans, errmsg)) == VG_OK) {
            json_object_del(ans, "type");
            json_object_del(ans, "id");
            json_object_del(ans, "v");
            json_array_append_new(*data, ans);
        }
    }
    if (rv != VG_OK) {
        json_decref(*data);
        *data = NULL;
    }
    return rv;
}
