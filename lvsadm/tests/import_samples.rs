//! `lvsadm import` against the configurations operators actually have: every keepalived
//! sample the Debian package ships, ldirectord's example and a save captured from ipvsadm on a
//! real 6.1 kernel (UML). Each result must pass lvs-config's own parser.

use lvsadm::import;

use std::path::{Path, PathBuf};

use import::{Source, import};

fn fixtures(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/import-fixtures")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

fn check(source: Source, path: &Path) -> import::Imported {
    let imported = import(source, path, false)
        .unwrap_or_else(|e| panic!("{} does not import: {e}", path.display()));
    if let Err(e) = lvs_config::parse(&imported.toml, "imported") {
        panic!(
            "{}: output does not validate:\n{e}\n{}",
            path.display(),
            imported.toml
        );
    }
    if std::env::var_os("SHOW_IMPORT").is_some() {
        println!("===== {}\n{}", path.display(), imported.toml);
        for u in &imported.unsupported {
            println!("  ! {u}");
        }
    }
    imported
}

#[test]
fn every_keepalived_sample_imports_and_validates() {
    let files = fixtures("keepalived-samples");
    assert!(files.len() >= 25, "the Debian samples are all there");
    for path in files {
        check(Source::Keepalived, &path);
    }
}

#[test]
fn ldirectord_configs_import_and_validate() {
    for path in fixtures("ldirectord") {
        check(Source::Ldirectord, &path);
    }
}

#[test]
fn ipvsadm_saves_import_and_validate() {
    for path in fixtures("ipvsadm") {
        check(Source::Ipvsadm, &path);
    }
}
