/* The YAML front end: project.yaml and screens/NAME.yaml (libfyaml).
 *
 * libfyaml builds a document tree; this file walks it with small typed
 * getters that know the position of every node, so each problem is reported
 * at the key or value that has it. Unknown keys are errors (a misspelt key
 * would otherwise silently do nothing), with a "did you mean" hint.
 *
 * Syntax errors come from libfyaml's diagnostic output, whose position is
 * parsed out of the message; a file with a syntax error contributes nothing
 * else (the tree is not built), and parsing goes on with the next file.
 * Aliases and anchors are refused: a project has no use for them, and they
 * are the classic way to make a small file expand into a huge tree. */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libfyaml.h>

#include "internal.h"

#define MAX_SECTION_DEPTH 16
#define MAX_LIST 100000

struct ctx {
    struct vg_project *p;
    struct vg_diags *d;
    const char *file;          /* interned */
    struct vg_loc syntax_loc;  /* first syntax error seen by libfyaml */
    char syntax_msg[256];
    bool syntax_error;
};

/* ------------------------------------------------------------- positions */

static struct vg_loc loc_of(struct ctx *c, struct fy_node *n)
{
    struct vg_loc loc = {c->file, 1, 1};
    /* Only scalars carry a token in libfyaml's public API; a collection is
     * located at its first element, which is where a reader looks anyway. */
    for (int depth = 0; n != NULL && depth < 64; depth++) {
        if (fy_node_get_type(n) == FYNT_SCALAR) {
            struct fy_token *t = fy_node_get_scalar_token(n);
            const struct fy_mark *m = t ? fy_token_start_mark(t) : NULL;
            if (m != NULL) {
                loc.line = (uint32_t)m->line + 1;
                loc.col = (uint32_t)m->column + 1;
            }
            return loc;
        }
        if (fy_node_get_type(n) == FYNT_MAPPING) {
            void *it = NULL;
            struct fy_node_pair *pair = fy_node_mapping_iterate(n, &it);
            n = pair ? fy_node_pair_key(pair) : NULL;
        } else {
            n = fy_node_sequence_get_by_index(n, 0);
        }
    }
    return loc;
}

static void err(struct ctx *c, struct fy_node *n, struct vg_loc fallback,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void err(struct ctx *c, struct fy_node *n, struct vg_loc fallback,
                const char *fmt, ...)
{
    char buf[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    vg_diags_add(c->d, n ? loc_of(c, n) : fallback, "%s", buf);
}

/* ------------------------------------------------------ document loading */

/* libfyaml prints "SOURCE:LINE:COL: error: MESSAGE" through this callback;
 * keep the first such message of a file. */
static void diag_output_cb(struct fy_diag *diag, void *user, const char *buf,
                           size_t len)
{
    (void)diag;
    struct ctx *c = user;
    if (c->syntax_error)
        return;
    char line[512];
    if (len >= sizeof line)
        len = sizeof line - 1;
    memcpy(line, buf, len);
    line[len] = '\0';
    char *e = strstr(line, ": error: ");
    if (e == NULL)
        return;
    /* Walk back over ":COL" and ":LINE". */
    char *p = e;
    unsigned vals[2] = {0, 0};
    for (int k = 1; k >= 0; k--) {
        char *q = p;
        while (q > line && isdigit((unsigned char)q[-1]))
            q--;
        if (q == p || q == line || q[-1] != ':')
            return;
        vals[k] = (unsigned)strtoul(q, NULL, 10);
        p = q - 1;
    }
    char *msg = e + strlen(": error: ");
    size_t ml = strlen(msg);
    while (ml > 0 && (msg[ml - 1] == '\n' || msg[ml - 1] == '\r'))
        msg[--ml] = '\0';
    c->syntax_error = true;
    c->syntax_loc.file = c->file;
    c->syntax_loc.line = vals[0] ? vals[0] : 1;
    c->syntax_loc.col = vals[1] ? vals[1] : 1;
    snprintf(c->syntax_msg, sizeof c->syntax_msg, "%s", msg);
}

/* Refuse anchors/aliases and non-string keys anywhere in the tree. */
static bool plain_tree(struct ctx *c, struct fy_node *n, int depth)
{
    if (n == NULL)
        return true;
    if (depth > 64) {
        err(c, n, c->syntax_loc, "nesting deeper than 64 levels");
        return false;
    }
    if (fy_node_get_type(n) == FYNT_SCALAR) {
        if (fy_node_get_style(n) == FYNS_ALIAS) {
            err(c, n, c->syntax_loc, "YAML aliases are not supported in projects");
            return false;
        }
        return true;
    }
    bool ok = true;
    void *it = NULL;
    if (fy_node_get_type(n) == FYNT_MAPPING) {
        struct fy_node_pair *pair;
        while ((pair = fy_node_mapping_iterate(n, &it)) != NULL) {
            struct fy_node *k = fy_node_pair_key(pair);
            if (k == NULL || fy_node_get_type(k) != FYNT_SCALAR) {
                err(c, k ? k : n, c->syntax_loc, "mapping keys must be plain text");
                ok = false;
                continue;
            }
            ok = plain_tree(c, k, depth + 1) && ok;
            ok = plain_tree(c, fy_node_pair_value(pair), depth + 1) && ok;
        }
    } else {
        struct fy_node *item;
        while ((item = fy_node_sequence_iterate(n, &it)) != NULL)
            ok = plain_tree(c, item, depth + 1) && ok;
    }
    return ok;
}

/* YAML allows only printable characters (YAML 1.2, 5.1): no C0 controls but
 * tab, line feed and carriage return, no DEL, and valid UTF-8. Checked here
 * before libfyaml sees the text: besides giving a clear message, this keeps
 * libfyaml 0.7.12 away from an endless loop on a directive line followed by
 * an invalid byte ("%\xff", found by fuzz_project). */
static bool printable(struct ctx *c, const struct vg_project_file *f)
{
    size_t bad;
    bool utf8 = vg_cfg_utf8_ok(f->data, f->len, &bad);
    size_t end = utf8 ? f->len : bad;
    for (size_t i = 0; i < end; i++) {
        unsigned char ch = (unsigned char)f->data[i];
        if ((ch < 0x20 && ch != '\t' && ch != '\n' && ch != '\r') || ch == 0x7f) {
            bad = i;
            utf8 = false;
            break;
        }
    }
    if (utf8)
        return true;
    uint32_t line = 1, col = 1;
    for (size_t i = 0; i < bad; i++) {
        if (f->data[i] == '\n') {
            line++;
            col = 1;
        } else if (((unsigned char)f->data[i] & 0xc0) != 0x80) {
            col++;
        }
    }
    unsigned char ch = (unsigned char)f->data[bad];
    vg_diags_add(c->d, (struct vg_loc){c->file, line, col},
                 ch < 0x80 ? "control character 0x%02x is not allowed in YAML"
                           : "not valid UTF-8 (byte 0x%02x)", ch);
    return false;
}

static struct fy_document *load(struct ctx *c, const struct vg_project_file *f,
                                struct fy_diag **diag_out)
{
    if (!printable(c, f))
        return NULL;
    struct fy_diag_cfg dc;
    fy_diag_cfg_default(&dc);
    dc.fp = NULL;
    dc.output_fn = diag_output_cb;
    dc.user = c;
    dc.colorize = false;
    dc.show_source = false;
    dc.show_position = true;
    struct fy_diag *diag = fy_diag_create(&dc);
    if (diag == NULL)
        return NULL;
    struct fy_parse_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.flags = FYPCF_DEFAULT_VERSION_1_2;
    cfg.diag = diag;
    struct fy_document *doc =
        fy_document_build_from_string(&cfg, f->data, f->len);
    if (doc == NULL || c->syntax_error) {
        if (!c->syntax_error) {
            c->syntax_loc = (struct vg_loc){c->file, 1, 1};
            snprintf(c->syntax_msg, sizeof c->syntax_msg, "not a YAML document");
        }
        vg_diags_add(c->d, c->syntax_loc, "YAML syntax: %s", c->syntax_msg);
        if (doc != NULL)
            fy_document_destroy(doc);
        fy_diag_destroy(diag);
        return NULL;
    }
    *diag_out = diag;
    return doc;
}

/* ----------------------------------------------------------- typed getters */

static const char *key_name_cb(const void *ctx, size_t i)
{
    return ((const char *const *)ctx)[i];
}

/* Report every key of MAP that is not in ALLOWED (NULL-terminated). */
static void check_keys(struct ctx *c, struct fy_node *map, const char *what,
                       const char *const *allowed)
{
    void *it = NULL;
    struct fy_node_pair *pair;
    size_t n_allowed = 0;
    while (allowed[n_allowed] != NULL)
        n_allowed++;
    while ((pair = fy_node_mapping_iterate(map, &it)) != NULL) {
        struct fy_node *k = fy_node_pair_key(pair);
        const char *name = k ? fy_node_get_scalar0(k) : NULL;
        if (name == NULL)
            continue;
        bool ok = false;
        for (size_t i = 0; i < n_allowed && !ok; i++)
            ok = strcmp(name, allowed[i]) == 0;
        if (ok)
            continue;
        const char *hint = vg_cfg_suggest(c->d, name, n_allowed, key_name_cb, allowed);
        if (hint != NULL)
            err(c, k, c->syntax_loc, "unknown key '%s' in %s (did you mean '%s'?)",
                name, what, hint);
        else
            err(c, k, c->syntax_loc, "unknown key '%s' in %s", name, what);
    }
}

static struct fy_node *get(struct fy_node *map, const char *key)
{
    if (map == NULL || fy_node_get_type(map) != FYNT_MAPPING)
        return NULL;
    return fy_node_mapping_lookup_by_string(map, key, -1);
}

/* MAP must have KEY (reported at MAP otherwise). */
static struct fy_node *need(struct ctx *c, struct fy_node *map, const char *key,
                            const char *what)
{
    struct fy_node *n = get(map, key);
    if (n == NULL)
        err(c, map, c->syntax_loc, "%s has no '%s'", what, key);
    return n;
}

static bool is_map(struct fy_node *n)
{
    return n != NULL && fy_node_get_type(n) == FYNT_MAPPING;
}

static bool is_seq(struct fy_node *n)
{
    return n != NULL && fy_node_get_type(n) == FYNT_SEQUENCE;
}

/* The text of scalar N, or an error naming KEY. NULL for an empty value
 * ("key:" with nothing after it) as well. */
static const char *scalar(struct ctx *c, struct fy_node *n, const char *key)
{
    if (n == NULL)
        return NULL;
    if (fy_node_get_type(n) != FYNT_SCALAR) {
        err(c, n, c->syntax_loc, "'%s' must be a single value, not a %s", key,
            fy_node_get_type(n) == FYNT_MAPPING ? "mapping" : "list");
        return NULL;
    }
    const char *s = fy_node_get_scalar0(n);
    if (s == NULL || (s[0] == '\0' && fy_node_get_style(n) == FYNS_PLAIN)) {
        err(c, n, c->syntax_loc, "'%s' is empty", key);
        return NULL;
    }
    return s;
}

static bool get_str(struct ctx *c, struct fy_node *map, const char *key,
                    char **out)
{
    const char *s = scalar(c, get(map, key), key);
    if (s == NULL)
        return false;
    size_t bad;
    if (!vg_cfg_utf8_ok(s, strlen(s), &bad)) {
        err(c, get(map, key), c->syntax_loc, "'%s' is not valid UTF-8", key);
        return false;
    }
    free(*out);
    *out = vg_cfg_strdup(s);
    if (*out == NULL) {
        /* A false return must come with a diagnostic: callers reject a
         * project only when it has some. */
        err(c, get(map, key), c->syntax_loc, "out of memory reading '%s'", key);
        return false;
    }
    return true;
}

static bool get_name(struct ctx *c, struct fy_node *map, const char *key,
                     char **out)
{
    struct fy_node *n = get(map, key);
    const char *s = scalar(c, n, key);
    if (s == NULL)
        return false;
    if (!vg_cfg_name_ok(s)) {
        err(c, n, c->syntax_loc, "invalid name '%.80s' (1-64 letters, digits, "
            "'_', '-' or '.', starting with a letter)", s);
        return false;
    }
    free(*out);
    *out = vg_cfg_strdup(s);
    return *out != NULL;
}

static bool get_long(struct ctx *c, struct fy_node *map, const char *key,
                     long min, long max, long *out)
{
    struct fy_node *n = get(map, key);
    const char *s = scalar(c, n, key);
    if (s == NULL)
        return false;
    if (!vg_cfg_parse_long(s, min, max, out)) {
        err(c, n, c->syntax_loc, "'%s' must be a whole number from %ld to %ld, "
            "not '%.40s'", key, min, max, s);
        return false;
    }
    return true;
}

static bool get_double(struct ctx *c, struct fy_node *map, const char *key,
                       double min, double max, double *out)
{
    struct fy_node *n = get(map, key);
    const char *s = scalar(c, n, key);
    if (s == NULL)
        return false;
    double v;
    if (!vg_cfg_parse_double(s, &v)) {
        err(c, n, c->syntax_loc, "'%s' must be a number, not '%.40s'", key, s);
        return false;
    }
    if (v < min || v > max) {
        err(c, n, c->syntax_loc, "'%s' must be from %g to %g, not %g", key, min,
            max, v);
        return false;
    }
    *out = v;
    return true;
}

static bool get_bool(struct ctx *c, struct fy_node *map, const char *key,
                     bool *out)
{
    struct fy_node *n = get(map, key);
    const char *s = scalar(c, n, key);
    if (s == NULL)
        return false;
    if (strcmp(s, "true") == 0 || strcmp(s, "yes") == 0) {
        *out = true;
        return true;
    }
    if (strcmp(s, "false") == 0 || strcmp(s, "no") == 0) {
        *out = false;
        return true;
    }
    err(c, n, c->syntax_loc, "'%s' must be true or false, not '%.40s'", key, s);
    return false;
}

static bool get_duration(struct ctx *c, struct fy_node *map, const char *key,
                         uint64_t min_ms, uint64_t max_ms, uint64_t *out)
{
    struct fy_node *n = get(map, key);
    const char *s = scalar(c, n, key);
    if (s == NULL)
        return false;
    uint64_t v;
    if (!vg_cfg_parse_duration_ms(s, &v)) {
        err(c, n, c->syntax_loc, "'%s' must be a duration like 500ms, 10s, 5m, "
            "2h or 1d, not '%.40s'", key, s);
        return false;
    }
    if (v < min_ms || v > max_ms) {
        err(c, n, c->syntax_loc, "'%s' must be from %.3gs to %.3gs, not '%s'",
            key, min_ms / 1000.0, max_ms / 1000.0, s);
        return false;
    }
    *out = v;
    return true;
}

static bool get_color(struct ctx *c, struct fy_node *map, const char *key,
                      uint32_t *out)
{
    struct fy_node *n = get(map, key);
    const char *s = scalar(c, n, key);
    if (s == NULL)
        return false;
    if (!vg_cfg_parse_color(s, out)) {
        err(c, n, c->syntax_loc, "'%s' must be a colour \"#rrggbb\", not '%.40s'",
            key, s);
        return false;
    }
    return true;
}

/* A translated text: {LANG: TEXT, ...}, or a plain string in a project with
 * one language. Missing and unknown languages are reported here, because
 * the languages are known before any text is read. */
static void get_text(struct ctx *c, struct fy_node *map, const char *key,
                     bool required, struct vg_text *t, const char *what)
{
    struct fy_node *n = get(map, key);
    if (n == NULL) {
        if (required)
            err(c, map, c->syntax_loc, "%s has no '%s'", what, key);
        return;
    }
    struct vg_project *p = c->p;
    t->loc = loc_of(c, n);
    if (fy_node_get_type(n) == FYNT_SCALAR) {
        const char *s = scalar(c, n, key);
        if (s == NULL)
            return;
        if (p->n_languages > 1) {
            err(c, n, c->syntax_loc, "'%s' must give every language "
                "({%s: ..., %s: ...}), not a single text", key,
                p->languages[0], p->languages[1]);
            return;
        }
        t->s[0] = vg_cfg_strdup(s);
        return;
    }
    if (!is_map(n)) {
        err(c, n, c->syntax_loc, "'%s' must be a mapping from language to text",
            key);
        return;
    }
    void *it = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(n, &it)) != NULL) {
        struct fy_node *k = fy_node_pair_key(pair);
        const char *lang = k ? fy_node_get_scalar0(k) : NULL;
        if (lang == NULL)
            continue;
        int li = vg_project_language(p, lang);
        if (li < 0) {
            if (p->n_languages > 0)
                err(c, k, c->syntax_loc, "'%s' has text in '%.20s', which is "
                    "not a project language", key, lang);
            continue;
        }
        const char *s = scalar(c, fy_node_pair_value(pair), lang);
        if (s == NULL)
            continue;
        size_t bad;
        if (!vg_cfg_utf8_ok(s, strlen(s), &bad)) {
            err(c, fy_node_pair_value(pair), c->syntax_loc, "text is not valid UTF-8");
            continue;
        }
        free(t->s[li]);
        t->s[li] = vg_cfg_strdup(s);
    }
    for (size_t i = 0; i < p->n_languages; i++)
        if (t->s[i] == NULL)
            err(c, n, c->syntax_loc, "missing translation: '%s' of %s has no "
                "'%s' text", key, what, p->languages[i]);
}

static bool get_ref(struct ctx *c, struct fy_node *map, const char *key,
                    struct vg_ref *r)
{
    struct fy_node *n = get(map, key);
    const char *s = scalar(c, n, key);
    r->index = -1;
    if (s == NULL)
        return false;
    r->loc = loc_of(c, n);
    free(r->name);
    r->name = vg_cfg_strdup(s);
    return r->name != NULL;
}

static void ref_from_node(struct ctx *c, struct fy_node *n, const char *key,
                          struct vg_ref *r)
{
    const char *s = scalar(c, n, key);
    r->index = -1;
    r->loc = loc_of(c, n);
    r->name = s ? vg_cfg_strdup(s) : NULL;
}

/* A list of names: [a, b]. Empty entries are skipped with an error. */
static void get_ref_list(struct ctx *c, struct fy_node *map, const char *key,
                         struct vg_ref **v, size_t *n_out)
{
    struct fy_node *n = get(map, key);
    if (n == NULL)
        return;
    if (!is_seq(n)) {
        err(c, n, c->syntax_loc, "'%s' must be a list, e.g. [a, b]", key);
        return;
    }
    void *it = NULL;
    struct fy_node *item;
    while ((item = fy_node_sequence_iterate(n, &it)) != NULL) {
        if (*n_out >= MAX_LIST)
            break;
        struct vg_ref r = {0};
        ref_from_node(c, item, key, &r);
        if (r.name == NULL)
            continue;
        struct vg_ref *slot = vg_cfg_push(v, n_out, sizeof *slot);
        if (slot == NULL) {
            free(r.name);
            return;
        }
        *slot = r;
    }
}

static bool point_from(struct ctx *c, struct fy_node *n, const char *key,
                       long min, long max, struct vg_point *pt)
{
    if (!is_seq(n) || fy_node_sequence_item_count(n) != 2) {
        err(c, n, c->syntax_loc, "'%s' must be a pair [x, y]", key);
        return false;
    }
    long v[2];
    for (int i = 0; i < 2; i++) {
        struct fy_node *item = fy_node_sequence_get_by_index(n, i);
        const char *s = scalar(c, item, key);
        if (s == NULL)
            return false;
        if (!vg_cfg_parse_long(s, min, max, &v[i])) {
            err(c, item, c->syntax_loc, "'%s' needs whole numbers from %ld to "
                "%ld, not '%.40s'", key, min, max, s);
            return false;
        }
    }
    pt->x = (int)v[0];
    pt->y = (int)v[1];
    return true;
}

/* Names from a fixed vocabulary, e.g. toolbars or functions: returns the bit
 * of NAMES[i] as 1 << i, or 0 with an error. */
static unsigned vocab_bit(struct ctx *c, struct fy_node *n, const char *what,
                          const char *const *names)
{
    const char *s = scalar(c, n, what);
    if (s == NULL)
        return 0;
    size_t count = 0;
    for (; names[count] != NULL; count++)
        if (strcmp(names[count], s) == 0)
            return 1u << count;
    const char *hint = vg_cfg_suggest(c->d, s, count, key_name_cb, names);
    char list[300] = "";
    for (size_t i = 0; i < count; i++) {
        strncat(list, names[i], sizeof list - strlen(list) - 1);
        if (i + 1 < count)
            strncat(list, ", ", sizeof list - strlen(list) - 1);
    }
    if (hint != NULL)
        err(c, n, c->syntax_loc, "unknown %s '%.40s' (did you mean '%s'?)", what,
            s, hint);
    else
        err(c, n, c->syntax_loc, "unknown %s '%.40s' (one of: %s)", what, s, list);
    return 0;
}

/* ------------------------------------------------------------------- keys */

static const char *const named_keys[] = {
    "Escape", "Tab", "Return", "BackSpace", "Delete", "Insert", "Home", "End",
    "Page_Up", "Page_Down", "Up", "Down", "Left", "Right", "space", "Print",
    "Pause", "Menu", NULL};

static bool parse_key(struct ctx *c, struct fy_node *n, struct vg_key *k)
{
    const char *s = scalar(c, n, "key");
    if (s == NULL)
        return false;
    k->loc = loc_of(c, n);
    k->text = vg_cfg_strdup(s);
    char buf[128];
    if (strlen(s) >= sizeof buf) {
        err(c, n, c->syntax_loc, "key combination too long");
        return false;
    }
    strcpy(buf, s);
    unsigned mods = 0;
    char *part = buf;
    for (;;) {
        char *plus = strchr(part, '+');
        if (plus == NULL)
            break;
        *plus = '\0';
        unsigned m = 0;
        if (strcasecmp(part, "Ctrl") == 0 || strcasecmp(part, "Control") == 0)
            m = VG_MOD_CTRL;
        else if (strcasecmp(part, "Shift") == 0)
            m = VG_MOD_SHIFT;
        else if (strcasecmp(part, "Alt") == 0)
            m = VG_MOD_ALT;
        else if (strcasecmp(part, "Super") == 0)
            m = VG_MOD_SUPER;
        if (m == 0) {
            err(c, n, c->syntax_loc, "unknown modifier '%.20s' in key '%.60s' "
                "(Ctrl, Shift, Alt or Super)", part, s);
            return false;
        }
        if (mods & m) {
            err(c, n, c->syntax_loc, "modifier '%.20s' given twice in key '%.60s'",
                part, s);
            return false;
        }
        mods |= m;
        part = plus + 1;
    }
    char key[32] = "";
    size_t len = strlen(part);
    if (len == 1 && isalpha((unsigned char)part[0])) {
        key[0] = (char)tolower((unsigned char)part[0]);
        key[1] = '\0';
    } else if (len == 1 && isdigit((unsigned char)part[0])) {
        strcpy(key, part);
    } else if ((part[0] == 'F' || part[0] == 'f') && len >= 2 && len <= 3 &&
               isdigit((unsigned char)part[1]) &&
               (len == 2 || isdigit((unsigned char)part[2]))) {
        int num = atoi(part + 1);
        if (num >= 1 && num <= 24 && part[1] != '0')
            snprintf(key, sizeof key, "F%d", num);
    } else {
        for (size_t i = 0; named_keys[i] != NULL; i++)
            if (strcasecmp(part, named_keys[i]) == 0)
                snprintf(key, sizeof key, "%s", named_keys[i]);
    }
    if (key[0] == '\0') {
        const char *hint = len > 2 ? vg_cfg_suggest(c->d, part, 18, key_name_cb,
                                                    named_keys) : NULL;
        err(c, n, c->syntax_loc, "unknown key name '%.30s' in '%.60s'%s%s%s", part,
            s, hint ? " (did you mean '" : " (F1-F24, A-Z, 0-9, Escape, Tab, "
            "Return, Delete, ...)", hint ? hint : "", hint ? "'?)" : "");
        return false;
    }
    k->mods = mods;
    k->key = vg_cfg_strdup(key);
    return k->key != NULL;
}

/* ---------------------------------------------------------- project.yaml */

/* The start every named entry of a project.yaml list shares: ITEM must be a
 * mapping with only KEYS and a valid 'name'. Returns the malloc'd name, or
 * NULL after reporting why the entry is skipped. */
static char *entry_name(struct ctx *c, struct fy_node *item, const char *what,
                        const char *const *keys)
{
    if (!is_map(item)) {
        err(c, item, c->syntax_loc, "a %s must be a mapping with a 'name'",
            what);
        return NULL;
    }
    check_keys(c, item, what, keys);
    char *name = NULL;
    if (need(c, item, "name", what) == NULL ||
        !get_name(c, item, "name", &name)) {
        free(name);
        return NULL;
    }
    return name;
}

static void parse_sections(struct ctx *c, struct fy_node *list, int parent,
                           int depth)
{
    if (!is_seq(list)) {
        err(c, list, c->syntax_loc, "'sections' must be a list of sections");
        return;
    }
    if (depth >= MAX_SECTION_DEPTH) {
        err(c, list, c->syntax_loc, "sections nested deeper than %d levels",
            MAX_SECTION_DEPTH);
        return;
    }
    static const char *const keys[] = {"name", "title", "children", NULL};
    void *it = NULL;
    struct fy_node *item;
    while ((item = fy_node_sequence_iterate(list, &it)) != NULL) {
        char *name = entry_name(c, item, "section", keys);
        if (name == NULL)
            continue;
        struct vg_section *s = vg_cfg_push(&c->p->sections, &c->p->n_sections,
                                           sizeof *s);
        if (s == NULL) {
            free(name);
            return;
        }
        s->name = name;
        s->parent = parent;
        s->loc = loc_of(c, get(item, "name"));
        get_text(c, item, "title", true, &s->title, "section");
        int self = (int)(c->p->n_sections - 1);
        struct fy_node *children = get(item, "children");
        if (children != NULL)
            parse_sections(c, children, self, depth + 1);
    }
}

static void parse_plcs(struct ctx *c, struct fy_node *list)
{
    static const char *const keys[] = {"name", "host", "port", "unit_id",
        "poll_interval", "timeout", "fencing_register", NULL};
    if (!is_seq(list)) {
        err(c, list, c->syntax_loc, "'plcs' must be a list of PLC connections");
        return;
    }
    void *it = NULL;
    struct fy_node *item;
    while ((item = fy_node_sequence_iterate(list, &it)) != NULL) {
        char *name = entry_name(c, item, "PLC", keys);
        if (name == NULL)
            continue;
        struct vg_plc *plc = vg_cfg_push(&c->p->plcs, &c->p->n_plcs, sizeof *plc);
        if (plc == NULL) {
            free(name);
            return;
        }
        plc->name = name;
        plc->loc = loc_of(c, get(item, "name"));
        plc->port = 502;
        plc->unit_id = 1;
        plc->poll_ms = 1000;
        plc->timeout_ms = 1000;
        plc->fencing_register = -1;
        if (need(c, item, "host", "PLC") != NULL &&
            get_str(c, item, "host", &plc->host)) {
            bool ok = strlen(plc->host) <= 253;
            for (const char *h = plc->host; *h && ok; h++)
                ok = isalnum((unsigned char)*h) || *h == '.' || *h == '-' ||
                     *h == ':' || *h == '_';
            if (!ok)
                err(c, get(item, "host"), c->syntax_loc, "'host' must be a host "
                    "name or an IP address, not '%.60s'", plc->host);
        }
        long v;
        if (get(item, "port") && get_long(c, item, "port", 1, 65535, &v))
            plc->port = (int)v;
        if (get(item, "unit_id") && get_long(c, item, "unit_id", 0, 255, &v))
            plc->unit_id = (int)v;
        if (get(item, "fencing_register") &&
            get_long(c, item, "fencing_register", 0, 65532, &v))
            plc->fencing_register = (int)v;
        uint64_t ms;
        if (get(item, "poll_interval") &&
            get_duration(c, item, "poll_interval", 50, 3600000, &ms))
            plc->poll_ms = (unsigned)ms;
        if (get(item, "timeout") &&
            get_duration(c, item, "timeout", 50, 60000, &ms))
            plc->timeout_ms = (unsigned)ms;
    }
}

static void parse_window(struct ctx *c, struct fy_node *w, struct vg_station *s)
{
    static const char *const keys[] = {"width", "height", "fullscreen",
        "decorated", "always_on_top", NULL};
    if (!is_map(w)) {
        err(c, w, c->syntax_loc, "'window' must be a mapping");
        return;
    }
    check_keys(c, w, "window", keys);
    long v;
    if (get(w, "width") && get_long(c, w, "width", 320, 7680, &v))
        s->width = (int)v;
    if (get(w, "height") && get_long(c, w, "height", 200, 4320, &v))
        s->height = (int)v;
    if (get(w, "fullscreen"))
        get_bool(c, w, "fullscreen", &s->fullscreen);
    if (get(w, "decorated"))
        get_bool(c, w, "decorated", &s->decorated);
    if (get(w, "always_on_top"))
        get_bool(c, w, "always_on_top", &s->always_on_top);
}

static void parse_stations(struct ctx *c, struct fy_node *list)
{
    static const char *const keys[] = {"name", "title", "start_screen",
        "language", "toolbars", "navigation_keys", "window", "blocked_keys",
        NULL};
    if (!is_seq(list)) {
        err(c, list, c->syntax_loc, "'stations' must be a list of stations");
        return;
    }
    void *it = NULL;
    struct fy_node *item;
    while ((item = fy_node_sequence_iterate(list, &it)) != NULL) {
        char *name = entry_name(c, item, "station", keys);
        if (name == NULL)
            continue;
        struct vg_station *s =
            vg_cfg_push(&c->p->stations, &c->p->n_stations, sizeof *s);
        if (s == NULL) {
            free(name);
            return;
        }
        s->name = name;
        s->loc = loc_of(c, get(item, "name"));
        s->width = 1280;
        s->height = 800;
        s->decorated = true;
        s->start_screen.index = -1;
        s->language.index = -1;
        get_text(c, item, "title", true, &s->title, "station");
        if (need(c, item, "start_screen", "station"))
            get_ref(c, item, "start_screen", &s->start_screen);
        if (need(c, item, "language", "station"))
            get_ref(c, item, "language", &s->language);
        struct fy_node *tb = get(item, "toolbars");
        if (tb != NULL) {
            if (!is_seq(tb)) {
                err(c, tb, c->syntax_loc, "'toolbars' must be a list");
            } else {
                void *ti = NULL;
                struct fy_node *t;
                while ((t = fy_node_sequence_iterate(tb, &ti)) != NULL)
                    s->toolbars |= vocab_bit(c, t, "toolbar",
                                             vg_cfg_toolbar_names);
            }
        } else {
            s->toolbars = VG_TOOLBAR_NAVIGATION | VG_TOOLBAR_ALARMS |
                          VG_TOOLBAR_STATUS;
        }
        struct fy_node *nk = get(item, "navigation_keys");
        if (nk != NULL) {
            if (!is_map(nk)) {
                err(c, nk, c->syntax_loc, "'navigation_keys' must be a mapping "
                    "KEY: SCREEN, e.g. {F1: overview}");
            } else {
                void *ni = NULL;
                struct fy_node_pair *pair;
                while ((pair = fy_node_mapping_iterate(nk, &ni)) != NULL) {
                    struct vg_nav_key k = {0};
                    k.screen.index = -1;
                    if (!parse_key(c, fy_node_pair_key(pair), &k.key)) {
                        free(k.key.text);
                        free(k.key.key);
                        continue;
                    }
                    ref_from_node(c, fy_node_pair_value(pair), "screen",
                                  &k.screen);
                    struct vg_nav_key *slot = vg_cfg_push(
                        &s->nav_keys, &s->n_nav_keys, sizeof *slot);
                    if (slot == NULL) {
                        free(k.key.text);
                        free(k.key.key);
                        free(k.screen.name);
                        break;
                    }
                    *slot = k;
                }
            }
        }
        struct fy_node *bk = get(item, "blocked_keys");
        if (bk != NULL) {
            if (!is_seq(bk)) {
                err(c, bk, c->syntax_loc, "'blocked_keys' must be a list, e.g. "
                    "[Alt+F4, Ctrl+Q]");
            } else {
                void *bi = NULL;
                struct fy_node *kn;
                while ((kn = fy_node_sequence_iterate(bk, &bi)) != NULL) {
                    struct vg_key k = {0};
                    if (!parse_key(c, kn, &k)) {
                        free(k.text);
                        free(k.key);
                        continue;
                    }
                    struct vg_key *slot = vg_cfg_push(
                        &s->blocked_keys, &s->n_blocked_keys, sizeof *slot);
                    if (slot == NULL) {
                        free(k.text);
                        free(k.key);
                        break;
                    }
                    *slot = k;
                }
            }
        }
        struct fy_node *w = get(item, "window");
        if (w != NULL)
            parse_window(c, w, s);
    }
}

static void parse_roles(struct ctx *c, struct fy_node *list)
{
    static const char *const keys[] = {"name", "title", "grants", NULL};
    static const char *const gkeys[] = {"functions", "sections", "stations",
                                        NULL};
    if (!is_seq(list)) {
        err(c, list, c->syntax_loc, "'roles' must be a list of roles");
        return;
    }
    void *it = NULL;
    struct fy_node *item;
    while ((item = fy_node_sequence_iterate(list, &it)) != NULL) {
        char *name = entry_name(c, item, "role", keys);
        if (name == NULL)
            continue;
        struct vg_role *r = vg_cfg_push(&c->p->roles, &c->p->n_roles, sizeof *r);
        if (r == NULL) {
            free(name);
            return;
        }
        r->name = name;
        r->loc = loc_of(c, get(item, "name"));
        get_text(c, item, "title", true, &r->title, "role");
        struct fy_node *grants = need(c, item, "grants", "role");
        if (grants == NULL)
            continue;
        if (!is_seq(grants) || fy_node_sequence_item_count(grants) == 0) {
            err(c, grants, c->syntax_loc, "'grants' must be a non-empty list");
            continue;
        }
        void *gi = NULL;
        struct fy_node *g;
        while ((g = fy_node_sequence_iterate(grants, &gi)) != NULL) {
            if (!is_map(g)) {
                err(c, g, c->syntax_loc, "a grant must be a mapping with "
                    "'functions'");
                continue;
            }
            check_keys(c, g, "grant", gkeys);
            struct vg_grant *gr =
                vg_cfg_push(&r->grants, &r->n_grants, sizeof *gr);
            if (gr == NULL)
                return;
            gr->loc = loc_of(c, g);
            struct fy_node *fn = need(c, g, "functions", "grant");
            if (fn != NULL && !is_seq(fn)) {
                err(c, fn, c->syntax_loc, "'functions' must be a list");
            } else if (fn != NULL) {
                void *fi = NULL;
                struct fy_node *f;
                while ((f = fy_node_sequence_iterate(fn, &fi)) != NULL)
                    gr->functions |= vocab_bit(c, f, "function",
                                               vg_cfg_function_names);
                if (fy_node_sequence_item_count(fn) == 0)
                    err(c, fn, c->syntax_loc, "'functions' is empty");
            }
            get_ref_list(c, g, "sections", &gr->sections, &gr->n_sections);
            get_ref_list(c, g, "stations", &gr->stations, &gr->n_stations);
        }
    }
}

static void parse_reports(struct ctx *c, struct fy_node *list)
{
    static const char *const keys[] = {"name", "title", "kind", "tags",
        "sections", "range", "format", NULL};
    static const char *const kinds[] = {"alarms", "tags", "audit", NULL};
    static const char *const formats[] = {"pdf", "csv", NULL};
    if (!is_seq(list)) {
        err(c, list, c->syntax_loc, "'reports' must be a list of reports");
        return;
    }
    void *it = NULL;
    struct fy_node *item;
    while ((item = fy_node_sequence_iterate(list, &it)) != NULL) {
        char *name = entry_name(c, item, "report", keys);
        if (name == NULL)
            continue;
        struct vg_report *r =
            vg_cfg_push(&c->p->reports, &c->p->n_reports, sizeof *r);
        if (r == NULL) {
            free(name);
            return;
        }
        r->name = name;
        r->loc = loc_of(c, get(item, "name"));
        r->range_s = 86400;
        r->pdf = true;
        get_text(c, item, "title", true, &r->title, "report");
        struct fy_node *k = need(c, item, "kind", "report");
        unsigned bit = 0;
        if (k != NULL) {
            bit = vocab_bit(c, k, "report kind", kinds);
            r->kind = bit == 2 ? VG_REPORT_TAGS
                      : bit == 4 ? VG_REPORT_AUDIT : VG_REPORT_ALARMS;
        }
        struct fy_node *f = get(item, "format");
        if (f != NULL)
            r->pdf = vocab_bit(c, f, "report format", formats) != 2;
        uint64_t ms;
        if (get(item, "range") &&
            get_duration(c, item, "range", 60000, 366ull * 86400000, &ms))
            r->range_s = (unsigned)(ms / 1000);
        get_ref_list(c, item, "tags", &r->tags, &r->n_tags);
        get_ref_list(c, item, "sections", &r->sections, &r->n_sections);
        if (bit == 0)
            continue; /* kind unknown: the rules below would only guess */
        if (r->kind == VG_REPORT_TAGS && r->n_tags == 0)
            err(c, item, c->syntax_loc, "a tags report needs 'tags'");
        if (r->kind != VG_REPORT_TAGS && get(item, "tags") != NULL)
            err(c, get(item, "tags"), c->syntax_loc, "'tags' belongs only to "
                "reports of kind tags");
    }
}

/* A retention: "forever" (0) or a duration of 1 hour to 100 years. */
#define RETENTION_MAX_MS (36500ull * 86400000)
static bool get_retention(struct ctx *c, struct fy_node *map, const char *key,
                          uint64_t *out)
{
    const char *s = scalar(c, get(map, key), key);
    if (s != NULL && strcmp(s, "forever") == 0) {
        *out = 0;
        return true;
    }
    if (s == NULL)
        return false;
    return get_duration(c, map, key, 3600000, RETENTION_MAX_MS, out);
}

static void parse_archives(struct ctx *c, struct fy_node *list)
{
    static const char *const keys[] = {"name", "title", "retention",
        "default", NULL};
    if (!is_seq(list)) {
        err(c, list, c->syntax_loc, "'archives' must be a list of archives");
        return;
    }
    void *it = NULL;
    struct fy_node *item;
    while ((item = fy_node_sequence_iterate(list, &it)) != NULL) {
        char *name = entry_name(c, item, "archive", keys);
        if (name == NULL)
            continue;
        struct vg_archive_def *a =
            vg_cfg_push(&c->p->archives, &c->p->n_archives, sizeof *a);
        if (a == NULL) {
            free(name);
            return;
        }
        a->name = name;
        a->loc = loc_of(c, get(item, "name"));
        if (get(item, "title"))
            get_text(c, item, "title", false, &a->title, "archive");
        if (need(c, item, "retention", "archive") != NULL)
            get_retention(c, item, "retention", &a->retention_ms);
        if (get(item, "default"))
            get_bool(c, item, "default", &a->is_default);
    }
}

static void parse_retention(struct ctx *c, struct fy_node *map)
{
    static const char *const keys[] = {"alarm_journal", "audit", NULL};
    if (!is_map(map)) {
        err(c, map, c->syntax_loc, "'retention' must be a mapping, e.g. "
            "{alarm_journal: 365d, audit: forever}");
        return;
    }
    check_keys(c, map, "retention", keys);
    if (get(map, "alarm_journal"))
        get_retention(c, map, "alarm_journal", &c->p->journal_retention_ms);
    if (get(map, "audit"))
        get_retention(c, map, "audit", &c->p->audit_retention_ms);
}

static void parse_languages(struct ctx *c, struct fy_node *root)
{
    struct fy_node *n = need(c, root, "languages", "project.yaml");
    if (n == NULL)
        return;
    if (!is_seq(n) || fy_node_sequence_item_count(n) == 0) {
        err(c, n, c->syntax_loc, "'languages' must be a non-empty list, e.g. "
            "[en, de]");
        return;
    }
    void *it = NULL;
    struct fy_node *item;
    struct vg_project *p = c->p;
    size_t errors = c->d->n;
    while ((item = fy_node_sequence_iterate(n, &it)) != NULL) {
        const char *s = scalar(c, item, "languages");
        if (s == NULL)
            continue;
        if (strlen(s) != 2 || !islower((unsigned char)s[0]) ||
            !islower((unsigned char)s[1])) {
            err(c, item, c->syntax_loc, "'%.20s' is not a language code (two "
                "lower-case letters, ISO 639-1, e.g. en)", s);
            continue;
        }
        if (vg_project_language(p, s) >= 0) {
            err(c, item, c->syntax_loc, "language '%s' is listed twice", s);
            continue;
        }
        if (p->n_languages == VG_PROJECT_MAX_LANGS) {
            err(c, item, c->syntax_loc, "at most %d languages",
                VG_PROJECT_MAX_LANGS);
            break;
        }
        p->languages[p->n_languages++] = vg_cfg_strdup(s);
    }
    /* With a broken language list every text of the project would be
     * reported as having a wrong or missing language; report the list only
     * and check no translations. */
    if (c->d->n != errors) {
        for (size_t i = 0; i < p->n_languages; i++)
            free(p->languages[i]);
        p->n_languages = 0;
    }
}

void vg_cfg_yaml_project(struct vg_project *p, const struct vg_project_file *f,
                         struct vg_diags *d)
{
    struct ctx c = {.p = p, .d = d, .file = vg_cfg_file(p, f->path)};
    c.syntax_loc = (struct vg_loc){c.file, 1, 1};
    struct fy_diag *diag = NULL;
    struct fy_document *doc = load(&c, f, &diag);
    if (doc == NULL)
        return;
    struct fy_node *root = fy_document_root(doc);
    if (!is_map(root)) {
        vg_diags_add(d, c.syntax_loc, "project.yaml must be a mapping with "
                     "'project', 'languages' and 'sections'");
        goto out;
    }
    if (!plain_tree(&c, root, 0))
        goto out;
    static const char *const keys[] = {"project", "version", "title",
        "languages", "sections", "plcs", "stations", "roles", "reports",
        "archives", "retention", NULL};
    check_keys(&c, root, "project.yaml", keys);
    /* Languages first: every translated text is checked against them. */
    parse_languages(&c, root);
    if (need(&c, root, "project", "project.yaml"))
        get_name(&c, root, "project", &p->name);
    if (get(root, "version"))
        get_str(&c, root, "version", &p->label);
    get_text(&c, root, "title", false, &p->title, "the project");
    struct fy_node *n;
    if ((n = need(&c, root, "sections", "project.yaml")) != NULL) {
        parse_sections(&c, n, -1, 0);
        if (p->n_sections == 0 && is_seq(n))
            err(&c, n, c.syntax_loc, "a project needs at least one plant section");
    }
    if ((n = get(root, "plcs")) != NULL)
        parse_plcs(&c, n);
    if ((n = get(root, "stations")) != NULL)
        parse_stations(&c, n);
    if ((n = get(root, "roles")) != NULL)
        parse_roles(&c, n);
    if ((n = get(root, "reports")) != NULL)
        parse_reports(&c, n);
    if ((n = get(root, "archives")) != NULL)
        parse_archives(&c, n);
    if ((n = get(root, "retention")) != NULL)
        parse_retention(&c, n);
out:
    fy_document_destroy(doc);
    fy_diag_destroy(diag);
}

/* ---------------------------------------------------------------- screens */

struct obj_spec {
    const char *name;
    const char *required; /* space-separated keys */
    const char *optional;
};

/* Indexed by enum vg_obj_type. */
static const struct obj_spec obj_specs[VG_OBJ_TYPE_COUNT] = {
    [VG_OBJ_TEXT] = {"text", "at text", "font_size color"},
    [VG_OBJ_VALUE] = {"value", "at size tag", "format unit font_size color"},
    [VG_OBJ_BAR] = {"bar", "at size tag", "min max vertical fill"},
    [VG_OBJ_LAMP] = {"lamp", "at size tag", "on_color off_color"},
    [VG_OBJ_BUTTON] = {"button", "at size text", "write goto"},
    [VG_OBJ_SETPOINT] = {"setpoint", "at size tag", "format"},
    [VG_OBJ_TREND] = {"trend", "at size tags", "span"},
    [VG_OBJ_ALARM_LIST] = {"alarm_list", "at size", "sections max_priority"},
    [VG_OBJ_RECT] = {"rect", "at size", "fill stroke"},
    [VG_OBJ_LINE] = {"line", "points", "color width"},
    [VG_OBJ_POLYLINE] = {"polyline", "points", "color width"},
    [VG_OBJ_PIPE] = {"pipe", "points", "width stroke tag"},
    [VG_OBJ_TANK] = {"tank", "at size tag", "min max fill stroke"},
};

static bool word_in(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ' ');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && strncmp(p, word, n) == 0)
            return true;
        if (e == NULL)
            break;
        p = e + 1;
    }
    return false;
}

/* A printf format for one number: "%[flags][width][.prec](f|e|g|d)" with any
 * literal text around it ("%%" allowed). Checked here so the station can pass
 * it to printf without risk. */
static void parse_points(struct ctx *c, struct fy_node *obj,
                         struct vg_screen_object *o, size_t min, size_t max)
{
    struct fy_node *n = get(obj, "points");
    if (!is_seq(n)) {
        err(c, n, c->syntax_loc, "'points' must be a list of [x, y] pairs");
        return;
    }
    size_t count = (size_t)fy_node_sequence_item_count(n);
    if (count < min || count > max) {
        if (min == max)
            err(c, n, c->syntax_loc, "'points' must have exactly %zu points, "
                "not %zu", min, count);
        else
            err(c, n, c->syntax_loc, "'points' must have %zu to %zu points, "
                "not %zu", min, max, count);
        return;
    }
    o->points = calloc(count, sizeof *o->points);
    if (o->points == NULL)
        return;
    void *it = NULL;
    struct fy_node *item;
    while ((item = fy_node_sequence_iterate(n, &it)) != NULL)
        if (point_from(c, item, "points", -100000, 100000,
                       &o->points[o->n_points]))
            o->n_points++;
}

static void parse_object(struct ctx *c, struct vg_screen *s,
                         struct fy_node *obj)
{
    if (!is_map(obj)) {
        err(c, obj, c->syntax_loc, "a screen object must be a mapping with "
            "'type'");
        return;
    }
    struct fy_node *tn = need(c, obj, "type", "screen object");
    const char *type = scalar(c, tn, "type");
    if (type == NULL)
        return;
    int t = -1;
    for (int i = 0; i < VG_OBJ_TYPE_COUNT; i++)
        if (strcmp(obj_specs[i].name, type) == 0)
            t = i;
    if (t < 0) {
        const char *names[VG_OBJ_TYPE_COUNT + 1];
        for (int i = 0; i < VG_OBJ_TYPE_COUNT; i++)
            names[i] = obj_specs[i].name;
        names[VG_OBJ_TYPE_COUNT] = NULL;
        const char *hint = vg_cfg_suggest(c->d, type, VG_OBJ_TYPE_COUNT, key_name_cb,
                                          names);
        err(c, tn, c->syntax_loc, "unknown object type '%.40s'%s%s%s", type,
            hint ? " (did you mean '" : "", hint ? hint : "", hint ? "'?)" : "");
        return;
    }
    const struct obj_spec *spec = &obj_specs[t];
    struct vg_screen_object *o =
        vg_cfg_push(&s->objects, &s->n_objects, sizeof *o);
    if (o == NULL)
        return;
    o->type = (enum vg_obj_type)t;
    o->loc = loc_of(c, tn);
    o->tag.index = -1;
    o->target.index = -1;
    char what[64];
    snprintf(what, sizeof what, "%s object", spec->name);

    /* Unknown keys, then missing required ones. */
    void *it = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(obj, &it)) != NULL) {
        struct fy_node *k = fy_node_pair_key(pair);
        const char *key = k ? fy_node_get_scalar0(k) : NULL;
        if (key == NULL || strcmp(key, "type") == 0)
            continue;
        if (!word_in(spec->required, key) && !word_in(spec->optional, key))
            err(c, k, c->syntax_loc, "'%s' does not belong to a %s (it takes: "
                "%s%s%s)", key, what, spec->required,
                spec->optional[0] ? " " : "", spec->optional);
    }
    char req[64];
    snprintf(req, sizeof req, "%s", spec->required);
    char *save = NULL;
    for (char *w = strtok_r(req, " ", &save); w; w = strtok_r(NULL, " ", &save))
        need(c, obj, w, what);

    /* Defaults, then the keys present. */
    o->font_size = 14;
    o->color = 0xffffff;
    o->off_color = 0x555555;
    o->show_unit = true;
    o->vertical = true;
    o->line_width = t == VG_OBJ_PIPE ? 6 : 1;
    o->span_s = 3600;
    if (t == VG_OBJ_LAMP)
        o->color = 0x2ecc40;
    struct vg_point pt;
    if (get(obj, "at") && point_from(c, get(obj, "at"), "at", -10000, 10000,
                                     &pt)) {
        o->x = pt.x;
        o->y = pt.y;
    }
    if (get(obj, "size") && point_from(c, get(obj, "size"), "size", 1, 10000,
                                       &pt)) {
        o->w = pt.x;
        o->h = pt.y;
    }
    if (get(obj, "text"))
        get_text(c, obj, "text", true, &o->text, what);
    if (get(obj, "tag"))
        get_ref(c, obj, "tag", &o->tag);
    if (get(obj, "format") && get_str(c, obj, "format", &o->format) &&
        !vg_value_format_parse(o->format, NULL, NULL, NULL))
        err(c, get(obj, "format"), c->syntax_loc, "'format' must contain exactly "
            "one number conversion like %%.1f, %%e, %%g or %%d, not '%.40s'",
            o->format);
    if (get(obj, "unit"))
        get_bool(c, obj, "unit", &o->show_unit);
    if (get(obj, "font_size"))
        get_double(c, obj, "font_size", 4, 200, &o->font_size);
    if (get(obj, "color"))
        get_color(c, obj, "color", &o->color);
    if (get(obj, "on_color"))
        get_color(c, obj, "on_color", &o->color);
    if (get(obj, "off_color"))
        get_color(c, obj, "off_color", &o->off_color);
    if (get(obj, "fill"))
        o->has_fill = get_color(c, obj, "fill", &o->fill);
    if (get(obj, "stroke"))
        o->has_stroke = get_color(c, obj, "stroke", &o->stroke);
    if (get(obj, "vertical"))
        get_bool(c, obj, "vertical", &o->vertical);
    if (get(obj, "width"))
        get_double(c, obj, "width", 0.5, 50, &o->line_width);
    bool has_min = get(obj, "min") != NULL, has_max = get(obj, "max") != NULL;
    if (has_min != has_max) {
        err(c, get(obj, has_min ? "min" : "max"), c->syntax_loc,
            "give both 'min' and 'max', or neither");
    } else if (has_min) {
        bool ok = get_double(c, obj, "min", -1e15, 1e15, &o->min);
        ok = get_double(c, obj, "max", -1e15, 1e15, &o->max) && ok;
        if (ok && !(o->min < o->max))
            err(c, get(obj, "max"), c->syntax_loc, "'max' (%g) must be greater "
                "than 'min' (%g)", o->max, o->min);
        else if (ok)
            o->has_range = true;
    }
    if (get(obj, "points"))
        parse_points(c, obj, o, t == VG_OBJ_LINE ? 2 : 2,
                     t == VG_OBJ_LINE ? 2 : 1000);
    if (get(obj, "tags")) {
        get_ref_list(c, obj, "tags", &o->tags, &o->n_tags);
        if (o->n_tags < 1 || o->n_tags > 8)
            err(c, get(obj, "tags"), c->syntax_loc, "a trend shows 1 to 8 tags, "
                "not %zu", o->n_tags);
    }
    uint64_t ms;
    if (get(obj, "span") &&
        get_duration(c, obj, "span", 10000, 366ull * 86400000, &ms))
        o->span_s = (unsigned)(ms / 1000);
    if (get(obj, "sections"))
        get_ref_list(c, obj, "sections", &o->sections, &o->n_sections);
    long v;
    if (get(obj, "max_priority") &&
        get_long(c, obj, "max_priority", 1, 4, &v))
        o->max_priority = (int)v;
    if (t == VG_OBJ_BUTTON) {
        struct fy_node *w = get(obj, "write"), *g = get(obj, "goto");
        if ((w == NULL) == (g == NULL)) {
            err(c, w ? w : obj, c->syntax_loc, "a button needs exactly one of "
                "'write: {tag, value}' or 'goto: SCREEN'");
        } else if (g != NULL) {
            o->action = VG_ACTION_GOTO;
            get_ref(c, obj, "goto", &o->target);
        } else if (!is_map(w)) {
            err(c, w, c->syntax_loc, "'write' must be {tag: TAG, value: NUMBER}");
        } else {
            static const char *const wkeys[] = {"tag", "value", NULL};
            check_keys(c, w, "write", wkeys);
            o->action = VG_ACTION_WRITE;
            if (need(c, w, "tag", "write"))
                get_ref(c, w, "tag", &o->tag);
            if (need(c, w, "value", "write"))
                get_double(c, w, "value", -1e15, 1e15, &o->write_value);
        }
    }
}

void vg_cfg_yaml_screen(struct vg_project *p, const struct vg_project_file *f,
                        struct vg_diags *d)
{
    struct ctx c = {.p = p, .d = d, .file = vg_cfg_file(p, f->path)};
    c.syntax_loc = (struct vg_loc){c.file, 1, 1};
    /* The screen's name is its file name: screens/NAME.yaml. */
    const char *base = strrchr(f->path, '/');
    base = base ? base + 1 : f->path;
    size_t blen = strlen(base);
    char name[VG_NAME_MAX + 8];
    if (blen <= 5 || blen - 5 > VG_NAME_MAX) {
        vg_diags_add(d, (struct vg_loc){c.file, 0, 0}, "screen file name must "
                     "be NAME.yaml with a 1-64 character name");
        return;
    }
    memcpy(name, base, blen - 5);
    name[blen - 5] = '\0';
    if (!vg_cfg_name_ok(name)) {
        vg_diags_add(d, (struct vg_loc){c.file, 0, 0}, "invalid screen name "
                     "'%s' (letters, digits, '_', '-', '.', starting with a "
                     "letter)", name);
        return;
    }
    /* The screen exists even when its file is broken, so that stations and
     * buttons that go to it do not add "unknown screen" errors to the one
     * that matters. */
    struct vg_screen *s = vg_cfg_push(&p->screens, &p->n_screens, sizeof *s);
    if (s == NULL)
        return;
    s->name = vg_cfg_strdup(name);
    s->loc = (struct vg_loc){c.file, 1, 1};
    s->width = 1280;
    s->height = 800;
    s->background = 0x1d2329;
    s->section.index = -1;
    struct fy_diag *diag = NULL;
    struct fy_document *doc = load(&c, f, &diag);
    if (doc == NULL)
        return;
    struct fy_node *root = fy_document_root(doc);
    if (!is_map(root)) {
        vg_diags_add(d, c.syntax_loc, "a screen file must be a mapping with "
                     "'title', 'size' and 'objects'");
        goto out;
    }
    if (!plain_tree(&c, root, 0))
        goto out;
    static const char *const keys[] = {"title", "size", "background",
                                       "section", "objects", NULL};
    check_keys(&c, root, "screen", keys);
    get_text(&c, root, "title", true, &s->title, "the screen");
    struct vg_point pt;
    if (need(&c, root, "size", "screen") &&
        point_from(&c, get(root, "size"), "size", 1, 100000, &pt)) {
        if (pt.x < 320 || pt.x > 7680 || pt.y < 200 || pt.y > 4320)
            err(&c, get(root, "size"), c.syntax_loc, "screen size %dx%d is "
                "outside 320x200 .. 7680x4320", pt.x, pt.y);
        else {
            s->width = pt.x;
            s->height = pt.y;
        }
    }
    if (get(root, "background"))
        get_color(&c, root, "background", &s->background);
    if (get(root, "section"))
        get_ref(&c, root, "section", &s->section);
    struct fy_node *objs = need(&c, root, "objects", "screen");
    if (objs != NULL && !is_seq(objs)) {
        err(&c, objs, c.syntax_loc, "'objects' must be a list");
    } else if (objs != NULL) {
        void *it = NULL;
        struct fy_node *o;
        while ((o = fy_node_sequence_iterate(objs, &it)) != NULL) {
            if (s->n_objects >= MAX_LIST) {
                err(&c, o, c.syntax_loc, "more than %d objects", MAX_LIST);
                break;
            }
            parse_object(&c, s, o);
        }
    }
out:
    fy_document_destroy(doc);
    fy_diag_destroy(diag);
}
