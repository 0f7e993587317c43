/* vg_project_diff: what changed between two versions of a project, as text
 * for people (vigilctl project diff, the load confirmation).
 *
 * The project's own fields come first, then each collection in a fixed
 * order: sections, PLCs, tags, alarms, screens, stations, roles, reports.
 * Objects are matched by name: both sides are sorted by name and walked
 * together, so 100 000 tags cost two sorts and a merge, never a pairwise
 * search. A pair with the same name is compared field by field (the
 * meaningful fields only: positions in the files and resolved indexes are
 * left out, references compare by name, texts by language code so that
 * reordering the languages changes no text):
 *
 *   tags: 1 added, 1 removed, 1 changed
 *     + intake.new_tag
 *     - old.tag
 *     ~ intake.flow: unit 'm3/h' -> 'm³/h'; deadband 0.5 -> 1
 *
 * Screen objects have no names; they are matched by position after taking
 * off the longest equal run at the start and at the end, so an object
 * inserted at the top shows as one added object rather than every object
 * changed. Each collection shows at most MAX_LINES entries; long values
 * are cut. A project with duplicate names (one with errors) still gets a
 * diff: duplicates pair up in file order. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define MAX_LINES 50   /* entries shown per collection */
#define MAX_ITEMS 10   /* list elements or object numbers shown per change */

/* ------------------------------------------------------------- output */

struct out {
    char *s;
    size_t len, cap;
    bool oom;
};

static void put(struct out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
    if (o->oom)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        o->oom = true;
        return;
    }
    if (o->len + (size_t)n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 256;
        while (cap < o->len + (size_t)n + 1)
            cap *= 2;
        char *s = realloc(o->s, cap);
        if (s == NULL) {
            o->oom = true;
            return;
        }
        o->s = s;
        o->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(o->s + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    o->len += (size_t)n;
}

/* The shortest of %.15g and %.17g that reads back as V, so that two
 * different numbers never print alike. */
static const char *num(double v, char out[32])
{
    snprintf(out, 32, "%.15g", v);
    if (strtod(out, NULL) != v)
        snprintf(out, 32, "%.17g", v);
    return out;
}

static bool str_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

/* ------------------------------------------------------------ changes */

/* The changes found in one pair of objects, "; "-separated into O. */
struct chg {
    struct out *o;
    const struct vg_project *a, *b;
    int n;
};

static void sep(struct chg *c)
{
    if (c->n++ > 0)
        put(c->o, "; ");
}

/* Preformatted values (numbers, addresses, names): shown bare. */
static void ch_raw(struct chg *c, const char *label, const char *a,
                   const char *b)
{
    char ba[64], bb[64];
    if (str_eq(a, b))
        return;
    sep(c);
    put(c->o, "%s %s -> %s", label, vg_cfg_excerpt(a, false, ba), vg_cfg_excerpt(b, false, bb));
}

static void ch_str(struct chg *c, const char *label, const char *a,
                   const char *b)
{
    char ba[64], bb[64];
    if (str_eq(a, b))
        return;
    sep(c);
    put(c->o, "%s %s -> %s", label, vg_cfg_excerpt(a, true, ba), vg_cfg_excerpt(b, true, bb));
}

static void ch_num(struct chg *c, const char *label, double a, double b)
{
    char ba[32], bb[32];
    if (a == b)
        return;
    sep(c);
    put(c->o, "%s %s -> %s", label, num(a, ba), num(b, bb));
}

static void ch_long(struct chg *c, const char *label, long a, long b)
{
    if (a == b)
        return;
    sep(c);
    put(c->o, "%s %ld -> %ld", label, a, b);
}

static void ch_bool(struct chg *c, const char *label, bool a, bool b)
{
    if (a == b)
        return;
    sep(c);
    put(c->o, "%s %s -> %s", label, a ? "yes" : "no", b ? "yes" : "no");
}

static void ch_ref(struct chg *c, const char *label, const struct vg_ref *a,
                   const struct vg_ref *b)
{
    ch_raw(c, label, a->name, b->name);
}

static const char *text_in(const struct vg_project *p, const struct vg_text *t,
                           const char *code)
{
    for (size_t i = 0; i < p->n_languages && i < VG_PROJECT_MAX_LANGS; i++)
        if (str_eq(p->languages[i], code))
            return t->s[i];
    return NULL;
}

/* Texts by language code: "title.de 'Entnahme' -> 'Wasserentnahme'". */
static void ch_text(struct chg *c, const char *label, const struct vg_text *ta,
                    const struct vg_text *tb)
{
    char l[96];
    for (size_t i = 0; i < c->a->n_languages && i < VG_PROJECT_MAX_LANGS; i++) {
        const char *code = c->a->languages[i];
        if (code == NULL)
            continue;
        snprintf(l, sizeof l, "%s.%s", label, code);
        ch_str(c, l, ta->s[i], text_in(c->b, tb, code));
    }
    /* Languages only the new version has: their texts are all news. */
    for (size_t i = 0; i < c->b->n_languages && i < VG_PROJECT_MAX_LANGS; i++) {
        const char *code = c->b->languages[i];
        bool in_a = false;
        for (size_t k = 0; k < c->a->n_languages && k < VG_PROJECT_MAX_LANGS; k++)
            in_a |= str_eq(c->a->languages[k], code);
        if (code == NULL || in_a)
            continue;
        snprintf(l, sizeof l, "%s.%s", label, code);
        ch_str(c, l, NULL, tb->s[i]);
    }
}

/* Two lists of names. Same sequence: nothing. Same elements in another
 * order: "reordered". Otherwise the elements added and removed, found by
 * sorting both (lists like a report's tags can be long). */
static int cmp_str(const void *x, const void *y)
{
    const char *a = *(const char *const *)x, *b = *(const char *const *)y;
    return strcmp(a != NULL ? a : "", b != NULL ? b : "");
}

static void ch_list(struct chg *c, const char *label, const char **a,
                    size_t na, const char **b, size_t nb)
{
    bool same = na == nb;
    for (size_t i = 0; same && i < na; i++)
        same = str_eq(a[i], b[i]);
    if (same)
        return;
    const char **sa = malloc((na + 1) * sizeof *sa);
    const char **sb = malloc((nb + 1) * sizeof *sb);
    if (sa == NULL || sb == NULL) {
        free(sa);
        free(sb);
        c->o->oom = true;
        return;
    }
    if (na > 0)
        memcpy(sa, a, na * sizeof *sa);
    if (nb > 0)
        memcpy(sb, b, nb * sizeof *sb);
    qsort(sa, na, sizeof *sa, cmp_str);
    qsort(sb, nb, sizeof *sb, cmp_str);
    sep(c);
    put(c->o, "%s", label);
    size_t i = 0, j = 0, shown = 0, more = 0;
    char buf[64];
    while (i < na || j < nb) {
        int d = i == na ? 1 : j == nb ? -1 : cmp_str(&sa[i], &sb[j]);
        if (d == 0) {
            i++;
            j++;
            continue;
        }
        const char *s = d < 0 ? sa[i++] : sb[j++];
        if (shown++ < MAX_ITEMS)
            put(c->o, "%s%c%s", shown == 1 ? " " : ", ", d < 0 ? '-' : '+',
                vg_cfg_excerpt(s, false, buf));
        else
            more++;
    }
    if (shown == 0)
        put(c->o, " reordered");
    else if (more > 0)
        put(c->o, " (and %zu more)", more);
    free(sa);
    free(sb);
}

/* A list of references, by name. */
static void ch_refs(struct chg *c, const char *label, const struct vg_ref *a,
                    size_t na, const struct vg_ref *b, size_t nb)
{
    const char **la = malloc((na + 1) * sizeof *la);
    const char **lb = malloc((nb + 1) * sizeof *lb);
    if (la == NULL || lb == NULL) {
        c->o->oom = true;
    } else {
        for (size_t i = 0; i < na; i++)
            la[i] = a[i].name;
        for (size_t i = 0; i < nb; i++)
            lb[i] = b[i].name;
        ch_list(c, label, la, na, lb, nb);
    }
    free(la);
    free(lb);
}

static bool refs_eq(const struct vg_ref *a, size_t na, const struct vg_ref *b,
                    size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (!str_eq(a[i].name, b[i].name))
            return false;
    return true;
}

static bool text_eq(const struct vg_project *pa, const struct vg_text *a,
                    const struct vg_project *pb, const struct vg_text *b)
{
    for (size_t i = 0; i < pa->n_languages && i < VG_PROJECT_MAX_LANGS; i++)
        if (!str_eq(a->s[i], text_in(pb, b, pa->languages[i])))
            return false;
    for (size_t i = 0; i < pb->n_languages && i < VG_PROJECT_MAX_LANGS; i++)
        if (!str_eq(b->s[i], text_in(pa, a, pb->languages[i])))
            return false;
    return true;
}

/* --------------------------------------------------------- the project */

static const char *retention(uint64_t ms, char out[32]);

static void cmp_project(struct chg *c)
{
    const struct vg_project *a = c->a, *b = c->b;
    ch_raw(c, "name", a->name, b->name);
    ch_str(c, "label", a->label, b->label);
    ch_text(c, "title", &a->title, &b->title);
    const char *la[VG_PROJECT_MAX_LANGS], *lb[VG_PROJECT_MAX_LANGS];
    size_t na = a->n_languages < VG_PROJECT_MAX_LANGS ? a->n_languages
                                                       : VG_PROJECT_MAX_LANGS;
    size_t nb = b->n_languages < VG_PROJECT_MAX_LANGS ? b->n_languages
                                                       : VG_PROJECT_MAX_LANGS;
    for (size_t i = 0; i < na; i++)
        la[i] = a->languages[i];
    for (size_t i = 0; i < nb; i++)
        lb[i] = b->languages[i];
    bool same = na == nb;
    for (size_t i = 0; same && i < na; i++)
        same = str_eq(la[i], lb[i]);
    if (!same) {
        /* The order matters here (the first is the default), so show both
         * lists rather than what was added. */
        sep(c);
        put(c->o, "languages");
        for (size_t i = 0; i < na; i++)
            put(c->o, "%s%s", i ? ", " : " ", la[i] ? la[i] : "?");
        put(c->o, " ->");
        for (size_t i = 0; i < nb; i++)
            put(c->o, "%s%s", i ? ", " : " ", lb[i] ? lb[i] : "?");
    }
    char x[32], y[32];
    ch_raw(c, "alarm journal retention", retention(a->journal_retention_ms, x),
           retention(b->journal_retention_ms, y));
    ch_raw(c, "audit retention", retention(a->audit_retention_ms, x),
           retention(b->audit_retention_ms, y));
}

/* --------------------------------------------------------- collections */

/* How to name and compare the objects of one collection. */
struct coll {
    const char *label;
    size_t (*count)(const struct vg_project *p);
    const char *(*name)(const struct vg_project *p, size_t i);
    void (*cmp)(struct chg *c, size_t ia, size_t ib);
};

static const char *section_name(const struct vg_project *p, size_t i)
{
    return p->sections[i].name;
}

static const char *parent_name(const struct vg_project *p, int parent)
{
    if (parent < 0 || (size_t)parent >= p->n_sections)
        return NULL;
    return p->sections[parent].name;
}

static void section_cmp(struct chg *c, size_t ia, size_t ib)
{
    const struct vg_section *a = &c->a->sections[ia], *b = &c->b->sections[ib];
    ch_raw(c, "parent", parent_name(c->a, a->parent),
           parent_name(c->b, b->parent));
    ch_text(c, "title", &a->title, &b->title);
}

static const char *plc_name(const struct vg_project *p, size_t i)
{
    return p->plcs[i].name;
}

/* Milliseconds as written in the files: "500ms", "10s", "5m", "2h", "1d". */
static const char *duration(uint64_t ms, char out[32])
{
    static const struct {
        uint64_t ms;
        const char *unit;
    } units[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (ms >= units[i].ms && ms % units[i].ms == 0) {
            snprintf(out, 32, "%llu%s", (unsigned long long)(ms / units[i].ms),
                     units[i].unit);
            return out;
        }
    }
    snprintf(out, 32, "%llums", (unsigned long long)ms);
    return out;
}

static void plc_cmp(struct chg *c, size_t ia, size_t ib)
{
    const struct vg_plc *a = &c->a->plcs[ia], *b = &c->b->plcs[ib];
    ch_str(c, "host", a->host, b->host);
    ch_long(c, "port", a->port, b->port);
    ch_long(c, "unit_id", a->unit_id, b->unit_id);
    char fa[32] = "none", fb[32] = "none";
    ch_raw(c, "poll_interval", duration(a->poll_ms, fa),
           duration(b->poll_ms, fb));
    ch_raw(c, "timeout", duration(a->timeout_ms, fa),
           duration(b->timeout_ms, fb));
    strcpy(fa, "none");
    strcpy(fb, "none");
    if (a->fencing_register >= 0)
        snprintf(fa, sizeof fa, "%d", a->fencing_register);
    if (b->fencing_register >= 0)
        snprintf(fb, sizeof fb, "%d", b->fencing_register);
    ch_raw(c, "fencing_register", fa, fb);
}

static const char *tag_name(const struct vg_project *p, size_t i)
{
    return p->tags[i].name;
}

/* Values that only make sense together, as one text: "hr:100",
 * "0..27648 => 0..250", "cyclic:60", "10..200". */
static void tag_address(const struct vg_tag *t, char out[32])
{
    snprintf(out, 32, "%s:%u", vg_reg_kind_name(t->kind), (unsigned)t->offset);
}

static void tag_scaling(const struct vg_tag *t, char out[160])
{
    char a[32], b[32], e1[32], e2[32];
    if (!t->scaled)
        snprintf(out, 160, "none");
    else
        snprintf(out, 160, "%s..%s => %s..%s", num(t->raw_min, a),
                 num(t->raw_max, b), num(t->eng_min, e1), num(t->eng_max, e2));
}

static void tag_archive(const struct vg_tag *t, char out[32])
{
    if (t->archive == VG_ARCHIVE_CYCLIC)
        snprintf(out, 32, "cyclic:%u", t->archive_period_s);
    else
        snprintf(out, 32, "%s", t->archive == VG_ARCHIVE_CHANGE ? "change"
                                                                : "none");
}

static void tag_limits(const struct vg_tag *t, char out[80])
{
    char a[32], b[32];
    if (!t->has_limits)
        snprintf(out, 80, "none");
    else
        snprintf(out, 80, "%s..%s", num(t->min, a), num(t->max, b));
}

static void tag_cmp(struct chg *c, size_t ia, size_t ib)
{
    const struct vg_tag *a = &c->a->tags[ia], *b = &c->b->tags[ib];
    char x[160], y[160];
    ch_ref(c, "section", &a->section, &b->section);
    ch_ref(c, "plc", &a->plc, &b->plc);
    tag_address(a, x);
    tag_address(b, y);
    ch_raw(c, "address", x, y);
    ch_raw(c, "type", vg_dtype_name(a->type), vg_dtype_name(b->type));
    ch_raw(c, "word_order", a->word_order == VG_WO_LITTLE ? "little" : "big",
           b->word_order == VG_WO_LITTLE ? "little" : "big");
    tag_scaling(a, x);
    tag_scaling(b, y);
    /* Not through vg_cfg_excerpt(): the text is made here and may be long. */
    if (strcmp(x, y) != 0) {
        sep(c);
        put(c->o, "scaling %s -> %s", x, y);
    }
    ch_str(c, "unit", a->unit, b->unit);
    ch_num(c, "deadband", a->deadband, b->deadband);
    tag_archive(a, x);
    tag_archive(b, y);
    ch_raw(c, "archive", x, y);
    ch_ref(c, "archive_in", &a->archive_in, &b->archive_in);
    ch_bool(c, "writable", a->writable, b->writable);
    tag_limits(a, x);
    tag_limits(b, y);
    if (strcmp(x, y) != 0) {
        sep(c);
        put(c->o, "limits %s -> %s", x, y);
    }
    ch_text(c, "description", &a->description, &b->description);
}

static const char *alarm_name(const struct vg_project *p, size_t i)
{
    return p->alarms[i].name;
}

static void delay(unsigned ms, char out[40])
{
    char b[32];
    snprintf(out, 40, "%ss", num(ms / 1000.0, b));
}

static void alarm_cmp(struct chg *c, size_t ia, size_t ib)
{
    const struct vg_alarm *a = &c->a->alarms[ia], *b = &c->b->alarms[ib];
    char x[40], y[40];
    ch_ref(c, "tag", &a->tag, &b->tag);
    ch_raw(c, "kind", vg_alarm_kind_name(a->kind), vg_alarm_kind_name(b->kind));
    if (a->has_limit != b->has_limit || (a->has_limit && a->limit != b->limit)) {
        sep(c);
        put(c->o, "limit %s -> %s", a->has_limit ? num(a->limit, x) : "none",
            b->has_limit ? num(b->limit, y) : "none");
    }
    ch_num(c, "hysteresis", a->hysteresis, b->hysteresis);
    delay(a->on_delay_ms, x);
    delay(b->on_delay_ms, y);
    ch_raw(c, "on_delay", x, y);
    delay(a->off_delay_ms, x);
    delay(b->off_delay_ms, y);
    ch_raw(c, "off_delay", x, y);
    ch_raw(c, "priority", vg_priority_name(a->priority),
           vg_priority_name(b->priority));
    ch_raw(c, "section", a->section.name ? a->section.name : "(the tag's)",
           b->section.name ? b->section.name : "(the tag's)");
    ch_ref(c, "reference", &a->reference, &b->reference);
    ch_text(c, "message", &a->message, &b->message);
}

/* Screens: their own fields, then the objects. */
static const char *screen_name(const struct vg_project *p, size_t i)
{
    return p->screens[i].name;
}

static bool obj_eq(const struct vg_project *pa, const struct vg_screen_object *a,
                   const struct vg_project *pb, const struct vg_screen_object *b)
{
    if (a->type != b->type || a->x != b->x || a->y != b->y || a->w != b->w ||
        a->h != b->h || a->show_unit != b->show_unit ||
        a->has_range != b->has_range || a->vertical != b->vertical ||
        a->color != b->color || a->off_color != b->off_color ||
        a->has_fill != b->has_fill || a->has_stroke != b->has_stroke ||
        a->font_size != b->font_size || a->line_width != b->line_width ||
        a->n_points != b->n_points || a->action != b->action ||
        a->span_s != b->span_s || a->max_priority != b->max_priority)
        return false;
    if (a->has_range && (a->min != b->min || a->max != b->max))
        return false;
    if (a->has_fill && a->fill != b->fill)
        return false;
    if (a->has_stroke && a->stroke != b->stroke)
        return false;
    if (a->action == VG_ACTION_WRITE && a->write_value != b->write_value)
        return false;
    if (!str_eq(a->format, b->format) || !str_eq(a->tag.name, b->tag.name) ||
        !str_eq(a->target.name, b->target.name))
        return false;
    for (size_t i = 0; i < a->n_points; i++)
        if (a->points[i].x != b->points[i].x || a->points[i].y != b->points[i].y)
            return false;
    return refs_eq(a->tags, a->n_tags, b->tags, b->n_tags) &&
           refs_eq(a->sections, a->n_sections, b->sections, b->n_sections) &&
           text_eq(pa, &a->text, pb, &b->text);
}

/* What happened to a screen's objects. Objects have no names, so they are
 * matched by a longest common subsequence of equal objects (after taking
 * off the equal runs at both ends, which is all most edits need); between
 * two matched objects, old and new ones pair up by position as changed and
 * the rest of the longer side was added or removed. An object inserted at
 * the top is then one object added, not every object changed. The table
 * is bounded; past it the middle is paired by position only. */
#define LCS_MAX_CELLS (1u << 20)

struct objdiff {
    size_t added, removed;
    size_t changed[MAX_ITEMS]; /* new indexes of the first changed ones */
    size_t n_changed;
    bool oom;
};

static void gap(struct objdiff *od, size_t n_old, size_t n_new, size_t at_new)
{
    size_t paired = n_old < n_new ? n_old : n_new;
    for (size_t k = 0; k < paired; k++) {
        if (od->n_changed < MAX_ITEMS)
            od->changed[od->n_changed] = at_new + k;
        od->n_changed++;
    }
    od->added += n_new - paired;
    od->removed += n_old - paired;
}

static void obj_diff(const struct vg_project *pa, const struct vg_screen *a,
                     const struct vg_project *pb, const struct vg_screen *b,
                     struct objdiff *od)
{
    size_t na = a->n_objects, nb = b->n_objects;
    size_t pre = 0, suf = 0;
    while (pre < na && pre < nb &&
           obj_eq(pa, &a->objects[pre], pb, &b->objects[pre]))
        pre++;
    while (suf < na - pre && suf < nb - pre &&
           obj_eq(pa, &a->objects[na - 1 - suf], pb, &b->objects[nb - 1 - suf]))
        suf++;
    size_t ma = na - pre - suf, mb = nb - pre - suf;
    if (ma == 0 || mb == 0 || (ma + 1) > LCS_MAX_CELLS / (mb + 1)) {
        gap(od, ma, mb, pre);
        return;
    }
    /* Both sides have objects here: neither array is NULL. */
    const struct vg_screen_object *oa = a->objects + pre, *ob = b->objects + pre;
    /* L[i][j]: length of the longest common subsequence of oa[i..] and
     * ob[j..]; filled from the end so the walk below can go forward. */
    size_t w = mb + 1;
    uint32_t *L = calloc((ma + 1) * w, sizeof *L);
    if (L == NULL) {
        od->oom = true;
        return;
    }
    for (size_t i = ma; i-- > 0;)
        for (size_t j = mb; j-- > 0;) {
            if (obj_eq(pa, &oa[i], pb, &ob[j]))
                L[i * w + j] = L[(i + 1) * w + j + 1] + 1;
            else
                L[i * w + j] = L[(i + 1) * w + j] > L[i * w + j + 1]
                                   ? L[(i + 1) * w + j]
                                   : L[i * w + j + 1];
        }
    size_t i = 0, j = 0, gi = 0, gj = 0;
    while (i < ma && j < mb) {
        if (L[i * w + j] == L[(i + 1) * w + j + 1] + 1 &&
            obj_eq(pa, &oa[i], pb, &ob[j])) {
            gap(od, i - gi, j - gj, pre + gj);
            gi = ++i;
            gj = ++j;
        } else if (L[(i + 1) * w + j] >= L[i * w + j + 1]) {
            i++;
        } else {
            j++;
        }
    }
    gap(od, ma - gi, mb - gj, pre + gj);
    free(L);
}

static void screen_cmp(struct chg *c, size_t ia, size_t ib)
{
    const struct vg_screen *a = &c->a->screens[ia], *b = &c->b->screens[ib];
    char x[32], y[32];
    ch_text(c, "title", &a->title, &b->title);
    snprintf(x, sizeof x, "%dx%d", a->width, a->height);
    snprintf(y, sizeof y, "%dx%d", b->width, b->height);
    ch_raw(c, "size", x, y);
    snprintf(x, sizeof x, "#%06x", (unsigned)a->background & 0xffffffu);
    snprintf(y, sizeof y, "#%06x", (unsigned)b->background & 0xffffffu);
    ch_raw(c, "background", x, y);
    ch_ref(c, "section", &a->section, &b->section);

    struct objdiff od = {0};
    obj_diff(c->a, a, c->b, b, &od);
    if (od.oom) {
        c->o->oom = true;
        return;
    }
    if (od.added > 0) {
        sep(c);
        put(c->o, "%zu object%s added", od.added, od.added == 1 ? "" : "s");
    }
    if (od.removed > 0) {
        sep(c);
        put(c->o, "%zu object%s removed", od.removed,
            od.removed == 1 ? "" : "s");
    }
    if (od.n_changed == 0)
        return;
    /* Objects are numbered from 1 as they stand in the new file. */
    sep(c);
    put(c->o, "object%s", od.n_changed == 1 ? "" : "s");
    for (size_t k = 0; k < od.n_changed && k < MAX_ITEMS; k++)
        put(c->o, "%s%zu", k > 0 ? ", " : " ", od.changed[k] + 1);
    if (od.n_changed > MAX_ITEMS)
        put(c->o, " (and %zu more)", od.n_changed - MAX_ITEMS);
    put(c->o, " changed");
}

/* Stations. */
static const char *station_name(const struct vg_project *p, size_t i)
{
    return p->stations[i].name;
}

/* The names of the bits set in MASK. */
static size_t bit_names(unsigned mask, const char *const *names, size_t n,
                        const char **out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (mask & (1u << i))
            out[k++] = names[i];
    return k;
}

/* Key lists as "F1=overview" / "Alt+F4" texts, for ch_list. */
static char **nav_texts(const struct vg_station *s)
{
    char **v = calloc(s->n_nav_keys + 1, sizeof *v);
    if (v == NULL)
        return NULL;
    for (size_t i = 0; i < s->n_nav_keys; i++) {
        const char *k = s->nav_keys[i].key.text;
        const char *n = s->nav_keys[i].screen.name;
        size_t len = strlen(k ? k : "") + strlen(n ? n : "") + 2;
        v[i] = malloc(len);
        if (v[i] == NULL) {
            for (size_t j = 0; j < i; j++)
                free(v[j]);
            free(v);
            return NULL;
        }
        snprintf(v[i], len, "%s=%s", k ? k : "", n ? n : "");
    }
    return v;
}

static void free_texts(char **v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void station_cmp(struct chg *c, size_t ia, size_t ib)
{
    const struct vg_station *a = &c->a->stations[ia], *b = &c->b->stations[ib];
    char x[32], y[32];
    ch_text(c, "title", &a->title, &b->title);
    ch_ref(c, "start_screen", &a->start_screen, &b->start_screen);
    ch_ref(c, "language", &a->language, &b->language);
    const char *ta[8], *tb[8];
    size_t nta = bit_names(a->toolbars, vg_cfg_toolbar_names, 5, ta);
    size_t ntb = bit_names(b->toolbars, vg_cfg_toolbar_names, 5, tb);
    ch_list(c, "toolbars", ta, nta, tb, ntb);

    char **ka = nav_texts(a), **kb = nav_texts(b);
    if (ka == NULL || kb == NULL)
        c->o->oom = true;
    else
        ch_list(c, "navigation_keys", (const char **)ka, a->n_nav_keys,
                (const char **)kb, b->n_nav_keys);
    free_texts(ka, a->n_nav_keys);
    free_texts(kb, b->n_nav_keys);

    const char **ba = malloc((a->n_blocked_keys + 1) * sizeof *ba);
    const char **bb = malloc((b->n_blocked_keys + 1) * sizeof *bb);
    if (ba == NULL || bb == NULL) {
        c->o->oom = true;
    } else {
        for (size_t i = 0; i < a->n_blocked_keys; i++)
            ba[i] = a->blocked_keys[i].text;
        for (size_t i = 0; i < b->n_blocked_keys; i++)
            bb[i] = b->blocked_keys[i].text;
        ch_list(c, "blocked_keys", ba, a->n_blocked_keys, bb,
                b->n_blocked_keys);
    }
    free(ba);
    free(bb);

    snprintf(x, sizeof x, "%dx%d", a->width, a->height);
    snprintf(y, sizeof y, "%dx%d", b->width, b->height);
    ch_raw(c, "window", x, y);
    ch_bool(c, "fullscreen", a->fullscreen, b->fullscreen);
    ch_bool(c, "decorated", a->decorated, b->decorated);
    ch_bool(c, "always_on_top", a->always_on_top, b->always_on_top);
}

/* Roles: grants have no names either; each is compared with the one at the
 * same position, as a whole. */
static const char *role_name(const struct vg_project *p, size_t i)
{
    return p->roles[i].name;
}

static void grant_text(const struct vg_grant *g, struct out *o)
{
    const char *fn[16];
    char buf[64];
    size_t n = bit_names(g->functions, vg_cfg_function_names, 9, fn);
    for (size_t i = 0; i < n; i++)
        put(o, "%s%s", i ? ", " : "", fn[i]);
    if (n == 0)
        put(o, "nothing");
    if (g->n_sections == 0)
        put(o, " in every section");
    for (size_t i = 0; i < g->n_sections; i++)
        put(o, "%s%s", i ? ", " : " in ", vg_cfg_excerpt(g->sections[i].name, false, buf));
    if (g->n_stations == 0)
        put(o, " at every station");
    for (size_t i = 0; i < g->n_stations; i++)
        put(o, "%s%s", i ? ", " : " at ", vg_cfg_excerpt(g->stations[i].name, false, buf));
}

static bool grant_eq(const struct vg_grant *a, const struct vg_grant *b)
{
    return a->functions == b->functions &&
           refs_eq(a->sections, a->n_sections, b->sections, b->n_sections) &&
           refs_eq(a->stations, a->n_stations, b->stations, b->n_stations);
}

static void role_cmp(struct chg *c, size_t ia, size_t ib)
{
    const struct vg_role *a = &c->a->roles[ia], *b = &c->b->roles[ib];
    ch_text(c, "title", &a->title, &b->title);
    size_t n = a->n_grants > b->n_grants ? a->n_grants : b->n_grants;
    for (size_t i = 0; i < n; i++) {
        const struct vg_grant *ga = i < a->n_grants ? &a->grants[i] : NULL;
        const struct vg_grant *gb = i < b->n_grants ? &b->grants[i] : NULL;
        if (ga != NULL && gb != NULL && grant_eq(ga, gb))
            continue;
        sep(c);
        put(c->o, "grant %zu ", i + 1);
        if (ga != NULL)
            grant_text(ga, c->o);
        else
            put(c->o, "(none)");
        put(c->o, " -> ");
        if (gb != NULL)
            grant_text(gb, c->o);
        else
            put(c->o, "(none)");
    }
}

static const char *report_name(const struct vg_project *p, size_t i)
{
    return p->reports[i].name;
}

static const char *report_kind(enum vg_report_kind k)
{
    return k == VG_REPORT_TAGS ? "tags" : k == VG_REPORT_AUDIT ? "audit"
                                                               : "alarms";
}

static void report_cmp(struct chg *c, size_t ia, size_t ib)
{
    const struct vg_report *a = &c->a->reports[ia], *b = &c->b->reports[ib];
    ch_text(c, "title", &a->title, &b->title);
    ch_raw(c, "kind", report_kind(a->kind), report_kind(b->kind));
    ch_refs(c, "tags", a->tags, a->n_tags, b->tags, b->n_tags);
    ch_refs(c, "sections", a->sections, a->n_sections, b->sections,
            b->n_sections);
    char x[32], y[32];
    ch_raw(c, "range", duration((uint64_t)a->range_s * 1000, x),
           duration((uint64_t)b->range_s * 1000, y));
    ch_raw(c, "format", a->pdf ? "pdf" : "csv", b->pdf ? "pdf" : "csv");
}

static const char *archive_name(const struct vg_project *p, size_t i)
{
    return p->archives[i].name;
}

static const char *retention(uint64_t ms, char out[32])
{
    return ms == 0 ? "forever" : duration(ms, out);
}

static void archive_cmp(struct chg *c, size_t ia, size_t ib)
{
    const struct vg_archive_def *a = &c->a->archives[ia],
                                *b = &c->b->archives[ib];
    char x[32], y[32];
    ch_text(c, "title", &a->title, &b->title);
    ch_raw(c, "retention", retention(a->retention_ms, x),
           retention(b->retention_ms, y));
    ch_bool(c, "default", a->is_default, b->is_default);
}

#define COUNT_FN(field)                                                   \
    static size_t count_##field(const struct vg_project *p)               \
    {                                                                     \
        return p->n_##field;                                              \
    }
COUNT_FN(sections)
COUNT_FN(plcs)
COUNT_FN(tags)
COUNT_FN(alarms)
COUNT_FN(screens)
COUNT_FN(stations)
COUNT_FN(roles)
COUNT_FN(reports)
COUNT_FN(archives)

static const struct coll colls[] = {
    {"sections", count_sections, section_name, section_cmp},
    {"plcs", count_plcs, plc_name, plc_cmp},
    {"tags", count_tags, tag_name, tag_cmp},
    {"alarms", count_alarms, alarm_name, alarm_cmp},
    {"screens", count_screens, screen_name, screen_cmp},
    {"stations", count_stations, station_name, station_cmp},
    {"roles", count_roles, role_name, role_cmp},
    {"reports", count_reports, report_name, report_cmp},
    {"archives", count_archives, archive_name, archive_cmp},
};

/* ------------------------------------------------------------ matching */

struct key {
    const char *name;
    size_t i;
};

static int cmp_key(const void *x, const void *y)
{
    const struct key *a = x, *b = y;
    int d = strcmp(a->name, b->name);
    /* Equal names (a project with errors) keep their file order. */
    return d != 0 ? d : (a->i > b->i) - (a->i < b->i);
}

static struct key *sorted_keys(const struct coll *k, const struct vg_project *p,
                               size_t n)
{
    struct key *v = malloc((n + 1) * sizeof *v);
    if (v == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const char *s = k->name(p, i);
        v[i].name = s != NULL ? s : "";
        v[i].i = i;
    }
    qsort(v, n, sizeof *v, cmp_key);
    return v;
}

enum { ADDED, REMOVED, CHANGED };

struct entry {
    int what;
    size_t ia, ib;
};

/* Compare the pair, into O when given (else into a scratch buffer that only
 * tells whether anything differs). */
static bool pair_differs(const struct coll *k, const struct vg_project *a,
                         const struct vg_project *b, size_t ia, size_t ib,
                         struct out *o)
{
    struct out scratch = {0};
    struct chg c = {o != NULL ? o : &scratch, a, b, 0};
    k->cmp(&c, ia, ib);
    bool oom = scratch.oom;
    free(scratch.s);
    if (oom && o == NULL)
        return true; /* cannot tell: show it, the real run will say more */
    return c.n > 0;
}

static void diff_coll(const struct coll *k, const struct vg_project *a,
                      const struct vg_project *b, struct out *o)
{
    size_t na = k->count(a), nb = k->count(b);
    struct key *ka = sorted_keys(k, a, na), *kb = sorted_keys(k, b, nb);
    struct entry *e = malloc((na + nb + 1) * sizeof *e);
    if (ka == NULL || kb == NULL || e == NULL) {
        o->oom = true;
        goto done;
    }
    size_t n = 0, counts[3] = {0, 0, 0};
    size_t i = 0, j = 0;
    while (i < na || j < nb) {
        int d = i == na ? 1 : j == nb ? -1 : strcmp(ka[i].name, kb[j].name);
        if (d < 0) {
            e[n++] = (struct entry){REMOVED, ka[i++].i, 0};
        } else if (d > 0) {
            e[n++] = (struct entry){ADDED, 0, kb[j++].i};
        } else {
            if (pair_differs(k, a, b, ka[i].i, kb[j].i, NULL))
                e[n++] = (struct entry){CHANGED, ka[i].i, kb[j].i};
            i++;
            j++;
        }
    }
    for (size_t x = 0; x < n; x++)
        counts[e[x].what]++;
    if (n == 0)
        goto done;

    put(o, "%s:", k->label);
    static const char *const words[3] = {"added", "removed", "changed"};
    bool first = true;
    for (int w = 0; w < 3; w++) {
        if (counts[w] == 0)
            continue;
        put(o, "%s %zu %s", first ? "" : ",", counts[w], words[w]);
        first = false;
    }
    put(o, "\n");

    /* Added, then removed, then changed; each group in name order (the
     * entries are in name order already). */
    size_t shown = 0;
    char buf[64];
    for (int w = 0; w < 3; w++) {
        for (size_t x = 0; x < n && shown < MAX_LINES; x++) {
            if (e[x].what != w)
                continue;
            shown++;
            if (w == ADDED) {
                put(o, "  + %s\n", vg_cfg_excerpt(k->name(b, e[x].ib), false, buf));
            } else if (w == REMOVED) {
                put(o, "  - %s\n", vg_cfg_excerpt(k->name(a, e[x].ia), false, buf));
            } else {
                put(o, "  ~ %s: ", vg_cfg_excerpt(k->name(b, e[x].ib), false, buf));
                pair_differs(k, a, b, e[x].ia, e[x].ib, o);
                put(o, "\n");
            }
        }
    }
    if (n > shown)
        put(o, "  \xe2\x80\xa6 and %zu more\n", n - shown);
done:
    free(ka);
    free(kb);
    free(e);
}

int vg_project_diff(const struct vg_project *old_p,
                    const struct vg_project *new_p, char **text)
{
    struct out o = {0};
    *text = NULL;

    struct out line = {0};
    struct chg c = {&line, old_p, new_p, 0};
    cmp_project(&c);
    if (c.n > 0 && line.s != NULL)
        put(&o, "project: %s\n", line.s);
    o.oom |= line.oom;
    free(line.s);

    for (size_t k = 0; k < sizeof colls / sizeof colls[0]; k++)
        diff_coll(&colls[k], old_p, new_p, &o);

    if (!o.oom && o.len == 0)
        put(&o, "no differences\n");
    if (o.oom) {
        free(o.s);
        return VG_ENOMEM;
    }
    *text = o.s;
    return VG_OK;
}
