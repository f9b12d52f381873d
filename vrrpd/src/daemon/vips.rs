//! The VIPs are added and removed by a thread of their own, in the order the instances asked,
//! so the event loop never waits on the kernel: at 255 instances of 20 IPv6 VIPs, adding 5,100
//! addresses took the kernel tens of seconds (each insertion walks the interface's address
//! list), and a loop that awaited them sent no adverts meanwhile, so the peer's backups took
//! over every instance and both sides held every VIP. A thread, not a task: the kernel does
//! the work inside the netlink send, which on the daemon's single-threaded runtime would
//! still hold the adverts back. The adverts now go out on time; an instance's gratuitous ARPs
//! and its notify scripts wait for the [`Done`] of its last job (ARPs must not draw traffic
//! before the addresses are there; keepalived runs `notify_master` once they are in and
//! `notify_backup` once they are out).
//!
//! An instance's virtual routes and rules go on the same thread, in keepalived's order: added
//! after its VIPs (a route's `src` may be one of them), removed before them.

use std::io;

use lvs_config::{Vip, VirtualRoute, VirtualRule};
use rtnetlink::Handle;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::{link, routes};

/// An interface by index, and its name for the log.
#[derive(Clone, Debug)]
pub struct Target {
    pub index: u32,
    pub name: String,
}

pub enum Job {
    /// Adds each of `vips` to its own link, then `routes` and `rules`, then answers with
    /// [`Done`].
    Add {
        instance: u64,
        generation: u64,
        name: String,
        vips: Vec<(Vip, Target)>,
        routes: Vec<VirtualRoute>,
        rules: Vec<VirtualRule>,
    },
    /// Removes `rules` and `routes`, then each of `vips` from every one of its links where it
    /// is, then answers with [`Done`].
    Remove {
        instance: u64,
        generation: u64,
        name: String,
        vips: Vec<(Vip, Vec<Target>)>,
        routes: Vec<VirtualRoute>,
        rules: Vec<VirtualRule>,
    },
    /// Answered once every job sent before it is done.
    Flush(oneshot::Sender<()>),
    /// Runs this thread at vrrpd's `rt_priority` (or back at normal priority): a takeover's
    /// gratuitous ARPs wait for its addresses, so on a loaded director an address job left at
    /// normal priority held the first ARP back by hundreds of milliseconds after the advert.
    Schedule(Option<u8>),
}

/// Instance `instance`'s `generation`-th add or remove is done (whether every address took or
/// not: a failure is logged, and the ARPs for the others are still due).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Done {
    pub instance: u64,
    pub generation: u64,
}

/// Starts the thread, with its own netlink socket; it ends when the sender is dropped.
pub fn spawn() -> io::Result<(mpsc::UnboundedSender<Job>, mpsc::UnboundedReceiver<Done>)> {
    let (connection, handle, _) = rtnetlink::new_connection()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let (jobs, queue) = mpsc::unbounded_channel::<Job>();
    let (done, answers) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("vips".to_owned())
        .spawn(move || {
            runtime.block_on(async move {
                tokio::spawn(connection);
                serve(&handle, queue, &done).await;
            });
        })?;
    Ok((jobs, answers))
}

async fn serve(
    handle: &Handle,
    mut queue: mpsc::UnboundedReceiver<Job>,
    done: &mpsc::UnboundedSender<Done>,
) {
    while let Some(job) = queue.recv().await {
        match job {
            Job::Add {
                instance,
                generation,
                name,
                vips,
                routes,
                rules,
            } => {
                add(handle, &name, &vips).await;
                routes::add(handle, &name, &routes, &rules).await;
                let _ = done.send(Done {
                    instance,
                    generation,
                });
            }
            Job::Remove {
                instance,
                generation,
                name,
                vips,
                routes,
                rules,
            } => {
                routes::remove(handle, &name, &routes, &rules).await;
                remove(handle, &name, &vips).await;
                let _ = done.send(Done {
                    instance,
                    generation,
                });
            }
            Job::Flush(done) => {
                let _ = done.send(());
            }
            Job::Schedule(priority) => {
                if let Err(e) = super::realtime::schedule(priority) {
                    warn!("address thread: {e}");
                }
            }
        }
    }
}

/// Waits until every job sent so far is done (a stop must leave no VIP behind it).
pub async fn flush(jobs: &mpsc::UnboundedSender<Job>) {
    let (done, wait) = oneshot::channel();
    if jobs.send(Job::Flush(done)).is_ok() {
        let _ = wait.await;
    }
}

async fn add(handle: &Handle, instance: &str, vips: &[(Vip, Target)]) {
    for (vip, link) in vips {
        if let Err(e) = link::add_vip(handle, link.index, vip).await {
            warn!(instance, "adding {} to {}: {e}", vip.address, link.name);
        }
    }
}

async fn remove(handle: &Handle, instance: &str, vips: &[(Vip, Vec<Target>)]) {
    for (vip, links) in vips {
        let (addr, prefix) = (vip.address.addr(), vip.address.prefix_len());
        for link in links {
            match link::del_address(handle, link.index, addr, prefix).await {
                Ok(0) => {}
                Ok(_) => info!(instance, "removed {} from {}", vip.address, link.name),
                Err(e) => warn!(instance, "removing {} from {}: {e}", vip.address, link.name),
            }
        }
    }
}
