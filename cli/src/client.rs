//! `ykt ca` and `ykt client`: the internal CA of the KMS API (`ykt_kms::ca`) and its clients.
//!
//! - `ykt ca init` (quorum): the CA's P-256 key in the HSM and its certificate;
//!   `ykt ca show --out FILE`: the CA certificate; `ykt ca crl --out FILE`: a fresh
//!   revocation list.
//! - `ykt client enroll NAME --role ROLE [--school CODE ...] --out DIR` (one officer): the
//!   client's certificate (`NAME.pem`), its private key (`NAME.key`, mode 0600: the KMS keeps no
//!   copy) and the CA certificate (`ca.pem`) in DIR; `ykt client revoke NAME --reason TEXT`;
//!   `ykt client list`.

use crate::context::{Context, GroupCommand, Need, Officers, OneOfficer, private_dir, write_new};
use crate::error::{CliError, Result};
use crate::output::{Output, Record, Report, Value};
use crate::time::format_ms;
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use ykt_kms::ca::{ApiClient, ClientRole};

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
    /// Enrol an API client (one officer): certificate and key to DIR.
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
    /// The directory for NAME.pem, NAME.key and ca.pem (created mode 0700 if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
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
                for name in [format!("{}.pem", args.name), format!("{}.key", args.name)] {
                    if args.out.join(&name).exists() {
                        return Err(CliError::Write {
                            path: args.out.join(name).display().to_string(),
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
                let key = args.out.join(format!("{}.key", args.name));
                write_new(&key, enrolment.key_pem.as_bytes(), 0o600)?;
                let cert = args.out.join(format!("{}.pem", args.name));
                write_new(&cert, enrolment.certificate_pem.as_bytes(), 0o644)?;
                let ca = args.out.join("ca.pem");
                if !ca.exists() {
                    write_new(&ca, enrolment.ca_pem.as_bytes(), 0o644)?;
                }
                Ok(Report::ok(Output::Record(
                    client_record(&enrolment.client)
                        .with("certificate", cert.display().to_string())
                        .with("key", key.display().to_string()),
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
