//! Device tokens: compact JWS (JWT) signed with HMAC-SHA256. The algorithm is
//! pinned: a token whose header says anything but `HS256` is refused, and so
//! is a header carrying keys (`jwk`, `jku`, `x5u`, ...).

use crate::ids::{DeviceId, UserId};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Longest token accepted, bytes.
pub const MAX_TOKEN_BYTES: usize = 4096;
/// The audience every token must name.
pub const AUDIENCE: &str = "seqline";
/// Longest display name a token may carry, bytes.
pub const MAX_NAME_BYTES: usize = 128;

/// What a token says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// The user.
    pub sub: UserId,
    /// The device.
    pub dev: DeviceId,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issued at, seconds since the Unix epoch.
    #[serde(default)]
    pub iat: u64,
    /// Not valid before, seconds since the Unix epoch.
    #[serde(default)]
    pub nbf: Option<u64>,
    /// Audience; must be `seqline`.
    pub aud: String,
    /// Display name, copied into the messages this user sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
}

/// Why a token was refused. `Display` never includes the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts of JSON, too long, or unknown fields.
    #[error("the token is malformed")]
    Malformed,
    /// The header names another algorithm or carries keys.
    #[error("the token's algorithm is not allowed (only HS256)")]
    Algorithm,
    /// The signature does not match.
    #[error("the token's signature is invalid")]
    Signature,
    /// Past its expiry.
    #[error("the token has expired")]
    Expired,
    /// Before its not-before time.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// Wrong audience.
    #[error("the token is for another audience")]
    Audience,
}

/// Signs and verifies tokens with one shared secret.
#[derive(Clone)]
pub struct TokenKey {
    secret: Vec<u8>,
    leeway_secs: u64,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(***)")
    }
}

impl TokenKey {
    /// A key from a secret (at least 16 bytes is sensible; checked by config).
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self {
            secret: secret.into(),
            leeway_secs: 30,
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length.
        #[allow(clippy::expect_used)]
        Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key length")
    }

    /// Mints a token for `user`/`device` valid for `ttl_secs` from `now_secs`.
    pub fn sign(&self, user: &UserId, device: &DeviceId, now_secs: u64, ttl_secs: u64) -> String {
        self.sign_named(user, device, None, now_secs, ttl_secs)
    }

    /// Like [`TokenKey::sign`], with a display name for the user's messages
    /// (at most [`MAX_NAME_BYTES`]).
    pub fn sign_named(
        &self,
        user: &UserId,
        device: &DeviceId,
        name: Option<&str>,
        now_secs: u64,
        ttl_secs: u64,
    ) -> String {
        let header = r#"{"alg":"HS256","typ":"JWT"}"#;
        let claims = Claims {
            sub: user.clone(),
            dev: device.clone(),
            exp: now_secs + ttl_secs,
            iat: now_secs,
            nbf: None,
            aud: AUDIENCE.into(),
            name: name.map(str::to_string),
        };
        let payload = serde_json::to_vec(&claims).unwrap_or_default();
        self.sign_parts(header.as_bytes(), &payload)
    }

    /// Signs arbitrary header and payload bytes (tests use it to forge).
    pub fn sign_parts(&self, header: &[u8], payload: &[u8]) -> String {
        let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let sig = mac.finalize().into_bytes();
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// Checks `token` at time `now_secs` and returns its claims.
    pub fn verify(&self, token: &str, now_secs: u64) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(TokenError::Malformed);
        };
        let header_bytes = URL_SAFE_NO_PAD.decode(h).map_err(|_| TokenError::Malformed)?;
        // Unknown header fields (jwk, jku, x5u, crit...) are refused as an
        // algorithm problem: we never take keys from the token itself.
        let header: Header = match serde_json::from_slice(&header_bytes) {
            Ok(h) => h,
            Err(e) if e.is_data() => return Err(TokenError::Algorithm),
            Err(_) => return Err(TokenError::Malformed),
        };
        if header.alg != "HS256" {
            return Err(TokenError::Algorithm);
        }
        // The key id selects nothing (there is one key), but it is checked so
        // no odd value reaches a log or a future key lookup: 1 to 64 bytes of
        // the base64url alphabet, so no path, dots, spaces or controls.
        if header.kid.as_ref().is_some_and(|k| !kid_ok(k)) {
            return Err(TokenError::Malformed);
        }
        let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(h.as_bytes());
        mac.update(b".");
        mac.update(p.as_bytes());
        mac.verify_slice(&sig).map_err(|_| TokenError::Signature)?;
        let payload = URL_SAFE_NO_PAD.decode(p).map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        if claims.aud != AUDIENCE {
            return Err(TokenError::Audience);
        }
        if claims.name.as_ref().is_some_and(|n| n.len() > MAX_NAME_BYTES) {
            return Err(TokenError::Malformed);
        }
        // Saturating: an `exp` near u64::MAX means "never", not an overflow.
        if now_secs > claims.exp.saturating_add(self.leeway_secs) {
            return Err(TokenError::Expired);
        }
        if let Some(nbf) = claims.nbf {
            if now_secs.saturating_add(self.leeway_secs) < nbf {
                return Err(TokenError::NotYetValid);
            }
        }
        Ok(claims)
    }
}

/// Longest key id (`kid`) accepted, bytes.
pub const MAX_KID_BYTES: usize = 64;

fn kid_ok(kid: &str) -> bool {
    (1..=MAX_KID_BYTES).contains(&kid.len()) && kid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> u64 {
    crate::model::now_ms() / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (UserId, DeviceId) {
        (UserId::parse("alice").unwrap(), DeviceId::parse("phone").unwrap())
    }

    #[test]
    fn round_trip() {
        let k = TokenKey::new("0123456789abcdef0123");
        let (u, d) = ids();
        let t = k.sign(&u, &d, 1000, 60);
        let c = k.verify(&t, 1010).unwrap();
        assert_eq!((c.sub, c.dev), (u, d));
    }

    #[test]
    fn refuses_expired_forged_and_other_algorithms() {
        let k = TokenKey::new("0123456789abcdef0123");
        let (u, d) = ids();
        let t = k.sign(&u, &d, 1000, 60);
        assert_eq!(k.verify(&t, 2000), Err(TokenError::Expired));
        assert_eq!(
            TokenKey::new("another secret!!").verify(&t, 1000),
            Err(TokenError::Signature)
        );
        let payload = br#"{"sub":"alice","dev":"phone","exp":99999999999,"aud":"seqline"}"#;
        let none = k.sign_parts(br#"{"alg":"none"}"#, payload);
        assert_eq!(k.verify(&none, 1000), Err(TokenError::Algorithm));
        let jwk = k.sign_parts(br#"{"alg":"HS256","jwk":{"k":"x"}}"#, payload);
        assert_eq!(k.verify(&jwk, 1000), Err(TokenError::Algorithm));
        let aud = k.sign_parts(
            br#"{"alg":"HS256"}"#,
            br#"{"sub":"alice","dev":"phone","exp":99999999999,"aud":"x"}"#,
        );
        assert_eq!(k.verify(&aud, 1000), Err(TokenError::Audience));
        let no_exp = k.sign_parts(
            br#"{"alg":"HS256"}"#,
            br#"{"sub":"alice","dev":"phone","aud":"seqline"}"#,
        );
        assert_eq!(k.verify(&no_exp, 1000), Err(TokenError::Malformed));
        // Tampered payload keeps the old signature.
        let mut parts: Vec<&str> = t.split('.').collect();
        let evil = URL_SAFE_NO_PAD.encode(br#"{"sub":"mallory","dev":"phone","exp":99999999999,"aud":"seqline"}"#);
        parts[1] = &evil;
        assert_eq!(k.verify(&parts.join("."), 1000), Err(TokenError::Signature));
        assert_eq!(k.verify("a.b", 1000), Err(TokenError::Malformed));
        assert_eq!(k.verify(&"x".repeat(5000), 1000), Err(TokenError::Malformed));
    }

    #[test]
    fn embedded_key_urls_and_odd_key_ids_are_refused() {
        let k = TokenKey::new("0123456789abcdef0123");
        let payload = br#"{"sub":"alice","dev":"phone","exp":99999999999,"aud":"seqline"}"#;
        // Keys are never fetched or taken from the token.
        for header in [
            &br#"{"alg":"HS256","jku":"https://evil.example/keys.json"}"#[..],
            br#"{"alg":"HS256","x5u":"https://evil.example/cert.pem"}"#,
            br#"{"alg":"HS256","x5c":["MIIB"]}"#,
            br#"{"alg":"HS256","crit":["exp"]}"#,
        ] {
            let t = k.sign_parts(header, payload);
            assert_eq!(
                k.verify(&t, 1000),
                Err(TokenError::Algorithm),
                "{}",
                String::from_utf8_lossy(header)
            );
        }
        let long = format!(r#"{{"alg":"HS256","kid":"{}"}}"#, "k".repeat(65));
        for (header, why) in [
            (long.as_bytes(), Err(TokenError::Malformed)),
            (br#"{"alg":"HS256","kid":42}"#, Err(TokenError::Algorithm)),
            (br#"{"alg":"HS256","kid":{"path":"x"}}"#, Err(TokenError::Algorithm)),
            (
                br#"{"alg":"HS256","kid":"../../etc/passwd"}"#,
                Err(TokenError::Malformed),
            ),
            (br#"{"alg":"HS256","kid":"/dev/null"}"#, Err(TokenError::Malformed)),
            (br#"{"alg":"HS256","kid":"a\\b"}"#, Err(TokenError::Malformed)),
            (br#"{"alg":"HS256","kid":"key 1"}"#, Err(TokenError::Malformed)),
            (br#"{"alg":"HS256","kid":"k\u0000"}"#, Err(TokenError::Malformed)),
            (br#"{"alg":"HS256","kid":""}"#, Err(TokenError::Malformed)),
        ] {
            let t = k.sign_parts(header, payload);
            assert_eq!(
                k.verify(&t, 1000).map(|_| ()),
                why,
                "{}",
                String::from_utf8_lossy(header)
            );
        }
        // A plain key id is accepted, and at the limit too: it selects
        // nothing, the one secret verifies.
        for kid in ["k1", "2026-11_rotation", &"k".repeat(MAX_KID_BYTES)] {
            let header = format!(r#"{{"alg":"HS256","kid":"{kid}"}}"#);
            let t = k.sign_parts(header.as_bytes(), payload);
            assert_eq!(
                k.verify(&t, 1000).map(|c| c.sub.as_str().to_owned()),
                Ok("alice".into())
            );
            let forged = TokenKey::new("another secret!!").sign_parts(header.as_bytes(), payload);
            assert_eq!(k.verify(&forged, 1000), Err(TokenError::Signature));
        }
    }

    /// Found by the `token` fuzz target (fuzz/): an `exp` within the leeway
    /// of u64::MAX overflowed the expiry check (a panic with overflow checks,
    /// a wrap to "expired" without).
    #[test]
    fn expiry_at_the_end_of_time_does_not_overflow() {
        let k = TokenKey::new("fuzz-secret-0123456789");
        let token = k.sign_parts(
            br#"{"alg":"HS256"}"#,
            br#"{"sub":"alice","dev":"d","exp":18446744073709551615,"aud":"seqline"}"#,
        );
        let claims = k.verify(&token, 1_700_000_000).unwrap();
        assert_eq!(claims.exp, u64::MAX);
        assert_eq!(k.verify(&token, u64::MAX).map(|c| c.exp), Ok(u64::MAX));
        let nbf = k.sign_parts(
            br#"{"alg":"HS256"}"#,
            br#"{"sub":"alice","dev":"d","exp":18446744073709551615,"nbf":18446744073709551615,"aud":"seqline"}"#,
        );
        assert_eq!(k.verify(&nbf, u64::MAX).map(|c| c.exp), Ok(u64::MAX));
        assert_eq!(k.verify(&nbf, 1_700_000_000), Err(TokenError::NotYetValid));
    }
}
