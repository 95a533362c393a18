//! What each `tsunagu council` subcommand does: finding the caller's councils, meetings and
//! cases, sealing council fields to every member, and the calls to the hub.

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context as _, anyhow, bail};
use tsunagu_client::council::readers;
use tsunagu_client::pack::{self, Format, Opener};
use tsunagu_client::render::{Coded, label, short_id};
use tsunagu_client::{Hub, render};
use tsunagu_proto::v1::{
    Agency, CaseCategory, DecisionOutcome, GetMeetingPackRequest, ListMeetingsRequest,
    ListRegistrationsRequest, Meeting, MeetingKind, RecordDecisionRequest, RegisterCaseRequest,
    ScheduleMeetingRequest, WhoAmIRequest,
};

use super::views::{
    DecisionView, MeetingView, PackWritten, RegistrationView, meetings_table, registrations_table,
};
use super::{
    DecideArgs, FormatArg, MeetingsArgs, OutcomeArg, PackArgs, RegisterArgs, RegistrationsArgs,
    ScheduleArgs,
};
use crate::cli::Context;
use crate::cli::common::{
    CallExt, get_case, is_full_id, read_payload, resolve_case_id, seal_for, unique_short_match,
};
use crate::cli::views::code;

/// Who the hub takes the caller to be.
async fn whoami(hub: &Hub) -> anyhow::Result<Agency> {
    hub.directory()
        .who_am_i(WhoAmIRequest {})
        .await
        .answer(hub)?
        .agency
        .ok_or_else(|| anyhow!("the hub did not say who this agency is"))
}

/// The municipalities whose council the agency sits on or coordinates, each once.
fn councils_of(agency: &Agency) -> Vec<String> {
    let mut codes: Vec<String> = agency
        .coordinator_of
        .iter()
        .chain(&agency.council_memberships)
        .cloned()
        .collect();
    codes.sort();
    codes.dedup();
    codes
}

/// The municipality given, or the only one in `candidates`.
pub(super) fn one_municipality(
    given: Option<String>,
    candidates: &[String],
    agency: &str,
    role: &str,
) -> anyhow::Result<String> {
    if let Some(given) = given {
        return Ok(given);
    }
    match candidates {
        [one] => Ok(one.clone()),
        [] => bail!("agency {agency} is not {role} of any 要対協: give --municipality"),
        many => bail!(
            "agency {agency} is {role} of several councils ({}): give --municipality",
            many.join(", ")
        ),
    }
}

/// Every meeting of the councils the agency sits on.
async fn my_meetings(hub: &Hub, agency: &Agency) -> anyhow::Result<Vec<Meeting>> {
    let mut meetings = Vec::new();
    for municipality in councils_of(agency) {
        meetings.extend(
            hub.council()
                .list_meetings(ListMeetingsRequest { municipality })
                .await
                .answer(hub)?
                .meetings,
        );
    }
    Ok(meetings)
}

/// The meeting a whole id or a short form names, among the meetings of the caller's councils.
async fn find_meeting(hub: &Hub, agency: &Agency, text: &str) -> anyhow::Result<Meeting> {
    let text = text.trim();
    if councils_of(agency).is_empty() {
        bail!(
            "agency {} sits on no 要対協: only a council's members see its meetings and packs",
            agency.agency_id
        );
    }
    let meetings = my_meetings(hub, agency).await?;
    let id = if is_full_id(text) {
        text.to_owned()
    } else {
        unique_short_match(
            "meeting",
            text,
            meetings.iter().map(|m| m.meeting_id.as_str()),
            "tsunagu council meetings",
        )?
    };
    meetings
        .into_iter()
        .find(|m| m.meeting_id.eq_ignore_ascii_case(&id))
        .ok_or_else(|| {
            anyhow!(
                "meeting {id} is not a meeting of a 要対協 agency {} sits on (see `tsunagu \
                 council meetings`)",
                agency.agency_id
            )
        })
}

/// A meeting id for reading its pack: a whole id as is (the hub decides who may read it), a
/// short form looked up among the caller's councils' meetings.
async fn meeting_id_for_pack(hub: &Hub, text: &str) -> anyhow::Result<String> {
    let text = text.trim();
    if is_full_id(text) {
        return Ok(text.to_owned());
    }
    let agency = whoami(hub).await?;
    Ok(find_meeting(hub, &agency, text).await?.meeting_id)
}

/// Seals a council field (キーパーソン, plan) about `case_id` to the coordinator and every council
/// member of `municipality`, and the caller's own agency.
async fn seal_for_council(
    ctx: &Context,
    hub: &Hub,
    plaintext: &[u8],
    municipality: &str,
    case_id: &str,
    retry_key: Option<&str>,
) -> anyhow::Result<tsunagu_proto::v1::Sealed> {
    let case = get_case(hub, case_id).await?;
    let council = readers(hub, municipality).await?;
    let council: Vec<&str> = council.iter().map(String::as_str).collect();
    let mut sealer = ctx.sealer(hub)?;
    seal_for(
        ctx,
        &mut sealer,
        plaintext,
        &council,
        Some(&case),
        retry_key,
    )
    .await
}

pub(super) async fn register(ctx: &Context, args: RegisterArgs) -> anyhow::Result<()> {
    let key_person = read_payload(
        args.key_person_file.as_deref(),
        args.key_person_text.as_deref(),
    )?;
    let hub = ctx.connect().await?;
    let case_id = resolve_case_id(&hub, &args.case_id).await?;
    let case = get_case(&hub, &case_id).await?;
    let key_person = match key_person {
        Some(plaintext) => Some(
            seal_for_council(
                ctx,
                &hub,
                &plaintext,
                &case.municipality,
                &case_id,
                args.write.idempotency_key.as_deref(),
            )
            .await
            .context("sealing the key person (キーパーソン)")?,
        ),
        None => None,
    };
    let registration = hub
        .council()
        .register_case(RegisterCaseRequest {
            case_id,
            category: CaseCategory::from(args.category).into(),
            registered_on: args.registered_on.unwrap_or_default(),
            lead_agency: args.lead,
            key_person,
            review_interval_days: args.review_interval_days.unwrap_or(0),
            next_review_on: args.next_review_on.unwrap_or_default(),
            justification: args.justification,
            staff: Some(args.write.staff()),
            idempotency_key: args.write.idempotency_key(),
        })
        .await
        .answer(&hub)?
        .registration
        .ok_or_else(|| anyhow!("the hub answered without the registration"))?;
    if ctx.json() {
        return ctx.print_json(&RegistrationView::of(ctx, &registration));
    }
    ctx.print(&format!(
        "registered case {} with the 要対協 of {}: {}, lead {}, registered {}, next review {} \
         (every {} days){}\n",
        registration.case_id,
        registration.municipality,
        label(registration.category()),
        registration.lead_agency,
        registration.registered_on,
        registration.next_review_on,
        registration.review_interval_days,
        if registration.key_person.is_some() {
            ", key person sealed to the council"
        } else {
            ""
        }
    ))
}

pub(super) async fn registrations(ctx: &Context, args: RegistrationsArgs) -> anyhow::Result<()> {
    let hub = ctx.connect().await?;
    let municipality = match args.municipality {
        Some(code) => code,
        None => {
            let me = whoami(&hub).await?;
            one_municipality(None, &councils_of(&me), &me.agency_id, "a member")?
        }
    };
    let list = hub
        .council()
        .list_registrations(ListRegistrationsRequest {
            municipality,
            include_closed: args.include_closed,
        })
        .await
        .answer(&hub)?
        .registrations;
    if ctx.json() {
        let views: Vec<RegistrationView> =
            list.iter().map(|r| RegistrationView::of(ctx, r)).collect();
        return ctx.print_json(&views);
    }
    if list.is_empty() {
        eprintln!("no registrations");
        return Ok(());
    }
    ctx.print(&registrations_table(ctx, &list).to_string())
}

pub(super) async fn schedule(ctx: &Context, args: ScheduleArgs) -> anyhow::Result<()> {
    let hub = ctx.connect().await?;
    let municipality = match args.municipality {
        Some(code) => code,
        None => {
            let me = whoami(&hub).await?;
            one_municipality(None, &me.coordinator_of, &me.agency_id, "the coordinator")?
        }
    };
    let mut case_ids = Vec::with_capacity(args.cases.len());
    for case in &args.cases {
        case_ids.push(resolve_case_id(&hub, case).await?);
    }
    let meeting = hub
        .council()
        .schedule_meeting(ScheduleMeetingRequest {
            municipality,
            kind: MeetingKind::from(args.kind).into(),
            held_on: args.held_on,
            case_ids,
            staff: Some(args.write.staff()),
            idempotency_key: args.write.idempotency_key(),
        })
        .await
        .answer(&hub)?
        .meeting
        .ok_or_else(|| anyhow!("the hub answered without the meeting"))?;
    if ctx.json() {
        return ctx.print_json(&MeetingView::from(&meeting));
    }
    let mut out = format!(
        "scheduled {} {} on {} for the 要対協 of {}: {} case(s) on the agenda\n",
        meeting.kind().japanese(),
        meeting.meeting_id,
        meeting.held_on,
        meeting.municipality,
        meeting.case_ids.len()
    );
    for (i, case) in meeting.case_ids.iter().enumerate() {
        out.push_str(&format!("  {:>3}. {}\n", i + 1, case));
    }
    if meeting.case_ids.is_empty() {
        out.push_str(&format!(
            "no registration's review is due by {}: a case is due once its next review day \
             (登録日 + the review interval, 90 days unless set; see `tsunagu council \
             registrations`) has come. Name cases with --case to take them up anyway.\n",
            meeting.held_on
        ));
    }
    out.push_str(&format!(
        "pack: tsunagu council pack --meeting {} --format html -o pack.html\n",
        short_id(&meeting.meeting_id)
    ));
    ctx.print(&out)
}

pub(super) async fn meetings(ctx: &Context, args: MeetingsArgs) -> anyhow::Result<()> {
    let hub = ctx.connect().await?;
    let municipality = match args.municipality {
        Some(code) => code,
        None => {
            let me = whoami(&hub).await?;
            one_municipality(None, &councils_of(&me), &me.agency_id, "a member")?
        }
    };
    let list = hub
        .council()
        .list_meetings(ListMeetingsRequest { municipality })
        .await
        .answer(&hub)?
        .meetings;
    if ctx.json() {
        let views: Vec<MeetingView> = list.iter().map(MeetingView::from).collect();
        return ctx.print_json(&views);
    }
    if list.is_empty() {
        eprintln!("no meetings");
        return Ok(());
    }
    ctx.print(&meetings_table(&list).to_string())
}

/// The format asked for, else the one the file's extension names, else Markdown.
pub fn pack_format(asked: Option<FormatArg>, output: &Path) -> Format {
    asked
        .map(Format::from)
        .or_else(|| Format::from_path(output))
        .unwrap_or(Format::Markdown)
}

/// Writes `bytes` to a new or truncated file readable and writable by its owner only: a pack
/// holds what the reader's keys opened (names, notes).
fn write_private_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    // An existing file keeps its mode through truncation: narrow it too.
    #[cfg(unix)]
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

pub(super) async fn pack_command(ctx: &Context, args: PackArgs) -> anyhow::Result<()> {
    let format = pack_format(args.format, &args.output);
    let hub = ctx.connect().await?;
    let meeting_id = meeting_id_for_pack(&hub, &args.meeting).await?;
    let response = hub
        .council()
        .get_meeting_pack(GetMeetingPackRequest { meeting_id })
        .await
        .answer(&hub)?;
    let identities = match ctx.load_identities() {
        Ok(identities) => identities,
        Err(error) => {
            eprintln!(
                "warning: no age identity to open the pack with ({error}); every sealed field \
                 shows as {}",
                pack::UNREADABLE
            );
            Vec::new()
        }
    };
    let mut view = pack::build(&response, &Opener::new(&identities));
    if let Ok(me) = whoami(&hub).await {
        view.reader = Some(if me.display_name.is_empty() {
            me.agency_id
        } else {
            format!("{}（{}）", me.display_name, me.agency_id)
        });
    }
    let rendered = pack::render(&view, format);
    let to_stdout = args.output == Path::new("-");
    if to_stdout {
        ctx.print(&rendered)?;
    } else {
        write_private_file(&args.output, rendered.as_bytes())?;
    }
    let written = PackWritten {
        meeting_id: view.meeting_id.clone(),
        kind: code(view.kind),
        held_on: view.held_on.clone(),
        format: format.extension(),
        path: args.output.display().to_string(),
        cases: view.cases.len(),
        unreadable: view.unreadable,
    };
    if ctx.json() && !to_stdout {
        return ctx.print_json(&written);
    }
    let what = format!(
        "{} {} of {}: {} case(s), {} sealed item(s) your keys do not open",
        render::Coded::japanese(view.kind),
        view.held_on,
        view.municipality,
        written.cases,
        written.unreadable
    );
    if to_stdout {
        eprintln!("{what}");
        Ok(())
    } else {
        ctx.print(&format!("wrote {} ({what})\n", args.output.display()))
    }
}

pub(super) async fn decide(ctx: &Context, args: DecideArgs) -> anyhow::Result<()> {
    let outcome = DecisionOutcome::from(args.outcome);
    match args.outcome {
        OutcomeArg::Close
            if args
                .close_reason
                .as_deref()
                .is_none_or(|r| r.trim().is_empty()) =>
        {
            bail!("--outcome close needs --close-reason: why the case is closed (終結)")
        }
        OutcomeArg::Transfer if args.transfer_to.is_none() => {
            bail!("--outcome transfer needs --transfer-to: the municipality code it moves to")
        }
        OutcomeArg::Continue if args.close_reason.is_some() || args.transfer_to.is_some() => {
            bail!("--close-reason and --transfer-to are not for --outcome continue")
        }
        OutcomeArg::Close | OutcomeArg::Transfer if args.next_review_on.is_some() => {
            bail!("--next-review-on is only for --outcome continue")
        }
        OutcomeArg::Close if args.transfer_to.is_some() => {
            bail!("--transfer-to is only for --outcome transfer")
        }
        _ => {}
    }
    let plan = read_payload(args.plan_file.as_deref(), args.plan_text.as_deref())?;
    let hub = ctx.connect().await?;
    let me = whoami(&hub).await?;
    let meeting = find_meeting(&hub, &me, &args.meeting).await?;
    let case_id = unique_short_match(
        "case on this meeting's agenda",
        args.case_id.trim(),
        meeting.case_ids.iter().map(String::as_str),
        "tsunagu council meetings --json",
    )?;
    let plan = match plan {
        Some(plaintext) => Some(
            seal_for_council(
                ctx,
                &hub,
                &plaintext,
                &meeting.municipality,
                &case_id,
                args.write.idempotency_key.as_deref(),
            )
            .await
            .context("sealing the plan (役割分担・支援計画)")?,
        ),
        None => None,
    };
    let answer = hub
        .council()
        .record_decision(RecordDecisionRequest {
            meeting_id: meeting.meeting_id.clone(),
            case_id,
            outcome: outcome.into(),
            close_reason: args.close_reason.unwrap_or_default(),
            transfer_to: args.transfer_to.unwrap_or_default(),
            lead_agency: args.lead.unwrap_or_default(),
            plan,
            next_review_on: args.next_review_on.unwrap_or_default(),
            staff: Some(args.write.staff()),
            idempotency_key: args.write.idempotency_key(),
        })
        .await
        .answer(&hub)?;
    let decision = answer
        .decision
        .ok_or_else(|| anyhow!("the hub answered without the decision"))?;
    if ctx.json() {
        return ctx.print_json(&DecisionView::of(
            ctx,
            &decision,
            answer.registration.as_ref(),
        ));
    }
    let after = match decision.outcome() {
        DecisionOutcome::Continue => format!("next review {}", decision.next_review_on),
        DecisionOutcome::Close => format!("closed: {}", decision.close_reason),
        DecisionOutcome::Transfer => format!("transferred to {}", decision.transfer_to),
        DecisionOutcome::Unspecified => "-".to_owned(),
    };
    ctx.print(&format!(
        "recorded the decision of the {} meeting on case {}: {}, lead {}, {after}{}\n",
        meeting.held_on,
        decision.case_id,
        label(decision.outcome()),
        decision.lead_agency,
        if decision.plan.is_some() {
            "; plan sealed to the council"
        } else {
            ""
        }
    ))
}
