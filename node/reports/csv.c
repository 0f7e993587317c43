/* The CSV writer: RFC 4180 with CRLF line ends and formula-injection
 * protection (see vg_report_write_csv in reports.h).
 *
 * The data is checked before the first byte is written. Output goes through
 * stdio; write errors stick in the FILE, so they are looked at once, after a
 * final fflush, instead of after every field. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* One line being written: whether the next field is the line's first. */
struct line {
    FILE *out;
    bool first;
};

static void sep(struct line *l)
{
    if (!l->first) {
        fputc(',', l->out);
    }
    l->first = false;
}

static void end_line(struct line *l)
{
    fputs("\r\n", l->out);
    l->first = true;
}

/* A whole-string plain decimal number: [+-] digits [. digits] [e [+-]
 * digits], at least one digit before the exponent. Such text is harmless in
 * a spreadsheet even when it starts with + or -. */
static bool plain_number(const char *s)
{
    bool digits = false;

    if (*s == '+' || *s == '-') {
        s++;
    }
    for (; *s >= '0' && *s <= '9'; s++) {
        digits = true;
    }
    if (*s == '.') {
        for (s++; *s >= '0' && *s <= '9'; s++) {
            digits = true;
        }
    }
    if (digits && (*s == 'e' || *s == 'E')) {
        s++;
        if (*s == '+' || *s == '-') {
            s++;
        }
        if (!(*s >= '0' && *s <= '9')) {
            return false;
        }
        while (*s >= '0' && *s <= '9') {
            s++;
        }
    }
    return digits && *s == '\0';
}

/* A field of text that came from outside (a JSON string): quoted when it
 * must be, and disarmed when a spreadsheet would take it for a formula. */
static void text(struct line *l, const char *s)
{
    bool prefix, quote;

    sep(l);
    if (s == NULL) {
        return;
    }
    prefix = s[0] != '\0' && strchr("=+-@\t\r", s[0]) != NULL && !plain_number(s);
    quote = strpbrk(s, ",\"\r\n") != NULL;
    if (quote) {
        fputc('"', l->out);
    }
    if (prefix) {
        fputc('\'', l->out);
    }
    for (; *s != '\0'; s++) {
        if (*s == '"') {
            fputc('"', l->out);
        }
        fputc(*s, l->out);
    }
    if (quote) {
        fputc('"', l->out);
    }
}

/* A field we formatted ourselves (numbers, times, words): never needs
 * quoting or a prefix. */
static void plain(struct line *l, const char *s)
{
    sep(l);
    fputs(s, l->out);
}

/* Field KEY of ROW by its JSON type; missing and null are empty. */
static void value(struct line *l, const json_t *row, const char *key)
{
    const json_t *v = json_object_get(row, key);
    char buf[VG_REP_TEXT_SIZE];

    if (json_is_string(v)) {
        text(l, json_string_value(v));
    } else if (json_is_number(v)) {
        vg_rep_json_number(v, buf);
        plain(l, buf);
    } else if (json_is_boolean(v)) {
        plain(l, json_is_true(v) ? "true" : "false");
    } else {
        plain(l, "");
    }
}

/* ISO time then ms, from integer field KEY (checked, so present). */
static void time_pair(struct line *l, const json_t *v)
{
    char buf[VG_REP_TEXT_SIZE];

    vg_rep_time_iso((uint64_t)json_integer_value(v), buf);
    plain(l, buf);
    snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    plain(l, buf);
}

static void header(struct line *l, const char *const *names)
{
    for (; *names != NULL; names++) {
        plain(l, *names);
    }
    end_line(l);
}

static void alarm_rows(struct line *l, const struct vg_report_doc *d)
{
    static const char *const head[] = {
        "id", "time", "time_ms", "alarm", "tag", "section", "priority",
        "cause", "from", "to", "active", "shelved", "out_of_service", "value",
        "user", "station", "reason", "message", NULL};
    static const char *const mid[] = {
        "alarm", "tag", "section", "priority", "cause", "from", "to",
        "active", "shelved", "out_of_service", "value", "user", "station",
        "reason", NULL};
    const json_t *row;
    size_t i;

    header(l, head);
    json_array_foreach(d->data, i, row) {
        value(l, row, "id");
        time_pair(l, json_object_get(row, "time_ms"));
        for (const char *const *k = mid; *k != NULL; k++) {
            value(l, row, *k);
        }
        text(l, vg_rep_alarm_message(row, d->language));
        end_line(l);
    }
}

static int audit_rows(struct line *l, const struct vg_report_doc *d)
{
    static const char *const head[] = {
        "id", "time", "time_ms", "kind", "object", "old_value", "new_value",
        "user", "station", "detail", "term", "node", NULL};
    static const char *const rest[] = {"user", "station", "detail", "term",
                                       "node", NULL};
    const json_t *row;
    size_t i;

    header(l, head);
    json_array_foreach(d->data, i, row) {
        value(l, row, "id");
        time_pair(l, json_object_get(row, "time_ms"));
        value(l, row, "kind");
        value(l, row, "object");
        for (int k = 0; k < 2; k++) {
            const json_t *v = json_object_get(row, k == 0 ? "old_value"
                                                          : "new_value");
            if (json_is_array(v) || json_is_object(v)) {
                /* Structured values are written as compact JSON text. */
                char *s = vg_rep_value_text(v);
                if (s == NULL) {
                    return VG_ENOMEM;
                }
                text(l, s);
                free(s);
            } else {
                value(l, row, k == 0 ? "old_value" : "new_value");
            }
        }
        for (const char *const *k = rest; *k != NULL; k++) {
            value(l, row, *k);
        }
        end_line(l);
    }
    return VG_OK;
}

static void tag_rows(struct line *l, const struct vg_report_doc *d)
{
    static const char *const head[] = {
        "tag", "unit", "bucket_start", "bucket_start_ms", "n", "min", "max",
        "avg", "first", "last", "bad", NULL};
    const json_t *series, *b;
    size_t i, j;

    header(l, head);
    json_array_foreach(d->data, i, series) {
        json_array_foreach(json_object_get(series, "buckets"), j, b) {
            char buf[VG_REP_TEXT_SIZE];
            text(l, vg_rep_str(series, "tag"));
            text(l, vg_rep_str(series, "unit"));
            time_pair(l, json_array_get(b, 0));
            for (size_t k = 1; k < 8; k++) {
                vg_rep_json_number(json_array_get(b, k), buf);
                plain(l, buf);
            }
            end_line(l);
        }
    }
}

int vg_report_write_csv(const struct vg_report_doc *d, FILE *out, char *errmsg)
{
    struct line l = {out, true};
    struct vg_rep_locale loc;
    int rv;

    rv = vg_report_check(d, errmsg);
    if (rv != VG_OK) {
        return rv;
    }
    if (!vg_rep_locale_enter(&loc)) {
        vg_errf(errmsg, "out of memory");
        return VG_ENOMEM;
    }
    switch (d->type) {
    case VG_REPORT_TYPE_ALARMS: alarm_rows(&l, d); break;
    case VG_REPORT_TYPE_AUDIT: rv = audit_rows(&l, d); break;
    case VG_REPORT_TYPE_TAGS: tag_rows(&l, d); break;
    }
    vg_rep_locale_leave(&loc);
    if (rv != VG_OK) {
        vg_errf(errmsg, "out of memory");
        return rv;
    }
    errno = 0;
    if (fflush(out) != 0 || ferror(out)) {
        vg_errf(errmsg, "cannot write the CSV report: %s",
                errno != 0 ? strerror(errno) : "write error");
        return VG_EIO;
    }
    return VG_OK;
}
