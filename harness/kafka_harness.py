#!/usr/bin/env python3
"""Real Apache Kafka (KRaft) clusters on loopback for Ferry's tests.

Python 3.11 standard library only.  Usable as a CLI and as a module:

    python3 harness/kafka_harness.py fetch
    python3 harness/kafka_harness.py start a [--override key=value ...]   # prints 127.0.0.1:PORT
    python3 harness/kafka_harness.py start s --listener SECURE:SASL_SSL --add-scram 'SCRAM-SHA-512=[name=u,password=p]'
    python3 harness/kafka_harness.py bootstrap s --listener SECURE      # that listener's 127.0.0.1:PORT
    python3 harness/kafka_harness.py tool org.apache.kafka.tools.TopicCommand --bootstrap-server ... --list
    python3 harness/kafka_harness.py stop a | stop-all | restart a | status | bootstrap a | wipe a

    import kafka_harness as kh
    c = kh.start("a")            # -> dict (the cluster.json contents)
    kh.tool("org.apache.kafka.tools.TopicCommand", ["--bootstrap-server", c["bootstrap"], "--list"])
    kh.stop("a")

Layout (HOME = $FERRY_HARNESS_HOME or <repo>/.harness):

    HOME/kafka-<version>/lib/*.jar        runtime closure of harness/pom.xml
    HOME/kafka-<version>/.fetched         marker: written last, holds the pom hash
    HOME/clusters/<name>/server.properties
    HOME/clusters/<name>/data/            log.dirs (KRaft metadata + topic data)
    HOME/clusters/<name>/logs/            server.log, state-change.log, log-cleaner.log, kafkaServer.out, gc.log
    HOME/clusters/<name>/cluster.json     {name, bootstrap, pid, kafka_version, data_dir, log_dir, ...}

See harness/README.md for details.
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import shlex
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

HARNESS_DIR = Path(__file__).resolve().parent
REPO_DIR = HARNESS_DIR.parent
POM = HARNESS_DIR / "pom.xml"
# Kafka 3.x logs through log4j 1 (reload4j) and needs a different jar closure: its own pom.
POM_KAFKA3 = HARNESS_DIR / "pom-kafka3.xml"
BROKER_LOG4J = HARNESS_DIR / "log4j2-broker.yaml"
TOOLS_LOG4J = HARNESS_DIR / "log4j2-tools.yaml"
CONNECT_LOG4J = HARNESS_DIR / "log4j2-connect.yaml"
DEP_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"

STARTED_MESSAGE = "Kafka Server started"   # KafkaBroker.STARTED_MESSAGE, logged by KafkaRaftServer.startup
ZOOKEEPER_STARTED_MESSAGE = "[KafkaServer id=1] started"   # KafkaServer.startup, ZooKeeper mode
DEFAULT_START_TIMEOUT = float(os.environ.get("FERRY_HARNESS_START_TIMEOUT", "180"))
DEFAULT_STOP_TIMEOUT = float(os.environ.get("FERRY_HARNESS_STOP_TIMEOUT", "60"))

# JVM options. Heap is small; G1 with few threads suits a 2-core box shared with cargo.
BROKER_HEAP = os.environ.get("FERRY_HARNESS_BROKER_HEAP", "-Xms256m -Xmx768m").split()
TOOL_HEAP = os.environ.get("FERRY_HARNESS_TOOL_HEAP", "-Xmx512m").split()
COMMON_JVM_OPTS = [
    "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent", "-XX:MaxInlineLevel=15",
    "-XX:ParallelGCThreads=2", "-XX:ConcGCThreads=1", "-XX:CICompilerCount=2",
    "-Djava.awt.headless=true",
]
# Short-lived tools: C1 only and serial GC start noticeably faster.
TOOL_JVM_OPTS = ["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto", "-Djava.awt.headless=true"]


class HarnessError(RuntimeError):
    """Anything the harness wants to report to the user without a traceback."""


# --------------------------------------------------------------------------------------------
# paths and versions

def home() -> Path:
    env = os.environ.get("FERRY_HARNESS_HOME")
    return Path(env).resolve() if env else REPO_DIR / ".harness"


def kafka_version() -> str:
    """The Kafka version pinned in harness/pom.xml (override with $FERRY_KAFKA_VERSION)."""
    env = os.environ.get("FERRY_KAFKA_VERSION")
    if env:
        return env
    m = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    if not m:
        raise HarnessError(f"no <kafka.version> in {POM}")
    return m.group(1).strip()


def dist_dir(version: str | None = None) -> Path:
    return home() / f"kafka-{version or kafka_version()}"


def lib_dir(version: str | None = None) -> Path:
    return dist_dir(version) / "lib"


def classpath(version: str | None = None) -> str:
    """A `-cp` value: the lib directory wildcard (java expands it)."""
    return str(lib_dir(version) / "*")


def clusters_dir() -> Path:
    return home() / "clusters"


def cluster_dir(name: str) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise HarnessError(f"bad cluster name {name!r} (letters, digits, _ . - only)")
    return clusters_dir() / name


def is_kafka3(version: str) -> bool:
    """Kafka before 4.0: log4j 1 (reload4j) logging, jars resolved from pom-kafka3.xml."""
    return version.split(".")[0] in ("2", "3")


def pom_for(version: str) -> Path:
    return POM_KAFKA3 if is_kafka3(version) else POM


def _fetch_key(version: str) -> str:
    h = hashlib.sha256(pom_for(version).read_bytes())
    h.update(version.encode())
    return h.hexdigest()


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive flock on `path` (parallel test processes must not fetch/start concurrently)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _require(cmd: str, hint: str) -> str:
    p = shutil.which(cmd)
    if not p:
        raise HarnessError(f"`{cmd}` not found on PATH: {hint}")
    return p


def java_bin() -> str:
    jh = os.environ.get("JAVA_HOME")
    if jh and (Path(jh) / "bin" / "java").exists():
        return str(Path(jh) / "bin" / "java")
    return _require("java", "install a JDK >= 17 (Debian: apt-get install openjdk-17-jdk-headless)")


# --------------------------------------------------------------------------------------------
# fetch

def is_fetched(version: str | None = None) -> bool:
    version = version or kafka_version()
    marker = dist_dir(version) / ".fetched"
    return marker.exists() and marker.read_text().strip() == _fetch_key(version) and any(lib_dir(version).glob("kafka_2.13-*.jar"))


def fetch(version: str | None = None, quiet: bool = False, force: bool = False) -> Path:
    """Resolve the Kafka jars into HOME/kafka-<version>/lib; no-op when the marker is current."""
    version = version or kafka_version()
    if not force and is_fetched(version):
        return lib_dir(version)
    with _locked(home() / ".fetch.lock"):
        if not force and is_fetched(version):
            return lib_dir(version)
        mvn = _require("mvn", "install Maven >= 3.6 (Debian: apt-get install maven)")
        java_bin()
        d = dist_dir(version)
        tmp = d / "lib.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        cmd = [mvn, "-B", "-q", "-f", str(pom_for(version)), f"{DEP_PLUGIN}:copy-dependencies",
               "-DincludeScope=runtime", f"-DoutputDirectory={tmp}", f"-Dkafka.version={version}"]
        if not quiet:
            print(f"fetching Kafka {version} jars with Maven into {d}/lib ...", file=sys.stderr)
        t0 = time.monotonic()
        r = subprocess.run(cmd, cwd=HARNESS_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise HarnessError(f"mvn failed (exit {r.returncode}): {' '.join(cmd)}\n{r.stdout[-4000:]}")
        jars = sorted(p.name for p in tmp.glob("*.jar"))
        if is_kafka3(version):
            # log4j 1: reload4j from 3.2 on, the original log4j 1.2 before
            logging_jars = (("reload4j-", "log4j-1."), ("slf4j-reload4j-", "slf4j-log4j12-"))
            other_bindings = r"(logback-classic|log4j-slf4j-impl|log4j-slf4j2-impl)-"
        else:
            logging_jars = (("log4j-core-",), ("log4j-slf4j-impl-",), ("jackson-dataformat-yaml-",))
            other_bindings = r"(slf4j-reload4j|slf4j-log4j12|logback-classic|log4j-slf4j2-impl)-"
        wanted = [("kafka_2.13-",), ("kafka-tools-",), ("kafka-clients-",), ("connect-mirror-",), *logging_jars]
        missing = ["|".join(alts) for alts in wanted
                   if not any(j.startswith(a) for j in jars for a in alts)]
        if missing:
            raise HarnessError(f"mvn copied {len(jars)} jars but these are missing: {missing}")
        bad = [j for j in jars if re.match(other_bindings, j)]
        if bad:
            raise HarnessError(f"conflicting SLF4J bindings in the closure: {bad}")
        shutil.rmtree(d / "lib", ignore_errors=True)
        tmp.rename(d / "lib")
        (d / "jars.txt").write_text("\n".join(jars) + "\n")
        (d / ".fetched").write_text(_fetch_key(version) + "\n")
        if not quiet:
            print(f"fetched {len(jars)} jars in {time.monotonic() - t0:.1f}s", file=sys.stderr)
        return d / "lib"


# --------------------------------------------------------------------------------------------
# java command lines

def java_command(main: str, args: list[str] = (), *, heap: list[str] | None = None,
                 log4j: Path = TOOLS_LOG4J, logs_dir: Path | None = None,
                 jvm_opts: list[str] | None = None, extra_jvm: list[str] = (),
                 version: str | None = None) -> list[str]:
    """The argv that runs a Kafka main class with the harness classpath (like kafka-run-class.sh)."""
    version = version or kafka_version()
    fetch(version, quiet=True)
    logs_dir = logs_dir or (home() / "logs" / "tools")
    logs_dir.mkdir(parents=True, exist_ok=True)
    if is_kafka3(version):
        # log4j2-broker.yaml -> log4j-broker.properties: the same setup in log4j 1 syntax
        legacy = log4j.with_name(log4j.stem.replace("log4j2-", "log4j-") + ".properties")
        log_flag = f"-Dlog4j.configuration=file:{legacy}"
    else:
        log_flag = f"-Dlog4j2.configurationFile={log4j}"
    return [java_bin(), *(TOOL_HEAP if heap is None else heap),
            *(TOOL_JVM_OPTS if jvm_opts is None else jvm_opts), *extra_jvm,
            f"-Dkafka.logs.dir={logs_dir}", log_flag,
            "-cp", classpath(version), main, *args]


def tool(main: str, args: list[str] = (), *, check: bool = True, capture: bool = True,
         input: str | bytes | None = None, timeout: float | None = 300, env: dict | None = None,
         heap: list[str] | None = None, text: bool = True,
         version: str | None = None) -> subprocess.CompletedProcess:
    """Run a Kafka tool class to completion with the quiet tools log config."""
    cmd = java_command(main, list(args), heap=heap, version=version)
    r = subprocess.run(cmd, input=input, timeout=timeout, env=env, text=text,
                       stdout=subprocess.PIPE if capture else None,
                       stderr=subprocess.PIPE if capture else None)
    if check and r.returncode != 0:
        err = r.stderr if capture else ""
        raise HarnessError(f"{main} exited {r.returncode}: {' '.join(map(str, args))}\n{(err or '')[-4000:]}")
    return r


# --------------------------------------------------------------------------------------------
# cluster helpers

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _can_connect(port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def _random_cluster_id() -> str:
    """Like org.apache.kafka.common.Uuid.randomUuid().toString(): url-safe base64, no padding."""
    while True:
        b = uuid.uuid4().bytes
        s = base64.urlsafe_b64encode(b).decode().rstrip("=")
        if not s.startswith("-") and b not in (bytes(16), bytes(15) + b"\x01"):
            return s


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:  # reap it if it is our own child (module use), so a zombie does not look alive
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    except OSError:
        pass
    return True


def _pid_is_cluster(pid: int | None, cdir: Path) -> bool:
    """True if pid is alive and is the broker JVM of this cluster dir (guards against pid reuse)."""
    if not _pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: trust the pid
    return f"-Dkafka.logs.dir={cdir / 'logs'}".encode() in cmdline


def read_cluster(name: str) -> dict | None:
    f = cluster_dir(name) / "cluster.json"
    if not f.exists():
        return None
    return json.loads(f.read_text())


def _write_cluster(name: str, info: dict) -> None:
    f = cluster_dir(name) / "cluster.json"
    tmp = f.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(info, indent=2) + "\n")
    tmp.replace(f)


def is_running(name: str) -> bool:
    info = read_cluster(name)
    return bool(info) and _pid_is_cluster(info.get("pid"), cluster_dir(name))


def bootstrap(name: str, listener: str | None = None) -> str:
    """The PLAINTEXT bootstrap address, or that of an extra `listener` (see `start`)."""
    info = read_cluster(name)
    if not info or not _pid_is_cluster(info.get("pid"), cluster_dir(name)):
        raise HarnessError(f"cluster {name!r} is not running")
    if listener is None:
        return info["bootstrap"]
    extra = info.get("listeners", {})
    if listener.upper() not in extra:
        raise HarnessError(f"cluster {name!r} has no listener {listener!r} (it has {sorted(extra)})")
    return extra[listener.upper()]


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


def _parse_listener(spec: str) -> tuple[str, str]:
    """`NAME:PROTOCOL` -> (NAME, PROTOCOL), both upper case."""
    name, sep, protocol = spec.partition(":")
    name, protocol = name.strip().upper(), protocol.strip().upper()
    if not sep or not re.fullmatch(r"[A-Z][A-Z0-9_]*", name) or protocol not in SECURITY_PROTOCOLS:
        raise HarnessError(f"--listener wants NAME:PROTOCOL with PROTOCOL one of {SECURITY_PROTOCOLS}, got {spec!r}")
    if name in ("PLAINTEXT", "CONTROLLER"):
        raise HarnessError(f"listener name {name} is taken by the harness")
    return name, protocol


def _extra_listeners(props: dict[str, str]) -> dict[str, str]:
    """Extra listeners of a server.properties: NAME -> 127.0.0.1:PORT."""
    out = {}
    for part in props.get("listeners", "").split(","):
        m = re.fullmatch(r"\s*([A-Z0-9_]+)://([^:]+):(\d+)\s*", part)
        if m and m.group(1) not in ("PLAINTEXT", "CONTROLLER"):
            out[m.group(1)] = f"{m.group(2)}:{m.group(3)}"
    return out


# Broker settings. Overrides (--override k=v) are appended and win (last one in the file wins).
def _server_properties(cdir: Path, port: int, cport: int) -> dict[str, str]:
    return {
        # KRaft combined mode, static quorum (format WITHOUT --standalone)
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{cport}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(cdir / "data"),
        # topics: explicit creation only, so a test cannot pass by accident through auto-create
        "num.partitions": "1",
        "auto.create.topics.enable": "false",
        "delete.topic.enable": "true",
        # internal topics on a single node: RF 1, few partitions
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "share.coordinator.state.topic.num.partitions": "4",
        "group.initial.rebalance.delay.ms": "0",
        # 2-core-friendly thread counts
        "num.network.threads": "2",
        "num.io.threads": "2",
        "background.threads": "2",
        "num.replica.fetchers": "1",
        "num.recovery.threads.per.data.dir": "1",
        "group.coordinator.threads": "1",
        "share.coordinator.threads": "1",
        "log.cleaner.threads": "1",
        # cleaner: small dedupe buffer (default 128 MiB is allocated on the heap at startup),
        # short backoff so compaction happens within seconds of being eligible
        "log.cleaner.dedupe.buffer.size": "16777216",
        "log.cleaner.backoff.ms": "500",
        # retention/cleanup tasks start soon and check often (tests of log-start-offset moves)
        "log.initial.task.delay.ms": "1000",
        "log.retention.check.interval.ms": "5000",
    }


def _zookeeper_server_properties(cdir: Path, port: int, zk_port: int) -> dict[str, str]:
    """A ZooKeeper-mode broker (Kafka < 4.0), as most 2.x/3.x clusters in the field still run."""
    props = _server_properties(cdir, port, 0)
    for k in ("process.roles", "node.id", "controller.quorum.voters", "controller.listener.names") + tuple(
            k for k in props if k.startswith("share.")):
        props.pop(k, None)
    props.update({
        "broker.id": "1",
        "zookeeper.connect": f"127.0.0.1:{zk_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT",
        # one broker: nobody to hand leadership to, and ZooKeeper stops with it
        "controlled.shutdown.enable": "false",
    })
    return props


def _zoo_cfg(cdir: Path, zk_port: int) -> str:
    return (f"dataDir={cdir / 'zookeeper'}\nclientPort={zk_port}\nclientPortAddress=127.0.0.1\n"
            "maxClientCnxns=0\nadmin.enableServer=false\n")


def _write_properties(path: Path, props: dict[str, str], overrides: list[tuple[str, str]]) -> None:
    lines = ["# written by harness/kafka_harness.py"]
    lines += [f"{k}={v}" for k, v in props.items()]
    if overrides:
        lines.append("# --override")
        lines += [f"{k}={v}" for k, v in overrides]
    path.write_text("\n".join(lines) + "\n")


def _parse_properties(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def _parse_override(s: str) -> tuple[str, str]:
    if "=" not in s:
        raise HarnessError(f"--override wants key=value, got {s!r}")
    k, v = s.split("=", 1)
    return k.strip(), v.strip()


def _tail(path: Path, n: int = 60) -> str:
    try:
        data = path.read_bytes()[-65536:].decode(errors="replace").splitlines()
    except OSError:
        return f"({path} does not exist)"
    return "\n".join(data[-n:])


def _jvm_props(cdir: Path) -> list[str]:
    """`-Dkey=value` flags saved by `start --jvm-prop` (e.g. the OAUTHBEARER allowed-URL list,
    which Kafka reads as a system property only), kept for restarts."""
    path = cdir / "jvm.properties"
    if not path.exists():
        return []
    return [f"-D{line}" for line in path.read_text().splitlines() if line.strip()]


def _broker_command(cdir: Path, version: str) -> list[str]:
    logs = cdir / "logs"
    gc = ["-Xlog:gc*:file=" + str(logs / "gc.log") + ":time,tags:filecount=2,filesize=20M"]
    return java_command("kafka.Kafka", [str(cdir / "server.properties")], heap=BROKER_HEAP,
                        log4j=BROKER_LOG4J, logs_dir=logs, jvm_opts=COMMON_JVM_OPTS,
                        extra_jvm=gc + _jvm_props(cdir), version=version)


def _zookeeper_broker_command(cdir: Path, version: str) -> list[str]:
    """ZooKeeper and the broker in one process group: the session leader is a shell that starts
    ZooKeeper in the background and then becomes the broker (exec), so the pid the harness
    tracks is the broker's and stopping the group stops both."""
    zk = java_command("org.apache.zookeeper.server.ZooKeeperServerMain", [str(cdir / "zoo.cfg")],
                      heap=["-Xmx128m"], log4j=BROKER_LOG4J, logs_dir=cdir / "logs" / "zookeeper",
                      jvm_opts=TOOL_JVM_OPTS, version=version)
    return ["/bin/sh", "-c", f'{shlex.join(zk)} & exec "$@"', "sh", *_broker_command(cdir, version)]


def _format(cdir: Path, cluster_id: str, version: str, scram: list[str] = ()) -> None:
    extra = [a for spec in scram for a in ("--add-scram", spec)]
    r = tool("kafka.tools.StorageTool",
             ["format", "-t", cluster_id, "-c", str(cdir / "server.properties"), *extra], check=False,
             version=version)
    if r.returncode != 0:
        raise HarnessError(f"StorageTool format failed (exit {r.returncode}):\n{r.stdout}\n{r.stderr}")


def start(name: str, overrides: list[tuple[str, str]] | list[str] | dict | None = None,
          timeout: float = DEFAULT_START_TIMEOUT, quiet: bool = True,
          version: str | None = None, zookeeper: bool | None = None,
          listeners: list[str] = (), scram: list[str] = (), jvm_props: list[str] = ()) -> dict:
    """Start (or find running) single-node KRaft cluster `name`; returns its cluster.json dict.

    A fresh cluster gets new free ports and a formatted data dir.  A cluster that exists but is
    stopped is started again with its existing server.properties (same ports, same data);
    overrides given then are appended to it.  `version` (default: $FERRY_KAFKA_VERSION, else
    the pom's) picks the Kafka release for a fresh cluster; a restart keeps the cluster's own.
    `zookeeper=True` runs a ZooKeeper-mode broker with its own ZooKeeper (Kafka < 4.0 only).

    `listeners` adds listeners besides PLAINTEXT (which stays the inter-broker listener), each
    `NAME:PROTOCOL` (e.g. `SECURE:SASL_SSL`) on its own free port; configure them with
    `listener.name.<name>.*` overrides (TLS keystore, SASL JAAS). `scram` specs are passed to
    `StorageTool format --add-scram` (e.g. `SCRAM-SHA-512=[name=alice,password=secret]`), so the
    users exist from the start. Both only apply when the cluster is created (KRaft only).
    `jvm_props` (`KEY=VALUE`) become broker JVM system properties, kept for restarts.
    """
    if isinstance(overrides, dict):
        overrides = list(overrides.items())
    ovr = [_parse_override(o) if isinstance(o, str) else (str(o[0]), str(o[1])) for o in (overrides or [])]
    cdir = cluster_dir(name)
    with _locked(clusters_dir() / f".{name}.lock"):
        info = read_cluster(name)
        if info and _pid_is_cluster(info.get("pid"), cdir):
            if ovr and not quiet:
                print(f"cluster {name} already running; --override ignored", file=sys.stderr)
            return info
        formatted = (cdir / "data" / "meta.properties").exists()
        if not version and formatted and info and info.get("kafka_version"):
            version = info["kafka_version"]   # data formatted by one release stays with it
        version = version or kafka_version()
        if zookeeper is None:
            zookeeper = bool(info and info.get("mode") == "zookeeper")
        if zookeeper and not is_kafka3(version):
            raise HarnessError(f"Kafka {version} has no ZooKeeper mode (removed in 4.0)")
        fetch(version, quiet=quiet)
        (cdir / "logs").mkdir(parents=True, exist_ok=True)
        (cdir / "data").mkdir(parents=True, exist_ok=True)
        props_file = cdir / "server.properties"
        if not props_file.exists() or not formatted:
            port, cport = free_port(), free_port()
            while cport == port:
                cport = free_port()
            if zookeeper:
                (cdir / "zoo.cfg").write_text(_zoo_cfg(cdir, cport))
                props = _zookeeper_server_properties(cdir, port, cport)
            else:
                props = _server_properties(cdir, port, cport)
            taken = {port, cport}
            for spec in listeners:
                lname, protocol = _parse_listener(spec)
                lport = free_port()
                while lport in taken:
                    lport = free_port()
                taken.add(lport)
                props["listeners"] += f",{lname}://127.0.0.1:{lport}"
                props["advertised.listeners"] = props.get("advertised.listeners", f"PLAINTEXT://127.0.0.1:{port}") + f",{lname}://127.0.0.1:{lport}"
                props["listener.security.protocol.map"] += f",{lname}:{protocol}"
            _write_properties(props_file, props, ovr)
            if jvm_props:
                (cdir / "jvm.properties").write_text("".join(f"{p}\n" for p in jvm_props))
        elif ovr:
            with open(props_file, "a") as f:
                f.write("# --override (restart)\n" + "".join(f"{k}={v}\n" for k, v in ovr))
        props = _parse_properties(props_file)
        port = int(re.search(r"PLAINTEXT://[^:]+:(\d+)", props["listeners"]).group(1))
        if zookeeper:   # the ZooKeeper port stands in for the controller's
            cport = int(props["zookeeper.connect"].rsplit(":", 1)[1])
        else:
            cport = int(re.search(r"CONTROLLER://[^:]+:(\d+)", props["listeners"]).group(1))
        extra = _extra_listeners(props)
        for p in (port, cport, *(int(a.rsplit(":", 1)[1]) for a in extra.values())):
            if _can_connect(p, 0.3):
                raise HarnessError(f"port {p} of cluster {name} is already in use by another process")
        if zookeeper:
            cluster_id = None   # the broker registers one in ZooKeeper on first start
        elif not formatted:
            cluster_id = _random_cluster_id()
            _format(cdir, cluster_id, version, scram)
        else:
            m = re.search(r"^cluster\.id=(\S+)", (cdir / "data" / "meta.properties").read_text(), re.M)
            cluster_id = m.group(1) if m else None

        server_log = cdir / "logs" / "server.log"
        offset = server_log.stat().st_size if server_log.exists() else 0
        out = open(cdir / "logs" / "kafkaServer.out", "ab")
        out.write(f"\n===== start {time.strftime('%Y-%m-%d %H:%M:%S')} =====\n".encode())
        out.flush()
        t0 = time.monotonic()
        command = _zookeeper_broker_command(cdir, version) if zookeeper else _broker_command(cdir, version)
        ready_line = ZOOKEEPER_STARTED_MESSAGE if zookeeper else STARTED_MESSAGE
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, cwd=cdir)
        out.close()
        info = {
            "name": name,
            "bootstrap": f"127.0.0.1:{port}",
            "pid": proc.pid,
            "kafka_version": version,
            "mode": "zookeeper" if zookeeper else "kraft",
            "data_dir": str(cdir / "data"),
            "log_dir": str(cdir / "logs"),
            "controller": f"127.0.0.1:{cport}",
            "listeners": extra,
            "cluster_id": cluster_id,
            "server_properties": str(props_file),
            "state": "starting",
        }
        _write_cluster(name, info)
        deadline = t0 + timeout
        while True:
            if proc.poll() is not None:
                info.update(pid=None, state="failed")
                _write_cluster(name, info)
                raise HarnessError(
                    f"broker {name} exited with code {proc.returncode} during startup.\n"
                    f"--- tail of {server_log}\n{_tail(server_log)}\n"
                    f"--- tail of {cdir / 'logs' / 'kafkaServer.out'}\n{_tail(cdir / 'logs' / 'kafkaServer.out', 30)}")
            started = False
            try:
                with open(server_log, "rb") as f:
                    f.seek(offset)
                    started = ready_line.encode() in f.read()
            except OSError:
                pass
            if started and _can_connect(port):
                break
            if time.monotonic() > deadline:
                tails = (f"--- tail of {server_log}\n{_tail(server_log)}\n"
                         f"--- tail of {cdir / 'logs' / 'kafkaServer.out'}\n{_tail(cdir / 'logs' / 'kafkaServer.out', 30)}")
                _kill_group(proc.pid, 10)
                info.update(pid=None, state="failed")
                _write_cluster(name, info)
                raise HarnessError(
                    f"broker {name} not ready after {timeout:.0f}s (no '{ready_line}' + TCP connect on {port}); killed.\n{tails}")
            time.sleep(0.2)
        info["state"] = "running"
        info["started_in_s"] = round(time.monotonic() - t0, 2)
        _write_cluster(name, info)
        return info


def _kill_group(pid: int, timeout: float, hard: bool = False) -> bool:
    """SIGTERM the process (its group: it is a session leader), wait, then SIGKILL. True if it had to kill.
    hard: SIGKILL at once (a crash: no controlled shutdown, no final flush)."""
    def send(sig):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
    def group_alive():   # the leader, or anything else in its group (a ZooKeeper-mode cluster's ZooKeeper)
        if _pid_alive(pid):
            return True
        try:
            os.killpg(pid, 0)
            return True
        except (ProcessLookupError, PermissionError):
            return False
    if not hard:
        send(signal.SIGTERM)
    deadline = time.monotonic() + (0 if hard else timeout)
    while time.monotonic() < deadline:
        if not group_alive():
            return False
        time.sleep(0.2)
    send(signal.SIGKILL)
    for _ in range(50):
        if not group_alive():
            break
        time.sleep(0.1)
    return True


def stop(name: str, timeout: float = DEFAULT_STOP_TIMEOUT, hard: bool = False) -> bool:
    """Stop cluster `name` (SIGTERM, then SIGKILL after `timeout`; SIGKILL at once if `hard`).
    Returns True if it was running."""
    cdir = cluster_dir(name)
    with _locked(clusters_dir() / f".{name}.lock"):
        info = read_cluster(name)
        if not info:
            return False
        pid = info.get("pid")
        was = _pid_is_cluster(pid, cdir)
        if was:
            killed = _kill_group(pid, timeout, hard)
            info["last_stop"] = "SIGKILL" if killed else "SIGTERM"
        info.update(pid=None, state="stopped")
        _write_cluster(name, info)
        return was


def restart(name: str, timeout: float = DEFAULT_START_TIMEOUT, overrides=None) -> dict:
    if read_cluster(name) is None:
        raise HarnessError(f"no cluster {name!r} (start it first)")
    stop(name)
    return start(name, overrides=overrides, timeout=timeout)


def cluster_names() -> list[str]:
    d = clusters_dir()
    if not d.exists():
        return []
    return sorted(p.name for p in d.iterdir() if p.is_dir() and (p / "cluster.json").exists())


def status() -> list[dict]:
    out = []
    for n in cluster_names():
        info = read_cluster(n) or {}
        info["running"] = _pid_is_cluster(info.get("pid"), cluster_dir(n))
        out.append(info)
    return out


def stop_all(timeout: float = DEFAULT_STOP_TIMEOUT) -> list[str]:
    return [n for n in cluster_names() if stop(n, timeout)]


def wipe(name: str) -> None:
    stop(name)
    shutil.rmtree(cluster_dir(name), ignore_errors=True)
    with contextlib.suppress(OSError):
        (clusters_dir() / f".{name}.lock").unlink()


@contextlib.contextmanager
def cluster(name: str, overrides=None, wipe_after: bool = True):
    """`with kafka_harness.cluster("t1") as c: ... c["bootstrap"]` (stops, and wipes by default)."""
    info = start(name, overrides=overrides)
    try:
        yield info
    finally:
        if wipe_after:
            wipe(name)
        else:
            stop(name)


# --------------------------------------------------------------------------------------------
# CLI

def _main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="kafka_harness.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("fetch", help="resolve the Kafka jars with Maven into the cache")
    p.add_argument("--force", action="store_true")
    p = sub.add_parser("start", help="start (or find running) single-node KRaft cluster(s); prints bootstrap(s)")
    p.add_argument("name", nargs="+", help="several names are started in parallel, bootstraps printed in order")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--listener", action="append", default=[], metavar="NAME:PROTOCOL",
                   help="an extra listener, e.g. SECURE:SASL_SSL (new clusters only)")
    p.add_argument("--jvm-prop", action="append", default=[], metavar="KEY=VALUE",
                   help="a broker JVM system property (new clusters only)")
    p.add_argument("--add-scram", action="append", default=[], metavar="SPEC",
                   help="a SCRAM user created at format time, e.g. 'SCRAM-SHA-512=[name=u,password=p]'")
    p.add_argument("--timeout", type=float, default=DEFAULT_START_TIMEOUT)
    p.add_argument("--kafka-version", default=None, metavar="X.Y.Z",
                   help="Kafka release of a fresh cluster (default $FERRY_KAFKA_VERSION, else the pom's; 3.x works)")
    p.add_argument("--zookeeper", action="store_true",
                   help="a ZooKeeper-mode broker with its own ZooKeeper (Kafka 2.x/3.x only)")
    p = sub.add_parser("stop", help="stop a cluster (SIGTERM, SIGKILL after --timeout)")
    p.add_argument("name")
    p.add_argument("--timeout", type=float, default=DEFAULT_STOP_TIMEOUT)
    p.add_argument("--kill", action="store_true", help="SIGKILL at once, like a crash (kill -9)")
    p = sub.add_parser("stop-all", help="stop every cluster under the harness home")
    p.add_argument("--timeout", type=float, default=DEFAULT_STOP_TIMEOUT)
    p = sub.add_parser("restart", help="stop and start again: same ports, same data")
    p.add_argument("name")
    p.add_argument("--timeout", type=float, default=DEFAULT_START_TIMEOUT)
    sub.add_parser("status", help="list clusters")
    p = sub.add_parser("bootstrap", help="print a running cluster's bootstrap address")
    p.add_argument("name")
    p.add_argument("--listener", help="an extra listener's address instead of PLAINTEXT's")
    p = sub.add_parser("tool", help="run a Kafka Java class with the harness classpath (quiet log4j2)")
    p.add_argument("main_class")
    p.add_argument("args", nargs=argparse.REMAINDER)
    p = sub.add_parser("wipe", help="stop a cluster and delete its directory")
    p.add_argument("name")
    p = sub.add_parser("classpath", help="print the -cp value (lib dir wildcard)")
    p = sub.add_parser("mm2", help="run MirrorMaker 2 in the foreground (logs to HOME/logs/mm2/connect.log)")
    p.add_argument("properties")
    p.add_argument("args", nargs=argparse.REMAINDER)
    a = ap.parse_args(argv)

    if a.cmd == "fetch":
        print(fetch(force=a.force))
    elif a.cmd == "start":
        fetch(a.kafka_version, quiet=False)

        def one(n):
            was = is_running(n)
            info = start(n, overrides=a.override, timeout=a.timeout, quiet=False, version=a.kafka_version,
                         zookeeper=a.zookeeper or None, listeners=a.listener, scram=a.add_scram,
                         jvm_props=a.jvm_prop)
            if not was:
                print(f"cluster {n} started in {info.get('started_in_s')}s (pid {info['pid']})", file=sys.stderr)
            return info
        if len(a.name) == 1:
            infos = [one(a.name[0])]
        else:
            from concurrent.futures import ThreadPoolExecutor
            with ThreadPoolExecutor(len(a.name)) as ex:
                futs = [ex.submit(one, n) for n in a.name]
            errs = [f.exception() for f in futs if f.exception()]
            if errs:
                raise HarnessError("\n".join(str(e) for e in errs))
            infos = [f.result() for f in futs]
        for info in infos:
            print(info["bootstrap"])
    elif a.cmd == "stop":
        if not stop(a.name, a.timeout, a.kill):
            print(f"cluster {a.name} was not running", file=sys.stderr)
    elif a.cmd == "stop-all":
        for n in stop_all(a.timeout):
            print(f"stopped {n}", file=sys.stderr)
    elif a.cmd == "restart":
        print(restart(a.name, a.timeout)["bootstrap"])
    elif a.cmd == "status":
        rows = status()
        if not rows:
            print("no clusters")
        for r in rows:
            print(f"{r['name']:<16} {'running' if r['running'] else 'stopped':<8} {r.get('bootstrap', '-'):<22} "
                  f"pid={r.get('pid') or '-':<8} kafka={r.get('kafka_version')} {cluster_dir(r['name'])}")
    elif a.cmd == "bootstrap":
        print(bootstrap(a.name, a.listener))
    elif a.cmd == "classpath":
        fetch(quiet=True)
        print(classpath())
    elif a.cmd == "tool":
        cmd = java_command(a.main_class, a.args)
        sys.stdout.flush()
        os.execv(cmd[0], cmd)
    elif a.cmd == "mm2":
        logs = home() / "logs" / "mm2"
        cmd = java_command("org.apache.kafka.connect.mirror.MirrorMaker", [a.properties, *a.args],
                           heap=["-Xms256m", "-Xmx1g"], log4j=CONNECT_LOG4J, logs_dir=logs, jvm_opts=COMMON_JVM_OPTS)
        print(f"MirrorMaker logs: {logs / 'connect.log'}", file=sys.stderr)
        sys.stdout.flush()
        os.execv(cmd[0], cmd)
    elif a.cmd == "wipe":
        wipe(a.name)
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(sys.argv[1:] if argv is None else argv)
    except HarnessError as e:
        print(f"kafka_harness: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
