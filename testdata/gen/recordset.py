#!/usr/bin/env python3
"""The deterministic logical record sets, written as small "producer scripts".

Both producers (JavaProducer.java and rdkafka_produce.py) execute the same script files from
testdata/gen/scripts/, so the Java and librdkafka cases carry the same logical records.

Script format (one command per line, '#' comments, tokens separated by single spaces):

    send <producer> <ts> <key> <value> [<header> ...]
    flush <producer>          wait until everything that producer sent is acknowledged
    sleep <ms>
    begin <producer> | commit <producer> | abort <producer>     (transactional producers)
    close <producer>
    mark <word>               print {"mark": "<word>"} on stdout (lets the generator act mid-script)

  <producer>  P, P2 (plain; idempotent by default in Java) or T1, T2 (transactional, Java only)
  <ts>        '*' = let the producer stamp it, else a signed ms offset from T0 (a CLI argument)
  <key>/<value>  '-' = null, 'x' + hex bytes ('x' alone = empty), or a generated blob:
              'P<len>' = compressible text  b"ferry-large-value-%08d\\n" % i for i = 0,1,2..., cut to len
              'Q<len>' = xorshift32 noise: s = 0x9E3779B9; per byte: s ^= s<<13; s ^= s>>17; s ^= s<<5
                          (32-bit), byte = s & 0xff
  <header>    'h' + hex(name) + ':' + ('-' for a null value | 'x' + hex bytes)

Run it to rewrite the scripts:  python3 testdata/gen/recordset.py
"""
from __future__ import annotations

import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent / "scripts"


def blob(token: str) -> bytes | None:
    """Decode a key/value token (shared with rdkafka_produce.py / expected.py; Java mirrors it)."""
    if token == "-":
        return None
    if token[0] == "x":
        return bytes.fromhex(token[1:])
    n = int(token[1:])
    if token[0] == "P":
        out = bytearray()
        i = 0
        while len(out) < n:
            out += b"ferry-large-value-%08d\n" % i
            i += 1
        return bytes(out[:n])
    if token[0] == "Q":
        out = bytearray(n)
        s = 0x9E3779B9
        for i in range(n):
            s ^= (s << 13) & 0xFFFFFFFF
            s ^= s >> 17
            s ^= (s << 5) & 0xFFFFFFFF
            out[i] = s & 0xFF
        return bytes(out)
    raise ValueError(f"bad blob token {token!r}")


def header(token: str) -> tuple[str, bytes | None]:
    assert token[0] == "h", token
    name_hex, val = token[1:].split(":", 1)
    return bytes.fromhex(name_hex).decode("utf-8"), blob(val)


def parse(path: Path):
    """Yield (cmd, args) tuples; for send: ('send', (producer, ts_or_None, key, value, headers))."""
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        tok = line.split(" ")
        if tok[0] == "send":
            ts = None if tok[2] == "*" else int(tok[2])
            yield "send", (tok[1], ts, blob(tok[3]), blob(tok[4]), [header(t) for t in tok[5:]])
        else:
            yield tok[0], tuple(tok[1:])


# ---------------------------------------------------------------------------------------------
# generators

def _b(data: bytes | None) -> str:
    return "-" if data is None else "x" + data.hex()


def _h(name: str, value: bytes | None) -> str:
    return "h" + name.encode().hex() + ":" + _b(value)


def standard_record(n: int) -> tuple[int, bytes | None, bytes | None, list]:
    """Record n (0-based) of the standard set: (ts_offset, key, value, headers)."""
    # keys: null, empty, or one of 13 repeating keys
    if n % 7 == 3:
        key = None
    elif n % 11 == 5:
        key = b""
    else:
        key = b"key-%03d" % (n % 13)
    # values: tombstone, empty, binary (all 256 byte values, rotated), or text of varying length
    if n % 10 == 4:
        value = None
    elif n % 10 == 7:
        value = b""
    elif n % 9 == 0:
        value = bytes((i + n) % 256 for i in range(256))
    else:
        value = (b"value-%d:" % n) + b"the quick brown fox jumps over the lazy dog " * ((n * 37) % 9)
    # headers: none, one, duplicates + empty value, null value, mixed (incl. non-ASCII name)
    m = n % 5
    if m == 0:
        headers = []
    elif m == 1:
        headers = [("h1", b"v1-%d" % n)]
    elif m == 2:
        headers = [("dup", b"a"), ("dup", b"b"), ("other", b"")]
    elif m == 3:
        headers = [("nullh", None)]
    else:
        headers = [("dup", b"x"), ("nullh", None), ("dup", None), ("ключ", "значение".encode())]
    # timestamps: 10 ms apart, but every 17th goes back in time (negative timestamp delta)
    ts = n * 10 if n % 17 != 8 else n * 10 - 5000
    return ts, key, value, headers


def send(p: str, ts, key, value, headers) -> str:
    return " ".join(["send", p, "*" if ts is None else str(ts), _b(key), _b(value)] + [_h(*h) for h in headers])


def standard_script(groups: int = 3, per_group: int = 20) -> list[str]:
    out = [f"# standard set: {groups} groups x {per_group} records, flush after each group (one batch each)"]
    for g in range(groups):
        out.append(f"# group {g}")
        for i in range(per_group):
            out.append(send("P", *standard_record(g * per_group + i)))
        out.append("flush P")
    return out


def large_script(kind: str, size: int) -> list[str]:
    out = [f"# large: 3 small records, one {size}-byte value ({'compressible text' if kind == 'P' else 'noise'}), 2 small records"]
    for n in range(3):
        out.append(send("P", *standard_record(n)))
    out.append("flush P")
    out.append(" ".join(["send", "P", "1000", _b(b"large-key"), f"{kind}{size}", _h("size", str(size).encode())]))
    out.append("flush P")
    for n in range(3, 5):
        out.append(send("P", *standard_record(n)))
    out.append("flush P")
    return out


def txn_script() -> list[str]:
    """Plain idempotent P, transactional T1 and T2, all on one partition."""
    recs = iter(range(1000))

    def nxt(p):
        return send(p, *standard_record(next(recs)))
    o = ["# transactions: P = plain idempotent producer, T1/T2 = transactional producers"]
    o += ["# non-transactional prefix"] + [nxt("P") for _ in range(4)] + ["flush P"]
    o += ["# T1 txn 1: committed, two batches", "begin T1"]
    o += [nxt("T1") for _ in range(5)] + ["flush T1"] + [nxt("T1") for _ in range(5)] + ["flush T1", "commit T1"]
    o += ["# T1 txn 2: aborted, two batches", "begin T1"]
    o += [nxt("T1") for _ in range(5)] + ["flush T1"] + [nxt("T1") for _ in range(5)] + ["flush T1", "abort T1"]
    o += ["# interleaved: T1 txn 3 (committed) and T2 txn 1 (aborted) with plain writes in between",
          "begin T1", "begin T2"]
    o += [nxt("T1") for _ in range(4)] + ["flush T1"]
    o += [nxt("T2") for _ in range(4)] + ["flush T2"]
    o += [nxt("P") for _ in range(2)] + ["flush P"]
    o += [nxt("T1") for _ in range(4)] + ["flush T1"]
    o += [nxt("T2") for _ in range(4)] + ["flush T2"]
    o += ["abort T2", "commit T1"]
    o += ["# T2 txn 2: committed", "begin T2"] + [nxt("T2") for _ in range(3)] + ["flush T2", "commit T2"]
    o += ["# T1 txn 4: committed", "begin T1"] + [nxt("T1") for _ in range(6)] + ["flush T1", "commit T1"]
    o += ["# non-transactional suffix"] + [nxt("P") for _ in range(3)] + ["flush P"]
    return o


def txn_open_script(hold_ms: int = 30000) -> list[str]:
    """A transaction left open while the generator captures (LSO < high watermark)."""
    recs = iter(range(1000))

    def nxt(p):
        return send(p, *standard_record(next(recs)))
    o = ["# open transaction: captured while T1's transaction is still open"]
    o += [nxt("P") for _ in range(3)] + ["flush P"]
    o += ["begin T1", "# T1 txn 1: committed", ] + [nxt("T1") for _ in range(3)] + ["flush T1", "commit T1"]
    o += ["begin T1", "# T1 txn 2: open during the capture, committed afterwards"] + [nxt("T1") for _ in range(4)] + ["flush T1"]
    o += [nxt("P") for _ in range(2)] + ["flush P"]
    o += [nxt("T1") for _ in range(2)] + ["flush T1"]
    o += ["mark open", f"sleep {hold_ms}", "commit T1"]
    return o


def compact_script(roll_ms: int = 1500, pokes: int = 0) -> list[str]:
    """Overwrites and tombstones over 8 keys; each round in its own segment (segment.ms < roll_ms).

    Timestamps are '*' (producer clock) because time-based segment rolling compares record
    timestamps.  P writes rounds 0-4 and closes; P2 writes the rest, so P's last batch is
    fully overwritten later (the cleaner may keep it as an empty batch for producer state).
    """
    def v(r, k):
        return b"round-%d key-%d " % (r, k) + b"payload " * (k + 1)

    def key(k):
        return b"user-%d" % k
    rounds = [
        ("P", [(k, v(0, k)) for k in range(8)]),
        ("P", [(k, v(1, k)) for k in range(4)] + [(4, None)]),
        ("P", [(k, v(2, k) if k != 5 else None) for k in range(8)]),
        ("P", [(6, v(3, 6)), (7, v(3, 7))]),
        ("P", [(0, v(4, 0)), (1, v(4, 1))]),
        ("P2", [(0, v(5, 0)), (1, v(5, 1)), (2, v(5, 2)), (3, None)]),
        ("P2", [(7, v(6, 7)), (6, v(6, 6))]),
        ("P2", [(0, v(7, 0))]),
    ]
    rounds += [("P2", [(9, b"poke-%d" % i)]) for i in range(pokes)]  # new dirty segments: tombstones
    rounds += [("P2", [(9, b"roll")])]  # lands in the active segment, which is never cleaned
    out = ["# compaction: 8 keys overwritten over rounds; '-' values are tombstones; one round per segment"]
    for r, (p, recs) in enumerate(rounds):
        out.append(f"# round {r}")
        for k, val in recs:
            hdrs = [("round", str(r).encode())] + ([("dup", b"1"), ("dup", b"2")] if k % 3 == 0 else [])
            out.append(send(p, None, key(k), val, hdrs))
        out.append(f"flush {p}")
        if r == 4:
            out.append("close P")
        out.append(f"sleep {roll_ms}")
    return out


def write_all() -> list[Path]:
    SCRIPTS.mkdir(parents=True, exist_ok=True)
    files = {
        "standard.txt": standard_script(),
        "large-noise.txt": large_script("Q", 1_300_000),
        "large-text.txt": large_script("P", 3_000_000),
        "txn.txt": txn_script(),
        "compact.txt": compact_script(),
        "compact-purge.txt": compact_script(pokes=3),
        "txn-open.txt": txn_open_script(),
    }
    out = []
    for name, lines in files.items():
        p = SCRIPTS / name
        p.write_text("\n".join(lines) + "\n")
        out.append(p)
    return out


if __name__ == "__main__":
    for p in write_all():
        print(p, file=sys.stderr)
