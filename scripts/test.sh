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
fuzz_pid=
# On the way out: the emulator, and the fuzzing and the Lambda packages' build if they still
# run (each its own process group, see below).
trap 'kill "$moto_pid" 2>/dev/null || true; for pid in $packages_pid $fuzz_pid; do kill -- "-$pid" 2>/dev/null || true; done' EXIT
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

# Two CPU-heavy steps run in the background while the end-to-end suite below runs: that suite
# mostly waits (visibility timeouts, the converter's timeout), so they take the idle CPU, at a
# lower priority than the suite's processes (fuzzing took 10 minutes of its own before it).
#
# Fuzzing (scripts/fuzz-suite.sh): both targets, deterministic runs from the checked-in corpus
# (`cargo test` above already replayed the corpus on stable).
#
# The Lambda deployment packages as they are deployed: cross-built for arm64 (provided.al2023),
# stripped, then checked: `bootstrap` at each zip's root, an aarch64 executable needing glibc
# <= 2.34 and only glibc, and a start under qemu that must stop at the configuration check.
# qemu-user comes from Debian; where it cannot be installed, the start is skipped loudly. They
# are built unoptimised (LAMBDA_PROFILE=lambda-check, into target/lambda-check): optimising
# them is 35 CPU-minutes the checks do not need; `./scripts/package-lambdas.sh` builds the
# deployed ones.
if ! command -v qemu-aarch64 > /dev/null && command -v apt-get > /dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq qemu-user libc6-arm64-cross) > target/apt.log 2>&1 \
    || echo "qemu-user could not be installed (see target/apt.log)"
fi
# A no-op after the tests above (the same command and features): it makes sure the end-to-end
# suite's binaries are there before anything else uses cargo.
"${lint[@]}" cargo test --workspace --locked --features "$features" --no-run
step "fuzzing and the Lambda packages (in the background)"
setsid nice -n 10 ./scripts/fuzz-suite.sh > target/fuzz-suite.log 2>&1 &
fuzz_pid=$!
LAMBDA_PROFILE=lambda-check setsid nice -n 19 ./scripts/package-lambdas.sh > target/lambda-packages.log 2>&1 &
packages_pid=$!

# End to end: the local AWS bridge's own tests, then the whole pipeline (moto in-process, the
# state machine Terraform renders, the binaries as Lambda processes, faults injected), which
# writes its figures to tests/RELIABILITY.md.
# The IAM evaluator (pinned npm packages) behind the end-to-end suite's IAM audit.
step "end to end"
(cd tests/iam && npm ci --silent --no-audit --no-fund)
"$venv/bin/python" -m unittest discover -s tools/local_aws/tests -t .
"$venv/bin/python" -m unittest discover -s tools/slow_s3/tests -t .
"$venv/bin/python" -m unittest discover -s tools/tests -t .
e2e=0
"$venv/bin/python" tests/e2e/run.py --binaries "${CARGO_TARGET_DIR:-target}/debug" --summary tests/RELIABILITY.md || e2e=$?

step "fuzzing"
fuzz=0
wait "$fuzz_pid" || fuzz=$?
fuzz_pid=
cat target/fuzz-suite.log
if [ "$fuzz" -ne 0 ]; then
  echo "fuzzing failed (exit $fuzz): target/fuzz-suite.log, inputs in fuzz/artifacts" >&2
fi

step "Lambda packages"
packages=0
wait "$packages_pid" || packages=$?
packages_pid=
tail -n 40 target/lambda-packages.log
if [ "$packages" -ne 0 ]; then
  echo "the Lambda packages failed (exit $packages): target/lambda-packages.log" >&2
fi
if [ "$e2e" -ne 0 ] || [ "$fuzz" -ne 0 ] || [ "$packages" -ne 0 ]; then
  exit 1
fi
step "done"
