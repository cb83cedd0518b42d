//! Test harness (cargo feature `test-utils`): relays on loopback forming one DHT, and a
//! scraper of the Prometheus endpoint. Shared by the relay's and the client's tests and by
//! the testnet's in-process benches.

mod network;
mod scrape;

pub use network::{Network, RelayDir, loopback_config};
pub use scrape::{Sample, Scrape, http_get, metrics_url_address, scrape};

/// Why the harness could not do what a test asked.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A temp dir could not be made.
    #[error("making a temp dir: {0}")]
    TempDir(#[source] std::io::Error),
    /// `init` or `start` of a relay failed.
    #[error(transparent)]
    Relay(#[from] crate::RelayError),
    /// The first relay has no TCP address for the others to bootstrap from.
    #[error("the first relay has no TCP dial address")]
    NoTcpAddress,
    /// A relay of the network was stopped (or never started) and is asked for.
    #[error("relay {0} is not running")]
    NotRunning(usize),
    /// The routing tables did not fill in time.
    #[error("the DHT did not form: the smallest routing table holds {smallest} of {wanted} peers")]
    DhtNotFormed {
        /// Peers in the smallest routing table at the deadline.
        smallest: usize,
        /// Peers each table should have held.
        wanted: usize,
    },
    /// The HTTP endpoint could not be reached or read.
    #[error("GET {path} from {address}: {source}")]
    Http {
        /// The endpoint.
        address: std::net::SocketAddr,
        /// The path asked for.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The HTTP endpoint did not answer in time.
    #[error("GET {path} from {address}: no answer within {timeout:?}")]
    HttpTimeout {
        /// The endpoint.
        address: std::net::SocketAddr,
        /// The path asked for.
        path: String,
        /// How long it had.
        timeout: std::time::Duration,
    },
}
