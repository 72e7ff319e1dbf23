//! `mikobase`: the Mikobase engine from the command line.
//!
//! ```text
//! mikobase q0 [--db STORE] [--schema FILE]  one JSON request per stdin line → one envelope per line
//! mikobase export --db STORE                print the store as a worldlet
//! mikobase import --db STORE FILE           import a worldlet (all or nothing)
//! mikobase serve [--db STORE] --socket PATH [--auth token|peer] [--max-hold SECONDS|none]
//!                [--expose FILE]            serve the store to other processes over HTTP
//!                [--listen HOST:PORT --token-file FILE (--tls-cert FILE --tls-key FILE | --insecure)]
//!                                           ... and over TCP+TLS to other hosts
//! ```
//!
//! `serve` prints the socket path and (with `--auth token`, the default) the bearer token
//! on stdout, then serves until SIGTERM or SIGINT. With `--auth peer` there is no token:
//! only processes of the same uid (SO_PEERCRED) that can reach the socket are served.
//! The socket's directory must be ours and writable by us alone, below directories only
//! we or root can change (sticky ones like /tmp are fine above it); otherwise `serve`
//! refuses to start and names the directory to fix.
//! `--max-hold` bounds how long one client may keep a transaction open (default 60 s).
//! `--expose FILE` writes the socket and the token into FILE (mode 0600, removed when the
//! server stops) instead of printing the token, for `caspian-ipc watch FILE` / `monitor`
//! and for clients that read it (`caspian_ipc::uds::Exposed`).
//!
//! `--listen HOST:PORT` serves TCP+TLS beside the socket (the certificate chain and key in
//! `--tls-cert` and `--tls-key`, PEM) and prints `listen: caspian+tls://ADDR`; every
//! connection, the socket's too, must then carry the token read from `--token-file` (a
//! file of ours that nobody else can read: refused otherwise), which is not printed.
//! Plain TCP instead of TLS only with `--insecure`, and only on a loopback address unless
//! `--insecure-non-loopback` is given too (D-N2).
//!
//! Without `--db` the store is in memory. `--db` takes a SQLite file, or a PostgreSQL URL
//! (`postgres://` or `postgresql://`, e.g. `postgres://ada@db.example/crew` or
//! `postgresql:///crew?host=/run/postgresql`): never with a password in it (refused):
//! the password comes from `PGPASSWORD` or the password file (`PGPASSFILE`, else
//! `~/.pgpass`), and `PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE` fill what the URL leaves
//! out, as libpq does. Several servers may serve one PostgreSQL database. A malformed line gets an `invalid_request`
//! envelope and the session goes on.
//!
//! Arguments are parsed by clap (`mikobase --help`, `mikobase help serve`); a usage error
//! or a failed command exits 2 with `mikobase: ` and what went wrong on stderr (a usage
//! error with the usage lines after it).

mod common;

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use caspian_ipc::mikobase::engine::{Engine, Storage};
use caspian_ipc::mikobase::{MikobaseServer, DEFAULT_MAX_HOLD};
use caspian_ipc::uds::{serve_with, Exposure, InsecureScope, ServerConfig, TcpListen, Token};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::Value;

const USAGE: &str = "usage:
  mikobase q0 [--db STORE] [--schema FILE]
  mikobase export --db STORE
  mikobase import --db STORE FILE
  mikobase serve [--db STORE] --socket PATH [--auth token|peer] [--max-hold SECONDS|none] [--expose FILE]
                 [--listen HOST:PORT --token-file FILE (--tls-cert FILE --tls-key FILE | --insecure [--insecure-non-loopback])]
  mikobase help [COMMAND]";

/// The Mikobase engine from the command line.
#[derive(Parser)]
#[command(name = "mikobase", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Answer one JSON request per stdin line with one envelope per stdout line.
    Q0 {
        /// The store: a SQLite file (created 0600 if missing) or a PostgreSQL URL
        /// (postgres://user@host/db, no password: PGPASSWORD or PGPASSFILE/~/.pgpass);
        /// in memory without it.
        #[arg(long, value_name = "STORE")]
        db: Option<PathBuf>,
        /// A schema to load first: {"classes": [...]} or a worldlet.
        #[arg(long, value_name = "FILE")]
        schema: Option<PathBuf>,
    },
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
    /// Prints `socket: PATH` and (with `--auth token`) `token: TOKEN` on stdout; the token is
    /// generated here and never read from the command line.
    Serve {
        /// The store: a SQLite file or a PostgreSQL URL (postgres://user@host/db, no
        /// password: PGPASSWORD or PGPASSFILE/~/.pgpass); in memory without it.
        #[arg(long, value_name = "STORE")]
        db: Option<PathBuf>,
        /// The socket, in a directory only you can write.
        #[arg(long, value_name = "PATH")]
        socket: PathBuf,
        /// `token`: clients send the printed bearer token; `peer`: processes of your uid only.
        #[arg(long, value_enum, default_value_t = Auth::Token)]
        auth: Auth,
        /// How long one client may keep a transaction open (default 60 s), or `none`.
        #[arg(long, value_name = "SECONDS|none", value_parser = max_hold, allow_negative_numbers = true)]
        max_hold: Option<MaxHold>,
        /// Write the socket and the token into FILE (mode 0600, removed on stop) instead of
        /// printing the token: for `caspian-ipc watch FILE` and other local clients.
        #[arg(long, value_name = "FILE")]
        expose: Option<PathBuf>,
        /// Also serve TCP+TLS on HOST:PORT (port 0 picks one; printed as `listen: URL`).
        #[arg(
            long,
            value_name = "HOST:PORT",
            requires = "token_file",
            conflicts_with = "auth"
        )]
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
        /// The token every connection must carry, read from FILE (yours, mode 0600); for
        /// --listen, instead of a generated one.
        #[arg(long, value_name = "FILE", requires = "listen")]
        token_file: Option<PathBuf>,
        /// Serve plain TCP on --listen instead of TLS (the token in clear text): loopback
        /// addresses only, unless --insecure-non-loopback.
        #[arg(long, requires = "listen")]
        insecure: bool,
        /// With --insecure, allow an address that is not loopback.
        #[arg(long, requires = "insecure")]
        insecure_non_loopback: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Auth {
    /// A bearer token (printed on stdout) and the peer's uid.
    Token,
    /// The peer's uid alone (SO_PEERCRED).
    Peer,
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
    let storage = match db {
        Some(db) => storage_of(db)?,
        None => Storage::Memory,
    };
    Engine::open(storage, "rw").map_err(|p| format!("cannot open the store: {} {}", p.id, p.details))
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

fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Q0 { db, schema } => {
            let mut engine = open(db.as_deref())?;
            if let Some(schema) = &schema {
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
        Command::Export { db } => {
            if !is_postgres(&db) && !db.exists() {
                return Err(format!("{}: no such store", db.display()));
            }
            let mut engine = open(Some(&db))?;
            let envelope = engine.export_worldlet();
            check(&envelope, "export")?;
            println!("{}", envelope["results"]);
            Ok(())
        }
        Command::Import { db, file } => {
            let worldlet = read_json(&file)?;
            let mut engine = open(Some(&db))?;
            let envelope = engine.import_worldlet(&worldlet);
            check(&envelope, "import")?;
            println!("{envelope}");
            Ok(())
        }
        Command::Serve {
            db,
            socket,
            auth,
            max_hold,
            expose,
            listen,
            tls_cert,
            tls_key,
            token_file,
            insecure,
            insecure_non_loopback,
        } => {
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
                (_, Some(file)) => Some(Token::from_file(file).map_err(|e| e.to_string())?),
                (Auth::Token, None) => {
                    Some(Token::generate().map_err(|e| format!("generating a token: {e}"))?)
                }
                (Auth::Peer, None) => None,
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
            let engine = open(db.as_deref())?;
            // A token from a file is known to its clients already: never printed.
            let announce = token
                .clone()
                .filter(|_| exposure.is_none() && token_file.is_none());
            let exposed = exposure.as_ref().map(|e| e.path().display().to_string());
            let shown = socket.display().to_string();
            let url = tcp.as_ref().map(|listen| listen.url().to_owned());
            serve_with(
                &socket,
                tcp.as_ref(),
                token,
                ServerConfig::default(),
                MikobaseServer::new(engine)
                    .max_hold(max_hold)
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
            .map_err(|e| e.to_string())
        }
    }
}

fn main() -> ExitCode {
    let cli = match common::parse::<Cli>("mikobase", USAGE) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("mikobase: {message}");
            ExitCode::from(2)
        }
    }
}
