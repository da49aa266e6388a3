//! Receipt handles: unforgeable names of one receive of one message.
//!
//! A handle carries the message's sequence number and the receive's random token, and an
//! HMAC-SHA256 (truncated to 128 bits) over both and the queue's name under a node secret kept
//! in the queue database. A handle that was not made here, or was made for another queue, fails
//! the MAC (`ReceiptHandleIsInvalid`); a genuine handle of an earlier receive names a token the
//! message no longer carries (stale).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const TOKEN_LEN: usize = 16;
const MAC_LEN: usize = 16;

/// Signs and checks receipt handles.
pub struct Receipts {
    secret: Vec<u8>,
}

/// What a genuine handle names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub seq: u64,
    /// Hex of the receive's token.
    pub token: String,
}

impl Receipts {
    pub fn new(secret: Vec<u8>) -> Self {
        Self { secret }
    }

    fn mac(&self, account: &str, queue: &str, seq: u64, token: &[u8]) -> [u8; MAC_LEN] {
        let mut m = Hmac::<Sha256>::new_from_slice(&self.secret).expect("any key length");
        m.update(account.as_bytes());
        m.update(&[0]);
        m.update(queue.as_bytes());
        m.update(&[0]);
        m.update(&seq.to_be_bytes());
        m.update(token);
        let full = m.finalize().into_bytes();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    /// A fresh random token (hex).
    pub fn token() -> String {
        hex::encode(rand::random::<[u8; TOKEN_LEN]>())
    }

    /// The handle of a receive.
    pub fn handle(&self, account: &str, queue: &str, seq: u64, token_hex: &str) -> String {
        let token = hex::decode(token_hex).unwrap_or_default();
        let mut raw = Vec::with_capacity(8 + TOKEN_LEN + MAC_LEN);
        raw.extend_from_slice(&seq.to_be_bytes());
        raw.extend_from_slice(&token);
        raw.extend_from_slice(&self.mac(account, queue, seq, &token));
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Checks a handle against the queue it was presented to.
    pub fn open(&self, account: &str, queue: &str, handle: &str) -> Option<Receipt> {
        let raw = URL_SAFE_NO_PAD.decode(handle.trim()).ok()?;
        if raw.len() != 8 + TOKEN_LEN + MAC_LEN {
            return None;
        }
        let seq = u64::from_be_bytes(raw[..8].try_into().ok()?);
        let token = &raw[8..8 + TOKEN_LEN];
        let want = self.mac(account, queue, seq, token);
        let got = &raw[8 + TOKEN_LEN..];
        // Constant time: the MAC must not be learnable byte by byte.
        let diff = want.iter().zip(got).fold(0u8, |d, (a, b)| d | (a ^ b));
        (diff == 0).then(|| Receipt {
            seq,
            token: hex::encode(token),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_forgery() {
        let r = Receipts::new(b"secret".to_vec());
        let tok = Receipts::token();
        let h = r.handle("111122223333", "q", 7, &tok);
        assert_eq!(
            r.open("111122223333", "q", &h),
            Some(Receipt { seq: 7, token: tok })
        );
        // Another queue, another account, another secret, a flipped byte: all refused.
        assert_eq!(r.open("111122223333", "other", &h), None);
        assert_eq!(r.open("999999999999", "q", &h), None);
        assert_eq!(
            Receipts::new(b"other".to_vec()).open("111122223333", "q", &h),
            None
        );
        let mut raw = URL_SAFE_NO_PAD.decode(&h).unwrap();
        raw[0] ^= 1;
        assert_eq!(
            r.open("111122223333", "q", &URL_SAFE_NO_PAD.encode(raw)),
            None
        );
        assert_eq!(r.open("111122223333", "q", "not a handle"), None);
    }
}
