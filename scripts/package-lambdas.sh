#!/usr/bin/env bash
# Builds the Lambda deployment packages the Terraform lambda module consumes, then checks them
# (scripts/check-lambda-packages.py):
#   dist/manifest-builder.zip  (bootstrap = the manifest-builder binary)
#   dist/converter.zip         (bootstrap = the converter-lambda binary)
#
# ARCH=arm64 (default, Graviton) or ARCH=x86_64. Cross-building uses cargo-lambda and its Zig
# linker, installed from PyPI (pinned in scripts/requirements-lambda.txt) into .venv-lambda; Zig
# links against an older glibc than most build machines have, so the binaries run on Lambda's
# provided.al2023 runtime (glibc 2.34), which the check verifies. The binaries are built with
# the `release-lambda` profile (Cargo.toml): release code, stripped.
#
# LAMBDA_PROFILE=lambda-check (the test suite) builds them unoptimised into
# target/lambda-check/ instead of dist/: the same checks, in a fraction of the CPU time, and
# nothing that could be deployed by mistake.
set -euo pipefail
cd "$(dirname "$0")/.."

arch=${ARCH:-arm64}
case "$arch" in
  arm64) target=aarch64-unknown-linux-gnu; flag=--arm64 ;;
  x86_64) target=x86_64-unknown-linux-gnu; flag=--x86-64 ;;
  *) echo "ARCH must be arm64 or x86_64" >&2; exit 2 ;;
esac
profile=${LAMBDA_PROFILE:-release-lambda}
case "$profile" in
  release-lambda) dist=dist ;;
  lambda-check) dist=${CARGO_TARGET_DIR:-target}/lambda-check ;;
  *) echo "LAMBDA_PROFILE must be release-lambda or lambda-check" >&2; exit 2 ;;
esac

venv=.venv-lambda
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r scripts/requirements-lambda.txt
if ! rustup target list --installed | grep -qx "$target"; then
  rustup target add "$target"
fi

# cargo-lambda copies each binary to <target dir>/lambda/<binary>/bootstrap, and only warns when
# it finds none: remove the previous ones so a stale binary can never be packaged.
target_dir=${CARGO_TARGET_DIR:-target}
binaries=(manifest-builder converter-lambda)
for binary in "${binaries[@]}"; do
  rm -f "$target_dir/lambda/$binary/bootstrap"
done
# --workspace: without it cargo-lambda only sees the root package's binaries.
# --features converter/aws: the converter Lambda is part of the AWS edge (the builder's is on
# by default).
PATH="$PWD/$venv/bin:$PATH" cargo lambda build --profile "$profile" --locked "$flag" --workspace \
  --features converter/aws --bin manifest-builder --bin converter-lambda

mkdir -p "$dist"
package() {
  local binary=$1 function=$2
  python3 - "$target_dir/lambda/$binary/bootstrap" "$dist/$function.zip" <<'PY'
import os, shutil, sys, zipfile
source, destination = sys.argv[1], sys.argv[2]
partial = destination + ".partial"
with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    # A fixed timestamp: the same binary gives the same zip (and Terraform's source hash).
    info = zipfile.ZipInfo("bootstrap", date_time=(1980, 1, 1, 0, 0, 0))
    info.create_system = 3  # Unix, so the mode below is honoured
    info.external_attr = 0o100755 << 16  # a regular, executable file, as provided.al2023 requires
    info.compress_type = zipfile.ZIP_DEFLATED
    with open(source, "rb") as f, z.open(info, "w") as entry:
        shutil.copyfileobj(f, entry, 1 << 20)
os.replace(partial, destination)
PY
}
package manifest-builder manifest-builder
package converter-lambda converter

python3 scripts/check-lambda-packages.py --arch "$arch" "$dist/manifest-builder.zip" "$dist/converter.zip"
