//! The server as a separate process of the real binary, for the tests that damage its files,
//! fill its disk or starve it of descriptors. A [`Server`] is killed when dropped, so a
//! failing test leaves no process behind.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use newsstore::api::proto::{self, article_service_client::ArticleServiceClient};
use tonic::transport::Channel;

pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("bound").port()
}

/// A `newsstore serve` process.
pub struct Server {
    child: Option<Child>,
    pub port: u16,
}

impl Server {
    /// Starts `newsstore serve` on `data` (no seeds, a 50 ms index refresh) with `extra`
    /// arguments, on a free port; its stderr is kept for [`Server::exit`].
    pub fn start(data: &Path, extra: &[&str]) -> Server {
        Self::start_with(data, extra, |_| {})
    }

    /// As [`Server::start`], letting `adjust` change the command (limits, say).
    pub fn start_with(data: &Path, extra: &[&str], adjust: impl FnOnce(&mut Command)) -> Server {
        let port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_newsstore"));
        command
            .args(["serve", "--no-seed", "--index-refresh-ms", "50", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(data)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        adjust(&mut command);
        let child = command.spawn().expect("the newsstore binary starts");
        Server {
            child: Some(child),
            port,
        }
    }

    fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("the server process")
    }

    /// A channel once the server answers; `Err` with its exit status if it exits first.
    pub async fn try_connect(&mut self) -> Result<Channel, ExitStatus> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child().try_wait().unwrap() {
                return Err(status);
            }
            if let Ok(channel) = Channel::from_shared(format!("http://127.0.0.1:{}", self.port))
                .unwrap()
                .connect()
                .await
            {
                return Ok(channel);
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the server neither answered nor exited within a minute"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A channel once the server answers; panics if it exits instead.
    pub async fn connect(&mut self) -> Channel {
        match self.try_connect().await {
            Ok(channel) => channel,
            Err(status) => panic!("the server exited with {status} before serving"),
        }
    }

    /// The process id.
    pub fn pid(&mut self) -> u32 {
        self.child().id()
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let child = self.child();
        let _ = child.kill();
        let _ = child.wait();
    }

    /// SIGTERM, then waits up to a minute for the clean shutdown. Async, so the test's
    /// own connections keep being served and can close when the server asks them to.
    pub async fn terminate(&mut self) {
        let pid = self.child().id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let started = Instant::now();
        while self.child().try_wait().unwrap().is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no clean shutdown"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the process to exit by itself (panicking after `limit`, when it is
    /// killed): whether it succeeded, and everything it wrote to stderr.
    pub async fn exit(mut self, limit: Duration) -> (bool, String) {
        let mut child = self.child.take().expect("the server process");
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the process was still running after {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            use std::io::Read;
            let _ = pipe.read_to_string(&mut stderr);
        }
        (status.success(), stderr)
    }
}

impl Drop for Server {
    /// Kills the process; when a test fails, shows what it logged.
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
            if std::thread::panicking()
                && let Some(mut pipe) = child.stderr.take()
            {
                use std::io::Read;
                let mut stderr = String::new();
                let _ = pipe.read_to_string(&mut stderr);
                eprintln!("the server's log:\n{stderr}");
            }
        }
    }
}

/// The health status of `service` ("" for the server as a whole).
pub async fn health_of(channel: &Channel, service: &str) -> i32 {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("health answers")
        .into_inner()
        .status
}

/// Waits until `query` finds exactly `wanted` articles, failing after `within`.
pub async fn wait_for_hits(
    client: &mut ArticleServiceClient<Channel>,
    query: &str,
    wanted: i64,
    within: Duration,
) {
    let started = Instant::now();
    loop {
        let found = client
            .search_articles(proto::SearchArticlesRequest {
                query: query.into(),
                ..Default::default()
            })
            .await
            .expect("search answers")
            .into_inner()
            .total_size;
        if found == wanted {
            return;
        }
        assert!(
            started.elapsed() < within,
            "{query:?} found {found} articles, not {wanted}, within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Copies the folder `from` (recursively) to `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
