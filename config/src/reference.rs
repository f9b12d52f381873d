//! director.toml's reference, read from the config model itself (its serde shape, defaults and
//! doc comments, through `schemars`), so the manual page and the example's completeness test
//! cannot drift from what the daemons accept.

use schemars::schema_for;
use serde_json::{Map, Value};

use crate::Config;

/// One table of the file: `[vrrp]`, or an array of tables such as `[[vrrp.instance]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// Dotted path: `vrrp.instance`; empty for the top level.
    pub path: String,
    /// Written `[[path]]`: the file may hold several.
    pub array: bool,
    pub description: String,
    pub keys: Vec<Key>,
}

impl Section {
    /// As the file writes its header: `[vrrp]`, `[[virtual_server]]`.
    pub fn header(&self) -> String {
        if self.array {
            format!("[[{}]]", self.path)
        } else {
            format!("[{}]", self.path)
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    /// As an operator writes it: `string`, `duration`, `"tcp" | "udp"`, `array of address/prefix`.
    pub kind: String,
    /// TOML text of the default, when the key has one worth printing.
    pub default: Option<String>,
    /// Must be written (no default, not optional).
    pub required: bool,
    pub description: String,
    /// The section this key opens, when its value is a table of its own.
    pub table: Option<String>,
}

/// Every section of director.toml, top level first, in the order a file is read.
pub fn sections() -> Vec<Section> {
    let schema = schema_for!(Config);
    let root = schema.as_value();
    let defs = root
        .get("$defs")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut walk = Walk {
        defs,
        sections: Vec::new(),
        described: Vec::new(),
    };
    walk.object("", false, root, None);
    walk.sections
}

struct Walk {
    defs: Map<String, Value>,
    sections: Vec<Section>,
    /// Where each named table was described first: a second use points there.
    described: Vec<(String, String)>,
}

/// The definition a property refers to, through an `Option`'s `anyOf` or an array's items.
fn ref_name(schema: &Value) -> Option<&str> {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        return reference.strip_prefix("#/$defs/");
    }
    if let Some(items) = schema.get("items") {
        return ref_name(items);
    }
    schema
        .get("anyOf")
        .and_then(Value::as_array)?
        .iter()
        .find_map(ref_name)
}

impl Walk {
    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => reference
                .strip_prefix("#/$defs/")
                .and_then(|name| self.defs.get(name))
                .unwrap_or(schema),
            None => schema,
        }
    }

    /// The schema without the `null` of an `Option`, and whether there was one.
    fn non_null<'a>(&'a self, schema: &'a Value) -> (&'a Value, bool) {
        if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
            let rest: Vec<&Value> = any.iter().filter(|s| !is_null(s)).collect();
            if rest.len() == 1 && rest.len() < any.len() {
                return (self.resolve(rest[0]), true);
            }
        }
        if let Some(types) = schema.get("type").and_then(Value::as_array)
            && types.iter().any(|t| t == "null")
        {
            return (schema, true);
        }
        (self.resolve(schema), false)
    }

    /// A struct's schema: a table with named keys.
    fn struct_like<'a>(&'a self, schema: &'a Value) -> Option<&'a Map<String, Value>> {
        let schema = self.resolve(schema);
        if schema.get("type").and_then(Value::as_str) != Some("object") {
            return None;
        }
        schema.get("properties").and_then(Value::as_object)
    }

    fn object(&mut self, path: &str, array: bool, schema: &Value, def: Option<&str>) {
        let header = if array {
            format!("[[{path}]]")
        } else {
            format!("[{path}]")
        };
        if let Some(def) = def {
            if let Some((_, first)) = self.described.iter().find(|(d, _)| d == def) {
                self.sections.push(Section {
                    path: path.to_owned(),
                    array,
                    description: format!("The keys of {first}, with the same meaning."),
                    keys: Vec::new(),
                });
                return;
            }
            self.described.push((def.to_owned(), header));
        }
        let schema = self.resolve(schema).clone();
        let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
            return;
        };
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let index = self.sections.len();
        self.sections.push(Section {
            path: path.to_owned(),
            array,
            description: description(&schema),
            keys: Vec::new(),
        });
        let mut keys = Vec::new();
        for (name, property) in properties {
            let child = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            let (inner, optional) = self.non_null(property);
            let inner = inner.clone();
            let mut key = Key {
                name: name.clone(),
                kind: self.kind(property),
                default: property.get("default").and_then(default_text),
                required: required.contains(&name.as_str()) && !optional,
                description: description(property).or_else_owned(|| description(&inner)),
                table: None,
            };
            if self.struct_like(&inner).is_some() {
                key.table = Some(format!("[{child}]"));
                key.kind = "table".to_owned();
                key.default = None;
                self.object(&child, false, &inner, ref_name(property));
            } else if has_type(&inner, "array")
                && let Some(items) = inner.get("items")
                && self.struct_like(items).is_some()
            {
                key.table = Some(format!("[[{child}]]"));
                key.kind = "array of tables".to_owned();
                key.default = None;
                let items = items.clone();
                self.object(&child, true, &items, ref_name(property));
            }
            keys.push(key);
        }
        self.sections[index].keys = keys;
    }

    fn kind(&self, schema: &Value) -> String {
        let (schema, optional) = self.non_null(schema);
        let _ = optional;
        if let Some(variants) = schema
            .get("oneOf")
            .or_else(|| schema.get("anyOf"))
            .and_then(Value::as_array)
        {
            return variants
                .iter()
                .filter(|v| !is_null(v))
                .map(|v| self.kind(v))
                .collect::<Vec<_>>()
                .join(" or ");
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            return values
                .iter()
                .map(|v| format!("\"{}\"", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(" | ");
        }
        if let Some(value) = schema.get("const").and_then(Value::as_str) {
            return format!("\"{value}\"");
        }
        let types: Vec<&str> = match schema.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .collect(),
            _ => Vec::new(),
        };
        match types.first().copied() {
            Some("string") => match schema.get("format").and_then(Value::as_str) {
                Some(format) => format.to_owned(),
                None => "string".to_owned(),
            },
            Some("integer") => integer_kind(schema),
            Some("boolean") => "boolean".to_owned(),
            Some("number") => "number".to_owned(),
            Some("array") => match schema.get("items") {
                Some(items) => format!("array of {}", self.kind(items)),
                None => "array".to_owned(),
            },
            Some("object") => {
                if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                    let fields: Vec<String> = properties
                        .iter()
                        .map(|(name, s)| format!("{name} = {}", self.kind(s)))
                        .collect();
                    format!("{{ {} }}", fields.join(", "))
                } else if let Some(values) = schema.get("additionalProperties")
                    && values.is_object()
                {
                    format!("table of {}", self.kind(values))
                } else {
                    "table".to_owned()
                }
            }
            _ => match schema.get("title").and_then(Value::as_str) {
                Some("IpNet") => "address/prefix".to_owned(),
                _ => "value".to_owned(),
            },
        }
    }
}

trait OrElseOwned {
    fn or_else_owned(self, f: impl FnOnce() -> String) -> String;
}

impl OrElseOwned for String {
    fn or_else_owned(self, f: impl FnOnce() -> String) -> String {
        if self.is_empty() { f() } else { self }
    }
}

/// `"type": "array"`, or an `Option`'s `"type": ["array", "null"]`.
fn has_type(schema: &Value, wanted: &str) -> bool {
    match schema.get("type") {
        Some(Value::String(t)) => t == wanted,
        Some(Value::Array(ts)) => ts.iter().any(|t| t == wanted),
        _ => false,
    }
}

fn is_null(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("null")
}

/// The doc comment, its lines joined: rustdoc wraps at 100 columns, a manual page reflows.
fn description(schema: &Value) -> String {
    schema
        .get("description")
        .and_then(Value::as_str)
        .map(|d| d.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn integer_kind(schema: &Value) -> String {
    let bounds = schema.get("minimum").and_then(Value::as_i64).zip(
        schema
            .get("format")
            .and_then(Value::as_str)
            .and_then(|f| match f {
                "uint8" => Some(i64::from(u8::MAX)),
                "uint16" => Some(i64::from(u16::MAX)),
                "uint32" => Some(i64::from(u32::MAX)),
                _ => None,
            }),
    );
    match bounds {
        Some((low, high)) => format!("integer ({low}..{high})"),
        None => "integer".to_owned(),
    }
}

/// A default as TOML text; `None` for absent (null) and empty ones, and for tables (their
/// keys carry their own defaults).
fn default_text(value: &Value) -> Option<String> {
    match value {
        Value::Null | Value::Object(_) => None,
        Value::Array(items) if items.is_empty() => None,
        Value::String(s) => Some(format!("\"{s}\"")),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().filter_map(default_text).collect();
            Some(format!("[{}]", parts.join(", ")))
        }
        other => Some(other.to_string()),
    }
}

/// director.toml(5) in roff, from [`sections`].
pub fn man_page(version: &str) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        ".TH DIRECTOR.TOML 5 \"\" \"lvs-director {version}\" \"File Formats\"\n"
    ));
    out.push_str(MAN_HEAD);
    for section in sections() {
        if section.path.is_empty() {
            continue;
        }
        out.push_str(&format!(".SS {}\n", roff(&section.header())));
        if !section.description.is_empty() {
            out.push_str(&format!("{}\n", roff(&section.description)));
        }
        for key in &section.keys {
            let mut head = format!("\\fB{}\\fR = \\fI{}\\fR", roff(&key.name), roff(&key.kind));
            if key.required {
                head.push_str(" (required)");
            }
            if let Some(default) = &key.default {
                head.push_str(&format!(" (default: {})", roff(default)));
            }
            out.push_str(&format!(".TP\n{head}\n"));
            let mut text = key.description.clone();
            if let Some(table) = &key.table {
                if !text.is_empty() {
                    text.push(' ');
                }
                text.push_str(&format!("See {table}."));
            }
            if text.is_empty() {
                text = "No description.".to_owned();
            }
            out.push_str(&format!("{}\n", roff(&text)));
        }
    }
    out.push_str(MAN_TAIL);
    out
}

/// Escapes text for roff: backslashes, and a leading dot or quote that would read as a request.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

const MAN_HEAD: &str = r#".SH NAME
director.toml \- configuration of an lvs-director director
.SH SYNOPSIS
/etc/lvs-director/director.toml
.SH DESCRIPTION
The one file every daemon of an lvs-director director reads:
.BR vrrpd (8),
.BR directord (8),
.BR syncd (8)
and
.BR feedbackd (8).
Each daemon reads its own sections but validates the whole file;
.B lvsadm check-config
reports every problem at file:line:column before any daemon sees it.
A daemon given an invalid file on reload (SIGHUP) keeps running with its last good one.
.PP
Every table refuses unknown keys: a misspelt key is an error, never a silently ignored
setting. Durations are strings with a unit ("150ms", "1s", "5m"); a bare number is refused.
Addresses with a port are "ip:port" or "[v6]:port". Keys marked (required) must be written;
the others take the default shown, or are off when absent.
.PP
Where a key has a keepalived, ldirectord or ipvsadm equivalent, its description names it;
.B lvsadm import
converts those files into this one.
.SH KEYS
"#;

const MAN_TAIL: &str = r#".SH FILES
.TP
.I /etc/lvs-director/director.toml
The configuration.
.TP
.I /usr/share/doc/lvs-director/examples/director.toml
An example with every key, commented.
.SH SEE ALSO
.BR lvsadm (8),
.BR vrrpd (8),
.BR directord (8),
.BR syncd (8),
.BR feedbackd (8),
.BR keepalived.conf (5),
.BR ldirectord (8),
.BR ipvsadm (8)
"#;
