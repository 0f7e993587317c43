/* The archive recorder (archive.h): samples of the polled tags, buffered,
 * and packed into HISTORY_SAMPLES bodies. */
#include <stdlib.h>
#include <string.h>

#include "../../config/project.h"
#include "../../replication/replication.h"
#include "../plc/plc.h"
#include "archive.h"

struct sample {
    uint32_t tag;
    uint64_t t_ms;
    double value;
    bool bad;
};

struct vg_archive_recorder {
    const struct vg_project *pr; /* borrowed; NULL when stopped */
    size_t buffer_max;
    struct sample *buf;
    size_t n, cap;
    /* The tags archived cyclically and the period slot each one was last
     * archived in: the loop looks at these every iteration, not at every
     * tag of the project (a scan of 20 000 tags per iteration was 3 % of a
     * leader's time acknowledging alarms, with no tag archived cyclically). */
    struct cyclic_tag {
        uint32_t tag;
        uint64_t last;
    } *cyclic;
    size_t n_cyclic;
    uint32_t *name_rank;   /* per tag: its place in the tags sorted by name */
    uint32_t *batch_index; /* per tag: its index in the batch being built */
    uint64_t *batch_stamp; /* per tag: which batch that index belongs to */
    uint64_t batch_no;
    uint64_t archived, dropped;
};

struct vg_archive_recorder *vg_archive_recorder_new(size_t buffer_max)
{
    struct vg_archive_recorder *r = calloc(1, sizeof *r);
    if (r != NULL) {
        r->buffer_max = buffer_max < 10 ? 10 : buffer_max;
    }
    return r;
}

void vg_archive_recorder_stop(struct vg_archive_recorder *r)
{
    free(r->cyclic);
    free(r->name_rank);
    free(r->batch_index);
    free(r->batch_stamp);
    r->cyclic = NULL;
    r->name_rank = NULL;
    r->batch_index = NULL;
    r->batch_stamp = NULL;
    r->n_cyclic = 0;
    r->n = 0;
    r->pr = NULL;
}

void vg_archive_recorder_free(struct vg_archive_recorder *r)
{
    if (r != NULL) {
        vg_archive_recorder_stop(r);
        free(r->buf);
        free(r);
    }
}

static int name_cmp(const void *a, const void *b, void *arg)
{
    const struct vg_project *pr = arg;
    return strcmp(pr->tags[*(const uint32_t *)a].name,
                  pr->tags[*(const uint32_t *)b].name);
}

/* Each tag's place among PR's tags sorted by name (strcmp, as the state
 * machine compares them), malloc'd; NULL when out of memory. */
static uint32_t *name_ranks(const struct vg_project *pr)
{
    uint32_t *order = malloc((pr->n_tags + 1) * sizeof *order);
    uint32_t *rank = malloc((pr->n_tags + 1) * sizeof *rank);

    if (order == NULL || rank == NULL) {
        free(order);
        free(rank);
        return NULL;
    }
    for (size_t i = 0; i < pr->n_tags; i++) {
        order[i] = (uint32_t)i;
    }
    qsort_r(order, pr->n_tags, sizeof *order, name_cmp, (void *)pr);
    for (size_t i = 0; i < pr->n_tags; i++) {
        rank[order[i]] = (uint32_t)i;
    }
    free(order);
    return rank;
}

int vg_archive_recorder_start(struct vg_archive_recorder *r,
                              const struct vg_project *pr)
{
    vg_archive_recorder_stop(r);
    r->cyclic = calloc(pr->n_tags + 1, sizeof *r->cyclic);
    r->batch_index = calloc(pr->n_tags + 1, sizeof *r->batch_index);
    r->batch_stamp = calloc(pr->n_tags + 1, sizeof *r->batch_stamp);
    r->name_rank = name_ranks(pr);
    if (r->cyclic == NULL || r->batch_index == NULL || r->batch_stamp == NULL ||
        r->name_rank == NULL) {
        vg_archive_recorder_stop(r);
        return VG_ENOMEM;
    }
    for (size_t i = 0; i < pr->n_tags; i++) {
        if (pr->tags[i].archive == VG_ARCHIVE_CYCLIC && pr->tags[i].archive_period_s > 0) {
            r->cyclic[r->n_cyclic++].tag = (uint32_t)i;
        }
    }
    r->pr = pr;
    return VG_OK;
}

const struct vg_project *vg_archive_recorder_project(const struct vg_archive_recorder *r)
{
    return r->pr;
}

static void push(struct vg_archive_recorder *r, uint32_t tag, uint64_t t, double v,
                 bool bad)
{
    r->archived++;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 4096;
        struct sample *b;
        if (cap > r->buffer_max) {
            cap = r->buffer_max;
        }
        if (r->n == cap) {
            /* Full: drop the oldest tenth, keep the newest. */
            size_t drop = cap / 10;
            memmove(r->buf, r->buf + drop, (r->n - drop) * sizeof *r->buf);
            r->n -= drop;
            r->dropped += drop;
        } else if ((b = realloc(r->buf, cap * sizeof *b)) != NULL) {
            r->buf = b;
            r->cap = cap;
        } else {
            r->dropped++;
            return;
        }
    }
    r->buf[r->n].tag = tag;
    r->buf[r->n].t_ms = t;
    r->buf[r->n].value = bad ? 0 : v;
    r->buf[r->n].bad = bad;
    r->n++;
}

void vg_archive_recorder_changed(struct vg_archive_recorder *r,
                                 const struct vg_plc_change *v, size_t n)
{
    if (r->pr == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (v[i].tag < r->pr->n_tags &&
            r->pr->tags[v[i].tag].archive == VG_ARCHIVE_CHANGE) {
            push(r, v[i].tag, v[i].t_ms, v[i].value, v[i].quality != VG_PLC_GOOD);
        }
    }
}

void vg_archive_recorder_cyclic(struct vg_archive_recorder *r, uint64_t now_ms,
                                vg_archive_reading_fn reading, void *arg)
{
    for (size_t k = 0; k < r->n_cyclic; k++) {
        struct cyclic_tag *c = &r->cyclic[k];
        uint64_t slot = now_ms / ((uint64_t)r->pr->tags[c->tag].archive_period_s * 1000u);
        double value;
        bool bad;
        if (slot != c->last && reading(arg, c->tag, &value, &bad)) {
            c->last = slot;
            push(r, c->tag, now_ms, value, bad);
        }
    }
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int vg_archive_recorder_take(struct vg_archive_recorder *r, size_t max,
                             unsigned char **body, size_t *len, size_t *samples)
{
    size_t k = r->n < max ? r->n : max;
    uint64_t t0 = UINT64_MAX;
    size_t n_tags = 0;
    const char **names = NULL;
    uint64_t *ranked = NULL; /* rank << 32 | tag */
    unsigned char *packed = NULL;
    int rv = VG_ENOMEM;

    *body = NULL;
    *len = 0;
    *samples = 0;
    if (k > VG_HISTORY_BATCH_MAX) {
        k = VG_HISTORY_BATCH_MAX;
    }
    if (k == 0 || r->pr == NULL) {
        return VG_OK;
    }
    names = malloc(k * sizeof *names);
    ranked = malloc(k * sizeof *ranked);
    packed = malloc(k * VG_HISTORY_SAMPLE_SIZE);
    if (names == NULL || ranked == NULL || packed == NULL) {
        goto out;
    }
    r->batch_no++;
    for (size_t i = 0; i < k; i++) {
        const struct sample *s = &r->buf[i];
        if (s->t_ms < t0) {
            t0 = s->t_ms;
        }
        if (r->batch_stamp[s->tag] != r->batch_no) {
            r->batch_stamp[s->tag] = r->batch_no;
            ranked[n_tags++] = (uint64_t)r->name_rank[s->tag] << 32 | s->tag;
        }
    }
    /* The batch lists its tags sorted by name: every node checks that they
     * are distinct, in one pass when they rise (replication/archive.c
     * tags_distinct) instead of sorting them; sorting here is one sort of
     * integers on one node. */
    qsort(ranked, n_tags, sizeof *ranked, u64_cmp);
    for (size_t j = 0; j < n_tags; j++) {
        uint32_t tag = (uint32_t)ranked[j];
        r->batch_index[tag] = (uint32_t)j;
        names[j] = r->pr->tags[tag].name;
    }
    for (size_t i = 0; i < k; i++) {
        const struct sample *s = &r->buf[i];
        vg_repl_history_sample_pack(packed + i * VG_HISTORY_SAMPLE_SIZE,
                                    r->batch_index[s->tag], (uint32_t)(s->t_ms - t0),
                                    s->value, s->bad);
    }
    rv = vg_repl_history_samples_body(t0, names, n_tags, packed, k, body, len);
out:
    /* Packed or not, these samples leave the buffer: a body that could not
     * be built now would not be built on a retry either. */
    memmove(r->buf, r->buf + k, (r->n - k) * sizeof *r->buf);
    r->n -= k;
    if (rv == VG_OK) {
        *samples = k;
    } else {
        r->dropped += k;
    }
    free(names);
    free(ranked);
    free(packed);
    return rv;
}

void vg_archive_recorder_stats(const struct vg_archive_recorder *r,
                               struct vg_archive_recorder_stats *out)
{
    out->archived = r->archived;
    out->dropped = r->dropped;
    out->buffered = r->n;
}
