//! Device events (removal, link change, new port) and vdev hot-plug.
//!
//! DPDK calls event callbacks from its interrupt thread; they only forward
//! the event into a channel that the control thread reads, so nothing
//! heavy runs in interrupt context.

use crossbeam::channel::Sender;
use std::ffi::{c_void, CString};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Removal and arrival events carry their number in the order DPDK raised
/// them ([`sequence`]): a port id is reused once its device is detached,
/// so a removal still queued when the id went to a newly plugged device
/// must be told apart from one about that device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceEvent {
    /// The device is being removed (RTE_ETH_EVENT_INTR_RMV).
    Removed { port: u16, seq: u64 },
    /// Link state changed (RTE_ETH_EVENT_INTR_LSC).
    LinkChange(u16),
    /// A port appeared (RTE_ETH_EVENT_NEW), e.g. after hot-plug.
    New { port: u16, seq: u64 },
    /// A port was released (RTE_ETH_EVENT_DESTROY).
    Destroyed(u16),
}

static EVENTS: OnceLock<Sender<DeviceEvent>> = OnceLock::new();
/// Events raised so far.
static RAISED: AtomicU64 = AtomicU64::new(0);

/// The number the next event will carry: every event about a device
/// attached after this call carries this number or a higher one.
pub fn sequence() -> u64 {
    RAISED.load(Ordering::SeqCst)
}

unsafe extern "C" fn on_event(
    port: u16,
    ev: dpdk_sys::rte_eth_event_type,
    _arg: *mut c_void,
    _ret: *mut c_void,
) -> i32 {
    let e = match ev {
        dpdk_sys::RTE_ETH_EVENT_INTR_RMV => DeviceEvent::Removed {
            port,
            seq: RAISED.fetch_add(1, Ordering::SeqCst),
        },
        dpdk_sys::RTE_ETH_EVENT_INTR_LSC => DeviceEvent::LinkChange(port),
        dpdk_sys::RTE_ETH_EVENT_NEW => DeviceEvent::New {
            port,
            seq: RAISED.fetch_add(1, Ordering::SeqCst),
        },
        dpdk_sys::RTE_ETH_EVENT_DESTROY => DeviceEvent::Destroyed(port),
        _ => return 0,
    };
    if let Some(tx) = EVENTS.get() {
        let _ = tx.try_send(e);
    }
    0
}

/// Registers callbacks for every port, present and future. Call once.
pub fn subscribe(tx: Sender<DeviceEvent>) -> Result<(), String> {
    EVENTS
        .set(tx)
        .map_err(|_| "device events already subscribed".to_string())?;
    for ev in [
        dpdk_sys::RTE_ETH_EVENT_INTR_RMV,
        dpdk_sys::RTE_ETH_EVENT_INTR_LSC,
        dpdk_sys::RTE_ETH_EVENT_NEW,
        dpdk_sys::RTE_ETH_EVENT_DESTROY,
    ] {
        // SAFETY: on_event is a 'static function that only touches EVENTS
        // and RAISED.
        let rc = unsafe {
            dpdk_sys::rte_eth_dev_callback_register(
                dpdk_sys::RTE_ETH_ALL as u16,
                ev,
                Some(on_event),
                std::ptr::null_mut(),
            )
        };
        if rc != 0 {
            return Err(format!("cannot register device event {ev}: {}", super::strerror(rc)));
        }
    }
    Ok(())
}

fn cstr(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{s:?} contains a NUL byte"))
}

/// Hot-plugs a device on `bus` ("vdev", "pci") with `devargs`.
pub fn hotplug_add(bus: &str, name: &str, devargs: &str) -> Result<(), String> {
    let (b, n, a) = (cstr(bus)?, cstr(name)?, cstr(devargs)?);
    // SAFETY: valid C strings for the duration of the call.
    let rc = unsafe { dpdk_sys::rte_eal_hotplug_add(b.as_ptr(), n.as_ptr(), a.as_ptr()) };
    if rc != 0 {
        return Err(format!("hot-plug add {bus}:{name} failed: {}", super::strerror(rc)));
    }
    Ok(())
}

/// Hot-unplugs a device. The caller has stopped and closed its port.
pub fn hotplug_remove(bus: &str, name: &str) -> Result<(), String> {
    let (b, n) = (cstr(bus)?, cstr(name)?);
    // SAFETY: valid C strings for the duration of the call.
    let rc = unsafe { dpdk_sys::rte_eal_hotplug_remove(b.as_ptr(), n.as_ptr()) };
    if rc != 0 {
        return Err(format!("hot-plug remove {bus}:{name} failed: {}", super::strerror(rc)));
    }
    Ok(())
}
