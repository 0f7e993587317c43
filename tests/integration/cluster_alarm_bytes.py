#!/usr/bin/env python3
"""Alarm changes that weigh kilobytes each (node/alarm_duty.c, flush): 3
vigild, one vigil-plcsim, a generated project of N digital inputs each
watched by an alarm whose message is 1024 bytes in each of 8 languages (the
most the validator allows), on loopback (TAP).

All N alarms raise at once when the project starts polling, and each raise
carries its messages: some 8.3 KB a change. The leader proposed the queued
changes up to 1024 to a command, and 1024 such changes are more than a
command's body may hold (8 MiB): a vigild before the fix had such a
command refused as a whole, without a log line, rebuilt its alarm engine
from the replicated table and raised the same alarms again, over and over
(hundreds of "restoring the states" lines), until a smaller batch happened
to fit. Now a command holds what fits; since commands carry at most 512
changes (4.3 MB of these), this load no longer reaches the limit, and the
test checks that the heaviest changes the validator allows still flow.

1. The project validates and loads; the leader restores its alarm states
   once ("restoring the states" logged once) and logs no change that could
   not be proposed or committed.
2. Every replica holds all N alarms unacknowledged and active, and its
   journal exactly one raise of each (none twice, none lost).
3. What a station reads fits its frames (1 MiB; an entry carries the
   messages, some 8.3 KB): alarms_list pages hold what fits and say "more"
   (a vigild before answered "the answer does not fit in a frame"), and
   together list every alarm once. A subscription to every alarm, whose
   image (9.4 MB of entries, measured) is more than a connection may have queued (8 MiB;
   a vigild before closed the station's connection at once), is answered;
   the test reads nothing more until an ack of all alarms was committed;
   then the image comes in frames that together hold every alarm once, the
   last one marked, and only after it the change events (held back
   meanwhile; several of one index when a command's changes do not fit one
   frame) that together acknowledge every alarm once. A subscription to
   section s1 gets the image of its half of them.

Every wait is bounded; processes are killed by PID; temp dirs removed.
"""
import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil_cluster as vc  # noqa: E402

tap = vc.Tap()
ok = tap.ok

LANGS = ["en", "de", "fr", "it", "es", "nl", "pl", "cs"]
TEXT = 1024


def write_project(d, port, n):
    """N digital inputs di:0..N-1, alarm aNNNNN on tNNNNN (digital_off: raised
    while the input is 0, as the simulator starts), 8 languages; even
    numbers in section s1, odd ones in s2."""
    os.makedirs(d)
    titles = ", ".join("%s: T" % lang for lang in LANGS)
    with open(os.path.join(d, "project.yaml"), "w") as f:
        f.write("project: bytes\nversion: \"1\"\ntitle: {%s}\nlanguages: [%s]\n"
                "sections:\n  - name: s1\n    title: {%s}\n"
                "  - name: s2\n    title: {%s}\n"
                "plcs:\n  - name: plc\n    host: 127.0.0.1\n    port: %d\n"
                "    unit_id: 1\n    poll_interval: 100ms\n    timeout: 2s\n"
                % (titles, ", ".join(LANGS), titles, titles, port))
    with open(os.path.join(d, "tags.csv"), "w") as f:
        f.write("name,section,plc,address,type,word_order,raw_min,raw_max,eng_min,"
                "eng_max,unit,deadband,archive,writable,min,max,"
                + ",".join("description_" + lang for lang in LANGS) + "\n")
        for i in range(n):
            f.write("t%05d,s%d,plc,di:%d,bool,,,,,,,,,,,," % (i, 1 + i % 2, i)
                    + ",".join(["d"] * len(LANGS)) + "\n")
    with open(os.path.join(d, "alarms.csv"), "w") as f:
        f.write("name,tag,kind,limit,hysteresis,on_delay,off_delay,priority,"
                "section,reference," + ",".join("message_" + lang for lang in LANGS)
                + "\n")
        for i in range(n):
            msg = ("alarm %05d " % i).ljust(TEXT, "m")
            f.write("a%05d,t%05d,digital_off,,,,,medium,,," % (i, i)
                    + ",".join([msg] * len(LANGS)) + "\n")


def replica_counts(node):
    """(unacknowledged active alarms, raise entries, alarms raised more than
    once) in NODE's state.db, read-only; None while it cannot be read."""
    try:
        db = sqlite3.connect("file:%s/state.db?mode=ro" % node.data, uri=True,
                             timeout=2)
        try:
            unack = db.execute("SELECT count(*) FROM alarm_states"
                               " WHERE status = 'unack_active'").fetchone()[0]
            raises = db.execute("SELECT count(*) FROM alarm_journal"
                                " WHERE cause = 'raised'").fetchone()[0]
            twice = db.execute("SELECT count(*) FROM (SELECT alarm FROM alarm_journal"
                               " WHERE cause = 'raised' GROUP BY alarm"
                               " HAVING count(*) > 1)").fetchone()[0]
            return unack, raises, twice
        finally:
            db.close()
    except sqlite3.Error:
        return None


def list_pages(addr):
    """Every page of alarms_list "all" at ADDR: (pages, names, error)."""
    pages, names, after = 0, [], None
    for _ in range(1000):
        q = {"type": "alarms_list", "all": True}
        if after:
            q["after"] = after
        ans = vc.call(addr, q, timeout=10)
        if ans.get("type") == "error":
            return pages, names, ans.get("message")
        page = ans.get("alarms", [])
        pages += 1
        names += [e["alarm"] for e in page]
        if not ans.get("more") or not page:
            return pages, names, None
        after = page[-1]["alarm"]
    return pages, names, "more than 1000 pages"


def subscribe(conn, sections=None):
    """Send alarms_subscribe on CONN (to SECTIONS, or all) and read the
    answer: its count, or an error."""
    q = {"type": "alarms_subscribe", "id": 1}
    if sections:
        q["sections"] = sections
    conn.send(q)
    ans = conn.recv()
    if ans.get("type") != "alarms_subscribed":
        return None, str(ans)[:300]
    return ans.get("count"), None


def read_image(conn):
    """Read the image frames on CONN: (frames, names, error); an event other
    than an image frame before the last one is an error. read_image.bytes:
    the entries' compact JSON, summed."""
    frames, names = 0, []
    read_image.bytes = 0
    for _ in range(1000):
        ev = conn.recv()
        if ev.get("event") != "image":
            return frames, names, str(ev)[:300]
        frames += 1
        names += [e["alarm"] for e in ev.get("alarms", [])]
        read_image.bytes += sum(len(json.dumps(e, separators=(",", ":")))
                                for e in ev.get("alarms", []))
        if ev.get("last"):
            return frames, names, None
    return frames, names, "no last image frame in 1000"


def acked_events(conn, n, timeout):
    """Change events on CONN until N acks were seen or TIMEOUT s pass:
    (events, indexes, acked names, error)."""
    events, indexes, names = 0, set(), []
    deadline = time.monotonic() + timeout
    while len(names) < n and time.monotonic() < deadline:
        try:
            ev = conn.recv()
        except OSError as e:
            return events, indexes, names, str(e)
        if ev.get("type") == "error":
            return events, indexes, names, ev.get("message")
        if ev.get("event") != "changes":
            continue
        events += 1
        indexes.add(ev.get("index"))
        names += [e["alarm"] for e in ev.get("alarms", []) if e.get("cause") == "acked"]
    return events, indexes, names, None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vigild", required=True)
    ap.add_argument("--vigilctl", required=True)
    ap.add_argument("--plcsim", required=True)
    ap.add_argument("--alarms", type=int, default=1100)
    args = ap.parse_args()
    n = args.alarms

    tmp = tempfile.mkdtemp(prefix="vigil-alarm-bytes-")
    sim, cluster, conns = None, None, []
    try:
        port = vc.free_ports(1)[0]
        project = os.path.join(tmp, "project")
        write_project(project, port, n)
        sim = vc.PlcSim(args.plcsim, project, "plc", tmp)
        ok(sim.wait_started(), "vigil-plcsim serves %d inputs" % n)
        # Not a failover test: a sanitizer build's loop, parsing and encoding
        # megabytes of alarm entries, stalled past 300 ms once and an
        # election broke the run; 2 s keeps one leader throughout.
        cluster = vc.Cluster(args.vigild, node_args=(
            "--election-timeout", "2000", "--heartbeat", "50",
            "--checkpoint-interval", "300"))
        cluster.__enter__()
        cluster.wait_ready_leader(timeout=20)
        rc, out, err = vc.ctl(args.vigilctl, cluster, "project", "validate", project)
        ok(rc == 0, "the project validates: messages of %d bytes are allowed (%s)"
           % (TEXT, (out + err).strip()[-200:]))
        rc, out, err = vc.ctl(args.vigilctl, cluster, "project", "load", project,
                              timeout=120)
        ok(rc == 0, "a project of %d alarms with %d-byte messages in %d languages "
           "loads (%s%s)" % (n, TEXT, len(LANGS), out.strip()[-200:], err.strip()[-200:]))
        leader = cluster.wait_ready_leader(timeout=20)[0]

        def all_raised():
            counts = {nd.id: replica_counts(nd) for nd in cluster.nodes}
            return counts if all(c == (n, n, 0) for c in counts.values()) else None
        counts = vc.wait_for(all_raised, 60, 0.5)
        ok(counts is not None,
           "every replica holds all %d alarms unacknowledged, each raised once in its "
           "journal: %s" % (n, counts or {nd.id: replica_counts(nd)
                                          for nd in cluster.nodes}))
        log = leader.log()
        restores = log.count("alarms: restoring the states")
        ok(restores == 1 and "could not be proposed" not in log and
           "cannot be committed" not in log,
           "leader %d restored its alarm states once (%d) and proposed every change"
           % (leader.id, restores))

        want = sorted("a%05d" % i for i in range(n))
        want1 = sorted("a%05d" % i for i in range(0, n, 2))
        pages, names, err = list_pages(leader.client_address)
        ok(err is None and pages > 1 and sorted(names) == want,
           "alarms_list answers in %d pages that fit a frame and list all %d alarms "
           "once (%s)" % (pages, len(names), err))
        part = vc.Conn(leader.client_address, timeout=20)
        conns.append(part)
        count, err = subscribe(part, ["s1"])
        frames, names, err = read_image(part) if err is None else (0, [], err)
        ok(err is None and count == len(want1) and frames > 1 and sorted(names) == want1,
           "a subscription to s1: its image in %d frames holds its %d alarms once "
           "(%s)" % (frames, len(names), err))
        sub = vc.Conn(leader.client_address, timeout=20)
        conns.append(sub)
        count, err = subscribe(sub)
        ok(err is None and count == n,
           "a subscription to all %d alarms is answered (%s)" % (n, err))
        ans = vc.call(leader.client_address, {"type": "alarm_ack", "all": True,
                                              "user": "op", "station": "s1"}, timeout=60)
        ok(len(ans.get("acked", [])) == n,
           "one ack of all acknowledges %d alarms (%s)"
           % (len(ans.get("acked", [])), str(ans)[:200]))
        frames, names, err = read_image(sub)
        ok(err is None and frames > 1 and sorted(names) == want,
           "then its image, read only now, comes in %d frames holding all %d alarms "
           "(%.1f MB of entries) once, nothing else before its last frame (%s)"
           % (frames, len(names), read_image.bytes / 1e6, err))
        events, indexes, names, err = acked_events(sub, n, 30)
        ok(err is None and sorted(names) == want and events > len(indexes),
           "and after it the subscriber sees every ack once, in %d change events of "
           "%d command(s) (%s)" % (events, len(indexes), err))
    except Exception as e:  # noqa: BLE001 - reported as a TAP failure
        vc.unexpected(tap, e)
    finally:
        vc.teardown(tap, cluster, [sim] if sim else [], conns, tmp)
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())
