//! Calls a real SPA makes, through the production rule set in front of the simulator: own single
//! resources, Outseta's comparison filters and trailing slashes — each allowed for the caller's
//! own data and refused for anyone else's.

mod support;

use serde_json::Value;
use support::client::{bearer, get, send};
use support::demo::{start, user};

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn own_subscription_and_support_case_are_readable_and_nobody_elses() {
    let d = start(None).await;
    let gw = d.gateway_url();
    let alice = bearer(&user(&d, "alice@example.com").token);
    let carol = bearer(&user(&d, "carol@example.com").token);
    let subs = |auth: String| {
        let gw = gw.clone();
        async move {
            let r = get(
                &format!("{gw}/api/v1/billing/subscriptions"),
                &[("authorization", &auth)],
            )
            .await;
            assert_eq!(r.status, 200, "{}", r.text());
            items(&r.json())[0]["Uid"].as_str().unwrap().to_string()
        }
    };
    let (alice_sub, carol_sub) = (subs(alice.clone()).await, subs(carol.clone()).await);
    assert_ne!(alice_sub, carol_sub);

    let own = get(
        &format!("{gw}/api/v1/billing/subscriptions/{alice_sub}"),
        &[("authorization", &alice)],
    )
    .await;
    assert_eq!(own.status, 200, "{}", own.text());
    assert_eq!(own.json()["Uid"], alice_sub.as_str());
    let other = get(
        &format!("{gw}/api/v1/billing/subscriptions/{carol_sub}"),
        &[("authorization", &alice)],
    )
    .await;
    assert_eq!(other.status, 403, "{}", other.text());
    assert!(!other.text().contains(&carol_sub));

    let cases = get(
        &format!("{gw}/api/v1/support/cases"),
        &[("authorization", &alice)],
    )
    .await;
    assert_eq!(cases.status, 200, "{}", cases.text());
    let case = items(&cases.json())[0]["Uid"].as_str().unwrap().to_string();
    let own = get(
        &format!("{gw}/api/v1/support/cases/{case}"),
        &[("authorization", &alice)],
    )
    .await;
    assert_eq!(own.status, 200, "{}", own.text());
    assert_eq!(own.json()["Uid"], case.as_str());
    let other = get(
        &format!("{gw}/api/v1/support/cases/{case}"),
        &[("authorization", &carol)],
    )
    .await;
    assert_eq!(other.status, 403, "{}", other.text());
    assert!(!other.text().contains("Cannot export"));
}

#[tokio::test]
async fn comparison_filters_and_trailing_slashes_work_on_own_data_only() {
    let d = start(None).await;
    let gw = d.gateway_url();
    let alice = user(&d, "alice@example.com");
    let auth = bearer(&alice.token);

    let cheap = get(
        &format!("{gw}/api/v1/billing/plans?MonthlyRate__lt=50"),
        &[],
    )
    .await;
    assert_eq!(cheap.status, 200, "{}", cheap.text());
    let rates: Vec<f64> = items(&cheap.json())
        .iter()
        .filter_map(|p| p["MonthlyRate"].as_f64())
        .collect();
    assert!(
        !rates.is_empty() && rates.iter().all(|r| *r < 50.0),
        "{rates:?}"
    );

    let ending = get(
        &format!("{gw}/api/v1/billing/subscriptions?EndDate__isnull=true&Account.Uid__ne=x"),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(ending.status, 200, "{}", ending.text());
    for s in items(&ending.json()) {
        assert_eq!(s["Account"]["Uid"], alice.user.account_uid.as_str());
    }
    // The seed's one discounted subscription is Globex's: Alice's own list has none.
    let discounted = get(
        &format!("{gw}/api/v1/billing/subscriptions?DiscountCode__isnull=false"),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(discounted.status, 200, "{}", discounted.text());
    assert!(
        items(&discounted.json()).is_empty(),
        "{}",
        discounted.text()
    );
    let carol = bearer(&user(&d, "carol@example.com").token);
    let theirs = get(
        &format!("{gw}/api/v1/billing/subscriptions?DiscountCode__isnull=false&fields=Uid,Amount,DiscountCode"),
        &[("authorization", &carol)],
    )
    .await;
    assert_eq!(theirs.status, 200, "{}", theirs.text());
    let found = items(&theirs.json());
    assert_eq!(found.len(), 1, "{}", theirs.text());
    assert!(found[0]["Amount"].as_f64().is_some() && found[0]["DiscountCode"].is_string());
    let probe = get(
        &format!("{gw}/api/v1/billing/subscriptions?Account.PersonAccount.Person.Email__gte=m"),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(probe.status, 403, "{}", probe.text());

    // The path without its trailing slash first: the slashed one is the same cache entry.
    let bare = get(
        &format!("{gw}/api/v1/crm/people/{}", alice.user.person_uid),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(bare.status, 200, "{}", bare.text());
    let slash = get(
        &format!("{gw}/api/v1/crm/people/{}/", alice.user.person_uid),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(slash.status, 200, "{}", slash.text());
    assert_eq!(slash.json()["Uid"], alice.user.person_uid.as_str());
    let status = slash.header("cache-status").unwrap_or_default();
    assert!(status.contains("; hit"), "{status}");
    let carol = user(&d, "carol@example.com");
    let other = get(
        &format!("{gw}/api/v1/crm/people/{}/", carol.user.person_uid),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(other.status, 403, "{}", other.text());
}

/// SPAs read the profile, change a field and PUT the whole object back: the read-only fields
/// are dropped, the change lands (also under the person's other, cached path), and an unlisted
/// key is still refused.
#[tokio::test]
async fn the_whole_profile_read_can_be_put_back() {
    let d = start(None).await;
    let gw = d.gateway_url();
    let alice = user(&d, "alice@example.com");
    let auth = bearer(&alice.token);
    let url = format!("{gw}/api/v1/profile");
    // The same person under its other path, cached (a hit the second time).
    let person = format!("{gw}/api/v1/crm/people/{}", alice.user.person_uid);
    let _ = get(&person, &[("authorization", &auth)]).await;
    let cached = get(&person, &[("authorization", &auth)]).await;
    assert!(
        cached
            .header("cache-status")
            .unwrap_or_default()
            .contains("hit"),
        "{:?}",
        cached.header("cache-status")
    );
    let read = get(&url, &[("authorization", &auth)]).await;
    assert_eq!(read.status, 200, "{}", read.text());
    let mut profile = read.json();
    profile["FirstName"] = "Zed".into();
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let put = send("PUT", &url, &headers, profile.to_string()).await;
    assert_eq!(put.status, 200, "{}", put.text());
    let again = get(&url, &[("authorization", &auth)]).await;
    assert_eq!(again.json()["FirstName"], "Zed");
    // The write dropped the cached person too: its next read is fresh.
    let fresh = get(&person, &[("authorization", &auth)]).await;
    assert_eq!(fresh.json()["FirstName"], "Zed", "{}", fresh.text());
    assert_eq!(again.json()["Email"], alice.user.email.as_str());

    profile["OptInToEmailList"] = true.into();
    let refused = send("PUT", &url, &headers, profile.to_string()).await;
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert!(refused.text().contains("OptInToEmailList"));
}

/// The simulator's count of `route` answered with `status`.
async fn sim_count(d: &outseta_gateway::demo::Demo, route: &str, status: &str) -> u64 {
    get(&format!("{}/__sim/stats", d.simulator), &[])
        .await
        .json()["requests"][route][status]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test]
async fn a_reply_reaches_only_the_callers_own_case() {
    const REPLY: &str = "POST /api/v1/support/cases/{uid}/clientresponse/{comment}";
    let d = start(None).await;
    let gw = d.gateway_url();
    let alice = bearer(&user(&d, "alice@example.com").token);
    let carol = bearer(&user(&d, "carol@example.com").token);
    let cases = get(
        &format!("{gw}/api/v1/support/cases"),
        &[("authorization", &alice)],
    )
    .await;
    assert_eq!(cases.status, 200, "{}", cases.text());
    let case = items(&cases.json())[0]["Uid"].as_str().unwrap().to_string();
    let read_case = || {
        let (gw, alice, case) = (gw.clone(), alice.clone(), case.clone());
        async move {
            let r = get(
                &format!("{gw}/api/v1/support/cases/{case}"),
                &[("authorization", &alice)],
            )
            .await;
            assert_eq!(r.status, 200, "{}", r.text());
            r.json()
        }
    };
    let before = read_case().await;
    let reply = |auth: String, target: String| {
        let gw = gw.clone();
        async move {
            send(
                "POST",
                &format!("{gw}/api/v1/support/cases/{target}"),
                &[("authorization", &auth)],
                "",
            )
            .await
        }
    };

    // Someone else's case: refused after the precheck, and nothing is posted.
    let other = reply(carol.clone(), format!("{case}/clientresponse/hijack")).await;
    assert_eq!(other.status, 403, "{}", other.text());
    assert!(other.text().contains("precheck"), "{}", other.text());
    assert_eq!(sim_count(&d, REPLY, "200").await, 0);
    // A case that does not exist: Outseta's 404 from the precheck, nothing posted.
    let missing = reply(alice.clone(), "NoSuchCs/clientresponse/hello".into()).await;
    assert_eq!(missing.status, 404, "{}", missing.text());
    // A query is not part of a reply.
    let query = reply(
        alice.clone(),
        format!("{case}/clientresponse/hi?FromPerson=x"),
    )
    .await;
    assert_eq!(query.status, 403, "{}", query.text());
    assert_eq!(
        sim_count(&d, REPLY, "200").await + sim_count(&d, REPLY, "404").await,
        0
    );

    // The caller's own case: posted once, and the case now carries the reply.
    let own = reply(
        alice.clone(),
        format!("{case}/clientresponse/thanks%20a%20lot"),
    )
    .await;
    assert_eq!(own.status, 200, "{}", own.text());
    assert_eq!(own.json()["Uid"], case.as_str());
    assert_eq!(sim_count(&d, REPLY, "200").await, 1);
    // (the rule reads the case with `fields=*,…`, where references show as null)
    let after = read_case().await;
    assert_ne!(after["Updated"], before["Updated"], "{after}");
}
