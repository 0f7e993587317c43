/* vigild: run one Vigil cluster node. See node.h and `vigild --help`. */
#include <signal.h>
#include <stdio.h>

#include "node.h"

int main(int argc, char **argv)
{
    struct vg_node_config cfg;
    char errmsg[VG_ERRMSG_SIZE] = "";
    int rv;

    signal(SIGPIPE, SIG_IGN);
    rv = vg_node_config_parse(&cfg, argc, argv, errmsg);
    if (rv == VG_EAGAIN) {
        return 0;
    }
    if (rv != VG_OK) {
        fprintf(stderr, "vigild: %s\n", errmsg);
        return 2;
    }
    rv = vg_node_run(&cfg, errmsg);
    if (rv != VG_OK) {
        fprintf(stderr, "vigild: %s\n", errmsg);
        return 1;
    }
    return 0;
}
