//! Unit and property tests of the flow table.

use super::*;
use crate::action::compile::FirstPacket;
use crate::action::transposition::Transposition;
use crate::flow::key::{proto, v4_mapped};
use crate::parse::Parsed;
use proptest::prelude::*;
use std::collections::hash_map::Entry;
use std::collections::HashMap;

fn key(n: u32, port: u16) -> FlowKey {
    FlowKey {
        src: v4_mapped(n.to_be_bytes()),
        dst: v4_mapped([8, 8, 8, 8]),
        src_port: port,
        dst_port: 443,
        proto: proto::TCP,
        ..FlowKey::default()
    }
}

fn pair(fwd: FlowKey) -> FlowPair {
    let first = FirstPacket {
        parsed: Parsed {
            key: fwd,
            ..Parsed::default()
        },
        ..FirstPacket::default()
    };
    FlowPair::new(first, fwd.reversed(1), [Transposition::default(); 2], None, 0, 0)
}

#[test]
fn insert_lookup_remove() {
    let mut t = FlowTable::with_capacity(4, 4);
    let k = key(1, 1000);
    let idx = t.insert_pair(pair(k)).unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(
        t.lookup(&k),
        Some(Lookup::Pair {
            idx,
            side: Side::Forward
        })
    );
    assert_eq!(
        t.lookup(&k.reversed(1)),
        Some(Lookup::Pair {
            idx,
            side: Side::Reverse
        })
    );
    assert_eq!(t.lookup(&k.reversed(2)), None, "vport is part of the key");
    assert_eq!(t.insert_pair(pair(k)), Err(InsertError::Conflict));
    let p = t.remove_pair(idx).unwrap();
    assert_eq!(p.sides[0].key, k);
    assert_eq!(t.lookup(&k), None);
    assert_eq!(t.lookup(&k.reversed(1)), None);
    assert!(t.remove_pair(idx).is_none());
    assert!(t.is_empty());
}

#[test]
fn full_table_refuses_and_slots_are_reused() {
    let mut t = FlowTable::with_capacity(3, 0);
    let idx: Vec<u32> = (0..3).map(|i| t.insert_pair(pair(key(i, 1))).unwrap()).collect();
    assert!(t.is_full());
    assert_eq!(t.insert_pair(pair(key(9, 1))), Err(InsertError::Full));
    t.remove_pair(idx[1]);
    assert_eq!(t.insert_pair(pair(key(9, 1))), Ok(idx[1]));
    assert_eq!(t.slots(), 3);
    assert_eq!(t.iter().count(), 3);
}

#[test]
fn redirects() {
    let mut t = FlowTable::with_capacity(2, 1);
    let k = key(1, 1);
    t.insert_redirect(k, 3).unwrap();
    assert_eq!(t.lookup(&k), Some(Lookup::Redirect { owner: 3 }));
    t.insert_redirect(k, 2).unwrap();
    assert_eq!(t.lookup(&k), Some(Lookup::Redirect { owner: 2 }));
    assert_eq!(t.insert_redirect(key(2, 2), 1), Err(InsertError::Full));
    // A pair may not take a key a redirect holds.
    assert_eq!(t.insert_pair(pair(k)), Err(InsertError::Conflict));
    assert!(!t.remove_redirect(&k, 3), "points elsewhere now");
    assert!(t.remove_redirect(&k, 2));
    assert_eq!(t.lookup(&k), None);
    let idx = t.insert_pair(pair(k)).unwrap();
    assert_eq!(t.insert_redirect(k, 1), Err(InsertError::Conflict));
    assert_eq!(
        t.lookup(&k),
        Some(Lookup::Pair {
            idx,
            side: Side::Forward
        })
    );
    assert_eq!(t.redirect_count(), 0);
}

#[test]
fn rekey_moves_one_side() {
    let mut t = FlowTable::with_capacity(2, 0);
    let k = key(1, 1);
    let idx = t.insert_pair(pair(k)).unwrap();
    let other = t.insert_pair(pair(key(2, 2))).unwrap();
    let new = key(7, 7).reversed(4);
    t.rekey(idx, Side::Reverse, new).unwrap();
    assert_eq!(t.lookup(&k.reversed(1)), None);
    assert_eq!(
        t.lookup(&new),
        Some(Lookup::Pair {
            idx,
            side: Side::Reverse
        })
    );
    assert_eq!(t.pair(idx).unwrap().sides[1].key, new);
    let taken = *t.pair(other).unwrap().key(Side::Forward);
    assert_eq!(t.rekey(idx, Side::Reverse, taken), Err(InsertError::Conflict));
    assert_eq!(
        t.lookup(&new),
        Some(Lookup::Pair {
            idx,
            side: Side::Reverse
        })
    );
    t.remove_pair(idx);
    assert_eq!(t.lookup(&new), None);
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u32),
    Remove(u32),
    Redirect(u32, u8),
    Unredirect(u32, u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u32..40).prop_map(Op::Insert),
        (0u32..40).prop_map(Op::Remove),
        (100u32..120, 0u8..3).prop_map(|(k, o)| Op::Redirect(k, o)),
        (100u32..120, 0u8..3).prop_map(|(k, o)| Op::Unredirect(k, o)),
    ]
}

proptest! {
    /// The table agrees with a plain HashMap model under any sequence of
    /// inserts, removals and redirects, including when full.
    #[test]
    fn matches_model(ops in prop::collection::vec(op(), 1..300)) {
        let mut t = FlowTable::with_capacity(16, 8);
        let mut pairs: HashMap<u32, u32> = HashMap::new(); // key id -> slot
        let mut redirects: HashMap<u32, usize> = HashMap::new();
        for op in ops {
            match op {
                Op::Insert(k) => {
                    let r = t.insert_pair(pair(key(k, 5)));
                    if pairs.len() == 16 {
                        prop_assert_eq!(r, Err(InsertError::Full));
                    } else {
                        match pairs.entry(k) {
                            Entry::Occupied(_) => prop_assert_eq!(r, Err(InsertError::Conflict)),
                            Entry::Vacant(v) => {
                                v.insert(r.unwrap());
                            }
                        }
                    }
                }
                Op::Remove(k) => {
                    if let Some(idx) = pairs.remove(&k) {
                        prop_assert!(t.remove_pair(idx).is_some());
                    }
                }
                Op::Redirect(k, o) => {
                    let r = t.insert_redirect(key(k, 5), usize::from(o));
                    if redirects.contains_key(&k) || redirects.len() < 8 {
                        prop_assert_eq!(r, Ok(()));
                        redirects.insert(k, usize::from(o));
                    } else {
                        prop_assert_eq!(r, Err(InsertError::Full));
                    }
                }
                Op::Unredirect(k, o) => {
                    let expect = redirects.get(&k) == Some(&usize::from(o));
                    prop_assert_eq!(t.remove_redirect(&key(k, 5), usize::from(o)), expect);
                    if expect {
                        redirects.remove(&k);
                    }
                }
            }
            prop_assert_eq!(t.len(), pairs.len());
            prop_assert_eq!(t.redirect_count(), redirects.len());
        }
        for k in 0..40 {
            let want = pairs.get(&k).map(|&idx| Lookup::Pair { idx, side: Side::Forward });
            prop_assert_eq!(t.lookup(&key(k, 5)), want);
            let want = pairs.get(&k).map(|&idx| Lookup::Pair { idx, side: Side::Reverse });
            prop_assert_eq!(t.lookup(&key(k, 5).reversed(1)), want);
        }
        for k in 100..120 {
            let want = redirects.get(&k).map(|&owner| Lookup::Redirect { owner });
            prop_assert_eq!(t.lookup(&key(k, 5)), want);
        }
    }
}

/// `bytes_for` is what an app checks against the host's memory before it
/// creates a table: it must be what the table reserves (its three large
/// regions plus the two free lists), or the check would let through
/// tables that do not fit.
#[test]
fn bytes_for_is_what_the_table_reserves() {
    for (pairs, redirects) in [(1024, 0), (1024, 1024), (5000, 77), (1 << 16, 1 << 16)] {
        let t = FlowTable::with_capacity(pairs, redirects);
        let regions: usize = t.memory().iter().map(|&(_, bytes)| bytes).sum();
        let free_lists = 4 * (t.free.capacity() + t.free_redirects.capacity());
        assert_eq!(
            FlowTable::bytes_for(pairs, redirects),
            regions + free_lists,
            "{pairs} {redirects}"
        );
    }
    assert!(FlowTable::try_with_capacity(1 << 16, 0).is_ok());
}

/// `prefault_until` asks before every 64 Ki slots and stops when told:
/// what lets an app stop a long commit on a signal.
#[test]
fn prefault_until_stops_when_asked() {
    let mut t = FlowTable::with_capacity(3 << 16, 0);
    let mut asked = 0;
    assert!(!t.prefault_until(|| {
        asked += 1;
        asked == 2
    }));
    assert_eq!(asked, 2);
    let mut asked = 0;
    assert!(t.prefault_until(|| {
        asked += 1;
        false
    }));
    assert_eq!(asked, 3);
    assert!(!t.prefault_until(|| true));
    assert!(t.is_empty());
}
