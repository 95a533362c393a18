//! 今日の確認: the caller's worklist (and for a coordinator the municipality's): overdue and
//! due-soon handoffs grouped by the layer that has not moved, and the shares made without
//! consent awaiting review. Updates live.

use askama::Template;
use axum::extract::{Extension, State};
use axum::response::Response;
use tsunagu_proto::v1::{
    FollowUpItem, FollowUpStatus, FollowUpsRequest, ListTransfersRequest, TimerKind, TransferView,
};

use super::{Context, Frame, PageError, Section, page};
use crate::console::guard::SignedIn;
use crate::console::state::AppState;
use crate::console::view::{due_phrase, ja, jst, layer_of, purpose, seconds_until};
use crate::render::short_id;

/// The layers in the order a handoff passes them.
const LAYERS: [TimerKind; 4] = [
    TimerKind::DeliverBy,
    TimerKind::RespondBy,
    TimerKind::ConnectBy,
    TimerKind::ConfirmBy,
];

/// How far ahead "due soon" looks, in hours.
const DUE_WITHIN_HOURS: u32 = 48;

pub struct Row {
    pub referral_id: String,
    pub short: String,
    pub case_id: String,
    pub purpose: String,
    pub urgency: String,
    pub from: String,
    pub to: String,
    pub timer: String,
    pub due_at: String,
    pub due: String,
    pub overdue: bool,
    /// Overdue past the coordinator's grace period: escalated to the coordinator.
    pub escalated: bool,
    pub responsible: String,
}

pub struct Group {
    pub layer: &'static str,
    pub rows: Vec<Row>,
    pub overdue: usize,
}

pub struct Review {
    pub referral_id: String,
    pub short: String,
    pub case_id: String,
    pub basis: String,
    pub justification: String,
    pub from: String,
    pub to: String,
    pub sent_at: String,
}

#[derive(Template)]
#[template(path = "console/worklist.html")]
pub struct WorklistPage {
    pub frame: Frame,
    pub groups: Vec<Group>,
    pub reviews: Vec<Review>,
    pub total: usize,
    pub overdue: usize,
    /// Transfers (移管) the caller's municipalities have to act on, and how many are overdue.
    pub transfers: usize,
    pub transfers_overdue: usize,
}

/// `GET /`: 今日の確認.
pub async fn show(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
) -> Result<Response, PageError> {
    let mut cx = Context::load(&state, &signed_in, "今日の確認", Section::Worklist).await?;
    cx.frame.live = true;
    let hub = state.hub();
    let items = hub
        .referrals()
        .follow_ups(FollowUpsRequest {
            municipality: String::new(),
            due_within_hours: DUE_WITHIN_HOURS,
        })
        .await
        .map_err(|status| hub.call_error(status))?
        .into_inner()
        .items;
    // A coordinator's open transfers stay on the worklist until they move; a hub without the
    // transfer service leaves this part out.
    let open = hub
        .transfers()
        .list_transfers(ListTransfersRequest {
            municipality: String::new(),
            case_id: String::new(),
            view: TransferView::Open.into(),
        })
        .await
        .map(|r| r.into_inner().transfers)
        .unwrap_or_default();
    let mut page_data = build(cx, &items);
    page_data.transfers = open.len();
    page_data.transfers_overdue = open.iter().filter(|t| !t.overdue.is_empty()).count();
    Ok(page(&page_data))
}

/// The page for these worklist items.
pub fn build(cx: Context, items: &[FollowUpItem]) -> WorklistPage {
    let mut groups: Vec<Group> = LAYERS
        .iter()
        .map(|timer| Group {
            layer: layer_of(*timer),
            rows: Vec::new(),
            overdue: 0,
        })
        .collect();
    let mut reviews = Vec::new();
    for item in items {
        let referral = item.referral.clone().unwrap_or_default();
        let short = short_id(&referral.referral_id).to_owned();
        if item.status() == FollowUpStatus::BasisReview {
            reviews.push(Review {
                short,
                case_id: referral.case_id.clone(),
                basis: ja(referral.basis()),
                justification: item.justification.clone(),
                from: cx.names.of(&referral.from_agency),
                to: cx.names.of(&referral.to_agency),
                sent_at: jst(referral.sent_at.as_ref()),
                referral_id: referral.referral_id,
            });
            continue;
        }
        let Some(index) = LAYERS.iter().position(|t| *t == item.timer()) else {
            continue;
        };
        let due = item.due_at.unwrap_or_default();
        let overdue = item.status() == FollowUpStatus::Overdue || seconds_until(&due, cx.now) < 0;
        let group = &mut groups[index];
        if overdue {
            group.overdue += 1;
        }
        group.rows.push(Row {
            short,
            case_id: referral.case_id.clone(),
            purpose: purpose(&referral.purpose),
            urgency: ja(referral.urgency()),
            from: cx.names.of(&referral.from_agency),
            to: cx.names.of(&referral.to_agency),
            timer: ja(item.timer()),
            due_at: jst(Some(&due)),
            due: due_phrase(&due, cx.now),
            overdue,
            escalated: item.escalated,
            responsible: cx.names.of(&item.responsible_agency),
            referral_id: referral.referral_id,
        });
    }
    // The longest overdue first.
    for group in &mut groups {
        group.rows.sort_by(|a, b| a.due_at.cmp(&b.due_at));
    }
    let total = groups.iter().map(|g| g.rows.len()).sum::<usize>() + reviews.len();
    let overdue = groups.iter().map(|g| g.overdue).sum();
    WorklistPage {
        frame: cx.frame,
        groups,
        reviews,
        total,
        overdue,
        transfers: 0,
        transfers_overdue: 0,
    }
}
