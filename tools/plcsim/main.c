/* vigil-plcsim: serve one PLC of a plant project over Modbus TCP, with a
 * simulated process behind its tags (see model.c for the rules) and a log of
 * every write a client made (see writelog.c).
 *
 *   vigil-plcsim --project DIR --plc NAME [--listen HOST:PORT]
 *                [--write-log FILE] [--rate HZ] [--seed N] [--registers N]
 *                [--speed X]
 *
 * Exit status: 0 after SIGTERM or SIGINT, 1 when the project is invalid, the
 * PLC unknown or the address cannot be bound, 2 for bad arguments. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "plcsim.h"

/* Benchmark registers (--registers) start here, clear of the example
 * projects' tags and fencing registers. */
#define BENCH_START 10000u
/* Up to one register space of holding registers from BENCH_START, the rest
 * as input registers from BENCH_START: Modbus addresses 16 bits per kind,
 * and benchmarks want 100 000 changing registers from one PLC. */
#define BENCH_PER_KIND (65536u - BENCH_START)
#define BENCH_MAX (2u * BENCH_PER_KIND)

struct options {
    const char *project;
    const char *plc;
    const char *listen;
    const char *write_log;
    double rate;
    double speed;
    uint64_t seed;
    unsigned registers;
    const char *force;
};

/* Tags held at a value given in a file (--force), re-read whenever the file
 * changes: how a test drives a process value over an alarm limit and back
 * at a moment of its choosing, as a real plant fault would. */
#define FORCE_MAX 64
struct forces {
    const char *path;
    struct timespec mtime;
    off_t size;
    bool seen;
    size_t n;
    const struct vg_tag *tag[FORCE_MAX];
    double value[FORCE_MAX];
};

struct logger {
    struct plcsim_writelog *log;
    modbus_mapping_t *map;
    int fencing;       /* first fencing register, -1 none */
    bool failed;       /* a line could not be written (said once) */
};

static volatile sig_atomic_t stop;

static void on_signal_cb(int sig)
{
    (void)sig;
    stop = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: vigil-plcsim --project DIR --plc NAME [--listen HOST:PORT]\n"
        "                    [--write-log FILE] [--rate HZ] [--seed N]\n"
        "                    [--registers N] [--speed X]\n"
        "Serve PLC NAME of the plant project in DIR over Modbus TCP, with a\n"
        "simulated process behind its tags.\n"
        "  --listen HOST:PORT  address to bind (default: the PLC's host:port)\n"
        "  --write-log FILE    append every client write as a JSON line\n"
        "  --rate HZ           simulation steps per second (default 10)\n"
        "  --seed N            seed of the simulation (default 1)\n"
        "  --registers N       also serve N changing registers for benchmarks\n"
        "                      (at most %u): holding registers from %u, beyond\n"
        "                      %u of them input registers from %u too\n"
        "  --speed X           simulated seconds per second (default 1;\n"
        "                      tests use e.g. 100 to see alarms sooner)\n"
        "  --force FILE        hold tags at values given in FILE, one\n"
        "                      'TAG VALUE' per line ('#' comments), re-read\n"
        "                      whenever it changes; an absent or empty file\n"
        "                      forces nothing\n",
        BENCH_MAX, BENCH_START, BENCH_PER_KIND, BENCH_START);
}

static int bad_arg(const char *flag, const char *what, const char *value)
{
    fprintf(stderr, "vigil-plcsim: %s: %s, got '%s'\n", flag, what, value);
    return 2;
}

static int parse_args(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"project", required_argument, NULL, 'p'},
        {"plc", required_argument, NULL, 'c'},
        {"listen", required_argument, NULL, 'l'},
        {"write-log", required_argument, NULL, 'w'},
        {"rate", required_argument, NULL, 'r'},
        {"seed", required_argument, NULL, 's'},
        {"registers", required_argument, NULL, 'n'},
        {"speed", required_argument, NULL, 'x'},
        {"force", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char *end;
    int ch;
    unsigned long long u;

    o->rate = 10;
    o->speed = 1;
    o->seed = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'p': o->project = optarg; break;
        case 'c': o->plc = optarg; break;
        case 'l': o->listen = optarg; break;
        case 'w': o->write_log = optarg; break;
        case 'f': o->force = optarg; break;
        case 'r':
            errno = 0;
            o->rate = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(o->rate >= 0.1) ||
                o->rate > 1000)
                return bad_arg("--rate", "expected steps per second "
                               "between 0.1 and 1000", optarg);
            break;
        case 'x':
            errno = 0;
            o->speed = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(o->speed >= 0.01) ||
                o->speed > 10000)
                return bad_arg("--speed", "expected simulated seconds per "
                               "second between 0.01 and 10000", optarg);
            break;
        case 's':
            errno = 0;
            u = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-')
                return bad_arg("--seed", "expected a non-negative integer",
                               optarg);
            o->seed = u;
            break;
        case 'n':
            errno = 0;
            u = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-' ||
                u > BENCH_MAX) {
                char what[96];
                snprintf(what, sizeof what,
                         "expected a number of registers from 0 to %u",
                         BENCH_MAX);
                return bad_arg("--registers", what, optarg);
            }
            o->registers = (unsigned)u;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case ':':
            fprintf(stderr, "vigil-plcsim: %s needs a value\n",
                    argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "vigil-plcsim: unknown option '%s'\n",
                    argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "vigil-plcsim: unexpected argument '%s'\n",
                argv[optind]);
        return 2;
    }
    if (!o->project || !o->plc) {
        fprintf(stderr, "vigil-plcsim: %s is required\n",
                !o->project ? "--project DIR" : "--plc NAME");
        usage(stderr);
        return 2;
    }
    return 0;
}

/* Read and validate the project; on failure say why on stderr. */
static struct vg_project *load_project(const char *dir,
                                       struct vg_project_files *fs)
{
    struct vg_diags d;
    struct vg_project *p;
    char errmsg[VG_ERRMSG_SIZE], line[1024];
    size_t i;

    if (vg_project_files_read_dir(fs, dir, errmsg) != 0) {
        fprintf(stderr, "vigil-plcsim: %s\n", errmsg);
        return NULL;
    }
    vg_diags_init(&d);
    p = vg_project_parse(fs, &d);
    if (!p) {
        fprintf(stderr, "vigil-plcsim: out of memory reading %s\n", dir);
    } else if (d.n > 0) {
        vg_diags_sort(&d);
        for (i = 0; i < d.n; i++) {
            vg_diag_format(&d.v[i], line, sizeof line);
            fprintf(stderr, "%s\n", line);
        }
        fprintf(stderr, "vigil-plcsim: project %s is invalid (%zu error%s)\n",
                dir, d.n + d.dropped, d.n + d.dropped == 1 ? "" : "s");
        vg_project_free(p);
        p = NULL;
    }
    vg_diags_free(&d);
    return p;
}

static int find_plc(const struct vg_project *p, const char *name)
{
    size_t i;

    for (i = 0; i < p->n_plcs; i++)
        if (strcmp(p->plcs[i].name, name) == 0)
            return (int)i;
    fprintf(stderr, "vigil-plcsim: --plc: the project has no PLC named '%s' "
            "(it has:", name);
    for (i = 0; i < p->n_plcs; i++)
        fprintf(stderr, " %s", p->plcs[i].name);
    fprintf(stderr, "%s)\n", p->n_plcs ? "" : " none");
    return -1;
}

/* Re-read F->path if it changed. Bad lines are reported with their number
 * and skipped; the good ones still apply. */
static void forces_reload(struct forces *f, const struct vg_project *p, int plc)
{
    struct stat st;
    char line[512];
    unsigned lineno = 0;
    FILE *in;

    if (stat(f->path, &st) != 0) {
        if (f->seen) {
            f->seen = false;
            f->n = 0;
        }
        return;
    }
    if (f->seen && st.st_mtim.tv_sec == f->mtime.tv_sec &&
        st.st_mtim.tv_nsec == f->mtime.tv_nsec && st.st_size == f->size)
        return;
    f->seen = true;
    f->mtime = st.st_mtim;
    f->size = st.st_size;
    f->n = 0;
    in = fopen(f->path, "r");
    if (!in) {
        fprintf(stderr, "vigil-plcsim: --force %s: %s\n", f->path, strerror(errno));
        return;
    }
    while (fgets(line, sizeof line, in)) {
        char name[300], rest[8];
        double v;
        int t, k;
        lineno++;
        if (line[strspn(line, " \t\r\n")] == '\0' || line[strspn(line, " \t")] == '#')
            continue;
        k = sscanf(line, "%299s %lf %7s", name, &v, rest);
        if (k != 2 || !isfinite(v)) {
            fprintf(stderr, "vigil-plcsim: --force %s:%u: expected 'TAG VALUE'\n",
                    f->path, lineno);
            continue;
        }
        t = vg_project_find_tag(p, name);
        if (t < 0 || p->tags[t].plc.index != plc) {
            fprintf(stderr, "vigil-plcsim: --force %s:%u: '%s' is not a tag of "
                            "this PLC\n", f->path, lineno, name);
            continue;
        }
        if (f->n == FORCE_MAX) {
            fprintf(stderr, "vigil-plcsim: --force %s:%u: at most %d tags\n",
                    f->path, lineno, FORCE_MAX);
            break;
        }
        f->tag[f->n] = &p->tags[t];
        f->value[f->n++] = v;
    }
    fclose(in);
}

static void forces_apply(const struct forces *f, modbus_mapping_t *map)
{
    for (size_t i = 0; i < f->n; i++)
        plcsim_tag_put(f->tag[i], f->value[i], map);
}

static void on_write_cb(void *data, const struct plcsim_write *w)
{
    struct logger *lg = data;
    uint32_t node = 0, term = 0;
    const uint16_t *r = lg->map->tab_registers;

    if (!lg->log)
        return;
    if (lg->fencing >= 0) {
        node = (uint32_t)r[lg->fencing] << 16 | r[lg->fencing + 1];
        term = (uint32_t)r[lg->fencing + 2] << 16 | r[lg->fencing + 3];
    }
    if (plcsim_writelog_append(lg->log, w, node, term) != 0 && !lg->failed) {
        fprintf(stderr, "vigil-plcsim: cannot write to the write log: %s\n",
                strerror(errno));
        lg->failed = true;
    }
}

static unsigned bench_holding(unsigned n)
{
    return n < BENCH_PER_KIND ? n : BENCH_PER_KIND;
}

static void bench_step(modbus_mapping_t *map, unsigned n, uint64_t step)
{
    unsigned i, h = bench_holding(n);

    for (i = 0; i < h; i++)
        map->tab_registers[BENCH_START + i] = (uint16_t)(step * 7u + i);
    for (i = h; i < n; i++)
        map->tab_input_registers[BENCH_START + i - h] =
            (uint16_t)(step * 7u + i);
}

int main(int argc, char **argv)
{
    struct options o;
    struct vg_project_files fs;
    struct vg_project *p = NULL;
    struct plcsim_model *model = NULL;
    struct plcsim_server *server = NULL;
    struct logger lg = {NULL, NULL, -1, false};
    struct forces forces;
    modbus_mapping_t *map = NULL;
    const struct vg_plc *plc;
    char host[256], errmsg[VG_ERRMSG_SIZE];
    unsigned nb[4];
    int port, rv, status = 1, plc_index;
    sigset_t block, waitmask;
    struct sigaction sa;
    double period_ms, next_ms;
    uint64_t step = 0, now;

    memset(&o, 0, sizeof o);
    rv = parse_args(argc, argv, &o);
    if (rv != 0)
        return rv;
    memset(&fs, 0, sizeof fs);
    p = load_project(o.project, &fs);
    if (!p)
        goto out;
    memset(&forces, 0, sizeof forces);
    forces.path = o.force;
    plc_index = find_plc(p, o.plc);
    if (plc_index < 0)
        goto out;
    plc = &p->plcs[plc_index];
    if (o.listen) {
        if (vg_addr_parse(o.listen, host, sizeof host, &port, errmsg) != 0) {
            fprintf(stderr, "vigil-plcsim: --listen: %s\n", errmsg);
            status = 2;
            goto out;
        }
    } else {
        snprintf(host, sizeof host, "%s", plc->host);
        port = plc->port;
    }

    if (plcsim_model_new(p, (size_t)plc_index, o.seed, o.speed / o.rate, &model,
                         errmsg) != 0) {
        fprintf(stderr, "vigil-plcsim: %s\n", errmsg);
        goto out;
    }
    plcsim_model_map_size(model, nb);
    if (o.registers > 0 && (nb[VG_REG_HOLDING] > BENCH_START ||
                            (o.registers > BENCH_PER_KIND &&
                             nb[VG_REG_INPUT] > BENCH_START))) {
        fprintf(stderr, "vigil-plcsim: --registers: PLC %s has tags at "
                "%s register %u or above\n", plc->name,
                nb[VG_REG_HOLDING] > BENCH_START ? "holding" : "input",
                BENCH_START);
        status = 2;
        goto out;
    }
    if (plc->fencing_register >= 0 &&
        nb[VG_REG_HOLDING] < (unsigned)plc->fencing_register + 4)
        nb[VG_REG_HOLDING] = (unsigned)plc->fencing_register + 4;
    if (o.registers > 0)
        nb[VG_REG_HOLDING] = BENCH_START + bench_holding(o.registers);
    if (o.registers > BENCH_PER_KIND)
        nb[VG_REG_INPUT] = BENCH_START + o.registers - BENCH_PER_KIND;
    map = modbus_mapping_new_start_address(0, nb[VG_REG_COIL], 0,
                                           nb[VG_REG_DISCRETE], 0,
                                           nb[VG_REG_HOLDING], 0,
                                           nb[VG_REG_INPUT]);
    if (!map) {
        fprintf(stderr, "vigil-plcsim: cannot allocate the register map: "
                "%s\n", modbus_strerror(errno));
        goto out;
    }
    plcsim_model_start(model, map);
    bench_step(map, o.registers, 0);

    lg.map = map;
    lg.fencing = plc->fencing_register;
    if (o.write_log &&
        plcsim_writelog_open(o.write_log, &lg.log, errmsg) != 0) {
        fprintf(stderr, "vigil-plcsim: --write-log: %s\n", errmsg);
        goto out;
    }

    /* Signals stay blocked except inside the wait, so a SIGTERM that
     * arrives while we step the model ends the very next wait. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal_cb;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &waitmask);
    sigdelset(&waitmask, SIGTERM);
    sigdelset(&waitmask, SIGINT);

    if (plcsim_server_new(host, port, plc->unit_id, map, on_write_cb, &lg,
                          &server, errmsg) != 0) {
        fprintf(stderr, "vigil-plcsim: %s\n", errmsg);
        goto out;
    }
    fprintf(stderr, "vigil-plcsim: serving PLC %s (%zu tags) on %s:%d\n",
            plc->name, plcsim_model_n_tags(model), host, port);
    if (o.registers > 0)
        fprintf(stderr, "vigil-plcsim: %u benchmark registers at holding "
                "register %u..%u\n", bench_holding(o.registers), BENCH_START,
                BENCH_START + bench_holding(o.registers) - 1);
    if (o.registers > BENCH_PER_KIND)
        fprintf(stderr, "vigil-plcsim: %u benchmark registers at input "
                "register %u..%u\n", o.registers - BENCH_PER_KIND, BENCH_START,
                BENCH_START + o.registers - BENCH_PER_KIND - 1);

    period_ms = 1000.0 / o.rate;
    next_ms = (double)vg_now_mono_ms() + period_ms;
    while (!stop) {
        if (plcsim_server_run_until(server, (uint64_t)ceil(next_ms),
                                    &waitmask) != 0) {
            fprintf(stderr, "vigil-plcsim: waiting for clients failed: %s\n",
                    strerror(errno));
            goto out;
        }
        now = vg_now_mono_ms();
        if ((double)now >= next_ms) {
            plcsim_model_step(model, map);
            bench_step(map, o.registers, ++step);
            if (o.force) {
                forces_reload(&forces, p, plc_index);
                forces_apply(&forces, map);
            }
            next_ms += period_ms;
            /* Far behind (suspended, debugger): skip ahead rather than
             * run a burst of steps. */
            if ((double)now > next_ms + 1000)
                next_ms = (double)now + period_ms;
        }
    }
    status = 0;

out:
    plcsim_server_free(server);
    plcsim_writelog_close(lg.log);
    if (map)
        modbus_mapping_free(map);
    plcsim_model_free(model);
    vg_project_free(p);
    vg_project_files_free(&fs);
    return status;
}
