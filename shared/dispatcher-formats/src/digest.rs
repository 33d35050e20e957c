//! `sha256:<hex>` digests for the plan's provenance.

use sha2::{Digest, Sha256};

/// `sha256:` and the hex of a finished digest.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(7 + bytes.len() * 2);
    s.push_str("sha256:");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The `sha256:` digest of some bytes, as the plan's `inputs` record them.
pub fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The digest of one job file as placement sees it: its size (the classic strategy orders
/// files by it) and every field the rules read, each length-prefixed so that no two
/// different files feed the same bytes. Edits to fields the rules never read keep it, so
/// equal digests mean equal placement inputs; hashing the parsed jobs rather than the
/// 83 MB they came from also keeps it cheap.
pub fn job_file(size: u64, jobs: &[dispatcher_core::model::Job]) -> [u8; 32] {
    fn field(h: &mut Sha256, s: &str) {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    }
    let mut h = Sha256::new();
    h.update(size.to_le_bytes());
    h.update((jobs.len() as u64).to_le_bytes());
    for j in jobs {
        field(&mut h, &j.name);
        h.update([j.kind as u8]);
        field(&mut h, &j.agent);
        match &j.cluster {
            Some(c) => {
                h.update([1]);
                field(&mut h, c);
            }
            None => h.update([0]),
        }
        h.update((j.labels.len() as u64).to_le_bytes());
        for (k, v) in &j.labels {
            field(&mut h, k);
            field(&mut h, v);
        }
        h.update((j.containers.len() as u64).to_le_bytes());
        for c in &j.containers {
            field(&mut h, &c.image);
            h.update((c.cluster_types.len() as u64).to_le_bytes());
            for t in &c.cluster_types {
                field(&mut h, t);
            }
        }
    }
    h.finalize().into()
}
