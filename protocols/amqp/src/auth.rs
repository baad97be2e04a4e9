//! Parsers for the SASL responses of `connection.start-ok`.

use crate::error::AuthError;
use crate::nesting::{skip_value, Cursor};

fn utf8(mechanism: &'static str, field: &'static str, b: &[u8]) -> Result<String, AuthError> {
    String::from_utf8(b.to_vec()).map_err(|_| AuthError::NotUtf8 { mechanism, field })
}

/// Parses a PLAIN response (RFC 4616): `[authzid] NUL user NUL password`, returning
/// `(user, password)`.
///
/// Clients send an empty authorization identity (`"\0guest\0guest"`); a non-empty one is
/// accepted only if it equals the user ([`AuthError::AuthzidMismatch`] otherwise). The
/// password may contain no NUL.
///
/// ```
/// use junction_amqp::parse_plain;
/// assert_eq!(parse_plain(b"\0guest\0secret").unwrap(), ("guest".into(), "secret".into()));
/// ```
pub fn parse_plain(response: &[u8]) -> Result<(String, String), AuthError> {
    const M: &str = "PLAIN";
    let mut parts = response.split(|b| *b == 0);
    let (Some(authzid), Some(user), Some(pass), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed {
            mechanism: M,
            reason: "expected [authzid] NUL user NUL password",
        });
    };
    if !authzid.is_empty() && authzid != user {
        return Err(AuthError::AuthzidMismatch);
    }
    Ok((utf8(M, "user", user)?, utf8(M, "password", pass)?))
}

/// Parses an AMQPLAIN response: the entries of a field table, without its length prefix,
/// holding `LOGIN` and `PASSWORD` as long strings (`S`), as RabbitMQ requires. Other
/// entries are ignored. Returns `(user, password)`.
///
/// ```
/// use junction_amqp::parse_amqplain;
/// let mut r = Vec::new();
/// for (k, v) in [("LOGIN", "guest"), ("PASSWORD", "pw")] {
///     r.push(k.len() as u8);
///     r.extend_from_slice(k.as_bytes());
///     r.push(b'S');
///     r.extend_from_slice(&(v.len() as u32).to_be_bytes());
///     r.extend_from_slice(v.as_bytes());
/// }
/// assert_eq!(parse_amqplain(&r).unwrap(), ("guest".into(), "pw".into()));
/// ```
pub fn parse_amqplain(response: &[u8]) -> Result<(String, String), AuthError> {
    const M: &str = "AMQPLAIN";
    let malformed = |reason| AuthError::Malformed {
        mechanism: M,
        reason,
    };
    let mut cur = Cursor::new(response);
    let (mut login, mut password) = (None, None);
    while !cur.is_empty() {
        let key = cur
            .short_str()
            .map_err(|_| malformed("truncated table key"))?;
        let slot = match key {
            b"LOGIN" => &mut login,
            b"PASSWORD" => &mut password,
            _ => {
                skip_value(&mut cur, 1).map_err(|e| malformed(e.reason()))?;
                continue;
            }
        };
        if cur.u8().map_err(|_| malformed("truncated table value"))? != b'S' {
            return Err(malformed("LOGIN and PASSWORD must be long strings"));
        }
        *slot = Some(
            cur.long_str()
                .map_err(|_| malformed("truncated long string"))?,
        );
    }
    match (login, password) {
        (Some(user), Some(pass)) => Ok((utf8(M, "user", user)?, utf8(M, "password", pass)?)),
        _ => Err(malformed("LOGIN or PASSWORD missing")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_variants() {
        assert_eq!(
            parse_plain(b"guest\0guest\0pw"),
            Ok(("guest".into(), "pw".into()))
        );
        assert_eq!(parse_plain(b"\0\0"), Ok((String::new(), String::new())));
        assert_eq!(
            parse_plain(b"admin\0guest\0pw"),
            Err(AuthError::AuthzidMismatch)
        );
        assert!(matches!(
            parse_plain(b"\0guest"),
            Err(AuthError::Malformed { .. })
        ));
        assert!(matches!(
            parse_plain(b"\0guest\0pw\0x"),
            Err(AuthError::Malformed { .. })
        ));
        assert!(matches!(
            parse_plain(b"\0gu\xffest\0pw"),
            Err(AuthError::NotUtf8 { field: "user", .. })
        ));
    }

    #[test]
    fn amqplain_variants() {
        // Matches what amq-protocol (lapin) sends: table entries without a length prefix.
        let creds = amq_protocol::auth::Credentials::new("user".into(), "pa\0ss".into());
        let response = creds.sasl_auth_string(amq_protocol::auth::SASLMechanism::AMQPlain);
        assert_eq!(
            parse_amqplain(response.as_bytes()),
            Ok(("user".into(), "pa\0ss".into()))
        );
        // An extra entry of another type is skipped.
        let mut r = vec![1u8, b'x', b'I', 0, 0, 0, 1];
        r.extend_from_slice(response.as_bytes());
        assert_eq!(parse_amqplain(&r), Ok(("user".into(), "pa\0ss".into())));
        // LOGIN as a short int is refused; missing PASSWORD is refused; truncation too.
        assert!(parse_amqplain(b"\x05LOGINs\x00\x01").is_err());
        assert!(parse_amqplain(b"\x05LOGINS\x00\x00\x00\x01u").is_err());
        assert!(parse_amqplain(b"\x05LOGINS\x00\x00\x00\x09u").is_err());
        assert!(parse_amqplain(b"").is_err());
    }
}
