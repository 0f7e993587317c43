/* What every fuzz target shares: CHECK, which aborts (libFuzzer reports it
 * as a crash, replay.c as a failed test) with the file, line and condition
 * that failed, and the entry point's prototype. */
#ifndef VG_FUZZ_CHECK_H
#define VG_FUZZ_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                  \
            abort();                                                         \
        }                                                                    \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *input, size_t input_size);

#endif /* VG_FUZZ_CHECK_H */
