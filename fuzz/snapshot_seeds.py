#!/usr/bin/env python3
"""Write the seed inputs of fuzz_snapshot (corpus/snapshot/).

Byte 0 holds the options fuzz_snapshot.c documents: & 3 the image (0 raw,
1 base + patches, 2 base cut + patches, 3 mid + patches), >> 2 & 3 what the
state machine restored into holds (0/1 nothing, 2 the mid state, 3 the
base state), & 16 "diverged". A patch is [flags, page, offset u16 LE, n]
and n % 32 + 1 bytes; flags & 1 picks the page among page 1 and the roots
of vg_meta, its index, kv, kv's index, cluster_level and archive_chunks,
flags & 2 writes instead of XOR-ing.

The base and mid images are taken by the target itself, so these seeds stay
a few bytes long; the raw ones are small SQLite files written here (page
size 512, to stay under 4 KB).
Run from anywhere: python3 fuzz/snapshot_seeds.py
"""
import os
import sqlite3
import struct
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "snapshot")

RAW, BASE, CUT, MID = 0, 1, 2, 3
EMPTY, HOLDS_MID, HOLDS_BASE = 0, 2 << 2, 3 << 2
DIVERGED = 16

# Indices into the target's list of pages that matter most.
HOT_HEADER, HOT_META, HOT_META_INDEX = 0, 1, 2


def patch(page, offset, data, hot=True, write=False):
    flags = (1 if hot else 0) | (2 if write else 0)
    assert 1 <= len(data) <= 32
    return bytes([flags, page]) + struct.pack("<H", offset) + bytes([len(data) - 1])


def patched(page, offset, data, **kw):
    return patch(page, offset, data, **kw) + data


def sqlite_file(sql):
    """A database of page size 512 (rollback journal) after SQL."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "img.db")
        db = sqlite3.connect(path)
        db.execute("PRAGMA page_size=512")
        db.executescript(sql)
        db.commit()
        db.close()
        with open(path, "rb") as f:
            return f.read()


SEEDS = {
    # The images as taken, into each kind of state machine.
    "base-into-empty": bytes([BASE | EMPTY]),
    "base-over-mid": bytes([BASE | HOLDS_MID]),
    "base-into-base-kept": bytes([BASE | HOLDS_BASE]),
    "mid-into-base-kept": bytes([MID | HOLDS_BASE]),
    "mid-into-base-diverged": bytes([MID | HOLDS_BASE | DIVERGED]),
    # Cut: to 10 whole pages, and inside the first.
    "cut-10-pages": bytes([CUT | EMPTY]) + struct.pack("<I", 0x80000A)[:3],
    "cut-1000-bytes": bytes([CUT | EMPTY]) + struct.pack("<I", 1000)[:3],
    # The header's page size written as 512; the database size in the
    # header (bytes 28-31) doubled; the end of vg_meta's page, where its
    # rows are, and of its index's, flipped.
    "base-header-page-size": bytes([BASE | EMPTY])
    + patched(HOT_HEADER, 16, b"\x02\x00", write=True),
    "base-header-db-size": bytes([BASE | HOLDS_MID])
    + patched(HOT_HEADER, 28, b"\x00\x00\x00\x80"),
    "base-meta-rows": bytes([BASE | EMPTY])
    + patched(HOT_META, 4096 - 24, bytes(range(1, 25))),
    "base-meta-index": bytes([BASE | HOLDS_MID])
    + patched(HOT_META_INDEX, 4096 - 16, b"\xff" * 16),
    # Raw images: not a database past its magic; a database that is not
    # Vigil's; one with only vg_meta (page size 512: refused or fail-stop,
    # as the live database's pages are 4096 bytes).
    "raw-magic-garbage": bytes([RAW | EMPTY]) + b"SQLite format 3\0" + b"\xa5" * 200,
    "raw-not-vigil": bytes([RAW | EMPTY])
    + sqlite_file("CREATE TABLE t(x); INSERT INTO t VALUES(1);"),
    "raw-meta-only": bytes([RAW | EMPTY])
    + sqlite_file(
        "CREATE TABLE vg_meta(key TEXT PRIMARY KEY, value);"
        "INSERT INTO vg_meta VALUES('applied_index', 7);"
        "INSERT INTO vg_meta VALUES('chain', zeroblob(32));"
    ),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        assert len(data) < 4096, name
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
