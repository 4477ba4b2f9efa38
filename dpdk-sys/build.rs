//! Generates Rust bindings to the system DPDK at build time.
//!
//! DPDK is found with pkg-config (`libdpdk`, 22.11 or newer). Its fast-path
//! functions (`rte_eth_rx_burst`, `rte_pktmbuf_free`, ...) are `static
//! inline`, so bindgen's `wrap_static_fns` emits a C file of non-inline
//! wrappers that we compile here with DPDK's own cflags.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=shim.c");

    let lib = pkg_config::Config::new()
        .atleast_version("22.11")
        .probe("libdpdk")
        .unwrap_or_else(|e| {
            panic!(
                "DPDK not found by pkg-config (libdpdk >= 22.11): {e}\n\
                 Install it with scripts/setup.sh (Debian: dpdk-dev libdpdk-dev)."
            )
        });

    // pkg-config's cflags carry `-include rte_config.h -march=...`; bindgen
    // and the C shim need exactly the same flags.
    let cflags_out = std::process::Command::new("pkg-config")
        .args(["--cflags", "libdpdk"])
        .output()
        .expect("pkg-config --cflags libdpdk");
    let cflags: Vec<String> = String::from_utf8_lossy(&cflags_out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect();

    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let shim_c = out.join("static_fns.c");

    let bindings = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(&cflags)
        .allowlist_function("rte_eal_.*")
        .allowlist_function("rte_eth_.*")
        .allowlist_function("rte_pktmbuf_.*")
        .allowlist_function("rte_mbuf_.*")
        .allowlist_function("rte_mempool_.*")
        .allowlist_function("rte_lcore_.*")
        .allowlist_function("rte_get_.*")
        .allowlist_function("rte_socket_id")
        .allowlist_function("rte_errno_get")
        .allowlist_function("per_lcore__rte_errno")
        .allowlist_function("rte_strerror")
        .allowlist_function("rte_dev_.*")
        .allowlist_function("rte_telemetry_.*")
        .allowlist_function("rte_tel_data_.*")
        .allowlist_function("rte_rdtsc")
        .allowlist_function("rte_pause")
        .allowlist_function("rte_prefetch0")
        .allowlist_function("rte_version")
        .allowlist_function("rte_set_application_usage_hook")
        .allowlist_function("rte_log_set_global_level")
        .allowlist_function("rte_openlog_stream")
        .allowlist_function("rte_delay_us_sleep")
        .allowlist_var("RTE_.*")
        .allowlist_var("per_lcore__rte_errno")
        .allowlist_type("rte_eth_.*")
        // Protocol structs bindgen cannot lay out (E0588: packed + aligned).
        .opaque_type("rte_l2tpv2_.*")
        .opaque_type("rte_gtp_.*")
        .opaque_type("rte_arp_hdr")
        .opaque_type("rte_arp_ipv4")
        .derive_debug(false)
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .prepend_enum_name(false)
        .wrap_static_fns(true)
        .wrap_static_fns_path(&shim_c)
        .generate()
        .expect("bindgen failed over the DPDK headers");
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("write bindings.rs");

    // The generated C file includes wrapper.h by absolute path.
    let mut build = cc::Build::new();
    build.file(&shim_c).file("shim.c").include(env::current_dir().unwrap());
    for f in &cflags {
        build.flag(f);
    }
    build.opt_level(3).warnings(false).compile("dpdk_static_fns");

    // The shim references every DPDK library; link them all and keep them
    // (DPDK registers drivers and buses from constructors).
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    for l in &lib.libs {
        println!("cargo:rustc-link-lib={l}");
    }
    for p in &lib.link_paths {
        println!("cargo:rustc-link-search=native={}", p.display());
    }
}
