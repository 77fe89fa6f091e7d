//! Runs a whole pipeline: each step starts as soon as its own dependencies
//! succeeded, within a parallelism cap, with fail-fast or continue-on-failure,
//! timeouts and cancellation.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::sync::Mutex;

use futures::StreamExt;
use futures::stream::FuturesUnordered;

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::options::{FailureMode, RunOptions, Step};
use crate::outcome::{RunState, RunStatus, StepState, StepStatus, TerminationReason};
use crate::step::Runner;

/// Runs `steps` on `cluster` until every step has a final state, the run times
/// out, or `cancel` completes. Deletes every pod it created before returning
/// (unless [`RunOptions::keep_pods`]).
///
/// Fails only when the steps do not form a valid DAG (duplicate or unknown
/// names, a cycle, an object without a name); everything that happens on the
/// cluster is reported in the returned [`RunStatus`].
pub async fn run_pipeline<C: Cluster>(
    cluster: &C,
    steps: Vec<Step>,
    options: RunOptions,
    cancel: impl Future<Output = ()>,
) -> Result<RunStatus> {
    let graph = Graph::new(&steps)?;
    let status = Mutex::new(RunStatus {
        run_id: options.run_id.clone(),
        state: RunState::Running,
        started_at: Some(cluster.now()),
        finished_at: None,
        message: String::new(),
        steps: steps.iter().map(|s| StepStatus::pending(&s.name)).collect(),
    });
    let live = Mutex::new(BTreeMap::new());
    let runner = Runner {
        cluster,
        options: &options,
        status: &status,
        live: &live,
    };
    let end = schedule(&runner, &steps, &graph, cancel).await;

    // Whatever is still registered was interrupted: delete it.
    let leftover: Vec<usize> = live
        .lock()
        .map(|l| l.keys().copied().collect())
        .unwrap_or_default();
    let mut sweep_errors = Vec::new();
    for index in leftover {
        if let Err(e) = runner.delete_live(index).await {
            sweep_errors.push(e.to_string());
        }
    }
    let now = cluster.now();
    let mut status = status
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let failed = status.steps.iter().any(|s| s.state == StepState::Failed);
    (status.state, status.message) = match end {
        End::Cancelled => (RunState::Cancelled, "the run was cancelled".to_owned()),
        End::TimedOut => (RunState::Failed, "the run's timeout ran out".to_owned()),
        End::Done if failed => (RunState::Failed, String::new()),
        End::Done => (RunState::Succeeded, String::new()),
    };
    if !sweep_errors.is_empty() {
        status.message = format!(
            "{}; could not delete: {}",
            status.message,
            sweep_errors.join("; ")
        );
    }
    status.finished_at = Some(now);
    Ok(status)
}

enum End {
    Done,
    Cancelled,
    TimedOut,
}

async fn schedule<C: Cluster>(
    runner: &Runner<'_, C>,
    steps: &[Step],
    graph: &Graph,
    cancel: impl Future<Output = ()>,
) -> End {
    let options = runner.options;
    let cap = if options.parallelism == 0 {
        usize::MAX
    } else {
        options.parallelism
    };
    let mut waiting_on: Vec<usize> = steps.iter().map(|s| s.depends_on.len()).collect();
    let mut ready: VecDeque<usize> = (0..steps.len()).filter(|&i| waiting_on[i] == 0).collect();
    let mut running = FuturesUnordered::new();
    let mut cancel = std::pin::pin!(cancel);
    let run_deadline = options.timeout.map(|t| tokio::time::Instant::now() + t);
    let run_timeout = async {
        match run_deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    let mut run_timeout = std::pin::pin!(run_timeout);
    let end = loop {
        while running.len() < cap {
            let Some(index) = ready.pop_front() else { break };
            let step = &steps[index];
            running.push(async move { (index, runner.run(index, step).await) });
        }
        if running.is_empty() {
            break End::Done;
        }
        tokio::select! {
            biased;
            () = &mut cancel => break End::Cancelled,
            () = &mut run_timeout => break End::TimedOut,
            Some((index, outcome)) = running.next() => {
                let now = runner.cluster.now();
                let succeeded = outcome.succeeded();
                runner.update(index, |s| {
                    s.state = if succeeded { StepState::Succeeded } else { StepState::Failed };
                    s.waiting_reason = None;
                    s.finished_at = Some(now);
                    s.outcome = Some(outcome);
                });
                if succeeded {
                    for &next in &graph.dependents[index] {
                        waiting_on[next] -= 1;
                        if waiting_on[next] == 0 {
                            ready.push_back(next);
                        }
                    }
                } else if options.failure_mode == FailureMode::ContinueOnFailure {
                    let name = &steps[index].name;
                    for skipped in graph.descendants(index) {
                        runner.update(skipped, |s| {
                            s.state = StepState::Skipped;
                            s.finished_at = Some(now);
                            s.message = format!("skipped: step {name:?} failed");
                        });
                    }
                } else {
                    break End::Done;
                }
            }
        }
    };
    // Interrupted steps: their futures are dropped here, their pods swept by the caller.
    drop(running);
    let now = runner.cluster.now();
    let why = match end {
        End::Cancelled => "cancelled: the run was cancelled",
        End::TimedOut => "cancelled: the run's timeout ran out",
        End::Done => "cancelled: another step failed (fail-fast)",
    };
    for index in 0..steps.len() {
        let interrupted = runner
            .status
            .lock()
            .ok()
            .and_then(|s| s.steps.get(index).map(|s| !s.state.is_final()));
        if interrupted == Some(true) {
            runner.update(index, |s| {
                if s.attempts > 0 {
                    s.outcome = Some(crate::outcome::StepOutcome {
                        exit_code: None,
                        reason: TerminationReason::Cancelled,
                        message: String::new(),
                        started_at: None,
                        finished_at: Some(now),
                    });
                }
                s.state = StepState::Cancelled;
                s.waiting_reason = None;
                s.finished_at = Some(now);
                s.message = why.to_owned();
            });
        }
    }
    end
}

/// The steps' dependency graph, by index.
struct Graph {
    dependents: Vec<Vec<usize>>,
}

impl Graph {
    fn new(steps: &[Step]) -> Result<Self> {
        let mut index = BTreeMap::new();
        for (i, step) in steps.iter().enumerate() {
            if index.insert(step.name.as_str(), i).is_some() {
                return Err(Error::InvalidPipeline(format!(
                    "step {:?} is defined twice",
                    step.name
                )));
            }
            if step.object.name().is_none_or(str::is_empty) {
                return Err(Error::InvalidObject {
                    step: step.name.clone(),
                    detail: "the object has no metadata.name".into(),
                });
            }
        }
        let mut dependents = vec![Vec::new(); steps.len()];
        for (i, step) in steps.iter().enumerate() {
            let mut seen = BTreeSet::new();
            for dep in &step.depends_on {
                let Some(&d) = index.get(dep.as_str()) else {
                    return Err(Error::InvalidPipeline(format!(
                        "step {:?} depends on unknown step {dep:?}",
                        step.name
                    )));
                };
                if !seen.insert(d) {
                    return Err(Error::InvalidPipeline(format!(
                        "step {:?} lists {dep:?} twice",
                        step.name
                    )));
                }
                dependents[d].push(i);
            }
        }
        let graph = Graph { dependents };
        graph.check_acyclic(steps)?;
        Ok(graph)
    }

    fn check_acyclic(&self, steps: &[Step]) -> Result<()> {
        let mut indegree: Vec<usize> = steps.iter().map(|s| s.depends_on.len()).collect();
        let mut queue: VecDeque<usize> = (0..steps.len()).filter(|&i| indegree[i] == 0).collect();
        let mut visited = 0;
        while let Some(i) = queue.pop_front() {
            visited += 1;
            for &next in &self.dependents[i] {
                indegree[next] -= 1;
                if indegree[next] == 0 {
                    queue.push_back(next);
                }
            }
        }
        if visited == steps.len() {
            return Ok(());
        }
        let in_cycle: Vec<&str> = (0..steps.len())
            .filter(|&i| indegree[i] > 0)
            .map(|i| steps[i].name.as_str())
            .collect();
        Err(Error::InvalidPipeline(format!(
            "the steps {in_cycle:?} form a cycle"
        )))
    }

    /// Every step that (transitively) depends on `index`.
    fn descendants(&self, index: usize) -> BTreeSet<usize> {
        let mut found = BTreeSet::new();
        let mut stack = vec![index];
        while let Some(i) = stack.pop() {
            for &next in &self.dependents[i] {
                if found.insert(next) {
                    stack.push(next);
                }
            }
        }
        found
    }
}
