/* Unit tests for parsing and validating whole projects (config/project.h):
 * a small valid project parses with every value where FORMAT.md says, and
 * each of many single mistakes, made by one text replacement in that
 * project, yields exactly one error at the expected file, line and column.
 * Also: bundles (pack/unpack/digest) and their rejection of hostile input,
 * YAML syntax errors and aliases, and diagnostics ordering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../../config/project.h"

static const char project_yaml[] =
    "project: mini\n"                                          /* 1 */
    "version: \"1.0\"\n"                                       /* 2 */
    "title: {en: Mini plant, de: Mini-Anlage}\n"               /* 3 */
    "languages: [en, de]\n"                                    /* 4 */
    "sections:\n"                                              /* 5 */
    "  - name: area1\n"                                        /* 6 */
    "    title: {en: Area 1, de: Bereich 1}\n"                 /* 7 */
    "    children:\n"                                          /* 8 */
    "      - name: sub1\n"                                     /* 9 */
    "        title: {en: Sub 1, de: Unter 1}\n"                /* 10 */
    "plcs:\n"                                                  /* 11 */
    "  - name: plc1\n"                                         /* 12 */
    "    host: 127.0.0.1\n"                                    /* 13 */
    "    port: 5020\n"                                         /* 14 */
    "    poll_interval: 500ms\n"                               /* 15 */
    "    fencing_register: 9000\n"                             /* 16 */
    "  - name: plc2\n"                                         /* 17 */
    "    host: 127.0.0.1\n"                                    /* 18 */
    "    port: 5021\n"                                         /* 19 */
    "stations:\n"                                              /* 20 */
    "  - name: st1\n"                                          /* 21 */
    "    title: {en: Station, de: Station}\n"                  /* 22 */
    "    start_screen: main\n"                                 /* 23 */
    "    language: de\n"                                       /* 24 */
    "    toolbars: [navigation, alarms]\n"                     /* 25 */
    "    navigation_keys: {F1: main, Ctrl+F2: other}\n"        /* 26 */
    "    window: {width: 1024, height: 768, fullscreen: true}\n" /* 27 */
    "    blocked_keys: [Alt+F4, Ctrl+Q]\n"                     /* 28 */
    "roles:\n"                                                 /* 29 */
    "  - name: op\n"                                           /* 30 */
    "    title: {en: Operator, de: Bediener}\n"                /* 31 */
    "    grants:\n"                                            /* 32 */
    "      - functions: [view, operate, acknowledge]\n"        /* 33 */
    "        sections: [area1]\n"                              /* 34 */
    "        stations: [st1]\n"                                /* 35 */
    "reports:\n"                                               /* 36 */
    "  - name: r1\n"                                           /* 37 */
    "    title: {en: Levels, de: Pegel}\n"                     /* 38 */
    "    kind: tags\n"                                         /* 39 */
    "    tags: [level]\n"                                      /* 40 */
    "    range: 7d\n";                                         /* 41 */

static const char tags_csv[] =
    "# process tags\n"
    "name,section,plc,address,type,word_order,raw_min,raw_max,eng_min,eng_max,"
    "unit,deadband,archive,writable,min,max,description_en,description_de\n"
    "level,area1,plc1,hr:0,float32,little,,,,,m,0.01,change,no,,,\"Level, tank\",F\xc3\xbcllstand\n"
    "pump,sub1,plc1,co:0,bool,,,,,,,,none,yes,,,Pump,Pumpe\n"
    "sp,sub1,plc1,hr:2,int16,,0,27648,0,100,%,0,cyclic:10,yes,0,90,Setpoint,Sollwert\n"
    "flow,sub1,plc2,ir:0,uint16,,,,,,m3/h,0,none,no,,,Flow,Durchfluss\n"
    "fault,sub1,plc2,di:5,bool,,,,,,,,none,no,,,Fault,St\xc3\xb6rung\n";

static const char alarms_csv[] =
    "name,tag,kind,limit,hysteresis,on_delay,off_delay,priority,section,"
    "reference,message_en,message_de\n"
    "lvl_hh,level,high_high,8,0.1,2,0,critical,,,Level very high,Pegel sehr hoch\n"
    "lvl_hi,level,high,5,0.1,2,0,high,,,Level high,Pegel hoch\n"
    "pump_fault,fault,digital_on,,,,,medium,area1,,Pump fault,Pumpenst\xc3\xb6rung\n"
    "sp_dev,flow,deviation,10,1,5,,low,,sp,Flow off setpoint,Durchfluss weicht ab\n";

static const char main_yaml[] =
    "title: {en: Main, de: Haupt}\n"                                    /* 1 */
    "size: [1280, 800]\n"                                               /* 2 */
    "background: \"#102030\"\n"                                         /* 3 */
    "objects:\n"                                                        /* 4 */
    "  - {type: text, at: [10, 10], text: {en: Hello, de: Hallo}}\n"    /* 5 */
    "  - {type: value, at: [10, 40], size: [100, 20], tag: level, format: \"%.2f\"}\n" /* 6 */
    "  - {type: lamp, at: [10, 70], size: [20, 20], tag: pump}\n"       /* 7 */
    "  - {type: button, at: [10, 100], size: [80, 30], text: {en: On, de: Ein}, write: {tag: pump, value: 1}}\n" /* 8 */
    "  - {type: setpoint, at: [10, 140], size: [80, 30], tag: sp}\n"    /* 9 */
    "  - {type: line, points: [[0, 0], [100, 100]]}\n"                  /* 10 */
    "  - {type: tank, at: [300, 100], size: [100, 200], tag: level, min: 0, max: 10}\n" /* 11 */
    "  - {type: trend, at: [500, 100], size: [400, 200], tags: [level, flow], span: 2h}\n" /* 12 */
    "  - {type: alarm_list, at: [10, 500], size: [1200, 200], sections: [area1], max_priority: 3}\n" /* 13 */
    "  - {type: button, at: [10, 200], size: [80, 30], text: {en: Next, de: Weiter}, goto: other}\n"; /* 14 */

static const char other_yaml[] =
    "title: {en: Other, de: Andere}\n"
    "size: [800, 600]\n"
    "objects:\n"
    "  - {type: pipe, points: [[10, 10], [200, 10], [200, 100]], tag: pump}\n"
    "  - {type: bar, at: [10, 100], size: [20, 100], tag: sp}\n";

struct src {
    const char *path;
    const char *text;
};

static const struct src base[] = {
    {"project.yaml", project_yaml},
    {"tags.csv", tags_csv},
    {"alarms.csv", alarms_csv},
    {"screens/main.yaml", main_yaml},
    {"screens/other.yaml", other_yaml},
};

#define N_BASE (sizeof base / sizeof base[0])

/* The base project with FROM replaced by TO (first occurrence) in PATH. */
static void files_with(struct vg_project_files *fs, const char *path,
                       const char *from, const char *to)
{
    memset(fs, 0, sizeof *fs);
    for (size_t i = 0; i < N_BASE; i++) {
        const char *text = base[i].text;
        char *edited = NULL;
        if (path != NULL && strcmp(path, base[i].path) == 0 && to == NULL)
            continue; /* TO NULL: leave the file out */
        if (path != NULL && strcmp(path, base[i].path) == 0) {
            const char *at = strstr(text, from);
            if (at == NULL)
                fail_msg("test bug: '%s' not found in %s", from, path);
            size_t n = strlen(text) - strlen(from) + strlen(to);
            edited = malloc(n + 1);
            assert_non_null(edited);
            size_t pre = (size_t)(at - text);
            memcpy(edited, text, pre);
            strcpy(edited + pre, to);
            strcat(edited, at + strlen(from));
            text = edited;
        }
        assert_int_equal(vg_project_files_add(fs, base[i].path, text,
                                              strlen(text)), VG_OK);
        free(edited);
    }
}

static struct vg_project *parse(struct vg_project_files *fs, struct vg_diags *d)
{
    vg_diags_init(d);
    struct vg_project *p = vg_project_parse(fs, d);
    assert_non_null(p);
    return p;
}

static void dump(const struct vg_diags *d)
{
    char line[1024];
    for (size_t i = 0; i < d->n; i++) {
        vg_diag_format(&d->v[i], line, sizeof line);
        fprintf(stderr, "#   %s\n", line);
    }
}

/* ------------------------------------------------------------ the valid one */

static void test_valid_project(void **state)
{
    (void)state;
    struct vg_project_files fs;
    struct vg_diags d;
    files_with(&fs, NULL, NULL, NULL);
    struct vg_project *p = parse(&fs, &d);
    if (d.n != 0)
        dump(&d);
    assert_int_equal(d.n, 0);
    assert_string_equal(p->name, "mini");
    assert_string_equal(p->label, "1.0");
    assert_int_equal(p->n_languages, 2);
    assert_string_equal(p->title.s[1], "Mini-Anlage");
    assert_int_equal(p->n_sections, 2);
    assert_int_equal(p->sections[1].parent, 0);
    assert_int_equal(p->n_plcs, 2);
    assert_int_equal(p->plcs[0].poll_ms, 500);
    assert_int_equal(p->plcs[0].fencing_register, 9000);
    assert_int_equal(p->plcs[1].unit_id, 1);       /* default */
    assert_int_equal(p->plcs[1].timeout_ms, 1000); /* default */
    assert_int_equal(p->plcs[1].fencing_register, -1);
    assert_int_equal(p->n_tags, 5);
    int sp = vg_project_find_tag(p, "sp");
    assert_true(sp >= 0);
    assert_true(p->tags[sp].scaled && p->tags[sp].writable);
    assert_int_equal(p->tags[sp].plc.index, 0);
    assert_int_equal(vg_project_find_tag(p, "nope"), -1);
    assert_int_equal(p->n_alarms, 4);
    assert_int_equal(p->n_screens, 2);
    int main_s = vg_project_find_screen(p, "main");
    assert_true(main_s >= 0);
    const struct vg_screen *s = &p->screens[main_s];
    assert_int_equal(s->n_objects, 10);
    assert_int_equal(s->background, 0x102030);
    assert_int_equal(s->objects[3].action, VG_ACTION_WRITE);
    assert_true(s->objects[3].write_value == 1);
    assert_int_equal(s->objects[7].n_tags, 2);
    assert_int_equal(s->objects[7].span_s, 7200);
    assert_int_equal(s->objects[9].action, VG_ACTION_GOTO);
    assert_int_equal(s->objects[9].target.index,
                     vg_project_find_screen(p, "other"));
    const struct vg_station *st = &p->stations[0];
    assert_int_equal(st->language.index, 1);
    assert_int_equal(st->start_screen.index, main_s);
    assert_int_equal(st->n_nav_keys, 2);
    assert_string_equal(st->nav_keys[1].key.key, "F2");
    assert_int_equal(st->nav_keys[1].key.mods, VG_MOD_CTRL);
    assert_int_equal(st->n_blocked_keys, 2);
    assert_string_equal(st->blocked_keys[1].key, "q");
    assert_true(st->fullscreen && st->decorated && !st->always_on_top);
    assert_int_equal(st->width, 1024);
    assert_int_equal(st->toolbars, VG_TOOLBAR_NAVIGATION | VG_TOOLBAR_ALARMS);
    assert_int_equal(p->roles[0].grants[0].functions,
                     VG_FN_VIEW | VG_FN_OPERATE | VG_FN_ACKNOWLEDGE);
    assert_int_equal(p->reports[0].range_s, 7 * 86400);
    assert_int_equal(p->reports[0].kind, VG_REPORT_TAGS);
    vg_project_free(p);
    vg_diags_free(&d);
    vg_project_files_free(&fs);
}

/* ------------------------------------------------------- one mistake each */

struct mistake {
    const char *file;
    const char *from;
    const char *to;
    const char *where;   /* "file:line:col" */
    const char *message; /* a substring of the error */
};

static const struct mistake mistakes[] = {
    /* project.yaml */
    {"project.yaml", "project: mini", "project: 9mini", "project.yaml:1:10",
     "invalid name '9mini'"},
    {"project.yaml", "languages: [en, de]", "languages: [en, de, en]",
     "project.yaml:4:21", "language 'en' is listed twice"},
    {"project.yaml", "languages: [en, de]", "languages: [en, deu]",
     "project.yaml:4:17", "'deu' is not a language code"},
    {"project.yaml", "{en: Area 1, de: Bereich 1}", "{en: Area 1}",
     "project.yaml:7:13", "missing translation: 'title' of section has no 'de'"},
    {"project.yaml", "{en: Sub 1, de: Unter 1}", "{en: Sub 1, de: Unter 1, fr: Sous 1}",
     "project.yaml:10:41", "text in 'fr', which is not a project language"},
    {"project.yaml", "      - name: sub1\n",
     "      - name: area1\n        title: {en: A, de: A}\n      - name: sub1\n",
     "project.yaml:9:15",
     "duplicate plant section name 'area1' (first defined at project.yaml:6:11)"},
    {"project.yaml", "    port: 5020", "    prot: 5020", "project.yaml:14:5",
     "unknown key 'prot' in PLC (did you mean 'port'?)"},
    {"project.yaml", "port: 5020", "port: 70000", "project.yaml:14:11",
     "'port' must be a whole number from 1 to 65535"},
    {"project.yaml", "poll_interval: 500ms", "poll_interval: 5 parsecs",
     "project.yaml:15:20", "'poll_interval' must be a duration"},
    {"project.yaml", "poll_interval: 500ms", "poll_interval: 10ms",
     "project.yaml:15:20", "'poll_interval' must be from 0.05s to 3.6e+03s"},
    {"project.yaml", "port: 5021", "port: 5020", "project.yaml:17:11",
     "PLC 'plc2' has the same host, port and unit id as PLC 'plc1'"},
    {"project.yaml", "start_screen: main", "start_screen: mian",
     "project.yaml:23:19", "unknown screen 'mian' (did you mean 'main'?)"},
    {"project.yaml", "language: de", "language: fr", "project.yaml:24:15",
     "language 'fr' is not one of the project's languages"},
    {"project.yaml", "[navigation, alarms]", "[navigation, alarm]",
     "project.yaml:25:28", "unknown toolbar 'alarm' (did you mean 'alarms'?)"},
    {"project.yaml", "Ctrl+F2: other", "Ctrl+F2: nowhere", "project.yaml:26:42",
     "unknown screen 'nowhere'"},
    {"project.yaml", "Ctrl+F2: other", "Crtl+F2: other", "project.yaml:26:33",
     "unknown modifier 'Crtl'"},
    {"project.yaml", "Ctrl+F2: other", "F25: other", "project.yaml:26:33",
     "unknown key name 'F25'"},
    {"project.yaml", "Ctrl+F2: other", "Alt+F4: other", "project.yaml:26:33",
     "navigation key Alt+F4 is also a blocked key"},
    {"project.yaml", "[Alt+F4, Ctrl+Q]", "[Alt+F4, Ctrl+Q, alt+f4]",
     "project.yaml:28:36", "key alt+f4 is blocked twice"},
    {"project.yaml", "width: 1024", "width: 100", "project.yaml:27:21",
     "'width' must be a whole number from 320 to 7680"},
    {"project.yaml", "fullscreen: true", "fullscreen: maybe", "project.yaml:27:52",
     "'fullscreen' must be true or false"},
    {"project.yaml", "[view, operate, acknowledge]", "[view, operat, acknowledge]",
     "project.yaml:33:27", "unknown function 'operat' (did you mean 'operate'?)"},
    {"project.yaml", "sections: [area1]", "sections: [area2]", "project.yaml:34:20",
     "unknown plant section 'area2' (did you mean 'area1'?)"},
    {"project.yaml", "stations: [st1]", "stations: [st2]", "project.yaml:35:20",
     "unknown station 'st2'"},
    {"project.yaml", "kind: tags", "kind: tag", "project.yaml:39:11",
     "unknown report kind 'tag' (did you mean 'tags'?)"},
    {"project.yaml", "tags: [level]", "tags: [pump]", "project.yaml:40:12",
     "a tags report needs a numeric tag, but 'pump' is bool"},
    /* tags.csv (validation rules; field syntax is covered by test_csv) */
    {"tags.csv", "pump,sub1,plc1,co:0", "pump,sub1,plc1,hr:0", "tags.csv:4:21",
     "type bool does not fit address kind hr"},
    {"tags.csv", "sp,sub1,plc1,hr:2,int16", "sp,sub1,plc1,hr:1,int16",
     "tags.csv:5:14", "address hr:1 of tag 'sp' overlaps tag 'level'"},
    {"tags.csv", "sp,sub1,plc1,hr:2,int16", "sp,sub1,plc1,hr:9001,int16",
     "tags.csv:5:14", "overlaps the fencing registers hr:9000..9003 of PLC 'plc1'"},
    {"tags.csv", "hr:2,int16", "hr:65535,int32", "tags.csv:5:14",
     "int32 needs 2 registers from hr:65535, past the last address 65535"},
    {"tags.csv", "fault,sub1,plc2,di:5,bool", "fault,sub1,plc2,di:5,int16",
     "tags.csv:7:22", "type int16 does not fit address kind di"},
    {"tags.csv", "ir:0,uint16,,,,,,m3/h,0,none,no", "ir:0,uint16,,,,,,m3/h,0,none,yes",
     "tags.csv:6:45", "cannot be writable"},
    {"tags.csv", "0,27648,0,100,%,0,cyclic:10,yes,0,90", "0,27648,0,100,%,0,cyclic:10,yes,0,190",
     "tags.csv:5:58", "write limits 0..190 lie outside the tag's range 0..100"},
    {"tags.csv", "0,27648,0,100,%,0,cyclic:10,yes,0,90", "0,70000,0,100,%,0,cyclic:10,yes,0,90",
     "tags.csv:5:26", "raw range 0..70000 does not fit type int16"},
    {"tags.csv", "0,27648,0,100,%,0,cyclic:10,yes,0,90", "0,27648,0,100,%,0,cyclic:10,yes,,",
     "tags.csv:5:54", "writable tag 'sp' needs write limits"},
    {"tags.csv", "pump,sub1,plc1,co:0,bool,,,,,,,", "pump,sub1,plc1,co:0,bool,,,,,,bar,",
     "tags.csv:4:31", "a bool tag has no unit"},
    {"tags.csv", "pump,sub1", "pump,sub2", "tags.csv:4:6",
     "unknown plant section 'sub2' (did you mean 'sub1'?)"},
    {"tags.csv", "flow,sub1,plc2", "flow,sub1,plc3", "tags.csv:6:11",
     "unknown PLC 'plc3'"},
    {"tags.csv", "fault,sub1,plc2,di:5",
     "level,sub1,plc2,di:6,bool,,,,,,,,none,no,,,L,L\nfault,sub1,plc2,di:5",
     "tags.csv:7:1",
     "duplicate tag name 'level' (first defined at tags.csv:3:1)"},
    /* alarms.csv */
    {"alarms.csv", "lvl_hi,level,high,5", "lvl_hi,levle,high,5", "alarms.csv:3:8",
     "unknown tag 'levle' (did you mean 'level'?)"},
    {"alarms.csv", "lvl_hi,level,high,5", "lvl_hi,level,high,9", "alarms.csv:3:19",
     "high_high limit 8 of 'lvl_hh' must lie above high limit 9 of 'lvl_hi'"},
    {"alarms.csv", "pump_fault,fault,digital_on,,", "pump_fault,level,digital_on,,",
     "alarms.csv:4:18", "a digital_on alarm needs a bool tag, but 'level' is float32"},
    {"alarms.csv", "pump_fault,fault,digital_on,,", "pump_fault,fault,digital_on,3,",
     "alarms.csv:4:29", "a digital_on alarm has no limit"},
    {"alarms.csv", "lvl_hi,level,high,5,", "lvl_hi,level,high,,", "alarms.csv:3:19",
     "a high alarm needs a limit"},
    {"alarms.csv", "medium,area1", "medium,area9", "alarms.csv:4:40",
     "unknown plant section 'area9'"},
    {"alarms.csv", "low,,sp,", "low,,,", "alarms.csv:5:36",
     "a deviation alarm needs a 'reference' tag"},
    {"alarms.csv", "Pegel hoch\n", "\n", "alarms.csv:3:",
     "missing translation: alarm 'lvl_hi' has no 'de' message"},
    /* screens */
    {"screens/main.yaml", "tag: pump}", "tag: level}", "screens/main.yaml:7:53",
     "a lamp shows a bool tag, but 'level' is float32"},
    {"screens/main.yaml", "\"%.2f\"", "\"%s\"", "screens/main.yaml:6:71",
     "'format' must contain exactly one number conversion"},
    {"screens/main.yaml", "type: line", "type: lin", "screens/main.yaml:10:12",
     "unknown object type 'lin' (did you mean 'line'?)"},
    {"screens/main.yaml", "size: [100, 200], tag: level", "size: [100, 900], tag: level",
     "screens/main.yaml:11:12", "tank at [300, 100] size [100, 900] does not fit"},
    {"screens/main.yaml", "write: {tag: pump, value: 1}", "write: {tag: pump, value: 2}",
     "screens/main.yaml:8:89", "writes 2 to bool tag 'pump'"},
    {"screens/main.yaml", "write: {tag: pump, value: 1}", "write: {tag: flow, value: 2}",
     "screens/main.yaml:8:89", "tag 'flow', which is not writable"},
    {"screens/main.yaml", "tag: sp}", "tag: flow}", "screens/main.yaml:9:58",
     "a setpoint needs a writable tag, but 'flow' is not writable"},
    {"screens/main.yaml", "tags: [level, flow]", "tags: [level, fault]",
     "screens/main.yaml:12:67", "a trend needs a numeric tag, but 'fault' is bool"},
    {"screens/main.yaml", "goto: other", "goto: othr", "screens/main.yaml:14:87",
     "unknown screen 'othr' (did you mean 'other'?)"},
    {"screens/main.yaml", "goto: other", "goto: other, write: {tag: pump, value: 1}",
     "screens/main.yaml:14:102", "a button needs exactly one of"},
    {"screens/main.yaml", "max_priority: 3", "max_prio: 3", "screens/main.yaml:13:77",
     "'max_prio' does not belong to a alarm_list object"},
    {"screens/main.yaml", "size: [1280, 800]", "size: [100, 800]", "screens/main.yaml:2:8",
     "screen size 100x800 is outside"},
    {"screens/main.yaml", "[[0, 0], [100, 100]]", "[[0, 0], [100, 100], [5, 5]]",
     "screens/main.yaml:10:28", "'points' must have exactly 2 points, not 3"},
    {"screens/main.yaml", "background: \"#102030\"", "background: \"#1020\"",
     "screens/main.yaml:3:14", "'background' must be a colour"},
    {"screens/main.yaml", "size: [80, 30], tag: sp}", "size: [80, 30]}",
     "screens/main.yaml:9:6", "setpoint object has no 'tag'"},
    {"screens/other.yaml", "[200, 100]]", "[200, 700]]", "screens/other.yaml:4:12",
     "pipe point [200, 700] lies outside the 800x600 screen"},
    {"screens/main.yaml", "objects:\n", "objects:\n  - [1, 2\n", "screens/main.yaml:",
     "YAML syntax:"},
};

static void test_each_mistake(void **state)
{
    (void)state;
    size_t failures = 0;
    for (size_t i = 0; i < sizeof mistakes / sizeof mistakes[0]; i++) {
        const struct mistake *m = &mistakes[i];
        struct vg_project_files fs;
        struct vg_diags d;
        files_with(&fs, m->file, m->from, m->to);
        struct vg_project *p = parse(&fs, &d);
        char got[1024] = "";
        bool ok = d.n == 1;
        if (d.n >= 1) {
            vg_diag_format(&d.v[0], got, sizeof got);
            ok = ok && strncmp(got, m->where, strlen(m->where)) == 0 &&
                 strstr(got, m->message) != NULL;
        }
        if (!ok) {
            fprintf(stderr, "# mistake %zu (%s: '%s' -> '%s'): expected one "
                    "error at %s containing \"%s\"; got %zu:\n", i, m->file,
                    m->from, m->to, m->where, m->message, d.n);
            dump(&d);
            failures++;
        }
        vg_project_free(p);
        vg_diags_free(&d);
        vg_project_files_free(&fs);
    }
    assert_int_equal(failures, 0);
}

static void test_all_errors_reported_sorted(void **state)
{
    (void)state;
    /* Three mistakes in three files: all reported, sorted by file. */
    struct vg_project_files fs;
    files_with(&fs, "tags.csv", "pump,sub1", "pump,sub2");
    char *yaml = strdup(project_yaml);
    assert_non_null(yaml);
    memcpy(strstr(yaml, "language: de"), "language: xx", 12);
    assert_int_equal(vg_project_files_add(&fs, "project.yaml", yaml,
                                          strlen(yaml)), VG_OK);
    free(yaml);
    const char *bad = "title: {en: B, de: B}\nsize: [800, 600]\nobjects:\n"
                      "  - {type: bar, at: [0, 0], size: [10, 10], tag: pump}\n";
    assert_int_equal(vg_project_files_add(&fs, "screens/b.yaml", bad,
                                          strlen(bad)), VG_OK);
    struct vg_diags d;
    struct vg_project *p = parse(&fs, &d);
    assert_int_equal(d.n, 3);
    assert_string_equal(d.v[0].file, "project.yaml");
    assert_string_equal(d.v[1].file, "screens/b.yaml");
    assert_string_equal(d.v[2].file, "tags.csv");
    vg_project_free(p);
    vg_diags_free(&d);
    vg_project_files_free(&fs);
}

static void test_missing_and_unexpected_files(void **state)
{
    (void)state;
    struct vg_project_files fs;
    files_with(&fs, "project.yaml", "project: mini", NULL); /* drop the file */
    struct vg_diags d;
    struct vg_project *p = parse(&fs, &d);
    assert_true(d.n >= 1);
    bool found = false;
    for (size_t i = 0; i < d.n; i++)
        found = found || strstr(d.v[i].msg, "missing project.yaml") != NULL;
    assert_true(found);
    vg_project_free(p);
    vg_diags_free(&d);
    vg_project_files_free(&fs);

    files_with(&fs, NULL, NULL, NULL);
    assert_int_equal(vg_project_files_add(&fs, "notes.txt", "x", 1), VG_OK);
    p = parse(&fs, &d);
    assert_int_equal(d.n, 1);
    assert_string_equal(d.v[0].file, "notes.txt");
    vg_project_free(p);
    vg_diags_free(&d);
    vg_project_files_free(&fs);
}

static void test_yaml_aliases_refused(void **state)
{
    (void)state;
    struct vg_project_files fs;
    files_with(&fs, "screens/other.yaml", "size: [800, 600]",
               "size: &s [800, 600]\nx: *s");
    struct vg_diags d;
    struct vg_project *p = parse(&fs, &d);
    assert_true(d.n >= 1);
    assert_non_null(strstr(d.v[0].msg, "aliases are not supported"));
    vg_project_free(p);
    vg_diags_free(&d);
    vg_project_files_free(&fs);
}

/* libfyaml 0.7.12 loops forever on "%\xff"; such bytes never reach it. */
static void test_yaml_bytes_checked_first(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *where;
        const char *msg;
    } cases[] = {
        {"%\xff", "screens/other.yaml:1:2", "not valid UTF-8 (byte 0xff)"},
        {"title: x\nsize: [800, \x01" "600]\n", "screens/other.yaml:2:13",
         "control character 0x01 is not allowed in YAML"},
        {"title: {en: \xc3\xa4\xc3\xa4, de: \x7f}", "screens/other.yaml:1:21",
         "control character 0x7f"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct vg_project_files fs;
        files_with(&fs, NULL, NULL, NULL);
        assert_int_equal(vg_project_files_add(&fs, "screens/other.yaml",
                                              cases[i].text,
                                              strlen(cases[i].text)), VG_OK);
        struct vg_diags d;
        struct vg_project *p = parse(&fs, &d);
        char got[512] = "";
        if (d.n > 0)
            vg_diag_format(&d.v[0], got, sizeof got);
        if (d.n != 1 || strncmp(got, cases[i].where, strlen(cases[i].where)) ||
            strstr(got, cases[i].msg) == NULL) {
            dump(&d);
            fail_msg("case %zu: expected one error at %s: %s", i,
                     cases[i].where, cases[i].msg);
        }
        vg_project_free(p);
        vg_diags_free(&d);
        vg_project_files_free(&fs);
    }
}

static void test_garbage_yaml(void **state)
{
    (void)state;
    static const char *const garbage[] = {
        "", "\x01\x02\x03", "[", "- - - -", "a: b: c", "{{{{{{{{{{",
        "project: [", "\xff\xfe\xfd", "sections: 5", "languages: {a: b}",
        "project: x\nlanguages: [en]\nsections: [[[]]]",
        ("project: x\nlanguages: [en]\nsections:\n  - name: a\n    title: t\n"
         "    children: 7"),
    };
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        struct vg_project_files fs = {0};
        assert_int_equal(vg_project_files_add(&fs, "project.yaml", garbage[i],
                                              strlen(garbage[i])), VG_OK);
        assert_int_equal(vg_project_files_add(&fs, "screens/x.yaml", garbage[i],
                                              strlen(garbage[i])), VG_OK);
        struct vg_diags d;
        struct vg_project *p = parse(&fs, &d);
        assert_true(d.n >= 1);
        vg_project_free(p);
        vg_diags_free(&d);
        vg_project_files_free(&fs);
    }
}

/* ---------------------------------------------------------------- bundles */

static void test_bundle_round_trip(void **state)
{
    (void)state;
    struct vg_project_files fs, back = {0};
    files_with(&fs, NULL, NULL, NULL);
    unsigned char *buf;
    size_t len;
    char errmsg[VG_ERRMSG_SIZE];
    assert_int_equal(vg_project_files_pack(&fs, &buf, &len, errmsg), VG_OK);
    assert_int_equal(vg_project_files_unpack(buf, len, &back, errmsg), VG_OK);
    assert_int_equal(back.n, fs.n);
    unsigned char d1[VG_PROJECT_DIGEST_SIZE], d2[VG_PROJECT_DIGEST_SIZE];
    vg_project_files_digest(&fs, d1);
    vg_project_files_digest(&back, d2);
    assert_memory_equal(d1, d2, sizeof d1);
    /* One changed byte changes the digest. */
    fs.v[0].data[0] ^= 1;
    vg_project_files_digest(&fs, d2);
    assert_memory_not_equal(d1, d2, sizeof d1);
    free(buf);
    vg_project_files_free(&fs);
    vg_project_files_free(&back);
}

static void test_bundle_rejects_garbage(void **state)
{
    (void)state;
    char errmsg[VG_ERRMSG_SIZE];
    struct vg_project_files fs = {0};
    /* Bad magic, short input. */
    assert_int_equal(vg_project_files_unpack((const unsigned char *)"VGP2xxxxxxxxxx",
                                             14, &fs, errmsg), VG_EMALFORMED);
    assert_int_equal(vg_project_files_unpack((const unsigned char *)"VGP", 3,
                                             &fs, errmsg), VG_EMALFORMED);
    /* A header claiming a gigantic size is refused before inflating. */
    unsigned char bomb[16] = {'V', 'G', 'P', '1', 0x7f, 0xff, 0xff, 0xff,
                              0xff, 0xff, 0xff, 0xff, 0x78, 0x9c, 0, 0};
    assert_int_equal(vg_project_files_unpack(bomb, sizeof bomb, &fs, errmsg),
                     VG_ETOOBIG);
    /* Truncated compressed data. */
    struct vg_project_files good;
    files_with(&good, NULL, NULL, NULL);
    unsigned char *buf;
    size_t len;
    assert_int_equal(vg_project_files_pack(&good, &buf, &len, errmsg), VG_OK);
    assert_int_equal(vg_project_files_unpack(buf, len / 2, &fs, errmsg),
                     VG_EMALFORMED);
    assert_int_equal(fs.n, 0);
    free(buf);
    vg_project_files_free(&good);
    /* Unsafe paths and wrong shapes, packed by hand. */
    static const char *const bad_paths[] = {"../etc/passwd", "/abs", ".hidden",
        "screens/../x", "a/b/c", "", "screens/", "x\\y"};
    for (size_t i = 0; i < sizeof bad_paths / sizeof bad_paths[0]; i++) {
        struct vg_project_files one = {0};
        assert_int_equal(vg_project_files_add(&one, bad_paths[i], "x", 1), VG_OK);
        assert_int_equal(vg_project_files_pack(&one, &buf, &len, errmsg), VG_OK);
        assert_int_equal(vg_project_files_unpack(buf, len, &fs, errmsg),
                         VG_EMALFORMED);
        assert_non_null(strstr(errmsg, "unsafe"));
        free(buf);
        vg_project_files_free(&one);
    }
}

static void test_read_dir_errors(void **state)
{
    (void)state;
    struct vg_project_files fs = {0};
    char errmsg[VG_ERRMSG_SIZE];
    assert_int_equal(vg_project_files_read_dir(&fs, "/nonexistent/vigil", errmsg),
                     VG_EIO);
    assert_non_null(strstr(errmsg, "/nonexistent/vigil"));
    assert_int_equal(fs.n, 0);
}

/* ------------------------------------------------ archives and retention */

struct edit {
    const char *file, *from, *to;
};

/* The base project with every edit made (each once, in its file). */
static void files_edited(struct vg_project_files *fs, const struct edit *e,
                         size_t n)
{
    memset(fs, 0, sizeof *fs);
    for (size_t i = 0; i < N_BASE; i++) {
        char *text = strdup(base[i].text);
        assert_non_null(text);
        for (size_t k = 0; k < n; k++) {
            if (strcmp(e[k].file, base[i].path) != 0)
                continue;
            char *at = strstr(text, e[k].from);
            if (at == NULL)
                fail_msg("test bug: '%s' not found in %s", e[k].from, e[k].file);
            char *next = malloc(strlen(text) - strlen(e[k].from) + strlen(e[k].to) + 1);
            assert_non_null(next);
            size_t pre = (size_t)(at - text);
            memcpy(next, text, pre);
            strcpy(next + pre, e[k].to);
            strcat(next, at + strlen(e[k].from));
            free(text);
            text = next;
        }
        assert_int_equal(vg_project_files_add(fs, base[i].path, text, strlen(text)),
                         VG_OK);
        free(text);
    }
}

#define ARCHIVES_YAML                                                    \
    "    range: 7d\n"                                                    \
    "archives:\n"                                                        \
    "  - name: fast\n"                                                   \
    "    title: {en: Fast, de: Schnell}\n"                               \
    "    retention: 7d\n"                                                \
    "  - name: standard\n"                                               \
    "    retention: 90d\n"                                               \
    "    default: true\n"                                                \
    "  - name: long\n"                                                   \
    "    retention: forever\n"                                           \
    "retention: {alarm_journal: 365d, audit: forever}\n"

static const struct edit archive_edits[] = {
    {"project.yaml", "    range: 7d\n", ARCHIVES_YAML},
    {"tags.csv", "archive,writable", "archive,archive_in,writable"},
    {"tags.csv", "change,no", "change,fast,no"},
    {"tags.csv", ",none,yes,,,Pump", ",none,,yes,,,Pump"},
    {"tags.csv", "cyclic:10,yes", "cyclic:10,,yes"},
    {"tags.csv", ",none,no,,,Flow", ",none,,no,,,Flow"},
    {"tags.csv", ",none,no,,,Fault", ",none,,no,,,Fault"},
};

static void test_archives(void **state)
{
    (void)state;
    struct vg_project_files fs;
    struct vg_diags d;
    files_edited(&fs, archive_edits, sizeof archive_edits / sizeof archive_edits[0]);
    struct vg_project *p = parse(&fs, &d);
    if (d.n != 0)
        dump(&d);
    assert_int_equal(d.n, 0);
    assert_int_equal(p->n_archives, 3);
    assert_int_equal(p->archives[0].retention_ms, 7 * 86400000ull);
    assert_string_equal(p->archives[0].title.s[1], "Schnell");
    assert_true(p->archives[1].is_default);
    assert_int_equal(p->archives[2].retention_ms, 0);
    assert_int_equal(p->journal_retention_ms, 365 * 86400000ull);
    assert_int_equal(p->audit_retention_ms, 0);
    int level = vg_project_find_tag(p, "level"), sp = vg_project_find_tag(p, "sp");
    assert_ptr_equal(vg_tag_archive(p, &p->tags[level]), &p->archives[0]);
    assert_ptr_equal(vg_tag_archive(p, &p->tags[sp]), &p->archives[1]);
    assert_int_equal(vg_project_find_archive(p, "long"), 2);
    vg_project_free(p);
    vg_diags_free(&d);
    vg_project_files_free(&fs);

    /* Without archives a tag belongs to none. */
    files_with(&fs, NULL, NULL, NULL);
    p = parse(&fs, &d);
    assert_null(vg_tag_archive(p, &p->tags[vg_project_find_tag(p, "sp")]));
    vg_project_free(p);
    vg_diags_free(&d);
    vg_project_files_free(&fs);
}

static void test_archive_mistakes(void **state)
{
    (void)state;
    static const struct {
        struct edit e;
        const char *message;
    } cases[] = {
        {{"tags.csv", "change,fast,no", "change,fats,no"},
         "unknown archive 'fats' (did you mean 'fast'?)"},
        {{"tags.csv", ",none,,no,,,Flow", ",none,fast,no,,,Flow"},
         "archive_in 'fast' is given but the tag is not archived"},
        {{"project.yaml", "    retention: forever\n",
          "    retention: forever\n    default: true\n"},
         "archive 'long' is a second default archive (the first is 'standard')"},
        {{"project.yaml", "retention: 7d", "retention: 10m"},
         "'retention' must be from 3.6e+03s"},
        {{"project.yaml", "retention: 7d", "retention: always"},
         "'retention' must be a duration"},
        {{"project.yaml", "    retention: 90d\n", ""},
         "archive has no 'retention'"},
        {{"project.yaml", "audit: forever", "audit: forever, alarms: 1d"},
         "unknown key 'alarms' in retention"},
        {{"project.yaml", "  - name: long\n", "  - name: fast\n"},
         "duplicate archive name 'fast'"},
        {{"project.yaml", "default: true", "default: yes please"},
         "'default' must be true or false"},
    };
    size_t failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = sizeof archive_edits / sizeof archive_edits[0];
        struct edit e[sizeof archive_edits / sizeof archive_edits[0] + 1];
        memcpy(e, archive_edits, sizeof archive_edits);
        e[n] = cases[i].e;
        struct vg_project_files fs;
        struct vg_diags d;
        files_edited(&fs, e, n + 1);
        struct vg_project *p = parse(&fs, &d);
        char got[1024] = "";
        if (d.n >= 1)
            vg_diag_format(&d.v[0], got, sizeof got);
        if (d.n != 1 || strstr(got, cases[i].message) == NULL) {
            fprintf(stderr, "# archive mistake %zu: expected one error with \"%s\";"
                    " got %zu:\n", i, cases[i].message, d.n);
            dump(&d);
            failures++;
        }
        vg_project_free(p);
        vg_diags_free(&d);
        vg_project_files_free(&fs);
    }
    assert_int_equal(failures, 0);
}

/* The 'de' message of lvl_hi (alarms.csv line 3) made BYTES long of
 * two-byte characters (and one 'x' if BYTES is odd): limits are in bytes,
 * not characters. Parses it; the number of errors, the first into GOT. */
static size_t with_de_message(size_t bytes, char *got, size_t size)
{
    char *text = malloc(bytes + 2);
    struct vg_project_files fs;
    struct vg_diags d;
    size_t n = 0;
    assert_non_null(text);
    while (n + 2 <= bytes) {
        memcpy(text + n, "\xc3\xbc", 2); /* ü */
        n += 2;
    }
    if (n < bytes)
        text[n++] = 'x';
    text[n++] = '\n';
    text[n] = '\0';
    files_with(&fs, "alarms.csv", "Pegel hoch\n", text);
    struct vg_project *p = parse(&fs, &d);
    got[0] = '\0';
    if (d.n >= 1)
        vg_diag_format(&d.v[0], got, size);
    else
        assert_int_equal(strlen(p->alarms[1].message.s[1]), bytes);
    n = d.n;
    vg_project_free(p);
    vg_diags_free(&d);
    vg_project_files_free(&fs);
    free(text);
    return n;
}

/* An alarm message is carried by every change of its alarm, whose format
 * holds 1024 bytes a language (replication.h): a longer one is refused
 * here, at its field, rather than by the leader's alarm engine, which could
 * never commit the alarm's changes (it was rebuilt again and again and
 * refused every operator action; node/alarm_duty.c, pending_add). */
static void test_alarm_message_limit(void **state)
{
    (void)state;
    char got[1024];
    /* The field begins after "lvl_hi,level,high,5,0.1,2,0,high,,,Level high,". */
    const char *where = "alarms.csv:3:47:";

    assert_int_equal(with_de_message(VG_PROJECT_MAX_ALARM_TEXT, got, sizeof got), 0);
    assert_int_equal(with_de_message(VG_PROJECT_MAX_ALARM_TEXT - 1, got, sizeof got), 0);
    assert_int_equal(with_de_message(VG_PROJECT_MAX_ALARM_TEXT + 1, got, sizeof got), 1);
    if (strncmp(got, where, strlen(where)) != 0 ||
        strstr(got, "the 'de' message of alarm 'lvl_hi' has 1025 bytes, more "
                    "than the 1024 allowed") == NULL)
        fail_msg("expected an error at %s naming the alarm, language and sizes, "
                 "got: %s", where, got);
    assert_int_equal(with_de_message(VG_PROJECT_MAX_ALARM_TEXT + 2, got, sizeof got), 1);
    assert_int_equal(with_de_message(64 * 1024, got, sizeof got), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_project),
        cmocka_unit_test(test_each_mistake),
        cmocka_unit_test(test_all_errors_reported_sorted),
        cmocka_unit_test(test_missing_and_unexpected_files),
        cmocka_unit_test(test_yaml_aliases_refused),
        cmocka_unit_test(test_yaml_bytes_checked_first),
        cmocka_unit_test(test_garbage_yaml),
        cmocka_unit_test(test_bundle_round_trip),
        cmocka_unit_test(test_bundle_rejects_garbage),
        cmocka_unit_test(test_read_dir_errors),
        cmocka_unit_test(test_archives),
        cmocka_unit_test(test_archive_mistakes),
        cmocka_unit_test(test_alarm_message_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
