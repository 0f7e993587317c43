/* Report data checks and the helpers both writers share.
 *
 * Validation is table-driven: each report type lists its row fields with
 * the type each must have and whether it is required, and one loop checks
 * every row against that table before either writer starts, so the writers
 * can read fields without re-checking and a report is never half-written
 * because row 900 was bad. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/* What a field must hold. */
enum kind {
    K_INT,   /* any integer */
    K_UINT,  /* integer >= 0 (times, counts) */
    K_POS,   /* integer > 0 (bucket_ms) */
    K_PRIO,  /* integer 1..4 */
    K_NUM,   /* integer or real */
    K_STR,   /* string */
    K_BOOL,  /* true or false */
    K_MSG,   /* object of language code -> string */
    K_ARRAY, /* array (the buckets; checked on their own) */
    K_ANY,   /* anything (audit old/new values) */
};

struct field {
    const char *key;
    enum kind kind;
    bool required;
};

static const struct field alarm_fields[] = {
    {"id", K_INT, true},
    {"time_ms", K_UINT, true},
    {"alarm", K_STR, true},
    {"cause", K_STR, true},
    {"tag", K_STR, false},
    {"section", K_STR, false},
    {"priority", K_PRIO, false},
    {"from", K_STR, false},
    {"to", K_STR, false},
    {"active", K_BOOL, false},
    {"shelved", K_BOOL, false},
    {"out_of_service", K_BOOL, false},
    {"value", K_NUM, false},
    {"user", K_STR, false},
    {"station", K_STR, false},
    {"reason", K_STR, false},
    {"message", K_MSG, false},
    {NULL, K_ANY, false},
};

static const struct field audit_fields[] = {
    {"id", K_INT, true},
    {"time_ms", K_UINT, true},
    {"kind", K_STR, true},
    {"object", K_STR, false},
    {"old_value", K_ANY, false},
    {"new_value", K_ANY, false},
    {"user", K_STR, false},
    {"station", K_STR, false},
    {"detail", K_STR, false},
    {"term", K_INT, false},
    {"node", K_INT, false},
    {NULL, K_ANY, false},
};

static const struct field series_fields[] = {
    {"tag", K_STR, true},
    {"unit", K_STR, false},
    {"description", K_STR, false},
    {"from_ms", K_UINT, false},
    {"to_ms", K_UINT, false},
    {"bucket_ms", K_POS, true},
    {"buckets", K_ARRAY, true},
    {NULL, K_ANY, false},
};

/* The eight values of a bucket, in order. */
static const struct field bucket_fields[] = {
    {"start_ms", K_UINT, true},
    {"n", K_UINT, true},
    {"min", K_NUM, false},
    {"max", K_NUM, false},
    {"avg", K_NUM, false},
    {"first", K_NUM, false},
    {"last", K_NUM, false},
    {"bad", K_UINT, true},
};
#define BUCKET_LEN (sizeof bucket_fields / sizeof bucket_fields[0])

static const char *expected(enum kind k)
{
    switch (k) {
    case K_INT: return "an integer";
    case K_UINT: return "an integer >= 0";
    case K_POS: return "an integer > 0";
    case K_PRIO: return "an integer 1..4";
    case K_NUM: return "a number";
    case K_STR: return "a string";
    case K_BOOL: return "true or false";
    case K_MSG: return "an object of language code to string";
    case K_ARRAY: return "an array";
    case K_ANY: break;
    }
    return "any value";
}

/* "a string", "an object", … for the message about a value of the wrong
 * type; integers out of range are described by their value. */
static const char *what_is(const json_t *v, char buf[VG_REP_TEXT_SIZE])
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_REAL: return "a real number";
    case JSON_INTEGER:
        snprintf(buf, VG_REP_TEXT_SIZE, "%" JSON_INTEGER_FORMAT,
                 json_integer_value(v));
        return buf;
    case JSON_TRUE: return "true";
    case JSON_FALSE: return "false";
    case JSON_NULL: return "null";
    }
    return "an unknown value";
}

static bool kind_ok(const json_t *v, enum kind k)
{
    switch (k) {
    case K_INT: return json_is_integer(v);
    case K_UINT: return json_is_integer(v) && json_integer_value(v) >= 0;
    case K_POS: return json_is_integer(v) && json_integer_value(v) > 0;
    case K_PRIO:
        return json_is_integer(v) && json_integer_value(v) >= 1 &&
               json_integer_value(v) <= 4;
    case K_NUM: return json_is_number(v);
    case K_STR: return json_is_string(v);
    case K_BOOL: return json_is_boolean(v);
    case K_ARRAY: return json_is_array(v);
    case K_ANY: return true;
    case K_MSG: {
        const char *lang;
        json_t *text;
        if (!json_is_object(v)) {
            return false;
        }
        json_object_foreach((json_t *)v, lang, text) {
            if (!json_is_string(text)) {
                return false;
            }
        }
        return true;
    }
    }
    return false;
}

/* "alarm journal row 3 (id 17)" / "tag series 2 (\"FIT101\")". */
static void row_name(enum vg_report_type type, size_t i, const json_t *row,
                     char *buf, size_t size)
{
    static const char *const noun[] = {
        [VG_REPORT_TYPE_ALARMS] = "alarm journal row",
        [VG_REPORT_TYPE_TAGS] = "tag series",
        [VG_REPORT_TYPE_AUDIT] = "audit record",
    };
    const json_t *id = json_object_get(row, "id");
    const json_t *tag = json_object_get(row, "tag");

    if (type == VG_REPORT_TYPE_TAGS && json_is_string(tag)) {
        snprintf(buf, size, "%s %zu (\"%.40s\")", noun[type], i + 1,
                 json_string_value(tag));
    } else if (type != VG_REPORT_TYPE_TAGS && json_is_integer(id)) {
        snprintf(buf, size, "%s %zu (id %" JSON_INTEGER_FORMAT ")",
                 noun[type], i + 1, json_integer_value(id));
    } else {
        snprintf(buf, size, "%s %zu", noun[type], i + 1);
    }
}

static int check_fields(const json_t *row, const struct field *fields,
                        const char *name, char *errmsg)
{
    char buf[VG_REP_TEXT_SIZE];

    for (const struct field *f = fields; f->key != NULL; f++) {
        const json_t *v = json_object_get(row, f->key);
        if (v == NULL || json_is_null(v)) {
            if (f->required) {
                vg_errf(errmsg, "%s: \"%s\" is missing (%s is required)",
                        name, f->key, expected(f->kind));
                return VG_EINVAL;
            }
            continue;
        }
        if (!kind_ok(v, f->kind)) {
            vg_errf(errmsg, "%s: \"%s\" must be %s, not %s", name, f->key,
                    expected(f->kind), what_is(v, buf));
            return VG_EINVAL;
        }
    }
    return VG_OK;
}

static int check_buckets(const json_t *series, const char *name, char *errmsg)
{
    const json_t *buckets = json_object_get(series, "buckets");
    char buf[VG_REP_TEXT_SIZE];
    const json_t *b;
    size_t i;

    json_array_foreach(buckets, i, b) {
        if (!json_is_array(b) || json_array_size(b) != BUCKET_LEN) {
            char got[VG_REP_TEXT_SIZE];
            if (json_is_array(b)) {
                snprintf(got, sizeof got, "%zu", json_array_size(b));
            } else {
                snprintf(got, sizeof got, "%s", what_is(b, buf));
            }
            vg_errf(errmsg,
                    "%s, bucket %zu: expected an array of 8 values [start_ms, "
                    "n, min, max, avg, first, last, bad], not %s",
                    name, i + 1, got);
            return VG_EINVAL;
        }
        for (size_t k = 0; k < BUCKET_LEN; k++) {
            const json_t *v = json_array_get(b, k);
            const struct field *f = &bucket_fields[k];
            if (json_is_null(v) ? f->required : !kind_ok(v, f->kind)) {
                vg_errf(errmsg, "%s, bucket %zu: %s (value %zu) must be %s%s, "
                        "not %s", name, i + 1, f->key, k + 1, expected(f->kind),
                        f->required ? "" : " or null", what_is(v, buf));
                return VG_EINVAL;
            }
        }
    }
    return VG_OK;
}

int vg_report_check(const struct vg_report_doc *d, char *errmsg)
{
    const struct field *fields;
    const json_t *row;
    char name[96];
    size_t i;
    int rv;

    if (d == NULL) {
        vg_errf(errmsg, "no report document given");
        return VG_EINVAL;
    }
    switch (d->type) {
    case VG_REPORT_TYPE_ALARMS: fields = alarm_fields; break;
    case VG_REPORT_TYPE_AUDIT: fields = audit_fields; break;
    case VG_REPORT_TYPE_TAGS: fields = series_fields; break;
    default:
        vg_errf(errmsg, "unknown report type %d", (int)d->type);
        return VG_EINVAL;
    }
    if (!json_is_array(d->data)) {
        char buf[VG_REP_TEXT_SIZE];
        vg_errf(errmsg, "the data of %s must be an array of %s, not %s",
                vg_rep_default_title(d->type),
                d->type == VG_REPORT_TYPE_ALARMS  ? "journal rows"
                : d->type == VG_REPORT_TYPE_AUDIT ? "audit records"
                                                  : "tag series",
                d->data == NULL ? "nothing" : what_is(d->data, buf));
        return VG_EINVAL;
    }
    json_array_foreach(d->data, i, row) {
        row_name(d->type, i, row, name, sizeof name);
        if (!json_is_object(row)) {
            char buf[VG_REP_TEXT_SIZE];
            vg_errf(errmsg, "%s must be an object, not %s", name,
                    what_is(row, buf));
            return VG_EINVAL;
        }
        rv = check_fields(row, fields, name, errmsg);
        if (rv == VG_OK && d->type == VG_REPORT_TYPE_TAGS) {
            rv = check_buckets(row, name, errmsg);
        }
        if (rv != VG_OK) {
            return rv;
        }
    }
    return VG_OK;
}

static unsigned ceil_div(size_t n, size_t d)
{
    size_t q = (n + d - 1) / d;
    return q > UINT32_MAX ? UINT32_MAX : (unsigned)q;
}

unsigned vg_report_pdf_page_count(const struct vg_report_doc *d)
{
    size_t n = d != NULL && json_is_array(d->data) ? json_array_size(d->data) : 0;
    unsigned tables = ceil_div(n, VG_REPORT_TABLE_ROWS_PER_PAGE);

    if (tables == 0) {
        tables = 1;
    }
    if (d != NULL && d->type == VG_REPORT_TYPE_TAGS) {
        return tables + ceil_div(n, VG_REPORT_CHARTS_PER_PAGE);
    }
    return tables;
}

/* ----------------------------------------------------------- shared bits */

const char *vg_rep_str(const json_t *row, const char *key)
{
    return json_string_value(json_object_get(row, key));
}

static bool local_tm(uint64_t ms, struct tm *tm)
{
    time_t t = (time_t)(ms / 1000);

    /* Fails (EOVERFLOW) for times whose year does not fit a struct tm. */
    return localtime_r(&t, tm) != NULL;
}

void vg_rep_time_iso(uint64_t ms, char buf[VG_REP_TEXT_SIZE])
{
    struct tm tm;
    long off;
    size_t len;

    buf[0] = '\0';
    if (!local_tm(ms, &tm)) {
        return;
    }
    len = strftime(buf, VG_REP_TEXT_SIZE, "%Y-%m-%dT%H:%M:%S", &tm);
    if (len == 0) {
        buf[0] = '\0';
        return;
    }
    off = tm.tm_gmtoff;
    snprintf(buf + len, VG_REP_TEXT_SIZE - len, ".%03u%c%02ld:%02ld",
             (unsigned)(ms % 1000), off < 0 ? '-' : '+', labs(off) / 3600,
             labs(off) % 3600 / 60);
}

void vg_rep_time_local(uint64_t ms, const char *fmt, char buf[VG_REP_TEXT_SIZE])
{
    struct tm tm;

    buf[0] = '\0';
    if (local_tm(ms, &tm) &&
        strftime(buf, VG_REP_TEXT_SIZE, fmt != NULL ? fmt : "%Y-%m-%d %H:%M:%S",
                 &tm) == 0) {
        buf[0] = '\0';
    }
}

void vg_rep_number(double v, char buf[VG_REP_TEXT_SIZE])
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, VG_REP_TEXT_SIZE, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) {
            return;
        }
    }
}

void vg_rep_json_number(const json_t *v, char buf[VG_REP_TEXT_SIZE])
{
    if (json_is_integer(v)) {
        snprintf(buf, VG_REP_TEXT_SIZE, "%" JSON_INTEGER_FORMAT,
                 json_integer_value(v));
    } else if (json_is_real(v)) {
        vg_rep_number(json_real_value(v), buf);
    } else {
        buf[0] = '\0';
    }
}

char *vg_rep_value_text(const json_t *v)
{
    char buf[VG_REP_TEXT_SIZE];

    if (v == NULL || json_is_null(v)) {
        return strdup("");
    }
    if (json_is_string(v)) {
        return strdup(json_string_value(v));
    }
    if (json_is_number(v)) {
        vg_rep_json_number(v, buf);
        return strdup(buf);
    }
    if (json_is_boolean(v)) {
        return strdup(json_is_true(v) ? "true" : "false");
    }
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

const char *vg_rep_alarm_message(const json_t *row, const char *language)
{
    json_t *msg = json_object_get(row, "message");
    const char *text = NULL;
    const char *lang;
    json_t *v;

    if (!json_is_object(msg)) {
        return NULL;
    }
    if (language != NULL) {
        text = json_string_value(json_object_get(msg, language));
    }
    if (text == NULL) {
        text = json_string_value(json_object_get(msg, "en"));
    }
    /* jansson keeps objects in insertion order, so "first" is the first
     * entry of the JSON text. */
    json_object_foreach(msg, lang, v) {
        if (text != NULL) {
            break;
        }
        text = json_string_value(v);
    }
    return text;
}

const char *vg_rep_default_title(enum vg_report_type type)
{
    switch (type) {
    case VG_REPORT_TYPE_ALARMS: return "Alarm report";
    case VG_REPORT_TYPE_TAGS: return "Tag history report";
    case VG_REPORT_TYPE_AUDIT: return "Audit trail report";
    }
    return "Report";
}

bool vg_rep_locale_enter(struct vg_rep_locale *l)
{
    l->c = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    if (l->c == (locale_t)0) {
        return false;
    }
    l->old = uselocale(l->c);
    return true;
}

void vg_rep_locale_leave(struct vg_rep_locale *l)
{
    uselocale(l->old);
    freelocale(l->c);
}
