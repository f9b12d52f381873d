//! director.toml(5) and config/examples/director.toml are complete: every key the daemons
//! accept is described and shown. Caught when written: 95 keys had no description and the
//! example lacked the per-check keys, `sync_group.notify` and per-real `forwarding`.

use lvs_config::reference::sections;

const EXAMPLE: &str = include_str!("../examples/director.toml");

#[test]
fn every_key_is_described() {
    let undescribed: Vec<String> = sections()
        .iter()
        .flat_map(|s| {
            s.keys
                .iter()
                .filter(|k| k.description.is_empty() && k.table.is_none())
                .map(move |k| format!("{} {}", s.header(), k.name))
        })
        .collect();
    assert!(
        undescribed.is_empty(),
        "keys without a doc comment in config/src/model.rs: {undescribed:?}"
    );
}

/// The example's lines, each with the table it stands in (`vrrp.instance`); a commented-out
/// header (`# [[vrrp.sync_group]]`) opens its table too.
fn example_regions() -> Vec<(String, &'static str)> {
    let mut path = String::new();
    let mut regions = Vec::new();
    for line in EXAMPLE.lines() {
        let bare = line.trim_start().trim_start_matches('#').trim_start();
        if bare.starts_with('[') {
            let name = bare.trim_start_matches('[');
            let end = name.find(']').unwrap_or(name.len());
            path = name[..end].to_owned();
        }
        regions.push((path.clone(), line));
    }
    regions
}

/// `name =` in `line`, not as the tail of a longer key.
fn sets(line: &str, name: &str) -> bool {
    line.match_indices(name).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + name.len()..].trim_start();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_') && after.starts_with('=')
    })
}

/// Each key is written in the example, set or commented out, as `name =` in its table or in
/// a table above it (inline: `garp = { repeat = 5 }`); a key holding a table may be a header.
#[test]
fn the_example_shows_every_key() {
    let regions = example_regions();
    let shown = |section: &str, name: &str| {
        let child = if section.is_empty() {
            name.to_owned()
        } else {
            format!("{section}.{name}")
        };
        regions.iter().any(|(path, line)| {
            let within = path == section
                || section.starts_with(&format!("{path}."))
                || path.is_empty() && !section.is_empty();
            (within && sets(line, name)) || *path == child
        })
    };
    let missing: Vec<String> = sections()
        .iter()
        .filter(|s| !s.description.starts_with("The keys of"))
        .flat_map(|s| {
            s.keys
                .iter()
                .filter(|k| !shown(&s.path, &k.name))
                .map(move |k| format!("{} {}", s.header(), k.name))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "keys config/examples/director.toml does not show in their table: {missing:?}"
    );
}

#[test]
fn the_page_names_every_section() {
    let page = lvs_config::reference::man_page("test");
    for section in sections().iter().filter(|s| !s.path.is_empty()) {
        let header = section.header().replace('-', "\\-");
        assert!(page.contains(&format!(".SS {header}")), "{header}");
    }
}
