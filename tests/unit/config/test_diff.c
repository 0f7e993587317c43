/* Unit tests for vg_project_diff (config/diff.c). Projects are parsed from
 * in-memory files with vg_project_parse, as vigilctl does, and must be
 * valid; each test changes a few lines and checks the exact text: per
 * collection the counts, the added and removed names, and for a changed
 * object exactly the fields that differ (texts by language, so reordering
 * the languages changes no text). Also: screen objects matched around an
 * insertion, long lists cut, and 100 000 tags per side diffed by name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../../config/internal.h"

/* ---- a small valid project -------------------------------------------- */

static const char base_yaml[] =
    "project: waterworks\n"
    "version: \"2.3\"\n"
    "title: {en: Nordtal Waterworks, de: Wasserwerk Nordtal}\n"
    "languages: [en, de]\n"
    "sections:\n"
    "  - name: intake\n"
    "    title: {en: Intake, de: Entnahme}\n"
    "    children:\n"
    "      - name: wells\n"
    "        title: {en: Wells, de: Brunnen}\n"
    "  - name: treatment\n"
    "    title: {en: Treatment, de: Aufbereitung}\n"
    "plcs:\n"
    "  - name: plc1\n"
    "    host: 127.0.0.1\n"
    "    port: 5020\n"
    "stations:\n"
    "  - name: control-room\n"
    "    title: {en: Control room, de: Leitwarte}\n"
    "    start_screen: overview\n"
    "    language: de\n"
    "    toolbars: [navigation, alarms]\n"
    "    navigation_keys: {F1: overview}\n"
    "    blocked_keys: [Alt+F4]\n"
    "roles:\n"
    "  - name: operator\n"
    "    title: {en: Operator, de: Bediener}\n"
    "    grants:\n"
    "      - functions: [view, operate]\n"
    "        sections: [intake]\n"
    "reports:\n"
    "  - name: daily\n"
    "    title: {en: Daily flows, de: Tagesdurchfl\xc3\xbcsse}\n"
    "    kind: tags\n"
    "    tags: [intake.flow]\n"
    "    range: 1d\n"
    "    format: pdf\n";

static const char base_tags[] =
    "name,section,plc,address,type,unit,deadband,description_en,"
    "description_de\n"
    "intake.flow,intake,plc1,hr:0,float32,m3/h,0.5,Flow,Durchfluss\n"
    "intake.level,wells,plc1,hr:2,int16,m,0,Level,Pegel\n"
    "intake.pump,intake,plc1,co:0,bool,,0,Pump running,Pumpe l\xc3\xa4uft\n"
    "old.tag,treatment,plc1,hr:10,int16,,0,Old,Alt\n";

static const char base_alarms[] =
    "name,tag,kind,limit,on_delay,priority,message_en,message_de\n"
    "flow.high,intake.flow,high,100,2,high,Flow high,Durchfluss hoch\n"
    "pump.off,intake.pump,digital_off,,,low,Pump off,Pumpe aus\n";

static const char base_screen[] =
    "title: {en: Overview, de: \xc3\x9c" "bersicht}\n"
    "size: [1280, 800]\n"
    "background: \"#1d2329\"\n"
    "objects:\n"
    "  - {type: text, at: [20, 16], text: {en: Intake, de: Entnahme}}\n"
    "  - {type: value, at: [40, 80], size: [120, 28], tag: intake.flow}\n"
    "  - {type: lamp, at: [260, 80], size: [20, 20], tag: intake.pump}\n"
    "  - {type: bar, at: [200, 60], size: [24, 160], tag: intake.level, "
    "min: 0, max: 12}\n";

/* The four files, each replaceable. */
struct files {
    const char *yaml, *tags, *alarms, *screen;
};

static const struct files base = {base_yaml, base_tags, base_alarms,
                                  base_screen};

static void add(struct vg_project_files *fs, const char *path, const char *s)
{
    assert_int_equal(vg_project_files_add(fs, path, s, strlen(s)), VG_OK);
}

/* Parse F; it must be valid (the diff of broken projects is tested apart). */
static struct vg_project *parse(const struct files *f)
{
    struct vg_project_files fs = {0};
    add(&fs, "project.yaml", f->yaml);
    add(&fs, "tags.csv", f->tags);
    add(&fs, "alarms.csv", f->alarms);
    add(&fs, "screens/overview.yaml", f->screen);
    struct vg_diags d;
    vg_diags_init(&d);
    struct vg_project *p = vg_project_parse(&fs, &d);
    assert_non_null(p);
    if (d.n > 0) {
        char line[600];
        for (size_t i = 0; i < d.n; i++) {
            vg_diag_format(&d.v[i], line, sizeof line);
            print_message("  %s\n", line);
        }
        fail_msg("the test project does not validate");
    }
    vg_diags_free(&d);
    vg_project_files_free(&fs);
    return p;
}

/* S with FROM (which must occur exactly once) replaced by TO; malloc'd. */
static char *edit(const char *s, const char *from, const char *to)
{
    const char *at = strstr(s, from);
    if (at == NULL || strstr(at + 1, from) != NULL)
        fail_msg("'%s' does not occur exactly once", from);
    size_t n = strlen(s) - strlen(from) + strlen(to);
    char *out = malloc(n + 1);
    assert_non_null(out);
    size_t pre = (size_t)(at - s);
    memcpy(out, s, pre);
    strcpy(out + pre, to);
    strcat(out, at + strlen(from));
    return out;
}

/* Diff BASE against F and compare with EXPECTED, exactly. */
static void expect_diff(const struct files *f, const char *expected)
{
    struct vg_project *a = parse(&base), *b = parse(f);
    char *text = (char *)"unset";
    assert_int_equal(vg_project_diff(a, b, &text), VG_OK);
    assert_non_null(text);
    if (strcmp(text, expected) != 0) {
        print_error("got:\n%s\nexpected:\n%s\n", text, expected);
        fail();
    }
    free(text);
    vg_project_free(a);
    vg_project_free(b);
}

/* ---- tests ------------------------------------------------------------ */

static void test_no_differences(void **state)
{
    (void)state;
    expect_diff(&base, "no differences\n");
    /* Positions are no difference: the same project with comments and
     * blank lines moving every row. */
    char *tags = edit(base_tags, "intake.level,",
                      "# the wells\n\n  intake.level,");
    char *yaml = edit(base_yaml, "plcs:\n", "# PLCs\nplcs:\n");
    struct files f = {yaml, tags, base_alarms, base_screen};
    expect_diff(&f, "no differences\n");
    free(tags);
    free(yaml);
}

static void test_tags(void **state)
{
    (void)state;
    char *t1 = edit(base_tags, "m3/h,0.5,", "m\xc2\xb3/h,1,");
    char *t2 = edit(t1, "old.tag,treatment,plc1,hr:10,int16,,0,Old,Alt\n",
                    "intake.new,treatment,plc1,hr:20,uint32,,0,New,Neu\n");
    char *t3 = edit(t2, "intake.level,wells,plc1,hr:2,int16,m,0,Level,Pegel",
                    "intake.level,intake,plc1,ir:3,uint16,cm,0,Level,"
                    "F\xc3\xbcllstand");
    struct files f = {base_yaml, t3, base_alarms, base_screen};
    expect_diff(&f,
                "tags: 1 added, 1 removed, 2 changed\n"
                "  + intake.new\n"
                "  - old.tag\n"
                "  ~ intake.flow: unit 'm3/h' -> 'm\xc2\xb3/h'; "
                "deadband 0.5 -> 1\n"
                "  ~ intake.level: section wells -> intake; "
                "address hr:2 -> ir:3; type int16 -> uint16; "
                "unit 'm' -> 'cm'; description.de 'Pegel' -> "
                "'F\xc3\xbcllstand'\n");
    free(t1);
    free(t2);
    free(t3);
}

static void test_tag_scaling_limits_archive(void **state)
{
    (void)state;
    char *t = edit(base_tags,
                   "name,section,plc,address,type,unit,deadband,",
                   "name,section,plc,address,type,unit,deadband,raw_min,"
                   "raw_max,eng_min,eng_max,writable,min,max,archive,"
                   "word_order,");
    char *t1 = edit(t, "m3/h,0.5,", "m3/h,0.5,0,27648,0,250,yes,0,200,"
                                    "cyclic:60,little,");
    char *t2 = edit(t1, "int16,m,0,", "int16,m,0,,,,,,,,change,,");
    char *t3 = edit(t2, "bool,,0,", "bool,,0,,,,,,,,,,");
    char *t4 = edit(t3, "int16,,0,Old", "int16,,0,,,,,,,,,,Old");
    struct files f = {base_yaml, t4, base_alarms, base_screen};
    expect_diff(&f,
                "tags: 2 changed\n"
                "  ~ intake.flow: word_order big -> little; "
                "scaling none -> 0..27648 => 0..250; archive none -> "
                "cyclic:60; writable no -> yes; limits none -> 0..200\n"
                "  ~ intake.level: archive none -> change\n");
    free(t);
    free(t1);
    free(t2);
    free(t3);
    free(t4);
}

static char *concat(const char *a, const char *b)
{
    char *out = malloc(strlen(a) + strlen(b) + 1);
    assert_non_null(out);
    strcpy(out, a);
    strcat(out, b);
    return out;
}

static void test_archives_and_retention(void **state)
{
    (void)state;
    char *ya = concat(base_yaml, "archives:\n"
                                 "  - name: fast\n    retention: 7d\n"
                                 "  - name: slow\n    retention: 90d\n"
                                 "    default: true\n");
    char *yb = concat(base_yaml, "archives:\n"
                                 "  - name: fast\n    retention: 2d\n"
                                 "  - name: long\n    retention: forever\n"
                                 "retention: {alarm_journal: 365d}\n");
    char *t = edit(base_tags, "name,section,plc,address,type,unit,deadband,",
                   "name,section,plc,address,type,unit,deadband,archive,"
                   "archive_in,");
    char *t1 = edit(t, "m3/h,0.5,", "m3/h,0.5,change,fast,");
    char *t2 = edit(t1, "int16,m,0,", "int16,m,0,,,");
    char *t3 = edit(t2, "bool,,0,", "bool,,0,,,");
    char *ta = edit(t3, "int16,,0,Old", "int16,,0,,,Old");
    char *tb = edit(ta, "change,fast,", "change,long,");
    struct files fa = {ya, ta, base_alarms, base_screen};
    struct files fb = {yb, tb, base_alarms, base_screen};
    struct vg_project *a = parse(&fa), *b = parse(&fb);
    char *text = NULL;
    assert_int_equal(vg_project_diff(a, b, &text), VG_OK);
    const char *expected =
        "project: alarm journal retention forever -> 365d\n"
        "tags: 1 changed\n"
        "  ~ intake.flow: archive_in fast -> long\n"
        "archives: 1 added, 1 removed, 1 changed\n"
        "  + long\n"
        "  - slow\n"
        "  ~ fast: retention 7d -> 2d\n";
    if (strcmp(text, expected) != 0) {
        print_error("got:\n%s\nexpected:\n%s\n", text, expected);
        fail();
    }
    free(text);
    vg_project_free(a);
    vg_project_free(b);
    free(ya);
    free(yb);
    free(t);
    free(t1);
    free(t2);
    free(t3);
    free(ta);
    free(tb);
}

static void test_project_and_sections(void **state)
{
    (void)state;
    char *y1 = edit(base_yaml, "version: \"2.3\"", "version: \"2.4\"");
    /* Reordered languages: the texts are matched by code, so no text
     * changes because of it. */
    char *y2 = edit(y1, "languages: [en, de]", "languages: [de, en]");
    char *y3 = edit(y2, "title: {en: Nordtal Waterworks, de: Wasserwerk "
                        "Nordtal}",
                    "title: {en: Nordtal Water Works, de: Wasserwerk "
                    "Nordtal}");
    /* wells moves from intake to treatment; a section is added. */
    char *y4 = edit(y3,
                    "    children:\n"
                    "      - name: wells\n"
                    "        title: {en: Wells, de: Brunnen}\n"
                    "  - name: treatment\n"
                    "    title: {en: Treatment, de: Aufbereitung}\n",
                    "  - name: treatment\n"
                    "    title: {en: Treatment, de: Aufbereitung}\n"
                    "    children:\n"
                    "      - name: wells\n"
                    "        title: {en: Wells, de: Brunnen}\n"
                    "      - name: filters\n"
                    "        title: {en: Filters, de: Filter}\n");
    char *y5 = edit(y4, "    port: 5020\n",
                    "    port: 5021\n    unit_id: 3\n"
                    "    poll_interval: 500ms\n"
                    "    fencing_register: 9000\n");
    struct files f = {y5, base_tags, base_alarms, base_screen};
    expect_diff(&f,
                "project: label '2.3' -> '2.4'; title.en 'Nordtal "
                "Waterworks' -> 'Nordtal Water Works'; languages en, de -> "
                "de, en\n"
                "sections: 1 added, 1 changed\n"
                "  + filters\n"
                "  ~ wells: parent intake -> treatment\n"
                "plcs: 1 changed\n"
                "  ~ plc1: port 5020 -> 5021; unit_id 1 -> 3; "
                "poll_interval 1s -> 500ms; fencing_register none -> 9000\n");
    free(y1);
    free(y2);
    free(y3);
    free(y4);
    free(y5);
}

static void test_alarms(void **state)
{
    (void)state;
    char *a1 = edit(base_alarms, "high,100,2,high,Flow high",
                    "high_high,120,0.5,critical,Flow very high");
    char *a2 = edit(a1, "name,tag,kind,limit,on_delay,priority,",
                    "name,tag,kind,limit,on_delay,priority,section,");
    char *a3 = edit(a2, "critical,", "critical,,");
    char *a4 = edit(a3, "low,Pump off", "low,treatment,Pump off");
    struct files f = {base_yaml, base_tags, a4, base_screen};
    expect_diff(&f,
                "alarms: 2 changed\n"
                "  ~ flow.high: kind high -> high_high; limit 100 -> 120; "
                "on_delay 2s -> 0.5s; priority high -> critical; "
                "message.en 'Flow high' -> 'Flow very high'\n"
                "  ~ pump.off: section (the tag's) -> treatment\n");
    free(a1);
    free(a2);
    free(a3);
    free(a4);
}

static void test_screen_objects(void **state)
{
    (void)state;
    /* One object inserted at the top and one changed further down: the
     * equal objects around them are matched past the insertion. */
    char *s1 = edit(base_screen, "objects:\n",
                    "objects:\n"
                    "  - {type: rect, at: [10, 10], size: [400, 300]}\n"
                    "  - {type: rect, at: [10, 400], size: [400, 300]}\n");
    char *s2 = edit(s1, "size: [20, 20], tag: intake.pump}",
                    "size: [24, 24], tag: intake.pump}");
    char *s3 = edit(s2, "size: [1280, 800]", "size: [1600, 900]");
    char *s4 = edit(s3, "de: \xc3\x9c" "bersicht}", "de: Gesamtansicht}");
    struct files f = {base_yaml, base_tags, base_alarms, s4};
    expect_diff(&f,
                "screens: 1 changed\n"
                "  ~ overview: title.de '\xc3\x9c" "bersicht' -> "
                "'Gesamtansicht'; size 1280x800 -> 1600x900; 2 objects "
                "added; object 5 changed\n");

    /* Removing the first object is one object removed, not four changed. */
    char *r = edit(base_screen,
                   "  - {type: text, at: [20, 16], text: {en: Intake, de: "
                   "Entnahme}}\n",
                   "");
    struct files g = {base_yaml, base_tags, base_alarms, r};
    expect_diff(&g, "screens: 1 changed\n"
                    "  ~ overview: 1 object removed\n");

    /* A text in an object is compared by language. */
    char *t = edit(base_screen, "de: Entnahme}}", "de: Wasserentnahme}}");
    struct files h = {base_yaml, base_tags, base_alarms, t};
    expect_diff(&h, "screens: 1 changed\n"
                    "  ~ overview: object 1 changed\n");
    free(s1);
    free(s2);
    free(s3);
    free(s4);
    free(r);
    free(t);
}

static void test_stations_roles_reports(void **state)
{
    (void)state;
    char *y1 = edit(base_yaml, "toolbars: [navigation, alarms]",
                    "toolbars: [navigation, alarms, status]");
    char *y2 = edit(y1, "navigation_keys: {F1: overview}",
                    "navigation_keys: {F2: overview}");
    char *y3 = edit(y2, "blocked_keys: [Alt+F4]",
                    "blocked_keys: [Alt+F4, Ctrl+Q]\n"
                    "    window: {width: 1600, height: 900, fullscreen: "
                    "true}");
    char *y4 = edit(y3, "      - functions: [view, operate]\n"
                        "        sections: [intake]\n",
                    "      - functions: [view]\n"
                    "      - functions: [view, operate, acknowledge]\n"
                    "        sections: [intake]\n");
    char *y5 = edit(y4, "    tags: [intake.flow]\n",
                    "    tags: [intake.level, intake.flow]\n");
    char *y6 = edit(y5, "range: 1d\n    format: pdf",
                    "range: 12h\n    format: csv");
    struct files f = {y6, base_tags, base_alarms, base_screen};
    expect_diff(&f,
                "stations: 1 changed\n"
                "  ~ control-room: toolbars +status; navigation_keys "
                "-F1=overview, +F2=overview; blocked_keys +Ctrl+Q; window "
                "1280x800 -> 1600x900; fullscreen no -> yes\n"
                "roles: 1 changed\n"
                "  ~ operator: grant 1 view, operate in intake at every "
                "station -> view in every section at every station; "
                "grant 2 (none) -> view, operate, acknowledge in intake at "
                "every station\n"
                "reports: 1 changed\n"
                "  ~ daily: tags +intake.level; range 1d -> 12h; format pdf -> "
                "csv\n");
    free(y1);
    free(y2);
    free(y3);
    free(y4);
    free(y5);
    free(y6);
}

static void test_order_only(void **state)
{
    (void)state;
    char *y = edit(base_yaml, "    tags: [intake.flow]\n",
                   "    tags: [intake.flow, intake.level]\n");
    char *y2 = edit(base_yaml, "    tags: [intake.flow]\n",
                    "    tags: [intake.level, intake.flow]\n");
    struct files f = {y, base_tags, base_alarms, base_screen};
    struct files g = {y2, base_tags, base_alarms, base_screen};
    struct vg_project *a = parse(&f), *b = parse(&g);
    char *text;
    assert_int_equal(vg_project_diff(a, b, &text), VG_OK);
    assert_string_equal(text, "reports: 1 changed\n"
                              "  ~ daily: tags reordered\n");
    free(text);
    vg_project_free(a);
    vg_project_free(b);
    free(y);
    free(y2);
}

/* ---- hand-made projects: sizes no test file should have -------------- */

static struct vg_project *tag_project(size_t n, const char *prefix)
{
    struct vg_project *p = calloc(1, sizeof *p);
    assert_non_null(p);
    p->languages[0] = vg_cfg_strdup("en");
    p->n_languages = 1;
    char name[64];
    for (size_t i = 0; i < n; i++) {
        struct vg_tag *t = vg_cfg_push(&p->tags, &p->n_tags, sizeof *t);
        assert_non_null(t);
        snprintf(name, sizeof name, "%s%zu", prefix, i);
        t->name = vg_cfg_strdup(name);
        t->section.name = vg_cfg_strdup("s");
        t->plc.name = vg_cfg_strdup("p");
        t->unit = vg_cfg_strdup("");
        t->type = VG_DT_INT16;
        t->kind = VG_REG_HOLDING;
        t->offset = (uint32_t)(i % 65536);
        t->description.s[0] = vg_cfg_strdup("d");
    }
    return p;
}

static void test_long_lists_are_cut(void **state)
{
    (void)state;
    struct vg_project *a = tag_project(10, "t"), *b = tag_project(70, "t");
    char *text;
    assert_int_equal(vg_project_diff(a, b, &text), VG_OK);
    /* 60 added: 50 shown, then the rest counted. */
    assert_non_null(strstr(text, "tags: 60 added\n  + t10\n  + t11\n"));
    assert_non_null(strstr(text, "\n  \xe2\x80\xa6 and 10 more\n"));
    size_t lines = 0;
    for (const char *s = text; *s; s++)
        lines += *s == '\n';
    assert_int_equal(lines, 1 + 50 + 1);
    free(text);
    vg_project_free(a);
    vg_project_free(b);
}

static void test_many_tags(void **state)
{
    (void)state;
    /* 100 000 tags a side, listed in opposite orders, one of them changed:
     * pairing by name has to be done by sorting (a pairwise search would
     * take 10^10 comparisons and time out). */
    size_t n = 100000;
    struct vg_project *a = tag_project(n, "tag."), *b = tag_project(n, "tag.");
    for (size_t i = 0; i < n / 2; i++) {
        struct vg_tag t = b->tags[i];
        b->tags[i] = b->tags[n - 1 - i];
        b->tags[n - 1 - i] = t;
    }
    free(b->tags[0].unit);
    b->tags[0].unit = vg_cfg_strdup("bar"); /* tag.99999 */
    char *text;
    assert_int_equal(vg_project_diff(a, b, &text), VG_OK);
    assert_string_equal(text, "tags: 1 changed\n"
                              "  ~ tag.99999: unit '' -> 'bar'\n");
    free(text);
    vg_project_free(a);
    vg_project_free(b);
}

static struct vg_project *screen_project(size_t n_objects)
{
    struct vg_project *p = calloc(1, sizeof *p);
    assert_non_null(p);
    p->languages[0] = vg_cfg_strdup("en");
    p->n_languages = 1;
    struct vg_screen *s = vg_cfg_push(&p->screens, &p->n_screens, sizeof *s);
    assert_non_null(s);
    s->name = vg_cfg_strdup("main");
    s->width = 1280;
    s->height = 800;
    for (size_t i = 0; i < n_objects; i++) {
        struct vg_screen_object *o =
            vg_cfg_push(&s->objects, &s->n_objects, sizeof *o);
        assert_non_null(o);
        o->type = VG_OBJ_RECT;
        o->x = (int)i * 10;
        o->w = o->h = 5;
    }
    return p;
}

static void test_screens_without_objects(void **state)
{
    (void)state;
    /* No objects on either side (no arrays at all), then some added. */
    struct vg_project *a = screen_project(0), *b = screen_project(0);
    struct vg_project *c = screen_project(2);
    char *text;
    assert_int_equal(vg_project_diff(a, b, &text), VG_OK);
    assert_string_equal(text, "no differences\n");
    free(text);
    assert_int_equal(vg_project_diff(a, c, &text), VG_OK);
    assert_string_equal(text, "screens: 1 changed\n"
                              "  ~ main: 2 objects added\n");
    free(text);
    assert_int_equal(vg_project_diff(c, a, &text), VG_OK);
    assert_string_equal(text, "screens: 1 changed\n"
                              "  ~ main: 2 objects removed\n");
    free(text);
    vg_project_free(a);
    vg_project_free(b);
    vg_project_free(c);
}

static void test_duplicate_names(void **state)
{
    (void)state;
    /* A project with errors may have duplicates; they pair up in order. */
    struct vg_project *a = tag_project(3, "t"), *b = tag_project(3, "t");
    free(b->tags[2].name);
    b->tags[2].name = vg_cfg_strdup("t1");
    free(a->tags[1].name);
    a->tags[1].name = NULL;
    char *text;
    assert_int_equal(vg_project_diff(a, b, &text), VG_OK);
    assert_string_equal(text, "tags: 2 added, 2 removed\n"
                              "  + t1\n"
                              "  + t1\n"
                              "  - (none)\n"
                              "  - t2\n");
    free(text);
    vg_project_free(a);
    vg_project_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_differences),
        cmocka_unit_test(test_tags),
        cmocka_unit_test(test_tag_scaling_limits_archive),
        cmocka_unit_test(test_archives_and_retention),
        cmocka_unit_test(test_project_and_sections),
        cmocka_unit_test(test_alarms),
        cmocka_unit_test(test_screen_objects),
        cmocka_unit_test(test_stations_roles_reports),
        cmocka_unit_test(test_order_only),
        cmocka_unit_test(test_long_lists_are_cut),
        cmocka_unit_test(test_many_tags),
        cmocka_unit_test(test_screens_without_objects),
        cmocka_unit_test(test_duplicate_names),
    };
    return cmocka_run_group_tests_name("config diff", tests, NULL, NULL);
}
