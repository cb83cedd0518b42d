//! Mapping a request path onto a file inside the page directory, refusing anything that
//! would leave it (`..`, encoded or not, and symlinks pointing out).

use std::path::{Path, PathBuf};

/// Longest request path accepted (before decoding).
pub const MAX_PATH_BYTES: usize = 1024;

/// Why a request path names no file to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRefusal {
    /// Longer than [`MAX_PATH_BYTES`].
    TooLong,
    /// Bad percent-encoding, not UTF-8, a NUL or backslash, or a `..` segment.
    Malformed,
    /// Nothing servable there (missing, a directory without index, hidden, or outside).
    NotFound,
}

/// Decodes `%XX` escapes; `None` for a malformed escape or a result that is not UTF-8.
fn percent_decode(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = bytes.get(index + 1..index + 3)?;
            let text = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(text, 16).ok()?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The relative file path a request path names (`index.html` for a directory), checked
/// segment by segment after decoding.
pub fn relative_file(request_path: &str) -> Result<PathBuf, PathRefusal> {
    if request_path.len() > MAX_PATH_BYTES {
        return Err(PathRefusal::TooLong);
    }
    let decoded = percent_decode(request_path).ok_or(PathRefusal::Malformed)?;
    if decoded.contains(['\0', '\\']) {
        return Err(PathRefusal::Malformed);
    }
    let mut relative = PathBuf::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => continue,
            ".." => return Err(PathRefusal::Malformed),
            // Hidden files (.git, .env, ...) are never part of a page.
            hidden if hidden.starts_with('.') => return Err(PathRefusal::NotFound),
            name => relative.push(name),
        }
    }
    if decoded.ends_with('/') || relative.as_os_str().is_empty() {
        relative.push("index.html");
    }
    Ok(relative)
}

/// The file `relative` names under `root` (already canonical), if it is a regular file
/// that stays inside `root` once every symlink is resolved.
pub async fn resolve(root: &Path, relative: &Path) -> Result<PathBuf, PathRefusal> {
    let candidate = root.join(relative);
    let real = tokio::fs::canonicalize(&candidate)
        .await
        .map_err(|_| PathRefusal::NotFound)?;
    if !real.starts_with(root) {
        tracing::debug!(path = %candidate.display(), "web: refusing a path outside the page dir");
        return Err(PathRefusal::NotFound);
    }
    let metadata = tokio::fs::metadata(&real)
        .await
        .map_err(|_| PathRefusal::NotFound)?;
    if metadata.is_file() {
        Ok(real)
    } else {
        Err(PathRefusal::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_dot_is_refused_encoded_or_not() {
        for path in [
            "/../etc/passwd",
            "/a/../../x",
            "/%2e%2e/x",
            "/%2E%2E%2fx",
            "/a%2f..%2f..%2fx",
            "/..",
        ] {
            assert_eq!(relative_file(path), Err(PathRefusal::Malformed), "{path}");
        }
    }

    #[test]
    fn plain_paths_map_inside_and_directories_to_their_index() {
        assert_eq!(relative_file("/").unwrap(), PathBuf::from("index.html"));
        assert_eq!(
            relative_file("/pkg/web.js").unwrap(),
            PathBuf::from("pkg/web.js")
        );
        assert_eq!(
            relative_file("//etc/passwd").unwrap(),
            PathBuf::from("etc/passwd")
        );
        assert_eq!(
            relative_file("/docs/").unwrap(),
            PathBuf::from("docs/index.html")
        );
        assert_eq!(relative_file("/a%20b").unwrap(), PathBuf::from("a b"));
    }

    #[test]
    fn bad_escapes_nul_backslash_hidden_and_long_paths_are_refused() {
        assert_eq!(relative_file("/%zz"), Err(PathRefusal::Malformed));
        assert_eq!(relative_file("/%4"), Err(PathRefusal::Malformed));
        assert_eq!(relative_file("/%ff"), Err(PathRefusal::Malformed));
        assert_eq!(relative_file("/a%00b"), Err(PathRefusal::Malformed));
        assert_eq!(relative_file("/..%5c..%5cx"), Err(PathRefusal::Malformed));
        assert_eq!(relative_file("/.git/config"), Err(PathRefusal::NotFound));
        let long = format!("/{}", "a".repeat(MAX_PATH_BYTES));
        assert_eq!(relative_file(&long), Err(PathRefusal::TooLong));
    }
}
