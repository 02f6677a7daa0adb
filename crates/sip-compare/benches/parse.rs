//! What a proxy pays to look at a message: parse it, then read the top Via
//! branch, the From and To tags, Call-ID, CSeq (number and method) and the
//! Contact URI. The same work with Tally's `sip`, with `rsipstack` (the SIP
//! stack under rustpbx, which parses with its own `rsipstack::sip` module, a
//! fork of `rsip`) and with `rsip`; the workloads are in `parse/workloads.rs`.
//!
//! Before timing, each message goes through all three once and the extracted
//! values must agree, so no parser is timed doing less than the others. (The
//! Contacts carry no `;transport=udp`: rsipstack's Contact parser deletes that
//! parameter, and URI headers, from the URI it returns, so the values would
//! differ; see README.md.)
//!
//! `cargo bench -p sip-compare --bench parse`

#[path = "parse/workloads.rs"]
mod workloads;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

use workloads::{MESSAGES, PARSE_ONLY, PROXY_READ, rsip, rsipstack, tally};

fn benches(c: &mut Criterion) {
    for (name, message) in MESSAGES {
        let raw = message();
        // Same values from all three, or the comparison means nothing.
        let ours = tally(&raw, |r| r.text());
        assert_eq!(
            rsipstack(&raw, |r| r.text()),
            ours,
            "rsipstack disagrees on {name}"
        );
        assert_eq!(rsip(&raw, |r| r.text()), ours, "rsip disagrees on {name}");
        eprintln!("{name}: {} bytes, reads {ours:?}", raw.len());

        let mut g = c.benchmark_group(format!("proxy_read/{name}"));
        for (parser, work) in PROXY_READ {
            g.bench_function(parser, |b| b.iter(|| work(black_box(&raw))));
        }
        g.finish();
        let mut g = c.benchmark_group(format!("parse_only/{name}"));
        for (parser, work) in PARSE_ONLY {
            g.bench_function(parser, |b| b.iter(|| work(black_box(&raw))));
        }
        g.finish();
    }
}

criterion_group!(parse, benches);
criterion_main!(parse);
