//! Commands in general and batches of them: preparing any partner command, checking a
//! command's shape, and running a batch in which later commands see earlier ones.

use super::*;

/// Prepares any partner command (capture, void and reversal read the ledger: call them off
/// the async workers).
pub fn prepare(ops: &Ops, caller: &PartnerCaller, c: &PartnerCommand) -> Result<Prepared, OpError> {
    prepare_linked(ops, caller, c, None)
}

/// [`prepare`], with the member the command names already resolved from the link cache
/// (`linked`, for an earn, burn or hold): the request path looked it up to decide to prepare
/// inline, and does not look it up twice.
pub fn prepare_linked(
    ops: &Ops,
    caller: &PartnerCaller,
    c: &PartnerCommand,
    linked: Option<MemberId>,
) -> Result<Prepared, OpError> {
    prepare_from(ops, caller, c, linked, Reads::Store).map_err(Unprepared::into_answer)
}

/// A capture, void or reversal prepared from what this process holds in memory (the
/// transaction it names committed moments ago, the caller's reference for the member made or
/// read here), so an async worker can prepare it without a store read. `None`: memory does not
/// hold it (or `c` is another command); [`prepare`] it off the async workers.
pub fn prepare_in_memory(
    ops: &Ops,
    caller: &PartnerCaller,
    c: &PartnerCommand,
) -> Option<Result<Prepared, OpError>> {
    c.names()?;
    match prepare_from(ops, caller, c, None, Reads::Memory) {
        Ok(p) => Some(Ok(p)),
        Err(Unprepared::Refused(e)) => Some(Err(e)),
        Err(Unprepared::NotInMemory) => None,
    }
}

fn prepare_from(
    ops: &Ops,
    caller: &PartnerCaller,
    c: &PartnerCommand,
    linked: Option<MemberId>,
    reads: Reads,
) -> Result<Prepared, Unprepared> {
    Ok(match c {
        PartnerCommand::Earn(r) => prepare_earn(ops, caller, r, linked)?,
        PartnerCommand::Burn(r) => prepare_burn(ops, caller, r, linked)?,
        PartnerCommand::Hold(r) => prepare_hold(ops, caller, r, linked)?,
        PartnerCommand::Capture {
            hold_reference,
            reference,
            points,
        } => prepare_capture(ops, caller, hold_reference, reference, *points, reads)?,
        PartnerCommand::Void {
            hold_reference,
            reference,
        } => prepare_void(ops, caller, hold_reference, reference, reads)?,
        PartnerCommand::Reversal(r) => prepare_reversal(ops, caller, r, reads)?,
    })
}

impl PartnerCommand {
    /// Checks what the API document states of a command's fields (references, member
    /// references, names, points, amounts, timeouts), without reading anything: a batch with a
    /// command of the wrong shape is refused whole.
    pub fn check_shape(&self) -> Result<(), OpError> {
        check_reference("reference", self.reference())?;
        if let Some(named) = self.names() {
            check_reference("the named reference", named)?;
        }
        let (member, points, amount, names): (_, Option<i64>, Option<&Amount>, [Option<&str>; 2]) =
            match self {
                PartnerCommand::Earn(r) => (
                    Some(&r.member),
                    None,
                    Some(&r.amount),
                    [r.branch.as_deref(), r.category.as_deref()],
                ),
                PartnerCommand::Burn(r) => (
                    Some(&r.member),
                    r.points,
                    r.amount.as_ref(),
                    [r.branch.as_deref(), r.category.as_deref()],
                ),
                PartnerCommand::Hold(r) => {
                    check_timeout(r.timeout_seconds)?;
                    (
                        Some(&r.member),
                        r.points,
                        r.amount.as_ref(),
                        [r.branch.as_deref(), r.category.as_deref()],
                    )
                }
                PartnerCommand::Capture { points, .. } => (None, *points, None, [None, None]),
                PartnerCommand::Void { .. } => (None, None, None, [None, None]),
                PartnerCommand::Reversal(r) => (None, r.points, None, [None, None]),
            };
        if let Some(m) = member {
            check_member_reference(m)?;
        }
        let priced_or_points = matches!(self, PartnerCommand::Burn(_) | PartnerCommand::Hold(_));
        if priced_or_points && points.is_some() == amount.is_some() {
            return Err(OpError::new(
                Kind::InvalidRequest,
                "give exactly one of points and amount",
            ));
        }
        if let Some(p) = points {
            check_points("points", p)?;
        }
        if let Some(a) = amount {
            a.check_grammar()?;
        }
        check_name("branch", names[0])?;
        check_name("category", names[1])
    }

    /// The earlier transaction this command names by its reference (a hold, an original).
    pub fn names(&self) -> Option<&str> {
        match self {
            PartnerCommand::Capture { hold_reference, .. }
            | PartnerCommand::Void { hold_reference, .. } => Some(hold_reference),
            PartnerCommand::Reversal(r) => Some(&r.original_reference),
            PartnerCommand::Earn(_) | PartnerCommand::Burn(_) | PartnerCommand::Hold(_) => None,
        }
    }

    /// The member an earn, burn or hold is for, by the partner's reference.
    pub fn member(&self) -> Option<&str> {
        match self {
            PartnerCommand::Earn(r) => Some(&r.member),
            PartnerCommand::Burn(r) => Some(&r.member),
            PartnerCommand::Hold(r) => Some(&r.member),
            _ => None,
        }
    }

    /// This command's own reference (its idempotency key).
    pub fn reference(&self) -> &str {
        match self {
            PartnerCommand::Earn(r) => &r.reference,
            PartnerCommand::Burn(r) => &r.reference,
            PartnerCommand::Hold(r) => &r.reference,
            PartnerCommand::Capture { reference, .. } | PartnerCommand::Void { reference, .. } => {
                reference
            }
            PartnerCommand::Reversal(r) => &r.reference,
        }
    }
}

/// Runs many commands in order, each with its own result. Commands are submitted together so
/// the committer can put them in one batch, except that a command naming an earlier command of
/// the same batch (a capture or void of its hold, a reversal of its earn or burn) waits until
/// everything before it is answered: later commands see earlier ones, so a retried batch
/// answers as the first did (as replays). `prepare_reads` runs a preparation that reads the
/// ledger (the caller's way of keeping blocking reads off its async workers).
pub async fn batch<F, Fut>(
    ops: &Arc<Ops>,
    caller: &PartnerCaller,
    commands: Vec<PartnerCommand>,
    prepare_reads: F,
) -> Result<Vec<Result<Posted, OpError>>, OpError>
where
    F: Fn(Arc<Ops>, PartnerCaller, PartnerCommand) -> Fut,
    Fut: std::future::Future<Output = Result<Result<Prepared, OpError>, OpError>>,
{
    if commands.is_empty() {
        return Err(OpError::new(
            Kind::InvalidRequest,
            "the batch has no commands",
        ));
    }
    if commands.len() > ops.batch_commands_max {
        return Err(OpError::new(
            Kind::PayloadTooLarge,
            format!(
                "the batch has {} commands; the limit is {}",
                commands.len(),
                ops.batch_commands_max
            ),
        ));
    }
    for (i, c) in commands.iter().enumerate() {
        c.check_shape().map_err(|e| {
            OpError::new(
                e.kind,
                format!("command {i}: {}; nothing was applied", e.detail),
            )
        })?;
    }
    let mut results: Vec<Option<Result<Posted, OpError>>> = Vec::new();
    results.resize_with(commands.len(), || None);
    let mut in_flight: Vec<(usize, Sent, Pending)> = Vec::new();
    let mut submitted: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for (i, c) in commands.iter().enumerate() {
        if c.names().is_some_and(|n| submitted.contains(n)) {
            for (j, sent, pending) in in_flight.drain(..) {
                results[j] = Some(finish(ops, caller, sent, pending).await);
            }
        }
        let prepared = if c.names().is_some() {
            prepare_reads(ops.clone(), caller.clone(), c.clone()).await?
        } else {
            prepare(ops, caller, c)
        };
        match prepared.and_then(|p| submit(ops, p)) {
            Ok((sent, pending)) => in_flight.push((i, sent, pending)),
            Err(e) => results[i] = Some(Err(e)),
        }
        submitted.insert(c.reference());
    }
    for (j, sent, pending) in in_flight {
        results[j] = Some(finish(ops, caller, sent, pending).await);
    }
    Ok(results
        .into_iter()
        .map(|r| r.expect("every command has a result"))
        .collect())
}
