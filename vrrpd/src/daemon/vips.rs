//! The VIPs are added and removed by a thread of their own, in the order the instances asked,
//! so the event loop never waits on the kernel: at 255 instances of 20 IPv6 VIPs, adding 5,100
//! addresses took the kernel tens of seconds (each insertion walks the interface's address
//! list), and a loop that awaited them sent no adverts meanwhile, so the peer's backups took
//! over every instance and both sides held every VIP. A thread, not a task: the kernel does
//! the work inside the netlink send, which on the daemon's single-threaded runtime would
//! still hold the adverts back. The adverts now go out on time; an instance's gratuitous ARPs
//! wait for its `Added` (they must not draw traffic before the addresses are there).

use std::io;

use ipnet::IpNet;
use rtnetlink::Handle;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::link;

/// An interface by index, and its name for the log.
#[derive(Clone, Debug)]
pub struct Target {
    pub index: u32,
    pub name: String,
}

pub enum Job {
    /// Adds `vips` to `link`, then answers with [`Added`].
    Add {
        instance: u64,
        generation: u64,
        name: String,
        link: Target,
        vips: Vec<IpNet>,
    },
    /// Removes `vips` from every one of `links` where they are.
    Remove {
        name: String,
        links: Vec<Target>,
        vips: Vec<IpNet>,
    },
    /// Answered once every job sent before it is done.
    Flush(oneshot::Sender<()>),
}

/// Instance `instance`'s `generation`-th add is done (whether every address took or not: a
/// failure is logged, and the ARPs for the others are still due).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Added {
    pub instance: u64,
    pub generation: u64,
}

/// Starts the thread, with its own netlink socket; it ends when the sender is dropped.
pub fn spawn() -> io::Result<(mpsc::UnboundedSender<Job>, mpsc::UnboundedReceiver<Added>)> {
    let (connection, handle, _) = rtnetlink::new_connection()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let (jobs, queue) = mpsc::unbounded_channel::<Job>();
    let (added, answers) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("vips".to_owned())
        .spawn(move || {
            runtime.block_on(async move {
                tokio::spawn(connection);
                serve(&handle, queue, &added).await;
            });
        })?;
    Ok((jobs, answers))
}

async fn serve(
    handle: &Handle,
    mut queue: mpsc::UnboundedReceiver<Job>,
    added: &mpsc::UnboundedSender<Added>,
) {
    while let Some(job) = queue.recv().await {
        match job {
            Job::Add {
                instance,
                generation,
                name,
                link,
                vips,
            } => {
                add(handle, &name, &link, &vips).await;
                let _ = added.send(Added {
                    instance,
                    generation,
                });
            }
            Job::Remove { name, links, vips } => remove(handle, &name, &links, &vips).await,
            Job::Flush(done) => {
                let _ = done.send(());
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

async fn add(handle: &Handle, instance: &str, link: &Target, vips: &[IpNet]) {
    for vip in vips {
        if let Err(e) = link::add_address(handle, link.index, vip.addr(), vip.prefix_len()).await {
            warn!(instance, "adding {vip} to {}: {e}", link.name);
        }
    }
}

async fn remove(handle: &Handle, instance: &str, links: &[Target], vips: &[IpNet]) {
    for link in links {
        for vip in vips {
            match link::del_address(handle, link.index, vip.addr(), vip.prefix_len()).await {
                Ok(0) => {}
                Ok(_) => info!(instance, "removed {vip} from {}", link.name),
                Err(e) => warn!(instance, "removing {vip} from {}: {e}", link.name),
            }
        }
    }
}
