//! `ykt ceremony export-school`: a school's key package (the masters diversified to the
//! school, each a key block under the school's transport key, signed by the KMS) written as
//! JSON to a new file. The package holds no clear key, so the file is mode 0644.

use super::Alg;
use crate::context::{Context, Need, Officers, write_new};
use crate::error::{CliError, Result};
use crate::output::{Output, Record, Report, Value};
use clap::Args;
use std::path::PathBuf;

/// Arguments of `ykt ceremony export-school`.
#[derive(Args)]
pub struct ExportSchoolArgs {
    /// The school's 10-digit code.
    school: String,
    /// The algorithm of the masters to package.
    #[arg(long, value_enum)]
    alg: Alg,
    /// The algorithm of the school's transport key.
    #[arg(long, value_enum)]
    transport_alg: Alg,
    /// The package file to create (refused if it exists).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    #[command(flatten)]
    officers: Officers,
}

impl ExportSchoolArgs {
    /// Exports the package and describes it.
    pub fn run(self, context: &Context) -> Result<Report> {
        if self.out.exists() {
            return Err(CliError::Write {
                path: self.out.display().to_string(),
                source: std::io::ErrorKind::AlreadyExists.into(),
            });
        }
        let kms = context.open(Need::Hsm(&self.officers.names))?;
        let approvals = context.credentials(&self.officers.names)?;
        let package = context.block_on(kms.export_school_package(
            &approvals,
            &self.school,
            self.alg.key_algorithm(),
            self.transport_alg.key_algorithm(),
        ))?;
        let json = serde_json::to_string_pretty(&package).map_err(std::io::Error::from)? + "\n";
        write_new(&self.out, json.as_bytes(), 0o644)?;
        let (transport_id, transport_version, transport_kcv) = package.transport_key;
        Ok(Report::ok(Output::Record(
            Record::new()
                .with("file", self.out.display().to_string())
                .with("format", package.format)
                .with("bureau", package.bureau)
                .with("region", package.region)
                .with("school", package.school)
                .with("transport_key", transport_id)
                .with("transport_version", u64::from(transport_version))
                .with("transport_kcv", transport_kcv)
                .with("signer", package.signer.clone())
                .with("signer_version", u64::from(package.signer_version))
                .with(
                    "keys",
                    Value::Records(
                        package
                            .keys
                            .into_iter()
                            .map(|k| {
                                Record::new()
                                    .with("template", k.template)
                                    .with("algorithm", k.algorithm)
                                    .with("version", u64::from(k.version))
                                    .with("kcv", k.kcv)
                            })
                            .collect(),
                    ),
                ),
        )))
    }
}
