#!/usr/bin/env python3
"""Many small batches from a real client, for crates/ferry/tests/coalesce.rs.

    small_batches.py --bootstrap B --topic T --partition P --records N --codec C

librdkafka (confluent-kafka) with linger.ms=0 and batch.size=4096, the shape
of benchmark data set d: batches of a few KiB. Records have keys (some
null), values (some null, sizes varying), headers (some with duplicate
names) and explicit timestamps. Prints the number of acknowledged records;
fails if any send failed.
"""
import argparse
import sys
import time

from confluent_kafka import Producer


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partition", type=int, required=True)
    ap.add_argument("--records", type=int, required=True)
    ap.add_argument("--codec", required=True)
    args = ap.parse_args()
    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "linger.ms": 0,
        "batch.size": 4096,
        "compression.type": args.codec,
        "acks": "all",
        "enable.idempotence": True,
    })
    acked = 0
    failed = []

    def done(err, _msg):
        nonlocal acked
        if err is None:
            acked += 1
        else:
            failed.append(str(err))

    # Recent (a timestamp older than the topic's retention is deleted at
    # once), distinct and increasing.
    t0 = int(time.time() * 1000) - args.records
    for n in range(args.records):
        key = None if n % 11 == 0 else b"key-%d" % (n % 97)
        value = None if n % 13 == 5 else (b"record %d " % n) * (5 + n % 40)
        headers = [("h", b"%d" % n), ("h", None)] if n % 3 == 0 else []
        while True:
            try:
                producer.produce(args.topic, value=value, key=key, partition=args.partition,
                                 headers=headers, timestamp=t0 + n, on_delivery=done)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(60)
    if failed or acked != args.records:
        print(f"{acked} of {args.records} acknowledged; errors: {failed[:3]}", file=sys.stderr)
        return 1
    print(acked)
    return 0


if __name__ == "__main__":
    sys.exit(main())
