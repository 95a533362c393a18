//! What the case, consent, referral, note and event subcommands share: the staff and idempotency
//! options of every write, the command-line words for the contract's enums, sealing (from the
//! hub's key directory) and opening payloads, reading payload input, and turning short ids back
//! into full ones.

use std::io::Read;
use std::path::Path;

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, ValueEnum};
use prost_types::Timestamp;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime};
use tsunagu_client::profile::is_agency_id;
use tsunagu_client::render::{JAPAN, sanitise_cell};
use tsunagu_client::seal::open_with;
use tsunagu_client::sealing::Sealer;
use tsunagu_client::{ClientError, Hub};
use tsunagu_proto::v1::{
    Case, CaseCategory, CaseStage, ConsentGiver, ConsentMethod, GetCaseRequest, LegalBasis,
    LegalBasisKind, ListCasesRequest, ListReferralsRequest, NotConnectedReason, ReferralDirection,
    Sealed, Staff, Urgency,
};

use super::Context;
use super::retries::SealedRetries;
use super::views::SealedView;

/// The staff member acting, sent with every write (recorded by the hub, never trusted).
#[derive(Clone, Debug, Args)]
pub struct StaffArgs {
    /// Name of the staff member acting, recorded with the write
    #[arg(
        long,
        value_name = "NAME",
        env = "TSUNAGU_STAFF_NAME",
        default_value = "担当者"
    )]
    pub staff_name: String,

    /// Job role of the staff member, for example 保健師, ソーシャルワーカー, 保育士
    #[arg(
        long,
        value_name = "ROLE",
        env = "TSUNAGU_STAFF_ROLE",
        default_value = "職員"
    )]
    pub staff_role: String,
}

impl StaffArgs {
    pub fn staff(&self) -> Staff {
        Staff {
            name: self.staff_name.trim().to_owned(),
            role: self.staff_role.trim().to_owned(),
        }
    }
}

/// The options of every write: who acts and the key that makes a retry safe.
#[derive(Clone, Debug, Args)]
pub struct WriteArgs {
    #[command(flatten)]
    pub staff: StaffArgs,

    /// Key that makes a retry safe: the hub returns the first result for a repeated key, and
    /// running the same command again resends the content it sealed [default: a fresh UUID v4]
    #[arg(long, value_name = "KEY", value_parser = parse_idempotency_key)]
    pub idempotency_key: Option<String>,
}

impl WriteArgs {
    pub fn staff(&self) -> Staff {
        self.staff.staff()
    }

    /// The given key, or a fresh UUID v4.
    pub fn idempotency_key(&self) -> String {
        self.idempotency_key
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
    }
}

fn parse_idempotency_key(text: &str) -> Result<String, String> {
    if (1..=128).contains(&text.chars().count()) {
        Ok(text.to_owned())
    } else {
        Err("an idempotency key is 1 to 128 characters".to_owned())
    }
}

/// Case category (ケース種別) on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CategoryArg {
    /// 特定妊婦: a pregnant person who needs support before birth
    SpecificExpectantMother,
    /// 要保護児童: a child who needs protection
    RequiresProtection,
    /// 要支援児童: a child who needs support
    RequiresSupport,
    /// 一般: population-approach support
    General,
}

impl From<CategoryArg> for CaseCategory {
    fn from(arg: CategoryArg) -> Self {
        match arg {
            CategoryArg::SpecificExpectantMother => CaseCategory::SpecificExpectantMother,
            CategoryArg::RequiresProtection => CaseCategory::RequiresProtection,
            CategoryArg::RequiresSupport => CaseCategory::RequiresSupport,
            CategoryArg::General => CaseCategory::General,
        }
    }
}

/// Life stage (支援の段階) on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StageArg {
    /// 妊娠期
    Pregnancy,
    /// 出産直後
    Postnatal,
    /// 乳幼児期
    Infancy,
    /// 学齢期
    SchoolAge,
}

impl From<StageArg> for CaseStage {
    fn from(arg: StageArg) -> Self {
        match arg {
            StageArg::Pregnancy => CaseStage::Pregnancy,
            StageArg::Postnatal => CaseStage::Postnatal,
            StageArg::Infancy => CaseStage::Infancy,
            StageArg::SchoolAge => CaseStage::SchoolAge,
        }
    }
}

/// Who gave a consent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum GiverArg {
    /// 本人: the person themself
    #[value(name = "self", alias = "person")]
    SelfPerson,
    /// 保護者: the guardian
    Guardian,
}

impl From<GiverArg> for ConsentGiver {
    fn from(arg: GiverArg) -> Self {
        match arg {
            GiverArg::SelfPerson => ConsentGiver::Person,
            GiverArg::Guardian => ConsentGiver::Guardian,
        }
    }
}

/// How a consent was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MethodArg {
    /// 書面: on a signed form
    Written,
    /// 口頭: orally
    Oral,
    /// 電子: electronically
    Electronic,
}

impl From<MethodArg> for ConsentMethod {
    fn from(arg: MethodArg) -> Self {
        match arg {
            MethodArg::Written => ConsentMethod::Written,
            MethodArg::Oral => ConsentMethod::Oral,
            MethodArg::Electronic => ConsentMethod::Electronic,
        }
    }
}

/// Urgency of a referral; the hub derives default deadlines from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum UrgencyArg {
    /// 通常
    Routine,
    /// 至急
    Urgent,
    /// 緊急
    Emergency,
}

impl From<UrgencyArg> for Urgency {
    fn from(arg: UrgencyArg) -> Self {
        match arg {
            UrgencyArg::Routine => Urgency::Routine,
            UrgencyArg::Urgent => Urgency::Urgent,
            UrgencyArg::Emergency => Urgency::Emergency,
        }
    }
}

/// The legal basis claimed for a share.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BasisArg {
    /// 同意: an active consent record covers the recipient, purpose and today
    Consent,
    /// 要対協: the case is registered with the council and the recipient is a member
    CouncilSharing,
    /// 通告: a report of suspected abuse (reporter hidden from other participants)
    AbuseNotification,
    /// 生命・身体の保護 when consent cannot be obtained
    VitalInterest,
}

impl From<BasisArg> for LegalBasisKind {
    fn from(arg: BasisArg) -> Self {
        match arg {
            BasisArg::Consent => LegalBasisKind::Consent,
            BasisArg::CouncilSharing => LegalBasisKind::CouncilSharing,
            BasisArg::AbuseNotification => LegalBasisKind::AbuseNotification,
            BasisArg::VitalInterest => LegalBasisKind::VitalInterest,
        }
    }
}

/// Why a family did not connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum NotConnectedArg {
    /// 連絡がとれない
    CouldNotContact,
    /// 家族が希望せず
    DeclinedByFamily,
    /// 対象外
    NotEligible,
    /// 受入枠なし
    NoCapacity,
    /// 転居
    Moved,
    /// 他機関へ紹介 (give --linked-referral)
    ReferredElsewhere,
}

impl From<NotConnectedArg> for NotConnectedReason {
    fn from(arg: NotConnectedArg) -> Self {
        match arg {
            NotConnectedArg::CouldNotContact => NotConnectedReason::CouldNotContact,
            NotConnectedArg::DeclinedByFamily => NotConnectedReason::DeclinedByFamily,
            NotConnectedArg::NotEligible => NotConnectedReason::NotEligible,
            NotConnectedArg::NoCapacity => NotConnectedReason::NoCapacity,
            NotConnectedArg::Moved => NotConnectedReason::Moved,
            NotConnectedArg::ReferredElsewhere => NotConnectedReason::ReferredElsewhere,
        }
    }
}

/// The legal-basis options of a share (referral or note).
#[derive(Clone, Debug, Args)]
pub struct BasisArgs {
    /// Legal basis of the share
    #[arg(long, value_enum, default_value_t = BasisArg::Consent)]
    pub basis: BasisArg,

    /// The consent record relied on (basis consent); without it the hub finds a covering one
    #[arg(long = "consent", value_name = "CONSENT_ID")]
    pub consent_id: Option<String>,

    /// Why the share is lawful without consent (required for every basis but consent): a
    /// category-level reason of at most 200 characters, e.g. "生命の危険があり同意を得る時間がない".
    /// Stored in the clear and shown on the coordinator's review list: never a name; details
    /// go in the sealed body
    #[arg(long, value_name = "TEXT")]
    pub justification: Option<String>,
}

impl BasisArgs {
    /// The basis to send, checked for the fields its kind needs.
    pub fn legal_basis(&self) -> anyhow::Result<LegalBasis> {
        let kind = LegalBasisKind::from(self.basis);
        let justification = self
            .justification
            .as_deref()
            .map(str::trim)
            .unwrap_or_default()
            .to_owned();
        if kind == LegalBasisKind::Consent {
            if !justification.is_empty() {
                bail!(
                    "--justification is only for shares without consent (--basis other than consent)"
                );
            }
        } else {
            if justification.is_empty() {
                bail!(
                    "--basis {} needs --justification: why the share is lawful without consent",
                    self.basis
                        .to_possible_value()
                        .map_or_else(String::new, |v| v.get_name().to_owned())
                );
            }
            if self.consent_id.is_some() {
                bail!("--consent is only for --basis consent");
            }
        }
        Ok(LegalBasis {
            kind: kind.into(),
            consent_id: self.consent_id.clone().unwrap_or_default(),
            justification,
        })
    }
}

/// A contract code on the command line (purpose, reason): lower-case letters, digits and '_',
/// starting with a letter, 1..=64; '-' is taken as '_' so `postnatal-care` works too.
pub fn parse_code(text: &str) -> Result<String, String> {
    let code = text.trim().replace('-', "_");
    let ok = (1..=64).contains(&code.len())
        && code.starts_with(|c: char| c.is_ascii_lowercase())
        && code
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(code)
    } else {
        Err(format!(
            "`{text}` is not a code: use lower-case letters, digits and '_' (for example \
             postnatal_care or no_capacity)"
        ))
    }
}

/// An agency id on the command line.
pub fn parse_agency(text: &str) -> Result<String, String> {
    if is_agency_id(text) {
        Ok(text.to_owned())
    } else {
        Err(ClientError::InvalidAgencyId(text.to_owned()).to_string())
    }
}

/// A municipality code (全国地方公共団体コード): 6 digits.
pub fn parse_municipality(text: &str) -> Result<String, String> {
    if text.len() == 6 && text.bytes().all(|b| b.is_ascii_digit()) {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "`{text}` is not a municipality code: use the 6-digit 全国地方公共団体コード, for example 141178"
        ))
    }
}

/// A calendar date `YYYY-MM-DD`.
pub fn parse_date(text: &str) -> Result<String, String> {
    Date::parse(text, format_description!("[year]-[month]-[day]"))
        .map(|_| text.to_owned())
        .map_err(|_| format!("`{text}` is not a date: use YYYY-MM-DD, for example 2026-04-01"))
}

/// Today in Japan, `YYYY-MM-DD`.
pub fn today_in_japan() -> String {
    let today = OffsetDateTime::now_utc().to_offset(JAPAN).date();
    format!(
        "{:04}-{:02}-{:02}",
        today.year(),
        u8::from(today.month()),
        today.day()
    )
}

/// An instant in RFC 3339, for example `2026-04-01T17:00:00+09:00`.
pub fn parse_rfc3339(text: &str) -> Result<Timestamp, String> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map(to_timestamp)
        .map_err(|_| {
            format!("`{text}` is not an RFC 3339 time: use for example 2026-04-01T17:00:00+09:00")
        })
}

/// A protobuf timestamp for an instant.
pub fn to_timestamp(at: OffsetDateTime) -> Timestamp {
    Timestamp {
        seconds: at.unix_timestamp(),
        nanos: i32::try_from(at.nanosecond()).unwrap_or(0),
    }
}

/// Reads a payload from `--…-file` (`-` for stdin) or `--…-text`; `None` when neither was given.
pub fn read_payload(file: Option<&Path>, text: Option<&str>) -> anyhow::Result<Option<Vec<u8>>> {
    match (file, text) {
        (Some(_), Some(_)) => bail!("give the content either as a file or as text, not both"),
        (None, Some(text)) => Ok(Some(text.as_bytes().to_vec())),
        (Some(path), None) if path == Path::new("-") => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .lock()
                .read_to_end(&mut bytes)
                .context("cannot read the content from stdin")?;
            Ok(Some(bytes))
        }
        (Some(path), None) => std::fs::read(path)
            .map(Some)
            .with_context(|| format!("cannot read {}", path.display())),
        (None, None) => Ok(None),
    }
}

/// Seals a payload as the library's [`Sealer`] does: to every active key, from the hub's key
/// directory, of `agencies`, of the caller's own agency and, when `case` is registered with the
/// 要対協, of its municipality's coordinators; checked against the profile's known keys. Tells
/// the user what changed about other agencies' keys, and warns when the caller's own identity
/// file holds none of its agency's active keys (it could not open what it sends). For a write
/// sent with an explicit `--idempotency-key` (`retry_key`), the sealed bytes are kept, and sent
/// again when the same command is run again (see `retries`).
pub async fn seal_for(
    ctx: &Context,
    sealer: &mut Sealer,
    plaintext: &[u8],
    agencies: &[&str],
    case: Option<&Case>,
    retry_key: Option<&str>,
) -> anyhow::Result<Sealed> {
    let plan = sealer.plan(agencies, case).await;
    ctx.report_key_notices(sealer);
    let plan = plan?;
    let own = sealer.own_agency().await?;
    let mine: Vec<String> = ctx
        .identities()
        .iter()
        .map(|identity| identity.to_public().to_string())
        .collect();
    if !plan
        .keys
        .iter()
        .any(|key| key.agency_id == own && mine.contains(&key.recipient))
    {
        eprintln!(
            "warning: none of the active age keys of {own} is in your identity file, so this \
             machine will not be able to open what it sends: run `tsunagu keys publish` (or \
             `tsunagu keys init`)"
        );
    }
    let retries = match (retry_key, ctx.credentials()) {
        (Some(key), Ok(credentials)) => Some(SealedRetries::new(
            SealedRetries::dir_for(&credentials.known_keys),
            key,
        )),
        _ => None,
    };
    if let Some(retries) = &retries
        && let Some(age) = retries.recall(plan.recipients(), plaintext, ctx.identities())
    {
        return Ok(Sealed { age });
    }
    let sealed = plan.seal(plaintext)?;
    if let Some(retries) = &retries
        && let Err(error) = retries.keep(plan.recipients(), &sealed.age)
    {
        eprintln!(
            "warning: could not keep the sealed content for a retry ({error}); running this \
             command again with the same --idempotency-key will be refused as a different request"
        );
    }
    Ok(sealed)
}

/// The case a sealed field is about (its registration with the 要対協 decides whether the
/// coordinator reads it too).
pub async fn get_case(hub: &Hub, case_id: &str) -> anyhow::Result<Case> {
    hub.cases()
        .get_case(GetCaseRequest {
            case_id: case_id.to_owned(),
        })
        .await
        .answer(hub)?
        .case
        .ok_or_else(|| anyhow!("the hub answered without the case"))
}

/// What opening a sealed field gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Opened {
    /// The field is not set.
    Absent,
    /// The caller's identity opened it.
    Readable(Vec<u8>),
    /// Sealed to others only, or not openable.
    Unreadable { bytes: usize },
}

/// What to show for a sealed payload that cannot be opened.
pub const NOT_READABLE: &str = "[sealed: not readable by this agency]";

/// Tries to open a sealed field with the caller's identities (the current one and those kept
/// after rotations).
pub fn open_sealed(ctx: &Context, sealed: Option<&Sealed>) -> Opened {
    let Some(sealed) = sealed.filter(|s| !s.age.is_empty()) else {
        return Opened::Absent;
    };
    match open_with(&sealed.age, ctx.identities()) {
        Ok(plaintext) => Opened::Readable(plaintext),
        Err(_) => Opened::Unreadable {
            bytes: sealed.age.len(),
        },
    }
}

impl Opened {
    /// One line for people, without the content: "-", "readable (N bytes)" or [`NOT_READABLE`].
    pub fn status(&self) -> String {
        match self {
            Opened::Absent => "-".to_owned(),
            Opened::Readable(plaintext) => format!("readable ({} bytes)", plaintext.len()),
            Opened::Unreadable { .. } => NOT_READABLE.to_owned(),
        }
    }

    /// The JSON shape; the text only when `reveal` (the user asked for the content).
    pub fn view(&self, reveal: bool) -> Option<SealedView> {
        match self {
            Opened::Absent => None,
            Opened::Readable(plaintext) => Some(SealedView {
                bytes: plaintext.len(),
                readable: Some(true),
                text: reveal.then(|| String::from_utf8_lossy(plaintext).into_owned()),
            }),
            Opened::Unreadable { bytes } => Some(SealedView {
                bytes: *bytes,
                readable: Some(false),
                text: None,
            }),
        }
    }
}

/// Opened text made safe for a terminal (no escapes or bidi overrides; newlines kept), each line
/// indented by `indent`.
pub fn revealed_text(plaintext: &[u8], indent: &str) -> String {
    let text = String::from_utf8_lossy(plaintext);
    let mut out = String::new();
    for line in text.lines() {
        out.push_str(indent);
        out.push_str(sanitise_cell(line).trim_end());
        out.push('\n');
    }
    if out.is_empty() {
        out.push_str(indent);
        out.push_str("(empty)\n");
    }
    out
}

/// Maps a call's outcome to its message or the library error, through the hub that made it.
pub trait CallExt<T> {
    fn answer(self, hub: &Hub) -> Result<T, ClientError>;
}

impl<T> CallExt<T> for Result<tonic::Response<T>, tonic::Status> {
    fn answer(self, hub: &Hub) -> Result<T, ClientError> {
        self.map(tonic::Response::into_inner)
            .map_err(|status| hub.call_error(status))
    }
}

/// Whether `text` is a whole UUID (hyphenated, 36 characters).
pub fn is_full_id(text: &str) -> bool {
    uuid::Uuid::try_parse(text).is_ok() && text.len() == 36
}

/// The one id among `candidates` that starts or ends with `short` (the tables show the last 8
/// characters; the first ones work too).
pub fn unique_short_match<'a>(
    what: &str,
    short: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    list_hint: &str,
) -> anyhow::Result<String> {
    let short_lower = short.to_ascii_lowercase();
    if short_lower.len() < 4 {
        bail!("`{short}` is too short to name a {what}: give at least 4 characters of its id");
    }
    let mut found: Vec<&str> = candidates
        .into_iter()
        .filter(|id| {
            let id = id.to_ascii_lowercase();
            id.starts_with(&short_lower) || id.ends_with(&short_lower)
        })
        .collect();
    found.sort_unstable();
    found.dedup();
    match found.as_slice() {
        [one] => Ok((*one).to_owned()),
        [] => Err(anyhow!(
            "no {what} of yours has an id starting or ending with `{short}`: give the whole id \
             (see `{list_hint}`)"
        )),
        many => Err(anyhow!(
            "`{short}` matches {} {what}s ({}): give more of the id",
            many.len(),
            many.join(", ")
        )),
    }
}

/// A referral id as given: a whole UUID is used as is; a short form (the last 8 characters the
/// tables show, or a prefix) is looked up among the referrals the caller sent or received.
pub async fn resolve_referral_id(hub: &Hub, text: &str) -> anyhow::Result<String> {
    let text = text.trim();
    if is_full_id(text) || text.is_empty() {
        return Ok(text.to_owned());
    }
    let mut ids = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = hub
            .referrals()
            .list_referrals(ListReferralsRequest {
                direction: ReferralDirection::All.into(),
                case_id: String::new(),
                include_closed: true,
                limit: 500,
                page_token: page_token.clone(),
            })
            .await
            .answer(hub)?;
        ids.extend(page.referrals.into_iter().map(|r| r.referral_id));
        if page.next_page_token.is_empty() || page.next_page_token == page_token {
            break;
        }
        page_token = page.next_page_token;
    }
    unique_short_match(
        "referral",
        text,
        ids.iter().map(String::as_str),
        "tsunagu inbox --all --include-closed",
    )
}

/// A case id as given: a whole UUID is used as is; a short form (the last 8 characters the
/// tables show, or a prefix) is looked up among the cases the caller may see.
pub async fn resolve_case_id(hub: &Hub, text: &str) -> anyhow::Result<String> {
    let text = text.trim();
    if is_full_id(text) || text.is_empty() {
        return Ok(text.to_owned());
    }
    let cases = list_all_cases(hub, String::new()).await?;
    unique_short_match(
        "case",
        text,
        cases.iter().map(|c| c.case_id.as_str()),
        "tsunagu case list",
    )
}

/// Every case the caller may see (all pages), optionally of one municipality.
pub async fn list_all_cases(
    hub: &Hub,
    municipality: String,
) -> anyhow::Result<Vec<tsunagu_proto::v1::Case>> {
    let mut cases = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = hub
            .cases()
            .list_cases(ListCasesRequest {
                municipality: municipality.clone(),
                limit: 500,
                page_token: page_token.clone(),
            })
            .await
            .answer(hub)?;
        cases.extend(page.cases);
        if page.next_page_token.is_empty() || page.next_page_token == page_token {
            break;
        }
        page_token = page.next_page_token;
    }
    Ok(cases)
}

/// Writes opened content to a file, or to stdout for `-`.
pub fn write_output(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if path == Path::new("-") {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(bytes)?;
        stdout.flush()?;
        Ok(())
    } else {
        // Opened content (names, notes): readable and writable by the owner only.
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        #[cfg(unix)]
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .with_context(|| format!("cannot restrict {}", path.display()))?;
        file.write_all(bytes)
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyphens_in_codes_become_underscores() {
        assert_eq!(parse_code("postnatal-care").unwrap(), "postnatal_care");
        assert_eq!(parse_code("no_capacity").unwrap(), "no_capacity");
        assert!(parse_code("Postnatal").is_err());
        assert!(parse_code("1abc").is_err());
        assert!(parse_code("").is_err());
    }

    #[test]
    fn municipality_codes_are_six_digits() {
        assert!(parse_municipality("141178").is_ok());
        assert!(parse_municipality("14117").is_err());
        assert!(parse_municipality("14117a").is_err());
    }

    #[test]
    fn dates_must_be_real_calendar_days() {
        assert!(parse_date("2026-04-01").is_ok());
        assert!(parse_date("2026-02-30").is_err());
        assert!(parse_date("2026/04/01").is_err());
        assert!(parse_date(&today_in_japan()).is_ok());
    }

    #[test]
    fn rfc3339_times_become_timestamps() {
        let ts = parse_rfc3339("2025-04-01T09:30:00+09:00").unwrap();
        assert_eq!(ts.seconds, 1_743_467_400);
        assert!(parse_rfc3339("tomorrow").is_err());
    }

    #[test]
    fn a_basis_other_than_consent_needs_a_justification() {
        let args = BasisArgs {
            basis: BasisArg::VitalInterest,
            consent_id: None,
            justification: None,
        };
        assert!(
            args.legal_basis()
                .unwrap_err()
                .to_string()
                .contains("--justification")
        );
        let args = BasisArgs {
            justification: Some("生命の危険".into()),
            ..args
        };
        let basis = args.legal_basis().unwrap();
        assert_eq!(basis.kind(), LegalBasisKind::VitalInterest);
    }

    #[test]
    fn a_consent_basis_carries_the_consent_id() {
        let args = BasisArgs {
            basis: BasisArg::Consent,
            consent_id: Some("c-1".into()),
            justification: None,
        };
        let basis = args.legal_basis().unwrap();
        assert_eq!(basis.kind(), LegalBasisKind::Consent);
        assert_eq!(basis.consent_id, "c-1");
    }

    #[test]
    fn a_short_id_finds_the_one_matching_id_by_its_end_or_start() {
        let ids = [
            "01a1fb2f-e406-7782-92b8-ec7bc59dce82",
            "01a1fb2f-e408-7021-8965-e7be30774df9",
        ];
        assert_eq!(
            unique_short_match("referral", "c59dce82", ids, "x").unwrap(),
            ids[0]
        );
        assert_eq!(
            unique_short_match("referral", "01A1FB2F-E408", ids, "x").unwrap(),
            ids[1]
        );
        let err = unique_short_match("referral", "01a1fb2f", ids, "x").unwrap_err();
        assert!(err.to_string().contains("matches 2 referrals"), "{err}");
        let err = unique_short_match("referral", "ffffffff", ids, "x").unwrap_err();
        assert!(err.to_string().contains("no referral"), "{err}");
        assert!(unique_short_match("referral", "f9", ids, "x").is_err());
    }

    #[test]
    fn only_whole_uuids_count_as_full_ids() {
        assert!(is_full_id("0190f3a2-0000-7000-8000-000000000001"));
        assert!(!is_full_id("0190f3a2"));
    }

    #[test]
    fn revealed_text_cannot_smuggle_terminal_escapes() {
        let text = revealed_text("一行目\n\u{1b}[31m二行目".as_bytes(), "  ");
        assert_eq!(text, "  一行目\n   [31m二行目\n");
    }

    #[test]
    fn an_unset_sealed_field_is_absent_and_shows_a_dash() {
        assert_eq!(Opened::Absent.status(), "-");
        assert_eq!(Opened::Unreadable { bytes: 10 }.status(), NOT_READABLE);
        assert!(
            Opened::Unreadable { bytes: 10 }
                .view(true)
                .unwrap()
                .text
                .is_none()
        );
    }
}
