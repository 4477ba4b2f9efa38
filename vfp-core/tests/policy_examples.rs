//! Every policy file shipped in examples/ loads against the vports the
//! examples are written for ("vm" and "wan"), and the generated benchmark
//! policy matches its generator.

use std::path::PathBuf;

use vfp_core::policy::{load_file, Policy};
use vfp_core::topology::{Role, VportInfo};

fn vports() -> Vec<VportInfo> {
    vec![VportInfo::new("vm", Role::Vm, 1), VportInfo::new("wan", Role::Net, 0)]
}

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn load(name: &str) -> Policy {
    let path = examples_dir().join(name);
    load_file(&path, &vports()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn all_example_policies_load() {
    let mut n = 0;
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let p = load_file(&path, &vports()).unwrap_or_else(|e| panic!("{e}"));
            assert!(p.rule_count() > 0 || p.layers().len() == 1, "{}", path.display());
            assert_eq!(p.origin(), path.display().to_string());
            // The summary serialises (the control socket sends it as JSON).
            let s = p.summary();
            assert_eq!(s.rule_count, p.rule_count());
            n += 1;
        }
    }
    assert!(n >= 4, "expected the shipped examples, found {n}");
}

#[test]
fn shipped_examples_have_the_expected_shape() {
    let p = load("acl-snat-vxlan.toml");
    let names: Vec<_> = p.layers().iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["acl", "nat", "vnet"]);
    assert_eq!(p.timeouts.tcp_established, 240_000_000_000);

    let p = load("dnat-lb.toml");
    assert_eq!(p.layers().len(), 2);

    let p = load("allow-all.toml");
    assert_eq!(p.rule_count(), 0);

    let p = load("bench-1000-rules.toml");
    assert_eq!(p.layers()[0].rules.len(), 1001);
    assert_eq!(p.rule_count(), 1001 + 1 + 2);
}

#[test]
fn bench_policy_is_the_generators_output() {
    let script = examples_dir().join("../scripts/gen-bench-policy.py");
    let Ok(out) = std::process::Command::new("python3").arg(&script).output() else {
        eprintln!("python3 not available; skipping");
        return;
    };
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let committed = std::fs::read(examples_dir().join("bench-1000-rules.toml")).unwrap();
    assert!(
        out.stdout == committed,
        "examples/bench-1000-rules.toml is stale: rerun the generator"
    );
}

#[test]
fn the_documented_example_loads() {
    let doc = std::fs::read_to_string(examples_dir().join("../docs/policy.md")).unwrap();
    let start = doc.find("```toml\n").expect("a toml block in docs/policy.md") + 8;
    let len = doc[start..].find("```").unwrap();
    let p = vfp_core::policy::load_str(&doc[start..start + len], "docs/policy.md", &vports())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.layers().len(), 3);
}
