//! `tsunagu refer`: sends a referral about a case to one agency, with a sealed body.

use std::path::PathBuf;

use anyhow::anyhow;
use clap::{ArgGroup, Args};
use prost_types::Timestamp;
use tsunagu_client::render::{format_optional_japan_time, label, purpose_label};
use tsunagu_proto::v1::{Deadlines, SendReferralRequest, Urgency};

use super::Context;
use super::common::{
    BasisArgs, CallExt, UrgencyArg, WriteArgs, get_case, parse_agency, parse_code, parse_rfc3339,
    read_payload, resolve_case_id, seal_for,
};
use super::views::ReferralView;

pub const EXAMPLES: &str = "\
Examples:
  # Refer the mother to the hospital's 産後ケア, urgently, under the consent on the case
  tsunagu --as aoba-kodomo refer 3f8a51c0 --to aoba-hospital --purpose postnatal_care \\
      --urgency urgent --body-text '出産後の支援を依頼します。詳細は電話で。'

  # To the ひろば for 子育て支援, naming the consent, with the body from a file and an earlier
  # respond-by than the routine default
  tsunagu --as aoba-kodomo refer 3f8a51c0 --to aoba-hiroba --purpose parenting_support \\
      --consent <CONSENT_ID> --body-file referral.txt --respond-by 2026-04-03T17:00:00+09:00

  # A 通告 to the 児童相談所 (no consent needed; the justification must not name the family)
  tsunagu --as aoba-hospital refer 3f8a51c0 --to north-jisou --purpose child_protection \\
      --urgency emergency --basis abuse-notification \\
      --justification '児童虐待防止法6条に基づく通告' --body-file report.txt

The body is sealed on this machine to every active age key of the recipient, of your agency
and, for a case registered with 要対協, of the coordinator; the hub never sees it.
Deadlines default per urgency (hub configuration); --deliver-by … --confirm-by override them.";

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("body").required(true).args(["body_file", "body_text"])))]
pub struct ReferArgs {
    /// The case id (or its last 8 characters, as the tables show)
    #[arg(value_name = "CASE_ID")]
    pub case_id: String,

    /// The agency to refer to
    #[arg(long, value_name = "AGENCY", value_parser = parse_agency)]
    pub to: String,

    /// Purpose code: postnatal_care (産後ケア), home_visit_support (養育支援訪問),
    /// temporary_childcare (一時保育), nursery_admission (保育所入所),
    /// developmental_consultation (発達相談), psychiatric_care (精神科受診), home_visit (家庭訪問),
    /// parenting_support (子育て支援), prenatal_care (妊婦健診・妊娠期支援),
    /// child_protection (児童保護), or another code the hub knows
    #[arg(long, value_name = "CODE", value_parser = parse_code)]
    pub purpose: String,

    /// How urgent; the default deadlines follow from it
    #[arg(long, value_enum, default_value_t = UrgencyArg::Routine)]
    pub urgency: UrgencyArg,

    #[command(flatten)]
    pub basis: BasisArgs,

    /// The referral body from a file; `-` reads stdin. Sealed before it leaves this machine
    #[arg(long, value_name = "FILE")]
    pub body_file: Option<PathBuf>,

    /// The referral body as text. Sealed before it leaves this machine
    #[arg(long, value_name = "TEXT")]
    pub body_text: Option<String>,

    #[command(flatten)]
    pub deadlines: DeadlineArgs,

    #[command(flatten)]
    pub write: WriteArgs,
}

/// Overrides of the per-urgency default deadlines.
#[derive(Clone, Debug, Default, Args)]
pub struct DeadlineArgs {
    /// Override: the recipient's system must acknowledge receipt by then (RFC 3339)
    #[arg(long, value_name = "TIME", value_parser = parse_rfc3339)]
    pub deliver_by: Option<Timestamp>,

    /// Override: the recipient must accept or decline by then (RFC 3339)
    #[arg(long, value_name = "TIME", value_parser = parse_rfc3339)]
    pub respond_by: Option<Timestamp>,

    /// Override: the family must be reached by then (RFC 3339)
    #[arg(long, value_name = "TIME", value_parser = parse_rfc3339)]
    pub connect_by: Option<Timestamp>,

    /// Override: you (or the coordinator) must confirm the outcome by then (RFC 3339)
    #[arg(long, value_name = "TIME", value_parser = parse_rfc3339)]
    pub confirm_by: Option<Timestamp>,
}

impl DeadlineArgs {
    /// The overrides to send; `None` when none was given (the hub's defaults apply).
    pub fn overrides(&self) -> Option<Deadlines> {
        let d = Deadlines {
            deliver_by: self.deliver_by,
            respond_by: self.respond_by,
            connect_by: self.connect_by,
            confirm_by: self.confirm_by,
        };
        (d != Deadlines::default()).then_some(d)
    }
}

/// The request `refer` sends, before the case id is resolved and the body sealed.
pub fn refer_request(args: &ReferArgs) -> anyhow::Result<SendReferralRequest> {
    Ok(SendReferralRequest {
        case_id: args.case_id.clone(),
        to_agency: args.to.clone(),
        purpose: args.purpose.clone(),
        urgency: Urgency::from(args.urgency).into(),
        basis: Some(args.basis.legal_basis()?),
        body: None,
        deadlines: args.deadlines.overrides(),
        staff: Some(args.write.staff()),
        idempotency_key: args.write.idempotency_key(),
    })
}

pub async fn run(ctx: &Context, args: ReferArgs) -> anyhow::Result<()> {
    let mut request = refer_request(&args)?;
    let body = read_payload(args.body_file.as_deref(), args.body_text.as_deref())?
        .ok_or_else(|| anyhow!("give the referral body with --body-text or --body-file"))?;
    let hub = ctx.connect().await?;
    request.case_id = resolve_case_id(&hub, &args.case_id).await?;
    let case = get_case(&hub, &request.case_id).await?;
    let mut sealer = ctx.sealer(&hub)?;
    request.body = Some(
        seal_for(
            ctx,
            &mut sealer,
            &body,
            &[args.to.as_str()],
            Some(&case),
            args.write.idempotency_key.as_deref(),
        )
        .await?,
    );
    let referral = hub
        .referrals()
        .send_referral(request)
        .await
        .answer(&hub)?
        .referral
        .ok_or_else(|| anyhow!("the hub answered without the referral"))?;
    if ctx.json() {
        return ctx.print_json(&ReferralView::from(&referral));
    }
    let deadlines = referral.deadlines.unwrap_or_default();
    ctx.print(&format!(
        "sent referral {} to {}: {}, {}, basis {}\n  respond by {} JST, connect by {} JST\n",
        referral.referral_id,
        referral.to_agency,
        purpose_label(&referral.purpose),
        label(referral.urgency()),
        label(referral.basis()),
        format_optional_japan_time(deadlines.respond_by.as_ref()),
        format_optional_japan_time(deadlines.connect_by.as_ref()),
    ))
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use tsunagu_proto::v1::LegalBasisKind;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(extra: &[&str]) -> Result<ReferArgs, clap::Error> {
        let mut argv = vec!["tsunagu", "refer", "case-1", "--to", "aoba-hospital"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv)?.command {
            Command::Refer(args) => Ok(args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn a_referral_defaults_to_routine_under_consent_with_the_hub_deadlines() {
        let args = parse(&["--purpose", "postnatal_care", "--body-text", "x"]).unwrap();
        let request = refer_request(&args).unwrap();
        assert_eq!(request.urgency(), Urgency::Routine);
        let basis = request.basis.unwrap();
        assert_eq!(basis.kind(), LegalBasisKind::Consent);
        assert!(basis.consent_id.is_empty());
        assert!(request.deadlines.is_none());
        assert!(request.body.is_none());
    }

    #[test]
    fn urgency_basis_and_deadline_overrides_reach_the_request() {
        let args = parse(&[
            "--purpose",
            "child-protection",
            "--urgency",
            "emergency",
            "--basis",
            "abuse-notification",
            "--justification",
            "通告",
            "--respond-by",
            "2026-04-01T10:00:00+09:00",
            "--body-file",
            "report.txt",
        ])
        .unwrap();
        let request = refer_request(&args).unwrap();
        assert_eq!(request.purpose, "child_protection");
        assert_eq!(request.urgency(), Urgency::Emergency);
        assert_eq!(
            request.basis.unwrap().kind(),
            LegalBasisKind::AbuseNotification
        );
        let deadlines = request.deadlines.unwrap();
        assert!(deadlines.respond_by.is_some());
        assert!(deadlines.deliver_by.is_none());
    }

    #[test]
    fn an_abuse_notification_without_justification_is_refused_locally() {
        let args = parse(&[
            "--purpose",
            "child_protection",
            "--basis",
            "abuse-notification",
            "--body-text",
            "x",
        ])
        .unwrap();
        assert!(refer_request(&args).is_err());
    }

    #[test]
    fn an_unknown_urgency_is_a_usage_error() {
        assert!(
            parse(&[
                "--purpose",
                "postnatal_care",
                "--urgency",
                "asap",
                "--body-text",
                "x"
            ])
            .is_err()
        );
    }

    #[test]
    fn a_referral_needs_a_body() {
        assert!(parse(&["--purpose", "postnatal_care"]).is_err());
    }
}
