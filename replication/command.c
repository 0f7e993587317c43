/* Encoding of Vigil's typed commands into raft log entries.
 *
 * Layout (little endian), VG_CMD_HEADER_SIZE bytes of header then the body:
 *   0  u8   version (VG_CMD_VERSION)
 *   1  u8   reserved, 0
 *   2  u16  type
 *   4  u32  body length
 *   8  u64  term
 *  16  u64  wall time in ms
 *  24  u64  proposer node id
 *  32  u64  reserved, 0
 *  40  body (JSON text)
 * The header is fixed-size so that a decoder can reject a short or lying
 * buffer before touching the body. */
#include <string.h>

#include "replication.h"

static void put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

static uint16_t get16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

static const char *const type_names[VG_CMD_TYPE_MAX] = {
    [VG_CMD_ANNOUNCE] = "announce",
    [VG_CMD_PUT] = "put",
    [VG_CMD_NODE_INFO] = "node_info",
    [VG_CMD_CHECKPOINT] = "checkpoint",
    [VG_CMD_NODE_FORGET] = "node_forget",
    [VG_CMD_PROJECT_LOAD] = "project_load",
    [VG_CMD_SETPOINT] = "setpoint",
    [VG_CMD_SETPOINT_RESULT] = "setpoint_result",
    [VG_CMD_ALARM_STATE] = "alarm_state",
    [VG_CMD_HISTORY_BATCH] = "history_batch",
    [VG_CMD_RETENTION_CUT] = "retention_cut",
    [VG_CMD_AUDIT] = "audit",
    [VG_CMD_ARCHIVE_CLASSES] = "archive_classes",
    [VG_CMD_ALARM_CHANGES] = "alarm_changes",
    [VG_CMD_HISTORY_SAMPLES] = "history_samples",
    [VG_CMD_CLUSTER_LEVEL] = "cluster_level",
};

const char *vg_cmd_type_name(unsigned type)
{
    if (type >= VG_CMD_TYPE_MAX || type_names[type] == NULL) {
        return "unknown";
    }
    return type_names[type];
}

int vg_cmd_encode(const struct vg_cmd *cmd, struct raft_buffer *out)
{
    unsigned char *p;
    size_t padded;

    if (cmd->type == 0 || cmd->type >= VG_CMD_TYPE_MAX ||
        cmd->body_len > VG_CMD_MAX_BODY) {
        return VG_EINVAL;
    }
    /* libraft 0.15's uv transport mis-decodes a batch of several entries whose
     * lengths are not multiples of 8 (seen as corrupted entries on a follower
     * catching up after a restart), so every command is padded to 8 bytes. */
    padded = (VG_CMD_HEADER_SIZE + (size_t)cmd->body_len + 7u) & ~(size_t)7u;
    p = raft_malloc(padded);
    if (p == NULL) {
        return VG_ENOMEM;
    }
    memset(p, 0, padded);
    p[0] = VG_CMD_VERSION;
    put16(p + 2, cmd->type);
    put32(p + 4, cmd->body_len);
    put64(p + 8, cmd->term);
    put64(p + 16, cmd->time_ms);
    put64(p + 24, cmd->proposer);
    if (cmd->body_len > 0) {
        memcpy(p + VG_CMD_HEADER_SIZE, cmd->body, cmd->body_len);
    }
    out->base = p;
    out->len = padded;
    return VG_OK;
}

int vg_cmd_decode(const struct raft_buffer *buf, struct vg_cmd *cmd,
                  char *errmsg)
{
    const unsigned char *p = buf->base;
    uint32_t body_len;

    if (buf->base == NULL || buf->len < VG_CMD_HEADER_SIZE) {
        vg_errf(errmsg, "command of %zu bytes is shorter than its %d-byte header",
                buf->len, VG_CMD_HEADER_SIZE);
        return VG_EMALFORMED;
    }
    if (p[0] != VG_CMD_VERSION) {
        vg_errf(errmsg, "command version %u is not supported (expected %d)",
                p[0], VG_CMD_VERSION);
        return VG_EUNSUPPORTED;
    }
    body_len = get32(p + 4);
    /* libraft's uv backend pads entries to 8 bytes, so the buffer may be
     * longer than header + body, never shorter. */
    if (body_len > VG_CMD_MAX_BODY ||
        (size_t)body_len > buf->len - VG_CMD_HEADER_SIZE) {
        vg_errf(errmsg, "command body length %u does not fit in %zu bytes",
                body_len, buf->len);
        return VG_EMALFORMED;
    }
    cmd->type = get16(p + 2);
    if (cmd->type == 0 || cmd->type >= VG_CMD_TYPE_MAX) {
        vg_errf(errmsg, "unknown command type %u", cmd->type);
        return VG_EUNSUPPORTED;
    }
    cmd->term = get64(p + 8);
    cmd->time_ms = get64(p + 16);
    cmd->proposer = get64(p + 24);
    cmd->body = (const char *)p + VG_CMD_HEADER_SIZE;
    cmd->body_len = body_len;
    return VG_OK;
}
