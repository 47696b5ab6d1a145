//! Every version of the programme's policies (expiry, transfers, tiers), as the ledger
//! journaled them: when each took effect, who set it and why, and what it said.

use super::programme::{expiry_view, ExpiryPolicyView, TierPolicyView, TransferPolicyView};
use super::{blocking, JsonResult, Path};
use crate::api::problem::Problem;
use crate::api::state::AppState;
use crate::ops::error::{Kind, OpError};
use axum::extract::State;
use axum::Json;
use ledger::core::programme::PolicyOf;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Adds the policy versions route.
pub fn routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(policy_versions))
}

/// One version of a policy.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PolicyVersionView {
    /// 1 for the first version, then 2, 3, ...
    pub version: u32,
    /// When it took effect (ms since the Unix epoch).
    pub since_ms: i64,
    /// The operator who set it.
    pub author: String,
    /// Why.
    pub reason: String,
    /// The expiry policy (versions of `expiry`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<ExpiryPolicyView>,
    /// The transfer policy (versions of `transfer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferPolicyView>,
    /// The tier policy (versions of `tier`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<TierPolicyView>,
}

/// Every version of a policy, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PolicyVersionsView {
    /// `expiry`, `transfer` or `tier`.
    pub policy: String,
    /// The versions, oldest first; the last is in force.
    pub versions: Vec<PolicyVersionView>,
}

/// Every version of the expiry, transfer or tier policy, with its author and reason.
#[utoipa::path(get, path = "/admin/v1/policies/{policy}/versions", tag = "programme",
    params(("policy" = String, Path, description = "`expiry`, `transfer` or `tier`", pattern = "^(expiry|transfer|tier)$")),
    responses((status = 200, body = PolicyVersionsView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn policy_versions(
    State(app): State<AppState>,
    Path(policy): Path<String>,
) -> JsonResult<PolicyVersionsView> {
    let tag = match policy.as_str() {
        "expiry" => b'e',
        "transfer" => b't',
        "tier" => b'r',
        _ => {
            return Err(OpError::new(
                Kind::InvalidRequest,
                "policy is one of expiry, transfer and tier",
            ))
        }
    };
    let raw = blocking(move || Ok(app.ops.ledger.policy_versions(tag)?)).await?;
    let versions = raw
        .into_iter()
        .zip(1..)
        .map(|(v, version)| {
            let mut view = PolicyVersionView {
                version,
                since_ms: v.at.0,
                author: String::new(),
                reason: String::new(),
                expiry: None,
                transfer: None,
                tier: None,
            };
            let note = match v.policy {
                PolicyOf::Expiry(p) => {
                    let note = p.note.clone();
                    view.expiry = Some(expiry_view(Some(ledger::core::expiry::StoredPolicy {
                        policy: p,
                        since: v.at,
                    })));
                    note
                }
                PolicyOf::Transfer(p) => {
                    let note = p.note.clone();
                    view.transfer = Some(Some(p).into());
                    note
                }
                PolicyOf::Tier(p) => {
                    let note = p.note.clone();
                    view.tier = Some(Some(p).into());
                    note
                }
            };
            view.author = note.author;
            view.reason = note.reason;
            view
        })
        .collect();
    Ok(Json(PolicyVersionsView { policy, versions }))
}
