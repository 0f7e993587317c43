/* What every fuzz target shares: CHECK, which aborts (libFuzzer reports it
 * as a crash, replay.c as a failed test) with the file, line and condition
 * that failed, the entry point's prototype, and a scratch directory. */
#ifndef VG_FUZZ_CHECK_H
#define VG_FUZZ_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                  \
            abort();                                                         \
        }                                                                    \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *input, size_t input_size);

/* Make DIR (SIZE bytes) a new directory $TMPDIR/vg-fuzz-NAME-XXXXXX
 * (/tmp without TMPDIR); aborts when it cannot. */
static inline void fuzz_tmpdir(char *dir, size_t size, const char *name)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, size, "%s/vg-fuzz-%s-XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp", name);
    CHECK(mkdtemp(dir) != NULL);
}

#endif /* VG_FUZZ_CHECK_H */
