//! haproxy agent-check reply: the one line an agent writes back when the
//! director (or haproxy) connects to it.
//!
//! The acceptance rules follow haproxy's `tcpcheck_agent_expect_reply()`
//! (src/tcpcheck.c, 2.2 and later; src/checks.c before) and
//! `server_parse_weight_change_request()` (src/server.c):
//!
//! - Only the first line counts; it ends at the first `\r` or `\n`, so `\r\n`,
//!   `\n` and a lone `\r` all terminate it, and whatever follows is ignored.
//!   haproxy waits for more data until its check buffer (`tune.bufsize`,
//!   16384 bytes by default) is full or the agent closes; a line with no
//!   terminator by then is dropped ("Ignoring incomplete line from agent").
//! - Words are separated by any run of spaces, tabs and commas. Keywords are
//!   case-insensitive (`strcasecmp`).
//! - A word starting with a digit and containing `%` is a weight: decimal
//!   digits then exactly one `%` at the end. Values above 100% are accepted;
//!   haproxy clamps the number to 25600 before scaling, and the scaled weight
//!   to 256.
//! - `maxconn:N` (prefix case-insensitive) sets maxconn.
//! - `ready`, `drain`, `maint` set the administrative state; `up`, `down`,
//!   `fail`, `stopped` set the health state. Several words of one category:
//!   the last one wins in haproxy.
//! - A `#` at the start of a word begins a free-text description running to
//!   the end of the line (leading blanks skipped). haproxy only shows it when
//!   a health word is present. `#` inside a word is not special:
//!   `down#reason` is one unknown word, and haproxy then does NOT mark the
//!   server down. [`AgentReply::emit`] therefore writes `down #reason`.
//! - An unknown word does not void the line in haproxy: the other words are
//!   applied and the first unknown word is shown as the check status.
//!
//! [`AgentReply::parse`] is stricter than haproxy where haproxy's leniency
//! would hide a broken agent; each rejection has its own [`Error`] variant
//! with a stable label for per-cause counters:
//!
//! - unknown words, bytes outside printable ASCII (haproxy passes them
//!   through; a NUL would even truncate the line silently), and a description
//!   without a health word are errors;
//! - two different words of one category (`up down`, `50% 60%`) are
//!   [`Error::Conflicting`] instead of last-one-wins; repeating the same word
//!   is accepted;
//! - `maxconn:` takes plain digits up to `i32::MAX`; haproxy's `strtol` also
//!   takes a sign and stores the result in an `int`;
//! - a line with no word at all is [`Error::Empty`] (haproxy: no change).
//!
//! These rules were checked against a running haproxy 2.6.12
//! (`tests/fixtures/haproxy-2.6-agent-replies.txt`, captured with
//! `haproxy-agent-capture.sh` beside it): `150%` gave weight 150 of 100,
//! `30000%` gave 256, `down#disk full` left the server up with "agent reports
//! an error : down#disk", `maxconn:-5` set maxconn to 4294967291, and the
//! lines our agent emits (`ready 40% up`, `drain 40% up`,
//! `ready 40% down #disk full`) did what they say.

use core::fmt;

/// haproxy's default `tune.bufsize`: the most it reads before giving up on
/// finding the end of the line. Our director reads at most this much too.
pub const MAX_REPLY_LEN: usize = 16384;

/// haproxy clamps a relative weight to this many percent before scaling.
pub const MAX_PERCENT: u16 = 25600;

/// Largest `maxconn:` value we accept: haproxy stores it in an `int`.
pub const MAX_MAXCONN: u32 = i32::MAX as u32;

/// Why a reply was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No line terminator yet, and the buffer is below [`MAX_REPLY_LEN`]:
    /// more data may complete it. At end of stream this is a failed poll.
    #[error("incomplete line: no CR or LF yet")]
    Incomplete,
    /// No line terminator in the first [`MAX_REPLY_LEN`] bytes.
    #[error("reply line longer than {MAX_REPLY_LEN} bytes")]
    TooLong,
    /// A byte at or above 0x80 before the terminator.
    #[error("non-ASCII byte 0x{0:02x} in reply")]
    NotAscii(u8),
    /// A control byte (other than tab) before the terminator.
    #[error("control byte 0x{0:02x} in reply")]
    ControlChar(u8),
    /// The line holds no word.
    #[error("empty reply line")]
    Empty,
    /// A word that starts with a digit and holds a `%` but is not `<digits>%`.
    #[error("bad percentage {0:?}")]
    BadPercentage(String),
    /// `maxconn:` not followed by 1..=i32::MAX in plain digits.
    #[error("bad maxconn {0:?}")]
    BadMaxconn(String),
    /// A word haproxy does not know.
    #[error("unknown word {0:?}")]
    UnknownWord(String),
    /// Two different words for the same thing, e.g. `up down` or `50% 60%`.
    #[error("conflicting words {0:?} and {1:?}")]
    Conflicting(String, String),
    /// A `#description` without `up`/`down`/`fail`/`stopped` to go with it.
    #[error("description without a health word")]
    ReasonWithoutHealth,
}

impl Error {
    /// Stable label for per-cause counters.
    pub fn as_str(&self) -> &'static str {
        match self {
            Error::Incomplete => "incomplete",
            Error::TooLong => "too_long",
            Error::NotAscii(_) => "not_ascii",
            Error::ControlChar(_) => "control_char",
            Error::Empty => "empty",
            Error::BadPercentage(_) => "bad_percentage",
            Error::BadMaxconn(_) => "bad_maxconn",
            Error::UnknownWord(_) => "unknown_word",
            Error::Conflicting(_, _) => "conflicting",
            Error::ReasonWithoutHealth => "reason_without_health",
        }
    }

    /// Every label [`Error::as_str`] can return, to pre-register counters.
    pub const LABELS: [&'static str; 10] = [
        "incomplete",
        "too_long",
        "not_ascii",
        "control_char",
        "empty",
        "bad_percentage",
        "bad_maxconn",
        "unknown_word",
        "conflicting",
        "reason_without_health",
    ];
}

/// Borrowed view of a buffer that starts with an agent reply line.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
    /// Length of the line without its terminator.
    line_len: usize,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap a buffer without looking for the terminator; accessors then see
    /// the whole buffer as the line. Used to emit into a fresh buffer.
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        let line_len = buffer.as_ref().len();
        Packet { buffer, line_len }
    }

    /// Find the end of the first line, as haproxy does.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let bytes = buffer.as_ref();
        let window = &bytes[..bytes.len().min(MAX_REPLY_LEN)];
        match window.iter().position(|&b| b == b'\n' || b == b'\r') {
            Some(line_len) => Ok(Packet { buffer, line_len }),
            None if bytes.len() >= MAX_REPLY_LEN => Err(Error::TooLong),
            None => Err(Error::Incomplete),
        }
    }

    /// The line, without its terminator.
    pub fn line(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.line_len]
    }

    /// Bytes the line occupies including its terminator (`\r\n` counts as
    /// two); anything after that is not part of the reply.
    pub fn total_len(&self) -> usize {
        let bytes = self.buffer.as_ref();
        let mut len = self.line_len;
        if let Some(&first) = bytes.get(len) {
            len += 1;
            if first == b'\r' && bytes.get(len) == Some(&b'\n') {
                len += 1;
            }
        }
        len
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn buffer_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }
}

/// Administrative state words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AdminState {
    Ready,
    Drain,
    Maint,
}

impl AdminState {
    pub fn as_str(self) -> &'static str {
        match self {
            AdminState::Ready => "ready",
            AdminState::Drain => "drain",
            AdminState::Maint => "maint",
        }
    }
}

/// Health state words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HealthState {
    Up,
    Down,
    Fail,
    Stopped,
}

impl HealthState {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Up => "up",
            HealthState::Down => "down",
            HealthState::Fail => "fail",
            HealthState::Stopped => "stopped",
        }
    }

    /// `down`, `fail` and `stopped` all take the server out; they differ only
    /// in what the operator is told.
    pub fn is_down(self) -> bool {
        !matches!(self, HealthState::Up)
    }
}

/// Free text after `#`: printable ASCII and tabs, not empty, no leading
/// blank (haproxy strips those, so they could not survive a round trip).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reason(String);

impl Reason {
    /// Validate a description for emission. Leading blanks are stripped;
    /// an empty result is `None` because `down #` reads back as no reason.
    pub fn new(text: &str) -> Result<Option<Reason>, Error> {
        check_bytes(text.as_bytes())?;
        let text = text.trim_start_matches([' ', '\t']);
        Ok((!text.is_empty()).then(|| Reason(text.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A health word with its optional description.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HealthReport {
    pub state: HealthState,
    pub reason: Option<Reason>,
}

/// Owned form of one reply line. Fields left `None` were not advertised;
/// haproxy leaves the matching setting unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AgentReply {
    /// Weight relative to the configured one, in percent (0..=25600).
    pub weight_percent: Option<u16>,
    pub maxconn: Option<u32>,
    pub admin: Option<AdminState>,
    pub health: Option<HealthReport>,
}

impl AgentReply {
    /// Parse the first line of a checked packet.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<AgentReply, Error> {
        let line = packet.line();
        check_bytes(line)?;
        // check_bytes guarantees ASCII, hence UTF-8.
        let line = core::str::from_utf8(line).map_err(|_| Error::NotAscii(0x80))?;

        let mut reply = AgentReply::default();
        let mut health: Option<(HealthState, &str)> = None;
        let mut admin: Option<(AdminState, &str)> = None;
        let mut weight: Option<(u16, &str)> = None;
        let mut maxconn: Option<(u32, &str)> = None;
        let mut reason = None;
        let mut any = false;

        let mut rest = line;
        loop {
            rest = rest.trim_start_matches(is_separator);
            if rest.is_empty() {
                break;
            }
            if let Some(text) = rest.strip_prefix('#') {
                reason = Reason::new(text)?;
                any = true;
                break;
            }
            let end = rest.find(is_separator).unwrap_or(rest.len());
            let (word, tail) = rest.split_at(end);
            rest = tail;
            any = true;

            if let Some(state) = health_word(word) {
                set_once(&mut health, state, word)?;
            } else if let Some(state) = admin_word(word) {
                set_once(&mut admin, state, word)?;
            } else if word.starts_with(|c: char| c.is_ascii_digit()) && word.contains('%') {
                set_once(&mut weight, parse_percent(word)?, word)?;
            } else if word.len() >= 8 && word[..8].eq_ignore_ascii_case("maxconn:") {
                set_once(&mut maxconn, parse_maxconn(word)?, word)?;
            } else {
                return Err(Error::UnknownWord(word.to_owned()));
            }
        }

        if !any {
            return Err(Error::Empty);
        }
        reply.weight_percent = weight.map(|(w, _)| w);
        reply.maxconn = maxconn.map(|(m, _)| m);
        reply.admin = admin.map(|(a, _)| a);
        reply.health = match (health, reason) {
            (Some((state, _)), reason) => Some(HealthReport { state, reason }),
            (None, Some(_)) => return Err(Error::ReasonWithoutHealth),
            (None, None) => None,
        };
        Ok(reply)
    }

    /// Bytes [`AgentReply::emit`] writes, terminator included.
    pub fn buffer_len(&self) -> usize {
        self.to_line().len()
    }

    /// Write the line (admin word, weight, maxconn, health word, then
    /// ` #reason`, which must come last because it runs to the end of the
    /// line) terminated by `\n`. The buffer must be at least
    /// [`AgentReply::buffer_len`] bytes; the line is written at its start.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        let line = self.to_line();
        packet.buffer_mut()[..line.len()].copy_from_slice(line.as_bytes());
        packet.line_len = line.len() - 1;
    }

    /// The line as emitted, `\n` included. A reply with nothing in it comes
    /// out as a bare `\n`: haproxy reads that as "no change", but
    /// [`AgentReply::parse`] rejects it as [`Error::Empty`], so an agent
    /// should always advertise at least one word.
    pub fn to_line(&self) -> String {
        let mut words: Vec<String> = Vec::with_capacity(5);
        if let Some(admin) = self.admin {
            words.push(admin.as_str().to_owned());
        }
        if let Some(w) = self.weight_percent {
            words.push(format!("{w}%"));
        }
        if let Some(m) = self.maxconn {
            words.push(format!("maxconn:{m}"));
        }
        if let Some(health) = &self.health {
            words.push(health.state.as_str().to_owned());
            if let Some(reason) = &health.reason {
                words.push(format!("#{reason}"));
            }
        }
        let mut line = words.join(" ");
        line.push('\n');
        line
    }
}

impl fmt::Display for AgentReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.to_line().trim_end_matches('\n'))
    }
}

fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '\t' | ',')
}

fn check_bytes(bytes: &[u8]) -> Result<(), Error> {
    for &b in bytes {
        if b >= 0x80 {
            return Err(Error::NotAscii(b));
        }
        if (b < 0x20 && b != b'\t') || b == 0x7f {
            return Err(Error::ControlChar(b));
        }
    }
    Ok(())
}

fn health_word(word: &str) -> Option<HealthState> {
    [
        HealthState::Up,
        HealthState::Down,
        HealthState::Fail,
        HealthState::Stopped,
    ]
    .into_iter()
    .find(|s| word.eq_ignore_ascii_case(s.as_str()))
}

fn admin_word(word: &str) -> Option<AdminState> {
    [AdminState::Ready, AdminState::Drain, AdminState::Maint]
        .into_iter()
        .find(|s| word.eq_ignore_ascii_case(s.as_str()))
}

fn set_once<'a, V: PartialEq>(
    slot: &mut Option<(V, &'a str)>,
    value: V,
    word: &'a str,
) -> Result<(), Error> {
    match slot {
        Some((old, old_word)) if *old != value => {
            Err(Error::Conflicting((*old_word).to_owned(), word.to_owned()))
        }
        Some(_) => Ok(()),
        None => {
            *slot = Some((value, word));
            Ok(())
        }
    }
}

/// `<digits>%`. Like haproxy's `strtol` + clamp, a huge number saturates to
/// [`MAX_PERCENT`] rather than failing.
fn parse_percent(word: &str) -> Result<u16, Error> {
    let bad = || Error::BadPercentage(word.to_owned());
    let digits = word.strip_suffix('%').ok_or_else(bad)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let value = digits.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    });
    Ok(value.min(u64::from(MAX_PERCENT)) as u16)
}

fn parse_maxconn(word: &str) -> Result<u32, Error> {
    let digits = &word[8..];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::BadMaxconn(word.to_owned()));
    }
    match digits.parse::<u32>() {
        Ok(v) if v <= MAX_MAXCONN => Ok(v),
        _ => Err(Error::BadMaxconn(word.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<AgentReply, Error> {
        AgentReply::parse(&Packet::new_checked(bytes)?)
    }

    fn reply(
        weight: Option<u16>,
        admin: Option<AdminState>,
        health: Option<(HealthState, Option<&str>)>,
    ) -> AgentReply {
        AgentReply {
            weight_percent: weight,
            maxconn: None,
            admin,
            health: health.map(|(state, reason)| HealthReport {
                state,
                reason: reason.map(|r| Reason::new(r).unwrap().unwrap()),
            }),
        }
    }

    #[test]
    fn haproxy_doc_examples() {
        // From the agent-check section of haproxy's configuration.txt.
        assert_eq!(parse(b"75%\n").unwrap(), reply(Some(75), None, None));
        let r = parse(b"maxconn:30\n").unwrap();
        assert_eq!(r.maxconn, Some(30));
        assert_eq!(parse(b"ready\n").unwrap().admin, Some(AdminState::Ready));
        assert_eq!(parse(b"drain\n").unwrap().admin, Some(AdminState::Drain));
        assert_eq!(parse(b"maint\n").unwrap().admin, Some(AdminState::Maint));
        assert_eq!(
            parse(b"up\n").unwrap(),
            reply(None, None, Some((HealthState::Up, None)))
        );
        for (bytes, state) in [
            (&b"down\n"[..], HealthState::Down),
            (b"fail\n", HealthState::Fail),
            (b"stopped\n", HealthState::Stopped),
        ] {
            assert_eq!(
                parse(bytes).unwrap(),
                reply(None, None, Some((state, None)))
            );
        }
    }

    /// Replies fed to a real haproxy 2.6 (tests/fixtures/
    /// haproxy-agent-capture.sh), with what it made of them. Where haproxy
    /// flagged the line, we reject it; where it applied it, we read the same
    /// weight, maxconn and state, except for the deliberate strictness listed.
    #[test]
    fn agrees_with_real_haproxy() {
        const CAPTURE: &str = include_str!("../tests/fixtures/haproxy-2.6-agent-replies.txt");
        // haproxy accepts these (last word wins, ignores the lone reason,
        // takes a negative maxconn as 4294967291, treats "" as no change).
        const STRICTER: [&str; 5] = [
            r"40% 60%\n",
            r"up down\n",
            r"50% #why\n",
            r"maxconn:-5\n",
            r"\n",
        ];
        let mut cases = 0;
        for line in CAPTURE.lines().filter(|l| !l.starts_with('#')) {
            let (case, seen) = line.split_once('\t').unwrap();
            let bytes = case.replace(r"\n", "\n").replace(r"\r", "\r");
            let field = |name: &str| {
                let start = seen.find(&format!("{name}=")).unwrap() + name.len() + 1;
                let rest = &seen[start..];
                let end = [
                    " weight=",
                    " slim=",
                    " agent_status=",
                    " agent_desc=",
                    " last_agt=",
                ]
                .iter()
                .filter_map(|m| rest.find(m))
                .min()
                .unwrap_or(rest.len());
                &rest[..end]
            };
            let last_agt = field("last_agt");
            let haproxy_rejected = [
                "agent reports an error",
                "agent warns",
                "Ignoring incomplete",
            ]
            .iter()
            .any(|p| last_agt.starts_with(p));
            let ours = parse(bytes.as_bytes());
            cases += 1;
            if haproxy_rejected || STRICTER.contains(&case) {
                assert!(
                    ours.is_err(),
                    "{case}: haproxy said {seen:?}, we accepted {ours:?}"
                );
                continue;
            }
            let r = ours.unwrap_or_else(|e| panic!("{case}: haproxy applied it, we said {e}"));
            let status = field("status");
            let expected = if r.admin == Some(AdminState::Maint) {
                "MAINT"
            } else if r.health.as_ref().is_some_and(|h| h.state.is_down()) {
                "DOWN"
            } else if r.admin == Some(AdminState::Drain) {
                "DRAIN"
            } else {
                "UP"
            };
            assert!(
                status.starts_with(expected),
                "{case}: {status} vs {expected}"
            );
            // In MAINT the stats page shows the configured weight.
            if expected != "MAINT" {
                let weight = r.weight_percent.map_or(100, |p| u32::from(p).min(256));
                assert_eq!(field("weight"), weight.to_string(), "{case}");
            }
            assert_eq!(field("slim"), r.maxconn.unwrap_or(10).to_string(), "{case}");
            if let Some(HealthReport { state, reason }) = &r.health {
                let mut text = format!(
                    "via agent : {}",
                    case.split([' ', ',', '\\'])
                        .find(|w| w.eq_ignore_ascii_case(state.as_str()))
                        .unwrap()
                );
                if let Some(reason) = reason {
                    text += &format!(" ({reason})");
                }
                assert_eq!(last_agt, text, "{case}");
            }
        }
        assert_eq!(cases, 30);
    }

    #[test]
    fn haproxy_regtest_line() {
        // reg-tests/checks/agent-check.vtc sends this combination.
        let r = parse(b"75%,maxconn:30,maint,down\n").unwrap();
        assert_eq!(r.weight_percent, Some(75));
        assert_eq!(r.maxconn, Some(30));
        assert_eq!(r.admin, Some(AdminState::Maint));
        assert_eq!(r.health.unwrap().state, HealthState::Down);
    }

    #[test]
    fn terminators_and_trailing_data() {
        for bytes in [&b"50%\n"[..], b"50%\r\n", b"50%\r", b"50%\nup\n"] {
            assert_eq!(parse(bytes).unwrap().weight_percent, Some(50), "{bytes:?}");
        }
        let p = Packet::new_checked(&b"50%\r\nrest"[..]).unwrap();
        assert_eq!(p.line(), b"50%");
        assert_eq!(p.total_len(), 5);
        assert_eq!(
            Packet::new_checked(&b"50%\rrest"[..]).unwrap().total_len(),
            4
        );
        assert_eq!(Packet::new_checked(&b"50%\n"[..]).unwrap().total_len(), 4);
    }

    #[test]
    fn incomplete_and_too_long() {
        assert_eq!(parse(b"").unwrap_err(), Error::Incomplete);
        assert_eq!(parse(b"50%").unwrap_err(), Error::Incomplete);
        let mut long = vec![b' '; MAX_REPLY_LEN];
        assert_eq!(parse(&long).unwrap_err(), Error::TooLong);
        // The terminator must be inside the bound.
        long.push(b'\n');
        assert_eq!(parse(&long).unwrap_err(), Error::TooLong);
        long[MAX_REPLY_LEN - 1] = b'\n';
        long[0] = b'u';
        long[1] = b'p';
        assert_eq!(parse(&long).unwrap().health.unwrap().state, HealthState::Up);
    }

    #[test]
    fn separators_and_case() {
        let r = parse(b" \t,Drain,\t 10% ,MAXCONN:7 UP\n").unwrap();
        assert_eq!(r.admin, Some(AdminState::Drain));
        assert_eq!(r.weight_percent, Some(10));
        assert_eq!(r.maxconn, Some(7));
        assert_eq!(r.health.unwrap().state, HealthState::Up);
    }

    #[test]
    fn percentages() {
        assert_eq!(parse(b"0%\n").unwrap().weight_percent, Some(0));
        assert_eq!(parse(b"007%\n").unwrap().weight_percent, Some(7));
        assert_eq!(parse(b"100%\n").unwrap().weight_percent, Some(100));
        // Above 100% is legal; haproxy clamps at 25600.
        assert_eq!(parse(b"150%\n").unwrap().weight_percent, Some(150));
        assert_eq!(
            parse(b"25601%\n").unwrap().weight_percent,
            Some(MAX_PERCENT)
        );
        assert_eq!(
            parse(b"99999999999999999999999%\n").unwrap().weight_percent,
            Some(MAX_PERCENT)
        );
        for bad in [&b"5x%\n"[..], b"5%%\n", b"5%x\n", b"1.5%\n"] {
            let err = parse(bad).unwrap_err();
            assert_eq!(err.as_str(), "bad_percentage", "{bad:?}");
        }
        // Not starting with a digit or no '%': not a weight at all for haproxy.
        for unknown in [&b"-5%\n"[..], b"%\n", b"50\n", b"+5%\n"] {
            assert_eq!(
                parse(unknown).unwrap_err().as_str(),
                "unknown_word",
                "{unknown:?}"
            );
        }
    }

    #[test]
    fn maxconn() {
        assert_eq!(parse(b"maxconn:0\n").unwrap().maxconn, Some(0));
        assert_eq!(
            parse(b"maxconn:2147483647\n").unwrap().maxconn,
            Some(MAX_MAXCONN)
        );
        for bad in [
            &b"maxconn:\n"[..],
            b"maxconn:-1\n",
            b"maxconn:+1\n",
            b"maxconn:2147483648\n",
            b"maxconn:1k\n",
        ] {
            assert_eq!(parse(bad).unwrap_err().as_str(), "bad_maxconn", "{bad:?}");
        }
        // "maxconn" without the colon is not the keyword.
        assert_eq!(parse(b"maxconn\n").unwrap_err().as_str(), "unknown_word");
    }

    #[test]
    fn reasons() {
        let r = parse(b"down #disk full\n").unwrap();
        assert_eq!(
            r,
            reply(None, None, Some((HealthState::Down, Some("disk full"))))
        );
        // Leading blanks after '#' are skipped, trailing ones kept, and
        // separators inside the description are text.
        let r = parse(b"stopped,#\t  by ops, see #42 \r\n").unwrap();
        assert_eq!(
            r.health.unwrap().reason.unwrap().as_str(),
            "by ops, see #42 "
        );
        // An empty description is no description.
        assert_eq!(parse(b"fail #  \n").unwrap().health.unwrap().reason, None);
        // haproxy only splits on '#' at the start of a word.
        assert_eq!(
            parse(b"down#reason\n").unwrap_err(),
            Error::UnknownWord("down#reason".into())
        );
        assert_eq!(
            parse(b"50% #why\n").unwrap_err(),
            Error::ReasonWithoutHealth
        );
        // Words after the '#' are description, not words.
        let r = parse(b"up # drain 0%\n").unwrap();
        assert_eq!(r.admin, None);
        assert_eq!(r.weight_percent, None);
    }

    #[test]
    fn rejections() {
        assert_eq!(parse(b"\n").unwrap_err(), Error::Empty);
        assert_eq!(parse(b" ,\t\r\n").unwrap_err(), Error::Empty);
        assert_eq!(parse(b"up\xc3\xa9\n").unwrap_err(), Error::NotAscii(0xc3));
        assert_eq!(parse(b"up\x00down\n").unwrap_err(), Error::ControlChar(0));
        assert_eq!(
            parse(b"up\x0bdown\n").unwrap_err(),
            Error::ControlChar(0x0b)
        );
        assert_eq!(
            parse(b"up banana\n").unwrap_err(),
            Error::UnknownWord("banana".into())
        );
        assert_eq!(
            parse(b"up down\n").unwrap_err(),
            Error::Conflicting("up".into(), "down".into())
        );
        assert_eq!(parse(b"drain maint\n").unwrap_err().as_str(), "conflicting");
        assert_eq!(parse(b"50% 60%\n").unwrap_err().as_str(), "conflicting");
        assert_eq!(parse(b"50% 050%\n").unwrap().weight_percent, Some(50));
        assert_eq!(
            parse(b"maxconn:1 maxconn:2\n").unwrap_err().as_str(),
            "conflicting"
        );
        // Same word twice is harmless.
        assert_eq!(
            parse(b"up UP\n").unwrap().health.unwrap().state,
            HealthState::Up
        );
    }

    #[test]
    fn labels_are_listed() {
        let errors = [
            Error::Incomplete,
            Error::TooLong,
            Error::NotAscii(0x80),
            Error::ControlChar(0),
            Error::Empty,
            Error::BadPercentage(String::new()),
            Error::BadMaxconn(String::new()),
            Error::UnknownWord(String::new()),
            Error::Conflicting(String::new(), String::new()),
            Error::ReasonWithoutHealth,
        ];
        let labels: Vec<_> = errors.iter().map(Error::as_str).collect();
        assert_eq!(labels, Error::LABELS);
    }

    #[test]
    fn emit_bytes() {
        let r = AgentReply {
            weight_percent: Some(40),
            maxconn: Some(100),
            admin: Some(AdminState::Ready),
            health: Some(HealthReport {
                state: HealthState::Up,
                reason: None,
            }),
        };
        let mut buf = vec![0u8; r.buffer_len()];
        let mut packet = Packet::new_unchecked(&mut buf[..]);
        r.emit(&mut packet);
        assert_eq!(packet.line(), b"ready 40% maxconn:100 up");
        assert_eq!(buf, b"ready 40% maxconn:100 up\n");

        let down = reply(None, None, Some((HealthState::Down, Some("disk full"))));
        assert_eq!(down.to_line(), "down #disk full\n");
        assert_eq!(down.to_string(), "down #disk full");
        assert_eq!(
            reply(Some(0), Some(AdminState::Drain), None).to_line(),
            "drain 0%\n"
        );
    }

    #[test]
    fn round_trip() {
        let cases = [
            reply(Some(75), None, None),
            reply(None, Some(AdminState::Maint), None),
            reply(
                Some(1),
                Some(AdminState::Ready),
                Some((HealthState::Up, None)),
            ),
            reply(
                None,
                Some(AdminState::Drain),
                Some((HealthState::Stopped, Some("x # y, z"))),
            ),
            AgentReply {
                maxconn: Some(30),
                ..reply(
                    Some(MAX_PERCENT),
                    None,
                    Some((HealthState::Fail, Some("db"))),
                )
            },
        ];
        for r in cases {
            let mut buf = vec![0u8; r.buffer_len() + 3];
            r.emit(&mut Packet::new_unchecked(&mut buf[..]));
            let back = parse(&buf).unwrap();
            assert_eq!(back, r);
            assert_eq!(
                Packet::new_checked(&buf[..]).unwrap().total_len(),
                r.buffer_len()
            );
        }
    }

    #[test]
    fn reason_validation() {
        assert_eq!(Reason::new("  ").unwrap(), None);
        assert_eq!(Reason::new("a\nb").unwrap_err(), Error::ControlChar(b'\n'));
        assert_eq!(Reason::new("é").unwrap_err(), Error::NotAscii(0xc3));
        assert_eq!(Reason::new(" ok").unwrap().unwrap().as_str(), "ok");
    }
}
