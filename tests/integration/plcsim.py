#!/usr/bin/env python3
"""vigil-plcsim against the waterworks example (TAP output).

1. Arguments and projects: bad flags exit 2 naming the flag, an unknown PLC
   or an invalid project exit 1 with the reason (the validation errors).
2. Both waterworks PLCs served on free loopback ports; every tag, read with
   mbpoll and decoded by its type, word order and scaling, lies in its range.
3. Analog values change over time (noise, process).
4. Writes take effect: a pump speed setpoint moves the speed; the pump's run
   command coil stops the pump (running di 0, flow falls) and starts it.
5. The write log has one JSON line per write, with the node and term the
   client wrote to the fencing registers before.
6. 20 connections at once; garbage bytes, a half request and a lying request
   cost only their own connection; an address outside the map is answered
   with an exception.
7. At --speed 100, now and then a value crosses one of the PLC's alarm
   limits and comes back.
8. --registers 100000 serves 55 536 changing holding registers from 10000
   and the other 44 464 as input registers from 10000.
9. SIGTERM and SIGINT: exit 0, the port is closed.

Every process started is killed by PID at the end; temp files are removed.
"""
import argparse
import csv
import json
import math
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EXAMPLE = os.path.join(ROOT, 'config', 'examples', 'waterworks')
sys.path.insert(0, HERE)
import vigil_cluster as vc  # noqa: E402
from vigil_cluster import Tap, free_ports, wait_for  # noqa: E402

TYPE_RANGE = {
    'bool': (0, 1), 'int16': (-32768, 32767), 'uint16': (0, 65535),
    'int32': (-2**31, 2**31 - 1), 'uint32': (0, 2**32 - 1),
    'float32': (-3.4e38, 3.4e38),
}
MBPOLL_TYPE = {'co': '0', 'di': '1', 'ir': '3', 'hr': '4'}


def read_csv(name):
    with open(os.path.join(EXAMPLE, name), encoding='utf-8') as f:
        lines = [ln for ln in f if ln.strip() and not ln.startswith('#')]
    return list(csv.DictReader(lines))


def num(text):
    return float(text) if text != '' else None


class Tag:
    def __init__(self, row):
        self.name = row['name']
        self.plc = row['plc']
        self.kind, off = row['address'].split(':')
        self.offset = int(off)
        self.type = row['type']
        self.little = row['word_order'] == 'little'
        self.raw = (num(row['raw_min']), num(row['raw_max']))
        self.eng = (num(row['eng_min']), num(row['eng_max']))
        self.scaled = self.raw[0] is not None
        self.writable = row['writable'] == 'yes'
        self.limits = (num(row['min']), num(row['max']))
        self.width = 2 if self.type in ('int32', 'uint32', 'float32') else 1

    def range(self):
        if self.scaled:
            return self.eng
        return TYPE_RANGE[self.type]

    def decode(self, words):
        """Engineering value from the tag's registers (or bit)."""
        if self.type == 'bool':
            return float(words[0])
        if self.width == 2:
            hi, lo = (words[1], words[0]) if self.little else (words[0], words[1])
            u = hi << 16 | lo
            if self.type == 'float32':
                raw = struct.unpack('>f', struct.pack('>I', u))[0]
            elif self.type == 'int32':
                raw = u - 2**32 if u >= 2**31 else u
            else:
                raw = u
        else:
            raw = words[0] - 65536 if self.type == 'int16' and words[0] >= 32768 \
                else words[0]
        if self.scaled:
            (r0, r1), (e0, e1) = self.raw, self.eng
            return e0 + (raw - r0) * (e1 - e0) / (r1 - r0)
        return raw


class Mbpoll:
    def __init__(self, exe, port):
        self.exe = exe
        self.port = port

    def run(self, args, values=()):
        cmd = [self.exe, '-m', 'tcp', '-a', '1', '-0', '-1', '-o', '2',
               '-p', str(self.port)] + args + ['127.0.0.1']
        if values:
            cmd += ['--'] + [str(v) for v in values]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20)

    def read(self, kind, start, count):
        """COUNT raw values (16-bit unsigned, or 0/1) from START."""
        r = self.run(['-t', MBPOLL_TYPE[kind], '-r', str(start),
                      '-c', str(count)])
        vals = {}
        for line in r.stdout.splitlines():
            # "[12]: 	46920 (-18616)": values above 32767 also signed.
            m = re.match(r'\s*\[(\d+)\]:\s+(-?\d+)(\s+\(-?\d+\))?\s*$', line)
            if m:
                vals[int(m.group(1))] = int(m.group(2)) & 0xffff
        if len(vals) != count:
            raise RuntimeError('mbpoll read %s:%d+%d failed: %s' %
                               (kind, start, count,
                                (r.stderr + r.stdout[-300:]).strip()))
        return [vals[start + i] for i in range(count)]

    def write(self, kind, start, values):
        r = self.run(['-t', MBPOLL_TYPE[kind], '-r', str(start)], values)
        if 'Written %d references' % len(values) not in r.stdout:
            raise RuntimeError('mbpoll write %s:%d failed: %s' %
                               (kind, start, r.stderr.strip()))

    def read_tags(self, tags):
        """{name: engineering value}, reading contiguous blocks of at most
        125 registers or bits."""
        out = {}
        for kind in ('co', 'di', 'hr', 'ir'):
            group = sorted((t for t in tags if t.kind == kind),
                           key=lambda t: t.offset)
            i = 0
            while i < len(group):
                start, j = group[i].offset, i
                while j < len(group) and \
                        group[j].offset + group[j].width - start <= 125:
                    j += 1
                end = group[j - 1].offset + group[j - 1].width
                words = self.read(kind, start, end - start)
                for t in group[i:j]:
                    o = t.offset - start
                    out[t.name] = t.decode(words[o:o + t.width])
                i = j
        return out


def in_range(tag, v):
    lo, hi = tag.range()
    if tag.writable and tag.limits[0] is not None:
        lo, hi = tag.limits
    eps = 1e-6 * max(1.0, hi - lo)
    return math.isfinite(v) and lo - eps <= v <= hi + eps


class Sim(vc.PlcSim):
    """A simulator of the example project on 127.0.0.1:PORT."""

    def __init__(self, exe, tmp, plc, port, extra=()):
        super().__init__(exe, EXAMPLE, plc, tmp, listen="127.0.0.1:%d" % port,
                         extra=extra)
        self.port = port


def mb_frame(tid, pdu, unit=1):
    return struct.pack('>HHHB', tid, 0, len(pdu) + 1, unit) + pdu


def recv_exact(sock, n):
    data = b''
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def mb_call(sock, tid, pdu):
    """Send one request, return the response PDU (b'' when closed)."""
    sock.sendall(mb_frame(tid, pdu))
    head = recv_exact(sock, 7)
    if len(head) < 7:
        return b''
    rtid, _, length, _ = struct.unpack('>HHHB', head)
    body = recv_exact(sock, length - 1)
    return body if rtid == tid else b'bad tid'


def closed_by_peer(sock, timeout=5):
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b''
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def run_cmd(args):
    return subprocess.run(args, capture_output=True, text=True, timeout=20)


def test_arguments(t, exe, tmp):
    r = run_cmd([exe, '--plc', 'plc-intake'])
    t.ok(r.returncode == 2 and '--project' in r.stderr,
         'no --project: exit 2 naming --project (%d: %s)' %
         (r.returncode, r.stderr.splitlines()[:1]))
    for flag, value in (('--rate', 'fast'), ('--rate', '0'),
                        ('--registers', '200000'), ('--seed', '-3'),
                        ('--listen', 'nonsense'), ('--speed', 'x')):
        r = run_cmd([exe, '--project', EXAMPLE, '--plc', 'plc-intake',
                     flag, value])
        t.ok(r.returncode == 2 and flag in r.stderr,
             '%s %s: exit 2 naming the flag (%d: %s)' %
             (flag, value, r.returncode, r.stderr.strip()))
    r = run_cmd([exe, '--project', EXAMPLE, '--plc', 'plc-intake', '--bogus'])
    t.ok(r.returncode == 2 and '--bogus' in r.stderr,
         'unknown option: exit 2 naming it')
    r = run_cmd([exe, '--project', EXAMPLE, '--plc', 'plc-nowhere'])
    t.ok(r.returncode == 1 and 'plc-nowhere' in r.stderr and
         'plc-intake' in r.stderr,
         'unknown PLC: exit 1 naming it and the known PLCs (%s)' %
         r.stderr.strip())
    bad = os.path.join(tmp, 'bad-project')
    shutil.copytree(EXAMPLE, bad)
    with open(os.path.join(bad, 'tags.csv'), 'a', encoding='utf-8') as f:
        f.write('intake.broken,wells,plc-nowhere,hr:7,float33,,,,,,,,,,,,,x,y\n')
    r = run_cmd([exe, '--project', bad, '--plc', 'plc-intake'])
    t.ok(r.returncode == 1 and re.search(r'tags\.csv:\d+:\d+: error:', r.stderr)
         and 'invalid' in r.stderr,
         'invalid project: exit 1 with the validation errors (%s)' %
         r.stderr.strip().splitlines()[-1:])


def test_values(t, sims, tags):
    for plc, sim in sims.items():
        mine = [x for x in tags if x.plc == plc]
        vals = Mbpoll(sim.mbpoll, sim.port).read_tags(mine)
        bad = ['%s=%r' % (x.name, vals[x.name]) for x in mine
               if not in_range(x, vals[x.name])]
        t.ok(len(vals) == len(mine) and not bad,
             '%s: all %d tags read and within their ranges %s' %
             (plc, len(mine), bad[:5]))
        line = [ln for ln in sim.stderr().splitlines() if 'serving' in ln]
        t.ok(line and line[0] == 'vigil-plcsim: serving PLC %s (%d tags) on '
             '127.0.0.1:%d' % (plc, len(mine), sim.port),
             '%s: start line names PLC, tag count and address (%s)' %
             (plc, line[:1]))
        analog = [x for x in mine if x.kind == 'ir']
        first = vals

        moved = []

        def changed():
            now = Mbpoll(sim.mbpoll, sim.port).read_tags(analog)
            moved[:] = [x.name for x in analog if now[x.name] != first[x.name]]
            return len(moved) >= len(analog) // 2
        t.ok(wait_for(changed, 5, poll=0.2),
             '%s: analog values change over time (%d of %d moved)' %
             (plc, len(moved), len(analog)))


def test_writes(t, sim, tags, log_path):
    mb = Mbpoll(sim.mbpoll, sim.port)
    by = {x.name: x for x in tags}
    # The poller's fencing: node 2, term 7 (two uint32, big word order).
    mb.write('hr', 9000, [0, 2, 0, 7])
    sp, speed = by['intake.well1.pump.speed_sp'], by['intake.well1.pump.speed']
    mb.write('hr', sp.offset, [9000])          # 90 %
    reached = wait_for(lambda: mb.read_tags([speed])[speed.name] > 85, 10)
    t.ok(reached, 'speed setpoint 90 %: the pump speed follows it')

    cmd, running = by['intake.well1.pump.cmd'], by['intake.well1.pump.running']
    flow = by['intake.well1.flow']
    mb.write('co', cmd.offset, [0])
    t.ok(wait_for(lambda: mb.read_tags([running])[running.name] == 0, 5),
         'run command coil 0: the pump stops (running di 0)')
    t.ok(wait_for(lambda: mb.read_tags([flow])[flow.name] < 30, 15),
         'pump stopped: its flow falls')
    mb.write('hr', 9000, [0, 3, 0, 8])         # a new leader: node 3, term 8
    mb.write('co', cmd.offset, [1])
    t.ok(wait_for(lambda: mb.read_tags([running])[running.name] == 1, 5),
         'run command coil 1: the pump runs again')
    t.ok(wait_for(lambda: mb.read_tags([flow])[flow.name] > 60, 15),
         'pump running: its flow rises')

    with open(log_path, encoding='utf-8') as f:
        lines = [json.loads(ln) for ln in f if ln.strip()]
    keys = {'t_ms', 'fc', 'address', 'values', 'node', 'term'}
    t.ok(lines and all(keys <= set(ln) for ln in lines),
         'write log: every line is JSON with %s' % sorted(keys))
    got = [(ln['fc'], ln['address'], ln['values'], ln['node'], ln['term'])
           for ln in lines]
    want = [(16, 9000, [0, 2, 0, 7], 2, 7), (6, sp.offset, [9000], 2, 7),
            (5, cmd.offset, [0], 2, 7), (16, 9000, [0, 3, 0, 8], 3, 8),
            (5, cmd.offset, [1], 3, 8)]
    t.ok(got == want, 'write log: each write with the fencing node and term '
         'of its moment %s' % got)


def test_connections(t, sim, tags):
    mb = Mbpoll(sim.mbpoll, sim.port)
    conns = [socket.create_connection(('127.0.0.1', sim.port), timeout=5)
             for _ in range(20)]
    try:
        read_fencing = struct.pack('>BHH', 3, 9000, 4)
        answers = [mb_call(c, 100 + i, read_fencing)
                   for i, c in enumerate(conns)]
        t.ok(all(a[:2] == b'\x03\x08' and len(a) == 10 for a in answers),
             '20 connections at once each get their answer')
        t.ok(len(mb.read('hr', 9000, 4)) == 4,
             'mbpoll is served while 20 connections are open')

        half = conns[1]
        frame = mb_frame(7, read_fencing)
        half.sendall(frame[:5])
        t.ok(len(mb.read('hr', 9000, 4)) == 4,
             'a half-sent request does not hold up other clients')
        half.sendall(frame[5:])
        half.settimeout(5)
        rsp = recv_exact(half, 7 + 10)
        t.ok(len(rsp) == 17 and rsp[7:9] == b'\x03\x08',
             'the half-sent request is answered once complete')

        garbage = conns[2]
        garbage.sendall(b'GET / HTTP/1.0\r\nHost: plc\r\n\r\n' + bytes(range(256)))
        t.ok(closed_by_peer(garbage), 'garbage bytes: that connection is closed')

        lying = conns[3]
        # Write multiple registers: 100 registers announced, 2 bytes sent.
        lying.sendall(mb_frame(9, struct.pack('>BHHB', 16, 0, 100, 200) + b'\0\0'))
        t.ok(closed_by_peer(lying), 'a request shorter than it claims: closed')

        odd = mb_call(conns[4], 11, b'\x55\x00\x00')
        t.ok(odd[:2] == b'\xd5\x01', 'unknown function code: exception 1 '
             '(illegal function), got %r' % odd[:2])
        beyond = mb_call(conns[4], 12, struct.pack('>BHH', 3, 20000, 2))
        t.ok(beyond[:2] == b'\x83\x02', 'address outside the map: exception 2 '
             '(illegal data address), got %r' % beyond[:2])
        again = [mb_call(c, 200 + i, read_fencing)
                 for i, c in enumerate(conns) if c not in (garbage, lying)]
        t.ok(sim.proc.poll() is None and len(again) == 18 and
             all(a[:2] == b'\x03\x08' for a in again) and
             len(mb.read('hr', 9000, 4)) == 4,
             'after all that, the server and the other 18 clients are fine '
             '%s' % [a[:2] for a in again])
    finally:
        for c in conns:
            c.close()


def beyond_limit(alarm, vals):
    v = vals[alarm['tag']]
    kind, limit = alarm['kind'], num(alarm['limit'])
    if kind in ('high', 'high_high'):
        return v > limit
    if kind in ('low', 'low_low'):
        return v < limit
    if kind == 'digital_on':
        return v >= 0.5
    if kind == 'digital_off':
        return v < 0.5
    ref = vals.get(alarm['reference'])
    return ref is not None and abs(v - ref) > limit


def test_excursions(t, sim, tags, alarms):
    mine = [x for x in tags if x.plc == 'plc-intake']
    names = {x.name for x in mine}
    watched = [a for a in alarms if a['tag'] in names]
    mb = Mbpoll(sim.mbpoll, sim.port)
    seen = {}

    def crossed_and_back():
        vals = mb.read_tags(mine)
        for a in watched:
            if beyond_limit(a, vals):
                seen.setdefault(a['name'], 'crossed')
            elif seen.get(a['name']) == 'crossed':
                seen[a['name']] = 'back'
        return 'back' in seen.values()
    ok = wait_for(crossed_and_back, 60, poll=0.1)
    t.ok(ok, 'at --speed 100 a value crosses an alarm limit and comes back '
         '(%s)' % seen)


def test_bench(t, sim):
    """--registers 100000: hr 10000..65535 (55 536), ir 10000..54463."""
    mb = Mbpoll(sim.mbpoll, sim.port)
    first = mb.read('hr', 10000, 125)
    t.ok(wait_for(lambda: mb.read('hr', 10000, 125) != first, 5),
         '--registers 100000: the benchmark registers change')
    t.ok(len(mb.read('hr', 65535, 1)) == 1,
         '--registers 100000: hr 65535 is served')
    last = mb.read('ir', 54339, 125)
    t.ok(len(last) == 125 and
         wait_for(lambda: mb.read('ir', 54339, 125) != last, 5),
         '--registers 100000: ir 54339..54463 are served and change')
    try:
        mb.read('ir', 54464, 1)
        t.ok(False, '--registers 100000: ir 54464 is outside the map')
    except RuntimeError as e:
        t.ok('Illegal data address' in str(e),
             '--registers 100000: ir 54464 is outside the map')


def port_closed(port):
    try:
        socket.create_connection(('127.0.0.1', port), timeout=1).close()
        return False
    except OSError:
        return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--plcsim', required=True)
    ap.add_argument('--mbpoll', default=shutil.which('mbpoll') or '')
    args = ap.parse_args()
    t = Tap()
    if not args.mbpoll:
        print('1..0 # SKIP mbpoll is not installed')
        return 0
    tags = [Tag(r) for r in read_csv('tags.csv')]
    alarms = read_csv('alarms.csv')
    tmp = tempfile.mkdtemp(prefix='plcsim-test-')
    sims = []
    try:
        test_arguments(t, args.plcsim, tmp)

        p_intake, p_treat, p_fast, p_bench = free_ports(4)
        log_path = os.path.join(tmp, 'writes.jsonl')
        intake = Sim(args.plcsim, tmp, 'plc-intake', p_intake,
                     ['--write-log', log_path, '--seed', '42'])
        treat = Sim(args.plcsim, tmp, 'plc-treatment', p_treat)
        fast = Sim(args.plcsim, tmp, 'plc-intake', p_fast,
                   ['--speed', '100', '--seed', '7'])
        bench = Sim(args.plcsim, tmp, 'plc-treatment', p_bench,
                    ['--registers', '100000', '--rate', '20'])
        sims = [intake, treat, fast, bench]
        for s in sims:
            s.mbpoll = args.mbpoll
        started = all(s.wait_started() for s in sims)
        t.ok(started, 'four simulators started %s' %
             [s.stderr().strip() for s in sims if s.proc.poll() is not None])
        if started:
            test_values(t, {'plc-intake': intake, 'plc-treatment': treat}, tags)
            test_writes(t, intake, tags, log_path)
            test_connections(t, intake, tags)
            test_excursions(t, fast, tags, alarms)
            test_bench(t, bench)
        rcs = [intake.stop(signal.SIGTERM), treat.stop(signal.SIGINT),
               fast.stop(), bench.stop()]
        t.ok(rcs == [0, 0, 0, 0], 'SIGTERM / SIGINT: exit 0 %s' % rcs)
        t.ok(all(port_closed(s.port) for s in sims),
             'after exit the ports are closed')
    finally:
        for s in sims:
            s.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return t.finish()


if __name__ == '__main__':
    sys.exit(main())
