//! `ykt lab diversify`: PBOC key diversification over one or more levels (region, school, ...,
//! card ASN), top level first.

use super::KeyArgs;
use crate::error::{CliError, Result};
use crate::hex_arg::Hex;
use crate::output::{Output, Record, Report};
use clap::Args;

/// Arguments of `ykt lab diversify`.
#[derive(Args)]
pub struct DiversifyArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// An 8-byte diversification factor; repeat for each level, top level first.
    #[arg(long = "factor", value_name = "HEX", required = true)]
    factors: Vec<Hex>,
}

impl DiversifyArgs {
    /// Computes `{key}`: the key of the last level.
    pub fn run(self) -> Result<Report> {
        let key = self.key.key()?;
        let factors = self
            .factors
            .iter()
            .map(|factor| factor.array::<8>("--factor"))
            .collect::<Result<Vec<_>>>()?;
        let derived = self
            .key
            .alg()
            .profile()
            .diversify_path(&key, &factors)
            .map_err(CliError::rejected("--key"))?;
        Ok(Report::ok(Output::Record(
            Record::new().with("key", derived.expose_secret()),
        )))
    }
}
