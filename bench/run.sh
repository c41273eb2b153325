#!/usr/bin/env bash
# One command: build cartero (release), then push N messages through smtp-sink directly, through
# cartero and through a private Postfix relay, and report. See bench/README.md.
#   N=100000 DOMAINS=1000 SIZE=5000 bench/run.sh      # the full run (updates docs/benchmarks.md)
#   N=2000 bench/run.sh                               # a quick check (docs untouched)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
if [ "$(id -u)" != 0 ]; then
    echo "run as root: a private Postfix instance and smtp-sink -u postfix need it" >&2
    exit 2
fi
for tool in /usr/sbin/smtp-sink /usr/sbin/smtp-source /usr/sbin/postfix /usr/bin/python3 script; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 2; }
done
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    cargo build --release -j2 --bin cartero
fi
export PYTHONDONTWRITEBYTECODE=1
exec /usr/bin/python3 "$here/bench.py"
