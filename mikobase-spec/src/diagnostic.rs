//! Diagnostics: a stable code, a message, where, and a hint; rendered rustc-style.

use std::fmt::Write as _;

use crate::ir::Pos;

/// Stable diagnostic codes (documented in docs/SPEC.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Code {
    /// The file is not YAML of the spec's shape (syntax, unknown key, wrong type).
    MB001,
    /// Missing or unsupported `spec` / `version`.
    MB002,
    /// A name declared twice.
    MB003,
    /// Unknown type reference.
    MB004,
    /// Unknown error id.
    MB005,
    /// Two names that collide after Rust case conversion.
    MB006,
    /// Bad route template.
    MB007,
    /// HTTP status out of range, or an error whose status is not 4xx/5xx.
    MB008,
    /// Missing description.
    MB009,
    /// Malformed type expression.
    MB010,
    /// Two operations on one route.
    MB011,
    /// Unknown `kind`.
    MB012,
    /// Union variants that cannot be told apart.
    MB013,
}

impl Code {
    /// `MB004`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::MB001 => "MB001",
            Code::MB002 => "MB002",
            Code::MB003 => "MB003",
            Code::MB004 => "MB004",
            Code::MB005 => "MB005",
            Code::MB006 => "MB006",
            Code::MB007 => "MB007",
            Code::MB008 => "MB008",
            Code::MB009 => "MB009",
            Code::MB010 => "MB010",
            Code::MB011 => "MB011",
            Code::MB012 => "MB012",
            Code::MB013 => "MB013",
        }
    }
}

/// One problem found in a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Stable code.
    pub code: Code,
    /// Lower-case message with names in backticks.
    pub message: String,
    /// Where (None: the whole file).
    pub pos: Option<Pos>,
    /// How many characters to underline at `pos`.
    pub width: usize,
    /// A hint (`did you mean ...`).
    pub help: Option<String>,
}

impl Diagnostic {
    pub(crate) fn new(code: Code, message: impl Into<String>, pos: Option<Pos>, width: usize) -> Self {
        Diagnostic {
            code,
            message: message.into(),
            pos,
            width: width.max(1),
            help: None,
        }
    }

    pub(crate) fn help(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }

    /// `PATH:LINE:COL: error[CODE]: message` on one line.
    pub fn one_line(&self, path: &str) -> String {
        match self.pos {
            Some(p) => format!(
                "{path}:{}:{}: error[{}]: {}",
                p.line,
                p.column,
                self.code.as_str(),
                self.message
            ),
            None => format!("{path}: error[{}]: {}", self.code.as_str(), self.message),
        }
    }

    /// [`Diagnostic::one_line`] then [`Diagnostic::snippet`]: the form the front ends that
    /// cannot print rustc's `-->` layout show (the `mikobase_api!` macro's compile errors,
    /// the build script's error).
    pub fn linked(&self, path: &str, source: &str) -> String {
        format!("{}\n{}", self.one_line(path), self.snippet(source))
    }

    /// rustc-style rendering with a snippet of `source` and a caret under the name.
    pub fn render(&self, path: &str, source: &str) -> String {
        let (pad, location) = match self.pos {
            Some(p) => (
                " ".repeat(p.line.to_string().len()),
                format!("{path}:{}:{}", p.line, p.column),
            ),
            None => ("  ".to_owned(), path.to_owned()),
        };
        format!(
            "error[{}]: {}\n{pad}--> {location}\n{}",
            self.code.as_str(),
            self.message,
            self.snippet(source)
        )
    }

    /// What [`Diagnostic::render`] shows under the location: the line of `source` with a
    /// caret under the name, then the hint. For front ends that print the location their
    /// own way (the `mikobase_api!` macro).
    pub fn snippet(&self, source: &str) -> String {
        let mut out = String::new();
        let Some(pos) = self.pos else {
            if let Some(help) = &self.help {
                let _ = writeln!(out, "   = help: {help}");
            }
            return out;
        };
        let number = pos.line.to_string();
        let pad = " ".repeat(number.len());
        let _ = writeln!(out, "{pad} |");
        let line = source
            .lines()
            .nth(pos.line.saturating_sub(1) as usize)
            .unwrap_or("");
        let _ = writeln!(out, "{number} | {line}");
        let indent: String = line
            .chars()
            .take(pos.column.saturating_sub(1) as usize)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let _ = writeln!(out, "{pad} | {indent}{}", "^".repeat(self.width));
        if let Some(help) = &self.help {
            let _ = writeln!(out, "{pad} = help: {help}");
        }
        out
    }
}

/// Renders every diagnostic, with a closing count.
pub fn render_all(diagnostics: &[Diagnostic], path: &str, source: &str) -> String {
    let mut out = String::new();
    for d in diagnostics {
        out.push_str(&d.render(path, source));
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "error: {} problem{} in {path}",
        diagnostics.len(),
        if diagnostics.len() == 1 { "" } else { "s" }
    );
    out
}

/// The candidate closest to `name` (edit distance at most 2, or equal ignoring case and
/// separators), for a "did you mean" hint.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let fold = |s: &str| s.to_lowercase().replace(['-', '_'], "");
    candidates
        .into_iter()
        .map(|c| {
            (
                if fold(c) == fold(name) {
                    0
                } else {
                    distance(name, c)
                },
                c,
            )
        })
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = (row[j + 1] + 1)
                .min(row[j] + 1)
                .min(previous + usize::from(ca != cb));
            previous = current;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(
            suggest("Recrod", ["Record", "Bucket"]).unwrap(),
            "did you mean `Record`?"
        );
        assert_eq!(
            suggest("class_not_found", ["class-not-found"]).unwrap(),
            "did you mean `class-not-found`?"
        );
        assert_eq!(suggest("zzz", ["Record"]), None);
    }

    #[test]
    fn rendering_points_at_the_name() {
        let d = Diagnostic::new(
            Code::MB004,
            "unknown type `Recrod`",
            Some(Pos { line: 2, column: 13 }),
            6,
        )
        .help(Some("did you mean `Record`?".into()));
        let text = d.render("spec.yaml", "a:\n    result: Recrod\n");
        assert_eq!(
            text,
            "error[MB004]: unknown type `Recrod`\n --> spec.yaml:2:13\n  |\n2 |     result: Recrod\n  |             ^^^^^^\n  = help: did you mean `Record`?\n"
        );
    }
}
