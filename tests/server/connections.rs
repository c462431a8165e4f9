//! Connections that open and then say nothing, or half a handshake, must not exhaust the
//! server: a real server process, raw sockets, and a lowered file limit.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;

use super::process::{Server, health_of};
use super::support::temp_dir;

/// Half of the HTTP/2 client preface.
const HALF_PREFACE: &[u8] = b"PRI * HTTP/2";

/// `count` raw connections to the server; every second one sends half a preface.
fn silent_peers(port: u16, count: usize) -> Vec<TcpStream> {
    (0..count)
        .filter_map(|i| {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
            if i % 2 == 1 {
                let _ = stream.write_all(HALF_PREFACE);
            }
            Some(stream)
        })
        .collect()
}

/// CPU seconds the process `pid` has used so far (user and system).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// Waits until a health check gets through and says SERVING.
async fn health_recovers(port: u16, within: Duration) {
    let started = Instant::now();
    loop {
        let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(1))
            .connect()
            .await;
        if let Ok(channel) = channel {
            let checked = tokio::time::timeout(Duration::from_secs(2), health_of(&channel, ""));
            if checked.await == Ok(ServingStatus::Serving as i32) {
                return;
            }
        }
        assert!(
            started.elapsed() < within,
            "the health check did not get through within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every peer's connection was closed by the server (reading gives end of file or an error).
fn all_closed(peers: &mut [TcpStream]) {
    for peer in peers {
        peer.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut byte = [0u8; 64];
        loop {
            match peer.read(&mut byte) {
                // The server's own HTTP/2 settings may come first.
                Ok(n) if n > 0 => continue,
                Ok(_) => break,
                Err(err) => {
                    assert!(
                        !matches!(
                            err.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ),
                        "a silent connection was left open"
                    );
                    break;
                }
            }
        }
    }
}

#[tokio::test]
async fn silent_connections_past_the_file_limit_are_closed_without_spinning() {
    let data = temp_dir();
    let mut server = Server::start(data.path(), &["--handshake-timeout-secs", "2"]);
    server.connect().await;
    let pid = server.pid();
    let limited = Command::new("prlimit")
        .args(["--pid", &pid.to_string(), "--nofile=128:128"])
        .status()
        .expect("prlimit (util-linux) runs");
    assert!(limited.success());

    let mut peers = silent_peers(server.port, 200);
    let cpu_before = cpu_seconds(pid);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let busy = (cpu_seconds(pid) - cpu_before) / started.elapsed().as_secs_f64();
    assert!(
        busy < 0.5,
        "out of descriptors, the server used {busy:.2} of a core instead of backing off"
    );
    health_recovers(server.port, Duration::from_secs(20)).await;
    all_closed(&mut peers[..100]);
    server.terminate().await;
    let (_, stderr) = server.exit(Duration::from_secs(5)).await;
    assert!(
        stderr.contains("cannot accept connections: out of file descriptors"),
        "running out of descriptors is logged: {stderr}"
    );
}

#[tokio::test]
async fn past_the_connection_limit_new_connections_are_closed_and_logged() {
    let data = temp_dir();
    let mut server = Server::start(
        data.path(),
        &["--handshake-timeout-secs", "2", "--max-connections", "20"],
    );
    server.connect().await;
    let mut peers = silent_peers(server.port, 60);
    // Past the limit, a connection is closed at once; the admitted ones at the deadline.
    all_closed(&mut peers);
    health_recovers(server.port, Duration::from_secs(10)).await;
    server.terminate().await;
    let (_, stderr) = server.exit(Duration::from_secs(5)).await;
    assert!(
        stderr.contains("connection limit reached"),
        "the limit is logged: {stderr}"
    );
}
