/* Unit tests for client/hmi/render.h.
 *
 * The waterworks example project (its folder is the first argument) is
 * loaded with the real parser and its screens are drawn into RGB24 image
 * surfaces; the tests then look at pixels whose colour the conventions in
 * render.h fix exactly: the background at a spot no object covers, the fill
 * of a full and an empty tank, a lamp's on and off colours, the magenta
 * frame of a value whose PLC is unreachable (and its absence on a good
 * one), no process colour at all while stale, alarm rows in priority
 * colour in the documented order and blinking, an overfull alarm list
 * drawing nothing outside its rectangle, and a trend's average line in its
 * series colour with the gap of missing buckets left empty.
 *
 * The pure functions are checked by value: value texts for every quality,
 * format and unit case (%d, NaN, 1e300, -0.0), hit testing on the
 * distribution screen, alarm visibility through sub-sections and
 * priorities. Finally every screen is drawn with no values, random good
 * values, bad values, non-finite values and while stale, and a made-up
 * screen of broken objects with and without a project, which must not
 * crash (the sanitizer build runs this too).
 *
 * Labels are in local time, so TZ is fixed to central European time with a
 * POSIX rule (no tzdata needed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cairo.h>
#include <cmocka.h>
#include <fontconfig/fontconfig.h>
#include <pango/pangocairo.h>

#include "render.h"

#define NOW_MS 1714557600000LL /* 2024-05-01 12:00:00 CEST: a whole second */
#define GREEN_ON 0x2ecc40u      /* the project's "running" lamp colour */

static const char *waterworks_dir;
static struct vg_project *proj;

/* ---------------------------------------------------------------- helpers */

static struct vg_project *load_waterworks(void)
{
    struct vg_project_files fs;
    struct vg_diags d;
    char errmsg[VG_ERRMSG_SIZE];
    struct vg_project *p;

    memset(&fs, 0, sizeof fs);
    if (vg_project_files_read_dir(&fs, waterworks_dir, errmsg) != VG_OK)
        return NULL;
    vg_diags_init(&d);
    p = vg_project_parse(&fs, &d);
    if (p != NULL && d.n != 0) {
        vg_project_free(p);
        p = NULL;
    }
    vg_diags_free(&d);
    vg_project_files_free(&fs);
    return p;
}

static const struct vg_screen *screen(const char *name)
{
    int i = vg_project_find_screen(proj, name);
    assert_true(i >= 0);
    return &proj->screens[i];
}

/* Index of the first object of TYPE on S bound to tag TAG (NULL: any). */
static size_t object(const struct vg_screen *s, enum vg_obj_type type,
                     const char *tag)
{
    for (size_t i = 0; i < s->n_objects; i++) {
        const struct vg_screen_object *o = &s->objects[i];
        if (o->type == type &&
            (tag == NULL || (o->tag.name && strcmp(o->tag.name, tag) == 0)))
            return i;
    }
    fail_msg("no %s for %s on %s", vg_obj_type_name(type), tag ? tag : "-",
             s->name);
    return 0;
}

static size_t nth_object(const struct vg_screen *s, enum vg_obj_type type,
                         size_t nth)
{
    for (size_t i = 0; i < s->n_objects; i++)
        if (s->objects[i].type == type && nth-- == 0)
            return i;
    fail_msg("not enough %s on %s", vg_obj_type_name(type), s->name);
    return 0;
}

static int tag(const char *name)
{
    int i = vg_project_find_tag(proj, name);
    assert_true(i >= 0);
    return i;
}

/* Values for every tag, all of quality Q and value V; caller frees. */
static struct hmi_value *values(enum hmi_quality q, double v)
{
    struct hmi_value *vals = calloc(proj->n_tags, sizeof *vals);
    assert_non_null(vals);
    for (size_t i = 0; i < proj->n_tags; i++)
        vals[i] = (struct hmi_value){q, v, NOW_MS};
    return vals;
}

static struct hmi_render_data data(const struct hmi_value *vals)
{
    return (struct hmi_render_data){
        .project = proj,
        .lang = 0,
        .values = vals,
        .now_ms = NOW_MS,
        .pressed = -1,
        .focused = -1,
    };
}

static cairo_surface_t *render(const struct vg_screen *s,
                               const struct hmi_render_data *d)
{
    cairo_surface_t *sf = cairo_image_surface_create(CAIRO_FORMAT_RGB24,
                                                     s->width, s->height);
    assert_int_equal(cairo_surface_status(sf), CAIRO_STATUS_SUCCESS);
    cairo_t *cr = cairo_create(sf);
    hmi_render_screen(cr, s, d);
    assert_int_equal(cairo_status(cr), CAIRO_STATUS_SUCCESS);
    cairo_destroy(cr);
    cairo_surface_flush(sf);
    return sf;
}

/* The colour at X, Y as 0xRRGGBB. */
static uint32_t px(cairo_surface_t *sf, int x, int y)
{
    assert_true(x >= 0 && x < cairo_image_surface_get_width(sf));
    assert_true(y >= 0 && y < cairo_image_surface_get_height(sf));
    const unsigned char *row = cairo_image_surface_get_data(sf) +
                               (size_t)y * cairo_image_surface_get_stride(sf);
    return ((const uint32_t *)(const void *)row)[x] & 0xffffffu;
}

/* Pixels of colour COL in the box X, Y, W, H (clipped to the surface). */
static size_t count(cairo_surface_t *sf, int x, int y, int w, int h,
                    uint32_t col)
{
    int sw = cairo_image_surface_get_width(sf);
    int sh = cairo_image_surface_get_height(sf);
    size_t n = 0;
    for (int j = y < 0 ? 0 : y; j < y + h && j < sh; j++)
        for (int i = x < 0 ? 0 : x; i < x + w && i < sw; i++)
            n += px(sf, i, j) == col;
    return n;
}

static size_t count_all(cairo_surface_t *sf, uint32_t col)
{
    return count(sf, 0, 0, cairo_image_surface_get_width(sf),
                 cairo_image_surface_get_height(sf), col);
}

/* A generous box around what object O may touch. */
static void object_box(const struct vg_screen_object *o, int *x0, int *y0,
                       int *x1, int *y1)
{
    int m = 4 + (int)o->line_width;
    if (o->type == VG_OBJ_LINE || o->type == VG_OBJ_POLYLINE ||
        o->type == VG_OBJ_PIPE) {
        *x0 = *y0 = 1 << 30;
        *x1 = *y1 = -(1 << 30);
        for (size_t i = 0; i < o->n_points; i++) {
            *x0 = o->points[i].x < *x0 ? o->points[i].x : *x0;
            *y0 = o->points[i].y < *y0 ? o->points[i].y : *y0;
            *x1 = o->points[i].x > *x1 ? o->points[i].x : *x1;
            *y1 = o->points[i].y > *y1 ? o->points[i].y : *y1;
        }
    } else if (o->type == VG_OBJ_TEXT) {
        /* No size: assume a long line of its font size. */
        *x0 = o->x;
        *y0 = o->y;
        *x1 = o->x + 500;
        *y1 = o->y + (int)(o->font_size * 2);
    } else {
        *x0 = o->x;
        *y0 = o->y;
        *x1 = o->x + o->w;
        *y1 = o->y + o->h;
    }
    *x0 -= m;
    *y0 -= m;
    *x1 += m;
    *y1 += m;
}

/* A spot of S no object comes near; false when there is none. */
static bool empty_spot(const struct vg_screen *s, int *ex, int *ey)
{
    for (int y = 4; y < s->height - 4; y += 8) {
        for (int x = 4; x < s->width - 4; x += 8) {
            bool free = true;
            for (size_t i = 0; free && i < s->n_objects; i++) {
                int x0, y0, x1, y1;
                object_box(&s->objects[i], &x0, &y0, &x1, &y1);
                free = x < x0 || x > x1 || y < y0 || y > y1;
            }
            if (free) {
                *ex = x;
                *ey = y;
                return true;
            }
        }
    }
    return false;
}

/* -------------------------------------------------------------- colours */

static void test_priority_color(void **state)
{
    (void)state;
    assert_int_equal(hmi_render_priority_color(1), 0xe53935);
    assert_int_equal(hmi_render_priority_color(2), 0xfb8c00);
    assert_int_equal(hmi_render_priority_color(3), 0xfdd835);
    assert_int_equal(hmi_render_priority_color(4), 0x42a5f5);
    assert_int_equal(hmi_render_priority_color(0),
                     hmi_render_priority_color(5));
    assert_int_equal(hmi_render_priority_color(-7),
                     hmi_render_priority_color(5));
}

/* ------------------------------------------------------------ value text */

static void check_text(const struct vg_screen_object *o, const struct vg_tag *t,
                       enum hmi_quality q, double v, const char *want)
{
    struct hmi_value hv = {q, v, NOW_MS};
    char out[96];
    memset(out, 'x', sizeof out);
    hmi_render_value_text(o, t, &hv, out, sizeof out);
    if (strcmp(out, want) != 0)
        fail_msg("format '%s', value %g (quality %d): got '%s', want '%s'",
                 o && o->format ? o->format : "(default)", v, q, out, want);
}

static void test_value_text(void **state)
{
    (void)state;
    struct vg_tag flow = {.name = "flow", .type = VG_DT_FLOAT32,
                          .unit = "m\xc2\xb3/h"};
    struct vg_tag bare = {.name = "bare", .type = VG_DT_UINT32, .unit = ""};
    struct vg_tag run = {.name = "run", .type = VG_DT_BOOL, .unit = ""};
    struct vg_screen_object o = {.type = VG_OBJ_VALUE, .format = "%.1f",
                                 .show_unit = true};

    check_text(&o, &flow, HMI_Q_GOOD, 12.34, "12.3 m\xc2\xb3/h");
    check_text(&o, &flow, HMI_Q_GOOD, -0.02, "0.0 m\xc2\xb3/h");
    check_text(&o, &flow, HMI_Q_GOOD, -0.5, "-0.5 m\xc2\xb3/h");
    check_text(&o, &bare, HMI_Q_GOOD, 7, "7.0");
    o.show_unit = false;
    check_text(&o, &flow, HMI_Q_GOOD, 12.34, "12.3");

    /* Every quality that is not good shows its word, never a number. */
    o.show_unit = true;
    check_text(&o, &flow, HMI_Q_NONE, 1, "---");
    check_text(&o, &flow, HMI_Q_PENDING, 1, "\xe2\x80\xa6");
    check_text(&o, &flow, HMI_Q_BAD_VALUE, 1, "BAD");
    check_text(&o, &flow, HMI_Q_BAD_COMM, 1, "COMM");
    check_text(&o, &flow, (enum hmi_quality)99, 1, "BAD");
    check_text(&o, &flow, HMI_Q_GOOD, NAN, "BAD");
    check_text(&o, &flow, HMI_Q_GOOD, INFINITY, "BAD");
    check_text(&o, &flow, HMI_Q_GOOD, -INFINITY, "BAD");

    /* A number too long for any field switches to %g. */
    check_text(&o, &flow, HMI_Q_GOOD, 1e300, "1e+300 m\xc2\xb3/h");
    check_text(&o, &flow, HMI_Q_GOOD, -1e300, "-1e+300 m\xc2\xb3/h");

    /* Default format, other conversions, literal text around. */
    o.format = NULL;
    check_text(&o, &flow, HMI_Q_GOOD, 2.5, "2.50 m\xc2\xb3/h");
    o.format = "%g";
    check_text(&o, &bare, HMI_Q_GOOD, 0.25, "0.25");
    o.format = "%.2e";
    check_text(&o, &bare, HMI_Q_GOOD, 1234.5, "1.23e+03");
    o.format = "%+5.1f %%";
    check_text(&o, &bare, HMI_Q_GOOD, 3.14159, " +3.1 %");

    /* %d is given an int: rounded, and a value beyond int printed whole
     * instead of clamped to a wrong number. */
    o.format = "%d";
    check_text(&o, &bare, HMI_Q_GOOD, 41.6, "42");
    check_text(&o, &bare, HMI_Q_GOOD, -2.5, "-3");
    check_text(&o, &bare, HMI_Q_GOOD, -0.4, "0");
    check_text(&o, &bare, HMI_Q_GOOD, 2147483647.0, "2147483647");
    check_text(&o, &bare, HMI_Q_GOOD, 3000000000.0, "3000000000");
    check_text(&o, &bare, HMI_Q_GOOD, -3000000000.0, "-3000000000");
    check_text(&o, &bare, HMI_Q_GOOD, 1e300, "1e+300");
    check_text(&o, &flow, HMI_Q_GOOD, NAN, "BAD");
    o.format = "%05d h";
    check_text(&o, &bare, HMI_Q_GOOD, 42, "00042 h");
    check_text(&o, &bare, HMI_Q_GOOD, 5e9, "5000000000 h");

    /* A bool shows 0 or 1 whatever the format. */
    o.format = "%.3f";
    check_text(&o, &run, HMI_Q_GOOD, 1, "1");
    check_text(&o, &run, HMI_Q_GOOD, 0, "0");
    check_text(&o, &run, HMI_Q_GOOD, 0.5, "1");

    /* A format that never saw the validator cannot reach printf. */
    o.format = "%s";
    check_text(&o, &bare, HMI_Q_GOOD, 1, "1.00");
    o.format = "%f %f";
    check_text(&o, &bare, HMI_Q_GOOD, 1, "1.00");
    o.format = "%n";
    check_text(&o, &bare, HMI_Q_GOOD, 1, "1.00");
    o.format = "%.1f and a very long literal text after it";
    check_text(&o, &bare, HMI_Q_GOOD, 1, "1.00");

    /* No object, no tag, no value, NULL unit. */
    struct vg_tag nounit = {.name = "n", .type = VG_DT_FLOAT32};
    check_text(NULL, NULL, HMI_Q_GOOD, 1.5, "1.50");
    check_text(NULL, &flow, HMI_Q_GOOD, 1.5, "1.50 m\xc2\xb3/h");
    check_text(NULL, &nounit, HMI_Q_GOOD, 1.5, "1.50");
    char out[8] = "zzzzzzz";
    hmi_render_value_text(&o, &flow, NULL, out, sizeof out);
    assert_string_equal(out, "---");

    /* Small buffers: cut, always terminated; size 0 writes nothing. */
    struct hmi_value v = {HMI_Q_GOOD, 123456.789, 0};
    o.format = "%.2f";
    memset(out, 'z', sizeof out);
    hmi_render_value_text(&o, &flow, &v, out, 4);
    assert_string_equal(out, "123");
    assert_int_equal(out[4], 'z');
    hmi_render_value_text(&o, &flow, &v, out, 1);
    assert_string_equal(out, "");
    out[0] = 'q';
    hmi_render_value_text(&o, &flow, &v, out, 0);
    assert_int_equal(out[0], 'q');
    hmi_render_value_text(&o, &flow, &v, NULL, 10);
}

/* --------------------------------------------------------------- pixels */

static void test_background(void **state)
{
    (void)state;
    struct hmi_value *vals = values(HMI_Q_NONE, 0);
    struct hmi_render_data d = data(vals);
    size_t checked = 0;
    for (size_t i = 0; i < proj->n_screens; i++) {
        const struct vg_screen *s = &proj->screens[i];
        int x, y;
        if (!empty_spot(s, &x, &y))
            continue;
        cairo_surface_t *sf = render(s, &d);
        assert_int_equal(px(sf, x, y), s->background);
        cairo_surface_destroy(sf);
        checked++;
    }
    assert_true(checked > 0);
    free(vals);
}

static void test_tank(void **state)
{
    (void)state;
    const struct vg_screen *s = screen("distribution");
    const char *name = "distribution.clearwell1.level";
    const struct vg_screen_object *o = &s->objects[object(s, VG_OBJ_TANK, name)];
    struct hmi_value *vals = values(HMI_Q_NONE, 0);
    struct hmi_render_data d = data(vals);
    int cx = o->x + o->w / 2, bottom = o->y + o->h - 6, top = o->y + 6;
    int lower = o->y + o->h * 3 / 4, upper = o->y + o->h / 4;

    assert_true(o->has_range && o->min == 0 && o->max == 5 && o->has_fill);
    vals[tag(name)] = (struct hmi_value){HMI_Q_GOOD, 5, NOW_MS};
    cairo_surface_t *full = render(s, &d);
    assert_int_equal(px(full, cx, bottom), o->fill);
    assert_int_equal(px(full, cx, top), o->fill);

    vals[tag(name)].value = 0;
    cairo_surface_t *empty = render(s, &d);
    assert_int_not_equal(px(empty, cx, bottom), o->fill);
    assert_int_not_equal(px(empty, cx, top), o->fill);

    vals[tag(name)].value = 2.5;
    cairo_surface_t *half = render(s, &d);
    assert_int_equal(px(half, cx, lower), o->fill);
    assert_int_equal(px(half, cx, bottom), o->fill);
    assert_int_not_equal(px(half, cx, upper), o->fill);

    /* Beyond the scale: full, not overflowing; NaN: bad, no level. */
    vals[tag(name)].value = 1e9;
    cairo_surface_t *over = render(s, &d);
    assert_int_equal(px(over, cx, top), o->fill);
    assert_int_equal(count(over, o->x, o->y - 12, o->w, 10, o->fill), 0);
    vals[tag(name)].value = NAN;
    cairo_surface_t *nan = render(s, &d);
    assert_int_equal(count(nan, o->x, o->y, o->w, o->h, o->fill), 0);
    assert_true(count(nan, o->x, o->y, o->w, o->h, HMI_COLOR_BAD_QUALITY) > 20);

    cairo_surface_destroy(full);
    cairo_surface_destroy(empty);
    cairo_surface_destroy(half);
    cairo_surface_destroy(over);
    cairo_surface_destroy(nan);
    free(vals);
}

static void test_lamp(void **state)
{
    (void)state;
    const struct vg_screen *s = screen("distribution");
    const char *name = "distribution.pump1.running";
    const struct vg_screen_object *o = &s->objects[object(s, VG_OBJ_LAMP, name)];
    struct hmi_value *vals = values(HMI_Q_GOOD, 0);
    struct hmi_render_data d = data(vals);
    int cx = o->x + o->w / 2, cy = o->y + o->h / 2;

    assert_int_equal(o->color, GREEN_ON);
    cairo_surface_t *off = render(s, &d);
    assert_int_equal(px(off, cx, cy), o->off_color);
    vals[tag(name)].value = 1;
    cairo_surface_t *on = render(s, &d);
    assert_int_equal(px(on, cx, cy), o->color);
    assert_int_equal(px(on, cx - 3, cy + 2), o->color);

    /* Unreachable PLC: a magenta ring and hatching, neither state colour. */
    vals[tag(name)].quality = HMI_Q_BAD_COMM;
    cairo_surface_t *bad = render(s, &d);
    assert_int_equal(count(bad, o->x, o->y, o->w, o->h, o->color), 0);
    assert_int_equal(count(bad, o->x, o->y, o->w, o->h, o->off_color), 0);
    assert_true(count(bad, o->x, o->y, o->w, o->h, HMI_COLOR_BAD_QUALITY) > 10);

    cairo_surface_destroy(off);
    cairo_surface_destroy(on);
    cairo_surface_destroy(bad);
    free(vals);
}

/* Magenta pixels on the one-pixel border ring of O's box (the corners
 * counted twice). */
static size_t border_magenta(cairo_surface_t *sf,
                             const struct vg_screen_object *o)
{
    return count(sf, o->x, o->y, o->w, 1, HMI_COLOR_BAD_QUALITY) +
           count(sf, o->x, o->y + o->h - 1, o->w, 1, HMI_COLOR_BAD_QUALITY) +
           count(sf, o->x, o->y, 1, o->h, HMI_COLOR_BAD_QUALITY) +
           count(sf, o->x + o->w - 1, o->y, 1, o->h, HMI_COLOR_BAD_QUALITY);
}

static void test_value_quality(void **state)
{
    (void)state;
    const struct vg_screen *s = screen("distribution");
    const char *name = "distribution.pump1.speed";
    const struct vg_screen_object *o =
        &s->objects[object(s, VG_OBJ_VALUE, name)];
    const struct vg_screen_object *sp =
        &s->objects[object(s, VG_OBJ_SETPOINT, "distribution.pump1.speed_sp")];
    struct hmi_value *vals = values(HMI_Q_GOOD, 50);
    struct hmi_render_data d = data(vals);

    cairo_surface_t *good = render(s, &d);
    assert_int_equal(count(good, o->x - 4, o->y - 4, o->w + 8, o->h + 8,
                           HMI_COLOR_BAD_QUALITY), 0);
    assert_int_equal(count(good, sp->x - 4, sp->y - 4, sp->w + 8, sp->h + 8,
                           HMI_COLOR_BAD_QUALITY), 0);
    /* A good value is light text in the field: some of its pixels. */
    assert_true(count(good, o->x, o->y, o->w, o->h, o->color) > 0);

    vals[tag(name)].quality = HMI_Q_BAD_COMM;
    vals[tag("distribution.pump1.speed_sp")].quality = HMI_Q_BAD_COMM;
    cairo_surface_t *bad = render(s, &d);
    /* The 2 px frame covers the whole border ring. */
    assert_int_equal(border_magenta(bad, o), 2 * (o->w + o->h));
    assert_int_equal(border_magenta(bad, sp), 2 * (sp->w + sp->h));
    /* ... and nothing outside the field. */
    assert_int_equal(count(bad, o->x - 4, o->y - 4, o->w + 8, 4,
                           HMI_COLOR_BAD_QUALITY), 0);

    /* A good number that is not finite is bad too. */
    vals[tag(name)] = (struct hmi_value){HMI_Q_GOOD, INFINITY, NOW_MS};
    cairo_surface_t *inf = render(s, &d);
    assert_int_equal(border_magenta(inf, o), 2 * (o->w + o->h));

    /* Stale: grey, no magenta even for the bad one. */
    d.stale = true;
    vals[tag(name)].quality = HMI_Q_BAD_COMM;
    cairo_surface_t *stale = render(s, &d);
    assert_int_equal(border_magenta(stale, o), 0);
    assert_int_equal(count_all(stale, HMI_COLOR_BAD_QUALITY), 0);

    cairo_surface_destroy(good);
    cairo_surface_destroy(bad);
    cairo_surface_destroy(inf);
    cairo_surface_destroy(stale);
    free(vals);
}

/* Stale: no lamp shows its "on" colour, nor anything else its process
 * colour, on any screen; live, the same values do show it. */
static void test_stale(void **state)
{
    (void)state;
    struct hmi_value *vals = values(HMI_Q_GOOD, 1);
    struct hmi_render_data d = data(vals);
    size_t live_green = 0;
    for (size_t i = 0; i < proj->n_screens; i++) {
        const struct vg_screen *s = &proj->screens[i];
        d.stale = false;
        cairo_surface_t *live = render(s, &d);
        live_green += count_all(live, GREEN_ON);
        cairo_surface_destroy(live);
        d.stale = true;
        cairo_surface_t *stale = render(s, &d);
        if (count_all(stale, GREEN_ON) != 0)
            fail_msg("screen %s shows green while stale", s->name);
        assert_int_equal(count_all(stale, HMI_COLOR_BAD_QUALITY), 0);
        cairo_surface_destroy(stale);
    }
    assert_true(live_green > 100);
    free(vals);
}

/* ------------------------------------------------------------------ hit */

static void test_hit(void **state)
{
    (void)state;
    const struct vg_screen *s = screen("distribution");
    size_t bi = 0, si = object(s, VG_OBJ_SETPOINT, "distribution.pump1.speed_sp");
    size_t vi = object(s, VG_OBJ_VALUE, "distribution.pump1.speed");
    for (bi = 0; bi < s->n_objects; bi++) {
        const struct vg_screen_object *o = &s->objects[bi];
        if (o->type == VG_OBJ_BUTTON && o->action == VG_ACTION_WRITE &&
            strcmp(o->tag.name, "distribution.pump1.cmd") == 0 &&
            o->write_value == 1)
            break;
    }
    assert_true(bi < s->n_objects);
    const struct vg_screen_object *b = &s->objects[bi], *sp = &s->objects[si];
    const struct vg_screen_object *v = &s->objects[vi];

    /* Inside, at the corners (the far edges belong to the neighbour). */
    assert_int_equal(hmi_render_hit(s, b->x + b->w / 2.0, b->y + b->h / 2.0),
                     (int)bi);
    assert_int_equal(hmi_render_hit(s, b->x, b->y), (int)bi);
    assert_int_equal(hmi_render_hit(s, b->x + b->w - 0.01, b->y + b->h - 0.01),
                     (int)bi);
    assert_int_not_equal(hmi_render_hit(s, b->x + b->w, b->y + 1), (int)bi);
    assert_int_not_equal(hmi_render_hit(s, b->x - 0.01, b->y + 1), (int)bi);
    assert_int_equal(hmi_render_hit(s, sp->x + 3, sp->y + 3), (int)si);
    /* A value, the panel behind it, the title bar: nothing to act on. */
    assert_int_equal(hmi_render_hit(s, v->x + 3, v->y + 3), -1);
    assert_int_equal(hmi_render_hit(s, 5, 5), -1);
    int ex, ey;
    assert_true(empty_spot(s, &ex, &ey));
    assert_int_equal(hmi_render_hit(s, ex, ey), -1);
    assert_int_equal(hmi_render_hit(s, NAN, NAN), -1);
    assert_int_equal(hmi_render_hit(s, -1e300, 1e300), -1);
    assert_int_equal(hmi_render_hit(NULL, 1, 1), -1);

    /* The topmost wins: a trend drawn over an alarm list. */
    struct vg_screen_object objs[] = {
        {.type = VG_OBJ_ALARM_LIST, .x = 0, .y = 0, .w = 100, .h = 100},
        {.type = VG_OBJ_TREND, .x = 50, .y = 50, .w = 100, .h = 100},
        {.type = VG_OBJ_RECT, .x = 0, .y = 0, .w = 200, .h = 200},
    };
    struct vg_screen mine = {.name = "mine", .width = 320, .height = 200,
                             .objects = objs, .n_objects = 3};
    assert_int_equal(hmi_render_hit(&mine, 10, 10), 0);
    assert_int_equal(hmi_render_hit(&mine, 60, 60), 1);
    assert_int_equal(hmi_render_hit(&mine, 190, 190), -1);
}

/* --------------------------------------------------------------- alarms */

static void test_alarm_visible(void **state)
{
    (void)state;
    const struct vg_screen *s = screen("alarms");
    const struct vg_screen_object *all = &s->objects[nth_object(s, VG_OBJ_ALARM_LIST, 0)];
    const struct vg_screen_object *intake = &s->objects[nth_object(s, VG_OBJ_ALARM_LIST, 1)];
    const struct vg_screen_object *treat = &s->objects[nth_object(s, VG_OBJ_ALARM_LIST, 2)];
    struct {
        const char *section;
        int priority;
        bool in_all, in_intake, in_treatment;
    } cases[] = {
        {"intake", 1, true, true, false},
        {"wells", 2, true, true, false},        /* a sub-section */
        {"raw-water", 1, true, true, false},
        {"wells", 3, true, false, false},       /* beyond max_priority 2 */
        {"filtration", 1, true, false, true},
        {"disinfection", 2, true, false, true},
        {"treatment", 4, true, false, false},
        {"pumping", 1, true, false, false},
        {NULL, 2, true, true, true},             /* system alarms belong */
        {NULL, 4, true, false, false},           /* ... within the priority */
        {"no-such-section", 1, true, false, false},
    };

    assert_int_equal(intake->n_sections, 1);
    assert_int_equal(intake->max_priority, 2);
    assert_int_equal(all->n_sections, 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct hmi_alarm_row a = {.alarm = "a", .section = cases[i].section,
                                  .priority = cases[i].priority,
                                  .status = "unack_active", .active = true};
        if (hmi_render_alarm_visible(proj, all, &a) != cases[i].in_all ||
            hmi_render_alarm_visible(proj, intake, &a) != cases[i].in_intake ||
            hmi_render_alarm_visible(proj, treat, &a) != cases[i].in_treatment)
            fail_msg("case %zu (%s, priority %d)", i,
                     cases[i].section ? cases[i].section : "system",
                     cases[i].priority);
    }
    /* Without a project nothing can be placed below a filtered list. */
    struct hmi_alarm_row a = {.alarm = "a", .section = "wells", .priority = 1};
    assert_false(hmi_render_alarm_visible(NULL, intake, &a));
    assert_true(hmi_render_alarm_visible(NULL, all, &a));
    assert_false(hmi_render_alarm_visible(proj, intake, NULL));
    assert_false(hmi_render_alarm_visible(proj, NULL, &a));
}

/* Many alarm rows of every kind, for the screens' alarm lists. */
static struct hmi_alarm_row *many_alarms(size_t n)
{
    static const char *const sections[] = {"wells", "raw-water", "filtration",
        "disinfection", "pumping", "network", NULL, "intake", "no-such"};
    static const char *const statuses[] = {"unack_active", "ack_active",
        "unack_rtn", "normal", "strange", NULL};
    struct hmi_alarm_row *v = calloc(n, sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++) {
        v[i] = (struct hmi_alarm_row){
            .alarm = i % 7 == 0 ? NULL : "some.alarm.name",
            .message = i % 5 == 0 ? NULL
                     : i % 11 == 0 ? "Invalid UTF-8 \xff\xfe here"
                     : "Filter 2: differential pressure high, backwash "
                       "needed soon, please check the blower as well",
            .section = sections[i % 9],
            .priority = (int)(i % 5),
            .status = statuses[i % 6],
            .active = i % 2 == 0,
            .changed_ms = i % 13 == 0 ? 0 : NOW_MS - (int64_t)i * 777777,
        };
    }
    return v;
}

static void test_alarm_list_clipped(void **state)
{
    (void)state;
    const struct vg_screen *s = screen("alarms");
    struct hmi_value *vals = values(HMI_Q_GOOD, 1);
    struct hmi_render_data d = data(vals);
    cairo_surface_t *none = render(s, &d);
    struct hmi_alarm_row *rows = many_alarms(600);
    d.alarms = rows;
    d.n_alarms = 600;
    cairo_surface_t *full = render(s, &d);

    size_t inside_diff = 0;
    for (int y = 0; y < s->height; y++) {
        for (int x = 0; x < s->width; x++) {
            bool inside = false;
            for (size_t i = 0; i < s->n_objects; i++) {
                const struct vg_screen_object *o = &s->objects[i];
                inside |= o->type == VG_OBJ_ALARM_LIST && x >= o->x &&
                          x < o->x + o->w && y >= o->y && y < o->y + o->h;
            }
            if (!inside && px(none, x, y) != px(full, x, y))
                fail_msg("pixel %d,%d changed outside the alarm lists", x, y);
            inside_diff += inside && px(none, x, y) != px(full, x, y);
        }
    }
    assert_true(inside_diff > 1000);
    /* An unacknowledged priority 1 row, blinking on. */
    assert_true(count_all(full, hmi_render_priority_color(1)) > 500);
    cairo_surface_destroy(none);
    cairo_surface_destroy(full);
    free(rows);
    free(vals);
}

/* First Y in column X between Y0 and Y1 of colour COL, or -1. */
static int first_y(cairo_surface_t *sf, int x, int y0, int y1, uint32_t col)
{
    for (int y = y0; y < y1; y++)
        if (px(sf, x, y) == col)
            return y;
    return -1;
}

static void test_alarm_list_order(void **state)
{
    (void)state;
    const struct vg_screen *s = screen("alarms");
    const struct vg_screen_object *o =
        &s->objects[nth_object(s, VG_OBJ_ALARM_LIST, 0)];
    uint32_t red = hmi_render_priority_color(1);
    uint32_t orange = hmi_render_priority_color(2);
    uint32_t blue = hmi_render_priority_color(4);
    /* Given newest first and acknowledged first, to be reordered. */
    struct hmi_alarm_row rows[] = {
        {.alarm = "a", .message = "A", .section = "network", .priority = 1,
         .status = "ack_active", .active = true, .changed_ms = NOW_MS - 1000},
        {.alarm = "b", .message = "B", .section = "wells", .priority = 2,
         .status = "unack_active", .active = true, .changed_ms = NOW_MS - 2000},
        {.alarm = "c", .message = "C", .section = "pumping", .priority = 1,
         .status = "unack_active", .active = true, .changed_ms = NOW_MS - 900000},
        {.alarm = "d", .message = "D", .section = NULL, .priority = 4,
         .status = "unack_active", .active = true, .changed_ms = NOW_MS - 5000},
        {.alarm = "e", .message = "E", .section = "wells", .priority = 1,
         .status = "normal", .shelved = true, .active = true,
         .changed_ms = NOW_MS},
    };
    struct hmi_render_data d = data(NULL);
    d.alarms = rows;
    d.n_alarms = sizeof rows / sizeof rows[0];
    int x = o->x + o->w / 2, y0 = o->y, y1 = o->y + o->h;

    /* Blink on (first half of the second): unacknowledged rows in full
     * priority colour, C (p1) above B (p2) above D (p4); the acknowledged
     * A is only tinted; the shelved E is not listed. */
    cairo_surface_t *on = render(s, &d);
    int yr = first_y(on, x, y0, y1, red);
    int yo = first_y(on, x, y0, y1, orange);
    int yb = first_y(on, x, y0, y1, blue);
    assert_true(yr > y0 && yo > yr && yb > yo);
    assert_int_equal(first_y(on, x, yo, y1, red), -1);
    assert_true(yb - yr < 60); /* three rows, nothing between */

    /* Blink off: no row in full colour. */
    d.now_ms = NOW_MS + 500;
    cairo_surface_t *off = render(s, &d);
    assert_int_equal(first_y(off, x, y0, y1, red), -1);
    assert_int_equal(first_y(off, x, y0, y1, orange), -1);

    /* Stale: no priority colour anywhere in the list, badges included. */
    d.now_ms = NOW_MS;
    d.stale = true;
    cairo_surface_t *stale = render(s, &d);
    assert_int_equal(count(stale, o->x, o->y, o->w, o->h, red), 0);
    assert_int_equal(count(stale, o->x, o->y, o->w, o->h, orange), 0);

    cairo_surface_destroy(on);
    cairo_surface_destroy(off);
    cairo_surface_destroy(stale);
}

/* ----------------------------------------------------------------- trend */

#define SERIES_COL 0x00c853u
#define TW 640
#define TH 300

static cairo_surface_t *trend(const struct hmi_trend_data *td, bool stale)
{
    cairo_surface_t *sf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, TW, TH);
    cairo_t *cr = cairo_create(sf);
    hmi_render_trend(cr, 10, 10, TW - 20, TH - 20, td, stale);
    assert_int_equal(cairo_status(cr), CAIRO_STATUS_SUCCESS);
    cairo_destroy(cr);
    cairo_surface_flush(sf);
    return sf;
}

/* The widest run of columns without the series colour between two columns
 * with it, below the legend. */
static int widest_gap(cairo_surface_t *sf, uint32_t col)
{
    int last = -1, widest = 0;
    for (int x = 0; x < TW; x++) {
        if (count(sf, x, 40, 1, TH - 40, col) == 0)
            continue;
        if (last >= 0 && x - last - 1 > widest)
            widest = x - last - 1;
        last = x;
    }
    return widest;
}

static void test_trend(void **state)
{
    (void)state;
    enum { N = 120 };
    int64_t t[N];
    double mn[N], mx[N], avg[N];
    for (int i = 0; i < N; i++) {
        t[i] = NOW_MS - 3600000 + (int64_t)i * 30000;
        avg[i] = 50 + 20 * sin(i / 10.0);
        mn[i] = avg[i] - 3;
        mx[i] = avg[i] + 3;
    }
    struct hmi_trend_series ser = {.label = "intake.raw.flow", .unit = "m\xc2\xb3/h",
                                   .color = SERIES_COL, .n = N, .t_ms = t,
                                   .min = mn, .max = mx, .avg = avg};
    struct hmi_trend_data td = {.series = &ser, .n_series = 1,
                                .from_ms = NOW_MS - 3600000, .to_ms = NOW_MS};

    /* Normal data: the average line in the series colour, no holes. */
    cairo_surface_t *sf = trend(&td, false);
    assert_true(count_all(sf, SERIES_COL) > 300);
    assert_true(widest_gap(sf, SERIES_COL) < 4);
    cairo_surface_destroy(sf);

    /* Stale: grey, not the series colour. */
    sf = trend(&td, true);
    assert_int_equal(count_all(sf, SERIES_COL), 0);
    cairo_surface_destroy(sf);

    /* A gap of NaN buckets breaks line and band. */
    for (int i = 40; i < 70; i++)
        mn[i] = mx[i] = avg[i] = NAN;
    sf = trend(&td, false);
    assert_true(count_all(sf, SERIES_COL) > 200);
    assert_true(widest_gap(sf, SERIES_COL) > 100);
    cairo_surface_destroy(sf);

    /* All values equal: a flat line, drawn. */
    for (int i = 0; i < N; i++)
        mn[i] = mx[i] = avg[i] = 7;
    sf = trend(&td, false);
    assert_true(count_all(sf, SERIES_COL) > 300);
    cairo_surface_destroy(sf);

    /* A single bucket: a dot. */
    ser.n = 1;
    sf = trend(&td, false);
    assert_true(count_all(sf, SERIES_COL) > 4);
    cairo_surface_destroy(sf);

    /* Lone buckets between NaN: dots too. */
    ser.n = N;
    for (int i = 0; i < N; i++)
        mn[i] = mx[i] = avg[i] = i % 2 ? NAN : i;
    sf = trend(&td, false);
    assert_true(count_all(sf, SERIES_COL) > 100);
    cairo_surface_destroy(sf);

    /* Empty series, with a message and without. */
    ser.n = 0;
    td.message = "loading\xe2\x80\xa6";
    sf = trend(&td, false);
    assert_int_equal(count(sf, 0, 40, TW, TH - 40, SERIES_COL), 0);
    cairo_surface_destroy(sf);
    td.n_series = 0;
    sf = trend(&td, false);
    cairo_surface_destroy(sf);
    td.message = NULL;

    /* Odd data: huge and non-finite values, no min/max, bad time axes. */
    ser.n = N;
    td.n_series = 1;
    for (int i = 0; i < N; i++) {
        avg[i] = i % 3 == 0 ? 1e308 : i % 3 == 1 ? -1e308 : INFINITY;
        mn[i] = -INFINITY;
        mx[i] = 1e300;
    }
    sf = trend(&td, false);
    cairo_surface_destroy(sf);
    ser.min = ser.max = NULL;
    td.from_ms = td.to_ms = NOW_MS;
    sf = trend(&td, false);
    cairo_surface_destroy(sf);
    td.from_ms = INT64_MAX;
    td.to_ms = INT64_MIN;
    sf = trend(&td, false);
    cairo_surface_destroy(sf);
    td.from_ms = INT64_MIN;
    td.to_ms = INT64_MAX;
    t[0] = INT64_MIN;
    t[1] = INT64_MAX;
    sf = trend(&td, false);
    cairo_surface_destroy(sf);
    td.from_ms = 0;
    td.to_ms = 40LL * 365 * 86400000; /* 40 years: yearly labels */
    sf = trend(&td, false);
    cairo_surface_destroy(sf);
    td.from_ms = NOW_MS;
    td.to_ms = NOW_MS + 10;           /* 10 ms */
    sf = trend(&td, false);
    cairo_surface_destroy(sf);

    /* Many series of many units, NULL labels and units, NULL arrays. */
    struct hmi_trend_series many[20];
    static const char *const units[] = {"m", "bar", NULL, "", "%", "A", "kW",
                                        "\xff bad"};
    for (int i = 0; i < 20; i++) {
        many[i] = (struct hmi_trend_series){
            .label = i % 4 ? "some.long.tag.name.for.the.legend" : NULL,
            .unit = units[i % 8], .color = 0x101010u * (unsigned)(i % 16),
            .n = i % 5 ? N : 3, .t_ms = i % 6 ? t : NULL,
            .min = i % 2 ? mn : NULL, .max = mx, .avg = i % 7 ? avg : NULL,
        };
    }
    for (int i = 0; i < N; i++) {
        t[i] = NOW_MS - 86400000 + (int64_t)i * 720000;
        mn[i] = i;
        mx[i] = i + 10;
        avg[i] = i + 5;
    }
    td = (struct hmi_trend_data){.series = many, .n_series = 20,
                                 .from_ms = NOW_MS - 86400000, .to_ms = NOW_MS,
                                 .message = "x"};
    sf = trend(&td, false);
    cairo_surface_destroy(sf);

    /* No data at all, and rectangles too small to hold a chart. */
    sf = trend(NULL, false);
    cairo_surface_destroy(sf);
    cairo_surface_t *tiny = cairo_image_surface_create(CAIRO_FORMAT_RGB24, 40, 40);
    cairo_t *cr = cairo_create(tiny);
    hmi_render_trend(cr, 0, 0, 30, 20, &td, false);
    hmi_render_trend(cr, 0, 0, 0, 0, &td, false);
    hmi_render_trend(cr, 0, 0, -5, NAN, &td, false);
    hmi_render_trend(cr, NAN, 0, 5, 5, &td, false);
    assert_int_equal(cairo_status(cr), CAIRO_STATUS_SUCCESS);
    cairo_destroy(cr);
    cairo_surface_destroy(tiny);
    hmi_render_trend(NULL, 0, 0, 10, 10, &td, false);
}

/* ----------------------------------------------------------- every screen */

static uint64_t rng = 0x9e3779b97f4a7c15u;

static double random01(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

/* Trend data for every other trend object, NULL for the rest. */
struct trend_fixture {
    int64_t t[50];
    double mn[50], mx[50], avg[50];
    struct hmi_trend_series series[8];
    struct hmi_trend_data td;
};

static const struct hmi_trend_data *trend_cb(void *ud, size_t object_index)
{
    struct trend_fixture *f = ud;
    return object_index % 2 ? NULL : &f->td;
}

static void test_every_screen(void **state)
{
    (void)state;
    static struct trend_fixture f;
    for (int i = 0; i < 50; i++) {
        f.t[i] = NOW_MS - 28800000 + (int64_t)i * 576000;
        f.avg[i] = i == 20 ? NAN : 3 + sin(i / 5.0);
        f.mn[i] = f.avg[i] - 0.5;
        f.mx[i] = f.avg[i] + 0.5;
    }
    for (int i = 0; i < 8; i++)
        f.series[i] = (struct hmi_trend_series){
            .label = proj->tags[i].name, .unit = proj->tags[i].unit,
            .color = hmi_render_priority_color(i % 5), .n = 50, .t_ms = f.t,
            .min = f.mn, .max = f.mx, .avg = f.avg};
    f.td = (struct hmi_trend_data){.series = f.series, .n_series = 8,
                                   .from_ms = NOW_MS - 28800000,
                                   .to_ms = NOW_MS};
    struct hmi_alarm_row *rows = many_alarms(50);
    struct hmi_value *vals = values(HMI_Q_NONE, 0);
    enum { NONE, GOOD, BAD, ODD, STALE, MODES };
    for (int mode = 0; mode < MODES; mode++) {
        for (size_t i = 0; i < proj->n_tags; i++) {
            double r = random01();
            switch (mode) {
            case NONE:
                vals[i] = (struct hmi_value){HMI_Q_NONE, 0, 0};
                break;
            case GOOD:
            case STALE:
                vals[i] = (struct hmi_value){HMI_Q_GOOD,
                    r < 0.3 ? (r < 0.15) : (r - 0.5) * 2000, NOW_MS};
                break;
            case BAD:
                vals[i] = (struct hmi_value){
                    r < 0.3 ? HMI_Q_BAD_COMM : r < 0.6 ? HMI_Q_BAD_VALUE
                    : r < 0.9 ? HMI_Q_PENDING : (enum hmi_quality)42, NAN, 0};
                break;
            case ODD: {
                static const double odd[] = {NAN, INFINITY, -INFINITY, 1e300,
                    -1e300, 1e-300, -0.0, 4294967295.0, -2147483649.0, 1e15};
                vals[i] = (struct hmi_value){HMI_Q_GOOD,
                    odd[(size_t)(r * 10) % 10], NOW_MS};
                break;
            }
            }
        }
        for (size_t si = 0; si < proj->n_screens; si++) {
            const struct vg_screen *s = &proj->screens[si];
            struct hmi_render_data d = data(vals);
            d.stale = mode == STALE;
            d.alarms = rows;
            d.n_alarms = 50;
            d.trend = trend_cb;
            d.ud = &f;
            d.lang = (int)si % 3 - 1; /* -1, 0, 1: fallback and German */
            d.pressed = (int)(si * 7 % (s->n_objects + 1)) - 1;
            d.focused = (int)(si * 13 % (s->n_objects + 1)) - 1;
            d.now_ms = NOW_MS + mode * 250;
            cairo_surface_t *sf = render(s, &d);
            int x, y;
            if (empty_spot(s, &x, &y))
                assert_int_equal(px(sf, x, y), s->background);
            if (mode == STALE)
                assert_int_equal(count_all(sf, GREEN_ON), 0);
            cairo_surface_destroy(sf);
        }
    }
    free(vals);
    free(rows);
}

/* A screen of broken objects: unresolved and out-of-range references,
 * NULL strings and lists, degenerate sizes; with the waterworks project,
 * without one, and without any data. */
static void test_broken_objects(void **state)
{
    (void)state;
    struct vg_point pts[] = {{10, 10}, {10, 10}, {300, 190}};
    struct vg_ref bad_refs[] = {{.name = NULL, .index = -1},
                                {.name = "x", .index = 1 << 30},
                                {.name = "wells", .index = -1}};
    struct vg_screen_object objs[VG_OBJ_TYPE_COUNT * 3 + 1];
    size_t n = 0;
    for (int variant = 0; variant < 3; variant++) {
        for (int t = 0; t < VG_OBJ_TYPE_COUNT; t++) {
            struct vg_screen_object *o = &objs[n++];
            memset(o, 0, sizeof *o);
            o->type = (enum vg_obj_type)t;
            o->x = variant == 2 ? -50 : 20;
            o->y = 20;
            o->w = variant == 1 ? 1 : variant == 2 ? 0 : 200;
            o->h = variant == 1 ? 1 : 100;
            o->tag = bad_refs[variant];
            o->format = variant == 1 ? "%s%s%n" : NULL;
            o->font_size = variant == 0 ? 0 : variant == 1 ? NAN : 1e9;
            o->line_width = variant == 1 ? -1 : variant == 2 ? 1e9 : 0;
            o->points = variant == 0 ? NULL : pts;
            o->n_points = variant == 2 ? 1 : 3;
            o->tags = variant == 0 ? NULL : bad_refs;
            o->n_tags = 3;
            o->sections = variant == 0 ? NULL : bad_refs;
            o->n_sections = variant == 0 ? 2 : 3;
            o->span_s = variant == 1 ? 0 : 4000000000u;
            o->has_range = variant == 1;
            o->min = 5;
            o->max = 5;
            o->max_priority = variant - 1;
        }
    }
    objs[n++] = (struct vg_screen_object){.type = (enum vg_obj_type)77,
                                          .w = 10, .h = 10};
    struct vg_screen s = {.name = "broken", .width = 320, .height = 200,
                          .background = 0x123456, .objects = objs,
                          .n_objects = n};
    struct hmi_alarm_row *rows = many_alarms(30);
    struct hmi_value *vals = values(HMI_Q_GOOD, 1);
    struct hmi_render_data d = data(vals);
    d.alarms = rows;
    d.n_alarms = 30;
    d.pressed = 4;
    d.focused = 1000;
    cairo_surface_t *sf = render(&s, &d);
    assert_int_equal(px(sf, 319, 199), 0x123456);
    cairo_surface_destroy(sf);
    d.project = NULL;
    sf = render(&s, &d);
    cairo_surface_destroy(sf);
    d.values = NULL;
    d.alarms = NULL;
    d.lang = 99;
    d.now_ms = INT64_MIN;
    sf = render(&s, &d);
    cairo_surface_destroy(sf);
    d.now_ms = INT64_MAX;
    d.alarms = rows;
    sf = render(&s, &d);
    cairo_surface_destroy(sf);
    sf = render(&s, NULL);
    assert_int_equal(px(sf, 319, 199), 0x123456);
    cairo_surface_destroy(sf);
    s.objects = NULL;
    sf = render(&s, NULL);
    cairo_surface_destroy(sf);
    hmi_render_screen(NULL, &s, NULL);
    free(vals);
    free(rows);
}

/* ------------------------------------------------------------------ main */

static int setup(void **state)
{
    (void)state;
    setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3", 1);
    tzset();
    proj = load_waterworks();
    return proj != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    vg_project_free(proj);
    /* Free fontconfig's configuration (288 bytes LeakSanitizer would
     * report at exit), so the sanitizer run keeps leak detection on for the
     * code under test. Pango's font map goes first: it holds cairo fonts,
     * and cairo_debug_reset_static_data() asserts that none is alive. */
    pango_cairo_font_map_set_default(NULL);
    cairo_debug_reset_static_data();
    FcFini();
    return 0;
}

int main(int argc, char **argv)
{
    static const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_priority_color),
        cmocka_unit_test(test_value_text),
        cmocka_unit_test(test_background),
        cmocka_unit_test(test_tank),
        cmocka_unit_test(test_lamp),
        cmocka_unit_test(test_value_quality),
        cmocka_unit_test(test_stale),
        cmocka_unit_test(test_hit),
        cmocka_unit_test(test_alarm_visible),
        cmocka_unit_test(test_alarm_list_clipped),
        cmocka_unit_test(test_alarm_list_order),
        cmocka_unit_test(test_trend),
        cmocka_unit_test(test_every_screen),
        cmocka_unit_test(test_broken_objects),
    };
    if (argc < 2) {
        fprintf(stderr, "usage: %s WATERWORKS_DIR\n", argv[0]);
        return 2;
    }
    waterworks_dir = argv[1];
    return cmocka_run_group_tests_name("hmi-render", tests, setup, teardown);
}
