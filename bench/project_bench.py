#!/usr/bin/env python3
"""Benchmark of `vigilctl project validate` on large synthetic projects.

Generates projects of 10 000 and 100 000 tags (tools/projgen.py, default
alarms/screens/PLCs, seed 1) into a temporary folder, runs
`VIGILCTL project validate DIR` on each RUNS times and prints one JSON object
per size:
  {"bench":"project_validate", "tags":N, "runs":5, "median_s":…, "min_s":…,
   "max_s":…, "ok":true}
      wall time of the whole command (start, read, parse, validate, exit);
      ok is true when every run exited 0 (the project is valid).
Generation time goes to stderr. Machines are shared and noisy: compare
medians, re-run before drawing conclusions.

Exit status: 0 all runs ok, 1 some run failed, 2 vigilctl is missing or has
no `project validate` command.

usage: bench/project_bench.py [--vigilctl build/client/vigilctl] [--runs 5]
                              [--sizes 10000,100000] [--keep DIR]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROJGEN = os.path.join(HERE, "..", "tools", "projgen.py")


def fail(msg):
    print("project_bench: " + msg, file=sys.stderr)
    sys.exit(2)


def generate(tags, out):
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, PROJGEN, "--tags", str(tags), "--out", out, "--seed", "1"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        fail("projgen failed for %d tags:\n%s" % (tags, r.stderr))
    print("project_bench: generated %d tags in %.2f s (%s)" % (tags, time.perf_counter() - t0,
                                                                r.stderr.strip()), file=sys.stderr)


def validate(vigilctl, d, timeout):
    """One run: (seconds, exit code, output)."""
    t0 = time.perf_counter()
    try:
        r = subprocess.run([vigilctl, "project", "validate", d], capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return time.perf_counter() - t0, None, "timed out after %g s" % timeout
    return time.perf_counter() - t0, r.returncode, r.stdout + r.stderr


def check_supported(vigilctl, tmp):
    """Fail clearly unless VIGILCTL exists and knows `project validate`:
    validate a tiny generated project first."""
    if not (os.path.isfile(vigilctl) and os.access(vigilctl, os.X_OK)):
        fail("%s is not an executable file (build first, or pass --vigilctl PATH)" % vigilctl)
    d = os.path.join(tmp, "probe")
    generate(20, d)
    _, rc, out = validate(vigilctl, d, 60)
    if rc == 2 or rc is None or "unknown command" in out:
        fail("%s has no working 'project validate' command (exit %s):\n%s" % (vigilctl, rc, out.strip()))
    if rc != 0:
        print("project_bench: warning: a 20-tag generated project does not validate (exit %d):\n%s"
              % (rc, out.strip()[:2000]), file=sys.stderr)


def bench(vigilctl, tags, runs, tmp, timeout):
    d = os.path.join(tmp, "tags-%d" % tags)
    generate(tags, d)
    times = []
    ok = True
    for _ in range(runs):
        took, rc, out = validate(vigilctl, d, timeout)
        times.append(took)
        if rc != 0:
            if ok:
                print("project_bench: %d tags: project validate exited %s:\n%s"
                      % (tags, rc, out.strip()[:2000]), file=sys.stderr)
            ok = False
    return {"bench": "project_validate", "tags": tags, "runs": runs,
            "median_s": round(statistics.median(times), 4),
            "min_s": round(min(times), 4), "max_s": round(max(times), 4), "ok": ok}


def main():
    ap = argparse.ArgumentParser(description="Benchmark of vigilctl project validate.")
    ap.add_argument("--vigilctl", default="build/client/vigilctl")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sizes", default="10000,100000",
                    help="comma-separated tag counts (default 10000,100000)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per run (default 600)")
    ap.add_argument("--keep", metavar="DIR", help="generate into DIR and keep the projects")
    args = ap.parse_args()
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        ap.error("--sizes: comma-separated numbers")
    if args.runs < 1 or not sizes or min(sizes) < 1:
        ap.error("--runs and every size must be at least 1")
    vigilctl = os.path.abspath(args.vigilctl)

    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
        tmp = args.keep
    else:
        tmp = tempfile.mkdtemp(prefix="vigil-project-bench-")
    all_ok = True
    try:
        check_supported(vigilctl, tmp)
        for n in sizes:
            res = bench(vigilctl, n, args.runs, tmp, args.timeout)
            all_ok = all_ok and res["ok"]
            print(json.dumps(res), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(0 if all_ok else 1)


if __name__ == "__main__":
    main()
