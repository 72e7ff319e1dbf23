//! Where sockets live: a fresh private directory (0700) per server, removed by its owner.

use std::fs::DirBuilder;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A private directory holding one socket file, `uds.sock`.
///
/// Created 0700 under the temp dir, so only our uid can reach the socket at all. Dropping
/// it removes the directory, but only in the process that created it: a forked child that
/// inherits the value never deletes the parent's directory.
#[derive(Debug)]
pub struct SocketDir {
    dir: PathBuf,
    socket: PathBuf,
    owner: u32,
}

impl SocketDir {
    /// Creates a fresh private directory under [`std::env::temp_dir`].
    pub fn create() -> Result<Self> {
        let base = std::env::temp_dir();
        for _ in 0..16 {
            let mut suffix = [0u8; 8];
            getrandom::getrandom(&mut suffix).map_err(|e| Error::os("random suffix", e))?;
            let name: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
            let dir = base.join(format!("caspian-ipc-{}-{name}", std::process::id()));
            match DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {
                    let socket = dir.join("uds.sock");
                    return Ok(SocketDir {
                        dir,
                        socket,
                        owner: std::process::id(),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(Error::os(
                        format!("creating socket directory {}", dir.display()),
                        e,
                    ))
                }
            }
        }
        Err(Error::os(
            "creating socket directory",
            std::io::Error::other("16 random names all existed"),
        ))
    }

    /// The socket path inside the directory.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// The directory itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        if std::process::id() == self.owner {
            let _ = std::fs::remove_file(&self.socket);
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

/// Makes `path` free for binding: a stale socket (file exists, nobody listening) is
/// removed; a live server or a non-socket file is an error, never silently clobbered.
pub(crate) fn clear_stale_socket(path: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::os(format!("inspecting {}", path.display()), e)),
    };
    if !meta.file_type().is_socket() {
        return Err(Error::ServerStartup(format!(
            "{} exists and is not a socket; refusing to replace it",
            path.display()
        )));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(Error::ServerStartup(format!(
            "another server is already listening on {}",
            path.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => std::fs::remove_file(path)
            .map_err(|e| Error::os(format!("removing stale socket {}", path.display()), e)),
        Err(e) => Err(Error::os(format!("probing {}", path.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn directory_is_private_and_removed_on_drop() {
        let dir = SocketDir::create().unwrap();
        let mode = std::fs::metadata(dir.dir()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let path = dir.dir().to_owned();
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn stale_socket_is_removed_but_regular_file_is_refused() {
        let dir = SocketDir::create().unwrap();
        let listener = std::os::unix::net::UnixListener::bind(dir.socket_path()).unwrap();
        assert!(
            clear_stale_socket(dir.socket_path()).is_err(),
            "live server must not be clobbered"
        );
        drop(listener); // the file stays, nobody listens: stale
        clear_stale_socket(dir.socket_path()).unwrap();
        assert!(!dir.socket_path().exists());
        std::fs::write(dir.socket_path(), b"x").unwrap();
        assert!(clear_stale_socket(dir.socket_path()).is_err());
        std::fs::remove_file(dir.socket_path()).unwrap();
    }
}
