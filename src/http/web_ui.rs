//! The browser client library and the demo page (`web/`), embedded in the binary at compile time
//! so that a container needs nothing but the binary. One GET route per file, each with its
//! content type, an ETag computed at compile time, `Cache-Control: no-cache` (browsers revalidate
//! and get a `304` while the build is unchanged, and never keep a stale script after a deploy),
//! and `nosniff`; the page also gets a Content-Security-Policy that allows only this origin
//! (scripts, styles, images and `connect-src 'self'`, which covers ws/wss to this host).

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";
const TS: &str = "application/typescript; charset=utf-8";

/// Only this origin, for everything the page loads or connects to; no framing, no plugins.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; \
    frame-ancestors 'none'";

struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
    etag: &'static str,
}

/// An asset with its ETag (a hash of its bytes, computed by the compiler).
macro_rules! asset {
    ($path:literal, $file:literal, $content_type:expr) => {{
        const BODY: &str = include_str!(concat!("../../web/", $file));
        const ETAG_BYTES: [u8; 18] = etag(BODY.as_bytes());
        const ETAG: &str = match std::str::from_utf8(&ETAG_BYTES) {
            Ok(etag) => etag,
            Err(_) => panic!("an ETag is ASCII"),
        };
        Asset {
            path: $path,
            content_type: $content_type,
            body: BODY,
            etag: ETAG,
        }
    }};
}

static ASSETS: &[Asset] = &[
    asset!("/", "index.html", HTML),
    asset!("/index.html", "index.html", HTML),
    asset!("/app.js", "app.js", JS),
    asset!("/api.js", "api.js", JS),
    asset!("/messages-view.js", "messages-view.js", JS),
    asset!("/app.css", "app.css", CSS),
    asset!("/bosar-client.js", "bosar-client.js", JS),
    asset!("/bosar-client.d.ts", "bosar-client.d.ts", TS),
    asset!("/favicon.svg", "favicon.svg", SVG),
];

/// Registers one GET route per embedded file.
pub fn routes(cfg: &mut web::ServiceConfig) {
    for asset in ASSETS {
        cfg.route(
            asset.path,
            web::get().to(move |request: HttpRequest| async move { serve(asset, &request) }),
        );
    }
}

fn serve(asset: &Asset, request: &HttpRequest) -> HttpResponse {
    let fresh = matches_etag(request.headers().get(header::IF_NONE_MATCH), asset.etag);
    let mut response = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, asset.etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    if asset.content_type == HTML {
        response
            .insert_header((header::CONTENT_SECURITY_POLICY, PAGE_CSP))
            .insert_header((header::REFERRER_POLICY, "no-referrer"));
    }
    if fresh {
        response.finish()
    } else {
        response.content_type(asset.content_type).body(asset.body)
    }
}

/// Whether `If-None-Match` names this ETag (weak or strong) or is `*`.
fn matches_etag(if_none_match: Option<&HeaderValue>, etag: &str) -> bool {
    let Some(value) = if_none_match.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    value.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

/// `"<16 hex digits>"`: FNV-1a of the bytes, computed at compile time.
const fn etag(bytes: &[u8]) -> [u8; 18] {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    let digits = b"0123456789abcdef";
    let mut out = [b'"'; 18];
    let mut d = 0;
    while d < 16 {
        out[16 - d] = digits[((hash >> (d * 4)) & 0xf) as usize];
        d += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_quoted_hex_and_match_weak_and_strong_forms() {
        let tag = std::str::from_utf8(&etag(b"hello")).unwrap().to_owned();
        assert_eq!(tag.len(), 18);
        assert!(tag.starts_with('"') && tag.ends_with('"'));
        assert_ne!(etag(b"hello"), etag(b"hellp"));
        let header = |v: &str| HeaderValue::from_str(v).unwrap();
        assert!(matches_etag(Some(&header(&tag)), &tag));
        assert!(matches_etag(
            Some(&header(&format!("\"x\", W/{tag}"))),
            &tag
        ));
        assert!(matches_etag(Some(&header("*")), &tag));
        assert!(!matches_etag(Some(&header("\"0000\"")), &tag));
        assert!(!matches_etag(None, &tag));
    }
}
