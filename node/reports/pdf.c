/* The PDF writer: cairo's PDF surface, its "toy" text API with DejaVu Sans
 * (no pango, to keep the dependencies small), A4 landscape.
 *
 * Pagination comes first and is pure arithmetic on the row counts
 * (vg_report_pdf_page_count), so every page can say "page N of M" and a
 * page's rows are found by its number alone; the drawing loop then makes
 * exactly that many pages. Text is cleaned to valid UTF-8 without control
 * characters before cairo sees it, because invalid UTF-8 would put the
 * cairo context into an error state and lose the rest of the report, and is
 * cut with "…" to its cell, because the toy API does no layout of its own.
 *
 * Happy path: check the data, create PATH.tmp, draw every page into a PDF
 * stream surface that writes to it, finish the surface, fsync, close,
 * rename onto PATH. Failures: bad data returns before any file exists; a
 * file that cannot be created, a write error (kept by the stream callback,
 * which makes cairo stop), a cairo error, or a failed fsync/close/rename
 * each remove PATH.tmp and leave PATH as it was. */
#include <cairo-pdf.h>
#include <cairo.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define PAGE_W 842.0
#define PAGE_H 595.0
#define MARGIN 28.0
#define CONTENT_W (PAGE_W - 2 * MARGIN)
#define BODY_TOP 108.0  /* below the title block */
#define HEAD_H 18.0     /* table header row */
#define ROW_H 17.0      /* table row; 25 rows end at 551 */
#define PAD 3.0         /* cell padding */
#define CHART_H 220.0   /* one chart, two above each other */
#define CHART_GAP 14.0
#define FONT "DejaVu Sans"

/* Bytes of a cell's text kept before fitting; far more than any cell shows,
 * and it bounds the work of cutting a megabyte string down to a cell. */
#define CELL_TEXT_MAX 400

struct pdf {
    cairo_t *cr;
    const struct vg_report_doc *d;
    unsigned page;  /* 1-based, the page being drawn */
    unsigned pages; /* all of them, as planned */
    unsigned shown; /* pages finished (cairo_show_page): what is reported */
};

struct rgb {
    double r, g, b;
};

static const struct rgb INK = {0.10, 0.10, 0.10};
static const struct rgb GREY = {0.40, 0.40, 0.40};
static const struct rgb RULE = {0.70, 0.70, 0.70};
static const struct rgb GRID = {0.88, 0.88, 0.88};
static const struct rgb HEAD_FILL = {0.85, 0.88, 0.92};
static const struct rgb ZEBRA = {0.96, 0.96, 0.96};
/* Raised alarms by priority 1..3; priority 4 is not tinted. */
static const struct rgb PRIO_TINT[3] = {
    {1.00, 0.78, 0.78}, {1.00, 0.87, 0.70}, {1.00, 0.97, 0.68}};
static const struct rgb BAND = {0.62, 0.79, 0.96};
static const struct rgb AVG_LINE = {0.05, 0.25, 0.60};

enum align { LEFT, RIGHT, CENTER };

static void colour(cairo_t *cr, struct rgb c)
{
    cairo_set_source_rgb(cr, c.r, c.g, c.b);
}

static void font(cairo_t *cr, bool bold, double size)
{
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD
                                : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

/* ------------------------------------------------------------------ text */

/* Length of the valid UTF-8 sequence at S (1..4), or 0 when S does not
 * start one (stray continuation byte, overlong form, surrogate, beyond
 * U+10FFFF, cut short by the terminator). */
static size_t utf8_seq(const unsigned char *s)
{
    unsigned c = s[0];

    if (c < 0x80) {
        return 1;
    }
    if (c < 0xc2 || c > 0xf4 || (s[1] & 0xc0) != 0x80) {
        return 0;
    }
    if (c < 0xe0) {
        return 2;
    }
    if ((s[2] & 0xc0) != 0x80 || (c == 0xe0 && s[1] < 0xa0) ||
        (c == 0xed && s[1] >= 0xa0)) {
        return 0;
    }
    if (c < 0xf0) {
        return 3;
    }
    if ((s[3] & 0xc0) != 0x80 || (c == 0xf0 && s[1] < 0x90) ||
        (c == 0xf4 && s[1] >= 0x90)) {
        return 0;
    }
    return 4;
}

/* Copy at most CELL_TEXT_MAX bytes of IN into OUT as text cairo can show:
 * whole valid UTF-8 characters, control characters (C0, DEL, C1) as spaces,
 * invalid bytes as '?'. STARTS gets the offset of each character; returns
 * their number. */
static size_t clean_text(const char *in, char out[CELL_TEXT_MAX + 1],
                         size_t starts[CELL_TEXT_MAX + 1])
{
    const unsigned char *s = (const unsigned char *)in;
    size_t len = 0, n = 0;

    while (*s != '\0') {
        size_t k = utf8_seq(s);
        if (len + (k == 0 ? 1 : k) > CELL_TEXT_MAX) {
            break;
        }
        starts[n++] = len;
        if (k == 0) {
            out[len++] = '?';
            s++;
        } else if (k == 1 && (*s < 0x20 || *s == 0x7f)) {
            out[len++] = ' ';
            s++;
        } else if (k == 2 && s[0] == 0xc2 && s[1] < 0xa0) {
            out[len++] = ' ';
            s += 2;
        } else {
            memcpy(out + len, s, k);
            len += k;
            s += k;
        }
    }
    out[len] = '\0';
    starts[n] = len;
    return n;
}

static double width_of(cairo_t *cr, const char *s)
{
    cairo_text_extents_t e;

    cairo_text_extents(cr, s, &e);
    return e.x_advance;
}

/* Draw S (any bytes; NULL draws nothing) with its baseline at Y, within
 * [X, X + MAXW] for LEFT, [X - MAXW, X] for RIGHT, centred on X for CENTER,
 * in the current font and colour. Text wider than MAXW is cut to whole
 * characters and ends in "…". Returns the width drawn. */
static double text_at(cairo_t *cr, double x, double y, double maxw,
                      const char *s, enum align a)
{
    static const char ellipsis[] = "\xe2\x80\xa6";
    char buf[CELL_TEXT_MAX + sizeof ellipsis];
    size_t starts[CELL_TEXT_MAX + 1];
    size_t n;
    double w;

    if (s == NULL || s[0] == '\0') {
        return 0;
    }
    n = clean_text(s, buf, starts);
    w = width_of(cr, buf);
    if (w > maxw) {
        /* The longest prefix that fits with the ellipsis: widths grow
         * with the prefix, so search on the character count. */
        char orig[CELL_TEXT_MAX + 1];
        size_t lo = 0, hi = n; /* prefix lo fits (0 always "fits") */
        memcpy(orig, buf, starts[n] + 1);
        while (lo < hi) {
            size_t mid = (lo + hi + 1) / 2;
            memcpy(buf, orig, starts[mid]);
            memcpy(buf + starts[mid], ellipsis, sizeof ellipsis);
            if (width_of(cr, buf) <= maxw) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        memcpy(buf, orig, starts[lo]);
        memcpy(buf + starts[lo], ellipsis, sizeof ellipsis);
        w = width_of(cr, buf);
    }
    cairo_move_to(cr, a == LEFT ? x : a == RIGHT ? x - w : x - w / 2, y);
    cairo_show_text(cr, buf);
    return w;
}

static void rule(cairo_t *cr, double x0, double y, double x1, struct rgb c,
                 double lw)
{
    colour(cr, c);
    cairo_set_line_width(cr, lw);
    cairo_move_to(cr, x0, y);
    cairo_line_to(cr, x1, y);
    cairo_stroke(cr);
}

/* -------------------------------------------------------- title, footer */

static void period_text(uint64_t ms, char buf[VG_REP_TEXT_SIZE])
{
    if (ms == 0) {
        snprintf(buf, VG_REP_TEXT_SIZE, "open");
    } else {
        vg_rep_time_local(ms, NULL, buf);
    }
}

static const char *title_of(const struct vg_report_doc *d)
{
    return d->title != NULL ? d->title : vg_rep_default_title(d->type);
}

static void title_block(struct pdf *p)
{
    cairo_t *cr = p->cr;
    const struct vg_report_doc *d = p->d;
    char a[VG_REP_TEXT_SIZE], b[VG_REP_TEXT_SIZE];
    char line[2 * VG_REP_TEXT_SIZE + 32];
    double gen_w = 0;

    if (d->generated_ms != 0) {
        vg_rep_time_local(d->generated_ms, NULL, a);
        snprintf(line, sizeof line, "Generated %s", a);
        font(cr, false, 8.5);
        colour(cr, GREY);
        gen_w = text_at(cr, PAGE_W - MARGIN, 44, 220, line, RIGHT);
    }
    font(cr, true, 15);
    colour(cr, INK);
    text_at(cr, MARGIN, 44, CONTENT_W - gen_w - 12, d->plant, LEFT);
    font(cr, true, 12.5);
    text_at(cr, MARGIN, 64, CONTENT_W, title_of(d), LEFT);

    font(cr, false, 9);
    period_text(d->from_ms, a);
    period_text(d->to_ms, b);
    snprintf(line, sizeof line, "Period: %s \xe2\x80\x93 %s", a, b);
    text_at(cr, MARGIN, 81, CONTENT_W, line, LEFT);
    if (d->filter != NULL) {
        char *f = malloc(strlen(d->filter) + 16);
        if (f != NULL) {
            sprintf(f, "Filter: %s", d->filter);
            text_at(cr, MARGIN, 95, CONTENT_W, f, LEFT);
            free(f);
        }
    }
    rule(cr, MARGIN, 101, PAGE_W - MARGIN, INK, 0.8);
}

static void footer(struct pdf *p)
{
    cairo_t *cr = p->cr;
    char line[64];

    rule(cr, MARGIN, PAGE_H - 28, PAGE_W - MARGIN, RULE, 0.5);
    font(cr, false, 8);
    colour(cr, GREY);
    text_at(cr, MARGIN, PAGE_H - 16, CONTENT_W - 120, title_of(p->d), LEFT);
    snprintf(line, sizeof line, "page %u of %u", p->page, p->pages);
    text_at(cr, PAGE_W - MARGIN, PAGE_H - 16, 120, line, RIGHT);
}

/* ---------------------------------------------------------------- tables */

struct col {
    const char *head;
    double w;
    enum align a;
};

static void table_head(cairo_t *cr, const struct col *cols, size_t n)
{
    double x = MARGIN;

    colour(cr, HEAD_FILL);
    cairo_rectangle(cr, MARGIN, BODY_TOP, CONTENT_W, HEAD_H);
    cairo_fill(cr);
    font(cr, true, 8);
    colour(cr, INK);
    for (size_t i = 0; i < n; i++) {
        double tx = cols[i].a == RIGHT ? x + cols[i].w - PAD : x + PAD;
        text_at(cr, tx, BODY_TOP + 12.5, cols[i].w - 2 * PAD, cols[i].head,
                cols[i].a);
        x += cols[i].w;
    }
}

/* Row I (0-based on the page) with CELLS, on FILL (NULL: none). */
static void table_row(cairo_t *cr, const struct col *cols, size_t n, size_t i,
                      const char *const *cells, const struct rgb *fill)
{
    double y = BODY_TOP + HEAD_H + (double)i * ROW_H;
    double x = MARGIN;

    if (fill != NULL) {
        colour(cr, *fill);
        cairo_rectangle(cr, MARGIN, y, CONTENT_W, ROW_H);
        cairo_fill(cr);
    }
    font(cr, false, 7.5);
    colour(cr, INK);
    for (size_t c = 0; c < n; c++) {
        double tx = cols[c].a == RIGHT ? x + cols[c].w - PAD : x + PAD;
        text_at(cr, tx, y + 11.5, cols[c].w - 2 * PAD, cells[c], cols[c].a);
        x += cols[c].w;
    }
    rule(cr, MARGIN, y + ROW_H, PAGE_W - MARGIN, GRID, 0.4);
}

static void table_empty(cairo_t *cr, const char *what)
{
    font(cr, false, 9);
    colour(cr, GREY);
    text_at(cr, MARGIN + PAD, BODY_TOP + HEAD_H + 12, CONTENT_W, what, LEFT);
}

/* The rows of the data array on table page K (0-based): [*FIRST, *END). */
static void page_rows(const json_t *data, unsigned k, size_t *first,
                      size_t *end)
{
    size_t n = json_array_size(data);

    *first = (size_t)k * VG_REPORT_TABLE_ROWS_PER_PAGE;
    *end = *first + VG_REPORT_TABLE_ROWS_PER_PAGE;
    if (*first > n) {
        *first = n;
    }
    if (*end > n) {
        *end = n;
    }
}

static void num_text(const json_t *v, char buf[VG_REP_TEXT_SIZE])
{
    if (json_is_integer(v)) {
        snprintf(buf, VG_REP_TEXT_SIZE, "%" JSON_INTEGER_FORMAT,
                 json_integer_value(v));
    } else if (json_is_real(v)) {
        snprintf(buf, VG_REP_TEXT_SIZE, "%.6g", json_real_value(v));
    } else {
        buf[0] = '\0';
    }
}

static void alarm_page(struct pdf *p, unsigned k)
{
    static const struct col cols[] = {
        {"Time", 96, LEFT},     {"Alarm", 100, LEFT},   {"Tag", 84, LEFT},
        {"Section", 62, LEFT},  {"P", 18, RIGHT},       {"Cause", 56, LEFT},
        {"Status", 118, LEFT},  {"Value", 56, RIGHT},   {"User", 64, LEFT},
        {"Message", CONTENT_W - 654, LEFT},
    };
    enum { N = sizeof cols / sizeof cols[0] };
    size_t first, end;

    table_head(p->cr, cols, N);
    page_rows(p->d->data, k, &first, &end);
    if (first == end) {
        table_empty(p->cr, "No alarm journal entries in this period.");
    }
    for (size_t i = first; i < end; i++) {
        const json_t *row = json_array_get(p->d->data, i);
        const char *from = vg_rep_str(row, "from"), *to = vg_rep_str(row, "to");
        const char *user = vg_rep_str(row, "user");
        const char *station = vg_rep_str(row, "station");
        const char *msg = vg_rep_alarm_message(row, p->d->language);
        const char *reason = vg_rep_str(row, "reason");
        const char *cause = vg_rep_str(row, "cause");
        const json_t *prio = json_object_get(row, "priority");
        char time[VG_REP_TEXT_SIZE], pr[VG_REP_TEXT_SIZE], val[VG_REP_TEXT_SIZE];
        char status[CELL_TEXT_MAX], who[CELL_TEXT_MAX], text[CELL_TEXT_MAX];
        const struct rgb *fill = (i - first) % 2 == 1 ? &ZEBRA : NULL;
        const char *cells[N];

        vg_rep_time_local((uint64_t)json_integer_value(json_object_get(row,
                                                                       "time_ms")),
                          NULL, time);
        num_text(prio, pr);
        num_text(json_object_get(row, "value"), val);
        snprintf(status, sizeof status, "%s%s%s", from != NULL ? from : "",
                 from != NULL && to != NULL ? " \xe2\x86\x92 " : "",
                 to != NULL ? to : "");
        snprintf(who, sizeof who, "%s%s%s", user != NULL ? user : "",
                 user != NULL && station != NULL ? "@" : "",
                 station != NULL ? station : "");
        snprintf(text, sizeof text, "%s%s%s%s", msg != NULL ? msg : "",
                 reason != NULL ? (msg != NULL ? " (" : "(") : "",
                 reason != NULL ? reason : "", reason != NULL ? ")" : "");
        cells[0] = time;
        cells[1] = vg_rep_str(row, "alarm");
        cells[2] = vg_rep_str(row, "tag");
        cells[3] = vg_rep_str(row, "section");
        cells[4] = pr;
        cells[5] = cause;
        cells[6] = status;
        cells[7] = val;
        cells[8] = who;
        cells[9] = text;
        if (strcmp(cause, "raised") == 0 && json_is_integer(prio) &&
            json_integer_value(prio) <= 3) {
            fill = &PRIO_TINT[json_integer_value(prio) - 1];
        }
        table_row(p->cr, cols, N, i - first, cells, fill);
    }
}

static int audit_page(struct pdf *p, unsigned k)
{
    static const struct col cols[] = {
        {"Time", 96, LEFT},       {"Kind", 84, LEFT},
        {"Object", 110, LEFT},    {"Old value", 100, LEFT},
        {"New value", 100, LEFT}, {"User", 64, LEFT},
        {"Station", 64, LEFT},    {"Term/node", 58, RIGHT},
        {"Detail", CONTENT_W - 676, LEFT},
    };
    enum { N = sizeof cols / sizeof cols[0] };
    size_t first, end;

    table_head(p->cr, cols, N);
    page_rows(p->d->data, k, &first, &end);
    if (first == end) {
        table_empty(p->cr, "No audit records in this period.");
    }
    for (size_t i = first; i < end; i++) {
        const json_t *row = json_array_get(p->d->data, i);
        char time[VG_REP_TEXT_SIZE], term[VG_REP_TEXT_SIZE],
            node[VG_REP_TEXT_SIZE], tn[2 * VG_REP_TEXT_SIZE + 2];
        char *old_v = vg_rep_value_text(json_object_get(row, "old_value"));
        char *new_v = vg_rep_value_text(json_object_get(row, "new_value"));
        const char *cells[N];

        if (old_v == NULL || new_v == NULL) {
            free(old_v);
            free(new_v);
            return VG_ENOMEM;
        }
        vg_rep_time_local((uint64_t)json_integer_value(json_object_get(row,
                                                                       "time_ms")),
                          NULL, time);
        num_text(json_object_get(row, "term"), term);
        num_text(json_object_get(row, "node"), node);
        snprintf(tn, sizeof tn, "%s%s%s", term, term[0] && node[0] ? "/" : "",
                 node);
        cells[0] = time;
        cells[1] = vg_rep_str(row, "kind");
        cells[2] = vg_rep_str(row, "object");
        cells[3] = old_v;
        cells[4] = new_v;
        cells[5] = vg_rep_str(row, "user");
        cells[6] = vg_rep_str(row, "station");
        cells[7] = tn;
        cells[8] = vg_rep_str(row, "detail");
        table_row(p->cr, cols, N, i - first, cells,
                  (i - first) % 2 == 1 ? &ZEBRA : NULL);
        free(old_v);
        free(new_v);
    }
    return VG_OK;
}

/* ------------------------------------------------------------------ tags */

/* A series over all its buckets: SAMPLES is the sum of n; MIN/MAX over the
 * buckets' min/max (HAVE_RANGE); AVG the buckets' averages weighted by n
 * (HAVE_AVG). */
struct stats {
    uint64_t samples;
    bool have_range, have_avg;
    double min, max, avg;
};

static bool num(const json_t *bucket, size_t k, double *out)
{
    const json_t *v = json_array_get(bucket, k);

    if (!json_is_number(v)) {
        return false;
    }
    *out = json_number_value(v);
    return true;
}

static void series_stats(const json_t *series, struct stats *st)
{
    const json_t *b;
    double sum = 0, weight = 0, v;
    size_t i;

    memset(st, 0, sizeof *st);
    json_array_foreach(json_object_get(series, "buckets"), i, b) {
        json_int_t n = json_integer_value(json_array_get(b, 1));
        st->samples += (uint64_t)n;
        /* Over the mins and the maxes both, which is the min of the mins
         * and the max of the maxes whenever a bucket has both. */
        for (size_t k = 2; k <= 3; k++) {
            if (!num(b, k, &v)) {
                continue;
            }
            st->min = st->have_range ? fmin(st->min, v) : v;
            st->max = st->have_range ? fmax(st->max, v) : v;
            st->have_range = true;
        }
        if (n > 0 && num(b, 4, &v)) {
            sum += v * (double)n;
            weight += (double)n;
        }
    }
    if (weight > 0) {
        st->avg = sum / weight;
        st->have_avg = isfinite(st->avg);
    }
}

static void fmt_stat(bool have, double v, char buf[VG_REP_TEXT_SIZE])
{
    if (have) {
        snprintf(buf, VG_REP_TEXT_SIZE, "%.6g", v);
    } else {
        buf[0] = '\0';
    }
}

static void summary_page(struct pdf *p, unsigned k)
{
    static const struct col cols[] = {
        {"Tag", 190, LEFT},    {"Description", CONTENT_W - 596, LEFT},
        {"Unit", 70, LEFT},    {"Samples", 80, RIGHT},
        {"Min", 84, RIGHT},    {"Max", 84, RIGHT},
        {"Avg", 88, RIGHT},
    };
    enum { N = sizeof cols / sizeof cols[0] };
    size_t first, end;

    table_head(p->cr, cols, N);
    page_rows(p->d->data, k, &first, &end);
    if (first == end) {
        table_empty(p->cr, "No tags in this report.");
    }
    for (size_t i = first; i < end; i++) {
        const json_t *series = json_array_get(p->d->data, i);
        char samples[VG_REP_TEXT_SIZE], mn[VG_REP_TEXT_SIZE],
            mx[VG_REP_TEXT_SIZE], avg[VG_REP_TEXT_SIZE];
        const char *cells[N];
        struct stats st;

        series_stats(series, &st);
        snprintf(samples, sizeof samples, "%llu", (unsigned long long)st.samples);
        fmt_stat(st.have_range, st.min, mn);
        fmt_stat(st.have_range, st.max, mx);
        fmt_stat(st.have_avg, st.avg, avg);
        cells[0] = vg_rep_str(series, "tag");
        cells[1] = vg_rep_str(series, "description");
        cells[2] = vg_rep_str(series, "unit");
        cells[3] = samples;
        cells[4] = mn;
        cells[5] = mx;
        cells[6] = avg;
        table_row(p->cr, cols, N, i - first, cells,
                  (i - first) % 2 == 1 ? &ZEBRA : NULL);
    }
}

/* A linear map of [LO, HI] onto [A, B]. Halving first keeps HI - LO finite
 * for any finite values; the result is clamped a little beyond the target
 * so that wild values make no wild coordinates. */
struct axis {
    double lo, hi, a, b;
};

static double map(const struct axis *x, double v)
{
    double f = (0.5 * v - 0.5 * x->lo) / (0.5 * x->hi - 0.5 * x->lo);

    if (!isfinite(f)) {
        f = 0.5;
    }
    f = f < -0.1 ? -0.1 : f > 1.1 ? 1.1 : f;
    return x->a + f * (x->b - x->a);
}

/* 1, 2 or 5 times a power of ten, at least RAW. */
static double nice_step(double raw)
{
    double e = pow(10, floor(log10(raw)));
    double f = raw / e;

    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * e;
}

/* The time range of a chart: the series' from/to, else its buckets'
 * extent, else the report period. */
static void time_range(const struct vg_report_doc *d, const json_t *series,
                       double *t0, double *t1)
{
    const json_t *from = json_object_get(series, "from_ms");
    const json_t *to = json_object_get(series, "to_ms");
    json_int_t bucket = json_integer_value(json_object_get(series, "bucket_ms"));
    const json_t *b;
    size_t i;

    *t0 = (double)d->from_ms;
    *t1 = (double)d->to_ms;
    if (json_is_integer(from) && json_is_integer(to) &&
        json_integer_value(to) > json_integer_value(from)) {
        *t0 = (double)json_integer_value(from);
        *t1 = (double)json_integer_value(to);
    } else if (json_array_size(json_object_get(series, "buckets")) > 0) {
        *t0 = INFINITY;
        *t1 = -INFINITY;
        json_array_foreach(json_object_get(series, "buckets"), i, b) {
            double s = (double)json_integer_value(json_array_get(b, 0));
            *t0 = fmin(*t0, s);
            *t1 = fmax(*t1, s + (double)bucket);
        }
    }
    if (!(*t1 > *t0)) {
        *t1 = *t0 + 1000;
    }
}

static void time_labels(cairo_t *cr, const struct axis *x, double y)
{
    double span = x->hi - x->lo;
    const char *fmt = span <= 600e3         ? "%H:%M:%S"
                      : span <= 86400e3     ? "%H:%M"
                      : span <= 400 * 86400e3 ? "%m-%d %H:%M"
                                            : "%Y-%m-%d";
    enum { TICKS = 6 };

    font(cr, false, 7);
    for (int i = 0; i < TICKS; i++) {
        double t = x->lo + span * i / (TICKS - 1);
        double px = map(x, t);
        char label[VG_REP_TEXT_SIZE];
        if (t >= 0 && t < 9e18) { /* beyond, no struct tm holds it anyway */
            vg_rep_time_local((uint64_t)t, fmt, label);
        } else {
            label[0] = '\0';
        }
        colour(cr, INK);
        cairo_set_line_width(cr, 0.5);
        cairo_move_to(cr, px, y);
        cairo_line_to(cr, px, y + 3);
        cairo_stroke(cr);
        colour(cr, GREY);
        text_at(cr, px, y + 11, 120, label, CENTER);
    }
}

/* Value grid lines and labels; Y's LO/HI are widened to whole steps. */
static void value_grid(cairo_t *cr, struct axis *y, double left, double right)
{
    double step = nice_step((0.5 * y->hi - 0.5 * y->lo) / 2.5);
    double lo = floor(y->lo / step) * step, hi = ceil(y->hi / step) * step;

    if (!isfinite(step) || step <= 0 || !isfinite(lo) || !isfinite(hi) ||
        !(hi > lo)) {
        return;
    }
    y->lo = lo;
    y->hi = hi;
    font(cr, false, 7);
    for (int i = 0; i <= 12; i++) {
        double v = lo + i * step;
        double py;
        char label[VG_REP_TEXT_SIZE];
        if (v > hi + step * 1e-9) {
            break;
        }
        if (fabs(v) < step * 1e-9) {
            v = 0; /* not -1.4e-17 */
        }
        py = map(y, v);
        rule(cr, left, py, right, GRID, 0.4);
        snprintf(label, sizeof label, "%.6g", v);
        colour(cr, GREY);
        text_at(cr, left - 4, py + 2.5, 54, label, RIGHT);
    }
}

/* The min..max band: one rectangle per bucket, all filled as one path so
 * that neighbours join without seams; absent buckets and buckets without
 * values leave gaps. */
static void band(cairo_t *cr, const json_t *buckets, double bucket,
                 const struct axis *x, const struct axis *y)
{
    const json_t *b;
    size_t i;

    json_array_foreach(buckets, i, b) {
        double s = (double)json_integer_value(json_array_get(b, 0));
        double mn, mx, x0, x1, y0, y1;
        if (!num(b, 2, &mn) || !num(b, 3, &mx)) {
            continue;
        }
        x0 = map(x, s);
        x1 = map(x, s + bucket);
        y0 = map(y, fmax(mn, mx));
        y1 = map(y, fmin(mn, mx));
        if (y1 - y0 < 0.8) { /* keep a flat band visible */
            y0 -= 0.4;
            y1 += 0.4;
        }
        cairo_rectangle(cr, x0, y0, x1 - x0, y1 - y0);
    }
    colour(cr, BAND);
    cairo_fill(cr);
}

/* The bucket averages as steps; a bucket without an average, or one that
 * does not start where the previous ended, lifts the pen. */
static void avg_line(cairo_t *cr, const json_t *buckets, json_int_t bucket,
                     const struct axis *x, const struct axis *y)
{
    const json_t *b;
    uint64_t prev_end = 0;
    bool pen = false;
    size_t i;

    json_array_foreach(buckets, i, b) {
        uint64_t s = (uint64_t)json_integer_value(json_array_get(b, 0));
        double avg;
        if (!num(b, 4, &avg)) {
            pen = false;
            continue;
        }
        if (pen && s == prev_end) {
            cairo_line_to(cr, map(x, (double)s), map(y, avg));
        } else {
            cairo_move_to(cr, map(x, (double)s), map(y, avg));
        }
        cairo_line_to(cr, map(x, (double)s + (double)bucket), map(y, avg));
        prev_end = s + (uint64_t)bucket;
        pen = true;
    }
    colour(cr, AVG_LINE);
    cairo_set_line_width(cr, 1.2);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    cairo_stroke(cr);
}

static void chart(struct pdf *p, const json_t *series, double top)
{
    cairo_t *cr = p->cr;
    const json_t *buckets = json_object_get(series, "buckets");
    json_int_t bucket = json_integer_value(json_object_get(series, "bucket_ms"));
    const char *unit = vg_rep_str(series, "unit");
    const char *desc = vg_rep_str(series, "description");
    double left = MARGIN + 58, right = PAGE_W - MARGIN - 8;
    double ptop = top + 28, pbot = top + CHART_H - 18;
    struct axis x = {0, 0, left, right}, y = {0, 0, pbot, ptop};
    char mn[VG_REP_TEXT_SIZE], mx[VG_REP_TEXT_SIZE], avg[VG_REP_TEXT_SIZE];
    char line[4 * VG_REP_TEXT_SIZE + 128];
    struct stats st;
    double w, room;

    series_stats(series, &st);
    fmt_stat(st.have_range, st.min, mn);
    fmt_stat(st.have_range, st.max, mx);
    fmt_stat(st.have_avg, st.avg, avg);
    if (unit != NULL && strlen(unit) > 40) {
        unit = NULL; /* said in the summary; a novel here would hide min/max */
    }
    if (st.have_range || st.have_avg) {
        snprintf(line, sizeof line,
                 "min %s %s   max %s %s   avg %s %s   %llu sample%s", mn,
                 unit != NULL ? unit : "", mx, unit != NULL ? unit : "", avg,
                 unit != NULL ? unit : "", (unsigned long long)st.samples,
                 st.samples == 1 ? "" : "s");
    } else {
        snprintf(line, sizeof line, "no values   %llu sample%s",
                 (unsigned long long)st.samples, st.samples == 1 ? "" : "s");
    }
    /* One line: tag (bold), description (grey) after it, the figures at
     * the right; the figures win the space, then the tag. */
    font(cr, false, 8.5);
    colour(cr, INK);
    w = text_at(cr, PAGE_W - MARGIN, top + 12, CONTENT_W / 2, line, RIGHT);
    room = CONTENT_W - w - 16;
    font(cr, true, 10.5);
    w = text_at(cr, MARGIN, top + 12, room, vg_rep_str(series, "tag"), LEFT);
    if (desc != NULL && room - w - 8 > 20) {
        font(cr, false, 8.5);
        colour(cr, GREY);
        text_at(cr, MARGIN + w + 8, top + 12, room - w - 8, desc, LEFT);
    }
    if (unit != NULL) {
        font(cr, false, 7);
        colour(cr, GREY);
        text_at(cr, left - 4, ptop - 7, 54, unit, RIGHT);
    }

    time_range(p->d, series, &x.lo, &x.hi);
    if (st.have_range || st.have_avg) {
        y.lo = st.have_range ? st.min : st.avg;
        y.hi = st.have_range ? st.max : st.avg;
        if (st.have_avg) {
            y.lo = fmin(y.lo, st.avg);
            y.hi = fmax(y.hi, st.avg);
        }
        if (!(y.hi > y.lo)) {
            double pad = fabs(y.lo) * 0.05;
            y.lo -= pad > 0 ? pad : 1;
            y.hi += pad > 0 ? pad : 1;
        }
        value_grid(cr, &y, left, right);
        cairo_save(cr);
        cairo_rectangle(cr, left, ptop, right - left, pbot - ptop);
        cairo_clip(cr);
        band(cr, buckets, (double)bucket, &x, &y);
        avg_line(cr, buckets, bucket, &x, &y);
        cairo_restore(cr);
    } else {
        font(cr, false, 9);
        colour(cr, GREY);
        text_at(cr, (left + right) / 2, (ptop + pbot) / 2, right - left,
                "No values in this period", CENTER);
    }
    colour(cr, RULE);
    cairo_set_line_width(cr, 0.6);
    cairo_rectangle(cr, left, ptop, right - left, pbot - ptop);
    cairo_stroke(cr);
    time_labels(cr, &x, pbot);
}

static void tags_page(struct pdf *p, unsigned k)
{
    size_t n = json_array_size(p->d->data);
    unsigned summary = (unsigned)((n + VG_REPORT_TABLE_ROWS_PER_PAGE - 1) /
                                  VG_REPORT_TABLE_ROWS_PER_PAGE);

    if (summary == 0) {
        summary = 1;
    }
    if (k < summary) {
        summary_page(p, k);
        return;
    }
    for (size_t c = 0; c < VG_REPORT_CHARTS_PER_PAGE; c++) {
        size_t i = (size_t)(k - summary) * VG_REPORT_CHARTS_PER_PAGE + c;
        if (i < n) {
            chart(p, json_array_get(p->d->data, i),
                  BODY_TOP + (double)c * (CHART_H + CHART_GAP));
        }
    }
}

/* --------------------------------------------------------------- writing */

/* Where cairo's PDF stream goes; ERR keeps the first write error's errno. */
struct sink {
    FILE *f;
    int err;
};

static cairo_status_t write_cb(void *closure, const unsigned char *data,
                               unsigned int len)
{
    struct sink *s = closure;

    if (s->err != 0) {
        return CAIRO_STATUS_WRITE_ERROR;
    }
    if (fwrite(data, 1, len, s->f) != len) {
        s->err = errno != 0 ? errno : EIO;
        return CAIRO_STATUS_WRITE_ERROR;
    }
    return CAIRO_STATUS_SUCCESS;
}

/* Draw every page onto SURFACE. Returns VG_OK or VG_ENOMEM. */
static int draw(struct pdf *p, cairo_surface_t *surface)
{
    int rv = VG_OK;

    p->cr = cairo_create(surface);
    for (p->page = 1; p->page <= p->pages && rv == VG_OK; p->page++) {
        title_block(p);
        switch (p->d->type) {
        case VG_REPORT_TYPE_ALARMS: alarm_page(p, p->page - 1); break;
        case VG_REPORT_TYPE_AUDIT: rv = audit_page(p, p->page - 1); break;
        case VG_REPORT_TYPE_TAGS: tags_page(p, p->page - 1); break;
        }
        footer(p);
        cairo_show_page(p->cr);
        p->shown++;
    }
    return rv;
}

/* Write the whole PDF into the open file F; ERRMSG names TMP. */
static int write_stream(const struct vg_report_doc *d, FILE *f, const char *tmp,
                        unsigned *pages, char *errmsg)
{
    struct sink sink = {f, 0};
    struct pdf p = {NULL, d, 0, vg_report_pdf_page_count(d), 0};
    struct vg_rep_locale loc;
    cairo_surface_t *surface;
    cairo_status_t st;
    int rv;

    if (!vg_rep_locale_enter(&loc)) {
        vg_errf(errmsg, "out of memory");
        return VG_ENOMEM;
    }
    surface = cairo_pdf_surface_create_for_stream(write_cb, &sink, PAGE_W,
                                                  PAGE_H);
#if CAIRO_VERSION >= CAIRO_VERSION_ENCODE(1, 16, 0)
    cairo_pdf_surface_set_metadata(surface, CAIRO_PDF_METADATA_TITLE,
                                   title_of(d));
    cairo_pdf_surface_set_metadata(surface, CAIRO_PDF_METADATA_CREATOR, "Vigil");
#endif
    rv = draw(&p, surface);
    st = cairo_status(p.cr);
    cairo_destroy(p.cr);
    cairo_surface_finish(surface);
    if (st == CAIRO_STATUS_SUCCESS) {
        st = cairo_surface_status(surface);
    }
    cairo_surface_destroy(surface);
    vg_rep_locale_leave(&loc);

    if (sink.err != 0) {
        vg_errf(errmsg, "cannot write %s: %s", tmp, strerror(sink.err));
        return VG_EIO;
    }
    if (rv == VG_ENOMEM || st == CAIRO_STATUS_NO_MEMORY) {
        vg_errf(errmsg, "out of memory while drawing %s", tmp);
        return VG_ENOMEM;
    }
    if (st != CAIRO_STATUS_SUCCESS) {
        vg_errf(errmsg, "cairo could not draw %s: %s", tmp,
                cairo_status_to_string(st));
        return VG_EIO;
    }
    if (pages != NULL) {
        *pages = p.shown;
    }
    return VG_OK;
}

int vg_report_write_pdf(const struct vg_report_doc *d, const char *path,
                        unsigned *pages, char *errmsg)
{
    char *tmp;
    FILE *f;
    int rv;

    rv = vg_report_check(d, errmsg);
    if (rv != VG_OK) {
        return rv;
    }
    if (path == NULL || path[0] == '\0') {
        vg_errf(errmsg, "no path given for the PDF report");
        return VG_EINVAL;
    }
    tmp = malloc(strlen(path) + sizeof ".tmp");
    if (tmp == NULL) {
        vg_errf(errmsg, "out of memory");
        return VG_ENOMEM;
    }
    sprintf(tmp, "%s.tmp", path);
    f = fopen(tmp, "wb");
    if (f == NULL) {
        vg_errf(errmsg, "cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        return VG_EIO;
    }

    rv = write_stream(d, f, tmp, pages, errmsg);
    if (rv != VG_OK) {
        goto err_after_fopen;
    }
    /* fsync before the rename, so that after a crash PATH is the old file
     * or the whole new one, never an empty one. */
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        vg_errf(errmsg, "cannot write %s: %s", tmp, strerror(errno));
        rv = VG_EIO;
        goto err_after_fopen;
    }
    if (fclose(f) != 0) {
        vg_errf(errmsg, "cannot write %s: %s", tmp, strerror(errno));
        rv = VG_EIO;
        goto err_after_fclose;
    }
    if (rename(tmp, path) != 0) {
        vg_errf(errmsg, "cannot rename %s to %s: %s", tmp, path,
                strerror(errno));
        rv = VG_EIO;
        goto err_after_fclose;
    }
    free(tmp);
    return VG_OK;

err_after_fopen:
    fclose(f);
err_after_fclose:
    unlink(tmp);
    free(tmp);
    return rv;
}
