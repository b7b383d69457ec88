#!/usr/bin/env python3
"""Regenerates every testdata/<case>/ directory against a throwaway real broker.

Usually run through testdata/regenerate.sh (which also fetches the jars and installs
confluent-kafka).  Steps: start a harness cluster, create one topic per data set, run the
producers (JavaProducer.java / rdkafka_produce.py) on the scripts from recordset.py, wait for
the log cleaner, capture raw Fetch v11 responses (capture.py), dump the expected contents with
librdkafka (expected.py), write testdata/cases.json, stop and wipe the cluster.

    python3 testdata/gen/generate.py [--only CASE,CASE] [--keep-cluster]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

GEN = Path(__file__).resolve().parent
TESTDATA = GEN.parent
REPO = TESTDATA.parent
sys.path.insert(0, str(GEN))
sys.path.insert(0, str(REPO / "harness"))

import capture  # noqa: E402
import expected  # noqa: E402
import kafka_harness as kh  # noqa: E402
import recordset  # noqa: E402

CLUSTER = "testdata-gen"
SCRIPTS = GEN / "scripts"
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
BIG = str(8 << 20)

# flush() in the scripts decides the batches; linger.ms only keeps a batch from leaving earlier
# (with linger.ms=5 the first, still-JITting sends of a Java run split groups unpredictably).
JAVA_BASE = {"linger.ms": "1000", "batch.size": "1048576", "acks": "all"}  # enable.idempotence: client default (true)
RDK_BASE = {"linger.ms": "1000", "acks": "all"}                            # enable.idempotence: client default (false)

# data sets: topic -> how it is produced
DATASETS: dict[str, dict] = {}
for c in CODECS:
    DATASETS[f"java-{c}"] = dict(producer="java", script="standard.txt", check="plain",
                                 props={**JAVA_BASE, "compression.type": c}, topic_configs={})
    DATASETS[f"rdkafka-{c}"] = dict(producer="librdkafka", script="standard.txt", check="plain",
                                    props={**RDK_BASE, "compression.type": c}, topic_configs={})
DATASETS["java-large-none"] = dict(producer="java", script="large-noise.txt", check="plain",
                                   props={**JAVA_BASE, "compression.type": "none", "max.request.size": BIG},
                                   topic_configs={"max.message.bytes": BIG})
DATASETS["java-large-lz4"] = dict(producer="java", script="large-text.txt", check="plain",
                                  props={**JAVA_BASE, "compression.type": "lz4", "max.request.size": BIG},
                                  topic_configs={"max.message.bytes": BIG})
DATASETS["java-logappendtime"] = dict(producer="java", script="standard.txt", check="plain",
                                      props={**JAVA_BASE, "compression.type": "none"},
                                      topic_configs={"message.timestamp.type": "LogAppendTime"})
DATASETS["java-txn"] = dict(producer="java", script="txn.txt", check="txn",
                            props={**JAVA_BASE, "compression.type": "none"}, topic_configs={},
                            extra_settings={"transactional.id (T1, T2)": "ferry-T1, ferry-T2",
                                            "P": "plain producer (idempotent, not transactional)"})
DATASETS["java-txn-open"] = dict(producer="java", script="txn-open.txt", check=None,
                                 props={**JAVA_BASE, "compression.type": "none"}, topic_configs={},
                                 extra_settings={"transactional.id (T1)": "ferry-T1-open"}, txn_prefix="ferry-open")
DATASETS["java-txn-lz4"] = dict(producer="java", script="txn.txt", check="txn",
                                props={**JAVA_BASE, "compression.type": "lz4"}, topic_configs={},
                                extra_settings={"transactional.id (T1, T2)": "ferry-lz4-T1, ferry-lz4-T2",
                                                "P": "plain producer (idempotent, not transactional)"},
                                txn_prefix="ferry-lz4")
COMPACT_TOPIC = {"cleanup.policy": "compact", "segment.ms": "1000", "min.cleanable.dirty.ratio": "0.01",
                 "min.compaction.lag.ms": "0"}
DATASETS["java-compacted"] = dict(producer="java", script="compact.txt", check="compact",
                                  props={**JAVA_BASE, "compression.type": "none"},
                                  topic_configs={**COMPACT_TOPIC, "delete.retention.ms": "86400000"})
DATASETS["java-compacted-purged"] = dict(producer="java", script="compact-purge.txt", check="compact",
                                         props={**JAVA_BASE, "compression.type": "none"},
                                         topic_configs={**COMPACT_TOPIC, "delete.retention.ms": "100"})

# cases: directory -> (data set, capture parameters)
CASES: dict[str, dict] = {}
for name in DATASETS:
    if name in ("java-txn", "java-txn-open", "java-txn-lz4"):
        continue
    CASES[name] = dict(dataset=name, isolation=0)
CASES["java-txn-uncommitted"] = dict(dataset="java-txn", isolation=0)
CASES["java-txn-committed"] = dict(dataset="java-txn", isolation=1)
CASES["java-txn-lz4-committed"] = dict(dataset="java-txn-lz4", isolation=1)
CASES["java-txn-open-uncommitted"] = dict(dataset="java-txn-open", isolation=0, during_mark="open")
CASES["java-txn-open-committed"] = dict(dataset="java-txn-open", isolation=1, during_mark="open")
CASES["java-lz4-partial-tail"] = dict(dataset="java-lz4", isolation=0, partial="tail")
CASES["java-lz4-tiny-max-bytes"] = dict(dataset="java-lz4", isolation=0, partition_max_bytes=100)
CASES["java-lz4-mid-batch-offset"] = dict(dataset="java-lz4", isolation=0, fetch_offset=25)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def java_version() -> str:
    r = subprocess.run([kh.java_bin(), "-version"], capture_output=True, text=True)
    return r.stderr.splitlines()[0] if r.stderr else "?"


def producer_cmd(ds: dict, bootstrap: str, topic: str, t0: int) -> list[str]:
    script = str(SCRIPTS / ds["script"])
    props = [x for k, v in ds["props"].items() for x in ("--prop", f"{k}={v}")]
    if ds["producer"] == "java":
        return [kh.java_bin(), "-Xmx512m", f"-Dlog4j2.configurationFile={kh.TOOLS_LOG4J}", "-cp", kh.classpath(),
                str(GEN / "JavaProducer.java"), "--bootstrap", bootstrap, "--topic", topic, "--script", script,
                "--t0", str(t0), "--txn-prefix", ds.get("txn_prefix", "ferry"), *props]
    return [sys.executable, str(GEN / "rdkafka_produce.py"), "--bootstrap", bootstrap, "--topic", topic,
            "--script", script, "--t0", str(t0), *props]


def create_topics(bootstrap: str, names: list[str]) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fs = admin.create_topics([NewTopic(n, num_partitions=1, replication_factor=1, config=DATASETS[n]["topic_configs"])
                              for n in names], operation_timeout=30)
    for n, f in fs.items():
        f.result()
    # wait until every partition has a leader (metadata propagated)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        md = admin.list_topics(timeout=10)
        if all(n in md.topics and md.topics[n].partitions and md.topics[n].partitions[0].leader >= 0 for n in names):
            return
        time.sleep(0.2)
    raise RuntimeError("topics have no leader after 60s")


def active_segment_base(data_dir: Path, topic: str) -> int:
    logs = sorted((data_dir / f"{topic}-0").glob("*.log"))
    return int(logs[-1].name.split(".")[0])


def cleaner_checkpoint(data_dir: Path, topic: str) -> int:
    f = data_dir / "cleaner-offset-checkpoint"
    if not f.exists():
        return -1
    for line in f.read_text().splitlines()[2:]:
        parts = line.split()
        if len(parts) == 3 and parts[0] == topic and parts[1] == "0":
            return int(parts[2])
    return -1


def wait_compacted(bootstrap: str, data_dir: Path, topic: str, want_no_tombstones: bool, timeout: float = 120) -> dict:
    """Wait until the cleaner has cleaned everything below the active segment (and, if asked, no
    tombstone survives), then check the capture really has offset gaps."""
    deadline = time.monotonic() + timeout
    while True:
        cleaned = cleaner_checkpoint(data_dir, topic) >= active_segment_base(data_dir, topic)
        tomb_ok = True
        if cleaned and want_no_tombstones:
            tomb_ok = not any(m.value() is None for m in expected.consume(bootstrap, topic, 0, "read_uncommitted"))
        if cleaned and tomb_ok:
            records, _ = capture.capture(bootstrap, topic)
            s = capture.summarize(records)
            if s["sparse_batches"] or s["offset_gaps_between_batches"] or (s["first_offset"] or 0) > 0:
                return s
        if time.monotonic() > deadline:
            raise RuntimeError(f"{topic}: not compacted as wanted after {timeout}s (cleaned={cleaned}, tombstones gone={tomb_ok})")
        time.sleep(1)


def produce(name: str, ds: dict, bootstrap: str, on_mark=None, t0: int | None = None) -> dict:
    t0 = t0 or int(time.time()) * 1000
    cmd = producer_cmd(ds, bootstrap, name, t0)
    logf = kh.home() / "testdata-gen-logs" / f"{name}.out"
    logf.parent.mkdir(parents=True, exist_ok=True)
    t = time.monotonic()
    with open(logf, "w") as lf:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=lf, text=True, cwd=REPO)
        acks = []
        for line in p.stdout:
            lf.write(line)
            obj = json.loads(line)
            if "mark" in obj:
                if on_mark:
                    on_mark(obj["mark"])
            else:
                acks.append(obj)
        rc = p.wait()
    if rc != 0:
        raise RuntimeError(f"producer for {name} failed (exit {rc}); see {logf}:\n{logf.read_text()[-3000:]}")
    log(f"produced {name}: {len(acks)} records acked in {time.monotonic() - t:.1f}s")
    return {"t0": t0, "acks": acks}


def _not_visible(ds: dict) -> set:
    """Acked offsets that may legitimately be missing from the read: compaction removes records."""
    return set(range(1 << 20)) if ds.get("check") == "compact" else set()


def capture_case(case: str, spec: dict, bootstrap: str, runs: dict, kafka_version: str, meta_common: dict) -> dict:
    ds_name = spec["dataset"]
    ds = DATASETS[ds_name]
    out = TESTDATA / case
    pmb = spec.get("partition_max_bytes", 64 << 20)
    if spec.get("partial") == "tail":
        full, _ = capture.capture(bootstrap, ds_name)
        bs, _ = capture.walk_batches(full)
        assert len(bs) >= 3, bs
        pmb = bs[0]["size"] + bs[1]["size"] + int(bs[2]["size"] * 0.4)
    records, meta = capture.capture(bootstrap, ds_name, 0, spec.get("fetch_offset", 0), spec["isolation"], pmb,
                                    kafka_version=kafka_version)
    summary = capture.summarize(records)
    if spec.get("partial") == "tail":
        assert summary["trailing_partial_bytes"] > 0, summary
    capture.write_case(out, records, meta)
    batches, partial = capture.walk_batches(records)
    (out / "batches.json").write_text(json.dumps({"summary": summary, "batches": batches}, indent=1) + "\n")

    unc = expected.consume(bootstrap, ds_name, 0, "read_uncommitted")
    com = expected.consume(bootstrap, ds_name, 0, "read_committed")
    if ds.get("check"):
        problems = expected.check(ds["check"], SCRIPTS / ds["script"], runs[ds_name]["t0"], unc, com)
        if problems:
            raise RuntimeError(f"{case}: consumer view does not match the script:\n  " + "\n  ".join(problems[:20]))
    acked = {a["offset"]: a["timestamp"] for a in runs[ds_name].get("acks", [])}
    wrong = [m.offset() for m in unc if m.offset() in acked and m.timestamp()[1] != acked[m.offset()]]
    if wrong or (acked and set(acked) - {m.offset() for m in unc} - _not_visible(ds)):
        raise RuntimeError(f"{case}: consumer timestamps/offsets disagree with the producer acks at {wrong[:10]}")
    settings = {**ds["props"], **ds.get("extra_settings", {})}
    doc = {
        "case": case,
        "producer": ds["producer"],
        "producer_settings": settings,
        "topic": ds_name,
        "topic_configs": ds["topic_configs"],
        "script": f"testdata/gen/scripts/{ds['script']}",
        "t0_ms": runs[ds_name]["t0"],
        **meta_common,
        "records": [expected.to_record(m) for m in unc],
        "committed_offsets": [m.offset() for m in com],
    }
    (out / "expected.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    log(f"captured {case}: {len(records)} bytes, {summary['batches']} batches, "
        f"partial={summary['trailing_partial_bytes']}, {len(unc)} records / {len(com)} committed")
    return {"case": case, "dataset": ds_name, "producer": ds["producer"], "isolation_level": spec["isolation"],
            "fetch_offset": meta["fetch_offset"], "partition_max_bytes": pmb,
            "high_watermark": meta["high_watermark"], "last_stable_offset": meta["last_stable_offset"],
            "aborted_transactions": meta["aborted_transactions"], "records_bytes": len(records),
            "expected_records": len(unc), "committed_records": len(com), "summary": summary}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", help="comma-separated case names")
    ap.add_argument("--keep-cluster", action="store_true")
    a = ap.parse_args()
    cases = {k: v for k, v in CASES.items() if not a.only or k in a.only.split(",")}
    datasets = sorted({c["dataset"] for c in cases.values()})

    recordset.write_all()
    kh.fetch()
    kh.wipe(CLUSTER)
    info = kh.start(CLUSTER)
    bootstrap, data_dir = info["bootstrap"], Path(info["data_dir"])
    log(f"cluster {CLUSTER} at {bootstrap} (started in {info['started_in_s']}s)")
    import confluent_kafka
    meta_common = {
        "kafka_version": kh.kafka_version(),
        "client_versions": {"kafka-clients": kh.kafka_version(), "java": java_version(),
                            "confluent-kafka": confluent_kafka.__version__,
                            "librdkafka": confluent_kafka.libversion()[0]},
    }
    index = []
    try:
        create_topics(bootstrap, datasets)
        runs: dict[str, dict] = {}
        # the compaction data sets take ~20 s of sleeps each: run them in the background
        bg = {}
        for name in [d for d in datasets if d.startswith("java-compacted")]:
            th = threading.Thread(target=lambda n=name: runs.__setitem__(n, produce(n, DATASETS[n], bootstrap)))
            th.start()
            bg[name] = th
        open_cases = {k: v for k, v in cases.items() if v.get("during_mark")}
        for name in datasets:
            if name in bg:
                continue
            if any(c["dataset"] == name for c in open_cases.values()):
                def on_mark(mark, name=name):
                    runs[name] = {"t0": current_t0[0]}
                    _, before = capture.capture(bootstrap, name)
                    for case, spec in open_cases.items():
                        if spec["dataset"] == name and spec["during_mark"] == mark:
                            index.append(capture_case(case, spec, bootstrap, runs, kh.kafka_version(), meta_common))
                    _, after = capture.capture(bootstrap, name)
                    hw_lso = lambda m: (m["high_watermark"], m["last_stable_offset"])  # noqa: E731
                    if hw_lso(before) != hw_lso(after) or before["last_stable_offset"] >= before["high_watermark"]:
                        raise RuntimeError(f"{name}: transaction not open for the whole capture {hw_lso(before)} -> {hw_lso(after)}")
                current_t0 = [int(time.time()) * 1000]
                r = produce(name, DATASETS[name], bootstrap, on_mark=on_mark, t0=current_t0[0])
                runs[name].update(acks=r["acks"])
            else:
                runs[name] = produce(name, DATASETS[name], bootstrap)
        for name, th in bg.items():
            th.join()
            if name not in runs:
                raise RuntimeError(f"producer for {name} failed")
            s = wait_compacted(bootstrap, data_dir, name, want_no_tombstones=name.endswith("purged"))
            log(f"{name} compacted: sparse={s['sparse_batches']} gaps={s['offset_gaps_between_batches']} "
                f"empty={s['empty_batches']} horizon={s['delete_horizon_batches']}")
        for case, spec in cases.items():
            if spec.get("during_mark"):
                continue
            index.append(capture_case(case, spec, bootstrap, runs, kh.kafka_version(), meta_common))
    finally:
        if not a.keep_cluster:
            kh.wipe(CLUSTER)
    if a.only and (TESTDATA / "cases.json").exists():   # merge into the existing index
        done = {c["case"] for c in index}
        index += [c for c in json.loads((TESTDATA / "cases.json").read_text())["cases"] if c["case"] not in done]
    index.sort(key=lambda x: x["case"])
    (TESTDATA / "cases.json").write_text(json.dumps({**meta_common, "cases": index}, indent=1) + "\n")
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
