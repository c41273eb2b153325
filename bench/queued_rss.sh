#!/usr/bin/env bash
# Memory with 1,000,000 queued recipients waiting for a destination that answers 421 to everything.
#   bench/queued_rss.sh                    # 1M recipients via the HTTP API (1000 per request)
#   MODE=smtp RCPTS=200000 bench/queued_rss.sh   # one-recipient messages from smtp-source
#   RCPTS=20000 bench/queued_rss.sh        # a quick check
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
if [ "$(id -u)" != 0 ]; then
    echo "run as root: smtp-sink -u postfix needs it" >&2
    exit 2
fi
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    cargo build --release -j2 --bin cartero
fi
export PYTHONDONTWRITEBYTECODE=1
exec /usr/bin/python3 "$here/queued_rss.py"
