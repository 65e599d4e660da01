//! The board's UI, served from apalis-board's prebuilt files, with its page
//! carrying Tally's script and stylesheet (`assets/`: plain files, no build
//! step). The script adds what the WebAssembly app lacks: a failed job's
//! error and a Retry on its page, Retry all on the Failed tab, a search by
//! order number, and a link to `/retry`.
//!
//! The script finds its places in the board's page by the board's routes
//! and markup, so it is written for one release of apalis-board: the page
//! is checked against [`BOARD_BUNDLE`], and a test fails when an upgrade
//! ships another.

use std::sync::LazyLock;

use apalis_board::axum::ui::ServeUI;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use tower::ServiceExt;
use tracing::warn;

/// The script of the apalis-board 1.0.0 page that `assets/board.js` was
/// written against (its name carries the build's hash).
const BOARD_BUNDLE: &str = "/apalis-board-web-5f43ae260a03616d.js";

const EXTENSION: &str = "<link rel=\"stylesheet\" href=\"/tally/board.css\">\
     <script type=\"module\" src=\"/tally/board.js\"></script>";

/// The board's page with Tally's extension, or untouched (and said so in
/// the log) when it is not the page the extension knows.
static PAGE: LazyLock<String> = LazyLock::new(|| {
    let board = board_page();
    extend(&board).unwrap_or_else(|| {
        warn!(
            expected = BOARD_BUNDLE,
            "apalis-board's page is not the one Tally's board extension was written for: \
             serving it without Retry, errors and order search (use /retry)"
        );
        board
    })
});

fn board_page() -> String {
    ServeUI::get_file("index.html")
        .and_then(|file| file.contents_utf8())
        .unwrap_or_default()
        .to_owned()
}

fn extend(board: &str) -> Option<String> {
    (board.contains(BOARD_BUNDLE) && board.matches("</head>").count() == 1)
        .then(|| board.replacen("</head>", &format!("{EXTENSION}</head>"), 1))
}

/// Everything the board's files do not hold is a route of its app, as
/// apalis-board's own server treats it: the page.
pub(super) async fn ui(request: Request) -> Response {
    let is_page = ServeUI::get_file(request.uri().path())
        .is_some_and(|file| file.path().as_os_str() == "index.html");
    if is_page {
        let mut page = Html(PAGE.as_str()).into_response();
        page.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        return page;
    }
    let Ok(response) = ServeUI::new().oneshot(request).await;
    response.into_response()
}

pub(super) async fn script() -> Response {
    asset(
        include_str!("assets/board.js"),
        "text/javascript; charset=utf-8",
    )
}

pub(super) async fn stylesheet() -> Response {
    asset(include_str!("assets/board.css"), "text/css; charset=utf-8")
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // unhashed names: a browser asks again after an upgrade
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The board's script and markup are what `assets/board.js` hooks into:
    /// if this fails after an upgrade of apalis-board, walk the browser test
    /// (`tests/browser/board.mjs`) against the new board, adjust the script's
    /// selectors and routes, and set `BOARD_BUNDLE` to the new page's script.
    #[test]
    fn the_board_page_is_the_release_the_extension_was_written_for() {
        let board = board_page();
        assert!(
            board.contains(BOARD_BUNDLE),
            "apalis-board's page no longer loads {BOARD_BUNDLE}: it is another release \
             than Tally's board extension knows. Its page:\n{board}"
        );
        let page = extend(&board).expect("the board's page takes the extension");
        assert_eq!(page.matches(EXTENSION).count(), 1);
        assert!(page.find(EXTENSION) < page.find("</head>"));
        assert_eq!(page.replacen(EXTENSION, "", 1), board);
    }

    #[test]
    fn another_page_is_served_untouched() {
        assert_eq!(extend("<html><head></head><body></body></html>"), None);
    }
}
