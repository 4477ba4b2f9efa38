//! pmd-app: the whole life of the dataplane in plain order, like DPDK's
//! basicfwd/l3fwd: parse options, EAL init, vports, mempool, ports, workers
//! on every lcore (the main lcore too), the supervisor on a control
//! thread, then teardown: workers stop, ports stop and close, every mbuf
//! back in the pool, a final counters table.

use clap::{CommandFactory, Parser};
use crossbeam::channel;
use pmd_app::args::{self, AppArgs};
use pmd_app::commands::{self, AppHandler};
use pmd_app::console::Console;
use pmd_app::control;
use pmd_app::dataplane::{Dataplane, WorkerHandle};
use pmd_app::dpdk::{self, events, Eal, Mempool};
use pmd_app::pipeline::Pipeline;
use pmd_app::report::Snapshot;
use pmd_app::stats::WorkerStats;
use pmd_app::supervisor::Supervisor;
use pmd_app::worker::{Shared, Worker};
use pmd_app::{failsafe, handoff, logging, setup};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vfp_core::action::nat::NatPorts;

fn main() {
    logging::init();
    // A panic aborts (panic = "abort"): the log lines queued before it
    // are written first, then the panic's message.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        logging::flush(logging::AT_EXIT);
        report(info);
    }));
    // std::env::args() would panic on an argument that is not UTF-8.
    let argv: Vec<String> = match std::env::args_os().map(|a| a.into_string()).collect() {
        Ok(v) => v,
        Err(bad) => {
            eprintln!("pmd-app: error: argument {bad:?} is not valid UTF-8");
            std::process::exit(2);
        }
    };
    let (eal_args, app_argv) = args::split_argv(&argv);
    // `pmd-app --version` / `--help` before any `--`: the EAL knows no
    // --version, and its --help shows only its own options.
    if eal_args.iter().skip(1).any(|a| a == "--version" || a == "-V") {
        println!("pmd-app {} ({})", env!("CARGO_PKG_VERSION"), dpdk::version());
        std::process::exit(0);
    }
    dpdk::eal::set_app_usage(format!(
        "pmd-app options (after --):\n{}",
        AppArgs::command().render_help()
    ));
    // `--help` helps wherever it is: clap checks values in order and
    // would report a bad one before it (`-- --final-stats /x/y --help`).
    if app_argv.iter().skip(1).any(|a| a == "--help" || a == "-h") {
        let _ = AppArgs::command().print_help();
        std::process::exit(0);
    }
    // App options are checked before the EAL starts: a typo costs nothing.
    let app = match AppArgs::try_parse_from(&app_argv) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    // exit(3) writes out the queued log lines first (logging::init).
    match run(&eal_args, app) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            // Queued after the lines that led to it; written (bounded)
            // by exit(3), even to a stderr that is not being read.
            logging::error(e);
            std::process::exit(1);
        }
    }
}

fn run(eal_args: &[String], app: AppArgs) -> Result<i32, String> {
    let eal = Eal::init(eal_args).map_err(|e| e.to_string())?;
    log::info!("{}", dpdk::version());
    let lcores = eal.lcores();
    let workers = lcores.len();
    let socket = eal.socket_id();

    let mut vports = setup::build_vports(&app.vports, &args::vdev_args(eal_args))?;
    let queues = app.queues.unwrap_or(workers as u16).max(1);
    let nb_mbufs = app
        .mbufs
        .unwrap_or_else(|| setup::pool_size(&vports, queues, app.nb_desc, workers));
    let pool = Mempool::new("vfp_mbufs", nb_mbufs, 256, app.mbuf_size, socket).map_err(|e| match app.mbufs {
        Some(_) => e,
        // The size nobody asked for is the likelier culprit.
        None => format!(
            "{e}; {nb_mbufs} mbufs is what {queues} queue(s) of {} descriptors on every path need (set --mbufs, \
             or lower --queues or --nb-desc)",
            app.nb_desc
        ),
    })?;
    let pool = Arc::new(pool);
    log::info!("mempool: {} mbufs of {} B", nb_mbufs, app.mbuf_size);

    let (ev_tx, ev_rx) = channel::bounded(1024);
    events::subscribe(ev_tx)?;
    for v in vports.iter_mut() {
        for p in [v.fast.as_mut(), v.soft.as_mut()].into_iter().flatten() {
            setup::bring_up(p, queues, app.nb_desc, &pool, socket)?;
        }
    }
    // Some PMDs (tap, virtio) fill their rx rings from the pool at set-up;
    // what is left carries the packets in flight.
    let left = pool.available().min(nb_mbufs);
    if left < nb_mbufs / 4 {
        log::warn!(
            "mempool: the devices' rx rings took {} of {nb_mbufs} mbufs, leaving {left} for packets in flight; \
             frames will be lost as rx-nombuf (see stats device_drops): raise --mbufs or lower --nb-desc",
            nb_mbufs - left
        );
    }
    for v in vports.iter_mut() {
        setup::unify_identity(v);
        v.active = v.desired();
        log::info!(
            "vport {} (role {}): fast={} soft={} active={} peer={}",
            v.name,
            v.role.as_str(),
            v.fast.as_ref().map(|p| p.device.as_str()).unwrap_or("-"),
            v.soft.as_ref().map(|p| p.device.as_str()).unwrap_or("-"),
            v.active.map(|k| k.as_str()).unwrap_or("none"),
            v.peer
        );
    }

    let running = Arc::new(AtomicBool::new(true));
    // SIGINT/SIGTERM ask for a clean stop, SIGHUP for a policy reload; the
    // supervisor acts on both flags.
    let stop = Arc::new(AtomicBool::new(false));
    let reload = Arc::new(AtomicBool::new(false));
    for (sig, flag) in [
        (signal_hook::consts::SIGINT, &stop),
        (signal_hook::consts::SIGTERM, &stop),
        (signal_hook::consts::SIGHUP, &reload),
    ] {
        signal_hook::flag::register(sig, flag.clone()).map_err(|e| format!("cannot install a signal handler: {e}"))?;
    }
    let inboxes = handoff::inboxes(workers);
    let quiesced = Arc::new(AtomicUsize::new(0));
    let mut dp = Dataplane {
        vports,
        workers: Vec::new(),
        inboxes: inboxes.clone(),
        pool,
        generation: 1,
        queues,
        nb_desc: app.nb_desc,
        socket,
        started: Instant::now(),
        running: running.clone(),
        stop: stop.clone(),
        switches: Vec::new(),
        switch_count: 0,
        drain_dropped: 0,
        policy: None,
        nat: Arc::new(NatPorts::new()),
        shard_capacity: app.max_flows as usize,
        cmd_seq: 0,
        policy_generation: 0,
        engine_stats: Default::default(),
        device_drops: Default::default(),
        last_sample: None,
    };
    let mut pipes: Vec<Option<Box<Pipeline>>> = match &app.policy {
        Some(file) => {
            let mut policy = dp.read_policy(file)?;
            dp.policy_generation = 1;
            policy.generation = 1;
            let policy = Arc::new(policy);
            let pipes = dp.pipelines(&policy, workers)?;
            log::info!(
                "policy {} ({} rules), flow table {} pairs per lcore",
                policy.origin(),
                policy.rule_count(),
                dp.shard_capacity
            );
            dp.policy = Some(policy);
            pipes.into_iter().map(Some).collect()
        }
        None => {
            log::info!("no --policy: plain forwarding between paired vports");
            (0..workers).map(|_| None).collect()
        }
    };
    let plans = dp.plans(workers);
    let mut main_worker = None;
    for (i, (lcore, plan)) in lcores.iter().zip(plans).enumerate() {
        let pipe = pipes[i].take();
        if let Some(p) = &pipe {
            dp.engine_stats
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(p.shard.stats().clone());
        }
        let (tx, rx) = channel::bounded(64);
        let stats = Arc::new(WorkerStats::default());
        stats.plan_ack.store(plan.generation, Ordering::Release);
        let w = Worker::new(
            i,
            Arc::new(plan),
            pipe,
            rx,
            stats.clone(),
            Shared {
                inboxes: inboxes.clone(),
                running: running.clone(),
                quiesced: quiesced.clone(),
                idle_sleep_max_us: app.idle_sleep_us,
            },
        );
        dp.workers.push(WorkerHandle {
            lcore: *lcore,
            cmds: tx,
            stats,
        });
        if i == 0 {
            main_worker = Some(w);
        } else {
            dpdk::lcore::launch(*lcore, move || w.run())?;
        }
    }

    // Control threads run off the polling CPUs (Eal::control_cpus). A
    // thread inherits its creator's affinity, so this thread moves there
    // while it creates them and returns to the main lcore's CPU before it
    // starts polling.
    let main_cpus = dpdk::eal::thread_cpus();
    let ctl_cpus = eal.control_cpus(&lcores);
    logging::set_cpus(ctl_cpus.clone());
    if dpdk::eal::pin_thread(&ctl_cpus) {
        log::info!("control threads on CPU(s) {ctl_cpus:?}");
    } else {
        log::warn!("cannot move the control threads to CPU(s) {ctl_cpus:?}; they share the main lcore's CPU");
    }
    let sources = telemetry_sources(&dp);
    if let Err(e) = dpdk::telemetry::register(sources) {
        log::warn!("DPDK telemetry: {e} (the app's counters will not be there)");
    }
    let (rq_tx, rq_rx) = channel::bounded(64);
    let mut server = if app.no_control_socket {
        None
    } else {
        let path = app
            .control_socket
            .clone()
            .unwrap_or_else(|| control::default_socket_path(&args::file_prefix(eal_args)));
        let handler = Arc::new(AppHandler {
            requests: rq_tx.clone(),
            running: running.clone(),
            topology: dp.topology(),
        });
        let s = control::Server::bind(&path, app.control_socket_group.as_deref())
            .and_then(|s| s.spawn(handler))
            // Every error of these names the socket's path.
            .map_err(|e| e.to_string());
        match s {
            Ok(s) => {
                log::info!("control socket {}", path.display());
                Some(s)
            }
            Err(e) => {
                // Workers are already polling: stop them before failing.
                running.store(false, Ordering::Relaxed);
                dpdk::eal::pin_thread(&main_cpus);
                if let Some(w) = main_worker.take() {
                    w.run();
                }
                for l in lcores.iter().skip(1) {
                    dpdk::lcore::wait(*l);
                }
                return Err(e);
            }
        }
    };
    let sup = Supervisor {
        stop,
        reload,
        policy_file: app.policy.clone(),
        dp,
        events: ev_rx,
        requests: rq_rx,
        requests_tx: rq_tx.clone(),
        latest_reload: Default::default(),
        stats_period: Duration::from_secs(app.stats_period),
        duration: (app.duration > 0).then(|| Duration::from_secs(app.duration)),
        stop_after: app.stop_after,
    };
    let control = std::thread::Builder::new()
        .name("vfp-control".into())
        .spawn(move || sup.run())
        .map_err(|e| format!("cannot start the control thread: {e}"))?;

    log::info!("forwarding on {} lcore(s) {:?}; Ctrl-C to stop", workers, lcores);
    if !dpdk::eal::pin_thread(&main_cpus) {
        log::warn!("cannot move the main lcore back to CPU(s) {main_cpus:?}");
    }
    if let Some(w) = main_worker {
        w.run();
    }
    for l in lcores.iter().skip(1) {
        dpdk::lcore::wait(*l);
    }
    let (dp, console) = control.join().map_err(|_| "control thread panicked".to_string())?;
    if let Some(s) = server.as_mut() {
        s.shutdown();
    }
    drop(rq_tx);
    teardown(dp, eal, console, app.final_stats.as_deref())
}

/// Frees what is left in `port`'s rx rings once no worker polls them.
/// Stopping or closing a port does not free those mbufs in every PMD: a
/// loopback net_ring keeps the last bursts sent to it, which would read
/// as a leak. Bounded, because some devices (net_null, an infinite pcap)
/// produce packets on every poll.
fn discard_rx(port: dpdk::Port, rx_queues: u16) {
    let mut burst = dpdk::Burst::new();
    for q in 0..rx_queues {
        for _ in 0..64 {
            if port.rx_burst(q, &mut burst) == 0 {
                break;
            }
            burst.free_all();
        }
    }
}

/// The app's counters under DPDK telemetry (`dpdk-telemetry.py`:
/// `/vfp/stats`, `/vfp/drops`), read lock-free from the per-lcore blocks,
/// and the devices' own losses (`/vfp/device_drops`) as the control
/// thread last read them.
fn telemetry_sources(dp: &Dataplane) -> Vec<(&'static str, &'static str, dpdk::telemetry::Source)> {
    let workers: Vec<Arc<WorkerStats>> = dp.workers.iter().map(|w| w.stats.clone()).collect();
    let engine = dp.engine_stats.clone();
    let w2 = workers.clone();
    let e2 = engine.clone();
    let seen = dp.device_drops.clone();
    let stats: dpdk::telemetry::Source = Box::new(move || {
        let sum = |f: &dyn Fn(&WorkerStats) -> u64| workers.iter().map(|w| f(w)).sum::<u64>();
        let mut v = vec![
            ("rx_packets".to_string(), sum(&|w| w.rx_packets.get())),
            ("tx_packets".to_string(), sum(&|w| w.tx_packets.get())),
            ("rx_bytes".to_string(), sum(&|w| w.rx_bytes.get())),
            ("tx_bytes".to_string(), sum(&|w| w.tx_bytes.get())),
            ("handoff_packets".to_string(), sum(&|w| w.handoff_out.get())),
            ("busy_cycles".to_string(), sum(&|w| w.busy_cycles.get())),
            ("busy_packets".to_string(), sum(&|w| w.busy_packets.get())),
        ];
        let shards = engine.lock().unwrap_or_else(|e| e.into_inner());
        let start = v.len();
        for s in shards.iter() {
            for (i, (name, n)) in s.named().into_iter().enumerate() {
                match v.get_mut(start + i) {
                    Some(e) => e.1 += n,
                    None => v.push((name.replace('-', "_"), n)),
                }
            }
        }
        v
    });
    let drops: dpdk::telemetry::Source = Box::new(move || {
        let mut v: Vec<(String, u64)> = pmd_app::stats::AppDrop::ALL
            .iter()
            .map(|d| {
                (
                    d.as_str().replace('-', "_"),
                    w2.iter().map(|w| w.drops[*d as usize].get()).sum(),
                )
            })
            .collect();
        let shards = e2.lock().unwrap_or_else(|e| e.into_inner());
        for r in vfp_core::shard::DropReason::ALL {
            let n: u64 = shards.iter().map(|s| s.drop_count(r)).sum();
            let name = r.as_str().replace('-', "_");
            match v.iter_mut().find(|(k, _)| *k == name) {
                Some(e) => e.1 += n,
                None => v.push((name, n)),
            }
        }
        v
    });
    vec![
        (
            "/vfp/stats",
            "pmd-app packet and flow-table counters, summed over lcores",
            stats,
        ),
        ("/vfp/drops", "pmd-app drops by reason, summed over lcores", drops),
        (
            "/vfp/device_drops",
            "frames the devices lost, summed over every vport path (as of the last link poll)",
            Box::new(move || {
                let d = seen.load().named();
                d.into_iter().map(|(k, n)| (k.replace('-', "_"), n)).collect()
            }),
        ),
    ]
}

/// Stops and closes every port, empties the hand-off queues and checks
/// that every mbuf came back to the pool.
fn teardown(
    dp: Dataplane,
    eal: Eal,
    mut console: Console,
    stats_file: Option<&std::path::Path>,
) -> Result<i32, String> {
    let final_stats = Snapshot::take(&dp, None);
    let mut stats_json = stats_file.map(|_| commands::stats(&dp, &final_stats));
    let Dataplane {
        vports,
        workers,
        inboxes,
        pool,
        ..
    } = dp;
    drop(workers);
    drop(inboxes);
    for v in &vports {
        for p in [v.fast.as_ref(), v.soft.as_ref()].into_iter().flatten() {
            if let Some(port) = p.port {
                discard_rx(port, p.rx_queues);
                failsafe::release(port, &p.device, false);
            }
        }
    }
    console.print(final_stats.render("final counters"));
    let total = pool.size();
    let avail = pool.available();
    // A file that cannot be written (its directory was checked at start,
    // but may have gone since) is reported and fails the exit status; the
    // leak check below still runs and its status wins.
    let mut write_failed = false;
    if let (Some(f), Some(v)) = (stats_file, stats_json.as_mut()) {
        // Mbufs as they are with every port closed: a leak shows here.
        v["mbufs"] = serde_json::json!({"in_use": total - avail.min(total), "total": total});
        let text = serde_json::to_string_pretty(v).unwrap_or_default() + "\n";
        if let Err(e) = std::fs::write(f, text) {
            logging::error(format_args!("--final-stats {}: {e}", f.display()));
            write_failed = true;
        }
    }
    let code = if avail == total {
        console.print(format!("mbufs: all {total} returned to the pool\n"));
        0
    } else {
        let leaked = total - avail;
        logging::error(format_args!(
            "{leaked} of {total} mbufs not returned to the pool (leak)"
        ));
        3
    };
    console.finish(Duration::from_secs(2));
    drop(pool);
    drop(eal);
    Ok(if code == 0 && write_failed { 1 } else { code })
}
