//! Bounded reconcile concurrency, shared fairly across namespaces.
//!
//! kube-runtime's Controller runs triggered reconciles in the order its
//! scheduler holds them, `Config::concurrency` at once. One namespace that
//! creates thousands of runs then fills that queue, and a run of another
//! namespace, created a second later, waits behind every one of them: in
//! the controller benchmark, while 5,000 queued runs of ten namespaces were
//! worked off, a run of an eleventh namespace with room waited up to three
//! minutes for its pod. So the Controller runs every reconcile it is given
//! at once (`Config::concurrency(0)`), and each waits here for one of
//! `capacity` slots; a freed slot goes to the namespaces with waiters in
//! turn (round robin), first come first served within a namespace. A run
//! of a quiet namespace then waits for at most one slot per busy namespace,
//! as the API server's own API Priority and Fairness shares its seats among
//! flows by fair queuing
//! (<https://kubernetes.io/docs/concepts/cluster-administration/flow-control/>).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

/// `capacity` reconcile slots, handed out fairly across namespaces; 0: no
/// bound (every reconcile runs at once).
#[derive(Debug)]
pub struct FairShare {
    capacity: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Slots held (or handed to a waiter that has not woken yet).
    held: usize,
    /// Each namespace's waiters, oldest first.
    waiting: BTreeMap<String, VecDeque<oneshot::Sender<()>>>,
    /// The namespaces with waiters, in the order they are served.
    turn: VecDeque<String>,
}

/// One slot of a [`FairShare`], given back when dropped.
#[derive(Debug)]
pub struct Slot {
    share: Option<Arc<FairShare>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(share) = self.share.take() {
            share.release();
        }
    }
}

/// A waiter's end: a slot handed to a waiter that gave up before it woke
/// is passed on, never lost.
struct Waiting {
    share: Arc<FairShare>,
    handed: Option<oneshot::Receiver<()>>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(mut handed) = self.handed.take() {
            handed.close();
            if handed.try_recv().is_ok() {
                self.share.release();
            }
        }
    }
}

impl FairShare {
    /// `capacity` slots; 0: no bound.
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(FairShare {
            capacity,
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is only changed whole under the lock: a panic elsewhere
        // leaves it consistent.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A slot for a reconcile of a run of `namespace`: at once when one is
    /// free and nobody waits, else when the namespaces ahead had their turn.
    pub async fn acquire(self: &Arc<Self>, namespace: &str) -> Slot {
        if self.capacity == 0 {
            return Slot { share: None };
        }
        let handed = {
            let mut state = self.lock();
            if state.held < self.capacity && state.turn.is_empty() {
                state.held += 1;
                return Slot {
                    share: Some(self.clone()),
                };
            }
            let (hand, handed) = oneshot::channel();
            let queue = state.waiting.entry(namespace.to_owned()).or_default();
            queue.push_back(hand);
            if queue.len() == 1 {
                state.turn.push_back(namespace.to_owned());
            }
            handed
        };
        let mut waiting = Waiting {
            share: self.clone(),
            handed: Some(handed),
        };
        let handed = match waiting.handed.as_mut() {
            Some(handed) => handed.await.is_ok(),
            None => false,
        };
        waiting.handed = None;
        Slot {
            // A sender is only dropped unsent when its waiter is gone, so
            // this always holds; were it not so, this slot was never counted.
            share: handed.then(|| self.clone()),
        }
    }

    /// A slot given back: handed to the next namespace's oldest waiter, or
    /// freed when nobody waits.
    fn release(&self) {
        let mut state = self.lock();
        while let Some(namespace) = state.turn.pop_front() {
            let Some(queue) = state.waiting.get_mut(&namespace) else {
                continue;
            };
            let next = queue.pop_front();
            if queue.is_empty() {
                state.waiting.remove(&namespace);
            } else {
                state.turn.push_back(namespace);
            }
            // A waiter that gave up is skipped; the slot goes on.
            if let Some(next) = next
                && next.send(()).is_ok()
            {
                return;
            }
        }
        state.held = state.held.saturating_sub(1);
    }

    /// Slots held now.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.lock().held
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Starts a reconcile of `namespace` that waits for a slot and reports
    /// its label when it has one, then holds it until `done` fires.
    fn waiter(
        share: &Arc<FairShare>,
        namespace: &'static str,
        label: &'static str,
        order: &tokio::sync::mpsc::UnboundedSender<&'static str>,
    ) -> (tokio::task::JoinHandle<()>, oneshot::Sender<()>) {
        let (done, finished) = oneshot::channel::<()>();
        let (share, order) = (share.clone(), order.clone());
        let task = tokio::spawn(async move {
            let _slot = share.acquire(namespace).await;
            let _ = order.send(label);
            let _ = finished.await;
        });
        (task, done)
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_freed_slot_goes_to_the_namespaces_in_turn_not_in_arrival_order() {
        let share = FairShare::new(1);
        let (order_tx, mut order) = tokio::sync::mpsc::unbounded_channel();
        let (_first, release_first) = waiter(&share, "flood", "flood-0", &order_tx);
        settle().await;
        assert_eq!(order.recv().await, Some("flood-0"));
        // A namespace floods; a quiet one comes after all of its runs.
        let mut releases = BTreeMap::new();
        for (namespace, label) in [
            ("flood", "flood-1"),
            ("flood", "flood-2"),
            ("flood", "flood-3"),
            ("quiet", "quiet-0"),
        ] {
            releases.insert(label, waiter(&share, namespace, label, &order_tx).1);
            settle().await;
        }
        let _ = release_first.send(());
        let mut seen = Vec::new();
        while let Ok(Some(label)) = tokio::time::timeout(Duration::from_secs(5), order.recv()).await {
            seen.push(label);
            if let Some(release) = releases.remove(label) {
                let _ = release.send(());
            }
            if releases.is_empty() {
                break;
            }
        }
        settle().await;
        // The quiet namespace's run is second, not last.
        assert_eq!(seen, ["flood-1", "quiet-0", "flood-2", "flood-3"]);
        assert_eq!(share.held(), 0);
    }

    #[tokio::test]
    async fn the_bound_holds_and_a_waiter_that_gives_up_loses_no_slot() {
        let share = FairShare::new(2);
        let (order_tx, mut order) = tokio::sync::mpsc::unbounded_channel();
        let (_a, release_a) = waiter(&share, "a", "a", &order_tx);
        let (_b, release_b) = waiter(&share, "b", "b", &order_tx);
        let (gives_up, _keep) = waiter(&share, "c", "c", &order_tx);
        let (_d, release_d) = waiter(&share, "d", "d", &order_tx);
        settle().await;
        assert_eq!(share.held(), 2);
        assert_eq!((order.recv().await, order.recv().await), (Some("a"), Some("b")));
        // "c" gives up (a reconcile cancelled while it waits): "d" is next.
        gives_up.abort();
        settle().await;
        let _ = release_a.send(());
        let got = tokio::time::timeout(Duration::from_secs(5), order.recv()).await;
        assert_eq!(got.ok().flatten(), Some("d"));
        assert_eq!(share.held(), 2);
        let _ = release_b.send(());
        let _ = release_d.send(());
        settle().await;
        assert_eq!(share.held(), 0);
    }

    #[tokio::test]
    async fn no_bound_never_waits() {
        let share = FairShare::new(0);
        let slots: Vec<Slot> = futures::future::join_all((0..100).map(|_| share.acquire("a"))).await;
        assert_eq!(slots.len(), 100);
        assert_eq!(share.held(), 0);
    }
}
