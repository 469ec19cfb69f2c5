//! The JWS signing algorithms the gateway verifies, by their registered names.
//!
//! Every asymmetric algorithm jsonwebtoken verifies is accepted by default, including the
//! fully specified `Ed25519` (RFC 9864), which jsonwebtoken's own `Algorithm` cannot parse
//! and which verifies as EdDSA on an Ed25519 key. HMAC is never accepted: a key set holds
//! public keys, so an HMAC "secret" from it would be public.

use std::fmt;
use std::str::FromStr;

use jsonwebtoken::Algorithm;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlgorithm {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    /// The polymorphic name (RFC 8037); on this gateway always Ed25519.
    EdDsa,
    /// The fully specified name (RFC 9864).
    Ed25519,
}

impl SigningAlgorithm {
    pub const ALL: [Self; 10] = [
        Self::Rs256,
        Self::Rs384,
        Self::Rs512,
        Self::Ps256,
        Self::Ps384,
        Self::Ps512,
        Self::Es256,
        Self::Es384,
        Self::EdDsa,
        Self::Ed25519,
    ];
    /// What an RSA key may verify when its JWK names no `alg`.
    pub const RSA: [Self; 6] = [
        Self::Rs256,
        Self::Rs384,
        Self::Rs512,
        Self::Ps256,
        Self::Ps384,
        Self::Ps512,
    ];
    /// What an Ed25519 key may verify: both names mean the same signature.
    pub const ED25519: [Self; 2] = [Self::EdDsa, Self::Ed25519];

    pub fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::EdDsa => "EdDSA",
            Self::Ed25519 => "Ed25519",
        }
    }

    /// The algorithm jsonwebtoken verifies the signature with.
    pub fn verifier(self) -> Algorithm {
        match self {
            Self::Rs256 => Algorithm::RS256,
            Self::Rs384 => Algorithm::RS384,
            Self::Rs512 => Algorithm::RS512,
            Self::Ps256 => Algorithm::PS256,
            Self::Ps384 => Algorithm::PS384,
            Self::Ps512 => Algorithm::PS512,
            Self::Es256 => Algorithm::ES256,
            Self::Es384 => Algorithm::ES384,
            Self::EdDsa | Self::Ed25519 => Algorithm::EdDSA,
        }
    }

    /// The names of `algorithms`, comma-separated, for messages.
    pub fn list(algorithms: &[Self]) -> String {
        algorithms
            .iter()
            .map(|algorithm| algorithm.name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsupportedAlgorithm {
    #[error(
        "`{0}` is an HMAC algorithm, which verifies with a shared secret; an identity \
         provider's key set publishes public keys only, so HMAC is never accepted"
    )]
    Hmac(String),
    #[error("`{name}` is not a signing algorithm this gateway verifies; supported: {supported}")]
    Unknown { name: String, supported: String },
}

impl FromStr for SigningAlgorithm {
    type Err = UnsupportedAlgorithm;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        if let Some(algorithm) = Self::ALL.into_iter().find(|a| a.name() == name) {
            return Ok(algorithm);
        }
        if matches!(name, "HS256" | "HS384" | "HS512") {
            return Err(UnsupportedAlgorithm::Hmac(name.to_owned()));
        }
        Err(UnsupportedAlgorithm::Unknown {
            name: name.to_owned(),
            supported: Self::list(&Self::ALL),
        })
    }
}

impl<'de> serde::Deserialize<'de> for SigningAlgorithm {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_name_parses_back_to_itself() {
        for algorithm in SigningAlgorithm::ALL {
            assert_eq!(algorithm.name().parse(), Ok(algorithm));
        }
    }

    #[test]
    fn ed25519_verifies_as_eddsa() {
        assert_eq!(SigningAlgorithm::Ed25519.verifier(), Algorithm::EdDSA);
    }

    #[test]
    fn es512_is_refused_with_the_supported_list() {
        let error = "ES512"
            .parse::<SigningAlgorithm>()
            .expect_err("unsupported");
        let message = error.to_string();
        assert!(message.contains("`ES512`"), "{message}");
        assert!(
            message
                .contains("RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA, Ed25519"),
            "{message}"
        );
    }

    #[test]
    fn hmac_is_refused_as_such() {
        assert!(matches!(
            "HS256".parse::<SigningAlgorithm>(),
            Err(UnsupportedAlgorithm::Hmac(_))
        ));
    }

    #[test]
    fn names_are_case_sensitive_as_registered() {
        assert!("rs256".parse::<SigningAlgorithm>().is_err());
        assert!("none".parse::<SigningAlgorithm>().is_err());
    }
}
