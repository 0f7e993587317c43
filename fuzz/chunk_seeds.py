# Writes the seeds of fuzz/corpus/chunk (python3 fuzz/chunk_seeds.py DIR)
# from the format in replication/sample_chunk.h, not with the C encoder, so
# that a seed and the encoder cannot share a mistake.
import os, random, struct, sys
out = sys.argv[1]
os.makedirs(out, exist_ok=True)

def varint(v):
    b = bytearray()
    while v >= 0x80:
        b.append((v & 0x7f) | 0x80); v >>= 7
    b.append(v); return bytes(b)

def zz(v): return (v << 1) ^ (v >> 63) if v >= 0 else ((-v) << 1) - 1

def bits(d): return struct.unpack('<Q', struct.pack('<d', d))[0]

def chunk(samples):  # [(t, bits, bad)]
    b = bytearray([1]) + varint(len(samples))
    pb = pt = pp = 0
    for i, (t, vb, bad) in enumerate(samples):
        x = vb ^ pb
        if x:
            lz = 0
            while (x >> (56 - 8 * lz)) == 0: lz += 1
            tz = 0
            while ((x >> (8 * tz)) & 0xff) == 0: tz += 1
            m = 8 - lz - tz
        else:
            lz = m = 0
        b.append((0x80 if bad else 0) | (lz << 4) | m)
        tv = t if i == 0 else (t - pt if i == 1 else zz((t - pt) - pp))
        b += varint(tv)
        for k in range(m):
            b.append((x >> (8 * (7 - lz - k))) & 0xff)
        if i > 0: pp = t - pt
        pt, pb = t, vb
    return bytes(b)

def w(name, data):
    open(os.path.join(out, name), 'wb').write(data)

rnd = random.Random(7)
T = 1700000000000
w('valid-one', chunk([(T, bits(21.5), False)]))
lvl, ts, s = 100, T, []
for i in range(60):
    lvl += rnd.randint(-2, 2)
    s.append((T + 1000 * i + (rnd.randint(-3, 3) if i else 0), bits(float(lvl)), i % 17 == 5))
polled = chunk(s)
w('valid-polled', polled)
special = [0, 1 << 63, 0x7ff8000000000000, 0xfff8000000000001, 0x7ff0000000000001,
           0x7ff0000000000000, 0xfff0000000000000, 1, 0x800fffffffffffff,
           0x0010000000000000, 0x7fefffffffffffff, 0xffefffffffffffff]
w('valid-special', chunk([(5 + 250 * i, v, i % 2 == 1) for i, v in enumerate(special)]))
w('valid-huge-gap', chunk([(0, bits(1.0), False), (2**53 - 1, bits(-1.0), True)]))
w('valid-period-extremes', chunk([(0, 0, False), (1, 1, False), (2**53 - 3, 2, False),
                                  (2**53 - 2, 3, False), (2**53 - 1, 4, True)]))
w('valid-max-constant', chunk([(T + 1000 * i, bits(42.0), False) for i in range(1024)]))
w('valid-random', chunk([(T + 60000 * i + rnd.randint(-29999, 29999), rnd.getrandbits(64),
                          rnd.random() < 0.3) for i in range(40)]))
w('bad-version-2', bytes([2]) + polled[1:])
w('bad-count-0', bytes([1, 0]))
w('bad-count-1025', bytes([1, 0x81, 0x08, 0, 5]))
w('bad-count-redundant-zero', bytes([1, 0x81, 0x00, 0, 5]))
w('bad-head-m9', bytes([1, 1, 0x09, 5]) + bytes(range(1, 10)))
w('bad-head-lz-without-m', bytes([1, 1, 0x10, 5]))
w('bad-time-redundant-zero', bytes([1, 1, 0, 0x85, 0x00]))
w('bad-time-11-bytes', bytes([1, 1, 0] + [0x80] * 10 + [1]))
w('bad-value-last-byte-zero', bytes([1, 1, 0x02, 5, 0x3f, 0x00]))
w('bad-second-delta-0', bytes([1, 2, 0, 5, 0, 0]))
w('bad-period-0', bytes([1, 3, 0, 5, 0, 10, 0, 19]))
w('bad-time-2-53', bytes([1, 2, 0]) + varint(2**53 - 1) + bytes([0, 1]))
w('bad-trailing-byte', polled + b'\0')
w('bad-truncated', polled[:len(polled) // 2])
