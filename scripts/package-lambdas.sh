#!/usr/bin/env bash
# Builds the Lambda deployment packages the Terraform lambda module consumes:
#   dist/manifest-builder.zip  (bootstrap = the manifest-builder binary)
#   dist/converter.zip         (bootstrap = the converter-lambda binary)
#
# ARCH=arm64 (default, Graviton) or ARCH=x86_64. Cross-building uses cargo-lambda, installed
# from PyPI into .venv-lambda (it bundles Zig as the cross linker and targets the glibc of
# Lambda's provided.al2023 runtime, which is older than most build machines').
set -euo pipefail
cd "$(dirname "$0")/.."

arch=${ARCH:-arm64}
case "$arch" in
  arm64) target=aarch64-unknown-linux-gnu; flag=--arm64 ;;
  x86_64) target=x86_64-unknown-linux-gnu; flag=--x86-64 ;;
  *) echo "ARCH must be arm64 or x86_64" >&2; exit 2 ;;
esac

venv=.venv-lambda
if [ ! -x "$venv/bin/cargo-lambda" ]; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "cargo-lambda==1.9.2"
fi
rustup target add "$target" >/dev/null
PATH="$PWD/$venv/bin:$PATH" cargo lambda build --release --locked "$flag" \
  --bin manifest-builder --bin converter-lambda

mkdir -p dist
package() {
  local binary=$1 function=$2
  python3 - "$PWD/target/lambda/$binary/bootstrap" "dist/$function.zip" <<'PY'
import sys, zipfile
source, destination = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(destination, "w", zipfile.ZIP_DEFLATED) as z:
    info = zipfile.ZipInfo("bootstrap")
    info.external_attr = 0o755 << 16  # executable, as provided.al2023 requires
    info.compress_type = zipfile.ZIP_DEFLATED
    with open(source, "rb") as f:
        z.writestr(info, f.read())
PY
  echo "dist/$function.zip ($arch)"
}
package manifest-builder manifest-builder
package converter-lambda converter
