//! Test support (feature `test-support`): the local AWS emulator's settings, unique resource
//! names, and a minimal Lambda Runtime API server that drives the real Lambda binaries.
//!
//! The emulator is moto's server, started by `scripts/test.sh` on 127.0.0.1, which exports
//! `AWS_ENDPOINT_URL`; the SDK picks it up like any AWS endpoint.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The emulator's endpoint. Panics with instructions when the suite was not started by
/// `scripts/test.sh`.
pub fn emulator_endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| {
        panic!(
            "AWS_ENDPOINT_URL is not set: run the suite with ./scripts/test.sh, which installs \
             moto and starts its server on 127.0.0.1"
        )
    })
}

/// SDK configuration for the emulator (fixed region and dummy credentials).
#[cfg(feature = "aws")]
pub async fn sdk_config() -> aws_config::SdkConfig {
    let endpoint = emulator_endpoint();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .load()
        .await
}

/// A name no other test (or earlier run) uses: lower-case, valid for buckets and tables.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos % 100_000
    )
}

/// What a Lambda binary answered to one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvocationResult {
    /// `POST …/response` with this body.
    Response(String),
    /// `POST …/error` with this body.
    Error(String),
}

#[derive(Default)]
struct RuntimeState {
    events: VecDeque<(String, String)>,
    results: Vec<(String, InvocationResult)>,
    init_error: Option<String>,
    next_id: u64,
}

/// A minimal implementation of the Lambda Runtime API
/// (`/2018-06-01/runtime/invocation/next`, `…/{id}/response`, `…/{id}/error`,
/// `/2018-06-01/runtime/init/error`), enough to run a real `provided.al2023` binary locally.
pub struct RuntimeApi {
    address: String,
    state: Arc<(Mutex<RuntimeState>, Condvar)>,
}

impl RuntimeApi {
    /// Starts the server on a free port of 127.0.0.1.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let address = listener.local_addr().expect("bound").to_string();
        let state: Arc<(Mutex<RuntimeState>, Condvar)> = Arc::default();
        let server_state = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = Arc::clone(&server_state);
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        RuntimeApi { address, state }
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Queues an invocation; returns its request id.
    pub fn invoke(&self, event: &serde_json::Value) -> String {
        let (lock, signal) = &*self.state;
        let mut state = lock.lock().expect("runtime state");
        state.next_id += 1;
        let id = format!("request-{}", state.next_id);
        state.events.push_back((id.clone(), event.to_string()));
        signal.notify_all();
        id
    }

    /// Waits for the result of invocation `id`.
    pub fn wait(&self, id: &str, timeout: Duration) -> Result<InvocationResult, String> {
        let (lock, signal) = &*self.state;
        let deadline = Instant::now() + timeout;
        let mut state = lock.lock().expect("runtime state");
        loop {
            if let Some((_, result)) = state.results.iter().find(|(r, _)| r == id) {
                return Ok(result.clone());
            }
            if let Some(error) = &state.init_error {
                return Err(format!("the function failed to initialise: {error}"));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(format!("no result for {id} within {timeout:?}"));
            }
            state = signal
                .wait_timeout(state, deadline - now)
                .expect("runtime state")
                .0;
        }
    }
}

fn serve(stream: TcpStream, state: &Arc<(Mutex<RuntimeState>, Condvar)>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let body = String::from_utf8_lossy(&body).into_owned();
        let (lock, signal) = &**state;
        let reply = if method == "GET" && path.ends_with("/runtime/invocation/next") {
            let mut guard = lock.lock().expect("runtime state");
            let (id, event) = loop {
                if let Some(next) = guard.events.pop_front() {
                    break next;
                }
                guard = signal.wait(guard).expect("runtime state");
            };
            drop(guard);
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
                + 300_000;
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: {id}\r\n\
                 Lambda-Runtime-Deadline-Ms: {deadline}\r\n\
                 Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:local\r\n\
                 Lambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000\r\n\
                 Content-Length: {}\r\n\r\n{event}",
                event.len()
            )
        } else if method == "POST" && path.contains("/runtime/invocation/") {
            let id = path
                .trim_start_matches("/2018-06-01/runtime/invocation/")
                .split('/')
                .next()
                .unwrap_or_default()
                .to_string();
            let result = if path.ends_with("/response") {
                InvocationResult::Response(body)
            } else {
                InvocationResult::Error(body)
            };
            lock.lock()
                .expect("runtime state")
                .results
                .push((id, result));
            signal.notify_all();
            "HTTP/1.1 202 Accepted\r\nContent-Length: 16\r\n\r\n{\"status\":\"OK\"}\n".to_string()
        } else if method == "POST" && path.ends_with("/runtime/init/error") {
            lock.lock().expect("runtime state").init_error = Some(body);
            signal.notify_all();
            "HTTP/1.1 202 Accepted\r\nContent-Length: 16\r\n\r\n{\"status\":\"OK\"}\n".to_string()
        } else {
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string()
        };
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// The environment Lambda gives a function, pointing it at `api`.
pub fn lambda_environment(api: &RuntimeApi, function: &str) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_RUNTIME_API", api.address().to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", function.to_string()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512".to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_string()),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "local".to_string()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{function}"),
        ),
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
        ("AWS_ENDPOINT_URL", emulator_endpoint()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}
