/* Test helpers for code that delivers on a libuv loop: run the loop until a
 * condition holds or a deadline passes, and pick a free loopback port.
 * Header-only (static functions) so that each test executable that includes
 * it needs no extra library; include after <cmocka.h>, whose asserts
 * loop_free_port uses. */
#ifndef VG_TEST_LOOP_WAIT_H
#define VG_TEST_LOOP_WAIT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

struct loop_waiter {
    bool (*done)(void *);
    void *arg;
    bool timed_out;
};

static void loop_deadline_cb(uv_timer_t *t)
{
    ((struct loop_waiter *)t->data)->timed_out = true;
}

static void loop_check_cb(uv_timer_t *t)
{
    (void)t; /* wakes uv_run so that the predicate is looked at */
}

/* Run LOOP until DONE(ARG) or TIMEOUT_MS. Returns DONE(ARG). */
static inline bool loop_run_until(uv_loop_t *loop, bool (*done)(void *), void *arg,
                                  unsigned timeout_ms)
{
    struct loop_waiter w = {done, arg, false};
    uv_timer_t deadline, check;

    uv_timer_init(loop, &deadline);
    uv_timer_init(loop, &check);
    deadline.data = check.data = &w;
    uv_timer_start(&deadline, loop_deadline_cb, timeout_ms, 0);
    uv_timer_start(&check, loop_check_cb, 5, 5);
    while (!done(arg) && !w.timed_out)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_close((uv_handle_t *)&check, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return done(arg);
}

/* A predicate that never holds: loop_run_until then just runs the loop. */
static inline bool loop_never(void *arg)
{
    (void)arg;
    return false;
}

/* A loopback TCP port that was free a moment ago. */
static inline int loop_free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

#endif /* VG_TEST_LOOP_WAIT_H */
