/* See bench_args.h. */
#include "bench_args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bench_args(int argc, char **argv, const struct bench_opt *opts)
{
    for (int i = 1; i < argc; i += 2) {
        const char *name = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        const struct bench_opt *o = opts;
        char *end;
        long n;

        while (o->name != NULL && strcmp(o->name, name) != 0) {
            o++;
        }
        if (o->name == NULL) {
            fprintf(stderr, "unknown option '%s'\n", name);
            return -1;
        }
        if (v == NULL) {
            fprintf(stderr, "%s: a value is missing\n", name);
            return -1;
        }
        if (o->text != NULL) {
            *o->text = v;
            continue;
        }
        errno = 0;
        n = strtol(v, &end, 10);
        if (errno != 0 || end == v || *end != '\0' || n < 1 || n > o->max) {
            fprintf(stderr, "%s: '%s' is not a whole number of 1..%ld\n", name, v,
                    o->max);
            return -1;
        }
        *o->number = (unsigned)n;
    }
    return 0;
}
