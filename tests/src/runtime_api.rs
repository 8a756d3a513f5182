//! A local Lambda Runtime API, for running the functions' release
//! `bootstrap` binaries the way Lambda runs them: one process per function
//! (one execution environment), started with Lambda's environment, polling
//! this API for events and posting its answers back.
//!
//! The API (`/2018-06-01`, as documented in "Using the Lambda runtime API
//! for custom runtimes"):
//!
//! - `GET  /runtime/invocation/next`: blocks until the test queues an event,
//!   then returns it with `Lambda-Runtime-Aws-Request-Id`,
//!   `Lambda-Runtime-Deadline-Ms`, `Lambda-Runtime-Invoked-Function-Arn` and
//!   `Lambda-Runtime-Trace-Id`;
//! - `POST /runtime/invocation/{id}/response` (202; 413 past Lambda's 6 MB
//!   synchronous response limit; 400 for an id that is not in flight);
//! - `POST /runtime/invocation/{id}/error` (202, with the
//!   `Lambda-Runtime-Function-Error-Type` header);
//! - `POST /runtime/init/error` (202).
//!
//! Anything else is answered 404 and reported as [`Report::Unexpected`], so
//! a test notices a runtime client that calls what Lambda does not serve.
//!
//! Every call is also reported on a channel ([`Report`]), in order. Tests
//! synchronize on that channel — "the function asked for its next event",
//! "the function answered this request id" — never on sleeps.
//! [`FunctionProcess`] wraps one function process and its API.

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// The Runtime API's version prefix.
pub const PREFIX: &str = "/2018-06-01/runtime";
/// Lambda's limit on a synchronous invocation's response.
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;
/// The account id in the ARNs this emulator hands out.
pub const ACCOUNT_ID: &str = "123456789012";
/// The region the emulated functions run in.
pub const REGION: &str = "us-east-1";

/// Something the function process did on the Runtime API, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// `GET /next` arrived: the function is idle and waits for an event.
    Polled,
    /// `POST /invocation/{id}/response`.
    Response { request_id: String, body: Vec<u8> },
    /// `POST /invocation/{id}/error`, or a response Lambda would refuse
    /// (too large).
    Error {
        request_id: String,
        error_type: Option<String>,
        body: Vec<u8>,
    },
    /// `POST /init/error`.
    InitError {
        error_type: Option<String>,
        body: Vec<u8>,
    },
    /// A call Lambda does not serve, or an answer for a request id that is
    /// not in flight; answered 4xx.
    Unexpected {
        method: String,
        path: String,
        status: u16,
    },
}

/// An event waiting for the function's next poll.
struct Queued {
    request_id: String,
    event: Vec<u8>,
    trace_id: String,
}

struct Shared {
    function_arn: String,
    timeout: Duration,
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Queued>>,
    /// Request ids handed to the function and not answered yet.
    in_flight: Mutex<HashSet<String>>,
    reports: mpsc::UnboundedSender<Report>,
    /// When the first `GET /next` arrived, stamped by the handler itself
    /// (not when a test gets round to reading the report).
    first_poll: std::sync::OnceLock<u64>,
}

/// The Runtime API of one function, served on 127.0.0.1 (a free port) until
/// dropped.
pub struct RuntimeApi {
    addr: SocketAddr,
    queue: mpsc::UnboundedSender<Queued>,
    reports: mpsc::UnboundedReceiver<Report>,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RuntimeApi {
    /// Binds a free port and serves the API for `function_name`; events get
    /// a deadline of `timeout` (the function's configured timeout).
    pub async fn start(function_name: &str, timeout: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0 for the Runtime API");
        let addr = listener.local_addr().expect("Runtime API address");
        let (queue, queued) = mpsc::unbounded_channel();
        let (report_tx, reports) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            function_arn: format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}"),
            timeout,
            queue: tokio::sync::Mutex::new(queued),
            in_flight: Mutex::new(HashSet::new()),
            reports: report_tx,
            first_poll: std::sync::OnceLock::new(),
        });
        let router = Router::new()
            .route(&format!("{PREFIX}/invocation/next"), get(next))
            .route(
                &format!("{PREFIX}/invocation/{{id}}/response"),
                post(respond),
            )
            .route(&format!("{PREFIX}/invocation/{{id}}/error"), post(fail))
            .route(&format!("{PREFIX}/init/error"), post(init_error))
            .fallback(unexpected)
            // Read whole bodies up to past the limit, so an oversized
            // response is refused the way Lambda refuses it (413).
            .layer(DefaultBodyLimit::max(MAX_RESPONSE_BYTES + 1024 * 1024))
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            addr,
            queue,
            reports,
            shared,
            task,
        }
    }

    /// When the function first polled ([`monotonic_ns`]), if it has.
    pub fn first_poll_ns(&self) -> Option<u64> {
        self.shared.first_poll.get().copied()
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Queues `event` for the function's next poll; returns its request id.
    pub fn enqueue(&self, event: &serde_json::Value) -> String {
        let request_id = uuid_v4();
        let queued = Queued {
            request_id: request_id.clone(),
            event: serde_json::to_vec(event).expect("serialize the event"),
            trace_id: trace_id(),
        };
        self.queue
            .send(queued)
            .expect("the Runtime API server is running");
        request_id
    }

    /// The next thing the function did; `None` once the server is gone.
    pub async fn next_report(&mut self) -> Option<Report> {
        self.reports.recv().await
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds, read by the thread that spawns a
/// function and by the Runtime API handler its first poll reaches.
pub fn monotonic_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(t.tv_nsec).unwrap_or(0)
}

async fn next(State(s): State<Arc<Shared>>) -> Response {
    s.first_poll.get_or_init(monotonic_ns);
    let _ = s.reports.send(Report::Polled);
    // One poll is served at a time, as Lambda does for one environment.
    let queued = s.queue.lock().await.recv().await;
    let Some(q) = queued else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "emulator shutting down").into_response();
    };
    s.in_flight
        .lock()
        .expect("in-flight set")
        .insert(q.request_id.clone());
    let deadline = SystemTime::now() + s.timeout;
    let deadline_ms = deadline
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    put("content-type", "application/json");
    put("lambda-runtime-aws-request-id", &q.request_id);
    put("lambda-runtime-deadline-ms", &deadline_ms.to_string());
    put("lambda-runtime-invoked-function-arn", &s.function_arn);
    put("lambda-runtime-trace-id", &q.trace_id);
    (StatusCode::OK, headers, q.event).into_response()
}

/// Takes `id` out of flight; otherwise the 400 Lambda answers for an id it
/// did not hand out (or that was already answered).
fn settle(s: &Shared, id: &str, method: &Method, uri: &Uri) -> Option<Response> {
    if s.in_flight.lock().expect("in-flight set").remove(id) {
        return None;
    }
    let _ = s.reports.send(Report::Unexpected {
        method: method.to_string(),
        path: uri.path().to_owned(),
        status: 400,
    });
    Some(lambda_error(
        StatusCode::BAD_REQUEST,
        "InvalidRequestID",
        "no invocation with this request id is in flight",
    ))
}

async fn respond(
    State(s): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    if let Some(refused) = settle(&s, &id, &method, &uri) {
        return refused;
    }
    if body.len() > MAX_RESPONSE_BYTES {
        let _ = s.reports.send(Report::Error {
            request_id: id,
            error_type: Some("Function.ResponseSizeTooLarge".into()),
            body: body.to_vec(),
        });
        return lambda_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            "response payload exceeds Lambda's 6291456 byte limit",
        );
    }
    let _ = s.reports.send(Report::Response {
        request_id: id,
        body: body.to_vec(),
    });
    accepted()
}

async fn fail(
    State(s): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = settle(&s, &id, &method, &uri) {
        return refused;
    }
    let _ = s.reports.send(Report::Error {
        request_id: id,
        error_type: error_type(&headers),
        body: body.to_vec(),
    });
    accepted()
}

async fn init_error(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let _ = s.reports.send(Report::InitError {
        error_type: error_type(&headers),
        body: body.to_vec(),
    });
    accepted()
}

async fn unexpected(State(s): State<Arc<Shared>>, method: Method, uri: Uri) -> Response {
    let _ = s.reports.send(Report::Unexpected {
        method: method.to_string(),
        path: uri.path().to_owned(),
        status: 404,
    });
    lambda_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        "not a Lambda Runtime API route",
    )
}

fn error_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        [("content-type", "application/json")],
        r#"{"status":"OK"}"#,
    )
        .into_response()
}

fn lambda_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    let body = serde_json::json!({ "errorMessage": message, "errorType": error_type });
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A random version-4 UUID, the form of Lambda's request ids.
pub fn uuid_v4() -> String {
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// An X-Ray trace header as Lambda passes it: `Root=1-<epoch hex>-<24 hex>`.
fn trace_id() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    format!(
        "Root=1-{secs:08x}-{};Parent={};Sampled=0",
        hex::encode(random_bytes::<12>()),
        hex::encode(random_bytes::<8>())
    )
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut out))
        .expect("read /dev/urandom");
    out
}

// -------------------------------------------------------- the process --

/// What one invocation came back as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The function's response document (for `lambda_http`, the function
    /// URL response: `statusCode`, `headers`, `body`, `isBase64Encoded`).
    Response { request_id: String, body: Vec<u8> },
    /// The function reported an invocation error.
    Error {
        request_id: String,
        error_type: Option<String>,
        body: Vec<u8>,
    },
}

/// The Lambda configuration of one emulated function.
#[derive(Debug, Clone)]
pub struct FunctionConfig {
    pub name: String,
    pub memory_mb: u32,
    pub timeout: Duration,
    /// `PR_SET_PDEATHSIG`, so the process cannot outlive the test binary
    /// (on by default). Setting it needs a hook between fork and exec, which
    /// makes std fork this whole test process; `make bench`'s cold starts
    /// turn it off, so std starts the function with `posix_spawn` (a vfork:
    /// nothing of this process is copied, and the spawn returns as soon as
    /// the exec has succeeded).
    pub die_with_parent: bool,
}

impl FunctionConfig {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            memory_mb: 128,
            timeout: Duration::from_secs(30),
            die_with_parent: true,
        }
    }
}

/// Whether the process has been reaped, guarded so the PID is never
/// signalled after it may have been reused.
struct ExitState {
    exited: Mutex<bool>,
}

/// One function process (an execution environment) and its Runtime API.
///
/// The process is spawned from a keeper thread that waits for it, with
/// `PR_SET_PDEATHSIG` (unless [`FunctionConfig::die_with_parent`] is off),
/// so it cannot outlive the test binary; dropping the handle kills it.
pub struct FunctionProcess {
    pub config: FunctionConfig,
    pub pid: i32,
    /// stdout and stderr of the process (its "CloudWatch" log).
    pub log: PathBuf,
    api: RuntimeApi,
    exit: watch::Receiver<Option<ExitStatus>>,
    exit_state: Arc<ExitState>,
    /// When the spawn began ([`monotonic_ns`]): the process's start.
    spawn_began_ns: u64,
    polls: u64,
    answered: u64,
}

/// How long a test waits for one step before failing (not a
/// synchronization: every wait ends on a report or the process's exit).
const STEP_LIMIT: Duration = Duration::from_secs(60);

static SPAWNED: AtomicU64 = AtomicU64::new(0);

impl FunctionProcess {
    /// Starts `binary` as Lambda starts a custom runtime's `bootstrap`: a
    /// clean environment holding only what Lambda sets (function name,
    /// memory, version, log group and stream, region, credentials,
    /// `AWS_LAMBDA_RUNTIME_API`, `TZ`, `LANG`, `PATH`, `LAMBDA_TASK_ROOT`)
    /// plus `env` (the function's configured variables).
    pub async fn spawn(
        binary: &Path,
        config: FunctionConfig,
        env: &[(String, String)],
        log: &Path,
    ) -> Self {
        let api = RuntimeApi::start(&config.name, config.timeout).await;
        let log_file =
            File::create(log).unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let log_err = log_file
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot reopen {}: {e}", log.display()));
        let task_root = binary.parent().unwrap_or(Path::new("/"));
        let stream = format!(
            "{}/[$LATEST]{}",
            chrono::Utc::now().format("%Y/%m/%d"),
            hex::encode(random_bytes::<16>())
        );
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LANG", "en_US.UTF-8")
            .env("TZ", ":UTC")
            .env("LAMBDA_TASK_ROOT", task_root)
            .env("_HANDLER", "bootstrap")
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", &config.name)
            .env(
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                config.memory_mb.to_string(),
            )
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", config.name),
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", stream)
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .env("AWS_REGION", REGION)
            .env("AWS_DEFAULT_REGION", REGION)
            // The execution role's temporary credentials; fake ones here.
            .env("AWS_ACCESS_KEY_ID", "ASIALAMBDAEMULATOR00")
            .env("AWS_SECRET_ACCESS_KEY", "emulator-secret-access-key")
            .env("AWS_SESSION_TOKEN", "emulator-session-token")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(task_root)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err);
        if config.die_with_parent {
            crate::die_with_parent(&mut command, libc::SIGKILL);
        }

        let exit_state = Arc::new(ExitState {
            exited: Mutex::new(false),
        });
        let (exit_tx, exit) = watch::channel(None);
        let (pid_tx, pid_rx) = std::sync::mpsc::channel::<std::io::Result<(i32, u64)>>();
        let keeper_state = Arc::clone(&exit_state);
        let n = SPAWNED.fetch_add(1, Ordering::Relaxed);
        std::thread::Builder::new()
            .name(format!("lambda-{}-{n}", config.name))
            .spawn(move || {
                let spawn_began = monotonic_ns();
                let mut child = match command.spawn() {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = pid_tx.send(Err(e));
                        return;
                    }
                };
                let pid = i32::try_from(child.id()).unwrap_or(0);
                let _ = pid_tx.send(Ok((pid, spawn_began)));
                // Wait for the exit without reaping (WNOWAIT), mark it under
                // the lock, then reap: a kill under the lock therefore always
                // hits this process (alive or a zombie), never a reused PID.
                // SAFETY: plain waitid on our own child.
                unsafe {
                    let mut info: libc::siginfo_t = std::mem::zeroed();
                    while libc::waitid(
                        libc::P_PID,
                        pid as libc::id_t,
                        &mut info,
                        libc::WEXITED | libc::WNOWAIT,
                    ) != 0
                        && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
                    {
                    }
                }
                let mut exited = keeper_state.exited.lock().expect("exit state");
                *exited = true;
                let status = child.wait().ok();
                drop(exited);
                let _ = exit_tx.send(status);
            })
            .expect("spawn the function keeper thread");
        let (pid, spawn_began) = match pid_rx.recv() {
            Ok(Ok(spawned)) => spawned,
            Ok(Err(e)) => panic!("cannot start {}: {e}", binary.display()),
            Err(_) => panic!("the keeper thread of {} died", binary.display()),
        };
        Self {
            config,
            pid,
            log: log.to_path_buf(),
            api,
            exit,
            exit_state,
            spawn_began_ns: spawn_began,
            polls: 0,
            answered: 0,
        }
    }

    /// Waits for the first poll of the Runtime API (the end of the cold
    /// start); returns the time from the spawn's beginning to that poll
    /// (stamped by the Runtime API handler as it arrives). The clock starts
    /// before the spawn, not at its return: the spawning thread may wait
    /// for a CPU after the exec while the new program already runs (always,
    /// on a shared CPU, for a program that never blocks before its first
    /// poll), and would then start the clock late. The spawn itself
    /// (`posix_spawn`, so no copy of the harness's memory; the exec) is the
    /// same for every binary, and part of a real cold start.
    pub async fn cold_start(&mut self) -> Duration {
        while self.polls == 0 {
            self.step("its first poll (cold start)").await;
        }
        let polled = self.api.first_poll_ns().unwrap_or_else(monotonic_ns);
        Duration::from_nanos(polled.saturating_sub(self.spawn_began_ns))
    }

    /// Sends one event and waits for the function's answer to it.
    pub async fn invoke(&mut self, event: &serde_json::Value) -> Outcome {
        let id = self.api.enqueue(event);
        loop {
            match self.step(&format!("the answer to {id}")).await {
                Report::Response { request_id, body } if request_id == id => {
                    self.answered += 1;
                    return Outcome::Response { request_id, body };
                }
                Report::Error {
                    request_id,
                    error_type,
                    body,
                } if request_id == id => {
                    self.answered += 1;
                    return Outcome::Error {
                        request_id,
                        error_type,
                        body,
                    };
                }
                Report::Polled => {}
                other => self.fail(&format!("unexpected Runtime API call {other:?}")),
            }
        }
    }

    /// Waits until the function has answered everything it was sent and
    /// polls for more: the idle state between invocations.
    pub async fn until_idle(&mut self) {
        while self.polls < self.answered + 1 {
            match self.step("its next poll").await {
                Report::Polled => {}
                other => self.fail(&format!("unexpected Runtime API call {other:?}")),
            }
        }
    }

    /// How many invocations the function has answered.
    pub fn invocations(&self) -> u64 {
        self.answered
    }

    /// Peak resident set size so far (`VmHWM`) and the current one
    /// (`VmRSS`), in KiB, read from `/proc/<pid>/status`.
    pub fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .unwrap_or_else(|e| self.fail(&format!("cannot read /proc/{}/status: {e}", self.pid)));
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
                .unwrap_or_else(|| self.fail(&format!("no {name} in /proc/{}/status", self.pid)))
        };
        (field("VmHWM:"), field("VmRSS:"))
    }

    /// The process's output so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the process (Lambda freezes, then eventually kills, idle
    /// environments) and waits until it is gone.
    pub async fn stop(mut self) {
        self.kill();
        while self.exit.borrow().is_none() {
            if self.exit.changed().await.is_err() {
                break;
            }
        }
    }

    fn kill(&self) {
        let exited = self.exit_state.exited.lock().expect("exit state");
        if !*exited {
            // SAFETY: the process is alive or an unreaped zombie (see spawn).
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
            }
        }
    }

    /// The next report, failing the test if the process exits first or the
    /// step takes longer than [`STEP_LIMIT`].
    async fn step(&mut self, waiting_for: &str) -> Report {
        enum Step {
            Report(Option<Report>),
            Exited(String),
            TimedOut,
        }
        let step = tokio::select! {
            // What the process said before it exited is still reported.
            biased;
            r = self.api.next_report() => Step::Report(r),
            status = self.exit.wait_for(Option::is_some) => {
                Step::Exited(
                    status
                        .ok()
                        .and_then(|s| s.as_ref().map(ToString::to_string))
                        .unwrap_or_else(|| "exit status unknown".into()),
                )
            }
            () = tokio::time::sleep(STEP_LIMIT) => Step::TimedOut,
        };
        let report = match step {
            Step::Report(r) => r,
            Step::Exited(status) => self.fail(&format!(
                "exited ({status}) while waiting for {waiting_for}"
            )),
            Step::TimedOut => self.fail(&format!(
                "no Runtime API call within {STEP_LIMIT:?} while waiting for {waiting_for}"
            )),
        };
        let report = report.unwrap_or_else(|| self.fail("the Runtime API server stopped"));
        match &report {
            Report::Polled => self.polls += 1,
            Report::InitError { error_type, body } => self.fail(&format!(
                "reported an init error {error_type:?}: {}",
                String::from_utf8_lossy(body)
            )),
            _ => {}
        }
        report
    }

    /// Panics with the function's name and the tail of its log.
    pub fn fail(&self, what: &str) -> ! {
        let log = self.log_text();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        panic!(
            "{} (pid {}): {what}\n--- {} (last 30 lines) ---\n{tail}",
            self.config.name,
            self.pid,
            self.log.display()
        );
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn api() -> (RuntimeApi, String, reqwest::Client) {
        let api = RuntimeApi::start("probe", Duration::from_secs(3)).await;
        let base = format!("http://{}{PREFIX}", api.address());
        (api, base, reqwest::Client::new())
    }

    #[tokio::test]
    async fn next_hands_out_the_event_with_lambdas_headers_and_takes_one_answer() {
        let (mut api, base, http) = api().await;
        let id = api.enqueue(&serde_json::json!({"hello": "world"}));
        let res = http
            .get(format!("{base}/invocation/next"))
            .send()
            .await
            .unwrap();
        assert_eq!(api.next_report().await, Some(Report::Polled));
        assert_eq!(res.status(), 200);
        let h = res.headers().clone();
        assert_eq!(h["lambda-runtime-aws-request-id"], id.as_str());
        assert_eq!(
            h["lambda-runtime-invoked-function-arn"],
            "arn:aws:lambda:us-east-1:123456789012:function:probe"
        );
        assert!(
            h["lambda-runtime-trace-id"]
                .to_str()
                .unwrap()
                .starts_with("Root=1-")
        );
        let deadline: u128 = h["lambda-runtime-deadline-ms"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        assert!(
            deadline > now.as_millis() && deadline <= (now + Duration::from_secs(3)).as_millis()
        );
        assert_eq!(res.text().await.unwrap(), r#"{"hello":"world"}"#);

        let answer = |suffix: &str| {
            http.post(format!("{base}/invocation/{id}/{suffix}"))
                .body("{}")
                .send()
        };
        assert_eq!(answer("response").await.unwrap().status(), 202);
        assert_eq!(
            api.next_report().await,
            Some(Report::Response {
                request_id: id.clone(),
                body: b"{}".to_vec()
            })
        );
        // Answered already: refused, and reported.
        assert_eq!(answer("error").await.unwrap().status(), 400);
        assert!(matches!(
            api.next_report().await,
            Some(Report::Unexpected { status: 400, .. })
        ));
    }

    #[tokio::test]
    async fn errors_init_errors_oversized_responses_and_unknown_routes_are_reported() {
        let (mut api, base, http) = api().await;
        let init = http
            .post(format!("{base}/init/error"))
            .header("lambda-runtime-function-error-type", "Runtime.InitError")
            .body(r#"{"errorMessage":"no config"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(init.status(), 202);
        assert!(matches!(
            api.next_report().await,
            Some(Report::InitError { error_type: Some(t), .. }) if t == "Runtime.InitError"
        ));

        for (answer, body) in [
            ("error", vec![b'x']),
            ("response", vec![b'x'; MAX_RESPONSE_BYTES + 1]),
        ] {
            let id = api.enqueue(&serde_json::json!({}));
            http.get(format!("{base}/invocation/next"))
                .send()
                .await
                .unwrap();
            assert_eq!(api.next_report().await, Some(Report::Polled));
            let res = http
                .post(format!("{base}/invocation/{id}/{answer}"))
                .header("lambda-runtime-function-error-type", "Handler.Failed")
                .body(body)
                .send()
                .await
                .unwrap();
            let (status, expected_type) = match answer {
                "error" => (202, "Handler.Failed"),
                _ => (413, "Function.ResponseSizeTooLarge"),
            };
            assert_eq!(res.status(), status, "{answer}");
            assert!(matches!(
                api.next_report().await,
                Some(Report::Error { request_id, error_type: Some(t), .. })
                    if request_id == id && t == expected_type
            ));
        }

        let res = http
            .get(format!("{base}/invocation/nope"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
        assert!(matches!(
            api.next_report().await,
            Some(Report::Unexpected { status: 404, .. })
        ));
    }
}
