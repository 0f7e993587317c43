#!/usr/bin/env python3
"""Benchmarks of the replicated records on a real 3-node cluster polling one
vigil-plcsim, all on loopback. A synthetic project is generated:

  --alarms N   N discrete inputs, each watched by a digital_off alarm, so
               that all N alarms are raised (unacknowledged) at start;
  --archived M M noisy input registers archived on change without a
               deadband, polled every --poll-ms, so that the leader offers
               about M * 1000 / poll-ms samples per second.

Prints one JSON object per measurement:

  {"bench":"alarm_acks", "acks":N, "connections":C, "seconds":…, "acks_per_s":…}
      C connections each send their share of single-alarm alarm_ack
      requests back to back without waiting (pipelined), then read the
      answers; every answer comes after its ack was committed on a majority.
  {"bench":"archive_sustained", "seconds":…, "offered_per_s":…,
   "committed_per_s":…, "follower_applied_per_s":…, "dropped":…}
      the leader's committed samples (history_info) and a follower's stored
      samples over the measuring window.

Machines are shared and noisy: compare medians of several runs.

usage: bench/records_bench.py [--build build] [--alarms 20000] [--archived 20000]
                              [--poll-ms 100] [--seconds 10] [--connections 8]
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import vigil_cluster as vc  # noqa: E402


def write_project(d, port, n_alarms, n_archived, poll_ms):
    os.makedirs(d)
    with open(os.path.join(d, "project.yaml"), "w") as f:
        f.write("""project: records-bench
version: "1"
title: {en: Records benchmark}
languages: [en]
sections:
  - name: bench
    title: {en: Bench}
plcs:
  - name: plc
    host: 127.0.0.1
    port: %d
    unit_id: 1
    poll_interval: %dms
    timeout: 2s
""" % (port, poll_ms))
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--alarms", type=int, default=20000)
    ap.add_argument("--archived", type=int, default=20000)
    ap.add_argument("--poll-ms", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--connections", type=int, default=8)
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
        write_project(project, port, args.alarms, args.archived, args.poll_ms)
        sim = vc.PlcSim(plcsim, project, "plc", tmp)
        if not sim.wait_started():
            raise SystemExit("vigil-plcsim did not start: " + sim.stderr()[-500:])
        cluster = vc.Cluster(vigild)
        cluster.__enter__()
        cluster.wait_ready_leader(timeout=15)
        r, out, err = vc.ctl(vigilctl, cluster, "project", "load", project,
                             timeout=120)
        if r != 0:
            raise SystemExit("project load failed: " + (out + err)[-500:])
        leader = cluster.wait_ready_leader(timeout=15)[0]
        addr = leader.client_address

        # Archive: let it run, then measure a window.
        def info(a):
            return vc.call(a, {"type": "history_info"}, timeout=5)["archive"]
        follower = [n for n in cluster.nodes if n.id != leader.id][0]
        time.sleep(3.0)
        i0, f0, t0 = info(addr), info(follower.client_address), time.monotonic()
        time.sleep(args.seconds)
        i1, f1, t1 = info(addr), info(follower.client_address), time.monotonic()
        dt = t1 - t0
        print(json.dumps({
            "bench": "archive_sustained", "seconds": round(dt, 2),
            "tags": args.archived, "poll_ms": args.poll_ms,
            "offered_per_s": round((i1["archived"] - i0["archived"]) / dt),
            "committed_per_s": round((i1["committed"] - i0["committed"]) / dt),
            "follower_applied_per_s": round((f1["samples"] - f0["samples"]) / dt),
            "dropped": i1["dropped"], "failed_batches": i1["failed_batches"]}))
        sys.stdout.flush()

        # Acks: wait until every alarm is raised and committed (at whichever
        # node leads now).
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            addr = cluster.wait_ready_leader(timeout=15)[0].client_address
            unack, after = [], None
            while True:
                q = {"type": "alarms_list"}
                if after:
                    q["after"] = after
                lst = vc.call(addr, q, timeout=10)
                page = lst.get("alarms", [])
                unack += [e["alarm"] for e in page if e["status"] == "unack_active"]
                if not lst.get("more") or not page:
                    break
                after = page[-1]["alarm"]
            if len(unack) >= args.alarms:
                break
            time.sleep(0.5)
        else:
            raise SystemExit("only %d of %d alarms raised" % (len(unack), args.alarms))
        shares = [unack[i::args.connections] for i in range(args.connections)]
        conns = [vc.Conn(addr, timeout=60) for _ in shares]
        results = [0] * len(shares)
        errors = []
        start = threading.Barrier(len(shares) + 1)

        def run(k):
            c, names = conns[k], shares[k]
            start.wait()
            for name in names:
                c.send({"type": "alarm_ack", "alarms": [name], "user": "bench"})
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
        start.wait()
        t0 = time.monotonic()
        for t in threads:
            t.join()
        dt = time.monotonic() - t0
        print(json.dumps({"bench": "alarm_acks", "acks": sum(results),
                          "connections": len(shares), "seconds": round(dt, 3),
                          "acks_per_s": round(sum(results) / dt)}))
        if sum(results) != args.alarms:
            sys.stderr.write("%d errors, e.g. %s\n" % (len(errors), errors[:3]))
            rc = 1
        for c in conns:
            c.close()
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
