#!/usr/bin/env python3
"""Real-process tests of vigild's start-up errors, clean shutdown, hostile
client input, and the admin commands of vigilctl (membership changes and
leadership transfer) on a 3-node loopback cluster; then a follower's replica
tampered with while it is down: it reports itself diverged, the leader
raises the system alarm $replica.ID on a subscribed station and in
`alarms list`, and --rebuild-state repairs it and clears the alarm; then a
rolling upgrade through apply levels (rolling_upgrade). Prints TAP."""
import argparse
import json
import os
import random
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import shutil
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil_cluster as vc  # noqa: E402

tap = vc.Tap()
ok = tap.ok


def run(cmd, timeout=20, env=None):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    return p.returncode, p.stdout, p.stderr


def startup_errors(vigild, tmp):
    rc, _, err = run([vigild, "--id", "0"])
    ok(rc == 2 and "--id" in err, "bad --id: exit 2 naming the flag (%r)" % err.strip())
    rc, _, err = run([vigild, "--bogus"])
    ok(rc == 2 and "--bogus" in err, "unknown flag: exit 2 (%r)" % err.strip())
    rc, _, err = run([vigild, "--id", "1", "--raft-address", "127.0.0.1", "--client-address",
                      "127.0.0.1:1", "--data", tmp, "--join"])
    ok(rc == 2 and "PORT" in err, "address without port: exit 2 (%r)" % err.strip())
    afile = os.path.join(tmp, "a-file")
    open(afile, "w").close()
    p1, p2 = vc.free_ports(2)
    rc, _, err = run([vigild, "--id", "1", "--raft-address", "127.0.0.1:%d" % p1,
                      "--client-address", "127.0.0.1:%d" % p2, "--data", afile, "--join"])
    ok(rc == 1 and "a-file" in err, "data folder is a file: exit 1 (%r)" % err.strip())
    rc, _, err = run([vigild, "--id", "1", "--raft-address", "127.0.0.1:%d" % p1,
                      "--client-address", "127.0.0.1:%d" % p2,
                      "--data", os.path.join(tmp, "fresh")])
    ok(rc == 1 and "--bootstrap" in err and "--join" in err,
       "fresh folder without --bootstrap/--join: exit 1 (%r)" % err.strip())
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        rc, _, err = run([vigild, "--id", "1", "--raft-address", "127.0.0.1:%d" % p1,
                          "--client-address", "127.0.0.1:%d" % port,
                          "--data", os.path.join(tmp, "d1"), "--join"])
        ok(rc == 1 and "in use" in err, "client port in use: exit 1 (%r)" % err.strip())
        rc, _, err = run([vigild, "--id", "1", "--raft-address", "127.0.0.1:%d" % port,
                          "--client-address", "127.0.0.1:%d" % p2,
                          "--data", os.path.join(tmp, "d2"), "--join"])
        ok(rc == 1 and "raft" in err and "in use" in err, "raft port in use: exit 1 (%r)" % err.strip())
    finally:
        busy.close()


def hostile_input(node):
    c = vc.Conn(node.client_address)
    try:
        c.send_raw(struct.pack(">I", 50 * 1024 * 1024) + b"x" * 1000)  # oversized
        a = c.recv()
        ok(a.get("type") == "error" and a.get("code") == "too_big",
           "oversized frame answered with too_big: %s" % a.get("message"))
        # The announced 50 MiB are being skipped; finish them so the stream is
        # in sync again, then garbage JSON, then a valid ping.
        left = 50 * 1024 * 1024 - 1000
        chunk = b"y" * 65536
        while left > 0:
            c.send_raw(chunk[:min(left, len(chunk))])
            left -= min(left, len(chunk))
        c.send_raw(struct.pack(">I", 9) + b"{not json")
        a = c.recv()
        ok(a.get("code") == "malformed", "bad JSON answered with malformed: %s" % a.get("message"))
        c.send_raw(struct.pack(">I", 24) + b'{"v":99,"type":"ping"}  ')
        a = c.recv()
        ok(a.get("code") == "unsupported", "wrong version answered: %s" % a.get("message"))
        a = c.call({"type": "no-such-thing"})
        ok(a.get("code") == "unknown_type", "unknown type answered: %s" % a.get("message"))
        a = c.call({"type": "put", "key": 5})
        ok(a.get("code") == "invalid", "bad members answered: %s" % a.get("message"))
        a = c.call({"type": "ping"})
        ok(a.get("type") == "pong", "connection still usable after garbage")
    finally:
        c.close()
    # Random garbage on fresh connections must never take the node down.
    rnd = random.Random(42)
    for _ in range(30):
        host, port = node.client_address.rsplit(":", 1)
        s = socket.create_connection((host, int(port)), 1)
        s.sendall(bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 300))))
        s.close()
    ok(node.alive() and vc.call(node.client_address, {"type": "ping"}).get("type") == "pong",
       "node survived 30 connections of random bytes")
    # Closed connections must be released (regression: they leaked fds).
    fd_dir = "/proc/%d/fd" % node.proc.pid
    before = len(os.listdir(fd_dir))
    for _ in range(200):
        vc.call(node.client_address, {"type": "ping"})
    deadline = time.monotonic() + 5
    while len(os.listdir(fd_dir)) > before + 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    after = len(os.listdir(fd_dir))
    ok(after <= before + 5, "200 short connections: open fds %d -> %d" % (before, after))


def wait_alarm_event(conn, name, pred, timeout):
    """Read the alarm events of subscription CONN until an entry of NAME
    satisfies PRED; the entry, or None after TIMEOUT seconds."""
    end = time.monotonic() + timeout
    conn.send({"type": "ping"})  # the node drops connections silent for 30 s
    conn.sock.settimeout(0.2)
    try:
        while time.monotonic() < end:
            try:
                m = conn.recv()
            except OSError:
                continue
            if m.get("topic") == "alarms" and m.get("event") in ("changes", "image"):
                for e in m["alarms"]:
                    if e["alarm"] == name and pred(e):
                        return e
    finally:
        conn.sock.settimeout(2.0)
    return None


def client_conns(pid, addrs):
    """Established TCP connections process PID holds to any of the ADDRS
    ("host:port", IPv4), from /proc: the sockets among its fds whose remote
    end is one of them."""
    ports = {int(a.rsplit(":", 1)[1]) for a in addrs}
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    n = 0
    with open("/proc/%d/net/tcp" % pid) as f:
        next(f)
        for line in f:
            fields = line.split()
            rport = int(fields[2].split(":")[1], 16)
            if fields[3] == "01" and fields[9] in inodes and rport in ports:
                n += 1
    return n


def member_consistency(status, node_id):
    for m in status.get("members", []):
        if m.get("id") == node_id:
            return m.get("consistency") or {}
    return {}


class FakeMember:
    """A client port speaking the protocol as member NODE_ID: it leaves the
    first question it gets unanswered (the leader must time out) and answers
    every later one with a status whose verdict is ok. Records, per
    connection (numbered from 1), the questions and whether the leader
    closed it."""

    def __init__(self, node_id):
        self.id = node_id
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.settimeout(0.2)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.questions = []  # (connection, type, brief)
        self.closed = set()  # connections the leader closed
        self.conns = 0
        self.running = True
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while self.running:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.conns += 1
            threading.Thread(target=self.serve, args=(c, self.conns), daemon=True).start()

    def serve(self, c, no):
        buf = b""
        c.settimeout(30)
        try:
            while self.running:
                data = c.recv(65536)
                if not data:
                    self.closed.add(no)
                    return
                buf += data
                while len(buf) >= 4 and len(buf) >= 4 + struct.unpack(">I", buf[:4])[0]:
                    n = struct.unpack(">I", buf[:4])[0]
                    q, buf = json.loads(buf[4:4 + n]), buf[4 + n:]
                    self.questions.append((no, q.get("type"), q.get("brief")))
                    if len(self.questions) == 1:
                        continue
                    a = json.dumps({"v": 1, "type": "status", "id": q.get("id"),
                                    "node_id": self.id, "applied_index": 1,
                                    "consistency": {"verdict": "ok", "checked_index": 1,
                                                    "message": "fake member"}}).encode()
                    c.sendall(struct.pack(">I", len(a)) + a)
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.running = False
        self.sock.close()


def vigilctl_status_questions(ctl):
    """vigilctl's commands look for the leader with a brief status (no
    archive query on the node); `cluster status` asks the full one."""
    fake = FakeMember(9)
    try:
        first = vc.Conn(fake.addr)  # takes the question it leaves unanswered
        first.send({"type": "status"})
        vc.wait_for(lambda: len(fake.questions) >= 1, 5)
        first.close()
        env = dict(os.environ)
        env.pop("VIGIL_CLUSTER", None)
        seen = len(fake.questions)
        rc, out, err = run([ctl, "--cluster", fake.addr, "--timeout", "600",
                            "cluster", "members"], env=env)
        asked = fake.questions[seen:]
        ok(rc != 0 and asked and all(t == "status" and b is True for _, t, b in asked),
           "vigilctl cluster members asked %d brief status question(s) of a node "
           "that never leads (exit %d)" % (len(asked), rc))
        seen = len(fake.questions)
        rc, out, err = run([ctl, "--cluster", fake.addr, "--timeout", "600",
                            "project", "history"], env=env)
        asked = [b for _, t, b in fake.questions[seen:] if t == "status"]
        ok(asked and all(b is True for b in asked),
           "vigilctl project history looked for the leader with brief questions "
           "(%d, exit %d)" % (len(asked), rc))
        seen = len(fake.questions)
        rc, out, err = run([ctl, "--cluster", fake.addr, "--timeout", "600",
                            "cluster", "status"], env=env)
        asked = fake.questions[seen:]
        ok(asked and all(t == "status" and b is None for _, t, b in asked),
           "vigilctl cluster status asks the full status (%d question(s))" % len(asked))
    finally:
        fake.close()


def fake_member(ctl, cluster):
    """The leader asks a member that does not answer, reports why it has no
    verdict, reconnects, learns the verdict, asks again on the same
    connection, and closes it once the member is removed."""
    leader, _ = cluster.wait_ready_leader(timeout=10)
    fake = FakeMember(9)
    try:
        rc, out, err = vigilctl(ctl, cluster, "cluster", "add", "9",
                                "127.0.0.1:%d" % vc.free_ports(1)[0], fake.addr)

        def peer(cond):
            mc = member_consistency(leader.status(), 9)
            return mc if cond(mc) else None
        mc = vc.wait_for(lambda: peer(lambda m: "did not answer" in (m.get("error") or "")),
                         5, poll=0.05)
        ok(rc == 0 and mc and mc["verdict"] == "unknown" and mc["answered_ms"] is None,
           "a member that does not answer: %s" % (mc or {}).get("error"))
        mc = vc.wait_for(lambda: peer(lambda m: m.get("verdict") == "ok" and
                                      m.get("reachable") and m.get("error") is None), 5)
        ok(mc and mc["message"] == "fake member" and isinstance(mc["answered_ms"], int),
           "once it answers, its verdict is known: %s" % mc)
        last = fake.conns
        reused = vc.wait_for(lambda: sum(1 for c, t, _ in fake.questions
                                         if c == last and t == "status") >= 2, 5)
        ok(reused and fake.conns == last,
           "the next question comes on the same connection (%d connections, "
           "%d questions)" % (fake.conns, len(fake.questions)))
        ok(all(b is True for _, t, b in fake.questions if t == "status"),
           "every question is a brief status (no archive query on the member): "
           "%s" % sorted(set(b for _, t, b in fake.questions)))
        full, brief = leader.status(), vc.call(leader.client_address,
                                               {"type": "status", "brief": True})
        ok("archive" in full and "archive" not in brief and
           brief.get("consistency") == full.get("consistency") and
           brief.get("members") is not None,
           "a brief status has all but the archive: %s" % sorted(set(full) - set(brief)))
        rc, out, err = vigilctl(ctl, cluster, "cluster", "remove", "9")
        closed = vc.wait_for(lambda: last in fake.closed, 5)
        ok(rc == 0 and closed, "removed, the leader closed its connection to it")
    finally:
        fake.close()


ADMIN = "vigil-admin-test"


def vigilctl(ctl, cluster, *args):
    env = dict(os.environ)
    env["VIGIL_CLUSTER"] = ",".join(n.client_address for n in cluster.nodes if n.alive())
    env["USER"] = ADMIN  # who the audit trail names
    return run([ctl, "--json"] + list(args), env=env, timeout=30)


def admin_records(node, after_id=0):
    """The audit records of membership changes and transfers (and node_forget)
    at NODE with an id above AFTER_ID, oldest first."""
    kinds = ("member_", "leadership_transfer", "node_forget")
    a = vc.call(node.client_address, {"type": "audit", "limit": 1000}, timeout=5)
    return [r for r in reversed(a.get("records", []))
            if r["id"] > after_id and r["kind"].startswith(kinds)]


def audited(cluster, after_id, want, timeout=10):
    """Wait until every node's audit trail holds, after AFTER_ID, records
    matching WANT (a list of dicts of fields) in that order and nothing else
    of those kinds; returns (ok, what the leader has)."""
    def match(recs):
        return len(recs) == len(want) and all(
            all(r.get(k) == v for k, v in w.items()) for r, w in zip(recs, want))
    got = vc.wait_for(lambda: all(match(admin_records(n, after_id))
                                  for n in cluster.nodes if n.alive()), timeout, poll=0.2)
    leader, _ = cluster.wait_ready_leader(timeout=10)
    return bool(got), [(r["kind"], r["object"], r["old_value"], r["new_value"], r["user"],
                        r["station"], r["detail"]) for r in admin_records(leader, after_id)]


def admin(vigild, ctl):
    with vc.Cluster(vigild) as cluster:
        leader, _ = cluster.wait_ready_leader(timeout=10)
        hostile_input(leader)

        rc, out, err = vigilctl(ctl, cluster, "cluster", "status")
        st = json.loads(out) if rc == 0 else []
        ok(rc == 0 and len(st) == 3 and sum(1 for s in st if s.get("ready")) == 1,
           "vigilctl cluster status: 3 nodes, one ready leader")

        # Join a fourth node, promote, demote, remove.
        p_raft, p_client = vc.free_ports(2)
        n4 = vc.Node(cluster, 4, p_raft, p_client)
        args = [vigild, "--id", "4", "--raft-address", n4.raft_address,
                "--client-address", n4.client_address, "--data", n4.data, "--join"]
        args += list(cluster.node_args)
        log = open(n4.log_path, "ab")
        n4.proc = subprocess.Popen(args, stdout=log, stderr=log)
        log.close()
        cluster.nodes.append(n4)
        last_id = max([r["id"] for r in admin_records(leader)] + [0])
        me = {"user": ADMIN, "station": socket.gethostname()}
        rc, out, err = vigilctl(ctl, cluster, "cluster", "add", "4", n4.raft_address,
                                n4.client_address)
        ok(rc == 0, "cluster add 4 (%s)" % (err.strip() or out.strip()))
        rc, out, err = vigilctl(ctl, cluster, "cluster", "transfer", "4")
        ok(rc == 1 and "not a voter" in (out + err),
           "a transfer to a spare is refused at once (%s)" % (err.strip() or out.strip()))
        rc, out, err = vigilctl(ctl, cluster, "cluster", "promote", "4")
        ok(rc == 0, "cluster promote 4 (%s)" % (err.strip() or out.strip()))
        st = cluster.wait_converged(timeout=15)
        roles = {m["id"]: m["role"] for m in next(iter(st.values()))["members"]}
        ok(roles.get(4) == "voter" and len(st) == 4,
           "node 4 is a voter and has the same state as the others: %s" % roles)
        # A change that fails after its record: a transfer to a voter that
        # is down (three of four voters still make a quorum).
        n4.kill()
        leader, _ = cluster.wait_ready_leader(timeout=10)
        rc, out, err = vigilctl(ctl, cluster, "cluster", "transfer", "4")
        ok(rc == 1, "a transfer to a stopped voter fails (%s)" % (err.strip() or out.strip()))
        log = open(n4.log_path, "ab")
        n4.proc = subprocess.Popen(args, stdout=log, stderr=log)
        log.close()
        rc, out, err = vigilctl(ctl, cluster, "cluster", "demote", "4", "spare")
        ok(rc == 0, "cluster demote 4 spare (%s)" % (err.strip() or out.strip()))
        rc, out, err = vigilctl(ctl, cluster, "cluster", "demote", "4", "spare")
        ok(rc == 1 and "already has role spare" in (out + err),
           "demoting it again fails clearly (%s)" % (err.strip() or out.strip()))
        rc, out, err = vigilctl(ctl, cluster, "cluster", "remove", "4")
        ok(rc == 0, "cluster remove 4 (%s)" % (err.strip() or out.strip()))
        rc, out, err = vigilctl(ctl, cluster, "cluster", "remove", "4")
        ok(rc == 1 and "not a member" in (out + err), "removing it again fails clearly")
        n4.kill()
        cluster.nodes.remove(n4)
        # Every change has one record, committed before it was made, naming
        # who asked and from where; the failed transfer a second one; the
        # requests refused at once none.
        good, recs = audited(cluster, last_id, [
            dict(kind="member_add", object="node 4", old_value=None, new_value="spare",
                 detail="raft %s, client %s" % (n4.raft_address, n4.client_address), **me),
            dict(kind="member_assign", object="node 4", old_value="spare",
                 new_value="voter", **me),
            dict(kind="leadership_transfer", object="node 4", new_value=4, **me),
            dict(kind="leadership_transfer_failed", object="node 4", **me),
            dict(kind="member_assign", object="node 4", old_value="voter",
                 new_value="spare", **me),
            dict(kind="member_remove", object="node 4", old_value="spare",
                 new_value=None, **me),
            dict(kind="node_forget", object="node 4", **me)])
        ok(good, "the audit trail of every node holds the membership changes, "
           "in order, with who and where: %s" % recs)
        fake_member(ctl, cluster)
        vigilctl_status_questions(ctl)

        # Transfer: to a named node, then let the leader choose.
        leader, _ = cluster.wait_ready_leader(timeout=10)
        last_id = max([r["id"] for r in admin_records(leader)] + [0])
        target = next(n for n in cluster.nodes if n.id != leader.id)
        rc, out, err = vigilctl(ctl, cluster, "cluster", "transfer", str(target.id))
        landed, _ = cluster.wait_ready_leader(timeout=5)
        ok(rc == 0 and landed.id == target.id,
           "transfer to node %d landed on node %d (%s)" % (target.id, landed.id,
                                                         err.strip() or out.strip()))
        rc, out, err = vigilctl(ctl, cluster, "cluster", "transfer")
        landed2, _ = cluster.wait_ready_leader(timeout=5)
        ok(rc == 0 and landed2.id != landed.id, "transfer without target moved leadership")
        good, recs = audited(cluster, last_id, [
            dict(kind="leadership_transfer", object="node %d" % target.id,
                 old_value=leader.id, new_value=target.id, detail=None, **me),
            dict(kind="leadership_transfer", object=None, old_value=landed.id,
                 new_value=None, detail="to a node the leader chooses", **me)])
        ok(good, "both transfers are in the audit trail: %s" % recs)
        # The ready leader keeps one connection to each other member's client
        # port (it asks them for their replica's verdict); a node that lost
        # leadership closes them.
        def others(node):
            return [n.client_address for n in cluster.nodes if n.id != node.id]
        held = vc.wait_for(lambda: client_conns(landed2.proc.pid, others(landed2)) == 2, 5)
        dropped = vc.wait_for(lambda: client_conns(landed.proc.pid, others(landed)) == 0, 5)
        ok(held and dropped, "leader %d holds one connection per other member (%d), "
           "former leader %d none (%d)" % (
               landed2.id, client_conns(landed2.proc.pid, others(landed2)), landed.id,
               client_conns(landed.proc.pid, others(landed))))

        for i in range(5):
            vc.call(landed2.client_address, {"type": "put", "key": "k%d" % i, "value": "v"}, 2)
        cluster.wait_converged(timeout=15)
        # System alarms are evaluated while the leader polls a project: load
        # the example with its PLCs on free ports (nobody listens there; the
        # $plc alarms that follow do not matter here), then watch the leader's
        # alarms like an operator station does.
        project = vc.copy_project(os.path.join(cluster.dir, "waterworks"),
                                  vc.free_ports(2))
        rc, out, err = vigilctl(ctl, cluster, "project", "load", project)
        polling = vc.wait_for(lambda: landed2.status().get("plc", {}).get("polling"), 10)
        ok(rc == 0 and polling, "project loaded; leader %d polls it (%s)"
           % (landed2.id, (err.strip() or out.strip())[-120:]))
        station = vc.Conn(landed2.client_address)
        sub = station.call({"type": "alarms_subscribe"})
        ok(sub.get("type") == "alarms_subscribed", "a station subscribed to the "
           "leader's alarms: %s" % sub.get("type"))
        # Clean shutdown on SIGTERM of a follower, then it restarts and catches up.
        f = next(n for n in cluster.nodes if n.id != landed2.id)
        code = f.kill(signal.SIGTERM)
        ok(code == 0 and "stopped" in f.log(), "SIGTERM: exit 0 and a clean stop")
        # Tamper with its database while it is down: the consistency
        # checkpoints must report it diverged, and --rebuild-state repairs it.
        db = sqlite3.connect(os.path.join(f.data, "state.db"))
        tampered = db.execute("UPDATE kv SET value = 'tampered'").rowcount
        db.commit()
        db.close()
        f.start()
        st = cluster.wait_converged(timeout=15)
        ok(len(st) == 3 and tampered > 0, "restarted node caught up (%d rows tampered)" % tampered)
        vc.call(landed2.client_address, {"type": "put", "key": "after", "value": "x"}, 2)
        deadline = time.monotonic() + 15
        verdict = None
        while time.monotonic() < deadline:
            verdict = f.status()["consistency"]
            if verdict["verdict"] == "diverged":
                break
            time.sleep(0.05)
        ok(verdict and verdict["verdict"] == "diverged" and "REPLICA DIVERGED" in f.log(),
           "tampered replica reported diverged: %s" % (verdict or {}).get("message"))
        rc, out, err = vigilctl(ctl, cluster, "cluster", "status")
        others = [s["consistency"]["verdict"] for s in json.loads(out)
                  if s.get("node_id") not in (None, f.id)]
        ok(others == ["ok", "ok"], "the other replicas stay ok: %s" % others)

        # The leader learns the follower's verdict and raises its alarm.
        replica = "$replica.%d" % f.id
        t0 = time.monotonic()
        e = wait_alarm_event(station, replica,
                             lambda e: e["active"] and e["status"] == "unack_active", 10)
        ok(e is not None and e.get("cause") == "raised" and e["priority"] == 2 and
           str(f.id) in e["message"].get("en", "") and e["message"].get("de"),
           "the station sees %s raised %.1f s after the follower reported "
           "diverged: %s" % (replica, time.monotonic() - t0,
                             (e or {}).get("message")))
        mc = member_consistency(landed2.status(), f.id)
        ok(mc.get("verdict") == "diverged" and mc.get("reachable") is True and
           isinstance(mc.get("answered_ms"), int) and mc.get("checked_index", 0) > 0,
           "leader's status: members[%d].consistency %s" % (
               f.id, {k: mc.get(k) for k in ("verdict", "checked_index", "reachable")}))
        rc, out, err = vigilctl(ctl, cluster, "alarms", "list")
        listed = {a["alarm"]: a for a in (json.loads(x) for x in out.splitlines()
                                          if x.strip())} if rc == 0 else {}
        ok(listed.get(replica, {}).get("active") is True and
           not any(k.startswith("$replica.") for k in listed if k != replica),
           "vigilctl alarms list shows %s active and no other replica alarm: %s"
           % (replica, sorted(k for k in listed if k.startswith("$"))))

        f.kill(signal.SIGTERM)
        f.start(["--rebuild-state"])
        st = cluster.wait_verified(timeout=20)
        ok({s["consistency"]["verdict"] for s in st.values()} == {"ok"},
           "after --rebuild-state all replicas verified ok")
        t0 = time.monotonic()
        e = wait_alarm_event(station, replica, lambda e: not e["active"], 10)
        ok(e is not None and e.get("cause") == "cleared",
           "the station sees %s cleared %.1f s after the replicas verified ok (%s)"
           % (replica, time.monotonic() - t0, (e or {}).get("status")))
        rc, out, err = vigilctl(ctl, cluster, "alarms", "ack", replica)
        e = wait_alarm_event(station, replica, lambda e: e["status"] == "normal", 5)
        ok(rc == 0 and e is not None, "acknowledged, %s is back to normal" % replica)
        j = vc.call(landed2.client_address, {"type": "alarm_journal", "alarm": replica}, 2)
        causes = [x["cause"] for x in reversed(j.get("entries", []))]
        ok(causes == ["raised", "cleared", "acked"],
           "the journal of %s: %s" % (replica, causes))
        # A member that does not answer: the text status shows the verdict
        # it last reported to the leader.
        f.kill()
        env = dict(os.environ)
        env["VIGIL_CLUSTER"] = ",".join(n.client_address for n in cluster.nodes)
        rc, out, err = run([ctl, "cluster", "status"], env=env, timeout=30)
        row = [line for line in out.splitlines() if "unreachable" in line]
        ok(len(row) == 1 and row[0].split()[-1] == "ok",
           "vigilctl cluster status shows the stopped node %d unreachable with "
           "the verdict it last reported: %s" % (f.id, row))
        station.close()
        # Shutdown with its peer connections open: a clean stop (under ASan
        # a leak would make the exit status non-zero).
        code = landed2.kill(signal.SIGTERM)
        ok(code == 0 and "stopped" in landed2.log(),
           "SIGTERM of the leader %d: exit %s and a clean stop" % (landed2.id, code))


def levels(st):
    return {i: (s.get("apply_level"), (s.get("cluster_level") or {}).get("committed"))
            for i, s in st.items()}


def wait_levels_heard(cluster, level=None, timeout=15):
    """Until the one ready leader has heard every other member's apply level
    (LEVEL, when given) since it became leader; the statuses."""
    def heard(st):
        ls = [s for s in st.values() if s.get("ready")]
        return len(st) == 3 and len(ls) == 1 and all(
            m.get("consistency", {}).get("apply_level") is not None and
            level in (None, m["consistency"]["apply_level"])
            for m in ls[0]["members"] if not m.get("self"))
    return cluster.wait_statuses(heard, lambda s: s.get("cluster_level"), timeout)


def default_level(vigild):
    """Without --cluster-level a cluster rises to the highest level every
    node applies (vc.DEFAULT_LEVEL); --cluster-level 1 holds it at level 1."""
    with vc.Cluster(vigild) as cluster:
        cluster.wait_ready_leader(timeout=10)
        wait_levels_heard(cluster, vc.DEFAULT_LEVEL)
        st = cluster.wait_statuses(
            lambda st: len(st) == 3 and set(levels(st).values()) == {(vc.DEFAULT_LEVEL, vc.DEFAULT_LEVEL)},
            lambda s: s.get("cluster_level"), timeout=15)
        ok(set(levels(st).values()) == {(vc.DEFAULT_LEVEL, vc.DEFAULT_LEVEL)},
           "by default the cluster rises to level %d: %s" % (vc.DEFAULT_LEVEL, levels(st)))
    held = ("--election-timeout", "300", "--heartbeat", "50",
            "--checkpoint-interval", "300", "--cluster-level", "1")
    with vc.Cluster(vigild, node_args=held) as cluster:
        cluster.wait_ready_leader(timeout=10)
        wait_levels_heard(cluster, vc.DEFAULT_LEVEL)
        # Nothing to wait for: give the leader's once-a-second look a chance.
        time.sleep(1.5)
        st = cluster.statuses(timeout=2)
        ok(len(st) == 3 and set(levels(st).values()) == {(vc.DEFAULT_LEVEL, 1)},
           "--cluster-level 1 holds the cluster at level 1: %s" % levels(st))


def rolling_upgrade(vigild):
    """Apply levels: a cluster told to go to level 2 (--cluster-level 2)
    whose nodes all act as an older vigild
    (--max-apply-level 1) stays at level 1 while they are upgraded one by
    one (the leader names the member it waits for), rises to level 2 once
    the last one runs the new vigild, with every replica verified; a node
    of the older kind started afterwards on a fresh data folder stops at
    the level command (exit 70) instead of applying the log the old way,
    and does not start on a state already at level 2 (exit 1)."""
    base = ("--election-timeout", "300", "--heartbeat", "50",
            "--checkpoint-interval", "300", "--cluster-level", "2")
    with vc.Cluster(vigild, node_args=base + ("--max-apply-level", "1")) as cluster:
        cluster.wait_ready_leader(timeout=10)
        st = wait_levels_heard(cluster, 1)
        ok(set(levels(st).values()) == {(1, 1)},
           "all nodes at --max-apply-level 1 report apply level 1 and stay at"
           " cluster level 1: %s" % levels(st))
        cluster.node_args = base
        for n in cluster.nodes[:2]:
            n.kill(signal.SIGTERM)
            n.start()
        cluster.wait_ready_leader(timeout=10)
        wait_levels_heard(cluster)
        # Nothing to wait for: give the leader's once-a-second look a chance.
        time.sleep(1.5)
        st = cluster.statuses(timeout=2)
        lead_id = next(i for i, s in st.items() if s.get("ready"))
        waiting = (st[lead_id].get("cluster_level") or {}).get("waiting_for")
        # An upgraded leader names node 3; node 3 as leader applies level 1
        # itself and has nothing to raise.
        ok(len(st) == 3 and all(c == 1 for _, c in levels(st).values()) and
           waiting == (3 if lead_id != 3 else None),
           "nodes 1 and 2 upgraded: the cluster stays at level 1 (leader %d"
           " waits for %s): %s" % (lead_id, waiting, levels(st)))
        old = cluster.nodes[2]
        old.kill(signal.SIGTERM)
        old.start()
        cluster.wait_statuses(
            lambda st: len(st) == 3 and all(c == 2 for _, c in levels(st).values()),
            lambda s: s.get("cluster_level"), timeout=20)
        st = cluster.wait_verified(timeout=20)
        ok({s["consistency"]["verdict"] for s in st.values()} == {"ok"} and
           all(lv == (vc.DEFAULT_LEVEL, 2) for lv in levels(st).values()),
           "node 3 upgraded: level 2 committed on every node, replicas verified"
           " ok: %s" % levels(st))
        leader_log = "".join(n.log() for n in cluster.nodes)
        ok("raising it from 1" in leader_log and "cluster level raised" in
           leader_log, "the leader logs why and when it raised the level")
        # Node 3 as an older vigild again: with its own state (at level 2)
        # it refuses to start; with a fresh data folder it catches up from
        # the log (or a snapshot) and stops when it reaches level 2.
        old.kill(signal.SIGTERM)
        for fresh in (False, True):
            if fresh:
                shutil.rmtree(old.data)
            old.start(["--max-apply-level", "1"])
            deadline = time.monotonic() + 30
            while old.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            code = old.proc.poll()
            said = [x for x in old.log().splitlines() if "up to level 1" in x]
            ok(code == (70 if fresh else 1) and said,
               "an older vigild on a level-2 cluster, %s: exit %s, %r"
               % ("fresh data folder" if fresh else "its own state", code, said[-1:]))
            old.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vigild", required=True)
    ap.add_argument("--vigilctl", required=True)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="vigil-admin-")
    try:
        startup_errors(args.vigild, tmp)
        admin(args.vigild, args.vigilctl)
        default_level(args.vigild)
        rolling_upgrade(args.vigild)
    except Exception as e:
        ok(False, "exception: %r" % (e,))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())
