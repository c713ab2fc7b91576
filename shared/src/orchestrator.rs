//! Starting one workflow execution per manifest.
//!
//! # Contract
//!
//! * [`Orchestrator::start`] starts the execution named `name` with `input`. Starting a name
//!   that already exists is not an error: it is reported as [`Started::AlreadyExists`], since the
//!   only one who names executions after manifest ids is this pipeline, and a repeat means an
//!   earlier attempt got through. So no manifest is ever run twice.
//! * [`Orchestrator::exists`] tells whether an execution of that name exists; after a failed
//!   start it decides between "it did start after all" and "roll the claims back".

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

    /// The ARN of execution `name`, if it exists.
    fn exists(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<String>, OrchestratorError>> + Send;
}

/// An in-memory orchestrator for unit tests: remembers every execution and its input.
#[derive(Debug, Default)]
pub struct MemoryOrchestrator {
    executions: Mutex<BTreeMap<String, String>>,
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
            .clone()
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
        executions.insert(name.to_string(), input.to_string());
        Ok(Started::New { execution_arn })
    }

    async fn exists(&self, name: &str) -> Result<Option<String>, OrchestratorError> {
        let executions = self
            .executions
            .lock()
            .expect("invariant: lock is never poisoned");
        Ok(executions
            .contains_key(name)
            .then(|| format!("arn:memory:execution:{name}")))
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
        assert!(o.exists("a").await.unwrap().is_some());
        assert!(o.exists("b").await.unwrap().is_none());
        assert_eq!(o.executions().len(), 1);
    }
}
