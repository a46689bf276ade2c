#!/usr/bin/env bash
# `make fuzz`: runs every cargo-fuzz target in fuzz/ for FUZZ_SECONDS each
# (nightly toolchain, cargo-fuzz; installed when missing) and prints, per
# target, the executions, the seconds and the crashes found.
#
#   FUZZ_SECONDS=60        time per target (libFuzzer -max_total_time)
#   FUZZ_TARGETS="a b"     a subset of the targets (default: all)
#   FUZZ_SANITIZER=none    none | address (address is slower; the code under
#                          test forbids unsafe, the sanitizer only watches deps)
#   FUZZ_NICE=10           niceness of the fuzzing processes
#
# The JSON targets (frame, token) get the dictionary fuzz/dict/json.dict.
# The committed seeds in fuzz/corpus/<target> are read only; what a run
# discovers goes to fuzz/target/corpus/<target> (git-ignored) and is reused by
# the next run. A crash stops its target and leaves the input in
# fuzz/artifacts/<target>/; reproduce it with
#   cd fuzz && cargo +nightly fuzz run -s none <target> artifacts/<target>/<file>
# then turn it into a regression test in the decoder's crate.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
SANITIZER=${FUZZ_SANITIZER:-none}
NICE=${FUZZ_NICE:-10}

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo +stable install cargo-fuzz --locked
fi

TARGETS=${FUZZ_TARGETS:-$(cargo +nightly fuzz list)}
nice -n "$NICE" cargo +nightly fuzz build -s "$SANITIZER"

mkdir -p target/fuzz-logs
summary=()
failed=0
for t in $TARGETS; do
  work="target/corpus/$t"
  mkdir -p "$work" "artifacts/$t"
  before=$(find "artifacts/$t" -type f | wc -l)
  log="target/fuzz-logs/$t.log"
  echo "== $t: ${SECONDS_PER_TARGET}s (log: fuzz/$log)"
  start=$(date +%s)
  dict=()
  case "$t" in frame | token) dict=(-dict=dict/json.dict) ;; esac
  status=0
  nice -n "$NICE" cargo +nightly fuzz run -s "$SANITIZER" "$t" "$work" "corpus/$t" -- \
    -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    "${dict[@]}" >"$log" 2>&1 || status=$?
  elapsed=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  if [ -z "$execs" ]; then
    execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
  fi
  ran=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  elapsed=${ran:-$elapsed}
  crashes=$(( $(find "artifacts/$t" -type f | wc -l) - before ))
  if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
    crashes=1 # died without an artifact (build or harness failure): see the log
  fi
  if [ "$crashes" -ne 0 ]; then
    failed=1
    tail -40 "$log"
  fi
  summary+=("$(printf '%-18s %12s %8s %8s' "$t" "${execs:-?}" "$elapsed" "$crashes")")
done

echo
printf '%-18s %12s %8s %8s\n' target executions seconds crashes
printf '%s\n' "${summary[@]}"
exit "$failed"
