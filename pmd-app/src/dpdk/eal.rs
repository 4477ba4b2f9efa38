//! EAL initialisation and teardown.

use std::ffi::{c_char, c_void, CString};
use std::io::Write;
use std::sync::OnceLock;

/// What the EAL prints after its own options on `--help`.
static APP_USAGE: OnceLock<String> = OnceLock::new();

extern "C" fn print_app_usage(_prgname: *const c_char) {
    if let Some(text) = APP_USAGE.get() {
        // SAFETY: fflush(NULL) flushes every C stream; the EAL's usage,
        // printed through C's stdout buffer, then comes out before ours.
        unsafe { libc::fflush(std::ptr::null_mut()) };
        // Not println!: it panics on a closed pipe (`--help | head`), and
        // a panic must not unwind into the EAL.
        let _ = writeln!(std::io::stdout(), "{text}");
    }
}

/// Makes the EAL's `--help` (which prints the EAL's options and exits)
/// print the app's own options after them, as testpmd does. Call before
/// [`Eal::init`].
pub fn set_app_usage(text: String) {
    if APP_USAGE.set(text).is_ok() {
        // SAFETY: the hook is a plain function that lives for the whole
        // process and only reads a string set once before it is installed.
        unsafe {
            dpdk_sys::rte_set_application_usage_hook(Some(print_app_usage));
        }
    }
}

/// Where [`set_log_sink`] sends the EAL's and the drivers' messages.
static LOG_SINK: OnceLock<fn(&[u8])> = OnceLock::new();

/// glibc's `cookie_io_functions_t` (stdio.h, `_GNU_SOURCE`): a stream
/// whose writes call `write`. Only `write` is set here.
#[repr(C)]
struct CookieIo {
    read: Option<unsafe extern "C" fn(*mut c_void, *mut c_char, usize) -> isize>,
    write: Option<unsafe extern "C" fn(*mut c_void, *const c_char, usize) -> isize>,
    seek: Option<unsafe extern "C" fn(*mut c_void, *mut i64, i32) -> i32>,
    close: Option<unsafe extern "C" fn(*mut c_void) -> i32>,
}

extern "C" {
    fn fopencookie(cookie: *mut c_void, mode: *const c_char, funcs: CookieIo) -> *mut libc::FILE;
}

unsafe extern "C" fn write_to_sink(_cookie: *mut c_void, buf: *const c_char, size: usize) -> isize {
    if let (Some(sink), false) = (LOG_SINK.get(), buf.is_null()) {
        // SAFETY: glibc passes `size` readable bytes at `buf` (what the
        // stream buffered), valid for this call.
        sink(unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), size) });
    }
    size.min(isize::MAX as usize) as isize
}

/// Sends the EAL's and the drivers' log messages to `sink`, one message
/// a call (DPDK flushes its log stream after each), instead of writing
/// them to stderr from whichever thread logs. Call before [`Eal::init`]
/// so its own start-up messages go there too. Once only; later calls
/// change nothing.
pub fn set_log_sink(sink: fn(&[u8])) -> Result<(), String> {
    if LOG_SINK.set(sink).is_err() {
        return Ok(());
    }
    let funcs = CookieIo {
        read: None,
        write: Some(write_to_sink),
        seek: None,
        close: None,
    };
    // SAFETY: a write-only stream over a plain function that lives for
    // the whole process (the cookie is unused); the stream is never
    // closed, as DPDK may log until the process exits.
    let f = unsafe { fopencookie(std::ptr::null_mut(), c"w".as_ptr(), funcs) };
    if f.is_null() {
        return Err(format!("fopencookie: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: `f` is a valid stream for the rest of the process;
    // rte_openlog_stream only stores it (it may be called before the EAL
    // is initialised).
    unsafe { dpdk_sys::rte_openlog_stream(f.cast()) };
    Ok(())
}

/// Runs `f` when the process calls exit(3), DPDK's own `rte_exit`
/// included, so that work queued for other threads (log lines) can end
/// first. (Not on abort(3): nothing runs then.)
pub fn run_at_exit(f: extern "C" fn()) -> Result<(), String> {
    // SAFETY: registers a plain function that lives for the whole process.
    if unsafe { libc::atexit(f) } != 0 {
        return Err("atexit refused the handler".to_string());
    }
    Ok(())
}

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
    /// CPUs the process was allowed before EAL pinned this thread to the
    /// main lcore.
    original_cpus: Vec<usize>,
}

impl Eal {
    /// Initialises the EAL with `args` (`args[0]` is the program name).
    /// May be called once per process.
    pub fn init(args: &[String]) -> Result<Eal, EalError> {
        let argv: Vec<CString> = args
            .iter()
            .map(|a| CString::new(a.as_str()).map_err(|_| EalError::NulInArg(a.clone())))
            .collect::<Result<_, _>>()?;
        let original_cpus = thread_cpus();
        let mut ptrs: Vec<*mut c_char> = argv.iter().map(|a| a.as_ptr() as *mut c_char).collect();
        // SAFETY: argv/ptrs outlive the call (argv is kept in Eal); EAL may
        // permute `ptrs` but never writes through the strings.
        let rc = unsafe { dpdk_sys::rte_eal_init(ptrs.len() as i32, ptrs.as_mut_ptr()) };
        if rc < 0 {
            // Some failures leave rte_errno at 0 ("Success"): the EAL's
            // own messages say what went wrong.
            let (code, msg) = super::last_error();
            let msg = if code == 0 {
                "see the EAL's messages above".to_string()
            } else {
                msg
            };
            return Err(EalError::Init(msg));
        }
        std::mem::forget(ptrs);
        Ok(Eal {
            _argv: argv,
            original_cpus,
        })
    }

    /// CPUs for the app's control threads: those the process was allowed
    /// at start-up minus the CPUs of `lcores` (which busy-poll), so a
    /// control request never waits for a polling worker's time slice; all
    /// of them when the lcores take every CPU. (EAL pins the main thread
    /// to the main lcore's CPU, and threads inherit their creator's
    /// affinity: without this the control threads shared that CPU with a
    /// worker and a request could wait a whole scheduler slice, ~5 ms.)
    pub fn control_cpus(&self, lcores: &[u32]) -> Vec<usize> {
        let busy: Vec<usize> = lcores.iter().filter_map(|&l| lcore_cpu(l)).collect();
        let free: Vec<usize> = self
            .original_cpus
            .iter()
            .copied()
            .filter(|c| !busy.contains(c))
            .collect();
        if free.is_empty() {
            self.original_cpus.clone()
        } else {
            free
        }
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

/// The CPU an lcore runs on (the first of its set with `--lcores`).
fn lcore_cpu(lcore: u32) -> Option<usize> {
    // SAFETY: plain getter over EAL's lcore table; -1 for an unknown lcore.
    let c = unsafe { dpdk_sys::rte_lcore_to_cpu_id(lcore as i32) };
    usize::try_from(c).ok()
}

/// CPUs the calling thread may run on (empty if the kernel will not say).
pub fn thread_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data, zero is a valid (empty) set, and
    // sched_getaffinity writes at most the size we pass.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Restricts the calling thread (and the threads it creates from now on)
/// to `cpus`. Returns false, changing nothing, if the kernel refuses.
pub fn pin_thread(cpus: &[usize]) -> bool {
    // SAFETY: as in thread_cpus; the set is built here and only read by
    // the kernel.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
            libc::CPU_SET(c, &mut set);
        }
        !cpus.is_empty() && libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
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
