//! `cargo xtask corpus [--mib N] OUT`: the text `word_count` is measured on (100 MiB by
//! default), generated deterministically so anyone can reproduce the figure in
//! `docs/BENCHMARKS.md`: the same bytes on every machine, for every run.
//!
//! Words are drawn from a fixed vocabulary of 40,000 made-up words with a Zipf-like
//! distribution (as natural text has: a few words very common, most rare), some
//! capitalised, some followed by punctuation, twelve words to a line.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

/// Distinct words in the vocabulary.
const VOCABULARY: usize = 40_000;
/// Syllables words are made of.
const SYLLABLES: [&str; 24] = [
    "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "ba", "do", "fu", "ga", "he", "ji", "ku", "la",
    "mo", "nu", "pe", "qua", "ri", "so", "tu",
];
const PUNCTUATION: [&str; 4] = [",", ".", ";", "!"];

/// xorshift64*: small, fast, and the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A float in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub fn run(args: &[String]) -> ExitCode {
    let mut mib: u64 = 100;
    let mut out = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--mib" => match rest.next().and_then(|n| n.parse().ok()) {
                Some(n) if n > 0 => mib = n,
                _ => return usage("--mib takes a positive whole number of MiB"),
            },
            path if out.is_none() && !path.starts_with("--") => out = Some(path.to_owned()),
            other => return usage(&format!("unexpected argument `{other}`")),
        }
    }
    let Some(out) = out else {
        return usage("name the file to write");
    };
    match write_corpus(&out, mib << 20) {
        Ok(words) => {
            eprintln!("wrote {out}: {mib} MiB, {words} words from a vocabulary of {VOCABULARY}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot write {out}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("{problem}\nusage: cargo xtask corpus [--mib N] OUT");
    ExitCode::from(2)
}

/// Writes at least `bytes` bytes of text to `path` (whole lines); returns the word count.
fn write_corpus(path: &str, bytes: u64) -> std::io::Result<u64> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let words: Vec<String> = (0..VOCABULARY)
        .map(|_| {
            let syllables = 1 + (rng.next() % 4) as usize;
            (0..syllables)
                .map(|_| SYLLABLES[(rng.next() % SYLLABLES.len() as u64) as usize])
                .collect()
        })
        .collect();
    // Cumulative Zipf weights (exponent 1.07): rank r has weight 1 / r^1.07.
    let mut cumulative = Vec::with_capacity(VOCABULARY);
    let mut total = 0.0;
    for rank in 1..=VOCABULARY {
        total += 1.0 / (rank as f64).powf(1.07);
        cumulative.push(total);
    }
    let mut file = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let (mut written, mut count) = (0u64, 0u64);
    let mut line = String::with_capacity(256);
    while written < bytes {
        line.clear();
        for position in 0..12 {
            let target = rng.unit() * total;
            let rank = cumulative.partition_point(|c| *c < target).min(VOCABULARY - 1);
            let word = &words[rank];
            if position > 0 {
                line.push(' ');
            }
            if rng.next().is_multiple_of(10) {
                let mut chars = word.chars();
                if let Some(first) = chars.next() {
                    line.extend(first.to_uppercase());
                    line.push_str(chars.as_str());
                }
            } else {
                line.push_str(word);
            }
            if rng.next().is_multiple_of(8) {
                line.push_str(PUNCTUATION[(rng.next() % 4) as usize]);
            }
            count += 1;
        }
        line.push('\n');
        file.write_all(line.as_bytes())?;
        written += line.len() as u64;
    }
    file.flush()?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_corpus_is_the_same_bytes_every_time() {
        let dir = std::env::temp_dir().join(format!("xtask-corpus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a.txt"), dir.join("b.txt"));
        let words = write_corpus(a.to_str().unwrap(), 64 << 10).unwrap();
        write_corpus(b.to_str().unwrap(), 64 << 10).unwrap();
        let (text_a, text_b) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(text_a, text_b, "the generator must be deterministic");
        assert!(text_a.len() >= 64 << 10);
        let counted = String::from_utf8(text_a).unwrap().split_whitespace().count() as u64;
        assert_eq!(counted, words);
    }
}
