/* The files of a project: read from a folder, packed into the bundle that
 * travels through the client protocol and Raft, unpacked (with every check a
 * hostile bundle needs), and digested.
 *
 * Bundle layout: "VGP1", the uncompressed length (8 bytes, big-endian), then
 * zlib data of the JSON text {"files": {PATH: CONTENT, ...}}. The explicit
 * length lets unpack refuse a decompression bomb before inflating it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <zlib.h>

#include "internal.h"

#define MAGIC "VGP1"
#define HEADER_SIZE 12
#define MAX_PATH_LEN 255


int vg_project_files_add(struct vg_project_files *fs, const char *path,
                         const char *data, size_t len)
{
    char *p = strdup(path);
    char *d = malloc(len + 1);
    if (p == NULL || d == NULL) {
        free(p);
        free(d);
        return VG_ENOMEM;
    }
    memcpy(d, data, len);
    d[len] = '\0';
    /* Keep the array sorted by path: digests and packing then need no sort,
     * and equal projects always produce equal bundles. */
    size_t lo = 0, hi = fs->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(fs->v[mid].path, path);
        if (c == 0) {
            free(fs->v[mid].path);
            free(fs->v[mid].data);
            fs->v[mid].path = p;
            fs->v[mid].data = d;
            fs->v[mid].len = len;
            return VG_OK;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t n = fs->n;
    if (vg_cfg_push(&fs->v, &n, sizeof *fs->v) == NULL) {
        free(p);
        free(d);
        return VG_ENOMEM;
    }
    memmove(&fs->v[lo + 1], &fs->v[lo], (fs->n - lo) * sizeof *fs->v);
    fs->v[lo].path = p;
    fs->v[lo].data = d;
    fs->v[lo].len = len;
    fs->n = n;
    return VG_OK;
}

void vg_project_files_free(struct vg_project_files *fs)
{
    for (size_t i = 0; i < fs->n; i++) {
        free(fs->v[i].path);
        free(fs->v[i].data);
    }
    free(fs->v);
    fs->v = NULL;
    fs->n = 0;
}

static int read_one(struct vg_project_files *fs, const char *dir,
                    const char *rel, size_t *total, bool required,
                    char *errmsg)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT && !required)
            return VG_OK;
        vg_errf(errmsg, "cannot open %s: %s", path, strerror(errno));
        return VG_EIO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        vg_errf(errmsg, "%s is not a regular file", path);
        close(fd);
        return VG_EIO;
    }
    if ((uint64_t)st.st_size > VG_PROJECT_MAX_FILE_SIZE ||
        *total + (size_t)st.st_size > VG_PROJECT_MAX_TOTAL_SIZE) {
        vg_errf(errmsg, "%s is too large (%lld bytes; a file may have %u, a "
                "project %u)", path, (long long)st.st_size,
                VG_PROJECT_MAX_FILE_SIZE, VG_PROJECT_MAX_TOTAL_SIZE);
        close(fd);
        return VG_ETOOBIG;
    }
    size_t size = (size_t)st.st_size;
    char *buf = malloc(size + 1);
    if (buf == NULL) {
        close(fd);
        return VG_ENOMEM;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            vg_errf(errmsg, "cannot read %s: %s", path,
                    r < 0 ? strerror(errno) : "file shrank while reading");
            free(buf);
            close(fd);
            return VG_EIO;
        }
        got += (size_t)r;
    }
    close(fd);
    *total += size;
    int rv = vg_project_files_add(fs, rel, buf, size);
    free(buf);
    return rv;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

int vg_project_files_read_dir(struct vg_project_files *fs, const char *dir,
                              char *errmsg)
{
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        vg_errf(errmsg, "%s is not a folder%s%s", dir, errno ? ": " : "",
                errno ? strerror(errno) : "");
        return VG_EIO;
    }
    size_t total = 0;
    /* project.yaml is read even when missing from the listing so that a
     * folder without one gets the parser's clear "missing project.yaml". */
    static const char *const top[] = {"project.yaml", "tags.csv", "alarms.csv"};
    int rv;
    for (size_t i = 0; i < 3; i++)
        if ((rv = read_one(fs, dir, top[i], &total, false, errmsg)) != VG_OK)
            goto err;
    char sdir[4096];
    snprintf(sdir, sizeof sdir, "%s/screens", dir);
    DIR *d = opendir(sdir);
    if (d == NULL) {
        if (errno == ENOENT)
            return VG_OK;
        vg_errf(errmsg, "cannot open %s: %s", sdir, strerror(errno));
        rv = VG_EIO;
        goto err;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !ends_with(e->d_name, ".yaml"))
            continue;
        if (fs->n >= VG_PROJECT_MAX_FILES) {
            vg_errf(errmsg, "%s has more than %d screens", sdir,
                    VG_PROJECT_MAX_FILES - 3);
            closedir(d);
            rv = VG_ETOOBIG;
            goto err;
        }
        char rel[512];
        snprintf(rel, sizeof rel, "screens/%s", e->d_name);
        if ((rv = read_one(fs, dir, rel, &total, true, errmsg)) != VG_OK) {
            closedir(d);
            goto err;
        }
    }
    closedir(d);
    return VG_OK;
err:
    vg_project_files_free(fs);
    return rv;
}

static void put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

static uint64_t get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

int vg_project_files_pack(const struct vg_project_files *fs,
                          unsigned char **out, size_t *out_len, char *errmsg)
{
    json_t *files = json_object();
    json_t *root = json_pack("{s:o}", "files", files);
    if (root == NULL)
        return VG_ENOMEM;
    for (size_t i = 0; i < fs->n; i++) {
        json_t *s = json_stringn(fs->v[i].data, fs->v[i].len);
        if (s == NULL) {
            vg_errf(errmsg, "%s is not valid UTF-8 text", fs->v[i].path);
            json_decref(root);
            return VG_EINVAL;
        }
        json_object_set_new(files, fs->v[i].path, s);
    }
    char *text = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(root);
    if (text == NULL)
        return VG_ENOMEM;
    size_t text_len = strlen(text);
    uLongf zlen = compressBound(text_len);
    unsigned char *buf = malloc(HEADER_SIZE + zlen);
    if (buf == NULL) {
        free(text);
        return VG_ENOMEM;
    }
    memcpy(buf, MAGIC, 4);
    put_be64(buf + 4, text_len);
    int zrv = compress2(buf + HEADER_SIZE, &zlen, (const Bytef *)text,
                        text_len, 6);
    free(text);
    if (zrv != Z_OK) {
        free(buf);
        vg_errf(errmsg, "compressing the project failed (zlib %d)", zrv);
        return VG_ENOMEM;
    }
    *out = buf;
    *out_len = HEADER_SIZE + zlen;
    return VG_OK;
}

/* A bundle path is one of the names read_dir produces: no absolute paths, no
 * "..", no hidden files, at most one folder level. Whoever writes a bundle to
 * disk later can then never escape the target folder. */
static bool path_safe(const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || n > MAX_PATH_LEN)
        return false;
    int slashes = 0;
    bool at_start = true;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '/') {
            if (at_start || ++slashes > 1)
                return false;
            at_start = true;
            continue;
        }
        if (at_start && c == '.')
            return false;
        at_start = false;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
            return false;
    }
    return !at_start;
}

int vg_project_files_unpack(const unsigned char *buf, size_t len,
                            struct vg_project_files *fs, char *errmsg)
{
    if (len < HEADER_SIZE || memcmp(buf, MAGIC, 4) != 0) {
        vg_errf(errmsg, "not a Vigil project bundle (bad header)");
        return VG_EMALFORMED;
    }
    uint64_t text_len = get_be64(buf + 4);
    /* JSON escaping can at most multiply the size by 6 ("\u0001"). */
    if (text_len > (uint64_t)VG_PROJECT_MAX_TOTAL_SIZE * 6 + 1024 * 1024) {
        vg_errf(errmsg, "project bundle too large (%llu bytes uncompressed)",
                (unsigned long long)text_len);
        return VG_ETOOBIG;
    }
    char *text = malloc((size_t)text_len + 1);
    if (text == NULL)
        return VG_ENOMEM;
    uLongf got = (uLongf)text_len;
    int zrv = uncompress((Bytef *)text, &got, buf + HEADER_SIZE,
                         len - HEADER_SIZE);
    if (zrv != Z_OK || got != text_len) {
        free(text);
        vg_errf(errmsg, "project bundle is corrupt (zlib %d, %lu of %llu "
                "bytes)", zrv, (unsigned long)got,
                (unsigned long long)text_len);
        return VG_EMALFORMED;
    }
    json_error_t jerr;
    json_t *root = json_loadb(text, (size_t)text_len,
                              JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    free(text);
    if (root == NULL) {
        vg_errf(errmsg, "project bundle is not valid JSON: %s", jerr.text);
        return VG_EMALFORMED;
    }
    json_t *files = json_object_get(root, "files");
    int rv = VG_OK;
    if (!json_is_object(files) || json_object_size(root) != 1) {
        vg_errf(errmsg, "project bundle must be {\"files\": {...}}");
        rv = VG_EMALFORMED;
        goto out;
    }
    if (json_object_size(files) > VG_PROJECT_MAX_FILES) {
        vg_errf(errmsg, "project bundle has %zu files (at most %d)",
                json_object_size(files), VG_PROJECT_MAX_FILES);
        rv = VG_ETOOBIG;
        goto out;
    }
    const char *path;
    json_t *v;
    size_t total = 0;
    json_object_foreach(files, path, v) {
        if (!path_safe(path)) {
            vg_errf(errmsg, "project bundle has an unsafe file name");
            rv = VG_EMALFORMED;
            goto out;
        }
        if (!json_is_string(v)) {
            vg_errf(errmsg, "project bundle: %s is not text", path);
            rv = VG_EMALFORMED;
            goto out;
        }
        size_t n = json_string_length(v);
        total += n;
        if (n > VG_PROJECT_MAX_FILE_SIZE || total > VG_PROJECT_MAX_TOTAL_SIZE) {
            vg_errf(errmsg, "project bundle: %s exceeds the size limits", path);
            rv = VG_ETOOBIG;
            goto out;
        }
        if ((rv = vg_project_files_add(fs, path, json_string_value(v), n)) !=
            VG_OK)
            goto out;
    }
out:
    json_decref(root);
    if (rv != VG_OK)
        vg_project_files_free(fs);
    return rv;
}

void vg_project_files_digest(const struct vg_project_files *fs,
                             unsigned char out[VG_PROJECT_DIGEST_SIZE])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, VG_PROJECT_DIGEST_SIZE);
    /* Length-prefix every part so that no two different file sets hash the
     * same byte stream. */
    for (size_t i = 0; i < fs->n; i++) {
        unsigned char len[8];
        size_t plen = strlen(fs->v[i].path);
        put_be64(len, plen);
        crypto_generichash_update(&st, len, 8);
        crypto_generichash_update(&st, (const unsigned char *)fs->v[i].path,
                                  plen);
        put_be64(len, fs->v[i].len);
        crypto_generichash_update(&st, len, 8);
        crypto_generichash_update(&st, (const unsigned char *)fs->v[i].data,
                                  fs->v[i].len);
    }
    crypto_generichash_final(&st, out, VG_PROJECT_DIGEST_SIZE);
}
