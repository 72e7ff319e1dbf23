//! Where sockets live: a fresh private directory (0700) per server, removed by its owner,
//! and the checks that no other user can swap a socket or its directory (D-U13, D-U14).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::{DirBuilder, Metadata};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// A private directory holding one socket file, `uds.sock`.
///
/// Created 0700 under the temp dir, so only our uid can reach the socket at all. The temp
/// dir must be one that no other user can rename things in (D-U14). Dropping it removes
/// the directory, but only in the process that created it: a forked child that inherits
/// the value never deletes the parent's directory.
#[derive(Debug)]
pub struct SocketDir {
    dir: PathBuf,
    socket: PathBuf,
    owner: u32,
}

impl SocketDir {
    /// Creates a fresh private directory under [`std::env::temp_dir`] (`TMPDIR`, else
    /// `/tmp`); see [`SocketDir::create_in`].
    pub fn create() -> Result<Self> {
        Self::create_in(&std::env::temp_dir())
    }

    /// Creates a fresh private directory under `base`. Refuses with
    /// [`Error::UnsafeSocketDir`] when another user could rename things in `base` or above
    /// it ([`check_private_base`]): there they could move our directory aside and plant a
    /// look-alike. The new directory is then checked through a descriptor opened without
    /// following links: a directory, ours, mode 0700 (set so if the umask took more).
    pub fn create_in(base: &Path) -> Result<Self> {
        let base = check_private_base(base)?;
        for _ in 0..16 {
            let mut suffix = [0u8; 8];
            getrandom::fill(&mut suffix).map_err(|e| Error::os("random suffix", e))?;
            let name: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
            let dir = base.join(format!("caspian-ipc-{}-{name}", std::process::id()));
            match DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {
                    if let Err(e) = verify_private(&dir) {
                        let _ = std::fs::remove_dir(&dir);
                        return Err(e);
                    }
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

/// What one directory on a checked path must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Any directory passed through: owned by us or root, and either writable by its owner
    /// alone or sticky (like /tmp: others may add entries but not rename ours).
    Ancestor,
    /// The directory holding the socket: owned by us and writable by us alone.
    Holder,
}

/// Names the fix in the refusals of [`check_socket_dir`].
const SOCKET_FIX: &str = "serve from a directory you own that only you can write \
    (e.g. `mkdir -m 700 DIR`, or `chmod go-w DIR`), below directories that only you or \
    root can change";
/// Names the fix in the refusals of [`check_private_base`].
const BASE_FIX: &str = "point TMPDIR at a directory that only you can write, or at a \
    sticky one owned by root or you (like /tmp, mode 1777)";

/// Refuses to serve on `socket` unless no other user can replace it: its directory must
/// be ours and writable by us alone, and every directory above it owned by us or root and
/// writable by its owner alone or sticky. The path is resolved as the kernel resolves it:
/// a symbolic link on the way must be owned by us or root, and the directories its target
/// passes through are checked the same way (D-U13).
pub fn check_socket_dir(socket: &Path) -> Result<()> {
    let parent = match socket.parent() {
        Some(p) if p.as_os_str().is_empty() => Path::new("."),
        Some(p) => p,
        None => Path::new("/"),
    };
    resolve_checked(parent, Role::Holder, socket, SOCKET_FIX).map(drop)
}

/// Checks `base`, the directory a [`SocketDir`] is to be made in (the temp dir): it and
/// every directory above it must be owned by us or root and writable by its owner alone
/// or sticky, so nobody else can rename our directory and plant a look-alike. Returns
/// the resolved path (no symbolic links in it) (D-U14).
pub fn check_private_base(base: &Path) -> Result<PathBuf> {
    resolve_checked(base, Role::Ancestor, base, BASE_FIX)
}

/// Checks the directory we just made at `dir`, through a descriptor opened with
/// `O_NOFOLLOW | O_DIRECTORY` (so a link or a file planted there fails): owned by us and
/// mode 0700, which it is made if the umask took more.
fn verify_private(dir: &Path) -> Result<()> {
    use nix::fcntl::{open, OFlag};
    use nix::sys::stat::{fchmod, fstat, Mode};
    let refuse = |problem: String| Error::UnsafeSocketDir {
        path: dir.to_owned(),
        dir: dir.to_owned(),
        problem,
        fix: "remove it and try again; if it happens again, another process is racing \
              for names in the temp dir"
            .to_owned(),
    };
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = match open(dir, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ELOOP | nix::errno::Errno::ENOTDIR) => {
            return Err(refuse(
                "is not the directory we just made (a link or a file)".into(),
            ))
        }
        Err(e) => return Err(Error::os(format!("opening {}", dir.display()), e)),
    };
    let stat = |fd: &std::os::fd::OwnedFd| {
        fstat(fd).map_err(|e| Error::os(format!("inspecting {}", dir.display()), e))
    };
    let found = stat(&fd)?;
    if found.st_uid != euid() {
        return Err(refuse(format!(
            "is owned by uid {}, not by us (uid {}), though we just made it",
            found.st_uid,
            euid()
        )));
    }
    if found.st_mode & 0o7777 != 0o700 {
        fchmod(&fd, Mode::from_bits_truncate(0o700))
            .map_err(|e| Error::os(format!("chmod 0700 {}", dir.display()), e))?;
        let again = stat(&fd)?;
        if again.st_mode & 0o7777 != 0o700 {
            return Err(refuse(format!(
                "has mode {:04o}, not 0700",
                again.st_mode & 0o7777
            )));
        }
    }
    Ok(())
}

/// Most symbolic links followed while resolving one path (Linux's own limit).
const MAX_LINKS: usize = 40;

/// Resolves `dir` component by component, following symbolic links as the kernel does,
/// and checks every directory passed through ([`Role::Ancestor`]), every link followed
/// (owned by us or root) and the final directory (`last`). Returns the resolved path.
fn resolve_checked(dir: &Path, last: Role, subject: &Path, fix: &str) -> Result<PathBuf> {
    let refuse = |at: &Path, problem: String| Error::UnsafeSocketDir {
        path: subject.to_owned(),
        dir: at.to_owned(),
        problem,
        fix: fix.to_owned(),
    };
    let lstat = |at: &Path| {
        std::fs::symlink_metadata(at).map_err(|e| Error::os(format!("inspecting {}", at.display()), e))
    };
    let start = if dir.is_absolute() {
        dir.to_owned()
    } else {
        // getcwd gives the physical path, so the walk from / covers it.
        std::env::current_dir()
            .map_err(|e| Error::os("reading the current directory", e))?
            .join(dir)
    };
    let mut pending: VecDeque<OsString> = parts(&start);
    let mut resolved = PathBuf::from("/");
    check_one(&lstat(&resolved)?, Role::Ancestor).map_err(|p| refuse(&resolved, p))?;
    let mut links = 0;
    while let Some(part) = pending.pop_front() {
        if part == "/" {
            resolved = PathBuf::from("/");
            continue;
        }
        if part == "." {
            continue;
        }
        if part == ".." {
            resolved.pop(); // a directory already checked
            continue;
        }
        let next = resolved.join(&part);
        let meta = lstat(&next)?;
        if meta.file_type().is_symlink() {
            let (owner, me) = (meta.uid(), euid());
            if owner != me && owner != 0 {
                return Err(refuse(
                    &next,
                    format!(
                        "is a symbolic link owned by uid {owner}, another user, who can point it elsewhere"
                    ),
                ));
            }
            links += 1;
            if links > MAX_LINKS {
                return Err(refuse(
                    &next,
                    format!("is reached through more than {MAX_LINKS} symbolic links"),
                ));
            }
            let target = std::fs::read_link(&next)
                .map_err(|e| Error::os(format!("reading the link {}", next.display()), e))?;
            for part in parts(&target).into_iter().rev() {
                pending.push_front(part);
            }
            continue;
        }
        check_one(&meta, Role::Ancestor).map_err(|p| refuse(&next, p))?;
        resolved = next;
    }
    check_one(&lstat(&resolved)?, last).map_err(|p| refuse(&resolved, p))?;
    Ok(resolved)
}

/// The components of `path` as owned names: `/`, `.`, `..` or a name.
fn parts(path: &Path) -> VecDeque<OsString> {
    path.components()
        .map(|c| match c {
            Component::Normal(name) => name.to_owned(),
            other => other.as_os_str().to_owned(),
        })
        .collect()
}

fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Checks one directory (by its lstat) against `role`; the problem in words otherwise.
fn check_one(meta: &Metadata, role: Role) -> std::result::Result<(), String> {
    if !meta.file_type().is_dir() {
        return Err("is not a directory".to_owned());
    }
    let (owner, me, mode) = (meta.uid(), euid(), meta.mode() & 0o7777);
    let writable_by_others = mode & 0o022 != 0;
    match role {
        Role::Ancestor if owner != me && owner != 0 => Err(format!(
            "is owned by uid {owner}, another user, who can change it (we are uid {me})"
        )),
        Role::Ancestor if writable_by_others && mode & 0o1000 == 0 => Err(format!(
            "is writable by other users (mode {mode:04o}) without the sticky bit, so they can rename what is in it"
        )),
        Role::Holder if owner != me => Err(format!(
            "holds the socket but is owned by uid {owner}, not by us (uid {me})"
        )),
        Role::Holder if writable_by_others => Err(format!(
            "holds the socket but is writable by other users (mode {mode:04o}), so they can replace the socket"
        )),
        _ => Ok(()),
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

    /// A directory of `mode` (set past the umask) at `path`, owned by `owner` if given.
    fn dir_with(path: &Path, mode: u32, owner: Option<u32>) -> PathBuf {
        std::fs::create_dir(path).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        if let Some(uid) = owner {
            std::os::unix::fs::chown(path, Some(uid), None).unwrap();
        }
        path.to_owned()
    }

    /// The directory named in an [`Error::UnsafeSocketDir`], or a panic naming the outcome.
    fn refused_at(outcome: Result<impl std::fmt::Debug>) -> (PathBuf, String) {
        match outcome {
            Err(e @ Error::UnsafeSocketDir { .. }) => {
                let text = e.to_string();
                let Error::UnsafeSocketDir { dir, .. } = e else {
                    unreachable!()
                };
                (dir, text)
            }
            other => panic!("expected UnsafeSocketDir, got {other:?}"),
        }
    }

    const NOBODY: u32 = 65534;

    /// A fresh private directory whose whole contents go when it drops.
    struct Sandbox(SocketDir);

    impl Sandbox {
        fn new() -> Sandbox {
            Sandbox(SocketDir::create().unwrap())
        }

        fn dir(&self) -> &Path {
            self.0.dir()
        }
    }

    impl Drop for Sandbox {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(self.0.dir());
        }
    }

    fn root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    #[test]
    fn a_socket_in_a_directory_others_can_write_is_refused() {
        let sandbox = Sandbox::new();
        let base = sandbox.dir();
        let ours = dir_with(&base.join("ours"), 0o700, None);
        check_socket_dir(&ours.join("s.sock")).unwrap();
        // Read and search for others is fine: the socket is 0600 and peers are checked.
        let open = dir_with(&base.join("readable"), 0o755, None);
        check_socket_dir(&open.join("s.sock")).unwrap();
        for (name, mode) in [("world", 0o777), ("group", 0o770), ("sticky", 0o1777)] {
            let dir = dir_with(&base.join(name), mode, None);
            let (at, text) = refused_at(check_socket_dir(&dir.join("s.sock")));
            assert_eq!(at, dir, "{text}");
            assert!(
                text.contains("writable by other users") && text.contains("fix:"),
                "{text}"
            );
        }
        // Below a 0777 directory without the sticky bit, even our own 0700 one is refused.
        let deep = dir_with(&base.join("world").join("mine"), 0o700, None);
        let (at, text) = refused_at(check_socket_dir(&deep.join("s.sock")));
        assert_eq!(at, base.join("world"), "{text}");
        assert!(text.contains("without the sticky bit"), "{text}");
        // Below a sticky one (like /tmp) it is fine.
        let under_sticky = dir_with(&base.join("sticky").join("mine"), 0o700, None);
        check_socket_dir(&under_sticky.join("s.sock")).unwrap();
    }

    #[test]
    fn a_socket_in_a_directory_of_another_user_is_refused() {
        if !root() {
            eprintln!("skipped: needs root to make directories of another uid");
            return;
        }
        let sandbox = Sandbox::new();
        let base = sandbox.dir();
        let theirs = dir_with(&base.join("theirs"), 0o700, Some(NOBODY));
        let (at, text) = refused_at(check_socket_dir(&theirs.join("s.sock")));
        assert_eq!(at, theirs);
        assert!(text.contains("owned by uid 65534"), "{text}");
        // Their directory above ours: they could rename ours away.
        let above = dir_with(&base.join("above"), 0o755, Some(NOBODY));
        let mine = dir_with(&above.join("mine"), 0o700, Some(0));
        let (at, _) = refused_at(check_socket_dir(&mine.join("s.sock")));
        assert_eq!(at, above);
    }

    #[test]
    fn symbolic_links_on_the_way_must_be_ours_and_lead_somewhere_safe() {
        let sandbox = Sandbox::new();
        let base = sandbox.dir();
        let ours = dir_with(&base.join("ours"), 0o700, None);
        let world = dir_with(&base.join("world"), 0o777, None);
        // Our own link to our own directory: fine, and relative targets resolve.
        std::os::unix::fs::symlink("ours", base.join("link")).unwrap();
        check_socket_dir(&base.join("link").join("s.sock")).unwrap();
        // Our link into a directory others can write: the target is what is checked.
        std::os::unix::fs::symlink(&world, base.join("to-world")).unwrap();
        let (at, _) = refused_at(check_socket_dir(&base.join("to-world").join("s.sock")));
        assert_eq!(at, world);
        // `..` after a link climbs from the link's target, as the kernel does.
        let inner = dir_with(&world.join("inner"), 0o700, None);
        std::os::unix::fs::symlink(&inner, ours.join("jump")).unwrap();
        let (at, _) = refused_at(check_socket_dir(&ours.join("jump").join("..").join("s.sock")));
        assert_eq!(at, world);
        if root() {
            // A link another user owns, even to our own directory: they can re-point it.
            let theirs = base.join("their-link");
            std::os::unix::fs::symlink(&ours, &theirs).unwrap();
            std::os::unix::fs::lchown(&theirs, Some(NOBODY), None).unwrap();
            let (at, text) = refused_at(check_socket_dir(&theirs.join("s.sock")));
            assert_eq!(at, theirs);
            assert!(text.contains("symbolic link owned by uid 65534"), "{text}");
        }
        // A loop ends in a refusal, not a hang.
        std::os::unix::fs::symlink("loop", base.join("loop")).unwrap();
        assert!(check_socket_dir(&base.join("loop").join("s.sock")).is_err());
    }

    #[test]
    fn a_base_others_can_write_without_the_sticky_bit_is_refused() {
        let sandbox = Sandbox::new();
        let base = sandbox.dir();
        let world = dir_with(&base.join("world"), 0o777, None);
        let (at, text) = refused_at(check_private_base(&world));
        assert_eq!(at, world, "{text}");
        assert!(
            text.contains("without the sticky bit") && text.contains("TMPDIR"),
            "{text}"
        );
        let (at, _) = refused_at(SocketDir::create_in(&world));
        assert_eq!(at, world);
        assert_eq!(
            std::fs::read_dir(&world).unwrap().count(),
            0,
            "nothing made in it"
        );
        // Below it, even a private base is refused: the private one can be renamed away.
        let below = dir_with(&world.join("below"), 0o700, None);
        assert_eq!(refused_at(check_private_base(&below)).0, world);
        // Sticky (like /tmp) and private bases are fine.
        for (name, mode) in [("sticky", 0o1777), ("private", 0o700), ("readable", 0o755)] {
            let ok = dir_with(&base.join(name), mode, None);
            let made = SocketDir::create_in(&ok).unwrap();
            let meta = std::fs::symlink_metadata(made.dir()).unwrap();
            assert!(
                meta.file_type().is_dir() && meta.mode() & 0o7777 == 0o700,
                "{name}"
            );
            assert_eq!(made.dir().parent(), Some(ok.as_path()));
        }
        if root() {
            let theirs = dir_with(&base.join("theirs"), 0o1777, Some(NOBODY));
            let (at, text) = refused_at(SocketDir::create_in(&theirs));
            assert_eq!(at, theirs);
            assert!(text.contains("owned by uid 65534"), "{text}");
        }
    }

    #[test]
    fn a_base_reached_through_a_link_is_used_by_its_real_path() {
        let sandbox = Sandbox::new();
        let base = sandbox.dir();
        let real = dir_with(&base.join("real"), 0o700, None);
        std::os::unix::fs::symlink(&real, base.join("link")).unwrap();
        assert_eq!(check_private_base(&base.join("link")).unwrap(), real);
        let made = SocketDir::create_in(&base.join("link")).unwrap();
        assert_eq!(
            made.dir().parent(),
            Some(real.as_path()),
            "no link left in the path"
        );
    }

    #[test]
    fn the_new_directory_is_checked_without_following_links() {
        let sandbox = Sandbox::new();
        let base = sandbox.dir();
        let target = dir_with(&base.join("target"), 0o700, None);
        std::os::unix::fs::symlink(&target, base.join("planted")).unwrap();
        let (at, text) = refused_at(verify_private(&base.join("planted")));
        assert_eq!(at, base.join("planted"));
        assert!(text.contains("not the directory we just made"), "{text}");
        std::fs::write(base.join("file"), b"x").unwrap();
        refused_at(verify_private(&base.join("file")));
        // Too open (a generous umask would not do this, but a mode is never trusted): made 0700.
        let open = dir_with(&base.join("open"), 0o755, None);
        verify_private(&open).unwrap();
        let mode = std::fs::symlink_metadata(&open).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o700);
        if root() {
            let theirs = dir_with(&base.join("theirs"), 0o700, Some(NOBODY));
            let (_, text) = refused_at(verify_private(&theirs));
            assert!(text.contains("owned by uid 65534"), "{text}");
        }
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
