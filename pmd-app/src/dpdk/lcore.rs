//! Running closures on EAL lcores.

use std::ffi::c_void;

type Job = Box<dyn FnOnce() -> i32 + Send + 'static>;

unsafe extern "C" fn trampoline(arg: *mut c_void) -> i32 {
    // SAFETY: `arg` is the Box<Job> leaked by `launch`, taken back once.
    let job: Box<Job> = unsafe { Box::from_raw(arg as *mut Job) };
    job()
}

/// Runs `f` on worker lcore `lcore`; collect its result with [`wait`].
pub fn launch(lcore: u32, f: impl FnOnce() -> i32 + Send + 'static) -> Result<(), String> {
    let job: Box<Job> = Box::new(Box::new(f));
    let arg = Box::into_raw(job) as *mut c_void;
    // SAFETY: trampoline takes ownership of arg exactly once on success.
    let rc = unsafe { dpdk_sys::rte_eal_remote_launch(Some(trampoline), arg, lcore) };
    if rc != 0 {
        // SAFETY: not launched, so we still own arg.
        drop(unsafe { Box::from_raw(arg as *mut Job) });
        return Err(format!("cannot launch on lcore {lcore}: {}", super::strerror(rc)));
    }
    Ok(())
}

/// Waits for the job on `lcore` and returns its result.
pub fn wait(lcore: u32) -> i32 {
    // SAFETY: blocks until the lcore is back in WAIT state.
    unsafe { dpdk_sys::rte_eal_wait_lcore(lcore) }
}

/// The calling thread's lcore id (u32::MAX for non-EAL threads).
pub fn current() -> u32 {
    // SAFETY: reads a thread-local.
    unsafe { dpdk_sys::rte_lcore_id() }
}
