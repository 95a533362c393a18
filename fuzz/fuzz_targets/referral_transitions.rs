//! The referral rules (`domain::referral::apply`): any sequence of actions by any party, with or
//! without reasons and links, never panics, and every state reached keeps the invariants of the
//! three layers (delivery, response, connection) and of the timers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tsunagu_hub::domain::referral::{
    ActionInput, ConnectionState, DeliveryState, NotConnectedReason, Party, ReferralAction,
    ReferralState, ResponseState, apply, pending_timers,
};
use tsunagu_hub::domain::{AgencyId, ReferralId, Timestamp};

fn check(state: &ReferralState) {
    use ConnectionState as C;
    use ResponseState as R;
    assert_eq!(
        state.delivery == DeliveryState::Delivered,
        state.delivered_at.is_some(),
        "{state:?}"
    );
    assert_eq!(
        state.response != R::Requested,
        state.responded_at.is_some(),
        "{state:?}"
    );
    // An answer from the recipient proves delivery.
    if matches!(
        state.response,
        R::Accepted | R::Declined | R::InProgress | R::Completed | R::Failed
    ) {
        assert_eq!(state.delivery, DeliveryState::Delivered, "{state:?}");
    }
    assert_eq!(
        state.connection != C::NotUpdated,
        state.connection_updated_at.is_some(),
        "{state:?}"
    );
    if state.connection != C::NotUpdated {
        assert_ne!(state.response, R::Requested, "{state:?}");
    }
    assert_eq!(
        state.connection == C::NotConnected,
        state.not_connected_reason.is_some(),
        "{state:?}"
    );
    if state.linked_referral_id.is_some() {
        assert_eq!(
            state.not_connected_reason,
            Some(NotConnectedReason::ReferredElsewhere),
            "{state:?}"
        );
    }
    if state.contact_attempts > 0 {
        assert_ne!(state.connection, C::NotUpdated, "{state:?}");
    }
    assert_eq!(state.confirmed_at.is_some(), state.confirmed_by.is_some());
    if state.confirmed_at.is_some() {
        assert!(matches!(state.connection, C::Connected | C::NotConnected));
    }
    if matches!(state.response, R::Declined | R::Failed | R::Cancelled) {
        assert!(state.response_reason.is_some(), "{state:?}");
    }
    // Documented: closed exactly when no timer is pending.
    assert_eq!(
        state.is_closed(),
        pending_timers(state).is_empty(),
        "{state:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let actor = AgencyId::parse("fuzz-agency").unwrap();
    let linked = ReferralId::parse("0190a8f4-0000-7000-8000-000000000001").unwrap();
    let mut state = ReferralState::new();
    check(&state);
    for (step, chunk) in data.chunks_exact(3).enumerate() {
        let action = ReferralAction::ALL[chunk[0] as usize % ReferralAction::ALL.len()];
        let party = [
            Party::Sender,
            Party::Recipient,
            Party::Coordinator,
            Party::Other,
        ][chunk[1] as usize % 4];
        let flags = chunk[2];
        let input = ActionInput {
            action,
            reason_code: match flags & 3 {
                0 => None,
                1 => Some(String::new()),
                2 => Some("  ".to_owned()),
                _ => Some("no_capacity".to_owned()),
            },
            not_connected_reason: (flags & 4 != 0).then(|| {
                NotConnectedReason::ALL[(flags >> 4) as usize % NotConnectedReason::ALL.len()]
            }),
            linked_referral_id: (flags & 8 != 0).then(|| linked.clone()),
            reason_text: (flags & 64 != 0).then(|| "転出".to_owned()),
        };
        let at = Timestamp::from_millis(1_780_000_000_000 + step as i64 * 60_000);
        let was_final = state.confirmed_at.is_some() || state.response == ResponseState::Cancelled;
        match apply(&state, party, &input, &actor, at) {
            Ok(next) if action == ReferralAction::CloseWithReason => {
                // The next step after a confirmed "did not connect": the layers stay put.
                assert_eq!(next, state);
                assert!(state.confirmed_at.is_some());
                assert_eq!(state.connection, ConnectionState::NotConnected);
            }
            Ok(next) => {
                assert!(!was_final, "an action moved a finished referral: {state:?}");
                // Layers only move forward.
                if state.delivery == DeliveryState::Delivered {
                    assert_eq!(next.delivery, DeliveryState::Delivered);
                }
                if state.response != ResponseState::Requested {
                    assert_ne!(next.response, ResponseState::Requested);
                }
                assert!(next.contact_attempts >= state.contact_attempts);
                check(&next);
                state = next;
            }
            Err(refused) => {
                // Every refusal says something.
                assert!(!refused.to_string().is_empty());
            }
        }
    }
});
