//! The control thread's loop: device events, link polling, control
//! requests, periodic counters, and the `--duration` stop. It owns the
//! [`Dataplane`]; nothing here runs on a worker lcore.

use crate::console::Console;
use crate::dataplane::Dataplane;
use crate::dpdk::events::DeviceEvent;
use crate::report::Snapshot;
use crossbeam::channel::{Receiver, Sender};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A request from the control socket, answered on `reply`.
pub type Request = Box<dyn FnOnce(&mut Dataplane) + Send>;

const TICK: Duration = Duration::from_millis(10);
const LINK_POLL: Duration = Duration::from_millis(100);
const RATE_SAMPLE: Duration = Duration::from_secs(1);

pub struct Supervisor {
    pub dp: Dataplane,
    /// Set by SIGINT/SIGTERM: stop cleanly.
    pub stop: Arc<AtomicBool>,
    /// Set by SIGHUP: re-read the policy file.
    pub reload: Arc<AtomicBool>,
    /// The file SIGHUP re-reads (the last one loaded).
    pub policy_file: Option<PathBuf>,
    pub events: Receiver<DeviceEvent>,
    pub requests: Receiver<Request>,
    /// Where a SIGHUP reload sends the install of the policy it read.
    pub requests_tx: Sender<Request>,
    pub stats_period: Duration,
    pub duration: Option<Duration>,
    pub stop_after: Option<u64>,
    /// Number of the latest SIGHUP reload (shared with the reload threads).
    pub latest_reload: Arc<AtomicU64>,
}

impl Supervisor {
    /// Runs until `running` clears; returns the dataplane for teardown,
    /// and stdout as the periodic counters left it.
    pub fn run(mut self) -> (Dataplane, Console) {
        let mut console = Console::start();
        let mut last_link = Instant::now();
        let mut last_print = Instant::now();
        let mut sample = Snapshot::take(&self.dp, None);
        let mut printed = sample.clone();
        while self.dp.running.load(Ordering::Relaxed) {
            crossbeam::select! {
                recv(self.events) -> ev => if let Ok(ev) = ev { self.dp.on_device_event(ev) },
                recv(self.requests) -> rq => if let Ok(rq) = rq { rq(&mut self.dp) },
                default(TICK) => {}
            }
            let now = Instant::now();
            if now.duration_since(last_link) >= LINK_POLL {
                last_link = now;
                self.dp.poll_links();
            }
            if now.duration_since(sample.at) >= RATE_SAMPLE {
                sample = Snapshot::take(&self.dp, Some(&sample));
                self.dp.last_sample = Some(sample.clone());
            }
            if self.stop.load(Ordering::Relaxed) {
                log::info!("signal received, stopping");
                self.dp.running.store(false, Ordering::Relaxed);
            }
            if self.reload.swap(false, Ordering::Relaxed) {
                self.reload_policy();
            }
            if !self.stats_period.is_zero() && now.duration_since(last_print) >= self.stats_period {
                last_print = now;
                let s = Snapshot::take(&self.dp, Some(&printed));
                console.print(s.render("pmd-app counters"));
                printed = s;
            }
            if let Some(n) = self.stop_after {
                let rx: u64 = self.dp.workers.iter().map(|w| w.stats.rx_packets.get()).sum();
                if rx >= n {
                    log::info!("--stop-after {n} reached ({rx} packets received), stopping");
                    self.dp.running.store(false, Ordering::Relaxed);
                }
            }
            if self.duration.is_some_and(|d| self.dp.uptime() >= d) {
                log::info!("--duration reached, stopping");
                self.dp.running.store(false, Ordering::Relaxed);
            }
        }
        // Answer late requests so no client waits forever.
        while let Ok(rq) = self.requests.try_recv() {
            rq(&mut self.dp);
        }
        (self.dp, console)
    }

    /// SIGHUP: re-read the policy file and publish it. A bad file keeps
    /// the running policy. The file is read on a thread of its own (a
    /// large policy must not hold failover up) and installed as a request
    /// on this thread; a reload that a later SIGHUP overtook is dropped.
    fn reload_policy(&mut self) {
        let Some(file) = self
            .dp
            .policy
            .as_ref()
            .map(|p| PathBuf::from(p.origin()))
            .or(self.policy_file.clone())
        else {
            log::warn!("SIGHUP: no policy file to reload (started without --policy)");
            return;
        };
        let latest = Arc::clone(&self.latest_reload);
        let seq = latest.fetch_add(1, Ordering::AcqRel) + 1;
        let (topology, tx) = (self.dp.topology(), self.requests_tx.clone());
        let read = move || {
            let policy = vfp_core::policy::load_file(&file, &topology);
            let install: Request = Box::new(move |dp: &mut Dataplane| {
                if latest.load(Ordering::Acquire) != seq || !dp.running.load(Ordering::Relaxed) {
                    return;
                }
                match policy
                    .map_err(|e| e.to_string())
                    .and_then(|p| dp.install_policy(p).map_err(|e| e.to_string()))
                {
                    Ok(p) => log::info!("SIGHUP: reloaded {} as generation {}", file.display(), p.generation),
                    Err(e) => log::error!("SIGHUP: policy not reloaded, the running one stays: {e}"),
                }
            });
            let _ = tx.send(install);
        };
        if let Err(e) = std::thread::Builder::new().name("vfp-reload".into()).spawn(read) {
            log::error!("SIGHUP: cannot start the reload thread: {e}");
        }
    }
}
