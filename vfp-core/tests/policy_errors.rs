//! Every load error names file, line, column and field path, and loading is
//! all or nothing.

use vfp_core::policy::{load_file, load_str, PolicyError};
use vfp_core::topology::{Role, VportInfo};

fn vports() -> Vec<VportInfo> {
    vec![VportInfo::new("vm", Role::Vm, 1), VportInfo::new("wan", Role::Net, 0)]
}

fn load(text: &str) -> Result<vfp_core::policy::Policy, PolicyError> {
    load_str(text, "test.toml", &vports())
}

/// Lines 1-7: one layer, one group, the head of one rule. Test lines start
/// at line 8.
const HEAD: &str = "[[layers]]\nname = \"acl\"\ndefault = \"deny\"\n[[layers.groups]]\n\
                    [[layers.groups.rules]]\nid = 1\npriority = 1\n";
const RULE: &str = "layers[0].groups[0].rules[0]";

#[track_caller]
fn expect(text: &str, line: usize, field: &str, msg: &str) -> PolicyError {
    let e = match load(text) {
        Ok(_) => panic!("loaded but expected `{msg}`:\n{text}"),
        Err(e) => e,
    };
    let shown = e.to_string();
    assert_eq!(e.origin, "test.toml", "{shown}");
    assert_eq!((e.line, e.field.as_str()), (line, field), "{shown}");
    assert!(e.message.contains(msg), "wanted {msg:?} in: {shown}");
    assert!(e.col >= 1);
    assert_eq!(
        shown,
        format!("test.toml:{}:{}: field `{}`: {}", e.line, e.col, e.field, e.message)
    );
    e
}

/// The rule head plus `body` (starting at line 8).
#[track_caller]
fn rule_err(body: &str, line: usize, field: &str, msg: &str) -> PolicyError {
    let field = if field.is_empty() {
        RULE.to_string()
    } else {
        format!("{RULE}.{field}")
    };
    expect(&format!("{HEAD}{body}\n"), line, &field, msg)
}

#[test]
fn the_base_rule_loads() {
    load(&format!("{HEAD}action = \"allow\"\n")).unwrap();
}

#[test]
fn display_matches_the_documented_format() {
    let e = rule_err(
        "action = \"allow\"\nsrc = [\"10.0.0.300/24\"]",
        9,
        "src",
        "invalid prefix 10.0.0.300/24",
    );
    assert!(e
        .to_string()
        .starts_with("test.toml:9:8: field `layers[0].groups[0].rules[0].src`: invalid prefix 10.0.0.300/24"));
}

#[test]
fn syntax_and_shape_errors() {
    rule_err("action = \"allow\"\nfoo = 1", 9, "foo", "unknown field `foo`");
    rule_err("action = \"allow", 8, "action", "");
    rule_err("action = \"allow\"\nid = 2", 9, "id", "duplicate key");
    rule_err(
        "action = \"allow\"\nterminating = \"yes\"",
        9,
        "terminating",
        "invalid type",
    );
    expect(
        "[[layers]]\nname = \"a\"\ndefault = \"deny\"\nid = -1\n",
        4,
        "layers[0].id",
        "unknown field",
    );
    expect(
        &HEAD.replace("id = 1", "id = -1").to_string(),
        6,
        &format!("{RULE}.id"),
        "invalid value",
    );
    // A missing required field points at the table that lacks it.
    expect(
        &HEAD.replace("priority = 1\n", "action = \"allow\"\n"),
        5,
        &format!("{RULE}.priority"),
        "missing field `priority`",
    );
    expect(
        "[[layers]]\nname = \"acl\"\n",
        1,
        "layers[0].default",
        "missing field `default`",
    );
    expect(
        "[timeouts]\nudp = 60\nbogus = 1\n[[layers]]\nname='a'\ndefault='allow'\n",
        3,
        "timeouts.bogus",
        "unknown field",
    );
}

#[test]
fn policy_and_layer_errors() {
    expect("", 1, "layers", "at least one layer");
    expect(
        "# only a comment\n[timeouts]\nudp = 5\n",
        1,
        "layers",
        "at least one layer",
    );
    expect(
        "[[layers]]\nname = \"acl\"\ndefault = \"allow\"\n[[layers]]\nname = \"acl\"\ndefault = \"deny\"\n",
        5,
        "layers[1].name",
        "duplicate layer name \"acl\"",
    );
    expect(
        "[[layers]]\nname = \"acl\"\ndefault = \"maybe\"\n",
        3,
        "layers[0].default",
        "unknown default",
    );
    expect(
        "[[layers]]\nname = \"\"\ndefault = \"deny\"\n",
        2,
        "layers[0].name",
        "empty",
    );
    expect(
        "[timeouts]\ntcp_established = 0\n[[layers]]\nname='a'\ndefault='allow'\n",
        2,
        "timeouts.tcp_established",
        "out of range",
    );
    // Duplicate rule ids are per layer, across groups.
    let text = format!("{HEAD}action = \"allow\"\n[[layers.groups]]\n[[layers.groups.rules]]\nid = 1\npriority = 5\naction = \"deny\"\n");
    expect(&text, 11, "layers[0].groups[1].rules[0].id", "duplicate rule id 1");
    // ...but the same id in another layer is fine.
    let ok = format!("{HEAD}action = \"allow\"\n{}", HEAD.replace("\"acl\"", "\"acl2\""));
    load(&format!("{ok}action = \"allow\"\n")).unwrap();
}

#[test]
fn condition_errors() {
    let a = "action = \"allow\"\n";
    rule_err(&format!("{a}src = [\"10.0.0.1/24\"]"), 9, "src", "host bits set");
    rule_err(&format!("{a}dst = [\"10.0.0.0/33\"]"), 9, "dst", "length");
    rule_err(
        &format!("{a}dst = [\"::/0\", \"::/0\"]"),
        9,
        "dst",
        "duplicate prefix ::/0",
    );
    rule_err(
        &format!("{a}src = [\n  \"10.0.0.0/8\",\n  \"10.1.0.0/16\",\n]"),
        11,
        "src",
        "prefix 10.1.0.0/16 overlaps 10.0.0.0/8",
    );
    rule_err(
        &format!("{a}proto = \"tcp\"\ndst_ports = [\"90-80\"]"),
        10,
        "dst_ports",
        "90 > 80",
    );
    rule_err(
        &format!("{a}proto = \"tcp\"\ndst_ports = [70000]"),
        10,
        "dst_ports",
        "0..=65535",
    );
    rule_err(
        &format!("{a}proto = \"udp\"\nsrc_ports = [\"1-70000\"]"),
        10,
        "src_ports",
        "0..=65535",
    );
    rule_err(
        &format!("{a}proto = \"udp\"\nsrc_ports = [\"1-100\", 50]"),
        10,
        "src_ports",
        "overlaps",
    );
    rule_err(
        &format!("{a}proto = \"udp\"\nsrc_ports = [true]"),
        10,
        "src_ports[0]",
        "port number",
    );
    rule_err(&format!("{a}dst_ports = [80]"), 9, "dst_ports", "needs proto");
    rule_err(&format!("{a}proto = \"bogus\""), 9, "proto", "unknown proto \"bogus\"");
    rule_err(&format!("{a}proto = 256"), 9, "proto", "out of range");
    rule_err(
        &format!("{a}vports = [\"vm\", \"nope\"]"),
        9,
        "vports",
        "unknown vport \"nope\"",
    );
    rule_err(&format!("{a}vports = [\"vm\", \"vm\"]"), 9, "vports", "duplicate vport");
    rule_err(&format!("{a}vni = 16777216"), 9, "vni", "VNI 16777216 out of range");
    rule_err(&format!("{a}tcp_flags = \"syn\""), 9, "tcp_flags", "needs proto");
    rule_err(
        &format!("{a}proto = \"tcp\"\ntcp_flags = \"syn,bogus\""),
        10,
        "tcp_flags",
        "unknown TCP flag",
    );
    rule_err(
        &format!("{a}direction = \"sideways\""),
        9,
        "direction",
        "unknown direction",
    );
}

#[test]
fn action_errors() {
    rule_err("action = \"explode\"", 8, "action", "unknown action");
    rule_err("action = \"snat\"", 8, "snat", "action `snat` needs");
    rule_err("action = \"dnat\"", 8, "dnat", "action `dnat` needs");
    rule_err("action = \"encap\"", 8, "encap", "action `encap` needs");
    rule_err("action = \"route\"", 8, "route", "needs `route");
    rule_err("action = \"set_mac\"", 8, "set_mac", "needs `set_mac");
    rule_err(
        "action = \"snat\"\nsnat = { addrs = [], ports = \"1024-2000\" }",
        9,
        "snat.addrs",
        "SNAT pool is empty",
    );
    rule_err(
        "action = \"snat\"\nsnat = { ports = \"1024-2000\" }",
        9,
        "snat.addrs",
        "SNAT pool is empty",
    );
    rule_err(
        "action = \"snat\"\nsnat = { addrs = [\"1.2.3.4\"], ports = \"0-0\" }",
        9,
        "snat.ports",
        "port 0",
    );
    rule_err(
        "action = \"snat\"\nsnat = { addrs = [\"1.2.3.4\"] }",
        9,
        "snat.ports",
        "missing field `ports`",
    );
    rule_err(
        "action = \"snat\"\nsnat = { addrs = [\"::1\"], ports = \"1-2\" }",
        9,
        "snat.addrs",
        "invalid IPv4",
    );
    rule_err(
        "action = \"snat\"\nsnat = { addrs = [\"1.2.3.4\", \"1.2.3.4\"], ports = \"1-2\" }",
        9,
        "snat.addrs",
        "duplicate SNAT address",
    );
    rule_err(
        "action = \"dnat\"\ndnat = { backends = [] }",
        9,
        "dnat.backends",
        "at least one backend",
    );
    rule_err(
        "action = \"dnat\"\ndnat = { backends = [\"10.0.0.1:99999\"] }",
        9,
        "dnat.backends",
        "invalid backend",
    );
    let encap = |k: &str, v: &str| {
        let mut t = "action = \"encap\"\n[layers.groups.rules.encap]\nvni = 1\nouter_src_ip = \"192.0.2.1\"\n\
                     outer_dst_ip = \"192.0.2.2\"\nouter_src_mac = \"02:00:00:00:00:01\"\n\
                     outer_dst_mac = \"02:00:00:00:00:02\""
            .to_string();
        let line = t.lines().position(|l| l.starts_with(&format!("{k} ="))).unwrap() + 8;
        t = t
            .lines()
            .map(|l| {
                if l.starts_with(&format!("{k} =")) {
                    format!("{k} = {v}")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        (t, line)
    };
    for (k, v, msg) in [
        ("vni", "16777216", "VNI 16777216 out of range"),
        ("outer_src_ip", "\"192.0.2.300\"", "invalid IPv4 address"),
        ("outer_dst_ip", "\"2001:db8::1\"", "invalid IPv4 address"),
        ("outer_src_mac", "\"02:00:00:00:00\"", "invalid MAC"),
        ("outer_src_mac", "\"01:00:5e:00:00:01\"", "multicast"),
        ("outer_dst_mac", "\"zz:00:00:00:00:01\"", "invalid MAC"),
    ] {
        let (t, line) = encap(k, v);
        rule_err(&t, line, &format!("encap.{k}"), msg);
    }
    rule_err(
        "action = \"allow\"\ndnat = { backends = [\"1.2.3.4\"] }",
        9,
        "dnat",
        "the action is `allow`",
    );
    rule_err(
        "action = \"deny\"\nroute = \"wan\"",
        9,
        "route",
        "cannot be used with action `deny`",
    );
    rule_err(
        "action = \"count\"\ndec_ttl = true",
        9,
        "dec_ttl",
        "cannot be used with action `count`",
    );
    rule_err(
        "action = \"count\"\nterminating = true",
        9,
        "terminating",
        "never terminating",
    );
    rule_err(
        "action = \"deny\"\nterminating = false",
        9,
        "terminating",
        "always terminating",
    );
    rule_err(
        "action = \"allow\"\nroute = \"nope\"",
        9,
        "route",
        "unknown vport \"nope\"",
    );
    rule_err("action = \"allow\"\nset_mac = {}", 9, "set_mac", "src` and/or `dst");
    rule_err(
        "action = \"allow\"\nset_mac = { dst = \"nope\" }",
        9,
        "set_mac.dst",
        "invalid MAC",
    );
}

#[test]
fn file_errors_name_the_file() {
    let e = load_file(std::path::Path::new("/nonexistent/policy.toml"), &vports()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/nonexistent/policy.toml:1:1: field `(file)`: cannot read"),
        "{e}"
    );

    let dir = std::env::temp_dir().join(format!("vfp-policy-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, b"[[layers]]\nname = \"a\xff\"\n").unwrap();
    let e = load_file(&bad, &vports()).unwrap_err();
    assert_eq!((e.line, e.message.as_str()), (2, "file is not valid UTF-8"), "{e}");

    let good = dir.join("p.toml");
    std::fs::write(&good, format!("{HEAD}src = [\"10.0.0.300/24\"]\naction = \"allow\"\n")).unwrap();
    let e = load_file(&good, &vports()).unwrap_err();
    assert_eq!(e.origin, good.display().to_string());
    assert_eq!((e.line, e.field.as_str()), (8, "layers[0].groups[0].rules[0].src"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A path that is not a regular file is refused before it is opened: a
/// FIFO without a writer would block the reader (the app's control
/// thread) and a device has no length to bound the read by.
#[test]
fn only_regular_files_are_read() {
    let dir = std::env::temp_dir().join(format!("vfp-policy-special-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("fifo.toml");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    for path in [fifo.as_path(), std::path::Path::new("/dev/zero"), dir.as_path()] {
        let e = load_file(path, &vports()).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("(file)", "not a regular file"),
            "{e}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
