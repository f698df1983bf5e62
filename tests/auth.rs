//! Token verification end to end: every attack token is refused with the right challenge,
//! key rotation, JWKS hygiene.

mod support;

use std::sync::Arc;
use std::time::Duration;

use outseta_gateway::auth::jwks::Jwks;
use outseta_gateway::auth::verify::Verifier;
use serde_json::json;
use support::client::{bearer, get};
use support::gateway::{AUDIENCE, Gateway, ISSUER, RULES};
use support::keys::{self, SigningKey};
use support::mock::MockOutseta;

fn own_path(sub: &str) -> String {
    format!("/api/v1/crm/people/{sub}")
}

#[tokio::test]
async fn every_attack_token_is_401_with_the_right_challenge() {
    support::trace_init();
    let key = SigningKey::generate("k1");
    let other = SigningKey::generate("k1"); // same kid, different key
    let mock = MockOutseta::start(&[&key]).await;
    let gw = Gateway::start(&mock, RULES).await;
    let good = keys::claims(ISSUER, AUDIENCE, "u1", "acct-1");

    let mut expired = good.clone();
    expired["exp"] = json!(keys::now() - 3600);
    expired["nbf"] = json!(keys::now() - 7200);
    let mut future = good.clone();
    future["nbf"] = json!(keys::now() + 3600);
    let mut wrong_iss = good.clone();
    wrong_iss["iss"] = json!("https://test.outseta.com");
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("evil.outseta.com");
    let mut no_iss = good.clone();
    no_iss.as_object_mut().unwrap().remove("iss");
    let mut other_sub = good.clone();
    other_sub["sub"] = json!("u2");
    let valid = key.token(&good);

    let attacks: Vec<(&str, String, &str)> = vec![
        ("expired", key.token(&expired), "token has expired"),
        ("future nbf", key.token(&future), "token is not valid yet"),
        (
            "wrong iss",
            key.token(&wrong_iss),
            "token issuer is not accepted",
        ),
        (
            "missing iss",
            key.token(&no_iss),
            "token lacks a required claim",
        ),
        (
            "wrong aud",
            key.token(&wrong_aud),
            "token audience is not accepted",
        ),
        (
            "alg none",
            keys::alg_none(&good),
            "token is not a well-formed JWT",
        ),
        (
            "HS256 with the RSA public key",
            keys::hs256_with(&key.public_der(), "k1", &good),
            "token algorithm is not RS256",
        ),
        (
            "tampered payload",
            keys::tamper(&valid, &other_sub),
            "token signature is invalid",
        ),
        (
            "signed by another key with the same kid",
            other.token(&good),
            "token signature is invalid",
        ),
        (
            "garbage",
            "not.a.jwt".to_string(),
            "token is not a well-formed JWT",
        ),
        (
            "garbage 2",
            "abc".to_string(),
            "token is not a well-formed JWT",
        ),
    ];
    for (name, token, description) in &attacks {
        let r = get(
            &gw.url(&own_path("u1")),
            &[("authorization", &bearer(token))],
        )
        .await;
        assert_eq!(r.status, 401, "{name}: {}", r.text());
        assert_eq!(r.code(), "invalid_token", "{name}");
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/problem+json")
        );
        assert_eq!(
            r.header("www-authenticate").unwrap(),
            format!("Bearer error=\"invalid_token\", error_description=\"{description}\""),
            "{name}"
        );
        // (Short garbage like "abc" could appear by chance inside the random request id.)
        assert!(
            token.len() < 16 || !r.text().contains(token.as_str()),
            "{name}: the token must not be echoed"
        );
    }
    // Unknown kid: a fresh, signed token from a key the JWKS does not have.
    let stranger = SigningKey::generate("k-unknown");
    let r = get(
        &gw.url(&own_path("u1")),
        &[("authorization", &bearer(&stranger.token(&good)))],
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate").unwrap(),
        "Bearer error=\"invalid_token\", error_description=\"token signing key is unknown\""
    );

    // Missing token.
    let r = get(&gw.url(&own_path("u1")), &[]).await;
    assert_eq!((r.status, r.code().as_str()), (401, "missing_token"));
    assert_eq!(r.header("www-authenticate").as_deref(), Some("Bearer"));
    let r = get(&gw.url(&own_path("u1")), &[("authorization", "Basic dTpw")]).await;
    assert_eq!((r.status, r.code().as_str()), (401, "missing_token"));

    // None of them reached Outseta.
    assert!(mock.seen().is_empty(), "{:?}", mock.seen());
    gw.shutdown().await;
}

#[tokio::test]
async fn bearer_scheme_any_case_and_x5t_fallback() {
    let key = SigningKey::generate("k1");
    let mock = MockOutseta::start(&[&key]).await;
    let gw = Gateway::start(&mock, RULES).await;
    let token = key.token(&keys::claims(ISSUER, AUDIENCE, "u1", "acct-1"));
    for scheme in ["bearer", "Bearer", "BEARER"] {
        let r = get(
            &gw.url(&own_path("u1")),
            &[("authorization", &format!("{scheme} {token}"))],
        )
        .await;
        assert_eq!(r.status, 200, "{scheme}: {}", r.text());
    }
    // Older Outseta tokens carry only x5t.
    let x5t_only = key.sign(
        &json!({"typ": "JWT", "alg": "RS256", "x5t": "k1"}),
        &keys::claims(ISSUER, AUDIENCE, "u1", "acct-1"),
    );
    let r = get(
        &gw.url(&own_path("u1")),
        &[("authorization", &bearer(&x5t_only))],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    gw.shutdown().await;
}

#[tokio::test]
async fn key_rotation_is_accepted_after_one_refetch() {
    let old = SigningKey::generate("old");
    let mock = MockOutseta::start(&[&old]).await;
    let gw = Gateway::start(&mock, RULES).await;
    let before = mock.jwks_fetches();
    let new = SigningKey::generate("new");
    mock.set_keys(&[&old, &new]);
    let token = new.token(&keys::claims(ISSUER, AUDIENCE, "u1", "acct-1"));
    let r = get(
        &gw.url(&own_path("u1")),
        &[("authorization", &bearer(&token))],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(mock.jwks_fetches(), before + 1);
    // And again: no more fetches.
    let r = get(
        &gw.url(&own_path("u1")),
        &[("authorization", &bearer(&token))],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(mock.jwks_fetches(), before + 1);
    gw.shutdown().await;
}

#[tokio::test]
async fn forged_kids_cost_at_most_one_fetch_per_cooldown() {
    let key = SigningKey::generate("k1");
    let mock = MockOutseta::start(&[&key]).await;
    let gw = Gateway::start(&mock, RULES).await;
    let before = mock.jwks_fetches();
    let claims = keys::claims(ISSUER, AUDIENCE, "u1", "acct-1");
    let tokens: Vec<String> = (0..200)
        .map(|i| {
            key.sign(
                &json!({"typ": "JWT", "alg": "RS256", "kid": format!("forged-{i}")}),
                &claims,
            )
        })
        .collect();
    let url = gw.url(&own_path("u1"));
    let replies = futures_util::future::join_all(tokens.iter().map(|t| {
        let url = url.clone();
        let h = bearer(t);
        async move { get(&url, &[("authorization", &h)]).await.status }
    }))
    .await;
    assert!(replies.iter().all(|s| *s == 401));
    assert!(
        mock.jwks_fetches() - before <= 1,
        "fetches: {}",
        mock.jwks_fetches() - before
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn jwks_down_after_start_keeps_serving() {
    let key = SigningKey::generate("k1");
    let mock = MockOutseta::start(&[&key]).await;
    let gw = Gateway::start(&mock, RULES).await;
    mock.set_jwks_down(true);
    // A forged kid triggers a refetch, which fails: the last good set must be kept.
    let forged = key.sign(
        &json!({"typ": "JWT", "alg": "RS256", "kid": "nope"}),
        &keys::claims(ISSUER, AUDIENCE, "u1", "acct-1"),
    );
    let r = get(
        &gw.url(&own_path("u1")),
        &[("authorization", &bearer(&forged))],
    )
    .await;
    assert_eq!(r.status, 401);
    let token = key.token(&keys::claims(ISSUER, AUDIENCE, "u2", "acct-2"));
    let r = get(
        &gw.url(&own_path("u2")),
        &[("authorization", &bearer(&token))],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let ready = get(&format!("http://{}/readyz", gw.admin), &[]).await;
    assert_eq!(ready.status, 200);
    gw.shutdown().await;
}

#[tokio::test]
async fn not_ready_until_the_jwks_is_fetched() {
    let key = SigningKey::generate("k1");
    let mock = MockOutseta::start(&[&key]).await;
    mock.set_jwks_down(true);
    let config =
        outseta_gateway::Config::from_toml(&support::gateway::config_text(&mock, RULES), "t")
            .unwrap();
    let opts = outseta_gateway::Options {
        api: Some(outseta_gateway::config::secrets::ApiCredential::new("k", "s").unwrap()),
        extra_roots: vec![],
    };
    let bound = outseta_gateway::bind(config, opts).await.unwrap();
    let admin = bound.admin_addr();
    let addr = bound.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(bound.serve(async move {
        let _ = stopped.await;
    }));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = get(&format!("http://{admin}/readyz"), &[]).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["jwks"], "pending");
    // A request that needs a token cannot be judged yet: 502, not a misleading 401.
    let token = key.token(&keys::claims(ISSUER, AUDIENCE, "u1", "acct-1"));
    let r = get(
        &format!("http://{addr}/api/v1/crm/people/u1"),
        &[("authorization", &bearer(&token))],
    )
    .await;
    assert_eq!((r.status, r.code().as_str()), (502, "upstream_unavailable"));
    mock.set_jwks_down(false);
    let mut ok = false;
    for _ in 0..100 {
        if get(&format!("http://{admin}/readyz"), &[]).await.status == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "ready once the JWKS answers");
    let _ = stop.send(());
    task.await.unwrap();
}

/// A verifier on the mock's JWKS with no keys yet: its first caller fetches them (a real
/// request to the mock).
fn keyless_verifier(mock: &MockOutseta) -> Arc<Verifier> {
    let client = outseta_gateway::upstream::client(&[], Duration::from_secs(2)).unwrap();
    let jwks = Arc::new(Jwks::new(
        mock.jwks_url().parse().unwrap(),
        client,
        Duration::from_secs(2),
    ));
    Arc::new(Verifier::new(
        jwks,
        ISSUER,
        AUDIENCE,
        Duration::from_secs(30),
        Duration::from_secs(600),
    ))
}

/// A burst of concurrent requests carrying one fresh token costs one RS256 check, also when
/// the key must first be fetched (every caller would otherwise wait for the fetch and then
/// check the signature on its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_sightings_of_a_token_share_one_signature_check() {
    support::trace_init();
    let key = SigningKey::generate("k1");
    let mock = MockOutseta::start(&[&key]).await;
    let verifier = keyless_verifier(&mock);
    let token = Arc::new(key.token(&keys::claims(ISSUER, AUDIENCE, "u1", "acct-1")));
    let calls: Vec<_> = (0..64)
        .map(|_| {
            let (v, t) = (verifier.clone(), token.clone());
            tokio::spawn(async move { v.verify(&t).await })
        })
        .collect();
    for call in calls {
        let principal = call.await.unwrap().expect("the token is valid");
        assert_eq!(principal.sub().map(|s| &**s), Some("u1"));
    }
    assert_eq!(
        verifier.signature_checks(),
        1,
        "one RS256 check for 64 callers"
    );
    assert_eq!(mock.jwks_fetches(), 1);

    // A bad signature is shared the same way, then remembered.
    let bad = Arc::new(keys::tamper(
        &token,
        &keys::claims(ISSUER, AUDIENCE, "u2", "acct-1"),
    ));
    let calls: Vec<_> = (0..64)
        .map(|_| {
            let (v, t) = (verifier.clone(), bad.clone());
            tokio::spawn(async move { v.verify(&t).await })
        })
        .collect();
    for call in calls {
        assert!(call.await.unwrap().is_err());
    }
    assert_eq!(verifier.signature_checks(), 2);
}

/// Callers with different tokens for a key not fetched yet all wait for the one JWKS fetch and
/// are accepted; none is refused because the fetch it should wait for is still in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_arriving_during_a_key_fetch_wait_for_it() {
    support::trace_init();
    let key = SigningKey::generate("k1");
    let mock = MockOutseta::start(&[&key]).await;
    let verifier = keyless_verifier(&mock);
    let calls: Vec<_> = (0..32)
        .map(|i| {
            let v = verifier.clone();
            let t = key.token(&keys::claims(ISSUER, AUDIENCE, &format!("u{i}"), "acct-1"));
            tokio::spawn(async move { v.verify(&t).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().expect("accepted after the one fetch");
    }
    assert_eq!(mock.jwks_fetches(), 1);
    assert_eq!(
        verifier.signature_checks(),
        32,
        "distinct tokens are each checked"
    );
}
