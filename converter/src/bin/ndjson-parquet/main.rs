//! `ndjson-parquet`: convert NDJSON files to Parquet on one machine, losing nothing.
//!
//! A thin shell over the `converter` library: clap parses the command line into the
//! library's options, indicatif shows progress, and errors print as `error: …` with their
//! causes. Exit status: 0 success, 1 conversion error, 2 usage error.

mod checks;
#[cfg(feature = "aws")]
mod cloud;
mod sinks;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[cfg(feature = "aws")]
use cloud::{Cloud, RunManifestFailed};
use sinks::{is_s3, CliDestination};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use converter::convert::{
    convert, infer_schema, ConvertError, ConvertOptions, OnError, Phase, Progress, SchemaChoice,
    Summary,
};
use converter::decode::{TypeMismatchPolicy, UnknownFieldPolicy};
use converter::input::{is_regular_file, FileSource, Source, SpooledSource, StreamSource};
use converter::parquet_options::{Codec, ParquetOptions, Statistics};
use converter::reject::RejectKind;
use converter::schema::{TimestampUnit, MAP_KEY_THRESHOLD, OVERFLOW_RARITY};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Convert NDJSON (plain, gzip or zstd) to Parquet. Every input line ends up as a row or as a
/// rejected line with its reason; the counts always add up.
#[derive(Parser, Debug)]
#[command(name = "ndjson-parquet", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,

    /// Print nothing on stderr but errors (no progress bar, no summary).
    #[arg(short, long, global = true)]
    quiet: bool,

    /// More log output on stderr (-v: info, -vv: debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Convert NDJSON inputs into one Parquet file.
    Convert(ConvertArgs),
    /// Print the schema `convert` would use, in the format `--schema` reads.
    Schema(SchemaArgs),
    /// Convert one manifest of the pipeline (the AWS Batch entry point). Configured by the
    /// same environment variables as the converter Lambda; prints the JSON result. Exit
    /// status 75 means "retry later", 1 a final failure.
    #[cfg(feature = "aws")]
    RunManifest(RunManifestArgs),
}

#[cfg(feature = "aws")]
#[derive(Args, Debug)]
struct RunManifestArgs {
    /// The manifest JSON: s3://bucket/key.
    #[arg(value_name = "MANIFEST")]
    manifest: String,
}

/// Options that control how input is read, shared by both subcommands.
#[derive(Args, Debug)]
struct ReadArgs {
    /// Input files or s3://bucket/key URLs; `-` reads standard input. Compression (gzip,
    /// zstd) is detected from the content, not the name; xz and bzip2 are refused.
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<String>,

    /// Infer the schema from the first N records only (default: from all records; standard
    /// input is then first copied to a temporary file in $TMPDIR).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    infer_rows: Option<u64>,

    /// Unit of timestamps inferred from RFC 3339 strings.
    #[arg(long, value_enum, default_value_t = UnitArg::Us)]
    timestamp_unit: UnitArg,

    /// Infer an object (below the top level) with more than N distinct keys as a
    /// MAP<string, V> column instead of a struct with one column per key. Records with more
    /// than N distinct top-level keys keep the keys present in at least 1% of them as columns;
    /// the rarer ones share one MAP<string, V> column, `_overflow`.
    #[arg(long, value_name = "N", default_value_t = MAP_KEY_THRESHOLD as u64, value_parser = clap::value_parser!(u64).range(1..))]
    map_keys: u64,

    /// Longest accepted line (bytes; K, M, G, KiB, MiB, GiB suffixes allowed). Longer lines are
    /// rejected without being held in memory.
    #[arg(long, value_name = "BYTES", default_value = "16MiB", value_parser = parse_size)]
    max_line_bytes: u64,

    /// Decoding and encoding threads (default: all cores). Output is identical for any value.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..1025))]
    threads: Option<u64>,
}

#[derive(Args, Debug)]
struct ConvertArgs {
    #[command(flatten)]
    read: ReadArgs,

    /// The Parquet file (or s3://bucket/key) to write. It appears only when the conversion
    /// succeeds.
    #[arg(short, long, value_name = "PATH")]
    output: String,

    /// SSE-KMS key (ARN, id or alias) for outputs written to S3.
    #[arg(long, value_name = "KEY")]
    kms_key_id: Option<String>,

    /// Schema file (as printed by `ndjson-parquet schema`); disables inference.
    #[arg(long, value_name = "FILE")]
    schema: Option<PathBuf>,

    /// What to do with a line that cannot be converted: stop (fail), count it and go on
    /// (skip), or write it to --errors and go on (quarantine).
    #[arg(long, value_enum, default_value_t = OnErrorArg::Fail)]
    on_error: OnErrorArg,

    /// NDJSON file (or s3://bucket/key) receiving one record per rejected line (source,
    /// line, offset, kind, reason, raw). Required by --on-error quarantine.
    #[arg(long, value_name = "PATH")]
    errors: Option<String>,

    /// A field that the schema does not have: reject the line, or drop the field (counted).
    #[arg(long, value_enum, default_value_t = UnknownArg::Reject)]
    unknown_fields: UnknownArg,

    /// A value that does not fit its column: reject the line, or write null (counted).
    #[arg(long, value_enum, default_value_t = MismatchArg::Reject)]
    type_mismatch: MismatchArg,

    /// Parquet compression: snappy, gzip[:1-9], brotli[:0-11], lz4, zstd[:1-22] or none.
    #[arg(long, value_name = "CODEC", default_value = "snappy", value_parser = parse_codec)]
    compression: Codec,

    /// Most rows per row group (at least 1024: smaller groups make files slow to read and
    /// the writer's memory grow with the input).
    #[arg(long, value_name = "ROWS", default_value_t = 1024 * 1024, value_parser = parse_row_group_rows)]
    row_group_size: u64,

    /// Most (encoded) bytes per row group; also bounds the writer's memory.
    #[arg(long, value_name = "BYTES", default_value = "128MiB", value_parser = parse_size)]
    row_group_bytes: u64,

    /// Do not dictionary-encode columns.
    #[arg(long)]
    no_dictionary: bool,

    /// Statistics to write: none, chunk (per column chunk) or page (also per page).
    #[arg(long, value_enum, default_value_t = StatisticsArg::Page)]
    statistics: StatisticsArg,
}

#[derive(Args, Debug)]
struct SchemaArgs {
    #[command(flatten)]
    read: ReadArgs,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum UnitArg {
    Ms,
    Us,
    Ns,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum OnErrorArg {
    Fail,
    Skip,
    Quarantine,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum UnknownArg {
    Reject,
    Drop,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum MismatchArg {
    Reject,
    Null,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum StatisticsArg {
    None,
    Chunk,
    Page,
}

fn parse_codec(text: &str) -> Result<Codec, String> {
    text.parse::<Codec>().map_err(|e| e.to_string())
}

/// The fewest rows per row group `--row-group-size` accepts. Every row group costs metadata
/// held in memory until the footer is written, and per-group overhead for readers: one-row
/// groups made 200,000 groups (and a memory that grew with the input) of 200,000 rows.
const MIN_ROW_GROUP_ROWS: u64 = 1024;

fn parse_row_group_rows(text: &str) -> Result<u64, String> {
    let rows: u64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of rows"))?;
    if rows < MIN_ROW_GROUP_ROWS {
        return Err(format!(
            "row groups of fewer than {MIN_ROW_GROUP_ROWS} rows are refused: they make files \
             slow to read and the writer's memory grow with the input (to bound a row group's \
             size, use --row-group-bytes)"
        ));
    }
    Ok(rows)
}

/// Parses `1048576`, `64K`, `16MiB`, `1G`… (K/M/G and KiB/MiB/GiB are all powers of 1024).
fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, suffix) = trimmed.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size (examples: 1048576, 64KiB, 16MiB)"))?;
    let factor: u64 = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size suffix `{other}` in `{text}` (use K, M or G)"
            ))
        }
    };
    match number.checked_mul(factor) {
        Some(0) => Err("size must be greater than zero".to_string()),
        Some(n) => Ok(n),
        None => Err(format!("`{text}` is too large")),
    }
}

/// A mistake in how the tool was called (exit status 2), found after parsing.
#[derive(Debug)]
struct UsageError(String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

/// An error with hints that depend on the input (the library's error does not know them).
#[derive(Debug)]
struct Explained {
    error: anyhow::Error,
    hints: Vec<String>,
}

impl std::fmt::Display for Explained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.error, f)
    }
}

impl std::error::Error for Explained {}

/// On SIGINT or SIGTERM: removes the temporary files of the outputs being written (standard
/// input's spool has no name to remove), then exits with 128 + the signal (130, 143).
fn stop_on_signals() -> anyhow::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .context("cannot handle SIGINT and SIGTERM")?;
    std::thread::Builder::new()
        .name("signals".to_string())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                let removed = converter::output::remove_temporaries();
                let name = if signal == SIGINT { "SIGINT" } else { "SIGTERM" };
                eprintln!(
                    "\nerror: stopped by {name}; nothing was written ({removed} temporary file{} removed)",
                    if removed == 1 { "" } else { "s" }
                );
                std::process::exit(128 + signal);
            }
        })
        .context("cannot handle SIGINT and SIGTERM")?;
    Ok(())
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    #[cfg(feature = "aws")]
    let logs_json = matches!(cli.command, Command::RunManifest(_));
    #[cfg(not(feature = "aws"))]
    let logs_json = false;
    if !logs_json {
        init_logging(cli.verbose);
        if let Err(error) = stop_on_signals() {
            eprintln!("error: {}", checks::causes(error.as_ref()));
            return ExitCode::from(1);
        }
    }
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if is_broken_pipe(&error) {
                return ExitCode::SUCCESS;
            }
            #[cfg(feature = "aws")]
            if let Some(RunManifestFailed(failure)) = error.downcast_ref::<RunManifestFailed>() {
                let line = serde_json::json!({
                    "error": failure.name(),
                    "message": failure.to_string(),
                    "retryable": failure.retryable(),
                });
                println!("{line}");
                eprintln!("error: {error}");
                // 75 (EX_TEMPFAIL): AWS Batch's retry strategy retries on this exit code.
                return ExitCode::from(if failure.retryable() { 75 } else { 1 });
            }
            let (error, extra_hints) = match error.downcast::<Explained>() {
                Ok(explained) => (explained.error, explained.hints),
                Err(error) => (error, Vec::new()),
            };
            let mut said = error.to_string();
            eprintln!("error: {said}");
            for cause in error.chain().skip(1) {
                // Many errors quote their cause; say each once.
                let cause = cause.to_string();
                if !said.contains(&cause) {
                    eprintln!("  caused by: {cause}");
                    said.push_str(&cause);
                }
            }
            if let Some(error) = error.downcast_ref::<ConvertError>() {
                for hint in hints(error) {
                    eprintln!("hint: {hint}");
                }
            }
            for hint in extra_hints {
                eprintln!("hint: {hint}");
            }
            if error.downcast_ref::<UsageError>().is_some()
                || matches!(
                    error.downcast_ref::<ConvertError>(),
                    Some(ConvertError::NeedsSchema { .. } | ConvertError::QuarantineWithoutOutput)
                )
            {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// What to do about a conversion error, in this command's flags: the library's messages name
/// none, as its other front ends (the Lambda, the Batch job) have no flags.
fn hints(error: &ConvertError) -> Vec<&'static str> {
    match error {
        ConvertError::BadLine { kind, .. } => {
            let mut hints = vec!["--on-error skip, or quarantine with --errors PATH, converts the other lines and records the bad ones"];
            if *kind == RejectKind::LineTooLong {
                hints.push("--max-line-bytes raises the limit of bytes per line");
            }
            hints
        }
        ConvertError::NeedsSchema { .. } => {
            vec!["pass --schema, or --infer-rows N to infer from its first N records"]
        }
        ConvertError::QuarantineWithoutOutput => vec!["pass --errors PATH"],
        ConvertError::NothingToInfer { .. } => vec!["pass --schema to write an empty file"],
        _ => Vec::new(),
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("NDJSON_PARQUET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Convert(args) => run_convert(args, cli.quiet),
        Command::Schema(args) => run_schema(args, cli.quiet),
        #[cfg(feature = "aws")]
        Command::RunManifest(args) => {
            let result = cloud::run_manifest(&args.manifest)?;
            println!("{}", serde_json::to_string(&result)?);
            Ok(())
        }
    }
}

/// How standard input is read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum StdinUse {
    /// Once, as it comes: nothing is kept.
    Stream,
    /// Its head twice (`--infer-rows`): the head is kept, up to a limit.
    ReplayHead,
    /// All of it more than once (whole-input inference): copied to a temporary file first.
    Spool,
}

fn sources(read: &ReadArgs, stdin: StdinUse, quiet: bool) -> anyhow::Result<Vec<Arc<dyn Source>>> {
    if read.inputs.iter().filter(|i| *i == "-").count() > 1 {
        bail!(usage("`-` (standard input) can be given only once"));
    }
    // The head that --infer-rows reads from a pipe is replayed; 1 GiB is far beyond any
    // sensible sample and stops a runaway. A pipe read once keeps nothing.
    let replay_limit: usize = if stdin == StdinUse::ReplayHead {
        1 << 30
    } else {
        0
    };
    for input in &read.inputs {
        if !is_s3(input) && input != "-" && std::path::Path::new(input).is_dir() {
            bail!(usage(format!(
                "{input} is a directory: give the files in it (for example {}/*.ndjson)",
                input.trim_end_matches('/')
            )));
        }
    }
    // The S3 inputs are opened together, so they can be read ahead as one list.
    let urls: Vec<&str> = read
        .inputs
        .iter()
        .map(String::as_str)
        .filter(|i| is_s3(i))
        .collect();
    let mut s3 = if urls.is_empty() {
        Vec::new()
    } else {
        s3_sources(&urls)?
    }
    .into_iter();
    read.inputs
        .iter()
        .map(|input| -> anyhow::Result<Arc<dyn Source>> {
            let path = std::path::Path::new(input);
            Ok(if input == "-" && stdin == StdinUse::Spool {
                Arc::new(spool_stdin(quiet)?)
            } else if input == "-" {
                Arc::new(StreamSource::stdin(replay_limit))
            } else if is_s3(input) {
                s3.next().expect("invariant: one S3 source per s3:// input")
            } else if path.exists() && !is_regular_file(path) {
                Arc::new(StreamSource::from_path(path, replay_limit))
            } else {
                Arc::new(FileSource::new(input))
            })
        })
        .collect()
}

/// Copies standard input to an unnamed temporary file in `$TMPDIR` (or /tmp), saying so.
fn spool_stdin(quiet: bool) -> anyhow::Result<SpooledSource> {
    let dir = std::env::temp_dir();
    if !quiet {
        eprintln!(
            "reading standard input into a temporary file in {} to infer its schema from all \
             of it (--schema or --infer-rows N read it as it comes)",
            dir.display()
        );
    }
    SpooledSource::spool("-", &mut std::io::stdin().lock(), &dir).with_context(|| {
        format!(
            "cannot copy standard input to a temporary file in {} (set TMPDIR to a directory \
             with room, or pass --schema)",
            dir.display()
        )
    })
}

#[cfg(feature = "aws")]
fn s3_sources(urls: &[&str]) -> anyhow::Result<Vec<Arc<dyn Source>>> {
    Cloud::get()?
        .sources(urls)
        .map_err(|e| usage(format!("{e:#}")))
}

#[cfg(not(feature = "aws"))]
fn s3_sources(urls: &[&str]) -> anyhow::Result<Vec<Arc<dyn Source>>> {
    Err(anyhow::anyhow!(sinks::no_s3_support(urls[0])))
}

fn base_options(read: &ReadArgs) -> ConvertOptions {
    let mut options = ConvertOptions {
        timestamp_unit: match read.timestamp_unit {
            UnitArg::Ms => TimestampUnit::Millisecond,
            UnitArg::Us => TimestampUnit::Microsecond,
            UnitArg::Ns => TimestampUnit::Nanosecond,
        },
        max_line_bytes: usize::try_from(read.max_line_bytes).unwrap_or(usize::MAX),
        map_key_threshold: usize::try_from(read.map_keys).unwrap_or(usize::MAX),
        ..ConvertOptions::default()
    };
    if let Some(threads) = read.threads {
        options.threads = threads as usize;
    }
    options
}

/// The library's options for `convert`, after checking the paths (before anything is read
/// or written).
fn convert_options(args: &ConvertArgs) -> anyhow::Result<ConvertOptions> {
    if args.output == "-" {
        bail!(usage(
            "Parquet cannot be written to standard output; give a file path with -o"
        ));
    }
    if args.on_error == OnErrorArg::Quarantine && args.errors.is_none() {
        bail!(usage("--on-error quarantine needs --errors PATH"));
    }
    checks::check_outputs(&checks::Named {
        output: &args.output,
        errors: args.errors.as_deref(),
        schema: args.schema.as_deref(),
        inputs: &args.read.inputs,
    })
    .map_err(usage)?;
    let mut options = base_options(&args.read);
    options.schema = match (&args.schema, args.read.infer_rows) {
        (Some(_), Some(_)) => bail!(usage("--schema and --infer-rows exclude each other")),
        (Some(path), None) => SchemaChoice::Explicit(checks::load_schema(path).map_err(usage)?),
        (None, Some(n)) => SchemaChoice::InferFirst(n),
        (None, None) => SchemaChoice::Infer,
    };
    options.on_error = match args.on_error {
        OnErrorArg::Fail => OnError::Fail,
        OnErrorArg::Skip => OnError::Skip,
        OnErrorArg::Quarantine => OnError::Quarantine,
    };
    // Input without one valid record still gets its error output, and a message saying why.
    options.empty_output_ok = options.on_error != OnError::Fail;
    options.unknown_fields = match args.unknown_fields {
        UnknownArg::Reject => UnknownFieldPolicy::Reject,
        UnknownArg::Drop => UnknownFieldPolicy::Drop,
    };
    options.type_mismatch = match args.type_mismatch {
        MismatchArg::Reject => TypeMismatchPolicy::Reject,
        MismatchArg::Null => TypeMismatchPolicy::Null,
    };
    options.parquet = ParquetOptions {
        codec: args.compression,
        row_group_rows: usize::try_from(args.row_group_size).unwrap_or(usize::MAX),
        row_group_bytes: usize::try_from(args.row_group_bytes).unwrap_or(usize::MAX),
        dictionary: !args.no_dictionary,
        statistics: match args.statistics {
            StatisticsArg::None => Statistics::None,
            StatisticsArg::Chunk => Statistics::Chunk,
            StatisticsArg::Page => Statistics::Page,
        },
        metadata: Vec::new(),
    };
    Ok(options)
}

fn run_convert(args: &ConvertArgs, quiet: bool) -> anyhow::Result<()> {
    let options = convert_options(args)?;
    let stdin = match options.schema {
        SchemaChoice::Infer => StdinUse::Spool,
        SchemaChoice::InferFirst(_) => StdinUse::ReplayHead,
        SchemaChoice::Explicit(_) => StdinUse::Stream,
    };
    let sources = sources(&args.read, stdin, quiet)?;
    let progress = Bar::new(quiet);
    let mut destination = CliDestination {
        parquet: args.output.clone(),
        errors: args.errors.clone(),
        kms_key_id: args.kms_key_id.clone(),
    };
    let converted = convert(&sources, &options, &mut destination, &progress);
    progress.done();
    let converted = match converted {
        Ok(converted) => converted,
        Err(error) => {
            let hints = match &error {
                ConvertError::BadLine { source_name, .. } => sources
                    .iter()
                    .filter(|s| s.name() == source_name && checks::looks_like_a_document(s))
                    .map(|s| checks::document_hint(s.name()))
                    .take(1)
                    .collect(),
                _ => Vec::new(),
            };
            return Err(Explained {
                error: error.into(),
                hints,
            }
            .into());
        }
    };
    if converted.parts.is_empty() {
        // No valid record (only with --on-error skip or quarantine): the error output is
        // still written, so that every line is accounted for.
        if let Some(rejects) = converted.rejects {
            rejects.commit().context("cannot finish the error output")?;
        }
        return Err(nothing_valid(
            &converted.summary,
            &sources,
            args.errors.as_deref(),
        ));
    }
    for part in converted.parts {
        part.commit().context("cannot finish the Parquet output")?;
    }
    if let Some(rejects) = converted.rejects {
        rejects.commit().context("cannot finish the error output")?;
    }
    if !quiet {
        print_summary(&converted.summary, sources.len(), args);
        if converted.summary.stats.rejected > 0 {
            for hint in document_hints(&sources) {
                eprintln!("hint: {hint}");
            }
        }
    }
    Ok(())
}

/// The failure of a conversion that found no valid record: the counts, the most common
/// reasons, and a hint when an input looks like one JSON document.
fn nothing_valid(
    summary: &Summary,
    sources: &[Arc<dyn Source>],
    errors: Option<&str>,
) -> anyhow::Error {
    let s = &summary.stats;
    let mut kinds: Vec<(RejectKind, u64)> = summary
        .rejects_by_kind
        .iter()
        .map(|(kind, n)| (*kind, *n))
        .collect();
    kinds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.as_str().cmp(b.0.as_str())));
    let reasons: Vec<String> = kinds
        .iter()
        .take(3)
        .map(|(kind, n)| format!("{} {n}", kind.as_str()))
        .collect();
    let mut message = format!(
        "no valid records in {} lines ({} rejected, {} blank), so no Parquet file was written",
        s.lines, s.rejected, s.blank
    );
    if !reasons.is_empty() {
        message.push_str(&format!("; most common reasons: {}", reasons.join(", ")));
    }
    if let Some(errors) = errors {
        message.push_str(&format!("; rejected lines written to {errors}"));
    }
    Explained {
        error: anyhow::anyhow!(message),
        hints: document_hints(sources),
    }
    .into()
}

fn document_hints(sources: &[Arc<dyn Source>]) -> Vec<String> {
    sources
        .iter()
        .filter(|s| checks::looks_like_a_document(s))
        .map(|s| checks::document_hint(s.name()))
        .take(1)
        .collect()
}

fn run_schema(args: &SchemaArgs, quiet: bool) -> anyhow::Result<()> {
    // Inference reads each input once: standard input is never kept.
    let sources = sources(&args.read, StdinUse::Stream, quiet)?;
    let options = base_options(&args.read);
    let progress = Bar::new(quiet);
    let inferred = infer_schema(&sources, &options, args.read.infer_rows, &progress);
    progress.done();
    let inferred = inferred?;
    if inferred.records == 0 {
        return Err(Explained {
            error: anyhow::anyhow!(
                "no valid records in {} lines ({} not valid records, {} blank): there is no \
                 schema to print",
                inferred.lines,
                inferred.invalid,
                inferred.lines - inferred.invalid
            ),
            hints: document_hints(&sources),
        }
        .into());
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(inferred.schema.to_json().as_bytes())?;
    stdout.flush()?;
    if !quiet {
        eprintln!(
            "schema of {} records ({} lines read, {} not valid records and ignored)",
            inferred.records, inferred.lines, inferred.invalid
        );
    }
    Ok(())
}

fn print_summary(summary: &Summary, sources: usize, args: &ConvertArgs) {
    let s = &summary.stats;
    let mut rejected = format!("{} rejected", s.rejected);
    if !summary.rejects_by_kind.is_empty() {
        let mut kinds: Vec<String> = summary
            .rejects_by_kind
            .iter()
            .map(|(kind, n)| format!("{} {n}", kind.as_str()))
            .collect();
        kinds.sort();
        rejected.push_str(&format!(" ({})", kinds.join(", ")));
    }
    eprintln!(
        "{}: {} rows written, {rejected}, {} blank lines (lines read {} = written + rejected + blank)",
        args.output,
        s.rows,
        s.blank,
        s.lines
    );
    if s.fields_dropped > 0 || s.values_nulled > 0 {
        eprintln!(
            "  {} unknown fields dropped, {} mismatched values written as null",
            s.fields_dropped, s.values_nulled
        );
    }
    eprintln!(
        "  {} input{} read: {} of JSON ({} raw); {} of Parquet ({}, {} row group{}); {:.1} s, {:.1} MB/s",
        sources,
        if sources == 1 { "" } else { "s" },
        human_bytes(s.bytes),
        human_bytes(summary.raw_bytes),
        human_bytes(summary.output_bytes),
        args.compression,
        summary.row_groups,
        if summary.row_groups == 1 { "" } else { "s" },
        summary.elapsed.as_secs_f64(),
        summary.megabytes_per_second()
    );
    let widened = summary.widenings;
    if widened.to_decimal + widened.to_text > 0 {
        eprintln!(
            "  {} number column{} widened to keep every value exact: {} to decimal, {} to text",
            widened.to_decimal + widened.to_text,
            if widened.to_decimal + widened.to_text == 1 {
                ""
            } else {
                "s"
            },
            widened.to_decimal,
            widened.to_text
        );
    }
    let maps = summary.schema.map_columns();
    if !maps.is_empty() {
        eprintln!(
            "  {} object column{} written as MAP<string, V>, {} keys being data: {}",
            maps.len(),
            if maps.len() == 1 { "" } else { "s" },
            if maps.len() == 1 { "its" } else { "their" },
            maps.join(", ")
        );
    }
    if let Some(overflow) = &summary.schema.overflow {
        eprintln!(
            "  top-level keys no column names are in the MAP<string, V> column `{overflow}` (the records have more distinct keys than --map-keys; keys in fewer than 1 in {OVERFLOW_RARITY} records go there)"
        );
    }
    if summary.case_variants > 0 {
        eprintln!(
            "  {} key{} mapped onto a column spelled with other letter case (names are unique case-insensitively)",
            summary.case_variants,
            if summary.case_variants == 1 { "" } else { "s" }
        );
    }
    if summary.restarts > 0 {
        eprintln!(
            "  the sampled schema was too narrow; widened and restarted {} time{}",
            summary.restarts,
            if summary.restarts == 1 { "" } else { "s" }
        );
    }
    if let Some(errors) = &args.errors {
        eprintln!("  rejected lines written to {errors}");
    }
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The indicatif progress bar, drawn only on a terminal and when not quiet.
struct Bar {
    bar: Option<ProgressBar>,
}

impl Bar {
    fn new(quiet: bool) -> Self {
        if quiet || !std::io::stderr().is_terminal() {
            return Bar { bar: None };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        Bar { bar: Some(bar) }
    }

    fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Bar {
    fn phase(&self, phase: Phase, raw_total: Option<u64>) {
        let Some(bar) = &self.bar else { return };
        let message = match phase {
            Phase::Sampling => "sampling schema".to_string(),
            Phase::Inferring => "inferring schema".to_string(),
            Phase::Converting { attempt: 1 } => "converting".to_string(),
            Phase::Converting { attempt } => {
                format!("converting (attempt {attempt}, wider schema)")
            }
        };
        let style = match raw_total {
            Some(total) => {
                bar.set_length(total);
                ProgressStyle::with_template(
                    "{msg:>12} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
            }
            None => {
                bar.unset_length();
                ProgressStyle::with_template("{msg:>12} {spinner} {bytes} {bytes_per_sec}")
            }
        };
        if let Ok(style) = style {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(message);
        bar.set_position(0);
    }

    fn advance(&self, raw_bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(raw_bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_suffixes() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert!(parse_size("0").is_err());
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("MiB").is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn byte_counts_read_naturally() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_500_000), "1.5 MB");
    }
}
