//! Signing in with the one-time URL, signing out, and who is acting (担当者).

use askama::Template;
use axum::extract::{Extension, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tsunagu_proto::v1::Staff;

use super::error::refusal;
use super::{Context, Frame, PageError, Section, page};
use crate::console::form::FormData;
use crate::console::guard::{SignedIn, session_clear_cookie, session_set_cookie};
use crate::console::state::AppState;

#[derive(Debug, Deserialize)]
pub struct Login {
    #[serde(default)]
    token: String,
}

/// `GET /login?token=…`: spends the one-time token and sets the session cookie.
pub async fn login(State(state): State<AppState>, Query(login): Query<Login>) -> Response {
    match state.sessions().log_in(&login.token) {
        Some(id) => {
            let mut response = Redirect::to("/").into_response();
            response
                .headers_mut()
                .insert(header::SET_COOKIE, session_set_cookie(&id, state.tls()));
            response
        }
        None => refusal(
            StatusCode::UNAUTHORIZED,
            "このURLは使えません",
            "ログイン用のURLは一度しか使えません。`tsunagu console` を起動し直し、表示された新しいURLを開いてください。",
        ),
    }
}

/// `POST /logout`.
pub async fn logout(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
) -> Response {
    state.sessions().log_out(&signed_in.id);
    let mut response = refusal(
        StatusCode::OK,
        "ログアウトしました",
        "もう一度使うときは、`tsunagu console` を起動し直して表示されたURLを開いてください。",
    );
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_clear_cookie());
    response
}

#[derive(Template)]
#[template(path = "console/staff.html")]
pub struct StaffPage {
    pub frame: Frame,
}

/// `GET /staff`: who is acting.
pub async fn staff_form(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
) -> Result<Response, PageError> {
    let cx = Context::load(&state, &signed_in, "担当者", Section::Worklist).await?;
    Ok(page(&StaffPage { frame: cx.frame }))
}

/// `POST /staff`.
pub async fn set_staff(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
    Extension(form): Extension<FormData>,
) -> Response {
    let name = form.get("name");
    let role = form.get("role");
    let valid = |text: &str| (1..=100).contains(&text.chars().count());
    if !valid(name) || !valid(role) {
        return PageError::invalid(
            "担当者の氏名と職種を、それぞれ1～100文字で入力してください",
            "/staff",
        )
        .into_response();
    }
    state.sessions().set_staff(
        &signed_in.id,
        Staff {
            name: name.to_owned(),
            role: role.to_owned(),
        },
    );
    Redirect::to("/").into_response()
}
