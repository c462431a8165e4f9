//! Integration tests: each starts the real server in-process on an ephemeral port with a
//! temporary data folder and talks to it through the generated gRPC clients.

mod articles;
mod auth;
mod backup;
mod changes;
mod connections;
mod contract;
mod crash;
mod damage;
mod docs;
mod editorial;
mod entities;
mod errors;
mod grpc_web;
mod grpcurl;
mod history;
mod lifecycle;
mod logs;
mod metrics;
mod ner_cli;
mod ninjs;
mod overload;
mod process;
mod reflection;
mod retries;
#[path = "../common/running.rs"]
mod running;
mod search;
mod search_features;
mod seeding;
mod storage_full;
mod support;
mod tls;
