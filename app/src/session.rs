//! Session ids and the signed session cookie.
//!
//! Cookie value: `<id>.<mac>` where `id` is 16 bytes from the OS random source and `mac` is
//! HMAC-SHA256(`SESSION_SECRET`, id), both base64url without padding. A cookie whose MAC does not
//! verify (forged, truncated, signed with another secret) is treated as absent: a new session.
//! The counter itself lives in Redis (see `routes.rs`), so any instance sharing the secret and
//! the Redis serves the same session.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const COOKIE_NAME: &str = "radar.sid";

type HmacSha256 = Hmac<Sha256>;

pub struct SessionSigner {
    key: Vec<u8>,
}

impl SessionSigner {
    pub fn new(secret: &str) -> SessionSigner {
        SessionSigner {
            key: secret.as_bytes().to_vec(),
        }
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.key).expect("HMAC accepts keys of any length")
    }

    pub fn sign(&self, id: &str) -> String {
        let mut mac = self.mac();
        mac.update(id.as_bytes());
        let tag = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{id}.{tag}")
    }

    /// Returns the session id when the cookie value carries a valid signature.
    pub fn verify<'a>(&self, cookie_value: &'a str) -> Option<&'a str> {
        let (id, tag) = cookie_value.rsplit_once('.')?;
        if !is_session_id(id) {
            return None;
        }
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        let mut mac = self.mac();
        mac.update(id.as_bytes());
        // verify_slice compares in constant time.
        mac.verify_slice(&tag).ok()?;
        Some(id)
    }
}

/// A fresh session id: 128 bits from the OS random source.
pub fn new_session_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn is_session_id(id: &str) -> bool {
    id.len() == 22
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Finds our cookie among all `Cookie` headers (`a=1; radar.sid=...; b=2`).
pub fn find_cookie<'a>(headers: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    headers
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim_matches('"'))
}

pub fn set_cookie_header(signed_value: &str) -> String {
    format!("{COOKIE_NAME}={signed_value}; Path=/; HttpOnly; SameSite=Lax")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_id_verifies() {
        let s = SessionSigner::new("a-secret-of-sufficient-length");
        let id = new_session_id().unwrap();
        assert_eq!(s.verify(&s.sign(&id)), Some(id.as_str()));
    }

    #[test]
    fn forged_or_foreign_signatures_are_rejected() {
        let s = SessionSigner::new("a-secret-of-sufficient-length");
        let other = SessionSigner::new("another-secret-of-some-length");
        let id = new_session_id().unwrap();
        assert_eq!(s.verify(&other.sign(&id)), None);
        let mut tampered = s.sign(&id);
        tampered.replace_range(0..1, if tampered.starts_with('A') { "B" } else { "A" });
        assert_eq!(s.verify(&tampered), None);
        assert_eq!(s.verify(&id), None);
        assert_eq!(s.verify("garbage"), None);
        assert_eq!(s.verify(""), None);
    }

    #[test]
    fn ids_are_unique_and_url_safe() {
        let a = new_session_id().unwrap();
        let b = new_session_id().unwrap();
        assert_ne!(a, b);
        assert!(is_session_id(&a));
    }

    #[test]
    fn cookie_is_found_among_others() {
        let headers = ["theme=dark; radar.sid=abc.def", "x=1"];
        assert_eq!(find_cookie(headers.into_iter()), Some("abc.def"));
        assert_eq!(find_cookie(["radar.sidx=1"].into_iter()), None);
    }
}
