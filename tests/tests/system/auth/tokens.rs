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
    let with = |changes: Value| {
        let mut claims = claims.clone();
        claims.as_object_mut().unwrap().extend(changes.as_object().unwrap().clone());
        claims
    };

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
