//! The codes and Japanese words of the 要対協 part of the contract (meeting kinds, registration
//! statuses, decision outcomes and triggers), as [`Coded`] values like the rest of the contract.

use tsunagu_proto::v1::{DecisionOutcome, DecisionTrigger, MeetingKind, RegistrationStatus};

use crate::render::Coded;

impl Coded for MeetingKind {
    fn code(self) -> &'static str {
        match self {
            MeetingKind::Unspecified => "unspecified",
            MeetingKind::Representatives => "representatives",
            MeetingKind::Practitioners => "practitioners",
            MeetingKind::IndividualCase => "individual_case",
        }
    }

    fn japanese(self) -> &'static str {
        match self {
            MeetingKind::Unspecified => "未設定",
            MeetingKind::Representatives => "代表者会議",
            MeetingKind::Practitioners => "実務者会議",
            MeetingKind::IndividualCase => "個別ケース検討会議",
        }
    }
}

impl Coded for RegistrationStatus {
    fn code(self) -> &'static str {
        match self {
            RegistrationStatus::Unspecified => "unspecified",
            RegistrationStatus::Active => "active",
            RegistrationStatus::Closed => "closed",
            RegistrationStatus::Transferred => "transferred",
        }
    }

    fn japanese(self) -> &'static str {
        match self {
            RegistrationStatus::Unspecified => "未設定",
            RegistrationStatus::Active => "登録中",
            RegistrationStatus::Closed => "終結",
            RegistrationStatus::Transferred => "移管",
        }
    }
}

impl Coded for DecisionOutcome {
    fn code(self) -> &'static str {
        match self {
            DecisionOutcome::Unspecified => "unspecified",
            DecisionOutcome::Continue => "continue",
            DecisionOutcome::Close => "close",
            DecisionOutcome::Transfer => "transfer",
        }
    }

    fn japanese(self) -> &'static str {
        match self {
            DecisionOutcome::Unspecified => "未設定",
            DecisionOutcome::Continue => "継続",
            DecisionOutcome::Close => "終結",
            DecisionOutcome::Transfer => "移管",
        }
    }
}

impl Coded for DecisionTrigger {
    fn code(self) -> &'static str {
        match self {
            DecisionTrigger::Unspecified => "unspecified",
            DecisionTrigger::OverdueHandoff => "overdue_handoff",
            DecisionTrigger::NotConnected => "not_connected",
            DecisionTrigger::ReviewPastDue => "review_past_due",
        }
    }

    fn japanese(self) -> &'static str {
        match self {
            DecisionTrigger::Unspecified => "未設定",
            DecisionTrigger::OverdueHandoff => "引継ぎの期限超過",
            DecisionTrigger::NotConnected => "つながらなかった紹介",
            DecisionTrigger::ReviewPastDue => "見直し漏れ",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::label;

    #[test]
    fn council_values_read_as_code_and_japanese() {
        assert_eq!(
            label(MeetingKind::Practitioners),
            "practitioners (実務者会議)"
        );
        assert_eq!(
            label(MeetingKind::IndividualCase),
            "individual_case (個別ケース検討会議)"
        );
        assert_eq!(label(RegistrationStatus::Closed), "closed (終結)");
        assert_eq!(label(DecisionOutcome::Transfer), "transfer (移管)");
        assert_eq!(
            label(DecisionTrigger::ReviewPastDue),
            "review_past_due (見直し漏れ)"
        );
        assert_eq!(label(DecisionOutcome::Unspecified), "-");
    }
}
