"""A real consumer group for tests/groups.rs, with confluent_kafka (librdkafka).

consume BOOTSTRAP TOPIC GROUP COUNT
    Subscribes as GROUP, reads COUNT records, commits the position of every
    partition it read from (metadata "m<partition>"), closes (leaves the
    group) and prints one "partition offset" line per committed partition.
hold BOOTSTRAP TOPIC GROUP
    Subscribes as GROUP, prints "ready" once it has an assignment, then
    keeps polling (staying a live member) until stdin closes or it is killed.
"""

import sys

from confluent_kafka import Consumer, TopicPartition


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


def consume(bootstrap, topic, group, count):
    c = consumer(bootstrap, group)
    c.subscribe([topic])
    positions = {}
    read = 0
    for _ in range(600):
        if read >= count:
            break
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            raise SystemExit(f"consume error: {m.error()}")
        positions[m.partition()] = m.offset() + 1
        read += 1
    if read < count:
        raise SystemExit(f"read {read} of {count} records")
    offsets = [
        TopicPartition(topic, p, o, metadata=f"m{p}") for p, o in sorted(positions.items())
    ]
    c.commit(offsets=offsets, asynchronous=False)
    c.close()
    for p, o in sorted(positions.items()):
        print(p, o)


def hold(bootstrap, topic, group):
    import select

    c = consumer(bootstrap, group)
    c.subscribe([topic])
    ready = False
    while True:
        m = c.poll(0.2)
        if m is not None and m.error():
            raise SystemExit(f"consume error: {m.error()}")
        if not ready and c.assignment():
            print("ready", flush=True)
            ready = True
        r, _, _ = select.select([sys.stdin], [], [], 0)
        if r and not sys.stdin.read(1):
            break
    c.close()


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "consume":
        consume(args[0], args[1], args[2], int(args[3]))
    elif mode == "hold":
        hold(*args)
    else:
        raise SystemExit(f"unknown mode {mode}")
