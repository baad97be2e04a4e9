//! Topic names and topic filters: validation (MQTT 3.1.1 §4.7, 5.0 §4.7), matching, shared
//! subscriptions (`$share/<group>/<filter>`, 5.0 §4.8.2) and the translation to and from the
//! AMQP topic keys of the broker's `amq.topic` exchange.
//!
//! # AMQP translation
//!
//! RabbitMQ's MQTT convention: an MQTT topic level separator `/` becomes the AMQP word
//! separator `.`, and a `.` inside an MQTT level becomes `/` inside the AMQP word (the two
//! characters swap, so nothing is lost); the wildcard `+` becomes `*` and `#` stays `#`.
//! The edge cases, chosen so that the mapping is a bijection between what it accepts on
//! either side:
//!
//! - Empty levels stay empty words: `a//b` <-> `a..b`, leading `/a` <-> `.a`, trailing
//!   `a/` <-> `a.`. AMQP topic exchanges treat empty words as words, like MQTT treats empty
//!   levels, so `+` / `*` match an empty level / word on both sides.
//! - `$`-topics and `$share/` need no escaping in names (`$SYS/x` <-> `$SYS.x`); a shared
//!   filter is not translated ([`filter_to_amqp`] rejects it: strip the share with
//!   [`parse_filter`] first), and an AMQP binding key starting `$share.` is rejected by
//!   [`amqp_to_filter`].
//! - A filter level that is exactly `*` is a literal level in MQTT but a wildcard in AMQP:
//!   [`filter_to_amqp`] rejects it (`a*b` is fine: AMQP only treats whole words as
//!   wildcards). Names may contain a `*` level: AMQP routing keys have no wildcards.
//! - From AMQP, a word containing `+` or `#` that is not the `#` wildcard (and, in names, any
//!   `+` or `#` at all) has no MQTT form and is rejected, as is a `#` wildcard that is not
//!   the last word (`a.#.b`), which MQTT cannot express.

/// Why a topic name or filter is not valid, or has no form on the other side of the AMQP
/// translation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// Topic names and filters are at least one character long.
    #[error("empty topic")]
    Empty,
    /// Longer than 65,535 bytes of UTF-8.
    #[error("topic longer than 65535 bytes")]
    TooLong,
    /// Contains U+0000.
    #[error("topic contains U+0000")]
    Nul,
    /// A topic name contains `+` or `#`.
    #[error("wildcard in a topic name")]
    WildcardInName,
    /// `+` not alone in its level, or `#` not alone in the last level.
    #[error("misplaced wildcard in a topic filter")]
    MisplacedWildcard,
    /// `$share/` without a non-empty, wildcard-free group and a filter after it.
    #[error("invalid shared subscription")]
    InvalidShare,
    /// Valid, but without an equivalent on the other side of the AMQP translation.
    #[error("no equivalent on the other side: {0}")]
    Untranslatable(&'static str),
}

const SHARE_PREFIX: &str = "$share/";

fn check_common(s: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        return Err(TopicError::Empty);
    }
    if s.len() > 65_535 {
        return Err(TopicError::TooLong);
    }
    if s.contains('\0') {
        return Err(TopicError::Nul);
    }
    Ok(())
}

/// Checks a topic name (PUBLISH, will): non-empty, at most 65,535 bytes, no U+0000, no
/// wildcards. (A `&str` is UTF-8 by construction.)
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    check_common(name)?;
    if name.contains(['+', '#']) {
        return Err(TopicError::WildcardInName);
    }
    Ok(())
}

fn validate_plain_filter(filter: &str) -> Result<(), TopicError> {
    check_common(filter)?;
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err(TopicError::MisplacedWildcard);
        }
        if level.contains('+') && level != "+" {
            return Err(TopicError::MisplacedWildcard);
        }
    }
    Ok(())
}

/// A topic filter split into its optional shared-subscription group and the filter proper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedFilter<'a> {
    /// The `<group>` of `$share/<group>/<filter>`, or `None` for a plain filter.
    pub share_group: Option<&'a str>,
    /// The filter to match topic names against.
    pub filter: &'a str,
}

/// Validates a topic filter, splitting off a `$share/<group>/` prefix. The group must be
/// non-empty and hold neither `/`, `+` nor `#`; the filter after it must be a valid filter.
pub fn parse_filter(filter: &str) -> Result<ParsedFilter<'_>, TopicError> {
    check_common(filter)?;
    if let Some(rest) = filter.strip_prefix(SHARE_PREFIX) {
        let (group, inner) = rest.split_once('/').ok_or(TopicError::InvalidShare)?;
        if group.is_empty() || group.contains(['+', '#']) || inner.is_empty() {
            return Err(TopicError::InvalidShare);
        }
        validate_plain_filter(inner)?;
        return Ok(ParsedFilter {
            share_group: Some(group),
            filter: inner,
        });
    }
    if filter == "$share" {
        return Err(TopicError::InvalidShare);
    }
    validate_plain_filter(filter)?;
    Ok(ParsedFilter {
        share_group: None,
        filter,
    })
}

/// Checks a topic filter (SUBSCRIBE, UNSUBSCRIBE), shared subscriptions included.
pub fn validate_topic_filter(filter: &str) -> Result<(), TopicError> {
    parse_filter(filter).map(|_| ())
}

/// Whether the topic name matches the (plain, valid) topic filter: `+` matches exactly one
/// level (an empty one too), a trailing `#` matches the parent level and any number of
/// levels below it, and a name starting with `$` is not matched by a filter starting with a
/// wildcard ([MQTT-4.7.2-1]). For a shared filter, match against [`ParsedFilter::filter`].
pub fn matches(name: &str, filter: &str) -> bool {
    if name.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut levels = name.split('/');
    for f in filter.split('/') {
        if f == "#" {
            return true;
        }
        match levels.next() {
            Some(level) if f == "+" || f == level => {}
            _ => return false,
        }
    }
    levels.next().is_none()
}

fn swap_separators(word: &str) -> String {
    word.chars()
        .map(|c| match c {
            '/' => '.',
            '.' => '/',
            c => c,
        })
        .collect()
}

/// Translates a valid MQTT topic name into an AMQP routing key (`a/b.c` -> `a.b/c`).
pub fn name_to_amqp(name: &str) -> Result<String, TopicError> {
    validate_topic_name(name)?;
    Ok(swap_separators(name))
}

/// Translates an AMQP routing key into an MQTT topic name (`a.b/c` -> `a/b.c`); rejects keys
/// whose MQTT form is not a valid name (empty, `+`, `#`, U+0000).
pub fn amqp_to_name(key: &str) -> Result<String, TopicError> {
    let name = swap_separators(key);
    validate_topic_name(&name)?;
    Ok(name)
}

/// Translates a valid, non-shared MQTT topic filter into an AMQP binding key
/// (`a/+/b.c/#` -> `a.*.b/c.#`). See the module docs for what is rejected.
pub fn filter_to_amqp(filter: &str) -> Result<String, TopicError> {
    let parsed = parse_filter(filter)?;
    if parsed.share_group.is_some() {
        return Err(TopicError::Untranslatable("shared subscription"));
    }
    let words: Result<Vec<String>, TopicError> = filter
        .split('/')
        .map(|level| match level {
            "+" => Ok("*".to_owned()),
            "#" => Ok("#".to_owned()),
            "*" => Err(TopicError::Untranslatable("literal `*` level")),
            other => Ok(other.replace('.', "/")),
        })
        .collect();
    Ok(words?.join("."))
}

/// Translates an AMQP binding key into an MQTT topic filter (`a.*.b/c.#` -> `a/+/b.c/#`).
/// See the module docs for what is rejected.
pub fn amqp_to_filter(key: &str) -> Result<String, TopicError> {
    if key.starts_with("$share.") || key == "$share" {
        return Err(TopicError::Untranslatable("`$share` binding key"));
    }
    let mut words = key.split('.').peekable();
    let mut levels = Vec::new();
    while let Some(word) = words.next() {
        levels.push(match word {
            "*" => "+".to_owned(),
            "#" if words.peek().is_none() => "#".to_owned(),
            "#" => return Err(TopicError::Untranslatable("`#` before the last word")),
            w if w.contains(['+', '#']) => {
                return Err(TopicError::Untranslatable("`+` or `#` inside a word"))
            }
            w => w.replace('/', "."),
        });
    }
    let filter = levels.join("/");
    validate_plain_filter(&filter)?;
    Ok(filter)
}
