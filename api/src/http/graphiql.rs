//! GraphiQL, served entirely from this binary: the page and its scripts are
//! embedded (see `assets/graphiql/README.md`), so no CDN is ever contacted.

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

const PAGE: &str = r#"<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>Tally GraphiQL</title>
    <style>body { margin: 0; overflow: hidden; } #graphiql { height: 100vh; }</style>
    <link rel="stylesheet" href="/graphiql/graphiql.min.css">
  </head>
  <body>
    <div id="graphiql">Loading GraphiQL…</div>
    <script src="/graphiql/react.production.min.js"></script>
    <script src="/graphiql/react-dom.production.min.js"></script>
    <script src="/graphiql/graphiql.min.js"></script>
    <script>
      const url = new URL("/graphql", window.location.origin);
      const subscriptionUrl = new URL(url);
      subscriptionUrl.protocol = url.protocol === "https:" ? "wss:" : "ws:";
      // subscriptions go over a WebSocket; the Headers tab's Authorization
      // travels in its connection_init payload
      const fetcher = GraphiQL.createFetcher({
        url: url.toString(),
        subscriptionUrl: subscriptionUrl.toString(),
      });
      ReactDOM.createRoot(document.getElementById("graphiql")).render(
        React.createElement(GraphiQL, { fetcher, defaultEditorToolsVisibility: true })
      );
    </script>
  </body>
</html>
"#;

const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "graphiql.min.js",
        "application/javascript",
        include_bytes!("../../assets/graphiql/graphiql.min.js"),
    ),
    (
        "graphiql.min.css",
        "text/css",
        include_bytes!("../../assets/graphiql/graphiql.min.css"),
    ),
    (
        "react.production.min.js",
        "application/javascript",
        include_bytes!("../../assets/graphiql/react.production.min.js"),
    ),
    (
        "react-dom.production.min.js",
        "application/javascript",
        include_bytes!("../../assets/graphiql/react-dom.production.min.js"),
    ),
];

/// `GET /graphql` shows the page; its assets live under `/graphiql/`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/graphiql/{file}", get(asset))
}

pub async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                // the files change only with the binary
                (header::CACHE_CONTROL, "public, max-age=86400"),
            ],
            *bytes,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
