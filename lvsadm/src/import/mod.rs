//! `lvsadm import`: turn a keepalived.conf, an ldirectord.cf or an `ipvsadm -Sn` save into a
//! director.toml that behaves like the original.
//!
//! Every block of the output carries a `# from FILE:LINE` comment so an operator can review it
//! side by side with the source. Whatever has no equivalent is reported as an [`Unsupported`]
//! entry (and repeated as a comment next to the block it concerns): nothing is dropped
//! silently. The output always passes `lvs_config::parse`; a conversion that would not is a
//! bug and comes back as an [`ImportError`] rather than as a file the daemons refuse.

mod emit;
mod ipvsadm;
mod keepalived;
mod ldirectord;

use std::fmt;
use std::path::Path;

/// The format of the file being imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Keepalived,
    Ldirectord,
    Ipvsadm,
}

/// Knobs beyond the public entry point's arguments.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// keepalived's `-i/--config-id`: selects `@ID` conditional lines. Without it, `@ID` lines
    /// are left out and `@^ID` lines kept, and each one is reported, because keepalived's own
    /// default (the host name) belongs to the director the file came from, not to this one.
    pub config_id: Option<String>,
}

/// A converted configuration.
#[derive(Debug, Clone)]
pub struct Imported {
    /// director.toml text; passes `lvs_config::parse`.
    pub toml: String,
    /// Directives without an equivalent, in source order.
    pub unsupported: Vec<Unsupported>,
}

/// A directive the import could not carry over, and what the imported config does instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    pub file: String,
    pub line: usize,
    pub directive: String,
    pub instead: String,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {} not supported: {}",
            self.file, self.line, self.directive, self.instead
        )
    }
}

/// Why an input could not be imported at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file (or an included one) could not be read.
    Read,
    /// Braces, quotes or line structure are broken.
    Syntax,
    /// A top-level block the source program does not know either.
    UnknownBlock,
    /// An address, port or network that does not parse.
    BadAddress,
    /// A value of the wrong shape (number, keyword) or a required one missing.
    BadValue,
    /// The converted text failed validation: a bug in the importer.
    Internal,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Read => "read",
            ErrorKind::Syntax => "syntax",
            ErrorKind::UnknownBlock => "unknown_block",
            ErrorKind::BadAddress => "bad_address",
            ErrorKind::BadValue => "bad_value",
            ErrorKind::Internal => "internal",
        }
    }
}

/// Malformed input, located at the line at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ImportError {
    pub file: String,
    pub line: usize,
    pub kind: ErrorKind,
    pub message: String,
}

impl ImportError {
    pub(crate) fn new(origin: &Origin, kind: ErrorKind, message: impl Into<String>) -> ImportError {
        ImportError {
            file: origin.file.clone(),
            line: origin.line,
            kind,
            message: message.into(),
        }
    }
}

/// Converts `path` from `source` format. With `strict`, any unsupported directive is an error
/// (the first one, located); the caller maps errors to exit status 65 (EX_DATAERR).
pub fn import(source: Source, path: &Path, strict: bool) -> Result<Imported, ImportError> {
    import_with(source, path, strict, &Options::default())
}

/// [`import`] with [`Options`].
pub fn import_with(
    source: Source,
    path: &Path,
    strict: bool,
    options: &Options,
) -> Result<Imported, ImportError> {
    let file = path.display().to_string();
    let mut out = match source {
        Source::Keepalived => keepalived::convert(path, options)?,
        Source::Ldirectord => {
            let text = read(path, &Origin::new(&file, 0))?;
            ldirectord::convert(&text, &file)?
        }
        Source::Ipvsadm => {
            let text = read(path, &Origin::new(&file, 0))?;
            ipvsadm::convert(&text, &file)?
        }
    };
    out.source_label = format!(
        "{} ({})",
        file,
        match source {
            Source::Keepalived => "keepalived",
            Source::Ldirectord => "ldirectord",
            Source::Ipvsadm => "ipvsadm -S",
        }
    );
    let toml = out.render();
    if let Err(error) = lvs_config::parse(&toml, "imported director.toml") {
        return Err(ImportError::new(
            &Origin::new(&file, 0),
            ErrorKind::Internal,
            format!("the converted configuration does not validate (importer bug): {error}"),
        ));
    }
    let unsupported = out.unsupported;
    if strict && let Some(first) = unsupported.first() {
        return Err(ImportError {
            file: first.file.clone(),
            line: first.line,
            kind: ErrorKind::BadValue,
            message: format!(
                "{} not supported: {} (--strict)",
                first.directive, first.instead
            ),
        });
    }
    Ok(Imported { toml, unsupported })
}

pub(crate) fn read(path: &Path, at: &Origin) -> Result<String, ImportError> {
    std::fs::read_to_string(path).map_err(|e| {
        ImportError::new(
            at,
            ErrorKind::Read,
            format!("cannot read {}: {e}", path.display()),
        )
    })
}

/// Where a block or directive came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    pub file: String,
    pub line: usize,
}

impl Origin {
    pub fn new(file: &str, line: usize) -> Origin {
        Origin {
            file: file.to_owned(),
            line,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

pub(crate) use emit::{Block, Output};
