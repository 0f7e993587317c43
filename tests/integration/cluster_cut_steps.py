#!/usr/bin/env python3
"""Retention cuts in steps (apply level 4, replication/retention.c) in a
real cluster: 3 vigild, one vigil-plcsim feeding a generated project of N
noisy registers archived on change (default 2600), on loopback (TAP).

A cut of every archive walks at most 1024 tags a command; the ready leader
commits the rest as RETENTION_CUT {continue: true} while the replicated
state says a cut is unfinished. Every tag of the project is in the archive
before the test looks, so a cut walks ceil(N / 1024) steps.

1. The cluster rises to level 4, and every node's archive holds all N tags.
2. The leader is killed. The new ready leader cuts at once (a new leader
   does): it reports the continue commands it had applied (cut_steps, at
   least ceil(N / 1024) - 1), every node reports no cut left in steps
   (cut_in_steps false), and the watermark that cut raised is the same on
   both survivors.
3. The killed node restarts and catches up; the nodes converge, and their
   consistency checkpoints agree (same digest at the same index, verdict
   ok), the retention_steps table included.

Nothing is old enough here for a cut to delete (the default retention is
30 days): what a step deletes, and that replicas delete the same, is the
unit tests' part (test_cut_steps, test_level4_cut_steps). This test is the
leader's part: that the steps are proposed, by a new leader too, until the
cut is done, and that real replicas agree on them.

Every wait is bounded; processes are killed by PID; temp dirs removed.
"""
import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil_cluster as vc  # noqa: E402

tap = vc.Tap()
ok = tap.ok

STEP = 1024


def archive(node):
    try:
        return vc.call(node.client_address, {"type": "history_info"}, 5)["archive"]
    except (OSError, vc.ProtocolError, ValueError, KeyError):
        return {}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vigild", required=True)
    ap.add_argument("--vigilctl", required=True)
    ap.add_argument("--plcsim", required=True)
    ap.add_argument("--tags", type=int, default=2600)
    args = ap.parse_args()
    n = args.tags
    steps = (n + STEP - 1) // STEP

    tmp = tempfile.mkdtemp(prefix="vigil-cut-steps-")
    sim, cluster = None, None
    try:
        port = vc.free_ports(1)[0]
        project = os.path.join(tmp, "project")
        vc.write_synthetic_project(project, port, 0, n, 500)
        sim = vc.PlcSim(args.plcsim, project, "plc", tmp)
        ok(sim.wait_started(), "vigil-plcsim serves %d registers" % n)
        cluster = vc.Cluster(args.vigild, node_args=(
            "--election-timeout", "1000", "--heartbeat", "50",
            "--checkpoint-interval", "300"))
        cluster.__enter__()
        cluster.wait_ready_leader(timeout=20)
        rc, out, err = vc.ctl(args.vigilctl, cluster, "project", "load", project,
                              timeout=120)
        ok(rc == 0, "a project of %d archived registers loads (%s)"
           % (n, (out + err).strip()[-200:]))
        reached, levels = vc.level_reached(cluster, timeout=20)
        ok(reached and vc.wanted_level() == 4,
           "every node applies at level %d: %s" % (vc.wanted_level(), levels))

        def all_tags():
            got = {nd.id: archive(nd).get("tags") for nd in cluster.nodes}
            return got if all(t == n for t in got.values()) else None
        tags = vc.wait_for(all_tags, 60, 0.5)
        ok(tags is not None, "every node's archive holds all %d tags: %s"
           % (n, tags or {nd.id: archive(nd).get("tags") for nd in cluster.nodes}))

        old, _ = cluster.wait_ready_leader(timeout=10)
        old.kill()
        new, took = cluster.wait_ready_leader(timeout=20, exclude=(old.id,))

        def cut_done():
            a = {nd.id: archive(nd) for nd in cluster.nodes if nd.alive()}
            # A follower applies what the leader did a moment later.
            if (a.get(new.id, {}).get("cut_steps", 0) >= steps - 1 and
                    all(x.get("cut_in_steps") is False for x in a.values()) and
                    len({x.get("watermark_ms") for x in a.values()}) == 1):
                return a
            return None
        a = vc.wait_for(cut_done, 30, 0.2)
        ok(a is not None,
           "new leader %d (ready after %.2f s) cut in steps: %s continue command(s)"
           " applied (%d tags: at least %d), no node has a cut left in steps (%s)"
           % (new.id, took, (a or {}).get(new.id, {}).get("cut_steps"), n, steps - 1,
              {i: x.get("cut_in_steps") for i, x in (a or {}).items()}))
        marks = {i: x.get("watermark_ms") for i, x in (a or {}).items()}
        ok(a is not None and len(set(marks.values())) == 1 and
           next(iter(marks.values())) > 0,
           "the new leader's cut raised the watermark alike on both survivors: %s"
           % marks)

        old.start()
        st = cluster.wait_converged(timeout=30)
        ok(len(st) == 3, "restarted node %d caught up: applied %d on all"
           % (old.id, next(iter(st.values()))["applied_index"]))
        st = cluster.wait_verified(timeout=30)
        digests = {(s["consistency"]["checkpoint_index"],
                    s["consistency"]["state_digest"]) for s in st.values()}
        verdicts = {s["node_id"]: s["consistency"]["verdict"] for s in st.values()}
        ok(len(digests) == 1 and set(verdicts.values()) == {"ok"},
           "checkpoint %s digests agree on all three, verdicts %s"
           % ([d[0] for d in digests], verdicts))
    except Exception as e:  # noqa: BLE001 - reported as a TAP failure
        vc.unexpected(tap, e)
    finally:
        vc.teardown(tap, cluster, [sim] if sim else [], (), tmp)
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())
