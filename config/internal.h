/* Private to config/: helpers shared by the YAML front end (yaml.c), the CSV
 * front end (csv.c), validation (validate.c) and the diff (diff.c). */
#ifndef VG_CONFIG_INTERNAL_H
#define VG_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "project.h"

/* Growable array append: *V has *N elements; makes room for one more and
 * returns a pointer to it, zeroed. NULL when out of memory. */
void *vg_cfg_push(void *v_ptr, size_t *n, size_t elem_size);

/* strdup / strndup that never return NULL silently: NULL only on ENOMEM. */
char *vg_cfg_strdup(const char *s);
char *vg_cfg_strndup(const char *s, size_t len);

/* Intern PATH in P->file_names and return the stored copy (for vg_loc.file). */
const char *vg_cfg_file(struct vg_project *p, const char *path);

/* A location in FILE (interned through vg_cfg_file). */
struct vg_loc vg_cfg_loc(struct vg_project *p, const char *file, unsigned line,
                         unsigned col);

/* Names: 1..64 characters of [A-Za-z0-9_.-], starting with a letter. */
#define VG_NAME_MAX 64
bool vg_cfg_name_ok(const char *s);

/* Strict number parsing of a whole string (leading/trailing blanks allowed):
 * no trailing garbage, finite, in range. Return false on any problem. */
bool vg_cfg_parse_double(const char *s, double *out);
bool vg_cfg_parse_long(const char *s, long min, long max, long *out);

/* Durations: a number of seconds ("2.5") or a number with a unit: ms, s, m,
 * h, d ("500ms", "10s", "1.5h"). Result in milliseconds. */
bool vg_cfg_parse_duration_ms(const char *s, uint64_t *out_ms);

/* "#rrggbb" -> 0xRRGGBB. */
bool vg_cfg_parse_color(const char *s, uint32_t *out);

/* yes/no, true/false, 1/0, y/n (case-insensitive); "" is false. */
bool vg_cfg_parse_bool(const char *s, bool *out);

/* True when S (LEN bytes) is valid UTF-8; otherwise *BAD_OFFSET is the offset
 * of the first invalid byte. */
bool vg_cfg_utf8_ok(const char *s, size_t len, size_t *bad_offset);

/* Levenshtein-nearest of NAME among N candidates got through GET(ctx, i):
 * the best candidate within distance 2 (or a third of the length), else
 * NULL. Used for "did you mean …?" hints; once D's hint budget is spent
 * (see struct vg_diags) it returns NULL without looking. */
const char *vg_cfg_suggest(struct vg_diags *d, const char *name, size_t n,
                           const char *(*get)(const void *ctx, size_t i),
                           const void *ctx);

/* The vocabularies of project.yaml, NULL-terminated; entry i is the name of
 * bit 1 << i of enum vg_toolbar / enum vg_function. */
extern const char *const vg_cfg_toolbar_names[];
extern const char *const vg_cfg_function_names[];

/* S for a message: at most about 40 bytes without cutting a UTF-8
 * sequence, control characters as '?', "…" when cut, in single quotes if
 * QUOTE; NULL gives "(none)". Returns OUT or a static string. */
const char *vg_cfg_excerpt(const char *s, bool quote, char out[64]);

/* Free the contents of a text / reference (not the struct itself). */
void vg_cfg_text_free(struct vg_text *t);
void vg_cfg_ref_free(struct vg_ref *r);

/* Front ends. Each appends to P's arrays and reports problems to D; they
 * never stop at the first error. The CSV parsers need p->languages (parsed
 * from project.yaml first); with no languages known they skip the
 * translated columns' language checks. */
void vg_cfg_yaml_project(struct vg_project *p, const struct vg_project_file *f,
                         struct vg_diags *d);
void vg_cfg_yaml_screen(struct vg_project *p, const struct vg_project_file *f,
                        struct vg_diags *d);
void vg_cfg_csv_tags(struct vg_project *p, const struct vg_project_file *f,
                     struct vg_diags *d);
void vg_cfg_csv_alarms(struct vg_project *p, const struct vg_project_file *f,
                       struct vg_diags *d);

/* Cross-checks over the whole model: resolves every vg_ref and applies the
 * rules of FORMAT.md "What validation checks". Builds p->index. */
void vg_cfg_validate(struct vg_project *p, struct vg_diags *d);
void vg_project_index_free(struct vg_project *p);

#endif /* VG_CONFIG_INTERNAL_H */
