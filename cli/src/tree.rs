//! `ykt region` and `ykt school`: the key tree below the bureau. A region is a 6-digit
//! administrative division code, a school a 10-digit school identification code; their codes
//! are the diversification factors of the school and card keys.

use crate::context::{Context, GroupCommand, Need, OneOfficer};
use crate::error::Result;
use crate::output::{Output, Record, Report};
use crate::time::format_ms;
use clap::{Args, Subcommand};

/// The region commands.
#[derive(Subcommand)]
pub enum RegionCommand {
    /// Add a region (one officer).
    Add(RegionAddArgs),
    /// Every region.
    List(RegionListArgs),
}

impl GroupCommand for RegionCommand {
    fn run(self, context: &mut Context) -> Result<Report> {
        match self {
            Self::Add(args) => args.run(context),
            Self::List(args) => args.run(context),
        }
    }
}

/// Arguments of `ykt region add`.
#[derive(Args)]
pub struct RegionAddArgs {
    /// The region's 6-digit administrative division code.
    code: String,
    /// The region's name.
    #[arg(long, value_name = "TEXT")]
    name: String,
    #[command(flatten)]
    officer: OneOfficer,
}

impl RegionAddArgs {
    /// Adds the region.
    pub fn run(self, context: &Context) -> Result<Report> {
        let kms = context.open(Need::Store)?;
        let credential = context.credential(&self.officer.name)?;
        context.block_on(kms.add_region(&credential, &self.code, &self.name))?;
        Ok(Report::ok(Output::Record(
            Record::new()
                .with("region", self.code)
                .with("name", self.name),
        )))
    }
}

/// Arguments of `ykt region list` (none of its own).
#[derive(Args)]
pub struct RegionListArgs {}

impl RegionListArgs {
    /// Lists the regions.
    pub fn run(self, context: &Context) -> Result<Report> {
        let kms = context.open(Need::Store)?;
        let regions = context.block_on(kms.regions())?;
        Ok(Report::ok(Output::List(
            regions
                .into_iter()
                .map(|r| {
                    Record::new()
                        .with("code", r.code)
                        .with("name", r.name)
                        .with("created_at", format_ms(r.created_at))
                })
                .collect(),
        )))
    }
}

/// The school commands.
#[derive(Subcommand)]
pub enum SchoolCommand {
    /// Add a school to a region (one officer).
    Add(SchoolAddArgs),
    /// Every school, or those of one region.
    List(SchoolListArgs),
}

impl GroupCommand for SchoolCommand {
    fn run(self, context: &mut Context) -> Result<Report> {
        match self {
            Self::Add(args) => args.run(context),
            Self::List(args) => args.run(context),
        }
    }
}

/// Arguments of `ykt school add`.
#[derive(Args)]
pub struct SchoolAddArgs {
    /// The school's 10-digit identification code.
    code: String,
    /// The region the school belongs to.
    #[arg(long, value_name = "CODE")]
    region: String,
    /// The school's name.
    #[arg(long, value_name = "TEXT")]
    name: String,
    #[command(flatten)]
    officer: OneOfficer,
}

impl SchoolAddArgs {
    /// Adds the school.
    pub fn run(self, context: &Context) -> Result<Report> {
        let kms = context.open(Need::Store)?;
        let credential = context.credential(&self.officer.name)?;
        context.block_on(kms.add_school(&credential, &self.code, &self.region, &self.name))?;
        Ok(Report::ok(Output::Record(
            Record::new()
                .with("school", self.code)
                .with("region", self.region)
                .with("name", self.name),
        )))
    }
}

/// Arguments of `ykt school list`.
#[derive(Args)]
pub struct SchoolListArgs {
    /// Only the schools of this region.
    #[arg(long, value_name = "CODE")]
    region: Option<String>,
}

impl SchoolListArgs {
    /// Lists the schools.
    pub fn run(self, context: &Context) -> Result<Report> {
        let kms = context.open(Need::Store)?;
        let schools = context.block_on(kms.schools(self.region.as_deref()))?;
        Ok(Report::ok(Output::List(
            schools
                .into_iter()
                .map(|s| {
                    Record::new()
                        .with("code", s.code)
                        .with("region", s.region)
                        .with("name", s.name)
                        .with("created_at", format_ms(s.created_at))
                })
                .collect(),
        )))
    }
}
