#!/usr/bin/env bash
# Short or long fuzzing runs of every target on the stable toolchain.
#
#   fuzz/run.sh SECONDS [TARGET...]      e.g. fuzz/run.sh 60    (CI: ≥ 60 s per target)
#   FUZZ_RUNS=10000000 fuzz/run.sh 3600  (long run: stop at 10 M executions or SECONDS)
#
# cargo-fuzz needs nightly flags (-Zsanitizer=address); on stable Rust they are unlocked with
# RUSTC_BOOTSTRAP=1. If the AddressSanitizer build fails, it falls back to `-s none` (libFuzzer
# without a sanitizer; safe Rust needs none for memory safety). Exits non-zero on any crash,
# timeout or OOM (-rss_limit_mb=256); the reproducer lands in fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:?usage: fuzz/run.sh SECONDS [TARGET...]}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(signature_header envelope_payload layer)
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

sanitizer=address
if ! cargo fuzz build -O -s "$sanitizer" >build.log 2>&1; then
  echo "ASan build failed (see fuzz/build.log); falling back to -s none" >&2
  sanitizer=none
  cargo fuzz build -O -s none
fi

status=0
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "artifacts/$target"
  log="$(mktemp)"
  args=(-max_total_time="$seconds" -rss_limit_mb=256 -timeout=10 -print_final_stats=1)
  [ -n "${FUZZ_RUNS:-}" ] && args+=(-runs="$FUZZ_RUNS")
  started=$SECONDS
  if cargo fuzz run -O -s "$sanitizer" "$target" -- "${args[@]}" >"$log" 2>&1; then
    result=ok
  else
    result=FAILED
    status=1
    tail -40 "$log" >&2
  fi
  runs="$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1)"
  rss="$(grep -Eo 'stat::peak_rss_mb: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1)"
  printf 'FUZZ %-18s %s  executions=%s  seconds=%s  peak_rss_mb=%s  sanitizer=%s\n' \
    "$target" "$result" "${runs:-?}" "$((SECONDS - started))" "${rss:-?}" "$sanitizer"
  rm -f "$log"
done
rm -f build.log
exit "$status"
