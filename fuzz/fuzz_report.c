/* libFuzzer target for the report generator (node/reports/reports.h): the
 * data check, the CSV writer and the PDF writer, fed with JSON that a server
 * (or something pretending to be one) answered with.
 *
 * Input layout: byte 0 holds options, the rest is JSON text (any value, not
 * only arrays); input that jansson does not parse is skipped.
 *   byte 0 & 3     report type: 0 alarms, 1 tags, 2 audit, 3 alarms
 *   byte 0 & 4     language "de" (else NULL)
 *   byte 0 & 8     title, plant and filter set (umlauts, a long filter)
 *   byte 0 & 16    period and generation time set (else 0: "open")
 * Checked:
 *   - vg_report_check answers VG_OK or VG_EINVAL, the latter with a message;
 *   - vg_report_write_csv into a memory stream answers exactly what the
 *     check did (and the same message); on VG_EINVAL it wrote nothing; on
 *     VG_OK the text is RFC 4180 as reports.h promises (CRLF record ends,
 *     quotes doubled, no quote or line break in an unquoted field), every
 *     record has the header's number of fields, there is one record per row
 *     (per bucket for tags) after the header, and no field starts with a
 *     formula character unless it is a plain number;
 *   - vg_report_pdf_page_count is at least 1;
 *   - vg_report_write_pdf on bad data answers VG_EINVAL and creates no
 *     file; on good data of at most 60 rows it answers VG_OK, reports
 *     vg_report_pdf_page_count pages, leaves no PATH.tmp, and the file is a
 *     PDF with that many page objects.
 * Nothing may crash, leak or read out of bounds (ASan, UBSan). Any failed
 * check aborts. Times are local: TZ is fixed to central European time so
 * that a run does not depend on the machine's zone. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cairo.h>
#include <fontconfig/fontconfig.h>

#include "reports.h"

#include "fuzz_check.h"

/* PDFs are drawn only for data of at most this many rows: cairo is slow
 * enough that larger ones would cost more executions than they find. */
#define PDF_ROWS_MAX 60

static const enum vg_report_type types[4] = {
    VG_REPORT_TYPE_ALARMS, VG_REPORT_TYPE_TAGS, VG_REPORT_TYPE_AUDIT,
    VG_REPORT_TYPE_ALARMS};

static struct {
    char dir[256]; /* "" until created */
    char pdf[300];
    char tmp[310];
} g;

/* At exit: the temporary directory, and cairo's and fontconfig's caches,
 * so that LeakSanitizer reports only what the report code leaked (as in
 * tests/unit/reports/). */
static void cleanup(void)
{
    unlink(g.pdf);
    unlink(g.tmp);
    rmdir(g.dir);
    cairo_debug_reset_static_data();
    FcFini();
}

static void setup(void)
{
    fuzz_tmpdir(g.dir, sizeof g.dir, "report");
    snprintf(g.pdf, sizeof g.pdf, "%s/report.pdf", g.dir);
    snprintf(g.tmp, sizeof g.tmp, "%s.tmp", g.pdf);
    CHECK(setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3", 1) == 0);
    atexit(cleanup);
}

/* ------------------------------------------------------------------ CSV */

/* A field that a spreadsheet would run as a formula: starts with = + - @,
 * a tab or CR, and is not a plain number (digits, '.', an exponent and
 * signs only, with at least one digit). reports.h promises there are none. */
static bool formula(const char *s, size_t n)
{
    bool digit = false;

    if (n == 0 || strchr("=+-@\t\r", s[0]) == NULL) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] >= '0' && s[i] <= '9') {
            digit = true;
        } else if (strchr("+-.eE", s[i]) == NULL || s[i] == '\0') {
            return true;
        }
    }
    return !digit;
}

/* Read TEXT as strict RFC 4180 (see reports.h) and check every record has
 * FIELDS fields; returns the number of records. */
static size_t csv_records(const char *s, size_t len, size_t fields)
{
    char *field = malloc(len + 1);
    size_t records = 0, pos = 0;

    CHECK(field != NULL);
    while (pos < len) {
        size_t nf = 0;
        for (;;) {
            size_t n = 0;
            if (s[pos] == '"') {
                for (pos++;; pos++) {
                    CHECK(pos < len); /* a quote left open */
                    if (s[pos] == '"') {
                        if (pos + 1 < len && s[pos + 1] == '"') {
                            field[n++] = '"';
                            pos++;
                            continue;
                        }
                        pos++;
                        break;
                    }
                    field[n++] = s[pos];
                }
            } else {
                for (; pos < len && s[pos] != ',' && s[pos] != '\r'; pos++) {
                    CHECK(s[pos] != '"' && s[pos] != '\n');
                    field[n++] = s[pos];
                }
            }
            CHECK(!formula(field, n));
            nf++;
            CHECK(pos < len); /* every record ends in CRLF */
            if (s[pos] == ',') {
                pos++;
                continue;
            }
            CHECK(s[pos] == '\r' && pos + 1 < len && s[pos + 1] == '\n');
            pos += 2;
            break;
        }
        CHECK(nf == fields);
        records++;
    }
    free(field);
    return records;
}

static void check_csv(const struct vg_report_doc *d, const char *text,
                      size_t len)
{
    size_t fields, rows = 0;
    const json_t *row;
    size_t i;

    switch (d->type) {
    case VG_REPORT_TYPE_ALARMS:
        fields = 18;
        rows = json_array_size(d->data);
        CHECK(len > 3 && strncmp(text, "id,", 3) == 0);
        break;
    case VG_REPORT_TYPE_AUDIT:
        fields = 12;
        rows = json_array_size(d->data);
        CHECK(len > 3 && strncmp(text, "id,", 3) == 0);
        break;
    default:
        fields = 11;
        json_array_foreach(d->data, i, row) {
            rows += json_array_size(json_object_get(row, "buckets"));
        }
        CHECK(len > 4 && strncmp(text, "tag,", 4) == 0);
        break;
    }
    CHECK(strlen(text) == len); /* no NUL in the text */
    CHECK(csv_records(text, len, fields) == rows + 1);
}

/* ------------------------------------------------------------------ PDF */

/* Page objects in the PDF at PATH ("/Type /Page", not "/Pages"). */
static unsigned pdf_pages(const char *path)
{
    static const char key[] = "/Type /Page";
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    size_t len = 0, cap = 0, n;
    unsigned pages = 0;

    CHECK(f != NULL);
    do {
        if (cap - len < 65536) {
            cap = cap * 2 + 65536;
            data = realloc(data, cap + 1);
            CHECK(data != NULL);
        }
        n = fread(data + len, 1, cap - len, f);
        len += n;
    } while (n > 0);
    CHECK(!ferror(f));
    fclose(f);
    data[len] = '\0';
    CHECK(len > 5 && memcmp(data, "%PDF-", 5) == 0);
    for (size_t i = 0; i + sizeof key <= len; i++) {
        if (memcmp(data + i, key, sizeof key - 1) == 0 &&
            data[i + sizeof key - 1] != 's') {
            pages++;
        }
    }
    free(data);
    return pages;
}

/* ---------------------------------------------------------------- input */

int LLVMFuzzerTestOneInput(const uint8_t *input, size_t input_size)
{
    char check_msg[VG_ERRMSG_SIZE] = "", csv_msg[VG_ERRMSG_SIZE] = "",
         pdf_msg[VG_ERRMSG_SIZE] = "";
    struct vg_report_doc d = {0};
    json_error_t jerr;
    unsigned opt, count, pages = 0;
    char *text = NULL;
    size_t len = 0;
    FILE *mem;
    int check, rv;

    if (input_size < 1) {
        return 0;
    }
    if (g.dir[0] == '\0') {
        setup();
    }
    opt = input[0];
    d.data = json_loadb((const char *)input + 1, input_size - 1,
                        JSON_DECODE_ANY, &jerr);
    if (d.data == NULL) {
        return 0;
    }
    d.type = types[opt & 3];
    d.language = opt & 4 ? "de" : NULL;
    if (opt & 8) {
        d.title = "Störungsbericht Kläranlage";
        d.plant = "Wasserwerk Süd — Becken Ä/Ö/Ü";
        d.filter = "sections: intake, treatment, Überlauf, Rücklauf, "
                   "Schlammbehandlung, Faulturm, Gasspeicher, Nachklärung";
    }
    if (opt & 16) {
        d.from_ms = UINT64_C(1711846800000); /* the night of a DST change */
        d.to_ms = UINT64_C(1711933200000);
        d.generated_ms = UINT64_C(1711933260123);
    }

    check = vg_report_check(&d, check_msg);
    CHECK(check == VG_OK || check == VG_EINVAL);
    CHECK(check == VG_OK || check_msg[0] != '\0');

    mem = open_memstream(&text, &len);
    CHECK(mem != NULL);
    rv = vg_report_write_csv(&d, mem, csv_msg);
    CHECK(fclose(mem) == 0);
    CHECK(rv == check);
    if (check == VG_EINVAL) {
        CHECK(len == 0);
        CHECK(strcmp(check_msg, csv_msg) == 0);
    } else {
        check_csv(&d, text, len);
    }
    free(text);

    count = vg_report_pdf_page_count(&d);
    CHECK(count >= 1);
    if (check == VG_EINVAL) {
        rv = vg_report_write_pdf(&d, g.pdf, &pages, pdf_msg);
        CHECK(rv == VG_EINVAL);
        CHECK(strcmp(check_msg, pdf_msg) == 0);
        CHECK(access(g.pdf, F_OK) != 0 && errno == ENOENT);
        CHECK(access(g.tmp, F_OK) != 0 && errno == ENOENT);
    } else if (json_array_size(d.data) <= PDF_ROWS_MAX) {
        rv = vg_report_write_pdf(&d, g.pdf, &pages, pdf_msg);
        if (rv != VG_OK) {
            fprintf(stderr, "vg_report_write_pdf: %s\n", pdf_msg);
            abort();
        }
        CHECK(pages == count);
        CHECK(access(g.tmp, F_OK) != 0 && errno == ENOENT);
        CHECK(pdf_pages(g.pdf) == count);
        CHECK(unlink(g.pdf) == 0);
    }
    json_decref(d.data);
    return 0;
}
