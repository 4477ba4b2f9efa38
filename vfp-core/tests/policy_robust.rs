//! Mangled policy files never panic the loader, and every error they
//! produce is located (line inside the text, a field path). A cheap,
//! always-run cousin of fuzz/fuzz_targets/policy_loader.rs.

use proptest::prelude::*;
use vfp_core::policy::load_str;
use vfp_core::topology::{Role, VportInfo};

fn vports() -> Vec<VportInfo> {
    vec![VportInfo::new("vm", Role::Vm, 1), VportInfo::new("wan", Role::Net, 0)]
}

const EXAMPLE: &str = include_str!("../../examples/acl-snat-vxlan.toml");

fn check(text: &str) {
    if let Err(e) = load_str(text, "m.toml", &vports()) {
        assert!(e.line >= 1 && e.line <= text.lines().count() + 1, "{e}");
        assert!(e.col >= 1 && !e.field.is_empty(), "{e}");
    }
}

#[test]
fn every_truncation_loads_or_fails_located() {
    for (i, _) in EXAMPLE.char_indices().step_by(5) {
        check(&EXAMPLE[..i]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn byte_edits_load_or_fail_located(edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4)) {
        let mut bytes = EXAMPLE.as_bytes().to_vec();
        for (at, b) in edits {
            let at = at % bytes.len();
            // Printable ASCII plus the structural characters TOML cares about.
            const ALPHABET: &[u8] = b" =[]{}\"'#,.\n0123456789abcdefxyz-:/";
            bytes[at] = ALPHABET[usize::from(b) % ALPHABET.len()];
        }
        if let Ok(text) = String::from_utf8(bytes) {
            check(&text);
        }
    }
}
