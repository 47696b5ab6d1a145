//! Member ids (`G n`) and the links from a partner's member references to coalition members
//! (`G l`, and back, `G L`), each a store transaction.

use super::*;

/// Longest partner member reference, in bytes.
pub const MEMBER_REFERENCE_LEN_MAX: usize = 64;

/// Reserves `n` member ids from the counter, inside `txn`.
fn allocate(
    txn: &dyn Txn,
    ws: &mut WriteSet,
    n: u64,
) -> Result<std::ops::Range<u64>, RegistryError> {
    let counter = vec![PREFIX, NEXT_MEMBER];
    let first = match txn.get(&counter)? {
        Some(v) => be_u64(&v)?,
        None => 1,
    }
    .max(1);
    ws.set_owned(counter, (first + n).to_be_bytes().to_vec());
    Ok(first..first + n)
}

fn link_key(partner: PartnerId, reference: &str) -> Vec<u8> {
    let mut k = key1(LINK, &partner.0.to_be_bytes());
    k.extend_from_slice(reference.as_bytes());
    k
}

fn link_back_key(partner: PartnerId, member: MemberId) -> Vec<u8> {
    let mut k = key1(LINK_BACK, &partner.0.to_be_bytes());
    k.extend_from_slice(&member.0.to_be_bytes());
    k
}

impl Registry {
    /// The member `reference` names at `partner`.
    pub fn member_of(
        &self,
        partner: PartnerId,
        reference: &str,
    ) -> Result<Option<MemberId>, RegistryError> {
        let snap = self.store.snapshot()?;
        match snap.get(&link_key(partner, reference))? {
            Some(v) => Ok(Some(MemberId(be_u64(&v)?))),
            None => Ok(None),
        }
    }

    /// `partner`'s reference for `member`, if linked.
    pub fn reference_of(
        &self,
        partner: PartnerId,
        member: MemberId,
    ) -> Result<Option<String>, RegistryError> {
        let snap = self.store.snapshot()?;
        match snap.get(&link_back_key(partner, member))? {
            Some(v) => Ok(Some(String::from_utf8(v).map_err(|e| {
                RegistryError::Corrupt(format!("member reference: {e}"))
            })?)),
            None => Ok(None),
        }
    }

    /// Links `reference` at `partner` to `member`, or to a newly allocated member when `member`
    /// is `None`. Returns the member and whether the link is new. Linking the same reference to
    /// the same member again changes nothing.
    pub fn link(
        &self,
        partner: PartnerId,
        reference: &str,
        member: Option<MemberId>,
    ) -> Result<(MemberId, bool), RegistryError> {
        let link = link_key(partner, reference);
        self.transact(&mut |txn| {
            let mut ws = WriteSet::default();
            if let Some(v) = txn.get(&link)? {
                let existing = MemberId(be_u64(&v)?);
                return match member {
                    Some(m) if m != existing => Err(RegistryError::ReferenceTaken {
                        reference: reference.to_string(),
                    }),
                    _ => Ok((ws, (existing, false))),
                };
            }
            let m = match member {
                Some(m) => m,
                None => MemberId(allocate(txn, &mut ws, 1)?.start),
            };
            ws.set_owned(link.clone(), m.0.to_be_bytes().to_vec());
            ws.set_owned(link_back_key(partner, m), reference.as_bytes().to_vec());
            Ok((ws, (m, true)))
        })
    }

    /// Allocates a member id without a partner link (operator enrolment).
    pub fn allocate_member(&self) -> Result<MemberId, RegistryError> {
        Ok(MemberId(self.allocate_members(1)?.start))
    }

    /// Allocates `n` consecutive member ids in one transaction (bulk enrolment).
    pub fn allocate_members(&self, n: u64) -> Result<std::ops::Range<u64>, RegistryError> {
        self.transact(&mut |txn| {
            let mut ws = WriteSet::default();
            let ids = allocate(txn, &mut ws, n)?;
            Ok((ws, ids))
        })
    }

    /// Links many new references at `partner` in one transaction (bulk onboarding).
    /// References already linked are refused as a whole.
    pub fn link_many(
        &self,
        partner: PartnerId,
        links: &[(String, MemberId)],
    ) -> Result<(), RegistryError> {
        let keys: Vec<Vec<u8>> = links.iter().map(|(r, _)| link_key(partner, r)).collect();
        self.transact(&mut |txn| {
            let mut ws = WriteSet::default();
            for (((reference, member), key), taken) in
                links.iter().zip(&keys).zip(txn.get_many(&keys)?)
            {
                if taken.is_some() {
                    return Err(RegistryError::ReferenceTaken {
                        reference: reference.clone(),
                    });
                }
                ws.set_owned(key.clone(), member.0.to_be_bytes().to_vec());
                ws.set_owned(
                    link_back_key(partner, *member),
                    reference.as_bytes().to_vec(),
                );
            }
            Ok((ws, ()))
        })
    }
}
