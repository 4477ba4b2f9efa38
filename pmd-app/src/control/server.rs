//! The control socket server: accept clients, one thread each.
//!
//! [`Server::bind`] claims the socket file (see [`socket_file`]);
//! [`Server::spawn`] starts an accept thread that admits up to
//! `max_clients` connections, each served by `connection::serve` on its
//! own thread; extra clients get one `unavailable` error line and are
//! closed. [`ServerHandle::shutdown`] (or dropping the handle) removes the
//! socket file, stops accepting, lets every connection finish the request
//! it is on, and joins all threads.
//!
//! The accept thread blocks in accept(2), so a client is served the
//! moment it connects. The listener carries a receive timeout
//! (`SO_RCVTIMEO`, which Linux applies to accept on a Unix socket), so the
//! thread also wakes every `ACCEPT_WAKE` (20 ms) to see whether the server is
//! stopping: shutdown stays prompt without a self-pipe or any `unsafe`.
//!
//! [`socket_file`]: super::socket_file

use std::collections::HashMap;
use std::io::{self, ErrorKind, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::connection;
use super::handler::Handler;
use super::protocol::{encode_reply, CtlError};
use super::socket_file::{self, SocketFile};

/// How often an accept thread with no client wakes to look for shutdown.
const ACCEPT_WAKE: Duration = Duration::from_millis(20);

/// Resource limits of the server.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections served at once; more get `unavailable` and are closed.
    pub max_clients: usize,
    /// A client silent for this long is disconnected.
    pub idle_timeout: Duration,
    /// A reply that cannot be written within this long drops the client.
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_clients: 32,
            idle_timeout: Duration::from_secs(300),
            write_timeout: Duration::from_secs(5),
        }
    }
}

/// A bound, not yet serving, control socket.
#[derive(Debug)]
pub struct Server {
    listener: UnixListener,
    file: SocketFile,
    limits: Limits,
}

/// State shared by the accept thread and the connection threads.
pub(crate) struct Shared {
    pub(crate) handler: Arc<dyn Handler>,
    pub(crate) limits: Limits,
    pub(crate) stopping: AtomicBool,
    /// Read-side clones of the live connections, to wake their reads at
    /// shutdown. Only locked for map updates and `shutdown(2)`, never
    /// across blocking I/O.
    clients: Mutex<HashMap<u64, UnixStream>>,
}

impl Server {
    /// Create the control socket at `path` (mode 0600; 0660 owned by
    /// `group` when given). Fails with a message naming the path (it is
    /// in use by a running instance, is not a socket, cannot be created).
    pub fn bind(path: &Path, group: Option<&str>) -> io::Result<Server> {
        let (listener, file) = socket_file::bind(path, group)?;
        socket2::SockRef::from(&listener)
            .set_read_timeout(Some(ACCEPT_WAKE))
            .map_err(|e| io::Error::new(e.kind(), format!("control socket {}: {e}", path.display())))?;
        Ok(Server {
            listener,
            file,
            limits: Limits::default(),
        })
    }

    /// Replace the default [`Limits`].
    pub fn with_limits(mut self, limits: Limits) -> Server {
        self.limits = limits;
        self
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Start serving with `handler` on background threads.
    pub fn spawn(self, handler: Arc<dyn Handler>) -> io::Result<ServerHandle> {
        let shared = Arc::new(Shared {
            handler,
            limits: self.limits,
            stopping: AtomicBool::new(false),
            clients: Mutex::new(HashMap::new()),
        });
        let listener = self.listener;
        let thread_shared = Arc::clone(&shared);
        let accept = thread::Builder::new()
            .name("vfp-ctl-accept".into())
            .spawn(move || accept_loop(listener, &thread_shared))
            .map_err(|e| io::Error::new(e.kind(), format!("control socket {}: {e}", self.file.path().display())))?;
        log::info!("control socket listening on {}", self.file.path().display());
        Ok(ServerHandle {
            shared,
            accept: Some(accept),
            file: self.file,
        })
    }
}

/// A running server. Dropping it shuts it down.
pub struct ServerHandle {
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
    file: SocketFile,
}

impl ServerHandle {
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Connections being served right now.
    pub fn clients(&self) -> usize {
        lock(&self.shared.clients).len()
    }

    /// Stop accepting, let each connection finish its current request,
    /// join every thread and remove the socket file. Idempotent.
    pub fn shutdown(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        // Remove the file first so new clients fail fast instead of
        // queueing on a listener that will not accept them.
        self.file.remove();
        if let Some(accept) = self.accept.take() {
            if accept.join().is_err() {
                log::error!("control accept thread panicked");
            }
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking connection thread must not take the server down with it.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn accept_loop(listener: UnixListener, shared: &Arc<Shared>) {
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    let mut next_client: u64 = 0;
    while !shared.stopping.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((stream, _)) => {
                next_client += 1;
                threads.retain(|t| !t.is_finished());
                if let Some(t) = admit(stream, next_client, shared) {
                    threads.push(t);
                }
            }
            // The receive timeout passed with no client (EAGAIN), or a
            // signal interrupted the wait.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                // E.g. EMFILE: back off instead of spinning.
                log::warn!("control socket accept failed: {e}");
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
    drop(listener);
    for stream in lock(&shared.clients).values() {
        // Wakes a blocked read with end-of-file; writes still work, so a
        // reply being produced (e.g. to `shutdown`) is still delivered.
        let _ = stream.shutdown(Shutdown::Read);
    }
    // Replies in flight, and `unavailable` to requests already queued, get
    // one write timeout to reach their clients. Then every connection is
    // closed both ways (a blocked write fails at once): a client that
    // reads slowly cannot hold the instance's exit up.
    let deadline = Instant::now() + shared.limits.write_timeout;
    while threads.iter().any(|t| !t.is_finished()) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    for stream in lock(&shared.clients).values() {
        let _ = stream.shutdown(Shutdown::Both);
    }
    for t in threads {
        let _ = t.join();
    }
}

/// Start serving `stream`, or turn it away if the server is full.
fn admit(stream: UnixStream, client: u64, shared: &Arc<Shared>) -> Option<JoinHandle<()>> {
    let waker = match stream.set_nonblocking(false).and_then(|()| stream.try_clone()) {
        Ok(w) => w,
        Err(e) => {
            log::warn!("control client {client}: {e}");
            return None;
        }
    };
    {
        let mut clients = lock(&shared.clients);
        if clients.len() >= shared.limits.max_clients {
            drop(clients);
            refuse(stream, shared.limits.max_clients);
            return None;
        }
        clients.insert(client, waker);
    }
    let thread_shared = Arc::clone(shared);
    let spawned = thread::Builder::new().name(format!("vfp-ctl-{client}")).spawn(move || {
        // Frees the slot (and closes the wake-up clone) even if the handler
        // panics, so the client sees end-of-file instead of hanging.
        let _slot = Slot {
            shared: &thread_shared,
            client,
        };
        connection::serve(stream, client, &thread_shared);
    });
    match spawned {
        Ok(t) => Some(t),
        Err(e) => {
            log::warn!("control client {client}: cannot start thread: {e}");
            lock(&shared.clients).remove(&client);
            None
        }
    }
}

/// A connection's place in [`Shared::clients`], released on drop.
struct Slot<'a> {
    shared: &'a Shared,
    client: u64,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        lock(&self.shared.clients).remove(&self.client);
    }
}

/// Tell an extra client why it is closed. The socket buffer of a fresh
/// connection is empty, so a non-blocking write of one line cannot stall
/// the accept thread.
fn refuse(mut stream: UnixStream, max: usize) {
    let line = encode_reply(
        &Value::Null,
        &Err(CtlError::unavailable(format!(
            "too many control clients (limit {max}); try again later"
        ))),
    );
    let _ = stream.set_nonblocking(true);
    let _ = stream.write_all(&line);
}
