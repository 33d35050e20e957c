//! `sha256:<hex>` digests for the plan's provenance.

use sha2::{Digest, Sha256};

pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(7 + bytes.len() * 2);
    s.push_str("sha256:");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

pub fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}
