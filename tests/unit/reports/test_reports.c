/* Unit tests for node/reports/reports.h.
 *
 * CSV: each report type is written with rows full of quotes, commas,
 * newlines, umlauts and formula-looking text, read back with a strict
 * RFC 4180 reader (CRLF record ends, quotes doubled, nothing after a closing
 * quote), and compared field by field; the header rows must match exactly.
 *
 * PDF: alarm reports of 0, 1, rows-per-page and rows-per-page + 1 rows, an
 * audit trail of 100 records and a tag report of 3 series (one with a hole
 * of missing buckets and an empty bucket, one with no values at all) are
 * written into a temporary directory. The returned page count must equal
 * vg_report_pdf_page_count and what the table in this file expects; poppler
 * must agree (pdfinfo "Pages:", page size A4 landscape), pdftoppm must
 * render that many pages, none blank in the title block, and the pixels
 * must show what the report claims: a tinted priority-1 row, the tag band,
 * no band in the hole and none for the series without values. pdftotext
 * must give the umlauts back (so the text is real UTF-8 glyphs, not boxes)
 * and the footer "page N of M". Without poppler-utils those checks are
 * skipped with a message; the page counts are still checked.
 *
 * Bad data: every kind of wrong shape gives VG_EINVAL naming the row and
 * field, for both writers, and leaves no file; unwritable paths give VG_EIO
 * naming the path and leave no PATH.tmp; a CSV stream that cannot be
 * written gives VG_EIO.
 *
 * Times are shown in local time, so the tests fix TZ to central European
 * time with a POSIX rule (no tzdata needed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cairo.h>
#include <cmocka.h>
#include <fontconfig/fontconfig.h>

#include "reports.h"

#define R VG_REPORT_TABLE_ROWS_PER_PAGE
#define T0 1714557600000ULL /* 2024-05-01 12:00:00 CEST */

static char tmpdir[] = "/tmp/vg-reports-test-XXXXXX";
static bool have_poppler;

/* JSON from TEXT with ' for " (so the literals stay readable); a literal
 * apostrophe is \u0027. */
static json_t *js(const char *text)
{
    char *s = strdup(text);
    json_error_t err;
    json_t *v;

    assert_non_null(s);
    for (char *c = s; *c != '\0'; c++) {
        if (*c == '\'') {
            *c = '"';
        }
    }
    v = json_loads(s, JSON_DECODE_ANY, &err);
    if (v == NULL) {
        fail_msg("bad test JSON: %s: %s", err.text, s);
    }
    free(s);
    return v;
}

/* --------------------------------------------------------------- CSV */

/* A strict RFC 4180 reader: records end in CRLF (a bare CR or LF is
 * allowed only inside quotes), quoted fields double their quotes, nothing
 * may follow a closing quote but a comma or CRLF, and a quote inside an
 * unquoted field is an error. Returns an array of arrays of strings, or
 * NULL when the text breaks a rule. */
static json_t *csv_parse(const char *s, size_t len)
{
    json_t *rows = json_array(), *row = json_array();
    char *field = malloc(len + 1);
    size_t i = 0;

    assert_non_null(field);
    while (i < len) {
        size_t n = 0;
        if (s[i] == '"') {
            for (i++;; i++) {
                if (i >= len) {
                    goto bad;
                }
                if (s[i] == '"') {
                    if (i + 1 < len && s[i + 1] == '"') {
                        field[n++] = '"';
                        i++;
                        continue;
                    }
                    i++;
                    break;
                }
                field[n++] = s[i];
            }
        } else {
            for (; i < len && s[i] != ',' && s[i] != '\r' && s[i] != '\n'; i++) {
                if (s[i] == '"') {
                    goto bad;
                }
                field[n++] = s[i];
            }
        }
        json_array_append_new(row, json_stringn(field, n));
        if (i < len && s[i] == ',') {
            i++;
            if (i == len) {
                goto bad;
            }
        } else if (i + 1 < len && s[i] == '\r' && s[i + 1] == '\n') {
            i += 2;
            json_array_append_new(rows, row);
            row = json_array();
        } else {
            goto bad;
        }
    }
    json_decref(row);
    free(field);
    return rows;
bad:
    json_decref(row);
    json_decref(rows);
    free(field);
    return NULL;
}

/* Write D as CSV into memory; returns the text (free it) and its length. */
static char *csv_text(const struct vg_report_doc *d, size_t *len)
{
    char errmsg[VG_ERRMSG_SIZE] = "";
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    int rv;

    assert_non_null(f);
    rv = vg_report_write_csv(d, f, errmsg);
    if (rv != VG_OK) {
        fail_msg("vg_report_write_csv: %s", errmsg);
    }
    assert_int_equal(fclose(f), 0);
    return buf;
}

/* Compare the parsed CSV with EXPECT: a NULL-terminated list of rows, each
 * a NULL-terminated list of fields. */
static void csv_expect(const struct vg_report_doc *d,
                       const char *const *const *expect)
{
    size_t len, n = 0;
    char *text = csv_text(d, &len);
    json_t *rows = csv_parse(text, len);

    if (rows == NULL) {
        fail_msg("not RFC 4180 CSV:\n%s", text);
    }
    for (; expect[n] != NULL; n++) {
        json_t *row = json_array_get(rows, n);
        size_t k = 0;
        assert_non_null(row);
        for (; expect[n][k] != NULL; k++) {
            const char *got = json_string_value(json_array_get(row, k));
            if (got == NULL || strcmp(got, expect[n][k]) != 0) {
                fail_msg("row %zu field %zu: got [%s], expected [%s]", n, k,
                         got != NULL ? got : "(none)", expect[n][k]);
            }
        }
        assert_int_equal(json_array_size(row), k);
    }
    assert_int_equal(json_array_size(rows), n);
    json_decref(rows);
    free(text);
}

static void test_csv_alarms(void **state)
{
    static const char *const head[] = {
        "id", "time", "time_ms", "alarm", "tag", "section", "priority",
        "cause", "from", "to", "active", "shelved", "out_of_service", "value",
        "user", "station", "reason", "message", NULL};
    static const char *const r1[] = {
        "1", "2024-05-01T12:00:00.123+02:00", "1714557600123", "LT101_HH",
        "LT101", "intake", "1", "raised", "normal", "unack_active", "true",
        "false", "false", "4.75", "", "", "",
        "\xc3\x9c" "berlauf, Becken \"A\"\nbitte pr\xc3\xbc" "fen", NULL};
    static const char *const r2[] = {
        "2", "2024-05-01T12:01:00.000+02:00", "1714557660000", "PT7_L", "", "",
        "", "acked", "unack_active", "ack_active", "true", "", "", "-3.5",
        "'=HYPERLINK(\"http://x\")", "'@op1", "-5", "Pression basse", NULL};
    static const char *const r3[] = {
        "3", "1970-01-01T01:00:00.000+01:00", "0", "X", "", "", "", "shelved",
        "", "", "", "", "", "", "", "", "'+1 day, maintenance", "", NULL};
    static const char *const *const expect[] = {head, r1, r2, r3, NULL};
    struct vg_report_doc d = {.type = VG_REPORT_TYPE_ALARMS, .language = "de"};
    size_t len;
    char *text;

    d.data = js("[{'id': 1, 'time_ms': 1714557600123, 'alarm': 'LT101_HH',"
                "  'tag': 'LT101', 'section': 'intake', 'priority': 1,"
                "  'cause': 'raised', 'from': 'normal', 'to': 'unack_active',"
                "  'active': true, 'shelved': false, 'out_of_service': false,"
                "  'value': 4.75, 'user': null, 'station': null, 'reason': null,"
                "  'message': {'en': 'Overflow, basin \\'A\\'',"
                "              'de': '\xc3\x9c" "berlauf, Becken \\'A\\'\\nbitte "
                "pr\xc3\xbc" "fen'}},"
                " {'id': 2, 'time_ms': 1714557660000, 'alarm': 'PT7_L',"
                "  'tag': null, 'priority': null, 'cause': 'acked',"
                "  'from': 'unack_active', 'to': 'ack_active', 'active': true,"
                "  'value': -3.5, 'user': '=HYPERLINK(\\'http://x\\')',"
                "  'station': '@op1', 'reason': '-5',"
                "  'message': {'fr': 'Pression basse', 'it': 'Pressione'}},"
                " {'id': 3, 'time_ms': 0, 'alarm': 'X', 'cause': 'shelved',"
                "  'reason': '+1 day, maintenance'}]");
    csv_expect(&d, expect);

    /* The raw bytes: CRLF after the header, quotes doubled inside quotes,
     * the LF inside a field kept. */
    text = csv_text(&d, &len);
    assert_true(strncmp(text, "id,time,time_ms,alarm,tag,section,priority,"
                              "cause,from,to,active,shelved,out_of_service,"
                              "value,user,station,reason,message\r\n1,",
                        strlen("id,time,time_ms,alarm,tag,section,priority,"
                               "cause,from,to,active,shelved,out_of_service,"
                               "value,user,station,reason,message\r\n1,")) == 0);
    assert_non_null(strstr(text, ",\"\xc3\x9c" "berlauf, Becken \"\"A\"\"\n"
                                 "bitte pr\xc3\xbc" "fen\"\r\n"));
    assert_non_null(strstr(text, ",\"'=HYPERLINK(\"\"http://x\"\")\","));
    free(text);

    /* Without a language: "en" first. */
    d.language = NULL;
    text = csv_text(&d, &len);
    assert_non_null(strstr(text, ",\"Overflow, basin \"\"A\"\"\"\r\n"));
    free(text);
    json_decref(d.data);
}

static void test_csv_audit(void **state)
{
    static const char *const head[] = {
        "id", "time", "time_ms", "kind", "object", "old_value", "new_value",
        "user", "station", "detail", "term", "node", NULL};
    static const char *const r1[] = {
        "10", "2024-05-01T12:00:00.000+02:00", "1714557600000", "setpoint",
        "FIC101.sp", "12.5", "13,0", "m\xc3\xbcller", "hmi-2",
        "line1\r\nline2", "5", "2", NULL};
    static const char *const r2[] = {
        "11", "2024-05-01T12:00:01.000+02:00", "1714557601000",
        "project_load", "", "", "{\"version\":3,\"files\":[\"a.yaml\"]}",
        "'+cmd|' /C calc'!A0", "", "tab\tinside", "5", "1", NULL};
    static const char *const r3[] = {
        "12", "2024-05-01T12:00:02.000+02:00", "1714557602000", "login", "",
        "true", "'-", "-1e5", "", "", "", "", NULL};
    static const char *const *const expect[] = {head, r1, r2, r3, NULL};
    struct vg_report_doc d = {.type = VG_REPORT_TYPE_AUDIT};

    d.data = js("[{'id': 10, 'time_ms': 1714557600000, 'kind': 'setpoint',"
                "  'object': 'FIC101.sp', 'old_value': 12.5, 'new_value': '13,0',"
                "  'user': 'm\xc3\xbcller', 'station': 'hmi-2',"
                "  'detail': 'line1\\r\\nline2', 'term': 5, 'node': 2},"
                " {'id': 11, 'time_ms': 1714557601000, 'kind': 'project_load',"
                "  'object': null, 'old_value': null,"
                "  'new_value': {'version': 3, 'files': ['a.yaml']},"
                "  'user': '+cmd|\\u0027 /C calc\\u0027!A0',"
                "  'detail': 'tab\\tinside', 'term': 5, 'node': 1},"
                " {'id': 12, 'time_ms': 1714557602000, 'kind': 'login',"
                "  'old_value': true, 'new_value': '-', 'user': '-1e5'}]");
    csv_expect(&d, expect);
    json_decref(d.data);
}

static void test_csv_tags(void **state)
{
    static const char *const head[] = {
        "tag", "unit", "bucket_start", "bucket_start_ms", "n", "min", "max",
        "avg", "first", "last", "bad", NULL};
    static const char *const r1[] = {
        "LT101", "m", "2024-05-01T12:00:00.000+02:00", "1714557600000", "12",
        "1.5", "2.25", "1.875", "1.5", "2.25", "0", NULL};
    static const char *const r2[] = {
        "LT101", "m", "2024-05-01T12:01:00.000+02:00", "1714557660000", "0",
        "", "", "", "", "", "3", NULL};
    static const char *const r3[] = {
        "'=SUM(A1)", "\xc2\xb0" "C", "2024-05-01T12:00:00.000+02:00",
        "1714557600000", "1", "-0.5", "0.1", "1e-07", "-0.5", "0.1", "0", NULL};
    static const char *const *const expect[] = {head, r1, r2, r3, NULL};
    struct vg_report_doc d = {.type = VG_REPORT_TYPE_TAGS};

    d.data = js("[{'tag': 'LT101', 'unit': 'm', 'description': 'Level, basin',"
                "  'from_ms': 1714557600000, 'to_ms': 1714557780000,"
                "  'bucket_ms': 60000, 'buckets': ["
                "   [1714557600000, 12, 1.5, 2.25, 1.875, 1.5, 2.25, 0],"
                "   [1714557660000, 0, null, null, null, null, null, 3]]},"
                " {'tag': '=SUM(A1)', 'unit': '\xc2\xb0" "C', 'bucket_ms': 1000,"
                "  'buckets': [[1714557600000, 1, -0.5, 0.1, 1e-7, -0.5, 0.1, 0]]},"
                " {'tag': 'empty', 'bucket_ms': 1000, 'buckets': []}]");
    csv_expect(&d, expect);
    json_decref(d.data);
}

static void test_csv_empty(void **state)
{
    struct vg_report_doc d = {.type = VG_REPORT_TYPE_AUDIT};
    size_t len;
    char *text;

    d.data = json_array();
    text = csv_text(&d, &len);
    assert_string_equal(text, "id,time,time_ms,kind,object,old_value,new_value,"
                              "user,station,detail,term,node\r\n");
    free(text);
    json_decref(d.data);
}

static void test_csv_write_error(void **state)
{
    struct vg_report_doc d = {.type = VG_REPORT_TYPE_AUDIT};
    char errmsg[VG_ERRMSG_SIZE] = "";
    FILE *f = fopen("/dev/full", "w");

    if (f == NULL) {
        skip();
    }
    d.data = json_array();
    assert_int_equal(vg_report_write_csv(&d, f, errmsg), VG_EIO);
    assert_non_null(strstr(errmsg, "cannot write"));
    fclose(f);
    json_decref(d.data);
}

/* --------------------------------------------------------------- PDF */

static char *path_in(const char *name)
{
    char *p = malloc(strlen(tmpdir) + strlen(name) + 2);

    if (p == NULL) {
        abort(); /* not assert_non_null: the compiler must see it */
    }
    sprintf(p, "%s/%s", tmpdir, name);
    return p;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static bool exists_tmp(const char *path)
{
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    return exists(tmp);
}

/* The output of shell command CMD (free it); fails the test if it fails. */
static char *run(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    char *out = NULL;
    size_t len = 0, n;
    FILE *m = open_memstream(&out, &len);
    char buf[4096];
    int status;

    assert_non_null(p);
    assert_non_null(m);
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) {
        fwrite(buf, 1, n, m);
    }
    fclose(m);
    status = pclose(p);
    if (status != 0) {
        fail_msg("%s failed (%d): %s", cmd, status, out);
    }
    return out;
}

struct rgb8 {
    int r, g, b;
};

/* Pixels of page PNG within [X0, X1) x [Y0, Y1) (in pixels, clipped) that are
 * within TOL of C per channel; with C NULL, pixels that are not white. */
static size_t count_pixels(cairo_surface_t *img, int x0, int y0, int x1, int y1,
                           const struct rgb8 *c, int tol)
{
    int w = cairo_image_surface_get_width(img);
    int h = cairo_image_surface_get_height(img);
    int stride = cairo_image_surface_get_stride(img);
    const unsigned char *data = cairo_image_surface_get_data(img);
    size_t n = 0;

    for (int y = y0 < 0 ? 0 : y0; y < (y1 > h ? h : y1); y++) {
        const uint32_t *row = (const uint32_t *)(const void *)(data + (size_t)y * stride);
        for (int x = x0 < 0 ? 0 : x0; x < (x1 > w ? w : x1); x++) {
            int r = (int)(row[x] >> 16 & 0xff), g = (int)(row[x] >> 8 & 0xff),
                b = (int)(row[x] & 0xff);
            if (c == NULL ? (r < 200 || g < 200 || b < 200)
                          : (abs(r - c->r) <= tol && abs(g - c->g) <= tol &&
                             abs(b - c->b) <= tol)) {
                n++;
            }
        }
    }
    return n;
}

/* Points at -r 30 to pixels. */
#define PX(pt) ((int)((pt) * 30.0 / 72.0))

static const struct rgb8 BAND_PX = {158, 201, 245};
static const struct rgb8 PRIO1_PX = {255, 199, 199};

/* What a rendered page must show, beyond a title block. */
struct page_check {
    unsigned page;             /* 1-based; 0 ends the list */
    const struct rgb8 *colour; /* looked for in the rectangle (points) */
    double x0, y0, x1, y1;
    bool present;              /* at least 20 such pixels, or none at all */
};

/* Write D to NAME.pdf, expect EXPECT_PAGES pages, and have poppler check
 * the file: page count, page size, rendering, CHECKS, and the text of page
 * 1 containing each of TEXTS (NULL-terminated, may be NULL). */
static void pdf_check(const char *name, const struct vg_report_doc *d,
                      unsigned expect_pages, const struct page_check *checks,
                      const char *const *texts)
{
    char errmsg[VG_ERRMSG_SIZE] = "";
    char file[64], cmd[1024], dir[256], *path, *out;
    unsigned pages = 0, count = 0;
    const char *p;
    DIR *dd;
    struct dirent *e;

    snprintf(file, sizeof file, "%s.pdf", name);
    path = path_in(file);
    if (vg_report_write_pdf(d, path, &pages, errmsg) != VG_OK) {
        fail_msg("vg_report_write_pdf %s: %s", name, errmsg);
    }
    assert_int_equal(pages, expect_pages);
    assert_int_equal(pages, vg_report_pdf_page_count(d));
    assert_true(exists(path));
    assert_false(exists_tmp(path));

    if (!have_poppler) {
        print_message("# poppler-utils (pdfinfo, pdftoppm, pdftotext) not "
                      "installed: %s.pdf not rendered, only its page count "
                      "checked\n", name);
        free(path);
        skip();
        return;
    }
    snprintf(cmd, sizeof cmd, "pdfinfo %s 2>&1", path);
    out = run(cmd);
    p = strstr(out, "\nPages:");
    assert_non_null(p);
    assert_int_equal(strtoul(p + strlen("\nPages:"), NULL, 10), expect_pages);
    assert_non_null(strstr(out, "842 x 595 pts (A4)"));
    free(out);

    snprintf(dir, sizeof dir, "%s/%s-png", tmpdir, name);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(cmd, sizeof cmd, "pdftoppm -r 30 -png %s %s/p 2>&1", path, dir);
    free(run(cmd));
    dd = opendir(dir);
    assert_non_null(dd);
    while ((e = readdir(dd)) != NULL) {
        char png[768];
        const char *dot = strrchr(e->d_name, '.');
        const char *dash = strrchr(e->d_name, '-');
        cairo_surface_t *img;
        unsigned page;
        if (dot == NULL || strcmp(dot, ".png") != 0 || dash == NULL) {
            continue;
        }
        page = (unsigned)strtoul(dash + 1, NULL, 10);
        count++;
        snprintf(png, sizeof png, "%s/%s", dir, e->d_name);
        img = cairo_image_surface_create_from_png(png);
        assert_int_equal(cairo_surface_status(img), CAIRO_STATUS_SUCCESS);
        assert_int_equal(cairo_image_surface_get_width(img), PX(842) + 1);
        /* The title block (plant, title, period) and the footer. */
        if (count_pixels(img, 0, 0, PX(842), PX(104), NULL, 0) < 50) {
            fail_msg("%s page %u: title block is blank", name, page);
        }
        if (count_pixels(img, 0, PX(570), PX(842), PX(595), NULL, 0) < 10) {
            fail_msg("%s page %u: footer is blank", name, page);
        }
        for (const struct page_check *c = checks; c != NULL && c->page != 0;
             c++) {
            size_t n;
            if (c->page != page) {
                continue;
            }
            n = count_pixels(img, PX(c->x0), PX(c->y0), PX(c->x1), PX(c->y1),
                             c->colour, 6);
            if (c->present ? n < 20 : n != 0) {
                fail_msg("%s page %u: %zu pixels of (%d,%d,%d) in "
                         "(%g,%g)-(%g,%g), expected %s", name, page, n,
                         c->colour->r, c->colour->g, c->colour->b, c->x0,
                         c->y0, c->x1, c->y1, c->present ? "some" : "none");
            }
        }
        cairo_surface_destroy(img);
    }
    closedir(dd);
    assert_int_equal(count, expect_pages);

    snprintf(cmd, sizeof cmd, "pdftotext -layout %s - 2>&1", path);
    out = run(cmd);
    snprintf(cmd, sizeof cmd, "page 1 of %u", expect_pages);
    assert_non_null(strstr(out, cmd));
    snprintf(cmd, sizeof cmd, "page %u of %u", expect_pages, expect_pages);
    assert_non_null(strstr(out, cmd));
    for (const char *const *t = texts; t != NULL && *t != NULL; t++) {
        if (strstr(out, *t) == NULL) {
            fail_msg("%s: text [%s] not found in:\n%s", name, *t, out);
        }
    }
    free(out);
    free(path);
}

static const char LONG_WORD[] = "K\xc3\xbchlwasserpumpe";

/* N journal rows: priorities 1..4 in turn, every third row raised, umlauts
 * everywhere, row 0 with a message far too long for its cell, row 2 with an
 * alarm name that is not valid UTF-8 and a tag with control characters. */
static json_t *alarm_rows(size_t n)
{
    json_t *rows = json_array();

    for (size_t i = 0; i < n; i++) {
        char name[32], tag[32];
        json_t *row, *msg;
        snprintf(name, sizeof name, "ALM_%zu", i + 1);
        snprintf(tag, sizeof tag, "TT%zu", 100 + i);
        msg = json_pack("{s:s, s:s}", "de",
                        "Temperatur zu hoch \xe2\x80\x93 K\xc3\xbchlung pr\xc3\xbc"
                        "fen",
                        "en", "Temperature high");
        if (i == 0) {
            char *big = malloc(4001);
            assert_non_null(big);
            for (size_t k = 0; k < 4000; k += strlen(LONG_WORD)) {
                snprintf(big + k, 4001 - k, "%s", LONG_WORD);
            }
            json_object_set_new(msg, "de", json_string(big));
            free(big);
        }
        row = json_pack("{s:I, s:I, s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:b,"
                        " s:f, s:s, s:s, s:o}",
                        "id", (json_int_t)(i + 1), "time_ms",
                        (json_int_t)(T0 + i * 61000), "alarm", name, "tag", tag,
                        "section", "Aufbereitung", "priority",
                        (json_int_t)(i % 4 + 1), "cause",
                        i % 3 == 0 ? "raised" : "acked", "from",
                        i % 3 == 0 ? "normal" : "unack_active", "to",
                        i % 3 == 0 ? "unack_active" : "ack_active", "active", 1,
                        "value", 80.0 + (double)i * 0.25, "user", "sch\xc3\xa4" "fer",
                        "station", "hmi-1", "message", msg);
        assert_non_null(row);
        if (i == 2) {
            json_object_set_new(row, "alarm",
                                json_string_nocheck("bad \xff\xfe utf8 \xc3"));
            json_object_set_new(row, "tag", json_string("a\tb\nc\x7f"));
        }
        json_array_append_new(rows, row);
    }
    return rows;
}

static struct vg_report_doc alarm_doc(json_t *rows)
{
    struct vg_report_doc d = {
        .type = VG_REPORT_TYPE_ALARMS,
        .title = "Alarmbericht",
        .plant = "Wasserwerk S\xc3\xbc" "d",
        .filter = "sections: intake, treatment",
        .language = "de",
        .from_ms = T0,
        .to_ms = T0 + 86400000,
        .generated_ms = T0 + 90000000,
        .data = rows,
    };
    return d;
}

static void test_pdf_alarms_0(void **state)
{
    struct vg_report_doc d = alarm_doc(json_array());
    static const char *const texts[] = {"Wasserwerk S\xc3\xbc" "d",
                                        "No alarm journal entries", NULL};

    pdf_check("alarms-0", &d, 1, NULL, texts);
    json_decref(d.data);
}

static void test_pdf_alarms_1(void **state)
{
    struct vg_report_doc d = alarm_doc(alarm_rows(1));
    /* Row 0 is raised with priority 1: its row band is tinted. */
    static const struct page_check checks[] = {
        {1, &PRIO1_PX, 28, 126, 814, 143, true},
        {0, NULL, 0, 0, 0, 0, false},
    };
    static const char *const texts[] = {
        "Wasserwerk S\xc3\xbc" "d", "Alarmbericht", "Filter: sections: intake, treatment",
        "2024-05-01 12:00:00", "sch\xc3\xa4" "fer@hmi-1", "Aufbereitung",
        "K\xc3\xbchlwasserpumpe", "\xe2\x80\xa6", NULL};

    pdf_check("alarms-1", &d, 1, checks, texts);
    json_decref(d.data);
}

static void test_pdf_alarms_full_page(void **state)
{
    struct vg_report_doc d = alarm_doc(alarm_rows(R));

    pdf_check("alarms-full", &d, 1, NULL, NULL);
    json_decref(d.data);
}

static void test_pdf_alarms_one_more(void **state)
{
    struct vg_report_doc d = alarm_doc(alarm_rows(R + 1));
    static const char *const texts[] = {"ALM_26", NULL};

    pdf_check("alarms-one-more", &d, 2, NULL, texts);
    json_decref(d.data);
}

static void test_pdf_audit(void **state)
{
    struct vg_report_doc d = {
        .type = VG_REPORT_TYPE_AUDIT,
        .plant = "Wasserwerk",
        .from_ms = T0,
        .to_ms = 0,
        .generated_ms = T0,
        .data = json_array(),
    };
    static const char *const texts[] = {"Audit trail report", "Period: 2024-05-01 12:00:00 \xe2\x80\x93 open",
                                        "Sollwert ge\xc3\xa4ndert", NULL};

    for (size_t i = 0; i < 100; i++) {
        json_t *old_v = i % 4 == 0   ? json_real((double)i / 3)
                        : i % 4 == 1 ? json_string("\xc3\xb6" "ffnen")
                        : i % 4 == 2 ? json_null()
                                     : json_pack("{s:i}", "v", (int)i);
        json_t *row = json_pack("{s:I, s:I, s:s, s:s, s:o, s:I, s:s, s:n, s:s,"
                                " s:I, s:I}",
                                "id", (json_int_t)(1000 - i), "time_ms",
                                (json_int_t)(T0 + i * 1000), "kind", "setpoint",
                                "object", "FIC101.sp", "old_value", old_v,
                                "new_value", (json_int_t)i, "user", "admin",
                                "station", "detail", "Sollwert ge\xc3\xa4ndert",
                                "term", (json_int_t)7, "node", (json_int_t)(i % 3 + 1));
        assert_non_null(row);
        json_array_append_new(d.data, row);
    }
    pdf_check("audit-100", &d, 4, NULL, texts);
    json_decref(d.data);
}

/* Y of chart C (0, 1) on a chart page, in points: where its band can be. */
#define CHART_TOP(c) (108.0 + (c) * (220.0 + 14.0) + 30)
#define CHART_BOT(c) (108.0 + (c) * (220.0 + 14.0) + 200)
/* X of minute M of the hour shown, in points (plot from 86 to 806). */
#define MINUTE_X(m) (86.0 + 720.0 * (m) / 60.0)

static json_t *series(const char *tag, const char *unit, size_t nbuckets,
                      bool (*present)(size_t), bool values)
{
    json_t *buckets = json_array();

    for (size_t i = 0; i < nbuckets; i++) {
        double v = 5 + 3 * sin((double)i / 6);
        json_t *b;
        if (present != NULL && !present(i)) {
            continue; /* missing from the array: a gap */
        }
        if (!values || i == 40) {
            b = json_pack("[I, i, n, n, n, n, n, i]",
                          (json_int_t)(T0 + i * 60000), 0, values ? 0 : 2);
        } else {
            b = json_pack("[I, i, f, f, f, f, f, i]",
                          (json_int_t)(T0 + i * 60000), 60, v - 1, v + 1, v,
                          v - 0.5, v + 0.5, 0);
        }
        json_array_append_new(buckets, b);
    }
    return json_pack("{s:s, s:s?, s:s, s:I, s:I, s:i, s:o}", "tag", tag, "unit",
                     unit, "description", "Beh\xc3\xa4lter Nord \xe2\x80\x93 F\xc3\xbcllstand",
                     "from_ms", (json_int_t)T0, "to_ms", (json_int_t)(T0 + 3600000),
                     "bucket_ms", 60000, "buckets", buckets);
}

static bool not_20_to_29(size_t i)
{
    return i < 20 || i >= 30;
}

static void test_pdf_tags(void **state)
{
    struct vg_report_doc d = {
        .type = VG_REPORT_TYPE_TAGS,
        .title = "Tagesbericht",
        .plant = "Wasserwerk",
        .from_ms = T0,
        .to_ms = T0 + 3600000,
        .generated_ms = T0 + 3600000,
        .data = json_array(),
    };
    /* Page 2: LT101 (all buckets) above, FT202 (a hole at minutes 20..29)
     * below; page 3: PT303 (no values) alone. */
    static const struct page_check checks[] = {
        {2, &BAND_PX, MINUTE_X(1), CHART_TOP(0), MINUTE_X(59), CHART_BOT(0), true},
        {2, &BAND_PX, MINUTE_X(1), CHART_TOP(1), MINUTE_X(19), CHART_BOT(1), true},
        {2, &BAND_PX, MINUTE_X(20.5), CHART_TOP(1), MINUTE_X(29.5), CHART_BOT(1), false},
        {2, &BAND_PX, MINUTE_X(31), CHART_TOP(1), MINUTE_X(39), CHART_BOT(1), true},
        {2, &BAND_PX, MINUTE_X(40.3), CHART_TOP(1), MINUTE_X(40.7), CHART_BOT(1), false},
        {3, &BAND_PX, 0, 100, 842, 560, false},
        {0, NULL, 0, 0, 0, 0, false},
    };
    static const char *const texts[] = {
        "Tagesbericht", "LT101", "FT202", "PT303 Druck \xc3\x9c" "berwachung",
        "Beh\xc3\xa4lter Nord", NULL};

    json_array_append_new(d.data, series("LT101", "m", 60, NULL, true));
    json_array_append_new(d.data, series("FT202", "m\xc2\xb3/h", 60, not_20_to_29, true));
    json_array_append_new(d.data, series("PT303 Druck \xc3\x9c" "berwachung", NULL, 10,
                                         NULL, false));
    pdf_check("tags-3", &d, 3, checks, texts);
    json_decref(d.data);
}

static void test_pdf_tags_0(void **state)
{
    struct vg_report_doc d = {.type = VG_REPORT_TYPE_TAGS, .data = json_array()};
    static const char *const texts[] = {"Tag history report", "No tags", NULL};

    pdf_check("tags-0", &d, 1, NULL, texts);
    json_decref(d.data);
}

/* Odd but valid series: one bucket, a flat line, huge and tiny values,
 * buckets out of order and beyond the range, no from/to. Must draw. */
static void test_pdf_tags_odd(void **state)
{
    struct vg_report_doc d = {.type = VG_REPORT_TYPE_TAGS};
    char errmsg[VG_ERRMSG_SIZE] = "";
    unsigned pages = 0;
    char *path = path_in("tags-odd.pdf");

    d.data = js("[{'tag': 'one', 'bucket_ms': 1000,"
                "  'buckets': [[5000, 1, 2, 2, 2, 2, 2, 0]]},"
                " {'tag': 'huge', 'bucket_ms': 1,"
                "  'buckets': [[0, 1, -1.7e308, 1.7e308, 0, 0, 0, 0],"
                "              [9223372036854775807, 1, 1e-300, 1e-300, 1e-300, 0, 0, 0]]},"
                " {'tag': 'order', 'bucket_ms': 60000, 'from_ms': 1000, 'to_ms': 2000,"
                "  'buckets': [[180000, 1, 1, 2, 1.5, 1, 2, 0],"
                "              [0, 1, 3, 4, 3.5, 3, 4, 0]]},"
                " {'tag': 'nomin', 'bucket_ms': 60000,"
                "  'buckets': [[0, 3, null, null, 7, null, null, 0]]}]");
    assert_int_equal(vg_report_write_pdf(&d, path, &pages, errmsg), VG_OK);
    assert_int_equal(pages, 1 + 2);
    json_decref(d.data);
    free(path);
}

static void test_page_count(void **state)
{
    static const struct {
        enum vg_report_type type;
        size_t rows;
        unsigned pages;
    } cases[] = {
        {VG_REPORT_TYPE_ALARMS, 0, 1},      {VG_REPORT_TYPE_ALARMS, 1, 1},
        {VG_REPORT_TYPE_ALARMS, R, 1},      {VG_REPORT_TYPE_ALARMS, R + 1, 2},
        {VG_REPORT_TYPE_AUDIT, 100, 4},     {VG_REPORT_TYPE_AUDIT, 101, 5},
        {VG_REPORT_TYPE_TAGS, 0, 1},        {VG_REPORT_TYPE_TAGS, 1, 2},
        {VG_REPORT_TYPE_TAGS, 2, 2},        {VG_REPORT_TYPE_TAGS, 3, 3},
        {VG_REPORT_TYPE_TAGS, R, 1 + 13},   {VG_REPORT_TYPE_TAGS, R + 1, 2 + 13},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct vg_report_doc d = {.type = cases[i].type, .data = json_array()};
        for (size_t k = 0; k < cases[i].rows; k++) {
            json_array_append_new(d.data, json_object());
        }
        assert_int_equal(vg_report_pdf_page_count(&d), cases[i].pages);
        json_decref(d.data);
    }
    /* Not an array: one page (the writer refuses it anyway). */
    {
        struct vg_report_doc d = {.type = VG_REPORT_TYPE_TAGS, .data = NULL};
        assert_int_equal(vg_report_pdf_page_count(&d), 1);
    }
}

/* ----------------------------------------------------------- bad data */

static void test_bad_data(void **state)
{
    static const struct {
        enum vg_report_type type;
        const char *json; /* NULL: no data at all */
        const char *says[3];
    } cases[] = {
        {VG_REPORT_TYPE_ALARMS, "{'rows': []}",
         {"must be an array", "not an object", NULL}},
        {VG_REPORT_TYPE_AUDIT, NULL, {"must be an array", "not nothing", NULL}},
        {VG_REPORT_TYPE_ALARMS,
         "[{'id': 1, 'time_ms': 5, 'alarm': 'a', 'cause': 'raised'}, 5]",
         {"alarm journal row 2 must be an object, not 5", NULL}},
        {VG_REPORT_TYPE_ALARMS,
         "[{'id': 7, 'time_ms': 'yesterday', 'alarm': 'a', 'cause': 'raised'}]",
         {"alarm journal row 1 (id 7)", "\"time_ms\" must be an integer >= 0, "
                                        "not a string", NULL}},
        {VG_REPORT_TYPE_ALARMS,
         "[{'id': 1, 'time_ms': 5, 'alarm': 'a', 'cause': 'raised'},"
         " {'id': 2, 'time_ms': 5, 'alarm': 'a', 'cause': 'raised', 'priority': 7}]",
         {"alarm journal row 2 (id 2)", "\"priority\" must be an integer 1..4, not 7",
          NULL}},
        {VG_REPORT_TYPE_ALARMS,
         "[{'id': 1, 'time_ms': 5, 'alarm': 'a', 'cause': 'raised',"
         "  'message': {'en': 5}}]",
         {"alarm journal row 1 (id 1)", "\"message\"", NULL}},
        {VG_REPORT_TYPE_ALARMS, "[{'id': 1, 'time_ms': -5, 'alarm': 'a', 'cause': 'x'}]",
         {"row 1", "not -5", NULL}},
        {VG_REPORT_TYPE_AUDIT, "[{'id': 1, 'time_ms': 5}]",
         {"audit record 1 (id 1): \"kind\" is missing", NULL}},
        {VG_REPORT_TYPE_AUDIT, "[{'time_ms': 5, 'kind': 'k'}]",
         {"audit record 1: \"id\" is missing", NULL}},
        {VG_REPORT_TYPE_TAGS,
         "[{'tag': 'LT101', 'bucket_ms': 1000,"
         "  'buckets': [[0, 1, 1, 1, 1, 1, 1, 0], [1000, 1, 1]]}]",
         {"tag series 1 (\"LT101\"), bucket 2: expected an array of 8 values",
          "not 3", NULL}},
        {VG_REPORT_TYPE_TAGS,
         "[{'tag': 'LT101', 'bucket_ms': 1000, 'buckets': [[0, 1, 'x', 1, 1, 1, 1, 0]]}]",
         {"tag series 1 (\"LT101\"), bucket 1: min (value 3) must be a number "
          "or null, not a string", NULL}},
        {VG_REPORT_TYPE_TAGS,
         "[{'tag': 'LT101', 'bucket_ms': 1000, 'buckets': [[null, 1, 1, 1, 1, 1, 1, 0]]}]",
         {"bucket 1: start_ms", "not null", NULL}},
        {VG_REPORT_TYPE_TAGS, "[{'tag': 'LT101', 'bucket_ms': 0, 'buckets': []}]",
         {"tag series 1 (\"LT101\")", "\"bucket_ms\" must be an integer > 0", NULL}},
        {VG_REPORT_TYPE_TAGS, "[{'tag': 'LT101', 'bucket_ms': 10, 'buckets': {}}]",
         {"\"buckets\" must be an array, not an object", NULL}},
        {VG_REPORT_TYPE_TAGS, "[{'tag': 'a', 'bucket_ms': 10, 'buckets': [5]}]",
         {"bucket 1: expected an array of 8 values", "not 5", NULL}},
    };
    char *keep = path_in("keep.pdf");
    FILE *f = fopen(keep, "w");
    char buf[16] = "";

    assert_non_null(f);
    fputs("old", f);
    fclose(f);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct vg_report_doc d = {.type = cases[i].type};
        char errmsg[VG_ERRMSG_SIZE] = "";
        char *out = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&out, &len);
        unsigned pages = 99;

        d.data = cases[i].json != NULL ? js(cases[i].json) : NULL;
        assert_int_equal(vg_report_write_csv(&d, m, errmsg), VG_EINVAL);
        fclose(m);
        assert_int_equal(len, 0); /* nothing written, not even the header */
        free(out);
        for (size_t k = 0; cases[i].says[k] != NULL; k++) {
            if (strstr(errmsg, cases[i].says[k]) == NULL) {
                fail_msg("case %zu: [%s] not in [%s]", i, cases[i].says[k],
                         errmsg);
            }
        }
        errmsg[0] = '\0';
        assert_int_equal(vg_report_write_pdf(&d, keep, &pages, errmsg), VG_EINVAL);
        assert_int_equal(pages, 99);
        assert_non_null(strstr(errmsg, cases[i].says[0]));
        assert_int_equal(vg_report_check(&d, NULL), VG_EINVAL);
        json_decref(d.data);
    }
    /* The old file is untouched and no temporary is left. */
    f = fopen(keep, "r");
    assert_non_null(f);
    assert_non_null(fgets(buf, sizeof buf, f));
    fclose(f);
    assert_string_equal(buf, "old");
    assert_false(exists_tmp(keep));
    free(keep);
}

static void test_unwritable(void **state)
{
    struct vg_report_doc d = {.type = VG_REPORT_TYPE_AUDIT, .data = json_array()};
    char errmsg[VG_ERRMSG_SIZE] = "";
    char *dir = path_in("adir"), *inner = path_in("adir/x");
    FILE *f;

    assert_int_equal(vg_report_write_pdf(&d, "/nonexistent/dir/x.pdf", NULL,
                                         errmsg), VG_EIO);
    assert_non_null(strstr(errmsg, "/nonexistent/dir/x.pdf"));
    assert_non_null(strstr(errmsg, "No such file or directory"));

    /* PATH is a non-empty directory: the report is drawn into PATH.tmp, the
     * rename fails, and PATH.tmp must go. */
    assert_int_equal(mkdir(dir, 0700), 0);
    f = fopen(inner, "w");
    assert_non_null(f);
    fclose(f);
    errmsg[0] = '\0';
    assert_int_equal(vg_report_write_pdf(&d, dir, NULL, errmsg), VG_EIO);
    assert_non_null(strstr(errmsg, "cannot rename"));
    assert_non_null(strstr(errmsg, dir));
    assert_false(exists_tmp(dir));

    errmsg[0] = '\0';
    assert_int_equal(vg_report_write_pdf(&d, "", NULL, errmsg), VG_EINVAL);
    json_decref(d.data);
    free(dir);
    free(inner);
}

/* -------------------------------------------------------------- setup */

static int setup(void **state)
{
    /* Central European time, without needing tzdata. */
    setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3", 1);
    tzset();
    if (mkdtemp(tmpdir) == NULL) {
        return -1;
    }
    have_poppler = system("command -v pdfinfo >/dev/null 2>&1 && "
                          "command -v pdftoppm >/dev/null 2>&1 && "
                          "command -v pdftotext >/dev/null 2>&1") == 0;
    if (!have_poppler) {
        print_message("# poppler-utils not installed (apt-get install "
                      "poppler-utils): PDF rendering checks are skipped\n");
    }
    return 0;
}

static int teardown(void **state)
{
    int rv = 0;

    /* VG_REPORTS_KEEP=1 keeps the PDFs and PNGs for a look by eye. */
    if (getenv("VG_REPORTS_KEEP") != NULL) {
        print_message("# kept %s\n", tmpdir);
    } else {
        rv = vg_remove_tree(tmpdir);
    }

    /* Free cairo's font caches and then fontconfig's configuration, which
     * LeakSanitizer would otherwise report (288 bytes) at exit; so the
     * sanitizer run keeps leak detection on for the code under test. */
    cairo_debug_reset_static_data();
    FcFini();
    return rv;
}

int main(void)
{
    static const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_alarms),
        cmocka_unit_test(test_csv_audit),
        cmocka_unit_test(test_csv_tags),
        cmocka_unit_test(test_csv_empty),
        cmocka_unit_test(test_csv_write_error),
        cmocka_unit_test(test_page_count),
        cmocka_unit_test(test_pdf_alarms_0),
        cmocka_unit_test(test_pdf_alarms_1),
        cmocka_unit_test(test_pdf_alarms_full_page),
        cmocka_unit_test(test_pdf_alarms_one_more),
        cmocka_unit_test(test_pdf_audit),
        cmocka_unit_test(test_pdf_tags),
        cmocka_unit_test(test_pdf_tags_0),
        cmocka_unit_test(test_pdf_tags_odd),
        cmocka_unit_test(test_bad_data),
        cmocka_unit_test(test_unwritable),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
