//! Feishu's callback crypto: the encrypted body (`{"encrypt": b64}`, AES-256-CBC with
//! key = SHA-256(encrypt_key) and the IV in the first 16 bytes) and the `X-Lark-Signature`
//! header (hex SHA-256 of timestamp + nonce + encrypt_key + the raw body bytes).

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type Decryptor = cbc::Decryptor<aes::Aes256>;
type Encryptor = cbc::Encryptor<aes::Aes256>;

const IV_LEN: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("encrypted body is not base64")]
    Base64,
    #[error("encrypted body is too short or not whole blocks")]
    Length,
    #[error("encrypted body does not decrypt with the configured encrypt_key")]
    Padding,
}

fn key(encrypt_key: &str) -> [u8; 32] {
    Sha256::digest(encrypt_key.as_bytes()).into()
}

/// The plaintext of an `encrypt` field.
pub fn decrypt(encrypt_key: &str, encrypted: &str) -> Result<Vec<u8>, CryptoError> {
    let raw = STANDARD.decode(encrypted.trim()).map_err(|_| CryptoError::Base64)?;
    if raw.len() < IV_LEN * 2 || raw.len() % IV_LEN != 0 {
        return Err(CryptoError::Length);
    }
    let (iv, ciphertext) = raw.split_at(IV_LEN);
    let key = key(encrypt_key);
    let decryptor = Decryptor::new_from_slices(&key, iv).map_err(|_| CryptoError::Length)?;
    decryptor.decrypt_padded_vec::<Pkcs7>(ciphertext).map_err(|_| CryptoError::Padding)
}

/// What Feishu would put in `encrypt` for `plain` (for fakes and tests; the gateway only
/// decrypts). `iv` fixed makes the output deterministic.
pub fn encrypt(encrypt_key: &str, plain: &[u8], iv: [u8; IV_LEN]) -> String {
    let key = key(encrypt_key);
    let encryptor = Encryptor::new(&key.into(), &iv.into());
    let mut out = iv.to_vec();
    out.extend_from_slice(&encryptor.encrypt_padded_vec::<Pkcs7>(plain));
    STANDARD.encode(out)
}

/// `hex(SHA-256(timestamp + nonce + encrypt_key + body))`, lowercase.
pub fn signature(timestamp: &str, nonce: &str, encrypt_key: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(timestamp.as_bytes());
    hasher.update(nonce.as_bytes());
    hasher.update(encrypt_key.as_bytes());
    hasher.update(body);
    hex::encode(hasher.finalize())
}

/// Whether `given` is the signature of `body`, compared in constant time. The header is hex:
/// case is normalised first (that reveals nothing about the expected value).
pub fn signature_matches(given: &str, timestamp: &str, nonce: &str, encrypt_key: &str, body: &[u8]) -> bool {
    let expected = signature(timestamp, nonce, encrypt_key, body);
    let given = given.trim().to_ascii_lowercase();
    secret_eq(given.as_bytes(), expected.as_bytes())
}

/// Equal in time independent of where the first difference is (the length is not secret).
pub fn secret_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decrypts_the_official_vector() {
        let plain = decrypt("test key", "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=").unwrap();
        assert_eq!(plain, b"hello world");
    }

    #[test]
    fn encrypt_round_trips_and_wrong_keys_fail() {
        let iv = core::array::from_fn(|i| i as u8);
        let sealed = encrypt("k1", "把按钮改成绿色".as_bytes(), iv);
        assert_eq!(decrypt("k1", &sealed).unwrap(), "把按钮改成绿色".as_bytes());
        // A wrong key almost always breaks the padding; when it does not, the JSON parse does.
        assert!(decrypt("k2", &sealed).map_or(true, |p| p != "把按钮改成绿色".as_bytes()));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        for bad in ["", "!!!", "AAAA", "AAECAwQFBgcICQoLDA0ODw==", &"A".repeat(44)] {
            assert!(decrypt("k", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn signature_is_sha256_hex_over_the_raw_body() {
        let body = br#"{"encrypt":"x"}"#;
        let sig = signature("1700000000", "nonce-123", "test key", body);
        assert_eq!(sig.len(), 64);
        assert!(signature_matches(&sig, "1700000000", "nonce-123", "test key", body));
        assert!(signature_matches(&sig.to_uppercase(), "1700000000", "nonce-123", "test key", body));
        assert!(!signature_matches(&sig, "1700000001", "nonce-123", "test key", body));
        assert!(!signature_matches(&sig[..63], "1700000000", "nonce-123", "test key", body));
        assert!(!signature_matches("", "1700000000", "nonce-123", "test key", body));
    }
}
