//! SMTP AUTH accounts: PBKDF2-HMAC-SHA256 password hashes, compared in constant time.

use crate::config::SmtpUser;
use aws_lc_rs::{pbkdf2, rand::SecureRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use std::num::NonZeroU32;

const ITERATIONS: u32 = 100_000;

/// The system random number generator could not produce a salt.
#[derive(Debug, thiserror::Error)]
#[error("cannot salt the password hash: the system random number generator failed")]
pub struct SaltError;

/// Hashes a password for the config file (`cartero passwd`). Fails rather than hash with a
/// predictable salt, which would let one precomputed table attack every account.
pub fn hash_password(password: &str) -> Result<String, SaltError> {
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| SaltError)?;
    let mut out = [0u8; 32];
    let iters = NonZeroU32::new(ITERATIONS).unwrap_or(NonZeroU32::MIN);
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iters,
        &salt,
        password.as_bytes(),
        &mut out,
    );
    Ok(format!(
        "pbkdf2-sha256${ITERATIONS}${}${}",
        B64.encode(salt),
        B64.encode(out)
    ))
}

/// Checks a password against a stored hash. A malformed hash never matches.
pub fn verify_password(stored: &str, password: &str) -> bool {
    let mut parts = stored.split('$');
    let (Some("pbkdf2-sha256"), Some(iters), Some(salt), Some(hash), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let (Some(iters), Ok(salt), Ok(hash)) = (
        iters.parse::<u32>().ok().and_then(NonZeroU32::new),
        B64.decode(salt),
        B64.decode(hash),
    ) else {
        return false;
    };
    pbkdf2::verify(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iters,
        &salt,
        password.as_bytes(),
        &hash,
    )
    .is_ok()
}

/// Looks the user up and checks the password. Unknown users cost the same as wrong passwords.
pub fn authenticate(users: &[SmtpUser], username: &str, password: &str) -> bool {
    const DUMMY: &str = "pbkdf2-sha256$100000$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    match users.iter().find(|u| u.username == username) {
        Some(u) => verify_password(&u.password_hash, password),
        None => {
            verify_password(DUMMY, password);
            false
        }
    }
}

/// Constant-time comparison for API tokens.
pub fn token_matches(expected: &str, given: &str) -> bool {
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= (a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0)) as usize;
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_passwords_verify_and_wrong_ones_do_not() {
        let h = hash_password("s3cret").unwrap();
        assert!(h.starts_with("pbkdf2-sha256$100000$"));
        assert!(verify_password(&h, "s3cret"));
        assert!(!verify_password(&h, "s3cret "));
        assert_ne!(h, hash_password("s3cret").unwrap(), "salts must differ");
    }

    #[test]
    fn malformed_hashes_never_match() {
        for bad in [
            "",
            "plain",
            "pbkdf2-sha256$0$AA==$AA==",
            "pbkdf2-sha256$x$AA==$AA==",
            "md5$1$a$b",
        ] {
            assert!(!verify_password(bad, ""), "{bad}");
        }
    }

    #[test]
    fn authenticate_checks_user_and_password() {
        let users = vec![SmtpUser {
            username: "app".into(),
            password_hash: hash_password("pw").unwrap(),
        }];
        assert!(authenticate(&users, "app", "pw"));
        assert!(!authenticate(&users, "app", "nope"));
        assert!(!authenticate(&users, "other", "pw"));
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(token_matches("abc", "abc"));
        assert!(!token_matches("abc", "abd"));
        assert!(!token_matches("abc", "abcd"));
        assert!(!token_matches("abc", ""));
    }
}
