//! The validating admission webhook for `Pipeline` and `PipelineRun`: the
//! rules of `c8s validate`, applied by the API server when an object is
//! created or updated, so a bad pipeline is refused at `kubectl apply`
//! instead of failing the run later.
//!
//! The API server sends an `admission.k8s.io/v1` `AdmissionReview` to
//! `POST /validate` over HTTPS and takes back one with `response.uid`,
//! `response.allowed` and, when denied, `response.status` ("Dynamic
//! Admission Control",
//! <https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/#response>).
//!
//! The CRD's structural schema cannot do this: a key `on:` becomes `"true"`
//! through a YAML 1.1 reader such as kubectl, and the `retries` union (an
//! integer or an object) keeps unknown fields, so the API server stores such
//! a pipeline as written. Here `spec.pipeline` is written back out as YAML
//! and read by [`c8s_pipeline_model::parse_pipeline`], the strict parser of
//! `.c8s.yaml` files: an error names the field, with the line and column in
//! that YAML text.
//!
//! [`review`] is the whole decision, a pure function; [`serve`] answers the
//! API server over TLS ([`tls_acceptor`]) and looks up the namespace's
//! ResourceQuotas for the quota pre-check.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use c8s_pipeline_model::resources::{ResourceList, check_quota};
use c8s_pipeline_model::{MemorySource, Pipeline as PipelineDefinition};
use c8s_pod_builder::RunContext;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use k8s_openapi::api::core::v1::ResourceQuota;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Client;
use kube::api::{Api, ListParams};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::response::Status;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The path the API server posts AdmissionReviews to.
pub const PATH: &str = "/validate";

/// The HTTP code in `status.code` of a denied request: 422 Unprocessable
/// Entity, what the API server answers for an object its own validation
/// refuses.
pub const DENIED_CODE: u16 = 422;

/// Why an object is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Invalid {
    /// The request carries no object to check.
    #[error("the admission request has no object")]
    NoObject,
    /// A `Pipeline` without `spec.pipeline`.
    #[error("spec.pipeline is required")]
    NoPipeline,
    /// A `PipelineRun` with neither `spec.pipeline` nor `spec.pipelineRef`.
    #[error("a PipelineRun needs spec.pipeline or spec.pipelineRef")]
    NoPipelineOrRef,
    /// `spec.pipeline` could not be written out as YAML to be read.
    #[error("{field} cannot be written as YAML: {message}")]
    Unwritable {
        /// The field (`spec.pipeline`).
        field: &'static str,
        /// What the serialiser said.
        message: String,
    },
    /// `spec.pipeline` breaks a rule of `c8s validate`.
    #[error(
        "{field} is not a valid c8s pipeline (positions are lines and columns of {field} written as YAML):\n{errors}"
    )]
    Pipeline {
        /// The field (`spec.pipeline`).
        field: &'static str,
        /// Every problem, one per line, `spec.pipeline:LINE:COLUMN: ...`.
        errors: String,
    },
    /// The run's busiest layer requests more than the namespace's
    /// ResourceQuota allows in all: it could never start.
    #[error("the run could never start in this namespace: it {0}")]
    Quota(String),
}

/// The answer to `request`: allowed, or denied with every problem in
/// `status.message` and code [`DENIED_CODE`]; `response.uid` is the
/// request's. `quota` is the namespace's ResourceQuota `hard` limits (the
/// tightest of each, [`crate::controller::quota_of`]), checked against a
/// created run's peak requests when given.
///
/// Deletes and connects are allowed; so is an update that leaves `spec` as
/// it was (labels, finalizers) and an object being deleted, so a rule added
/// later never traps an object the API server already holds. A
/// `PipelineRun` that names its pipeline by `pipelineRef` only is allowed:
/// the controller resolves it when the run starts.
pub fn review(request: &AdmissionRequest<DynamicObject>, quota: Option<&ResourceList>) -> AdmissionResponse {
    let response = AdmissionResponse::from(request);
    match check(request, quota) {
        Ok(warnings) => {
            let mut response = response;
            if !warnings.is_empty() {
                response.warnings = Some(warnings);
            }
            response
        }
        Err(invalid) => {
            let mut response = response.deny(&invalid);
            response.result = Status::failure(&invalid.to_string(), "Invalid").with_code(DENIED_CODE);
            response
        }
    }
}

/// The checks of [`review`]: warnings when allowed.
fn check(
    request: &AdmissionRequest<DynamicObject>,
    quota: Option<&ResourceList>,
) -> Result<Vec<String>, Invalid> {
    if !matches!(request.operation, Operation::Create | Operation::Update) {
        return Ok(Vec::new());
    }
    let object = request.object.as_ref().ok_or(Invalid::NoObject)?;
    if object.metadata.deletion_timestamp.is_some() {
        return Ok(Vec::new());
    }
    let spec = object.data.get("spec").unwrap_or(&Value::Null);
    if request.operation == Operation::Update
        && request
            .old_object
            .as_ref()
            .is_some_and(|old| old.data.get("spec").unwrap_or(&Value::Null) == spec)
    {
        return Ok(Vec::new());
    }
    match request.kind.kind.as_str() {
        "Pipeline" => {
            let definition = spec.get("pipeline").ok_or(Invalid::NoPipeline)?;
            check_definition("spec.pipeline", definition).map(|(_, warnings)| warnings)
        }
        "PipelineRun" => match spec.get("pipeline").filter(|p| !p.is_null()) {
            Some(definition) => {
                let (pipeline, warnings) = check_definition("spec.pipeline", definition)?;
                if let Some(quota) = quota
                    && request.operation == Operation::Create
                {
                    check_run_quota(&pipeline, object, spec, quota)?;
                }
                Ok(warnings)
            }
            None if spec
                .get("pipelineRef")
                .and_then(Value::as_str)
                .is_some_and(|r| !r.is_empty()) =>
            {
                Ok(Vec::new())
            }
            None => Err(Invalid::NoPipelineOrRef),
        },
        // Not ours: the webhook configuration names only the two kinds.
        _ => Ok(Vec::new()),
    }
}

/// Writes `definition` (the pipeline object the API server received) as
/// YAML and reads it as `c8s validate` reads a `.c8s.yaml` file; returns the
/// pipeline and the YAML 1.1 key warnings of that text.
///
/// The sidecars `c8s run --in-cluster` loaded from a step's `sidecarFiles`
/// (`loadedSidecars`) are checked as inline sidecars: the files themselves
/// are not in the cluster.
fn check_definition(
    field: &'static str,
    definition: &Value,
) -> Result<(PipelineDefinition, Vec<String>), Invalid> {
    let definition = with_loaded_sidecars_inline(definition);
    let text = serde_saphyr::to_string(&definition).map_err(|e| Invalid::Unwritable {
        field,
        message: e.to_string(),
    })?;
    let pipeline =
        c8s_pipeline_model::parse_pipeline(field, &text, &MemorySource::new()).map_err(|errors| {
            Invalid::Pipeline {
                field,
                errors: describe(field, &text, &errors),
            }
        })?;
    Ok((pipeline, c8s_pipeline_model::yaml11_key_warnings(field, &text)))
}

/// One line per error of `errors` (read from `text`): as `c8s validate`
/// says it, and for a syntax error (an unknown field, a wrong type), which
/// names no field, the field at its position in `text` first. A key that a
/// YAML 1.1 reader turned into `true` or `false` is said to be one.
fn describe(field: &str, text: &str, errors: &c8s_pipeline_model::Errors) -> String {
    let map = c8s_pipeline_model::sidecar::yaml::SourceMap::build(field, text);
    let lines: Vec<String> = errors
        .iter()
        .map(|error| {
            let line = error.to_string();
            if error.path().is_some() {
                return line;
            }
            let at = error.position();
            let Some(path) = map
                .entries()
                .filter(|(_, p)| (p.line, p.column) <= (at.line, at.column))
                .max_by_key(|(_, p)| (p.line, p.column))
                .map(|(path, _)| path)
            else {
                return line;
            };
            let Some((position, message)) = line.split_once(": ") else {
                return format!("{field}.{path}: {line}");
            };
            let boolean = matches!(
                path.segments().last(),
                Some(c8s_pipeline_model::sidecar::path::Segment::Key(key)) if key == "true" || key == "false"
            );
            let hint = if boolean {
                " (a YAML 1.1 reader such as kubectl reads the keys on, yes, y as true and off, no, n as \
                 false: write `when` for `retries.on`, or quote the key)"
            } else {
                ""
            };
            format!("{position}: {field}.{path}: {message}{hint}")
        })
        .collect();
    lines.join("\n")
}

/// `definition` with each step's `loadedSidecars` appended to its `sidecars`
/// and its `sidecarFiles` dropped.
fn with_loaded_sidecars_inline(definition: &Value) -> Value {
    let mut definition = definition.clone();
    for list in ["steps", "finally"] {
        let Some(steps) = definition.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for step in steps.iter_mut().filter_map(Value::as_object_mut) {
            step.remove("sidecarFiles");
            let Some(Value::Array(loaded)) = step.remove("loadedSidecars") else {
                continue;
            };
            if loaded.is_empty() {
                continue;
            }
            match step.get_mut("sidecars") {
                Some(Value::Array(sidecars)) => sidecars.extend(loaded),
                _ => {
                    step.insert("sidecars".to_owned(), Value::Array(loaded));
                }
            }
        }
    }
    definition
}

/// The quota pre-check of the controller ([`crate::reconcile`]), at create
/// time: the run's peak requests against the namespace's `hard` limits. A
/// pipeline that cannot be expanded or rendered is left to the controller,
/// which reports it on the run.
fn check_run_quota(
    pipeline: &PipelineDefinition,
    run: &DynamicObject,
    spec: &Value,
    quota: &ResourceList,
) -> Result<(), Invalid> {
    let name = run
        .metadata
        .name
        .clone()
        .or_else(|| run.metadata.generate_name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "admission".to_owned());
    let text = |key: &str| {
        spec.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let build = spec.get("build").and_then(Value::as_u64).unwrap_or_default();
    let ctx = RunContext::new(name, build)
        .with_commit(text("commit"))
        .with_branch(text("branch"))
        .with_repository(pipeline.repository.clone())
        .with_namespace(run.metadata.namespace.clone().unwrap_or_default());
    let Ok(steps) = crate::steps::run_steps(pipeline, &ctx, OwnerReference::default(), false) else {
        return Ok(());
    };
    check_quota(&steps.peak_requests, quota).map_err(|e| Invalid::Quota(e.to_string()))
}

/// Why the TLS listener cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file cannot be read.
    #[error("{flag} {path}: {source}")]
    Read {
        /// The flag that named the file.
        flag: &'static str,
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A PEM file holds no certificate or key, or a bad one.
    #[error("{flag} {path}: {message}")]
    Pem {
        /// The flag that named the file.
        flag: &'static str,
        /// The file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// rustls refused the certificate and key.
    #[error("TLS certificate and key: {0}")]
    Config(#[from] rustls::Error),
}

/// The TLS acceptor of the admission listener, from a PEM certificate chain
/// (`--tls-cert-file`) and its PEM private key (`--tls-key-file`); rustls
/// with the ring provider, HTTP/1.1.
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let read = |flag: &'static str, path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            flag,
            path: path.display().to_string(),
            source,
        })
    };
    let pem_error = |flag: &'static str, path: &Path, message: String| TlsError::Pem {
        flag,
        path: path.display().to_string(),
        message,
    };
    let cert_pem = read("--tls-cert-file", cert)?;
    let key_pem = read("--tls-key-file", key)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error("--tls-cert-file", cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(pem_error(
            "--tls-cert-file",
            cert,
            "no certificate in it".to_owned(),
        ));
    }
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| pem_error("--tls-key-file", key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The routes of the admission listener: `POST /validate`. With `client`,
/// a created run's namespace's ResourceQuotas are listed for the quota
/// pre-check (when that fails, the check is skipped and logged).
pub fn router(client: Option<Client>) -> Router {
    Router::new().route(PATH, post(validate)).with_state(client)
}

/// `POST /validate`: an AdmissionReview in, an AdmissionReview out. A body
/// that is not an AdmissionReview is answered 400.
async fn validate(State(client): State<Option<Client>>, body: Bytes) -> Response {
    let review_in: AdmissionReview<DynamicObject> = match serde_json::from_slice(&body) {
        Ok(review) => review,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("not an AdmissionReview: {e}")).into_response(),
    };
    let request: AdmissionRequest<DynamicObject> = match review_in.try_into() {
        Ok(request) => request,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("not an AdmissionReview request: {e}"),
            )
                .into_response();
        }
    };
    let quota = match (&client, request.namespace.as_deref()) {
        (Some(client), Some(namespace)) if wants_quota(&request) => namespace_quota(client, namespace).await,
        _ => None,
    };
    let response = review(&request, quota.as_ref());
    if !response.allowed {
        tracing::info!(
            kind = %request.kind.kind,
            namespace = request.namespace.as_deref().unwrap_or_default(),
            name = %request.name,
            "admission denied: {}",
            response.result.message
        );
    }
    match serde_json::to_vec(&response.into_review()) {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Whether [`review`] would use the quota: a created run with its pipeline
/// embedded.
fn wants_quota(request: &AdmissionRequest<DynamicObject>) -> bool {
    request.operation == Operation::Create
        && request.kind.kind == "PipelineRun"
        && request
            .object
            .as_ref()
            .and_then(|o| o.data.get("spec"))
            .and_then(|s| s.get("pipeline"))
            .is_some_and(|p| !p.is_null())
}

/// The tightest `hard` limits of `namespace`'s ResourceQuotas; `None` when
/// there are none or they cannot be listed (logged).
async fn namespace_quota(client: &Client, namespace: &str) -> Option<ResourceList> {
    let quotas = Api::<ResourceQuota>::namespaced(client.clone(), namespace);
    match quotas.list(&ListParams::default()).await {
        Ok(list) => crate::controller::quota_of(&list.items),
        Err(e) => {
            tracing::warn!(
                namespace,
                "admission: cannot list ResourceQuotas, quota not checked: {e}"
            );
            None
        }
    }
}

/// Serves `router` over TLS on `listener` until `stop` completes; each
/// connection's handshake has 10 s.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: Router,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let mut stop = std::pin::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("admission: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::warn!("admission: TLS handshake with {peer}: {e}");
                    return;
                }
                Err(_) => {
                    tracing::warn!("admission: TLS handshake with {peer} timed out");
                    return;
                }
            };
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!("admission: connection from {peer}: {e}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// An AdmissionReview request as the API server sends it.
    fn request(
        operation: &str,
        kind: &str,
        spec: Value,
        old_spec: Option<Value>,
    ) -> AdmissionRequest<DynamicObject> {
        let review: AdmissionReview<DynamicObject> =
            serde_json::from_value(review_json(operation, kind, spec, old_spec)).expect("review");
        review.try_into().expect("request")
    }

    /// The AdmissionReview of [`request`], as JSON.
    fn review_json(operation: &str, kind: &str, spec: Value, old_spec: Option<Value>) -> Value {
        let object = |spec: Value| {
            json!({
                "apiVersion": "c8s.dev/v1alpha1", "kind": kind,
                "metadata": { "name": "shop", "namespace": "team-a" },
                "spec": spec
            })
        };
        let plural = format!("{}s", kind.to_lowercase());
        json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                "kind": { "group": "c8s.dev", "version": "v1alpha1", "kind": kind },
                "resource": { "group": "c8s.dev", "version": "v1alpha1", "resource": plural },
                "name": "shop", "namespace": "team-a", "operation": operation,
                "userInfo": { "username": "alice" },
                "object": object(spec),
                "oldObject": old_spec.map(object),
                "dryRun": false
            }
        })
    }

    /// `POST /validate` of `body` to [`router`]: the status and the body.
    async fn post(body: Vec<u8>) -> (StatusCode, Vec<u8>) {
        use tower::ServiceExt;
        let request = axum::http::Request::post(PATH)
            .header(header::CONTENT_TYPE, "application/json")
            .body(axum::body::Body::from(body))
            .expect("request");
        let response = router(None).oneshot(request).await.expect("infallible");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, body.to_vec())
    }

    #[tokio::test]
    async fn post_validate_answers_a_review_with_a_review_and_anything_else_with_400() {
        let spec = json!({ "pipeline": pipeline(json!({ "limit": 1, "true": ["error"] })) });
        let body = serde_json::to_vec(&review_json("CREATE", "Pipeline", spec, None)).expect("json");
        let (status, body) = post(body).await;
        assert_eq!(status, StatusCode::OK);
        let out: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(out["kind"], "AdmissionReview");
        assert_eq!(out["response"]["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(out["response"]["allowed"], false);
        assert_eq!(out["response"]["status"]["code"], 422);
        let (status, _) = post(b"{\"kind\": \"Pod\"}".to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    fn pipeline(retries: Value) -> Value {
        json!({
            "name": "shop",
            "repository": "https://github.com/octo-org/shop.git",
            "retries": retries,
            "steps": [{ "name": "test", "image": "alpine:3", "commands": ["true"] }]
        })
    }

    #[test]
    fn a_valid_pipeline_is_allowed_and_the_uid_is_echoed() {
        let request = request(
            "CREATE",
            "Pipeline",
            json!({ "pipeline": pipeline(json!(2)) }),
            None,
        );
        let response = review(&request, None);
        assert!(response.allowed, "{:?}", response.result);
        assert_eq!(response.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
        let out = serde_json::to_value(response.into_review()).expect("json");
        assert_eq!(out["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(out["kind"], "AdmissionReview");
        assert_eq!(out["response"]["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(out["response"]["allowed"], true);
    }

    #[test]
    fn a_key_on_that_kubectl_read_as_true_is_denied_naming_the_field_and_its_line() {
        let spec = json!({ "pipeline": pipeline(json!({ "limit": 1, "true": ["error"] })) });
        let response = review(&request("CREATE", "Pipeline", spec, None), None);
        assert!(!response.allowed);
        assert_eq!(response.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(response.result.code, DENIED_CODE);
        let message = &response.result.message;
        assert!(
            message.contains("spec.pipeline.retries.true: unknown field `true`"),
            "{message}"
        );
        assert!(message.contains("write `when` for `retries.on`"), "{message}");
        // `spec.pipeline:LINE:COLUMN:` of the YAML text read.
        let located = message.lines().any(|l| {
            l.strip_prefix("spec.pipeline:")
                .and_then(|rest| rest.split_once(": "))
                .and_then(|(at, _)| at.split_once(':'))
                .is_some_and(|(line, column)| line.parse::<u32>().is_ok() && column.parse::<u32>().is_ok())
        });
        assert!(located, "{message}");
        let out = serde_json::to_value(response.into_review()).expect("json");
        assert_eq!(out["response"]["allowed"], false);
        assert_eq!(out["response"]["status"]["code"], 422);
    }

    #[test]
    fn a_run_with_a_pipeline_ref_is_allowed_and_an_embedded_bad_pipeline_is_denied() {
        let by_ref = request(
            "CREATE",
            "PipelineRun",
            json!({ "pipelineRef": "shop", "build": 1 }),
            None,
        );
        assert!(review(&by_ref, None).allowed);
        let bad = json!({ "pipeline": pipeline(json!({ "limit": 1, "true": ["error"] })), "build": 1 });
        let response = review(&request("CREATE", "PipelineRun", bad, None), None);
        assert!(!response.allowed);
        assert!(
            response.result.message.contains("retries"),
            "{}",
            response.result.message
        );
        let neither = request("CREATE", "PipelineRun", json!({ "build": 1 }), None);
        assert!(!review(&neither, None).allowed);
    }

    #[test]
    fn an_update_that_leaves_the_spec_alone_is_allowed() {
        let bad = json!({ "pipeline": pipeline(json!({ "limit": 1, "true": ["error"] })) });
        let update = request("UPDATE", "Pipeline", bad.clone(), Some(bad.clone()));
        assert!(review(&update, None).allowed);
        let changed = request(
            "UPDATE",
            "Pipeline",
            bad,
            Some(json!({ "pipeline": pipeline(json!(1)) })),
        );
        assert!(!review(&changed, None).allowed);
    }

    #[test]
    fn a_created_run_whose_peak_exceeds_the_namespace_quota_is_denied() {
        let mut definition = pipeline(json!(1));
        definition["steps"][0]["resources"] = json!({ "requests": { "cpu": "120" } });
        let spec = json!({ "pipeline": definition, "build": 1, "branch": "main" });
        let quota = |cpu: &str| ResourceList::from([("cpu".to_owned(), cpu.parse().expect("quantity"))]);
        let create = request("CREATE", "PipelineRun", spec, None);
        let response = review(&create, Some(&quota("100")));
        assert!(!response.allowed);
        assert!(
            response
                .result
                .message
                .contains("would exceed cpu quota: 120 requested, 100 allowed"),
            "{}",
            response.result.message
        );
        assert!(review(&create, Some(&quota("200"))).allowed);
        assert!(review(&create, None).allowed);
    }

    #[test]
    fn loaded_sidecars_are_checked_as_inline_sidecars() {
        let mut definition = pipeline(json!(1));
        definition["steps"][0]["sidecarFiles"] = json!(["db.yaml"]);
        definition["steps"][0]["loadedSidecars"] = json!([{ "name": "db", "image": "postgres:17" }]);
        let spec = json!({ "pipeline": definition });
        let response = review(&request("CREATE", "Pipeline", spec, None), None);
        assert!(response.allowed, "{:?}", response.result);
    }
}
