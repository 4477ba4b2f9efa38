//! Fuzz the whole parse -> lookup -> act path: arbitrary frames arrive on
//! either vport of the documented example policy (ACL + SNAT + DNAT port
//! forward + VXLAN encap/decap) through one long-lived shard, so later
//! inputs hit flows earlier ones created. Some inputs are looked up ahead
//! (as the app's bursts do), some with the previous input's hash (a hint
//! naming another flow, as a shared index signature gives), and some of
//! those have flows expired between the look-ahead and processing, so
//! stale hints are exercised. Nothing
//! may panic, and a forwarded frame must stay inside its buffer with a
//! sane length.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use std::sync::Arc;
use vfp_core::action::nat::NatPorts;
use vfp_core::frame::Frame;
use vfp_core::parse::parse;
use vfp_core::policy::load_str;
use vfp_core::shard::{Hint, Shard, ShardConfig, Verdict};
use vfp_core::topology::{Role, VportInfo};

const HEADROOM: usize = 128;

fn new_shard() -> Shard {
    let vports = vec![VportInfo::new("vm", Role::Vm, 1), VportInfo::new("wan", Role::Net, 0)];
    let text = include_str!("../../../examples/acl-snat-vxlan.toml");
    let policy = Arc::new(load_str(text, "example", &vports).expect("example policy loads"));
    let nat = Arc::new(NatPorts::new());
    nat.register_policy(&policy).expect("nat addresses");
    Shard::new(
        ShardConfig {
            id: 0,
            nshards: 2,
            capacity: 4096,
        },
        policy,
        nat,
    )
}

thread_local! {
    static SHARD: RefCell<(Shard, u64)> = RefCell::new((new_shard(), 0));
    static LAST_HASH: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, frame)) = data.split_first() else {
        return;
    };
    let vport = u16::from(ctl & 1);
    let may_redirect = ctl & 2 != 0;
    let mut buf = vec![0u8; HEADROOM + frame.len() + 64];
    buf[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
    let total = buf.len();
    let Some(mut fr) = Frame::new(&mut buf, HEADROOM, frame.len()) else {
        return;
    };
    let Ok(mut p) = parse(fr.data()) else { return };
    p.key.vport = vport;
    p.key.dir = if vport == 0 {
        Role::Vm.direction()
    } else {
        Role::Net.direction()
    };
    SHARD.with(|s| {
        let (shard, now) = &mut *s.borrow_mut();
        *now += 1_000_000;
        let hash = p.key.table_hash();
        let last = LAST_HASH.with(|h| h.replace(hash));
        let hint = match ctl & 0x14 {
            0x04 => shard.look_ahead(hash),
            0x14 => shard.look_ahead(last),
            _ => Hint::NONE,
        };
        if ctl & 8 != 0 {
            // Whatever the look-ahead found may be gone now.
            shard.expire(*now + 3_600_000_000_000, 64);
            shard.outbox().clear();
        }
        match shard.process_hinted(&mut fr, &p, hash, hint, *now, may_redirect) {
            Verdict::Forward { vport } => {
                assert!(vport < 2);
                assert!(fr.start() + fr.len() <= total);
                assert!(fr.len() >= 14);
            }
            Verdict::Redirect { owner } => assert!(owner < 2),
            Verdict::Drop(_) => {}
        }
        shard.outbox().clear();
        shard.expire(*now, 16);
    });
});
