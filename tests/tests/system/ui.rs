//! The web UI in headless Chromium, driven through WebDriver, for the path a new team takes:
//! the admin creates a worker, the worker creates and completes a task and sees the money,
//! the admin sees analytics. Screenshots land in `artifacts/ui/`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ates_testkit::eventually;
use ates_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, Role, TestSystem};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

/// Chromium under chromedriver, closed on drop.
struct Browser {
    client: Option<Client>,
    driver: Child,
    shots: PathBuf,
    _profile: tempfile::TempDir,
}

fn binary(setting: &str, default: &str) -> String {
    std::env::var(setting).unwrap_or_else(|_| default.to_owned())
}

impl Browser {
    async fn start() -> Self {
        let port = ates_devservers::free_port().unwrap();
        let driver = Command::new(binary("ATES_CHROMEDRIVER", "chromedriver"))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (scripts/install-deps --browser installs it)");
        ates_testkit::eventually("chromedriver to listen", || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(|_| ())
        })
        .await;
        let profile = tempfile::tempdir().unwrap();
        let options = json!({
            "binary": binary("ATES_CHROMIUM", "/usr/bin/chromium"),
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-dev-shm-usage", "--disable-component-update", "--no-first-run",
                "--window-size=1280,900", format!("--user-data-dir={}", profile.path().display()),
            ],
        });
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session");
        let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../artifacts/ui");
        std::fs::create_dir_all(&shots).unwrap();
        Browser { client: Some(client), driver, shots, _profile: profile }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("the session is open")
    }

    async fn goto(&self, url: &str) {
        self.client().goto(url).await.unwrap();
    }

    /// Ends the session (Chromium exits).
    async fn close(mut self) {
        if let Some(client) = self.client.take() {
            client.close().await.unwrap();
        }
    }

    async fn shot(&self, name: &str) {
        let png = self.client().screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        self.client()
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css} never appeared: {e}"))
    }

    /// Waits until `css` is shown and enabled, so it takes typing and clicks. The screens are all
    /// in the page, hidden but one: the sign-in form is there while a sign-out is still under way.
    async fn wait_for_usable(&self, css: &str) -> fantoccini::elements::Element {
        let usable = async |element: &fantoccini::elements::Element| {
            let shown =
                element.is_displayed().await.unwrap_or(false) && element.is_enabled().await.unwrap_or(false);
            shown.then(|| element.clone())
        };
        self.poll(css, Duration::from_secs(20), "became visible and enabled", usable).await
    }

    /// Waits until the text of `css` satisfies `check`, and returns it.
    async fn wait_for_text(&self, css: &str, check: impl Fn(&str) -> bool) -> String {
        let text =
            async |element: &fantoccini::elements::Element| element.text().await.ok().filter(|t| check(t));
        self.poll(css, Duration::from_secs(30), "showed the expected text", text).await
    }

    /// Looks for `css` every 100 ms until `found` makes something of it, for at most `within`;
    /// fails saying what it never did.
    async fn poll<T>(
        &self,
        css: &str,
        within: Duration,
        never: &str,
        found: impl AsyncFn(&fantoccini::elements::Element) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Ok(element) = self.client().find(Locator::Css(css)).await
                && let Some(done) = found(&element).await
            {
                return done;
            }
            assert!(tokio::time::Instant::now() < deadline, "{css} never {never}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn fill(&self, css: &str, text: &str) {
        let input = self.wait_for_usable(css).await;
        input.clear().await.unwrap();
        input.send_keys(text).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.wait_for_usable(css).await.click().await.unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
    }

    async fn sign_in(&self, email: &str, password: &str) {
        self.fill("#login-email", email).await;
        self.fill("#login-password", password).await;
        self.click("#login-submit").await;
        self.wait_for_text("#whoami", |t| !t.is_empty()).await;
    }

    async fn sign_out(&self) {
        self.click("#logout").await;
        self.wait_for_usable("#login-email").await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[tokio::test]
async fn an_admin_a_worker_and_their_money_through_the_web_ui() {
    let sys = TestSystem::start().await;
    let browser = Browser::start().await;
    browser.goto(&sys.url).await;

    browser.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    browser.shot("01-admin-signed-in").await;
    browser.click("a[data-view=accounts]").await;
    browser.wait_for("#accounts-table").await;
    let email = "popug@ates.test";
    browser.fill("#account-email", email).await;
    browser.fill("#account-name", "Popug Worker").await;
    browser.fill("#account-password", PASSWORD).await;
    browser
        .client()
        .execute("document.querySelector('#account-role').value = 'worker'", vec![])
        .await
        .unwrap();
    browser.click("#account-create").await;
    browser.wait_for_text("#accounts-table", |t| t.contains(email)).await;
    browser.shot("02-worker-created").await;
    browser.sign_out().await;

    browser.sign_in(email, PASSWORD).await;
    sys.settled().await; // the task tracker has heard of the worker
    browser.fill("#task-title", "Feed the birds").await;
    browser.fill("#task-jira", "POP-1").await;
    browser.click("#task-create").await;
    browser.wait_for_text("#tasks-table", |t| t.contains("Feed the birds")).await;
    browser.shot("03-task-created").await;
    browser.click("#tasks-table button.task-complete").await;
    browser.wait_for_text("#tasks-table .task-status", |t| t.trim() == "done").await;
    browser.shot("04-task-completed").await;
    sys.settled().await; // accounting has posted the fee and the reward

    browser.click("a[data-view=accounting]").await;
    let me = sys.get("/api/accounting/me", &sys.tokens(email, PASSWORD).await.0).await;
    let cents = me.body["balance"].as_i64().unwrap();
    assert_ne!(cents, 0, "the fee and the reward moved the balance");
    let expected =
        format!("{}${}.{:02}", if cents < 0 { "-" } else { "" }, cents.abs() / 100, cents.abs() % 100);
    browser.wait_for_text("#my-balance", |t| t.contains(&expected)).await;
    browser.wait_for_text("#my-transactions", |t| t.contains("Feed the birds")).await;
    browser.shot("05-worker-balance").await;
    browser.sign_out().await;

    browser.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    sys.settled().await; // analytics has the transactions
    browser.click("a[data-view=analytics]").await;
    browser.wait_for_text("#analytics-earnings", |t| t.contains('$')).await;
    browser.wait_for_text("#analytics-top", |t| t.contains("Feed the birds")).await;
    browser.shot("06-admin-analytics").await;
    browser.click("a[data-view=accounting]").await;
    browser.wait_for("#earnings-chart svg").await;
    browser.shot("07-admin-accounting").await;

    // The admin sets the worker's password; the worker then changes it to one of their own.
    browser.click("a[data-view=accounts]").await;
    browser.wait_for_text("#set-password-account", |t| t.contains(email)).await;
    let choose = format!(
        "const s = document.querySelector('#set-password-account'); \
         s.value = [...s.options].find((o) => o.textContent === '{email}').value"
    );
    browser.client().execute(&choose, vec![]).await.unwrap();
    browser.fill("#set-password-new", "set-by-the-admin-1").await;
    browser.click("#set-password-submit").await;
    browser.wait_for_text("#set-password-notice", |t| t.contains(email)).await;
    browser.shot("08-admin-set-password").await;
    browser.sign_out().await;
    assert_eq!(
        sys.login(email, PASSWORD).await.status,
        reqwest::StatusCode::UNAUTHORIZED,
        "the old password is gone"
    );

    browser.sign_in(email, "set-by-the-admin-1").await;
    browser.click("a[data-view=password]").await;
    browser.fill("#password-current", "set-by-the-admin-1").await;
    browser.fill("#password-new", "chosen-by-the-worker-1").await;
    browser.click("#password-submit").await;
    // Every session ended, this one's too: the sign-in form comes back (visible text only).
    browser.wait_for_text("#signin", |t| t.contains("Sign in")).await;
    browser.wait_for_text("#error-text", |t| t.contains("password was changed")).await;
    browser.sign_in(email, "chosen-by-the-worker-1").await;
    browser.shot("09-worker-changed-password").await;
    browser.close().await;
    sys.finish().await;
}

/// An admin sees that a consumer parked a good event it could not apply (a broken trigger in
/// analytics' database), fixes the cause and re-drives the event from the operations view.
#[tokio::test]
async fn an_admin_re_drives_a_parked_event_from_the_operations_view() {
    let sys = TestSystem::start_configured(|config| {
        config.backbone.delivery.max_deliveries = 2;
        config.backbone.delivery.retry_initial = Duration::from_millis(100);
    })
    .await;
    let (worker, manager) = (sys.popug(Role::Worker).await, sys.popug(Role::Manager).await);
    sys.known_to_task_tracker(&[&worker, &manager]).await;
    sys.settled().await;
    let analytics = &sys.system.analytics.backbone.pool;
    sqlx::raw_sql(
        "CREATE FUNCTION broken_dashboard() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'the dashboard is broken'; END $$;
         CREATE TRIGGER broken_dashboard BEFORE INSERT OR UPDATE ON tasks
         FOR EACH ROW EXECUTE FUNCTION broken_dashboard();",
    )
    .execute(analytics)
    .await
    .unwrap();
    let body = json!({ "title": "Count the seeds" });
    sys.post("/api/tasks", &manager.token, body).await.expect(reqwest::StatusCode::CREATED);
    let tracker = &sys.system.task_tracker.backbone;
    eventually("analytics to park tasks.added", || async {
        (tracker.operations().await.parked.len() == 1).then_some(())
    })
    .await;

    let browser = Browser::start().await;
    browser.goto(&sys.url).await;
    browser.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    browser.click("a[data-view=operations]").await;
    browser.wait_for_text("#ops-parked-total", |t| t == "1").await;
    let analytics_row = "#ops-consumers tr[data-consumer=analytics-tasks]";
    browser.wait_for_text(analytics_row, |t| t.ends_with('1')).await;
    let parked = browser.wait_for_text("#ops-parked", |t| t.contains("tasks.added")).await;
    assert!(parked.contains("handler_failed") && parked.contains("the dashboard is broken"), "{parked}");
    browser.wait_for_text("#ops-last-closed", |t| t != "–").await;
    browser.wait_for_text("#ops-outbox", |t| t.contains("task_tracker")).await;
    browser.shot("10-admin-operations-parked").await;

    // The cause is fixed: the re-drive applies the event.
    sqlx::raw_sql("DROP TRIGGER broken_dashboard ON tasks").execute(analytics).await.unwrap();
    browser.click("#ops-parked button.redrive").await;
    browser.wait_for_text("#ops-notice", |t| t.contains("was published again on tasks.added.v")).await;
    browser.wait_for_text("#ops-parked-total", |t| t == "0").await;
    browser.wait_for_text("#ops-parked", |t| t.contains("Nothing is parked.")).await;
    browser.shot("11-admin-operations-redriven").await;
    browser.sign_out().await;

    browser.sign_in(&worker.email, PASSWORD).await;
    let link = browser.client().find(Locator::Css("a[data-view=operations]")).await.unwrap();
    assert!(!link.is_displayed().await.unwrap(), "only admins see the operations view");
    browser.close().await;

    let held = "SELECT count(*) FROM tasks WHERE title = 'Count the seeds'";
    eventually("analytics to hold the task", || async {
        let count: i64 = sqlx::query_scalar(held).fetch_one(analytics).await.unwrap();
        (count == 1).then_some(())
    })
    .await;
    sys.finish().await;
}
