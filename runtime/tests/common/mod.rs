//! What the CLI tests share: starting `mikobase serve` and reading what it announces.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Starts `mikobase serve --auth token --socket SOCKET` and returns it with the token it printed, once
/// it listens (it prints `socket:` then `token:` when it is ready).
pub fn serve(socket: &Path) -> (Child, String) {
    let mut server = Command::new(env!("CARGO_BIN_EXE_mikobase"))
        .args(["serve", "--auth", "token", "--socket", socket.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    assert!(lines.next().unwrap().unwrap().starts_with("socket: "));
    let token = lines
        .next()
        .unwrap()
        .unwrap()
        .strip_prefix("token: ")
        .unwrap()
        .to_owned();
    (server, token)
}
