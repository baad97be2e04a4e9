//! AMQP topic matching: words separated by `.`, `*` matches exactly one word, `#` zero or more.

/// Whether `routing_key` matches the binding `pattern`.
pub fn matches(pattern: &str, routing_key: &str) -> bool {
    let (p, k) = (words(pattern), words(routing_key));
    match_words(&p, &k)
}

/// The words of a key; the empty key has none.
fn words(s: &str) -> Vec<&str> {
    if s.is_empty() {
        Vec::new()
    } else {
        s.split('.').collect()
    }
}

fn match_words(p: &[&str], k: &[&str]) -> bool {
    match (p.split_first(), k.split_first()) {
        (None, None) => true,
        (Some((&"#", rest)), _) => {
            // `#` takes zero words, or one word and stays.
            match_words(rest, k)
                || (!k.is_empty() && match_words(p, k.get(1..).unwrap_or_default()))
        }
        (Some((&"*", prest)), Some((_, krest))) => match_words(prest, krest),
        (Some((w, prest)), Some((kw, krest))) => w == kw && match_words(prest, krest),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn amqp_topic_rules() {
        assert!(matches("a.b.c", "a.b.c"));
        assert!(!matches("a.b.c", "a.b"));
        assert!(matches("a.*.c", "a.x.c"));
        assert!(!matches("a.*.c", "a.c"));
        assert!(matches("a.#", "a"));
        assert!(matches("a.#", "a.b.c"));
        assert!(matches("#", ""));
        assert!(matches("#", "x.y"));
        assert!(matches("#.c", "a.b.c"));
        assert!(matches("a.#.c", "a.c"));
        assert!(matches("a.#.c", "a.b.b.c"));
        assert!(!matches("a.#.c", "a.b.d"));
        assert!(matches("*.#", "a"));
        assert!(!matches("*", ""));
        assert!(matches("sensors.#", "sensors.1.temp"));
    }
}
