//! The aTES web UI: plain HTML, CSS and JavaScript over the REST API, embedded in the binary
//! (read from `ui/assets` at run time in debug builds, so editing them needs no rebuild).

use ates_web::Problem;
use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_embed::Embed;

#[derive(Embed)]
#[folder = "assets/"]
struct Assets;

/// `GET /` and the files next to `index.html`.
pub fn router() -> Router {
    Router::new()
        .route("/", get(|| async { asset("index.html") }))
        .route("/{file}", get(|ates_web::Path(file): ates_web::Path<String>| async move { asset(&file) }))
}

fn asset(name: &str) -> Response {
    let Some(file) = Assets::get(name) else {
        return Problem::not_found(format!("There is no page or file called {name}.")).into_response();
    };
    let mut response = file.data.into_owned().into_response();
    let headers = response.headers_mut();
    if let Ok(mime) = HeaderValue::from_str(file.metadata.mimetype()) {
        headers.insert(header::CONTENT_TYPE, mime);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
