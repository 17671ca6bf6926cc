//! `ykt ceremony generate`: a key made in the HSM, never seen by anyone, optionally under
//! M-of-N custody. `--template masters` makes the ten e-purse masters one after the other,
//! each handed out as soon as it is made.

use super::{Alg, key_record, prepare_shares_dir, write_shares};
use crate::context::{Context, Need, Officers};
use crate::error::{CliError, Result};
use crate::output::{Output, Report};
use clap::Args;
use std::path::PathBuf;
use ykt_kms::KmsError;
use ykt_kms::ceremony::CustodySpec;
use ykt_kms::model::{KeyState, MASTER_TEMPLATES, Scope, Template};

/// Custody of a new key: `--threshold` of the `--custodian`s can recover it.
#[derive(Args)]
pub struct CustodyArgs {
    /// Shares needed to recover the key (with --custodian and --shares-out).
    #[arg(long, value_name = "M", requires_all = ["custodians", "shares_out"])]
    threshold: Option<u8>,
    /// A custodian, who gets one share (repeat; distinct active officers).
    #[arg(long = "custodian", value_name = "NAME", requires = "threshold")]
    custodians: Vec<String>,
    /// The directory for the share files, one per custodian (created with mode 0700).
    #[arg(long, value_name = "DIR", requires = "threshold")]
    shares_out: Option<PathBuf>,
}

/// Arguments of `ykt ceremony generate`.
#[derive(Args)]
pub struct GenerateArgs {
    /// The key template (purchase, load, tac, unload, overdraft, maintenance, pin-unblock,
    /// pin-reload, external-auth, app-master, transport), or `masters` for the ten masters.
    #[arg(long, value_name = "NAME|masters")]
    template: String,
    /// The key algorithm.
    #[arg(long, value_enum)]
    alg: Alg,
    /// Where the key sits: `bureau` or `school:CODE` (a school's transport key).
    #[arg(long, value_name = "bureau|school:CODE", default_value = "bureau")]
    scope: String,
    /// Make the key pre-active: backed up now, usable once the quorum runs `ykt key activate`.
    #[arg(long)]
    pre_active: bool,
    #[command(flatten)]
    custody: CustodyArgs,
    #[command(flatten)]
    officers: Officers,
}

impl GenerateArgs {
    /// Generates the key or keys and writes the share files.
    pub fn run(self, context: &Context) -> Result<Report> {
        let scope: Scope = self.scope.parse()?;
        let masters = self.template == "masters";
        let templates: Vec<Template> = if masters {
            if scope != Scope::Bureau {
                return Err(CliError::Input {
                    arg: "--scope",
                    reason: "the masters are bureau keys".into(),
                });
            }
            if self.custody.threshold.is_none() {
                return Err(CliError::Input {
                    arg: "--template masters",
                    reason: "the masters need custody: give --threshold, --custodian and \
                             --shares-out"
                        .into(),
                });
            }
            MASTER_TEMPLATES.to_vec()
        } else {
            vec![Template::named(&self.template)?]
        };
        let algorithm = self.alg.key_algorithm();
        let spec = self.custody.threshold.map(|threshold| CustodySpec {
            threshold,
            custodians: self.custody.custodians.clone(),
        });
        let ids: Vec<String> = templates
            .iter()
            .map(|t| t.key_id(algorithm, &scope))
            .collect();

        let kms = context.open(Need::Hsm(&self.officers.names))?;
        if let Scope::School(code) = &scope {
            context.block_on(kms.school(code.as_str()))?;
        }
        // The masters are made one by one: refuse at once rather than stop half-way.
        for id in &ids {
            match context.block_on(kms.key(id)) {
                Ok(_) => {
                    return Err(KmsError::AlreadyExists {
                        kind: "key",
                        id: id.clone(),
                    }
                    .into());
                }
                Err(KmsError::NotFound { .. }) => {}
                Err(err) => return Err(err.into()),
            }
        }
        if let (Some(spec), Some(dir)) = (&spec, &self.custody.shares_out) {
            let planned: Vec<(String, String, u8)> = ids
                .iter()
                .flat_map(|id| spec.custodians.iter().map(|o| (o.clone(), id.clone(), 1)))
                .collect();
            prepare_shares_dir(dir, &planned)?;
        }
        let approvals = context.credentials(&self.officers.names)?;
        let mut records = Vec::with_capacity(templates.len());
        for template in templates {
            let initial = if self.pre_active {
                KeyState::PreActive
            } else {
                KeyState::Active
            };
            let report = context.block_on(kms.generate_key_in(
                &approvals,
                template,
                algorithm,
                scope.clone(),
                spec.as_ref(),
                initial,
            ))?;
            let files = match &self.custody.shares_out {
                Some(dir) => write_shares(dir, &report.shares)?,
                None => Vec::new(),
            };
            records.push(key_record(&report, files));
        }
        Ok(Report::ok(if masters {
            Output::List(records)
        } else {
            Output::Record(records.remove(0))
        }))
    }
}
