//! The `newsstore` binary: parses the command line and runs the chosen command.

/// mimalloc instead of the system allocator (see Cargo.toml for the measurement behind it).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    newsstore::cli::main()
}
