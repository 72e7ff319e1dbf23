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
        let (code, _, err) = mikobase(&["serve", "--socket", "/nonexistent/s", "--max-hold", bad], "");
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
        .args(["serve", "--socket", socket.to_str().unwrap()])
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
