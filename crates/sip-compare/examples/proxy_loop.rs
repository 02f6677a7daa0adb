//! Runs one workload of `benches/parse.rs` in a plain loop, for instruction
//! counts that the load of a shared machine does not move:
//!
//! ```text
//! cargo build --release -p sip-compare --example proxy_loop
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/proxy_loop proxy_read sip invite_sdp 2000
//! ```
//!
//! Run it with 0 iterations too and divide the difference by the count.

#[path = "../benches/parse/workloads.rs"]
#[allow(dead_code)]
mod workloads;

use std::hint::black_box;
use std::process::ExitCode;

use workloads::{MESSAGES, PARSE_ONLY, PROXY_READ};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [workload, parser, message, count] = args.as_slice() else {
        eprintln!(
            "usage: proxy_loop proxy_read|parse_only sip|rsipstack|rsip invite_sdp|ok200_sdp COUNT"
        );
        return ExitCode::FAILURE;
    };
    let Some(raw) = MESSAGES
        .iter()
        .find(|(n, _)| n == message)
        .map(|(_, m)| m())
    else {
        eprintln!("unknown message {message}");
        return ExitCode::FAILURE;
    };
    let Ok(count) = count.parse::<u64>() else {
        eprintln!("COUNT must be a number");
        return ExitCode::FAILURE;
    };
    let table = match workload.as_str() {
        "proxy_read" => PROXY_READ,
        "parse_only" => PARSE_ONLY,
        other => return unknown(other),
    };
    let Some(&(_, work)) = table.iter().find(|(n, _)| n == parser) else {
        return unknown(parser);
    };
    for _ in 0..count {
        work(black_box(&raw));
    }
    ExitCode::SUCCESS
}

fn unknown(what: &str) -> ExitCode {
    eprintln!("unknown {what}");
    ExitCode::FAILURE
}
