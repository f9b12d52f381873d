//! HTTP/1.1 as far as a health check reads it (RFC 9112): the request, the status line, the
//! framing fields of the head and a chunked body. The same status line, with another
//! protocol name, starts a SIP response.

use std::net::SocketAddr;

/// The request a check sends; `Connection: close` so the body ends with the connection when
/// the head gives no length.
pub fn request(method: &str, path: &str, host: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: directord-check\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

/// The Host header for `addr`: the port only when it is not the scheme's default.
pub fn host_header(addr: SocketAddr, tls: bool) -> String {
    let default_port = if tls { 443 } else { 80 };
    match (addr, addr.port() == default_port) {
        (SocketAddr::V4(a), true) => a.ip().to_string(),
        (SocketAddr::V6(a), true) => format!("[{}]", a.ip()),
        (a, false) => a.to_string(),
    }
}

/// The status code of "HTTP/1.1 200 OK" or "SIP/2.0 200 OK".
pub fn parse_status_line(line: &str, protocol_prefix: &str) -> Option<u16> {
    if !line.starts_with(protocol_prefix) {
        return None;
    }
    let code = line.split_whitespace().nth(1)?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

pub fn in_ranges(status: u16, ranges: &[(u16, u16)]) -> bool {
    ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&status))
}

pub fn ranges_text(ranges: &[(u16, u16)]) -> String {
    ranges
        .iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Where the head ends (just past its blank line), once it has all arrived.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    find(buf, b"\r\n\r\n").map(|at| at + 4)
}

/// How the body after a head is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framing {
    pub chunked: bool,
    pub length: Option<usize>,
}

impl Framing {
    pub fn of(head: &str) -> Framing {
        let headers = head.to_ascii_lowercase();
        Framing {
            chunked: headers.contains("\ntransfer-encoding: chunked"),
            length: headers
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok()),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A chunk-size or trailer line longer than this is not HTTP a check wants to read.
const MAX_CHUNK_LINE: usize = 1024;

/// Where a chunked body's decoder is (RFC 9112 7.1).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Chunked {
    /// Reading a chunk-size line, so far.
    Size(Vec<u8>),
    /// This many data bytes to come.
    Data(usize),
    /// This many bytes of the CRLF after a chunk's data to skip.
    DataEnd(usize),
    /// Reading trailer lines until an empty one; the line so far.
    Trailer(Vec<u8>),
    Done,
    /// The framing is broken; nothing more is taken.
    Broken,
}

/// A response body as it arrives: de-chunked, hashed whole with MD5 (keepalived's digest,
/// over the data of the body only, up to Content-Length), and kept up to a limit for a
/// pattern. Sans-IO: the probe feeds what it read and asks whether the body is complete.
pub struct Body {
    length: Option<usize>,
    chunked: Option<Chunked>,
    /// Data bytes taken so far.
    taken: usize,
    md5: md5::Md5,
    kept: Vec<u8>,
    keep: usize,
}

impl Body {
    pub fn new(framing: Framing, keep: usize) -> Body {
        use md5::Digest;
        Body {
            length: framing.length.filter(|_| !framing.chunked),
            chunked: framing.chunked.then(|| Chunked::Size(Vec::new())),
            taken: 0,
            md5: md5::Md5::new(),
            kept: Vec::new(),
            keep,
        }
    }

    /// Takes bytes of the body as they came off the connection.
    pub fn feed(&mut self, raw: &[u8]) {
        match self.chunked.take() {
            Some(mut state) => {
                let mut rest = raw;
                while !rest.is_empty() {
                    let (next, used) = dechunk_step(state, rest, &mut |data| self.data(data));
                    state = next;
                    rest = &rest[used..];
                }
                self.chunked = Some(state);
            }
            None => {
                let want = self
                    .length
                    .map_or(raw.len(), |n| n.saturating_sub(self.taken));
                self.data(&raw[..want.min(raw.len())]);
            }
        }
    }

    fn data(&mut self, data: &[u8]) {
        use md5::Digest;
        self.md5.update(data);
        self.taken += data.len();
        let room = self.keep.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&data[..room.min(data.len())]);
    }

    /// Whether the framing says the body is whole (a body without length or chunks ends
    /// only with the connection).
    pub fn complete(&self) -> bool {
        match &self.chunked {
            Some(state) => matches!(state, Chunked::Done | Chunked::Broken),
            None => self.length.is_some_and(|n| self.taken >= n),
        }
    }

    /// Whether the chunked framing could not be read.
    pub fn broken(&self) -> bool {
        self.chunked == Some(Chunked::Broken)
    }

    /// The first `keep` bytes of the body's data.
    pub fn kept(&self) -> &[u8] {
        &self.kept
    }

    /// Whether `keep` bytes have been kept and more may be coming.
    pub fn full(&self) -> bool {
        self.kept.len() >= self.keep
    }

    pub fn digest(&self) -> [u8; 16] {
        use md5::Digest;
        self.md5.clone().finalize().into()
    }
}

/// One step of the chunked decoder over `raw`: the next state and how many bytes it used.
fn dechunk_step(state: Chunked, raw: &[u8], data: &mut impl FnMut(&[u8])) -> (Chunked, usize) {
    match state {
        Chunked::Size(mut line) | Chunked::Trailer(mut line) if line.len() > MAX_CHUNK_LINE => {
            line.clear();
            (Chunked::Broken, raw.len())
        }
        Chunked::Size(mut line) => match raw.iter().position(|&b| b == b'\n') {
            None => {
                line.extend_from_slice(raw);
                (Chunked::Size(line), raw.len())
            }
            Some(end) => {
                line.extend_from_slice(&raw[..end]);
                let text = String::from_utf8_lossy(&line);
                let size = text.split(';').next().unwrap_or("").trim();
                let next = match usize::from_str_radix(size, 16) {
                    Ok(0) => Chunked::Trailer(Vec::new()),
                    Ok(n) => Chunked::Data(n),
                    Err(_) => Chunked::Broken,
                };
                (next, end + 1)
            }
        },
        Chunked::Data(n) => {
            let take = n.min(raw.len());
            data(&raw[..take]);
            let next = if take == n {
                Chunked::DataEnd(2)
            } else {
                Chunked::Data(n - take)
            };
            (next, take)
        }
        Chunked::DataEnd(k) => {
            let skip = k.min(raw.len());
            let next = if skip == k {
                Chunked::Size(Vec::new())
            } else {
                Chunked::DataEnd(k - skip)
            };
            (next, skip)
        }
        Chunked::Trailer(mut line) => match raw.iter().position(|&b| b == b'\n') {
            None => {
                line.extend_from_slice(raw);
                (Chunked::Trailer(line), raw.len())
            }
            Some(end) => {
                line.extend_from_slice(&raw[..end]);
                let blank = line.iter().all(|&b| b == b'\r');
                let next = if blank {
                    Chunked::Done
                } else {
                    Chunked::Trailer(Vec::new())
                };
                (next, end + 1)
            }
        },
        Chunked::Done | Chunked::Broken => (state, raw.len()),
    }
}

/// The lower-case hex of a digest, as keepalived's genhash prints it.
pub fn hex(digest: &[u8; 16]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a response could not be read; the `Display` is the check's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("connection closed without a response")]
    NoResponse,
    #[error("connection closed inside the response head")]
    ClosedInHead,
    #[error("not an HTTP response: {0}")]
    NotHttp(String),
    #[error("status {0}, chunked body unreadable")]
    BodyUnreadable(u16),
}

/// What a page answered: its status, head and body, as far as the check reads it.
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: Body,
}

/// A response as it comes off the connection (sans-IO): the head, then the body. The
/// async probe and the blocking fetch read through this one, so both stop, fail and digest
/// alike.
pub struct Response {
    keep: usize,
    head_only: bool,
    eof: bool,
    answer: Option<Answer>,
}

impl Response {
    /// Reading the answer to `request`, keeping up to `keep` bytes of its body.
    pub fn new(request: &[u8], keep: usize) -> Response {
        Response {
            keep,
            // A HEAD answer has no body whatever its head says.
            head_only: request.starts_with(b"HEAD "),
            eof: false,
            answer: None,
        }
    }

    /// Takes what the connection buffered (`eof`: the last read had nothing). The head
    /// stays in `buf` until all of it has come, so the reader's budget bounds it; body
    /// bytes are consumed.
    pub fn take(&mut self, buf: &mut Vec<u8>, eof: bool) -> Result<(), ResponseError> {
        self.eof |= eof;
        let Some(answer) = &mut self.answer else {
            let Some(end) = head_end(buf) else {
                return match (eof, buf.is_empty()) {
                    (false, _) => Ok(()),
                    (true, true) => Err(ResponseError::NoResponse),
                    (true, false) => Err(ResponseError::ClosedInHead),
                };
            };
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let status_line = head.lines().next().unwrap_or_default();
            let status = parse_status_line(status_line, "HTTP/1.").ok_or_else(|| {
                ResponseError::NotHttp(crate::reason::excerpt(status_line.as_bytes()))
            })?;
            let mut body = Body::new(Framing::of(&head), self.keep);
            body.feed(&buf[end..]);
            buf.clear();
            self.answer = Some(Answer { status, head, body });
            return Ok(());
        };
        answer.body.feed(buf);
        buf.clear();
        Ok(())
    }

    /// Whether to read on: until the head, then the body while it may go on, all of it when
    /// `whole` (a digest covers every byte), else until it is full or `enough` says it has
    /// what it needs.
    pub fn wants_more(&self, whole: bool, enough: impl Fn(&[u8]) -> bool) -> bool {
        let Some(answer) = &self.answer else {
            return true;
        };
        let body = &answer.body;
        !self.head_only
            && !body.complete()
            && !self.eof
            && (whole || !(body.full() || enough(body.kept())))
    }

    /// The answer, once [`Response::wants_more`] is false.
    pub fn finish(self) -> Result<Answer, ResponseError> {
        let answer = self.answer.ok_or(ResponseError::ClosedInHead)?;
        if answer.body.broken() {
            return Err(ResponseError::BodyUnreadable(answer.status));
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bytes() {
        assert_eq!(
            request("GET", "/health", "192.0.2.10:8080"),
            b"GET /health HTTP/1.1\r\nHost: 192.0.2.10:8080\r\nUser-Agent: directord-check\r\n\
              Accept: */*\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn host_headers() {
        assert_eq!(
            host_header("192.0.2.10:80".parse().unwrap(), false),
            "192.0.2.10"
        );
        assert_eq!(
            host_header("192.0.2.10:443".parse().unwrap(), false),
            "192.0.2.10:443"
        );
        assert_eq!(
            host_header("[2001:db8::1]:443".parse().unwrap(), true),
            "[2001:db8::1]"
        );
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line("HTTP/1.1 503 Busy", "HTTP/1."), Some(503));
        assert_eq!(parse_status_line("HTTP/1.0 200", "HTTP/1."), Some(200));
        assert_eq!(
            parse_status_line("SIP/2.0 404 Not Found", "SIP/2.0"),
            Some(404)
        );
        assert_eq!(parse_status_line("HTTP/2 200", "HTTP/1."), None);
        assert_eq!(parse_status_line("HTTP/1.1 2000 x", "HTTP/1."), None);
    }

    #[test]
    fn ranges() {
        assert!(in_ranges(204, &[(200, 299)]));
        assert!(!in_ranges(300, &[(200, 299), (404, 404)]));
        assert_eq!(ranges_text(&[(200, 299), (404, 404)]), "200-299,404");
    }

    fn body_of(framing: Framing, pieces: &[&[u8]], keep: usize) -> Body {
        let mut body = Body::new(framing, keep);
        for piece in pieces {
            body.feed(piece);
        }
        body
    }

    const CHUNKED: Framing = Framing {
        chunked: true,
        length: None,
    };

    // The decoder takes the body in whatever pieces the connection gives, down to a byte
    // at a time, and hashes only the data: the digest of a chunked page is the one genhash
    // prints for the same page sent whole.
    #[test]
    fn chunked_bodies_in_any_pieces() {
        let raw: &[u8] = b"4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\nX-Trailer: 1\r\n\r\n";
        let whole = body_of(CHUNKED, &[raw], 100);
        assert_eq!(whole.kept(), b"Wikipedia");
        assert!(whole.complete());
        let bytes: Vec<&[u8]> = raw.chunks(1).collect();
        let bytewise = body_of(CHUNKED, &bytes, 100);
        assert_eq!(bytewise.kept(), b"Wikipedia");
        assert!(bytewise.complete());
        let plain = body_of(
            Framing {
                chunked: false,
                length: Some(9),
            },
            &[b"Wikipedia"],
            100,
        );
        assert_eq!(whole.digest(), plain.digest());
        // md5sum of "Wikipedia" without a newline.
        assert_eq!(hex(&plain.digest()), "9c677286866aad38f8e9b660f5411814");

        let partial = body_of(CHUNKED, &[b"4\r\nWi"], 100);
        assert_eq!(partial.kept(), b"Wi");
        assert!(!partial.complete());
        let broken = body_of(CHUNKED, &[b"zz\r\nWiki"], 100);
        assert!(broken.broken() && broken.complete());
    }

    // keepalived hashes no more than Content-Length says, and a pattern sees only the first
    // bytes while the digest covers the whole body.
    #[test]
    fn length_bounds_the_digest_and_keep_bounds_the_pattern() {
        let framing = Framing {
            chunked: false,
            length: Some(5),
        };
        let body = body_of(framing, &[b"hel", b"lo, and more"], 3);
        assert!(body.complete());
        assert_eq!(body.kept(), b"hel");
        assert!(body.full());
        assert_eq!(hex(&body.digest()), "5d41402abc4b2a76b9719d911017c592");
    }

    #[test]
    fn framing_of_a_head() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        let end = head_end(raw).unwrap();
        assert_eq!(end, raw.len() - 5);
        let framing = Framing::of(std::str::from_utf8(&raw[..end]).unwrap());
        assert_eq!(
            framing,
            Framing {
                chunked: false,
                length: Some(5)
            }
        );
        let chunked = Framing::of("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(chunked.chunked);
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\n"), None);
    }

    /// Feeds `reads` to a [`Response`] as a connection would deliver them (an empty read
    /// is the end of the stream), until it wants no more.
    fn read(request: &[u8], reads: &[&[u8]], whole: bool) -> Result<Answer, ResponseError> {
        let mut response = Response::new(request, 64);
        let mut buf = Vec::new();
        let mut reads = reads.iter();
        while response.wants_more(whole, |kept| kept.starts_with(b"ok")) {
            let next = reads
                .next()
                .expect("the reader stopped at the end of the stream");
            buf.extend_from_slice(next);
            response.take(&mut buf, next.is_empty())?;
        }
        response.finish()
    }

    // The one reader both the async probe and genhash's blocking fetch use: a head split
    // across reads waits for its blank line, a chunked body is de-chunked, a HEAD answer has
    // no body, and a check that only wants a pattern stops reading once it matched.
    #[test]
    fn a_response_is_read_as_the_check_reads_it() {
        const GET: &[u8] = b"GET / HTTP/1.1\r\n\r\n";
        let chunked: &[&[u8]] = &[
            b"HTTP/1.1 200 OK\r\nTransfer-",
            b"Encoding: chunked\r\n\r\n2\r\nok\r\n",
            b"3\r\n!!!\r\n0\r\n\r\n",
        ];
        let answer = read(GET, chunked, true).unwrap();
        assert_eq!((answer.status, answer.body.kept()), (200, &b"ok!!!"[..]));
        let enough = read(GET, &chunked[..2], false).unwrap();
        assert_eq!(enough.body.kept(), b"ok");
        let head = read(
            b"HEAD / HTTP/1.1\r\n\r\n",
            &[b"HTTP/1.1 204 No\r\nContent-Length: 9\r\n\r\n"],
            true,
        );
        assert!(head.unwrap().body.kept().is_empty());
        let until_close = read(GET, &[b"HTTP/1.0 200 OK\r\n\r\nall", b" of it", b""], true);
        assert_eq!(until_close.unwrap().body.kept(), b"all of it");
    }

    // Each way an answer fails is its own cause, with the reason the check has always given.
    #[test]
    fn unreadable_responses_say_why() {
        const GET: &[u8] = b"GET / HTTP/1.1\r\n\r\n";
        assert_eq!(
            read(GET, &[b""], true).err(),
            Some(ResponseError::NoResponse)
        );
        assert_eq!(
            read(GET, &[b"HTTP/1.1 200", b""], true).err(),
            Some(ResponseError::ClosedInHead)
        );
        let not_http = read(GET, &[b"SSH-2.0-OpenSSH\r\n\r\n"], true)
            .err()
            .unwrap();
        assert_eq!(
            not_http.to_string(),
            "not an HTTP response: SSH-2.0-OpenSSH"
        );
        let broken = b"HTTP/1.1 502 Bad\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert_eq!(
            read(GET, &[broken], true).err(),
            Some(ResponseError::BodyUnreadable(502))
        );
    }
}
