//! `mikobase`: the Mikobase engine from the command line.
//!
//! ```text
//! mikobase q0 [--db PATH] [--schema FILE]   one JSON request per stdin line → one envelope per line
//! mikobase export --db PATH                 print the store as a worldlet
//! mikobase import --db PATH FILE            import a worldlet (all or nothing)
//! mikobase serve [--db PATH] --socket PATH [--auth token|peer] [--max-hold SECONDS|none]
//!                                           serve the store to other processes over HTTP
//! ```
//!
//! `serve` prints the socket path and (with `--auth token`, the default) the bearer token
//! on stdout, then serves until SIGTERM or SIGINT. With `--auth peer` there is no token:
//! only processes of the same uid (SO_PEERCRED) that can reach the socket are served.
//! The socket's directory must be ours and writable by us alone, below directories only
//! we or root can change (sticky ones like /tmp are fine above it); otherwise `serve`
//! refuses to start and names the directory to fix.
//! `--max-hold` bounds how long one client may keep a transaction open (default 60 s).
//!
//! Without `--db` the store is in memory. A malformed line gets an `invalid_request`
//! envelope and the session goes on.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use caspian_ipc::mikobase::engine::{Engine, Storage};
use caspian_ipc::mikobase::{MikobaseServer, DEFAULT_MAX_HOLD};
use caspian_ipc::uds::{serve, ServerConfig, Token};
use serde_json::Value;

const USAGE: &str = "usage:
  mikobase q0 [--db PATH] [--schema FILE]
  mikobase export --db PATH
  mikobase import --db PATH FILE
  mikobase serve [--db PATH] --socket PATH [--auth token|peer] [--max-hold SECONDS|none]";

struct Args {
    command: String,
    db: Option<PathBuf>,
    schema: Option<PathBuf>,
    file: Option<PathBuf>,
    socket: Option<PathBuf>,
    auth: Option<String>,
    max_hold: Option<String>,
}

fn parse(mut raw: impl Iterator<Item = String>) -> Result<Args, String> {
    let command = raw.next().ok_or("no command given")?;
    let mut args = Args {
        command,
        db: None,
        schema: None,
        file: None,
        socket: None,
        auth: None,
        max_hold: None,
    };
    while let Some(arg) = raw.next() {
        match arg.as_str() {
            "--db" => args.db = Some(raw.next().ok_or("--db needs a path")?.into()),
            "--schema" => args.schema = Some(raw.next().ok_or("--schema needs a file")?.into()),
            "--socket" => args.socket = Some(raw.next().ok_or("--socket needs a path")?.into()),
            "--auth" => args.auth = Some(raw.next().ok_or("--auth needs `token` or `peer`")?),
            "--max-hold" => args.max_hold = Some(raw.next().ok_or("--max-hold needs seconds or `none`")?),
            flag if flag.starts_with("--") => return Err(format!("unknown option `{flag}`")),
            file if args.file.is_none() => args.file = Some(file.into()),
            extra => return Err(format!("unexpected argument `{extra}`")),
        }
    }
    Ok(args)
}

fn open(db: Option<&PathBuf>) -> Result<Engine, String> {
    let storage = db.map_or(Storage::Memory, |p| Storage::File(p.clone()));
    Engine::open(storage, "rw").map_err(|p| format!("cannot open the store: {} {}", p.id, p.details))
}

fn read_json(path: &PathBuf) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))
}

/// Applies the result envelope of an import: error text when it failed.
fn check(envelope: &Value, what: &str) -> Result<(), String> {
    if envelope["success"] == true {
        Ok(())
    } else {
        Err(format!("{what} failed: {}", envelope["errors"]))
    }
}

fn run(args: Args) -> Result<(), String> {
    match args.command.as_str() {
        "q0" => {
            if args.file.is_some() {
                return Err("q0 reads requests from stdin; it takes no file".into());
            }
            let mut engine = open(args.db.as_ref())?;
            if let Some(schema) = &args.schema {
                let schema = read_json(schema)?;
                // A schema file is either {"classes": [...]} or a worldlet.
                let envelope = if schema.get("format").is_some() {
                    engine.import_worldlet(&schema)
                } else {
                    engine.import_schema(&schema)
                };
                check(&envelope, "loading the schema")?;
            }
            let stdin = std::io::stdin();
            let mut stdout = std::io::stdout().lock();
            for line in stdin.lock().lines() {
                let line = line.map_err(|e| format!("reading stdin: {e}"))?;
                if line.trim().is_empty() {
                    continue;
                }
                let envelope = engine.q0_bytes(0, line.as_bytes());
                writeln!(stdout, "{envelope}").map_err(|e| format!("writing stdout: {e}"))?;
                stdout.flush().map_err(|e| format!("writing stdout: {e}"))?;
            }
            Ok(())
        }
        "export" => {
            let db = args.db.ok_or("export needs --db PATH")?;
            if !db.exists() {
                return Err(format!("{}: no such store", db.display()));
            }
            let mut engine = open(Some(&db))?;
            let envelope = engine.export_worldlet();
            check(&envelope, "export")?;
            println!("{}", envelope["results"]);
            Ok(())
        }
        "import" => {
            let db = args.db.ok_or("import needs --db PATH")?;
            let file = args.file.ok_or("import needs a worldlet FILE")?;
            let worldlet = read_json(&file)?;
            let mut engine = open(Some(&db))?;
            let envelope = engine.import_worldlet(&worldlet);
            check(&envelope, "import")?;
            println!("{envelope}");
            Ok(())
        }
        "serve" => {
            let socket = args.socket.ok_or("serve needs --socket PATH")?;
            let token = match args.auth.as_deref().unwrap_or("token") {
                "token" => Some(Token::generate().map_err(|e| format!("generating a token: {e}"))?),
                "peer" => None,
                other => return Err(format!("--auth takes `token` or `peer`, not `{other}`")),
            };
            let max_hold = match args.max_hold.as_deref() {
                None => Some(DEFAULT_MAX_HOLD),
                Some("none") => None,
                Some(seconds) => Some(
                    seconds
                        .parse::<f64>()
                        .ok()
                        .and_then(|s| Duration::try_from_secs_f64(s).ok())
                        .filter(|d| !d.is_zero())
                        .ok_or_else(|| {
                            format!(
                                "--max-hold takes a positive number of seconds or `none`, not `{seconds}`"
                            )
                        })?,
                ),
            };
            let engine = open(args.db.as_ref())?;
            let announce = token.clone();
            let shown = socket.display().to_string();
            serve(
                &socket,
                token,
                ServerConfig::default(),
                MikobaseServer::new(engine)
                    .max_hold(max_hold)
                    .into_router()
                    .map_err(|e| e.to_string())?,
                move || {
                    println!("socket: {shown}");
                    if let Some(token) = announce {
                        println!("token: {}", token.as_str());
                    }
                    let _ = std::io::stdout().flush();
                },
            )
            .map_err(|e| e.to_string())
        }
        other => Err(format!("unknown command `{other}`")),
    }
}

fn main() -> ExitCode {
    match parse(std::env::args().skip(1)).and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("mikobase: {message}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
