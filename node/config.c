/* vigild command line. Every flag is checked strictly: a typo or an
 * out-of-range number is an error that names the flag, never a default. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../replication/replication.h"
#include "node.h"

static const char usage[] =
    "usage: vigild --id N --raft-address HOST:PORT --client-address HOST:PORT\n"
    "              --data DIR (--bootstrap SPEC | --join) [options]\n"
    "\n"
    "  --id N                  this node's id (1..2^63)\n"
    "  --raft-address H:P      address for raft traffic between nodes\n"
    "  --client-address H:P    address for operator stations and vigilctl\n"
    "  --data DIR              data folder (raft log + state.db); created if missing\n"
    "  --bootstrap SPEC        initial cluster, ID=RAFT/CLIENT[,…]; used only on\n"
    "                          a fresh data folder, ignored afterwards\n"
    "  --join                  fresh node that waits for 'vigilctl cluster add'\n"
    "  --election-timeout MS   raft election timeout (default 300)\n"
    "  --heartbeat MS          raft heartbeat (default 50)\n"
    "  --snapshot-threshold N  entries between snapshots (default 4096; node K\n"
    "                          waits (K mod 4)/8 longer, so that replicas do not\n"
    "                          all snapshot at once; so is --snapshot-log-mb)\n"
    "  --snapshot-trailing N   entries kept after a snapshot (default 1024)\n"
    "  --snapshot-log-mb N     take a snapshot early when the raft log holds N MB,\n"
    "                          and keep at most N/4 MB of trailing entries\n"
    "                          (default 512; 0: entry counts only)\n"
    "  --checkpoint-interval MS  consistency checkpoints (default 5000)\n"
    "  --scrub-every-s N       recount the record tables and the archive from\n"
    "                          their rows against their summaries every N s\n"
    "                          (default 3600; node K starts (K mod 4)/8 of it\n"
    "                          later; 0: never)\n"
    "  --scrub-budget-ms MS    stop a self-check that reads longer than MS\n"
    "                          (default 120000; the WAL cannot start over while\n"
    "                          a check reads; a stopped check counts as failed)\n"
    "  --archive-retention-days N  archived process values older than N days\n"
    "                          are cut (default 30; 0 keeps everything)\n"
    "  --client-idle-timeout MS  drop silent clients (default 30000)\n"
    "  --rebuild-state         discard state.db and rebuild it from the raft\n"
    "                          snapshot and log (for a replica reported diverged)\n"
    "  --max-apply-level N     apply levels up to N only, as an older vigild\n"
    "                          would (for rolling-upgrade tests; default: all)\n"
    "  --cluster-level N       as the ready leader, raise the cluster to apply\n"
    "                          level N once every member applies it (default:\n"
    "                          the highest this vigild applies, 3: nodes settle\n"
    "                          the archive into compressed chunks between\n"
    "                          commands; 1 or 2 hold it lower, see README)\n"
    "  --test-refuse-alarm-change NAME  tests only: as the ready leader, take\n"
    "                          every change an operator makes to alarm NAME as\n"
    "                          one the command format refuses (the alarm engine\n"
    "                          is then rebuilt; test cluster-alarm-rebuild)\n"
    "  --verbose               log more\n";

static int parse_uint(const char *flag, const char *text, unsigned long long min,
                      unsigned long long max, unsigned long long *out,
                      char *errmsg)
{
    char *end;
    unsigned long long v;
    errno = 0;
    if (text == NULL || *text == '\0' || *text == '-' || *text == '+') {
        vg_errf(errmsg, "%s: expected a number, got '%s'", flag,
                text ? text : "");
        return VG_EINVAL;
    }
    v = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) {
        vg_errf(errmsg, "%s: '%s' is not a number in %llu..%llu", flag, text,
                min, max);
        return VG_EINVAL;
    }
    *out = v;
    return VG_OK;
}

static int check_addr(const char *flag, const char *text, char *dst,
                      char *errmsg)
{
    char host[VG_NODE_ADDR_SIZE];
    char why[VG_ERRMSG_SIZE];
    int port;
    if (vg_addr_parse(text, host, sizeof host, &port, why) != VG_OK) {
        vg_errf(errmsg, "%s: %s", flag, why);
        return VG_EINVAL;
    }
    if (strlen(text) >= VG_NODE_ADDR_SIZE) {
        vg_errf(errmsg, "%s: address too long", flag);
        return VG_EINVAL;
    }
    strcpy(dst, text);
    return VG_OK;
}

int vg_node_peers_parse(struct vg_node_config *c, const char *spec,
                        char *errmsg)
{
    char *copy = strdup(spec);
    char *save = NULL;
    char *item;
    int rv = VG_OK;
    unsigned n = 0;

    if (copy == NULL) {
        return VG_ENOMEM;
    }
    for (item = strtok_r(copy, ",", &save); item != NULL;
         item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        char *slash = eq ? strchr(eq, '/') : NULL;
        unsigned long long id;
        char what[64];
        if (eq == NULL || slash == NULL) {
            vg_errf(errmsg, "--bootstrap: entry %u '%s' is not ID=RAFT/CLIENT",
                    n + 1, item);
            rv = VG_EINVAL;
            break;
        }
        if (n == VG_NODE_MAX_PEERS) {
            vg_errf(errmsg, "--bootstrap: more than %d nodes", VG_NODE_MAX_PEERS);
            rv = VG_EINVAL;
            break;
        }
        *eq = '\0';
        *slash = '\0';
        snprintf(what, sizeof what, "--bootstrap entry %u", n + 1);
        if ((rv = parse_uint(what, item, 1, INT64_MAX, &id, errmsg)) != VG_OK ||
            (rv = check_addr(what, eq + 1, c->peers[n].raft_address, errmsg)) !=
                VG_OK ||
            (rv = check_addr(what, slash + 1, c->peers[n].client_address,
                             errmsg)) != VG_OK) {
            break;
        }
        for (unsigned i = 0; i < n; i++) {
            if (c->peers[i].id == id) {
                vg_errf(errmsg, "--bootstrap: node id %llu appears twice", id);
                rv = VG_EINVAL;
                break;
            }
        }
        if (rv != VG_OK) {
            break;
        }
        c->peers[n].id = id;
        n++;
    }
    free(copy);
    if (rv == VG_OK && n == 0) {
        vg_errf(errmsg, "--bootstrap: empty node list");
        rv = VG_EINVAL;
    }
    c->n_peers = rv == VG_OK ? n : 0;
    return rv;
}

int vg_node_config_parse(struct vg_node_config *c, int argc, char **argv,
                         char *errmsg)
{
    enum {
        O_ID = 1000, O_RAFT, O_CLIENT, O_DATA, O_BOOT, O_JOIN, O_ET, O_HB,
        O_ST, O_STR, O_CP, O_IDLE, O_RETENTION, O_VERBOSE, O_REBUILD, O_LEVEL,
        O_CLUSTER_LEVEL, O_LOG_MB, O_SCRUB, O_SCRUB_BUDGET, O_TEST_REFUSE, O_HELP
    };
    static const struct option opts[] = {
        {"id", required_argument, NULL, O_ID},
        {"raft-address", required_argument, NULL, O_RAFT},
        {"client-address", required_argument, NULL, O_CLIENT},
        {"data", required_argument, NULL, O_DATA},
        {"bootstrap", required_argument, NULL, O_BOOT},
        {"join", no_argument, NULL, O_JOIN},
        {"election-timeout", required_argument, NULL, O_ET},
        {"heartbeat", required_argument, NULL, O_HB},
        {"snapshot-threshold", required_argument, NULL, O_ST},
        {"snapshot-trailing", required_argument, NULL, O_STR},
        {"snapshot-log-mb", required_argument, NULL, O_LOG_MB},
        {"scrub-every-s", required_argument, NULL, O_SCRUB},
        {"scrub-budget-ms", required_argument, NULL, O_SCRUB_BUDGET},
        {"checkpoint-interval", required_argument, NULL, O_CP},
        {"client-idle-timeout", required_argument, NULL, O_IDLE},
        {"archive-retention-days", required_argument, NULL, O_RETENTION},
        {"verbose", no_argument, NULL, O_VERBOSE},
        {"rebuild-state", no_argument, NULL, O_REBUILD},
        {"max-apply-level", required_argument, NULL, O_LEVEL},
        {"cluster-level", required_argument, NULL, O_CLUSTER_LEVEL},
        {"test-refuse-alarm-change", required_argument, NULL, O_TEST_REFUSE},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    unsigned long long v;
    int opt;
    int rv = VG_OK;

    memset(c, 0, sizeof *c);
    c->election_timeout_ms = 300;
    c->heartbeat_ms = 50;
    c->snapshot_threshold = 4096;
    c->snapshot_trailing = 1024;
    c->snapshot_log_mb = 512;
    c->scrub_every_s = 3600;
    c->scrub_budget_ms = 120000; /* why: node/scrub.c */
    c->checkpoint_interval_ms = 5000;
    c->client_idle_timeout_ms = 30000;
    c->archive_retention_days = 30;
    c->cluster_level = VG_REPL_APPLY_LEVEL;

    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1 && rv == VG_OK) {
        switch (opt) {
        case O_ID:
            rv = parse_uint("--id", optarg, 1, INT64_MAX, &v, errmsg);
            c->id = v;
            break;
        case O_RAFT:
            rv = check_addr("--raft-address", optarg, c->raft_address, errmsg);
            break;
        case O_CLIENT:
            rv = check_addr("--client-address", optarg, c->client_address, errmsg);
            break;
        case O_DATA:
            if (strlen(optarg) == 0 || strlen(optarg) >= sizeof c->data_dir - 32) {
                vg_errf(errmsg, "--data: path is empty or too long");
                rv = VG_EINVAL;
            } else {
                strcpy(c->data_dir, optarg);
            }
            break;
        case O_BOOT:
            rv = vg_node_peers_parse(c, optarg, errmsg);
            break;
        case O_JOIN:
            c->join = true;
            break;
        case O_ET:
            rv = parse_uint("--election-timeout", optarg, 50, 60000, &v, errmsg);
            c->election_timeout_ms = (unsigned)v;
            break;
        case O_HB:
            rv = parse_uint("--heartbeat", optarg, 5, 10000, &v, errmsg);
            c->heartbeat_ms = (unsigned)v;
            break;
        case O_ST:
            rv = parse_uint("--snapshot-threshold", optarg, 2, 100000000, &v, errmsg);
            c->snapshot_threshold = (unsigned)v;
            break;
        case O_STR:
            rv = parse_uint("--snapshot-trailing", optarg, 0, 100000000, &v, errmsg);
            c->snapshot_trailing = (unsigned)v;
            break;
        case O_LOG_MB:
            rv = parse_uint("--snapshot-log-mb", optarg, 0, 1048576, &v, errmsg);
            c->snapshot_log_mb = (unsigned)v;
            break;
        case O_SCRUB:
            rv = parse_uint("--scrub-every-s", optarg, 0, 31622400, &v, errmsg);
            c->scrub_every_s = (unsigned)v;
            break;
        case O_SCRUB_BUDGET:
            rv = parse_uint("--scrub-budget-ms", optarg, 1, 86400000, &v, errmsg);
            c->scrub_budget_ms = (unsigned)v;
            break;
        case O_CP:
            rv = parse_uint("--checkpoint-interval", optarg, 100, 86400000, &v, errmsg);
            c->checkpoint_interval_ms = (unsigned)v;
            break;
        case O_IDLE:
            rv = parse_uint("--client-idle-timeout", optarg, 500, 86400000, &v, errmsg);
            c->client_idle_timeout_ms = (unsigned)v;
            break;
        case O_RETENTION:
            rv = parse_uint("--archive-retention-days", optarg, 0, 36500, &v, errmsg);
            c->archive_retention_days = (unsigned)v;
            break;
        case O_VERBOSE:
            c->verbose = true;
            break;
        case O_REBUILD:
            c->rebuild_state = true;
            break;
        case O_LEVEL:
            rv = parse_uint("--max-apply-level", optarg, 1, VG_REPL_APPLY_LEVEL, &v,
                            errmsg);
            c->max_apply_level = (unsigned)v;
            break;
        case O_CLUSTER_LEVEL:
            rv = parse_uint("--cluster-level", optarg, 1, VG_REPL_APPLY_LEVEL, &v,
                            errmsg);
            c->cluster_level = (unsigned)v;
            break;
        case O_TEST_REFUSE:
            if (strlen(optarg) == 0 || strlen(optarg) >= sizeof c->test_refuse_alarm) {
                vg_errf(errmsg, "--test-refuse-alarm-change: expected an alarm "
                                "name of 1..%zu bytes",
                        sizeof c->test_refuse_alarm - 1);
                rv = VG_EINVAL;
            } else {
                strcpy(c->test_refuse_alarm, optarg);
            }
            break;
        case O_HELP:
            fputs(usage, stdout);
            return VG_EAGAIN;
        default:
            vg_errf(errmsg, "unknown or incomplete option '%s' (see --help)",
                    argv[optind - 1]);
            return VG_EINVAL;
        }
    }
    if (rv != VG_OK) {
        return rv;
    }
    if (optind < argc) {
        vg_errf(errmsg, "unexpected argument '%s' (see --help)", argv[optind]);
        return VG_EINVAL;
    }
    if (c->id == 0 || c->raft_address[0] == '\0' ||
        c->client_address[0] == '\0' || c->data_dir[0] == '\0') {
        vg_errf(errmsg, "--id, --raft-address, --client-address and --data are "
                        "required (see --help)");
        return VG_EINVAL;
    }
    if (c->join && c->n_peers > 0) {
        vg_errf(errmsg, "--join and --bootstrap exclude each other");
        return VG_EINVAL;
    }
    if (c->heartbeat_ms * 2 > c->election_timeout_ms) {
        vg_errf(errmsg, "--heartbeat %u must be at most half of "
                        "--election-timeout %u",
                c->heartbeat_ms, c->election_timeout_ms);
        return VG_EINVAL;
    }
    if (c->n_peers > 0) {
        bool found = false;
        for (unsigned i = 0; i < c->n_peers; i++) {
            if (c->peers[i].id == c->id) {
                found = true;
                if (strcmp(c->peers[i].raft_address, c->raft_address) != 0 ||
                    strcmp(c->peers[i].client_address, c->client_address) != 0) {
                    vg_errf(errmsg, "--bootstrap names node %llu with other "
                                    "addresses than --raft-address/--client-address",
                            (unsigned long long)c->id);
                    return VG_EINVAL;
                }
            }
        }
        if (!found) {
            vg_errf(errmsg, "--bootstrap does not list this node (id %llu)",
                    (unsigned long long)c->id);
            return VG_EINVAL;
        }
    }
    return VG_OK;
}
