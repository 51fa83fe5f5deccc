use ates_tests::Role;
use reqwest::{Method, StatusCode};
use serde_json::json;

use ates_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, TestSystem};

#[tokio::test]
async fn the_first_admin_signs_in_and_sees_their_account() {
    let sys = TestSystem::start().await;

    let reply = sys.login("  ADMIN@ates.test ", ADMIN_PASSWORD).await;

    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body["token_type"], "Bearer");
    assert_eq!(reply.body["expires_in"], 900);
    let token = reply.body["access_token"].as_str().unwrap();
    let me = sys.call(Method::GET, "/api/auth/me", Some(token), None).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!((me.body["email"].as_str(), me.body["role"].as_str()), (Some(ADMIN_EMAIL), Some("admin")));
    assert_eq!(me.body["active"], true);
    sys.finish().await;
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_answer() {
    let sys = TestSystem::start().await;

    let wrong_password = sys.login(ADMIN_EMAIL, "not-the-password").await;
    let unknown_email = sys.login("nobody@ates.test", "not-the-password").await;

    assert_eq!(wrong_password.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown_email.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_password.detail(), unknown_email.detail());
    sys.finish().await;
}

#[tokio::test]
async fn a_refresh_token_rotates_and_works_once() {
    let sys = TestSystem::start().await;
    let (_, first) = sys.tokens(ADMIN_EMAIL, ADMIN_PASSWORD).await;

    let refreshed =
        sys.call(Method::POST, "/api/auth/refresh", None, Some(json!({ "refresh_token": first }))).await;

    assert_eq!(refreshed.status, StatusCode::OK, "{refreshed:?}");
    let second = refreshed.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first, "a new refresh token every time");
    let access = refreshed.body["access_token"].as_str().unwrap();
    assert_eq!(sys.call(Method::GET, "/api/auth/me", Some(access), None).await.status, StatusCode::OK);
    let third =
        sys.call(Method::POST, "/api/auth/refresh", None, Some(json!({ "refresh_token": second }))).await;
    assert_eq!(third.status, StatusCode::OK, "the rotated token works once too");
    sys.finish().await;
}

#[tokio::test]
async fn reusing_a_refresh_token_revokes_its_whole_family() {
    let sys = TestSystem::start().await;
    let (_, stolen) = sys.tokens(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (_, other_session) = sys.tokens(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let refresh = |token: &str| {
        sys.call(Method::POST, "/api/auth/refresh", None, Some(json!({ "refresh_token": token })))
    };
    let legitimate = refresh(&stolen).await;
    let successor = legitimate.body["refresh_token"].as_str().unwrap().to_owned();

    let reuse = refresh(&stolen).await;

    assert_eq!(reuse.status, StatusCode::UNAUTHORIZED);
    assert!(reuse.detail().contains("already used"), "{reuse:?}");
    let after = refresh(&successor).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED, "the successor was revoked with its family");
    assert_eq!(refresh(&other_session).await.status, StatusCode::OK, "other sessions are untouched");
    sys.finish().await;
}

#[tokio::test]
async fn logout_ends_the_session() {
    let sys = TestSystem::start().await;
    let (_, refresh_token) = sys.tokens(ADMIN_EMAIL, ADMIN_PASSWORD).await;

    let logout = sys
        .call(Method::POST, "/api/auth/logout", None, Some(json!({ "refresh_token": refresh_token })))
        .await;

    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    let refresh = sys
        .call(Method::POST, "/api/auth/refresh", None, Some(json!({ "refresh_token": refresh_token })))
        .await;
    assert_eq!(refresh.status, StatusCode::UNAUTHORIZED);
    let unknown =
        sys.call(Method::POST, "/api/auth/logout", None, Some(json!({ "refresh_token": "nonsense" }))).await;
    assert_eq!(unknown.status, StatusCode::NO_CONTENT, "logging out twice is fine");
    sys.finish().await;
}

#[tokio::test]
async fn brute_force_is_slowed_down_per_account() {
    let sys = TestSystem::start_configured(|config| config.auth.login_attempts_per_account = 3).await;

    for _ in 0..3 {
        assert_eq!(sys.login(ADMIN_EMAIL, "guess").await.status, StatusCode::UNAUTHORIZED);
    }
    let limited = sys.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;

    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS, "{limited:?}");
    let retry_after: u64 = limited.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert!(limited.detail().contains("Too many sign-in attempts"));
    let other = sys.login("someone-else@ates.test", "guess").await;
    assert_eq!(other.status, StatusCode::UNAUTHORIZED, "another account is not limited");
    sys.finish().await;
}

#[tokio::test]
async fn brute_force_is_slowed_down_per_client_address() {
    let sys = TestSystem::start_configured(|config| config.auth.login_attempts_per_address = 4).await;

    for n in 0..4 {
        assert_eq!(sys.login(&format!("user{n}@ates.test"), "guess").await.status, StatusCode::UNAUTHORIZED);
    }

    assert_eq!(sys.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.status, StatusCode::TOO_MANY_REQUESTS);
    sys.finish().await;
}

#[tokio::test]
async fn a_deactivated_account_cannot_sign_in_or_refresh() {
    let sys = TestSystem::start().await;
    let (id, email) = sys.new_account(Role::Worker).await;
    let (_, refresh_token) = sys.tokens(&email, ates_tests::PASSWORD).await;

    let patched = sys.patch_account(&sys.admin_token().await, id, json!({ "active": false })).await;

    assert_eq!(patched.status, StatusCode::OK, "{patched:?}");
    assert_eq!(sys.login(&email, ates_tests::PASSWORD).await.status, StatusCode::UNAUTHORIZED);
    let refresh = sys
        .call(Method::POST, "/api/auth/refresh", None, Some(json!({ "refresh_token": refresh_token })))
        .await;
    assert_eq!(refresh.status, StatusCode::UNAUTHORIZED);
    sys.finish().await;
}

/// Signs in as `email` from `address` (as a trusted proxy on 127.0.0.1 would report it).
async fn login_from(sys: &TestSystem, address: &str, email: &str, password: &str) -> StatusCode {
    let body = json!({ "email": email, "password": password });
    let response = sys
        .http
        .post(format!("{}/api/auth/login", sys.url))
        .header("x-forwarded-for", address)
        .json(&body)
        .send()
        .await
        .unwrap();
    ates_tests::read(response).await.status
}

#[tokio::test]
async fn a_stranger_guessing_cannot_lock_the_admin_out_nor_rotate_past_the_limit() {
    let sys = TestSystem::start_configured(|config| {
        config.auth.login_attempts_per_account = 3;
        config.auth.login_attempts_per_address = 5;
        config.auth.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    for _ in 0..3 {
        assert_eq!(login_from(&sys, "203.0.113.5", ADMIN_EMAIL, "guess").await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(login_from(&sys, "203.0.113.5", ADMIN_EMAIL, "guess").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        login_from(&sys, "198.51.100.7", ADMIN_EMAIL, ADMIN_PASSWORD).await,
        StatusCode::OK,
        "the admin signs in from elsewhere"
    );
    // A spoofed left-most entry changes nothing: the right-most untrusted address is the client.
    for n in 0..5 {
        let spoofed = format!("10.9.9.{n}, 192.0.2.44");
        assert_eq!(
            login_from(&sys, &spoofed, &format!("u{n}@ates.test"), "guess").await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login_from(&sys, "10.9.9.99, 192.0.2.44", "u9@ates.test", "guess").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Successful sign-ins count for nothing.
    for _ in 0..6 {
        assert_eq!(login_from(&sys, "198.51.100.8", ADMIN_EMAIL, ADMIN_PASSWORD).await, StatusCode::OK);
    }
    // IPv6 clients share their /64.
    for n in 0..5 {
        let address = format!("2001:db8:7:7::{n}");
        assert_eq!(
            login_from(&sys, &address, &format!("v{n}@ates.test"), "guess").await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login_from(&sys, "2001:db8:7:7::ff", "w@ates.test", "guess").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    sys.finish().await;
}
