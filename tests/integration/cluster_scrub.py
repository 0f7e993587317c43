#!/usr/bin/env python3
"""The self-check's read budget (vigild --scrub-budget-ms, node/scrub.c) on
a real node: one vigild, vigilctl, one vigil-plcsim feeding a generated project of
archived noisy registers, on loopback (TAP).

1. Bad values of --scrub-budget-ms exit 2 naming the flag; --help lists it.
2. Default budget (120 s): the node self-checks every second while the
   archive fills; once it holds --samples samples and the feed has stopped,
   a check started afterwards reads everything and finds it whole (runs,
   no failure, no damage, every archived row counted), and the log has no
   "self-check stopped". How long that check read (last_ms) is the
   precondition of 3.
3. The same node restarted with --scrub-budget-ms 1: its checks are stopped
   and fail ("failed" counts them, "runs" none, no damage and no divergence:
   nothing was learned), the log says "self-check stopped after 1 ms: the
   archive is too large to recount in one read (... interrupted ...)", and
   the next check comes a period (--scrub-every-s 1) after the last one
   ended, not at once (the gap between the two log lines).

Why 3 is not a race. node_scrub_update looks at the budget on every loop
iteration; an idle node iterates at least every 20 ms (its timer), so a
check is stopped within about 20 ms of its start. The test stops the feed,
lets the archive settle, and requires in 2 that a whole check of this
archive took at least --min-read-ms (default 100 ms, five times that
wait) on this machine; with fewer samples it feeds more first (bounded). A
check that finished before the loop looked would show as a run, and the
test fail, only if the loop stalled for most of that time.

Every wait is bounded; processes are killed by PID; temp dirs removed.
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil_cluster as vc  # noqa: E402

tap = vc.Tap()
ok = tap.ok

STOPPED = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) vigild\[\d+\] self-check stopped "
                     r"after (\S+ m?s): the archive is too large to recount in one "
                     r"read \((.*)\)$", re.M)


def flags(vigild):
    for bad in ("0", "86400001", "-5", "1.5", "abc", ""):
        p = subprocess.run([vigild, "--scrub-budget-ms", bad], capture_output=True,
                           text=True, timeout=20)
        ok(p.returncode == 2 and "--scrub-budget-ms" in p.stderr,
           "--scrub-budget-ms %r: exit 2 naming the flag (%d: %s)"
           % (bad, p.returncode, p.stderr.strip()))
    p = subprocess.run([vigild, "--help"], capture_output=True, text=True, timeout=20)
    ok(p.returncode == 0 and "--scrub-budget-ms MS" in p.stdout and
       "default 120000" in p.stdout, "--help lists --scrub-budget-ms and its default")


def try_status(node):
    try:
        return node.status(2.0)
    except (OSError, vc.ProtocolError, ValueError):
        return {}


def archived(node):
    try:
        return vc.call(node.client_address, {"type": "history_info"}, 5)["archive"]
    except (OSError, vc.ProtocolError, ValueError, KeyError):
        return {}


def feed(node, sim_start, target, deadline):
    """Run a vigil-plcsim until NODE's archive holds TARGET samples (or the
    monotonic DEADLINE passes), then stop it and wait until the archive and
    its settling are still; the sample count."""
    sim = sim_start()
    try:
        if not sim.wait_started():
            raise AssertionError("vigil-plcsim did not start: " + sim.stderr()[-300:])
        vc.wait_for(lambda: archived(node).get("samples", 0) >= target,
                    max(0.0, deadline - time.monotonic()), 0.5)
    finally:
        sim.kill()
    last = [None]

    def still():
        now = (archived(node).get("samples"), try_status(node).get("settle", {}).get("moved"))
        same = now == last[0] and now[0] is not None
        last[0] = now
        return same
    vc.wait_for(still, 30, 1.5)
    return archived(node).get("samples", 0)


def whole_check(node, timeout=30):
    """(True, NODE's scrub status) once it completed a check that began
    after the call (two runs more), else (False, its scrub status then)."""
    runs0 = try_status(node).get("scrub", {}).get("runs", 0)
    done = vc.wait_for(lambda: (lambda s: s if s.get("runs", 0) >= runs0 + 2 else None)(
        try_status(node).get("scrub", {})), timeout, 0.1)
    return (True, done) if done else (False, try_status(node).get("scrub", {}))


def log_ms(m):
    h, mi, s, ms = (int(x) for x in m.group(1, 2, 3, 4))
    return ((h * 60 + mi) * 60 + s) * 1000 + ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vigild", required=True)
    ap.add_argument("--vigilctl", required=True)
    ap.add_argument("--plcsim", required=True)
    ap.add_argument("--samples", type=int, default=2000000,
                    help="samples to archive before measuring (more are fed when "
                         "a check of them reads for less than --min-read-ms)")
    ap.add_argument("--min-read-ms", type=float, default=100.0)
    ap.add_argument("--feed-s", type=float, default=90.0,
                    help="the longest the archive is fed, in all")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="vigil-scrub-")
    cluster = None
    try:
        flags(args.vigild)

        port = vc.free_ports(1)[0]
        project = os.path.join(tmp, "project")
        # 20 000 noisy registers archived on change every 100 ms: ~200k
        # samples a second offered.
        vc.write_synthetic_project(project, port, 0, 20000, 100)
        cluster = vc.Cluster(args.vigild, n=1, node_args=(
            "--election-timeout", "300", "--heartbeat", "50",
            "--checkpoint-interval", "300", "--scrub-every-s", "1"))
        cluster.__enter__()
        node = cluster.nodes[0]
        cluster.wait_ready_leader(timeout=15)
        rc, out, err = vc.ctl(args.vigilctl, cluster, "project", "load", project,
                              timeout=120)
        ok(rc == 0, "project of 20 000 archived registers loaded: %s"
           % (out + err).strip()[-200:])

        # 2. Default budget: fill the archive until a whole check of it
        # reads long enough, on this machine, for 3 not to be a race.
        deadline = time.monotonic() + args.feed_s
        target, samples, t0 = args.samples, 0, time.monotonic()
        while True:
            samples = feed(node, lambda: vc.PlcSim(args.plcsim, project, "plc", tmp),
                           target, deadline)
            whole, done = whole_check(node)
            if not whole or done.get("last_ms", 0) >= args.min_read_ms or \
                    time.monotonic() >= deadline:
                break
            # Reads grow with the samples: ask for enough, and some.
            target = int(samples * 1.5 * args.min_read_ms / max(done["last_ms"], 1.0))
            print("# a check of %d samples read for %.0f ms: feeding up to %d"
                  % (samples, done["last_ms"], target))
        print("# archive of %d samples fed in %.1f s" % (samples, time.monotonic() - t0))
        ok(whole and done.get("budget_ms") == 120000 and done.get("failed") == 0 and
           done.get("damaged") is False and done.get("last_rows", 0) >= samples and
           "add up" in done.get("message", "") and
           "self-check stopped" not in node.log(),
           "default budget: a whole check of %d samples completes (%s runs, %s failed, "
           "%s rows, %.0f ms): %s" % (samples, done.get("runs"), done.get("failed"),
                                      done.get("last_rows"), done.get("last_ms", 0),
                                      done.get("message")))
        ok(whole and done.get("last_ms", 0) >= args.min_read_ms,
           "precondition: that check read for %.0f ms, at least %.0f ms (many loop "
           "iterations of an idle node)" % (done.get("last_ms", 0), args.min_read_ms))

        # 3. Budget 1 ms.
        code = node.kill(signal.SIGTERM)
        ok(code == 0, "SIGTERM: exit %s" % code)
        seen = len(node.log())
        node.start(["--scrub-budget-ms", "1"])
        st = vc.wait_for(lambda: (lambda s: s if s.get("scrub", {}).get("failed", 0) >= 2
                                  else None)(try_status(node)), 20, 0.1) or try_status(node)
        sc = st.get("scrub", {})
        ok(sc.get("budget_ms") == 1 and sc.get("failed", 0) >= 2 and sc.get("runs") == 0
           and sc.get("damaged") is False and "interrupted" in sc.get("message", "")
           and st.get("consistency", {}).get("verdict") != "diverged",
           "--scrub-budget-ms 1: checks are stopped and fail, none runs, nothing "
           "found (budget %s, %s failed, %s runs, verdict %s): %s"
           % (sc.get("budget_ms"), sc.get("failed"), sc.get("runs"),
              st.get("consistency", {}).get("verdict"), sc.get("message")))
        log = node.log()[seen:]
        lines = list(STOPPED.finditer(log))
        ok(len(lines) >= 2 and all(m.group(5) == "1 ms" and
                                   re.match(r"self-check at index \d+: interrupted",
                                            m.group(6)) for m in lines[:2]) and
           "REPLICA DIVERGED" not in log and "self-check failed" not in log,
           "the log says why, once per stopped check: %s"
           % [m.group(0)[13:] for m in lines[:2]])
        if len(lines) >= 2:
            gap = log_ms(lines[1]) - log_ms(lines[0])
            gap += 86400000 if gap < 0 else 0
            # The next check starts a period (1 s) after the last one ended
            # and is stopped at least 1 ms later; log times are in ms.
            ok(995 <= gap < 3000,
               "the next check came a period after the stopped one: %d ms apart" % gap)
        else:
            ok(False, "no two stopped checks to time")
    except Exception as e:  # noqa: BLE001 - reported as a TAP failure
        vc.unexpected(tap, e)
    finally:
        vc.teardown(tap, cluster=cluster, tmp=tmp)
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())
