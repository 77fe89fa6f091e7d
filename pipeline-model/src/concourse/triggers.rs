//! Which builds of a Concourse pipeline's jobs a resource's new versions
//! start: the versions each resource's checks found, the inputs each job's
//! builds ran with, and the pure rule that picks the next builds from them.
//!
//! The rules follow Concourse's scheduler (`atc/scheduler/algorithm` and
//! `atc/scheduler/buildstarter.go` in github.com/concourse/concourse;
//! <https://concourse-ci.org/jobs.html>, <https://concourse-ci.org/get-step.html>):
//!
//! - A check (`atc/lidar`, `atc/exec/check_step.go`) is given the last
//!   version it found and answers the versions from it on, oldest first;
//!   each one not seen before is appended to the resource's history.
//! - A job's inputs are its `get` steps. Each get resolves to one version:
//!   the version the resource is pinned to by hand (`fly pin-resource`; a
//!   pinned resource is fetched at that version by every get,
//!   <https://concourse-ci.org/resource-versions.html>), else its own
//!   pinned `version:`, else the resource's pinned `version:` (a pinned
//!   version is the only candidate, and `passed:` still has to hold), else,
//!   with `passed: [jobs]`, the newest version of the resource that a
//!   succeeded build of *every* listed job ran with, else the resource's
//!   newest version. With `version: every`, it is instead the oldest such
//!   version after the one the job's last build ran with (the oldest known
//!   when none), so each version gets a build, in order. A job whose inputs
//!   do not all resolve has no build.
//! - A build is started when a get with `trigger: true` resolves to a
//!   version other than the one the job's last build ran with; a job with no
//!   triggering get is only run by hand.
//! - A succeeded build's inputs are what its downstream jobs' `passed:`
//!   look for.
//!
//! What c8s does not do (yet): the versions a
//! `put` makes do not pass on (`passed:` sees only a build's gets); gets
//! that share a `passed:` job are not correlated to the *same* build of it.

use std::collections::BTreeMap;

use serde_derive::{Deserialize, Serialize};

use super::pipeline::{ConcoursePipeline, Job};
use super::steps::StepKind;

/// How many versions of one resource are kept (the newest).
pub const KEEP_VERSIONS: usize = 100;
/// How many succeeded builds of one job are kept for `passed:` (the newest).
pub const KEEP_BUILDS: usize = 50;

/// What the checks and builds of one pipeline have seen so far, as stored
/// between runs of the scheduler (JSON, keys sorted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct History {
    /// Each resource's versions, oldest first, as canonical JSON.
    #[serde(default)]
    pub resources: BTreeMap<String, Vec<String>>,
    /// Each job's builds.
    #[serde(default)]
    pub jobs: BTreeMap<String, JobHistory>,
    /// Versions pinned by hand (`fly pin-resource`), by resource.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pinned: BTreeMap<String, String>,
}

/// The builds of one job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobHistory {
    /// How many builds were started.
    #[serde(default)]
    pub builds: u64,
    /// The versions (by resource) the last started build ran with.
    #[serde(default)]
    pub last: BTreeMap<String, String>,
    /// The versions (by resource) of its succeeded builds, oldest first.
    #[serde(default)]
    pub succeeded: Vec<BTreeMap<String, String>>,
}

/// A build to start: the job, its number, and the version of each resource
/// it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    /// The job.
    pub job: String,
    /// The build number (1 for a job's first).
    pub number: u64,
    /// The version each resource resolved to, as canonical JSON.
    pub versions: BTreeMap<String, String>,
}

/// `text` (a JSON object) with its keys sorted and no spaces; `None` when it
/// is not a JSON object.
pub fn canonical(text: &str) -> Option<String> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value @ serde_json::Value::Object(_)) => Some(value.to_string()),
        _ => None,
    }
}

/// The versions a check printed: the JSON array after the last
/// [`super::resource::CHECK_MARKER`] in its log, each version canonical.
pub fn check_response(log: &str) -> Result<Vec<String>, String> {
    let marker = super::resource::CHECK_MARKER;
    let at = log
        .rfind(marker)
        .ok_or_else(|| "the check printed no response".to_owned())?;
    let text = log[at + marker.len()..].trim();
    let versions: Vec<serde_json::Value> = serde_json::from_str(text)
        .map_err(|e| format!("the check's response is not a JSON list of versions: {e}"))?;
    versions
        .into_iter()
        .map(|v| match v {
            serde_json::Value::Object(_) => Ok(v.to_string()),
            other => Err(format!(
                "the check answered {other}, which is not a version (a JSON object)"
            )),
        })
        .collect()
}

impl History {
    /// Reads a stored history (an empty text is an empty history).
    pub fn from_json(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_json::from_str(text).map_err(|e| format!("the stored version history is not valid: {e}"))
    }

    /// The history as stored.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The newest version of `resource` seen, if any.
    pub fn latest(&self, resource: &str) -> Option<&str> {
        self.resources.get(resource)?.last().map(String::as_str)
    }

    /// Adds what a check of `resource` found; how many versions were new.
    pub fn add_versions(&mut self, resource: &str, found: Vec<String>) -> usize {
        let known = self.resources.entry(resource.to_owned()).or_default();
        let mut new = 0;
        for version in found {
            if !known.contains(&version) {
                known.push(version);
                new += 1;
            }
        }
        let extra = known.len().saturating_sub(KEEP_VERSIONS);
        known.drain(..extra);
        new
    }

    /// The builds the versions seen start now, one per job at most, in the
    /// pipeline's job order.
    pub fn next_builds(&self, pipeline: &ConcoursePipeline) -> Vec<Build> {
        pipeline
            .jobs
            .iter()
            .filter_map(|job| self.next_build(pipeline, job))
            .collect()
    }

    /// The build of `job` the versions seen start, if any.
    pub fn next_build(&self, pipeline: &ConcoursePipeline, job: &Job) -> Option<Build> {
        let (build, triggered) = self.inputs(pipeline, job)?;
        triggered.then_some(build)
    }

    /// A build of `job` started by hand (`fly trigger-job`): its inputs
    /// resolved as for any build, whether or not they are new; `None` when
    /// one does not resolve yet.
    pub fn build_of(&self, pipeline: &ConcoursePipeline, job: &Job) -> Option<Build> {
        self.inputs(pipeline, job).map(|(build, _)| build)
    }

    /// The next build of `job` and whether a triggering get has a version
    /// the job's last build did not run with.
    fn inputs(&self, pipeline: &ConcoursePipeline, job: &Job) -> Option<(Build, bool)> {
        let history = self.jobs.get(&job.name);
        let mut versions = BTreeMap::new();
        let mut triggered = false;
        for get in gets(job) {
            let last = history.and_then(|h| h.last.get(&get.resource));
            let version = self.resolve(pipeline, &get, last)?;
            triggered |= get.trigger && last != Some(&version);
            versions.insert(get.resource, version);
        }
        let build = Build {
            job: job.name.clone(),
            number: history.map_or(0, |h| h.builds) + 1,
            versions,
        };
        Some((build, triggered))
    }

    /// The version `get` resolves to (see the module's rules), `last` being
    /// the one the job's last build ran with.
    fn resolve(&self, pipeline: &ConcoursePipeline, get: &Get, last: Option<&String>) -> Option<String> {
        let resource = pipeline.resources.iter().find(|r| r.name == get.resource)?;
        let pinned = (self.pinned.get(&get.resource).cloned())
            .or_else(|| get.pinned.clone())
            .or_else(|| resource.version.as_ref().map(super::node::Node::to_json));
        let passed = |version: &&String| {
            get.passed.iter().all(|upstream| {
                self.jobs
                    .get(upstream)
                    .is_some_and(|h| h.succeeded.iter().any(|b| b.get(&get.resource) == Some(*version)))
            })
        };
        // A pinned version is the only candidate; `passed:` still holds.
        if let Some(text) = pinned {
            return canonical(&text).filter(|v| passed(&v));
        }
        let known = self.resources.get(&get.resource)?;
        if !get.every {
            return known.iter().rev().find(passed).cloned();
        }
        let after = last
            .and_then(|last| known.iter().position(|v| v == last))
            .map_or(0, |at| at + 1);
        known[after..]
            .iter()
            .find(passed)
            .or_else(|| last.filter(|_| after > 0))
            .cloned()
    }

    /// Records that `build` started: its number and inputs.
    pub fn started(&mut self, build: &Build) {
        let history = self.jobs.entry(build.job.clone()).or_default();
        history.builds = history.builds.max(build.number);
        history.last = build.versions.clone();
    }

    /// Records that `build` succeeded: its inputs passed its job.
    pub fn succeeded(&mut self, build: &Build) {
        let history = self.jobs.entry(build.job.clone()).or_default();
        history.succeeded.push(build.versions.clone());
        let extra = history.succeeded.len().saturating_sub(KEEP_BUILDS);
        history.succeeded.drain(..extra);
    }
}

/// One `get` of a job, as the scheduler sees it.
struct Get {
    resource: String,
    trigger: bool,
    every: bool,
    passed: Vec<String>,
    /// Its own pinned version, as JSON.
    pinned: Option<String>,
}

/// The gets of `job`'s plan and hooks, in order.
fn gets(job: &Job) -> Vec<Get> {
    let mut out = Vec::new();
    let mut visit = |step: &super::steps::Step| {
        if let StepKind::Get {
            resource,
            trigger,
            passed,
            version,
            every,
            ..
        } = &step.kind
        {
            out.push(Get {
                resource: resource.clone(),
                trigger: *trigger,
                every: *every,
                passed: passed.clone(),
                pinned: version.as_ref().map(super::node::Node::to_json),
            });
        }
    };
    for step in &job.plan {
        step.visit(&mut visit);
    }
    for (_, hook) in &job.hooks {
        hook.visit(&mut visit);
    }
    out
}

/// The resources some job of `pipeline` gets: the ones worth checking.
pub fn checked_resources(pipeline: &ConcoursePipeline) -> Vec<&super::pipeline::Resource> {
    let wanted: Vec<String> = pipeline
        .jobs
        .iter()
        .flat_map(|job| gets(job).into_iter().map(|g| g.resource))
        .collect();
    pipeline
        .resources
        .iter()
        .filter(|r| wanted.contains(&r.name))
        .collect()
}
