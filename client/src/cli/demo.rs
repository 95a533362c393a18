//! `tsunagu demo`: walks the whole referral loop against a running hub as three development
//! agencies, narrating each step in Japanese and English for a newcomer.
//!
//! The narration is fixed text (only ids and times vary), every step checks what the hub
//! answered, and any failure ends the demo with a non-zero exit status naming the step. Each run
//! opens a new case, so the demo can be run again and again against the same hub.

use std::time::Duration as StdDuration;

use anyhow::{Context as _, anyhow, bail};
use clap::Args;
use serde::Serialize;
use time::{Duration, OffsetDateTime};
use tsunagu_client::Hub;
use tsunagu_client::render::{label, short_id};
use tsunagu_proto::v1::{
    Case, CaseCategory, CaseStage, ConnectionState, ConsentGiver, ConsentMethod, ConsentScope,
    Deadlines, DeliveryState, FollowUpItem, FollowUpStatus, FollowUpsRequest, GetReferralRequest,
    LegalBasis, LegalBasisKind, ListReferralsRequest, NotConnectedReason, OpenCaseRequest,
    RecordConsentRequest, RecordReferralActionRequest, Referral, ReferralAction, ReferralDirection,
    ResponseState, Sealed, SendReferralRequest, Staff, TimerKind, Urgency,
};

use super::Context;
use super::action;
use super::common::{CallExt, open_sealed, seal_for, to_timestamp, today_in_japan};
use super::tables::{followups_table, referrals_table};
use super::views::{FollowUpView, ReferralView};

pub const EXAMPLES: &str = "\
Examples:
  # Start a development hub in one terminal …
  cargo run -p tsunagu-hub -- serve
  # … and walk the loop in another (acts as aoba-kodomo, aoba-hospital and aoba-hiroba)
  tsunagu demo

  # Against another hub address, or as one JSON summary for scripts
  tsunagu demo --hub https://127.0.0.1:7443
  tsunagu demo --json

The demo always acts as the development agencies of the certs-dev directory
($TSUNAGU_CERTS_DEV, default ./certs-dev), whatever --as or --profile say. Each run opens a
new case. It takes a few seconds: the ひろば referral is sent with deadlines a few seconds
ahead, and the demo waits for them to pass so that an overdue item shows on the worklist.";

/// The coordinator: 青葉区こども家庭センター.
const COORDINATOR: &str = "aoba-kodomo";
/// The hospital: 青葉総合病院 産婦人科.
const HOSPITAL: &str = "aoba-hospital";
/// The community parenting support hub: 地域子育て支援拠点 ひろば.
const HIROBA: &str = "aoba-hiroba";
/// 横浜市青葉区.
const MUNICIPALITY: &str = "141178";
/// How many numbered steps the narration has.
const STEPS: usize = 12;
/// The indentation under a step number such as "[ 1/12] ".
const INDENT: &str = "        ";
/// How far ahead the ひろば referral's deliver/respond/connect deadlines are set.
const SHORT_DEADLINE: Duration = Duration::seconds(3);
/// How far ahead its confirm-by deadline is set.
const SHORT_CONFIRM: Duration = Duration::seconds(4);

#[derive(Debug, Args)]
pub struct DemoArgs {}

/// One development agency the demo acts as.
struct Actor {
    id: &'static str,
    ctx: Context,
    hub: Hub,
    staff: Staff,
}

impl Actor {
    async fn connect(
        ctx: &Context,
        id: &'static str,
        name: &str,
        role: &str,
    ) -> anyhow::Result<Actor> {
        let ctx = ctx.as_dev_agency(id);
        let hub = ctx
            .connect()
            .await
            .with_context(|| format!("demo: connecting as {id}"))?;
        Ok(Actor {
            id,
            ctx,
            hub,
            staff: Staff {
                name: name.to_owned(),
                role: role.to_owned(),
            },
        })
    }

    /// Records one action on a referral as this agency, with an optional sealed note.
    async fn act(
        &self,
        referral_id: &str,
        action: ReferralAction,
        not_connected: Option<NotConnectedReason>,
        note: Option<&str>,
    ) -> anyhow::Result<Referral> {
        let request = RecordReferralActionRequest {
            referral_id: referral_id.to_owned(),
            action: action.into(),
            not_connected_reason: not_connected.unwrap_or_default().into(),
            staff: Some(self.staff.clone()),
            idempotency_key: fresh_key(),
            ..RecordReferralActionRequest::default()
        };
        let answer = action::record(
            &self.ctx,
            &self.hub,
            request,
            note.map(|text| text.as_bytes().to_vec()),
            None,
            None,
        )
        .await?;
        answer
            .referral
            .ok_or_else(|| anyhow!("the hub answered without the referral"))
    }

    /// Seals a field as this agency, exactly as the CLI's commands do: to the active keys of
    /// `agencies`, of this agency and, for a 要対協 case, of the coordinator.
    async fn seal(
        &self,
        plaintext: &str,
        agencies: &[&str],
        case: Option<&Case>,
    ) -> anyhow::Result<Sealed> {
        let mut sealer = self.ctx.sealer(&self.hub)?;
        seal_for(
            &self.ctx,
            &mut sealer,
            plaintext.as_bytes(),
            agencies,
            case,
            None,
        )
        .await
    }

    async fn referral(&self, referral_id: &str) -> anyhow::Result<Referral> {
        self.hub
            .referrals()
            .get_referral(GetReferralRequest {
                referral_id: referral_id.to_owned(),
            })
            .await
            .answer(&self.hub)?
            .referral
            .ok_or_else(|| anyhow!("the hub answered without the referral"))
    }
}

fn fresh_key() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Prints the narration (not with --json) and numbers the steps.
struct Narrator<'a> {
    ctx: &'a Context,
    step: usize,
}

impl Narrator<'_> {
    fn say(&self, text: &str) -> anyhow::Result<()> {
        if self.ctx.json() {
            return Ok(());
        }
        self.ctx.print(text)
    }

    /// Starts the next step: its number, the Japanese line, then the English line.
    fn step(&mut self, japanese: &str, english: &str) -> anyhow::Result<usize> {
        self.step += 1;
        let number = format!("[{:>2}/{STEPS}]", self.step);
        self.say(&format!("\n{number} {japanese}\n{INDENT}{english}\n"))?;
        Ok(self.step)
    }

    /// One result line of the current step.
    fn result(&self, text: &str) -> anyhow::Result<()> {
        self.say(&format!("{INDENT}→ {text}\n"))
    }

    /// A table or other block, indented under the step.
    fn block(&self, text: &str) -> anyhow::Result<()> {
        let indented: String = text
            .lines()
            .map(|line| format!("{INDENT}{line}\n"))
            .collect();
        self.say(&indented)
    }
}

/// Fails the demo when the hub's answer is not what the step expects.
fn expect(ok: bool, what: impl FnOnce() -> String) -> anyhow::Result<()> {
    if ok {
        Ok(())
    } else {
        bail!("the hub's answer was not as expected: {}", what())
    }
}

/// The three layers of a referral in one line.
fn layers(referral: &Referral) -> String {
    format!(
        "referral {}: {} · {} · {}{}",
        short_id(&referral.referral_id),
        label(referral.delivery()),
        label(referral.response()),
        label(referral.connection()),
        if referral.contact_attempts > 0 {
            format!(" (contact attempts: {})", referral.contact_attempts)
        } else {
            String::new()
        }
    )
}

#[derive(Debug, Serialize)]
struct DemoSummary {
    ok: bool,
    hub: String,
    case_id: String,
    consent_id: String,
    hospital_referral: ReferralView,
    hiroba_referral: ReferralView,
    /// The coordinator's follow-up items for this run's case.
    followups: Vec<FollowUpView>,
    /// Follow-up items of other cases (earlier runs) on the same worklist.
    other_followups: usize,
}

pub async fn run(ctx: &Context, _args: DemoArgs) -> anyhow::Result<()> {
    let mut n = Narrator { ctx, step: 0 };
    let kodomo = Actor::connect(
        ctx,
        COORDINATOR,
        "青葉 さくら (デモ)",
        "母子保健コーディネーター",
    )
    .await?;
    let hospital = Actor::connect(
        ctx,
        HOSPITAL,
        "緑川 医療SW (デモ)",
        "医療ソーシャルワーカー",
    )
    .await?;
    let hiroba = Actor::connect(ctx, HIROBA, "森 ひろばスタッフ (デモ)", "子育て支援員").await?;
    n.say(&format!(
        "Tsunagu デモ — つなぐ: the referral loop, step by step (hub {})\n\
         Agencies (development certificates): {COORDINATOR} 青葉区こども家庭センター (調整機関, coordinator),\n\
         {HOSPITAL} 青葉総合病院 産婦人科 (hospital), {HIROBA} 地域子育て支援拠点 ひろば (community hub).\n\
         All content (case header, referral bodies, notes, consent evidence) is sealed with age on this machine to the agencies'\n\
         keys from the hub's key directory; the hub sees only routing data.\n",
        kodomo.hub.endpoint()
    ))?;

    // 1. The case.
    let step = n.step(
        "こども家庭センターが特定妊婦のケースを開きます。氏名などのヘッダーは暗号化されます。",
        "aoba-kodomo opens a case for a specific expectant mother (特定妊婦) in 141178, stage pregnancy; the header with her name is sealed.",
    )?;
    let case = async {
        let header = "氏名: 青葉 花子（架空）\n生年月日: 1998-05-01\n住所: 横浜市青葉区（デモ）\n出産予定日: 妊娠32週\n";
        let header = kodomo.seal(header, &[HOSPITAL, HIROBA], None).await?;
        let case = kodomo
            .hub
            .cases()
            .open_case(OpenCaseRequest {
                municipality: MUNICIPALITY.to_owned(),
                category: CaseCategory::SpecificExpectantMother.into(),
                stage: CaseStage::Pregnancy.into(),
                header: Some(header),
                staff: Some(kodomo.staff.clone()),
                idempotency_key: fresh_key(),
            })
            .await
            .answer(&kodomo.hub)?
            .case
            .ok_or_else(|| anyhow!("the hub answered without the case"))?;
        expect(
            case.category() == CaseCategory::SpecificExpectantMother,
            || format!("case category {}", label(case.category())),
        )?;
        anyhow::Ok(case)
    }
    .await
    .with_context(|| format!("demo step {step} (open the case)"))?;
    n.result(&format!(
        "case {}: {}, {}, municipality {}",
        case.case_id,
        label(case.category()),
        label(case.stage()),
        case.municipality
    ))?;
    let case_id = case.case_id.clone();

    // 2. Consent.
    let step = n.step(
        "本人から書面で同意を得て記録します（病院・ひろば、産後ケア・子育て支援）。",
        "aoba-kodomo records the mother's written consent: aoba-hospital and aoba-hiroba may receive, for postnatal_care and parenting_support.",
    )?;
    let consent = async {
        let evidence = kodomo
            .seal(
                "同意書（書面）: 2025年度様式、本人署名あり（デモ）",
                &[],
                Some(&case),
            )
            .await?;
        kodomo
            .hub
            .cases()
            .record_consent(RecordConsentRequest {
                case_id: case_id.clone(),
                given_by: ConsentGiver::Person.into(),
                method: ConsentMethod::Written.into(),
                scope: Some(ConsentScope {
                    recipient_agencies: vec![HOSPITAL.to_owned(), HIROBA.to_owned()],
                    recipient_kinds: Vec::new(),
                    purposes: vec!["postnatal_care".to_owned(), "parenting_support".to_owned()],
                }),
                valid_from: today_in_japan(),
                valid_until: String::new(),
                evidence: Some(evidence),
                staff: Some(kodomo.staff.clone()),
                idempotency_key: fresh_key(),
            })
            .await
            .answer(&kodomo.hub)?
            .consent
            .ok_or_else(|| anyhow!("the hub answered without the consent"))
    }
    .await
    .with_context(|| format!("demo step {step} (record the consent)"))?;
    n.result(&format!(
        "consent {}: {}, {}, valid from {}",
        consent.consent_id,
        label(consent.given_by()),
        label(consent.method()),
        consent.valid_from
    ))?;

    let consent_basis = LegalBasis {
        kind: LegalBasisKind::Consent.into(),
        consent_id: consent.consent_id.clone(),
        justification: String::new(),
    };

    // 3. Referral to the hospital.
    let step = n.step(
        "病院へ産後ケアを「至急」で紹介します。紹介状の本文は暗号化されます。",
        "aoba-kodomo refers the mother to aoba-hospital for postnatal care (産後ケア), urgent; the body is sealed to the centre and the hospital.",
    )?;
    let to_hospital = async {
        let body = kodomo
            .seal(
                "産後ケア（宿泊型）の利用を依頼します。初産で身近な支援者が少なく、育児への不安が強い方です。（デモ・架空）",
                &[HOSPITAL],
                Some(&case),
            )
            .await?;
        kodomo
            .hub
            .referrals()
            .send_referral(SendReferralRequest {
                case_id: case_id.clone(),
                to_agency: HOSPITAL.to_owned(),
                purpose: "postnatal_care".to_owned(),
                urgency: Urgency::Urgent.into(),
                basis: Some(consent_basis.clone()),
                body: Some(body),
                deadlines: None,
                staff: Some(kodomo.staff.clone()),
                idempotency_key: fresh_key(),
            })
            .await
            .answer(&kodomo.hub)?
            .referral
            .ok_or_else(|| anyhow!("the hub answered without the referral"))
    }
    .await
    .with_context(|| format!("demo step {step} (refer to {HOSPITAL})"))?;
    n.result(&format!(
        "referral {} to {HOSPITAL}: {}, {}",
        to_hospital.referral_id,
        tsunagu_client::render::purpose_label(&to_hospital.purpose),
        label(to_hospital.urgency())
    ))?;

    // 4. Referral to the hiroba, with short deadlines.
    let step = n.step(
        "ひろばへ子育て支援を「通常」で紹介します。デモのため期限を数秒後に設定します。",
        "aoba-kodomo refers her to aoba-hiroba for parenting support (子育て支援), routine; for the demo its deadlines are a few seconds ahead.",
    )?;
    let now = OffsetDateTime::now_utc();
    let confirm_by = now + SHORT_CONFIRM;
    let to_hiroba = async {
        let body = kodomo
            .seal(
                "出産後、ひろばの利用と子育て相談につないでください。日中は電話に出られないことがあります。（デモ・架空）",
                &[HIROBA],
                Some(&case),
            )
            .await?;
        let short = to_timestamp(now + SHORT_DEADLINE);
        kodomo
            .hub
            .referrals()
            .send_referral(SendReferralRequest {
                case_id: case_id.clone(),
                to_agency: HIROBA.to_owned(),
                purpose: "parenting_support".to_owned(),
                urgency: Urgency::Routine.into(),
                basis: Some(consent_basis.clone()),
                body: Some(body),
                deadlines: Some(Deadlines {
                    deliver_by: Some(short),
                    respond_by: Some(short),
                    connect_by: Some(short),
                    confirm_by: Some(to_timestamp(confirm_by)),
                }),
                staff: Some(kodomo.staff.clone()),
                idempotency_key: fresh_key(),
            })
            .await
            .answer(&kodomo.hub)?
            .referral
            .ok_or_else(|| anyhow!("the hub answered without the referral"))
    }
    .await
    .with_context(|| format!("demo step {step} (refer to {HIROBA})"))?;
    n.result(&format!(
        "referral {} to {HIROBA}: {}, {}",
        to_hiroba.referral_id,
        tsunagu_client::render::purpose_label(&to_hiroba.purpose),
        label(to_hiroba.urgency())
    ))?;

    // 5. and 6. The recipients find, open, acknowledge and accept their referrals.
    for (recipient, referral_id, ja) in [
        (
            &hospital,
            &to_hospital.referral_id,
            "病院が受信箱で紹介を見つけ、本文を復号し、受信を確認して受け入れます。",
        ),
        (
            &hiroba,
            &to_hiroba.referral_id,
            "ひろばも受信箱で紹介を見つけ、本文を復号し、受信を確認して受け入れます。",
        ),
    ] {
        let step = n.step(
            ja,
            &format!(
                "{} finds the referral in its inbox, opens the sealed body, acknowledges delivery and accepts.",
                recipient.id
            ),
        )?;
        let (body_status, referral) = async {
            let inbox = recipient
                .hub
                .referrals()
                .list_referrals(ListReferralsRequest {
                    direction: ReferralDirection::Received.into(),
                    case_id: case_id.clone(),
                    include_closed: false,
                    limit: 0,
                    page_token: String::new(),
                })
                .await
                .answer(&recipient.hub)?
                .referrals;
            let found = inbox
                .iter()
                .find(|r| &r.referral_id == referral_id)
                .ok_or_else(|| {
                    anyhow!(
                        "the hub's answer was not as expected: referral {} is not in {}'s inbox",
                        short_id(referral_id),
                        recipient.id
                    )
                })?;
            let body_status = open_sealed(&recipient.ctx, found.body.as_ref()).status();
            recipient
                .act(referral_id, ReferralAction::AcknowledgeDelivery, None, None)
                .await?;
            let referral = recipient
                .act(referral_id, ReferralAction::Accept, None, None)
                .await?;
            expect(
                referral.delivery() == DeliveryState::Delivered
                    && referral.response() == ResponseState::Accepted,
                || layers(&referral),
            )?;
            anyhow::Ok((body_status, referral))
        }
        .await
        .with_context(|| {
            format!(
                "demo step {step} ({} acknowledges and accepts)",
                recipient.id
            )
        })?;
        n.result(&format!(
            "inbox of {}: the referral is there; body {body_status}",
            recipient.id
        ))?;
        n.result(&layers(&referral))?;
    }

    // 7. The hospital reaches the mother.
    let step = n.step(
        "病院が本人に電話し、産後ケアにつながったことを報告します。",
        "aoba-hospital records a contact attempt, then reports that the mother connected with the service (つながった).",
    )?;
    let hospital_after = async {
        hospital
            .act(
                &to_hospital.referral_id,
                ReferralAction::RecordContactAttempt,
                None,
                Some("本人に電話し、産後ケアの利用日を調整（デモ）"),
            )
            .await?;
        let referral = hospital
            .act(
                &to_hospital.referral_id,
                ReferralAction::ReportConnected,
                None,
                None,
            )
            .await?;
        expect(referral.connection() == ConnectionState::Connected, || {
            layers(&referral)
        })?;
        anyhow::Ok(referral)
    }
    .await
    .with_context(|| format!("demo step {step} ({HOSPITAL} reports connected)"))?;
    n.result(&layers(&hospital_after))?;

    // 8. The hiroba cannot reach her.
    let step = n.step(
        "ひろばは2回電話しましたが連絡がとれず、「つながらなかった」と報告します。",
        "aoba-hiroba records two contact attempts, then reports not connected: could_not_contact (連絡がとれない).",
    )?;
    let hiroba_after = async {
        for note in [
            "電話 1回目: 不在（デモ）",
            "電話 2回目: 不在、留守電あり（デモ）",
        ] {
            hiroba
                .act(
                    &to_hiroba.referral_id,
                    ReferralAction::RecordContactAttempt,
                    None,
                    Some(note),
                )
                .await?;
        }
        let referral = hiroba
            .act(
                &to_hiroba.referral_id,
                ReferralAction::ReportNotConnected,
                Some(NotConnectedReason::CouldNotContact),
                Some("2回電話したが連絡がとれず。センターから本人へ連絡をお願いします。（デモ）"),
            )
            .await?;
        expect(
            referral.connection() == ConnectionState::NotConnected
                && referral.not_connected_reason() == NotConnectedReason::CouldNotContact
                && referral.contact_attempts == 2,
            || layers(&referral),
        )?;
        anyhow::Ok(referral)
    }
    .await
    .with_context(|| format!("demo step {step} ({HIROBA} reports not connected)"))?;
    n.result(&format!(
        "{}; reason {}",
        layers(&hiroba_after),
        label(hiroba_after.not_connected_reason())
    ))?;

    // 9. The coordinator closes the hospital handoff.
    let step = n.step(
        "調整機関（こども家庭センター）が病院へのつなぎを確認し、この引き継ぎを閉じます。",
        "The coordinator aoba-kodomo confirms the hospital handoff; it is closed.",
    )?;
    let confirmed = async {
        let referral = kodomo
            .act(
                &to_hospital.referral_id,
                ReferralAction::Confirm,
                None,
                None,
            )
            .await?;
        expect(referral.confirmed_at.is_some(), || {
            format!(
                "referral {} is not confirmed",
                short_id(&referral.referral_id)
            )
        })?;
        anyhow::Ok(referral)
    }
    .await
    .with_context(|| format!("demo step {step} ({COORDINATOR} confirms the hospital handoff)"))?;
    n.result(&format!(
        "referral {}: confirmed (確認済) by {}",
        short_id(&confirmed.referral_id),
        confirmed.confirmed_by
    ))?;

    // 10. Wait for the hiroba's confirm-by deadline to pass.
    n.step(
        "ひろばの紹介の確認期限が過ぎるのを待ちます（数秒）。",
        "Waiting a few seconds until the confirm-by deadline of the hiroba referral has passed.",
    )?;
    let remaining = confirm_by - OffsetDateTime::now_utc() + Duration::milliseconds(700);
    if remaining.is_positive() {
        let wait = StdDuration::try_from(remaining)
            .unwrap_or(StdDuration::ZERO)
            .min(StdDuration::from_secs(6));
        tokio::time::sleep(wait).await;
    }
    n.result("the confirm-by deadline has passed")?;

    // 11. Where both referrals stand.
    let step = n.step(
        "こども家庭センターから見た、このケースの紹介の状況です。",
        "Where the two referrals of this case stand, as aoba-kodomo sees them.",
    )?;
    let (hospital_final, hiroba_final, sent) = async {
        let hospital_final = kodomo.referral(&to_hospital.referral_id).await?;
        let hiroba_final = kodomo.referral(&to_hiroba.referral_id).await?;
        let sent = kodomo
            .hub
            .referrals()
            .list_referrals(ListReferralsRequest {
                direction: ReferralDirection::Sent.into(),
                case_id: case_id.clone(),
                include_closed: true,
                limit: 0,
                page_token: String::new(),
            })
            .await
            .answer(&kodomo.hub)?
            .referrals;
        anyhow::Ok((hospital_final, hiroba_final, sent))
    }
    .await
    .with_context(|| format!("demo step {step} (list the referrals)"))?;
    n.block(&referrals_table(&sent).to_string())?;

    // 12. The coordinator's follow-up list.
    let step = n.step(
        "調整機関のフォローアップ一覧: ひろばの紹介は確認待ちで、期限を過ぎています。",
        "The coordinator's follow-up list: the hiroba referral awaits confirmation and its confirm-by deadline has passed.",
    )?;
    let (ours, others) = async {
        let items = kodomo
            .hub
            .referrals()
            .follow_ups(FollowUpsRequest {
                municipality: String::new(),
                due_within_hours: 0,
            })
            .await
            .answer(&kodomo.hub)?
            .items;
        let (ours, others): (Vec<FollowUpItem>, Vec<FollowUpItem>) = items
            .into_iter()
            .partition(|item| item.referral.as_ref().is_some_and(|r| r.case_id == case_id));
        let hiroba_item = ours.iter().find(|item| {
            item.referral
                .as_ref()
                .is_some_and(|r| r.referral_id == to_hiroba.referral_id)
        });
        expect(hiroba_item.is_some(), || {
            format!(
                "referral {} to {HIROBA} is not on {COORDINATOR}'s follow-up list",
                short_id(&to_hiroba.referral_id)
            )
        })?;
        anyhow::Ok((ours, others.len()))
    }
    .await
    .with_context(|| format!("demo step {step} (the coordinator's follow-ups)"))?;
    n.block(&followups_table(&ours).to_string())?;
    if others > 0 {
        n.say(&format!(
            "{INDENT}({others} more item(s) of other cases, for example from earlier demo runs: `tsunagu --as {COORDINATOR} followups`)\n"
        ))?;
    }
    let overdue_confirm = ours.iter().any(|item| {
        item.status() == FollowUpStatus::Overdue && item.timer() == TimerKind::ConfirmBy
    });
    n.say(&format!(
        "\n完了: 病院へはつながり確認済み、ひろばへはつながらず確認待ちです。\n\
         Done: the hospital handoff is connected and confirmed; the hiroba handoff did not connect and {}.\n\
         Next: `tsunagu --as {COORDINATOR} show {}` then `tsunagu --as {COORDINATOR} confirm {}`.\n",
        if overdue_confirm {
            "is overdue for confirmation"
        } else {
            "awaits confirmation"
        },
        short_id(&to_hiroba.referral_id),
        short_id(&to_hiroba.referral_id),
    ))?;

    if ctx.json() {
        return ctx.print_json(&DemoSummary {
            ok: true,
            hub: kodomo.hub.endpoint().to_owned(),
            case_id,
            consent_id: consent.consent_id,
            hospital_referral: ReferralView::from(&hospital_final),
            hiroba_referral: ReferralView::from(&hiroba_final),
            followups: ours.iter().map(FollowUpView::from).collect(),
            other_followups: others,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_short_deadlines_are_ordered_and_within_the_wait() {
        assert!(SHORT_DEADLINE.is_positive());
        assert!(SHORT_DEADLINE <= SHORT_CONFIRM);
        assert!(SHORT_CONFIRM <= Duration::seconds(5));
    }

    #[test]
    fn a_referral_reads_as_its_three_layers() {
        let referral = Referral {
            referral_id: "0190f3a2-0000-7000-8000-000000000001".into(),
            delivery: DeliveryState::Delivered.into(),
            response: ResponseState::Accepted.into(),
            connection: ConnectionState::ContactAttempted.into(),
            contact_attempts: 1,
            ..Referral::default()
        };
        assert_eq!(
            layers(&referral),
            "referral 00000001: delivered (受信確認済) · accepted (受入) · contact_attempted (連絡試行中) (contact attempts: 1)"
        );
    }

    #[test]
    fn an_unexpected_answer_fails_the_step() {
        assert!(expect(true, String::new).is_ok());
        let err = expect(false, || "case category -".to_owned()).unwrap_err();
        assert!(err.to_string().contains("not as expected"), "{err}");
    }
}
