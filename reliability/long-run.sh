#!/usr/bin/env bash
# The long reliability run: every case at full size, in release, one test at a time.
# Prints the FIGURE lines that RELIABILITY.md records. Needs Redis at VOBIZ_TEST_REDIS_URL
# (default redis://127.0.0.1:6379) and /usr/bin/redis-server (cases 12-14 start their own).
#
#   reliability/long-run.sh            # the suite (about 10 minutes on 2 cores)
#   reliability/long-run.sh --fuzz     # and 10 M executions per fuzz target (hours on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
export PROPTEST_CASES="${PROPTEST_CASES:-100000}"
export VOBIZ_STORM_ITERATIONS="${VOBIZ_STORM_ITERATIONS:-1000}"
export VOBIZ_RETRY_EVENTS="${VOBIZ_RETRY_EVENTS:-10000}"
export VOBIZ_FLOOD_REQUESTS="${VOBIZ_FLOOD_REQUESTS:-1000000}"
export VOBIZ_FLOOD_CAPACITY="${VOBIZ_FLOOD_CAPACITY:-1000000}"
export VOBIZ_OUTAGE_SECS="${VOBIZ_OUTAGE_SECS:-20}"

cargo build --release --all-features --example server
# Each suite as "<test binary> <module>": the reliability cases live beside the area they test.
for suite in "layer signature" "router event_header" "dedup storms" "layer regressions" \
             "dedup redis_outage" "layer resources" "server example_server"; do
  read -r binary module <<<"$suite"
  cargo test --release --all-features --test "$binary" "$module::" -- \
    --include-ignored --nocapture --test-threads=1 2>&1 | tee "target/reliability-$module.log" |
    grep -aoE 'FIGURE.*|test result.*|.*FAILED.*'
done

if [ "${1:-}" = "--fuzz" ]; then
  FUZZ_RUNS=10000000 fuzz/run.sh 86400
fi
