/* The Modbus poller (node/plc/poller.c) against a real vigil-plcsim process
 * serving plc-intake of the waterworks example on a free loopback port.
 *
 *   1. The first cycle delivers every tag of the PLC, GOOD and in range.
 *   2. Requests per cycle equal the plan's; cycles keep their schedule.
 *   3. Noise keeps changes coming; no delivered change is within the
 *      deadband of the previous one.
 *   4. A loop thread that falls behind gets at most one change per tag.
 *   5. A setpoint write reaches the simulator (read back by a later cycle);
 *      its write log shows the fencing write (node, term) first, then the
 *      value. Bad writes are refused synchronously.
 *   6. Killing the simulator: every tag BAD_COMM exactly once, reconnects
 *      back off; restarted on the same port: GOOD again.
 *   7. stop() completes within 1 s while a read is blocked (a listener that
 *      never answers), while a connect is blocked (its backlog full) and
 *      while backing off.
 *   8. A poller stuck on a dead PLC does not delay one on a good PLC.
 *
 * Arguments: the vigil-plcsim executable and the waterworks folder. The
 * loop is only ever run with a deadline timer; every process started is
 * killed by PID; the loop must close with no handle left. Timings are
 * reported as TAP comments. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "loop_wait.h"
#include <uv.h>

#include "plc.h"

static const char *plcsim_exe;
static const char *waterworks_dir;

struct fixture {
    uv_loop_t loop;
    struct vg_project_files fs;
    struct vg_project *project;
    int plc;           /* plc-intake */
    size_t n_plc_tags;
    char tmp[64];
    char log_path[128];
    int port;
    pid_t sim;
    int sim_err;       /* read end of the simulator's stderr */
};

/* One poller under test and everything it delivered. Each test keeps its
 * watches in static storage: when an assertion fails, cmocka jumps out of
 * the test and its poller keeps running, and its callbacks must not land in
 * the next test's stack frame. */
struct watch {
    struct vg_plc_poller p;
    struct fixture *f;
    size_t batches;
    size_t first_batch_n;
    uint64_t started_ms, first_batch_ms, all_bad_ms, all_good_ms;
    unsigned *count;   /* per project tag: changes delivered */
    unsigned *bad;     /* per project tag: BAD_COMM changes delivered */
    double *value;
    int *quality;      /* -1 before the first change */
    unsigned *stamp;   /* per project tag: last batch it was in */
    size_t duplicates; /* a tag twice in one batch */
    size_t oversized;  /* a batch with more changes than tags */
    size_t deadband_violations;
    unsigned block_first_ms; /* make the loop thread slow once */
    unsigned write_max_age_ms; /* for watch_start */
    bool closed;
    uint64_t closed_ms;
    bool write_done;
    uint64_t write_done_ms;
    int write_status;
    char write_err[VG_ERRMSG_SIZE];
};

/* ------------------------------------------------------------- helpers */

static uint64_t now_ms(void)
{
    return vg_now_mono_ms();
}

/* Run the loop until DONE(ARG) or TIMEOUT_MS (tests/support/loop_wait.h). */
static bool run_until(struct fixture *f, bool (*done)(void *), void *arg,
                      unsigned timeout_ms)
{
    return loop_run_until(&f->loop, done, arg, timeout_ms);
}


/* A listener that accepts nothing: connects succeed (up to its backlog),
 * requests are never answered. */
static int silent_listener(int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 1), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* Start vigil-plcsim for plc-intake on F->port; wait (at most 10 s) for its
 * "serving PLC" line. */
static void sim_start(struct fixture *f)
{
    char listen[64], buf[4096];
    size_t len = 0;
    int pfd[2];

    snprintf(listen, sizeof(listen), "127.0.0.1:%d", f->port);
    assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(pfd[1], 2);
        execl(plcsim_exe, "vigil-plcsim", "--project", waterworks_dir,
              "--plc", "plc-intake", "--listen", listen, "--write-log",
              f->log_path, "--seed", "42", (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    f->sim = pid;
    f->sim_err = pfd[0];
    uint64_t deadline = now_ms() + 10000;
    while (now_ms() < deadline && len < sizeof(buf) - 1) {
        struct pollfd p = {.fd = pfd[0], .events = POLLIN};
        if (poll(&p, 1, (int)(deadline - now_ms())) <= 0)
            break;
        ssize_t n = read(pfd[0], buf + len, sizeof(buf) - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        if (strstr(buf, "serving PLC"))
            return;
    }
    buf[len] = '\0';
    fail_msg("vigil-plcsim did not start: %s", buf);
}

static void sim_kill(struct fixture *f)
{
    if (f->sim > 0) {
        kill(f->sim, SIGKILL);
        waitpid(f->sim, NULL, 0);
        f->sim = 0;
    }
    if (f->sim_err >= 0) {
        close(f->sim_err);
        f->sim_err = -1;
    }
}

/* ------------------------------------------------------------- watches */

static void changes_cb(struct vg_plc_poller *p, const struct vg_plc_change *v,
                       size_t n)
{
    struct watch *w = p->data;
    const struct vg_project *pr = w->f->project;
    uint64_t t = now_ms();

    w->batches++;
    if (w->batches == 1) {
        w->first_batch_n = n;
        w->first_batch_ms = t;
    }
    if (n > w->f->n_plc_tags)
        w->oversized++;
    for (size_t i = 0; i < n; i++) {
        uint32_t k = v[i].tag;
        assert_true(k < pr->n_tags);
        if (w->stamp[k] == w->batches)
            w->duplicates++;
        w->stamp[k] = (unsigned)w->batches;
        if (w->quality[k] == VG_PLC_GOOD && v[i].quality == VG_PLC_GOOD &&
            !(fabs(v[i].value - w->value[k]) > pr->tags[k].deadband))
            w->deadband_violations++;
        w->count[k]++;
        if (v[i].quality == VG_PLC_BAD_COMM)
            w->bad[k]++;
        w->value[k] = v[i].value;
        w->quality[k] = (int)v[i].quality;
    }
    if (w->block_first_ms && w->batches == 1) {
        /* A loop thread busy elsewhere: the poller keeps cycling. */
        struct timespec ts = {w->block_first_ms / 1000,
                              (long)(w->block_first_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static bool all_quality(struct watch *w, int q)
{
    const struct vg_project *pr = w->f->project;
    for (size_t i = 0; i < pr->n_tags; i++)
        if (pr->tags[i].plc.index == w->f->plc && w->quality[i] != q)
            return false;
    return true;
}

static void watch_init(struct fixture *f, struct watch *w)
{
    size_t n = f->project->n_tags;
    memset(w, 0, sizeof(*w));
    w->f = f;
    w->count = calloc(n, sizeof(*w->count));
    w->bad = calloc(n, sizeof(*w->bad));
    w->value = calloc(n, sizeof(*w->value));
    w->quality = malloc(n * sizeof(*w->quality));
    w->stamp = calloc(n, sizeof(*w->stamp));
    assert_non_null(w->count);
    assert_non_null(w->bad);
    assert_non_null(w->value);
    assert_non_null(w->quality);
    assert_non_null(w->stamp);
    for (size_t i = 0; i < n; i++)
        w->quality[i] = -1;
}

static void watch_start(struct fixture *f, struct watch *w, int port)
{
    struct vg_plc_poller_opts o;
    char errmsg[VG_ERRMSG_SIZE];

    if (!w->f)
        watch_init(f, w);
    vg_plc_poller_opts_default(&o);
    o.changes_cb = changes_cb;
    o.port = port;
    o.write_max_age_ms = w->write_max_age_ms;
    w->p.data = w;
    w->started_ms = now_ms();
    int rv = vg_plc_poller_start(&w->p, &f->loop, f->project, f->plc, &o,
                                 errmsg);
    if (rv != 0)
        fail_msg("vg_plc_poller_start: %s", errmsg);
}

static void closed_cb(struct vg_plc_poller *p)
{
    struct watch *w = p->data;
    w->closed = true;
    w->closed_ms = now_ms();
}

static bool is_closed(void *arg)
{
    return ((struct watch *)arg)->closed;
}

/* Stop W; returns the milliseconds until its close callback. */
static unsigned watch_stop(struct fixture *f, struct watch *w)
{
    uint64_t t0 = now_ms();
    vg_plc_poller_stop(&w->p, closed_cb);
    assert_true(run_until(f, is_closed, w, 5000));
    assert_null(w->p.impl);
    free(w->count);
    free(w->bad);
    free(w->value);
    free(w->quality);
    free(w->stamp);
    w->count = w->bad = w->stamp = NULL;
    return (unsigned)(w->closed_ms - t0);
}

static struct vg_plc_poller_status status(struct watch *w)
{
    struct vg_plc_poller_status st;
    vg_plc_poller_status(&w->p, &st);
    return st;
}

static bool has_batch(void *arg)
{
    return ((struct watch *)arg)->batches >= 1;
}

struct cycles_arg {
    struct watch *w;
    uint64_t n;
};

static bool has_cycles(void *arg)
{
    struct cycles_arg *a = arg;
    return status(a->w).cycles >= a->n;
}

static void wait_cycles(struct fixture *f, struct watch *w, uint64_t n,
                        unsigned timeout_ms)
{
    struct cycles_arg a = {w, n};
    assert_true(run_until(f, has_cycles, &a, timeout_ms));
}

/* ---------------------------------------------------------------- setup */

static int group_setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct vg_diags d;
    char errmsg[VG_ERRMSG_SIZE];

    assert_non_null(f);
    assert_non_null(plcsim_exe);
    assert_non_null(waterworks_dir);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(vg_project_files_read_dir(&f->fs, waterworks_dir, errmsg),
                     0);
    vg_diags_init(&d);
    f->project = vg_project_parse(&f->fs, &d);
    assert_non_null(f->project);
    assert_int_equal(d.n, 0);
    vg_diags_free(&d);
    f->plc = -1;
    for (size_t i = 0; i < f->project->n_plcs; i++)
        if (strcmp(f->project->plcs[i].name, "plc-intake") == 0)
            f->plc = (int)i;
    assert_true(f->plc >= 0);
    for (size_t i = 0; i < f->project->n_tags; i++)
        f->n_plc_tags += f->project->tags[i].plc.index == f->plc;

    snprintf(f->tmp, sizeof(f->tmp), "/tmp/vigil-poller-XXXXXX");
    assert_non_null(mkdtemp(f->tmp));
    snprintf(f->log_path, sizeof(f->log_path), "%s/writes.jsonl", f->tmp);
    f->sim_err = -1;
    f->port = loop_free_port();
    sim_start(f);
    *state = f;
    return 0;
}

static int group_teardown(void **state)
{
    struct fixture *f = *state;

    sim_kill(f);
    unlink(f->log_path);
    rmdir(f->tmp);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    /* Every handle of every test was closed. */
    assert_int_equal(uv_loop_close(&f->loop), 0);
    vg_project_free(f->project);
    vg_project_files_free(&f->fs);
    free(f);
    return 0;
}

/* ---------------------------------------------------------------- tests */

static void test_first_cycle(void **state)
{
    struct fixture *f = *state;
    const struct vg_project *pr = f->project;
    static struct watch w;

    watch_start(f, &w, f->port);
    assert_true(run_until(f, has_batch, &w, 5000));
    struct vg_plc_poller_status st = status(&w);
    /* The whole first cycle arrives as one batch. */
    assert_int_equal(w.first_batch_n, f->n_plc_tags);
    size_t checked = 0;
    for (size_t i = 0; i < pr->n_tags; i++) {
        const struct vg_tag *t = &pr->tags[i];
        double lo, hi;
        if (t->plc.index != f->plc)
            continue;
        vg_tag_range(t, &lo, &hi);
        double eps = 1e-6 * fmax(1.0, hi - lo);
        if (w.quality[i] != VG_PLC_GOOD || !(w.value[i] >= lo - eps) ||
            !(w.value[i] <= hi + eps))
            fail_msg("%s: quality %d value %g, range %g..%g", t->name,
                     w.quality[i], w.value[i], lo, hi);
        checked++;
    }
    assert_int_equal(checked, f->n_plc_tags);
    assert_true(st.connected);
    /* The first cycle is stamped once, before its batch was delivered. */
    assert_true(st.first_cycle_ms != 0 && st.first_cycle_ms <= vg_now_wall_ms());
    printf("# first cycle: all %zu tags GOOD and in range in one batch, "
           "%u ms after start (cycle %u ms)\n", f->n_plc_tags,
           (unsigned)(w.first_batch_ms - w.started_ms), st.last_cycle_ms);
    watch_stop(f, &w);
}

static void test_requests_per_cycle(void **state)
{
    struct fixture *f = *state;
    struct vg_plc_plan plan = {0};
    struct vg_plc_plan_opts o;
    char errmsg[VG_ERRMSG_SIZE];
    static struct watch w;

    vg_plc_plan_opts_default(&o);
    assert_int_equal(vg_plc_plan_build(f->project->tags, f->project->n_tags,
                                       f->plc, &o, &plan, errmsg), 0);
    watch_start(f, &w, f->port);
    wait_cycles(f, &w, 1, 5000);
    uint64_t t1 = now_ms();
    unsigned poll_ms = f->project->plcs[f->plc].poll_ms;
    wait_cycles(f, &w, 6, 5000);
    uint64_t t6 = now_ms();
    struct vg_plc_poller_status st = status(&w);

    assert_int_equal(st.plan_requests, plan.n_reqs);
    assert_int_equal(st.n_tags, plan.n_items);
    assert_int_equal(st.requests, st.cycles * plan.n_reqs);
    assert_int_equal(st.overruns, 0);
    /* Five intervals between the first and sixth cycle: no drift beyond
     * the loop's wake-up jitter. */
    unsigned took = (unsigned)(t6 - t1);
    assert_true(took >= 5 * poll_ms - 20 && took <= 5 * poll_ms + 100);
    printf("# requests per cycle: %llu over %llu cycles = %zu, the plan's "
           "%zu; 5 intervals of %u ms took %u ms; cycle %u ms (max %u)\n",
           (unsigned long long)st.requests, (unsigned long long)st.cycles,
           (size_t)(st.requests / st.cycles), plan.n_reqs, poll_ms, took,
           st.last_cycle_ms, st.max_cycle_ms);
    vg_plc_plan_free(&plan);
    watch_stop(f, &w);
}

static void test_noise_deadband(void **state)
{
    struct fixture *f = *state;
    const struct vg_project *pr = f->project;
    static struct watch w;

    watch_start(f, &w, f->port);
    wait_cycles(f, &w, 8, 8000);
    struct vg_plc_poller_status st = status(&w);
    size_t moved = 0, analog = 0, total = 0;
    for (size_t i = 0; i < pr->n_tags; i++) {
        if (pr->tags[i].plc.index != f->plc)
            continue;
        total += w.count[i];
        if (pr->tags[i].kind == VG_REG_INPUT && pr->tags[i].deadband > 0) {
            analog++;
            moved += w.count[i] > 1;
        }
    }
    assert_int_equal(st.coalesced, 0); /* the loop kept up */
    assert_int_equal(w.deadband_violations, 0);
    assert_int_equal(w.duplicates, 0);
    assert_true(moved * 2 >= analog);          /* noise gets through */
    assert_true(total < st.cycles * f->n_plc_tags); /* the deadband holds */
    printf("# noise: %zu of %zu analog tags changed; %zu changes in %llu "
           "cycles (%llu tag readings), none within a deadband\n", moved,
           analog, total, (unsigned long long)st.cycles,
           (unsigned long long)(st.cycles * f->n_plc_tags));
    watch_stop(f, &w);
}

static bool has_batch2(void *arg)
{
    return ((struct watch *)arg)->batches >= 2;
}

static void test_slow_loop_coalesces(void **state)
{
    struct fixture *f = *state;
    static struct watch w;

    watch_init(f, &w);
    w.block_first_ms = 1700; /* three and a bit cycles */
    watch_start(f, &w, f->port);
    assert_true(run_until(f, has_batch, &w, 5000));
    uint64_t after = status(&w).cycles;
    assert_true(after >= 4);
    /* The changes of the cycles done meanwhile come as one more batch. */
    assert_true(run_until(f, has_batch2, &w, 1000));
    struct vg_plc_poller_status st = status(&w);
    assert_int_equal(w.oversized, 0);
    assert_int_equal(w.duplicates, 0);
    assert_true(st.coalesced > 0);
    printf("# slow loop: %llu cycles while the loop was blocked, %llu "
           "changes coalesced, no batch larger than %zu tags\n",
           (unsigned long long)after, (unsigned long long)st.coalesced,
           f->n_plc_tags);
    watch_stop(f, &w);
}

struct write_arg {
    struct watch *w;
    uint32_t tag;
    double want;
};

static void write_cb(struct vg_plc_poller *p, int status_, const char *errmsg,
                     void *data)
{
    struct watch *w = p->data;
    assert_ptr_equal(data, w);
    w->write_done = true;
    w->write_done_ms = now_ms();
    w->write_status = status_;
    snprintf(w->write_err, sizeof(w->write_err), "%s", errmsg);
}

static bool written_and_read(void *arg)
{
    struct write_arg *a = arg;
    return a->w->write_done && a->w->quality[a->tag] == VG_PLC_GOOD &&
           fabs(a->w->value[a->tag] - a->want) < 1e-9;
}

/* The write log's lines as (fc, address, values[4], n, node, term). */
struct logline {
    int fc;
    unsigned address;
    unsigned values[4];
    unsigned n;
    unsigned long node, term;
};

static size_t read_log(const char *path, struct logline *out, size_t max)
{
    FILE *fp = fopen(path, "r");
    char line[512];
    size_t n = 0;

    assert_non_null(fp);
    while (n < max && fgets(line, sizeof(line), fp)) {
        struct logline *l = &out[n];
        const char *v = strstr(line, "\"values\":[");
        const char *nd = strstr(line, "\"node\":");
        const char *tm = strstr(line, "\"term\":");
        const char *fc = strstr(line, "\"fc\":");
        const char *ad = strstr(line, "\"address\":");
        if (!v || !nd || !tm || !fc || !ad)
            continue;
        memset(l, 0, sizeof(*l));
        l->fc = atoi(fc + 5);
        l->address = (unsigned)atoi(ad + 10);
        l->node = strtoul(nd + 7, NULL, 10);
        l->term = strtoul(tm + 7, NULL, 10);
        for (v += 10; *v && *v != ']' && l->n < 4; l->n++) {
            char *end;
            l->values[l->n] = (unsigned)strtoul(v, &end, 10);
            v = *end == ',' ? end + 1 : end;
        }
        n++;
    }
    fclose(fp);
    return n;
}

static void test_write_fenced(void **state)
{
    struct fixture *f = *state;
    const struct vg_project *pr = f->project;
    char errmsg[VG_ERRMSG_SIZE];
    static struct watch w;
    struct logline log[64];

    int sp = vg_project_find_tag(pr, "intake.well1.pump.speed_sp");
    int flow = vg_project_find_tag(pr, "intake.well1.flow");
    int other = -1;
    assert_true(sp >= 0 && flow >= 0);
    for (size_t i = 0; i < pr->n_tags; i++)
        if (pr->tags[i].plc.index != f->plc && pr->tags[i].writable)
            other = (int)i;
    assert_true(other >= 0);

    watch_start(f, &w, f->port);
    assert_true(run_until(f, has_batch, &w, 5000));
    double want = w.value[sp] > 60 ? 42.5 : 77.25;
    unsigned raw = (unsigned)lround(want * 100);

    /* Refused at once, no callback: wrong kind, out of range, other PLC. */
    assert_int_equal(vg_plc_poller_write(&w.p, (uint32_t)flow, 10, 2, 7,
                                         write_cb, &w, errmsg), VG_EINVAL);
    assert_int_equal(vg_plc_poller_write(&w.p, (uint32_t)sp, 1000, 2, 7,
                                         write_cb, &w, errmsg), VG_EINVAL);
    assert_int_equal(vg_plc_poller_write(&w.p, (uint32_t)other, 1, 2, 7,
                                         write_cb, &w, errmsg), VG_EINVAL);

    uint64_t t0 = now_ms();
    assert_int_equal(vg_plc_poller_write(&w.p, (uint32_t)sp, want, 2, 7,
                                         write_cb, &w, errmsg), 0);
    struct write_arg a = {&w, (uint32_t)sp, want};
    assert_true(run_until(f, written_and_read, &a, 5000));
    assert_int_equal(w.write_status, 0);
    unsigned took = (unsigned)(now_ms() - t0);
    struct vg_plc_poller_status st = status(&w);
    assert_int_equal(st.writes_ok, 1);

    size_t n = read_log(f->log_path, log, 64);
    assert_true(n >= 2);
    const struct logline *fence = &log[n - 2], *val = &log[n - 1];
    int fr = pr->plcs[f->plc].fencing_register;
    assert_int_equal(fence->fc, 16);
    assert_int_equal(fence->address, (unsigned)fr);
    assert_int_equal(fence->n, 4);
    assert_true(fence->values[0] == 0 && fence->values[1] == 2 &&
                fence->values[2] == 0 && fence->values[3] == 7);
    assert_true(fence->node == 2 && fence->term == 7);
    assert_int_equal(val->fc, 6);
    assert_int_equal(val->address, pr->tags[sp].offset);
    assert_int_equal(val->n, 1);
    assert_int_equal(val->values[0], raw);
    assert_true(val->node == 2 && val->term == 7);
    printf("# write: %s = %g (raw %u) after the fencing write node 2 term 7; "
           "written (callback) %u ms and read back %u ms after queuing\n",
           pr->tags[sp].name, want, raw, (unsigned)(w.write_done_ms - t0),
           took);
    watch_stop(f, &w);
}

static bool write_done(void *arg)
{
    return ((struct watch *)arg)->write_done;
}

/* A write the thread cannot send in time is dropped, never sent late: the
 * simulator is paused (SIGSTOP) for longer than a poll interval, so the
 * poller thread is blocked in a read; a write is queued with a 100 ms age
 * limit, and the simulator resumes 150 ms later (the read was blocked for at
 * most 750 ms, within the 1 s response timeout, so the connection
 * survives and the write reaches the head of the queue too late). */
static void test_write_not_sent_late(void **state)
{
    struct fixture *f = *state;
    const struct vg_project *pr = f->project;
    char errmsg[VG_ERRMSG_SIZE];
    static struct watch w;
    struct logline log[64];
    size_t before, after;

    int sp = vg_project_find_tag(pr, "intake.well1.pump.speed_sp");
    assert_true(sp >= 0);
    watch_init(f, &w); /* clears the watch: set the limit afterwards */
    w.write_max_age_ms = 100;
    watch_start(f, &w, f->port);
    assert_true(run_until(f, has_batch, &w, 5000));
    before = read_log(f->log_path, log, 64);

    assert_int_equal(kill(f->sim, SIGSTOP), 0);
    run_until(f, loop_never, NULL, 100 + (unsigned)pr->plcs[f->plc].poll_ms);
    assert_int_equal(vg_plc_poller_write(&w.p, (uint32_t)sp, 12.5, 2, 9,
                                         write_cb, &w, errmsg), 0);
    run_until(f, loop_never, NULL, 150);
    assert_int_equal(kill(f->sim, SIGCONT), 0);
    assert_true(run_until(f, write_done, &w, 3000));
    assert_int_equal(w.write_status, VG_ETIMEDOUT);
    assert_non_null(strstr(w.write_err, "not sent within 100 ms"));
    assert_true(status(&w).connected);
    run_until(f, loop_never, NULL, 200);
    after = read_log(f->log_path, log, 64);
    assert_int_equal(after, before);
    printf("# late write: %s\n", w.write_err);
    watch_stop(f, &w);
}

static bool quality_all_bad(void *arg)
{
    struct watch *w = arg;
    if (!w->all_bad_ms && all_quality(w, VG_PLC_BAD_COMM))
        w->all_bad_ms = now_ms();
    return w->all_bad_ms != 0;
}

static bool quality_all_good(void *arg)
{
    struct watch *w = arg;
    if (!w->all_good_ms && all_quality(w, VG_PLC_GOOD))
        w->all_good_ms = now_ms();
    return w->all_good_ms != 0;
}

static bool reconnects_4(void *arg)
{
    return status(arg).reconnects >= 4;
}

static void test_dead_plc(void **state)
{
    struct fixture *f = *state;
    const struct vg_project *pr = f->project;
    static struct watch w;

    watch_start(f, &w, f->port);
    wait_cycles(f, &w, 2, 5000);
    sim_kill(f);
    uint64_t t_kill = now_ms();
    assert_true(run_until(f, quality_all_bad, &w, 3000));
    unsigned detect = (unsigned)(w.all_bad_ms - t_kill);

    assert_true(run_until(f, reconnects_4, &w, 8000));
    unsigned span = (unsigned)(now_ms() - t_kill);
    struct vg_plc_poller_status st = status(&w);
    assert_false(st.connected);
    assert_true(st.last_error[0] != '\0');
    /* 100 + 200 + 400 + 800 ms: four retries take 1.5 s at least, and the
     * attempts are not hammering. */
    assert_true(st.backoff_ms >= 800);
    assert_true(span >= 1500);
    assert_true(st.attempts <= 1 + 5);
    for (size_t i = 0; i < pr->n_tags; i++)
        if (pr->tags[i].plc.index == f->plc)
            assert_int_equal(w.bad[i], 1);
    printf("# dead PLC: all %zu tags BAD_COMM once, %u ms after the kill; "
           "%llu reconnect attempts in %u ms (back-off now %u ms): %s\n",
           f->n_plc_tags, detect, (unsigned long long)st.reconnects, span,
           st.backoff_ms, st.last_error);

    sim_start(f);
    uint64_t t_start = now_ms();
    assert_true(run_until(f, quality_all_good, &w, 10000));
    st = status(&w);
    assert_true(st.connected);
    for (size_t i = 0; i < pr->n_tags; i++)
        if (pr->tags[i].plc.index == f->plc)
            assert_int_equal(w.bad[i], 1);
    printf("# PLC back: all tags GOOD %u ms after the simulator restarted "
           "(%llu attempts in all)\n", (unsigned)(w.all_good_ms - t_start),
           (unsigned long long)st.attempts);
    watch_stop(f, &w);
}

static bool connected(void *arg)
{
    return status(arg).connected;
}

struct attempts_arg {
    struct watch *w;
    uint64_t n;
};

static bool has_attempts(void *arg)
{
    struct attempts_arg *a = arg;
    return status(a->w).attempts >= a->n;
}

static void test_stop_while_blocked(void **state)
{
    struct fixture *f = *state;
    static struct watch w, c, b;
    int port, lfd = silent_listener(&port);
    int fill[4];

    /* A read blocked: connected, the first request never answered. */
    watch_start(f, &w, port);
    assert_true(run_until(f, connected, &w, 3000));
    run_until(f, loop_never, NULL, 100);
    struct vg_plc_poller_status st = status(&w);
    assert_true(st.connected && st.cycles == 0 && st.comm_failures == 0);
    unsigned stop_read = watch_stop(f, &w);
    assert_true(stop_read < 1000);

    /* A connect blocked: the listener's accept queue is full, so SYNs go
     * unanswered. */
    for (int i = 0; i < 4; i++) {
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                         0);
        assert_true(fill[i] >= 0);
        connect(fill[i], (struct sockaddr *)&a, sizeof(a));
    }
    watch_start(f, &c, port);
    struct attempts_arg aa = {&c, 1};
    assert_true(run_until(f, has_attempts, &aa, 3000));
    run_until(f, loop_never, NULL, 200);
    bool was_connected = status(&c).connected;
    unsigned stop_connect = watch_stop(f, &c);
    assert_true(stop_connect < 1000);
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(lfd);

    /* Backing off: nothing listens on the port. */
    watch_start(f, &b, loop_free_port());
    struct attempts_arg ab = {&b, 3};
    assert_true(run_until(f, has_attempts, &ab, 3000));
    unsigned stop_backoff = watch_stop(f, &b);
    assert_true(stop_backoff < 1000);
    printf("# stop latency: %u ms with a read blocked, %u ms with a connect "
           "blocked (%s), %u ms while backing off\n", stop_read,
           stop_connect, was_connected ? "it had connected after all"
                                       : "still connecting",
           stop_backoff);
}

static void test_isolation(void **state)
{
    struct fixture *f = *state;
    static struct watch dead, good;
    int port, lfd = silent_listener(&port);
    unsigned poll_ms = f->project->plcs[f->plc].poll_ms;

    watch_start(f, &dead, port);
    watch_start(f, &good, f->port);
    wait_cycles(f, &good, 1, 5000);
    uint64_t t1 = now_ms();
    wait_cycles(f, &good, 7, 6000);
    unsigned took = (unsigned)(now_ms() - t1);
    struct vg_plc_poller_status sg = status(&good), sd = status(&dead);
    assert_int_equal(sg.overruns, 0);
    assert_true(took <= 6 * poll_ms + 100);
    assert_true(sg.max_cycle_ms < 100);
    assert_int_equal(sd.cycles, 0);
    assert_true(sd.comm_failures >= 1);
    printf("# isolation: the good PLC did 6 cycles in %u ms (max cycle %u "
           "ms, no overrun) while the dead one failed %llu times (%s)\n",
           took, sg.max_cycle_ms, (unsigned long long)sd.comm_failures,
           sd.last_error);
    watch_stop(f, &dead);
    watch_stop(f, &good);
    close(lfd);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_cycle),
        cmocka_unit_test(test_requests_per_cycle),
        cmocka_unit_test(test_noise_deadband),
        cmocka_unit_test(test_slow_loop_coalesces),
        cmocka_unit_test(test_write_fenced),
        cmocka_unit_test(test_write_not_sent_late),
        cmocka_unit_test(test_dead_plc),
        cmocka_unit_test(test_stop_while_blocked),
        cmocka_unit_test(test_isolation),
    };
    plcsim_exe = argc > 1 ? argv[1] : NULL;
    waterworks_dir = argc > 2 ? argv[2] : NULL;
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
