//! Domain values that parse their input once, so the rest of the pipeline never re-checks it.
//!
//! The rules mirror the upstream create API (`reference/huawei-create-starrocks-instance.txt`):
//! rejecting here costs the caller a clear `400` instead of a round trip to the cloud.

use std::fmt;

use rand::Rng;
use rand::seq::{IndexedRandom, SliceRandom};
use secrecy::{ExposeSecret, SecretString};

use crate::error::FieldError;

/// Why a value was refused; the message is safe to show to the caller (it never echoes a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

/// A StarRocks instance name: 4–64 characters, starts with a letter; letters, digits, `-`, `_`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceName(String);

impl InstanceName {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let length = raw.chars().count();
        if !(4..=64).contains(&length) {
            return Err(InvalidValue(format!(
                "must be 4 to 64 characters long, got {length}"
            )));
        }
        if !raw.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return Err(InvalidValue("must start with a letter".into()));
        }
        if let Some(bad) = raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(InvalidValue(format!(
                "may contain only letters, digits, '-' and '_', found {bad:?}"
            )));
        }
        Ok(Self(raw.to_owned()))
    }
}

impl AsRef<str> for InstanceName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The special characters the upstream accepts in `db_root_pwd`.
pub const PASSWORD_SPECIALS: &str = "~!@#$%^*-_=+?,()&|.";

/// Common passwords that meet the length and class rules. The cloud refuses weak passwords
/// by a list it does not publish; refusing these here answers `400` naming the field instead
/// of a refusal from the cloud. An approximation, like the simulator's.
const WEAK_PASSWORDS: &[&str] = &[
    "password1",
    "password123",
    "passw0rd",
    "p@ssw0rd",
    "p@ssword1",
    "aa123456",
    "abc12345",
    "abcd1234",
    "admin123",
    "admin@123",
    "qwerty123",
    "qwer1234",
    "root@123",
    "huawei@123",
    "welcome1",
    "changeme1",
];

/// The database root password. Held as a secret: it prints as `[REDACTED]` everywhere.
#[derive(Debug, Clone)]
pub struct RootPassword(SecretString);

impl RootPassword {
    /// Accepts 8–32 characters from letters, digits and [`PASSWORD_SPECIALS`], with at least
    /// three of the four character classes. Error messages never repeat the password.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let length = raw.chars().count();
        if !(8..=32).contains(&length) {
            return Err(InvalidValue(format!(
                "must be 8 to 32 characters long, got {length}"
            )));
        }
        if raw
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || PASSWORD_SPECIALS.contains(c)))
        {
            return Err(InvalidValue(format!(
                "may contain only letters, digits and the special characters {PASSWORD_SPECIALS}"
            )));
        }
        let classes = [
            raw.chars().any(|c| c.is_ascii_uppercase()),
            raw.chars().any(|c| c.is_ascii_lowercase()),
            raw.chars().any(|c| c.is_ascii_digit()),
            raw.chars().any(|c| PASSWORD_SPECIALS.contains(c)),
        ];
        if classes.iter().filter(|present| **present).count() < 3 {
            return Err(InvalidValue(
                "must contain at least three of: uppercase letters, lowercase letters, digits, special characters"
                    .into(),
            ));
        }
        if WEAK_PASSWORDS
            .iter()
            .any(|weak| weak.eq_ignore_ascii_case(raw))
        {
            return Err(InvalidValue(
                "is a common password, which Huawei Cloud refuses as weak; choose another".into(),
            ));
        }
        Ok(Self(SecretString::from(raw)))
    }

    /// A 24-character password with all four character classes, from the OS-seeded CSPRNG.
    pub fn generate() -> Self {
        const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
        const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
        const DIGITS: &[u8] = b"23456789";
        // A subset of the upstream's specials that survives shells and URLs unquoted.
        const SPECIALS: &[u8] = b"~!@#%^*-_=+?,.";
        const LENGTH: usize = 24;
        let mut rng = rand::rng();
        let all: Vec<u8> = [UPPER, LOWER, DIGITS, SPECIALS].concat();
        let mut chars: Vec<u8> = [UPPER, LOWER, DIGITS, SPECIALS]
            .iter()
            .filter_map(|class| class.choose(&mut rng).copied())
            .collect();
        while chars.len() < LENGTH {
            chars.push(all[rng.random_range(0..all.len())]);
        }
        chars.shuffle(&mut rng);
        Self(SecretString::from(
            String::from_utf8_lossy(&chars).into_owned(),
        ))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// A time zone in the upstream's `UTC+08:00` form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeZone(String);

impl TimeZone {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let invalid = || {
            InvalidValue(format!(
                "must look like UTC+08:00 or UTC-05:30, got {raw:?}"
            ))
        };
        let offset = raw.strip_prefix("UTC").ok_or_else(invalid)?;
        let bytes = offset.as_bytes();
        let well_formed = bytes.len() == 6
            && matches!(bytes[0], b'+' | b'-')
            && bytes[1..3].iter().all(u8::is_ascii_digit)
            && bytes[3] == b':'
            && bytes[4..6].iter().all(u8::is_ascii_digit);
        if !well_formed {
            return Err(invalid());
        }
        let hours: u32 = offset[1..3].parse().map_err(|_| invalid())?;
        let minutes: u32 = offset[4..6].parse().map_err(|_| invalid())?;
        if hours > 14 || minutes >= 60 {
            return Err(invalid());
        }
        Ok(Self(raw.to_owned()))
    }
}

impl AsRef<str> for TimeZone {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The fields of a request that were refused, every one at once, sorted by field name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", describe(&self.errors))]
pub struct InvalidInput {
    pub errors: Vec<FieldError>,
}

impl InvalidInput {
    pub fn new(mut errors: Vec<FieldError>) -> Self {
        errors.sort_by(|a, b| a.field.cmp(&b.field));
        Self { errors }
    }

    /// One refused field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::new(vec![FieldError {
            field: field.to_owned(),
            message: message.into(),
        }])
    }
}

fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("`{}` {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The longest accepted `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

/// A caller's `Idempotency-Key`: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        if raw.is_empty()
            || raw.chars().count() > MAX_IDEMPOTENCY_KEY_CHARS
            || !raw.chars().all(|c| c.is_ascii_graphic())
        {
            return Err(InvalidValue(format!(
                "the Idempotency-Key header must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} visible ASCII characters"
            )));
        }
        Ok(Self(raw.to_owned()))
    }
}

impl AsRef<str> for IdempotencyKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_starting_with_a_digit_is_rejected() {
        assert!(InstanceName::parse("1abc").is_err());
    }

    #[test]
    fn a_name_shorter_than_four_characters_is_rejected() {
        assert!(InstanceName::parse("abc").is_err());
    }

    #[test]
    fn a_name_of_sixty_five_characters_is_rejected() {
        assert!(InstanceName::parse(&format!("a{}", "b".repeat(64))).is_err());
    }

    #[test]
    fn a_name_with_a_dot_or_non_ascii_letter_is_rejected() {
        assert!(InstanceName::parse("abc.def").is_err());
        assert!(InstanceName::parse("abcé").is_err());
    }

    #[test]
    fn a_valid_name_is_accepted() {
        assert_eq!(
            InstanceName::parse("htap-ff64_A").map(|n| n.to_string()),
            Ok("htap-ff64_A".to_owned())
        );
    }

    #[test]
    fn a_password_with_two_character_classes_is_rejected() {
        assert!(RootPassword::parse("abcdefgh123").is_err());
    }

    #[test]
    fn a_password_with_a_character_outside_the_allowed_set_is_rejected() {
        assert!(RootPassword::parse("Abcdef12 3").is_err());
        assert!(RootPassword::parse("Abcdef12/3").is_err());
    }

    #[test]
    fn password_errors_never_repeat_the_password() {
        let err = RootPassword::parse("sEcret99/").expect_err("slash is not allowed");
        assert!(!err.0.contains("sEcret99"));
    }

    #[test]
    fn a_password_of_thirty_three_characters_is_rejected() {
        assert!(RootPassword::parse(&format!("Aa1{}", "b".repeat(30))).is_err());
    }

    #[test]
    fn the_documented_example_password_is_accepted() {
        assert!(RootPassword::parse("Test@123!").is_ok());
        for weak in ["Password1", "Aa123456", "P@ssw0rd"] {
            assert!(RootPassword::parse(weak).is_err(), "{weak} is common");
        }
    }

    #[test]
    fn generated_passwords_always_satisfy_the_upstream_rules() {
        for _ in 0..500 {
            let password = RootPassword::generate();
            assert!(RootPassword::parse(password.expose()).is_ok());
            assert!(password.expose().chars().any(|c| c.is_ascii_uppercase()));
            assert!(password.expose().chars().any(|c| c.is_ascii_lowercase()));
            assert!(password.expose().chars().any(|c| c.is_ascii_digit()));
        }
    }

    #[test]
    fn a_password_prints_redacted() {
        let password = RootPassword::generate();
        assert!(!format!("{password:?}").contains(password.expose()));
    }

    #[test]
    fn time_zones_must_be_utc_offsets() {
        assert!(TimeZone::parse("UTC+08:00").is_ok());
        assert!(TimeZone::parse("UTC-05:30").is_ok());
        assert!(TimeZone::parse("Europe/Berlin").is_err());
        assert!(TimeZone::parse("UTC+8").is_err());
        assert!(TimeZone::parse("UTC+15:00").is_err());
    }
}
