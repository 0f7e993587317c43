#!/usr/bin/env python3
"""Operator actions in flight while another project version becomes active
(node/alarm_duty.c: duty_stop, ops_refuse_unproposed, flush_cb): 3 vigild,
one vigil-plcsim, a generated project of --alarms digital inputs each
watched by an alarm, all raised; on loopback (TAP).

Stations acknowledge the alarms one by one, pipelined (--connections, each
with --window unanswered acks, about --rate a second in all, taking alarms
from one pool), while the engineer loads new versions of the project (the
same alarms, another title); a round ends once the new version's engine
runs. The leader's alarm engine stops and is built again for each version.
An ack whose change is already proposed then waits for its command:
libraft commits it or fails it, and the answer says which. Only an ack
whose change was never proposed is answered "nothing was changed" (its
change is dropped with the queue). A vigild before the fix answered every
waiting ack "leadership lost before the alarm action was committed;
nothing was changed" (the node still led), also those whose command then
committed: the station sent it again and heard "unchanged", while the
operator had been told his ack had failed.

1. The window is hit: some reload stopped the engine while actions waited
   for commands in flight (the leader logs "alarms: engine stopped; K
   operator action(s) wait for the N command(s) in flight"); up to
   --reloads versions are loaded until one does.
2. No answer lies: no alarm answered "nothing was changed" is later found
   acknowledged by that ack (a resend answered "unchanged"); only this test
   acknowledges, each alarm from one connection.
3. Exactly once: every alarm answered "acked" exactly once (or, after an
   error that did not claim nothing changed, "unchanged"); every node's
   journal holds one raise and one ack of each alarm; the replicas converge.

Every wait is bounded; processes are killed by PID; temp dirs removed.
"""
import argparse
import os
import re
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil_cluster as vc  # noqa: E402

tap = vc.Tap()
ok = tap.ok

WAITING_LOG = re.compile(r"alarms: engine stopped; (\d+) operator action\(s\) wait "
                         r"for the (\d+) command\(s\) in flight")
NOTHING = "nothing was changed"


class Pool:
    """The alarms not acknowledged yet, shared by the stations of a round:
    they take new ones until the round is closed."""

    def __init__(self, names):
        self.names = list(names)
        self.lock = threading.Lock()
        self.closed = threading.Event()

    def take(self):
        with self.lock:
            if self.closed.is_set() or not self.names:
                return None
            return self.names.pop(0)


class Station(threading.Thread):
    """Acknowledges alarms from POOL one at a time, one every GAP_S with at
    most WINDOW unanswered, at the node LEADER(); an error answer sends the
    ack again a little later (also after the pool is closed). answers[name]
    lists (type, code, message or unchanged reasons)."""

    def __init__(self, k, pool, leader, window, gap_s, deadline):
        super().__init__(daemon=True)
        self.k, self.pool, self.leader = k, pool, leader
        self.window, self.gap_s, self.deadline = window, gap_s, deadline
        self.todo = []  # to be sent again
        self.answers = {}
        self.failure = None

    def next_name(self):
        return self.todo.pop(0) if self.todo else self.pool.take()

    def run(self):
        conn, outstanding = None, {}
        try:
            while time.monotonic() < self.deadline:
                try:
                    if conn is None:
                        conn = vc.Conn(self.leader().client_address, timeout=2.0)
                    while len(outstanding) < self.window:
                        name = self.next_name()
                        if name is None:
                            break
                        rid = conn.send({"type": "alarm_ack", "alarms": [name],
                                         "user": "ann", "station": "st%d" % self.k})
                        outstanding[rid] = name
                        time.sleep(self.gap_s)
                    if not outstanding:
                        break
                    m = conn.recv()
                except (OSError, vc.ProtocolError, ValueError):
                    # Lost connection: what got no answer goes again.
                    self.todo = list(outstanding.values()) + self.todo
                    outstanding.clear()
                    if conn is not None:
                        conn.close()
                    conn = None
                    time.sleep(0.05)
                    continue
                name = outstanding.pop(m.get("id"), None)
                if name is None:
                    continue
                if m.get("type") == "alarms_acked":
                    what = "acked" if name in m.get("acked", []) else "unchanged"
                    detail = [u.get("reason") for u in m.get("unchanged", [])]
                    self.answers.setdefault(name, []).append((what, None, detail))
                else:
                    self.answers.setdefault(name, []).append(
                        ("error", m.get("code"), m.get("message", "")))
                    self.todo.append(name)
            if self.todo or outstanding:
                self.failure = "%d ack(s) unanswered at the deadline" % (
                    len(self.todo) + len(outstanding))
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            self.failure = repr(e)
        finally:
            if conn is not None:
                conn.close()


def write_version(project, k):
    """Project folder PROJECT as version K: the same tags and alarms, another
    title (so another bundle, so a new project version)."""
    path = os.path.join(project, "project.yaml")
    with open(path) as f:
        text = f.read()
    text, n = re.subn(r"title: \{en: Synthetic plant[^}]*\}",
                      "title: {en: Synthetic plant release %d}" % k, text, count=1)
    if n != 1:
        raise RuntimeError("project title not found in %s" % path)
    with open(path, "w") as f:
        f.write(text)


def waiting_lines(node):
    return [(int(a), int(b)) for a, b in WAITING_LOG.findall(node.log())]


def engine_of(node):
    """(state, project version) of NODE's alarm engine (status "alarms"),
    None when it does not answer."""
    try:
        a = node.status(1.0).get("alarms") or {}
    except (OSError, vc.ProtocolError, ValueError):
        return None
    return a.get("state"), a.get("project_version")


def ack_round(args, cluster, project, pool, version):
    """Acknowledge alarms from POOL from args.connections stations, about
    args.rate a second, while version VERSION of the project is loaded;
    the round is closed once the load is done (nothing new taken after
    that; what is out is answered). The stations and the load's outcome."""
    leader = [cluster.wait_ready_leader(timeout=20)[0]]

    def current():
        try:
            leader[0] = cluster.wait_ready_leader(timeout=10, poll=0.05)[0]
        except AssertionError:
            pass
        return leader[0]
    deadline = time.monotonic() + 60
    gap_s = args.connections / float(args.rate)
    stations = [Station(k, pool, current, args.window, gap_s, deadline)
                for k in range(args.connections)]
    write_version(project, version)
    before = (engine_of(current()) or (None, None))[1]

    def new_engine_runs():
        e = engine_of(current())
        return e is not None and e[0] == "evaluating" and e[1] != before
    taken0 = len(pool.names)
    for s in stations:
        s.start()
    # Load once the stations are under way: commands are in flight. The
    # stations go on until the new version's engine runs (status "alarms"
    # says which version it evaluates), so the load's own latency (a
    # vigilctl process, validation, commit, the new poller set) does not
    # decide whether acks flow when the engine is stopped.
    vc.wait_for(lambda: taken0 - len(pool.names) >= args.rate // 10, 20, 0.005)
    load = vc.ctl(args.vigilctl, cluster, "project", "load", project, timeout=60)
    vc.wait_for(new_engine_runs, 20, 0.02)
    pool.closed.set()
    for s in stations:
        s.join(max(0.0, deadline - time.monotonic()) + 1)
    pool.closed.clear()
    if load[0] != 0:
        print("# project load: %s" % (load[1] + load[2]).strip()[-300:])
    return stations, load


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vigild", required=True)
    ap.add_argument("--vigilctl", required=True)
    ap.add_argument("--plcsim", required=True)
    ap.add_argument("--alarms", type=int, default=10000)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--reloads", type=int, default=12)
    ap.add_argument("--rate", type=int, default=2000,
                    help="acks a second the stations send, about")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="vigil-alarm-reload-")
    sim, cluster = None, None
    try:
        port = vc.free_ports(1)[0]
        project = os.path.join(tmp, "project")
        vc.write_synthetic_project(project, port, args.alarms, 0, 100)
        sim = vc.PlcSim(args.plcsim, project, "plc", tmp)
        ok(sim.wait_started(), "vigil-plcsim serves %d inputs" % args.alarms)
        cluster = vc.Cluster(args.vigild, node_args=(
            "--election-timeout", "2000", "--heartbeat", "50",
            "--checkpoint-interval", "300"))
        cluster.__enter__()
        cluster.wait_ready_leader(timeout=20)
        rc, out, err = vc.ctl(args.vigilctl, cluster, "project", "load", project)
        leader = cluster.wait_ready_leader(timeout=20)[0]
        raised = vc.wait_for(lambda: sum(vc.journal_counts(
            leader.client_address, "raised").values()) >= args.alarms, 60, 0.2)
        ok(rc == 0 and raised, "project loaded, its %d alarms raised on leader %d"
           % (args.alarms, leader.id))

        # 1. Rounds of acks, each over alarms of its own from the pool, each
        # with a reload, until a reload met actions waiting for commands.
        names = ["b.%05d.off" % i for i in range(args.alarms)]
        pool = Pool(names)
        answers, failures, loads, hit = {}, [], [], None
        for r in range(args.reloads):
            if len(pool.names) < args.rate:
                break
            before = {n.id: len(waiting_lines(n)) for n in cluster.nodes}
            left = len(pool.names)
            stations, load = ack_round(args, cluster, project, pool, r + 2)
            share = left - len(pool.names)
            loads.append(load[0])
            for s in stations:
                answers.update(s.answers)
                if s.failure:
                    failures.append(s.failure)
            after = {n.id: waiting_lines(n)[before[n.id]:] for n in cluster.nodes}
            hits = [(i, w) for i, ws in after.items() for w in ws]
            print("# round %d: %d acks, load rc %d, engine restarts with actions "
                  "waiting: %s" % (r + 1, share, load[0], hits))
            if hits:
                hit = (r + 1, hits)
                break
        ok(all(rc == 0 for rc in loads), "every version loaded (%s)" % loads)
        ok(not failures, "every station got an answer to every ack (%s)" % failures[:3])
        ok(hit is not None, "1. a reload restarted the engine while actions waited "
           "for their commands (round, [(node, (actions, commands))]): %s" % (hit,))

        # 2. No "nothing was changed" about an ack that was committed.
        lies = []
        for name, got in answers.items():
            for i, (what, code, detail) in enumerate(got):
                if what == "error" and NOTHING in detail and \
                        any(w == "unchanged" for w, _, _ in got[i + 1:]):
                    lies.append((name, got))
                    break
        errors = {}
        for got in answers.values():
            for what, code, detail in got:
                if what == "error":
                    key = "%s: %s" % (code, detail[:80])
                    errors[key] = errors.get(key, 0) + 1
        print("# error answers (resent): %s" % errors)
        ok(not lies, "2. no alarm answered '%s' was acknowledged by that ack "
           "(%d such, e.g. %s)" % (NOTHING, len(lies), lies[:2]))

        # 3. Exactly once.
        acked = sorted(answers)
        bad = []
        for name, got in answers.items():
            kinds = [w for w, _, _ in got]
            if kinds.count("acked") == 1 and "unchanged" not in kinds:
                continue
            uncertain = [d for w, _, d in got if w == "error" and NOTHING not in d]
            if kinds.count("acked") == 0 and kinds.count("unchanged") == 1 and uncertain:
                continue
            bad.append((name, got))
        ok(len(acked) == len(names) - len(pool.names) and not bad,
           "3. each of the %d alarms acknowledged once, by one answer (%d not: %s)"
           % (len(acked), len(bad), bad[:2]))
        cluster.wait_converged(timeout=30)
        for n in cluster.nodes:
            acks = vc.journal_counts(n.client_address, "acked")
            raises = vc.journal_counts(n.client_address, "raised")
            ok(all(acks.get(a) == 1 for a in acked) and len(acks) == len(acked) and
               all(raises.get(a) == 1 for a in names) and len(raises) == len(names),
               "3. node %d: one raise of each alarm, one ack of each acknowledged "
               "(%d acks of %d alarms, %d raises)" % (
                   n.id, sum(acks.values()), len(acks), sum(raises.values())))
    except Exception as e:  # noqa: BLE001 - reported as a TAP failure
        vc.unexpected(tap, e)
    finally:
        vc.teardown(tap, cluster, [sim], [], tmp)
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())
