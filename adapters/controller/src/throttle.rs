//! The controller's client-side rate limit: a tower layer on its
//! `kube::Client` that makes every request (a watch: its start) wait for a
//! token of a [`RateLimiter`] (`qps` per second, bursts of `burst`), as
//! client-go's QPS and Burst do for a Go controller. `c8s controller
//! --kube-qps --kube-burst` set it.
//!
//! The wait happens in `poll_ready`: `kube::Client` drives its service stack
//! from one `tower::buffer::Buffer` worker, which calls `poll_ready` before
//! each request, so requests leave in turn at the limiter's pace and none is
//! sent before its token.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use c8s_kube::RateLimiter;

/// Default `--kube-qps`: requests per second on average (0: no limit).
pub const DEFAULT_QPS: u32 = 100;
/// Default `--kube-burst`: requests at once above the average.
pub const DEFAULT_BURST: u32 = 200;

/// A tower layer rate-limiting a client's requests; `qps == 0`: none.
#[derive(Clone, Debug)]
pub struct ThrottleLayer {
    limiter: Option<Arc<RateLimiter>>,
}

impl ThrottleLayer {
    /// `qps` requests per second on average, `burst` at once; `qps == 0`: no limit.
    pub fn new(qps: u32, burst: u32) -> Self {
        ThrottleLayer {
            limiter: (qps > 0).then(|| Arc::new(RateLimiter::new(qps, burst))),
        }
    }
}

impl<S> tower::Layer<S> for ThrottleLayer {
    type Service = Throttle<S>;

    fn layer(&self, inner: S) -> Throttle<S> {
        Throttle {
            inner,
            limiter: self.limiter.clone(),
            state: State::Idle,
        }
    }
}

enum State {
    /// No token taken yet for the next request.
    Idle,
    /// A token is taken; its turn comes when the sleep ends.
    Waiting(Pin<Box<tokio::time::Sleep>>),
    /// The next request may go.
    Ready,
}

/// The service of [`ThrottleLayer`].
pub struct Throttle<S> {
    inner: S,
    limiter: Option<Arc<RateLimiter>>,
    state: State,
}

impl<S> std::fmt::Debug for Throttle<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("limited", &self.limiter.is_some())
            .finish_non_exhaustive()
    }
}

impl<S, R> tower::Service<R> for Throttle<S>
where
    S: tower::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        if let Some(limiter) = &self.limiter {
            loop {
                match &mut self.state {
                    State::Ready => break,
                    State::Idle => {
                        let wait = limiter.reserve();
                        self.state = if wait.is_zero() {
                            State::Ready
                        } else {
                            State::Waiting(Box::pin(tokio::time::sleep(wait)))
                        };
                    }
                    State::Waiting(sleep) => {
                        if sleep.as_mut().poll(cx).is_pending() {
                            return Poll::Pending;
                        }
                        self.state = State::Ready;
                    }
                }
            }
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> S::Future {
        self.state = State::Idle;
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::{Request, Response};
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, ListParams};
    use kube::client::Body;
    use tokio::time::Instant;
    use tower::Layer as _;

    use super::ThrottleLayer;

    /// Answers `count` list requests, recording when each arrived.
    async fn lists_at(qps: u32, burst: u32, count: usize) -> Vec<Duration> {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(ThrottleLayer::new(qps, burst).layer(service), "ci");
        let start = Instant::now();
        let server = tokio::spawn(async move {
            let mut arrivals = Vec::new();
            for _ in 0..count {
                let (_, respond) = handle.next_request().await.expect("a request");
                arrivals.push(start.elapsed());
                let body =
                    serde_json::json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": []});
                respond.send_response(
                    Response::builder()
                        .body(Body::from(serde_json::to_vec(&body).expect("json")))
                        .expect("response"),
                );
            }
            arrivals
        });
        let pods = Api::<Pod>::namespaced(client, "ci");
        let lists = (0..count).map(|_| {
            let pods = pods.clone();
            async move { pods.list(&ListParams::default()).await.expect("list") }
        });
        futures::future::join_all(lists).await;
        server.await.expect("server")
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_goes_at_once_then_requests_leave_at_the_rate() {
        let arrivals = lists_at(10, 3, 8).await;
        // Three at once, then one every 100 ms.
        assert!(
            arrivals[..3].iter().all(|t| *t < Duration::from_millis(5)),
            "{arrivals:?}"
        );
        let last = arrivals[7];
        assert!(
            last >= Duration::from_millis(495) && last <= Duration::from_millis(510),
            "{arrivals:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn qps_zero_does_not_limit() {
        let arrivals = lists_at(0, 0, 50).await;
        assert!(
            arrivals.iter().all(|t| *t < Duration::from_millis(5)),
            "{arrivals:?}"
        );
    }
}
