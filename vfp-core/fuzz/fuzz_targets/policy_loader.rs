//! Fuzz the policy loader: any text either loads or yields a located error
//! (never a panic), and a policy that loads can be summarised and
//! evaluated in both directions.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vfp_core::engine::evaluate;
use vfp_core::flow::key::{proto, v4_mapped, Direction, FlowKey};
use vfp_core::parse::Parsed;
use vfp_core::policy::load_str;
use vfp_core::topology::{Role, VportInfo};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let vports = [VportInfo::new("vm", Role::Vm, 1), VportInfo::new("wan", Role::Net, 0)];
    match load_str(text, "fuzz.toml", &vports) {
        Err(e) => {
            assert!(e.line >= 1 && e.col >= 1, "{e}");
            assert!(!e.field.is_empty(), "{e}");
            assert!(e.line <= text.lines().count().max(1) + 1, "{e}");
        }
        Ok(p) => {
            let _ = p.summary();
            for (vport, dir) in [(0, Direction::Outbound), (1, Direction::Inbound)] {
                let key = FlowKey {
                    src: v4_mapped([10, 1, 0, 4]),
                    dst: v4_mapped([198, 51, 100, 7]),
                    src_port: 40000,
                    dst_port: 443,
                    proto: proto::TCP,
                    vport,
                    dir,
                    ..FlowKey::default()
                };
                let parsed = Parsed {
                    key,
                    tcp_flags: 0x02,
                    ..Parsed::default()
                };
                let _ = evaluate(&p, &parsed, &key);
            }
        }
    }
});
