//! Session ids: 128 random bits, URL-safe; client-chosen ids within a safe pattern.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub const MIN_LEN: usize = 8;
pub const MAX_LEN: usize = 128;

/// A new id: 16 random bytes as unpadded base64url (22 characters).
pub fn generate() -> String {
    let bytes: [u8; 16] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// True for an id a client may choose: 8–128 characters of `A-Z a-z 0-9 - _`.
pub fn is_valid(id: &str) -> bool {
    (MIN_LEN..=MAX_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_valid_and_distinct() {
        let a = generate();
        assert_eq!(a.len(), 22);
        assert!(is_valid(&a));
        assert_ne!(a, generate());
    }

    #[test]
    fn rejects_unsafe_ids() {
        for bad in [
            "short",
            "has space in it",
            "../../etc/passwd",
            "a:b:c:d:e:f",
            &"x".repeat(129),
        ] {
            assert!(!is_valid(bad), "{bad}");
        }
        assert!(is_valid("n8n-workflow_42"));
    }
}
