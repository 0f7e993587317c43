/* Validation of a parsed project: name indexes (sorted, so a 100 000-tag
 * project needs no quadratic pass), duplicate names, every reference, and
 * the rules of FORMAT.md that span rows, files or objects.
 *
 * The front ends already reported what is wrong inside one field; here each
 * rule looks only at values that parsed, and a reference that does not
 * resolve makes the rules that need its target skip quietly, so one mistake
 * yields one error and not a cascade. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Sorted views of one kind of object: ORDER holds indexes into the array,
 * sorted by name (then by index, so the first definition comes first). */
struct name_index {
    const char *base;   /* the array of structs; `char *name` is the first member */
    size_t stride;
    size_t n;
    int *order;
};

struct project_index {
    struct name_index sections, plcs, tags, alarms, screens, stations, roles,
        reports, archives;
};

static const char *name_at(const struct name_index *ix, size_t i)
{
    return *(char *const *)(ix->base + i * ix->stride);
}

static int order_cmp(const void *a, const void *b, void *ctx)
{
    const struct name_index *ix = ctx;
    int ia = *(const int *)a, ib = *(const int *)b;
    int c = strcmp(name_at(ix, (size_t)ia), name_at(ix, (size_t)ib));
    return c != 0 ? c : (ia > ib) - (ia < ib);
}

/* Build IX over N structs at BASE and report duplicate names (at the later
 * definition, pointing at the first). LOC_OF gives an object's position. */
static void index_build(struct name_index *ix, const void *base, size_t stride,
                        size_t n, const char *what, struct vg_diags *d,
                        struct vg_loc (*loc_of)(const void *obj))
{
    ix->base = base;
    ix->stride = stride;
    ix->n = n;
    ix->order = n ? malloc(n * sizeof *ix->order) : NULL;
    if (n && ix->order == NULL) {
        ix->n = 0;
        return;
    }
    for (size_t i = 0; i < n; i++)
        ix->order[i] = (int)i;
    if (n > 1)
        qsort_r(ix->order, n, sizeof *ix->order, order_cmp, ix);
    for (size_t k = 1; k < n; k++) {
        size_t a = (size_t)ix->order[k - 1], b = (size_t)ix->order[k];
        if (strcmp(name_at(ix, a), name_at(ix, b)) != 0)
            continue;
        /* Report against the first of a run of equal names. */
        size_t first = a;
        for (size_t j = k - 1; j > 0 && strcmp(name_at(ix, (size_t)ix->order[j - 1]),
                                               name_at(ix, b)) == 0; j--)
            first = (size_t)ix->order[j - 1];
        struct vg_loc fl = loc_of(ix->base + first * stride);
        vg_diags_add(d, loc_of(ix->base + b * stride),
                     "duplicate %s name '%s' (first defined at %s:%u:%u)", what,
                     name_at(ix, b), fl.file, fl.line, fl.col);
    }
}

static int index_find(const struct name_index *ix, const char *name)
{
    if (name == NULL)
        return -1;
    size_t lo = 0, hi = ix->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(name_at(ix, (size_t)ix->order[mid]), name);
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < ix->n && strcmp(name_at(ix, (size_t)ix->order[lo]), name) == 0)
        return ix->order[lo];
    return -1;
}

static const char *suggest_get(const void *ctx, size_t i)
{
    return name_at(ctx, i);
}

/* Resolve R against IX; on failure report "unknown WHAT 'x'" with a hint. */
static bool resolve(const struct name_index *ix, struct vg_ref *r,
                    const char *what, struct vg_diags *d)
{
    r->index = -1;
    if (r->name == NULL)
        return false;
    r->index = index_find(ix, r->name);
    if (r->index >= 0)
        return true;
    const char *hint = vg_cfg_suggest(d, r->name, ix->n, suggest_get, ix);
    if (hint != NULL)
        vg_diags_add(d, r->loc, "unknown %s '%s' (did you mean '%s'?)", what,
                     r->name, hint);
    else
        vg_diags_add(d, r->loc, "unknown %s '%s'", what, r->name);
    return false;
}

static struct project_index *pindex(const struct vg_project *p)
{
    return p->index;
}

int vg_project_find_tag(const struct vg_project *p, const char *name)
{
    return p->index ? index_find(&pindex(p)->tags, name) : -1;
}

int vg_project_find_section(const struct vg_project *p, const char *name)
{
    return p->index ? index_find(&pindex(p)->sections, name) : -1;
}

int vg_project_find_screen(const struct vg_project *p, const char *name)
{
    return p->index ? index_find(&pindex(p)->screens, name) : -1;
}

int vg_project_find_station(const struct vg_project *p, const char *name)
{
    return p->index ? index_find(&pindex(p)->stations, name) : -1;
}

int vg_project_find_archive(const struct vg_project *p, const char *name)
{
    return p->index ? index_find(&pindex(p)->archives, name) : -1;
}

const struct vg_archive_def *vg_tag_archive(const struct vg_project *p,
                                            const struct vg_tag *t)
{
    if (t->archive_in.name != NULL) {
        int a = t->archive_in.index >= 0
                    ? t->archive_in.index
                    : vg_project_find_archive(p, t->archive_in.name);
        return a >= 0 && (size_t)a < p->n_archives ? &p->archives[a] : NULL;
    }
    for (size_t i = 0; i < p->n_archives; i++)
        if (p->archives[i].is_default)
            return &p->archives[i];
    return NULL;
}

void vg_project_index_free(struct vg_project *p)
{
    struct project_index *ix = p->index;
    if (ix == NULL)
        return;
    free(ix->sections.order);
    free(ix->plcs.order);
    free(ix->tags.order);
    free(ix->alarms.order);
    free(ix->screens.order);
    free(ix->stations.order);
    free(ix->roles.order);
    free(ix->reports.order);
    free(ix->archives.order);
    free(ix);
    p->index = NULL;
}

/* Position getters for index_build. */
static struct vg_loc section_loc(const void *o) { return ((const struct vg_section *)o)->loc; }
static struct vg_loc plc_loc(const void *o) { return ((const struct vg_plc *)o)->loc; }
static struct vg_loc tag_loc(const void *o) { return ((const struct vg_tag *)o)->col[VG_TAG_NAME]; }
static struct vg_loc alarm_loc(const void *o) { return ((const struct vg_alarm *)o)->col[VG_ALARM_COL_NAME]; }
static struct vg_loc screen_loc(const void *o) { return ((const struct vg_screen *)o)->loc; }
static struct vg_loc station_loc(const void *o) { return ((const struct vg_station *)o)->loc; }
static struct vg_loc role_loc(const void *o) { return ((const struct vg_role *)o)->loc; }
static struct vg_loc report_loc(const void *o) { return ((const struct vg_report *)o)->loc; }
static struct vg_loc archive_loc(const void *o) { return ((const struct vg_archive_def *)o)->loc; }

/* ------------------------------------------------------------------ tags */

static bool is_bit_kind(enum vg_reg_kind k)
{
    return k == VG_REG_COIL || k == VG_REG_DISCRETE;
}

/* Returns false when the tag's type and address contradict each other:
 * rules that build on them (overlaps, alarms on the tag) then skip it. */
static bool check_tag(struct vg_project *p, struct project_index *ix,
                      struct vg_tag *t, struct vg_diags *d)
{
    resolve(&ix->sections, &t->section, "plant section", d);
    resolve(&ix->plcs, &t->plc, "PLC", d);
    if (t->archive_in.name != NULL) {
        if (t->archive == VG_ARCHIVE_NONE)
            vg_diags_add(d, t->col[VG_TAG_ARCHIVE_IN], "archive_in '%s' is "
                         "given but the tag is not archived (archive is none)",
                         t->archive_in.name);
        else
            resolve(&ix->archives, &t->archive_in, "archive", d);
    }
    bool is_bool = t->type == VG_DT_BOOL;
    if (is_bool != is_bit_kind(t->kind)) {
        vg_diags_add(d, t->col[VG_TAG_TYPE], "type %s does not fit address "
                     "kind %s (bool lives on co/di, numbers on hr/ir)",
                     vg_dtype_name(t->type), vg_reg_kind_name(t->kind));
        return false;
    }
    unsigned width = vg_dtype_width(t->type);
    if (t->offset + width - 1 > 65535)
        vg_diags_add(d, t->col[VG_TAG_ADDRESS], "%s needs %u registers from "
                     "%s:%u, past the last address 65535",
                     vg_dtype_name(t->type), width, vg_reg_kind_name(t->kind),
                     t->offset);
    bool read_only = t->kind == VG_REG_DISCRETE || t->kind == VG_REG_INPUT;
    if (t->writable && read_only)
        vg_diags_add(d, t->col[VG_TAG_WRITABLE], "tag on %s:%u cannot be "
                     "writable (discrete inputs and input registers are "
                     "read-only)", vg_reg_kind_name(t->kind), t->offset);
    if (is_bool) {
        if (t->scaled)
            vg_diags_add(d, t->col[VG_TAG_RAW_MIN], "a bool tag cannot be "
                         "scaled");
        if (t->has_limits)
            vg_diags_add(d, t->col[VG_TAG_MIN], "a bool tag has no write "
                         "limits");
        if (t->unit != NULL && t->unit[0] != '\0')
            vg_diags_add(d, t->col[VG_TAG_UNIT], "a bool tag has no unit");
        if (t->deadband != 0)
            vg_diags_add(d, t->col[VG_TAG_DEADBAND], "a bool tag has no "
                         "deadband");
        return true;
    }
    double tlo, thi;
    vg_dtype_range(t->type, &tlo, &thi);
    if (t->scaled) {
        if (t->raw_min == t->raw_max)
            vg_diags_add(d, t->col[VG_TAG_RAW_MAX], "raw_max must differ from "
                         "raw_min (%g)", t->raw_min);
        else if (t->raw_min < tlo || t->raw_min > thi || t->raw_max < tlo ||
                 t->raw_max > thi)
            vg_diags_add(d, t->col[VG_TAG_RAW_MIN], "raw range %g..%g does not "
                         "fit type %s (%g..%g)", t->raw_min, t->raw_max,
                         vg_dtype_name(t->type), tlo, thi);
        if (!(t->eng_min < t->eng_max)) {
            vg_diags_add(d, t->col[VG_TAG_ENG_MAX], "eng_max (%g) must be "
                         "greater than eng_min (%g)", t->eng_max, t->eng_min);
            return false;
        }
    }
    double lo, hi;
    vg_tag_range(t, &lo, &hi);
    if (t->has_limits) {
        if (!(t->min < t->max))
            vg_diags_add(d, t->col[VG_TAG_MAX], "write limit max (%g) must be "
                         "greater than min (%g)", t->max, t->min);
        else if (t->min < lo || t->max > hi)
            vg_diags_add(d, t->col[VG_TAG_MIN], "write limits %g..%g lie "
                         "outside the tag's range %g..%g", t->min, t->max, lo,
                         hi);
    } else if (t->writable && !read_only) {
        vg_diags_add(d, t->col[VG_TAG_WRITABLE], "writable tag '%s' needs "
                     "write limits (min and max)", t->name);
    }
    if (t->scaled && t->deadband >= hi - lo)
        vg_diags_add(d, t->col[VG_TAG_DEADBAND], "deadband %g is not smaller "
                     "than the range %g..%g", t->deadband, lo, hi);
    return true;
}

struct span {
    int plc;
    int kind;
    uint32_t start, end; /* inclusive */
    int tag;             /* -1: a PLC's fencing registers */
};

static int span_cmp(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    if (x->plc != y->plc)
        return x->plc < y->plc ? -1 : 1;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return (x->tag > y->tag) - (x->tag < y->tag);
}

#define FENCING_REGISTERS 4

/* Two tags on the same PLC and register kind may not share a register (or
 * bit), and no tag may use a PLC's fencing registers. Sort-and-sweep. */
static void check_overlaps(struct vg_project *p, const bool *tag_ok,
                           struct vg_diags *d)
{
    size_t n = 0;
    struct span *v = malloc((p->n_tags + p->n_plcs + 1) * sizeof *v);
    if (v == NULL)
        return;
    for (size_t i = 0; i < p->n_tags; i++) {
        const struct vg_tag *t = &p->tags[i];
        if (t->plc.index < 0 || !tag_ok[i])
            continue;
        unsigned w = is_bit_kind(t->kind) ? 1 : vg_dtype_width(t->type);
        v[n++] = (struct span){t->plc.index, t->kind, t->offset,
                               t->offset + w - 1, (int)i};
    }
    for (size_t i = 0; i < p->n_plcs; i++)
        if (p->plcs[i].fencing_register >= 0)
            v[n++] = (struct span){(int)i, VG_REG_HOLDING,
                                   (uint32_t)p->plcs[i].fencing_register,
                                   (uint32_t)p->plcs[i].fencing_register +
                                       FENCING_REGISTERS - 1, -1};
    if (n > 1)
        qsort(v, n, sizeof *v, span_cmp);
    size_t open = 0; /* span reaching furthest in the current group */
    for (size_t i = 1; i < n; i++) {
        if (v[i].plc != v[open].plc || v[i].kind != v[open].kind) {
            open = i;
            continue;
        }
        if (v[i].start <= v[open].end) {
            const struct span *a = &v[open], *b = &v[i];
            /* Report at the tag (the fencing block has no row). */
            const struct span *at = b->tag >= 0 ? b : a;
            const struct span *other = at == b ? a : b;
            const struct vg_tag *t = &p->tags[at->tag];
            if (other->tag < 0)
                vg_diags_add(d, t->col[VG_TAG_ADDRESS], "address %s:%u of tag "
                             "'%s' overlaps the fencing registers hr:%u..%u of "
                             "PLC '%s'", vg_reg_kind_name(t->kind), t->offset,
                             t->name, other->start, other->end,
                             p->plcs[other->plc].name);
            else
                vg_diags_add(d, t->col[VG_TAG_ADDRESS], "address %s:%u of tag "
                             "'%s' overlaps tag '%s' (%s:%u..%u) on PLC '%s'",
                             vg_reg_kind_name(t->kind), t->offset, t->name,
                             p->tags[other->tag].name,
                             vg_reg_kind_name(t->kind), other->start,
                             other->end, p->plcs[t->plc.index].name);
        }
        if (v[i].end > v[open].end)
            open = i;
    }
    free(v);
}

/* ---------------------------------------------------------------- alarms */

static bool is_analog(enum vg_alarm_kind k)
{
    return k != VG_ALARM_DIGITAL_ON && k != VG_ALARM_DIGITAL_OFF;
}

static void check_alarm(struct vg_project *p, struct project_index *ix,
                        const bool *tag_ok, struct vg_alarm *a,
                        struct vg_diags *d)
{
    if (a->section.name != NULL)
        resolve(&ix->sections, &a->section, "plant section", d);
    bool found = resolve(&ix->tags, &a->tag, "tag", d);
    if (a->kind == VG_ALARM_DEVIATION) {
        if (a->reference.name == NULL)
            vg_diags_add(d, a->col[VG_ALARM_COL_REFERENCE], "a deviation alarm "
                         "needs a 'reference' tag to compare with");
        else if (resolve(&ix->tags, &a->reference, "tag", d) &&
                 p->tags[a->reference.index].type == VG_DT_BOOL)
            vg_diags_add(d, a->reference.loc, "reference tag '%s' is bool; a "
                         "deviation needs a numeric tag", a->reference.name);
    } else if (a->reference.name != NULL) {
        vg_diags_add(d, a->reference.loc, "'reference' belongs only to "
                     "deviation alarms");
    }
    if (!is_analog(a->kind) && a->has_limit)
        vg_diags_add(d, a->col[VG_ALARM_COL_LIMIT], "a %s alarm has no limit",
                     vg_alarm_kind_name(a->kind));
    if (is_analog(a->kind) && !a->has_limit)
        vg_diags_add(d, a->col[VG_ALARM_COL_LIMIT], "a %s alarm needs a limit",
                     vg_alarm_kind_name(a->kind));
    if (!found || !tag_ok[a->tag.index])
        return;
    const struct vg_tag *t = &p->tags[a->tag.index];
    bool is_bool = t->type == VG_DT_BOOL;
    if (is_analog(a->kind) && is_bool) {
        vg_diags_add(d, a->col[VG_ALARM_COL_KIND], "a %s alarm needs a numeric "
                     "tag, but '%s' is bool", vg_alarm_kind_name(a->kind),
                     t->name);
        return;
    }
    if (!is_analog(a->kind) && !is_bool) {
        vg_diags_add(d, a->col[VG_ALARM_COL_KIND], "a %s alarm needs a bool "
                     "tag, but '%s' is %s", vg_alarm_kind_name(a->kind),
                     t->name, vg_dtype_name(t->type));
        return;
    }
    if (!is_analog(a->kind) || !a->has_limit)
        return;
    double lo, hi;
    vg_tag_range(t, &lo, &hi);
    if (a->kind == VG_ALARM_DEVIATION) {
        if (a->limit <= 0 || a->limit >= hi - lo)
            vg_diags_add(d, a->col[VG_ALARM_COL_LIMIT], "deviation limit %g "
                         "must be above 0 and below the tag's span %g",
                         a->limit, hi - lo);
    } else if (a->limit < lo || a->limit > hi) {
        vg_diags_add(d, a->col[VG_ALARM_COL_LIMIT], "limit %g lies outside "
                     "the range of tag '%s' (%g..%g)", a->limit, t->name, lo,
                     hi);
    }
    if (a->hysteresis >= hi - lo)
        vg_diags_add(d, a->col[VG_ALARM_COL_HYSTERESIS], "hysteresis %g is not "
                     "smaller than the range of tag '%s' (%g..%g)",
                     a->hysteresis, t->name, lo, hi);
}

static int alarm_by_tag_cmp(const void *a, const void *b, void *ctx)
{
    const struct vg_project *p = ctx;
    int ia = *(const int *)a, ib = *(const int *)b;
    int ta = p->alarms[ia].tag.index, tb = p->alarms[ib].tag.index;
    if (ta != tb)
        return ta < tb ? -1 : 1;
    return (ia > ib) - (ia < ib);
}

/* On one tag: high_high above high, low_low below low, low below high. */
static void check_alarm_order(struct vg_project *p, struct vg_diags *d)
{
    int *v = malloc((p->n_alarms + 1) * sizeof *v);
    if (v == NULL)
        return;
    size_t n = 0;
    for (size_t i = 0; i < p->n_alarms; i++)
        if (p->alarms[i].tag.index >= 0 && p->alarms[i].has_limit &&
            p->alarms[i].kind <= VG_ALARM_LOW_LOW)
            v[n++] = (int)i;
    if (n > 1)
        qsort_r(v, n, sizeof *v, alarm_by_tag_cmp, p);
    /* Pairs (upper kind, lower kind): the upper's limit must exceed the
     * lower's. */
    static const int pairs[][2] = {
        {VG_ALARM_HIGH_HIGH, VG_ALARM_HIGH},
        {VG_ALARM_LOW, VG_ALARM_LOW_LOW},
        {VG_ALARM_HIGH, VG_ALARM_LOW},
    };
    for (size_t g = 0; g < n;) {
        size_t e = g;
        while (e < n && p->alarms[v[e]].tag.index == p->alarms[v[g]].tag.index)
            e++;
        for (size_t i = g; i < e; i++)
            for (size_t j = g; j < e; j++) {
                const struct vg_alarm *up = &p->alarms[v[i]];
                const struct vg_alarm *low = &p->alarms[v[j]];
                for (size_t k = 0; k < 3; k++) {
                    if ((int)up->kind != pairs[k][0] ||
                        (int)low->kind != pairs[k][1] || up->limit > low->limit)
                        continue;
                    /* Report at the later row of the two. */
                    const struct vg_alarm *at = v[i] > v[j] ? up : low;
                    vg_diags_add(d, at->col[VG_ALARM_COL_LIMIT], "%s limit %g "
                                 "of '%s' must lie above %s limit %g of '%s' "
                                 "(same tag '%s')",
                                 vg_alarm_kind_name(up->kind), up->limit,
                                 up->name, vg_alarm_kind_name(low->kind),
                                 low->limit, low->name, up->tag.name);
                }
            }
        g = e;
    }
    free(v);
}

/* ---------------------------------------------------------------- screens */

static const struct vg_tag *obj_tag(struct vg_project *p,
                                    struct project_index *ix, struct vg_ref *r,
                                    struct vg_diags *d)
{
    if (r->name == NULL || !resolve(&ix->tags, r, "tag", d))
        return NULL;
    return &p->tags[r->index];
}

static void need_numeric(const struct vg_tag *t, const struct vg_ref *r,
                         const char *what, struct vg_diags *d)
{
    if (t != NULL && t->type == VG_DT_BOOL)
        vg_diags_add(d, r->loc, "a %s needs a numeric tag, but '%s' is bool",
                     what, t->name);
}

static void check_object(struct vg_project *p, struct project_index *ix,
                         struct vg_screen *s, struct vg_screen_object *o,
                         struct vg_diags *d)
{
    const char *what = vg_obj_type_name(o->type);
    bool boxed = o->type != VG_OBJ_LINE && o->type != VG_OBJ_POLYLINE &&
                 o->type != VG_OBJ_PIPE;
    if (boxed && (o->x < 0 || o->y < 0 || o->x + o->w > s->width ||
                  o->y + o->h > s->height))
        vg_diags_add(d, o->loc, "%s at [%d, %d] size [%d, %d] does not fit "
                     "on the %dx%d screen", what, o->x, o->y, o->w, o->h,
                     s->width, s->height);
    for (size_t i = 0; i < o->n_points; i++)
        if (o->points[i].x < 0 || o->points[i].y < 0 ||
            o->points[i].x > s->width || o->points[i].y > s->height) {
            vg_diags_add(d, o->loc, "%s point [%d, %d] lies outside the %dx%d "
                         "screen", what, o->points[i].x, o->points[i].y,
                         s->width, s->height);
            break;
        }
    const struct vg_tag *t = obj_tag(p, ix, &o->tag, d);
    switch (o->type) {
    case VG_OBJ_BAR:
    case VG_OBJ_TANK:
        need_numeric(t, &o->tag, what, d);
        break;
    case VG_OBJ_LAMP:
    case VG_OBJ_PIPE:
        if (t != NULL && t->type != VG_DT_BOOL)
            vg_diags_add(d, o->tag.loc, "a %s shows a bool tag, but '%s' is %s",
                         what, t->name, vg_dtype_name(t->type));
        break;
    case VG_OBJ_SETPOINT:
        need_numeric(t, &o->tag, what, d);
        if (t != NULL && !t->writable)
            vg_diags_add(d, o->tag.loc, "a setpoint needs a writable tag, but "
                         "'%s' is not writable", t->name);
        break;
    case VG_OBJ_BUTTON:
        if (o->action == VG_ACTION_GOTO && o->target.name != NULL)
            resolve(&ix->screens, &o->target, "screen", d);
        if (o->action == VG_ACTION_WRITE && t != NULL) {
            if (!t->writable)
                vg_diags_add(d, o->tag.loc, "the button writes tag '%s', which "
                             "is not writable", t->name);
            else if (t->type == VG_DT_BOOL &&
                     o->write_value != 0 && o->write_value != 1)
                vg_diags_add(d, o->tag.loc, "the button writes %g to bool tag "
                             "'%s' (0 or 1 only)", o->write_value, t->name);
            else if (t->type != VG_DT_BOOL && t->has_limits &&
                     (o->write_value < t->min || o->write_value > t->max))
                vg_diags_add(d, o->tag.loc, "the button writes %g to '%s', "
                             "outside its limits %g..%g", o->write_value,
                             t->name, t->min, t->max);
        }
        break;
    case VG_OBJ_TREND:
        for (size_t i = 0; i < o->n_tags; i++) {
            const struct vg_tag *tt = obj_tag(p, ix, &o->tags[i], d);
            need_numeric(tt, &o->tags[i], what, d);
        }
        break;
    case VG_OBJ_ALARM_LIST:
        for (size_t i = 0; i < o->n_sections; i++)
            resolve(&ix->sections, &o->sections[i], "plant section", d);
        break;
    default:
        break;
    }
}

/* --------------------------------------------------------------- stations */

static bool same_key(const struct vg_key *a, const struct vg_key *b)
{
    return a->key != NULL && b->key != NULL && a->mods == b->mods &&
           strcmp(a->key, b->key) == 0;
}

static void check_station(struct vg_project *p, struct project_index *ix,
                          struct vg_station *s, struct vg_diags *d)
{
    if (s->start_screen.name != NULL)
        resolve(&ix->screens, &s->start_screen, "screen", d);
    if (s->language.name != NULL && p->n_languages > 0) {
        s->language.index = vg_project_language(p, s->language.name);
        if (s->language.index < 0)
            vg_diags_add(d, s->language.loc, "language '%s' is not one of the "
                         "project's languages", s->language.name);
    }
    for (size_t i = 0; i < s->n_nav_keys; i++) {
        struct vg_nav_key *k = &s->nav_keys[i];
        if (k->screen.name != NULL)
            resolve(&ix->screens, &k->screen, "screen", d);
        for (size_t j = 0; j < i; j++)
            if (same_key(&k->key, &s->nav_keys[j].key))
                vg_diags_add(d, k->key.loc, "key %s is bound twice (also at "
                             "line %u)", k->key.text,
                             s->nav_keys[j].key.loc.line);
        for (size_t j = 0; j < s->n_blocked_keys; j++)
            if (same_key(&k->key, &s->blocked_keys[j]))
                vg_diags_add(d, k->key.loc, "navigation key %s is also a "
                             "blocked key (line %u)", k->key.text,
                             s->blocked_keys[j].loc.line);
    }
    for (size_t i = 0; i < s->n_blocked_keys; i++)
        for (size_t j = 0; j < i; j++)
            if (same_key(&s->blocked_keys[i], &s->blocked_keys[j]))
                vg_diags_add(d, s->blocked_keys[i].loc, "key %s is blocked "
                             "twice", s->blocked_keys[i].text);
}

/* ----------------------------------------------------------------- driver */

void vg_cfg_validate(struct vg_project *p, struct vg_diags *d)
{
    vg_project_index_free(p);
    struct project_index *ix = calloc(1, sizeof *ix);
    if (ix == NULL)
        return;
    p->index = ix;
    index_build(&ix->sections, p->sections, sizeof *p->sections,
                p->n_sections, "plant section", d, section_loc);
    index_build(&ix->plcs, p->plcs, sizeof *p->plcs, p->n_plcs, "PLC", d,
                plc_loc);
    index_build(&ix->tags, p->tags, sizeof *p->tags, p->n_tags, "tag", d,
                tag_loc);
    index_build(&ix->alarms, p->alarms, sizeof *p->alarms, p->n_alarms,
                "alarm", d, alarm_loc);
    index_build(&ix->screens, p->screens, sizeof *p->screens, p->n_screens,
                "screen", d, screen_loc);
    index_build(&ix->stations, p->stations, sizeof *p->stations,
                p->n_stations, "station", d, station_loc);
    index_build(&ix->roles, p->roles, sizeof *p->roles, p->n_roles, "role", d,
                role_loc);
    index_build(&ix->reports, p->reports, sizeof *p->reports, p->n_reports,
                "report", d, report_loc);
    index_build(&ix->archives, p->archives, sizeof *p->archives,
                p->n_archives, "archive", d, archive_loc);
    for (size_t i = 0, first = SIZE_MAX; i < p->n_archives; i++) {
        if (!p->archives[i].is_default)
            continue;
        if (first == SIZE_MAX)
            first = i;
        else
            vg_diags_add(d, p->archives[i].loc, "archive '%s' is a second "
                         "default archive (the first is '%s'); at most one "
                         "holds the tags that name none", p->archives[i].name,
                         p->archives[first].name);
    }

    for (size_t i = 0; i < p->n_plcs; i++)
        for (size_t j = 0; j < i; j++) {
            const struct vg_plc *a = &p->plcs[i], *b = &p->plcs[j];
            if (a->host && b->host && strcmp(a->host, b->host) == 0 &&
                a->port == b->port && a->unit_id == b->unit_id)
                vg_diags_add(d, a->loc, "PLC '%s' has the same host, port and "
                             "unit id as PLC '%s'", a->name, b->name);
        }
    bool *tag_ok = calloc(p->n_tags + 1, sizeof *tag_ok);
    if (tag_ok == NULL)
        return;
    for (size_t i = 0; i < p->n_tags; i++)
        tag_ok[i] = check_tag(p, ix, &p->tags[i], d);
    check_overlaps(p, tag_ok, d);
    for (size_t i = 0; i < p->n_alarms; i++)
        check_alarm(p, ix, tag_ok, &p->alarms[i], d);
    free(tag_ok);
    check_alarm_order(p, d);
    for (size_t i = 0; i < p->n_screens; i++) {
        struct vg_screen *s = &p->screens[i];
        if (s->section.name != NULL)
            resolve(&ix->sections, &s->section, "plant section", d);
        for (size_t j = 0; j < s->n_objects; j++)
            check_object(p, ix, s, &s->objects[j], d);
    }
    for (size_t i = 0; i < p->n_stations; i++)
        check_station(p, ix, &p->stations[i], d);
    for (size_t i = 0; i < p->n_roles; i++)
        for (size_t j = 0; j < p->roles[i].n_grants; j++) {
            struct vg_grant *g = &p->roles[i].grants[j];
            for (size_t k = 0; k < g->n_sections; k++)
                resolve(&ix->sections, &g->sections[k], "plant section", d);
            for (size_t k = 0; k < g->n_stations; k++)
                resolve(&ix->stations, &g->stations[k], "station", d);
        }
    for (size_t i = 0; i < p->n_reports; i++) {
        struct vg_report *r = &p->reports[i];
        for (size_t k = 0; k < r->n_tags; k++) {
            const struct vg_tag *t = obj_tag(p, ix, &r->tags[k], d);
            need_numeric(t, &r->tags[k], "tags report", d);
        }
        for (size_t k = 0; k < r->n_sections; k++)
            resolve(&ix->sections, &r->sections[k], "plant section", d);
    }
}
