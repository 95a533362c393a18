//! The transitions of a referral's three layers, its next step and close with reason.

use super::*;

use super::test_states::*;

fn try_act(
    state: &ReferralState,
    party: Party,
    action: ReferralAction,
) -> Result<ReferralState, TransitionError> {
    apply(state, party, &ActionInput::new(action), &me(), at(1))
}

fn confirmed_not_connected(reason: NotConnectedReason) -> ReferralState {
    let input = ActionInput {
        linked_referral_id: (reason == NotConnectedReason::ReferredElsewhere)
            .then(ReferralId::generate),
        ..not_connected(reason)
    };
    let reported = apply(&accepted(), Party::Recipient, &input, &me(), at(1)).unwrap();
    act(&reported, Party::Sender, ReferralAction::Confirm)
}

fn close_input(reason: &str, text: Option<&str>) -> ActionInput {
    ActionInput {
        reason_text: text.map(str::to_owned),
        ..with_reason(ReferralAction::CloseWithReason, reason)
    }
}

#[test]
fn a_confirmed_not_connected_referral_is_closed_with_a_reason_by_the_sender_or_coordinator() {
    let state = confirmed_not_connected(NotConnectedReason::CouldNotContact);
    for party in [Party::Sender, Party::Coordinator] {
        let closed = close_with_reason(
            &state,
            party,
            None,
            &close_input("moved_out", Some(" 転出先の自治体へ連絡済み ")),
            &me(),
            at(5),
        )
        .unwrap();
        assert_eq!(closed.reason, CloseReason::MovedOut);
        assert_eq!(closed.text.as_deref(), Some("転出先の自治体へ連絡済み"));
        assert_eq!((closed.at, &closed.by), (at(5), &me()));
    }
    // The layers do not move.
    let input = close_input("no_further_support_needed", None);
    assert_eq!(
        apply(&state, Party::Sender, &input, &me(), at(5)).unwrap(),
        state
    );
}

#[test]
fn only_the_sender_or_coordinator_may_close_with_a_reason() {
    let state = confirmed_not_connected(NotConnectedReason::CouldNotContact);
    for party in [Party::Recipient, Party::Other] {
        let err = close_with_reason(
            &state,
            party,
            None,
            &close_input("moved_out", None),
            &me(),
            at(5),
        )
        .unwrap_err();
        assert!(matches!(err, TransitionError::WrongParty { .. }), "{err}");
    }
}

#[test]
fn closing_with_a_reason_is_refused_unless_a_confirmed_not_connected_handoff_waits_for_a_next_step()
{
    let unconfirmed = apply(
        &accepted(),
        Party::Recipient,
        &not_connected(NotConnectedReason::CouldNotContact),
        &me(),
        at(1),
    )
    .unwrap();
    let cases = [
        (accepted(), "did not connect"),
        (confirmed(), "did not connect"),
        (unconfirmed, "confirmed first"),
        (
            confirmed_not_connected(NotConnectedReason::ReferredElsewhere),
            "referred elsewhere",
        ),
    ];
    for (state, why) in cases {
        assert_no_next_step_due(&state, Party::Sender, None, why);
    }
}

/// Closing `state` with a reason is refused as no next step being due, saying `why`.
fn assert_no_next_step_due(
    state: &ReferralState,
    party: Party,
    step: Option<&NextStep>,
    why: &str,
) {
    let err = close_with_reason(
        state,
        party,
        step,
        &close_input("supported_otherwise", None),
        &me(),
        at(6),
    )
    .unwrap_err();
    assert!(
        matches!(err, TransitionError::NoNextStepDue { .. }),
        "{err}"
    );
    assert!(err.to_string().contains(why), "{err}");
}

#[test]
fn a_second_next_step_is_refused_naming_the_first() {
    let state = confirmed_not_connected(NotConnectedReason::DeclinedByFamily);
    let first = close_with_reason(
        &state,
        Party::Sender,
        None,
        &close_input("moved_out", None),
        &me(),
        at(5),
    )
    .unwrap();
    let steps = [
        (
            NextStep::ClosedWithReason(first),
            "closed with reason moved_out by aoba-hoken",
        ),
        (NextStep::ReReferred, "a new referral was sent"),
    ];
    for (step, why) in steps {
        assert_no_next_step_due(&state, Party::Coordinator, Some(&step), why);
    }
}

#[test]
fn a_close_reason_must_be_one_of_the_codes_and_its_text_goes_with_nothing_else() {
    let state = confirmed_not_connected(NotConnectedReason::CouldNotContact);
    let err = close_with_reason(
        &state,
        Party::Sender,
        None,
        &close_input("family_gone", None),
        &me(),
        at(5),
    )
    .unwrap_err();
    assert!(
        matches!(err, TransitionError::UnknownReason { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains(
            "no_further_support_needed, family_declined_all_support, moved_out, supported_otherwise"
        ),
        "{err}"
    );
    let err = close_with_reason(
        &state,
        Party::Sender,
        None,
        &ActionInput::new(ReferralAction::CloseWithReason),
        &me(),
        at(5),
    )
    .unwrap_err();
    assert_eq!(
        err,
        TransitionError::MissingReason {
            action: ReferralAction::CloseWithReason,
            field: "reason_code"
        }
    );
    let err = apply(
        &ReferralState::new(),
        Party::Sender,
        &ActionInput {
            reason_text: Some("転出".to_owned()),
            ..with_reason(ReferralAction::Cancel, "family_moved")
        },
        &me(),
        at(1),
    )
    .unwrap_err();
    assert_eq!(
        err,
        TransitionError::UnexpectedField {
            action: ReferralAction::Cancel,
            field: "reason_text"
        }
    );
}

#[test]
fn only_the_actions_that_give_a_reason_take_its_sealed_detail() {
    let giving: Vec<_> = ReferralAction::ALL
        .into_iter()
        .filter(|a| a.gives_reason())
        .map(ReferralAction::code)
        .collect();
    assert_eq!(
        giving,
        [
            "decline",
            "fail",
            "cancel",
            "report_not_connected",
            "close_with_reason"
        ]
    );
}

#[test]
fn codes_round_trip_for_every_state_action_and_timer() {
    for v in DeliveryState::ALL {
        assert_eq!(DeliveryState::from_code(v.code()), Some(v));
    }
    for v in ResponseState::ALL {
        assert_eq!(ResponseState::from_code(v.code()), Some(v));
    }
    for v in ConnectionState::ALL {
        assert_eq!(ConnectionState::from_code(v.code()), Some(v));
    }
    for v in NotConnectedReason::ALL {
        assert_eq!(NotConnectedReason::from_code(v.code()), Some(v));
    }
    for v in ReferralAction::ALL {
        assert_eq!(ReferralAction::from_code(v.code()), Some(v));
    }
    for v in TimerKind::ALL {
        assert_eq!(TimerKind::from_code(v.code()), Some(v));
    }
    assert_eq!(ResponseState::InProgress.code(), "in_progress");
    assert_eq!(
        NotConnectedReason::ReferredElsewhere.code(),
        "referred_elsewhere"
    );
    assert_eq!(ResponseState::from_code("InProgress"), None);
    assert_eq!(ReferralAction::ALL.len(), 12);
    for v in CloseReason::ALL {
        assert_eq!(CloseReason::from_code(v.code()), Some(v));
    }
}

#[test]
fn a_new_referral_is_sent_requested_and_not_updated() {
    let state = ReferralState::new();
    assert_eq!(state.delivery, DeliveryState::Sent);
    assert_eq!(state.response, ResponseState::Requested);
    assert_eq!(state.connection, ConnectionState::NotUpdated);
    assert_eq!(state.contact_attempts, 0);
    assert!(!state.is_closed());
    assert_eq!(state, ReferralState::default());
}

#[test]
fn acknowledging_delivery_marks_it_delivered_at_that_time() {
    let state = apply(
        &ReferralState::new(),
        Party::Recipient,
        &ActionInput::new(ReferralAction::AcknowledgeDelivery),
        &me(),
        at(2),
    )
    .unwrap();
    assert_eq!(state.delivery, DeliveryState::Delivered);
    assert_eq!(state.delivered_at, Some(at(2)));
    assert_eq!(state.response, ResponseState::Requested);
    assert_eq!(state.responded_at, None);
}

#[test]
fn acknowledging_delivery_twice_is_refused() {
    let delivered = act(
        &ReferralState::new(),
        Party::Recipient,
        ReferralAction::AcknowledgeDelivery,
    );
    let err = try_act(
        &delivered,
        Party::Recipient,
        ReferralAction::AcknowledgeDelivery,
    )
    .unwrap_err();
    assert_eq!(
        err,
        TransitionError::InvalidTransition {
            action: ReferralAction::AcknowledgeDelivery,
            layer: "delivery",
            from: "delivered",
        }
    );
    assert!(err.to_string().contains("already delivered"), "{err}");
}

#[test]
fn accepting_also_marks_an_unacknowledged_referral_delivered() {
    let state = apply(
        &ReferralState::new(),
        Party::Recipient,
        &ActionInput::new(ReferralAction::Accept),
        &me(),
        at(3),
    )
    .unwrap();
    assert_eq!(state.response, ResponseState::Accepted);
    assert_eq!(state.responded_at, Some(at(3)));
    assert_eq!(state.delivery, DeliveryState::Delivered);
    assert_eq!(state.delivered_at, Some(at(3)));
}

#[test]
fn accepting_keeps_an_earlier_delivery_time() {
    let delivered = apply(
        &ReferralState::new(),
        Party::Recipient,
        &ActionInput::new(ReferralAction::AcknowledgeDelivery),
        &me(),
        at(1),
    )
    .unwrap();
    let state = apply(
        &delivered,
        Party::Recipient,
        &ActionInput::new(ReferralAction::Accept),
        &me(),
        at(5),
    )
    .unwrap();
    assert_eq!(state.delivered_at, Some(at(1)));
    assert_eq!(state.responded_at, Some(at(5)));
}

#[test]
fn declining_with_a_reason_records_it_and_implies_delivery() {
    let state = declined();
    assert_eq!(state.response, ResponseState::Declined);
    assert_eq!(state.response_reason.as_deref(), Some("no_capacity"));
    assert_eq!(state.responded_at, Some(at(1)));
    assert_eq!(state.delivery, DeliveryState::Delivered);
    assert_eq!(state.delivered_at, Some(at(1)));
    assert!(state.is_closed());
}

#[test]
fn declining_without_a_reason_is_refused() {
    let err = try_act(
        &ReferralState::new(),
        Party::Recipient,
        ReferralAction::Decline,
    )
    .unwrap_err();
    assert_eq!(
        err,
        TransitionError::MissingReason {
            action: ReferralAction::Decline,
            field: "reason_code",
        }
    );
    assert_eq!(
        err.to_string(),
        "cannot decline the referral: reason_code is required"
    );
}

#[test]
fn a_blank_reason_counts_as_missing() {
    let err = apply(
        &ReferralState::new(),
        Party::Recipient,
        &with_reason(ReferralAction::Decline, "  "),
        &me(),
        at(1),
    )
    .unwrap_err();
    assert!(matches!(err, TransitionError::MissingReason { .. }));
}

#[test]
fn accepting_twice_or_after_declining_is_refused() {
    let err = try_act(&accepted(), Party::Recipient, ReferralAction::Accept).unwrap_err();
    assert!(err.to_string().contains("already responded"), "{err}");
    let err = try_act(&accepted(), Party::Recipient, ReferralAction::Decline).unwrap_err();
    assert!(matches!(err, TransitionError::InvalidTransition { .. }));
    let err = try_act(&declined(), Party::Recipient, ReferralAction::Accept).unwrap_err();
    assert_eq!(
        err,
        TransitionError::Closed {
            action: ReferralAction::Accept,
            state: "declined",
        }
    );
}

#[test]
fn starting_and_completing_move_the_response_with_timestamps() {
    let started = apply(
        &accepted(),
        Party::Recipient,
        &ActionInput::new(ReferralAction::Start),
        &me(),
        at(4),
    )
    .unwrap();
    assert_eq!(started.response, ResponseState::InProgress);
    assert_eq!(started.responded_at, Some(at(4)));
    let done = apply(
        &started,
        Party::Recipient,
        &ActionInput::new(ReferralAction::Complete),
        &me(),
        at(9),
    )
    .unwrap();
    assert_eq!(done.response, ResponseState::Completed);
    assert_eq!(done.responded_at, Some(at(9)));
    assert!(!done.is_closed(), "the connection is still to be reported");
}

#[test]
fn starting_before_accepting_is_refused() {
    let err = try_act(
        &ReferralState::new(),
        Party::Recipient,
        ReferralAction::Start,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot start work on the referral while the response is requested: the referral must \
         be accepted first"
    );
    let err = try_act(&in_progress(), Party::Recipient, ReferralAction::Start).unwrap_err();
    assert!(err.to_string().contains("already started"), "{err}");
}

#[test]
fn completing_before_starting_is_refused() {
    let err = try_act(&accepted(), Party::Recipient, ReferralAction::Complete).unwrap_err();
    assert_eq!(
        err,
        TransitionError::InvalidTransition {
            action: ReferralAction::Complete,
            layer: "response",
            from: "accepted",
        }
    );
    assert!(err.to_string().contains("started first"), "{err}");
    let err = try_act(&completed(), Party::Recipient, ReferralAction::Complete).unwrap_err();
    assert!(err.to_string().contains("already ended"), "{err}");
}

#[test]
fn failing_from_accepted_or_in_progress_records_the_reason() {
    for from in [accepted(), in_progress()] {
        let state = apply(
            &from,
            Party::Recipient,
            &with_reason(ReferralAction::Fail, "family_unreachable"),
            &me(),
            at(7),
        )
        .unwrap();
        assert_eq!(state.response, ResponseState::Failed);
        assert_eq!(state.response_reason.as_deref(), Some("family_unreachable"));
        assert_eq!(state.responded_at, Some(at(7)));
    }
}

#[test]
fn failing_without_a_reason_or_before_accepting_is_refused() {
    let err = try_act(&accepted(), Party::Recipient, ReferralAction::Fail).unwrap_err();
    assert!(matches!(
        err,
        TransitionError::MissingReason {
            field: "reason_code",
            ..
        }
    ));
    let err = apply(
        &ReferralState::new(),
        Party::Recipient,
        &with_reason(ReferralAction::Fail, "x"),
        &me(),
        at(1),
    )
    .unwrap_err();
    assert!(matches!(err, TransitionError::InvalidTransition { .. }));
    let err = apply(
        &completed(),
        Party::Recipient,
        &with_reason(ReferralAction::Fail, "x"),
        &me(),
        at(1),
    )
    .unwrap_err();
    assert!(err.to_string().contains("already ended"), "{err}");
}

#[test]
fn the_sender_or_coordinator_may_cancel_an_open_request_with_a_reason() {
    for party in [Party::Sender, Party::Coordinator] {
        for from in [ReferralState::new(), accepted(), in_progress()] {
            let state = apply(
                &from,
                party,
                &with_reason(ReferralAction::Cancel, "family_moved"),
                &me(),
                at(6),
            )
            .unwrap();
            assert_eq!(state.response, ResponseState::Cancelled);
            assert_eq!(state.response_reason.as_deref(), Some("family_moved"));
            assert_eq!(state.responded_at, Some(at(6)));
            assert!(state.is_closed());
        }
    }
}

#[test]
fn cancelling_without_a_reason_by_the_recipient_or_after_completion_is_refused() {
    let err = try_act(&accepted(), Party::Sender, ReferralAction::Cancel).unwrap_err();
    assert!(matches!(err, TransitionError::MissingReason { .. }));
    let err = apply(
        &accepted(),
        Party::Recipient,
        &with_reason(ReferralAction::Cancel, "x"),
        &me(),
        at(1),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "only the sender or the municipality's coordinator may cancel the referral"
    );
    let err = apply(
        &completed(),
        Party::Sender,
        &with_reason(ReferralAction::Cancel, "x"),
        &me(),
        at(1),
    )
    .unwrap_err();
    assert!(matches!(err, TransitionError::InvalidTransition { .. }));
}

#[test]
fn accept_by_the_sender_is_refused() {
    let err = try_act(&ReferralState::new(), Party::Sender, ReferralAction::Accept).unwrap_err();
    assert_eq!(
        err,
        TransitionError::WrongParty {
            action: ReferralAction::Accept,
            required: "the recipient",
        }
    );
    assert_eq!(
        err.to_string(),
        "only the recipient may accept the referral"
    );
}

#[test]
fn the_coordinator_cannot_act_for_the_recipient() {
    for action in [
        ReferralAction::AcknowledgeDelivery,
        ReferralAction::Accept,
        ReferralAction::Start,
        ReferralAction::ReportConnected,
    ] {
        let err = try_act(&ReferralState::new(), Party::Coordinator, action).unwrap_err();
        assert!(
            matches!(err, TransitionError::WrongParty { .. }),
            "{action}"
        );
    }
}

#[test]
fn another_agency_may_take_no_action_at_all() {
    for action in ReferralAction::ALL {
        let err = try_act(&connected(), Party::Other, action).unwrap_err();
        assert!(
            matches!(err, TransitionError::WrongParty { .. }),
            "{action}"
        );
    }
}

#[test]
fn contact_attempts_are_repeatable_and_counted() {
    let once = apply(
        &accepted(),
        Party::Recipient,
        &ActionInput::new(ReferralAction::RecordContactAttempt),
        &me(),
        at(10),
    )
    .unwrap();
    let twice = apply(
        &once,
        Party::Recipient,
        &ActionInput::new(ReferralAction::RecordContactAttempt),
        &me(),
        at(20),
    )
    .unwrap();
    assert_eq!(once.connection, ConnectionState::ContactAttempted);
    assert_eq!(once.contact_attempts, 1);
    assert_eq!(twice.contact_attempts, 2);
    assert_eq!(twice.connection_updated_at, Some(at(20)));
}

#[test]
fn contact_attempts_are_allowed_in_progress_and_after_completion() {
    for from in [in_progress(), completed()] {
        let state = act(
            &from,
            Party::Recipient,
            ReferralAction::RecordContactAttempt,
        );
        assert_eq!(state.contact_attempts, 1);
    }
}

#[test]
fn a_contact_attempt_before_accepting_or_after_failing_is_refused() {
    let err = try_act(
        &ReferralState::new(),
        Party::Recipient,
        ReferralAction::RecordContactAttempt,
    )
    .unwrap_err();
    assert!(err.to_string().contains("accepted first"), "{err}");
    let failed = apply(
        &accepted(),
        Party::Recipient,
        &with_reason(ReferralAction::Fail, "x"),
        &me(),
        at(1),
    )
    .unwrap();
    let err = try_act(
        &failed,
        Party::Recipient,
        ReferralAction::RecordContactAttempt,
    )
    .unwrap_err();
    assert!(err.to_string().contains("not connected instead"), "{err}");
}

#[test]
fn reporting_connected_after_contact_attempts_keeps_the_count() {
    let tried = act(
        &accepted(),
        Party::Recipient,
        ReferralAction::RecordContactAttempt,
    );
    let state = apply(
        &tried,
        Party::Recipient,
        &ActionInput::new(ReferralAction::ReportConnected),
        &me(),
        at(30),
    )
    .unwrap();
    assert_eq!(state.connection, ConnectionState::Connected);
    assert_eq!(state.connection_updated_at, Some(at(30)));
    assert_eq!(state.contact_attempts, 1);
}

#[test]
fn connected_before_accepted_is_refused() {
    let err = try_act(
        &ReferralState::new(),
        Party::Recipient,
        ReferralAction::ReportConnected,
    )
    .unwrap_err();
    assert_eq!(
        err,
        TransitionError::InvalidTransition {
            action: ReferralAction::ReportConnected,
            layer: "response",
            from: "requested",
        }
    );
    assert_eq!(
        err.to_string(),
        "cannot report the family connected while the response is requested: the referral \
         must be accepted first"
    );
}

#[test]
fn reporting_the_outcome_twice_is_refused() {
    let err = try_act(
        &connected(),
        Party::Recipient,
        ReferralAction::ReportConnected,
    )
    .unwrap_err();
    assert_eq!(
        err,
        TransitionError::InvalidTransition {
            action: ReferralAction::ReportConnected,
            layer: "connection",
            from: "connected",
        }
    );
    let err = apply(
        &connected(),
        Party::Recipient,
        &not_connected(NotConnectedReason::Moved),
        &me(),
        at(1),
    )
    .unwrap_err();
    assert!(err.to_string().contains("already reported"), "{err}");
}

#[test]
fn reporting_not_connected_records_the_reason() {
    let state = apply(
        &accepted(),
        Party::Recipient,
        &not_connected(NotConnectedReason::DeclinedByFamily),
        &me(),
        at(40),
    )
    .unwrap();
    assert_eq!(state.connection, ConnectionState::NotConnected);
    assert_eq!(
        state.not_connected_reason,
        Some(NotConnectedReason::DeclinedByFamily)
    );
    assert_eq!(state.connection_updated_at, Some(at(40)));
    assert_eq!(state.linked_referral_id, None);
}

#[test]
fn reporting_not_connected_is_allowed_after_a_decline_or_a_failure() {
    let failed = apply(
        &in_progress(),
        Party::Recipient,
        &with_reason(ReferralAction::Fail, "x"),
        &me(),
        at(1),
    )
    .unwrap();
    for from in [declined(), failed] {
        let state = apply(
            &from,
            Party::Recipient,
            &not_connected(NotConnectedReason::NoCapacity),
            &me(),
            at(2),
        )
        .unwrap();
        assert_eq!(state.connection, ConnectionState::NotConnected);
        assert!(!state.is_closed(), "the report awaits confirmation");
    }
}

#[test]
fn reporting_not_connected_before_any_response_is_refused() {
    let err = apply(
        &ReferralState::new(),
        Party::Recipient,
        &not_connected(NotConnectedReason::Moved),
        &me(),
        at(1),
    )
    .unwrap_err();
    assert!(err.to_string().contains("accept or decline first"), "{err}");
}

#[test]
fn reporting_not_connected_without_a_reason_is_refused() {
    let err = try_act(
        &accepted(),
        Party::Recipient,
        ReferralAction::ReportNotConnected,
    )
    .unwrap_err();
    assert_eq!(
        err,
        TransitionError::MissingReason {
            action: ReferralAction::ReportNotConnected,
            field: "not_connected_reason",
        }
    );
}

#[test]
fn referred_elsewhere_needs_the_new_referral_and_records_it() {
    let err = apply(
        &accepted(),
        Party::Recipient,
        &not_connected(NotConnectedReason::ReferredElsewhere),
        &me(),
        at(1),
    )
    .unwrap_err();
    assert_eq!(
        err,
        TransitionError::MissingReason {
            action: ReferralAction::ReportNotConnected,
            field: "linked_referral_id",
        }
    );
    let link = ReferralId::generate();
    let state = apply(
        &accepted(),
        Party::Recipient,
        &ActionInput {
            linked_referral_id: Some(link.clone()),
            ..not_connected(NotConnectedReason::ReferredElsewhere)
        },
        &me(),
        at(1),
    )
    .unwrap();
    assert_eq!(state.linked_referral_id, Some(link));
}

#[test]
fn a_linked_referral_with_another_not_connected_reason_is_refused() {
    let err = apply(
        &accepted(),
        Party::Recipient,
        &ActionInput {
            linked_referral_id: Some(ReferralId::generate()),
            ..not_connected(NotConnectedReason::Moved)
        },
        &me(),
        at(1),
    )
    .unwrap_err();
    assert_eq!(
        err,
        TransitionError::UnexpectedField {
            action: ReferralAction::ReportNotConnected,
            field: "linked_referral_id",
        }
    );
    assert!(err.to_string().contains("referred_elsewhere"), "{err}");
}

#[test]
fn a_not_connected_reason_on_another_action_is_refused() {
    let err = apply(
        &accepted(),
        Party::Recipient,
        &ActionInput {
            not_connected_reason: Some(NotConnectedReason::Moved),
            ..ActionInput::new(ReferralAction::ReportConnected)
        },
        &me(),
        at(1),
    )
    .unwrap_err();
    assert_eq!(
        err,
        TransitionError::UnexpectedField {
            action: ReferralAction::ReportConnected,
            field: "not_connected_reason",
        }
    );
}

#[test]
fn the_sender_or_coordinator_confirms_a_reported_outcome() {
    let not_connected_state = apply(
        &accepted(),
        Party::Recipient,
        &not_connected(NotConnectedReason::CouldNotContact),
        &me(),
        at(1),
    )
    .unwrap();
    for party in [Party::Sender, Party::Coordinator] {
        for from in [connected(), not_connected_state.clone()] {
            let confirmer = AgencyId::parse("aoba-kodomo").unwrap();
            let state = apply(
                &from,
                party,
                &ActionInput::new(ReferralAction::Confirm),
                &confirmer,
                at(50),
            )
            .unwrap();
            assert_eq!(state.confirmed_at, Some(at(50)));
            assert_eq!(state.confirmed_by, Some(confirmer));
            assert!(state.is_closed());
        }
    }
}

#[test]
fn confirm_by_the_recipient_is_refused() {
    let err = try_act(&connected(), Party::Recipient, ReferralAction::Confirm).unwrap_err();
    assert_eq!(
        err,
        TransitionError::WrongParty {
            action: ReferralAction::Confirm,
            required: "the sender or the municipality's coordinator",
        }
    );
}

#[test]
fn confirming_before_the_outcome_is_reported_is_refused() {
    let tried = act(
        &accepted(),
        Party::Recipient,
        ReferralAction::RecordContactAttempt,
    );
    let err = try_act(&tried, Party::Sender, ReferralAction::Confirm).unwrap_err();
    assert_eq!(
        err,
        TransitionError::InvalidTransition {
            action: ReferralAction::Confirm,
            layer: "connection",
            from: "contact_attempted",
        }
    );
    assert!(err.to_string().contains("must first report"), "{err}");
    let err = try_act(&declined(), Party::Sender, ReferralAction::Confirm).unwrap_err();
    assert!(matches!(err, TransitionError::InvalidTransition { .. }));
}

#[test]
fn a_declined_referral_with_a_not_connected_report_can_be_confirmed() {
    let reported = apply(
        &declined(),
        Party::Recipient,
        &not_connected(NotConnectedReason::NotEligible),
        &me(),
        at(2),
    )
    .unwrap();
    let state = act(&reported, Party::Sender, ReferralAction::Confirm);
    assert!(state.is_closed());
}

#[test]
fn act_after_confirm_is_refused_for_every_action() {
    let closed = confirmed();
    // Closing with a reason comes after a confirmation; its refusals are tested with it.
    for action in ReferralAction::ALL
        .into_iter()
        .filter(|a| *a != ReferralAction::CloseWithReason)
    {
        let party = if matches!(action, ReferralAction::Cancel | ReferralAction::Confirm) {
            Party::Sender
        } else {
            Party::Recipient
        };
        let input = ActionInput {
            reason_code: Some("x".to_owned()),
            ..ActionInput::new(action)
        };
        let err = apply(&closed, party, &input, &me(), at(60)).unwrap_err();
        assert_eq!(
            err,
            TransitionError::Closed {
                action,
                state: "confirmed",
            },
        );
    }
    assert_eq!(
        try_act(&closed, Party::Sender, ReferralAction::Confirm)
            .unwrap_err()
            .to_string(),
        "cannot confirm the handoff: the referral is closed (confirmed)"
    );
}

#[test]
fn act_after_cancel_is_refused_for_every_action() {
    let closed = cancelled();
    for action in ReferralAction::ALL {
        let party = if matches!(
            action,
            ReferralAction::Cancel | ReferralAction::Confirm | ReferralAction::CloseWithReason
        ) {
            Party::Sender
        } else {
            Party::Recipient
        };
        let err = try_act(&closed, party, action).unwrap_err();
        assert!(
            matches!(
                err,
                TransitionError::Closed {
                    state: "cancelled",
                    ..
                }
            ),
            "{action}: {err}"
        );
    }
}

#[test]
fn a_refused_action_leaves_the_state_unchanged() {
    let before = accepted();
    let copy = before.clone();
    let _ = try_act(&before, Party::Sender, ReferralAction::Start);
    let _ = try_act(&before, Party::Recipient, ReferralAction::Complete);
    assert_eq!(before, copy);
}
