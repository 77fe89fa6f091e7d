//! What the simulated cluster counted.

use std::collections::BTreeMap;

/// What the simulation counted: creates, deletes, faults, overlaps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SimStats {
    /// Successful creates per step.
    pub creates: BTreeMap<String, u32>,
    /// Successful deletes of existing objects.
    pub deletes: u32,
    /// The most pods of one step alive at the same time, per step.
    pub max_live_per_step: BTreeMap<String, u32>,
    /// API errors injected (create and delete).
    pub api_errors: u32,
    /// Watches broken on purpose.
    pub watch_disconnects: u32,
    /// Pods that could not pull their image.
    pub image_pull_failures: u32,
    /// Pods evicted.
    pub evictions: u32,
    /// Pods that were unschedulable for a while.
    pub unschedulable_pods: u32,
    /// The most pods alive at the same time, finished ones awaiting deletion included.
    pub max_live_total: u32,
    /// The most pods alive and not finished at the same time (what a
    /// parallelism cap bounds).
    pub max_running_total: u32,
    /// API requests made: creates, deletes, lists, watches and log reads,
    /// failed ones included.
    pub requests: u32,
    /// Watches opened.
    pub watches: u32,
    /// Reads of a pod's Events.
    pub event_reads: u32,
    /// Writes of a run record (grouped: steps that end together share one).
    pub record_writes: u32,
}
