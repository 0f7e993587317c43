#!/usr/bin/env python3
"""Live values and setpoints end to end: 3 vigild, 2 vigil-plcsim
(waterworks) and clients on loopback (TAP).

1. Live values: a client subscribes to the overview screen (plus one tag
   name and one unknown name) at the leader; the image holds every tag of
   the subscription exactly once, all good, then changes follow.
2. A register changed in the simulator (a Modbus write by the test, as a
   PLC program or an engineering tool would) reaches a subscribed client:
   --probes changes, latency from the simulator's answer to the client's
   receipt, median and p99 as a TAP comment and a JSON line on stderr
   ("plc_change_to_client").
3. A setpoint written by client A (a raw connection) reaches the PLC
   (write log: fencing registers = leader id and term, then the value) and
   is seen by client B through its subscription; the action log on a
   follower has it with outcome "written". Refusals: not writable, out of
   limits, unknown tag, wrong type, a follower (not_leader naming the
   leader).
4. Failover: `vigilctl tags watch` (the client library's subscription that
   survives failover) runs while the leader is killed with -9; it
   re-subscribes at the new leader by itself, gets an image, and shows the
   value of a setpoint written through the new leader (`vigilctl tags
   write`), which the write log attributes to the new leader and its term.
5. A paused leader (SIGSTOP) is replaced; after SIGCONT a write sent to it
   directly is refused, and the write log shows nothing from it.
6. Fencing over the whole write log: every write by a Vigil node carries a
   term in which that node was the ready leader, and terms never go back.

Every wait is bounded; processes are killed by PID; temp dirs removed.
"""
import argparse
import json
import os
import queue
import random
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import vigil_cluster as vc  # noqa: E402

tap = vc.Tap()
ok = tap.ok
wait_for = vc.wait_for
polling_leader = vc.polling_leader
read_image = vc.read_image
wait_value = vc.wait_value

SP1 = "intake.well1.pump.speed_sp"   # hr:2, uint16, raw 0..10000 = 0..100 %
SP2 = "intake.well2.pump.speed_sp"   # hr:12
SP2_ADDR = 12
FENCING = 9000


class Watch:
    """`vigilctl tags watch --json TAG…`, its stdout lines in a queue."""

    def __init__(self, vigilctl, seeds, tags, tmp):
        self.err_path = os.path.join(tmp, "watch.err")
        self.err = open(self.err_path, "w")
        self.proc = subprocess.Popen(
            [vigilctl, "--cluster", seeds, "tags", "watch", "--json"] + list(tags),
            stdout=subprocess.PIPE, stderr=self.err, text=True, bufsize=1)
        self.lines = queue.Queue()
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.put((time.monotonic(), line))

    def stderr(self):
        with open(self.err_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def wait_value(self, tag, value, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                t, line = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            for e in ev.get("values", []):
                if e.get("tag") == tag and e.get("value") is not None and \
                        abs(e["value"] - value) < 1e-6:
                    return t
        return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()
        return self.proc.returncode


def vigil_writes(log, skip):
    """Entries of the write log made by Vigil nodes (not the test's own
    Modbus writes, whose positions are in SKIP)."""
    return [e for i, e in enumerate(log) if i not in skip]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vigild", required=True)
    ap.add_argument("--vigilctl", required=True)
    ap.add_argument("--plcsim", required=True)
    ap.add_argument("--probes", type=int, default=30)
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="vigil-tags-")
    sims, cluster, conns, watch = [], None, [], None
    leaders = {}  # term -> node id of the ready leader seen in that term
    try:
        ports = vc.free_ports(2)
        project = vc.copy_project(os.path.join(tmp, "waterworks"), ports)
        logs = [os.path.join(tmp, n + ".writes") for n in ("intake", "treatment")]
        sims = [vc.PlcSim(args.plcsim, project, name, tmp,
                          extra=("--write-log", log, "--seed", "7"))
                for name, log in zip(("plc-intake", "plc-treatment"), logs)]
        ok(all(s.wait_started() for s in sims), "two vigil-plcsim serve waterworks")
        cluster = vc.Cluster(args.vigild)
        cluster.__enter__()
        cluster.wait_ready_leader(timeout=15)
        rc, out, err = vc.ctl(args.vigilctl, cluster, "project", "load", project)
        ok(rc == 0, "project loaded: %s" % (out + err).strip()[-200:])
        leader, term = polling_leader(cluster)
        leaders[term] = leader.id

        # 1. Live values.
        a = vc.Conn(leader.client_address)
        conns.append(a)
        ans = a.call({"type": "tags_subscribe", "screens": ["overview"],
                      "tags": [SP1, "no.such.tag"]})
        ok(ans.get("type") == "tags_subscribed" and ans.get("count", 0) > 1 and
           ans.get("unknown") == ["no.such.tag"] and ans.get("version") == 1,
           "subscribed to the overview screen + %s: %s" %
           (SP1, {k: ans.get(k) for k in ("type", "count", "unknown", "version",
                                          "message")}))
        entries, frames = read_image(a)
        names = [e["tag"] for e in entries]
        ok(len(names) == ans["count"] and len(set(names)) == len(names) and
           SP1 in names and frames[0].get("unknown") == ["no.such.tag"],
           "the image holds each of the %d tags once (%d frame(s)), unknown "
           "names in its first frame" % (len(names), len(frames)))
        ok(all(e["quality"] == "good" and isinstance(e["value"], float) and
               e["t"] > 0 for e in entries),
           "every image entry is good with a value and a time")
        got_change = False
        end = time.monotonic() + 5
        while time.monotonic() < end and not got_change:
            m = a.recv()
            got_change = m.get("event") == "values" and len(m["values"]) > 0 and \
                all(e["tag"] in names for e in m["values"])
        ok(got_change, "changes of subscribed tags follow the image")

        # 2. A register changed in the PLC reaches a subscribed client.
        b = vc.Conn(leader.client_address)
        conns.append(b)
        ans = b.call({"type": "tags_subscribe", "tags": [SP1, SP2]})
        read_image(b)
        skip = set()
        lat = []
        rng = random.Random(11)
        for i in range(args.probes):
            value = 40 + (i % 40) * 0.5
            # At a random point of the poll cycle: right after the previous
            # value arrived would always be just after a poll (phase lock).
            time.sleep(rng.uniform(0, 0.5))
            skip.add(len(vc.read_write_log(logs[0])))
            vc.modbus_write(ports[0], SP2_ADDR, [int(round(value * 100))])
            t0 = time.monotonic()
            t1 = wait_value(b, SP2, value, 3)
            if t1 is not None:
                lat.append(t1 - t0)
        ok(len(lat) == args.probes, "%d of %d register changes in the simulator "
           "reached the subscribed client" % (len(lat), args.probes))
        if lat:
            med, p99 = vc.percentile(lat, 50), vc.percentile(lat, 99)
            print("# register change in vigil-plcsim -> client received: median "
                  "%.0f ms, p99 %.0f ms, max %.0f ms over %d changes (poll "
                  "interval 500 ms)" % (med * 1e3, p99 * 1e3, max(lat) * 1e3,
                                         len(lat)))
            sys.stderr.write(json.dumps({
                "bench": "plc_change_to_client", "changes": len(lat),
                "median_ms": round(med * 1e3, 1), "p99_ms": round(p99 * 1e3, 1),
                "poll_interval_ms": 500}) + "\n")

        # 3. A setpoint from client A reaches the PLC and client B.
        c = vc.Conn(leader.client_address)
        conns.append(c)
        before = len(vc.read_write_log(logs[0]))
        t0 = time.monotonic()
        w = c.call({"type": "tag_write", "tag": SP1, "value": 55.5,
                    "user": "alice", "station": "station-a"})
        ok(w.get("type") == "tag_written" and w.get("node") == leader.id and
           w.get("term") == term and w.get("action", 0) > 0,
           "tag_write answered after the PLC confirmed: %s" % w)
        t_seen = wait_value(b, SP1, 55.5, 3)
        ok(t_seen is not None, "client B sees %s = 55.5 %.0f ms after the write "
           "was sent" % (SP1, ((t_seen or t0) - t0) * 1e3))
        log = vc.read_write_log(logs[0])[before:]
        ok(len(log) == 2 and log[0]["fc"] == 16 and log[0]["address"] == FENCING and
           log[0]["values"] == [0, leader.id, 0, term] and log[1]["fc"] == 6 and
           log[1]["address"] == 2 and log[1]["values"] == [5550] and
           log[1]["node"] == leader.id and log[1]["term"] == term,
           "the simulator logged the fencing registers (node %d, term %d) then "
           "hr:2 = 5550: %s" % (leader.id, term, log))
        # The outcome is a command of its own, proposed after the answer:
        # wait (bounded) until the follower has applied it.
        follower = [n for n in cluster.nodes if n.id != leader.id][0]

        def follower_last():
            acts = vc.call(follower.client_address, {"type": "actions", "tag": SP1})
            return (acts.get("actions") or [{}])[-1]
        wait_for(lambda: follower_last().get("outcome") is not None, 5)
        last = follower_last()
        ok(last.get("action") == w.get("action") and last.get("outcome") == "written"
           and last.get("user") == "alice" and last.get("station") == "station-a"
           and last.get("value") == 55.5 and last.get("term") == term,
           "a follower's action log has it, outcome written: %s" % last)
        refusals = [
            ({"tag": "intake.well1.flow", "value": 1}, "invalid", "not writable"),
            ({"tag": SP1, "value": 100.5}, "invalid", "out of limits"),
            ({"tag": "no.such.tag", "value": 1}, "invalid", "unknown tag"),
            ({"tag": SP1, "value": "fast"}, "invalid", "must be a number"),
            ({"tag": "intake.well1.pump.cmd", "value": 2}, "invalid", "bool"),
            ({"tag": SP1}, "invalid", "'value' is required"),
            ({"tag": SP1, "value": 50, "colour": "red"}, "invalid", "unknown member"),
        ]
        for req, code, words in refusals:
            r = c.call(dict(req, type="tag_write"))
            ok(r.get("code") == code and words in r.get("message", ""),
               "tag_write %s refused: %s" % (json.dumps(req), r.get("message")))
        r = vc.call(follower.client_address,
                    {"type": "tag_write", "tag": SP1, "value": 50})
        ok(r.get("code") == "not_leader" and
           (r.get("leader") or {}).get("id") == leader.id,
           "a follower answers not_leader naming node %d" % leader.id)
        ok(len(vc.read_write_log(logs[0])) == before + 2,
           "refused writes wrote nothing to the PLC")

        # Hostile requests: each gets a clear error, the leader lives on.
        hostile = [
            {"type": "tags_subscribe", "tags": "LT101"},
            {"type": "tags_subscribe", "tags": [1, 2]},
            {"type": "tags_subscribe", "tags": [""]},
            {"type": "tags_subscribe", "tags": ["x" * 300]},
            {"type": "tags_subscribe", "screens": {"a": 1}},
            {"type": "tags_subscribe", "all": "yes"},
            {"type": "tags_subscribe", "tags": ["t%d" % i for i in range(100001)]},
            {"type": "tags_read"},
            {"type": "tags_read", "tags": []},
            {"type": "tags_read", "tags": [SP1, None]},
            {"type": "tags_read", "tags": ["no.such.tag", SP1]},
            {"type": "tag_write", "tag": None, "value": 1},
            {"type": "tag_write", "tag": SP1, "value": [1]},
            {"type": "tag_write", "tag": SP1, "value": 50, "user": "u" * 200},
            {"type": "actions", "limit": 0},
            {"type": "actions", "limit": "ten"},
            {"type": "actions", "tag": 5},
        ]
        answers = []
        for req in hostile:
            try:
                answers.append(c.call(req))
            except (OSError, vc.ProtocolError, ValueError) as e:
                answers.append({"transport": str(e)})
        bad = [(q["type"], a) for q, a in zip(hostile, answers)
               if a.get("type") != "error" or a.get("code") not in
               ("invalid", "too_big", "malformed") or not a.get("message")]
        ok(not bad and leader.alive(), "%d hostile tags requests each answered "
           "with an error saying what is wrong, leader alive: %s" %
           (len(hostile), bad[:3]))
        # A number beyond double range is not JSON jansson accepts: the frame
        # is refused as malformed (without an id: the request was not read).
        body = ('{"v":1,"type":"tag_write","id":77,"tag":"%s","value":1e400}'
                % SP1).encode()
        c.send_raw(struct.pack(">I", len(body)) + body)
        r = c.recv()
        ok(r.get("code") == "malformed" and leader.alive(),
           "a value of 1e400 is refused as malformed: %s" % r.get("message"))
        ok(len(vc.read_write_log(logs[0])) == before + 2,
           "none of them wrote to the PLC")

        # 4. Failover: the library's subscription follows the leader.
        seeds = ",".join(n.client_address for n in cluster.nodes)
        watch = Watch(args.vigilctl, seeds, [SP1], tmp)
        ok(watch.wait_value(SP1, 55.5, 5) is not None,
           "vigilctl tags watch shows %s = 55.5 from the image" % SP1)
        old = leader
        t_kill = time.monotonic()
        old.kill()
        leader, term = polling_leader(cluster)
        leaders[term] = leader.id
        ok(leader.id != old.id, "kill -9 of node %d: node %d polls in term %d" %
           (old.id, leader.id, term))
        ok(wait_for(lambda: "resubscribed" in watch.stderr(), 5),
           "the watch re-subscribed by itself: %s" %
           watch.stderr().strip().splitlines()[-1:])
        rc, out, err = vc.ctl(args.vigilctl, cluster, "tags", "write", SP1, "66.25",
                              "--user", "bob", "--station", "station-b")
        ok(rc == 0 and "66.25" in out, "vigilctl tags write through the new "
           "leader: rc %d %s" % (rc, (out + err).strip()))
        t_seen = watch.wait_value(SP1, 66.25, 5)
        ok(t_seen is not None, "the watch, never restarted, shows %s = 66.25 "
           "(%.2f s after the kill)" % (SP1, (t_seen or t_kill) - t_kill))
        log = vc.read_write_log(logs[0])
        mine = [e for e in log if e["fc"] == 6 and e["values"] == [6625]]
        ok(len(mine) == 1 and mine[0]["node"] == leader.id and
           mine[0]["term"] == term,
           "the simulator logged hr:2 = 6625 from node %d in term %d: %s" %
           (leader.id, term, mine))
        old.start()
        cluster.wait_converged(timeout=20)

        # 5. A paused leader never writes.
        paused = leader
        paused_term = term
        paused.proc.send_signal(signal.SIGSTOP)
        try:
            leader, term = polling_leader(cluster, exclude=(paused.id,))
        except AssertionError:
            paused.proc.send_signal(signal.SIGCONT)
            raise
        leaders[term] = leader.id
        w = vc.call(leader.client_address,
                    {"type": "tag_write", "tag": SP1, "value": 44.25})
        ok(w.get("type") == "tag_written" and w.get("term") == term,
           "node %d paused; node %d writes in term %d: %s" %
           (paused.id, leader.id, term, w.get("type")))
        paused.proc.send_signal(signal.SIGCONT)
        try:
            r = vc.call(paused.client_address,
                        {"type": "tag_write", "tag": SP1, "value": 33.25}, 3.0)
        except (OSError, vc.ProtocolError) as e:
            r = {"code": "transport", "message": str(e)}
        ok(r.get("type") != "tag_written",
           "resumed node %d refuses a write sent to it: %s %s" %
           (paused.id, r.get("code"), r.get("message", "")[:120]))
        time.sleep(1.5)
        log = vc.read_write_log(logs[0])
        taken = [x["t_ms"] for x in log
                 if x["address"] == 2 and x["values"] == [4425]]
        ok(len(taken) == 1 and
           not any(e["address"] == 2 and e["values"] == [3325] for e in log) and
           not any(e["node"] == paused.id and e["term"] == paused_term and
                   e["t_ms"] >= taken[0] for e in log),
           "the write log has nothing from node %d (term %d) after node %d took "
           "over" % (paused.id, paused_term, leader.id))
        cluster.wait_converged(timeout=20)

        # 6. Fencing over the whole write log.
        ours = vigil_writes(vc.read_write_log(logs[0]), skip)
        terms = [e["term"] for e in ours]
        ok(terms == sorted(terms) and
           all(leaders.get(e["term"]) == e["node"] for e in ours),
           "all %d writes by Vigil nodes carry the term of their node's "
           "leadership (%s), terms never go back" %
           (len(ours), sorted({(e["node"], e["term"]) for e in ours})))
        ok(all(e["ok"] for e in ours), "the simulator accepted every Vigil write")
    except Exception as e:  # noqa: BLE001 - reported as a failed test point
        ok(False, "unexpected %s: %s" % (type(e).__name__, e))
    finally:
        for k in conns:
            k.close()
        if watch is not None:
            watch.stop()
        if cluster is not None:
            for n in cluster.nodes:
                if n.alive():
                    n.proc.send_signal(signal.SIGCONT)
            cluster.close()
        for s in sims:
            s.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())
