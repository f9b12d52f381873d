//! `-R`: every line is parsed before anything is sent; a file with one bad line changes
//! nothing. A good file goes to the kernel as one batch.

use std::fmt;

use lvs_ipvs::{Error, IpvsClient, KernelError, Request};

use super::args::{self, Cmd};

/// One request per command line, with the line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<(usize, Request)>,
}

/// Commands a restore file may contain: the ones `-S` writes plus the other table edits.
fn restorable(cmd: Cmd) -> bool {
    matches!(
        cmd,
        Cmd::AddService
            | Cmd::EditService
            | Cmd::DelService
            | Cmd::Flush
            | Cmd::AddDest
            | Cmd::EditDest
            | Cmd::DelDest
            | Cmd::Zero
            | Cmd::SetTimeouts
    )
}

/// Parses a whole restore file; on failure returns one "line N: error" per bad line.
pub fn parse(input: &str) -> Result<Plan, Vec<String>> {
    let mut steps = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let n = i + 1;
        let words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        if words.is_empty() || words[0].starts_with('#') {
            continue;
        }
        // `ipvsadm -S` output is restorable, and so are lines that repeat the program name.
        let words = match words[0].as_str() {
            "ipvsadm" | "lvsadm" => &words[1..],
            _ => &words[..],
        };
        match args::parse(words) {
            Ok(inv) if restorable(inv.cmd) => match inv.request() {
                Some(req) => steps.push((n, req)),
                None => errors.push(format!("line {n}: incomplete command")),
            },
            Ok(inv) => errors.push(format!(
                "line {n}: the '{}' command cannot be restored",
                inv.cmd.name()
            )),
            Err(e) => errors.push(format!("line {n}: {e}")),
        }
    }
    if errors.is_empty() {
        Ok(Plan { steps })
    } else {
        Err(errors)
    }
}

#[derive(Debug)]
pub enum ApplyError {
    Io(Error),
    Kernel {
        line: usize,
        error: KernelError,
        failed: usize,
    },
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApplyError::Io(e) => write!(f, "{e}"),
            ApplyError::Kernel {
                line,
                error,
                failed,
            } => {
                write!(f, "line {line}: {}", error.message)?;
                if *failed > 1 {
                    write!(f, " (and {} more failed line(s))", failed - 1)?;
                }
                Ok(())
            }
        }
    }
}

/// Sends the plan in one batch; reports the first line the kernel refused.
pub fn apply(client: &mut IpvsClient, plan: &Plan) -> Result<(), ApplyError> {
    if plan.steps.is_empty() {
        return Ok(());
    }
    let reqs: Vec<Request> = plan.steps.iter().map(|(_, r)| r.clone()).collect();
    let report = client.execute_batch(&reqs).map_err(ApplyError::Io)?;
    match report.first_error() {
        None => Ok(()),
        Some((idx, error)) => Err(ApplyError::Kernel {
            line: plan.steps[idx].0,
            error: error.clone(),
            failed: report.failures().count(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_output_parses_into_one_request_per_line() {
        let file = "# saved\n-A -t 192.0.2.100:80 -s rr\n\n-a -t 192.0.2.100:80 -r 198.51.100.2:8080 -m -w 1\n";
        let plan = parse(file).unwrap();
        let lines: Vec<usize> = plan.steps.iter().map(|(n, _)| *n).collect();
        assert_eq!(lines, [2, 4]);
        assert!(matches!(plan.steps[0].1, Request::AddService(_)));
        assert!(matches!(plan.steps[1].1, Request::AddDestination(..)));
    }

    #[test]
    fn one_bad_line_rejects_the_file() {
        let file = "-A -t 192.0.2.100:80 -s rr\n-a -t 192.0.2.100:80 -r nonsense\n-L -n\n";
        let errors = parse(file).unwrap_err();
        assert_eq!(errors.len(), 2);
        assert!(errors[0].starts_with("line 2: "), "{errors:?}");
        assert!(errors[1].starts_with("line 3: "), "{errors:?}");
    }
}
