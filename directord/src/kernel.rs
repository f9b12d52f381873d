//! directord's side of the kernel: read the IPVS table, apply a plan, set the ipvs sysctls.

use std::collections::BTreeMap;
use std::path::Path;

use lvs_config::SysctlValue;
use lvs_ipvs::{BatchReport, IpvsClient, Request};
use tokio::sync::oneshot;

use crate::cache::Backend;
use crate::table::{Table, TableService};

/// The kernel's table, every service with its destinations.
pub fn read_table(client: &mut IpvsClient) -> Result<Table, lvs_ipvs::Error> {
    let mut table = Table::default();
    for mut service in client.services()? {
        // The table is compared in the terms the config sets; counters would only take room.
        service.stats = None;
        let destinations = client
            .destinations(&service.key)?
            .into_iter()
            .map(|mut destination| {
                destination.stats = None;
                destination
            })
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

/// The IPVS socket on a std thread of its own: a dump of 37,000 destinations takes seconds of
/// blocking recvmsg, and on the daemon's (single-threaded) runtime that would stop the checks
/// and the control socket for as long. Requests go over a channel; answers come back on
/// oneshots the runtime awaits.
pub struct NetlinkThread {
    jobs: std::sync::mpsc::Sender<Job>,
}

enum Job {
    Dump(oneshot::Sender<Result<Table, lvs_ipvs::Error>>),
    Execute(Vec<Request>, oneshot::Sender<Executed>),
}

type Executed = Result<(Vec<Request>, BatchReport), lvs_ipvs::Error>;

/// What the thread does with the socket: the kernel's client, or a test's stand-in.
pub trait Blocking: Send + 'static {
    fn dump(&mut self) -> Result<Table, lvs_ipvs::Error>;
    fn execute(&mut self, plan: &[Request]) -> Result<BatchReport, lvs_ipvs::Error>;
}

impl Blocking for IpvsClient {
    fn dump(&mut self) -> Result<Table, lvs_ipvs::Error> {
        read_table(self)
    }

    fn execute(&mut self, plan: &[Request]) -> Result<BatchReport, lvs_ipvs::Error> {
        self.execute_batch(plan)
    }
}

impl NetlinkThread {
    /// Moves `client` to a new thread, which ends when this handle is dropped.
    pub fn spawn(mut client: impl Blocking) -> std::io::Result<Self> {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("ipvs-netlink".to_owned())
            .spawn(move || {
                for job in queue {
                    // A dropped receiver means the daemon stopped waiting: nothing to tell.
                    match job {
                        Job::Dump(reply) => {
                            let _ = reply.send(client.dump());
                        }
                        Job::Execute(plan, reply) => {
                            let report = client.execute(&plan);
                            let _ = reply.send(report.map(|report| (plan, report)));
                        }
                    }
                }
            })?;
        Ok(NetlinkThread { jobs })
    }

    async fn ask<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T, lvs_ipvs::Error>>) -> Job,
    ) -> Result<T, lvs_ipvs::Error> {
        let gone = || lvs_ipvs::Error::Io {
            context: "netlink thread",
            source: std::io::Error::other("the IPVS netlink thread has stopped"),
        };
        let (reply, answer) = oneshot::channel();
        self.jobs.send(job(reply)).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

impl Backend for NetlinkThread {
    async fn dump(&mut self) -> Result<Table, lvs_ipvs::Error> {
        self.ask(Job::Dump).await
    }

    async fn execute(&mut self, plan: Vec<Request>) -> Executed {
        self.ask(|reply| Job::Execute(plan, reply)).await
    }
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
    use std::time::{Duration, Instant};

    /// A kernel whose dump takes as long as a 37,000-entry one does in a loaded guest.
    struct Slow(Duration);

    impl Blocking for Slow {
        fn dump(&mut self) -> Result<Table, lvs_ipvs::Error> {
            std::thread::sleep(self.0);
            Ok(Table::default())
        }

        fn execute(&mut self, plan: &[Request]) -> Result<BatchReport, lvs_ipvs::Error> {
            Ok(BatchReport {
                results: vec![Ok(()); plan.len()],
                sendmsg_calls: 1,
            })
        }
    }

    /// While a long dump is in flight, the daemon's single-threaded runtime keeps running
    /// its other tasks (checks, the control socket) on time: the socket is on its own thread.
    #[test]
    fn a_long_dump_leaves_the_runtime_free() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut netlink = NetlinkThread::spawn(Slow(Duration::from_millis(600))).unwrap();
            let started = Instant::now();
            // Ten 20 ms ticks: 200 ms of timers that a blocked runtime could not run at all.
            let ticks = tokio::spawn(async move {
                for i in 1..=10u32 {
                    tokio::time::sleep_until((started + Duration::from_millis(20) * i).into())
                        .await;
                }
            });
            let table = netlink.dump().await.unwrap();
            assert!(table.services.is_empty());
            assert!(started.elapsed() >= Duration::from_millis(600));
            assert!(
                ticks.is_finished(),
                "the runtime's timers waited for the dump"
            );
            let (plan, report) = netlink.execute(vec![Request::Flush]).await.unwrap();
            assert_eq!((plan.len(), report.results.len()), (1, 1));
        });
    }

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
