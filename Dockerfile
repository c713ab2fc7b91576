# The converter for AWS Batch: `ndjson-parquet run-manifest s3://bucket/manifest.json`,
# configured by the same environment variables as the converter Lambda.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p converter --features aws --bin ndjson-parquet

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin converter
COPY --from=build /src/target/release/ndjson-parquet /usr/local/bin/ndjson-parquet
USER 10001
ENTRYPOINT ["/usr/local/bin/ndjson-parquet"]
CMD ["--help"]
