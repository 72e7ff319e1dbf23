//! TCP+TLS beside the Unix socket (issue 13, D-N1..D-N5): processes the run did not fork
//! join a shared-hash run over TLS; a client trusts the server by its certificate before
//! it sends the token; every deadline holds over TCP. Loopback only; a throwaway CA and
//! server certificate per run (rcgen) in a private temp directory. Forks, so it runs
//! serially on the main thread; the fake servers run in forked children, reaped in each trial.
//!
//! Run with the environment variable `CASPIAN_TLS_JOIN` set, this binary is instead one
//! remote worker: it joins the URL it names and does its increments.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use caspian_ipc::uds::{ClientConfig, Remote, TcpListen, Token, Trust};
use caspian_ipc::{Error, Share, SharedHash};
use caspian_ipc_tests::{check, check_nothing_left, run_serially, Failed, Trial};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

type Outcome = Result<(), Failed>;

/// Increments each remote worker (and the forked one) makes.
const INCREMENTS: u64 = 200;
/// Remote worker processes.
const REMOTES: u64 = 3;

fn main() {
    if let Ok(spec) = std::env::var("CASPIAN_TLS_JOIN") {
        std::process::exit(remote_worker(&spec));
    }
    run_serially(vec![
        Trial::test(
            "remote_workers_join_over_tls_and_lose_no_update",
            remote_workers_join,
        ),
        Trial::test(
            "a_pinned_certificate_or_fingerprint_is_trusted",
            pinned_certificates,
        ),
        Trial::test(
            "a_wrong_ca_is_refused_before_the_token_is_sent",
            wrong_ca_gets_no_token,
        ),
        Trial::test("a_wrong_token_gets_401", wrong_token_gets_401),
        Trial::test(
            "a_silent_tcp_peer_is_cut_at_the_handshake_deadline",
            silent_peer_is_cut,
        ),
        Trial::test(
            "a_server_that_stops_answering_fails_the_call_in_time",
            stalled_server_times_out,
        ),
        Trial::test(
            "nobody_listening_is_connection_refused_within_the_budget",
            nobody_listening,
        ),
        Trial::test(
            "a_listener_that_never_handshakes_fails_in_time",
            no_handshake_fails_in_time,
        ),
        Trial::test("a_token_file_others_can_read_is_refused", open_token_file_refused),
        Trial::test(
            "tls_connections_share_the_server_limits",
            tls_connections_share_the_limits,
        ),
    ]);
}

/// A throwaway PKI in a private directory: a CA, a server certificate it signed (for
/// `localhost` and 127.0.0.1), its key, a token file (0600). Removed on drop.
struct Pki {
    dir: PathBuf,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    token_file: PathBuf,
    token: Token,
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn pki(name: &str) -> Result<Pki, Failed> {
    let dir = std::env::temp_dir().join(format!("caspian-tls-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    let (ca_pem, cert_pem, key_pem, cert_der, key_der) = make_certificates().map_err(|e| e.to_string())?;
    let write = |file: &str, text: &str| -> Result<PathBuf, Failed> {
        let path = dir.join(file);
        std::fs::write(&path, text)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        Ok(path)
    };
    let token = Token::generate()?;
    Ok(Pki {
        ca: write("ca.pem", &ca_pem)?,
        cert: write("cert.pem", &cert_pem)?,
        key: write("key.pem", &key_pem)?,
        token_file: write("token", token.as_str())?,
        token,
        cert_der,
        key_der,
        dir,
    })
}

type Certificates = (String, String, String, Vec<u8>, Vec<u8>);

/// A CA and a server certificate it signed: (CA PEM, cert PEM, key PEM, cert DER, key DER).
fn make_certificates() -> Result<Certificates, rcgen::Error> {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "caspian-ipc test CA");
    let ca_key = rcgen::KeyPair::generate()?;
    let ca = ca_params.self_signed(&ca_key)?;
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    let key = rcgen::KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca, &ca_key)?;
    Ok((
        ca.pem(),
        cert.pem(),
        key.serialize_pem(),
        cert.der().to_vec(),
        key.serialize_der(),
    ))
}

/// The listener of a run's server on an ephemeral loopback port.
fn listener(pki: &Pki) -> Result<TcpListen, Failed> {
    Ok(TcpListen::tls("127.0.0.1:0", &pki.cert, &pki.key)?)
}

fn remote_worker(spec: &str) -> i32 {
    let parts: Vec<&str> = spec.split('|').collect();
    let [url, ca, token_file] = parts[..] else {
        eprintln!("CASPIAN_TLS_JOIN is URL|CA|TOKEN_FILE");
        return 3;
    };
    let joined = Token::from_file(Path::new(token_file))
        .and_then(|token| SharedHash::join(url, Trust::CaFile(ca.into()), token));
    let hash = match joined {
        Ok(hash) => hash,
        Err(e) => {
            eprintln!("joining {url}: {e}");
            return 1;
        }
    };
    for _ in 0..INCREMENTS {
        if let Err(e) = hash.incr("n", 1) {
            eprintln!("incr: {e}");
            return 1;
        }
    }
    0
}

fn remote_workers_join() -> Outcome {
    let pki = pki("join")?;
    let listen = listener(&pki)?;
    let url = listen.url().to_owned();
    let spec = format!("{url}|{}|{}", pki.ca.display(), pki.token_file.display());
    let exe = std::env::current_exe()?;
    let token = Token::from_file(&pki.token_file)?;
    let state = Share::new(1).listen(listen, token).run(|_, hash| {
        // Processes the run did not fork: started here, they join by URL and token.
        let remotes: Vec<std::process::Child> = (0..REMOTES)
            .map(|_| {
                std::process::Command::new(&exe)
                    .env("CASPIAN_TLS_JOIN", &spec)
                    .stdin(std::process::Stdio::null())
                    .spawn()
            })
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        for _ in 0..INCREMENTS {
            hash.incr("n", 1).map_err(|e| e.to_string())?;
        }
        let mut failed = 0;
        for mut remote in remotes {
            if !remote.wait().map_err(|e| e.to_string())?.success() {
                failed += 1;
            }
        }
        if failed > 0 {
            return Err(format!("{failed} remote worker(s) failed"));
        }
        Ok(())
    })?;
    check(
        state["n"] == (REMOTES + 1) * INCREMENTS,
        format!(
            "lost updates: n = {} (want {})",
            state["n"],
            (REMOTES + 1) * INCREMENTS
        ),
    )?;
    check_nothing_left()
}

fn pinned_certificates() -> Outcome {
    let pki = pki("pin")?;
    let listen = listener(&pki)?;
    let url = listen.url().to_owned();
    let token = pki.token.clone();
    let fingerprint = caspian_ipc::uds::fingerprint_of(&pki.cert_der);
    let cert = pki.cert.clone();
    Share::new(1).listen(listen, token.clone()).run(|_, _| {
        let pinned = SharedHash::join(&url, Trust::PinnedCertificate(cert.clone()), token.clone())?;
        pinned.set("via", &"pinned file")?;
        let by_digest = SharedHash::join(&url, Trust::fingerprint(&fingerprint)?, token.clone())?;
        let seen = by_digest.get_value("via")?;
        if seen != Some(serde_json::json!("pinned file")) {
            return Err(Error::Protocol(format!("read back {seen:?}")));
        }
        let other = Trust::fingerprint(&"AB".repeat(32))?;
        match SharedHash::join(&url, other, token.clone())?.get_value("via") {
            Err(Error::CertificateNotTrusted { .. }) => Ok(()),
            other => Err(Error::Protocol(format!("a wrong pin was not refused: {other:?}"))),
        }
    })?;
    check_nothing_left()
}

/// A fake server in a forked child (no thread in this process, which must stay
/// single-threaded to fork runs): it serves `listener` with `serve`, and what `serve`
/// returns comes back through a pipe.
struct Helper {
    pid: nix::unistd::Pid,
    from: std::fs::File,
}

impl Helper {
    /// What the helper returned, once it has ended (it is reaped).
    fn join(mut self) -> Vec<u8> {
        let mut seen = Vec::new();
        let _ = self.from.read_to_end(&mut seen);
        let _ = nix::sys::wait::waitpid(self.pid, None);
        seen
    }
}

fn helper(listener: TcpListener, serve: impl FnOnce(TcpListener) -> Vec<u8>) -> Helper {
    let (read, write) = nix::unistd::pipe().expect("a pipe");
    // SAFETY: this process is single-threaded (the run_serially trials fork too); the
    // child only serves, writes its pipe and leaves with _exit.
    match unsafe { nix::unistd::fork() }.expect("fork") {
        nix::unistd::ForkResult::Child => {
            drop(read);
            let seen = serve(listener);
            let mut to = std::fs::File::from(write);
            let _ = std::io::Write::write_all(&mut to, &seen);
            drop(to);
            // SAFETY: leaves the child at once, running no destructor of the parent's.
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(write);
            drop(listener);
            Helper {
                pid: child,
                from: std::fs::File::from(read),
            }
        }
    }
}

/// A TLS server of our own on loopback with `cert`/`key`: accepts one connection, and
/// records every byte of plaintext it reads (nothing is answered): up to the first
/// request head, or with `hold` until the client closes. Returns its URL and what it read
/// once the connection ended.
fn recording_server(cert: Vec<u8>, key: Vec<u8>, hold: bool) -> Result<(String, Helper), Failed> {
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert)],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
            )?;
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("caspian+tls://{}", listener.local_addr()?);
    let handle = helper(listener, move |listener| {
        let mut seen = Vec::new();
        let Ok((mut tcp, _)) = listener.accept() else {
            return seen;
        };
        let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
        let Ok(mut tls) = rustls::ServerConnection::new(config) else {
            return seen;
        };
        let mut stream = rustls::Stream::new(&mut tls, &mut tcp);
        let mut buf = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            // A request head is whole: enough to see the token, then stop.
            if !hold && seen.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        seen
    });
    Ok((url, handle))
}

fn wrong_ca_gets_no_token() -> Outcome {
    let real = pki("realca")?;
    let fake = pki("fakeca")?;
    let token = real.token.clone();
    // Control: a client that trusts the fake server's CA does send it the token, so the
    // recorder would see one.
    let (url, server) = recording_server(fake.cert_der.clone(), fake.key_der.clone(), false)?;
    let _ = SharedHash::join_remote(
        Remote::tls(&url, Trust::CaFile(fake.ca.clone()))?,
        token.clone(),
        ClientConfig {
            call_deadline: Duration::from_millis(500),
            ..ClientConfig::default()
        },
    )
    .get_value("x");
    let seen = server.join();
    check(
        contains(&seen, token.as_str().as_bytes()),
        "control: a trusting client's token did not reach the recorder",
    )?;
    // A client that trusts the real CA refuses the fake server's certificate: typed
    // error, and the recorder read nothing at all.
    let (url, server) = recording_server(fake.cert_der.clone(), fake.key_der.clone(), false)?;
    let outcome = SharedHash::join(&url, Trust::CaFile(real.ca.clone()), token.clone())?.get_value("x");
    let seen = server.join();
    match &outcome {
        Err(Error::CertificateNotTrusted { fix, .. }) => check(
            fix.contains("CA file"),
            format!("the fix does not say what to pass: {fix}"),
        )?,
        other => return Err(format!("expected CertificateNotTrusted, got {other:?}").into()),
    }
    check(
        seen.is_empty(),
        format!("the untrusted server read {} bytes of plaintext", seen.len()),
    )?;
    check(
        outcome
            .as_ref()
            .err()
            .is_some_and(|e| e.to_string().contains("pass the CA file")),
        "the message does not say what to fix",
    )?;
    check_nothing_left()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn wrong_token_gets_401() -> Outcome {
    let pki = pki("token")?;
    let listen = listener(&pki)?;
    let url = listen.url().to_owned();
    let ca = pki.ca.clone();
    Share::new(1).listen(listen, pki.token.clone()).run(|_, _| {
        let wrong = Token::generate().map_err(|e| Error::Protocol(e.to_string()))?;
        let remote = Remote::tls(&url, Trust::CaFile(ca.clone()))?;
        let client = caspian_ipc::uds::Client::remote(remote, wrong.clone(), ClientConfig::default());
        let answer = client.send(caspian_ipc::uds::http::Method::GET, "/stats", None)?;
        if answer.status != 401 || answer.header("www-authenticate").is_none() {
            return Err(Error::Protocol(format!(
                "status {} for a wrong token",
                answer.status
            )));
        }
        match SharedHash::join(&url, Trust::CaFile(ca.clone()), wrong)?.get_value("x") {
            Err(Error::Unauthorized) => Ok(()),
            other => Err(Error::Protocol(format!("expected Unauthorized, got {other:?}"))),
        }
    })?;
    check_nothing_left()
}

fn silent_peer_is_cut() -> Outcome {
    let pki = pki("silent")?;
    let listen = listener(&pki)?;
    let addr = listen.local_addr().ok_or("no address")?;
    let handshake = Duration::from_millis(300);
    Share::new(1)
        .listen(listen, pki.token.clone())
        .handshake_timeout(handshake)
        .run(|_, _| -> Result<(), String> {
            let mut silent = TcpStream::connect(addr).map_err(|e| e.to_string())?;
            silent
                .set_read_timeout(Some(Duration::from_secs(5)))
                .map_err(|e| e.to_string())?;
            let started = Instant::now();
            let mut byte = [0u8; 1];
            let read = silent.read(&mut byte);
            let waited = started.elapsed();
            match read {
                Ok(0) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
                other => return Err(format!("the silent peer was not cut: {other:?} after {waited:?}")),
            }
            if waited < handshake || waited > handshake * 5 {
                return Err(format!(
                    "cut after {waited:?}, the handshake deadline is {handshake:?}"
                ));
            }
            Ok(())
        })?;
    check_nothing_left()
}

fn stalled_server_times_out() -> Outcome {
    let pki = pki("stall")?;
    // A TLS server with a trusted certificate that reads the request and never answers.
    let (url, server) = recording_server(pki.cert_der.clone(), pki.key_der.clone(), true)?;
    let deadline = Duration::from_millis(400);
    let hash = SharedHash::join_remote(
        Remote::tls(&url, Trust::CaFile(pki.ca.clone()))?,
        pki.token.clone(),
        ClientConfig {
            call_deadline: deadline,
            ..ClientConfig::default()
        },
    );
    let started = Instant::now();
    let outcome = hash.get_value("x");
    let waited = started.elapsed();
    drop(hash);
    let _ = server.join();
    check(
        matches!(outcome, Err(Error::Timeout { .. })),
        format!("expected Timeout, got {outcome:?}"),
    )?;
    check(
        waited >= deadline && waited < deadline * 4,
        format!("failed after {waited:?} for a {deadline:?} deadline"),
    )?;
    check_nothing_left()
}

fn nobody_listening() -> Outcome {
    let pki = pki("refused")?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let budget = Duration::from_millis(200);
    let hash = SharedHash::join_remote(
        Remote::tls(
            &format!("caspian+tls://127.0.0.1:{port}"),
            Trust::CaFile(pki.ca.clone()),
        )?,
        pki.token.clone(),
        ClientConfig {
            connect_budget: budget,
            ..ClientConfig::default()
        },
    );
    let started = Instant::now();
    let outcome = hash.get_value("x");
    let waited = started.elapsed();
    check(
        matches!(outcome, Err(Error::ConnectionRefused { .. })),
        format!("expected ConnectionRefused, got {outcome:?}"),
    )?;
    check(
        waited >= budget && waited < budget * 5,
        format!("gave up after {waited:?} for a {budget:?} budget"),
    )
}

/// A TCP listener that accepts and then says nothing: the client's handshake is bounded
/// by its call deadline, and the error is the typed handshake failure.
fn no_handshake_fails_in_time() -> Outcome {
    let pki = pki("mute")?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("caspian+tls://{}", listener.local_addr()?);
    let mute = helper(listener, |listener| {
        // Holds the connection until the client gives up and closes it.
        let mut sink = Vec::new();
        if let Ok((mut tcp, _)) = listener.accept() {
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = tcp.read_to_end(&mut sink);
        }
        sink
    });
    let deadline = Duration::from_millis(300);
    let hash = SharedHash::join_remote(
        Remote::tls(&url, Trust::CaFile(pki.ca.clone()))?,
        pki.token.clone(),
        ClientConfig {
            call_deadline: deadline,
            ..ClientConfig::default()
        },
    );
    let started = Instant::now();
    let outcome = hash.get_value("x");
    let waited = started.elapsed();
    drop(hash);
    let _ = mute.join();
    check(
        matches!(&outcome, Err(Error::TlsHandshake { reason, .. }) if reason.contains("deadline")),
        format!("expected a TlsHandshake deadline error, got {outcome:?}"),
    )?;
    check(
        waited >= deadline && waited < deadline * 4,
        format!("gave up after {waited:?} for a {deadline:?} deadline"),
    )?;
    check_nothing_left()
}

fn open_token_file_refused() -> Outcome {
    let pki = pki("mode")?;
    std::fs::set_permissions(&pki.token_file, std::fs::Permissions::from_mode(0o644))?;
    match Token::from_file(&pki.token_file) {
        Err(e @ Error::Config { .. }) => check(e.to_string().contains("chmod 600"), e.to_string()),
        other => Err(format!("a 0644 token file was accepted: {other:?}").into()),
    }
}

/// Answers every request with `{"ok": true}`.
struct Ok200;

impl caspian_ipc::uds::Handler for Ok200 {
    fn handle(&mut self, _request: &caspian_ipc::uds::Request<'_>) -> caspian_ipc::uds::Response {
        caspian_ipc::uds::Response::json(200, &serde_json::json!({"ok": true}))
    }
}

type RawTls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS connection of our own to `addr`, trusting `ca`, handshake done.
fn raw_tls(addr: std::net::SocketAddr, ca: &Path) -> Result<RawTls, Failed> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::pem::PemObject::pem_file_iter(ca)? {
        let cert: CertificateDer<'static> = cert?;
        roots.add(cert)?;
    }
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1")?;
    let mut tls = rustls::ClientConnection::new(Arc::new(config), name)?;
    let mut tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    while tls.is_handshaking() {
        tls.complete_io(&mut tcp)?;
    }
    Ok(rustls::StreamOwned::new(tls, tcp))
}

/// Sends one authorised request and reads until the answer's status line is here.
fn ask(stream: &mut RawTls, token: &Token) -> Result<String, Failed> {
    use std::io::Write;
    write!(
        stream,
        "GET /x HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\r\n",
        token.as_str()
    )?;
    stream.flush()?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// Whether the server closed `stream` (end of stream or reset) within its read timeout.
fn closed(stream: &mut RawTls) -> bool {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// The socket's limits hold over TLS: connections count against `max_connections` (the
/// longest-idle one is evicted for a newcomer) and a head that stalls after the handshake
/// is cut at the head timeout.
fn tls_connections_share_the_limits() -> Outcome {
    let pki = pki("limits")?;
    let listen = listener(&pki)?;
    let addr = listen.local_addr().ok_or("no address")?;
    let dir = caspian_ipc::uds::SocketDir::create()?;
    let config = caspian_ipc::uds::ServerConfig {
        max_connections: 2,
        head_timeout: Duration::from_millis(300),
        idle_timeout: None,
        ..caspian_ipc::uds::ServerConfig::default()
    };
    let pid = caspian_ipc::uds::spawn_server_with(
        &dir,
        Some(&listen),
        Some(pki.token.clone()),
        config,
        || Ok(Ok200),
        Duration::from_secs(5),
    )?;
    let outcome = (|| -> Outcome {
        let mut first = raw_tls(addr, &pki.ca)?;
        check(
            ask(&mut first, &pki.token)?.starts_with("HTTP/1.1 200"),
            "first answered",
        )?;
        let mut second = raw_tls(addr, &pki.ca)?;
        check(
            ask(&mut second, &pki.token)?.starts_with("HTTP/1.1 200"),
            "second answered",
        )?;
        // A third connection at the limit: the longest idle one (the first) makes room.
        let mut third = raw_tls(addr, &pki.ca)?;
        check(
            ask(&mut third, &pki.token)?.starts_with("HTTP/1.1 200"),
            "third answered",
        )?;
        check(
            closed(&mut first),
            "the longest-idle TLS connection was not evicted",
        )?;
        drop((second, third));
        // A head that stops half-way after the handshake is cut (within two head timeouts).
        let mut slow = raw_tls(addr, &pki.ca)?;
        {
            use std::io::Write;
            slow.write_all(b"GET /x HTTP/1.1\r\nHost: loc")?;
            slow.flush()?;
        }
        let started = Instant::now();
        check(closed(&mut slow), "a stalled head over TLS was not cut")?;
        let waited = started.elapsed();
        check(
            waited >= Duration::from_millis(250) && waited < Duration::from_secs(2),
            format!("the stalled head was cut after {waited:?} (head timeout 300 ms)"),
        )
    })();
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let _ = nix::sys::wait::waitpid(pid, None);
    drop(dir);
    outcome?;
    check_nothing_left()
}
