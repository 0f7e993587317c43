/* Drawing a project screen with cairo and pango (see render.h).
 *
 * The look follows the high-performance HMI idea (ISA-101): the picture is
 * grey and calm, process values are light text in dark sunken fields, and
 * colour is kept for what it means: the engineer's state colours (lamps,
 * pipes, fills), alarm priorities, and magenta for "this value cannot be
 * trusted". Losing the cluster (STALE) takes every colour off the live
 * objects, bad quality included: the station no longer knows the quality
 * either, and a grey picture is the one thing nobody mistakes for a live one.
 *
 * Every function is total: objects come from a project that was validated,
 * but values, alarm rows and trend series come from the network and may be
 * anything (NaN, 1e300, NULL strings, unresolved references), and none of
 * that may crash the operator station or make it show a wrong number. Where
 * a value cannot be shown honestly the field says so ("BAD", "###").
 *
 * All text goes through one PangoLayout per drawing (font "DejaVu Sans",
 * sizes in pixels), so that the screen view, the trend view and the tests
 * measure text the same way. */
#include <libintl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pango/pangocairo.h>

#include "render.h"

/* Static parts: greys with a little blue, darker than the project's usual
 * panels (#232b33) for fields a value is read from, lighter for what an
 * operator may change. */
#define C_FIELD 0x101418u
#define C_FIELD_SHADOW 0x06080au
#define C_FIELD_LIGHT 0x3b4754u
#define C_SETPOINT 0x2b3641u
#define C_SETPOINT_EDGE 0x71879bu
#define C_TEXT 0xe6ebefu
#define C_TEXT_DIM 0x9fb3c8u
#define C_TEXT_DARK 0x101418u
#define C_FRAME 0x56626eu
#define C_GRID 0x27313bu
#define C_BUTTON 0x3a4551u
#define C_BUTTON_PRESSED 0x2a323bu
#define C_BUTTON_HI 0x55616eu
#define C_BUTTON_LO 0x1c2228u
#define C_FOCUS 0x7fb2e5u
#define C_HEADER 0x2a323au
#define C_BAR_FILL 0x9aa5b1u  /* a bar without 'fill': grey, not a state */
#define C_TANK_FILL 0x5a7898u
#define C_TANK_WALL 0x9aa5b1u
#define C_PIPE 0x7a8793u
#define C_RECT_EDGE 0x3b4754u
#define C_STALE_DARK 0x3c3c3cu /* a stale lamp that was off */

#define FONT_FAMILY "DejaVu Sans"

/* The alarm table's own words come from the station's message catalogue
 * (named explicitly: this library does not rely on the default domain).
 * The quality words ("COMM", "BAD", ...) stay as they are everywhere. */
#define TEXT_DOMAIN "vigil-hmi"

/* Alarm lists: one line of 12 px text per 20 px row. */
#define ALARM_ROW_H 20.0
#define ALARM_FONT 12.0

/* Trend charts. */
#define TREND_FONT 11.0
#define TREND_AXIS_W 52.0
#define TREND_MAX_SERIES 16 /* more are not drawn (a trend object has <= 8) */

/* Longest formatted number shown as it is; beyond that a value switches
 * to %g, since no field is wide enough and a cut number would lie. */
#define VALUE_MAX_CHARS 24

/* ---------------------------------------------------------------- colour */

static double chan(uint32_t c, int shift)
{
    return (double)((c >> shift) & 0xffu) / 255.0;
}

static void ink(cairo_t *cr, uint32_t c)
{
    cairo_set_source_rgb(cr, chan(c, 16), chan(c, 8), chan(c, 0));
}

static void ink_alpha(cairo_t *cr, uint32_t c, double a)
{
    cairo_set_source_rgba(cr, chan(c, 16), chan(c, 8), chan(c, 0), a);
}

/* A + (B - A) * T per channel, T in 0..1. */
static uint32_t mix(uint32_t a, uint32_t b, double t)
{
    uint32_t out = 0;
    for (int shift = 0; shift <= 16; shift += 8) {
        double ca = (a >> shift) & 0xffu, cb = (b >> shift) & 0xffu;
        out |= (uint32_t)lround(ca + (cb - ca) * t) << shift;
    }
    return out;
}

/* ------------------------------------------------------------------ text */

struct canvas {
    cairo_t *cr;
    PangoLayout *lay;
    PangoFontDescription *font;
};

static bool canvas_open(struct canvas *cv, cairo_t *cr)
{
    cv->cr = cr;
    cv->lay = pango_cairo_create_layout(cr);
    cv->font = pango_font_description_from_string(FONT_FAMILY);
    if (cv->lay == NULL || cv->font == NULL) {
        if (cv->lay != NULL)
            g_object_unref(cv->lay);
        if (cv->font != NULL)
            pango_font_description_free(cv->font);
        return false;
    }
    return true;
}

static void canvas_close(struct canvas *cv)
{
    g_object_unref(cv->lay);
    pango_font_description_free(cv->font);
}

enum { T_BOLD = 1, T_MULTILINE = 2 };

/* Lay S out at PX pixels; when MAX_W > 0 a longer line ends in "…".
 * Invalid UTF-8 (a unit from a hand-edited CSV, say) is repaired here
 * rather than handed to pango, which would complain on stderr. */
static void text_set(struct canvas *cv, const char *s, double px, int flags,
                     double max_w)
{
    if (s == NULL)
        s = "";
    if (!(px >= 1))
        px = 14;
    if (px > 400)
        px = 400;
    pango_font_description_set_absolute_size(cv->font, px * PANGO_SCALE);
    pango_font_description_set_weight(cv->font, (flags & T_BOLD)
                                      ? PANGO_WEIGHT_BOLD
                                      : PANGO_WEIGHT_NORMAL);
    pango_layout_set_font_description(cv->lay, cv->font);
    pango_layout_set_single_paragraph_mode(cv->lay, !(flags & T_MULTILINE));
    if (max_w > 0 && max_w < 100000) {
        pango_layout_set_width(cv->lay, (int)(max_w * PANGO_SCALE));
        pango_layout_set_ellipsize(cv->lay, PANGO_ELLIPSIZE_END);
    } else {
        pango_layout_set_width(cv->lay, -1);
        pango_layout_set_ellipsize(cv->lay, PANGO_ELLIPSIZE_NONE);
    }
    if (g_utf8_validate(s, -1, NULL)) {
        pango_layout_set_text(cv->lay, s, -1);
    } else {
        char *fixed = g_utf8_make_valid(s, -1);
        pango_layout_set_text(cv->lay, fixed, -1);
        g_free(fixed);
    }
}

static void text_size(struct canvas *cv, double *w, double *h)
{
    int iw = 0, ih = 0;
    pango_layout_get_pixel_size(cv->lay, &iw, &ih);
    *w = iw;
    *h = ih;
}

/* Draw the laid-out text with its top-left corner at X, Y. */
static void text_put(struct canvas *cv, double x, double y, uint32_t col)
{
    ink(cv->cr, col);
    cairo_move_to(cv->cr, x, y);
    pango_cairo_update_layout(cv->cr, cv->lay);
    pango_cairo_show_layout(cv->cr, cv->lay);
    cairo_new_path(cv->cr);
}

enum align { AL_LEFT, AL_CENTER, AL_RIGHT };

/* One line of S inside the box X, Y, W, H (vertically centred, PAD pixels
 * from the sides), cut with "…" when too long. */
static void text_cell(struct canvas *cv, const char *s, double x, double y,
                      double w, double h, double px, int flags, uint32_t col,
                      enum align al, double pad)
{
    double tw, th, avail = w - 2 * pad;
    if (avail < 1)
        return;
    text_set(cv, s, px, flags, avail);
    text_size(cv, &tw, &th);
    double tx = al == AL_LEFT ? x + pad
              : al == AL_RIGHT ? x + w - pad - tw
              : x + (w - tw) / 2;
    text_put(cv, tx, y + (h - th) / 2, col);
}

/* -------------------------------------------------------- project lookups */

/* The drawing of one screen. */
struct draw {
    struct canvas cv;
    const struct hmi_render_data *d;
    const struct vg_project *p; /* may be NULL: then no tag resolves */
};

/* T in language LANG, else in the first language that has it. */
static const char *text_in(const struct vg_text *t, int lang)
{
    if (lang >= 0 && lang < VG_PROJECT_MAX_LANGS && t->s[lang] != NULL)
        return t->s[lang];
    for (int i = 0; i < VG_PROJECT_MAX_LANGS; i++)
        if (t->s[i] != NULL)
            return t->s[i];
    return "";
}

static const struct vg_tag *tag_of(const struct draw *dr,
                                   const struct vg_ref *r)
{
    if (dr->p == NULL || r->index < 0 || (size_t)r->index >= dr->p->n_tags)
        return NULL;
    return &dr->p->tags[r->index];
}

/* The value of the tag R refers to; an unresolved tag has none. */
static const struct hmi_value *value_of(const struct draw *dr,
                                        const struct vg_ref *r)
{
    static const struct hmi_value none = {HMI_Q_NONE, 0, 0};
    if (dr->d->values == NULL || tag_of(dr, r) == NULL)
        return &none;
    return &dr->d->values[r->index];
}

static bool value_good(const struct hmi_value *v)
{
    return v != NULL && v->quality == HMI_Q_GOOD && isfinite(v->value);
}

/* How a live object looks: in its colours, marked bad, or all grey. */
enum look { LOOK_LIVE, LOOK_BAD, LOOK_STALE };

static enum look look_of(const struct draw *dr, const struct hmi_value *v)
{
    if (dr->d->stale)
        return LOOK_STALE;
    return value_good(v) ? LOOK_LIVE : LOOK_BAD;
}

/* The scale of a bar or tank: its own, else the tag's range. */
static void scale_of(const struct vg_screen_object *o, const struct vg_tag *t,
                     double *lo, double *hi)
{
    *lo = 0;
    *hi = 100;
    if (o->has_range) {
        *lo = o->min;
        *hi = o->max;
    } else if (t != NULL) {
        vg_tag_range(t, lo, hi);
    }
}

/* Where V lies between LO and HI, 0..1 (0 for anything meaningless). A
 * reversed range (eng_max < eng_min) works too. */
static double fraction(double v, double lo, double hi)
{
    double f = (v - lo) / (hi - lo);
    if (!isfinite(f) || f < 0)
        return 0;
    return f > 1 ? 1 : f;
}

/* ------------------------------------------------------------ value text */

/* The one conversion in a value format. It is checked again here
 * (vg_value_format_parse, the validator's rule) because the format goes to
 * snprintf: a project that escaped validation must not make it read an
 * argument that is not there. */
struct conv {
    char letter;
    size_t start, end; /* "%...x" is FORMAT[start, end) */
};

static bool find_conversion(const char *f, struct conv *c)
{
    return vg_value_format_parse(f, &c->start, &c->end, &c->letter);
}

/* FORMAT with its conversion replaced by SPEC (a double conversion), so
 * the text around the number survives. */
static int print_respec(const char *f, const struct conv *c, const char *spec,
                        double x, char *out, size_t size)
{
    char f2[80];
    snprintf(f2, sizeof f2, "%.*s%s%s", (int)c->start, f, spec, f + c->end);
    return snprintf(out, size, f2, x);
}

static int print_number(const char *f, const struct conv *c, double x,
                        char *out, size_t size)
{
    if (c->letter != 'd')
        return snprintf(out, size, f, x);
    /* %d takes an int; a value beyond int (a uint32 counter, say) is
     * printed whole rather than clamped to a wrong number. */
    if (x > (double)INT_MIN - 0.5 && x < (double)INT_MAX + 0.5)
        return snprintf(out, size, f, (int)lround(x));
    return print_respec(f, c, "%.0f", x, out, size);
}

static void format_number(const char *f, double x, char *out, size_t size)
{
    struct conv c;
    if (f == NULL || !find_conversion(f, &c)) {
        f = "%.2f";
        find_conversion(f, &c);
    }
    int n = print_number(f, &c, x, out, size);
    if (n < 0 || n >= VALUE_MAX_CHARS || (size_t)n >= size) {
        print_respec(f, &c, "%.6g", x, out, size);
        return;
    }
    /* -0.02 with "%.1f" would read "-0.0": a sign on a zero makes an
     * operator look twice for nothing. */
    if (x < 0) {
        char pos[64], zero[64];
        print_number(f, &c, -x, pos, sizeof pos);
        print_number(f, &c, 0.0, zero, sizeof zero);
        if (strcmp(pos, zero) == 0)
            snprintf(out, size, "%s", zero);
    }
}

/* The word shown instead of a number, or NULL when V is a good number. */
static const char *quality_word(const struct hmi_value *v)
{
    if (v == NULL)
        return "---";
    switch (v->quality) {
    case HMI_Q_NONE: return "---";
    case HMI_Q_PENDING: return "\xe2\x80\xa6"; /* "…" */
    case HMI_Q_BAD_COMM: return "COMM";
    case HMI_Q_GOOD: return isfinite(v->value) ? NULL : "BAD";
    case HMI_Q_BAD_VALUE:
    default: return "BAD";
    }
}

void hmi_render_value_text(const struct vg_screen_object *o,
                           const struct vg_tag *t, const struct hmi_value *v,
                           char *out, size_t size)
{
    if (out == NULL || size == 0)
        return;
    const char *word = quality_word(v);
    if (word != NULL) {
        snprintf(out, size, "%s", word);
        return;
    }
    char num[64];
    if (t != NULL && t->type == VG_DT_BOOL)
        snprintf(num, sizeof num, "%d", v->value != 0);
    else
        format_number(o != NULL ? o->format : NULL, v->value, num, sizeof num);
    bool show_unit = o == NULL || o->show_unit;
    if (show_unit && t != NULL && t->unit != NULL && t->unit[0] != '\0')
        snprintf(out, size, "%s %s", num, t->unit);
    else
        snprintf(out, size, "%s", num);
}

/* ---------------------------------------------------------------- shapes */

static void rounded_rect(cairo_t *cr, double x, double y, double w, double h,
                         double r)
{
    if (r > w / 2)
        r = w / 2;
    if (r > h / 2)
        r = h / 2;
    if (r < 0.5) {
        cairo_rectangle(cr, x, y, w, h);
        return;
    }
    cairo_new_sub_path(cr);
    cairo_arc(cr, x + w - r, y + r, r, -M_PI / 2, 0);
    cairo_arc(cr, x + w - r, y + h - r, r, 0, M_PI / 2);
    cairo_arc(cr, x + r, y + h - r, r, M_PI / 2, M_PI);
    cairo_arc(cr, x + r, y + r, r, M_PI, 3 * M_PI / 2);
    cairo_close_path(cr);
}

static void ellipse(cairo_t *cr, double x, double y, double w, double h)
{
    /* A zero scale would put CR in an error state for good. */
    if (!(w > 0 && h > 0))
        return;
    cairo_save(cr);
    cairo_translate(cr, x + w / 2, y + h / 2);
    cairo_scale(cr, w / 2, h / 2);
    cairo_new_sub_path(cr);
    cairo_arc(cr, 0, 0, 1, 0, 2 * M_PI);
    cairo_restore(cr);
}

/* Diagonal stripes in COL inside the current path (which is consumed), over
 * the box X, Y, W, H around it: the "do not trust this" pattern. */
static void hatch(cairo_t *cr, double x, double y, double w, double h,
                  uint32_t col)
{
    cairo_save(cr);
    cairo_clip(cr);
    ink(cr, col);
    cairo_set_line_width(cr, 1.5);
    for (double k = -h; k < w; k += 6) {
        cairo_move_to(cr, x + k, y + h);
        cairo_line_to(cr, x + k + h, y);
    }
    cairo_stroke(cr);
    cairo_restore(cr);
}

/* A one-pixel frame exactly on the pixels along the inside of the box. */
static void frame(cairo_t *cr, double x, double y, double w, double h,
                  uint32_t col)
{
    ink(cr, col);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, x + 0.5, y + 0.5, w - 1, h - 1);
    cairo_stroke(cr);
}

/* Two lines at the inside of a box: COL_TL along the top and left edges,
 * COL_BR along the bottom and right (sunk or raised). */
static void bevel(cairo_t *cr, double x, double y, double w, double h,
                  uint32_t col_tl, uint32_t col_br)
{
    cairo_set_line_width(cr, 1);
    ink(cr, col_tl);
    cairo_move_to(cr, x + 0.5, y + h - 0.5);
    cairo_line_to(cr, x + 0.5, y + 0.5);
    cairo_line_to(cr, x + w - 0.5, y + 0.5);
    cairo_stroke(cr);
    ink(cr, col_br);
    cairo_move_to(cr, x + w - 0.5, y + 1);
    cairo_line_to(cr, x + w - 0.5, y + h - 0.5);
    cairo_line_to(cr, x + 1, y + h - 0.5);
    cairo_stroke(cr);
}

static void focus_ring(cairo_t *cr, const struct vg_screen_object *o)
{
    ink(cr, C_FOCUS);
    cairo_set_line_width(cr, 2);
    rounded_rect(cr, o->x - 3, o->y - 3, o->w + 6, o->h + 6, 4);
    cairo_stroke(cr);
}

/* Width of a stroke line on whole pixels: odd widths need a half-pixel
 * shift to cover whole pixels instead of blurring two. */
static double crisp(double width)
{
    double r = round(width);
    return fabs(width - r) < 0.01 && fmod(r, 2) == 1 ? 0.5 : 0;
}

static void polyline_path(cairo_t *cr, const struct vg_screen_object *o,
                          double shift)
{
    for (size_t i = 0; i < o->n_points; i++) {
        double px = o->points[i].x + shift, py = o->points[i].y + shift;
        if (i == 0)
            cairo_move_to(cr, px, py);
        else
            cairo_line_to(cr, px, py);
    }
}

static double line_width_of(const struct vg_screen_object *o, double dflt)
{
    double w = o->line_width;
    if (!(w > 0))
        return dflt;
    return w > 50 ? 50 : w;
}

/* --------------------------------------------------------------- objects */

static void draw_text(struct draw *dr, const struct vg_screen_object *o)
{
    text_set(&dr->cv, text_in(&o->text, dr->d->lang), o->font_size,
             T_MULTILINE, 0);
    text_put(&dr->cv, o->x, o->y, o->color);
}

/* The number of a value or setpoint, right-aligned in the box X, Y, W, H.
 * A text too wide for the field is drawn smaller, down to half size; if
 * even that does not fit, "###" says so (a number cut at the left would
 * show a wrong value). */
static void field_text(struct draw *dr, const char *s, double px, double x,
                       double y, double w, double h, uint32_t col)
{
    struct canvas *cv = &dr->cv;
    double tw, th;
    if (!(px >= 1))
        px = 14;
    if (px > h * 0.85)
        px = h * 0.85 > 4 ? h * 0.85 : 4;
    text_set(cv, s, px, 0, 0);
    text_size(cv, &tw, &th);
    if (tw > w && tw > 0) {
        double smaller = px * w / tw;
        if (smaller >= px / 2) {
            text_set(cv, s, smaller, 0, 0);
        } else {
            text_set(cv, "###", px, 0, 0);
        }
        text_size(cv, &tw, &th);
    }
    text_put(cv, x + w - tw, y + (h - th) / 2, col);
}

/* Value and setpoint fields. A value is read only: dark and sunk. A
 * setpoint is the same number on a lighter field with a pencil mark and an
 * underline, so an operator sees at a glance where he can type. */
static void draw_field(struct draw *dr, const struct vg_screen_object *o,
                       bool editable)
{
    cairo_t *cr = dr->cv.cr;
    const struct vg_tag *t = tag_of(dr, &o->tag);
    const struct hmi_value *v = value_of(dr, &o->tag);
    enum look lk = look_of(dr, v);
    double x = o->x, y = o->y, w = o->w, h = o->h;
    char text[96];

    if (editable) {
        ink(cr, C_SETPOINT);
        cairo_rectangle(cr, x, y, w, h);
        cairo_fill(cr);
        frame(cr, x, y, w, h, C_SETPOINT_EDGE);
        ink(cr, C_TEXT_DIM);
        cairo_set_line_width(cr, 1);
        cairo_move_to(cr, x + 3, y + h - 3.5);
        cairo_line_to(cr, x + w - 3, y + h - 3.5);
        cairo_stroke(cr);
        /* The pencil: a short slanted stroke with its tip at the line. */
        if (h >= 14 && w >= 30) {
            cairo_set_line_width(cr, 2);
            cairo_move_to(cr, x + 11, y + h - 13);
            cairo_line_to(cr, x + 6, y + h - 8);
            cairo_stroke(cr);
            cairo_move_to(cr, x + 6, y + h - 8);
            cairo_line_to(cr, x + 5, y + h - 6);
            cairo_line_to(cr, x + 7, y + h - 7);
            cairo_close_path(cr);
            cairo_fill(cr);
        }
    } else {
        ink(cr, C_FIELD);
        cairo_rectangle(cr, x, y, w, h);
        cairo_fill(cr);
        bevel(cr, x, y, w, h, C_FIELD_SHADOW, C_FIELD_LIGHT);
    }

    hmi_render_value_text(o, t, v, text, sizeof text);
    uint32_t col = lk == LOOK_LIVE ? o->color
                 : lk == LOOK_BAD ? HMI_COLOR_BAD_QUALITY : HMI_COLOR_STALE;
    double left = editable && w >= 30 ? 14 : 4;
    field_text(dr, text, o->font_size, x + left, y, w - left - 5, h, col);

    if (lk != LOOK_LIVE && !value_good(v)) {
        /* 2 px inside the field, so neighbours keep their pixels. */
        ink(cr, lk == LOOK_BAD ? HMI_COLOR_BAD_QUALITY : HMI_COLOR_STALE);
        cairo_set_line_width(cr, 2);
        cairo_rectangle(cr, x + 1, y + 1, w - 2, h - 2);
        cairo_stroke(cr);
    }
}

static void draw_bar(struct draw *dr, const struct vg_screen_object *o)
{
    cairo_t *cr = dr->cv.cr;
    const struct vg_tag *t = tag_of(dr, &o->tag);
    const struct hmi_value *v = value_of(dr, &o->tag);
    enum look lk = look_of(dr, v);
    double x = o->x, y = o->y, w = o->w, h = o->h;
    double ix = x + 2, iy = y + 2, iw = w - 4, ih = h - 4;

    ink(cr, C_FIELD);
    cairo_rectangle(cr, x, y, w, h);
    cairo_fill(cr);
    if (iw < 1 || ih < 1) {
        ix = x, iy = y, iw = w, ih = h;
    }
    if (lk == LOOK_BAD) {
        cairo_rectangle(cr, x, y, w, h);
        hatch(cr, x, y, w, h, HMI_COLOR_BAD_QUALITY);
        frame(cr, x, y, w, h, HMI_COLOR_BAD_QUALITY);
        return;
    }
    double lo, hi;
    scale_of(o, t, &lo, &hi);
    double f = fraction(v->value, lo, hi);
    ink(cr, lk == LOOK_STALE ? HMI_COLOR_STALE
            : o->has_fill ? o->fill : C_BAR_FILL);
    if (o->vertical)
        cairo_rectangle(cr, ix, iy + ih * (1 - f), iw, ih * f);
    else
        cairo_rectangle(cr, ix, iy, iw * f, ih);
    cairo_fill(cr);
    frame(cr, x, y, w, h, C_FRAME);
}

static void draw_lamp(struct draw *dr, const struct vg_screen_object *o)
{
    cairo_t *cr = dr->cv.cr;
    const struct hmi_value *v = value_of(dr, &o->tag);
    enum look lk = look_of(dr, v);
    double x = o->x, y = o->y, w = o->w, h = o->h;

    if (lk == LOOK_BAD) {
        ink(cr, C_FIELD);
        ellipse(cr, x, y, w, h);
        cairo_fill(cr);
        ellipse(cr, x, y, w, h);
        hatch(cr, x, y, w, h, HMI_COLOR_BAD_QUALITY);
        ink(cr, HMI_COLOR_BAD_QUALITY);
        cairo_set_line_width(cr, 2);
        ellipse(cr, x + 1, y + 1, w - 2, h - 2);
        cairo_stroke(cr);
        return;
    }
    bool on = v->value != 0;
    uint32_t col = lk == LOOK_STALE ? (on ? HMI_COLOR_STALE : C_STALE_DARK)
                 : on ? o->color : o->off_color;
    ink(cr, col);
    ellipse(cr, x, y, w, h);
    cairo_fill(cr);
    /* A thin darker rim keeps a lamp readable on a panel of its colour. */
    ink(cr, mix(col, 0x000000, 0.45));
    cairo_set_line_width(cr, 1);
    ellipse(cr, x + 0.5, y + 0.5, w - 1, h - 1);
    cairo_stroke(cr);
}

static void draw_button(struct draw *dr, const struct vg_screen_object *o,
                        bool pressed)
{
    cairo_t *cr = dr->cv.cr;
    double x = o->x, y = o->y, w = o->w, h = o->h;
    double shift = pressed ? 1 : 0;

    ink(cr, pressed ? C_BUTTON_PRESSED : C_BUTTON);
    rounded_rect(cr, x, y, w, h, 3);
    cairo_fill(cr);
    if (pressed)
        bevel(cr, x, y, w, h, C_BUTTON_LO, C_BUTTON_HI);
    else
        bevel(cr, x, y, w, h, C_BUTTON_HI, C_BUTTON_LO);
    double px = h * 0.45 < 13 ? h * 0.45 : 13;
    text_cell(&dr->cv, text_in(&o->text, dr->d->lang), x + shift, y + shift,
              w, h, px, 0, C_TEXT, AL_CENTER, 4);
}

/* A line, polyline or the outline of a rect, in its own colour. */
static void draw_lines(struct draw *dr, const struct vg_screen_object *o)
{
    cairo_t *cr = dr->cv.cr;
    if (o->points == NULL || o->n_points < 2)
        return;
    double lw = line_width_of(o, 1);
    cairo_set_line_width(cr, lw);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_MITER);
    ink(cr, o->color);
    polyline_path(cr, o, crisp(lw));
    cairo_stroke(cr);
}

static void draw_rect(struct draw *dr, const struct vg_screen_object *o)
{
    cairo_t *cr = dr->cv.cr;
    if (o->has_fill) {
        ink(cr, o->fill);
        cairo_rectangle(cr, o->x, o->y, o->w, o->h);
        cairo_fill(cr);
    }
    /* A rect with neither fill nor stroke would be invisible: it gets the
     * panel edge colour. */
    if (o->has_stroke || !o->has_fill)
        frame(cr, o->x, o->y, o->w, o->h,
              o->has_stroke ? o->stroke : C_RECT_EDGE);
}

/* Pipes show flow when they have a tag: flowing in their colour with a
 * lighter core, standing darker and greyer, unknown in dashed magenta. */
static void draw_pipe(struct draw *dr, const struct vg_screen_object *o)
{
    cairo_t *cr = dr->cv.cr;
    if (o->points == NULL || o->n_points < 2)
        return;
    double lw = line_width_of(o, 6);
    uint32_t col = o->has_stroke ? o->stroke : C_PIPE;
    cairo_set_line_width(cr, lw);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
    double shift = crisp(lw);
    if (o->tag.index < 0 && o->tag.name == NULL) {
        ink(cr, col);
        polyline_path(cr, o, shift);
        cairo_stroke(cr);
        return;
    }
    const struct hmi_value *v = value_of(dr, &o->tag);
    switch (look_of(dr, v)) {
    case LOOK_STALE:
        ink(cr, HMI_COLOR_STALE);
        polyline_path(cr, o, shift);
        cairo_stroke(cr);
        break;
    case LOOK_BAD: {
        ink(cr, C_STALE_DARK);
        polyline_path(cr, o, shift);
        cairo_stroke(cr);
        ink(cr, HMI_COLOR_BAD_QUALITY);
        double dash[] = {lw * 1.5, lw * 1.5};
        cairo_set_dash(cr, dash, 2, 0);
        cairo_set_line_cap(cr, CAIRO_LINE_CAP_BUTT);
        polyline_path(cr, o, shift);
        cairo_stroke(cr);
        break;
    }
    case LOOK_LIVE: {
        if (v->value == 0) {
            ink(cr, mix(mix(col, 0x808080, 0.5), 0x000000, 0.35));
            polyline_path(cr, o, shift);
            cairo_stroke(cr);
            break;
        }
        ink(cr, col);
        polyline_path(cr, o, shift);
        cairo_stroke(cr);
        double core = lw / 4 < 1 ? 1 : lw / 4;
        cairo_set_line_width(cr, core);
        ink(cr, mix(col, 0xffffff, 0.45));
        polyline_path(cr, o, shift);
        cairo_stroke(cr);
        break;
    }
    }
}

static void draw_tank(struct draw *dr, const struct vg_screen_object *o)
{
    cairo_t *cr = dr->cv.cr;
    const struct vg_tag *t = tag_of(dr, &o->tag);
    const struct hmi_value *v = value_of(dr, &o->tag);
    enum look lk = look_of(dr, v);
    double x = o->x, y = o->y, w = o->w, h = o->h;
    double r = fmin(8, fmin(w, h) / 4);

    ink(cr, C_FIELD);
    rounded_rect(cr, x + 1, y + 1, w - 2, h - 2, r);
    cairo_fill(cr);
    if (lk == LOOK_BAD) {
        rounded_rect(cr, x + 1, y + 1, w - 2, h - 2, r);
        hatch(cr, x, y, w, h, HMI_COLOR_BAD_QUALITY);
    } else {
        double lo, hi;
        scale_of(o, t, &lo, &hi);
        double f = fraction(v->value, lo, hi);
        cairo_save(cr);
        rounded_rect(cr, x + 1, y + 1, w - 2, h - 2, r);
        cairo_clip(cr);
        ink(cr, lk == LOOK_STALE ? HMI_COLOR_STALE
                : o->has_fill ? o->fill : C_TANK_FILL);
        cairo_rectangle(cr, x, y + 1 + (h - 2) * (1 - f), w, (h - 2) * f);
        cairo_fill(cr);
        cairo_restore(cr);
    }
    /* Quarter marks on the right wall, for reading the level at a glance. */
    if (w >= 24 && h >= 40) {
        ink(cr, C_FRAME);
        cairo_set_line_width(cr, 1);
        for (int q = 1; q <= 3; q++) {
            double my = round(y + 1 + (h - 2) * (1 - q / 4.0)) + 0.5;
            cairo_move_to(cr, x + w - 2 - (q == 2 ? 8 : 5), my);
            cairo_line_to(cr, x + w - 2, my);
        }
        cairo_stroke(cr);
    }
    uint32_t wall = lk == LOOK_BAD ? HMI_COLOR_BAD_QUALITY
                  : lk == LOOK_STALE ? HMI_COLOR_STALE
                  : o->has_stroke ? o->stroke : C_TANK_WALL;
    ink(cr, wall);
    cairo_set_line_width(cr, 2);
    rounded_rect(cr, x + 1, y + 1, w - 2, h - 2, r);
    cairo_stroke(cr);
}

/* ------------------------------------------------------------ alarm list */

static bool status_is(const struct hmi_alarm_row *a, const char *s)
{
    return a->status != NULL && strcmp(a->status, s) == 0;
}

static bool unacked(const struct hmi_alarm_row *a)
{
    return a->status != NULL && strncmp(a->status, "unack", 5) == 0;
}

static int prio_rank(int p)
{
    return p >= 1 && p <= 4 ? p : 5;
}

/* Unacknowledged first, then by priority, then newest first; the name
 * makes the order total so that rows do not swap between frames. */
static int alarm_cmp(const void *pa, const void *pb)
{
    const struct hmi_alarm_row *a = *(const struct hmi_alarm_row *const *)pa;
    const struct hmi_alarm_row *b = *(const struct hmi_alarm_row *const *)pb;
    if (unacked(a) != unacked(b))
        return unacked(a) ? -1 : 1;
    if (prio_rank(a->priority) != prio_rank(b->priority))
        return prio_rank(a->priority) < prio_rank(b->priority) ? -1 : 1;
    if (a->changed_ms != b->changed_ms)
        return a->changed_ms > b->changed_ms ? -1 : 1;
    return strcmp(a->alarm ? a->alarm : "", b->alarm ? b->alarm : "");
}

static void alarm_time(int64_t ms, int64_t now_ms, char *out, size_t size)
{
    struct tm tm, now_tm;
    time_t s = (time_t)(ms / 1000), now = (time_t)(now_ms / 1000);
    out[0] = '\0';
    if (ms <= 0 || localtime_r(&s, &tm) == NULL)
        return;
    bool today = localtime_r(&now, &now_tm) != NULL &&
                 now_tm.tm_year == tm.tm_year && now_tm.tm_yday == tm.tm_yday;
    if (strftime(out, size, today ? "%H:%M:%S" : "%m-%d %H:%M", &tm) == 0)
        out[0] = '\0';
}

static const char *state_word(const struct hmi_alarm_row *a)
{
    if (status_is(a, "unack_active"))
        return dgettext(TEXT_DOMAIN, "Unack");
    if (status_is(a, "ack_active"))
        return dgettext(TEXT_DOMAIN, "Acked");
    if (status_is(a, "unack_rtn"))
        return dgettext(TEXT_DOMAIN, "RTN unack");
    return a->status != NULL ? a->status : "?";
}

/* The column layout of one alarm list. */
struct alarm_cols {
    double time, prio, section, message, state; /* left edges */
    double end;
};

static void alarm_columns(struct canvas *cv, double x, double w,
                          struct alarm_cols *c)
{
    static const struct hmi_alarm_row states[] = {
        {.status = "unack_active"}, {.status = "ack_active"},
        {.status = "unack_rtn"},
    };
    double tw, th, sw = 0;
    text_set(cv, "00-00 00:00", ALARM_FONT, 0, 0);
    text_size(cv, &tw, &th);
    /* As wide as the widest state word, in whatever language. */
    for (size_t i = 0; i < sizeof states / sizeof states[0]; i++) {
        double ww;
        text_set(cv, state_word(&states[i]), ALARM_FONT, T_BOLD, 0);
        text_size(cv, &ww, &th);
        sw = fmax(sw, ww);
    }
    sw = fmin(sw, 160);
    double section_w = w >= 400 ? fmin(w * 0.16, 180) : 0;
    c->time = x;
    c->prio = c->time + tw + 10;
    c->section = c->prio + 28;
    c->message = c->section + section_w;
    c->end = x + w;
    c->state = c->end - sw - 12;
    if (c->state < c->message)
        c->state = c->message;
}

/* The priority as a filled badge with its number: colour and digit say the
 * same, for operators who do not tell red from orange. */
static void alarm_badge(struct canvas *cv, double x, double y, int prio,
                        uint32_t col, uint32_t row_bg)
{
    char num[16];
    ink(cv->cr, col);
    rounded_rect(cv->cr, x + 4, y + 3, 20, ALARM_ROW_H - 6, 3);
    cairo_fill(cv->cr);
    if (col == row_bg) {
        /* On a row of its own colour (blinking): outlined to stay a badge. */
        ink(cv->cr, C_TEXT_DARK);
        cairo_set_line_width(cv->cr, 1);
        rounded_rect(cv->cr, x + 4.5, y + 3.5, 19, ALARM_ROW_H - 7, 3);
        cairo_stroke(cv->cr);
    }
    snprintf(num, sizeof num, "%d", prio);
    text_cell(cv, num, x + 4, y + 3, 20, ALARM_ROW_H - 6, 10, T_BOLD,
              C_TEXT_DARK, AL_CENTER, 0);
}

static void alarm_row(struct draw *dr, const struct hmi_alarm_row *a,
                      const struct alarm_cols *c, double y)
{
    struct canvas *cv = &dr->cv;
    cairo_t *cr = cv->cr;
    uint32_t pc = hmi_render_priority_color(a->priority);
    uint32_t bg = C_FIELD, fg = C_TEXT;
    int64_t phase = dr->d->now_ms % 1000;
    bool blink_on = (phase < 0 ? phase + 1000 : phase) < 500;

    if (dr->d->stale) {
        pc = HMI_COLOR_STALE;
        fg = HMI_COLOR_STALE;
    } else if (status_is(a, "unack_active")) {
        bg = blink_on ? pc : mix(C_FIELD, pc, 0.25);
        fg = blink_on ? C_TEXT_DARK : C_TEXT;
    } else if (status_is(a, "ack_active")) {
        bg = mix(C_FIELD, pc, 0.25);
    } else if (status_is(a, "unack_rtn")) {
        fg = pc;
    } else {
        fg = C_TEXT_DIM;
    }
    double w = c->end - c->time;
    ink(cr, bg);
    cairo_rectangle(cr, c->time, y, w, ALARM_ROW_H);
    cairo_fill(cr);
    ink(cr, C_GRID);
    cairo_set_line_width(cr, 1);
    cairo_move_to(cr, c->time, y + ALARM_ROW_H - 0.5);
    cairo_line_to(cr, c->end, y + ALARM_ROW_H - 0.5);
    cairo_stroke(cr);

    char when[32];
    alarm_time(a->changed_ms, dr->d->now_ms, when, sizeof when);
    text_cell(cv, when, c->time, y, c->prio - c->time, ALARM_ROW_H,
              ALARM_FONT, 0, fg, AL_LEFT, 5);
    alarm_badge(cv, c->prio, y, a->priority, pc, bg);
    if (c->message > c->section) {
        const char *sec = dgettext(TEXT_DOMAIN, "System");
        if (a->section != NULL) {
            int si = dr->p ? vg_project_find_section(dr->p, a->section) : -1;
            sec = si >= 0 ? text_in(&dr->p->sections[si].title, dr->d->lang)
                          : a->section;
        }
        text_cell(cv, sec, c->section, y, c->message - c->section,
                  ALARM_ROW_H, ALARM_FONT, 0, fg, AL_LEFT, 5);
    }
    const char *msg = a->message ? a->message : a->alarm ? a->alarm : "";
    text_cell(cv, msg, c->message, y, c->state - c->message, ALARM_ROW_H,
              ALARM_FONT, 0, fg, AL_LEFT, 5);
    text_cell(cv, state_word(a), c->state, y, c->end - c->state, ALARM_ROW_H,
              ALARM_FONT, unacked(a) ? T_BOLD : 0, fg, AL_LEFT, 5);
}

/* The alarms that belong in O, sorted; *N set. NULL when there are none
 * (or no memory, which then shows as an empty list plus a note). */
static const struct hmi_alarm_row **alarm_rows(struct draw *dr,
                                               const struct vg_screen_object *o,
                                               size_t *n, bool *nomem)
{
    const struct hmi_render_data *d = dr->d;
    *n = 0;
    *nomem = false;
    if (d->alarms == NULL || d->n_alarms == 0)
        return NULL;
    const struct hmi_alarm_row **v = d->n_alarms < SIZE_MAX / sizeof *v
                                     ? malloc(d->n_alarms * sizeof *v) : NULL;
    if (v == NULL) {
        *nomem = true;
        return NULL;
    }
    for (size_t i = 0; i < d->n_alarms; i++) {
        const struct hmi_alarm_row *a = &d->alarms[i];
        /* "normal" rows are shelved or out of service (or returned and
         * acknowledged): ISA-18.2 keeps them out of the alarm list. */
        if (status_is(a, "normal") || !hmi_render_alarm_visible(dr->p, o, a))
            continue;
        v[(*n)++] = a;
    }
    qsort(v, *n, sizeof *v, alarm_cmp);
    return v;
}

static void draw_alarm_list(struct draw *dr, const struct vg_screen_object *o)
{
    struct canvas *cv = &dr->cv;
    cairo_t *cr = cv->cr;
    double x = o->x, y = o->y, w = o->w, h = o->h;
    struct alarm_cols c;
    size_t n;
    bool nomem;

    cairo_save(cr);
    cairo_rectangle(cr, x, y, w, h);
    cairo_clip(cr);
    ink(cr, C_FIELD);
    cairo_paint(cr);

    alarm_columns(cv, x, w, &c);
    ink(cr, C_HEADER);
    cairo_rectangle(cr, x, y, w, ALARM_ROW_H);
    cairo_fill(cr);
    const char *heads[] = {
        dgettext(TEXT_DOMAIN, "Time"),
        /* TRANSLATORS: alarm list column header, short for priority. */
        dgettext(TEXT_DOMAIN, "P"),
        dgettext(TEXT_DOMAIN, "Section"),
        dgettext(TEXT_DOMAIN, "Message"),
        dgettext(TEXT_DOMAIN, "State"),
    };
    double lefts[] = {c.time, c.prio, c.section, c.message, c.state};
    double rights[] = {c.prio, c.section, c.message, c.state, c.end};
    for (int i = 0; i < 5; i++)
        if (rights[i] - lefts[i] > 10)
            text_cell(cv, heads[i], lefts[i], y, rights[i] - lefts[i],
                      ALARM_ROW_H, ALARM_FONT - 1, T_BOLD, C_TEXT_DIM,
                      i == 1 ? AL_CENTER : AL_LEFT, i == 1 ? 0 : 5);

    const struct hmi_alarm_row **rows = alarm_rows(dr, o, &n, &nomem);
    double fit_d = floor((h - ALARM_ROW_H) / ALARM_ROW_H);
    size_t fit = fit_d > 0 ? (size_t)fit_d : 0;
    size_t shown = n <= fit ? n : fit > 0 ? fit - 1 : 0;
    for (size_t i = 0; i < shown; i++)
        alarm_row(dr, rows[i], &c, y + ALARM_ROW_H * (double)(i + 1));
    if (n > shown && fit > 0) {
        char more[160];
        /* The count and the words apart: no translated printf format. */
        snprintf(more, sizeof more, "%zu %s", n - shown,
                 dgettext(TEXT_DOMAIN, "more\xe2\x80\xa6"));
        text_cell(cv, more, x, y + ALARM_ROW_H * (double)fit, w, ALARM_ROW_H,
                  ALARM_FONT, T_BOLD, dr->d->stale ? HMI_COLOR_STALE : C_TEXT,
                  AL_LEFT, 5);
    } else if (n == 0 && fit > 0) {
        text_cell(cv, nomem ? dgettext(TEXT_DOMAIN, "(out of memory)")
                            : dgettext(TEXT_DOMAIN, "No alarms"), x,
                  y + ALARM_ROW_H, w, ALARM_ROW_H, ALARM_FONT, 0, C_TEXT_DIM,
                  AL_LEFT, 5);
    }
    free(rows);
    frame(cr, x, y, w, h, C_FRAME);
    cairo_restore(cr);
}

bool hmi_render_alarm_visible(const struct vg_project *p,
                              const struct vg_screen_object *o,
                              const struct hmi_alarm_row *a)
{
    if (o == NULL || a == NULL)
        return false;
    if (o->max_priority > 0 && a->priority > o->max_priority)
        return false;
    if (o->n_sections == 0 || o->sections == NULL || a->section == NULL)
        return true;
    if (p == NULL)
        return false;
    int s = vg_project_find_section(p, a->section);
    /* Walk up to the area; the bound stops a (never validated) cycle. */
    for (size_t hops = 0; s >= 0 && (size_t)s < p->n_sections &&
                          hops <= p->n_sections; hops++) {
        for (size_t i = 0; i < o->n_sections; i++) {
            const struct vg_ref *r = &o->sections[i];
            int want = r->index >= 0 ? r->index
                     : r->name != NULL ? vg_project_find_section(p, r->name)
                     : -1;
            if (want == s)
                return true;
        }
        s = p->sections[s].parent;
    }
    return false;
}

uint32_t hmi_render_priority_color(int p)
{
    switch (p) {
    case 1: return 0xe53935;
    case 2: return 0xfb8c00;
    case 3: return 0xfdd835;
    case 4: return 0x42a5f5;
    default: return 0x9e9e9e;
    }
}

/* ----------------------------------------------------------------- trend */

/* Series colours for a trend object whose data has not arrived: only the
 * legend shows them, until the station's data brings its own. */
static const uint32_t trend_palette[] = {
    0x4fc3f7, 0xffb74d, 0x81c784, 0xba68c8,
    0xf06292, 0xe0e0e0, 0xa1887f, 0x4db6ac,
};

/* A value axis: every series of one unit shares it. */
struct axis {
    const char *unit;   /* "" for none */
    double lo, hi;      /* the scale, after rounding to ticks */
    double step;
    bool has_data;
    bool drawn;         /* room for it at the left */
    uint32_t color;     /* of its first series */
};

static const char *unit_key(const struct hmi_trend_series *s)
{
    return s->unit != NULL ? s->unit : "";
}

/* 1, 2 or 5 times a power of ten, near RANGE / N. */
static double nice_step(double range, double n)
{
    double raw = range / n;
    if (!(raw > 0) || !isfinite(raw))
        return 1;
    double mag = pow(10, floor(log10(raw)));
    if (!(mag > 0) || !isfinite(mag))
        return raw;
    double f = raw / mag;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

/* Values beyond this are drawn at it: keeps every difference finite. */
#define TREND_HUGE 1e300

static double clamp_huge(double v)
{
    return v > TREND_HUGE ? TREND_HUGE : v < -TREND_HUGE ? -TREND_HUGE : v;
}

static void axis_include(struct axis *ax, const double *v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(v[i]))
            continue;
        double c = clamp_huge(v[i]);
        if (!ax->has_data || c < ax->lo)
            ax->lo = c;
        if (!ax->has_data || c > ax->hi)
            ax->hi = c;
        ax->has_data = true;
    }
}

/* Round the data range of AX out to ticks, for about N_TICKS of them. A
 * flat line (all values equal) gets a band around it. */
static void axis_finish(struct axis *ax, double n_ticks)
{
    if (!ax->has_data) {
        ax->lo = 0;
        ax->hi = 1;
    }
    double mag = fmax(fabs(ax->lo), fabs(ax->hi));
    if (!(ax->hi - ax->lo > mag * 1e-6) || ax->hi - ax->lo < 1e-9) {
        double pad = fmax(mag * 0.05, 0.5);
        ax->lo -= pad;
        ax->hi += pad;
    }
    double margin = (ax->hi - ax->lo) * 0.05;
    ax->lo -= margin;
    ax->hi += margin;
    ax->step = nice_step(ax->hi - ax->lo, n_ticks);
    double lo = floor(ax->lo / ax->step) * ax->step;
    double hi = ceil(ax->hi / ax->step) * ax->step;
    if (isfinite(lo) && isfinite(hi) && hi > lo) {
        ax->lo = lo;
        ax->hi = hi;
    }
}

static void tick_label(double v, double step, char *out, size_t size)
{
    if (fabs(v) < step * 1e-6)
        v = 0;
    if (fmax(fabs(v), step) >= 1e6 || step < 1e-4) {
        snprintf(out, size, "%.3g", v);
        return;
    }
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    snprintf(out, size, "%.*f", dec > 6 ? 6 : dec, v);
}

/* The geometry of one chart. */
struct plot {
    double x, y, w, h;
    double from, to; /* ms, to > from */
};

static double plot_x(const struct plot *pl, double t_ms)
{
    double x = pl->x + (t_ms - pl->from) / (pl->to - pl->from) * pl->w;
    return fmax(pl->x - pl->w, fmin(pl->x + 2 * pl->w, x));
}

static double plot_y(const struct plot *pl, const struct axis *ax, double v)
{
    double f = (clamp_huge(v) - ax->lo) / (ax->hi - ax->lo);
    if (!isfinite(f))
        f = 0.5;
    f = fmax(-1, fmin(2, f));
    return pl->y + pl->h - f * pl->h;
}

/* Offset of local time from UTC at MS, in ms. */
static int64_t local_offset_ms(int64_t ms)
{
    struct tm tm;
    time_t s = (time_t)(ms / 1000);
    if (localtime_r(&s, &tm) == NULL)
        return 0;
    return (int64_t)tm.tm_gmtoff * 1000;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Time axis: grid lines and labels at local-time steps of a readable
 * length (1 s .. 1 year), at most one per MIN_GAP pixels. */
static void time_axis(struct canvas *cv, const struct plot *pl, double label_y,
                      uint32_t text_col)
{
    static const int64_t steps[] = {
        1000, 2000, 5000, 10000, 15000, 30000, 60000, 120000, 300000, 600000,
        900000, 1800000, 3600000, 7200000, 10800000, 21600000, 43200000,
        86400000, 172800000, 604800000, 2592000000, 7776000000,
        31536000000,
    };
    const double min_gap = 80;
    cairo_t *cr = cv->cr;
    int64_t from = (int64_t)pl->from, to = (int64_t)pl->to;
    double max_ticks = fmax(2, floor(pl->w / min_gap));
    int64_t step = 0;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        if ((double)(to - from) / (double)steps[i] <= max_ticks) {
            step = steps[i];
            break;
        }
    }
    if (step == 0) {
        step = 31536000000;
        while ((double)(to - from) / (double)step > max_ticks)
            step *= 2;
    }
    /* Align to local midnight (days and shorter) so ticks read 12:00, not
     * 12:07. */
    int64_t off = local_offset_ms(from);
    int64_t t = floor_div(from + off + step - 1, step) * step - off;
    double last_right = -1e9;
    for (int n = 0; t <= to && n < 200; n++, t += step) {
        double x = round(plot_x(pl, (double)t)) + 0.5;
        ink(cr, C_GRID);
        cairo_set_line_width(cr, 1);
        cairo_move_to(cr, x, pl->y);
        cairo_line_to(cr, x, pl->y + pl->h);
        cairo_stroke(cr);

        struct tm tm;
        time_t s = (time_t)floor_div(t, 1000);
        char label[32] = "";
        if (localtime_r(&s, &tm) != NULL) {
            const char *f = step < 60000 ? "%H:%M:%S"
                          : step < 86400000 ? (tm.tm_hour == 0 && tm.tm_min == 0
                                               ? "%d %b" : "%H:%M")
                          : step < 31536000000 ? "%d %b" : "%Y";
            if (strftime(label, sizeof label, f, &tm) == 0)
                label[0] = '\0';
        }
        double tw, th;
        text_set(cv, label, TREND_FONT, 0, 0);
        text_size(cv, &tw, &th);
        double lx = fmin(fmax(x - tw / 2, pl->x),
                         pl->x + pl->w + 10 - tw);
        if (lx < last_right + 8)
            continue;
        text_put(cv, lx, label_y, text_col);
        last_right = lx + tw;
    }
}

/* One series: the min..max band, then the average line; NaN buckets break
 * both. Points sit in the middle of their bucket. */
static void draw_series(cairo_t *cr, const struct plot *pl,
                        const struct axis *ax,
                        const struct hmi_trend_series *s, uint32_t col)
{
    if (s->n == 0 || s->t_ms == NULL)
        return;
    double half = 0;
    for (size_t i = 1; i < s->n; i++) {
        double gap = (double)s->t_ms[i] - (double)s->t_ms[i - 1];
        if (gap > 0 && (half == 0 || gap / 2 < half))
            half = gap / 2;
    }
    if (s->min != NULL && s->max != NULL) {
        ink_alpha(cr, col, 0.22);
        cairo_set_line_width(cr, 2);
        size_t i = 0;
        while (i < s->n) {
            if (!isfinite(s->min[i]) || !isfinite(s->max[i])) {
                i++;
                continue;
            }
            size_t j = i;
            while (j + 1 < s->n && isfinite(s->min[j + 1]) &&
                   isfinite(s->max[j + 1]))
                j++;
            if (j == i) {
                double x = plot_x(pl, (double)s->t_ms[i] + half);
                cairo_move_to(cr, x, plot_y(pl, ax, s->max[i]));
                cairo_line_to(cr, x, plot_y(pl, ax, s->min[i]));
                cairo_stroke(cr);
            } else {
                for (size_t k = i; k <= j; k++)
                    cairo_line_to(cr, plot_x(pl, (double)s->t_ms[k] + half),
                                  plot_y(pl, ax, s->max[k]));
                for (size_t k = j + 1; k-- > i;)
                    cairo_line_to(cr, plot_x(pl, (double)s->t_ms[k] + half),
                                  plot_y(pl, ax, s->min[k]));
                cairo_close_path(cr);
                cairo_fill(cr);
            }
            i = j + 1;
        }
    }
    if (s->avg == NULL)
        return;
    /* 2 px: a line of any slope then covers whole pixels in its colour. */
    ink(cr, col);
    cairo_set_line_width(cr, 2);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    for (size_t i = 0; i < s->n; i++) {
        if (!isfinite(s->avg[i]))
            continue;
        double x = plot_x(pl, (double)s->t_ms[i] + half);
        double y = plot_y(pl, ax, s->avg[i]);
        bool prev = i > 0 && isfinite(s->avg[i - 1]);
        bool next = i + 1 < s->n && isfinite(s->avg[i + 1]);
        if (!prev && !next) {
            /* A lone bucket between gaps: a dot, or it would not show. */
            cairo_new_sub_path(cr);
            cairo_arc(cr, x, y, 2.5, 0, 2 * M_PI);
            cairo_fill(cr);
            continue;
        }
        if (prev)
            cairo_line_to(cr, x, y);
        else
            cairo_move_to(cr, x, y);
        if (!next)
            cairo_stroke(cr);
    }
    cairo_new_path(cr);
}

static void trend_message(struct canvas *cv, const struct plot *pl,
                          const char *msg)
{
    double tw, th;
    text_set(cv, msg, 13, 0, pl->w - 20);
    text_size(cv, &tw, &th);
    double bx = pl->x + (pl->w - tw) / 2 - 8, by = pl->y + (pl->h - th) / 2 - 4;
    ink_alpha(cv->cr, C_FIELD, 0.85);
    cairo_rectangle(cv->cr, bx, by, tw + 16, th + 8);
    cairo_fill(cv->cr);
    text_put(cv, bx + 8, by + 4, C_TEXT);
}

/* Group the series by unit into AXES (at most one per series); returns the
 * number of axes and fills WHICH[i] with series i's axis. */
static size_t trend_axes(const struct hmi_trend_data *td, size_t n_series,
                         struct axis *axes, size_t *which, bool stale)
{
    size_t n_axes = 0;
    for (size_t i = 0; i < n_series; i++) {
        const struct hmi_trend_series *s = &td->series[i];
        size_t a = 0;
        while (a < n_axes && strcmp(axes[a].unit, unit_key(s)) != 0)
            a++;
        if (a == n_axes) {
            axes[n_axes++] = (struct axis){
                .unit = unit_key(s),
                .color = stale ? HMI_COLOR_STALE : s->color,
            };
        }
        which[i] = a;
        axis_include(&axes[a], s->min, s->n);
        axis_include(&axes[a], s->max, s->n);
        axis_include(&axes[a], s->avg, s->n);
    }
    return n_axes;
}

static void value_axis(struct canvas *cv, const struct plot *pl,
                       const struct axis *ax, double right, bool grid,
                       bool own_colour)
{
    cairo_t *cr = cv->cr;
    uint32_t col = own_colour ? mix(ax->color, C_TEXT_DIM, 0.3) : C_TEXT_DIM;
    double n = round((ax->hi - ax->lo) / ax->step);
    for (int i = 0; ax->has_data && i <= n && i <= 40; i++) {
        double v = ax->lo + ax->step * i;
        double y = round(plot_y(pl, ax, v)) + 0.5;
        if (grid) {
            ink(cr, C_GRID);
            cairo_set_line_width(cr, 1);
            cairo_move_to(cr, pl->x, y);
            cairo_line_to(cr, pl->x + pl->w, y);
            cairo_stroke(cr);
        }
        char label[32];
        double tw, th;
        tick_label(v, ax->step, label, sizeof label);
        text_set(cv, label, TREND_FONT, 0, TREND_AXIS_W - 6);
        text_size(cv, &tw, &th);
        text_put(cv, right - tw, y - th / 2, col);
    }
    text_cell(cv, ax->unit, right - TREND_AXIS_W + 4, pl->y + pl->h + 2,
              TREND_AXIS_W - 4, 16, TREND_FONT, T_BOLD, col, AL_RIGHT, 0);
}

#define LEGEND_ROW_H 17.0

/* Legend entries per row: about 180 px each, so that tag names stay
 * readable, in as many rows as a quarter of the chart's height allows. */
static size_t legend_columns(size_t n_series, double w, double h)
{
    if (n_series == 0)
        return 1;
    size_t cols = (size_t)fmax(1, floor(w / 180));
    if (cols > n_series)
        cols = n_series;
    size_t max_rows = (size_t)fmax(1, floor(h / 4 / LEGEND_ROW_H));
    if ((n_series + cols - 1) / cols > max_rows)
        cols = (n_series + max_rows - 1) / max_rows;
    return cols;
}

static void trend_legend(struct canvas *cv, const struct hmi_trend_data *td,
                         size_t n_series, size_t cols, const struct axis *axes,
                         const size_t *which, double x, double y, double w,
                         bool stale)
{
    double ew = w / (double)cols;
    for (size_t i = 0; i < n_series; i++) {
        const struct hmi_trend_series *s = &td->series[i];
        const struct axis *ax = &axes[which[i]];
        double ex = x + ew * (double)(i % cols);
        double ey = y + LEGEND_ROW_H * (double)(i / cols);
        char text[160];
        if (ax->drawn || !ax->has_data) {
            snprintf(text, sizeof text, "%s%s%s%s", s->label ? s->label : "?",
                     ax->unit[0] ? " [" : "", ax->unit, ax->unit[0] ? "]" : "");
        } else {
            /* No room for its axis: the legend gives the scale. */
            char lo[32], hi[32];
            tick_label(ax->lo, ax->step, lo, sizeof lo);
            tick_label(ax->hi, ax->step, hi, sizeof hi);
            snprintf(text, sizeof text, "%s [%s\xe2\x80\xa6%s%s%s]",
                     s->label ? s->label : "?", lo, hi,
                     ax->unit[0] ? " " : "", ax->unit);
        }
        ink(cv->cr, stale ? HMI_COLOR_STALE : s->color);
        cairo_rectangle(cv->cr, ex + 2, ey + 7, 12, 3);
        cairo_fill(cv->cr);
        text_cell(cv, text, ex + 16, ey, ew - 16, LEGEND_ROW_H, TREND_FONT, 0,
                  C_TEXT_DIM, AL_LEFT, 2);
    }
}

static void trend_draw(struct canvas *cv, double x, double y, double w,
                       double h, const struct hmi_trend_data *td, bool stale)
{
    cairo_t *cr = cv->cr;
    if (!(w >= 1 && h >= 1) || !isfinite(x) || !isfinite(y) ||
        w > 100000 || h > 100000)
        return;
    cairo_save(cr);
    cairo_rectangle(cr, x, y, w, h);
    cairo_clip(cr);
    ink(cr, C_FIELD);
    cairo_paint(cr);

    size_t n_series = td != NULL && td->series != NULL ? td->n_series : 0;
    if (n_series > TREND_MAX_SERIES)
        n_series = TREND_MAX_SERIES;
    size_t cols = legend_columns(n_series, w - 8, h);
    const double time_h = 18;
    double legend_h = n_series > 0
        ? LEGEND_ROW_H * (double)((n_series + cols - 1) / cols) + 3 : 4;
    struct axis axes[TREND_MAX_SERIES];
    size_t which[TREND_MAX_SERIES];
    size_t n_axes = td ? trend_axes(td, n_series, axes, which, stale) : 0;
    size_t room = (size_t)fmax(1, floor(w * 0.3 / TREND_AXIS_W));
    double axes_w = TREND_AXIS_W * (double)(n_axes < room ? (n_axes ? n_axes : 1)
                                                          : room);
    struct plot pl = {
        .x = x + axes_w + 4, .y = y + legend_h + 6,
        .w = w - axes_w - 16, .h = h - legend_h - time_h - 12,
    };
    if (td != NULL && pl.w >= 20 && pl.h >= 20) {
        double from = (double)td->from_ms, to = (double)td->to_ms;
        /* Years +-30000 are far enough for any chart and keep the ms exact
         * in a double. */
        pl.from = fmax(-1e15, fmin(1e15, from));
        pl.to = fmax(-1e15, fmin(1e15, to));
        if (!(pl.to > pl.from))
            pl.to = pl.from + 1000;
        double n_ticks = fmax(2, pl.h / 40);
        for (size_t a = 0; a < n_axes; a++) {
            axis_finish(&axes[a], n_ticks);
            axes[a].drawn = a < room;
        }
        ink(cr, 0x0c1014);
        cairo_rectangle(cr, pl.x, pl.y, pl.w, pl.h);
        cairo_fill(cr);
        time_axis(cv, &pl, pl.y + pl.h + 3, C_TEXT_DIM);
        for (size_t a = 0; a < n_axes && a < room; a++)
            value_axis(cv, &pl, &axes[a], x + TREND_AXIS_W * (double)(a + 1),
                       a == 0, n_axes > 1 && !stale);
        frame(cr, pl.x - 1, pl.y - 1, pl.w + 2, pl.h + 2, C_FRAME);
        cairo_save(cr);
        cairo_rectangle(cr, pl.x, pl.y, pl.w, pl.h);
        cairo_clip(cr);
        for (size_t i = 0; i < n_series; i++)
            draw_series(cr, &pl, &axes[which[i]], &td->series[i],
                        stale ? HMI_COLOR_STALE : td->series[i].color);
        cairo_restore(cr);
        if (n_series > 0)
            trend_legend(cv, td, n_series, cols, axes, which, x + 4, y + 3,
                         w - 8, stale);
    } else {
        pl = (struct plot){.x = x, .y = y, .w = w, .h = h, .from = 0, .to = 1};
    }
    if (td != NULL && td->message != NULL)
        trend_message(cv, &pl, td->message);
    frame(cr, x, y, w, h, C_FRAME);
    cairo_restore(cr);
}

void hmi_render_trend(cairo_t *cr, double x, double y, double w, double h,
                      const struct hmi_trend_data *td, bool stale)
{
    struct canvas cv;
    if (cr == NULL || !canvas_open(&cv, cr))
        return;
    trend_draw(&cv, x, y, w, h, td, stale);
    canvas_close(&cv);
}

/* A trend object: the station's data, or until it comes an empty chart of
 * the object's span that already names its tags. */
static void draw_trend_obj(struct draw *dr, const struct vg_screen_object *o,
                           size_t index)
{
    const struct hmi_render_data *d = dr->d;
    const struct hmi_trend_data *td = d->trend ? d->trend(d->ud, index) : NULL;
    if (td != NULL) {
        trend_draw(&dr->cv, o->x, o->y, o->w, o->h, td, d->stale);
        return;
    }
    struct hmi_trend_series series[TREND_MAX_SERIES];
    size_t n = 0;
    for (size_t i = 0; o->tags != NULL && i < o->n_tags &&
                       n < TREND_MAX_SERIES; i++) {
        const struct vg_tag *t = tag_of(dr, &o->tags[i]);
        series[n] = (struct hmi_trend_series){
            .label = t ? t->name : o->tags[i].name,
            .unit = t ? t->unit : NULL,
            .color = trend_palette[n % (sizeof trend_palette /
                                        sizeof trend_palette[0])],
        };
        n++;
    }
    int64_t span_ms = (int64_t)o->span_s * 1000;
    struct hmi_trend_data empty = {
        .series = series,
        .n_series = n,
        .from_ms = d->now_ms >= INT64_MIN + span_ms ? d->now_ms - span_ms
                                                    : INT64_MIN,
        .to_ms = d->now_ms,
    };
    trend_draw(&dr->cv, o->x, o->y, o->w, o->h, &empty, d->stale);
}

/* ---------------------------------------------------------------- screen */

static void draw_object(struct draw *dr, const struct vg_screen_object *o,
                        size_t index)
{
    const struct hmi_render_data *d = dr->d;
    bool pressed = d->pressed >= 0 && (size_t)d->pressed == index;
    if (o->w < 0 || o->h < 0)
        return;
    switch (o->type) {
    case VG_OBJ_TEXT: draw_text(dr, o); break;
    case VG_OBJ_VALUE: draw_field(dr, o, false); break;
    case VG_OBJ_SETPOINT: draw_field(dr, o, true); break;
    case VG_OBJ_BAR: draw_bar(dr, o); break;
    case VG_OBJ_LAMP: draw_lamp(dr, o); break;
    case VG_OBJ_BUTTON: draw_button(dr, o, pressed); break;
    case VG_OBJ_TREND: draw_trend_obj(dr, o, index); break;
    case VG_OBJ_ALARM_LIST: draw_alarm_list(dr, o); break;
    case VG_OBJ_RECT: draw_rect(dr, o); break;
    case VG_OBJ_LINE:
    case VG_OBJ_POLYLINE: draw_lines(dr, o); break;
    case VG_OBJ_PIPE: draw_pipe(dr, o); break;
    case VG_OBJ_TANK: draw_tank(dr, o); break;
    default: break;
    }
    if (d->focused >= 0 && (size_t)d->focused == index)
        focus_ring(dr->cv.cr, o);
}

void hmi_render_screen(cairo_t *cr, const struct vg_screen *s,
                       const struct hmi_render_data *d)
{
    static const struct hmi_render_data nothing = {.pressed = -1,
                                                   .focused = -1};
    struct draw dr = {.d = d != NULL ? d : &nothing};
    if (cr == NULL || s == NULL)
        return;
    dr.p = dr.d->project;
    cairo_save(cr);
    ink(cr, s->background);
    cairo_rectangle(cr, 0, 0, s->width, s->height);
    cairo_fill(cr);
    if (canvas_open(&dr.cv, cr)) {
        for (size_t i = 0; s->objects != NULL && i < s->n_objects; i++) {
            cairo_save(cr);
            draw_object(&dr, &s->objects[i], i);
            cairo_restore(cr);
        }
        canvas_close(&dr.cv);
    }
    cairo_restore(cr);
}

int hmi_render_hit(const struct vg_screen *s, double x, double y)
{
    if (s == NULL || s->objects == NULL)
        return -1;
    size_t n = s->n_objects < INT_MAX ? s->n_objects : INT_MAX;
    for (size_t i = n; i-- > 0;) {
        const struct vg_screen_object *o = &s->objects[i];
        if (o->type != VG_OBJ_BUTTON && o->type != VG_OBJ_SETPOINT &&
            o->type != VG_OBJ_ALARM_LIST && o->type != VG_OBJ_TREND)
            continue;
        if (x >= o->x && x < (double)o->x + o->w && y >= o->y &&
            y < (double)o->y + o->h)
            return (int)i;
    }
    return -1;
}
