#!/usr/bin/env bash
# One command: build cartero and cartero-simulator (release), then send mail to mixes of
# simulated providers whose limits the MTA is not told (bench/adaptive/*.toml), for several
# lengths of ideal sending time, through cartero adaptive, cartero with static limits and
# Postfix with default settings; one table of time vs the ideal and the share of throttled or
# refused attempts. See bench/README.md ("Adaptive efficiency").
#   bench/adaptive.sh                                   # 5 mixes × 1 and 5 min (updates docs/benchmarks.md)
#   MIXES=conns MINUTES=1 SYSTEMS=adaptive bench/adaptive.sh   # one mix, one length, one system
#   N=5000 MIXES=rate bench/adaptive.sh                 # a quick check (docs untouched)
#   SCENARIO=bench/adaptive-scenario.toml N=100000 bench/adaptive.sh   # one scenario file
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
if [ "${SKIP_BUILD:-0}" != 1 ] && [ -z "${MERGE:-}" ]; then
    cargo build --release -j2 --bin cartero --bin cartero-simulator
fi
export PYTHONDONTWRITEBYTECODE=1
exec /usr/bin/python3 "$here/adaptive.py"
