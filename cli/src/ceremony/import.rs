//! `ykt ceremony import`: a key formed in the HSM from 2 or 3 clear components, each brought
//! by a different officer present and checked against the check value printed on its form.

use super::Alg;
use crate::context::{Context, Need, Officers};
use crate::error::Result;
use crate::output::{Output, Record, Report, Value};
use clap::Args;
use ykt_kms::model::{Scope, Template};

/// Arguments of `ykt ceremony import`.
#[derive(Args)]
pub struct ImportArgs {
    /// The key template (purchase, load, tac, ..., transport).
    #[arg(long, value_name = "NAME")]
    template: String,
    /// The key algorithm.
    #[arg(long, value_enum)]
    alg: Alg,
    /// Where the key sits: `bureau` or `school:CODE`.
    #[arg(long, value_name = "bureau|school:CODE", default_value = "bureau")]
    scope: String,
    /// The check value the formed key must have (from the key's paperwork).
    #[arg(long, value_name = "HEX")]
    kcv: Option<String>,
    #[command(flatten)]
    officers: Officers,
}

impl ImportArgs {
    /// Forms the key and shows each component's check value and the formed key's.
    pub fn run(self, context: &Context) -> Result<Report> {
        let scope: Scope = self.scope.parse()?;
        let template = Template::named(&self.template)?;
        let algorithm = self.alg.key_algorithm();
        let key_id = template.key_id(algorithm, &scope);
        let kms = context.open(Need::Hsm(&self.officers.names))?;
        if let Scope::School(code) = &scope {
            context.block_on(kms.school(code.as_str()))?;
        }
        let approvals = context.credentials(&self.officers.names)?;
        let present: Vec<String> = approvals.iter().map(|c| c.name.clone()).collect();
        let len = algorithm.symmetric().map_or(16, |a| a.key_len());
        let components = context.key_components(&present, &key_id, len)?;
        let report = context.block_on(kms.import_key(
            &approvals,
            template,
            algorithm,
            scope,
            &components,
            self.kcv.as_deref(),
        ))?;
        Ok(Report::ok(Output::Record(
            Record::new()
                .with("key_id", report.key_id)
                .with("version", 1u64)
                .with("kcv", report.kcv)
                .with(
                    "components",
                    Value::Records(
                        report
                            .component_kcvs
                            .into_iter()
                            .map(|(officer, kcv)| {
                                Record::new().with("officer", officer).with("kcv", kcv)
                            })
                            .collect(),
                    ),
                ),
        )))
    }
}
