//! For tests holding a parser to its documented schema. Schemathesis sends every string the
//! schema allows and expects each accepted, and each one it forbids refused; so a field's
//! documented bounds must be its parser's exactly.

use proptest::prelude::*;
use utoipa::PartialSchema;

/// The JSON schema of `T`.
pub fn schema_of<T: PartialSchema>() -> serde_json::Value {
    serde_json::to_value(T::schema()).expect("a schema serializes")
}

/// Whether `text` is what the schema documents for `field` of `schema`: its pattern (a search,
/// as in JSON Schema) and its length bounds, in characters.
pub fn allows(schema: &serde_json::Value, field: &str, text: &str) -> bool {
    let rules = &schema["properties"][field];
    let pattern = rules["pattern"]
        .as_str()
        .map(|p| regex::Regex::new(p).expect("the documented pattern is a regex"));
    let length = text.chars().count() as u64;
    pattern.is_none_or(|p| p.is_match(text))
        && rules["minLength"].as_u64().is_none_or(|min| length >= min)
        && rules["maxLength"].as_u64().is_none_or(|max| length <= max)
}

/// Text of blanks (ASCII and others, the ones Rust, Python and ECMAScript disagree on
/// included) and visible characters, short or around 1,000 characters.
pub fn blanks_and_text() -> impl Strategy<Value = String> {
    let character = prop_oneof![
        Just(' '),
        Just('\t'),
        Just('\u{85}'),
        Just('\u{a0}'),
        Just('\u{3000}'),
        Just('\u{1c}'),
        Just('\u{feff}'),
        Just('a'),
        Just('é'),
        Just('語'),
    ];
    prop_oneof![
        proptest::collection::vec(character.clone(), 0..30),
        proptest::collection::vec(character, 985..1010),
    ]
    .prop_map(|chars| chars.into_iter().collect())
}

/// Every `pattern` in `value`, wherever it is.
fn patterns<'v>(value: &'v serde_json::Value, found: &mut Vec<&'v str>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner.as_str()) {
                    ("pattern", Some(pattern)) => found.push(pattern),
                    _ => patterns(inner, found),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|item| patterns(item, found)),
        _ => {}
    }
}

#[test]
fn every_documented_pattern_means_the_same_in_every_regex_engine() {
    // `\s`, `\d`, `\w` and `\b` differ between Rust, Python and ECMAScript (U+0085, U+FEFF,
    // non-ASCII digits): a pattern spells its classes out. `[\s\S]`, any character, is the
    // one portable use. (The tests above read patterns with Rust's engine, so they cannot see
    // such differences themselves.)
    let document = serde_json::to_value(crate::openapi::document()).expect("serializes");
    let mut found = Vec::new();
    patterns(&document, &mut found);
    assert!(found.len() > 10, "the document's patterns are found");
    let engine_dependent = regex::Regex::new(r"\\[sSdDwWbB]").expect("a regex");
    for pattern in found {
        let portable = pattern.replace(r"[\s\S]", "");
        assert!(
            !engine_dependent.is_match(&portable),
            "{pattern} reads differently in another regex engine"
        );
    }
}
