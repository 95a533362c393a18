//! OutcomeService: the population view of the caller's referrals (counts and durations only),
//! with small counts suppressed on request for exports read outside the coordinator's office.

use tonic::{Request, Response, Status};
use tsunagu_proto::v1 as pb;
use tsunagu_proto::v1::outcome_service_server::OutcomeService;

use super::{Hub, convert};
use crate::casework::outcomes::{OutcomeQuery, caller_outcomes};
use crate::domain::outcomes::{Dimension, Figures, suppress};
use crate::error::Error;
use crate::identity::caller;

/// The highest suppression threshold a request may ask for.
const MAX_SUPPRESS_BELOW: u32 = 100;

fn dimension(value: i32) -> Result<Dimension, Error> {
    use pb::OutcomeDimension as D;
    Ok(match D::try_from(value) {
        Ok(D::Sender) => Dimension::Sender,
        Ok(D::Recipient) => Dimension::Recipient,
        Ok(D::RecipientKind) => Dimension::RecipientKind,
        Ok(D::Purpose) => Dimension::Purpose,
        Ok(D::Urgency) => Dimension::Urgency,
        Ok(D::LegalBasis) => Dimension::LegalBasis,
        Ok(D::Month) => Dimension::Month,
        _ => {
            return Err(Error::invalid(
                "group_by",
                format!(
                    "{value} is not a dimension: use sender, recipient, recipient_kind, \
                     purpose, urgency, legal_basis or month"
                ),
            ));
        }
    })
}

fn dimension_out(dimension: Dimension) -> pb::OutcomeDimension {
    use pb::OutcomeDimension as D;
    match dimension {
        Dimension::Sender => D::Sender,
        Dimension::Recipient => D::Recipient,
        Dimension::RecipientKind => D::RecipientKind,
        Dimension::Purpose => D::Purpose,
        Dimension::Urgency => D::Urgency,
        Dimension::LegalBasis => D::LegalBasis,
        Dimension::Month => D::Month,
    }
}

/// The figures as sent, with every count from 1 to `threshold - 1` replaced by the marker.
pub fn figures_out(f: &Figures, threshold: u32) -> pb::OutcomeFigures {
    let count = |value: u64| match suppress(value, threshold) {
        Some(value) => Some(pb::Count {
            value,
            suppressed: false,
        }),
        None => Some(pb::Count {
            value: 0,
            suppressed: true,
        }),
    };
    // Reason codes most frequent first, then by code.
    let codes = |map: &std::collections::BTreeMap<String, u64>| {
        let mut entries: Vec<_> = map.iter().collect();
        entries.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        entries
            .into_iter()
            .map(|(code, n)| pb::CodeCount {
                code: code.clone(),
                count: count(*n),
            })
            .collect()
    };
    let mut overdue = Vec::new();
    for (t, ages) in f.overdue.iter().enumerate() {
        for (a, n) in ages.iter().enumerate() {
            if *n > 0 {
                overdue.push(pb::OverdueCount {
                    timer: t as i32 + 1,
                    age: a as i32 + 1,
                    count: count(*n),
                });
            }
        }
    }
    let mut escalations = Vec::new();
    for (t, tiers) in f.escalations.iter().enumerate() {
        for (tier, n) in tiers.iter().enumerate() {
            if *n > 0 {
                escalations.push(pb::EscalationCount {
                    timer: t as i32 + 1,
                    tier: tier as i32 + 1,
                    count: count(*n),
                });
            }
        }
    }
    pb::OutcomeFigures {
        referrals: count(f.referrals),
        delivery: Some(pb::DeliveryCounts {
            sent: count(f.delivery[0]),
            delivered: count(f.delivery[1]),
        }),
        response: Some(pb::ResponseCounts {
            requested: count(f.response[0]),
            accepted: count(f.response[1]),
            declined: count(f.response[2]),
            in_progress: count(f.response[3]),
            completed: count(f.response[4]),
            failed: count(f.response[5]),
            cancelled: count(f.response[6]),
        }),
        connection: Some(pb::ConnectionCounts {
            not_updated: count(f.connection[0]),
            contact_attempted: count(f.connection[1]),
            connected: count(f.connection[2]),
            not_connected: count(f.connection[3]),
            not_connected_by_reason: f
                .not_connected
                .iter()
                .enumerate()
                .map(|(i, n)| pb::ReasonCount {
                    reason: i as i32 + 1,
                    count: count(*n),
                })
                .collect(),
            confirmed: count(f.confirmed),
            awaiting_confirmation: count(f.awaiting_confirmation),
        }),
        durations: f
            .durations
            .iter()
            .enumerate()
            .map(|(i, stats)| {
                // Percentiles of a suppressed handful would describe those few families.
                let shown = suppress(stats.reached, threshold).is_some();
                pb::MilestoneDuration {
                    milestone: i as i32 + 1,
                    reached: count(stats.reached),
                    median_seconds: if shown { stats.median_seconds } else { 0 },
                    p90_seconds: if shown { stats.p90_seconds } else { 0 },
                    histogram: stats
                        .histogram
                        .iter()
                        .map(|n| count(*n).unwrap_or_default())
                        .collect(),
                }
            })
            .collect(),
        overdue,
        declines: codes(&f.declines),
        failures: codes(&f.failures),
        cancellations: codes(&f.cancellations),
        escalations,
        journeys: Some(pb::JourneyCounts {
            journeys: count(f.journeys.journeys),
            connected: count(f.journeys.connected),
            not_connected: count(f.journeys.not_connected),
            open: count(f.journeys.open),
            left_scope: count(f.journeys.left_scope),
        }),
    }
}

#[tonic::async_trait]
impl OutcomeService for Hub {
    async fn get_outcomes(
        &self,
        request: Request<pb::GetOutcomesRequest>,
    ) -> Result<Response<pb::GetOutcomesResponse>, Status> {
        let agency = caller(&request)?.agency.clone();
        let body = request.get_ref();
        let audit = self
            .audit(&agency, "OutcomeService/GetOutcomes")
            .municipality(&body.municipality);
        let result = async {
            let query = OutcomeQuery {
                from: convert::date("from", &body.from)?,
                to: convert::date("to", &body.to)?,
                group_by: body
                    .group_by
                    .iter()
                    .map(|d| dimension(*d))
                    .collect::<Result<_, _>>()?,
                municipality: convert::optional_municipality("municipality", &body.municipality)?,
            };
            if body.suppress_below > MAX_SUPPRESS_BELOW {
                return Err(Error::invalid(
                    "suppress_below",
                    format!("must be at most {MAX_SUPPRESS_BELOW}"),
                ));
            }
            let now = self.clock.now();
            let mut tx = self.store.read().await?;
            let answer = caller_outcomes(&mut *tx, &agency, &query, now).await?;
            drop(tx);
            let threshold = body.suppress_below;
            let response = pb::GetOutcomesResponse {
                groups: answer
                    .outcomes
                    .groups
                    .iter()
                    .map(|(key, figures)| pb::OutcomeGroup {
                        key: query
                            .group_by
                            .iter()
                            .zip(key)
                            .map(|(d, value)| pb::GroupKey {
                                dimension: dimension_out(*d) as i32,
                                value: value.clone(),
                            })
                            .collect(),
                        figures: Some(figures_out(figures, threshold)),
                    })
                    .collect(),
                totals: Some(figures_out(&answer.outcomes.totals, threshold)),
                from: convert::date_text(query.from),
                to: convert::date_text(query.to),
                suppress_below: threshold,
                computed_at: Some(convert::timestamp(now)),
                municipalities: answer
                    .municipalities
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            };
            audit.read(self, audit.named()).await?;
            Ok(response)
        }
        .await;
        audit.finish(self, result).await
    }
}
