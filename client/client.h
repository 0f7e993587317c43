/* Vigil client library: a blocking client for vigild that follows the leader.
 *
 * A vg_client holds a list of seed addresses (the client addresses of some
 * cluster nodes) and at most one open TCP connection. vg_client_call() sends
 * one request and waits for the answer with the same "id". Along the way it:
 *
 *   - connects lazily to the first seed that accepts (non-blocking connect,
 *     bounded by the keepalive dead time so a black-holed address cannot hang
 *     the call), trying the seeds in turn and backing off 50 → 400 ms after a
 *     round in which none accepted;
 *   - follows "not_leader" answers to leader.client_address, or, when no
 *     leader is named (an election is running), backs off and tries the next
 *     seed;
 *   - skips unsolicited frames while waiting, keeping pushed events for
 *     vg_client_next_event();
 *   - sends {"type":"ping"} every keepalive interval while it waits and
 *     declares the peer dead when nothing at all arrives for the dead time,
 *     then reconnects elsewhere and resends the request;
 *   - reconnects and resends when the connection is lost or the node says
 *     "bye";
 *   - resends once when the answer is a "timeout" error (the cluster did not
 *     commit in time, usually because leadership moved);
 *   - gives up at the per-call deadline.
 *
 * Because of the resends a request may be executed more than once; send only
 * requests whose repetition is harmless (all of MESSAGES.md's are).
 *
 * Host names are resolved with getaddrinfo(), which blocks and is not bounded
 * by the deadline; give numeric addresses where that matters.
 *
 * Errors: functions return VG_OK or a VG_E… code (common.h) and write a
 * sentence into ERRMSG (VG_ERRMSG_SIZE bytes, may be NULL). An error answer
 * from the cluster is not a transport failure: vg_client_call() returns VG_OK
 * with *RESP set to the {"type":"error",…} object and the caller inspects its
 * "code". The library never prints, exits or touches signals (it sends with
 * MSG_NOSIGNAL).
 *
 * Ownership: the client owns its connection and copies of the seed strings.
 * Requests are borrowed and not modified (the library sends a copy carrying
 * its own "id"). Answers are new jansson references owned by the caller.
 *
 * Threads: a vg_client has no internal locking; use it from one thread at a
 * time (one client per thread is the simple way). Distinct clients share no
 * state; the library has no globals. */
#ifndef VG_CLIENT_H
#define VG_CLIENT_H

#include <jansson.h>

#include "../common/common.h"

#define VG_CLIENT_DEFAULT_TIMEOUT_MS 5000u
#define VG_CLIENT_DEFAULT_PING_MS 250u
#define VG_CLIENT_DEFAULT_DEAD_MS 1000u
/* Pushed events kept for vg_client_next_event(); when the queue is full the
 * oldest is dropped. Tag values are pushed often, hence the size. */
#define VG_CLIENT_EVENT_QUEUE 4096u

struct vg_client;

/* Create a client for SEEDS, "host:port[,host:port…]" (spaces around the
 * commas are allowed; each part as accepted by vg_addr_parse). No connection
 * is made yet. Returns NULL with a sentence in ERRMSG if SEEDS is empty or any
 * part is not a valid address, or on out of memory. SEEDS is copied. */
struct vg_client *vg_client_new(const char *seeds, char *errmsg);

/* Close the connection and free everything. C may be NULL. */
void vg_client_free(struct vg_client *c);

/* The overall deadline of one vg_client_call()/vg_client_call_at(), and of
 * one round of re-subscribing in vg_client_next_event(), in milliseconds
 * (default VG_CLIENT_DEFAULT_TIMEOUT_MS). Returns VG_EINVAL if MS is 0. */
int vg_client_set_timeout(struct vg_client *c, unsigned ms);

/* While waiting for an answer, send a ping every INTERVAL_MS and declare the
 * peer dead when no byte has arrived for DEAD_MS (defaults 250 and 1000).
 * DEAD_MS also bounds each connection attempt. Returns VG_EINVAL unless
 * 0 < INTERVAL_MS < DEAD_MS. */
int vg_client_set_keepalive(struct vg_client *c, unsigned interval_ms,
                            unsigned dead_ms);

/* Send REQ (a JSON object with at least "type"; borrowed) to the leader and
 * wait for its answer, following the leader as described above.
 *   VG_OK        *RESP is the answer (a new reference), possibly an error
 *                object whose "code" is anything but "not_leader";
 *   VG_ETIMEDOUT the deadline passed (ERRMSG names the addresses tried and
 *                what happened at each);
 *   VG_EIO       no seed could be connected to before the deadline;
 *   VG_EINVAL    REQ is not an object; VG_ETOOBIG it does not fit in a frame;
 *   VG_ENOMEM.
 * *RESP is NULL on every error. */
int vg_client_call(struct vg_client *c, json_t *req, json_t **resp,
                   char *errmsg);

/* Send REQ to the node at ADDR ("host:port") only: no redirect, no other
 * address, no resend. The client's connection is reused if it already goes
 * to ADDR; otherwise a temporary connection is opened and closed again, and
 * the client's own connection is left alone. Every answer, including
 * "not_leader", is returned as VG_OK. Transport failures return VG_EIO
 * (cannot connect, connection lost), VG_ETIMEDOUT (deadline, or the peer fell
 * silent for the keepalive dead time), VG_EINVAL (bad ADDR or REQ). */
int vg_client_call_at(struct vg_client *c, const char *addr, json_t *req,
                      json_t **resp, char *errmsg);

/* The address ("host:port" as given in the seeds or by a redirect) of the
 * open connection, or NULL when not connected. Valid until the next call on
 * C. */
const char *vg_client_current(const struct vg_client *c);

/* The seeds, in the order given: COUNT of them, each a "host:port" string
 * owned by C. */
size_t vg_client_seed_count(const struct vg_client *c);
const char *vg_client_seed(const struct vg_client *c, size_t i);

/* Pushed events. A node pushes {"type":"event","topic":…} frames (without
 * "id") to a connection that subscribed with a "subscribe" or
 * "tags_subscribe" request; the subscription belongs to that connection.
 * Events that arrive on the client's connection while any call waits are
 * queued (at most VG_CLIENT_EVENT_QUEUE; when full, the oldest is dropped and
 * counted); other unsolicited frames are skipped.
 *
 * There are two ways to subscribe:
 *
 *   - vg_client_subscribe() (below): the client remembers the request and
 *     subscribes again by itself whenever the subscription may be gone;
 *   - vg_client_call() with a subscription request: the subscription lives
 *     and dies with the connection and the caller has to notice
 *     (vg_client_next_event() returns VG_ECLOSED) and subscribe again.
 *
 * vg_client_next_event() takes the oldest queued event, or waits up to
 * TIMEOUT_MS on the current connection for one, pinging and watching for a
 * dead peer as a call does. The peer's silence is counted across waits that
 * follow each other closely, so polling with a TIMEOUT_MS shorter than the
 * dead time (to look at a flag in between) still notices a dead node.
 *
 * Without remembered subscriptions it never connects or reconnects, because
 * a new connection has no subscriptions:
 *   VG_OK        *EVENT is the event (a new reference, the caller's);
 *   VG_ETIMEDOUT nothing arrived in time; the connection is still fine;
 *   VG_ECLOSED   there is no connection, or it was lost or declared dead
 *                (and is now closed): subscribe again to go on; events of
 *                the gap are lost, so re-read the state the events are about;
 *   VG_EINVAL, VG_ENOMEM.
 * Calls on C between events are fine; if one of them had to reconnect, the
 * subscription is gone (the caller sees that it connected elsewhere with
 * vg_client_current()).
 *
 * With remembered subscriptions it first makes sure that all of them hold on
 * the current connection. They are sent again, each with the machinery of
 * vg_client_call() (connecting, following the leader), when
 *   - there is no connection, or it was lost, declared dead or the node said
 *     "bye" (also when that is noticed while waiting for an event);
 *   - the connection is not the one they were established on (a call in
 *     between reconnected elsewhere);
 *   - events were dropped since they were established. The caller's picture
 *     then has a hole, so the connection is closed (the node forgets the old
 *     subscriptions) and the queued events are discarded: the images that
 *     follow the new answers replace them.
 * Each answer is queued as the event
 *   {"type":"event","topic":"client","event":"resubscribed",
 *    "address":"HOST:PORT","answer":ANSWER}
 * at the place where the answer arrived: after the events received before
 * it, before those pushed after it (e.g. the tags image). The caller should
 * treat the marker as "start over": what follows is complete again. All of
 * this is bounded by one call deadline (vg_client_set_timeout), not by
 * TIMEOUT_MS. If it fails (nothing reachable in time, or an error answer)
 * the result is VG_ECLOSED with a sentence, and the next
 * vg_client_next_event() tries again; the subscriptions stay remembered. */
int vg_client_next_event(struct vg_client *c, unsigned timeout_ms,
                         json_t **event, char *errmsg);

/* Events dropped because the queue was full. */
unsigned long vg_client_events_dropped(const struct vg_client *c);

/* Send the subscription request REQ (borrowed; "subscribe" or
 * "tags_subscribe", see MESSAGES.md) exactly like vg_client_call() and, when
 * the answer is not an error object, remember a copy of it so that
 * vg_client_next_event() can subscribe again after a failover (see above).
 * One request is remembered per "type": a new one replaces the old, and a
 * request that ends the subscription ("subscribe" with "topics":[];
 * "tags_subscribe" naming no tag and no screen and without "all":true)
 * forgets it. At most 8 types are remembered (VG_EINVAL beyond that, before
 * anything is sent). Returns what vg_client_call() returns; an error answer
 * changes nothing that is remembered. */
int vg_client_subscribe(struct vg_client *c, json_t *req, json_t **resp,
                        char *errmsg);

/* Forget every remembered subscription; vg_client_next_event() then behaves
 * as without them. Nothing is sent: the node keeps pushing to the current
 * connection until it closes or an ending request is sent. */
void vg_client_forget_subscriptions(struct vg_client *c);

#endif /* VG_CLIENT_H */
