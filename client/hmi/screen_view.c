/* vigil-hmi: the screen view (hmi.h) — a project screen drawn by render.c,
 * scaled to fit the widget, and the operator's actions on it: navigation
 * buttons, write buttons, setpoint entries, alarm lists and trends.
 *
 * A setpoint is written in three steps an operator can follow: the entry
 * dialog (shows the limits; checks the number and the limits before
 * anything is sent), a confirmation naming tag, old and new value, and the
 * cluster's answer (the leader checks again and answers only after the PLC
 * confirmed; a refusal is shown with the cluster's reason). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hmi.h"
#include "../../proto/proto.h"

/* Trend objects draw from aggregated history, refreshed this often. */
#define TREND_REFRESH_MS 10000
#define TREND_BUCKETS 300

static const uint32_t palette[] = {0x42a5f5, 0xffb300, 0x66bb6a, 0xef5350,
                                   0xab47bc, 0x26c6da, 0xd4e157, 0x8d6e63};

struct trend_cache {
    size_t object;
    bool loading;
    int64_t fetched_ms;
    struct hmi_trend_data td;
    struct hmi_trend_series series[8];
    json_t *answers; /* owns the data the series point at */
    int64_t *t[8];
    double *mn[8], *mx[8], *avg[8];
};

struct sv {
    struct hmi *h;
    GtkWidget *area;
    int screen;
    int pressed;
    double ox, oy, scale;
    struct trend_cache *trends;
    size_t n_trends;
    unsigned gen; /* screen generation: answers for an older one are dropped */
    bool destroyed;
    gint refs;
};

static struct sv *sv_of(GtkWidget *w)
{
    return g_object_get_data(G_OBJECT(w), "hmi-sv");
}

static void trends_free(struct sv *s)
{
    for (size_t i = 0; i < s->n_trends; i++) {
        struct trend_cache *c = &s->trends[i];
        json_decref(c->answers);
        for (int k = 0; k < 8; k++) {
            free(c->t[k]);
            free(c->mn[k]);
            free(c->mx[k]);
            free(c->avg[k]);
        }
    }
    free(s->trends);
    s->trends = NULL;
    s->n_trends = 0;
}

static void sv_unref(struct sv *s)
{
    if (g_atomic_int_dec_and_test(&s->refs)) {
        trends_free(s);
        g_free(s);
    }
}

/* ------------------------------------------------------------- trends */

struct trend_job {
    struct sv *sv;
    unsigned gen;
    size_t cache;
    json_t *tags; /* names */
    int64_t from_ms, to_ms;
};

static json_t *trend_fetch(struct vg_client *c, void *arg, char *errmsg)
{
    struct trend_job *j = arg;
    json_t *out = json_array(), *name;
    size_t i;

    json_array_foreach(j->tags, i, name) {
        json_t *req = vg_proto_request("history_query", -1), *ans = NULL;
        json_object_set(req, "tag", name);
        json_object_set_new(req, "from_ms", json_integer(j->from_ms));
        json_object_set_new(req, "to_ms", json_integer(j->to_ms));
        json_object_set_new(req, "buckets", json_integer(TREND_BUCKETS));
        if (vg_client_call(c, req, &ans, errmsg) != VG_OK) {
            json_decref(req);
            json_decref(out);
            return NULL;
        }
        json_decref(req);
        json_array_append_new(out, ans);
    }
    return out;
}

static void trend_job_free(void *arg)
{
    struct trend_job *j = arg;
    json_decref(j->tags);
    g_free(j);
}

static void trend_done(json_t *answer, const char *errmsg, void *ud)
{
    struct trend_job *j = ud;
    struct sv *s = j->sv;
    struct trend_cache *c;
    json_t *a;
    size_t i;

    if (s->destroyed || j->gen != s->gen || j->cache >= s->n_trends) {
        json_decref(answer);
        sv_unref(s);
        g_free(ud);
        return;
    }
    c = &s->trends[j->cache];
    c->loading = false;
    c->fetched_ms = hmi_now_ms();
    c->td.from_ms = j->from_ms;
    c->td.to_ms = j->to_ms;
    if (answer == NULL) {
        c->td.message = _("history not available");
        hmi_note(s->h, "trend_error", "%s", errmsg);
    } else {
        c->td.message = NULL;
        json_decref(c->answers);
        c->answers = answer;
        c->td.n_series = 0;
        json_array_foreach(answer, i, a) {
            json_t *b = json_object_get(a, "buckets"), *row;
            size_t n = json_array_size(b), k;
            struct hmi_trend_series *se;
            int tag;
            if (i >= 8 || !json_is_array(b)) {
                continue;
            }
            free(c->t[i]);
            free(c->mn[i]);
            free(c->mx[i]);
            free(c->avg[i]);
            c->t[i] = calloc(n + 1, sizeof *c->t[i]);
            c->mn[i] = calloc(n + 1, sizeof(double));
            c->mx[i] = calloc(n + 1, sizeof(double));
            c->avg[i] = calloc(n + 1, sizeof(double));
            if (!c->t[i] || !c->mn[i] || !c->mx[i] || !c->avg[i]) {
                continue;
            }
            json_array_foreach(b, k, row) {
                json_t *mn = json_array_get(row, 2), *mx = json_array_get(row, 3),
                       *av = json_array_get(row, 4);
                c->t[i][k] = json_integer_value(json_array_get(row, 0));
                c->mn[i][k] = json_is_number(mn) ? json_number_value(mn) : NAN;
                c->mx[i][k] = json_is_number(mx) ? json_number_value(mx) : NAN;
                c->avg[i][k] = json_is_number(av) ? json_number_value(av) : NAN;
            }
            se = &c->series[c->td.n_series++];
            se->label = vg_proto_get_str(a, "tag", "?");
            tag = s->h->project ? vg_project_find_tag(s->h->project, se->label) : -1;
            se->unit = tag >= 0 ? s->h->project->tags[tag].unit : NULL;
            se->color = palette[i % 8];
            se->n = n;
            se->t_ms = c->t[i];
            se->min = c->mn[i];
            se->max = c->mx[i];
            se->avg = c->avg[i];
        }
        c->td.series = c->series;
    }
    gtk_widget_queue_draw(s->area);
    sv_unref(s);
    g_free(ud);
}

static const struct hmi_trend_data *trend_data(void *ud, size_t object)
{
    struct sv *s = ud;
    const struct vg_screen *scr = &s->h->project->screens[s->screen];
    const struct vg_screen_object *o = &scr->objects[object];
    int64_t now = hmi_now_ms();
    struct trend_cache *c = NULL;

    for (size_t i = 0; i < s->n_trends; i++) {
        if (s->trends[i].object == object) {
            c = &s->trends[i];
        }
    }
    if (c == NULL) {
        return NULL;
    }
    if (!c->loading && now - c->fetched_ms > TREND_REFRESH_MS && s->h->net != NULL) {
        struct trend_job *j = g_new0(struct trend_job, 1);
        j->sv = s;
        j->gen = s->gen;
        j->cache = (size_t)(c - s->trends);
        j->tags = json_array();
        for (size_t k = 0; k < o->n_tags && k < 8; k++) {
            json_array_append_new(j->tags, json_string(o->tags[k].name));
        }
        j->to_ms = now;
        j->from_ms = now - (int64_t)(o->span_s ? o->span_s : 3600) * 1000;
        c->loading = true;
        if (c->fetched_ms == 0) {
            c->td.from_ms = j->from_ms;
            c->td.to_ms = j->to_ms;
            c->td.message = _("loading…");
        }
        g_atomic_int_inc(&s->refs);
        /* The job arg is freed by the request thread; the callback needs
         * its own copy of what identifies the answer. */
        {
            struct trend_job *ud2 = g_new0(struct trend_job, 1);
            *ud2 = *j;
            ud2->tags = NULL;
            hmi_net_job(s->h->net, trend_fetch, j, trend_job_free, trend_done, ud2);
        }
    }
    return &c->td;
}

/* ------------------------------------------------------------- drawing */

static gboolean on_draw(GtkWidget *w, cairo_t *cr, gpointer p)
{
    struct sv *s = p;
    struct hmi *h = s->h;
    const struct vg_screen *scr;
    struct hmi_render_data d;
    double aw = gtk_widget_get_allocated_width(w), ah = gtk_widget_get_allocated_height(w);

    cairo_set_source_rgb(cr, 0.055, 0.067, 0.082);
    cairo_paint(cr);
    if (h->project == NULL || s->screen < 0 || (size_t)s->screen >= h->project->n_screens) {
        return TRUE;
    }
    scr = &h->project->screens[s->screen];
    s->scale = fmin(aw / scr->width, ah / scr->height);
    if (!(s->scale > 0)) {
        return TRUE;
    }
    s->ox = floor((aw - scr->width * s->scale) / 2);
    s->oy = floor((ah - scr->height * s->scale) / 2);
    hmi_render_data_fill(h, &d);
    d.trend = trend_data;
    d.ud = s;
    d.pressed = s->pressed;
    cairo_save(cr);
    cairo_translate(cr, s->ox, s->oy);
    cairo_scale(cr, s->scale, s->scale);
    cairo_rectangle(cr, 0, 0, scr->width, scr->height);
    cairo_clip(cr);
    hmi_render_screen(cr, scr, &d);
    cairo_restore(cr);
    return TRUE;
}

/* ------------------------------------------------------------- setpoints */

struct write_ctx {
    struct hmi *h;
    char tag[256];
    double value;
};

static void write_done(json_t *answer, const char *errmsg, void *ud)
{
    struct write_ctx *w = ud;
    struct hmi *h = w->h;

    if (answer == NULL) {
        hmi_note(h, "last_write", "failed %s %g: %s", w->tag, w->value, errmsg);
        hmi_error(h, _("The setpoint was not written"), errmsg);
    } else if (strcmp(vg_proto_get_str(answer, "type", ""), "tag_written") == 0) {
        hmi_note(h, "last_write", "written %s %g", w->tag, w->value);
    } else {
        const char *msg = vg_proto_get_str(answer, "message", "refused");
        hmi_note(h, "last_write", "refused %s %g: %s (%s)", w->tag, w->value, msg,
                 vg_proto_get_str(answer, "code", "?"));
        hmi_error(h, _("The setpoint was refused"), msg);
    }
    json_decref(answer);
    g_free(w);
}

static bool confirm(struct hmi *h, const char *text)
{
    GtkWidget *d = gtk_message_dialog_new(GTK_WINDOW(h->window), GTK_DIALOG_MODAL,
                                          GTK_MESSAGE_QUESTION, GTK_BUTTONS_NONE,
                                          "%s", text);
    int r;

    gtk_dialog_add_buttons(GTK_DIALOG(d), _("_Cancel"), GTK_RESPONSE_CANCEL,
                           _("_Write"), GTK_RESPONSE_ACCEPT, NULL);
    gtk_dialog_set_default_response(GTK_DIALOG(d), GTK_RESPONSE_ACCEPT);
    hmi_dialog_note(h, "confirm", d);
    r = gtk_dialog_run(GTK_DIALOG(d));
    gtk_widget_destroy(d);
    hmi_dialog_note(h, NULL, NULL);
    return r == GTK_RESPONSE_ACCEPT;
}

static void send_write(struct hmi *h, const struct vg_tag *t, double value)
{
    struct write_ctx *w = g_new0(struct write_ctx, 1);
    json_t *req = vg_proto_request("tag_write", -1);

    w->h = h;
    snprintf(w->tag, sizeof w->tag, "%s", t->name);
    w->value = value;
    json_object_set_new(req, "tag", json_string(t->name));
    json_object_set_new(req, "value", t->type == VG_DT_BOOL ? json_boolean(value != 0)
                                                            : json_real(value));
    hmi_note(h, "last_write", "sent %s %g", t->name, value);
    hmi_request(h, req, write_done, w);
}

/* The limits an operator may write: the tag's write limits, else what its
 * scaling and type allow. */
static void write_limits(const struct vg_tag *t, double *lo, double *hi)
{
    if (t->type == VG_DT_BOOL) {
        *lo = 0;
        *hi = 1;
    } else if (t->has_limits) {
        *lo = t->min;
        *hi = t->max;
    } else {
        vg_tag_range(t, lo, hi);
    }
}

/* Read a number the way an operator types it: '.' or ',' as the decimal
 * separator, surrounding blanks allowed, nothing else. */
static bool parse_number(const char *text, double *out)
{
    char buf[64], *end;
    size_t n = strlen(text);

    while (n > 0 && (text[n - 1] == ' ' || text[n - 1] == '\t')) {
        n--;
    }
    while (*text == ' ' || *text == '\t') {
        text++;
        n--;
    }
    if (n == 0 || n >= sizeof buf) {
        return false;
    }
    memcpy(buf, text, n);
    buf[n] = '\0';
    for (char *c = buf; *c; c++) {
        if (*c == ',') {
            *c = '.';
        }
    }
    *out = strtod(buf, &end);
    return *end == '\0' && end != buf && isfinite(*out);
}

static void setpoint_dialog(struct sv *s, const struct vg_screen_object *o)
{
    struct hmi *h = s->h;
    const struct vg_tag *t = &h->project->tags[o->tag.index];
    const struct hmi_value *cur = &h->values[o->tag.index];
    GtkWidget *d, *box, *label, *entry, *err;
    char buf[512], now_text[128];
    double lo, hi, value = 0;
    const char *unit = t->unit != NULL ? t->unit : "";

    write_limits(t, &lo, &hi);
    d = gtk_dialog_new_with_buttons(_("Setpoint"), GTK_WINDOW(h->window),
                                    GTK_DIALOG_MODAL | GTK_DIALOG_DESTROY_WITH_PARENT,
                                    _("_Cancel"), GTK_RESPONSE_CANCEL, _("_OK"),
                                    GTK_RESPONSE_OK, NULL);
    gtk_dialog_set_default_response(GTK_DIALOG(d), GTK_RESPONSE_OK);
    box = gtk_dialog_get_content_area(GTK_DIALOG(d));
    gtk_container_set_border_width(GTK_CONTAINER(box), 12);
    gtk_box_set_spacing(GTK_BOX(box), 6);
    snprintf(buf, sizeof buf, "%s\n%s", hmi_text(h, &t->description), t->name);
    label = gtk_label_new(buf);
    gtk_box_pack_start(GTK_BOX(box), label, FALSE, FALSE, 0);
    hmi_render_value_text(o, t, cur, now_text, sizeof now_text);
    snprintf(buf, sizeof buf, _("Current value: %s"), now_text);
    gtk_box_pack_start(GTK_BOX(box), gtk_label_new(buf), FALSE, FALSE, 0);
    if (t->type == VG_DT_BOOL) {
        snprintf(buf, sizeof buf, "%s", _("Allowed: 0 or 1"));
    } else {
        snprintf(buf, sizeof buf, _("Allowed: %g … %g %s"), lo, hi, unit);
    }
    gtk_box_pack_start(GTK_BOX(box), gtk_label_new(buf), FALSE, FALSE, 0);
    entry = gtk_entry_new();
    gtk_entry_set_activates_default(GTK_ENTRY(entry), TRUE);
    if (cur->quality == HMI_Q_GOOD) {
        snprintf(buf, sizeof buf, "%g", cur->value);
        gtk_entry_set_text(GTK_ENTRY(entry), buf);
    }
    gtk_box_pack_start(GTK_BOX(box), entry, FALSE, FALSE, 0);
    err = gtk_label_new("");
    gtk_box_pack_start(GTK_BOX(box), err, FALSE, FALSE, 0);
    gtk_widget_show_all(d);
    gtk_widget_grab_focus(entry);
    hmi_dialog_note(h, "setpoint", d);
    hmi_note(h, "dialog_tag", "%s", t->name);
    for (;;) {
        int r = gtk_dialog_run(GTK_DIALOG(d));
        const char *text = gtk_entry_get_text(GTK_ENTRY(entry));
        if (r != GTK_RESPONSE_OK) {
            gtk_widget_destroy(d);
            hmi_dialog_note(h, NULL, NULL);
            hmi_note(h, "dialog_tag", NULL);
            return;
        }
        if (!parse_number(text, &value)) {
            snprintf(buf, sizeof buf, _("'%s' is not a number"), text);
        } else if (value < lo || value > hi ||
                   (t->type == VG_DT_BOOL && value != 0 && value != 1)) {
            snprintf(buf, sizeof buf, _("%g is outside the allowed range %g … %g"),
                     value, lo, hi);
        } else {
            break;
        }
        gtk_label_set_text(GTK_LABEL(err), buf);
        hmi_note(h, "setpoint_error", "%s", buf);
    }
    gtk_widget_destroy(d);
    hmi_dialog_note(h, NULL, NULL);
    hmi_note(h, "dialog_tag", NULL);
    snprintf(buf, sizeof buf, _("Write %g %s to %s?\n(now %s)"), value, unit,
             hmi_text(h, &t->description)[0] ? hmi_text(h, &t->description) : t->name,
             now_text);
    if (confirm(h, buf)) {
        send_write(h, t, value);
    } else {
        hmi_note(h, "last_write", "cancelled %s", t->name);
    }
}

static void write_button(struct sv *s, const struct vg_screen_object *o)
{
    struct hmi *h = s->h;
    const struct vg_tag *t = &h->project->tags[o->tag.index];
    char buf[512];

    snprintf(buf, sizeof buf, _("Write %g to %s?"), o->write_value,
             hmi_text(h, &t->description)[0] ? hmi_text(h, &t->description) : t->name);
    if (confirm(h, buf)) {
        send_write(h, t, o->write_value);
    }
}

/* ------------------------------------------------------------- input */

static int hit(struct sv *s, double wx, double wy)
{
    const struct vg_screen *scr;
    if (s->h->project == NULL || s->screen < 0 || !(s->scale > 0)) {
        return -1;
    }
    scr = &s->h->project->screens[s->screen];
    return hmi_render_hit(scr, (wx - s->ox) / s->scale, (wy - s->oy) / s->scale);
}

static gboolean on_press(GtkWidget *w, GdkEventButton *ev, gpointer p)
{
    struct sv *s = p;
    (void)w;
    if (ev->button == 1 && ev->type == GDK_BUTTON_PRESS) {
        s->pressed = hit(s, ev->x, ev->y);
        gtk_widget_queue_draw(s->area);
    }
    return TRUE;
}

static void act(struct sv *s, int index)
{
    struct hmi *h = s->h;
    const struct vg_screen_object *o = &h->project->screens[s->screen].objects[index];

    switch (o->type) {
    case VG_OBJ_BUTTON:
        if (o->action == VG_ACTION_GOTO && o->target.index >= 0) {
            hmi_show_screen(h, o->target.index);
        } else if (o->action == VG_ACTION_WRITE && o->tag.index >= 0) {
            write_button(s, o);
        }
        break;
    case VG_OBJ_SETPOINT:
        if (o->tag.index >= 0) {
            setpoint_dialog(s, o);
        }
        break;
    case VG_OBJ_ALARM_LIST:
        hmi_show_view(h, "alarms");
        break;
    case VG_OBJ_TREND: {
        const char *names[8];
        size_t n = 0;
        for (size_t i = 0; i < o->n_tags && n < 8; i++) {
            names[n++] = o->tags[i].name;
        }
        hmi_show_trend(h, names, n, o->span_s);
        break;
    }
    default:
        break;
    }
}

static gboolean on_release(GtkWidget *w, GdkEventButton *ev, gpointer p)
{
    struct sv *s = p;
    int was = s->pressed;

    (void)w;
    if (ev->button != 1) {
        return TRUE;
    }
    s->pressed = -1;
    gtk_widget_queue_draw(s->area);
    if (was >= 0 && hit(s, ev->x, ev->y) == was) {
        act(s, was);
    }
    return TRUE;
}

static void on_destroy(GtkWidget *w, gpointer p)
{
    struct sv *s = p;
    (void)w;
    s->destroyed = true;
    sv_unref(s);
}

GtkWidget *hmi_screen_view_new(struct hmi *h)
{
    struct sv *s = g_new0(struct sv, 1);

    s->h = h;
    s->screen = -1;
    s->pressed = -1;
    s->refs = 1;
    s->area = gtk_drawing_area_new();
    gtk_widget_add_events(s->area, GDK_BUTTON_PRESS_MASK | GDK_BUTTON_RELEASE_MASK);
    g_object_set_data(G_OBJECT(s->area), "hmi-sv", s);
    g_signal_connect(s->area, "draw", G_CALLBACK(on_draw), s);
    g_signal_connect(s->area, "button-press-event", G_CALLBACK(on_press), s);
    g_signal_connect(s->area, "button-release-event", G_CALLBACK(on_release), s);
    g_signal_connect(s->area, "destroy", G_CALLBACK(on_destroy), s);
    return s->area;
}

void hmi_screen_view_set_screen(GtkWidget *view, int screen)
{
    struct sv *s = sv_of(view);
    const struct vg_screen *scr;

    if (s == NULL) {
        return;
    }
    trends_free(s);
    s->gen++;
    s->screen = screen;
    s->pressed = -1;
    if (s->h->project != NULL && screen >= 0) {
        scr = &s->h->project->screens[screen];
        for (size_t i = 0; i < scr->n_objects; i++) {
            if (scr->objects[i].type == VG_OBJ_TREND) {
                struct trend_cache *c = realloc(s->trends, (s->n_trends + 1) * sizeof *c);
                if (c == NULL) {
                    break;
                }
                s->trends = c;
                memset(&c[s->n_trends], 0, sizeof *c);
                c[s->n_trends++].object = i;
            }
        }
    }
    gtk_widget_queue_draw(view);
}

void hmi_screen_view_redraw(GtkWidget *view)
{
    gtk_widget_queue_draw(view);
}

void hmi_screen_view_geometry(GtkWidget *view, double *ox, double *oy, double *scale)
{
    struct sv *s = sv_of(view);
    *ox = s != NULL ? s->ox : 0;
    *oy = s != NULL ? s->oy : 0;
    *scale = s != NULL ? s->scale : 1;
}
