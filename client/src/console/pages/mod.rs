//! The console's pages. Each handler reads what it shows from the hub, opens sealed fields in
//! memory, and renders a template checked at compile time; every value is escaped by the
//! template. Writes go through [`submit`], which makes a form's second submission harmless.

pub mod case;
pub mod council;
pub mod error;
pub mod lists;
pub mod outcomes;
pub mod referral;
pub mod reseal;
pub mod session;
pub mod transfers;
pub mod worklist;

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use time::OffsetDateTime;
use tsunagu_proto::v1::{Agency, Staff};

use super::form::FormData;
use super::guard::SignedIn;
use super::state::AppState;
use super::view::{Names, today_in_japan};
use crate::ClientError;
use crate::render::timestamp_to_datetime;
pub use error::PageError;

/// The sections of the navigation bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Worklist,
    Inbox,
    Sent,
    Cases,
    Council,
    Transfers,
    Outcomes,
}

/// What the frame around every page shows: who is signed in, the navigation, warnings.
#[derive(Clone, Debug)]
pub struct Frame {
    pub title: String,
    pub section: Section,
    pub agency_id: String,
    pub agency_name: String,
    pub coordinator: bool,
    pub council_member: bool,
    pub staff: Staff,
    pub csrf: String,
    pub certificate_warning: Option<String>,
    pub live: bool,
    pub today: String,
}

impl Section {
    fn code(self) -> &'static str {
        match self {
            Section::Worklist => "worklist",
            Section::Inbox => "inbox",
            Section::Sent => "sent",
            Section::Cases => "cases",
            Section::Council => "council",
            Section::Transfers => "transfers",
            Section::Outcomes => "outcomes",
        }
    }
}

impl Frame {
    /// Whether the page belongs to the section named `code` (for the navigation bar).
    pub fn current(&self, code: &str) -> bool {
        self.section.code() == code
    }
}

/// What a page needs before it reads its own data: who the caller is, and the directory.
pub struct Context {
    pub state: AppState,
    pub me: Agency,
    pub names: Names,
    pub agencies: Vec<Agency>,
    pub frame: Frame,
    pub now: OffsetDateTime,
}

/// From this many days before the certificate expires, every page warns.
const CERTIFICATE_WARNING_DAYS: i64 = 30;

impl Context {
    /// Reads who the caller is (every page does first, so an expired, revoked or suspended
    /// identity shows its own page) and the directory.
    pub async fn load(
        state: &AppState,
        signed_in: &SignedIn,
        title: impl Into<String>,
        section: Section,
    ) -> Result<Context, PageError> {
        let who = state.who_am_i().await?;
        let me = who.agency.clone().unwrap_or_default();
        let agencies = state.agencies().await?;
        let now = OffsetDateTime::now_utc();
        let certificate_warning = who
            .certificate_not_after
            .as_ref()
            .and_then(timestamp_to_datetime)
            .and_then(|not_after| {
                let days = (not_after - now).whole_days();
                (days <= CERTIFICATE_WARNING_DAYS).then(|| {
                    format!(
                        "この機関の証明書は{}に期限が切れます（あと{}日）。ハブの運用担当者に更新を依頼してください。",
                        crate::render::format_japan_time(
                            who.certificate_not_after.as_ref().expect("checked above")
                        ),
                        days.max(0)
                    )
                })
            });
        let frame = Frame {
            title: title.into(),
            section,
            agency_id: me.agency_id.clone(),
            agency_name: me.display_name.clone(),
            coordinator: !me.coordinator_of.is_empty(),
            council_member: !me.council_memberships.is_empty() || !me.coordinator_of.is_empty(),
            staff: signed_in.session.staff.clone(),
            csrf: signed_in.session.csrf.clone(),
            certificate_warning,
            live: false,
            today: today_in_japan(now),
        };
        Ok(Context {
            state: state.clone(),
            names: Names::new(&agencies),
            agencies,
            me,
            frame,
            now,
        })
    }

    /// Whether the caller coordinates `municipality`.
    pub fn coordinates(&self, municipality: &str) -> bool {
        self.me.coordinator_of.iter().any(|m| m == municipality)
    }
}

/// Renders a template as a page.
pub fn page<T: Template>(template: &T) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            tracing::error!(error = %error, "a console page could not be rendered");
            error::refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "画面を表示できませんでした",
                "コンソールの内部エラーです。再読み込みしても直らないときは、コンソールを起動し直してください。",
            )
        }
    }
}

/// A fresh idempotency key for a form being rendered.
pub fn form_key() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Runs a form's write once per its idempotency key (`idem`), then sends the browser to the
/// page it led to (303, so that reloading that page sends nothing).
pub async fn submit<F>(state: &AppState, form: &FormData, write: F) -> Response
where
    F: Future<Output = Result<String, PageError>>,
{
    let key = form.get("idem");
    if key.is_empty() || key.chars().count() > 128 {
        return PageError::invalid("フォームの識別子（idem）がありません", form.get("back"))
            .into_response();
    }
    match state.submissions().once(key, write).await {
        Ok(next) => Redirect::to(&next).into_response(),
        Err(error) => error.with_back(form.get("back")).into_response(),
    }
}

/// The staff member acting, as the session says.
pub fn staff(signed_in: &SignedIn) -> Staff {
    signed_in.session.staff.clone()
}

/// Maps a hub error about one item (a referral, a case, a meeting) so that an id the caller may
/// not see and an id that does not exist give the same page.
pub fn about_item(error: ClientError) -> PageError {
    match error.code() {
        Some(
            tonic::Code::NotFound | tonic::Code::PermissionDenied | tonic::Code::InvalidArgument,
        ) => PageError::NotFound,
        _ => PageError::from(error),
    }
}

/// Whether `id` has the shape of the hub's ids (a UUID), checked before asking the hub.
pub fn is_id(id: &str) -> bool {
    uuid::Uuid::parse_str(id).is_ok()
}
