//! Writes the converted model as director.toml: one block per source block, each under a
//! `# from FILE:LINE` comment followed by what of it could not be carried over.
//!
//! Values go through lvs-config's own `Serialize` impls, so key names and value syntax are the
//! ones `lvs_config::parse` reads back; only the layout (comments, which block goes where) is
//! ours.

use std::ops::Range;

use lvs_config::{Sync, SyncGroup, VirtualServer, VrrpInstance};

use super::{Origin, Unsupported};

/// One converted block and where it came from.
#[derive(Debug, Clone)]
pub(crate) struct Block<T> {
    pub origin: Origin,
    pub value: T,
    /// The [`Output::unsupported`] entries raised while converting this block.
    pub notes: Range<usize>,
    /// Source lines of the nested blocks (real servers), in order.
    pub children: Vec<Origin>,
    /// How the conversion read the source where that is not obvious (defaults made explicit,
    /// rewritten weights); printed under the block's origin.
    pub comments: Vec<String>,
}

#[derive(Debug, Default)]
pub(crate) struct Output {
    pub source_label: String,
    /// Lines for the file's header comment: facts about the conversion that are not defects.
    pub remarks: Vec<String>,
    pub vrrp_scheduling: Option<Block<VrrpScheduling>>,
    pub instances: Vec<Block<VrrpInstance>>,
    pub bfd_sessions: Vec<Block<lvs_config::BfdSession>>,
    pub sync_groups: Vec<Block<SyncGroup>>,
    pub virtual_servers: Vec<Block<VirtualServer>>,
    pub sync: Option<Block<Sync>>,
    pub unsupported: Vec<Unsupported>,
}

/// The keys of `[vrrp]` itself that keepalived's global_defs set: vrrpd's scheduling.
#[derive(Debug, Default, serde::Serialize)]
pub(crate) struct VrrpScheduling {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rt_priority: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rlimit_rttime: Option<lvs_config::Duration>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub no_swap: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify_fifo: Option<std::path::PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify_fifo_script: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub script_security: bool,
}

impl Output {
    pub fn unsupported(
        &mut self,
        at: &Origin,
        directive: impl Into<String>,
        instead: impl Into<String>,
    ) {
        self.unsupported.push(Unsupported {
            file: at.file.clone(),
            line: at.line,
            directive: directive.into(),
            instead: instead.into(),
        });
    }

    /// Marks the start of a block's conversion; pass it to [`Output::block`] at the end.
    pub fn mark(&self) -> usize {
        self.unsupported.len()
    }

    pub fn block<T>(&self, origin: Origin, value: T, mark: usize) -> Block<T> {
        Block {
            origin,
            value,
            notes: mark..self.unsupported.len(),
            children: Vec::new(),
            comments: Vec::new(),
        }
    }

    pub fn render(&self) -> String {
        let mut text = format!(
            "# director.toml imported by `lvsadm import` from {}.\n\
             # Each block names the source line it was converted from; review them side by side.\n",
            self.source_label
        );
        if !self.unsupported.is_empty() {
            text.push_str(&format!(
                "# {} directive(s) have no equivalent; each is noted at its block, or here:\n",
                self.unsupported.len()
            ));
        }
        for (i, note) in self.unsupported.iter().enumerate() {
            if !self.in_a_block(i) {
                text.push_str(&format!(
                    "#   {}:{}: {} not supported: {}\n",
                    note.file, note.line, note.directive, note.instead
                ));
            }
        }
        for remark in &self.remarks {
            text.push_str(&format!("# {remark}\n"));
        }
        if self.instances.is_empty() && self.virtual_servers.is_empty() && self.sync.is_none() {
            text.push_str(
                "# Nothing to import: the source defines no VRRP instance or virtual server.\n",
            );
        }
        if let Some(block) = &self.vrrp_scheduling {
            self.section(&mut text, block, &["vrrp"], false, None);
        }
        for block in &self.instances {
            self.section(&mut text, block, &["vrrp", "instance"], true, None);
        }
        for block in &self.sync_groups {
            self.section(&mut text, block, &["vrrp", "sync_group"], true, None);
        }
        for block in &self.bfd_sessions {
            self.section(&mut text, block, &["bfd", "session"], true, None);
        }
        for block in &self.virtual_servers {
            self.section(
                &mut text,
                block,
                &["virtual_server"],
                true,
                Some("[[virtual_server.real]]"),
            );
        }
        if let Some(block) = &self.sync {
            self.section(&mut text, block, &["sync"], false, None);
        }
        text
    }

    fn in_a_block(&self, note: usize) -> bool {
        let ranges = self
            .instances
            .iter()
            .map(|b| &b.notes)
            .chain(self.sync_groups.iter().map(|b| &b.notes))
            .chain(self.bfd_sessions.iter().map(|b| &b.notes))
            .chain(self.virtual_servers.iter().map(|b| &b.notes))
            .chain(self.sync.iter().map(|b| &b.notes))
            .chain(self.vrrp_scheduling.iter().map(|b| &b.notes));
        ranges.into_iter().any(|r| r.contains(&note))
    }

    fn section<T: serde::Serialize>(
        &self,
        text: &mut String,
        block: &Block<T>,
        path: &[&str],
        array: bool,
        child_header: Option<&str>,
    ) {
        text.push('\n');
        text.push_str(&format!("# from {}\n", block.origin));
        for note in &self.unsupported[block.notes.clone()] {
            text.push_str(&format!(
                "# {}:{}: {} not supported: {}\n",
                note.file, note.line, note.directive, note.instead
            ));
        }
        for comment in &block.comments {
            text.push_str(&format!("# {comment}\n"));
        }
        let mut value = toml::Value::try_from(&block.value)
            .expect("lvs-config model types always serialize to TOML");
        prune_empty_arrays(&mut value);
        fix_sync_role(&mut value);
        let mut wrapped = if array {
            toml::Value::Array(vec![value])
        } else {
            value
        };
        for key in path.iter().rev() {
            let mut table = toml::Table::new();
            table.insert((*key).to_owned(), wrapped);
            wrapped = toml::Value::Table(table);
        }
        let body = toml::to_string(&wrapped).expect("a TOML table always serializes");
        let mut children = block.children.iter();
        for line in body.lines() {
            if Some(line.trim()) == child_header
                && let Some(origin) = children.next()
            {
                text.push_str(&format!("# from {origin}\n"));
            }
            text.push_str(line);
            text.push('\n');
        }
    }
}

/// lvs-config derives `Serialize` for `SyncRole` (externally tagged: `{ Follow = "VI_1" }`)
/// but reads `role` as `"master"`, `"backup"` or `{ follow = "VI_1" }`; write what it reads.
fn fix_sync_role(value: &mut toml::Value) {
    let Some(role) = value.get_mut("role") else {
        return;
    };
    *role = match role.clone() {
        toml::Value::String(s) => toml::Value::String(s.to_ascii_lowercase()),
        toml::Value::Table(t) => {
            let mut fixed = toml::Table::new();
            for (k, v) in t {
                fixed.insert(k.to_ascii_lowercase(), v);
            }
            toml::Value::Table(fixed)
        }
        other => other,
    };
}

/// Every list in the model defaults to empty, and connection thresholds to 0 (no limit), so
/// such values say nothing worth a line.
fn prune_empty_arrays(value: &mut toml::Value) {
    match value {
        toml::Value::Table(table) => {
            table.retain(|k, v| {
                let empty_list = matches!(v, toml::Value::Array(items) if items.is_empty());
                let no_threshold =
                    matches!(k, "upper_threshold" | "lower_threshold") && v.as_integer() == Some(0);
                !(empty_list || no_threshold)
            });
            for (_, v) in table.iter_mut() {
                prune_empty_arrays(v);
            }
        }
        toml::Value::Array(items) => items.iter_mut().for_each(prune_empty_arrays),
        _ => {}
    }
}
