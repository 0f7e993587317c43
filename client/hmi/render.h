/* Drawing a project screen with cairo and pango (client/hmi/render.c).
 *
 * No GTK and no network here: the station's screen view, its trend view and
 * the unit tests all draw through these functions into any cairo context
 * (a window, an image surface). Everything is drawn in screen coordinates
 * (the vg_screen's width x height); the caller scales.
 *
 * Conventions an operator (and the tests) can rely on:
 *   - a value whose quality is not good never shows a number: it shows
 *     "COMM" (bad_comm), "BAD" (bad_value, or a good value that is not a
 *     finite number), "…" (pending) or "---" (no value yet), inside a
 *     HMI_COLOR_BAD_QUALITY (magenta) frame; lamps, bars and tanks of such
 *     a tag are drawn hatched in that colour, pipes dashed in it;
 *   - while the connection to the cluster is lost (STALE) every live object
 *     is drawn in grey (HMI_COLOR_STALE text, no process colours, no
 *     magenta either: the quality is as unknown as the value) so that no
 *     one mistakes a frozen picture for a live one;
 *   - alarm rows are tinted by priority (hmi_render_priority_color); an
 *     unacknowledged active alarm blinks (1 Hz, from NOW_MS), unacknowledged
 *     returned-to-normal is drawn in the priority colour on dark ground,
 *     acknowledged active in the priority colour steadily. A list shows
 *     unacknowledged alarms first, then by priority, then newest first;
 *     rows whose status is "normal" (shelved, out of service) are not
 *     listed (ISA-18.2 suppression); what does not fit ends in "N more".
 *
 * Ownership: every function borrows its arguments for the duration of the
 * call and keeps nothing. */
#ifndef VG_HMI_RENDER_H
#define VG_HMI_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cairo.h>

#include "../../config/project.h"

#define HMI_COLOR_BAD_QUALITY 0xff00ffu
#define HMI_COLOR_STALE 0x808080u

enum hmi_quality {
    HMI_Q_NONE,      /* nothing received yet */
    HMI_Q_GOOD,
    HMI_Q_BAD_VALUE, /* the PLC sent something that is not a number */
    HMI_Q_BAD_COMM,  /* PLC unreachable */
    HMI_Q_PENDING,   /* polling started, not read yet */
};

/* The live value of one tag, as the station last received it. */
struct hmi_value {
    enum hmi_quality quality;
    double value; /* engineering units; meaningful only when GOOD */
    int64_t t_ms; /* leader's clock when read; 0 when unknown */
};

/* One current alarm as alarm_list objects show it (see MESSAGES.md
 * "Alarms"). Strings borrowed. */
struct hmi_alarm_row {
    const char *alarm;
    const char *message;  /* in the station's language, else the first */
    const char *section;  /* NULL for system alarms */
    int priority;         /* 1 critical .. 4 low */
    const char *status;   /* "unack_active", "ack_active", "unack_rtn", "normal" */
    bool active, shelved, out_of_service;
    int64_t changed_ms;
};

/* Aggregated history of one tag (history_query with "buckets"): N buckets
 * starting at T_MS[i]; MIN/MAX/AVG are NaN for buckets without good
 * samples. */
struct hmi_trend_series {
    const char *label;    /* usually the tag name */
    const char *unit;     /* may be NULL */
    uint32_t color;       /* 0xRRGGBB */
    size_t n;
    const int64_t *t_ms;
    const double *min, *max, *avg;
};

struct hmi_trend_data {
    const struct hmi_trend_series *series;
    size_t n_series;
    int64_t from_ms, to_ms;  /* the time axis */
    const char *message;     /* drawn in the middle when not NULL, e.g. "loading…" */
};

/* Everything one drawing needs. */
struct hmi_render_data {
    const struct vg_project *project;
    int lang;                          /* index into project->languages */
    const struct hmi_value *values;    /* project->n_tags entries, by tag index */
    bool stale;                        /* connection lost: draw live parts grey */
    const struct hmi_alarm_row *alarms;/* every current alarm; alarm_list objects filter */
    size_t n_alarms;
    /* Trend objects: the data for object OBJECT of the screen, or NULL (then
     * an empty frame with the time axis of the object's span is drawn). */
    const struct hmi_trend_data *(*trend)(void *ud, size_t object);
    void *ud;
    int64_t now_ms;                    /* wall clock, for blinking and trend axes */
    int pressed;                       /* object index drawn pressed, or -1 */
    int focused;                       /* object index drawn with a focus ring, or -1 */
};

/* Draw screen S (background, then the objects in order). D may be NULL
 * (no project, no values: a picture of the static parts and "---"). */
void hmi_render_screen(cairo_t *cr, const struct vg_screen *s,
                       const struct hmi_render_data *d);

/* The topmost object an operator can act on at (X, Y) in screen
 * coordinates: a button, a setpoint, an alarm_list or a trend whose
 * rectangle [x, x + w) x [y, y + h) holds the point. -1 when none. */
int hmi_render_hit(const struct vg_screen *s, double x, double y);

/* The text a value or setpoint object O shows for tag T with value V:
 * formatted with O's format (or "%.2f"), the unit appended when
 * O->show_unit and the tag has one; the quality words above when V is not
 * good. A bool tag shows 0 or 1. No number is ever shown wrong: a %d
 * format gets the value rounded, or printed whole when beyond int; a text
 * of 24 characters or more (1e300 with "%.2f") switches to "%.6g"; a
 * negative value that rounds to zero shows no sign; a format that breaks
 * the project rules (FORMAT.md) is replaced by "%.2f". O, T and V may be
 * NULL (defaults, no unit, "---"). Always NUL-terminated when SIZE > 0. */
void hmi_render_value_text(const struct vg_screen_object *o,
                           const struct vg_tag *t, const struct hmi_value *v,
                           char *out, size_t size);

/* Whether alarm row A belongs in alarm_list object O of project P:
 * its section is one of O's sections or below one (system alarms always
 * belong), and its priority is within O's max_priority. */
bool hmi_render_alarm_visible(const struct vg_project *p,
                              const struct vg_screen_object *o,
                              const struct hmi_alarm_row *a);

/* Draw a trend chart into the rectangle X, Y, W, H: frame, time axis
 * (labels in local time), a value axis per unit (left; scaled to the data;
 * units beyond the room for axes give their scale in the legend), a
 * min..max band and the average line for each series (NaN buckets leave a
 * gap), and a legend. At most 16 series are drawn; TD NULL draws the
 * frame only. Nothing is drawn outside the rectangle. Shared by trend
 * objects and the station's trend view. */
void hmi_render_trend(cairo_t *cr, double x, double y, double w, double h,
                      const struct hmi_trend_data *td, bool stale);

/* The colour of priority P (1..4; others get grey), 0xRRGGBB. */
uint32_t hmi_render_priority_color(int p);

#endif /* VG_HMI_RENDER_H */
