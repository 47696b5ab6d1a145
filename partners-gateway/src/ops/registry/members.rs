//! Member ids (`G n`) and the links from a partner's member references to coalition members
//! (`G l`, and back, `G L`), each a store transaction.

use super::*;

/// Longest partner member reference, in bytes.
pub const MEMBER_REFERENCE_LEN_MAX: usize = 64;

/// Characters of a link code: Crockford's base 32 (no I, L, O or U to misread).
const CODE_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters in a link code: 50 bits.
pub const LINK_CODE_LEN: usize = 10;
/// How long a link code is good for.
pub const LINK_CODE_TTL_MS: i64 = 15 * 60 * 1000;

/// A one-time code a member gives a partner to prove they agree to be linked (stored under the
/// code's SHA-256, never the code itself). Kept after use, as the record of who linked whom.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkCode {
    /// The member the code links.
    pub member: u64,
    /// Issued at, ms since the Unix epoch.
    pub issued_at_ms: i64,
    /// Good until, ms since the Unix epoch.
    pub expires_at_ms: i64,
    /// Who issued it (the operator, or later the member portal), and why.
    pub issued_by: String,
    /// Why it was issued.
    pub reason: String,
    /// The partner that used it, and when; `None` while unused.
    pub used: Option<(u32, i64)>,
}

/// Why a link with a code did not happen. Each answers a partner alike, so that a partner
/// learns nothing of which coalition numbers exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkRefused {
    /// No such code.
    UnknownCode,
    /// The code names another member.
    OtherMember,
    /// The code expired.
    Expired,
    /// The code was used already.
    Used,
}

fn code_key(code: &str) -> Vec<u8> {
    let normal: String = code
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    key1(LINK_CODE, &Sha256::digest(normal.as_bytes()))
}

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

/// The partner and reference of a [`link_key`].
fn link_of_key(k: &[u8]) -> Result<(u32, String), RegistryError> {
    let prefix = key1(LINK, &[]).len();
    let partner = k
        .get(prefix..prefix + 4)
        .ok_or_else(|| RegistryError::Corrupt("a link key is short".into()))?;
    let partner = u32::from_be_bytes(partner.try_into().expect("4 bytes"));
    let reference = String::from_utf8(k[prefix + 4..].to_vec())
        .map_err(|e| RegistryError::Corrupt(format!("link reference: {e}")))?;
    Ok((partner, reference))
}

fn link_back_key(partner: PartnerId, member: MemberId) -> Vec<u8> {
    let mut k = key1(LINK_BACK, &partner.0.to_be_bytes());
    k.extend_from_slice(&member.0.to_be_bytes());
    k
}

/// A cached link's key, borrowed: a lookup allocates nothing. It hashes as the owned key does
/// (a `String` hashes as its `str`).
#[derive(Hash)]
struct LinkRef<'a>(u32, &'a str);

impl quick_cache::Equivalent<(u32, String)> for LinkRef<'_> {
    fn equivalent(&self, key: &(u32, String)) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

impl Registry {
    /// The member `reference` names at `partner`.
    pub fn member_of(
        &self,
        partner: PartnerId,
        reference: &str,
    ) -> Result<Option<MemberId>, RegistryError> {
        if let Some(m) = self.member_cached(partner, reference) {
            return Ok(Some(m));
        }
        let snap = self.store.snapshot()?;
        match snap.get(&link_key(partner, reference))? {
            Some(v) => {
                let m = MemberId(be_u64(&v)?);
                self.links.insert((partner.0, reference.to_string()), m.0);
                Ok(Some(m))
            }
            None => Ok(None),
        }
    }

    /// The member `reference` at `partner` names, if this gateway has it in memory: the
    /// request path answers from here without a store read, and goes off the async workers
    /// only on a miss.
    pub fn member_cached(&self, partner: PartnerId, reference: &str) -> Option<MemberId> {
        self.links.get(&LinkRef(partner.0, reference)).map(MemberId)
    }

    /// `partner`'s reference for `member`, if linked.
    pub fn reference_of(
        &self,
        partner: PartnerId,
        member: MemberId,
    ) -> Result<Option<String>, RegistryError> {
        let snap = self.store.snapshot()?;
        match snap.get(&link_back_key(partner, member))? {
            Some(v) => {
                let reference = String::from_utf8(v)
                    .map_err(|e| RegistryError::Corrupt(format!("member reference: {e}")))?;
                // The link and its back link are written and cleared together: this
                // snapshot's link names the member by this reference.
                if self.links.get(&LinkRef(partner.0, &reference)).is_none() {
                    self.links.insert((partner.0, reference.clone()), member.0);
                }
                self.backs
                    .insert((partner.0, member.0), Arc::from(reference.as_str()));
                Ok(Some(reference))
            }
            None => Ok(None),
        }
    }

    /// `partner`'s reference for `member` as [`Registry::reference_of`] would read it, if this
    /// gateway has it in memory (made or read here, and the link cache still naming the member
    /// by it): no store read.
    pub fn reference_cached(&self, partner: PartnerId, member: MemberId) -> Option<String> {
        let reference = self.backs.get(&(partner.0, member.0))?;
        (self.member_cached(partner, &reference) == Some(member)).then(|| reference.to_string())
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
        // Taken before the transaction, so every attempt links the same new id.
        let new_id = match member {
            Some(_) => None,
            None => Some(self.next_member_id()?),
        };
        self.transact(&mut |txn| {
            let mut ws = WriteSet::default();
            if let Some(v) = txn.get(&link)? {
                let existing = MemberId(be_u64(&v)?);
                return match member {
                    Some(m) if m != existing => Err(RegistryError::ReferenceTaken {
                        reference: reference.to_string(),
                    }),
                    // The id taken for this call is in no one else's hands: finding it linked
                    // means an earlier attempt of this call committed (its result was unknown).
                    _ => Ok((ws, (existing, new_id == Some(existing.0)))),
                };
            }
            let m = member.unwrap_or_else(|| MemberId(new_id.expect("an id for a new member")));
            ws.set_owned(link.clone(), m.0.to_be_bytes().to_vec());
            ws.set_owned(link_back_key(partner, m), reference.as_bytes().to_vec());
            Ok((ws, (m, true)))
        })
        .inspect(|&(m, created)| {
            self.links.insert((partner.0, reference.to_string()), m.0);
            if created {
                self.backs.insert((partner.0, m.0), Arc::from(reference));
            }
        })
    }

    /// Issues a one-time link code for `member`, good for [`LINK_CODE_TTL_MS`] from `now_ms`.
    /// The code is returned once and stored only as its hash.
    pub fn issue_link_code(
        &self,
        member: MemberId,
        now_ms: i64,
        issued_by: &str,
        reason: &str,
    ) -> Result<(String, LinkCode), RegistryError> {
        use rand::Rng;
        let mut rng = rand::rng();
        let code: String = (0..LINK_CODE_LEN)
            .map(|_| char::from(CODE_ALPHABET[rng.random_range(0..CODE_ALPHABET.len())]))
            .collect();
        let record = LinkCode {
            member: member.0,
            issued_at_ms: now_ms,
            expires_at_ms: now_ms + LINK_CODE_TTL_MS,
            issued_by: issued_by.to_string(),
            reason: reason.to_string(),
            used: None,
        };
        let mut ws = WriteSet::default();
        ws.set_owned(code_key(&code), json(&record));
        self.commit(ws)?;
        Ok((code, record))
    }

    /// Links `reference` at `partner` to `member` on the member's proof, `code`, in one store
    /// transaction that also spends the code. A retry of a link already made answers it again
    /// without a code.
    pub fn link_with_code(
        &self,
        partner: PartnerId,
        reference: &str,
        member: MemberId,
        code: Option<&str>,
        now_ms: i64,
    ) -> Result<Result<(MemberId, bool), LinkRefused>, RegistryError> {
        let link = link_key(partner, reference);
        let code_key = code.map(code_key);
        self.transact(&mut |txn| {
            let mut ws = WriteSet::default();
            if let Some(v) = txn.get(&link)? {
                let existing = MemberId(be_u64(&v)?);
                if existing != member {
                    return Err(RegistryError::ReferenceTaken {
                        reference: reference.to_string(),
                    });
                }
                // The code spent by this partner at this call's instant: an earlier attempt of
                // this call made the link (its result was unknown).
                let ours = match &code_key {
                    Some(k) => match txn.get(k)? {
                        Some(v) => unjson::<LinkCode>(&v)?.used == Some((partner.0, now_ms)),
                        None => false,
                    },
                    None => false,
                };
                return Ok((ws, Ok((existing, ours))));
            }
            let Some(code_key) = &code_key else {
                return Ok((ws, Err(LinkRefused::UnknownCode)));
            };
            let Some(v) = txn.get(code_key)? else {
                return Ok((ws, Err(LinkRefused::UnknownCode)));
            };
            let mut record: LinkCode = unjson(&v)?;
            let refused = if record.member != member.0 {
                Some(LinkRefused::OtherMember)
            } else if record.used.is_some() {
                Some(LinkRefused::Used)
            } else if now_ms > record.expires_at_ms {
                Some(LinkRefused::Expired)
            } else {
                None
            };
            if let Some(r) = refused {
                return Ok((ws, Err(r)));
            }
            record.used = Some((partner.0, now_ms));
            ws.set_owned(code_key.clone(), json(&record));
            ws.set_owned(link.clone(), member.0.to_be_bytes().to_vec());
            ws.set_owned(
                link_back_key(partner, member),
                reference.as_bytes().to_vec(),
            );
            Ok((ws, Ok((member, true))))
        })
        .inspect(|linked| {
            if let Ok((m, true)) = linked {
                self.backs.insert((partner.0, m.0), Arc::from(reference));
            }
        })
    }

    /// Allocates a member id without a partner link (operator enrolment).
    pub fn allocate_member(&self) -> Result<MemberId, RegistryError> {
        Ok(MemberId(self.next_member_id()?))
    }

    /// The next member id from this gateway's block, reserving a new block when it is used up.
    fn next_member_id(&self) -> Result<u64, RegistryError> {
        let mut ids = self.ids.lock().expect("member id block");
        if ids.is_empty() {
            *ids = self.allocate_members(MEMBER_ID_BLOCK)?;
        }
        Ok(ids.next().expect("a fresh block has ids"))
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
    /// References already linked are refused as a whole. The transaction holds every link's two
    /// records: callers keep it to tens of thousands of links (FoundationDB refuses a
    /// transaction over 10 MB).
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
        })?;
        for (reference, member) in links {
            self.links.insert((partner.0, reference.clone()), member.0);
            self.backs
                .insert((partner.0, member.0), Arc::from(reference.as_str()));
        }
        Ok(())
    }

    /// Reads links from the store into the cache until it is full or every link is in it, a
    /// page of [`WARM_PAGE`] at a time, each from its own snapshot (a cluster snapshot lives
    /// seconds only). A gateway that starts warm answers its partners' members without a
    /// store read each. Returns the links read. `go_on` is asked before each page: false
    /// stops early (the service is stopping).
    pub fn warm_links(&self, go_on: &dyn Fn() -> bool) -> Result<usize, RegistryError> {
        let mut begin = key1(LINK, &[]);
        let end = prefix_end(&begin);
        let mut read = 0;
        while go_on() {
            let room = usize::try_from(self.links.capacity())
                .unwrap_or(usize::MAX)
                .saturating_sub(self.links.len());
            if room == 0 {
                break;
            }
            let page = self
                .store
                .snapshot()?
                .range(&begin, &end, room.min(WARM_PAGE), false)?;
            for (k, v) in &page {
                let (partner, reference) = link_of_key(k)?;
                // An entry made or read meanwhile is at least as new as this snapshot's.
                if self.links.get(&LinkRef(partner, &reference)).is_none() {
                    self.links.insert((partner, reference), be_u64(v)?);
                }
            }
            read += page.len();
            match page.last() {
                Some((k, _)) if page.len() == room.min(WARM_PAGE) => {
                    begin = k.to_vec();
                    begin.push(0);
                }
                _ => break,
            }
        }
        Ok(read)
    }
}

/// Links read per snapshot while warming the cache.
const WARM_PAGE: usize = 10_000;

/// Partner references a merge moved to a survivor that already had its own reference at the
/// partner: they name the survivor, but no back link names them (`G M ++ survivor ++
/// absorbed`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct MovedLinks {
    /// (partner, reference).
    refs: Vec<(u32, String)>,
}

fn moved_key(into: MemberId, from: MemberId) -> Vec<u8> {
    let mut body = into.0.to_be_bytes().to_vec();
    body.extend_from_slice(&from.0.to_be_bytes());
    key1(ledger::keys::gateway::MERGE, &body)
}

fn moved_prefix(into: MemberId) -> Vec<u8> {
    key1(ledger::keys::gateway::MERGE, &into.0.to_be_bytes())
}

impl Registry {
    /// Every partner reference that names member `m`: its back link at each partner, and the
    /// references merges moved to it.
    pub fn links_of(&self, m: MemberId) -> Result<Vec<(PartnerId, String)>, RegistryError> {
        let snap = self.store.snapshot()?;
        let mut out = Vec::new();
        for p in self.partners() {
            if let Some(v) = snap.get(&link_back_key(PartnerId(p.id), m))? {
                let r = String::from_utf8(v)
                    .map_err(|e| RegistryError::Corrupt(format!("member reference: {e}")))?;
                out.push((PartnerId(p.id), r));
            }
        }
        let begin = moved_prefix(m);
        let end = prefix_end(&begin);
        for (_, v) in snap.range(&begin, &end, usize::MAX, false)? {
            let moved: MovedLinks = unjson(&v)?;
            out.extend(moved.refs.into_iter().map(|(p, r)| (PartnerId(p), r)));
        }
        Ok(out)
    }

    /// Adds to `ws` the removal of `reference` at `partner` (naming `m`), its back link and the
    /// merge records of `m`; forgets it here.
    pub(super) fn unlink_in(
        &self,
        ws: &mut WriteSet,
        partner: PartnerId,
        m: MemberId,
        reference: &str,
    ) {
        ws.clear(&link_key(partner, reference));
        ws.clear(&link_back_key(partner, m));
        let begin = moved_prefix(m);
        ws.clear_range(&begin, &prefix_end(&begin));
        self.links.remove(&(partner.0, reference.to_string()));
        self.backs.remove(&(partner.0, m.0));
    }

    /// Points every partner reference of `from` at `into` (a merge): a partner's card for the
    /// absorbed member goes on earning for the survivor. Where `into` has no reference at the
    /// partner, `from`'s becomes its reference there; otherwise it is recorded as moved.
    /// Idempotent. Returns the references moved.
    pub fn merge_links(
        &self,
        from: MemberId,
        into: MemberId,
    ) -> Result<Vec<(PartnerId, String)>, RegistryError> {
        let refs = self.links_of(from)?;
        let snap = self.store.snapshot()?;
        let mut ws = WriteSet::default();
        let mut moved = MovedLinks::default();
        let mut named = std::collections::HashSet::new();
        for (p, r) in &refs {
            ws.set_owned(link_key(*p, r), into.0.to_be_bytes().to_vec());
            ws.clear(&link_back_key(*p, from));
            if snap.get(&link_back_key(*p, into))?.is_none() && named.insert(p.0) {
                ws.set_owned(link_back_key(*p, into), r.as_bytes().to_vec());
            } else {
                moved.refs.push((p.0, r.clone()));
            }
        }
        let begin = moved_prefix(from);
        ws.clear_range(&begin, &prefix_end(&begin));
        if !moved.refs.is_empty() {
            ws.set_owned(moved_key(into, from), json(&moved));
        }
        self.store.commit(ws, Durability::Sync)?;
        for (p, r) in &refs {
            self.links.remove(&(p.0, r.clone()));
            self.backs.remove(&(p.0, from.0));
            self.backs.remove(&(p.0, into.0));
        }
        Ok(refs)
    }

    /// Forgets the cached link of `reference` at `partner` (another gateway moved it).
    pub fn forget_link(&self, partner: PartnerId, reference: &str) {
        self.links.remove(&(partner.0, reference.to_string()));
    }
}
