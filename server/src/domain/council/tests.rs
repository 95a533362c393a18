//! The 要対協 rules: registration, review schedule, endings, decisions, agendas and pack summaries.

use time::macros::date;

use super::*;
use crate::domain::basis::LegalBasisKind;
use crate::domain::referral::{Deadlines, ReferralState};
use crate::domain::{Purpose, ReferralId, Urgency};

fn aoba() -> Municipality {
    Municipality::parse("141178").unwrap()
}

fn agency(id: &str) -> AgencyId {
    AgencyId::parse(id).unwrap()
}

fn staff() -> Staff {
    Staff {
        name: "調整担当 佐藤".to_owned(),
        role: "社会福祉士".to_owned(),
    }
}

fn now() -> Timestamp {
    start_of_day(date!(2026 - 06 - 01)).plus(time::Duration::hours(10))
}

fn new_registration(registered_on: Date) -> NewRegistration {
    NewRegistration {
        case_id: CaseId::generate(),
        municipality: aoba(),
        category: CaseCategory::RequiresSupport,
        registered_on,
        lead_agency: agency("kodomo"),
        key_person: None,
        review_interval_days: None,
        next_review_on: None,
        justification: None,
        registered_by: agency("kodomo"),
        staff: staff(),
    }
}

fn registered(registered_on: Date) -> Registration {
    register(
        new_registration(registered_on),
        90,
        date!(2026 - 06 - 01),
        now(),
    )
    .unwrap()
}

fn meeting(held_on: Date, cases: &[&Registration]) -> Meeting {
    Meeting {
        id: MeetingId::generate(),
        municipality: aoba(),
        kind: MeetingKind::Practitioners,
        held_on,
        case_ids: cases.iter().map(|r| r.case_id.clone()).collect(),
        scheduled_by: agency("kodomo"),
        staff: staff(),
        scheduled_at: now(),
    }
}

fn input(kind: OutcomeKind) -> DecisionInput {
    DecisionInput {
        kind,
        reason: None,
        transfer_to: None,
        lead_agency: None,
        plan: None,
        next_review_on: None,
        staff: staff(),
    }
}

fn referral(state: ReferralState, deadline_hours_from_now: i64) -> Referral {
    let due = now().plus(time::Duration::hours(deadline_hours_from_now));
    Referral {
        id: ReferralId::generate(),
        case_id: CaseId::generate(),
        municipality: aoba(),
        from_agency: agency("kodomo"),
        to_agency: agency("nursery"),
        purpose: Purpose::parse("nursery_admission").unwrap(),
        urgency: Urgency::Routine,
        basis: LegalBasisKind::CouncilSharing,
        consent_id: None,
        justification: None,
        hide_sender: false,
        body: Sealed(vec![1]),
        staff: staff(),
        sent_at: now().plus(time::Duration::hours(-100)),
        deadlines: Deadlines {
            deliver_by: due,
            respond_by: due,
            connect_by: due,
            confirm_by: due,
        },
        deadline_terms: None,
        state,
        closed_with_reason: None,
    }
}

#[test]
fn the_first_review_falls_one_interval_after_registration() {
    let registration = registered(date!(2026 - 04 - 01));
    assert_eq!(registration.review_interval_days, 90);
    assert_eq!(registration.next_review_on, date!(2026 - 06 - 30));
    assert_eq!(registration.status, RegistrationStatus::Active);
    assert_eq!(registration.last_reviewed_on, None);
}

#[test]
fn an_explicit_interval_or_review_date_overrides_the_default() {
    let mut new = new_registration(date!(2026 - 04 - 01));
    new.review_interval_days = Some(30);
    let registration = register(new.clone(), 90, date!(2026 - 06 - 01), now()).unwrap();
    assert_eq!(registration.next_review_on, date!(2026 - 05 - 01));

    new.next_review_on = Some(date!(2026 - 04 - 15));
    let registration = register(new, 90, date!(2026 - 06 - 01), now()).unwrap();
    assert_eq!(registration.next_review_on, date!(2026 - 04 - 15));
    assert_eq!(registration.review_interval_days, 30);
}

#[test]
fn a_general_case_is_not_registered_with_the_council() {
    let mut new = new_registration(date!(2026 - 04 - 01));
    new.category = CaseCategory::General;
    let error = register(new, 90, date!(2026 - 06 - 01), now()).unwrap_err();
    assert!(matches!(
        error,
        CouncilError::Invalid {
            field: "category",
            ..
        }
    ));
}

#[test]
fn registration_dates_must_make_sense() {
    let future = register(
        new_registration(date!(2026 - 06 - 02)),
        90,
        date!(2026 - 06 - 01),
        now(),
    );
    assert!(matches!(
        future,
        Err(CouncilError::Invalid {
            field: "registered_on",
            ..
        })
    ));

    let mut backwards = new_registration(date!(2026 - 04 - 01));
    backwards.next_review_on = Some(date!(2026 - 04 - 01));
    assert!(matches!(
        register(backwards, 90, date!(2026 - 06 - 01), now()),
        Err(CouncilError::Invalid {
            field: "next_review_on",
            ..
        })
    ));

    let mut too_long = new_registration(date!(2026 - 04 - 01));
    too_long.review_interval_days = Some(MAX_REVIEW_INTERVAL_DAYS + 1);
    assert!(matches!(
        register(too_long, 90, date!(2026 - 06 - 01), now()),
        Err(CouncilError::Invalid {
            field: "review_interval_days",
            ..
        })
    ));
}

#[test]
fn a_new_interval_without_a_date_reschedules_the_next_review() {
    let registration = registered(date!(2026 - 04 - 01));
    let changed = change(
        &registration,
        RegistrationChange {
            category: None,
            lead_agency: None,
            key_person: None,
            review_interval_days: Some(30),
            next_review_on: None,
            staff: staff(),
        },
        now(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(changed.review_interval_days, 30);
    assert_eq!(changed.next_review_on, date!(2026 - 05 - 01));
}

#[test]
fn a_change_that_changes_nothing_is_no_change() {
    let registration = registered(date!(2026 - 04 - 01));
    let same = change(
        &registration,
        RegistrationChange {
            category: Some(registration.category),
            lead_agency: Some(registration.lead_agency.clone()),
            key_person: None,
            review_interval_days: Some(registration.review_interval_days),
            next_review_on: None,
            staff: staff(),
        },
        now(),
    )
    .unwrap();
    assert_eq!(same, None);
}

#[test]
fn only_registrations_due_by_the_day_and_still_active_are_due() {
    let early = registered(date!(2026 - 01 - 10));
    let late = registered(date!(2026 - 05 - 20));
    let mut closed = registered(date!(2026 - 01 - 01));
    closed = end(
        &closed,
        Ending::Close {
            reason: "支援目標達成".to_owned(),
        },
        date!(2026 - 05 - 01),
        staff(),
        now(),
    )
    .unwrap();
    let all = vec![late.clone(), closed, early.clone()];
    let due: Vec<_> = due_by(&all, date!(2026 - 06 - 01))
        .into_iter()
        .map(|r| r.case_id.clone())
        .collect();
    assert_eq!(due, vec![early.case_id.clone()]);

    let agenda_ids = agenda(
        MeetingKind::Practitioners,
        &aoba(),
        &[],
        &all,
        date!(2026 - 08 - 18),
    )
    .unwrap();
    assert_eq!(agenda_ids, vec![early.case_id, late.case_id]);
}

#[test]
fn an_explicit_agenda_takes_only_active_registrations_once_each() {
    let active = registered(date!(2026 - 04 - 01));
    let ended = end(
        &registered(date!(2026 - 04 - 01)),
        Ending::Transfer {
            to: Municipality::parse("131016").unwrap(),
            reason: None,
        },
        date!(2026 - 05 - 01),
        staff(),
        now(),
    )
    .unwrap();
    let all = vec![active.clone(), ended.clone()];
    let ids = agenda(
        MeetingKind::IndividualCase,
        &aoba(),
        &[active.case_id.clone(), active.case_id.clone()],
        &all,
        date!(2026 - 05 - 01),
    )
    .unwrap();
    assert_eq!(ids, vec![active.case_id.clone()]);

    let refused = agenda(
        MeetingKind::Practitioners,
        &aoba(),
        &[active.case_id, ended.case_id.clone()],
        &all,
        date!(2026 - 05 - 01),
    );
    assert_eq!(
        refused,
        Err(CouncilError::NotRegistered {
            case_id: ended.case_id,
            municipality: aoba()
        })
    );
}

#[test]
fn an_individual_case_meeting_needs_its_cases_named() {
    let error = agenda(
        MeetingKind::IndividualCase,
        &aoba(),
        &[],
        &[],
        date!(2026 - 05 - 01),
    )
    .unwrap_err();
    assert!(matches!(
        error,
        CouncilError::Invalid {
            field: "case_ids",
            ..
        }
    ));
}

#[test]
fn a_continue_decision_reviews_the_case_and_schedules_the_next_review_one_interval_on() {
    let registration = registered(date!(2026 - 01 - 10));
    let meeting = meeting(date!(2026 - 05 - 20), &[&registration]);
    let mut choice = input(OutcomeKind::Continue);
    choice.lead_agency = Some(agency("jisou"));
    let (decision, after) = decide(
        &registration,
        &meeting,
        choice,
        agency("kodomo"),
        date!(2026 - 06 - 01),
        now(),
    )
    .unwrap();
    assert_eq!(decision.outcome, DecisionOutcome::Continue);
    assert_eq!(decision.next_review_on, Some(date!(2026 - 08 - 18)));
    assert_eq!(decision.held_on, date!(2026 - 05 - 20));
    assert_eq!(after.last_reviewed_on, Some(date!(2026 - 05 - 20)));
    assert_eq!(after.next_review_on, date!(2026 - 08 - 18));
    assert_eq!(after.lead_agency, agency("jisou"));
    assert!(after.is_active());
}

#[test]
fn a_close_decision_needs_a_reason_and_ends_the_registration() {
    let registration = registered(date!(2026 - 01 - 10));
    let meeting = meeting(date!(2026 - 05 - 20), &[&registration]);
    let missing = decide(
        &registration,
        &meeting,
        input(OutcomeKind::Close),
        agency("kodomo"),
        date!(2026 - 06 - 01),
        now(),
    );
    assert!(matches!(
        missing,
        Err(CouncilError::Invalid {
            field: "close_reason",
            ..
        })
    ));

    let mut choice = input(OutcomeKind::Close);
    choice.reason = Some("支援目標達成".to_owned());
    let (decision, after) = decide(
        &registration,
        &meeting,
        choice,
        agency("kodomo"),
        date!(2026 - 06 - 01),
        now(),
    )
    .unwrap();
    assert_eq!(decision.next_review_on, None);
    assert_eq!(after.status, RegistrationStatus::Closed);
    assert_eq!(after.ended_on, Some(date!(2026 - 05 - 20)));
    assert!(!after.is_due(date!(2030 - 01 - 01)));
}

#[test]
fn a_transfer_goes_to_another_municipality() {
    let registration = registered(date!(2026 - 01 - 10));
    let meeting = meeting(date!(2026 - 05 - 20), &[&registration]);
    let mut own = input(OutcomeKind::Transfer);
    own.transfer_to = Some(aoba());
    let refused = decide(
        &registration,
        &meeting,
        own,
        agency("kodomo"),
        date!(2026 - 06 - 01),
        now(),
    );
    assert!(matches!(
        refused,
        Err(CouncilError::Invalid {
            field: "transfer_to",
            ..
        })
    ));

    let mut elsewhere = input(OutcomeKind::Transfer);
    elsewhere.transfer_to = Some(Municipality::parse("131016").unwrap());
    let (_, after) = decide(
        &registration,
        &meeting,
        elsewhere,
        agency("kodomo"),
        date!(2026 - 06 - 01),
        now(),
    )
    .unwrap();
    assert_eq!(after.status, RegistrationStatus::Transferred);
    assert_eq!(after.transferred_to, Municipality::parse("131016"));
}

#[test]
fn decisions_are_refused_off_the_agenda_before_the_meeting_and_on_ended_registrations() {
    let registration = registered(date!(2026 - 01 - 10));
    let other = registered(date!(2026 - 01 - 10));
    let off_agenda = meeting(date!(2026 - 05 - 20), &[&other]);
    assert!(matches!(
        decide(
            &registration,
            &off_agenda,
            input(OutcomeKind::Continue),
            agency("kodomo"),
            date!(2026 - 06 - 01),
            now()
        ),
        Err(CouncilError::NotOnAgenda { .. })
    ));

    let future = meeting(date!(2026 - 06 - 02), &[&registration]);
    assert!(matches!(
        decide(
            &registration,
            &future,
            input(OutcomeKind::Continue),
            agency("kodomo"),
            date!(2026 - 06 - 01),
            now()
        ),
        Err(CouncilError::NotHeldYet { .. })
    ));

    let closed = end(
        &registration,
        Ending::Close {
            reason: "転出".to_owned(),
        },
        date!(2026 - 05 - 01),
        staff(),
        now(),
    )
    .unwrap();
    let held = meeting(date!(2026 - 05 - 20), &[&closed]);
    assert!(matches!(
        decide(
            &closed,
            &held,
            input(OutcomeKind::Continue),
            agency("kodomo"),
            date!(2026 - 06 - 01),
            now()
        ),
        Err(CouncilError::NotActive { .. })
    ));
}

#[test]
fn a_continue_decision_takes_no_reason_and_a_close_no_next_review() {
    let registration = registered(date!(2026 - 01 - 10));
    let meeting = meeting(date!(2026 - 05 - 20), &[&registration]);
    let mut reasoned = input(OutcomeKind::Continue);
    reasoned.reason = Some("x".to_owned());
    assert!(matches!(
        decide(
            &registration,
            &meeting,
            reasoned,
            agency("kodomo"),
            date!(2026 - 06 - 01),
            now()
        ),
        Err(CouncilError::Invalid {
            field: "close_reason",
            ..
        })
    ));
    let mut dated = input(OutcomeKind::Close);
    dated.reason = Some("支援目標達成".to_owned());
    dated.next_review_on = Some(date!(2026 - 09 - 01));
    assert!(matches!(
        decide(
            &registration,
            &meeting,
            dated,
            agency("kodomo"),
            date!(2026 - 06 - 01),
            now()
        ),
        Err(CouncilError::Invalid {
            field: "next_review_on",
            ..
        })
    ));
    let mut backwards = input(OutcomeKind::Continue);
    backwards.next_review_on = Some(date!(2026 - 05 - 20));
    assert!(matches!(
        decide(
            &registration,
            &meeting,
            backwards,
            agency("kodomo"),
            date!(2026 - 06 - 01),
            now()
        ),
        Err(CouncilError::Invalid {
            field: "next_review_on",
            ..
        })
    ));
}

#[test]
fn previous_decisions_leave_out_this_and_later_meetings_newest_first() {
    let registration = registered(date!(2026 - 01 - 10));
    let decided = |held_on: Date| {
        let meeting = meeting(held_on, &[&registration]);
        decide(
            &registration,
            &meeting,
            input(OutcomeKind::Continue),
            agency("kodomo"),
            date!(2026 - 12 - 31),
            now(),
        )
        .unwrap()
        .0
    };
    let first = decided(date!(2026 - 02 - 01));
    let second = decided(date!(2026 - 03 - 01));
    let later = decided(date!(2026 - 09 - 01));
    let this = meeting(date!(2026 - 05 - 20), &[&registration]);
    let mut own = decided(date!(2026 - 05 - 20));
    own.meeting_id = this.id.clone();
    let all = vec![first.clone(), later, own, second.clone()];
    let previous = previous_decisions(&all, &this);
    assert_eq!(previous, vec![&second, &first]);
    assert_eq!(
        review_period_start(registration.registered_on, &previous),
        date!(2026 - 03 - 01)
    );
    assert_eq!(
        review_period_start(registration.registered_on, &[]),
        registration.registered_on
    );
}

#[test]
fn a_case_needs_a_decision_for_an_overdue_handoff_a_new_not_connected_outcome_or_a_late_review() {
    let period_start = start_of_day(date!(2026 - 03 - 01));
    let fine = referral(ReferralState::new(), 48);
    let late = referral(ReferralState::new(), -1);
    let mut not_connected_state = ReferralState::new();
    not_connected_state.connection = ConnectionState::NotConnected;
    not_connected_state.connection_updated_at = Some(start_of_day(date!(2026 - 04 - 01)));
    not_connected_state.confirmed_at = Some(start_of_day(date!(2026 - 04 - 02)));
    let not_connected = referral(not_connected_state.clone(), -1);
    let mut old_state = not_connected_state;
    old_state.connection_updated_at = Some(start_of_day(date!(2026 - 02 - 01)));
    let old_not_connected = referral(old_state, -1);

    let held_on = date!(2026 - 06 - 01);
    let triggers = |referrals: &[Referral], next_review_on: Date| {
        let standing = CaseStanding {
            category: CaseCategory::RequiresSupport,
            next_review_on,
            review_period_start: period_start,
            referrals,
        };
        decision_triggers(&standing, Some(date!(2026 - 05 - 31)), now())
    };
    assert!(triggers(&[fine.clone(), old_not_connected], held_on).is_empty());
    assert_eq!(
        triggers(&[late], held_on),
        vec![DecisionTrigger::OverdueHandoff]
    );
    assert_eq!(
        triggers(&[not_connected], held_on),
        vec![DecisionTrigger::NotConnected]
    );
    assert_eq!(
        triggers(&[fine], date!(2026 - 05 - 31)),
        vec![DecisionTrigger::ReviewPastDue]
    );
}

#[test]
fn a_review_is_late_only_when_the_previous_practitioners_meeting_let_it_pass() {
    let previous = Some(date!(2026 - 03 - 01));
    // Fell due since the last 実務者会議: this meeting is where it is reviewed.
    assert!(!review_past_due(date!(2026 - 03 - 02), previous));
    // Was due by the last 実務者会議 and still not moved: missed.
    assert!(review_past_due(date!(2026 - 03 - 01), previous));
    assert!(review_past_due(date!(2026 - 01 - 15), previous));
    // Before the council's first 実務者会議 nothing can have been missed.
    assert!(!review_past_due(date!(2026 - 01 - 15), None));
}

#[test]
fn the_summary_counts_categories_overdue_handoffs_and_cases_needing_a_decision() {
    let period_start = start_of_day(date!(2026 - 03 - 01));
    let held_on = date!(2026 - 06 - 01);
    let overdue_pair = vec![
        referral(ReferralState::new(), -1),
        referral(ReferralState::new(), -2),
    ];
    let calm = vec![referral(ReferralState::new(), 48)];
    let cases = [
        CaseStanding {
            category: CaseCategory::RequiresProtection,
            next_review_on: held_on,
            review_period_start: period_start,
            referrals: &overdue_pair,
        },
        CaseStanding {
            category: CaseCategory::SpecificExpectantMother,
            next_review_on: held_on,
            review_period_start: period_start,
            referrals: &calm,
        },
        CaseStanding {
            category: CaseCategory::SpecificExpectantMother,
            next_review_on: date!(2026 - 05 - 01),
            review_period_start: period_start,
            referrals: &[],
        },
    ];
    let summary = summarise(&cases, Some(date!(2026 - 05 - 01)), now());
    assert_eq!(
        summary,
        PackSummary {
            cases: 3,
            requires_protection: 1,
            requires_support: 0,
            specific_expectant_mothers: 2,
            overdue_handoffs: 2,
            not_connected_handoffs: 0,
            reviews_past_due: 1,
            cases_needing_decision: 2,
        }
    );
}

#[test]
fn outcomes_round_trip_through_their_stored_parts() {
    for outcome in [
        DecisionOutcome::Continue,
        DecisionOutcome::Close {
            reason: "支援目標達成".to_owned(),
        },
        DecisionOutcome::Transfer {
            to: Municipality::parse("131016").unwrap(),
            reason: None,
        },
    ] {
        let parts = DecisionOutcome::from_parts(
            outcome.code(),
            outcome.reason().map(ToOwned::to_owned),
            outcome.transfer_to().cloned(),
        );
        assert_eq!(parts, Some(outcome));
    }
    assert_eq!(DecisionOutcome::from_parts("close", None, None), None);
}

#[test]
fn reasons_are_short_plain_text() {
    assert_eq!(reason_text("close_reason", "  "), Ok(None));
    assert_eq!(
        reason_text("close_reason", " 転出 "),
        Ok(Some("転出".to_owned()))
    );
    assert!(reason_text("close_reason", "a\u{7}b").is_err());
    assert!(reason_text("close_reason", &"あ".repeat(MAX_REASON_CHARS + 1)).is_err());
}
