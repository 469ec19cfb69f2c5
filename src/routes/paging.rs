//! Opaque page tokens: the `(time, id)` of the last row served, so the next page starts
//! strictly after it whatever is inserted meanwhile.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::http::error::ApiError;

pub fn encode(at: i64, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{at}:{id}"))
}

/// The cursor in `page`, or a `400` naming the parameter.
pub fn decode(page: &str) -> Result<(i64, String), ApiError> {
    let parsed = || {
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(page).ok()?).ok()?;
        let (at, id) = text.split_once(':')?;
        Some((at.parse().ok()?, id.to_owned()))
    };
    parsed().ok_or_else(|| ApiError::invalid_parameter("page", "is not a page token from this API"))
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
            decode(&encode(42, "a:b")).ok(),
            Some((42, "a:b".to_owned()))
        );
    }

    #[test]
    fn a_forged_token_is_a_400() {
        let status = |page: &str| decode(page).map_err(|e| e.problem().status);
        assert_eq!(status("not-base64!"), Err(400));
        assert_eq!(status(&URL_SAFE_NO_PAD.encode("nocolon")), Err(400));
    }

    #[test]
    fn limits_outside_the_bounds_are_refused() {
        assert_eq!(limit(None, 50, 200).ok(), Some(50));
        assert!(limit(Some(0), 50, 200).is_err());
        assert!(limit(Some(201), 50, 200).is_err());
    }
}
