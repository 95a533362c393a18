//! The console's outer layer: every request must name the console's own host (DNS
//! rebinding), come from its own origin, carry the session cookie, and every POST the
//! session's CSRF token. A request that fails any check is answered here, before any handler
//! runs, so nothing reaches the hub. Every answer carries a strict Content-Security-Policy and
//! is never cached.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::form::{FormData, MAX_FORM_BYTES};
use super::pages::error::refusal;
use super::session::{COOKIE, Session, same_secret};
use super::state::AppState;

/// The Content-Security-Policy of every console page: only the console's own style sheet and
/// script, no inline code, nothing from the network, forms posted only to the console.
pub const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; \
                       connect-src 'self'; frame-src 'self'; form-action 'self'; \
                       frame-ancestors 'self'; base-uri 'none'";

/// The session of a request that passed the guard, and its id.
#[derive(Clone, Debug)]
pub struct SignedIn {
    pub id: String,
    pub session: Session,
}

/// The session cookie's value in a request, if any.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// Checks host, origin, session and CSRF token; hands a parsed form to the handler.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let mut response = match check(&state, request).await {
        Ok(request) => next.run(request).await,
        Err(refused) => refused,
    };
    secure_headers(response.headers_mut());
    response
}

async fn check(state: &AppState, request: Request) -> Result<Request, Response> {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    if !state.origins().host_allowed(host) {
        return Err(refusal(
            StatusCode::MISDIRECTED_REQUEST,
            "このアドレスではコンソールを開けません",
            "コンソールを起動した端末に表示されたURL（127.0.0.1 から始まるもの）をそのまま開いてください。",
        ));
    }
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok());
    let unsafe_method = !matches!(*request.method(), Method::GET | Method::HEAD);
    match origin {
        Some(origin) if !state.origins().origin_allowed(origin) => {
            return Err(refusal(
                StatusCode::FORBIDDEN,
                "他のサイトからの操作は受け付けません",
                "操作はコンソールの画面から行ってください。",
            ));
        }
        None if unsafe_method => {
            return Err(refusal(
                StatusCode::FORBIDDEN,
                "送信元を確認できない操作は受け付けません",
                "操作はコンソールの画面から行ってください。",
            ));
        }
        _ => {}
    }

    let path = request.uri().path();
    if path == "/login" || path.starts_with("/assets/") {
        return Ok(request);
    }
    let signed_in = session_cookie(headers).and_then(|id| {
        state
            .sessions()
            .get(&id)
            .map(|session| SignedIn { id, session })
    });
    let Some(signed_in) = signed_in else {
        return Err(refusal(
            StatusCode::UNAUTHORIZED,
            "ログインしていません",
            "コンソールを起動した端末に表示されたURLを開いてください。URLは一度しか使えないため、\
             使用済みのときは `tsunagu console` を起動し直してください。",
        ));
    };

    let (mut parts, body) = request.into_parts();
    if unsafe_method {
        let bytes = to_bytes(body, MAX_FORM_BYTES).await.map_err(|_| {
            refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                "送信内容が大きすぎます",
                "本文は 200 KB 以内にしてください。",
            )
        })?;
        let form = FormData::parse(&bytes).map_err(|reason| {
            refusal(
                StatusCode::BAD_REQUEST,
                "フォームが正しくありません",
                &reason,
            )
        })?;
        if !same_secret(form.get("csrf"), &signed_in.session.csrf) {
            return Err(refusal(
                StatusCode::FORBIDDEN,
                "フォームの有効期限が切れています",
                "画面を再読み込みしてから、もう一度操作してください。",
            ));
        }
        parts.extensions.insert(form);
        parts.extensions.insert(signed_in);
        return Ok(Request::from_parts(parts, Body::empty()));
    }
    parts.extensions.insert(signed_in);
    Ok(Request::from_parts(parts, body))
}

/// The headers every answer carries.
fn secure_headers(headers: &mut HeaderMap) {
    let set = |headers: &mut HeaderMap, name, value: &'static str| {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    };
    set(headers, header::CONTENT_SECURITY_POLICY, CSP);
    set(headers, header::CACHE_CONTROL, "no-store");
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    // Same-origin, not no-referrer: under no-referrer a browser sends `Origin: null` with a
    // form, and the origin check could not tell the console's own forms from a sandboxed page.
    set(headers, header::REFERRER_POLICY, "same-origin");
    set(headers, header::X_FRAME_OPTIONS, "SAMEORIGIN");
    set(
        headers,
        header::HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(
        headers,
        header::HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    );
}

/// The allowed `Host` values and origins of a console bound to one address.
#[derive(Clone, Debug)]
pub struct Origins {
    hosts: Vec<String>,
    origins: Vec<String>,
}

impl Origins {
    /// For a console reached at `port` under these host names, over https when `tls`.
    pub fn new(names: &[String], port: u16, tls: bool) -> Self {
        let scheme = if tls { "https" } else { "http" };
        let hosts: Vec<String> = names.iter().map(|name| format!("{name}:{port}")).collect();
        let origins = hosts
            .iter()
            .map(|host| format!("{scheme}://{host}"))
            .collect();
        Origins { hosts, origins }
    }

    /// Whether a request's `Host` names the console.
    pub fn host_allowed(&self, host: &str) -> bool {
        self.hosts
            .iter()
            .any(|known| known.eq_ignore_ascii_case(host))
    }

    /// Whether a request's `Origin` is the console's own.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.origins
            .iter()
            .any(|known| known.eq_ignore_ascii_case(origin))
    }
}

/// A cookie that sets the session (HttpOnly, SameSite=Strict; Secure over TLS).
pub fn session_set_cookie(id: &str, tls: bool) -> HeaderValue {
    let secure = if tls { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

/// A cookie that ends the session in the browser.
pub fn session_clear_cookie() -> HeaderValue {
    HeaderValue::from_static("tsunagu_console=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_consoles_own_host_and_origin_pass() {
        let origins = Origins::new(&["127.0.0.1".into(), "localhost".into()], 7480, false);
        assert!(origins.host_allowed("127.0.0.1:7480"));
        assert!(origins.host_allowed("LOCALHOST:7480"));
        assert!(!origins.host_allowed("evil.example:7480"));
        assert!(!origins.host_allowed("127.0.0.1:7481"));
        assert!(origins.origin_allowed("http://127.0.0.1:7480"));
        assert!(!origins.origin_allowed("https://127.0.0.1:7480"));
        assert!(!origins.origin_allowed("http://evil.example"));
        assert!(!origins.origin_allowed("null"));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; tsunagu_console=abc; b=2"),
        );
        assert_eq!(session_cookie(&headers).as_deref(), Some("abc"));
        assert_eq!(session_cookie(&HeaderMap::new()), None);
    }
}
