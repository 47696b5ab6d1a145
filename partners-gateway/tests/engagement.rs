//! Engagement over HTTP: a voucher redeemed exactly once however many tills try at once; a
//! reward's stock never oversold (on both write paths); vouchers expiring with their points
//! returned or kept; discount codes within their uses; every referral abuse refused and a good
//! referral paid once; a draw reproduced from its seed and published entries by the CLI; NPS on
//! an example worked by hand; a claim and the partner's late posting of the same receipt
//! counted once, in either order.

mod common;

use common::Gw;
use futures::future::join_all;
use partners_gateway::config::WriterPath;
use serde_json::{json, Value};

async fn posted(gw: &Gw, m: u64) -> i64 {
    gw.op("GET", &format!("/admin/v1/members/{m}"), None)
        .await
        .body["posted"]
        .as_i64()
        .expect("posted")
}

async fn run_due(gw: &Gw) -> i64 {
    let r = gw.op("POST", "/admin/v1/engagement/run", None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["moved"].as_i64().expect("moved")
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A reward fulfilled by FuelCo (partner 2), 500 points, with `extra` fields.
async fn reward(gw: &Gw, extra: Value) -> u64 {
    let mut spec = json!({
        "names": [{"language": "en", "text": "Fuel voucher 20 L"}, {"language": "fa", "text": "کارت سوخت ۲۰ لیتری"}],
        "partner_id": 2, "points": 500
    });
    for (k, v) in extra.as_object().expect("an object") {
        spec[k] = v.clone();
    }
    let r = gw
        .op(
            "POST",
            "/admin/v1/rewards",
            Some(json!({"spec": spec, "reason": "catalogue"})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body["id"].as_u64().expect("id")
}

/// FuelCo's redemption account's points.
async fn redemption_points(gw: &Gw) -> i64 {
    let r = gw
        .op("GET", "/admin/v1/accounts/partner%2F2%2Fredemption", None)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["points"].as_i64().expect("points")
}

async fn redeem(gw: &Gw, m: u64, reward: u64, reference: &str) -> common::Answer {
    gw.op(
        "POST",
        &format!("/admin/v1/members/{m}/rewards/{reward}/redemptions"),
        Some(json!({"reference": reference})),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voucher_is_redeemed_exactly_once_under_concurrency() {
    let gw = Gw::start().await;
    assert_eq!(gw.earn_miles(5, "V-5", "2000").await.status, 200);
    let id = reward(&gw, json!({"stock": 10})).await;
    let before = posted(&gw, 5).await;
    let v = redeem(&gw, 5, id, "web-order-1").await;
    assert_eq!(v.status, 201, "{:?}", v.body);
    assert_eq!(v.body["status"], "issued");
    let code = v.body["code"].as_str().expect("code").to_string();
    assert_eq!(code.len(), 19, "16 characters in groups of four: {code}");
    assert_eq!(posted(&gw, 5).await, before - 500);
    // A retry with the same reference answers with the same voucher and burns nothing.
    let again = redeem(&gw, 5, id, "web-order-1").await;
    assert_eq!(
        (again.status.as_u16(), &again.body["code"]),
        (200, &json!(code))
    );
    assert_eq!(again.body["replayed"], true);
    assert_eq!(posted(&gw, 5).await, before - 500);

    // Another partner does not see it.
    let other = gw
        .partner(1, "GET", &format!("/v1/vouchers/{code}"), None)
        .await;
    assert_eq!(other.status, 404, "{:?}", other.body);

    // Sixteen tills present it at once, each with its own receipt: one wins.
    let tries = (0..16).map(|i| {
        let path = format!("/v1/vouchers/{}/redemption", code.to_lowercase());
        let gw = &gw;
        async move {
            gw.partner(
                2,
                "POST",
                &path,
                Some(json!({"reference": format!("till-{i}"), "branch": "station-003"})),
            )
            .await
        }
    });
    let answers = join_all(tries).await;
    let won: Vec<&common::Answer> = answers.iter().filter(|a| a.status == 200).collect();
    assert_eq!(won.len(), 1, "exactly one till redeems it");
    assert!(
        answers
            .iter()
            .filter(|a| a.status != 200)
            .all(|a| (a.status.as_u16(), a.problem()) == (409, "voucher-refused")),
        "the others are refused"
    );
    let winner = won[0].body["redeemed_reference"]
        .as_str()
        .expect("reference")
        .to_string();
    // The winning till's retry is a replay; the voucher is redeemed once.
    let retry = gw
        .partner(
            2,
            "POST",
            &format!("/v1/vouchers/{code}/redemption"),
            Some(json!({"reference": winner})),
        )
        .await;
    assert_eq!(
        (retry.status.as_u16(), &retry.body["replayed"]),
        (200, &json!(true))
    );
    let seen = gw
        .op("GET", &format!("/admin/v1/vouchers/{code}"), None)
        .await;
    assert_eq!(seen.body["status"], "redeemed");
    assert_eq!(seen.body["branch"], "station-003");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_is_never_oversold_on_the_single_writer() {
    stock(WriterPath::Single).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_is_never_oversold_on_the_cluster_path() {
    stock(WriterPath::Cluster).await;
}

async fn stock(writer: WriterPath) {
    let gw = Gw::start_with(|c| c.writer = writer).await;
    for m in 1..=12u64 {
        assert_eq!(
            gw.earn_miles(m, &format!("S-{m}"), "1500").await.status,
            200
        );
    }
    let id = reward(&gw, json!({"stock": 5, "per_member_max": 1})).await;

    let before = redemption_points(&gw).await;
    let tries = (1..=12u64).map(|m| {
        let gw = &gw;
        async move { redeem(gw, m, id, &format!("race-{m}")).await }
    });
    let answers = join_all(tries).await;
    let issued = answers.iter().filter(|a| a.status == 201).count();
    assert_eq!(issued, 5, "five units, five vouchers");
    assert!(answers
        .iter()
        .filter(|a| a.status != 201)
        .all(|a| (a.status.as_u16(), a.problem()) == (422, "out-of-stock")));
    assert_eq!(
        redemption_points(&gw).await - before,
        2_500,
        "FuelCo is reimbursed for five rewards"
    );
    // The per-member limit: a winner may not have a second one, even with stock.
    let more = reward(&gw, json!({"per_member_max": 1})).await;
    assert_eq!(redeem(&gw, 1, more, "m1-a").await.status, 201);
    let second = redeem(&gw, 1, more, "m1-b").await;
    assert_eq!(
        (second.status.as_u16(), second.problem()),
        (422, "reward-refused")
    );
    // A reward for a segment the member is not in, and one not yet offered.
    let rich = gw
        .op(
            "POST",
            "/admin/v1/segments",
            Some(json!({"name": "rich", "rules": {"balance_min": 1000000}, "reason": "vip"})),
        )
        .await;
    assert_eq!(rich.status, 201, "{:?}", rich.body);
    let vip = reward(&gw, json!({"segments": [rich.body["id"]]})).await;
    let not_vip = redeem(&gw, 2, vip, "vip-1").await;
    assert_eq!(
        (not_vip.status.as_u16(), not_vip.problem()),
        (422, "reward-refused")
    );
    let later = reward(&gw, json!({"valid_from_ms": now_ms() + 86_400_000})).await;
    assert_eq!(
        redeem(&gw, 2, later, "later-1").await.problem(),
        "reward-refused"
    );
    let offered = gw.op("GET", "/admin/v1/members/2/rewards", None).await;
    let ids: Vec<u64> = offered
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    assert!(
        ids.contains(&more) && !ids.contains(&vip) && !ids.contains(&later),
        "{ids:?}"
    );
    // Not enough points: refused, nothing issued, and a retry is judged afresh.
    let dear = reward(&gw, json!({"points": 1_000_000})).await;
    let poor = redeem(&gw, 2, dear, "too-dear").await;
    assert_eq!(
        (poor.status.as_u16(), poor.problem()),
        (422, "insufficient-points")
    );
    let vouchers = gw.op("GET", "/admin/v1/members/2/vouchers", None).await;
    assert!(vouchers
        .body
        .as_array()
        .expect("list")
        .iter()
        .all(|v| v["reward_id"] != dear));

    // Expiry: a `return` voucher gives its points back, a `forfeit` one keeps them redeemed.
    let soon = now_ms() + 1_500;
    let back = reward(
        &gw,
        json!({"voucher_expires_at_ms": soon, "on_expiry": "return"}),
    )
    .await;
    let kept = reward(
        &gw,
        json!({"voucher_expires_at_ms": soon, "on_expiry": "forfeit"}),
    )
    .await;
    let before = posted(&gw, 3).await;
    let vb = redeem(&gw, 3, back, "exp-back").await;
    let vk = redeem(&gw, 3, kept, "exp-kept").await;
    assert_eq!(
        (vb.status, vk.status),
        (reqwest::StatusCode::CREATED, reqwest::StatusCode::CREATED)
    );
    assert_eq!(posted(&gw, 3).await, before - 1_000);
    tokio::time::sleep(std::time::Duration::from_millis(1_700)).await;
    let late = gw
        .partner(
            2,
            "POST",
            &format!(
                "/v1/vouchers/{}/redemption",
                vk.body["code"].as_str().unwrap()
            ),
            Some(json!({"reference": "too-late"})),
        )
        .await;
    assert_eq!(
        (late.status.as_u16(), late.problem()),
        (409, "voucher-refused")
    );
    assert!(run_due(&gw).await >= 2);
    let code_b = vb.body["code"].as_str().unwrap();
    let code_k = vk.body["code"].as_str().unwrap();
    let b = gw
        .op("GET", &format!("/admin/v1/vouchers/{code_b}"), None)
        .await;
    let k = gw
        .op("GET", &format!("/admin/v1/vouchers/{code_k}"), None)
        .await;
    assert_eq!(
        (b.body["status"].as_str(), k.body["status"].as_str()),
        (Some("returned"), Some("expired"))
    );
    assert!(b.body["returned_transaction_id"].is_string());
    assert_eq!(
        posted(&gw, 3).await,
        before - 500,
        "the returned voucher's points came back"
    );
    let audit = gw.op("GET", "/admin/v1/audit", None).await;
    assert_eq!(audit.body["ok"], true, "{:?}", audit.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discount_codes_keep_to_their_uses() {
    let gw = Gw::start().await;
    let set = gw
        .op(
            "POST",
            "/admin/v1/codes",
            Some(json!({"reason": "welcome mailing",
            "spec": {"name": "Welcome 50", "codes": {"kind": "unique", "count": 3},
                     "effect": {"kind": "points", "points": 50}}})),
        )
        .await;
    assert_eq!(set.status, 201, "{:?}", set.body);
    let codes: Vec<String> = set.body["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 3);
    let before = posted(&gw, 7).await;
    let use_code = |m: u64, code: &str, reference: &str| {
        let gw = &gw;
        let body = json!({"code": code, "reference": reference});
        async move {
            gw.op("POST", &format!("/admin/v1/members/{m}/codes"), Some(body))
                .await
        }
    };
    let first = use_code(7, &codes[0].to_lowercase(), "c-1").await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    assert_eq!(first.body["points"], 50);
    assert_eq!(posted(&gw, 7).await, before + 50);
    let retry = use_code(7, &codes[0], "c-1").await;
    assert_eq!(
        (retry.status.as_u16(), &retry.body["replayed"]),
        (200, &json!(true))
    );
    assert_eq!(
        posted(&gw, 7).await,
        before + 50,
        "a retry grants nothing more"
    );
    let reuse = use_code(8, &codes[0], "c-2").await;
    assert_eq!(
        (reuse.status.as_u16(), reuse.problem()),
        (422, "code-refused")
    );
    assert_eq!(use_code(8, "NO-SUCH-CODE", "c-3").await.status, 404);

    // A shared discount at FuelCo: two uses in all, one a member; other partners cannot use it.
    let shared = gw
        .op(
            "POST",
            "/admin/v1/codes",
            Some(json!({"reason": "pump promotion",
            "spec": {"name": "Fuel 10%", "partner_id": 2,
                     "codes": {"kind": "shared", "code": "FUEL-10", "max_uses": 2},
                     "effect": {"kind": "discount", "reference": "fuel-10-percent"}}})),
        )
        .await;
    assert_eq!(shared.status, 201, "{:?}", shared.body);
    let at = |p: u32, member: &str, reference: &str| {
        let gw = &gw;
        let body = json!({"code": "fuel-10", "member": member, "reference": reference});
        async move { gw.partner(p, "POST", "/v1/codes/use", Some(body)).await }
    };
    let d = at(2, "FC000007", "pump-1").await;
    assert_eq!(
        (d.status.as_u16(), &d.body["discount_reference"]),
        (200, &json!("fuel-10-percent"))
    );
    assert_eq!(
        at(2, "FC000007", "pump-2").await.problem(),
        "code-refused",
        "once a member"
    );
    assert_eq!(
        at(1, "FF000008", "air-1").await.status,
        404,
        "another partner's code is unknown"
    );
    assert_eq!(at(2, "FC000008", "pump-3").await.status, 200);
    assert_eq!(
        at(2, "FC000009", "pump-4").await.problem(),
        "code-refused",
        "used up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_referral_abuse_is_refused_and_a_good_referral_pays_once() {
    let gw = Gw::start().await;
    let enrol = || {
        let gw = &gw;
        async move {
            let r = gw.op("POST", "/admin/v1/members", None).await;
            assert_eq!(r.status, 201, "{:?}", r.body);
            r.body["member_id"].as_u64().expect("member id")
        }
    };
    let refer = |m: u64, code: &str| {
        let gw = &gw;
        let body = json!({"code": code});
        async move {
            gw.op(
                "POST",
                &format!("/admin/v1/members/{m}/referral"),
                Some(body),
            )
            .await
        }
    };
    let fresh = enrol().await;
    let code = gw.op("GET", "/admin/v1/members/10/referral", None).await;
    assert_eq!(code.status, 200, "{:?}", code.body);
    let code = code.body["code"].as_str().unwrap().to_string();
    // No policy yet: refused.
    assert_eq!(refer(fresh, &code).await.problem(), "referral-refused");
    let policy = gw
        .op(
            "PUT",
            "/admin/v1/referrals/policy",
            Some(json!({"reason": "launch",
            "policy": {"enabled": true, "referrer_points": 300, "referee_points": 200,
                       "window_days": 30, "min_earn_points": 100, "referrer_cap": 2}})),
        )
        .await;
    assert_eq!(policy.status, 200, "{:?}", policy.body);

    // Self-referral.
    assert_eq!(refer(10, &code).await.problem(), "referral-refused");
    // An unknown code.
    assert_eq!(
        refer(fresh, "ZZZZ-ZZZZ").await.problem(),
        "referral-refused"
    );
    // A member who has earned already.
    assert_eq!(gw.earn_miles(11, "R-11", "500").await.status, 200);
    assert_eq!(refer(11, &code).await.problem(), "referral-refused");
    // One household: the same phone in both profiles.
    let same_phone = enrol().await;
    for m in [10, same_phone] {
        let p = gw
            .op(
                "PUT",
                &format!("/admin/v1/members/{m}/profile"),
                Some(json!({"phone": "+989121234567"})),
            )
            .await;
        assert_eq!(p.status, 200, "{:?}", p.body);
    }
    assert_eq!(refer(same_phone, &code).await.problem(), "referral-refused");

    // A good referral: recorded once; both paid once the referee's first qualifying earn
    // comes; a retried sweep pays nothing more.
    let r = refer(fresh, &code.to_lowercase()).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(refer(fresh, &code).await.status, 200, "a retry");
    let ok = gw
        .partner(
            1,
            "POST",
            "/v1/members",
            Some(json!({"reference": "FF-NEW-1", "member_id": fresh,
            "link_code": link_code(&gw, fresh).await})),
        )
        .await;
    assert_eq!(ok.status, 201, "{:?}", ok.body);
    let (r_before, e_before) = (posted(&gw, 10).await, posted(&gw, fresh).await);
    // 50 miles do not qualify (minimum 100 points); nothing is paid yet.
    let small = gw
        .partner(
            1,
            "POST",
            "/v1/earn",
            Some(json!({"reference": "R-F-1", "member": "FF-NEW-1",
            "amount": {"value": "50", "unit": "mile"}})),
        )
        .await;
    assert_eq!(small.status, 200, "{:?}", small.body);
    run_due(&gw).await;
    assert_eq!(posted(&gw, 10).await, r_before);
    let big = gw
        .partner(
            1,
            "POST",
            "/v1/earn",
            Some(json!({"reference": "R-F-2", "member": "FF-NEW-1",
            "amount": {"value": "150", "unit": "mile"}})),
        )
        .await;
    assert_eq!(big.status, 200);
    assert!(run_due(&gw).await >= 1);
    run_due(&gw).await;
    assert_eq!(posted(&gw, 10).await, r_before + 300, "the referrer once");
    assert_eq!(
        posted(&gw, fresh).await,
        e_before + 200 + 200,
        "the referee's earns and bonus"
    );
    let mine = gw
        .op("GET", &format!("/admin/v1/members/{fresh}/referral"), None)
        .await;
    let rec = &mine.body["referred_by"];
    assert_eq!(
        (rec["status"].as_str(), rec["referrer_id"].as_u64()),
        (Some("rewarded"), Some(10))
    );
    assert_eq!(rec["qualifying_transaction_id"], big.body["transaction_id"]);
    let statement = gw.op("GET", "/admin/v1/members/10/statement", None).await;
    assert!(
        statement.body["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["kind"] == "grant" && l["transaction_id"] == rec["referrer_transaction_id"]),
        "{:?}",
        statement.body
    );

    // The cap: the referrer has one referral; a second is allowed, a third is not.
    let second = enrol().await;
    assert_eq!(refer(second, &code).await.status, 201);
    let third = enrol().await;
    assert_eq!(refer(third, &code).await.problem(), "referral-refused");
}

/// `hex(SHA-256(seed))` of a hex seed: what an operator commits to.
fn commitment_of(seed: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(hex::decode(seed).unwrap()))
}

/// Draw `id`'s published entry list.
async fn entry_list(gw: &Gw, id: u64) -> String {
    let r = gw
        .http
        .get(format!("{}/admin/v1/draws/{id}/entries", gw.base))
        .bearer_auth(gw.cred("OPERATOR_TOKEN"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

/// A one-time link code for member `m`, so a partner can link it.
async fn link_code(gw: &Gw, m: u64) -> String {
    let r = gw
        .op(
            "POST",
            &format!("/admin/v1/members/{m}/link-codes"),
            Some(json!({"reason": "joined with a referral"})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body["code"].as_str().expect("code").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draw_is_reproduced_from_its_seed_and_published_entries() {
    let gw = Gw::start().await;
    for m in 1..=20u64 {
        let miles = (m * 150).to_string();
        assert_eq!(
            gw.earn_miles(m, &format!("D-{m}"), &miles).await.status,
            200
        );
    }
    let seed = "5eed".repeat(16);
    let commitment = commitment_of(&seed);
    let d = gw
        .op("POST", "/admin/v1/draws", Some(json!({"reason": "winter draw", "spec": {
            "names": [{"language": "en", "text": "Winter draw"}, {"language": "fa", "text": "قرعه‌کشی زمستان"}],
            "entry": {"kind": "points_held", "points_per_entry": 500},
            "prizes": [{"points": 10000}, {"points": 5000}, {"points": 1000}],
            "closes_at_ms": now_ms() + 1_500, "commitment": commitment}})))
        .await;
    assert_eq!(d.status, 201, "{:?}", d.body);
    let id = d.body["id"].as_u64().unwrap();
    let early = gw
        .op(
            "POST",
            &format!("/admin/v1/draws/{id}/reveal"),
            Some(json!({"seed": seed})),
        )
        .await;
    assert_eq!(early.problem(), "draw-refused", "not before it closes");
    tokio::time::sleep(std::time::Duration::from_millis(1_700)).await;
    run_due(&gw).await;
    let closed = gw.op("GET", &format!("/admin/v1/draws/{id}"), None).await;
    assert_eq!(closed.body["status"], "closed", "{:?}", closed.body);
    let csv = entry_list(&gw, id).await;
    assert!(csv.starts_with("member_id,entries\n"), "{csv}");
    {
        use sha2::Digest;
        assert_eq!(
            closed.body["entry_list_sha256"],
            json!(hex::encode(sha2::Sha256::digest(&csv)))
        );
    }
    let wrong = gw
        .op(
            "POST",
            &format!("/admin/v1/draws/{id}/reveal"),
            Some(json!({"seed": "00".repeat(32)})),
        )
        .await;
    assert_eq!(wrong.problem(), "draw-refused");
    let before: Vec<i64> = join_all((1..=20u64).map(|m| posted(&gw, m))).await;
    let drawn = gw
        .op(
            "POST",
            &format!("/admin/v1/draws/{id}/reveal"),
            Some(json!({"seed": seed})),
        )
        .await;
    assert_eq!(drawn.status, 200, "{:?}", drawn.body);
    let winners: Vec<u64> = drawn.body["winners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["member_id"].as_u64().unwrap())
        .collect();
    assert_eq!(winners.len(), 3);
    for (w, prize) in winners.iter().zip([10_000, 5_000, 1_000]) {
        assert_eq!(
            posted(&gw, *w).await,
            before[*w as usize - 1] + prize,
            "member {w}"
        );
    }
    // Revealing again pays nothing twice.
    let again = gw
        .op(
            "POST",
            &format!("/admin/v1/draws/{id}/reveal"),
            Some(json!({"seed": seed})),
        )
        .await;
    assert_eq!(again.body["winners"], drawn.body["winners"]);
    assert_eq!(
        posted(&gw, winners[0]).await,
        before[winners[0] as usize - 1] + 10_000
    );

    // Anyone recomputes the winners from the published list and the seed.
    let file = gw.dir.path().join("entries.csv");
    std::fs::write(&file, &csv).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_partners-gateway"))
        .args([
            "draw-verify",
            "--prizes",
            "3",
            "--seed",
            &seed,
            "--commitment",
            &commitment,
            "--entries",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recomputed: Vec<u64> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(recomputed, winners);
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_partners-gateway"))
        .args([
            "draw-verify",
            "--prizes",
            "3",
            "--seed",
            &"11".repeat(32),
            "--commitment",
            &commitment,
            "--entries",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        !bad.status.success(),
        "a seed that is not the committed one is refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nps_on_an_example_checked_by_hand() {
    let gw = Gw::start().await;
    let s = gw
        .op("POST", "/admin/v1/surveys", Some(json!({"reason": "quarterly", "spec": {
            "names": [{"language": "en", "text": "How did we do?"}],
            "nps_question": [{"language": "en", "text": "How likely are you to recommend us?"},
                             {"language": "fa", "text": "چقدر احتمال دارد ما را به دوستانتان معرفی کنید؟"}],
            "questions": [{"id": "staff", "texts": [{"language": "en", "text": "Staff?"}], "choices": ["good", "poor"]}],
            "reward_points": 25}})))
        .await;
    assert_eq!(s.status, 201, "{:?}", s.body);
    let id = s.body["id"].as_u64().unwrap();
    // SkyWays: 10, 9, 9, 10, 9 (five promoters: NPS 100). FuelCo: 8, 7, 7, 6, 0 (three
    // passives, two detractors: (0 - 2) / 5 = -40). Together: (5 - 2) / 10 = 30.
    let scores = [10, 9, 9, 10, 9, 8, 7, 7, 6, 0];
    let before = posted(&gw, 1).await;
    for (i, score) in scores.iter().enumerate() {
        let m = i as u64 + 1;
        let r = if i < 5 {
            gw.partner(1, "POST", &format!("/v1/surveys/{id}/responses"),
                Some(json!({"member": format!("FF{m:06}"), "score": score, "answers": [{"question": "staff", "answer": "good"}]})))
                .await
        } else {
            gw.partner(
                2,
                "POST",
                &format!("/v1/surveys/{id}/responses"),
                Some(
                    json!({"member": format!("FC{m:06}"), "score": score, "branch": "station-003"}),
                ),
            )
            .await
        };
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    assert_eq!(
        posted(&gw, 1).await,
        before + 25,
        "the reward for answering"
    );
    let twice = gw
        .op(
            "POST",
            &format!("/admin/v1/members/1/surveys/{id}/responses"),
            Some(json!({"score": 3})),
        )
        .await;
    assert_eq!(
        (twice.status.as_u16(), twice.problem()),
        (422, "survey-refused")
    );
    assert_eq!(posted(&gw, 1).await, before + 25, "paid once");
    let out_of_range = gw
        .op(
            "POST",
            &format!("/admin/v1/members/20/surveys/{id}/responses"),
            Some(json!({"score": 5, "answers": [{"question": "staff", "answer": "meh"}]})),
        )
        .await;
    assert_eq!(out_of_range.problem(), "survey-refused");

    // Sent to a segment through the notifications: a broadcast the survey records.
    let seg = gw
        .op(
            "POST",
            "/admin/v1/segments",
            Some(json!({"name": "everyone", "rules": {}, "reason": "survey"})),
        )
        .await;
    assert_eq!(seg.status, 201, "{:?}", seg.body);
    let sent = gw
        .op("POST", &format!("/admin/v1/surveys/{id}/send"), Some(json!({"name": "NPS Q4",
            "segment": seg.body["id"], "channel": "sms", "reason": "quarterly NPS",
            "texts": [{"language": "en", "body": "{{ name }}, how did we do? Answer in the app."}]})))
        .await;
    assert_eq!(sent.status, 201, "{:?}", sent.body);
    let survey = gw.op("GET", &format!("/admin/v1/surveys/{id}"), None).await;
    assert_eq!(survey.body["broadcasts"], json!([sent.body["id"]]));

    let all = gw
        .op("GET", &format!("/admin/v1/nps?survey={id}"), None)
        .await;
    assert_eq!(all.status, 200, "{:?}", all.body);
    assert_eq!(all.body[0]["nps"], "30");
    assert_eq!(
        (
            all.body[0]["promoters"].as_u64(),
            all.body[0]["passives"].as_u64(),
            all.body[0]["detractors"].as_u64()
        ),
        (Some(5), Some(3), Some(2))
    );
    let by = gw.op("GET", "/admin/v1/nps?by=partner,branch", None).await;
    let rows = by.body.as_array().expect("rows");
    let row = |p: u64| rows.iter().find(|r| r["partner_id"] == p).expect("a row");
    assert_eq!(
        (row(1)["nps"].as_str(), row(1)["branch"].is_null()),
        (Some("100"), true)
    );
    assert_eq!(
        (row(2)["nps"].as_str(), row(2)["branch"].as_str()),
        (Some("-40"), Some("station-003"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_and_the_partners_late_posting_of_its_receipt_count_once() {
    let gw = Gw::start().await;
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let file = |m: u64, receipt: &str, miles: &str| {
        let gw = &gw;
        let body = json!({"kind": "missing_points", "partner_id": 1, "purchase_date": today,
            "receipt_reference": receipt, "amount": {"value": miles, "unit": "mile"},
            "text": "my card was not scanned at the gate"});
        async move {
            gw.op("POST", &format!("/admin/v1/members/{m}/claims"), Some(body))
                .await
        }
    };
    // The partner posts first, late; the claim accepted after it names the partner's earn.
    let before = posted(&gw, 12).await;
    let late = gw.earn_miles(12, "BK-LATE-1", "1000").await;
    assert_eq!(late.status, 200);
    let c = file(12, "BK-LATE-1", "1000").await;
    assert_eq!(c.status, 201, "{:?}", c.body);
    let id = c.body["id"].as_u64().unwrap();
    let other = gw
        .partner(2, "GET", &format!("/v1/claims/{id}"), None)
        .await;
    assert_eq!(other.status, 404, "another partner does not see it");
    let ok = gw
        .partner(
            1,
            "POST",
            &format!("/v1/claims/{id}/decision"),
            Some(json!({"status": "accepted"})),
        )
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert_eq!(
        (ok.body["credited_by"].as_str(), &ok.body["transaction_id"]),
        (Some("partner"), &late.body["transaction_id"])
    );
    assert_eq!(posted(&gw, 12).await, before + 1000, "counted once");
    let history: Vec<&str> = ok.body["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["open", "accepted"]);

    // The claim first: its earn is posted under the partner's receipt; the partner's late
    // posting of the same receipt is a replay.
    let c2 = file(12, "BK-LATE-2", "700").await;
    let id2 = c2.body["id"].as_u64().unwrap();
    let review = gw
        .op(
            "POST",
            &format!("/admin/v1/claims/{id2}/decision"),
            Some(json!({"status": "in_review"})),
        )
        .await;
    assert_eq!(review.status, 200, "{:?}", review.body);
    let acc = gw
        .op(
            "POST",
            &format!("/admin/v1/claims/{id2}/decision"),
            Some(json!({"status": "accepted"})),
        )
        .await;
    assert_eq!(
        (acc.status.as_u16(), acc.body["credited_by"].as_str()),
        (200, Some("claim")),
        "{:?}",
        acc.body
    );
    assert_eq!(posted(&gw, 12).await, before + 1700);
    let replay = gw.earn_miles(12, "BK-LATE-2", "700").await;
    assert_eq!(
        (replay.status.as_u16(), &replay.body["replayed"]),
        (200, &json!(true)),
        "{:?}",
        replay.body
    );
    assert_eq!(replay.body["transaction_id"], acc.body["transaction_id"]);
    assert_eq!(posted(&gw, 12).await, before + 1700, "counted once");
    // A decided claim stays decided; a rejection needs a note; the time limit holds.
    let again = gw
        .op(
            "POST",
            &format!("/admin/v1/claims/{id2}/decision"),
            Some(json!({"status": "rejected", "note": "x"})),
        )
        .await;
    assert_eq!(again.problem(), "claim-refused");
    let c3 = gw
        .op(
            "POST",
            "/admin/v1/members/12/claims",
            Some(json!({"kind": "complaint", "partner_id": 2, "text": "rude staff"})),
        )
        .await;
    let id3 = c3.body["id"].as_u64().unwrap();
    let bare = gw
        .partner(
            2,
            "POST",
            &format!("/v1/claims/{id3}/decision"),
            Some(json!({"status": "rejected"})),
        )
        .await;
    assert_eq!(bare.problem(), "claim-refused");
    let rej = gw
        .partner(
            2,
            "POST",
            &format!("/v1/claims/{id3}/decision"),
            Some(json!({"status": "rejected", "note": "we could not find the visit"})),
        )
        .await;
    assert_eq!(rej.status, 200, "{:?}", rej.body);
    let old = file(12, "BK-OLD", "100").await;
    assert_eq!(old.status, 201);
    let window = gw
        .op(
            "PUT",
            "/admin/v1/claims/settings",
            Some(json!({"window_days": 1})),
        )
        .await;
    assert_eq!(window.status, 200);
    let long_ago = gw
        .op("POST", "/admin/v1/members/12/claims", Some(json!({"kind": "missing_points", "partner_id": 1,
            "purchase_date": "2026-01-01", "receipt_reference": "BK-JAN", "amount": {"value": "10", "unit": "mile"},
            "text": "january flight"})))
        .await;
    assert_eq!(
        (long_ago.status.as_u16(), long_ago.problem()),
        (422, "claim-refused")
    );
    let times = gw.op("GET", "/admin/v1/claims/response-times", None).await;
    let p1 = times
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["partner_id"] == 1)
        .expect("SkyWays")
        .clone();
    assert_eq!(
        (
            p1["filed"].as_u64(),
            p1["decided"].as_u64(),
            p1["waiting"].as_u64()
        ),
        (Some(3), Some(2), Some(1))
    );
    assert!(p1["median_hours"].is_string());
    let audit = gw.op("GET", "/admin/v1/audit", None).await;
    assert_eq!(audit.body["ok"], true, "{:?}", audit.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engagement_recipes_in_the_docs_work_as_written() {
    let gw = Gw::start().await;
    let script = common::doc_recipe(
        "docs/engagement.md",
        "<!-- engagement-recipe:begin -->",
        "<!-- engagement-recipe:end -->",
    );
    let stdout = common::run_recipe(&gw, &script).await;
    let answers: Vec<Value> = stdout
        .lines()
        .filter(|l| l.starts_with('{') || l.starts_with('['))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("JSON answer: {l}")))
        .collect();
    assert!(
        answers.iter().all(|a| a.get("type").is_none()),
        "no problem answers: {answers:#?}"
    );
    let till = answers
        .iter()
        .find(|a| a["redeemed_reference"] == "PUMP-3-0001")
        .expect("the till's redemption");
    assert_eq!(till["status"], "redeemed");
    let discount = answers
        .iter()
        .find(|a| a["discount_reference"].is_string())
        .expect("the discount");
    assert_eq!(discount["discount_reference"], "fuel-10-percent");
    let drawn = answers
        .iter()
        .find(|a| a["status"] == "drawn")
        .expect("the drawn draw");
    let winners: Vec<String> = drawn["winners"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, w)| format!("{},{}", i + 1, w["member_id"]))
        .collect();
    let verified: Vec<&str> = stdout
        .lines()
        .filter(|l| l.len() < 24 && l.contains(',') && !l.starts_with('{'))
        .collect();
    assert_eq!(verified, winners, "draw-verify agrees with the gateway");
    let claim = answers
        .iter()
        .find(|a| a["credited_by"] == "claim")
        .expect("the accepted claim");
    assert_eq!(claim["status"], "accepted");
    let nps = answers
        .iter()
        .find(|a| {
            a.as_array()
                .is_some_and(|r| r.first().is_some_and(|x| x["nps"].is_string()))
        })
        .expect("the NPS rows");
    assert_eq!(nps[0]["nps"], "100");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_bought_with_points_keep_to_their_limit() {
    let gw = Gw::start().await;
    assert_eq!(gw.earn_miles(4, "B-4", "1000").await.status, 200);
    let seed = "ab".repeat(32);
    let commitment = commitment_of(&seed);
    let d = gw
        .op("POST", "/admin/v1/draws", Some(json!({"reason": "sponsored by FuelCo", "spec": {
            "names": [{"language": "en", "text": "Fuel for a year"}],
            "entry": {"kind": "bought", "points_per_entry": 100, "partner_id": 2, "entries_per_member_max": 3},
            "prizes": [{"points": 500}],
            "closes_at_ms": now_ms() + 1_500, "commitment": commitment}})))
        .await;
    assert_eq!(d.status, 201, "{:?}", d.body);
    let id = d.body["id"].as_u64().unwrap();
    let buy = |entries: u64, reference: &str| {
        let gw = &gw;
        let body = json!({"member_id": 4, "entries": entries, "reference": reference});
        async move {
            gw.op("POST", &format!("/admin/v1/draws/{id}/entries"), Some(body))
                .await
        }
    };
    let before = posted(&gw, 4).await;
    let first = buy(2, "b1").await;
    assert_eq!(
        (first.status.as_u16(), first.body["member_entries"].as_u64()),
        (200, Some(2)),
        "{:?}",
        first.body
    );
    assert_eq!(
        buy(2, "b1").await.body["transaction_id"],
        first.body["transaction_id"],
        "a retry"
    );
    assert_eq!(posted(&gw, 4).await, before - 200);
    assert_eq!(
        buy(2, "b2").await.problem(),
        "draw-refused",
        "over three entries"
    );
    assert_eq!(buy(1, "b3").await.status, 200);
    assert_eq!(posted(&gw, 4).await, before - 300);
    tokio::time::sleep(std::time::Duration::from_millis(1_700)).await;
    assert_eq!(buy(1, "b4").await.problem(), "draw-refused", "closed");
    run_due(&gw).await;
    let csv = entry_list(&gw, id).await;
    assert_eq!(csv, "member_id,entries\n4,3\n");
    let drawn = gw
        .op(
            "POST",
            &format!("/admin/v1/draws/{id}/reveal"),
            Some(json!({"seed": seed})),
        )
        .await;
    assert_eq!(drawn.body["winners"][0]["member_id"], 4, "{:?}", drawn.body);
    assert_eq!(posted(&gw, 4).await, before - 300 + 500);
}

/// A kill -9 while members redeem rewards: after the restart every redemption acknowledged
/// before the kill has its voucher issued, every reward burn in the journal has exactly one
/// voucher, and none is left pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_redemption_keeps_its_voucher_across_a_kill_9() {
    let fresh = common::Fresh::new();
    let (mut child, creds) = fresh.start().await;
    let base = fresh.base.clone();
    let http = reqwest::Client::new();
    let op = |method: reqwest::Method, path: String, body: Option<Value>| {
        let mut r = http
            .request(method, format!("{base}{path}"))
            .bearer_auth(&creds["OPERATOR_TOKEN"]);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send()
    };
    for m in 1..=20u64 {
        common::signed_earn(
            &http,
            &base,
            &creds,
            &format!("K-{m}"),
            &format!("FF{m:06}"),
            "100000",
        )
        .await;
    }
    let r = op(reqwest::Method::POST, "/admin/v1/rewards".into(), Some(json!({"reason": "kill test",
        "spec": {"names": [{"language": "en", "text": "Lounge pass"}], "partner_id": 1, "points": 100}})))
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let reward = r.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
    // Redemptions in flight, one after another per member, 20 members at once; kill -9 after
    // some have been acknowledged.
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(u64, String)>::new()));
    let mut tasks = Vec::new();
    for m in 1..=20u64 {
        let (http, base, token, acked) = (
            http.clone(),
            base.clone(),
            creds["OPERATOR_TOKEN"].clone(),
            acknowledged.clone(),
        );
        tasks.push(tokio::spawn(async move {
            for i in 0..200 {
                let Ok(r) = http
                    .post(format!(
                        "{base}/admin/v1/members/{m}/rewards/{reward}/redemptions"
                    ))
                    .bearer_auth(&token)
                    .json(&json!({"reference": format!("K-{m}-{i}")}))
                    .send()
                    .await
                else {
                    return;
                };
                if r.status() != 201 {
                    return;
                }
                let code = r.json::<Value>().await.unwrap()["code"]
                    .as_str()
                    .unwrap()
                    .to_string();
                acked.lock().unwrap().push((m, code));
            }
        }));
    }
    let start = std::time::Instant::now();
    while acknowledged.lock().unwrap().len() < 100 {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "redemptions too slow"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acknowledged.lock().unwrap().clone();
    let (mut child, _) = fresh.start().await;
    let get_json = |path: String| {
        let request = op(reqwest::Method::GET, path, None);
        async move { request.await.unwrap().json::<Value>().await.unwrap() }
    };
    let mut issued = 0;
    for m in 1..=20u64 {
        let vouchers = get_json(format!("/admin/v1/members/{m}/vouchers")).await;
        let vouchers = vouchers.as_array().expect("vouchers");
        let statement = get_json(format!("/admin/v1/members/{m}/statement?limit=1000")).await;
        let burns = statement["entries"]
            .as_array()
            .expect("lines")
            .iter()
            .filter(|l| l["kind"] == "reward")
            .count();
        let (issued_now, pending): (Vec<&Value>, Vec<&Value>) =
            vouchers.iter().partition(|v| v["status"] == "issued");
        assert_eq!(
            issued_now.len(),
            burns,
            "member {m}: one voucher per reward burn"
        );
        // The one in flight at the kill, if its burn never committed: never acknowledged, and
        // a retry with its reference completes it.
        assert!(pending.len() <= 1, "member {m}: {pending:?}");
        for p in &pending {
            assert!(
                !acked.iter().any(|(_, c)| p["code"] == *c),
                "acknowledged yet pending: {p}"
            );
            assert_eq!(p["status"], "pending");
        }
        for (_, code) in acked.iter().filter(|(a, _)| *a == m) {
            assert!(
                vouchers.iter().any(|v| &v["code"] == code),
                "member {m}: acknowledged voucher {code} lost"
            );
        }
        issued += issued_now.len();
    }
    eprintln!(
        "{issued} vouchers issued, {} acknowledged before the kill",
        acked.len()
    );
    assert!(
        acked.len() >= 100 && issued >= acked.len(),
        "{issued} issued, {} acknowledged",
        acked.len()
    );
    child.start_kill().ok();
}
