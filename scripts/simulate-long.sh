#!/usr/bin/env bash
# A long run of the deterministic simulation (manifest-builder/tests/simulation.rs), in chunks,
# resumable: the test suite runs 1,500 seeds; this runs any range of seeds beyond, with an
# optimised build of the test (the same code and checks), and appends one line per chunk to a
# log. A failing chunk stops the run and prints the command that reproduces its first failing
# seed.
#
#   scripts/simulate-long.sh FIRST COUNT [CHUNK]     # seeds FIRST .. FIRST+COUNT-1
#   SIMULATION_LOG=path  (default tests/simulation-long.log, kept in the repository: the
#                        record of which seeds passed, with which commit)
#
# Beside other work, run it at a low priority. Where the kernel groups processes by session
# for scheduling (autogroup: /proc/sys/kernel/sched_autogroup_enabled), `nice` only ranks
# processes within one session, so lower the session's own priority instead:
#   setsid bash -c 'echo 19 > /proc/self/autogroup; exec scripts/simulate-long.sh --resume 100000'
# The log says which seeds passed, so the next run starts where the last one stopped (`--resume`
# instead of FIRST picks the seed after the highest chunk that passed).
set -euo pipefail
cd "$(dirname "$0")/.."

log=${SIMULATION_LOG:-tests/simulation-long.log}
if [ "${1:-}" = "--resume" ]; then
  first=$(awk '$1 == "pass" { split($2, r, "-"); if (r[2] + 1 > n) n = r[2] + 1 } END { print n + 0 }' "$log" 2>/dev/null || echo 0)
else
  first=${1:?usage: simulate-long.sh FIRST|--resume COUNT [CHUNK]}
fi
count=${2:?usage: simulate-long.sh FIRST|--resume COUNT [CHUNK]}
chunk=${3:-2000}

# The suite's build, with the builder's and the ledger's crates optimised further (opt-level 3
# instead of 1), debug assertions and overflow checks kept. A separate target directory, so that the suite's build (and the end-to-end
# binaries in target/debug) are left alone.
export CARGO_TARGET_DIR=${SIMULATION_TARGET_DIR:-target/simulation-opt}
opt=(--config profile.dev.package.shared.opt-level=3 --config profile.dev.package.manifest-builder.opt-level=3)
binary=$(cargo test --locked -p manifest-builder --test simulation --no-run --message-format=json "${opt[@]}" 2>/dev/null |
  python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "simulation" and m.get("executable"):
        print(m["executable"])')
[ -x "$binary" ] || { echo "could not build the simulation test" >&2; exit 1; }
# The commit the binary was built from (a chunk's line names it even if HEAD moves meanwhile).
commit=$(git describe --always --exclude '*')
git diff --quiet HEAD -- . ":(exclude)$log" || commit+=-dirty  # the log itself is not a change

# The simulation mostly allocates (items, refs, futures): with mimalloc preloaded it takes about
# a quarter less CPU for the same outcomes (Debian's libmimalloc2.0; used when installed).
preload=$(ls /usr/lib/*-linux-gnu/libmimalloc.so.2 2>/dev/null | head -n 1 || true)

mkdir -p "$(dirname "$log")"
end=$((first + count))
for ((start = first; start < end; start += chunk)); do
  n=$((end - start < chunk ? end - start : chunk))
  began=$(date +%s)
  if out=$(LD_PRELOAD=$preload SIMULATION_FIRST_SEED=$start SIMULATION_SEEDS=$n "$binary" --exact \
      every_version_is_converted_once_or_accounted_for_under_faults --nocapture 2>&1); then
    totals=$(grep -o 'simulation: .*' <<< "$out" | tail -n 1)
    echo "pass $start-$((start + n - 1)) $(( $(date +%s) - began ))s $commit $totals" | tee -a "$log"
  else
    echo "FAIL $start-$((start + n - 1)) $commit" | tee -a "$log"
    grep -E '^seed [0-9]+:|reproduce with' <<< "$out" | head -n 5 | tee -a "$log"
    exit 1
  fi
done
