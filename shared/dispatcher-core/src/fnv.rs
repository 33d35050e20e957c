//! FNV-64a, the stable tie-break hash of the HEAD dispatcher.

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv64a(parts: &[&[u8]]) -> u64 {
    let mut h = OFFSET;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
    }
    h
}

/// FNV-64a over (repo-relative file path, byte 0x00, cluster name): equal scores go to the
/// lower hash, as in the HEAD dispatcher, so golden results stay comparable.
pub(crate) fn tie_hash(path: &str, cluster: &str) -> u64 {
    fnv64a(&[path.as_bytes(), &[0], cluster.as_bytes()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_reference_vectors() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv64a(&[b""]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv64a(&[b"a"]), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv64a(&[b"foobar"]), 0x8594_4171_f739_67e8);
        assert_eq!(fnv64a(&[b"foo", b"bar"]), fnv64a(&[b"foobar"]));
    }
}
