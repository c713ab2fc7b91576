//! Throughput benchmarks of the converter's stages, on deterministic generated data (see
//! `src/datagen.rs`): decoding NDJSON chunks into Arrow (ours, and arrow-json's decoder as the
//! baseline), encoding Arrow to Parquet per codec, and whole conversions with 1 and all threads.
//!
//! `cargo bench --bench convert` (criterion; results in target/criterion). Sizes are kept
//! small enough for a 2-core machine; `benches/compare.sh` measures whole processes on 1 GB.

use std::sync::Arc;

use arrow::array::RecordBatch;
use converter::chunk::{Chunk, Chunker, Piece};
use converter::convert::{
    convert, infer_schema, ConvertOptions, Destination, NoProgress, SchemaChoice,
};
use converter::decode::{DecodeMode, RecordDecoder};
use converter::input::{MemorySource, Source};
use converter::parquet_options::{Codec, ParquetOptions};
use converter::schema::Schema;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndjson_parquet_suite::datagen::{generate, Shape};

const SHAPES: [(&str, Shape); 3] = [
    ("clickstream", Shape::Clickstream),
    ("logs", Shape::Logs),
    ("wide", Shape::Wide),
];
const BYTES: u64 = 24 * 1024 * 1024;

struct Data {
    text: Arc<[u8]>,
    schema: Schema,
    chunks: Vec<Chunk>,
}

fn data(shape: Shape) -> Data {
    let mut text = Vec::new();
    generate(shape, 7, BYTES, &mut text).expect("generation writes to memory");
    let text: Arc<[u8]> = text.into();
    let sources: Vec<Arc<dyn Source>> =
        vec![Arc::new(MemorySource::new("bench", Arc::clone(&text)))];
    let schema = infer_schema(&sources, &ConvertOptions::default(), None, &NoProgress)
        .expect("inference")
        .schema;
    let chunks = Chunker::new(&text[..], 0, 1024 * 1024, 16 << 20)
        .filter_map(|p| match p.expect("in-memory reads") {
            Piece::Lines(chunk) => Some(chunk),
            Piece::TooLong(_) => None,
        })
        .collect();
    Data {
        text,
        schema,
        chunks,
    }
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    group.sample_size(10);
    for (name, shape) in SHAPES {
        let d = data(shape);
        group.throughput(Throughput::Bytes(d.text.len() as u64));
        let decoder = RecordDecoder::new(
            &d.schema,
            DecodeMode::Fixed {
                unknown_fields: Default::default(),
                type_mismatch: Default::default(),
            },
            16 << 20,
        );
        group.bench_function(BenchmarkId::new("ours", name), |b| {
            b.iter(|| {
                let rows: usize = d
                    .chunks
                    .iter()
                    .map(|chunk| decoder.decode(chunk).batch.map_or(0, |b| b.num_rows()))
                    .sum();
                assert!(rows > 0);
            })
        });
        // arrow-json, the decoder most Rust tools use, on the same bytes.
        let arrow_schema = Arc::new(arrow_json_schema(&d.schema.to_arrow(), &d.text));
        group.bench_function(BenchmarkId::new("arrow-json", name), |b| {
            b.iter(|| {
                let mut decoder = arrow_json::ReaderBuilder::new(Arc::clone(&arrow_schema))
                    .with_batch_size(8192)
                    .with_coerce_primitive(true)
                    .build_decoder()
                    .expect("decoder");
                let mut rows = 0;
                let mut rest = &d.text[..];
                while !rest.is_empty() {
                    let consumed = decoder.decode(rest).expect("valid data");
                    rest = &rest[consumed..];
                    if let Some(batch) = decoder.flush().expect("flush") {
                        rows += batch.num_rows();
                    }
                }
                assert!(rows > 0);
            })
        });
    }
    group.finish();
}

/// The Arrow schema arrow-json decodes with: its own inference over the same bytes (what a user
/// of arrow-json would run; our schema can hold values it cannot decode, such as `{}` in a
/// string column), with our timestamp columns overlaid so both decoders parse the same
/// timestamps. Zones are written as offsets (`+00:00`), the only spelling arrow-json accepts
/// without its `chrono-tz` feature.
fn arrow_json_schema(ours: &arrow::datatypes::Schema, text: &[u8]) -> arrow::datatypes::Schema {
    use arrow::datatypes::{DataType, Field, Fields};
    fn overlay(inferred: &DataType, ours: Option<&DataType>) -> DataType {
        match (inferred, ours) {
            (DataType::Utf8, Some(DataType::Timestamp(unit, Some(_)))) => {
                DataType::Timestamp(*unit, Some("+00:00".into()))
            }
            (DataType::Struct(fields), Some(DataType::Struct(our_fields))) => {
                DataType::Struct(overlay_fields(fields, Some(our_fields)))
            }
            (DataType::List(item), Some(DataType::List(our_item))) => DataType::List(Arc::new(
                item.as_ref()
                    .clone()
                    .with_data_type(overlay(item.data_type(), Some(our_item.data_type()))),
            )),
            (other, _) => other.clone(),
        }
    }
    fn overlay_fields(fields: &Fields, ours: Option<&Fields>) -> Fields {
        fields
            .iter()
            .map(|f| {
                let our_type = ours
                    .and_then(|o| o.find(f.name()))
                    .map(|(_, field)| field.data_type());
                Field::clone(f).with_data_type(overlay(f.data_type(), our_type))
            })
            .collect()
    }
    let (inferred, _) =
        arrow_json::reader::infer_json_schema(text, None).expect("arrow-json infers a schema");
    arrow::datatypes::Schema::new(overlay_fields(inferred.fields(), Some(ours.fields())))
}

fn batches(d: &Data) -> Vec<RecordBatch> {
    let decoder = RecordDecoder::new(
        &d.schema,
        DecodeMode::Fixed {
            unknown_fields: Default::default(),
            type_mismatch: Default::default(),
        },
        16 << 20,
    );
    d.chunks
        .iter()
        .filter_map(|c| decoder.decode(c).batch)
        .collect()
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    group.sample_size(10);
    for (name, shape) in SHAPES {
        let d = data(shape);
        let batches = batches(&d);
        // Throughput in NDJSON bytes, so that stages compare on the same scale.
        group.throughput(Throughput::Bytes(d.text.len() as u64));
        for codec in ["snappy", "zstd", "lz4", "none"] {
            let options = ParquetOptions {
                codec: codec.parse::<Codec>().expect("codec"),
                ..ParquetOptions::default()
            };
            group.bench_function(BenchmarkId::new(codec, name), |b| {
                b.iter(|| {
                    let mut writer = parquet::arrow::ArrowWriter::try_new(
                        Vec::with_capacity(8 << 20),
                        batches[0].schema(),
                        Some(options.writer_properties()),
                    )
                    .expect("writer");
                    for batch in &batches {
                        writer.write(batch).expect("write");
                    }
                    assert!(writer.into_inner().expect("close").len() > 4);
                })
            });
        }
    }
    group.finish();
}

struct InMemory;

impl Destination for InMemory {
    type Parquet = Vec<u8>;
    type Rejects = Vec<u8>;

    fn parquet(&mut self, _part: usize) -> std::io::Result<Vec<u8>> {
        Ok(Vec::with_capacity(8 << 20))
    }

    fn rejects(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        Ok(None)
    }
}

fn end_to_end(c: &mut Criterion) {
    let mut group = c.benchmark_group("end_to_end");
    group.sample_size(10);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (name, shape) in SHAPES {
        let d = data(shape);
        group.throughput(Throughput::Bytes(d.text.len() as u64));
        let sources: Vec<Arc<dyn Source>> =
            vec![Arc::new(MemorySource::new("bench", Arc::clone(&d.text)))];
        for threads in [1, cores] {
            let options = ConvertOptions {
                threads,
                schema: SchemaChoice::Infer,
                parquet: ParquetOptions {
                    codec: Codec::Zstd(Some(3)),
                    ..ParquetOptions::default()
                },
                ..ConvertOptions::default()
            };
            group.bench_function(
                BenchmarkId::new(format!("zstd-{threads}-threads"), name),
                |b| {
                    b.iter(|| {
                        let done = convert(&sources, &options, &mut InMemory, &NoProgress)
                            .expect("conversion");
                        assert!(done.summary.stats.rows > 0);
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, decode, encode, end_to_end);
criterion_main!(benches);
