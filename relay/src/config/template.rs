//! The commented `relay.toml` that `init` writes, generated from the configuration's values,
//! its defaults and one doc string per key (so no number is written twice).

use super::{RelayConfig, keys::SECTIONS};

/// Width the comments are wrapped to.
const WRAP: usize = 92;

/// Renders `config` as the commented file: each key under its doc and its default, with
/// the value `config` has.
pub(super) fn render(config: &RelayConfig) -> String {
    let values = as_table(config);
    let defaults = as_table(&RelayConfig::default());
    let mut out = String::from(
        "# Tidings relay configuration, written by `tidings-relay init`.\n\
         # Every key is optional: a missing key takes the default shown in the comment above it.\n",
    );
    for section in SECTIONS {
        out.push('\n');
        if !section.name.is_empty() {
            out.push_str(&format!("[{}]\n", section.name));
        }
        comment(&mut out, section.doc);
        for key in section.keys {
            let value = lookup(&values, section.name, key.name);
            let default = lookup(&defaults, section.name, key.name);
            let shown = default.map_or_else(|| "none".to_string(), |value| value.to_string());
            comment(&mut out, &format!("{} Default: {shown}.", key.doc));
            match (value, key.example) {
                (Some(value), _) => out.push_str(&format!("{} = {value}\n", key.name)),
                (None, Some(example)) => out.push_str(&format!("# {} = {example}\n", key.name)),
                (None, None) => {}
            }
        }
    }
    out
}

/// The configuration as a TOML table (empty if it cannot be one, which a struct of plain
/// values always can).
pub(super) fn as_table(config: &RelayConfig) -> toml::Table {
    toml::Table::try_from(config).unwrap_or_default()
}

/// The value of `section.key` (`section` "" for the root).
pub(super) fn lookup<'a>(
    table: &'a toml::Table,
    section: &str,
    key: &str,
) -> Option<&'a toml::Value> {
    if section.is_empty() {
        table.get(key)
    } else {
        table.get(section)?.as_table()?.get(key)
    }
}

/// Appends `text` as `# ` comment lines wrapped to [`WRAP`] columns.
fn comment(out: &mut String, text: &str) {
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && 2 + line.len() + 1 + word.len() > WRAP {
            out.push_str(&format!("# {line}\n"));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(&format!("# {line}\n"));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// `section.key` -> value rendered as TOML, for every key the configuration has.
    fn flattened(config: &RelayConfig) -> BTreeMap<String, String> {
        let mut keys = BTreeMap::new();
        for (name, value) in as_table(config) {
            match value {
                toml::Value::Table(table) => {
                    for (key, value) in table {
                        keys.insert(format!("{name}.{key}"), value.to_string());
                    }
                }
                value => {
                    keys.insert(name, value.to_string());
                }
            }
        }
        keys
    }

    fn documented() -> Vec<String> {
        SECTIONS
            .iter()
            .flat_map(|section| {
                section.keys.iter().map(|key| match section.name {
                    "" => key.name.to_string(),
                    table => format!("{table}.{}", key.name),
                })
            })
            .collect()
    }

    #[test]
    fn the_defaults_written_by_init_parse_back_to_the_defaults() {
        let defaults = RelayConfig::default();
        assert_eq!(
            RelayConfig::parse(&defaults.to_commented_toml()),
            Ok(defaults)
        );
    }

    #[test]
    fn every_key_of_the_configuration_is_documented_once() {
        let config = RelayConfig {
            metrics_listen: Some("127.0.0.1:9717".into()),
            ..RelayConfig::default()
        };
        let mut documented = documented();
        documented.sort();
        let keys: Vec<String> = flattened(&config).into_keys().collect();
        assert_eq!(documented, keys);
    }

    /// The README's table of `relay.toml` keys: `key` -> default as written ("none" for a
    /// key that is unset by default). A row may name several keys (`a` / `b`) with their
    /// defaults in the same order.
    fn readme_defaults() -> BTreeMap<String, String> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
        let readme = std::fs::read_to_string(path).expect("the README is readable");
        let table = readme
            .split_once("Configuration (`relay.toml`, defaults shown):")
            .expect("the README has a configuration table")
            .1;
        let mut defaults = BTreeMap::new();
        for row in table
            .lines()
            .skip_while(|line| !line.starts_with('|'))
            .take_while(|line| line.starts_with('|'))
            .skip(2)
        {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let (keys, values) = (ticked(cells[1]), ticked(cells[2]));
            for (index, key) in keys.into_iter().enumerate() {
                let value = if cells[2].starts_with("none") {
                    "none".to_string()
                } else {
                    values.get(index).cloned().unwrap_or_default()
                };
                defaults.insert(key, value);
            }
        }
        defaults
    }

    /// The `ticked` parts of a table cell, in order.
    fn ticked(cell: &str) -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn the_readme_lists_every_key_with_its_default() {
        let mut code = flattened(&RelayConfig::default());
        for section in SECTIONS {
            for key in section.keys.iter().filter(|key| key.example.is_some()) {
                code.insert(key.name.to_string(), "none".into());
            }
        }
        let readme = readme_defaults();
        let differing: Vec<_> = code
            .keys()
            .chain(readme.keys())
            .filter(|key| code.get(*key) != readme.get(*key))
            .map(|key| (key, code.get(key), readme.get(key)))
            .collect();
        assert!(
            differing.is_empty(),
            "README.md's relay.toml table disagrees with the code (key, code, README): \
             {differing:?}"
        );
    }
}
