#!/usr/bin/env python3
"""Real independent Kafka clients for crates/ferry/tests/mirror_cases.rs.

    mirror_cases.py script standard --records N --per-batch K --out FILE
    mirror_cases.py script compact --keys K --round-ms MS --out FILE
    mirror_cases.py produce --client java|librdkafka --bootstrap B --topic T --script FILE
                            [--t0 MS] [--txn-prefix P] [--prop key=value ...]
    mirror_cases.py view --bootstrap B --isolation read_committed|read_uncommitted --topic T [--topic T ...]

`script` writes a producer script (format: testdata/gen/recordset.py) built from the same
record generators as the captured testdata: null and empty keys and values, tombstones, binary
values, duplicate header names, null header values, non-ASCII header names, timestamps going
back in time.

`produce` runs it with the Kafka Java producer (testdata/gen/JavaProducer.java, Java's
single-file source launcher, the harness classpath; exactly as testdata/gen/generate.py does)
or with librdkafka (testdata/gen/rdkafka_produce.py), and checks that every send was
acknowledged. Prints the number of acknowledged records.

`view` prints, as one JSON object, what a librdkafka consumer (confluent-kafka, check.crcs=true)
reads from every partition of each topic from the beginning to the end:
{topic: {partition: [record, ...]}}, records as testdata/gen/expected.py's to_record (offset,
timestamp, timestamp_type, key, value, headers with duplicates in wire order). With
read_committed, the end is the last stable offset: a hanging transaction shows up as a
partition that never reaches its high watermark (an error after --timeout seconds).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[4]
GEN = REPO / "testdata" / "gen"
sys.path.insert(0, str(GEN))
sys.path.insert(0, str(REPO / "harness"))

import recordset  # noqa: E402


def standard_script(records: int, per_batch: int) -> list[str]:
    out = [f"# {records} standard records, flush every {per_batch} (one batch each)"]
    for n in range(records):
        out.append(recordset.send("P", *recordset.standard_record(n)))
        if (n + 1) % per_batch == 0 or n + 1 == records:
            out.append("flush P")
    return out


def compact_script(keys: int, round_ms: int) -> list[str]:
    """Overwrites and tombstones over `keys` keys, one round per segment (the topic's
    segment.ms must be below round_ms), then a "roll" record alone in the active segment.
    Once the cleaner has cleaned everything below it, exactly one record per key is left.
    Timestamps are '*' (producer clock): time-based rolling compares record timestamps.
    P writes the first rounds and closes; P2 writes the rest, so the cleaner keeps P's last
    batch as an empty batch for its producer state."""
    def v(r: int, k: int) -> bytes:
        return b"round-%d key-%d " % (r, k) + b"payload " * (k % 7 + 1)

    rounds = [
        ("P", [(k, v(0, k)) for k in range(keys)]),
        ("P", [(k, None if k % 5 == 1 else v(1, k)) for k in range(keys) if k % 2 == 0 or k % 5 == 1]),
        ("P", [(k, v(2, k)) for k in range(keys // 2) if k % 3 == 0]),  # all overwritten next
        ("P2", [(k, None if k == 4 else v(3, k)) for k in range(keys // 2)]),
        ("P2", [(k, v(4, k)) for k in range(keys) if k % 4 == 3]),
    ]
    out = ["# compaction: overwrites and tombstones, one round per segment, then a roll record"]
    for r, (p, recs) in enumerate(rounds):
        out.append(f"# round {r}")
        for k, val in recs:
            hdrs = [("round", str(r).encode())] + ([("dup", b"1"), ("dup", b"2")] if k % 3 == 0 else [])
            out.append(recordset.send(p, None, b"user-%d" % k, val, hdrs))
        out.append(f"flush {p}")
        if r == 2:
            out.append("close P")
        out.append(f"sleep {round_ms}")
    out += ["# roll: lands in the active segment, never cleaned",
            recordset.send("P2", None, b"roll", b"roll", []), "flush P2"]
    return out


def cmd_script(a) -> int:
    if a.kind == "standard":
        lines = standard_script(a.records, a.per_batch)
    else:
        lines = compact_script(a.keys, a.round_ms)
    Path(a.out).write_text("\n".join(lines) + "\n")
    return 0


def cmd_produce(a) -> int:
    script = Path(a.script)
    sends = sum(1 for cmd, _ in recordset.parse(script) if cmd == "send")
    props = [x for kv in a.prop for x in ("--prop", kv)]
    if a.client == "java":
        import kafka_harness as kh
        cmd = kh.java_command(str(GEN / "JavaProducer.java"),
                              ["--bootstrap", a.bootstrap, "--topic", a.topic, "--script", str(script),
                               "--t0", str(a.t0), "--txn-prefix", a.txn_prefix, *props])
    else:
        cmd = [sys.executable, str(GEN / "rdkafka_produce.py"), "--bootstrap", a.bootstrap,
               "--topic", a.topic, "--script", str(script), "--t0", str(a.t0), *props]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    if r.returncode != 0:
        print(f"{a.client} producer for {a.topic} exited {r.returncode}:\n{r.stderr[-4000:]}", file=sys.stderr)
        return 1
    acks = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    acks = [x for x in acks if "offset" in x]
    if len(acks) != sends:
        print(f"{a.client} producer for {a.topic}: {len(acks)} acks for {sends} sends", file=sys.stderr)
        return 1
    print(len(acks))
    return 0


def cmd_view(a) -> int:
    from confluent_kafka import Consumer, KafkaError, TopicPartition
    import expected
    conf = {
        "bootstrap.servers": a.bootstrap,
        "group.id": "ferry-mirror-cases-view",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "isolation.level": a.isolation,
        "auto.offset.reset": "earliest",
        "fetch.max.bytes": 64 << 20,
        "max.partition.fetch.bytes": 16 << 20,
        "receive.message.max.bytes": (64 << 20) + 65536,
        "check.crcs": True,
    }
    c = Consumer(conf)
    out: dict[str, dict[str, list]] = {}
    try:
        md = c.list_topics(timeout=30)
        tps = []
        for t in a.topic:
            if t not in md.topics or md.topics[t].error is not None:
                raise SystemExit(f"topic {t} not found on {a.bootstrap}")
            out[t] = {str(p): [] for p in md.topics[t].partitions}
            tps += [TopicPartition(t, p, 0) for p in md.topics[t].partitions]
        # From offset 0 even where the log starts later (compacted topics start at 0 anyway).
        lows = {(tp.topic, tp.partition): c.get_watermark_offsets(tp, timeout=30)[0] for tp in tps}
        c.assign([TopicPartition(tp.topic, tp.partition, lows[(tp.topic, tp.partition)]) for tp in tps])
        left = {(tp.topic, tp.partition) for tp in tps}
        deadline = time.monotonic() + a.timeout
        while left:
            if time.monotonic() > deadline:
                raise SystemExit(f"no partition EOF within {a.timeout}s ({a.isolation}) on {sorted(left)}")
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    left.discard((m.topic(), m.partition()))
                    continue
                raise SystemExit(f"consumer error: {m.error()}")
            out[m.topic()][str(m.partition())].append(expected.to_record(m))
    finally:
        c.close()
    json.dump(out, sys.stdout, ensure_ascii=False)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("script")
    p.add_argument("kind", choices=("standard", "compact"))
    p.add_argument("--records", type=int, default=200)
    p.add_argument("--per-batch", type=int, default=50)
    p.add_argument("--keys", type=int, default=40)
    p.add_argument("--round-ms", type=int, default=1300)
    p.add_argument("--out", required=True)
    p = sub.add_parser("produce")
    p.add_argument("--client", choices=("java", "librdkafka"), required=True)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--script", required=True)
    p.add_argument("--t0", type=int, default=int(time.time()) * 1000)
    p.add_argument("--txn-prefix", default="ferry-cases")
    p.add_argument("--prop", action="append", default=[])
    p = sub.add_parser("view")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--isolation", choices=("read_committed", "read_uncommitted"), required=True)
    p.add_argument("--topic", action="append", required=True)
    p.add_argument("--timeout", type=float, default=60)
    a = ap.parse_args()
    return {"script": cmd_script, "produce": cmd_produce, "view": cmd_view}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
