//! The relays' `[push]` settings for the scenario, written into each `relay.toml`: pushes to
//! the loopback receiver allowed, and a short coalescing interval.

use std::path::Path;

use anyhow::Context;

/// Sets `[push] allow_private_endpoints = true` and `interval_secs` in the `relay.toml` of
/// `data_dir` (keeping every other key).
pub fn allow_loopback_pushes(data_dir: &Path, interval_secs: u64) -> anyhow::Result<()> {
    let path = data_dir.join("relay.toml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut config: toml::Table = text
        .parse()
        .with_context(|| format!("parsing {}", path.display()))?;
    let push = config
        .entry("push")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let toml::Value::Table(push) = push else {
        anyhow::bail!("{}: push is not a table", path.display());
    };
    push.insert("allow_private_endpoints".into(), toml::Value::Boolean(true));
    let interval = i64::try_from(interval_secs).context("interval too large")?;
    push.insert("interval_secs".into(), toml::Value::Integer(interval));
    std::fs::write(&path, toml::to_string(&config)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_push_table_is_added_or_updated_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.toml");
        std::fs::write(&path, "# a comment\nname = \"r1\"\n\n[limits]\nmax = 3\n").unwrap();
        allow_loopback_pushes(dir.path(), 1).unwrap();
        let config: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
        assert_eq!(config["name"].as_str(), Some("r1"));
        assert_eq!(config["limits"]["max"].as_integer(), Some(3));
        assert_eq!(
            config["push"]["allow_private_endpoints"].as_bool(),
            Some(true)
        );
        assert_eq!(config["push"]["interval_secs"].as_integer(), Some(1));
        std::fs::write(&path, "[push]\nenabled = true\ninterval_secs = 10\n").unwrap();
        allow_loopback_pushes(dir.path(), 2).unwrap();
        let config: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
        assert_eq!(config["push"]["enabled"].as_bool(), Some(true));
        assert_eq!(config["push"]["interval_secs"].as_integer(), Some(2));
    }
}
