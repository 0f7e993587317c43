/* vigil-hmi: the state of one operator station, shared by its views
 * (client/hmi/station.c owns it; screen_view.c, alarm_view.c,
 * trend_view.c and report_view.c read it and act through it).
 *
 * Everything here lives on the GTK main thread. The network threads
 * (net.h) never touch it: they hand events over, and station.c applies them
 * and tells the views (hmi_*_changed below).
 *
 * UI strings go through gettext (_() / N_()), text domain "vigil-hmi";
 * project texts through hmi_text() in the station's runtime language. */
#ifndef VG_HMI_H
#define VG_HMI_H

#include <stdbool.h>
#include <stdint.h>

#include <gtk/gtk.h>
#include <gdk/gdkx.h>
#include <jansson.h>
#include <libintl.h>

#include "net.h"
#include "render.h"

#define _(s) gettext(s)
#define N_(s) (s)

struct hmi_views;

struct hmi {
    GtkWidget *window;
    struct hmi_net *net;
    char *station_name; /* --station */
    char *user;         /* who acts (until login exists: --user or $USER) */
    char *lang_override;/* --language, else the profile's */
    GtkWidget *content; /* below header and banner */

    /* The active project, NULL until the first one arrived. */
    struct vg_project *project;
    void *project_owner;
    long long project_version;
    const struct vg_station *station; /* this station's profile, or NULL */
    int lang;                         /* index into project->languages */

    /* Live values, project->n_tags of them, by tag index. */
    struct hmi_value *values;
    /* Current alarms (every one not normal or suppressed), unordered: the
     * newest entry the cluster pushed (MESSAGES.md, "Alarms") and, at the
     * same index, its row for render.h, whose strings point into the
     * entry. */
    json_t **alarm_entries;
    struct hmi_alarm_row *alarm_rows;
    size_t n_alarms, cap_alarms;
    bool image_open;       /* an alarm image is arriving in frames */

    bool connected;        /* the live connection holds its subscriptions */
    char *node_address;    /* where it is connected, or NULL */

    struct hmi_views *views;
};

/* The text T in the station's language, else the first language that has
 * it, else "". */
const char *hmi_text(const struct hmi *h, const struct vg_text *t);

/* The message of alarm entry ENTRY in the station's language (else "en",
 * else any). Borrowed from ENTRY. */
const char *hmi_alarm_message(const struct hmi *h, json_t *entry);

/* Fill D for drawing with the station's current values, alarms, language and
 * connection state; NOW_MS from the wall clock. Trend callback unset. */
void hmi_render_data_fill(const struct hmi *h, struct hmi_render_data *d);

/* Send the operator action REQ (stolen) to the cluster with "user" and
 * "station" added; DONE runs on the main thread (see net.h). Queries go
 * through hmi_net_request / hmi_net_job as they are: the node refuses
 * members a request does not know, and for "audit" "user" is a filter. */
void hmi_request(struct hmi *h, json_t *req, hmi_done_fn done, void *ud);

/* Show MESSAGE to the operator in a modal error dialog. */
void hmi_error(struct hmi *h, const char *title, const char *message);

/* Wall clock in ms since 1970. */
int64_t hmi_now_ms(void);

/* Format MS (wall clock) as local "YYYY-MM-DD HH:MM:SS". */
void hmi_time_text(int64_t ms, char *out, size_t size);

/* Record what the operator just did or saw under KEY (e.g. "dialog",
 * "last_write") for the station's state file (--state-file), which tests
 * and support read. FMT NULL removes KEY. */
void hmi_note(struct hmi *h, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Note that dialog DIALOG (WHAT: "setpoint", "confirm", "shelve", …) is
 * open, with its X window id as "dialog_xid" so that a test can type into
 * it; WHAT NULL: it closed. */
void hmi_dialog_note(struct hmi *h, const char *what, GtkWidget *dialog);

/* The operator's words for alarm status names ("unack_active", …) and
 * journal causes ("raised", …), translated; unknown names come back as
 * they are (alarm_view.c). */
const char *hmi_alarm_status_text(const char *status);
const char *hmi_alarm_cause_text(const char *cause);

/* Show screen SCREEN (index into project->screens) in the screen view. */
void hmi_show_screen(struct hmi *h, int screen);

/* Bring view NAME ("screen", "alarms", "trends", "reports", "status") to
 * the front. */
void hmi_show_view(struct hmi *h, const char *name);

/* Open the trend view on TAGS (at most 8) over the last SPAN_S seconds. */
void hmi_show_trend(struct hmi *h, const char *const *tags, size_t n,
                    unsigned span_s);

/* ---- views: each is a widget the station puts in its stack ----------- */

/* Screen view: the project screen, scaled to fit; buttons, setpoint entries
 * (limits checked, confirmation, refusal shown), alarm lists and trends. */
GtkWidget *hmi_screen_view_new(struct hmi *h);
void hmi_screen_view_set_screen(GtkWidget *view, int screen);
void hmi_screen_view_redraw(GtkWidget *view);
/* Where screen coordinate (0,0) lands in the widget, and the scale. */
void hmi_screen_view_geometry(GtkWidget *view, double *ox, double *oy,
                              double *scale);


/* Alarm view: current alarms (coloured by priority and state) with filters
 * by section, priority and state; acknowledge one, the selected or all in a
 * section; shelve with reason and duration; unshelve; the journal. */
GtkWidget *hmi_alarm_view_new(struct hmi *h);
void hmi_alarm_view_alarms_changed(GtkWidget *view);
void hmi_alarm_view_project_changed(GtkWidget *view);

/* Trend view: any archived tags over a chosen range, zoom and pan, drawn
 * from aggregated history (history_query with buckets). */
GtkWidget *hmi_trend_view_new(struct hmi *h);
void hmi_trend_view_project_changed(GtkWidget *view);
/* Check exactly TAGS (archived ones, at most 8), show the last SPAN_S
 * seconds (0: one hour) and follow the present; does not bring the view
 * to the front (hmi_show_view does). */
void hmi_trend_view_show_tags(GtkWidget *view, const char *const *tags,
                              size_t n, unsigned span_s);

/* Reports view: run a report of the project, preview it, save as PDF (or
 * CSV). */
GtkWidget *hmi_report_view_new(struct hmi *h);
void hmi_report_view_project_changed(GtkWidget *view);

#endif /* VG_HMI_H */
