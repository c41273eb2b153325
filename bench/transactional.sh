#!/usr/bin/env bash
# Transactional benchmark: durable calls/s and idle call-to-sink latency, with the MTA's own
# durable HTTP injection by the same client as the peer, in the same run. See bench/README.md.
#   BACKENDS=sqlite,postgres bench/transactional.sh    # the full run (updates docs/benchmarks.md)
#   N=2000 bench/transactional.sh                      # a quick check (docs untouched below N=20000)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
for tool in /usr/sbin/smtp-sink /usr/bin/python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 2; }
done
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    cargo build --release -j2 --bin cartero
fi
export PYTHONDONTWRITEBYTECODE=1
exec /usr/bin/python3 "$here/transactional.py"
