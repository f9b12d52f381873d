//! A blocking IPVS client over a generic netlink socket.

use std::io;
use std::net::SocketAddr;

use netlink_sys::{Socket, SocketAddr as NlAddr, protocols::NETLINK_GENERIC};

use crate::codec::{self, Reply, ReplyKind};
use crate::config::Timeouts;
use crate::daemon::{Daemon, DaemonState};
use crate::dest::Destination;
use crate::error::{Error, KernelError, Operation};
use crate::info::Info;
use crate::message::{IpvsMessage, Request};
use crate::service::{Service, ServiceKey};

/// Largest batch of requests put in one sendmsg. Far below the kernel's limit (the
/// socket send buffer) and small enough that the acks it triggers fit the receive buffer.
const MAX_BATCH_BYTES: usize = 64 * 1024;
const RECV_BUF: usize = 256 * 1024;
const SOCKET_RCVBUF: usize = 1024 * 1024;

/// Outcome of [`IpvsClient::execute_batch`]: one result per request, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchReport {
    pub results: Vec<Result<(), KernelError>>,
    /// How many sendmsg calls the batch took.
    pub sendmsg_calls: usize,
}

impl BatchReport {
    pub fn is_ok(&self) -> bool {
        self.results.iter().all(Result::is_ok)
    }

    /// Index and error of the first failed request.
    pub fn first_error(&self) -> Option<(usize, &KernelError)> {
        self.results
            .iter()
            .enumerate()
            .find_map(|(i, r)| r.as_ref().err().map(|e| (i, e)))
    }

    pub fn failures(&self) -> impl Iterator<Item = (usize, &KernelError)> {
        self.results
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().err().map(|e| (i, e)))
    }
}

pub struct IpvsClient {
    socket: Socket,
    family_id: u16,
    port: u32,
    seq: u32,
    buf: Vec<u8>,
}

fn io_err(context: &'static str) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Io { context, source }
}

impl IpvsClient {
    /// Opens a generic netlink socket and resolves the IPVS family id through nlctrl.
    /// Fails with errno ENOENT (Operation::ResolveFamily) when ip_vs is not loaded.
    pub fn connect() -> Result<Self, Error> {
        let mut socket = Socket::new(NETLINK_GENERIC).map_err(io_err("open"))?;
        let addr = socket.bind_auto().map_err(io_err("bind"))?;
        // Best effort: errors and acks then carry only the offending header, and the
        // kernel's extended ack message when it has one.
        let _ = socket.set_cap_ack(true);
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_rx_buf_sz(SOCKET_RCVBUF);
        let mut client = IpvsClient {
            socket,
            family_id: 0,
            port: addr.port_number(),
            seq: 0,
            buf: vec![0u8; RECV_BUF],
        };
        client.family_id = client.resolve_family()?;
        Ok(client)
    }

    pub fn family_id(&self) -> u16 {
        self.family_id
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn send(&self, bytes: &[u8]) -> Result<(), Error> {
        let kernel = NlAddr::new(0, 0);
        let n = self
            .socket
            .send_to(bytes, &kernel, 0)
            .map_err(io_err("sendmsg"))?;
        if n != bytes.len() {
            return Err(Error::UnexpectedReply(format!(
                "short send: {n} of {}",
                bytes.len()
            )));
        }
        Ok(())
    }

    fn recv(&mut self) -> Result<Vec<Reply>, Error> {
        let n = loop {
            match self.socket.recv(&mut &mut self.buf[..], 0) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::Io {
                        context: "recvmsg",
                        source: e,
                    });
                }
            }
        };
        Ok(codec::decode_datagram(&self.buf[..n], self.family_id)?)
    }

    fn resolve_family(&mut self) -> Result<u16, Error> {
        let seq = self.next_seq();
        self.send(&codec::encode_family_query(seq, self.port))?;
        let mut id = None;
        loop {
            for r in self.recv()? {
                if r.seq != seq {
                    continue;
                }
                match r.kind {
                    ReplyKind::Family { id: got } => id = Some(got),
                    ReplyKind::Ack | ReplyKind::Done { errno: 0 } => {
                        return id.ok_or_else(|| {
                            Error::UnexpectedReply("nlctrl acked without a family id".into())
                        });
                    }
                    ReplyKind::Error { errno, extack } => {
                        let mut e = KernelError::new(Operation::ResolveFamily, errno);
                        e.extack = extack;
                        return Err(e.into());
                    }
                    ReplyKind::Done { errno } => {
                        return Err(KernelError::new(Operation::ResolveFamily, errno).into());
                    }
                    _ => {}
                }
            }
        }
    }

    /// Sends one request and collects its data replies until the ack (or NLMSG_DONE for
    /// a dump). A kernel refusal becomes [`Error::Kernel`].
    pub fn request(&mut self, req: &Request) -> Result<Vec<IpvsMessage>, Error> {
        let seq = self.next_seq();
        self.send(&codec::encode_request(req, self.family_id, seq, self.port))?;
        let mut data = Vec::new();
        loop {
            for r in self.recv()? {
                if r.seq != seq {
                    // A late reply to an earlier request (e.g. the ack after a dump).
                    continue;
                }
                match r.kind {
                    ReplyKind::Ipvs { msg, .. } => data.push(msg),
                    ReplyKind::Ack | ReplyKind::Done { errno: 0 } => return Ok(data),
                    ReplyKind::Error { errno, extack } => {
                        return Err(kernel_error(req, errno, extack).into());
                    }
                    ReplyKind::Done { errno } => return Err(kernel_error(req, errno, None).into()),
                    ReplyKind::Family { .. } | ReplyKind::Ignored { .. } => {}
                }
            }
        }
    }

    /// Sends many requests with as few sendmsg calls as fit [`MAX_BATCH_BYTES`], each with
    /// NLM_F_ACK, and waits for every ack. The kernel keeps processing after a failed
    /// request, so the report says which ones failed. Data replies (if read requests
    /// are batched) are discarded.
    pub fn execute_batch(&mut self, reqs: &[Request]) -> Result<BatchReport, Error> {
        let mut results: Vec<Option<Result<(), KernelError>>> = vec![None; reqs.len()];
        let mut sendmsg_calls = 0;
        let mut i = 0;
        while i < reqs.len() {
            let first = i;
            let first_seq = self.seq.wrapping_add(1);
            let mut chunk = Vec::new();
            while i < reqs.len() {
                let seq = self.seq.wrapping_add(1);
                let bytes = codec::encode_request(&reqs[i], self.family_id, seq, self.port);
                if !chunk.is_empty() && chunk.len() + bytes.len() > MAX_BATCH_BYTES {
                    break;
                }
                self.seq = seq;
                chunk.extend_from_slice(&bytes);
                i += 1;
            }
            self.send(&chunk)?;
            sendmsg_calls += 1;
            let mut pending = i - first;
            while pending > 0 {
                for r in self.recv()? {
                    let idx = r.seq.wrapping_sub(first_seq) as usize;
                    if idx >= i - first {
                        continue;
                    }
                    let slot = &mut results[first + idx];
                    if slot.is_some() {
                        continue;
                    }
                    let outcome = match r.kind {
                        ReplyKind::Ack | ReplyKind::Done { errno: 0 } => Ok(()),
                        ReplyKind::Error { errno, extack } => {
                            Err(kernel_error(&reqs[first + idx], errno, extack))
                        }
                        ReplyKind::Done { errno } => {
                            Err(kernel_error(&reqs[first + idx], errno, None))
                        }
                        _ => continue,
                    };
                    *slot = Some(outcome);
                    pending -= 1;
                }
            }
        }
        Ok(BatchReport {
            results: results.into_iter().map(|r| r.unwrap_or(Ok(()))).collect(),
            sendmsg_calls,
        })
    }

    fn expect_one(&mut self, req: &Request) -> Result<IpvsMessage, Error> {
        let mut msgs = self.request(req)?;
        if msgs.len() != 1 {
            return Err(Error::UnexpectedReply(format!(
                "{}: {} replies instead of one",
                req.operation(),
                msgs.len()
            )));
        }
        Ok(msgs.remove(0))
    }

    pub fn info(&mut self) -> Result<Info, Error> {
        Ok(self.expect_one(&Request::GetInfo)?.info()?)
    }

    /// All services (a dump).
    pub fn services(&mut self) -> Result<Vec<Service>, Error> {
        let msgs = self.request(&Request::GetServices)?;
        Ok(msgs
            .iter()
            .map(IpvsMessage::service)
            .collect::<Result<_, _>>()?)
    }

    /// One service; errno ESRCH ("No such service") when absent.
    pub fn service(&mut self, key: &ServiceKey) -> Result<Service, Error> {
        Ok(self.expect_one(&Request::GetService(*key))?.service()?)
    }

    pub fn add_service(&mut self, svc: &Service) -> Result<(), Error> {
        self.request(&Request::AddService(svc.clone())).map(drop)
    }

    pub fn edit_service(&mut self, svc: &Service) -> Result<(), Error> {
        self.request(&Request::EditService(svc.clone())).map(drop)
    }

    pub fn del_service(&mut self, key: &ServiceKey) -> Result<(), Error> {
        self.request(&Request::DelService(*key)).map(drop)
    }

    /// The destinations of one service (a dump). The kernel answers an empty dump, not
    /// an error, for a service that does not exist.
    pub fn destinations(&mut self, key: &ServiceKey) -> Result<Vec<Destination>, Error> {
        let msgs = self.request(&Request::GetDestinations(*key))?;
        Ok(msgs
            .iter()
            .map(|m| m.destination(key.af()))
            .collect::<Result<_, _>>()?)
    }

    pub fn add_destination(&mut self, key: &ServiceKey, dest: &Destination) -> Result<(), Error> {
        self.request(&Request::AddDestination(*key, dest.clone()))
            .map(drop)
    }

    pub fn edit_destination(&mut self, key: &ServiceKey, dest: &Destination) -> Result<(), Error> {
        self.request(&Request::EditDestination(*key, dest.clone()))
            .map(drop)
    }

    pub fn del_destination(&mut self, key: &ServiceKey, dest: SocketAddr) -> Result<(), Error> {
        self.request(&Request::DelDestination(*key, dest)).map(drop)
    }

    /// Running sync daemons (a dump: none, master, backup or both).
    pub fn daemons(&mut self) -> Result<Vec<Daemon>, Error> {
        let msgs = self.request(&Request::GetDaemons)?;
        Ok(msgs
            .iter()
            .map(IpvsMessage::daemon)
            .collect::<Result<_, _>>()?)
    }

    pub fn start_daemon(&mut self, daemon: &Daemon) -> Result<(), Error> {
        self.request(&Request::StartDaemon(daemon.clone()))
            .map(drop)
    }

    pub fn stop_daemon(&mut self, state: DaemonState) -> Result<(), Error> {
        self.request(&Request::StopDaemon(state)).map(drop)
    }

    pub fn timeouts(&mut self) -> Result<Timeouts, Error> {
        Ok(self.expect_one(&Request::GetTimeouts)?.timeouts())
    }

    pub fn set_timeouts(&mut self, timeouts: &Timeouts) -> Result<(), Error> {
        self.request(&Request::SetTimeouts(*timeouts)).map(drop)
    }

    /// Zeroes the counters of one service, or of everything with `None`.
    pub fn zero(&mut self, key: Option<&ServiceKey>) -> Result<(), Error> {
        let req = match key {
            Some(k) => Request::ZeroService(*k),
            None => Request::ZeroAll,
        };
        self.request(&req).map(drop)
    }

    /// Removes every service and destination.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.request(&Request::Flush).map(drop)
    }
}

fn kernel_error(req: &Request, errno: i32, extack: Option<String>) -> KernelError {
    let mut e = KernelError::new(req.operation(), errno);
    if let Request::AddService(s) | Request::EditService(s) = req {
        e = e.with_missing_module(&s.scheduler, s.pe_name.as_deref());
    }
    e.extack = extack;
    e
}
