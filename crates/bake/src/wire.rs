//! The module as it goes over the wire: compressed once, when it is baked
//! (`cargo xtask wasm`, `gatehouse policy publish`, a publish from the
//! editor), never per request.
//!
//! Why at bake time: brotli's best quality takes about 16 s on the 4.6 MB
//! module (release build, one core) and gives 0.85 MB where gzip -9 gives
//! 1.30 MB. Hosts serve the stored bytes as they are.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// brotli's best quality.
const BROTLI_QUALITY: i32 = 11;
/// A 16 MB window: the whole module is in reach of every back reference.
const BROTLI_WINDOW: i32 = 24;

/// A content coding a host can send the module in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// `br`.
    Brotli,
    /// `gzip`.
    Gzip,
}

impl Encoding {
    /// Both, in the order a host prefers them.
    pub const ALL: [Encoding; 2] = [Encoding::Brotli, Encoding::Gzip];

    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Encoding::Brotli => "br",
            Encoding::Gzip => "gzip",
        }
    }

    /// The file extension of a precompressed file (`gatehouse.wasm.br`).
    pub fn extension(self) -> &'static str {
        match self {
            Encoding::Brotli => "br",
            Encoding::Gzip => "gz",
        }
    }
}

/// A module's bytes in each [`Encoding`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Precompressed {
    /// brotli, quality 11, 16 MB window.
    pub br: Vec<u8>,
    /// gzip -9.
    pub gz: Vec<u8>,
}

impl Precompressed {
    /// The bytes in `encoding`.
    pub fn get(&self, encoding: Encoding) -> &[u8] {
        match encoding {
            Encoding::Brotli => &self.br,
            Encoding::Gzip => &self.gz,
        }
    }
}

/// Compresses `module` in every encoding (the two in parallel).
pub fn precompress(module: &[u8]) -> std::io::Result<Precompressed> {
    std::thread::scope(|s| {
        let gz = s.spawn(|| gzip(module));
        let br = brotli(module)?;
        let gz = gz
            .join()
            .map_err(|_| std::io::Error::other("the gzip thread panicked"))??;
        Ok(Precompressed { br, gz })
    })
}

fn brotli(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let params = brotli::enc::BrotliEncoderParams {
        quality: BROTLI_QUALITY,
        lgwin: BROTLI_WINDOW,
        size_hint: bytes.len(),
        ..Default::default()
    };
    let mut out = Vec::with_capacity(bytes.len() / 4);
    brotli::BrotliCompress(&mut &bytes[..], &mut out, &params)?;
    Ok(out)
}

fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 3),
        flate2::Compression::best(),
    );
    enc.write_all(bytes)?;
    enc.finish()
}

/// Whether `compressed` decodes, in `encoding`, to exactly `identity`
/// (never decoding more than `identity.len() + 1` bytes).
pub fn decodes_to(encoding: Encoding, compressed: &[u8], identity: &[u8]) -> bool {
    let limit = identity.len() as u64 + 1;
    let mut out = Vec::with_capacity(identity.len());
    let read = match encoding {
        Encoding::Brotli => brotli::Decompressor::new(compressed, 64 * 1024)
            .take(limit)
            .read_to_end(&mut out),
        Encoding::Gzip => flate2::read::GzDecoder::new(compressed)
            .take(limit)
            .read_to_end(&mut out),
    };
    read.is_ok() && out == identity
}

/// Where the precompressed copy of the module file `module` lives:
/// `gatehouse.wasm` → `gatehouse.wasm.br`, `gatehouse.wasm.gz`.
pub fn sibling(module: &Path, encoding: Encoding) -> PathBuf {
    let mut name = module.as_os_str().to_owned();
    name.push(".");
    name.push(encoding.extension());
    PathBuf::from(name)
}

/// The precompressed siblings of the module file `module` when both are
/// there and decode to `identity` (a module rebuilt without them leaves
/// stale ones behind: those are not used).
pub fn read_siblings(module: &Path, identity: &[u8]) -> Option<Precompressed> {
    let read = |e: Encoding| {
        std::fs::read(sibling(module, e))
            .ok()
            .filter(|bytes| decodes_to(e, bytes, identity))
    };
    Some(Precompressed {
        br: read(Encoding::Brotli)?,
        gz: read(Encoding::Gzip)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_encodings_decode_to_the_bytes_and_a_wrong_one_does_not() {
        let bytes: Vec<u8> = (0..50_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let p = precompress(&bytes).unwrap();
        assert!(p.br.len() < bytes.len() / 10, "{}", p.br.len());
        for e in Encoding::ALL {
            assert!(decodes_to(e, p.get(e), &bytes), "{e:?}");
            assert!(
                !decodes_to(e, p.get(e), &bytes[1..]),
                "{e:?} of other bytes"
            );
        }
        assert!(!decodes_to(Encoding::Brotli, &p.gz, &bytes));
        assert!(!decodes_to(Encoding::Gzip, b"not gzip", &bytes));
    }

    #[test]
    fn siblings_are_named_after_the_module_file() {
        let m = Path::new("dist/gatehouse.wasm");
        assert_eq!(
            sibling(m, Encoding::Brotli),
            Path::new("dist/gatehouse.wasm.br")
        );
        assert_eq!(
            sibling(m, Encoding::Gzip),
            Path::new("dist/gatehouse.wasm.gz")
        );
    }
}
