/* Small helpers shared by the project front ends and validation: growable
 * arrays, interned file names, strict scalar parsing, "did you mean" hints,
 * and the diagnostics list. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

void *vg_cfg_push(void *v_ptr, size_t *n, size_t elem_size)
{
    void **v = v_ptr;
    size_t cap = 4;
    /* Capacity is implied by N (powers of two from 4): no extra field needed
     * in every struct that holds an array. */
    while (cap < *n)
        cap *= 2;
    if (*v == NULL || *n == cap) {
        size_t new_cap = *v == NULL ? 4 : cap * 2;
        if (new_cap > SIZE_MAX / elem_size)
            return NULL;
        void *nv = realloc(*v, new_cap * elem_size);
        if (nv == NULL)
            return NULL;
        *v = nv;
    }
    char *slot = (char *)*v + *n * elem_size;
    memset(slot, 0, elem_size);
    (*n)++;
    return slot;
}

char *vg_cfg_strdup(const char *s)
{
    return s == NULL ? NULL : strdup(s);
}

char *vg_cfg_strndup(const char *s, size_t len)
{
    char *out = malloc(len + 1);
    if (out == NULL)
        return NULL;
    memcpy(out, s, len);
    out[len] = '\0';
    return out;
}

const char *vg_cfg_file(struct vg_project *p, const char *path)
{
    for (size_t i = 0; i < p->n_file_names; i++)
        if (strcmp(p->file_names[i], path) == 0)
            return p->file_names[i];
    char *copy = strdup(path);
    if (copy == NULL)
        return "?";
    char **slot = vg_cfg_push(&p->file_names, &p->n_file_names, sizeof *slot);
    if (slot == NULL) {
        free(copy);
        return "?";
    }
    *slot = copy;
    return copy;
}

struct vg_loc vg_cfg_loc(struct vg_project *p, const char *file, unsigned line,
                         unsigned col)
{
    struct vg_loc loc = {vg_cfg_file(p, file), line, col};
    return loc;
}

bool vg_cfg_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > VG_NAME_MAX || !isalpha((unsigned char)s[0]))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(isalnum(c) || c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

/* Trim blanks in place on a copy window: returns start, sets *len. */
static const char *trim(const char *s, size_t *len)
{
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)*s)) {
        s++;
        n--;
    }
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    *len = n;
    return s;
}

/* S without surrounding blanks into BUF (SIZE bytes, terminated): its
 * length, or 0 when it is empty or does not fit. */
static size_t trim_copy(const char *s, char *buf, size_t size)
{
    size_t n;
    s = trim(s, &n);
    if (n == 0 || n >= size)
        return 0;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return n;
}

bool vg_cfg_parse_double(const char *s, double *out)
{
    char buf[64];
    size_t n = trim_copy(s, buf, sizeof buf);
    if (n == 0)
        return false;
    /* strtod accepts hex, "inf" and "nan": none of them belong in a project. */
    for (size_t i = 0; i < n; i++) {
        char c = buf[i];
        if (!(isdigit((unsigned char)c) || c == '.' || c == '-' || c == '+' ||
              c == 'e' || c == 'E'))
            return false;
    }
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (end == buf || *end != '\0' || errno == ERANGE || !isfinite(v))
        return false;
    *out = v;
    return true;
}

bool vg_cfg_parse_long(const char *s, long min, long max, long *out)
{
    char buf[32];
    size_t n = trim_copy(s, buf, sizeof buf);
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(isdigit((unsigned char)buf[i]) || (i == 0 && (buf[i] == '-' ||
                                                            buf[i] == '+'))))
            return false;
    char *end;
    errno = 0;
    long v = strtol(buf, &end, 10);
    if (end == buf || *end != '\0' || errno == ERANGE || v < min || v > max)
        return false;
    *out = v;
    return true;
}

bool vg_cfg_parse_duration_ms(const char *s, uint64_t *out_ms)
{
    size_t n;
    char num[40];
    s = trim(s, &n);
    if (n == 0 || n >= sizeof num)
        return false;
    size_t digits = n;
    while (digits > 0 && isalpha((unsigned char)s[digits - 1]))
        digits--;
    const char *unit = s + digits;
    size_t unit_len = n - digits;
    double scale;
    if (unit_len == 0 || (unit_len == 1 && unit[0] == 's'))
        scale = 1000.0;
    else if (unit_len == 2 && strncmp(unit, "ms", 2) == 0)
        scale = 1.0;
    else if (unit_len == 1 && unit[0] == 'm')
        scale = 60000.0;
    else if (unit_len == 1 && unit[0] == 'h')
        scale = 3600000.0;
    else if (unit_len == 1 && unit[0] == 'd')
        scale = 86400000.0;
    else
        return false;
    memcpy(num, s, digits);
    num[digits] = '\0';
    double v;
    if (!vg_cfg_parse_double(num, &v) || v < 0 || v * scale > 1e15)
        return false;
    *out_ms = (uint64_t)llround(v * scale);
    return true;
}

bool vg_cfg_parse_color(const char *s, uint32_t *out)
{
    if (strlen(s) != 7 || s[0] != '#')
        return false;
    uint32_t v = 0;
    for (int i = 1; i < 7; i++) {
        int c = (unsigned char)s[i];
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return false;
        v = v * 16 + (uint32_t)d;
    }
    *out = v;
    return true;
}

bool vg_cfg_parse_bool(const char *s, bool *out)
{
    size_t n;
    s = trim(s, &n);
    static const char *const yes[] = {"yes", "true", "1", "y"};
    static const char *const no[] = {"no", "false", "0", "n"};
    if (n == 0) {
        *out = false;
        return true;
    }
    for (size_t i = 0; i < 4; i++) {
        if (strlen(yes[i]) == n && strncasecmp(s, yes[i], n) == 0) {
            *out = true;
            return true;
        }
        if (strlen(no[i]) == n && strncasecmp(s, no[i], n) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

bool vg_cfg_utf8_ok(const char *s, size_t len, size_t *bad_offset)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned c = u[i];
        size_t need;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            cp = c & 0x07;
        } else {
            goto bad;
        }
        for (size_t k = 1; k <= need; k++) {
            if (i + k >= len || (u[i + k] & 0xc0) != 0x80)
                goto bad;
            cp = (cp << 6) | (u[i + k] & 0x3f);
        }
        /* Overlong forms, surrogates and values past U+10FFFF. */
        if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
            goto bad;
        i += need + 1;
    }
    return true;
bad:
    if (bad_offset != NULL)
        *bad_offset = i;
    return false;
}

const char *vg_cfg_excerpt(const char *s, bool quote, char out[64])
{
    if (s == NULL)
        return "(none)";
    size_t i = 0, o = 0;
    if (quote)
        out[o++] = '\'';
    while (s[i] != '\0' && i < 40) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) {
            out[o++] = '?';
            i++;
            continue;
        }
        size_t n = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
        for (size_t k = 0; k < n && s[i] != '\0'; k++)
            out[o++] = s[i++];
    }
    if (s[i] != '\0') {
        memcpy(out + o, "\xe2\x80\xa6", 3);
        o += 3;
    }
    if (quote)
        out[o++] = '\'';
    out[o] = '\0';
    return out;
}

static size_t levenshtein(const char *a, const char *b, size_t cap)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 128 || lb > 128)
        return cap + 1;
    size_t prev[129], cur[129];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        size_t row_min = cur[0];
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t v = prev[j - 1] + cost;
            if (prev[j] + 1 < v)
                v = prev[j] + 1;
            if (cur[j - 1] + 1 < v)
                v = cur[j - 1] + 1;
            cur[j] = v;
            if (v < row_min)
                row_min = v;
        }
        if (row_min > cap)
            return cap + 1; /* cannot get better: stop early */
        memcpy(prev, cur, (lb + 1) * sizeof prev[0]);
    }
    return prev[lb];
}

/* Candidate comparisons allowed per parse (each at most 128 x 128 steps,
 * usually far fewer): a few thousand hints on a large project, tens of
 * milliseconds at worst. */
#define HINT_BUDGET 2000000u

const char *vg_cfg_suggest(struct vg_diags *d, const char *name, size_t n,
                           const char *(*get)(const void *ctx, size_t i),
                           const void *ctx)
{
    if (d->hint_work >= HINT_BUDGET)
        return NULL;
    d->hint_work += n;
    size_t len = strlen(name);
    size_t cap = len / 3 > 2 ? len / 3 : 2;
    if (cap > 4)
        cap = 4;
    const char *best = NULL;
    size_t best_d = cap + 1;
    size_t limit = n < 20000 ? n : 20000;
    for (size_t i = 0; i < limit; i++) {
        const char *c = get(ctx, i);
        if (c == NULL)
            continue;
        size_t lc = strlen(c);
        if ((lc > len ? lc - len : len - lc) > cap)
            continue;
        size_t dist = levenshtein(name, c, best_d - 1 < cap ? best_d - 1 : cap);
        if (dist < best_d && dist > 0) {
            best = c;
            best_d = dist;
        }
    }
    return best;
}

void vg_cfg_text_free(struct vg_text *t)
{
    for (size_t i = 0; i < VG_PROJECT_MAX_LANGS; i++) {
        free(t->s[i]);
        t->s[i] = NULL;
    }
}

void vg_cfg_ref_free(struct vg_ref *r)
{
    free(r->name);
    r->name = NULL;
}

/* ------------------------------------------------------------ diagnostics */

void vg_diags_init(struct vg_diags *d)
{
    memset(d, 0, sizeof *d);
}

void vg_diags_free(struct vg_diags *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->v[i].file);
        free(d->v[i].msg);
    }
    free(d->v);
    memset(d, 0, sizeof *d);
}

void vg_diags_add(struct vg_diags *d, struct vg_loc loc, const char *fmt, ...)
{
    if (d->n >= VG_DIAGS_MAX) {
        d->dropped++;
        return;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        struct vg_diag *v = realloc(d->v, cap * sizeof *v);
        if (v == NULL) {
            d->dropped++;
            return;
        }
        d->v = v;
        d->cap = cap;
    }
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    struct vg_diag *e = &d->v[d->n];
    e->file = strdup(loc.file != NULL ? loc.file : "?");
    e->msg = strdup(buf);
    e->line = loc.line;
    e->col = loc.col;
    if (e->file == NULL || e->msg == NULL) {
        free(e->file);
        free(e->msg);
        d->dropped++;
        return;
    }
    d->n++;
}

void vg_diags_sort(struct vg_diags *d)
{
    if (d->n < 2)
        return;
    /* Bottom-up merge sort: stable (errors at one position keep the order
     * they were found in, which reads naturally), O(n log n). Unsorted is
     * still correct output if the scratch array cannot be had. */
    struct vg_diag *tmp = malloc(d->n * sizeof *tmp);
    if (tmp == NULL)
        return;
    for (size_t width = 1; width < d->n; width *= 2) {
        for (size_t lo = 0; lo < d->n; lo += 2 * width) {
            size_t mid = lo + width < d->n ? lo + width : d->n;
            size_t hi = lo + 2 * width < d->n ? lo + 2 * width : d->n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                const struct vg_diag *a = &d->v[i], *b = &d->v[j];
                int c = strcmp(a->file, b->file);
                if (c == 0)
                    c = a->line != b->line ? (a->line < b->line ? -1 : 1)
                                           : (a->col != b->col
                                                  ? (a->col < b->col ? -1 : 1)
                                                  : 0);
                tmp[k++] = c <= 0 ? d->v[i++] : d->v[j++];
            }
            while (i < mid)
                tmp[k++] = d->v[i++];
            while (j < hi)
                tmp[k++] = d->v[j++];
        }
        memcpy(d->v, tmp, d->n * sizeof *tmp);
    }
    free(tmp);
}

void vg_diag_format(const struct vg_diag *e, char *out, size_t size)
{
    if (e->line == 0)
        snprintf(out, size, "%s: error: %s", e->file, e->msg);
    else
        snprintf(out, size, "%s:%u:%u: error: %s", e->file, e->line, e->col,
                 e->msg);
}
