/* Placeholder: the process-value archive (being written). */
#include "fsm_internal.h"

int fsm_apply_history_batch(struct vg_repl_fsm *f, uint64_t index,
                            const struct vg_cmd *cmd, json_t *body)
{
    (void)f; (void)index; (void)cmd; (void)body;
    return VG_EUNSUPPORTED;
}

int fsm_apply_retention_cut(struct vg_repl_fsm *f, uint64_t index,
                            const struct vg_cmd *cmd, json_t *body)
{
    (void)f; (void)index; (void)cmd; (void)body;
    return VG_EUNSUPPORTED;
}
