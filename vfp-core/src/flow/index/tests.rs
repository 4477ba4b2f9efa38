//! Unit and property tests of the cuckoo index.

use super::*;
use proptest::prelude::*;
use std::collections::HashMap;

/// A well-mixed 64-bit hash of `x` (splitmix64's finaliser).
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A hash with signature `sig` and primary bucket `bucket`.
fn hash(sig: u32, bucket: usize) -> u64 {
    u64::from(sig) << 32 | bucket as u64
}

#[test]
fn bucket_is_one_cache_line() {
    assert_eq!(core::mem::size_of::<Bucket>(), 64);
    assert_eq!(core::mem::align_of::<Bucket>(), 64);
}

/// The signature compare sets exactly the bits of the slots holding the
/// signature, for every pattern of matching slots.
#[test]
fn matching_sets_the_bit_of_each_equal_slot() {
    for pattern in 0..=u8::MAX {
        let mut b = Bucket::EMPTY;
        for i in 0..SLOTS {
            b.sig[i] = if pattern & (1 << i) != 0 {
                0xdead_beef
            } else {
                i as u32 + 1
            };
        }
        assert_eq!(b.matching(0xdead_beef), pattern, "{pattern:08b}");
        assert_eq!(b.matching(EMPTY), 0);
    }
    assert_eq!(Bucket::EMPTY.matching(EMPTY), u8::MAX);
}

#[test]
fn sizing() {
    assert_eq!(FlowIndex::with_capacity(0).buckets(), 1);
    assert_eq!(FlowIndex::with_capacity(6).buckets(), 1);
    assert_eq!(FlowIndex::with_capacity(7).buckets(), 2);
    assert_eq!(FlowIndex::with_capacity(96).buckets(), 16);
    assert_eq!(FlowIndex::with_capacity(97).buckets(), 32);
    let idx = FlowIndex::with_capacity(100);
    assert_eq!(idx.slots(), 32 * 8);
    assert_eq!(format!("{idx:?}"), "FlowIndex { len: 0, buckets: 32, slots: 256 }");
}

#[test]
fn two_buckets_always_differ() {
    let idx = FlowIndex::with_capacity(12);
    for h in (0..1000).map(mix) {
        let p = idx.place(h);
        assert_ne!(p.primary, p.alternate);
        assert_eq!(idx.other_bucket(p.alternate, p.sig), p.primary);
    }
}

#[test]
fn insert_find_remove() {
    let mut idx = FlowIndex::with_capacity(64);
    assert!(idx.is_empty());
    idx.insert(mix(1), 10).unwrap();
    idx.insert(mix(2), 20).unwrap();
    assert_eq!(idx.len(), 2);
    assert_eq!(idx.find(mix(1), |v| v == 10), Some(10));
    assert_eq!(idx.find(mix(2), |v| v == 20), Some(20));
    // The signature matches but the caller's key does not.
    assert_eq!(idx.find(mix(1), |_| false), None);
    assert_eq!(idx.find(mix(3), |_| true), None);

    assert!(!idx.remove(mix(1), 20), "wrong value");
    assert!(!idx.remove(mix(3), 10), "wrong hash");
    assert!(idx.remove(mix(1), 10));
    assert!(!idx.remove(mix(1), 10), "already removed");
    assert_eq!(idx.find(mix(1), |_| true), None);
    assert_eq!(idx.remove_if(mix(2), |v| v == 20), Some(20));
    assert!(idx.is_empty());
}

#[test]
fn any_value_and_zero_signature_are_storable() {
    let mut idx = FlowIndex::with_capacity(16);
    // High half 0: the signature is forced to 1, still found.
    idx.insert(hash(0, 3), u32::MAX).unwrap();
    idx.insert(hash(1, 3), 0).unwrap();
    assert_eq!(idx.find(hash(0, 3), |v| v == u32::MAX), Some(u32::MAX));
    assert_eq!(idx.find(hash(1, 3), |v| v == 0), Some(0));
}

#[test]
fn same_hash_different_keys() {
    let mut idx = FlowIndex::with_capacity(64);
    for v in 0..5 {
        idx.insert(mix(7), v).unwrap();
    }
    for v in 0..5 {
        assert_eq!(idx.find(mix(7), |x| x == v), Some(v));
    }
    assert_eq!(idx.remove_if(mix(7), |x| x == 3), Some(3));
    assert_eq!(idx.find(mix(7), |x| x == 3), None);
    assert_eq!(idx.find(mix(7), |x| x == 4), Some(4));
}

#[test]
fn overflow_goes_to_alternate_bucket() {
    let mut idx = FlowIndex::with_capacity(96);
    // Nine hashes with primary bucket 5: the ninth cannot fit there.
    for sig in 1..=9 {
        idx.insert(hash(sig, 5), sig).unwrap();
    }
    let in_primary = (1..=9).filter(|&sig| idx.bucket(5).val.contains(&sig)).count();
    assert_eq!(in_primary, 8);
    for sig in 1..=9 {
        assert_eq!(idx.find(hash(sig, 5), |v| v == sig), Some(sig));
    }
}

#[test]
fn failed_insert_changes_nothing() {
    // One bucket, then two: every hash has the same one or two buckets, so
    // the index fills exactly and the search has nowhere to go.
    for (cap, slots) in [(1, 8), (12, 16)] {
        let mut idx = FlowIndex::with_capacity(cap);
        let mut n = 0u32;
        while idx.insert(mix(u64::from(n)), n).is_ok() {
            n += 1;
        }
        assert_eq!(n as usize, slots);
        assert_eq!(idx.len(), slots);
        assert_eq!(idx.insert(mix(999), 999), Err(IndexFull));
        for v in 0..n {
            assert_eq!(idx.find(mix(u64::from(v)), |x| x == v), Some(v));
        }
    }
}

#[test]
fn displacement_fills_most_slots() {
    let mut idx = FlowIndex::with_capacity(6 * 1024);
    let mut n = 0u32;
    while idx.insert(mix(u64::from(n)), n).is_ok() {
        n += 1;
    }
    let load = n as f64 / idx.slots() as f64;
    assert!(load > 0.95, "first failure at load {load}");
    for v in 0..n {
        assert_eq!(idx.find(mix(u64::from(v)), |x| x == v), Some(v));
    }
}

/// Fills an index sized for `n` entries, finds them all, removes half.
fn fill(n: u32) {
    let mut idx = FlowIndex::with_capacity(n as usize);
    for v in 0..n {
        assert_eq!(idx.insert(mix(u64::from(v)), v), Ok(()), "insert {v}");
    }
    assert_eq!(idx.len(), n as usize);
    for v in 0..n {
        assert_eq!(idx.find(mix(u64::from(v)), |x| x == v), Some(v));
    }
    for v in (0..n).step_by(2) {
        assert!(idx.remove(mix(u64::from(v)), v));
    }
    for v in 0..n {
        let found = idx.find(mix(u64::from(v)), |x| x == v);
        assert_eq!(found, (v % 2 == 1).then_some(v));
    }
}

#[test]
fn fill_100k() {
    fill(100_000);
}

#[test]
fn fill_at_75_percent() {
    // 6 * 2^14 entries: exactly 75% of 2^14 buckets of 8 slots.
    fill(6 << 14);
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Insert(u8),
    Remove(u8),
    RemoveValue(u8),
    Find(u8),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let key = 0u8..64;
    prop::collection::vec(
        prop_oneof![
            3 => key.clone().prop_map(Op::Insert),
            1 => key.clone().prop_map(Op::Remove),
            1 => key.clone().prop_map(Op::RemoveValue),
            2 => key.prop_map(Op::Find),
        ],
        1..300,
    )
}

/// Runs `ops` on an index sized for `capacity` and on a `HashMap` model;
/// inserts may be refused only if `may_fill`. Values are handed
/// out like slab slots (a counter); `owner[v]` is the key of value `v`,
/// which is what the `eq` closures compare, as a flow table would.
fn check_against_model(ops: &[Op], hash_of: fn(u8) -> u64, capacity: usize, may_fill: bool) {
    let mut idx = FlowIndex::with_capacity(capacity);
    let mut model: HashMap<u8, u32> = HashMap::new();
    let mut owner: Vec<u8> = Vec::new();
    for &op in ops {
        match op {
            Op::Insert(k) => {
                if model.contains_key(&k) {
                    continue;
                }
                let v = owner.len() as u32;
                owner.push(k);
                match idx.insert(hash_of(k), v) {
                    Ok(()) => {
                        model.insert(k, v);
                    }
                    Err(IndexFull) => assert!(may_fill, "insert refused below capacity"),
                }
            }
            Op::Remove(k) => {
                let got = idx.remove_if(hash_of(k), |v| owner[v as usize] == k);
                assert_eq!(got, model.remove(&k));
            }
            Op::RemoveValue(k) => {
                let v = model.remove(&k);
                let removed = idx.remove(hash_of(k), v.unwrap_or(u32::MAX));
                assert_eq!(removed, v.is_some());
            }
            Op::Find(k) => {
                let got = idx.find(hash_of(k), |v| owner[v as usize] == k);
                assert_eq!(got, model.get(&k).copied());
            }
        }
        assert_eq!(idx.len(), model.len());
    }
    for k in 0..64u8 {
        let got = idx.find(hash_of(k), |v| owner[v as usize] == k);
        assert_eq!(got, model.get(&k).copied(), "key {k}");
    }
}

fn mixed_hash(k: u8) -> u64 {
    mix(u64::from(k))
}

/// Few signatures and few primary buckets: many keys share a whole hash,
/// buckets overflow, and displacement runs constantly.
fn clumped_hash(k: u8) -> u64 {
    let h = mix(u64::from(k));
    hash((h >> 32) as u32 % 3, h as usize % 2)
}

proptest! {
    #[test]
    fn matches_model_mixed(ops in ops()) {
        check_against_model(&ops, mixed_hash, 64, false);
    }

    /// 64 keys for 32 slots: the index runs full and displaces on most
    /// inserts.
    #[test]
    fn matches_model_crowded(ops in ops()) {
        check_against_model(&ops, mixed_hash, 24, true);
    }

    #[test]
    fn matches_model_clumped(ops in ops()) {
        check_against_model(&ops, clumped_hash, 64, true);
    }
}

/// The candidate comes from signatures alone: the caller's key is never
/// asked. The value under a signature only one slot holds; when two
/// entries of a bucket share it, their values ORed (a guess the caller's
/// confirmation rejects unless it is one of them), while a find still
/// tells them apart.
#[test]
fn candidate_is_the_signature_match() {
    let mut idx = FlowIndex::with_capacity(64);
    assert_eq!(idx.candidate(hash(7, 3)), None);
    idx.insert(hash(7, 3), 0b0101).unwrap();
    assert_eq!(idx.candidate(hash(7, 3)), Some(0b0101));
    idx.insert(hash(7, 3), 0b0110).unwrap();
    assert_eq!(idx.candidate(hash(7, 3)), Some(0b0111));
    assert_eq!(idx.find(hash(7, 3), |v| v == 0b0110), Some(0b0110));
    assert_eq!(idx.find(hash(7, 3), |v| v == 0b0101), Some(0b0101));
    assert_eq!(idx.candidate(hash(8, 3)), None);
    assert_eq!(idx.candidate(hash(7, 4)), None);
}

/// In a well-filled index (75%, entries in their alternate bucket
/// included) every entry is its own hash's candidate, and a hash never
/// stored has none.
#[test]
fn candidate_finds_entries_in_either_bucket() {
    let n = 6 * 64;
    let mut idx = FlowIndex::with_capacity(n);
    for i in 0..n as u64 {
        idx.insert(mix(i), i as u32).unwrap();
    }
    let in_alternate = (0..n as u64)
        .filter(|&i| {
            let p = idx.place(mix(i));
            let b = idx.bucket(p.primary);
            !(0..SLOTS).any(|s| b.sig[s] == p.sig && b.val[s] == i as u32)
        })
        .count();
    assert!(in_alternate > 0, "no entry was displaced: the test proves nothing");
    for i in 0..n as u64 {
        assert_eq!(idx.candidate(mix(i)), Some(i as u32), "entry {i}");
    }
    for i in n as u64..n as u64 + 1000 {
        assert_eq!(idx.candidate(mix(i)), None, "absent {i}");
    }
}
