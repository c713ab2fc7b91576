#!/usr/bin/env bash
# The whole test suite, from a fresh clone. It installs what the tests need -- a project-local
# Python venv with pinned pyarrow and duckdb (independent Parquet readers) and moto's server
# (the local AWS emulator) -- starts the emulator on 127.0.0.1, then runs formatting and lint
# checks and every Rust test against it.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step says when it starts, so a slow suite shows where its time goes.
step() { echo "== [$((SECONDS / 60))m$((SECONDS % 60))s] $*"; }

# rust-toolchain.toml pins the toolchain the project is tested with. rustup cannot download
# one here: when the machine's stable toolchain is that version under another name, give it
# the pinned name (a link); if it is another version, run with it and say so loudly.
channel=$(sed -n 's/^channel = "\(.*\)"$/\1/p' rust-toolchain.toml)
host=$(rustup run stable rustc -vV | sed -n 's/^host: //p')
toolchains="$(rustup show home)/toolchains"
if [ ! -e "$toolchains/$channel-$host" ]; then
  if rustup run stable rustc --version | grep -q "^rustc $channel "; then
    ln -s "$toolchains/stable-$host" "$toolchains/$channel-$host"
  else
    echo "WARNING: the pinned toolchain $channel is not installed; running with $(rustup run stable rustc --version)" >&2
    export RUSTUP_TOOLCHAIN=stable
  fi
fi

step "Python packages and the AWS emulator"
venv=.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
export NDJSON_PARQUET_PYTHON="$PWD/$venv/bin/python"

# The AWS emulator, on a free loopback port, stopped when this script ends.
mkdir -p target
port=$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$venv/bin/moto_server" -H 127.0.0.1 -p "$port" > target/moto.log 2>&1 &
moto_pid=$!
packages_pid=
# On the way out: the emulator, and the Lambda packages' build if it still runs (its own
# process group, see below).
trap 'kill "$moto_pid" 2>/dev/null || true; [ -z "$packages_pid" ] || kill -- "-$packages_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if "$venv/bin/python" -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=1)" \
      "http://127.0.0.1:$port/moto-api/" 2> /dev/null; then
    break
  fi
  if ! kill -0 "$moto_pid" 2>/dev/null; then
    echo "the AWS emulator did not start:" >&2
    cat target/moto.log >&2
    exit 1
  fi
  sleep 0.2
done
export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN

# Incremental compilation caches are only useful to an edit-compile loop, and take gigabytes.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

step "formatting"
cargo fmt --all -- --check

# Terraform, with no provider registry reachable: fmt when a terraform binary is present;
# static checks (interfaces, references, encryption, alarms, IAM, environment, what would only
# fail at deployment) and statelint, with python-hcl2 and statelint in their own venv; checkov
# in its own venv. Then, with the provider's filesystem mirror and the provider 6 schema from
# npm (cached under target/provider-schemas), every argument against providers 5 and 6,
# terraform validate of the examples and terraform test at plan time (each step skipped with a
# loud "SKIPPED:" line when its tool is missing), and the checkers' own unit tests.
step "Terraform checks"
if command -v terraform > /dev/null; then
  terraform fmt -check -recursive terraform
  terraform fmt -check -recursive tests/terraform/plan
else
  echo "terraform fmt: skipped (no terraform binary on this machine)"
fi
for tool in hcl checkov; do
  if [ ! -x ".venv-$tool/bin/python" ]; then
    python3 -m venv ".venv-$tool"
  fi
  ".venv-$tool/bin/python" -m pip install --quiet --disable-pip-version-check -r "tests/terraform/requirements-$tool.txt"
done
.venv-hcl/bin/python tests/terraform/check_terraform.py .
.venv-checkov/bin/checkov -d terraform --framework terraform --skip-download --quiet --compact
.venv-hcl/bin/python tests/terraform/check_providers.py .
.venv-hcl/bin/python tests/terraform/test_checks.py

# Clippy lints the workspace with every feature in the test build below: clippy-driver is the
# compiler of the workspace's own crates there (RUSTC_WORKSPACE_WRAPPER and CLIPPY_ARGS, what
# `cargo clippy` itself sets), so the dependencies are compiled once for linting and testing
# (a separate `cargo clippy` checked them all again: 7 minutes of a cold run). The
# fault-injection seam only adds code (nothing is compiled out by it), so that pass lints
# everything the default build has too. Here: the core without the AWS edge.
step "clippy"
faults="manifest-builder/fault-injection,converter/fault-injection"
features="converter/aws,shared/fault-injection,$faults"
lint=(env RUSTC_WORKSPACE_WRAPPER="$(rustup which clippy-driver)" CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__")
cargo clippy -p shared -p manifest-builder --no-default-features --all-targets --locked -- -D warnings
# The README's first command, exactly as a newcomer types it (a bin added to the root package
# once broke it unnoticed), and its output read back by an independent reader.
step "quick start"
quickstart=$(sed -n '/^## Quick start/,/^## Architecture/p' README.md | grep -m1 '^cargo run')
echo "quick start: $quickstart"
eval "$quickstart"
"$venv/bin/python" -c "import pyarrow.parquet as pq; n = pq.ParquetFile('sample.parquet').metadata.num_rows; assert n == 120, n; print('sample.parquet:', n, 'rows')"

# The local CLI has no S3 support: an s3:// path is refused with what to do, not a crash.
if "${CARGO_TARGET_DIR:-target}/release/ndjson-parquet" convert s3://bucket/key.ndjson -o /dev/null 2> target/no-s3.txt; then
  echo "a CLI built without the aws feature accepted an s3:// input" >&2
  exit 1
fi
grep -q -- "--features aws" target/no-s3.txt || { cat target/no-s3.txt >&2; exit 1; }

# AWS at the edges: the core builds with no AWS SDK, async runtime or Lambda runtime.
step "dependency boundaries"
./scripts/check-dependencies.sh

# One debug build lints (see "clippy"), and serves the tests and the end-to-end suite: the
# tests run with the fault-injection seam compiled in (inert without a plan in
# NDJSON_PARQUET_FAULTS), and the binaries cargo test builds for the integration tests
# (target/debug/manifest-builder and converter-lambda) are the Lambda processes of the
# end-to-end suite. Separate feature sets cost two more builds of the AWS SDK: about 13
# minutes of a cold run.
# All targets: the criterion benchmarks too, which run once each in criterion's test mode (no
# measurement; `cargo bench -- --test` does the same), so a benchmark that cannot run fails
# here like a test. In this build, not the release one: a `bench` build compiled arrow,
# parquet and criterion again (6 minutes of a cold run) for one pass over 24 MB a shape.
# `--all-targets` leaves out the documentation tests: they run next, from the same build.
step "cargo test (and clippy -D warnings on every target it builds)"
"${lint[@]}" cargo test --workspace --locked --features "$features" --all-targets
"${lint[@]}" cargo test --workspace --locked --features "$features" --doc

# Fuzzing: cargo fuzz (from crates.io, into target/tools) on the machine's nightly toolchain,
# both targets (the whole conversion with option combinations, and the decoder against
# inference and serde_json), from the checked-in corpus. A gate must not be a lottery, so the
# suite's runs are deterministic (fixed seed and number of inputs, about 40 s each); longer,
# random runs are for `cargo fuzz run` by hand (README, "Fuzzing"), and what they find goes into
# the corpus. The invariants are converter/tests/invariants; `cargo test` above already
# replayed the corpus on stable. A crash fails the suite and leaves its input in fuzz/artifacts.
step "fuzzing"
if rustup run nightly rustc --version > /dev/null 2>&1; then
  # A debug build of the tool: it only drives cargo and libFuzzer (35 s to build instead of 48).
  cargo install --locked --quiet --debug cargo-fuzz --version 0.13.2 --root target/tools
  for run in convert:4000 decode:8000; do
    target=${run%%:*}
    rm -rf "target/fuzz-corpus/$target" && mkdir -p "target/fuzz-corpus/$target"
    (cd fuzz && PATH="$PWD/../target/tools/bin:$PATH" cargo +nightly fuzz run --sanitizer none -O "$target" \
      "../target/fuzz-corpus/$target" "corpus/$target" -- \
      -seed=1 -runs="${run##*:}" -max_len=65536 -rss_limit_mb=2048 -timeout=30 -print_final_stats=1) \
      2>&1 | tail -n 25
  done
else
  echo "SKIPPED: fuzzing (no nightly toolchain on this machine; the corpus was replayed by cargo test)"
fi

# The Lambda deployment packages as they are deployed: cross-built for arm64 (provided.al2023),
# stripped, then checked: `bootstrap` at each zip's root, an aarch64 executable needing glibc
# <= 2.34 and only glibc, and a start under qemu that must stop at the configuration check.
# qemu-user comes from Debian; where it cannot be installed, the start is skipped loudly.
# The cross-build (a quarter of an hour on two cores) runs at the lowest priority while the
# end-to-end suite below runs: that suite mostly waits (visibility timeouts, the converter's
# timeout), so the build takes the idle CPU, and the suite's processes come first.
if ! command -v qemu-aarch64 > /dev/null && command -v apt-get > /dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq qemu-user libc6-arm64-cross) > target/apt.log 2>&1 \
    || echo "qemu-user could not be installed (see target/apt.log)"
fi
# A no-op after the tests above (the same command and features): it makes sure the end-to-end
# suite's binaries are there before anything else uses cargo.
"${lint[@]}" cargo test --workspace --locked --features "$features" --no-run
step "Lambda packages (in the background)"
setsid nice -n 19 ./scripts/package-lambdas.sh > target/lambda-packages.log 2>&1 &
packages_pid=$!

# End to end: the local AWS bridge's own tests, then the whole pipeline (moto in-process, the
# state machine Terraform renders, the binaries as Lambda processes, faults injected), which
# writes its figures to tests/RELIABILITY.md.
# The IAM evaluator (pinned npm packages) behind the end-to-end suite's IAM audit.
step "end to end"
(cd tests/iam && npm ci --silent --no-audit --no-fund)
"$venv/bin/python" -m unittest discover -s tools/local_aws/tests -t .
"$venv/bin/python" -m unittest discover -s tools/slow_s3/tests -t .
e2e=0
"$venv/bin/python" tests/e2e/run.py --binaries "${CARGO_TARGET_DIR:-target}/debug" --summary tests/RELIABILITY.md || e2e=$?

step "Lambda packages"
packages=0
wait "$packages_pid" || packages=$?
packages_pid=
tail -n 40 target/lambda-packages.log
if [ "$packages" -ne 0 ]; then
  echo "the Lambda packages failed (exit $packages): target/lambda-packages.log" >&2
fi
if [ "$e2e" -ne 0 ] || [ "$packages" -ne 0 ]; then
  exit 1
fi
step "done"
