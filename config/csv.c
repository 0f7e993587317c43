/* The CSV front end: tags.csv and alarms.csv into p->tags and p->alarms
 * (FORMAT.md has the format; libcsv does the quoting).
 *
 * Happy path: skip a UTF-8 byte order mark, then feed the file to libcsv one
 * byte at a time. Feeding single bytes costs a function call per byte but
 * tells us exactly where every field begins: the first byte that is not a
 * blank after the previous field ended (the opening quote of a quoted field)
 * is remembered as its line and column, and libcsv's field callback copies
 * the field and that position into the current row. At the row callback the
 * first row becomes the header (columns by name, any order), every later row
 * is checked field by field and appended to the project. Checked here: each
 * field's own syntax and range, and the pairings that make a row's optional
 * fields meaningful (scaling all four or none, min with max, word_order only
 * for 32-bit types). References (section, PLC, tag) are only recorded:
 * validate.c resolves them and applies the rules across fields, rows and
 * files (type and register kind, ranges and limits, duplicates, overlaps).
 *
 * Lines that begin with '#' outside a row are comments and never reach
 * libcsv; empty lines are ignored by libcsv itself.
 *
 * Failure modes, each reported with file, line and column, after which
 * parsing goes on:
 *   - Invalid UTF-8 or a NUL byte: reported at the byte (once per line); the
 *     row it is in is dropped. The next bad byte is found ahead of time with
 *     vg_cfg_utf8_ok, so the check costs nothing per byte.
 *   - Malformed quoting (libcsv's strict mode: a quote inside an unquoted
 *     field, text after a closing quote): reported at the field; the row is
 *     dropped, the rest of that line skipped, and a fresh parser starts on
 *     the next line.
 *   - An unbalanced quote: a quoted field still open at the end of the
 *     file, or closed only lines later by a quote that text follows (most
 *     likely the next field's opening quote). Reported at its opening
 *     quote; the row is dropped and parsing starts again on the line after
 *     that quote, since everything the quote swallowed may well be good
 *     rows. Restarts go back in the file, so they are limited by a work
 *     budget (a few times the file size) to stay linear on hostile input.
 *   - A quoting or encoding error in the header row: reported; the rows
 *     cannot be read without it and are dropped without further messages.
 *   - A row with more or fewer fields than the header: reported at the row,
 *     dropped.
 *   - Header problems (unknown, duplicate or missing columns, translation
 *     columns that do not match the project languages): reported at the
 *     header. When a required column is missing the rows are still checked,
 *     but none is appended: every appended tag or alarm has its required
 *     fields, so validation never sees a half-made object.
 *   - A field that does not parse: reported at the field. A tag row is
 *     appended only when its name, section, PLC, address and type are good
 *     (alarms and screens may refer to it, and an "unknown tag" for a row
 *     with a typo in its unit would mislead); a bad optional field then
 *     takes its default. An alarm row with any error is dropped: nothing
 *     refers to alarms, and a half-read alarm would only draw rule errors.
 *
 * Memory stays bounded by the file size: a row keeps at most as many fields
 * as the header has (further ones are only counted), and the header at most
 * MAX_COLS. */
#include <csv.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define MAX_COLS 256
/* Column ids of both tables fit in this. */
#define MAX_IDS 18

/* ------------------------------------------------------------ the tables */

struct reader;

/* What one CSV file holds: its column names by id (the enum vg_tag_col or
 * vg_alarm_col), which of them are required, and the translated column. */
struct table {
    const char *what;            /* "tag", "alarm": for messages */
    const char *const *cols;     /* by id; NULL for the translated column */
    int n_ids;
    int text_id;                 /* the translated column's id */
    const char *text_prefix;     /* "description_" */
    size_t text_max;             /* bytes of one translation (0: any) */
    unsigned required;           /* bit per id */
    void (*row)(struct reader *r);
};

static const char *const tag_cols[VG_TAG_COL_COUNT] = {
    [VG_TAG_NAME] = "name",         [VG_TAG_SECTION] = "section",
    [VG_TAG_PLC] = "plc",           [VG_TAG_ADDRESS] = "address",
    [VG_TAG_TYPE] = "type",         [VG_TAG_WORD_ORDER] = "word_order",
    [VG_TAG_RAW_MIN] = "raw_min",   [VG_TAG_RAW_MAX] = "raw_max",
    [VG_TAG_ENG_MIN] = "eng_min",   [VG_TAG_ENG_MAX] = "eng_max",
    [VG_TAG_UNIT] = "unit",         [VG_TAG_DEADBAND] = "deadband",
    [VG_TAG_ARCHIVE] = "archive",   [VG_TAG_ARCHIVE_IN] = "archive_in",
    [VG_TAG_WRITABLE] = "writable",
    [VG_TAG_MIN] = "min",           [VG_TAG_MAX] = "max",
    [VG_TAG_DESCRIPTION] = NULL,
};

static const char *const alarm_cols[VG_ALARM_COL_COUNT] = {
    [VG_ALARM_COL_NAME] = "name",
    [VG_ALARM_COL_TAG] = "tag",
    [VG_ALARM_COL_KIND] = "kind",
    [VG_ALARM_COL_LIMIT] = "limit",
    [VG_ALARM_COL_HYSTERESIS] = "hysteresis",
    [VG_ALARM_COL_ON_DELAY] = "on_delay",
    [VG_ALARM_COL_OFF_DELAY] = "off_delay",
    [VG_ALARM_COL_PRIORITY] = "priority",
    [VG_ALARM_COL_SECTION] = "section",
    [VG_ALARM_COL_REFERENCE] = "reference",
    [VG_ALARM_COL_MESSAGE] = NULL,
};

_Static_assert(VG_TAG_COL_COUNT <= MAX_IDS, "MAX_IDS too small for tags");
_Static_assert(VG_ALARM_COL_COUNT <= MAX_IDS, "MAX_IDS too small for alarms");

/* ------------------------------------------------------------ the reader */

struct field {
    size_t off; /* into reader.buf, NUL-terminated there */
    size_t len;
    struct vg_loc loc;
};

struct reader {
    struct vg_project *p;
    struct vg_diags *d;
    const struct table *t;
    const char *file; /* interned */
    const unsigned char *data;
    size_t len;

    struct csv_parser csv;
    bool csv_live;

    /* The byte being looked at and its position. */
    size_t pos;
    uint32_t line, col;

    /* Where the current field began. NEED_START: the next byte that is not
     * a blank begins a field (after a delimiter, a row end, or at the start). */
    bool need_start;
    struct vg_loc field_loc;
    size_t field_pos;

    /* The row being collected. */
    bool row_begun;
    bool row_bad; /* already reported; drop it at its end */
    struct vg_loc row_loc;
    char *buf;
    size_t buf_len, buf_cap;
    struct field fields[MAX_COLS];
    size_t n_fields; /* kept */
    size_t n_seen;   /* counted, may exceed what is kept */

    /* Encoding: NEXT_BAD is the offset of the next invalid byte at or after
     * the scan point (LEN when none); reporting is once per line and never
     * twice for the same place after a restart. */
    size_t next_bad;
    uint32_t bad_line;
    size_t bad_reported_to;

    /* The header. */
    bool have_header;
    bool header_broken; /* unusable: rows are dropped silently */
    bool no_append;     /* a required column is missing: check rows only */
    size_t n_cols;
    int id_col[MAX_IDS];    /* per id: header column, or -1 */
    int lang_col[VG_PROJECT_MAX_LANGS];
    int first_text_col;     /* leftmost translated column, or -1 */
    struct vg_loc header_loc;

    size_t work; /* bytes looked at, restarts included */
    bool oom;
};

static void report(struct reader *r, struct vg_loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void report(struct reader *r, struct vg_loc loc, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    vg_diags_add(r->d, loc, "%s", msg);
}

static struct vg_loc here(const struct reader *r)
{
    struct vg_loc loc = {r->file, r->line, r->col};
    return loc;
}

/* -------------------------------------------------------- field access */

/* The text of column ID in the current row; "" when the header lacks it. */
static const char *val(const struct reader *r, int id)
{
    int c = r->id_col[id];
    if (c < 0 || (size_t)c >= r->n_fields)
        return "";
    return r->buf + r->fields[c].off;
}

/* Where column ID's field is; the row when the header lacks the column. */
static struct vg_loc at(const struct reader *r, int id)
{
    int c = r->id_col[id];
    if (id == r->t->text_id)
        c = r->first_text_col;
    if (c < 0 || (size_t)c >= r->n_fields)
        return r->row_loc;
    return r->fields[c].loc;
}

static const char *col_name(const struct reader *r, int id)
{
    return r->t->cols[id];
}

/* An optional number in column ID. Returns false (after reporting) when the
 * field is there but not a number; *GIVEN says whether there was one. */
static bool opt_number(struct reader *r, int id, bool *given, double *out)
{
    char b[64];
    const char *s = val(r, id);
    *given = false;
    if (s[0] == '\0')
        return true;
    if (!vg_cfg_parse_double(s, out)) {
        report(r, at(r, id), "invalid %s '%s' (expected a number)",
               col_name(r, id), vg_cfg_excerpt(s, false, b));
        return false;
    }
    *given = true;
    return true;
}

/* A required name (column ID): well formed. */
static bool need_name(struct reader *r, int id)
{
    char b[64];
    const char *s = val(r, id);
    if (r->id_col[id] < 0)
        return false; /* the header's missing column is reported */
    if (s[0] == '\0') {
        report(r, at(r, id), "missing %s name", r->t->what);
        return false;
    }
    if (!vg_cfg_name_ok(s)) {
        report(r, at(r, id),
               "invalid %s name '%s' (1..%d letters, digits, '_', '-' or "
               "'.', starting with a letter)",
               r->t->what, vg_cfg_excerpt(s, false, b), VG_NAME_MAX);
        return false;
    }
    return true;
}

/* A required reference (column ID): present. Whether it resolves is for
 * validation. */
static bool need_ref(struct reader *r, int id, const char *what)
{
    if (r->id_col[id] < 0)
        return false;
    if (val(r, id)[0] == '\0') {
        report(r, at(r, id), "missing %s (every %s needs one)", what,
               r->t->what);
        return false;
    }
    return true;
}

/* A reference (possibly empty: NAME stays NULL) into *REF. */
static bool set_ref(struct reader *r, int id, struct vg_ref *ref)
{
    const char *s = val(r, id);
    ref->index = -1;
    ref->loc = at(r, id);
    if (s[0] == '\0')
        return true;
    ref->name = vg_cfg_strdup(s);
    return ref->name != NULL;
}

/* The row's texts. An empty field in a language column is reported here,
 * at that field, where the engineer has to type the translation (validation
 * cannot: a vg_text has one position for all languages); so is one longer
 * than the table allows (an alarm message: VG_PROJECT_MAX_ALARM_TEXT). */
static bool set_text(struct reader *r, struct vg_text *text)
{
    text->loc = at(r, r->t->text_id);
    for (size_t i = 0; i < r->p->n_languages && i < VG_PROJECT_MAX_LANGS; i++) {
        int c = r->lang_col[i];
        if (c < 0 || (size_t)c >= r->n_fields)
            continue;
        if (r->fields[c].len == 0) {
            vg_diags_add(r->d, r->fields[c].loc, "missing translation: %s "
                         "'%s' has no '%s' %s", r->t->what, val(r, 0),
                         r->p->languages[i], r->t->text_prefix[0] == 'd'
                         ? "description" : "message");
            continue;
        }
        if (r->t->text_max > 0 && r->fields[c].len > r->t->text_max) {
            vg_diags_add(r->d, r->fields[c].loc, "the '%s' %s of %s '%s' has %zu "
                         "bytes, more than the %zu allowed", r->p->languages[i],
                         r->t->text_prefix[0] == 'd' ? "description" : "message",
                         r->t->what, val(r, 0), r->fields[c].len, r->t->text_max);
        }
        text->s[i] = vg_cfg_strdup(r->buf + r->fields[c].off);
        if (text->s[i] == NULL)
            return false;
    }
    return true;
}

/* Name lists of the enums, for "expected …" messages. */
static void list_names(char *out, size_t size, int n,
                       const char *(*name)(int i))
{
    size_t o = 0;
    out[0] = '\0';
    for (int i = 0; i < n && o < size; i++) {
        const char *sep = i == 0 ? "" : i == n - 1 ? " or " : ", ";
        int k = snprintf(out + o, size - o, "%s%s", sep, name(i));
        if (k < 0)
            break;
        o += (size_t)k;
    }
}

static const char *dtype_at(int i) { return vg_dtype_name((enum vg_dtype)i); }
static const char *kind_at(int i)
{
    return vg_alarm_kind_name((enum vg_alarm_kind)i);
}
static const char *prio_at(int i)
{
    return vg_priority_name((enum vg_priority)(i + VG_PRIO_CRITICAL));
}
static const char *reg_at(int i) { return vg_reg_kind_name((enum vg_reg_kind)i); }

#define N_DTYPES (VG_DT_FLOAT32 + 1)
#define N_REGS (VG_REG_INPUT + 1)
#define N_KINDS (VG_ALARM_DEVIATION + 1)
#define N_PRIOS (VG_PRIO_LOW - VG_PRIO_CRITICAL + 1)

static int find_name(const char *s, int n, const char *(*name)(int i))
{
    for (int i = 0; i < n; i++)
        if (strcmp(s, name(i)) == 0)
            return i;
    return -1;
}

/* ---------------------------------------------------------------- tags */

/* "KIND:OFFSET", e.g. "hr:100". */
static bool parse_address(struct reader *r, struct vg_tag *t)
{
    char b[64], kinds[64];
    const char *s = val(r, VG_TAG_ADDRESS);
    struct vg_loc loc = at(r, VG_TAG_ADDRESS);
    if (r->id_col[VG_TAG_ADDRESS] < 0)
        return false;
    if (s[0] == '\0') {
        report(r, loc, "missing address (every tag needs one, e.g. hr:100)");
        return false;
    }
    const char *colon = strchr(s, ':');
    int kind = -1;
    for (int i = 0; colon != NULL && i < N_REGS; i++) {
        const char *k = reg_at(i);
        if (strlen(k) == (size_t)(colon - s) && strncmp(s, k, strlen(k)) == 0)
            kind = i;
    }
    list_names(kinds, sizeof kinds, N_REGS, reg_at);
    if (kind < 0) {
        report(r, loc,
               "invalid address '%s' (expected KIND:OFFSET with KIND %s, "
               "e.g. hr:100)",
               vg_cfg_excerpt(s, false, b), kinds);
        return false;
    }
    /* Digits only: no sign, no blanks, and no overflow before the range
     * check (a long digit string just stops being counted). */
    const char *d = colon + 1;
    unsigned long v = 0;
    size_t n = 0;
    for (; d[n] >= '0' && d[n] <= '9'; n++)
        if (v <= 65536)
            v = v * 10 + (unsigned long)(d[n] - '0');
    if (n == 0 || d[n] != '\0') {
        report(r, loc,
               "invalid address '%s': the offset must be a number 0..65535",
               vg_cfg_excerpt(s, false, b));
        return false;
    }
    if (v > 65535) {
        report(r, loc, "invalid address '%s': offset must be 0..65535",
               vg_cfg_excerpt(s, false, b));
        return false;
    }
    t->kind = (enum vg_reg_kind)kind;
    t->offset = (uint32_t)v;
    return true;
}

static bool parse_type(struct reader *r, struct vg_tag *t)
{
    char b[64], names[96];
    const char *s = val(r, VG_TAG_TYPE);
    struct vg_loc loc = at(r, VG_TAG_TYPE);
    list_names(names, sizeof names, N_DTYPES, dtype_at);
    if (r->id_col[VG_TAG_TYPE] < 0)
        return false;
    if (s[0] == '\0') {
        report(r, loc, "missing data type (expected %s)", names);
        return false;
    }
    int i = find_name(s, N_DTYPES, dtype_at);
    if (i < 0) {
        report(r, loc, "unknown data type '%s' (expected %s)", vg_cfg_excerpt(s, false, b),
               names);
        return false;
    }
    t->type = (enum vg_dtype)i;
    return true;
}

/* Word order only means something for a type that spans two registers. */
static void parse_word_order(struct reader *r, struct vg_tag *t, bool type_ok)
{
    char b[64];
    const char *s = val(r, VG_TAG_WORD_ORDER);
    struct vg_loc loc = at(r, VG_TAG_WORD_ORDER);
    t->word_order = VG_WO_BIG;
    if (s[0] == '\0')
        return;
    if (strcmp(s, "big") == 0) {
        t->word_order = VG_WO_BIG;
    } else if (strcmp(s, "little") == 0) {
        t->word_order = VG_WO_LITTLE;
    } else {
        report(r, loc, "invalid word_order '%s' (expected big or little)",
               vg_cfg_excerpt(s, false, b));
        return;
    }
    if (type_ok && vg_dtype_width(t->type) < 2) {
        report(r, loc,
               "word_order '%s' given for a %s tag: it applies only to "
               "32-bit types (int32, uint32, float32); leave it empty",
               s, vg_dtype_name(t->type));
        t->word_order = VG_WO_BIG;
    }
}

/* raw_min, raw_max, eng_min, eng_max: all four or none. */
static void parse_scaling(struct reader *r, struct vg_tag *t)
{
    static const int ids[4] = {VG_TAG_RAW_MIN, VG_TAG_RAW_MAX, VG_TAG_ENG_MIN,
                               VG_TAG_ENG_MAX};
    double v[4] = {0};
    bool given[4];
    bool bad = false;
    int n_given = 0;
    for (int i = 0; i < 4; i++) {
        if (!opt_number(r, ids[i], &given[i], &v[i]))
            bad = true;
        else if (given[i])
            n_given++;
    }
    /* A bad number was already reported; saying "incomplete" too would be a
     * second error for the same mistake. */
    if (bad)
        return;
    if (n_given > 0 && n_given < 4) {
        char missing[64] = "";
        int first = -1, n_missing = 0;
        for (int i = 0; i < 4; i++) {
            if (given[i])
                continue;
            if (first < 0)
                first = i;
            n_missing++;
        }
        int k = 0;
        for (int i = 0; i < 4; i++) {
            if (given[i])
                continue;
            const char *sep = k == 0 ? "" : k == n_missing - 1 ? " and " : ", ";
            size_t o = strlen(missing);
            snprintf(missing + o, sizeof missing - o, "%s%s", sep,
                     col_name(r, ids[i]));
            k++;
        }
        report(r, at(r, ids[first]),
               "incomplete scaling: %s %s missing (give all four of raw_min, "
               "raw_max, eng_min and eng_max, or none)",
               missing, n_missing == 1 ? "is" : "are");
        return;
    }
    if (n_given == 4) {
        t->scaled = true;
        t->raw_min = v[0];
        t->raw_max = v[1];
        t->eng_min = v[2];
        t->eng_max = v[3];
    }
}

static void parse_archive(struct reader *r, struct vg_tag *t)
{
    char b[64];
    const char *s = val(r, VG_TAG_ARCHIVE);
    struct vg_loc loc = at(r, VG_TAG_ARCHIVE);
    t->archive = VG_ARCHIVE_NONE;
    if (s[0] == '\0' || strcmp(s, "none") == 0)
        return;
    if (strcmp(s, "change") == 0) {
        t->archive = VG_ARCHIVE_CHANGE;
        return;
    }
    if (strncmp(s, "cyclic:", 7) == 0) {
        const char *n = s + 7;
        long period;
        /* vg_cfg_parse_long allows a sign and blanks; a period is digits. */
        bool digits = n[0] != '\0' && strspn(n, "0123456789") == strlen(n);
        if (digits && vg_cfg_parse_long(n, 1, 86400, &period)) {
            t->archive = VG_ARCHIVE_CYCLIC;
            t->archive_period_s = (unsigned)period;
            return;
        }
        report(r, loc,
               "invalid archive '%s': the period must be 1..86400 seconds",
               vg_cfg_excerpt(s, false, b));
        return;
    }
    report(r, loc, "invalid archive '%s' (expected none, change or "
                   "cyclic:SECONDS)",
           vg_cfg_excerpt(s, false, b));
}

static void tag_clear(struct vg_tag *t)
{
    free(t->name);
    vg_cfg_ref_free(&t->section);
    vg_cfg_ref_free(&t->plc);
    vg_cfg_ref_free(&t->archive_in);
    free(t->unit);
    vg_cfg_text_free(&t->description);
}

static void tag_row(struct reader *r)
{
    struct vg_tag t;
    char b[64];
    memset(&t, 0, sizeof t);
    t.loc = r->row_loc;
    for (int id = 0; id < VG_TAG_COL_COUNT; id++)
        t.col[id] = at(r, id);

    /* The fields without which the tag cannot be used at all. */
    bool keep = need_name(r, VG_TAG_NAME);
    keep &= need_ref(r, VG_TAG_SECTION, "section");
    keep &= need_ref(r, VG_TAG_PLC, "plc");
    keep &= parse_address(r, &t);
    bool type_ok = parse_type(r, &t);
    keep &= type_ok;

    /* The rest: reported, then defaulted. */
    parse_word_order(r, &t, type_ok);
    parse_scaling(r, &t);

    bool given;
    double v;
    if (opt_number(r, VG_TAG_DEADBAND, &given, &v) && given) {
        if (v < 0)
            report(r, at(r, VG_TAG_DEADBAND),
                   "invalid deadband '%s' (must be 0 or more)",
                   vg_cfg_excerpt(val(r, VG_TAG_DEADBAND), false, b));
        else
            t.deadband = v;
    }
    parse_archive(r, &t);

    const char *w = val(r, VG_TAG_WRITABLE);
    if (!vg_cfg_parse_bool(w, &t.writable)) {
        report(r, at(r, VG_TAG_WRITABLE),
               "invalid writable '%s' (expected yes or no)", vg_cfg_excerpt(w, false, b));
        t.writable = false;
    }

    double lo = 0, hi = 0;
    bool has_lo, has_hi;
    bool lim_ok = opt_number(r, VG_TAG_MIN, &has_lo, &lo);
    lim_ok &= opt_number(r, VG_TAG_MAX, &has_hi, &hi);
    if (lim_ok && has_lo != has_hi) {
        int missing = has_lo ? VG_TAG_MAX : VG_TAG_MIN;
        report(r, at(r, missing),
               "write limits need both min and max; %s is missing",
               col_name(r, missing));
    } else if (lim_ok && has_lo) {
        t.has_limits = true;
        t.min = lo;
        t.max = hi;
    }

    if (!keep || r->no_append)
        return;
    bool ok = (t.name = vg_cfg_strdup(val(r, VG_TAG_NAME))) != NULL;
    ok = ok && set_ref(r, VG_TAG_SECTION, &t.section);
    ok = ok && set_ref(r, VG_TAG_PLC, &t.plc);
    ok = ok && set_ref(r, VG_TAG_ARCHIVE_IN, &t.archive_in);
    ok = ok && (t.unit = vg_cfg_strdup(val(r, VG_TAG_UNIT))) != NULL;
    ok = ok && set_text(r, &t.description);
    struct vg_tag *slot =
        ok ? vg_cfg_push(&r->p->tags, &r->p->n_tags, sizeof *slot) : NULL;
    if (slot == NULL) {
        tag_clear(&t);
        r->oom = true;
        return;
    }
    *slot = t;
}

/* -------------------------------------------------------------- alarms */

/* Seconds with decimals, 0..3600, into milliseconds. */
static bool parse_delay(struct reader *r, int id, unsigned *ms)
{
    char b[64];
    bool given;
    double v;
    *ms = 0;
    if (!opt_number(r, id, &given, &v))
        return false;
    if (!given)
        return true;
    if (v < 0 || v > 3600) {
        report(r, at(r, id), "invalid %s '%s' (expected seconds, 0..3600)",
               col_name(r, id), vg_cfg_excerpt(val(r, id), false, b));
        return false;
    }
    /* Non-negative and at most 3.6e6: rounding by hand needs no libm. */
    *ms = (unsigned)(v * 1000.0 + 0.5);
    return true;
}

static void alarm_clear(struct vg_alarm *a)
{
    free(a->name);
    vg_cfg_ref_free(&a->tag);
    vg_cfg_ref_free(&a->section);
    vg_cfg_ref_free(&a->reference);
    vg_cfg_text_free(&a->message);
}

static void alarm_row(struct reader *r)
{
    struct vg_alarm a;
    char b[64], names[128];
    memset(&a, 0, sizeof a);
    a.loc = r->row_loc;
    for (int id = 0; id < VG_ALARM_COL_COUNT; id++)
        a.col[id] = at(r, id);

    bool ok = need_name(r, VG_ALARM_COL_NAME);
    ok &= need_ref(r, VG_ALARM_COL_TAG, "tag");

    const char *s = val(r, VG_ALARM_COL_KIND);
    list_names(names, sizeof names, N_KINDS, kind_at);
    int kind = find_name(s, N_KINDS, kind_at);
    if (r->id_col[VG_ALARM_COL_KIND] < 0) {
        ok = false;
    } else if (s[0] == '\0') {
        report(r, at(r, VG_ALARM_COL_KIND), "missing alarm kind (expected %s)",
               names);
        ok = false;
    } else if (kind < 0) {
        report(r, at(r, VG_ALARM_COL_KIND),
               "unknown alarm kind '%s' (expected %s)", vg_cfg_excerpt(s, false, b), names);
        ok = false;
    } else {
        a.kind = (enum vg_alarm_kind)kind;
    }

    bool given;
    ok &= opt_number(r, VG_ALARM_COL_LIMIT, &a.has_limit, &a.limit);
    double v;
    if (!opt_number(r, VG_ALARM_COL_HYSTERESIS, &given, &v)) {
        ok = false;
    } else if (given && v < 0) {
        report(r, at(r, VG_ALARM_COL_HYSTERESIS),
               "invalid hysteresis '%s' (must be 0 or more)",
               vg_cfg_excerpt(val(r, VG_ALARM_COL_HYSTERESIS), false, b));
        ok = false;
    } else if (given) {
        a.hysteresis = v;
    }
    ok &= parse_delay(r, VG_ALARM_COL_ON_DELAY, &a.on_delay_ms);
    ok &= parse_delay(r, VG_ALARM_COL_OFF_DELAY, &a.off_delay_ms);

    s = val(r, VG_ALARM_COL_PRIORITY);
    list_names(names, sizeof names, N_PRIOS, prio_at);
    int prio = find_name(s, N_PRIOS, prio_at);
    if (r->id_col[VG_ALARM_COL_PRIORITY] < 0) {
        ok = false;
    } else if (s[0] == '\0') {
        report(r, at(r, VG_ALARM_COL_PRIORITY),
               "missing priority (expected %s)", names);
        ok = false;
    } else if (prio < 0) {
        report(r, at(r, VG_ALARM_COL_PRIORITY),
               "unknown priority '%s' (expected %s)", vg_cfg_excerpt(s, false, b), names);
        ok = false;
    } else {
        a.priority = (enum vg_priority)(prio + VG_PRIO_CRITICAL);
    }

    if (!ok || r->no_append)
        return;
    bool mem = (a.name = vg_cfg_strdup(val(r, VG_ALARM_COL_NAME))) != NULL;
    mem = mem && set_ref(r, VG_ALARM_COL_TAG, &a.tag);
    mem = mem && set_ref(r, VG_ALARM_COL_SECTION, &a.section);
    mem = mem && set_ref(r, VG_ALARM_COL_REFERENCE, &a.reference);
    mem = mem && set_text(r, &a.message);
    struct vg_alarm *slot =
        mem ? vg_cfg_push(&r->p->alarms, &r->p->n_alarms, sizeof *slot) : NULL;
    if (slot == NULL) {
        alarm_clear(&a);
        r->oom = true;
        return;
    }
    *slot = a;
}

/* -------------------------------------------------------------- header */

struct hint_ctx {
    const struct reader *r;
    char (*text_names)[40];
};

/* Candidates for "did you mean": the fixed columns, then PREFIX_LL for
 * every project language. */
static const char *hint_get(const void *ctx, size_t i)
{
    const struct hint_ctx *h = ctx;
    const struct table *t = h->r->t;
    if (i < (size_t)t->n_ids)
        return t->cols[i];
    return h->text_names[i - (size_t)t->n_ids];
}

static void header_unknown(struct reader *r, const struct field *f,
                           const char *name)
{
    char b[64];
    char text_names[VG_PROJECT_MAX_LANGS][40];
    size_t n_lang = r->p->n_languages;
    if (n_lang > VG_PROJECT_MAX_LANGS)
        n_lang = VG_PROJECT_MAX_LANGS;
    for (size_t i = 0; i < n_lang; i++)
        snprintf(text_names[i], sizeof text_names[i], "%s%s",
                 r->t->text_prefix,
                 r->p->languages[i] != NULL ? r->p->languages[i] : "");
    struct hint_ctx h = {r, text_names};
    const char *hint = vg_cfg_suggest(r->d, name, (size_t)r->t->n_ids + n_lang,
                                      hint_get, &h);
    if (hint != NULL) {
        report(r, f->loc, "unknown column '%s' (did you mean '%s'?)",
               vg_cfg_excerpt(name, false, b), hint);
        return;
    }
    char all[300];
    size_t o = 0;
    all[0] = '\0';
    for (int id = 0; id < r->t->n_ids; id++) {
        const char *c = id == r->t->text_id ? NULL : r->t->cols[id];
        if (c != NULL)
            o += (size_t)snprintf(all + o, sizeof all - o, "%s, ", c);
    }
    snprintf(all + o, sizeof all - o, "%sLL", r->t->text_prefix);
    report(r, f->loc, "unknown column '%s' (the columns are %s)",
           vg_cfg_excerpt(name, false, b), all);
}

static void header_row(struct reader *r)
{
    const struct table *t = r->t;
    char b[64], b2[64];
    r->have_header = true;
    r->header_loc = r->row_loc;
    r->header_loc.col = 1;
    if (r->row_bad) {
        r->header_broken = true;
        return;
    }
    if (r->n_seen > MAX_COLS) {
        report(r, r->row_loc, "too many columns in the header (%zu; at most %d)",
               r->n_seen, MAX_COLS);
        r->header_broken = true;
        return;
    }
    r->n_cols = r->n_fields;
    size_t prefix_len = strlen(t->text_prefix);
    for (size_t c = 0; c < r->n_cols; c++) {
        const struct field *f = &r->fields[c];
        const char *name = r->buf + f->off;
        if (name[0] == '\0') {
            report(r, f->loc, "empty column name in the header");
            continue;
        }
        bool dup = false;
        for (size_t k = 0; k < c && !dup; k++)
            dup = strcmp(name, r->buf + r->fields[k].off) == 0;
        if (dup) {
            report(r, f->loc, "duplicate column '%s'", vg_cfg_excerpt(name, false, b));
            continue;
        }
        int id = -1;
        for (int i = 0; i < t->n_ids && id < 0; i++)
            if (t->cols[i] != NULL && strcmp(name, t->cols[i]) == 0)
                id = i;
        if (id >= 0) {
            r->id_col[id] = (int)c;
            continue;
        }
        if (strncmp(name, t->text_prefix, prefix_len) == 0 &&
            name[prefix_len] != '\0') {
            const char *code = name + prefix_len;
            /* Without project languages (project.yaml did not parse) there
             * is nothing to check the codes against: keep the column, use
             * nothing from it. */
            if (r->p->n_languages == 0) {
                if (r->first_text_col < 0)
                    r->first_text_col = (int)c;
                continue;
            }
            int lang = vg_project_language(r->p, code);
            if (lang < 0 || lang >= VG_PROJECT_MAX_LANGS) {
                char langs[VG_PROJECT_MAX_LANGS * 12];
                size_t o = 0;
                langs[0] = '\0';
                for (size_t i = 0; i < r->p->n_languages &&
                                   i < VG_PROJECT_MAX_LANGS; i++)
                    o += (size_t)snprintf(langs + o, sizeof langs - o, "%s%.8s",
                                          i > 0 ? ", " : "",
                                          r->p->languages[i] != NULL
                                              ? r->p->languages[i] : "?");
                report(r, f->loc,
                       "column '%s' is for language '%s', which is not a "
                       "project language (%s)",
                       vg_cfg_excerpt(name, false, b), vg_cfg_excerpt(code, false, b2), langs);
                continue;
            }
            r->lang_col[lang] = (int)c;
            if (r->first_text_col < 0)
                r->first_text_col = (int)c;
            continue;
        }
        header_unknown(r, f, name);
    }

    for (int id = 0; id < t->n_ids; id++) {
        if ((t->required & (1u << id)) && r->id_col[id] < 0) {
            report(r, r->header_loc, "missing required column '%s'",
                   t->cols[id]);
            r->no_append = true;
        }
    }
    for (size_t i = 0; i < r->p->n_languages && i < VG_PROJECT_MAX_LANGS; i++)
        if (r->lang_col[i] < 0)
            report(r, r->header_loc, "missing translation column %s%s",
                   t->text_prefix,
                   r->p->languages[i] != NULL ? r->p->languages[i] : "?");
    /* Without names the rows cannot even be told apart. (Id 0 is the name
     * in both tables.) */
    if (r->id_col[0] < 0)
        r->header_broken = true;
}

/* ----------------------------------------------------------- callbacks */

static void row_reset(struct reader *r)
{
    r->row_begun = false;
    r->row_bad = false;
    r->need_start = true;
    r->buf_len = 0;
    r->n_fields = 0;
    r->n_seen = 0;
}

static void field_cb(void *data, size_t len, void *ctx)
{
    struct reader *r = ctx;
    /* At the end of the file libcsv may close a field no byte began (after a
     * final delimiter): it begins where the file ends. */
    struct vg_loc loc = r->need_start ? here(r) : r->field_loc;
    r->need_start = true;
    size_t keep = r->have_header ? r->n_cols : MAX_COLS;
    if (r->n_seen++ >= keep || r->row_bad || r->oom)
        return;
    if (r->buf_len + len + 1 > r->buf_cap) {
        size_t cap = r->buf_cap ? r->buf_cap : 256;
        while (cap < r->buf_len + len + 1)
            cap *= 2;
        char *nb = realloc(r->buf, cap);
        if (nb == NULL) {
            r->oom = true;
            return;
        }
        r->buf = nb;
        r->buf_cap = cap;
    }
    struct field *f = &r->fields[r->n_fields++];
    f->off = r->buf_len;
    f->len = len;
    f->loc = loc;
    if (len > 0)
        memcpy(r->buf + r->buf_len, data, len);
    r->buf[r->buf_len + len] = '\0';
    r->buf_len += len + 1;
}

static void row_cb(int c, void *ctx)
{
    struct reader *r = ctx;
    (void)c;
    if (r->oom) {
        row_reset(r);
        return;
    }
    if (!r->have_header) {
        header_row(r);
    } else if (r->header_broken || r->row_bad) {
        /* Reported already. */
    } else if (r->n_seen != r->n_cols) {
        report(r, r->row_loc, "row has %zu field%s but the header has %zu",
               r->n_seen, r->n_seen == 1 ? "" : "s", r->n_cols);
    } else {
        r->t->row(r);
    }
    row_reset(r);
}

/* ------------------------------------------------------------- bytes */

static bool parser_start(struct reader *r)
{
    if (r->csv_live)
        csv_free(&r->csv);
    r->csv_live = false;
    if (csv_init(&r->csv, CSV_STRICT | CSV_STRICT_FINI) != 0)
        return false;
    /* Long descriptions should not mean a realloc every 128 bytes. */
    csv_set_blk_size(&r->csv, 4096);
    r->csv_live = true;
    return true;
}

static void scan_encoding(struct reader *r, size_t from)
{
    size_t off;
    if (from >= r->len ||
        vg_cfg_utf8_ok((const char *)r->data + from, r->len - from, &off))
        r->next_bad = r->len;
    else
        r->next_bad = from + off;
}

/* Look at the byte at r->pos for encoding problems (IN_ROW: it belongs to a
 * row, which is then dropped), then move past it. */
static void step(struct reader *r, bool in_row)
{
    unsigned char c = r->data[r->pos];
    bool bad_utf8 = r->pos == r->next_bad;
    if (bad_utf8 || c == '\0') {
        if (in_row)
            r->row_bad = true;
        if (r->line != r->bad_line && r->pos + 1 > r->bad_reported_to) {
            if (c == '\0')
                report(r, here(r), "NUL byte in the file (not a text file?)");
            else
                report(r, here(r),
                       "invalid UTF-8 (byte 0x%02x); save the file as UTF-8",
                       c);
            r->bad_line = r->line;
            r->bad_reported_to = r->pos + 1;
        }
        if (bad_utf8)
            scan_encoding(r, r->pos + 1);
    }
    r->pos++;
    r->work++;
    if (c == '\n' || (c == '\r' && (r->pos >= r->len || r->data[r->pos] != '\n'))) {
        r->line++;
        r->col = 1;
    } else if (((unsigned char)c & 0xc0) != 0x80) {
        /* Columns count characters, as editors and libfyaml do: the bytes
         * after the first of a UTF-8 sequence do not move the column. */
        r->col++;
    }
}

/* Skip to the start of the next line without parsing. */
static void skip_line(struct reader *r, bool in_row)
{
    while (r->pos < r->len) {
        unsigned char c = r->data[r->pos];
        step(r, in_row);
        if (c == '\n' || (c == '\r' && (r->pos >= r->len ||
                                        r->data[r->pos] != '\n')))
            return;
    }
}

static bool is_blank(unsigned char c) { return c == ' ' || c == '\t'; }

/* Forget the current row after a quoting error. When it was the header,
 * the rows that follow cannot be read: taking the next row for the header
 * would only bring a flood of nonsense about its "columns". */
static void drop_row(struct reader *r)
{
    if (!r->have_header) {
        r->have_header = true;
        r->header_broken = true;
    }
    row_reset(r);
}

/* The offset of the line after the one where the current field began, to
 * parse again from there: after a quote that was probably never meant to
 * be closed. Sets r->line to match. */
static size_t restart_after_field(struct reader *r)
{
    drop_row(r);
    size_t next = r->field_pos;
    while (next < r->len && r->data[next] != '\n' && r->data[next] != '\r')
        next++;
    if (next < r->len && r->data[next] == '\r' && next + 1 < r->len &&
        r->data[next + 1] == '\n')
        next++;
    if (next < r->len)
        next++;
    r->line = r->field_loc.line + 1;
    return next;
}

/* Parse from r->pos (the start of a line) to the end of the file. Returns
 * the offset to start again from when an unbalanced quote swallowed lines,
 * or r->len when done. */
static size_t run(struct reader *r)
{
    while (r->pos < r->len && !r->oom) {
        unsigned char c = r->data[r->pos];
        if (r->col == 1 && !r->row_begun && c == '#') {
            skip_line(r, false);
            continue;
        }
        if (r->need_start && !is_blank(c)) {
            bool eol = c == '\r' || c == '\n';
            /* A line end begins a field only as an empty last field. */
            if (!eol || r->row_begun) {
                r->field_loc = here(r);
                r->field_pos = r->pos;
                r->need_start = false;
                if (!r->row_begun) {
                    r->row_begun = true;
                    r->row_loc = r->field_loc;
                }
            }
        }
        size_t fed = csv_parse(&r->csv, r->data + r->pos, 1, field_cb, row_cb, r);
        if (fed == 1) {
            step(r, r->row_begun);
            continue;
        }
        if (csv_error(&r->csv) != CSV_EPARSE) {
            r->oom = true;
            break;
        }
        if (r->data[r->field_pos] != '"') {
            report(r, r->field_loc,
                   "quote inside an unquoted field (quote the whole field "
                   "and write the quote as \"\")");
        } else if (r->line == r->field_loc.line) {
            report(r, r->field_loc,
                   "malformed quoted field: text after the closing quote "
                   "(a quote inside a quoted field is written \"\")");
        } else {
            /* The quote that ended the field is lines away, so more likely
             * this one was never closed and took the next quote in the file
             * for its end: the lines in between may be good rows. */
            report(r, r->field_loc,
                   "malformed quoted field: the quote opened here is closed "
                   "on line %u and text follows it (a missing closing "
                   "quote?)",
                   (unsigned)r->line);
            return restart_after_field(r);
        }
        skip_line(r, true);
        drop_row(r);
        if (!parser_start(r))
            r->oom = true;
    }
    if (r->oom)
        return r->len;
    if (csv_fini(&r->csv, field_cb, row_cb, r) == 0) {
        row_reset(r);
        return r->len;
    }
    /* Unterminated quoted field: everything after its quote went into it. */
    report(r, r->field_loc,
           "unterminated quoted field (no closing quote before the end of "
           "the file)");
    return restart_after_field(r);
}

static void parse(struct vg_project *p, const struct vg_project_file *f,
                  struct vg_diags *d, const struct table *t)
{
    struct reader *r = calloc(1, sizeof *r);
    if (r == NULL)
        return;
    r->p = p;
    r->d = d;
    r->t = t;
    r->file = vg_cfg_file(p, f->path);
    r->data = (const unsigned char *)f->data;
    r->len = f->data != NULL ? f->len : 0;
    r->line = 1;
    r->col = 1;
    r->first_text_col = -1;
    for (int i = 0; i < MAX_IDS; i++)
        r->id_col[i] = -1;
    for (int i = 0; i < VG_PROJECT_MAX_LANGS; i++)
        r->lang_col[i] = -1;
    row_reset(r);

    if (r->len >= 3 && memcmp(r->data, "\xef\xbb\xbf", 3) == 0)
        r->pos = 3;
    scan_encoding(r, r->pos);

    /* Each restart begins after the line of the quote that caused it, so
     * restarts move forward; the budget keeps their total work linear. */
    size_t budget = r->len * 4 + 65536;
    while (r->pos < r->len && !r->oom && r->work < budget) {
        if (!parser_start(r)) {
            r->oom = true;
            break;
        }
        size_t next = run(r);
        if (next >= r->len)
            break;
        r->pos = next;
        r->col = 1;
        scan_encoding(r, r->pos);
    }
    if (r->oom)
        vg_diags_add(d, (struct vg_loc){r->file, 0, 0},
                     "out of memory while reading the file");
    else if (!r->have_header)
        vg_diags_add(d, (struct vg_loc){r->file, 0, 0},
                     "no header row (the first line that is not a comment "
                     "names the columns)");
    if (r->csv_live)
        csv_free(&r->csv);
    free(r->buf);
    free(r);
}

void vg_cfg_csv_tags(struct vg_project *p, const struct vg_project_file *f,
                     struct vg_diags *d)
{
    static const struct table t = {
        .what = "tag",
        .cols = tag_cols,
        .n_ids = VG_TAG_COL_COUNT,
        .text_id = VG_TAG_DESCRIPTION,
        .text_prefix = "description_",
        .required = 1u << VG_TAG_NAME | 1u << VG_TAG_SECTION |
                    1u << VG_TAG_PLC | 1u << VG_TAG_ADDRESS |
                    1u << VG_TAG_TYPE,
        .row = tag_row,
    };
    parse(p, f, d, &t);
}

void vg_cfg_csv_alarms(struct vg_project *p, const struct vg_project_file *f,
                       struct vg_diags *d)
{
    static const struct table t = {
        .what = "alarm",
        .cols = alarm_cols,
        .n_ids = VG_ALARM_COL_COUNT,
        .text_id = VG_ALARM_COL_MESSAGE,
        .text_prefix = "message_",
        .text_max = VG_PROJECT_MAX_ALARM_TEXT,
        .required = 1u << VG_ALARM_COL_NAME | 1u << VG_ALARM_COL_TAG |
                    1u << VG_ALARM_COL_KIND | 1u << VG_ALARM_COL_PRIORITY,
        .row = alarm_row,
    };
    parse(p, f, d, &t);
}
