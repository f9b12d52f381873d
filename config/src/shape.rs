//! Every shape error of a file at once: TOML syntax errors (the parser recovers and goes on),
//! then wrong types and unknown keys, section by section and element by element. serde stops
//! at the first error of a document, so each top-level section, each `[[virtual_server]]`, each
//! `[[vrrp.instance]]` and `[[vrrp.sync_group]]` is deserialized on its own; the spans are the
//! original file's.

use serde::de::{DeserializeOwned, IntoDeserializer};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::model::{Config, SyncGroup, VirtualServer, Vrrp, VrrpInstance};

/// (byte offset, message) of each error, in file order.
pub fn errors(text: &str) -> Vec<(usize, String)> {
    let (document, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        return syntax.iter().map(located).collect();
    }
    let span = document.span();
    let mut found = Vec::new();
    for (key, value) in document.get_ref() {
        match key.get_ref().as_ref() {
            "virtual_server" => each::<VirtualServer>(value, &mut found),
            "vrrp" => vrrp(value, &mut found),
            // Any other section, alone in a document: its own errors, or an unknown key.
            _ => {
                let mut alone = DeTable::default();
                alone.insert(key.clone(), value.clone());
                one::<Config>(
                    Spanned::new(span.clone(), DeValue::Table(alone)),
                    &mut found,
                );
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

fn located(error: &toml::de::Error) -> (usize, String) {
    let offset = error.span().map_or(0, |span| span.start);
    (offset, error.message().trim_end().replace('\n', "; "))
}

fn one<T: DeserializeOwned>(value: Spanned<DeValue<'_>>, found: &mut Vec<(usize, String)>) {
    if let Err(error) = T::deserialize(value.into_deserializer()) {
        found.push(located(&error));
    }
}

/// An array of tables element by element; anything else as the array it should be.
fn each<T: DeserializeOwned>(value: &Spanned<DeValue<'_>>, found: &mut Vec<(usize, String)>) {
    match value.get_ref() {
        DeValue::Array(items) => {
            for item in items {
                one::<T>(item.clone(), found);
            }
        }
        _ => one::<Vec<T>>(value.clone(), found),
    }
}

/// `[vrrp]`: each instance and sync group on its own, then the section's other keys.
fn vrrp(value: &Spanned<DeValue<'_>>, found: &mut Vec<(usize, String)>) {
    let DeValue::Table(table) = value.get_ref() else {
        one::<Vrrp>(value.clone(), found);
        return;
    };
    let mut rest = DeTable::default();
    for (key, item) in table {
        match key.get_ref().as_ref() {
            "instance" => each::<VrrpInstance>(item, found),
            "sync_group" => each::<SyncGroup>(item, found),
            _ => {
                rest.insert(key.clone(), item.clone());
            }
        }
    }
    one::<Vrrp>(Spanned::new(value.span(), DeValue::Table(rest)), found);
}
