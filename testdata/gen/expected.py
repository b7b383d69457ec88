#!/usr/bin/env python3
"""Dumps what an independent client (librdkafka via confluent-kafka) reads from a partition.

    python3 testdata/gen/expected.py --bootstrap 127.0.0.1:PORT --topic T --case CASE \
        --producer java --settings '{"compression.type": "lz4"}' --out testdata/CASE/expected.json \
        [--script testdata/gen/scripts/standard.txt --t0 MS --check plain|txn|compact]

expected.json:
  records            everything a read_uncommitted consumer returns from offset 0 to the end
                     (data records only: librdkafka never returns control records), in order:
                     {offset, timestamp, timestamp_type "create"|"log_append", key, value,
                      headers: [[name, value], ...]} where key/value/header value is null,
                     {"b64": ...} (<= 4096 bytes) or {"len": N, "sha256": hex}
  committed_offsets  offsets a read_committed consumer returns (same partition, from 0)

With --script, the records are also checked against the producer script (same logical records,
in order; for 'txn' the read_committed view must be exactly the committed sends; for 'compact'
the survivors must be a subsequence of the sends and every key's last value must be the last
write), so a broken producer or consumer is caught at generation time.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import recordset  # noqa: E402

from confluent_kafka import Consumer, KafkaError, TopicPartition, TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME  # noqa: E402

INLINE_MAX = 4096


def enc(b: bytes | None):
    if b is None:
        return None
    if len(b) <= INLINE_MAX:
        return {"b64": base64.b64encode(b).decode()}
    return {"len": len(b), "sha256": hashlib.sha256(b).hexdigest()}


def consume(bootstrap: str, topic: str, partition: int, isolation: str, timeout: float = 60) -> list:
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"ferry-expected-{isolation}",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "isolation.level": isolation,
        "auto.offset.reset": "earliest",
        "fetch.max.bytes": 64 << 20,
        "max.partition.fetch.bytes": 16 << 20,
        "receive.message.max.bytes": (64 << 20) + 65536,
        "check.crcs": True,
    })
    out = []
    try:
        c.assign([TopicPartition(topic, partition, 0)])
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no partition EOF on {topic}/{partition} ({isolation}) within {timeout}s")
            m = c.poll(1.0)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    break
                raise RuntimeError(f"consumer error: {m.error()}")
            out.append(m)
    finally:
        c.close()
    return out


def to_record(m) -> dict:
    ttype, ts = m.timestamp()
    return {
        "offset": m.offset(),
        "timestamp": ts,
        "timestamp_type": {TIMESTAMP_CREATE_TIME: "create", TIMESTAMP_LOG_APPEND_TIME: "log_append"}.get(ttype, str(ttype)),
        "key": enc(m.key()),
        "value": enc(m.value()),
        "headers": [[k, enc(v)] for k, v in (m.headers() or [])],
    }


def logical(m) -> tuple:
    return (m.key(), m.value(), [(k, v) for k, v in (m.headers() or [])])


def check(kind: str, script: Path, t0: int | None, unc: list, com: list) -> list[str]:
    sends = [args for cmd, args in recordset.parse(script) if cmd == "send"]
    problems = []
    if kind == "plain":
        if len(unc) != len(sends):
            problems.append(f"{len(unc)} records read, script sent {len(sends)}")
        for m, (_, ts, k, v, h) in zip(unc, sends):
            if logical(m) != (k, v, h):
                problems.append(f"offset {m.offset()}: content differs from the script")
            ttype, mts = m.timestamp()
            if t0 is not None and ts is not None and ttype == TIMESTAMP_CREATE_TIME and mts != t0 + ts:
                problems.append(f"offset {m.offset()}: timestamp {mts} != t0+{ts}")
        if [m.offset() for m in com] != [m.offset() for m in unc]:
            problems.append("read_committed view differs from read_uncommitted on a non-transactional topic")
    elif kind == "txn":
        # all sends in script order; committed = plain sends + sends inside committed transactions
        all_sends, committed, open_txn = [], [], {}
        for cmd, args in recordset.parse(script):
            if cmd == "send":
                p, _, k, v, h = args
                all_sends.append((k, v, h))
                (open_txn[p].append((k, v, h)) if p in open_txn else committed.append((k, v, h)))
            elif cmd == "begin":
                open_txn[args[0]] = []
            elif cmd == "commit":
                committed.extend(open_txn.pop(args[0]))
            elif cmd == "abort":
                open_txn.pop(args[0])
        if [logical(m) for m in unc] != all_sends:
            problems.append("read_uncommitted view is not exactly the script's sends in order")
        # committed records are appended in log order, not commit order: compare as multisets by offset order
        com_l = [logical(m) for m in com]
        if sorted(map(repr, com_l)) != sorted(map(repr, committed)):
            problems.append(f"read_committed view ({len(com_l)}) != committed sends ({len(committed)})")
    elif kind == "compact":
        seq = [(k, v, h) for (_, _, k, v, h) in sends]
        it = iter(seq)
        if not all(any(logical(m) == s for s in it) for m in unc):
            problems.append("compacted records are not a subsequence of the sends")
        last = {}
        for k, v, h in seq:
            last[k] = (v, h)
        seen = {}
        for m in unc:
            seen[m.key()] = (m.value(), [(a, b) for a, b in (m.headers() or [])])
        for k, (v, h) in last.items():
            if v is None:
                if k in seen and seen[k][0] is not None:
                    problems.append(f"key {k!r}: deleted but still has a value")
            elif seen.get(k) != (v, h):
                problems.append(f"key {k!r}: last value lost")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partition", type=int, default=0)
    ap.add_argument("--case", required=True)
    ap.add_argument("--producer", required=True, choices=("java", "librdkafka"))
    ap.add_argument("--settings", default="{}", help="JSON object of producer settings (recorded as is)")
    ap.add_argument("--extra", default="{}", help="JSON object merged into expected.json")
    ap.add_argument("--script", type=Path)
    ap.add_argument("--t0", type=int)
    ap.add_argument("--check", choices=("plain", "txn", "compact"))
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    unc = consume(a.bootstrap, a.topic, a.partition, "read_uncommitted")
    com = consume(a.bootstrap, a.topic, a.partition, "read_committed")
    if a.script and a.check:
        problems = check(a.check, a.script, a.t0, unc, com)
        if problems:
            print(f"{a.case}: CHECK FAILED:\n  " + "\n  ".join(problems[:20]), file=sys.stderr)
            return 1
    doc = {
        "case": a.case,
        "producer": a.producer,
        "producer_settings": json.loads(a.settings),
        **json.loads(a.extra),
        "records": [to_record(m) for m in unc],
        "committed_offsets": [m.offset() for m in com],
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    print(f"{a.case}: {len(unc)} records (read_uncommitted), {len(com)} committed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
