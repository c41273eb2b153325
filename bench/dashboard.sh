#!/usr/bin/env bash
# Dashboard latency benchmark: the pages and data endpoints of a delivery with 10M log rows, on
# SQLite and PostgreSQL. See bench/README.md.
#   BACKENDS=sqlite,postgres bench/dashboard.sh      # the full run (updates docs/benchmarks.md)
#   N=200000 bench/dashboard.sh                      # a quick check (docs untouched below N=10000000)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
command -v /usr/bin/python3 >/dev/null || { echo "missing /usr/bin/python3" >&2; exit 2; }
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    cargo build --release -j2 --bin cartero
fi
export PYTHONDONTWRITEBYTECODE=1
exec /usr/bin/python3 "$here/dashboard.py"
