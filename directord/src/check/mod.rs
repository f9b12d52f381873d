//! Real-server health checks: what to probe ([`spec`]), how a server's health follows the
//! results ([`health`]), the probes themselves ([`probe`]) and the task that runs them for
//! every server ([`scheduler`]).

pub mod dedup;
pub mod health;
pub mod probe;
pub mod scheduler;

// What a check is and the codecs it speaks live in lvs-checks, without a runtime, for
// lvsadm too.
pub use lvs_checks::{spec, wire};

pub use dedup::{CheckId, Checks};
pub use health::{DownCause, Exhausted, HealthState, Outcome, Transition, Verdict};
pub use probe::ProbeContext;
pub use scheduler::{
    DownLabels, Event, HealthView, ProbeCounters, Scheduler, Server, UnknownLabels, unknown_counts,
};
pub use spec::{CheckSpec, Kind, Target, Timing};
