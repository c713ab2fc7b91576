"""A slow S3 for benchmarks and fault tests: a local S3-compatible GET server (or a relay in
front of another endpoint) adding first-byte latency per request and a bandwidth cap per
connection. Standard library only. Run with `python -m tools.slow_s3` (see __main__.py)."""
