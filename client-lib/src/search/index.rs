//! The inverted index in the client's redb file: word -> the messages holding it, newest first.
//!
//! Messages are numbered as they are indexed ("docs"); a word's rows in [`POSTINGS`] sort
//! newest first, so a query walks its rarest word's rows from the top, checks its other
//! words by point lookups, and stops once it has enough results.

use redb::{
    ReadTransaction, ReadableTable, ReadableTableMetadata, Table, TableDefinition, WriteTransaction,
};
use tidings_protocol::store::StoreError;

use super::tokens::MAX_WORD_BYTES;

/// word ++ 0 ++ (u64::MAX - rank time) ++ doc number: one row per distinct word of a
/// message, so each word's rows sort newest first.
pub const POSTINGS: TableDefinition<&[u8], ()> = TableDefinition::new("search_postings");
/// word -> how many messages hold it (a query walks its rarest word).
pub const WORD_COUNTS: TableDefinition<&str, u64> = TableDefinition::new("search_word_counts");
/// doc number -> rank time (8 bytes) ++ author (33 bytes) ++ message key.
pub const DOCS: TableDefinition<u64, &[u8]> = TableDefinition::new("search_docs");
/// message key -> doc number.
pub const DOC_OF: TableDefinition<&[u8], u64> = TableDefinition::new("search_doc_of");
/// Small named counters: the index format once fully built, the next doc number.
pub const SEARCH_META: TableDefinition<&str, u64> = TableDefinition::new("search_meta");

/// [`SEARCH_META`] key: the [`FORMAT`] of a complete index (absent while none is).
const META_FORMAT: &str = "format";
/// [`SEARCH_META`] key: the next doc number.
const META_NEXT_DOC: &str = "next_doc";
/// The layout of the index this build writes; another value means rebuild (2: words are
/// stored as keyed hashes, see `store::at_rest`).
pub const FORMAT: u64 = 2;

/// Bytes of a doc record before the message key: rank time, author tag, author user.
const DOC_HEAD: usize = 8 + 1 + 32;
/// Bytes after the word in a [`POSTINGS`] key: separator, inverted rank, doc number.
const POSTING_TAIL: usize = 1 + 8 + 8;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Author {
    /// This user (any of their devices).
    Me,
    /// Another user, by id bytes.
    User([u8; 32]),
}

/// A message as the index sees it.
#[derive(Debug, Clone)]
pub struct Document<'a> {
    /// Its key in the history (conversation first, so a conversation is a key prefix).
    pub key: &'a [u8],
    /// Its time for ranking (ms since the epoch): newer first.
    pub rank_ms: u64,
    /// Who wrote it.
    pub author: Author,
    /// Its words (see [`super::tokens::words`]).
    pub words: Vec<String>,
}

/// What a query learns of a matching message before loading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocInfo {
    /// Its key in the history.
    pub key: Vec<u8>,
    /// Its time for ranking.
    pub rank_ms: u64,
    /// Who wrote it.
    pub author: Author,
}

/// The index's tables, open in one write transaction.
pub struct Indexer<'txn> {
    postings: Table<'txn, &'static [u8], ()>,
    counts: Table<'txn, &'static str, u64>,
    docs: Table<'txn, u64, &'static [u8]>,
    doc_of: Table<'txn, &'static [u8], u64>,
    meta: Table<'txn, &'static str, u64>,
}

impl<'txn> Indexer<'txn> {
    /// Opens (creating if needed) the index's tables.
    pub fn open(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            postings: txn.open_table(POSTINGS)?,
            counts: txn.open_table(WORD_COUNTS)?,
            docs: txn.open_table(DOCS)?,
            doc_of: txn.open_table(DOC_OF)?,
            meta: txn.open_table(SEARCH_META)?,
        })
    }

    /// Whether the message at `key` is indexed.
    pub fn holds(&self, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.doc_of.get(key)?.is_some())
    }

    /// Indexes a message (one not indexed yet: see [`Indexer::remove`]).
    pub fn put(&mut self, document: &Document<'_>) -> Result<(), StoreError> {
        let doc = self.meta.get(META_NEXT_DOC)?.map_or(0, |next| next.value());
        self.meta.insert(META_NEXT_DOC, doc + 1)?;
        self.doc_of.insert(document.key, doc)?;
        self.docs.insert(
            doc,
            encode_doc(document.rank_ms, document.author, document.key).as_slice(),
        )?;
        for word in &document.words {
            if self
                .postings
                .insert(posting_key(word, document.rank_ms, doc).as_slice(), ())?
                .is_none()
            {
                let count = self
                    .counts
                    .get(word.as_str())?
                    .map_or(0, |count| count.value());
                self.counts.insert(word.as_str(), count + 1)?;
            }
        }
        Ok(())
    }

    /// Forgets the message at `key`, whose words were `words` (nothing if it is not indexed).
    pub fn remove(&mut self, key: &[u8], words: &[String]) -> Result<(), StoreError> {
        let Some(doc) = self.doc_of.remove(key)?.map(|doc| doc.value()) else {
            return Ok(());
        };
        let Some(info) = self
            .docs
            .remove(doc)?
            .map(|bytes| decode_doc(bytes.value()))
            .transpose()?
        else {
            return Ok(());
        };
        for word in words {
            if self
                .postings
                .remove(posting_key(word, info.rank_ms, doc).as_slice())?
                .is_none()
            {
                continue;
            }
            let count = self
                .counts
                .get(word.as_str())?
                .map_or(0, |count| count.value());
            if count <= 1 {
                self.counts.remove(word.as_str())?;
            } else {
                self.counts.insert(word.as_str(), count - 1)?;
            }
        }
        Ok(())
    }

    /// Records that the index now holds every message of the history.
    pub fn mark_complete(&mut self) -> Result<(), StoreError> {
        self.meta.insert(META_FORMAT, FORMAT)?;
        Ok(())
    }
}

/// Empties the index (its tables are deleted and created again), marking it incomplete.
pub fn clear(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.delete_table(POSTINGS)?;
    txn.delete_table(WORD_COUNTS)?;
    txn.delete_table(DOCS)?;
    txn.delete_table(DOC_OF)?;
    txn.delete_table(SEARCH_META)?;
    Indexer::open(txn)?;
    Ok(())
}

/// Whether the index is complete, in this build's format, and holds `messages` messages.
pub fn is_current(txn: &ReadTransaction, messages: u64) -> Result<bool, StoreError> {
    let format = match txn.open_table(SEARCH_META) {
        Ok(meta) => meta.get(META_FORMAT)?.map(|format| format.value()),
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(false),
        Err(error) => return Err(error.into()),
    };
    Ok(format == Some(FORMAT) && txn.open_table(DOC_OF)?.len()? == messages)
}

/// Bytes the index takes in the file (stored, metadata and fragmented pages of its tables).
pub fn size(txn: &ReadTransaction) -> Result<u64, StoreError> {
    let stats = [
        txn.open_table(POSTINGS)?.stats()?,
        txn.open_table(WORD_COUNTS)?.stats()?,
        txn.open_table(DOCS)?.stats()?,
        txn.open_table(DOC_OF)?.stats()?,
        txn.open_table(SEARCH_META)?.stats()?,
    ];
    Ok(stats
        .iter()
        .map(|s| s.stored_bytes() + s.metadata_bytes() + s.fragmented_bytes())
        .sum())
}

/// The messages holding every one of `words`, newest first, that `keep` accepts, at most
/// `limit` of them.
pub fn find(
    txn: &ReadTransaction,
    words: &[String],
    mut keep: impl FnMut(&DocInfo) -> bool,
    limit: usize,
) -> Result<Vec<DocInfo>, StoreError> {
    let counts = txn.open_table(WORD_COUNTS)?;
    let mut ranked = Vec::with_capacity(words.len());
    for word in words {
        let count = counts.get(word.as_str())?.map_or(0, |count| count.value());
        if count == 0 {
            return Ok(Vec::new());
        }
        ranked.push((count, word));
    }
    ranked.sort();
    let Some(((_, rarest), others)) = ranked.split_first() else {
        return Ok(Vec::new());
    };
    let postings = txn.open_table(POSTINGS)?;
    let docs = txn.open_table(DOCS)?;
    let start = [rarest.as_bytes(), &[0]].concat();
    let end = [rarest.as_bytes(), &[1]].concat();
    let mut found = Vec::new();
    let mut probe = Vec::with_capacity(MAX_WORD_BYTES + POSTING_TAIL);
    for row in postings.range::<&[u8]>(start.as_slice()..end.as_slice())? {
        if found.len() >= limit {
            break;
        }
        let (key, _) = row?;
        let key = key.value();
        let tail = key
            .get(key.len().saturating_sub(POSTING_TAIL)..)
            .filter(|tail| tail.len() == POSTING_TAIL)
            .ok_or_else(|| StoreError::corrupt("search_postings", "key too short"))?;
        let mut all = true;
        for (_, word) in others {
            probe.clear();
            probe.extend_from_slice(word.as_bytes());
            probe.extend_from_slice(tail);
            if postings.get(probe.as_slice())?.is_none() {
                all = false;
                break;
            }
        }
        if !all {
            continue;
        }
        let mut number = [0u8; 8];
        number.copy_from_slice(&tail[9..]);
        let Some(bytes) = docs.get(u64::from_be_bytes(number))? else {
            continue;
        };
        let info = decode_doc(bytes.value())?;
        if keep(&info) {
            found.push(info);
        }
    }
    Ok(found)
}

/// The [`POSTINGS`] key of `word` in doc `doc` ranked at `rank_ms`.
fn posting_key(word: &str, rank_ms: u64, doc: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(word.len() + POSTING_TAIL);
    key.extend_from_slice(word.as_bytes());
    key.push(0);
    key.extend_from_slice(&(u64::MAX - rank_ms).to_be_bytes());
    key.extend_from_slice(&doc.to_be_bytes());
    key
}

fn encode_doc(rank_ms: u64, author: Author, key: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(DOC_HEAD + key.len());
    bytes.extend_from_slice(&rank_ms.to_be_bytes());
    match author {
        Author::Me => {
            bytes.push(0);
            bytes.extend_from_slice(&[0; 32]);
        }
        Author::User(user) => {
            bytes.push(1);
            bytes.extend_from_slice(&user);
        }
    }
    bytes.extend_from_slice(key);
    bytes
}

fn decode_doc(bytes: &[u8]) -> Result<DocInfo, StoreError> {
    let corrupt = |reason| StoreError::corrupt("search_docs", reason);
    let (head, key) = bytes
        .split_at_checked(DOC_HEAD)
        .ok_or_else(|| corrupt("record too short"))?;
    let mut rank = [0u8; 8];
    rank.copy_from_slice(&head[..8]);
    let mut user = [0u8; 32];
    user.copy_from_slice(&head[9..]);
    let author = match head[8] {
        0 => Author::Me,
        1 => Author::User(user),
        _ => return Err(corrupt("unknown author tag")),
    };
    Ok(DocInfo {
        key: key.to_vec(),
        rank_ms: u64::from_be_bytes(rank),
        author,
    })
}
