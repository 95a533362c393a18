//! 受信・送信: the referrals the caller received or sent, filtered by where the handoff
//! stands, purpose, urgency and the day it was sent.

use askama::Template;
use axum::extract::{Extension, Query, State};
use axum::response::Response;
use serde::Deserialize;
use tsunagu_proto::v1::{
    ConnectionState, DeliveryState, ListReferralsRequest, Referral, ReferralDirection,
    ResponseState, Urgency,
};

use super::{Context, Frame, PageError, Section, page};
use crate::console::guard::SignedIn;
use crate::console::state::AppState;
use crate::console::view::{ja, jst, purpose};
use crate::render::{Coded, KNOWN_PURPOSES, short_id};

/// At most this many referrals are read for one list.
const MAX_LISTED: usize = 5000;

/// Where a handoff stands, as the list filters it.
const STAGES: &[(&str, &str)] = &[
    ("", "対応中のもの（終了を除く）"),
    ("unread", "未受信"),
    ("requested", "応答待ち"),
    ("working", "受入・対応中"),
    ("reported", "確認待ち（結果の報告あり）"),
    ("closed", "終了（確認済・取消・辞退）"),
    ("all", "すべて"),
];

/// The filters of a list, from the query string.
#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    #[serde(default)]
    pub stage: String,
    #[serde(default)]
    pub purpose: String,
    #[serde(default)]
    pub urgency: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    /// Only this response state (a code, e.g. `declined`): the outcomes page links here.
    #[serde(default)]
    pub response: String,
    /// Only this connection state (a code, e.g. `connected`).
    #[serde(default)]
    pub connection: String,
    /// Only this not-connected reason (a code, e.g. `moved`).
    #[serde(default)]
    pub reason: String,
}

pub struct Row {
    pub referral_id: String,
    pub short: String,
    pub case_id: String,
    pub other: String,
    pub purpose: String,
    pub urgency: String,
    pub sent_at: String,
    pub delivery: String,
    pub response: String,
    pub connection: String,
    pub overdue: bool,
}

#[derive(Template)]
#[template(path = "console/lists.html")]
pub struct ListPage {
    pub frame: Frame,
    pub heading: &'static str,
    pub other_heading: &'static str,
    pub path: &'static str,
    pub rows: Vec<Row>,
    pub filters: Filters,
    pub stages: &'static [(&'static str, &'static str)],
    pub purposes: &'static [(&'static str, &'static str)],
    pub urgencies: Vec<(&'static str, &'static str)>,
    pub truncated: bool,
}

/// `GET /inbox`.
pub async fn inbox(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
    Query(filters): Query<Filters>,
) -> Result<Response, PageError> {
    list(state, signed_in, filters, ReferralDirection::Received).await
}

/// `GET /sent`.
pub async fn sent(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
    Query(filters): Query<Filters>,
) -> Result<Response, PageError> {
    list(state, signed_in, filters, ReferralDirection::Sent).await
}

async fn list(
    state: AppState,
    signed_in: SignedIn,
    filters: Filters,
    direction: ReferralDirection,
) -> Result<Response, PageError> {
    let received = direction == ReferralDirection::Received;
    let (title, section) = if received {
        ("受信", Section::Inbox)
    } else {
        ("送信", Section::Sent)
    };
    let mut cx = Context::load(&state, &signed_in, title, section).await?;
    cx.frame.live = true;
    let include_closed = matches!(filters.stage.as_str(), "closed" | "all");
    let (referrals, truncated) = read_all(&state, direction, include_closed).await?;
    let rows = referrals
        .iter()
        .filter(|r| matches(r, &filters))
        .map(|r| Row {
            referral_id: r.referral_id.clone(),
            short: short_id(&r.referral_id).to_owned(),
            case_id: r.case_id.clone(),
            other: cx.names.of(if received {
                &r.from_agency
            } else {
                &r.to_agency
            }),
            purpose: purpose(&r.purpose),
            urgency: ja(r.urgency()),
            sent_at: jst(r.sent_at.as_ref()),
            delivery: ja(r.delivery()),
            response: ja(r.response()),
            connection: if r.confirmed_at.is_some() {
                format!("{}（確認済）", ja(r.connection()))
            } else {
                ja(r.connection())
            },
            overdue: !r.overdue.is_empty(),
        })
        .collect();
    Ok(page(&ListPage {
        frame: cx.frame,
        heading: title,
        other_heading: if received { "紹介元" } else { "紹介先" },
        path: if received { "/inbox" } else { "/sent" },
        rows,
        filters,
        stages: STAGES,
        purposes: KNOWN_PURPOSES,
        urgencies: [Urgency::Routine, Urgency::Urgent, Urgency::Emergency]
            .into_iter()
            .map(|u| (u.code(), u.japanese()))
            .collect(),
        truncated,
    }))
}

/// Every referral in one direction, newest first, up to [`MAX_LISTED`].
pub async fn read_all(
    state: &AppState,
    direction: ReferralDirection,
    include_closed: bool,
) -> Result<(Vec<Referral>, bool), PageError> {
    let hub = state.hub();
    let mut referrals = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = hub
            .referrals()
            .list_referrals(ListReferralsRequest {
                direction: direction.into(),
                case_id: String::new(),
                include_closed,
                limit: 500,
                page_token: page_token.clone(),
            })
            .await
            .map_err(|status| hub.call_error(status))?
            .into_inner();
        referrals.extend(page.referrals);
        if referrals.len() >= MAX_LISTED {
            referrals.truncate(MAX_LISTED);
            return Ok((referrals, true));
        }
        if page.next_page_token.is_empty() || page.next_page_token == page_token {
            return Ok((referrals, false));
        }
        page_token = page.next_page_token;
    }
}

/// The stage filter's word for where a referral stands.
fn stage(r: &Referral) -> &'static str {
    let reported = matches!(
        r.connection(),
        ConnectionState::Connected | ConnectionState::NotConnected
    );
    if r.confirmed_at.is_some()
        || r.response() == ResponseState::Cancelled
        || (r.response() == ResponseState::Declined && !reported)
    {
        "closed"
    } else if reported {
        "reported"
    } else if r.delivery() == DeliveryState::Sent {
        "unread"
    } else if r.response() == ResponseState::Requested {
        "requested"
    } else {
        "working"
    }
}

/// Whether a referral passes the filters.
pub fn matches(r: &Referral, filters: &Filters) -> bool {
    let stage_ok = match filters.stage.as_str() {
        "" => stage(r) != "closed",
        "all" => true,
        wanted => stage(r) == wanted,
    };
    let day = jst(r.sent_at.as_ref());
    let day = day.get(..10).unwrap_or("");
    stage_ok
        && (filters.purpose.is_empty() || r.purpose == filters.purpose)
        && (filters.urgency.is_empty() || r.urgency().code() == filters.urgency)
        && (filters.from.is_empty() || day >= filters.from.as_str())
        && (filters.to.is_empty() || day <= filters.to.as_str())
        && (filters.response.is_empty() || r.response().code() == filters.response)
        && (filters.connection.is_empty() || r.connection().code() == filters.connection)
        && (filters.reason.is_empty() || r.not_connected_reason().code() == filters.reason)
}

#[cfg(test)]
mod tests {
    use prost_types::Timestamp;

    use super::*;

    fn sent_on(seconds: i64) -> Referral {
        let mut r = Referral {
            purpose: "postnatal_care".into(),
            sent_at: Some(Timestamp { seconds, nanos: 0 }),
            ..Referral::default()
        };
        r.set_urgency(Urgency::Urgent);
        r.set_delivery(DeliveryState::Sent);
        r.set_response(ResponseState::Requested);
        r.set_connection(ConnectionState::NotUpdated);
        r
    }

    #[test]
    fn filters_combine_stage_purpose_urgency_and_japan_days() {
        // 2026-12-04 15:30 UTC is 2026-12-05 00:30 in Japan.
        let r = sent_on(1_796_398_200);
        let pass = |f: Filters| matches(&r, &f);
        assert!(pass(Filters::default()));
        assert!(pass(Filters {
            stage: "unread".into(),
            purpose: "postnatal_care".into(),
            urgency: "urgent".into(),
            from: "2026-12-05".into(),
            to: "2026-12-05".into(),
            connection: "not_updated".into(),
            ..Filters::default()
        }));
        assert!(!pass(Filters {
            connection: "connected".into(),
            ..Filters::default()
        }));
        assert!(!pass(Filters {
            to: "2026-12-04".into(),
            ..Filters::default()
        }));
        assert!(!pass(Filters {
            stage: "closed".into(),
            ..Filters::default()
        }));
        assert!(!pass(Filters {
            urgency: "routine".into(),
            ..Filters::default()
        }));
    }
}
