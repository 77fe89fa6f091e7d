//! One run driven to its end in this process: the controller's reconcile
//! ([`reconcile_run`]) called again and again for one run whose spec and
//! status live in memory, as `c8s run` runs a pipeline in the terminal (and
//! resumes it, from the status it saved). The controller's own loop is
//! kube-runtime's `Controller`, which calls the same reconcile for every
//! `PipelineRun`; only what wakes the next pass differs. Here it is the
//! run's one watch (any change to one of its pods or Jobs), the requeue time
//! the pass asked for, or the caller's cancel, which sets `spec.cancelled`
//! as `kubectl patch` would.

use std::future::Future;
use std::time::Duration;

use c8s_kube::{Cluster, RunWatchStream};
use futures::{FutureExt, StreamExt};

use crate::admission::Admission;
use crate::crd::{PipelineRun, PipelineRunStatus};
use crate::error::Error;
use crate::reconcile::{Reconciled, RunView, reconcile_run, started_at};
use crate::settings::Settings;
use crate::steps::RunSteps;

/// The first wait after a reconcile failed for a reason that may pass (the
/// API server did not answer, throttled, or a quota is full for now);
/// doubled after each failure in a row, up to [`MOST_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// The longest wait between two reconciles that failed.
const MOST_BACKOFF: Duration = Duration::from_secs(30);

/// Drives `run` (its name, its spec, and the status it starts from: none
/// for a new run, the status a stopped driver saved for a resumed one) on
/// `cluster` until it ends, its `steps` rendered already: each pass is one
/// [`reconcile_run`] with `settings`, from the status the last pass
/// returned. `on_pass` sees the status before the pass and what the pass
/// returned (its Events too); the future it returns is awaited before the
/// next pass, so a caller that saves the status there saves each one before
/// the cluster changes again. `cancel` completing cancels the run, which
/// then ends as the reconcile ends a cancelled run (its steps stopped, its
/// `finally` steps run).
///
/// A reconcile that fails for a reason that may pass is retried with
/// backoff; any other failure is returned. The run's objects are left as
/// the controller leaves them: deleting them is the caller's choice.
///
/// ```no_run
/// # async fn example(cluster: &c8s_kube::KubeCluster, steps: &c8s_controller::RunSteps)
/// # -> Result<(), c8s_controller::Error> {
/// use c8s_controller::crd::{PipelineRun, PipelineRunSpec};
/// use c8s_controller::{Settings, drive_run};
///
/// let run = PipelineRun::new("shop-b7", PipelineRunSpec::default());
/// let settings = Settings::default();
/// let status = drive_run(cluster, &run, steps, &settings, |_, _| async {}, std::future::pending()).await?;
/// assert!(status.phase.is_finished());
/// # Ok(())
/// # }
/// ```
pub async fn drive_run<C: Cluster, F: Future<Output = ()>>(
    cluster: &C,
    run: &PipelineRun,
    steps: &RunSteps,
    settings: &Settings,
    mut on_pass: impl FnMut(&PipelineRunStatus, &Reconciled) -> F,
    cancel: impl Future<Output = ()>,
) -> Result<PipelineRunStatus, Error> {
    let name = run.metadata.name.as_deref().unwrap_or_default();
    let mut spec = run.spec.clone();
    let mut status = run.status.clone().unwrap_or_default();
    let admission = Admission::default();
    let mut watch = Watch::open(cluster, name).await;
    let mut cancel = std::pin::pin!(cancel.fuse());
    let mut backoff = FIRST_BACKOFF;
    loop {
        let view = RunView {
            name,
            generation: None,
            started: started_at(&status, cluster.now()),
            spec: &spec,
            status: &status,
        };
        let wait = match reconcile_run(cluster, &view, steps, &admission, settings).await {
            Ok(out) => {
                backoff = FIRST_BACKOFF;
                on_pass(&status, &out).await;
                status = out.status;
                if status.phase.is_finished() {
                    return Ok(status);
                }
                out.requeue_after.unwrap_or(settings.poll)
            }
            Err(e) if may_pass(&e) => {
                tracing::warn!(run = name, error = %e, "the reconcile failed; trying again");
                let wait = backoff;
                backoff = (backoff * 2).min(MOST_BACKOFF);
                wait
            }
            Err(e) => return Err(e),
        };
        watch.reopen(cluster, name).await;
        tokio::select! {
            biased;
            () = &mut cancel, if !spec.cancelled => spec.cancelled = true,
            () = watch.changed() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Whether a failed reconcile may succeed if tried again: the API server
/// did not answer, throttled or failed (429, 5xx), or a quota is used up for
/// now ([`crate::reconcile`] waits on it as Tekton does).
fn may_pass(error: &Error) -> bool {
    match error {
        Error::Cluster(e) => e.is_transient() || crate::reconcile::quota_full(e),
        Error::TimedOut(_) => true,
        _ => false,
    }
}

/// The run's one watch: what wakes a pass when one of the run's objects
/// changes. `None` when the cluster offers none or it broke (passes then
/// come at their requeue times, and the watch is opened again).
struct Watch {
    stream: Option<RunWatchStream>,
    /// Whether the cluster offers a watch at all.
    offered: bool,
}

impl Watch {
    async fn open<C: Cluster>(cluster: &C, name: &str) -> Self {
        let mut watch = Watch {
            stream: None,
            offered: true,
        };
        watch.reopen(cluster, name).await;
        watch
    }

    /// Opens the watch again if it broke.
    async fn reopen<C: Cluster>(&mut self, cluster: &C, name: &str) {
        if self.stream.is_some() || !self.offered {
            return;
        }
        match cluster.watch_run(name).await {
            Ok(Some(stream)) => self.stream = Some(stream),
            Ok(None) => self.offered = false,
            Err(e) => tracing::debug!(run = name, error = %e, "could not watch the run"),
        }
    }

    /// Resolves at the next change, with every change already waiting
    /// (one pass for a burst); never, without a watch. A watch that ends
    /// or fails is dropped, to be opened again.
    async fn changed(&mut self) {
        let Some(stream) = self.stream.as_mut() else {
            return std::future::pending().await;
        };
        let mut broken = !matches!(stream.next().await, Some(Ok(_)));
        while !broken {
            match stream.next().now_or_never() {
                None => break,
                Some(Some(Ok(_))) => {}
                Some(_) => broken = true,
            }
        }
        if broken {
            self.stream = None;
        }
    }
}
