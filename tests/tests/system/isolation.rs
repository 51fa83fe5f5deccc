//! Each service is locked in: on the bus only known users connect and each publishes only its
//! own domain; in the database each service's role uses only its own schema.

use std::time::Duration;

use ates_tests::TestSystem;

/// Messages in `stream`, read as the operator.
async fn messages(sys: &TestSystem, stream: &str) -> u64 {
    let js = sys.jetstream().await;
    js.get_stream(stream).await.unwrap().get_info().await.unwrap().state.messages
}

#[tokio::test]
async fn a_client_without_credentials_is_refused() {
    let sys = TestSystem::start().await;
    let anonymous = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .connect(sys.nats.url())
        .await;
    let error = anonymous.expect_err("an anonymous client is refused").to_string();
    assert!(error.to_lowercase().contains("authoriz"), "{error}");

    let wrong = async_nats::ConnectOptions::with_user_and_password("task-tracker".into(), "guess".into())
        .connection_timeout(Duration::from_secs(2))
        .connect(sys.nats.url())
        .await;
    assert!(wrong.is_err(), "a wrong password is refused");
    sys.finish().await;
}

#[tokio::test]
async fn the_task_tracker_cannot_publish_accounting_events_nor_manage_other_streams() {
    let sys = TestSystem::start().await;
    let before = messages(&sys, "ACCOUNTING").await;

    let tracker = sys.nats_as(&ates_task_tracker::BUS).connect("impostor").await.unwrap();
    let js = ates_messaging::nats::jetstream(tracker.clone(), Duration::from_secs(2));
    let forged = serde_json::json!({ "event_name": "accounting.transaction_applied" });
    let published = match js
        .publish("accounting.transaction_applied.v1", serde_json::to_vec(&forged).unwrap().into())
        .await
    {
        Ok(ack) => ack.await.is_ok(),
        Err(_) => false,
    };
    assert!(!published, "the task tracker's publish to accounting.> is not acknowledged");

    let answered = |subject: &'static str| {
        let tracker = tracker.clone();
        async move {
            let request = tracker.request(subject, "".into());
            matches!(tokio::time::timeout(Duration::from_secs(2), request).await, Ok(Ok(_)))
        }
    };
    assert!(
        !answered("$JS.API.STREAM.DELETE.ACCOUNTING").await,
        "the task tracker may not delete another service's stream"
    );
    assert!(!answered("$JS.API.STREAM.PURGE.TASKS").await, "nor purge its own: only the operator may");
    assert!(
        !answered("$JS.API.CONSUMER.DELETE.TASKS.accounting-tasks").await,
        "nor touch another service's consumer of its stream"
    );

    assert_eq!(messages(&sys, "ACCOUNTING").await, before, "nothing reached the ACCOUNTING stream");
    sys.finish().await;
}

/// The SQLSTATE of what `statement` fails with on `pool`.
async fn refused(pool: &sqlx::PgPool, statement: &str) -> String {
    let error =
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned())).execute(pool).await.expect_err(statement);
    error.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned()).unwrap_or_default()
}

#[tokio::test]
async fn each_service_role_uses_only_its_own_schema() {
    let sys = TestSystem::start().await;
    let analytics = &sys.system.analytics.backbone.pool;
    let tracker = &sys.system.task_tracker.backbone.pool;
    const DENIED: &str = "42501";

    assert_eq!(refused(analytics, "SELECT * FROM auth.signing_keys").await, DENIED);
    assert_eq!(refused(analytics, "SELECT * FROM auth.accounts").await, DENIED);
    assert_eq!(refused(tracker, "INSERT INTO accounting.company_entries DEFAULT VALUES").await, DENIED);
    assert_eq!(refused(tracker, "CREATE SCHEMA elsewhere").await, DENIED);
    assert_eq!(refused(tracker, "CREATE ROLE intruder").await, DENIED);
    // Its own schema is its own: it reads and migrates it.
    let tasks: i64 =
        sqlx::query_scalar("SELECT count(*) FROM task_tracker.tasks").fetch_one(tracker).await.unwrap();
    assert_eq!(tasks, 0);
    let role: String = sqlx::query_scalar("SELECT current_user::text").fetch_one(tracker).await.unwrap();
    assert!(role.ends_with("_task_tracker"), "{role}");
    sys.finish().await;
}

#[tokio::test]
async fn each_producer_may_audit_its_own_stream_with_its_own_identity() {
    let sys = TestSystem::start().await;
    sys.new_account(ates_tests::Role::Worker).await;
    for backbone in
        [&sys.system.auth.backbone, &sys.system.task_tracker.backbone, &sys.system.accounting.backbone]
    {
        let relay = backbone.relay();
        let settings = relay.audit_settings().expect("a producer audits its stream").clone();
        let auditor = ates_messaging::outbox::Auditor::new(
            backbone.pool.clone(),
            backbone.js.clone(),
            backbone.schema,
            settings,
        );
        let report = auditor.audit().await.unwrap_or_else(|e| panic!("{} audits: {e}", backbone.schema));
        assert_eq!(report.lost, 0, "{}", backbone.schema);
    }
    sys.finish().await;
}

#[tokio::test]
async fn systems_provisioned_on_one_server_at_once_all_get_their_roles() {
    // Several systems starting together on one PostgreSQL server (the test suite does this all
    // the time) each rewrite the server-wide grants of `postgres` and `template1`.
    let databases = futures::future::join_all((0..6).map(|_| ates_testkit::database())).await;
    let systems: Vec<_> = databases
        .iter()
        .map(|db| (ates::credentials::Credentials::generate(&db.name), db.url.clone()))
        .collect();
    for round in 0..3 {
        let provisioned = futures::future::join_all(
            systems.iter().map(|(credentials, url)| credentials.provision_roles(url)),
        )
        .await;
        for outcome in provisioned {
            outcome
                .unwrap_or_else(|e| panic!("round {round}: a provisioning failed beside the others: {e:#}"));
        }
    }
    for (credentials, url) in &systems {
        let schema = ates::credentials::SERVICES[0].schema;
        let as_role =
            ates_messaging::db::connect(&credentials.database_url(url, schema).unwrap(), schema, 1).unwrap();
        let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&as_role).await.expect("the role connects");
        assert_eq!(one, 1);
        as_role.close().await;
    }
}

#[tokio::test]
async fn schemas_an_earlier_version_made_as_the_superuser_are_taken_over_by_the_roles() {
    // As before roles existed: every service migrates its schema as the superuser.
    let sys = TestSystem::start_configured(|config| config.database_roles = None).await;
    sys.settled().await;
    let url = sys.config.backbone.database_url().unwrap().to_owned();
    let credentials = ates::credentials::Credentials::generate(&format!(
        "r{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ));
    credentials.provision_roles(&url).await.unwrap();
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    for service in ates::credentials::SERVICES {
        let role = credentials.role(service.schema);
        let foreign: Vec<String> = sqlx::query_scalar(
            "SELECT relname::text FROM pg_class
             WHERE relnamespace = $1::regnamespace AND relkind IN ('r', 'p', 'v', 'm') AND relowner <> $2::regrole
             UNION ALL SELECT proname::text FROM pg_proc WHERE pronamespace = $1::regnamespace AND proowner <> $2::regrole",
        )
        .bind(service.schema)
        .bind(&role)
        .fetch_all(&admin)
        .await
        .unwrap();
        assert!(foreign.is_empty(), "{role} owns everything in {}: {foreign:?}", service.schema);
        // And it works there: the analytics role reads its partitioned projection.
        let as_role = ates_messaging::db::connect(
            &credentials.database_url(&url, service.schema).unwrap(),
            service.schema,
            1,
        )
        .unwrap();
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(&as_role).await.unwrap();
        assert!(count >= 0);
    }
    admin.close().await;
    sys.finish().await;
}
