//! The pack as people read it: every sealed field opened with the reader's age identities (or
//! marked as unreadable), every code turned into its Japanese word, every agency id into its
//! display name, grouped under the 個別ケース検討会議 headings. Both outputs render this; neither
//! looks at the hub's messages again.
//!
//! Nothing here can fail: a field that does not open, a code this client does not know or a
//! timestamp out of range shows as a marked value, never as an error, so that one damaged item
//! never keeps a council from its papers.

use std::collections::HashMap;

use prost_types::Timestamp;
use tsunagu_proto::v1 as pb;
use tsunagu_proto::v1::thread_entry::Entry;

use super::opener::{Content, Opener};
use crate::render::{Coded, format_japan_time, purpose_japanese, short_id};

/// Shown for an agency the hub hides from the reader (the reporter of a 通告).
pub const HIDDEN_AGENCY: &str = "〔非開示〕";
/// Shown for a value that is not set.
pub const NOT_SET: &str = "—";
/// Shown for a sealed field, plan or list with nothing in it.
pub const NOTHING_RECORDED: &str = "（記録なし）";
/// Marks an agency the hub attests: the agency of the mTLS certificate that made the call.
pub const ATTESTED: &str = "〔送信元確認済〕";

/// One whole pack, ready to render.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackView {
    pub kind: pb::MeetingKind,
    pub meeting_id: String,
    /// "横浜市青葉区（141178）", or the bare code when the hub has no name for it.
    pub municipality: String,
    /// YYYY-MM-DD
    pub held_on: String,
    /// When the hub built the pack, Japan time: overdue timers are judged at this instant.
    pub generated_at: String,
    /// The coordinator that scheduled the meeting.
    pub scheduled_by: String,
    /// The agency whose keys opened the pack, when the caller says.
    pub reader: Option<String>,
    pub summary: SummaryView,
    pub cases: Vec<CaseView>,
    /// How many sealed fields could not be opened with the reader's identities.
    pub unreadable: usize,
}

impl PackView {
    /// "要保護児童対策地域協議会 実務者会議 資料".
    pub fn title(&self) -> String {
        format!("要保護児童対策地域協議会 {} 資料", self.kind.japanese())
    }

    /// Whether the pack carries the 進行管理台帳 (the table of every case): a 実務者会議's does.
    pub fn shows_ledger(&self) -> bool {
        self.kind == pb::MeetingKind::Practitioners
    }
}

/// The pack's summary block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SummaryView {
    pub cases: u32,
    pub requires_protection: u32,
    pub requires_support: u32,
    pub specific_expectant_mothers: u32,
    pub overdue_handoffs: u32,
    pub not_connected_handoffs: u32,
    pub reviews_past_due: u32,
    pub cases_needing_decision: u32,
    /// (number on the agenda, short case id, why) of every case needing a decision.
    pub needing_decision: Vec<(usize, String, String)>,
}

/// The registration of a case as the council sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrationView {
    pub registered_on: String,
    pub registered_by: String,
    /// 登録中, 終結 (reason), 移管 → code.
    pub status: String,
    pub justification: String,
    pub review_interval_days: u32,
    pub last_reviewed_on: String,
    pub next_review_on: String,
    /// 主担当機関, by display name.
    pub lead_agency: String,
    /// キーパーソン.
    pub key_person: Content,
}

/// One referral of a case, with its three layers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReferralRow {
    pub short_id: String,
    pub from: String,
    pub to: String,
    pub purpose: String,
    pub urgency: String,
    pub basis: String,
    pub sent_at: String,
    pub delivery: String,
    pub response: String,
    pub connection: String,
    /// "確認済 (YYYY-MM-DD HH:MM)" or "未確認".
    pub confirmed: String,
    /// Each passed timer with its deadline: "受信期限（2026-04-02 09:30）".
    pub overdue: Vec<String>,
    /// Whether it is still open (not confirmed, declined or cancelled).
    pub open: bool,
}

/// One entry of the timeline since the last review.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineEntry {
    /// Japan time, YYYY-MM-DD HH:MM.
    pub at: String,
    /// Who: a display name, [`HIDDEN_AGENCY`] or the hub's timer.
    pub actor: String,
    /// Whether the hub attests the actor (the agency of the mTLS certificate that made the call).
    pub attested: bool,
    /// What happened, in one line.
    pub what: String,
    /// The sealed texts that go with it ("紹介本文", "メモ", "本文"), opened or marked.
    pub contents: Vec<(&'static str, Content)>,
}

/// A council decision on a case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecisionView {
    pub held_on: String,
    /// 継続, 終結（理由）, 移管（→ code）.
    pub outcome: String,
    pub lead_agency: String,
    pub next_review_on: String,
    /// "青葉区こども家庭センター（保健師 山田）".
    pub recorded_by: String,
    /// 役割分担 and 支援計画.
    pub plan: Content,
}

/// One case on the agenda, under the 個別ケース検討会議 headings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseView {
    /// Place on the agenda, from 1.
    pub number: usize,
    pub case_id: String,
    /// The last 8 characters of the id, as the CLI's tables show it.
    pub short_id: String,
    pub category: String,
    pub stage: String,
    /// The sealed case header (names, birth dates, address).
    pub header: Content,
    pub registration: RegistrationView,
    pub participants: Vec<String>,
    /// Why the case needs a decision, in Japanese; empty when it does not.
    pub triggers: Vec<String>,
    pub referrals: Vec<ReferralRow>,
    pub open_referrals: usize,
    pub overdue_handoffs: usize,
    /// Escalations (timers that passed) recorded since the last review.
    pub escalations: Vec<String>,
    /// YYYY-MM-DD: where the timeline starts.
    pub review_period_start: String,
    pub timeline: Vec<TimelineEntry>,
    /// This meeting's decision, once recorded.
    pub decision: Option<DecisionView>,
    /// Earlier meetings' decisions, newest first.
    pub previous_decisions: Vec<DecisionView>,
    /// 役割分担, from the latest decision's plan.
    pub roles: Content,
    /// 支援計画, from the latest decision's plan, when the plan has a part of that name; `None`
    /// when the plan is one text (shown under 役割分担).
    pub support_plan: Option<Content>,
    /// Which decision the plan comes from: "2026-04-08 の会議（本会議）".
    pub plan_source: Option<String>,
}

/// The display name of an agency, or its id when the pack has no name for it.
struct Names<'a>(&'a HashMap<String, String>);

impl Names<'_> {
    fn of(&self, id: &str) -> String {
        if id.is_empty() {
            return HIDDEN_AGENCY.to_owned();
        }
        match self.0.get(id) {
            Some(name) if !name.trim().is_empty() => name.clone(),
            _ => id.to_owned(),
        }
    }
}

fn time(at: Option<&Timestamp>) -> String {
    at.map_or_else(|| NOT_SET.to_owned(), format_japan_time)
}

fn or_not_set(text: &str) -> String {
    if text.trim().is_empty() {
        NOT_SET.to_owned()
    } else {
        text.to_owned()
    }
}

fn purpose(code: &str) -> String {
    purpose_japanese(code).map_or_else(|| or_not_set(code), str::to_owned)
}

/// The Japanese word of a contract value; [`NOT_SET`] for the zero value.
fn word<T: Coded>(value: T) -> String {
    match value.code() {
        "unspecified" => NOT_SET.to_owned(),
        _ => value.japanese().to_owned(),
    }
}

/// Every sealed field of a pack, to open them all at once (in parallel) before building.
fn sealed_fields(pack: &pb::GetMeetingPackResponse) -> Vec<&pb::Sealed> {
    let mut fields = Vec::new();
    for case in &pack.cases {
        fields.extend(case.case.as_ref().and_then(|c| c.header.as_ref()));
        fields.extend(
            case.registration
                .as_ref()
                .and_then(|r| r.key_person.as_ref()),
        );
        let sent_in_period: Vec<&str> = case
            .timeline
            .iter()
            .filter_map(|entry| match &entry.entry {
                Some(Entry::ReferralEvent(e)) if e.kind() == pb::ReferralEventKind::Sent => {
                    Some(e.referral_id.as_str())
                }
                _ => None,
            })
            .collect();
        fields.extend(
            case.referrals
                .iter()
                .filter(|r| sent_in_period.contains(&r.referral_id.as_str()))
                .filter_map(|r| r.body.as_ref()),
        );
        for entry in &case.timeline {
            match &entry.entry {
                Some(Entry::ReferralEvent(e)) => fields.extend(e.note.as_ref()),
                Some(Entry::Note(n)) => fields.extend(n.body.as_ref()),
                Some(Entry::Decision(d)) => fields.extend(d.plan.as_ref()),
                Some(Entry::Reseal(_) | Entry::Transfer(_)) | None => {}
            }
        }
        for decision in case.decision.iter().chain(&case.previous_decisions) {
            fields.extend(decision.plan.as_ref());
        }
    }
    fields
}

/// Builds the view of a pack, opening every sealed field with `opener`.
pub fn build(pack: &pb::GetMeetingPackResponse, opener: &Opener<'_>) -> PackView {
    let opened = opener.open_many(&sealed_fields(pack));
    let open = |sealed: Option<&pb::Sealed>| -> Content {
        match sealed {
            Some(s) if !s.age.is_empty() => opened
                .get(&(s as *const pb::Sealed as usize))
                .cloned()
                .unwrap_or_else(|| opener.open(Some(s))),
            _ => Content::Absent,
        }
    };
    let names = Names(&pack.agency_names);
    let meeting = pack.meeting.clone().unwrap_or_default();
    let municipality = if pack.municipality_name.trim().is_empty() {
        or_not_set(&meeting.municipality)
    } else {
        format!(
            "{}（{}）",
            pack.municipality_name.trim(),
            meeting.municipality
        )
    };
    let cases: Vec<CaseView> = pack
        .cases
        .iter()
        .enumerate()
        .map(|(i, case)| case_view(i + 1, case, &names, &open))
        .collect();
    let unreadable = cases.iter().map(count_unreadable).sum();
    let s = pack.summary.unwrap_or_default();
    let needing_decision = cases
        .iter()
        .filter(|c| !c.triggers.is_empty())
        .map(|c| (c.number, c.short_id.clone(), c.triggers.join("、")))
        .collect();
    PackView {
        kind: meeting.kind(),
        meeting_id: meeting.meeting_id.clone(),
        municipality,
        held_on: or_not_set(&meeting.held_on),
        generated_at: time(pack.generated_at.as_ref()),
        scheduled_by: names.of(&meeting.scheduled_by),
        reader: None,
        summary: SummaryView {
            cases: s.cases,
            requires_protection: s.requires_protection,
            requires_support: s.requires_support,
            specific_expectant_mothers: s.specific_expectant_mothers,
            overdue_handoffs: s.overdue_handoffs,
            not_connected_handoffs: s.not_connected_handoffs,
            reviews_past_due: s.reviews_past_due,
            cases_needing_decision: s.cases_needing_decision,
            needing_decision,
        },
        cases,
        unreadable,
    }
}

fn count_unreadable(case: &CaseView) -> usize {
    let mut contents: Vec<&Content> = vec![&case.header, &case.registration.key_person];
    contents.extend(
        case.timeline
            .iter()
            .flat_map(|e| e.contents.iter().map(|(_, c)| c)),
    );
    contents.extend(
        case.decision
            .iter()
            .chain(&case.previous_decisions)
            .map(|d| &d.plan),
    );
    contents
        .into_iter()
        .filter(|c| matches!(c, Content::Unreadable))
        .count()
}

fn registration_view(
    registration: &pb::Registration,
    names: &Names<'_>,
    open: &impl Fn(Option<&pb::Sealed>) -> Content,
) -> RegistrationView {
    let r = registration;
    let status = match r.status() {
        pb::RegistrationStatus::Closed if !r.close_reason.is_empty() => {
            format!("終結（{}、{}）", r.close_reason, or_not_set(&r.ended_on))
        }
        pb::RegistrationStatus::Transferred => {
            format!(
                "移管（→ {}、{}）",
                r.transferred_to,
                or_not_set(&r.ended_on)
            )
        }
        other => word(other),
    };
    RegistrationView {
        registered_on: or_not_set(&r.registered_on),
        registered_by: names.of(&r.registered_by),
        status,
        justification: or_not_set(&r.justification),
        review_interval_days: r.review_interval_days,
        last_reviewed_on: if r.last_reviewed_on.is_empty() {
            "（初回）".to_owned()
        } else {
            r.last_reviewed_on.clone()
        },
        next_review_on: or_not_set(&r.next_review_on),
        lead_agency: names.of(&r.lead_agency),
        key_person: open(r.key_person.as_ref()),
    }
}

/// A timer's deadline on a referral.
fn deadline(referral: &pb::Referral, timer: pb::TimerKind) -> Option<Timestamp> {
    let d = referral.deadlines.unwrap_or_default();
    match timer {
        pb::TimerKind::DeliverBy => d.deliver_by,
        pb::TimerKind::RespondBy => d.respond_by,
        pb::TimerKind::ConnectBy => d.connect_by,
        pb::TimerKind::ConfirmBy => d.confirm_by,
        pb::TimerKind::Unspecified => None,
    }
}

fn referral_row(referral: &pb::Referral, names: &Names<'_>) -> ReferralRow {
    let r = referral;
    let mut response = word(r.response());
    if !r.response_reason.is_empty() {
        response.push_str(&format!("（{}）", r.response_reason));
    }
    let mut connection = word(r.connection());
    if r.contact_attempts > 0 {
        connection.push_str(&format!("（連絡{}回）", r.contact_attempts));
    }
    if r.not_connected_reason() != pb::NotConnectedReason::Unspecified {
        connection.push_str(&format!("：{}", word(r.not_connected_reason())));
    }
    let mut basis = word(r.basis());
    if r.consent_withdrawn {
        basis.push_str("（同意撤回済）");
    }
    let confirmed = match &r.confirmed_at {
        Some(at) => format!("確認済（{}）", format_japan_time(at)),
        None => "未確認".to_owned(),
    };
    let overdue = r
        .overdue()
        .map(|timer| format!("{}（{}）", word(timer), time(deadline(r, timer).as_ref())))
        .collect();
    let closed = r.confirmed_at.is_some()
        || matches!(
            r.response(),
            pb::ResponseState::Declined | pb::ResponseState::Cancelled
        );
    ReferralRow {
        short_id: short_id(&r.referral_id).to_owned(),
        from: names.of(&r.from_agency),
        to: names.of(&r.to_agency),
        purpose: purpose(&r.purpose),
        urgency: word(r.urgency()),
        basis,
        sent_at: time(r.sent_at.as_ref()),
        delivery: word(r.delivery()),
        response,
        connection,
        confirmed,
        overdue,
        open: !closed,
    }
}

fn decision_view(
    decision: &pb::Decision,
    names: &Names<'_>,
    open: &impl Fn(Option<&pb::Sealed>) -> Content,
) -> DecisionView {
    let d = decision;
    let outcome = match d.outcome() {
        pb::DecisionOutcome::Close => format!("終結（{}）", or_not_set(&d.close_reason)),
        pb::DecisionOutcome::Transfer if d.close_reason.is_empty() => {
            format!("移管（→ {}）", d.transfer_to)
        }
        pb::DecisionOutcome::Transfer => format!("移管（→ {}、{}）", d.transfer_to, d.close_reason),
        other => word(other),
    };
    let staff = d
        .staff
        .as_ref()
        .map(|s| s.name.trim())
        .filter(|n| !n.is_empty());
    let recorded_by = match staff {
        Some(staff) => format!("{}（{staff}）", names.of(&d.decided_by)),
        None => names.of(&d.decided_by),
    };
    DecisionView {
        held_on: or_not_set(&d.held_on),
        outcome,
        lead_agency: names.of(&d.lead_agency),
        next_review_on: or_not_set(&d.next_review_on),
        recorded_by,
        plan: open(d.plan.as_ref()),
    }
}

/// The referral an event is about, in a few words: "紹介 9c41e7d2（産後ケア: A → B）".
fn referral_phrase(
    referral_id: &str,
    referral: Option<&pb::Referral>,
    names: &Names<'_>,
) -> String {
    match referral {
        Some(r) => format!(
            "紹介 {}（{}：{} → {}）",
            short_id(referral_id),
            purpose(&r.purpose),
            names.of(&r.from_agency),
            names.of(&r.to_agency)
        ),
        None => format!("紹介 {}", short_id(referral_id)),
    }
}

fn event_entry(
    event: &pb::ReferralEvent,
    referral: Option<&pb::Referral>,
    names: &Names<'_>,
    open: &impl Fn(Option<&pb::Sealed>) -> Content,
) -> TimelineEntry {
    let about = referral_phrase(&event.referral_id, referral, names);
    let mut contents = Vec::new();
    let (actor, attested, what) = match event.kind() {
        pb::ReferralEventKind::Escalated => (
            "ハブ（期限監視）".to_owned(),
            false,
            format!("期限超過：{}　{about}", word(event.timer())),
        ),
        kind => {
            let mut what = if kind == pb::ReferralEventKind::Sent {
                let urgency = referral.map_or_else(|| NOT_SET.to_owned(), |r| word(r.urgency()));
                format!("紹介送信（{urgency}）　{about}")
            } else {
                format!("{}　{about}", word(event.action()))
            };
            if !event.reason_code.is_empty() {
                what.push_str(&format!("　理由: {}", event.reason_code));
            }
            if event.not_connected_reason() != pb::NotConnectedReason::Unspecified {
                what.push_str(&format!("　理由: {}", word(event.not_connected_reason())));
            }
            if kind == pb::ReferralEventKind::Sent
                && let Some(r) = referral
            {
                contents.push(("紹介本文", open(r.body.as_ref())));
            }
            let actor = names.of(&event.actor_agency);
            (actor, !event.actor_agency.is_empty(), what)
        }
    };
    let staff = event
        .actor_staff
        .as_ref()
        .map(|s| s.name.trim().to_owned())
        .filter(|n| !n.is_empty() && attested);
    let actor = match staff {
        Some(staff) => format!("{actor}（{staff}）"),
        None => actor,
    };
    contents.push(("メモ", open(event.note.as_ref())));
    contents.retain(|(_, c)| !matches!(c, Content::Absent));
    TimelineEntry {
        at: time(event.occurred_at.as_ref().or(event.recorded_at.as_ref())),
        actor,
        attested,
        what,
        contents,
    }
}

fn note_entry(
    note: &pb::Note,
    names: &Names<'_>,
    open: &impl Fn(Option<&pb::Sealed>) -> Content,
) -> TimelineEntry {
    let to: Vec<String> = note
        .recipients
        .iter()
        .map(|r| {
            let name = names.of(&r.agency_id);
            if r.acknowledged_at.is_some() {
                format!("{name}（既読）")
            } else {
                name
            }
        })
        .collect();
    let to = if to.is_empty() {
        NOT_SET.to_owned()
    } else {
        to.join("、")
    };
    let mut actor = names.of(&note.from_agency);
    if let Some(staff) = note
        .staff
        .as_ref()
        .map(|s| s.name.trim())
        .filter(|n| !n.is_empty())
        && !note.from_agency.is_empty()
    {
        actor.push_str(&format!("（{staff}）"));
    }
    let body = open(note.body.as_ref());
    TimelineEntry {
        at: time(note.sent_at.as_ref()),
        actor,
        attested: note.sender_attested && !note.from_agency.is_empty(),
        what: format!("連絡（{}）　宛先: {to}", word(note.basis())),
        contents: if matches!(body, Content::Absent) {
            Vec::new()
        } else {
            vec![("本文", body)]
        },
    }
}

/// A transfer (移管) on the timeline: where the family moved and how far the handover is.
fn transfer_entry(transfer: &pb::TransferEntry, names: &Names<'_>) -> TimelineEntry {
    let mut what = format!(
        "移管（{} → {}）: {}",
        transfer.from_municipality,
        transfer.to_municipality,
        word(transfer.state())
    );
    if !transfer.lead_agency.is_empty() {
        what.push_str(&format!(
            "　移管先の主担当機関: {}",
            names.of(&transfer.lead_agency)
        ));
    }
    TimelineEntry {
        at: time(transfer.at.as_ref()),
        actor: "調整機関（移管）".to_owned(),
        attested: false,
        what,
        contents: Vec::new(),
    }
}

/// Splits an opened plan into its 役割分担 and 支援計画 parts. A line that starts with one of
/// the two words (optionally inside 【】, ［］ or after ■ / #) begins that part; text after the
/// word and a colon stays on it. Text before the first marker belongs to 役割分担. Without a
/// 支援計画 marker the whole text is the 役割分担 and the second part is `None`.
pub fn split_plan(text: &str) -> (String, Option<String>) {
    #[derive(PartialEq)]
    enum Part {
        Roles,
        Plan,
    }
    let mut roles = Vec::new();
    let mut plan: Option<Vec<String>> = None;
    let mut current = Part::Roles;
    for line in text.lines() {
        let trimmed = line
            .trim_start()
            .trim_start_matches(['■', '#', '【', '［', '[', ' ', '　']);
        let marker = [("役割分担", Part::Roles), ("支援計画", Part::Plan)]
            .into_iter()
            .find(|(word, _)| {
                trimmed.strip_prefix(word).is_some_and(|rest| {
                    rest.is_empty() || rest.starts_with(['】', '］', ']', ':', '：', ' ', '　'])
                })
            });
        let line = match marker {
            Some((word, part)) => {
                current = part;
                let rest = trimmed[word.len()..]
                    .trim_start_matches(['】', '］', ']', ':', '：', ' ', '　'])
                    .to_owned();
                if current == Part::Plan && plan.is_none() {
                    plan = Some(Vec::new());
                }
                if rest.is_empty() {
                    continue;
                }
                rest
            }
            None => line.to_owned(),
        };
        match current {
            Part::Roles => roles.push(line),
            Part::Plan => plan.get_or_insert_with(Vec::new).push(line),
        }
    }
    let join = |lines: Vec<String>| lines.join("\n").trim().to_owned();
    (join(roles), plan.map(join))
}

fn case_view(
    number: usize,
    case: &pb::PackCase,
    names: &Names<'_>,
    open: &impl Fn(Option<&pb::Sealed>) -> Content,
) -> CaseView {
    let c = case.case.clone().unwrap_or_default();
    let registration = case.registration.clone().unwrap_or_default();
    let referrals_by_id: HashMap<&str, &pb::Referral> = case
        .referrals
        .iter()
        .map(|r| (r.referral_id.as_str(), r))
        .collect();
    let referrals: Vec<ReferralRow> = case
        .referrals
        .iter()
        .map(|r| referral_row(r, names))
        .collect();
    let mut escalations = Vec::new();
    let timeline: Vec<TimelineEntry> = case
        .timeline
        .iter()
        .filter_map(|entry| match &entry.entry {
            Some(Entry::ReferralEvent(event)) => {
                let referral = referrals_by_id.get(event.referral_id.as_str()).copied();
                let entry = event_entry(event, referral, names, open);
                if event.kind() == pb::ReferralEventKind::Escalated {
                    escalations.push(format!("{}　{}", entry.at, entry.what));
                }
                Some(entry)
            }
            Some(Entry::Note(note)) => Some(note_entry(note, names, open)),
            Some(Entry::Transfer(transfer)) => Some(transfer_entry(transfer, names)),
            // Decisions show under 援助方針, not in the timeline; re-seals change no content.
            Some(Entry::Decision(_) | Entry::Reseal(_)) | None => None,
        })
        .collect();
    let decision = case
        .decision
        .as_ref()
        .map(|d| decision_view(d, names, open));
    let previous_decisions: Vec<DecisionView> = case
        .previous_decisions
        .iter()
        .map(|d| decision_view(d, names, open))
        .collect();
    let latest = match &decision {
        Some(d) => Some((d, format!("{} の会議（本会議）", d.held_on))),
        None => previous_decisions
            .first()
            .map(|d| (d, format!("{} の会議", d.held_on))),
    };
    let (roles, support_plan, plan_source) = match latest {
        None => (Content::Absent, Some(Content::Absent), None),
        Some((d, source)) => match &d.plan {
            Content::Opened(text) => {
                let (roles, plan) = split_plan(text);
                let as_content = |t: String| {
                    if t.is_empty() {
                        Content::Absent
                    } else {
                        Content::Opened(t)
                    }
                };
                (as_content(roles), plan.map(as_content), Some(source))
            }
            other => (other.clone(), Some(other.clone()), Some(source)),
        },
    };
    let triggers = case
        .decision_triggers()
        .filter(|t| *t != pb::DecisionTrigger::Unspecified)
        .map(word)
        .collect();
    CaseView {
        number,
        case_id: c.case_id.clone(),
        short_id: short_id(&c.case_id).to_owned(),
        category: word(registration.category()),
        stage: word(c.stage()),
        header: open(c.header.as_ref()),
        registration: registration_view(&registration, names, open),
        participants: c
            .participants
            .iter()
            .map(|p| {
                if p.display_name.trim().is_empty() {
                    names.of(&p.agency_id)
                } else {
                    p.display_name.clone()
                }
            })
            .collect(),
        triggers,
        open_referrals: referrals.iter().filter(|r| r.open).count(),
        overdue_handoffs: referrals.iter().filter(|r| !r.overdue.is_empty()).count(),
        referrals,
        escalations,
        review_period_start: or_not_set(&case.review_period_start),
        timeline,
        decision,
        previous_decisions,
        roles,
        support_plan,
        plan_source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_with_both_markers_splits_into_roles_and_support_plan() {
        let (roles, plan) = split_plan(
            "役割分担: 保育園が登園を見守る\n保健師が月1回訪問\n【支援計画】\n3か月後に再評価",
        );
        assert_eq!(roles, "保育園が登園を見守る\n保健師が月1回訪問");
        assert_eq!(plan.as_deref(), Some("3か月後に再評価"));
    }

    #[test]
    fn a_plan_without_a_support_plan_marker_is_all_roles() {
        let (roles, plan) = split_plan("保育園が登園を見守る");
        assert_eq!(roles, "保育園が登園を見守る");
        assert_eq!(plan, None);
    }

    #[test]
    fn a_line_that_merely_starts_with_the_word_is_not_a_marker() {
        let (roles, plan) = split_plan("支援計画の見直しは次回");
        assert_eq!(roles, "支援計画の見直しは次回");
        assert_eq!(plan, None);
    }

    #[test]
    fn text_before_the_first_marker_counts_as_roles() {
        let (roles, plan) = split_plan("前文\n■支援計画：訪問を継続");
        assert_eq!(roles, "前文");
        assert_eq!(plan.as_deref(), Some("訪問を継続"));
    }

    #[test]
    fn an_agency_without_a_name_shows_its_id_and_a_hidden_one_is_marked() {
        let map = HashMap::from([("kodomo".to_owned(), "こども家庭センター".to_owned())]);
        let names = Names(&map);
        assert_eq!(names.of("kodomo"), "こども家庭センター");
        assert_eq!(names.of("other"), "other");
        assert_eq!(names.of(""), HIDDEN_AGENCY);
    }
}
