//! AWS SDK configuration shared by the binaries and the tests.

/// Loads the SDK configuration the usual way (environment, profiles, SSO, instance and task
/// roles; `AWS_ENDPOINT_URL` for emulators).
pub async fn load_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// An S3 client; `force_path_style` is needed by emulators on `http://host:port`.
pub fn s3_client(config: &aws_config::SdkConfig, force_path_style: bool) -> aws_sdk_s3::Client {
    let s3_config = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(force_path_style)
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}
