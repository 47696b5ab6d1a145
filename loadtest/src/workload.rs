//! A coalition's traffic: the airline earns by miles flown and holds points for award bookings
//! (captured or voided later); fuel stations earn by litres and burn at the pump; the telecom
//! earns on bills and lets members pay airtime with points; about 2% of earns are refunded.
//! Members are drawn from a Zipf distribution, so a few are hot.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use serde_json::{json, Value};
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
    /// Body for a single request; batch items add `op`.
    pub body: Value,
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
        let mut body = json!({"reference": reference, "member": member_reference(partner, member)});
        match partner {
            1 => {
                body["amount"] =
                    json!({"value": self.rng.random_range(200..5000).to_string(), "unit": "mile"})
            }
            2 => {
                let litres = format!(
                    "{}.{:02}",
                    self.rng.random_range(10..80),
                    self.rng.random_range(0..100)
                );
                body["amount"] = json!({"value": litres, "unit": "litre"});
                body["branch"] = json!(format!("station-{:03}", self.rng.random_range(1..=5)));
            }
            _ => {
                let pounds = format!(
                    "{}.{:02}",
                    self.rng.random_range(10..120),
                    self.rng.random_range(0..100)
                );
                body["amount"] = json!({"value": pounds, "unit": "GBP"});
            }
        }
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
        let mut body = json!({"reference": reference, "member": member_reference(partner, member)});
        if partner == 3 {
            let pounds = format!(
                "{}.{:02}",
                self.rng.random_range(1..5),
                self.rng.random_range(0..100)
            );
            body["amount"] = json!({"value": pounds, "unit": "GBP"});
        } else {
            body["points"] = json!(self.rng.random_range(50..300));
        }
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
        let body = json!({"reference": reference, "member": member_reference(1, member),
                          "points": self.rng.random_range(500..3000), "timeout_seconds": 3600});
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
                        body: json!({"reference": reference, "points": take}),
                        reference,
                    }
                } else {
                    Op {
                        kind: OpKind::Void,
                        partner: 1,
                        path: format!("/v1/holds/{hold}/void"),
                        body: json!({"reference": reference}),
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
                body: json!({"reference": reference, "original_reference": original}),
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
