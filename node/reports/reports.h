/* Vigil reports: the alarm journal, tag history and the audit trail written
 * as CSV or as a paginated PDF (A4 landscape, drawn with cairo), for
 * `vigilctl report` and the GTK station.
 *
 * The generator is a pure formatter. It takes data that the caller already
 * fetched, as jansson values in the shapes below (the ones the server's
 * queries answer with), and writes one file. It does no network or database
 * access, prints nothing, and keeps no state between calls. Rows are written
 * in the order given: sorting and filtering are the caller's (the audit
 * query, for one, answers newest first).
 *
 * Data shapes (D->data). A field listed as "required" must be present and
 * not null; every other field may be missing or null and then prints empty.
 * A field that is present with the wrong type is an error (VG_EINVAL), so a
 * caller that passes the wrong array hears about it instead of getting an
 * empty report.
 *
 *   VG_REPORT_TYPE_ALARMS: an array of journal rows, objects with
 *     id (integer, required), time_ms (integer >= 0, required),
 *     alarm (string, required), cause (string, required: "raised",
 *     "cleared", "acked", "shelved", "unshelved", "expired", "oos",
 *     "in_service"; other names are printed as they are),
 *     tag, section (string), priority (integer 1..4),
 *     from, to (status names: "normal", "unack_active", "ack_active",
 *     "unack_rtn"), active, shelved, out_of_service (true/false),
 *     value (number), user, station, reason (string),
 *     message (object of language code -> string, e.g. {"en": …, "de": …}).
 *     The message shown is the one in D->language, else "en", else the
 *     object's first entry.
 *
 *   VG_REPORT_TYPE_AUDIT: an array of audit records, objects with
 *     id (integer, required), time_ms (integer >= 0, required),
 *     kind (string, required), object (string), old_value, new_value (any
 *     JSON value; strings and numbers print as they are, true/false as
 *     words, arrays and objects as compact JSON), user, station, detail
 *     (string), term, node (integer).
 *
 *   VG_REPORT_TYPE_TAGS: an array of series, objects with
 *     tag (string, required), unit, description (string),
 *     from_ms, to_ms (integer >= 0: the range asked for, the chart's time
 *     axis; when missing the buckets' extent is used),
 *     bucket_ms (integer > 0, required),
 *     buckets (array, required) of arrays of exactly 8 values
 *       [start_ms, n, min, max, avg, first, last, bad]
 *     where start_ms, n and bad are integers >= 0 and min..last numbers, or
 *     null (they are null when n == 0). A bucket that is absent from the
 *     array (a jump of more than bucket_ms between starts) or that has no
 *     values is a gap in the chart. Per tag the PDF shows the sample count
 *     (the sum of n), the overall min and max, and the average of the
 *     buckets' averages weighted by n.
 *
 * Error messages name the row, 1-based, and the field, e.g.
 * "alarm journal row 3 (id 17): \"time_ms\" must be an integer >= 0, not a
 * string" or "tag series 2 (\"FIT101\"), bucket 5: expected an array of 8
 * values […], not 7".
 *
 * Times are shown in local time (localtime_r, so the TZ of the process).
 *
 * Numbers are always written with a '.' decimal point, whatever the
 * process's LC_NUMERIC (a GTK program sets it from the environment): the
 * writers switch their thread to the "C" locale while they run.
 *
 * Ownership: everything in struct vg_report_doc is borrowed for the length
 * of the call; nothing is kept, the JSON is not modified and no reference
 * is taken. FILE *OUT stays the caller's (flushed, not closed). */
#ifndef VG_REPORTS_H
#define VG_REPORTS_H

#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "../../common/common.h"

/* PDF table rows per page (alarms, audit and the tag summary). Fixed rather
 * than fitted to the text, so that the page count is known before drawing
 * (the footer says "page N of M") and callers can tell a user in advance how
 * big a report will be: pages = max(1, ceil(rows / 25)). */
#define VG_REPORT_TABLE_ROWS_PER_PAGE 25

/* Tag charts per PDF page, one above the other. A tag report has
 * max(1, ceil(tags / VG_REPORT_TABLE_ROWS_PER_PAGE)) summary pages followed
 * by ceil(tags / VG_REPORT_CHARTS_PER_PAGE) chart pages. */
#define VG_REPORT_CHARTS_PER_PAGE 2

enum vg_report_type {
    VG_REPORT_TYPE_ALARMS, /* the alarm journal */
    VG_REPORT_TYPE_TAGS,   /* tag history, aggregated in buckets */
    VG_REPORT_TYPE_AUDIT,  /* the audit trail */
};

/* One report. All pointers are borrowed; the strings may be NULL. */
struct vg_report_doc {
    enum vg_report_type type;
    const char *title;    /* "Alarm report", a project report's title; NULL:
                           * a default by type */
    const char *plant;    /* plant/project name for the title block */
    const char *filter;   /* human text like "sections: intake, treatment";
                           * NULL: no filter line */
    const char *language; /* alarm message language ("de"); NULL: "en", else
                           * the first one available */
    uint64_t from_ms;     /* the period shown in the title block, wall-clock */
    uint64_t to_ms;       /* ms since the epoch; 0 prints as "open" */
    uint64_t generated_ms; /* when the report was made; 0: not shown */
    json_t *data;         /* rows, see the shapes above */
};

/* Check D->data against the shape of D->type without writing anything.
 * Both writers do this first, so a report is never half-written because of
 * bad data. Returns VG_OK or VG_EINVAL with a sentence naming the row and
 * field in ERRMSG (VG_ERRMSG_SIZE bytes, may be NULL). */
int vg_report_check(const struct vg_report_doc *d, char *errmsg);

/* Write D as CSV to OUT: RFC 4180, UTF-8 without a byte-order mark, fields
 * quoted when they contain a comma, a double quote, CR or LF (quotes
 * doubled), every line (the header included) ended by CRLF as RFC 4180
 * says. The header row comes first; there is no title block.
 *
 *   alarms: id,time,time_ms,alarm,tag,section,priority,cause,from,to,
 *           active,shelved,out_of_service,value,user,station,reason,message
 *   audit:  id,time,time_ms,kind,object,old_value,new_value,user,station,
 *           detail,term,node
 *   tags:   tag,unit,bucket_start,bucket_start_ms,n,min,max,avg,first,last,
 *           bad   (one row per bucket, series after series)
 *
 * "time" and "bucket_start" are ISO 8601 local time with milliseconds and
 * the UTC offset ("2024-05-01T12:00:00.123+02:00"); the *_ms column next to
 * them is the same instant as integer ms since the epoch. Booleans are
 * "true"/"false"; missing and null fields are empty.
 *
 * CSV injection: a spreadsheet runs a cell that starts with = + - @ (or a
 * tab or CR) as a formula. A text field (a JSON string) starting with one
 * of those is therefore written with a single quote ' in front, unless the
 * whole text is a plain decimal number such as "-5" or "+1.5e3"; JSON
 * numbers are never prefixed. A reader that wants the original text strips
 * one leading ' from such fields.
 *
 * Data is checked first (vg_report_check), so on VG_EINVAL nothing has been
 * written. Returns VG_OK, VG_EINVAL, VG_ENOMEM, or VG_EIO when OUT reports a
 * write error (then OUT holds part of the report). */
int vg_report_write_csv(const struct vg_report_doc *d, FILE *out, char *errmsg);

/* Write D as a PDF at PATH: A4 landscape (842 x 595 pt), every page with a
 * title block (plant, title, period, filter, generated time) and a footer
 * "page N of M". Alarms and audit records are tables of
 * VG_REPORT_TABLE_ROWS_PER_PAGE rows; raised alarm rows are tinted by
 * priority (1 red, 2 orange, 3 yellow, 4 none). Tags get a summary table
 * (tag, description, unit, samples, min, max, avg) and then a chart per tag:
 * the min..max band of each bucket filled, the bucket averages as a line,
 * gaps left blank, value and time axes labelled. Text is UTF-8 drawn in
 * "DejaVu Sans" (fontconfig falls back to another sans font if it is not
 * installed); text too wide for its cell ends in "…", control characters
 * show as spaces and invalid UTF-8 bytes as '?'.
 *
 * The file is written as PATH.tmp and renamed to PATH only when complete, so
 * PATH is either the old file (or absent) or the whole new report; on any
 * error PATH.tmp is removed. (Two writers of the same PATH at once would
 * share PATH.tmp: don't.) On success *PAGES (if not NULL) is the number of
 * pages, always vg_report_pdf_page_count(D).
 *
 * Returns VG_OK, VG_EINVAL (bad data, nothing created), VG_ENOMEM, or VG_EIO
 * with the path and the reason in ERRMSG. */
int vg_report_write_pdf(const struct vg_report_doc *d, const char *path,
                        unsigned *pages, char *errmsg);

/* The number of pages vg_report_write_pdf will write for D (for data that
 * vg_report_check accepts; for other data, the count for an array of that
 * many rows, or 1 when D->data is not an array). */
unsigned vg_report_pdf_page_count(const struct vg_report_doc *d);

#endif /* VG_REPORTS_H */
