#!/usr/bin/env python3
"""Benchmarks of a real 3-node vigild cluster on loopback.

Prints one JSON object per line:
  {"bench":"commit_latency", "n":…, "median_ms":…, "p99_ms":…}
      one small PUT at a time on one connection to the ready leader, measured
      from send to the 'ok' answer (committed on a majority and applied).
  {"bench":"failover", "trials":…, "median_s":…, "p99_s":…, "max_s":…}
      kill -9 of the ready leader until another node answers ping with
      ready=true (its announce barrier applied), polled every 10 ms.
Machines are shared and noisy: compare medians and ratios, not single runs.

usage: bench/cluster_bench.py --vigild build/node/vigild [--trials 20] [--commits 1000]
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "integration"))
import vigil_cluster as vc  # noqa: E402


def commit_latency(cluster, n):
    leader, _ = cluster.wait_ready_leader(timeout=10)
    c = vc.Conn(leader.client_address, timeout=5)
    lat = []
    try:
        for i in range(n):
            t0 = time.perf_counter()
            a = c.call({"type": "put", "key": "bench%d" % (i % 100), "value": "x" * 16})
            lat.append((time.perf_counter() - t0) * 1000.0)
            if a.get("type") != "ok":
                raise RuntimeError("put failed: %s" % a)
    finally:
        c.close()
    return {"bench": "commit_latency", "n": n,
            "median_ms": round(vc.percentile(lat, 50), 3),
            "p99_ms": round(vc.percentile(lat, 99), 3)}


def failover(cluster, trials):
    times = []
    for _ in range(trials):
        leader, _ = cluster.wait_ready_leader(timeout=10)
        # Some committed traffic first, as in a running plant.
        for i in range(10):
            vc.call(leader.client_address, {"type": "put", "key": "f%d" % i, "value": "y"}, 2)
        leader.kill()
        _, took = cluster.wait_ready_leader(timeout=10, exclude=(leader.id,))
        times.append(took)
        leader.start()
        cluster.wait_converged(timeout=20)
    return {"bench": "failover", "trials": trials,
            "median_s": round(vc.percentile(times, 50), 3),
            "p99_s": round(vc.percentile(times, 99), 3),
            "max_s": round(max(times), 3)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vigild", default="build/node/vigild")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--commits", type=int, default=1000)
    args = ap.parse_args()
    with vc.Cluster(args.vigild) as cluster:
        print(json.dumps(commit_latency(cluster, args.commits)), flush=True)
        print(json.dumps(failover(cluster, args.trials)), flush=True)


if __name__ == "__main__":
    main()
