//! The lab bureau: a KMS on embedded defaults, set up end to end, for `ykt demo`, the
//! benchmarks and the tests.
//!
//! In a data directory it writes `ykt.toml` (`[hsm] unlock = "lab"`: the in-process HSM with
//! its unlock secret kept beside it), initialises the KMS with three officers and a quorum of
//! two, adds a region and two schools, generates the ten e-purse master keys in SM4 and in
//! 3DES under 2-of-3 custody, and imports the virtual card vendor's transport keys from their
//! two components ([`ykt_card_sim::vendor`]). Every act goes through the KMS's ceremonies and
//! is audited; the other `ykt` commands can open the directory afterwards. Lab mode keeps
//! the LMK's unlock secret on disk: never for production keys.

use crate::error::{IssueError, Result};
use std::path::Path;
use std::sync::Arc;
use ykt_card_sim::CardAlgorithm;
use ykt_hsm_sim::KeyComponent;
use ykt_kms::ceremony::{CustodySpec, KeyReport, OfficerComponent};
use ykt_kms::config::{CONFIG_FILE, Config};
use ykt_kms::model::{CARD_TRANSPORT_TEMPLATE, KeyAlgorithm, MASTER_TEMPLATES, Scope};
use ykt_kms::{Credential, InitRequest, Kms, NewOfficer, Store};

/// The lab officers: login name, display name, password.
pub const LAB_OFFICERS: [(&str, &str, &str); 3] = [
    ("zhang", "Zhang Wei", "zhang-lab-passphrase"),
    ("li", "Li Na", "li-lab-passphrase"),
    ("wang", "Wang Fang", "wang-lab-passphrase"),
];

/// The lab bureau's code and name.
pub const LAB_BUREAU: (&str, &str) = ("330100", "Hangzhou Education Bureau (lab)");

/// The lab region: code and name.
pub const LAB_REGION: (&str, &str) = ("330106", "Xihu District");

/// The lab schools: code and name.
pub const LAB_SCHOOLS: [(&str, &str); 2] = [
    ("2133010601", "Xihu No. 1 Primary School"),
    ("2133010602", "Xihu No. 2 Middle School"),
];

/// The quorum of the lab bureau.
pub const LAB_QUORUM: u8 = 2;

/// The card algorithms the lab bureau holds keys for.
pub const LAB_ALGORITHMS: [KeyAlgorithm; 2] = [KeyAlgorithm::Sm4, KeyAlgorithm::TripleDes];

/// An open lab bureau.
pub struct LabBureau {
    /// The KMS.
    pub kms: Kms,
}

/// What setting up the lab bureau made.
pub struct LabSetup {
    /// The bureau.
    pub bureau: LabBureau,
    /// One report per generated master key (with its custody shares).
    pub masters: Vec<KeyReport>,
    /// Transport keys imported: key ID and check value.
    pub transport_keys: Vec<(String, String)>,
}

/// Two of the lab officers' credentials: a quorum.
pub fn quorum() -> Vec<Credential> {
    LAB_OFFICERS[..usize::from(LAB_QUORUM)]
        .iter()
        .map(|(name, _, password)| Credential::new(name, password))
        .collect()
}

fn config_of(data_dir: &Path) -> Result<Config> {
    Ok(Config::load(data_dir, None)?)
}

/// The card-sim chip family of a key algorithm.
pub fn chip_algorithm(algorithm: KeyAlgorithm) -> CardAlgorithm {
    match algorithm {
        KeyAlgorithm::TripleDes => CardAlgorithm::TripleDes,
        _ => CardAlgorithm::Sm4,
    }
}

impl LabBureau {
    /// Sets the lab bureau up in the empty (or absent) directory `data_dir`.
    pub async fn create(data_dir: &Path) -> Result<LabSetup> {
        let io = |source| IssueError::Io {
            path: data_dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(data_dir).map_err(io)?;
        if std::fs::read_dir(data_dir).map_err(io)?.next().is_some() {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "not empty: the lab bureau starts from an empty directory",
            )));
        }
        std::fs::write(
            data_dir.join(CONFIG_FILE),
            "# Lab bureau: the in-process HSM unlocks from hsm/lab-unlock.key.\n\
             [hsm]\nunlock = \"lab\"\n",
        )
        .map_err(io)?;
        let config = config_of(data_dir)?;
        let hsm = Arc::new(config.create_lab_hsm()?);
        let lmk_kcv = hsm.lmk_kcv().to_string();
        let kms = Kms::new(Store::open(&config.database_url()).await?, hsm);
        kms.initialize(&InitRequest {
            bureau_code: LAB_BUREAU.0.into(),
            bureau_name: LAB_BUREAU.1.into(),
            quorum: LAB_QUORUM,
            officers: LAB_OFFICERS
                .iter()
                .map(|(name, display, password)| NewOfficer {
                    credential: Credential::new(name, password),
                    display_name: (*display).into(),
                })
                .collect(),
            lmk_kcv: Some(lmk_kcv),
        })
        .await?;
        let approvals = quorum();
        kms.add_region(&approvals[0], LAB_REGION.0, LAB_REGION.1)
            .await?;
        for (code, name) in LAB_SCHOOLS {
            kms.add_school(&approvals[0], code, LAB_REGION.0, name)
                .await?;
        }
        let custody = CustodySpec {
            threshold: LAB_QUORUM,
            custodians: LAB_OFFICERS.iter().map(|(n, _, _)| (*n).into()).collect(),
        };
        let mut masters = Vec::new();
        let mut transport_keys = Vec::new();
        for algorithm in LAB_ALGORITHMS {
            for template in MASTER_TEMPLATES {
                masters.push(
                    kms.generate_key(
                        &approvals,
                        template,
                        algorithm,
                        Scope::Bureau,
                        Some(&custody),
                    )
                    .await?,
                );
            }
            let components: Vec<OfficerComponent> =
                ykt_card_sim::vendor::transport_components(chip_algorithm(algorithm))
                    .iter()
                    .zip(&approvals)
                    .map(|(component, officer)| OfficerComponent {
                        officer: officer.name.clone(),
                        component: KeyComponent::new(component),
                    })
                    .collect();
            let report = kms
                .import_key(
                    &approvals,
                    CARD_TRANSPORT_TEMPLATE,
                    algorithm,
                    Scope::Bureau,
                    &components,
                    None,
                )
                .await?;
            transport_keys.push((report.key_id, report.kcv));
        }
        Ok(LabSetup {
            bureau: LabBureau { kms },
            masters,
            transport_keys,
        })
    }

    /// Opens a lab bureau set up earlier in `data_dir`.
    pub async fn open(data_dir: &Path) -> Result<Self> {
        let config = config_of(data_dir)?;
        let hsm = config.open_local_hsm(|| {
            Err::<_, ykt_kms::KmsError>(ykt_kms::KmsError::InvalidInput {
                field: "hsm.unlock",
                reason: "the lab bureau unlocks in lab mode".into(),
            })
        })?;
        let kms = Kms::new(Store::open(&config.database_url()).await?, Arc::new(hsm));
        Ok(Self { kms })
    }
}
