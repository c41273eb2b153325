#!/usr/bin/env bash
# Campaign benchmark: import, analysis and a personalized delivery to smtp-sink, with the MTA
# alone relaying the same number of messages in the same run. See bench/README.md.
#   N=1000000 BACKENDS=sqlite,postgres bench/campaign.sh    # the full run (updates docs/benchmarks.md)
#   N=20000 bench/campaign.sh                               # a quick check (docs untouched below N=100000; UPDATE_DOCS=0 keeps them for any N)
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
exec /usr/bin/python3 "$here/campaign.py"
