/* Placeholder: replicated alarm states and the alarm journal (being written). */
#include "fsm_internal.h"

int fsm_apply_alarm_state(struct vg_repl_fsm *f, uint64_t index,
                          const struct vg_cmd *cmd, json_t *body)
{
    (void)f; (void)index; (void)cmd; (void)body;
    return VG_EUNSUPPORTED;
}
