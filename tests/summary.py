#!/usr/bin/env python3
"""Count test results from meson's testlog.json files and print the closing
line 'N passed, N failed'. TAP tests count each of their cases; a TAP program
that crashed or timed out counts as one more failure."""
import json
import re
import sys

passed = failed = skipped = 0
for path in sys.argv[1:]:
    try:
        lines = open(path).read().splitlines()
    except OSError as e:
        print("summary: cannot read %s: %s" % (path, e))
        failed += 1
        continue
    for line in lines:
        t = json.loads(line)
        out = t.get("stdout") or ""
        oks = len(re.findall(r"^ok \d+", out, re.M))
        noks = len(re.findall(r"^not ok \d+", out, re.M))
        skips = len(re.findall(r"^ok \d+.*# (?i:skip)", out, re.M))
        result = t.get("result")
        if noks or result not in ("OK", "EXPECTEDFAIL", "SKIP"):
            # Say which cases failed and how: meson's --print-errorlogs shows
            # only stderr for TAP programs, which is not enough to debug a
            # failure seen once on a CI machine.
            print("--- %s: %s" % (t.get("name"), result))
            outl = out.splitlines()
            for i, l in enumerate(outl):
                if l.startswith("not ok"):
                    print("  " + l)
                    for d in outl[i + 1:i + 12]:
                        if not d.startswith("#"):
                            break
                        print("  " + d)
            if noks == 0:
                for l in outl[-15:]:
                    print("  " + l)
        if oks + noks > 0:
            passed += oks - skips
            skipped += skips
            failed += noks
            if result not in ("OK", "EXPECTEDFAIL", "SKIP") and noks == 0:
                failed += 1  # crashed, timed out or stopped early
        elif result in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif result == "SKIP":
            skipped += 1
        else:
            failed += 1
line = "%d passed, %d failed" % (passed, failed)
if skipped:
    line += ", %d skipped" % skipped
print(line)
sys.exit(1 if failed else 0)
