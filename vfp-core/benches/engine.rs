//! Criterion benchmarks of the engine without DPDK:
//! - `hit/N`: one established-flow packet (parse + lookup + SNAT rewrite +
//!   VXLAN encap) with N flows in the table, flows visited round-robin;
//! - `new_flow`: one first packet through the 1,000-rule bench policy
//!   (slow path + SNAT port claim + pair compile + insert);
//! - `index/*/N`: bursts of 32 lookups of present keys among N, in the
//!   cuckoo `FlowIndex` (with and without prefetching the burst first) and
//!   in hashbrown's `HashTable<u32>`; keys live in a slab the `eq` closure
//!   reads, as in the flow table.
//!
//! Each iteration first copies the 60-byte frame into its buffer (the
//! rewrite is in place), so the figures include that copy.
//!
//!   cargo bench -p vfp-core --bench engine

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;
use std::sync::Arc;
use vfp_core::action::nat::NatPorts;
use vfp_core::flow::index::FlowIndex;
use vfp_core::frame::Frame;
use vfp_core::parse::parse;
use vfp_core::policy::{load_str, Policy};
use vfp_core::shard::{Shard, ShardConfig, Verdict};
use vfp_core::topology::{Role, VportInfo};

const HEADROOM: usize = 128;

fn vports() -> Vec<VportInfo> {
    vec![
        VportInfo {
            name: "vm".into(),
            role: Role::Vm,
            peer: 1,
        },
        VportInfo {
            name: "wan".into(),
            role: Role::Net,
            peer: 0,
        },
    ]
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
    Shard::new(cfg, policy.clone(), nat)
}

/// Outbound UDP, 60 bytes, flow `f` (10.1.x.y:sport -> 198.51.100.z:4000).
fn frame(f: u32) -> Vec<u8> {
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
    p.resize(60, 0);
    p
}

/// Parses and processes `pkt` (arriving on the vm vport) in `buf`.
#[inline]
fn run(shard: &mut Shard, buf: &mut [u8], pkt: &[u8], now: u64) -> Verdict {
    buf[HEADROOM..HEADROOM + pkt.len()].copy_from_slice(pkt);
    let mut fr = Frame::new(buf, HEADROOM, pkt.len()).expect("room");
    let mut p = match parse(fr.data()) {
        Ok(p) => p,
        Err(_) => return Verdict::Drop(vfp_core::shard::DropReason::ParseMalformed),
    };
    p.key.vport = 0;
    p.key.dir = Role::Vm.direction();
    shard.process(&mut fr, &p, now, false)
}

fn hits(c: &mut Criterion) {
    let policy = bench_policy();
    let mut g = c.benchmark_group("hit");
    g.throughput(Throughput::Elements(1));
    for n in [1u32, 10_000, 1_000_000] {
        let pkts: Vec<Vec<u8>> = (0..n).map(frame).collect();
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

fn new_flows(c: &mut Criterion) {
    let policy = bench_policy();
    const BATCH: u32 = 100_000;
    let pkts: Vec<Vec<u8>> = (0..BATCH).map(frame).collect();
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

/// A well-mixed 64-bit hash (splitmix64's finaliser).
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn index(c: &mut Criterion) {
    const BURST: usize = 32;
    let mut g = c.benchmark_group("index");
    g.throughput(Throughput::Elements(BURST as u64));
    for n in [10_000usize, 1_000_000] {
        // The slab: value v is the slot of key keys[v].
        let keys: Vec<u64> = (0..n as u64).map(|i| i.wrapping_mul(0x9e37_79b9) ^ 0x5555).collect();
        let hash = |k: u64| mix(k);
        let mut cuckoo = FlowIndex::with_capacity(n);
        // Sized as flow::table sizes its hashbrown index (twice the entries).
        let mut table = hashbrown::HashTable::with_capacity(2 * n);
        for (v, &k) in keys.iter().enumerate() {
            cuckoo.insert(hash(k), v as u32).expect("index sized for n");
            table.insert_unique(hash(k), v as u32, |&v| hash(keys[v as usize]));
        }
        // Visit the keys in a scattered order, bursts of 32.
        let order: Vec<u64> = (0..n).map(|i| keys[i * 7919 % n]).collect();
        let bursts: Vec<&[u64]> = order.chunks_exact(BURST).collect();

        let mut i = 0usize;
        g.bench_function(format!("cuckoo/{n}"), |b| {
            b.iter(|| {
                for &k in bursts[i] {
                    black_box(cuckoo.find(hash(k), |v| keys[v as usize] == k));
                }
                i = (i + 1) % bursts.len();
            })
        });
        g.bench_function(format!("cuckoo_prefetch/{n}"), |b| {
            b.iter(|| {
                let hashes: [u64; BURST] = std::array::from_fn(|j| hash(bursts[i][j]));
                for &h in &hashes {
                    cuckoo.prefetch(h);
                }
                for (&h, &k) in hashes.iter().zip(bursts[i]) {
                    black_box(cuckoo.find(h, |v| keys[v as usize] == k));
                }
                i = (i + 1) % bursts.len();
            })
        });
        g.bench_function(format!("hashbrown/{n}"), |b| {
            b.iter(|| {
                for &k in bursts[i] {
                    black_box(table.find(hash(k), |&v| keys[v as usize] == k));
                }
                i = (i + 1) % bursts.len();
            })
        });
    }
    g.finish();
}

criterion_group!(benches, hits, new_flows, index);
criterion_main!(benches);
