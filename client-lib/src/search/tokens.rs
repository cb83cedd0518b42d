//! Words of a text as the index keeps them, and where a text shows them (for highlighting).

/// Longest word kept, in bytes: a longer one is cut (at a character boundary) to this, in
/// texts and queries alike, so it still matches and a key stays small.
pub const MAX_WORD_BYTES: usize = 48;
/// Most distinct words indexed per message (a message is at most 16 KiB of text, so this
/// bounds the writes one message costs).
pub const MAX_WORDS_PER_MESSAGE: usize = 2_048;
/// Most words a query may have.
pub const MAX_QUERY_WORDS: usize = 16;

/// The words of `text`, lowercased and cut to [`MAX_WORD_BYTES`], each once, at most
/// [`MAX_WORDS_PER_MESSAGE`] (sorted: the same text always gives the same list).
pub fn words(text: &str) -> Vec<String> {
    let mut words: Vec<String> = spans(text)
        .map(|(start, end)| word(&text[start..end]))
        .collect();
    words.sort_unstable();
    words.dedup();
    words.truncate(MAX_WORDS_PER_MESSAGE);
    words
}

/// The words of a query, in the order given, each once; None if it has more than
/// [`MAX_QUERY_WORDS`].
pub fn query_words(query: &str) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for (start, end) in spans(query) {
        let word = word(&query[start..end]);
        if !out.contains(&word) {
            if out.len() == MAX_QUERY_WORDS {
                return None;
            }
            out.push(word);
        }
    }
    Some(out)
}

/// The byte ranges of `text` that are one of `wanted` (words as [`query_words`] gives them),
/// in order: what a result highlights.
pub fn matches(text: &str, wanted: &[String]) -> Vec<(usize, usize)> {
    spans(text)
        .filter(|(start, end)| wanted.contains(&word(&text[*start..*end])))
        .collect()
}

/// `text` with each matching word between `open` and `close`.
pub fn highlight(text: &str, wanted: &[String], open: &str, close: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in matches(text, wanted) {
        out.push_str(&text[at..start]);
        out.push_str(open);
        out.push_str(&text[start..end]);
        out.push_str(close);
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

/// Byte ranges of the runs of letters and digits in `text`.
fn spans(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut chars = text.char_indices().peekable();
    std::iter::from_fn(move || {
        let (start, _) = chars.by_ref().find(|(_, c)| c.is_alphanumeric())?;
        let mut end = text.len();
        while let Some(&(at, c)) = chars.peek() {
            if !c.is_alphanumeric() {
                end = at;
                break;
            }
            chars.next();
        }
        Some((start, end))
    })
}

/// One run of letters and digits as the index keeps it.
fn word(run: &str) -> String {
    let mut word = run.to_lowercase();
    if word.len() > MAX_WORD_BYTES {
        let mut cut = MAX_WORD_BYTES;
        while !word.is_char_boundary(cut) {
            cut -= 1;
        }
        word.truncate(cut);
    }
    word
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn words_are_lowercased_split_on_punctuation_and_kept_once() {
        assert_eq!(
            words("Lunch at Café-Noir? lunch, 12:30 (café)"),
            ["12", "30", "at", "café", "lunch", "noir"]
        );
        assert_eq!(
            words("report_2024-final.PDF"),
            ["2024", "final", "pdf", "report"]
        );
        assert!(words("  ...  ").is_empty());
    }

    #[test]
    fn long_words_are_cut_the_same_in_texts_and_queries() {
        let long = "é".repeat(40);
        let indexed = words(&long);
        assert_eq!(indexed.len(), 1);
        assert!(indexed[0].len() <= MAX_WORD_BYTES);
        assert_eq!(query_words(&long).unwrap(), indexed);
    }

    #[test]
    fn queries_are_bounded() {
        let many: Vec<String> = (0..=MAX_QUERY_WORDS).map(|i| format!("w{i}")).collect();
        assert!(query_words(&many.join(" ")).is_none());
        assert_eq!(query_words("a b a").unwrap(), ["a", "b"]);
    }

    #[test]
    fn highlighting_marks_every_matching_word_whatever_its_case() {
        let wanted = query_words("lunch").unwrap();
        assert_eq!(
            highlight("Lunch? yes, lunch at noon", &wanted, "[", "]"),
            "[Lunch]? yes, [lunch] at noon"
        );
        assert_eq!(highlight("lunchbox", &wanted, "[", "]"), "lunchbox");
    }
}
