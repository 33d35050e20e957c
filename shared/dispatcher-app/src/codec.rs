//! Gzipped JSON for snapshot objects; deterministic (no timestamp in the gzip header).

use std::io::{Read, Write};

/// Why a snapshot object could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The bytes are not a gzip stream (or compressing failed).
    #[error("not gzip")]
    Gzip(#[source] std::io::Error),
    /// The JSON inside is not the expected document (or the value cannot be written as JSON).
    #[error("not the expected JSON")]
    Json(#[source] serde_json::Error),
}

/// `value` as gzipped JSON, byte for byte the same for the same value.
pub fn gzip_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    let json = serde_json::to_vec(value).map_err(CodecError::Json)?;
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    gz.write_all(&json).map_err(CodecError::Gzip)?;
    gz.finish().map_err(CodecError::Gzip)
}

/// The value in gzipped JSON `bytes`.
pub fn gunzip_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut json)
        .map_err(CodecError::Gzip)?;
    serde_json::from_slice(&json).map_err(CodecError::Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_deterministic() {
        let v = vec!["a".to_owned(), "b".to_owned()];
        let a = gzip_json(&v).unwrap();
        assert_eq!(a, gzip_json(&v).unwrap());
        assert_eq!(gunzip_json::<Vec<String>>(&a).unwrap(), v);
        assert!(matches!(
            gunzip_json::<Vec<String>>(b"plain"),
            Err(CodecError::Gzip(_))
        ));
        assert!(matches!(
            gunzip_json::<Vec<u32>>(&a),
            Err(CodecError::Json(_))
        ));
    }
}
