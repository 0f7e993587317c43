"""Test harness for real vigild processes on loopback (or on addresses in
network namespaces a test made itself: Cluster's hosts and wrap).

Starts nodes as child processes with their own data folders under a temp
dir, talks to them over the client protocol (4-byte length + JSON), and
always cleans up: every process it started is killed by PID and the temp dir
removed, also when a test fails. Used by the integration tests and by the
benchmarks in bench/.
"""
import json
import re
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time


class Tap:
    """TAP lines for a test script: ok() prints one numbered result per
    check (on one line), finish() prints the plan and gives the exit status."""

    def __init__(self):
        self.results = []

    def ok(self, cond, what):
        what = " ".join(str(what).split())
        self.results.append(bool(cond))
        print("%s %d - %s" % ("ok" if cond else "not ok", len(self.results), what))
        sys.stdout.flush()
        return cond

    def skip(self, what):
        self.results.append(True)
        print("ok %d - # SKIP %s" % (len(self.results), what))
        sys.stdout.flush()

    def finish(self):
        print("1..%d" % len(self.results))
        return 0 if all(self.results) else 1


def wait_for(cond, timeout, poll=0.02):
    """Poll COND until it returns a true value or TIMEOUT seconds pass; the
    last value of COND."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(poll)


class PlcSim:
    """One vigil-plcsim process serving PLC of PROJECT, its stderr in a file
    under TMP; LISTEN ("host:port") overrides the project's address."""

    def __init__(self, exe, project, plc, tmp, listen=None, extra=()):
        self.plc = plc
        tag = plc + ("-" + listen.replace(":", "-") if listen else "")
        self.stderr_path = os.path.join(tmp, tag + ".err")
        cmd = [exe, "--project", project, "--plc", plc]
        if listen:
            cmd += ["--listen", listen]
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(cmd + list(extra),
                                         stdout=subprocess.DEVNULL, stderr=err)

    def stderr(self):
        with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def wait_started(self, timeout=10):
        """True once it says it is serving; False if it exited or timed out."""
        return wait_for(lambda: "serving PLC" in self.stderr()
                        or self.proc.poll() is not None, timeout) \
            and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Send SIG and return the exit status (None if it did not exit)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def free_ports(n):
    """N distinct free TCP ports on 127.0.0.1 (bound then released)."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


class ProtocolError(Exception):
    pass


class Conn:
    """One client connection to one node (no redirects: tests want to know
    exactly which node answered)."""

    def __init__(self, addr, timeout=2.0):
        host, port = addr.rsplit(":", 1)
        self.addr = addr
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.next_id = 1

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, msg):
        msg = dict(msg)
        msg.setdefault("v", 1)
        if "id" not in msg:
            msg["id"] = self.next_id
            self.next_id += 1
        data = json.dumps(msg).encode()
        self.sock.sendall(struct.pack(">I", len(data)) + data)
        return msg["id"]

    def send_raw(self, data):
        self.sock.sendall(data)

    def recv(self):
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack(">I", self.buf[:4])[0]
                if len(self.buf) >= 4 + n:
                    frame = self.buf[4:4 + n]
                    self.buf = self.buf[4 + n:]
                    return json.loads(frame)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ProtocolError("connection closed by %s" % self.addr)
            self.buf += chunk

    def call(self, msg):
        want = self.send(msg)
        while True:
            answer = self.recv()
            if answer.get("id") == want:
                return answer


def call(addr, msg, timeout=1.0):
    c = Conn(addr, timeout)
    try:
        return c.call(msg)
    finally:
        c.close()


class Node:
    def __init__(self, cluster, node_id, raft_port, client_port, host="127.0.0.1"):
        self.cluster = cluster
        self.id = node_id
        self.host = host
        self.raft_address = "%s:%d" % (host, raft_port)
        self.client_address = "%s:%d" % (host, client_port)
        self.data = os.path.join(cluster.dir, "n%d" % node_id)
        self.log_path = os.path.join(cluster.dir, "n%d.log" % node_id)
        self.proc = None
        self._killed = None  # the process kill() ended
        # (monotonic time it was found, exit status) of every process of
        # this node that ended on its own: not by kill(), e.g. a crash.
        self.deaths = []

    def note_death(self):
        """Record the current process's end if it ended on its own (found
        when the node is next started or killed, or when asked). Returns the
        list of deaths."""
        p = self.proc
        if (p is not None and p is not self._killed and p.poll() is not None
                and not any(d[2] is p for d in self.deaths)):
            self.deaths.append((time.monotonic(), p.returncode, p))
        return [(t, rc) for t, rc, _ in self.deaths]

    def start(self, extra=()):
        self.note_death()
        args = [self.cluster.vigild, "--id", str(self.id),
                "--raft-address", self.raft_address,
                "--client-address", self.client_address,
                "--data", self.data,
                "--bootstrap", self.cluster.bootstrap_spec()]
        args += list(self.cluster.node_args) + list(extra)
        if self.cluster.wrap is not None:
            args = list(self.cluster.wrap(self)) + args
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=log)
        log.close()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig=signal.SIGKILL):
        self.note_death()
        if self.alive():
            self._killed = self.proc
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def status(self, timeout=0.5):
        return call(self.client_address, {"type": "status"}, timeout)

    def log(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""


# The apply level a cluster rises to without --cluster-level: the highest
# vigild applies (VG_REPL_APPLY_LEVEL, replication/replication.h).
DEFAULT_LEVEL = 4


def wanted_level():
    """The apply level VIGIL_NODE_ARGS asks the cluster for
    (--cluster-level N), else DEFAULT_LEVEL."""
    words = os.environ.get("VIGIL_NODE_ARGS", "").split()
    for i, w in enumerate(words[:-1]):
        if w == "--cluster-level":
            return int(words[i + 1])
    return DEFAULT_LEVEL


def level_reached(cluster, timeout=10.0):
    """Wait (bounded) until every alive node applies at wanted_level();
    (True, levels by node) or (False, what the nodes said last)."""
    want = wanted_level()

    def levels(st):
        return {i: (s.get("cluster_level") or {}).get("committed")
                for i, s in st.items()}
    try:
        st = cluster.wait_statuses(lambda st: set(levels(st).values()) == {want},
                                   lambda s: s.get("cluster_level"), timeout)
        return True, levels(st)
    except AssertionError as e:
        return False, str(e)


class Cluster:
    """N vigild processes on loopback. Use as a context manager.

    HOSTS (optional) gives each node's IP address instead of 127.0.0.1, and
    WRAP (optional) maps a Node to the command that starts its vigild, e.g.
    ["ip", "netns", "exec", NAME] for a network namespace of its own
    (chaos-tests/netns.py). WRAP must exec vigild, so that the process the
    harness signals and waits for is the node itself."""

    def __init__(self, vigild, n=3, node_args=("--election-timeout", "300",
                                                "--heartbeat", "50",
                                                "--checkpoint-interval", "300"),
                 hosts=None, wrap=None):
        self.vigild = vigild
        self.wrap = wrap
        self.dir = tempfile.mkdtemp(prefix="vigil-cluster-")
        # VIGIL_NODE_ARGS (split on blanks) is added to every node's flags,
        # e.g. "--cluster-level 2" to run a test at apply level 2.
        self.node_args = tuple(node_args) + tuple(
            os.environ.get("VIGIL_NODE_ARGS", "").split())
        ports = free_ports(2 * n)
        hosts = list(hosts) if hosts else ["127.0.0.1"] * n
        self.nodes = [Node(self, i + 1, ports[2 * i], ports[2 * i + 1], hosts[i])
                      for i in range(n)]

    def bootstrap_spec(self):
        return ",".join("%d=%s/%s" % (n.id, n.raft_address, n.client_address)
                        for n in self.nodes)

    def __enter__(self):
        for n in self.nodes:
            n.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for n in self.nodes:
            n.kill()
        if os.environ.get("VIGIL_KEEP_TMP"):
            print("kept", self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def dump_logs(self, tail=3000):
        """The end of every node's log on stderr (after a failure)."""
        for n in self.nodes:
            sys.stderr.write("---- node %d log tail\n%s\n" % (n.id, n.log()[-tail:]))

    def statuses(self, timeout=0.3):
        out = {}
        for n in self.nodes:
            if not n.alive():
                continue
            try:
                out[n.id] = n.status(timeout)
            except (OSError, ProtocolError, ValueError):
                pass
        return out

    def wait_ready_leader(self, timeout=5.0, exclude=(), poll=0.01):
        """Poll until some alive node (not in EXCLUDE) reports ready; return it
        and the time it took. Bounded by TIMEOUT."""
        start = time.monotonic()
        deadline = start + timeout
        while time.monotonic() < deadline:
            for n in self.nodes:
                if n.id in exclude or not n.alive():
                    continue
                try:
                    s = call(n.client_address, {"type": "ping"}, 0.2)
                except (OSError, ProtocolError, ValueError):
                    continue
                if s.get("ready"):
                    return n, time.monotonic() - start
            time.sleep(poll)
        raise AssertionError("no ready leader within %.1f s" % timeout)

    def wait_statuses(self, accept, what, timeout=10.0):
        """Poll the status of every alive node until all answered and
        ACCEPT(statuses) holds; return the statuses. Bounded by TIMEOUT;
        the error shows WHAT of each node's last status."""
        deadline = time.monotonic() + timeout
        last = {}
        while time.monotonic() < deadline:
            st = self.statuses()
            alive = [n.id for n in self.nodes if n.alive()]
            if len(st) == len(alive) and accept(st):
                return st
            last = st
            time.sleep(0.05)
        raise AssertionError("timed out after %.1f s: %s" % (timeout, json.dumps(
            {k: what(v) for k, v in last.items()})))

    def wait_converged(self, timeout=10.0):
        """Every alive node reports the same applied index and chain hash."""
        def same(st):
            return len({(s["applied_index"], s["consistency"]["chain_hash"])
                        for s in st.values()}) == 1
        return self.wait_statuses(
            same, lambda s: (s["applied_index"], s["consistency"]["chain_hash"][:12]),
            timeout)

    def wait_verified(self, timeout=10.0):
        """Converged, every node has compared a checkpoint with the leader's
        (verdict not 'unknown'), and all agree on the latest checkpoint."""
        def verified(st):
            same = len({(s["applied_index"], s["consistency"]["chain_hash"],
                         s["consistency"]["checkpoint_index"],
                         s["consistency"]["state_digest"])
                        for s in st.values()}) == 1
            return same and all(s["consistency"]["verdict"] != "unknown"
                                for s in st.values())
        return self.wait_statuses(
            verified, lambda s: (s["applied_index"], s["consistency"]["verdict"],
                                 s["consistency"]["checkpoint_index"]),
            timeout)


def journal_counts(addr, cause):
    """{alarm: entries with CAUSE} of the project alarms (not the system
    alarms "$…") in the alarm journal at ADDR, every page (2000 entries a
    page fit in a frame)."""
    counts, before = {}, 0
    for _ in range(100000):
        q = {"type": "alarm_journal", "cause": cause, "limit": 2000}
        if before:
            q["before_id"] = before
        j = call(addr, q, timeout=30)
        if "entries" not in j:
            raise AssertionError("alarm_journal: %s" % j)
        for e in j["entries"]:
            if not e["alarm"].startswith("$"):
                counts[e["alarm"]] = counts.get(e["alarm"], 0) + 1
        if not j.get("more") or not j["entries"]:
            break
        before = j["entries"][-1]["id"]
    return counts


def alarm_states(addr):
    """{alarm: entry} of every alarm the ready leader at ADDR lists
    (alarms_list "all": committed states, normal ones too; one frame)."""
    ans = call(addr, {"type": "alarms_list", "all": True}, timeout=2.0)
    if "alarms" not in ans:
        raise AssertionError("alarms_list: %s" % ans)
    return {e["alarm"]: e for e in ans["alarms"]}


def unexpected(tap, e):
    """Report exception E as a failed TAP test (with its traceback)."""
    import traceback
    traceback.print_exc()
    tap.ok(False, "unexpected: %r" % e)


def teardown(tap, cluster=None, sims=(), conns=(), tmp=None):
    """The end of a real-process test: close CONNS, dump the cluster's logs
    if a TAP test failed, stop the cluster and the simulators (by PID) and
    remove TMP."""
    for c in conns:
        c.close()
    if cluster is not None:
        if not all(tap.results):
            cluster.dump_logs()
        cluster.close()
    for s in sims:
        if s is not None:
            s.kill()
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)


def percentile(values, p):
    s = sorted(values)
    if not s:
        return float("nan")
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * (len(s) - 1)))))
    return s[k]


WATERWORKS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "config", "examples", "waterworks")


def write_synthetic_project(d, port, n_alarms, n_archived, poll_ms,
                            host="127.0.0.1"):
    """A generated project in folder D for one vigil-plcsim on HOST:PORT: N_ALARMS
    discrete inputs b.NNNNN, each watched by a digital_off alarm b.NNNNN.off
    (the simulator's inputs are 0, so all are raised at start), and
    N_ARCHIVED noisy input registers a.NNNNN archived on change without a
    deadband, all polled every POLL_MS."""
    os.makedirs(d)
    with open(os.path.join(d, "project.yaml"), "w") as f:
        f.write("""project: synthetic
version: "1"
title: {en: Synthetic plant}
languages: [en]
sections:
  - name: bench
    title: {en: Bench}
plcs:
  - name: plc
    host: %s
    port: %d
    unit_id: 1
    poll_interval: %dms
    timeout: 2s
""" % (host, port, poll_ms))
    with open(os.path.join(d, "tags.csv"), "w") as f:
        f.write("name,section,plc,address,type,word_order,raw_min,raw_max,eng_min,"
                "eng_max,unit,deadband,archive,writable,min,max,description_en\n")
        for i in range(n_alarms):
            f.write("b.%05d,bench,plc,di:%d,bool,,,,,,,,,,,,Input %d\n" % (i, i, i))
        for i in range(n_archived):
            f.write("a.%05d,bench,plc,ir:%d,int16,,0,27648,0,100,%%,0,change,,,,"
                    "Analog %d\n" % (i, i, i))
    with open(os.path.join(d, "alarms.csv"), "w") as f:
        f.write("name,tag,kind,limit,hysteresis,on_delay,off_delay,priority,section,"
                "reference,message_en\n")
        for i in range(n_alarms):
            f.write("b.%05d.off,b.%05d,digital_off,,,,,medium,,,Input %d off\n"
                    % (i, i, i))


def copy_project(dst, ports):
    """The waterworks example into DST with its PLC ports (5020, 5021) replaced."""
    shutil.copytree(WATERWORKS, dst)
    path = os.path.join(dst, "project.yaml")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for old, new in zip((5020, 5021), ports):
        text, n = re.subn(r"(\n\s*port:\s*)%d\b" % old, r"\g<1>%d" % new, text)
        if n != 1:
            raise RuntimeError("port %d not found once in project.yaml" % old)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return dst


def ctl(exe, cluster, *args, timeout=60):
    env = dict(os.environ)
    env["VIGIL_CLUSTER"] = ",".join(n.client_address for n in cluster.nodes
                                    if n.alive())
    p = subprocess.run([exe] + list(args), capture_output=True, text=True,
                       timeout=timeout, env=env)
    return p.returncode, p.stdout, p.stderr


def modbus_write(port, address, values, unit=1, timeout=2.0, host="127.0.0.1"):
    """Write holding registers ADDRESS.. = VALUES (function 0x10) to the
    Modbus TCP server at HOST:PORT, the way an engineer's tool or the PLC
    program itself would change them. Raises ProtocolError on an exception
    answer."""
    pdu = struct.pack(">BHHB", 0x10, address, len(values), 2 * len(values)) + \
        b"".join(struct.pack(">H", v & 0xffff) for v in values)
    frame = struct.pack(">HHHB", 1, 0, len(pdu) + 1, unit) + pdu
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(frame)
        answer = b""
        while len(answer) < 9:
            chunk = s.recv(260)
            if not chunk:
                raise ProtocolError("Modbus server closed the connection")
            answer += chunk
    if answer[7] & 0x80:
        raise ProtocolError("Modbus exception %d" % answer[8])


def read_write_log(path):
    """The JSON lines of a vigil-plcsim --write-log file."""
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line:
                    out.append(json.loads(line))
    except FileNotFoundError:
        pass
    return out


def polling_leader(cluster, timeout=15, exclude=()):
    """The ready leader (not in EXCLUDE: e.g. a paused node, which cannot
    answer) once it polls both PLCs with every tag good, and its term."""
    end = time.monotonic() + timeout
    last = {}
    while time.monotonic() < end:
        for n in cluster.nodes:
            if n.id in exclude or not n.alive():
                continue
            try:
                s = n.status(0.3)
            except (OSError, ProtocolError, ValueError):
                continue
            last[n.id] = (s.get("ready"), s.get("plc"))
            p = s.get("plc") or {}
            if s.get("ready") and p.get("polling") and len(p.get("plcs", [])) == 2 \
                    and all(x["connected"] and x["tags_good"] == x["tags"] > 0
                            for x in p["plcs"]):
                return n, s["term"]
        time.sleep(0.05)
    raise AssertionError("no polling leader within %.0f s: %s" % (timeout, last))


def read_image(conn, deadline_s=5):
    """Frames of the image after a tags_subscribed answer: (entries, frames)."""
    entries, frames = [], []
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        m = conn.recv()
        if m.get("type") == "event" and m.get("topic") == "tags" and \
                m.get("event") == "image":
            frames.append(m)
            entries += m["values"]
            if m.get("last"):
                return entries, frames
    raise AssertionError("no complete image within %d s" % deadline_s)


def wait_value(conn, tag, value, timeout):
    """Read CONN's events until TAG has VALUE (within 1e-6); return the
    monotonic time of receipt or None."""
    end = time.monotonic() + timeout
    # The node drops connections silent for its idle timeout (30 s): a
    # listener says something now and then, like the client library's pings.
    conn.send({"type": "ping"})
    conn.sock.settimeout(0.2)
    try:
        while time.monotonic() < end:
            try:
                m = conn.recv()
            except OSError:
                continue
            if m.get("type") != "event" or m.get("topic") != "tags":
                continue
            now = time.monotonic()
            for e in m["values"]:
                if e["tag"] == tag and e["value"] is not None and \
                        abs(e["value"] - value) < 1e-6:
                    return now
        return None
    finally:
        conn.sock.settimeout(2.0)
