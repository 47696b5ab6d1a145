//! Member profiles over HTTP: validation with the field named, each reader's view, consent per
//! channel, and the audit log of reads and changes.

mod common;

use common::Gw;
use serde_json::json;

#[tokio::test]
async fn profiles_are_validated_shown_by_role_and_every_read_and_change_is_logged() {
    let gw = Gw::start().await;
    // Demo member 7 is linked at every demo partner.
    let m = gw.earn_miles(7, "PR-1", "100").await.body["member_balance_after"].clone();
    assert!(m.is_i64(), "member 7 exists");
    let id = gw.op("GET", "/admin/v1/members/7", None).await.body["member_id"].clone();
    assert_eq!(id, 7);

    for (body, field) in [
        (json!({"birth_date": "2999-01-01"}), "birth_date"),
        (json!({"birth_date": "1990-02-30"}), "birth_date"),
        (json!({"phone": "+0123456789"}), "phone"),
        (json!({"email": "sara@example"}), "email"),
    ] {
        let r = gw
            .op("PUT", "/admin/v1/members/7/profile", Some(body))
            .await;
        assert_eq!(
            (r.status.as_u16(), r.problem()),
            (422, "profile-invalid"),
            "{:?}",
            r.body
        );
        assert!(
            r.body["detail"].as_str().unwrap().starts_with(field),
            "{:?}",
            r.body
        );
    }
    let bad_shape = gw
        .op(
            "PUT",
            "/admin/v1/members/7/profile",
            Some(json!({"nickname": "x"})),
        )
        .await;
    assert_eq!(bad_shape.status, 400);
    let unknown = gw
        .op(
            "PUT",
            "/admin/v1/members/99999999/profile",
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(unknown.status, 404);

    let profile = json!({"name": "Sara Ahmadi", "birth_date": "1990-03-21", "gender": "female",
        "email": "sara@example.ir", "phone": "+989121234567", "language": "fa",
        "city": "Tehran", "postcode": "1983963113",
        "enrolment": {"partner": 2, "branch": "station-7", "channel": "till"}});
    let put = gw
        .op("PUT", "/admin/v1/members/7/profile", Some(profile))
        .await;
    assert_eq!(put.status, 200, "{:?}", put.body);
    let c = gw
        .op(
            "PUT",
            "/admin/v1/members/7/consent/sms",
            Some(json!({"granted": true, "source": "partner/2 till"})),
        )
        .await;
    assert_eq!(c.status, 200, "{:?}", c.body);
    assert_eq!(c.body["consent"]["sms"]["granted"], true);
    assert_eq!(c.body["consent"]["sms"]["source"], "partner/2 till");

    let all = gw.op("GET", "/admin/v1/members/7/profile", None).await;
    assert_eq!(all.body["phone"], "+989121234567");
    assert_eq!(
        all.body["consent"]["sms"]["granted"], true,
        "consent is kept"
    );
    let finance = gw
        .bearer(
            &gw.cred("FINANCE_TOKEN"),
            "GET",
            "/admin/v1/members/7/profile",
            None,
        )
        .await;
    assert_eq!(finance.status, 200);
    assert_eq!(finance.body["city"], "Tehran");
    assert!(finance.body.get("name").is_none() && finance.body.get("phone").is_none());
    let denied = gw
        .bearer(
            &gw.cred("FINANCE_TOKEN"),
            "PUT",
            "/admin/v1/members/7/profile",
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(denied.status, 403);

    // FuelCo (partner 2), where the member enrolled, sees its enrolment; the airline does not.
    let fuel = gw
        .partner(2, "GET", "/v1/members/FC000007/profile", None)
        .await;
    assert_eq!(fuel.status, 200, "{:?}", fuel.body);
    assert_eq!(fuel.body["name"], "Sara Ahmadi");
    assert_eq!(fuel.body["enrolment"]["branch"], "station-7");
    assert!(fuel.body.get("birth_date").is_none() && fuel.body.get("email").is_none());
    let air = gw
        .partner(1, "GET", "/v1/members/FF000007/profile", None)
        .await;
    assert_eq!(air.body["enrolment"], json!({}));
    assert_eq!(air.body["consent"]["sms"]["granted"], true);
    let nobody = gw
        .partner(1, "GET", "/v1/members/FF999999/profile", None)
        .await;
    assert_eq!(nobody.status, 404);

    // The log: the update with its fields, the consent, and each read with who read.
    let log = gw
        .op("GET", "/admin/v1/members/7/profile/audit", None)
        .await;
    let entries: Vec<(String, String, Vec<String>)> = log
        .body
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| {
            (
                e["who"].as_str().unwrap().to_string(),
                e["action"].as_str().unwrap().to_string(),
                e["fields"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect();
    let actions: Vec<(&str, &str)> = entries
        .iter()
        .map(|(w, a, _)| (w.as_str(), a.as_str()))
        .collect();
    assert_eq!(
        actions,
        vec![
            ("demo-operator", "update"),
            ("demo-operator", "consent"),
            ("demo-operator", "read"),
            ("demo-finance", "read"),
            ("partner/2", "read"),
            ("partner/1", "read"),
        ],
        "{:?}",
        log.body
    );
    assert_eq!(
        entries[0].2,
        [
            "name",
            "birth_date",
            "gender",
            "email",
            "phone",
            "language",
            "city",
            "postcode",
            "enrolment"
        ]
    );
    assert_eq!(entries[1].2, ["sms"]);
}
