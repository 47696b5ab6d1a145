//! A member's lifecycle as operators drive it: suspend, reinstate and close (the balance kept
//! or forfeited as the programme's settings say), merge a duplicate into its survivor (ledger
//! first, then the partner references and the profile), and erase a person's data on request.
//!
//! Each is an idempotent operation keyed by the operator's reference: a retry after a crash
//! finds the ledger transaction already made and finishes what follows it.

use super::error::{Kind, OpError};
use super::programme::change_note;
use super::registry::{ErasureRecord, OnClose};
use super::Ops;
use ledger::core::state::Standing;
use ledger::{Command, IdemKey, MemberId, Receipt, Timestamp};

fn registry(e: super::registry::RegistryError) -> OpError {
    super::partner::registry_error(e)
}

/// Whether the programme forfeits a closed member's points.
fn forfeits(ops: &Ops) -> bool {
    ops.registry
        .programme_settings()
        .is_some_and(|s| s.on_close == OnClose::Forfeit)
}

/// Sets member `m`'s standing (`Active` reinstates a suspended member). Blocking.
pub fn set_standing(
    ops: &Ops,
    reference: &str,
    m: MemberId,
    standing: Standing,
    author: &str,
    reason: &str,
) -> Result<Receipt, OpError> {
    super::programme::check_change_reference(reference)?;
    standing_under(
        ops,
        format!("standing/{reference}"),
        m,
        standing,
        author,
        reason,
    )
}

/// Sets member `m`'s standing under the ledger key `key` (operator scope).
fn standing_under(
    ops: &Ops,
    key: String,
    m: MemberId,
    standing: Standing,
    author: &str,
    reason: &str,
) -> Result<Receipt, OpError> {
    let note = change_note(author, reason)?;
    Ok(ops.ledger.execute_blocking(Command::SetStanding {
        key: IdemKey::operator(key),
        member: m,
        standing,
        forfeit: standing == Standing::Closed && forfeits(ops),
        note: Box::new(note),
    })?)
}

/// What a merge did.
#[derive(Debug, Clone)]
pub struct Merged {
    /// The ledger transaction.
    pub receipt: Receipt,
    /// Partner references that now name the survivor.
    pub references_moved: usize,
    /// Whether the absorbed member's profile became the survivor's (it had none).
    pub profile_moved: bool,
}

/// Merges member `from` into `into`: the ledger moves points, lots, holds and tier; then every
/// partner reference of `from` names `into`, and `from`'s profile moves when `into` has none.
/// Blocking.
pub fn merge(
    ops: &Ops,
    reference: &str,
    from: MemberId,
    into: MemberId,
    author: &str,
    reason: &str,
) -> Result<Merged, OpError> {
    super::programme::check_change_reference(reference)?;
    let note = change_note(author, reason)?;
    let receipt = ops.ledger.execute_blocking(Command::Merge {
        key: IdemKey::operator(format!("merge/{reference}")),
        from,
        into,
        note: Box::new(note),
    })?;
    let moved = ops.registry.merge_links(from, into).map_err(registry)?;
    let profile_moved = ops.registry.move_profile(from, into).map_err(registry)?;
    ops.audience.set_profile(from, None);
    let survivor = ops.registry.profile(into).map_err(registry)?;
    ops.audience.set_profile(into, survivor.as_ref());
    Ok(Merged {
        receipt,
        references_moved: moved.len(),
        profile_moved,
    })
}

/// Erases member `m`'s personal data on request: closes the member if it is open (its points
/// kept or forfeited as the programme's settings say; refused while holds are open), destroys
/// its data key, deletes its profile and partner references, and records the erasure. The
/// ledger keeps the pseudonymous member id, balances and journal. Blocking; idempotent.
pub fn erase(
    ops: &Ops,
    reference: &str,
    m: MemberId,
    author: &str,
    reason: &str,
) -> Result<ErasureRecord, OpError> {
    super::programme::check_change_reference(reference)?;
    change_note(author, reason)?;
    if let Some(done) = ops.registry.erasure(m).map_err(registry)? {
        return Ok(done);
    }
    let state = ops
        .ledger
        .member_state(m)?
        .ok_or_else(|| OpError::new(Kind::UnknownMember, "no such member"))?;
    let closed_by = match state.standing() {
        Standing::Active | Standing::Suspended => {
            let r = standing_under(
                ops,
                format!("erase/{reference}"),
                m,
                Standing::Closed,
                author,
                reason,
            )?;
            Some(r.tx.id.to_string())
        }
        Standing::Closed | Standing::Merged(_) => None,
    };
    let links = ops.registry.links_of(m).map_err(registry)?;
    let record = ErasureRecord {
        at_ms: Timestamp::now().0,
        operator: author.to_string(),
        reason: reason.to_string(),
        key_destroyed: false,
        profile_deleted: false,
        links_removed: 0,
        closed_by,
    };
    let done = ops
        .registry
        .erase_member(m, record, &links)
        .map_err(registry)?;
    ops.audience.set_profile(m, None);
    Ok(done)
}

/// Member `m`'s standing, and the survivor when merged.
pub fn standing(ops: &Ops, m: MemberId) -> Result<Standing, OpError> {
    Ok(ops
        .ledger
        .member_state(m)?
        .ok_or_else(|| OpError::new(Kind::UnknownMember, "no such member"))?
        .standing())
}
