//! A callback as Feishu posts it, opened: decrypted when encrypted, its signature and
//! verification token checked, and read as either the `url_verification` handshake or an
//! event envelope. Pure: the webhook route and the tests feed it raw bytes and header values.

use serde_json::Value;

use super::crypto;

/// What the app was configured with on the Feishu console. Empty strings count as unset.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallbackKeys<'a> {
    pub encrypt_key: Option<&'a str>,
    pub verification_token: Option<&'a str>,
}

/// The three signature headers (`X-Lark-Request-Timestamp`, `-Nonce`, `X-Lark-Signature`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SignatureHeaders<'a> {
    pub timestamp: Option<&'a str>,
    pub nonce: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// An event envelope (schema 2.0, or the older 1.0 shape), with what dedupe and routing need.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The decrypted JSON as Feishu sent it: what the inbox stores.
    pub value: Value,
    pub event_id: String,
    pub event_type: String,
}

impl Envelope {
    /// Reads an envelope from plaintext JSON (webhook after decryption, or a long-connection
    /// frame's payload). `None` when it has no event id or type.
    pub fn from_value(value: Value) -> Option<Self> {
        let (event_id, event_type) = match value.get("header") {
            Some(h) => (str_at(h, "event_id"), str_at(h, "event_type")),
            // Schema 1.0: `uuid` at the top, the type inside `event`.
            None => (str_at(&value, "uuid"), value.get("event").map(|e| str_at(e, "type")).unwrap_or_default()),
        };
        if event_id.is_empty() || event_type.is_empty() {
            return None;
        }
        Some(Envelope { value, event_id, event_type })
    }

    /// The inbox's dedupe key. A message is keyed by its `message_id`: Feishu redelivers an
    /// event under the same `event_id`, and a long-connection reconnect resends a message under
    /// a new `event_id`; both land on the one key. Anything else is keyed by `event_id`.
    pub fn dedupe_key(&self) -> String {
        if self.event_type == MESSAGE_RECEIVED {
            let id = self.value.pointer("/event/message/message_id").and_then(Value::as_str).unwrap_or_default();
            if !id.is_empty() {
                return format!("message:{id}");
            }
        }
        format!("event:{}", self.event_id)
    }

    /// The verification token the envelope carries (`header.token`, or `token` in 1.0).
    fn token(&self) -> String {
        match self.value.get("header") {
            Some(h) => str_at(h, "token"),
            None => str_at(&self.value, "token"),
        }
    }
}

pub const MESSAGE_RECEIVED: &str = "im.message.receive_v1";
pub const CARD_ACTION: &str = "card.action.trigger";

#[derive(Debug, Clone, PartialEq)]
pub enum Opened {
    /// The `url_verification` handshake: answer `{"challenge": …}`.
    Challenge(String),
    Event(Envelope),
}

/// Why a callback was refused. Nothing about it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("body is not JSON")]
    NotJson,
    #[error("encrypted body, but no encrypt_key is configured")]
    NoEncryptKey,
    #[error("decryption failed: {0}")]
    Decrypt(crypto::CryptoError),
    #[error("signature verification failed")]
    Signature,
    #[error("invalid verification_token")]
    Token,
    #[error("not an event envelope")]
    NotAnEvent,
}

/// Opens a callback the way the official SDK does: decrypt when `encrypt` is present; a
/// `url_verification` needs the token only (Feishu does not sign it); any other callback
/// needs the signature when an encrypt key is configured, then the token.
pub fn open(raw: &[u8], headers: SignatureHeaders<'_>, keys: CallbackKeys<'_>) -> Result<Opened, Refused> {
    let encrypt_key = keys.encrypt_key.filter(|k| !k.is_empty());
    let token = keys.verification_token.filter(|t| !t.is_empty());
    let outer: Value = serde_json::from_slice(raw).map_err(|_| Refused::NotJson)?;
    let plain: Value = match outer.get("encrypt").and_then(Value::as_str) {
        Some(sealed) => {
            let key = encrypt_key.ok_or(Refused::NoEncryptKey)?;
            let bytes = crypto::decrypt(key, sealed).map_err(Refused::Decrypt)?;
            serde_json::from_slice(&bytes).map_err(|_| Refused::NotJson)?
        }
        None => outer,
    };
    if plain.get("type").and_then(Value::as_str) == Some("url_verification") {
        check_token(token, &str_at(&plain, "token"))?;
        return Ok(Opened::Challenge(str_at(&plain, "challenge")));
    }
    if let Some(key) = encrypt_key {
        let (Some(ts), Some(nonce), Some(sig)) = (headers.timestamp, headers.nonce, headers.signature) else {
            return Err(Refused::Signature);
        };
        if !crypto::signature_matches(sig, ts, nonce, key, raw) {
            return Err(Refused::Signature);
        }
    }
    let envelope = Envelope::from_value(plain).ok_or(Refused::NotAnEvent)?;
    check_token(token, &envelope.token())?;
    Ok(Opened::Event(envelope))
}

fn check_token(expected: Option<&str>, given: &str) -> Result<(), Refused> {
    match expected {
        Some(t) if !crypto::secret_eq(given.as_bytes(), t.as_bytes()) => Err(Refused::Token),
        _ => Ok(()),
    }
}

pub(crate) fn str_at(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Every callback the official SDK judged, judged the same way.
    #[test]
    fn every_sdk_vector_gets_the_sdk_verdict() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/feishu/vectors.json");
        let vectors: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert!(vectors.len() >= 10);
        for v in &vectors {
            let name = v["name"].as_str().unwrap();
            let h = &v["headers"];
            let headers = SignatureHeaders {
                timestamp: h["X-Lark-Request-Timestamp"].as_str(),
                nonce: h["X-Lark-Request-Nonce"].as_str(),
                signature: h["X-Lark-Signature"].as_str(),
            };
            let keys = CallbackKeys {
                encrypt_key: v["encrypt_key"].as_str(),
                verification_token: v["verification_token"].as_str(),
            };
            let opened = open(v["body"].as_str().unwrap().as_bytes(), headers, keys);
            match v["sdk_status"].as_u64().unwrap() {
                200 => match opened {
                    Ok(Opened::Challenge(c)) => {
                        let sdk: Value = serde_json::from_str(v["sdk_body"].as_str().unwrap()).unwrap();
                        assert_eq!(json!({"challenge": c}), sdk, "{name}");
                    }
                    Ok(Opened::Event(e)) => assert_eq!(e.value, v["event"], "{name}: decrypted as the SDK did"),
                    Err(e) => panic!("{name}: the SDK accepted it, we refused: {e}"),
                },
                _ => assert!(opened.is_err(), "{name}: the SDK refused it, we accepted: {opened:?}"),
            }
        }
    }

    #[test]
    fn the_signature_is_required_when_an_encrypt_key_is_set() {
        let event =
            json!({"schema": "2.0", "header": {"event_id": "e1", "event_type": "x", "token": "t"}, "event": {}});
        let body = serde_json::to_vec(&event).unwrap();
        let keys = CallbackKeys { encrypt_key: Some("k"), verification_token: Some("t") };
        assert_eq!(open(&body, SignatureHeaders::default(), keys), Err(Refused::Signature));
        let sig = crypto::signature("1", "n", "k", &body);
        let headers = SignatureHeaders { timestamp: Some("1"), nonce: Some("n"), signature: Some(&sig) };
        assert!(matches!(open(&body, headers, keys), Ok(Opened::Event(_))));
        // Without an encrypt key only the token guards it.
        let plain = CallbackKeys { encrypt_key: None, verification_token: Some("t") };
        assert!(matches!(open(&body, SignatureHeaders::default(), plain), Ok(Opened::Event(_))));
    }

    #[test]
    fn garbage_is_refused_not_a_panic() {
        let keys = CallbackKeys { encrypt_key: Some("k"), verification_token: Some("t") };
        for body in [&b""[..], b"{", b"[]", br#"{"encrypt":"!!"}"#, br#"{"encrypt":5}"#, br#"{"schema":"2.0"}"#] {
            assert!(open(body, SignatureHeaders::default(), keys).is_err(), "{}", String::from_utf8_lossy(body));
        }
        let no_key = CallbackKeys { encrypt_key: None, verification_token: Some("t") };
        assert_eq!(open(br#"{"encrypt":"AAAA"}"#, SignatureHeaders::default(), no_key), Err(Refused::NoEncryptKey));
    }

    #[test]
    fn messages_dedupe_on_message_id_and_other_events_on_event_id() {
        let msg = |ev: &str| {
            Envelope::from_value(json!({"schema": "2.0", "header": {"event_id": ev, "event_type": MESSAGE_RECEIVED},
                "event": {"message": {"message_id": "om_1"}}}))
            .unwrap()
        };
        assert_eq!(msg("a").dedupe_key(), msg("b").dedupe_key());
        assert_eq!(msg("a").dedupe_key(), "message:om_1");
        let card =
            Envelope::from_value(json!({"schema": "2.0", "header": {"event_id": "e9", "event_type": CARD_ACTION}}));
        assert_eq!(card.unwrap().dedupe_key(), "event:e9");
    }
}
