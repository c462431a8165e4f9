//! Compiles `proto/` with the pure-Rust `protox` compiler, so building needs no system `protoc`,
//! then hands the descriptors to `tonic-prost-build` for code generation and writes the encoded
//! descriptor set that server reflection serves.

use std::{env, path::PathBuf};

use prost::Message;

const PROTO_ROOT: &str = "proto";
const PROTO_FILES: &[&str] = &[
    "proto/newsstore/v1/article.proto",
    "proto/newsstore/v1/entity.proto",
    "proto/newsstore/v1/article_service.proto",
    "proto/newsstore/v1/entity_service.proto",
    "proto/newsstore/v1/search.proto",
    "proto/newsstore/v1/admin_service.proto",
    "proto/newsstore/v1/change_service.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    for file in PROTO_FILES {
        println!("cargo:rerun-if-changed={file}");
    }

    let descriptors = protox::compile(PROTO_FILES, [PROTO_ROOT])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("newsstore_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
