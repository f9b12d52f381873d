//! ipvsadm 1.31's own output, captured in UML (Linux 6.1) by tests/uml/compare-ipvsadm.sh
//! with CAPTURE set, for the table in fixtures/table.txt. lvsadm reads that table with its
//! restore parser and must print exactly what ipvsadm printed.

use lvs_ipvs::{Info, Request};
use lvsadm::ipvsadm::args::ListFormat;
use lvsadm::ipvsadm::list::{self, Entry};
use lvsadm::ipvsadm::restore;

const TABLE: &str = include_str!("fixtures/table.txt");

/// What the kernel holds after the table is applied (counters all zero: no traffic).
fn kernel_table() -> Vec<Entry> {
    let plan = restore::parse(TABLE).expect("fixture table parses");
    let mut entries: Vec<Entry> = Vec::new();
    for (_, req) in plan.steps {
        match req {
            Request::AddService(service) => entries.push(Entry {
                service,
                dests: Vec::new(),
            }),
            Request::AddDestination(key, dest) => entries
                .iter_mut()
                .find(|e| e.service.key == key)
                .expect("destination of a listed service")
                .dests
                .push(dest),
            other => panic!("unexpected request in the fixture table: {other:?}"),
        }
    }
    list::sort(&mut entries);
    entries
}

fn listing(format: ListFormat) -> String {
    let info = Info {
        version: 0x01_02_01,
        conn_tab_size: 4096,
    };
    list::list_all(&info, &kernel_table(), &format)
}

fn numeric() -> ListFormat {
    ListFormat {
        numeric: true,
        ..ListFormat::default()
    }
}

#[test]
fn save_matches_ipvsadm() {
    assert_eq!(
        list::save(&kernel_table()),
        include_str!("fixtures/ipvsadm-Sn.txt")
    );
}

#[test]
fn list_matches_ipvsadm() {
    assert_eq!(listing(numeric()), include_str!("fixtures/ipvsadm-Ln.txt"));
}

#[test]
fn list_variants_match_ipvsadm() {
    let cases = [
        (
            ListFormat {
                thresholds: true,
                ..numeric()
            },
            include_str!("fixtures/ipvsadm-Ln--thresholds.txt"),
        ),
        (
            ListFormat {
                tun_info: true,
                ..numeric()
            },
            include_str!("fixtures/ipvsadm-Ln--tun-info.txt"),
        ),
        (
            ListFormat {
                persistent_conn: true,
                ..numeric()
            },
            include_str!("fixtures/ipvsadm-Ln--persistent-conn.txt"),
        ),
        (
            ListFormat {
                stats: true,
                ..numeric()
            },
            include_str!("fixtures/ipvsadm-Ln--stats.txt"),
        ),
    ];
    for (format, expected) in cases {
        assert_eq!(listing(format), expected, "{format:?}");
    }
}
