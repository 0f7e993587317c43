#!/usr/bin/env python3
"""Real-process failover test: 3 vigild on loopback.

Each round: commit commands through the leader, kill -9 the leader, require a
new ready leader within 2 s, check that every command committed so far is
present on every surviving node, restart the killed node, and require all
three to converge to the same applied index and chain hash, and the latest
checkpoint digests to agree. Prints TAP.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil_cluster as vc  # noqa: E402


def put(leader, key, value):
    answer = vc.call(leader.client_address,
                     {"type": "put", "key": key, "value": value}, 2.0)
    if answer.get("type") != "ok":
        raise AssertionError("put %s on node %d: %s" % (key, leader.id, answer))
    return answer["index"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vigild", required=True)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--commands", type=int, default=20)
    ap.add_argument("--node-args", default="",
                    help="extra vigild flags, e.g. small snapshot thresholds so "
                         "that restarted nodes catch up from a snapshot")
    ap.add_argument("--lagging-follower", type=int, default=0, metavar="N",
                    help="finally kill a follower, commit N commands, restart it "
                         "and require it to catch up from a snapshot")
    ap.add_argument("--value-bytes", type=int, default=0, metavar="B",
                    help="pad every value to B bytes (heavy log entries)")
    ap.add_argument("--log-budget-mb", type=int, default=0, metavar="MB",
                    help="finally check that the nodes held their raft log to "
                         "this budget (their --snapshot-log-mb) by snapshots "
                         "taken early")
    args = ap.parse_args()

    def value(i):
        v = "v%d" % i
        return v + "." * (args.value_bytes - len(v)) if args.value_bytes > len(v) else v

    n_tests = args.rounds * 5 + 1 + \
        (3 if args.lagging_follower else 0) + (1 if args.log_budget_mb else 0)
    print("1..%d" % n_tests)
    t = 0
    failover_times = []
    committed = {}
    failed = 0

    def ok(cond, what):
        nonlocal t, failed
        t += 1
        print("%s %d - %s" % ("ok" if cond else "not ok", t, what))
        sys.stdout.flush()
        if not cond:
            failed += 1
        return cond

    node_args = ["--election-timeout", "300", "--heartbeat", "50",
                 "--checkpoint-interval", "300"] + args.node_args.split()
    with vc.Cluster(args.vigild, node_args=node_args) as cluster:
        try:
            leader, took = cluster.wait_ready_leader(timeout=10)
            ok(True, "initial ready leader node %d after %.3f s" % (leader.id, took))
            for r in range(args.rounds):
                for i in range(args.commands):
                    key = "r%d-k%d" % (r, i)
                    committed[key] = value(i)
                    put(leader, key, committed[key])
                old = leader
                old.kill()
                leader, took = cluster.wait_ready_leader(timeout=5, exclude=(old.id,))
                failover_times.append(took)
                ok(took <= 2.0, "round %d: node %d killed, node %d ready after %.3f s"
                   % (r, old.id, leader.id, took))
                # A survivor that was a follower learns the new commit index
                # only from the new leader's next message: wait until the
                # survivors agree before reading their replicas.
                cluster.wait_converged(timeout=5)
                missing = []
                for n in cluster.nodes:
                    if not n.alive():
                        continue
                    c = vc.Conn(n.client_address)
                    try:
                        for k, v in committed.items():
                            a = c.call({"type": "get", "key": k})
                            if a.get("value") != v:
                                missing.append((n.id, k, a.get("value")))
                    finally:
                        c.close()
                ok(not missing, "round %d: all %d committed commands on survivors %s"
                   % (r, len(committed), missing[:3]))
                old.start()
                st = cluster.wait_converged(timeout=15)
                snap = "snapshot" in old.log().split("started:")[-1]
                ok(len(st) == 3, "round %d: restarted node %d caught up%s; applied %d on all"
                   % (r, old.id, " from a snapshot" if snap else "",
                      next(iter(st.values()))["applied_index"]))
                st = cluster.wait_verified(timeout=15)
                digests = {(s["consistency"]["checkpoint_index"],
                            s["consistency"]["state_digest"]) for s in st.values()}
                verdicts = {s["node_id"]: s["consistency"]["verdict"] for s in st.values()}
                ok(len(digests) == 1 and set(verdicts.values()) == {"ok"},
                   "round %d: checkpoint %s digests agree, verdicts %s"
                   % (r, [d[0] for d in digests], verdicts))
                reached, levels = vc.level_reached(cluster)
                ok(reached, "round %d: every node applies at level %d: %s"
                   % (r, vc.wanted_level(), levels))
            if args.lagging_follower:
                leader, _ = cluster.wait_ready_leader(timeout=5)
                lag = next(n for n in cluster.nodes if n.id != leader.id)
                lag.kill()
                for i in range(args.lagging_follower):
                    key = "lag-k%d" % i
                    committed[key] = value(i)
                    put(leader, key, committed[key])
                lag.start()
                st = cluster.wait_converged(timeout=20)
                restored = "state restored from a snapshot" in lag.log()
                ok(len(st) == 3 and restored,
                   "lagging follower %d caught up from a snapshot (restored: %s)"
                   % (lag.id, restored))
                c = vc.Conn(lag.client_address)
                try:
                    bad = [k for k, v in committed.items()
                           if c.call({"type": "get", "key": k}).get("value") != v]
                finally:
                    c.close()
                ok(not bad, "lagging follower has all %d committed commands %s"
                   % (len(committed), bad[:3]))
                # The nodes that stayed up took snapshots of their own, on
                # their pool (status "snapshots"), none of them failed.
                snaps = {s["node_id"]: s.get("snapshots", {}) for s in st.values()}
                kept = [snaps[i] for i in snaps if i != lag.id]
                ok(all(x.get("taken", 0) > 0 for x in kept) and
                   all(x.get("failed", 1) == 0 for x in snaps.values()),
                   "snapshots taken and failed per node: %s"
                   % {i: (x.get("taken"), x.get("failed"), x.get("max_loop_ms"),
                          x.get("last_pool_ms")) for i, x in snaps.items()})
            if args.log_budget_mb:
                # With a threshold no run reaches, only the budget takes
                # snapshots. Once the last one is stored every node's log
                # holds at most its budget (--snapshot-log-mb, staggered by
                # node id: up to 3/8 more), the trailing entries (a quarter
                # of it, but at least 16 entries) and one entry.
                def bound(x):
                    budget = x.get("budget_bytes", 0)
                    if not (args.log_budget_mb << 20) <= budget <= (args.log_budget_mb << 20) * 11 // 8:
                        return -1  # not the budget given
                    trailing = max(budget // 4, 16 * (args.value_bytes + 256))
                    return budget + trailing + args.value_bytes + 4096
                deadline = time.monotonic() + 10.0
                while True:
                    logs = {s["node_id"]: s.get("raft_log", {})
                            for s in cluster.statuses().values()}
                    held = all(x.get("bytes", 1 << 62) <= bound(x) for x in logs.values())
                    if held or time.monotonic() > deadline:
                        break
                    time.sleep(0.2)
                # (the follower restarted last may have taken none since)
                early = sum(1 for x in logs.values() if x.get("early_snapshots", 0) > 0)
                # Staggered: nodes 1-3 have three different budgets.
                staggered = len({x.get("budget_bytes") for x in logs.values()}) == 3
                ok(held and len(logs) == 3 and early >= 2 and staggered,
                   "raft logs held to their budgets by early snapshots "
                   "(bytes, bound, max_bytes, early, trailing): %s"
                   % {i: (x.get("bytes"), bound(x), x.get("max_bytes"),
                          x.get("early_snapshots"), x.get("trailing"))
                      for i, x in logs.items()})
        except Exception as e:  # report as a failure, then clean up
            ok(False, "exception: %r" % (e,))
            cluster.dump_logs()
    while t < n_tests:
        ok(False, "not reached")
    if failover_times:
        s = sorted(failover_times)
        print("# failover seconds: median %.3f max %.3f over %d kills"
              % (vc.percentile(s, 50), s[-1], len(s)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
