//! A reload that parses only what changed. At keepalived#2318's size (2,284 services, 37,298
//! real servers, 2.8 MB of TOML) the TOML parser alone takes a quarter of a second, most of a
//! reload, while a typical edit touches a few services. So the text is cut at its top-level
//! table headers into `[[virtual_server]]` blocks (each one with its own `[virtual_server.*]`
//! subtables) and the rest; a block whose text is the same as one of the running config's is
//! taken from it, the others and the rest are parsed alone, and the whole is validated as
//! always.
//!
//! Anything the cutter is not sure of (a quoted header key, an unterminated string, a
//! `[virtual_server.*]` header after another section) and any error at all make it fall back
//! to the whole-file [`crate::parse`], so the result and the diagnostics are exactly the
//! whole-file ones.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use serde::Deserialize;

use crate::model::{Config, VirtualServer};

/// Where each `[[virtual_server]]` block of a config's text went: its hash to its service's
/// index in [`Config::virtual_servers`]. Groups, which expand to several services, are not
/// kept; they are parsed again. Carried by the config it describes, compared as always equal.
#[derive(Clone, Default)]
pub struct BlockIndex(HashMap<u128, usize>);

impl PartialEq for BlockIndex {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for BlockIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlockIndex({} blocks)", self.0.len())
    }
}

impl BlockIndex {
    /// How many blocks a reload could take as they are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The text cut at its top-level headers.
struct Split<'a> {
    /// Every segment that is not a virtual server, in order.
    rest: String,
    blocks: Vec<&'a str>,
}

/// A block alone, as TOML sees it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Block {
    virtual_server: Vec<VirtualServer>,
}

/// How many blocks the last [`reparse`] parsed and how many it took from the running config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reparsed {
    pub parsed: usize,
    pub kept: usize,
}

/// Parses `text` as [`crate::parse`] does, taking the services whose block is unchanged from
/// `running` (the config the same daemon loaded last).
pub fn reparse(
    text: &str,
    origin: &str,
    running: &Config,
) -> (Result<Config, crate::ConfigError>, Option<Reparsed>) {
    match incremental(text, running) {
        Some((config, reparsed)) => (Ok(config), Some(reparsed)),
        None => (crate::parse(text, origin), None),
    }
}

fn incremental(text: &str, running: &Config) -> Option<(Config, Reparsed)> {
    let split = split(text)?;
    let mut config: Config = toml::from_str(&split.rest).ok()?;
    if !config.virtual_servers.is_empty() {
        return None;
    }
    let mut reparsed = Reparsed::default();
    let mut services = Vec::with_capacity(split.blocks.len());
    let hashes: Vec<u128> = split.blocks.iter().map(|b| hash(b)).collect();
    for (block, digest) in split.blocks.iter().zip(&hashes) {
        let kept = running.blocks.0.get(digest);
        match kept.and_then(|&at| running.virtual_servers.get(at)) {
            Some(same) => {
                reparsed.kept += 1;
                services.push(same.clone());
            }
            None => {
                reparsed.parsed += 1;
                let mut one = toml::from_str::<Block>(block).ok()?.virtual_server;
                if one.len() != 1 {
                    return None;
                }
                services.append(&mut one);
            }
        }
    }
    config.virtual_servers = services;
    if !crate::validate::validate(&config).is_empty() {
        return None;
    }
    let mut config = crate::expand_groups(config);
    config.blocks = index_of(&hashes, &config);
    Some((config, reparsed))
}

/// The index of a config just parsed whole from `text`.
pub(crate) fn index(text: &str, config: &Config) -> BlockIndex {
    match split(text) {
        Some(split) => {
            let hashes: Vec<u128> = split.blocks.iter().map(|b| hash(b)).collect();
            index_of(&hashes, config)
        }
        None => BlockIndex::default(),
    }
}

/// Block `b` is service `at` unless it is a group (its services carry `group_of == b`). Empty
/// when the blocks and the services do not line up.
fn index_of(hashes: &[u128], config: &Config) -> BlockIndex {
    let services = &config.virtual_servers;
    let mut by_hash = HashMap::with_capacity(hashes.len());
    let mut at = 0;
    for (block, digest) in hashes.iter().enumerate() {
        let group = |at: usize| services.get(at).is_some_and(|s| s.group_of == Some(block));
        if group(at) {
            while group(at) {
                at += 1;
            }
        } else if at < services.len() {
            by_hash.insert(*digest, at);
            at += 1;
        } else {
            return BlockIndex::default();
        }
    }
    if at != services.len() {
        return BlockIndex::default();
    }
    BlockIndex(by_hash)
}

/// 128 bits: two blocks of different text taken for one another would load a wrong service
/// silently.
fn hash(text: &str) -> u128 {
    let half = |salt: u8| {
        let mut hasher = DefaultHasher::new();
        salt.hash(&mut hasher);
        text.hash(&mut hasher);
        hasher.finish()
    };
    (u128::from(half(1)) << 64) | u128::from(half(2))
}

/// What a top-level header line starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment {
    Rest,
    Block,
}

/// Cuts `text` at its top-level headers; None when unsure.
fn split(text: &str) -> Option<Split<'_>> {
    let starts = headers(text)?;
    let mut segments: Vec<(Segment, usize)> = vec![(Segment::Rest, 0)];
    for (at, header) in starts {
        let current = segments.last().map(|s| s.0);
        match header {
            Header::VirtualServer => segments.push((Segment::Block, at)),
            Header::OfVirtualServer if current == Some(Segment::Block) => {}
            Header::OfVirtualServer => return None,
            Header::Other if current == Some(Segment::Rest) => {}
            Header::Other => segments.push((Segment::Rest, at)),
        }
    }
    let mut rest = String::new();
    let mut blocks = Vec::new();
    for (i, &(kind, start)) in segments.iter().enumerate() {
        let end = segments.get(i + 1).map_or(text.len(), |s| s.1);
        let piece = &text[start..end];
        match kind {
            Segment::Block => blocks.push(piece),
            Segment::Rest => {
                rest.push_str(piece);
                rest.push('\n');
            }
        }
    }
    Some(Split { rest, blocks })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Header {
    /// `[[virtual_server]]`
    VirtualServer,
    /// `[virtual_server.x]`, `[[virtual_server.x]]`...
    OfVirtualServer,
    Other,
}

/// Strings as TOML lexes them, for the cutter to skip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quoted {
    No,
    Basic,
    Literal,
    MultiBasic,
    MultiLiteral,
}

/// The byte offset and kind of every top-level header, outside strings, comments and
/// multi-line arrays and inline tables; None when the text is not one the cutter knows.
fn headers(text: &str) -> Option<Vec<(usize, Header)>> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let (mut i, mut depth, mut quoted) = (0, 0usize, Quoted::No);
    let mut line_start = true;
    while i < bytes.len() {
        let b = bytes[i];
        if std::mem::take(&mut line_start) && quoted == Quoted::No && depth == 0 {
            let indent = bytes[i..]
                .iter()
                .take_while(|c| matches!(c, b' ' | b'\t'))
                .count();
            if bytes.get(i + indent) == Some(&b'[') {
                let end = text[i..].find('\n').map_or(text.len(), |n| i + n);
                found.push((i, header(&text[i + indent..end])?));
                i = end;
                continue;
            }
        }
        let at = |s: &[u8]| bytes[i..].starts_with(s);
        let step = match (quoted, b) {
            (_, b'\n') if matches!(quoted, Quoted::Basic | Quoted::Literal) => return None,
            (_, b'\n') => {
                line_start = true;
                1
            }
            (Quoted::No, b'#') => text[i..].find('\n').unwrap_or(text.len() - i),
            (Quoted::No, b'"') if at(b"\"\"\"") => {
                quoted = Quoted::MultiBasic;
                3
            }
            (Quoted::No, b'"') => {
                quoted = Quoted::Basic;
                1
            }
            (Quoted::No, b'\'') if at(b"'''") => {
                quoted = Quoted::MultiLiteral;
                3
            }
            (Quoted::No, b'\'') => {
                quoted = Quoted::Literal;
                1
            }
            (Quoted::No, b'[' | b'{') => {
                depth += 1;
                1
            }
            (Quoted::No, b']' | b'}') => {
                depth = depth.checked_sub(1)?;
                1
            }
            (Quoted::Basic | Quoted::MultiBasic, b'\\') => 2,
            (Quoted::Basic, b'"') | (Quoted::Literal, b'\'') => {
                quoted = Quoted::No;
                1
            }
            (Quoted::MultiBasic, b'"') if at(b"\"\"\"") => {
                quoted = Quoted::No;
                closing(&bytes[i..], b)
            }
            (Quoted::MultiLiteral, b'\'') if at(b"'''") => {
                quoted = Quoted::No;
                closing(&bytes[i..], b)
            }
            _ => 1,
        };
        i += step;
    }
    (quoted == Quoted::No && depth == 0).then_some(found)
}

/// The length of a multi-line string's closing quotes at the start of `rest`: three, and up
/// to two more right before them that are the string's own.
fn closing(rest: &[u8], quote: u8) -> usize {
    3 + rest[3..]
        .iter()
        .take(2)
        .take_while(|&&c| c == quote)
        .count()
}

/// A header line (from its `[`): its kind, or None for a quoted key or anything after the
/// closing brackets but a comment.
fn header(line: &str) -> Option<Header> {
    let (array, inner) = match line.strip_prefix("[[") {
        Some(inner) => (true, inner),
        None => (false, line.strip_prefix('[')?),
    };
    let close = if array { "]]" } else { "]" };
    let (name, after) = inner.split_once(close)?;
    let after = after.trim_start();
    if !(after.is_empty() || after.starts_with('#')) {
        return None;
    }
    let parts: Vec<&str> = name.split('.').map(str::trim).collect();
    let bare = |p: &&str| {
        !p.is_empty()
            && p.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
    };
    if !parts.iter().all(bare) {
        return None;
    }
    Some(match parts.as_slice() {
        ["virtual_server"] if array => Header::VirtualServer,
        ["virtual_server"] => return None,
        ["virtual_server", ..] => Header::OfVirtualServer,
        _ => Header::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../examples/director.toml");

    /// Services whose text hides headers where the cutter must not cut: in a multi-line
    /// script, an inline array of real servers over several lines, a comment, a string with
    /// brackets; a group; another section between two services.
    const TRICKY: &str = r#"
[control]
socket_dir = "/run/lvsd" # a "quoted" comment ]]

[[virtual_server]]
address = "192.0.2.100:80"
quorum_up = """
/bin/echo up
[[virtual_server]]
address = 'not a header'
"""
real = [
  { address = "198.51.100.11:80", weight = 10 },
]

[[virtual_server]]
group = ["192.0.2.110-112:80"]
scheduler = "wlc"

[virtual_server.check]
type = "connect"

[[virtual_server.real]]
address = "198.51.100.12:80"
notify_down = '[virtual_server] "unbalanced'

[ipvs]
own_whole_table = false

[[virtual_server]]
address = "192.0.2.101:80"
  [[ virtual_server.real ]]   # indented, spaced
  address = "198.51.100.13:80"
  weight = 3
"#;

    fn whole(text: &str) -> Config {
        crate::parse(text, "whole.toml").expect("valid")
    }

    /// From nothing, every block is parsed alone and the config is the whole-file one; from a
    /// running config of the same text, none is parsed.
    #[test]
    fn blocks_parsed_alone_make_the_whole_file_config() {
        let text = EXAMPLE.replace("[[virtual_server]]", "# a comment\n[[virtual_server]]");
        for text in [EXAMPLE, text.as_str()] {
            let expected = whole(text);
            let blocks = expected.virtual_servers.len();
            let (got, reparsed) = reparse(text, "r.toml", &Config::default());
            assert_eq!(got.unwrap(), expected);
            assert_eq!(
                reparsed,
                Some(Reparsed {
                    parsed: blocks,
                    kept: 0
                })
            );
            let (got, reparsed) = reparse(text, "r.toml", &expected);
            assert_eq!(got.unwrap(), expected);
            assert_eq!(
                reparsed,
                Some(Reparsed {
                    parsed: 0,
                    kept: blocks
                })
            );
        }
    }

    /// A changed weight reparses that one service; the others are the running config's.
    #[test]
    fn a_changed_service_is_the_only_one_parsed() {
        let running = whole(EXAMPLE);
        let changed = EXAMPLE.replacen("weight = 50", "weight = 57", 1);
        assert_ne!(changed, EXAMPLE);
        let (got, reparsed) = reparse(&changed, "r.toml", &running);
        let got = got.unwrap();
        assert_eq!(got, whole(&changed));
        assert_ne!(got, running);
        assert_eq!(
            reparsed,
            Some(Reparsed {
                parsed: 1,
                kept: running.virtual_servers.len() - 1
            })
        );
    }

    /// Headers in strings, multi-line arrays and comments are not cut at; the group is parsed
    /// again each time (it is three services), the other blocks are kept.
    #[test]
    fn headers_inside_values_are_not_cut_at() {
        let expected = whole(TRICKY);
        assert_eq!(
            expected.virtual_servers.len(),
            5,
            "two services and a group of three"
        );
        assert_eq!(expected.blocks.len(), 2);
        let (got, reparsed) = reparse(TRICKY, "r.toml", &expected);
        assert_eq!(got.unwrap(), expected);
        assert_eq!(reparsed, Some(Reparsed { parsed: 1, kept: 2 }));
    }

    /// What the cutter is unsure of goes to the whole-file parse, with its result: a quoted
    /// header, a real server's header after another section, and any error, whose diagnostics
    /// are then the whole file's, at its lines.
    #[test]
    fn anything_unsure_is_parsed_whole() {
        let running = whole(EXAMPLE);
        let quoted = EXAMPLE.replacen("\n[[virtual_server]]", "\n[[\"virtual_server\"]]", 1);
        let after = format!(
            "{EXAMPLE}\n[agent]\n\n[[virtual_server.real]]\naddress = \"198.51.100.99:80\"\n"
        );
        for text in [quoted.as_str(), after.as_str()] {
            let (got, reparsed) = reparse(text, "r.toml", &running);
            assert_eq!(reparsed, None);
            assert_eq!(got.ok(), crate::parse(text, "r.toml").ok());
        }
        let broken = EXAMPLE.replacen("weight = 50", "weight = -50", 1);
        let (got, reparsed) = reparse(&broken, "r.toml", &running);
        assert_eq!(reparsed, None);
        assert_eq!(
            got.unwrap_err().to_string(),
            crate::parse(&broken, "r.toml").unwrap_err().to_string()
        );
    }
}
