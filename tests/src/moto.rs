//! A real DynamoDB-compatible server for the DynamoDB store tests: moto's
//! `moto_server`, from the project's `.venv` (the Makefile installs it).
//!
//! One server per test binary, started on first use on a free port of
//! 127.0.0.1 and stopped by PID when the binary exits:
//!
//! - an `atexit` handler sends it SIGTERM (libtest leaves through
//!   `std::process::exit` or a normal return from `main`; both run `atexit`
//!   handlers), waits briefly and SIGKILLs it if it is still there;
//! - the child also asks the kernel for SIGTERM when its parent dies
//!   (`PR_SET_PDEATHSIG`), so a test binary that crashes or is killed does
//!   not leak it. That signal fires when the *thread* that spawned the child
//!   ends, so the child is spawned from a keeper thread that lives as long as
//!   the process, never from a (short-lived) test thread.
//!
//! Each test gets its own table ([`fresh_store`]), so tests run in parallel
//! against one server without seeing each other's data.
//!
//! moto serves each request on its own thread and its DynamoDB backend takes
//! no lock: under truly parallel requests a conditional write can pass a
//! condition another request has just invalidated, and a cancelled
//! transaction rolls the whole table back to a snapshot, erasing writes made
//! meanwhile (the conformance suite's races showed both). DynamoDB applies
//! each conditional write and each transaction atomically, so the harness
//! runs moto's own `main` behind one lock around request handling
//! ([`SERIALIZED_MOTO`]): clients still race, the server answers one request
//! at a time — what the store's conditions are meant to be judged against.
//!
//! If `moto_server` is missing or does not answer, every test that asks for
//! it panics: the DynamoDB tests fail, they never pass by not running.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use tollgate::store::dynamo::{DynamoStore, create_table};

/// How long a cold moto may take to answer (it imports a lot of Python).
const READY_DEADLINE: Duration = Duration::from_secs(30);
/// Attempts with a new port if moto exits at once (e.g. the port was taken
/// between our probe and its bind).
const START_ATTEMPTS: u32 = 3;

/// `moto_server`'s entry point with request handling serialized (see the
/// module docs). Arguments after `-c` are moto's own (`-H`, `-p`).
const SERIALIZED_MOTO: &str = "\
import sys, threading
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.server import main

_lock = threading.Lock()
_call = DomainDispatcherApplication.__call__

def _one_at_a_time(self, environ, start_response):
    with _lock:
        return _call(self, environ, start_response)

DomainDispatcherApplication.__call__ = _one_at_a_time
main(sys.argv[1:])
";

/// The running server, shared by every test of this binary.
#[derive(Debug)]
pub struct Moto {
    /// `http://127.0.0.1:<port>`
    pub endpoint: String,
    pub pid: i32,
    pub log: PathBuf,
}

static SERVER: OnceLock<Moto> = OnceLock::new();
/// PID for the `atexit` handler (0: nothing to stop).
static PID: AtomicI32 = AtomicI32::new(0);
static TABLES: AtomicU64 = AtomicU64::new(0);

/// The server, started on first call. Panics if it cannot be started.
pub fn server() -> &'static Moto {
    SERVER.get_or_init(start)
}

/// The server's URL, e.g. `http://127.0.0.1:40123`.
pub fn endpoint() -> &'static str {
    &server().endpoint
}

/// A DynamoDB client for the server: static test credentials, us-east-1.
/// Build one per test: the SDK's connections belong to the tokio runtime
/// that opened them, and every `#[tokio::test]` has its own.
pub fn client() -> Client {
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(tollgate::https::SdkHttpClient::new())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "moto-static"))
        .endpoint_url(endpoint())
        .build();
    Client::from_conf(conf)
}

/// A new, uniquely named table with the production layout and a store on it.
pub async fn fresh_store() -> DynamoStore {
    let client = client();
    let table = format!(
        "tollgate-test-{}-{}",
        std::process::id(),
        TABLES.fetch_add(1, Ordering::Relaxed)
    );
    if let Err(e) = create_table(&client, &table).await {
        panic!(
            "creating table {table} on moto at {} failed: {e} (server log: {})",
            endpoint(),
            server().log.display()
        );
    }
    DynamoStore::new(client, table)
}

fn workspace_root() -> PathBuf {
    // tests/ is a member directly under the workspace root.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn moto_binary() -> PathBuf {
    let path = match std::env::var_os("TOLLGATE_MOTO_SERVER") {
        Some(p) => PathBuf::from(p),
        None => workspace_root().join(".venv/bin/moto_server"),
    };
    if !path.is_file() {
        panic!(
            "moto_server not found — run `make test` (it installs moto into .venv); looked at {} \
             (set TOLLGATE_MOTO_SERVER to use another)",
            path.display()
        );
    }
    path
}

/// The interpreter `moto_server` runs on: the venv's `python3` next to it,
/// else the script's `#!` line.
fn interpreter(moto_server: &Path) -> (PathBuf, Vec<String>) {
    let sibling = moto_server.with_file_name("python3");
    if sibling.is_file() {
        return (sibling, Vec::new());
    }
    let script = std::fs::read(moto_server).unwrap_or_default();
    let first = script.split(|b| *b == b'\n').next().unwrap_or_default();
    let shebang = String::from_utf8_lossy(first);
    let mut words = shebang
        .strip_prefix("#!")
        .unwrap_or_default()
        .split_whitespace();
    match words.next() {
        Some(program) if !program.ends_with("/sh") => {
            (PathBuf::from(program), words.map(str::to_owned).collect())
        }
        _ => panic!(
            "cannot tell which Python runs {}: no python3 beside it and no usable #! line",
            moto_server.display()
        ),
    }
}

/// `<target>/<profile>/moto/<test binary>.log`, next to the binary itself.
fn log_path() -> PathBuf {
    let exe = std::env::current_exe().ok();
    let stem = exe
        .as_deref()
        .and_then(|e| e.file_stem())
        .map_or_else(|| "tests".into(), |s| s.to_string_lossy().into_owned());
    let dir = exe
        .as_deref()
        .and_then(Path::parent) // deps/
        .and_then(Path::parent) // <profile>/
        .map_or_else(
            || workspace_root().join("target"),
            std::path::Path::to_path_buf,
        )
        .join("moto");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("cannot create {}: {e}", dir.display());
    }
    dir.join(format!("{stem}.log"))
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0")
        .unwrap_or_else(|e| panic!("cannot bind a probe socket on 127.0.0.1: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("probe socket has no address: {e}"))
        .port()
}

fn start() -> Moto {
    let binary = moto_binary();
    let log = log_path();
    let mut last_error = String::new();
    for _ in 0..START_ATTEMPTS {
        let port = free_port();
        let pid = spawn_kept(&binary, port, &log);
        PID.store(pid, Ordering::SeqCst);
        register_atexit();
        match wait_ready(pid, port) {
            Ok(()) => {
                return Moto {
                    endpoint: format!("http://127.0.0.1:{port}"),
                    pid,
                    log,
                };
            }
            Err(e) => {
                stop(pid);
                PID.store(0, Ordering::SeqCst);
                last_error = e;
            }
        }
    }
    let tail = std::fs::read_to_string(&log).unwrap_or_default();
    let tail: String = tail
        .lines()
        .rev()
        .take(20)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    panic!(
        "moto_server ({}) did not start: {last_error}\n--- {} ---\n{tail}",
        binary.display(),
        log.display()
    );
}

/// Spawns moto from a thread that never ends (see the module docs on
/// `PR_SET_PDEATHSIG`) and returns its PID.
fn spawn_kept(binary: &Path, port: u16, log: &Path) -> i32 {
    let open_log = || {
        std::fs::File::create(log)
            .unwrap_or_else(|e| panic!("cannot create moto log {}: {e}", log.display()))
    };
    let (stdout, stderr) = (open_log(), open_log());
    let (python, python_args) = interpreter(binary);
    let mut command = Command::new(python);
    command
        .args(python_args)
        .args([
            "-c",
            SERIALIZED_MOTO,
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    crate::die_with_parent(&mut command, libc::SIGTERM);

    let (tx, rx) = mpsc::channel::<std::io::Result<i32>>();
    let spawned = std::thread::Builder::new()
        .name(format!("moto-keeper-{port}"))
        .spawn(move || {
            let child: Child = match command.spawn() {
                Ok(c) => c,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let pid = i32::try_from(child.id()).unwrap_or(0);
            let _ = tx.send(Ok(pid));
            // Keep this thread (the child's "parent" for PDEATHSIG) and the
            // handle alive until the process exits; `stop` reaps the child.
            let _child = child;
            loop {
                std::thread::park();
            }
        });
    if let Err(e) = spawned {
        panic!("cannot start the moto keeper thread: {e}");
    }
    match rx.recv() {
        Ok(Ok(pid)) if pid > 0 => pid,
        Ok(Ok(_)) => panic!("moto_server got an unusable PID"),
        Ok(Err(e)) => panic!("cannot run {}: {e}", binary.display()),
        Err(_) => panic!("the moto keeper thread died before reporting"),
    }
}

/// Polls `GET /moto-api/` until it answers 200, the process exits or the
/// deadline passes.
fn wait_ready(pid: i32, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + READY_DEADLINE;
    loop {
        if !alive(pid) {
            return Err(format!("it exited before answering on port {port}"));
        }
        if answers(port) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no answer on port {port} within {}s",
                READY_DEADLINE.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request =
        format!("GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

/// Whether `pid` (our child) is still running; reaps it if it exited.
fn alive(pid: i32) -> bool {
    let mut status = 0;
    // SAFETY: plain syscall on our own child's PID.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    r == 0
}

/// SIGTERM, up to 2 s of grace, then SIGKILL; reaps the child.
fn stop(pid: i32) {
    if pid <= 0 {
        return;
    }
    // SAFETY: signals and waitpid on our own child's PID.
    unsafe {
        if libc::kill(pid, libc::SIGTERM) != 0 {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if !alive(pid) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        libc::kill(pid, libc::SIGKILL);
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
    }
}

extern "C" fn stop_at_exit() {
    stop(PID.swap(0, Ordering::SeqCst));
}

fn register_atexit() {
    static REGISTERED: OnceLock<()> = OnceLock::new();
    REGISTERED.get_or_init(|| {
        // SAFETY: registers a plain `extern "C" fn` with no captured state.
        if unsafe { libc::atexit(stop_at_exit) } != 0 {
            panic!("cannot register the moto atexit handler");
        }
    });
}
