#!/usr/bin/env python3
"""Executes a producer script (format: recordset.py) with librdkafka via confluent-kafka.

    python3 testdata/gen/rdkafka_produce.py --bootstrap 127.0.0.1:PORT --topic T \
        --script testdata/gen/scripts/standard.txt --t0 1700000000000 [--prop compression.type=zstd ...]

Only plain producers (send/flush/sleep/close) are supported. Every record goes to partition 0.
Prints one JSON line per acknowledged record: {"producer": "P", "offset": N, "timestamp": T}.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import recordset  # noqa: E402

from confluent_kafka import Producer  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--script", required=True, type=Path)
    ap.add_argument("--t0", type=int, default=int(time.time() * 1000))
    ap.add_argument("--prop", action="append", default=[], help="librdkafka property key=value")
    a = ap.parse_args()
    conf = {"bootstrap.servers": a.bootstrap}
    for kv in a.prop:
        k, v = kv.split("=", 1)
        conf[k] = v
    producers: dict[str, Producer] = {}
    errors: list[str] = []
    acked: dict[str, list] = {}

    def producer(name: str) -> Producer:
        if name.startswith("T"):
            raise SystemExit(f"transactional producer {name} is not supported by this script runner")
        if name not in producers:
            producers[name] = Producer({**conf, "client.id": f"ferry-testdata-{name}"})
        return producers[name]

    def flush(name: str) -> None:
        left = producer(name).flush(60)
        if left:
            raise SystemExit(f"{left} messages still queued after flush(60)")
        if errors:
            raise SystemExit("delivery failed: " + "; ".join(errors))
        for msg in sorted(acked.pop(name, []), key=lambda m: m.offset()):
            print(json.dumps({"producer": name, "offset": msg.offset(), "timestamp": msg.timestamp()[1]}))
        sys.stdout.flush()

    for cmd, args in recordset.parse(a.script):
        if cmd == "send":
            name, ts, key, value, headers = args

            def cb(err, msg, name=name):
                if err is not None:
                    errors.append(str(err))
                else:
                    acked.setdefault(name, []).append(msg)
            kw = {"key": key, "value": value, "partition": 0, "on_delivery": cb}
            if ts is not None:
                kw["timestamp"] = a.t0 + ts
            if headers:
                kw["headers"] = headers
            producer(name).produce(a.topic, **kw)
            producer(name).poll(0)
        elif cmd == "flush":
            flush(args[0])
        elif cmd == "sleep":
            time.sleep(int(args[0]) / 1000)
        elif cmd == "close":
            flush(args[0])
            del producers[args[0]]
        else:
            raise SystemExit(f"unsupported command {cmd!r} for librdkafka")
    for name in list(producers):
        flush(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
