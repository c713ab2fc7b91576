//! Logging: JSON lines through `tracing`, at a level set by `LOG_LEVEL` (default `INFO`).
//!
//! What may be logged (the owner's fix 3): never an event payload, never record contents;
//! object keys only at DEBUG. Code logs keys with `tracing::debug!` only, and events are
//! summarised by counts.

use std::str::FromStr;

use tracing_subscriber::fmt::MakeWriter;

/// A validated log level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogLevel {
    /// Everything, including object keys.
    Debug,
    /// Progress and counts (the default).
    #[default]
    Info,
    /// Warnings and errors: what went wrong but was handled (resumed reads, failed manifests,
    /// sweep repairs). `WARN` is accepted too.
    Warning,
    /// Errors only: failures that need attention; the dependencies are held to this level too.
    Error,
}

impl FromStr for LogLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "DEBUG" => Ok(LogLevel::Debug),
            "INFO" => Ok(LogLevel::Info),
            "WARNING" | "WARN" => Ok(LogLevel::Warning),
            "ERROR" => Ok(LogLevel::Error),
            _ => Err("expected DEBUG, INFO, WARNING or ERROR".to_string()),
        }
    }
}

impl LogLevel {
    fn to_tracing(self) -> tracing::Level {
        match self {
            LogLevel::Debug => tracing::Level::DEBUG,
            LogLevel::Info => tracing::Level::INFO,
            LogLevel::Warning => tracing::Level::WARN,
            LogLevel::Error => tracing::Level::ERROR,
        }
    }
}

/// Installs the global JSON subscriber writing to `writer` (stdout in Lambda). Our own
/// crates log at `level`; everything else (the AWS SDK, the Lambda runtime) only from WARN,
/// since their DEBUG output includes request parameters such as object keys. Each line
/// carries the current span's fields (e.g. the SQS `message_id`).
pub fn init_json<W>(level: LogLevel, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let ours = level.to_tracing();
    // tracing orders levels by verbosity (DEBUG > WARN): dependencies get the quieter of the
    // two, so `LOG_LEVEL=ERROR` silences them too.
    let dependencies = ours.min(tracing::Level::WARN);
    let filter = tracing_subscriber::filter::Targets::new()
        .with_default(dependencies)
        .with_target("shared", ours)
        .with_target("manifest_builder", ours)
        .with_target("converter", ours)
        .with_target("converter_lambda", ours);
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let layer = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_writer(writer);
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_like_the_terraform_variable() {
        assert_eq!("DEBUG".parse(), Ok(LogLevel::Debug));
        assert_eq!("info".parse(), Ok(LogLevel::Info));
        assert_eq!("WARNING".parse(), Ok(LogLevel::Warning));
        assert_eq!("WARN".parse(), Ok(LogLevel::Warning));
        assert_eq!("ERROR".parse(), Ok(LogLevel::Error));
        assert!("TRACE".parse::<LogLevel>().is_err());
    }
}
