//! Accepting connections without letting them exhaust the server.
//!
//! tonic's own accept loop takes every connection and keeps it for as long as the peer
//! likes: a peer that opens TCP (or sends half an HTTP/2 preface) and then nothing holds a
//! file descriptor forever, and once descriptors run out `accept` fails at once, again and
//! again, and the loop spins a core. So connections come in through this loop instead:
//!
//! - at most `max_connections` are open at once; past that a new one is closed at once,
//!   with a log line (at most one a second), so descriptors stay for the store, the index
//!   and the peers already served;
//! - a connection must send its first [`HANDSHAKE_BYTES`] (a whole HTTP/2 preface, or the
//!   start of an HTTP/1.1 request for gRPC-Web, or a TLS client hello) within the
//!   handshake deadline, or it is closed;
//! - when `accept` fails for lack of descriptors or memory, the loop logs and backs off
//!   (up to a second) instead of retrying at once.
//!
//! Established HTTP/2 connections that stop answering are closed by keepalive pings (set
//! up in `app.rs`).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Sleep;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// The bytes a new connection must send before the handshake deadline: the length of the
/// HTTP/2 client preface.
pub const HANDSHAKE_BYTES: usize = 24;

/// How connections are admitted.
#[derive(Debug, Clone, Copy)]
pub struct Admission {
    /// Connections open at once at most (0: no limit).
    pub max_connections: usize,
    /// How long a new connection has to send its first [`HANDSHAKE_BYTES`].
    pub handshake: Duration,
}

/// The connections accepted from `listener`, as tonic's `serve_with_incoming` takes them.
/// The loop ends when the server stops taking connections.
pub fn incoming(
    listener: TcpListener,
    admission: Admission,
) -> ReceiverStream<io::Result<Connection>> {
    let (send, receive) = mpsc::channel(64);
    tokio::spawn(accept_loop(listener, admission, send));
    ReceiverStream::new(receive)
}

async fn accept_loop(
    listener: TcpListener,
    admission: Admission,
    send: mpsc::Sender<io::Result<Connection>>,
) {
    let open = Arc::new(AtomicUsize::new(0));
    let mut backoff = Duration::ZERO;
    let mut last_refusal_log: Option<Instant> = None;
    let mut refused_since_log = 0u64;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = send.closed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff = Duration::ZERO;
                accepted
            }
            Err(err) if out_of_resources(&err) => {
                backoff = (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                tracing::warn!(
                    error = %err,
                    retry_in_ms = backoff.as_millis() as u64,
                    "cannot accept connections: out of file descriptors or memory (raise the \
                     process's file limit, or lower --max-connections)"
                );
                tokio::time::sleep(backoff).await;
                continue;
            }
            // A connection reset before it was accepted: that one only.
            Err(err) => {
                tracing::debug!(error = %err, "a connection failed while being accepted");
                continue;
            }
        };
        if admission.max_connections > 0
            && open.load(Ordering::Acquire) >= admission.max_connections
        {
            drop(stream);
            refused_since_log += 1;
            if last_refusal_log.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                tracing::warn!(
                    open = admission.max_connections,
                    refused = refused_since_log,
                    last_peer = %peer,
                    "connection limit reached (--max-connections): new connections are \
                     closed until open ones end"
                );
                last_refusal_log = Some(Instant::now());
                refused_since_log = 0;
            }
            continue;
        }
        // Small responses must not wait for Nagle's algorithm (a 40 ms stall per call); a
        // peer that vanished is noticed by the kernel's keepalive.
        let _ = stream.set_nodelay(true);
        let keepalive = socket2::TcpKeepalive::new().with_time(Duration::from_secs(60));
        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
        let connection = Connection::new(stream, peer, admission.handshake, open.clone());
        if send.send(Ok(connection)).await.is_err() {
            return;
        }
    }
}

/// Whether an accept error is about the process or system (out of descriptors, memory or
/// buffers), which retrying at once cannot fix, rather than about the one connection.
fn out_of_resources(err: &io::Error) -> bool {
    !matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// One accepted connection: counted while open, and closed if its handshake is late.
pub struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    /// Until the first [`HANDSHAKE_BYTES`] came in: when to give up on them.
    deadline: Option<Pin<Box<Sleep>>>,
    received: usize,
    open: Arc<AtomicUsize>,
}

impl Connection {
    fn new(
        stream: TcpStream,
        peer: SocketAddr,
        handshake: Duration,
        open: Arc<AtomicUsize>,
    ) -> Self {
        open.fetch_add(1, Ordering::AcqRel);
        Connection {
            stream,
            peer,
            deadline: Some(Box::pin(tokio::time::sleep(handshake))),
            received: 0,
            open,
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Connected for Connection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(deadline) = &mut this.deadline
            && deadline.as_mut().poll(cx).is_ready()
        {
            tracing::debug!(peer = %this.peer, received = this.received, "handshake too slow; closing the connection");
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the connection did not complete its handshake in time",
            )));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if this.deadline.is_some() {
            this.received += buf.filled().len() - before;
            if this.received >= HANDSHAKE_BYTES {
                this.deadline = None;
            }
        }
        polled
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
