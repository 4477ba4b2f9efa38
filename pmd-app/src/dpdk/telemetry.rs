//! Registers the app's counters with DPDK telemetry, so that
//! `dpdk-telemetry.py` users see them beside the ethdev counters.

use std::ffi::{c_char, c_int, CString};
use std::sync::OnceLock;

/// Produces (name, value) pairs for one telemetry command.
pub type Source = Box<dyn Fn() -> Vec<(String, u64)> + Send + Sync>;

static SOURCES: OnceLock<Vec<(CString, Source)>> = OnceLock::new();

unsafe extern "C" fn on_cmd(cmd: *const c_char, _params: *const c_char, d: *mut dpdk_sys::rte_tel_data) -> c_int {
    let Some(sources) = SOURCES.get() else { return -1 };
    // SAFETY: telemetry passes the registered NUL-terminated command name.
    let cmd = unsafe { std::ffi::CStr::from_ptr(cmd) };
    let Some((_, src)) = sources.iter().find(|(c, _)| c.as_c_str() == cmd) else {
        return -1;
    };
    // SAFETY: `d` is the reply object telemetry handed us.
    unsafe { dpdk_sys::rte_tel_data_start_dict(d) };
    for (name, v) in src() {
        // Telemetry names are limited to 63 characters of [a-zA-Z0-9_].
        let Ok(n) = CString::new(name) else { continue };
        // SAFETY: `d` is a dict; n is a valid C string.
        unsafe { dpdk_sys::rte_tel_data_add_dict_u64(d, n.as_ptr(), v) };
    }
    0
}

/// Registers each (command, help, source). Call once, after EAL init.
pub fn register(cmds: Vec<(&'static str, &'static str, Source)>) -> Result<(), String> {
    let mut v = Vec::new();
    let mut helps = Vec::new();
    for (cmd, help, src) in cmds {
        v.push((CString::new(cmd).map_err(|e| e.to_string())?, src));
        helps.push(CString::new(help).map_err(|e| e.to_string())?);
    }
    SOURCES.set(v).map_err(|_| "telemetry already registered".to_string())?;
    let sources = SOURCES.get().expect("just set");
    for ((c, _), h) in sources.iter().zip(helps) {
        // SAFETY: both strings are 'static (SOURCES lives forever; the help
        // string is leaked deliberately as telemetry keeps the pointer).
        let rc = unsafe { dpdk_sys::rte_telemetry_register_cmd(c.as_ptr(), Some(on_cmd), h.into_raw()) };
        if rc != 0 {
            return Err(format!("telemetry register {:?}: {}", c, super::strerror(rc)));
        }
    }
    Ok(())
}
