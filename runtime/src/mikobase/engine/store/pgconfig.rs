//! A PostgreSQL connection string completed the way libpq completes it (the `postgres`
//! crate reads neither the environment nor the password file): what the URL or conninfo
//! leaves out comes from `PGHOST`, `PGPORT`, `PGUSER` (else the login name),
//! `PGDATABASE`, then the password from `PGPASSWORD` or the password file (`PGPASSFILE`,
//! else `~/.pgpass`; ignored, as libpq does, when group or others may read it). A
//! password never has to be on a command line.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::str::FromStr;

use postgres::config::Host;
use postgres::Config;

/// Where libpq looks for a server's socket when no host is given (Debian's default).
const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// `config` (a `postgres://` URL or `key=value` conninfo) with the environment's defaults.
pub(crate) fn resolve(config: &str) -> Result<Config, String> {
    resolve_with(config, &|name| std::env::var(name).ok())
}

fn resolve_with(config: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, String> {
    let mut config =
        Config::from_str(config).map_err(|e| format!("not a PostgreSQL URL or conninfo: {e}"))?;
    if config.get_hosts().is_empty() {
        let hosts = env("PGHOST").unwrap_or_else(|| DEFAULT_SOCKET_DIR.to_owned());
        for host in hosts.split(',') {
            if host.starts_with('/') {
                config.host_path(host);
            } else {
                config.host(host);
            }
        }
    }
    if config.get_ports().is_empty() {
        if let Some(port) = env("PGPORT") {
            config.port(
                port.parse()
                    .map_err(|_| format!("PGPORT is not a port: {port}"))?,
            );
        }
    }
    if config.get_user().is_none() {
        match env("PGUSER").or_else(|| env("USER")) {
            Some(user) => {
                config.user(&user);
            }
            None => return Err("no user: give one in the URL (postgres://user@host/db) or PGUSER".into()),
        }
    }
    if config.get_dbname().is_none() {
        if let Some(db) = env("PGDATABASE") {
            config.dbname(&db);
        }
    }
    if config.get_password().is_none() {
        if let Some(password) = env("PGPASSWORD").or_else(|| from_passfile(&config, env)) {
            config.password(password);
        }
    }
    Ok(config)
}

/// The password of the first matching line of the password file
/// (`host:port:database:user:password`, `*` matches anything, `\` escapes).
fn from_passfile(config: &Config, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let path = match env("PGPASSFILE") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env("HOME")?).join(".pgpass"),
    };
    let meta = std::fs::metadata(&path).ok()?;
    if !meta.is_file() || meta.permissions().mode() & 0o077 != 0 {
        return None;
    }
    let text = std::fs::read_to_string(&path).ok()?;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        Some(Host::Unix(_)) | None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432).to_string();
    let user = config.get_user().unwrap_or_default().to_owned();
    let db = config.get_dbname().unwrap_or(&user).to_owned();
    let wanted = [host, port, db, user];
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let fields = split(line);
            (fields.len() == 5
                && fields[..4]
                    .iter()
                    .zip(&wanted)
                    .all(|(field, want)| field == "*" || field == want))
            .then(|| fields[4].clone())
        })
}

/// A password file line's fields: `:` separates, `\` escapes the next character.
fn split(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => fields.last_mut().into_iter().for_each(|f| f.extend(chars.next())),
            ':' => fields.push(String::new()),
            c => fields.last_mut().into_iter().for_each(|f| f.push(c)),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_fills_what_the_url_leaves_out() {
        let dir = std::env::temp_dir().join(format!("pgpass-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pass");
        std::fs::write(
            &file,
            "# comment\nother:*:*:*:no\nlocalhost:5433:crew:ada:s\\:cret\n",
        )
        .unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let env = |name: &str| match name {
            "PGHOST" => Some("/tmp/sock".to_owned()),
            "PGPORT" => Some("5433".to_owned()),
            "PGUSER" => Some("ada".to_owned()),
            "PGPASSFILE" => Some(file.display().to_string()),
            _ => None,
        };
        let config = resolve_with("postgres:///crew", &env).unwrap();
        assert_eq!(config.get_hosts(), &[Host::Unix("/tmp/sock".into())]);
        assert_eq!(config.get_ports(), &[5433]);
        assert_eq!(config.get_user(), Some("ada"));
        assert_eq!(config.get_password(), Some(&b"s:cret"[..]));
        // Readable by others: ignored, as libpq does.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            resolve_with("postgres:///crew", &env).unwrap().get_password(),
            None
        );
        // What the string gives wins.
        let given = resolve_with("host=/other user=grace dbname=x", &env).unwrap();
        assert_eq!(given.get_user(), Some("grace"));
        assert_eq!(given.get_hosts(), &[Host::Unix("/other".into())]);
        assert!(resolve_with("postgres://[bad", &env).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
