//! The dashboard in a real browser (headless Chromium, driven through
//! chromedriver with fantoccini) against a real control plane, a running
//! `c8s controller` and the real S3 server: a run appears in the list
//! without a reload, its DAG is drawn, its steps change state live, a failed
//! step's log is shown masked, the archived log is shown once the pod is
//! gone, and a hostile value (a `<script>` in the run's trigger) is shown as
//! text and never runs. Screenshots of each page are saved under
//! `target/dashboard-screenshots/`.
//!
//! Needs `scripts/control-plane/up.sh`, `scripts/s3/up.sh`, and Debian's
//! `chromium` and `chromium-driver` (installed by `scripts/install-tools.sh`);
//! `./ci.sh` runs it in its log-archive step.

mod common;

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use c8s_test_cluster as cluster;
use cluster::s3::{create_bucket, var};
use fantoccini::{Client as Browser, ClientBuilder, Locator};
use kube::Client;
use kube::api::{Api, PostParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::json;

/// A process killed when the test ends; its output goes to a file.
struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `command` in a process group of its own (see `Drop`).
    fn start(mut command: std::process::Command, name: &str) -> Process {
        use std::os::unix::process::CommandExt as _;
        command.process_group(0);
        let log = common::temp_dir().join(format!("{}.log", cluster::unique_name(name)));
        let file = std::fs::File::create(&log).expect("log file");
        let child = command
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        Process { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log has a line containing `marker`; returns it.
    fn line_with(&self, marker: &str) -> String {
        let started = Instant::now();
        loop {
            if let Some(line) = self.log().lines().find(|l| l.contains(marker)) {
                return line.to_owned();
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no {marker:?} in:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // chromedriver's browser runs in its process group: a failing test
        // that never closed its session leaves no browser behind.
        let group = format!("-{}", self.child.id());
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Where the screenshots go: a test artifact, beside the build.
fn screenshots() -> PathBuf {
    let dir = common::workspace().join("target/dashboard-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

async fn screenshot(browser: &Browser, name: &str) {
    let png = browser.screenshot().await.expect("screenshot");
    std::fs::write(screenshots().join(format!("{name}.png")), png).expect("write screenshot");
}

/// Chromium, headless, through chromedriver on a free port.
async fn browser() -> (Process, Browser) {
    let port = free_port();
    let mut command = std::process::Command::new("chromedriver");
    command.arg(format!("--port={port}"));
    let driver = Process::start(command, "chromedriver");
    driver.line_with("started successfully");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,900"]
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let browser = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .unwrap_or_else(|e| panic!("chromedriver session: {e}\n{}", driver.log()));
    (driver, browser)
}

/// Polls `check` (a script returning a value) until it returns `true`.
async fn until(browser: &Browser, what: &str, script: &str, context: &Process) {
    let started = Instant::now();
    loop {
        let value = browser.execute(script, vec![]).await.expect("script runs");
        if value == json!(true) {
            return;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let source = browser.source().await.unwrap_or_default();
            panic!(
                "{what}: not after 120 s\npage:\n{source}\ncontroller:\n{}",
                context.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The `href` of the element `css` selects, read in one script: the live
/// region may be replaced between a WebDriver find and a second call on the
/// element it found (a stale element), never within one script.
async fn link(browser: &Browser, css: &str) -> String {
    let value = browser
        .execute(
            "const a = document.querySelector(arguments[0]); return a ? a.getAttribute('href') : null;",
            vec![json!(css)],
        )
        .await
        .expect("script runs");
    value
        .as_str()
        .unwrap_or_else(|| panic!("no link at {css}"))
        .to_owned()
}

/// Clicks the element `css` selects as a person would. A live update may
/// replace it between the find and the click (a stale element): then it is
/// found again, as a person would find the new one, a few times at most.
async fn click(browser: &Browser, css: &str) {
    for _ in 0..10 {
        let element = browser.find(Locator::Css(css)).await.expect(css);
        match element.click().await {
            Ok(()) => return,
            Err(fantoccini::error::CmdError::Standard(e))
                if e.error == fantoccini::error::ErrorStatus::StaleElementReference =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("click {css}: {e}"),
        }
    }
    panic!("click {css}: replaced by every live update");
}

const TOKEN: &str = "tok-Dash8cF3mQ2wX7zR4vN1pL6k";
const HOSTILE: &str = "<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=1\">";

/// Applies the CRDs `c8s crd` prints (server-side, as `kubectl apply
/// --server-side` would) and waits until the API server serves them: this
/// test never relies on another test having installed the chart first.
async fn install_crds(client: &Client) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Patch, PatchParams};
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    let params = PatchParams::apply("c8s-dashboard-test").force();
    for crd in c8s_controller::crd::crds() {
        let name = crd.metadata.name.clone().expect("a CRD has a name");
        api.patch(&name, &params, &Patch::Apply(&crd))
            .await
            .unwrap_or_else(|e| panic!("apply {name}: {e}"));
        cluster::eventually(Duration::from_secs(60), &format!("{name} established"), || {
            let api = api.clone();
            let name = name.clone();
            async move {
                let crd = api.get(&name).await.ok()?;
                let conditions = crd.status?.conditions?;
                conditions
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
                    .then_some(())
            }
        })
        .await;
    }
}

fn runs(client: &Client, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("c8s.dev", "v1alpha1", "PipelineRun");
    Api::namespaced_with(client.clone(), ns, &ApiResource::from_gvk(&gvk))
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane, s3 and chromium"]
async fn the_dashboard_shows_runs_live_their_dag_and_masked_logs_in_a_real_browser() {
    let client = cluster::client().await;
    install_crds(&client).await;
    let ns = cluster::namespace(&client, "dashboard").await;
    cluster::claims(&client, &ns, &["c8s-artifacts"]).await;
    cluster::secret(&client, &ns, "deploy", &[("token", TOKEN)]).await;
    cluster::script(
        &client,
        &ns,
        &format!(
            "containers:
  - {{ step: build, container: main, runSeconds: 12, logs: [\"building\", \"built\"] }}
  - {{ step: test, container: main, runSeconds: 1, exitCode: 4, logs: [\"token {TOKEN} refused\", \"tests failed\"] }}
"
        ),
    )
    .await;
    let bucket = cluster::unique_name("c8s-dash-logs");
    create_bucket(&bucket);
    let endpoint = var("C8S_TEST_S3_ENDPOINT");
    let credentials = cluster::s3::credentials_env();
    let archive_flags = [
        "--log-archive-bucket",
        &bucket,
        "--log-archive-endpoint",
        &endpoint,
    ];
    let c8s = |args: &[&str]| {
        let mut command = common::command();
        command
            .env("KUBECONFIG", cluster::kubeconfig())
            .envs(credentials.iter().map(|(k, v)| (*k, v.as_str())))
            .args(args)
            .args(archive_flags);
        command
    };
    let controller = Process::start(
        c8s(&[
            "controller",
            "--namespace",
            &ns,
            "--identity",
            "dashboard-test",
            "--metrics-address=127.0.0.1:0",
        ]),
        "controller",
    );
    let dashboard = Process::start(
        c8s(&["dashboard", "--address", "127.0.0.1:0", "--namespace", &ns]),
        "dashboard",
    );
    let line = dashboard.line_with("dashboard on http://");
    let base = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .map(|address| format!("http://{address}"))
        .expect("the dashboard's address");
    let (_driver, browser) = browser().await;

    // The runs page, open before the run exists: it appears without a reload.
    browser
        .goto(&format!("{base}/"))
        .await
        .expect("open the runs page");
    assert_eq!(browser.title().await.expect("title"), "Runs · c8s");
    browser
        .execute("window.__loaded = 1; return true;", vec![])
        .await
        .expect("marker");
    let run: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "c8s.dev/v1alpha1",
        "kind": "PipelineRun",
        "metadata": { "name": "shop-1" },
        "spec": {
            "pipeline": {
                "name": "shop",
                "repository": "https://github.com/octo-org/shop.git",
                "steps": [
                    { "name": "build", "image": "busybox:1.37", "commands": ["make"] },
                    { "name": "test", "image": "busybox:1.37", "dependsOn": ["build"], "commands": ["make test"],
                      "secrets": [{ "secretRef": "deploy", "key": "token", "envVar": "TOKEN" }] }
                ]
            },
            "branch": "main",
            "commit": "0123abcd0123abcd0123abcd0123abcd0123abcd",
            "build": 1,
            "triggeredBy": HOSTILE
        }
    }))
    .expect("run");
    runs(&client, &ns)
        .create(&PostParams::default(), &run)
        .await
        .expect("created");
    let row = format!("document.querySelector('tr[data-run=\"{ns}/shop-1\"]') !== null");
    until(
        &browser,
        "the run in the list",
        &format!("return {row} && window.__loaded === 1;"),
        &controller,
    )
    .await;
    // The hostile trigger is text on the page and never ran.
    until(
        &browser,
        "the trigger shown as text",
        &format!(
            "return document.body.innerText.includes({:?}) && window.__pwned === undefined;",
            HOSTILE
        ),
        &controller,
    )
    .await;
    screenshot(&browser, "runs").await;

    // The run page: its DAG, its steps changing state live.
    browser
        .goto(&format!("{base}/runs/{ns}/shop-1"))
        .await
        .expect("open the run page");
    browser
        .execute("window.__loaded = 1; return true;", vec![])
        .await
        .expect("marker");
    until(
        &browser,
        "the DAG with both steps and the edge",
        "return document.querySelectorAll('#dag g.node').length === 2 && document.querySelectorAll('#dag line.edge').length === 1;",
        &controller,
    )
    .await;
    until(
        &browser,
        "build running",
        "return [...document.querySelectorAll('#dag g.node')].some(n => n.querySelector('text').textContent === 'build' && n.dataset.state === 'Running');",
        &controller,
    )
    .await;
    screenshot(&browser, "run-running").await;
    // The running step's log, streamed into its page (in a second tab, so the
    // run page is never reloaded).
    let build_log = link(&browser, "tr[data-step*='-build-'] a").await;
    let run_tab = browser.window().await.expect("this tab");
    let tab = browser.new_window(true).await.expect("a new tab");
    browser.switch_to_window(tab.handle).await.expect("switch");
    browser
        .goto(&format!("{base}{build_log}"))
        .await
        .expect("open the live log");
    until(
        &browser,
        "the running step's log streamed",
        "return document.getElementById('log').textContent.includes('building');",
        &controller,
    )
    .await;
    screenshot(&browser, "log-live").await;
    browser.close_window().await.expect("close the tab");
    browser.switch_to_window(run_tab).await.expect("back to the run");
    until(
        &browser,
        "build succeeded and test failed, live, without a reload",
        "return window.__loaded === 1 && [...document.querySelectorAll('tr[data-step]')].map(r => r.innerText).join('|').includes('Succeeded') \
         && [...document.querySelectorAll('#dag g.node')].some(n => n.querySelector('text').textContent === 'test' && n.dataset.state === 'Failed');",
        &controller,
    )
    .await;
    until(
        &browser,
        "the run failed",
        "return document.getElementById('phase').innerText.includes('Failed');",
        &controller,
    )
    .await;
    assert_eq!(
        browser
            .execute("return window.__pwned === undefined;", vec![])
            .await
            .expect("script"),
        json!(true)
    );
    screenshot(&browser, "run").await;

    // The failed step's log, from its pod, masked.
    click(&browser, "tr[data-step*='-test-'] a").await;
    until(
        &browser,
        "the log page",
        "return document.title.startsWith('Log of');",
        &controller,
    )
    .await;
    let log = browser
        .find(Locator::Id("log"))
        .await
        .expect("log")
        .text()
        .await
        .expect("text");
    assert!(log.contains("token *** refused"), "{log}");
    let source = browser.source().await.expect("source");
    assert!(!source.contains(TOKEN), "the token reached the page: {source}");
    screenshot(&browser, "log").await;
    let log_url = browser.current_url().await.expect("url").to_string();

    // Once the pods are gone, the archived log (the controller stored it).
    cluster::delete_step_pods(&client, &ns).await;
    browser.goto(&log_url).await.expect("reopen the log");
    let page = browser
        .find(Locator::Css("main"))
        .await
        .expect("main")
        .text()
        .await
        .expect("text");
    assert!(
        page.contains("from the log archive"),
        "{page}\n{}",
        controller.log()
    );
    assert!(page.contains("token *** refused"), "{page}");
    assert!(!browser.source().await.expect("source").contains(TOKEN));
    screenshot(&browser, "log-archived").await;
    browser.close().await.expect("close the browser");
    // The screenshots are real PNGs.
    for name in ["runs", "run", "log", "log-archived"] {
        let png = std::fs::read(screenshots().join(format!("{name}.png"))).expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "{name}");
    }
}

/// The runs page's live updates come from the dashboard's own watch: a change
/// costs no request to the API server (no LIST or GET per change, whatever
/// the number of runs), counted by a proxy in front of the API server.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs control plane"]
async fn live_updates_cost_no_request_per_change() {
    let client = cluster::client().await;
    install_crds(&client).await;
    let ns = cluster::namespace(&client, "dashboard-reads").await;
    let proxy = cluster::proxy::start(
        client.clone(),
        cluster::proxy::Lose {
            method: "NONE",
            path_suffix: "",
            times: 0,
        },
        common::temp_dir().join(format!("{}.kubeconfig", cluster::unique_name("proxy"))),
    )
    .await;
    let mut command = common::command();
    command.env("KUBECONFIG", &proxy.kubeconfig).args([
        "dashboard",
        "--address",
        "127.0.0.1:0",
        "--namespace",
        &ns,
    ]);
    let dashboard = Process::start(command, "dashboard");
    let line = dashboard.line_with("dashboard on http://");
    let address = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("the dashboard's address")
        .to_owned();
    let mut curl = std::process::Command::new("curl");
    curl.args(["-sN", &format!("http://{address}/live")]);
    let events = Process::start(curl, "live-events");
    events.line_with("event: update");
    let before = proxy.requests().len();
    let create = |name: String| {
        serde_json::from_value::<DynamicObject>(json!({
            "apiVersion": "c8s.dev/v1alpha1",
            "kind": "PipelineRun",
            "metadata": { "name": name },
            "spec": { "pipeline": { "name": "shop", "repository": "https://github.com/octo-org/shop.git", "steps": [
                { "name": "build", "image": "busybox:1.37", "commands": ["make"] }
            ] } }
        }))
        .expect("run")
    };
    for n in 0..20 {
        runs(&client, &ns)
            .create(&PostParams::default(), &create(format!("shop-{n}")))
            .await
            .expect("created");
    }
    // Every run reached the page's events.
    events.line_with("shop-19");
    let after: Vec<String> = proxy.requests()[before..].to_vec();
    let reads: Vec<&String> = after
        .iter()
        .filter(|r| r.starts_with("GET ") && !r.contains("watch=true"))
        .collect();
    assert!(
        reads.is_empty(),
        "20 changes cost {} reads:\n{reads:#?}\nall requests: {:#?}",
        reads.len(),
        proxy.requests()
    );
}
