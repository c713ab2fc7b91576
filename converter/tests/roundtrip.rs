//! Property: random nested JSON records survive NDJSON → Parquet → read-back with exactly the
//! values and types the widening rules promise, whatever the thread count, and the schema a
//! conversion ends with (sampling and widening on the fly) is the one inferring the whole
//! input first would give.

mod common;

use std::sync::Arc;

use common::{batch_rows, expected_row, read_parquet_bytes, InMemory, Timestamps};
use converter::convert::{
    convert, infer_schema, ConvertError, ConvertOptions, NoProgress, Summary,
};
use converter::input::{MemorySource, Source};
use proptest::prelude::*;
use serde_json::{Map, Value};

const KEYS: &[&str] = &["a", "b", "c", "id", "ts", "nested", "ü", "with space"];

fn timestamp_string() -> impl Strategy<Value = String> {
    (
        1900u32..2200,
        1u32..13,
        1u32..29,
        0u32..24,
        0u32..60,
        0u32..60,
        prop_oneof![
            Just(String::new()),
            "[0-9]{1,6}".prop_map(|f| format!(".{f}"))
        ],
        prop_oneof![
            Just("Z".to_string()),
            Just("+02:00".to_string()),
            Just("-0530".to_string())
        ],
    )
        .prop_map(|(y, mo, d, h, mi, s, frac, zone)| {
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}{zone}")
        })
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1000i64..1000).prop_map(Value::from),
        (i64::MAX as u64..=u64::MAX).prop_map(Value::from),
        prop::num::f64::NORMAL.prop_map(Value::from),
        (-100.0f64..100.0).prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
        Just(Value::String(
            "quote \" backslash \\ newline \n tab \t".into()
        )),
        timestamp_string().prop_map(Value::String),
        Just(Value::String("2024-01-01T00:00:00".into())),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(KEYS), inner, 0..4).prop_map(|m| {
                Value::Object(
                    m.into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

fn record() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(prop::sample::select(KEYS), json_value(), 0..6)
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
}

fn run(text: &[u8], threads: usize, sample_rows: u64) -> Result<(Vec<u8>, Summary), ConvertError> {
    let sources: Vec<Arc<dyn Source>> =
        vec![Arc::new(MemorySource::new("p.ndjson", text.to_vec()))];
    let options = ConvertOptions {
        threads,
        sample_rows,
        chunk_bytes: 4096,
        ..ConvertOptions::default()
    };
    let converted = convert(&sources, &options, &mut InMemory, &NoProgress)?;
    Ok((converted.parts.concat(), converted.summary))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn records_round_trip_by_the_widening_rules(
        records in prop::collection::vec(record(), 1..40),
        sample_rows in 1u64..4,
        blank_every in 0usize..5,
    ) {
        let mut text = Vec::new();
        for (i, r) in records.iter().enumerate() {
            text.extend(serde_json::to_vec(r).unwrap());
            text.push(b'\n');
            if blank_every > 0 && i % blank_every == 0 {
                text.extend(b"  \n");
            }
        }
        let sources: Vec<Arc<dyn Source>> = vec![Arc::new(MemorySource::new("p.ndjson", text.clone()))];
        let full = infer_schema(&sources, &ConvertOptions::default(), None, &NoProgress).unwrap();

        if full.schema.fields.is_empty() {
            // Only `{}` records: refused, never silently written as a file without rows.
            let refused = matches!(run(&text, 1, sample_rows), Err(ConvertError::NoColumns { rows }) if rows == records.len() as u64);
            prop_assert!(refused);
            return Ok(());
        }
        let (parquet, summary) = run(&text, 1, sample_rows).unwrap();
        prop_assert_eq!(&summary.schema, &full.schema, "sampling + widening = inferring everything");
        prop_assert_eq!(summary.stats.rows, records.len() as u64);
        prop_assert_eq!(summary.stats.rejected, 0);
        prop_assert_eq!(summary.stats.lines, summary.stats.rows + summary.stats.blank);

        let expected: Vec<Value> = records.iter().map(|r| expected_row(r, &full.schema, Timestamps::Native)).collect();
        let actual = batch_rows(&read_parquet_bytes(parquet.clone()), Timestamps::Native);
        prop_assert_eq!(actual, expected);

        let (parallel, _) = run(&text, 3, sample_rows).unwrap();
        prop_assert!(parallel == parquet, "3 threads write the same bytes as 1");
    }
}
