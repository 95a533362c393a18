//! Sealing a field for everyone entitled to read it, from the hub's key directory.
//!
//! Every sealed field (case header, referral body, note, consent evidence, acknowledgement note)
//! is sealed to every active key of: each recipient agency, the sender's own agency (so that its
//! other staff and systems can read what it sent), and — when the case is registered with the
//! 要対協 — the coordinator(s) of the case's municipality. An agency with no active key is an
//! error, never a silent omission. Keys are checked against the profile's known-keys file
//! ([`KnownKeys`]) when one is given.
//!
//! ```no_run
//! # async fn example(hub: tsunagu_client::Hub) -> Result<(), tsunagu_client::ClientError> {
//! use tsunagu_client::sealing::Sealer;
//!
//! let mut sealer = Sealer::new(&hub);
//! let body = sealer.seal("産後ケアの依頼".as_bytes(), &["aoba-hospital"], None).await?;
//! # let _ = body;
//! # Ok(())
//! # }
//! ```

use age::x25519::Recipient;
use tsunagu_proto::v1::{
    AgencyKey, AgencyStatus, Case, ListAgenciesRequest, Sealed, WhoAmIRequest,
};

use crate::error::ClientError;
use crate::hub::Hub;
use crate::keys::{self, is_active, recipient_of};
use crate::seal::seal;
use crate::trust::{KeyNotice, KnownKeys};

/// Who one field is sealed to.
#[derive(Debug, Clone)]
pub struct SealPlan {
    /// The agencies, in order: the named ones, the sender's own, then the coordinators.
    pub agencies: Vec<String>,
    /// Every active key sealed to.
    pub keys: Vec<AgencyKey>,
    recipients: Vec<Recipient>,
}

impl SealPlan {
    /// The age recipients, one per key.
    pub fn recipients(&self) -> &[Recipient] {
        &self.recipients
    }

    /// Seals `plaintext` to every key of the plan.
    pub fn seal(&self, plaintext: &[u8]) -> Result<Sealed, ClientError> {
        Ok(Sealed {
            age: seal(plaintext, &self.recipients)?,
        })
    }
}

/// Seals fields for one agency's client: looks up recipients in the directory, checks them
/// against the known keys, and collects what the user should be told.
#[derive(Debug)]
pub struct Sealer {
    hub: Hub,
    known: Option<KnownKeys>,
    accept_key_change: bool,
    own_agency: Option<String>,
    notices: Vec<KeyNotice>,
}

impl Sealer {
    /// A sealer that believes the directory (no known-keys file).
    pub fn new(hub: &Hub) -> Self {
        Self {
            hub: hub.clone(),
            known: None,
            accept_key_change: false,
            own_agency: None,
            notices: Vec::new(),
        }
    }

    /// Checks every agency's keys against `known` (saved after each successful plan) before
    /// sealing; `accept_key_change` seals even when a verified key is no longer active.
    pub fn with_known_keys(mut self, known: KnownKeys, accept_key_change: bool) -> Self {
        self.known = Some(known);
        self.accept_key_change = accept_key_change;
        self
    }

    /// The known keys in use, if any.
    pub fn known_keys(&self) -> Option<&KnownKeys> {
        self.known.as_ref()
    }

    /// What the user should hear of since the last call (first use, changed keys).
    pub fn take_notices(&mut self) -> Vec<KeyNotice> {
        std::mem::take(&mut self.notices)
    }

    /// The caller's own agency, as the hub takes it from the certificate.
    pub async fn own_agency(&mut self) -> Result<String, ClientError> {
        if let Some(own) = &self.own_agency {
            return Ok(own.clone());
        }
        let me = self
            .hub
            .directory()
            .who_am_i(WhoAmIRequest {})
            .await
            .map_err(|status| self.hub.call_error(status))?
            .into_inner();
        let own = me
            .agency
            .map(|a| a.agency_id)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| ClientError::Seal("the hub did not say who this agency is".into()))?;
        self.own_agency = Some(own.clone());
        Ok(own)
    }

    /// The coordinators of a municipality (active agencies whose `coordinator_of` names it).
    pub async fn coordinators(&self, municipality: &str) -> Result<Vec<String>, ClientError> {
        let agencies = self
            .hub
            .directory()
            .list_agencies(ListAgenciesRequest {
                municipality: String::new(),
                kind: String::new(),
            })
            .await
            .map_err(|status| self.hub.call_error(status))?
            .into_inner()
            .agencies;
        Ok(agencies
            .into_iter()
            .filter(|a| a.status() == AgencyStatus::Active)
            .filter(|a| a.coordinator_of.iter().any(|m| m == municipality))
            .map(|a| a.agency_id)
            .collect())
    }

    /// Who a field about `case` (none: no case yet, or not about one) for `agencies` is sealed
    /// to: every active key of those agencies, of the caller's own agency and, for a case
    /// registered with the 要対協, of its municipality's coordinators.
    pub async fn plan(
        &mut self,
        agencies: &[&str],
        case: Option<&Case>,
    ) -> Result<SealPlan, ClientError> {
        let mut wanted: Vec<String> = Vec::new();
        let mut add = |agency: &str| {
            let agency = agency.trim();
            if !agency.is_empty() && !wanted.iter().any(|a| a == agency) {
                wanted.push(agency.to_owned());
            }
        };
        for agency in agencies {
            add(agency);
        }
        let own = self.own_agency().await?;
        add(&own);
        if let Some(case) = case.filter(|c| c.council_registered) {
            for coordinator in self.coordinators(&case.municipality).await? {
                add(&coordinator);
            }
        }

        let listed = keys::list(&self.hub, &wanted, false).await?;
        let mut plan = SealPlan {
            agencies: wanted.clone(),
            keys: Vec::new(),
            recipients: Vec::new(),
        };
        let mut notices = Vec::new();
        for agency in &wanted {
            let mut active: Vec<(AgencyKey, Recipient)> = Vec::new();
            for key in listed
                .iter()
                .filter(|k| &k.agency_id == agency && is_active(k))
            {
                active.push((key.clone(), recipient_of(key)?));
            }
            if active.is_empty() {
                return Err(ClientError::NoAgeKey {
                    agency: agency.clone(),
                });
            }
            if let Some(known) = &mut self.known {
                let fingerprints: Vec<String> =
                    active.iter().map(|(k, _)| k.fingerprint.clone()).collect();
                let seen = known.observe(agency, &fingerprints, self.accept_key_change)?;
                // One's own keys need no introduction; their changes still get a warning.
                notices.extend(seen.into_iter().filter(|notice| {
                    agency != &own || !matches!(notice, KeyNotice::FirstSeen { .. })
                }));
            }
            for (key, recipient) in active {
                plan.keys.push(key);
                plan.recipients.push(recipient);
            }
        }
        if let Some(known) = &mut self.known {
            known.save()?;
        }
        self.notices.extend(notices);
        Ok(plan)
    }

    /// Who the sealed detail of a reason (`reason_detail` of a decline, failure, cancellation,
    /// not-connected report or close) is sealed to: `agencies` (the referral's parties), the
    /// caller's own agency and the coordinators of the case's municipality, whether or not the
    /// case is registered with the 要対協, because the coordinator reviews them.
    pub async fn reason_detail_plan(
        &mut self,
        agencies: &[&str],
        case: &Case,
    ) -> Result<SealPlan, ClientError> {
        let coordinators = self.coordinators(&case.municipality).await?;
        let mut all: Vec<&str> = agencies.to_vec();
        all.extend(coordinators.iter().map(String::as_str));
        self.plan(&all, Some(case)).await
    }

    /// Seals `plaintext` for `agencies` (see [`Sealer::plan`]).
    pub async fn seal(
        &mut self,
        plaintext: &[u8],
        agencies: &[&str],
        case: Option<&Case>,
    ) -> Result<Sealed, ClientError> {
        self.plan(agencies, case).await?.seal(plaintext)
    }
}

/// Who a field is sealed to, believing the directory (see [`Sealer::plan`]).
pub async fn recipients_for(
    hub: &Hub,
    agencies: &[&str],
    case: Option<&Case>,
) -> Result<SealPlan, ClientError> {
    Sealer::new(hub).plan(agencies, case).await
}

/// Seals `plaintext` for `agencies`, the caller's own agency and, for a case registered with the
/// 要対協, its coordinators — believing the directory (use a [`Sealer`] with [`KnownKeys`] to
/// check keys as the CLI does).
pub async fn seal_for(
    hub: &Hub,
    plaintext: &[u8],
    agencies: &[&str],
    case: Option<&Case>,
) -> Result<Sealed, ClientError> {
    recipients_for(hub, agencies, case).await?.seal(plaintext)
}
