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
 * projects locally; "project validate" needs no cluster at all. */
#include <errno.h>
#include <pwd.h>
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
#define MAX_COMMENT 1024u
/* A load validates on the leader and commits a large command: give it more
 * time than a plain request unless --timeout says otherwise. */
#define LOAD_TIMEOUT_MS 60000u
#define LOAD_ATTEMPTS 5
#define CHUNK_BYTES (512u * 1024u)
#define WATCH_POLL_MS 1000u

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
};

struct opts {
    const char *cluster;
    const char *cluster_from; /* "--cluster" or "VIGIL_CLUSTER" */
    bool json;
    unsigned timeout_ms;
    bool timeout_given;
    const char *comment;
    bool help;
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
        size_t name_len;

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
        name_len = strcspn(a, "=");
        if (strncmp(a, "--cluster", name_len) == 0 && name_len == 9) {
            val = a[name_len] == '=' ? a + name_len + 1 : NULL;
            if (val == NULL && (val = (i + 1 < argc ? argv[++i] : NULL)) == NULL) {
                return usage_error("--cluster needs a value (HOST:PORT[,...])");
            }
            o->cluster = val;
            o->cluster_from = "--cluster";
            continue;
        }
        if (strncmp(a, "--timeout", name_len) == 0 && name_len == 9) {
            unsigned long long ms;
            val = a[name_len] == '=' ? a + name_len + 1 : NULL;
            if (val == NULL && (val = (i + 1 < argc ? argv[++i] : NULL)) == NULL) {
                return usage_error("--timeout needs a value (milliseconds)");
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
        if (strncmp(a, "--comment", name_len) == 0 && name_len == 9) {
            val = a[name_len] == '=' ? a + name_len + 1 : NULL;
            if (val == NULL && (val = (i + 1 < argc ? argv[++i] : NULL)) == NULL) {
                return usage_error("--comment needs a value (TEXT)");
            }
            if (strlen(val) > MAX_COMMENT) {
                return usage_error("--comment must be at most %u bytes long",
                                   MAX_COMMENT);
            }
            o->comment = val;
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

/* Turn the positional words into a validated command. */
static int parse_command(char **pos, int n_pos, struct cmd *cmd)
{
    const char *word = pos[0];
    int n;
    int rv;

    memset(cmd, 0, sizeof *cmd);
    if (n_pos == 0) {
        return usage_error("missing command (cluster, project, put or get)");
    }
    if (strcmp(word, "project") == 0) {
        return parse_project(pos, n_pos, cmd);
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
        return usage_error("unknown command '%s' (expected cluster, project, put "
                           "or get)",
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

static void table_print(const struct table *t)
{
    size_t width[16] = {0};
    size_t r;
    size_t i;

    for (r = 0; r < t->nrows; r++) {
        for (i = 0; i < t->ncols && i < 16; i++) {
            const char *s = t->cells[r * t->ncols + i];
            size_t len = s != NULL ? strlen(s) : 0;
            width[i] = len > width[i] ? len : width[i];
        }
    }
    for (r = 0; r < t->nrows; r++) {
        for (i = 0; i < t->ncols && i < 16; i++) {
            const char *s = t->cells[r * t->ncols + i];
            if (i + 1 == t->ncols) {
                printf("%s\n", s != NULL ? s : "?");
            } else {
                printf("%-*s  ", (int)width[i], s != NULL ? s : "?");
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

        if ((rv = call(c, cmd, vg_proto_request("status", -1), &st)) != 0) {
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
            json_t *req = vg_proto_request("status", -1);
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
        if (vg_client_call_at(c, nd->addr, req, &st, errmsg) != VG_OK) {
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
                row[5] = row[6] = row[7] = row[8] = row[9] = row[10] = NULL;
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
    json_t *req = vg_proto_request("status", -1);
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

static json_t *build_request(const struct cmd *cmd)
{
    switch (cmd->kind) {
    case CMD_ADD:
        return json_pack("{s:s, s:I, s:s, s:s}", "type", "cluster_add",
                         "node_id", (json_int_t)cmd->id, "raft_address",
                         cmd->raft_address, "client_address",
                         cmd->client_address);
    case CMD_REMOVE:
        return json_pack("{s:s, s:I}", "type", "cluster_remove", "node_id",
                         (json_int_t)cmd->id);
    case CMD_PROMOTE:
    case CMD_DEMOTE:
        return json_pack("{s:s, s:I, s:s}", "type", "cluster_assign",
                         "node_id", (json_int_t)cmd->id, "role", cmd->role);
    case CMD_TRANSFER:
        return json_pack("{s:s, s:I}", "type", "transfer", "node_id",
                         (json_int_t)cmd->id);
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
    json_t *sreq = vg_proto_request("status", -1);
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

/* A project folder read and validated locally. */
struct local_project {
    struct vg_project_files fs;
    struct vg_project *p;
    struct vg_diags d;
};

static void local_free(struct local_project *lp)
{
    vg_project_free(lp->p);
    vg_diags_free(&lp->d);
    vg_project_files_free(&lp->fs);
}

/* Read DIR and validate it. Returns 0 (look at lp->d.n) or EXIT_FAILED when
 * the folder could not be read, after saying why. */
static int local_read(const struct cmd *cmd, const char *dir,
                      struct local_project *lp)
{
    char errmsg[VG_ERRMSG_SIZE] = "";
    int rv;

    memset(lp, 0, sizeof *lp);
    vg_diags_init(&lp->d);
    rv = vg_project_files_read_dir(&lp->fs, dir, errmsg);
    if (rv != VG_OK) {
        fprintf(stderr, "vigilctl: %s: %s\n", cmd->name,
                errmsg[0] ? errmsg : vg_strerror(rv));
        local_free(lp);
        return EXIT_FAILED;
    }
    lp->p = vg_project_parse(&lp->fs, &lp->d);
    if (lp->p == NULL) {
        fprintf(stderr, "vigilctl: %s: out of memory\n", cmd->name);
        local_free(lp);
        return EXIT_FAILED;
    }
    vg_diags_sort(&lp->d);
    return 0;
}

#define DIGEST_HEX (2 * VG_PROJECT_DIGEST_SIZE + 1)

/* The files digest (a version's identity) as hex. */
static void digest_hex(const struct vg_project_files *fs, char out[DIGEST_HEX])
{
    unsigned char raw[VG_PROJECT_DIGEST_SIZE];
    vg_project_files_digest(fs, raw);
    for (size_t i = 0; i < sizeof raw; i++) {
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    }
}

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
    struct local_project lp;
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
        digest_hex(&lp.fs, digest);
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
    local_free(&lp);
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
    char station[256] = "unknown";
    const char *user = who_am_i();
    int attempt;

    if (gethostname(station, sizeof station - 1) != 0) {
        snprintf(station, sizeof station, "unknown");
    }
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
    struct local_project lp;
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
        local_free(&lp);
        return EXIT_FAILED;
    }
    rv = vg_project_files_pack(&lp.fs, &bundle, &len, errmsg);
    if (rv != VG_OK) {
        fprintf(stderr, "vigilctl: %s: cannot pack %s: %s\n", cmd->name, cmd->dir,
                errmsg[0] ? errmsg : vg_strerror(rv));
        local_free(&lp);
        return EXIT_FAILED;
    }
    digest_hex(&lp.fs, digest);
    local_free(&lp);
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
 * digest the node gave. Returns 0 with *FS filled, or EXIT_FAILED. */
static int fetch_version(struct vg_client *c, const struct cmd *cmd,
                         long long version, struct vg_project_files *fs)
{
    unsigned char *bundle = NULL;
    long long total = -1;
    long long offset = 0;
    char digest[VG_ERRMSG_SIZE] = "";
    char errmsg[VG_ERRMSG_SIZE] = "";
    char hex[DIGEST_HEX];
    int rv;

    memset(fs, 0, sizeof *fs);
    while (total < 0 || offset < total) {
        json_t *req = json_pack("{s:s, s:I, s:I}", "type", "project_get", "version",
                                (json_int_t)version, "offset", (json_int_t)offset);
        json_t *answer = NULL;
        const char *data;
        size_t len = 0;

        if ((rv = leader_call(c, cmd, req, &answer)) != 0) {
            free(bundle);
            return rv;
        }
        if (is_error(answer)) {
            rv = report_error(cmd, answer);
            json_decref(answer);
            free(bundle);
            return rv;
        }
        data = vg_proto_get_str(answer, "data", NULL);
        if (total < 0) {
            total = vg_proto_get_int(answer, "total", -1);
            snprintf(digest, sizeof digest, "%s",
                     vg_proto_get_str(answer, "digest", ""));
            bundle = total > 0 ? malloc((size_t)total) : NULL;
            if (bundle == NULL) {
                fprintf(stderr, "vigilctl: %s: version %lld: bad size %lld\n",
                        cmd->name, version, total);
                json_decref(answer);
                return EXIT_FAILED;
            }
        }
        /* Chunks may come from different nodes if the connection changes;
         * they hold the same version, which the digest checks below. */
        if (vg_proto_get_int(answer, "total", -2) != total ||
            strcmp(vg_proto_get_str(answer, "digest", ""), digest) != 0 ||
            vg_proto_get_int(answer, "offset", -1) != offset || data == NULL ||
            sodium_base642bin(bundle + offset, (size_t)(total - offset), data,
                              strlen(data), NULL, &len, NULL,
                              sodium_base64_VARIANT_ORIGINAL) != 0 ||
            len == 0) {
            fprintf(stderr, "vigilctl: %s: version %lld: inconsistent chunk at "
                            "offset %lld\n",
                    cmd->name, version, offset);
            json_decref(answer);
            free(bundle);
            return EXIT_FAILED;
        }
        offset += (long long)len;
        json_decref(answer);
    }
    rv = vg_project_files_unpack(bundle, (size_t)total, fs, errmsg);
    free(bundle);
    if (rv != VG_OK) {
        fprintf(stderr, "vigilctl: %s: version %lld: %s\n", cmd->name, version,
                errmsg);
        return EXIT_FAILED;
    }
    digest_hex(fs, hex);
    if (strcmp(hex, digest) != 0) {
        fprintf(stderr, "vigilctl: %s: version %lld: the files fetched hash to "
                        "%s, not to the stored digest %s\n",
                cmd->name, version, hex, digest);
        vg_project_files_free(fs);
        return EXIT_FAILED;
    }
    return 0;
}

static int cmd_project_diff(struct vg_client *c, const struct opts *o,
                            const struct cmd *cmd)
{
    struct vg_project_files fa, fb;
    struct vg_project *pa = NULL, *pb = NULL;
    struct vg_diags da, db;
    char *text = NULL;
    int rv;

    if ((rv = fetch_version(c, cmd, cmd->version, &fa)) != 0) {
        return rv;
    }
    if ((rv = fetch_version(c, cmd, cmd->version2, &fb)) != 0) {
        vg_project_files_free(&fa);
        return rv;
    }
    vg_diags_init(&da);
    vg_diags_init(&db);
    pa = vg_project_parse(&fa, &da);
    pb = vg_project_parse(&fb, &db);
    if (pa == NULL || pb == NULL ||
        (rv = vg_project_diff(pa, pb, &text)) != VG_OK) {
        fprintf(stderr, "vigilctl: %s: cannot compare: %s\n", cmd->name,
                vg_strerror(pa == NULL || pb == NULL ? VG_ENOMEM : rv));
        rv = EXIT_FAILED;
    } else {
        /* Stored versions were valid when loaded; a newer vigilctl may judge
         * them differently, which is worth saying but does not stop the
         * diff. */
        if (da.n + db.n > 0) {
            fprintf(stderr, "vigilctl: %s: note: this vigilctl finds %zu error(s) "
                            "in version %lld and %zu in version %lld\n",
                    cmd->name, da.n + da.dropped, cmd->version, db.n + db.dropped,
                    cmd->version2);
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
    vg_project_free(pa);
    vg_project_free(pb);
    vg_diags_free(&da);
    vg_diags_free(&db);
    vg_project_files_free(&fa);
    vg_project_files_free(&fb);
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

int main(int argc, char **argv)
{
    struct opts o = {.timeout_ms = VG_CLIENT_DEFAULT_TIMEOUT_MS};
    struct cmd cmd;
    struct vg_client *c;
    char errmsg[VG_ERRMSG_SIZE];
    char **pos;
    int n_pos;
    int rv;

    pos = calloc((size_t)argc + 1, sizeof *pos);
    if (pos == NULL) {
        fprintf(stderr, "vigilctl: out of memory\n");
        return EXIT_FAILED;
    }
    rv = parse_options(argc, argv, &o, pos, &n_pos);
    if (rv == 0 && o.help) {
        fputs(usage_text, stdout);
        free(pos);
        return 0;
    }
    if (rv == 0) {
        rv = parse_command(pos, n_pos, &cmd);
    }
    free(pos);
    if (rv != 0) {
        return rv;
    }
    if (o.comment != NULL && cmd.kind != CMD_PROJECT_LOAD) {
        return usage_error("--comment applies only to 'project load'");
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "vigilctl: libsodium failed to initialise\n");
        return EXIT_FAILED;
    }
    if (cmd.kind == CMD_PROJECT_VALIDATE) {
        return cmd_project_validate(&o, &cmd);
    }
    if (o.cluster == NULL) {
        o.cluster = getenv("VIGIL_CLUSTER");
        o.cluster_from = "VIGIL_CLUSTER";
    }
    if (o.cluster == NULL || *o.cluster == '\0') {
        return usage_error("no cluster given: use --cluster HOST:PORT[,...] "
                           "or set VIGIL_CLUSTER");
    }
    c = vg_client_new(o.cluster, errmsg);
    if (c == NULL) {
        return usage_error("bad %s: %s", o.cluster_from, errmsg);
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
    default:
        rv = cmd_simple(c, &o, &cmd);
        break;
    }
    vg_client_free(c);
    return rv;
}
