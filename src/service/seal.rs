//! A generated root password waits in the database until its requester reads it, once; it
//! waits sealed with AES-256-GCM, bound to its request's id, so a copy of the database alone
//! reveals nothing and a sealed value cannot be moved to another request.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use secrecy::{ExposeSecret, SecretString};

use crate::domain::RootPassword;

/// Bytes of an AES-256 key.
pub const KEY_BYTES: usize = 32;

/// Seals and opens passwords with one key.
pub struct PasswordSeal {
    key: LessSafeKey,
}

impl std::fmt::Debug for PasswordSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordSeal")
    }
}

/// The configured key is not 64 hexadecimal digits.
#[derive(Debug, thiserror::Error)]
#[error("must be {} hexadecimal digits (a 256-bit key)", KEY_BYTES * 2)]
pub struct InvalidKey;

impl PasswordSeal {
    /// A seal with the key given as hexadecimal digits.
    pub fn from_hex(key: &SecretString) -> Result<Self, InvalidKey> {
        let hex = key.expose_secret().trim();
        if hex.len() != KEY_BYTES * 2 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(InvalidKey);
        }
        let bytes: Vec<u8> = (0..KEY_BYTES)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
            .collect::<Result<_, _>>()
            .map_err(|_| InvalidKey)?;
        Self::from_bytes(&bytes)
    }

    /// A seal with a fresh random key: what it seals, only this process can open.
    pub fn random() -> Self {
        let mut bytes = [0_u8; KEY_BYTES];
        rand::fill(&mut bytes);
        Self::from_bytes(&bytes).unwrap_or_else(|_| unreachable!("a 32-byte key is an AES-256 key"))
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, InvalidKey> {
        let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| InvalidKey)?;
        Ok(Self {
            key: LessSafeKey::new(key),
        })
    }

    /// `password` sealed for `owner_id`: base64 of a random nonce, the ciphertext and its tag.
    pub fn seal(&self, password: &RootPassword, owner_id: &str) -> String {
        let mut nonce = [0_u8; NONCE_LEN];
        rand::fill(&mut nonce);
        let mut sealed = password.expose().as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(owner_id.as_bytes()),
                &mut sealed,
            )
            .unwrap_or_else(|_| unreachable!("a password is far below AES-GCM's length limit"));
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        STANDARD_NO_PAD.encode(out)
    }

    /// The password sealed for `owner_id`; `None` when it was sealed with another key (a
    /// restart without a configured key) or for another owner, or was tampered with.
    pub fn open(&self, sealed: &str, owner_id: &str) -> Option<RootPassword> {
        let bytes = STANDARD_NO_PAD.decode(sealed).ok()?;
        if bytes.len() <= NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut in_out = ciphertext.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(owner_id.as_bytes()), &mut in_out)
            .ok()?;
        RootPassword::parse(std::str::from_utf8(plain).ok()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_password_opens_only_with_its_key_and_owner() {
        let seal = PasswordSeal::random();
        let password = RootPassword::generate();
        let sealed = seal.seal(&password, "req-1");

        assert!(!sealed.contains(password.expose()));
        assert_eq!(
            seal.open(&sealed, "req-1").map(|p| p.expose().to_owned()),
            Some(password.expose().to_owned())
        );
        assert!(seal.open(&sealed, "req-2").is_none(), "bound to its owner");
        assert!(PasswordSeal::random().open(&sealed, "req-1").is_none());
        assert!(seal.open("not base64!", "req-1").is_none());
        assert!(seal.open("", "req-1").is_none());
    }

    #[test]
    fn a_configured_key_is_64_hex_digits() {
        let key = |text: &str| PasswordSeal::from_hex(&SecretString::from(text));
        assert!(key(&"0f".repeat(32)).is_ok());
        assert!(key(&"0f".repeat(31)).is_err());
        assert!(key(&"zz".repeat(32)).is_err());
        let a = key(&"01".repeat(32)).expect("valid");
        let b = key(&"01".repeat(32)).expect("valid");
        let sealed = a.seal(&RootPassword::generate(), "r");
        assert!(
            b.open(&sealed, "r").is_some(),
            "replicas sharing a key open each other's"
        );
    }
}
