#!/usr/bin/env python3
"""Independent raw-protocol Fetch client (Python socket + struct only; no Kafka library).

Sends ApiVersions v0, then one Fetch v11 (the newest non-flexible version: it has
isolation_level, log_start_offset, aborted_transactions and preferred_read_replica and allows
zstd) for one partition, and stores the partition's `records` bytes exactly as received.

    python3 testdata/gen/capture.py --bootstrap 127.0.0.1:PORT --topic T --out testdata/CASE \
        [--partition 0] [--offset 0] [--isolation 0|1] [--partition-max-bytes N] [--kafka-version 4.3.1]

Writes OUT/records.bin and OUT/fetch.json, and prints a batch-header summary (also usable as a
library: capture(...) returns (records_bytes, fetch_dict); walk_batches(records) parses headers).
"""
from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
from pathlib import Path

API_FETCH = 1
API_VERSIONS = 18
FETCH_VERSION = 11
CLIENT_ID = b"ferry-capture"


class Conn:
    def __init__(self, host: str, port: int, timeout: float = 30.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.corr = 0

    def close(self):
        self.sock.close()

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(min(n - len(buf), 1 << 20))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            buf += chunk
        return bytes(buf)

    def request(self, api_key: int, api_version: int, body: bytes) -> bytes:
        """Request header v1 (non-flexible); response header v0. Returns the response body."""
        self.corr += 1
        header = struct.pack(">hhih", api_key, api_version, self.corr, len(CLIENT_ID)) + CLIENT_ID
        msg = header + body
        self.sock.sendall(struct.pack(">i", len(msg)) + msg)
        (size,) = struct.unpack(">i", self._recv_exact(4))
        resp = self._recv_exact(size)
        (corr,) = struct.unpack_from(">i", resp, 0)
        if corr != self.corr:
            raise ValueError(f"correlation id mismatch: sent {self.corr}, got {corr}")
        return resp[4:]


class Reader:
    def __init__(self, data: bytes):
        self.d, self.p = data, 0

    def _u(self, fmt: str):
        v = struct.unpack_from(fmt, self.d, self.p)
        self.p += struct.calcsize(fmt)
        return v[0]

    def i8(self): return self._u(">b")
    def i16(self): return self._u(">h")
    def i32(self): return self._u(">i")
    def i64(self): return self._u(">q")

    def string(self):
        n = self.i16()
        if n < 0:
            return None
        s = self.d[self.p:self.p + n].decode()
        self.p += n
        return s

    def bytes_(self):
        n = self.i32()
        if n < 0:
            return None
        b = self.d[self.p:self.p + n]
        if len(b) != n:
            raise ValueError("truncated bytes field")
        self.p += n
        return b


def api_versions(conn: Conn) -> dict[int, tuple[int, int]]:
    r = Reader(conn.request(API_VERSIONS, 0, b""))
    err = r.i16()
    if err:
        raise RuntimeError(f"ApiVersions error {err}")
    out = {}
    for _ in range(r.i32()):
        k, lo, hi = r.i16(), r.i16(), r.i16()
        out[k] = (lo, hi)
    return out


def fetch_request_v11(topic: str, partition: int, offset: int, isolation: int,
                      partition_max_bytes: int, max_bytes: int, max_wait_ms: int = 1000) -> bytes:
    t = topic.encode()
    return b"".join([
        struct.pack(">iiii", -1, max_wait_ms, 1, max_bytes),   # replica_id, max_wait_ms, min_bytes, max_bytes
        struct.pack(">b", isolation),                          # isolation_level (v4+)
        struct.pack(">ii", 0, -1),                             # session_id, session_epoch (v7+): no session
        struct.pack(">i", 1), struct.pack(">h", len(t)), t,    # topics[1]: name
        struct.pack(">i", 1),                                  # partitions[1]
        struct.pack(">iiqqi", partition, -1, offset, -1, partition_max_bytes),
        # partition, current_leader_epoch (v9+), fetch_offset, log_start_offset (v5+), partition_max_bytes
        struct.pack(">i", 0),                                  # forgotten_topics_data (v7+)
        struct.pack(">h", 0),                                  # rack_id (v11+) ""
    ])


def parse_fetch_response_v11(body: bytes) -> dict:
    r = Reader(body)
    out = {"throttle_time_ms": r.i32(), "error_code": r.i16(), "session_id": r.i32(), "topics": []}
    for _ in range(r.i32()):
        topic = {"topic": r.string(), "partitions": []}
        for _ in range(r.i32()):
            p = {"partition": r.i32(), "error_code": r.i16(), "high_watermark": r.i64(),
                 "last_stable_offset": r.i64(), "log_start_offset": r.i64()}
            n = r.i32()
            p["aborted_transactions"] = None if n < 0 else [
                {"producer_id": r.i64(), "first_offset": r.i64()} for _ in range(n)]
            p["preferred_read_replica"] = r.i32()
            p["records"] = r.bytes_()
            topic["partitions"].append(p)
        out["topics"].append(topic)
    if r.p != len(body):
        raise ValueError(f"{len(body) - r.p} trailing bytes in Fetch response")
    return out


def capture(bootstrap: str, topic: str, partition: int = 0, offset: int = 0, isolation: int = 0,
            partition_max_bytes: int = 64 << 20, max_bytes: int | None = None,
            kafka_version: str | None = None) -> tuple[bytes, dict]:
    host, port = bootstrap.rsplit(":", 1)
    conn = Conn(host, int(port))
    try:
        versions = api_versions(conn)
        lo, hi = versions.get(API_FETCH, (None, None))
        if lo is None or not lo <= FETCH_VERSION <= hi:
            raise RuntimeError(f"broker does not support Fetch v{FETCH_VERSION} (supports {lo}..{hi})")
        body = conn.request(API_FETCH, FETCH_VERSION, fetch_request_v11(
            topic, partition, offset, isolation, partition_max_bytes,
            max_bytes if max_bytes is not None else partition_max_bytes))
    finally:
        conn.close()
    resp = parse_fetch_response_v11(body)
    if resp["error_code"]:
        raise RuntimeError(f"Fetch top-level error {resp['error_code']}")
    p = resp["topics"][0]["partitions"][0]
    if p["error_code"]:
        raise RuntimeError(f"Fetch partition error {p['error_code']}")
    records = p["records"] or b""
    meta = {
        "topic": topic,
        "partition": partition,
        "fetch_version": FETCH_VERSION,
        "isolation_level": isolation,
        "fetch_offset": offset,
        "partition_max_bytes": partition_max_bytes,
        "max_bytes": max_bytes if max_bytes is not None else partition_max_bytes,
        "high_watermark": p["high_watermark"],
        "last_stable_offset": p["last_stable_offset"],
        "log_start_offset": p["log_start_offset"],
        "aborted_transactions": p["aborted_transactions"],
        "preferred_read_replica": p["preferred_read_replica"],
        "records_size": len(records),
        "kafka_version": kafka_version,
        "broker_fetch_versions": [lo, hi],
    }
    return records, meta


# ---------------------------------------------------------------------------------------------
# batch header walk (no decompression), for summaries and sanity checks

ATTR_CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


def walk_batches(records: bytes) -> tuple[list[dict], int]:
    """Parse RecordBatch v2 headers; returns (batches, trailing_partial_bytes)."""
    out, pos = [], 0
    while len(records) - pos >= 12:
        base_offset, batch_len = struct.unpack_from(">qi", records, pos)
        if len(records) - pos < 12 + batch_len or batch_len < 49:
            break
        (ple, magic, crc, attrs, lod, base_ts, max_ts, pid, epoch, base_seq, count) = struct.unpack_from(
            ">ibIhiqqqhii", records, pos + 12)
        b = {
            "base_offset": base_offset, "batch_length": batch_len, "size": 12 + batch_len,
            "partition_leader_epoch": ple, "magic": magic, "crc": crc, "attributes": attrs,
            "codec": ATTR_CODECS.get(attrs & 7, attrs & 7), "log_append_time": bool(attrs & 8),
            "transactional": bool(attrs & 16), "control": bool(attrs & 32),
            "delete_horizon": bool(attrs & 64), "last_offset_delta": lod,
            "last_offset": base_offset + lod, "base_timestamp": base_ts, "max_timestamp": max_ts,
            "producer_id": pid, "producer_epoch": epoch, "base_sequence": base_seq, "record_count": count,
        }
        if b["control"] and count >= 1 and attrs & 7 == 0:
            b["control_type"] = _control_type(records[pos + 61:pos + 12 + batch_len])
        out.append(b)
        pos += 12 + batch_len
    return out, len(records) - pos


def _read_varint(buf: bytes, p: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = buf[p]
        p += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
    return (result >> 1) ^ -(result & 1), p


def _control_type(payload: bytes) -> str:
    _, p = _read_varint(payload, 0)        # record length
    p += 1                                  # attributes
    _, p = _read_varint(payload, p)        # timestamp delta
    _, p = _read_varint(payload, p)        # offset delta
    klen, p = _read_varint(payload, p)
    version, ctype = struct.unpack_from(">hh", payload, p)
    return {0: "ABORT", 1: "COMMIT"}.get(ctype, f"type{ctype}")


def summarize(records: bytes) -> dict:
    batches, partial = walk_batches(records)
    gaps_between = []
    for a, b in zip(batches, batches[1:]):
        if b["base_offset"] != a["last_offset"] + 1:
            gaps_between.append([a["last_offset"] + 1, b["base_offset"] - 1])
    return {
        "batches": len(batches),
        "records_in_batches": sum(b["record_count"] for b in batches),
        "trailing_partial_bytes": partial,
        "control_batches": [[b["base_offset"], b["producer_id"], b.get("control_type")] for b in batches if b["control"]],
        "transactional_batches": sum(1 for b in batches if b["transactional"] and not b["control"]),
        "sparse_batches": [[b["base_offset"], b["last_offset_delta"] + 1, b["record_count"]]
                           for b in batches if b["last_offset_delta"] + 1 != b["record_count"]],
        "empty_batches": [b["base_offset"] for b in batches if b["record_count"] == 0],
        "offset_gaps_between_batches": gaps_between,
        "delete_horizon_batches": [b["base_offset"] for b in batches if b["delete_horizon"]],
        "codecs": sorted({b["codec"] for b in batches}),
        "log_append_time_batches": sum(1 for b in batches if b["log_append_time"]),
        "producer_ids": sorted({b["producer_id"] for b in batches}),
        "first_offset": batches[0]["base_offset"] if batches else None,
        "last_offset": batches[-1]["last_offset"] if batches else None,
        "largest_batch": max((b["size"] for b in batches), default=0),
    }


def write_case(out_dir: Path, records: bytes, meta: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "records.bin").write_bytes(records)
    (out_dir / "fetch.json").write_text(json.dumps(meta, indent=2) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partition", type=int, default=0)
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--isolation", type=int, choices=(0, 1), default=0)
    ap.add_argument("--partition-max-bytes", type=int, default=64 << 20)
    ap.add_argument("--max-bytes", type=int)
    ap.add_argument("--kafka-version")
    ap.add_argument("--out", type=Path, help="case directory (omit to only print the summary)")
    a = ap.parse_args()
    records, meta = capture(a.bootstrap, a.topic, a.partition, a.offset, a.isolation,
                            a.partition_max_bytes, a.max_bytes, a.kafka_version)
    if a.out:
        write_case(a.out, records, meta)
    print(json.dumps({k: v for k, v in meta.items()}, indent=1))
    print(json.dumps(summarize(records), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
