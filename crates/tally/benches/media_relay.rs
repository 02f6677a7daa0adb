//! Benchmark (a report, not a test): N concurrent relayed G.711 calls, 50
//! packets/s each way per party, through the relay code `tally serve` runs
//! (`src/media/{ports,relay}.rs`, compiled in here). See
//! bench/media/README.md for the commands and figures.
//!
//! The relay runs alone on one thread (a current-thread tokio runtime);
//! the phones run on another. Reported: packets relayed per second, the
//! relay thread's CPU time per 1,000 streams, and one-way latency p50/p99
//! through the relay and, as the baseline, phone to phone directly (same
//! generator, same sockets): the difference is what the relay adds.
//!
//! Settings (environment): `MEDIA_BENCH_CALLS` (1000), `MEDIA_BENCH_SECS`
//! (10), `MEDIA_BENCH_DIRECT` (1: baseline run without relay).

// The relay's modules, compiled in (the binary has no library target);
// `relay.rs` finds `ports` (and `player`) as `super::…`, here the crate root. What
// the bench does not use (and, under `clippy --all-targets`, their test
// modules) is allowed to be unused here.
#[allow(dead_code, unused_imports)]
#[path = "../src/media/ports.rs"]
mod ports;
#[allow(dead_code, unused_imports)]
#[path = "../src/media/relay.rs"]
mod relay;
// The relay's application mode (IVR prompts, digits) and its prompts.
#[allow(dead_code, unused_imports)]
#[path = "../src/media/player.rs"]
mod player;
#[allow(dead_code, unused_imports)]
#[path = "../src/media/prompts.rs"]
mod prompts;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ports::PortPool;
use relay::{Command, Party, Side, spawn};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// This thread's CPU time (user + system), from /proc/thread-self/stat.
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // Fields after the ")" that ends the command name; utime and stime are
    // fields 14 and 15, i.e. 12th and 13th after it.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    // Clock ticks are 100 Hz on Linux.
    Duration::from_millis(10 * f.iter().sum::<u64>())
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

struct Run {
    received: u64,
    sent: u64,
    latencies_us: Vec<u64>,
    relay_cpu: Duration,
    wall: Duration,
    forwarded_lost: u64,
}

fn run(calls: usize, secs: u64, relayed: bool) -> Run {
    let epoch = Instant::now();
    // Relay thread: its own runtime, reporting its CPU time at the end.
    let (addr_tx, addr_rx) = std::sync::mpsc::channel::<Vec<[SocketAddr; 2]>>();
    let (phones_tx, phones_rx) = std::sync::mpsc::channel::<Vec<[SocketAddr; 2]>>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let relay_thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            if !relayed {
                let _ = addr_tx.send(Vec::new());
                let _ = stop_rx.await;
                return (Duration::ZERO, 0);
            }
            let pool = PortPool::new(LOOPBACK, 40_000, 49_999);
            let (tx, _rx) = mpsc::unbounded_channel();
            let mut handles = Vec::new();
            let mut addrs = Vec::new();
            for i in 0..calls {
                let pairs = [pool.allocate().unwrap(), pool.allocate().unwrap()];
                let h = spawn(i, pairs, Duration::from_secs(3600), None, tx.clone()).unwrap();
                addrs.push([
                    SocketAddr::new(LOOPBACK, h.port(Side::A)),
                    SocketAddr::new(LOOPBACK, h.port(Side::B)),
                ]);
                handles.push(h);
            }
            let _ = addr_tx.send(addrs);
            let phones = phones_rx.recv().unwrap();
            for (h, p) in handles.iter().zip(&phones) {
                for (side, addr) in [(Side::A, p[0]), (Side::B, p[1])] {
                    h.send(Command::Party(
                        side,
                        Party {
                            rtp: Some(addr),
                            rtcp: None,
                            behind_nat: false,
                            codecs: Vec::new(),
                        },
                    ));
                }
            }
            let cpu0 = thread_cpu();
            let _ = stop_rx.await;
            let cpu = thread_cpu() - cpu0;
            let mut lost = 0;
            for h in handles {
                if let Some(r) = h.stop().await {
                    lost += r.streams[0].lost + r.streams[1].lost;
                }
            }
            (cpu, lost)
        })
    });
    let relay_addrs = addr_rx.recv().unwrap();
    // Phones: 2 per call on another runtime.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = rt.block_on(async move {
        let mut sockets = Vec::new();
        for _ in 0..calls {
            let a = Arc::new(UdpSocket::bind((LOOPBACK, 0)).await.unwrap());
            let b = Arc::new(UdpSocket::bind((LOOPBACK, 0)).await.unwrap());
            sockets.push([a, b]);
        }
        let phone_addrs: Vec<[SocketAddr; 2]> = sockets
            .iter()
            .map(|[a, b]| [a.local_addr().unwrap(), b.local_addr().unwrap()])
            .collect();
        // Where each phone sends: its relay side, or the other phone.
        let dests: Vec<[SocketAddr; 2]> = if relayed {
            relay_addrs.clone()
        } else {
            phone_addrs.iter().map(|[a, b]| [*b, *a]).collect()
        };
        let _ = phones_tx.send(phone_addrs);
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Receivers: one task per phone, latency from the timestamp in the
        // payload.
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut receivers = Vec::new();
        for pair in &sockets {
            for s in pair {
                let s = Arc::clone(s);
                receivers.push(tokio::spawn(async move {
                    let mut buf = [0u8; 2048];
                    let mut lat = Vec::with_capacity(64 * secs as usize);
                    let end = deadline + Duration::from_millis(300);
                    while let Ok(Ok(n)) =
                        tokio::time::timeout_at(end.into(), s.recv(&mut buf)).await
                    {
                        if n >= 20 {
                            let sent = u64::from_be_bytes(buf[12..20].try_into().unwrap());
                            let now = epoch.elapsed().as_nanos() as u64;
                            lat.push(now.saturating_sub(sent));
                        }
                    }
                    lat
                }));
            }
        }
        // Senders: every 20 ms, one packet from every phone, spread over
        // the period in 20 slices so the load is smooth.
        let mut sent = 0u64;
        let mut seq = 0u16;
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        let start = Instant::now();
        let mut slice = 0usize;
        let per_slice = calls.div_ceil(20);
        let mut packet = [0u8; 172];
        packet[0] = 0x80;
        while Instant::now() < deadline {
            tick.tick().await;
            let from = (slice % 20) * per_slice;
            let to = (from + per_slice).min(calls);
            if slice.is_multiple_of(20) {
                seq = seq.wrapping_add(1);
            }
            for i in from..to {
                for side in 0..2 {
                    packet[2..4].copy_from_slice(&seq.to_be_bytes());
                    packet[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
                    packet[8..12].copy_from_slice(&(i as u32 * 2 + side as u32).to_be_bytes());
                    let now = epoch.elapsed().as_nanos() as u64;
                    packet[12..20].copy_from_slice(&now.to_be_bytes());
                    if sockets[i][side]
                        .try_send_to(&packet, dests[i][side])
                        .is_ok()
                    {
                        sent += 1;
                    }
                }
            }
            // 20 slices of 1 ms would be 50 pps only if each tick is 1 ms:
            // pace by wall time instead.
            let elapsed_ms = start.elapsed().as_millis() as usize;
            slice = if elapsed_ms > slice { slice + 1 } else { slice };
        }
        let mut lat = Vec::new();
        for r in receivers {
            lat.extend(r.await.unwrap());
        }
        (sent, lat, start.elapsed())
    });
    let _ = stop_tx.send(());
    let (relay_cpu, forwarded_lost) = relay_thread.join().unwrap();
    let (sent, mut latencies_us, wall) = result;
    latencies_us.sort_unstable();
    Run {
        received: latencies_us.len() as u64,
        sent,
        latencies_us,
        relay_cpu,
        wall,
        forwarded_lost,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is understood.
    let calls = setting("MEDIA_BENCH_CALLS", 1000) as usize;
    let secs = setting("MEDIA_BENCH_SECS", 10);
    let direct = setting("MEDIA_BENCH_DIRECT", 1) == 1;
    let report = |name: &str, r: &Run| {
        let wall = r.wall.as_secs_f64();
        let streams = 2 * calls;
        let cpu = r.relay_cpu.as_secs_f64();
        println!(
            "{name}: {calls} calls ({streams} streams), {wall:.1} s: sent {} pkts ({:.0}/s), received {} ({:.0}/s, {:.2} % missing), latency p50 {:.0} µs p99 {:.0} µs, relay CPU {cpu:.2} s = {:.1} % of a core = {:.1} % per 1,000 streams, RTP loss seen by the relay {}",
            r.sent,
            r.sent as f64 / wall,
            r.received,
            r.received as f64 / wall,
            100.0 * (1.0 - r.received as f64 / r.sent.max(1) as f64),
            percentile(&r.latencies_us, 0.5),
            percentile(&r.latencies_us, 0.99),
            100.0 * cpu / wall,
            100.0 * cpu / wall * 1000.0 / streams as f64,
            r.forwarded_lost,
        );
    };
    if direct {
        let r = run(calls, secs, false);
        report("direct (baseline)", &r);
    }
    let r = run(calls, secs, true);
    report("relayed", &r);
}
