/* Command-line options of the C benchmarks: "--name value" pairs, each
 * either a whole number within bounds or a text (a directory). */
#ifndef VG_BENCH_ARGS_H
#define VG_BENCH_ARGS_H

struct bench_opt {
    const char *name;  /* "--alarms"; NULL ends a table */
    unsigned *number;  /* a whole number of 1..MAX goes here, or */
    const char **text; /* the value itself (borrowed from argv) */
    long max;
};

/* Parse ARGV (after the program name) against OPTS. 0, or -1 after
 * printing to stderr which option is wrong and why. */
int bench_args(int argc, char **argv, const struct bench_opt *opts);

#endif
