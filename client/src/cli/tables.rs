//! The tables and one-line summaries people see for cases, consents, referrals, referral events,
//! follow-ups and the event feed. Pure functions of the hub's records, so they are tested alone.

use tsunagu_client::render::{
    Table, deadline_term, deadline_term_short, format_optional_japan_time, label, purpose_label,
    sanitise_cell, short_id,
};
use tsunagu_proto::v1::{
    Case, ConnectionState, Consent, FeedEvent, FollowUpItem, FollowUpStatus, NotConnectedReason,
    Participant, Referral, ReferralEvent, ReferralEventKind, Staff, TimerKind,
};

/// Shown where the hub hides an agency from the reader (the reporter of a 通告).
pub const HIDDEN: &str = "(hidden)";

/// `from → to`, with the sender hidden when the hub hides it.
pub fn from_to(referral: &Referral) -> String {
    let from = if referral.from_agency.is_empty() {
        HIDDEN
    } else {
        &referral.from_agency
    };
    format!("{from} → {}", referral.to_agency)
}

/// The connection layer with the attempts, the not-connected reason and the confirmation.
pub fn connection_cell(referral: &Referral) -> String {
    let mut cell = label(referral.connection());
    if referral.connection() == ConnectionState::ContactAttempted || referral.contact_attempts > 1 {
        cell.push_str(&format!(" ×{}", referral.contact_attempts));
    }
    if referral.not_connected_reason() != NotConnectedReason::Unspecified {
        cell.push_str(&format!(": {}", label(referral.not_connected_reason())));
    }
    if referral.confirmed_at.is_some() {
        cell.push_str(", confirmed (確認済)");
    }
    cell
}

/// The response layer with its reason code, if any.
pub fn response_cell(referral: &Referral) -> String {
    let mut cell = label(referral.response());
    if !referral.response_reason.is_empty() {
        cell.push_str(&format!(": {}", referral.response_reason));
    }
    cell
}

/// The timers that passed, as codes ("respond_by, connect_by"), or "-".
pub fn overdue_cell(referral: &Referral) -> String {
    let timers: Vec<&str> = referral.overdue().map(timer_code).collect();
    if timers.is_empty() {
        "-".to_owned()
    } else {
        timers.join(", ")
    }
}

fn timer_code(timer: TimerKind) -> &'static str {
    use tsunagu_client::render::Coded;
    timer.code()
}

/// The inbox table with a BODY column: whether this agency's age identities open each body.
pub fn referrals_table_with_bodies(
    referrals: &[Referral],
    body: impl Fn(&Referral) -> String,
) -> Table {
    let mut table = Table::new([
        "ID",
        "CASE",
        "FROM/TO",
        "PURPOSE",
        "URGENCY",
        "DELIVERY",
        "RESPONSE",
        "CONNECTION",
        "OVERDUE",
        "BODY",
    ]);
    for r in referrals {
        table.row([
            short_id(&r.referral_id).to_owned(),
            short_id(&r.case_id).to_owned(),
            from_to(r),
            purpose_label(&r.purpose),
            label(r.urgency()),
            label(r.delivery()),
            response_cell(r),
            connection_cell(r),
            overdue_cell(r),
            body(r),
        ]);
    }
    table
}

/// The inbox table: one referral per row.
pub fn referrals_table(referrals: &[Referral]) -> Table {
    let mut table = Table::new([
        "ID",
        "CASE",
        "FROM/TO",
        "PURPOSE",
        "URGENCY",
        "DELIVERY",
        "RESPONSE",
        "CONNECTION",
        "OVERDUE",
    ]);
    for r in referrals {
        table.row([
            short_id(&r.referral_id).to_owned(),
            short_id(&r.case_id).to_owned(),
            from_to(r),
            purpose_label(&r.purpose),
            label(r.urgency()),
            label(r.delivery()),
            response_cell(r),
            connection_cell(r),
            overdue_cell(r),
        ]);
    }
    table
}

/// The worklist table: one follow-up item per row, due times in Japan time.
pub fn followups_table(items: &[FollowUpItem]) -> Table {
    let mut table = Table::new([
        "STATUS",
        "REFERRAL",
        "CASE",
        "PURPOSE",
        "TIMER",
        "DUE (JST)",
        "RESPONSIBLE",
    ]);
    for item in items {
        let referral = item.referral.clone().unwrap_or_default();
        let responsible = if item.responsible_agency.is_empty() {
            "-".to_owned()
        } else {
            item.responsible_agency.clone()
        };
        let mut status = label(item.status());
        if item.escalated {
            status.push_str(", escalated (調整機関へ通知)");
        }
        table.row([
            status,
            short_id(&referral.referral_id).to_owned(),
            short_id(&referral.case_id).to_owned(),
            purpose_label(&referral.purpose),
            label(item.timer()),
            due_cell(item, &referral),
            responsible,
        ]);
    }
    table
}

/// When a follow-up is due, and in which calendar (「2営業日」「24時間」) when the hub recorded it.
fn due_cell(item: &FollowUpItem, referral: &Referral) -> String {
    let at = format_optional_japan_time(item.due_at.as_ref());
    let term = deadline_term(referral.deadline_terms.as_ref(), item.timer());
    match deadline_term_short(term.as_ref()) {
        Some(term) => format!("{at} ({term})"),
        None => at,
    }
}

/// Whether a follow-up item is a share made without consent, awaiting the coordinator's review.
pub fn is_basis_review(item: &FollowUpItem) -> bool {
    item.status() == FollowUpStatus::BasisReview
}

/// What a referral event did, in one phrase: "accept (受入)", "overdue: respond_by (回答期限)".
pub fn event_summary(event: &ReferralEvent) -> String {
    let mut text = match event.kind() {
        ReferralEventKind::Sent => label(ReferralEventKind::Sent),
        ReferralEventKind::Action => label(event.action()),
        ReferralEventKind::Escalated => format!("overdue: {}", label(event.timer())),
        ReferralEventKind::Unspecified => "-".to_owned(),
    };
    if !event.reason_code.is_empty() {
        text.push_str(&format!(" [{}]", event.reason_code));
    }
    if event.not_connected_reason() != NotConnectedReason::Unspecified {
        text.push_str(&format!(": {}", label(event.not_connected_reason())));
    }
    text
}

/// The three layers after an event, as codes: "delivered / accepted / contact_attempted".
pub fn layers_after(event: &ReferralEvent) -> String {
    use tsunagu_client::render::Coded;
    let codes = [
        event.delivery().code(),
        event.response().code(),
        event.connection().code(),
    ];
    if codes.iter().all(|c| *c == "unspecified") {
        return "-".to_owned();
    }
    codes
        .iter()
        .map(|c| if *c == "unspecified" { "-" } else { c })
        .collect::<Vec<_>>()
        .join(" / ")
}

/// `name (role)`, or "-".
pub fn staff_cell(staff: Option<&Staff>) -> String {
    match staff {
        Some(s) if !s.name.is_empty() || !s.role.is_empty() => format!("{} ({})", s.name, s.role),
        _ => "-".to_owned(),
    }
}

/// The actor of an event: the agency, "hub" for an escalation, or hidden.
pub fn actor_cell(event: &ReferralEvent) -> String {
    match (event.kind(), event.actor_agency.as_str()) {
        (ReferralEventKind::Escalated, "") => "hub".to_owned(),
        (_, "") => HIDDEN.to_owned(),
        (_, agency) => agency.to_owned(),
    }
}

/// The timeline of one referral; `note_status` says what to show for each event's sealed note.
pub fn timeline_table(
    events: &[ReferralEvent],
    note_status: impl Fn(&ReferralEvent) -> String,
) -> Table {
    let mut table = Table::new([
        "WHEN (JST)",
        "ACTOR",
        "STAFF",
        "EVENT",
        "LAYERS AFTER",
        "NOTE",
    ]);
    for event in events {
        let when = event.occurred_at.as_ref().or(event.recorded_at.as_ref());
        table.row([
            format_optional_japan_time(when),
            actor_cell(event),
            staff_cell(event.actor_staff.as_ref()),
            event_summary(event),
            layers_after(event),
            note_status(event),
        ]);
    }
    table
}

/// The cases table.
pub fn cases_table(cases: &[Case]) -> Table {
    let mut table = Table::new([
        "CASE",
        "MUNICIPALITY",
        "CATEGORY",
        "STAGE",
        "OPENED BY",
        "OPENED (JST)",
        "PARTICIPANTS",
        "要対協",
    ]);
    for c in cases {
        table.row([
            short_id(&c.case_id).to_owned(),
            c.municipality.clone(),
            label(c.category()),
            label(c.stage()),
            c.opened_by.clone(),
            format_optional_japan_time(c.opened_at.as_ref()),
            c.participants.len().to_string(),
            if c.council_registered {
                "registered (登録)".to_owned()
            } else {
                "-".to_owned()
            },
        ]);
    }
    table
}

/// The participants of a case.
pub fn participants_table(participants: &[Participant]) -> Table {
    let mut table = Table::new(["AGENCY", "KIND", "NAME", "SINCE (JST)"]);
    for p in participants {
        table.row([
            p.agency_id.clone(),
            p.kind.clone(),
            p.display_name.clone(),
            format_optional_japan_time(p.since.as_ref()),
        ]);
    }
    table
}

/// The consent records of a case.
pub fn consents_table(consents: &[Consent]) -> Table {
    let mut table = Table::new([
        "CONSENT",
        "GIVEN BY",
        "METHOD",
        "RECIPIENTS",
        "PURPOSES",
        "VALID",
        "RECORDED BY",
        "STATUS",
    ]);
    for c in consents {
        let scope = c.scope.clone().unwrap_or_default();
        let recipients: Vec<String> = scope
            .recipient_agencies
            .iter()
            .cloned()
            .chain(scope.recipient_kinds.iter().map(|k| format!("kind:{k}")))
            .collect();
        let purposes: Vec<String> = scope.purposes.iter().map(|p| purpose_label(p)).collect();
        let until = if c.valid_until.is_empty() {
            "…"
        } else {
            &c.valid_until
        };
        let status = match &c.withdrawn_at {
            Some(at) => format!("withdrawn (撤回) {}", format_optional_japan_time(Some(at))),
            None => "active (有効)".to_owned(),
        };
        table.row([
            short_id(&c.consent_id).to_owned(),
            label(c.given_by()),
            label(c.method()),
            tsunagu_client::render::join_or_dash(&recipients),
            tsunagu_client::render::join_or_dash(&purposes),
            format!("{} – {until}", c.valid_from),
            c.recorded_by_agency.clone(),
            status,
        ]);
    }
    table
}

/// What a feed event is about, after its kind: the referral event's summary and actor.
pub fn feed_detail(event: &FeedEvent) -> String {
    match &event.referral_event {
        Some(re) => {
            let actor = actor_cell(re);
            format!("{} by {actor}", event_summary(re))
        }
        None => "-".to_owned(),
    }
}

/// The subject of a feed event: "referral 1a2b3c4d", "note 5e6f7a8b" or "-".
fn feed_subject(event: &FeedEvent) -> String {
    if !event.referral_id.is_empty() {
        format!("referral {}", short_id(&event.referral_id))
    } else if !event.note_id.is_empty() {
        format!("note {}", short_id(&event.note_id))
    } else {
        "-".to_owned()
    }
}

/// The event feed table.
pub fn feed_table(events: &[FeedEvent]) -> Table {
    let mut table = Table::new([
        "CURSOR",
        "RECORDED (JST)",
        "KIND",
        "CASE",
        "ABOUT",
        "DETAIL",
    ]);
    for e in events {
        table.row([
            e.cursor.to_string(),
            format_optional_japan_time(e.recorded_at.as_ref()),
            label(e.kind()),
            short_id(&e.case_id).to_owned(),
            feed_subject(e),
            feed_detail(e),
        ]);
    }
    table
}

/// One line per feed event, for `inbox --watch`.
pub fn feed_line(event: &FeedEvent) -> String {
    sanitise_cell(&format!(
        "#{}  {}  {}  case {}  {}  {}",
        event.cursor,
        format_optional_japan_time(event.recorded_at.as_ref()),
        label(event.kind()),
        short_id(&event.case_id),
        feed_subject(event),
        feed_detail(event),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::Timestamp;
    use tsunagu_proto::v1::{DeliveryState, FeedEventKind, ReferralAction, ResponseState, Urgency};

    fn referral() -> Referral {
        Referral {
            referral_id: "0190f3a2-7b1c-7def-8000-000000000001".into(),
            case_id: "0190f000-0000-7000-8000-00000000000c".into(),
            from_agency: "aoba-kodomo".into(),
            to_agency: "aoba-hiroba".into(),
            purpose: "parenting_support".into(),
            urgency: Urgency::Routine.into(),
            delivery: DeliveryState::Delivered.into(),
            response: ResponseState::Accepted.into(),
            connection: ConnectionState::NotConnected.into(),
            contact_attempts: 2,
            not_connected_reason: NotConnectedReason::CouldNotContact.into(),
            overdue: vec![TimerKind::ConfirmBy.into()],
            ..Referral::default()
        }
    }

    #[test]
    fn the_inbox_table_shows_the_three_layers_in_words() {
        let text = referrals_table(&[referral()]).to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].starts_with("ID        CASE      FROM/TO"),
            "{}",
            lines[0]
        );
        let row = lines[1];
        assert!(
            row.starts_with("00000001  0000000c  aoba-kodomo → aoba-hiroba"),
            "{row}"
        );
        assert!(row.contains("parenting_support (子育て支援)"), "{row}");
        assert!(row.contains("routine (通常)"), "{row}");
        assert!(row.contains("delivered (受信確認済)"), "{row}");
        assert!(row.contains("accepted (受入)"), "{row}");
        assert!(
            row.contains("not_connected (つながらなかった) ×2: could_not_contact (連絡がとれない)"),
            "{row}"
        );
        assert!(row.ends_with("confirm_by"), "{row}");
    }

    #[test]
    fn a_hidden_sender_is_shown_as_hidden() {
        let mut r = referral();
        r.from_agency.clear();
        assert_eq!(from_to(&r), "(hidden) → aoba-hiroba");
    }

    #[test]
    fn a_confirmed_handoff_says_so_in_the_connection_cell() {
        let mut r = referral();
        r.connection = ConnectionState::Connected.into();
        r.not_connected_reason = 0;
        r.contact_attempts = 1;
        r.confirmed_at = Some(Timestamp::default());
        assert_eq!(
            connection_cell(&r),
            "connected (つながった), confirmed (確認済)"
        );
    }

    #[test]
    fn the_followup_table_shows_due_times_in_japan_time() {
        let item = FollowUpItem {
            status: FollowUpStatus::Overdue.into(),
            referral: Some(referral()),
            timer: TimerKind::ConfirmBy.into(),
            // 2025-04-01T00:30:00Z
            due_at: Some(Timestamp {
                seconds: 1_743_467_400,
                nanos: 0,
            }),
            responsible_agency: "aoba-kodomo".into(),
            justification: String::new(),
            escalated: false,
        };
        let text = followups_table(&[item]).to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "STATUS              REFERRAL  CASE      PURPOSE                         TIMER                  DUE (JST)         RESPONSIBLE"
        );
        assert_eq!(
            lines[1],
            "overdue (期限超過)  00000001  0000000c  parenting_support (子育て支援)  confirm_by (確認期限)  2025-04-01 09:30  aoba-kodomo"
        );
    }

    #[test]
    fn the_followup_table_says_which_calendar_a_due_time_counts_in() {
        use tsunagu_proto::v1::{DeadlineTerm, DeadlineTerms, DeadlineUnit};
        let mut referral = referral();
        referral.deadline_terms = Some(DeadlineTerms {
            respond_by: Some(DeadlineTerm {
                unit: DeadlineUnit::BusinessDays.into(),
                amount: 2,
            }),
            ..DeadlineTerms::default()
        });
        let item = FollowUpItem {
            status: FollowUpStatus::DueSoon.into(),
            referral: Some(referral),
            timer: TimerKind::RespondBy.into(),
            // 2027-01-05T08:00:00Z = 17:00 JST
            due_at: Some(Timestamp {
                seconds: 1_799_136_000,
                nanos: 0,
            }),
            responsible_agency: "aoba-hospital".into(),
            justification: String::new(),
            escalated: false,
        };
        let text = followups_table(&[item]).to_string();
        assert!(text.contains("2027-01-05 17:00 (2営業日)"), "{text}");
    }

    #[test]
    fn events_read_as_what_happened() {
        let accept = ReferralEvent {
            kind: ReferralEventKind::Action.into(),
            action: ReferralAction::Accept.into(),
            actor_agency: "aoba-hospital".into(),
            ..ReferralEvent::default()
        };
        assert_eq!(event_summary(&accept), "accept (受入)");
        let escalated = ReferralEvent {
            kind: ReferralEventKind::Escalated.into(),
            timer: TimerKind::RespondBy.into(),
            ..ReferralEvent::default()
        };
        assert_eq!(event_summary(&escalated), "overdue: respond_by (回答期限)");
        assert_eq!(actor_cell(&escalated), "hub");
        let not_connected = ReferralEvent {
            kind: ReferralEventKind::Action.into(),
            action: ReferralAction::ReportNotConnected.into(),
            not_connected_reason: NotConnectedReason::Moved.into(),
            ..ReferralEvent::default()
        };
        assert_eq!(
            event_summary(&not_connected),
            "report_not_connected (つながらなかった報告): moved (転居)"
        );
    }

    #[test]
    fn a_feed_event_fits_on_one_line() {
        let event = FeedEvent {
            cursor: 7,
            event_id: "e".into(),
            kind: FeedEventKind::ReferralReceived.into(),
            case_id: "0190f000-0000-7000-8000-00000000000c".into(),
            referral_id: "0190f3a2-7b1c-7def-8000-000000000001".into(),
            note_id: String::new(),
            recorded_at: None,
            referral_event: Some(ReferralEvent {
                kind: ReferralEventKind::Sent.into(),
                actor_agency: "aoba-kodomo\nforged".into(),
                ..ReferralEvent::default()
            }),
        };
        let line = feed_line(&event);
        assert!(!line.contains('\n'));
        assert_eq!(
            line,
            "#7  -  referral_received (紹介受信)  case 0000000c  referral 00000001  sent (紹介送信) by aoba-kodomo forged"
        );
    }

    #[test]
    fn a_withdrawn_consent_is_marked_in_the_table() {
        let consent = Consent {
            consent_id: "0190f3a2-0000-7000-8000-000000000009".into(),
            given_by: tsunagu_proto::v1::ConsentGiver::Guardian.into(),
            method: tsunagu_proto::v1::ConsentMethod::Written.into(),
            scope: Some(tsunagu_proto::v1::ConsentScope {
                recipient_agencies: vec!["aoba-hospital".into()],
                recipient_kinds: vec!["support_hub".into()],
                purposes: vec!["postnatal_care".into()],
            }),
            valid_from: "2026-04-01".into(),
            withdrawn_at: Some(Timestamp {
                seconds: 1_743_467_400,
                nanos: 0,
            }),
            ..Consent::default()
        };
        let text = consents_table(&[consent]).to_string();
        let row = text.lines().nth(1).unwrap_or_default();
        assert!(row.contains("guardian (保護者)"), "{row}");
        assert!(row.contains("aoba-hospital, kind:support_hub"), "{row}");
        assert!(row.contains("2026-04-01 – …"), "{row}");
        assert!(row.contains("withdrawn (撤回) 2025-04-01 09:30"), "{row}");
    }
}
