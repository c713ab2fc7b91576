//! Parquet output settings: codec names (shared by the CLI's `--compression` and the
//! pipeline's `COMPRESSION_TYPE`), row groups, dictionary, statistics, metadata.

use std::fmt;
use std::str::FromStr;

use parquet::basic::{BrotliLevel, Compression, GzipLevel, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};

/// A Parquet compression codec and its level.
///
/// Names: `snappy`, `gzip[:1-9]`, `brotli[:0-11]`, `lz4`, `zstd[:1-22]`, `none`
/// (case-insensitive; `uncompressed` is accepted for `none`). `lz4` writes the `LZ4_RAW`
/// codec, the one current readers (pyarrow, DuckDB, Spark 3.3+) agree on. `lzo` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Codec {
    /// No compression (Parquet's `UNCOMPRESSED`); also parsed from `uncompressed`.
    None,
    /// Snappy (the default: fast, and what the original Glue job wrote).
    #[default]
    Snappy,
    /// gzip with an optional level (default 6).
    Gzip(Option<u32>),
    /// Brotli with an optional level (default 1).
    Brotli(Option<u32>),
    /// LZ4 (raw block format).
    Lz4,
    /// Zstandard with an optional level (default 3).
    Zstd(Option<i32>),
}

/// A codec name that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// LZO: named by Parquet, written by nobody here.
    #[error("`lzo` is not supported: no Rust Parquet writer implements LZO, and Athena, DuckDB and Spark read the alternatives equally well; use `snappy` (fast) or `zstd` (smaller)")]
    Lzo,
    /// Not a codec name at all.
    #[error("unknown compression `{0}` (expected snappy, gzip[:1-9], brotli[:0-11], lz4, zstd[:1-22] or none)")]
    Unknown(String),
    /// A level outside the codec's range.
    #[error("compression level `{level}` is out of range for {codec} (allowed: {range})")]
    Level {
        /// Lower-case codec name without level, as [`Codec::name`] gives it (`gzip`).
        codec: &'static str,
        /// The level text as given after the `:`, which may not even be a number.
        level: String,
        /// The allowed levels as shown to the user (`1-9`), or a note that the codec has none.
        range: &'static str,
    },
}

impl FromStr for Codec {
    type Err = CodecError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let lower = text.trim().to_ascii_lowercase();
        let (name, level) = match lower.split_once(':') {
            Some((name, level)) => (name, Some(level)),
            None => (lower.as_str(), None),
        };
        let parse_level = |codec: &'static str, range: &'static str, min: i64, max: i64| {
            level
                .map(|l| {
                    l.parse::<i64>()
                        .ok()
                        .filter(|v| (min..=max).contains(v))
                        .ok_or_else(|| CodecError::Level {
                            codec,
                            level: l.to_string(),
                            range,
                        })
                })
                .transpose()
        };
        let no_level = |codec: Codec| match level {
            None => Ok(codec),
            Some(l) => Err(CodecError::Level {
                codec: codec.name(),
                level: l.to_string(),
                range: "none; this codec has no level",
            }),
        };
        match name {
            "snappy" => no_level(Codec::Snappy),
            "none" | "uncompressed" => no_level(Codec::None),
            "lz4" | "lz4_raw" => no_level(Codec::Lz4),
            "gzip" => Ok(Codec::Gzip(
                parse_level("gzip", "1-9", 1, 9)?.map(|v| v as u32),
            )),
            "brotli" => Ok(Codec::Brotli(
                parse_level("brotli", "0-11", 0, 11)?.map(|v| v as u32),
            )),
            "zstd" => Ok(Codec::Zstd(
                parse_level("zstd", "1-22", 1, 22)?.map(|v| v as i32),
            )),
            "lzo" => Err(CodecError::Lzo),
            _ => Err(CodecError::Unknown(text.to_string())),
        }
    }
}

impl Codec {
    /// The codec's name without level.
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Snappy => "snappy",
            Codec::Gzip(_) => "gzip",
            Codec::Brotli(_) => "brotli",
            Codec::Lz4 => "lz4",
            Codec::Zstd(_) => "zstd",
        }
    }

    /// The parquet crate's codec value.
    pub fn to_parquet(self) -> Compression {
        let level = |l: Option<u32>, default: u32| l.unwrap_or(default);
        match self {
            Codec::None => Compression::UNCOMPRESSED,
            Codec::Snappy => Compression::SNAPPY,
            Codec::Gzip(l) => Compression::GZIP(
                GzipLevel::try_new(level(l, 6)).expect("invariant: gzip level validated on parse"),
            ),
            Codec::Brotli(l) => Compression::BROTLI(
                BrotliLevel::try_new(level(l, 1))
                    .expect("invariant: brotli level validated on parse"),
            ),
            Codec::Lz4 => Compression::LZ4_RAW,
            Codec::Zstd(l) => Compression::ZSTD(
                ZstdLevel::try_new(l.unwrap_or(3))
                    .expect("invariant: zstd level validated on parse"),
            ),
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Codec::Gzip(Some(l)) | Codec::Brotli(Some(l)) => write!(f, "{}:{l}", self.name()),
            Codec::Zstd(Some(l)) => write!(f, "{}:{l}", self.name()),
            _ => f.write_str(self.name()),
        }
    }
}

/// Which statistics are written (min/max/null count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Statistics {
    /// No min/max/null-count statistics at all (`none`); readers cannot skip row groups.
    None,
    /// Per column chunk.
    Chunk,
    /// Per column chunk and per page (page index; the default).
    #[default]
    Page,
}

impl FromStr for Statistics {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Statistics::None),
            "chunk" => Ok(Statistics::Chunk),
            "page" => Ok(Statistics::Page),
            other => Err(format!(
                "unknown statistics level `{other}` (expected none, chunk or page)"
            )),
        }
    }
}

/// Everything about how Parquet is written.
#[derive(Debug, Clone, PartialEq)]
pub struct ParquetOptions {
    /// Codec for every column. Default: [`Codec::Snappy`].
    pub codec: Codec,
    /// Most rows per row group.
    pub row_group_rows: usize,
    /// Most (estimated, encoded) bytes per row group; also what bounds the writer's memory.
    pub row_group_bytes: usize,
    /// Dictionary encoding (with automatic fallback to plain for high-cardinality columns).
    pub dictionary: bool,
    /// How much min/max/null-count statistics to write. Default: [`Statistics::Page`].
    pub statistics: Statistics,
    /// Extra key-value metadata for the footer.
    pub metadata: Vec<(String, String)>,
}

impl Default for ParquetOptions {
    fn default() -> Self {
        ParquetOptions {
            codec: Codec::Snappy,
            row_group_rows: 1024 * 1024,
            row_group_bytes: 128 * 1024 * 1024,
            dictionary: true,
            statistics: Statistics::Page,
            metadata: Vec::new(),
        }
    }
}

impl ParquetOptions {
    /// The writer properties for these options.
    ///
    /// Timestamps are written as INT64 with a unit (never INT96); list and map fields use the
    /// Parquet specification's names (`element`), which Spark and Hive expect.
    pub fn writer_properties(&self) -> WriterProperties {
        let metadata = self
            .metadata
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
            .collect::<Vec<_>>();
        WriterProperties::builder()
            .set_writer_version(WriterVersion::PARQUET_1_0)
            .set_compression(self.codec.to_parquet())
            .set_max_row_group_row_count(Some(self.row_group_rows.max(1)))
            .set_max_row_group_bytes(Some(self.row_group_bytes.max(1)))
            .set_dictionary_enabled(self.dictionary)
            .set_statistics_enabled(match self.statistics {
                Statistics::None => EnabledStatistics::None,
                Statistics::Chunk => EnabledStatistics::Chunk,
                Statistics::Page => EnabledStatistics::Page,
            })
            .set_coerce_types(true)
            .set_created_by(format!("ndjson-parquet {}", env!("CARGO_PKG_VERSION")))
            .set_key_value_metadata((!metadata.is_empty()).then_some(metadata))
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_names_parse_and_print_back() {
        for name in [
            "snappy", "none", "lz4", "gzip", "gzip:9", "brotli:0", "zstd", "zstd:22",
        ] {
            let codec: Codec = name.parse().unwrap();
            assert_eq!(codec.to_string(), name);
        }
        assert_eq!("ZSTD:3".parse::<Codec>().unwrap(), Codec::Zstd(Some(3)));
        assert_eq!("uncompressed".parse::<Codec>().unwrap(), Codec::None);
        assert_eq!(Codec::Lz4.to_parquet(), Compression::LZ4_RAW);
    }

    #[test]
    fn bad_codecs_say_why() {
        let err = |s: &str| s.parse::<Codec>().unwrap_err().to_string();
        assert!(err("lzo").contains("not supported"));
        assert!(err("LZO").contains("not supported"));
        assert!(err("zip").contains("unknown compression `zip`"));
        assert!(err("zstd:23").contains("out of range for zstd (allowed: 1-22)"));
        assert!(err("gzip:x").contains("`x`"));
        assert!(err("snappy:1").contains("no level"));
    }
}
