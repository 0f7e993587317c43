#!/usr/bin/env python3
"""Benchmark of live values and setpoints on a real 3-node cluster polling
two vigil-plcsim (the waterworks example, poll interval 500 ms), all on
loopback. Prints one JSON object per measurement:

  {"bench":"plc_change_to_client", "samples":N, "median_ms":…, "p99_ms":…,
   "max_ms":…, "poll_interval_ms":500}
      a holding register changed in the simulator by a Modbus write (as a
      PLC program would change it), at a random point of the poll cycle,
      until a client subscribed at the leader receives the new value. The
      poll interval bounds it: expect about half of it as the median.
  {"bench":"setpoint_a_to_b", "samples":N, "median_ms":…, "p99_ms":…, …}
      client A sends tag_write; time until client B, subscribed to the tag,
      receives the value (commit through Raft, fenced PLC write, push).
  {"bench":"setpoint_round_trip", …}
      the same writes: time until A has the tag_written answer.

Machines are shared and noisy: compare medians, re-run before drawing
conclusions. Exit status 0, or 1 when a sample timed out.

usage: bench/live_bench.py [--build build] [--samples 100]
"""
import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import vigil_cluster as vc  # noqa: E402

SP1 = "intake.well1.pump.speed_sp"   # hr:2, 0..100 % as raw 0..10000
SP2 = "intake.well2.pump.speed_sp"   # hr:12
SP2_ADDR = 12


def report(name, samples_s, wanted, extra=None):
    ms = [x * 1e3 for x in samples_s]
    out = {"bench": name, "samples": len(ms), "wanted": wanted}
    if ms:
        out.update({"median_ms": round(vc.percentile(ms, 50), 2),
                    "p99_ms": round(vc.percentile(ms, 99), 2),
                    "max_ms": round(max(ms), 2)})
    out.update(extra or {})
    print(json.dumps(out))
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--samples", type=int, default=100)
    args = ap.parse_args()
    b = os.path.abspath(args.build)
    vigild = os.path.join(b, "node", "vigild")
    vigilctl = os.path.join(b, "client", "vigilctl")
    plcsim = os.path.join(b, "tools", "plcsim", "vigil-plcsim")

    tmp = tempfile.mkdtemp(prefix="vigil-live-bench-")
    sims, cluster, conns = [], None, []
    rng = random.Random(5)
    failed = False
    try:
        ports = vc.free_ports(2)
        project = vc.copy_project(os.path.join(tmp, "waterworks"), ports)
        sims = [vc.PlcSim(plcsim, project, name, tmp)
                for name in ("plc-intake", "plc-treatment")]
        if not all(s.wait_started() for s in sims):
            raise RuntimeError("vigil-plcsim did not start")
        cluster = vc.Cluster(vigild)
        cluster.__enter__()
        cluster.wait_ready_leader(timeout=15)
        rc, out, err = vc.ctl(vigilctl, cluster, "project", "load", project)
        if rc != 0:
            raise RuntimeError("project load failed: " + out + err)
        leader, _ = vc.polling_leader(cluster)

        bconn = vc.Conn(leader.client_address)
        conns.append(bconn)
        bconn.call({"type": "tags_subscribe", "tags": [SP1, SP2]})
        vc.read_image(bconn)

        lat = []
        for i in range(args.samples):
            value = 40 + (i % 80) * 0.5
            time.sleep(rng.uniform(0, 0.5))
            vc.modbus_write(ports[0], SP2_ADDR, [int(round(value * 100))])
            t0 = time.monotonic()
            t1 = vc.wait_value(bconn, SP2, value, 3)
            if t1 is None:
                failed = True
            else:
                lat.append(t1 - t0)
        report("plc_change_to_client", lat, args.samples, {"poll_interval_ms": 500})

        a = vc.Conn(leader.client_address)  # now: an idle one would be dropped
        conns.append(a)
        a_to_b, round_trip = [], []
        for i in range(args.samples):
            value = 30.25 + (i % 280) * 0.25
            t0 = time.monotonic()
            w = a.call({"type": "tag_write", "tag": SP1, "value": value})
            t_answer = time.monotonic()
            t1 = vc.wait_value(bconn, SP1, value, 3)
            if w.get("type") != "tag_written" or t1 is None:
                failed = True
                continue
            a_to_b.append(t1 - t0)
            round_trip.append(t_answer - t0)
        report("setpoint_a_to_b", a_to_b, args.samples)
        report("setpoint_round_trip", round_trip, args.samples)
    finally:
        for k in conns:
            k.close()
        if cluster is not None:
            cluster.close()
        for s in sims:
            s.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
