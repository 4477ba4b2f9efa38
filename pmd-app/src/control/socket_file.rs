//! The control socket's file: where it lives, who may open it, and making
//! sure exactly one instance owns it.
//!
//! [`bind`] refuses to steal a socket a live instance is listening on,
//! replaces a stale one left by a crashed run (connecting to it is
//! refused), and never deletes something that is not a socket. The socket
//! is bound in a private 0700 directory, given its final mode and group,
//! and only then renamed into place, so no one can connect while it still
//! has the umask's permissions. [`SocketFile`] removes the file when
//! dropped, but only if it is still the one this process created.

use std::fs;
use std::io::{self, ErrorKind};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Where the control socket of the instance with EAL `--file-prefix`
/// `file_prefix` lives by default: `/var/run/vfp/<file_prefix>.sock`.
pub fn default_socket_path(file_prefix: &str) -> PathBuf {
    PathBuf::from("/var/run/vfp").join(format!("{file_prefix}.sock"))
}

/// A bound control socket file, removed on drop if it is still ours.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    /// (device, inode) of the socket we created, to avoid removing a file
    /// that someone else has put at the same path since.
    identity: (u64, u64),
}

impl SocketFile {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Remove the socket file now (idempotent).
    pub fn remove(&self) {
        if let Ok(meta) = fs::symlink_metadata(&self.path) {
            if (meta.dev(), meta.ino()) == self.identity {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Bind the control socket at `path`, mode 0600, or 0660 owned by `group`
/// (a name or a numeric gid). The parent directory is created (0755) if
/// missing.
///
/// Every error names the path.
pub fn bind(path: &Path, group: Option<&str>) -> io::Result<(UnixListener, SocketFile)> {
    let gid = group
        .map(resolve_group)
        .transpose()
        .map_err(|e| annotate(e, format!("control socket {}", path.display())))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&parent)
        .map_err(|e| {
            annotate(
                e,
                format!(
                    "cannot create directory {} for control socket {}",
                    parent.display(),
                    path.display()
                ),
            )
        })?;
    check_not_live(path)?;

    // Unique per bind: tests bind several servers in one process.
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let staging = parent.join(format!(".vfp{}.{seq}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    fs::DirBuilder::new().mode(0o700).create(&staging).map_err(|e| {
        annotate(
            e,
            format!(
                "cannot create directory {} for control socket {}",
                staging.display(),
                path.display()
            ),
        )
    })?;
    let result = bind_staged(path, &staging, gid);
    let _ = fs::remove_dir_all(&staging);
    result
}

fn bind_staged(path: &Path, staging: &Path, gid: Option<u32>) -> io::Result<(UnixListener, SocketFile)> {
    let tmp = staging.join("s");
    let listener =
        UnixListener::bind(&tmp).map_err(|e| annotate(e, format!("cannot bind control socket {}", path.display())))?;
    let mode = if gid.is_some() { 0o660 } else { 0o600 };
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))
        .map_err(|e| annotate(e, format!("cannot set mode of {}", path.display())))?;
    if let Some(gid) = gid {
        std::os::unix::fs::chown(&tmp, None, Some(gid))
            .map_err(|e| annotate(e, format!("cannot give {} to group {gid}", path.display())))?;
    }
    // Atomically replaces a stale socket file, if any.
    fs::rename(&tmp, path).map_err(|e| annotate(e, format!("cannot create control socket {}", path.display())))?;
    let meta = fs::symlink_metadata(path).map_err(|e| annotate(e, format!("cannot inspect {}", path.display())))?;
    let file = SocketFile {
        path: path.to_path_buf(),
        identity: (meta.dev(), meta.ino()),
    };
    Ok((listener, file))
}

/// Fail if `path` is a socket with a live listener, or is not a socket.
fn check_not_live(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(annotate(e, format!("cannot inspect {}", path.display()))),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket; not replacing it", path.display()),
        ));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            ErrorKind::AddrInUse,
            format!("control socket {} is in use by a running instance", path.display()),
        )),
        // No listener: a crashed run left it behind; it will be replaced.
        Err(e) if e.kind() == ErrorKind::ConnectionRefused || e.kind() == ErrorKind::NotFound => {
            log::warn!("replacing stale control socket {}", path.display());
            Ok(())
        }
        Err(e) => Err(annotate(
            e,
            format!("cannot tell whether control socket {} is in use", path.display()),
        )),
    }
}

/// The gid of a group given by name or number. Names are looked up in
/// `/etc/group` first, then with `getent` so NSS groups (LDAP, sssd) work.
fn resolve_group(group: &str) -> io::Result<u32> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    let in_file = fs::read_to_string("/etc/group")
        .ok()
        .and_then(|text| group_from_lines(&text, group));
    let found = in_file.or_else(|| {
        let out = Command::new("getent").args(["group", group]).output().ok()?;
        group_from_lines(&String::from_utf8_lossy(&out.stdout), group)
    });
    found.ok_or_else(|| io::Error::new(ErrorKind::NotFound, format!("group \"{group}\" does not exist")))
}

/// Find `name` in `group(5)`-formatted lines (`name:x:gid:members`).
fn group_from_lines(text: &str, name: &str) -> Option<u32> {
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        fields.nth(1)?.trim().parse().ok()
    })
}

/// Prefix an error with what we were doing, keeping its kind.
fn annotate(e: io::Error, what: String) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_path() {
        assert_eq!(default_socket_path("rte"), PathBuf::from("/var/run/vfp/rte.sock"));
    }

    #[test]
    fn group_lines() {
        let text = "root:x:0:\nvfp:x:1234:alice,bob\nbad\n";
        assert_eq!(group_from_lines(text, "vfp"), Some(1234));
        assert_eq!(group_from_lines(text, "root"), Some(0));
        assert_eq!(group_from_lines(text, "bad"), None);
        assert_eq!(group_from_lines(text, "nope"), None);
        assert_eq!(resolve_group("42").unwrap(), 42);
        assert_eq!(
            resolve_group("no-such-group-xyz").unwrap_err().kind(),
            ErrorKind::NotFound
        );
    }
}
