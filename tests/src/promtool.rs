//! Prometheus's own checker, `promtool` (Debian `prometheus`), over what the daemons serve and
//! over monitoring/'s alert rules.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The repository's monitoring/ folder: the Grafana dashboard and the alert rules.
pub fn monitoring_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../monitoring")
}

fn promtool() -> Result<Command, String> {
    let found = Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        return Err(
            "promtool is missing: scripts/install-deps installs it (Debian prometheus)".into(),
        );
    }
    Ok(Command::new("promtool"))
}

/// `promtool check metrics` on a scrape: exposition errors and lint problems (names, types,
/// units, help) come back as the error.
pub fn check_metrics(scrape: &str) -> Result<(), String> {
    let mut child = promtool()?
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("promtool: {e}"))?;
    child
        .stdin
        .take()
        .ok_or("promtool: no stdin")?
        .write_all(scrape.as_bytes())
        .map_err(|e| format!("promtool stdin: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("promtool: {e}"))?;
    let said = said(&out);
    if out.status.success() && said.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("promtool check metrics: {said}\non:\n{scrape}"))
    }
}

/// What promtool printed, stdout then stderr.
fn said(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `promtool ARGS...` and returns its output, or the output as the error when it fails.
pub fn run(args: &[&str]) -> Result<String, String> {
    let out = promtool()?
        .args(args)
        .output()
        .map_err(|e| format!("promtool: {e}"))?;
    let said = said(&out);
    if out.status.success() {
        Ok(said)
    } else {
        Err(format!("promtool {}: {said}", args.join(" ")))
    }
}

/// Every metric name the Grafana dashboard and the alert rules query.
pub fn queried_metrics() -> Result<BTreeSet<String>, String> {
    let dir = monitoring_dir();
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name)).map_err(|e| format!("monitoring/{name}: {e}"))
    };
    let dashboard: serde_json::Value = serde_json::from_str(&read(DASHBOARD)?)
        .map_err(|e| format!("monitoring/{DASHBOARD}: {e}"))?;
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    // The rules keep each expression on one line, so no YAML parser is needed to find them.
    exprs.extend(
        read(RULES)?
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("expr: "))
            .map(str::to_owned),
    );
    if exprs.is_empty() {
        return Err("monitoring/ queries nothing".to_owned());
    }
    Ok(exprs.iter().flat_map(|e| metric_names(e)).collect())
}

pub const DASHBOARD: &str = "grafana-dashboard.json";
pub const RULES: &str = "alerts.yml";
pub const RULE_TESTS: &str = "alerts.test.yml";

fn collect_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match v {
                    serde_json::Value::String(s) if key == "expr" => out.push(s.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

const MODIFIERS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
/// Operators and the aggregations, which may be followed by `by (...)` before their
/// parenthesis.
const KEYWORDS: [&str; 17] = [
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];

/// The metric names in a PromQL expression: identifiers outside label matchers, ranges and
/// strings that are neither functions (followed by a parenthesis), keywords, nor the label
/// lists of by/on/without/ignoring.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    // Blank out {...}, [...] and "..." so only names, functions and operators remain.
    let mut plain = String::with_capacity(expr.len());
    let mut closing: Option<char> = None;
    for c in expr.chars() {
        match closing {
            Some(end) if c == end => closing = None,
            Some(_) => {}
            None => match c {
                '{' => closing = Some('}'),
                '[' => closing = Some(']'),
                '"' => closing = Some('"'),
                _ => {
                    plain.push(c);
                    continue;
                }
            },
        }
        plain.push(' ');
    }
    let chars: Vec<char> = plain.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let mut skip_list = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '(' && skip_list {
            // The label list after a modifier: skip to its end.
            i += chars[i..]
                .iter()
                .position(|&c| c == ')')
                .unwrap_or(chars.len() - i);
            skip_list = false;
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_:".contains(chars[i])) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            if MODIFIERS.contains(&word.as_str()) {
                skip_list = true;
            } else if next != Some(&'(') && !KEYWORDS.contains(&word.as_str()) {
                names.insert(word);
            }
            continue;
        } else if c.is_ascii_digit() {
            // A number (or a duration's digits): not a name.
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            continue;
        }
        i += 1;
    }
    names
}

/// Checks that `scrape`, a daemon's /metrics, has every queried metric whose name starts with
/// one of `prefixes` (a family the daemon registered shows its `# TYPE` line even before its
/// first sample).
pub fn check_exported(scrape: &str, prefixes: &[&str]) -> Result<(), String> {
    let missing: Vec<String> = queried_metrics()?
        .into_iter()
        .filter(|name| prefixes.iter().any(|p| name.starts_with(p)))
        .filter(|name| {
            let typed = format!("# TYPE {name} ");
            !scrape.lines().any(|l| {
                l.starts_with(&typed)
                    || l.strip_prefix(name.as_str())
                        .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
            })
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "monitoring/ queries {missing:?}, which this scrape lacks:\n{scrape}"
        ))
    }
}

/// Which test checks each daemon's names against its real scrape, by name prefix; `up` is
/// Prometheus's own.
pub const OWNERS: [(&str, &str); 9] = [
    (
        "keepalived_",
        "tests/tests/vrrp.rs: crafted_bad_packets_are_dropped_and_counted_in_status_and_metrics",
    ),
    (
        "vrrp_",
        "tests/tests/vrrp.rs: crafted_bad_packets_are_dropped_and_counted_in_status_and_metrics",
    ),
    (
        "process_",
        "tests/tests/vrrp.rs: crafted_bad_packets_are_dropped_and_counted_in_status_and_metrics",
    ),
    (
        "lvs_director_build_info",
        "tests/tests/vrrp.rs: crafted_bad_packets_are_dropped_and_counted_in_status_and_metrics",
    ),
    (
        "directord_",
        "tests/tests/uml_directord.rs: health_checks_quiesce_remove_and_fall_back",
    ),
    (
        "node_ipvs_",
        "tests/tests/uml_directord.rs: health_checks_quiesce_remove_and_fall_back",
    ),
    (
        "syncd_",
        "tests/tests/uml_syncd.rs: syncd_relays_master_to_backup",
    ),
    (
        "feedbackd_",
        "tests/tests/uml_feedback.rs: ipvs_weights_follow_the_agents",
    ),
    ("up", "Prometheus"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_found_outside_matchers_functions_and_label_lists() {
        let names = metric_names(
            "count by (vrid) (max by (instance, vrid) (keepalived_vrrp_state{a=\"b c\"} == 2)) > 1 \
             and on (instance) (time() - syncd_last_update_timestamp_seconds > 300) \
             unless rate(x:y_total[5m] offset 1h)",
        );
        let want: BTreeSet<String> = [
            "keepalived_vrrp_state",
            "syncd_last_update_timestamp_seconds",
            "x:y_total",
        ]
        .map(String::from)
        .into();
        assert_eq!(names, want);
    }

    // The dashboard parses and queries only names a scrape test checks: a name no daemon
    // owns would go unchecked against a real scrape.
    #[test]
    fn every_queried_metric_has_a_scrape_test() {
        let names = queried_metrics().unwrap();
        assert!(names.contains("keepalived_vrrp_state"), "{names:?}");
        assert!(names.contains("node_ipvs_backend_weight"), "{names:?}");
        let unowned: Vec<&String> = names
            .iter()
            .filter(|n| {
                !OWNERS.iter().any(|(p, _)| {
                    if *p == "up" {
                        *n == "up"
                    } else {
                        n.starts_with(p)
                    }
                })
            })
            .collect();
        assert!(unowned.is_empty(), "no scrape test checks {unowned:?}");
    }

    #[test]
    fn the_rules_pass_promtool_check_and_their_unit_tests() {
        let dir = monitoring_dir();
        let rules = dir.join(RULES);
        let checked = run(&["check", "rules", rules.to_str().unwrap()]).unwrap();
        assert!(checked.contains("SUCCESS"), "{checked}");
        let tests = dir.join(RULE_TESTS);
        let tested = run(&["test", "rules", tests.to_str().unwrap()]).unwrap();
        assert!(tested.contains("SUCCESS"), "{tested}");
    }
}
