//! scripts/vf-bind.sh: usage, `status`, and every refusal, on this machine
//! (no SR-IOV, no IOMMU) and against fake sysfs trees. Nothing here binds
//! a real device: the fake-sysfs runs are `--dry-run` (the script refuses
//! anything else with a fake tree) and the real-sysfs runs all stop at a
//! check before any change.

mod common;
use common::*;
use std::os::unix::fs::symlink;
use std::process::Command;

struct Run {
    code: i32,
    out: String,
    err: String,
}

fn vf_bind(env: &[(&str, &str)], args: &[&str]) -> Run {
    vf_bind_as(None, env, args)
}

fn vf_bind_as(user: Option<&str>, env: &[(&str, &str)], args: &[&str]) -> Run {
    let script = repo_root().join("scripts/vf-bind.sh");
    let mut c = match user {
        Some(uid) => {
            let mut c = Command::new("setpriv");
            c.args([
                &format!("--reuid={uid}"),
                &format!("--regid={uid}"),
                "--clear-groups",
                "bash",
            ]);
            c
        }
        None => Command::new("bash"),
    };
    c.arg(script).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().expect("run vf-bind.sh");
    Run {
        code: o.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&o.stdout).into_owned(),
        err: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

impl Run {
    fn all(&self) -> String {
        format!("exit {}\n--- stdout\n{}--- stderr\n{}", self.code, self.out, self.err)
    }
}

/// A fake sysfs: a PF at 0000:03:00.0 (ice) with a VF at 0000:03:00.2
/// (iavf), a Mellanox VF at 0000:04:00.1, a storage device at 0000:05:00.0.
struct FakeSys {
    dir: Scratch,
}

impl FakeSys {
    fn new(name: &str) -> FakeSys {
        let dir = Scratch::new(name);
        let f = FakeSys { dir };
        for d in [
            "bus/pci/drivers/ice",
            "bus/pci/drivers/iavf",
            "bus/pci/drivers/mlx5_core",
            "kernel/iommu_groups",
        ] {
            std::fs::create_dir_all(f.p(d)).unwrap();
        }
        f.device("0000:03:00.0", "0x020000", Some("ice"), None);
        std::fs::write(f.p("bus/pci/devices/0000:03:00.0/sriov_totalvfs"), "8\n").unwrap();
        std::fs::write(f.p("bus/pci/devices/0000:03:00.0/sriov_numvfs"), "1\n").unwrap();
        f.device("0000:03:00.2", "0x020000", Some("iavf"), Some("0000:03:00.0"));
        f.device("0000:04:00.1", "0x020000", Some("mlx5_core"), Some("0000:04:00.0"));
        f.device("0000:05:00.0", "0x010802", None, None);
        f
    }
    fn p(&self, rel: &str) -> String {
        self.dir.path(rel)
    }
    fn device(&self, pci: &str, class: &str, driver: Option<&str>, pf: Option<&str>) {
        let d = self.p(&format!("bus/pci/devices/{pci}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(format!("{d}/class"), format!("{class}\n")).unwrap();
        if let Some(drv) = driver {
            symlink(format!("../../drivers/{drv}"), format!("{d}/driver")).unwrap();
        }
        if let Some(pf) = pf {
            symlink(format!("../{pf}"), format!("{d}/physfn")).unwrap();
        }
    }
    fn noiommu(&self) {
        std::fs::create_dir_all(self.p("module/vfio/parameters")).unwrap();
        std::fs::write(self.p("module/vfio/parameters/enable_unsafe_noiommu_mode"), "Y\n").unwrap();
    }
    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("VF_BIND_SYSFS".into(), self.p("")),
            ("VF_BIND_STATE".into(), self.p("state")),
        ]
    }
    fn run(&self, args: &[&str]) -> Run {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        vf_bind(&env, args)
    }
}

#[test]
fn help_and_usage_errors() {
    let h = vf_bind(&[], &["--help"]);
    assert_eq!(h.code, 0, "{}", h.all());
    for s in [
        "status",
        "bind PCI",
        "unbind PCI [DRIVER]",
        "enable_unsafe_noiommu_mode",
        "--dry-run",
    ] {
        assert!(h.out.contains(s), "--help lacks {s}\n{}", h.all());
    }
    for (args, msg) in [
        (&[][..], "missing command"),
        (&["frob"][..], "unknown command 'frob'"),
        (&["bind"][..], "bind takes one PCI address"),
        (&["bind", "eth0"][..], "'eth0' is not a PCI address"),
        (&["bind", "0000:03:00.9"][..], "is not a PCI address"),
        (&["status", "--bogus"][..], "unknown option '--bogus'"),
        (&["status", "extra"][..], "status takes no argument"),
    ] {
        let r = vf_bind(&[], args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.all());
        assert!(r.err.contains(msg), "{args:?}: expected `{msg}`\n{}", r.all());
    }
}

#[test]
fn status_works_on_this_machine() {
    let r = vf_bind(&[], &["status"]);
    assert_eq!(r.code, 0, "{}", r.all());
    for s in ["== network devices", "== SR-IOV", "== vfio", "IOMMU:", "vfio-pci:"] {
        assert!(r.out.contains(s), "status lacks {s}\n{}", r.all());
    }
}

#[test]
fn a_device_that_does_not_exist() {
    for (args, pci) in [
        (&["bind", "7f:1f.7"][..], "0000:7f:1f.7"),
        (&["unbind", "0000:7f:1f.6", "iavf"][..], "0000:7f:1f.6"),
    ] {
        let r = vf_bind(&[], args);
        assert_eq!(r.code, 1, "{}", r.all());
        assert!(r.err.contains(&format!("no PCI device {pci}")), "{}", r.all());
    }
}

#[test]
fn bind_and_unbind_need_root() {
    for args in [&["bind", "0000:03:00.2"][..], &["unbind", "0000:03:00.2", "iavf"][..]] {
        let r = vf_bind_as(Some("65534"), &[], args);
        assert_eq!(r.code, 1, "{}", r.all());
        assert!(r.err.contains("must be run as root"), "{}", r.all());
    }
}

#[test]
fn refuses_what_is_not_a_plain_vf() {
    let fs = FakeSys::new("vfb-refuse");
    fs.noiommu();
    for (pci, msg) in [
        ("0000:03:00.0", "is not an SR-IOV VF"),
        ("0000:05:00.0", "is not a network device (class 0x010802)"),
        ("0000:04:00.1", "is a Mellanox VF (mlx5_core)"),
    ] {
        let r = fs.run(&["bind", pci, "--dry-run"]);
        assert_eq!(r.code, 1, "{pci}: {}", r.all());
        assert!(r.err.contains(msg), "{pci}: expected `{msg}`\n{}", r.all());
        assert!(!r.out.contains("would run"), "{}", r.all());
    }
    let r = fs.run(&["bind", "0000:04:00.1", "--dry-run", "--force"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.out.contains("--force --bind=vfio-pci 0000:04:00.1"), "{}", r.all());
}

#[test]
fn no_iommu_is_explained() {
    let fs = FakeSys::new("vfb-iommu");
    let r = fs.run(&["bind", "0000:03:00.2", "--dry-run"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.err.contains("no IOMMU"), "{}", r.all());
    assert!(r.err.contains("enable_unsafe_noiommu_mode=1"), "{}", r.all());
    assert!(r.err.contains("intel_iommu=on"), "{}", r.all());
    assert!(!r.out.contains("would run"), "{}", r.all());
}

#[test]
fn bind_then_unbind_dry_run() {
    let fs = FakeSys::new("vfb-dry");
    fs.noiommu();
    let r = fs.run(&["bind", "03:00.2", "--dry-run"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.out.contains("would run: modprobe vfio-pci"), "{}", r.all());
    assert!(
        r.out.contains("would record: 0000:03:00.2 was bound to iavf"),
        "{}",
        r.all()
    );
    assert!(
        r.out
            .contains("would run: dpdk-devbind.py --bind=vfio-pci 0000:03:00.2"),
        "{}",
        r.all()
    );
    // With IOMMU groups and vfio-pci loaded, no modprobe.
    std::fs::create_dir_all(fs.p("kernel/iommu_groups/7")).unwrap();
    std::fs::create_dir_all(fs.p("bus/pci/drivers/vfio-pci")).unwrap();
    let r = fs.run(&["bind", "0000:03:00.2", "--dry-run"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(!r.out.contains("modprobe"), "{}", r.all());

    // Unbind needs to know where to go back to.
    let r = fs.run(&["unbind", "0000:03:00.2", "--dry-run"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.err.contains("no kernel driver recorded for 0000:03:00.2"),
        "{}",
        r.all()
    );
    // The VF is now on vfio-pci, with its old driver recorded.
    std::fs::remove_file(fs.p("bus/pci/devices/0000:03:00.2/driver")).unwrap();
    symlink("../../drivers/vfio-pci", fs.p("bus/pci/devices/0000:03:00.2/driver")).unwrap();
    std::fs::create_dir_all(fs.p("state")).unwrap();
    std::fs::write(fs.p("state/0000:03:00.2.driver"), "iavf\n").unwrap();
    let r = fs.run(&["bind", "0000:03:00.2", "--dry-run"]);
    assert!(r.out.contains("already bound to vfio-pci"), "{}", r.all());
    let r = fs.run(&["unbind", "0000:03:00.2", "--dry-run"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.out.contains("would run: dpdk-devbind.py --bind=iavf 0000:03:00.2"),
        "{}",
        r.all()
    );
    let r = fs.run(&["unbind", "0000:03:00.2", "ixgbevf", "--dry-run"]);
    assert!(r.out.contains("--bind=ixgbevf 0000:03:00.2"), "{}", r.all());

    let r = fs.run(&["status"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.out.contains("PF 0000:03:00.0 driver=ice VFs 1/8"), "{}", r.all());
    assert!(
        r.out.contains("VF 0000:03:00.2 of 0000:03:00.0 driver=vfio-pci"),
        "{}",
        r.all()
    );
    assert!(r.out.contains("IOMMU: on (1 groups)"), "{}", r.all());
    assert!(r.out.contains("0000:03:00.2 (was iavf)"), "{}", r.all());
}

#[test]
fn a_fake_sysfs_only_allows_dry_runs() {
    let fs = FakeSys::new("vfb-real");
    fs.noiommu();
    let r = fs.run(&["bind", "0000:03:00.2"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.err.contains("only --dry-run is allowed"), "{}", r.all());
}
