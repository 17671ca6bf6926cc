//! The key tree below the bureau: regions and their schools. A card's keys are the masters
//! diversified by the region code, the school code and the card's application serial number;
//! a school's PSAM keys are the masters diversified to the school level.

use crate::audit::AuditRecord;
use crate::error::{KmsError, Result};
use crate::kms::Kms;
use crate::model::{RegionCode, SchoolCode};
use crate::officers::Credential;
use crate::store::{Object, now_ms};
use serde::Serialize;
use serde_json::json;
use sqlx::Row;

/// A region, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct Region {
    /// 6-digit code.
    pub code: String,
    /// Name.
    pub name: String,
    /// When added (Unix ms).
    pub created_at: i64,
}

/// A school, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct School {
    /// 10-digit code.
    pub code: String,
    /// Its region's code.
    pub region: String,
    /// Name.
    pub name: String,
    /// When added (Unix ms).
    pub created_at: i64,
}

fn check_name(name: &str) -> Result<()> {
    if name.trim().is_empty() || name.chars().count() > 100 {
        return Err(KmsError::InvalidInput {
            field: "name",
            reason: "1 to 100 characters".into(),
        });
    }
    Ok(())
}

impl Kms {
    /// Adds a region (one officer).
    pub async fn add_region(&self, approval: &Credential, code: &str, name: &str) -> Result<()> {
        let code = RegionCode::new(code)?;
        check_name(name)?;
        let actor = self.approve_one(approval, "region add").await?;
        let mut tx = self.store().begin().await?;
        Object::Region
            .require_absent(&mut tx, code.as_str())
            .await?;
        sqlx::query("INSERT INTO regions (code, name, created_at) VALUES ($1, $2, $3)")
            .bind(code.as_str())
            .bind(name)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        self.commit_audited(
            tx,
            AuditRecord {
                actors: vec![actor],
                act: "region.add".into(),
                object: format!("region:{code}"),
                result: "ok".into(),
                detail: json!({ "name": name, "factor": hex::encode_upper(code.factor()) }),
            },
        )
        .await?;
        Ok(())
    }

    /// Adds a school to a region (one officer).
    pub async fn add_school(
        &self,
        approval: &Credential,
        code: &str,
        region: &str,
        name: &str,
    ) -> Result<()> {
        let code = SchoolCode::new(code)?;
        let region = RegionCode::new(region)?;
        check_name(name)?;
        let actor = self.approve_one(approval, "school add").await?;
        let mut tx = self.store().begin().await?;
        Object::Region
            .require_present(&mut tx, region.as_str())
            .await?;
        Object::School
            .require_absent(&mut tx, code.as_str())
            .await?;
        sqlx::query(
            "INSERT INTO schools (code, region_code, name, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(code.as_str())
        .bind(region.as_str())
        .bind(name)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        self.commit_audited(
            tx,
            AuditRecord {
                actors: vec![actor],
                act: "school.add".into(),
                object: format!("school:{code}"),
                result: "ok".into(),
                detail: json!({
                    "region": region.as_str(),
                    "name": name,
                    "factor": hex::encode_upper(code.factor()),
                }),
            },
        )
        .await?;
        Ok(())
    }

    /// Every region, by code.
    pub async fn regions(&self) -> Result<Vec<Region>> {
        sqlx::query("SELECT code, name, created_at FROM regions ORDER BY code")
            .fetch_all(self.store().pool())
            .await?
            .iter()
            .map(|r| {
                Ok(Region {
                    code: r.try_get("code")?,
                    name: r.try_get("name")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Every school, by code (of one region if given).
    pub async fn schools(&self, region: Option<&str>) -> Result<Vec<School>> {
        sqlx::query(
            "SELECT code, region_code, name, created_at FROM schools \
             WHERE $1 = '' OR region_code = $1 ORDER BY code",
        )
        .bind(region.unwrap_or(""))
        .fetch_all(self.store().pool())
        .await?
        .iter()
        .map(school_of)
        .collect()
    }

    /// A school and the diversification factors from the bureau to it (region, school).
    pub async fn school(&self, code: &str) -> Result<(School, [[u8; 8]; 2])> {
        let code = SchoolCode::new(code)?;
        let row =
            sqlx::query("SELECT code, region_code, name, created_at FROM schools WHERE code = $1")
                .bind(code.as_str())
                .fetch_optional(self.store().pool())
                .await?
                .ok_or_else(|| KmsError::NotFound {
                    kind: "school",
                    id: code.to_string(),
                })?;
        let school = school_of(&row)?;
        let region = RegionCode::new(&school.region)?;
        Ok((school, [region.factor(), code.factor()]))
    }
}

fn school_of(row: &sqlx::any::AnyRow) -> Result<School> {
    Ok(School {
        code: row.try_get("code")?,
        region: row.try_get("region_code")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}
