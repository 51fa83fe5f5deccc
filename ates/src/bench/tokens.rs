//! Token verification rate on one core, and sign-in latency through HTTP.

use std::time::{Duration, Instant};

use ates_auth::AuthService;
use ates_schemas::events::Role;
use ates_tokens::{Claims, KeySource, Keyring, TokenSettings, Verifier, public_jwk};
use clap::Args;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use futures::future::BoxFuture;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use uuid::Uuid;

use super::{grouped, machine, per_second};

#[derive(Args)]
pub struct TokensArgs {
    /// Distinct tokens to verify.
    #[arg(long, default_value_t = 20_000)]
    tokens: usize,
    /// Sign-ins to time.
    #[arg(long, default_value_t = 100)]
    logins: usize,
}

/// A fixed key set.
struct Static(JwkSet);

impl KeySource for Static {
    fn fetch(&self) -> BoxFuture<'_, Result<JwkSet, String>> {
        let set = self.0.clone();
        Box::pin(async move { Ok(set) })
    }
}

pub async fn run(args: TokensArgs) -> anyhow::Result<()> {
    println!("aTES token benchmark, {}", chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"));
    println!("machine: {}\n", machine::describe());
    let rate =
        std::thread::spawn(move || verification_rate(args.tokens)).join().expect("the benchmark thread")?;
    println!("{:<44} {:>10} tokens/s", "verify (EdDSA, distinct tokens, one core)", grouped(rate));
    let (p50, p99) = login_latency(args.logins).await?;
    println!(
        "{:<44} {:>10.1?} p50, {:.1?} p99 ({} sign-ins)",
        "sign-in latency (argon2id, HTTP)", p50, p99, args.logins
    );
    Ok(())
}

/// Verifies `count` distinct tokens on a single-threaded runtime: one core.
fn verification_rate(count: usize) -> anyhow::Result<u64> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let signing = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
        let key = EncodingKey::from_ed_der(signing.to_pkcs8_der()?.as_bytes());
        let jwks = JwkSet { keys: vec![public_jwk("bench", &signing.verifying_key().to_bytes())] };
        let settings = TokenSettings { issuer: "ates-auth".into(), audience: "ates".into() };
        let verifier = Verifier::new(
            Keyring::new(Static(jwks), Duration::from_secs(1), Duration::from_secs(120)),
            &settings,
        );
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some("bench".into());
        let now = chrono::Utc::now();
        let tokens = (0..count)
            .map(|_| {
                let claims = Claims {
                    sub: Uuid::new_v4(),
                    role: Role::Worker,
                    iss: settings.issuer.clone(),
                    aud: settings.audience.clone(),
                    iat: now.timestamp(),
                    nbf: now.timestamp(),
                    exp: now.timestamp() + 900,
                    jti: Uuid::new_v4(),
                    iat_ms: now.timestamp_millis(),
                };
                jsonwebtoken::encode(&header, &claims, &key)
            })
            .collect::<Result<Vec<_>, _>>()?;
        verifier.verify(&tokens[0]).await?; // fetch the key set
        let started = Instant::now();
        for token in &tokens {
            verifier.verify(token).await?;
        }
        Ok(per_second(count, started.elapsed()))
    })
}

/// Times sign-ins of one account through a real auth service.
async fn login_latency(count: usize) -> anyhow::Result<(Duration, Duration)> {
    let servers = super::Servers::start().await?;
    let service = AuthService::build(&servers.system_config("http://127.0.0.1:1")?.auth()?).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/api/auth/login", listener.local_addr()?);
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn(ates_web::serve(listener, service.app(), shutdown.clone()));
    let client = reqwest::Client::new();
    let body = serde_json::json!({ "email": super::BENCH_ADMIN.0, "password": super::BENCH_ADMIN.1 });
    let mut latencies = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        let response = client.post(&url).json(&body).send().await?;
        anyhow::ensure!(response.status().is_success(), "sign-in failed: {}", response.status());
        latencies.push(started.elapsed());
    }
    shutdown.cancel();
    latencies.sort();
    Ok((percentile(&latencies, 50), percentile(&latencies, 99)))
}

/// The `p`th percentile of sorted samples (nearest rank).
pub fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}
