//! `mikobase serve --listen` from the command line, as a user runs it: TCP+TLS beside the
//! socket, the token from a 0600 file, and the refusals of plain TCP (D-N2). Loopback
//! only; a throwaway CA and certificate (rcgen) in a private temp directory.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use caspian_ipc::uds::{Token, Trust};
use serde_json::json;

/// A private directory with a CA, a server certificate for 127.0.0.1, its key and a token
/// file; removed on drop.
struct Files {
    dir: PathBuf,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    token: PathBuf,
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn files(name: &str) -> Files {
    let dir = std::env::temp_dir().join(format!("mikobase-tls-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let write = |file: &str, text: &str| {
        let path = dir.join(file);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    };
    Files {
        ca: write("ca.pem", &ca.pem()),
        cert: write("cert.pem", &cert.pem()),
        key: write("key.pem", &key.serialize_pem()),
        token: write("token", Token::generate().unwrap().as_str()),
        dir: dir.clone(),
    }
}

fn mikobase(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mikobase"));
    command.args(args).stdin(Stdio::null());
    command
}

/// Stops the server on drop (SIGTERM, then reaped).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.0.wait();
    }
}

#[test]
fn serve_listen_serves_a_mikobase_client_over_tls() {
    let f = files("e2e");
    let socket = f.dir.join("db.sock");
    let p = |path: &PathBuf| path.to_str().unwrap().to_owned();
    let mut child = mikobase(&[
        "serve",
        "--auth",
        "token",
        "--socket",
        &p(&socket),
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        &p(&f.cert),
        "--tls-key",
        &p(&f.key),
        "--token-file",
        &p(&f.token),
    ])
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let mut lines = BufReader::new(stdout).lines();
    assert!(lines.next().unwrap().unwrap().starts_with("socket: "));
    let listen = lines.next().unwrap().unwrap();
    let url = listen
        .strip_prefix("listen: ")
        .expect("a `listen:` line")
        .to_owned();
    assert!(url.starts_with("caspian+tls://127.0.0.1:"), "{url}");
    let token = Token::from_file(&f.token).unwrap();

    let db = caspian_ipc::mikobase::connect_tls(&url, Trust::CaFile(f.ca.clone()), token.clone()).unwrap();
    let created = db
        .q0(&json!({"action": "create", "bucket": {"name": "Ripley"}}))
        .unwrap();
    assert_eq!(created["success"], true, "{created}");
    let selected = db.q0(&json!({"action": "select"})).unwrap();
    assert_eq!(selected["results"]["count"], 1, "{selected}");

    // The socket beside it serves the same store, with the same token.
    let local = caspian_ipc::mikobase::connect(&socket, Some(token.as_str()));
    let selected = local.q0(&json!({"action": "select"})).unwrap();
    assert_eq!(selected["results"]["count"], 1, "{selected}");

    // A wrong token over TLS is refused.
    let wrong =
        caspian_ipc::mikobase::connect_tls(&url, Trust::CaFile(f.ca.clone()), Token::generate().unwrap())
            .unwrap();
    let refused = wrong.q0(&json!({"action": "select"}));
    assert!(format!("{refused:?}").contains("Unauthorized"), "{refused:?}");
    drop(server);
}

fn refused(args: &[&str]) -> String {
    let out = mikobase(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{args:?} was not refused");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn plain_tcp_needs_insecure_and_loopback() {
    let f = files("insecure");
    let socket = f.dir.join("db.sock");
    let (socket, token) = (socket.to_str().unwrap(), f.token.to_str().unwrap());
    let base = [
        "serve",
        "--auth",
        "token",
        "--socket",
        socket,
        "--token-file",
        token,
        "--listen",
    ];
    let with =
        |more: &[&'static str]| -> Vec<&str> { base.iter().copied().chain(more.iter().copied()).collect() };
    // Neither a certificate nor --insecure.
    let message = refused(&with(&["127.0.0.1:0"]));
    assert!(message.contains("--tls-cert"), "{message}");
    // --insecure on an address that is not loopback: refused before binding.
    let message = refused(&with(&["0.0.0.0:0", "--insecure"]));
    assert!(
        message.contains("not a loopback address") && message.contains("--insecure-non-loopback"),
        "{message}"
    );
    // --insecure-non-loopback alone is a usage error.
    let message = refused(&with(&["127.0.0.1:0", "--insecure-non-loopback"]));
    assert!(message.contains("--insecure"), "{message}");
    // --listen without a token file is a usage error: a token never comes from the line.
    let message = refused(&[
        "serve",
        "--auth",
        "token",
        "--socket",
        socket,
        "--listen",
        "127.0.0.1:0",
        "--insecure",
    ]);
    assert!(message.contains("--token-file"), "{message}");
    // --insecure on loopback serves (plain TCP): it starts and announces the URL.
    let mut child = mikobase(&with(&["127.0.0.1:0", "--insecure"]))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let mut lines = BufReader::new(stdout).lines();
    assert!(lines.next().unwrap().unwrap().starts_with("socket: "));
    let listen = lines.next().unwrap().unwrap();
    assert!(listen.starts_with("listen: caspian+tcp://127.0.0.1:"), "{listen}");
    drop(server);
}

#[test]
fn a_token_file_others_can_read_is_refused() {
    let f = files("mode");
    std::fs::set_permissions(&f.token, std::fs::Permissions::from_mode(0o640)).unwrap();
    let socket = f.dir.join("db.sock");
    let message = refused(&[
        "serve",
        "--auth",
        "token",
        "--socket",
        socket.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        f.cert.to_str().unwrap(),
        "--tls-key",
        f.key.to_str().unwrap(),
        "--token-file",
        f.token.to_str().unwrap(),
    ]);
    assert!(message.contains("chmod 600"), "{message}");
}
