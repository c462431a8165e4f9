//! newsstore: a gRPC document store for news articles, the entities in them, and queries
//! over both. See ARCHITECTURE.md for the map.

#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod cli;
pub mod cluster;
pub mod connections;
pub mod corpus;
pub mod diff;
pub mod error;
pub mod extract;
pub mod ingest;
pub mod metrics;
pub mod model;
pub mod ninjs;
pub mod search;
pub mod seed;
pub mod store;
