/* The write log: one JSON line per write request a client made, so that
 * tests can check after the fact who wrote what, and in which term:
 *
 *   {"t_ms":1700000000123,"fc":16,"address":100,"values":[2750],
 *    "node":2,"term":7,"ok":true}
 *
 * t_ms is wall-clock time; node and term are what the fencing registers
 * held right after the request was applied (so a write to the fencing
 * registers shows its own new values). Every line is flushed at once: the
 * log must be complete even when the simulator is killed. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "plcsim.h"

struct plcsim_writelog {
    FILE *f;
};

int plcsim_writelog_open(const char *path, struct plcsim_writelog **out,
                         char *errmsg)
{
    struct plcsim_writelog *l = calloc(1, sizeof *l);

    if (!l) {
        vg_errf(errmsg, "out of memory");
        return VG_ENOMEM;
    }
    l->f = fopen(path, "ae");
    if (!l->f) {
        vg_errf(errmsg, "cannot open write log %s: %s", path, strerror(errno));
        free(l);
        return VG_EIO;
    }
    *out = l;
    return 0;
}

int plcsim_writelog_append(struct plcsim_writelog *l,
                           const struct plcsim_write *w, uint32_t node,
                           uint32_t term)
{
    unsigned i;

    fprintf(l->f, "{\"t_ms\":%llu,\"fc\":%d,\"address\":%u,\"values\":[",
            (unsigned long long)vg_now_wall_ms(), w->fc, w->address);
    for (i = 0; i < w->n; i++)
        fprintf(l->f, i ? ",%u" : "%u", (unsigned)w->values[i]);
    fprintf(l->f, "],\"node\":%lu,\"term\":%lu,\"ok\":%s}\n",
            (unsigned long)node, (unsigned long)term,
            w->ok ? "true" : "false");
    return fflush(l->f) == 0 && !ferror(l->f) ? 0 : VG_EIO;
}

void plcsim_writelog_close(struct plcsim_writelog *l)
{
    if (!l)
        return;
    fclose(l->f);
    free(l);
}
