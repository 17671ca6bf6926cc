//! `ykt ca` and `ykt client`: the internal CA of the KMS API (`ykt_kms::ca`) and its clients.
//!
//! - `ykt ca init` (quorum): the CA's P-256 key in the HSM and its certificate;
//!   `ykt ca show --out FILE`: the CA certificate; `ykt ca crl --out FILE`: a fresh
//!   revocation list.
//! - `ykt client enroll NAME --role ROLE [--school CODE ...] --out DIR
//!   [--p12-password-file FILE]` (one officer): the client's certificate (`NAME.pem`), its
//!   private key (`NAME.key`, mode 0600: the KMS keeps no copy), both with the CA certificate
//!   as a PKCS#12 bundle (`NAME.p12`, mode 0600, `ykt_kms::pkcs12`) and the CA certificate
//!   (`ca.pem`) in DIR. The bundle's password is the first line of FILE, or else a fresh
//!   passphrase written to `NAME.p12.pass` (mode 0600) and never shown; and
//!   `NAME-api-client.toml`, the client configuration `ykt issue --kms URL --client-config
//!   FILE` reads (`crate::api_client`);
//!   `ykt client revoke NAME --reason TEXT`; `ykt client list`.

use crate::api_client::{CLIENT_CONFIG, ClientConfig};
use crate::context::{Context, GroupCommand, Need, Officers, OneOfficer, private_dir, write_new};
use crate::error::{CliError, Result};
use crate::output::{Output, Record, Report, Value};
use crate::time::format_ms;
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use ykt_kms::ca::{ApiClient, ClientRole};
use ykt_kms::pkcs12;
use zeroize::Zeroizing;

/// The CA commands.
#[derive(Subcommand)]
pub enum CaCommand {
    /// Create the CA (a quorum approves): its key in the HSM and its certificate.
    Init(CaInitArgs),
    /// Write the CA certificate.
    Show(OutArgs),
    /// Write a revocation list signed now.
    Crl(OutArgs),
}

/// Arguments of `ykt ca init`.
#[derive(Args)]
pub struct CaInitArgs {
    #[command(flatten)]
    approvals: Officers,
    /// Also write the CA certificate to FILE.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// Where to write a PEM file.
#[derive(Args)]
pub struct OutArgs {
    /// The file (not replaced when it exists).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

fn written(what: &'static str, path: &Path) -> Report {
    Report::ok(Output::Record(
        Record::new().with(what, path.display().to_string()),
    ))
}

impl GroupCommand for CaCommand {
    fn run(self, context: &mut Context) -> Result<Report> {
        match self {
            Self::Init(args) => {
                let kms = context.open(Need::Hsm(&args.approvals.names))?;
                let approvals = context.credentials(&args.approvals.names)?;
                let pem = context.block_on(kms.init_ca(&approvals))?;
                if let Some(path) = &args.out {
                    write_new(path, pem.as_bytes(), 0o644)?;
                }
                Ok(Report::ok(Output::Record(
                    Record::new().with("ca", "tls-ca").with(
                        "certificate",
                        args.out
                            .map_or_else(|| "-".into(), |p| p.display().to_string()),
                    ),
                )))
            }
            Self::Show(args) => {
                let kms = context.open(Need::Store)?;
                let pem = context.block_on(kms.ca_certificate_pem())?;
                write_new(&args.out, pem.as_bytes(), 0o644)?;
                Ok(written("certificate", &args.out))
            }
            Self::Crl(args) => {
                let kms = context.open(Need::Hsm(&[]))?;
                let pem = context.block_on(kms.revocation_list_pem())?;
                write_new(&args.out, pem.as_bytes(), 0o644)?;
                Ok(written("crl", &args.out))
            }
        }
    }
}

/// The client commands.
#[derive(Subcommand)]
pub enum ClientCommand {
    /// Enrol an API client (one officer): certificate and key (PEM and PKCS#12) to DIR.
    Enroll(EnrollArgs),
    /// Revoke a client (one officer).
    Revoke(RevokeArgs),
    /// Every client.
    List,
}

/// Arguments of `ykt client enroll`.
#[derive(Args)]
pub struct EnrollArgs {
    /// The client's name (a-z, 0-9, `-`, `_`).
    name: String,
    /// Its role: platform, issuer, terminal-manager or auditor.
    #[arg(long, value_name = "ROLE")]
    role: String,
    /// A school in an issuing station's scope (repeat for each).
    #[arg(long = "school", value_name = "CODE")]
    schools: Vec<String>,
    /// The directory for NAME.pem, NAME.key, NAME.p12 and ca.pem (created mode 0700 if
    /// missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The password of NAME.p12: the first line of FILE. Without it, a fresh passphrase is
    /// written to NAME.p12.pass (mode 0600).
    #[arg(long, value_name = "FILE")]
    p12_password_file: Option<PathBuf>,
    #[command(flatten)]
    officer: OneOfficer,
}

/// Arguments of `ykt client revoke`.
#[derive(Args)]
pub struct RevokeArgs {
    /// The client.
    name: String,
    /// Why.
    #[arg(long, value_name = "TEXT")]
    reason: String,
    #[command(flatten)]
    officer: OneOfficer,
}

/// The first line of a password file.
fn read_password(path: &Path) -> Result<Zeroizing<String>> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|source| CliError::Read {
            path: path.display().to_string(),
            source,
        })?,
    );
    Ok(Zeroizing::new(
        text.lines().next().unwrap_or_default().to_owned(),
    ))
}

fn client_record(client: &ApiClient) -> Record {
    Record::new()
        .with("name", client.name.clone())
        .with("role", client.role.clone())
        .with("schools", Value::list(client.schools.clone()))
        .with("serial", client.serial.clone())
        .with("fingerprint", client.fingerprint.clone())
        .with("status", client.status.clone())
        .with("not_after", format_ms(client.not_after))
}

impl GroupCommand for ClientCommand {
    fn run(self, context: &mut Context) -> Result<Report> {
        match self {
            Self::Enroll(args) => {
                let role: ClientRole = args.role.parse()?;
                let kms = context.open(Need::Hsm(&[]))?;
                let credential = context.credential(&args.officer.name)?;
                let file = |suffix: &str| args.out.join(format!("{}.{suffix}", args.name));
                // The bundle's password, the file that holds it, and that file again when it
                // is to be written (no file given: a fresh passphrase).
                let (password, password_file, new_password_file) = match &args.p12_password_file {
                    Some(path) => (read_password(path)?, path.clone(), None),
                    None => {
                        let path = file("p12.pass");
                        (pkcs12::new_password()?, path.clone(), Some(path))
                    }
                };
                pkcs12::check_password(&password)?;
                let (cert, key, bundle) = (file("pem"), file("key"), file("p12"));
                let config = args.out.join(format!("{}-{CLIENT_CONFIG}", args.name));
                for path in [&cert, &key, &bundle, &config]
                    .into_iter()
                    .chain(&new_password_file)
                {
                    if path.exists() {
                        return Err(CliError::Write {
                            path: path.display().to_string(),
                            source: std::io::ErrorKind::AlreadyExists.into(),
                        });
                    }
                }
                private_dir(&args.out)?;
                let enrolment = context.block_on(kms.enroll_client(
                    &credential,
                    &args.name,
                    role,
                    &args.schools,
                ))?;
                let p12 = enrolment.pkcs12(&password)?;
                write_new(&key, enrolment.key_pem.as_bytes(), 0o600)?;
                write_new(&cert, enrolment.certificate_pem.as_bytes(), 0o644)?;
                if let Some(path) = &new_password_file {
                    let line = Zeroizing::new(format!("{}\n", password.as_str()));
                    write_new(path, line.as_bytes(), 0o600)?;
                }
                write_new(&bundle, &p12, 0o600)?;
                let ca = args.out.join("ca.pem");
                if !ca.exists() {
                    write_new(&ca, enrolment.ca_pem.as_bytes(), 0o644)?;
                }
                let named = |path: &Path| PathBuf::from(path.file_name().unwrap_or_default());
                let client_config = ClientConfig {
                    certificate: named(&cert),
                    key: named(&key),
                    ca: named(&ca),
                };
                let text = toml::to_string(&client_config).map_err(|error| CliError::Input {
                    arg: "--out",
                    reason: error.to_string(),
                })?;
                write_new(&config, text.as_bytes(), 0o644)?;
                Ok(Report::ok(Output::Record(
                    client_record(&enrolment.client)
                        .with("certificate", cert.display().to_string())
                        .with("key", key.display().to_string())
                        .with("pkcs12", bundle.display().to_string())
                        .with("pkcs12_password", password_file.display().to_string())
                        .with("client_config", config.display().to_string()),
                )))
            }
            Self::Revoke(args) => {
                let kms = context.open(Need::Store)?;
                let credential = context.credential(&args.officer.name)?;
                context.block_on(kms.revoke_client(&credential, &args.name, &args.reason))?;
                Ok(Report::ok(Output::Record(
                    Record::new()
                        .with("name", args.name)
                        .with("status", "revoked"),
                )))
            }
            Self::List => {
                let kms = context.open(Need::Store)?;
                let clients = context.block_on(kms.clients())?;
                Ok(Report::ok(Output::List(
                    clients.iter().map(client_record).collect(),
                )))
            }
        }
    }
}
