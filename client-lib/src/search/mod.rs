//! Local search over the decrypted history: the words of texts, captions and file names in
//! an inverted index inside the client's own redb file, kept in step with every stored
//! message in the same transaction.
//!
//! Nothing here reaches the network: relays never see a search term. The store's side (the
//! hooks that keep the index in step, queries, deleting a message) is in `store::search`.

pub mod index;
pub mod tokens;

pub use tokens::{MAX_QUERY_WORDS, highlight, matches, query_words};

/// Results a query returns when no limit is given.
pub const DEFAULT_LIMIT: usize = 20;
/// Most results one query returns.
pub const MAX_RESULTS: usize = 1_000;
