//! Re-sealing a sealed field to new readers on this machine: the field is opened with this
//! agency's identity, sealed again to its current readers and the new ones, and the new
//! ciphertext is uploaded. The plaintext never leaves memory; the hub never sees it.
//!
//! ```no_run
//! # async fn example(hub: tsunagu_client::Hub, identities: Vec<age::x25519::Identity>,
//! #     case_id: String) -> Result<(), tsunagu_client::ClientError> {
//! use tsunagu_client::reseal::{Reseal, fields, reseal};
//! use tsunagu_client::sealing::Sealer;
//! use tsunagu_proto::v1::Staff;
//!
//! let listed = fields(&hub, &case_id).await?;
//! let header = listed[0].clone();
//! let mut sealer = Sealer::new(&hub);
//! let ask = Reseal {
//!     field: &header,
//!     add_readers: &["aoba-kodomo".to_owned()],
//!     staff: Staff { name: "佐藤".into(), role: "保健師".into() },
//!     idempotency_key: String::new(),
//! };
//! reseal(&hub, &mut sealer, &identities, ask).await?;
//! # Ok(())
//! # }
//! ```

use age::x25519::Identity;
use tsunagu_proto::v1::{
    ListSealedFieldsRequest, ResealRequest, ResealResponse, SealedFieldKind, SealedFieldReaders,
    Staff,
};

use crate::error::ClientError;
use crate::hub::Hub;
use crate::seal::open_with;
use crate::sealing::Sealer;

/// The sealed fields of a case the caller may see, header first, with their readers.
pub async fn fields(hub: &Hub, case_id: &str) -> Result<Vec<SealedFieldReaders>, ClientError> {
    Ok(hub
        .sealing()
        .list_sealed_fields(ListSealedFieldsRequest {
            case_id: case_id.to_owned(),
        })
        .await
        .map_err(|status| hub.call_error(status))?
        .into_inner()
        .fields)
}

/// A re-seal to make.
#[derive(Debug, Clone)]
pub struct Reseal<'a> {
    /// The field as [`fields`] listed it (its readers and ciphertext).
    pub field: &'a SealedFieldReaders,
    pub add_readers: &'a [String],
    pub staff: Staff,
    /// Empty: one is made up, so the call is never retried as the same request.
    pub idempotency_key: String,
}

/// A kind of sealed field as people read it.
pub fn kind_label(kind: Option<SealedFieldKind>) -> &'static str {
    match kind {
        Some(SealedFieldKind::CaseHeader) => "ケースの基本情報",
        Some(SealedFieldKind::ReferralBody) => "紹介の本文",
        Some(SealedFieldKind::NoteBody) => "連絡の本文",
        _ => "封緘された欄",
    }
}

/// The field's name as people read it.
pub fn field_label(field: &SealedFieldReaders) -> &'static str {
    kind_label(field.field.as_ref().map(|f| f.kind()))
}

/// Why an agency may be added as a reader, as people read it (the hub's basis code).
pub fn basis_label(code: &str) -> &'static str {
    match code {
        "participant" => "関係機関",
        "coordinator" => "調整機関（要対協）",
        "lead_agency" => "主担当機関",
        "transfer_receiver" => "移管先",
        _ => "根拠あり",
    }
}

/// Opens the field with `identities`, seals it to its current readers and `add_readers`, and
/// uploads it. Refused here, before any call, when this agency cannot open or re-seal it.
pub async fn reseal(
    hub: &Hub,
    sealer: &mut Sealer,
    identities: &[Identity],
    ask: Reseal<'_>,
) -> Result<ResealResponse, ClientError> {
    let field = ask.field;
    let Some(sealed) = field.sealed.as_ref().filter(|_| field.caller_may_reseal) else {
        return Err(ClientError::Seal(format!(
            "この{}はあなたの機関では開けない（または通告者を含む）ため、再封緘できません。\
             開ける機関（{}）に依頼してください",
            field_label(field),
            field.readers.join("、")
        )));
    };
    let plaintext = open_with(&sealed.age, identities)?;
    let mut readers: Vec<&str> = field.readers.iter().map(String::as_str).collect();
    readers.extend(ask.add_readers.iter().map(String::as_str));
    let plan = sealer.plan(&readers, None).await?;
    let resealed = plan.seal(&plaintext)?;
    let idempotency_key = if ask.idempotency_key.is_empty() {
        uuid::Uuid::new_v4().to_string()
    } else {
        ask.idempotency_key
    };
    Ok(hub
        .sealing()
        .reseal(ResealRequest {
            field: field.field.clone(),
            add_readers: ask.add_readers.to_vec(),
            current_readers: field.readers.clone(),
            sealed: Some(resealed),
            staff: Some(ask.staff),
            idempotency_key,
        })
        .await
        .map_err(|status| hub.call_error(status))?
        .into_inner())
}
