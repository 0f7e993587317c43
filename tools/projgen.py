#!/usr/bin/env python3
"""Generate a large, synthetic but valid Vigil plant project (config/FORMAT.md).

usage: tools/projgen.py --tags N [--alarms M] [--screens K] [--plcs P]
                        --out DIR [--seed S]

  --tags N      number of tags (exactly N rows in tags.csv)
  --alarms M    number of alarms (default N/5)
  --screens K   number of screens (default 10; the first is "overview")
  --plcs P      number of PLCs (default max(2, N/2000)); more are added when
                the units do not fit into P PLCs' register space
  --out DIR     the project folder to write (created; project.yaml, tags.csv,
                alarms.csv and screens/*.yaml in it are replaced)
  --seed S      seed of the variations (default 1): same arguments and seed,
                byte-identical output

The plant is made of process units of 20 tags each (level, flow, pressure,
temperature, pump, valve, setpoints, counters, ...), grouped into lines
(sections) and areas (top-level sections), in two languages (en, de). Every
data type, both word orders, all four register kinds, scaling, deadbands,
archive modes and writable setpoints with limits occur. Alarms are spread
over the units (high/high_high/low/low_low, digital_on/off, deviation from a
setpoint). Each PLC gets a distinct port (15000 + i on 127.0.0.1); a unit's
registers are contiguous and never overlap another's. The fencing register
of every PLC is hr 65500; hr 65500..65535 stay free. Screens show eight
units each with every object type; three stations, role per area, three
reports.

Only the Python 3 standard library is used; 100 000 tags take a few seconds.
"""
import argparse
import csv
import json
import math
import os
import random
import sys

LANGS = ("en", "de")
SIEMENS = 27648
REGS = 65536
FENCING = 65500          # fencing register of every generated PLC
HR_LIMIT = FENCING       # holding registers 0..65499 are free for tags
UNIT_TAGS = 20
UNITS_PER_LINE = 10
LINES_PER_AREA = 10
SCREEN_W, SCREEN_H = 1280, 800
WIDTH = {"bool": 1, "int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2}

TAG_COLS = ["name", "section", "plc", "address", "type", "word_order", "raw_min", "raw_max",
            "eng_min", "eng_max", "unit", "deadband", "archive", "writable", "min", "max",
            "description_en", "description_de"]
ALARM_COLS = ["name", "tag", "kind", "limit", "hysteresis", "on_delay", "off_delay", "priority",
              "section", "reference", "message_en", "message_de"]


def num(v):
    """Shortest text of a number: 5, 0.25, -50."""
    if isinstance(v, int):
        return str(v)
    r = round(v, 6)
    if r == int(r):
        return str(int(r))
    return repr(r)


def q(s):
    """A YAML double-quoted string (JSON strings are valid YAML)."""
    return json.dumps(s, ensure_ascii=False)


def text(en, de):
    return "{en: %s, de: %s}" % (q(en), q(de))


class Rng:
    """Deterministic choices from random.random() alone, which is stable
    across Python versions for an integer seed."""

    def __init__(self, seed):
        self.r = random.Random(seed)

    def pick(self, seq):
        return seq[int(self.r.random() * len(seq))]

    def chance(self, p):
        return self.r.random() < p


# ----------------------------------------------------------------- the units
# One process unit: a list of tag specs in a fixed order. Each spec is a dict
# with the signal name ("sig") and the CSV fields; "nominal" is the range used
# for alarm limits and screen scales when the tag is unscaled.
def unit_specs(rng):
    q_max = rng.pick([50, 100, 150, 250, 400, 600])
    p_max = rng.pick([6, 10, 16])
    h_max = rng.pick([4, 6, 8, 10])
    arch = lambda: rng.pick(["change", "cyclic:10", "cyclic:10", "cyclic:60"])
    wo = lambda: rng.pick(["big", "little"])
    specs = []

    def add(sig, kind, typ, en, de, **kw):
        s = dict(sig=sig, kind=kind, type=typ, en=en, de=de, word_order="", scale=None,
                 unit="", deadband="", archive="", writable=False, lim=None, nominal=None)
        s.update(kw)
        if WIDTH[typ] == 2 and not s["word_order"]:
            s["word_order"] = wo()
        specs.append(s)

    if rng.chance(0.5):
        add("level", rng.pick(["hr", "ir"]), "float32", "tank level", "Behälter Füllstand",
            unit="m", deadband=0.01, archive="cyclic:10", nominal=(0, h_max))
    else:
        add("level", "ir", "int16", "tank level", "Behälter Füllstand",
            scale=(0, SIEMENS, 0, h_max), unit="m", deadband=0.01, archive="cyclic:10")
    if rng.chance(0.5):
        add("level_sp", "hr", "float32", "level setpoint", "Füllstand Sollwert", unit="m",
            archive="change", writable=True, lim=(0.1 * h_max, 0.9 * h_max), nominal=(0, h_max))
    else:
        add("level_sp", "hr", "uint16", "level setpoint", "Füllstand Sollwert",
            scale=(0, 10000, 0, h_max), unit="m", archive="change", writable=True,
            lim=(0.1 * h_max, 0.9 * h_max))
    add("flow", "ir", "int16", "flow", "Durchfluss", scale=(0, SIEMENS, 0, q_max), unit="m³/h",
        deadband=q_max / 500, archive="cyclic:10")
    add("flow_sp", "hr", "uint16", "flow setpoint", "Durchfluss Sollwert",
        scale=(0, q_max * 10, 0, q_max), unit="m³/h", archive="change", writable=True,
        lim=(0.1 * q_max, 0.9 * q_max))
    add("pressure", "ir", "int16", "pressure", "Druck", scale=(0, SIEMENS, 0, p_max), unit="bar",
        deadband=p_max / 500, archive="cyclic:10")
    add("temp", "ir", "int16", "temperature", "Temperatur", scale=(-500, 1500, -50, 150),
        unit="°C", deadband=0.5, archive=arch())
    add("speed", "ir", "int16", "pump speed", "Pumpe Drehzahl", scale=(0, SIEMENS, 0, 100),
        unit="%", deadband=0.5, archive=arch())
    add("speed_sp", "hr", "uint16", "pump speed setpoint", "Pumpe Drehzahlsollwert",
        scale=(0, 1000, 0, 100), unit="%", archive="change", writable=True, lim=(20, 95))
    add("valve_pos", "ir", "uint16", "valve position", "Ventilstellung",
        scale=(0, 1000, 0, 100), unit="%", deadband=0.5, archive=arch())
    add("hours", "ir", "uint32", "pump operating hours", "Pumpe Betriebsstunden", unit="h",
        archive="change")
    add("energy", "ir", "uint32", "energy meter", "Energiezähler", word_order="little",
        unit="kWh", archive="cyclic:60")
    if rng.chance(0.5):
        add("net_flow", "ir", "int32", "net volume flow", "Netto-Volumenstrom",
            scale=(-1000000, 1000000, -1000, 1000), unit="m³/h", deadband=1, archive=arch())
    else:
        add("net_flow", "ir", "int32", "net volume flow", "Netto-Volumenstrom", unit="l/h",
            deadband=10, archive=arch(), nominal=(-1000000, 1000000))
    add("state", "ir", "uint16", "state code", "Zustandscode", archive="change")
    add("running", "di", "bool", "pump running", "Pumpe läuft", archive="change")
    add("fault", "di", "bool", "pump fault", "Pumpe Störung", archive="change")
    add("valve_open", "di", "bool", "valve open", "Ventil offen", archive="change")
    add("ready", "di", "bool", "ready for operation", "betriebsbereit", archive="change")
    add("cmd", "co", "bool", "pump run command", "Pumpe Fahrbefehl", writable=True)
    add("valve_cmd", "co", "bool", "valve open command", "Ventil Befehl Auf", writable=True)
    add("mode", "hr", "uint16", "operating mode (1 off, 2 manual, 3 auto, 4 service)",
        "Betriebsart (1 aus, 2 Hand, 3 Auto, 4 Service)", archive="change", writable=True,
        lim=(1, 4))
    assert len(specs) == UNIT_TAGS
    return specs


def eng_range(t):
    """The range used for limits and scales: engineering range or nominal."""
    if t["scale"]:
        return t["scale"][2], t["scale"][3]
    return t["nominal"]


class Plc:
    def __init__(self, index):
        self.index = index
        self.name = "plc%03d" % (index + 1)
        self.next = {"co": 0, "di": 0, "hr": 0, "ir": 0}

    def fits(self, need):
        limit = {"co": REGS, "di": REGS, "hr": HR_LIMIT, "ir": REGS}
        return all(self.next[k] + need[k] <= limit[k] for k in need)


def build(args):
    rng = Rng(args.seed)
    n_units = math.ceil(args.tags / UNIT_TAGS) if args.tags else 0
    n_lines = max(1, math.ceil(n_units / UNITS_PER_LINE))
    n_areas = max(1, math.ceil(n_lines / LINES_PER_AREA))

    plcs = [Plc(i) for i in range(args.plcs)]
    per_plc = math.ceil(n_units / len(plcs)) if n_units else 1
    units = []
    tags = []
    p = 0
    count_in_plc = 0
    for u in range(n_units):
        specs = unit_specs(rng)
        k = min(UNIT_TAGS, args.tags - u * UNIT_TAGS)
        specs = specs[:k]
        need = {"co": 0, "di": 0, "hr": 0, "ir": 0}
        for s in specs:
            need[s["kind"]] += WIDTH[s["type"]]
        if count_in_plc >= per_plc and p + 1 < len(plcs):
            p += 1
            count_in_plc = 0
        while not plcs[p].fits(need):
            p += 1
            count_in_plc = 0
            if p == len(plcs):
                plcs.append(Plc(p))
        plc = plcs[p]
        count_in_plc += 1
        line = u // UNITS_PER_LINE
        area = line // LINES_PER_AREA
        area_name = "area%02d" % (area + 1)
        line_name = "%s-line%02d" % (area_name, line % LINES_PER_AREA + 1)
        uname = "%s.unit%05d" % (area_name, u + 1)
        where_en = "Area %d, line %d, unit %d" % (area + 1, line % LINES_PER_AREA + 1, u + 1)
        where_de = "Bereich %d, Linie %d, Einheit %d" % (area + 1, line % LINES_PER_AREA + 1, u + 1)
        unit = {"index": u, "name": uname, "area": area_name, "line": line_name, "tags": {},
                "en": where_en, "de": where_de}
        for s in specs:
            off = plc.next[s["kind"]]
            plc.next[s["kind"]] += WIDTH[s["type"]]
            t = dict(s)
            t["name"] = "%s.%s" % (uname, s["sig"])
            t["section"] = line_name
            t["plc"] = plc.name
            t["address"] = "%s:%d" % (s["kind"], off)
            t["description_en"] = "%s: %s" % (where_en, s["en"])
            t["description_de"] = "%s: %s" % (where_de, s["de"])
            tags.append(t)
            unit["tags"][s["sig"]] = t
        units.append(unit)

    alarms = make_alarms(args, rng, units)
    return {"units": units, "tags": tags, "alarms": alarms, "plcs": plcs,
            "n_lines": n_lines if n_units else 0, "n_areas": n_areas}


# ---------------------------------------------------------------- alarms
def make_alarms(args, rng, units):
    def frac(t, f):
        lo, hi = eng_range(t)
        return lo + (hi - lo) * f

    def width(t):
        lo, hi = eng_range(t)
        return hi - lo

    # Candidates per unit, in the order they are handed out.
    def candidates(u):
        T = u["tags"]
        c = []

        def add(sig, kind, prio, en, de, f=None, ref=None, dev=None):
            if sig not in T or (ref and ref not in T):
                return
            t = T[sig]
            a = {"tag": t, "kind": kind, "priority": prio, "en": en, "de": de, "limit": "",
                 "hysteresis": "", "reference": ""}
            if f is not None:
                a["limit"] = frac(t, f)
                a["hysteresis"] = width(t) * 0.01
            if ref:
                a["limit"] = width(t) * dev
                a["hysteresis"] = width(t) * 0.01
                a["reference"] = T[ref]["name"]
            a["name"] = "%s.%s" % (t["name"], {"digital_on": "on", "digital_off": "off"}.get(kind, kind))
            c.append(a)

        add("fault", "digital_on", "high", "pump fault", "Pumpe Störung")
        add("level", "high", "medium", "level high", "Füllstand hoch", f=0.8)
        add("level", "low", "medium", "level low", "Füllstand niedrig", f=0.2)
        add("flow", "deviation", "medium", "flow deviates from setpoint",
            "Durchfluss weicht vom Sollwert ab", ref="flow_sp", dev=0.1)
        add("pressure", "high_high", "critical", "pressure very high", "Druck sehr hoch", f=0.9)
        add("ready", "digital_off", "critical", "not ready for operation", "nicht betriebsbereit")
        add("temp", "high", "low", "temperature high", "Temperatur hoch", f=0.6)
        add("level", "high_high", "high", "level very high", "Füllstand sehr hoch", f=0.9)
        add("level", "low_low", "high", "level very low", "Füllstand sehr niedrig", f=0.1)
        add("pressure", "high", "medium", "pressure high", "Druck hoch", f=0.8)
        add("pressure", "low", "low", "pressure low", "Druck niedrig", f=0.1)
        add("speed", "deviation", "low", "pump speed deviates from setpoint",
            "Pumpe Drehzahl weicht vom Sollwert ab", ref="speed_sp", dev=0.15)
        return c

    per_unit = [candidates(u) for u in units]
    total = sum(len(c) for c in per_unit)
    if args.alarms > total:
        raise SystemExit("projgen: at most %d alarms fit on %d tags (asked for %d)"
                         % (total, args.tags, args.alarms))
    # Round-robin over the units: the first candidate of every unit, then the
    # second, ... so the alarms spread over the whole plant.
    out = []
    depth = 0
    while len(out) < args.alarms:
        for u, c in zip(units, per_unit):
            if depth < len(c):
                a = c[depth]
                a["unit"] = u
                out.append(a)
                if len(out) == args.alarms:
                    break
        depth += 1
    for a in out:
        a["on_delay"] = rng.pick(["", "", 1, 2, 5, 10, 0.5, 30])
        a["off_delay"] = rng.pick(["", "", "", 2, 5])
    # Keep alarms.csv in plant order (unit, then candidate order).
    order = {id(a): (a["unit"]["index"], i) for i, a in enumerate(out)}
    out.sort(key=lambda a: order[id(a)])
    return out


# ---------------------------------------------------------------- writers
def write_tags(path, plant):
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("# Synthetic project generated by tools/projgen.py: %d tags.\n" % len(plant["tags"]))
        f.write("# Each unit has its registers contiguous on one PLC; hr %d.. stays free "
                "(fencing register).\n" % FENCING)
        w = csv.writer(f, lineterminator="\n")
        w.writerow(TAG_COLS)
        for t in plant["tags"]:
            sc = t["scale"] or ("", "", "", "")
            lim = t["lim"] or ("", "")
            w.writerow([t["name"], t["section"], t["plc"], t["address"], t["type"], t["word_order"],
                        *(num(x) if x != "" else "" for x in sc), t["unit"],
                        num(t["deadband"]) if t["deadband"] != "" else "", t["archive"],
                        "yes" if t["writable"] else "",
                        *(num(x) if x != "" else "" for x in lim),
                        t["description_en"], t["description_de"]])


def write_alarms(path, plant):
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("# Synthetic project generated by tools/projgen.py: %d alarms.\n" % len(plant["alarms"]))
        w = csv.writer(f, lineterminator="\n")
        w.writerow(ALARM_COLS)
        for a in plant["alarms"]:
            u = a["unit"]
            w.writerow([a["name"], a["tag"]["name"], a["kind"],
                        num(a["limit"]) if a["limit"] != "" else "",
                        num(a["hysteresis"]) if a["hysteresis"] != "" else "",
                        num(a["on_delay"]) if a["on_delay"] != "" else "",
                        num(a["off_delay"]) if a["off_delay"] != "" else "",
                        a["priority"], "", a["reference"],
                        "%s: %s" % (u["en"], a["en"]), "%s: %s" % (u["de"], a["de"])])


def screen_names(k):
    return ["overview"] + ["screen%03d" % i for i in range(1, k)] if k else []


def write_project(path, args, plant, screens):
    L = []
    L.append("# Synthetic project generated by tools/projgen.py --tags %d --alarms %d --screens %d "
             "--plcs %d --seed %d" % (args.tags, args.alarms, args.screens, args.plcs, args.seed))
    L.append("project: synthetic-%d" % args.tags)
    L.append('version: "seed %d"' % args.seed)
    L.append("title: " + text("Synthetic plant (%d tags)" % args.tags,
                              "Synthetische Anlage (%d Tags)" % args.tags))
    L.append("languages: [en, de]")
    L.append("")
    L.append("sections:")
    n_lines = max(1, plant["n_lines"])
    for a in range(plant["n_areas"]):
        an = "area%02d" % (a + 1)
        L.append("  - name: " + an)
        L.append("    title: " + text("Area %d" % (a + 1), "Bereich %d" % (a + 1)))
        lines = range(a * LINES_PER_AREA, min(n_lines, (a + 1) * LINES_PER_AREA))
        if lines:
            L.append("    children:")
        for ln in lines:
            L.append("      - name: %s-line%02d" % (an, ln % LINES_PER_AREA + 1))
            L.append("        title: " + text("Area %d, line %d" % (a + 1, ln % LINES_PER_AREA + 1),
                                              "Bereich %d, Linie %d" % (a + 1, ln % LINES_PER_AREA + 1)))
    L.append("")
    L.append("plcs:")
    for plc in plant["plcs"]:
        L.append("  - {name: %s, host: 127.0.0.1, port: %d, unit_id: 1, poll_interval: %s, "
                 "timeout: 1s, fencing_register: %d}"
                 % (plc.name, 15000 + plc.index, "500ms" if plc.index % 2 == 0 else "1s", FENCING))
    if not plant["plcs"]:
        L[-1] = "plcs: []"
    L.append("")
    L.append("stations:")
    stations = [("station-de", "Station (German)", "Station (deutsch)", "de", 1920, 1080, False, False),
                ("station-en", "Station (English)", "Station (englisch)", "en", 1920, 1080, True, False),
                ("laptop", "Laptop", "Laptop", "en", 1280, 800, False, True)]
    for name, en, de, lang, w, h, full, deco in stations:
        L.append("  - name: " + name)
        L.append("    title: " + text(en, de))
        if screens:
            L.append("    start_screen: overview")
        L.append("    language: " + lang)
        L.append("    toolbars: [navigation, alarms, trends, reports, status]")
        if screens:
            keys = ", ".join("F%d: %s" % (i + 1, s) for i, s in enumerate(screens[:12]))
            L.append("    navigation_keys: {%s}" % keys)
        L.append("    window: {width: %d, height: %d, fullscreen: %s, decorated: %s, always_on_top: false}"
                 % (w, h, "true" if full else "false", "true" if deco else "false"))
        L.append("    blocked_keys: [Alt+F4, Ctrl+Q, Ctrl+Alt+BackSpace]")
    L.append("")
    L.append("roles:")
    L.append("  - name: operator")
    L.append("    title: " + text("Operator", "Bediener"))
    L.append("    grants:")
    L.append("      - functions: [view, operate, write_setpoint, acknowledge, shelve]")
    L.append("        stations: [station-de, station-en]")
    for a in range(min(plant["n_areas"], 20)):
        L.append("  - name: area%02d-operator" % (a + 1))
        L.append("    title: " + text("Operator area %d" % (a + 1), "Bediener Bereich %d" % (a + 1)))
        L.append("    grants:")
        L.append("      - functions: [view, operate, write_setpoint, acknowledge]")
        L.append("        sections: [area%02d]" % (a + 1))
        L.append("      - functions: [view]")
    L.append("  - name: engineer")
    L.append("    title: " + text("Engineer", "Ingenieur"))
    L.append("    grants:")
    L.append("      - functions: [view, operate, write_setpoint, acknowledge, shelve, reports, "
             "load_project, manage_users, manage_cluster]")
    L.append("")
    L.append("reports:")
    flows = [u["tags"]["flow"]["name"] for u in plant["units"] if "flow" in u["tags"]][:8]
    if flows:
        L.append("  - name: daily-flows")
        L.append("    title: " + text("Daily flows", "Tagesdurchflüsse"))
        L.append("    kind: tags")
        L.append("    tags: [%s]" % ", ".join(flows))
        L.append("    range: 1d")
        L.append("    format: pdf")
    L.append("  - name: alarm-summary")
    L.append("    title: " + text("Alarm summary", "Alarmübersicht"))
    L.append("    kind: alarms")
    L.append("    sections: [area01]")
    L.append("    range: 7d")
    L.append("    format: pdf")
    L.append("  - name: audit-log")
    L.append("    title: " + text("Audit log", "Prüfprotokoll"))
    L.append("    kind: audit")
    L.append("    range: 30d")
    L.append("    format: csv")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(L) + "\n")


class ScreenWriter:
    def __init__(self):
        self.lines = []

    def obj(self, body):
        self.lines.append("  - {%s}" % body)


def at(x, y):
    return "at: [%d, %d]" % (x, y)


def size(w, h):
    return "size: [%d, %d]" % (w, h)


def write_screen(path, name, title_en, title_de, others, units, section):
    s = ScreenWriter()
    s.obj("type: rect, %s, %s, fill: \"#11161b\"" % (at(0, 0), size(SCREEN_W, 50)))
    s.obj("type: text, %s, text: %s, font_size: 20, color: \"#ffffff\"" % (at(16, 14), text(title_en, title_de)))
    # Navigation: up to 6 buttons top right.
    x = SCREEN_W - 10 - len(others) * 106 + 6
    for target, en, de in others:
        s.obj("type: button, %s, %s, text: %s, goto: %s" % (at(x, 9), size(100, 32), text(en, de), target))
        x += 106
    # Eight unit panels in a 4 x 2 grid.
    for i, u in enumerate(units):
        px = 10 + (i % 4) * 315
        py = 60 + (i // 4) * 310
        T = u["tags"]
        s.obj("type: rect, %s, %s, fill: \"#232b33\", stroke: \"#3b4754\"" % (at(px, py), size(305, 300)))
        s.obj("type: text, %s, text: %s, font_size: 14, color: \"#ffffff\""
              % (at(px + 10, py + 8), text("Unit %d" % (u["index"] + 1), "Einheit %d" % (u["index"] + 1))))
        if "level" in T:
            lo, hi = eng_range(T["level"])
            s.obj("type: tank, %s, %s, tag: %s, min: %s, max: %s, fill: \"#3a7bd5\", stroke: \"#cccccc\""
                  % (at(px + 10, py + 36), size(50, 150), T["level"]["name"], num(lo), num(hi)))
        rows = [("flow", "%.1f"), ("pressure", "%.2f"), ("temp", "%.1f"), ("state", "%d")]
        for k, (sig, fmt) in enumerate(rows):
            if sig in T:
                s.obj("type: value, %s, %s, tag: %s, format: \"%s\", font_size: 12"
                      % (at(px + 180, py + 36 + k * 28), size(115, 24), T[sig]["name"], fmt))
                s.obj("type: text, %s, text: %s, font_size: 11, color: \"#9fb3c8\""
                      % (at(px + 72, py + 40 + k * 28), text(T[sig]["en"].capitalize(), T[sig]["de"])))
        for k, sig in enumerate(("running", "fault")):
            if sig in T:
                on = "#2ecc40" if sig == "running" else "#ff4136"
                s.obj("type: lamp, %s, %s, tag: %s, on_color: \"%s\", off_color: \"#4a4a4a\""
                      % (at(px + 72 + k * 24, py + 156), size(18, 18), T[sig]["name"], on))
        if "running" in T:
            s.obj("type: pipe, points: [[%d, %d], [%d, %d], [%d, %d]], width: 6, stroke: \"#3a7bd5\", tag: %s"
                  % (px + 35, py + 186, px + 35, py + 196, px + 290, py + 196, T["running"]["name"]))
        if "cmd" in T:
            s.obj("type: button, %s, %s, text: %s, write: {tag: %s, value: 1}"
                  % (at(px + 10, py + 206), size(90, 28), text("Start", "Ein"), T["cmd"]["name"]))
            s.obj("type: button, %s, %s, text: %s, write: {tag: %s, value: 0}"
                  % (at(px + 106, py + 206), size(90, 28), text("Stop", "Aus"), T["cmd"]["name"]))
        if "mode" in T:
            s.obj("type: button, %s, %s, text: %s, write: {tag: %s, value: 3}"
                  % (at(px + 202, py + 206), size(93, 28), text("Auto", "Auto"), T["mode"]["name"]))
        if "flow_sp" in T:
            s.obj("type: setpoint, %s, %s, tag: %s, format: \"%%.1f\""
                  % (at(px + 180, py + 240), size(115, 24), T["flow_sp"]["name"]))
            s.obj("type: text, %s, text: %s, font_size: 11, color: \"#9fb3c8\""
                  % (at(px + 10, py + 244), text("Flow setpoint", "Sollwert Durchfluss")))
        if "speed" in T:
            s.obj("type: bar, %s, %s, tag: %s, vertical: false, fill: \"#2ecc40\""
                  % (at(px + 10, py + 274), size(285, 14), T["speed"]["name"]))
        s.obj("type: line, points: [[%d, %d], [%d, %d]], color: \"#3b4754\", width: 1"
              % (px + 10, py + 30, px + 295, py + 30))
        s.obj("type: polyline, points: [[%d, %d], [%d, %d], [%d, %d]], color: \"#d4c22a\", width: 2"
              % (px + 62, py + 60, px + 68, py + 60, px + 68, py + 150))
    # Trend of the first unit and the alarms of the screen's area.
    if units:
        T = units[0]["tags"]
        tr = [T[s_]["name"] for s_ in ("flow", "level", "pressure", "temp") if s_ in T]
        if tr:
            s.obj("type: trend, %s, %s, tags: [%s], span: 2h" % (at(10, 680), size(620, 110), ", ".join(tr)))
    s.obj("type: alarm_list, %s, %s%s, max_priority: 3"
          % (at(640, 680), size(630, 110), ", sections: [%s]" % section if section else ""))
    with open(path, "w", encoding="utf-8") as f:
        f.write("# Synthetic screen generated by tools/projgen.py\n")
        f.write("title: %s\n" % text(title_en, title_de))
        f.write("size: [%d, %d]\n" % (SCREEN_W, SCREEN_H))
        f.write("background: \"#1d2329\"\n")
        if section:
            f.write("section: %s\n" % section)
        f.write("objects:\n")
        f.write("\n".join(s.lines) + "\n")


def write_screens(sdir, plant, names):
    full = [u for u in plant["units"] if len(u["tags"]) == UNIT_TAGS] or plant["units"]
    k = len(names)
    for i, name in enumerate(names):
        # Each screen shows 8 units, taken evenly from the whole plant.
        if full:
            step = max(1, len(full) // (8 * k))
            start = (i * 8 * step) % len(full)
            shown = [full[(start + j * step) % len(full)] for j in range(min(8, len(full)))]
        else:
            shown = []
        # Navigation: the overview, the previous and the next screen.
        others = []
        if i == 0:
            others = [(names[j], "Screen %d" % j, "Bild %d" % j) for j in range(1, min(7, k))]
        else:
            others.append(("overview", "Overview", "Übersicht"))
        if i > 1:
            others.append((names[i - 1], "Back", "Zurück"))
        if 0 < i and i + 1 < k:
            others.append((names[i + 1], "Next", "Weiter"))
        if i == 0:
            title = ("Overview", "Übersicht")
        else:
            title = ("Screen %d" % i, "Bild %d" % i)
        section = shown[0]["area"] if shown and i else None
        write_screen(os.path.join(sdir, name + ".yaml"), name, title[0], title[1], others, shown,
                     section)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("--tags", type=int, required=True)
    ap.add_argument("--alarms", type=int)
    ap.add_argument("--screens", type=int, default=10)
    ap.add_argument("--plcs", type=int)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    if args.tags < 1:
        ap.error("--tags must be at least 1")
    if args.alarms is None:
        args.alarms = args.tags // 5
    if args.plcs is None:
        args.plcs = max(2, args.tags // 2000)
    if args.alarms < 0 or args.plcs < 1 or not 0 <= args.screens <= 4000:
        ap.error("--alarms >= 0, --plcs >= 1, 0 <= --screens <= 4000")

    plant = build(args)
    out = args.out
    sdir = os.path.join(out, "screens")
    os.makedirs(sdir, exist_ok=True)
    for fn in os.listdir(sdir):
        if fn.endswith(".yaml"):
            os.remove(os.path.join(sdir, fn))
    names = screen_names(args.screens)
    write_project(os.path.join(out, "project.yaml"), args, plant, names)
    write_tags(os.path.join(out, "tags.csv"), plant)
    write_alarms(os.path.join(out, "alarms.csv"), plant)
    write_screens(sdir, plant, names)
    print("projgen: %d tags, %d alarms, %d screens, %d PLCs, %d sections in %s"
          % (len(plant["tags"]), len(plant["alarms"]), len(names), len(plant["plcs"]),
             plant["n_areas"] + plant["n_lines"], out), file=sys.stderr)


if __name__ == "__main__":
    main()
