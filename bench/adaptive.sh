#!/usr/bin/env bash
# One command: build cartero and cartero-simulator (release), then send N messages to four
# simulated providers whose limits the MTA is not told, through cartero adaptive, cartero with
# static limits and Postfix with default settings; report time vs the ideal and the share of
# throttled attempts. See bench/README.md ("Adaptive efficiency").
#   bench/adaptive.sh                              # N=100000 (updates docs/benchmarks.md)
#   N=5000 TIMEOUT=60 bench/adaptive.sh            # a quick check (docs untouched)
#   SYSTEMS=adaptive N=20000 bench/adaptive.sh     # one system
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
if [ "$(id -u)" != 0 ]; then
    echo "run as root: the private Postfix instance needs it" >&2
    exit 2
fi
for tool in /usr/sbin/smtp-source /usr/sbin/postfix /usr/bin/python3 script; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 2; }
done
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    cargo build --release -j2 --bin cartero --bin cartero-simulator
fi
export PYTHONDONTWRITEBYTECODE=1
exec /usr/bin/python3 "$here/adaptive.py"
