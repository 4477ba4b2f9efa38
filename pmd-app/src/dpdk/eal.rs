//! EAL initialisation and teardown.

use std::ffi::{c_char, CString};

#[derive(Debug, thiserror::Error)]
pub enum EalError {
    #[error("EAL argument contains a NUL byte: {0:?}")]
    NulInArg(String),
    #[error("EAL initialisation failed: {0} (check the EAL options, hugepages or --no-huge, and --file-prefix)")]
    Init(String),
}

/// The initialised EAL. Dropping it runs `rte_eal_cleanup`; it must be
/// dropped last, after every port and mempool.
pub struct Eal {
    // rte_eal_init keeps pointers into argv for the life of the process.
    _argv: Vec<CString>,
}

impl Eal {
    /// Initialises the EAL with `args` (args[0] is the program name).
    /// May be called once per process.
    pub fn init(args: &[String]) -> Result<Eal, EalError> {
        let argv: Vec<CString> = args
            .iter()
            .map(|a| CString::new(a.as_str()).map_err(|_| EalError::NulInArg(a.clone())))
            .collect::<Result<_, _>>()?;
        let mut ptrs: Vec<*mut c_char> = argv.iter().map(|a| a.as_ptr() as *mut c_char).collect();
        // SAFETY: argv/ptrs outlive the call (argv is kept in Eal); EAL may
        // permute `ptrs` but never writes through the strings.
        let rc = unsafe { dpdk_sys::rte_eal_init(ptrs.len() as i32, ptrs.as_mut_ptr()) };
        if rc < 0 {
            let (_, msg) = super::last_error();
            return Err(EalError::Init(msg));
        }
        std::mem::forget(ptrs);
        Ok(Eal { _argv: argv })
    }

    /// Lcore ids enabled by `-l`/`-c`, main lcore first.
    pub fn lcores(&self) -> Vec<u32> {
        let main = self.main_lcore();
        let mut v = vec![main];
        let mut i: u32 = u32::MAX; // -1: start of iteration
        loop {
            // SAFETY: iterates EAL's lcore table; skip_main=1, wrap=0.
            i = unsafe { dpdk_sys::rte_get_next_lcore(i, 1, 0) };
            if i >= dpdk_sys::RTE_MAX_LCORE {
                break;
            }
            v.push(i);
        }
        v
    }

    pub fn main_lcore(&self) -> u32 {
        // SAFETY: plain getter.
        unsafe { dpdk_sys::rte_get_main_lcore() }
    }

    /// NUMA socket of the calling thread.
    pub fn socket_id(&self) -> i32 {
        // SAFETY: plain getter.
        unsafe { dpdk_sys::rte_socket_id() as i32 }
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: called once, after every DPDK object was released.
        unsafe {
            dpdk_sys::rte_eal_cleanup();
        }
    }
}
