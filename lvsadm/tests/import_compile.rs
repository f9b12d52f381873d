#![allow(dead_code)]
#[path = "../src/import/mod.rs"]
mod import;
