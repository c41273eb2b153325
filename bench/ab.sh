#!/usr/bin/env bash
# A/B of two cartero binaries on the relay benchmark, run alternately so that drift of the
# machine hits both alike (cartero only; docs untouched):
#   bench/ab.sh OLD_BINARY NEW_BINARY [ROUNDS]
# e.g. build the previous commit in a worktree (`git worktree add ../old REV`,
# `cargo build --release --bin cartero` there), then
#   N=100000 DOMAINS=1000 SIZE=5000 bench/ab.sh ../old/target/release/cartero target/release/cartero 2
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
old=$(realpath "$1")
new=$(realpath "$2")
rounds=${3:-2}
for _ in $(seq 1 "$rounds"); do
    for bin in "$old" "$new"; do
        echo "== $bin"
        SKIP_BUILD=1 SYSTEMS=cartero CARTERO_BIN="$bin" UPDATE_DOCS=0 "$here/run.sh" \
            | grep -E '^\| cartero '
    done
done
