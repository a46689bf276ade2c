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
#   FUZZ_CPU_SECONDS=3600  instead of wall time: fuzz each target in rounds of
#                          at most FUZZ_SECONDS until its processes have used
#                          this much CPU time (a niced run on a busy machine
#                          gets less CPU than wall time)
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
CPU_BUDGET=${FUZZ_CPU_SECONDS:-0}
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
  execs=0
  cpu=0
  rounds=0
  : >"$log"
  while :; do
    round_log="$log.round"
    t0=$(awk '{print $14+$15+$16+$17}' /proc/$$/stat)
    # The CPU time of waited-for children lands in this shell's cutime/cstime.
    nice -n "$NICE" cargo +nightly fuzz run -s "$SANITIZER" "$t" "$work" "corpus/$t" -- \
      -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      "${dict[@]}" >"$round_log" 2>&1 || status=$?
    t1=$(awk '{print $14+$15+$16+$17}' /proc/$$/stat)
    cat "$round_log" >>"$log"
    rounds=$((rounds + 1))
    cpu=$((cpu + (t1 - t0) / $(getconf CLK_TCK)))
    round_execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$round_log" | tail -1)
    if [ -z "$round_execs" ]; then
      round_execs=$(grep -o '^#[0-9]*' "$round_log" | tail -1 | tr -d '#')
    fi
    execs=$((execs + ${round_execs:-0}))
    rm -f "$round_log"
    if [ "$status" -ne 0 ] || [ "$cpu" -ge "$CPU_BUDGET" ]; then
      break
    fi
    echo "   $t: round $rounds, ${cpu}s CPU of ${CPU_BUDGET}s, $execs executions"
  done
  elapsed=$(( $(date +%s) - start ))
  crashes=$(( $(find "artifacts/$t" -type f | wc -l) - before ))
  if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
    crashes=1 # died without an artifact (build or harness failure): see the log
  fi
  if [ "$crashes" -ne 0 ]; then
    failed=1
    tail -40 "$log"
  fi
  summary+=("$(printf '%-18s %12s %8s %8s %8s' "$t" "$execs" "$elapsed" "$cpu" "$crashes")")
done

echo
printf '%-18s %12s %8s %8s %8s\n' target executions seconds cpu_s crashes
printf '%s\n' "${summary[@]}"
exit "$failed"
