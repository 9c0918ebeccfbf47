//! The embedded browser client and demo page: every file is served from the binary with its
//! content type, an ETag that answers `304`, `no-cache`, and a page CSP that allows only self.

use crate::helpers::single_node;

const FILES: &[(&str, &str, &str)] = &[
    ("/", "text/html", "<script type=\"module\" src=\"/app.js\">"),
    ("/app.js", "text/javascript", "BosarClient"),
    ("/api.js", "text/javascript", "/api/auth/login"),
    ("/messages-view.js", "text/javascript", "class MessagesView"),
    ("/app.css", "text/css", "@media"),
    (
        "/bosar-client.js",
        "text/javascript",
        "export class BosarClient",
    ),
    (
        "/bosar-client.d.ts",
        "application/typescript",
        "BosarClientOptions",
    ),
    ("/favicon.svg", "image/svg+xml", "<svg"),
];

#[actix_web::test]
async fn every_web_file_is_served_with_its_type_and_cache_headers() {
    let (_db, node) = single_node(&[]).await;
    for (path, content_type, needle) in FILES {
        let mut response = node.client.get(node.url(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        assert!(header("content-type").starts_with(content_type), "{path}");
        assert_eq!(header("cache-control"), "no-cache", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        let etag = header("etag");
        assert!(etag.starts_with('"') && etag.len() == 18, "{path}: {etag}");
        let body = response.body().limit(1 << 20).await.unwrap();
        assert!(
            String::from_utf8_lossy(&body).contains(needle),
            "{path} lacks {needle}"
        );

        let again = node
            .client
            .get(node.url(path))
            .insert_header(("If-None-Match", etag.as_str()))
            .send()
            .await
            .unwrap();
        assert_eq!(again.status().as_u16(), 304, "{path}");
    }
}

#[actix_web::test]
async fn the_page_allows_only_its_own_origin() {
    let (_db, node) = single_node(&[]).await;
    let response = node.client.get(node.url("/")).send().await.unwrap();
    let csp = response
        .headers()
        .get("content-security-policy")
        .expect("a CSP on the page")
        .to_str()
        .unwrap()
        .to_owned();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp} lacks {directive}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    // Unknown paths still answer the API's JSON 404.
    let (status, body) = node.get_json("/nope.js").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
}
