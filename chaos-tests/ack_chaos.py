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
With --partitions (root: the test re-executes itself in namespaces of its
own, every node in a network namespace with an address of its own,
chaos-tests/netns.py; elsewhere a TAP skip says why, and the faults above
still run), network partitions too, each healed after 1.5-3 s (longer, up
to 8 s, until the cut showed), by iptables DROP rules in the victim's
namespace against its peers' addresses, every port; the stations and the
PLC still reach it:
  isolate           the leader cut off from both peers, both directions;
  oneway-out        only the leader's packets to its peers dropped (it
                    still hears them: it learns of their higher term);
  oneway-in         only its peers' packets to the leader dropped (they
                    still hear its heartbeats until it steps down);
  follower-isolate  a follower cut off from both peers.
One fault at a time, and the next only once the node answers again (or has
caught up): a majority always remains and can elect.

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
    faults (that they hold the same is in the checkpoint digests);
  - no node ended on its own: every vigild that stopped was stopped by a
    fault (a crash or a fail-stop is named with its signal or status).
With partitions, also:
  - every cut took effect: its rules dropped packets, and within 8 s a
    leader cut off answered not ready and not leader while another node
    answered ready, or a follower cut off answered that it knew no leader
    (times printed);
  - every node cut off caught up within 15 s of the heal;
  - no node cut off answered "acked" to an ack sent to it after the cut
    (no majority could confirm it); what it answered instead is printed;
  - the acks a node answered "acked" while it was cut off are in every
    journal (answered for what it committed before the cut);
  - every rule, namespace, veth and the bridge removed at the end.
Faults of each kind, those that took effect and the packets dropped are in
the TAP comments and the JSON verdict.
Every wait is bounded; processes are killed by PID; temp dirs removed, also
on SIGTERM."""
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
import netns  # noqa: E402

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
        # name -> answers (t read, node, type, code/reasons, t sent). The
        # time read is late by up to a window of paced sends (the station
        # reads once its window is full); the time sent is exact.
        self.history = {}
        self.sends = []    # (t, node id, name) of every send
        self.drops = []    # (t, node id, why) of every connection given up

    def run(self):
        node, conn = None, None
        outstanding = {}  # request id -> name
        sent_at = {}      # request id -> time sent (T0-relative)
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
                    sent_at[rid] = round(time.monotonic() - T0, 3)
                    self.sends.append((sent_at[rid], node.id, name))
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
                     m.get("code") or [u.get("reason") for u in m.get("unchanged", [])],
                     sent_at.pop(m.get("id"), None)))
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
            except (OSError, vc.ProtocolError, ValueError) as e:
                # Lost connection or answer: every ack without an answer is
                # sent again to whoever leads now.
                if node is not None:
                    self.drops.append((round(time.monotonic() - T0, 3), node.id,
                                       "timeout" if isinstance(e, TimeoutError) else
                                       "not_leader" if str(e) == "not the leader" else
                                       "bad frame" if isinstance(e, ValueError) else
                                       "closed"))
                self.resent += len(outstanding)
                self.todo = list(outstanding.values()) + self.todo
                outstanding.clear()
                sent_at.clear()
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.05)
        if conn is not None:
            conn.close()


PROCESS_KINDS = ["kill", "pause", "follow"]
# The partition faults and the direction of the victim's packets to and
# from its peers that they drop (netns.Lab.cut).
PARTITION_KINDS = {"isolate": "both", "oneway-out": "out", "oneway-in": "in",
                   "follower-isolate": "both"}
CUT_MAX_S = 8.0      # a cut lasts until it showed, at most this long
CATCH_UP_S = 15.0    # a healed node has caught up within this


def chaos(cluster, rng, stop, log, lab=None, cuts=None, abort=None):
    """Faults until STOP is set; each is logged as (kind, node id, t). With
    LAB (netns.Lab), partitions too, each recorded in CUTS (partition());
    ABORT cuts a partition's waits short (the test is failing or stopped)."""
    kinds = PROCESS_KINDS + (sorted(PARTITION_KINDS) if lab else [])
    first = list(kinds)
    rng.shuffle(first)  # every kind once, in some order, then at random
    while not stop.wait(rng.uniform(1.5, 3.0)):
        try:
            leader = cluster.wait_ready_leader(timeout=10, poll=0.05)[0]
        except AssertionError:
            continue
        kind = first.pop() if first else rng.choice(kinds)
        if kind in ("follow", "follower-isolate"):
            victim = rng.choice([n for n in cluster.nodes if n is not leader])
        else:
            victim = leader
        log.append((kind, victim.id, time.monotonic()))
        print("# %.3f fault %s on node %d" % (time.monotonic() - T0, kind, victim.id))
        if kind in PARTITION_KINDS:
            hold = rng.uniform(1.5, 3.0)
            try:
                rec = partition(cluster, lab, kind, victim, leader, hold, abort)
            except Exception as e:  # an iptables or ip failure: the fault failed
                rec = {"kind": kind, "node": victim.id, "error": repr(e),
                       "took_effect": False, "caught_up_s": None}
            print("# %.3f healed %s" % (time.monotonic() - T0, json.dumps(rec)))
            cuts.append(rec)
            continue
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


def partition(cluster, lab, kind, victim, leader, hold, abort):
    """Cut VICTIM off its peers (PARTITION_KINDS[KIND]), watch it through
    the client port (the hub still reaches it), heal after HOLD s or once
    the cut showed, whichever is later (at most CUT_MAX_S), then wait
    (bounded) until VICTIM has caught up. What was seen, as a dict.

    A cut of the leader shows when another node answers ready and the
    victim answers not ready: it stepped down (isolate, oneway-in: it hears
    no peer within an election timeout; oneway-out: the peers' higher term
    reaches it). A cut follower shows when it answers that it knows no
    leader (it hears no heartbeat; with pre-vote it cannot disturb the
    leader, which is recorded too)."""
    peers = [n for n in cluster.nodes if n is not victim]
    rec = {"kind": kind, "node": victim.id, "hold": round(hold, 2)}
    cut = lab.cut(victim.id, [p.host for p in peers], PARTITION_KINDS[kind])
    t_cut = time.monotonic()
    rec["t_cut"] = round(t_cut - T0, 3)
    try:
        while time.monotonic() < t_cut + CUT_MAX_S and not abort.is_set():
            dt = round(time.monotonic() - t_cut, 3)
            p = answers(victim)
            if kind == "follower-isolate":
                if p is not None and p.get("leader_id") == 0:
                    rec.setdefault("lost_leader_s", dt)
                if "lost_leader_s" in rec:
                    break
            else:
                if p is not None and not p.get("ready") and p.get("leader_id") != victim.id:
                    rec.setdefault("stepped_down_s", dt)
                for n in peers:
                    q = answers(n)
                    if q is not None and q.get("ready"):
                        rec.setdefault("new_leader_s", dt)
                        rec.setdefault("new_leader", n.id)
                if "stepped_down_s" in rec and "new_leader_s" in rec:
                    break
            time.sleep(0.05)
        abort.wait(max(0.0, t_cut + hold - time.monotonic()))
        if kind == "follower-isolate":
            p = answers(leader)
            rec["leader_kept"] = bool(p and p.get("ready"))
    finally:
        rec["dropped"] = lab.heal(cut)
        t_heal = time.monotonic()
        rec["t_heal"] = round(t_heal - T0, 3)
    rec["took_effect"] = rec["dropped"] > 0 and (
        "lost_leader_s" in rec if kind == "follower-isolate"
        else "stepped_down_s" in rec and "new_leader_s" in rec)

    # Caught up: the healed node follows a leader and has applied what
    # the others had committed when the cut was healed.
    def commit_index(n):
        try:
            return vc.call(n.client_address, {"type": "status", "brief": True},
                           0.5).get("commit_index")
        except (OSError, vc.ProtocolError, ValueError):
            return None
    target = max([c for c in map(commit_index, peers) if c is not None] or [0])

    def caught_up():
        if abort.is_set():
            return True
        p = answers(victim)
        if p is None or not p.get("leader_id"):
            return False
        try:
            s = vc.call(victim.client_address, {"type": "status", "brief": True}, 0.5)
        except (OSError, vc.ProtocolError, ValueError):
            return False
        return s.get("applied_index", 0) >= target
    up = vc.wait_for(caught_up, CATCH_UP_S, 0.05) and not abort.is_set()
    rec["caught_up_s"] = round(time.monotonic() - t_heal, 3) if up else None
    if abort.is_set():
        rec["aborted"] = True
    return rec


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


def partition_summary(cuts):
    """{kind: {faults, took_effect, caught_up}} and the packets dropped."""
    out = {}
    for c in cuts:
        k = out.setdefault(c["kind"], {"faults": 0, "took_effect": 0, "caught_up": 0,
                                       "dropped": 0})
        k["faults"] += 1
        k["took_effect"] += bool(c.get("took_effect"))
        k["caught_up"] += c.get("caught_up_s") is not None
        k["dropped"] += c.get("dropped", 0)
    return out


def acked_while_cut(cuts, workers):
    """Acks a node answered "acked" that the station read while the node was
    cut off from its peers (the answer may have come a little earlier)."""
    out = set()
    for c in cuts:
        if "t_heal" not in c:
            continue
        for w in workers:
            for name, hist in w.history.items():
                if any(node == c["node"] and c["t_cut"] <= t <= c["t_heal"]
                       and typ == "alarms_acked" and not why
                       for t, node, typ, why, _ in hist):
                    out.add(name)
    return out


def sent_during_cuts(cuts, workers):
    """Per cut: the acks sent to the node cut off after its cut, and what
    it answered them: {"sent", "acked", "unchanged", errors by code,
    "gave up: WHY" (the station's connections to it given up, and why),
    "unread" (the station gave up the connection first: a timeout, a lost
    connection or an earlier not_leader; sent again elsewhere)}."""
    out = []
    for c in cuts:
        if "t_heal" not in c:
            continue
        got = {"sent": 0}
        for w in workers:
            for t, node, name in w.sends:
                if node != c["node"] or not c["t_cut"] <= t <= c["t_heal"]:
                    continue
                got["sent"] += 1
                a = [(typ, why) for _, n, typ, why, ts in w.history.get(name, [])
                     if n == node and ts == t]
                if not a:
                    key = "unread"
                elif a[0][0] == "alarms_acked":
                    key = "unchanged" if a[0][1] else "acked"
                else:
                    key = a[0][1] or a[0][0]
                got[key] = got.get(key, 0) + 1
            for t, node, why in w.drops:
                if node == c["node"] and c["t_cut"] <= t <= c["t_heal"] + 2.0:
                    got["gave up: " + why] = got.get("gave up: " + why, 0) + 1
        out.append((c, got))
    return out


def partition_checks(cuts, workers):
    """TAP checks that the partitions really partitioned, and how the
    stations fared (printed)."""
    summary = partition_summary(cuts)
    print("# partitions: %s" % json.dumps(summary, sort_keys=True))
    for c in cuts:
        print("# cut %s" % json.dumps(c, sort_keys=True))
    bad = [c for c in cuts if not c.get("took_effect")]
    ok(cuts and not bad,
       "%d of %d partitions took effect (dropped packets; a leader cut off "
       "stepped down and another node led; a follower cut off lost its leader): "
       "%s; failed %s" % (len(cuts) - len(bad), len(cuts),
                          {k: "%d/%d" % (v["took_effect"], v["faults"])
                           for k, v in sorted(summary.items())}, bad))
    leader_cuts = [c for c in cuts if c["kind"] != "follower-isolate"
                   and c.get("took_effect")]
    if leader_cuts:
        step = sorted(c["stepped_down_s"] for c in leader_cuts)
        elect = sorted(c["new_leader_s"] for c in leader_cuts)
        print("# leader cut off: stepped down after %.2f-%.2f s (median %.2f), "
              "another node ready after %.2f-%.2f s (median %.2f)"
              % (step[0], step[-1], vc.percentile(step, 50), elect[0], elect[-1],
                 vc.percentile(elect, 50)))
    late = [c for c in cuts if c.get("caught_up_s") is None]
    ok(cuts and not late,
       "every node cut off caught up within %.0f s of the heal (%s)"
       % (CATCH_UP_S, [c.get("caught_up_s") for c in cuts]))
    # An ack sent to a node after it was cut off cannot be committed while
    # the cut lasts (its entry reaches no peer, or no peer's answer reaches
    # it), and the node steps down before the heal: answering it "acked"
    # would be an answer for what no majority confirmed.
    seen = sent_during_cuts(cuts, workers)
    others = sum(1 for c in cuts if "t_heal" in c for w in workers
                 for t, node, _ in w.sends
                 if node != c["node"] and c["t_cut"] <= t <= c["t_heal"])
    for c, got in seen:
        if got["sent"]:
            print("# %s of node %d: acks sent to it after the cut %s"
                  % (c["kind"], c["node"], json.dumps(got, sort_keys=True)))
    wrong = [(c["kind"], c["node"], got["acked"]) for c, got in seen if got.get("acked")]
    ok(not wrong,
       "no node cut off from its peers answered 'acked' to an ack sent after the "
       "cut (%d such acks sent to it, %d to the other nodes meanwhile; wrong %s)"
       % (sum(got["sent"] for _, got in seen), others, wrong))


def death_name(rc):
    """An exit status as words: the signal's name, or the code."""
    if rc is not None and rc < 0:
        try:
            return signal.Signals(-rc).name
        except ValueError:
            return "signal %d" % -rc
    return "exit %s" % rc


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
    ap.add_argument("--partitions", action="store_true",
                    help="network partitions too (root; re-executes itself in "
                    "network namespaces of its own, chaos-tests/netns.py)")
    args = ap.parse_args()
    # A partitioned run re-executes itself here (same PID, same argv).
    no_netns = netns.enter() if args.partitions else None
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    print("# seed %d" % seed)
    # Killed by meson's timeout: the finally below still runs (processes,
    # rules, namespaces).
    signal.signal(signal.SIGTERM, lambda sig, frame: sys.exit(128 + sig))

    tmp = tempfile.mkdtemp(prefix="vigil-chaos-")
    sim, cluster, lab, monkey, finished = None, None, None, None, False
    stop, abort = threading.Event(), threading.Event()
    faults, cuts = [], []
    try:
        if args.partitions and no_netns:
            tap.skip("partition faults (%s): %s; process faults only"
                     % (", ".join(sorted(PARTITION_KINDS)), no_netns))
        elif args.partitions:
            lab = netns.Lab(3)
            print("# nodes in network namespaces %s at %s, stations and PLC at %s"
                  % (lab.names, lab.hosts, lab.hub))
        hub = lab.hub if lab else "127.0.0.1"
        port = vc.free_ports(1)[0]
        project = os.path.join(tmp, "project")
        vc.write_synthetic_project(project, port, args.alarms, args.archived, 100,
                                   host=hub)
        sim = vc.PlcSim(args.plcsim, project, "plc", tmp,
                        listen="%s:%d" % (hub, port) if lab else None)
        ok(sim.wait_started(), "vigil-plcsim serves %d inputs and %d registers"
           % (args.alarms, args.archived))
        cluster = vc.Cluster(args.vigild, node_args=(
            "--election-timeout", "300", "--heartbeat", "50",
            "--checkpoint-interval", "500", "--scrub-every-s", "2"),
            hosts=lab.hosts if lab else None, wrap=lab.wrap if lab else None)
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
        monkey = threading.Thread(target=chaos, args=(cluster, rng, stop, faults,
                                                      lab, cuts, abort), daemon=True)
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
        want = set(PROCESS_KINDS) | (set(PARTITION_KINDS) if lab else set())
        ok(len(faults) >= len(want) + 1 and want <= set(kinds),
           "%d faults while the acks ran, each kind at least once" % len(faults))
        if lab:
            partition_checks(cuts, workers)

        for n in cluster.nodes:
            if not n.alive():
                n.start()
        st = cluster.wait_verified(timeout=60)
        ok(len(st) == 3 and {s["consistency"]["verdict"] for s in st.values()} == {"ok"},
           "all replicas verified identical after the faults")

        lost = dup = twice = 0
        cut_acked = acked_while_cut(cuts, workers)
        for n in cluster.nodes:
            acks = vc.journal_counts(n.client_address, "acked")
            raises = vc.journal_counts(n.client_address, "raised")
            n_lost = len([a for a in answered if acks.get(a, 0) == 0])
            n_missing = len([a for a in names if acks.get(a, 0) == 0])
            n_dup = len([a for a, c in acks.items() if c > 1])
            n_twice = len([a for a, c in raises.items() if c > 1])
            n_cut_lost = len([a for a in cut_acked if acks.get(a, 0) == 0])
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
            if lab:
                ok(n_cut_lost == 0,
                   "node %d: the %d acks a node answered acked while it was cut off "
                   "are in the journal (lost %d)" % (n.id, len(cut_acked), n_cut_lost))
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
        # The defences against libraft 0.15 at work (README), from the logs,
        # which span every restart: the lines that report AppendEntries cut
        # below the snapshot, and InstallSnapshots held while the node
        # stored a snapshot of its own.
        print("# log lines of AppendEntries cut %s, of InstallSnapshots held %s"
              " (per node)"
              % ({n.id: n.log().count("AppendEntries reaching below") for n in cluster.nodes},
                 {n.id: n.log().count("holding an InstallSnapshot") for n in cluster.nodes}))
        # (The archive is still running: the nodes are compared by the
        # checkpoint digests above, which cover its summary.)
        counts = {n.id: archived(n) for n in cluster.nodes}
        ok(min(counts.values()) > first,
           "the archive went on through the faults: %d samples before, %s after"
           % (first, counts))
        # A node that ended on its own (not killed by a fault: a crash, or a
        # fail-stop) is a defect even when the invariants above held: the
        # cluster only had one node fewer meanwhile (a cut of the leader then
        # found no majority to elect another).
        deaths = {n.id: [(round(t - T0, 1), death_name(rc)) for t, rc in n.note_death()]
                  for n in cluster.nodes}
        ok(not any(deaths.values()),
           "no node ended on its own (crash or fail-stop): %s"
           % {i: d for i, d in deaths.items() if d})
        sys.stderr.write(json.dumps({
            "chaos": "acks", "seed": seed, "faults": len(faults),
            "level": sorted({(x.get("cluster_level") or {}).get("committed")
                             for x in s.values()}, key=str),
            "kinds": {k: kinds.count(k) for k in set(kinds)}, "seconds": round(took, 1),
            "acks_answered": len(answered), "lost": lost, "duplicated": dup,
            "raised_twice": twice, "diverged": len(damaged) + len(
                [x for x in st.values() if x["consistency"]["verdict"] != "ok"]),
            "partitions": partition_summary(cuts) if lab else
            ("skipped: %s" % no_netns if args.partitions else None)}) + "\n")
        finished = True
    except Exception as e:
        vc.unexpected(tap, e)
    finally:
        stop.set()
        if not finished:
            abort.set()
        if monkey is not None and lab is not None:
            monkey.join(CUT_MAX_S + CATCH_UP_S + 5)  # it heals its cut
        vc.teardown(tap, cluster, [sim], (), tmp)
        if lab is not None:
            left = lab.rules_left()
            errors = lab.close()
            ok(not left and not errors,
               "every cut healed, namespaces, veths and bridge removed (rules left "
               "%s, errors %s)" % (left, errors))
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())
