/* vg_project_parse: runs the front ends over the files of a project in the
 * order the references need (project.yaml first: it defines the languages
 * every other file's texts are checked against), then validation; and the
 * teardown of the model. */
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static const struct vg_project_file *find_file(const struct vg_project_files *fs,
                                               const char *path)
{
    for (size_t i = 0; i < fs->n; i++)
        if (strcmp(fs->v[i].path, path) == 0)
            return &fs->v[i];
    return NULL;
}

struct vg_project *vg_project_parse(const struct vg_project_files *fs,
                                    struct vg_diags *d)
{
    struct vg_project *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    const struct vg_project_file *f = find_file(fs, "project.yaml");
    if (f == NULL)
        vg_diags_add(d, vg_cfg_loc(p, "project.yaml", 0, 0),
                     "missing project.yaml (the project's main file)");
    else
        vg_cfg_yaml_project(p, f, d);
    if ((f = find_file(fs, "tags.csv")) != NULL)
        vg_cfg_csv_tags(p, f, d);
    if ((f = find_file(fs, "alarms.csv")) != NULL)
        vg_cfg_csv_alarms(p, f, d);
    for (size_t i = 0; i < fs->n; i++) {
        const char *path = fs->v[i].path;
        if (strcmp(path, "project.yaml") == 0 || strcmp(path, "tags.csv") == 0 ||
            strcmp(path, "alarms.csv") == 0)
            continue;
        if (starts_with(path, "screens/") && ends_with(path, ".yaml") &&
            strchr(path + 8, '/') == NULL)
            vg_cfg_yaml_screen(p, &fs->v[i], d);
        else
            vg_diags_add(d, vg_cfg_loc(p, path, 0, 0), "unexpected file in a "
                         "project (expected project.yaml, tags.csv, alarms.csv "
                         "and screens/NAME.yaml)");
    }
    vg_cfg_validate(p, d);
    vg_diags_sort(d);
    return p;
}

static void key_free(struct vg_key *k)
{
    free(k->text);
    free(k->key);
}

static void refs_free(struct vg_ref *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        vg_cfg_ref_free(&v[i]);
    free(v);
}

void vg_project_free(struct vg_project *p)
{
    if (p == NULL)
        return;
    free(p->name);
    free(p->label);
    vg_cfg_text_free(&p->title);
    for (size_t i = 0; i < p->n_languages; i++)
        free(p->languages[i]);
    for (size_t i = 0; i < p->n_sections; i++) {
        free(p->sections[i].name);
        vg_cfg_text_free(&p->sections[i].title);
    }
    free(p->sections);
    for (size_t i = 0; i < p->n_plcs; i++) {
        free(p->plcs[i].name);
        free(p->plcs[i].host);
    }
    free(p->plcs);
    for (size_t i = 0; i < p->n_tags; i++) {
        struct vg_tag *t = &p->tags[i];
        free(t->name);
        vg_cfg_ref_free(&t->section);
        vg_cfg_ref_free(&t->plc);
        vg_cfg_ref_free(&t->archive_in);
        free(t->unit);
        vg_cfg_text_free(&t->description);
    }
    free(p->tags);
    for (size_t i = 0; i < p->n_alarms; i++) {
        struct vg_alarm *a = &p->alarms[i];
        free(a->name);
        vg_cfg_ref_free(&a->tag);
        vg_cfg_ref_free(&a->section);
        vg_cfg_ref_free(&a->reference);
        vg_cfg_text_free(&a->message);
    }
    free(p->alarms);
    for (size_t i = 0; i < p->n_screens; i++) {
        struct vg_screen *s = &p->screens[i];
        free(s->name);
        vg_cfg_text_free(&s->title);
        vg_cfg_ref_free(&s->section);
        for (size_t j = 0; j < s->n_objects; j++) {
            struct vg_screen_object *o = &s->objects[j];
            vg_cfg_text_free(&o->text);
            vg_cfg_ref_free(&o->tag);
            free(o->format);
            free(o->points);
            vg_cfg_ref_free(&o->target);
            refs_free(o->tags, o->n_tags);
            refs_free(o->sections, o->n_sections);
        }
        free(s->objects);
    }
    free(p->screens);
    for (size_t i = 0; i < p->n_stations; i++) {
        struct vg_station *s = &p->stations[i];
        free(s->name);
        vg_cfg_text_free(&s->title);
        vg_cfg_ref_free(&s->start_screen);
        vg_cfg_ref_free(&s->language);
        for (size_t j = 0; j < s->n_nav_keys; j++) {
            key_free(&s->nav_keys[j].key);
            vg_cfg_ref_free(&s->nav_keys[j].screen);
        }
        free(s->nav_keys);
        for (size_t j = 0; j < s->n_blocked_keys; j++)
            key_free(&s->blocked_keys[j]);
        free(s->blocked_keys);
    }
    free(p->stations);
    for (size_t i = 0; i < p->n_roles; i++) {
        struct vg_role *r = &p->roles[i];
        free(r->name);
        vg_cfg_text_free(&r->title);
        for (size_t j = 0; j < r->n_grants; j++) {
            refs_free(r->grants[j].sections, r->grants[j].n_sections);
            refs_free(r->grants[j].stations, r->grants[j].n_stations);
        }
        free(r->grants);
    }
    free(p->roles);
    for (size_t i = 0; i < p->n_reports; i++) {
        struct vg_report *r = &p->reports[i];
        free(r->name);
        vg_cfg_text_free(&r->title);
        refs_free(r->tags, r->n_tags);
        refs_free(r->sections, r->n_sections);
    }
    free(p->reports);
    for (size_t i = 0; i < p->n_archives; i++) {
        free(p->archives[i].name);
        vg_cfg_text_free(&p->archives[i].title);
    }
    free(p->archives);
    vg_project_index_free(p);
    for (size_t i = 0; i < p->n_file_names; i++)
        free(p->file_names[i]);
    free(p->file_names);
    free(p);
}

int vg_project_language(const struct vg_project *p, const char *code)
{
    for (size_t i = 0; i < p->n_languages; i++)
        if (strcmp(p->languages[i], code) == 0)
            return (int)i;
    return -1;
}

const char *const vg_cfg_toolbar_names[] = {"navigation", "alarms", "trends",
                                            "reports", "status", NULL};

const char *const vg_cfg_function_names[] = {"view", "operate",
    "write_setpoint", "acknowledge", "shelve", "load_project", "manage_users",
    "manage_cluster", "reports", NULL};

const char *vg_reg_kind_name(enum vg_reg_kind k)
{
    static const char *const names[] = {"co", "di", "hr", "ir"};
    return (unsigned)k < 4 ? names[k] : "?";
}

const char *vg_dtype_name(enum vg_dtype t)
{
    static const char *const names[] = {"bool", "int16", "uint16", "int32",
                                        "uint32", "float32"};
    return (unsigned)t < 6 ? names[t] : "?";
}

unsigned vg_dtype_width(enum vg_dtype t)
{
    return t == VG_DT_INT32 || t == VG_DT_UINT32 || t == VG_DT_FLOAT32 ? 2 : 1;
}

void vg_dtype_range(enum vg_dtype t, double *lo, double *hi)
{
    switch (t) {
    case VG_DT_BOOL: *lo = 0; *hi = 1; break;
    case VG_DT_INT16: *lo = -32768; *hi = 32767; break;
    case VG_DT_UINT16: *lo = 0; *hi = 65535; break;
    case VG_DT_INT32: *lo = -2147483648.0; *hi = 2147483647.0; break;
    case VG_DT_UINT32: *lo = 0; *hi = 4294967295.0; break;
    default: *lo = -FLT_MAX; *hi = FLT_MAX; break;
    }
}

void vg_tag_range(const struct vg_tag *t, double *lo, double *hi)
{
    if (t->scaled) {
        *lo = t->eng_min;
        *hi = t->eng_max;
    } else {
        vg_dtype_range(t->type, lo, hi);
    }
}

const char *vg_alarm_kind_name(enum vg_alarm_kind k)
{
    static const char *const names[] = {"high", "high_high", "low", "low_low",
        "digital_on", "digital_off", "deviation"};
    return (unsigned)k < 7 ? names[k] : "?";
}

const char *vg_priority_name(enum vg_priority p)
{
    static const char *const names[] = {"?", "critical", "high", "medium",
                                        "low"};
    return (unsigned)p <= 4 ? names[p] : "?";
}

const char *vg_obj_type_name(enum vg_obj_type t)
{
    static const char *const names[] = {"text", "value", "bar", "lamp",
        "button", "setpoint", "trend", "alarm_list", "rect", "line",
        "polyline", "pipe", "tank"};
    return (unsigned)t < VG_OBJ_TYPE_COUNT ? names[t] : "?";
}

bool vg_value_format_parse(const char *f, size_t *start, size_t *end,
                           char *letter)
{
    int n = 0;

    if (f == NULL || strlen(f) > 32) {
        return false;
    }
    for (size_t i = 0; f[i] != '\0'; i++) {
        size_t at;
        if (f[i] != '%') {
            continue;
        }
        at = i++;
        if (f[i] == '%') {
            continue;
        }
        while (f[i] != '\0' && strchr("-+ 0#", f[i]) != NULL) {
            i++;
        }
        for (int k = 0; k < 2 && f[i] >= '0' && f[i] <= '9'; k++) {
            i++;
        }
        if (f[i] == '.') {
            i++;
            for (int k = 0; k < 2 && f[i] >= '0' && f[i] <= '9'; k++) {
                i++;
            }
        }
        if (f[i] == '\0' || strchr("fegd", f[i]) == NULL) {
            return false;
        }
        if (start != NULL) {
            *start = at;
        }
        if (end != NULL) {
            *end = i + 1;
        }
        if (letter != NULL) {
            *letter = f[i];
        }
        n++;
    }
    return n == 1;
}
