//! Throwaway `redis-server`s on loopback, for tests, examples and
//! benchmarks: each on a free port in its own temporary directory, stopped
//! and removed when dropped. Needs `redis-server` (and `redis-cli` for a
//! cluster) on `PATH`: the Debian package `redis-server`.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The variable that turns a skipped Redis test into a failure (CI sets it).
pub const REQUIRE_VARIABLE: &str = "SHARED_CALLS_REQUIRE_REDIS";

/// One `redis-server` process on `127.0.0.1`.
#[derive(Debug)]
pub struct LocalRedis {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
}

impl LocalRedis {
    /// Starts a server, or tells why not.
    pub fn start() -> io::Result<Self> {
        Self::start_with(Vec::new())
    }

    /// Starts a server for `test`, or prints one line saying it was skipped
    /// and returns `None` when `redis-server` is not installed; with
    /// `SHARED_CALLS_REQUIRE_REDIS=1`, panics instead.
    pub fn start_or_skip(test: &str) -> Option<Self> {
        if !installed(test) {
            return None;
        }
        Some(Self::start().unwrap_or_else(|error| panic!("{test}: redis-server: {error}")))
    }

    fn start_with(extra: Vec<String>) -> io::Result<Self> {
        let mut server = Self {
            child: None,
            port: free_port()?,
            dir: temp_dir()?,
            extra,
        };
        server.launch()?;
        Ok(server)
    }

    fn launch(&mut self) -> io::Result<()> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        wait_until_ready(self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its URL: `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it at once (`SIGKILL`), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        self.launch()
    }

    /// Sends one command and returns its raw RESP reply (for tests: `DEBUG
    /// SLEEP`, `CLIENT PAUSE`, writing garbage).
    pub fn command(&self, args: &[&[u8]]) -> io::Result<Vec<u8>> {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut request = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            request.extend_from_slice(arg);
            request.extend_from_slice(b"\r\n");
        }
        stream.write_all(&request)?;
        let mut reply = vec![0; 64 * 1024];
        let read = stream.read(&mut reply)?;
        reply.truncate(read);
        Ok(reply)
    }
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of three masters on `127.0.0.1`, made with
/// `redis-cli --cluster create`.
#[derive(Debug)]
pub struct LocalCluster {
    nodes: Vec<LocalRedis>,
}

impl LocalCluster {
    /// Starts three nodes and joins them into one cluster.
    pub fn start() -> io::Result<Self> {
        let nodes = (0..3)
            .map(|_| {
                LocalRedis::start_with(
                    [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                    ]
                    .map(String::from)
                    .to_vec(),
                )
            })
            .collect::<io::Result<Vec<_>>>()?;
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        let status = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if !status.success() {
            return Err(io::Error::other("redis-cli --cluster create failed"));
        }
        let cluster = Self { nodes };
        cluster.wait_until_ok()?;
        Ok(cluster)
    }

    /// [`start`](Self::start) for `test`, or `None` (one line printed) when
    /// Redis is not installed; with `SHARED_CALLS_REQUIRE_REDIS=1`, panics.
    pub fn start_or_skip(test: &str) -> Option<Self> {
        if !installed(test) {
            return None;
        }
        Some(Self::start().unwrap_or_else(|error| panic!("{test}: redis cluster: {error}")))
    }

    /// The nodes' URLs.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(LocalRedis::url).collect()
    }

    fn wait_until_ok(&self) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in &self.nodes {
            loop {
                let info = node.command(&[b"CLUSTER", b"INFO"])?;
                if info.windows(16).any(|w| w == b"cluster_state:ok") {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(io::Error::other("the cluster did not become ok"));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }
}

/// Whether `redis-server` is on `PATH`; prints why `test` is skipped when
/// not, or panics when skipping is not allowed.
fn installed(test: &str) -> bool {
    if on_path("redis-server") && on_path("redis-cli") {
        return true;
    }
    let why = "redis-server is not on PATH (Debian: apt-get install redis-server)";
    if std::env::var_os(REQUIRE_VARIABLE).is_some_and(|value| value != "0") {
        panic!("{test}: {why}, and {REQUIRE_VARIABLE} is set");
    }
    eprintln!("skipped {test}: {why}");
    false
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| is_file(&dir.join(program))))
}

fn is_file(path: &Path) -> bool {
    path.metadata().is_ok_and(|metadata| metadata.is_file())
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

fn temp_dir() -> io::Result<PathBuf> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "shared-calls-redis-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn wait_until_ready(port: u16) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pong = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).and_then(|mut stream| {
            stream.set_read_timeout(Some(Duration::from_millis(500)))?;
            stream.write_all(b"PING\r\n")?;
            let mut reply = [0; 7];
            stream.read_exact(&mut reply)?;
            Ok(reply == *b"+PONG\r\n")
        });
        match pong {
            Ok(true) => return Ok(()),
            _ if Instant::now() > deadline => {
                return Err(io::Error::other(format!(
                    "redis-server on port {port} did not start"
                )));
            }
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}
