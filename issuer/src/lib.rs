//! `ykt-issuer`: the issuing station of a card centre.

pub mod batch;
pub mod card_data;
pub mod error;
pub mod host;
pub mod lab;
pub mod personalise;
pub mod profile;
pub mod roster;

pub use error::{IssueError, Result, RowError};
