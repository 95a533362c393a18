//! Deadlines in business days or hours, and the overdue and due-soon rules.

use super::*;
use crate::domain::referral::test_states::*;
use crate::domain::referral::{NotConnectedReason, ReferralAction, apply};

fn deadlines() -> Deadlines {
    DeadlinePolicy::default().deadlines(Urgency::Routine, at(0))
}

#[test]
fn the_default_policy_matches_the_documented_hours() {
    let policy = DeadlinePolicy::default();
    let hours = |u: Urgency| TimerKind::ALL.map(|t| policy.for_urgency(u).get(t));
    let h = Period::Hours;
    assert_eq!(hours(Urgency::Routine), [h(24), h(120), h(336), h(504)]);
    assert_eq!(hours(Urgency::Urgent), [h(4), h(24), h(72), h(120)]);
    assert_eq!(hours(Urgency::Emergency), [h(1), h(2), h(24), h(48)]);
    assert!(policy.calendar.year_end_closure);
    assert_eq!(policy.validate(), Ok(()));
}

#[test]
fn deadlines_are_measured_from_the_time_sent() {
    let d = DeadlinePolicy::default().deadlines(Urgency::Emergency, at(100));
    assert_eq!(d.deliver_by, at(101));
    assert_eq!(d.respond_by, at(102));
    assert_eq!(d.connect_by, at(124));
    assert_eq!(d.confirm_by, at(148));
    for timer in TimerKind::ALL {
        assert!(d.get(timer) > at(100));
    }
    assert_eq!(d.get(TimerKind::ConnectBy), d.connect_by);
}

#[test]
fn a_policy_section_may_be_given_in_part() {
    let text = "[urgent]\ndeliver_within_hours = 2\nrespond_within_hours = 8\n\
                connect_within_hours = 48\nconfirm_within_hours = 96\n";
    let policy: DeadlinePolicy = toml::from_str(text).unwrap();
    assert_eq!(policy.urgent.respond, Period::Hours(8));
    assert_eq!(policy.routine, DeadlinePolicy::default().routine);
}

#[test]
fn a_policy_with_unknown_keys_or_missing_hours_is_rejected() {
    assert!(toml::from_str::<DeadlinePolicy>("[urgent_ish]\n").is_err());
    assert!(toml::from_str::<DeadlinePolicy>("[urgent]\ndeliver_within_hours = 2\n").is_err());
}

#[test]
fn a_policy_with_out_of_order_or_zero_periods_is_rejected() {
    let mut policy = DeadlinePolicy::default();
    policy.urgent.connect = Period::Hours(10);
    let err = policy.validate().unwrap_err();
    assert_eq!(err.field, "deadlines.urgent.connect_within_hours");
    let mut policy = DeadlinePolicy::default();
    policy.emergency.deliver = Period::Hours(0);
    let err = policy.validate().unwrap_err();
    assert_eq!(err.field, "deadlines.emergency.deliver_within_hours");
}

fn jst(at: time::PrimitiveDateTime) -> Timestamp {
    Timestamp::from_offset_date_time(at.assume_offset(crate::domain::JST))
}

fn business_day_policy() -> DeadlinePolicy {
    let text = "[routine]\ndeliver_within_business_days = 1\n\
                respond_within_business_days = 2\nconnect_within_business_days = 10\n\
                confirm_within_business_days = 15\n\
                [urgent]\ndeliver_within_hours = 4\nrespond_within_business_days = 3\n\
                connect_within_hours = 72\nconfirm_within_business_days = 5\n";
    let policy: DeadlinePolicy = toml::from_str(text).unwrap();
    policy.validate().unwrap();
    policy
}

#[test]
fn periods_may_be_given_in_business_days_and_hours_keys_keep_working() {
    let policy = business_day_policy();
    assert_eq!(policy.routine.respond, Period::BusinessDays(2));
    assert_eq!(policy.urgent.deliver, Period::Hours(4));
    assert_eq!(policy.urgent.respond, Period::BusinessDays(3));
    assert_eq!(policy.emergency, DeadlinePolicy::default().emergency);
}

#[test]
fn a_period_in_both_units_or_in_neither_is_rejected_naming_it() {
    let both = "[urgent]\ndeliver_within_hours = 2\ndeliver_within_business_days = 1\n\
                respond_within_hours = 8\nconnect_within_hours = 48\n\
                confirm_within_hours = 96\n";
    let err = toml::from_str::<DeadlinePolicy>(both)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("deliver_within_hours or deliver_within_business_days"),
        "{err}"
    );
    let neither = "[urgent]\ndeliver_within_hours = 2\n\
                   connect_within_hours = 48\nconfirm_within_hours = 96\n";
    let err = toml::from_str::<DeadlinePolicy>(neither)
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing respond_within_hours"), "{err}");
}

#[test]
fn an_emergency_in_business_days_or_zero_business_days_is_rejected() {
    let mut policy = DeadlinePolicy::default();
    policy.emergency.respond = Period::BusinessDays(1);
    let err = policy.validate().unwrap_err();
    assert_eq!(
        err.field,
        "deadlines.emergency.respond_within_business_days"
    );
    assert!(err.reason.contains("hours"), "{err}");
    let mut policy = DeadlinePolicy::default();
    policy.routine.respond = Period::BusinessDays(0);
    let err = policy.validate().unwrap_err();
    assert_eq!(err.field, "deadlines.routine.respond_within_business_days");
    let mut policy = business_day_policy();
    policy.routine.connect = Period::BusinessDays(1);
    let err = policy.validate().unwrap_err();
    assert_eq!(err.field, "deadlines.routine.connect_within_business_days");
}

#[test]
fn respond_by_two_business_days_from_december_28th_is_january_5th() {
    let policy = business_day_policy();
    let d = policy.deadlines(
        Urgency::Routine,
        jst(time::macros::datetime!(2026-12-28 10:00)),
    );
    assert_eq!(d.deliver_by, jst(time::macros::datetime!(2027-01-04 17:00)));
    assert_eq!(d.respond_by, jst(time::macros::datetime!(2027-01-05 17:00)));
}

#[test]
fn respond_by_three_business_days_from_april_28th_is_may_7th() {
    let policy = business_day_policy();
    let d = policy.deadlines(
        Urgency::Urgent,
        jst(time::macros::datetime!(2027-04-28 09:00)),
    );
    assert_eq!(d.deliver_by, jst(time::macros::datetime!(2027-04-28 13:00)));
    assert_eq!(d.respond_by, jst(time::macros::datetime!(2027-05-07 17:00)));
}

#[test]
fn an_emergency_counts_hours_through_holidays() {
    let policy = business_day_policy();
    let sent = jst(time::macros::datetime!(2026-12-31 22:00));
    let d = policy.deadlines(Urgency::Emergency, sent);
    assert_eq!(d.respond_by, jst(time::macros::datetime!(2027-01-01 00:00)));
    assert_eq!(d.connect_by, jst(time::macros::datetime!(2027-01-01 22:00)));
}

#[test]
fn mixed_units_are_kept_in_order() {
    // Urgent: connect 72 hours, confirm 5 business days. Sent on 2026-12-28, 72 hours is
    // 12-31 but respond-by (3 business days) is 1/6: connect-by is raised to it.
    let policy = business_day_policy();
    let d = policy.deadlines(
        Urgency::Urgent,
        jst(time::macros::datetime!(2026-12-28 10:00)),
    );
    assert_eq!(d.respond_by, jst(time::macros::datetime!(2027-01-06 17:00)));
    assert_eq!(d.connect_by, d.respond_by);
    assert_eq!(d.confirm_by, jst(time::macros::datetime!(2027-01-08 17:00)));
}

#[test]
fn a_municipality_calendar_adds_its_closure_days() {
    let text = "[calendar]\nclosed_days = [\"2027-01-04\"]\n\
                [calendar.municipalities.\"141178\"]\nyear_end_closure = false\n\
                [calendar.municipalities.\"131016\"]\nclosed_days = [\"2027-01-05\"]\n\
                [routine]\ndeliver_within_hours = 24\nrespond_within_business_days = 2\n\
                connect_within_hours = 336\nconfirm_within_hours = 504\n";
    let policy: DeadlinePolicy = toml::from_str(text).unwrap();
    policy.validate().unwrap();
    let sent = jst(time::macros::datetime!(2026-12-28 10:00));
    let respond = |code: Option<&str>| {
        let m = code.map(|c| Municipality::parse(c).unwrap());
        policy
            .deadlines_in(Urgency::Routine, sent, m.as_ref())
            .respond_by
    };
    assert_eq!(
        respond(None),
        jst(time::macros::datetime!(2027-01-06 17:00))
    );
    assert_eq!(
        respond(Some("141178")),
        jst(time::macros::datetime!(2026-12-30 17:00))
    );
    assert_eq!(
        respond(Some("131016")),
        jst(time::macros::datetime!(2027-01-07 17:00))
    );
    let bad = "[calendar]\nclosed_days = [\"2027-02-30\"]\n";
    let err = toml::from_str::<DeadlinePolicy>(bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("2027-02-30"), "{err}");
    let bad = "[calendar.municipalities.yokohama]\n";
    let policy: DeadlinePolicy = toml::from_str(bad).unwrap();
    assert_eq!(
        policy.validate().unwrap_err().field,
        "deadlines.calendar.municipalities"
    );
}

#[test]
fn deadline_terms_round_trip_and_mark_overrides_as_the_senders() {
    let policy = business_day_policy();
    let overrides = DeadlineOverrides {
        connect_by: Some(at(5)),
        ..DeadlineOverrides::default()
    };
    let terms = DeadlineTerms::of(policy.urgent, &overrides);
    assert_eq!(terms.deliver_by, DeadlineTerm::Hours(4));
    assert_eq!(terms.respond_by, DeadlineTerm::BusinessDays(3));
    assert_eq!(terms.connect_by, DeadlineTerm::SetBySender);
    assert_eq!(
        terms.code(),
        "hours:4,business_days:3,set_by_sender,business_days:5"
    );
    assert_eq!(DeadlineTerms::from_code(&terms.code()), Some(terms));
    for bad in [
        "",
        "hours:4",
        "hours:4,hours:5,hours:6,hours:7,hours:8",
        "days:1,a,b,c",
    ] {
        assert_eq!(DeadlineTerms::from_code(bad), None, "{bad}");
    }
}

#[test]
fn overrides_replace_the_defaults_they_name() {
    let defaults = deadlines();
    let overrides = DeadlineOverrides {
        connect_by: Some(at(200)),
        ..DeadlineOverrides::default()
    };
    let d = apply_overrides(defaults, &overrides, at(0)).unwrap();
    assert_eq!(d.connect_by, at(200));
    assert_eq!(d.deliver_by, defaults.deliver_by);
    assert_eq!(d.confirm_by, defaults.confirm_by);
    assert_eq!(
        apply_overrides(defaults, &DeadlineOverrides::default(), at(0)),
        Ok(defaults)
    );
}

#[test]
fn an_override_not_after_the_time_sent_is_refused() {
    let overrides = DeadlineOverrides {
        deliver_by: Some(at(0)),
        ..DeadlineOverrides::default()
    };
    let err = apply_overrides(deadlines(), &overrides, at(0)).unwrap_err();
    assert_eq!(err.field, "deadlines.deliver_by");
    assert!(
        err.to_string()
            .starts_with("deadlines.deliver_by: must be after")
    );
}

#[test]
fn an_override_out_of_order_is_refused_naming_the_overridden_field() {
    // respond_by moved before the default deliver_by (24h).
    let overrides = DeadlineOverrides {
        respond_by: Some(at(10)),
        ..DeadlineOverrides::default()
    };
    let err = apply_overrides(deadlines(), &overrides, at(0)).unwrap_err();
    assert_eq!(err.field, "deadlines.respond_by");
    assert!(err.reason.contains("deadlines.deliver_by"), "{err}");

    // deliver_by moved after the default respond_by (120h).
    let overrides = DeadlineOverrides {
        deliver_by: Some(at(130)),
        ..DeadlineOverrides::default()
    };
    let err = apply_overrides(deadlines(), &overrides, at(0)).unwrap_err();
    assert_eq!(err.field, "deadlines.deliver_by");

    // Both overridden and crossed: the later one is blamed.
    let overrides = DeadlineOverrides {
        connect_by: Some(at(300)),
        confirm_by: Some(at(250)),
        ..DeadlineOverrides::default()
    };
    let err = apply_overrides(deadlines(), &overrides, at(0)).unwrap_err();
    assert_eq!(err.field, "deadlines.confirm_by");
}

#[test]
fn equal_deadlines_are_in_order() {
    let overrides = DeadlineOverrides {
        deliver_by: Some(at(5)),
        respond_by: Some(at(5)),
        connect_by: Some(at(5)),
        confirm_by: Some(at(5)),
    };
    assert!(apply_overrides(deadlines(), &overrides, at(0)).is_ok());
}

#[test]
fn a_new_referral_waits_for_delivery_and_response() {
    assert_eq!(
        pending_timers(&ReferralState::new()),
        vec![TimerKind::DeliverBy, TimerKind::RespondBy]
    );
}

#[test]
fn a_delivered_referral_waits_only_for_the_response() {
    let delivered = act(
        &ReferralState::new(),
        Party::Recipient,
        ReferralAction::AcknowledgeDelivery,
    );
    assert_eq!(pending_timers(&delivered), vec![TimerKind::RespondBy]);
}

#[test]
fn an_accepted_referral_waits_for_the_connection_until_it_is_reported() {
    let tried = act(
        &accepted(),
        Party::Recipient,
        ReferralAction::RecordContactAttempt,
    );
    for state in [accepted(), in_progress(), completed(), tried] {
        assert_eq!(pending_timers(&state), vec![TimerKind::ConnectBy]);
    }
}

#[test]
fn a_failed_referral_still_waits_for_the_connection_report() {
    let failed = apply(
        &accepted(),
        Party::Recipient,
        &with_reason(ReferralAction::Fail, "x"),
        &me(),
        at(1),
    )
    .unwrap();
    assert_eq!(pending_timers(&failed), vec![TimerKind::ConnectBy]);
    assert!(!failed.is_closed());
}

#[test]
fn a_reported_outcome_waits_for_confirmation() {
    assert_eq!(pending_timers(&connected()), vec![TimerKind::ConfirmBy]);
    let reported = apply(
        &declined(),
        Party::Recipient,
        &not_connected(NotConnectedReason::NoCapacity),
        &me(),
        at(2),
    )
    .unwrap();
    assert_eq!(pending_timers(&reported), vec![TimerKind::ConfirmBy]);
}

#[test]
fn closed_referrals_have_no_timers() {
    for state in [confirmed(), cancelled(), declined()] {
        assert!(pending_timers(&state).is_empty(), "{state:?}");
        assert!(state.is_closed());
    }
    // Cancelled after the outcome was reported: nobody is left to confirm.
    let cancelled_late = apply(
        &act(
            &in_progress(),
            Party::Recipient,
            ReferralAction::ReportConnected,
        ),
        Party::Sender,
        &with_reason(ReferralAction::Cancel, "x"),
        &me(),
        at(3),
    )
    .unwrap();
    assert!(pending_timers(&cancelled_late).is_empty());
}

#[test]
fn closed_means_exactly_no_pending_timers() {
    let tried = act(
        &accepted(),
        Party::Recipient,
        ReferralAction::RecordContactAttempt,
    );
    for state in [
        ReferralState::new(),
        accepted(),
        in_progress(),
        completed(),
        tried,
        connected(),
        confirmed(),
        cancelled(),
        declined(),
    ] {
        assert_eq!(state.is_closed(), pending_timers(&state).is_empty());
    }
}

#[test]
fn the_recipient_is_responsible_for_all_but_confirmation() {
    assert_eq!(responsible_party(TimerKind::DeliverBy), Party::Recipient);
    assert_eq!(responsible_party(TimerKind::RespondBy), Party::Recipient);
    assert_eq!(responsible_party(TimerKind::ConnectBy), Party::Recipient);
    assert_eq!(responsible_party(TimerKind::ConfirmBy), Party::Sender);
}

#[test]
fn a_timer_is_overdue_only_after_its_deadline_passes() {
    let d = deadlines();
    let state = ReferralState::new();
    assert!(overdue(&state, &d, d.deliver_by).is_empty());
    assert_eq!(
        overdue(
            &state,
            &d,
            d.deliver_by.plus(time::Duration::milliseconds(1))
        ),
        vec![TimerKind::DeliverBy]
    );
    assert_eq!(
        overdue(&state, &d, at(121)),
        vec![TimerKind::DeliverBy, TimerKind::RespondBy]
    );
}

#[test]
fn a_moved_layer_is_no_longer_overdue() {
    let d = deadlines();
    assert!(overdue(&accepted(), &d, at(200)).is_empty());
    assert_eq!(
        overdue(&accepted(), &d, at(400)),
        vec![TimerKind::ConnectBy]
    );
    assert!(overdue(&connected(), &d, at(400)).is_empty());
    assert_eq!(
        overdue(&connected(), &d, at(600)),
        vec![TimerKind::ConfirmBy]
    );
    assert!(overdue(&confirmed(), &d, at(10_000)).is_empty());
    assert!(overdue(&cancelled(), &d, at(10_000)).is_empty());
}

#[test]
fn due_soon_lists_timers_within_the_window_that_are_not_yet_overdue() {
    let d = deadlines();
    let state = ReferralState::new();
    // At 20h: deliver-by (24h) is within 48h, respond-by (120h) is not.
    assert_eq!(
        due_soon(&state, &d, at(20), time::Duration::hours(48)),
        vec![(TimerKind::DeliverBy, d.deliver_by)]
    );
    // At 100h: deliver-by is overdue, so only respond-by is due soon.
    assert_eq!(
        due_soon(&state, &d, at(100), time::Duration::hours(48)),
        vec![(TimerKind::RespondBy, d.respond_by)]
    );
    assert!(due_soon(&state, &d, at(0), time::Duration::hours(1)).is_empty());
    assert!(due_soon(&confirmed(), &d, at(500), time::Duration::hours(48)).is_empty());
}
