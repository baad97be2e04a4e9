//! Protocol versions and the `accept-version` negotiation of STOMP 1.1+.
//!
//! A client lists the versions it speaks in the `CONNECT` frame's `accept-version` header
//! (`1.0,1.1,1.2`); a missing header means the client only speaks 1.0. The session uses the
//! highest version both sides support; if there is none, the server answers with an `ERROR`
//! frame (whose `version` header lists what it supports, see [`format_versions`]) and closes.

use std::fmt;

/// A STOMP protocol version. Ordered: `V1_0 < V1_1 < V1_2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// STOMP 1.0: no header escaping, no heart-beats, no `NACK`.
    V1_0,
    /// STOMP 1.1: header escaping of `\n`, `\c` and `\\`; heart-beats; `NACK`.
    V1_1,
    /// STOMP 1.2: adds the `\r` escape and CRLF line endings.
    V1_2,
}

impl Version {
    /// Every version, lowest first.
    pub const ALL: [Version; 3] = [Version::V1_0, Version::V1_1, Version::V1_2];

    /// The version as written in `accept-version` and `version` headers (`"1.2"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Version::V1_0 => "1.0",
            Version::V1_1 => "1.1",
            Version::V1_2 => "1.2",
        }
    }

    /// Parses one version token exactly (`"1.1"`); `None` for anything else (`"2.0"`, `" 1.1"`).
    pub fn parse(token: &str) -> Option<Version> {
        Version::ALL.into_iter().find(|v| v.as_str() == token)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Picks the session version: the highest version in `supported` that the client offers.
///
/// `accept_version` is the value of the `CONNECT` frame's `accept-version` header: a comma
/// separated list; tokens this crate does not know (`2.0`) are ignored. `None` (header absent)
/// means the client speaks only 1.0. Returns `None` when there is no common version.
///
/// ```
/// use junction_stomp::{negotiate, Version};
/// let all = Version::ALL;
/// assert_eq!(negotiate(Some("1.0,1.1,2.0"), &all), Some(Version::V1_1));
/// assert_eq!(negotiate(None, &all), Some(Version::V1_0));
/// assert_eq!(negotiate(Some("1.0"), &[Version::V1_2]), None);
/// ```
pub fn negotiate(accept_version: Option<&str>, supported: &[Version]) -> Option<Version> {
    let offered = |v: Version| match accept_version {
        None => v == Version::V1_0,
        Some(list) => list.split(',').any(|t| t == v.as_str()),
    };
    supported.iter().copied().filter(|&v| offered(v)).max()
}

/// Formats versions as a comma separated list (`"1.1,1.2"`), e.g. for the `version` header of
/// the `ERROR` frame sent when negotiation fails.
pub fn format_versions(versions: &[Version]) -> String {
    versions
        .iter()
        .map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        for v in Version::ALL {
            assert_eq!(Version::parse(v.as_str()), Some(v));
            assert_eq!(v.to_string(), v.as_str());
        }
        assert_eq!(Version::parse("2.0"), None);
        assert_eq!(Version::parse(" 1.1"), None);
        assert!(Version::V1_0 < Version::V1_1 && Version::V1_1 < Version::V1_2);
    }

    #[test]
    fn negotiation_picks_highest_common() {
        let all = Version::ALL;
        // The spec's example: the client offers 1.0, 1.1 and 2.0.
        assert_eq!(negotiate(Some("1.0,1.1,2.0"), &all), Some(Version::V1_1));
        assert_eq!(negotiate(Some("1.2"), &all), Some(Version::V1_2));
        assert_eq!(negotiate(Some("1.2,1.0"), &all), Some(Version::V1_2));
        assert_eq!(
            negotiate(Some("1.1,1.2"), &[Version::V1_1]),
            Some(Version::V1_1)
        );
        // Absent header: 1.0 only.
        assert_eq!(negotiate(None, &all), Some(Version::V1_0));
        assert_eq!(negotiate(None, &[Version::V1_1, Version::V1_2]), None);
        // Nothing in common.
        assert_eq!(negotiate(Some("2.0,2.1"), &all), None);
        assert_eq!(negotiate(Some(""), &all), None);
        assert_eq!(negotiate(Some("1.2"), &[]), None);
    }

    #[test]
    fn version_list() {
        assert_eq!(format_versions(&Version::ALL), "1.0,1.1,1.2");
        assert_eq!(format_versions(&[]), "");
    }
}
