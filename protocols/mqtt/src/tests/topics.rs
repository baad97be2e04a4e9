//! Topic validation and matching tables from the specs' examples (3.1.1 §4.7, 5.0 §4.7,
//! §4.8.2), and the AMQP translation both ways.

use proptest::prelude::*;

use crate::topic::*;

#[test]
fn topic_names() {
    for ok in [
        "sport/tennis/player1",
        "/",
        "a//b",
        "/finance",
        "$SYS/x",
        "a b",
        "ü/*",
    ] {
        assert_eq!(validate_topic_name(ok), Ok(()), "{ok}");
    }
    assert_eq!(validate_topic_name(""), Err(TopicError::Empty));
    assert_eq!(validate_topic_name("a/+"), Err(TopicError::WildcardInName));
    assert_eq!(validate_topic_name("a#"), Err(TopicError::WildcardInName));
    assert_eq!(validate_topic_name("a\0b"), Err(TopicError::Nul));
    assert_eq!(
        validate_topic_name(&"x".repeat(65_536)),
        Err(TopicError::TooLong)
    );
    assert_eq!(validate_topic_name(&"x".repeat(65_535)), Ok(()));
}

#[test]
fn topic_filters() {
    let valid = [
        "sport/tennis/player1/#",
        "sport/#",
        "#",
        "+",
        "+/tennis/#",
        "sport/+/player1",
        "+/+",
        "/+",
        "sport/",
        "$SYS/#",
        "$share/consumer1/sport/tennis/+",
        "$share/g/#",
        "$sharex/a",
    ];
    for f in valid {
        assert_eq!(validate_topic_filter(f), Ok(()), "{f}");
    }
    let invalid = [
        ("sport/tennis#", TopicError::MisplacedWildcard),
        ("sport/tennis/#/ranking", TopicError::MisplacedWildcard),
        ("sport+", TopicError::MisplacedWildcard),
        ("#/a", TopicError::MisplacedWildcard),
        ("", TopicError::Empty),
        ("a\0", TopicError::Nul),
        ("$share/consumer1", TopicError::InvalidShare),
        ("$share/", TopicError::InvalidShare),
        ("$share//a", TopicError::InvalidShare),
        ("$share/g/", TopicError::InvalidShare),
        ("$share/a+/b", TopicError::InvalidShare),
        ("$share/#/b", TopicError::InvalidShare),
        ("$share", TopicError::InvalidShare),
        ("$share/g/a/#/b", TopicError::MisplacedWildcard),
    ];
    for (f, e) in invalid {
        assert_eq!(validate_topic_filter(f), Err(e), "{f}");
    }
}

#[test]
fn shared_subscriptions() {
    let p = parse_filter("$share/consumer1/sport/tennis/+").unwrap();
    assert_eq!(
        p,
        ParsedFilter {
            share_group: Some("consumer1"),
            filter: "sport/tennis/+"
        }
    );
    let p = parse_filter("$share/g/#").unwrap();
    assert_eq!(
        p,
        ParsedFilter {
            share_group: Some("g"),
            filter: "#"
        }
    );
    let p = parse_filter("sport/#").unwrap();
    assert_eq!(
        p,
        ParsedFilter {
            share_group: None,
            filter: "sport/#"
        }
    );
}

#[test]
fn matching() {
    let table: &[(&str, &str, bool)] = &[
        ("sport/tennis/player1", "sport/tennis/player1/#", true),
        (
            "sport/tennis/player1/ranking",
            "sport/tennis/player1/#",
            true,
        ),
        (
            "sport/tennis/player1/score/wimbledon",
            "sport/tennis/player1/#",
            true,
        ),
        ("sport", "sport/#", true),
        ("sport/tennis/player1", "sport/tennis/+", true),
        ("sport/tennis/player2", "sport/tennis/+", true),
        ("sport/tennis/player1/ranking", "sport/tennis/+", false),
        ("sport", "sport/+", false),
        ("sport/", "sport/+", true),
        ("/finance", "+/+", true),
        ("/finance", "/+", true),
        ("/finance", "+", false),
        ("sport/tennis", "#", true),
        ("a", "a", true),
        ("a", "b", false),
        ("a/b", "a", false),
        ("a", "a/b", false),
        ("ACCOUNTS", "accounts", false),
        ("/", "+/+", true),
        ("/", "#", true),
        ("$SYS/monitor/Clients", "#", false),
        ("$SYS/monitor/Clients", "+/monitor/Clients", false),
        ("$SYS/monitor/Clients", "$SYS/#", true),
        ("$SYS/monitor/Clients", "$SYS/monitor/+", true),
        ("$SYS", "+", false),
    ];
    for (name, filter, expected) in table {
        assert_eq!(matches(name, filter), *expected, "{name} against {filter}");
    }
}

#[test]
fn amqp_translation_table() {
    let names = [
        ("a/b/c", "a.b.c"),
        ("a.b/c", "a/b.c"),
        ("/a", ".a"),
        ("a/", "a."),
        ("a//b", "a..b"),
        ("/", "."),
        ("$SYS/x", "$SYS.x"),
        ("a/*/b", "a.*.b"),
    ];
    for (mqtt, amqp) in names {
        assert_eq!(name_to_amqp(mqtt).as_deref(), Ok(amqp), "{mqtt}");
        assert_eq!(amqp_to_name(amqp).as_deref(), Ok(mqtt), "{amqp}");
    }
    let filters = [
        ("a/+/b", "a.*.b"),
        ("a/#", "a.#"),
        ("#", "#"),
        ("+", "*"),
        ("a.b/+", "a/b.*"),
        ("/+/", ".*."),
        ("a*b/#", "a*b.#"),
        ("$SYS/#", "$SYS.#"),
    ];
    for (mqtt, amqp) in filters {
        assert_eq!(filter_to_amqp(mqtt).as_deref(), Ok(amqp), "{mqtt}");
        assert_eq!(amqp_to_filter(amqp).as_deref(), Ok(mqtt), "{amqp}");
    }
    assert!(matches!(
        filter_to_amqp("a/*"),
        Err(TopicError::Untranslatable(_))
    ));
    assert!(matches!(
        filter_to_amqp("$share/g/a"),
        Err(TopicError::Untranslatable(_))
    ));
    assert!(filter_to_amqp("a/#/b").is_err());
    assert!(matches!(
        amqp_to_filter("a.#.b"),
        Err(TopicError::Untranslatable(_))
    ));
    assert!(matches!(
        amqp_to_filter("a.+"),
        Err(TopicError::Untranslatable(_))
    ));
    assert!(matches!(
        amqp_to_filter("a#"),
        Err(TopicError::Untranslatable(_))
    ));
    assert!(matches!(
        amqp_to_filter("$share.g.a"),
        Err(TopicError::Untranslatable(_))
    ));
    assert_eq!(amqp_to_name("a.+"), Err(TopicError::WildcardInName));
    assert_eq!(amqp_to_name("a.#"), Err(TopicError::WildcardInName));
    assert_eq!(amqp_to_name(""), Err(TopicError::Empty));
    assert_eq!(name_to_amqp("a/+"), Err(TopicError::WildcardInName));
}

fn level() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-c./*$ü]{0,4}".prop_map(|s| s.replace('/', "")),
        Just(String::new()),
        Just("*".to_owned()),
        Just("+".to_owned()),
        Just("#".to_owned()),
    ]
}

fn topicish() -> impl Strategy<Value = String> {
    prop::collection::vec(level(), 1..6).prop_map(|l| l.join("/"))
}

fn keyish() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-c/*#+$]{0,3}", 1..6).prop_map(|w| w.join("."))
}

proptest! {
    #[test]
    fn mqtt_to_amqp_and_back(t in topicish()) {
        if validate_topic_name(&t).is_ok() {
            let key = name_to_amqp(&t).unwrap();
            prop_assert_eq!(amqp_to_name(&key).unwrap(), t.clone());
        }
        if let Ok(key) = filter_to_amqp(&t) {
            prop_assert_eq!(amqp_to_filter(&key).unwrap(), t.clone());
        } else if let Ok(p) = parse_filter(&t) {
            // Only shared filters and literal `*` levels are refused.
            prop_assert!(p.share_group.is_some() || t.split('/').any(|l| l == "*"));
        }
    }

    #[test]
    fn amqp_to_mqtt_and_back(k in keyish()) {
        if let Ok(name) = amqp_to_name(&k) {
            prop_assert_eq!(name_to_amqp(&name).unwrap(), k.clone());
        }
        if let Ok(filter) = amqp_to_filter(&k) {
            prop_assert_eq!(filter_to_amqp(&filter).unwrap(), k.clone());
        }
    }

    #[test]
    fn translation_preserves_matching(name in topicish(), filter in topicish()) {
        // When both sides translate, an MQTT match is exactly an AMQP topic-exchange match.
        if let (Ok(key), Ok(binding)) = (name_to_amqp(&name), filter_to_amqp(&filter)) {
            if validate_topic_filter(&filter).is_ok() && !name.starts_with('$') {
                prop_assert_eq!(matches(&name, &filter), amqp_matches(&key, &binding));
            }
        }
    }
}

/// A reference AMQP topic-exchange matcher: `*` one word, `#` zero or more words.
fn amqp_matches(key: &str, binding: &str) -> bool {
    fn go(k: &[&str], b: &[&str]) -> bool {
        match (b.first(), k.first()) {
            (None, None) => true,
            (Some(&"#"), _) => go(k, &b[1..]) || (!k.is_empty() && go(&k[1..], b)),
            (Some(&"*"), Some(_)) => go(&k[1..], &b[1..]),
            (Some(w), Some(x)) if w == x => go(&k[1..], &b[1..]),
            _ => false,
        }
    }
    let k: Vec<&str> = key.split('.').collect();
    let b: Vec<&str> = binding.split('.').collect();
    go(&k, &b)
}
