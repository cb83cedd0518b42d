//! `tidings-relay`: set up and run a Tidings relay (see `tidings-relay --help`).

fn main() -> anyhow::Result<()> {
    tidings_relay::cli::main()
}
