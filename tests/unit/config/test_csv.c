/* Unit tests for the CSV front end (config/csv.c): tags.csv and alarms.csv
 * rows become the model with every field's position; every kind of syntax
 * error is reported at the exact line and column of the field (or byte) that
 * caused it, and parsing goes on with the next row: comments, empty lines, a
 * byte order mark, CRLF, quoted fields over several lines, bad UTF-8, NUL
 * bytes, malformed and unterminated quotes, wrong field counts, header
 * problems and each field check. A seeded mutation loop feeds damaged files
 * to show nothing crashes (run it under ASan/UBSan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../../config/internal.h"

/* ---- helpers ---------------------------------------------------------- */

/* The smallest complete tags.csv header, and where its fields begin in a
 * row like "t1,s1,plc1,hr:1,int16,A,B": 1, 4, 7, 12, 17, 23, 25. */
#define H "name,section,plc,address,type,description_en,description_de\n"
#define AH "name,tag,kind,limit,priority,message_en,message_de\n"

struct env {
    struct vg_project *p;
    struct vg_diags d;
};

static struct vg_project *project_new(size_t n_langs)
{
    static const char *const codes[] = {"en", "de"};
    struct vg_project *p = calloc(1, sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n_langs; i++) {
        p->languages[i] = vg_cfg_strdup(codes[i]);
        assert_non_null(p->languages[i]);
    }
    p->n_languages = n_langs;
    return p;
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof *e);
    if (e == NULL)
        return -1;
    e->p = project_new(2);
    vg_diags_init(&e->d);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    vg_project_free(e->p);
    vg_diags_free(&e->d);
    free(e);
    return 0;
}

static void parse_n(struct env *e, bool alarms, const char *data, size_t len)
{
    /* A private copy with its terminator, like the file reader makes, so
     * ASan sees any read past the end. */
    char *copy = malloc(len + 1);
    assert_non_null(copy);
    memcpy(copy, data, len);
    copy[len] = '\0';
    struct vg_project_file f = {alarms ? "alarms.csv" : "tags.csv", copy, len};
    if (alarms)
        vg_cfg_csv_alarms(e->p, &f, &e->d);
    else
        vg_cfg_csv_tags(e->p, &f, &e->d);
    free(copy);
}

static void tags(struct env *e, const char *text)
{
    parse_n(e, false, text, strlen(text));
}

static void alarms(struct env *e, const char *text)
{
    parse_n(e, true, text, strlen(text));
}

static void dump(const struct vg_diags *d)
{
    char line[600];
    for (size_t i = 0; i < d->n; i++) {
        vg_diag_format(&d->v[i], line, sizeof line);
        print_message("  %s\n", line);
    }
}

/* There is an error at LINE:COL whose message contains PART. */
static void expect_diag(const struct vg_diags *d, unsigned line, unsigned col,
                        const char *part)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->v[i].line == line && d->v[i].col == col &&
            strstr(d->v[i].msg, part) != NULL)
            return;
    print_error("no error at %u:%u containing \"%s\"; got:\n", line, col, part);
    dump(d);
    fail();
}

/* Exactly N errors (so no cascade of follow-up errors goes unnoticed). */
static void expect_n(const struct vg_diags *d, size_t n)
{
    if (d->n != n) {
        print_error("expected %zu errors, got %zu:\n", n, d->n);
        dump(d);
        fail();
    }
}

static void expect_loc(struct vg_loc loc, const char *file, unsigned line,
                       unsigned col)
{
    assert_non_null(loc.file);
    assert_string_equal(loc.file, file);
    assert_int_equal(loc.line, line);
    assert_int_equal(loc.col, col);
}

/* ---- values ----------------------------------------------------------- */

static void test_tag_all_columns(void **state)
{
    struct env *e = *state;
    tags(e, "name,section,plc,address,type,word_order,raw_min,raw_max,"
            "eng_min,eng_max,unit,deadband,archive,archive_in,writable,min,max,"
            "description_en,description_de\n"
            "intake.flow,intake,plc1,hr:100,float32,little,0,27648,0,250,"
            "m\xc2\xb3/h,0.5,cyclic:60,fast,yes,10,200,Flow,Durchfluss\n");
    expect_n(&e->d, 0);
    assert_int_equal(e->p->n_tags, 1);
    const struct vg_tag *t = &e->p->tags[0];
    assert_string_equal(t->name, "intake.flow");
    assert_string_equal(t->section.name, "intake");
    assert_int_equal(t->section.index, -1);
    expect_loc(t->section.loc, "tags.csv", 2, 13);
    assert_string_equal(t->plc.name, "plc1");
    assert_int_equal(t->plc.index, -1);
    expect_loc(t->plc.loc, "tags.csv", 2, 20);
    assert_int_equal(t->kind, VG_REG_HOLDING);
    assert_int_equal(t->offset, 100);
    assert_int_equal(t->type, VG_DT_FLOAT32);
    assert_int_equal(t->word_order, VG_WO_LITTLE);
    assert_true(t->scaled);
    assert_true(t->raw_min == 0 && t->raw_max == 27648);
    assert_true(t->eng_min == 0 && t->eng_max == 250);
    assert_string_equal(t->unit, "m\xc2\xb3/h");
    assert_true(t->deadband == 0.5);
    assert_int_equal(t->archive, VG_ARCHIVE_CYCLIC);
    assert_int_equal(t->archive_period_s, 60);
    assert_string_equal(t->archive_in.name, "fast");
    expect_loc(t->archive_in.loc, "tags.csv", 2, 80);
    assert_true(t->writable);
    assert_true(t->has_limits);
    assert_true(t->min == 10 && t->max == 200);
    assert_string_equal(t->description.s[0], "Flow");
    assert_string_equal(t->description.s[1], "Durchfluss");
    expect_loc(t->loc, "tags.csv", 2, 1);
    /* Every field's own position, counted in characters ("m³/h" is 4). */
    static const unsigned cols[VG_TAG_COL_COUNT] = {
        1, 13, 20, 25, 32, 40, 47, 49, 55, 57, 61, 66, 70, 80, 85, 89, 92, 96};
    for (int i = 0; i < VG_TAG_COL_COUNT; i++)
        expect_loc(t->col[i], "tags.csv", 2, cols[i]);
    expect_loc(t->description.loc, "tags.csv", 2, 96);
}

static void test_tag_defaults(void **state)
{
    struct env *e = *state;
    tags(e, H "t1,s1,plc1,co:0,bool,A,B\n");
    expect_n(&e->d, 0);
    assert_int_equal(e->p->n_tags, 1);
    const struct vg_tag *t = &e->p->tags[0];
    assert_int_equal(t->kind, VG_REG_COIL);
    assert_int_equal(t->offset, 0);
    assert_int_equal(t->type, VG_DT_BOOL);
    assert_int_equal(t->word_order, VG_WO_BIG);
    assert_false(t->scaled);
    assert_non_null(t->unit);
    assert_string_equal(t->unit, "");
    assert_true(t->deadband == 0);
    assert_int_equal(t->archive, VG_ARCHIVE_NONE);
    assert_false(t->writable);
    assert_false(t->has_limits);
    /* Columns the header lacks point at the row. */
    expect_loc(t->col[VG_TAG_UNIT], "tags.csv", 2, 1);
    expect_loc(t->col[VG_TAG_MAX], "tags.csv", 2, 1);
    expect_loc(t->col[VG_TAG_TYPE], "tags.csv", 2, 17);
    expect_loc(t->col[VG_TAG_DESCRIPTION], "tags.csv", 2, 22);
}

static void test_tag_value_variants(void **state)
{
    struct env *e = *state;
    tags(e, "name,section,plc,address,type,word_order,archive,writable,"
            "description_en,description_de\n"
            "a,s,p,di:65535,bool,,none,no,A,B\n"
            "b,s,p,ir:7,int32,big,change,,A,B\n"
            "c,s,p,hr:1,uint32,,cyclic:86400,true,A,B\n"
            "d,s,p,hr:3,int16,,cyclic:1,0,A,B\n");
    expect_n(&e->d, 0);
    assert_int_equal(e->p->n_tags, 4);
    const struct vg_tag *t = e->p->tags;
    assert_int_equal(t[0].kind, VG_REG_DISCRETE);
    assert_int_equal(t[0].offset, 65535);
    assert_int_equal(t[0].archive, VG_ARCHIVE_NONE);
    assert_int_equal(t[1].kind, VG_REG_INPUT);
    assert_int_equal(t[1].type, VG_DT_INT32);
    assert_int_equal(t[1].word_order, VG_WO_BIG);
    assert_int_equal(t[1].archive, VG_ARCHIVE_CHANGE);
    assert_false(t[1].writable);
    assert_int_equal(t[2].type, VG_DT_UINT32);
    assert_int_equal(t[2].archive_period_s, 86400);
    assert_true(t[2].writable);
    assert_int_equal(t[3].type, VG_DT_INT16);
    assert_int_equal(t[3].archive_period_s, 1);
}

static void test_alarm_values(void **state)
{
    struct env *e = *state;
    alarms(e, "name,tag,kind,limit,hysteresis,on_delay,off_delay,priority,"
              "section,reference,message_en,message_de\n"
              "a1,t1,deviation,2.5,0.5,1.5,0.001,critical,intake,t1.sp,"
              "Too far,Zu weit\n"
              "a2,t2,digital_on,,,,,low,,,On,\n");
    /* The empty German message is reported at its own (empty) field. */
    expect_n(&e->d, 1);
    expect_diag(&e->d, 3, 31, "missing translation: alarm 'a2' has no 'de' "
                "message");
    assert_int_equal(e->p->n_alarms, 2);
    const struct vg_alarm *a = &e->p->alarms[0];
    assert_string_equal(a->name, "a1");
    assert_string_equal(a->tag.name, "t1");
    assert_int_equal(a->tag.index, -1);
    expect_loc(a->tag.loc, "alarms.csv", 2, 4);
    assert_int_equal(a->kind, VG_ALARM_DEVIATION);
    assert_true(a->has_limit);
    assert_true(a->limit == 2.5);
    assert_true(a->hysteresis == 0.5);
    assert_int_equal(a->on_delay_ms, 1500);
    assert_int_equal(a->off_delay_ms, 1);
    assert_int_equal(a->priority, VG_PRIO_CRITICAL);
    assert_string_equal(a->section.name, "intake");
    expect_loc(a->section.loc, "alarms.csv", 2, 44);
    assert_string_equal(a->reference.name, "t1.sp");
    assert_int_equal(a->reference.index, -1);
    expect_loc(a->reference.loc, "alarms.csv", 2, 51);
    assert_string_equal(a->message.s[0], "Too far");
    assert_string_equal(a->message.s[1], "Zu weit");
    expect_loc(a->message.loc, "alarms.csv", 2, 57);
    static const unsigned cols[VG_ALARM_COL_COUNT] = {1,  4,  7,  17, 21, 25,
                                                      29, 35, 44, 51, 57};
    for (int i = 0; i < VG_ALARM_COL_COUNT; i++)
        expect_loc(a->col[i], "alarms.csv", 2, cols[i]);
    expect_loc(a->loc, "alarms.csv", 2, 1);

    a = &e->p->alarms[1];
    assert_int_equal(a->kind, VG_ALARM_DIGITAL_ON);
    assert_false(a->has_limit);
    assert_true(a->hysteresis == 0);
    assert_int_equal(a->on_delay_ms, 0);
    assert_int_equal(a->priority, VG_PRIO_LOW);
    assert_null(a->section.name);
    assert_null(a->reference.name);
    assert_string_equal(a->message.s[0], "On");
    assert_null(a->message.s[1]);
}

/* ---- CSV syntax and positions ----------------------------------------- */

static void test_quoted_fields(void **state)
{
    struct env *e = *state;
    /* Blanks around unquoted fields are dropped; a field begins at its first
     * other byte, a quoted one at its opening quote. */
    tags(e, "description_en,name,section,plc,address,type,description_de\n"
            "\"two\nlines, \"\"quoted\"\"\",t1,s,p,hr:1,int16,  x y  \n"
            "\"\",t2,s,p,hr:70000,int16,\"B\"\n");
    expect_n(&e->d, 1);
    /* Row 2 spans lines 2-3; row 3 starts on line 4. */
    expect_diag(&e->d, 4, 11,
                "invalid address 'hr:70000': offset must be 0..65535");
    assert_int_equal(e->p->n_tags, 1);
    const struct vg_tag *t = &e->p->tags[0];
    assert_string_equal(t->description.s[0], "two\nlines, \"quoted\"");
    assert_string_equal(t->description.s[1], "x y");
    expect_loc(t->loc, "tags.csv", 2, 1);
    expect_loc(t->col[VG_TAG_NAME], "tags.csv", 3, 20);
    expect_loc(t->col[VG_TAG_TYPE], "tags.csv", 3, 32);
    expect_loc(t->col[VG_TAG_DESCRIPTION], "tags.csv", 2, 1);
}

static void test_comments_empty_lines_bom_crlf(void **state)
{
    struct env *e = *state;
    tags(e, "\xef\xbb\xbf# tags of the intake\r\n"
            "\r\n"
            H
            "# a comment, with \"quotes\r\n"
            "   \r\n"
            "t1,s,p,hr:1,int16,A,B\r\n"
            "\n"
            "t2,s,p,hr:2,flaot32,A,B\r\n"
            "#t3,s,p,hr:3,int16,A,B\n"
            "t4,s,p,hr:4,int16,A,B");
    expect_n(&e->d, 1);
    expect_diag(&e->d, 8, 13,
                "unknown data type 'flaot32' (expected bool, int16, uint16, "
                "int32, uint32 or float32)");
    assert_int_equal(e->p->n_tags, 2);
    expect_loc(e->p->tags[0].loc, "tags.csv", 6, 1);
    assert_string_equal(e->p->tags[0].description.s[1], "B");
    assert_string_equal(e->p->tags[1].name, "t4");
    expect_loc(e->p->tags[1].col[VG_TAG_DESCRIPTION], "tags.csv", 10, 19);
}

static void test_bom_counts_no_column(void **state)
{
    struct env *e = *state;
    tags(e, "\xef\xbb\xbf" "nmae,section,plc,address,type,description_en,"
            "description_de\n");
    expect_diag(&e->d, 1, 1, "unknown column 'nmae' (did you mean 'name'?)");
}

static void test_hash_inside_a_row_is_data(void **state)
{
    struct env *e = *state;
    /* A '#' that starts a line inside a quoted field, or that is not at the
     * start of a line, is text. */
    tags(e, H "t1,s,p,hr:1,int16,\"first\n# not a comment\",#B\n");
    expect_n(&e->d, 0);
    assert_int_equal(e->p->n_tags, 1);
    assert_string_equal(e->p->tags[0].description.s[0],
                        "first\n# not a comment");
    assert_string_equal(e->p->tags[0].description.s[1], "#B");
}

static void test_empty_last_field(void **state)
{
    struct env *e = *state;
    /* The last field is empty; at the end of the file without a newline it
     * begins where the file ends. */
    tags(e, "name,section,plc,address,type,description_en,description_de,"
            "unit\n"
            "t1,s,p,hr:1,int16,A,B,\n"
            "t2,s,p,hr:2,int16,A,B,");
    expect_n(&e->d, 0);
    assert_int_equal(e->p->n_tags, 2);
    expect_loc(e->p->tags[0].col[VG_TAG_UNIT], "tags.csv", 2, 23);
    expect_loc(e->p->tags[1].col[VG_TAG_UNIT], "tags.csv", 3, 23);
}

static void test_bad_utf8(void **state)
{
    struct env *e = *state;
    tags(e, H
         "t1,s,p,hr:1,int16,Caf\xe9,B\n"          /* Latin-1 é */
         "t2,s,p,hr:2,int16,\"x\n\xff\",B\n"      /* in a quoted field */
         "# comment \xc3\n"                        /* truncated sequence */
         "t3,s,p,hr:3,int16,A,B\n"
         "t4,s,p,hr:4,int16,\xed\xa0\x80,\xff\n"); /* surrogate, twice */
    expect_n(&e->d, 4);
    expect_diag(&e->d, 2, 22, "invalid UTF-8 (byte 0xe9)");
    expect_diag(&e->d, 4, 1, "invalid UTF-8 (byte 0xff)");
    expect_diag(&e->d, 5, 11, "invalid UTF-8 (byte 0xc3)");
    /* One report per line. */
    expect_diag(&e->d, 7, 19, "invalid UTF-8 (byte 0xed)");
    assert_int_equal(e->p->n_tags, 1);
    assert_string_equal(e->p->tags[0].name, "t3");
}

static void test_nul_byte(void **state)
{
    struct env *e = *state;
    static const char text[] = H "t1,s,p,hr:1,int16,A\0x,B\n"
                                 "t2,s,p,hr:2,int16,A,B\n";
    parse_n(e, false, text, sizeof text - 1);
    expect_n(&e->d, 1);
    expect_diag(&e->d, 2, 20, "NUL byte");
    assert_int_equal(e->p->n_tags, 1);
    assert_string_equal(e->p->tags[0].name, "t2");
}

static void test_field_counts(void **state)
{
    struct env *e = *state;
    tags(e, H
         "t1,s,p,hr:1,int16,A\n"
         "  t2,s,p,hr:2,int16,A,B,C\n"
         "t3,s,p,hr:3,int16,A,B\n"
         ",\n");
    expect_n(&e->d, 3);
    expect_diag(&e->d, 2, 1, "row has 6 fields but the header has 7");
    expect_diag(&e->d, 3, 3, "row has 8 fields but the header has 7");
    expect_diag(&e->d, 5, 1, "row has 2 fields but the header has 7");
    assert_int_equal(e->p->n_tags, 1);
    assert_string_equal(e->p->tags[0].name, "t3");
}

static void test_malformed_quotes(void **state)
{
    struct env *e = *state;
    tags(e, H
         "t1,s,p,hr:1,int16,ab\"c,B\n"
         "t2,s,p,hr:2,int16,\"ab\"c,B\n"
         "t3,s,p,hr:3,int16,\"multi\nline\" x,B\n"
         "t4,s,p,hr:4,int16,A,B\n");
    expect_n(&e->d, 4);
    expect_diag(&e->d, 2, 19, "quote inside an unquoted field");
    expect_diag(&e->d, 3, 19, "malformed quoted field: text after the "
                              "closing quote");
    /* A quoted field closed lines later is taken for an unbalanced quote:
     * parsing starts again on the next line, whose stray quote is then an
     * error of its own. */
    expect_diag(&e->d, 4, 19, "malformed quoted field: the quote opened "
                              "here is closed on line 5");
    expect_diag(&e->d, 5, 1, "quote inside an unquoted field");
    assert_int_equal(e->p->n_tags, 1);
    assert_string_equal(e->p->tags[0].name, "t4");
    expect_loc(e->p->tags[0].loc, "tags.csv", 6, 1);
}

static void test_unterminated_quote(void **state)
{
    struct env *e = *state;
    /* The quote on line 2 is never closed: it runs to the next quote (line
     * 5), which text follows. Parsing starts again on line 3, so t2 and t3
     * are still read; then the quote on line 5 runs to the end of the file,
     * and parsing starts again after it. */
    tags(e, H
         "t1,s,p,hr:1,int16,\"oops,B\n"
         "t2,s,p,hr:2,int16,A,B\n"
         "t3,s,p,hr:3,int16,A,B\n"
         "t4,s,p,\"hr:4,int16,A,B\n"
         "t5,s,p,hr:5,int16,A,B");
    expect_n(&e->d, 2);
    expect_diag(&e->d, 2, 19, "malformed quoted field: the quote opened here "
                              "is closed on line 5 and text follows it (a "
                              "missing closing quote?)");
    expect_diag(&e->d, 5, 8, "unterminated quoted field (no closing quote "
                             "before the end of the file)");
    assert_int_equal(e->p->n_tags, 3);
    assert_string_equal(e->p->tags[2].name, "t5");
    expect_loc(e->p->tags[2].loc, "tags.csv", 6, 1);
    assert_string_equal(e->p->tags[0].name, "t2");
    expect_loc(e->p->tags[0].loc, "tags.csv", 3, 1);
    assert_string_equal(e->p->tags[1].name, "t3");
}

static void test_unterminated_quote_in_header(void **state)
{
    struct env *e = *state;
    tags(e, "name,\"section\n" "t1,s,p,hr:1,int16,A,B\n");
    /* The header is the first row: it is lost, and so are the rows (taking
     * the next row for the header would only bring nonsense errors). */
    expect_n(&e->d, 1);
    expect_diag(&e->d, 1, 6, "unterminated quoted field");
    assert_int_equal(e->p->n_tags, 0);
    vg_diags_free(&e->d);
    tags(e, "name,se\"ction\n" "t1,s,p,hr:1,int16,A,B\n");
    expect_n(&e->d, 1);
    expect_diag(&e->d, 1, 6, "quote inside an unquoted field");
}

static void test_no_header(void **state)
{
    struct env *e = *state;
    tags(e, "");
    expect_n(&e->d, 1);
    expect_diag(&e->d, 0, 0, "no header row");
    vg_diags_free(&e->d);
    tags(e, "\xef\xbb\xbf# only\n\n# comments\n");
    expect_n(&e->d, 1);
    expect_diag(&e->d, 0, 0, "no header row");
}

/* ---- header ----------------------------------------------------------- */

static void test_header_unknown_and_duplicate(void **state)
{
    struct env *e = *state;
    tags(e, "name,secton,plc,address,type,description_en,description_de,"
            "colour,plc,Unit\n"
            "t1,s,p,hr:1,int16,A,B,red,p,x\n");
    expect_n(&e->d, 5);
    expect_diag(&e->d, 1, 6, "unknown column 'secton' (did you mean "
                             "'section'?)");
    expect_diag(&e->d, 1, 60, "unknown column 'colour' (the columns are "
                              "name, section, plc, address, type, "
                              "word_order, raw_min, raw_max, eng_min, "
                              "eng_max, unit, deadband, archive, archive_in, "
                              "writable, "
                              "min, max, description_LL)");
    expect_diag(&e->d, 1, 67, "duplicate column 'plc'");
    expect_diag(&e->d, 1, 71, "unknown column 'Unit' (did you mean 'unit'?)");
    expect_diag(&e->d, 1, 1, "missing required column 'section'");
    /* Rows are still checked, but nothing half-made is appended. */
    assert_int_equal(e->p->n_tags, 0);
}

static void test_header_missing_column_rows_still_checked(void **state)
{
    struct env *e = *state;
    tags(e, "# header follows\n"
            "  name,section,plc,address,description_en,description_de\n"
            "t1,s,p,hr:70000,A,B\n");
    expect_n(&e->d, 2);
    expect_diag(&e->d, 2, 1, "missing required column 'type'");
    expect_diag(&e->d, 3, 8, "offset must be 0..65535");
    assert_int_equal(e->p->n_tags, 0);
}

static void test_header_without_name_skips_rows(void **state)
{
    struct env *e = *state;
    tags(e, "section,plc,address,type,description_en,description_de\n"
            "s,p,hr:70000,int16,A,B\n");
    expect_n(&e->d, 1);
    expect_diag(&e->d, 1, 1, "missing required column 'name'");
    assert_int_equal(e->p->n_tags, 0);
}

static void test_header_languages(void **state)
{
    struct env *e = *state;
    tags(e, "name,section,plc,address,type,description_en,description_fr,"
            ",description\n"
            "t1,s,p,hr:1,int16,A,B,,C\n");
    expect_n(&e->d, 4);
    expect_diag(&e->d, 1, 46, "column 'description_fr' is for language "
                              "'fr', which is not a project language (en, "
                              "de)");
    expect_diag(&e->d, 1, 61, "empty column name");
    expect_diag(&e->d, 1, 62, "unknown column 'description' (did you mean "
                              "'description_en'?)");
    expect_diag(&e->d, 1, 1, "missing translation column description_de");
    /* The languages are only a header problem: the tag is still read. */
    assert_int_equal(e->p->n_tags, 1);
    assert_string_equal(e->p->tags[0].description.s[0], "A");
    assert_null(e->p->tags[0].description.s[1]);
}

static void test_header_without_project_languages(void **state)
{
    struct env *e = *state;
    /* project.yaml did not parse: any description_LL is accepted, none is
     * required, and no text is kept. */
    vg_project_free(e->p);
    e->p = project_new(0);
    tags(e, "name,section,plc,address,type,description_xx,description_en\n"
            "t1,s,p,hr:1,int16,A,B\n");
    expect_n(&e->d, 0);
    assert_int_equal(e->p->n_tags, 1);
    assert_null(e->p->tags[0].description.s[0]);
    expect_loc(e->p->tags[0].description.loc, "tags.csv", 2, 19);
}

static void test_header_too_many_columns(void **state)
{
    struct env *e = *state;
    size_t n = 300;
    char *text = malloc(n * 2 + 64);
    assert_non_null(text);
    char *o = text;
    for (size_t i = 0; i < n; i++) {
        *o++ = 'x';
        *o++ = ',';
    }
    strcpy(o, "x\nx\n");
    tags(e, text);
    free(text);
    expect_n(&e->d, 1);
    expect_diag(&e->d, 1, 1, "too many columns in the header (301; at most "
                             "256)");
}

/* ---- field checks: tags ----------------------------------------------- */

static void test_tag_name_section_plc(void **state)
{
    struct env *e = *state;
    tags(e, H
         "1abc,s,p,hr:1,int16,A,B\n"
         ",s,p,hr:2,int16,A,B\n"
         "t3,,p,hr:3,int16,A,B\n"
         "t4,s,\"\",hr:4,int16,A,B\n"
         "t5 x,s,p,hr:5,int16,A,B\n");
    expect_n(&e->d, 5);
    expect_diag(&e->d, 2, 1, "invalid tag name '1abc' (1..64 letters, "
                             "digits, '_', '-' or '.', starting with a "
                             "letter)");
    expect_diag(&e->d, 3, 1, "missing tag name");
    expect_diag(&e->d, 4, 4, "missing section (every tag needs one)");
    expect_diag(&e->d, 5, 6, "missing plc (every tag needs one)");
    expect_diag(&e->d, 6, 1, "invalid tag name 't5 x'");
    assert_int_equal(e->p->n_tags, 0);
}

static void test_tag_address(void **state)
{
    struct env *e = *state;
    tags(e, H
         "t1,s,p,hr:70000,int16,A,B\n"
         "t2,s,p,xx:1,int16,A,B\n"
         "t3,s,p,hr1,int16,A,B\n"
         "t4,s,p,hr:-1,int16,A,B\n"
         "t5,s,p,hr:,int16,A,B\n"
         "t6,s,p,,int16,A,B\n"
         "t7,s,p,HR:1,int16,A,B\n"
         "t8,s,p,hr:99999999999999999999999,int16,A,B\n"
         "t9,s,p,hr:65536,int16,A,B\n");
    expect_n(&e->d, 9);
    expect_diag(&e->d, 2, 8,
                "invalid address 'hr:70000': offset must be 0..65535");
    expect_diag(&e->d, 3, 8, "invalid address 'xx:1' (expected KIND:OFFSET "
                             "with KIND co, di, hr or ir, e.g. hr:100)");
    expect_diag(&e->d, 4, 8, "invalid address 'hr1' (expected KIND:OFFSET");
    expect_diag(&e->d, 5, 8, "invalid address 'hr:-1': the offset must be a "
                             "number 0..65535");
    expect_diag(&e->d, 6, 8, "invalid address 'hr:': the offset must be a "
                             "number");
    expect_diag(&e->d, 7, 8, "missing address");
    expect_diag(&e->d, 8, 8, "invalid address 'HR:1'");
    expect_diag(&e->d, 9, 8, "offset must be 0..65535");
    expect_diag(&e->d, 10, 8, "invalid address 'hr:65536': offset must be "
                              "0..65535");
    assert_int_equal(e->p->n_tags, 0);
}

static void test_tag_type_and_word_order(void **state)
{
    struct env *e = *state;
    tags(e, "name,section,plc,address,type,word_order,description_en,"
            "description_de\n"
            "t1,s,p,hr:1,,,A,B\n"
            "t2,s,p,hr:1,INT16,,A,B\n"
            "t3,s,p,hr:1,int16,big,A,B\n"
            "t4,s,p,co:1,bool,little,A,B\n"
            "t5,s,p,hr:1,float32,middle,A,B\n"
            "t6,s,p,hr:1,bogus,little,A,B\n");
    expect_n(&e->d, 6);
    expect_diag(&e->d, 2, 13, "missing data type (expected bool, int16, "
                              "uint16, int32, uint32 or float32)");
    expect_diag(&e->d, 3, 13, "unknown data type 'INT16'");
    expect_diag(&e->d, 4, 19, "word_order 'big' given for a int16 tag: it "
                              "applies only to 32-bit types");
    expect_diag(&e->d, 5, 18, "word_order 'little' given for a bool tag");
    expect_diag(&e->d, 6, 21, "invalid word_order 'middle' (expected big or "
                              "little)");
    /* With the type unknown there is nothing to hold the word order against. */
    expect_diag(&e->d, 7, 13, "unknown data type 'bogus'");
    /* A bad word order is defaulted; the tags themselves are good. */
    assert_int_equal(e->p->n_tags, 3);
    assert_string_equal(e->p->tags[0].name, "t3");
    assert_int_equal(e->p->tags[1].word_order, VG_WO_BIG);
    assert_string_equal(e->p->tags[2].name, "t5");
    assert_int_equal(e->p->tags[2].word_order, VG_WO_BIG);
}

static void test_tag_numbers_and_scaling(void **state)
{
    struct env *e = *state;
    tags(e, "name,raw_min,raw_max,eng_min,eng_max,deadband,min,max,section,"
            "plc,address,type,description_en,description_de\n"
            "t1,0,100,,,,,,s,p,hr:1,int16,A,B\n"
            "t2,0,,0,,,,,s,p,hr:2,int16,A,B\n"
            "t3,x,100,0,1,,,,s,p,hr:3,int16,A,B\n"
            "t4,,,,,-0.5,,,s,p,hr:4,int16,A,B\n"
            "t5,,,,,1e999,5,,s,p,hr:5,int16,A,B\n"
            "t6,,,,,,,nan,s,p,hr:6,int16,A,B\n"
            "t7, 1 ,2,3,4,,,,s,p,hr:7,int16,A,B\n");
    expect_n(&e->d, 7);
    expect_diag(&e->d, 2, 10, "incomplete scaling: eng_min and eng_max are "
                              "missing (give all four of raw_min, raw_max, "
                              "eng_min and eng_max, or none)");
    expect_diag(&e->d, 3, 6, "incomplete scaling: raw_max and eng_max are "
                             "missing");
    expect_diag(&e->d, 4, 4, "invalid raw_min 'x' (expected a number)");
    expect_diag(&e->d, 5, 8, "invalid deadband '-0.5' (must be 0 or more)");
    expect_diag(&e->d, 6, 8, "invalid deadband '1e999' (expected a number)");
    expect_diag(&e->d, 6, 16, "write limits need both min and max; max is "
                              "missing");
    expect_diag(&e->d, 7, 10, "invalid max 'nan' (expected a number)");
    /* Bad optional fields take their defaults; the tags are kept. */
    assert_int_equal(e->p->n_tags, 7);
    for (size_t i = 0; i < 6; i++) {
        assert_false(e->p->tags[i].scaled);
        assert_false(e->p->tags[i].has_limits);
        assert_true(e->p->tags[i].deadband == 0);
    }
    assert_true(e->p->tags[6].scaled);
    assert_true(e->p->tags[6].raw_min == 1);
    assert_true(e->p->tags[6].eng_max == 4);
}

static void test_tag_archive_writable(void **state)
{
    struct env *e = *state;
    tags(e, "name,section,plc,address,type,archive,writable,description_en,"
            "description_de\n"
            "t1,s,p,hr:1,int16,cyclic:0,maybe,A,B\n"
            "t2,s,p,hr:2,int16,cyclic:86401,,A,B\n"
            "t3,s,p,hr:3,int16,cyclic:+5,Y,A,B\n"
            "t4,s,p,hr:4,int16,always,No,A,B\n"
            "t5,s,p,hr:5,int16,cyclic:,,A,B\n");
    expect_n(&e->d, 6);
    expect_diag(&e->d, 2, 19, "invalid archive 'cyclic:0': the period must "
                              "be 1..86400 seconds");
    expect_diag(&e->d, 2, 28, "invalid writable 'maybe' (expected yes or "
                              "no)");
    expect_diag(&e->d, 3, 19, "invalid archive 'cyclic:86401'");
    expect_diag(&e->d, 4, 19, "invalid archive 'cyclic:+5'");
    expect_diag(&e->d, 5, 19, "invalid archive 'always' (expected none, "
                              "change or cyclic:SECONDS)");
    expect_diag(&e->d, 6, 19, "invalid archive 'cyclic:'");
    assert_int_equal(e->p->n_tags, 5);
    assert_false(e->p->tags[0].writable);
    assert_int_equal(e->p->tags[0].archive, VG_ARCHIVE_NONE);
    assert_true(e->p->tags[2].writable);
    assert_false(e->p->tags[3].writable);
}

static void test_long_values_are_shortened_in_messages(void **state)
{
    struct env *e = *state;
    size_t n = 1 << 20;
    char *text = malloc(n + 128);
    assert_non_null(text);
    strcpy(text, H "t1,s,p,hr:1,");
    size_t o = strlen(text);
    memset(text + o, 'x', n);
    strcpy(text + o + n, ",\"A\nB\",B\n");
    tags(e, text);
    free(text);
    expect_n(&e->d, 1);
    expect_diag(&e->d, 2, 13, "unknown data type 'xxxxxxxxxxxxxxxxxxxxxxxxx"
                              "xxxxxxxxxxxxxxx\xe2\x80\xa6' (expected");
}

/* ---- field checks: alarms --------------------------------------------- */

static void test_alarm_errors(void **state)
{
    struct env *e = *state;
    alarms(e, "name,tag,kind,limit,hysteresis,on_delay,off_delay,priority,"
              "message_en,message_de\n"
              "a1,t,hihg,1,,,,high,A,B\n"
              "a2,t,high,x,-1,,,urgent,A,B\n"
              "a3,t,low,1,,3601,-1,,A,B\n"
              "a4,,low,1,,,2.5s,medium,A,B\n"
              "a5,t,,1,,,,low,A,B\n"
              "a6,t,high,1,0,3600,0,critical,A,B\n");
    expect_n(&e->d, 10);
    expect_diag(&e->d, 2, 6, "unknown alarm kind 'hihg' (expected high, "
                             "high_high, low, low_low, digital_on, "
                             "digital_off or deviation)");
    expect_diag(&e->d, 3, 11, "invalid limit 'x' (expected a number)");
    expect_diag(&e->d, 3, 13, "invalid hysteresis '-1' (must be 0 or more)");
    expect_diag(&e->d, 3, 18, "unknown priority 'urgent' (expected "
                              "critical, high, medium or low)");
    expect_diag(&e->d, 4, 13, "invalid on_delay '3601' (expected seconds, "
                              "0..3600)");
    expect_diag(&e->d, 4, 18, "invalid off_delay '-1' (expected seconds, "
                              "0..3600)");
    expect_diag(&e->d, 4, 21, "missing priority (expected critical, high, "
                              "medium or low)");
    expect_diag(&e->d, 5, 4, "missing tag (every alarm needs one)");
    expect_diag(&e->d, 5, 13, "invalid off_delay '2.5s' (expected a number)");
    expect_diag(&e->d, 6, 6, "missing alarm kind");
    /* Alarm rows with any error are dropped: nothing refers to them. */
    assert_int_equal(e->p->n_alarms, 1);
    assert_string_equal(e->p->alarms[0].name, "a6");
    assert_int_equal(e->p->alarms[0].on_delay_ms, 3600000);
}

static void test_alarm_header(void **state)
{
    struct env *e = *state;
    alarms(e, "name,tag,kind,priority,message_en,mesage_de,description_de\n"
              "a1,t,high,high,A,B,C\n");
    expect_n(&e->d, 3);
    expect_diag(&e->d, 1, 35, "unknown column 'mesage_de' (did you mean "
                              "'message_de'?)");
    expect_diag(&e->d, 1, 45, "unknown column 'description_de' (the columns "
                              "are name, tag, kind, limit, hysteresis, "
                              "on_delay, off_delay, priority, section, "
                              "reference, message_LL)");
    expect_diag(&e->d, 1, 1, "missing translation column message_de");
    assert_int_equal(e->p->n_alarms, 1);
    assert_null(e->p->alarms[0].message.s[1]);
}

static void test_alarm_missing_required(void **state)
{
    struct env *e = *state;
    alarms(e, AH "a1,t,high,1,,A,B\n");
    expect_n(&e->d, 1);
    expect_diag(&e->d, 2, 13, "missing priority");
    vg_diags_free(&e->d);
    alarms(e, "name,tag,limit,priority,message_en,message_de\n"
              "a1,t,1,high,A,B\n");
    /* The rows are still checked, but the missing column is not reported
     * again for each of them. */
    expect_n(&e->d, 1);
    expect_diag(&e->d, 1, 1, "missing required column 'kind'");
    assert_int_equal(e->p->n_alarms, 0);
}

/* ---- robustness -------------------------------------------------------- */

static uint32_t rnd(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Damaged copies of a good file: nothing may crash, leak or read outside
 * the buffer (the sanitizer build checks), every error has a position
 * inside the file, and every tag appended has its required fields. */
static void test_mutations(void **state)
{
    (void)state;
    static const char good[] =
        "\xef\xbb\xbf# comment\n"
        "name,section,plc,address,type,word_order,raw_min,raw_max,eng_min,"
        "eng_max,unit,deadband,archive,writable,min,max,description_en,"
        "description_de\n"
        "a,s,p,hr:1,float32,little,0,10,0,1,m,0.1,change,yes,0,1,\"A\nx\","
        "\"B \"\"q\"\"\"\n"
        "b,s,p,co:1,bool,,,,,,,,,,,,A,B\r\n"
        "\n"
        "c,s,p,ir:9,uint32,,,,,,,,cyclic:5,,,,A,B";
    static const char pieces[][4] = {"\"", ",", "\n", "#", "\r", "\xff",
                                     "\xc3", " ", "\"\"", "\0"};
    uint32_t seed = 12345;
    char buf[1024];
    for (int iter = 0; iter < 3000; iter++) {
        size_t len = sizeof good - 1;
        memcpy(buf, good, len);
        int edits = 1 + (int)(rnd(&seed) % 6);
        for (int k = 0; k < edits && len + 4 < sizeof buf; k++) {
            size_t at = rnd(&seed) % (len + 1);
            switch (rnd(&seed) % 3) {
            case 0: /* delete a byte */
                if (at < len) {
                    memmove(buf + at, buf + at + 1, len - at - 1);
                    len--;
                }
                break;
            case 1: { /* insert a piece */
                size_t pi = rnd(&seed) % (sizeof pieces / sizeof pieces[0]);
                size_t pl = pi == 9 ? 1 : strlen(pieces[pi]);
                memmove(buf + at + pl, buf + at, len - at);
                memcpy(buf + at, pieces[pi], pl);
                len += pl;
                break;
            }
            default: /* truncate */
                len = at;
                break;
            }
        }
        struct env e = {project_new(iter % 3 == 0 ? 0 : 2), {0}};
        vg_diags_init(&e.d);
        parse_n(&e, iter % 2 == 1, buf, len);
        for (size_t i = 0; i < e.d.n; i++)
            assert_true(e.d.v[i].line <= 40 && e.d.v[i].col <= len + 1);
        for (size_t i = 0; i < e.p->n_tags; i++) {
            assert_non_null(e.p->tags[i].name);
            assert_non_null(e.p->tags[i].section.name);
            assert_non_null(e.p->tags[i].plc.name);
            assert_non_null(e.p->tags[i].unit);
        }
        vg_project_free(e.p);
        vg_diags_free(&e.d);
    }
}

/* A file full of unbalanced quotes: each one runs to the next line, is
 * reported, and parsing starts again on the line after it, so the work
 * stays linear and every one is reported (up to the diagnostics limit). */
static void test_many_unbalanced_quotes(void **state)
{
    struct env *e = *state;
    size_t n = 20000;
    char *text = malloc(n * 5 + sizeof H);
    assert_non_null(text);
    strcpy(text, H);
    size_t o = strlen(text);
    for (size_t i = 0; i < n; i++) {
        memcpy(text + o, "a,\"x\n", 5);
        o += 5;
    }
    text[o] = '\0';
    tags(e, text);
    free(text);
    assert_int_equal(e->d.n + e->d.dropped, n);
    expect_diag(&e->d, 2, 3, "the quote opened here is closed on line 3");
    assert_int_equal(e->p->n_tags, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_tag_all_columns),
        T(test_tag_defaults),
        T(test_tag_value_variants),
        T(test_alarm_values),
        T(test_quoted_fields),
        T(test_comments_empty_lines_bom_crlf),
        T(test_bom_counts_no_column),
        T(test_hash_inside_a_row_is_data),
        T(test_empty_last_field),
        T(test_bad_utf8),
        T(test_nul_byte),
        T(test_field_counts),
        T(test_malformed_quotes),
        T(test_unterminated_quote),
        T(test_unterminated_quote_in_header),
        T(test_no_header),
        T(test_header_unknown_and_duplicate),
        T(test_header_missing_column_rows_still_checked),
        T(test_header_without_name_skips_rows),
        T(test_header_languages),
        T(test_header_without_project_languages),
        T(test_header_too_many_columns),
        T(test_tag_name_section_plc),
        T(test_tag_address),
        T(test_tag_type_and_word_order),
        T(test_tag_numbers_and_scaling),
        T(test_tag_archive_writable),
        T(test_long_values_are_shortened_in_messages),
        T(test_alarm_errors),
        T(test_alarm_header),
        T(test_alarm_missing_required),
        T(test_mutations),
        T(test_many_unbalanced_quotes),
#undef T
    };
    return cmocka_run_group_tests_name("config csv", tests, NULL, NULL);
}
