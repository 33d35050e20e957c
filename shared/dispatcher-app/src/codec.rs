//! Gzipped JSON for snapshot objects; deterministic (no timestamp in the gzip header).

use std::io::{Read, Write};

pub fn gzip_json<T: serde::Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let json = serde_json::to_vec(value).unwrap_or_default();
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let _ = gz.write_all(&json);
    gz.finish().unwrap_or_default()
}

pub fn gunzip_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut json)
        .map_err(|e| format!("not gzip: {e}"))?;
    serde_json::from_slice(&json).map_err(|e| format!("not the expected JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_deterministic() {
        let v = vec!["a".to_owned(), "b".to_owned()];
        let a = gzip_json(&v);
        assert_eq!(a, gzip_json(&v));
        assert_eq!(gunzip_json::<Vec<String>>(&a).unwrap(), v);
        assert!(gunzip_json::<Vec<String>>(b"plain").is_err());
    }
}
