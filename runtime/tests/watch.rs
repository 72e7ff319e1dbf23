//! `caspian-ipc watch` and `monitor`, run as a user runs them, against a real server over
//! its socket (`mikobase serve`), attached through an exposure file.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use caspian_ipc::uds::{Exposure, Token};
use serde_json::json;

/// A private directory with `mikobase serve` running in it, stopped on drop.
struct Served {
    dir: PathBuf,
    socket: PathBuf,
    token: String,
    server: Child,
}

impl Served {
    fn start(name: &str) -> Served {
        let dir = std::env::temp_dir().join(format!("caspian-watch-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let socket = dir.join("db.sock");
        let (server, token) = common::serve(&socket);
        Served {
            dir,
            socket,
            token,
            server,
        }
    }

    fn stop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.server.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.server.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn caspian_ipc(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_caspian-ipc"));
    command.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

/// Waits (bounded) for `child` to exit; its stdout, stderr and exit code.
fn finish(mut child: Child, within: Duration) -> (String, String, Option<i32>) {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() && started.elapsed() < within {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let status = child.wait().unwrap();
    let (mut out, mut err) = (String::new(), String::new());
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (out, err, status.code())
}

fn expose(served: &Served) -> (Exposure, String) {
    let file = served.dir.join("job.json");
    let exposure = Exposure::write(
        &file,
        &served.socket,
        &Token::from_string(served.token.clone()),
        "shared-mikobase",
    )
    .unwrap();
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the exposure file holds a token: its owner's alone");
    (exposure, file.to_str().unwrap().to_owned())
}

#[test]
fn monitor_shows_each_operation_as_it_happens() {
    let served = Served::start("monitor");
    let (_exposure, file) = expose(&served);
    let mut monitor = caspian_ipc(&["monitor", &file, "--count", "2", "--for", "20"])
        .spawn()
        .unwrap();
    // It says so on stderr once it listens; only operations after that are shown.
    let mut err = BufReader::new(monitor.stderr.take().unwrap());
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    assert!(first.starts_with("-- monitoring shared-mikobase"), "{first}");
    let db = caspian_ipc::mikobase::connect(&served.socket, Some(&served.token));
    db.q0(&json!({"action": "create", "bucket": {"name": "Ripley"}}))
        .unwrap();
    db.q0(&json!({"action": "select"})).unwrap();
    monitor.stderr = None;
    let started = Instant::now();
    while monitor.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = monitor.kill();
    let status = monitor.wait().unwrap();
    let mut out = String::new();
    monitor.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert!(status.success(), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].contains("POST /q0") && lines[0].contains("Ripley") && lines[0].ends_with("→ 200"),
        "{out}"
    );
    assert!(lines[1].contains("\"select\""), "{out}");
}

#[test]
fn watch_shows_the_state_and_the_end_of_the_job() {
    let mut served = Served::start("watch");
    let (_exposure, file) = expose(&served);
    let db = caspian_ipc::mikobase::connect(&served.socket, Some(&served.token));
    db.q0(&json!({"action": "create", "bucket": {"name": "Hicks"}}))
        .unwrap();
    let (out, err, code) = finish(
        caspian_ipc(&["watch", &file, "--times", "1"]).spawn().unwrap(),
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("-- shared-mikobase pid "), "{out}");
    assert!(out.contains("1 requests") && out.contains("Hicks"), "{out}");
    served.stop();
    let (out, err, code) = finish(
        caspian_ipc(&["watch", &file]).spawn().unwrap(),
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("the job ended"), "{out}");
}

#[test]
fn an_exposure_file_others_could_read_or_write_is_refused() {
    let served = Served::start("refuse");
    let (_exposure, file) = expose(&served);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (_, err, code) = finish(
        caspian_ipc(&["watch", &file]).spawn().unwrap(),
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("mode 644") && err.contains("0600"), "{err}");
    let (_, err, code) = finish(
        caspian_ipc(&[
            "monitor",
            Path::new(&file).with_extension("gone").to_str().unwrap(),
        ])
        .spawn()
        .unwrap(),
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("expose"), "{err}");
    let (_, err, code) = finish(
        caspian_ipc(&["watch", &file, "--every", "soon"]).spawn().unwrap(),
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("usage"), "{err}");
}

#[test]
fn serve_exposes_itself_without_printing_its_token() {
    let dir = std::env::temp_dir().join(format!("caspian-watch-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let (socket, file) = (dir.join("db.sock"), dir.join("db.json"));
    let mut server = Command::new(env!("CARGO_BIN_EXE_mikobase"))
        .args([
            "serve",
            "--auth",
            "token",
            "--socket",
            socket.to_str().unwrap(),
            "--expose",
            file.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let announced: Vec<String> = (0..2).map(|_| lines.next().unwrap().unwrap()).collect();
    assert!(
        announced[0].starts_with("socket: ") && announced[1].starts_with("exposed: "),
        "{announced:?}"
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let (out, err, code) = finish(
        caspian_ipc(&["watch", file.to_str().unwrap(), "--times", "1"])
            .spawn()
            .unwrap(),
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("-- shared-mikobase"), "{out}");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    assert!(server.wait().unwrap().success());
    assert!(
        !file.exists(),
        "the exposure file is removed when the server stops"
    );
    let refused = Command::new(env!("CARGO_BIN_EXE_mikobase"))
        .args([
            "serve",
            "--socket",
            socket.to_str().unwrap(),
            "--auth",
            "peer",
            "--expose",
            file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--expose needs --auth token"));
    std::fs::remove_dir_all(&dir).unwrap();
}
