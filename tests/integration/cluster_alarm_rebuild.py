#!/usr/bin/env python3
"""The leader's alarm engine after a change it could not commit
(node/alarm_duty.c: pending_add, commit_action, need_engine, the rebuild in
node_alarms_update): 3 vigild, one vigil-plcsim, a generated project of 4
digital inputs each watched by an alarm, all raised; on loopback (TAP).

A change that cannot be encoded is never committed while the engine has
already made it, so the engine is rebuilt from the replicated table. Since
the project validator keeps alarm messages within the format (the input
that reached this before), every node runs with --test-refuse-alarm-change
T, a hook that takes operators' changes of alarm T as refused (see
refused_for_test in node/alarm_duty.c for why a hook).

1. Nothing waiting for a commit: an ack of T, and then a shelve of T, are
   answered "unavailable", nothing changed (a vigild before the fix
   answered "acked" with index null, and "shelved"); the log says why; the
   engine is rebuilt (another "restoring the states" line) and an ack of
   another alarm then works.
2. Commands in flight (both followers stopped with SIGSTOP; the election
   timeout, 2 s, keeps the leader leading meanwhile): an ack of A2 waits
   for its commit; an ack of [A3, T] is answered "unavailable" and A3 is
   not acknowledged by it (the action is undone as a whole); an ack of A3
   is answered "unavailable ... rebuilding the alarm engine after a change
   that was not committed, once N command(s) in flight are done". The
   followers continue: A2's ack is answered with its index, the engine is
   rebuilt, and an ack of A3 works.
3. Nothing lost or doubled: the replicas converge; A1-A3 are acknowledged,
   T raised and not shelved; the journal has one raise of each alarm, one
   ack of A1-A3, none of T, no shelve.

Every wait is bounded; processes are killed by PID; temp dirs removed.
"""
import argparse
import os
import re
import signal
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil_cluster as vc  # noqa: E402

tap = vc.Tap()
ok = tap.ok

A1, A2, A3, T = "b.00000.off", "b.00001.off", "b.00002.off", "b.00003.off"
WHO = {"user": "ann", "station": "op1"}
REFUSED_LOG = ("alarms: a change cannot be committed (alarm change of '%s' refused "
               "for a test (--test-refuse-alarm-change))" % T)
RESTORING = "alarms: restoring the states of"


def ack(conn_or_addr, names):
    msg = dict({"type": "alarm_ack", "alarms": names}, **WHO)
    if isinstance(conn_or_addr, vc.Conn):
        return conn_or_addr.call(msg)
    return vc.call(conn_or_addr, msg, timeout=2.0)


def refused_whole(answer):
    """An action answered as undone: unavailable, nothing changed."""
    return answer.get("type") == "error" and answer.get("code") == "unavailable" and \
        "nothing was changed" in answer.get("message", "") and \
        "refused for a test" in answer.get("message", "")


def acked_once_available(addr, name, timeout=10):
    """Send an ack of NAME until it is not answered "unavailable" (the
    engine being rebuilt), bounded; the last answer and how many times it
    was unavailable."""
    tries = [0]

    def attempt():
        a = ack(addr, [name])
        if a.get("code") == "unavailable":
            tries[0] += 1
            return None
        return a
    a = vc.wait_for(attempt, timeout, 0.05)
    return a or {"timed out": True}, tries[0]


def acked(answer, name):
    return answer.get("type") == "alarms_acked" and answer.get("acked") == [name] and \
        isinstance(answer.get("index"), int)


def nothing_waiting(leader, case):
    st = vc.wait_for(lambda: (lambda a: a if a.get("in_flight") == 0 and
                              a.get("queued") == 0 and a.get("state") == "evaluating"
                              else None)(leader.status(1.0).get("alarms", {})), 10, 0.05)
    ok(st is not None, "%s. the leader evaluates with nothing queued or in flight" % case)


def case_idle(leader):
    addr = leader.client_address
    nothing_waiting(leader, "1")
    before = leader.log().count(RESTORING)
    a = ack(addr, [T])
    ok(refused_whole(a), "1. an ack of %s whose change is refused: unavailable, nothing "
       "changed: %s" % (T, a))
    a = vc.call(addr, dict({"type": "alarm_shelve", "alarm": T, "duration_s": 600,
                            "reason": "test"}, **WHO), timeout=2.0)
    ok(refused_whole(a), "1. a shelve of %s whose change is refused: unavailable, "
       "nothing changed: %s" % (T, a))
    log = leader.log()
    ok(log.count(REFUSED_LOG) == 2, "1. the leader logged both refusals: %r" % REFUSED_LOG)
    a, tries = acked_once_available(addr, A1)
    ok(acked(a, A1), "1. then an ack of %s works (after %d unavailable answer(s)): %s"
       % (A1, tries, a))
    again = leader.log().count(RESTORING) - before
    ok(again >= 1, "1. the engine was rebuilt from the replicated table "
       "(%d more restore(s))" % again)
    st = vc.alarm_states(addr).get(T, {})
    ok(st.get("status") == "unack_active" and st.get("shelved") is False,
       "1. %s is still raised, unacknowledged and not shelved: %s, shelved %s"
       % (T, st.get("status"), st.get("shelved")))


def case_in_flight(cluster, leader, conns):
    addr = leader.client_address
    nothing_waiting(leader, "2")
    followers = [n for n in cluster.nodes if n is not leader]
    c1, c2, c3 = (vc.Conn(addr, 5.0) for _ in range(3))
    conns += [c1, c2, c3]
    term = leader.status(1.0).get("term")
    for f in followers:
        f.proc.send_signal(signal.SIGSTOP)
    try:
        id1 = c1.send(dict({"type": "alarm_ack", "alarms": [A2]}, **WHO))
        flying = vc.wait_for(lambda: leader.status(1.0).get("alarms", {}).get(
            "in_flight", 0) >= 1, 5, 0.01)
        ok(flying, "2. followers stopped: the ack of %s is proposed and waits for "
           "its commit" % A2)
        a2 = ack(c2, [A3, T])
        ok(refused_whole(a2), "2. an ack of [%s, %s] while it waits: unavailable, "
           "nothing changed: %s" % (A3, T, a2))
        a3 = ack(c3, [A3])
        ok(a3.get("code") == "unavailable" and re.search(
            r"rebuilding the alarm engine after a change that was not committed, "
            r"once [1-9]\d* command\(s\) in flight are done", a3.get("message", "")),
           "2. an ack of %s meanwhile: unavailable until the engine is rebuilt: %s"
           % (A3, a3))
        st = leader.status(1.0)
        ok(st.get("state") == "leader" and st.get("ready") is True and
           st.get("term") == term,
           "2. meanwhile node %d still leads, ready, in term %s: %s, %s"
           % (leader.id, term, st.get("state"), st.get("term")))
    finally:
        for f in followers:
            f.proc.send_signal(signal.SIGCONT)
    a1 = c1.recv()
    ok(a1.get("id") == id1 and acked(a1, A2),
       "2. followers continued: the ack of %s is committed and answered: %s" % (A2, a1))
    a, tries = acked_once_available(addr, A3)
    ok(acked(a, A3), "2. the engine rebuilt, an ack of %s works (after %d unavailable "
       "answer(s)), so the ack of [%s, %s] had not acknowledged it: %s"
       % (A3, tries, A3, T, a))


def final_state(cluster, leader):
    st = cluster.wait_converged(timeout=15)
    ok(len(st) == 3, "3. the three replicas applied the same commands (index %s)"
       % {i: s["applied_index"] for i, s in st.items()})
    addr = leader.client_address
    want = {A1: "ack_active", A2: "ack_active", A3: "ack_active", T: "unack_active"}
    got = {k: (v["status"], v["shelved"], v["out_of_service"])
           for k, v in vc.alarm_states(addr).items() if not k.startswith("$")}
    ok(got == {k: (v, False, False) for k, v in want.items()},
       "3. the committed states are as expected: %s" % got)
    raised = vc.journal_counts(addr, "raised")
    acks = vc.journal_counts(addr, "acked")
    shelves = vc.journal_counts(addr, "shelved")
    ok(raised == {A1: 1, A2: 1, A3: 1, T: 1},
       "3. the journal has one raise of each alarm (none again after the rebuilds): %s"
       % raised)
    ok(acks == {A1: 1, A2: 1, A3: 1} and shelves == {},
       "3. one ack of each of %s, %s, %s, none of %s, no shelve: %s, %s"
       % (A1, A2, A3, T, acks, shelves))
    ok(leader.log().count(REFUSED_LOG) == 3, "3. three refusals logged in all")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vigild", required=True)
    ap.add_argument("--vigilctl", required=True)
    ap.add_argument("--plcsim", required=True)
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="vigil-alarm-rebuild-")
    sim, cluster, conns = None, None, []
    try:
        port = vc.free_ports(1)[0]
        project = os.path.join(tmp, "project")
        vc.write_synthetic_project(project, port, 4, 0, 100)
        sim = vc.PlcSim(args.plcsim, project, "plc", tmp)
        ok(sim.wait_started(), "vigil-plcsim serves 4 inputs")
        cluster = vc.Cluster(args.vigild, node_args=(
            "--election-timeout", "2000", "--heartbeat", "50",
            "--checkpoint-interval", "300", "--test-refuse-alarm-change", T))
        cluster.__enter__()
        cluster.wait_ready_leader(timeout=20)
        rc, out, err = vc.ctl(args.vigilctl, cluster, "project", "load", project)
        leader = cluster.wait_ready_leader(timeout=20)[0]
        raised = vc.wait_for(lambda: all(
            vc.alarm_states(leader.client_address).get(a, {}).get("status") ==
            "unack_active" for a in (A1, A2, A3, T)), 15, 0.1)
        ok(rc == 0 and raised, "project loaded, its 4 alarms raised on leader %d"
           % leader.id)
        case_idle(leader)
        case_in_flight(cluster, leader, conns)
        final_state(cluster, leader)
    except Exception as e:  # noqa: BLE001 - reported as a TAP failure
        vc.unexpected(tap, e)
    finally:
        vc.teardown(tap, cluster, [sim], conns, tmp)
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())
