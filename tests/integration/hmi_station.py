#!/usr/bin/env python3
"""vigil-hmi end to end under Xvfb: 3 vigild, 2 vigil-plcsim (waterworks),
two real GTK stations, driven with xdotool (TAP).

1. Station A (control-room-en) and B (control-room-de) start with nothing
   but the cluster's addresses and their names, and apply their profiles:
   window size and decoration, start screen, language (B's UI strings come
   from the German catalogue, its project texts are German).
2. A screenshot of A (taken from the X server) shows the start screen: the
   overview's background, live process colours (running-pump green, water
   blue) and no bad-quality magenta; live values are shown as numbers.
3. A blocked key combination (Ctrl+Q) does nothing: the station keeps
   running; an unblocked navigation key (F4) changes the screen.
4. A setpoint typed into A with xdotool (click the entry, type, Enter,
   confirm with Enter) reaches vigil-plcsim (its write log) and appears on
   B. A value outside the limits is refused in the dialog; nothing is sent.
5. An alarm forced in the simulator appears on both; A acknowledges all in
   its alarm view (xdotool); B shows it acknowledged.
   The reports view runs the project's daily-flows report, previews it and
   saves it as PDF through the file chooser; a screen's trend object opens
   the trend view drawn from aggregated history.
6. The leader is killed (-9), five times: the banner appears on both
   stations and goes away without operator action, and values are fresh
   again (read by the new leader). The time from kill to fresh values is
   reported (median of 5).
7. The station's CPU and memory with the waterworks start screen open.

Screenshots are kept under --shots (paths printed). Every wait is bounded;
processes are killed by PID; temp dirs removed.
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
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import vigil_cluster as vc  # noqa: E402

tap = vc.Tap()
ok = tap.ok

SETPOINT_TAG = "distribution.pump1.speed_sp"
SETPOINT_AT = (528 + 48, 276 + 13)    # centre of its object in distribution.yaml
FAULT = "intake.well1.pump.fault"
FAULT_ALARM = "intake.well1.pump.fault.on"


# ---------------------------------------------------------------- PNG

def png_read(path):
    """(width, height, rows of (r, g, b) tuples) of an 8-bit RGB/RGBA PNG."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or ctype not in (2, 6) or interlace:
                raise ValueError("unsupported PNG")
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows, prev = [], bytearray(stride)
    for y in range(h):
        ft = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ft == 1:
                line[i] = (line[i] + a) & 255
            elif ft == 2:
                line[i] = (line[i] + b) & 255
            elif ft == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ft == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else
                                      b if pb <= pc else c)) & 255
        rows.append([tuple(line[x * bpp:x * bpp + 3]) for x in range(w)])
        prev = line
    return w, h, rows


def near(c, ref, tol=40):
    return all(abs(a - b) <= tol for a, b in zip(c, ref))


def hexrgb(s):
    return tuple(int(s[i:i + 2], 16) for i in (0, 2, 4))


# ---------------------------------------------------------------- X and stations

class Xvfb:
    def __init__(self, tmp):
        r, w = os.pipe()
        self.log = open(tempfile.mktemp(prefix="xvfb-", suffix=".log", dir=tmp), "w")
        self.proc = subprocess.Popen(
            ["Xvfb", "-displayfd", str(w), "-screen", "0", "1920x1080x24",
             "-nolisten", "tcp", "-noreset"], pass_fds=(w,),
            stdout=self.log, stderr=self.log)
        os.close(w)
        num = b""
        end = time.monotonic() + 15
        while not num.endswith(b"\n") and time.monotonic() < end:
            chunk = os.read(r, 16)
            if not chunk:
                break
            num += chunk
        os.close(r)
        self.display = ":" + num.decode().strip()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Station:
    def __init__(self, exe, display, cluster, name, user, tmp, shots):
        self.name = name
        self.state_path = os.path.join(tmp, name + ".state.json")
        self.shot_path = os.path.join(shots, name + ".png")
        self.err_path = os.path.join(tmp, name + ".err")
        env = dict(os.environ, DISPLAY=display, LANG="C.UTF-8", NO_AT_BRIDGE="1",
                   GDK_BACKEND="x11")
        env.pop("LANGUAGE", None)
        # In the sanitizer build: report the station's leaks, not fontconfig's
        # cache (see fontconfig_lsan.supp); no effect on a normal build.
        env["LSAN_OPTIONS"] = "suppressions=%s" % os.path.join(HERE, "fontconfig_lsan.supp")
        self.env = env
        seeds = ",".join(n.client_address for n in cluster.nodes)
        with open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(
                [exe, "--cluster", seeds, "--station", name, "--user", user,
                 "--state-file", self.state_path, "--screenshot", self.shot_path],
                env=env, stdout=err, stderr=err)

    def state(self):
        try:
            with open(self.state_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def wait(self, pred, timeout, poll=0.05):
        """The first state satisfying PRED, or the last one seen (falsy
        result: check with pred again)."""
        end = time.monotonic() + timeout
        st = {}
        while time.monotonic() < end:
            st = self.state()
            if st and pred(st):
                return st, True
            time.sleep(poll)
        return st, False

    def alive(self):
        return self.proc.poll() is None

    def stderr(self):
        with open(self.err_path, errors="replace") as f:
            return f.read()

    def xdo(self, *args):
        return subprocess.run(["xdotool"] + [str(a) for a in args], env=self.env,
                              capture_output=True, text=True, timeout=20)

    def screenshot(self, timeout=5):
        before = self.state().get("screenshots", 0)
        self.proc.send_signal(signal.SIGUSR1)
        st, good = self.wait(lambda s: s.get("screenshots", 0) > before, timeout)
        return self.shot_path if good else None

    # Input goes through XTEST (as from a real keyboard and mouse) to the
    # focused window: GTK 3 reads input through XInput 2 and ignores events
    # sent with XSendEvent (xdotool's --window for key and click).

    def click_at(self, x, y):
        """Click at (X, Y) of the station's window."""
        xid = self.state()["window"]["xid"]
        self.xdo("windowfocus", "--sync", xid)
        self.xdo("mousemove", "--window", xid, int(x), int(y))
        time.sleep(0.1)
        return self.xdo("click", 1)

    def click_screen(self, sx, sy):
        """Click at screen coordinate (SX, SY) of the shown project screen."""
        st = self.state()
        ox, oy = st["screen_origin"]
        sc = st["screen_scale"]
        return self.click_at(ox + sx * sc, oy + sy * sc)

    def click_widget(self, name):
        g = self.state().get("widgets", {}).get(name)
        if not g or g[2] < 2 or g[3] < 2:  # not laid out yet
            return None
        return self.click_at(g[0] + g[2] / 2, g[1] + g[3] / 2)

    def click_until(self, name, pred, timeout=3, tries=3):
        """Click widget NAME until PRED holds for the state (each try waits
        TIMEOUT s): on a loaded machine a click can land while a view is
        still being laid out, and is lost. Returns (state, PRED held)."""
        st, good = {}, False
        for _ in range(tries):
            self.click_widget(name)
            st, good = self.wait(pred, timeout)
            if good:
                break
        return st, good

    def key(self, *keys):
        xid = self.state()["window"]["xid"]
        self.xdo("windowfocus", "--sync", xid)
        return self.xdo("key", *keys)

    def dialog_type(self, text_keys, timeout=5):
        """Focus the open dialog and send keys to it."""
        st, good = self.wait(lambda s: s.get("notes", {}).get("dialog_xid"), timeout)
        if not good:
            return False
        xid = st["notes"]["dialog_xid"]
        self.xdo("windowfocus", "--sync", xid)
        for k in text_keys:
            if isinstance(k, tuple):
                self.xdo("type", "--delay", "20", k[0])
            else:
                self.xdo("key", k)
            time.sleep(0.05)
        return True

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def good_number(text):
    try:
        float(text.split()[0].replace(",", "."))
        return True
    except (ValueError, IndexError, AttributeError):
        return False


# ---------------------------------------------------------------- the test

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vigild", required=True)
    ap.add_argument("--vigilctl", required=True)
    ap.add_argument("--plcsim", required=True)
    ap.add_argument("--hmi", required=True)
    ap.add_argument("--shots", required=True, help="directory for screenshots")
    ap.add_argument("--failovers", type=int, default=5)
    args = ap.parse_args()

    for prog in ("Xvfb", "xdotool"):
        if shutil.which(prog) is None:
            ok(False, "%s is installed (apt-get install xvfb xdotool)" % prog)
            return tap.finish()
    os.makedirs(args.shots, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="vigil-hmi-")
    sims, cluster, stations, xvfbs = [], None, [], []
    try:
        # One virtual display per station, as at two operator desks.
        xvfbs = [Xvfb(tmp), Xvfb(tmp)]
        ok(all(x.proc.poll() is None and x.display != ":" for x in xvfbs),
           "Xvfb runs on displays %s" % [x.display for x in xvfbs])
        ports = vc.free_ports(2)
        project = vc.copy_project(os.path.join(tmp, "waterworks"), ports)
        force_path = os.path.join(tmp, "intake.force")
        with open(force_path, "w"):
            pass
        writes = os.path.join(tmp, "treatment.writes")
        sims = [vc.PlcSim(args.plcsim, project, "plc-intake", tmp,
                          extra=("--force", force_path, "--seed", "3")),
                vc.PlcSim(args.plcsim, project, "plc-treatment", tmp,
                          extra=("--write-log", writes, "--seed", "4"))]
        ok(all(s.wait_started() for s in sims), "two vigil-plcsim serve waterworks")
        cluster = vc.Cluster(args.vigild)
        cluster.__enter__()
        cluster.wait_ready_leader(timeout=15)
        rc, out, err = vc.ctl(args.vigilctl, cluster, "project", "load", project)
        ok(rc == 0, "project loaded: %s" % (out + err).strip()[-200:])
        leader, term = vc.polling_leader(cluster)

        # 1. Two stations and their profiles.
        a = Station(args.hmi, xvfbs[0].display, cluster, "control-room-en", "ann", tmp,
                    args.shots)
        b = Station(args.hmi, xvfbs[1].display, cluster, "control-room-de", "bob", tmp,
                    args.shots)
        stations = [a, b]

        def live(st):
            shown = st.get("shown", {})
            return st.get("connected") and st.get("screen") == "overview" and \
                shown and all(good_number(v) for v in shown.values())
        sa, good_a = a.wait(live, 20)
        sb, good_b = b.wait(live, 20)
        ok(good_a and good_b,
           "both stations connected and show the overview with live numbers "
           "(A: %d values, e.g. %s; B: %d)" % (
               len(sa.get("shown", {})), list(sa.get("shown", {}).items())[:2],
               len(sb.get("shown", {}))))
        if not (good_a and good_b):
            sys.stderr.write(a.stderr()[-2000:] + b.stderr()[-2000:])
            sys.stderr.write(json.dumps(sa)[:2000] + "\n" + json.dumps(sb)[:2000] + "\n")
        w = sa.get("window", {})
        ok(w.get("width") == 1600 and w.get("height") == 900 and
           w.get("decorated") is False and w.get("fullscreen") is False and
           sa.get("profile_found") is True,
           "A's window follows its profile: %sx%s, decorated %s, fullscreen %s" % (
               w.get("width"), w.get("height"), w.get("decorated"), w.get("fullscreen")))
        ok(sa.get("toolbars") == ["navigation", "alarms", "trends", "reports", "status"],
           "A shows the profile's toolbars: %s" % sa.get("toolbars"))
        ok(sa.get("language") == "en" and sa.get("ui_language") == "en" and
           sb.get("language") == "de" and sb.get("ui_language") == "de",
           "languages: A project %s / UI %s; B project %s / UI %s (German catalogue)" % (
               sa.get("language"), sa.get("ui_language"), sb.get("language"),
               sb.get("ui_language")))
        ok(sb.get("banner_text", "").startswith("Verbindung") and
           sa.get("banner_text", "").startswith("Connection"),
           "the banner text is translated: %r / %r" % (sa.get("banner_text"),
                                                      sb.get("banner_text")))

        # 2. A screenshot shows the start screen (the station redraws and
        # captures after that frame is painted).
        shot = a.screenshot()
        ok(shot is not None, "screenshot of A saved: %s" % shot)
        if shot:
            wpx, hpx, rows = png_read(shot)
            st = a.state()
            ox, oy = st["screen_origin"]
            sc = st["screen_scale"]

            def px(sx, sy):
                return rows[int(oy + sy * sc)][int(ox + sx * sc)]
            bg = hexrgb("1d2329")
            ok(near(px(5, 525), bg, 12) and near(px(1275, 525), bg, 12),
               "the overview's background colour is where the screen has no object "
               "(%s, %s)" % (px(5, 525), px(1275, 525)))
            ok(near(px(22, 2), hexrgb("11161b"), 12),
               "its title bar is drawn (%s)" % (px(22, 2),))
            region = [rows[y][x] for y in range(int(oy), min(hpx, int(oy + 520 * sc)), 2)
                      for x in range(int(ox), min(wpx, int(ox + 1280 * sc)), 2)]
            green = sum(1 for c in region if near(c, hexrgb("2ecc40"), 30))
            blue = sum(1 for c in region if near(c, hexrgb("3a7bd5"), 30))
            magenta = sum(1 for c in region if near(c, (255, 0, 255), 20))
            ok(green > 20 and blue > 500 and magenta == 0,
               "live process colours on the screen: %d running-lamp green, %d water "
               "blue, %d bad-quality magenta pixels (sampled)" % (green, blue, magenta))
        shot_b = b.screenshot()
        ok(shot_b is not None, "screenshot of B saved: %s" % shot_b)

        # 3. A blocked key does nothing; a navigation key works.
        before = a.state().get("blocked_keys", 0)
        a.key("ctrl+q")
        st, good = a.wait(lambda s: s.get("blocked_keys", 0) > before, 5)
        time.sleep(0.5)  # an observation window: a quit, were it not blocked, happens in it
        ok(good and a.alive() and a.state().get("screen") == "overview",
           "Ctrl+Q (blocked by the profile) does nothing: still running, %d blocked" %
           st.get("blocked_keys", 0))
        a.key("F4")
        st, good = a.wait(lambda s: s.get("screen") == "distribution" and
                          s.get("shown", {}).get(SETPOINT_TAG) and
                          good_number(s["shown"][SETPOINT_TAG]), 5)
        ok(good, "F4 shows the distribution screen with its values (%s = %s)" % (
            SETPOINT_TAG, st.get("shown", {}).get(SETPOINT_TAG)))
        b.key("F4")
        b.wait(lambda s: s.get("screen") == "distribution", 5)

        # 4. A setpoint typed on A.
        a.click_screen(*SETPOINT_AT)
        typed = a.dialog_type(["ctrl+a", ("250",), "Return"])
        st, good = a.wait(lambda s: "outside" in s.get("notes", {}).get("setpoint_error", ""), 5)
        ok(typed and good,
           "250 %% (outside 0..100) is refused in the dialog: %s" %
           st.get("notes", {}).get("setpoint_error"))
        a.dialog_type(["ctrl+a", ("61",), "Return"])
        st, good = a.wait(lambda s: s.get("notes", {}).get("dialog") == "confirm", 5)
        ok(good, "a confirmation is asked for 61")
        t_write = time.monotonic()
        a.dialog_type(["Return"])
        st, good = a.wait(lambda s: s.get("notes", {}).get("last_write", "").startswith(
            "written"), 10)
        ok(good, "A: %s" % st.get("notes", {}).get("last_write"))
        # tags.csv: hr:600, uint16, raw 0..10000 = 0..100 %
        log = vc.wait_for(lambda: [e for e in vc.read_write_log(writes)
                                   if e.get("address") == 600 and e.get("values") == [6100]
                                   and e.get("ok")], 5)
        ok(bool(log), "vigil-plcsim logged the write of 61 %% (hr:600 = 6100): %s" % (
            log[-1:] if log else vc.read_write_log(writes)[-3:]))
        st, good = b.wait(lambda s: s.get("shown", {}).get(SETPOINT_TAG, "").startswith("61"), 5)
        ok(good, "B shows %s = %s, %.2f s after A confirmed" % (
            SETPOINT_TAG, st.get("shown", {}).get(SETPOINT_TAG), time.monotonic() - t_write))

        # 5. An alarm acknowledged on A shows acknowledged on B.
        a.key("F1")
        b.key("F1")
        with open(force_path + ".tmp", "w") as f:
            f.write("%s 1\n" % FAULT)
        os.replace(force_path + ".tmp", force_path)
        sa, good_a = a.wait(lambda s: s.get("alarms", {}).get(FAULT_ALARM) == "unack_active", 10)
        sb, good_b = b.wait(lambda s: s.get("alarms", {}).get(FAULT_ALARM) == "unack_active", 10)
        ok(good_a and good_b, "the forced pump fault is unacknowledged on both stations")
        st, good = a.click_until("hmi-tool-alarms",
                                 lambda s: s.get("view") == "alarms" and
                                 "hmi-ack-all" in s.get("widgets", {}))
        ok(good, "A's alarm view is open (toolbar button)")
        a.click_until("hmi-ack-all", lambda s: s.get("notes", {}).get("dialog_xid"))
        a.dialog_type(["Return"])
        sa, good_a = a.wait(lambda s: s.get("alarms", {}).get(FAULT_ALARM) == "ack_active", 10)
        t_ack = time.monotonic()
        sb, good_b = b.wait(lambda s: s.get("alarms", {}).get(FAULT_ALARM) == "ack_active", 5)
        ok(good_a and good_b,
           "acknowledged on A (%s), shown acknowledged on B %.2f s later (%s)" % (
               sa.get("notes", {}).get("last_ack"), time.monotonic() - t_ack,
               sb.get("alarms", {}).get(FAULT_ALARM)))

        # 5b. Reports view: run the project's first report (daily flows),
        # preview it, save it as PDF through the file chooser; pdfinfo reads it.
        a.click_until("hmi-tool-reports", lambda s: s.get("view") == "reports" and
                      "hmi-report-run" in s.get("widgets", {}))
        a.click_until("hmi-report-run", lambda s: s.get("notes", {}).get("report_preview"))
        st, good = a.wait(lambda s: "rows" in s.get("notes", {}).get("report_preview", ""), 15)
        ok(good, "report previewed on A: %s" % st.get("notes", {}).get("report_preview"))
        pdf = os.path.join(args.shots, "daily-flows.pdf")
        if os.path.exists(pdf):
            os.unlink(pdf)
        a.click_until("hmi-report-save-pdf", lambda s: s.get("notes", {}).get("dialog_xid"))
        a.dialog_type(["ctrl+a", (pdf,), "Return"])
        st, good = a.wait(lambda s: s.get("notes", {}).get("last_report", "").startswith(
            "pdf"), 20)
        info = ""
        if good and shutil.which("pdfinfo") and os.path.exists(pdf):
            info = subprocess.run(["pdfinfo", pdf], capture_output=True, text=True).stdout
        ok(good and "Pages:" in info,
           "the report saved as PDF (%s): %s; pdfinfo: %s" % (
               pdf, st.get("notes", {}).get("last_report"),
               " ".join(l for l in info.splitlines() if l.startswith("Pages"))))

        # 5c. A screen's trend object opens the trend view on its tags, drawn
        # from aggregated history.
        a.key("F4")
        a.wait(lambda s: s.get("screen") == "distribution", 5)
        a.click_screen(640 + 315, 400 + 195)   # the trend object of distribution.yaml
        st, good = a.wait(lambda s: s.get("view") == "trends" and
                          "buckets" in s.get("notes", {}).get("trend", ""), 15)
        ok(good, "the trend object opens the trend view: %s" %
           st.get("notes", {}).get("trend"))
        a.key("F1")

        # 6. Failover, several times.
        a.wait(lambda s: s.get("screen") == "overview", 5)
        times = []
        for rnd in range(args.failovers):
            leader, term = vc.polling_leader(cluster, timeout=20)
            shown_before = {s.name: s.state().get("banner_shown", 0) for s in stations}
            t_kill_wall = time.time()
            leader.kill()
            seen_banner = {s.name: False for s in stations}
            end = time.monotonic() + 15
            while time.monotonic() < end:
                for s in stations:
                    st = s.state()
                    if st.get("banner") or st.get("banner_shown", 0) > shown_before[s.name]:
                        seen_banner[s.name] = True
                if all(seen_banner.values()):
                    break
                time.sleep(0.02)
            results = []
            for s in stations:
                st, good = s.wait(lambda x: x.get("connected") and not x.get("banner") and
                                  x.get("fresh_ms", 0) > t_kill_wall * 1000, 15)
                results.append((s.name, good, st))
            if not ok(all(seen_banner.values()) and all(r[1] for r in results),
                      "failover %d: leader %d killed; the banner appeared on both and "
                      "went away; fresh values after %s s" % (
                          rnd + 1, leader.id, ", ".join(
                              "%.2f" % ((r[2].get("fresh_ms", 0) / 1000.0) - t_kill_wall)
                              for r in results))):
                for name, good, st in results:
                    print("# %s: banner seen %s, connected %s, banner %s, lost_ms %+.2f s, "
                          "fresh_ms %+.2f s, notes %s" % (
                              name, seen_banner[name], st.get("connected"), st.get("banner"),
                              st.get("lost_ms", 0) / 1000.0 - t_kill_wall,
                              st.get("fresh_ms", 0) / 1000.0 - t_kill_wall,
                              st.get("notes", {}).get("connection")))
            times += [(r[2].get("fresh_ms", 0) / 1000.0) - t_kill_wall for r in results
                      if r[1]]
            leader.start()
            cluster.wait_converged(timeout=20)
        if times:
            print("# leader kill -> fresh values on the station: median %.3f s, "
                  "max %.3f s over %d (station, failover) pairs" % (
                      vc.percentile(times, 50), max(times), len(times)))
        st = a.state()
        ok(a.alive() and b.alive() and st.get("banner") is False,
           "both stations still run, banner gone, no operator action taken")
        shot = a.screenshot()
        ok(shot is not None, "screenshot after the failovers: %s" % shot)

        # 7. CPU and memory of a station showing the overview.
        a.key("F1")
        a.wait(lambda s: s.get("screen") == "overview", 5)
        time.sleep(1)
        c0, t0 = cpu_seconds(a.proc.pid), time.monotonic()
        time.sleep(10)
        c1, t1 = cpu_seconds(a.proc.pid), time.monotonic()
        rss = rss_kib(a.proc.pid)
        ok(a.alive(), "station A with the overview open: CPU %.1f %% of one core over "
           "%.0f s, RSS %.1f MiB" % (100 * (c1 - c0) / (t1 - t0), t1 - t0, rss / 1024.0))
        print("# station cpu_percent %.2f rss_mib %.1f" % (100 * (c1 - c0) / (t1 - t0),
                                                          rss / 1024.0))
        for s in stations:
            s.stop()
        ok(all(s.proc.returncode == 0 for s in stations),
           "both stations end cleanly on SIGTERM (exit %s)" %
           [s.proc.returncode for s in stations])
    except Exception as e:  # noqa: BLE001 - report, then clean up
        ok(False, "unexpected error: %r" % e)
        import traceback
        traceback.print_exc()
        for s in stations:
            sys.stderr.write("---- %s stderr\n%s\n" % (s.name, s.stderr()[-3000:]))
            sys.stderr.write("---- %s state\n%s\n" % (s.name, json.dumps(s.state())[:3000]))
    finally:
        for s in stations:
            s.stop()
        for s in sims:
            s.kill()
        if cluster is not None:
            if not all(tap.results):
                cluster.dump_logs()
            cluster.close()
        for x in xvfbs:
            x.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())
