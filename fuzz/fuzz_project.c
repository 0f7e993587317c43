/* libFuzzer target for the project front ends (config/project.h): the YAML
 * parser (project.yaml and screens), the CSV parser (tags.csv, alarms.csv),
 * validation, the diff, and bundle unpacking.
 *
 * Input layout: byte 0 selects the mode.
 *   mode & 1 == 0: the rest is split at NUL bytes into files, in this order:
 *     project.yaml, tags.csv, alarms.csv, screens/s0.yaml, screens/s1.yaml,
 *     ... (at most 8 screens). Missing parts are missing files. The project
 *     is parsed; if byte 0 & 2, a second parse of the same files is diffed
 *     against the first.
 *   mode & 1 == 1: the rest is a project bundle handed to
 *     vg_project_files_unpack; a bundle that unpacks is parsed.
 * Checked: nothing crashes or leaks (ASan), every diagnostic has a file and a
 * message, a project without diagnostics has every reference resolved, two
 * parses of the same files give the same number of diagnostics, and a diff
 * of a project with itself says "no differences". Any failed check aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "project.h"

#include "fuzz_check.h"

static void check_valid(const struct vg_project *p)
{
    for (size_t i = 0; i < p->n_tags; i++) {
        CHECK(p->tags[i].section.index >= 0);
        CHECK(p->tags[i].plc.index >= 0);
        CHECK(vg_project_find_tag(p, p->tags[i].name) >= 0);
    }
    for (size_t i = 0; i < p->n_alarms; i++)
        CHECK(p->alarms[i].tag.index >= 0);
    for (size_t i = 0; i < p->n_stations; i++)
        CHECK(p->stations[i].start_screen.index >= 0);
}

static size_t parse_and_check(const struct vg_project_files *fs,
                              struct vg_project **out)
{
    struct vg_diags d;
    vg_diags_init(&d);
    struct vg_project *p = vg_project_parse(fs, &d);
    CHECK(p != NULL);
    for (size_t i = 0; i < d.n; i++) {
        CHECK(d.v[i].file != NULL && d.v[i].msg != NULL);
        char line[1024];
        vg_diag_format(&d.v[i], line, sizeof line);
        CHECK(line[0] != '\0');
    }
    if (d.n == 0 && d.dropped == 0)
        check_valid(p);
    size_t n = d.n + d.dropped;
    vg_diags_free(&d);
    *out = p;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *input, size_t input_size)
{
    if (input_size < 1)
        return 0;
    unsigned mode = input[0];
    const char *data = (const char *)input + 1;
    size_t size = input_size - 1;
    struct vg_project_files fs = {0};

    if (mode & 1) {
        char errmsg[VG_ERRMSG_SIZE];
        if (vg_project_files_unpack((const unsigned char *)data, size, &fs,
                                    errmsg) != VG_OK) {
            CHECK(errmsg[0] != '\0');
            CHECK(fs.n == 0);
            return 0;
        }
    } else {
        static const char *const fixed[] = {"project.yaml", "tags.csv",
                                            "alarms.csv"};
        size_t part = 0, start = 0;
        for (size_t i = 0; i <= size && part < 11; i++) {
            if (i < size && data[i] != '\0')
                continue;
            char path[64];
            if (part < 3)
                snprintf(path, sizeof path, "%s", fixed[part]);
            else
                snprintf(path, sizeof path, "screens/s%zu.yaml", part - 3);
            CHECK(vg_project_files_add(&fs, path, data + start, i - start) ==
                  VG_OK);
            part++;
            start = i + 1;
        }
    }

    struct vg_project *a = NULL, *b = NULL;
    size_t na = parse_and_check(&fs, &a);
    if (mode & 2) {
        size_t nb = parse_and_check(&fs, &b);
        CHECK(na == nb);
        char *text = NULL;
        CHECK(vg_project_diff(a, b, &text) == VG_OK);
        CHECK(text != NULL);
        if (na == 0)
            CHECK(strcmp(text, "no differences\n") == 0);
        free(text);
        vg_project_free(b);
    }
    /* Round trip through a bundle: packing what was read must unpack to the
     * same digest. */
    unsigned char *bundle = NULL;
    size_t bundle_len = 0;
    char errmsg[VG_ERRMSG_SIZE];
    if (vg_project_files_pack(&fs, &bundle, &bundle_len, errmsg) == VG_OK) {
        struct vg_project_files back = {0};
        CHECK(vg_project_files_unpack(bundle, bundle_len, &back, errmsg) ==
              VG_OK);
        unsigned char d1[VG_PROJECT_DIGEST_SIZE], d2[VG_PROJECT_DIGEST_SIZE];
        vg_project_files_digest(&fs, d1);
        vg_project_files_digest(&back, d2);
        CHECK(memcmp(d1, d2, sizeof d1) == 0);
        vg_project_files_free(&back);
        free(bundle);
    }
    vg_project_free(a);
    vg_project_files_free(&fs);
    return 0;
}
