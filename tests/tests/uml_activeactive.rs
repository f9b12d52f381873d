//! UML lane: the active-active proof of issue 18 (see [`lvs_tests::activeactive`]).

fn main() -> std::process::ExitCode {
    lvs_tests::uml::main(&lvs_tests::activeactive::CASES)
}
