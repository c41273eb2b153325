#!/usr/bin/env bash
# Bounce parsing throughput: `cartero bounce parse --json` over every labelled corpus message
# (training, world and held-out folders, repeated to about ROUNDS x the corpus), pinned to one
# core, against Python's standard-library MIME parser reading the same files on the same core
# (the peer does less: no report reading, no classification). See bench/README.md.
#   bench/bounce_parse.sh                 # builds the release binary first
#   SKIP_BUILD=1 ROUNDS=20 bench/bounce_parse.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
rounds="${ROUNDS:-10}"
cpu="${CPU:-0}"
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    cargo build --release -j2 --bin cartero
fi
mapfile -t corpus < <(find crates/bounce/corpus -name '*.eml' | sort)
[ "${#corpus[@]}" -gt 0 ] || { echo "no corpus messages found" >&2; exit 2; }
files=()
for _ in $(seq "$rounds"); do files+=("${corpus[@]}"); done
n="${#files[@]}"
bytes=$(cat "${corpus[@]}" | wc -c)

now() { date +%s.%N; }
t0=$(now)
taskset -c "$cpu" target/release/cartero bounce parse --json "${files[@]}" > /tmp/bounce_parse_bench.json
t1=$(now)
lines=$(wc -l < /tmp/bounce_parse_bench.json)
[ "$lines" -eq "$n" ] || { echo "expected $n results, got $lines" >&2; exit 1; }
t2=$(now)
taskset -c "$cpu" /usr/bin/python3 -c '
import email, email.policy, sys
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        m = email.message_from_binary_file(f, policy=email.policy.default)
    for part in m.walk():
        if part.get_content_maintype() == "text":
            try:
                part.get_content()
            except Exception:
                pass
' "${files[@]}"
t3=$(now)
python3 - "$n" "$bytes" "$rounds" "$t0" "$t1" "$t2" "$t3" <<'PY'
import sys
n, size, rounds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
t0, t1, t2, t3 = map(float, sys.argv[4:8])
ours, peer = n / (t1 - t0), n / (t3 - t2)
print(f"corpus: {n // rounds} messages ({size / 1024:.0f} KiB) x {rounds} rounds = {n} messages, one core")
print(f"| reader | messages/s | per message |")
print(f"|---|---|---|")
print(f"| cartero bounce parse --json (read + classify + JSON) | {ours:,.0f} | {1e6 / ours:.0f} µs |")
print(f"| python3 email (MIME parse + decode text parts only) | {peer:,.0f} | {1e6 / peer:.0f} µs |")
print(f"ratio cartero / python email: {ours / peer:.2f}x")
PY
