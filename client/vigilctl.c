/* vigilctl: command-line administration of a Vigil cluster.
 *
 * main() parses and validates everything first (exit 2 on any usage error,
 * before a single connection is made), then runs one command through the
 * client library. Exit status: 0 success, 1 the operation failed (the
 * cluster answered with an error, could not be reached, or — for
 * "cluster status" — no ready leader was found; for "project validate": the
 * project has errors), 2 usage error.
 *
 * The project commands use config/ to read, validate, pack and compare
 * projects locally; "project validate" needs no cluster at all. "tags list"
 * fetches the active version and parses it with config/ as well.
 *
 * "tags watch" is the one command that runs until stopped: SIGINT/SIGTERM
 * only set a flag, which the event loop looks at between short waits (a
 * second signal kills at once, in case the library is busy reconnecting). */
#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <pwd.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "fetch.h"
#include "vigilctl_records.h"
#include "../config/project.h"
#include "../proto/proto.h"

#define EXIT_FAILED 1
#define EXIT_USAGE 2
#define STATUS_TIMEOUT_MS 1000u
#define MAX_NODES 64
#define MAX_TIMEOUT_MS 86400000ull
#define MAX_KEY 256u
#define MAX_VALUE 65536u
#define LEADER_POLL_MS 100
/* cluster status: a node busy reading its archive is asked again. */
#define STATUS_TRIES 3
#define STATUS_RETRY_MS 200
#define MAX_COMMENT 1024u
/* A load validates on the leader and commits a large command: give it more
 * time than a plain request unless --timeout says otherwise. */
#define LOAD_TIMEOUT_MS 60000u
#define LOAD_ATTEMPTS 5
#define CHUNK_BYTES (512u * 1024u)
#define WATCH_POLL_MS 1000u
/* tags watch: how long one wait for an event may hide a signal. */
#define TAGS_WATCH_POLL_MS 500u
#define TAGS_RETRY_MS 500u
#define MAX_READ_TAGS 10000
#define MAX_WATCH_NAMES 100000
#define MAX_WHO 128u
#define MAX_ACTIONS 1000ull
#define MAX_COUNT 1000000000ull

static const char usage_text[] =
    "Usage: vigilctl [--cluster HOST:PORT[,HOST:PORT...]] [--json] [--timeout MS]\n"
    "                COMMAND [ARGS...]\n"
    "\n"
    "Administer a Vigil cluster.\n"
    "\n"
    "Options:\n"
    "  --cluster ADDRS  client addresses of one or more nodes, comma-separated\n"
    "                   (default: the VIGIL_CLUSTER environment variable)\n"
    "  --json           print the JSON answer(s) instead of text\n"
    "  --timeout MS     give up on the command after MS milliseconds (default 5000;\n"
    "                   60000 for project load)\n"
    "  --comment TEXT   project load: why this version is loaded (stored with it)\n"
    "  -h, --help       print this help and exit\n"
    "  (the tags commands have options of their own, shown with them below)\n"
    "\n"
    "Commands:\n"
    "  cluster status                       every node's state; do replicas agree?\n"
    "  cluster members                      the leader's list of members\n"
    "  cluster add ID RAFT_ADDR CLIENT_ADDR add a node (it joins as spare)\n"
    "  cluster remove ID                    remove a node\n"
    "  cluster promote ID                   make a node a voter\n"
    "  cluster demote ID [standby|spare]    make a node a standby (default) or spare\n"
    "  cluster transfer [ID]                move leadership to ID (or let the leader choose)\n"
    "  put KEY VALUE                        store a replicated setting\n"
    "  get KEY                              read a setting (from the leader if known)\n"
    "  project validate DIR                 check a project folder; prints every error\n"
    "                                       as FILE:LINE:COL: error: MESSAGE (FILE\n"
    "                                       relative to DIR); needs no cluster\n"
    "  project load DIR [--comment TEXT]    validate, then load the project into the\n"
    "                                       cluster as a new version (or report it\n"
    "                                       unchanged)\n"
    "  project show [VERSION]               the active (or given) version, as stored\n"
    "                                       on the node that answers\n"
    "  project history                      the versions loaded, oldest first\n"
    "  project diff V1 V2                   what changed from version V1 to V2\n"
    "  project watch                        print project events (a version became\n"
    "                                       active) until interrupted\n"
    "  tags list [PATTERN] [--plc NAME] [--section NAME]\n"
    "                                       the tags of the active project version\n"
    "                                       (PATTERN: a glob on the name; --section\n"
    "                                       includes its sub-sections)\n"
    "  tags read TAG...                     current values: NAME VALUE UNIT QUALITY TIME\n"
    "  tags write TAG VALUE [--user U] [--station S]\n"
    "                                       write a setpoint (VALUE: a number, true\n"
    "                                       or false); default user $USER, station\n"
    "                                       this host's name\n"
    "  tags watch [TAG...] [--screen NAME]... [--all] [--count N] [--for MS]\n"
    "                                       print value changes (TIME NAME VALUE\n"
    "                                       QUALITY, the current image first) until\n"
    "                                       interrupted, N values were printed or MS\n"
    "                                       milliseconds passed; follows the leader\n"
    "  tags history [TAG] [--limit N]       the operator action log (newest last;\n"
    "                                       N 1..1000, default 100)\n"
    "\n"
    "%s"
    "\n"
    "Options may appear anywhere before \"--\"; arguments after \"--\" are never\n"
    "taken as options (use it for values that begin with '-').\n"
    "\n"
    "Exit status: 0 success, 1 the operation failed (cluster status: no ready\n"
    "leader; project validate: the project has errors), 2 usage error.\n";

enum cmd_kind {
    CMD_STATUS,
    CMD_MEMBERS,
    CMD_ADD,
    CMD_REMOVE,
    CMD_PROMOTE,
    CMD_DEMOTE,
    CMD_TRANSFER,
    CMD_PUT,
    CMD_GET,
    CMD_PROJECT_VALIDATE,
    CMD_PROJECT_LOAD,
    CMD_PROJECT_SHOW,
    CMD_PROJECT_HISTORY,
    CMD_PROJECT_DIFF,
    CMD_PROJECT_WATCH,
    CMD_TAGS_LIST,
    CMD_TAGS_READ,
    CMD_TAGS_WRITE,
    CMD_TAGS_WATCH,
    CMD_TAGS_HISTORY,
};

struct opts {
    const char *cluster;
    const char *cluster_from; /* "--cluster" or "VIGIL_CLUSTER" */
    bool json;
    unsigned timeout_ms;
    bool timeout_given;
    const char *comment;
    bool help;
    /* Options of the tags commands (main checks which command they go with). */
    const char *plc;       /* tags list */
    const char *section;   /* tags list */
    const char *user;      /* tags write */
    const char *station;   /* tags write */
    const char **screens;  /* tags watch; argv strings, array owned by main */
    size_t n_screens;
    bool all;              /* tags watch */
    unsigned long long count; /* tags watch, 0: no limit */
    unsigned long long for_ms; /* tags watch, 0: no limit */
    unsigned long long limit;  /* tags history, 0: the node's default */
};

struct cmd {
    enum cmd_kind kind;
    const char *name; /* "cluster add", "put", … for messages */
    long long id;
    const char *role;
    const char *raft_address;
    const char *client_address;
    const char *key;
    const char *value;
    const char *dir;       /* project validate / load */
    long long version;     /* project show (0: active), diff V1 */
    long long version2;    /* project diff V2 */
    char **args;           /* tags: the words after "tags SUBCOMMAND" */
    int n_args;
    json_t *write_value;   /* tags write: VALUE parsed (owned; main frees) */
};

/* ------------------------------------------------------------------ */
/* Usage errors                                                        */

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs("vigilctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'vigilctl --help'.\n", stderr);
    return EXIT_USAGE;
}

/* Strict unsigned decimal: digits only, fully consumed, within 1..MAX. */
static bool parse_uint(const char *text, unsigned long long max,
                       unsigned long long *out)
{
    unsigned long long v;
    char *end;

    if (text == NULL || *text < '0' || *text > '9') {
        return false; /* strtoull would accept " 1", "+1" and "-1" */
    }
    errno = 0;
    v = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || v == 0 || v > max) {
        return false;
    }
    *out = v;
    return true;
}

static int parse_id(const struct cmd *cmd, const char *text, long long *id)
{
    unsigned long long v;

    if (!parse_uint(text, (unsigned long long)INT64_MAX, &v)) {
        return usage_error("%s: ID must be a positive integer, got '%s'",
                           cmd->name, text);
    }
    *id = (long long)v;
    return 0;
}

static int check_addr(const struct cmd *cmd, const char *what,
                      const char *text)
{
    char host[256];
    char why[VG_ERRMSG_SIZE];
    int port;

    if (vg_addr_parse(text, host, sizeof host, &port, why) != VG_OK) {
        return usage_error("%s: bad %s: %s", cmd->name, what, why);
    }
    return 0;
}

/* Check the number of arguments after the command words. */
static int want_args(const struct cmd *cmd, int have, int min, int max,
                     const char *synopsis)
{
    if (have < min) {
        return usage_error("%s: missing argument; usage: vigilctl %s",
                           cmd->name, synopsis);
    }
    if (have > max) {
        return usage_error("%s: too many arguments; usage: vigilctl %s",
                           cmd->name, synopsis);
    }
    return 0;
}

/* Is A the option NAME ("--name" or "--name=VALUE")? If so, point *VAL at
 * its value, taking the next argument when there is no "=", and return 1;
 * return 0 for another option, or -1 after a usage error when the value is
 * missing (HINT says what it should be). */
static int option_value(const char *a, const char *name, const char *hint,
                        int argc, char **argv, int *i, const char **val)
{
    size_t len = strlen(name);

    if (strncmp(a, name, len) != 0 || (a[len] != '\0' && a[len] != '=')) {
        return 0;
    }
    if (a[len] == '=') {
        *val = a + len + 1;
        return 1;
    }
    if (*i + 1 >= argc) {
        usage_error("%s needs a value (%s)", name, hint);
        return -1;
    }
    *val = argv[++*i];
    return 1;
}

/* A count option: a whole number 1..MAX. */
static int parse_count(const char *name, const char *val,
                       unsigned long long max, unsigned long long *out)
{
    if (!parse_uint(val, max, out)) {
        return usage_error("%s must be a whole number 1..%llu, got '%s'", name,
                           max, val);
    }
    return 0;
}

/* The options that take a name: --plc, --section (tags list), --user,
 * --station (tags write), --screen (tags watch, repeatable). Returns as
 * option_value() does. */
static int name_option(const char *a, int argc, char **argv, int *i,
                       struct opts *o)
{
    const char *screen = NULL;
    const struct {
        const char *name;
        const char **dest;
        size_t max; /* bytes; 0: no limit */
    } table[] = {
        {"--plc", &o->plc, 0},
        {"--section", &o->section, 0},
        {"--user", &o->user, MAX_WHO},
        {"--station", &o->station, MAX_WHO},
        {"--screen", &screen, 0},
    };
    size_t k;

    for (k = 0; k < sizeof table / sizeof table[0]; k++) {
        const char *val = NULL;
        int got = option_value(a, table[k].name, "NAME", argc, argv, i, &val);

        if (got < 0) {
            return got;
        }
        if (got == 0) {
            continue;
        }
        if (*val == '\0') {
            usage_error("%s must not be empty", table[k].name);
            return -1;
        }
        if (table[k].max > 0 && strlen(val) > table[k].max) {
            usage_error("%s must be at most %zu bytes long", table[k].name,
                        table[k].max);
            return -1;
        }
        *table[k].dest = val;
        if (screen != NULL) {
            o->screens[o->n_screens++] = screen;
        }
        return 1;
    }
    return 0;
}

/* Parse global options anywhere before "--", collecting the rest in POS. */
static int parse_options(int argc, char **argv, struct opts *o, char **pos,
                         int *n_pos)
{
    bool options_done = false;
    int i;

    *n_pos = 0;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        int got;

        if (options_done || a[0] != '-' || a[1] == '\0') {
            pos[(*n_pos)++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            options_done = true;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            o->help = true;
            continue;
        }
        if (strcmp(a, "--json") == 0) {
            o->json = true;
            continue;
        }
        if (strcmp(a, "--all") == 0) {
            o->all = true;
            continue;
        }
        if ((got = option_value(a, "--cluster", "HOST:PORT[,...]", argc, argv,
                                &i, &val)) != 0) {
            if (got < 0) {
                return EXIT_USAGE;
            }
            o->cluster = val;
            o->cluster_from = "--cluster";
            continue;
        }
        if ((got = option_value(a, "--timeout", "milliseconds", argc, argv, &i,
                                &val)) != 0) {
            unsigned long long ms;
            if (got < 0) {
                return EXIT_USAGE;
            }
            if (!parse_uint(val, MAX_TIMEOUT_MS, &ms)) {
                return usage_error("--timeout must be a whole number of "
                                   "milliseconds 1..%llu, got '%s'",
                                   MAX_TIMEOUT_MS, val);
            }
            o->timeout_ms = (unsigned)ms;
            o->timeout_given = true;
            continue;
        }
        if ((got = option_value(a, "--comment", "TEXT", argc, argv, &i,
                                &val)) != 0) {
            if (got < 0) {
                return EXIT_USAGE;
            }
            if (strlen(val) > MAX_COMMENT) {
                return usage_error("--comment must be at most %u bytes long",
                                   MAX_COMMENT);
            }
            o->comment = val;
            continue;
        }
        if ((got = name_option(a, argc, argv, &i, o)) != 0) {
            if (got < 0) {
                return EXIT_USAGE;
            }
            continue;
        }
        if ((got = option_value(a, "--count", "N", argc, argv, &i, &val)) != 0) {
            if (got < 0 || parse_count("--count", val, MAX_COUNT, &o->count) != 0) {
                return EXIT_USAGE;
            }
            continue;
        }
        if ((got = option_value(a, "--for", "milliseconds", argc, argv, &i,
                                &val)) != 0) {
            if (got < 0 || parse_count("--for", val, MAX_TIMEOUT_MS, &o->for_ms) != 0) {
                return EXIT_USAGE;
            }
            continue;
        }
        if ((got = option_value(a, "--limit", "N", argc, argv, &i, &val)) != 0) {
            if (got < 0 || parse_count("--limit", val, MAX_ACTIONS, &o->limit) != 0) {
                return EXIT_USAGE;
            }
            continue;
        }
        return usage_error("unknown option '%s' (put '--' before arguments "
                           "that begin with '-')",
                           a);
    }
    return 0;
}

static int parse_version(const struct cmd *cmd, const char *text,
                         long long *version)
{
    unsigned long long v;

    if (!parse_uint(text, (unsigned long long)INT64_MAX, &v)) {
        return usage_error("%s: VERSION must be a positive integer, got '%s'",
                           cmd->name, text);
    }
    *version = (long long)v;
    return 0;
}

/* "project SUBCOMMAND …" */
static int parse_project(char **pos, int n_pos, struct cmd *cmd)
{
    const char *word;
    int n = n_pos - 2; /* arguments after "project WORD" */
    int rv;

    if (n_pos < 2) {
        return usage_error("project: missing subcommand (validate, load, show, "
                           "history, diff or watch)");
    }
    word = pos[1];
    if (strcmp(word, "validate") == 0 || strcmp(word, "load") == 0) {
        bool load = word[0] == 'l';
        cmd->kind = load ? CMD_PROJECT_LOAD : CMD_PROJECT_VALIDATE;
        cmd->name = load ? "project load" : "project validate";
        if ((rv = want_args(cmd, n, 1, 1,
                            load ? "project load DIR [--comment TEXT]"
                                 : "project validate DIR")) != 0) {
            return rv;
        }
        cmd->dir = pos[2];
        if (*cmd->dir == '\0') {
            return usage_error("%s: DIR must not be empty", cmd->name);
        }
        return 0;
    }
    if (strcmp(word, "show") == 0) {
        cmd->kind = CMD_PROJECT_SHOW;
        cmd->name = "project show";
        if ((rv = want_args(cmd, n, 0, 1, "project show [VERSION]")) != 0) {
            return rv;
        }
        return n == 1 ? parse_version(cmd, pos[2], &cmd->version) : 0;
    }
    if (strcmp(word, "history") == 0) {
        cmd->kind = CMD_PROJECT_HISTORY;
        cmd->name = "project history";
        return want_args(cmd, n, 0, 0, "project history");
    }
    if (strcmp(word, "diff") == 0) {
        cmd->kind = CMD_PROJECT_DIFF;
        cmd->name = "project diff";
        if ((rv = want_args(cmd, n, 2, 2, "project diff V1 V2")) != 0 ||
            (rv = parse_version(cmd, pos[2], &cmd->version)) != 0 ||
            (rv = parse_version(cmd, pos[3], &cmd->version2)) != 0) {
            return rv;
        }
        return 0;
    }
    if (strcmp(word, "watch") == 0) {
        cmd->kind = CMD_PROJECT_WATCH;
        cmd->name = "project watch";
        return want_args(cmd, n, 0, 0, "project watch");
    }
    return usage_error("project: unknown subcommand '%s' (expected validate, "
                       "load, show, history, diff or watch)",
                       word);
}

/* VALUE of "tags write": true, false, or a decimal number. Hex, inf and
 * nan are refused: a setpoint is typed by a person, and strtod's extras are
 * more likely a typo than a wish. Returns NULL when TEXT is none of these. */
static json_t *parse_write_value(const char *text)
{
    const char *p = text;
    bool integral = true;
    size_t digits = 0;
    char *end;

    if (strcmp(text, "true") == 0) {
        return json_true();
    }
    if (strcmp(text, "false") == 0) {
        return json_false();
    }
    if (*p == '-') {
        p++;
    }
    for (; *p >= '0' && *p <= '9'; p++) {
        digits++;
    }
    if (*p == '.') {
        integral = false;
        for (p++; *p >= '0' && *p <= '9'; p++) {
            digits++;
        }
    }
    if (digits == 0) {
        return NULL;
    }
    if (*p == 'e' || *p == 'E') {
        integral = false;
        p++;
        if (*p == '+' || *p == '-') {
            p++;
        }
        if (*p < '0' || *p > '9') {
            return NULL;
        }
        while (*p >= '0' && *p <= '9') {
            p++;
        }
    }
    if (*p != '\0') {
        return NULL;
    }
    errno = 0;
    if (integral) {
        long long v = strtoll(text, &end, 10);
        if (errno == 0 && *end == '\0') {
            return json_integer(v);
        }
    }
    errno = 0;
    {
        double v = strtod(text, &end);
        if (errno != 0 || *end != '\0' || !isfinite(v)) {
            return NULL;
        }
        return json_real(v);
    }
}

static int check_tag_names(const struct cmd *cmd, char **names, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        if (*names[i] == '\0') {
            return usage_error("%s: TAG must not be empty", cmd->name);
        }
    }
    return 0;
}

/* "tags SUBCOMMAND …" */
static int parse_tags(char **pos, int n_pos, struct cmd *cmd)
{
    const char *word;
    int n = n_pos - 2; /* arguments after "tags WORD" */
    int rv;

    if (n_pos < 2) {
        return usage_error("tags: missing subcommand (list, read, write, watch "
                           "or history)");
    }
    word = pos[1];
    cmd->args = pos + 2;
    cmd->n_args = n;
    if (strcmp(word, "list") == 0) {
        cmd->kind = CMD_TAGS_LIST;
        cmd->name = "tags list";
        return want_args(cmd, n, 0, 1,
                         "tags list [PATTERN] [--plc NAME] [--section NAME]");
    }
    if (strcmp(word, "read") == 0) {
        cmd->kind = CMD_TAGS_READ;
        cmd->name = "tags read";
        if (n == 0) {
            return usage_error("tags read: missing TAG; usage: vigilctl tags "
                               "read TAG...");
        }
        if (n > MAX_READ_TAGS) {
            return usage_error("tags read: at most %d tags at a time",
                               MAX_READ_TAGS);
        }
        return check_tag_names(cmd, cmd->args, n);
    }
    if (strcmp(word, "write") == 0) {
        static const char synopsis[] =
            "usage: vigilctl tags write TAG VALUE [--user U] [--station S]";
        cmd->kind = CMD_TAGS_WRITE;
        cmd->name = "tags write";
        if (n < 2) {
            return usage_error("tags write: missing %s; %s",
                               n == 0 ? "TAG and VALUE" : "VALUE", synopsis);
        }
        if (n > 2) {
            return usage_error("tags write: too many arguments; %s", synopsis);
        }
        if ((rv = check_tag_names(cmd, cmd->args, 1)) != 0) {
            return rv;
        }
        cmd->write_value = parse_write_value(cmd->args[1]);
        if (cmd->write_value == NULL) {
            return usage_error("tags write: VALUE must be a decimal number, "
                               "true or false, got '%s' (put '--' before a "
                               "negative number)",
                               cmd->args[1]);
        }
        return 0;
    }
    if (strcmp(word, "watch") == 0) {
        cmd->kind = CMD_TAGS_WATCH;
        cmd->name = "tags watch";
        return check_tag_names(cmd, cmd->args, n);
    }
    if (strcmp(word, "history") == 0) {
        cmd->kind = CMD_TAGS_HISTORY;
        cmd->name = "tags history";
        if ((rv = want_args(cmd, n, 0, 1, "tags history [TAG] [--limit N]")) != 0) {
            return rv;
        }
        return check_tag_names(cmd, cmd->args, n);
    }
    return usage_error("tags: unknown subcommand '%s' (expected list, read, "
                       "write, watch or history)",
                       word);
}

/* Options that belong to one command only, and what a command needs from
 * them. */
static int check_option_scope(const struct opts *o, const struct cmd *cmd)
{
    const struct {
        bool given;
        const char *option;
        enum cmd_kind kind;
        const char *command;
    } scope[] = {
        {o->comment != NULL, "--comment", CMD_PROJECT_LOAD, "project load"},
        {o->plc != NULL, "--plc", CMD_TAGS_LIST, "tags list"},
        {o->section != NULL, "--section", CMD_TAGS_LIST, "tags list"},
        {o->user != NULL, "--user", CMD_TAGS_WRITE, "tags write"},
        {o->station != NULL, "--station", CMD_TAGS_WRITE, "tags write"},
        {o->n_screens > 0, "--screen", CMD_TAGS_WATCH, "tags watch"},
        {o->all, "--all", CMD_TAGS_WATCH, "tags watch"},
        {o->count > 0, "--count", CMD_TAGS_WATCH, "tags watch"},
        {o->for_ms > 0, "--for", CMD_TAGS_WATCH, "tags watch"},
        {o->limit > 0, "--limit", CMD_TAGS_HISTORY, "tags history"},
    };
    size_t i;

    for (i = 0; i < sizeof scope / sizeof scope[0]; i++) {
        if (scope[i].given && cmd->kind != scope[i].kind) {
            return usage_error("%s applies only to '%s'", scope[i].option,
                               scope[i].command);
        }
    }
    if (cmd->kind == CMD_TAGS_WATCH && cmd->n_args == 0 && o->n_screens == 0 &&
        !o->all) {
        return usage_error("tags watch: name at least one TAG, --screen NAME "
                           "or --all");
    }
    if (cmd->kind == CMD_TAGS_WATCH &&
        (size_t)cmd->n_args + o->n_screens > (size_t)MAX_WATCH_NAMES) {
        return usage_error("tags watch: at most %d names", MAX_WATCH_NAMES);
    }
    return 0;
}

/* Turn the positional words into a validated command. */
static int parse_command(char **pos, int n_pos, struct cmd *cmd)
{
    const char *word = pos[0];
    int n;
    int rv;

    memset(cmd, 0, sizeof *cmd);
    if (n_pos == 0) {
        return usage_error("missing command (cluster, project, tags, put or "
                           "get)");
    }
    if (strcmp(word, "project") == 0) {
        return parse_project(pos, n_pos, cmd);
    }
    if (strcmp(word, "tags") == 0) {
        return parse_tags(pos, n_pos, cmd);
    }
    if (strcmp(word, "put") == 0) {
        cmd->kind = CMD_PUT;
        cmd->name = "put";
        if ((rv = want_args(cmd, n_pos - 1, 2, 2, "put KEY VALUE")) != 0) {
            return rv;
        }
        cmd->key = pos[1];
        cmd->value = pos[2];
        if (*cmd->key == '\0' || strlen(cmd->key) > MAX_KEY) {
            return usage_error("put: KEY must be 1..%u bytes long", MAX_KEY);
        }
        if (strlen(cmd->value) > MAX_VALUE) {
            return usage_error("put: VALUE must be at most %u bytes long",
                               MAX_VALUE);
        }
        return 0;
    }
    if (strcmp(word, "get") == 0) {
        cmd->kind = CMD_GET;
        cmd->name = "get";
        if ((rv = want_args(cmd, n_pos - 1, 1, 1, "get KEY")) != 0) {
            return rv;
        }
        cmd->key = pos[1];
        if (*cmd->key == '\0' || strlen(cmd->key) > MAX_KEY) {
            return usage_error("get: KEY must be 1..%u bytes long", MAX_KEY);
        }
        return 0;
    }
    if (strcmp(word, "cluster") != 0) {
        return usage_error("unknown command '%s' (expected cluster, project, "
                           "tags, put or get)",
                           word);
    }
    if (n_pos < 2) {
        return usage_error("cluster: missing subcommand (status, members, add, "
                           "remove, promote, demote or transfer)");
    }
    word = pos[1];
    n = n_pos - 2; /* arguments after "cluster WORD" */
    if (strcmp(word, "status") == 0) {
        cmd->kind = CMD_STATUS;
        cmd->name = "cluster status";
        return want_args(cmd, n, 0, 0, "cluster status");
    }
    if (strcmp(word, "members") == 0) {
        cmd->kind = CMD_MEMBERS;
        cmd->name = "cluster members";
        return want_args(cmd, n, 0, 0, "cluster members");
    }
    if (strcmp(word, "add") == 0) {
        cmd->kind = CMD_ADD;
        cmd->name = "cluster add";
        if ((rv = want_args(cmd, n, 3, 3,
                            "cluster add ID RAFT_ADDR CLIENT_ADDR")) != 0 ||
            (rv = parse_id(cmd, pos[2], &cmd->id)) != 0 ||
            (rv = check_addr(cmd, "RAFT_ADDR", pos[3])) != 0 ||
            (rv = check_addr(cmd, "CLIENT_ADDR", pos[4])) != 0) {
            return rv;
        }
        cmd->raft_address = pos[3];
        cmd->client_address = pos[4];
        return 0;
    }
    if (strcmp(word, "remove") == 0 || strcmp(word, "promote") == 0) {
        bool remove = word[0] == 'r';
        cmd->kind = remove ? CMD_REMOVE : CMD_PROMOTE;
        cmd->name = remove ? "cluster remove" : "cluster promote";
        cmd->role = "voter";
        if ((rv = want_args(cmd, n, 1, 1,
                            remove ? "cluster remove ID"
                                   : "cluster promote ID")) != 0) {
            return rv;
        }
        return parse_id(cmd, pos[2], &cmd->id);
    }
    if (strcmp(word, "demote") == 0) {
        cmd->kind = CMD_DEMOTE;
        cmd->name = "cluster demote";
        if ((rv = want_args(cmd, n, 1, 2,
                            "cluster demote ID [standby|spare]")) != 0 ||
            (rv = parse_id(cmd, pos[2], &cmd->id)) != 0) {
            return rv;
        }
        cmd->role = n == 2 ? pos[3] : "standby";
        if (strcmp(cmd->role, "standby") != 0 &&
            strcmp(cmd->role, "spare") != 0) {
            return usage_error("cluster demote: role must be 'standby' or "
                               "'spare', got '%s'",
                               cmd->role);
        }
        return 0;
    }
    if (strcmp(word, "transfer") == 0) {
        cmd->kind = CMD_TRANSFER;
        cmd->name = "cluster transfer";
        if ((rv = want_args(cmd, n, 0, 1, "cluster transfer [ID]")) != 0) {
            return rv;
        }
        return n == 1 ? parse_id(cmd, pos[2], &cmd->id) : 0;
    }
    return usage_error("cluster: unknown subcommand '%s' (expected status, "
                       "members, add, remove, promote, demote or transfer)",
                       word);
}

/* ------------------------------------------------------------------ */
/* Output helpers                                                      */

static void print_json(json_t *j)
{
    json_dumpf(j, stdout, JSON_INDENT(2));
    fputc('\n', stdout);
}

static bool is_error(const json_t *answer)
{
    return strcmp(vg_proto_get_str(answer, "type", ""), "error") == 0;
}

/* Report an error answer on stderr. */
static int report_error(const struct cmd *cmd, const json_t *answer)
{
    const char *code = vg_proto_get_str(answer, "code", "unknown");

    fprintf(stderr, "vigilctl: %s failed: %s: %s%s\n", cmd->name, code,
            vg_proto_get_str(answer, "message", "(no message)"),
            strcmp(code, "busy") == 0
                ? " (a change is already in progress; try again when it "
                  "has finished)"
                : "");
    return EXIT_FAILED;
}

/* An aligned text table: rows of NCOLS strings, copied. */
struct table {
    size_t ncols;
    size_t nrows;
    char **cells;
};

static int table_add(struct table *t, const char *const *row)
{
    char **cells = realloc(t->cells, (t->nrows + 1) * t->ncols * sizeof *cells);
    size_t i;

    if (cells == NULL) {
        return VG_ENOMEM;
    }
    t->cells = cells;
    for (i = 0; i < t->ncols; i++) {
        cells[t->nrows * t->ncols + i] = strdup(row[i] != NULL ? row[i] : "-");
    }
    t->nrows++;
    return VG_OK;
}

/* Columns on a terminal: UTF-8 characters, not bytes ("m³/h" is 4 wide;
 * project texts are UTF-8 and rarely hold wide characters). */
static size_t text_width(const char *s)
{
    size_t n = 0;

    for (; s != NULL && *s != '\0'; s++) {
        n += ((unsigned char)*s & 0xC0) != 0x80;
    }
    return n;
}

static void table_print(const struct table *t)
{
    size_t width[16] = {0};
    size_t r;
    size_t i;

    for (r = 0; r < t->nrows; r++) {
        for (i = 0; i < t->ncols && i < 16; i++) {
            size_t len = text_width(t->cells[r * t->ncols + i]);
            width[i] = len > width[i] ? len : width[i];
        }
    }
    for (r = 0; r < t->nrows; r++) {
        for (i = 0; i < t->ncols && i < 16; i++) {
            const char *s = t->cells[r * t->ncols + i];
            if (i + 1 == t->ncols) {
                printf("%s\n", s != NULL ? s : "?");
            } else {
                printf("%s%*s  ", s != NULL ? s : "?",
                       (int)(width[i] - text_width(s != NULL ? s : "?")), "");
            }
        }
    }
}

static void table_free(struct table *t)
{
    size_t i;

    for (i = 0; i < t->nrows * t->ncols; i++) {
        free(t->cells[i]);
    }
    free(t->cells);
}

/* ------------------------------------------------------------------ */
/* Talking to the cluster                                              */

/* One request to the leader. Returns 0 with *ANSWER set (maybe an error
 * object), or EXIT_FAILED after saying why. */
static int call(struct vg_client *c, const struct cmd *cmd, json_t *req,
                json_t **answer)
{
    char errmsg[VG_ERRMSG_SIZE];
    int rv;

    if (req == NULL) {
        fprintf(stderr, "vigilctl: out of memory\n");
        return EXIT_FAILED;
    }
    rv = vg_client_call(c, req, answer, errmsg);
    json_decref(req);
    if (rv != VG_OK) {
        fprintf(stderr, "vigilctl: %s: cannot reach the cluster: %s\n",
                cmd->name, errmsg);
        return EXIT_FAILED;
    }
    return 0;
}

static bool is_ready_leader(const json_t *status)
{
    return strcmp(vg_proto_get_str(status, "type", ""), "status") == 0 &&
           strcmp(vg_proto_get_str(status, "state", ""), "leader") == 0 &&
           json_is_true(json_object_get(status, "ready"));
}

static void pause_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A status question without the archive's part: the full answer reads
 * the node's archive (tens to hundreds of ms of a thread of the node once
 * it holds millions of samples; at most two such reads at a time), and
 * these questions only look for the leader and the members.
 * `cluster status` asks the full one. */
static json_t *brief_status_request(void)
{
    json_t *q = vg_proto_request("status", -1);
    if (q != NULL) {
        json_object_set_new(q, "brief", json_true());
    }
    return q;
}

/* Find the ready leader's status: ask any node, then the leader it names.
 * "status" needs no leader, so the library does not redirect it for us. */
static int leader_status(struct vg_client *c, const struct cmd *cmd,
                         unsigned timeout_ms, json_t **out)
{
    uint64_t deadline = vg_now_mono_ms() + timeout_ms;
    char last[VG_ERRMSG_SIZE] = "no node answered";
    int rv;

    *out = NULL;
    do {
        json_t *st = NULL;
        const char *addr;
        char errmsg[VG_ERRMSG_SIZE];

        if ((rv = call(c, cmd, brief_status_request(), &st)) != 0) {
            return rv;
        }
        if (is_error(st)) {
            rv = report_error(cmd, st);
            json_decref(st);
            return rv;
        }
        if (is_ready_leader(st)) {
            *out = st;
            return 0;
        }
        addr = vg_proto_get_str(st, "leader_client_address", NULL);
        if (addr != NULL) {
            json_t *ls = NULL;
            json_t *req = brief_status_request();
            if (req != NULL &&
                vg_client_call_at(c, addr, req, &ls, errmsg) == VG_OK &&
                is_ready_leader(ls)) {
                json_decref(req);
                json_decref(st);
                *out = ls;
                return 0;
            }
            json_decref(req);
            json_decref(ls);
        }
        snprintf(last, sizeof last, "node %lld is %s, leader %s",
                 vg_proto_get_int(st, "node_id", 0),
                 vg_proto_get_str(st, "state", "in an unknown state"),
                 addr != NULL ? addr : "unknown");
        json_decref(st);
        pause_ms(LEADER_POLL_MS);
    } while (vg_now_mono_ms() < deadline);
    fprintf(stderr, "vigilctl: %s: no ready leader within %u ms (%s)\n",
            cmd->name, timeout_ms, last);
    return EXIT_FAILED;
}

static const json_t *find_member(const json_t *members, long long id,
                                 const char *client_address)
{
    size_t i;
    json_t *m;

    json_array_foreach(members, i, m) {
        if (id > 0 && vg_proto_get_int(m, "id", 0) == id) {
            return m;
        }
        if (client_address != NULL &&
            strcmp(vg_proto_get_str(m, "client_address", ""),
                   client_address) == 0) {
            return m;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* cluster status                                                      */

struct node {
    char *addr;     /* client address asked */
    json_t *status; /* its status answer, or NULL */
    char *error;    /* why there is none */
};

struct survey {
    struct node nodes[MAX_NODES];
    size_t n;
};

static void survey_add(struct survey *s, const char *addr)
{
    size_t i;

    if (addr == NULL || *addr == '\0' || s->n == MAX_NODES) {
        return;
    }
    for (i = 0; i < s->n; i++) {
        if (strcmp(s->nodes[i].addr, addr) == 0) {
            return;
        }
    }
    s->nodes[s->n].addr = strdup(addr);
    if (s->nodes[s->n].addr != NULL) {
        s->n++;
    }
}

static void survey_free(struct survey *s)
{
    size_t i;

    for (i = 0; i < s->n; i++) {
        free(s->nodes[i].addr);
        free(s->nodes[i].error);
        json_decref(s->nodes[i].status);
    }
}

/* Ask every known address for its status, learning more addresses from the
 * answers' member lists as we go. */
static void survey_run(struct vg_client *c, struct survey *s)
{
    size_t i;
    size_t j;

    for (i = 0; i < vg_client_seed_count(c); i++) {
        survey_add(s, vg_client_seed(c, i));
    }
    for (i = 0; i < s->n; i++) {
        struct node *nd = &s->nodes[i];
        json_t *req = vg_proto_request("status", -1);
        json_t *st = NULL;
        json_t *m;
        char errmsg[VG_ERRMSG_SIZE];
        bool dup = false;
        size_t k;

        if (req == NULL) {
            nd->error = strdup("out of memory");
            continue;
        }
        /* A node answers unavailable while more than two reads of its
         * archive run (node/archive_duty.c): ask again, a few times. */
        for (int tries = 0;; tries++) {
            if (vg_client_call_at(c, nd->addr, req, &st, errmsg) != VG_OK) {
                break;
            }
            if (tries >= STATUS_TRIES - 1 ||
                strcmp(vg_proto_get_str(st, "code", ""), "unavailable") != 0) {
                break;
            }
            json_decref(st);
            st = NULL;
            pause_ms(STATUS_RETRY_MS);
        }
        if (st == NULL) {
            nd->error = strdup(errmsg);
            json_decref(req);
            continue;
        }
        json_decref(req);
        if (strcmp(vg_proto_get_str(st, "type", ""), "status") != 0) {
            snprintf(errmsg, sizeof errmsg, "answered %s: %s",
                     vg_proto_get_str(st, "code",
                                      vg_proto_get_str(st, "type", "?")),
                     vg_proto_get_str(st, "message", "not a status"));
            nd->error = strdup(errmsg);
            json_decref(st);
            continue;
        }
        json_array_foreach(json_object_get(st, "members"), k, m) {
            survey_add(s, vg_proto_get_str(m, "client_address", NULL));
        }
        survey_add(s, vg_proto_get_str(st, "leader_client_address", NULL));
        /* The same node may be reachable under two spellings of its
         * address; show it once. */
        for (j = 0; j < i; j++) {
            if (s->nodes[j].status != NULL &&
                vg_proto_get_int(s->nodes[j].status, "node_id", -1) ==
                    vg_proto_get_int(st, "node_id", -2)) {
                dup = true;
            }
        }
        if (dup) {
            nd->error = strdup("duplicate");
            json_decref(st);
            continue;
        }
        nd->status = st;
    }
}

/* The members list to take roles from: the ready leader's, else the one of
 * the answer with the highest term. */
static const json_t *survey_members(const struct survey *s,
                                    const json_t **leader)
{
    const json_t *best = NULL;
    size_t i;

    *leader = NULL;
    for (i = 0; i < s->n; i++) {
        const json_t *st = s->nodes[i].status;
        if (st == NULL) {
            continue;
        }
        if (is_ready_leader(st) &&
            (*leader == NULL || vg_proto_get_int(st, "term", 0) >
                                    vg_proto_get_int(*leader, "term", 0))) {
            *leader = st;
        }
        if (best == NULL ||
            vg_proto_get_int(st, "term", 0) > vg_proto_get_int(best, "term", 0)) {
            best = st;
        }
    }
    if (*leader != NULL) {
        best = *leader;
    }
    return best != NULL ? json_object_get(best, "members") : NULL;
}

/* Compare state digests of reachable replicas at equal checkpoint indexes.
 * Returns 1 agree, 0 cannot compare, -1 disagree (VERDICT says how). */
static int survey_agree(const struct survey *s, char *verdict, size_t size)
{
    bool compared = false;
    size_t i;
    size_t j;

    for (i = 0; i < s->n; i++) {
        const json_t *st = s->nodes[i].status;
        const json_t *ci = st != NULL ? json_object_get(st, "consistency") : NULL;
        if (ci != NULL &&
            strcmp(vg_proto_get_str(ci, "verdict", ""), "diverged") == 0) {
            snprintf(verdict, size, "node %lld reports it diverged: %s",
                     vg_proto_get_int(st, "node_id", 0),
                     vg_proto_get_str(ci, "message", "no details"));
            return -1;
        }
    }
    for (i = 0; i < s->n; i++) {
        const json_t *a = s->nodes[i].status;
        const json_t *ca = a != NULL ? json_object_get(a, "consistency") : NULL;
        const char *da = vg_proto_get_str(ca, "state_digest", NULL);
        long long ia = vg_proto_get_int(ca, "checkpoint_index", -1);

        if (da == NULL || ia < 0) {
            continue;
        }
        for (j = i + 1; j < s->n; j++) {
            const json_t *b = s->nodes[j].status;
            const json_t *cb = b != NULL ? json_object_get(b, "consistency") : NULL;
            const char *db = vg_proto_get_str(cb, "state_digest", NULL);

            if (db == NULL || vg_proto_get_int(cb, "checkpoint_index", -2) != ia) {
                continue;
            }
            compared = true;
            if (strcmp(da, db) != 0) {
                snprintf(verdict, size,
                         "nodes %lld and %lld have different state digests "
                         "at checkpoint %lld",
                         vg_proto_get_int(a, "node_id", 0),
                         vg_proto_get_int(b, "node_id", 0), ia);
                return -1;
            }
        }
    }
    if (!compared) {
        snprintf(verdict, size, "no two reachable replicas at the same checkpoint yet");
        return 0;
    }
    snprintf(verdict, size, "state digests equal at every shared checkpoint");
    return 1;
}

static long long node_sort_id(const struct node *nd, const json_t *members)
{
    const json_t *m;

    if (nd->status != NULL) {
        return vg_proto_get_int(nd->status, "node_id", INT64_MAX);
    }
    m = find_member(members, 0, nd->addr);
    return m != NULL ? vg_proto_get_int(m, "id", INT64_MAX) : INT64_MAX;
}

static int cmd_status(struct vg_client *c, const struct opts *o)
{
    struct survey *s = calloc(1, sizeof *s);
    const json_t *members;
    const json_t *leader;
    char verdict[VG_ERRMSG_SIZE];
    size_t order[MAX_NODES];
    size_t reachable = 0;
    size_t shown = 0;
    size_t i;
    size_t j;
    int agree;

    if (s == NULL) {
        fprintf(stderr, "vigilctl: out of memory\n");
        return EXIT_FAILED;
    }
    vg_client_set_timeout(c, o->timeout_ms < STATUS_TIMEOUT_MS
                                 ? o->timeout_ms
                                 : STATUS_TIMEOUT_MS);
    survey_run(c, s);
    members = survey_members(s, &leader);

    /* Rows in node id order; unknown ids last, in discovery order. */
    for (i = 0; i < s->n; i++) {
        if (s->nodes[i].error != NULL &&
            strcmp(s->nodes[i].error, "duplicate") == 0) {
            continue;
        }
        reachable += s->nodes[i].status != NULL;
        for (j = shown; j > 0 && node_sort_id(&s->nodes[order[j - 1]], members) >
                                      node_sort_id(&s->nodes[i], members);
             j--) {
            order[j] = order[j - 1];
        }
        order[j] = i;
        shown++;
    }

    if (o->json) {
        json_t *arr = json_array();
        for (i = 0; arr != NULL && i < shown; i++) {
            const struct node *nd = &s->nodes[order[i]];
            json_array_append_new(
                arr, nd->status != NULL
                         ? json_incref(nd->status)
                         : json_pack("{s:s, s:s}", "client_address", nd->addr,
                                     "error", nd->error != NULL ? nd->error : "?"));
        }
        print_json(arr);
        json_decref(arr);
    } else {
        struct table t = {.ncols = 11};
        static const char *const head[] = {
            "ID", "RAFT ADDRESS", "CLIENT ADDRESS", "ROLE", "STATE", "TERM",
            "COMMIT", "APPLIED", "LEADER", "READY", "CONSISTENCY"};

        table_add(&t, head);
        for (i = 0; i < shown; i++) {
            const struct node *nd = &s->nodes[order[i]];
            const json_t *st = nd->status;
            char id[24] = "-", term[24] = "-", commit[24] = "-",
                 applied[24] = "-", lead[24] = "-";
            const char *row[11];
            const json_t *m;

            if (st != NULL) {
                long long lid = vg_proto_get_int(st, "leader_id", 0);
                m = find_member(members, vg_proto_get_int(st, "node_id", 0), NULL);
                snprintf(id, sizeof id, "%lld", vg_proto_get_int(st, "node_id", 0));
                snprintf(term, sizeof term, "%lld", vg_proto_get_int(st, "term", 0));
                snprintf(commit, sizeof commit, "%lld",
                         vg_proto_get_int(st, "commit_index", 0));
                snprintf(applied, sizeof applied, "%lld",
                         vg_proto_get_int(st, "applied_index", 0));
                if (lid > 0) {
                    snprintf(lead, sizeof lead, "%lld", lid);
                }
                row[0] = id;
                row[1] = vg_proto_get_str(st, "raft_address", NULL);
                row[2] = vg_proto_get_str(st, "client_address", nd->addr);
                row[3] = m != NULL ? vg_proto_get_str(m, "role", NULL) : "(none)";
                row[4] = vg_proto_get_str(st, "state", NULL);
                row[5] = term;
                row[6] = commit;
                row[7] = applied;
                row[8] = lead;
                row[9] = json_is_true(json_object_get(st, "ready")) ? "yes" : "no";
                row[10] = vg_proto_get_str(json_object_get(st, "consistency"),
                                           "verdict", NULL);
            } else {
                m = find_member(members, 0, nd->addr);
                if (m != NULL) {
                    snprintf(id, sizeof id, "%lld", vg_proto_get_int(m, "id", 0));
                }
                row[0] = id;
                row[1] = m != NULL ? vg_proto_get_str(m, "raft_address", NULL) : NULL;
                row[2] = nd->addr;
                row[3] = m != NULL ? vg_proto_get_str(m, "role", NULL) : NULL;
                row[4] = "unreachable";
                row[5] = row[6] = row[7] = row[8] = row[9] = NULL;
                /* What the member last told the leader (its members[] carry
                 * it), since the member itself does not answer. */
                row[10] = m != NULL ? vg_proto_get_str(json_object_get(m, "consistency"),
                                                       "verdict", NULL)
                                    : NULL;
            }
            table_add(&t, row);
        }
        table_print(&t);
        table_free(&t);
    }

    agree = survey_agree(s, verdict, sizeof verdict);
    if (!o->json) {
        char lead[160];
        if (leader != NULL) {
            snprintf(lead, sizeof lead, "leader: node %lld at %s (term %lld, ready)",
                     vg_proto_get_int(leader, "node_id", 0),
                     vg_proto_get_str(leader, "client_address", "?"),
                     vg_proto_get_int(leader, "term", 0));
        } else {
            snprintf(lead, sizeof lead, "leader: no ready leader found");
        }
        printf("%s; %zu of %zu nodes reachable; replicas %s (%s)\n", lead,
               reachable, shown,
               agree > 0 ? "agree" : agree < 0 ? "DISAGREE" : "not comparable",
               verdict);
    } else if (agree < 0) {
        fprintf(stderr, "vigilctl: replicas disagree: %s\n", verdict);
    }
    survey_free(s);
    free(s);
    return leader != NULL ? 0 : EXIT_FAILED;
}

/* ------------------------------------------------------------------ */
/* The other commands                                                  */

static int cmd_members(struct vg_client *c, const struct opts *o,
                       const struct cmd *cmd)
{
    json_t *st;
    json_t *members;
    json_t *m;
    size_t i;
    int rv;

    if ((rv = leader_status(c, cmd, o->timeout_ms, &st)) != 0) {
        return rv;
    }
    members = json_object_get(st, "members");
    if (o->json) {
        json_t *empty = json_array();
        print_json(members != NULL ? members : empty);
        json_decref(empty);
    } else {
        struct table t = {.ncols = 4};
        static const char *const head[] = {"ID", "ROLE", "RAFT ADDRESS",
                                           "CLIENT ADDRESS"};
        table_add(&t, head);
        json_array_foreach(members, i, m) {
            char id[24];
            const char *row[4];
            snprintf(id, sizeof id, "%lld", vg_proto_get_int(m, "id", 0));
            row[0] = id;
            row[1] = vg_proto_get_str(m, "role", NULL);
            row[2] = vg_proto_get_str(m, "raft_address", NULL);
            row[3] = vg_proto_get_str(m, "client_address", NULL);
            table_add(&t, row);
        }
        table_print(&t);
        table_free(&t);
    }
    json_decref(st);
    return 0;
}

/* Where is node ID reachable? Best effort, for messages. */
static char *member_address(struct vg_client *c, long long id)
{
    json_t *req = brief_status_request();
    json_t *st = NULL;
    char *addr = NULL;

    if (req != NULL && vg_client_call(c, req, &st, NULL) == VG_OK) {
        const json_t *m = find_member(json_object_get(st, "members"), id, NULL);
        const char *a = vg_proto_get_str(m, "client_address", NULL);
        addr = a != NULL ? strdup(a) : NULL;
    }
    json_decref(req);
    json_decref(st);
    return addr;
}

static const char *who_am_i(void);
static void station_name(char *out, size_t size);

/* REQ (an admin's request) with who sends it and from where, as the audit
 * trail records them: $USER and this host's name, as for project load. */
static json_t *with_who(json_t *req)
{
    char station[256];

    station_name(station, sizeof station);
    if (req != NULL &&
        (json_object_set_new(req, "user", json_string(who_am_i())) != 0 ||
         json_object_set_new(req, "station", json_string(station)) != 0)) {
        json_decref(req);
        return NULL;
    }
    return req;
}

static json_t *build_request(const struct cmd *cmd)
{
    switch (cmd->kind) {
    case CMD_ADD:
        return with_who(json_pack("{s:s, s:I, s:s, s:s}", "type", "cluster_add",
                                  "node_id", (json_int_t)cmd->id, "raft_address",
                                  cmd->raft_address, "client_address",
                                  cmd->client_address));
    case CMD_REMOVE:
        return with_who(json_pack("{s:s, s:I}", "type", "cluster_remove", "node_id",
                                  (json_int_t)cmd->id));
    case CMD_PROMOTE:
    case CMD_DEMOTE:
        return with_who(json_pack("{s:s, s:I, s:s}", "type", "cluster_assign",
                                  "node_id", (json_int_t)cmd->id, "role", cmd->role));
    case CMD_TRANSFER:
        return with_who(json_pack("{s:s, s:I}", "type", "transfer", "node_id",
                                  (json_int_t)cmd->id));
    case CMD_PUT:
        return json_pack("{s:s, s:s, s:s}", "type", "put", "key", cmd->key,
                         "value", cmd->value);
    case CMD_GET:
        return json_pack("{s:s, s:s}", "type", "get", "key", cmd->key);
    default:
        return NULL;
    }
}

/* Reads ("get", "project show|history|diff") need no leader: any replica
 * can answer, but a follower may lag behind a write just made (it learns the
 * new commit index with the leader's next message). Ask the leader when one
 * is known, so that load-then-show or put-then-get in a script sees its own
 * write; else any node. REQ is consumed. */
static int leader_call(struct vg_client *c, const struct cmd *cmd, json_t *req,
                       json_t **answer)
{
    json_t *sreq = brief_status_request();
    json_t *st = NULL;
    const char *leader = NULL;

    *answer = NULL;
    if (req == NULL) {
        json_decref(sreq);
        return call(c, cmd, NULL, answer);
    }
    if (sreq != NULL && vg_client_call(c, sreq, &st, NULL) == VG_OK) {
        leader = is_ready_leader(st)
                     ? vg_proto_get_str(st, "client_address", NULL)
                     : vg_proto_get_str(st, "leader_client_address", NULL);
    }
    json_decref(sreq);
    if (leader != NULL &&
        vg_client_call_at(c, leader, req, answer, NULL) != VG_OK) {
        *answer = NULL;
    }
    json_decref(st);
    if (*answer != NULL && !is_error(*answer)) {
        json_decref(req);
        return 0;
    }
    json_decref(*answer);
    *answer = NULL;
    return call(c, cmd, req, answer);
}

static int get_answer(struct vg_client *c, const struct cmd *cmd,
                      json_t **answer)
{
    return leader_call(c, cmd, build_request(cmd), answer);
}

static int cmd_simple(struct vg_client *c, const struct opts *o,
                      const struct cmd *cmd)
{
    json_t *answer = NULL;
    int rv;

    rv = cmd->kind == CMD_GET ? get_answer(c, cmd, &answer)
                              : call(c, cmd, build_request(cmd), &answer);
    if (rv != 0) {
        return rv;
    }
    if (o->json) {
        print_json(answer);
    }
    if (is_error(answer)) {
        rv = report_error(cmd, answer);
        json_decref(answer);
        return rv;
    }
    switch (cmd->kind) {
    case CMD_ADD:
        if (!o->json) {
            printf("node %lld added as spare; make it a voter with "
                   "'vigilctl cluster promote %lld'\n",
                   cmd->id, cmd->id);
        }
        break;
    case CMD_REMOVE:
        if (!o->json) {
            printf("node %lld removed\n", cmd->id);
        }
        break;
    case CMD_PROMOTE:
    case CMD_DEMOTE:
        if (!o->json) {
            printf("node %lld is now a %s\n", cmd->id, cmd->role);
        }
        break;
    case CMD_TRANSFER: {
        long long landed = vg_proto_get_int(answer, "leader_id", 0);
        char *addr = landed > 0 && !o->json ? member_address(c, landed) : NULL;

        if (landed <= 0) {
            if (!o->json) {
                printf("leadership transfer done; the answer did not say "
                       "where it landed\n");
            }
        } else if (!o->json) {
            printf("leadership is on node %lld%s%s%s\n", landed,
                   addr != NULL ? " (" : "", addr != NULL ? addr : "",
                   addr != NULL ? ")" : "");
        }
        free(addr);
        if (cmd->id > 0 && landed > 0 && landed != cmd->id) {
            fprintf(stderr,
                    "vigilctl: cluster transfer: leadership landed on node "
                    "%lld, not on node %lld as asked\n",
                    landed, cmd->id);
            rv = EXIT_FAILED;
        }
        break;
    }
    case CMD_PUT:
        if (!o->json) {
            printf("ok (committed at index %lld)\n",
                   vg_proto_get_int(answer, "index", 0));
        }
        break;
    case CMD_GET: {
        const char *v = vg_proto_get_str(answer, "value", NULL);
        if (v == NULL) {
            fprintf(stderr, "vigilctl: get: key '%s' is not set\n", cmd->key);
            rv = EXIT_FAILED;
        } else if (!o->json) {
            printf("%s\n", v);
        }
        break;
    }
    default:
        break;
    }
    json_decref(answer);
    return rv;
}

/* ------------------------------------------------------------------ */
/* project                                                             */

/* A project read from a folder (local_read) or fetched from the cluster
 * (remote_read), and parsed and validated here. */
struct parsed_project {
    struct vg_project_files fs;
    struct vg_project *p;
    struct vg_diags d;
};

static void parsed_free(struct parsed_project *lp)
{
    vg_project_free(lp->p);
    vg_diags_free(&lp->d);
    vg_project_files_free(&lp->fs);
}

/* Read DIR and validate it. Returns 0 (look at lp->d.n) or EXIT_FAILED when
 * the folder could not be read, after saying why. */
static int local_read(const struct cmd *cmd, const char *dir,
                      struct parsed_project *lp)
{
    char errmsg[VG_ERRMSG_SIZE] = "";
    int rv;

    memset(lp, 0, sizeof *lp);
    vg_diags_init(&lp->d);
    rv = vg_project_files_read_dir(&lp->fs, dir, errmsg);
    if (rv != VG_OK) {
        fprintf(stderr, "vigilctl: %s: %s\n", cmd->name,
                errmsg[0] ? errmsg : vg_strerror(rv));
        parsed_free(lp);
        return EXIT_FAILED;
    }
    lp->p = vg_project_parse(&lp->fs, &lp->d);
    if (lp->p == NULL) {
        fprintf(stderr, "vigilctl: %s: out of memory\n", cmd->name);
        parsed_free(lp);
        return EXIT_FAILED;
    }
    vg_diags_sort(&lp->d);
    return 0;
}

#define DIGEST_HEX (2 * VG_PROJECT_DIGEST_SIZE + 1)

/* The files digest (a version's identity) as hex. */
static size_t error_count(const struct vg_diags *d)
{
    return d->n + d->dropped;
}

/* Every diagnostic, one per line, then the count. */
static void print_diags(FILE *out, const struct vg_diags *d)
{
    char line[2048];
    size_t i;

    for (i = 0; i < d->n; i++) {
        vg_diag_format(&d->v[i], line, sizeof line);
        fprintf(out, "%s\n", line);
    }
    if (d->dropped > 0) {
        fprintf(out, "(%zu more errors not shown)\n", d->dropped);
    }
    fprintf(out, "%zu error%s\n", error_count(d), error_count(d) == 1 ? "" : "s");
}

static const char *plural(size_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

/* "T tags, A alarms, …" of a parsed project. */
static void contents_text(const struct vg_project *p, char *out, size_t size)
{
    snprintf(out, size,
             "%zu %s, %zu %s, %zu %s, %zu %s, %zu %s, %zu %s, %zu %s, %zu %s",
             p->n_tags, plural(p->n_tags, "tag", "tags"), p->n_alarms,
             plural(p->n_alarms, "alarm", "alarms"), p->n_screens,
             plural(p->n_screens, "screen", "screens"), p->n_plcs,
             plural(p->n_plcs, "PLC", "PLCs"), p->n_sections,
             plural(p->n_sections, "section", "sections"), p->n_stations,
             plural(p->n_stations, "station", "stations"), p->n_roles,
             plural(p->n_roles, "role", "roles"), p->n_reports,
             plural(p->n_reports, "report", "reports"));
}

/* The same from a stored version's summary object. */
static void summary_text(const json_t *summary, char *out, size_t size)
{
    static const char *const keys[][3] = {
        {"tags", "tag", "tags"},           {"alarms", "alarm", "alarms"},
        {"screens", "screen", "screens"},  {"plcs", "PLC", "PLCs"},
        {"sections", "section", "sections"}, {"stations", "station", "stations"},
        {"roles", "role", "roles"},        {"reports", "report", "reports"},
    };
    size_t off = 0;

    out[0] = '\0';
    for (size_t i = 0; i < sizeof keys / sizeof keys[0] && off < size; i++) {
        long long v = vg_proto_get_int(summary, keys[i][0], -1);
        if (v < 0) {
            continue;
        }
        off += (size_t)snprintf(out + off, size - off, "%s%lld %s",
                                off > 0 ? ", " : "", v,
                                v == 1 ? keys[i][1] : keys[i][2]);
    }
    if (off == 0) {
        snprintf(out, size, "(no summary)");
    }
}

static int cmd_project_validate(const struct opts *o, const struct cmd *cmd)
{
    struct parsed_project lp;
    char contents[512];
    int rv;

    if ((rv = local_read(cmd, cmd->dir, &lp)) != 0) {
        return rv;
    }
    contents_text(lp.p, contents, sizeof contents);
    if (o->json) {
        json_t *diags = json_array();
        json_t *out;
        char line[2048];
        for (size_t i = 0; i < lp.d.n; i++) {
            vg_diag_format(&lp.d.v[i], line, sizeof line);
            json_array_append_new(diags, json_string(line));
        }
        char digest[DIGEST_HEX];
        vg_fetch_digest_hex(&lp.fs, digest);
        /* The digest is what "project load" would make the version's
         * identity: scripts compare it with the cluster's. */
        out = json_pack("{s:b, s:s?, s:s, s:I, s:o, s:s}", "valid", lp.d.n == 0 &&
                        lp.d.dropped == 0, "name", lp.p->name, "digest", digest,
                        "errors", (json_int_t)error_count(&lp.d), "diagnostics",
                        diags, "contents", contents);
        print_json(out);
        json_decref(out);
    } else if (error_count(&lp.d) > 0) {
        print_diags(stdout, &lp.d);
    } else {
        printf("project %s is valid: %s\n",
               lp.p->name != NULL ? lp.p->name : "(unnamed)", contents);
    }
    rv = error_count(&lp.d) > 0 ? EXIT_FAILED : 0;
    parsed_free(&lp);
    return rv;
}

static const char *who_am_i(void)
{
    const char *u = getenv("USER");
    struct passwd *pw;
    if (u != NULL && *u != '\0') {
        return u;
    }
    pw = getpwuid(getuid());
    return pw != NULL ? pw->pw_name : "unknown";
}

/* This host's name: the default station recorded with loads and actions. */
static void station_name(char *out, size_t size)
{
    if (gethostname(out, size - 1) != 0 || out[0] == '\0') {
        snprintf(out, size, "unknown");
    }
    out[size - 1] = '\0';
}

/* One chunk of an upload as a request. */
static json_t *upload_request(const unsigned char *bundle, size_t total,
                              size_t offset, size_t len, const char *digest,
                              const char *comment, const char *user,
                              const char *station)
{
    size_t b64_size = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    char *b64 = malloc(b64_size);
    json_t *req;

    if (b64 == NULL) {
        return NULL;
    }
    sodium_bin2base64(b64, b64_size, bundle + offset, len,
                      sodium_base64_VARIANT_ORIGINAL);
    req = json_pack("{s:s, s:I, s:I, s:s, s:s, s:s, s:s}", "type",
                    "project_upload", "offset", (json_int_t)offset, "total",
                    (json_int_t)total, "data", b64, "digest", digest, "user",
                    user, "station", station);
    free(b64);
    if (req != NULL && comment != NULL) {
        json_object_set_new(req, "comment", json_string(comment));
    }
    return req;
}

/* Print the diagnostics of an "invalid" answer to a load. */
static void print_remote_diags(const json_t *answer)
{
    const json_t *diags = json_object_get(answer, "diagnostics");
    const json_t *d;
    size_t i;

    json_array_foreach(diags, i, d) {
        fprintf(stderr, "%s\n", json_string_value(d) ? json_string_value(d) : "?");
    }
    if ((long long)json_array_size(diags) < vg_proto_get_int(answer, "errors", 0)) {
        fprintf(stderr, "(%lld more errors not shown)\n",
                vg_proto_get_int(answer, "errors", 0) -
                    (long long)json_array_size(diags));
    }
}

/* Send the bundle to the leader, chunk by chunk, and wait for the commit.
 * The upload lives on one connection of one leader: whenever the cluster
 * says it lost track (a new leader, a new connection) the upload starts over
 * at offset 0, at most LOAD_ATTEMPTS times. Returns the final answer or
 * NULL after saying why. */
static json_t *upload(struct vg_client *c, const struct opts *o,
                      const struct cmd *cmd, const unsigned char *bundle,
                      size_t total, const char *digest)
{
    uint64_t deadline = vg_now_mono_ms() +
                        (o->timeout_given ? o->timeout_ms : LOAD_TIMEOUT_MS);
    char station[256];
    const char *user = who_am_i();
    int attempt;

    station_name(station, sizeof station);
    for (attempt = 1; attempt <= LOAD_ATTEMPTS; attempt++) {
        size_t offset = 0;
        bool restart = false;

        while (!restart) {
            size_t len = total - offset < CHUNK_BYTES ? total - offset : CHUNK_BYTES;
            uint64_t now = vg_now_mono_ms();
            char errmsg[VG_ERRMSG_SIZE];
            json_t *req;
            json_t *answer = NULL;
            const char *type;
            int rv;

            if (now >= deadline) {
                fprintf(stderr, "vigilctl: %s: no result within %u ms\n",
                        cmd->name,
                        o->timeout_given ? o->timeout_ms : LOAD_TIMEOUT_MS);
                return NULL;
            }
            vg_client_set_timeout(c, (unsigned)(deadline - now));
            req = upload_request(bundle, total, offset, len, digest, o->comment,
                                 user, station);
            if (req == NULL) {
                fprintf(stderr, "vigilctl: out of memory\n");
                return NULL;
            }
            /* The library follows the leader and retries until the deadline
             * by itself; a failure here means the deadline passed. */
            rv = vg_client_call(c, req, &answer, errmsg);
            json_decref(req);
            if (rv != VG_OK) {
                fprintf(stderr, "vigilctl: %s: %s\n", cmd->name, errmsg);
                return NULL;
            }
            type = vg_proto_get_str(answer, "type", "");
            if (strcmp(type, "project_loaded") == 0) {
                return answer;
            }
            if (strcmp(type, "upload") == 0 &&
                vg_proto_get_int(answer, "received", -1) == (long long)(offset + len)) {
                offset += len;
                json_decref(answer);
                continue;
            }
            if (is_error(answer) &&
                (json_object_get(answer, "expected_offset") != NULL ||
                 strcmp(vg_proto_get_str(answer, "code", ""), "not_leader") == 0 ||
                 strcmp(vg_proto_get_str(answer, "code", ""), "busy") == 0)) {
                /* The node we now talk to does not hold our upload (leader
                 * changed, or the connection was replaced), or is busy:
                 * start over. */
                bool busy = strcmp(vg_proto_get_str(answer, "code", ""), "busy") == 0;
                if (attempt < LOAD_ATTEMPTS) {
                    fprintf(stderr, "vigilctl: %s: %s; starting the upload over "
                                    "(attempt %d of %d)\n",
                            cmd->name, vg_proto_get_str(answer, "message", "?"),
                            attempt + 1, LOAD_ATTEMPTS);
                }
                json_decref(answer);
                if (busy) {
                    pause_ms(500);
                }
                restart = true;
                continue;
            }
            if (is_error(answer)) {
                if (o->json) {
                    print_json(answer);
                }
                print_remote_diags(answer);
                report_error(cmd, answer);
                json_decref(answer);
                return NULL;
            }
            fprintf(stderr, "vigilctl: %s: unexpected answer '%s'\n", cmd->name,
                    type);
            json_decref(answer);
            return NULL;
        }
    }
    fprintf(stderr, "vigilctl: %s: gave up after %d attempts\n", cmd->name,
            LOAD_ATTEMPTS);
    return NULL;
}

static int cmd_project_load(struct vg_client *c, const struct opts *o,
                            const struct cmd *cmd)
{
    struct parsed_project lp;
    char digest[DIGEST_HEX];
    char errmsg[VG_ERRMSG_SIZE] = "";
    unsigned char *bundle = NULL;
    size_t len = 0;
    json_t *answer;
    int rv;

    if ((rv = local_read(cmd, cmd->dir, &lp)) != 0) {
        return rv;
    }
    if (error_count(&lp.d) > 0) {
        print_diags(stderr, &lp.d);
        fprintf(stderr, "vigilctl: %s: %s has errors; nothing was sent\n",
                cmd->name, cmd->dir);
        parsed_free(&lp);
        return EXIT_FAILED;
    }
    rv = vg_project_files_pack(&lp.fs, &bundle, &len, errmsg);
    if (rv != VG_OK) {
        fprintf(stderr, "vigilctl: %s: cannot pack %s: %s\n", cmd->name, cmd->dir,
                errmsg[0] ? errmsg : vg_strerror(rv));
        parsed_free(&lp);
        return EXIT_FAILED;
    }
    vg_fetch_digest_hex(&lp.fs, digest);
    parsed_free(&lp);
    answer = upload(c, o, cmd, bundle, len, digest);
    free(bundle);
    if (answer == NULL) {
        return EXIT_FAILED;
    }
    if (o->json) {
        print_json(answer);
    } else if (json_is_true(json_object_get(answer, "unchanged"))) {
        printf("unchanged: version %lld is already active (digest %s)\n",
               vg_proto_get_int(answer, "version", 0),
               vg_proto_get_str(answer, "digest", "?"));
    } else {
        printf("loaded version %lld (digest %s)\n",
               vg_proto_get_int(answer, "version", 0),
               vg_proto_get_str(answer, "digest", "?"));
    }
    json_decref(answer);
    return 0;
}

/* "2024-05-01 12:00:00 UTC" of a wall-clock time in ms. */
static void when_text(long long ms, char *out, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms <= 0 || gmtime_r(&t, &tm) == NULL) {
        snprintf(out, size, "-");
        return;
    }
    strftime(out, size, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

static int cmd_project_show(struct vg_client *c, const struct opts *o,
                            const struct cmd *cmd)
{
    json_t *req = vg_proto_request("project_show", -1);
    json_t *answer = NULL;
    char when[64];
    char contents[512];
    int rv;

    if (req != NULL && cmd->version > 0) {
        json_object_set_new(req, "version", json_integer(cmd->version));
    }
    if ((rv = leader_call(c, cmd, req, &answer)) != 0) {
        return rv;
    }
    if (o->json) {
        print_json(answer);
    }
    if (is_error(answer)) {
        rv = report_error(cmd, answer);
        json_decref(answer);
        return rv;
    }
    if (!o->json && vg_proto_get_int(answer, "version", 0) == 0) {
        printf("no project has been loaded (node %lld, applied index %lld)\n",
               vg_proto_get_int(answer, "node", 0),
               vg_proto_get_int(answer, "applied_index", 0));
    } else if (!o->json) {
        when_text(vg_proto_get_int(answer, "loaded_at", 0), when, sizeof when);
        summary_text(json_object_get(answer, "summary"), contents, sizeof contents);
        printf("version %lld of project %s%s%s%s\n",
               vg_proto_get_int(answer, "version", 0),
               vg_proto_get_str(answer, "name", "?"),
               vg_proto_get_str(answer, "label", NULL) ? " (label " : "",
               vg_proto_get_str(answer, "label", ""),
               vg_proto_get_str(answer, "label", NULL) ? ")" : "");
        printf("  state     %s\n", json_is_true(json_object_get(answer, "active"))
                                       ? "active"
                                       : "inactive");
        printf("  digest    %s\n", vg_proto_get_str(answer, "digest", "?"));
        printf("  loaded    %s by %s at %s (term %lld, log index %lld)\n", when,
               vg_proto_get_str(answer, "loaded_by", "?"),
               vg_proto_get_str(answer, "station", "?"),
               vg_proto_get_int(answer, "term", 0),
               vg_proto_get_int(answer, "log_index", 0));
        printf("  comment   %s\n", vg_proto_get_str(answer, "comment", "-"));
        printf("  contents  %s\n", contents);
        printf("  size      %lld bytes packed\n", vg_proto_get_int(answer, "size", 0));
        printf("  (as stored on node %lld, applied index %lld)\n",
               vg_proto_get_int(answer, "node", 0),
               vg_proto_get_int(answer, "applied_index", 0));
    }
    json_decref(answer);
    return 0;
}

static int cmd_project_history(struct vg_client *c, const struct opts *o,
                               const struct cmd *cmd)
{
    json_t *answer = NULL;
    const json_t *v;
    size_t i;
    int rv;

    if ((rv = leader_call(c, cmd, vg_proto_request("project_history", -1), &answer)) != 0) {
        return rv;
    }
    if (o->json) {
        print_json(answer);
    }
    if (is_error(answer)) {
        rv = report_error(cmd, answer);
        json_decref(answer);
        return rv;
    }
    if (!o->json) {
        struct table t = {.ncols = 7};
        static const char *const head[] = {"VERSION", "", "NAME", "LABEL",
                                           "LOADED", "BY", "COMMENT"};
        table_add(&t, head);
        json_array_foreach(json_object_get(answer, "versions"), i, v) {
            char version[24], when[64], by[300];
            const char *row[7];
            snprintf(version, sizeof version, "%lld", vg_proto_get_int(v, "version", 0));
            when_text(vg_proto_get_int(v, "loaded_at", 0), when, sizeof when);
            snprintf(by, sizeof by, "%s@%s", vg_proto_get_str(v, "loaded_by", "?"),
                     vg_proto_get_str(v, "station", "?"));
            row[0] = version;
            row[1] = json_is_true(json_object_get(v, "active")) ? "active" : "";
            row[2] = vg_proto_get_str(v, "name", NULL);
            row[3] = vg_proto_get_str(v, "label", NULL);
            row[4] = when;
            row[5] = by;
            row[6] = vg_proto_get_str(v, "comment", NULL);
            table_add(&t, row);
        }
        if (t.nrows > 1) {
            table_print(&t);
        }
        table_free(&t);
        printf("%lld version%s shown of %lld (node %lld, applied index %lld)\n",
               (long long)json_array_size(json_object_get(answer, "versions")),
               json_array_size(json_object_get(answer, "versions")) == 1 ? "" : "s",
               vg_proto_get_int(answer, "total", 0),
               vg_proto_get_int(answer, "node", 0),
               vg_proto_get_int(answer, "applied_index", 0));
    }
    json_decref(answer);
    return 0;
}

/* Fetch VERSION's bundle chunk by chunk, unpack it and check it against the
 * digest the node gave (and EXPECT, unless NULL). Returns 0 with *FS
 * filled, or EXIT_FAILED. */
/* vg_fetch_call_fn for vigilctl: read from the leader when there is one
 * (leader_call), borrowing REQ as the fetch functions expect. Transport
 * failures were already printed by then; an error answer is the fetch
 * function's to report. */
static int fetch_call(void *ud, json_t *req, json_t **answer, char *errmsg)
{
    struct cmd cmd;

    memset(&cmd, 0, sizeof cmd);
    cmd.name = "project";
    json_incref(req);
    if (leader_call(ud, &cmd, req, answer) != 0) {
        vg_errf(errmsg, "cannot reach the cluster");
        return VG_EIO;
    }
    return VG_OK;
}

static int fetch_version(struct vg_client *c, const struct cmd *cmd,
                         long long version, const char *expect,
                         struct vg_project_files *fs)
{
    char errmsg[VG_ERRMSG_SIZE] = "";

    if (vg_fetch_project_version(fetch_call, c, version, expect, fs, errmsg) != VG_OK) {
        fprintf(stderr, "vigilctl: %s: version %lld: %s\n", cmd->name, version,
                errmsg);
        return EXIT_FAILED;
    }
    return 0;
}

/* Fetch VERSION (0: the active one, as project_show names it) and parse it,
 * the way local_read() reads a folder; *FETCHED (may be NULL) is the version
 * fetched. Returns 0 (PP->d lists what this vigilctl finds wrong with it) or
 * EXIT_FAILED after saying why. */
static int remote_read(struct vg_client *c, const struct cmd *cmd,
                       long long version, struct parsed_project *pp,
                       long long *fetched)
{
    char digest[DIGEST_HEX] = "";
    int rv;

    memset(pp, 0, sizeof *pp);
    vg_diags_init(&pp->d);
    if (version == 0) {
        json_t *answer = NULL;

        if ((rv = leader_call(c, cmd, vg_proto_request("project_show", -1),
                              &answer)) != 0) {
            parsed_free(pp);
            return rv;
        }
        if (is_error(answer)) {
            rv = report_error(cmd, answer);
            json_decref(answer);
            parsed_free(pp);
            return rv;
        }
        version = vg_proto_get_int(answer, "version", 0);
        snprintf(digest, sizeof digest, "%s",
                 vg_proto_get_str(answer, "digest", ""));
        json_decref(answer);
        if (version <= 0) {
            fprintf(stderr, "vigilctl: %s: no project has been loaded\n",
                    cmd->name);
            parsed_free(pp);
            return EXIT_FAILED;
        }
    }
    if ((rv = fetch_version(c, cmd, version, digest[0] ? digest : NULL,
                            &pp->fs)) != 0) {
        parsed_free(pp);
        return rv;
    }
    pp->p = vg_project_parse(&pp->fs, &pp->d);
    if (pp->p == NULL) {
        fprintf(stderr, "vigilctl: %s: out of memory\n", cmd->name);
        parsed_free(pp);
        return EXIT_FAILED;
    }
    vg_diags_sort(&pp->d);
    if (fetched != NULL) {
        *fetched = version;
    }
    return 0;
}

int vigilctl_active_project(struct vg_client *c, struct vg_project **p,
                            void **owner)
{
    struct cmd cmd;
    struct parsed_project *pp = calloc(1, sizeof *pp);
    int rv;

    if (pp == NULL) {
        fprintf(stderr, "vigilctl: out of memory\n");
        return EXIT_FAILED;
    }
    memset(&cmd, 0, sizeof cmd);
    cmd.name = "report run";
    if ((rv = remote_read(c, &cmd, 0, pp, NULL)) != 0) {
        free(pp);
        return rv;
    }
    *p = pp->p;
    *owner = pp;
    return 0;
}

void vigilctl_project_free(struct vg_project *p, void *owner)
{
    (void)p;
    if (owner != NULL) {
        parsed_free(owner);
        free(owner);
    }
}

static int cmd_project_diff(struct vg_client *c, const struct opts *o,
                            const struct cmd *cmd)
{
    struct parsed_project a, b;
    char *text = NULL;
    int rv;

    if ((rv = remote_read(c, cmd, cmd->version, &a, NULL)) != 0) {
        return rv;
    }
    if ((rv = remote_read(c, cmd, cmd->version2, &b, NULL)) != 0) {
        parsed_free(&a);
        return rv;
    }
    if ((rv = vg_project_diff(a.p, b.p, &text)) != VG_OK) {
        fprintf(stderr, "vigilctl: %s: cannot compare: %s\n", cmd->name,
                vg_strerror(rv));
        rv = EXIT_FAILED;
    } else {
        /* Stored versions were valid when loaded; a newer vigilctl may judge
         * them differently, which is worth saying but does not stop the
         * diff. */
        if (a.d.n + b.d.n > 0) {
            fprintf(stderr, "vigilctl: %s: note: this vigilctl finds %zu error(s) "
                            "in version %lld and %zu in version %lld\n",
                    cmd->name, error_count(&a.d), cmd->version,
                    error_count(&b.d), cmd->version2);
        }
        if (o->json) {
            json_t *out = json_pack("{s:I, s:I, s:s}", "from",
                                    (json_int_t)cmd->version, "to",
                                    (json_int_t)cmd->version2, "diff", text);
            print_json(out);
            json_decref(out);
        } else {
            printf("%s", text);
            if (*text != '\0' && text[strlen(text) - 1] != '\n') {
                putchar('\n');
            }
        }
        rv = 0;
    }
    free(text);
    parsed_free(&a);
    parsed_free(&b);
    return rv;
}

/* Subscribe on the client's connection; true when the node confirmed. */
static bool watch_subscribe(struct vg_client *c, const struct opts *o,
                            const struct cmd *cmd)
{
    json_t *req = json_pack("{s:s, s:[s]}", "type", "subscribe", "topics", "project");
    json_t *answer = NULL;
    char errmsg[VG_ERRMSG_SIZE];
    const json_t *pr;
    int rv;

    if (req == NULL) {
        return false;
    }
    rv = vg_client_call(c, req, &answer, errmsg);
    json_decref(req);
    if (rv != VG_OK) {
        fprintf(stderr, "vigilctl: %s: %s\n", cmd->name, errmsg);
        return false;
    }
    if (is_error(answer)) {
        report_error(cmd, answer);
        json_decref(answer);
        return false;
    }
    pr = json_object_get(answer, "project");
    if (o->json) {
        json_dumpf(answer, stdout, JSON_COMPACT);
        putchar('\n');
    } else {
        printf("watching project events on %s (node %lld; active version %lld)\n",
               vg_client_current(c) ? vg_client_current(c) : "?",
               vg_proto_get_int(answer, "node", 0),
               vg_proto_get_int(pr, "version", 0));
    }
    fflush(stdout);
    json_decref(answer);
    return true;
}

/* Runs until killed: subscribe, print events as they come, and subscribe
 * again (anywhere in the cluster) when the connection is lost. */
static int cmd_project_watch(struct vg_client *c, const struct opts *o,
                             const struct cmd *cmd)
{
    unsigned backoff = 100;

    for (;;) {
        json_t *ev = NULL;
        char errmsg[VG_ERRMSG_SIZE];
        int rv;

        if (!watch_subscribe(c, o, cmd)) {
            pause_ms(backoff);
            backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
            continue;
        }
        backoff = 100;
        while ((rv = vg_client_next_event(c, WATCH_POLL_MS, &ev, errmsg)) == VG_OK ||
               rv == VG_ETIMEDOUT) {
            if (rv != VG_OK) {
                continue;
            }
            if (o->json) {
                json_dumpf(ev, stdout, JSON_COMPACT);
                putchar('\n');
            } else if (strcmp(vg_proto_get_str(ev, "event", ""), "activated") == 0) {
                printf("activated version %lld of %s (digest %s) on node %lld\n",
                       vg_proto_get_int(ev, "version", 0),
                       vg_proto_get_str(ev, "name", "?"),
                       vg_proto_get_str(ev, "digest", "?"),
                       vg_proto_get_int(ev, "node", 0));
            } else {
                printf("%s %s\n", vg_proto_get_str(ev, "topic", "?"),
                       vg_proto_get_str(ev, "event", "?"));
            }
            fflush(stdout);
            json_decref(ev);
        }
        fprintf(stderr, "vigilctl: %s: %s; subscribing again\n", cmd->name, errmsg);
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* tags                                                                */

#define WHEN_SIZE 80

/* "2024-05-06T14:03:20.123+02:00": wall-clock MS (since 1970) as local
 * ISO-8601 with milliseconds; "-" when unknown. */
static void iso_local_ms(long long ms, char *out, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char date[32];
    char zone[16];

    if (ms <= 0 || localtime_r(&t, &tm) == NULL ||
        strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
        snprintf(out, size, "-");
        return;
    }
    if (strftime(zone, sizeof zone, "%z", &tm) == 5) {
        /* "+0200" → "+02:00", the extended form that goes with the date. */
        snprintf(out, size, "%s.%03lld%.3s:%s", date, ms % 1000, zone, zone + 3);
    } else {
        snprintf(out, size, "%s.%03lld", date, ms % 1000);
    }
}

/* A value as text: numbers with up to 10 significant digits (more than any
 * transmitter delivers), "-" for null. */
static void value_text(const json_t *v, char *out, size_t size)
{
    if (json_is_integer(v)) {
        snprintf(out, size, "%lld", (long long)json_integer_value(v));
    } else if (json_is_real(v)) {
        snprintf(out, size, "%.10g", json_real_value(v));
    } else if (json_is_boolean(v)) {
        snprintf(out, size, "%s", json_is_true(v) ? "true" : "false");
    } else if (json_is_string(v)) {
        snprintf(out, size, "%s", json_string_value(v));
    } else {
        snprintf(out, size, "-");
    }
}

/* "a, b, c" of a JSON array of strings, shortened to fit. */
static void names_text(const json_t *names, char *out, size_t size)
{
    size_t off = 0;
    size_t i;
    const json_t *n;

    out[0] = '\0';
    json_array_foreach(names, i, n) {
        if (off >= size) {
            break;
        }
        off += (size_t)snprintf(out + off, size - off, "%s%s", i > 0 ? ", " : "",
                                json_string_value(n) ? json_string_value(n) : "?");
    }
}

/* Say on stderr which names the cluster did not know (not an error). */
static void note_unknown(const struct cmd *cmd, const json_t *msg)
{
    const json_t *unknown = json_object_get(msg, "unknown");
    char names[1024];

    if (json_array_size(unknown) == 0) {
        return;
    }
    names_text(unknown, names, sizeof names);
    fprintf(stderr, "vigilctl: %s: unknown tag or screen name%s: %s\n",
            cmd->name, json_array_size(unknown) == 1 ? "" : "s", names);
}

static json_t *string_array(char *const *v, size_t n)
{
    json_t *a = json_array();
    size_t i;

    for (i = 0; a != NULL && i < n; i++) {
        if (json_array_append_new(a, json_string(v[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

/* Is section IDX WANT or inside it? The walk up is bounded because a project
 * with errors may have a cycle of parents. */
static bool in_section(const struct vg_project *p, int idx, int want)
{
    size_t steps;

    for (steps = 0; idx >= 0 && (size_t)idx < p->n_sections &&
                    steps <= p->n_sections;
         steps++) {
        if (idx == want) {
            return true;
        }
        idx = p->sections[idx].parent;
    }
    return false;
}

static json_t *tag_json(const struct vg_project *p, const struct vg_tag *t)
{
    json_t *o = json_object();
    json_t *desc = json_object();
    char address[40];
    size_t i;

    if (o == NULL || desc == NULL) {
        json_decref(o);
        json_decref(desc);
        return NULL;
    }
    snprintf(address, sizeof address, "%s:%u", vg_reg_kind_name(t->kind),
             (unsigned)t->offset);
    for (i = 0; i < p->n_languages; i++) {
        if (t->description.s[i] != NULL) {
            json_object_set_new(desc, p->languages[i],
                                json_string(t->description.s[i]));
        }
    }
    json_object_set_new(o, "name", json_string(t->name));
    json_object_set_new(o, "section", t->section.name ? json_string(t->section.name)
                                                      : json_null());
    json_object_set_new(o, "plc", t->plc.name ? json_string(t->plc.name)
                                              : json_null());
    json_object_set_new(o, "address", json_string(address));
    json_object_set_new(o, "kind", json_string(vg_reg_kind_name(t->kind)));
    json_object_set_new(o, "offset", json_integer(t->offset));
    json_object_set_new(o, "type", json_string(vg_dtype_name(t->type)));
    json_object_set_new(o, "unit", json_string(t->unit ? t->unit : ""));
    json_object_set_new(o, "writable", json_boolean(t->writable));
    json_object_set_new(o, "min", t->has_limits ? json_real(t->min) : json_null());
    json_object_set_new(o, "max", t->has_limits ? json_real(t->max) : json_null());
    json_object_set_new(o, "scaling",
                        t->scaled ? json_pack("{s:f, s:f, s:f, s:f}", "raw_min",
                                              t->raw_min, "raw_max", t->raw_max,
                                              "eng_min", t->eng_min, "eng_max",
                                              t->eng_max)
                                  : json_null());
    json_object_set_new(o, "deadband", json_real(t->deadband));
    json_object_set_new(o, "description", desc);
    return o;
}

static int cmd_tags_list(struct vg_client *c, const struct opts *o,
                         const struct cmd *cmd)
{
    const char *pattern = cmd->n_args > 0 ? cmd->args[0] : NULL;
    struct parsed_project pp;
    const struct vg_project *p;
    struct table t = {.ncols = 9};
    static const char *const head[] = {"NAME", "SECTION", "PLC", "ADDRESS",
                                       "TYPE", "UNIT", "WRITABLE", "LIMITS",
                                       "DESCRIPTION"};
    json_t *arr = NULL;
    long long version = 0;
    int section = -1;
    size_t shown = 0;
    size_t i;
    int rv;

    if ((rv = remote_read(c, cmd, 0, &pp, &version)) != 0) {
        return rv;
    }
    p = pp.p;
    if (error_count(&pp.d) > 0) {
        fprintf(stderr, "vigilctl: %s: note: this vigilctl finds %zu error(s) "
                        "in version %lld\n",
                cmd->name, error_count(&pp.d), version);
    }
    if (o->plc != NULL) {
        for (i = 0; i < p->n_plcs && strcmp(p->plcs[i].name, o->plc) != 0; i++) {
        }
        if (i == p->n_plcs) {
            fprintf(stderr, "vigilctl: %s: version %lld has no PLC '%s'\n",
                    cmd->name, version, o->plc);
            parsed_free(&pp);
            return EXIT_FAILED;
        }
    }
    if (o->section != NULL &&
        (section = vg_project_find_section(p, o->section)) < 0) {
        fprintf(stderr, "vigilctl: %s: version %lld has no section '%s'\n",
                cmd->name, version, o->section);
        parsed_free(&pp);
        return EXIT_FAILED;
    }
    if (o->json) {
        arr = json_array();
    } else {
        table_add(&t, head);
    }
    for (i = 0; i < p->n_tags; i++) {
        const struct vg_tag *tag = &p->tags[i];
        char address[40];
        char limits[80] = "-";
        const char *row[9];

        if ((pattern != NULL && fnmatch(pattern, tag->name, 0) != 0) ||
            (o->plc != NULL &&
             (tag->plc.name == NULL || strcmp(tag->plc.name, o->plc) != 0)) ||
            (section >= 0 && !in_section(p, tag->section.index, section))) {
            continue;
        }
        shown++;
        if (o->json) {
            json_array_append_new(arr, tag_json(p, tag));
            continue;
        }
        snprintf(address, sizeof address, "%s:%u", vg_reg_kind_name(tag->kind),
                 (unsigned)tag->offset);
        if (tag->has_limits) {
            snprintf(limits, sizeof limits, "%g..%g", tag->min, tag->max);
        }
        row[0] = tag->name;
        row[1] = tag->section.name;
        row[2] = tag->plc.name;
        row[3] = address;
        row[4] = vg_dtype_name(tag->type);
        row[5] = tag->unit != NULL && *tag->unit != '\0' ? tag->unit : NULL;
        row[6] = tag->writable ? "yes" : "no";
        row[7] = limits;
        row[8] = p->n_languages > 0 ? tag->description.s[0] : NULL;
        table_add(&t, row);
    }
    if (o->json) {
        print_json(arr);
        json_decref(arr);
    } else if (shown > 0) {
        table_print(&t);
    } else {
        fprintf(stderr, "vigilctl: %s: no tag of version %lld matches\n",
                cmd->name, version);
    }
    table_free(&t);
    parsed_free(&pp);
    return 0;
}

static int cmd_tags_read(struct vg_client *c, const struct opts *o,
                         const struct cmd *cmd)
{
    json_t *req = json_pack("{s:s, s:o}", "type", "tags_read", "tags",
                            string_array(cmd->args, (size_t)cmd->n_args));
    json_t *answer = NULL;
    const json_t *values;
    const json_t *v;
    struct parsed_project pp;
    bool have_project = false;
    bool need_units = false;
    struct table t = {.ncols = 5};
    size_t i;
    int rv;

    if ((rv = call(c, cmd, req, &answer)) != 0) {
        return rv;
    }
    if (o->json) {
        print_json(answer);
    }
    if (is_error(answer)) {
        rv = report_error(cmd, answer);
        note_unknown(cmd, answer);
        json_decref(answer);
        return rv;
    }
    if (o->json) {
        json_decref(answer);
        return 0;
    }
    values = json_object_get(answer, "values");
    json_array_foreach(values, i, v) {
        need_units = need_units || json_object_get(v, "unit") == NULL;
    }
    if (need_units) {
        /* Entries carry no unit: take them from the project version the
         * leader polls. Units only decorate values that did arrive, so a
         * failure here is reported but does not fail the command. */
        struct cmd units = *cmd;
        units.name = "tags read: fetching the units";
        have_project = remote_read(c, &units, vg_proto_get_int(answer, "version", 0),
                                   &pp, NULL) == 0;
    }
    json_array_foreach(values, i, v) {
        const char *name = vg_proto_get_str(v, "tag", "?");
        const char *unit = vg_proto_get_str(v, "unit", NULL);
        char value[64];
        char when[WHEN_SIZE];
        const char *row[5];

        if (unit == NULL && have_project) {
            int k = vg_project_find_tag(pp.p, name);
            unit = k >= 0 ? pp.p->tags[k].unit : NULL;
        }
        value_text(json_object_get(v, "value"), value, sizeof value);
        iso_local_ms(vg_proto_get_int(v, "t", 0), when, sizeof when);
        row[0] = name;
        row[1] = value;
        row[2] = unit != NULL && *unit != '\0' ? unit : NULL;
        row[3] = vg_proto_get_str(v, "quality", NULL);
        row[4] = when;
        table_add(&t, row);
    }
    table_print(&t);
    table_free(&t);
    if (have_project) {
        parsed_free(&pp);
    }
    json_decref(answer);
    return 0;
}

static int cmd_tags_write(struct vg_client *c, const struct opts *o,
                          const struct cmd *cmd)
{
    char station[256];
    json_t *req;
    json_t *answer = NULL;
    char value[64];
    int rv;

    station_name(station, sizeof station);
    req = json_pack("{s:s, s:s, s:O, s:s, s:s}", "type", "tag_write", "tag",
                    cmd->args[0], "value", cmd->write_value, "user",
                    o->user != NULL ? o->user : who_am_i(), "station",
                    o->station != NULL ? o->station : station);
    if ((rv = call(c, cmd, req, &answer)) != 0) {
        return rv;
    }
    if (o->json) {
        print_json(answer);
    }
    if (is_error(answer)) {
        rv = report_error(cmd, answer);
        json_decref(answer);
        return rv;
    }
    if (strcmp(vg_proto_get_str(answer, "type", ""), "tag_written") != 0) {
        fprintf(stderr, "vigilctl: %s: unexpected answer '%s'\n", cmd->name,
                vg_proto_get_str(answer, "type", "?"));
        json_decref(answer);
        return EXIT_FAILED;
    }
    if (!o->json) {
        const json_t *written = json_object_get(answer, "value");
        value_text(written != NULL ? written : cmd->write_value, value,
                   sizeof value);
        printf("%s = %s written (action %lld, term %lld, node %lld)\n",
               vg_proto_get_str(answer, "tag", cmd->args[0]), value,
               vg_proto_get_int(answer, "action", 0),
               vg_proto_get_int(answer, "term", 0),
               vg_proto_get_int(answer, "node", 0));
    }
    json_decref(answer);
    return 0;
}

/* Set by SIGINT/SIGTERM; "tags watch" looks at it between waits. */
static volatile sig_atomic_t stop_requested;

static void stop_cb(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* The first signal asks politely; SA_RESETHAND makes a second one kill, for
 * when the library is in the middle of a long reconnection. */
static void catch_stop_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = stop_cb;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* Sleep MS milliseconds, or less if a stop is requested. */
static void pause_unless_stopped(long ms)
{
    for (; ms > 0 && !stop_requested; ms -= 50) {
        pause_ms(ms < 50 ? ms : 50);
    }
}

/* Print the value entries of a tags event; returns how many were printed,
 * at most LEFT (0: no limit). */
static unsigned long long print_entries(const json_t *ev, unsigned long long left)
{
    unsigned long long n = 0;
    const json_t *v;
    size_t i;

    json_array_foreach(json_object_get(ev, "values"), i, v) {
        char when[WHEN_SIZE];
        char value[64];

        if (left > 0 && n == left) {
            break;
        }
        iso_local_ms(vg_proto_get_int(v, "t", 0), when, sizeof when);
        value_text(json_object_get(v, "value"), value, sizeof value);
        printf("%s %s %s %s\n", when, vg_proto_get_str(v, "tag", "?"), value,
               vg_proto_get_str(v, "quality", "?"));
        n++;
    }
    return n;
}

static int cmd_tags_watch(struct vg_client *c, const struct opts *o,
                          const struct cmd *cmd)
{
    uint64_t start = vg_now_mono_ms();
    unsigned long long printed = 0;
    char errmsg[VG_ERRMSG_SIZE];
    json_t *req = json_pack("{s:s}", "type", "tags_subscribe");
    json_t *answer = NULL;
    int rv;

    if (req != NULL && cmd->n_args > 0) {
        json_object_set_new(req, "tags",
                            string_array(cmd->args, (size_t)cmd->n_args));
    }
    if (req != NULL && o->n_screens > 0) {
        json_object_set_new(req, "screens",
                            string_array((char *const *)o->screens, o->n_screens));
    }
    if (req != NULL && o->all) {
        json_object_set_new(req, "all", json_true());
    }
    if (req == NULL) {
        fprintf(stderr, "vigilctl: out of memory\n");
        return EXIT_FAILED;
    }
    catch_stop_signals();
    /* The library remembers the subscription and renews it wherever the
     * leader goes; we only print. */
    rv = vg_client_subscribe(c, req, &answer, errmsg);
    json_decref(req);
    if (rv != VG_OK) {
        fprintf(stderr, "vigilctl: %s: cannot reach the cluster: %s\n",
                cmd->name, errmsg);
        return EXIT_FAILED;
    }
    if (is_error(answer)) {
        rv = report_error(cmd, answer);
        json_decref(answer);
        return rv;
    }
    fprintf(stderr, "vigilctl: %s: %lld tags at %s (node %lld, project "
                    "version %lld)\n",
            cmd->name, vg_proto_get_int(answer, "count", 0),
            vg_client_current(c) ? vg_client_current(c) : "?",
            vg_proto_get_int(answer, "node", 0),
            vg_proto_get_int(answer, "version", 0));
    note_unknown(cmd, answer);
    json_decref(answer);

    while (!stop_requested && (o->count == 0 || printed < o->count)) {
        unsigned wait = TAGS_WATCH_POLL_MS;
        json_t *ev = NULL;
        const char *topic;

        if (o->for_ms > 0) {
            uint64_t spent = vg_now_mono_ms() - start;
            if (spent >= o->for_ms) {
                break;
            }
            wait = o->for_ms - spent < wait ? (unsigned)(o->for_ms - spent) : wait;
        }
        rv = vg_client_next_event(c, wait, &ev, errmsg);
        if (rv == VG_ETIMEDOUT) {
            continue;
        }
        if (rv == VG_ECLOSED) {
            /* The library tries again on the next call. */
            fprintf(stderr, "vigilctl: %s: %s; trying again\n", cmd->name,
                    errmsg);
            pause_unless_stopped(TAGS_RETRY_MS);
            continue;
        }
        if (rv != VG_OK) {
            fprintf(stderr, "vigilctl: %s: %s\n", cmd->name, errmsg);
            return EXIT_FAILED;
        }
        topic = vg_proto_get_str(ev, "topic", "");
        if (o->json) {
            json_dumpf(ev, stdout, JSON_COMPACT);
            putchar('\n');
        }
        if (strcmp(topic, "client") == 0 &&
            strcmp(vg_proto_get_str(ev, "event", ""), "resubscribed") == 0) {
            const json_t *a = json_object_get(ev, "answer");
            fprintf(stderr, "vigilctl: %s: resubscribed at %s (project version "
                            "%lld)\n",
                    cmd->name, vg_proto_get_str(ev, "address", "?"),
                    vg_proto_get_int(a, "version", 0));
            note_unknown(cmd, a);
        } else if (strcmp(topic, "tags") == 0) {
            if (o->json) {
                printed += json_array_size(json_object_get(ev, "values"));
            } else {
                printed += print_entries(ev, o->count > 0 ? o->count - printed : 0);
            }
        }
        fflush(stdout);
        json_decref(ev);
    }
    return 0;
}

static int cmd_tags_history(struct vg_client *c, const struct opts *o,
                            const struct cmd *cmd)
{
    json_t *req = vg_proto_request("actions", -1);
    json_t *answer = NULL;
    const json_t *actions;
    const json_t *a;
    size_t i;
    int rv;

    if (req != NULL && o->limit > 0) {
        json_object_set_new(req, "limit", json_integer((json_int_t)o->limit));
    }
    if (req != NULL && cmd->n_args > 0) {
        json_object_set_new(req, "tag", json_string(cmd->args[0]));
    }
    if ((rv = leader_call(c, cmd, req, &answer)) != 0) {
        return rv;
    }
    if (o->json) {
        print_json(answer);
    }
    if (is_error(answer)) {
        rv = report_error(cmd, answer);
        json_decref(answer);
        return rv;
    }
    actions = json_object_get(answer, "actions");
    if (!o->json && json_array_size(actions) == 0) {
        printf("no actions recorded%s%s (node %lld, applied index %lld)\n",
               cmd->n_args > 0 ? " for " : "", cmd->n_args > 0 ? cmd->args[0] : "",
               vg_proto_get_int(answer, "node", 0),
               vg_proto_get_int(answer, "applied_index", 0));
    } else if (!o->json) {
        struct table t = {.ncols = 8};
        static const char *const head[] = {"ACTION", "TIME", "USER", "STATION",
                                           "TAG", "VALUE", "OUTCOME", "MESSAGE"};
        table_add(&t, head);
        json_array_foreach(actions, i, a) {
            char index[24], when[WHEN_SIZE], value[64];
            const char *row[8];

            snprintf(index, sizeof index, "%lld", vg_proto_get_int(a, "action", 0));
            iso_local_ms(vg_proto_get_int(a, "time_ms", 0), when, sizeof when);
            value_text(json_object_get(a, "value"), value, sizeof value);
            row[0] = index;
            row[1] = when;
            row[2] = vg_proto_get_str(a, "user", NULL);
            row[3] = vg_proto_get_str(a, "station", NULL);
            row[4] = vg_proto_get_str(a, "tag", NULL);
            row[5] = value;
            row[6] = vg_proto_get_str(a, "outcome", NULL);
            row[7] = vg_proto_get_str(a, "message", NULL);
            table_add(&t, row);
        }
        table_print(&t);
        table_free(&t);
    }
    json_decref(answer);
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o = {.timeout_ms = VG_CLIENT_DEFAULT_TIMEOUT_MS};
    struct cmd cmd;
    struct vg_client *c;
    char errmsg[VG_ERRMSG_SIZE];
    char **pos;
    int n_pos;
    int rv;

    memset(&cmd, 0, sizeof cmd);
    /* alarms, history, audit and report have a parser of their own. */
    {
        static const char *const with_value[] = {
            "--cluster", "--timeout", "--comment", "--plc", "--section", "--user",
            "--station", "--screen", "--count", "--for", "--limit", NULL};
        for (int i = 1; i < argc; i++) {
            bool skip = false;
            if (strcmp(argv[i], "--") == 0) {
                break;
            }
            for (size_t k = 0; with_value[k] != NULL; k++) {
                skip = skip || strcmp(argv[i], with_value[k]) == 0;
            }
            if (skip) {
                i++;
            } else if (argv[i][0] != '-') {
                if (vigilctl_records_command(argv[i])) {
                    return vigilctl_records_main(argc, argv);
                }
                break;
            }
        }
    }
    /* Both arrays point into argv and live until the end: the tags
     * commands keep their words in cmd.args. */
    pos = calloc((size_t)argc + 1, sizeof *pos);
    o.screens = calloc((size_t)argc + 1, sizeof *o.screens);
    if (pos == NULL || o.screens == NULL) {
        fprintf(stderr, "vigilctl: out of memory\n");
        rv = EXIT_FAILED;
        goto out;
    }
    rv = parse_options(argc, argv, &o, pos, &n_pos);
    if (rv == 0 && o.help) {
        printf(usage_text, vigilctl_records_usage);
        goto out;
    }
    if (rv == 0) {
        rv = parse_command(pos, n_pos, &cmd);
    }
    if (rv == 0) {
        rv = check_option_scope(&o, &cmd);
    }
    if (rv != 0) {
        goto out;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "vigilctl: libsodium failed to initialise\n");
        rv = EXIT_FAILED;
        goto out;
    }
    if (cmd.kind == CMD_PROJECT_VALIDATE) {
        rv = cmd_project_validate(&o, &cmd);
        goto out;
    }
    if (o.cluster == NULL) {
        o.cluster = getenv("VIGIL_CLUSTER");
        o.cluster_from = "VIGIL_CLUSTER";
    }
    if (o.cluster == NULL || *o.cluster == '\0') {
        rv = usage_error("no cluster given: use --cluster HOST:PORT[,...] "
                         "or set VIGIL_CLUSTER");
        goto out;
    }
    c = vg_client_new(o.cluster, errmsg);
    if (c == NULL) {
        rv = usage_error("bad %s: %s", o.cluster_from, errmsg);
        goto out;
    }
    vg_client_set_timeout(c, o.timeout_ms);

    switch (cmd.kind) {
    case CMD_STATUS:
        rv = cmd_status(c, &o);
        break;
    case CMD_MEMBERS:
        rv = cmd_members(c, &o, &cmd);
        break;
    case CMD_PROJECT_LOAD:
        rv = cmd_project_load(c, &o, &cmd);
        break;
    case CMD_PROJECT_SHOW:
        rv = cmd_project_show(c, &o, &cmd);
        break;
    case CMD_PROJECT_HISTORY:
        rv = cmd_project_history(c, &o, &cmd);
        break;
    case CMD_PROJECT_DIFF:
        rv = cmd_project_diff(c, &o, &cmd);
        break;
    case CMD_PROJECT_WATCH:
        rv = cmd_project_watch(c, &o, &cmd);
        break;
    case CMD_TAGS_LIST:
        rv = cmd_tags_list(c, &o, &cmd);
        break;
    case CMD_TAGS_READ:
        rv = cmd_tags_read(c, &o, &cmd);
        break;
    case CMD_TAGS_WRITE:
        rv = cmd_tags_write(c, &o, &cmd);
        break;
    case CMD_TAGS_WATCH:
        rv = cmd_tags_watch(c, &o, &cmd);
        break;
    case CMD_TAGS_HISTORY:
        rv = cmd_tags_history(c, &o, &cmd);
        break;
    default:
        rv = cmd_simple(c, &o, &cmd);
        break;
    }
    vg_client_free(c);
out:
    json_decref(cmd.write_value);
    free(o.screens);
    free(pos);
    return rv;
}
