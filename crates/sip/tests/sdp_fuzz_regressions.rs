//! Replays every input the SDP fuzzer ever found a problem with
//! (`tests/fuzz_regressions/sdp/`): parsing must not panic, and a body that
//! parses must have a stable normal form, as the fuzz target checks.

use std::fs;
use std::path::Path;

use sip::sdp::SessionDescription;

#[test]
fn fuzz_regressions_parse_without_panic_and_are_idempotent() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions/sdp");
    let mut count = 0;
    for entry in fs::read_dir(&dir).expect("regression directory exists") {
        let path = entry.expect("directory entry").path();
        if !path.is_file() || path.extension().is_some_and(|ext| ext == "md") {
            continue;
        }
        let data = fs::read(&path).expect("regression input is readable");
        count += 1;
        let Ok(sdp) = SessionDescription::parse(&data) else {
            continue;
        };
        let first = sdp.to_bytes();
        let again = SessionDescription::parse(&first)
            .unwrap_or_else(|error| panic!("{}: reparse failed: {error}", path.display()));
        assert_eq!(first, again.to_bytes(), "{}", path.display());
        assert_eq!(sdp, again, "{}", path.display());
    }
    assert!(count > 0, "no regression inputs in {}", dir.display());
}
