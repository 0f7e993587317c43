#!/usr/bin/env python3
"""Write the seed inputs of binary VG_CMD_ALARM_CHANGES bodies.

The bodies are encoded here from the format as replication/replication.h
documents it ("Body of VG_CMD_ALARM_CHANGES"), not by the C encoder, so that
the replay tests also check that the C decoder reads what the header says.

Writes corpus/alarm_changes/<name> (the body: fuzz_alarm_changes) and, for
the same names, corpus/fsm/zz-changes-<name> (byte 8, which fuzz_fsm maps to
ALARM_CHANGES, then the body). The fsm seeds sort after the sp- seeds so
that the action numbers of those stay as they are; replayed in name order,
the changes of one alarm follow each other (raised, acked, ...).

Bodies named ...-bad-... are refused by the decoder.
Run from anywhere: python3 fuzz/alarm_changes_seeds.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
FSM_TYPE_BYTE = b"\x08"  # index of VG_CMD_ALARM_CHANGES in fuzz_fsm.c types

STATUS = {"normal": 0, "unack_active": 1, "ack_active": 2, "unack_rtn": 3}
CAUSE = {"raised": 0, "cleared": 1, "acked": 2, "shelved": 3, "unshelved": 4,
         "expired": 5, "oos": 6, "in_service": 7, "removed": 8}
TIMES = ("changed_ms", "pending_since_ms", "raised_ms", "acked_ms",
         "cleared_ms", "shelved_ms", "shelved_until_ms", "out_of_service_ms")
BOOLS = ("active", "pending", "shelved", "out_of_service")


def s(text):
    """str: u16 length, UTF-8 bytes; None is null (0xFFFF)."""
    if text is None:
        return b"\xff\xff"
    raw = text.encode("utf-8") if isinstance(text, str) else text
    return struct.pack("<H", len(raw)) + raw


def state(status="unack_active", reason="", user="", **kw):
    return dict(status=status, reason=reason, user=user, **kw)


def change(alarm, st=None, tag=None, section=None, priority=0, message=None,
           transition=None):
    """One change; ST None means removed, MESSAGE a list of (lang, text)."""
    value = transition is not None and transition.get("value") is not None
    flags = ((st is None) * 1 | (transition is not None) * 2 |
             (message is not None) * 4 | value * 8)
    out = bytes([flags]) + s(alarm) + s(tag) + s(section) + bytes([priority])
    if st is not None:
        booleans = sum(1 << i for i, b in enumerate(BOOLS) if st.get(b))
        out += bytes([STATUS[st["status"]], booleans])
        out += b"".join(struct.pack("<Q", st.get(t, 0)) for t in TIMES)
        out += s(st["reason"]) + s(st["user"])
    if message is not None:
        out += bytes([len(message)])
        out += b"".join(s(lang) + s(text) for lang, text in message)
    if transition is not None:
        t = transition
        out += bytes([CAUSE[t["cause"]], STATUS[t["from"]], STATUS[t["to"]]])
        out += struct.pack("<Q", t.get("at_ms", 0))
        if value:
            out += struct.pack("<d", t["value"])
        out += s(t.get("user")) + s(t.get("station")) + s(t.get("reason"))
    return out


def body(*changes, count=None):
    n = len(changes) if count is None else count
    return struct.pack("<H", n) + b"".join(changes)


def patch(data, index, byte):
    """DATA with the byte at INDEX (negative: from the end) set to BYTE."""
    out = bytearray(data)
    out[index] = byte
    return bytes(out)


def tr(cause, frm, to, at_ms=1700000000500, **kw):
    return dict(cause=cause, **{"from": frm}, to=to, at_ms=at_ms, **kw)


T0 = 1700000000000
MSG = [("fr", "Niveau haut"), ("en", "Tank high"), ("de", "Tank hoch")]

raised = change("LT101.hi", state("unack_active", active=True, changed_ms=T0,
                                  raised_ms=T0),
                "LT101", "intake", 2, MSG,
                tr("raised", "normal", "unack_active", T0, value=87.25))
acked = change("LT101.hi", state("ack_active", active=True, changed_ms=T0 + 9,
                                 raised_ms=T0, acked_ms=T0 + 9),
               "LT101", "intake", 2, None,
               tr("acked", "unack_active", "ack_active", T0 + 9,
                  user="J\u00fcrgen", station="Leitstand S\u00fcd",
                  reason="Quittiert"))
umlauts = change("F\u00fcllstand.hoch",
                 state("unack_rtn", shelved=True, changed_ms=T0 + 20,
                       shelved_ms=T0 + 20, shelved_until_ms=2**63 - 1,
                       reason='Wartung "P1" \\ Pumpe\ttauschen\n',
                       user="J\u00fcrgen"),
                 'Beh\u00e4lter "B1"', "Halle\\S\u00fcd", 4,
                 [("de", 'F\u00fcllstand "hoch"\nBitte pr\u00fcfen \u20ac'),
                  ("en", "Level high \\ \U0001F600")],
                 tr("shelved", "unack_active", "unack_rtn", T0 + 20,
                    value=42.0, user="J\u00fcrgen",
                    station='Leitstand "S\u00fcd"', reason="line1\nline2"))
bookkeeping = change("PT7.hihi", state("normal", pending=True,
                                       pending_since_ms=T0 + 30),
                     "PT7", "pumps", 1)
empty_message = change("$system.disk", state("unack_active", active=True,
                                             changed_ms=5, raised_ms=5),
                       None, None, 0, [],
                       tr("raised", "normal", "unack_active", 5, value=-0.0))
removed = change("FT1.lo", None, "FT1", "intake", 3, None,
                 tr("removed", "unack_rtn", "normal", T0 + 40))
removed_plain = change("PT7.hihi", None)
oos = change("TT3.hi", state("normal", out_of_service=True,
                             out_of_service_ms=T0 + 50, changed_ms=T0 + 50),
             "TT3", "treatment", 3, [("en", "Temperature high")],
             tr("oos", "normal", "normal", T0 + 50, user="ann",
                station="op1"))
in_service = change("TT3.hi", state("normal", changed_ms=T0 + 60),
                    "TT3", "treatment", 3, [("en", "Temperature high")],
                    tr("in_service", "normal", "normal", T0 + 60,
                       user="ann", station="op1", reason=""))
max_time = 2**63 - 1
limits = change("n" * 256,
                state("unack_rtn", active=True, pending=True, shelved=True,
                      out_of_service=True, reason="r" * 127, user="u" * 63,
                      **{t: max_time for t in TIMES}),
                "t" * 256, "s" * 256, 4,
                [(chr(ord("a") + i) + "l" * 15, "x" * 8) for i in range(16)],
                tr("removed", "unack_rtn", "unack_rtn", max_time,
                   value=-1.7976931348623157e308, user="w" * 128,
                   station="w" * 128, reason="y" * 512))
tiny = change("FT2.flow", state("unack_active", active=True),
              "FT2", None, 1, [("en", "")],
              tr("raised", "normal", "unack_active", 0, value=5e-324))
cleared = change("LT101.hi", state("unack_rtn", changed_ms=T0 + 70,
                                   raised_ms=T0, cleared_ms=T0 + 70),
                 "LT101", "intake", 2, MSG,
                 tr("cleared", "ack_active", "unack_rtn", T0 + 70,
                    value=12.5))
expired = change("F\u00fcllstand.hoch", state("unack_active", active=True,
                                               changed_ms=T0 + 80),
                 None, None, 0, None,
                 tr("expired", "unack_rtn", "unack_active", T0 + 80))
unshelved = change("F\u00fcllstand.hoch", state("unack_rtn", changed_ms=T0 + 90),
                   None, None, 0, None,
                   tr("unshelved", "unack_active", "unack_rtn", T0 + 90,
                      user="ann"))

SEEDS = {
    "1-raised": body(raised),
    "2-acked-umlauts": body(acked, umlauts),
    "3-oos-in-service-one-command": body(oos, in_service, unshelved),
    "4-bookkeeping-and-removed": body(bookkeeping, removed, removed_plain),
    "5-empty-message-null-members": body(empty_message, tiny),
    "6-cleared-expired": body(cleared, expired),
    "7-limits": body(limits),
    "8-many": body(*([raised, acked, cleared, bookkeeping] * 8)),
    # Refused: every check of the decoder once.
    "bad-truncated": body(raised)[:-3],
    "bad-trailing-byte": body(raised) + b"\x00",
    "bad-count-0": body(count=0),
    "bad-count-1025": body(raised, count=1025),
    "bad-count-2-of-1": body(raised, count=2),
    "bad-flags-bit-4": body(bytes([raised[0] | 0x10]) + raised[1:]),
    "bad-value-no-transition": body(bytes([bookkeeping[0] | 0x08]) +
                                    bookkeeping[1:]),
    # A change of "X" with a state: flags 0, alarm 1-3, tag 4-5, section
    # 6-7, priority 8, status 9, booleans 10.
    "bad-booleans-bit-7": body(patch(change("X", state(shelved=True)), 10, 0x84)),
    "bad-alarm-null": body(raised[:1] + b"\xff\xff" + raised[10:]),
    "bad-alarm-empty": body(change("", state())),
    "bad-alarm-not-utf8": body(change(b"LT\xff", state())),
    "bad-alarm-nul": body(change(b"LT\x00", state())),
    "bad-priority-5": body(change("X", state(), priority=5)),
    "bad-status-4": body(patch(change("X", state()), 9, 4)),
    "bad-time-2p63": body(change("X", state(changed_ms=2**63))),
    "bad-language-twice": body(change("X", None, message=[("en", "a"),
                                                          ("en", "b")])),
    "bad-17-languages": body(change("X", None, message=[
        (chr(ord("a") + i), "") for i in range(17)])),
    "bad-value-nan": body(change("X", None, transition=tr(
        "removed", "normal", "normal", value=float("nan")))),
    # A transition without a value ends in cause, from, to, at_ms and three
    # null strings: the cause is 17 bytes from the end.
    "bad-cause-9": body(patch(change("X", None, transition=tr(
        "removed", "normal", "normal")), -17, 9)),
    "bad-shelve-user-64": body(change("X", state(user="u" * 64))),
}

# fuzz_fsm gets the valid bodies and a few refusals (the decoder's own
# checks are fuzz_alarm_changes' job).
FSM_SEEDS = [k for k in SEEDS if not k.startswith("bad-")] + [
    "bad-truncated", "bad-trailing-byte", "bad-flags-bit-4", "bad-alarm-nul"]


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def main():
    corpus = os.path.join(HERE, "corpus", "alarm_changes")
    os.makedirs(corpus, exist_ok=True)
    for name, data in SEEDS.items():
        write(os.path.join(corpus, name), data)
    for name in FSM_SEEDS:
        write(os.path.join(HERE, "corpus", "fsm", "zz-changes-" + name),
              FSM_TYPE_BYTE + SEEDS[name])


if __name__ == "__main__":
    main()
