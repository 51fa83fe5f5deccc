//! Correlation ids: every request has one (the client's `X-Correlation-Id` when it is a UUID,
//! else a new one). It is echoed in the response, logged on the request's span, and recorded on
//! every event the request causes; consumers carry it onto the events they produce in turn.

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use uuid::Uuid;

/// The header a client may send and every response carries.
pub const HEADER: HeaderName = HeaderName::from_static("x-correlation-id");

/// The correlation id of the request being handled (an extractor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CorrelationId(pub Uuid);

impl CorrelationId {
    /// The client's id when `header` holds a UUID, else a new one.
    pub fn from_header(header: Option<&HeaderValue>) -> Self {
        let sent = header.and_then(|v| v.to_str().ok()).and_then(|v| Uuid::parse_str(v.trim()).ok());
        CorrelationId(sent.unwrap_or_else(Uuid::now_v7))
    }
}

impl std::fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Gives the request its correlation id (in its extensions) and the response the header, unless
/// the handler set one.
pub(crate) async fn correlate(mut request: Request, next: Next) -> Response {
    let id = CorrelationId::from_header(request.headers().get(&HEADER));
    request.extensions_mut().insert(id);
    let mut response = next.run(request).await;
    // A handler may answer with another id: the one an earlier request's events carry.
    if !response.headers().contains_key(&HEADER) {
        let value = HeaderValue::from_str(&id.0.to_string()).expect("a UUID is a header value");
        response.headers_mut().insert(HEADER, value);
    }
    response
}

impl<S: Send + Sync> FromRequestParts<S> for CorrelationId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<CorrelationId>().copied().unwrap_or_else(|| Self::from_header(None)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_uuid_is_kept_and_anything_else_replaced() {
        let sent = Uuid::new_v4();
        let header = HeaderValue::from_str(&sent.to_string()).unwrap();
        assert_eq!(CorrelationId::from_header(Some(&header)).0, sent);
        let junk = HeaderValue::from_static("not-a-uuid");
        assert_ne!(CorrelationId::from_header(Some(&junk)).0, Uuid::nil());
        assert_ne!(CorrelationId::from_header(None), CorrelationId::from_header(None));
    }
}
