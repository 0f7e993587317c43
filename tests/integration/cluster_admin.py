#!/usr/bin/env python3
"""Real-process tests of vigild's start-up errors, clean shutdown, hostile
client input, and the admin commands of vigilctl (membership changes and
leadership transfer) on a 3-node loopback cluster. Prints TAP."""
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


def vigilctl(ctl, cluster, *args):
    env = dict(os.environ)
    env["VIGIL_CLUSTER"] = ",".join(n.client_address for n in cluster.nodes if n.alive())
    return run([ctl, "--json"] + list(args), env=env, timeout=30)


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
        rc, out, err = vigilctl(ctl, cluster, "cluster", "add", "4", n4.raft_address,
                                n4.client_address)
        ok(rc == 0, "cluster add 4 (%s)" % (err.strip() or out.strip()))
        rc, out, err = vigilctl(ctl, cluster, "cluster", "promote", "4")
        ok(rc == 0, "cluster promote 4 (%s)" % (err.strip() or out.strip()))
        st = cluster.wait_converged(timeout=15)
        roles = {m["id"]: m["role"] for m in next(iter(st.values()))["members"]}
        ok(roles.get(4) == "voter" and len(st) == 4,
           "node 4 is a voter and has the same state as the others: %s" % roles)
        rc, out, err = vigilctl(ctl, cluster, "cluster", "demote", "4", "spare")
        ok(rc == 0, "cluster demote 4 spare (%s)" % (err.strip() or out.strip()))
        rc, out, err = vigilctl(ctl, cluster, "cluster", "remove", "4")
        ok(rc == 0, "cluster remove 4 (%s)" % (err.strip() or out.strip()))
        rc, out, err = vigilctl(ctl, cluster, "cluster", "remove", "4")
        ok(rc == 1 and "not a member" in (out + err), "removing it again fails clearly")
        n4.kill()
        cluster.nodes.remove(n4)

        # Transfer: to a named node, then let the leader choose.
        leader, _ = cluster.wait_ready_leader(timeout=10)
        target = next(n for n in cluster.nodes if n.id != leader.id)
        rc, out, err = vigilctl(ctl, cluster, "cluster", "transfer", str(target.id))
        landed, _ = cluster.wait_ready_leader(timeout=5)
        ok(rc == 0 and landed.id == target.id,
           "transfer to node %d landed on node %d (%s)" % (target.id, landed.id,
                                                         err.strip() or out.strip()))
        rc, out, err = vigilctl(ctl, cluster, "cluster", "transfer")
        landed2, _ = cluster.wait_ready_leader(timeout=5)
        ok(rc == 0 and landed2.id != landed.id, "transfer without target moved leadership")

        for i in range(5):
            vc.call(landed2.client_address, {"type": "put", "key": "k%d" % i, "value": "v"}, 2)
        cluster.wait_converged(timeout=15)
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
        f.kill(signal.SIGTERM)
        f.start(["--rebuild-state"])
        st = cluster.wait_verified(timeout=20)
        ok({s["consistency"]["verdict"] for s in st.values()} == {"ok"},
           "after --rebuild-state all replicas verified ok")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vigild", required=True)
    ap.add_argument("--vigilctl", required=True)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="vigil-admin-")
    try:
        startup_errors(args.vigild, tmp)
        admin(args.vigild, args.vigilctl)
    except Exception as e:
        ok(False, "exception: %r" % (e,))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())
