//! `lvsadm genhash`: keepalived's genhash, with its options and output, fetching the page
//! exactly as directord's http / https check does (lvs-checks' blocking fetch, no runtime),
//! so the digest it prints is the one a check's `digest` compares.
//!
//! keepalived's genhash sends HTTP/1.0 unless told `-P 1.1`; the check sends HTTP/1.1 with
//! `Connection: close` and reads a chunked answer de-chunked, so both digest the same bytes:
//! the page's data. `-P` is accepted for command lines written for genhash and changes
//! nothing.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use lvs_checks::page::{self, Page};
use lvs_checks::spec::{Http, Tls, Url};
use lvs_checks::wire::http::hex;

/// The most of a page genhash keeps to dump with `-v`; the digest covers the whole page.
const MAX_DUMP: usize = 16 << 20;

#[derive(Debug, Clone, clap::Args)]
#[command(disable_version_flag = true)]
pub struct Args {
    /// Use SSL connection to remote server
    #[arg(short = 'S', long = "use-ssl")]
    ssl: bool,
    /// Use SNI during SSL handshake (uses virtualhost setting; see -V)
    #[arg(short = 'I', long = "use-sni")]
    sni: bool,
    /// Use the specified remote server address
    #[arg(short = 's', long = "server")]
    server: IpAddr,
    /// Use the specified remote server port
    #[arg(short = 'p', long = "port", value_parser = clap::value_parser!(u16).range(1..))]
    port: u16,
    /// Use the specified remote server url
    #[arg(short = 'u', long = "url")]
    url: String,
    /// Use the specified virtualhost in GET query
    #[arg(short = 'V', long = "use-virtualhost")]
    virtualhost: Option<String>,
    /// Use verbose mode output
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,
    /// Use the specified FW mark (not supported: checks do not mark their packets)
    #[arg(short = 'm', long = "fwmark")]
    fwmark: Option<u32>,
    /// HTTP protocol: 1.0, 1.0c or 1.1 (accepted; the check's own request is sent)
    #[arg(short = 'P', long = "protocol", value_parser = ["1.0", "1.0c", "1.0C", "1.1"])]
    protocol: Option<String>,
    /// Timeout in seconds
    #[arg(short = 't', long = "timeout", default_value_t = 5)]
    timeout: u64,
}

impl Args {
    /// The http check this command line describes.
    pub fn check(&self) -> Http {
        Http {
            method: "GET".to_owned(),
            host: self.virtualhost.clone(),
            // keepalived does not verify the certificate either.
            tls: self.ssl.then(|| Tls {
                verify: false,
                sni: self.virtualhost.clone().filter(|_| self.sni),
            }),
            urls: vec![Url::new(&self.url)],
        }
    }
}

pub fn run(args: &Args) -> ExitCode {
    if args.fwmark.is_some() {
        eprintln!("lvsadm genhash: --fwmark is not supported: checks do not mark their packets");
        return ExitCode::FAILURE;
    }
    let to = SocketAddr::new(args.server, args.port);
    let started = Instant::now();
    let timeout = Duration::from_secs(args.timeout.max(1));
    let page = match page::fetch(&args.check(), to, timeout, MAX_DUMP) {
        Ok(page) => page,
        Err(reason) => {
            eprintln!("lvsadm genhash: {to}: {reason}");
            return ExitCode::FAILURE;
        }
    };
    if args.verbose {
        print!("{}", verbose(&page));
    }
    println!("{}", hex(&page.digest));
    if args.verbose {
        println!(
            "\nGlobal response time for [{}] = {} usecs",
            args.url,
            started.elapsed().as_micros()
        );
    }
    ExitCode::SUCCESS
}

fn delimiter(title: &str) -> String {
    format!("-----------------------[{title}]-----------------------\n")
}

/// genhash -v's dumps, before the final digest line.
fn verbose(page: &Page) -> String {
    let mut out = delimiter("    HTTP Header Buffer    ");
    out += &dump(page.head.as_bytes());
    out += &delimiter(" HTTP Header Ascii Buffer ");
    out += &page.head;
    out += "\n";
    // keepalived prints this line only when body bytes came in the read that ended the
    // head, which is how a small page arrives from most servers.
    if !page.body.is_empty() {
        out += &delimiter("        HTML Buffer        ");
    }
    out += &dump(&page.body);
    out += "\n";
    out += &delimiter("    HTML hash resulting    ");
    out += &dump(&page.digest);
    out += &delimiter(" HTML hash final resulting ");
    out
}

/// keepalived's dump_buffer: decimal offset, 16 bytes in hex split by " -", then the
/// printable ones.
pub fn dump(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (row, chunk) in bytes.chunks(16).enumerate() {
        out += &format!("{:04} ", (row * 16) & 0xffff);
        for i in 0..16 {
            match chunk.get(i) {
                Some(b) => out += &format!(" {b:02x}"),
                None => out += "   ",
            }
            if i == 7 {
                out += " -";
            }
        }
        out += "   ";
        for i in 0..16 {
            out.push(match chunk.get(i) {
                Some(&b) if (0x20..=0x7e).contains(&b) => b as char,
                Some(_) => '.',
                None => ' ',
            });
        }
        out += "\n";
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // The layout genhash -v printed for a 17-byte page (captured from keepalived 2.2.7's
    // genhash against python's http.server).
    #[test]
    fn dumps_as_keepalived_does() {
        assert_eq!(
            dump(b"hello keepalived\n"),
            "0000  68 65 6c 6c 6f 20 6b 65 - 65 70 61 6c 69 76 65 64   hello keepalived\n\
             0016  0a                      -                           .               \n"
        );
    }
}
