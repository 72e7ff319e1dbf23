//! Exposing a run to other processes of the same user: a file, readable by its owner
//! alone, naming the run's socket and holding its token, so `caspian-ipc watch FILE` (or
//! any client) can attach without the token ever appearing on a command line.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::socket::check_socket_dir;
use super::token::Token;
use super::{Client, ClientConfig};
use crate::error::{Error, Result};

/// The file that exposes a run; removed when dropped by the process that wrote it.
#[derive(Debug)]
pub struct Exposure {
    path: PathBuf,
    owner: u32,
}

impl Exposure {
    /// Writes `path` (mode 0600, created new: an existing file is refused, not replaced)
    /// naming `socket` and holding `token`. Refused, like a socket, when another user could
    /// replace the file or its directory ([`Error::UnsafeSocketDir`], D-U13).
    pub fn write(path: &Path, socket: &Path, token: &Token, flavour: &str) -> Result<Exposure> {
        check_socket_dir(path)?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| {
                let hint = if e.kind() == std::io::ErrorKind::AlreadyExists {
                    " (another run exposes itself there, or a run that was killed left it: remove it)"
                } else {
                    ""
                };
                Error::os(format!("exposing the run as {}{hint}", path.display()), e)
            })?;
        let exposure = Exposure {
            path: path.to_owned(),
            owner: std::process::id(),
        };
        let text = json!({
            "socket": socket,
            "token": token.as_str(),
            "flavour": flavour,
            "pid": std::process::id(),
        });
        file.write_all(text.to_string().as_bytes())
            .map_err(|e| Error::os(format!("writing {}", path.display()), e))?;
        Ok(exposure)
    }

    /// The exposure file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Exposure {
    fn drop(&mut self) {
        if std::process::id() == self.owner {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// What an exposure file says.
#[derive(Debug, Clone)]
pub struct Exposed {
    /// The run's socket.
    pub socket: PathBuf,
    /// Its token.
    pub token: Token,
    /// `"shared-hash"` or `"shared-mikobase"`.
    pub flavour: String,
    /// The pid of the process that started the run.
    pub pid: u32,
}

impl Exposed {
    /// Reads an exposure file, refusing one that is not a plain file of ours readable by
    /// us alone (anyone else could have written it, or read its token).
    pub fn read(path: &Path) -> Result<Exposed> {
        let refuse = |problem: String| Error::Protocol(format!("{}: {problem}", path.display()));
        let meta = std::fs::symlink_metadata(path)
            .map_err(|e| Error::os(format!("reading {}", path.display()), e))?;
        let uid = nix::unistd::geteuid().as_raw();
        if !meta.file_type().is_file() {
            return Err(refuse("not a plain file (a symbolic link is refused)".into()));
        }
        if meta.uid() != uid || meta.mode() & 0o077 != 0 {
            return Err(refuse(format!(
                "owned by uid {} with mode {:o}: an exposure file must be ours (uid {uid}) and mode 0600",
                meta.uid(),
                meta.mode() & 0o777
            )));
        }
        let text = std::fs::read(path).map_err(|e| Error::os(format!("reading {}", path.display()), e))?;
        let value: Value =
            serde_json::from_slice(&text).map_err(|e| refuse(format!("not an exposure file: {e}")))?;
        let field = |name: &str| value[name].as_str().ok_or_else(|| refuse(format!("no `{name}`")));
        Ok(Exposed {
            socket: PathBuf::from(field("socket")?),
            token: Token::from_string(field("token")?),
            flavour: field("flavour")?.to_owned(),
            pid: value["pid"].as_u64().unwrap_or(0) as u32,
        })
    }

    /// A client of the exposed run.
    pub fn client(&self, config: ClientConfig) -> Client {
        Client::new(&self.socket, Some(self.token.clone()), config)
    }
}
