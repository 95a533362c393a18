//! Which actions a referral's page offers the caller right now: the hub's rules for who may
//! move which layer from which state, seen from the caller's side. The hub checks every action
//! again; this only keeps the page from offering what it would refuse.

use tsunagu_proto::v1::{
    Agency, ConnectionState as C, DeliveryState, Referral, ReferralAction as A, ResponseState as R,
};

/// How the caller takes part in one referral.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Party {
    Sender,
    Recipient,
    /// The coordinator of the case's municipality (not sender or recipient).
    Coordinator,
    Other,
}

/// The caller's part in `referral`, about a case of `municipality`.
pub fn party(referral: &Referral, me: &Agency, municipality: Option<&str>) -> Party {
    if !referral.to_agency.is_empty() && referral.to_agency == me.agency_id {
        Party::Recipient
    } else if !referral.from_agency.is_empty() && referral.from_agency == me.agency_id {
        Party::Sender
    } else if municipality.is_some_and(|m| me.coordinator_of.iter().any(|c| c == m)) {
        Party::Coordinator
    } else {
        Party::Other
    }
}

fn closed(referral: &Referral) -> bool {
    referral.confirmed_at.is_some() || referral.response() == R::Cancelled
}

fn outcome_reported(referral: &Referral) -> bool {
    matches!(referral.connection(), C::Connected | C::NotConnected)
}

/// The actions `party` may take on `referral` now, in the order the page offers them.
pub fn allowed(referral: &Referral, party: Party) -> Vec<A> {
    if closed(referral) {
        // A confirmed "did not connect" still waits for its next step (the hub says so): the
        // sender or the coordinator may close it with a reason instead of referring again.
        if referral.next_step_needed && matches!(party, Party::Sender | Party::Coordinator) {
            return vec![A::CloseWithReason];
        }
        return Vec::new();
    }
    let response = referral.response();
    let connection_open = matches!(referral.connection(), C::NotUpdated | C::ContactAttempted);
    let declined = response == R::Declined;
    let mut actions = Vec::new();
    match party {
        Party::Recipient => {
            if declined {
                if connection_open {
                    actions.push(A::ReportNotConnected);
                }
                return actions;
            }
            if referral.delivery() == DeliveryState::Sent {
                actions.push(A::AcknowledgeDelivery);
            }
            match response {
                R::Requested => actions.extend([A::Accept, A::Decline]),
                R::Accepted => actions.extend([A::Start, A::Fail]),
                R::InProgress => actions.extend([A::Complete, A::Fail]),
                _ => {}
            }
            if connection_open {
                if matches!(response, R::Accepted | R::InProgress | R::Completed) {
                    actions.extend([A::RecordContactAttempt, A::ReportConnected]);
                }
                if response != R::Requested {
                    actions.push(A::ReportNotConnected);
                }
            }
        }
        Party::Sender | Party::Coordinator => {
            if outcome_reported(referral) {
                actions.push(A::Confirm);
            }
            if !declined && matches!(response, R::Requested | R::Accepted | R::InProgress) {
                actions.push(A::Cancel);
            }
        }
        Party::Other => {}
    }
    actions
}

/// The Japanese label of an action's button.
pub fn button(action: A) -> &'static str {
    match action {
        A::AcknowledgeDelivery => "受信を確認する",
        A::Accept => "受け入れる",
        A::Decline => "辞退する",
        A::Start => "対応を開始する",
        A::Complete => "対応を完了する",
        A::Fail => "不成立にする",
        A::Cancel => "紹介を取り消す",
        A::RecordContactAttempt => "連絡を試みた",
        A::ReportConnected => "つながった",
        A::ReportNotConnected => "つながらなかった",
        A::Confirm => "引継ぎを確認する",
        A::CloseWithReason => "理由を記録して終結する",
        A::Unspecified => "―",
    }
}

/// Whether an action needs a reason code (decline, fail, cancel).
pub fn needs_reason(action: A) -> bool {
    matches!(action, A::Decline | A::Fail | A::Cancel)
}

/// Reason codes offered for decline, fail and cancel; the hub accepts any short code.
pub const REASONS: &[(&str, &str)] = &[
    ("no_capacity", "受入枠がない"),
    ("not_eligible", "対象外"),
    ("declined_by_family", "家族が希望しない"),
    ("could_not_contact", "連絡がとれない"),
    ("moved", "転居"),
    ("duplicate", "重複した紹介"),
    ("sent_in_error", "誤って送信"),
    ("other", "その他（詳細は記録に）"),
];

/// The close reasons of a confirmed "did not connect" (the hub accepts only these codes).
pub const CLOSE_REASONS: &[(&str, &str)] = &[
    ("no_further_support_needed", "これ以上の支援は不要"),
    ("family_declined_all_support", "家族がすべての支援を辞退"),
    ("moved_out", "市区町村外へ転出"),
    ("supported_otherwise", "ネットワーク外の支援を利用"),
];

/// The action a form field names, by its code.
pub fn parse(code: &str) -> Option<A> {
    use crate::render::Coded;
    [
        A::AcknowledgeDelivery,
        A::Accept,
        A::Decline,
        A::Start,
        A::Complete,
        A::Fail,
        A::Cancel,
        A::RecordContactAttempt,
        A::ReportConnected,
        A::ReportNotConnected,
        A::Confirm,
        A::CloseWithReason,
    ]
    .into_iter()
    .find(|action| action.code() == code)
}

#[cfg(test)]
mod tests {
    use prost_types::Timestamp;

    use super::*;

    fn referral(delivery: DeliveryState, response: R, connection: C) -> Referral {
        let mut referral = Referral {
            from_agency: "aoba-kodomo".into(),
            to_agency: "aoba-hospital".into(),
            ..Referral::default()
        };
        referral.set_delivery(delivery);
        referral.set_response(response);
        referral.set_connection(connection);
        referral
    }

    #[test]
    fn a_new_referral_offers_the_recipient_receipt_accept_and_decline() {
        let r = referral(DeliveryState::Sent, R::Requested, C::NotUpdated);
        assert_eq!(
            allowed(&r, Party::Recipient),
            [A::AcknowledgeDelivery, A::Accept, A::Decline]
        );
        assert_eq!(allowed(&r, Party::Sender), [A::Cancel]);
        assert_eq!(allowed(&r, Party::Coordinator), [A::Cancel]);
        assert!(allowed(&r, Party::Other).is_empty());
    }

    #[test]
    fn an_accepted_referral_offers_work_and_the_connection() {
        let r = referral(DeliveryState::Delivered, R::Accepted, C::NotUpdated);
        assert_eq!(
            allowed(&r, Party::Recipient),
            [
                A::Start,
                A::Fail,
                A::RecordContactAttempt,
                A::ReportConnected,
                A::ReportNotConnected
            ]
        );
    }

    #[test]
    fn a_reported_outcome_offers_confirmation_to_sender_and_coordinator() {
        let r = referral(DeliveryState::Delivered, R::InProgress, C::Connected);
        assert_eq!(allowed(&r, Party::Recipient), [A::Complete, A::Fail]);
        assert_eq!(allowed(&r, Party::Sender), [A::Confirm, A::Cancel]);
        assert_eq!(allowed(&r, Party::Coordinator), [A::Confirm, A::Cancel]);
    }

    #[test]
    fn a_declined_referral_takes_only_the_not_connected_report_and_its_confirmation() {
        let r = referral(DeliveryState::Delivered, R::Declined, C::NotUpdated);
        assert_eq!(allowed(&r, Party::Recipient), [A::ReportNotConnected]);
        assert!(allowed(&r, Party::Sender).is_empty());
        let reported = referral(DeliveryState::Delivered, R::Declined, C::NotConnected);
        assert!(allowed(&reported, Party::Recipient).is_empty());
        assert_eq!(allowed(&reported, Party::Sender), [A::Confirm]);
    }

    #[test]
    fn a_confirmed_or_cancelled_referral_offers_nothing() {
        let mut r = referral(DeliveryState::Delivered, R::Completed, C::Connected);
        r.confirmed_at = Some(Timestamp::default());
        for party in [Party::Sender, Party::Recipient, Party::Coordinator] {
            assert!(allowed(&r, party).is_empty());
        }
        let cancelled = referral(DeliveryState::Sent, R::Cancelled, C::NotUpdated);
        assert!(allowed(&cancelled, Party::Recipient).is_empty());
    }

    #[test]
    fn a_confirmed_not_connected_referral_waiting_for_a_next_step_offers_only_the_close() {
        let mut r = referral(DeliveryState::Delivered, R::Accepted, C::NotConnected);
        r.confirmed_at = Some(Timestamp::default());
        for party in [Party::Sender, Party::Recipient, Party::Coordinator] {
            assert!(allowed(&r, party).is_empty());
        }
        r.next_step_needed = true;
        assert_eq!(allowed(&r, Party::Sender), [A::CloseWithReason]);
        assert_eq!(allowed(&r, Party::Coordinator), [A::CloseWithReason]);
        assert!(allowed(&r, Party::Recipient).is_empty());
        assert!(allowed(&r, Party::Other).is_empty());
        assert_eq!(parse("close_with_reason"), Some(A::CloseWithReason));
    }

    #[test]
    fn the_caller_is_recipient_sender_or_coordinator_in_that_order() {
        let r = referral(DeliveryState::Sent, R::Requested, C::NotUpdated);
        let agency = |id: &str, coordinates: &[&str]| Agency {
            agency_id: id.into(),
            coordinator_of: coordinates.iter().map(|c| (*c).to_owned()).collect(),
            ..Agency::default()
        };
        assert_eq!(
            party(&r, &agency("aoba-hospital", &[]), Some("141178")),
            Party::Recipient
        );
        assert_eq!(
            party(&r, &agency("aoba-kodomo", &["141178"]), Some("141178")),
            Party::Sender
        );
        assert_eq!(
            party(&r, &agency("city-hq", &["141178"]), Some("141178")),
            Party::Coordinator
        );
        assert_eq!(
            party(&r, &agency("city-hq", &["131016"]), Some("141178")),
            Party::Other
        );
        assert_eq!(parse("confirm"), Some(A::Confirm));
        assert_eq!(parse("nonsense"), None);
    }
}
