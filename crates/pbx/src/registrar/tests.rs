//! Unit tests of the registrar's helpers (the flows are in
//! `crates/pbx/tests/registrar.rs`).

use super::*;

#[test]
fn q_values_are_written_as_rfc_3261_does() {
    assert_eq!(format_q(0), "0");
    assert_eq!(format_q(1), "0.001");
    assert_eq!(format_q(500), "0.5");
    assert_eq!(format_q(750), "0.75");
    assert_eq!(format_q(125), "0.125");
    assert_eq!(format_q(1000), "1");
}

#[test]
fn config_is_normalised() {
    let c = RegistrarConfig {
        default_expires: 10,
        min_expires: 9000,
        max_expires: 0,
        ..RegistrarConfig::default()
    }
    .normalised();
    assert_eq!((c.min_expires, c.default_expires, c.max_expires), (1, 1, 1));
    let c = RegistrarConfig {
        default_expires: 30,
        ..RegistrarConfig::default()
    }
    .normalised();
    assert_eq!(c.default_expires, 60);
}

#[test]
fn to_tags_differ() {
    let mut r = Registrar::new(RegistrarConfig::default(), [1; 32], 42);
    let a = r.next_tag();
    let b = r.next_tag();
    assert_ne!(a, b);
    assert_eq!(a.len(), 16);
}

#[test]
fn reason_details_are_sanitised() {
    assert_eq!(bad_request("a\u{7}b\u{e9}"), "Bad Request (a?b?)");
    assert_eq!(
        bad_request(&"x".repeat(500)).len(),
        "Bad Request ()".len() + 100
    );
}
