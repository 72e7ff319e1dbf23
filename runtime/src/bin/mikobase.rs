//! `mikobase`: the Mikobase engine from the command line.
//!
//! ```text
//! mikobase q0 [--db STORE] [--schema FILE]   one JSON request per stdin line → one envelope per line
//! mikobase validate [--db STORE] [--schema FILE] [FILE|-]   check one Q0 request without running it
//! mikobase record-by-pk [--db STORE] PK      the record with that pk
//! mikobase by-class [--db STORE] CLASS       the active records of CLASS and its subclasses
//! mikobase schema export [--db STORE]        print the class definitions {"classes": [...]}
//! mikobase schema import [--db STORE] FILE   import class definitions (all or nothing)
//! mikobase export --db STORE                 print the store as a worldlet
//! mikobase import --db STORE FILE            import a worldlet (all or nothing)
//! mikobase serve [--db STORE] --socket PATH --auth peer|token|open [--allow-open]
//!                [--token-file FILE] [--read-only | --post-updates]
//!                [--max-hold SECONDS|none] [--expose FILE]
//!                                           serve the store to other processes over HTTP
//!                [--listen HOST:PORT (--tls-cert FILE --tls-key FILE | --insecure)]
//!                                           ... and over TCP+TLS to other hosts (--auth token)
//! ```
//!
//! `serve` needs `--auth` (no default, as the Mikobase documents say; D-K1):
//! - `peer`: no token; only processes of our uid (SO_PEERCRED) that can reach the socket;
//! - `token`: every request carries `Authorization: Bearer TOKEN` and comes from our uid
//!   on the socket (by the token alone over `--listen`). The token is read from
//!   `--token-file FILE` (ours, mode 0600 or 0400, refused otherwise; a missing FILE is
//!   created 0600 with a generated token), or generated and printed as `token: TOKEN`
//!   (written into the `--expose` file instead with `--expose`). No option takes a token;
//! - `open`: no check at all (only the socket file's 0600 mode and private directory
//!   remain), and only with `--allow-open`; it warns on stderr.
//!
//! `--read-only` opens the store read-only (an existing `--db` file): every write answers
//! 403 `read-only-connection`, reads work. `--post-updates` serves `POST /worldlet`, the
//! append-only ingress (docs/PROTOCOL.md); without it that route answers 403 saying how to
//! turn it on.
//!
//! `serve` prints the socket path (and a generated token, see above) on stdout, then
//! serves until SIGTERM or SIGINT. The socket's directory must be ours and writable by us
//! alone, below directories only we or root can change (sticky ones like /tmp are fine
//! above it); otherwise `serve` refuses to start and names the directory to fix.
//! `--max-hold` bounds how long one client may keep a transaction open (default 60 s).
//! `--expose FILE` writes the socket and the token into FILE (mode 0600, removed when the
//! server stops) instead of printing the token, for `caspian-ipc watch FILE` / `monitor`
//! and for clients that read it (`caspian_ipc::uds::Exposed`).
//!
//! `--listen HOST:PORT` serves TCP+TLS beside the socket (the certificate chain and key in
//! `--tls-cert` and `--tls-key`, PEM) and prints `listen: caspian+tls://ADDR`; every
//! connection, the socket's too, must then carry the token of `--token-file`, which is
//! not printed. Plain TCP instead of TLS only with `--insecure`, and only on a loopback
//! address unless `--insecure-non-loopback` is given too (D-N2).
//!
//! Without `--db` (or with `--db :memory:`) the store is in memory. `--db` takes a SQLite file, or a PostgreSQL URL
//! (`postgres://` or `postgresql://`, e.g. `postgres://ada@db.example/crew` or
//! `postgresql:///crew?host=/run/postgresql`): never with a password in it (refused):
//! the password comes from `PGPASSWORD` or the password file (`PGPASSFILE`, else
//! `~/.pgpass`), and `PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE` fill what the URL leaves
//! out, as libpq does. Several servers may serve one PostgreSQL database. A malformed line gets an `invalid_request`
//! envelope and the session goes on.
//!
//! `record-by-pk`, `by-class` and `validate` print the answer on stdout and exit 0 when it
//! succeeded, 1 when the store said no (`validate`: when the report has errors). A failed
//! answer that misspells an action or a class gets a `did you mean` hint on stderr (in a
//! `q0` session too, naming the line), and an undefined class a hint on defining it.
//!
//! Arguments are parsed by clap (`mikobase --help`, `mikobase help serve`, `--version`);
//! a usage error or a command that cannot run exits 2 with `mikobase: ` and what went
//! wrong on stderr (a usage error with the usage lines after it).

mod common;

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use caspian_ipc::mikobase::engine::{Engine, Storage};
use caspian_ipc::mikobase::{MikobaseServer, DEFAULT_MAX_HOLD};
use caspian_ipc::uds::{serve_with, Exposure, InsecureScope, ServerConfig, TcpListen, Token};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::Value;

mod hints;

const USAGE: &str = "usage:
  mikobase q0 [--db STORE] [--schema FILE]
  mikobase validate [--db STORE] [--schema FILE] [FILE|-]
  mikobase record-by-pk [--db STORE] PK
  mikobase by-class [--db STORE] CLASS
  mikobase schema export [--db STORE]
  mikobase schema import [--db STORE] FILE
  mikobase export --db STORE
  mikobase import --db STORE FILE
  mikobase serve [--db STORE] --socket PATH --auth peer|token|open [--allow-open] [--token-file FILE]
                 [--read-only | --post-updates] [--max-hold SECONDS|none] [--expose FILE]
                 [--listen HOST:PORT (--tls-cert FILE --tls-key FILE | --insecure [--insecure-non-loopback])]
  mikobase help [COMMAND]";

/// The Mikobase engine from the command line.
#[derive(Parser)]
#[command(name = "mikobase", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `--db`: a store file, in memory, or a PostgreSQL database.
#[derive(Args)]
struct Store {
    /// The store: a SQLite file (created 0600 if missing), `:memory:` (the default), or a
    /// PostgreSQL URL (postgres://user@host/db, no password: PGPASSWORD or
    /// PGPASSFILE/~/.pgpass).
    #[arg(long, value_name = "STORE")]
    db: Option<PathBuf>,
}

impl Store {
    /// The file, `None` for a store in memory.
    fn file(&self) -> Option<&Path> {
        self.db.as_deref().filter(|p| *p != Path::new(":memory:"))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Answer one JSON request per stdin line with one envelope per stdout line.
    Q0 {
        #[command(flatten)]
        store: Store,
        /// A schema to load first: {"classes": [...]} or a worldlet.
        #[arg(long, value_name = "FILE")]
        schema: Option<PathBuf>,
    },
    /// Check one Q0 request (from FILE, or stdin without it or with `-`) without running
    /// it; print the report {"errors": [...], "warnings": [...]} (exit 1 with errors).
    Validate {
        #[command(flatten)]
        store: Store,
        /// A schema to load first: {"classes": [...]} or a worldlet.
        #[arg(long, value_name = "FILE")]
        schema: Option<PathBuf>,
        /// The request, a JSON file (`-`: stdin).
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Print the record with this pk (exit 1 when there is none).
    RecordByPk {
        #[command(flatten)]
        store: Store,
        /// The record's pk.
        #[arg(value_name = "PK")]
        pk: String,
    },
    /// Print the active records of a class and its subclasses.
    ByClass {
        #[command(flatten)]
        store: Store,
        /// The class name, e.g. example.org/crew/person.
        #[arg(value_name = "CLASS")]
        class: String,
    },
    /// Export or import the class definitions.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Print the store as a worldlet.
    Export {
        /// The store: a SQLite file (it must exist) or a PostgreSQL URL (no password in it).
        #[arg(long, value_name = "STORE")]
        db: PathBuf,
    },
    /// Import a worldlet into the store (all or nothing).
    Import {
        /// The store: a SQLite file (created 0600 if missing) or a PostgreSQL URL (no
        /// password in it).
        #[arg(long, value_name = "STORE")]
        db: PathBuf,
        /// The worldlet, a JSON file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Serve the store to other processes over HTTP on a Unix socket until SIGTERM or SIGINT.
    ///
    /// Prints `socket: PATH` and (with `--auth token` and a generated token) `token: TOKEN`
    /// on stdout; a token is generated here or read from `--token-file`, and never read
    /// from the command line.
    Serve {
        /// The store: a SQLite file, `:memory:` (the default), or a PostgreSQL URL
        /// (postgres://user@host/db, no password: PGPASSWORD or PGPASSFILE/~/.pgpass).
        #[arg(long, value_name = "STORE")]
        db: Option<PathBuf>,
        /// The socket, in a directory only you can write.
        #[arg(long, value_name = "PATH")]
        socket: PathBuf,
        /// Who is let in (required): `peer`, processes of your uid (SO_PEERCRED), no token;
        /// `token`, a bearer token and your uid; `open`, anyone who reaches the socket
        /// (with --allow-open only).
        #[arg(long, value_enum)]
        auth: Auth,
        /// With --auth open: yes, serve without any check.
        #[arg(long)]
        allow_open: bool,
        /// With --auth token: read the token from FILE (yours, mode 0600); a missing FILE
        /// is created 0600 with a generated token. Needed for --listen.
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// Open the store (an existing --db file) read-only: every write is refused with
        /// 403 `read-only-connection`.
        #[arg(long, conflicts_with = "post_updates")]
        read_only: bool,
        /// Serve `POST /worldlet`: append a worldlet's new records, all or nothing.
        #[arg(long)]
        post_updates: bool,
        /// How long one client may keep a transaction open (default 60 s), or `none`.
        #[arg(long, value_name = "SECONDS|none", value_parser = max_hold, allow_negative_numbers = true)]
        max_hold: Option<MaxHold>,
        /// Write the socket and the token into FILE (mode 0600, removed on stop) instead of
        /// printing the token: for `caspian-ipc watch FILE` and other local clients.
        #[arg(long, value_name = "FILE")]
        expose: Option<PathBuf>,
        /// Also serve TCP+TLS on HOST:PORT (port 0 picks one; printed as `listen: URL`).
        #[arg(long, value_name = "HOST:PORT", requires = "token_file")]
        listen: Option<String>,
        /// The server's certificate chain (PEM), for --listen.
        #[arg(
            long,
            value_name = "FILE",
            requires = "listen",
            requires = "tls_key",
            conflicts_with = "insecure"
        )]
        tls_cert: Option<PathBuf>,
        /// The certificate's private key (PEM), for --listen.
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Serve plain TCP on --listen instead of TLS (the token in clear text): loopback
        /// addresses only, unless --insecure-non-loopback.
        #[arg(long, requires = "listen")]
        insecure: bool,
        /// With --insecure, allow an address that is not loopback.
        #[arg(long, requires = "insecure")]
        insecure_non_loopback: bool,
    },
}

#[derive(Subcommand)]
enum SchemaCommand {
    /// Print every active class definition: {"classes": [...]}.
    Export {
        #[command(flatten)]
        store: Store,
    },
    /// Create or replace (by name) the class definitions of FILE, {"classes": [...]}, all
    /// or nothing.
    Import {
        #[command(flatten)]
        store: Store,
        /// The schema, a JSON file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Auth {
    /// The peer's uid alone (SO_PEERCRED), no token.
    Peer,
    /// A bearer token (generated and printed, or from --token-file) and the peer's uid.
    Token,
    /// No check at all (needs --allow-open).
    Open,
}

/// `--max-hold`: a bound, or `none`.
#[derive(Clone, Copy)]
struct MaxHold(Option<Duration>);

fn max_hold(text: &str) -> Result<MaxHold, String> {
    if text == "none" {
        return Ok(MaxHold(None));
    }
    text.parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .filter(|d| !d.is_zero())
        .map(|d| MaxHold(Some(d)))
        .ok_or_else(|| format!("--max-hold takes a positive number of seconds or `none`, not `{text}`"))
}

/// How a command ended: done, or the store answered a failure (exit 1).
enum Done {
    Ok,
    Refused,
}

/// What `--db` names: a PostgreSQL URL (`postgres://`, `postgresql://`) or a SQLite file.
fn storage_of(db: &Path) -> Result<Storage, String> {
    let Some(url) = db
        .to_str()
        .filter(|s| s.starts_with("postgres://") || s.starts_with("postgresql://"))
    else {
        return Ok(Storage::File(db.to_path_buf()));
    };
    if has_password(url) {
        return Err(
            "--db: the URL carries a password, which would be on the command line: leave it out and put it in PGPASSWORD or the password file (PGPASSFILE, else ~/.pgpass, mode 0600)"
                .to_owned(),
        );
    }
    Ok(Storage::Postgres(url.to_owned()))
}

/// Whether a PostgreSQL URL holds a password (`user:password@` or `password=`).
fn has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let (authority, query) = match rest.split_once('?') {
        Some((head, query)) => (head.split('/').next().unwrap_or(""), query),
        None => (rest.split('/').next().unwrap_or(""), ""),
    };
    let in_userinfo = authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'));
    in_userinfo || query.split('&').any(|pair| pair.starts_with("password="))
}

fn is_postgres(db: &Path) -> bool {
    matches!(storage_of(db), Ok(Storage::Postgres(_)))
}

fn open(db: Option<&Path>) -> Result<Engine, String> {
    open_in(db, "rw")
}

fn open_in(db: Option<&Path>, mode: &str) -> Result<Engine, String> {
    let storage = match db {
        Some(db) => storage_of(db)?,
        None => Storage::Memory,
    };
    Engine::open(storage, mode).map_err(|p| format!("cannot open the store: {} {}", p.id, p.details))
}

fn read_json(path: &Path) -> Result<Value, String> {
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

/// Loads `--schema FILE`: {"classes": [...]} or a worldlet.
fn load_schema(engine: &mut Engine, schema: Option<&Path>) -> Result<(), String> {
    let Some(schema) = schema else { return Ok(()) };
    let schema = read_json(schema)?;
    let envelope = if schema.get("format").is_some() {
        engine.import_worldlet(&schema)
    } else {
        engine.import_schema(&schema)
    };
    check(&envelope, "loading the schema")
}

/// Prints `envelope` on stdout, its hints on stderr; `Refused` when it failed.
fn answer(engine: &mut Engine, envelope: &Value) -> Result<Done, String> {
    println!("{envelope}");
    if envelope["success"] == true {
        return Ok(Done::Ok);
    }
    for hint in hints::for_errors(&envelope["errors"], || hints::classes(engine)) {
        eprintln!("mikobase: {hint}");
    }
    Ok(Done::Refused)
}

/// `--token-file FILE`: the token in it, or (FILE missing) a generated one written into a
/// new FILE, mode 0600. Never printed.
fn token_from(file: &Path) -> Result<Token, String> {
    use std::os::unix::fs::OpenOptionsExt;
    if file.symlink_metadata().is_ok() {
        return Token::from_file(file).map_err(|e| e.to_string());
    }
    let token = Token::generate().map_err(|e| format!("generating a token: {e}"))?;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .map_err(|e| format!("token file {}: cannot be created: {e}", file.display()))?;
    writeln!(out, "{}", token.as_str())
        .map_err(|e| format!("token file {}: cannot be written: {e}", file.display()))?;
    Ok(token)
}

fn run(command: Command) -> Result<Done, String> {
    match command {
        Command::Q0 { store, schema } => {
            let mut engine = open(store.file())?;
            load_schema(&mut engine, schema.as_deref())?;
            let stdin = std::io::stdin();
            let mut stdout = std::io::stdout().lock();
            for (number, line) in stdin.lock().lines().enumerate() {
                let line = line.map_err(|e| format!("reading stdin: {e}"))?;
                if line.trim().is_empty() {
                    continue;
                }
                let envelope = engine.q0_bytes(0, line.as_bytes());
                writeln!(stdout, "{envelope}").map_err(|e| format!("writing stdout: {e}"))?;
                stdout.flush().map_err(|e| format!("writing stdout: {e}"))?;
                if envelope["success"] != true {
                    for hint in hints::for_errors(&envelope["errors"], || hints::classes(&mut engine)) {
                        eprintln!("mikobase: line {}: {hint}", number + 1);
                    }
                }
            }
            Ok(Done::Ok)
        }
        Command::Validate { store, schema, file } => {
            let text = match file.as_deref() {
                Some(path) if path != Path::new("-") => {
                    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?
                }
                _ => {
                    let mut text = String::new();
                    std::io::stdin()
                        .read_to_string(&mut text)
                        .map_err(|e| format!("reading stdin: {e}"))?;
                    text
                }
            };
            let request: Value =
                serde_json::from_str(&text).map_err(|e| format!("the request is not JSON: {e}"))?;
            let mut engine = open(store.file())?;
            load_schema(&mut engine, schema.as_deref())?;
            let report = engine.validate(&request);
            println!("{report}");
            let errors = report["errors"].as_array().is_some_and(|e| !e.is_empty());
            if !errors {
                return Ok(Done::Ok);
            }
            for hint in hints::for_errors(&report["errors"], || hints::classes(&mut engine)) {
                eprintln!("mikobase: {hint}");
            }
            Ok(Done::Refused)
        }
        Command::RecordByPk { store, pk } => {
            let mut engine = open(store.file())?;
            let envelope = engine.record_by_pk(&pk);
            answer(&mut engine, &envelope)
        }
        Command::ByClass { store, class } => {
            let mut engine = open(store.file())?;
            let envelope = engine.by_class(&class);
            answer(&mut engine, &envelope)
        }
        Command::Schema(SchemaCommand::Export { store }) => {
            let mut engine = open(store.file())?;
            let envelope = engine.export_schema();
            check(&envelope, "schema export")?;
            println!("{}", envelope["results"]);
            Ok(Done::Ok)
        }
        Command::Schema(SchemaCommand::Import { store, file }) => {
            let schema = read_json(&file)?;
            let mut engine = open(store.file())?;
            let envelope = engine.import_schema(&schema);
            check(&envelope, "schema import")?;
            println!("{envelope}");
            Ok(Done::Ok)
        }
        Command::Export { db } => {
            if !is_postgres(&db) && !db.exists() {
                return Err(format!("{}: no such store", db.display()));
            }
            let mut engine = open(Some(&db))?;
            let envelope = engine.export_worldlet();
            check(&envelope, "export")?;
            println!("{}", envelope["results"]);
            Ok(Done::Ok)
        }
        Command::Import { db, file } => {
            let worldlet = read_json(&file)?;
            let mut engine = open(Some(&db))?;
            let envelope = engine.import_worldlet(&worldlet);
            check(&envelope, "import")?;
            println!("{envelope}");
            Ok(Done::Ok)
        }
        Command::Serve {
            db,
            socket,
            auth,
            allow_open,
            token_file,
            read_only,
            post_updates,
            max_hold,
            expose,
            listen,
            tls_cert,
            tls_key,
            insecure,
            insecure_non_loopback,
        } => {
            let db = Store { db }.file().map(Path::to_path_buf);
            match auth {
                Auth::Open if !allow_open => {
                    return Err("--auth open serves every process that reaches the socket without any check: add --allow-open to mean it, or use --auth peer (your uid only)".into())
                }
                Auth::Peer | Auth::Token if allow_open => {
                    return Err("--allow-open goes with --auth open only".into())
                }
                Auth::Peer | Auth::Open if token_file.is_some() => {
                    return Err("--token-file goes with --auth token".into())
                }
                Auth::Peer | Auth::Open if listen.is_some() => {
                    return Err("--listen needs --auth token: a TCP peer has no uid to check, so the token is all that lets it in".into())
                }
                _ => {}
            }
            if read_only && db.is_none() {
                return Err("--read-only needs --db PATH, an existing store: a new in-memory store has nothing to read".into());
            }
            let tcp = match (&listen, &tls_cert, &tls_key) {
                (None, _, _) => None,
                (Some(address), Some(cert), Some(key)) => {
                    Some(TcpListen::tls(address, cert, key).map_err(|e| e.to_string())?)
                }
                (Some(address), _, _) if insecure => {
                    let scope = if insecure_non_loopback {
                        InsecureScope::AnyAddress
                    } else {
                        InsecureScope::LoopbackOnly
                    };
                    Some(TcpListen::insecure(address, scope).map_err(|e| e.to_string())?)
                }
                (Some(_), _, _) => {
                    return Err("--listen needs --tls-cert FILE and --tls-key FILE (or --insecure, for plain TCP on loopback)".into())
                }
            };
            let token = match (auth, &token_file) {
                (Auth::Token, Some(file)) => Some(token_from(file)?),
                (Auth::Token, None) => {
                    Some(Token::generate().map_err(|e| format!("generating a token: {e}"))?)
                }
                (Auth::Peer | Auth::Open, _) => None,
            };
            // Written before the socket is bound: a client reading it retries its connect
            // for the moment that takes. Removed when `serve` returns (on SIGTERM/SIGINT).
            let exposure = match (&expose, &token) {
                (Some(file), Some(token)) => Some(
                    Exposure::write(file, &socket, token, "shared-mikobase").map_err(|e| e.to_string())?,
                ),
                (Some(_), None) => {
                    return Err("--expose needs --auth token: the file carries the token".into())
                }
                (None, _) => None,
            };
            let max_hold = max_hold.map_or(Some(DEFAULT_MAX_HOLD), |MaxHold(bound)| bound);
            let engine = open_in(db.as_deref(), if read_only { "r" } else { "rw" })?;
            if auth == Auth::Open {
                eprintln!(
                    "mikobase: warning: --auth open: no token and no peer check; every process that can open {} is served",
                    socket.display()
                );
            }
            // A token from a file is known to its clients already: never printed.
            let announce = token
                .clone()
                .filter(|_| exposure.is_none() && token_file.is_none());
            let exposed = exposure.as_ref().map(|e| e.path().display().to_string());
            let shown = socket.display().to_string();
            let url = tcp.as_ref().map(|listen| listen.url().to_owned());
            let config = ServerConfig {
                check_peer_uid: auth != Auth::Open,
                ..ServerConfig::default()
            };
            serve_with(
                &socket,
                tcp.as_ref(),
                token,
                config,
                MikobaseServer::new(engine)
                    .max_hold(max_hold)
                    .post_updates(post_updates)
                    .into_router()
                    .map_err(|e| e.to_string())?,
                move || {
                    println!("socket: {shown}");
                    if let Some(url) = url {
                        println!("listen: {url}");
                    }
                    if let Some(token) = announce {
                        println!("token: {}", token.as_str());
                    }
                    if let Some(file) = exposed {
                        println!("exposed: {file}");
                    }
                    let _ = std::io::stdout().flush();
                },
            )
            .map_err(|e| e.to_string())?;
            Ok(Done::Ok)
        }
    }
}

fn main() -> ExitCode {
    let cli = match common::parse::<Cli>("mikobase", USAGE) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match run(cli.command) {
        Ok(Done::Ok) => ExitCode::SUCCESS,
        Ok(Done::Refused) => ExitCode::from(1),
        Err(message) => {
            eprintln!("mikobase: {message}");
            ExitCode::from(2)
        }
    }
}
