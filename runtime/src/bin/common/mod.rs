//! What the crate's command lines share: parsing with clap, and refusing a usage error
//! the same way (exit 2, `NAME: what is wrong`, then the usage lines).

use std::process::ExitCode;

/// The parsed command line; or, after printing help (exit 0) or a usage error (exit 2),
/// the exit code.
pub fn parse<P: clap::Parser>(name: &str, usage: &str) -> Result<P, ExitCode> {
    match P::try_parse() {
        Ok(parsed) => Ok(parsed),
        Err(error) if !error.use_stderr() => {
            // --help, --version: to stdout, exit 0.
            let _ = error.print();
            Err(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("{name}: {}\n{usage}", complaint(&error));
            Err(ExitCode::from(2))
        }
    }
}

/// What clap says is wrong (and its tips), without its `error: ` prefix and its usage block:
/// ours follows.
fn complaint(error: &clap::Error) -> String {
    if error.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        return "no command given".into();
    }
    let rendered = error.render().to_string();
    let said: Vec<&str> = rendered
        .split("\n\n")
        .map(str::trim_end)
        .filter(|part| !part.starts_with("Usage:") && !part.starts_with("For more information"))
        .collect();
    let said = said.join("\n");
    said.strip_prefix("error: ").unwrap_or(&said).to_owned()
}
