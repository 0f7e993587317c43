/* vigil-hmi: the trend view (hmi.h) — archived tags over a chosen period.
 *
 * Left, a list of every archived tag of the project with a check box and a
 * search entry; up to MAX_TAGS may be checked, each keeping the colour of
 * the palette it got while it stays checked. Top, the period: range
 * buttons (which also follow the present), zoom in and out around the
 * centre, pan by half a span, and "Now", which follows the present and
 * reloads every FOLLOW_S seconds while the view is on screen. On the
 * chart, the wheel zooms around the pointer and dragging pans.
 *
 * Data: one request-thread job (hmi_net_job) asks history_query with
 * "buckets" for every checked tag in turn; about one bucket per two pixels
 * of chart width. Every change of tags or period bumps a generation and
 * schedules a load after DEBOUNCE_MS, so that a drag or a spun wheel makes
 * one request rather than dozens. Only one job is in flight at a time (the
 * request thread also carries the operators' acknowledgments and
 * setpoints): a load due meanwhile waits for it (AGAIN). An answer whose
 * generation is no longer current is dropped. While a load for a
 * new period runs, the old curves stay on the new axis with "loading…"
 * over them; a failed query shows its reason instead.
 *
 * The station may preset the tags when a screen's trend object is opened:
 *
 *   void hmi_trend_view_show_tags(GtkWidget *view, const char *const *tags,
 *                                 size_t n, unsigned span_s);
 *
 * checks exactly TAGS (those archived, up to MAX_TAGS), shows the last
 * SPAN_S seconds (0: one hour) and follows the present. It does not bring
 * the view to the front; the caller does (hmi_show_view).
 *
 * Lifetime as in alarm_view.c: requests hold a reference on the root
 * widget, callbacks check DESTROYED, and the timers go with the widget. */
#include "hmi.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../proto/proto.h"

void hmi_trend_view_show_tags(GtkWidget *view, const char *const *tags, size_t n,
                              unsigned span_s);

#define MAX_TAGS 8
#define DEBOUNCE_MS 150
#define FOLLOW_S 5
#define MARGIN 4                                  /* px around the chart */
#define MIN_SPAN_MS (60 * 1000LL)                 /* one minute */
#define MAX_SPAN_MS (366 * 24 * 3600 * 1000LL)    /* a year */
#define DEFAULT_SPAN_MS (3600 * 1000LL)

/* render.c draws the curves on a dark plot: light colours, told apart
 * also with the common colour blindnesses (after Okabe and Ito) in the
 * order they are handed out. */
static const uint32_t palette[MAX_TAGS] = {
    0x56b4e9, 0xe69f00, 0x2bbf8f, 0xf0e442,
    0xcc79a7, 0xff7f50, 0xe0e0e0, 0x9e9ac8,
};

enum { T_ON, T_NAME, T_DESC, T_UNIT, T_SWATCH, T_COLOR, T_KEY, T_N };

/* The drawn curve of one tag, in the shape render.h takes. */
struct series {
    char *tag, *unit;
    uint32_t color;
    size_t n;
    int64_t *t;
    double *min, *max, *avg;
};

struct chosen {
    char *tag;
    int color; /* index into palette */
};

struct trend_view {
    struct hmi *h;
    GtkWidget *root;
    bool destroyed;

    GtkListStore *store;
    GtkTreeModel *filter;
    GtkWidget *search, *tree, *area, *range_label, *now, *info;

    struct chosen chosen[MAX_TAGS];
    size_t n_chosen;

    /* The period shown: END_MS - SPAN_MS .. END_MS (wall clock). */
    int64_t span_ms, end_ms;
    bool follow;
    bool syncing; /* setting the "Now" button from code */

    guint debounce, follow_timer;
    unsigned gen;        /* bumped by every change of tags or period */
    bool in_flight;      /* a load is queued or running */
    bool again;          /* and another is due when it is done */

    struct series s[MAX_TAGS];
    size_t n_series;
    char *message; /* drawn over the chart: "loading…", an error; NULL */

    bool dragging;
    double drag_x;
    int64_t drag_end;
};

/* -------------------------------------------------------------- lifetime */

static void series_clear(struct series *s)
{
    g_free(s->tag);
    g_free(s->unit);
    g_free(s->t);
    g_free(s->min);
    g_free(s->max);
    g_free(s->avg);
    memset(s, 0, sizeof *s);
}

static void view_free(gpointer p)
{
    struct trend_view *v = p;

    for (size_t i = 0; i < v->n_series; i++) {
        series_clear(&v->s[i]);
    }
    for (size_t i = 0; i < v->n_chosen; i++) {
        g_free(v->chosen[i].tag);
    }
    g_object_unref(v->filter);
    g_object_unref(v->store);
    g_free(v->message);
    g_free(v);
}

static void on_destroy(GtkWidget *w, gpointer p)
{
    struct trend_view *v = p;
    (void)w;
    v->destroyed = true;
    if (v->debounce != 0) {
        g_source_remove(v->debounce);
        v->debounce = 0;
    }
    if (v->follow_timer != 0) {
        g_source_remove(v->follow_timer);
        v->follow_timer = 0;
    }
}

static struct trend_view *view_of(GtkWidget *root)
{
    return root != NULL ? g_object_get_data(G_OBJECT(root), "hmi-trend-view") : NULL;
}

static void set_message(struct trend_view *v, const char *text)
{
    g_free(v->message);
    v->message = g_strdup(text);
}

/* ------------------------------------------------------------- loading */

/* What the request thread needs, copied: the project may be replaced
 * while the job waits. */
struct load {
    struct trend_view *v; /* held; main thread only */
    unsigned gen;
    char *tags[MAX_TAGS];
    uint32_t colors[MAX_TAGS];
    size_t n;
    long long from_ms, to_ms;
    unsigned buckets;
};

static void load_free(struct load *l)
{
    for (size_t i = 0; i < l->n; i++) {
        g_free(l->tags[i]);
    }
    g_free(l);
}

/* On the request thread: one history_query per tag, the answers (error
 * objects included) in an array in tag order. */
static json_t *load_job(struct vg_client *c, void *arg, char *errmsg)
{
    struct load *l = arg;
    json_t *out = json_array();

    for (size_t i = 0; i < l->n; i++) {
        json_t *req = vg_proto_request("history_query", -1), *ans = NULL;
        int rv;

        json_object_set_new(req, "tag", json_string(l->tags[i]));
        json_object_set_new(req, "from_ms", json_integer(l->from_ms));
        json_object_set_new(req, "to_ms", json_integer(l->to_ms));
        json_object_set_new(req, "buckets", json_integer(l->buckets));
        rv = vg_client_call(c, req, &ans, errmsg);
        json_decref(req);
        if (rv != VG_OK) {
            json_decref(out);
            return NULL;
        }
        json_array_append_new(out, ans);
    }
    return out;
}

static double number_or_nan(json_t *j)
{
    double d = json_is_number(j) ? json_number_value(j) : NAN;
    return isfinite(d) ? d : NAN;
}

static void put(struct series *s, int64_t t, double min, double max, double avg)
{
    s->t[s->n] = t;
    s->min[s->n] = min;
    s->max[s->n] = max;
    s->avg[s->n] = avg;
    s->n++;
}

/* Times and widths beyond 2^53 ms (the protocol's bound) are treated as
 * absent, so that the arithmetic below cannot overflow. */
#define TIME_MAX (INT64_C(1) << 53)

static bool time_ok(json_t *j)
{
    return json_is_integer(j) && json_integer_value(j) >= 0 &&
           json_integer_value(j) <= TIME_MAX;
}

static bool sample_bad(json_t *j)
{
    return json_is_true(j) || (json_is_integer(j) && json_integer_value(j) != 0);
}

/* Fill S from a history answer with buckets as the archive means it
 * (tags.csv "archive", MESSAGES.md "History"), which lists only buckets
 * that have samples:
 *   - a bucket with bad samples only is a gap;
 *   - a tag archived on change keeps its value until the next sample (a
 *     quality change is a sample too): the curve starts with the sample
 *     before the period, steps at each bucket and is held to the end of the
 *     period (at most NOW_MS); a missing bucket is no gap;
 *   - a tag archived cyclically has a sample every period: where more than
 *     two periods are missing the curve has a gap.
 * TAG may be NULL (then neither rule applies). Malformed buckets, times
 * out of range and buckets not after their predecessor are skipped. */
static void series_parse(struct series *s, json_t *ans, const struct vg_tag *tag,
                         int64_t now_ms)
{
    json_t *list = json_object_get(ans, "buckets"), *b, *before;
    json_t *jw = json_object_get(ans, "bucket_ms"), *jto = json_object_get(ans, "to_ms");
    int64_t width = time_ok(jw) ? json_integer_value(jw) : 0;
    int64_t to = time_ok(jto) ? json_integer_value(jto) : 0;
    bool hold = tag != NULL && tag->archive == VG_ARCHIVE_CHANGE;
    int64_t max_step = 0; /* a longer step between buckets is a gap; 0: never */
    double last = NAN;    /* the held value */
    size_t cap = 3 * json_array_size(list) + 3, i;

    if (tag != NULL && tag->archive == VG_ARCHIVE_CYCLIC && width > 0) {
        max_step = 2 * MAX((int64_t)tag->archive_period_s * 1000, width) + width;
    }
    s->t = g_new(int64_t, cap);
    s->min = g_new(double, cap);
    s->max = g_new(double, cap);
    s->avg = g_new(double, cap);
    s->n = 0;
    before = json_object_get(ans, "before");
    if (hold && time_ok(json_array_get(before, 0)) &&
        !sample_bad(json_array_get(before, 2))) {
        last = number_or_nan(json_array_get(before, 1));
        if (isfinite(last)) {
            /* At its own time, before the axis: the chart clips it. */
            put(s, json_integer_value(json_array_get(before, 0)), last, last, last);
        }
    }
    json_array_foreach(list, i, b) {
        json_t *start = json_array_get(b, 0), *jn = json_array_get(b, 1);
        int64_t t;

        if (!json_is_array(b) || json_array_size(b) < 5 || !time_ok(start)) {
            continue;
        }
        t = json_integer_value(start);
        if (s->n > 0 && t <= s->t[s->n - 1]) {
            continue;
        }
        if (max_step > 0 && s->n > 0 && t - s->t[s->n - 1] > max_step) {
            put(s, s->t[s->n - 1] + width, NAN, NAN, NAN);
        }
        if (json_is_integer(jn) && json_integer_value(jn) == 0) {
            put(s, t, NAN, NAN, NAN);
            last = NAN;
            continue;
        }
        if (hold && isfinite(last) && s->n > 0 && t - 1 > s->t[s->n - 1]) {
            put(s, t - 1, last, last, last); /* the step */
        }
        put(s, t, number_or_nan(json_array_get(b, 2)), number_or_nan(json_array_get(b, 3)),
            number_or_nan(json_array_get(b, 4)));
        last = number_or_nan(json_array_get(b, 6));
        if (!isfinite(last)) {
            last = s->avg[s->n - 1];
        }
    }
    if (hold && isfinite(last)) {
        int64_t end = MIN(to, now_ms);
        if (s->n == 0 || end > s->t[s->n - 1]) {
            put(s, end, last, last, last);
        }
    }
}

static const struct vg_tag *tag_of(const struct hmi *h, const char *name)
{
    int t = h->project != NULL ? vg_project_find_tag(h->project, name) : -1;
    return t >= 0 ? &h->project->tags[t] : NULL;
}

static void load_start(struct trend_view *v);

static void load_done(json_t *answer, const char *errmsg, void *ud)
{
    struct load *l = ud;
    struct trend_view *v = l->v;

    if (!v->destroyed) {
        v->in_flight = false;
        if (l->gen == v->gen) {
            GString *errors = g_string_new("");
            json_t *a;
            size_t i;

            /* Without any answer the curves drawn stay (what was archived
             * does not change) under the error. */
            if (answer == NULL) {
                g_string_append(errors, errmsg);
            } else {
                for (i = 0; i < v->n_series; i++) {
                    series_clear(&v->s[i]);
                }
                v->n_series = 0;
            }
            json_array_foreach(answer, i, a) {
                const struct vg_tag *tag;
                struct series *s;
                if (i >= l->n) {
                    break;
                }
                if (strcmp(vg_proto_get_str(a, "type", ""), "history") != 0) {
                    g_string_append_printf(errors, "%s%s: %s", errors->len ? "; " : "",
                                           l->tags[i],
                                           vg_proto_get_str(a, "message",
                                                            _("unexpected answer")));
                    continue;
                }
                tag = tag_of(v->h, l->tags[i]);
                s = &v->s[v->n_series++];
                s->tag = g_strdup(l->tags[i]);
                s->unit = g_strdup(tag != NULL ? tag->unit : NULL);
                s->color = l->colors[i];
                series_parse(s, a, tag, hmi_now_ms());
            }
            if (errors->len > 0) {
                char *text = g_strdup_printf(_("The history could not be read: %s"),
                                             errors->str);
                set_message(v, text);
                hmi_note(v->h, "trend", "error: %s", errors->str);
                g_free(text);
            } else {
                set_message(v, NULL);
                hmi_note(v->h, "trend", "%zu tags, %lld..%lld ms, %u buckets%s", l->n,
                         l->from_ms, l->to_ms, l->buckets,
                         v->follow ? ", following" : "");
            }
            g_string_free(errors, TRUE);
            gtk_widget_queue_draw(v->area);
        }
        if (v->again) {
            v->again = false;
            load_start(v);
        }
    }
    json_decref(answer);
    g_object_unref(v->root);
    load_free(l);
}

static void load_start(struct trend_view *v)
{
    struct load *l;
    int width = gtk_widget_get_allocated_width(v->area);

    if (v->destroyed || v->n_chosen == 0) {
        return;
    }
    if (v->in_flight) {
        v->again = true;
        return;
    }
    l = g_new0(struct load, 1);
    l->v = v;
    l->gen = v->gen;
    for (size_t i = 0; i < v->n_chosen; i++) {
        l->tags[l->n] = g_strdup(v->chosen[i].tag);
        l->colors[l->n++] = palette[v->chosen[i].color];
    }
    l->to_ms = v->end_ms;
    l->from_ms = v->end_ms - v->span_ms;
    /* About one bucket per two pixels: finer cannot be seen. */
    l->buckets = (unsigned)CLAMP(width > 2 * MARGIN ? (width - 2 * MARGIN) / 2 : 500, 10,
                                 2000);
    v->in_flight = true;
    g_object_ref(v->root);
    hmi_net_job(v->h->net, load_job, l, NULL, load_done, l);
}

static gboolean on_debounce(gpointer p)
{
    struct trend_view *v = p;
    v->debounce = 0;
    load_start(v);
    return G_SOURCE_REMOVE;
}

/* ---------------------------------------------------------------- period */

static void update_range_label(struct trend_view *v)
{
    char from[64], to[64], text[200];

    hmi_time_text(v->end_ms - v->span_ms, from, sizeof from);
    hmi_time_text(v->end_ms, to, sizeof to);
    snprintf(text, sizeof text, "%s – %s", from, to);
    gtk_label_set_text(GTK_LABEL(v->range_label), text);
}

static void sync_now_button(struct trend_view *v)
{
    v->syncing = true;
    gtk_toggle_button_set_active(GTK_TOGGLE_BUTTON(v->now), v->follow);
    v->syncing = false;
}

/* The tags or the period changed: redraw on the new axis at once and load
 * after a pause. LOADING puts "loading…" over the chart meanwhile. */
static void changed(struct trend_view *v, bool loading)
{
    int64_t now = hmi_now_ms();

    v->span_ms = CLAMP(v->span_ms, MIN_SPAN_MS, MAX_SPAN_MS);
    if (v->follow || v->end_ms > now) {
        v->end_ms = now;
    }
    v->gen++;
    if (loading && v->n_chosen > 0) {
        set_message(v, _("loading…"));
    }
    update_range_label(v);
    sync_now_button(v);
    gtk_widget_queue_draw(v->area);
    if (v->debounce != 0) {
        g_source_remove(v->debounce);
    }
    v->debounce = g_timeout_add(DEBOUNCE_MS, on_debounce, v);
}

/* Scale the span by F keeping time AT_MS where it is on the chart. */
static void zoom(struct trend_view *v, double f, int64_t at_ms)
{
    int64_t from = v->end_ms - v->span_ms;
    int64_t span = (int64_t)((double)v->span_ms * f);

    span = CLAMP(span, MIN_SPAN_MS, MAX_SPAN_MS);
    if (!v->follow) {
        double rel = v->span_ms > 0 ? (double)(at_ms - from) / (double)v->span_ms : 0.5;
        v->end_ms = at_ms + (int64_t)((1.0 - rel) * (double)span);
    }
    /* Following, the right edge stays at the present. */
    v->span_ms = span;
    changed(v, true);
}

static void on_range(GtkButton *b, gpointer p)
{
    struct trend_view *v = p;
    v->span_ms = (int64_t)GPOINTER_TO_UINT(g_object_get_data(G_OBJECT(b), "span-s")) *
                 1000;
    v->follow = true;
    changed(v, true);
}

static void on_zoom_in(GtkButton *b, gpointer p)
{
    struct trend_view *v = p;
    (void)b;
    zoom(v, 0.5, v->end_ms - v->span_ms / 2);
}

static void on_zoom_out(GtkButton *b, gpointer p)
{
    struct trend_view *v = p;
    (void)b;
    zoom(v, 2.0, v->end_ms - v->span_ms / 2);
}

static void on_pan_left(GtkButton *b, gpointer p)
{
    struct trend_view *v = p;
    (void)b;
    v->follow = false;
    v->end_ms -= v->span_ms / 2;
    changed(v, true);
}

static void on_pan_right(GtkButton *b, gpointer p)
{
    struct trend_view *v = p;
    (void)b;
    v->end_ms += v->span_ms / 2;
    /* Back at the present: follow it again. */
    v->follow = v->end_ms >= hmi_now_ms();
    changed(v, true);
}

static void on_now_toggled(GtkToggleButton *b, gpointer p)
{
    struct trend_view *v = p;
    if (v->syncing) {
        return;
    }
    v->follow = gtk_toggle_button_get_active(b);
    if (v->follow) {
        changed(v, true);
    }
}

/* While following and on screen: move to the present and reload. No
 * "loading…": the curves only grow at the right. */
static gboolean on_follow_tick(gpointer p)
{
    struct trend_view *v = p;

    if (v->follow && gtk_widget_get_mapped(v->area) && v->n_chosen > 0 &&
        !v->in_flight && v->debounce == 0) {
        v->end_ms = hmi_now_ms();
        v->gen++;
        update_range_label(v);
        load_start(v);
    }
    return G_SOURCE_CONTINUE;
}

static void on_map(GtkWidget *w, gpointer p)
{
    struct trend_view *v = p;
    (void)w;
    if (v->n_chosen > 0 && (v->follow || v->n_series == 0)) {
        changed(v, v->n_series == 0);
    }
}

/* ----------------------------------------------------------------- chart */

/* The time at X px in the drawing area. The chart's plot area is a little
 * narrower than the rectangle given to hmi_render_trend (the value axes
 * take the left of it); render.h does not say how much, so the mapping is
 * taken over the whole rectangle. */
static int64_t time_at(struct trend_view *v, double x)
{
    double w = gtk_widget_get_allocated_width(v->area) - 2 * MARGIN;
    double rel = w > 0 ? CLAMP((x - MARGIN) / w, 0.0, 1.0) : 0.5;
    return v->end_ms - v->span_ms + (int64_t)(rel * (double)v->span_ms);
}

static gboolean on_draw(GtkWidget *w, cairo_t *cr, gpointer p)
{
    struct trend_view *v = p;
    int width = gtk_widget_get_allocated_width(w);
    int height = gtk_widget_get_allocated_height(w);
    struct hmi_trend_series s[MAX_TAGS];
    struct hmi_trend_data td;

    gtk_render_background(gtk_widget_get_style_context(w), cr, 0, 0, width, height);
    if (width <= 2 * MARGIN || height <= 2 * MARGIN) {
        return FALSE;
    }
    memset(&td, 0, sizeof td);
    for (size_t i = 0; i < v->n_series; i++) {
        s[i].label = v->s[i].tag;
        s[i].unit = v->s[i].unit;
        s[i].color = v->s[i].color;
        s[i].n = v->s[i].n;
        s[i].t_ms = v->s[i].t;
        s[i].min = v->s[i].min;
        s[i].max = v->s[i].max;
        s[i].avg = v->s[i].avg;
    }
    td.series = s;
    td.n_series = v->n_series;
    td.from_ms = v->end_ms - v->span_ms;
    td.to_ms = v->end_ms;
    td.message = v->n_chosen == 0 ? _("Choose up to 8 tags on the left.") : v->message;
    /* Curves loaded for another period may reach beyond the chart. */
    cairo_save(cr);
    cairo_rectangle(cr, 0, 0, width, height);
    cairo_clip(cr);
    hmi_render_trend(cr, MARGIN, MARGIN, width - 2 * MARGIN, height - 2 * MARGIN, &td,
                     !v->h->connected);
    cairo_restore(cr);
    return FALSE;
}

static gboolean on_scroll(GtkWidget *w, GdkEventScroll *ev, gpointer p)
{
    struct trend_view *v = p;
    double f = 1.0, dx = 0, dy = 0;
    (void)w;

    switch (ev->direction) {
    case GDK_SCROLL_UP:
        f = 0.8;
        break;
    case GDK_SCROLL_DOWN:
        f = 1.25;
        break;
    case GDK_SCROLL_SMOOTH:
        if (gdk_event_get_scroll_deltas((GdkEvent *)ev, &dx, &dy)) {
            f = CLAMP(1.0 + 0.25 * dy, 0.5, 2.0);
        }
        break;
    default:
        return FALSE;
    }
    if (f == 1.0) {
        return TRUE;
    }
    v->follow = false;
    zoom(v, f, time_at(v, ev->x));
    return TRUE;
}

static gboolean on_press(GtkWidget *w, GdkEventButton *ev, gpointer p)
{
    struct trend_view *v = p;
    (void)w;
    if (ev->button != GDK_BUTTON_PRIMARY || ev->type != GDK_BUTTON_PRESS) {
        return FALSE;
    }
    v->dragging = true;
    v->drag_x = ev->x;
    v->drag_end = v->end_ms;
    return TRUE;
}

static gboolean on_release(GtkWidget *w, GdkEventButton *ev, gpointer p)
{
    struct trend_view *v = p;
    (void)w;
    if (ev->button == GDK_BUTTON_PRIMARY) {
        v->dragging = false;
    }
    return FALSE;
}

static gboolean on_motion(GtkWidget *w, GdkEventMotion *ev, gpointer p)
{
    struct trend_view *v = p;
    double width = gtk_widget_get_allocated_width(w) - 2 * MARGIN;

    if (!v->dragging || width <= 0 || ev->x == v->drag_x) {
        return FALSE;
    }
    /* Dragging right shows the past, as if the paper were pulled. */
    v->follow = false;
    v->end_ms = v->drag_end - (int64_t)((ev->x - v->drag_x) / width * (double)v->span_ms);
    changed(v, false);
    return TRUE;
}

/* ------------------------------------------------------------ tag chooser */

static void set_info(struct trend_view *v, const char *text)
{
    gtk_label_set_text(GTK_LABEL(v->info), text != NULL ? text : "");
}

static int chosen_index(const struct trend_view *v, const char *tag)
{
    for (size_t i = 0; i < v->n_chosen; i++) {
        if (strcmp(v->chosen[i].tag, tag) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static int free_color(const struct trend_view *v)
{
    for (int c = 0; c < MAX_TAGS; c++) {
        bool used = false;
        for (size_t i = 0; i < v->n_chosen; i++) {
            used = used || v->chosen[i].color == c;
        }
        if (!used) {
            return c;
        }
    }
    return 0;
}

/* Show in the store which tags are chosen and in which colour. */
static void sync_store(struct trend_view *v)
{
    GtkTreeModel *m = GTK_TREE_MODEL(v->store);
    GtkTreeIter it;

    for (gboolean ok = gtk_tree_model_get_iter_first(m, &it); ok;
         ok = gtk_tree_model_iter_next(m, &it)) {
        char *name = NULL, color[16] = "";
        int k;
        gtk_tree_model_get(m, &it, T_NAME, &name, -1);
        k = name != NULL ? chosen_index(v, name) : -1;
        if (k >= 0) {
            snprintf(color, sizeof color, "#%06x", (unsigned)palette[v->chosen[k].color]);
        }
        gtk_list_store_set(v->store, &it, T_ON, k >= 0, T_SWATCH, k >= 0 ? "■" : "",
                           T_COLOR, k >= 0 ? color : NULL, -1);
        g_free(name);
    }
}

/* Whether the project has TAG and archives it (others have no history). */
static bool archived(const struct hmi *h, const char *tag)
{
    const struct vg_tag *t = tag != NULL ? tag_of(h, tag) : NULL;
    return t != NULL && t->archive != VG_ARCHIVE_NONE;
}

static bool choose(struct trend_view *v, const char *tag)
{
    if (v->n_chosen >= MAX_TAGS || chosen_index(v, tag) >= 0 || !archived(v->h, tag)) {
        return false;
    }
    v->chosen[v->n_chosen].color = free_color(v);
    v->chosen[v->n_chosen++].tag = g_strdup(tag);
    return true;
}

static void unchoose(struct trend_view *v, size_t k)
{
    g_free(v->chosen[k].tag);
    memmove(&v->chosen[k], &v->chosen[k + 1], (v->n_chosen - k - 1) * sizeof v->chosen[0]);
    v->n_chosen--;
}

/* Drop the curves of tags no longer chosen; the others stay until the next
 * load replaces them. */
static void prune_series(struct trend_view *v)
{
    size_t out = 0;
    for (size_t i = 0; i < v->n_series; i++) {
        if (chosen_index(v, v->s[i].tag) >= 0) {
            v->s[out++] = v->s[i];
        } else {
            series_clear(&v->s[i]);
        }
    }
    v->n_series = out;
}

static void on_toggled(GtkCellRendererToggle *r, char *path, gpointer p)
{
    struct trend_view *v = p;
    GtkTreeIter fit, it;
    char *name = NULL;
    int k;

    (void)r;
    if (!gtk_tree_model_get_iter_from_string(v->filter, &fit, path)) {
        return;
    }
    gtk_tree_model_filter_convert_iter_to_child_iter(GTK_TREE_MODEL_FILTER(v->filter), &it,
                                                     &fit);
    gtk_tree_model_get(GTK_TREE_MODEL(v->store), &it, T_NAME, &name, -1);
    if (name == NULL) {
        return;
    }
    k = chosen_index(v, name);
    if (k >= 0) {
        unchoose(v, (size_t)k);
        prune_series(v);
        set_info(v, NULL);
    } else if (v->n_chosen >= MAX_TAGS) {
        set_info(v, _("At most 8 tags can be shown at once."));
    } else {
        choose(v, name);
        set_info(v, NULL);
    }
    g_free(name);
    sync_store(v);
    changed(v, true);
}

static gboolean tag_visible(GtkTreeModel *m, GtkTreeIter *it, gpointer p)
{
    struct trend_view *v = p;
    const char *text = v->search != NULL ? gtk_entry_get_text(GTK_ENTRY(v->search)) : "";
    char *key = NULL, *needle;
    gboolean ok;

    if (text == NULL || text[0] == '\0') {
        return TRUE;
    }
    gtk_tree_model_get(m, it, T_KEY, &key, -1);
    needle = g_utf8_casefold(text, -1);
    ok = key != NULL && strstr(key, needle) != NULL;
    g_free(needle);
    g_free(key);
    return ok;
}

static void on_search(GtkSearchEntry *e, gpointer p)
{
    struct trend_view *v = p;
    (void)e;
    gtk_tree_model_filter_refilter(GTK_TREE_MODEL_FILTER(v->filter));
}

static void fill_store(struct trend_view *v)
{
    const struct vg_project *pr = v->h->project;

    gtk_list_store_clear(v->store);
    for (size_t i = 0; pr != NULL && i < pr->n_tags; i++) {
        const struct vg_tag *t = &pr->tags[i];
        const char *desc;
        char *both, *key;
        GtkTreeIter it;

        if (t->archive == VG_ARCHIVE_NONE || t->name == NULL) {
            continue;
        }
        desc = hmi_text(v->h, &t->description);
        both = g_strconcat(t->name, " ", desc, NULL);
        key = g_utf8_casefold(both, -1);
        gtk_list_store_append(v->store, &it);
        gtk_list_store_set(v->store, &it, T_ON, FALSE, T_NAME, t->name, T_DESC, desc,
                           T_UNIT, t->unit != NULL ? t->unit : "", T_KEY, key, -1);
        g_free(key);
        g_free(both);
    }
    sync_store(v);
}

/* ---------------------------------------------------------------- build */

/* Widgets get "hmi-…" names: the station reports where those are for
 * tests that click them. */
static GtkWidget *tool(GtkWidget *box, const char *name, const char *label,
                       const char *tip, GCallback cb, struct trend_view *v)
{
    GtkWidget *b = gtk_button_new_with_label(label);
    gtk_widget_set_name(b, name);
    if (tip != NULL) {
        gtk_widget_set_tooltip_text(b, tip);
    }
    g_signal_connect(b, "clicked", cb, v);
    gtk_box_pack_start(GTK_BOX(box), b, FALSE, FALSE, 0);
    return b;
}

static GtkWidget *build_chooser(struct trend_view *v)
{
    GtkWidget *box = gtk_box_new(GTK_ORIENTATION_VERTICAL, 4);
    GtkWidget *scroll = gtk_scrolled_window_new(NULL, NULL);
    GtkCellRenderer *r;
    GtkTreeViewColumn *c;

    v->search = gtk_search_entry_new();
    gtk_widget_set_name(v->search, "hmi-trend-search");
    gtk_entry_set_placeholder_text(GTK_ENTRY(v->search), _("Search tags"));
    g_signal_connect(v->search, "search-changed", G_CALLBACK(on_search), v);
    gtk_box_pack_start(GTK_BOX(box), v->search, FALSE, FALSE, 0);

    v->store = gtk_list_store_new(T_N, G_TYPE_BOOLEAN, G_TYPE_STRING, G_TYPE_STRING,
                                  G_TYPE_STRING, G_TYPE_STRING, G_TYPE_STRING,
                                  G_TYPE_STRING);
    v->filter = gtk_tree_model_filter_new(GTK_TREE_MODEL(v->store), NULL);
    gtk_tree_model_filter_set_visible_func(GTK_TREE_MODEL_FILTER(v->filter), tag_visible,
                                           v, NULL);
    v->tree = gtk_tree_view_new_with_model(v->filter);
    gtk_widget_set_name(v->tree, "hmi-trend-tags");
    /* The search entry filters; the tree's own type-ahead would only move
     * the cursor among what the filter left. */
    gtk_tree_view_set_enable_search(GTK_TREE_VIEW(v->tree), FALSE);

    r = gtk_cell_renderer_toggle_new();
    g_signal_connect(r, "toggled", G_CALLBACK(on_toggled), v);
    c = gtk_tree_view_column_new_with_attributes("", r, "active", T_ON, NULL);
    gtk_tree_view_append_column(GTK_TREE_VIEW(v->tree), c);
    r = gtk_cell_renderer_text_new();
    c = gtk_tree_view_column_new_with_attributes("", r, "text", T_SWATCH, "foreground",
                                                 T_COLOR, NULL);
    gtk_tree_view_append_column(GTK_TREE_VIEW(v->tree), c);
    r = gtk_cell_renderer_text_new();
    c = gtk_tree_view_column_new_with_attributes(_("Tag"), r, "text", T_NAME, NULL);
    gtk_tree_view_column_set_resizable(c, TRUE);
    gtk_tree_view_append_column(GTK_TREE_VIEW(v->tree), c);
    r = gtk_cell_renderer_text_new();
    g_object_set(r, "ellipsize", PANGO_ELLIPSIZE_END, NULL);
    c = gtk_tree_view_column_new_with_attributes(_("Description"), r, "text", T_DESC, NULL);
    gtk_tree_view_column_set_expand(c, TRUE);
    gtk_tree_view_column_set_resizable(c, TRUE);
    gtk_tree_view_append_column(GTK_TREE_VIEW(v->tree), c);
    r = gtk_cell_renderer_text_new();
    c = gtk_tree_view_column_new_with_attributes(_("Unit"), r, "text", T_UNIT, NULL);
    gtk_tree_view_append_column(GTK_TREE_VIEW(v->tree), c);

    gtk_scrolled_window_set_policy(GTK_SCROLLED_WINDOW(scroll), GTK_POLICY_AUTOMATIC,
                                   GTK_POLICY_AUTOMATIC);
    gtk_container_add(GTK_CONTAINER(scroll), v->tree);
    gtk_box_pack_start(GTK_BOX(box), scroll, TRUE, TRUE, 0);
    v->info = gtk_label_new("");
    gtk_label_set_line_wrap(GTK_LABEL(v->info), TRUE);
    gtk_box_pack_start(GTK_BOX(box), v->info, FALSE, FALSE, 0);
    gtk_widget_set_size_request(box, 300, -1);
    return box;
}

static GtkWidget *build_bar(struct trend_view *v)
{
    static const struct {
        const char *label;
        unsigned span_s;
    } ranges[] = {
        {N_("10 min"), 600},      {N_("1 h"), 3600},       {N_("8 h"), 8 * 3600},
        {N_("24 h"), 24 * 3600},  {N_("7 days"), 7 * 86400}, {N_("30 days"), 30 * 86400},
    };
    GtkWidget *bar = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 4);

    for (size_t i = 0; i < G_N_ELEMENTS(ranges); i++) {
        char name[32];
        GtkWidget *b;
        snprintf(name, sizeof name, "hmi-trend-range-%u", ranges[i].span_s);
        b = tool(bar, name, _(ranges[i].label), _("Show this period up to now"),
                 G_CALLBACK(on_range), v);
        g_object_set_data(G_OBJECT(b), "span-s", GUINT_TO_POINTER(ranges[i].span_s));
    }
    gtk_box_pack_start(GTK_BOX(bar), gtk_separator_new(GTK_ORIENTATION_VERTICAL), FALSE,
                       FALSE, 4);
    tool(bar, "hmi-trend-earlier", "◀", _("Earlier"), G_CALLBACK(on_pan_left), v);
    tool(bar, "hmi-trend-later", "▶", _("Later"), G_CALLBACK(on_pan_right), v);
    tool(bar, "hmi-trend-zoom-in", "+", _("Zoom in"), G_CALLBACK(on_zoom_in), v);
    tool(bar, "hmi-trend-zoom-out", "−", _("Zoom out"), G_CALLBACK(on_zoom_out), v);
    v->now = gtk_toggle_button_new_with_label(_("Now"));
    gtk_widget_set_name(v->now, "hmi-trend-now");
    gtk_widget_set_tooltip_text(v->now, _("Follow the present"));
    g_signal_connect(v->now, "toggled", G_CALLBACK(on_now_toggled), v);
    gtk_box_pack_start(GTK_BOX(bar), v->now, FALSE, FALSE, 0);
    v->range_label = gtk_label_new("");
    gtk_box_pack_end(GTK_BOX(bar), v->range_label, FALSE, FALSE, 0);
    return bar;
}

GtkWidget *hmi_trend_view_new(struct hmi *h)
{
    struct trend_view *v = g_new0(struct trend_view, 1);
    GtkWidget *right = gtk_box_new(GTK_ORIENTATION_VERTICAL, 4);

    v->h = h;
    v->span_ms = DEFAULT_SPAN_MS;
    v->end_ms = hmi_now_ms();
    v->follow = true;
    v->root = gtk_paned_new(GTK_ORIENTATION_HORIZONTAL);
    gtk_paned_pack1(GTK_PANED(v->root), build_chooser(v), FALSE, TRUE);
    gtk_container_set_border_width(GTK_CONTAINER(right), 4);
    gtk_box_pack_start(GTK_BOX(right), build_bar(v), FALSE, FALSE, 0);
    v->area = gtk_drawing_area_new();
    gtk_widget_set_name(v->area, "hmi-trend-chart");
    gtk_widget_add_events(v->area, GDK_BUTTON_PRESS_MASK | GDK_BUTTON_RELEASE_MASK |
                                       GDK_BUTTON1_MOTION_MASK | GDK_SCROLL_MASK |
                                       GDK_SMOOTH_SCROLL_MASK);
    g_signal_connect(v->area, "draw", G_CALLBACK(on_draw), v);
    g_signal_connect(v->area, "scroll-event", G_CALLBACK(on_scroll), v);
    g_signal_connect(v->area, "button-press-event", G_CALLBACK(on_press), v);
    g_signal_connect(v->area, "button-release-event", G_CALLBACK(on_release), v);
    g_signal_connect(v->area, "motion-notify-event", G_CALLBACK(on_motion), v);
    g_signal_connect(v->area, "map", G_CALLBACK(on_map), v);
    gtk_box_pack_start(GTK_BOX(right), v->area, TRUE, TRUE, 0);
    gtk_paned_pack2(GTK_PANED(v->root), right, TRUE, FALSE);

    g_object_set_data_full(G_OBJECT(v->root), "hmi-trend-view", v, view_free);
    g_signal_connect(v->root, "destroy", G_CALLBACK(on_destroy), v);
    v->follow_timer = g_timeout_add_seconds(FOLLOW_S, on_follow_tick, v);
    fill_store(v);
    update_range_label(v);
    sync_now_button(v);
    return v->root;
}

void hmi_trend_view_project_changed(GtkWidget *view)
{
    struct trend_view *v = view_of(view);

    if (v == NULL || v->destroyed) {
        return;
    }
    /* Keep the chosen tags the new version still archives. */
    for (size_t i = v->n_chosen; i-- > 0;) {
        if (!archived(v->h, v->chosen[i].tag)) {
            unchoose(v, i);
        }
    }
    prune_series(v);
    fill_store(v);
    changed(v, true);
}

void hmi_trend_view_show_tags(GtkWidget *view, const char *const *tags, size_t n,
                              unsigned span_s)
{
    struct trend_view *v = view_of(view);
    size_t skipped = 0;

    if (v == NULL || v->destroyed) {
        return;
    }
    while (v->n_chosen > 0) {
        unchoose(v, v->n_chosen - 1);
    }
    for (size_t i = 0; tags != NULL && i < n; i++) {
        if (tags[i] != NULL && !choose(v, tags[i]) && chosen_index(v, tags[i]) < 0) {
            skipped++;
        }
    }
    prune_series(v);
    sync_store(v);
    set_info(v, skipped > 0 ? _("Some tags are not archived or too many: not shown.")
                            : NULL);
    v->span_ms = span_s > 0 ? (int64_t)span_s * 1000 : DEFAULT_SPAN_MS;
    v->follow = true;
    changed(v, true);
}
