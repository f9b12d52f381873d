//! directord's side of the kernel: read the IPVS table, apply a plan, set the ipvs sysctls.

use std::collections::BTreeMap;
use std::path::Path;

use lvs_config::SysctlValue;
use lvs_ipvs::{IpvsClient, Request};

use lvs_proto::directord::Applied;

use crate::table::{Table, TableService};

/// The kernel's table, every service with its destinations.
pub fn read_table(client: &mut IpvsClient) -> Result<Table, lvs_ipvs::Error> {
    let mut table = Table::default();
    for service in client.services()? {
        let destinations = client
            .destinations(&service.key)?
            .into_iter()
            .map(|destination| (destination.socket_addr(), destination))
            .collect();
        table.services.insert(
            service.key,
            TableService {
                service,
                destinations,
            },
        );
    }
    Ok(table)
}

/// Sends the whole plan as one batch; every failure is reported, none stops the rest.
pub fn apply(client: &mut IpvsClient, plan: &[Request]) -> Result<Applied, lvs_ipvs::Error> {
    if plan.is_empty() {
        return Ok(Applied::default());
    }
    let report = client.execute_batch(plan)?;
    let failures = report
        .results
        .iter()
        .zip(plan)
        .filter_map(|(result, request)| {
            result
                .as_ref()
                .err()
                .map(|e| format!("{}: {e}", describe(request)))
        })
        .collect();
    Ok(Applied {
        requests: plan.len(),
        sendmsg_calls: report.sendmsg_calls,
        failures,
    })
}

/// One line per request, for logs and the control socket.
pub fn describe(request: &Request) -> String {
    match request {
        Request::AddService(s) => format!("add service {} {}", s.key, s.scheduler),
        Request::EditService(s) => format!("edit service {} {}", s.key, s.scheduler),
        Request::DelService(key) => format!("delete service {key}"),
        Request::AddDestination(key, d) => {
            format!("add {} to {key} weight {}", d.socket_addr(), d.weight)
        }
        Request::EditDestination(key, d) => {
            format!("set {} in {key} weight {}", d.socket_addr(), d.weight)
        }
        Request::DelDestination(key, addr) => format!("remove {addr} from {key}"),
        other => format!("{other:?}"),
    }
}

/// Writes `net.ipv4.vs.<name>` under `proc_root` (normally /proc/sys/net/ipv4/vs); returns the
/// settings that could not be written with why.
pub fn apply_sysctls(proc_root: &Path, sysctls: &BTreeMap<String, SysctlValue>) -> Vec<String> {
    sysctls
        .iter()
        .filter_map(|(name, value)| {
            let path = proc_root.join(name);
            let current = std::fs::read_to_string(&path).ok();
            let wanted = value.to_string();
            let same = current
                .as_deref()
                .is_some_and(|c| c.split_whitespace().eq(wanted.split_whitespace()));
            if same {
                return None;
            }
            std::fs::write(&path, format!("{wanted}\n"))
                .err()
                .map(|e| format!("{}: {e}", path.display()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctls_are_written_only_when_they_differ() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sync_threshold"), "3\t50\n").unwrap();
        std::fs::write(dir.path().join("expire_nodest_conn"), "0\n").unwrap();
        let mut sysctls = BTreeMap::new();
        sysctls.insert("sync_threshold".to_owned(), SysctlValue::List(vec![3, 50]));
        sysctls.insert("expire_nodest_conn".to_owned(), SysctlValue::Int(1));
        let before = std::fs::metadata(dir.path().join("sync_threshold"))
            .unwrap()
            .modified()
            .unwrap();
        let failures = apply_sysctls(dir.path(), &sysctls);
        assert_eq!(failures.len(), 0, "{failures:?}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("expire_nodest_conn")).unwrap(),
            "1\n"
        );
        assert_eq!(
            std::fs::metadata(dir.path().join("sync_threshold"))
                .unwrap()
                .modified()
                .unwrap(),
            before
        );
    }
}
