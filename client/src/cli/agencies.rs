//! `tsunagu agencies`: the agencies registered with the hub, as a table or JSON.

use clap::Args;
use tsunagu_client::render::{Table, join_or_dash};
use tsunagu_proto::v1::ListAgenciesRequest;

use super::Context;
use super::views::{AgencyView, roles_label};

#[derive(Debug, Args)]
pub struct AgenciesArgs {
    /// Only agencies serving this municipality (6-digit 全国地方公共団体コード, e.g. 141178)
    #[arg(long, value_name = "CODE")]
    pub municipality: Option<String>,

    /// Only agencies of this kind: health_centre, child_guidance_centre, hospital, nursery, support_hub, …
    #[arg(long, value_name = "KIND")]
    pub kind: Option<String>,
}

pub async fn run(ctx: &Context, args: AgenciesArgs) -> anyhow::Result<()> {
    let hub = ctx.connect().await?;
    let request = ListAgenciesRequest {
        municipality: args.municipality.unwrap_or_default(),
        kind: args.kind.unwrap_or_default(),
    };
    let agencies = hub
        .directory()
        .list_agencies(request)
        .await
        .map_err(|status| hub.call_error(status))?
        .into_inner()
        .agencies;

    if ctx.json() {
        let views: Vec<AgencyView> = agencies.iter().map(AgencyView::from).collect();
        return ctx.print_json(&views);
    }

    let mut table = Table::new([
        "ID",
        "KIND",
        "NAME",
        "MUNICIPALITIES",
        "COUNCIL",
        "ROLES",
        "STATUS",
    ]);
    for agency in &agencies {
        let view = AgencyView::from(agency);
        table.row([
            view.agency_id,
            view.kind,
            view.display_name,
            join_or_dash(&view.municipalities),
            join_or_dash(&view.council_memberships),
            roles_label(agency),
            view.status.to_owned(),
        ]);
    }
    if table.is_empty() {
        eprintln!("no agencies match");
        return Ok(());
    }
    ctx.print(&table.to_string())
}
