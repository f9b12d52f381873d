//! Load measurements from /proc text, sans-IO: callers read the files and
//! hand the contents in with the time they were read.
//!
//! - `/proc/stat` `cpu` lines: cumulative ticks per state (proc(5)). Fields
//!   arrived over time (iowait 2.5.41, irq/softirq 2.6.0, steal 2.6.11,
//!   guest 2.6.24, guest_nice 2.6.33); missing ones read as 0. `guest` and
//!   `guest_nice` are already counted inside `user` and `nice`, so they are
//!   left out of the total.
//! - `/proc/loadavg`: 1/5/15-minute averages, runnable/total tasks, last pid.
//! - `/proc/meminfo`: `MemTotal`, `MemAvailable` (3.14+), with the classic
//!   `MemFree + Buffers + Cached` estimate on kernels without it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Why a /proc file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcError {
    #[error("no aggregate \"cpu\" line in /proc/stat")]
    MissingCpuLine,
    #[error("{line:?}: {found} counters, need at least 4")]
    TooFewFields { line: String, found: usize },
    #[error("not a number: {0:?}")]
    BadNumber(String),
    #[error("/proc/loadavg: expected 5 fields like \"0.1 0.2 0.3 1/100 42\"")]
    BadLoadavg,
    #[error("/proc/meminfo: missing {0}")]
    MissingField(&'static str),
}

impl ProcError {
    /// Stable label for per-cause counters.
    pub fn as_str(&self) -> &'static str {
        match self {
            ProcError::MissingCpuLine => "missing_cpu_line",
            ProcError::TooFewFields { .. } => "too_few_fields",
            ProcError::BadNumber(_) => "bad_number",
            ProcError::BadLoadavg => "bad_loadavg",
            ProcError::MissingField(_) => "missing_field",
        }
    }
}

/// Cumulative time per CPU state, in USER_HZ ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
    pub guest: u64,
    pub guest_nice: u64,
}

impl CpuTimes {
    /// Parse the counters after the `cpu`/`cpuN` label.
    fn from_fields<'a>(
        line: &str,
        fields: impl Iterator<Item = &'a str>,
    ) -> Result<Self, ProcError> {
        let mut v = [0u64; 10];
        let mut n = 0;
        for field in fields {
            // Kernels newer than this code may append states; ignore them.
            if n < v.len() {
                v[n] = parse_u64(field)?;
            }
            n += 1;
        }
        if n < 4 {
            return Err(ProcError::TooFewFields {
                line: line.to_owned(),
                found: n,
            });
        }
        let [
            user,
            nice,
            system,
            idle,
            iowait,
            irq,
            softirq,
            steal,
            guest,
            guest_nice,
        ] = v;
        Ok(CpuTimes {
            user,
            nice,
            system,
            idle,
            iowait,
            irq,
            softirq,
            steal,
            guest,
            guest_nice,
        })
    }

    /// Ticks in which the CPU could have run our work: idle plus iowait
    /// (a CPU waiting on I/O is free to run something else).
    pub fn idle_ticks(&self) -> u64 {
        self.idle.saturating_add(self.iowait)
    }

    /// All ticks, without guest time (already inside user/nice).
    pub fn total_ticks(&self) -> u64 {
        [
            self.user,
            self.nice,
            self.system,
            self.idle,
            self.iowait,
            self.irq,
            self.softirq,
            self.steal,
        ]
        .iter()
        .fold(0u64, |a, &b| a.saturating_add(b))
    }

    /// Idle percentage (0.0..=100.0) between `earlier` and `self`, or `None`
    /// when no tick elapsed or the counters went backwards overall (a
    /// different boot, or samples swapped). iowait alone may decrease on
    /// NO_HZ kernels (proc(5)); per-field differences saturate at zero.
    pub fn idle_percent_since(&self, earlier: &CpuTimes) -> Option<f64> {
        if self.total_ticks() < earlier.total_ticks() {
            return None;
        }
        let busy =
            |c: &CpuTimes| -> [u64; 6] { [c.user, c.nice, c.system, c.irq, c.softirq, c.steal] };
        let d_busy: u64 = busy(self)
            .iter()
            .zip(busy(earlier).iter())
            .map(|(a, b)| a.saturating_sub(*b))
            .sum();
        let d_idle = self.idle_ticks().saturating_sub(earlier.idle_ticks());
        let d_total = d_busy + d_idle;
        (d_total > 0).then(|| d_idle as f64 * 100.0 / d_total as f64)
    }
}

/// The `cpu` lines of /proc/stat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    /// The aggregate `cpu` line (sum over all CPUs).
    pub total: CpuTimes,
    /// One entry per `cpuN` line, in file order. Offline CPUs have no line,
    /// so `per_cpu.len()` is the number of online CPUs.
    pub per_cpu: Vec<CpuTimes>,
}

impl ProcStat {
    pub fn parse(text: &str) -> Result<ProcStat, ProcError> {
        let mut total = None;
        let mut per_cpu = Vec::new();
        for line in text.lines() {
            let mut fields = line.split_ascii_whitespace();
            let Some(label) = fields.next() else { continue };
            let Some(suffix) = label.strip_prefix("cpu") else {
                continue;
            };
            if suffix.is_empty() {
                total = Some(CpuTimes::from_fields(line, fields)?);
            } else if suffix.bytes().all(|b| b.is_ascii_digit()) {
                per_cpu.push(CpuTimes::from_fields(line, fields)?);
            }
        }
        Ok(ProcStat {
            total: total.ok_or(ProcError::MissingCpuLine)?,
            per_cpu,
        })
    }

    pub fn online_cpus(&self) -> usize {
        self.per_cpu.len()
    }
}

/// CPU idle percentage over a sliding time window of /proc/stat samples.
///
/// The newest sample is compared with the newest one at least `window`
/// older, so the figure covers at least the window once enough history
/// exists; before that it covers what is there (from the second sample on).
#[derive(Debug, Clone)]
pub struct IdleWindow {
    window: Duration,
    samples: VecDeque<(Instant, CpuTimes)>,
}

impl IdleWindow {
    pub fn new(window: Duration) -> IdleWindow {
        IdleWindow {
            window,
            samples: VecDeque::new(),
        }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// Add a sample read at `now`. A sample older than the newest one is
    /// ignored; counters that went backwards restart the history.
    pub fn push(&mut self, now: Instant, times: CpuTimes) {
        if let Some(&(last_at, last)) = self.samples.back() {
            if now < last_at {
                return;
            }
            if times.total_ticks() < last.total_ticks() {
                self.samples.clear();
            }
        }
        self.samples.push_back((now, times));
        // Keep exactly one sample at or before the window start as baseline.
        let start = now.checked_sub(self.window);
        while let (Some(start), Some(&(second_at, _))) = (start, self.samples.get(1)) {
            if second_at <= start {
                self.samples.pop_front();
            } else {
                break;
            }
        }
    }

    /// Idle % between the baseline and the newest sample; `None` with fewer
    /// than two samples or when no tick elapsed.
    pub fn idle_percent(&self) -> Option<f64> {
        let (_, first) = self.samples.front()?;
        let (_, last) = self.samples.back()?;
        if self.samples.len() < 2 {
            return None;
        }
        last.idle_percent_since(first)
    }

    /// Time actually covered by [`IdleWindow::idle_percent`].
    pub fn span(&self) -> Duration {
        match (self.samples.front(), self.samples.back()) {
            (Some((a, _)), Some((b, _))) => b.duration_since(*a),
            _ => Duration::ZERO,
        }
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

/// /proc/loadavg.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadAvg {
    pub one: f64,
    pub five: f64,
    pub fifteen: f64,
    pub runnable: u32,
    pub tasks: u32,
    pub last_pid: u32,
}

impl LoadAvg {
    pub fn parse(text: &str) -> Result<LoadAvg, ProcError> {
        let f: Vec<&str> = text.split_ascii_whitespace().collect();
        let [one, five, fifteen, tasks, last_pid] = f[..] else {
            return Err(ProcError::BadLoadavg);
        };
        let (runnable, tasks) = tasks.split_once('/').ok_or(ProcError::BadLoadavg)?;
        Ok(LoadAvg {
            one: parse_load(one)?,
            five: parse_load(five)?,
            fifteen: parse_load(fifteen)?,
            runnable: parse_u32(runnable)?,
            tasks: parse_u32(tasks)?,
            last_pid: parse_u32(last_pid)?,
        })
    }

    /// One-minute load divided by the number of CPUs (at least one, so a
    /// caller that could not count CPUs still gets a figure).
    pub fn per_core(&self, cpus: usize) -> f64 {
        self.one / cpus.max(1) as f64
    }
}

/// The /proc/meminfo fields that matter for memory pressure, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemInfo {
    pub total_kib: u64,
    /// `MemAvailable`, or `MemFree + Buffers + Cached` before Linux 3.14.
    pub available_kib: u64,
    /// Whether `available_kib` is the kernel's own estimate.
    pub kernel_estimate: bool,
}

impl MemInfo {
    pub fn parse(text: &str) -> Result<MemInfo, ProcError> {
        let mut total = None;
        let mut available = None;
        let mut free = None;
        let mut buffers = None;
        let mut cached = None;
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let slot = match key {
                "MemTotal" => &mut total,
                "MemAvailable" => &mut available,
                "MemFree" => &mut free,
                "Buffers" => &mut buffers,
                "Cached" => &mut cached,
                _ => continue,
            };
            let number = value.trim().trim_end_matches("kB").trim_end();
            *slot = Some(parse_u64(number)?);
        }
        let total_kib = total.ok_or(ProcError::MissingField("MemTotal"))?;
        let (available_kib, kernel_estimate) = match available {
            Some(a) => (a, true),
            None => (
                free.ok_or(ProcError::MissingField("MemAvailable or MemFree"))?
                    + buffers.unwrap_or(0)
                    + cached.unwrap_or(0),
                false,
            ),
        };
        Ok(MemInfo {
            total_kib,
            available_kib: available_kib.min(total_kib),
            kernel_estimate,
        })
    }

    /// Available memory as a percentage of the total (100 when the total is
    /// unknown/zero, so a broken file never reads as memory pressure).
    pub fn available_percent(&self) -> f64 {
        if self.total_kib == 0 {
            return 100.0;
        }
        self.available_kib as f64 * 100.0 / self.total_kib as f64
    }
}

fn parse_u64(s: &str) -> Result<u64, ProcError> {
    s.parse().map_err(|_| ProcError::BadNumber(s.to_owned()))
}

fn parse_u32(s: &str) -> Result<u32, ProcError> {
    s.parse().map_err(|_| ProcError::BadNumber(s.to_owned()))
}

fn parse_load(s: &str) -> Result<f64, ProcError> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(ProcError::BadNumber(s.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST_STAT: &str = include_str!("../tests/fixtures/proc_stat.host");
    const HOST_LOADAVG: &str = include_str!("../tests/fixtures/loadavg.host");
    const HOST_MEMINFO: &str = include_str!("../tests/fixtures/meminfo.host");
    const UML_STAT: &str = include_str!("../tests/fixtures/proc_stat.uml-6.1");
    const UML_MEMINFO: &str = include_str!("../tests/fixtures/meminfo.uml-6.1");
    const UML_LOADAVG: &str = include_str!("../tests/fixtures/loadavg.uml-6.1");

    #[test]
    fn host_proc_stat() {
        // Captured on the 2-CPU build host (Linux 6.18).
        let s = ProcStat::parse(HOST_STAT).unwrap();
        assert_eq!(s.online_cpus(), 2);
        assert_eq!(
            s.total,
            CpuTimes {
                user: 12520,
                nice: 0,
                system: 6858,
                idle: 466163,
                iowait: 1916,
                irq: 0,
                softirq: 233,
                steal: 1610,
                guest: 0,
                guest_nice: 0,
            }
        );
        assert_eq!(s.per_cpu[1].user, 7146);
        assert_eq!(
            s.total.total_ticks(),
            12520 + 6858 + 466163 + 1916 + 233 + 1610
        );
    }

    #[test]
    fn uml_proc_stat() {
        // Captured inside user-mode-linux 6.1 (one CPU).
        let s = ProcStat::parse(UML_STAT).unwrap();
        assert_eq!(s.online_cpus(), 1);
        assert!(s.total.total_ticks() > 0);
        assert_eq!(s.total, s.per_cpu[0]);
    }

    #[test]
    fn old_kernel_fields() {
        // 2.4 kernels: four counters, no per-state extras.
        let s = ProcStat::parse("cpu  10 0 10 80\ncpu0 10 0 10 80\nintr 1\n").unwrap();
        assert_eq!(s.total.iowait, 0);
        assert_eq!(s.total.total_ticks(), 100);
        // 2.6.11: eight counters.
        let s = ProcStat::parse("cpu 1 2 3 4 5 6 7 8\n").unwrap();
        assert_eq!(s.total.steal, 8);
        assert_eq!(s.total.guest, 0);
        assert_eq!(s.online_cpus(), 0);
        // A future kernel with an 11th counter still parses.
        let s = ProcStat::parse("cpu 1 2 3 4 5 6 7 8 9 10 11\n").unwrap();
        assert_eq!(s.total.guest_nice, 10);
    }

    #[test]
    fn proc_stat_errors() {
        assert_eq!(
            ProcStat::parse("cpu0 1 2 3 4\n").unwrap_err(),
            ProcError::MissingCpuLine
        );
        assert_eq!(
            ProcStat::parse("cpu 1 2 3\n").unwrap_err().as_str(),
            "too_few_fields"
        );
        assert_eq!(
            ProcStat::parse("cpu 1 2 x 4\n").unwrap_err(),
            ProcError::BadNumber("x".into())
        );
        // "cpufreq"-like labels are not CPU lines.
        assert!(ProcStat::parse("cpu 1 2 3 4\ncpux 9\n").is_ok());
    }

    #[test]
    fn guest_time_not_double_counted() {
        let a = CpuTimes::default();
        let b = CpuTimes {
            user: 50,
            guest: 50,
            idle: 50,
            ..CpuTimes::default()
        };
        assert_eq!(b.idle_percent_since(&a), Some(50.0));
    }

    #[test]
    fn idle_between_samples() {
        let a = CpuTimes {
            user: 100,
            idle: 100,
            iowait: 10,
            ..Default::default()
        };
        let b = CpuTimes {
            user: 160,
            idle: 130,
            iowait: 20,
            ..Default::default()
        };
        // 60 busy, 30 idle + 10 iowait.
        assert_eq!(b.idle_percent_since(&a), Some(40.0));
        assert_eq!(a.idle_percent_since(&a), None);
        assert_eq!(a.idle_percent_since(&b), None);
        // iowait going backwards must not underflow.
        let c = CpuTimes {
            user: 200,
            idle: 140,
            iowait: 15,
            ..Default::default()
        };
        let pct = c.idle_percent_since(&b).unwrap();
        assert!((0.0..=100.0).contains(&pct));
        // idle+iowait rose by 5 while busy rose by 40.
        assert!((pct - 5.0 / 45.0 * 100.0).abs() < 1e-9);
    }

    fn busy_then(idle: u64, busy: u64, prev: CpuTimes) -> CpuTimes {
        CpuTimes {
            user: prev.user + busy,
            idle: prev.idle + idle,
            ..prev
        }
    }

    #[test]
    fn sliding_window() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut w = IdleWindow::new(s(5));
        let mut c = CpuTimes::default();
        w.push(t0, c);
        assert_eq!(w.idle_percent(), None);
        // Five seconds fully idle, then five fully busy, one sample a second.
        for i in 1..=5 {
            c = busy_then(100, 0, c);
            w.push(t0 + s(i), c);
        }
        assert_eq!(w.idle_percent(), Some(100.0));
        assert_eq!(w.span(), s(5));
        c = busy_then(0, 100, c);
        w.push(t0 + s(6), c);
        assert_eq!(w.idle_percent(), Some(80.0));
        assert_eq!(w.span(), s(5));
        for i in 7..=10 {
            c = busy_then(0, 100, c);
            w.push(t0 + s(i), c);
        }
        assert_eq!(w.idle_percent(), Some(0.0));
        assert_eq!(w.len(), 6);
        // A gap longer than the window: compare with the last sample before it.
        c = busy_then(700, 0, c);
        w.push(t0 + s(20), c);
        assert_eq!(w.idle_percent(), Some(100.0));
        assert_eq!(w.len(), 2);
        assert_eq!(w.span(), s(10));
    }

    #[test]
    fn window_ignores_stale_and_resets_on_reboot() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut w = IdleWindow::new(s(5));
        let c = CpuTimes {
            idle: 1000,
            user: 1000,
            ..Default::default()
        };
        w.push(t0 + s(2), c);
        w.push(t0 + s(1), CpuTimes::default());
        assert_eq!(w.len(), 1);
        let later = busy_then(50, 50, c);
        w.push(t0 + s(3), later);
        assert_eq!(w.idle_percent(), Some(50.0));
        // Counters restarted (new boot behind the same agent state).
        w.push(t0 + s(4), CpuTimes::default());
        assert_eq!(w.len(), 1);
        assert_eq!(w.idle_percent(), None);
    }

    #[test]
    fn host_loadavg() {
        let l = LoadAvg::parse(HOST_LOADAVG).unwrap();
        assert_eq!(
            l,
            LoadAvg {
                one: 0.29,
                five: 0.31,
                fifteen: 0.18,
                runnable: 4,
                tasks: 112,
                last_pid: 8783,
            }
        );
        assert!((l.per_core(2) - 0.145).abs() < 1e-12);
        assert_eq!(l.per_core(0), l.one);
    }

    #[test]
    fn uml_loadavg() {
        let l = LoadAvg::parse(UML_LOADAVG).unwrap();
        assert_eq!((l.one, l.runnable, l.tasks, l.last_pid), (0.0, 1, 36, 679));
    }

    #[test]
    fn loadavg_errors() {
        for bad in [
            "",
            "0.1 0.2 0.3 1/2",
            "0.1 0.2 0.3 12 5",
            "x 0.2 0.3 1/2 5",
            "-1 0 0 1/2 3",
            "nan 0 0 1/1 1",
        ] {
            assert!(LoadAvg::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            LoadAvg::parse("1 2 3 1/2 3 4").unwrap_err().as_str(),
            "bad_loadavg"
        );
    }

    #[test]
    fn host_meminfo() {
        let m = MemInfo::parse(HOST_MEMINFO).unwrap();
        assert_eq!(m.total_kib, 24682416);
        assert_eq!(m.available_kib, 24225116);
        assert!(m.kernel_estimate);
        assert!((m.available_percent() - 24225116.0 * 100.0 / 24682416.0).abs() < 1e-9);
    }

    #[test]
    fn uml_meminfo() {
        let m = MemInfo::parse(UML_MEMINFO).unwrap();
        assert!(m.kernel_estimate);
        assert!(m.available_kib <= m.total_kib && m.available_kib > 0);
    }

    #[test]
    fn meminfo_without_memavailable() {
        // Linux before 3.14.
        let text = "MemTotal:        1000 kB\nMemFree:          100 kB\nBuffers:           50 kB\nCached:           250 kB\n";
        let m = MemInfo::parse(text).unwrap();
        assert_eq!(m.available_kib, 400);
        assert!(!m.kernel_estimate);
        assert_eq!(m.available_percent(), 40.0);
        assert_eq!(
            MemInfo::parse("MemFree: 1 kB\n").unwrap_err(),
            ProcError::MissingField("MemTotal")
        );
        assert_eq!(
            MemInfo::parse("MemTotal: 1 kB\n").unwrap_err().as_str(),
            "missing_field"
        );
        assert_eq!(
            MemInfo::parse("MemTotal: lots kB\n").unwrap_err(),
            ProcError::BadNumber("lots".into())
        );
        let zero = MemInfo::parse("MemTotal: 0 kB\nMemAvailable: 0 kB\n").unwrap();
        assert_eq!(zero.available_percent(), 100.0);
    }
}
