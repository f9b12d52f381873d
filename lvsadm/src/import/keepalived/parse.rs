//! keepalived.conf syntax: lines of words, `{ ... }` blocks that nest, comments from `#` or `!`
//! to the end of the line, double-quoted strings, `include` with globs, `@ID` / `@^ID`
//! conditional lines and `$NAME=VALUE` parameters.
//!
//! Preprocessing works on lines, as keepalived's does (`read_line` in parser.c): conditionals
//! and parameter definitions are decided before a line is split into words, and an include is
//! spliced in where it stands. The words then build a tree of [`Node`]s.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::super::{ErrorKind, ImportError, Options, Origin, Output, read};

/// One statement: its words, and the block that follows it, if any.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub words: Vec<String>,
    pub at: Origin,
    pub children: Option<Vec<Node>>,
}

impl Node {
    pub fn key(&self) -> &str {
        &self.words[0]
    }

    pub fn arg(&self, i: usize) -> Option<&str> {
        self.words.get(i).map(String::as_str)
    }

    pub fn children(&self) -> &[Node] {
        self.children.as_deref().unwrap_or_default()
    }

    /// The statement as written, for messages.
    pub fn text(&self) -> String {
        let text = self.words.join(" ");
        if self.children.is_some() {
            format!("{text} {{...}}")
        } else {
            text
        }
    }
}

/// Nested includes deeper than this are a loop in practice.
const MAX_INCLUDE_DEPTH: usize = 16;
/// keepalived substitutes recursively; a parameter that names itself must still end.
const MAX_SUBSTITUTIONS: usize = 64;

pub(crate) fn parse(
    path: &Path,
    options: &Options,
    out: &mut Output,
) -> Result<Vec<Node>, ImportError> {
    let mut pre = Preprocessor {
        options,
        out,
        params: HashMap::new(),
        lines: Vec::new(),
    };
    let file = path.display().to_string();
    pre.load(path, &file, &Origin::new(&file, 0), 0)?;
    let lines = std::mem::take(&mut pre.lines);
    build_tree(&lines, &file)
}

struct Preprocessor<'a> {
    options: &'a Options,
    out: &'a mut Output,
    params: HashMap<String, String>,
    lines: Vec<(Origin, String)>,
}

impl Preprocessor<'_> {
    fn load(
        &mut self,
        path: &Path,
        name: &str,
        from: &Origin,
        depth: usize,
    ) -> Result<(), ImportError> {
        if depth > MAX_INCLUDE_DEPTH {
            return Err(ImportError::new(
                from,
                ErrorKind::Syntax,
                format!("includes nest deeper than {MAX_INCLUDE_DEPTH} levels (an include loop?)"),
            ));
        }
        let text = read(path, from)?;
        for (n, raw) in text.lines().enumerate() {
            let at = Origin::new(name, n + 1);
            let Some(line) = self.conditional(raw.trim(), &at) else {
                continue;
            };
            if let Some((param, value)) = definition(line) {
                self.params.insert(param.to_owned(), value.to_owned());
                continue;
            }
            let line = self.substitute(line);
            let mut words = line.split_whitespace();
            if words.next() == Some("include") {
                let pattern = words.collect::<Vec<_>>().join(" ");
                let pattern = pattern.split(['#', '!']).next().unwrap_or("").trim();
                let pattern = pattern.trim_matches('"');
                if pattern.is_empty() {
                    return Err(ImportError::new(
                        &at,
                        ErrorKind::Syntax,
                        "include needs a file name or pattern",
                    ));
                }
                let base = path.parent().unwrap_or(Path::new("."));
                let full = base.join(pattern);
                let matches = glob(&full);
                if matches.is_empty() {
                    self.out.unsupported(
                        &at,
                        format!("include {pattern}"),
                        "no file matches the pattern; nothing is included (keepalived only warns too)",
                    );
                }
                for file in matches {
                    let name = file.display().to_string();
                    self.load(&file, &name, &at, depth + 1)?;
                }
                continue;
            }
            self.lines.push((at, line));
        }
        Ok(())
    }

    /// Applies `@ID` / `@^ID`; returns the rest of the line when it is kept.
    fn conditional<'l>(&mut self, line: &'l str, at: &Origin) -> Option<&'l str> {
        let Some(tagged) = line.strip_prefix('@') else {
            return Some(line);
        };
        let (negated, tagged) = match tagged.strip_prefix('^') {
            Some(rest) => (true, rest),
            None => (false, tagged),
        };
        let end = tagged.find(char::is_whitespace).unwrap_or(tagged.len());
        let (id, rest) = tagged.split_at(end);
        let rest = rest.trim_start();
        let keep = match &self.options.config_id {
            Some(config_id) => (config_id == id) != negated,
            None => {
                let sign = if negated { "@^" } else { "@" };
                let instead = if negated {
                    "kept, as for a config-id other than this one (no --config-id given)"
                } else {
                    "left out, as for a config-id other than this one (no --config-id given)"
                };
                self.out
                    .unsupported(at, format!("{sign}{id} {rest}"), instead);
                negated
            }
        };
        keep.then_some(rest)
    }

    /// `${NAME}` anywhere, `$NAME` before whitespace or the end of the line; undefined
    /// parameters stay as written, as keepalived leaves them.
    fn substitute(&self, line: &str) -> String {
        let mut text = line.to_owned();
        for _ in 0..MAX_SUBSTITUTIONS {
            match self.substitute_once(&text) {
                Some(next) => text = next,
                None => break,
            }
        }
        text
    }

    fn substitute_once(&self, text: &str) -> Option<String> {
        let mut from = 0;
        while let Some(offset) = text[from..].find('$') {
            let start = from + offset;
            let after = &text[start + 1..];
            let (name, len) = if let Some(braced) = after.strip_prefix('{') {
                match braced.find('}') {
                    Some(close) => (&braced[..close], close + 2),
                    None => ("", 0),
                }
            } else {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                let followed_ok = after[end..].chars().next().is_none_or(char::is_whitespace);
                if followed_ok {
                    (&after[..end], end)
                } else {
                    ("", 0)
                }
            };
            if let Some(value) = self.params.get(name).filter(|_| !name.is_empty()) {
                let mut next = text[..start].to_owned();
                next.push_str(value);
                next.push_str(&text[start + 1 + len..]);
                return Some(next);
            }
            from = start + 1;
        }
        None
    }
}

/// `$NAME=VALUE`: no space before the `=`; names as in a shell.
fn definition(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('$')?;
    let (name, value) = rest.split_once('=')?;
    let valid = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then_some((name, value.trim()))
}

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Open,
    Close,
}

fn lex(line: &str, at: &Origin) -> Result<Vec<Token>, ImportError> {
    let mut tokens = Vec::new();
    let mut chars = line.chars().peekable();
    let mut word = String::new();
    let flush = |word: &mut String, tokens: &mut Vec<Token>| {
        if !word.is_empty() {
            tokens.push(Token::Word(std::mem::take(word)));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let mut closed = false;
                for q in chars.by_ref() {
                    if q == '"' {
                        closed = true;
                        break;
                    }
                    word.push(q);
                }
                if !closed {
                    return Err(ImportError::new(
                        at,
                        ErrorKind::Syntax,
                        "unterminated quoted string",
                    ));
                }
                // An empty quoted string is still a word.
                if word.is_empty() {
                    tokens.push(Token::Word(String::new()));
                }
            }
            '#' | '!' => break,
            '{' | '}' => {
                flush(&mut word, &mut tokens);
                tokens.push(if c == '{' { Token::Open } else { Token::Close });
            }
            c if c.is_whitespace() => flush(&mut word, &mut tokens),
            c => word.push(c),
        }
    }
    flush(&mut word, &mut tokens);
    Ok(tokens)
}

fn build_tree(lines: &[(Origin, String)], file: &str) -> Result<Vec<Node>, ImportError> {
    // Each open block: the node that owns it, and the children gathered so far.
    let mut stack: Vec<(Option<Node>, Vec<Node>)> = vec![(None, Vec::new())];
    for (at, line) in lines {
        let mut pending: Vec<String> = Vec::new();
        for token in lex(line, at)? {
            match token {
                Token::Word(word) => pending.push(word),
                Token::Open => {
                    let owner = if pending.is_empty() {
                        // `{` alone on a line opens the block of the statement before it.
                        let siblings = &mut stack.last_mut().expect("root stays").1;
                        match siblings.pop() {
                            Some(node) if node.children.is_none() => node,
                            _ => {
                                return Err(ImportError::new(
                                    at,
                                    ErrorKind::Syntax,
                                    "'{' without a keyword to open a block for",
                                ));
                            }
                        }
                    } else {
                        Node {
                            words: std::mem::take(&mut pending),
                            at: at.clone(),
                            children: None,
                        }
                    };
                    stack.push((Some(owner), Vec::new()));
                }
                Token::Close => {
                    flush(&mut pending, at, &mut stack);
                    if stack.len() == 1 {
                        return Err(ImportError::new(
                            at,
                            ErrorKind::Syntax,
                            "unbalanced '}': no block is open here",
                        ));
                    }
                    let (owner, children) = stack.pop().expect("checked above");
                    let mut owner = owner.expect("only the root has no owner");
                    owner.children = Some(children);
                    stack.last_mut().expect("root stays").1.push(owner);
                }
            }
        }
        flush(&mut pending, at, &mut stack);
    }
    if stack.len() > 1 {
        let (owner, _) = stack.pop().expect("checked");
        let owner = owner.expect("only the root has no owner");
        let last = lines
            .iter()
            .rev()
            .find(|(at, _)| at.file == file)
            .map_or(0, |(at, _)| at.line);
        return Err(ImportError::new(
            &Origin::new(file, last),
            ErrorKind::Syntax,
            format!(
                "unbalanced '{{': the block \"{}\" opened at {} is never closed",
                owner.words.join(" "),
                owner.at
            ),
        ));
    }
    Ok(stack.pop().expect("root").1)
}

fn flush(pending: &mut Vec<String>, at: &Origin, stack: &mut [(Option<Node>, Vec<Node>)]) {
    if !pending.is_empty() {
        stack.last_mut().expect("root stays").1.push(Node {
            words: std::mem::take(pending),
            at: at.clone(),
            children: None,
        });
    }
}

/// Shell-style globbing (`*`, `?`, `[...]`) over each path component, sorted like glob(3).
pub(crate) fn glob(pattern: &Path) -> Vec<PathBuf> {
    let mut found = vec![PathBuf::new()];
    for component in pattern.components() {
        let part = component.as_os_str().to_string_lossy();
        let wild = part.contains(['*', '?', '[']);
        let mut next = Vec::new();
        for base in &found {
            if !wild {
                next.push(base.join(component.as_os_str()));
                continue;
            }
            let dir = if base.as_os_str().is_empty() {
                Path::new(".")
            } else {
                base.as_path()
            };
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| !name.starts_with('.') || part.starts_with('.'))
                .filter(|name| wildcard(part.as_bytes(), name.as_bytes()))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|name| base.join(name)));
        }
        found = next;
    }
    found.retain(|p| p.is_file());
    found
}

fn wildcard(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|skip| wildcard(rest, &name[skip..])),
        Some((b'?', rest)) => !name.is_empty() && wildcard(rest, &name[1..]),
        Some((b'[', rest)) => {
            let Some(close) = rest.iter().skip(1).position(|&b| b == b']').map(|p| p + 1) else {
                return name.first() == Some(&b'[') && wildcard(rest, &name[1..]);
            };
            let (set, rest) = (&rest[..close], &rest[close + 1..]);
            let Some((&c, name_rest)) = name.split_first() else {
                return false;
            };
            let (negate, set) = match set.split_first() {
                Some((b'!' | b'^', set)) => (true, set),
                _ => (false, set),
            };
            let mut hit = false;
            let mut i = 0;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == b'-' {
                    hit |= (set[i]..=set[i + 2]).contains(&c);
                    i += 3;
                } else {
                    hit |= set[i] == c;
                    i += 1;
                }
            }
            hit != negate && wildcard(rest, name_rest)
        }
        Some((&b, rest)) => name.first() == Some(&b) && wildcard(rest, &name[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard(b"*.conf", b"a.conf"));
        assert!(!wildcard(b"*.conf", b"a.cf"));
        assert!(wildcard(b"vs[0-9].conf", b"vs3.conf"));
        assert!(!wildcard(b"vs[!0-9].conf", b"vs3.conf"));
        assert!(wildcard(b"?", b"x"));
    }

    #[test]
    fn lexing_quotes_comments_braces() {
        let at = Origin::new("f", 1);
        let tokens = lex(r#"script "killall -0 sshd" ! comment"#, &at).unwrap();
        assert_eq!(
            tokens,
            vec![
                Token::Word("script".into()),
                Token::Word("killall -0 sshd".into())
            ]
        );
        assert_eq!(lex("a{b}", &at).unwrap().len(), 4);
        assert!(lex("x \"open", &at).is_err());
    }
}
