//! The operator's command line: `serve`, `agency`, `certs`, `audit` and `migrate`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use tsunagu_hub::casework::audit::{ChainReport, verify_chain};
use tsunagu_hub::domain::audit::ChainHead;
use tsunagu_hub::domain::{
    Agency, AgencyId, AgencyKind, AgencyStatus, Clock, Municipality, SystemClock,
};
use tsunagu_hub::pki::{self, CertificateAuthority, Validity};
use tsunagu_hub::{Application, Settings, store};

const EXAMPLES: &str = "\
Examples:
  # Run the development hub on 127.0.0.1:7443 with certs-dev and ./data/tsunagu.db
  tsunagu-hub serve

  # Register an agency, then suspend and resume it
  tsunagu-hub agency add aoba-clinic --kind hospital --name '青葉クリニック' --municipality 141178
  tsunagu-hub agency suspend aoba-clinic
  tsunagu-hub agency resume aoba-clinic

  # Issue its certificate from your CA
  tsunagu-hub certs issue --ca-cert ca.pem --ca-key ca.key --agency aoba-clinic --out-dir out/

  # Regenerate the development PKI (development only)
  tsunagu-hub certs dev --dir certs-dev

  # Check the audit log's hash chain; note its head to compare with later
  tsunagu-hub audit verify
  tsunagu-hub audit head
  tsunagu-hub audit verify --expect-head 1234:9f86d081884c7d65...";

/// The Tsunagu hub and its operator commands.
#[derive(Debug, Parser)]
#[command(name = "tsunagu-hub", version, about, after_help = EXAMPLES)]
pub struct Cli {
    /// Config file (TOML). Without one the development defaults apply; TSUNAGU_* variables
    /// override either.
    #[arg(long, global = true, env = "TSUNAGU_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the hub until SIGINT or SIGTERM.
    Serve,
    /// Manage registered agencies.
    #[command(subcommand)]
    Agency(AgencyCommand),
    /// Issue certificates and CRLs.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Check the audit log's hash chain, and show its head.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Create or upgrade the database schema, then exit.
    Migrate,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Replay the hash chain and name the first record that was edited, deleted, inserted or
    /// moved. Exits non-zero when the chain is broken.
    Verify {
        /// Start at this record (trusting the stored hash of the one before it).
        #[arg(long, value_name = "SEQ", default_value_t = 1)]
        from: u64,
        /// A head kept from earlier (`SEQ:HEX`, as `audit head` prints it): also finds a history
        /// rewritten up to it, or cut off after it.
        #[arg(long, value_name = "SEQ:HEX")]
        expect_head: Option<String>,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print the chain's head as `SEQ:HEX`: keep it, and pass it to `audit verify --expect-head`.
    Head {
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum AgencyCommand {
    /// Register an agency.
    Add(AddAgency),
    /// List registered agencies.
    List {
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Suspend an agency: every call it makes is refused, also on open connections.
    Suspend { agency_id: String },
    /// Let a suspended agency back in.
    Resume { agency_id: String },
}

#[derive(Debug, Args)]
struct AddAgency {
    /// Agency id: lower-case letters, digits and '-', e.g. aoba-clinic.
    agency_id: String,
    /// health_centre, child_guidance_centre, hospital, nursery, support_hub, or another code.
    #[arg(long)]
    kind: String,
    /// Display name (Japanese), e.g. '青葉クリニック'.
    #[arg(long)]
    name: String,
    /// Municipality code served (six digits); repeat for several.
    #[arg(long = "municipality", required = true)]
    municipalities: Vec<String>,
    /// Municipality whose 要対協 the agency is a member of; repeatable.
    #[arg(long = "council")]
    council: Vec<String>,
    /// Municipality the agency coordinates (調整機関); repeatable.
    #[arg(long = "coordinator-of")]
    coordinator_of: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum CertsCommand {
    /// Regenerate the development PKI: CA, hub certificate, CRL, the sample agencies'
    /// certificates and age identities. For development only.
    Dev {
        #[arg(long, default_value = "certs-dev")]
        dir: PathBuf,
    },
    /// Issue a client certificate for an agency from a CA certificate and key.
    Issue {
        #[arg(long)]
        ca_cert: PathBuf,
        #[arg(long)]
        ca_key: PathBuf,
        #[arg(long)]
        agency: String,
        /// SPIFFE trust domain; defaults to the hub's.
        #[arg(long)]
        trust_domain: Option<String>,
        /// Validity in days.
        #[arg(long, default_value_t = 397)]
        days: i64,
        /// Where to write <agency>.pem and <agency>.key.
        #[arg(long, default_value = ".")]
        out_dir: PathBuf,
    },
    /// Revoke a certificate at the hub by its SHA-256 fingerprint (applies to the next call,
    /// also on open connections). Publish a new CRL as well for other relying parties.
    Revoke {
        fingerprint: String,
        #[arg(long, default_value = "revoked by the operator")]
        reason: String,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref()).context("loading the configuration")?;
    match cli.command {
        Command::Serve => serve(settings).await,
        Command::Migrate => {
            store::connect(&settings.database_url)
                .await
                .context("migrating the database")?
                .close()
                .await;
            println!("database {} is up to date", settings.database_url);
            Ok(())
        }
        Command::Agency(command) => agency(settings, command).await,
        Command::Certs(command) => certs(settings, command).await,
        Command::Audit(command) => audit(settings, command).await,
    }
}

async fn audit(settings: Settings, command: AuditCommand) -> anyhow::Result<()> {
    let store = store::connect(&settings.database_url)
        .await
        .context("opening the database")?;
    let result = async {
        match command {
            AuditCommand::Verify {
                from,
                expect_head,
                json,
            } => {
                let published = expect_head
                    .map(|text| {
                        ChainHead::parse(&text).with_context(|| {
                            format!("--expect-head {text}: use SEQ:HEX as `audit head` prints it")
                        })
                    })
                    .transpose()?;
                let mut tx = store.read().await?;
                let report = verify_chain(&mut *tx, from, published).await?;
                drop(tx);
                print_chain_report(&report, json)?;
                if let Some(broken) = &report.broken {
                    bail!("the audit chain is broken at record {}", broken.sequence());
                }
            }
            AuditCommand::Head { json } => {
                let head = store.read().await?.audit_head().await?;
                if json {
                    println!(
                        "{}",
                        serde_json::json!({ "sequence": head.sequence, "hash": head.hash_hex() })
                    );
                } else {
                    println!("{}:{}", head.sequence, head.hash_hex());
                }
            }
        }
        anyhow::Ok(())
    }
    .await;
    store.close().await;
    result
}

fn print_chain_report(report: &ChainReport, json: bool) -> anyhow::Result<()> {
    if json {
        let broken = report.broken.as_ref().map(|broken| {
            serde_json::json!({ "sequence": broken.sequence(), "reason": broken.to_string() })
        });
        let value = serde_json::json!({
            "intact": report.broken.is_none(),
            "from": report.from,
            "checked": report.checked,
            "head": { "sequence": report.head.sequence, "hash": report.head.hash_hex() },
            "broken": broken,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    match &report.broken {
        None if report.checked == 0 => println!(
            "audit chain intact: no records from {} on (head {}:{})",
            report.from,
            report.head.sequence,
            report.head.hash_hex()
        ),
        None => println!(
            "audit chain intact: records {} to {} checked ({} records); head {}:{}",
            report.from,
            report.head.sequence,
            report.checked,
            report.head.sequence,
            report.head.hash_hex()
        ),
        Some(broken) => {
            println!(
                "audit chain BROKEN at record {}: {broken}",
                broken.sequence()
            );
            if report.checked > 0 {
                println!(
                    "records {} to {} are intact (head {}:{})",
                    report.from,
                    report.head.sequence,
                    report.head.sequence,
                    report.head.hash_hex()
                );
            }
        }
    }
    Ok(())
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    init_tracing(&settings.log_format);
    let application = Application::build(settings)
        .await
        .context("starting the hub")?;
    application.run_until_stopped().await.context("serving")?;
    Ok(())
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn parse_codes(flag: &str, codes: &[String]) -> anyhow::Result<Vec<Municipality>> {
    codes
        .iter()
        .map(|code| {
            Municipality::parse(code).with_context(|| {
                format!("--{flag} {code}: not a six-digit municipality code (e.g. 141178)")
            })
        })
        .collect()
}

fn agency_id(text: &str) -> anyhow::Result<AgencyId> {
    AgencyId::parse(text).with_context(|| {
        format!("{text:?} is not an agency id: use 2-63 lower-case letters, digits and '-'")
    })
}

async fn agency(settings: Settings, command: AgencyCommand) -> anyhow::Result<()> {
    let store = store::connect(&settings.database_url)
        .await
        .context("opening the database")?;
    let now = SystemClock.now();
    let result = async {
        match command {
            AgencyCommand::Add(add) => {
                let agency = Agency {
                    id: agency_id(&add.agency_id)?,
                    kind: AgencyKind::parse(&add.kind).with_context(|| {
                        format!("--kind {}: use lower-case letters and '_'", add.kind)
                    })?,
                    display_name: add.name.trim().to_owned(),
                    municipalities: parse_codes("municipality", &add.municipalities)?,
                    council_memberships: parse_codes("council", &add.council)?,
                    coordinator_of: parse_codes("coordinator-of", &add.coordinator_of)?,
                    status: AgencyStatus::Active,
                };
                if agency.display_name.is_empty() {
                    bail!("--name must not be empty");
                }
                let mut tx = store.begin().await?;
                tx.insert_agency(&agency, now).await?;
                tx.commit().await?;
                println!(
                    "registered {} ({}); its certificate needs the URI SAN {}",
                    agency.id,
                    agency.kind,
                    agency.id.spiffe_uri(&settings.trust_domain)
                );
            }
            AgencyCommand::List { json } => {
                let agencies = store.read().await?.agencies().await?;
                print_agencies(&agencies, json)?;
            }
            AgencyCommand::Suspend { agency_id: id } => {
                set_status(store.as_ref(), &id, AgencyStatus::Suspended, now).await?;
                println!("{id} is suspended: its calls are refused from now on");
            }
            AgencyCommand::Resume { agency_id: id } => {
                set_status(store.as_ref(), &id, AgencyStatus::Active, now).await?;
                println!("{id} is active again");
            }
        }
        anyhow::Ok(())
    }
    .await;
    store.close().await;
    result
}

async fn set_status(
    store: &dyn store::Store,
    id: &str,
    status: AgencyStatus,
    now: tsunagu_hub::domain::Timestamp,
) -> anyhow::Result<()> {
    let id = agency_id(id)?;
    let mut tx = store.begin().await?;
    if !tx.set_agency_status(&id, status, now).await? {
        bail!("no agency {id} is registered (see `tsunagu-hub agency list`)");
    }
    tx.commit().await?;
    Ok(())
}

fn print_agencies(agencies: &[Agency], json: bool) -> anyhow::Result<()> {
    let join = |codes: &[Municipality]| {
        codes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    if json {
        let rows: Vec<serde_json::Value> = agencies
            .iter()
            .map(|a| {
                serde_json::json!({
                    "agency_id": a.id.as_str(),
                    "kind": a.kind.as_str(),
                    "display_name": a.display_name,
                    "municipalities": a.municipalities.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "council_memberships": a.council_memberships.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "coordinator_of": a.coordinator_of.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "status": a.status.code(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<20} {:<22} {:<10} {:<14} {:<14} NAME",
        "ID", "KIND", "STATUS", "MUNICIPALITIES", "COORDINATOR"
    );
    for a in agencies {
        println!(
            "{:<20} {:<22} {:<10} {:<14} {:<14} {}",
            a.id.as_str(),
            a.kind.as_str(),
            a.status.code(),
            join(&a.municipalities),
            join(&a.coordinator_of),
            a.display_name
        );
    }
    Ok(())
}

async fn certs(settings: Settings, command: CertsCommand) -> anyhow::Result<()> {
    match command {
        CertsCommand::Dev { dir } => {
            let written = pki::write_dev_pki(&dir)
                .with_context(|| format!("writing the development PKI into {}", dir.display()))?;
            for path in written {
                println!("wrote {}", path.display());
            }
            println!("These certificates and keys are for development only.");
        }
        CertsCommand::Issue {
            ca_cert,
            ca_key,
            agency,
            trust_domain,
            days,
            out_dir,
        } => {
            let id = agency_id(&agency)?;
            let read = |path: &PathBuf| {
                std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
            };
            let ca = CertificateAuthority::from_pem(&read(&ca_cert)?, &read(&ca_key)?)
                .context("loading the CA")?;
            let trust_domain = trust_domain.unwrap_or(settings.trust_domain);
            let issued = ca
                .issue_agency(&trust_domain, id.as_str(), Validity::days_from_now(days))
                .context("issuing the certificate")?;
            std::fs::create_dir_all(&out_dir)
                .with_context(|| format!("creating {}", out_dir.display()))?;
            let cert_path = out_dir.join(format!("{id}.pem"));
            let key_path = out_dir.join(format!("{id}.key"));
            std::fs::write(&cert_path, &issued.cert_pem)
                .with_context(|| format!("writing {}", cert_path.display()))?;
            write_private(&key_path, &issued.key_pem)?;
            println!(
                "issued {} for {} (fingerprint {}, serial {})",
                cert_path.display(),
                id.spiffe_uri(&trust_domain),
                issued.fingerprint_sha256,
                hex::encode(&issued.serial)
            );
            println!("private key: {}", key_path.display());
        }
        CertsCommand::Revoke {
            fingerprint,
            reason,
        } => {
            let fingerprint = fingerprint.to_ascii_lowercase().replace(':', "");
            if fingerprint.len() != 64 || !fingerprint.chars().all(|c| c.is_ascii_hexdigit()) {
                bail!("the fingerprint must be 64 hex digits (SHA-256 of the certificate)");
            }
            let store = store::connect(&settings.database_url).await?;
            let mut tx = store.begin().await?;
            tx.revoke_certificate(&fingerprint, &reason, SystemClock.now())
                .await?;
            tx.commit().await?;
            store.close().await;
            println!("certificate {fingerprint} is revoked: its next call is refused");
        }
    }
    Ok(())
}

fn write_private(path: &std::path::Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
