//! Start-up steps before any worker runs: vports from the command line
//! and the probed devices, the mempool size, and bringing a path's device
//! up (queues, RSS, MAC and MTU shared with its sibling path).

use crate::args::VportSpec;
use crate::dpdk::{Mempool, Port};
use crate::vport::{pair_peer, PathDev, PathState, SwitchMode, Vport};
use vfp_core::topology::Role;

/// Vports one instance serves (two counter slots each, see `plan::path_slot`).
pub const MAX_VPORTS: usize = crate::stats::MAX_PATHS / 2;

/// Vports from `--vport` specs, or one per probed port when none given.
pub fn build_vports(specs: &[VportSpec], vdevs: &[(String, String)]) -> Result<Vec<Vport>, String> {
    let ports = Port::all();
    for (name, _) in vdevs {
        if Port::by_name(name).is_none() {
            return Err(format!(
                "device `{name}` given with --vdev did not come up (see the EAL/PMD messages above)"
            ));
        }
    }
    let devargs = |name: &str| vdevs.iter().find(|(n, _)| n == name).map(|(_, a)| a.clone());
    let path = |device: &str| -> Result<PathDev, String> {
        let port = Port::by_name(device).ok_or_else(|| {
            let known: Vec<String> = ports.iter().map(|p| p.name()).collect();
            format!(
                "device `{device}` is not known to the EAL (probed: {}); declare it with --vdev or -a",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )
        })?;
        Ok(PathDev {
            device: device.to_string(),
            devargs: devargs(device),
            port: Some(port),
            state: PathState::Up,
            rx_queues: 0,
            tx_queues: 0,
            rss: false,
            tx_ipv4_csum: false,
            health: Default::default(),
            device_drops: Default::default(),
            events_from: 0,
        })
    };
    if specs.is_empty() {
        if ports.is_empty() {
            return Err("no DPDK ports: declare devices with --vdev or -a (e.g. --no-pci --vdev net_null0)".into());
        }
        let n = ports.len();
        if n > MAX_VPORTS {
            return Err(format!("{n} ports probed; at most {MAX_VPORTS} are supported"));
        }
        return ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Ok(Vport {
                    name: format!("port{}", p.0),
                    role: if i.is_multiple_of(2) { Role::Vm } else { Role::Net },
                    peer: pair_peer(i, n),
                    fast: Some(path(&p.name())?),
                    soft: None,
                    active: None,
                    mode: SwitchMode::Auto,
                })
            })
            .collect();
    }
    if specs.len() > MAX_VPORTS {
        return Err(format!(
            "{} vports declared; at most {MAX_VPORTS} are supported",
            specs.len()
        ));
    }
    let mut seen_dev: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        if specs[..i].iter().any(|o| o.name == s.name) {
            return Err(format!("vport `{}` declared twice", s.name));
        }
        for d in [&s.fast, &s.soft].into_iter().flatten() {
            if seen_dev.contains(&d.as_str()) {
                return Err(format!("device `{d}` is named by more than one vport path"));
            }
            seen_dev.push(d);
        }
        out.push(Vport {
            name: s.name.clone(),
            role: s.role,
            peer: pair_peer(i, specs.len()),
            fast: s.fast.as_deref().map(path).transpose()?,
            soft: s.soft.as_deref().map(path).transpose()?,
            active: None,
            mode: SwitchMode::Auto,
        });
    }
    for p in &ports {
        let name = p.name();
        if !seen_dev.contains(&name.as_str()) {
            log::warn!("port {} ({name}) is not used by any vport; left unconfigured", p.0);
        }
    }
    Ok(out)
}

/// Mbufs needed: every descriptor of every ring, each worker's bursts
/// and cache, the hand-off queues, and slack.
pub fn pool_size(vports: &[Vport], queues: u16, nb_desc: u16, workers: usize) -> u32 {
    let paths = vports
        .iter()
        .map(|v| v.fast.is_some() as u32 + v.soft.is_some() as u32)
        .sum::<u32>();
    let rings = paths * queues as u32 * nb_desc as u32 * 2;
    let per_worker = (crate::dpdk::BURST_SIZE as u32) * (vports.len() as u32 + 4) + 512;
    let handoff = workers as u32 * crate::handoff::INBOX_CAPACITY as u32;
    let n = (rings + workers as u32 * per_worker + handoff + 4096).max(8192);
    // A power of two minus one is the mempool's most compact size.
    n.next_power_of_two() - 1
}

/// Configures, starts and (re)describes `dev`'s port.
pub fn bring_up(dev: &mut PathDev, queues: u16, nb_desc: u16, pool: &Mempool, socket: i32) -> Result<(), String> {
    let port = dev
        .port
        .ok_or_else(|| format!("device {} is not present", dev.device))?;
    let s = port.setup(queues, nb_desc, pool, socket)?;
    dev.rx_queues = s.rx_queues;
    dev.tx_queues = s.tx_queues;
    dev.rss = s.rss;
    dev.tx_ipv4_csum = s.tx_ipv4_csum;
    if s.rx_queues < queues || s.tx_queues < queues {
        log::info!(
            "{}: device offers {} rx / {} tx queue(s), {} wanted",
            dev.device,
            s.rx_queues,
            s.tx_queues,
            queues
        );
    }
    match (&s.rss_note, s.rss) {
        (None, true) => log::info!("{}: RSS over IP/TCP/UDP with a symmetric key", dev.device),
        (Some(n), true) => log::info!("{}: RSS on, {n}", dev.device),
        (Some(n), false) => log::info!("{}: no RSS ({n}); flows are steered in software", dev.device),
        (None, false) => {}
    }
    dev.state = if port.link().up {
        PathState::Up
    } else {
        PathState::LinkDown
    };
    Ok(())
}

/// Gives the soft path the fast path's MAC and MTU, as Azure does with the
/// synthetic NIC, so the vport looks the same on either path.
pub fn unify_identity(v: &Vport) {
    let (Some(f), Some(s)) = (&v.fast, &v.soft) else { return };
    let (Some(fp), Some(sp)) = (f.port, s.port) else { return };
    let mac = fp.mac();
    if sp.mac() != mac {
        if let Err(e) = sp.set_mac(mac) {
            log::warn!("vport {}: soft path keeps its own MAC ({e})", v.name);
        }
    }
    if let (Some(fm), Some(sm)) = (fp.mtu(), sp.mtu()) {
        if fm != sm {
            if let Err(e) = sp.set_mtu(fm) {
                log::warn!("vport {}: soft path MTU {sm} differs from fast {fm} ({e})", v.name);
            }
        }
    }
}
