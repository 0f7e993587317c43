#!/usr/bin/env python3
"""Real-process tests of plant project engineering: `vigilctl project
validate/load/show/history/diff/watch` against 3 vigild on loopback, the
project requests' handling of hostile input, and the atomicity of a load when
the leader is killed -9 at several points of it. Prints TAP.

The done-criterion of the issue: a project loaded on a 3-node cluster is
identical on all nodes after the leader is killed and restarted. "Identical"
is checked three ways: the active version and files digest in every node's
status, the packed bundle bytes fetched from every node, and the nodes'
consistency checkpoints (whose state digest covers the project tables).

Every wait is bounded; every process started is killed by PID at the end.
"""
import argparse
import base64
import hashlib
import json
import re
import os
import random
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil_cluster as vc  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
MINI = os.path.join(SOURCE_ROOT, "tests", "data", "projects", "mini")
WATERWORKS = os.path.join(SOURCE_ROOT, "config", "examples", "waterworks")
PROJGEN = os.path.join(SOURCE_ROOT, "tools", "projgen.py")
CHUNK = 512 * 1024

tap = vc.Tap()
ok = tap.ok
skip = tap.skip


def run(cmd, timeout=60, env=None):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    return p.returncode, p.stdout, p.stderr


class Ctl:
    """Runs vigilctl against the cluster (or one address)."""

    def __init__(self, path, cluster):
        self.path = path
        self.cluster = cluster

    def __call__(self, *args, addr=None, json_out=False, timeout=60):
        env = dict(os.environ)
        env["VIGIL_CLUSTER"] = addr if addr is not None else ",".join(
            n.client_address for n in self.cluster.nodes if n.alive())
        cmd = [self.path] + (["--json"] if json_out else []) + list(args)
        return run(cmd, timeout=timeout, env=env)


# ---------------------------------------------------------------- projects

def copy_project(src, dst):
    shutil.copytree(src, dst)
    return dst


def add_tag_rows(project, rows):
    with open(os.path.join(project, "tags.csv"), "a") as f:
        for r in rows:
            f.write(r + "\n")


def make_big(base, dst, n_tags, seed):
    """BASE plus N_TAGS generated tags with random descriptions, so that the
    packed bundle is large (hardly compressible) and spans several upload
    chunks."""
    copy_project(base, dst)
    rnd = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    rows = []
    for i in range(n_tags):
        d1 = "".join(rnd.choice(letters) for _ in range(60))
        d2 = "".join(rnd.choice(letters) for _ in range(60))
        rows.append("gen.t%05d,tank,plc1,ir:%d,uint16,,,,,,,none,no,,,%s,%s"
                    % (i, 100 + i, d1, d2))
    add_tag_rows(dst, rows)
    return dst


def project_files(project):
    """The files vigilctl reads from a project folder (see FORMAT.md)."""
    files = {}
    for name in ("project.yaml", "tags.csv", "alarms.csv"):
        p = os.path.join(project, name)
        if os.path.isfile(p):
            files[name] = open(p, "rb").read().decode()
    sdir = os.path.join(project, "screens")
    if os.path.isdir(sdir):
        for name in sorted(os.listdir(sdir)):
            if name.endswith(".yaml") and not name.startswith("."):
                files["screens/" + name] = open(os.path.join(sdir, name), "rb").read().decode()
    return files


def pack(project):
    """A bundle like vg_project_files_pack makes: "VGP1", the JSON length as
    8 bytes big-endian, then zlib data of {"files": {PATH: TEXT}}."""
    text = json.dumps({"files": project_files(project)}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False).encode()
    return b"VGP1" + struct.pack(">Q", len(text)) + zlib.compress(text, 6)


def upload_requests(bundle, digest, comment):
    reqs = []
    for off in range(0, len(bundle), CHUNK):
        reqs.append({"type": "project_upload", "offset": off, "total": len(bundle),
                     "data": base64.b64encode(bundle[off:off + CHUNK]).decode(),
                     "digest": digest, "comment": comment, "user": "tap",
                     "station": "cluster_project.py"})
    return reqs


# --------------------------------------------------------------- helpers

def project_of(status):
    p = status.get("project") or {}
    return p.get("version"), p.get("digest")


def wait_project(cluster, version, digest, timeout=15):
    """Every alive node reports VERSION/DIGEST as its active project."""
    return cluster.wait_statuses(
        lambda st: all(project_of(s) == (version, digest) for s in st.values()),
        lambda s: project_of(s), timeout)


def wait_same_project(cluster, timeout=15):
    """Every alive node applied the same log and reports the same project."""
    st = cluster.wait_converged(timeout)
    return st, {project_of(s) for s in st.values()}


def fetch_bundle(addr, version=None, timeout=5.0):
    """The packed bundle of VERSION (None: active) from the node at ADDR, with
    the digest and version it reported."""
    c = vc.Conn(addr, timeout)
    try:
        data, off, total, digest, ver = b"", 0, None, None, None
        while total is None or off < total:
            req = {"type": "project_get", "offset": off}
            if version is not None:
                req["version"] = version
            a = c.call(req)
            if a.get("type") != "project_bundle":
                raise AssertionError("project_get at %s: %s" % (addr, a))
            total, digest, ver = a["total"], a["digest"], a["version"]
            chunk = base64.b64decode(a["data"])
            if not chunk:
                raise AssertionError("empty chunk at offset %d" % off)
            data += chunk
            off += len(chunk)
        return ver, digest, data
    finally:
        c.close()


def bundles_identical(cluster):
    """The active bundle fetched from every alive node: same version, digest
    and bytes. Returns (ok, description)."""
    seen = {}
    for n in cluster.nodes:
        if n.alive():
            ver, digest, data = fetch_bundle(n.client_address)
            seen[n.id] = (ver, digest, hashlib.sha256(data).hexdigest())
    return len(set(seen.values())) == 1, seen


class Watcher:
    """`vigilctl --json project watch` as a child; reads its JSON lines."""

    def __init__(self, ctl, addr):
        env = dict(os.environ)
        env["VIGIL_CLUSTER"] = addr
        self.proc = subprocess.Popen([ctl.path, "--json", "project", "watch"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env)
        self.buf = b""

    def line(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if not r:
                return None
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def wait_event(self, version, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ev = self.line(deadline - time.monotonic())
            if ev is None:
                return None
            if ev.get("type") == "event" and ev.get("version") == version:
                return ev
        return None

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()


# ------------------------------------------------------------------ tests

def local_tests(ctl, tmp):
    """vigilctl project validate: no cluster involved."""
    rc, out, err = ctl("project", "validate", MINI, addr="")
    ok(rc == 0 and "project mini is valid: 4 tags, 3 alarms, 1 screen" in out,
       "validate mini: exit 0 and a summary (%r)" % (out.strip() or err.strip()))
    if os.path.isdir(WATERWORKS):
        rc, out, err = ctl("project", "validate", WATERWORKS, addr="")
        ok(rc == 0 and "is valid" in out,
           "validate the waterworks example: %s" % (out.strip() or err.strip())[:200])
    else:
        skip("config/examples/waterworks does not exist yet")

    bad = copy_project(MINI, os.path.join(tmp, "bad"))
    alarms = open(os.path.join(bad, "alarms.csv")).read()
    open(os.path.join(bad, "alarms.csv"), "w").write(
        alarms.replace("tank.level.high,tank.level,", "tank.level.high,tank.levl,"))
    y = open(os.path.join(bad, "project.yaml")).read()
    open(os.path.join(bad, "project.yaml"), "w").write(
        y.replace("start_screen: overview", "start_screen: overveiw"))
    rc, out, err = ctl("project", "validate", bad, addr="")
    lines = out.strip().splitlines()
    diags = lines[:-1]
    ok(rc == 1 and lines and lines[-1] == "2 errors" and len(diags) == 2,
       "validate a broken project: exit 1, 2 diagnostics and '2 errors' (%r)" % out)
    ok(all(":" in d and ": error: " in d for d in diags) and
       diags[0].startswith("alarms.csv:") and diags[1].startswith("project.yaml:"),
       "diagnostics are FILE:LINE:COL: error: MSG, sorted by file: %r" % diags)
    ok(any("tank.levl" in d for d in diags) and any("overveiw" in d for d in diags),
       "each mistake is named")
    rc, out, err = ctl("project", "validate", addr="")
    ok(rc == 2 and "usage" in err, "validate without DIR: usage error, exit 2")
    rc, out, err = ctl("project", "validate", os.path.join(tmp, "nope"), addr="")
    ok(rc == 1 and "nope" in err, "validate a missing folder: exit 1 naming it (%r)" % err.strip())
    rc, out, err = ctl("project", "show", "--comment", "x", addr="127.0.0.1:1")
    ok(rc == 2 and "--comment" in err, "--comment outside 'project load' is a usage error")

    big = os.path.join(tmp, "synthetic10k")
    rc, out, err = run([sys.executable, PROJGEN, "--tags", "10000", "--out", big])
    t0 = time.monotonic()
    rc, out, err = ctl("project", "validate", big, addr="")
    took = time.monotonic() - t0
    ok(rc == 0 and "10000 tags" in out and took < 5.0,
       "validate 10 000 tags (tools/projgen.py) in %.2f s (%s)" % (
           took, (out.strip() or err.strip())[:120]))
    return bad, big


def hostile_project_requests(cluster, leader, follower):
    c = vc.Conn(leader.client_address, 5.0)
    try:
        def expect(req, code, what, contains=None):
            a = c.call(req)
            good = a.get("type") == "error" and a.get("code") == code and \
                (contains is None or contains in a.get("message", ""))
            ok(good, "%s: %s %s" % (what, a.get("code"), a.get("message")))
            return a
        digest = "0" * 64
        expect({"type": "project_show", "verison": 1}, "invalid", "misspelt member",
               "verison")
        expect({"type": "project_show", "version": "1"}, "invalid", "version as a string")
        expect({"type": "project_show", "version": 0}, "invalid", "version 0")
        expect({"type": "project_show", "version": 999}, "invalid",
               "a version that does not exist", "999")
        expect({"type": "project_history", "limit": -1}, "invalid", "negative limit")
        expect({"type": "project_get"}, "invalid", "project_get without offset")
        expect({"type": "project_get", "offset": 0, "length": 10 ** 9}, "invalid",
               "project_get length over 512 KiB")
        expect({"type": "subscribe", "topics": ["tags"]}, "invalid", "unknown topic")
        expect({"type": "subscribe", "topics": "project"}, "invalid", "topics not an array")
        up = {"type": "project_upload", "offset": 0, "total": 10,
              "data": base64.b64encode(b"0123456789").decode(), "digest": digest}
        expect(dict(up, digest="XYZ"), "invalid", "digest not hex")
        expect(dict(up, total=0), "invalid", "total 0")
        expect(dict(up, total=65 * 1024 * 1024), "invalid", "total over 64 MiB")
        expect(dict(up, total=4 * 1024 * 1024 + 1), "too_big",
               "bundle over the 4 MiB a load carries")
        expect(dict(up, data="not base64!"), "invalid", "data not base64")
        expect(dict(up, data=base64.b64encode(b"x" * 11).decode()), "invalid",
               "data longer than total")
        expect(dict(up, offset=5), "invalid", "first chunk not at offset 0",
               "expected offset 0")
        a = c.call(dict(up, total=20))
        ok(a.get("type") == "upload" and a.get("received") == 10,
           "first half of an upload accepted: %s" % a)
        a = expect(dict(up, offset=20, total=20), "invalid", "a gap", "expected offset 10")
        ok(a.get("expected_offset") == 10, "the error carries expected_offset 10")
        expect(dict(up, offset=10, total=30), "invalid", "total changed mid-upload")
        expect(dict(up, offset=10, total=20, extra=1), "invalid", "unknown member in an upload")
        a = expect(dict(up, offset=10, total=20), "invalid",
                   "a completed upload that is no bundle is refused",
                   "not a project bundle")
        ok(c.call({"type": "ping"}).get("type") == "pong",
           "connection usable after the hostile project requests")

        # Random members of random types: every request is answered (by an
        # answer or an error frame with its id) and the node stays up.
        rnd = random.Random(7)
        values = [None, True, -1, 0, 1, 2 ** 31, 2 ** 63 - 1, -2 ** 63, 1e300, 0.5,
                  "", "project", "AAAA", "=", "x" * 5000, "\u00e4\u20ac\U0001f600", [], ["project"],
                  [1, 2], {}, {"a": 1}, digest, "A" * 700000]
        members = ["offset", "total", "data", "digest", "comment", "user", "station",
                   "version", "length", "limit", "topics", "junk"]
        types = ["project_upload", "project_show", "project_history", "project_get",
                 "subscribe"]
        unanswered = []
        for i in range(300):
            req = {"type": rnd.choice(types)}
            for m in rnd.sample(members, rnd.randint(0, 5)):
                req[m] = rnd.choice(values)
            if len(json.dumps(req)) > 900 * 1024:
                continue  # an oversized frame has no readable id to answer
            a = c.call(req)
            if a.get("type") is None:
                unanswered.append(req)
        ok(not unanswered and leader.alive() and
           c.call({"type": "ping"}).get("type") == "pong",
           "300 random project requests answered, node alive (%d odd answers)"
           % len(unanswered))
    finally:
        c.close()
    # A follower names the leader once it applied the leader's announce.
    cluster.wait_converged(10)
    a = vc.call(follower.client_address,
                {"type": "project_upload", "offset": 0, "total": 4, "data": "AAAA",
                 "digest": "0" * 64}, 2.0)
    ok(a.get("code") == "not_leader" and
       (a.get("leader") or {}).get("client_address") == leader.client_address,
       "a follower redirects project_upload to the leader: %s" % a.get("message"))


def server_side_validation(leader, bad, ctl):
    """What vigilctl refuses locally the leader refuses too."""
    rc, out, _ = ctl("project", "validate", bad, addr="", json_out=True)
    digest = json.loads(out)["digest"]
    c = vc.Conn(leader.client_address, 10.0)
    try:
        answer = None
        for req in upload_requests(pack(bad), digest, "bypassing vigilctl"):
            answer = c.call(req)
        diags = answer.get("diagnostics") or []
        ok(answer.get("code") == "invalid" and answer.get("errors") == 2 and
           len(diags) == 2 and all(": error: " in d for d in diags),
           "the leader validates too: invalid with 2 diagnostics %s" % diags)
        good_digest = "f" * 64
        for req in upload_requests(pack(MINI), good_digest, "wrong digest"):
            answer = c.call(req)
        ok(answer.get("code") == "invalid" and "digest mismatch" in answer.get("message", ""),
           "a digest that does not match the files is refused: %s" % answer.get("message"))
    finally:
        c.close()


def load_tests(cluster, ctl, tmp, bad, big10k):
    leader, _ = cluster.wait_ready_leader(timeout=10)
    follower = next(n for n in cluster.nodes if n.id != leader.id)
    st = cluster.wait_statuses(lambda s: True, lambda s: project_of(s), 5)
    ok(all(project_of(s) == (0, None) for s in st.values()),
       "fresh cluster: no project on any node")
    rc, out, err = ctl("project", "show")
    ok(rc == 0 and "no project has been loaded" in out, "show before any load: %r" % out.strip())

    hostile_project_requests(cluster, leader, follower)
    server_side_validation(leader, bad, ctl)

    # A watcher on a follower, through vigilctl.
    watcher = Watcher(ctl, follower.client_address)
    try:
        first = watcher.line(10)
        ok(first is not None and first.get("type") == "subscribed" and
           first.get("node") == follower.id,
           "vigilctl project watch subscribed on follower %d: %s" % (follower.id, first))

        rc, out, err = ctl("project", "load", MINI, "--comment", "first load")
        ok(rc == 0 and out.startswith("loaded version 1 (digest "),
           "load mini: %r %r" % (out.strip(), err.strip()))
        rc, out, _ = ctl("project", "validate", MINI, addr="", json_out=True)
        mini_digest = json.loads(out)["digest"]
        wait_project(cluster, 1, mini_digest)
        ok(True, "all 3 nodes report version 1 with digest %s…" % mini_digest[:16])
        ev = watcher.wait_event(1, 10)
        ok(ev is not None and ev.get("event") == "activated" and ev.get("topic") == "project"
           and ev.get("digest") == mini_digest and ev.get("name") == "mini",
           "the watcher on the follower got the activation event: %s" % ev)

        # Every node answers from its own replica (the protocol request;
        # vigilctl itself prefers the leader so that a script sees its own
        # load). A follower may learn the commit a heartbeat later.
        cluster.wait_converged(timeout=5)
        for n in cluster.nodes:
            c = vc.Conn(n.client_address, 5.0)
            try:
                a = c.call({"type": "project_show"})
            finally:
                c.close()
            rc = 0 if a.get("type") != "error" else 1
            ok(rc == 0 and a.get("node") == n.id and a.get("version") == 1 and
               a.get("digest") == mini_digest and a.get("active") is True and
               a.get("comment") == "first load" and
               (a.get("summary") or {}).get("tags") == 4,
               "project show on node %d: version %s, %s" % (n.id, a.get("version"),
                                                            a.get("summary")))
        rc, out, err = ctl("project", "show", addr=follower.client_address)
        ok(rc == 0 and "version 1 of project mini" in out and "active" in out and
           re.search(r"as stored on node \d+, applied index \d+", out),
           "text form of show names the node: %r" % out.strip().splitlines()[-1:])

        rc, out, err = ctl("project", "load", MINI)
        ok(rc == 0 and out.startswith("unchanged: version 1 is already active"),
           "loading the same files again: %r" % out.strip())

        changed = copy_project(MINI, os.path.join(tmp, "changed"))
        add_tag_rows(changed, ["tank.temp,tank,plc1,ir:1,int16,,,,,°C,0.5,change,no,,,"
                               "Tank temperature,Behältertemperatur"])
        rc, out, err = ctl("project", "load", changed, "--comment", "added tank.temp")
        ok(rc == 0 and out.startswith("loaded version 2"),
           "load a changed copy: %r %r" % (out.strip(), err.strip()))
        rc, out, _ = ctl("project", "validate", changed, addr="", json_out=True)
        changed_digest = json.loads(out)["digest"]
        wait_project(cluster, 2, changed_digest)
        ok(True, "all 3 nodes report version 2")
        ev = watcher.wait_event(2, 10)
        ok(ev is not None and ev.get("digest") == changed_digest,
           "the watcher got version 2 too")
    finally:
        watcher.close()

    rc, out, err = ctl("project", "history", json_out=True)
    h = json.loads(out) if rc == 0 else {}
    vers = [(v["version"], v["active"], v["comment"]) for v in h.get("versions", [])]
    ok(rc == 0 and vers == [(1, False, "first load"), (2, True, "added tank.temp")] and
       h.get("total") == 2, "history: %s" % vers)
    rc, out, err = ctl("project", "history")
    ok(rc == 0 and "added tank.temp" in out and "active" in out,
       "text history lists both versions")

    rc, out, err = ctl("project", "diff", "1", "2")
    ok(rc == 0 and "tank.temp" in out, "diff 1 2 shows the added tag: %r %r" % (
        out.strip()[:300], err.strip()[:200]))
    rc, out, err = ctl("project", "diff", "1", "9")
    ok(rc == 1 and "9" in err, "diff with a missing version fails: %r" % err.strip())

    rc, out, err = ctl("project", "load", bad)
    ok(rc == 1 and "2 errors" in err and "nothing was sent" in err,
       "loading an invalid project: exit 1, errors shown, nothing sent")
    st, projects = wait_same_project(cluster)
    ok(projects == {(2, changed_digest)},
       "after the invalid load all nodes still have version 2: %s" % projects)

    # Raw subscribe on a follower sees nothing from an unchanged load, then
    # an event for a new version.
    c = vc.Conn(follower.client_address, 10.0)
    try:
        a = c.call({"type": "subscribe", "topics": ["project"]})
        ok(a.get("type") == "subscribed" and (a.get("project") or {}).get("version") == 2,
           "raw subscribe answers with the active version: %s" % a.get("project"))
        rc, out, err = ctl("project", "load", MINI, "--comment", "back to mini")
        ok(rc == 0 and out.startswith("loaded version 3"),
           "the files of version 1 again become version 3: %r" % out.strip())
        ev = c.recv()
        ok(ev.get("type") == "event" and ev.get("version") == 3 and "id" not in ev,
           "raw subscriber got an unsolicited event frame: %s" % ev)
        ok(c.call({"type": "ping"}).get("type") == "pong",
           "requests still answered on the subscribed connection")
    finally:
        c.close()

    t0 = time.monotonic()
    rc, out, err = ctl("project", "load", big10k, "--comment", "10 000 tags")
    took = time.monotonic() - t0
    ok(rc == 0 and out.startswith("loaded version 4"),
       "load 10 000 tags in %.2f s: %r %r" % (took, out.strip(), err.strip()))
    st, projects = wait_same_project(cluster)
    ok(len(projects) == 1 and next(iter(projects))[0] == 4,
       "all nodes have the 10 000-tag version 4: %s" % projects)

    # Two uploads complete at the same time on two connections: the leader
    # validates them one after the other and commits both.
    leader, _ = cluster.wait_ready_leader(timeout=10)
    conns = [vc.Conn(leader.client_address, 20.0) for _ in range(2)]
    try:
        sent = []
        for c, (path, digest) in zip(conns, [(MINI, mini_digest),
                                             (changed, changed_digest)]):
            sent.append(c.send(upload_requests(pack(path), digest, "concurrent")[0]))
        answers = [c.recv() for c in conns]
        ok(all(a.get("type") == "project_loaded" for a in answers) and
           sorted(a.get("version") for a in answers) == [5, 6] and
           [a.get("id") for a in answers] == sent,
           "two concurrent uploads both committed: %s" % [
               (a.get("version"), a.get("code"), a.get("message")) for a in answers])
    finally:
        for c in conns:
            c.close()


def kill_scenarios(cluster, ctl, tmp):
    """Kill -9 the leader during a load; afterwards every node must agree on
    one version, old or new, with identical bundles."""
    big = []
    for k in range(4):
        p = make_big(MINI, os.path.join(tmp, "big%d" % k), 12000, seed=100 + k)
        rc, out, _ = ctl("project", "validate", p, addr="", json_out=True)
        big.append((p, json.loads(out)["digest"], pack(p)))
    ok(all(len(b[2]) > 2 * CHUNK for b in big),
       "generated projects of %s bytes packed (several chunks each)" %
       [len(b[2]) for b in big])

    def check_agreement(what, allowed):
        leader, took = cluster.wait_ready_leader(timeout=10)
        st, projects = wait_same_project(cluster, timeout=20)
        same, seen = bundles_identical(cluster)
        good = len(projects) == 1 and next(iter(projects))[1] in allowed and same
        ok(good, "%s: new leader %d after %.2f s; every alive node has %s; bundles %s" % (
            what, leader.id, took, projects, "identical" if same else seen))
        return next(iter(projects)) if len(projects) == 1 else None

    def restart_and_check(victim, what, expect):
        victim.start()
        st = cluster.wait_verified(timeout=30)
        projects = {project_of(s) for s in st.values()}
        same, seen = bundles_identical(cluster)
        ok(projects == {expect} and same and len(st) == 3,
           "%s: node %d restarted, all 3 verified on %s, bundles identical" % (
               what, victim.id, projects))

    current = project_of(next(iter(cluster.wait_converged(15).values())))
    allowed = {current[1]}

    # 1. During the upload: only the first chunk arrived.
    path, digest, bundle = big[0]
    leader, _ = cluster.wait_ready_leader(timeout=10)
    c = vc.Conn(leader.client_address, 10.0)
    reqs = upload_requests(bundle, digest, "killed during upload")
    a = c.call(reqs[0])
    ok(a.get("type") == "upload" and a.get("received") == CHUNK,
       "first chunk of %d accepted by leader %d" % (len(reqs), leader.id))
    leader.kill()
    c.close()
    got = check_agreement("leader killed during the upload", allowed)
    ok(got == current, "an incomplete upload left no trace: %s" % (got,))
    restart_and_check(leader, "after the kill during upload", current)

    # 2. Right after the final chunk was sent, without waiting for anything.
    path, digest, bundle = big[1]
    leader, _ = cluster.wait_ready_leader(timeout=10)
    c = vc.Conn(leader.client_address, 10.0)
    reqs = upload_requests(bundle, digest, "killed after the final chunk")
    for r in reqs[:-1]:
        c.call(r)
    c.send(reqs[-1])
    leader.kill()
    c.close()
    allowed |= {digest}
    current = check_agreement("leader killed right after the final chunk", allowed)
    restart_and_check(leader, "after the kill after the final chunk", current)
    allowed = {current[1]}

    # 3. After the leader proposed the load (its log says so), before or
    #    after the commit: whichever, all or nothing.
    path, digest, bundle = big[2]
    leader, _ = cluster.wait_ready_leader(timeout=10)
    log_before = len(leader.log())
    c = vc.Conn(leader.client_address, 10.0)
    reqs = upload_requests(bundle, digest, "killed after proposing")
    for r in reqs[:-1]:
        c.call(r)
    c.send(reqs[-1])
    deadline = time.monotonic() + 10
    while "validated, proposed" not in leader.log()[log_before:] and \
            time.monotonic() < deadline:
        time.sleep(0.002)
    proposed = "validated, proposed" in leader.log()[log_before:]
    leader.kill()
    c.close()
    ok(proposed, "leader %d logged the proposal before it was killed" % leader.id)
    allowed |= {digest}
    current = check_agreement("leader killed after proposing", allowed)
    restart_and_check(leader, "after the kill after proposing", current)

    # 4. vigilctl load while the leader dies somewhere in it: vigilctl starts
    #    over on the new leader and succeeds; whatever happened, all agree.
    path, digest, bundle = big[3]
    leader, _ = cluster.wait_ready_leader(timeout=10)
    env = dict(os.environ)
    env["VIGIL_CLUSTER"] = ",".join(n.client_address for n in cluster.nodes)
    proc = subprocess.Popen([ctl.path, "project", "load", path, "--comment", "vigilctl"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        deadline = time.monotonic() + 10
        saw_upload = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                p = leader.status(0.2).get("project") or {}
            except (OSError, vc.ProtocolError, ValueError):
                p = {}
            if p.get("upload_bytes", 0) > 0 or p.get("validating", 0) > 0:
                saw_upload = True
                break
        leader.kill()
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    ok(proc.returncode == 0 and ("loaded version" in out or "unchanged" in out),
       "vigilctl load with the leader killed %s: exit %s, %r (%s)" % (
           "mid-upload" if saw_upload else "(upload not observed in flight)",
           proc.returncode, out.strip(), " ".join(err.split())[:300]))
    current = check_agreement("after vigilctl's load", {digest})
    restart_and_check(leader, "done-criterion", current)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vigild", required=True)
    ap.add_argument("--vigilctl", required=True)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="vigil-project-")
    try:
        ctl = Ctl(args.vigilctl, None)
        bad, big10k = local_tests(ctl, tmp)
        # The context manager kills every node it started, also on errors.
        with vc.Cluster(args.vigild) as cluster:
            ctl.cluster = cluster
            load_tests(cluster, ctl, tmp, bad, big10k)
            kill_scenarios(cluster, ctl, tmp)
    except Exception as e:
        import traceback
        traceback.print_exc(file=sys.stderr)
        ok(False, "exception: %r" % (e,))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())
