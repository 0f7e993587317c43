/* Vigil client protocol: framing and message codec, shared by vigild (node/)
 * and the client library (client/).
 *
 * A frame on the wire is a 4-byte big-endian payload length followed by that
 * many bytes of UTF-8 JSON holding one object. Every object carries
 *   "v":    protocol version (VG_PROTO_VERSION),
 *   "type": message type (a string, see proto/MESSAGES.md),
 * and requests carry a client-chosen "id" (non-negative integer) that the
 * answer repeats. Frames larger than VG_PROTO_MAX_FRAME are refused.
 *
 * The decoder is incremental: feed it whatever bytes arrived, then pull
 * complete messages out. A bad frame (malformed JSON, not an object, wrong
 * version, missing type, oversized) is reported as an error for that frame
 * only; the decoder skips exactly that frame and stays in sync, so the server
 * answers with an error frame and the connection stays usable. Oversized
 * frames are skipped without being buffered.
 *
 * Ownership: messages returned by the decoder are new jansson references owned
 * by the caller (json_decref them). Encoded buffers are malloc'd and owned by
 * the caller (free them). */
#ifndef VG_PROTO_H
#define VG_PROTO_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/common.h"

#define VG_PROTO_VERSION 1
#define VG_PROTO_HEADER_SIZE 4
#define VG_PROTO_MAX_FRAME (1024u * 1024u)

/* Incremental frame decoder; embed it, vg_proto_decoder_init, ..._close. */
struct vg_proto_decoder {
    unsigned char *buf; /* buffered bytes not yet consumed */
    size_t len;         /* bytes in buf */
    size_t cap;         /* allocated size of buf */
    size_t skip;        /* bytes of an oversized frame still to discard */
    uint64_t frames;    /* frames decoded so far (for error positions) */
};

void vg_proto_decoder_init(struct vg_proto_decoder *d);
void vg_proto_decoder_close(struct vg_proto_decoder *d);

/* Append N bytes from DATA. Returns VG_OK or VG_ENOMEM. */
int vg_proto_decoder_feed(struct vg_proto_decoder *d, const void *data,
                          size_t n);

/* Take the next complete message out of the decoder.
 *   VG_OK         *msg is a new reference to a valid message object;
 *   VG_EAGAIN     no complete frame buffered yet (*msg NULL);
 *   VG_ETOOBIG    a frame longer than VG_PROTO_MAX_FRAME: it is being skipped;
 *   VG_EMALFORMED the frame is not a JSON object, or lacks "type" (string);
 *   VG_EUNSUPPORTED "v" is missing or not VG_PROTO_VERSION.
 * On an error, ERRMSG (VG_ERRMSG_SIZE, may be NULL) says what and where
 * (frame number, JSON line/column), *ID_OUT (may be NULL) receives the
 * frame's "id" when it could be read, else -1, and decoding may continue with
 * the next call. */
int vg_proto_decoder_next(struct vg_proto_decoder *d, json_t **msg,
                          long long *id_out, char *errmsg);

/* Encode MSG (a JSON object; "v" is added if absent) as one frame.
 * Returns VG_OK with *out and *out_len set, VG_ETOOBIG if the frame would exceed
 * the limit, VG_EINVAL if MSG is not an object, VG_ENOMEM. */
int vg_proto_encode(json_t *msg, char **out, size_t *out_len);

/* Builders for common messages; each returns a new reference or NULL. */
json_t *vg_proto_request(const char *type, long long id);
/* An error answer: {"type":"error","id":ID,"code":CODE,"message":MESSAGE}.
 * ID < 0 omits the id. CODE is a short machine-readable word
 * (see MESSAGES.md), MESSAGE a human sentence. */
json_t *vg_proto_error(long long id, const char *code, const char *message);

/* Accessors that tolerate missing/mistyped members: return DEF if absent or
 * of the wrong type. */
const char *vg_proto_get_str(const json_t *msg, const char *key,
                             const char *def);
long long vg_proto_get_int(const json_t *msg, const char *key, long long def);

/* A text in several languages as messages carry it ({"en": …, "de": …}):
 * the one in LANG (may be NULL), else "en", else the first string; DEF when
 * TEXTS holds none. Borrowed from TEXTS. */
const char *vg_proto_text_in(const json_t *texts, const char *lang,
                             const char *def);

#endif /* VG_PROTO_H */
