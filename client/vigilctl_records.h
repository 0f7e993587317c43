/* vigilctl's commands over the plant's records: alarms, the alarm journal,
 * the process-value history, the audit trail and reports. Kept apart from
 * vigilctl.c (cluster and project administration), with an argument parser
 * of its own that accepts the same global options (--cluster, --json,
 * --timeout). */
#ifndef VG_VIGILCTL_RECORDS_H
#define VG_VIGILCTL_RECORDS_H

#include <stdbool.h>

struct vg_client;
struct vg_project;

/* True when WORD is one of the commands handled here (alarms, history,
 * audit, report). */
bool vigilctl_records_command(const char *word);

/* Run one of those commands; ARGV is vigilctl's whole argument vector.
 * Returns the exit status (0, 1 failed, 2 usage). */
int vigilctl_records_main(int argc, char **argv);

/* The usage lines of these commands, for vigilctl --help. */
extern const char vigilctl_records_usage[];

/* Provided by vigilctl.c: fetch and parse the active project version (for
 * reports defined in the project and for tag units). Returns 0 with *P set
 * (free with vigilctl_project_free(*P, *OWNER)), or an exit status after
 * printing why. */
int vigilctl_active_project(struct vg_client *c, struct vg_project **p,
                            void **owner);
void vigilctl_project_free(struct vg_project *p, void *owner);

#endif /* VG_VIGILCTL_RECORDS_H */
