#!/usr/bin/env bash
# Builds the libFuzzer harnesses (Sources/Fuzzing) and runs them one at a time; see docs/fuzzing.md.
#
#   scripts/fuzz.sh [TARGET...]         all targets when none is named, e.g. GorReader HTTPFramer
#   FUZZ_SECONDS=60                     how long each target runs (default 60)
#   FUZZ_RUNS=1000000                   run this many inputs instead (no time limit)
#   FUZZ_BUILD=0                        use the harnesses already built
#
# The sanitizer build goes to .build-fuzz; runs write under .build-fuzz-runs: each target's growing
# corpus (corpus/TARGET, seeded read-only from Tests/FuzzCorpus/TARGET), logs/TARGET.log and any
# failing input (artifacts/TARGET/crash-*). Exits non-zero when a target crashes or breaks an
# invariant, after running the rest.
set -euo pipefail
cd "$(dirname "$0")/.."

all_targets=(FabricCommandLine Inventory Playbook KnownHosts SSHConfig GorReader HTTPFramer TCPReassembler)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
for target in "${targets[@]}"; do
  [ -d "Tests/FuzzCorpus/$target" ] || { echo "fuzz: unknown target '$target' (known: ${all_targets[*]})" >&2; exit 2; }
done

SWIFT=${SWIFT:-swift}
scratch=.build-fuzz
# The fuzz targets exist in Package.swift only with GOVUK_FAB_FUZZ set. Every Swift module is
# instrumented for coverage and AddressSanitizer; -enable-testing lets harnesses reach internal
# parsers (@testable import), as the unit tests do; lld links libFuzzer where gold fails.
build_flags=(-c release --scratch-path "$scratch"
  -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing -Xswiftc -use-ld=lld)

if [ "${FUZZ_BUILD:-1}" != 0 ]; then
  started=$(date +%s)
  for target in "${targets[@]}"; do
    GOVUK_FAB_FUZZ=1 "$SWIFT" build "${build_flags[@]}" --product "Fuzz$target"
  done
  echo "fuzz: built ${targets[*]} in $(( $(date +%s) - started )) s"
fi
bin=$(GOVUK_FAB_FUZZ=1 "$SWIFT" build "${build_flags[@]}" --show-bin-path)

if [ -n "${FUZZ_RUNS:-}" ]; then
  limit=(-runs="$FUZZ_RUNS")
else
  limit=(-max_total_time="${FUZZ_SECONDS:-60}")
fi

# Leaks inside the Swift toolchain's libraries, not project code (see the file).
export LSAN_OPTIONS="suppressions=$PWD/Sources/Fuzzing/lsan-suppressions.txt${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
# libFuzzer reports a crash itself; Swift's backtracer, reading memory under ASan, only adds noise.
export SWIFT_BACKTRACE=enable=no

failed=()
for target in "${targets[@]}"; do
  corpus=.build-fuzz-runs/corpus/$target
  artifacts=.build-fuzz-runs/artifacts/$target
  log=.build-fuzz-runs/logs/$target.log
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  # One process (libFuzzer's default; the machine is shared). New inputs go to the first
  # directory only, so the seed corpus in Tests/ is never modified.
  command=("$bin/Fuzz$target" "${limit[@]}" -print_final_stats=1 -artifact_prefix="$artifacts/"
    "$corpus" "Tests/FuzzCorpus/$target")
  echo "fuzz: ${command[*]}"
  started=$(date +%s)
  status=0
  "${command[@]}" >"$log" 2>&1 || status=$?
  seconds=$(( $(date +%s) - started ))
  runs=$(LC_ALL=C sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1 || true)
  speed=$(LC_ALL=C sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1 || true)
  coverage=$(grep -aoE '^#[0-9]+[[:space:]]+[A-Z]+ +cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -1 | sed -E 's/.*(cov: .*)/\1/' || true)
  if [ "$status" -eq 0 ]; then
    echo "fuzz: $target: ${runs:-?} runs in $seconds s (${speed:-?} exec/s), ${coverage:-no coverage line}, no crash"
  else
    failed+=("$target")
    echo "fuzz: $target FAILED (exit $status) after $seconds s; log $log" >&2
    grep -aE 'invariant broken|ERROR: AddressSanitizer|ERROR: libFuzzer|Fatal error|Test unit written' "$log" | head -5 >&2 || true
    echo "fuzz: reproduce with: $bin/Fuzz$target $artifacts/<crash-, oom- or timeout- file>" >&2
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failures in ${failed[*]}" >&2
  exit 1
fi
