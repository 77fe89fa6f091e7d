//! Proving that a delivery comes from the Git host: HMAC-SHA256 signatures
//! (GitHub `X-Hub-Signature-256`, Bitbucket `X-Hub-Signature`, both
//! `sha256=<hex>` of the raw body keyed with the webhook secret) and GitLab's
//! shared token (`X-Gitlab-Token`). Every comparison is constant-time.
//! Sources: <https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries>,
//! <https://support.atlassian.com/bitbucket-cloud/docs/manage-webhooks/>,
//! <https://docs.gitlab.com/user/project/integrations/webhooks/>.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Whether `header` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under
/// `secret`. Malformed headers are false.
pub fn signature_matches(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(digest) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(expected) = hex::decode(digest) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&expected).is_ok()
}

/// Whether GitLab's `X-Gitlab-Token` equals the secret, in constant time.
pub fn token_matches(secret: &[u8], header: &str) -> bool {
    !secret.is_empty() && bool::from(secret.ct_eq(header.as_bytes()))
}

/// `sha256=<hex>` of `body` under `secret`: what a Git host sends (for tests
/// and for clients replaying deliveries).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    format!("sha256={}", hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GitHub's documented example: secret "It's a Secret to Everybody",
    /// payload "Hello, World!".
    #[test]
    fn githubs_documented_example_verifies() {
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(signature_matches(
            b"It's a Secret to Everybody",
            b"Hello, World!",
            header
        ));
        assert_eq!(sign(b"It's a Secret to Everybody", b"Hello, World!"), header);
        assert!(!signature_matches(
            b"It's a Secret to Everybody",
            b"Hello, World?",
            header
        ));
        assert!(!signature_matches(b"another secret", b"Hello, World!", header));
        assert!(!signature_matches(
            b"It's a Secret to Everybody",
            b"Hello, World!",
            "sha1=757107"
        ));
        assert!(!signature_matches(
            b"It's a Secret to Everybody",
            b"Hello, World!",
            "sha256=zz"
        ));
    }

    #[test]
    fn gitlab_tokens_compare_whole() {
        assert!(token_matches(b"s3cret-token", "s3cret-token"));
        assert!(!token_matches(b"s3cret-token", "s3cret-toke"));
        assert!(!token_matches(b"", ""));
    }
}
