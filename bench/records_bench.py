#!/usr/bin/env python3
"""Benchmarks of the replicated records on a real 3-node cluster polling one
vigil-plcsim, all on loopback. A synthetic project is generated:

  --alarms N   N discrete inputs, each watched by a digital_off alarm, so
               that all N alarms are raised (unacknowledged) at start;
  --archived M M noisy input registers archived on change without a
               deadband, polled every --poll-ms, so that the leader offers
               about M * 1000 / poll-ms samples per second.

Prints one JSON object per measurement:

  {"bench":"alarm_takeover", "alarms":N, "round":k, "ready_s":…, "evaluating_s":…,
   "restore_ms":…, "restore_iterations":…, "loop_max_ms":…, "loop_p99_ms":…,
   "stable":bool, "raised":N}
      (--takeover K: K rounds, after every alarm was raised) the leader is
      killed (-9); ready_s is the time from the kill until a node answers
      ready, evaluating_s until the new leader's alarm duty evaluates
      readings again (its status "alarms"), restore_ms how long restoring
      the states took there and in how many loop iterations, loop_max_ms /
      loop_p99_ms the new leader's longest / 99th percentile loop iteration
      over the 10 s around the takeover (status "loop"), stable whether it
      still led 2 s later, raised the journal's raise entries (N: no alarm
      raised twice). The killed node is restarted before the next round. A
      summary line {"bench":"alarm_takeover_summary", …} gives the medians.

  {"bench":"alarm_raise_storm", "alarms":N, "archived":M, "raised_s":…,
   "loop_max_ms":…, "loop_max_apply_ms":…, "loop_max_apply_commands":…,
   "wal_hard":…, "wal_writer_max_ms":…}
      every alarm raised at once after the project load: how long until all
      N raises were committed (as seen by polling, every 0.2 s), and the
      longest loop iteration / apply time of one iteration on any node over
      the last 10 s (status "loop"; with M > 0 the archive's load is in it)
      and how many commands that longest apply was,
      and the most WAL checkpoints any node ran on its loop at the hard
      limit since it started / its longest checkpoint on the loop (status
      "wal").

  {"bench":"alarm_acks", "acks":N, "connections":C, "seconds":…, "acks_per_s":…,
   "log_entries":…, "leader_cpu_s":…, "follower_cpu_s":…,
   "leader_minor_faults":…, "follower_minor_faults":…}
      C connections each send their share of single-alarm alarm_ack
      requests back to back without waiting (pipelined), then read the
      answers; every answer comes after its ack was committed on a majority.
      log_entries is how many raft entries carried them; leader_cpu_s the
      CPU time (user + system) the leader used meanwhile, follower_cpu_s
      the most one follower used: on a machine with fewer cores than
      processes they tell what one ack costs a node. The minor page faults
      (the leader's, and the most of one follower) are counted the same
      way: memory a node touches for the first time, or again after
      returning it to the kernel.
  {"bench":"archive_sustained", "seconds":…, "offered_per_s":…,
   "committed_per_s":…, "follower_applied_per_s":…, "dropped":…}
      the leader's committed samples (history_info) and a follower's stored
      samples over the measuring window; same_term whether the measured
      node led in one term throughout (else the figures mean little), and
      loop_max_ms its longest loop iteration over the last 10 s,
      loop_max_cpu_ms / loop_max_apply_ms the most CPU / apply time of one
      iteration there (status "loop"); wal its WAL's checkpoint counters
      (status "wal": hard and writer_max_ms tell checkpoints that ran on the
      loop because the checkpointer thread fell behind); nodes, for every
      node, the same loop figures (and loop_max_ms_all, its longest
      iteration since it started), its cluster level, what it settled
      (status "settle": from level 2 on nodes settle between commands) and
      the snapshots it took (status "snapshots": how long each held the
      loop and how long its serialization took on the pool; set
      VIGIL_NODE_ARGS="--snapshot-threshold N" for more of them), what
      libraft's log held in memory (status "raft_log") and its resident
      memory (rss_mb, from /proc); cut_steps the retention cut steps
      (level 4) the leader committed since it became leader.

  {"bench":"archive_trace", "t":…, "committed_per_s":…, "dropped":…,
   "term":…, "nodes":[…]}
      (--trace S) every S seconds of the archive window: what was committed
      per second since the last line, the leader's dropped samples and term,
      and every node's loop, settle and snapshot figures then (see trace()).

Machines are shared and noisy: compare medians of several runs.

usage: bench/records_bench.py [--build build] [--alarms 20000] [--archived 20000]
                              [--poll-ms 100] [--seconds 10] [--connections 8]
                              [--takeover K] [--no-acks] [--perf DIR]
                              [--cluster-level N] [--trace S]

--archived 0 skips the archive measurement; --no-acks the ack measurement;
--cluster-level N runs the nodes with `vigild --cluster-level N` (default
4, vigild's own default: as 3, and retention cuts in steps of 1024 tags;
3: the archive settled between commands into compressed chunks; 2: into
one row per sample; 1: in apply, see replication.h "Apply levels"); a
level above 1 is raised before the project is loaded.
"""
import argparse
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import vigil_cluster as vc  # noqa: E402


def count_raised(addr):
    """Raise entries of project alarms in the alarm journal; system alarms
    ("$node.ID" of a killed node) do not count."""
    return sum(vc.journal_counts(addr, "raised").values())


def takeover_round(cluster, n_alarms, k, perf=None):
    """Kill the ready leader, time the takeover at the new one (see the
    docstring), restart the killed node once it is over. PERF: a folder
    for a `perf record -g` of the surviving nodes during the takeover."""
    old = cluster.wait_ready_leader(timeout=15)[0]
    rec = None
    if perf:
        pids = ",".join(str(n.proc.pid) for n in cluster.nodes
                        if n.alive() and n.id != old.id)
        rec = subprocess.Popen(["perf", "record", "--call-graph", "dwarf", "-F", "2000", "-o",
                                os.path.join(perf, "takeover-%d.data" % k),
                                "-p", pids], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        time.sleep(1.0)
    t_kill = time.time()
    t0 = time.monotonic()
    old.kill()
    ready_s = None
    new, st = None, None
    deadline = t0 + 30
    while time.monotonic() < deadline:
        for n in cluster.nodes:
            if not n.alive():
                continue
            try:
                s = n.status(0.5)
            except (OSError, vc.ProtocolError, ValueError):
                continue
            if s.get("ready") and ready_s is None:
                ready_s = time.monotonic() - t0
            a = s.get("alarms") or {}
            if s.get("ready") and a.get("state") == "evaluating" and \
                    a.get("evaluating_since_ms", 0) / 1000.0 > t_kill:
                new, st = n, s
                break
        if new is not None:
            break
        time.sleep(0.01)
    if new is None:
        raise SystemExit("round %d: no new leader evaluating alarms within 30 s" % k)
    a = st["alarms"]
    term = st["term"]
    if rec is not None:
        time.sleep(0.5)
        rec.send_signal(signal.SIGINT)
        rec.wait()
    time.sleep(2.0)
    s2 = new.status(2.0)
    raised = count_raised(new.client_address)
    loop = s2.get("loop") or {}
    out = {"bench": "alarm_takeover", "alarms": n_alarms, "round": k,
           "ready_s": round(ready_s or -1, 3),
           "evaluating_s": round(a["evaluating_since_ms"] / 1000.0 - t_kill, 3),
           "restore_ms": a.get("restore_ms"),
           "restore_iterations": a.get("restore_iterations"),
           "loop_max_ms": loop.get("max_ms"), "loop_p99_ms": loop.get("p99_ms"),
           "loop_max_ms_all": loop.get("max_ms_all"),
           "stable": bool(s2.get("ready") and s2.get("term") == term),
           "raised": raised}
    print(json.dumps(out))
    sys.stdout.flush()
    old.start()
    cluster.wait_converged(timeout=60)
    return out


def rss_mb(node):
    """NODE's resident set size in MiB (None when it is gone)."""
    try:
        with open("/proc/%d/status" % node.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024.0, 1)
    except (OSError, AttributeError):
        return None
    return None


def trace(args, addr, cluster, i0, t0):
    """--trace S: until args.seconds have passed since T0, every S seconds
    one line {"bench":"archive_trace","t":…,"committed_per_s":…,
    "dropped":…,"term":…,"nodes":[{"id","loop_max_ms","loop_max_cpu_ms",
    "stalls","max_apply_ms","settle_busy_ms","backlog","snapshots",
    "wal_hard","wal_frames","wal_waits","raft_log_mb"}]}:
    committed_per_s over the last interval at the ready leader
    (history_info), the rest as status tells it then (settle_busy_ms since
    the last line; stalls: iterations above half the election timeout
    since the node started)."""
    last, last_t, busy, lead = i0, t0, {}, addr
    end = t0 + args.seconds
    while True:
        time.sleep(max(0.0, min(args.trace, end - time.monotonic())))
        now = time.monotonic()
        nodes, term, leader = [], None, None
        for n in cluster.nodes:
            try:
                s = n.status(2.0)
            except (OSError, vc.ProtocolError, ValueError):
                continue
            if s.get("ready"):
                term, leader = s.get("term"), n.client_address
            lp, st = s.get("loop") or {}, s.get("settle") or {}
            b = st.get("busy_ms", 0.0)
            nodes.append({"id": s.get("node_id"), "loop_max_ms": lp.get("max_ms"),
                          "loop_max_cpu_ms": lp.get("max_cpu_ms"),
                          "stalls": lp.get("stalls_all"),
                          "max_apply_ms": lp.get("max_apply_ms"),
                          "settle_busy_ms": round(b - busy.get(n.id, 0.0)),
                          "backlog": st.get("backlog"),
                          "snapshots": (s.get("snapshots") or {}).get("taken"),
                          "wal_hard": (s.get("wal") or {}).get("hard"),
                          "wal_frames": (s.get("wal") or {}).get("frames"),
                          "wal_waits": st.get("wal_waits"),
                          "raft_log_mb": round(((s.get("raft_log") or {})
                                                .get("bytes", 0)) / 2**20)})
            busy[n.id] = b
        # The counters are the leading node's own: a new leader starts
        # its own (null for the interval in which the leader changed).
        try:
            cur = (vc.call(leader, {"type": "history_info"}, timeout=5)["archive"]
                   if leader else None)
        except (OSError, vc.ProtocolError, ValueError, KeyError):
            cur = None
        rate = (round((cur["committed"] - last["committed"]) / max(now - last_t, 1e-3))
                if cur and last and leader == lead else None)
        print(json.dumps({"bench": "archive_trace", "t": round(now - t0, 1),
                          "committed_per_s": rate,
                          "dropped": cur and cur["dropped"], "term": term,
                          "nodes": nodes}))
        sys.stdout.flush()
        last, last_t, lead = cur, now, leader
        if now >= end:
            return


def archive_bench(args, addr, follower, cluster):
    """The archive window (see the docstring). With --perf, every node is
    recorded during the window into DIR/archive.data."""
    def info(a):
        return vc.call(a, {"type": "history_info"}, timeout=5)["archive"]
    time.sleep(3.0)
    rec = None
    if args.perf:
        pids = ",".join(str(n.proc.pid) for n in cluster.nodes if n.alive())
        rec = subprocess.Popen(["perf", "record", "--call-graph", "dwarf", "-F", "999",
                                "-o", os.path.join(args.perf, "archive.data"), "-p", pids],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    term0 = vc.call(addr, {"type": "status"}, timeout=5).get("term")
    i0, f0, t0 = info(addr), info(follower.client_address), time.monotonic()
    if args.trace > 0:
        trace(args, addr, cluster, i0, t0)
    else:
        time.sleep(args.seconds)
    i1, f1, t1 = info(addr), info(follower.client_address), time.monotonic()
    a = time.monotonic()
    info(addr)
    info_ms = round((time.monotonic() - a) * 1e3, 1)
    st1 = vc.call(addr, {"type": "status"}, timeout=5)
    per_node = []
    for n in cluster.nodes:
        try:
            s = n.status(2.0)
        except (OSError, vc.ProtocolError, ValueError):
            continue
        lp = s.get("loop") or {}
        per_node.append({"id": s.get("node_id"), "loop_max_ms": lp.get("max_ms"),
                         "max_apply_ms": lp.get("max_apply_ms"),
                         "max_apply_commands": lp.get("max_apply_commands"),
                         "loop_max_ms_all": lp.get("max_ms_all"),
                         "stalls": lp.get("stalls_all"),
                         "cluster_level": (s.get("cluster_level") or {}).get("committed"),
                         "settle": s.get("settle"), "snapshots": s.get("snapshots"),
                         "raft_log": s.get("raft_log"),
                         "rss_mb": rss_mb(n)})
    if rec is not None:
        rec.send_signal(signal.SIGINT)
        rec.wait(timeout=60)
    dt = t1 - t0
    print(json.dumps({
        "bench": "archive_sustained", "seconds": round(dt, 2),
        "tags": args.archived, "poll_ms": args.poll_ms,
        "offered_per_s": round((i1["archived"] - i0["archived"]) / dt),
        "committed_per_s": round((i1["committed"] - i0["committed"]) / dt),
        "follower_applied_per_s": round((f1["samples"] - f0["samples"]) / dt),
        "dropped": i1["dropped"], "failed_batches": i1["failed_batches"],
        "cut_steps": i1.get("cut_steps"),
        "same_term": st1.get("term") == term0 and bool(st1.get("ready")),
        "loop_max_ms": st1.get("loop", {}).get("max_ms"),
        "loop_max_cpu_ms": st1.get("loop", {}).get("max_cpu_ms"),
        "loop_max_apply_ms": st1.get("loop", {}).get("max_apply_ms"),
        "loop_max_apply_commands": st1.get("loop", {}).get("max_apply_commands"),
        "wal": st1.get("wal"), "history_info_ms": info_ms, "nodes": per_node}))
    sys.stdout.flush()


def proc_stat(pid):
    """The fields of /proc/PID/stat after the command name (state first)."""
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()


def cpu_s(pid):
    """CPU seconds (user + system) process PID has used so far."""
    fields = proc_stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def minor_faults(pid):
    """Minor page faults process PID has taken so far."""
    return int(proc_stat(pid)[7])


def unacknowledged(addr):
    """Names of the alarms that are unack_active at ADDR (every page)."""
    unack, after = [], None
    while True:
        q = {"type": "alarms_list"}
        if after:
            q["after"] = after
        lst = vc.call(addr, q, timeout=10)
        page = lst.get("alarms", [])
        unack += [e["alarm"] for e in page if e["status"] == "unack_active"]
        if not lst.get("more") or not page:
            return unack
        after = page[-1]["alarm"]


def ack_bench(args, addr, unack, cluster):
    """Pipelined acks (see the docstring); True when all were acknowledged.
    With --perf, every node is recorded (perf record -g) while the acks run,
    into DIR/acks.data."""
    shares = [unack[i::args.connections] for i in range(args.connections)]
    conns = [vc.Conn(addr, timeout=60) for _ in shares]
    results = [0] * len(shares)
    errors = []
    start = threading.Barrier(len(shares) + 1)

    # Each connection's requests are encoded before the clock starts and
    # written in one go: the same frames on the wire as one send per ack,
    # without the generator's per-message cost competing with the nodes for
    # the two cores.
    def frames(k):
        out = []
        for i, name in enumerate(shares[k]):
            data = json.dumps({"v": 1, "type": "alarm_ack", "id": i + 1,
                               "alarms": [name], "user": "bench"}).encode()
            out.append(struct.pack(">I", len(data)) + data)
        return b"".join(out)
    wire = [frames(k) for k in range(len(shares))]

    def run(k):
        c, names = conns[k], shares[k]
        start.wait()
        c.send_raw(wire[k])
        got = 0
        while got < len(names):
            m = c.recv()
            if m.get("type") == "alarms_acked" and m.get("acked"):
                results[k] += 1
            if m.get("type") == "error":
                errors.append(m.get("message"))
            if m.get("type") in ("alarms_acked", "error"):
                got += 1
    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(shares))]
    for t in threads:
        t.start()
    rec = None
    if args.perf:
        pids = ",".join(str(n.proc.pid) for n in cluster.nodes if n.alive())
        rec = subprocess.Popen(["perf", "record", "--call-graph", "dwarf", "-F", "999",
                                "-o", os.path.join(args.perf, "acks.data"), "-p", pids],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
    idx0 = vc.call(addr, {"type": "status"}, timeout=5).get("applied_index", 0)
    leader = [n for n in cluster.nodes if n.client_address == addr][0]
    others = [n for n in cluster.nodes if n is not leader and n.alive()]
    cpu0 = {n.id: cpu_s(n.proc.pid) for n in [leader] + others}
    flt0 = {n.id: minor_faults(n.proc.pid) for n in [leader] + others}
    me0 = cpu_s(os.getpid())
    start.wait()
    t0 = time.monotonic()
    for t in threads:
        t.join()
    dt = time.monotonic() - t0
    cpu = {n.id: cpu_s(n.proc.pid) - cpu0[n.id] for n in [leader] + others}
    flt = {n.id: minor_faults(n.proc.pid) - flt0[n.id] for n in [leader] + others}
    me = cpu_s(os.getpid()) - me0
    entries = vc.call(addr, {"type": "status"}, timeout=5).get("applied_index", 0) - idx0
    if rec is not None:
        rec.send_signal(signal.SIGINT)
        rec.wait(timeout=60)
    print(json.dumps({"bench": "alarm_acks", "acks": sum(results),
                      "connections": len(shares), "seconds": round(dt, 3),
                      "acks_per_s": round(sum(results) / dt),
                      "log_entries": entries,
                      "leader_cpu_s": round(cpu[leader.id], 2),
                      "follower_cpu_s": round(max(cpu[n.id] for n in others), 2)
                      if others else None,
                      "leader_minor_faults": flt[leader.id],
                      "follower_minor_faults": max(flt[n.id] for n in others)
                      if others else None,
                      "generator_cpu_s": round(me, 2)}))
    for c in conns:
        c.close()
    if sum(results) != len(unack):
        sys.stderr.write("%d errors, e.g. %s\n" % (len(errors), errors[:3]))
        return False
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--alarms", type=int, default=20000)
    ap.add_argument("--archived", type=int, default=20000)
    ap.add_argument("--poll-ms", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--trace", type=float, default=0, metavar="S",
                    help="print the archive's progress every S seconds")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--takeover", type=int, default=0, metavar="K",
                    help="kill the leader K times once every alarm is raised")
    ap.add_argument("--no-acks", dest="acks", action="store_false",
                    help="skip the acknowledgment measurement")
    ap.add_argument("--perf", metavar="DIR",
                    help="perf record -g the surviving nodes of each takeover "
                         "into DIR/takeover-K.data, and every node during the "
                         "acks into DIR/acks.data and during the archive "
                         "window into DIR/archive.data")
    ap.add_argument("--cluster-level", type=int, default=4, choices=(1, 2, 3, 4),
                    help="the apply level the cluster runs at")
    args = ap.parse_args()
    vigild = os.path.join(args.build, "node", "vigild")
    vigilctl = os.path.join(args.build, "client", "vigilctl")
    plcsim = os.path.join(args.build, "tools", "plcsim", "vigil-plcsim")

    tmp = tempfile.mkdtemp(prefix="vigil-records-bench-")
    sim, cluster = None, None
    rc = 0
    try:
        port = vc.free_ports(1)[0]
        project = os.path.join(tmp, "project")
        vc.write_synthetic_project(project, port, args.alarms, args.archived, args.poll_ms)
        sim = vc.PlcSim(plcsim, project, "plc", tmp)
        if not sim.wait_started():
            raise SystemExit("vigil-plcsim did not start: " + sim.stderr()[-500:])
        # vigild's own defaults (the test clusters checkpoint every 300 ms,
        # which a benchmark of production throughput must not inherit).
        cluster = vc.Cluster(vigild, node_args=(
            "--cluster-level", str(args.cluster_level)))
        cluster.__enter__()
        cluster.wait_ready_leader(timeout=15)
        if args.cluster_level > 1:
            cluster.wait_statuses(
                lambda st: len(st) == 3 and all(
                    (s.get("cluster_level") or {}).get("committed") == args.cluster_level
                    for s in st.values()),
                lambda s: s.get("cluster_level"), timeout=30)
        r, out, err = vc.ctl(vigilctl, cluster, "project", "load", project,
                             timeout=120)
        if r != 0:
            raise SystemExit("project load failed: " + (out + err)[-500:])
        leader = cluster.wait_ready_leader(timeout=15)[0]
        if args.archived > 0:
            follower = [n for n in cluster.nodes if n.id != leader.id][0]
            archive_bench(args, leader.client_address, follower, cluster)

        # Wait until every alarm is raised and committed (at whichever node
        # leads now).
        t_load = time.monotonic()
        deadline = t_load + 120
        while True:
            addr = cluster.wait_ready_leader(timeout=15)[0].client_address
            if count_raised(addr) >= args.alarms:
                break
            if time.monotonic() > deadline:
                raise SystemExit("not all %d alarms raised" % args.alarms)
            time.sleep(0.2)
        statuses = list(cluster.statuses(2.0).values())
        storm = [s.get("loop") or {} for s in statuses]
        wal = [s.get("wal") or {} for s in statuses]
        print(json.dumps({
            "bench": "alarm_raise_storm", "alarms": args.alarms,
            "archived": args.archived,
            "raised_s": round(time.monotonic() - t_load, 2),
            "loop_max_ms": max((x.get("max_ms") or 0) for x in storm),
            "loop_max_apply_ms": max((x.get("max_apply_ms") or 0) for x in storm),
            "loop_max_apply_commands": max(storm, key=lambda x: x.get("max_apply_ms") or 0)
            .get("max_apply_commands"),
            "wal_hard": max((x.get("hard") or 0) for x in wal),
            "wal_writer_max_ms": max((x.get("writer_max_ms") or 0) for x in wal)}))
        sys.stdout.flush()

        if args.takeover > 0:
            rounds = [takeover_round(cluster, args.alarms, k, args.perf)
                      for k in range(1, args.takeover + 1)]

            def med(key):
                v = [r[key] for r in rounds if r.get(key) is not None]
                return round(vc.percentile(v, 50), 3) if v else None
            raised_ok = all(r["raised"] == args.alarms for r in rounds)
            print(json.dumps({
                "bench": "alarm_takeover_summary", "alarms": args.alarms,
                "rounds": len(rounds), "median_ready_s": med("ready_s"),
                "median_evaluating_s": med("evaluating_s"),
                "median_restore_ms": med("restore_ms"),
                "median_loop_max_ms": med("loop_max_ms"),
                "max_loop_max_ms": max(r["loop_max_ms"] or 0 for r in rounds),
                "all_stable": all(r["stable"] for r in rounds),
                "raised_ok": raised_ok}))
            sys.stdout.flush()
            if not raised_ok:
                rc = 1

        if args.acks:
            addr = cluster.wait_ready_leader(timeout=15)[0].client_address
            unack = unacknowledged(addr)
            if len(unack) < args.alarms:
                raise SystemExit("only %d of %d alarms unacknowledged" %
                                 (len(unack), args.alarms))
            if not ack_bench(args, addr, unack, cluster):
                rc = 1
    except BaseException:
        if cluster is not None:
            cluster.dump_logs()
        raise
    finally:
        if cluster is not None:
            cluster.close()
        if sim is not None:
            sim.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
