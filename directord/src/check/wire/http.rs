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

    /// The body's data, as much of it as has arrived in `raw`.
    pub fn body(self, raw: &[u8]) -> Vec<u8> {
        if self.chunked {
            dechunk(raw)
        } else {
            raw.to_vec()
        }
    }

    /// Whether `raw` holds the whole body (the connection's end aside).
    pub fn complete(self, raw: &[u8]) -> bool {
        self.length.is_some_and(|n| raw.len() >= n)
            || (self.chunked
                && (find(raw, b"\r\n0\r\n\r\n").is_some() || raw.starts_with(b"0\r\n\r\n")))
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The data of a chunked body, as much of it as has arrived.
pub fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = find(raw, b"\r\n") {
        let size_text = String::from_utf8_lossy(&raw[..eol]);
        let Ok(size) = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
        else {
            break;
        };
        if size == 0 {
            break;
        }
        let data = &raw[eol + 2..];
        let take = size.min(data.len());
        out.extend_from_slice(&data[..take]);
        if take < size || data.len() < size + 2 {
            break;
        }
        raw = &data[size + 2..];
    }
    out
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

    #[test]
    fn chunked_bodies() {
        assert_eq!(
            dechunk(b"4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\n\r\n"),
            b"Wikipedia"
        );
        assert_eq!(dechunk(b"4\r\nWi"), b"Wi");
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
        assert!(!framing.complete(b"hell"));
        assert!(framing.complete(b"hello"));

        let chunked = Framing::of("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(chunked.chunked);
        assert!(!chunked.complete(b"4\r\nWiki\r\n"));
        assert!(chunked.complete(b"4\r\nWiki\r\n0\r\n\r\n"));
        assert!(chunked.complete(b"0\r\n\r\n"));
        assert_eq!(chunked.body(b"4\r\nWiki\r\n0\r\n\r\n"), b"Wiki");
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\n"), None);
    }
}
