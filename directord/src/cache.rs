//! The kernel's IPVS table as directord last saw it, kept current by its own writes.
//!
//! Reading the whole table back costs one GET_DEST dump per service (2,284 at the size of
//! keepalived#2318), so doing it before every diff made a reload with 1 % of the weights
//! changed cost thousands of requests and seconds. Instead the table is dumped at start, on a
//! periodic verify (which also repairs out-of-band `ipvsadm` changes), and after anything that
//! leaves the copy in doubt: a refused request or a netlink error. In between, every request
//! the kernel accepted is applied to the copy, so a change costs exactly its own requests.

use std::future::Future;
use std::time::{Duration, Instant};

use lvs_ipvs::{BatchReport, Request};
use lvs_proto::directord::Applied;

use crate::error::Error;
use crate::kernel::describe;
use crate::reconcile::{Ownership, plan};
use crate::table::Table;

/// Where the table lives: the kernel over netlink (on a thread of its own), or a test's mock.
pub trait Backend {
    /// The whole table, every service with its destinations.
    fn dump(&mut self) -> impl Future<Output = Result<Table, lvs_ipvs::Error>>;
    /// Sends the requests as batches; hands them back with one result each.
    fn execute(
        &mut self,
        plan: Vec<Request>,
    ) -> impl Future<Output = Result<(Vec<Request>, BatchReport), lvs_ipvs::Error>>;
}

/// The cached table and when it must be read again.
#[derive(Debug, Default)]
pub struct KernelCache {
    table: Table,
    /// False until the first dump, and after anything that leaves the copy in doubt.
    fresh: bool,
    verify_every: Option<Duration>,
    next_verify: Option<Instant>,
}

/// What one [`sync`] did.
#[derive(Debug, Default)]
pub struct Synced {
    pub applied: Applied,
    /// One line per request sent, for the log and the event stream.
    pub changes: Vec<String>,
    /// Whether the table was read from the kernel first (start, verify, after an error).
    pub dumped: bool,
}

impl KernelCache {
    /// An empty cache: the first [`sync`] reads the table. `verify_every` None: only start and
    /// errors read it again.
    pub fn new(verify_every: Option<Duration>) -> Self {
        KernelCache {
            table: Table::default(),
            fresh: false,
            verify_every,
            next_verify: None,
        }
    }

    pub fn table(&self) -> &Table {
        &self.table
    }

    /// Whether the next sync reads the table first.
    pub fn needs_dump(&self, now: Instant) -> bool {
        !self.fresh || self.next_verify.is_some_and(|at| now >= at)
    }

    /// When the periodic verify is due, if there is one.
    pub fn next_verify(&self) -> Option<Instant> {
        self.next_verify
    }

    /// A reload may change the interval; the next verify moves with it.
    pub fn set_verify_every(&mut self, every: Option<Duration>, now: Instant) {
        if self.verify_every != every {
            self.verify_every = every;
            self.next_verify = every.map(|every| now + every);
        }
    }

    /// The next sync reads the table again.
    pub fn invalidate(&mut self) {
        self.fresh = false;
    }

    /// The kernel's whole table, read at `now`.
    pub fn dumped(&mut self, table: Table, now: Instant) {
        self.table = table;
        self.fresh = true;
        self.next_verify = self.verify_every.map(|every| now + every);
    }

    /// Follows the requests the kernel accepted. A refused one means the copy was wrong about
    /// the kernel (or the request is one the kernel will not take): read the table again.
    pub fn executed(&mut self, plan: &[Request], report: &BatchReport) {
        for (request, result) in plan.iter().zip(&report.results) {
            match result {
                Ok(()) => self.table.apply(request),
                Err(_) => self.fresh = false,
            }
        }
    }
}

/// Makes the kernel's table `desired`, by difference from the cached copy (read first when due).
pub async fn sync<B: Backend>(
    cache: &mut KernelCache,
    backend: &mut B,
    desired: &Table,
    owned: &Ownership,
    now: Instant,
) -> Result<Synced, Error> {
    let dumped = cache.needs_dump(now);
    if dumped {
        let table = backend.dump().await.map_err(Error::ReadTable)?;
        cache.dumped(table, now);
    }
    let requests = plan(desired, cache.table(), owned);
    if requests.is_empty() {
        return Ok(Synced {
            dumped,
            ..Synced::default()
        });
    }
    let changes = requests.iter().map(describe).collect();
    let (requests, report) = match backend.execute(requests).await {
        Ok(done) => done,
        Err(e) => {
            // Some of the batch may have been applied before the socket failed.
            cache.invalidate();
            return Err(Error::Apply(e));
        }
    };
    cache.executed(&requests, &report);
    let failures = report
        .failures()
        .map(|(i, e)| format!("{}: {e}", describe(&requests[i])))
        .collect();
    Ok(Synced {
        applied: Applied {
            requests: requests.len(),
            sendmsg_calls: report.sendmsg_calls,
            failures,
        },
        changes,
        dumped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{all_up, config, owned, web_service};
    use lvs_ipvs::KernelError;
    use std::net::SocketAddr;

    // A second service sharing a real server with the first.
    const CONFIG: &str = concat!(
        web_service!(),
        r#"
[[virtual_server]]
address = "192.0.2.101:80"
forwarding = "nat"

[[virtual_server.real]]
address = "198.51.100.11:80"
weight = 10
"#
    );

    /// A kernel in memory: counts what it is asked, refuses what it is told to.
    #[derive(Default)]
    struct MockKernel {
        table: Table,
        dumps: usize,
        requests: usize,
        /// Destinations whose requests are refused, as the kernel would with EINVAL.
        refuse: Option<SocketAddr>,
        /// The next execute fails on the socket.
        broken: bool,
    }

    impl Backend for MockKernel {
        async fn dump(&mut self) -> Result<Table, lvs_ipvs::Error> {
            self.dumps += 1;
            Ok(self.table.clone())
        }

        async fn execute(
            &mut self,
            plan: Vec<Request>,
        ) -> Result<(Vec<Request>, BatchReport), lvs_ipvs::Error> {
            if std::mem::take(&mut self.broken) {
                return Err(lvs_ipvs::Error::Io {
                    context: "sendmsg",
                    source: std::io::Error::from_raw_os_error(libc::ENOBUFS),
                });
            }
            self.requests += plan.len();
            let results = plan
                .iter()
                .map(|request| {
                    let refused = matches!(request,
                        Request::AddDestination(_, d) | Request::EditDestination(_, d)
                            if Some(d.socket_addr()) == self.refuse);
                    if refused {
                        return Err(KernelError::new(request.operation(), libc::EINVAL));
                    }
                    self.table.apply(request);
                    Ok(())
                })
                .collect();
            Ok((
                plan,
                BatchReport {
                    results,
                    sendmsg_calls: 1,
                },
            ))
        }
    }

    fn want(text: &str) -> (Table, Ownership) {
        let config = config(text);
        (all_up(&config), owned(&config))
    }

    fn run(
        cache: &mut KernelCache,
        kernel: &mut MockKernel,
        text: &str,
        now: Instant,
    ) -> Result<Synced, Error> {
        let (table, owned) = want(text);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(sync(cache, kernel, &table, &owned, now))
    }

    /// A reload changing k weights costs k requests and no read once the table is cached,
    /// and the cache ends equal to the kernel.
    #[test]
    fn after_the_first_dump_a_change_costs_only_its_requests() {
        let (mut cache, mut kernel, now) = (
            KernelCache::new(None),
            MockKernel::default(),
            Instant::now(),
        );
        let start = run(&mut cache, &mut kernel, CONFIG, now).unwrap();
        assert!(start.dumped);
        assert_eq!((kernel.dumps, kernel.requests), (1, 5));
        let two_changed = CONFIG
            .replace("weight = 50", "weight = 60")
            .replace("weight = 10\n", "weight = 11\n");
        let reload = run(&mut cache, &mut kernel, &two_changed, now).unwrap();
        assert!(!reload.dumped);
        assert_eq!((kernel.dumps, kernel.requests), (1, 7));
        assert_eq!(reload.applied.requests, 2);
        assert_eq!(cache.table(), &kernel.table);
        let again = run(&mut cache, &mut kernel, &two_changed, now).unwrap();
        assert_eq!((again.dumped, again.applied.requests), (false, 0));
        assert_eq!(kernel.dumps, 1);
    }

    /// An out-of-band change (`ipvsadm -e` by an operator) is invisible to the cache until
    /// the periodic verify reads the table again, and is then put back.
    #[test]
    fn the_periodic_verify_repairs_an_out_of_band_change() {
        let every = Duration::from_secs(60);
        let (mut cache, mut kernel, t0) = (
            KernelCache::new(Some(every)),
            MockKernel::default(),
            Instant::now(),
        );
        run(&mut cache, &mut kernel, CONFIG, t0).unwrap();
        let service = *kernel.table.services.keys().next().unwrap();
        let real: SocketAddr = "198.51.100.12:80".parse().unwrap();
        let tampered = kernel.table.services.get_mut(&service).unwrap();
        tampered.destinations.get_mut(&real).unwrap().weight = 1;

        let before = run(&mut cache, &mut kernel, CONFIG, t0 + every / 2).unwrap();
        assert_eq!((before.dumped, before.applied.requests), (false, 0));
        assert_eq!(cache.next_verify(), Some(t0 + every));
        let verify = run(&mut cache, &mut kernel, CONFIG, t0 + every).unwrap();
        assert!(verify.dumped);
        assert_eq!(
            verify.changes,
            [format!("set {real} in {service} weight 50")]
        );
        assert_eq!(
            kernel.table.services[&service]
                .destinations
                .get(&real)
                .unwrap()
                .weight,
            50
        );
        assert_eq!(cache.next_verify(), Some(t0 + 2 * every));
    }

    /// A refused request or a failed socket leaves the copy in doubt: the next sync reads
    /// the table again, and only then.
    #[test]
    fn a_refusal_or_a_netlink_error_reads_the_table_again() {
        let (mut cache, mut kernel, now) = (
            KernelCache::new(None),
            MockKernel::default(),
            Instant::now(),
        );
        kernel.refuse = "198.51.100.12:80".parse().ok();
        let refused = run(&mut cache, &mut kernel, CONFIG, now).unwrap();
        assert_eq!(refused.applied.failures.len(), 1, "{:?}", refused.applied);
        assert!(refused.applied.failures[0].contains("198.51.100.12:80"));
        kernel.refuse = None;
        let retried = run(&mut cache, &mut kernel, CONFIG, now).unwrap();
        assert_eq!((retried.dumped, retried.applied.requests), (true, 1));
        assert_eq!(kernel.dumps, 2);

        kernel.broken = true;
        let changed = CONFIG.replace("weight = 50", "weight = 60");
        let failed = run(&mut cache, &mut kernel, &changed, now);
        assert!(matches!(failed, Err(Error::Apply(_))), "{failed:?}");
        let recovered = run(&mut cache, &mut kernel, &changed, now).unwrap();
        assert_eq!((recovered.dumped, recovered.applied.requests), (true, 1));
        assert_eq!(cache.table(), &kernel.table);
    }
}
