#!/usr/bin/env bash
# AWS stays at the edges, by the build: the conversion core, the domain types, the store traits
# and the manifest runner compile with no AWS SDK, async runtime, HTTP stack or Lambda runtime.
# Each library is resolved on its own (`-p`, no default features); its normal and build
# dependencies must name none of them, and the tests of the core (converter, shared) may not
# pull an AWS SDK either. (manifest-builder's emulator tests drive S3, SQS and Step Functions
# directly, as dev-dependencies; its library is checked like the others.)
set -euo pipefail
cd "$(dirname "$0")/.."

edge='^(aws-|tokio|hyper|lambda_runtime|lambda-runtime|h2 )'
status=0
for package in converter shared manifest-builder; do
  built=$(cargo tree --locked -p "$package" --no-default-features -e normal,build --prefix none)
  tested=$(cargo tree --locked -p "$package" --no-default-features --prefix none)
  found=$(grep -E "$edge" <<< "$built" | sort -u || true)
  if [ -n "$found" ]; then
    echo "$package (no default features) depends on the AWS edge:" >&2
    echo "$found" >&2
    status=1
  fi
  # The converter's tests need no async runtime either (the in-memory stores never wait).
  tests_edge='^aws-'
  [ "$package" = converter ] && tests_edge="$edge"
  found=$(grep -E "$tests_edge" <<< "$tested" | sort -u || true)
  if [ -n "$found" ] && [ "$package" != manifest-builder ]; then
    echo "$package's tests (no default features) pull the AWS edge:" >&2
    echo "$found" >&2
    status=1
  fi
  echo "$package without default features: $(sort -u <<< "$built" | wc -l) crates, none of the AWS edge"
done
# The edge is really behind the feature: with it, the converter does have the SDK.
if ! cargo tree --locked -p converter --features aws -e normal --prefix none | grep -q '^aws-sdk-s3'; then
  echo "converter --features aws has no aws-sdk-s3: the check above proves nothing" >&2
  status=1
fi
exit $status
