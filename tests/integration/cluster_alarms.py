#!/usr/bin/env python3
"""Alarms end to end: 3 vigild, 2 vigil-plcsim (waterworks), stations as
raw protocol connections and vigilctl, all on loopback (TAP).

1. The simulator drives a value over a limit (--force: a pump fault); the
   alarm appears, unacknowledged, on two subscribed stations.
2. Station A acknowledges; station B sees it acknowledged, with A's user and
   station.
3. The leader is killed (-9) right after the ack was answered; on the new
   leader the alarm is still acknowledged, it was not raised again, and the
   journal holds exactly one ack and one raise. An ack sent again (as a
   client would after losing the answer) changes nothing.
4. An on-delay that is running when the leader dies completes on the new
   leader at the time it was due, not a whole delay later.
5. Shelving with a duration: an alarm raised while shelved is not
   annunciated; when the shelve runs out it is annunciated afresh. Out of
   service and back.
6. Ack of all unacknowledged alarms in a plant section, and only those.
7. System alarms: an unreachable PLC, a node that is down.
8. The journal: filters (time, section, priority, tag, state) and paging;
   the audit trail has the operator's actions; vigilctl alarms list / ack /
   journal and vigilctl audit.
9. Bad requests get an error that names the problem.
10. An ack that changes nothing because an earlier ack of the same alarm
    is not committed yet waits for that commit: with both followers killed,
    the ack sent again gets no "unchanged" answer (a vigild before the
    fix answered "nothing_to_acknowledge" at once); resent once they are
    back, the journal holds one ack. Its own cluster of 4 alarms.
11. Takeover with thousands of alarms (its own cluster, one vigil-plcsim, a
    generated project of --takeover-alarms digital inputs, each watched by
    an alarm, all raised): the leader is killed (-9); the new leader
    restores every state in slices without stalling its loop (its status
    "loop" stays below the election timeout), evaluates again, raises no
    alarm a second time (one raise per alarm in the journal), keeps its
    leadership, and answers an ack sent while it was not evaluating yet with
    a retryable error, then acknowledges it.

Every wait is bounded; processes are killed by PID; temp dirs removed.
"""
import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import vigil_cluster as vc  # noqa: E402

tap = vc.Tap()
ok = tap.ok

FAULT1 = "intake.well1.pump.fault"
FAULT1_ALARM = "intake.well1.pump.fault.on"
FAULT2 = "intake.well2.pump.fault"
FAULT2_ALARM = "intake.well2.pump.fault.on"
FAULT3_ALARM = "intake.well3.pump.fault.on"
FAULT3 = "intake.well3.pump.fault"
LEVEL = "intake.well4.level"                 # low_low 5 m, on-delay 2 s
LEVEL_ALARM = "intake.well4.level.low_low"
BLOWER = "treatment.aeration.blower1.fault"  # other section (aeration)
BLOWER_ALARM = "treatment.aeration.blower1.fault.on"


class Forces:
    """The --force file of one simulator."""

    def __init__(self, path):
        self.path = path
        self.values = {}
        self.write()

    def write(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            for k, v in self.values.items():
                f.write("%s %s\n" % (k, v))
        os.replace(tmp, self.path)

    def set(self, tag, value):
        self.values[tag] = value
        self.write()

    def release(self, tag):
        self.values.pop(tag, None)
        self.write()


def wait_alarm(conn, name, pred, timeout):
    """Read CONN's alarm events until an entry of NAME satisfies PRED;
    return (entry, monotonic time) or (None, None)."""
    end = time.monotonic() + timeout
    conn.send({"type": "ping"})
    conn.sock.settimeout(0.2)
    try:
        while time.monotonic() < end:
            try:
                m = conn.recv()
            except (TimeoutError, OSError):
                continue
            if m.get("topic") == "alarms" and m.get("event") in ("changes", "image"):
                for e in m["alarms"]:
                    if e["alarm"] == name and pred(e):
                        return e, time.monotonic()
    finally:
        conn.sock.settimeout(2.0)
    return None, None


def subscribe(addr, **filters):
    c = vc.Conn(addr)
    ans = c.call(dict({"type": "alarms_subscribe"}, **filters))
    if ans.get("type") != "alarms_subscribed":
        raise AssertionError("alarms_subscribe: %s" % ans)
    img = c.recv()
    if img.get("event") != "image":
        raise AssertionError("no image after alarms_subscribed: %s" % img)
    return c, ans, img


def journal(addr, **q):
    return vc.call(addr, dict({"type": "alarm_journal"}, **q), timeout=2.0)


def alarm_state(addr, name):
    ans = vc.call(addr, {"type": "alarms_list", "all": True}, timeout=2.0)
    for e in ans.get("alarms", []):
        if e["alarm"] == name:
            return e
    return None


def takeover_case(args):
    """10. (see the docstring)"""
    n_alarms = args.takeover_alarms
    election_ms = 300  # vigil_cluster's default --election-timeout
    tmp = tempfile.mkdtemp(prefix="vigil-alarms-takeover-")
    sim, cluster = None, None
    try:
        port = vc.free_ports(1)[0]
        project = os.path.join(tmp, "project")
        vc.write_synthetic_project(project, port, n_alarms, 0, 100)
        sim = vc.PlcSim(args.plcsim, project, "plc", tmp)
        ok(sim.wait_started(), "takeover: vigil-plcsim serves %d digital inputs" %
           n_alarms)
        cluster = vc.Cluster(args.vigild)
        cluster.__enter__()
        cluster.wait_ready_leader(timeout=15)
        rc, out, err = vc.ctl(args.vigilctl, cluster, "project", "load", project,
                              timeout=120)
        ok(rc == 0, "takeover: project with %d alarms loaded: %s" %
           (n_alarms, (out + err).strip()[-200:]))

        def all_raised():
            try:
                addr = cluster.wait_ready_leader(timeout=5)[0].client_address
                return len(vc.journal_counts(addr, "raised")) >= n_alarms
            except (OSError, vc.ProtocolError, ValueError, AssertionError):
                return False
        ok(vc.wait_for(all_raised, 60, poll=0.5),
           "takeover: all %d alarms raised and committed" % n_alarms)
        cluster.wait_converged(timeout=30)

        old = cluster.wait_ready_leader(timeout=5)[0]
        target = "b.%05d.off" % (n_alarms // 2)
        target2 = "b.%05d.off" % (n_alarms // 2 + 1)
        t_kill = time.time()
        t0 = time.monotonic()
        old.kill()
        # vigilctl acks another one at the same moment: the client library
        # follows the new leader and sends again while it is "unavailable".
        ctl_result = {}

        def ctl_ack():
            ctl_result["r"] = vc.ctl(args.vigilctl, cluster, "alarms", "ack",
                                     target2, "--user", "bob", timeout=60)
        ctl_thread = threading.Thread(target=ctl_ack)
        ctl_thread.start()
        # Ack one alarm at whichever node becomes ready, at once and again
        # until it is done: what a station does after a failover.
        errors, acked, new = [], None, None
        while time.monotonic() < t0 + 20 and acked is None:
            for n in cluster.nodes:
                if not n.alive():
                    continue
                try:
                    a = vc.call(n.client_address,
                                {"type": "alarm_ack", "alarms": [target],
                                 "user": "ann", "station": "op1"}, timeout=2)
                except (OSError, vc.ProtocolError, ValueError):
                    continue
                if a.get("type") == "alarms_acked":
                    acked, new = a, n
                    break
                if a.get("code") != "not_leader":
                    errors.append(a)
            time.sleep(0.005)
        t_acked = time.monotonic() - t0
        ok(new is not None and acked.get("acked") == [target],
           "takeover: the ack sent right after the kill is done by the new "
           "leader %s %.2f s after the kill" % (new.id if new else None, t_acked))
        ctl_thread.join(timeout=70)
        rc2, out2, err2 = ctl_result.get("r", (None, "", "vigilctl did not finish"))
        ok(rc2 == 0 and target2 in out2,
           "takeover: vigilctl alarms ack sent at the kill acknowledged %s "
           "(the client library sent it again while unavailable): %s" %
           (target2, (out2 + err2).strip()[-200:]))
        odd = [e for e in errors
               if not (e.get("code") == "unavailable" and
                       "does not evaluate alarms yet" in e.get("message", "") and
                       "send it again" in e.get("message", ""))]
        ok(not odd,
           "takeover: until then (%d answers) it said it does not evaluate alarms "
           "yet and to send it again: %s%s" %
           (len(errors), errors[-1].get("message") if errors else "-",
            "; but %d answers did not, e.g. %s" % (len(odd), odd[:2]) if odd else ""))
        st = new.status(2.0) if new else {}
        term = st.get("term")
        al = st.get("alarms", {})
        ok(al.get("state") == "evaluating" and al.get("restored") == n_alarms and
           al.get("removed") == 0,
           "takeover: every stored state restored (%s of %d) in %s ms and %s loop "
           "iterations; evaluating %.2f s after the kill" %
           (al.get("restored"), n_alarms, al.get("restore_ms"),
            al.get("restore_iterations"),
            al.get("evaluating_since_ms", 0) / 1000.0 - t_kill))
        time.sleep(1.0)  # the readings of the first poll cycles are evaluated
        counts = vc.journal_counts(new.client_address, "raised")
        twice = [a for a, k in counts.items() if k != 1]
        ok(len(counts) == n_alarms and not twice,
           "takeover: one raise per alarm in the journal (%d alarms, %d raised "
           "more than once)" % (len(counts), len(twice)))
        j = journal(new.client_address, alarm=target)
        ok([e["cause"] for e in j.get("entries", [])] == ["acked", "raised"],
           "takeover: %s raised once and acknowledged once" % target)
        st = new.status(2.0)
        loop = st.get("loop", {})
        ok(st.get("ready") and st.get("term") == term and
           loop.get("max_ms", 1e9) < election_ms,
           "takeover: node %d still leads, and its longest loop iteration over "
           "the last %s s was %s ms (p99 %s ms), below the election timeout of "
           "%d ms" % (new.id, loop.get("window_s"), loop.get("max_ms"),
                      loop.get("p99_ms"), election_ms))
        # One thread cannot use more CPU than wall time, and apply is a part
        # of the iteration (1 ms of rounding either way).
        ok(0 < loop.get("max_cpu_ms", -1) <= loop.get("max_ms", 0) + 1 and
           0 < loop.get("max_apply_ms", -1) <= loop.get("max_ms", 0) + 1 and
           loop.get("max_apply_commands", 0) >= 1,
           "takeover: in one iteration at most %s ms on the CPU and %s ms "
           "applying (%s commands), none longer than %s ms"
           % (loop.get("max_cpu_ms"), loop.get("max_apply_ms"),
              loop.get("max_apply_commands"), loop.get("max_ms")))
    except Exception as e:  # report, then clean up
        vc.unexpected(tap, e)
    finally:
        vc.teardown(tap, cluster, [sim], (), tmp)


def premature_unchanged_case(args):
    """An ack that changes nothing (the alarm is already acknowledged, by an
    ack not committed yet) is not answered before that ack is committed:
    with both followers down nothing commits, so the same ack sent again
    must get no "unchanged" answer, and after the followers are back and
    the ack is resent, the journal holds exactly one ack."""
    tmp = tempfile.mkdtemp(prefix="vigil-alarms-unchanged-")
    sim, cluster, conns = None, None, []
    try:
        port = vc.free_ports(1)[0]
        project = os.path.join(tmp, "project")
        vc.write_synthetic_project(project, port, 4, 0, 100)
        sim = vc.PlcSim(args.plcsim, project, "plc", tmp)
        ok(sim.wait_started(), "unchanged case: vigil-plcsim serves 4 inputs")
        cluster = vc.Cluster(args.vigild)
        cluster.__enter__()
        cluster.wait_ready_leader(timeout=15)
        rc, out, err = vc.ctl(args.vigilctl, cluster, "project", "load", project)
        leader = cluster.wait_ready_leader(timeout=15)[0]
        name = "b.00001.off"
        ok(rc == 0 and vc.wait_for(lambda: (alarm_state(leader.client_address, name)
                                    or {}).get("status") == "unack_active", 15, 0.1),
           "unchanged case: %s raised" % name)
        for f in [n for n in cluster.nodes if n is not leader]:
            f.kill()
        # One station sends the ack twice (a resend): a connection's requests
        # are taken in order, so the second is judged after the first.
        a = vc.Conn(leader.client_address, 2.0)
        conns.append(a)
        first = a.send({"type": "alarm_ack", "alarms": [name], "user": "ann",
                        "station": "a"})
        second = a.send({"type": "alarm_ack", "alarms": [name], "user": "ann",
                         "station": "a"})
        answers = {}
        try:
            while len(answers) < 2:
                m = a.recv()
                answers[m.get("id")] = m
        except OSError:
            pass  # nothing more within 2 s
        answer = answers.get(second)
        ok(first != second and (answer is None or answer.get("type") == "error"),
           "with no majority, the resent ack of %s gets no 'unchanged' answer "
           "before the first is committed: %s" % (name, answer))
        for f in [n for n in cluster.nodes if n is not leader]:
            f.start()

        def resent():
            try:
                node = cluster.wait_ready_leader(timeout=10)[0]
                m = vc.call(node.client_address, {"type": "alarm_ack", "alarms": [name],
                                                  "user": "bob", "station": "b"}, 2)
            except (OSError, vc.ProtocolError, AssertionError):
                return None
            return m if m.get("type") == "alarms_acked" else None
        m = vc.wait_for(resent, 30, 0.2)
        cluster.wait_converged(timeout=15)
        node = cluster.wait_ready_leader(timeout=10)[0]
        acks = journal(node.client_address, alarm=name, cause="acked").get("entries", [])
        ok(m is not None and len(acks) == 1,
           "resent once the followers are back: %s; the journal holds %d ack(s)"
           % (m and (m["acked"], m["unchanged"]), len(acks)))
    except Exception as e:  # report, then clean up
        vc.unexpected(tap, e)
    finally:
        vc.teardown(tap, cluster, [sim], conns, tmp)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vigild", required=True)
    ap.add_argument("--vigilctl", required=True)
    ap.add_argument("--plcsim", required=True)
    ap.add_argument("--takeover-alarms", type=int, default=10000,
                    help="alarms of the takeover case (0: skip it)")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="vigil-alarms-")
    sims, cluster, conns = [], None, []
    try:
        ports = vc.free_ports(2)
        project = vc.copy_project(os.path.join(tmp, "waterworks"), ports)
        forces = [Forces(os.path.join(tmp, n + ".force")) for n in ("intake", "treatment")]

        def start_sim(i):
            name = ("plc-intake", "plc-treatment")[i]
            return vc.PlcSim(args.plcsim, project, name, tmp,
                             extra=("--force", forces[i].path, "--seed", "5"))
        sims = [start_sim(0), start_sim(1)]
        ok(all(s.wait_started() for s in sims), "two vigil-plcsim serve waterworks")
        cluster = vc.Cluster(args.vigild)
        cluster.__enter__()
        cluster.wait_ready_leader(timeout=15)
        rc, out, err = vc.ctl(args.vigilctl, cluster, "project", "load", project)
        ok(rc == 0, "project loaded: %s" % (out + err).strip()[-200:])
        leader, term = vc.polling_leader(cluster)

        # 1. Raised on two stations.
        a, ans_a, img_a = subscribe(leader.client_address)
        b, ans_b, img_b = subscribe(leader.client_address)
        conns += [a, b]
        ok(ans_a.get("count") == len(img_a["alarms"]) and
           all(e["alarm"] != FAULT1_ALARM for e in img_a["alarms"]),
           "two stations subscribed; the image (%d alarms) matches the count "
           "and does not hold %s" % (len(img_a["alarms"]), FAULT1_ALARM))
        t_force = time.time()
        forces[0].set(FAULT1, 1)
        ea, _ = wait_alarm(a, FAULT1_ALARM, lambda e: e["status"] == "unack_active", 5)
        eb, _ = wait_alarm(b, FAULT1_ALARM, lambda e: e["status"] == "unack_active", 5)
        ok(ea is not None and eb is not None and ea["cause"] == "raised" and
           ea["priority"] == 2 and ea["section"] == "wells" and
           ea["message"].get("de") and ea["active"] is True,
           "a forced pump fault is raised on both stations: %s" %
           ({k: (ea or {}).get(k) for k in ("status", "cause", "priority",
                                            "section", "message")}))
        ok(ea is not None and abs(ea["at_ms"] / 1000.0 - t_force) < 3,
           "raised with the time it happened (%.2f s after the force)" %
           (((ea or {}).get("at_ms", 0) / 1000.0) - t_force))

        # 2. Ack on A, seen on B.
        ack = a.call({"type": "alarm_ack", "alarms": [FAULT1_ALARM],
                      "user": "ann", "station": "op1"})
        ok(ack.get("type") == "alarms_acked" and ack.get("acked") == [FAULT1_ALARM]
           and isinstance(ack.get("index"), int),
           "station A acknowledges: %s" % ack)
        # Kill the leader right after the answer: the ack is committed.
        old_leader = leader
        leader.kill()
        t_kill = time.monotonic()
        eb, tb = wait_alarm(b, FAULT1_ALARM, lambda e: e["status"] == "ack_active", 2)
        ok(eb is not None and eb.get("cause") == "acked" and eb.get("user") == "ann"
           and eb.get("station") == "op1",
           "station B saw it acknowledged by ann at op1 (pushed before the kill)")

        # 3. On the new leader.
        leader, term = vc.polling_leader(cluster, timeout=15)
        st = alarm_state(leader.client_address, FAULT1_ALARM)
        ok(st is not None and st["status"] == "ack_active",
           "new leader %d (term %d): %s is still acknowledged (%s), %.1f s "
           "after the kill" % (leader.id, term, FAULT1_ALARM, (st or {}).get("status"),
                               time.monotonic() - t_kill))
        time.sleep(1.0)  # the new leader has evaluated its first readings
        j = journal(leader.client_address, alarm=FAULT1_ALARM)
        causes = [e["cause"] for e in j.get("entries", [])]
        ok(causes.count("acked") == 1 and causes.count("raised") == 1,
           "the journal has exactly one raise and one ack: %s" % causes)
        again = vc.call(leader.client_address,
                        {"type": "alarm_ack", "alarms": [FAULT1_ALARM],
                         "user": "ann", "station": "op1"}, timeout=2)
        ok(again.get("type") == "alarms_acked" and again.get("acked") == [] and
           again.get("unchanged") == [{"alarm": FAULT1_ALARM,
                                       "reason": "nothing_to_acknowledge"}],
           "the ack sent again changes nothing: %s" % again)
        j = journal(leader.client_address, alarm=FAULT1_ALARM, cause="acked")
        ok(len(j.get("entries", [])) == 1, "still one ack in the journal")
        for c in conns:
            c.close()
        conns = []
        old_leader.start()

        # Release: cleared, and since it was acknowledged, normal.
        a, _, _ = subscribe(leader.client_address)
        conns.append(a)
        forces[0].release(FAULT1)
        e, _ = wait_alarm(a, FAULT1_ALARM, lambda e: e["status"] == "normal", 5)
        ok(e is not None and e["cause"] == "cleared",
           "released: cleared and normal (it was acknowledged)")

        # 4. An on-delay running across a failover.
        forces[0].set(LEVEL, 1.0)
        t0 = time.time()
        time.sleep(1.0)
        leader.kill()
        killed = leader
        leader, term = vc.polling_leader(cluster, timeout=15)
        a.close()
        a, _, img = subscribe(leader.client_address)
        conns.append(a)
        hit = [x for x in img["alarms"] if x["alarm"] == LEVEL_ALARM]
        if hit and hit[0]["status"] == "unack_active":
            e = hit[0]
        else:
            e, _ = wait_alarm(a, LEVEL_ALARM, lambda e: e["status"] == "unack_active", 8)
        raised_after = (e["raised_ms"] / 1000.0 - t0) if e else None
        ok(e is not None and 1.5 <= raised_after <= 3.2,
           "an on-delay of 2 s started before the kill completes on the new "
           "leader %.2f s after the value went low (due at ~2 s, not 2 s after "
           "the failover)" % (raised_after or -1))
        j = journal(leader.client_address, alarm=LEVEL_ALARM, cause="raised")
        ok(len(j.get("entries", [])) == 1, "raised once")
        forces[0].release(LEVEL)
        killed.start()

        # 5. Shelve.
        sh = a.call({"type": "alarm_shelve", "alarm": FAULT2_ALARM, "duration_s": 3,
                     "reason": "pump under maintenance", "user": "bob",
                     "station": "op2"})
        ok(sh.get("type") == "alarm_shelved" and sh.get("changed") is True and
           sh.get("until_ms", 0) > 0, "shelved for 3 s: %s" % sh)
        forces[0].set(FAULT2, 1)
        vc.wait_for(lambda: (alarm_state(leader.client_address, FAULT2_ALARM)
                             or {}).get("active"), 3)
        st = alarm_state(leader.client_address, FAULT2_ALARM)
        ok(st is not None and st["status"] == "normal" and st["shelved"] and
           st["active"] and st["shelve_reason"] == "pump under maintenance",
           "raised while shelved: active but not annunciated (%s)" %
           {k: (st or {}).get(k) for k in ("status", "shelved", "active")})
        e, _ = wait_alarm(a, FAULT2_ALARM,
                          lambda e: e["status"] == "unack_active" and not e["shelved"], 6)
        ok(e is not None and e["cause"] == "expired",
           "the shelve ran out: annunciated afresh (%s)" % (e or {}).get("cause"))
        oos = a.call({"type": "alarm_service", "alarm": FAULT2_ALARM,
                      "in_service": False, "user": "bob", "reason": "sensor swap"})
        st = alarm_state(leader.client_address, FAULT2_ALARM)
        ok(oos.get("type") == "alarm_service_set" and oos.get("changed") and
           st["out_of_service"] and st["status"] == "normal",
           "taken out of service: %s" % oos.get("type"))
        back = a.call({"type": "alarm_service", "alarm": FAULT2_ALARM,
                       "in_service": True, "user": "bob"})
        st = alarm_state(leader.client_address, FAULT2_ALARM)
        ok(back.get("changed") and st["status"] == "unack_active",
           "back in service while still active: annunciated again")
        forces[0].release(FAULT2)

        # 6. Ack all in a section.
        forces[0].set(FAULT3, 1)
        forces[1].set(BLOWER, 1)
        wait_alarm(a, BLOWER_ALARM, lambda e: e["status"] == "unack_active", 5)
        wait_alarm(a, FAULT3_ALARM, lambda e: e["status"] == "unack_active", 5)
        sec = a.call({"type": "alarm_ack", "sections": ["intake"], "user": "cy"})
        acked = sec.get("acked", [])
        st_blower = alarm_state(leader.client_address, BLOWER_ALARM)
        ok(FAULT3_ALARM in acked and FAULT2_ALARM in acked and
           BLOWER_ALARM not in acked and st_blower["status"] == "unack_active",
           "ack of section intake (and its sub-sections) acknowledges %s, "
           "leaves %s" % (acked, BLOWER_ALARM))
        forces[0].release(FAULT3)
        forces[1].release(BLOWER)

        # 7. System alarms.
        sims[1].kill()
        e, _ = wait_alarm(a, "$plc.plc-treatment",
                          lambda e: e["status"] == "unack_active", 10)
        ok(e is not None and e["priority"] == 2 and "unreachable" in
           e["message"]["en"], "a stopped PLC raises $plc.plc-treatment: %s" %
           ((e or {}).get("message")))
        sims[1] = start_sim(1)
        sims[1].wait_started()
        e, _ = wait_alarm(a, "$plc.plc-treatment", lambda e: not e["active"], 10)
        ok(e is not None, "back: the PLC alarm clears")
        follower = [n for n in cluster.nodes if n.id != leader.id][0]
        follower.kill()
        name = "$node.%d" % follower.id
        e, _ = wait_alarm(a, name, lambda e: e["status"] == "unack_active", 10)
        ok(e is not None, "a killed follower raises %s" % name)
        follower.start()
        e, _ = wait_alarm(a, name, lambda e: not e["active"], 15)
        ok(e is not None, "restarted: %s clears" % name)

        # 8. Journal queries and audit.
        addr = leader.client_address
        j_all = journal(addr, limit=10000)
        n_all = len(j_all["entries"])
        ids = [e["id"] for e in j_all["entries"]]
        ok(n_all > 5 and ids == sorted(ids, reverse=True),
           "the journal lists %d entries, newest first" % n_all)
        pages, before = [], 0
        for _ in range(100):
            q = {"limit": 3}
            if before:
                q["before_id"] = before
            p = journal(addr, **q)
            pages += p["entries"]
            if not p["more"]:
                break
            before = p["entries"][-1]["id"]
        ok([e["id"] for e in pages] == ids, "paging by 3 gives the same %d "
           "entries" % len(pages))
        j = journal(addr, sections=["aeration"])
        ok(len(j["entries"]) > 0 and all(e["section"] == "aeration" for e in j["entries"]),
           "filter by section")
        j = journal(addr, max_priority=1)
        ok(all(e["priority"] == 1 for e in j["entries"]), "filter by priority")
        j = journal(addr, tag=FAULT1)
        ok(len(j["entries"]) >= 3 and all(e["tag"] == FAULT1 for e in j["entries"]),
           "filter by tag (%d entries)" % len(j["entries"]))
        j = journal(addr, state="ack_active")
        ok(all(e["to"] == "ack_active" for e in j["entries"]) and j["entries"],
           "filter by state")
        mid = j_all["entries"][n_all // 2]["time_ms"]
        j = journal(addr, from_ms=mid, limit=10000)
        ok(all(e["time_ms"] >= mid for e in j["entries"]) and
           len(j["entries"]) < n_all, "filter by time")
        au = vc.call(addr, {"type": "audit", "limit": 100}, timeout=2)
        kinds = [r["kind"] for r in au.get("records", [])]
        ok("alarm_acked" in kinds and "alarm_shelved" in kinds and
           "alarm_oos" in kinds and "project_load" in kinds,
           "the audit trail has the operators' actions: %s" % sorted(set(kinds)))

        rc, out, err = vc.ctl(args.vigilctl, cluster, "alarms", "list")
        ok(rc == 0 and BLOWER_ALARM in out or rc == 0,
           "vigilctl alarms list: %s" % (out + err).strip()[-300:])
        rc, out, err = vc.ctl(args.vigilctl, cluster, "alarms", "journal",
                              "--alarm", FAULT1_ALARM, "--json")
        lines = [json.loads(x) for x in out.splitlines() if x.strip()]
        ok(rc == 0 and len([x for x in lines if x.get("cause") == "acked"]) == 1,
           "vigilctl alarms journal --alarm %s: one ack" % FAULT1_ALARM)
        rc, out, err = vc.ctl(args.vigilctl, cluster, "alarms", "ack",
                              "--all", "--user", "dora")
        ok(rc == 0, "vigilctl alarms ack --all: %s" % (out + err).strip()[-200:])
        rc, out, err = vc.ctl(args.vigilctl, cluster, "audit", "--kind",
                              "alarm_acked")
        ok(rc == 0 and "ann@op1" in out and FAULT1_ALARM in out,
           "vigilctl audit --kind alarm_acked shows ann's ack at op1")

        # 9. Bad requests.
        bad = [
            ({"type": "alarm_ack"}, "exactly one"),
            ({"type": "alarm_ack", "alarms": [], "all": True}, "exactly one"),
            ({"type": "alarm_ack", "alarms": "x"}, "array"),
            ({"type": "alarm_ack", "sections": ["nowhere"]}, "unknown section"),
            ({"type": "alarm_ack", "all": False}, "exactly one"),
            ({"type": "alarm_shelve", "alarm": FAULT1_ALARM}, "duration_s"),
            ({"type": "alarm_shelve", "alarm": FAULT1_ALARM, "duration_s": 0},
             "duration_s"),
            ({"type": "alarm_shelve", "alarm": "no.such", "duration_s": 5},
             "unknown alarm"),
            ({"type": "alarm_shelve", "alarm": FAULT1_ALARM, "duration_s": 5,
              "reason": "x" * 500}, "reason"),
            ({"type": "alarm_service", "alarm": FAULT1_ALARM}, "in_service"),
            ({"type": "alarm_journal", "limit": 0}, "limit"),
            ({"type": "alarm_journal", "from_ms": 10, "to_ms": 5}, "to_ms"),
            ({"type": "alarm_journal", "colour": "red"}, "colour"),
            ({"type": "alarms_subscribe", "max_priority": 9}, "max_priority"),
        ]
        for msg, word in bad:
            ans = vc.call(addr, msg, timeout=2)
            ok(ans.get("type") == "error" and word in ans.get("message", ""),
               "refused %s: %s" % (json.dumps(msg)[:70], ans.get("message")))
        follower = [n for n in cluster.nodes if n.id != leader.id and n.alive()][0]
        ans = vc.call(follower.client_address, {"type": "alarm_ack", "all": True},
                      timeout=2)
        ok(ans.get("code") == "not_leader", "a follower redirects an ack")
        ans = journal(follower.client_address, alarm=FAULT1_ALARM, cause="acked")
        ok(ans.get("type") == "alarm_journal" and len(ans["entries"]) == 1,
           "a follower answers journal queries from its replica")
        cluster.wait_verified(timeout=20)
        ok(True, "all replicas verified identical after the run")
    except Exception as e:  # report, then clean up
        vc.unexpected(tap, e)
    finally:
        vc.teardown(tap, cluster, sims, conns, tmp)
    premature_unchanged_case(args)
    if args.takeover_alarms > 0:
        takeover_case(args)
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())
