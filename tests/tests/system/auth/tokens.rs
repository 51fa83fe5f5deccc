//! Tokens a service must refuse, and key rotation.

use ates_tests::Role;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use ates_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, TestSystem};

fn part(token: &str, index: usize) -> Value {
    let segment = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
}

/// `claims` with `changes` written over them.
fn changed(claims: &Value, changes: Value) -> Value {
    let mut claims = claims.clone();
    claims.as_object_mut().unwrap().extend(changes.as_object().unwrap().clone());
    claims
}

fn encode_part(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// auth's active private key and kid, read from its database.
async fn auth_key(sys: &TestSystem) -> (String, EncodingKey) {
    let (kid, der): (String, Vec<u8>) =
        sqlx::query_as("SELECT kid, private_key FROM signing_keys WHERE retired_at IS NULL")
            .fetch_one(&sys.system.auth.backbone.pool)
            .await
            .unwrap();
    (kid, EncodingKey::from_ed_der(&der))
}

fn sign(kid: &str, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    encode(&header, claims, key).unwrap()
}

async fn me(sys: &TestSystem, token: &str) -> ates_tests::Reply {
    sys.call(Method::GET, "/api/auth/me", Some(token), None).await
}

#[tokio::test]
async fn forged_and_stale_tokens_are_refused() {
    let sys = TestSystem::start().await;
    let (worker_id, email) = sys.new_account(Role::Worker).await;
    let (genuine, _) = sys.tokens(&email, ates_tests::PASSWORD).await;
    assert_eq!(me(&sys, &genuine).await.status, StatusCode::OK);
    let claims = part(&genuine, 1);
    let header = part(&genuine, 0);
    let signature = genuine.rsplit('.').next().unwrap();
    let (kid, key) = auth_key(&sys).await;
    let now = chrono::Utc::now().timestamp();
    let with = |changes: Value| changed(&claims, changes);

    let tampered =
        format!("{}.{}.{signature}", encode_part(&header), encode_part(&with(json!({ "role": "admin" }))));
    let alg_none = format!(
        "{}.{}.",
        encode_part(&json!({ "alg": "none", "typ": "JWT", "kid": kid })),
        encode_part(&claims)
    );
    let jwks = sys.call(Method::GET, "/.well-known/jwks.json", None, None).await;
    let x = URL_SAFE_NO_PAD.decode(jwks.body["keys"][0]["x"].as_str().unwrap()).unwrap();
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some(kid.clone());
    let confused = encode(&hs_header, &claims, &EncodingKey::from_secret(&x)).unwrap();
    let expired = sign(&kid, &key, &with(json!({ "iat": now - 3600, "nbf": now - 3600, "exp": now - 600 })));
    let not_yet = sign(&kid, &key, &with(json!({ "nbf": now + 600, "exp": now + 1200 })));
    let wrong_issuer = sign(&kid, &key, &with(json!({ "iss": "someone-else" })));
    let wrong_audience = sign(&kid, &key, &with(json!({ "aud": "another-app" })));
    let unknown_kid = sign("made-up-kid", &key, &claims);
    let foreign = {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let foreign = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]).to_pkcs8_der().unwrap();
        sign(&kid, &EncodingKey::from_ed_der(foreign.as_bytes()), &claims)
    };
    let no_issuer = sign(&kid, &key, &{
        let mut c = claims.clone();
        c.as_object_mut().unwrap().remove("iss");
        c
    });

    for (name, token, expected) in [
        ("tampered claims", tampered, "signature is invalid"),
        ("alg none", alg_none, "not valid"),
        ("HS256 with the public key", confused, "not accepted"),
        ("expired", expired, "expired"),
        ("not valid yet", not_yet, "expired"),
        ("wrong issuer", wrong_issuer, "not issued by aTES auth"),
        ("wrong audience", wrong_audience, "not issued by aTES auth"),
        ("unknown kid", unknown_kid, "unknown key"),
        ("foreign key", foreign, "signature is invalid"),
        ("missing iss", no_issuer, "not valid"),
        ("garbage", "not.a.jwt".to_owned(), "not valid"),
    ] {
        let reply = me(&sys, &token).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{name}: {reply:?}");
        assert!(reply.detail().contains(expected), "{name}: {:?}", reply.detail());
    }
    let reply = me(&sys, &sign(&kid, &key, &claims)).await;
    assert_eq!(reply.status, StatusCode::OK, "the same claims, properly signed, pass");
    assert_eq!(reply.body["account_id"], worker_id.to_string());
    sys.finish().await;
}

#[tokio::test]
async fn a_token_accepted_before_is_refused_once_it_expires() {
    let sys = TestSystem::start().await;
    let worker = sys.popug(Role::Worker).await;
    sys.known_to_task_tracker(&[&worker]).await;
    let (kid, key) = auth_key(&sys).await;
    let now = chrono::Utc::now().timestamp();
    // Good for two more seconds, with the leeway.
    let leeway = i64::try_from(ates_tokens::LEEWAY_SECS).unwrap();
    let times = json!({ "iat": now - 60, "nbf": now - 60, "exp": now - leeway + 2 });
    let token = sign(&kid, &key, &changed(&part(&worker.token, 1), times));
    for path in ["/api/auth/me", "/api/tasks", "/api/accounting/me"] {
        sys.get(path, &token).await.expect(StatusCode::OK);
    }

    tokio::time::sleep(std::time::Duration::from_secs(4)).await;

    for path in ["/api/auth/me", "/api/tasks", "/api/accounting/me"] {
        let reply = sys.call(Method::GET, path, Some(&token), None).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path}: {reply:?}");
        assert!(reply.detail().contains("expired"), "{path}: {}", reply.detail());
    }
    sys.finish().await;
}

#[tokio::test]
async fn a_rotated_key_stays_published_until_its_tokens_expire() {
    let sys = TestSystem::start().await;
    let (before, _) = sys.tokens(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let old_kid = part(&before, 0)["kid"].as_str().unwrap().to_owned();

    let rotated = sys.call(Method::POST, "/api/auth/keys/rotate", Some(&before), None).await;

    assert_eq!(rotated.status, StatusCode::OK, "{rotated:?}");
    let new_kid = rotated.body["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);
    let (after, _) = sys.tokens(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(part(&after, 0)["kid"], new_kid, "new tokens use the new key");
    let jwks = sys.call(Method::GET, "/.well-known/jwks.json", None, None).await;
    let kids: Vec<&str> =
        jwks.body["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids, [new_kid.as_str(), old_kid.as_str()]);
    for key in jwks.body["keys"].as_array().unwrap() {
        assert_eq!(
            (key["kty"].as_str(), key["crv"].as_str(), key["alg"].as_str()),
            (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
        );
    }
    let old = me(&sys, &before).await;
    assert_eq!(old.status, StatusCode::OK, "tokens of the old key still work: {old:?}");
    assert_eq!(me(&sys, &after).await.status, StatusCode::OK);
    sys.finish().await;
}

#[tokio::test]
async fn tokens_claiming_a_long_life_or_a_future_issue_time_are_refused_even_when_signed() {
    let sys = TestSystem::start().await;
    let (worker_id, email) = sys.new_account(Role::Worker).await;
    let (genuine, _) = sys.tokens(&email, ates_tests::PASSWORD).await;
    let (kid, key) = auth_key(&sys).await;
    let now = chrono::Utc::now().timestamp();
    let with = |iat: i64, exp: i64| {
        let mut claims = part(&genuine, 1);
        claims["iat"] = json!(iat);
        claims["nbf"] = json!(iat.min(now));
        claims["exp"] = json!(exp);
        claims["sub"] = json!(worker_id);
        sign(&kid, &key, &claims)
    };
    let fine = me(&sys, &with(now, now + 15 * 60)).await;
    assert_eq!(fine.status, StatusCode::OK, "15 minutes is allowed: {fine:?}");
    let long = me(&sys, &with(now, now + 24 * 3600)).await;
    assert_eq!(long.status, StatusCode::UNAUTHORIZED);
    assert!(long.detail().contains("longer than 15 minutes"), "{}", long.detail());
    let future = me(&sys, &with(now + 600, now + 900)).await;
    assert_eq!(future.status, StatusCode::UNAUTHORIZED);
    assert!(future.detail().contains("future"), "{}", future.detail());
    for path in ["/api/tasks", "/api/accounting/me"] {
        let reply = sys.call(Method::GET, path, Some(&with(now, now + 24 * 3600)), None).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path} refuses it too");
    }
    sys.finish().await;
}

#[tokio::test]
async fn a_retired_key_leaves_the_jwks_at_once_and_every_service_refuses_its_tokens_within_the_ttl() {
    let sys =
        TestSystem::start_configured(|config| config.tokens.jwks_ttl = std::time::Duration::from_secs(1))
            .await;
    let worker = sys.popug(Role::Worker).await;
    let admin = sys.admin_token().await;
    let kid = part(&worker.token, 0)["kid"].as_str().unwrap().to_owned();
    for path in ["/api/auth/me", "/api/tasks", "/api/accounting/me"] {
        sys.get(path, &worker.token).await.expect(StatusCode::OK);
    }

    let by_worker =
        sys.call(Method::POST, &format!("/api/auth/keys/{kid}/retire"), Some(&worker.token), None).await;
    assert_eq!(by_worker.status, StatusCode::FORBIDDEN);
    let unknown = sys.call(Method::POST, "/api/auth/keys/no-such-kid/retire", Some(&admin), None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let retired = sys.call(Method::POST, &format!("/api/auth/keys/{kid}/retire"), Some(&admin), None).await;
    assert_eq!(retired.status, StatusCode::OK, "{retired:?}");
    assert_ne!(retired.body["kid"], kid, "a new key signs from now on");

    let jwks = sys.call(Method::GET, "/.well-known/jwks.json", None, None).await;
    let kids: Vec<&str> =
        jwks.body["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert!(!kids.contains(&kid.as_str()), "unpublished at once: {kids:?}");
    for path in ["/api/auth/me", "/api/tasks", "/api/accounting/me", "/api/analytics/summary"] {
        ates_testkit::eventually(&format!("{path} to refuse the retired key's token"), || async {
            let status = sys.call(Method::GET, path, Some(&worker.token), None).await.status;
            (status == StatusCode::UNAUTHORIZED).then_some(())
        })
        .await;
    }
    let (fresh, _) = sys.tokens(&worker.email, ates_tests::PASSWORD).await;
    sys.get("/api/tasks", &fresh).await.expect(StatusCode::OK);
    sys.finish().await;
}
