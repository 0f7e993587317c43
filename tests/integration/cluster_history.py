#!/usr/bin/env python3
"""Process-value archive, history queries and reports end to end: 3 vigild,
2 vigil-plcsim (waterworks, with one noisy level archived on change and one
flow archived every second), vigilctl; all on loopback (TAP).

1. Samples are archived and replicated: raw and aggregated queries agree
   (sample counts, min, max), and a follower answers the same history.
2. Failover: the leader is killed; the largest gap in the history of the
   level around the kill is compared with the failover time (kill -> first
   poll cycle of the new leader). Printed as a TAP comment and a JSON line.
3. Cyclic archiving: one sample per period.
4. vigilctl history query / export (CSV).
5. Reports: tags (PDF, pages checked with pdfinfo and rendered with
   pdftoppm), alarms (CSV), audit (PDF), and a report of the project by name.
6. Retention per archive: every node holds the project's assignment of
   tags to archives and the same cut marks, each at now minus its
   archive's retention (default archive, alarm journal, none for an audit
   kept forever); a new project version that moves a tag and shortens a
   retention is followed by every node. (What a cut deletes is checked by
   tests/unit/replication/test_archive.c: values an hour old do not exist
   in a test that runs a minute.)
7. Bad requests get an error naming the problem.
8. Self-checks (every node recounts its archive and record tables every
   second here): none found damage through the run; a follower's archive
   damaged while it is down (a row the digest cannot see: checkpoints
   still match) is found by its first self-check, the follower reports
   itself diverged and logs it, the leader raises $replica.ID; --rebuild-state
   repairs it.

Every wait is bounded; processes are killed by PID; temp dirs removed.
"""
import argparse
import csv
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import vigil_cluster as vc  # noqa: E402

tap = vc.Tap()
ok = tap.ok

LEVEL = "intake.well1.level"      # noisy float, archived on change (0.02 m)
FLOW = "intake.well1.flow"        # archived every second
POLL_S = 0.5


def patch_archive(project):
    """LEVEL on change without a deadband (so every poll of its noise is a
    sample), FLOW every second (the example archives both every 10 s, too
    coarse to see a failover gap)."""
    path = os.path.join(project, "tags.csv")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for tag, mode in ((LEVEL, "change"), (FLOW, "cyclic:1")):
        deadband = "0" if tag == LEVEL else r"\g<2>"
        text, n = re.subn(r"(?m)^(%s,(?:[^,]*,){10})([^,]*),cyclic:10," % re.escape(tag),
                          r"\g<1>%s,%s," % (deadband, mode), text)
        if n != 1:
            raise RuntimeError("archive column of %s not found" % tag)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def archive_counts(project):
    """{archive: number of tags naming it} from tags.csv, and the default
    archive's name, as the leader should replicate them."""
    counts = {}
    with open(os.path.join(project, "tags.csv"), encoding="utf-8") as f:
        rows = csv.DictReader(line for line in f if not line.startswith("#"))
        for r in rows:
            if r["archive"] not in ("", "none") and r["archive_in"]:
                counts[r["archive_in"]] = counts.get(r["archive_in"], 0) + 1
    with open(os.path.join(project, "project.yaml"), encoding="utf-8") as f:
        m = re.search(r"- name: (\S+)\n(?:    .*\n)*?    default: true", f.read())
    default = m.group(1) if m else None
    counts.pop(default, None)
    return counts


def retention_check(cluster, counts, days, what):
    """Wait until every node reports COUNTS and marks at now - DAYS[k]."""
    last = {}

    def agreed():
        t = now_ms()
        for n in cluster.nodes:
            a = vc.call(n.client_address, {"type": "history_info"}, timeout=2)["archive"]
            last[n.id] = a
            marks = a.get("retention_marks", {})
            if a.get("archive_tags") != counts:
                return False
            for k, d in days.items():
                if d is None:
                    if k in marks:
                        return False
                elif not (k in marks and
                          t - d * 86400000 - 120000 <= marks[k] <= t - d * 86400000 + 5000):
                    return False
        return True
    good = vc.wait_for(agreed, timeout=20, poll=0.2)
    ok(good, "%s: %s" % (what, json.dumps(
        {i: {k: a.get(k) for k in ("archive_tags", "retention_marks")}
         for i, a in last.items()})))


def query(addr, **q):
    return vc.call(addr, dict({"type": "history_query"}, **q), timeout=5.0)


def now_ms():
    return int(time.time() * 1000)


def pdf_pages(path):
    p = subprocess.run(["pdfinfo", path], capture_output=True, text=True, timeout=30)
    m = re.search(r"^Pages:\s+(\d+)", p.stdout, re.M)
    return int(m.group(1)) if m else None


def damage_archive(path):
    """Change one sample of the archive as a damaged disk or a shell would,
    where it is: a chunk of settled samples (apply level 3) if there is
    one, else a settled row of archive_samples, else the value of the
    newest recent record (the newest row is never settled: a round takes
    the rows present when it begins). Returns what was done."""
    db = sqlite3.connect(path)
    try:
        chunk = db.execute("SELECT tag, t_first, data FROM archive_chunks"
                           " LIMIT 1").fetchone()
        row = db.execute("SELECT tag, t FROM archive_samples LIMIT 1").fetchone()
        if chunk is not None:
            data = bytearray(chunk[2])
            data[-1] ^= 0x10  # in the last sample's value or time
            db.execute("UPDATE archive_chunks SET data = ? WHERE tag = ?"
                       " AND t_first = ?", (bytes(data), chunk[0], chunk[1]))
            what = "archive_chunks row (%d, %d)" % chunk[:2]
        elif row is not None:
            db.execute("UPDATE archive_samples SET value = value + 1"
                       " WHERE tag = ? AND t = ?", row)
            what = "archive_samples row (%d, %d)" % row
        else:
            seq, data = db.execute("SELECT seq, data FROM archive_recent"
                                   " ORDER BY seq DESC LIMIT 1").fetchone()
            data = bytearray(data)
            data[len(data) - 25 + 16] ^= 1  # the last record's value
            db.execute("UPDATE archive_recent SET data = ? WHERE seq = ?",
                       (bytes(data), seq))
            what = "archive_recent row %d" % seq
        db.commit()
        return what
    finally:
        db.close()


def try_status(node):
    """NODE's status, or {} while it does not answer."""
    try:
        return node.status(1.0)
    except (OSError, vc.ProtocolError, ValueError):
        return {}


def self_checks(cluster, vigilctl):
    def all_ran():
        st = cluster.statuses(1.0)
        scrubs = {i: s.get("scrub", {}) for i, s in st.items()}
        done = len(scrubs) == 3 and all(x.get("runs", 0) >= 1 for x in scrubs.values())
        return scrubs if done else None
    # The node restarted in 2. may not have had a second yet.
    scrubs = vc.wait_for(all_ran, 10, 0.2) or {}
    ok(len(scrubs) == 3 and all(x.get("runs", 0) >= 1 and x.get("damaged") is False
                                and x.get("failed") == 0 for x in scrubs.values()),
       "every node's self-checks found nothing through the run: %s" %
       {i: (x.get("runs"), x.get("damaged"), x.get("failed"), x.get("last_rows"))
        for i, x in scrubs.items()})
    leader, _ = vc.polling_leader(cluster)
    f = [n for n in cluster.nodes if n.id != leader.id][0]
    if vc.wanted_level() >= 3:
        # A round begins at 128 recent rows (a batch every 250 ms): until
        # then nothing is in chunks, and the damage would go elsewhere.
        moved = vc.wait_for(lambda: try_status(f).get("settle", {}).get("moved", 0) > 0,
                            60, 0.5)
        ok(moved, "node %d settled samples into chunks" % f.id)
    code = f.kill(signal.SIGTERM)
    what = damage_archive(os.path.join(f.data, "state.db"))
    if vc.wanted_level() >= 3:
        ok(what.startswith("archive_chunks"), "the damage is in a chunk: %s" % what)
    f.start()
    s = vc.wait_for(lambda: (lambda x: x if x.get("scrub", {}).get("damaged") else None)(
        try_status(f)), 20, 0.1) or {}
    c = s.get("consistency", {})
    ok(code == 0 and c.get("verdict") == "diverged" and "self-check" in c.get("message", "")
       and "REPLICA DIVERGED: self-check" in f.log(),
       "node %d, its %s changed while it was down, reports itself diverged: %s"
       % (f.id, what, c.get("message")))
    others = cluster.wait_verified(timeout=20)
    ok(all(others[n.id]["consistency"]["verdict"] == "ok"
           for n in cluster.nodes if n.id != f.id) and f.id in others and
       others[f.id]["consistency"]["verdict"] == "diverged",
       "the checkpoints still match (the digest cannot see it); the others stay ok")
    replica = "$replica.%d" % f.id

    def raised():
        rc, out, _ = vc.ctl(vigilctl, cluster, "--json", "alarms", "list")
        for line in out.splitlines() if rc == 0 else []:
            a = json.loads(line)
            if a.get("alarm") == replica and a.get("active"):
                return a
        return None
    ok(vc.wait_for(raised, 15, 0.2) is not None, "the leader raises %s" % replica)
    f.kill(signal.SIGTERM)
    f.start(["--rebuild-state"])
    s = vc.wait_for(lambda: (lambda x: x if x.get("scrub", {}).get("runs", 0) >= 1 and
                          x["consistency"]["verdict"] == "ok" else None)(
        try_status(f)), 30, 0.1) or {}
    ok(s.get("scrub", {}).get("damaged") is False,
       "rebuilt, node %d's self-check finds nothing and it verifies ok: %s"
       % (f.id, s.get("scrub", {}).get("message")))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vigild", required=True)
    ap.add_argument("--vigilctl", required=True)
    ap.add_argument("--plcsim", required=True)
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="vigil-history-")
    sims, cluster = [], None
    try:
        ports = vc.free_ports(2)
        project = vc.copy_project(os.path.join(tmp, "waterworks"), ports)
        patch_archive(project)
        sims = [vc.PlcSim(args.plcsim, project, name, tmp, extra=("--seed", "3"))
                for name in ("plc-intake", "plc-treatment")]
        ok(all(s.wait_started() for s in sims), "two vigil-plcsim serve waterworks")
        cluster = vc.Cluster(args.vigild, node_args=(
            "--election-timeout", "300", "--heartbeat", "50",
            "--checkpoint-interval", "300", "--scrub-every-s", "1"))
        cluster.__enter__()
        cluster.wait_ready_leader(timeout=15)
        rc, out, err = vc.ctl(args.vigilctl, cluster, "project", "load", project)
        ok(rc == 0, "project loaded (%s on change, %s every second)" % (LEVEL, FLOW))
        leader, term = vc.polling_leader(cluster)
        t_start = now_ms()
        time.sleep(4.0)

        # 1. Raw and aggregated.
        addr = leader.client_address
        raw = query(addr, tag=LEVEL, from_ms=t_start - 5000, to_ms=now_ms(), limit=100000)
        samples = raw.get("samples", [])
        times = [s[0] for s in samples]
        ok(raw.get("type") == "history" and len(samples) >= 6 and
           times == sorted(times) and all(s[2] == 0 for s in samples),
           "%d samples of %s archived in ~4 s, in time order, all good" %
           (len(samples), LEVEL))
        lo, hi = t_start - 5000, now_ms()
        raw = query(addr, tag=LEVEL, from_ms=lo, to_ms=hi, limit=100000)
        agg = query(addr, tag=LEVEL, from_ms=lo, to_ms=hi, buckets=7)
        vals = [s[1] for s in raw["samples"]]
        n_agg = sum(b[1] for b in agg.get("buckets", []))
        ok(agg.get("type") == "history" and n_agg == len(vals) and
           abs(min(b[2] for b in agg["buckets"]) - min(vals)) < 1e-9 and
           abs(max(b[3] for b in agg["buckets"]) - max(vals)) < 1e-9,
           "7 buckets: counts (%d) and min/max agree with the raw samples" % n_agg)
        follower = [n for n in cluster.nodes if n.id != leader.id][0]
        end = now_ms() - 2000
        time.sleep(0.5)
        a1 = query(addr, tag=LEVEL, from_ms=t_start - 5000, to_ms=end, limit=100000)
        a2 = query(follower.client_address, tag=LEVEL, from_ms=t_start - 5000,
                   to_ms=end, limit=100000)
        ok(a1["samples"] == a2["samples"] and len(a1["samples"]) > 0,
           "follower %d answers the same %d samples" % (follower.id, len(a2["samples"])))

        # 2. Failover gap.
        t_kill = time.time()
        leader.kill()
        killed = leader
        leader, term = vc.polling_leader(cluster, timeout=15)
        st = leader.status(1.0)
        first_poll = max(p.get("first_poll_ms") or 0 for p in st["plc"]["plcs"]) / 1000.0
        failover = first_poll - t_kill
        time.sleep(3.0)
        addr = leader.client_address
        raw = query(addr, tag=LEVEL, from_ms=int((t_kill - 5) * 1000), to_ms=now_ms(),
                    limit=100000)
        ts = [s[0] / 1000.0 for s in raw["samples"]]
        gaps = [(b - a, a) for a, b in zip(ts, ts[1:])]
        around = [g for g, a in gaps if a <= t_kill + 0.01 and a + g >= t_kill]
        gap = max(around) if around else None
        bound = failover + 0.25 + POLL_S + 0.3
        print("# failover: kill -> first poll of the new leader %.3f s; largest "
              "gap in %s around the kill %.3f s (bound: failover + 0.25 s batch "
              "+ %.1f s poll interval + 0.3 s)" % (failover, LEVEL, gap or -1, POLL_S))
        sys.stderr.write(json.dumps({"bench": "history_failover_gap",
                                     "failover_s": round(failover, 3),
                                     "gap_s": round(gap or -1, 3)}) + "\n")
        ok(gap is not None and gap <= bound,
           "the history of %s over the failover has no gap beyond the failover "
           "(gap %.2f s, failover %.2f s)" % (LEVEL, gap or -1, failover))
        ok(len([t for t in ts if t > first_poll]) >= 3,
           "the new leader archives (%d samples since)" %
           len([t for t in ts if t > first_poll]))
        killed.start()

        # 3. Cyclic.
        raw = query(addr, tag=FLOW, from_ms=t_start + 1000, to_ms=int(t_kill * 1000),
                    limit=1000)
        ts = [s[0] for s in raw["samples"]]
        d = [(b - a) / 1000.0 for a, b in zip(ts, ts[1:])]
        ok(len(ts) >= 3 and all(0.4 <= x <= 1.6 for x in d),
           "%s every second: %d samples, spacing %s s" %
           (FLOW, len(ts), ["%.2f" % x for x in d]))

        # 4. vigilctl history.
        rc, out, err = vc.ctl(args.vigilctl, cluster, "history", "query", LEVEL,
                              "--from", "-1m", "--buckets", "5")
        ok(rc == 0 and "BUCKET" in out and len(out.splitlines()) >= 2,
           "vigilctl history query: %s" % (out + err).strip()[-200:])
        csv_path = os.path.join(tmp, "export.csv")
        rc, out, err = vc.ctl(args.vigilctl, cluster, "history", "export", LEVEL, FLOW,
                              "--from", "-1m", "-o", csv_path)
        rows = list(csv.reader(open(csv_path, encoding="utf-8"))) if rc == 0 else []
        ok(rc == 0 and rows[0] == ["tag", "time", "time_ms", "value", "quality"] and
           {r[0] for r in rows[1:]} == {LEVEL, FLOW},
           "vigilctl history export: %d rows of both tags" % (len(rows) - 1))

        # 5. Reports.
        have_pdf = shutil.which("pdfinfo") and shutil.which("pdftoppm")
        pdf = os.path.join(tmp, "tags.pdf")
        rc, out, err = vc.ctl(args.vigilctl, cluster, "report", "tags", "--tag", LEVEL,
                              "--tag", FLOW, "--tag", "intake.well2.level",
                              "--from", "-10m", "--format", "pdf", "-o", pdf)
        ok(rc == 0 and os.path.getsize(pdf) > 1000,
           "vigilctl report tags (3 tags) -> PDF: %s" % (out + err).strip())
        if have_pdf:
            pages = pdf_pages(pdf)
            ok(pages == 3, "the tag report has 3 pages (summary + 2 pages of "
               "charts, 2 per page): %s" % pages)
            subprocess.run(["pdftoppm", "-r", "40", "-png", pdf,
                            os.path.join(tmp, "page")], timeout=60, check=False)
            pngs = sorted(f for f in os.listdir(tmp) if f.startswith("page") and
                          f.endswith(".png"))
            ok(len(pngs) == pages, "pdftoppm renders %d page image(s)" % len(pngs))
        else:
            tap.skip("pdfinfo/pdftoppm (poppler-utils) not installed")
            tap.skip("pdfinfo/pdftoppm (poppler-utils) not installed")
        path = os.path.join(tmp, "alarms.csv")
        rc, out, err = vc.ctl(args.vigilctl, cluster, "report", "alarms",
                              "--format", "csv", "-o", path)
        ok(rc == 0 and open(path, encoding="utf-8").readline().startswith(
            ("id,", "time", "\ufeff")), "vigilctl report alarms -> CSV: %s" %
           (out + err).strip())
        path = os.path.join(tmp, "audit.pdf")
        rc, out, err = vc.ctl(args.vigilctl, cluster, "report", "audit", "-o", path)
        ok(rc == 0 and (not have_pdf or pdf_pages(path) >= 1),
           "vigilctl report audit -> PDF (by the file name): %s" % (out + err).strip())
        path = os.path.join(tmp, "daily.pdf")
        rc, out, err = vc.ctl(args.vigilctl, cluster, "report", "run", "daily-flows",
                              "-o", path, "--language", "de")
        ok(rc == 0 and (not have_pdf or pdf_pages(path) == 1 + 3),
           "vigilctl report run daily-flows (5 tags, PDF as the project says): "
           "%s, %s pages" % ((out + err).strip(), pdf_pages(path) if have_pdf else "?"))
        rc, out, err = vc.ctl(args.vigilctl, cluster, "report", "run", "no-such", "-o",
                              path)
        ok(rc == 1 and "no report 'no-such'" in err, "an unknown report is refused")

        # 6. Retention per archive.
        counts = archive_counts(project)
        ok(counts.get("fast", 0) > 10 and counts.get("accounting", 0) > 5,
           "the project assigns tags to archives: %s" % counts)
        retention_check(cluster, counts,
                        {"archive:fast": 30, "archive:accounting": 3650,
                         "archive:": 400, "journal": 730, "audit": None},
                        "every node holds the assignment and the cut marks")
        path = os.path.join(project, "tags.csv")
        with open(path, encoding="utf-8") as f:
            text = f.read()
        text, n = re.subn(r"(?m)^(%s,(?:[^,]*,){12})fast," % re.escape(FLOW),
                          r"\g<1>accounting,", text)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        path = os.path.join(project, "project.yaml")
        with open(path, encoding="utf-8") as f:
            text = f.read()
        text = text.replace("retention: 30d", "retention: 2d", 1)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        rc, out, err = vc.ctl(args.vigilctl, cluster, "project", "load", project)
        counts2 = archive_counts(project)
        ok(n == 1 and rc == 0 and counts2["fast"] == counts["fast"] - 1,
           "a new version moves %s to accounting and keeps fast values 2 days" % FLOW)
        retention_check(cluster, counts2,
                        {"archive:fast": 2, "archive:accounting": 3650,
                         "archive:": 400, "journal": 730, "audit": None},
                        "every node follows the new assignment and cuts fast "
                        "values after 2 days")

        # 7. Bad requests.
        bad = [
            ({"type": "history_query"}, "tag"),
            ({"type": "history_query", "tag": LEVEL, "from_ms": 0, "to_ms": 10},
             "either"),
            ({"type": "history_query", "tag": LEVEL, "from_ms": 0, "to_ms": 10,
              "limit": 5, "buckets": 5}, "either"),
            ({"type": "history_query", "tag": LEVEL, "from_ms": 10, "to_ms": 5,
              "limit": 5}, "after"),
            ({"type": "history_query", "tag": LEVEL, "from_ms": 0, "to_ms": 10,
              "buckets": 100000}, "buckets"),
            ({"type": "history_query", "tag": LEVEL, "from_ms": -1, "to_ms": 10,
              "limit": 1}, "from_ms"),
            ({"type": "history_query", "tag": 5, "from_ms": 0, "to_ms": 10,
              "limit": 1}, "tag"),
        ]
        for msg, word in bad:
            ans = vc.call(addr, msg, timeout=2)
            ok(ans.get("type") == "error" and word in ans.get("message", ""),
               "refused %s: %s" % (json.dumps(msg)[:60], ans.get("message")))
        info = vc.call(addr, {"type": "history_info"}, timeout=2)
        a = info.get("archive", {})
        ok(a.get("samples", 0) > 0 and a.get("dropped") == 0 and a.get("archiving"),
           "history_info: %s" % a)
        cluster.wait_verified(timeout=20)
        ok(True, "all replicas verified identical after the run")
        reached, levels = vc.level_reached(cluster)
        ok(reached, "every node applies at level %d: %s"
           % (vc.wanted_level(), levels))

        # 8. Self-checks.
        self_checks(cluster, args.vigilctl)
    except Exception as e:
        vc.unexpected(tap, e)
    finally:
        vc.teardown(tap, cluster, sims, (), tmp)
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())
