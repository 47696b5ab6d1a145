//! What partners, operators and (later) members can do, with no HTTP in it: each operation
//! takes its own input types and answers with [`error::OpError`], so the HTTP API, the web
//! console and the CLI call the same code.
//!
//! Architecture invariant: nothing here imports axum, tower or utoipa; `api/` turns requests
//! into these inputs and these results into responses.

pub mod error;
pub mod registry;
