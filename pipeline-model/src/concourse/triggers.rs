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
//!   with `passed: [jobs]`, the newest version of the resource that went
//!   through a succeeded build of *every* listed job, else the resource's
//!   newest version. With `version: every`, it is instead the oldest such
//!   version after the one the job's last build ran with (the oldest known
//!   when none), so each version gets a build, in order. A job whose inputs
//!   do not all resolve has no build.
//! - A build is started when a get with `trigger: true` resolves to a
//!   version other than the one the job's last build ran with; a job with no
//!   triggering get is only run by hand.
//! - A succeeded build's inputs and the versions its `put`s made (its
//!   outputs) are what its downstream jobs' `passed:` look for; a put's
//!   version is also a new version of its resource (Concourse saves it as
//!   one, so it triggers the jobs that get that resource).
//! - Gets that name the same job in `passed:` take versions that went
//!   through the *same* build of it (Concourse's input algorithm,
//!   `atc/db/algorithm`, <https://concourse-ci.org/get-step.html#schema.get.passed>:
//!   "if multiple `get`s are configured with `passed` constraints, all of
//!   the mentioned jobs are correlated"): the newest versions, in plan
//!   order, for which such builds exist.

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
    /// Its succeeded builds, oldest first.
    #[serde(default, deserialize_with = "passed_builds")]
    pub succeeded: Vec<Passed>,
}

/// Reads [`JobHistory::succeeded`] as stored now, or as c8s stored it before
/// a build kept its outputs (each build the versions it got, by resource),
/// so that a watcher upgraded in place goes on with the history it has.
fn passed_builds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Passed>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Now(Passed),
        Before(BTreeMap<String, String>),
    }
    let forms = <Vec<Form> as serde::Deserialize>::deserialize(d)?;
    Ok(forms
        .into_iter()
        .map(|form| match form {
            Form::Now(passed) => passed,
            Form::Before(inputs) => Passed {
                build: 0,
                inputs,
                outputs: BTreeMap::new(),
            },
        })
        .collect())
}

/// A succeeded build: the versions that went through it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Passed {
    /// The build's number.
    pub build: u64,
    /// The version of each resource it got.
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    /// The version of each resource its puts made.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, String>,
}

impl Passed {
    /// Whether `version` of `resource` went through this build (got or put).
    pub fn has(&self, resource: &str, version: &str) -> bool {
        self.inputs.get(resource).is_some_and(|v| v == version)
            || self.outputs.get(resource).is_some_and(|v| v == version)
    }
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

/// The version a put made, from its log: the `out` response printed
/// between the last [`super::resource::PUT_MARKER`] and the
/// [`super::resource::PUT_END`] line after it (`{"version": {...}, ...}`,
/// on as many lines as `out` broke it into), its version canonical.
pub fn put_response(log: &str) -> Result<String, String> {
    use super::resource::{PUT_END, PUT_MARKER};
    let at = log
        .rfind(PUT_MARKER)
        .ok_or_else(|| "the put printed no response".to_owned())?;
    let rest = &log[at + PUT_MARKER.len()..];
    let end = rest
        .find(&format!("\n{PUT_END}"))
        .ok_or_else(|| "the put's response is cut short".to_owned())?;
    let text = &rest[..end];
    let response: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("the put's response is not JSON: {e}"))?;
    match response.get("version") {
        Some(version @ serde_json::Value::Object(_)) => Ok(version.to_string()),
        _ => Err("the put's response has no version (a JSON object)".to_owned()),
    }
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
        let last = |get: &Get| history.and_then(|h| h.last.get(&get.resource));
        let gets = gets(job);
        let candidates = gets
            .iter()
            .map(|get| self.candidates(pipeline, get, last(get)))
            .collect::<Option<Vec<_>>>()?;
        let chosen = self.correlate(&gets, &candidates)?;
        let mut versions = BTreeMap::new();
        let mut triggered = false;
        for (get, version) in gets.iter().zip(chosen) {
            triggered |= get.trigger && last(get) != Some(&version);
            versions.insert(get.resource.clone(), version);
        }
        let build = Build {
            job: job.name.clone(),
            number: history.map_or(0, |h| h.builds) + 1,
            versions,
        };
        Some((build, triggered))
    }

    /// The versions `get` may resolve to, the one the module's rules prefer
    /// first, each of which went through a succeeded build of every job its
    /// `passed:` names; `None` when there is none. `last` is the version the
    /// job's last build ran with.
    fn candidates(
        &self,
        pipeline: &ConcoursePipeline,
        get: &Get,
        last: Option<&String>,
    ) -> Option<Vec<String>> {
        let resource = pipeline.resources.iter().find(|r| r.name == get.resource)?;
        let pinned = (self.pinned.get(&get.resource).cloned())
            .or_else(|| get.pinned.clone())
            .or_else(|| resource.version.as_ref().map(super::node::Node::to_json));
        let passed = |version: &String| {
            get.passed.iter().all(|upstream| {
                self.jobs
                    .get(upstream)
                    .is_some_and(|h| h.succeeded.iter().any(|b| b.has(&get.resource, version)))
            })
        };
        let list: Vec<String> = if let Some(text) = pinned {
            // A pinned version is the only candidate; `passed:` still holds.
            canonical(&text).filter(passed).into_iter().collect()
        } else {
            let known = self.resources.get(&get.resource)?;
            if get.every {
                let after = last
                    .and_then(|last| known.iter().position(|v| v == last))
                    .map_or(0, |at| at + 1);
                let mut list: Vec<String> = known[after..].iter().filter(|v| passed(v)).cloned().collect();
                // Nothing newer went through: the version it last ran with.
                list.extend(last.filter(|_| after > 0).cloned());
                list
            } else {
                known.iter().rev().filter(|v| passed(v)).cloned().collect()
            }
        };
        (!list.is_empty()).then_some(list)
    }

    /// The succeeded builds of `job`, oldest first.
    fn builds_of(&self, job: &str) -> Vec<&Passed> {
        self.jobs
            .get(job)
            .map(|h| h.succeeded.iter().collect())
            .unwrap_or_default()
    }

    /// One version per get, from its candidates: the first choice, in plan
    /// order, for which every job some gets name in `passed:` has one
    /// succeeded build that all their versions went through; `None` when
    /// there is none, or when [`SEARCH_LIMIT`] versions were tried.
    fn correlate(&self, gets: &[Get], candidates: &[Vec<String>]) -> Option<Vec<String>> {
        let mut builds: BTreeMap<&str, Vec<&Passed>> = BTreeMap::new();
        for upstream in gets.iter().flat_map(|g| &g.passed) {
            builds.insert(upstream, self.builds_of(upstream));
        }
        let mut chosen = Vec::with_capacity(gets.len());
        let mut budget = SEARCH_LIMIT;
        search(gets, candidates, &builds, &mut chosen, &mut budget).then_some(chosen)
    }

    /// Records that `build` started: its number and inputs.
    pub fn started(&mut self, build: &Build) {
        let history = self.jobs.entry(build.job.clone()).or_default();
        history.builds = history.builds.max(build.number);
        history.last = build.versions.clone();
    }

    /// Records that `build` succeeded, its puts having made `outputs` (a
    /// version by resource): its inputs and outputs passed its job, and each
    /// output is a version of its resource.
    pub fn succeeded(&mut self, build: &Build, outputs: &BTreeMap<String, String>) {
        for (resource, version) in outputs {
            self.add_versions(resource, vec![version.clone()]);
        }
        let history = self.jobs.entry(build.job.clone()).or_default();
        history.succeeded.push(Passed {
            build: build.number,
            inputs: build.versions.clone(),
            outputs: outputs.clone(),
        });
        let extra = history.succeeded.len().saturating_sub(KEEP_BUILDS);
        history.succeeded.drain(..extra);
    }
}

/// Whether a build of `job` may start while builds of the jobs `running`
/// run (one entry per build), as Concourse limits them
/// (<https://concourse-ci.org/jobs.html>): fewer than its `max_in_flight`
/// builds of it (`serial: true` is 1; without either, or 0, any number), and no
/// build of a job that shares one of its `serial_groups` ("builds of this
/// job and other jobs referencing the same tags will be serialized").
pub fn may_start(pipeline: &ConcoursePipeline, job: &str, running: &[String]) -> bool {
    let Some(this) = pipeline.jobs.iter().find(|j| j.name == job) else {
        return false;
    };
    let own = running.iter().filter(|r| *r == job).count();
    // 0 is no limit, as Concourse's `JobConfig.MaxInFlight` reads it.
    if this.max_in_flight.is_some_and(|max| max > 0 && own as u64 >= max) {
        return false;
    }
    !running.iter().any(|other| {
        pipeline
            .jobs
            .iter()
            .find(|j| &j.name == other)
            .is_some_and(|j| j.serial_groups.iter().any(|g| this.serial_groups.contains(g)))
    })
}

/// How many candidate versions one resolution of a job's inputs tries at
/// most before it gives up (the job gets no build this time); Concourse
/// bounds its own input algorithm with a time limit.
pub const SEARCH_LIMIT: usize = 10_000;

/// Chooses a version for each get from `chosen.len()` on (see
/// [`History::correlate`]), `builds` being the builds of each upstream job
/// that every version chosen so far went through; whether it found one.
fn search(
    gets: &[Get],
    candidates: &[Vec<String>],
    builds: &BTreeMap<&str, Vec<&Passed>>,
    chosen: &mut Vec<String>,
    budget: &mut usize,
) -> bool {
    let index = chosen.len();
    let (Some(get), Some(list)) = (gets.get(index), candidates.get(index)) else {
        return true;
    };
    // A get without `passed:` constrains no other: its first choice stands.
    let list = if get.passed.is_empty() {
        &list[..list.len().min(1)]
    } else {
        &list[..]
    };
    for version in list {
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        let mut narrowed = builds.clone();
        let fits = get.passed.iter().all(|upstream| {
            narrowed.get_mut(upstream.as_str()).is_some_and(|left| {
                left.retain(|b| b.has(&get.resource, version));
                !left.is_empty()
            })
        });
        if !fits {
            continue;
        }
        chosen.push(version.clone());
        if search(gets, candidates, &narrowed, chosen, budget) {
            return true;
        }
        chosen.pop();
    }
    false
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
