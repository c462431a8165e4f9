//! The `newsstore` binary: parses the command line and runs the chosen command.

fn main() -> std::process::ExitCode {
    newsstore::cli::main()
}
