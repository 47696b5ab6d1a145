//! Member profiles over both APIs: operators read and change them and record consent (the
//! finance role reads the city and enrolment only); partners read the name, language, consent
//! and their own enrolment of members linked to them (scope `read`). Every read and change is
//! logged.

use super::{blocking, ApiJson, JsonResult, Path, Query};
use crate::api::problem::Problem;
use crate::api::state::AppState;
use crate::members::profile::Enrolment;
use crate::members::{Channel, Profile, Viewer};
use crate::ops::error::{Kind, OpError};
use crate::ops::partner as partner_op;
use crate::ops::profiles as op;
use crate::ops::registry::{KeyScope, OperatorRecord, ProfileAudit, Role};
use crate::ops::PartnerCaller;
use axum::extract::State;
use axum::{Extension, Json};
use ledger::MemberId;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Adds the operator's profile routes.
pub fn operator_routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(get_profile, put_profile))
        .routes(routes!(put_consent))
        .routes(routes!(profile_audit))
}

/// Adds the partner's profile route.
pub fn partner_routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(partner_profile))
}

/// Where a member enrolled.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolmentRequest {
    /// The partner.
    #[schema(minimum = 0, maximum = 4_294_967_295_u64)]
    #[serde(default, deserialize_with = "crate::api::whole::nullable")]
    pub partner: Option<u32>,
    /// Its branch.
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    #[serde(default)]
    pub branch: Option<String>,
    /// `till`, `app`, `web`, ...
    #[schema(min_length = 1, max_length = 32, pattern = "\\S")]
    #[serde(default)]
    pub channel: Option<String>,
}

/// A member's profile fields (consent is set per channel, apart).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileRequest {
    /// Full name.
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    #[serde(default)]
    pub name: Option<String>,
    /// `YYYY-MM-DD`, from 1900 to today.
    #[schema(pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    #[serde(default)]
    pub birth_date: Option<String>,
    /// Any value the member gives.
    #[schema(min_length = 1, max_length = 32, pattern = "\\S")]
    #[serde(default)]
    pub gender: Option<String>,
    /// Email address.
    #[schema(max_length = 254, pattern = "^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$")]
    #[serde(default)]
    pub email: Option<String>,
    /// Phone, E.164.
    #[schema(pattern = "^\\+[1-9][0-9]{7,14}$")]
    #[serde(default)]
    pub phone: Option<String>,
    /// Preferred language: `fa`, `en`, `en-GB`.
    #[schema(pattern = "^[a-z]{2}(-[A-Z]{2})?$")]
    #[serde(default)]
    pub language: Option<String>,
    /// City.
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    #[serde(default)]
    pub city: Option<String>,
    /// Postcode.
    #[schema(pattern = "^[A-Za-z0-9 -]{2,16}$")]
    #[serde(default)]
    pub postcode: Option<String>,
    /// Where the member enrolled.
    #[serde(default)]
    pub enrolment: Option<EnrolmentRequest>,
}

impl From<ProfileRequest> for Profile {
    fn from(r: ProfileRequest) -> Profile {
        let e = r.enrolment.unwrap_or_default();
        Profile {
            name: r.name,
            birth_date: r.birth_date,
            gender: r.gender,
            email: r.email,
            phone: r.phone,
            language: r.language,
            city: r.city,
            postcode: r.postcode,
            enrolment: Enrolment {
                partner: e.partner,
                branch: e.branch,
                channel: e.channel,
            },
            consent: Default::default(),
        }
    }
}

/// A member's consent on a channel.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentRequest {
    /// Whether the member agrees to be contacted there.
    pub granted: bool,
    /// Where it was given or withdrawn: `portal`, `partner/1 till`, `call centre`.
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub source: String,
}

/// How many audit entries.
#[derive(Debug, Deserialize, IntoParams)]
pub struct AuditQuery {
    /// Entries, newest first (1 to 1,000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// `T` from a JSON object (an array, which serde would also take for a struct, is refused).
pub(crate) fn object<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, OpError> {
    let nested_array = v
        .as_object()
        .is_some_and(|o| o.values().any(serde_json::Value::is_array));
    if !v.is_object() || nested_array {
        return Err(OpError::new(
            Kind::MalformedRequest,
            "the body is a JSON object of the documented fields",
        ));
    }
    serde_json::from_value(v)
        .map_err(|e| OpError::new(Kind::MalformedRequest, format!("invalid JSON body: {e}")))
}

fn viewer(op: &OperatorRecord) -> Viewer {
    match op.role {
        Role::Operator => Viewer::Operator,
        Role::Finance => Viewer::Finance,
    }
}

/// A member's profile, as the caller's role may see it; the read is logged.
#[utoipa::path(get, path = "/admin/v1/members/{id}/profile", tag = "operator",
    params(("id" = u64, Path, description = "Coalition member id")),
    responses((status = 200, body = Profile),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn get_profile(
    State(app): State<AppState>,
    Extension(op_rec): Extension<OperatorRecord>,
    Path(id): Path<u64>,
) -> JsonResult<Profile> {
    let v = viewer(&op_rec);
    Ok(Json(
        blocking(move || op::get(&app.ops, MemberId(id), v, &op_rec.name)).await?,
    ))
}

/// Replaces a member's profile fields (consent is kept); every field is validated
/// (`422 profile-invalid` names the one that is not), and the change is logged with the
/// fields it changed.
#[utoipa::path(put, path = "/admin/v1/members/{id}/profile", tag = "operator",
    params(("id" = u64, Path, description = "Coalition member id")), request_body = ProfileRequest,
    responses((status = 200, body = Profile),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn put_profile(
    State(app): State<AppState>,
    Extension(op_rec): Extension<OperatorRecord>,
    Path(id): Path<u64>,
    ApiJson(v): ApiJson<serde_json::Value>,
) -> JsonResult<Profile> {
    let r: ProfileRequest = object(v)?;
    Ok(Json(
        blocking(move || op::put(&app.ops, MemberId(id), r.into(), &op_rec.name)).await?,
    ))
}

/// Records a member's consent on a channel (`sms`, `email`, `push`), with its source and
/// time.
#[utoipa::path(put, path = "/admin/v1/members/{id}/consent/{channel}", tag = "operator",
    params(("id" = u64, Path, description = "Coalition member id"),
        ("channel" = String, Path, description = "sms, email or push", pattern = "^(sms|email|push)$")),
    request_body = ConsentRequest,
    responses((status = 200, body = Profile),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn put_consent(
    State(app): State<AppState>,
    Extension(op_rec): Extension<OperatorRecord>,
    Path((id, channel)): Path<(u64, Channel)>,
    ApiJson(v): ApiJson<serde_json::Value>,
) -> JsonResult<Profile> {
    let r: ConsentRequest = object(v)?;
    Ok(Json(
        blocking(move || {
            op::set_consent(
                &app.ops,
                MemberId(id),
                channel,
                r.granted,
                &r.source,
                &op_rec.name,
            )
        })
        .await?,
    ))
}

/// Who read or changed a member's profile, newest first.
#[utoipa::path(get, path = "/admin/v1/members/{id}/profile/audit", tag = "operator",
    params(("id" = u64, Path, description = "Coalition member id"), AuditQuery),
    responses((status = 200, body = Vec<ProfileAudit>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("operator_token" = [])))]
async fn profile_audit(
    State(app): State<AppState>,
    Path(id): Path<u64>,
    Query(q): Query<AuditQuery>,
) -> JsonResult<Vec<ProfileAudit>> {
    let limit = match q.limit {
        None => 100,
        Some(n) if (1..=1000).contains(&n) => n as usize,
        Some(_) => {
            return Err(crate::ops::error::OpError::new(
                crate::ops::error::Kind::InvalidRequest,
                "limit is 1 to 1000",
            ))
        }
    };
    Ok(Json(
        blocking(move || op::audit_log(&app.ops, MemberId(id), limit)).await?,
    ))
}

/// A linked member's name, language, consent and enrolment at the partner (scope `read`);
/// the read is logged.
#[utoipa::path(get, path = "/v1/members/{member}/profile", tag = "partner",
    params(("member" = String, Path, description = "The partner's reference for the member", min_length = 1, max_length = 64, pattern = "^[!-~]+$")),
    responses((status = 200, body = Profile),
        (status = "4XX", body = Problem, content_type = "application/problem+json")),
    security(("partner_signature" = [])))]
async fn partner_profile(
    State(app): State<AppState>,
    Extension(caller): Extension<PartnerCaller>,
    Path(reference): Path<String>,
) -> JsonResult<Profile> {
    caller.require(KeyScope::Read)?;
    Ok(Json(
        blocking(move || {
            let m = partner_op::member_of(&app.ops, &caller, &reference)?;
            let p = caller.partner.0;
            op::get(&app.ops, m, Viewer::Partner(p), &format!("partner/{p}"))
        })
        .await?,
    ))
}
