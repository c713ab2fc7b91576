//! The AWS edge (feature `aws`): SDK configuration and clients, and the AWS implementations
//! of the store traits: [`s3::S3Blobs`] ([`crate::blobs::BlobStore`]), [`sfn::StepFunctions`]
//! ([`crate::orchestrator::Orchestrator`]) and [`ledger::DynamoLedger`]
//! ([`crate::ledger::Ledger`]).
//! Nothing else in this crate names the AWS SDK.
//!
//! The binaries build every client here, so that the end-to-end suite's fault injection
//! (feature `fault-injection`, `shared::faults`) reaches every AWS call they make.

pub mod ledger;
pub mod s3;
pub mod sfn;

pub use ledger::DynamoLedger;
pub use s3::S3Blobs;
pub use sfn::StepFunctions;

/// Adds the fault injector of the environment's plan, if any, to a client config builder.
#[cfg(feature = "fault-injection")]
macro_rules! with_faults {
    ($builder:expr) => {
        match crate::faults::FaultInjector::from_env() {
            Some(injector) => $builder.interceptor(injector),
            None => $builder,
        }
    };
}

/// Loads the SDK configuration the usual way (environment, profiles, SSO, instance and task
/// roles; `AWS_ENDPOINT_URL` for emulators).
pub async fn load_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// An S3 client; `force_path_style` is needed by emulators on `http://host:port`.
pub fn s3_client(config: &aws_config::SdkConfig, force_path_style: bool) -> aws_sdk_s3::Client {
    let builder = aws_sdk_s3::config::Builder::from(config).force_path_style(force_path_style);
    #[cfg(feature = "fault-injection")]
    let builder = with_faults!(builder);
    aws_sdk_s3::Client::from_conf(builder.build())
}

/// A DynamoDB client.
pub fn dynamodb_client(config: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    let builder = aws_sdk_dynamodb::config::Builder::from(config);
    #[cfg(feature = "fault-injection")]
    let builder = with_faults!(builder);
    aws_sdk_dynamodb::Client::from_conf(builder.build())
}

/// A Step Functions client.
pub fn sfn_client(config: &aws_config::SdkConfig) -> aws_sdk_sfn::Client {
    let builder = aws_sdk_sfn::config::Builder::from(config);
    #[cfg(feature = "fault-injection")]
    let builder = with_faults!(builder);
    aws_sdk_sfn::Client::from_conf(builder.build())
}

/// A KMS client.
pub fn kms_client(config: &aws_config::SdkConfig) -> aws_sdk_kms::Client {
    let builder = aws_sdk_kms::config::Builder::from(config);
    #[cfg(feature = "fault-injection")]
    let builder = with_faults!(builder);
    aws_sdk_kms::Client::from_conf(builder.build())
}

/// A one-line description of an SDK error: the service's error code and message when the
/// service answered, else the SDK's own account (timeouts, connection failures).
pub fn describe_error<E, R>(error: &aws_sdk_dynamodb::error::SdkError<E, R>) -> String
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error {
        aws_sdk_dynamodb::error::SdkError::ServiceError(service) => {
            let err = service.err();
            format!(
                "{}: {}",
                err.code().unwrap_or("ServiceError"),
                err.message().unwrap_or("(no message)")
            )
        }
        other => aws_sdk_dynamodb::error::DisplayErrorContext(other).to_string(),
    }
}

/// The error of a conditional write (`PutItem`, `UpdateItem`, `DeleteItem`), for the DynamoDB
/// ledger's one helper that turns a refused condition into `false`.
pub(crate) trait ConditionalWriteError:
    aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static
{
    /// Whether DynamoDB refused the write because its condition was false
    /// (`ConditionalCheckFailedException`).
    fn condition_failed(&self) -> bool;
}

macro_rules! conditional_write_error {
    ($($error:ty),+) => {$(
        impl ConditionalWriteError for $error {
            fn condition_failed(&self) -> bool {
                self.is_conditional_check_failed_exception()
            }
        }
    )+};
}

conditional_write_error!(
    aws_sdk_dynamodb::operation::put_item::PutItemError,
    aws_sdk_dynamodb::operation::update_item::UpdateItemError,
    aws_sdk_dynamodb::operation::delete_item::DeleteItemError
);

/// The server-side encryption every object this pipeline writes carries: SSE-KMS under the
/// configured key with an S3 Bucket Key (one KMS call per bucket and key instead of one per
/// object), or the bucket's default encryption when no key is configured. One definition for
/// every request that creates an object (`PutObject`, `CreateMultipartUpload`).
pub trait SseKms: Sized {
    /// Sets SSE-KMS under `kms_key_id`; `None` leaves the request unchanged.
    fn sse_kms(self, kms_key_id: Option<&str>) -> Self;
}

macro_rules! sse_kms_for {
    ($($builder:ty),+) => {$(
        impl SseKms for $builder {
            fn sse_kms(self, kms_key_id: Option<&str>) -> Self {
                match kms_key_id {
                    Some(key) => self
                        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
                        .ssekms_key_id(key)
                        .bucket_key_enabled(true),
                    None => self,
                }
            }
        }
    )+};
}

sse_kms_for!(
    aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder,
    aws_sdk_s3::operation::create_multipart_upload::builders::CreateMultipartUploadFluentBuilder
);
