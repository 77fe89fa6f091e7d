//! What a reconcile sees of a run's objects: the latest attempt of each
//! step that has a pod or Job, read once, as the kube adapter's `assess`
//! reads it.

use std::collections::BTreeMap;

use c8s_kube::{Assessment, Cluster, ObjectKind, ObjectRef, PodObservation, PodPhase, assess, attempt_name};
use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;

use crate::crd::{StepPhase, StepRunStatus};
use crate::error::Error;
use crate::settings::{Settings, attempt_budget, run_selector};
use crate::steps::RunSteps;

/// The latest attempt of each step that has an object in the cluster.
pub(crate) struct SeenObject {
    pub(crate) object: ObjectRef,
    pub(crate) attempt: u32,
    pub(crate) assessment: Assessment,
    /// What the assessment was made from.
    pub(crate) observation: PodObservation,
    /// When the object was created (`None` when only looked up): how long
    /// a pod that has not started has waited.
    pub(crate) created_at: Option<Timestamp>,
}

pub(crate) async fn observe_objects<C: Cluster>(
    cluster: &C,
    run: &str,
    steps: &RunSteps,
    settings: &Settings,
    recorded: &[StepRunStatus],
) -> Result<BTreeMap<String, SeenObject>, Error> {
    let listed = cluster.list_kinds(&run_selector(run), &steps.kinds()).await?;
    let mut by_name: BTreeMap<String, (String, u32)> = BTreeMap::new();
    for step in &steps.steps {
        for attempt in 0..attempt_budget(step, settings) {
            by_name.insert(attempt_name(&step.name, attempt), (step.name.clone(), attempt));
        }
    }
    // Each step's latest attempt, with when its object was created.
    let mut latest: BTreeMap<&str, (ObjectRef, u32, Option<Timestamp>)> = BTreeMap::new();
    for object in listed {
        let Some((step, attempt)) = by_name.get(&object.object.name) else {
            continue;
        };
        if latest.get(step.as_str()).is_none_or(|(_, a, _)| a < attempt) {
            latest.insert(step, (object.object, *attempt, object.created_at));
        }
    }
    // A step recorded running whose pod is not listed (or only an earlier attempt
    // is) may only be missing from a lagging cache: it counts as lost only if
    // looking it up finds it gone.
    let mut looked_up = BTreeMap::new();
    for status in recorded.iter().filter(|s| s.phase == StepPhase::Running) {
        let Some((step, attempt)) = status.pod.as_deref().and_then(|pod| by_name.get(pod)) else {
            continue;
        };
        // A listed earlier attempt is superseded: a lagging cache still holds the deleted pod.
        let superseded = latest.get(step.as_str()).is_some_and(|(_, a, _)| a < attempt);
        if *step != status.name
            || *attempt != status.attempt
            || (latest.contains_key(step.as_str()) && !superseded)
        {
            continue;
        }
        latest.remove(step.as_str());
        let object = ObjectRef::new(ObjectKind::Pod, attempt_name(step, *attempt));
        let first = cluster.observe(&object).await?.next().await.transpose()?;
        if let Some(found) = first.filter(|o| o.phase != PodPhase::Gone) {
            latest.insert(step, (object, *attempt, None));
            looked_up.insert(step.as_str(), found);
        }
    }
    let mut seen: BTreeMap<String, SeenObject> = BTreeMap::new();
    for (step, (object, attempt, created_at)) in latest {
        // A final result already recorded for this attempt needs no new look (one request less per step).
        let final_recorded = recorded.iter().any(|s| {
            s.name == step
                && s.attempt == attempt
                && matches!(s.phase, StepPhase::Succeeded | StepPhase::Failed)
        });
        if final_recorded {
            continue;
        }
        let first = match looked_up.remove(step) {
            Some(found) => found,
            None => {
                let mut stream = cluster.observe(&object).await?;
                let Some(first) = stream.next().await else {
                    continue;
                };
                first?
            }
        };
        seen.insert(
            step.to_owned(),
            SeenObject {
                created_at,
                object,
                attempt,
                assessment: assess(&first),
                observation: first,
            },
        );
    }
    Ok(seen)
}
