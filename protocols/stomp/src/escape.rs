//! Header escaping (STOMP 1.1 and 1.2).
//!
//! | escape | octet       | 1.0 | 1.1 | 1.2 |
//! |--------|-------------|-----|-----|-----|
//! | `\r`   | CR (13)     | -   | -   | yes |
//! | `\n`   | LF (10)     | -   | yes | yes |
//! | `\c`   | `:` (58)    | -   | yes | yes |
//! | `\\`   | `\` (92)    | -   | yes | yes |
//!
//! Any other backslash sequence is a fatal protocol error. `CONNECT`, `STOMP` and `CONNECTED`
//! frames are never escaped, whatever the version, and STOMP 1.0 has no escaping at all: there a
//! backslash is an ordinary character, a colon in a value is fine (a line is split at its first
//! colon) and a line feed cannot be carried.

use bytes::{BufMut, BytesMut};

use crate::error::DecodeError;
use crate::frame::Command;
use crate::version::Version;

/// Which escaping applies to a frame's headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Escaping {
    /// No escaping: STOMP 1.0, or a `CONNECT`/`STOMP`/`CONNECTED` frame.
    None,
    /// STOMP 1.1: `\n`, `\c`, `\\`.
    V11,
    /// STOMP 1.2: `\r`, `\n`, `\c`, `\\`.
    V12,
}

impl Escaping {
    /// The escaping for a frame with `command` in a session of `version`.
    pub(crate) fn for_frame(version: Version, command: Command) -> Escaping {
        if !command.escapes_headers() {
            return Escaping::None;
        }
        match version {
            Version::V1_0 => Escaping::None,
            Version::V1_1 => Escaping::V11,
            Version::V1_2 => Escaping::V12,
        }
    }
}

/// Decodes the escape sequences of a header name or value.
pub(crate) fn unescape(raw: &str, mode: Escaping) -> Result<String, DecodeError> {
    if mode == Escaping::None || !raw.contains('\\') {
        return Ok(raw.to_owned());
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let decoded = match chars.next() {
            Some('n') => '\n',
            Some('c') => ':',
            Some('\\') => '\\',
            Some('r') if mode == Escaping::V12 => '\r',
            other => {
                let mut sequence = String::from('\\');
                sequence.extend(other);
                return Err(DecodeError::BadEscape { sequence });
            }
        };
        out.push(decoded);
    }
    Ok(out)
}

/// Appends `s` to `out` escaped for `mode`. `is_name`: a colon cannot appear unescaped in a
/// name. Returns what makes `s` unencodable, without writing anything, if it is.
pub(crate) fn escape_into(
    s: &str,
    mode: Escaping,
    is_name: bool,
    out: &mut BytesMut,
) -> Result<(), &'static str> {
    match mode {
        Escaping::None => {
            if s.contains('\n') {
                return Err("line feed in an unescaped header");
            }
            if s.contains('\r') {
                return Err("carriage return in an unescaped header");
            }
            if is_name && s.contains(':') {
                return Err("colon in an unescaped header name");
            }
            out.put_slice(s.as_bytes());
        }
        Escaping::V11 | Escaping::V12 => {
            if mode == Escaping::V11 && s.contains('\r') {
                return Err("carriage return (STOMP 1.1 has no \\r escape)");
            }
            let mut rest = s;
            while let Some(i) = rest.find(['\\', '\n', '\r', ':']) {
                let (plain, special) = rest.split_at(i);
                out.put_slice(plain.as_bytes());
                let mut tail = special.chars();
                let escaped: &[u8] = match tail.next() {
                    Some('\\') => b"\\\\",
                    Some('\n') => b"\\n",
                    Some('\r') => b"\\r",
                    _ => b"\\c",
                };
                out.put_slice(escaped);
                rest = tail.as_str();
            }
            out.put_slice(rest.as_bytes());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(s: &str, mode: Escaping, is_name: bool) -> Result<String, &'static str> {
        let mut out = BytesMut::new();
        escape_into(s, mode, is_name, &mut out)?;
        Ok(String::from_utf8(out.to_vec()).unwrap())
    }

    #[test]
    fn mode_per_version_and_command() {
        use Escaping as E;
        for v in Version::ALL {
            assert_eq!(E::for_frame(v, Command::Connect), E::None);
            assert_eq!(E::for_frame(v, Command::Stomp), E::None);
            assert_eq!(E::for_frame(v, Command::Connected), E::None);
        }
        assert_eq!(E::for_frame(Version::V1_0, Command::Send), E::None);
        assert_eq!(E::for_frame(Version::V1_1, Command::Send), E::V11);
        assert_eq!(E::for_frame(Version::V1_2, Command::Message), E::V12);
    }

    #[test]
    fn decodes_defined_escapes() {
        assert_eq!(
            unescape(r"a\nb\cc\\d\re", Escaping::V12).unwrap(),
            "a\nb:c\\d\re"
        );
        assert_eq!(unescape(r"a\nb\cc\\d", Escaping::V11).unwrap(), "a\nb:c\\d");
        assert_eq!(unescape(r"\\n", Escaping::V12).unwrap(), "\\n");
        assert_eq!(unescape("plain:é", Escaping::V12).unwrap(), "plain:é");
        // No escaping: backslashes are literal.
        assert_eq!(unescape(r"a\tb\", Escaping::None).unwrap(), r"a\tb\");
    }

    #[test]
    fn rejects_undefined_escapes() {
        let bad = |raw: &str, mode, seq: &str| {
            assert_eq!(
                unescape(raw, mode),
                Err(DecodeError::BadEscape {
                    sequence: seq.into()
                }),
                "{raw:?}"
            );
        };
        bad(r"a\tb", Escaping::V12, r"\t");
        bad(r"a\r", Escaping::V11, r"\r");
        bad(r"trailing\", Escaping::V12, "\\");
        bad(r"\é", Escaping::V11, r"\é");
        bad(r"\C", Escaping::V12, r"\C");
    }

    #[test]
    fn encodes_special_characters() {
        assert_eq!(
            esc("a\nb:c\\d\re", Escaping::V12, false).unwrap(),
            r"a\nb\cc\\d\re"
        );
        assert_eq!(
            esc("a\nb:c\\d", Escaping::V11, true).unwrap(),
            r"a\nb\cc\\d"
        );
        assert_eq!(esc("x:y\\", Escaping::None, false).unwrap(), "x:y\\");
        assert_eq!(esc("é日", Escaping::V12, false).unwrap(), "é日");
    }

    #[test]
    fn refuses_unencodable() {
        let mut out = BytesMut::new();
        for (s, mode, name) in [
            ("a\nb", Escaping::None, false),
            ("a\rb", Escaping::None, false),
            ("a:b", Escaping::None, true),
            ("a\rb", Escaping::V11, false),
        ] {
            assert!(escape_into(s, mode, name, &mut out).is_err(), "{s:?}");
        }
        assert!(out.is_empty());
    }

    #[test]
    fn escape_then_unescape_is_identity() {
        let s = "::\\\\n\n\r\rc\\c";
        let mode = Escaping::V12;
        assert_eq!(unescape(&esc(s, mode, true).unwrap(), mode).unwrap(), s);
        let s = "::\\\\n\nc\\c";
        assert_eq!(
            unescape(&esc(s, Escaping::V11, true).unwrap(), Escaping::V11).unwrap(),
            s
        );
    }
}
