"""The smallest Kafka client the benchmark needs: ListOffsets (latest) over one
kept-open TCP connection, so polling the target's end offsets every few
hundred milliseconds costs a few microseconds of CPU instead of a JVM start.

Standard library only. ListOffsets v1 (non-flexible; Kafka 4.x serves v1-v10),
request header v1, response header v0. Single-node clusters only: every
request goes to the bootstrap broker, which leads every partition.
"""

import socket
import struct

LIST_OFFSETS = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
NOT_LEADER = 6


class KafkaError(RuntimeError):
    pass


def _string(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">h", len(b)) + b


class Connection:
    def __init__(self, bootstrap: str, client_id: str = "ferry-bench", timeout: float = 10.0):
        host, port = bootstrap.rsplit(":", 1)
        self.addr = (host, int(port))
        self.client_id = client_id
        self.timeout = timeout
        self.sock = None
        self.correlation = 0

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _connect(self):
        if self.sock is None:
            self.sock = socket.create_connection(self.addr, timeout=self.timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _read_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise KafkaError("connection closed by broker")
            buf += chunk
        return bytes(buf)

    def request(self, api_key: int, version: int, body: bytes) -> bytes:
        self._connect()
        self.correlation += 1
        header = struct.pack(">hhi", api_key, version, self.correlation) + _string(self.client_id)
        msg = header + body
        try:
            self.sock.sendall(struct.pack(">i", len(msg)) + msg)
            (size,) = struct.unpack(">i", self._read_exact(4))
            resp = self._read_exact(size)
        except OSError:
            self.close()
            raise
        (corr,) = struct.unpack_from(">i", resp, 0)
        if corr != self.correlation:
            self.close()
            raise KafkaError(f"correlation id {corr}, expected {self.correlation}")
        return resp[4:]

    def end_offsets(self, topic: str, partitions: int) -> list[int | None]:
        """Latest offset of each partition; None where the topic or partition does not exist yet."""
        body = struct.pack(">i", -1) + struct.pack(">i", 1) + _string(topic) + struct.pack(">i", partitions)
        for p in range(partitions):
            body += struct.pack(">iq", p, -1)
        resp = self.request(LIST_OFFSETS, 1, body)
        out: list[int | None] = [None] * partitions
        pos = 0
        (ntopics,) = struct.unpack_from(">i", resp, pos)
        pos += 4
        for _ in range(ntopics):
            (nlen,) = struct.unpack_from(">h", resp, pos)
            pos += 2 + nlen
            (nparts,) = struct.unpack_from(">i", resp, pos)
            pos += 4
            for _ in range(nparts):
                part, err, _ts, offset = struct.unpack_from(">ihqq", resp, pos)
                pos += 4 + 2 + 8 + 8
                if err == 0 and 0 <= part < partitions:
                    out[part] = offset
                elif err not in (UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER, 5, 9):  # 5/9: leader/replica not available
                    raise KafkaError(f"ListOffsets {topic}-{part}: error code {err}")
        return out
