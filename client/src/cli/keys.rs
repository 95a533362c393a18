//! `tsunagu keys init|rotate|publish|retire|list|verify`: this agency's age keys in the hub's
//! key directory, other agencies' keys and their fingerprints, and pinning a fingerprint given
//! out of band.

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use serde::Serialize;
use tsunagu_client::keys::{self, fingerprint, grouped, parse_fingerprint};
use tsunagu_client::render::{Table, format_optional_japan_time};
use tsunagu_client::trust::{KnownKeys, Trust};
use tsunagu_proto::v1::{AgencyKey, KeyStatus, ListAgenciesRequest};

use super::Context;
use super::common::{StaffArgs, parse_agency};
use super::views::time;

pub const EXAMPLES: &str = "\
Examples:
  # Create this agency's age identity (mode 0600, where the profile's age_identity says) and
  # publish its recipient; then give the printed fingerprint to your partners out of band
  tsunagu --profile aoba keys init

  # The keys of your agency, of others, or of every agency (with fingerprints)
  tsunagu --profile aoba keys list
  tsunagu --profile aoba keys list aoba-hospital north-jisou --include-retired
  tsunagu --profile aoba keys list --all --json

  # Pin the fingerprint the hospital read out to you over the phone
  tsunagu --profile aoba keys verify aoba-hospital 1a2b3c4d…(64 hex digits; spaces allowed)

  # A new key for this machine; the old one is retired but kept in the file so that earlier
  # items still open (a copy of the old file is kept as <file>.retired-<date>)
  tsunagu --profile aoba keys rotate

  # Publish the identity file's current key as it is (for example after an interrupted init),
  # or retire a key of your agency held on a lost machine
  tsunagu --profile aoba keys publish
  tsunagu --profile aoba keys retire <FINGERPRINT>

Only public recipients (age1…) go to the hub; the secret keys never leave this machine. Every
sealed field is sealed to each active key of its recipients, of your own agency and, for cases
registered with 要対協, of the coordinator. The agencies' keys you have seen and verified are
kept per profile in a known-keys file (see `tsunagu --help`): when an agency's keys change you
are warned, and a verified key that disappears stops sealing until you verify the new one or
pass --accept-key-change.";

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create this agency's age identity (mode 0600) and publish its recipient
    #[command(after_help = EXAMPLES)]
    Init(InitArgs),

    /// New key for this machine: publish it, retire the old one (kept in the file for old items)
    #[command(after_help = EXAMPLES)]
    Rotate(StaffOnlyArgs),

    /// Publish the current identity of your identity file (publishing twice changes nothing)
    #[command(after_help = EXAMPLES)]
    Publish(StaffOnlyArgs),

    /// Retire one of your agency's keys by its fingerprint; it stays listed as retired
    #[command(after_help = EXAMPLES)]
    Retire(RetireArgs),

    /// List agencies' published keys and fingerprints (yours when no agency is named)
    #[command(after_help = EXAMPLES)]
    List(ListArgs),

    /// Pin an agency's key fingerprint that you got out of band (phone, letter, in person)
    #[command(after_help = EXAMPLES)]
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Replace an existing identity file (it is kept beside the new one as
    /// <file>.replaced-<time>); prefer `keys rotate`, which keeps old items readable
    #[arg(long)]
    pub force: bool,

    #[command(flatten)]
    pub staff: StaffArgs,
}

#[derive(Debug, Args)]
pub struct StaffOnlyArgs {
    #[command(flatten)]
    pub staff: StaffArgs,
}

#[derive(Debug, Args)]
pub struct RetireArgs {
    /// The key's fingerprint (64 hex digits, as `keys list` shows it)
    #[arg(value_name = "FINGERPRINT")]
    pub fingerprint: String,

    #[command(flatten)]
    pub staff: StaffArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Agencies whose keys to list [default: your own]
    #[arg(value_name = "AGENCY", value_parser = parse_agency, conflicts_with = "all")]
    pub agencies: Vec<String>,

    /// Every registered agency's keys
    #[arg(long)]
    pub all: bool,

    /// Also the retired keys
    #[arg(long)]
    pub include_retired: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The agency whose key you verified
    // Not named `agency`: that id belongs to the global `--as`.
    #[arg(value_name = "AGENCY", value_parser = parse_agency)]
    pub agency_id: String,

    /// The fingerprint it gave you (64 hex digits; spaces and colons are ignored)
    #[arg(value_name = "FINGERPRINT", num_args = 1.., required = true)]
    pub fingerprint: Vec<String>,
}

pub async fn run(ctx: &Context, args: KeysArgs) -> anyhow::Result<()> {
    match args.command {
        KeysCommand::Init(args) => init(ctx, args).await,
        KeysCommand::Rotate(args) => rotate(ctx, args).await,
        KeysCommand::Publish(args) => publish(ctx, args).await,
        KeysCommand::Retire(args) => retire(ctx, args).await,
        KeysCommand::List(args) => list(ctx, args).await,
        KeysCommand::Verify(args) => verify(ctx, args).await,
    }
}

/// One key, as `keys list --json` prints it (and `init`, `rotate`, `publish`, `retire`).
#[derive(Debug, Serialize)]
pub struct KeyView {
    pub agency_id: String,
    pub recipient: String,
    /// SHA-256 of the recipient, computed by this client.
    pub fingerprint: String,
    /// Whether the hub's fingerprint matches the one computed here.
    pub fingerprint_matches: bool,
    /// "active" or "retired".
    pub status: &'static str,
    pub published_at: Option<String>,
    pub retired_at: Option<String>,
    /// "this machine" (a key of your identity file), "verified", "seen" or "new".
    pub trust: &'static str,
}

fn status_label(key: &AgencyKey) -> &'static str {
    match key.status() {
        KeyStatus::Active => "active",
        KeyStatus::Retired => "retired",
        KeyStatus::Unspecified => "unspecified",
    }
}

fn key_view(ctx: &Context, known: Option<&KnownKeys>, key: &AgencyKey) -> KeyView {
    let computed = fingerprint(&key.recipient);
    let mine = ctx
        .identities()
        .iter()
        .any(|identity| identity.to_public().to_string() == key.recipient);
    let trust = if mine {
        "this machine"
    } else {
        known
            .map_or(Trust::New, |k| k.trust(&key.agency_id, &computed))
            .label()
    };
    KeyView {
        agency_id: key.agency_id.clone(),
        recipient: key.recipient.clone(),
        fingerprint_matches: computed == key.fingerprint,
        fingerprint: computed,
        status: status_label(key),
        published_at: time(key.published_at.as_ref()),
        retired_at: time(key.retired_at.as_ref()),
        trust,
    }
}

fn keys_table(views: &[KeyView], keys: &[AgencyKey]) -> Table {
    let mut table = Table::new([
        "AGENCY",
        "STATUS",
        "FINGERPRINT (SHA-256)",
        "PUBLISHED (JST)",
        "RETIRED (JST)",
        "TRUST",
    ]);
    for (view, key) in views.iter().zip(keys) {
        let fingerprint = if view.fingerprint_matches {
            view.fingerprint.clone()
        } else {
            format!("{} (THE HUB SAID OTHERWISE)", view.fingerprint)
        };
        table.row([
            view.agency_id.clone(),
            view.status.to_owned(),
            fingerprint,
            format_optional_japan_time(key.published_at.as_ref()),
            format_optional_japan_time(key.retired_at.as_ref()),
            view.trust.to_owned(),
        ]);
    }
    table
}

/// Prints one key that was just published or retired.
fn print_key(ctx: &Context, what: &str, key: &AgencyKey) -> anyhow::Result<()> {
    ctx.print(&format!(
        "{what} for {}\n  recipient:   {}\n  fingerprint: {}\n",
        key.agency_id,
        key.recipient,
        grouped(&fingerprint(&key.recipient))
    ))
}

const TELL_PARTNERS: &str = "Give this fingerprint to the agencies you work with by phone or \
                             letter (not through the hub), so that they can run \
                             `tsunagu keys verify <your agency> <fingerprint>`.\n";

async fn init(ctx: &Context, args: InitArgs) -> anyhow::Result<()> {
    let credentials = ctx.credentials()?;
    let path = credentials.age_identity_path()?.to_owned();
    let hub = ctx.connect().await?;
    let done = keys::init(&hub, &path, args.force, &args.staff.staff()).await?;
    if ctx.json() {
        return ctx.print_json(&key_view(ctx, None, &done.key));
    }
    ctx.print(&format!(
        "created the age identity {} (mode 0600; keep it secret and backed up)\n",
        done.path.display()
    ))?;
    if let Some(replaced) = &done.replaced {
        ctx.print(&format!(
            "the file it replaced was kept as {}\n",
            replaced.display()
        ))?;
    }
    print_key(ctx, "published its recipient", &done.key)?;
    ctx.print(TELL_PARTNERS)
}

async fn rotate(ctx: &Context, args: StaffOnlyArgs) -> anyhow::Result<()> {
    let credentials = ctx.credentials()?;
    let path = credentials.age_identity_file()?.to_owned();
    let hub = ctx.connect().await?;
    let done = keys::rotate(&hub, &path, &args.staff.staff()).await?;
    if ctx.json() {
        #[derive(Serialize)]
        struct Rotated {
            key: KeyView,
            retired: Vec<KeyView>,
            backup: String,
        }
        return ctx.print_json(&Rotated {
            key: key_view(ctx, None, &done.key),
            retired: done
                .retired
                .iter()
                .map(|k| key_view(ctx, None, k))
                .collect(),
            backup: done.backup.display().to_string(),
        });
    }
    print_key(ctx, "published a new key", &done.key)?;
    for key in &done.retired {
        ctx.print(&format!(
            "retired {} (its identity stays in {} so that earlier items still open)\n",
            fingerprint(&key.recipient),
            path.display()
        ))?;
    }
    if done.retired.is_empty() {
        ctx.print("no earlier key of this file was active, so none was retired\n")?;
    }
    ctx.print(&format!(
        "a copy of the identity file as it was is in {}\n{TELL_PARTNERS}",
        done.backup.display()
    ))
}

async fn publish(ctx: &Context, args: StaffOnlyArgs) -> anyhow::Result<()> {
    let credentials = ctx.credentials()?;
    let path = credentials.age_identity_file()?.to_owned();
    let hub = ctx.connect().await?;
    let key = keys::publish_file(&hub, &path, &args.staff.staff()).await?;
    if ctx.json() {
        return ctx.print_json(&key_view(ctx, None, &key));
    }
    print_key(ctx, "published (or already active)", &key)?;
    ctx.print(TELL_PARTNERS)
}

async fn retire(ctx: &Context, args: RetireArgs) -> anyhow::Result<()> {
    let Some(fp) = parse_fingerprint(&args.fingerprint) else {
        bail!(
            "`{}` is not a fingerprint: give the 64 hex digits `tsunagu keys list` shows",
            args.fingerprint
        );
    };
    let hub = ctx.connect().await?;
    let key = keys::retire(&hub, &fp, &args.staff.staff()).await?;
    if ctx.json() {
        return ctx.print_json(&key_view(ctx, None, &key));
    }
    print_key(ctx, "retired", &key)
}

async fn list(ctx: &Context, args: ListArgs) -> anyhow::Result<()> {
    let hub = ctx.connect().await?;
    let agencies = if args.all {
        hub.directory()
            .list_agencies(ListAgenciesRequest::default())
            .await
            .map_err(|status| hub.call_error(status))?
            .into_inner()
            .agencies
            .into_iter()
            .map(|a| a.agency_id)
            .collect()
    } else {
        args.agencies
    };
    let keys = keys::list(&hub, &agencies, args.include_retired).await?;
    let known = KnownKeys::load(&ctx.credentials()?.known_keys)?;
    let views: Vec<KeyView> = keys
        .iter()
        .map(|key| key_view(ctx, Some(&known), key))
        .collect();
    if ctx.json() {
        return ctx.print_json(&views);
    }
    if keys.is_empty() {
        eprintln!(
            "no {}keys{}: an agency publishes its key with `tsunagu keys init`",
            if args.include_retired { "" } else { "active " },
            if agencies.is_empty() {
                " for your agency".to_owned()
            } else {
                format!(" for {}", agencies.join(", "))
            }
        );
        return Ok(());
    }
    ctx.print(&keys_table(&views, &keys).to_string())?;
    if views.iter().any(|v| !v.fingerprint_matches) {
        bail!(
            "the hub listed a fingerprint that does not match its key: do not trust this \
             directory until the hub operator explains it"
        );
    }
    Ok(())
}

async fn verify(ctx: &Context, args: VerifyArgs) -> anyhow::Result<()> {
    let typed = args.fingerprint.join("");
    let Some(fp) = parse_fingerprint(&typed) else {
        bail!(
            "`{}` is not a fingerprint: it has 64 hex digits (spaces and colons are ignored)",
            args.fingerprint.join(" ")
        );
    };
    let hub = ctx.connect().await?;
    let listed = keys::list(&hub, std::slice::from_ref(&args.agency_id), false).await?;
    let mut active = Vec::new();
    for key in &listed {
        keys::recipient_of(key)?;
        active.push(fingerprint(&key.recipient));
    }
    let path = ctx.credentials()?.known_keys;
    let mut known = KnownKeys::load(&path)?;
    known.verify(&args.agency_id, &fp, &active)?;
    known.save()?;
    let key = listed
        .iter()
        .find(|k| fingerprint(&k.recipient) == fp)
        .ok_or_else(|| anyhow!("the verified key is not in the listing"))?;
    if ctx.json() {
        return ctx.print_json(&key_view(ctx, Some(&known), key));
    }
    ctx.print(&format!(
        "verified key {} of agency {} (recipient {}); pinned in {}\n\
         Sealing to {} now stops if this key is no longer active, until you verify its new one.\n",
        grouped(&fp),
        args.agency_id,
        key.recipient,
        path.display(),
        args.agency_id
    ))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    #[test]
    fn verify_takes_the_agency_and_a_fingerprint_in_groups_without_touching_as() {
        let cli = Cli::try_parse_from([
            "tsunagu",
            "--as",
            "aoba-kodomo",
            "keys",
            "verify",
            "aoba-hospital",
            "f293d14f",
            "4a9960c1",
        ])
        .unwrap();
        assert_eq!(cli.global.agency.as_deref(), Some("aoba-kodomo"));
        let Command::Keys(KeysArgs {
            command: KeysCommand::Verify(verify),
        }) = cli.command
        else {
            panic!("not keys verify");
        };
        assert_eq!(verify.agency_id, "aoba-hospital");
        assert_eq!(verify.fingerprint.join(""), "f293d14f4a9960c1");
    }

    #[test]
    fn list_names_agencies_or_all_but_not_both() {
        assert!(Cli::try_parse_from(["tsunagu", "keys", "list", "--all"]).is_ok());
        assert!(Cli::try_parse_from(["tsunagu", "keys", "list", "a-b", "c-d"]).is_ok());
        assert!(Cli::try_parse_from(["tsunagu", "keys", "list", "a-b", "--all"]).is_err());
        assert!(Cli::try_parse_from(["tsunagu", "keys", "list", "Not_An_Id"]).is_err());
    }

    #[test]
    fn accept_key_change_is_a_global_option() {
        let cli = Cli::try_parse_from([
            "tsunagu",
            "refer",
            "c",
            "--to",
            "a-b",
            "--purpose",
            "x",
            "--body-text",
            "y",
            "--accept-key-change",
        ])
        .unwrap();
        assert!(cli.global.accept_key_change);
    }
}
