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

/// FNV-64a over (file path relative to `ci-operator/jobs/`, byte 0x00, cluster name): equal
/// scores go to the lower hash. HEAD hashes the path relative to its `--prow-jobs-dir`
/// (`repositoryRelativeTieBreakPath`), so ties go the same way as there.
pub(crate) fn tie_hash(path: &str, cluster: &str) -> u64 {
    let relative = path.strip_prefix(crate::model::JOBS_DIR).unwrap_or(path);
    fnv64a(&[relative.as_bytes(), &[0], cluster.as_bytes()])
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

    #[test]
    fn hashes_the_path_below_the_jobs_directory_as_head_does() {
        // HEAD: fnv64a("org/repo/org-repo-main-presubmits.yaml" + "\0" + "build01").
        let relative = "org/repo/org-repo-main-presubmits.yaml";
        let expected = fnv64a(&[relative.as_bytes(), &[0], b"build01"]);
        assert_eq!(
            tie_hash(&format!("ci-operator/jobs/{relative}"), "build01"),
            expected
        );
        assert_eq!(tie_hash(relative, "build01"), expected);
    }
}
