//! `c8s watch`: a Concourse pipeline's resources checked in the cluster and
//! the builds their new versions trigger, as Concourse's scheduler starts
//! them (the rules are pipeline-model's `concourse::triggers`).
//!
//! Each resource some job gets is checked every `check_every` by a pod of
//! its type's image running `/opt/resource/check` (a run of its own, named
//! and cleaned up like every run). What the checks found and what each job's
//! builds ran with is kept in the cluster, in one ConfigMap per pipeline
//! (`c8s-versions-…`, key `history.json`), so a restarted watcher neither
//! misses a version nor starts a build twice. A build is claimed by writing
//! its inputs there first, with the ConfigMap's `resourceVersion` as the
//! precondition: of two watchers that see the same new version, one write
//! succeeds and one build starts. Builds then run exactly as `c8s run`
//! runs a job (`--concourse-job`, the resolved `--version`s, the build
//! number), each as soon as its job's `max_in_flight`, `serial` and
//! `serial_groups` allow (builds run in tasks of their own, beside the
//! checks); a succeeded build's versions, those it got and
//! those its puts made (each put prints its `out` response, marked, last in
//! its log; `c8s run` reads it back), are what the `passed:` of the jobs
//! after it take, and a put's version is a new version of its resource.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use c8s_controller::webhook::concourse::{
    HISTORY_KEY, WEBHOOKS_KEY, check_requests, history_name, token_digest,
};
use c8s_kube::{KubeCluster, RetryPolicy};
use c8s_pipeline_model::Errors;
use c8s_pipeline_model::concourse::node::Report;
use c8s_pipeline_model::concourse::resource::check_plan;
use c8s_pipeline_model::concourse::triggers::{Build, History, check_response, checked_resources, may_start};
use c8s_pipeline_model::concourse::{ConcoursePipeline, Resource};
use clap::Args;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::PostParams;
use kube::runtime::WatchStreamExt;
use tokio::time::Instant;

use crate::run::RunArgs;

/// `c8s watch` flags: the `c8s run` flags, and how long to watch.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The pipeline, and how each build is run (as for `c8s run`).
    #[command(flatten)]
    pub run: RunArgs,
    /// The pipeline's name in the cluster, which keys its version history
    /// (default: the file's name without `.yml`).
    #[arg(long)]
    pub pipeline_name: Option<String>,
    /// Check every resource once, start the builds that triggers (and the
    /// builds their success triggers downstream), then exit.
    #[arg(long)]
    pub once: bool,
    /// Pin a resource to a version (`fly pin-resource`): every get of it
    /// fetches that version until `--unpin` (kept in the history).
    #[arg(long, value_name = "RESOURCE=JSON")]
    pub pin: Vec<String>,
    /// Unpin a resource (`fly unpin-resource`).
    #[arg(long, value_name = "RESOURCE")]
    pub unpin: Vec<String>,
    /// Start a build of this job now (`fly trigger-job`), with its inputs
    /// resolved as for any build, before the builds the checks trigger.
    #[arg(long = "trigger", value_name = "JOB")]
    pub trigger: Vec<String>,
}

/// How often a claim is tried again when another writer got there first.
const CLAIM_TRIES: usize = 10;

/// Runs `c8s watch`: exits 0 when it stopped cleanly (`--once` done, or
/// Ctrl-C between builds), 1 when the pipeline or a flag is invalid or the
/// history cannot be kept (the builds running then are cancelled first). A
/// failing check or build is reported and watched on.
pub fn watch(args: &WatchArgs, report: fn(&str, &Errors) -> String) -> ExitCode {
    let file = args.run.render.file.as_str();
    let refused = [
        (args.run.resume, "--resume"),
        (args.run.in_cluster, "--in-cluster"),
        (args.run.render.run_id.is_some(), "--run-id"),
        (
            args.run.render.concourse.concourse_job.is_some(),
            "--concourse-job",
        ),
        (!args.run.render.concourse.versions.is_empty(), "--version"),
        (args.run.status_file.is_some(), "--status-file"),
    ];
    if let Some((_, flag)) = refused.iter().find(|(given, _)| *given) {
        return fail(&format!(
            "c8s watch picks each build's job, versions and run id itself; {flag} is for c8s run"
        ));
    }
    let pipeline = match std::fs::read_to_string(file)
        .map_err(|e| {
            Errors::from(c8s_pipeline_model::Error::Read {
                file: file.to_owned(),
                reason: c8s_pipeline_model::sidecar::load::read_reason(&e),
            })
        })
        .and_then(|text| crate::concourse::pipeline(file, &text, &args.run.render.concourse))
    {
        Ok(pipeline) => pipeline,
        Err(errors) => {
            let _ = std::io::stderr().write_all(report(file, &errors).as_bytes());
            return ExitCode::from(1);
        }
    };
    let pins = match pins(args, &pipeline) {
        Ok(pins) => pins,
        Err(message) => return fail(&message),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    let connect = match crate::run::seconds("connect-timeout", &args.run.connect_timeout) {
        Ok(connect) => connect,
        Err(message) => return fail(&message),
    };
    runtime.block_on(async {
        let cluster = match crate::run::connect(&args.run, connect).await {
            Ok(cluster) => cluster,
            Err(code) => return code,
        };
        let name = args
            .pipeline_name
            .clone()
            .unwrap_or_else(|| pipeline.name.clone());
        // Ctrl-C or SIGTERM: the build running is cancelled (c8s run's own
        // handling) and no further check or build starts.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let signal = crate::run::interrupted().await;
            say(&format!("{signal}: stopping the watch"));
            let _ = stop.send(true);
        });
        let watcher = Watcher {
            stopped,
            abort: tokio::sync::watch::channel(false).0,
            args,
            report,
            store: Store::new(&cluster, &name),
            cluster: &cluster,
            pipeline: &pipeline,
        };
        let pinned = watcher
            .store
            .update(|history| {
                for resource in &args.unpin {
                    history.pinned.remove(resource);
                }
                history.pinned.extend(pins.clone());
            })
            .await;
        if let Err(message) = pinned {
            return fail(&message);
        }
        match watcher.watch().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => fail(&message),
        }
    })
}

/// `--pin` as resource → canonical JSON, and every `--unpin` and
/// `--trigger` naming what the pipeline has.
fn pins(args: &WatchArgs, pipeline: &ConcoursePipeline) -> Result<BTreeMap<String, String>, String> {
    let resource = |name: &str| {
        if pipeline.resources.iter().any(|r| r.name == name) {
            Ok(())
        } else {
            Err(format!("the pipeline has no resource `{name}`"))
        }
    };
    for name in &args.unpin {
        resource(name).map_err(|e| format!("--unpin {name}: {e}"))?;
    }
    for job in &args.trigger {
        if !pipeline.jobs.iter().any(|j| &j.name == job) {
            return Err(format!("--trigger {job}: the pipeline has no job `{job}`"));
        }
    }
    args.pin
        .iter()
        .map(|pair| {
            let (name, json) = pair
                .split_once('=')
                .ok_or_else(|| format!("--pin {pair:?}: expected RESOURCE=JSON"))?;
            resource(name).map_err(|e| format!("--pin {name}: {e}"))?;
            let version = c8s_pipeline_model::concourse::triggers::canonical(json).ok_or_else(|| {
                format!("--pin {name}: {json:?} is not a JSON object like {{\"ref\":\"abc\"}}")
            })?;
            Ok((name.to_owned(), version))
        })
        .collect()
}

fn fail(message: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "error: {message}");
    ExitCode::from(1)
}

fn say(message: &str) {
    let _ = writeln!(std::io::stderr(), "c8s: {message}");
}

/// One `c8s watch` of one pipeline.
struct Watcher<'a> {
    /// Becomes true at Ctrl-C or SIGTERM.
    stopped: tokio::sync::watch::Receiver<bool>,
    /// Set when the watcher stops on an error: cancels the builds running
    /// (their pods deleted, as at Ctrl-C) before it exits.
    abort: tokio::sync::watch::Sender<bool>,
    args: &'a WatchArgs,
    report: fn(&str, &Errors) -> String,
    store: Store,
    cluster: &'a KubeCluster,
    pipeline: &'a ConcoursePipeline,
}

/// A build that runs now: its job's name, and what it ends with.
type Running = tokio::task::JoinHandle<(Build, Option<crate::run::Outputs>)>;

impl Watcher<'_> {
    /// Checks what is due and starts what that triggers, each build as soon
    /// as its job's limits allow (`max_in_flight`, `serial`,
    /// `serial_groups`: [`may_start`]), until `--once` is done or Ctrl-C;
    /// then waits for the builds running (cancelled by Ctrl-C) to end. On an
    /// error it cannot go on from (the history cannot be read or written),
    /// it cancels the builds running and waits for them, so that no pod is
    /// left behind, before it returns the error.
    async fn watch(&self) -> Result<(), String> {
        let mut running: FuturesUnordered<Running> = FuturesUnordered::new();
        let watched = self.rounds(&mut running).await;
        if let Err(message) = &watched
            && !running.is_empty()
        {
            say(&format!(
                "error: {message}; cancelling the {} build(s) running",
                running.len()
            ));
            let _ = self.abort.send(true);
            while running.next().await.is_some() {}
        }
        watched
    }

    /// [`Watcher::watch`] until it returns; the builds it started are in
    /// `running`.
    async fn rounds(&self, running: &mut FuturesUnordered<Running>) -> Result<(), String> {
        let resources = checked_resources(self.pipeline);
        let mut by_hand = self.args.trigger.clone();
        let mut due = first_due(&resources, Instant::now());
        let mut in_flight: Vec<String> = Vec::new();
        // Never a job twice with the same inputs while builds run, so a
        // busy spell (and a `--once` round) always ends.
        let mut started = BTreeSet::new();
        // Webhooks: the requests counted so far are answered by the first
        // checks; a count that rises later makes its resource due at once.
        let mut answered = self.store.publish_webhooks(self.pipeline).await?;
        let hooked = resources.iter().any(|r| r.webhook_token.is_some());
        let mut requests = if hooked && !self.args.once {
            self.store.requests().boxed()
        } else {
            futures::stream::pending().boxed()
        };
        loop {
            if !self.is_stopped() {
                self.check_due(&resources, &mut due).await?;
                if self.args.once {
                    // One round: every resource is checked once.
                    due.clear();
                }
                let mut waiting = Vec::new();
                for job in std::mem::take(&mut by_hand) {
                    match self.trigger(&job, &in_flight).await? {
                        Triggered::Started(build) => running.push(self.spawn(build, &mut in_flight)),
                        Triggered::Waits => waiting.push(job),
                        Triggered::NoInputs => {}
                    }
                }
                by_hand = waiting;
                while let Some(build) = self.claim(&in_flight, &mut started).await? {
                    started.insert((build.job.clone(), build.versions.clone()));
                    running.push(self.spawn(build, &mut in_flight));
                }
            }
            if running.is_empty() {
                started.clear();
                if self.args.once || self.is_stopped() {
                    return Ok(());
                }
            }
            let next = due.values().min().copied();
            let mut stopped = self.stopped.clone();
            let stopping = self.is_stopped();
            tokio::select! {
                () = sleep_until(next), if !stopping => {}
                _ = stopped.wait_for(|stop| *stop), if !stopping => {}
                Some(counts) = requests.next(), if !stopping => {
                    for resource in &resources {
                        let name = resource.name.as_str();
                        let count = counts.get(name).copied().unwrap_or_default();
                        if count > answered.get(name).copied().unwrap_or_default() {
                            say(&format!("webhook: a check of resource `{name}` was asked for"));
                            due.insert(name, Instant::now());
                            answered.insert(name.to_owned(), count);
                        }
                    }
                }
                Some(ended) = running.next(), if !running.is_empty() => {
                    let (build, outputs) = ended.map_err(|e| format!("a build's task ended: {e}"))?;
                    if let Some(at) = in_flight.iter().position(|job| *job == build.job) {
                        in_flight.remove(at);
                    }
                    if let Some(outputs) = outputs {
                        self.store.update(|history| history.succeeded(&build, &outputs)).await?;
                    }
                }
            }
        }
    }

    /// Checks each resource whose time has come.
    async fn check_due<'r>(
        &self,
        resources: &[&'r Resource],
        due: &mut BTreeMap<&'r str, Instant>,
    ) -> Result<(), String> {
        for resource in resources {
            if self.is_stopped() {
                return Ok(());
            }
            let Some(at) = due.get(resource.name.as_str()) else {
                continue;
            };
            if *at <= Instant::now() {
                self.check(resource).await?;
                // `never`: checked only when a webhook asks.
                match resource.check_every {
                    Some(every) => due.insert(&resource.name, Instant::now() + Duration::from_secs(every)),
                    None => due.remove(resource.name.as_str()),
                };
            }
        }
        Ok(())
    }

    /// Checks `resource` from the newest version known, and keeps what it
    /// found; a check that fails is reported (and tried again when due).
    async fn check(&self, resource: &Resource) -> Result<(), String> {
        let history = self.store.read().await?;
        let from = history.latest(&resource.name).map(str::to_owned);
        let identity =
            c8s_pipeline_model::PlanIdentity::new(&self.pipeline.name, format!("check-{}", resource.name));
        let mut needs = Vec::new();
        let mut report = Report::new(&self.args.run.render.file);
        let Some(plan) = check_plan(self.pipeline, identity, resource, from, &mut needs, &mut report) else {
            let errors = report.finish().err().map(|e| e.to_string()).unwrap_or_default();
            return Err(format!(
                "resource `{}` cannot be checked: {errors}",
                resource.name
            ));
        };
        say(&format!("checking resource `{}`", resource.name));
        let found = crate::run::run_printing(self.cluster, &self.args.run, plan)
            .await
            .and_then(|printed| check_response(&String::from_utf8_lossy(&printed)));
        match found {
            Ok(found) => {
                let name = resource.name.as_str();
                let new = self.store.update(|h| h.add_versions(name, found.clone())).await?;
                say(&format!("resource `{name}`: {new} new version(s)"));
            }
            Err(why) => say(&format!(
                "warning: check of resource `{}` failed: {why}",
                resource.name
            )),
        }
        Ok(())
    }

    /// Claims the next build the versions known trigger whose job may
    /// start now beside the builds `in_flight` (by job), and that did not
    /// start with the same inputs since the watcher was last idle.
    async fn claim(
        &self,
        in_flight: &[String],
        started: &mut BTreeSet<(String, BTreeMap<String, String>)>,
    ) -> Result<Option<Build>, String> {
        let started = &*started;
        self.store
            .update(|history| claim_next(history, self.pipeline, in_flight, started))
            .await
    }

    fn is_stopped(&self) -> bool {
        *self.stopped.borrow()
    }

    /// Starts a build of `job` by hand, whether or not a version is new,
    /// once its limits allow.
    async fn trigger(&self, job: &str, in_flight: &[String]) -> Result<Triggered, String> {
        let Some(job) = self.pipeline.jobs.iter().find(|j| j.name == job) else {
            return Ok(Triggered::NoInputs);
        };
        if !may_start(self.pipeline, &job.name, in_flight) {
            return Ok(Triggered::Waits);
        }
        let claimed = self
            .store
            .update(|history| {
                let build = history.build_of(self.pipeline, job);
                if let Some(build) = &build {
                    history.started(build);
                }
                build
            })
            .await?;
        match claimed {
            Some(build) => Ok(Triggered::Started(build)),
            None => {
                say(&format!(
                    "warning: job `{}`: an input has no version yet",
                    job.name
                ));
                Ok(Triggered::NoInputs)
            }
        }
    }

    /// Runs `build` beside the others, as `c8s run` runs a job (its own
    /// task: a build's run is never held up by a check or another build);
    /// it ends with the versions its puts made if it succeeded.
    fn spawn(&self, build: Build, in_flight: &mut Vec<String>) -> Running {
        let versions: Vec<String> = build.versions.iter().map(|(r, v)| format!("{r} {v}")).collect();
        say(&format!(
            "job `{}` build {}: {}",
            build.job,
            build.number,
            versions.join(", ")
        ));
        in_flight.push(build.job.clone());
        let mut args = self.args.run.clone();
        args.render.build = build.number;
        args.render.concourse.concourse_job = Some(build.job.clone());
        args.render.concourse.versions = build.versions.iter().map(|(r, v)| format!("{r}={v}")).collect();
        let (cluster, report) = (self.cluster.clone(), self.report);
        let stop = Some(self.abort.subscribe());
        tokio::spawn(async move {
            let (code, outputs) = crate::run::run_on(&cluster, &args, report, stop).await;
            (build, (code == ExitCode::SUCCESS).then_some(outputs))
        })
    }
}

/// Claims in `history` the next build the versions known trigger whose job
/// may start beside the builds `in_flight` (by job) and that is not in
/// `started` (job and inputs): records it as started, and returns it.
fn claim_next(
    history: &mut History,
    pipeline: &ConcoursePipeline,
    in_flight: &[String],
    started: &BTreeSet<(String, BTreeMap<String, String>)>,
) -> Option<Build> {
    let build = history.next_builds(pipeline).into_iter().find(|b| {
        !started.contains(&(b.job.clone(), b.versions.clone())) && may_start(pipeline, &b.job, in_flight)
    });
    if let Some(build) = &build {
        history.started(build);
    }
    build
}

/// What a build by hand came to.
enum Triggered {
    /// It runs.
    Started(Build),
    /// Its job's limits hold it back for now.
    Waits,
    /// A job the pipeline lacks, or an input with no version yet.
    NoInputs,
}

/// When each resource is first checked: now, but never a resource checked
/// `never` (it would make every wait end at once, a busy loop).
fn first_due<'r>(resources: &[&'r Resource], now: Instant) -> BTreeMap<&'r str, Instant> {
    resources
        .iter()
        .filter(|r| r.check_every.is_some())
        .map(|r| (r.name.as_str(), now))
        .collect()
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Whether the API server refused a write without acting on it, and may
/// take it later: the statuses every API call of c8s retries
/// ([`c8s_kube::is_transient_status`]) but a timeout (504), after which
/// the write may have been done. A connection that closed without an
/// answer may have been acted on too (made again, a claim that had taken
/// effect would find its build claimed already, and that build would never
/// run), so such a write is not made again.
fn refused_for_now(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if c8s_kube::is_transient_status(status.code) && status.code != 504)
}

/// The tries of one request to the history: as many and as far apart as
/// every API call of c8s ([`RetryPolicy::backoff`], `api_retries`).
struct Tries<'a> {
    policy: &'a RetryPolicy,
    key: &'a str,
    made: u32,
}

impl Tries<'_> {
    /// Waits before the next try; `false` (at once) when every retry is spent.
    async fn wait(&mut self) -> bool {
        if self.made >= self.policy.api_retries {
            return false;
        }
        tokio::time::sleep(self.policy.backoff(self.key, self.made)).await;
        self.made += 1;
        true
    }
}

/// The history of one pipeline, in a ConfigMap of the run's namespace
/// (beside it there, the resources' webhook token digests and the check
/// requests `c8s webhook` counted: `c8s_controller::webhook::concourse`).
struct Store {
    api: Api<ConfigMap>,
    name: String,
    pipeline: String,
    retry: RetryPolicy,
}

impl Store {
    fn new(cluster: &KubeCluster, pipeline: &str) -> Self {
        Self::on(
            Api::namespaced(cluster.client().clone(), cluster.namespace()),
            pipeline,
        )
    }

    fn on(api: Api<ConfigMap>, pipeline: &str) -> Self {
        Self {
            api,
            name: history_name(pipeline),
            pipeline: pipeline.to_owned(),
            retry: RetryPolicy::default(),
        }
    }

    fn tries(&self) -> Tries<'_> {
        Tries {
            policy: &self.retry,
            key: &self.name,
            made: 0,
        }
    }

    /// The ConfigMap as stored (`None`: not yet); a read that fails is
    /// tried again after a wait ([`Tries`]).
    async fn read_map(&self) -> Result<Option<ConfigMap>, String> {
        let mut tries = self.tries();
        loop {
            match self.api.get_opt(&self.name).await {
                Ok(map) => return Ok(map),
                Err(e) if tries.wait().await => {
                    say(&format!(
                        "warning: cannot read ConfigMap {}: {e}; trying again",
                        self.name
                    ));
                }
                Err(e) => return Err(format!("cannot read ConfigMap {}: {e}", self.name)),
            }
        }
    }

    /// The history stored.
    async fn read(&self) -> Result<History, String> {
        let map = self.read_map().await?;
        self.history_of(map.as_ref().and_then(|m| m.data.as_ref()))
    }

    fn history_of(&self, data: Option<&BTreeMap<String, String>>) -> Result<History, String> {
        let text = data.and_then(|d| d.get(HISTORY_KEY)).map_or("", String::as_str);
        History::from_json(text).map_err(|e| format!("ConfigMap {}: {e}", self.name))
    }

    /// Applies `change` to the stored history and writes it back unless it
    /// is unchanged, on condition that nobody wrote in between (else reads
    /// and applies it again); what `change` returned.
    async fn update<T>(&self, change: impl Fn(&mut History) -> T) -> Result<T, String> {
        self.modify(|data| {
            let before = self.history_of(Some(data))?;
            let mut history = before.clone();
            let out = change(&mut history);
            if history != before {
                data.insert(HISTORY_KEY.to_owned(), history.to_json());
            }
            Ok(out)
        })
        .await
    }

    /// Applies `change` to the ConfigMap's data and writes it back unless it
    /// is unchanged, with the read `resourceVersion` as the precondition (a
    /// 409 reads and applies it again); every other key is kept as read. A
    /// write the API server refused for now ([`refused_for_now`]) is read,
    /// applied and written again after a wait.
    async fn modify<T>(
        &self,
        change: impl Fn(&mut BTreeMap<String, String>) -> Result<T, String>,
    ) -> Result<T, String> {
        let mut tries = self.tries();
        let mut conflicts = 0;
        while conflicts < CLAIM_TRIES {
            let stored = self.read_map().await?;
            let version = stored.as_ref().and_then(|m| m.metadata.resource_version.clone());
            let before = stored.and_then(|m| m.data).unwrap_or_default();
            let mut data = before.clone();
            let out = change(&mut data)?;
            if data == before {
                return Ok(out);
            }
            let map = self.config_map(data, version.clone());
            let written = match version {
                None => self.api.create(&PostParams::default(), &map).await,
                Some(_) => self.api.replace(&self.name, &PostParams::default(), &map).await,
            };
            match written {
                Ok(_) => return Ok(out),
                Err(kube::Error::Api(e)) if e.code == 409 => conflicts += 1,
                Err(e) if refused_for_now(&e) && tries.wait().await => {
                    say(&format!(
                        "warning: cannot write ConfigMap {}: {e}; trying again",
                        self.name
                    ));
                }
                Err(e) => return Err(format!("cannot write ConfigMap {}: {e}", self.name)),
            }
        }
        Err(format!(
            "ConfigMap {} changed under every one of {CLAIM_TRIES} writes",
            self.name
        ))
    }

    /// Publishes the digest of each resource's webhook token (the webhook
    /// compares a request's token with it); the check requests counted so far.
    async fn publish_webhooks(&self, pipeline: &ConcoursePipeline) -> Result<BTreeMap<String, u64>, String> {
        let digests: BTreeMap<&str, String> = pipeline
            .resources
            .iter()
            .filter_map(|r| Some((r.name.as_str(), token_digest(r.webhook_token.as_deref()?))))
            .collect();
        let text = serde_json::to_string(&digests).map_err(|e| e.to_string())?;
        self.modify(|data| {
            if digests.is_empty() {
                data.remove(WEBHOOKS_KEY);
            } else {
                data.insert(WEBHOOKS_KEY.to_owned(), text.clone());
            }
            Ok(())
        })
        .await?;
        Ok(self
            .read_map()
            .await?
            .map(|m| check_requests(&m))
            .unwrap_or_default())
    }

    /// The check requests counted, each time the ConfigMap changes.
    fn requests(&self) -> impl futures::Stream<Item = BTreeMap<String, u64>> + Send + 'static {
        let config =
            kube::runtime::watcher::Config::default().fields(&format!("metadata.name={}", self.name));
        kube::runtime::watcher(self.api.clone(), config)
            .default_backoff()
            .filter_map(|event| async move {
                match event {
                    Ok(
                        kube::runtime::watcher::Event::Apply(map)
                        | kube::runtime::watcher::Event::InitApply(map),
                    ) => Some(check_requests(&map)),
                    _ => None,
                }
            })
    }

    fn config_map(&self, data: BTreeMap<String, String>, version: Option<String>) -> ConfigMap {
        let mut map = ConfigMap::default();
        map.metadata.name = Some(self.name.clone());
        map.metadata.resource_version = version;
        map.metadata.labels = Some(BTreeMap::from([
            ("app.kubernetes.io/managed-by".to_owned(), "c8s".to_owned()),
            (
                "c8s.dev/pipeline".to_owned(),
                c8s_pod_builder::names::label_value(&self.pipeline),
            ),
        ]));
        map.data = Some(data);
        map
    }
}

#[cfg(test)]
mod tests {
    use super::{HISTORY_KEY, Store, history_name as config_map_name};
    use c8s_kube::mock::{Answer, ordered, seen, status};
    use c8s_pipeline_model::concourse::parse_concourse_pipeline;
    use c8s_pipeline_model::concourse::triggers::History;
    use c8s_pipeline_model::{MemorySource, Vars};
    use c8s_test_cluster as cluster;

    const PIPELINE: &str =
        "resources: [{ name: repo, type: git, source: { uri: https://example.com/a.git } }]
jobs:
- name: build
  plan:
  - get: repo
    trigger: true
";

    /// Claims the next build of `pipeline` in `store` as `c8s watch` does.
    async fn claim(
        store: &Store,
        pipeline: &c8s_pipeline_model::concourse::ConcoursePipeline,
        meanwhile: impl Fn(),
    ) -> Option<u64> {
        let calls = std::sync::atomic::AtomicUsize::new(0);
        store
            .update(|history: &mut History| {
                // Between this writer's read and its write, once.
                if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    meanwhile();
                }
                super::claim_next(history, pipeline, &[], &Default::default()).map(|b| b.number)
            })
            .await
            .expect("update")
    }

    /// Two watchers read the same history, and the other one writes first:
    /// this one's write is refused (its `resourceVersion` is stale), it reads
    /// again, and the build it was about to start is already started.
    #[tokio::test(flavor = "multi_thread")]
    #[ignore = "needs control plane"]
    async fn of_two_watchers_that_read_the_same_new_version_one_starts_the_build() {
        let client = cluster::client().await;
        let ns = cluster::namespace(&client, "history").await;
        let cluster = c8s_kube::KubeCluster::new(client, ns.clone());
        let pipeline = parse_concourse_pipeline("ci.yml", PIPELINE, &Vars::new(), &MemorySource::new())
            .unwrap_or_else(|e| panic!("{e}"));
        let store = Store::new(&cluster, "ci");
        store
            .update(|h| h.add_versions("repo", vec![r#"{"ref":"a"}"#.to_owned()]))
            .await
            .expect("versions");
        let other = || {
            let cluster = cluster.clone();
            let pipeline = pipeline.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Runtime::new().expect("runtime");
                runtime.block_on(async {
                    let store = Store::new(&cluster, "ci");
                    assert_eq!(claim(&store, &pipeline, || ()).await, Some(1));
                });
            })
            .join()
            .expect("the other watcher");
        };
        assert_eq!(claim(&store, &pipeline, other).await, None);
        let history = store.read().await.expect("read");
        assert_eq!(history.jobs["build"].builds, 1);
    }

    #[test]
    fn a_resource_checked_never_is_never_due() {
        let text = "resources:
- { name: repo, type: git, source: { uri: https://example.com/a.git } }
- { name: nightly, type: time, check_every: never, source: { interval: 24h } }
jobs:
- { name: build, plan: [{ get: repo, trigger: true }, { get: nightly }] }
";
        let pipeline = parse_concourse_pipeline("ci.yml", text, &Vars::new(), &MemorySource::new())
            .unwrap_or_else(|e| panic!("{e}"));
        let resources = c8s_pipeline_model::concourse::triggers::checked_resources(&pipeline);
        assert_eq!(resources.len(), 2);
        let now = tokio::time::Instant::now();
        let due = super::first_due(&resources, now);
        assert_eq!(due.into_iter().collect::<Vec<_>>(), [("repo", now)]);
    }

    #[test]
    fn a_history_name_is_a_valid_name_and_names_that_read_alike_stay_apart() {
        assert!(config_map_name("release").starts_with("c8s-versions-release-"));
        assert_ne!(config_map_name("a_b"), config_map_name("a-b"));
        let long = config_map_name(&"X".repeat(300));
        assert!(long.len() <= 63, "{long}");
        assert!(config_map_name("___").starts_with("c8s-versions-"));
        for name in [config_map_name("Ünïcode pipeline!"), long] {
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{name}"
            );
        }
    }

    /// The history's ConfigMap as the API server answers it.
    fn stored(version: &str) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": { "name": config_map_name("p"), "namespace": "ci", "resourceVersion": version },
            "data": { HISTORY_KEY: "" },
        })
    }

    /// A read that fails and a write the API server refused for now (429)
    /// are made again after a wait; a write refused for good (403) is not,
    /// and its error says why.
    #[tokio::test]
    async fn a_history_request_refused_for_now_is_made_again_and_one_refused_for_good_is_not() {
        let answers = vec![
            Answer::Json(503, status(503, "ServiceUnavailable")),
            Answer::Json(200, stored("1")),
            Answer::Json(429, status(429, "TooManyRequests")),
            Answer::Json(200, stored("1")),
            Answer::Json(200, stored("2")),
        ];
        let (client, requests) = ordered("ci", answers);
        let store = Store::on(kube::Api::namespaced(client, "ci"), "p");
        let pinned = store
            .update(|history| history.pinned.insert("repo".to_owned(), "{}".to_owned()))
            .await;
        assert_eq!(pinned, Ok(None));
        let methods: Vec<String> = seen(&requests).iter().map(|r| r.method.to_string()).collect();
        assert_eq!(methods, ["GET", "GET", "PUT", "GET", "PUT"]);

        let answers = vec![
            Answer::Json(200, stored("1")),
            Answer::Json(403, status(403, "Forbidden")),
        ];
        let (client, requests) = ordered("ci", answers);
        let store = Store::on(kube::Api::namespaced(client, "ci"), "p");
        let pinned = store
            .update(|history| history.pinned.insert("repo".to_owned(), "{}".to_owned()))
            .await;
        assert!(
            pinned
                .as_ref()
                .is_err_and(|e| e.contains("cannot write ConfigMap")),
            "{pinned:?}"
        );
        assert_eq!(
            seen(&requests).len(),
            2,
            "a write refused for good is not made again"
        );
    }
}
