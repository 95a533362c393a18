//! 移管: the transfers of the coordinator's municipalities, with the worklist first, and the
//! receiving coordinator's buttons: 受領確認, 受入 (choosing the 主担当機関 and sealing the new
//! case's header here), 辞退 (with a reason). Every button posts once (POST-redirect-GET).

use askama::Template;
use axum::extract::{Extension, Path, State};
use axum::response::Response;
use tsunagu_proto::v1::{
    AcceptTransferRequest, AcknowledgeTransferRequest, DeclineTransferRequest,
    ListTransfersRequest, Transfer, TransferState, TransferTimer, TransferView,
};

use super::{Context, Frame, PageError, Section, form_key, is_id, page, staff, submit};
use crate::console::form::FormData;
use crate::console::guard::SignedIn;
use crate::console::state::AppState;
use crate::console::view::{Opened, ja, jst};
use crate::render::short_id;

/// The reasons B may decline with, and their words.
pub const DECLINE_REASONS: [(&str, &str); 5] = [
    ("not_moved_in", "転入が確認できない"),
    ("moved_elsewhere", "別の自治体へ転居した"),
    ("insufficient_information", "情報が不足している"),
    ("already_supported", "既に支援中"),
    ("other", "その他"),
];

pub struct Row {
    pub transfer_id: String,
    pub short: String,
    pub case_id: String,
    pub from: String,
    pub to: String,
    pub state: String,
    pub proposed_at: String,
    pub respond_by: String,
    pub overdue: String,
    /// The caller coordinates the receiving municipality and the transfer awaits it.
    pub receiving: bool,
    pub acknowledged: bool,
    pub declined_note: String,
    pub receiving_case_id: String,
    pub note: Opened,
    pub idem_ack: String,
    pub idem_accept: String,
    pub idem_decline: String,
}

pub struct Choice {
    pub id: String,
    pub name: String,
}

#[derive(Template)]
#[template(path = "console/transfers.html")]
pub struct TransfersPage {
    pub frame: Frame,
    pub worklist: Vec<Row>,
    pub others: Vec<Row>,
    /// Agencies of each municipality the caller coordinates, to lead an accepted family.
    pub leads: Vec<Choice>,
    pub reasons: Vec<Choice>,
}

fn timers(values: &[i32]) -> String {
    let names: Vec<String> = values
        .iter()
        .filter_map(|v| TransferTimer::try_from(*v).ok())
        .map(ja)
        .collect();
    names.join("、")
}

fn row(cx: &Context, opener: &crate::pack::Opener<'_>, t: &Transfer) -> Row {
    let receiving = cx.coordinates(&t.to_municipality)
        && matches!(
            t.state(),
            TransferState::Proposed | TransferState::Acknowledged
        );
    let declined_note = if t.state() == TransferState::Declined {
        let reason = DECLINE_REASONS
            .iter()
            .find(|(code, _)| *code == t.decline_reason)
            .map_or(t.decline_reason.as_str(), |(_, ja)| ja);
        format!("移管が辞退されました（{reason}）{}", t.decline_text)
    } else {
        String::new()
    };
    Row {
        short: short_id(&t.transfer_id).to_owned(),
        case_id: t.case_id.clone(),
        from: t.from_municipality.clone(),
        to: t.to_municipality.clone(),
        state: ja(t.state()),
        proposed_at: jst(t.proposed_at.as_ref()),
        respond_by: jst(t.respond_by.as_ref()),
        overdue: timers(&t.overdue),
        receiving,
        acknowledged: t.state() == TransferState::Acknowledged,
        declined_note,
        receiving_case_id: t.receiving_case_id.clone(),
        note: Opened::of(opener, t.note.as_ref()),
        idem_ack: form_key(),
        idem_accept: form_key(),
        idem_decline: form_key(),
        transfer_id: t.transfer_id.clone(),
    }
}

/// `GET /transfers`.
pub async fn show(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
) -> Result<Response, PageError> {
    let cx = Context::load(&state, &signed_in, "移管", Section::Transfers).await?;
    let hub = state.hub();
    let list = |view: TransferView| {
        let mut client = hub.transfers();
        async move {
            client
                .list_transfers(ListTransfersRequest {
                    municipality: String::new(),
                    case_id: String::new(),
                    view: view.into(),
                })
                .await
        }
    };
    let open = list(TransferView::Open)
        .await
        .map_err(|status| hub.call_error(status))?
        .into_inner()
        .transfers;
    let all = list(TransferView::All)
        .await
        .map_err(|status| hub.call_error(status))?
        .into_inner()
        .transfers;
    let opener = state.opener();
    let open_ids: Vec<&str> = open.iter().map(|t| t.transfer_id.as_str()).collect();
    let worklist = open.iter().map(|t| row(&cx, &opener, t)).collect();
    let others = all
        .iter()
        .filter(|t| !open_ids.contains(&t.transfer_id.as_str()))
        .map(|t| row(&cx, &opener, t))
        .collect();
    let leads = cx
        .agencies
        .iter()
        .filter(|a| a.municipalities.iter().any(|m| cx.coordinates(m)))
        .map(|a| Choice {
            id: a.agency_id.clone(),
            name: a.display_name.clone(),
        })
        .collect();
    let reasons = DECLINE_REASONS
        .iter()
        .map(|(id, name)| Choice {
            id: (*id).to_owned(),
            name: (*name).to_owned(),
        })
        .collect();
    Ok(page(&TransfersPage {
        frame: cx.frame,
        worklist,
        others,
        leads,
        reasons,
    }))
}

/// `POST /transfers/{id}/actions`: ack, accept or decline, as B's coordinator.
pub async fn act(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
    Extension(form): Extension<FormData>,
    Path(transfer_id): Path<String>,
) -> Response {
    let write = async {
        let back = "/transfers";
        if !is_id(&transfer_id) {
            return Err(PageError::NotFound);
        }
        let hub = state.hub();
        let idempotency_key = form.get("idem").to_owned();
        match form.get("action") {
            "ack" => {
                hub.transfers()
                    .acknowledge_transfer(AcknowledgeTransferRequest {
                        transfer_id,
                        staff: Some(staff(&signed_in)),
                        idempotency_key,
                    })
                    .await
                    .map_err(|status| PageError::from(hub.call_error(status)))?;
            }
            "accept" => {
                let lead = form.get("lead_agency").to_owned();
                if lead.is_empty() {
                    return Err(PageError::invalid("主担当機関を選んでください", back));
                }
                let header = form.text("header");
                if header.trim().is_empty() {
                    return Err(PageError::invalid(
                        "転入先で開くケースの基本情報（氏名・住所など）を入力してください。この機関と主担当機関にだけ読める形で封をします。",
                        back,
                    ));
                }
                let header = state
                    .sealer()?
                    .seal(header.as_bytes(), &[lead.as_str()], None)
                    .await?;
                hub.transfers()
                    .accept_transfer(AcceptTransferRequest {
                        transfer_id,
                        lead_agency: lead,
                        receiving_case_id: String::new(),
                        header: Some(header),
                        staff: Some(staff(&signed_in)),
                        idempotency_key,
                    })
                    .await
                    .map_err(|status| PageError::from(hub.call_error(status)))?;
            }
            "decline" => {
                let reason = form.get("reason_code").to_owned();
                if reason.is_empty() {
                    return Err(PageError::invalid("辞退の理由を選んでください", back));
                }
                hub.transfers()
                    .decline_transfer(DeclineTransferRequest {
                        transfer_id,
                        reason_code: reason,
                        reason_text: form.text("reason_text").to_owned(),
                        staff: Some(staff(&signed_in)),
                        idempotency_key,
                    })
                    .await
                    .map_err(|status| PageError::from(hub.call_error(status)))?;
            }
            _ => return Err(PageError::invalid("操作を選んでください", back)),
        }
        Ok(back.to_owned())
    };
    submit(&state, &form, write).await
}
