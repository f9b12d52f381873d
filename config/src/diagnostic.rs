//! Errors that point at the line and column of the file the operator wrote.
//!
//! Typed deserialization knows nothing of positions once it is done, so semantic checks name
//! the offending value by its key path (`virtual_server[1].real[0].address`) and the path is
//! resolved to a byte span by walking a second, span-preserving parse of the same text.

use std::fmt;
use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// One step of a key path into the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

impl From<&str> for Segment {
    fn from(key: &str) -> Self {
        Segment::Key(key.to_owned())
    }
}

impl From<usize> for Segment {
    fn from(index: usize) -> Self {
        Segment::Index(index)
    }
}

/// A key path such as `vrrp.instance[0].vrid`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<Segment>);

impl KeyPath {
    pub fn join(&self, segment: impl Into<Segment>) -> KeyPath {
        let mut path = self.0.clone();
        path.push(segment.into());
        KeyPath(path)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// Builds a [`KeyPath`] from keys and indices: `path!["vrrp", "instance", 0, "vrid"]`.
#[macro_export]
macro_rules! path {
    ($($segment:expr),* $(,)?) => {
        $crate::diagnostic::KeyPath(vec![$($crate::diagnostic::Segment::from($segment)),*])
    };
}

/// A problem found in a config file, at a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

impl Diagnostic {
    /// One diagnostic per `(offset, message)`, located in one pass over `text`.
    pub(crate) fn at_offsets(
        file: &str,
        text: &str,
        found: impl IntoIterator<Item = (usize, String)>,
    ) -> Vec<Self> {
        let (offsets, messages): (Vec<usize>, Vec<String>) = found.into_iter().unzip();
        line_columns(text, &offsets)
            .into_iter()
            .zip(messages)
            .map(|((line, column), message)| Diagnostic {
                file: file.to_owned(),
                line,
                column,
                message,
            })
            .collect()
    }
}

/// 1-based line and column (in characters) of each byte offset, in the order given.
///
/// The offsets are visited in ascending order with one cursor over the text, so the cost is
/// the text once plus a sort, whatever the number of diagnostics. Locating each one from the
/// start of the text instead made a file with an error per real-server entry quadratic
/// (37,298 errors in 3.5 MB took 37 s), and so would a per-line scan on a one-line file.
pub(crate) fn line_columns(text: &str, offsets: &[usize]) -> Vec<(usize, usize)> {
    let mut order: Vec<usize> = (0..offsets.len()).collect();
    order.sort_by_key(|&i| offsets[i]);
    let mut located = vec![(1, 1); offsets.len()];
    let (mut at, mut line, mut column) = (0, 1, 1);
    for i in order {
        let target = floor_char_boundary(text, offsets[i].min(text.len()));
        for c in text[at..target].chars() {
            if c == '\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
        at = target;
        located[i] = (line, column);
    }
    located
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// Resolves key paths to spans in one parsed document.
pub(crate) struct Locator<'i> {
    root: toml::Spanned<DeTable<'i>>,
}

impl<'i> Locator<'i> {
    /// `None` only when the text does not parse, which typed deserialization reports first.
    pub(crate) fn new(text: &'i str) -> Option<Self> {
        DeTable::parse(text).ok().map(|root| Locator { root })
    }

    /// The span of the value at `path`, or of the deepest table on the way when the rest is
    /// absent (a required key that is missing is reported at its table).
    pub(crate) fn span(&self, path: &KeyPath) -> Range<usize> {
        let mut span = self.root.span();
        let mut table = Some(self.root.get_ref());
        let mut array: Option<&[toml::Spanned<DeValue<'i>>]> = None;
        for segment in &path.0 {
            let next = match (segment, table, array) {
                (Segment::Key(key), Some(t), _) => t.get(key.as_str()),
                (Segment::Index(i), _, Some(items)) => items.get(*i),
                _ => None,
            };
            let Some(value) = next else { break };
            span = value.span();
            table = None;
            array = None;
            match value.get_ref() {
                DeValue::Table(t) => table = Some(t),
                DeValue::Array(items) => array = Some(items),
                _ => {}
            }
        }
        span
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_column(text: &str, offset: usize) -> (usize, usize) {
        line_columns(text, &[offset])[0]
    }

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        let offset = text.find('=').unwrap();
        assert_eq!(line_column(text, offset), (1, 3));
        let second = text.rfind('=').unwrap();
        assert_eq!(line_column(text, second), (2, 4));
        // Past the end, and inside a multi-byte character.
        assert_eq!(line_column(text, 1000), (3, 1));
        assert_eq!(line_column(text, 8), (2, 2));
    }

    #[test]
    fn offsets_in_any_order_keep_their_order() {
        let text = "a\nb\nc\n";
        assert_eq!(
            line_columns(text, &[4, 0, 2, 4]),
            vec![(3, 1), (1, 1), (2, 1), (3, 1)]
        );
    }

    #[test]
    fn paths_resolve_through_arrays_of_tables() {
        let text = "[[vs]]\nname = \"a\"\n[[vs]]\nname = \"b\"\nreal = [{ address = \"x\" }]\n";
        let locator = Locator::new(text).unwrap();
        let span = locator.span(&path!["vs", 1, "real", 0, "address"]);
        assert_eq!(&text[span], "\"x\"");
        // A missing key is reported at its table's header.
        let missing = locator.span(&path!["vs", 1, "nothing"]);
        assert_eq!((missing.start, &text[missing]), (18, "[[vs]]"));
    }

    #[test]
    fn key_paths_display_like_toml() {
        assert_eq!(
            path!["vrrp", "instance", 2, "vrid"].to_string(),
            "vrrp.instance[2].vrid"
        );
    }
}
