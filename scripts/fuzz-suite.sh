#!/usr/bin/env bash
# The test suite's fuzzing (scripts/test.sh runs it): cargo fuzz (from crates.io, into
# target/tools) on the machine's nightly toolchain, both targets (the whole conversion with
# option combinations, and the decoder against inference and serde_json), from the checked-in
# corpus. A gate must not be a lottery, so these runs are deterministic in what they try (fixed
# seed and number of inputs); longer, random runs are for `cargo fuzz run` by hand (README,
# "Fuzzing"), and what they find goes into the corpus. The invariants are
# converter/tests/invariants. A crash fails and leaves its input in fuzz/artifacts.
#
# The targets start threads, so which inputs run is fixed but not every interleaving: a finding
# may show up in one run and not the next. Keep every finding (fuzz/artifacts) as a corpus file
# once it is fixed.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup run nightly rustc --version > /dev/null 2>&1; then
  echo "SKIPPED: fuzzing (no nightly toolchain on this machine; the corpus was replayed by cargo test)"
  exit 0
fi
# A debug build of the tool: it only drives cargo and libFuzzer (35 s to build instead of 48).
cargo install --locked --quiet --debug cargo-fuzz --version 0.13.2 --root target/tools
for run in convert:4000 decode:8000; do
  target=${run%%:*}
  rm -rf "target/fuzz-corpus/$target" && mkdir -p "target/fuzz-corpus/$target"
  # -timeout is per input, in wall-clock time: generous, as the suite runs this beside the
  # end-to-end suite at a lower priority (an input takes milliseconds; a hang still fails).
  (cd fuzz && PATH="$PWD/../target/tools/bin:$PATH" cargo +nightly fuzz run --sanitizer none -O "$target" \
    "../target/fuzz-corpus/$target" "corpus/$target" -- \
    -seed=1 -runs="${run##*:}" -max_len=65536 -rss_limit_mb=2048 -timeout=180 -print_final_stats=1) \
    2>&1 | tail -n 25
done
