//! [`Orchestrator`] on Step Functions: one execution per manifest, named after it.

use aws_sdk_sfn::error::SdkError;
use aws_sdk_sfn::Client;

use crate::orchestrator::{Execution, ExecutionStatus, Orchestrator, OrchestratorError, Started};

/// Step Functions, for one state machine.
#[derive(Debug, Clone)]
pub struct StepFunctions {
    client: Client,
    state_machine_arn: String,
}

impl StepFunctions {
    /// An orchestrator starting executions of `state_machine_arn`.
    pub fn new(client: Client, state_machine_arn: impl Into<String>) -> Self {
        StepFunctions {
            client,
            state_machine_arn: state_machine_arn.into(),
        }
    }

    /// `arn:aws:states:R:A:stateMachine:M` → `arn:aws:states:R:A:execution:M:name`.
    pub fn execution_arn(state_machine_arn: &str, name: &str) -> String {
        format!(
            "{}:{name}",
            state_machine_arn.replacen(":stateMachine:", ":execution:", 1)
        )
    }
}

fn service<
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
>(
    operation: &'static str,
) -> impl FnOnce(SdkError<E, R>) -> OrchestratorError {
    move |error| OrchestratorError::Service {
        operation,
        message: crate::aws::describe_error(&error),
    }
}

impl Orchestrator for StepFunctions {
    async fn start(&self, name: &str, input: &str) -> Result<Started, OrchestratorError> {
        let result = self
            .client
            .start_execution()
            .state_machine_arn(&self.state_machine_arn)
            .name(name)
            .input(input)
            .send()
            .await;
        match result {
            Ok(output) => Ok(Started::New {
                execution_arn: output.execution_arn,
            }),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_execution_already_exists()) =>
            {
                Ok(Started::AlreadyExists {
                    execution_arn: Self::execution_arn(&self.state_machine_arn, name),
                })
            }
            Err(error) => Err(service("StartExecution")(error)),
        }
    }

    async fn describe(&self, name: &str) -> Result<Option<Execution>, OrchestratorError> {
        let arn = Self::execution_arn(&self.state_machine_arn, name);
        match self
            .client
            .describe_execution()
            .execution_arn(&arn)
            .send()
            .await
        {
            Ok(output) => {
                let status = output.status.as_str();
                let status =
                    ExecutionStatus::parse(status).ok_or_else(|| OrchestratorError::Service {
                        operation: "DescribeExecution",
                        message: format!("unknown execution status `{status}`"),
                    })?;
                Ok(Some(Execution {
                    arn: output.execution_arn,
                    status,
                }))
            }
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_execution_does_not_exist()) =>
            {
                Ok(None)
            }
            Err(error) => Err(service("DescribeExecution")(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_arns_derive_from_the_state_machine() {
        assert_eq!(
            StepFunctions::execution_arn("arn:aws:states:eu-west-1:123:stateMachine:convert", "m1"),
            "arn:aws:states:eu-west-1:123:execution:convert:m1"
        );
    }
}
