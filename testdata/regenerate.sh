#!/usr/bin/env bash
# Regenerates every testdata/<case>/ directory from a real Kafka broker (see PROVENANCE.md).
#
#   bash testdata/regenerate.sh [--only CASE,CASE]
#
# Needs java (>= 17), mvn and python3 (>= 3.11); fetches the Kafka jars through the harness,
# pip-installs confluent-kafka if it is missing, starts a throwaway cluster "testdata-gen",
# produces, waits for compaction, captures, dumps the expected contents and stops the cluster.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
cd "$repo"

PY="${PYTHON:-python3}"
CONFLUENT_KAFKA_VERSION="${CONFLUENT_KAFKA_VERSION:-2.16.1}"   # bundles librdkafka 2.16.0

command -v java >/dev/null || { echo "regenerate.sh: java not found (need JDK >= 17)" >&2; exit 1; }
command -v mvn >/dev/null || { echo "regenerate.sh: mvn not found (need Maven >= 3.6)" >&2; exit 1; }

"$PY" harness/kafka_harness.py fetch >/dev/null

if ! "$PY" -c 'import confluent_kafka' 2>/dev/null; then
    echo "regenerate.sh: installing confluent-kafka==$CONFLUENT_KAFKA_VERSION" >&2
    "$PY" -m pip install --quiet "confluent-kafka==$CONFLUENT_KAFKA_VERSION"
fi

# the generator wipes the cluster itself; this is the safety net for Ctrl-C / errors
trap '"$PY" harness/kafka_harness.py wipe testdata-gen >/dev/null 2>&1 || true' EXIT

start=$(date +%s)
"$PY" testdata/gen/generate.py "$@"
echo "regenerate.sh: done in $(( $(date +%s) - start ))s; total size: $(du -sh testdata | cut -f1)" >&2
