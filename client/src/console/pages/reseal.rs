//! 再封緘 on the case page: which sealed fields this agency cannot open (and who can), which it
//! can give to an agency with a basis that cannot open them yet, and the button that does it —
//! opening the field and sealing it again here, in memory, as `tsunagu reseal` does.

use axum::extract::{Extension, Path, State};
use axum::response::Response;
use tsunagu_proto::v1::{SealedFieldKind, SealedFieldReaders};

use super::{PageError, form_key, staff, submit};
use crate::console::form::FormData;
use crate::console::guard::SignedIn;
use crate::console::state::AppState;
use crate::console::view::Names;
use crate::render::short_id;
use crate::reseal::{self, Reseal, basis_label, field_label};

/// An agency a field may be given to, with the form key of its button.
pub struct ResealChoice {
    pub agency_id: String,
    pub name: String,
    pub basis: &'static str,
    pub idem: String,
}

/// One sealed field worth showing: one this agency cannot open, or one it can give to others.
pub struct SealedLine {
    pub label: &'static str,
    pub kind: &'static str,
    pub field_id: String,
    pub short: String,
    pub readers: String,
    pub can_open: bool,
    pub choices: Vec<ResealChoice>,
}

fn kind_code(kind: SealedFieldKind) -> &'static str {
    match kind {
        SealedFieldKind::ReferralBody => "referral_body",
        SealedFieldKind::NoteBody => "note_body",
        _ => "case_header",
    }
}

/// The lines of the case page's 封緘 section.
pub fn lines(fields: &[SealedFieldReaders], names: &Names) -> Vec<SealedLine> {
    fields
        .iter()
        .filter_map(|field| {
            let reference = field.field.as_ref()?;
            let choices: Vec<ResealChoice> = if field.caller_may_reseal {
                field
                    .could_add
                    .iter()
                    .map(|p| ResealChoice {
                        agency_id: p.agency_id.clone(),
                        name: names.of(&p.agency_id),
                        basis: basis_label(&p.basis),
                        idem: form_key(),
                    })
                    .collect()
            } else {
                Vec::new()
            };
            if field.caller_can_open && choices.is_empty() {
                return None;
            }
            Some(SealedLine {
                label: field_label(field),
                kind: kind_code(reference.kind()),
                field_id: reference.id.clone(),
                short: short_id(&reference.id).to_owned(),
                readers: field
                    .readers
                    .iter()
                    .map(|r| names.of(r))
                    .collect::<Vec<_>>()
                    .join("、"),
                can_open: field.caller_can_open,
                choices,
            })
        })
        .collect()
}

/// `POST /cases/{id}/reseal`: gives one field to one more agency.
pub async fn reseal(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
    Extension(form): Extension<FormData>,
    Path(case_id): Path<String>,
) -> Response {
    let write = async {
        let back = format!("/cases/{case_id}");
        let agency = form.get("agency").to_owned();
        if agency.is_empty() {
            return Err(PageError::invalid(
                "読めるようにする機関を選んでください",
                &back,
            ));
        }
        let hub = state.hub();
        let fields = reseal::fields(hub, &case_id).await?;
        let field = fields
            .iter()
            .find(|f| {
                f.field.as_ref().is_some_and(|r| {
                    kind_code(r.kind()) == form.get("kind") && r.id == form.get("field")
                })
            })
            .ok_or_else(|| {
                PageError::invalid("この欄は見つかりません。ページを開き直してください", &back)
            })?;
        let mut sealer = state.sealer()?;
        reseal::reseal(
            hub,
            &mut sealer,
            state.identities(),
            Reseal {
                field,
                add_readers: &[agency],
                staff: staff(&signed_in),
                idempotency_key: form.get("idem").to_owned(),
            },
        )
        .await?;
        Ok(back)
    };
    submit(&state, &form, write).await
}
