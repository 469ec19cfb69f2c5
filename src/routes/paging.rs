//! Page tokens: `{time}.{id}` of the last row served, so the next page starts strictly after
//! it whatever is inserted meanwhile. Every string of that shape is a valid position (the
//! OpenAPI document gives the shape as a pattern), so a well-formed token never fails.

use crate::http::error::ApiError;

/// The shape of a page token, as the OpenAPI document declares it. Kept literal in the `#[param(pattern = …)]` attributes, which take no constants; a
/// unit test holds them equal.
pub const TOKEN_PATTERN: &str = r"^[0-9]{1,18}\.[!-~]{1,255}$";

pub fn encode(at: i64, id: &str) -> String {
    format!("{at}.{id}")
}

/// The cursor in `page`, or a `400` naming the parameter.
pub fn decode(page: &str) -> Result<(i64, String), ApiError> {
    let parsed = || {
        let (at, id) = page.split_once('.')?;
        let well_formed = (1..=18).contains(&at.len())
            && at.bytes().all(|b| b.is_ascii_digit())
            && (1..=255).contains(&id.len())
            && id.bytes().all(|b| b.is_ascii_graphic());
        well_formed.then(|| Some((at.parse().ok()?, id.to_owned())))?
    };
    parsed().ok_or_else(|| {
        ApiError::invalid_parameter("page", "is not a page token: pass a `next_page` unchanged")
    })
}

/// `limit`, defaulted and bounded, or a `400` naming it.
pub fn limit(requested: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    let limit = requested.unwrap_or(default);
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::invalid_parameter(
            "limit",
            format!("must be 1 to {max}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips() {
        assert_eq!(
            decode(&encode(42, "a.b:c")).ok(),
            Some((42, "a.b:c".to_owned()))
        );
    }

    #[test]
    fn a_malformed_token_is_a_400() {
        let status = |page: &str| decode(page).map_err(|e| e.problem().status);
        for page in [
            "nodot",
            ".id",
            "12.",
            "x1.id",
            "1.a b",
            "1234567890123456789.id",
        ] {
            assert_eq!(status(page), Err(400), "{page:?}");
        }
    }

    #[test]
    fn the_documented_pattern_admits_exactly_the_tokens_decode_accepts() {
        let pattern = regex::Regex::new(TOKEN_PATTERN).expect("the pattern compiles");
        let spec: serde_json::Value =
            serde_json::from_str(&crate::openapi::pretty_json()).expect("the spec is JSON");
        for path in ["/v1/starrocks", "/v1/admin/decisions"] {
            let page = spec["paths"][path]["get"]["parameters"]
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p["name"] == "page"))
                .expect("a page parameter");
            assert_eq!(page["schema"]["pattern"], TOKEN_PATTERN, "{path}");
        }
        for page in [
            "0.0",
            "42.a.b:c",
            "999999999999999999.x",
            "1.in17",
            "nodot",
            "1.a b",
            "-1.x",
            "1.",
            "",
        ] {
            assert_eq!(pattern.is_match(page), decode(page).is_ok(), "{page:?}");
        }
    }

    #[test]
    fn limits_outside_the_bounds_are_refused() {
        assert_eq!(limit(None, 50, 200).ok(), Some(50));
        assert!(limit(Some(0), 50, 200).is_err());
        assert!(limit(Some(201), 50, 200).is_err());
    }
}
