//! A coalition's traffic: the airline earns by miles flown and holds points for award bookings
//! (captured or voided later); fuel stations earn by litres and burn at the pump; the telecom
//! earns on bills and lets members pay airtime with points; about 2% of earns are refunded.
//! Members are drawn from a Zipf distribution, so a few are hot.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use std::collections::VecDeque;

/// What a request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// Points for a purchase, flight or fill-up.
    Earn,
    /// Points spent at once.
    Burn,
    /// An award booking or till authorisation.
    Hold,
    /// A hold turned into a burn.
    Capture,
    /// A hold released.
    Void,
    /// A refund of an earn.
    Reversal,
    /// Many commands in one request.
    Batch,
}

impl OpKind {
    /// Every kind, for reports.
    pub const ALL: [OpKind; 7] = [
        OpKind::Earn,
        OpKind::Burn,
        OpKind::Hold,
        OpKind::Capture,
        OpKind::Void,
        OpKind::Reversal,
        OpKind::Batch,
    ];

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Earn => "earn",
            OpKind::Burn => "burn",
            OpKind::Hold => "hold",
            OpKind::Capture => "capture",
            OpKind::Void => "void",
            OpKind::Reversal => "reversal",
            OpKind::Batch => "batch",
        }
    }
}

/// Relative weights of the first-hand operations (follow-ups come from earlier answers).
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    /// Earns (split over the three partners).
    pub earn: u32,
    /// Burns at the fuel stations and the telecom.
    pub burn: u32,
    /// Award holds at the airline.
    pub hold: u32,
    /// Percent of acknowledged earns later refunded.
    pub refund_percent: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            earn: 70,
            burn: 22,
            hold: 8,
            refund_percent: 2,
        }
    }
}

impl std::str::FromStr for Mix {
    type Err = String;

    /// `earn=70,burn=22,hold=8,refund=2`.
    fn from_str(s: &str) -> Result<Mix, String> {
        let mut m = Mix {
            earn: 0,
            burn: 0,
            hold: 0,
            refund_percent: 0,
        };
        for part in s.split(',') {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected name=weight"))?;
            let v: u32 = v
                .parse()
                .map_err(|_| format!("{part:?}: weight must be a number"))?;
            match k {
                "earn" => m.earn = v,
                "burn" => m.burn = v,
                "hold" => m.hold = v,
                "refund" => m.refund_percent = v.min(100),
                _ => return Err(format!("{k:?}: expected earn, burn, hold or refund")),
            }
        }
        if m.earn + m.burn + m.hold == 0 {
            return Err("the mix needs a positive weight".into());
        }
        Ok(m)
    }
}

/// One command: which partner sends it, where, with what body.
#[derive(Debug, Clone)]
pub struct Op {
    /// Kind.
    pub kind: OpKind,
    /// Sending partner (1 airline, 2 fuel, 3 telecom).
    pub partner: u32,
    /// Request path.
    pub path: String,
    /// The command's reference (idempotency key).
    pub reference: String,
    /// Body for a single request, as JSON text (an object); batch items add `op`.
    pub body: String,
}

/// A command's body, written straight to JSON text: the harness builds no `Value` tree per
/// command (building, cloning and dropping those trees was the harness's largest cost at the
/// batch endpoint, on the machine the gateway it measures runs on).
#[derive(Default, serde::Serialize)]
struct Body<'a> {
    reference: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    member: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    amount: Option<AmountBody<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    branch: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    points: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    original_reference: Option<&'a str>,
}

#[derive(serde::Serialize)]
struct AmountBody<'a> {
    value: &'a str,
    unit: &'a str,
}

impl Body<'_> {
    fn text(&self) -> String {
        serde_json::to_string(self).expect("a body encodes")
    }
}

/// The body of `POST /v1/batch` carrying `items` in order.
pub fn batch_body(items: &[Op]) -> String {
    let mut body =
        String::with_capacity(items.iter().map(|o| o.body.len() + 16).sum::<usize>() + 16);
    body.push_str("{\"commands\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        batch_item(&mut body, item.kind, &item.body);
    }
    body.push_str("]}");
    body
}

/// `body` (a JSON object's text) as one command of a batch: `op` first, then its fields.
fn batch_item(out: &mut String, op: OpKind, body: &str) {
    let fields = body
        .strip_prefix('{')
        .expect("a command's body is a JSON object");
    out.push_str("{\"op\":\"");
    out.push_str(op.name());
    out.push('"');
    if fields != "}" {
        out.push(',');
    }
    out.push_str(fields);
}

/// Work that can only follow an acknowledged command.
#[derive(Debug, Clone)]
pub enum FollowUp {
    /// Capture (or void) an award hold.
    Hold {
        /// The hold's reference.
        reference: String,
        /// Its points.
        points: i64,
    },
    /// Refund an earn.
    Refund {
        /// Partner that earned.
        partner: u32,
        /// The earn's reference.
        reference: String,
    },
}

/// The generator of one worker. References are unique per run (`run id`, worker, counter).
pub struct Workload {
    rng: SmallRng,
    zipf: Zipf<f64>,
    mix: Mix,
    prefix: String,
    n: u64,
    /// Pending follow-ups, oldest first.
    pub follow_ups: VecDeque<FollowUp>,
}

/// Demo member references by partner (the gateway's demo coalition: 1, 2 or 3).
pub fn member_reference(partner: u32, member: u64) -> String {
    partners_gateway::demo::member_reference_at(partner, member)
        .expect("the workload sends as demo partners 1 to 3 only")
}

impl Workload {
    /// A generator over members `1..=members` with Zipf exponent `skew`.
    pub fn new(run: &str, worker: usize, members: u64, skew: f64, mix: Mix, seed: u64) -> Workload {
        Workload {
            rng: SmallRng::seed_from_u64(
                seed ^ (worker as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            ),
            zipf: Zipf::new(members.max(1) as f64, skew.max(0.0)).expect("valid Zipf parameters"),
            mix,
            prefix: format!("{run}-{worker}"),
            n: 0,
            follow_ups: VecDeque::new(),
        }
    }

    fn member(&mut self) -> u64 {
        self.zipf.sample(&mut self.rng) as u64
    }

    fn reference(&mut self) -> String {
        self.n += 1;
        format!("{}-{}", self.prefix, self.n)
    }

    /// The next command: a due follow-up half the time there is one, else a fresh command.
    pub fn next_op(&mut self) -> Op {
        if !self.follow_ups.is_empty() && self.rng.random_bool(0.5) {
            if let Some(f) = self.follow_ups.pop_front() {
                return self.follow_up(f);
            }
        }
        let total = self.mix.earn + self.mix.burn + self.mix.hold;
        let pick = self.rng.random_range(0..total);
        if pick < self.mix.earn {
            self.earn()
        } else if pick < self.mix.earn + self.mix.burn {
            self.burn()
        } else {
            self.hold()
        }
    }

    /// A fresh command for `partner` only (batches are signed by one partner): earns and burns.
    pub fn next_for(&mut self, partner: u32) -> Op {
        let burn = partner != 1
            && self.rng.random_range(0..self.mix.earn + self.mix.burn) >= self.mix.earn;
        if burn {
            self.burn_at(partner)
        } else {
            self.earn_at(partner)
        }
    }

    fn earn(&mut self) -> Op {
        let partner = self.rng.random_range(1..=3);
        self.earn_at(partner)
    }

    fn earn_at(&mut self, partner: u32) -> Op {
        let member = self.member();
        let reference = self.reference();
        let member = member_reference(partner, member);
        let (value, unit, branch) = match partner {
            1 => (self.rng.random_range(200..5000).to_string(), "mile", None),
            2 => {
                let litres = format!(
                    "{}.{:02}",
                    self.rng.random_range(10..80),
                    self.rng.random_range(0..100)
                );
                let branch = format!("station-{:03}", self.rng.random_range(1..=5));
                (litres, "litre", Some(branch))
            }
            _ => {
                let pounds = format!(
                    "{}.{:02}",
                    self.rng.random_range(10..120),
                    self.rng.random_range(0..100)
                );
                (pounds, "GBP", None)
            }
        };
        let body = Body {
            reference: &reference,
            member: Some(&member),
            amount: Some(AmountBody {
                value: &value,
                unit,
            }),
            branch: branch.as_deref(),
            ..Body::default()
        }
        .text();
        Op {
            kind: OpKind::Earn,
            partner,
            path: "/v1/earn".into(),
            reference,
            body,
        }
    }

    fn burn(&mut self) -> Op {
        let partner = self.rng.random_range(2..=3);
        self.burn_at(partner)
    }

    fn burn_at(&mut self, partner: u32) -> Op {
        let member = self.member();
        let reference = self.reference();
        let member = member_reference(partner, member);
        let (pounds, points) = if partner == 3 {
            let pounds = format!(
                "{}.{:02}",
                self.rng.random_range(1..5),
                self.rng.random_range(0..100)
            );
            (Some(pounds), None)
        } else {
            (None, Some(self.rng.random_range(50..300)))
        };
        let body = Body {
            reference: &reference,
            member: Some(&member),
            amount: pounds
                .as_deref()
                .map(|value| AmountBody { value, unit: "GBP" }),
            points,
            ..Body::default()
        }
        .text();
        Op {
            kind: OpKind::Burn,
            partner,
            path: "/v1/burn".into(),
            reference,
            body,
        }
    }

    fn hold(&mut self) -> Op {
        let member = self.member();
        let reference = self.reference();
        let member = member_reference(1, member);
        let body = Body {
            reference: &reference,
            member: Some(&member),
            points: Some(self.rng.random_range(500..3000)),
            timeout_seconds: Some(3600),
            ..Body::default()
        }
        .text();
        Op {
            kind: OpKind::Hold,
            partner: 1,
            path: "/v1/holds".into(),
            reference,
            body,
        }
    }

    fn follow_up(&mut self, f: FollowUp) -> Op {
        let reference = self.reference();
        match f {
            FollowUp::Hold {
                reference: hold,
                points,
            } => {
                if self.rng.random_bool(0.7) {
                    // Most awards are ticketed, some for a little less than was held.
                    let take = if self.rng.random_bool(0.8) {
                        points
                    } else {
                        points / 2
                    };
                    Op {
                        kind: OpKind::Capture,
                        partner: 1,
                        path: format!("/v1/holds/{hold}/capture"),
                        body: Body {
                            reference: &reference,
                            points: Some(take),
                            ..Body::default()
                        }
                        .text(),
                        reference,
                    }
                } else {
                    Op {
                        kind: OpKind::Void,
                        partner: 1,
                        path: format!("/v1/holds/{hold}/void"),
                        body: Body {
                            reference: &reference,
                            ..Body::default()
                        }
                        .text(),
                        reference,
                    }
                }
            }
            FollowUp::Refund {
                partner,
                reference: original,
            } => Op {
                kind: OpKind::Reversal,
                partner,
                path: "/v1/reversals".into(),
                body: Body {
                    reference: &reference,
                    original_reference: Some(&original),
                    ..Body::default()
                }
                .text(),
                reference,
            },
        }
    }

    /// Records what may follow an acknowledged command.
    pub fn acknowledged(&mut self, op: &Op, points: i64) {
        match op.kind {
            OpKind::Hold => self.follow_ups.push_back(FollowUp::Hold {
                reference: op.reference.clone(),
                points,
            }),
            OpKind::Earn if self.rng.random_range(0..100) < self.mix.refund_percent => {
                self.follow_ups.push_back(FollowUp::Refund {
                    partner: op.partner,
                    reference: op.reference.clone(),
                })
            }
            _ => {}
        }
        // Bounded: the oldest follow-ups are dropped rather than letting memory grow.
        while self.follow_ups.len() > 10_000 {
            self.follow_ups.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use partners_gateway::api::partner::bodies::{
        BatchCommand, BatchRequest, BurnRequest, CaptureRequest, EarnRequest, HoldRequest,
        ReversalRequest, VoidRequest,
    };

    /// Commands of every kind, follow-ups among them, as a run would send them.
    fn commands() -> Vec<Op> {
        let mut wl = Workload::new("t", 0, 1_000, 1.0, Mix::default(), 7);
        (0..3_000)
            .map(|_| {
                let op = wl.next_op();
                wl.acknowledged(&op, 100);
                op
            })
            .collect()
    }

    #[test]
    fn every_body_is_what_the_gateway_parses_for_its_kind() {
        let ops = commands();
        let mut seen = std::collections::BTreeSet::new();
        for op in &ops {
            seen.insert(op.kind);
            let parsed = match op.kind {
                OpKind::Earn => serde_json::from_str::<EarnRequest>(&op.body).map(|r| r.reference),
                OpKind::Burn => serde_json::from_str::<BurnRequest>(&op.body).map(|r| r.reference),
                OpKind::Hold => serde_json::from_str::<HoldRequest>(&op.body).map(|r| r.reference),
                OpKind::Capture => {
                    serde_json::from_str::<CaptureRequest>(&op.body).map(|r| r.reference)
                }
                OpKind::Void => serde_json::from_str::<VoidRequest>(&op.body).map(|r| r.reference),
                OpKind::Reversal => {
                    serde_json::from_str::<ReversalRequest>(&op.body).map(|r| r.reference)
                }
                OpKind::Batch => unreachable!("single commands only"),
            };
            let reference = parsed.unwrap_or_else(|e| panic!("{:?} {}: {e}", op.kind, op.body));
            assert_eq!(reference, op.reference, "{}", op.body);
        }
        let want: std::collections::BTreeSet<OpKind> = OpKind::ALL
            .iter()
            .copied()
            .filter(|k| *k != OpKind::Batch)
            .collect();
        assert_eq!(seen, want, "every kind of command is generated");
    }

    #[test]
    fn a_batch_body_is_the_gateways_batch_in_order() {
        // A batch is signed by one partner and carries fresh earns and burns (`next_for`), as
        // the harness sends it.
        let mut wl = Workload::new("t", 0, 1_000, 1.0, Mix::default(), 7);
        let ops: Vec<Op> = (0..300).map(|i| wl.next_for(1 + i % 3)).collect();
        assert!(ops.iter().any(|o| o.kind == OpKind::Burn));
        for items in [&ops[..1], &ops[..]] {
            let body = batch_body(items);
            let req: BatchRequest =
                serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
            assert_eq!(req.commands.len(), items.len());
            for (c, o) in req.commands.iter().zip(items) {
                let (kind, reference) = match c {
                    BatchCommand::Earn(r) => (OpKind::Earn, &r.reference),
                    BatchCommand::Burn(r) => (OpKind::Burn, &r.reference),
                    BatchCommand::Hold(r) => (OpKind::Hold, &r.reference),
                    BatchCommand::Capture { reference, .. } => (OpKind::Capture, reference),
                    BatchCommand::Void { reference, .. } => (OpKind::Void, reference),
                    BatchCommand::Reversal(r) => (OpKind::Reversal, &r.reference),
                };
                assert_eq!((kind, reference), (o.kind, &o.reference));
            }
        }
    }

    #[test]
    fn a_batch_item_puts_op_first_and_keeps_every_field() {
        let mut out = String::new();
        batch_item(&mut out, OpKind::Void, r#"{"reference":"r-1"}"#);
        assert_eq!(out, r#"{"op":"void","reference":"r-1"}"#);
        out.clear();
        batch_item(&mut out, OpKind::Void, "{}");
        assert_eq!(out, r#"{"op":"void"}"#);
    }
}
