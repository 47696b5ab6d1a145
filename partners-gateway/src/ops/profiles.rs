//! Member profiles: read as each reader may (every read logged), changed with validation
//! (every change logged with the fields it changed), consent per channel with its time and
//! source.

use super::error::{Kind, OpError};
use super::registry::ProfileAudit;
use super::Ops;
use crate::members::{Channel, Consent, Profile, Viewer};
use ledger::{MemberId, Timestamp};

/// Today's date (UTC).
fn today() -> chrono::NaiveDate {
    chrono::DateTime::from_timestamp_millis(Timestamp::now().0)
        .unwrap_or_default()
        .date_naive()
}

fn refused(e: crate::members::ProfileError) -> OpError {
    OpError::new(Kind::ProfileRefused, e.to_string())
}

/// The member must exist in the ledger.
fn existing(ops: &Ops, m: MemberId) -> Result<(), OpError> {
    match ops.ledger.balance(m)? {
        Some(_) => Ok(()),
        None => Err(OpError::new(Kind::UnknownMember, "no such member")),
    }
}

fn audit(action: &str, who: &str, fields: Vec<String>) -> ProfileAudit {
    ProfileAudit {
        at_ms: Timestamp::now().0,
        who: who.to_string(),
        action: action.to_string(),
        fields,
    }
}

/// Member `m`'s profile as `viewer` may see it (empty when none was recorded); the read is
/// logged. Blocking.
pub fn get(ops: &Ops, m: MemberId, viewer: Viewer, who: &str) -> Result<Profile, OpError> {
    existing(ops, m)?;
    let p = ops
        .registry
        .profile(m)
        .map_err(super::partner::registry_error)?
        .unwrap_or_default();
    ops.registry
        .record_profile(m, None, &audit("read", who, Vec::new()))
        .map_err(super::partner::registry_error)?;
    Ok(p.visible_to(viewer))
}

/// The fields that differ between `a` and `b`.
fn changed(a: &Profile, b: &Profile) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = |name: &str, same: bool| {
        if !same {
            out.push(name.to_string());
        }
    };
    field("name", a.name == b.name);
    field("birth_date", a.birth_date == b.birth_date);
    field("gender", a.gender == b.gender);
    field("email", a.email == b.email);
    field("phone", a.phone == b.phone);
    field("language", a.language == b.language);
    field("city", a.city == b.city);
    field("postcode", a.postcode == b.postcode);
    field("enrolment", a.enrolment == b.enrolment);
    out
}

/// Replaces member `m`'s profile fields (consent is kept: it changes only through
/// [`set_consent`]); the change is logged with the fields it changed. Blocking.
pub fn put(ops: &Ops, m: MemberId, mut p: Profile, who: &str) -> Result<Profile, OpError> {
    existing(ops, m)?;
    p.validate(today()).map_err(refused)?;
    let old = ops
        .registry
        .profile(m)
        .map_err(super::partner::registry_error)?
        .unwrap_or_default();
    p.consent = old.consent.clone();
    ops.registry
        .record_profile(m, Some(&p), &audit("update", who, changed(&old, &p)))
        .map_err(super::partner::registry_error)?;
    ops.audience.set_profile(m, Some(&p));
    Ok(p)
}

/// Records member `m`'s consent on `channel`, with its source and time. Blocking.
pub fn set_consent(
    ops: &Ops,
    m: MemberId,
    channel: Channel,
    granted: bool,
    source: &str,
    who: &str,
) -> Result<Profile, OpError> {
    existing(ops, m)?;
    let mut p = ops
        .registry
        .profile(m)
        .map_err(super::partner::registry_error)?
        .unwrap_or_default();
    p.consent.insert(
        channel,
        Consent {
            granted,
            at_ms: Timestamp::now().0,
            source: source.to_string(),
        },
    );
    p.validate(today()).map_err(refused)?;
    let name = serde_json::to_value(channel)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    ops.registry
        .record_profile(m, Some(&p), &audit("consent", who, vec![name]))
        .map_err(super::partner::registry_error)?;
    ops.audience.set_profile(m, Some(&p));
    Ok(p)
}

/// Who read or changed member `m`'s profile, newest first. Blocking.
pub fn audit_log(ops: &Ops, m: MemberId, limit: usize) -> Result<Vec<ProfileAudit>, OpError> {
    existing(ops, m)?;
    ops.registry
        .profile_audit(m, limit)
        .map_err(super::partner::registry_error)
}
