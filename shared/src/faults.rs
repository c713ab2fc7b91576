//! Fault injection at every AWS call, for the end-to-end suite (feature `fault-injection`).
//!
//! The suite proves that the pipeline loses and duplicates nothing when any single AWS call
//! fails or the process dies right after one succeeds. The seam is an SDK interceptor that
//! every client built by [`crate::aws`] carries when this feature is on; a deployed build
//! does not contain this module at all.
//!
//! The plan comes from `NDJSON_PARQUET_FAULTS`, a JSON document:
//!
//! ```json
//! {"state_dir": "/tmp/faults",
//!  "rules": [{"op": "DynamoDB.UpdateItem", "nth": 2, "mode": "crash", "body_contains": "completed"}]}
//! ```
//!
//! A rule matches a call of `op` (`<service>.<operation>`, as the SDK names them: `DynamoDB`,
//! `S3`, `SFN`, `KMS`) whose request body contains `body_contains` and whose URI contains
//! `uri_contains` (when given), and fires once,
//! on the `nth` match counted over *every process* that shares `state_dir` (Lambda runs many
//! sandboxes; a crash starts a new one). Counting across processes goes through a locked file
//! per rule; a rule that fired leaves `rule-<i>.fired`, which the suite reads to know that the
//! fault really happened.
//!
//! * `error`: the call fails before it is sent, as if the SDK had exhausted its retries
//!   against a throttled or unreachable service (the error is not retryable by the SDK).
//! * `crash`: the call is sent; once its response is a success, the process exits at once
//!   (exit status 86), as a Lambda killed between two steps would.
//! * `stall`: the call waits `seconds` before it is sent, blocking its thread, as a process
//!   hung on a connection that never answers would (longer than the function's timeout, Lambda
//!   ends the invocation).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use serde::Deserialize;

/// The environment variable holding the plan.
pub const PLAN_VARIABLE: &str = "NDJSON_PARQUET_FAULTS";

/// The exit status of a process a `crash` rule stopped.
pub const CRASH_EXIT_CODE: i32 = 86;

/// What a rule does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Fail the call before it is sent.
    Error,
    /// Exit the process right after the call succeeded.
    Crash,
    /// Hold the call for the rule's `seconds` before it is sent.
    Stall,
}

/// One entry of the plan's `rules`: which AWS call to hit, on which match, and how. Fires at
/// most once; its index in `rules` names its `rule-<i>.count` and `rule-<i>.fired` files.
#[derive(Debug, Clone, Deserialize)]
pub struct Rule {
    /// `<service>.<operation>`, e.g. `S3.UploadPart`.
    pub op: String,
    /// Fires on this match (1-based), counted across processes.
    pub nth: u64,
    /// What happens then.
    pub mode: Mode,
    /// Only requests whose body contains this string match.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// Only requests whose URI (bucket and key, for S3) contains this string match.
    #[serde(default)]
    pub uri_contains: Option<String>,
    /// How long a `stall` holds the call.
    #[serde(default)]
    pub seconds: u64,
}

/// The whole plan.
#[derive(Debug, Clone, Deserialize)]
pub struct Plan {
    /// Where the cross-process counters live.
    pub state_dir: PathBuf,
    /// The rules, each applied independently (a call may match several); order fixes their
    /// indices in `state_dir`'s file names.
    pub rules: Vec<Rule>,
}

impl Plan {
    /// Reads the plan from [`PLAN_VARIABLE`]; `None` when it is not set.
    ///
    /// # Panics
    /// When the variable holds no valid plan: a test that asked for faults must not run
    /// without them.
    pub fn from_env() -> Option<Plan> {
        let text = std::env::var(PLAN_VARIABLE).ok()?;
        match serde_json::from_str::<Plan>(&text) {
            Ok(plan) => {
                std::fs::create_dir_all(&plan.state_dir).unwrap_or_else(|e| {
                    panic!(
                        "{PLAN_VARIABLE}: cannot create {}: {e}",
                        plan.state_dir.display()
                    )
                });
                Some(plan)
            }
            Err(e) => panic!("{PLAN_VARIABLE} is not a fault plan: {e}"),
        }
    }
}

/// The interceptor that applies a [`Plan`].
#[derive(Debug, Clone)]
pub struct FaultInjector {
    plan: Plan,
}

/// Which `crash` rules matched the request of the current attempt.
#[derive(Debug, Clone)]
struct Armed(Vec<usize>);

impl Storable for Armed {
    type Storer = StoreReplace<Self>;
}

impl FaultInjector {
    /// An injector applying `plan`.
    pub fn new(plan: Plan) -> Self {
        FaultInjector { plan }
    }

    /// An injector for the plan in the environment, if there is one.
    pub fn from_env() -> Option<Self> {
        Plan::from_env().map(FaultInjector::new)
    }

    fn matching<'a>(
        &'a self,
        operation: &'a str,
        uri: &'a str,
        body: Option<&'a [u8]>,
    ) -> impl Iterator<Item = (usize, &'a Rule)> + 'a {
        self.plan.rules.iter().enumerate().filter(move |(_, rule)| {
            rule.op == operation
                && rule
                    .body_contains
                    .as_deref()
                    .is_none_or(|needle| body.is_some_and(|b| contains(b, needle.as_bytes())))
                && rule
                    .uri_contains
                    .as_deref()
                    .is_none_or(|needle| uri.contains(needle))
        })
    }

    /// Counts one match of rule `index`; true when this is the match the rule fires on.
    fn count(&self, index: usize) -> std::io::Result<bool> {
        let rule = &self.plan.rules[index];
        let path = self.plan.state_dir.join(format!("rule-{index}.count"));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        file.lock()?;
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        let seen = text.trim().parse::<u64>().unwrap_or(0) + 1;
        file.seek(SeekFrom::Start(0))?;
        file.set_len(0)?;
        write!(file, "{seen}")?;
        file.sync_all()?;
        Ok(seen == rule.nth)
    }

    /// Records that rule `index` fired (before it takes effect: a crash leaves no later chance).
    fn record(&self, index: usize, operation: &str) {
        let path = self.plan.state_dir.join(format!("rule-{index}.fired"));
        let result = File::create(&path).and_then(|mut f| {
            writeln!(f, "{operation} pid={}", std::process::id())?;
            f.sync_all()
        });
        if let Err(e) = result {
            tracing::error!(path = %path.display(), error = %e, "cannot record an injected fault");
        }
        let rule = &self.plan.rules[index];
        tracing::warn!(operation, rule = index, mode = ?rule.mode, "fault injected");
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

fn operation_name(cfg: &ConfigBag) -> Option<String> {
    cfg.load::<Metadata>()
        .map(|m| format!("{}.{}", m.service(), m.name()))
}

impl Intercept for FaultInjector {
    fn name(&self) -> &'static str {
        "FaultInjector"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(operation) = operation_name(cfg) else {
            return Ok(());
        };
        let request = context.request();
        let body = request.body().bytes();
        let mut armed = Vec::new();
        let mut fail = None;
        let mut stall = None;
        for (index, rule) in self.matching(&operation, request.uri(), body) {
            match rule.mode {
                Mode::Crash => armed.push(index),
                Mode::Error => {
                    if self.count(index)? && fail.is_none() {
                        fail = Some(index);
                    }
                }
                Mode::Stall => {
                    if self.count(index)? && stall.is_none() {
                        stall = Some((index, rule.seconds));
                    }
                }
            }
        }
        if let Some((index, seconds)) = stall {
            // Recorded first: the process is likely ended during the wait.
            self.record(index, &operation);
            std::thread::sleep(std::time::Duration::from_secs(seconds));
        }
        cfg.interceptor_state().store_put(Armed(armed));
        if let Some(index) = fail {
            self.record(index, &operation);
            return Err(format!("injected fault: {operation} failed (rule {index})").into());
        }
        Ok(())
    }

    fn read_after_transmit(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let armed = match cfg.load::<Armed>() {
            Some(Armed(rules)) if !rules.is_empty() => rules.clone(),
            _ => return Ok(()),
        };
        if !context.response().status().is_success() {
            return Ok(());
        }
        let operation = operation_name(cfg).unwrap_or_default();
        for index in armed {
            if self.count(index)? {
                self.record(index, &operation);
                std::process::exit(CRASH_EXIT_CODE);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn injector(rules: serde_json::Value, dir: &std::path::Path) -> FaultInjector {
        let plan: Plan = serde_json::from_value(serde_json::json!({
            "state_dir": dir,
            "rules": rules,
        }))
        .unwrap();
        FaultInjector::new(plan)
    }

    #[test]
    fn a_rule_fires_once_on_its_nth_match_counted_in_the_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let rules = serde_json::json!([{"op": "S3.PutObject", "nth": 2, "mode": "error"}]);
        let a = injector(rules.clone(), dir.path());
        // A second process sharing the state dir sees the same count.
        let b = injector(rules, dir.path());
        assert!(!a.count(0).unwrap());
        assert!(b.count(0).unwrap());
        assert!(!a.count(0).unwrap());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("rule-0.count")).unwrap(),
            "3"
        );
    }

    #[test]
    fn rules_match_on_operation_and_body() {
        let dir = tempfile::tempdir().unwrap();
        let f = injector(
            serde_json::json!([
                {"op": "DynamoDB.UpdateItem", "nth": 1, "mode": "crash", "body_contains": "processed"},
                {"op": "DynamoDB.UpdateItem", "nth": 1, "mode": "error"},
                {"op": "S3.PutObject", "nth": 1, "mode": "error", "uri_contains": "/bucket/"},
            ]),
            dir.path(),
        );
        let hits = |op: &str, uri: &str, body: Option<&[u8]>| {
            f.matching(op, uri, body)
                .map(|(i, _)| i)
                .collect::<Vec<_>>()
        };
        let table = "https://dynamodb/";
        assert_eq!(
            hits("DynamoDB.UpdateItem", table, Some(b"x processed y")),
            [0, 1]
        );
        assert_eq!(hits("DynamoDB.UpdateItem", table, Some(b"pending")), [1]);
        assert_eq!(hits("DynamoDB.UpdateItem", table, None), [1]);
        assert_eq!(
            hits("DynamoDB.PutItem", table, Some(b"processed")),
            Vec::<usize>::new()
        );
        assert_eq!(hits("S3.PutObject", "http://s3/bucket/key", None), [2]);
        assert_eq!(
            hits("S3.PutObject", "http://s3/other/key", None),
            Vec::<usize>::new()
        );
    }

    #[test]
    fn a_stall_names_how_long_it_holds_the_call() {
        let plan: Plan = serde_json::from_str(
            r#"{"state_dir": "/x", "rules": [
                {"op": "S3.GetObject", "nth": 1, "mode": "stall", "seconds": 90, "uri_contains": "/in/"},
                {"op": "S3.GetObject", "nth": 2, "mode": "error"}]}"#,
        )
        .unwrap();
        assert_eq!(plan.rules[0].mode, Mode::Stall);
        assert_eq!(plan.rules[0].seconds, 90);
        assert_eq!(plan.rules[1].seconds, 0);
    }

    #[test]
    fn a_bad_plan_is_refused() {
        assert!(serde_json::from_str::<Plan>(
            r#"{"state_dir": "/x", "rules": [{"op": "S3.GetObject", "nth": 1, "mode": "explode"}]}"#
        )
        .is_err());
    }
}
