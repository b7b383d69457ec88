#!/usr/bin/env python3
"""End-to-end benchmark: ferry vs MirrorMaker 2 between two local Kafka clusters.

One source cluster is loaded once per data set by Kafka's own producer perf
tool; every replicator run gets a freshly started, empty target cluster (so
MM2 cannot resume from stored offsets and both write to identical brokers).
Each repeat runs MM2 and ferry back to back, alternating who goes first, so
the two can be compared run by run on a noisy machine.

Per run: wall time from the replicator's launch until the target's end
offsets equal the source's (polled every 0.2 s over one kept-open connection,
then refined to the last append's file time), CPU seconds (utime+stime from
/proc/<pid>/stat) and peak RSS (VmHWM) of the replicator process, and the CPU
seconds of the target broker over the same interval.

    benches/e2e/run.py                         # everything, full size (see BENCHMARKS.md)
    benches/e2e/run.py --datasets a,c --repeats 3 --scale 0.25
    benches/e2e/run.py --smoke                 # CI: tiny data, both replicators, no timings asserted
    benches/e2e/run.py --replicators ferry-base,ferry --ferry-base OLD/ferry   # before/after, paired

Standard library only, plus harness/kafka_harness.py (Kafka from Maven jars).
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "harness"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import kafka_harness as kh  # noqa: E402
import kafka_wire  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
PARTITIONS = 8
MiB = 1 << 20
GiB = 1 << 30

# Data sets. `records` is the full size; --scale multiplies it.
DATASETS = {
    "a": dict(desc="1 KiB JSON-like records, lz4, batch.size 128 KiB, linger 20 ms",
              payload="json1k", codec="lz4", batch_size=131072, linger_ms=20, records=1 << 20),
    "b": dict(desc="1 KiB JSON-like records, zstd, batch.size 128 KiB, linger 20 ms",
              payload="json1k", codec="zstd", batch_size=131072, linger_ms=20, records=1 << 20),
    "c": dict(desc="100-byte records, uncompressed, batch.size 128 KiB, linger 20 ms",
              payload="json100", codec="none", batch_size=131072, linger_ms=20, records=4 << 20),
    "d": dict(desc="1 KiB JSON-like records, lz4, linger 0, batch.size 4 KiB: many small batches",
              payload="json1k", codec="lz4", batch_size=4096, linger_ms=0, records=1 << 18),
}

# The C2 JIT and G1, as bin/kafka-run-class.sh runs every tool: the harness's
# default tool flags (C1 only, serial GC) start fast but would slow the perf tools.
PERF_JVM = dict(heap=["-Xmx1g"], jvm_opts=kh.COMMON_JVM_OPTS)


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S ") + msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# payloads: text that compresses like real logs, not a repeated byte


def write_payloads(path: Path, kind: str, lines: int = 4000, seed: int = 7) -> None:
    rnd = random.Random(seed)
    words = ("order payment shipped cart checkout refund user session token retry timeout "
             "cache miss hit database query slow fast region eu us ap warehouse stock "
             "item price discount coupon invoice email sent failed accepted declined "
             "latency upstream downstream gateway service pod node deploy canary").split()
    size = 1024 if kind == "json1k" else 100
    with open(path, "w") as f:
        for _ in range(lines):
            if size == 100:
                line = json.dumps({"ts": 1790000000000 + rnd.randrange(10**8),
                                   "u": rnd.randrange(10**7), "s": rnd.choice([200] * 9 + [404, 500]),
                                   "ms": round(rnd.expovariate(1 / 40), 1),
                                   "m": " ".join(rnd.choice(words) for _ in range(12))},
                                  separators=(",", ":"))
                line = line[:98] + '"}' if len(line) >= 100 else line[:-1] + " " * (100 - len(line)) + "}"
            else:
                event = {
                    "ts": "2026-05-21T%02d:%02d:%02d.%03dZ" % (rnd.randrange(24), rnd.randrange(60),
                                                               rnd.randrange(60), rnd.randrange(1000)),
                    "level": rnd.choice(["INFO"] * 8 + ["WARN", "ERROR"]),
                    "service": rnd.choice(["checkout", "cart", "payments", "search", "shipping"]),
                    "host": "ip-10-0-%d-%d" % (rnd.randrange(256), rnd.randrange(256)),
                    "trace_id": "%032x" % rnd.getrandbits(128),
                    "user_id": rnd.randrange(10**7),
                    "status": rnd.choice([200] * 9 + [404, 500]),
                    "latency_ms": round(rnd.expovariate(1 / 40), 2),
                    "message": " ".join(rnd.choice(words) for _ in range(200)),
                }
                line = json.dumps(event)[:size - 2] + '"}'
            assert len(line) == size, (len(line), line)
            f.write(line + "\n")


# --------------------------------------------------------------------------------------------
# /proc


def proc_cpu(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_hwm(pid: int) -> int:
    """Peak resident set size (VmHWM), bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


# --------------------------------------------------------------------------------------------
# topics, logs, tools


def java(main: str, args: list[str], **kw) -> list[str]:
    return kh.java_command(main, args, **kw)


def create_topic(bootstrap: str, topic: str, configs: dict | None = None) -> None:
    args = ["--bootstrap-server", bootstrap, "--create", "--topic", topic,
            "--partitions", str(PARTITIONS), "--replication-factor", "1"]
    for k, v in (configs or {}).items():
        args += ["--config", f"{k}={v}"]
    kh.tool("org.apache.kafka.tools.TopicCommand", args)


def topic_logs(cluster: str, topic: str) -> list[Path]:
    data = kh.cluster_dir(cluster) / "data"
    return [p for i in range(PARTITIONS) for p in sorted((data / f"{topic}-{i}").glob("*.log"))]


def log_stats(cluster: str, topic: str) -> tuple[int, int]:
    """(bytes, batches) of a topic's segment files: v2 batch headers only, nothing decompressed."""
    total = batches = 0
    for path in topic_logs(cluster, topic):
        size = path.stat().st_size
        total += size
        with open(path, "rb") as f:
            pos = 0
            while pos + 12 <= size:
                f.seek(pos + 8)
                (length,) = struct.unpack(">i", f.read(4))
                if length <= 0:
                    break
                pos += 12 + length
                batches += 1
    return total, batches


def wait_offsets(conn, topic: str, want: list[int], timeout: float, alive=lambda: True,
                 on_first=None, interval: float = 0.2) -> float:
    """Poll until the topic's end offsets equal `want`; returns the time it happened."""
    deadline = time.monotonic() + timeout
    seen_first = False
    while True:
        try:
            got = conn.end_offsets(topic, PARTITIONS)
        except (OSError, kafka_wire.KafkaError):
            conn.close()
            got = [None] * PARTITIONS
        now = time.time()
        if not seen_first and any(g for g in got):
            seen_first = True
            if on_first:
                on_first(now)
        if got == want:
            return now
        if not alive():
            raise RuntimeError(f"replicator exited before {topic} was complete ({got} of {want})")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {topic}: {got} of {want}")
        time.sleep(interval)


def producer_perf(bootstrap: str, topic: str, ds: dict, records: int, payload: Path,
                  throughput: int = -1) -> dict:
    args = ["--bootstrap-server", bootstrap, "--topic", topic, "--num-records", str(records),
            "--throughput", str(throughput), "--payload-file", str(payload),
            "--command-property", "acks=all", f"compression.type={ds['codec']}",
            f"batch.size={ds['batch_size']}", f"linger.ms={ds['linger_ms']}"]
    r = subprocess.run(java("org.apache.kafka.tools.ProducerPerformance", args, **PERF_JVM),
                       capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        raise RuntimeError(f"ProducerPerformance failed:\n{r.stderr[-3000:]}")
    last = [line for line in r.stdout.splitlines() if "records sent" in line][-1]
    m = re.search(r"records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
                  r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th", last)
    return dict(records_per_s=float(m[1]), value_mb_per_s=float(m[2]), avg_ms=float(m[3]),
                max_ms=float(m[4]), p50_ms=float(m[5]), p99_ms=float(m[7]), line=last)


def consumer_perf(bootstrap: str, topic: str, records: int) -> dict:
    args = ["--bootstrap-server", bootstrap, "--topic", topic, "--messages", str(records),
            "--timeout", "60000"]
    r = subprocess.run(java("org.apache.kafka.tools.ConsumerPerformance", args, **PERF_JVM),
                       capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        raise RuntimeError(f"ConsumerPerformance failed:\n{r.stderr[-3000:]}")
    rows = [line for line in r.stdout.splitlines() if line.strip() and line[0].isdigit()]
    cols = [c.strip() for c in rows[-1].split(",")]
    # start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec,
    # rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
    return dict(records=int(cols[4]), fetch_ms=float(cols[7]), records_per_s=float(cols[9]),
                line=rows[-1])


# --------------------------------------------------------------------------------------------
# replicators


# Replicators by name: ferry at its defaults, ferry with coalescing on, MirrorMaker 2, and
# `ferry-base`: a second ferry binary (--ferry-base, e.g. an older commit) with ferry's config,
# for before/after comparisons paired run by run.
LABELS = {"ferry": "ferry", "ferry-coalesce": "ferry, coalescing", "ferry-base": "ferry (base)",
          "mm2": "MM2"}

# `ferry-coalesce`: the opt-in merging of small batches (docs/configuration.md).
COALESCE_TOML = """
[flows.batching]
coalesce_below = "16KiB"
coalesce_max = "256KiB"
"""


def ferry_config(path: Path, src: str, dst: str, topic: str, coalesce: bool = False) -> None:
    path.write_text(f"""[clusters.src]
bootstrap_servers = ["{src}"]

[clusters.dst]
bootstrap_servers = ["{dst}"]

[[flows]]
source = "src"
target = "dst"
topics = ['{re.escape(topic)}']
naming = "identity"
# every other setting (tuning included) at its default
""" + (COALESCE_TOML if coalesce else ""))


MM2_TEMPLATE = """# MirrorMaker 2, dedicated mode, as run by benches/e2e/run.py
clusters = A, B
A.bootstrap.servers = {src}
B.bootstrap.servers = {dst}
A->B.enabled = true
A->B.topics = {topic_regex}
B->A.enabled = false
B->A.emit.heartbeats.enabled = false
replication.policy.class = org.apache.kafka.connect.mirror.IdentityReplicationPolicy
# like ferry: nothing is written to the source cluster
offset-syncs.topic.location = target

# single-node clusters
replication.factor = 1
offset-syncs.topic.replication.factor = 1
checkpoints.topic.replication.factor = 1
heartbeats.topic.replication.factor = 1
offset.storage.replication.factor = 1
config.storage.replication.factor = 1
status.storage.replication.factor = 1
offset.storage.partitions = 2
status.storage.partitions = 1
sync.topic.acls.enabled = false
refresh.topics.interval.seconds = 5
refresh.groups.interval.seconds = 5
plugin.discovery = service_load
B.plugin.discovery = service_load

# ---- tuning ----
# one task per partition
tasks.max = {partitions}
# producer writing to the target: the same guarantees as ferry (acks=all, idempotent,
# 5 in flight per connection; Connect's own defaults are idempotence off, 1 in flight),
# large batches with a linger, the source's codec so the target stores what ferry stores
B.producer.acks = all
B.producer.enable.idempotence = true
B.producer.max.in.flight.requests.per.connection = 5
B.producer.compression.type = {codec}
B.producer.batch.size = 262144
B.producer.linger.ms = 20
B.producer.buffer.memory = 67108864
B.producer.max.request.size = 10485760
# consumer reading the source: big fetches, many records per poll
A.consumer.max.poll.records = 10000
A.consumer.fetch.max.bytes = 52428800
A.consumer.max.partition.fetch.bytes = 4194304
A.consumer.fetch.min.bytes = 1
A.consumer.fetch.max.wait.ms = 500
"""

# bin/connect-mirror-maker.sh: -Xms256M -Xmx2G and kafka-run-class.sh's G1 flags.
MM2_HEAP = ["-Xms256M", "-Xmx2G"]


class Replicator:
    """A replicator process with its own log file; knows its pid for /proc."""

    def __init__(self, name: str, cmd: list[str], logfile: Path, env: dict | None = None):
        self.name = name
        self.logfile = logfile
        self.out = open(logfile, "w")
        self.t0 = time.time()
        self.proc = subprocess.Popen(cmd, stdout=self.out, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 60) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()
        return self.proc.returncode


def launch(kind: str, ctx: dict, topic: str, codec: str, run_dir: Path) -> Replicator:
    run_dir.mkdir(parents=True, exist_ok=True)
    if kind.startswith("ferry"):
        cfg = run_dir / "ferry.toml"
        ferry_config(cfg, ctx["src"], ctx["dst"], topic, coalesce=kind == "ferry-coalesce")
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"), NO_COLOR="1")
        binary = ctx["ferry_base"] if kind == "ferry-base" else ctx["ferry"]
        return Replicator(kind, [binary, "run", "--config", str(cfg)], run_dir / "ferry.log", env)
    props = run_dir / "mm2.properties"
    # A properties file reads `\.` as `.`: the regex's backslashes are doubled to reach MM2.
    topic_regex = re.escape(topic).replace("\\", "\\\\")
    props.write_text(MM2_TEMPLATE.format(src=ctx["src"], dst=ctx["dst"], topic_regex=topic_regex,
                                         partitions=PARTITIONS, codec=codec))
    cmd = java("org.apache.kafka.connect.mirror.MirrorMaker", [str(props), "--clusters", "B"],
               heap=MM2_HEAP, log4j=kh.CONNECT_LOG4J, logs_dir=run_dir, jvm_opts=kh.COMMON_JVM_OPTS)
    return Replicator("mm2", cmd, run_dir / "mirrormaker.out")


# --------------------------------------------------------------------------------------------
# one benchmark run


def fresh_target(ctx: dict) -> None:
    kh.wipe(ctx["dst_name"])
    info = kh.start(ctx["dst_name"], overrides=ctx["overrides"])
    ctx["dst"] = info["bootstrap"]
    ctx["dst_pid"] = info["pid"]


def throughput_run(kind: str, ctx: dict, ds: dict, run_dir: Path) -> dict:
    fresh_target(ctx)
    topic, want = ds["topic"], ds["end_offsets"]
    conn = kafka_wire.Connection(ctx["dst"])
    broker0 = proc_cpu(ctx["dst_pid"])
    first = {}
    r = launch(kind, ctx, topic, ds["codec"], run_dir)
    try:
        def on_first(now):
            first["t"] = now
            first["cpu"] = proc_cpu(r.proc.pid)
        t_done = wait_offsets(conn, topic, want, ctx["timeout"], r.alive, on_first)
        cpu = proc_cpu(r.proc.pid)
        hwm = proc_hwm(r.proc.pid)
        broker = proc_cpu(ctx["dst_pid"]) - broker0
    finally:
        status = r.stop()
        conn.close()
    # The poll runs every 0.2 s: the last append's file time is the exact end.
    last_append = max(p.stat().st_mtime for p in topic_logs(ctx["dst_name"], topic))
    t_end = min(t_done, max(last_append, first.get("t", r.t0)))
    secs = t_end - r.t0
    steady = t_end - first.get("t", r.t0)
    res = dict(replicator=kind, dataset=ds["name"], secs=secs, steady_secs=steady,
               records=ds["records_total"], log_bytes=ds["log_bytes"],
               records_per_s=ds["records_total"] / secs, mb_per_s=ds["log_bytes"] / secs / 1e6,
               steady_mb_per_s=ds["log_bytes"] / steady / 1e6 if steady > 0 else None,
               cpu_s=cpu, cpu_copy_s=cpu - first.get("cpu", 0.0),
               cpu_s_per_gib=cpu / (ds["log_bytes"] / GiB),
               peak_rss_mib=hwm / MiB, broker_cpu_s=broker,
               broker_cpu_s_per_gib=broker / (ds["log_bytes"] / GiB),
               target_log_bytes=sum(p.stat().st_size for p in topic_logs(ctx["dst_name"], topic)),
               target_batches=log_stats(ctx["dst_name"], topic)[1],
               exit_status=status)
    log(f"  {kind:14} {ds['name']}: {secs:6.2f} s ({steady:6.2f} s from first record), "
        f"{res['mb_per_s']:6.1f} MB/s, {res['records_per_s']:9.0f} rec/s, CPU {cpu:6.2f} s "
        f"({res['cpu_s_per_gib']:.2f} s/GiB), peak RSS {res['peak_rss_mib']:.0f} MiB, "
        f"target broker CPU {broker:.2f} s, {res['target_batches']} target batches")
    return res


def ceiling_run(ctx: dict, ds: dict, payload: Path) -> dict:
    """The broker-bound ceiling: the same data produced straight into a fresh target, and read
    from the source, by Kafka's own perf tools."""
    fresh_target(ctx)
    create_topic(ctx["dst"], ds["topic"])
    prod = producer_perf(ctx["dst"], ds["topic"], ds, ds["records_total"], payload)
    cons = consumer_perf(ctx["src"], ds["topic"], ds["records_total"])
    bytes_per_record = ds["log_bytes"] / ds["records_total"]
    res = dict(replicator="ceiling", dataset=ds["name"],
               produce_records_per_s=prod["records_per_s"],
               produce_mb_per_s=prod["records_per_s"] * bytes_per_record / 1e6,
               consume_records_per_s=cons["records_per_s"],
               consume_mb_per_s=cons["records_per_s"] * bytes_per_record / 1e6,
               records_per_s=min(prod["records_per_s"], cons["records_per_s"]))
    res["mb_per_s"] = res["records_per_s"] * bytes_per_record / 1e6
    log(f"  ceiling {ds['name']}: produce {res['produce_mb_per_s']:.1f} MB/s "
        f"({prod['records_per_s']:.0f} rec/s), consume {res['consume_mb_per_s']:.1f} MB/s "
        f"({cons['records_per_s']:.0f} rec/s)")
    return res


# --------------------------------------------------------------------------------------------
# steady-state latency


def dump_timestamps(bootstrap: str, topic: str, records: int) -> dict:
    """{(partition, offset): timestamp ms} read with the console consumer."""
    args = ["--bootstrap-server", bootstrap, "--topic", topic, "--from-beginning",
            "--max-messages", str(records), "--timeout-ms", "30000",
            "--formatter-property", "print.timestamp=true", "--formatter-property", "print.partition=true",
            "--formatter-property", "print.offset=true", "--formatter-property", "print.value=false",
            "--formatter-property", "print.key=false"]
    r = subprocess.run(java("org.apache.kafka.tools.consumer.ConsoleConsumer", args, **PERF_JVM),
                       capture_output=True, text=True, timeout=600)
    out = {}
    pat = re.compile(r"(?:CreateTime|LogAppendTime):(\d+)\s+Partition:(\d+)\s+Offset:(\d+)")
    for line in r.stdout.splitlines():
        m = pat.search(line)
        if m:
            out[(int(m[2]), int(m[3]))] = int(m[1])
    return out


def pct(sorted_vals: list, q: float):
    if not sorted_vals:
        return None
    return sorted_vals[min(len(sorted_vals) - 1, int(q * len(sorted_vals)))]


def latency_run(kind: str, ctx: dict, rep: int, payload: Path, run_dir: Path, rate_mb: float,
                seconds: int, warmup_s: int) -> dict:
    """Source fed at a fixed rate; delay = target LogAppendTime - record CreateTime, per record."""
    ds = dict(DATASETS["a"])
    topic = f"lat-{rep}-{kind}"
    create_topic(ctx["src"], topic)
    fresh_target(ctx)
    # The target topic keeps its append time in every record; mirrored batches keep offsets
    # (fresh target, no transactions), so source and target records pair by (partition, offset).
    create_topic(ctx["dst"], topic, {"message.timestamp.type": "LogAppendTime"})
    conn_src = kafka_wire.Connection(ctx["src"])
    conn_dst = kafka_wire.Connection(ctx["dst"])
    r = launch(kind, ctx, topic, ds["codec"], run_dir)
    try:
        # Warm-up: wait until the replicator has copied a first load, so start-up is not measured.
        producer_perf(ctx["src"], topic, ds, 2000, payload, throughput=2000)
        want = conn_src.end_offsets(topic, PARTITIONS)
        wait_offsets(conn_dst, topic, want, ctx["timeout"], r.alive)
        rate = int(rate_mb * 1e6 / 1024)
        t_load = time.time()
        prod = producer_perf(ctx["src"], topic, ds, rate * seconds, payload, throughput=rate)
        want = conn_src.end_offsets(topic, PARTITIONS)
        wait_offsets(conn_dst, topic, want, ctx["timeout"], r.alive)
        hwm = proc_hwm(r.proc.pid)
    finally:
        r.stop()
        conn_src.close()
        conn_dst.close()
    total = sum(want)
    src_ts = dump_timestamps(ctx["src"], topic, total)
    dst_ts = dump_timestamps(ctx["dst"], topic, total)
    skip_before = (t_load + warmup_s) * 1000
    delays = sorted(dst_ts[k] - v for k, v in src_ts.items() if k in dst_ts and v >= skip_before)
    res = dict(replicator=kind, rep=rep, records=len(delays), rate_mb_per_s=rate_mb,
               p50_ms=pct(delays, 0.5), p99_ms=pct(delays, 0.99), max_ms=delays[-1] if delays else None,
               producer_p50_ms=prod["p50_ms"], producer_p99_ms=prod["p99_ms"],
               paired=len(set(src_ts) & set(dst_ts)), source_records=len(src_ts), peak_rss_mib=hwm / MiB)
    log(f"  latency {kind:5}: p50 {res['p50_ms']} ms, p99 {res['p99_ms']} ms, max {res['max_ms']} ms "
        f"over {len(delays)} records (producer ack p50 {prod['p50_ms']} ms)")
    return res


# --------------------------------------------------------------------------------------------
# summary


def fmt(vals, digits=1, unit=""):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "-"
    m = statistics.median(vals)
    f = f"{{:.{digits}f}}"
    if len(vals) == 1:
        return f.format(m) + unit
    return f"{f.format(m)}{unit} ({f.format(min(vals))}–{f.format(max(vals))})"


def summarize(results: list[dict], datasets: dict) -> str:
    out = []
    runs = [r for r in results if r["replicator"] in LABELS]
    names = [n for n in datasets if any(r["dataset"] == n for r in runs)]
    if names:
        out.append("| data set | replicator | MB/s | records/s | MB/s from first record | CPU s/GiB | "
                   "peak RSS MiB | target broker CPU s/GiB | target batches |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        for n in names:
            for kind in LABELS:
                rs = [r for r in runs if r["dataset"] == n and r["replicator"] == kind]
                if not rs:
                    continue
                out.append(f"| {n} | {LABELS[kind]} | "
                           f"{fmt([r['mb_per_s'] for r in rs])} | {fmt([r['records_per_s'] for r in rs], 0)} | "
                           f"{fmt([r['steady_mb_per_s'] for r in rs])} | {fmt([r['cpu_s_per_gib'] for r in rs], 2)} | "
                           f"{fmt([r['peak_rss_mib'] for r in rs], 0)} | "
                           f"{fmt([r['broker_cpu_s_per_gib'] for r in rs], 2)} | "
                           f"{fmt([r.get('target_batches') for r in rs], 0)} |")
        out.append("")
        out.append("Ratios, paired run by run (median, min–max):")
        out.append("")
        out.append("| data set | ratio | pairs | throughput | from first record | CPU s/GiB | peak RSS | "
                   "target broker CPU |")
        out.append("|---|---|---|---|---|---|---|---|")
        for n in names:
            reps = {}
            for r in runs:
                if r["dataset"] == n:
                    reps.setdefault(r["rep"], {})[r["replicator"]] = r
            for top, bottom in (("ferry", "mm2"), ("ferry-coalesce", "mm2"), ("ferry-coalesce", "ferry"),
                                ("ferry", "ferry-base")):
                pairs = [p for p in reps.values() if top in p and bottom in p]
                if not pairs:
                    continue

                def ratio(key):
                    return fmt([p[top][key] / p[bottom][key] for p in pairs
                                if p[bottom][key] and p[top][key] is not None], 3, "×")
                out.append(f"| {n} | {LABELS[top]} / {LABELS[bottom]} | {len(pairs)} | {ratio('mb_per_s')} | "
                           f"{ratio('steady_mb_per_s')} | {ratio('cpu_s_per_gib')} | "
                           f"{ratio('peak_rss_mib')} | {ratio('broker_cpu_s_per_gib')} |")
    ceil = [r for r in results if r["replicator"] == "ceiling"]
    if ceil:
        out.append("")
        out.append("| data set | produce ceiling MB/s | consume ceiling MB/s | ferry / ceiling (paired) |")
        out.append("|---|---|---|---|")
        for n in names:
            cs = [r for r in ceil if r["dataset"] == n]
            if not cs:
                continue
            fr = {r["rep"]: r for r in runs if r["dataset"] == n and r["replicator"] == "ferry"}
            frac = [fr[c["rep"]]["mb_per_s"] / c["mb_per_s"] for c in cs if c["rep"] in fr]
            out.append(f"| {n} | {fmt([c['produce_mb_per_s'] for c in cs])} | "
                       f"{fmt([c['consume_mb_per_s'] for c in cs])} | {fmt(frac, 2)} |")
    lat = [r for r in results if r["replicator"].startswith("latency")]
    if lat:
        out.append("")
        out.append("| replicator | records measured | p50 ms | p99 ms | max ms | peak RSS MiB |")
        out.append("|---|---|---|---|---|---|")
        for kind in LABELS:
            ls = [r for r in lat if r["kind"] == kind]
            if ls:
                out.append(f"| {LABELS[kind]} | {fmt([r['records'] for r in ls], 0)} | "
                           f"{fmt([r['p50_ms'] for r in ls], 0)} | {fmt([r['p99_ms'] for r in ls], 0)} | "
                           f"{fmt([r['max_ms'] for r in ls], 0)} | {fmt([r['peak_rss_mib'] for r in ls], 0)} |")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default="a,b,c,d", help="comma-separated: a,b,c,d (default all)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every data set's record count")
    ap.add_argument("--replicators", default="ferry,mm2",
                    help="comma-separated: ferry, ferry-coalesce (coalescing on), ferry-base "
                         "(the --ferry-base binary), mm2")
    ap.add_argument("--no-ceilings", action="store_true")
    ap.add_argument("--latency", type=int, default=3, metavar="N", help="latency runs per replicator (0: none)")
    ap.add_argument("--latency-rate", type=float, default=20.0, help="MB/s fed into the source")
    ap.add_argument("--latency-seconds", type=int, default=30)
    ap.add_argument("--smoke", action="store_true",
                    help="CI: data set a with 20k records, 1 repeat, 1 latency run of 3 s at 2 MB/s")
    ap.add_argument("--ferry", default=str(ROOT / "target" / "release" / "ferry"))
    ap.add_argument("--ferry-base", default=None, metavar="PATH",
                    help="a second ferry binary, run as replicator ferry-base (e.g. before a change)")
    ap.add_argument("--out", default=None, help="results directory (default target/bench-e2e/<time>)")
    ap.add_argument("--name", default=f"bench-{os.getpid()}", help="cluster name prefix")
    ap.add_argument("--timeout", type=float, default=900, help="seconds a run may take")
    a = ap.parse_args()

    datasets = a.datasets.split(",")
    kinds = a.replicators.split(",")
    if a.smoke:
        # Every code path once, on data small enough for CI: timings mean nothing here.
        datasets, a.repeats, a.latency, a.latency_seconds, a.latency_rate = ["a"], 1, 1, 3, 2.0
        a.scale = 20000 / DATASETS["a"]["records"]
    for n in datasets:
        if n not in DATASETS:
            ap.error(f"unknown data set {n!r}")
    for kind in kinds:
        if kind not in LABELS:
            ap.error(f"unknown replicator {kind!r}: {', '.join(LABELS)}")
    uses_ferry = any(k in ("ferry", "ferry-coalesce") for k in kinds)
    if uses_ferry and not os.access(a.ferry, os.X_OK):
        ap.error(f"no ferry binary at {a.ferry}: cargo build --release -p ferry")
    if "ferry-base" in kinds and not (a.ferry_base and os.access(a.ferry_base, os.X_OK)):
        ap.error(f"replicator ferry-base needs --ferry-base PATH to a ferry binary (got {a.ferry_base})")
    out = Path(a.out or ROOT / "target" / "bench-e2e" / time.strftime("%Y%m%dT%H%M%S"))
    out.mkdir(parents=True, exist_ok=True)
    results_file = out / "results.jsonl"
    results: list[dict] = []

    def record(res: dict) -> None:
        results.append(res)
        with open(results_file, "a") as f:
            f.write(json.dumps(res) + "\n")

    if uses_ferry:
        # A copy: a rebuild while the benchmark runs must not change the binary under test.
        shutil.copy2(a.ferry, out / "ferry")
        ctx_ferry = str(out / "ferry")
    else:
        ctx_ferry = a.ferry
    if "ferry-base" in kinds:
        shutil.copy2(a.ferry_base, out / "ferry-base")
    kh.fetch(quiet=True)
    src_name, dst_name = f"{a.name}-src", f"{a.name}-dst"
    for n in (src_name, dst_name):
        if kh.is_running(n):
            ap.error(f"cluster {n} is already running: pick another --name")
    ctx = dict(ferry=ctx_ferry, ferry_base=str(out / "ferry-base"), dst_name=dst_name, timeout=a.timeout,
               overrides=[])
    log(f"results in {out}; clusters {src_name}, {dst_name}")
    try:
        info = kh.start(src_name)
        ctx["src"], ctx["src_pid"] = info["bootstrap"], info["pid"]
        payloads = {}
        for kind in ("json1k", "json100"):
            payloads[kind] = out / f"payload-{kind}.txt"
            write_payloads(payloads[kind], kind)
        conn_src = kafka_wire.Connection(ctx["src"])
        for n in datasets:
            ds = dict(DATASETS[n], name=n, topic=f"e2e-{n}")
            records = max(PARTITIONS, int(ds["records"] * a.scale))
            log(f"data set {n}: {ds['desc']}; loading {records} records into the source")
            create_topic(ctx["src"], ds["topic"])
            load = producer_perf(ctx["src"], ds["topic"], ds, records, payloads[ds["payload"]])
            ds["end_offsets"] = conn_src.end_offsets(ds["topic"], PARTITIONS)
            ds["records_total"] = sum(ds["end_offsets"])
            ds["log_bytes"], ds["batches"] = log_stats(src_name, ds["topic"])
            record(dict(replicator="dataset", dataset=n, desc=ds["desc"], records=ds["records_total"],
                        log_bytes=ds["log_bytes"], batches=ds["batches"],
                        value_bytes=ds["records_total"] * (1024 if ds["payload"] == "json1k" else 100),
                        load_records_per_s=load["records_per_s"]))
            log(f"  {ds['records_total']} records, {ds['log_bytes'] / MiB:.1f} MiB in {ds['batches']} batches "
                f"(mean {ds['log_bytes'] / max(1, ds['batches']) / 1024:.1f} KiB)")
            for rep in range(a.repeats):
                order = kinds if rep % 2 == 0 else kinds[::-1]
                for kind in order:
                    res = throughput_run(kind, ctx, ds, out / f"{n}-{rep}-{kind}")
                    res["rep"] = rep
                    record(res)
                if not a.no_ceilings:
                    res = ceiling_run(ctx, ds, payloads[ds["payload"]])
                    res["rep"] = rep
                    record(res)
        for rep in range(a.latency):
            order = kinds if rep % 2 == 0 else kinds[::-1]
            for kind in order:
                res = latency_run(kind, ctx, rep, payloads["json1k"], out / f"latency-{rep}-{kind}",
                                  a.latency_rate, a.latency_seconds,
                                  warmup_s=min(5, a.latency_seconds // 3))
                res["kind"] = kind
                res["replicator"] = f"latency-{kind}"
                record(res)
        conn_src.close()
    finally:
        for n in (dst_name, src_name):
            try:
                kh.wipe(n)
            except Exception as e:  # noqa: BLE001
                log(f"could not wipe {n}: {e}")
    # A replicator that did not shut down cleanly is a failure (the JVM exits 143 on SIGTERM).
    bad = [r for r in results if "exit_status" in r and r["exit_status"] not in (0, 143 if r["replicator"] == "mm2" else 0)]
    for r in bad:
        log(f"{r['replicator']} ({r['dataset']}, repeat {r['rep']}) exited with status {r['exit_status']}")
    table = summarize(results, DATASETS)
    (out / "summary.md").write_text(table + "\n")
    print(table)
    log(f"raw results: {results_file}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
