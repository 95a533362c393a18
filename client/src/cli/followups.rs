//! `tsunagu followups`: the worklist of overdue and due-soon handoffs (and, for a coordinator,
//! the shares made without consent awaiting review).

use clap::Args;
use tsunagu_client::render::short_id;
use tsunagu_proto::v1::{FollowUpItem, FollowUpsRequest};

use super::Context;
use super::common::{CallExt, parse_municipality};
use super::tables::{followups_table, is_basis_review};
use super::views::FollowUpView;

pub const EXAMPLES: &str = "\
Examples:
  # Your own worklist: what is overdue or due within 48 hours
  tsunagu --as aoba-hospital followups

  # The coordinator's worklist for 青葉区: every overdue handoff of the municipality and the
  # shares made without consent, with items due within the next week
  tsunagu --as aoba-kodomo followups --municipality 141178 --due-within-hours 168
  tsunagu --as aoba-kodomo followups --json

  # A confirmed \"did not connect\" stays listed (次の支援が必要) until the family is referred
  # again, or its need is closed with a reason
  tsunagu --as aoba-kodomo close <REFERRAL_ID> --reason moved-out";

#[derive(Debug, Args)]
pub struct FollowupsArgs {
    /// For a coordinator: the municipality whose worklist to see [default: your own items]
    #[arg(long, value_name = "CODE", value_parser = parse_municipality)]
    pub municipality: Option<String>,

    /// Also list items due within this many hours [default: 48]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=8760))]
    pub due_within_hours: Option<u32>,
}

pub async fn run(ctx: &Context, args: FollowupsArgs) -> anyhow::Result<()> {
    let hub = ctx.connect().await?;
    let items = hub
        .referrals()
        .follow_ups(FollowUpsRequest {
            municipality: args.municipality.unwrap_or_default(),
            due_within_hours: args.due_within_hours.unwrap_or(0),
        })
        .await
        .answer(&hub)?
        .items;
    if ctx.json() {
        let views: Vec<FollowUpView> = items.iter().map(FollowUpView::from).collect();
        return ctx.print_json(&views);
    }
    // A coordinator's open transfers (移管) stay on the worklist until they move.
    let transfers = super::transfer::worklist_lines(&hub).await;
    if items.is_empty() {
        eprintln!("nothing to follow up: no handoff is overdue or due soon");
        return match transfers {
            Some(lines) => ctx.print(&lines),
            None => Ok(()),
        };
    }
    let mut out = render(&items);
    if let Some(lines) = transfers {
        out.push('\n');
        out.push_str(&lines);
    }
    ctx.print(&out)
}

/// The worklist table, then the justifications of the shares awaiting review.
pub fn render(items: &[FollowUpItem]) -> String {
    let mut out = followups_table(items).to_string();
    let reviews: Vec<&FollowUpItem> = items
        .iter()
        .filter(|item| is_basis_review(item) && !item.justification.is_empty())
        .collect();
    if !reviews.is_empty() {
        out.push_str("\nShares without consent to review (根拠確認):\n");
        for item in reviews {
            let referral = item.referral.clone().unwrap_or_default();
            out.push_str(&format!(
                "  referral {}: {}\n",
                short_id(&referral.referral_id),
                tsunagu_client::render::sanitise_cell(&item.justification)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use tsunagu_proto::v1::{FollowUpStatus, Referral};

    use super::*;

    #[test]
    fn justifications_of_shares_without_consent_follow_the_table() {
        let items = [FollowUpItem {
            status: FollowUpStatus::BasisReview.into(),
            referral: Some(Referral {
                referral_id: "0190f3a2-0000-7000-8000-000000000001".into(),
                ..Referral::default()
            }),
            justification: "児童虐待防止法6条に基づく通告".into(),
            ..FollowUpItem::default()
        }];
        let text = render(&items);
        assert!(text.contains("basis_review (根拠確認)"), "{text}");
        assert!(
            text.ends_with("  referral 00000001: 児童虐待防止法6条に基づく通告\n"),
            "{text}"
        );
    }
}
