//! The reaper: deletes the pods, Jobs and run records that finished runs left behind.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::jiff::SignedDuration;
use serde::{Deserialize, Serialize};

use crate::cluster::{Cluster, ListedObject, MANAGED_SELECTOR, ObjectRef};
use crate::error::Result;
use crate::retry::RetryPolicy;

/// What the caller knows about a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunLiveness {
    /// The run still goes on: keep its objects.
    Active,
    /// The run ended: delete all its objects.
    Finished,
}

/// What to reap.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ReapOptions {
    /// An object of an unknown run is deleted once it is finished, or once it
    /// is older than this (orphaned by a crashed `c8s run`).
    pub older_than: Duration,
    /// Only list what would be deleted.
    pub dry_run: bool,
    /// Runs the caller knows about, by `c8s.dev/run` label value.
    pub runs: BTreeMap<String, RunLiveness>,
    /// Retries of transient API errors.
    pub retry: RetryPolicy,
}

impl ReapOptions {
    /// Reap objects of unknown runs older than `older_than`.
    pub fn new(older_than: Duration) -> Self {
        ReapOptions {
            older_than,
            dry_run: false,
            runs: BTreeMap::new(),
            retry: RetryPolicy::default(),
        }
    }

    /// Only list what would be deleted.
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Tells the reaper that `run` is active or finished.
    pub fn run(mut self, run: impl Into<String>, liveness: RunLiveness) -> Self {
        self.runs.insert(run.into(), liveness);
        self
    }
}

/// What the reaper did (or, in a dry run, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReapReport {
    /// Deleted (or, in a dry run, to be deleted), with the reason, in name order.
    pub deleted: Vec<(ObjectRef, String)>,
    /// Kept, with the reason.
    pub kept: Vec<(ObjectRef, String)>,
    /// Deletions that failed, with the error.
    pub failed: Vec<(ObjectRef, String)>,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Run records (ConfigMaps `c8s-run-<id>`) deleted (or to be), by run id, with the reason.
    #[serde(default)]
    pub records_deleted: Vec<(String, String)>,
    /// Run records kept, by run id, with the reason.
    #[serde(default)]
    pub records_kept: Vec<(String, String)>,
    /// Run records that could not be listed or deleted, with the error.
    #[serde(default)]
    pub records_failed: Vec<(String, String)>,
}

/// The `run` of [`ReapReport::records_failed`] when the records could not be listed.
const ALL_RECORDS: &str = "*";

impl ReapReport {
    /// Whether a deletion the reaper tried failed: an object's or a run
    /// record's (a caller such as `c8s reap` then exits non-zero). Records
    /// that could not be listed (a Role without `list configmaps`) are
    /// reported in [`ReapReport::records_failed`] but are no failed deletion.
    pub fn deletes_failed(&self) -> bool {
        !self.failed.is_empty() || self.records_failed.iter().any(|(run, _)| run != ALL_RECORDS)
    }
}

/// Lists every object labelled `app.kubernetes.io/managed-by=c8s` and deletes
/// (with background propagation) those whose run finished, or whose run is
/// unknown and that are older than [`ReapOptions::older_than`], or finished
/// while no object of their run is still unfinished (a run that may still be
/// going keeps its finished pods: its runner may not have seen their result).
/// Pods owned by a Job are left to the Job's deletion.
pub async fn reap<C: Cluster>(cluster: &C, options: &ReapOptions) -> Result<ReapReport> {
    let mut listed = options
        .retry
        .call("reap", || cluster.list(MANAGED_SELECTOR))
        .await?;
    listed.sort_by(|a, b| a.object.cmp(&b.object));
    let now = cluster.now();
    // A run with an unfinished object younger than the limit may still be
    // going: its finished objects may hold a result its runner has not seen.
    let going: std::collections::BTreeSet<String> = listed
        .iter()
        .filter(|item| !item.finished && !older(item, options, now))
        .filter_map(|item| item.run.clone())
        .collect();
    let mut report = ReapReport {
        dry_run: options.dry_run,
        ..Default::default()
    };
    reap_records(cluster, options, &going, &mut report).await;
    for item in listed {
        let going = item.run.as_ref().is_some_and(|run| going.contains(run));
        match verdict(&item, options, now, going) {
            Err(why) => report.kept.push((item.object, why)),
            Ok(why) if options.dry_run => report.deleted.push((item.object, why)),
            Ok(why) => {
                let object = item.object;
                match options.retry.call(&object.name, || cluster.delete(&object)).await {
                    Ok(()) => report.deleted.push((object, why)),
                    Err(e) => report.failed.push((object, e.to_string())),
                }
            }
        }
    }
    Ok(report)
}

/// Deletes the records of runs that are not live, by the rule for objects:
/// a run known active, or with an unfinished object younger than the limit,
/// keeps its record; a record younger than the limit is kept too (its run
/// may be between two steps, with no object at all); a run known finished,
/// or an unknown one whose record is older, loses it. Records are read
/// before the objects are deleted, so a run still going is seen going.
async fn reap_records<C: Cluster>(
    cluster: &C,
    options: &ReapOptions,
    going: &std::collections::BTreeSet<String>,
    report: &mut ReapReport,
) {
    let records = match options.retry.call("reap", || cluster.list_records()).await {
        Ok(records) => records,
        Err(e) => {
            // Pods and Jobs are still reaped (an older Role may lack `list configmaps`).
            tracing::warn!(error = %e, "could not list run records");
            report.records_failed.push((ALL_RECORDS.into(), e.to_string()));
            return;
        }
    };
    let now = cluster.now();
    let ttl = SignedDuration::try_from(options.older_than).unwrap_or(SignedDuration::MAX);
    for record in records {
        let run = record.run;
        let old = record.created_at.is_some_and(|at| now.duration_since(at) >= ttl);
        let verdict = match options.runs.get(&run) {
            Some(RunLiveness::Active) => Err(format!("run {run} is active")),
            Some(RunLiveness::Finished) => Ok(format!("run {run} finished")),
            None if going.contains(&run) => {
                Err(format!("run {run} has unfinished objects: it may still be going"))
            }
            None if old => Ok(format!(
                "run {run} unknown, nothing of it going, record older than {:?}",
                options.older_than
            )),
            None => Err(format!(
                "run {run} unknown, record younger than {:?}",
                options.older_than
            )),
        };
        match verdict {
            Err(why) => report.records_kept.push((run, why)),
            Ok(why) if options.dry_run => report.records_deleted.push((run, why)),
            Ok(why) => match options.retry.call(&run, || cluster.delete_record(&run)).await {
                Ok(()) => report.records_deleted.push((run, why)),
                Err(e) => report.records_failed.push((run, e.to_string())),
            },
        }
    }
}

/// `Ok(reason to delete)` or `Err(reason to keep)`.
fn verdict(
    item: &ListedObject,
    options: &ReapOptions,
    now: k8s_openapi::jiff::Timestamp,
    going: bool,
) -> std::result::Result<String, String> {
    if item.owned_by_job {
        return Err("owned by a Job".into());
    }
    let Some(run) = item.run.as_deref() else {
        return Err("no c8s.dev/run label".into());
    };
    match options.runs.get(run) {
        Some(RunLiveness::Active) => return Err(format!("run {run} is active")),
        Some(RunLiveness::Finished) => return Ok(format!("run {run} finished")),
        None => {}
    }
    if item.finished && !going {
        return Ok(format!("finished, run {run} unknown"));
    }
    if older(item, options, now) {
        return Ok(format!(
            "run {run} unknown and older than {:?}",
            options.older_than
        ));
    }
    if item.finished {
        return Err(format!("run {run} has unfinished objects: it may still be going"));
    }
    Err(format!(
        "run {run} unknown, younger than {:?}",
        options.older_than
    ))
}

/// Whether `item` was created longer than [`ReapOptions::older_than`] ago.
fn older(item: &ListedObject, options: &ReapOptions, now: k8s_openapi::jiff::Timestamp) -> bool {
    let ttl = SignedDuration::try_from(options.older_than).unwrap_or(SignedDuration::MAX);
    item.created_at
        .is_some_and(|created| now.duration_since(created) >= ttl)
}
