//! The module on the wire: its bytes in every encoding the host has them
//! in, chosen per request by `Accept-Encoding`, under two URLs.
//!
//! * `/v1/module/<sha256>.wasm` names the bytes, so it never changes:
//!   `Cache-Control: public, max-age=31536000, immutable`, and each module
//!   is downloaded once per browser. The live module and every published
//!   version are there; any other hash is a 404.
//! * `/v1/module` is the live module for clients that predate the hash URL,
//!   revalidated every time (`no-cache`, an ETag per encoding).
//!
//! The compressed bytes are made when the module is baked
//! ([`gatehouse_bake::wire`]); a host only checks that they decode to the
//! module before it serves them.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_bake::{Encoding, Precompressed};
use gatehouse_policy::engine::hex;
use sha2::{Digest, Sha256};

/// A module's bytes as a host serves them.
#[derive(Debug)]
pub struct Wire {
    /// sha256 of `identity`, hex.
    pub sha256: String,
    /// The module itself.
    pub identity: Bytes,
    /// brotli, when known.
    pub br: Option<Bytes>,
    /// gzip, when known.
    pub gz: Option<Bytes>,
}

impl Wire {
    /// The module with its precompressed bytes, each kept only if it
    /// decodes to `identity` (a mismatch is logged and that encoding is
    /// not served). Slow (decodes and hashes a few MB): call it off the
    /// async runtime.
    pub fn new(identity: Vec<u8>, precompressed: Option<Precompressed>) -> Wire {
        let sha256 = hex(&Sha256::digest(&identity));
        let (br, gz) = match precompressed {
            Some(p) => (
                check(Encoding::Brotli, p.br, &identity, &sha256),
                check(Encoding::Gzip, p.gz, &identity, &sha256),
            ),
            None => (None, None),
        };
        Wire {
            sha256,
            identity: Bytes::from(identity),
            br,
            gz,
        }
    }

    /// The bytes in `encoding`, if the host has them.
    fn get(&self, encoding: Encoding) -> Option<&Bytes> {
        match encoding {
            Encoding::Brotli => self.br.as_ref(),
            Encoding::Gzip => self.gz.as_ref(),
        }
    }

    /// The encoding to send for `accept` (the request's `Accept-Encoding`):
    /// the acceptable one with the highest q-value, brotli on a tie; `None`
    /// (identity) when the client takes neither or the host lacks them.
    pub fn negotiate(&self, accept: Option<&str>) -> Option<Encoding> {
        let accept = accept?;
        let q = |token: &str| {
            let mut star = None;
            let mut own = None;
            for item in accept.split(',') {
                let mut parts = item.split(';');
                let coding = parts.next().unwrap_or_default().trim();
                let weight = parts
                    .filter_map(|p| p.trim().strip_prefix("q="))
                    .find_map(|v| v.trim().parse::<f32>().ok())
                    .unwrap_or(1.0);
                if coding.eq_ignore_ascii_case(token)
                    || (token == "gzip" && coding.eq_ignore_ascii_case("x-gzip"))
                {
                    own = Some(weight);
                } else if coding == "*" {
                    star = Some(weight);
                }
            }
            own.or(star).unwrap_or(0.0)
        };
        Encoding::ALL
            .into_iter()
            .filter(|e| self.get(*e).is_some())
            .map(|e| (e, q(e.token())))
            .filter(|(_, w)| *w > 0.0)
            // `max_by` keeps the last of equals: reversed, brotli wins a tie.
            .rev()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(e, _)| e)
    }

    /// The response for a request with `headers`, cached as `cache` says:
    /// the negotiated bytes with `Content-Encoding`, `Vary:
    /// Accept-Encoding` and an ETag per encoding, or 304 when the client
    /// holds that encoding already.
    pub fn respond(&self, headers: &HeaderMap, cache: Cache) -> Response {
        let accept = headers
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok());
        let encoding = self.negotiate(accept);
        let etag = match encoding {
            Some(e) => format!("\"{}.{}\"", self.sha256, e.extension()),
            None => format!("\"{}\"", self.sha256),
        };
        let fresh = headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .map(|t| t.trim().trim_start_matches("W/"))
                    .any(|t| t == etag || t == "*")
            });
        let mut response = if fresh {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            let body = encoding
                .and_then(|e| self.get(e))
                .unwrap_or(&self.identity)
                .clone();
            let mut r = body.into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/wasm"),
            );
            if let Some(e) = encoding {
                h.insert(
                    header::CONTENT_ENCODING,
                    HeaderValue::from_static(e.token()),
                );
            }
            r
        };
        let h = response.headers_mut();
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(cache.value()),
        );
        if let Ok(v) = HeaderValue::from_str(&etag) {
            h.insert(header::ETAG, v);
        }
        response
    }
}

fn check(encoding: Encoding, bytes: Vec<u8>, identity: &[u8], sha256: &str) -> Option<Bytes> {
    if gatehouse_bake::wire::decodes_to(encoding, &bytes, identity) {
        Some(Bytes::from(bytes))
    } else {
        crate::logging::warn(&format!(
            "the stored {} copy of module {sha256} does not decode to it: serving that module without it",
            encoding.token()
        ));
        None
    }
}

/// How long a module response may be reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cache {
    /// A hash URL: the bytes never change.
    Immutable,
    /// `/v1/module`: whatever is live, revalidated every time.
    Revalidate,
}

impl Cache {
    fn value(self) -> &'static str {
        match self {
            Cache::Immutable => "public, max-age=31536000, immutable",
            Cache::Revalidate => "no-cache",
        }
    }
}

/// The hash URL of the module whose sha256 is `sha256`.
pub fn url(sha256: &str) -> String {
    format!("/v1/module/{sha256}.wasm")
}

/// The sha256 a hash URL's last segment (`<sha256>.wasm`) names, if it is
/// one: 64 lowercase hex digits.
pub fn sha_of(file: &str) -> Option<&str> {
    file.strip_suffix(".wasm")
        .filter(|s| s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(br: bool, gz: bool) -> Wire {
        Wire {
            sha256: "0".repeat(64),
            identity: Bytes::from_static(b"\0asm"),
            br: br.then(|| Bytes::from_static(b"b")),
            gz: gz.then(|| Bytes::from_static(b"g")),
        }
    }

    #[test]
    fn negotiation_follows_q_values_and_prefers_brotli_on_a_tie() {
        let w = wire(true, true);
        let n = |a: &str| w.negotiate(Some(a));
        assert_eq!(w.negotiate(None), None);
        assert_eq!(n("gzip, deflate, br, zstd"), Some(Encoding::Brotli));
        assert_eq!(n("gzip"), Some(Encoding::Gzip));
        assert_eq!(n("x-gzip"), Some(Encoding::Gzip));
        assert_eq!(n("br;q=0, gzip"), Some(Encoding::Gzip));
        assert_eq!(n("gzip;q=0.9, br;q=0.5"), Some(Encoding::Gzip));
        assert_eq!(n("BR"), Some(Encoding::Brotli));
        assert_eq!(n("*"), Some(Encoding::Brotli));
        assert_eq!(n("*;q=0.5, br;q=0"), Some(Encoding::Gzip));
        assert_eq!(n("identity"), None);
        assert_eq!(n("deflate, zstd"), None);
        assert_eq!(n("br;q=0, gzip;q=0"), None);
        assert_eq!(n(""), None);
        assert_eq!(wire(false, true).negotiate(Some("br")), None);
        assert_eq!(
            wire(false, true).negotiate(Some("br, gzip")),
            Some(Encoding::Gzip)
        );
        assert_eq!(wire(false, false).negotiate(Some("br, gzip")), None);
    }

    #[test]
    fn only_a_lowercase_sha256_names_a_module() {
        let sha = "ab".repeat(32);
        assert_eq!(sha_of(&format!("{sha}.wasm")), Some(sha.as_str()));
        assert_eq!(sha_of(&sha), None);
        assert_eq!(sha_of(&format!("{}.wasm", sha.to_uppercase())), None);
        assert_eq!(sha_of(&format!("{}.wasm", &sha[2..])), None);
        assert_eq!(sha_of("../secret.wasm"), None);
    }
}
