//! The example proxy as a child process, a raw-socket origin that counts
//! and records what reaches it, and a raw-socket client. Every wait is
//! bounded.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The longest any single step of a test may take.
pub(crate) const STEP: Duration = Duration::from_secs(10);

/// Runs `future`, failing the test if it takes longer than [`STEP`].
pub(crate) async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out: {what}"),
    }
}

/// The example's executable, built once per test run (`cargo test` builds
/// examples, `cargo test --test reverse_proxy_hostile` does not).
pub(crate) fn proxy_executable() -> &'static str {
    static EXECUTABLE: OnceLock<String> = OnceLock::new();
    EXECUTABLE.get_or_init(|| {
        let release = std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.parent()?.file_name()? == "release"))
            .unwrap_or(false);
        let mut build = Command::new(env!("CARGO"));
        build
            .args(["build", "--quiet", "--example", "reverse_proxy"])
            .args(["--message-format", "json"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stderr(Stdio::inherit());
        if release {
            build.arg("--release");
        }
        let output = build.output().expect("cargo builds the example");
        assert!(output.status.success(), "building the example failed");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|line| line.contains("\"name\":\"reverse_proxy\""))
            .find_map(|line| {
                let start = line.find("\"executable\":\"")? + "\"executable\":\"".len();
                let end = start + line[start..].find('"')?;
                Some(line[start..end].to_owned())
            })
            .expect("cargo names the example's executable")
    })
}

/// A running `reverse_proxy` example, killed when dropped.
#[derive(Debug)]
pub(crate) struct Proxy {
    child: Child,
    pub(crate) addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Proxy {
    /// Starts the proxy in front of `origin` with extra `flags`.
    pub(crate) fn start(origin: SocketAddr, flags: &[&str]) -> Self {
        Self::start_with(Command::new(proxy_executable()), origin, flags)
    }

    /// Starts the proxy allowed at most `files` open file descriptors.
    pub(crate) fn start_with_file_limit(files: u32, origin: SocketAddr, flags: &[&str]) -> Self {
        let mut command = Command::new("sh");
        command
            .args(["-c", r#"ulimit -n "$0" && exec "$@""#])
            .arg(files.to_string())
            .arg(proxy_executable());
        Self::start_with(command, origin, flags)
    }

    fn start_with(mut command: Command, origin: SocketAddr, flags: &[&str]) -> Self {
        let mut child = command
            .args(["--listen", "127.0.0.1:0", "--upstream"])
            .arg(format!("http://{origin}"))
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the proxy starts");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut stderr_pipe = child.stderr.take().expect("piped stderr");
        let collected = stderr.clone();
        std::thread::spawn(move || {
            let mut chunk = [0; 4096];
            while let Ok(read @ 1..) = stderr_pipe.read(&mut chunk) {
                let text = String::from_utf8_lossy(&chunk[..read]);
                collected.lock().unwrap().push_str(&text);
            }
        });
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("proxying http://") {
                    let addr = rest.split_whitespace().next().unwrap_or_default();
                    let _ = addr_tx.send(addr.parse::<SocketAddr>());
                }
            }
        });
        let addr = addr_rx
            .recv_timeout(STEP)
            .expect("the proxy prints its address")
            .expect("a socket address");
        Self {
            child,
            addr,
            stderr,
        }
    }

    /// The process's id (for `tests/reverse_proxy_memory.rs`).
    #[allow(dead_code)]
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the proxy has logged so far.
    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Whether the process is still running.
    pub(crate) fn is_running(&mut self) -> bool {
        self.child
            .try_wait()
            .expect("the proxy can be waited for")
            .is_none()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the origin does with one request.
#[derive(Debug, Clone)]
pub(crate) enum Reply {
    /// Writes these bytes, keeping the connection for the next request.
    KeepAlive(Vec<u8>),
    /// Writes these bytes and closes (a close-delimited answer).
    Close(Vec<u8>),
    /// Writes these bytes, then says nothing more for a minute.
    ThenSilent(Vec<u8>),
}

/// An origin on a raw socket: it reads request heads (no bodies), records
/// them, and answers as `reply` says.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub(crate) addr: SocketAddr,
    calls: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Origin {
    pub(crate) async fn start(reply: fn(&str) -> Reply) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = Self {
            addr: listener.local_addr().unwrap(),
            calls: Arc::default(),
            heads: Arc::default(),
        };
        let recorder = origin.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(recorder.clone().serve(stream, reply));
            }
        });
        origin
    }

    async fn serve(self, mut stream: TcpStream, reply: fn(&str) -> Reply) {
        let mut buffer = Vec::new();
        loop {
            let head = loop {
                if let Some(end) = find(&buffer, b"\r\n\r\n") {
                    let head: Vec<u8> = buffer.drain(..end + 4).collect();
                    break String::from_utf8_lossy(&head).into_owned();
                }
                let mut chunk = [0; 4096];
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(read) => buffer.extend_from_slice(&chunk[..read]),
                }
            };
            self.calls.fetch_add(1, Ordering::SeqCst);
            let answer = reply(&head);
            self.heads.lock().unwrap().push(head);
            match answer {
                Reply::KeepAlive(bytes) => {
                    if stream.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                Reply::Close(bytes) => {
                    let _ = stream.write_all(&bytes).await;
                    return;
                }
                Reply::ThenSilent(bytes) => {
                    let _ = stream.write_all(&bytes).await;
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    return;
                }
            }
        }
    }

    /// Requests that reached the origin.
    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Waits (bounded) until `calls` requests have reached the origin.
    pub(crate) async fn wait_for_calls(&self, calls: usize) {
        bounded(&format!("{calls} origin calls"), async {
            while self.calls() < calls {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
    }

    /// The request heads received, in order.
    pub(crate) fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

/// An HTTP/1.1 answer with a `Content-Length` body.
pub(crate) fn answer(status: &str, headers: &[&str], body: &str) -> Vec<u8> {
    let mut text = format!("HTTP/1.1 {status}\r\n");
    for header in headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    text.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    text.into_bytes()
}

/// The value of header `name` in a raw head (first line wins).
pub(crate) fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (field, value) = line.split_once(':')?;
        field.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// A response as a raw client reads it.
#[derive(Debug)]
pub(crate) struct Raw {
    pub(crate) status: u16,
    pub(crate) head: String,
    pub(crate) body: Vec<u8>,
}

impl Raw {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        header(&self.head, name)
    }

    pub(crate) fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("a UTF-8 body")
    }
}

/// Sends `request` as-is on a new connection and reads one response: its
/// head, then `Content-Length` bytes or everything until the proxy closes.
pub(crate) async fn exchange(proxy: SocketAddr, request: &str) -> Raw {
    bounded(&format!("an answer to {request:?}"), async {
        let mut stream = TcpStream::connect(proxy).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        read_response(&mut stream).await
    })
    .await
}

/// Reads one response from `stream` (unbounded: wrap it in [`bounded`]).
pub(crate) async fn read_response(stream: &mut TcpStream) -> Raw {
    let mut buffer = Vec::new();
    let mut chunk = [0; 4096];
    let end = loop {
        if let Some(end) = find(&buffer, b"\r\n\r\n") {
            break end + 4;
        }
        let read = stream.read(&mut chunk).await.unwrap();
        assert!(read > 0, "closed before a response head: {buffer:?}");
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
    let mut body = buffer[end..].to_vec();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {head:?}"));
    match header(&head, "content-length").map(|length| length.parse::<usize>().unwrap()) {
        Some(length) => {
            while body.len() < length {
                let read = stream.read(&mut chunk).await.unwrap();
                assert!(read > 0, "closed inside a body of {length} bytes");
                body.extend_from_slice(&chunk[..read]);
            }
        }
        None => {
            stream.read_to_end(&mut body).await.unwrap();
        }
    }
    Raw { status, head, body }
}

/// An ordinary `GET` for `path` on `host`, closing the connection after.
pub(crate) fn get(host: &str, path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
}

/// A hyper origin: for any path, an answer of `body_len` bytes (the path,
/// padded with dots), public and fresh for ten minutes (for
/// `tests/reverse_proxy_memory.rs` and the miss-path benchmark).
#[allow(dead_code)]
pub(crate) async fn cacheable_origin(body_len: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let service = hyper::service::service_fn(move |request: http::Request<_>| {
                let mut body = request.uri().path().as_bytes().to_vec();
                body.resize(body_len, b'.');
                let response = http::Response::builder()
                    .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
                    .header(http::header::CACHE_CONTROL, "public, max-age=600")
                    .body(http_body_util::Full::new(bytes::Bytes::from(body)));
                std::future::ready(response)
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
            );
        }
    });
    addr
}
