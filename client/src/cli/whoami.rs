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
    hub: String,
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

    if ctx.json() {
        return ctx.print_json(&WhoamiView {
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
