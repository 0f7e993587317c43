/* vigil-hmi: the report view (hmi.h) — run a report, preview it, save it.
 *
 * Left, the reports of the project (title in the station's language, kind)
 * and two ad-hoc ones, the alarm journal and the audit trail. Right, the
 * period ("YYYY-MM-DD HH:MM" local time; chosen report's range up to now
 * by default), "Run", the two save buttons, a summary line and a preview
 * table.
 *
 * "Run" fetches the rows on the request thread with vg_fetch_report_data
 * (client/fetch.h) inside an hmi_net_job, since a report takes many pages
 * of requests. Its answer is the data in the shape node/reports/reports.h
 * takes; on the main thread the tag series get their unit and description
 * from the project (the history answer has neither), vg_report_check
 * judges the data, and the preview shows it (the first PREVIEW_MAX rows)
 * with "N rows, the PDF would have M pages". Changing the report drops a
 * result still on its way (generation counter) and the data shown.
 *
 * "Save as PDF…" / "Save as CSV…" ask for a file and write the fetched
 * data with vg_report_write_pdf / vg_report_write_csv on the main thread
 * (a big PDF takes a moment; the cursor says so). The CSV is written next
 * to the file and renamed onto it when complete, as the PDF writer does,
 * so a failed write never leaves half a report under the chosen name. The
 * result goes to the station's notes ("last_report").
 *
 * Lifetime as in alarm_view.c: requests hold a reference on the root
 * widget and check DESTROYED; the file dialog's nested main loop is
 * treated the same way. */
#include "hmi.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../fetch.h"
#include "../../node/reports/reports.h"
#include "../../proto/proto.h"


#define PREVIEW_MAX 5000
#define PREVIEW_COLS 6
#define ADHOC_ALARMS (-1)
#define ADHOC_AUDIT (-2)
#define DEFAULT_RANGE_S 86400u

enum { R_TITLE, R_KIND, R_INDEX, R_N };

/* What to fetch and how to present it; all strings owned. */
struct spec {
    enum vg_report_type type;
    char *title;      /* in the station's language */
    char *name;       /* for the file name */
    char **sections;  /* NULL-terminated, may be empty */
    char **tags;      /* NULL-terminated, may be empty */
    unsigned range_s;
    bool pdf;
};

struct report_view {
    struct hmi *h;
    GtkWidget *root;
    bool destroyed;

    GtkListStore *list;
    GtkTreeSelection *sel;
    GtkWidget *from, *to, *run, *save_pdf, *save_csv, *summary, *preview;
    GtkListStore *rows; /* the preview's */

    unsigned gen; /* bumped by every run and change of report */

    /* The period the entries were given when the report was chosen. While
     * they still say so, "Run" means the last RANGE_S up to the moment of
     * running: the entries show minutes, and the end cut to the minute
     * would leave out what just happened. */
    char *auto_from, *auto_to;
    unsigned auto_range_s;

    /* The last run's result, valid while DATA is not NULL. */
    json_t *data;
    bool data_ok; /* vg_report_check accepted it */
    struct spec spec;
    long long from_ms, to_ms, generated_ms;
};

/* -------------------------------------------------------------- lifetime */

static void spec_clear(struct spec *s)
{
    g_free(s->title);
    g_free(s->name);
    g_strfreev(s->sections);
    g_strfreev(s->tags);
    memset(s, 0, sizeof *s);
}

static void view_free(gpointer p)
{
    struct report_view *v = p;
    json_decref(v->data);
    spec_clear(&v->spec);
    g_free(v->auto_from);
    g_free(v->auto_to);
    g_object_unref(v->list);
    if (v->rows != NULL) {
        g_object_unref(v->rows);
    }
    g_free(v);
}

static void on_destroy(GtkWidget *w, gpointer p)
{
    struct report_view *v = p;
    (void)w;
    v->destroyed = true;
}

static struct report_view *view_of(GtkWidget *root)
{
    return root != NULL ? g_object_get_data(G_OBJECT(root), "hmi-report-view") : NULL;
}

/* ----------------------------------------------------------------- specs */

static const char *kind_text(enum vg_report_type t)
{
    switch (t) {
    case VG_REPORT_TYPE_ALARMS:
        return _("Alarms");
    case VG_REPORT_TYPE_TAGS:
        return _("Process values");
    case VG_REPORT_TYPE_AUDIT:
        return _("Audit trail");
    }
    return "";
}

static enum vg_report_type type_of(enum vg_report_kind k)
{
    return k == VG_REPORT_ALARMS ? VG_REPORT_TYPE_ALARMS
           : k == VG_REPORT_TAGS ? VG_REPORT_TYPE_TAGS
                                 : VG_REPORT_TYPE_AUDIT;
}

static char **refs_names(const struct vg_ref *refs, size_t n)
{
    char **out = g_new0(char *, n + 1);
    size_t k = 0;
    for (size_t i = 0; refs != NULL && i < n; i++) {
        if (refs[i].name != NULL) {
            out[k++] = g_strdup(refs[i].name);
        }
    }
    return out;
}

/* The spec of list entry INDEX (a project report, or ADHOC_*); false when
 * the project no longer has it. */
static bool spec_of(struct report_view *v, int index, struct spec *s)
{
    const struct vg_project *p = v->h->project;

    memset(s, 0, sizeof *s);
    s->range_s = DEFAULT_RANGE_S;
    s->pdf = true;
    if (index == ADHOC_ALARMS || index == ADHOC_AUDIT) {
        s->type = index == ADHOC_ALARMS ? VG_REPORT_TYPE_ALARMS : VG_REPORT_TYPE_AUDIT;
        s->title = g_strdup(index == ADHOC_ALARMS ? _("Alarm journal") : _("Audit trail"));
        s->name = g_strdup(index == ADHOC_ALARMS ? "alarm-journal" : "audit-trail");
        s->sections = g_new0(char *, 1);
        s->tags = g_new0(char *, 1);
        return true;
    }
    if (p == NULL || index < 0 || (size_t)index >= p->n_reports) {
        return false;
    }
    {
        const struct vg_report *r = &p->reports[index];
        const char *t = hmi_text(v->h, &r->title);
        s->type = type_of(r->kind);
        s->name = g_strdup(r->name != NULL ? r->name : "report");
        s->title = g_strdup(t[0] != '\0' ? t : s->name);
        s->sections = refs_names(r->sections, r->n_sections);
        s->tags = refs_names(r->tags, r->n_tags);
        s->range_s = r->range_s > 0 ? r->range_s : DEFAULT_RANGE_S;
        s->pdf = r->pdf;
    }
    return true;
}

static int selected_index(struct report_view *v, bool *ok)
{
    GtkTreeModel *m;
    GtkTreeIter it;
    int index = 0;

    *ok = gtk_tree_selection_get_selected(v->sel, &m, &it);
    if (*ok) {
        gtk_tree_model_get(m, &it, R_INDEX, &index, -1);
    }
    return index;
}

/* ------------------------------------------------------------------ time */

/* Show MS in entry E; returns the text (new string). */
static char *time_entry_set(GtkWidget *e, long long ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char text[64] = "";

    if (localtime_r(&t, &tm) != NULL) {
        strftime(text, sizeof text, "%Y-%m-%d %H:%M", &tm);
    }
    gtk_entry_set_text(GTK_ENTRY(e), text);
    return g_strdup(text);
}

/* "YYYY-MM-DD HH:MM" or "YYYY-MM-DD" (midnight), local time. A date or
 * time that does not exist (31 February, the hour skipped when the clocks
 * go forward) is refused rather than moved. */
static bool parse_time(const char *text, long long *ms)
{
    int y, mo, d, hh = 0, mm = 0, n;
    char extra;
    struct tm tm;
    time_t t;

    n = sscanf(text, "%d-%d-%d %d:%d %c", &y, &mo, &d, &hh, &mm, &extra);
    if (n != 3 && n != 5) {
        return false;
    }
    if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 || hh < 0 ||
        hh > 23 || mm < 0 || mm > 59) {
        return false;
    }
    memset(&tm, 0, sizeof tm);
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = hh;
    tm.tm_min = mm;
    tm.tm_isdst = -1;
    t = mktime(&tm);
    if (t == (time_t)-1 || tm.tm_year != y - 1900 || tm.tm_mon != mo - 1 ||
        tm.tm_mday != d || tm.tm_hour != hh || tm.tm_min != mm) {
        return false;
    }
    *ms = (long long)t * 1000;
    return true;
}

/* --------------------------------------------------------------- preview */

static void preview_columns(struct report_view *v, const char *const *titles, size_t n)
{
    GtkTreeView *tv = GTK_TREE_VIEW(v->preview);
    GType types[PREVIEW_COLS];
    GList *old = gtk_tree_view_get_columns(tv);

    for (GList *l = old; l != NULL; l = l->next) {
        gtk_tree_view_remove_column(tv, l->data);
    }
    g_list_free(old);
    for (size_t i = 0; i < PREVIEW_COLS; i++) {
        types[i] = G_TYPE_STRING;
    }
    if (v->rows != NULL) {
        g_object_unref(v->rows);
    }
    v->rows = gtk_list_store_newv(PREVIEW_COLS, types);
    for (size_t i = 0; i < n && i < PREVIEW_COLS; i++) {
        GtkCellRenderer *r = gtk_cell_renderer_text_new();
        GtkTreeViewColumn *c =
            gtk_tree_view_column_new_with_attributes(titles[i], r, "text", (int)i, NULL);
        gtk_tree_view_column_set_resizable(c, TRUE);
        gtk_tree_view_append_column(tv, c);
    }
    gtk_tree_view_set_model(tv, GTK_TREE_MODEL(v->rows));
}

static void preview_row(struct report_view *v, const char *const *cells, size_t n)
{
    GtkTreeIter it;

    gtk_list_store_append(v->rows, &it);
    for (size_t i = 0; i < n && i < PREVIEW_COLS; i++) {
        gtk_list_store_set(v->rows, &it, (int)i, cells[i] != NULL ? cells[i] : "", -1);
    }
}

static void preview_clear(struct report_view *v)
{
    preview_columns(v, NULL, 0);
}

/* A JSON value as a cell shows it: strings as they are, numbers, yes/no,
 * and anything else as compact JSON. New string. */
static char *value_text(json_t *j)
{
    if (j == NULL || json_is_null(j)) {
        return g_strdup("");
    }
    if (json_is_string(j)) {
        return g_strdup(json_string_value(j));
    }
    if (json_is_integer(j)) {
        return g_strdup_printf("%" JSON_INTEGER_FORMAT, json_integer_value(j));
    }
    if (json_is_real(j)) {
        return g_strdup_printf("%.6g", json_real_value(j));
    }
    if (json_is_boolean(j)) {
        return g_strdup(json_is_true(j) ? _("yes") : _("no"));
    }
    {
        char *dump = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        char *out = g_strdup(dump != NULL ? dump : "");
        free(dump);
        return out;
    }
}

static void preview_alarm(struct report_view *v, json_t *row)
{
    char time[64], *change;
    const char *cells[6];

    hmi_time_text(vg_proto_get_int(row, "time_ms", 0), time, sizeof time);
    change = g_strdup_printf("%s → %s",
                             hmi_alarm_status_text(vg_proto_get_str(row, "from", "")),
                             hmi_alarm_status_text(vg_proto_get_str(row, "to", "")));
    cells[0] = time;
    cells[1] = vg_proto_get_str(row, "alarm", "");
    cells[2] = hmi_alarm_cause_text(vg_proto_get_str(row, "cause", ""));
    cells[3] = change;
    cells[4] = vg_proto_get_str(row, "user", "");
    cells[5] = json_is_object(row) ? hmi_alarm_message(v->h, row) : "";
    preview_row(v, cells, 6);
    g_free(change);
}

static void preview_audit(struct report_view *v, json_t *row)
{
    char time[64], *old = value_text(json_object_get(row, "old_value")),
                   *new = value_text(json_object_get(row, "new_value")), *change;
    const char *cells[5];

    hmi_time_text(vg_proto_get_int(row, "time_ms", 0), time, sizeof time);
    change = g_strdup_printf("%s → %s", old, new);
    cells[0] = time;
    cells[1] = vg_proto_get_str(row, "kind", "");
    cells[2] = vg_proto_get_str(row, "object", "");
    cells[3] = change;
    cells[4] = vg_proto_get_str(row, "user", "");
    preview_row(v, cells, 5);
    g_free(old);
    g_free(new);
    g_free(change);
}

/* One tag over the whole period from its buckets: the sample count, the
 * extremes, and the bucket averages weighted by their counts, as the PDF's
 * summary table has them. */
static void preview_series(struct report_view *v, json_t *series)
{
    json_t *b;
    size_t i;
    double samples = 0; /* a double: hostile counts cannot overflow it */
    double lo = 0, hi = 0, sum = 0;
    bool any = false;
    char n_text[32], lo_text[32] = "—", hi_text[32] = "—", avg_text[32] = "—";
    const char *cells[6];

    json_array_foreach(json_object_get(series, "buckets"), i, b) {
        json_t *jn = json_array_get(b, 1), *jmin = json_array_get(b, 2),
               *jmax = json_array_get(b, 3), *javg = json_array_get(b, 4);
        double n = json_is_integer(jn) ? (double)json_integer_value(jn) : 0;
        if (n <= 0 || !json_is_number(jmin) || !json_is_number(jmax) ||
            !json_is_number(javg)) {
            continue;
        }
        if (!any || json_number_value(jmin) < lo) {
            lo = json_number_value(jmin);
        }
        if (!any || json_number_value(jmax) > hi) {
            hi = json_number_value(jmax);
        }
        /* A running mean: a sum of large values could overflow. */
        samples += n;
        sum += (json_number_value(javg) - sum) * (n / samples);
        any = true;
    }
    snprintf(n_text, sizeof n_text, "%.0f", samples);
    if (any) {
        snprintf(lo_text, sizeof lo_text, "%.6g", lo);
        snprintf(hi_text, sizeof hi_text, "%.6g", hi);
        snprintf(avg_text, sizeof avg_text, "%.6g", sum);
    }
    cells[0] = vg_proto_get_str(series, "tag", "");
    cells[1] = vg_proto_get_str(series, "unit", "");
    cells[2] = n_text;
    cells[3] = lo_text;
    cells[4] = hi_text;
    cells[5] = avg_text;
    preview_row(v, cells, 6);
}

static void preview_fill(struct report_view *v)
{
    static const char *const alarm_cols[] = {N_("Time"), N_("Alarm"), N_("Cause"),
                                             N_("Change"), N_("User"), N_("Message")};
    static const char *const audit_cols[] = {N_("Time"), N_("Kind"), N_("Object"),
                                             N_("Change"), N_("User")};
    static const char *const tag_cols[] = {N_("Tag"), N_("Unit"), N_("Samples"),
                                           N_("Minimum"), N_("Maximum"), N_("Average")};
    const char *const *cols = v->spec.type == VG_REPORT_TYPE_ALARMS  ? alarm_cols
                              : v->spec.type == VG_REPORT_TYPE_AUDIT ? audit_cols
                                                                     : tag_cols;
    size_t n = v->spec.type == VG_REPORT_TYPE_AUDIT ? G_N_ELEMENTS(audit_cols) : 6;
    const char *titles[PREVIEW_COLS];
    json_t *row;
    size_t i;

    for (i = 0; i < n; i++) {
        titles[i] = _(cols[i]);
    }
    preview_columns(v, titles, n);
    /* Filled detached from the view: much faster for thousands of rows. */
    gtk_tree_view_set_model(GTK_TREE_VIEW(v->preview), NULL);
    json_array_foreach(v->data, i, row) {
        if (i >= PREVIEW_MAX) {
            break;
        }
        if (v->spec.type == VG_REPORT_TYPE_ALARMS) {
            preview_alarm(v, row);
        } else if (v->spec.type == VG_REPORT_TYPE_AUDIT) {
            preview_audit(v, row);
        } else {
            preview_series(v, row);
        }
    }
    gtk_tree_view_set_model(GTK_TREE_VIEW(v->preview), GTK_TREE_MODEL(v->rows));
}

/* ------------------------------------------------------------------- run */

static void doc_of(struct report_view *v, struct vg_report_doc *d, char *filter,
                   size_t size)
{
    const struct vg_project *p = v->h->project;

    memset(d, 0, sizeof *d);
    d->type = v->spec.type;
    d->title = v->spec.title;
    d->plant = p != NULL ? hmi_text(v->h, &p->title) : NULL;
    if (d->plant != NULL && d->plant[0] == '\0') {
        d->plant = p->name;
    }
    d->language = p != NULL && v->h->lang >= 0 && (size_t)v->h->lang < p->n_languages
                      ? p->languages[v->h->lang]
                      : NULL;
    d->from_ms = (uint64_t)v->from_ms;
    d->to_ms = (uint64_t)v->to_ms;
    d->generated_ms = (uint64_t)v->generated_ms;
    d->data = v->data;
    filter[0] = '\0';
    if (v->spec.sections != NULL && v->spec.sections[0] != NULL) {
        char *list = g_strjoinv(", ", v->spec.sections);
        snprintf(filter, size, _("Sections: %s"), list);
        g_free(list);
        d->filter = filter;
    }
}

static void data_drop(struct report_view *v)
{
    json_decref(v->data);
    v->data = NULL;
    v->data_ok = false;
    gtk_widget_set_sensitive(v->save_pdf, FALSE);
    gtk_widget_set_sensitive(v->save_csv, FALSE);
}

struct run {
    struct report_view *v; /* held; main thread only */
    unsigned gen;
    struct spec spec;
    long long from_ms, to_ms, generated_ms;
};

/* On the request thread: every page of the report's rows. */
static json_t *run_job(struct vg_client *c, void *arg, char *errmsg)
{
    struct run *r = arg;
    struct vg_fetch_report q;
    json_t *data = NULL;

    memset(&q, 0, sizeof q);
    q.kind = r->spec.type == VG_REPORT_TYPE_ALARMS  ? VG_FETCH_ALARMS
             : r->spec.type == VG_REPORT_TYPE_AUDIT ? VG_FETCH_AUDIT
                                                    : VG_FETCH_TAGS;
    q.from_ms = r->from_ms;
    q.to_ms = r->to_ms;
    q.sections = (const char *const *)r->spec.sections;
    q.n_sections = g_strv_length(r->spec.sections);
    q.tags = (const char *const *)r->spec.tags;
    q.n_tags = g_strv_length(r->spec.tags);
    if (vg_fetch_report_data(vg_fetch_call_client, c, &q, &data, errmsg) != VG_OK) {
        return NULL;
    }
    return data;
}

/* The history answer names no unit or description: the project has them. */
static void add_tag_texts(struct report_view *v)
{
    const struct vg_project *p = v->h->project;
    json_t *s;
    size_t i;

    if (p == NULL || v->spec.type != VG_REPORT_TYPE_TAGS) {
        return;
    }
    json_array_foreach(v->data, i, s) {
        int t = vg_project_find_tag(p, vg_proto_get_str(s, "tag", ""));
        if (t < 0 || !json_is_object(s)) {
            continue;
        }
        if (json_object_get(s, "unit") == NULL && p->tags[t].unit != NULL) {
            json_object_set_new(s, "unit", json_string(p->tags[t].unit));
        }
        if (json_object_get(s, "description") == NULL) {
            json_object_set_new(s, "description",
                                json_string(hmi_text(v->h, &p->tags[t].description)));
        }
    }
}

static void run_done(json_t *answer, const char *errmsg, void *ud)
{
    struct run *r = ud;
    struct report_view *v = r->v;

    if (!v->destroyed && r->gen == v->gen) {
        if (!json_is_array(answer)) {
            const char *why = answer == NULL ? errmsg : _("unexpected answer");
            char *text = g_strdup_printf(_("The report could not be fetched: %s"), why);
            gtk_label_set_text(GTK_LABEL(v->summary), text);
            hmi_note(v->h, "report_preview", "%s: error: %s", r->spec.name, why);
            g_free(text);
            /* Last: its nested main loop may destroy the view. */
            hmi_error(v->h, _("The report could not be fetched"), why);
        } else {
            struct vg_report_doc doc;
            char filter[512], err[VG_ERRMSG_SIZE] = "";
            size_t rows = json_array_size(answer);
            unsigned pages;
            char *text;

            data_drop(v);
            spec_clear(&v->spec);
            v->spec = r->spec;
            memset(&r->spec, 0, sizeof r->spec);
            v->data = json_incref(answer);
            v->from_ms = r->from_ms;
            v->to_ms = r->to_ms;
            v->generated_ms = r->generated_ms;
            add_tag_texts(v);
            doc_of(v, &doc, filter, sizeof filter);
            v->data_ok = vg_report_check(&doc, err) == VG_OK;
            pages = vg_report_pdf_page_count(&doc);
            preview_fill(v);
            if (v->data_ok) {
                char *what = g_strdup_printf(
                    v->spec.type == VG_REPORT_TYPE_TAGS
                        ? ngettext("%zu tag", "%zu tags", rows)
                        : ngettext("%zu row", "%zu rows", rows),
                    rows);
                char *pdf = g_strdup_printf(
                    ngettext("the PDF would have %u page", "the PDF would have %u pages",
                             pages),
                    pages);
                text = rows > PREVIEW_MAX
                           ? g_strdup_printf(_("%s, %s (the first %d are shown)"), what,
                                             pdf, PREVIEW_MAX)
                           : g_strdup_printf(_("%s, %s"), what, pdf);
                hmi_note(v->h, "report_preview", "%s: %zu rows, %u pages (%lld..%lld)",
                         v->spec.name, rows, pages, v->from_ms, v->to_ms);
                g_free(what);
                g_free(pdf);
            } else {
                text = g_strdup_printf(_("The data cannot be written as a report: %s"),
                                       err);
                hmi_note(v->h, "report_preview", "%s: bad data: %s", v->spec.name, err);
            }
            gtk_label_set_text(GTK_LABEL(v->summary), text);
            gtk_widget_set_sensitive(v->save_pdf, v->data_ok);
            gtk_widget_set_sensitive(v->save_csv, v->data_ok);
            g_free(text);
        }
    }
    json_decref(answer);
    spec_clear(&r->spec);
    g_object_unref(v->root);
    g_free(r);
}

static void on_run(GtkButton *b, gpointer p)
{
    struct report_view *v = p;
    long long from = 0, to;
    bool ok;
    int index = selected_index(v, &ok);
    struct run *r;
    const char *from_text = gtk_entry_get_text(GTK_ENTRY(v->from));
    const char *to_text = gtk_entry_get_text(GTK_ENTRY(v->to));
    bool auto_to = v->auto_to != NULL && strcmp(to_text, v->auto_to) == 0;
    bool auto_from = v->auto_from != NULL && strcmp(from_text, v->auto_from) == 0;

    (void)b;
    if (!ok) {
        gtk_label_set_text(GTK_LABEL(v->summary), _("Choose a report on the left."));
        return;
    }
    to = hmi_now_ms();
    if ((!auto_to && !parse_time(to_text, &to)) ||
        (!auto_from && !parse_time(from_text, &from))) {
        gtk_label_set_text(GTK_LABEL(v->summary),
                           _("Write the times as YYYY-MM-DD HH:MM."));
        return;
    }
    if (auto_from) {
        from = to - (long long)v->auto_range_s * 1000;
    }
    if (from >= to) {
        gtk_label_set_text(GTK_LABEL(v->summary), _("The start must be before the end."));
        return;
    }
    r = g_new0(struct run, 1);
    if (!spec_of(v, index, &r->spec)) {
        g_free(r);
        gtk_label_set_text(GTK_LABEL(v->summary), _("The project has no such report."));
        return;
    }
    r->v = v;
    r->gen = ++v->gen;
    r->from_ms = from;
    r->to_ms = to;
    r->generated_ms = hmi_now_ms();
    data_drop(v);
    preview_clear(v);
    gtk_label_set_text(GTK_LABEL(v->summary), _("Fetching the data…"));
    hmi_note(v->h, "report_preview", "%s: fetching", r->spec.name);
    g_object_ref(v->root);
    hmi_net_job(v->h->net, run_job, r, NULL, run_done, r);
}

/* ------------------------------------------------------------------ save */

static int write_csv(const struct vg_report_doc *d, const char *path, char *errmsg)
{
    char *tmp = g_strconcat(path, ".tmp", NULL);
    FILE *f = fopen(tmp, "w");
    int rv;

    if (f == NULL) {
        vg_errf(errmsg, "cannot create %s: %s", tmp, strerror(errno));
        g_free(tmp);
        return VG_EIO;
    }
    rv = vg_report_write_csv(d, f, errmsg);
    if (fclose(f) != 0 && rv == VG_OK) {
        vg_errf(errmsg, "cannot write %s: %s", tmp, strerror(errno));
        rv = VG_EIO;
    }
    if (rv == VG_OK && rename(tmp, path) != 0) {
        vg_errf(errmsg, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        rv = VG_EIO;
    }
    if (rv != VG_OK) {
        unlink(tmp);
    }
    g_free(tmp);
    return rv;
}

/* NAME-DATE.EXT with characters a file name should not have replaced. */
static char *default_name(struct report_view *v, const char *ext)
{
    time_t t = (time_t)(v->to_ms / 1000);
    struct tm tm;
    char date[32] = "";
    char *name = g_strdup(v->spec.name != NULL ? v->spec.name : "report");
    char *out;

    if (localtime_r(&t, &tm) != NULL) {
        strftime(date, sizeof date, "%Y-%m-%d", &tm);
    }
    g_strcanon(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.", '-');
    out = g_strdup_printf("%s-%s.%s", name, date, ext);
    g_free(name);
    return out;
}

/* Ask where to save; NULL when cancelled. Runs a nested main loop: the
 * caller checks v->destroyed afterwards. */
static char *ask_path(struct report_view *v, bool pdf)
{
    GtkWidget *d = gtk_file_chooser_dialog_new(
        pdf ? _("Save the report as PDF") : _("Save the report as CSV"),
        GTK_WINDOW(v->h->window), GTK_FILE_CHOOSER_ACTION_SAVE, _("_Cancel"),
        GTK_RESPONSE_CANCEL, _("_Save"), GTK_RESPONSE_ACCEPT, NULL);
    GtkFileFilter *f = gtk_file_filter_new();
    char *name = default_name(v, pdf ? "pdf" : "csv");
    char *path = NULL;

    gtk_file_filter_set_name(f, pdf ? _("PDF documents") : _("CSV files"));
    gtk_file_filter_add_pattern(f, pdf ? "*.pdf" : "*.csv");
    gtk_file_chooser_add_filter(GTK_FILE_CHOOSER(d), f);
    gtk_file_chooser_set_do_overwrite_confirmation(GTK_FILE_CHOOSER(d), TRUE);
    gtk_file_chooser_set_current_name(GTK_FILE_CHOOSER(d), name);
    g_free(name);
    g_object_ref(d);
    hmi_dialog_note(v->h, "save_report", d);
    if (gtk_dialog_run(GTK_DIALOG(d)) == GTK_RESPONSE_ACCEPT) {
        path = gtk_file_chooser_get_filename(GTK_FILE_CHOOSER(d));
    }
    hmi_dialog_note(v->h, NULL, NULL);
    gtk_widget_destroy(d);
    g_object_unref(d);
    return path;
}

static void save(struct report_view *v, bool pdf)
{
    unsigned gen = v->gen;
    char *path;

    if (v->data == NULL || !v->data_ok) {
        return;
    }
    g_object_ref(v->root);
    path = ask_path(v, pdf);
    if (path != NULL && !v->destroyed && v->gen == gen && v->data != NULL) {
        struct vg_report_doc doc;
        char filter[512], err[VG_ERRMSG_SIZE] = "";
        GdkWindow *win = gtk_widget_get_window(v->h->window);
        GdkCursor *wait = win != NULL ? gdk_cursor_new_from_name(
                                            gdk_window_get_display(win), "wait")
                                      : NULL;
        unsigned pages = 0;
        size_t rows = json_array_size(v->data);
        int rv;

        doc_of(v, &doc, filter, sizeof filter);
        if (win != NULL) {
            gdk_window_set_cursor(win, wait);
            gdk_display_flush(gdk_window_get_display(win));
        }
        rv = vg_report_check(&doc, err);
        if (rv == VG_OK) {
            rv = pdf ? vg_report_write_pdf(&doc, path, &pages, err)
                     : write_csv(&doc, path, err);
        }
        if (win != NULL) {
            gdk_window_set_cursor(win, NULL);
        }
        if (wait != NULL) {
            g_object_unref(wait);
        }
        if (rv == VG_OK) {
            char *text = pdf ? g_strdup_printf(ngettext("Saved %s (%u page).",
                                                        "Saved %s (%u pages).", pages),
                                               path, pages)
                             : g_strdup_printf(_("Saved %s."), path);
            gtk_label_set_text(GTK_LABEL(v->summary), text);
            if (pdf) {
                hmi_note(v->h, "last_report", "pdf %s: %s, %zu rows, %u pages",
                         v->spec.name, path, rows, pages);
            } else {
                hmi_note(v->h, "last_report", "csv %s: %s, %zu rows", v->spec.name,
                         path, rows);
            }
            g_free(text);
        } else {
            hmi_note(v->h, "last_report", "%s %s: %s: failed: %s", pdf ? "pdf" : "csv",
                     v->spec.name, path, err);
            hmi_error(v->h, _("The report was not saved"), err);
        }
    } else if (path != NULL && !v->destroyed) {
        gtk_label_set_text(GTK_LABEL(v->summary),
                           _("The report changed meanwhile: nothing was saved."));
    }
    g_free(path);
    g_object_unref(v->root);
}

static void on_save_pdf(GtkButton *b, gpointer p)
{
    (void)b;
    save(p, true);
}

static void on_save_csv(GtkButton *b, gpointer p)
{
    (void)b;
    save(p, false);
}

/* ----------------------------------------------------------------- list */

static void on_report_selected(GtkTreeSelection *s, gpointer p)
{
    struct report_view *v = p;
    struct spec spec;
    bool ok;
    int index = selected_index(v, &ok);
    long long now = hmi_now_ms();

    (void)s;
    v->gen++; /* a run of the previous report is of no interest now */
    data_drop(v);
    preview_clear(v);
    gtk_widget_set_sensitive(v->run, ok);
    if (!ok || !spec_of(v, index, &spec)) {
        gtk_label_set_text(GTK_LABEL(v->summary), _("Choose a report on the left."));
        return;
    }
    g_free(v->auto_to);
    g_free(v->auto_from);
    v->auto_to = time_entry_set(v->to, now);
    v->auto_from = time_entry_set(v->from, now - (long long)spec.range_s * 1000);
    v->auto_range_s = spec.range_s;
    gtk_label_set_text(GTK_LABEL(v->summary), _("Press Run to fetch the data."));
    /* Point at the report's usual format. */
    gtk_style_context_remove_class(gtk_widget_get_style_context(spec.pdf ? v->save_csv
                                                                         : v->save_pdf),
                                   GTK_STYLE_CLASS_SUGGESTED_ACTION);
    gtk_style_context_add_class(gtk_widget_get_style_context(spec.pdf ? v->save_pdf
                                                                      : v->save_csv),
                                GTK_STYLE_CLASS_SUGGESTED_ACTION);
    spec_clear(&spec);
}

/* Fill the list and select its first entry. */
static void fill_list(struct report_view *v)
{
    const struct vg_project *p = v->h->project;
    GtkTreeIter it;

    gtk_list_store_clear(v->list);
    for (size_t i = 0; p != NULL && i < p->n_reports; i++) {
        const struct vg_report *r = &p->reports[i];
        const char *t = hmi_text(v->h, &r->title);
        gtk_list_store_append(v->list, &it);
        gtk_list_store_set(v->list, &it, R_TITLE,
                           t[0] != '\0' ? t : (r->name != NULL ? r->name : ""), R_KIND,
                           kind_text(type_of(r->kind)), R_INDEX, (int)i, -1);
    }
    gtk_list_store_append(v->list, &it);
    gtk_list_store_set(v->list, &it, R_TITLE, _("Alarm journal"), R_KIND,
                       kind_text(VG_REPORT_TYPE_ALARMS), R_INDEX, ADHOC_ALARMS, -1);
    gtk_list_store_append(v->list, &it);
    gtk_list_store_set(v->list, &it, R_TITLE, _("Audit trail"), R_KIND,
                       kind_text(VG_REPORT_TYPE_AUDIT), R_INDEX, ADHOC_AUDIT, -1);
    if (gtk_tree_model_get_iter_first(GTK_TREE_MODEL(v->list), &it)) {
        gtk_tree_selection_select_iter(v->sel, &it);
    }
}

/* ---------------------------------------------------------------- build */

static GtkWidget *build_list(struct report_view *v)
{
    GtkWidget *scroll = gtk_scrolled_window_new(NULL, NULL);
    GtkWidget *tree;
    GtkTreeViewColumn *c;

    v->list = gtk_list_store_new(R_N, G_TYPE_STRING, G_TYPE_STRING, G_TYPE_INT);
    tree = gtk_tree_view_new_with_model(GTK_TREE_MODEL(v->list));
    gtk_widget_set_name(tree, "hmi-report-list");
    c = gtk_tree_view_column_new_with_attributes(_("Report"), gtk_cell_renderer_text_new(),
                                                 "text", R_TITLE, NULL);
    gtk_tree_view_column_set_expand(c, TRUE);
    gtk_tree_view_append_column(GTK_TREE_VIEW(tree), c);
    c = gtk_tree_view_column_new_with_attributes(_("Kind"), gtk_cell_renderer_text_new(),
                                                 "text", R_KIND, NULL);
    gtk_tree_view_append_column(GTK_TREE_VIEW(tree), c);
    v->sel = gtk_tree_view_get_selection(GTK_TREE_VIEW(tree));
    gtk_tree_selection_set_mode(v->sel, GTK_SELECTION_BROWSE);
    gtk_scrolled_window_set_policy(GTK_SCROLLED_WINDOW(scroll), GTK_POLICY_NEVER,
                                   GTK_POLICY_AUTOMATIC);
    gtk_container_add(GTK_CONTAINER(scroll), tree);
    gtk_widget_set_size_request(scroll, 260, -1);
    return scroll;
}

static GtkWidget *build_main(struct report_view *v)
{
    GtkWidget *box = gtk_box_new(GTK_ORIENTATION_VERTICAL, 6);
    GtkWidget *bar = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 6);
    GtkWidget *scroll = gtk_scrolled_window_new(NULL, NULL);

    gtk_container_set_border_width(GTK_CONTAINER(box), 6);
    v->from = gtk_entry_new();
    v->to = gtk_entry_new();
    gtk_entry_set_width_chars(GTK_ENTRY(v->from), 17);
    gtk_entry_set_width_chars(GTK_ENTRY(v->to), 17);
    gtk_entry_set_placeholder_text(GTK_ENTRY(v->from), "YYYY-MM-DD HH:MM");
    gtk_entry_set_placeholder_text(GTK_ENTRY(v->to), "YYYY-MM-DD HH:MM");
    v->run = gtk_button_new_with_mnemonic(_("_Run"));
    v->save_pdf = gtk_button_new_with_mnemonic(_("Save as _PDF…"));
    v->save_csv = gtk_button_new_with_mnemonic(_("Save as _CSV…"));
    /* "hmi-…" names: the station reports where those are for tests. */
    gtk_widget_set_name(v->from, "hmi-report-from");
    gtk_widget_set_name(v->to, "hmi-report-to");
    gtk_widget_set_name(v->run, "hmi-report-run");
    gtk_widget_set_name(v->save_pdf, "hmi-report-save-pdf");
    gtk_widget_set_name(v->save_csv, "hmi-report-save-csv");
    g_signal_connect(v->run, "clicked", G_CALLBACK(on_run), v);
    g_signal_connect(v->save_pdf, "clicked", G_CALLBACK(on_save_pdf), v);
    g_signal_connect(v->save_csv, "clicked", G_CALLBACK(on_save_csv), v);
    gtk_box_pack_start(GTK_BOX(bar), gtk_label_new(_("From")), FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(bar), v->from, FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(bar), gtk_label_new(_("To")), FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(bar), v->to, FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(bar), v->run, FALSE, FALSE, 0);
    gtk_box_pack_end(GTK_BOX(bar), v->save_csv, FALSE, FALSE, 0);
    gtk_box_pack_end(GTK_BOX(bar), v->save_pdf, FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(box), bar, FALSE, FALSE, 0);

    v->summary = gtk_label_new("");
    gtk_widget_set_name(v->summary, "hmi-report-summary");
    gtk_label_set_xalign(GTK_LABEL(v->summary), 0);
    gtk_label_set_line_wrap(GTK_LABEL(v->summary), TRUE);
    gtk_box_pack_start(GTK_BOX(box), v->summary, FALSE, FALSE, 0);

    v->preview = gtk_tree_view_new();
    gtk_widget_set_name(v->preview, "hmi-report-preview");
    gtk_scrolled_window_set_policy(GTK_SCROLLED_WINDOW(scroll), GTK_POLICY_AUTOMATIC,
                                   GTK_POLICY_AUTOMATIC);
    gtk_container_add(GTK_CONTAINER(scroll), v->preview);
    gtk_box_pack_start(GTK_BOX(box), scroll, TRUE, TRUE, 0);
    return box;
}

GtkWidget *hmi_report_view_new(struct hmi *h)
{
    struct report_view *v = g_new0(struct report_view, 1);

    v->h = h;
    v->root = gtk_paned_new(GTK_ORIENTATION_HORIZONTAL);
    gtk_paned_pack1(GTK_PANED(v->root), build_list(v), FALSE, TRUE);
    gtk_paned_pack2(GTK_PANED(v->root), build_main(v), TRUE, FALSE);
    g_object_set_data_full(G_OBJECT(v->root), "hmi-report-view", v, view_free);
    g_signal_connect(v->root, "destroy", G_CALLBACK(on_destroy), v);
    preview_clear(v);
    data_drop(v);
    fill_list(v);
    g_signal_connect(v->sel, "changed", G_CALLBACK(on_report_selected), v);
    on_report_selected(v->sel, v);
    return v->root;
}

void hmi_report_view_project_changed(GtkWidget *view)
{
    struct report_view *v = view_of(view);

    if (v == NULL || v->destroyed) {
        return;
    }
    /* The list's indices are the old project's: start over (selecting the
     * first entry resets the rest). */
    fill_list(v);
}
