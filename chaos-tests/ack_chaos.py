#!/usr/bin/env python3
"""Chaos scenario 1: acknowledgments and the archive through repeated
failures of the leader and of followers (TAP, and a JSON verdict line on
stderr).

Real processes on loopback: 3 vigild (self-checks every 2 s), one
vigil-plcsim, a generated project of --alarms discrete inputs each watched
by an alarm (all raised at start) and --archived noisy registers archived
on change. --workers stations acknowledge the alarms one by one, at most
--window unanswered each, paced so that the acks span the faults. A station
always talks to the node it believes leads; on an error or a lost
connection it finds the ready leader again and sends every ack that got no
answer once more, as an operator's station would.

Meanwhile, every 1.5-3 s, one fault: each kind once in a random order,
then chosen at random (seeded, --seed; printed):
  kill    the leader is killed (-9) and restarted a second later;
  pause   the leader is stopped (SIGSTOP) for 1.5 s, then continued;
  follow  a follower is killed (-9) and restarted a second later.
At most one node is down at a time, so a majority always remains.

Invariants, checked on every node once the faults stop and the replicas
have converged:
  - no acknowledgment lost: every ack answered "acked" is in the journal,
    and every alarm is acknowledged (the workers resend until answered);
  - none duplicated: exactly one "acked" entry per alarm in the journal,
    however often it was resent;
  - no alarm raised twice across the failovers: one "raised" entry each;
  - no replica diverged: all verified identical at a consistency
    checkpoint, and every node's self-check (the rows the digest covers
    only through summaries: journal, audit, archive) found nothing;
  - the archive went on: every node holds more samples than before the
    faults (that they hold the same is in the checkpoint digests).
Every wait is bounded; processes are killed by PID; temp dirs removed."""
import argparse
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))
import vigil_cluster as vc  # noqa: E402

tap = vc.Tap()
ok = tap.ok
T0 = time.monotonic()


class Leader:
    """The node the stations believe leads, shared by the workers: whoever
    meets an error looks for the ready leader again."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.lock = threading.Lock()
        self.node = None

    def get(self, stale=None):
        with self.lock:
            if self.node is None or self.node is stale:
                try:
                    self.node = self.cluster.wait_ready_leader(timeout=10, poll=0.05)[0]
                except AssertionError:
                    self.node = None
            return self.node


class Worker(threading.Thread):
    """One station acknowledging NAMES one at a time."""

    def __init__(self, k, names, leader, window, gap_s, deadline):
        super().__init__(daemon=True)
        self.k, self.leader, self.window, self.gap_s = k, leader, window, gap_s
        self.deadline = deadline
        self.todo = list(names)      # not sent, or sent and unanswered
        self.acked = set()           # answered "acked"
        self.unchanged = set()       # answered "unchanged" (a resend)
        self.resent = 0
        self.errors = {}
        self.reasons = {}  # why answers said unchanged
        self.other = []    # answers that were neither
        self.history = {}  # name -> answers (t, node, type, code/reasons)

    def run(self):
        node, conn = None, None
        outstanding = {}  # request id -> name
        while (self.todo or outstanding) and time.monotonic() < self.deadline:
            try:
                if conn is None:
                    node = self.leader.get(node)
                    if node is None:
                        continue
                    conn = vc.Conn(node.client_address, timeout=1.0)
                while self.todo and len(outstanding) < self.window:
                    name = self.todo[0]
                    rid = conn.next_id
                    outstanding[rid] = name  # before the send, which may fail
                    self.todo.pop(0)
                    conn.send({"type": "alarm_ack", "alarms": [name], "id": rid,
                               "user": "chaos", "station": "w%d" % self.k})
                    conn.next_id += 1
                    time.sleep(self.gap_s)
                m = conn.recv()
                name = outstanding.pop(m.get("id"), None)
                if name is None:
                    continue
                self.history.setdefault(name, []).append(
                    (round(time.monotonic() - T0, 3), node.id, m.get("type"),
                     m.get("code") or [u.get("reason") for u in m.get("unchanged", [])]))
                if m.get("type") == "alarms_acked" and name in m.get("acked", []):
                    self.acked.add(name)
                elif m.get("type") == "alarms_acked" and any(
                        u.get("alarm") == name for u in m.get("unchanged", [])):
                    self.unchanged.add(name)
                    for u in m.get("unchanged", []):
                        self.reasons[u.get("reason")] = self.reasons.get(u.get("reason"), 0) + 1
                elif m.get("type") == "alarms_acked":
                    self.other.append((name, m))
                else:
                    # not_leader, unavailable, ...: nothing changed; again.
                    code = m.get("code") or m.get("type")
                    self.errors[code] = self.errors.get(code, 0) + 1
                    self.todo.append(name)
                    self.resent += 1
                    if m.get("code") == "not_leader":
                        raise vc.ProtocolError("not the leader")
                    time.sleep(0.05)
            except (OSError, vc.ProtocolError, ValueError):
                # Lost connection or answer: every ack without an answer is
                # sent again to whoever leads now.
                self.resent += len(outstanding)
                self.todo = list(outstanding.values()) + self.todo
                outstanding.clear()
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.05)
        if conn is not None:
            conn.close()


def chaos(cluster, rng, stop, log):
    """Faults until STOP is set; each is logged as (kind, node id, t)."""
    first = ["kill", "pause", "follow"]
    rng.shuffle(first)  # every kind once, in some order, then at random
    while not stop.wait(rng.uniform(1.5, 3.0)):
        try:
            leader = cluster.wait_ready_leader(timeout=10, poll=0.05)[0]
        except AssertionError:
            continue
        kind = first.pop() if first else rng.choice(["kill", "pause", "follow"])
        if kind == "follow":
            victim = rng.choice([n for n in cluster.nodes if n is not leader])
        else:
            victim = leader
        log.append((kind, victim.id, time.monotonic()))
        print("# %.3f fault %s on node %d" % (time.monotonic() - T0, kind, victim.id))
        if kind == "pause":
            victim.proc.send_signal(signal.SIGSTOP)
            time.sleep(1.5)
            victim.proc.send_signal(signal.SIGCONT)
        else:
            victim.kill()
            time.sleep(1.0)
            victim.start()
        # The next fault only once the node answers again: one down at a
        # time (it may still be catching up; a majority is up to date).
        vc.wait_for(lambda: victim.alive() and bool(answers(victim)), 10, 0.1)


def answers(node):
    try:
        return vc.call(node.client_address, {"type": "ping"}, 0.3)
    except (OSError, vc.ProtocolError, ValueError):
        return None


def status_of(addr, alarm):
    """The committed status of ALARM at ADDR (alarms_list, every page)."""
    after = None
    for _ in range(100):
        q = {"type": "alarms_list"}
        if after:
            q["after"] = after
        lst = vc.call(addr, q, timeout=10)
        for e in lst.get("alarms", []):
            if e["alarm"] == alarm:
                return e["status"]
        if not lst.get("more") or not lst.get("alarms"):
            return None
        after = lst["alarms"][-1]["alarm"]
    return None


def archived(node):
    info = vc.call(node.client_address, {"type": "history_info"}, timeout=30)
    return (info.get("archive") or {}).get("samples")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vigild", required=True)
    ap.add_argument("--plcsim", required=True)
    ap.add_argument("--vigilctl", required=True)
    ap.add_argument("--alarms", type=int, default=3000)
    ap.add_argument("--archived", type=int, default=200)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--window", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=20.0,
                    help="about how long the acks take (they are paced)")
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    print("# seed %d" % seed)

    tmp = tempfile.mkdtemp(prefix="vigil-chaos-")
    sim, cluster = None, None
    stop = threading.Event()
    faults = []
    try:
        port = vc.free_ports(1)[0]
        project = os.path.join(tmp, "project")
        vc.write_synthetic_project(project, port, args.alarms, args.archived, 100)
        sim = vc.PlcSim(args.plcsim, project, "plc", tmp)
        ok(sim.wait_started(), "vigil-plcsim serves %d inputs and %d registers"
           % (args.alarms, args.archived))
        cluster = vc.Cluster(args.vigild, node_args=(
            "--election-timeout", "300", "--heartbeat", "50",
            "--checkpoint-interval", "500", "--scrub-every-s", "2"))
        cluster.__enter__()
        cluster.wait_ready_leader(timeout=15)
        rc, out, err = vc.ctl(args.vigilctl, cluster, "project", "load", project,
                              timeout=120)
        ok(rc == 0, "project loaded")
        addr = cluster.wait_ready_leader(timeout=15)[0].client_address
        raised = vc.wait_for(lambda: len(vc.journal_counts(addr, "raised")) >= args.alarms,
                             60, 0.5)
        ok(raised, "all %d alarms raised" % args.alarms)
        first = min(archived(n) or 0 for n in cluster.nodes)

        names = ["b.%05d.off" % i for i in range(args.alarms)]
        leader = Leader(cluster)
        gap = args.seconds * args.workers / max(1, args.alarms)
        deadline = time.monotonic() + args.seconds * 4 + 60
        workers = [Worker(k, names[k::args.workers], leader, args.window, gap, deadline)
                   for k in range(args.workers)]
        monkey = threading.Thread(target=chaos, args=(cluster, rng, stop, faults),
                                  daemon=True)
        t0 = time.monotonic()
        monkey.start()
        for w in workers:
            w.start()
        for w in workers:
            w.join(max(1.0, deadline - time.monotonic()))
        stop.set()
        monkey.join(30)
        took = time.monotonic() - t0
        kinds = [f[0] for f in faults]
        answered = set().union(*(w.acked for w in workers))
        resends = set().union(*(w.unchanged for w in workers))
        print("# %d faults in %.1f s: %s; %d acks answered acked, %d answered "
              "unchanged (resent after a lost answer), %d resends; errors %s"
              % (len(faults), took, {k: kinds.count(k) for k in set(kinds)},
                 len(answered), len(resends), sum(w.resent for w in workers),
                 {k: v for w in workers for k, v in w.errors.items()}))
        for w in workers:
            if w.reasons or w.other:
                print("# worker %d: unchanged because %s; other answers %s"
                      % (w.k, w.reasons, json.dumps(w.other[:3])))
        ok(all(not w.is_alive() and not w.todo for w in workers),
           "every station got an answer for every ack")
        ok(len(faults) >= 4 and {"kill", "pause", "follow"} <= set(kinds),
           "%d faults while the acks ran, each kind at least once" % len(faults))

        for n in cluster.nodes:
            if not n.alive():
                n.start()
        st = cluster.wait_verified(timeout=60)
        ok(len(st) == 3 and {s["consistency"]["verdict"] for s in st.values()} == {"ok"},
           "all replicas verified identical after the faults")

        lost = dup = twice = 0
        for n in cluster.nodes:
            acks = vc.journal_counts(n.client_address, "acked")
            raises = vc.journal_counts(n.client_address, "raised")
            n_lost = len([a for a in answered if acks.get(a, 0) == 0])
            n_missing = len([a for a in names if acks.get(a, 0) == 0])
            n_dup = len([a for a, c in acks.items() if c > 1])
            n_twice = len([a for a, c in raises.items() if c > 1])
            lost, dup, twice = lost + n_lost, dup + n_dup, twice + n_twice
            for a in [a for a in names if acks.get(a, 0) == 0][:2]:
                print("# answers for %s: %s" % (a, [h for w in workers for h in
                                                    w.history.get(a, [])]))
                j = vc.call(n.client_address, {"type": "alarm_journal", "alarm": a,
                                               "limit": 20}, timeout=10)
                print("# node %d: %s, not acknowledged in the journal: %s; state %s" % (
                    n.id, a, json.dumps([(e["cause"], e["from"], e["to"], e["term"],
                                          e["node"], e["user"]) for e in
                                         j.get("entries", [])]),
                    status_of(n.client_address, a)))
            ok(n_lost == 0 and n_missing == 0,
               "node %d: every ack in the journal (%d answered acked, lost %d, "
               "alarms without an ack %d)" % (n.id, len(answered), n_lost, n_missing))
            ok(n_dup == 0 and len(acks) == args.alarms,
               "node %d: one ack per alarm (%d alarms acked twice)" % (n.id, n_dup))
            ok(n_twice == 0 and len(raises) == args.alarms,
               "node %d: one raise per alarm (%d raised twice, %d raised)"
               % (n.id, n_twice, len(raises)))

        def scrubbed():
            s = cluster.statuses(2.0)
            done = len(s) == 3 and all(x["scrub"]["last_index"] >= x["applied_index"] - 50
                                       and x["scrub"]["runs"] > 0 for x in s.values())
            return s if done else None
        s = vc.wait_for(scrubbed, 30, 0.5) or cluster.statuses(2.0)
        damaged = [i for i, x in s.items() if x["scrub"]["damaged"]]
        ok(len(s) == 3 and not damaged and all(x["scrub"]["runs"] > 0 for x in s.values()),
           "every node's self-check after the faults finds nothing: %s" %
           {i: (x["scrub"]["runs"], x["scrub"]["damaged"], x["scrub"]["last_rows"])
            for i, x in s.items()})

        print("# apply level %s; snapshots taken %s, restored from a leader's"
              " snapshot %s (per node)"
              % ({i: (x.get("cluster_level") or {}).get("committed")
                  for i, x in s.items()},
                 {i: x["snapshots"]["taken"] for i, x in s.items()},
                 {n.id: n.log().count("state restored from a snapshot")
                  for n in cluster.nodes}))
        # (The archive is still running: the nodes are compared by the
        # checkpoint digests above, which cover its summary.)
        counts = {n.id: archived(n) for n in cluster.nodes}
        ok(min(counts.values()) > first,
           "the archive went on through the faults: %d samples before, %s after"
           % (first, counts))
        sys.stderr.write(json.dumps({
            "chaos": "acks", "seed": seed, "faults": len(faults),
            "level": sorted({(x.get("cluster_level") or {}).get("committed")
                             for x in s.values()}, key=str),
            "kinds": {k: kinds.count(k) for k in set(kinds)}, "seconds": round(took, 1),
            "acks_answered": len(answered), "lost": lost, "duplicated": dup,
            "raised_twice": twice, "diverged": len(damaged) + len(
                [x for x in st.values() if x["consistency"]["verdict"] != "ok"])}) + "\n")
    except Exception as e:
        vc.unexpected(tap, e)
    finally:
        stop.set()
        vc.teardown(tap, cluster, [sim], (), tmp)
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())
