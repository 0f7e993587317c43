/* vigil-plcsim internals: the pieces of the simulator and how main.c wires
 * them together.
 *
 *   codec.c     a tag's engineering value <-> its registers or bit
 *   model.c     the simulated plant: tag values stepped in simulated time
 *   server.c    Modbus TCP: accept clients, frame requests, answer them from
 *               the register map (libmodbus), report every write request
 *   writelog.c  write requests as JSON lines, with the fencing node and term
 *
 * Everything is single-threaded: main.c runs one loop that waits on the
 * sockets until the next simulation step is due. The register map
 * (modbus_mapping_t) is shared: the server answers from it and applies
 * clients' writes to it; the model reads writable tags from it and stores
 * every other tag into it at each step. */
#ifndef VG_PLCSIM_H
#define VG_PLCSIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>

#include <modbus.h>

#include "project.h"

/* ------------------------------------------------------------------ codec */

/* The engineering range of T as FORMAT.md defines it: the scaled range, or
 * what the data type can hold (0..1 for bool). */
void plcsim_tag_range(const struct vg_tag *t, double *lo, double *hi);

/* Store engineering value ENG into T's registers (or bit) in MAP: scaled to
 * raw, rounded and clamped to the data type, split by word order. The map
 * must cover the tag (see plcsim_model_map_size). */
void plcsim_tag_put(const struct vg_tag *t, double eng, modbus_mapping_t *map);

/* The engineering value T's registers in MAP hold. */
double plcsim_tag_get(const struct vg_tag *t, const modbus_mapping_t *map);

/* ------------------------------------------------------------------ model */

struct plcsim_model;

/* A model of the tags of PLC index PLC in project P (borrowed: P must outlive
 * the model), stepping DT simulated seconds at a time, deterministic for
 * SEED. Returns VG_ENOMEM or VG_EINVAL with a sentence in ERRMSG. */
int plcsim_model_new(const struct vg_project *p, size_t plc, uint64_t seed,
                     double dt, struct plcsim_model **out, char *errmsg);
void plcsim_model_free(struct plcsim_model *m);

size_t plcsim_model_n_tags(const struct plcsim_model *m);

/* The number of coils, discrete inputs, holding and input registers (from
 * address 0) the tags need, indexed by enum vg_reg_kind. */
void plcsim_model_map_size(const struct plcsim_model *m, unsigned nb[4]);

/* Store the initial value of every tag (writable ones included) into MAP. */
void plcsim_model_start(struct plcsim_model *m, modbus_mapping_t *map);

/* One step: read what clients wrote to writable tags, advance the plant by
 * DT, store every other tag (and pulse commands that ended) into MAP. */
void plcsim_model_step(struct plcsim_model *m, modbus_mapping_t *map);

/* ----------------------------------------------------------------- server */

/* A write request as a client sent it (function code 0x05, 0x06, 0x0F or
 * 0x10): coils as 0/1, registers as raw 16-bit values. OK tells whether it
 * was applied (false: answered with an exception, e.g. an address outside
 * the map). */
struct plcsim_write {
    int fc;
    unsigned address;
    unsigned n;
    bool ok;
    uint16_t values[MODBUS_MAX_WRITE_BITS];
};

/* Called after a write request has been answered (and so applied to the
 * map, when it was valid). */
typedef void (*plcsim_write_cb)(void *data, const struct plcsim_write *w);

struct plcsim_server;

/* Listen on HOST:PORT (HOST a name or IPv4 address; only that address is
 * bound) and answer from MAP (borrowed). Returns VG_EIO or VG_ENOMEM with a
 * sentence in ERRMSG. */
int plcsim_server_new(const char *host, int port, int unit_id,
                      modbus_mapping_t *map, plcsim_write_cb write_cb,
                      void *cb_data, struct plcsim_server **out,
                      char *errmsg);

/* Close every socket. */
void plcsim_server_free(struct plcsim_server *s);

/* Wait until a socket is ready or DEADLINE_MS (vg_now_mono_ms) passes, with
 * SIGMASK installed while waiting (so a signal blocked elsewhere wakes the
 * wait and is not lost), then serve what arrived: new connections, requests.
 * A client that breaks the protocol or fails is disconnected; nothing a
 * client does ends the server. Returns 0, or VG_EIO when the wait itself
 * failed for a reason other than a signal. */
int plcsim_server_run_until(struct plcsim_server *s, uint64_t deadline_ms,
                            const sigset_t *sigmask);

size_t plcsim_server_n_clients(const struct plcsim_server *s);

/* --------------------------------------------------------------- writelog */

struct plcsim_writelog;

/* Append to PATH (created when missing). */
int plcsim_writelog_open(const char *path, struct plcsim_writelog **out,
                         char *errmsg);

/* One JSON line for W, with the fencing registers' node and term, flushed.
 * Returns VG_EIO when the line could not be written. */
int plcsim_writelog_append(struct plcsim_writelog *l,
                           const struct plcsim_write *w, uint32_t node,
                           uint32_t term);

void plcsim_writelog_close(struct plcsim_writelog *l);

#endif /* VG_PLCSIM_H */
