#!/usr/bin/env python3
"""vigilctl project validate against the example projects (TAP output).

1. config/examples/waterworks validates: exit 0 and a summary line.
2. A copy of waterworks with a dozen deliberate mistakes, spread over every
   file kind, reports every one of them at the right file, line and column
   and nothing else; exit status 1.
3. Usage and I/O errors: no folder (exit 2), a folder that does not exist
   (exit 1 with a message naming it).

Each mistake edits the copy by searching for a pattern, so the test follows
the example when it changes; the expected column is computed from the edited
text (for CSV: the start of the field, quotes counted), never hard-coded.
"""
import argparse
import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EXAMPLE = os.path.join(ROOT, 'config', 'examples', 'waterworks')

n_test = 0
n_fail = 0


def ok(cond, name, detail=''):
    global n_test, n_fail
    n_test += 1
    if cond:
        print(f'ok {n_test} - {name}')
    else:
        n_fail += 1
        print(f'not ok {n_test} - {name}')
        for line in str(detail).splitlines():
            print(f'#   {line}')
    sys.stdout.flush()


def field_starts(line):
    """1-based start columns of the CSV fields of one physical line."""
    starts = [1]
    quoted = False
    for i, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif ch == ',' and not quoted:
            starts.append(i + 2)
    return starts


class Copy:
    """The example copied to a temp folder, edited line by line."""

    def __init__(self, src, dst):
        shutil.copytree(src, dst)
        self.dir = dst
        self.expected = []   # (file, line, col, message part)

    def lines(self, rel):
        with open(os.path.join(self.dir, rel), encoding='utf-8') as f:
            return f.read().split('\n')

    def write(self, rel, lines):
        with open(os.path.join(self.dir, rel), 'w', encoding='utf-8') as f:
            f.write('\n'.join(lines))

    def header(self, rel):
        for line in self.lines(rel):
            if line and not line.startswith('#'):
                return line.split(',')
        raise AssertionError(f'{rel} has no header')

    def csv_edit(self, rel, row_pred, column, new_value, mark_column,
                 message, nth=0):
        """Set COLUMN of the NTH row matching ROW_PRED to NEW_VALUE; expect
        an error at MARK_COLUMN of that row."""
        lines = self.lines(rel)
        hdr = self.header(rel)
        seen = 0
        for i, line in enumerate(lines):
            if not line or line.startswith('#') or line.split(',') == hdr:
                continue
            fields = next(csv.reader([line]))
            row = dict(zip(hdr, fields))
            if not row_pred(row):
                continue
            if seen < nth:
                seen += 1
                continue
            fields[hdr.index(column)] = new_value
            out = []
            for v in fields:
                out.append('"' + v.replace('"', '""') + '"'
                           if (',' in v or '"' in v) else v)
            lines[i] = ','.join(out)
            col = field_starts(lines[i])[hdr.index(mark_column)]
            self.write(rel, lines)
            self.expected.append((rel, i + 1, col, message))
            return row
        raise AssertionError(f'no row in {rel} matches')

    def csv_append(self, rel, fields, mark_column, message):
        lines = self.lines(rel)
        while lines and lines[-1] == '':
            lines.pop()
        hdr = self.header(rel)
        lines.append(','.join(fields))
        col = field_starts(lines[-1])[hdr.index(mark_column)]
        self.write(rel, lines + [''])
        self.expected.append((rel, len(lines), col, message))

    def text_edit(self, rel, pattern, old, new, message, mark=None, skip=0,
                  nth=0):
        """In the NTH line containing PATTERN replace OLD by NEW; expect an
        error SKIP characters after where MARK begins in the edited line
        (default: where NEW begins)."""
        lines = self.lines(rel)
        hits = [i for i, l in enumerate(lines) if pattern in l]
        i = hits[nth]
        col = lines[i].index(old) + 1
        lines[i] = lines[i].replace(old, new, 1)
        if mark is not None:
            col = lines[i].index(mark) + 1 + skip
        self.write(rel, lines)
        self.expected.append((rel, i + 1, col, message))


DIAG = re.compile(r'^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): error: (?P<msg>.*)$')


def run(vigilctl, *args):
    p = subprocess.run([vigilctl, *args], capture_output=True, text=True,
                       timeout=60)
    return p.returncode, p.stdout, p.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--vigilctl', required=True)
    args = ap.parse_args()
    vigilctl = args.vigilctl

    print('TAP version 13')
    rc, out, err = run(vigilctl, 'project', 'validate', EXAMPLE)
    ok(rc == 0 and 'valid' in out, 'waterworks validates', out + err)

    tmp = tempfile.mkdtemp(prefix='vigil-validate-')
    try:
        c = Copy(EXAMPLE, os.path.join(tmp, 'broken'))
        tags = {}
        for line in c.lines('tags.csv'):
            if line and not line.startswith('#'):
                f = next(csv.reader([line]))
                if f[0] != 'name':
                    tags[f[0]] = dict(zip(c.header('tags.csv'), f))
        float_tag = next(n for n, t in tags.items() if t['type'] == 'float32')

        # tags.csv: an unknown section, a bool on a holding register, write
        # limits outside the range, a duplicate name.
        c.csv_edit('tags.csv', lambda r: r['section'] == 'wells', 'section',
                   'welsl', 'section', "unknown plant section 'welsl'")
        c.csv_edit('tags.csv', lambda r: r['type'] == 'bool' and r['address'].startswith('di:'),
                   'address', 'hr:8990', 'type', 'type bool does not fit address kind hr')
        c.csv_edit('tags.csv', lambda r: r['writable'] == 'yes' and r['type'] != 'bool'
                   and r['eng_max'] != '', 'max', '1e9', 'min',
                   'lie outside the tag\'s range')
        first = next(iter(tags))
        c.csv_append('tags.csv', [first, tags[first]['section'], tags[first]['plc'],
                                  'hr:8000', 'int16', '', '', '', '', '', '', '0',
                                  'none', '', 'no', '', '', 'x', 'y'][:len(c.header('tags.csv'))],
                     'name', f"duplicate tag name '{first}'")
        # alarms.csv: an unknown tag, a digital alarm on a number, a missing
        # German message.
        c.csv_edit('alarms.csv', lambda r: r['kind'] == 'high', 'tag',
                   'no.such.tag', 'tag', "unknown tag 'no.such.tag'")
        c.csv_edit('alarms.csv', lambda r: r['kind'] == 'digital_on', 'tag',
                   float_tag, 'kind', 'alarm needs a bool tag')
        c.csv_edit('alarms.csv', lambda r: r['kind'] == 'low', 'message_de',
                   '', 'message_de',
                   "has no 'de' message")
        # project.yaml: an unknown start screen, a bad key name, an unknown
        # section in a grant, a port out of range.
        c.text_edit('project.yaml', 'start_screen:', 'overview', 'overveiw',
                    "unknown screen 'overveiw' (did you mean 'overview'?)")
        c.text_edit('project.yaml', 'navigation_keys:', 'F3:', 'F33:',
                    "unknown key name 'F33'")
        c.text_edit('project.yaml', 'sections: [treatment]', 'treatment',
                    'treatmnet', "unknown plant section 'treatmnet'")
        c.text_edit('project.yaml', 'port: 5021', '5021', '502100',
                    "'port' must be a whole number from 1 to 65535")
        # screens: an unknown tag and an object off the screen.
        c.text_edit('screens/overview.yaml', 'type: value', 'tag: ', 'tag: x',
                    "unknown tag 'x", mark='tag: x', skip=5)
        c.text_edit('screens/intake.yaml', 'type: rect', 'type: rect, at: [',
                    'type: rect, at: [-5', 'does not fit on the 1280x800 screen',
                    mark='rect')

        rc, out, err = run(vigilctl, 'project', 'validate', c.dir)
        ok(rc == 1, f'broken copy: exit status 1 (got {rc})', err)
        got = []
        for line in out.splitlines() + err.splitlines():
            m = DIAG.match(line)
            if m:
                f = m['file']
                if f.startswith(c.dir + '/'):
                    f = f[len(c.dir) + 1:]
                got.append((f, int(m['line']), int(m['col']), m['msg']))
        remaining = list(got)
        for (f, line, col, part) in c.expected:
            hit = [g for g in remaining if g[0] == f and g[1] == line and
                   g[2] == col and part in g[3]]
            ok(len(hit) == 1, f'reported at {f}:{line}:{col}: ...{part}...',
               'got:\n' + '\n'.join(f'{g[0]}:{g[1]}:{g[2]}: {g[3]}' for g in got))
            if hit:
                remaining.remove(hit[0])
        ok(len(c.expected) >= 12, f'{len(c.expected)} deliberate mistakes')
        ok(not remaining, 'no other errors reported',
           '\n'.join(f'{g[0]}:{g[1]}:{g[2]}: {g[3]}' for g in remaining))
        ok(re.search(rf'\b{len(c.expected)} errors?\b', out + err) is not None,
           'the error count is printed', out[-300:] + err[-300:])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    rc, out, err = run(vigilctl, 'project', 'validate')
    ok(rc == 2, f'no folder: usage error, exit 2 (got {rc})', err)
    rc, out, err = run(vigilctl, 'project', 'validate', '/nonexistent/plant')
    ok(rc == 1 and '/nonexistent/plant' in err, 'missing folder: exit 1 naming it',
       err)

    print(f'1..{n_test}')
    return 1 if n_fail else 0


if __name__ == '__main__':
    sys.exit(main())
