//! The operator's command line: `serve`, `agency`, `certs`, `audit` and `migrate`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use tsunagu_hub::casework::audit::{ChainReport, verify_chain};
use tsunagu_hub::dev_pki;
use tsunagu_hub::domain::audit::ChainHead;
use tsunagu_hub::domain::{
    Agency, AgencyId, AgencyKind, AgencyStatus, CaseId, Clock, Municipality, SystemClock, Timestamp,
};
use tsunagu_hub::pki::{CertificateAuthority, Validity};
use tsunagu_hub::signing::{AuditSigner, SigningKeyError};
use tsunagu_hub::store::Locking;
use tsunagu_hub::traces::Traces;
use tsunagu_hub::{Application, Settings, certificates, ops, store};

const EXAMPLES: &str = "\
Examples:
  # Run the development hub on 127.0.0.1:7443 with certs-dev and ./data/tsunagu.db
  tsunagu-hub serve

  # Register an agency, then suspend and resume it
  tsunagu-hub agency add aoba-clinic --kind hospital --name '青葉クリニック' --municipality 141178
  tsunagu-hub agency update aoba-clinic --council 141178
  tsunagu-hub agency suspend aoba-clinic
  tsunagu-hub agency resume aoba-clinic

  # Issue its certificate from your CA
  tsunagu-hub certs issue --ca-cert ca.pem --ca-key ca.key --agency aoba-clinic --out-dir out/

  # Regenerate the development PKI (development only)
  tsunagu-hub certs dev --dir certs-dev

  # Check the audit log's hash chain; note its head to compare with later
  tsunagu-hub audit verify
  tsunagu-hub audit head
  tsunagu-hub audit verify --expect-head 1234:9f86d081884c7d65...

  # Everything the audit log holds about one case (a disclosure request), as CSV
  tsunagu-hub audit export --case 0193a1b2-... --format csv > case.csv

  # Certificates that expire within 30 days (the hub's, the CA, each agency's last-seen one)
  tsunagu-hub certs expiring --within 30d

  # Check a config file and the files it names before restarting the service
  tsunagu-hub check-config --config /etc/tsunagu/hub.toml

  # Back up the SQLite database while the hub serves; restore into an empty data directory
  tsunagu-hub backup --to /var/backups/tsunagu/$(date +%F).db
  tsunagu-hub restore --from /var/backups/tsunagu/2026-12-01.db";

/// The Tsunagu hub and its operator commands.
#[derive(Debug, Parser)]
#[command(name = "tsunagu-hub", version, about, after_help = EXAMPLES)]
pub struct Cli {
    /// Config file (TOML). Without one the development defaults apply; TSUNAGU_* variables
    /// override either. Its own variable, so that it never picks up the `tsunagu` client's
    /// TSUNAGU_CONFIG on a machine that runs both.
    #[arg(long, global = true, env = "TSUNAGU_HUB_CONFIG")]
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
    /// Check the config file (--config) and every certificate, key and CRL it names; say what
    /// is wrong. Exits non-zero when the hub would not start.
    CheckConfig,
    /// Copy the SQLite database into FILE while the hub serves (VACUUM INTO), then check the
    /// copy's audit chain. PostgreSQL: use pg_dump (see the README).
    Backup {
        /// The backup file to write; it must not exist.
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
    /// Restore a backup into the configured SQLite database, whose directory must be empty or
    /// absent, then check its audit chain.
    Restore {
        /// The backup file `backup --to` wrote.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
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
    /// The hub's audit signing key, which clients pin, goes to stderr (and into --json).
    Head {
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Who read or changed what about one case, with legal bases: every audit record about it
    /// and nothing about any other case. The reporter of an abuse notification (通告) is
    /// withheld unless --include-reporters.
    Export {
        /// The case id.
        #[arg(long = "case", value_name = "ID")]
        case_id: String,
        #[arg(long, value_enum, default_value_t = ExportFormat::Json)]
        format: ExportFormat,
        /// Show the agency of an abuse notification's reporter too (児童虐待防止法7条: only
        /// where the law requires it).
        #[arg(long)]
        include_reporters: bool,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    Json,
    Csv,
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
    /// Change a registered agency: name, kind, municipalities, council membership, coordinator
    /// role. Only what is given changes; a repeatable flag replaces the whole list.
    Update(UpdateAgency),
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

#[derive(Debug, Args)]
struct UpdateAgency {
    agency_id: String,
    /// New kind code.
    #[arg(long)]
    kind: Option<String>,
    /// New display name.
    #[arg(long)]
    name: Option<String>,
    /// Municipalities served (replaces the list); repeat for several.
    #[arg(long = "municipality")]
    municipalities: Vec<String>,
    /// 要対協 memberships (replaces the list); repeat for several.
    #[arg(long = "council", conflicts_with = "no_council")]
    council: Vec<String>,
    /// Leave every 要対協.
    #[arg(long)]
    no_council: bool,
    /// Municipalities coordinated (replaces the list); repeat for several.
    #[arg(long = "coordinator-of", conflicts_with = "no_coordinator")]
    coordinator_of: Vec<String>,
    /// Coordinate no municipality any more.
    #[arg(long)]
    no_coordinator: bool,
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
        /// Validity in days (1 to 3650).
        #[arg(long, default_value_t = 397, value_parser = clap::value_parser!(i64).range(1..=3650))]
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
    /// List the certificates that expire soon: the hub's, the agency CA, and the one each
    /// agency presented last.
    Expiring {
        /// How far ahead: days, as `30d` or `30`.
        #[arg(long, default_value = "30d", value_name = "DAYS")]
        within: String,
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::CheckConfig = cli.command {
        return check_config(cli.config.as_deref());
    }
    let settings = Settings::load(cli.config.as_deref()).context("loading the configuration")?;
    match cli.command {
        Command::CheckConfig => unreachable!("handled above"),
        Command::Backup { to } => {
            let report = ops::backup(&settings.database_url, &to)
                .await
                .with_context(|| format!("backing up into {}", to.display()))?;
            chain_verdict(&report, &format!("backup {}", to.display()))
        }
        Command::Restore { from } => {
            let report = ops::restore(&settings.database_url, &from)
                .await
                .with_context(|| format!("restoring {}", from.display()))?;
            chain_verdict(&report, &format!("restored {}", settings.database_url))
        }
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
            AuditCommand::Export {
                case_id,
                format,
                include_reporters,
            } => {
                let case = CaseId::parse(&case_id)
                    .with_context(|| format!("--case {case_id}: not a case id"))?;
                let records = ops::case_disclosure(store.as_ref(), &case)
                    .await?
                    .with_context(|| format!("no case {case_id} in this hub's database"))?;
                print_disclosure(&records, format, include_reporters)?;
            }
            AuditCommand::Head { json } => {
                let head = store.read().await?.audit_head().await?;
                // The key clients pin: read, never made here (the hub makes it on first start).
                let key_path = settings.audit_signing_key_path();
                let signing_key = match AuditSigner::load(&key_path) {
                    Ok(signer) => Some(signer.public_key_hex()),
                    Err(SigningKeyError::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        None
                    }
                    Err(error) => return Err(error.into()),
                };
                if json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "sequence": head.sequence,
                            "hash": head.hash_hex(),
                            "signing_key": signing_key,
                        })
                    );
                } else {
                    println!("{}:{}", head.sequence, head.hash_hex());
                    // On stderr, so that `$(tsunagu-hub audit head)` stays SEQ:HEX.
                    match signing_key {
                        Some(key) => eprintln!(
                            "audit signing key (Ed25519, clients pin it): {key} ({})",
                            key_path.display()
                        ),
                        None => eprintln!(
                            "no audit signing key yet at {}: the hub makes it when it first starts",
                            key_path.display()
                        ),
                    }
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
    let traces = Traces::start(&settings.traces).with_context(|| {
        format!(
            "traces.otlp_endpoint {:?}: cannot set up the OTLP exporter",
            settings.traces.otlp_endpoint.as_deref().unwrap_or_default()
        )
    })?;
    init_tracing(&settings.log_format, traces.as_ref());
    if let Some(endpoint) = &settings.traces.otlp_endpoint {
        tracing::info!(%endpoint, "traces: exporting one span per call over OTLP/gRPC");
    }
    let served = async {
        let application = Application::build(settings)
            .await
            .context("starting the hub")?;
        application.run_until_stopped().await.context("serving")
    }
    .await;
    if let Some(traces) = traces {
        traces.shutdown();
    }
    served
}

fn init_tracing(format: &str, traces: Option<&Traces>) {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: escape codes in a journal or a log file are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let log = tracing_subscriber::fmt::layer().with_ansi(ansi);
    let log = if format == "json" {
        log.json().boxed()
    } else {
        log.boxed()
    };
    // The log's filter applies to the log alone: the per-call spans are at TRACE so that they
    // never decorate log lines, and reach the exporter through its own filter.
    tracing_subscriber::registry()
        .with(log.with_filter(filter))
        .with(traces.map(Traces::layer))
        .init();
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
                if agency.id.as_str() == tsunagu_hub::casework::timers::HUB_ACTOR {
                    bail!(
                        "{} is reserved: the audit log names the hub's own actions with it",
                        agency.id
                    );
                }
                if agency.display_name.is_empty() {
                    bail!("--name must not be empty");
                }
                let inserted = agency.clone();
                store
                    .write(Locking::Exclusive, move |tx| {
                        Box::pin(async move { tx.insert_agency(&inserted, now).await })
                    })
                    .await?;
                println!(
                    "registered {} ({}); its certificate needs the URI SAN {}",
                    agency.id,
                    agency.kind,
                    agency.id.spiffe_uri(&settings.trust_domain)
                );
            }
            AgencyCommand::Update(update) => {
                let id = agency_id(&update.agency_id)?;
                let agency = store
                    .write(Locking::Exclusive, move |tx| {
                        Box::pin(async move {
                            let Some(mut agency) = tx.agency(&id).await? else {
                                bail!(
                                    "no agency {id} is registered (see `tsunagu-hub agency list`)"
                                );
                            };
                            if let Some(kind) = &update.kind {
                                agency.kind = AgencyKind::parse(kind).with_context(|| {
                                    format!("--kind {kind}: use lower-case letters and '_'")
                                })?;
                            }
                            if let Some(name) = &update.name {
                                if name.trim().is_empty() {
                                    bail!("--name must not be empty");
                                }
                                name.trim().clone_into(&mut agency.display_name);
                            }
                            if !update.municipalities.is_empty() {
                                agency.municipalities =
                                    parse_codes("municipality", &update.municipalities)?;
                            }
                            if update.no_council || !update.council.is_empty() {
                                agency.council_memberships =
                                    parse_codes("council", &update.council)?;
                            }
                            if update.no_coordinator || !update.coordinator_of.is_empty() {
                                agency.coordinator_of =
                                    parse_codes("coordinator-of", &update.coordinator_of)?;
                            }
                            tx.update_agency(&agency, now).await?;
                            anyhow::Ok(agency)
                        })
                    })
                    .await?;
                print_agencies(std::slice::from_ref(&agency), false)?;
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
    store
        .write(Locking::Exclusive, move |tx| {
            Box::pin(async move {
                if !tx.set_agency_status(&id, status, now).await? {
                    bail!("no agency {id} is registered (see `tsunagu-hub agency list`)");
                }
                anyhow::Ok(())
            })
        })
        .await
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
        CertsCommand::Expiring { within, json } => {
            certs_expiring(&settings, &within, json).await?;
        }
        CertsCommand::Dev { dir } => {
            let written = dev_pki::write_dev_pki(&dir)
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
            // A certificate for an agency the hub does not know would be refused on every call.
            let store = store::connect(&settings.database_url)
                .await
                .context("opening the database")?;
            let registered = store
                .read()
                .await?
                .agency(&id)
                .await
                .context("reading the agency")?;
            store.close().await;
            if registered.is_none() {
                bail!(
                    "agency {id} is not registered with this hub; register it first with \
                     `tsunagu-hub agency add {id} --kind ... --name ... --municipality ...`"
                );
            }
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
            let (now, revoked) = (SystemClock.now(), fingerprint.clone());
            store
                .write(Locking::Exclusive, move |tx| {
                    Box::pin(async move { tx.revoke_certificate(&revoked, &reason, now).await })
                })
                .await?;
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

fn check_config(file: Option<&std::path::Path>) -> anyhow::Result<()> {
    let report = ops::check_config(file, |name| std::env::var(name).ok(), SystemClock.now());
    let shown = file.map_or_else(
        || "the built-in defaults".to_owned(),
        |path| path.display().to_string(),
    );
    for note in &report.notes {
        println!("note: {note}");
    }
    if !report.problems.is_empty() {
        for problem in &report.problems {
            eprintln!("problem: {problem}");
        }
        bail!(
            "{shown}: {} problem(s); the hub would not start (or would lock agencies out) \
             with this configuration",
            report.problems.len()
        );
    }
    if let Some(settings) = &report.settings {
        let metrics = if settings.metrics.enabled {
            format!("http://{}/metrics", settings.metrics.listen)
        } else {
            "off".to_owned()
        };
        let traces = settings.traces.otlp_endpoint.as_deref().unwrap_or("off");
        println!(
            "{shown}: OK (listen {}, metrics {metrics}, traces {traces}, database {})",
            settings.listen, settings.database_url
        );
    }
    Ok(())
}

fn chain_verdict(report: &ChainReport, what: &str) -> anyhow::Result<()> {
    if let Some(broken) = &report.broken {
        bail!(
            "{what}: the audit chain is BROKEN at record {}: {broken}",
            broken.sequence()
        );
    }
    println!(
        "{what}: audit chain intact ({} records, head {}:{})",
        report.checked,
        report.head.sequence,
        report.head.hash_hex()
    );
    Ok(())
}

/// `30d` or `30`: a number of days.
fn parse_days(text: &str) -> anyhow::Result<i64> {
    text.trim()
        .trim_end_matches('d')
        .parse::<i64>()
        .ok()
        .filter(|days| *days >= 0)
        .with_context(|| format!("--within {text}: give days, such as 30d"))
}

fn print_disclosure(
    records: &[ops::DisclosedRecord],
    format: ExportFormat,
    include_reporters: bool,
) -> anyhow::Result<()> {
    let rows: Vec<Vec<(&str, String)>> = records
        .iter()
        .map(|disclosed| {
            let e = &disclosed.record.entry;
            let withheld = disclosed.reporter_protected && !include_reporters;
            let text = |value: &Option<String>| value.clone().unwrap_or_default();
            let agency = if withheld {
                "(通告者保護のため非表示)".to_owned()
            } else {
                e.agency_id.clone()
            };
            vec![
                ("sequence", disclosed.record.sequence.to_string()),
                ("at", e.at.to_string()),
                ("agency_id", agency),
                (
                    "staff_name",
                    if withheld {
                        String::new()
                    } else {
                        text(&e.staff_name)
                    },
                ),
                (
                    "staff_role",
                    if withheld {
                        String::new()
                    } else {
                        text(&e.staff_role)
                    },
                ),
                ("action", e.action.clone()),
                ("case_id", text(&e.case_id)),
                ("referral_id", text(&e.referral_id)),
                ("note_id", text(&e.note_id)),
                ("consent_id", text(&e.consent_id)),
                ("legal_basis", text(&e.basis)),
                ("outcome", e.outcome.clone()),
                (
                    "reporter_protected",
                    disclosed.reporter_protected.to_string(),
                ),
            ]
        })
        .collect();
    match format {
        ExportFormat::Json => {
            let values: Vec<serde_json::Value> = rows
                .iter()
                .map(|row| {
                    serde_json::Value::Object(
                        row.iter()
                            .map(|(key, value)| {
                                let value = match *key {
                                    "sequence" => serde_json::json!(value.parse::<u64>().ok()),
                                    "reporter_protected" => serde_json::json!(value == "true"),
                                    _ if value.is_empty() => serde_json::Value::Null,
                                    _ => serde_json::json!(value),
                                };
                                ((*key).to_owned(), value)
                            })
                            .collect(),
                    )
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&values)?);
        }
        ExportFormat::Csv => {
            let header = [
                "sequence",
                "at",
                "agency_id",
                "staff_name",
                "staff_role",
                "action",
                "case_id",
                "referral_id",
                "note_id",
                "consent_id",
                "legal_basis",
                "outcome",
                "reporter_protected",
            ];
            println!("{}", header.join(","));
            for row in &rows {
                let cells: Vec<String> = row.iter().map(|(_, value)| csv_cell(value)).collect();
                println!("{}", cells.join(","));
            }
        }
    }
    Ok(())
}

/// A CSV cell (RFC 4180): quoted when it holds a comma, quote or line break. A leading `=`,
/// `+`, `-` or `@` is prefixed with `'` so that a spreadsheet never runs it as a formula.
fn csv_cell(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

async fn certs_expiring(settings: &Settings, within: &str, json: bool) -> anyhow::Result<()> {
    let within = parse_days(within)?;
    let store = store::connect(&settings.database_url)
        .await
        .context("opening the database")?;
    let known = certificates::known_certificates(&settings.tls, store.as_ref()).await;
    store.close().await;
    let now = SystemClock.now();
    let mut expiring: Vec<_> = known?
        .into_iter()
        .map(|certificate| (certificate.days_left(now), certificate))
        .filter(|(days, _)| *days <= within)
        .collect();
    expiring.sort_by_key(|(days, _)| *days);
    if json {
        let rows: Vec<serde_json::Value> = expiring
            .iter()
            .map(|(days, c)| {
                serde_json::json!({
                    "role": c.role,
                    "agency_id": c.agency_id,
                    "fingerprint": c.fingerprint,
                    "not_after": Timestamp::from_millis(c.not_after * 1000).to_string(),
                    "days_left": days,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if expiring.is_empty() {
        println!("no certificate the hub knows expires within {within} days");
        return Ok(());
    }
    println!(
        "{:<8} {:<20} {:>9} {:<26} FINGERPRINT",
        "ROLE", "AGENCY", "DAYS_LEFT", "NOT_AFTER"
    );
    for (days, c) in &expiring {
        println!(
            "{:<8} {:<20} {:>9} {:<26} {}",
            c.role,
            c.agency_id.as_deref().unwrap_or("-"),
            days,
            Timestamp::from_millis(c.not_after * 1000).to_string(),
            c.fingerprint
        );
    }
    println!("renew each with `tsunagu-hub certs issue` (README: Renewing a certificate)");
    Ok(())
}
