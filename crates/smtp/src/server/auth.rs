//! SASL pieces for AUTH (RFC 4954): base64 decoding and the PLAIN message (RFC 4616).

/// `334` challenge for LOGIN's user name: base64 of `Username:`.
pub(super) const LOGIN_USER_CHALLENGE: &str = "VXNlcm5hbWU6";
/// `334` challenge for LOGIN's password: base64 of `Password:`.
pub(super) const LOGIN_PASS_CHALLENGE: &str = "UGFzc3dvcmQ6";

fn sextet(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Decodes standard base64 (padding optional, no whitespace inside). `None` on any bad input,
/// including non-zero trailing bits, so one response has only one accepted spelling.
pub(super) fn decode_base64(input: &[u8]) -> Option<Vec<u8>> {
    let pad = input.iter().rev().take_while(|&&c| c == b'=').count();
    if pad > 2 || (pad > 0 && !input.len().is_multiple_of(4)) {
        return None;
    }
    let data = input.get(..input.len() - pad)?;
    if data.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(data.len() / 4 * 3 + 2);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &c in data {
        acc = (acc << 6) | sextet(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if acc != 0 {
        return None;
    }
    Some(out)
}

/// Why a SASL response could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum SaslError {
    #[error("invalid base64 data")]
    Base64,
    #[error("malformed PLAIN message (want authzid NUL authcid NUL passwd)")]
    Plain,
    #[error("credentials are not valid UTF-8")]
    Utf8,
}

/// Decodes a base64 response into UTF-8 text (LOGIN user name or password).
pub(super) fn decode_text(response: &[u8]) -> Result<String, SaslError> {
    let raw = decode_base64(response).ok_or(SaslError::Base64)?;
    String::from_utf8(raw).map_err(|_| SaslError::Utf8)
}

/// Decodes a base64 PLAIN response into (authcid, password). The authzid is ignored: the caller
/// authenticates the authcid and nothing else, so it cannot be used to act as another user.
pub(super) fn decode_plain(response: &[u8]) -> Result<(String, String), SaslError> {
    let raw = decode_base64(response).ok_or(SaslError::Base64)?;
    let mut parts = raw.split(|&b| b == 0);
    let (Some(_authzid), Some(user), Some(pass), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Plain);
    };
    if user.is_empty() {
        return Err(SaslError::Plain);
    }
    let user = String::from_utf8(user.to_vec()).map_err(|_| SaslError::Utf8)?;
    let pass = String::from_utf8(pass.to_vec()).map_err(|_| SaslError::Utf8)?;
    Ok((user, pass))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_known_vectors() {
        assert_eq!(decode_base64(b"").unwrap(), b"");
        assert_eq!(decode_base64(b"Zg==").unwrap(), b"f");
        assert_eq!(decode_base64(b"Zm8=").unwrap(), b"fo");
        assert_eq!(decode_base64(b"Zm9v").unwrap(), b"foo");
        assert_eq!(decode_base64(b"Zm9vYg").unwrap(), b"foob");
        assert_eq!(
            decode_base64(LOGIN_USER_CHALLENGE.as_bytes()).unwrap(),
            b"Username:"
        );
        assert_eq!(
            decode_base64(LOGIN_PASS_CHALLENGE.as_bytes()).unwrap(),
            b"Password:"
        );
    }

    #[test]
    fn rejects_bad_base64() {
        for bad in [
            &b"Z"[..],
            b"Zg=",
            b"Z===",
            b"Zh==",
            b"Zm9v!",
            b"Zm 9v",
            b"=",
            b"Zg==Zg==",
        ] {
            assert_eq!(
                decode_base64(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn plain_message() {
        // "\0alice\0s3cret"
        assert_eq!(
            decode_plain(b"AGFsaWNlAHMzY3JldA==").unwrap(),
            ("alice".to_string(), "s3cret".to_string())
        );
        // "alice" alone: no NUL separators.
        assert_eq!(decode_plain(b"YWxpY2U="), Err(SaslError::Plain));
        // "\0\0pw": empty authcid.
        assert_eq!(decode_plain(b"AABwdw=="), Err(SaslError::Plain));
        assert_eq!(decode_plain(b"%%%"), Err(SaslError::Base64));
    }
}
