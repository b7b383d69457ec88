"""Producers and consumer-group members for tests/runbook.rs and
tests/groups_vs_mm2.rs, with confluent_kafka (librdkafka).

Every record a consumer hands to the application is printed as one line
"topic<TAB>partition<TAB>offset<TAB>value" (binary values in hex, see
text()), so a test can count what a
group really received on each cluster.

produce BOOTSTRAP TOPIC PARTITIONS PER_PARTITION PREFIX CODEC
    Writes PER_PARTITION records to each partition, values PREFIX-<p>-<i>,
    in CODEC-compressed batches; exits once all are acknowledged.
consume BOOTSTRAP GROUP TOPICS COUNT
    Subscribes as GROUP to TOPICS (comma-separated), reads COUNT records, or
    with COUNT "all" everything up to the end offsets the group sees once it
    has its assignment; commits what it printed after every poll; leaves.
take BOOTSTRAP GROUP TOPIC P=N[,P=N...]
    Reads exactly N records of partition P from the group's committed
    position (earliest without one), commits, leaves: exact commit points.
drain BOOTSTRAP GROUP TOPICS
    Like "consume ... all" but commits nothing: what the group would receive.
"""

import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition


def consumer(bootstrap, group):
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 30000,
        }
    )


def committed(c, tps):
    # The group coordinator may still be loading (NOT_COORDINATOR and the
    # like are retriable): try for a while.
    for attempt in range(60):
        try:
            return c.committed(tps, timeout=10)
        except KafkaException as e:
            if attempt == 59 or not e.args[0].retriable():
                raise
            time.sleep(0.5)


def text(value):
    """A value as one field: UTF-8 as it is; binary, or with tabs or line
    breaks, as "x" and its hex digits (transactional test data is binary)."""
    if value is None:
        return ""
    try:
        s = value.decode()
    except UnicodeDecodeError:
        s = None
    if s is None or any(c in s for c in "\t\r\n"):
        return "x" + value.hex()
    return s


def emit(msgs):
    for m in msgs:
        if m.error():
            raise SystemExit(f"consume error: {m.error()}")
        print(f"{m.topic()}\t{m.partition()}\t{m.offset()}\t{text(m.value())}")


def commit(c, msgs):
    last = {}
    for m in msgs:
        last[(m.topic(), m.partition())] = m.offset() + 1
    if last:
        c.commit(
            offsets=[TopicPartition(t, p, o) for (t, p), o in last.items()],
            asynchronous=False,
        )


def produce(bootstrap, topic, partitions, per_partition, prefix, codec):
    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "compression.type": codec,
            "linger.ms": 20,
            "acks": "all",
            "enable.idempotence": True,
        }
    )
    failed = []

    def report(err, _msg):
        if err is not None:
            failed.append(err)

    for i in range(per_partition):
        for part in range(partitions):
            while True:
                try:
                    p.produce(topic, value=f"{prefix}-{part}-{i}", partition=part, on_delivery=report)
                    break
                except BufferError:
                    p.poll(0.1)
        p.poll(0)
    if p.flush(60) != 0 or failed:
        raise SystemExit(f"produce: {len(failed)} failed, e.g. {failed[:1]}")


def read(bootstrap, group, topics, count, do_commit):
    """Subscribes and reads `count` records (None: up to the end offsets)."""
    c = consumer(bootstrap, group)
    c.subscribe(topics)
    ends = None
    starts = {}
    read_n = 0
    idle_until = time.time() + 120
    while time.time() < idle_until:
        if count is not None and read_n >= count:
            break
        if count is None and ends is not None:
            # Nothing consumed yet from a partition: it is where it started.
            done = all(
                (pos.offset if pos.offset >= 0 else starts[(pos.topic, pos.partition)])
                >= ends[(pos.topic, pos.partition)]
                for pos in c.position(list(c.assignment()))
            )
            if done:
                break
        want = 500 if count is None else min(500, count - read_n)
        msgs = c.consume(want, 0.5)
        if count is None and ends is None and c.assignment():
            # Producers are stopped when a test drains, so these are final.
            ends = {}
            for tp in committed(c, list(c.assignment())):
                low, high = c.get_watermark_offsets(tp, timeout=10)
                ends[(tp.topic, tp.partition)] = high
                starts[(tp.topic, tp.partition)] = tp.offset if tp.offset >= 0 else low
        emit(msgs)
        if do_commit:
            commit(c, msgs)
        read_n += len(msgs)
    else:
        raise SystemExit(f"read {read_n} records, then nothing for too long")
    c.close()


def take(bootstrap, group, topic, spec):
    c = consumer(bootstrap, group)
    want = {int(p): int(n) for p, n in (kv.split("=") for kv in spec.split(","))}
    done = committed(c, [TopicPartition(topic, p) for p in want])
    start = [
        TopicPartition(topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
        for tp in done
    ]
    c.assign(start)
    left = dict(want)
    deadline = time.time() + 120
    while any(left.values()):
        if time.time() > deadline:
            raise SystemExit(f"take: still want {left}")
        msgs = [m for m in c.consume(500, 0.5) if left.get(m.partition(), 0) > 0]
        kept = []
        for m in msgs:
            if left[m.partition()] > 0:
                left[m.partition()] -= 1
                kept.append(m)
        emit(kept)
        commit(c, kept)
        for p in [p for p, n in left.items() if n == 0]:
            c.pause([TopicPartition(topic, p)])
    c.close()


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    try:
        if mode == "produce":
            produce(args[0], args[1], int(args[2]), int(args[3]), args[4], args[5])
        elif mode == "consume":
            count = None if args[3] == "all" else int(args[3])
            read(args[0], args[1], args[2].split(","), count, True)
        elif mode == "take":
            take(*args)
        elif mode == "drain":
            read(args[0], args[1], args[2].split(","), None, False)
        else:
            raise SystemExit(f"unknown mode {mode}")
    except KafkaException as e:
        raise SystemExit(f"{mode}: {e}")


if __name__ == "__main__":
    main()
