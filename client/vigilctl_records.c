/* vigilctl alarms | history | audit | report (vigilctl_records.h).
 *
 * Every command is one or more requests through the client library, which
 * follows the leader; journal, audit and history queries page through the
 * node's answers (newest first for journal and audit, oldest first for
 * history) until the asked-for number of entries is printed. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "../config/project.h"
#include "../node/reports/reports.h"
#include "../proto/proto.h"
#include "client.h"
#include "vigilctl_records.h"
#include "fetch.h"

#define EXIT_FAILED 1
#define EXIT_USAGE 2
#define MULTI_MAX 64

const char vigilctl_records_usage[] =
    "  alarms list [--section S]... [--max-priority N] [--all]\n"
    "                                       current alarms (--all: also those in\n"
    "                                       normal state): RAISED PRIO STATUS FLAGS\n"
    "                                       NAME MESSAGE\n"
    "  alarms ack NAME... | --section S... | --all  [--user U] [--station S]\n"
    "                                       acknowledge alarms by name, every\n"
    "                                       unacknowledged one in the sections, or\n"
    "                                       all\n"
    "  alarms shelve NAME --for DURATION --reason TEXT [--user U] [--station S]\n"
    "                                       shelve for DURATION (e.g. 90s, 30m, 8h)\n"
    "  alarms unshelve NAME [--user U] [--station S]\n"
    "  alarms service NAME in|out [--reason TEXT] [--user U] [--station S]\n"
    "                                       return to / take out of service\n"
    "  alarms journal [--from T] [--to T] [--section S]... [--max-priority N]\n"
    "                 [--tag TAG] [--alarm NAME] [--state S] [--cause C] [--limit N]\n"
    "                                       alarm state changes, newest first\n"
    "                                       (default limit 100)\n"
    "  history query TAG [--from T] [--to T] [--buckets N | --raw] [--limit N]\n"
    "                                       archived values: N buckets (default\n"
    "                                       100) of min/max/avg/first/last, or raw\n"
    "  history export TAG... [--from T] [--to T] [-o FILE]\n"
    "                                       raw samples as CSV (default stdout)\n"
    "  audit [--from T] [--to T] [--kind K] [--user U] [--limit N]\n"
    "                                       the audit trail, newest first\n"
    "  report alarms|tags|audit [--from T] [--to T] [--section S]... [--tag TAG]...\n"
    "         [--format csv|pdf] [--language L] [--title TEXT] -o FILE\n"
    "  report run NAME [--from T] [--to T] [--format csv|pdf] -o FILE\n"
    "                                       a report defined in the project\n"
    "  Times T: now, -90s, -30m, -8h, -7d (before now), YYYY-MM-DD[THH:MM[:SS]]\n"
    "  (local time) or milliseconds since 1970. Default range: the last 24 h.\n";

struct ropts {
    const char *cluster;
    bool json;
    unsigned timeout_ms;
    bool all, raw, help;
    const char *sections[MULTI_MAX];
    size_t n_sections;
    const char *tags[MULTI_MAX];
    size_t n_tags;
    long max_priority;   /* -1: not given */
    const char *user, *station, *reason;
    const char *duration;
    const char *from, *to;
    const char *alarm, *state, *cause, *kind;
    long long limit;     /* 0: default */
    long buckets;        /* 0: default */
    const char *format, *output, *title, *language;
    char *pos[64];
    int n_pos;
};

static int usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage(const char *fmt, ...)
{
    va_list ap;
    fputs("vigilctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'vigilctl --help'.\n", stderr);
    return EXIT_USAGE;
}

bool vigilctl_records_command(const char *word)
{
    return strcmp(word, "alarms") == 0 || strcmp(word, "history") == 0 ||
           strcmp(word, "audit") == 0 || strcmp(word, "report") == 0;
}

/* ---------------------------------------------------------------- parsing */

static bool parse_num(const char *s, long long min, long long max, long long *out)
{
    char *end;
    long long v;
    if (s == NULL || *s == '\0' || (!isdigit((unsigned char)*s) && *s != '-')) {
        return false;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) {
        return false;
    }
    *out = v;
    return true;
}

/* "90s", "30m", "8h", "7d" or plain seconds into ms. */
static bool parse_duration(const char *s, long long *ms)
{
    char *end;
    double v;
    long long unit = 1000;
    if (s == NULL || !isdigit((unsigned char)*s)) {
        return false;
    }
    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || v <= 0) {
        return false;
    }
    if (*end == 's') {
        end++;
    } else if (*end == 'm') {
        unit = 60000;
        end++;
    } else if (*end == 'h') {
        unit = 3600000;
        end++;
    } else if (*end == 'd') {
        unit = 86400000;
        end++;
    }
    if (*end != '\0' || v * (double)unit > 1e15) {
        return false;
    }
    *ms = (long long)(v * (double)unit);
    return true;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A time argument (see the usage text) into ms since 1970. */
static bool parse_time(const char *s, long long *ms)
{
    struct tm tm;
    const char *end;
    long long d;

    if (strcmp(s, "now") == 0) {
        *ms = now_ms();
        return true;
    }
    if (s[0] == '-' && parse_duration(s + 1, &d)) {
        *ms = now_ms() - d;
        return true;
    }
    if (parse_num(s, 0, (1LL << 53), ms)) {
        return true;
    }
    memset(&tm, 0, sizeof tm);
    end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (end == NULL || *end != '\0') {
        memset(&tm, 0, sizeof tm);
        end = strptime(s, "%Y-%m-%dT%H:%M", &tm);
    }
    if (end == NULL || *end != '\0') {
        memset(&tm, 0, sizeof tm);
        end = strptime(s, "%Y-%m-%d", &tm);
    }
    if (end == NULL || *end != '\0') {
        return false;
    }
    tm.tm_isdst = -1;
    *ms = (long long)mktime(&tm) * 1000;
    return *ms >= 0;
}

static int take(int argc, char **argv, int *i, const char *name, const char **out)
{
    if (*i + 1 >= argc) {
        return usage("option %s needs a value", name);
    }
    *out = argv[++*i];
    return 0;
}

static int parse_args(int argc, char **argv, struct ropts *o)
{
    bool options = true;
    const char *v;
    long long n;
    int rv;

    o->timeout_ms = 5000;
    o->max_priority = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        rv = 0;
        if (options && strcmp(a, "--") == 0) {
            options = false;
        } else if (!options || a[0] != '-' || a[1] == '\0' ||
                   (isdigit((unsigned char)a[1]) && o->n_pos > 0)) {
            if (o->n_pos == (int)(sizeof o->pos / sizeof o->pos[0])) {
                return usage("too many arguments");
            }
            o->pos[o->n_pos++] = argv[i];
        } else if (strcmp(a, "--json") == 0) {
            o->json = true;
        } else if (strcmp(a, "--all") == 0) {
            o->all = true;
        } else if (strcmp(a, "--raw") == 0) {
            o->raw = true;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            o->help = true;
        } else if (strcmp(a, "--cluster") == 0) {
            rv = take(argc, argv, &i, a, &o->cluster);
        } else if (strcmp(a, "--timeout") == 0) {
            if ((rv = take(argc, argv, &i, a, &v)) == 0 &&
                !parse_num(v, 1, 3600000, &n)) {
                return usage("--timeout: expected milliseconds 1..3600000, got '%s'", v);
            }
            if (rv == 0) {
                o->timeout_ms = (unsigned)n;
            }
        } else if (strcmp(a, "--section") == 0 || strcmp(a, "--tag") == 0) {
            bool sec = a[2] == 's';
            if ((rv = take(argc, argv, &i, a, &v)) == 0) {
                if ((sec ? o->n_sections : o->n_tags) == MULTI_MAX) {
                    return usage("at most %d %s options", MULTI_MAX, a);
                }
                if (sec) {
                    o->sections[o->n_sections++] = v;
                } else {
                    o->tags[o->n_tags++] = v;
                }
            }
        } else if (strcmp(a, "--max-priority") == 0) {
            if ((rv = take(argc, argv, &i, a, &v)) == 0 && !parse_num(v, 1, 4, &n)) {
                return usage("--max-priority: expected 1..4, got '%s'", v);
            }
            o->max_priority = rv == 0 ? (long)n : -1;
        } else if (strcmp(a, "--limit") == 0) {
            if ((rv = take(argc, argv, &i, a, &v)) == 0 &&
                !parse_num(v, 1, 10000000, &o->limit)) {
                return usage("--limit: expected 1..10000000, got '%s'", v);
            }
        } else if (strcmp(a, "--buckets") == 0) {
            if ((rv = take(argc, argv, &i, a, &v)) == 0 && !parse_num(v, 1, 10000, &n)) {
                return usage("--buckets: expected 1..10000, got '%s'", v);
            }
            o->buckets = rv == 0 ? (long)n : 0;
        } else if (strcmp(a, "--user") == 0) {
            rv = take(argc, argv, &i, a, &o->user);
        } else if (strcmp(a, "--station") == 0) {
            rv = take(argc, argv, &i, a, &o->station);
        } else if (strcmp(a, "--reason") == 0) {
            rv = take(argc, argv, &i, a, &o->reason);
        } else if (strcmp(a, "--for") == 0) {
            rv = take(argc, argv, &i, a, &o->duration);
        } else if (strcmp(a, "--from") == 0) {
            rv = take(argc, argv, &i, a, &o->from);
        } else if (strcmp(a, "--to") == 0) {
            rv = take(argc, argv, &i, a, &o->to);
        } else if (strcmp(a, "--alarm") == 0) {
            rv = take(argc, argv, &i, a, &o->alarm);
        } else if (strcmp(a, "--state") == 0) {
            rv = take(argc, argv, &i, a, &o->state);
        } else if (strcmp(a, "--cause") == 0) {
            rv = take(argc, argv, &i, a, &o->cause);
        } else if (strcmp(a, "--kind") == 0) {
            rv = take(argc, argv, &i, a, &o->kind);
        } else if (strcmp(a, "--format") == 0) {
            rv = take(argc, argv, &i, a, &o->format);
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            rv = take(argc, argv, &i, a, &o->output);
        } else if (strcmp(a, "--title") == 0) {
            rv = take(argc, argv, &i, a, &o->title);
        } else if (strcmp(a, "--language") == 0) {
            rv = take(argc, argv, &i, a, &o->language);
        } else {
            return usage("unknown option '%s'", a);
        }
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

/* --from/--to into a range; default the last 24 h. */
static int parse_range(const struct ropts *o, long long *from, long long *to)
{
    *to = now_ms();
    if (o->to != NULL && !parse_time(o->to, to)) {
        return usage("--to: cannot read the time '%s'", o->to);
    }
    *from = *to - 86400000LL;
    if (o->from != NULL && !parse_time(o->from, from)) {
        return usage("--from: cannot read the time '%s'", o->from);
    }
    if (*from < 0) {
        *from = 0;
    }
    if (*to <= *from) {
        return usage("--to must be after --from");
    }
    return 0;
}

/* -------------------------------------------------------------- requests */

struct ctx {
    struct vg_client *c;
    const struct ropts *o;
    const char *name; /* the command, for messages */
};

/* One request; returns 0 with *ANSWER (an answer that is not an error), or
 * an exit status after printing why. REQ is consumed. */
static int request(struct ctx *x, json_t *req, json_t **answer)
{
    char errmsg[VG_ERRMSG_SIZE];
    int rv = vg_client_call(x->c, req, answer, errmsg);
    json_decref(req);
    if (rv != VG_OK) {
        fprintf(stderr, "vigilctl: %s: %s\n", x->name, errmsg);
        return EXIT_FAILED;
    }
    if (strcmp(vg_proto_get_str(*answer, "type", ""), "error") == 0) {
        fprintf(stderr, "vigilctl: %s: %s (%s)\n", x->name,
                vg_proto_get_str(*answer, "message", "error"),
                vg_proto_get_str(*answer, "code", "?"));
        json_decref(*answer);
        *answer = NULL;
        return EXIT_FAILED;
    }
    return 0;
}

static json_t *str_array(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(a, json_string(v[i]));
    }
    return a;
}

static void who(const struct ropts *o, json_t *req)
{
    char host[128];
    const char *user = o->user != NULL ? o->user : getenv("USER");
    if (user != NULL) {
        json_object_set_new(req, "user", json_string(user));
    }
    if (o->station != NULL) {
        json_object_set_new(req, "station", json_string(o->station));
    } else if (gethostname(host, sizeof host) == 0) {
        host[sizeof host - 1] = '\0';
        json_object_set_new(req, "station", json_string(host));
    }
}

static void time_text(long long ms, char *out, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms <= 0 || localtime_r(&t, &tm) == NULL ||
        strftime(out, size, "%Y-%m-%d %H:%M:%S", &tm) == 0) {
        snprintf(out, size, "-");
    }
}

static void print_line(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    if (s != NULL) {
        puts(s);
        free(s);
    }
}

static void value_text(json_t *v, char *out, size_t size)
{
    if (json_is_integer(v)) {
        snprintf(out, size, "%lld", (long long)json_integer_value(v));
    } else if (json_is_real(v)) {
        snprintf(out, size, "%.10g", json_real_value(v));
    } else if (json_is_string(v)) {
        snprintf(out, size, "%s", json_string_value(v));
    } else if (json_is_boolean(v)) {
        snprintf(out, size, "%s", json_is_true(v) ? "true" : "false");
    } else {
        snprintf(out, size, "-");
    }
}

/* ---------------------------------------------------------------- alarms */

static int alarms_list(struct ctx *x)
{
    const struct ropts *o = x->o;
    json_t *req = vg_proto_request("alarms_list", -1), *ans, *e;
    size_t i;
    int rv;

    if (o->n_sections > 0) {
        json_object_set_new(req, "sections", str_array(o->sections, o->n_sections));
    }
    if (o->max_priority > 0) {
        json_object_set_new(req, "max_priority", json_integer(o->max_priority));
    }
    if (o->all) {
        json_object_set_new(req, "all", json_true());
    }
    if ((rv = request(x, req, &ans)) != 0) {
        return rv;
    }
    json_array_foreach(json_object_get(ans, "alarms"), i, e) {
        char when[32], flags[8];
        if (o->json) {
            print_line(e);
            continue;
        }
        time_text(vg_proto_get_int(e, "raised_ms", 0), when, sizeof when);
        snprintf(flags, sizeof flags, "%s%s%s",
                 json_is_true(json_object_get(e, "active")) ? "A" : "-",
                 json_is_true(json_object_get(e, "shelved")) ? "S" : "-",
                 json_is_true(json_object_get(e, "out_of_service")) ? "O" : "-");
        printf("%-19s %lld %-12s %s %-40s %s\n", when,
               (long long)vg_proto_get_int(e, "priority", 0),
               vg_proto_get_str(e, "status", "?"), flags,
               vg_proto_get_str(e, "alarm", "?"),
               vg_proto_text_in(json_object_get(e, "message"), o->language, ""));
    }
    if (!o->json) {
        fprintf(stderr, "%zu alarm(s)%s\n", json_array_size(json_object_get(ans, "alarms")),
                o->all ? "" : " not in normal state (FLAGS: Active, Shelved, Out of service)");
    }
    json_decref(ans);
    return 0;
}

static int alarms_ack(struct ctx *x)
{
    const struct ropts *o = x->o;
    json_t *req, *ans, *v;
    size_t i;
    int selectors = (o->n_pos > 2) + (o->n_sections > 0) + o->all;
    int rv;

    if (selectors != 1) {
        return usage("alarms ack: give alarm names, --section S... or --all "
                     "(exactly one of them)");
    }
    req = vg_proto_request("alarm_ack", -1);
    if (o->n_pos > 2) {
        json_object_set_new(req, "alarms",
                            str_array((const char *const *)o->pos + 2,
                                      (size_t)o->n_pos - 2));
    } else if (o->n_sections > 0) {
        json_object_set_new(req, "sections", str_array(o->sections, o->n_sections));
    } else {
        json_object_set_new(req, "all", json_true());
    }
    who(o, req);
    if ((rv = request(x, req, &ans)) != 0) {
        return rv;
    }
    if (o->json) {
        print_line(ans);
    } else {
        json_array_foreach(json_object_get(ans, "acked"), i, v) {
            printf("acknowledged %s\n", json_string_value(v));
        }
        json_array_foreach(json_object_get(ans, "unchanged"), i, v) {
            printf("unchanged    %s (%s)\n", vg_proto_get_str(v, "alarm", "?"),
                   vg_proto_get_str(v, "reason", "?"));
        }
        json_array_foreach(json_object_get(ans, "unknown"), i, v) {
            printf("unknown      %s\n", json_string_value(v));
        }
    }
    rv = json_array_size(json_object_get(ans, "unknown")) > 0 ? EXIT_FAILED : 0;
    json_decref(ans);
    return rv;
}

static int alarms_one(struct ctx *x, const char *sub)
{
    const struct ropts *o = x->o;
    json_t *req, *ans;
    long long dur = 0;
    int rv;

    if (o->n_pos != (strcmp(sub, "service") == 0 ? 4 : 3)) {
        return strcmp(sub, "service") == 0
                   ? usage("alarms service: expected NAME in|out")
                   : usage("alarms %s: expected one alarm NAME", sub);
    }
    if (strcmp(sub, "shelve") == 0) {
        if (o->duration == NULL || !parse_duration(o->duration, &dur) ||
            dur < 1000 || dur > 30LL * 86400000) {
            return usage("alarms shelve: --for DURATION (1s..30d, e.g. 30m) is "
                         "required");
        }
        if (o->reason == NULL) {
            return usage("alarms shelve: --reason TEXT is required (say why)");
        }
        req = vg_proto_request("alarm_shelve", -1);
        json_object_set_new(req, "duration_s", json_integer(dur / 1000));
        json_object_set_new(req, "reason", json_string(o->reason));
    } else if (strcmp(sub, "unshelve") == 0) {
        req = vg_proto_request("alarm_unshelve", -1);
    } else {
        const char *w = o->pos[3];
        if (strcmp(w, "in") != 0 && strcmp(w, "out") != 0) {
            return usage("alarms service: expected 'in' or 'out', got '%s'", w);
        }
        req = vg_proto_request("alarm_service", -1);
        json_object_set_new(req, "in_service", json_boolean(strcmp(w, "in") == 0));
        if (o->reason != NULL) {
            json_object_set_new(req, "reason", json_string(o->reason));
        }
    }
    json_object_set_new(req, "alarm", json_string(o->pos[2]));
    who(o, req);
    if ((rv = request(x, req, &ans)) != 0) {
        return rv;
    }
    if (o->json) {
        print_line(ans);
    } else if (json_is_true(json_object_get(ans, "changed"))) {
        printf("%s: done (log index %lld)\n", o->pos[2],
               (long long)vg_proto_get_int(ans, "index", 0));
    } else {
        printf("%s: unchanged (%s)\n", o->pos[2], vg_proto_get_str(ans, "reason", "?"));
    }
    json_decref(ans);
    return 0;
}

/* Page through a newest-first query (alarm_journal, audit): REQ is the
 * template (borrowed), LIST the member holding the rows; every row goes to
 * EACH. Stops after LIMIT rows. */
static int page_newest_first(struct ctx *x, json_t *req, const char *list,
                             long long limit,
                             void (*each)(struct ctx *x, json_t *row))
{
    long long printed = 0;
    long long before = 0;

    for (;;) {
        json_t *r = json_deep_copy(req), *ans, *rows, *row;
        size_t i;
        int rv;
        long long want = limit - printed;
        json_object_set_new(r, "limit", json_integer(want > 1000 ? 1000 : want));
        if (before > 0) {
            json_object_set_new(r, "before_id", json_integer(before));
        }
        if ((rv = request(x, r, &ans)) != 0) {
            return rv;
        }
        rows = json_object_get(ans, list);
        json_array_foreach(rows, i, row) {
            each(x, row);
            printed++;
            before = vg_proto_get_int(row, "id", 0);
        }
        if (!json_is_true(json_object_get(ans, "more")) || printed >= limit ||
            json_array_size(rows) == 0) {
            json_decref(ans);
            return 0;
        }
        json_decref(ans);
    }
}

static void journal_row(struct ctx *x, json_t *e)
{
    char when[32], by[300] = "";
    if (x->o->json) {
        print_line(e);
        return;
    }
    time_text(vg_proto_get_int(e, "time_ms", 0), when, sizeof when);
    if (json_is_string(json_object_get(e, "user"))) {
        snprintf(by, sizeof by, " by %s@%s", vg_proto_get_str(e, "user", ""),
                 json_is_string(json_object_get(e, "station"))
                     ? vg_proto_get_str(e, "station", "")
                     : "-");
    }
    printf("%s %-10s %-12s -> %-12s %s%s\n", when, vg_proto_get_str(e, "cause", "?"),
           vg_proto_get_str(e, "from", "?"), vg_proto_get_str(e, "to", "?"),
           vg_proto_get_str(e, "alarm", "?"), by);
}

static int alarms_journal(struct ctx *x)
{
    const struct ropts *o = x->o;
    long long from, to;
    json_t *req;
    int rv;

    if (o->n_pos != 2) {
        return usage("alarms journal: no arguments expected (filters are options)");
    }
    if ((rv = parse_range(o, &from, &to)) != 0) {
        return rv;
    }
    req = vg_proto_request("alarm_journal", -1);
    json_object_set_new(req, "from_ms", json_integer(o->from ? from : 0));
    if (o->to != NULL) {
        json_object_set_new(req, "to_ms", json_integer(to));
    }
    if (o->n_sections > 0) {
        json_object_set_new(req, "sections", str_array(o->sections, o->n_sections));
    }
    if (o->max_priority > 0) {
        json_object_set_new(req, "max_priority", json_integer(o->max_priority));
    }
    if (o->n_tags > 0) {
        json_object_set_new(req, "tag", json_string(o->tags[0]));
    }
    if (o->alarm != NULL) {
        json_object_set_new(req, "alarm", json_string(o->alarm));
    }
    if (o->state != NULL) {
        json_object_set_new(req, "state", json_string(o->state));
    }
    if (o->cause != NULL) {
        json_object_set_new(req, "cause", json_string(o->cause));
    }
    rv = page_newest_first(x, req, "entries", o->limit > 0 ? o->limit : 100,
                           journal_row);
    json_decref(req);
    return rv;
}

static int cmd_alarms(struct ctx *x)
{
    const char *sub = x->o->n_pos > 1 ? x->o->pos[1] : "";
    if (strcmp(sub, "list") == 0) {
        return x->o->n_pos == 2 ? alarms_list(x)
                                : usage("alarms list: filters are options");
    }
    if (strcmp(sub, "ack") == 0) {
        return alarms_ack(x);
    }
    if (strcmp(sub, "shelve") == 0 || strcmp(sub, "unshelve") == 0 ||
        strcmp(sub, "service") == 0) {
        return alarms_one(x, sub);
    }
    if (strcmp(sub, "journal") == 0) {
        return alarms_journal(x);
    }
    return usage("alarms: expected list, ack, shelve, unshelve, service or "
                 "journal, got '%s'", sub);
}

/* ----------------------------------------------------------------- audit */

static void audit_row(struct ctx *x, json_t *r)
{
    char when[32], oldv[64], newv[64];
    if (x->o->json) {
        print_line(r);
        return;
    }
    time_text(vg_proto_get_int(r, "time_ms", 0), when, sizeof when);
    value_text(json_object_get(r, "old_value"), oldv, sizeof oldv);
    value_text(json_object_get(r, "new_value"), newv, sizeof newv);
    printf("%s %-16s %-36s %12s -> %-12s %s@%s%s%s\n", when,
           vg_proto_get_str(r, "kind", "?"),
           json_is_string(json_object_get(r, "object"))
               ? vg_proto_get_str(r, "object", "")
               : "-",
           oldv, newv,
           json_is_string(json_object_get(r, "user")) ? vg_proto_get_str(r, "user", "")
                                                      : "-",
           json_is_string(json_object_get(r, "station"))
               ? vg_proto_get_str(r, "station", "")
               : "-",
           json_is_string(json_object_get(r, "detail")) ? "  " : "",
           json_is_string(json_object_get(r, "detail"))
               ? vg_proto_get_str(r, "detail", "")
               : "");
}

static json_t *audit_request(const struct ropts *o, long long from, long long to)
{
    json_t *req = vg_proto_request("audit", -1);
    json_object_set_new(req, "from_ms", json_integer(o->from ? from : 0));
    if (o->to != NULL) {
        json_object_set_new(req, "to_ms", json_integer(to));
    }
    if (o->kind != NULL) {
        json_object_set_new(req, "kind", json_string(o->kind));
    }
    if (o->user != NULL) {
        json_object_set_new(req, "user", json_string(o->user));
    }
    return req;
}

static int cmd_audit(struct ctx *x)
{
    long long from, to;
    json_t *req;
    int rv;

    if (x->o->n_pos != 1) {
        return usage("audit: no arguments expected (filters are options)");
    }
    if ((rv = parse_range(x->o, &from, &to)) != 0) {
        return rv;
    }
    req = audit_request(x->o, from, to);
    rv = page_newest_first(x, req, "records", x->o->limit > 0 ? x->o->limit : 100,
                           audit_row);
    json_decref(req);
    return rv;
}

/* --------------------------------------------------------------- history */

static int history_query(struct ctx *x)
{
    const struct ropts *o = x->o;
    long long from, to;
    json_t *req, *ans, *row;
    size_t i;
    int rv;

    if (o->n_pos != 3) {
        return usage("history query: expected one TAG");
    }
    if (o->raw && o->buckets > 0) {
        return usage("history query: --raw and --buckets exclude each other");
    }
    if ((rv = parse_range(o, &from, &to)) != 0) {
        return rv;
    }
    req = vg_proto_request("history_query", -1);
    json_object_set_new(req, "tag", json_string(o->pos[2]));
    json_object_set_new(req, "from_ms", json_integer(from));
    json_object_set_new(req, "to_ms", json_integer(to));
    if (o->raw) {
        json_object_set_new(req, "limit",
                            json_integer(o->limit > 0 && o->limit <= 100000 ? o->limit
                                                                           : 10000));
    } else {
        json_object_set_new(req, "buckets", json_integer(o->buckets > 0 ? o->buckets : 100));
    }
    if ((rv = request(x, req, &ans)) != 0) {
        return rv;
    }
    if (o->json) {
        print_line(ans);
        json_decref(ans);
        return 0;
    }
    if (o->raw) {
        json_array_foreach(json_object_get(ans, "samples"), i, row) {
            char when[32], v[64];
            time_text(json_integer_value(json_array_get(row, 0)), when, sizeof when);
            value_text(json_array_get(row, 1), v, sizeof v);
            printf("%s.%03lld %s%s\n", when,
                   (long long)(json_integer_value(json_array_get(row, 0)) % 1000), v,
                   json_integer_value(json_array_get(row, 2)) ? " (bad)" : "");
        }
        if (json_is_true(json_object_get(ans, "more"))) {
            fprintf(stderr, "(more samples in the range: use --limit or narrow it)\n");
        }
    } else {
        printf("%-19s %7s %12s %12s %12s %12s %12s\n", "BUCKET", "N", "MIN", "MAX",
               "AVG", "FIRST", "LAST");
        json_array_foreach(json_object_get(ans, "buckets"), i, row) {
            char when[32], c[5][32];
            time_text(json_integer_value(json_array_get(row, 0)), when, sizeof when);
            for (int k = 0; k < 5; k++) {
                value_text(json_array_get(row, (size_t)k + 2), c[k], sizeof c[k]);
            }
            printf("%-19s %7lld %12s %12s %12s %12s %12s\n", when,
                   (long long)json_integer_value(json_array_get(row, 1)), c[0], c[1],
                   c[2], c[3], c[4]);
        }
    }
    json_decref(ans);
    return 0;
}

static void csv_field(FILE *f, const char *s)
{
    if (strpbrk(s, ",\"\r\n") == NULL) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') {
            fputc('"', f);
        }
        fputc(*s, f);
    }
    fputc('"', f);
}

static int history_export(struct ctx *x)
{
    const struct ropts *o = x->o;
    long long from, to, rows = 0;
    FILE *out = stdout;
    int rv = 0;

    if (o->n_pos < 3) {
        return usage("history export: expected one or more TAGs");
    }
    if ((rv = parse_range(o, &from, &to)) != 0) {
        return rv;
    }
    if (o->output != NULL && (out = fopen(o->output, "w")) == NULL) {
        fprintf(stderr, "vigilctl: history export: cannot write %s: %s\n", o->output,
                strerror(errno));
        return EXIT_FAILED;
    }
    fputs("tag,time,time_ms,value,quality\r\n", out);
    for (int t = 2; t < o->n_pos && rv == 0; t++) {
        long long next = from;
        for (;;) {
            json_t *req = vg_proto_request("history_query", -1), *ans, *row;
            size_t i;
            json_object_set_new(req, "tag", json_string(o->pos[t]));
            json_object_set_new(req, "from_ms", json_integer(next));
            json_object_set_new(req, "to_ms", json_integer(to));
            json_object_set_new(req, "limit", json_integer(50000));
            if ((rv = request(x, req, &ans)) != 0) {
                break;
            }
            json_array_foreach(json_object_get(ans, "samples"), i, row) {
                char when[32], v[64];
                long long ms = json_integer_value(json_array_get(row, 0));
                time_text(ms, when, sizeof when);
                value_text(json_array_get(row, 1), v, sizeof v);
                csv_field(out, o->pos[t]);
                fprintf(out, ",%s.%03lld,%lld,%s,%s\r\n", when, ms % 1000, ms, v,
                        json_integer_value(json_array_get(row, 2)) ? "bad" : "good");
                rows++;
            }
            if (!json_is_true(json_object_get(ans, "more"))) {
                json_decref(ans);
                break;
            }
            next = vg_proto_get_int(ans, "next_from_ms", to);
            json_decref(ans);
        }
    }
    if (out != stdout && fclose(out) != 0 && rv == 0) {
        fprintf(stderr, "vigilctl: history export: cannot write %s: %s\n", o->output,
                strerror(errno));
        rv = EXIT_FAILED;
    }
    if (rv == 0 && o->output != NULL) {
        fprintf(stderr, "%lld sample(s) written to %s\n", rows, o->output);
    }
    return rv;
}

static int cmd_history(struct ctx *x)
{
    const char *sub = x->o->n_pos > 1 ? x->o->pos[1] : "";
    if (strcmp(sub, "query") == 0) {
        return history_query(x);
    }
    if (strcmp(sub, "export") == 0) {
        return history_export(x);
    }
    return usage("history: expected query or export, got '%s'", sub);
}

/* ---------------------------------------------------------------- report */

/* Every row of a newest-first query, oldest first, into a new array. */
struct report_spec {
    enum vg_report_type type;
    const char *title;
    const char *const *sections;
    size_t n_sections;
    const char *const *tags;
    size_t n_tags;
    bool pdf;
};

static int run_report(struct ctx *x, const struct report_spec *spec, long long from,
                      long long to, const char *plant)
{
    const struct ropts *o = x->o;
    char errmsg[VG_ERRMSG_SIZE], filter[512] = "";
    struct vg_report_doc doc;
    json_t *data = NULL;
    struct vg_fetch_report q;
    unsigned pages = 0;
    int rv;

    if (o->output == NULL) {
        return usage("report: -o FILE is required");
    }
    memset(&doc, 0, sizeof doc);
    memset(&q, 0, sizeof q);
    q.kind = spec->type == VG_REPORT_TYPE_ALARMS  ? VG_FETCH_ALARMS
             : spec->type == VG_REPORT_TYPE_AUDIT ? VG_FETCH_AUDIT
                                                  : VG_FETCH_TAGS;
    q.from_ms = from;
    q.to_ms = to;
    q.sections = spec->sections;
    q.n_sections = spec->n_sections;
    q.tags = spec->tags;
    q.n_tags = spec->n_tags;
    q.audit_kind = o->kind;
    q.audit_user = o->user;
    if (q.kind == VG_FETCH_TAGS && spec->n_tags == 0) {
        return usage("report tags: name the tags with --tag TAG...");
    }
    if (vg_fetch_report_data(vg_fetch_call_client, x->c, &q, &data, errmsg) != VG_OK) {
        fprintf(stderr, "vigilctl: %s: %s\n", x->name, errmsg);
        return EXIT_FAILED;
    }
    if (spec->n_sections > 0) {
        size_t off = (size_t)snprintf(filter, sizeof filter, "sections:");
        for (size_t i = 0; i < spec->n_sections && off < sizeof filter; i++) {
            off += (size_t)snprintf(filter + off, sizeof filter - off, "%s %s",
                                    i ? "," : "", spec->sections[i]);
        }
    }
    doc.type = spec->type;
    doc.title = spec->title;
    doc.plant = plant;
    doc.filter = filter[0] ? filter : NULL;
    doc.language = o->language;
    doc.from_ms = (uint64_t)from;
    doc.to_ms = (uint64_t)to;
    doc.generated_ms = (uint64_t)now_ms();
    doc.data = data;
    if (spec->pdf) {
        rv = vg_report_write_pdf(&doc, o->output, &pages, errmsg);
    } else {
        FILE *f = fopen(o->output, "w");
        if (f == NULL) {
            vg_errf(errmsg, "cannot write %s: %s", o->output, strerror(errno));
            rv = VG_EIO;
        } else {
            rv = vg_report_write_csv(&doc, f, errmsg);
            if (fclose(f) != 0 && rv == VG_OK) {
                vg_errf(errmsg, "cannot write %s: %s", o->output, strerror(errno));
                rv = VG_EIO;
            }
        }
    }
    if (rv != VG_OK) {
        fprintf(stderr, "vigilctl: report: %s\n", errmsg);
        json_decref(data);
        return EXIT_FAILED;
    }
    if (spec->pdf) {
        printf("%s: %zu row(s)/series, %u page(s)\n", o->output, json_array_size(data),
               pages);
    } else {
        printf("%s: %zu row(s)/series\n", o->output, json_array_size(data));
    }
    json_decref(data);
    return 0;
}

static bool format_pdf(const struct ropts *o, bool def, int *rv)
{
    *rv = 0;
    if (o->format == NULL) {
        return def;
    }
    if (strcmp(o->format, "pdf") == 0) {
        return true;
    }
    if (strcmp(o->format, "csv") != 0) {
        *rv = usage("report: --format must be csv or pdf, got '%s'", o->format);
    }
    return false;
}

static int cmd_report(struct ctx *x)
{
    const struct ropts *o = x->o;
    const char *sub = o->n_pos > 1 ? o->pos[1] : "";
    struct report_spec spec;
    long long from, to;
    int rv;

    memset(&spec, 0, sizeof spec);
    if (strcmp(sub, "run") == 0) {
        struct vg_project *p = NULL;
        void *owner = NULL;
        const struct vg_report *r = NULL;
        const char *secs[MULTI_MAX], *tags[MULTI_MAX];
        char title[256];

        if (o->n_pos != 3) {
            return usage("report run: expected the NAME of a report of the project");
        }
        if ((rv = vigilctl_active_project(x->c, &p, &owner)) != 0) {
            return rv;
        }
        for (size_t i = 0; i < p->n_reports; i++) {
            if (strcmp(p->reports[i].name, o->pos[2]) == 0) {
                r = &p->reports[i];
            }
        }
        if (r == NULL) {
            fprintf(stderr, "vigilctl: report run: the project has no report '%s'\n",
                    o->pos[2]);
            vigilctl_project_free(p, owner);
            return EXIT_FAILED;
        }
        spec.type = r->kind == VG_REPORT_ALARMS ? VG_REPORT_TYPE_ALARMS
                    : r->kind == VG_REPORT_TAGS ? VG_REPORT_TYPE_TAGS
                                                : VG_REPORT_TYPE_AUDIT;
        {
            int lang = o->language != NULL ? vg_project_language(p, o->language) : 0;
            const char *t = lang >= 0 ? r->title.s[lang] : NULL;
            snprintf(title, sizeof title, "%s", o->title ? o->title
                                                : t != NULL ? t : r->name);
        }
        spec.title = title;
        for (size_t i = 0; i < r->n_sections && i < MULTI_MAX; i++) {
            secs[spec.n_sections++] = r->sections[i].name;
        }
        for (size_t i = 0; i < r->n_tags && i < MULTI_MAX; i++) {
            tags[spec.n_tags++] = r->tags[i].name;
        }
        spec.sections = secs;
        spec.tags = tags;
        spec.pdf = format_pdf(o, r->pdf, &rv);
        if (rv == 0) {
            to = now_ms();
            if (o->to != NULL && !parse_time(o->to, &to)) {
                rv = usage("--to: cannot read the time '%s'", o->to);
            }
            from = to - (long long)(r->range_s ? r->range_s : 86400) * 1000;
            if (rv == 0 && o->from != NULL && !parse_time(o->from, &from)) {
                rv = usage("--from: cannot read the time '%s'", o->from);
            }
        }
        if (rv == 0) {
            rv = run_report(x, &spec, from, to, p->name);
        }
        vigilctl_project_free(p, owner);
        return rv;
    }
    if (strcmp(sub, "alarms") == 0) {
        spec.type = VG_REPORT_TYPE_ALARMS;
        spec.title = "Alarm report";
    } else if (strcmp(sub, "tags") == 0) {
        spec.type = VG_REPORT_TYPE_TAGS;
        spec.title = "Process value report";
    } else if (strcmp(sub, "audit") == 0) {
        spec.type = VG_REPORT_TYPE_AUDIT;
        spec.title = "Audit trail";
    } else {
        return usage("report: expected alarms, tags, audit or run, got '%s'", sub);
    }
    if (o->n_pos != 2) {
        return usage("report %s: no arguments expected (use options)", sub);
    }
    if (o->title != NULL) {
        spec.title = o->title;
    }
    spec.sections = o->sections;
    spec.n_sections = o->n_sections;
    spec.tags = o->tags;
    spec.n_tags = o->n_tags;
    spec.pdf = format_pdf(o, o->output != NULL && strlen(o->output) > 4 &&
                                 strcmp(o->output + strlen(o->output) - 4, ".pdf") == 0,
                          &rv);
    if (rv != 0 || (rv = parse_range(o, &from, &to)) != 0) {
        return rv;
    }
    return run_report(x, &spec, from, to, NULL);
}

/* ------------------------------------------------------------------ main */

int vigilctl_records_main(int argc, char **argv)
{
    struct ropts o;
    struct ctx x;
    char errmsg[VG_ERRMSG_SIZE];
    int rv;

    memset(&o, 0, sizeof o);
    if ((rv = parse_args(argc, argv, &o)) != 0) {
        return rv;
    }
    if (o.help) {
        fputs(vigilctl_records_usage, stdout);
        return 0;
    }
    if (o.cluster == NULL) {
        o.cluster = getenv("VIGIL_CLUSTER");
    }
    if (o.cluster == NULL || *o.cluster == '\0') {
        return usage("no cluster given: use --cluster HOST:PORT[,...] or set "
                     "VIGIL_CLUSTER");
    }
    x.o = &o;
    x.name = o.pos[0];
    x.c = vg_client_new(o.cluster, errmsg);
    if (x.c == NULL) {
        return usage("bad cluster address list: %s", errmsg);
    }
    vg_client_set_timeout(x.c, o.timeout_ms);
    if (strcmp(o.pos[0], "alarms") == 0) {
        rv = cmd_alarms(&x);
    } else if (strcmp(o.pos[0], "audit") == 0) {
        rv = cmd_audit(&x);
    } else if (strcmp(o.pos[0], "history") == 0) {
        rv = cmd_history(&x);
    } else {
        rv = cmd_report(&x);
    }
    vg_client_free(x.c);
    return rv;
}
