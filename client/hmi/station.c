/* vigil-hmi: the station window, its model and its profile (hmi.h).
 *
 * The window is built in two steps. At start it shows only the header and a
 * "connecting" page: a station knows nothing but the cluster's addresses
 * and its name. When the first project arrives the station finds its
 * profile in it and builds the rest: language, window properties, toolbars,
 * navigation and blocked keys, views, start screen. A later project version
 * rebuilds the views the same way (the screen shown stays if it still
 * exists).
 *
 * Blocked key combinations are swallowed in a key-press handler connected
 * to the toplevel window, which GTK runs before any widget sees the key, so
 * they really do nothing, whatever has the focus. */
#include "station.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../proto/proto.h"

struct hmi_views {
    GtkWidget *header_plant, *header_station, *header_user, *header_conn,
        *header_clock;
    GtkWidget *banner, *banner_label;
    GtkWidget *placeholder; /* "connecting" until the first project */
    GtkWidget *body;      /* toolbar + stack, rebuilt per project */
    GtkWidget *toolbar, *stack;
    GtkWidget *screen_view, *alarm_view, *trend_view, *report_view,
        *status_label;
    GtkWidget *nav_buttons; /* box of screen buttons */
    int screen;             /* shown screen, -1 none */
    char *screen_name;      /* kept across project versions */

    /* The state file and the figures it reports. */
    char *state_file;
    char *shot_file;
    gulong shot_handler;    /* waiting for a frame to capture, or 0 */
    unsigned shots;
    json_t *notes;
    bool dirty;
    unsigned banner_shown, banner_hidden, blocked, nav_keys, keys;
    int64_t lost_ms;        /* when the live connection was lost, 0 while up */
    int64_t fresh_ms;       /* first value newer than LOST_MS arrived */
    int64_t last_lost_ms;   /* LOST_MS of the latest loss */
    int64_t values_ms;      /* last values event applied */
    int64_t newest_t_ms;    /* newest value time seen */
    unsigned long value_events;
    bool redraw_due;
};

int64_t hmi_now_ms(void)
{
    return (int64_t)vg_now_wall_ms();
}

void hmi_time_text(int64_t ms, char *out, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms <= 0 || localtime_r(&t, &tm) == NULL) {
        snprintf(out, size, "-");
        return;
    }
    strftime(out, size, "%Y-%m-%d %H:%M:%S", &tm);
}

const char *hmi_text(const struct hmi *h, const struct vg_text *t)
{
    if (t == NULL) {
        return "";
    }
    if (h->lang >= 0 && h->lang < VG_PROJECT_MAX_LANGS && t->s[h->lang] != NULL) {
        return t->s[h->lang];
    }
    for (int i = 0; i < VG_PROJECT_MAX_LANGS; i++) {
        if (t->s[i] != NULL) {
            return t->s[i];
        }
    }
    return "";
}

const char *hmi_alarm_message(const struct hmi *h, json_t *entry)
{
    const char *code = h->project != NULL && h->lang >= 0 &&
                               (size_t)h->lang < h->project->n_languages
                           ? h->project->languages[h->lang]
                           : NULL;
    return vg_proto_text_in(json_object_get(entry, "message"), code,
                            vg_proto_get_str(entry, "alarm", ""));
}

void hmi_render_data_fill(const struct hmi *h, struct hmi_render_data *d)
{
    memset(d, 0, sizeof *d);
    d->project = h->project;
    d->lang = h->lang;
    d->values = h->values;
    d->stale = !h->connected;
    d->now_ms = hmi_now_ms();
    d->pressed = -1;
    d->focused = -1;
    d->alarms = h->alarm_rows;
    d->n_alarms = h->n_alarms;
}

void hmi_note(struct hmi *h, const char *key, const char *fmt, ...)
{
    struct hmi_views *v = h->views;
    char buf[1024];
    va_list ap;

    if (v == NULL || v->notes == NULL) {
        return;
    }
    if (fmt == NULL) {
        json_object_del(v->notes, key);
    } else {
        va_start(ap, fmt);
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        json_object_set_new(v->notes, key, json_string(buf));
    }
    v->dirty = true;
}

static void note_xid(struct hmi *h, GtkWidget *dialog)
{
    GdkWindow *gw = gtk_widget_get_window(dialog);
    if (gw != NULL && GDK_IS_X11_WINDOW(gw)) {
        hmi_note(h, "dialog_xid", "%lu", (unsigned long)GDK_WINDOW_XID(gw));
    }
}

static gboolean on_dialog_mapped(GtkWidget *w, GdkEvent *ev, gpointer p)
{
    (void)ev;
    note_xid(p, w);
    return FALSE;
}

/* The X id is noted once the dialog is on screen: input sent to a window
 * that is realized but not yet mapped is lost. */
void hmi_dialog_note(struct hmi *h, const char *what, GtkWidget *dialog)
{
    if (what == NULL || dialog == NULL) {
        hmi_note(h, "dialog", NULL);
        hmi_note(h, "dialog_xid", NULL);
        return;
    }
    hmi_note(h, "dialog", "%s", what);
    if (gtk_widget_get_mapped(dialog)) {
        note_xid(h, dialog);
    } else {
        g_signal_connect(dialog, "map-event", G_CALLBACK(on_dialog_mapped), h);
    }
}

void hmi_error(struct hmi *h, const char *title, const char *message)
{
    GtkWidget *d = gtk_message_dialog_new(GTK_WINDOW(h->window), GTK_DIALOG_MODAL,
                                          GTK_MESSAGE_ERROR, GTK_BUTTONS_CLOSE,
                                          "%s", title);
    gtk_message_dialog_format_secondary_text(GTK_MESSAGE_DIALOG(d), "%s", message);
    hmi_dialog_note(h, "error", d);
    hmi_note(h, "error", "%s: %s", title, message);
    gtk_dialog_run(GTK_DIALOG(d));
    gtk_widget_destroy(d);
    hmi_dialog_note(h, NULL, NULL);
}

/* ---------------------------------------------------------------- requests */

void hmi_request(struct hmi *h, json_t *req, hmi_done_fn done, void *ud)
{
    if (h->user != NULL && json_object_get(req, "user") == NULL) {
        json_object_set_new(req, "user", json_string(h->user));
    }
    if (h->station_name != NULL && json_object_get(req, "station") == NULL) {
        json_object_set_new(req, "station", json_string(h->station_name));
    }
    hmi_net_request(h->net, req, done, ud);
}

/* ------------------------------------------------------------------ model */

static void alarms_clear(struct hmi *h)
{
    for (size_t i = 0; i < h->n_alarms; i++) {
        json_decref(h->alarm_entries[i]);
    }
    h->n_alarms = 0;
}

/* Rebuild the row view of every alarm (strings point into the entries). */
static void alarms_rows(struct hmi *h)
{
    for (size_t i = 0; i < h->n_alarms; i++) {
        json_t *e = h->alarm_entries[i];
        struct hmi_alarm_row *r = &h->alarm_rows[i];
        json_t *sec = json_object_get(e, "section");

        r->alarm = vg_proto_get_str(e, "alarm", "");
        r->message = hmi_alarm_message(h, e);
        r->section = json_is_string(sec) ? json_string_value(sec) : NULL;
        r->priority = (int)vg_proto_get_int(e, "priority", 4);
        r->status = vg_proto_get_str(e, "status", "normal");
        r->active = json_is_true(json_object_get(e, "active"));
        r->shelved = json_is_true(json_object_get(e, "shelved"));
        r->out_of_service = json_is_true(json_object_get(e, "out_of_service"));
        r->changed_ms = vg_proto_get_int(e, "changed_ms", 0);
    }
}

/* The entry stays in the list while the cluster would list it (alarms_list
 * without "all"): not normal, or suppressed. */
static bool alarm_current(json_t *e)
{
    return !json_is_true(json_object_get(e, "removed")) &&
           (strcmp(vg_proto_get_str(e, "status", "normal"), "normal") != 0 ||
            json_is_true(json_object_get(e, "shelved")) ||
            json_is_true(json_object_get(e, "out_of_service")));
}

static void alarm_put(struct hmi *h, json_t *e)
{
    const char *name = vg_proto_get_str(e, "alarm", NULL);
    size_t i;

    if (name == NULL) {
        return;
    }
    for (i = 0; i < h->n_alarms; i++) {
        if (strcmp(vg_proto_get_str(h->alarm_entries[i], "alarm", ""), name) == 0) {
            break;
        }
    }
    if (!alarm_current(e)) {
        if (i < h->n_alarms) {
            json_decref(h->alarm_entries[i]);
            h->alarm_entries[i] = h->alarm_entries[--h->n_alarms];
        }
        return;
    }
    if (i == h->n_alarms) {
        if (h->n_alarms == h->cap_alarms) {
            /* Entries and rows grow together, so each alarm has its row. */
            size_t cap = h->cap_alarms ? h->cap_alarms * 2 : 64;
            json_t **a = realloc(h->alarm_entries, cap * sizeof *a);
            struct hmi_alarm_row *r;
            if (a == NULL) {
                return;
            }
            h->alarm_entries = a;
            if ((r = realloc(h->alarm_rows, cap * sizeof *r)) == NULL) {
                return;
            }
            h->alarm_rows = r;
            h->cap_alarms = cap;
        }
        h->n_alarms++;
    } else {
        json_decref(h->alarm_entries[i]);
    }
    h->alarm_entries[i] = json_incref(e);
}

static enum hmi_quality quality_of(const char *q)
{
    return strcmp(q, "good") == 0       ? HMI_Q_GOOD
           : strcmp(q, "bad_value") == 0 ? HMI_Q_BAD_VALUE
           : strcmp(q, "bad_comm") == 0  ? HMI_Q_BAD_COMM
           : strcmp(q, "pending") == 0   ? HMI_Q_PENDING
                                         : HMI_Q_NONE;
}

static void apply_values(struct hmi *h, json_t *ev, int64_t at_ms)
{
    struct hmi_views *v = h->views;
    json_t *vals = json_object_get(ev, "values"), *e;
    size_t i;

    if (h->project == NULL || h->values == NULL) {
        return;
    }
    json_array_foreach(vals, i, e) {
        int t = vg_project_find_tag(h->project, vg_proto_get_str(e, "tag", ""));
        json_t *val = json_object_get(e, "value");
        struct hmi_value *hv;

        if (t < 0) {
            continue;
        }
        hv = &h->values[t];
        hv->quality = quality_of(vg_proto_get_str(e, "quality", ""));
        if (json_is_true(val)) {
            hv->value = 1;
        } else if (json_is_false(val)) {
            hv->value = 0;
        } else if (json_is_number(val)) {
            hv->value = json_number_value(val);
        } else if (hv->quality == HMI_Q_GOOD) {
            hv->quality = HMI_Q_BAD_VALUE;
        }
        hv->t_ms = vg_proto_get_int(e, "t", 0);
        if (hv->t_ms > v->newest_t_ms) {
            v->newest_t_ms = hv->t_ms;
        }
        /* Fresh: read by a leader after the connection was lost. */
        if (v->last_lost_ms > 0 && v->fresh_ms == 0 && h->connected &&
            hv->quality == HMI_Q_GOOD && hv->t_ms > v->last_lost_ms) {
            v->fresh_ms = at_ms;
        }
    }
    v->values_ms = at_ms;
    v->value_events++;
    v->redraw_due = true;
    v->dirty = true;
}

/* ----------------------------------------------------------------- header */

static void update_header(struct hmi *h)
{
    struct hmi_views *v = h->views;
    char buf[512];

    if (h->connected) {
        snprintf(buf, sizeof buf, _("Connected to %s"),
                 h->node_address ? h->node_address : "?");
        gtk_widget_hide(v->banner);
    } else {
        snprintf(buf, sizeof buf, "%s", _("Not connected"));
        gtk_widget_show(v->banner);
    }
    gtk_label_set_text(GTK_LABEL(v->header_conn), buf);
    gtk_label_set_text(GTK_LABEL(v->banner_label),
                       _("Connection to cluster lost — reconnecting…"));
    if (h->project != NULL) {
        gtk_label_set_text(GTK_LABEL(v->header_plant),
                           hmi_text(h, &h->project->title));
    }
    if (h->station != NULL) {
        snprintf(buf, sizeof buf, "%s: %s", _("Station"), hmi_text(h, &h->station->title));
    } else {
        snprintf(buf, sizeof buf, "%s: %s", _("Station"), h->station_name);
    }
    gtk_label_set_text(GTK_LABEL(v->header_station), buf);
    snprintf(buf, sizeof buf, "%s: %s", _("User"), h->user ? h->user : "-");
    gtk_label_set_text(GTK_LABEL(v->header_user), buf);
    if (v->status_label != NULL) {
        char text[1024];
        snprintf(text, sizeof text,
                 "%s\n%s: %s\n%s: %lld\n%s: %s\n%s: %zu",
                 h->connected ? _("Connected") : _("Not connected"),
                 _("Node"), h->node_address ? h->node_address : "-",
                 _("Project version"), h->project_version, _("Station"),
                 h->station_name, _("Current alarms"), h->n_alarms);
        gtk_label_set_text(GTK_LABEL(v->status_label), text);
    }
}

static gboolean clock_tick(gpointer p)
{
    struct hmi *h = p;
    struct hmi_views *v = h->views;
    char buf[64];

    hmi_time_text(hmi_now_ms(), buf, sizeof buf);
    gtk_label_set_text(GTK_LABEL(v->header_clock), buf);
    return G_SOURCE_CONTINUE;
}

/* ------------------------------------------------------------ state file */

static void window_facts(struct hmi *h, json_t *w)
{
    GdkWindow *gw = gtk_widget_get_window(h->window);
    int width = 0, height = 0;

    gtk_window_get_size(GTK_WINDOW(h->window), &width, &height);
    json_object_set_new(w, "width", json_integer(width));
    json_object_set_new(w, "height", json_integer(height));
    json_object_set_new(w, "decorated",
                        json_boolean(gtk_window_get_decorated(GTK_WINDOW(h->window))));
    json_object_set_new(w, "title",
                        json_string(gtk_window_get_title(GTK_WINDOW(h->window))
                                        ? gtk_window_get_title(GTK_WINDOW(h->window))
                                        : ""));
    if (gw != NULL) {
        GdkWindowState st = gdk_window_get_state(gw);
        json_object_set_new(w, "xid", json_integer((json_int_t)GDK_WINDOW_XID(gw)));
        json_object_set_new(w, "fullscreen",
                            json_boolean((st & GDK_WINDOW_STATE_FULLSCREEN) != 0));
        json_object_set_new(w, "above", json_boolean((st & GDK_WINDOW_STATE_ABOVE) != 0));
    }
    if (h->station != NULL) {
        json_object_set_new(w, "profile_width", json_integer(h->station->width));
        json_object_set_new(w, "profile_height", json_integer(h->station->height));
        json_object_set_new(w, "profile_fullscreen", json_boolean(h->station->fullscreen));
        json_object_set_new(w, "profile_above", json_boolean(h->station->always_on_top));
    }
}

static void screen_facts(struct hmi *h, json_t *st)
{
    struct hmi_views *v = h->views;
    json_t *shown = json_object();
    const struct vg_screen *s;

    if (h->project == NULL || v->screen < 0) {
        json_object_set_new(st, "shown", shown);
        return;
    }
    s = &h->project->screens[v->screen];
    json_object_set_new(st, "screen", json_string(s->name));
    for (size_t i = 0; i < s->n_objects; i++) {
        const struct vg_screen_object *o = &s->objects[i];
        char text[128];
        if ((o->type != VG_OBJ_VALUE && o->type != VG_OBJ_SETPOINT) || o->tag.index < 0) {
            continue;
        }
        hmi_render_value_text(o, &h->project->tags[o->tag.index],
                              &h->values[o->tag.index], text, sizeof text);
        json_object_set_new(shown, o->tag.name, json_string(text));
    }
    json_object_set_new(st, "shown", shown);
    if (v->screen_view != NULL) {
        double ox, oy, scale;
        int wx = 0, wy = 0;
        hmi_screen_view_geometry(v->screen_view, &ox, &oy, &scale);
        gtk_widget_translate_coordinates(v->screen_view, h->window, 0, 0, &wx, &wy);
        json_object_set_new(st, "screen_origin",
                            json_pack("[f,f]", wx + ox, wy + oy));
        json_object_set_new(st, "screen_scale", json_real(scale));
    }
}

struct facts {
    GtkWidget *top;
    json_t *out;
};

static void widget_facts_cb(GtkWidget *w, gpointer p);

/* Where the named widgets ("hmi-…") are in the window, for tests that
 * click them with xdotool: [x, y, width, height]. */
static void widget_facts(GtkWidget *w, GtkWidget *top, json_t *out)
{
    const char *name = gtk_widget_get_name(w);

    if (!gtk_widget_get_mapped(w)) {
        return;
    }
    if (name != NULL && strncmp(name, "hmi-", 4) == 0) {
        GtkAllocation a;
        int x = 0, y = 0;
        gtk_widget_get_allocation(w, &a);
        if (gtk_widget_translate_coordinates(w, top, 0, 0, &x, &y)) {
            json_object_set_new(out, name, json_pack("[i,i,i,i]", x, y, a.width, a.height));
        }
    }
    if (GTK_IS_CONTAINER(w)) {
        /* forall, not get_children: notebook tab labels are internal
         * children. */
        struct facts f = {top, out};
        gtk_container_forall(GTK_CONTAINER(w), widget_facts_cb, &f);
    }
}

static void widget_facts_cb(GtkWidget *w, gpointer p)
{
    struct facts *f = p;
    widget_facts(w, f->top, f->out);
}

static void write_state(struct hmi *h)
{
    struct hmi_views *v = h->views;
    json_t *st = json_object(), *w = json_object(), *al = json_object(), *tb = json_array();
    char tmp[4096];
    const char *page;

    json_object_set_new(st, "pid", json_integer(getpid()));
    json_object_set_new(st, "wall_ms", json_integer(hmi_now_ms()));
    json_object_set_new(st, "station", json_string(h->station_name));
    json_object_set_new(st, "profile_found", json_boolean(h->station != NULL));
    json_object_set_new(st, "connected", json_boolean(h->connected));
    json_object_set_new(st, "node", h->node_address ? json_string(h->node_address)
                                                    : json_null());
    json_object_set_new(st, "banner", json_boolean(gtk_widget_get_visible(v->banner)));
    json_object_set_new(st, "banner_text",
                        json_string(gtk_label_get_text(GTK_LABEL(v->banner_label))));
    json_object_set_new(st, "banner_shown", json_integer(v->banner_shown));
    json_object_set_new(st, "banner_hidden", json_integer(v->banner_hidden));
    json_object_set_new(st, "project_version", json_integer(h->project_version));
    json_object_set_new(st, "language",
                        h->project != NULL && h->lang >= 0
                            ? json_string(h->project->languages[h->lang])
                            : json_null());
    json_object_set_new(st, "ui_language", json_string(_("en")));
    page = v->stack != NULL ? gtk_stack_get_visible_child_name(GTK_STACK(v->stack)) : NULL;
    json_object_set_new(st, "view", page ? json_string(page) : json_null());
    window_facts(h, w);
    json_object_set_new(st, "window", w);
    if (h->station != NULL) {
        static const char *const names[] = {"navigation", "alarms", "trends",
                                            "reports", "status"};
        for (int i = 0; i < 5; i++) {
            if (h->station->toolbars & (1u << i)) {
                json_array_append_new(tb, json_string(names[i]));
            }
        }
    }
    json_object_set_new(st, "toolbars", tb);
    screen_facts(h, st);
    for (size_t i = 0; i < h->n_alarms; i++) {
        json_object_set_new(al, vg_proto_get_str(h->alarm_entries[i], "alarm", "?"),
                            json_string(vg_proto_get_str(h->alarm_entries[i], "status", "")));
    }
    json_object_set_new(st, "alarms", al);
    json_object_set_new(st, "keys", json_integer(v->keys));
    json_object_set_new(st, "blocked_keys", json_integer(v->blocked));
    json_object_set_new(st, "nav_keys", json_integer(v->nav_keys));
    json_object_set_new(st, "value_events", json_integer((json_int_t)v->value_events));
    json_object_set_new(st, "values_ms", json_integer(v->values_ms));
    json_object_set_new(st, "newest_value_t_ms", json_integer(v->newest_t_ms));
    json_object_set_new(st, "lost_ms", json_integer(v->last_lost_ms));
    json_object_set_new(st, "fresh_ms", json_integer(v->fresh_ms));
    json_object_set_new(st, "screenshots", json_integer(v->shots));
    json_object_set_new(st, "notes", json_deep_copy(v->notes));
    {
        json_t *wf = json_object();
        widget_facts(h->window, h->window, wf);
        json_object_set_new(st, "widgets", wf);
    }
    snprintf(tmp, sizeof tmp, "%s.tmp", v->state_file);
    if (json_dump_file(st, tmp, JSON_COMPACT) == 0 && rename(tmp, v->state_file) != 0) {
        fprintf(stderr, "vigil-hmi: cannot write %s: %s\n", v->state_file,
                strerror(errno));
    }
    json_decref(st);
}

/* Redraws are coalesced to this tick too: values arrive in bursts. */
static gboolean tick(gpointer p)
{
    struct hmi *h = p;
    struct hmi_views *v = h->views;
    static unsigned n;

    if (v->redraw_due && v->screen_view != NULL) {
        hmi_screen_view_redraw(v->screen_view);
        v->redraw_due = false;
    }
    /* Unacknowledged alarms blink: redraw twice a second while any. */
    if (++n % 5 == 0 && v->screen_view != NULL && h->n_alarms > 0) {
        hmi_screen_view_redraw(v->screen_view);
    }
    if (v->state_file != NULL && (v->dirty || n % 10 == 0)) {
        write_state(h);
        v->dirty = false;
    }
    return G_SOURCE_CONTINUE;
}

/* Save what the X server shows in the window to the screenshot file. */
static void capture(struct hmi *h)
{
    struct hmi_views *v = h->views;
    GdkWindow *gw = h->window != NULL ? gtk_widget_get_window(h->window) : NULL;
    GdkPixbuf *pb;
    GError *err = NULL;

    if (gw == NULL || v->shot_file == NULL) {
        return;
    }
    pb = gdk_pixbuf_get_from_window(gw, 0, 0, gdk_window_get_width(gw),
                                    gdk_window_get_height(gw));
    if (pb == NULL) {
        hmi_note(h, "screenshot", "failed: nothing to capture");
        return;
    }
    if (!gdk_pixbuf_save(pb, v->shot_file, "png", &err, NULL)) {
        hmi_note(h, "screenshot", "failed: %s", err->message);
        g_error_free(err);
    } else {
        v->shots++;
        hmi_note(h, "screenshot", "%s", v->shot_file);
    }
    g_object_unref(pb);
    v->dirty = true;
}

static void capture_after_paint(GdkFrameClock *fc, gpointer p)
{
    struct hmi *h = p;
    g_signal_handler_disconnect(fc, h->views->shot_handler);
    h->views->shot_handler = 0;
    capture(h);
}

/* A screenshot for tests and support (SIGUSR1, see main.c): the window is
 * redrawn with the newest values first and captured after that frame is
 * painted, so the picture is the model the state file describes. */
void hmi_station_screenshot(struct hmi *h)
{
    GdkFrameClock *fc = h->window != NULL ? gtk_widget_get_frame_clock(h->window) : NULL;

    if (h->views->screen_view != NULL) {
        hmi_screen_view_redraw(h->views->screen_view);
    }
    if (fc == NULL) {
        capture(h);
        return;
    }
    gtk_widget_queue_draw(h->window);
    if (h->views->shot_handler == 0) {
        h->views->shot_handler =
            g_signal_connect(fc, "after-paint", G_CALLBACK(capture_after_paint), h);
    }
}

/* ------------------------------------------------------------------- keys */

static unsigned mods_of(guint state)
{
    unsigned m = 0;
    if (state & GDK_CONTROL_MASK) m |= VG_MOD_CTRL;
    if (state & GDK_SHIFT_MASK) m |= VG_MOD_SHIFT;
    if (state & GDK_MOD1_MASK) m |= VG_MOD_ALT;
    if (state & (GDK_SUPER_MASK | GDK_MOD4_MASK)) m |= VG_MOD_SUPER;
    return m;
}

static bool key_is(const struct vg_key *k, unsigned mods, const char *name)
{
    return k->key != NULL && k->mods == mods && strcmp(k->key, name) == 0;
}

static gboolean on_key(GtkWidget *w, GdkEventKey *ev, gpointer p)
{
    struct hmi *h = p;
    struct hmi_views *v = h->views;
    unsigned mods = mods_of(ev->state);
    const char *name = gdk_keyval_name(gdk_keyval_to_lower(ev->keyval));

    (void)w;
    if (name == NULL) {
        return FALSE;
    }
    v->keys++;
    v->dirty = true;
    if (h->station != NULL) {
        for (size_t i = 0; i < h->station->n_blocked_keys; i++) {
            if (key_is(&h->station->blocked_keys[i], mods, name)) {
                v->blocked++;
                hmi_note(h, "last_blocked_key", "%s", h->station->blocked_keys[i].text);
                return TRUE;
            }
        }
        for (size_t i = 0; i < h->station->n_nav_keys; i++) {
            const struct vg_nav_key *nk = &h->station->nav_keys[i];
            if (key_is(&nk->key, mods, name) && nk->screen.index >= 0) {
                v->nav_keys++;
                hmi_show_screen(h, nk->screen.index);
                return TRUE;
            }
        }
    }
    /* The station's own shortcut: Ctrl+Q closes it (a profile may block it). */
    if (mods == VG_MOD_CTRL && strcmp(name, "q") == 0) {
        gtk_widget_destroy(h->window);
        return TRUE;
    }
    return FALSE;
}

/* Alt+F4 reaches a window as a close request from the window manager, not
 * as a key: honour the profile's block there too. */
static gboolean on_delete(GtkWidget *w, GdkEvent *ev, gpointer p)
{
    struct hmi *h = p;
    (void)w;
    (void)ev;
    if (h->station != NULL) {
        for (size_t i = 0; i < h->station->n_blocked_keys; i++) {
            if (key_is(&h->station->blocked_keys[i], VG_MOD_ALT, "F4")) {
                h->views->blocked++;
                hmi_note(h, "last_blocked_key", "Alt+F4 (close request)");
                return TRUE;
            }
        }
    }
    return FALSE;
}

/* ------------------------------------------------------------ navigation */

void hmi_show_view(struct hmi *h, const char *name)
{
    struct hmi_views *v = h->views;
    if (v->stack != NULL && gtk_stack_get_child_by_name(GTK_STACK(v->stack), name)) {
        gtk_stack_set_visible_child_name(GTK_STACK(v->stack), name);
        v->dirty = true;
    }
}

void hmi_show_trend(struct hmi *h, const char *const *tags, size_t n,
                    unsigned span_s)
{
    struct hmi_views *v = h->views;
    if (v->trend_view != NULL) {
        hmi_trend_view_show_tags(v->trend_view, tags, n, span_s);
        hmi_show_view(h, "trends");
    }
}

static void watch_screen(struct hmi *h)
{
    struct hmi_views *v = h->views;
    const char *name = h->project != NULL && v->screen >= 0
                           ? h->project->screens[v->screen].name
                           : NULL;
    hmi_net_watch(h->net, name, NULL, 0);
}

void hmi_show_screen(struct hmi *h, int screen)
{
    struct hmi_views *v = h->views;

    if (h->project == NULL || screen < 0 || (size_t)screen >= h->project->n_screens) {
        return;
    }
    v->screen = screen;
    g_free(v->screen_name);
    v->screen_name = g_strdup(h->project->screens[screen].name);
    gtk_window_set_title(GTK_WINDOW(h->window),
                         hmi_text(h, &h->project->screens[screen].title));
    if (v->screen_view != NULL) {
        hmi_screen_view_set_screen(v->screen_view, screen);
    }
    watch_screen(h);
    hmi_show_view(h, "screen");
    v->dirty = true;
}

static void on_nav_clicked(GtkButton *b, gpointer p)
{
    struct hmi *h = p;
    hmi_show_screen(h, GPOINTER_TO_INT(g_object_get_data(G_OBJECT(b), "screen")));
}

static void on_view_clicked(GtkButton *b, gpointer p)
{
    hmi_show_view(p, g_object_get_data(G_OBJECT(b), "view"));
}

static GtkWidget *tool_button(struct hmi *h, GtkWidget *box, const char *label,
                              const char *view)
{
    GtkWidget *b = gtk_button_new_with_label(label);
    char name[64];

    snprintf(name, sizeof name, "hmi-tool-%s", view);
    gtk_widget_set_name(b, name);
    g_object_set_data(G_OBJECT(b), "view", (gpointer)view);
    g_signal_connect(b, "clicked", G_CALLBACK(on_view_clicked), h);
    gtk_box_pack_start(GTK_BOX(box), b, FALSE, FALSE, 0);
    gtk_widget_set_can_focus(b, FALSE);
    return b;
}

/* ------------------------------------------------------ language, profile */

/* gettext follows LANGUAGE once the locale is not plain "C"; the glibc
 * message cache must be told that the catalogue choice changed. */
extern int _nl_msg_cat_cntr;

static void set_ui_language(const char *code)
{
    if (code == NULL) {
        return;
    }
    setenv("LANGUAGE", code, 1);
    ++_nl_msg_cat_cntr;
}

static void apply_window(struct hmi *h)
{
    const struct vg_station *st = h->station;
    GtkWindow *w = GTK_WINDOW(h->window);

    if (st == NULL) {
        return;
    }
    gtk_window_set_decorated(w, st->decorated);
    gtk_window_set_keep_above(w, st->always_on_top);
    if (st->width > 0 && st->height > 0) {
        gtk_window_resize(w, st->width, st->height);
    }
    if (st->fullscreen) {
        gtk_window_fullscreen(w);
    } else {
        gtk_window_unfullscreen(w);
    }
}

static void build_body(struct hmi *h)
{
    struct hmi_views *v = h->views;
    const struct vg_station *st = h->station;
    unsigned bars = st != NULL ? st->toolbars
                               : (VG_TOOLBAR_NAVIGATION | VG_TOOLBAR_ALARMS |
                                  VG_TOOLBAR_TRENDS | VG_TOOLBAR_REPORTS |
                                  VG_TOOLBAR_STATUS);
    GtkWidget *box;

    if (v->body != NULL) {
        gtk_widget_destroy(v->body);
    }
    v->body = gtk_box_new(GTK_ORIENTATION_VERTICAL, 0);
    v->toolbar = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 4);
    gtk_widget_set_name(v->toolbar, "toolbar");
    gtk_container_set_border_width(GTK_CONTAINER(v->toolbar), 4);
    v->nav_buttons = NULL;
    if (bars & VG_TOOLBAR_NAVIGATION) {
        v->nav_buttons = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 2);
        for (size_t i = 0; i < h->project->n_screens; i++) {
            GtkWidget *b = gtk_button_new_with_label(hmi_text(h, &h->project->screens[i].title));
            g_object_set_data(G_OBJECT(b), "screen", GINT_TO_POINTER((int)i));
            g_signal_connect(b, "clicked", G_CALLBACK(on_nav_clicked), h);
            gtk_widget_set_can_focus(b, FALSE);
            gtk_box_pack_start(GTK_BOX(v->nav_buttons), b, FALSE, FALSE, 0);
        }
        gtk_box_pack_start(GTK_BOX(v->toolbar), v->nav_buttons, FALSE, FALSE, 0);
    }
    box = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 2);
    gtk_box_pack_end(GTK_BOX(v->toolbar), box, FALSE, FALSE, 0);
    if (bars & VG_TOOLBAR_ALARMS) {
        tool_button(h, box, _("Alarms"), "alarms");
    }
    if (bars & VG_TOOLBAR_TRENDS) {
        tool_button(h, box, _("Trends"), "trends");
    }
    if (bars & VG_TOOLBAR_REPORTS) {
        tool_button(h, box, _("Reports"), "reports");
    }
    if (bars & VG_TOOLBAR_STATUS) {
        tool_button(h, box, _("Status"), "status");
    }
    gtk_box_pack_start(GTK_BOX(v->body), v->toolbar, FALSE, FALSE, 0);

    v->stack = gtk_stack_new();
    v->screen_view = hmi_screen_view_new(h);
    gtk_stack_add_named(GTK_STACK(v->stack), v->screen_view, "screen");
    /* Views without a toolbar button stay reachable from screen objects
     * (an alarm list opens the alarm view, a trend the trend view). */
    v->alarm_view = hmi_alarm_view_new(h);
    gtk_stack_add_named(GTK_STACK(v->stack), v->alarm_view, "alarms");
    v->trend_view = hmi_trend_view_new(h);
    gtk_stack_add_named(GTK_STACK(v->stack), v->trend_view, "trends");
    v->report_view = hmi_report_view_new(h);
    gtk_stack_add_named(GTK_STACK(v->stack), v->report_view, "reports");
    v->status_label = gtk_label_new("");
    gtk_label_set_selectable(GTK_LABEL(v->status_label), TRUE);
    gtk_stack_add_named(GTK_STACK(v->stack), v->status_label, "status");
    gtk_box_pack_start(GTK_BOX(v->body), v->stack, TRUE, TRUE, 0);
    gtk_box_pack_start(GTK_BOX(h->content), v->body, TRUE, TRUE, 0);
    gtk_widget_show_all(v->body);
}

static void take_project(struct hmi *h, const struct hmi_net_event *ev)
{
    struct hmi_views *v = h->views;
    int station, screen = -1;

    if (h->project != NULL) {
        hmi_net_project_free(h->project, h->project_owner);
    }
    alarms_clear(h);
    free(h->values);
    h->project = ev->project;
    h->project_owner = ev->project_owner;
    h->project_version = ev->version;
    h->values = calloc(h->project->n_tags ? h->project->n_tags : 1, sizeof *h->values);
    station = vg_project_find_station(h->project, h->station_name);
    h->station = station >= 0 ? &h->project->stations[station] : NULL;
    h->lang = 0;
    if (h->station != NULL && h->station->language.index >= 0) {
        h->lang = h->station->language.index;
    }
    if (h->lang_override != NULL && vg_project_language(h->project, h->lang_override) >= 0) {
        h->lang = vg_project_language(h->project, h->lang_override);
    }
    set_ui_language(h->project->languages[h->lang]);
    if (h->station == NULL) {
        hmi_note(h, "profile", "the project has no station '%s': default profile",
                 h->station_name);
        fprintf(stderr, "vigil-hmi: the project has no station '%s'; using a default "
                        "profile (first screen, first language)\n", h->station_name);
    } else {
        hmi_note(h, "profile", NULL);
    }
    if (v->placeholder != NULL) {
        gtk_widget_destroy(v->placeholder);
        v->placeholder = NULL;
    }
    build_body(h);
    apply_window(h);
    if (v->screen_name != NULL) {
        screen = vg_project_find_screen(h->project, v->screen_name);
    }
    if (screen < 0 && h->station != NULL) {
        screen = h->station->start_screen.index;
    }
    if (screen < 0 && h->project->n_screens > 0) {
        screen = 0;
    }
    v->screen = -1;
    hmi_show_screen(h, screen);
    update_header(h);
}

/* --------------------------------------------------------- network events */

static void on_net_event(const struct hmi_net_event *ev, void *ud)
{
    struct hmi *h = ud;
    struct hmi_views *v = h->views;

    switch (ev->kind) {
    case HMI_NET_CONNECTING:
        if (h->connected || v->banner_shown == 0) {
            v->banner_shown++;
            v->lost_ms = ev->at_ms;
            v->last_lost_ms = ev->at_ms;
            v->fresh_ms = 0;
        }
        h->connected = false;
        g_free(h->node_address);
        h->node_address = NULL;
        hmi_note(h, "connection", "%s", ev->text);
        update_header(h);
        v->redraw_due = true;
        break;
    case HMI_NET_CONNECTED:
        if (!h->connected) {
            v->banner_hidden++;
        }
        h->connected = true;
        v->lost_ms = 0;
        g_free(h->node_address);
        h->node_address = g_strdup(ev->text);
        hmi_note(h, "connection", "connected to %s", ev->text);
        update_header(h);
        v->redraw_due = true;
        break;
    case HMI_NET_PROJECT:
        take_project(h, ev);
        break;
    case HMI_NET_TAGS:
        apply_values(h, ev->json, ev->at_ms);
        json_decref(ev->json);
        break;
    case HMI_NET_ALARMS: {
        json_t *list = json_object_get(ev->json, "alarms"), *e;
        size_t i;
        if (strcmp(vg_proto_get_str(ev->json, "event", ""), "image") == 0 &&
            !h->image_open) {
            /* The first frame of an image replaces what we had. */
            alarms_clear(h);
        }
        h->image_open = strcmp(vg_proto_get_str(ev->json, "event", ""), "image") == 0 &&
                        !json_is_true(json_object_get(ev->json, "last"));
        json_array_foreach(list, i, e) {
            alarm_put(h, e);
        }
        alarms_rows(h);
        json_decref(ev->json);
        if (v->alarm_view != NULL) {
            hmi_alarm_view_alarms_changed(v->alarm_view);
        }
        v->redraw_due = true;
        v->dirty = true;
        update_header(h);
        break;
    }
    }
    v->dirty = true;
}

/* ------------------------------------------------------------------ build */

static const char css[] =
    "#header { background: #11161b; color: #e0e6ec; padding: 4px 8px; }\n"
    "#header label { color: #e0e6ec; }\n"
    "#plant { font-weight: bold; font-size: 15px; }\n"
    "#banner { background: #b00020; }\n"
    "#banner label { color: #ffffff; font-weight: bold; font-size: 16px; padding: 6px; }\n"
    "#toolbar { background: #232b33; }\n";

struct hmi *hmi_station_new(const struct hmi_station_options *o, char *errmsg)
{
    struct hmi *h = calloc(1, sizeof *h);
    struct hmi_views *v = calloc(1, sizeof *v);
    GtkWidget *vbox, *header;
    GtkCssProvider *prov;

    if (h == NULL || v == NULL) {
        free(h);
        free(v);
        vg_errf(errmsg, "out of memory");
        return NULL;
    }
    h->views = v;
    v->screen = -1;
    v->notes = json_object();
    h->station_name = g_strdup(o->station);
    h->user = g_strdup(o->user);
    h->lang_override = g_strdup(o->language);
    v->state_file = g_strdup(o->state_file);
    v->shot_file = g_strdup(o->screenshot_file);

    prov = gtk_css_provider_new();
    gtk_css_provider_load_from_data(prov, css, -1, NULL);
    gtk_style_context_add_provider_for_screen(gdk_screen_get_default(),
                                              GTK_STYLE_PROVIDER(prov),
                                              GTK_STYLE_PROVIDER_PRIORITY_APPLICATION);
    g_object_unref(prov);

    h->window = gtk_window_new(GTK_WINDOW_TOPLEVEL);
    gtk_window_set_title(GTK_WINDOW(h->window), "Vigil");
    gtk_window_set_default_size(GTK_WINDOW(h->window), 1280, 860);
    g_signal_connect(h->window, "key-press-event", G_CALLBACK(on_key), h);
    g_signal_connect(h->window, "delete-event", G_CALLBACK(on_delete), h);

    vbox = gtk_box_new(GTK_ORIENTATION_VERTICAL, 0);
    gtk_container_add(GTK_CONTAINER(h->window), vbox);
    header = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 16);
    gtk_widget_set_name(header, "header");
    v->header_plant = gtk_label_new("Vigil");
    gtk_widget_set_name(v->header_plant, "plant");
    v->header_station = gtk_label_new("");
    v->header_user = gtk_label_new("");
    v->header_conn = gtk_label_new("");
    v->header_clock = gtk_label_new("");
    gtk_box_pack_start(GTK_BOX(header), v->header_plant, FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(header), v->header_station, FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(header), v->header_user, FALSE, FALSE, 0);
    gtk_box_pack_end(GTK_BOX(header), v->header_clock, FALSE, FALSE, 0);
    gtk_box_pack_end(GTK_BOX(header), v->header_conn, FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(vbox), header, FALSE, FALSE, 0);

    v->banner = gtk_event_box_new();
    gtk_widget_set_name(v->banner, "banner");
    v->banner_label = gtk_label_new("");
    gtk_container_add(GTK_CONTAINER(v->banner), v->banner_label);
    gtk_box_pack_start(GTK_BOX(vbox), v->banner, FALSE, FALSE, 0);

    h->content = gtk_box_new(GTK_ORIENTATION_VERTICAL, 0);
    v->placeholder = gtk_label_new(_("Connecting to the cluster…"));
    gtk_box_pack_start(GTK_BOX(h->content), v->placeholder, TRUE, TRUE, 0);
    gtk_box_pack_start(GTK_BOX(vbox), h->content, TRUE, TRUE, 0);

    gtk_widget_show_all(h->window);
    update_header(h);
    clock_tick(h);
    g_timeout_add(1000, clock_tick, h);
    g_timeout_add(100, tick, h);

    h->net = hmi_net_start(o->cluster, on_net_event, h, errmsg);
    if (h->net == NULL) {
        gtk_widget_destroy(h->window);
        hmi_station_free(h);
        return NULL;
    }
    return h;
}

void hmi_station_free(struct hmi *h)
{
    if (h == NULL) {
        return;
    }
    hmi_net_stop(h->net);
    h->net = NULL;
    alarms_clear(h);
    free(h->alarm_entries);
    free(h->alarm_rows);
    free(h->values);
    if (h->project != NULL) {
        hmi_net_project_free(h->project, h->project_owner);
    }
    if (h->views != NULL) {
        json_decref(h->views->notes);
        g_free(h->views->state_file);
        g_free(h->views->shot_file);
        g_free(h->views->screen_name);
        free(h->views);
    }
    g_free(h->station_name);
    g_free(h->user);
    g_free(h->lang_override);
    g_free(h->node_address);
    free(h);
}
