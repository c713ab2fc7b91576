//! Starting one workflow execution per manifest.
//!
//! # Contract
//!
//! * [`Orchestrator::start`] starts the execution named `name` with `input`. Starting a name
//!   that already exists is not an error: it is reported as [`Started::AlreadyExists`], since the
//!   only one who names executions after manifest ids is this pipeline, and a repeat means an
//!   earlier attempt got through. So no manifest is ever run twice.
//! * [`Orchestrator::describe`] tells whether an execution of that name exists and how it
//!   stands: after a failed start it decides between "it did start after all" and "roll back";
//!   for a manifest that stays open too long it tells an execution still at work from one that
//!   ended without settling its manifest (aborted, timed out, failed).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;

/// How a start went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// This call created the execution.
    New {
        /// ARN as the service returned it.
        execution_arn: String,
    },
    /// It existed already (an earlier attempt started it).
    AlreadyExists {
        /// ARN derived from the state machine's ARN and the name (the service returns none).
        execution_arn: String,
    },
}

impl Started {
    /// The execution's ARN either way.
    pub fn execution_arn(&self) -> &str {
        match self {
            Started::New { execution_arn } | Started::AlreadyExists { execution_arn } => {
                execution_arn
            }
        }
    }
}

/// A failed orchestration call.
#[derive(Debug, thiserror::Error)]
pub enum OrchestratorError {
    /// The service refused or could not be reached.
    #[error("Step Functions {operation} failed: {message}")]
    Service {
        /// Operation, e.g. `StartExecution`.
        operation: &'static str,
        /// The service's description of the problem.
        message: String,
    },
    /// A fault injected by a test wrapper (never produced by a real orchestrator).
    #[cfg(any(test, feature = "test-support"))]
    #[error("injected fault in {operation}")]
    Injected {
        /// The operation that was made to fail.
        operation: &'static str,
    },
}

/// Starts executions (see the module docs for the contract).
pub trait Orchestrator: Send + Sync {
    /// Starts execution `name` with JSON `input`.
    fn start(
        &self,
        name: &str,
        input: &str,
    ) -> impl Future<Output = Result<Started, OrchestratorError>> + Send;

    /// Execution `name`, if it exists.
    fn describe(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Execution>, OrchestratorError>> + Send;
}

/// Where an execution stands (Step Functions' `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExecutionStatus {
    /// Still at work (`RUNNING`, or `PENDING_REDRIVE`).
    Running,
    /// Ended well (`SUCCEEDED`).
    Succeeded,
    /// Ended in a failure (`FAILED`).
    Failed,
    /// Ran past the state machine's `TimeoutSeconds` (`TIMED_OUT`).
    TimedOut,
    /// Stopped by someone (`ABORTED`).
    Aborted,
}

impl ExecutionStatus {
    /// Reads Step Functions' status name (`RUNNING`, `SUCCEEDED`, ...).
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "RUNNING" | "PENDING_REDRIVE" => ExecutionStatus::Running,
            "SUCCEEDED" => ExecutionStatus::Succeeded,
            "FAILED" => ExecutionStatus::Failed,
            "TIMED_OUT" => ExecutionStatus::TimedOut,
            "ABORTED" => ExecutionStatus::Aborted,
            _ => return None,
        })
    }

    /// Whether the execution has ended.
    pub fn is_final(self) -> bool {
        self != ExecutionStatus::Running
    }
}

/// An execution, as [`Orchestrator::describe`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    /// Its ARN.
    pub arn: String,
    /// Where it stands.
    pub status: ExecutionStatus,
}

/// An in-memory orchestrator for unit tests: remembers every execution, its input and status
/// (`Running` until a test says otherwise with [`MemoryOrchestrator::set_status`]).
#[derive(Debug, Default)]
pub struct MemoryOrchestrator {
    executions: Mutex<BTreeMap<String, (String, ExecutionStatus)>>,
}

impl MemoryOrchestrator {
    /// An orchestrator with no executions; ARNs it makes up are `arn:memory:execution:<name>`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every execution started: name → input.
    pub fn executions(&self) -> BTreeMap<String, String> {
        self.executions
            .lock()
            .expect("invariant: lock is never poisoned")
            .iter()
            .map(|(name, (input, _))| (name.clone(), input.clone()))
            .collect()
    }

    /// Sets the status of execution `name` (what the workflow would do); false if it does not exist.
    pub fn set_status(&self, name: &str, status: ExecutionStatus) -> bool {
        let mut executions = self
            .executions
            .lock()
            .expect("invariant: lock is never poisoned");
        match executions.get_mut(name) {
            Some(execution) => {
                execution.1 = status;
                true
            }
            None => false,
        }
    }
}

impl Orchestrator for MemoryOrchestrator {
    async fn start(&self, name: &str, input: &str) -> Result<Started, OrchestratorError> {
        let mut executions = self
            .executions
            .lock()
            .expect("invariant: lock is never poisoned");
        let execution_arn = format!("arn:memory:execution:{name}");
        if executions.contains_key(name) {
            return Ok(Started::AlreadyExists { execution_arn });
        }
        executions.insert(
            name.to_string(),
            (input.to_string(), ExecutionStatus::Running),
        );
        Ok(Started::New { execution_arn })
    }

    async fn describe(&self, name: &str) -> Result<Option<Execution>, OrchestratorError> {
        let executions = self
            .executions
            .lock()
            .expect("invariant: lock is never poisoned");
        Ok(executions.get(name).map(|(_, status)| Execution {
            arn: format!("arn:memory:execution:{name}"),
            status: *status,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_orchestrator_starts_a_name_once() {
        let o = MemoryOrchestrator::new();
        assert!(matches!(
            o.start("a", "{}").await.unwrap(),
            Started::New { .. }
        ));
        assert!(matches!(
            o.start("a", "{}").await.unwrap(),
            Started::AlreadyExists { .. }
        ));
        let a = o.describe("a").await.unwrap().unwrap();
        assert_eq!(a.status, ExecutionStatus::Running);
        assert!(o.set_status("a", ExecutionStatus::Aborted));
        assert_eq!(
            o.describe("a").await.unwrap().map(|e| e.status),
            Some(ExecutionStatus::Aborted)
        );
        assert!(o.describe("b").await.unwrap().is_none());
        assert!(!o.set_status("b", ExecutionStatus::Failed));
        assert_eq!(o.executions().len(), 1);
    }
}
