//! `tidings`: end-to-end encrypted chat from the command line.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
