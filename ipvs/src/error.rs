//! Decode errors, kernel errors and the client's error type.

use std::borrow::Cow;
use std::fmt;
use std::io;

/// Why a message from (or for) the kernel could not be decoded. One variant per cause so a
/// daemon can count them with [`DecodeError::as_str`] as the label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed netlink attribute: {0}")]
    Attribute(String),
    #[error("attribute {attr} has {got} bytes, expected {expected}")]
    AttrLength {
        attr: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("attribute {attr} is not a valid string")]
    BadString { attr: &'static str },
    #[error("required attribute {0} is missing")]
    MissingAttr(&'static str),
    #[error("unknown IPVS command {0}")]
    UnknownCommand(u8),
    #[error("unknown address family {0}")]
    UnknownAddressFamily(u16),
    #[error("unknown forwarding method {0}")]
    UnknownForwardMethod(u32),
    #[error("unknown tunnel type {0}")]
    UnknownTunnelType(u8),
    #[error("unknown sync daemon state {0}")]
    UnknownDaemonState(u32),
    #[error("generic netlink header truncated ({0} bytes)")]
    TruncatedHeader(usize),
    #[error("malformed netlink message: {0}")]
    Netlink(String),
}

impl DecodeError {
    /// Stable label for per-cause counters.
    pub fn as_str(&self) -> &'static str {
        match self {
            DecodeError::Attribute(_) => "attribute",
            DecodeError::AttrLength { .. } => "attr_length",
            DecodeError::BadString { .. } => "bad_string",
            DecodeError::MissingAttr(_) => "missing_attr",
            DecodeError::UnknownCommand(_) => "unknown_command",
            DecodeError::UnknownAddressFamily(_) => "unknown_address_family",
            DecodeError::UnknownForwardMethod(_) => "unknown_forward_method",
            DecodeError::UnknownTunnelType(_) => "unknown_tunnel_type",
            DecodeError::UnknownDaemonState(_) => "unknown_daemon_state",
            DecodeError::TruncatedHeader(_) => "truncated_header",
            DecodeError::Netlink(_) => "netlink",
        }
    }
}

impl From<DecodeError> for netlink_packet_core::DecodeError {
    fn from(e: DecodeError) -> Self {
        netlink_packet_core::DecodeError::from(e.to_string())
    }
}

/// What the client was doing when the kernel said no; selects the message the way
/// ipvsadm's `ipvs_strerror` keys its table on the libipvs function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    ResolveFamily,
    GetInfo,
    AddService,
    EditService,
    DelService,
    GetService,
    GetServices,
    AddDestination,
    EditDestination,
    DelDestination,
    GetDestinations,
    StartDaemon,
    StopDaemon,
    GetDaemons,
    SetTimeouts,
    GetTimeouts,
    ZeroService,
    ZeroAll,
    Flush,
}

impl Operation {
    pub fn as_str(&self) -> &'static str {
        match self {
            Operation::ResolveFamily => "resolve_family",
            Operation::GetInfo => "get_info",
            Operation::AddService => "add_service",
            Operation::EditService => "edit_service",
            Operation::DelService => "del_service",
            Operation::GetService => "get_service",
            Operation::GetServices => "get_services",
            Operation::AddDestination => "add_destination",
            Operation::EditDestination => "edit_destination",
            Operation::DelDestination => "del_destination",
            Operation::GetDestinations => "get_destinations",
            Operation::StartDaemon => "start_daemon",
            Operation::StopDaemon => "stop_daemon",
            Operation::GetDaemons => "get_daemons",
            Operation::SetTimeouts => "set_timeouts",
            Operation::GetTimeouts => "get_timeouts",
            Operation::ZeroService => "zero_service",
            Operation::ZeroAll => "zero_all",
            Operation::Flush => "flush",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text ipvsadm (1.31, libipvs `ipvs_strerror`) prints for `errno` after `op`; falls
/// back to the C library's `strerror` like libipvs does.
pub fn ipvs_strerror(op: Operation, errno: i32) -> Cow<'static, str> {
    use Operation::*;
    let specific = match (op, errno) {
        (AddService, libc::EEXIST) => Some("Service already exists"),
        (AddService | EditService, libc::ENOENT) => {
            Some("Scheduler or persistence engine not found")
        }
        (EditService | DelService | ZeroService, libc::ESRCH) => Some("No such service"),
        (GetServices | GetService | GetDestinations, libc::ESRCH) => Some("No such service"),
        (AddDestination | EditDestination | DelDestination, libc::ESRCH) => {
            Some("Service not defined")
        }
        (AddDestination, libc::EEXIST) => Some("Destination already exists"),
        (EditDestination | DelDestination, libc::ENOENT) => Some("No such destination"),
        (StartDaemon, libc::EEXIST) => Some("Daemon has already run"),
        (StopDaemon, libc::ESRCH) => Some("No daemon is running"),
        (ResolveFamily, libc::ENOENT) => {
            Some("IPVS generic netlink family not found (is the ip_vs module loaded?)")
        }
        _ => None,
    };
    if let Some(s) = specific {
        return Cow::Borrowed(s);
    }
    match errno {
        libc::EPERM => Cow::Borrowed("Permission denied (you must be root)"),
        libc::EINVAL => Cow::Borrowed(
            "Invalid operation.  Possibly wrong module version, address not unicast, ...",
        ),
        libc::ENOPROTOOPT => Cow::Borrowed("Protocol not available"),
        libc::ENOMEM => Cow::Borrowed("Memory allocation problem"),
        libc::EOPNOTSUPP => Cow::Borrowed("Operation not supported with IPv6"),
        libc::EAFNOSUPPORT => {
            Cow::Borrowed("Operation not supported with specified address family")
        }
        libc::EMSGSIZE => Cow::Borrowed("Module is wrong version"),
        _ => {
            // io::Error's Display appends " (os error N)"; strerror does not.
            let text = io::Error::from_raw_os_error(errno).to_string();
            let text = match text.rfind(" (os error") {
                Some(i) => text[..i].to_string(),
                None => text,
            };
            Cow::Owned(text)
        }
    }
}

/// The kernel refused a request: errno (positive), what was asked, and ipvsadm's wording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelError {
    pub errno: i32,
    pub operation: Operation,
    /// ipvsadm's text for this errno and operation, with detail where we have it (the
    /// module that would have provided a missing scheduler, for instance).
    pub message: String,
    /// The kernel's extended ack message, when it sent one.
    pub extack: Option<String>,
}

impl KernelError {
    pub fn new(operation: Operation, errno: i32) -> Self {
        KernelError {
            errno,
            operation,
            message: ipvs_strerror(operation, errno).into_owned(),
            extack: None,
        }
    }

    /// Adds the modules the kernel looked for when a scheduler or persistence engine was
    /// not found (the kernel says ENOENT for both; it cannot tell us which).
    pub fn with_missing_module(mut self, scheduler: &str, pe_name: Option<&str>) -> Self {
        if self.errno == libc::ENOENT
            && matches!(
                self.operation,
                Operation::AddService | Operation::EditService
            )
        {
            self.message = match pe_name {
                None => format!("Scheduler not found: ip_vs_{scheduler}.ko"),
                Some(pe) => format!(
                    "Scheduler or persistence engine not found: ip_vs_{scheduler}.ko or \
                     ip_vs_pe_{pe}.ko"
                ),
            };
        }
        self
    }

    pub fn io_error(&self) -> io::Error {
        io::Error::from_raw_os_error(self.errno)
    }
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.operation, self.message)?;
        if let Some(ext) = &self.extack {
            write!(f, " ({ext})")?;
        }
        Ok(())
    }
}

impl std::error::Error for KernelError {}

/// Everything the blocking client can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("netlink socket {context}: {source}")]
    Io {
        context: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("cannot decode kernel reply: {0}")]
    Decode(#[from] DecodeError),
    #[error("{0}")]
    Kernel(#[from] KernelError),
    #[error("unexpected reply from the kernel: {0}")]
    UnexpectedReply(String),
}

impl Error {
    pub fn as_str(&self) -> &'static str {
        match self {
            Error::Io { .. } => "io",
            Error::Decode(e) => e.as_str(),
            Error::Kernel(_) => "kernel",
            Error::UnexpectedReply(_) => "unexpected_reply",
        }
    }

    /// The kernel's errno when the kernel refused the request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Kernel(k) => Some(k.errno),
            Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    pub fn kernel(&self) -> Option<&KernelError> {
        match self {
            Error::Kernel(k) => Some(k),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_follow_ipvsadm_table() {
        assert_eq!(
            ipvs_strerror(Operation::AddService, libc::EEXIST),
            "Service already exists"
        );
        assert_eq!(
            ipvs_strerror(Operation::DelDestination, libc::ENOENT),
            "No such destination"
        );
        assert_eq!(
            ipvs_strerror(Operation::AddDestination, libc::ESRCH),
            "Service not defined"
        );
        assert_eq!(
            ipvs_strerror(Operation::DelService, libc::ESRCH),
            "No such service"
        );
        assert_eq!(
            ipvs_strerror(Operation::StopDaemon, libc::ESRCH),
            "No daemon is running"
        );
        assert_eq!(
            ipvs_strerror(Operation::StartDaemon, libc::EEXIST),
            "Daemon has already run"
        );
        assert_eq!(
            ipvs_strerror(Operation::Flush, libc::EPERM),
            "Permission denied (you must be root)"
        );
        // Operation-specific entries only apply to their operation.
        assert_eq!(
            ipvs_strerror(Operation::DelService, libc::EEXIST),
            "File exists"
        );
        assert_eq!(
            ipvs_strerror(Operation::Flush, libc::EBUSY),
            "Device or resource busy"
        );
    }

    #[test]
    fn missing_scheduler_names_the_module() {
        let e =
            KernelError::new(Operation::AddService, libc::ENOENT).with_missing_module("foo", None);
        assert_eq!(e.message, "Scheduler not found: ip_vs_foo.ko");
        let e = KernelError::new(Operation::EditService, libc::ENOENT)
            .with_missing_module("rr", Some("sip"));
        assert_eq!(
            e.message,
            "Scheduler or persistence engine not found: ip_vs_rr.ko or ip_vs_pe_sip.ko"
        );
        let e =
            KernelError::new(Operation::DelService, libc::ESRCH).with_missing_module("rr", None);
        assert_eq!(e.message, "No such service");
    }
}
