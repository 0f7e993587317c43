/* Error strings, clocks and address parsing shared by every Vigil module. */
#define _POSIX_C_SOURCE 200809L
#include "common.h"

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const messages[VG_E_COUNT] = {
    [VG_OK] = "success",
    [VG_ENOMEM] = "out of memory",
    [VG_EINVAL] = "invalid argument",
    [VG_EMALFORMED] = "malformed input",
    [VG_ETOOBIG] = "input too large",
    [VG_EIO] = "I/O error",
    [VG_ENOTLEADER] = "not the leader",
    [VG_ENOTFOUND] = "not found",
    [VG_EBUSY] = "busy",
    [VG_ETIMEDOUT] = "timed out",
    [VG_ECLOSED] = "closed",
    [VG_EUNSUPPORTED] = "unsupported",
    [VG_EDB] = "database error",
    [VG_ERAFT] = "raft error",
    [VG_EAGAIN] = "try again",
    [VG_EDENIED] = "permission denied",
};

const char *vg_strerror(int code)
{
    if (code < 0 || code >= VG_E_COUNT || messages[code] == NULL) {
        return "unknown error";
    }
    return messages[code];
}

static uint64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t vg_now_mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

uint64_t vg_now_wall_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

void vg_errf(char *errmsg, const char *fmt, ...)
{
    va_list ap;
    if (errmsg == NULL) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(errmsg, VG_ERRMSG_SIZE, fmt, ap);
    va_end(ap);
}

int vg_addr_parse(const char *text, char *host, size_t host_size, int *port,
                  char *errmsg)
{
    const char *colon;
    const char *host_start = text;
    size_t host_len;
    char *end;
    long value;

    if (text == NULL || *text == '\0') {
        vg_errf(errmsg, "empty address, expected HOST:PORT");
        return VG_EINVAL;
    }
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':') {
            vg_errf(errmsg, "address '%s': expected [IPV6]:PORT", text);
            return VG_EINVAL;
        }
        host_start = text + 1;
        host_len = (size_t)(close - host_start);
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL) {
            vg_errf(errmsg, "address '%s': missing ':PORT'", text);
            return VG_EINVAL;
        }
        host_len = (size_t)(colon - text);
    }
    if (host_len == 0 || host_len >= host_size) {
        vg_errf(errmsg, "address '%s': host part is empty or too long", text);
        return VG_EINVAL;
    }
    errno = 0;
    value = strtol(colon + 1, &end, 10);
    if (errno != 0 || end == colon + 1 || *end != '\0' || value < 1 ||
        value > 65535) {
        vg_errf(errmsg, "address '%s': port must be a number 1..65535", text);
        return VG_EINVAL;
    }
    memcpy(host, host_start, host_len);
    host[host_len] = '\0';
    *port = (int)value;
    return VG_OK;
}

static int remove_one(const char *path, const struct stat *sb, int flag,
                      struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int vg_remove_tree(const char *path)
{
    return nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}
