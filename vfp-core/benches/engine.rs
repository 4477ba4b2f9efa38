//! Criterion benchmarks of the engine without DPDK:
//! - `hit/N`: one established-flow packet (parse + lookup + SNAT rewrite +
//!   VXLAN encap) with N flows in the table, flows visited round-robin;
//! - `hit_burst/N`: the same per packet, run in bursts of 32 the way the
//!   app's pipeline runs them (parse all, look all up ahead, then
//!   process), so the cache misses of a burst overlap;
//! - `new_flow`: one first packet through the 1,000-rule bench policy
//!   (slow path + SNAT port claim + pair compile + insert).
//!
//! Each iteration first copies the 60-byte frame (in a 64-byte slot) into
//! its buffer (the rewrite is in place), so the figures include that copy.
//!
//!   cargo bench -p vfp-core --bench engine

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;
use std::sync::Arc;
use vfp_core::action::nat::NatPorts;
use vfp_core::frame::Frame;
use vfp_core::parse::{parse_into, Parsed};
use vfp_core::policy::{load_str, Policy};
use vfp_core::shard::{Hint, Shard, ShardConfig, Verdict};
use vfp_core::topology::{Role, VportInfo};

const HEADROOM: usize = 128;

fn vports() -> Vec<VportInfo> {
    vec![VportInfo::new("vm", Role::Vm, 1), VportInfo::new("wan", Role::Net, 0)]
}

/// The committed 1,000-rule policy, with a SNAT pool of 20 addresses
/// (1.29 M ports) so a million flows fit.
fn bench_policy() -> Arc<Policy> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/bench-1000-rules.toml");
    let text = std::fs::read_to_string(path).expect("examples/bench-1000-rules.toml");
    let addrs: Vec<String> = (0..20).map(|i| format!("\"203.0.113.{}\"", 10 + i)).collect();
    let text = text.replace(
        "addrs = [\"203.0.113.10\", \"203.0.113.11\"]",
        &format!("addrs = [{}]", addrs.join(", ")),
    );
    Arc::new(load_str(&text, "bench", &vports()).expect("bench policy loads"))
}

fn shard(policy: &Arc<Policy>, capacity: usize) -> Shard {
    let nat = Arc::new(NatPorts::new());
    nat.register_policy(policy).expect("nat addresses");
    let cfg = ShardConfig {
        id: 0,
        nshards: 1,
        capacity,
    };
    let mut s = Shard::new(cfg, policy.clone(), nat);
    // As the app does: no page faults in the measurement.
    s.prefault();
    s
}

/// Bytes of each frame; stored padded to [`SLOT`] so each iteration's
/// copy is two non-overlapping 32-byte stores, like a NIC's DMA write
/// (an overlapping 60-byte memcpy would make the parser's loads wait on
/// store forwarding, a stall no received packet has).
const LEN: usize = 60;
const SLOT: usize = 64;

/// Outbound UDP, 60 bytes, flow `f` (10.1.x.y:sport -> 198.51.100.z:4000).
fn frame(f: u32) -> [u8; SLOT] {
    let mut p = Vec::with_capacity(60);
    p.extend_from_slice(&[0x02, 0, 0, 0, 0xfe, 0, 0x02, 0, 0, 0, 0x01, 0x04, 0x08, 0x00]);
    let src = [10, 1, (f >> 8) as u8, f as u8];
    let dst = [198, 51, 100, (f >> 16) as u8];
    let mut ip = [0x45, 0, 0, 46, 0, 0, 0, 0, 64, 17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let mut s: u32 = ip.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    ip[10..12].copy_from_slice(&(!(s as u16)).to_be_bytes());
    p.extend_from_slice(&ip);
    let sport = 1024 + (f >> 24) as u16 * 7 + (f % 7) as u16;
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&4000u16.to_be_bytes());
    p.extend_from_slice(&26u16.to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    let mut slot = [0u8; SLOT];
    slot[..p.len()].copy_from_slice(&p);
    slot
}

/// Parses and processes `pkt` (arriving on the vm vport) in `buf`.
#[inline]
fn run(shard: &mut Shard, buf: &mut [u8], pkt: &[u8; SLOT], now: u64) -> Verdict {
    buf[HEADROOM..HEADROOM + SLOT].copy_from_slice(pkt);
    let mut fr = Frame::new(buf, HEADROOM, LEN).expect("room");
    // Parsed in place, as the app does into its burst's descriptors.
    let mut p = Parsed::default();
    if parse_into(fr.data(), &mut p).is_err() {
        return Verdict::Drop(vfp_core::shard::DropReason::ParseMalformed);
    }
    p.key.vport = 0;
    p.key.dir = Role::Vm.direction();
    shard.process(&mut fr, &p, now, false)
}

fn hits(c: &mut Criterion) {
    let policy = bench_policy();
    let mut g = c.benchmark_group("hit");
    g.throughput(Throughput::Elements(1));
    for n in [1u32, 10_000, 1_000_000] {
        let pkts: Vec<[u8; SLOT]> = (0..n).map(frame).collect();
        let mut s = shard(&policy, n as usize + 1024);
        let mut buf = vec![0u8; 256];
        for p in &pkts {
            assert!(matches!(run(&mut s, &mut buf, p, 1), Verdict::Forward { .. }));
        }
        assert_eq!(s.len(), n as usize);
        let mut i = 0usize;
        g.bench_function(format!("{n}_flows"), |b| {
            b.iter(|| {
                let v = run(&mut s, &mut buf, &pkts[i], 2);
                i = if i + 1 == pkts.len() { 0 } else { i + 1 };
                black_box(v)
            })
        });
    }
    g.finish();
}

/// Packets per burst in `hit_burst`, as the app's rx burst.
const BURST: usize = 32;

/// A burst of hits the way the app's pipeline runs one: parse and hash
/// every frame; look every key up ahead; then process each with its
/// hint. Returns how many were forwarded.
fn run_burst(s: &mut Shard, bufs: &mut [[u8; 256]], pkts: &[[u8; SLOT]], parsed: &mut [Parsed], now: u64) -> usize {
    let mut hashes = [0u64; BURST];
    let mut hints = [Hint::NONE; BURST];
    for (i, pkt) in pkts.iter().enumerate() {
        bufs[i][HEADROOM..HEADROOM + SLOT].copy_from_slice(pkt);
        let p = &mut parsed[i];
        let _ = parse_into(&bufs[i][HEADROOM..HEADROOM + LEN], p);
        p.key.vport = 0;
        p.key.dir = Role::Vm.direction();
        hashes[i] = p.key.table_hash();
    }
    for i in 0..pkts.len() {
        hints[i] = s.look_ahead(hashes[i]);
    }
    let mut fwd = 0;
    for i in 0..pkts.len() {
        let mut fr = Frame::new(&mut bufs[i], HEADROOM, LEN).expect("room");
        if let Verdict::Forward { .. } = s.process_hinted(&mut fr, &parsed[i], hashes[i], hints[i], now, false) {
            fwd += 1;
        }
    }
    fwd
}

fn hit_bursts(c: &mut Criterion) {
    let policy = bench_policy();
    let mut g = c.benchmark_group("hit_burst");
    g.throughput(Throughput::Elements(BURST as u64));
    for n in [1u32, 10_000, 1_000_000] {
        // At least one burst's worth of frames; with 1 flow all are equal.
        let pkts: Vec<[u8; SLOT]> = (0..n.max(BURST as u32)).map(|i| frame(i % n)).collect();
        let mut s = shard(&policy, n as usize + 1024);
        let mut buf = vec![0u8; 256];
        for p in &pkts[..n as usize] {
            assert!(matches!(run(&mut s, &mut buf, p, 1), Verdict::Forward { .. }));
        }
        let mut bufs = vec![[0u8; 256]; BURST];
        let mut parsed = vec![Parsed::default(); BURST];
        let bursts = pkts.len() / BURST;
        let mut b_i = 0usize;
        g.bench_function(format!("{n}_flows"), |b| {
            b.iter(|| {
                let burst = &pkts[b_i * BURST..(b_i + 1) * BURST];
                let fwd = run_burst(&mut s, &mut bufs, burst, &mut parsed, 2);
                assert_eq!(fwd, BURST);
                b_i = if b_i + 1 == bursts { 0 } else { b_i + 1 };
                black_box(fwd)
            })
        });
    }
    g.finish();
}

fn new_flows(c: &mut Criterion) {
    let policy = bench_policy();
    const BATCH: u32 = 100_000;
    let pkts: Vec<[u8; SLOT]> = (0..BATCH).map(frame).collect();
    let mut g = c.benchmark_group("new_flow");
    g.throughput(Throughput::Elements(u64::from(BATCH)));
    g.sample_size(10);
    g.bench_function("1000_rules_snat_encap", |b| {
        b.iter_batched(
            || (shard(&policy, BATCH as usize + 1024), vec![0u8; 256]),
            |(mut s, mut buf)| {
                for p in &pkts {
                    black_box(run(&mut s, &mut buf, p, 1));
                }
                assert_eq!(s.len(), BATCH as usize);
                s
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, hits, hit_bursts, new_flows);
criterion_main!(benches);
