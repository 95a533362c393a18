//! `tsunagu whoami`: who the hub takes the caller to be, from its certificate.

use anyhow::anyhow;
use clap::Args;
use serde::Serialize;
use tsunagu_client::render::{KeyValues, format_optional_japan_time, format_rfc3339, join_or_dash};
use tsunagu_proto::v1::{WhoAmIRequest, WhoAmIResponse};

use super::Context;
use super::views::{AgencyView, roles_label};

#[derive(Debug, Args)]
pub struct WhoamiArgs {}

/// `whoami --json`: the agency's fields, the certificate and the hub asked.
#[derive(Debug, Serialize)]
struct WhoamiView {
    #[serde(flatten)]
    agency: AgencyView,
    certificate_fingerprint: String,
    /// RFC 3339, UTC; null when the hub did not say.
    certificate_not_after: Option<String>,
    /// Whole days until the certificate expires; null when the hub did not say.
    certificate_days_left: Option<i64>,
    hub: String,
}

/// Days before expiry from which `whoami` warns (as the hub's log does).
const WARNING_DAYS: i64 = 30;

/// Whole days from now until `not_after` (negative once passed).
fn days_left(not_after: &prost_types::Timestamp) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64);
    (not_after.seconds - now).div_euclid(24 * 60 * 60)
}

/// The warning for staff, in Japanese, when the certificate expires within 30 days (windows of
/// 30, 14, 7 and 1 days, like the hub's), or has expired.
pub fn expiry_warning(days_left: i64) -> Option<String> {
    if days_left < 0 {
        Some(
            "警告: この機関の証明書は有効期限が切れています。ハブ運用者に新しい証明書の発行を\
             依頼し、差し替えてください。"
                .to_owned(),
        )
    } else if days_left <= WARNING_DAYS {
        Some(format!(
            "警告: この機関の証明書はあと{days_left}日で有効期限が切れます。期限が切れると\
             ハブにつながらなくなります。今すぐハブ運用者に新しい証明書の発行を依頼し、\
             期限までに差し替えてください。"
        ))
    } else {
        None
    }
}

pub async fn run(ctx: &Context, _args: WhoamiArgs) -> anyhow::Result<()> {
    let hub = ctx.connect().await?;
    let answer: WhoAmIResponse = hub
        .directory()
        .who_am_i(WhoAmIRequest {})
        .await
        .map_err(|status| hub.call_error(status))?
        .into_inner();
    let agency = answer
        .agency
        .as_ref()
        .ok_or_else(|| anyhow!("the hub at {} answered without an agency", hub.endpoint()))?;

    let days = answer.certificate_not_after.as_ref().map(days_left);
    // On standard error, so that `--json` output stays one JSON value for scripts.
    if let Some(warning) = days.and_then(expiry_warning) {
        eprintln!("{warning}");
    }
    if ctx.json() {
        return ctx.print_json(&WhoamiView {
            certificate_days_left: days,
            agency: AgencyView::from(agency),
            certificate_fingerprint: answer.certificate_fingerprint.clone(),
            certificate_not_after: answer
                .certificate_not_after
                .as_ref()
                .and_then(format_rfc3339),
            hub: hub.endpoint().to_owned(),
        });
    }

    let view = AgencyView::from(agency);
    let mut list = KeyValues::new();
    list.entry("agency", &view.agency_id)
        .entry("kind", &view.kind)
        .entry("name", &view.display_name)
        .entry("municipalities", join_or_dash(&view.municipalities))
        .entry("council member of", join_or_dash(&view.council_memberships))
        .entry("roles", roles_label(agency))
        .entry("status", view.status)
        .entry("spiffe id", &view.spiffe_id)
        .entry(
            "certificate",
            format!("sha256 {}", answer.certificate_fingerprint),
        )
        .entry(
            "certificate expires",
            format!(
                "{} JST",
                format_optional_japan_time(answer.certificate_not_after.as_ref())
            ),
        )
        .entry("hub", hub.endpoint());
    ctx.print(&list.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staff_are_warned_in_japanese_within_thirty_days_of_expiry() {
        assert!(expiry_warning(31).is_none());
        assert!(expiry_warning(30).unwrap().contains("あと30日"));
        assert!(expiry_warning(10).unwrap().contains("証明書"));
        assert!(expiry_warning(-1).unwrap().contains("切れています"));
    }
}
