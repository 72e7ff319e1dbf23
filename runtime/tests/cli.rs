//! The `mikobase` command line, run as a user runs it.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

fn mikobase(args: &[&str], stdin: &str) -> (i32, Vec<Value>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mikobase"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mikobase");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every stdout line is JSON"))
        .collect();
    (
        out.status.code().unwrap_or(-1),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn q0_session_answers_each_line_and_survives_bad_ones() {
    let input = [
        r#"{"action": "create", "class": "puck.uno/class", "bucket": {"name": "example.org/crew/person", "fields": {"name": {"class": "string", "required": true}}}}"#,
        r#"{"action": "create", "class": "example.org/crew/person", "bucket": {"name": "Ripley"}}"#,
        "this is not json",
        r#"{"action": "create", "class": "example.org/crew/person", "bucket": {}}"#,
        "",
        r#"{"action": "select", "class": "example.org/crew/person"}"#,
    ]
    .join("\n");
    let (code, lines, _) = mikobase(&["q0"], &input);
    assert_eq!(code, 0);
    assert_eq!(lines.len(), 5, "blank lines are skipped");
    assert_eq!(lines[1]["success"], true);
    assert_eq!(lines[2]["errors"][0]["id"], "invalid_request");
    assert_eq!(lines[3]["errors"][0]["id"], "validation-failed");
    assert_eq!(lines[4]["results"]["count"], 1);
    assert_eq!(
        lines[4]["results"]["records"][0]["bucket"],
        json!({"name": "Ripley"})
    );
}

#[test]
fn export_and_import_through_files() {
    let dir = std::env::temp_dir().join(format!("mikobase-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("a.db");
    let db = db.to_str().unwrap();
    let schema = dir.join("schema.json");
    std::fs::write(&schema, r#"{"classes": [{"name": "example.org/ship", "fields": {"name": {"class": "string", "unique": true}}}]}"#).unwrap();
    let (code, lines, err) = mikobase(
        &["q0", "--db", db, "--schema", schema.to_str().unwrap()],
        r#"{"action": "create", "class": "example.org/ship", "bucket": {"name": "Sulaco"}}"#,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(lines[0]["success"], true);
    let out = Command::new(env!("CARGO_BIN_EXE_mikobase"))
        .args(["export", "--db", db])
        .output()
        .unwrap();
    assert!(out.status.success());
    let worldlet: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(worldlet["records"].as_object().unwrap().len(), 2);
    let file = dir.join("w.json");
    std::fs::write(&file, serde_json::to_vec(&worldlet).unwrap()).unwrap();
    let copy = dir.join("b.db");
    let out = Command::new(env!("CARGO_BIN_EXE_mikobase"))
        .args(["import", "--db", copy.to_str().unwrap(), file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(env!("CARGO_BIN_EXE_mikobase"))
        .args(["export", "--db", copy.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap(), worldlet);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_refused_import_exits_2_names_the_problem_and_writes_nothing() {
    let dir = std::env::temp_dir().join(format!("mikobase-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("a.db");
    let file = dir.join("w.json");
    std::fs::write(
        &file,
        r#"{"format": "worldlet/1.0", "records": {
            "c1": {"class": "puck.uno/class", "name": "example.org/ship", "fields": {"name": {"class": "string", "required": true}}},
            "r1": {"bucket": {}, "stack": {"shadow": {}, "a": {"class": "example.org/ship"}}}
        }}"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mikobase"))
        .args(["import", "--db", db.to_str().unwrap(), file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("validation-failed") && err.contains("r1"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_mikobase"))
        .args(["export", "--db", db.to_str().unwrap()])
        .output()
        .unwrap();
    let worldlet: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(worldlet["records"], json!({}), "nothing imported");
    std::fs::write(&file, "not json").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mikobase"))
        .args(["import", "--db", db.to_str().unwrap(), file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not JSON"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn usage_errors_exit_2_with_a_message() {
    for args in [
        vec![],
        vec!["frobnicate"],
        vec!["export"],
        vec!["import", "--db", "/tmp/x.db"],
        vec!["q0", "--bogus"],
        vec!["q0", "requests.json"],
        vec!["serve", "--socket", "/nonexistent/s", "--auth", "password"],
        // The token is made by the server and printed; no option takes one.
        vec!["serve", "--socket", "/nonexistent/s", "--token", "abc"],
    ] {
        let (code, lines, err) = mikobase(&args, "");
        assert_eq!(code, 2, "{args:?}");
        assert!(lines.is_empty());
        assert!(err.starts_with("mikobase: "), "{err}");
        assert!(err.contains("usage"), "{err}");
    }
    let (_, _, err) = mikobase(&["serv", "--socket", "/nonexistent/s"], "");
    assert!(err.contains("a similar subcommand exists: 'serve'"), "{err}");
    let (_, _, err) = mikobase(&[], "");
    assert!(err.starts_with("mikobase: no command given\nusage:"), "{err}");
}

#[test]
fn help_is_printed_on_stdout_and_exits_0() {
    let out = Command::new(env!("CARGO_BIN_EXE_mikobase"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for part in [
        "--socket <PATH>",
        "--max-hold <SECONDS|none>",
        "never read from the command line",
    ] {
        assert!(help.contains(part), "{part}: {help}");
    }
}

#[test]
fn a_store_path_that_is_not_utf8_works() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let dir = std::env::temp_dir().join(format!("mikobase-cli-bytes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join(OsStr::from_bytes(b"store-\xff.db"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_mikobase"))
        .arg("q0")
        .arg("--db")
        .arg(&db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"action": "create", "bucket": {"name": "Ripley"}}"#)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    assert!(db.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn serve_answers_an_external_client_and_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("mikobase-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("db.sock");
    let (mut server, token) = common::serve(&socket);
    let db = caspian_ipc::mikobase::connect(&socket, Some(&token));
    let created = db
        .q0(&json!({"action": "create", "bucket": {"from": "outside"}}))
        .unwrap();
    assert_eq!(created["success"], true, "{created}");
    let stranger = caspian_ipc::mikobase::connect(&socket, Some("wrong"));
    assert!(matches!(
        stranger.q0(&json!({"action": "select"})),
        Err(caspian_ipc::mikobase::ClientError::Transport(
            caspian_ipc::Error::Unauthorized
        ))
    ));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(server.wait().unwrap().success());
    assert!(!socket.exists(), "socket removed on stop");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn serve_with_peer_auth_needs_no_token_and_persists_to_its_file() {
    let dir = std::env::temp_dir().join(format!("mikobase-serve-peer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (socket, db_file) = (dir.join("db.sock"), dir.join("crew.db"));
    let mut server = Command::new(env!("CARGO_BIN_EXE_mikobase"))
        .args(["serve", "--auth", "peer", "--socket", socket.to_str().unwrap()])
        .args(["--db", db_file.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = server.stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    assert!(lines.next().unwrap().unwrap().starts_with("socket: "));
    // Same uid as the server (SO_PEERCRED), no token at all.
    let db = caspian_ipc::mikobase::connect(&socket, None);
    let created = db
        .q0(&json!({"action": "create", "bucket": {"name": "Ripley"}}))
        .unwrap();
    assert_eq!(created["success"], true, "{created}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(server.wait().unwrap().success());
    assert!(
        lines.next().is_none(),
        "peer mode prints no token: nothing after the socket line"
    );
    assert!(!socket.exists(), "socket removed on stop");
    let out = Command::new(env!("CARGO_BIN_EXE_mikobase"))
        .args(["export", "--db", db_file.to_str().unwrap()])
        .output()
        .unwrap();
    let worldlet: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&Value> = worldlet["records"]
        .as_object()
        .unwrap()
        .values()
        .map(|r| &r["bucket"]["name"])
        .collect();
    assert_eq!(names, [&json!("Ripley")], "what was served is in the file");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_new_store_file_is_readable_by_its_owner_alone() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("mikobase-cli-mode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mode_of = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let schema = dir.join("schema.json");
    std::fs::write(
        &schema,
        r#"{"classes": [{"name": "example.org/ship", "fields": {}}]}"#,
    )
    .unwrap();
    let create = r#"{"action": "create", "class": "example.org/ship", "bucket": {}}"#;

    let fresh = dir.join("fresh.db");
    let (code, _, err) = mikobase(
        &[
            "q0",
            "--db",
            fresh.to_str().unwrap(),
            "--schema",
            schema.to_str().unwrap(),
        ],
        create,
    );
    assert_eq!(code, 0, "{err}");
    // Every file of the store (the database and any journal SQLite left) is 0600.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("fresh.db")
        {
            assert_eq!(mode_of(&path), 0o600, "{}", path.display());
        }
    }

    // An existing store keeps the mode its owner gave it.
    let shared = dir.join("shared.db");
    std::fs::write(&shared, b"").unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (code, _, err) = mikobase(
        &[
            "q0",
            "--db",
            shared.to_str().unwrap(),
            "--schema",
            schema.to_str().unwrap(),
        ],
        create,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(mode_of(&shared), 0o640);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn serve_refuses_a_maximum_hold_that_is_not_a_duration() {
    for bad in ["abc", "0", "-3", "inf"] {
        let (code, _, err) = mikobase(
            &[
                "serve",
                "--auth",
                "peer",
                "--socket",
                "/nonexistent/s",
                "--max-hold",
                bad,
            ],
            "",
        );
        assert_eq!(code, 2, "--max-hold {bad}: {err}");
        assert!(
            err.contains("--max-hold takes a positive number of seconds or `none`"),
            "--max-hold {bad}: {err}"
        );
    }
}

#[test]
fn serve_refuses_a_socket_directory_others_can_write() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("mikobase-serve-world-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let socket = dir.join("db.sock");
    let mut server = Command::new(env!("CARGO_BIN_EXE_mikobase"))
        .args(["serve", "--auth", "peer", "--socket", socket.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: a server that wrongly started is killed rather than waited for.
    let started = std::time::Instant::now();
    while server.try_wait().unwrap().is_none() && started.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let _ = server.kill();
    let out = server.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(2), "refused, not served: {err}");
    assert!(out.stdout.is_empty(), "no socket or token announced");
    assert!(
        err.contains("unsafe socket location") && err.contains("writable by other users (mode 0777)"),
        "{err}"
    );
    assert!(err.contains("fix: serve from a directory you own"), "{err}");
    assert!(!socket.exists());
}

/// A `mikobase serve` in a private directory of its own: stopped with SIGTERM (and its
/// directory removed) on drop.
struct Served {
    child: std::process::Child,
    dir: std::path::PathBuf,
    socket: std::path::PathBuf,
    /// The `token:` line it printed, when it was told to expect one.
    token: Option<String>,
}

impl Served {
    /// Starts `mikobase serve --socket DIR/db.sock ARGS` (`{dir}` in ARGS is the
    /// directory) and waits for its `socket:` line (and a `token:` line with `token`).
    fn start(name: &str, args: &[&str], token: bool) -> Served {
        use std::io::BufRead;
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("mikobase-k-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let socket = dir.join("db.sock");
        let shown = dir.to_str().unwrap().to_owned();
        let args: Vec<String> = args.iter().map(|a| a.replace("{dir}", &shown)).collect();
        let mut child = Command::new(env!("CARGO_BIN_EXE_mikobase"))
            .args(["serve", "--socket", socket.to_str().unwrap()])
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().and_then(|l| l.ok()).unwrap_or_default();
        assert!(first.starts_with("socket: "), "{args:?}: {first:?}");
        let token = token.then(|| {
            let line = lines.next().unwrap().unwrap();
            line.strip_prefix("token: ").expect("a token line").to_owned()
        });
        Served {
            child,
            dir,
            socket,
            token,
        }
    }

    fn client(&self) -> caspian_ipc::uds::Client {
        caspian_ipc::uds::Client::new(
            &self.socket,
            self.token.clone().map(caspian_ipc::uds::Token::from_string),
            caspian_ipc::uds::ClientConfig::default(),
        )
    }

    /// POST `body` on `path`: the status and the JSON answer.
    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let answer = self
            .client()
            .send(
                caspian_ipc::uds::http::Method::POST,
                path,
                Some(serde_json::to_vec(body).unwrap()),
            )
            .unwrap();
        (answer.status, answer.json().unwrap())
    }

    /// Stops the server; its stderr.
    fn stop(mut self) -> String {
        use std::io::Read;
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        assert!(self.child.wait().unwrap().success());
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        err
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `mikobase ARGS`, expected to be refused (exit 2) before serving: its stderr.
fn refused(args: &[&str]) -> String {
    let (code, lines, err) = mikobase(args, "");
    assert_eq!(code, 2, "{args:?} was not refused: {err}");
    assert!(lines.is_empty(), "{args:?}");
    assert!(err.starts_with("mikobase: "), "{err}");
    err
}

#[test]
fn serve_needs_an_auth_mode_and_refuses_what_does_not_fit_it() {
    let s = ["serve", "--socket", "/nonexistent/s"];
    let with = |more: &[&'static str]| -> Vec<&'static str> { s.iter().chain(more).copied().collect() };
    // No default: the documents say `auth` is required.
    let err = refused(&with(&[]));
    assert!(err.contains("--auth <AUTH>") && err.contains("usage"), "{err}");
    // Open only when meant.
    let err = refused(&with(&["--auth", "open"]));
    assert!(err.contains("add --allow-open to mean it"), "{err}");
    let err = refused(&with(&["--auth", "peer", "--allow-open"]));
    assert!(err.contains("--allow-open goes with --auth open only"), "{err}");
    // A token file, a listener, an exposure need a token.
    let err = refused(&with(&["--auth", "peer", "--token-file", "/nonexistent/t"]));
    assert!(err.contains("--token-file goes with --auth token"), "{err}");
    let err = refused(&with(&[
        "--auth",
        "open",
        "--allow-open",
        "--token-file",
        "/nonexistent/t",
        "--listen",
        "127.0.0.1:0",
        "--insecure",
    ]));
    assert!(err.contains("--token-file goes with --auth token"), "{err}");
    // Read-only needs a store to read; it cannot take posted updates.
    let err = refused(&with(&["--auth", "peer", "--read-only"]));
    assert!(err.contains("--read-only needs --db PATH"), "{err}");
    let err = refused(&with(&[
        "--auth",
        "peer",
        "--read-only",
        "--post-updates",
        "--db",
        "/x.db",
    ]));
    assert!(err.contains("cannot be used with"), "{err}");
    // No option takes a token value.
    let err = refused(&with(&[
        "--auth",
        "token",
        "--token",
        "0123456789abcdef0123456789abcdef",
    ]));
    assert!(err.contains("--token"), "{err}");
}

#[test]
fn serve_auth_open_serves_without_any_check_and_warns() {
    let served = Served::start("open", &["--auth", "open", "--allow-open"], false);
    let db = caspian_ipc::mikobase::connect(&served.socket, None);
    let created = db
        .q0(&json!({"action": "create", "bucket": {"name": "Ripley"}}))
        .unwrap();
    assert_eq!(created["success"], true, "{created}");
    let err = served.stop();
    assert!(
        err.contains("mikobase: warning: --auth open: no token and no peer check"),
        "{err}"
    );
}

#[test]
fn serve_auth_peer_refuses_nobody_of_our_uid_and_prints_no_token() {
    let served = Served::start("peer", &["--auth", "peer"], false);
    let (status, answer) = served.post("/q0", &json!({"action": "select"}));
    assert_eq!((status, &answer["success"]), (200, &json!(true)), "{answer}");
    assert_eq!(served.stop(), "", "nothing on stderr");
}

#[test]
fn serve_token_file_is_created_0600_when_missing_and_refused_when_others_can_read_it() {
    use std::os::unix::fs::PermissionsExt;
    let served = Served::start(
        "tokenfile",
        &["--auth", "token", "--token-file", "{dir}/token"],
        false,
    );
    let file = served.dir.join("token");
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let token = caspian_ipc::uds::Token::from_file(&file).unwrap();
    let db = caspian_ipc::mikobase::connect(&served.socket, Some(token.as_str()));
    assert_eq!(db.q0(&json!({"action": "select"})).unwrap()["success"], true);
    let without = caspian_ipc::mikobase::connect(&served.socket, None);
    assert!(matches!(
        without.q0(&json!({"action": "select"})),
        Err(caspian_ipc::mikobase::ClientError::Transport(
            caspian_ipc::Error::Unauthorized
        ))
    ));
    // The same file serves again (read, not replaced); made readable by others, refused.
    let dir = served.dir.clone();
    drop(served);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, format!("{}\n", token.as_str())).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = refused(&[
        "serve",
        "--socket",
        dir.join("db.sock").to_str().unwrap(),
        "--auth",
        "token",
        "--token-file",
        file.to_str().unwrap(),
    ]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        err.contains("readable or writable by others") && err.contains("chmod 600"),
        "{err}"
    );
}

#[test]
fn serve_read_only_answers_reads_and_refuses_every_write_with_403() {
    let dir = std::env::temp_dir().join(format!("mikobase-k-rodb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("crew.db");
    let (code, lines, err) = mikobase(
        &["q0", "--db", db.to_str().unwrap()],
        r#"{"action": "create", "bucket": {"name": "Ripley"}}"#,
    );
    assert_eq!(code, 0, "{err}");
    let pk = lines[0]["results"]["pk"].as_str().unwrap().to_owned();
    let served = Served::start(
        "ro",
        &["--auth", "peer", "--read-only", "--db", db.to_str().unwrap()],
        false,
    );
    let (status, selected) = served.post("/q0", &json!({"action": "select"}));
    assert_eq!(
        (status, &selected["results"]["count"]),
        (200, &json!(1)),
        "{selected}"
    );
    let (status, record) = served.post("/record_by_pk", &json!({"pk": pk}));
    assert_eq!(
        (status, &record["results"]["bucket"]["name"]),
        (200, &json!("Ripley"))
    );
    for write in [
        json!({"action": "create", "bucket": {"name": "Hicks"}}),
        json!({"action": "update", "pk": pk, "bucket": {"name": "Hicks"}}),
        json!({"action": "delete", "pk": pk}),
    ] {
        let (status, refused) = served.post("/q0", &write);
        assert_eq!(status, 403, "{write}: {refused}");
        assert_eq!(refused["errors"][0]["id"], "read-only-connection", "{refused}");
    }
    let (status, refused) = served.post("/import_schema", &json!({"classes": []}));
    assert_eq!(
        (status, &refused["errors"][0]["id"]),
        (403, &json!("read-only-connection")),
        "{refused}"
    );
    drop(served);
    let (_, lines, _) = mikobase(&["q0", "--db", db.to_str().unwrap()], r#"{"action": "select"}"#);
    assert_eq!(lines[0]["results"]["count"], 1, "nothing was written");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn post_worldlet_is_refused_with_how_to_enable_it_unless_post_updates() {
    let served = Served::start("nopost", &["--auth", "peer"], false);
    let (status, answer) = served.post(
        "/worldlet",
        &json!({"format": "worldlet/1.0", "records": {"r1": {"bucket": {}}}}),
    );
    assert_eq!(status, 403, "{answer}");
    assert_eq!(answer["errors"][0]["id"], "action-not-supported");
    assert!(
        answer["errors"][0]["details"]["fix"]
            .as_str()
            .unwrap()
            .contains("mikobase serve --post-updates"),
        "{answer}"
    );
    let (_, selected) = served.post("/q0", &json!({"action": "select"}));
    assert_eq!(selected["results"]["count"], 0, "nothing was written");
}

#[test]
fn post_worldlet_accepts_new_records_skips_identical_ones_and_rejects_conflicts_all_or_nothing() {
    let served = Served::start("post", &["--auth", "token", "--post-updates"], true);
    let ship = json!({"class": "puck.uno/class", "name": "example.org/ship", "fields": {"name": {"class": "string", "required": true}}});
    let sulaco = json!({"class": "example.org/ship", "bucket": {"name": "Sulaco"}});
    let (status, answer) = served.post(
        "/worldlet",
        &json!({"format": "worldlet/1.0", "records": {"c1": ship, "s1": sulaco}}),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!({"success": true, "accepted": ["c1", "s1"], "skipped": [], "rejected": []})
    );
    // The same again: identical to what is stored, so skipped.
    let (status, answer) = served.post(
        "/worldlet",
        &json!({"format": "worldlet/1.0", "records": {"c1": ship, "s1": sulaco}}),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], json!([]));
    assert_eq!(answer["skipped"], json!(["c1", "s1"]));
    // The store's own export posts back as all skipped.
    let (_, exported) = served.post("/export_worldlet", &json!({}));
    let (status, answer) = served.post("/worldlet", &exported["results"]);
    assert_eq!(
        (status, &answer["skipped"]),
        (200, &json!(["c1", "s1"])),
        "{answer}"
    );
    // One conflict (s1 with another bucket): nothing is written, not even the new s2.
    let (status, answer) = served.post(
        "/worldlet",
        &json!({"format": "worldlet/1.0", "records": {
            "s1": {"class": "example.org/ship", "bucket": {"name": "Nostromo"}},
            "s2": {"class": "example.org/ship", "bucket": {"name": "Narcissus"}},
            "c1": ship,
        }}),
    );
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["success"], false);
    assert_eq!(answer["accepted"], json!([]));
    assert_eq!(answer["skipped"], json!(["c1"]));
    assert_eq!(answer["rejected"][0]["pk"], "s1", "{answer}");
    assert!(answer["rejected"][0]["reason"]
        .as_str()
        .unwrap()
        .starts_with("conflict"));
    assert_eq!(
        answer["rejected"][0]["stored"]["bucket"],
        json!({"name": "Sulaco"})
    );
    let (_, missing) = served.post("/record_by_pk", &json!({"pk": "s2"}));
    assert_eq!(missing["errors"][0]["id"], "record_not_found", "s2 not written");
    // A new record the import refuses (a required field missing): nothing written.
    let (status, answer) = served.post(
        "/worldlet",
        &json!({"format": "worldlet/1.0", "records": {
            "s3": {"class": "example.org/ship", "bucket": {"name": "Betty"}},
            "s4": {"class": "example.org/ship", "bucket": {}},
        }}),
    );
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["accepted"], json!([]));
    assert_eq!(answer["rejected"][0]["pk"], "s4", "{answer}");
    assert_eq!(answer["rejected"][0]["reason"], "validation-failed", "{answer}");
    let (_, missing) = served.post("/record_by_pk", &json!({"pk": "s3"}));
    assert_eq!(missing["errors"][0]["id"], "record_not_found", "s3 not written");
    // A deleted pk is not reused.
    let (_, deleted) = served.post("/q0", &json!({"action": "delete", "pk": "s1"}));
    assert_eq!(deleted["success"], true, "{deleted}");
    let (status, answer) = served.post(
        "/worldlet",
        &json!({"format": "worldlet/1.0", "records": {"s1": sulaco}}),
    );
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("deleted"),
        "{answer}"
    );
    // Not a worldlet, another format, a section this engine does not store: refused
    // before anything is compared, even when every record would be skipped.
    for body in [
        json!([1, 2]),
        json!({"records": {"c1": ship}}),
        json!({"format": "worldlet/2.0", "records": {"c1": ship}}),
        json!({"format": "worldlet/1.0", "records": {"c1": ship}, "history": [{"identity": "c1"}]}),
    ] {
        let (status, answer) = served.post("/worldlet", &body);
        assert_eq!(
            (status, &answer["errors"][0]["id"]),
            (400, &json!("invalid_request")),
            "{body}: {answer}"
        );
        assert!(answer["errors"][0]["details"]["fix"].is_string(), "{answer}");
    }
    let (_, selected) = served.post("/q0", &json!({"action": "select", "class": "example.org/ship"}));
    assert_eq!(selected["results"]["count"], 0, "{selected}");
    // It stands alone: refused on a connection holding a transaction.
    let client = served.client();
    let send = |path: &str, body: &Value| {
        let answer = client
            .send(
                caspian_ipc::uds::http::Method::POST,
                path,
                Some(serde_json::to_vec(body).unwrap()),
            )
            .unwrap();
        (answer.status, answer.json().unwrap())
    };
    let (_, opened) = send("/q0", &json!({"action": "transaction"}));
    assert_eq!(opened["success"], true, "{opened}");
    let (status, answer) = send(
        "/worldlet",
        &json!({"format": "worldlet/1.0", "records": {"s9": sulaco}}),
    );
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["errors"][0]["details"]["fix"]
            .as_str()
            .unwrap()
            .contains("commit or roll back"),
        "{answer}"
    );
}

#[test]
fn help_and_version_exit_0_on_stdout() {
    for args in [
        vec!["--help"],
        vec!["-h"],
        vec!["--version"],
        vec!["-V"],
        vec!["help"],
        vec!["help", "serve"],
        vec!["q0", "--help"],
        vec!["validate", "--help"],
        vec!["record-by-pk", "--help"],
        vec!["by-class", "--help"],
        vec!["schema", "--help"],
        vec!["schema", "export", "--help"],
        vec!["schema", "import", "--help"],
        vec!["export", "--help"],
        vec!["import", "--help"],
        vec!["serve", "--help"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_mikobase"))
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(out.stderr.is_empty(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        if args[0].starts_with("-V") || args[0] == "--version" {
            assert_eq!(text.trim(), format!("mikobase {}", env!("CARGO_PKG_VERSION")));
        } else {
            assert!(text.contains("Usage: mikobase"), "{args:?}: {text}");
        }
    }
    let out = Command::new(env!("CARGO_BIN_EXE_mikobase"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for part in [
        "--auth <AUTH>",
        "--allow-open",
        "--token-file <FILE>",
        "--read-only",
        "--post-updates",
    ] {
        assert!(help.contains(part), "{part}: {help}");
    }
}

#[test]
fn validate_record_by_pk_by_class_and_schema_on_a_store_file() {
    let dir = std::env::temp_dir().join(format!("mikobase-k-sub-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("crew.db");
    let db = db.to_str().unwrap();
    let schema = dir.join("schema.json");
    std::fs::write(
        &schema,
        r#"{"classes": [{"name": "example.org/crew/person", "fields": {"name": {"class": "string", "required": true}}}]}"#,
    )
    .unwrap();
    let (code, lines, err) = mikobase(&["schema", "import", "--db", db, schema.to_str().unwrap()], "");
    assert_eq!(code, 0, "{err}");
    assert_eq!(lines[0]["results"]["imported"], 1);
    let (code, lines, _) = mikobase(&["schema", "export", "--db", db], "");
    assert_eq!(code, 0);
    assert_eq!(lines[0]["classes"][0]["name"], "example.org/crew/person");
    let (_, lines, _) = mikobase(
        &["q0", "--db", db],
        r#"{"action": "create", "class": "example.org/crew/person", "bucket": {"name": "Ripley"}}"#,
    );
    let pk = lines[0]["results"]["pk"].as_str().unwrap().to_owned();
    let (code, lines, _) = mikobase(&["record-by-pk", "--db", db, &pk], "");
    assert_eq!(code, 0);
    assert_eq!(lines[0]["results"]["bucket"], json!({"name": "Ripley"}));
    let (code, lines, _) = mikobase(&["record-by-pk", "--db", db, "no-such-pk"], "");
    assert_eq!(code, 1, "the store said no");
    assert_eq!(lines[0]["errors"][0]["id"], "record_not_found");
    let (code, lines, _) = mikobase(&["by-class", "--db", db, "example.org/crew/person"], "");
    assert_eq!(code, 0);
    assert_eq!(lines[0]["results"]["count"], 1);
    // validate: from a file, from stdin (`-` or nothing); it runs nothing.
    let request = dir.join("request.json");
    std::fs::write(
        &request,
        r#"{"action": "create", "class": "example.org/crew/person", "bucket": {}}"#,
    )
    .unwrap();
    let (code, lines, _) = mikobase(&["validate", "--db", db, request.to_str().unwrap()], "");
    assert_eq!(code, 1);
    assert_eq!(lines[0]["errors"][0]["id"], "validation-failed", "{:?}", lines[0]);
    let good = r#"{"action": "create", "class": "example.org/crew/person", "bucket": {"name": "Hicks"}}"#;
    for args in [vec!["validate", "--db", db, "-"], vec!["validate", "--db", db]] {
        let (code, lines, err) = mikobase(&args, good);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert_eq!(lines[0], json!({"errors": [], "warnings": []}));
    }
    let (_, lines, _) = mikobase(&["by-class", "--db", db, "example.org/crew/person"], "");
    assert_eq!(lines[0]["results"]["count"], 1, "validate wrote nothing");
    let err = refused(&["validate", "--db", db, "-"]);
    assert!(err.contains("the request is not JSON"), "{err}");
    // `:memory:` is the in-memory store, as without --db.
    let (code, lines, _) = mikobase(&["schema", "export", "--db", ":memory:"], "");
    assert_eq!((code, &lines[0]), (0, &json!({"classes": []})));
    assert!(!std::path::Path::new(":memory:").exists());
    let err = refused(&["schema", "import", "--db", db, "/nonexistent/schema.json"]);
    assert!(err.contains("/nonexistent/schema.json"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_misspelt_action_or_class_gets_a_did_you_mean_and_an_undefined_class_how_to_define_it() {
    let define = r#"{"action": "create", "class": "puck.uno/class", "bucket": {"name": "example.org/crew/person", "fields": {}}}"#;
    let input = [
        define,
        r#"{"action": "selct"}"#,
        r#"{"action": "select", "class": "example.org/crew/persn"}"#,
        r#"{"action": "select", "class": "example.org/zzzzzzzz/qqqq"}"#,
    ]
    .join("\n");
    let (code, lines, err) = mikobase(&["q0"], &input);
    assert_eq!(code, 0);
    assert_eq!(lines.len(), 4, "stdout carries the envelopes unchanged");
    assert_eq!(lines[1]["errors"][0]["id"], "action-not-supported");
    assert!(
        err.contains("mikobase: line 2: action `selct` is not supported: did you mean `select`?"),
        "{err}"
    );
    assert!(
        err.contains("mikobase: line 3: class `example.org/crew/persn` is not defined: did you mean `example.org/crew/person`?"),
        "{err}"
    );
    assert!(
        err.contains("line 3: to define `example.org/crew/persn`: create a record of class puck.uno/class"),
        "{err}"
    );
    assert!(
        !err.contains("line 4: class"),
        "nothing near enough: no guess: {err}"
    );
    assert!(
        err.contains("line 4: to define `example.org/zzzzzzzz/qqqq`"),
        "{err}"
    );
    // A one-shot command and validate too.
    let (code, _, err) = mikobase(&["by-class", "puck.uno/recrd"], "");
    assert_eq!(code, 1);
    assert!(err.contains("did you mean `puck.uno/record`?"), "{err}");
    let (code, _, err) = mikobase(&["validate"], r#"{"action": "updte"}"#);
    assert_eq!(code, 1);
    assert!(err.contains("did you mean `update`?"), "{err}");
}

#[test]
fn a_postgres_url_selects_postgresql_and_never_carries_a_password() {
    // A password in the URL would be on the command line: refused before connecting.
    for url in [
        "postgres://ada:secret@localhost/crew",
        "postgresql://ada@localhost/crew?sslmode=disable&password=secret",
    ] {
        let (code, lines, err) = mikobase(&["q0", "--db", url], "");
        assert_eq!(code, 2, "{url}");
        assert!(lines.is_empty());
        assert!(
            err.contains("carries a password") && err.contains("PGPASSFILE"),
            "{err}"
        );
        assert!(!err.contains("secret"), "the password is never repeated: {err}");
    }
    // A URL without one is opened as PostgreSQL (here: no server at that socket).
    let (code, _, err) = mikobase(
        &[
            "q0",
            "--db",
            "postgresql://ada@/crew?host=/nonexistent-socket-dir",
        ],
        "",
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("cannot open the store") && err.contains("postgres"),
        "{err}"
    );
    // The help says where the password comes from.
    let out = Command::new(env!("CARGO_BIN_EXE_mikobase"))
        .args(["q0", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("PostgreSQL URL") && help.contains("PGPASSFILE"),
        "{help}"
    );
}
