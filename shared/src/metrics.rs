//! CloudWatch metrics as Embedded Metric Format (EMF) log lines: one JSON object on its own
//! line, which CloudWatch Logs turns into metrics with no API call.

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde_json::{json, Map, Value};

use crate::types::Timestamp;

/// The namespace of every metric of the pipeline.
pub const NAMESPACE: &str = "NdjsonParquet";

/// Unit of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A number of things (files, rows, manifests); what [`Metrics::count`] records. EMF `Count`.
    Count,
    /// A size in plain bytes, not KiB or MB. EMF `Bytes`.
    Bytes,
    /// A duration in seconds, fractions allowed. EMF `Seconds`.
    Seconds,
    /// Megabytes per second.
    MegabytesPerSecond,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Bytes => "Bytes",
            Unit::Seconds => "Seconds",
            Unit::MegabytesPerSecond => "Megabytes/Second",
        }
    }
}

/// Metrics of one invocation, emitted together.
#[derive(Debug, Clone)]
pub struct Metrics {
    function: String,
    values: BTreeMap<&'static str, (f64, Unit)>,
}

impl Metrics {
    /// Metrics for the function (the one dimension, `Function`).
    pub fn new(function: impl Into<String>) -> Self {
        Metrics {
            function: function.into(),
            values: BTreeMap::new(),
        }
    }

    /// Adds to a metric (created at zero).
    pub fn add(&mut self, name: &'static str, value: f64, unit: Unit) {
        self.values.entry(name).or_insert((0.0, unit)).0 += value;
    }

    /// Adds one to a count.
    pub fn count(&mut self, name: &'static str, value: u64) {
        self.add(name, value as f64, Unit::Count);
    }

    /// The current value of a metric.
    pub fn get(&self, name: &str) -> f64 {
        self.values.get(name).map_or(0.0, |v| v.0)
    }

    /// The EMF document.
    pub fn to_emf(&self, now: Timestamp) -> Value {
        let definitions: Vec<Value> = self
            .values
            .iter()
            .map(|(name, (_, unit))| json!({"Name": name, "Unit": unit.as_str()}))
            .collect();
        let mut document = Map::new();
        document.insert(
            "_aws".into(),
            json!({
                "Timestamp": now.0,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Function"]],
                    "Metrics": definitions,
                }]
            }),
        );
        document.insert("Function".into(), json!(self.function));
        for (name, (value, _)) in &self.values {
            document.insert((*name).into(), json!(value));
        }
        Value::Object(document)
    }

    /// Writes the EMF line.
    pub fn emit(&self, now: Timestamp, out: &mut impl Write) -> io::Result<()> {
        serde_json::to_writer(&mut *out, &self.to_emf(now))?;
        out.write_all(b"\n")?;
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_lists_every_metric_with_its_unit_and_value() {
        let mut m = Metrics::new("manifest-builder");
        m.count("FilesTracked", 3);
        m.count("FilesTracked", 2);
        m.add("BytesIn", 10.0, Unit::Bytes);
        let mut out = Vec::new();
        m.emit(Timestamp(1_000), &mut out).unwrap();
        assert!(out.ends_with(b"\n") && !out[..out.len() - 1].contains(&b'\n'));
        let doc: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(doc["FilesTracked"], 5.0);
        assert_eq!(doc["Function"], "manifest-builder");
        assert_eq!(doc["_aws"]["Timestamp"], 1_000);
        let metrics = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(metrics["Namespace"], NAMESPACE);
        assert_eq!(
            metrics["Metrics"][0],
            json!({"Name": "BytesIn", "Unit": "Bytes"})
        );
    }
}
