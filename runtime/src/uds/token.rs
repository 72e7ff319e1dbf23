//! Bearer tokens: 256 bits from the OS CSPRNG, compared in constant time.

use std::fmt;

use subtle::ConstantTimeEq;

/// A secret that every request must carry as `Authorization: Bearer <token>`.
///
/// 32 random bytes from the operating system, hex-encoded (64 characters). `Debug` never
/// prints the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Draws a fresh token from the OS CSPRNG.
    pub fn generate() -> std::io::Result<Self> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(Token(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// Wraps a token received out of band (for an external client).
    pub fn from_string(token: impl Into<String>) -> Self {
        Token(token.into())
    }

    /// Reads a token from `path`, the way a TCP+TLS server and its remote clients share
    /// one (never from a command line). The file must belong to us and be readable by
    /// nobody else (mode 0600 or 0400: no group or other bits); its text, trimmed of
    /// surrounding whitespace, is the token, at least 32 characters of printable ASCII.
    pub fn from_file(path: &std::path::Path) -> crate::error::Result<Self> {
        use std::os::unix::fs::MetadataExt;
        let what = format!("token file {}", path.display());
        let refuse = |problem: String, fix: &str| crate::error::Error::Config {
            what: what.clone(),
            problem,
            fix: fix.to_owned(),
        };
        let file = std::fs::File::open(path).map_err(|e| {
            refuse(
                format!("cannot be opened: {e}"),
                "pass the path of a file holding the token (make one with `head -c 32 /dev/urandom | xxd -p -c 64 > FILE; chmod 600 FILE`)",
            )
        })?;
        let meta = file
            .metadata()
            .map_err(|e| refuse(format!("cannot be read: {e}"), "check the file"))?;
        if !meta.is_file() {
            return Err(refuse("is not a regular file".into(), "pass a regular file"));
        }
        if meta.mode() & 0o077 != 0 {
            return Err(refuse(
                format!(
                    "is readable or writable by others (mode {:o})",
                    meta.mode() & 0o777
                ),
                "`chmod 600` it: a token others can read lets them in",
            ));
        }
        let uid = nix::unistd::geteuid().as_raw();
        if meta.uid() != uid {
            return Err(refuse(
                format!("belongs to uid {}, not to us (uid {uid})", meta.uid()),
                "use a token file of your own",
            ));
        }
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(file, 4096), &mut text)
            .map_err(|e| refuse(format!("cannot be read as text: {e}"), "write the token as text"))?;
        let token = text.trim();
        if token.len() < 32 || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(refuse(
                "does not hold a token of at least 32 printable ASCII characters".into(),
                "write a long random token into it, e.g. 64 hex digits",
            ));
        }
        Ok(Token(token.to_owned()))
    }

    /// The secret, for handing to another process.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks an `Authorization` header value in constant time with respect to the secret.
    ///
    /// The scheme is matched case-insensitively and may be followed by several spaces
    /// (RFC 9110 §11.1, §11.4: `credentials = auth-scheme [ 1*SP token68 ]`). `None`, a
    /// non-`Bearer` scheme and a wrong token are all simply `false`: the server answers
    /// them identically.
    pub fn matches_header(&self, header: Option<&[u8]>) -> bool {
        let Some(value) = header else { return false };
        let Some((scheme, rest)) = value.split_at_checked(b"Bearer".len()) else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case(b"Bearer") || !rest.starts_with(b" ") {
            return false;
        }
        let presented = rest.trim_ascii_start();
        // Length is not secret (always 64), so an early length mismatch leaks nothing.
        presented.len() == self.0.len() && constant_time_eq(presented, self.0.as_bytes())
    }
}

/// Equality of two byte strings of one length in time independent of their contents:
/// eight bytes at a time (`subtle` on `u64`s), a byte at a time for the tail.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut equal = subtle::Choice::from(1u8);
    let (a_words, a_tail) = a.split_at(a.len() - a.len() % 8);
    let (b_words, b_tail) = b.split_at(b.len() - b.len() % 8);
    for (x, y) in a_words.chunks_exact(8).zip(b_words.chunks_exact(8)) {
        let x = u64::from_le_bytes(x.try_into().unwrap_or_default());
        let y = u64::from_le_bytes(y.try_into().unwrap_or_default());
        equal &= x.ct_eq(&y);
    }
    equal &= a_tail.ct_eq(b_tail);
    bool::from(equal)
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex_of_256_bits() {
        let a = Token::generate().unwrap();
        let b = Token::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 64);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn header_check_accepts_only_the_exact_token_under_a_bearer_scheme_of_any_case() {
        let t = Token::from_string("abc");
        assert!(t.matches_header(Some(b"Bearer abc")));
        assert!(
            t.matches_header(Some(b"bearer abc")),
            "the scheme is case-insensitive"
        );
        assert!(t.matches_header(Some(b"BEARER   abc")), "1*SP after the scheme");
        assert!(!t.matches_header(Some(b"Bearerabc")));
        assert!(!t.matches_header(Some(b"Bearer")));
        assert!(!t.matches_header(Some(b"Bearer abc ")));
        assert!(!t.matches_header(Some(b"Bearer abd")));
        assert!(!t.matches_header(Some(b"Bearer abcd")));
        assert!(!t.matches_header(Some(b"Basic abc")));
        assert!(!t.matches_header(Some(b"abc")));
        assert!(!t.matches_header(None));
        assert!(!format!("{t:?}").contains("abc"));
        // Whole words and a tail are both compared.
        let long = Token::from_string("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
        assert!(long.matches_header(Some(
            b"Bearer 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        )));
        assert!(!long.matches_header(Some(
            b"Bearer 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeF"
        )));
        assert!(!long.matches_header(Some(
            b"Bearer 1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        )));
        let odd = Token::from_string("0123456789a");
        assert!(odd.matches_header(Some(b"Bearer 0123456789a")));
        assert!(!odd.matches_header(Some(b"Bearer 0123456789b")));
        assert!(!odd.matches_header(Some(b"Bearer 1123456789a")));
    }
}
