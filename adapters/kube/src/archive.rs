//! The log archive: a step's masked container logs, stored in an
//! S3-compatible bucket, each under a key and with a URL to fetch it.
//!
//! ```no_run
//! # async fn example(raw: &[u8], masker: c8s_pipeline_model::SecretMasker) -> Result<(), c8s_kube::archive::ArchiveError> {
//! use c8s_kube::archive::{Archive, ArchiveSettings, Credentials, LogKey};
//!
//! let mut settings = ArchiveSettings::new("ci-logs", Credentials::new("AKIDEXAMPLE", "..."));
//! settings.endpoint = Some("http://minio.storage:9000".into());
//! settings.prefix = "c8s".into();
//! let archive = Archive::new(settings)?;
//! let log = LogKey::new("team-a", "orders-b42", "unit", 0, "main");
//! let archived = archive.upload_masked(&log, raw, masker).await?;
//! println!("{} at {}", archived.key, archived.url);
//! # Ok(())
//! # }
//! ```
//!
//! - Keys: `<prefix>/<namespace>/<run>/<step>/<attempt>/<container>.log`
//!   ([`LogKey`]); every part is sanitized (only `A-Z a-z 0-9 . _ -` stay,
//!   anything else becomes `_`, a part of dots only becomes underscores), so
//!   no part holds a `/` or is `..`.
//! - A log larger than [`ArchiveSettings::part_size`] (8 MiB by default) goes
//!   as a multipart upload, in parts of that size (S3 wants every part but
//!   the last to be at least 5 MiB:
//!   <https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html>).
//! - Transient failures (connection refused, timeouts, HTTP 5xx) are retried
//!   by object_store's `RetryConfig`, with bounded exponential backoff
//!   ([`ArchiveRetry`]); then [`ArchiveError::Unavailable`]. A missing
//!   bucket ([`ArchiveError::NoSuchBucket`]) and refused credentials
//!   ([`ArchiveError::AccessDenied`]) are not retried.
//! - [`Archive::upload_masked`] masks first and refuses
//!   ([`ArchiveError::Unmaskable`]) a log whose secrets include values too
//!   short to mask: such a log is never uploaded.
//! - [`ArchivedLog::url`] is the object's plain URL, path-style
//!   (`<endpoint>/<bucket>/<key>`) or virtual-hosted
//!   (`<scheme>://<bucket>.<host>/<key>`) as the settings say
//!   (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/VirtualHosting.html>);
//!   fetching it needs the credentials. [`Archive::presigned_url`] gives a
//!   SigV4 presigned GET URL that needs none, for a limited time.
//! - Credentials never appear in `Debug` output nor in an error's message.
//!
//! # Why object_store
//!
//! Measured on this crate (`cargo tree -p c8s-kube -e normal`, lines / distinct
//! crates; 389 / 159 before): `object_store` 0.14 with `aws-base` + `ring` and
//! reqwest without its own crypto provider: 574 / 211 (+52 crates, all pure
//! Rust: it shares kube's rustls, ring, hyper and tokio); `rust-s3` 0.38 with
//! `tokio-rustls-tls`: 588 / 220 (+61, and aws-lc-sys, a C library built
//! with cmake); `aws-sdk-s3` 1.122 with `rt-tokio` + `default-https-client`:
//! 674 / 234 (+75, and aws-lc-sys too). object_store's `aws` feature would
//! also pull aws-lc-sys; `aws-base` + `ring` does not. object_store signs
//! requests (SigV4), retries with backoff, uploads multipart and presigns
//! URLs; it is maintained by the Apache Arrow project.
//!
//! reqwest is built without a crypto provider: the first [`Archive::new`]
//! installs rustls's ring provider as the process default when none is
//! installed yet (the one kube's TLS uses).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::signer::{Method, Signer, Url};
use object_store::{BackoffConfig, ClientOptions, ObjectStoreExt, PutPayload, RetryConfig};

use c8s_pipeline_model::SecretMasker;

/// The default size of a multipart upload's parts, and the size above which
/// a log goes as a multipart upload: 8 MiB.
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;

/// The smallest part S3 accepts, except for the last one: 5 MiB
/// (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html>).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

/// The keys of a Kubernetes Secret that [`Credentials::from_secret`] reads,
/// named as the AWS SDKs name their environment variables.
pub const SECRET_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
/// See [`SECRET_ACCESS_KEY_ID`].
pub const SECRET_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
/// See [`SECRET_ACCESS_KEY_ID`]; optional.
pub const SECRET_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";

/// What went wrong archiving or fetching a log. No message holds a
/// credential.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// The settings cannot work (an empty bucket, a bad endpoint URL...).
    #[error("invalid log archive settings: {0}")]
    Settings(String),
    /// The bucket does not exist.
    #[error("the log archive's bucket {bucket:?} does not exist at {endpoint}")]
    NoSuchBucket {
        /// The bucket's name.
        bucket: String,
        /// The storage's endpoint.
        endpoint: String,
    },
    /// The object does not exist (on [`Archive::fetch`]).
    #[error("no archived log {key:?} in bucket {bucket:?}")]
    NotFound {
        /// The bucket's name.
        bucket: String,
        /// The object's key.
        key: String,
    },
    /// The storage refused the credentials or their rights: not retried.
    #[error(
        "the log archive at {endpoint} refused access to bucket {bucket:?}: {code} (check the credentials and their rights)"
    )]
    AccessDenied {
        /// The bucket's name.
        bucket: String,
        /// The storage's endpoint.
        endpoint: String,
        /// The storage's error code (such as `InvalidAccessKeyId`,
        /// `SignatureDoesNotMatch`, `AccessDenied`), or the HTTP status.
        code: String,
    },
    /// The storage could not be reached or kept failing (connection refused,
    /// timeouts, HTTP 5xx) after the retries of [`ArchiveRetry`].
    #[error("the log archive at {endpoint} is unavailable, gave up after retrying: {detail}")]
    Unavailable {
        /// The storage's endpoint.
        endpoint: String,
        /// What the last attempt saw.
        detail: String,
    },
    /// The log was not uploaded: some secret values are too short to be
    /// masked (see `c8s_pipeline_model::MIN_SECRET_LEN`), so the masked log
    /// could still show them.
    #[error("the log {key:?} was not archived: {count} secret value(s) too short to mask{}", names_suffix(.names))]
    Unmaskable {
        /// The key the log would have had.
        key: String,
        /// How many values are too short.
        count: usize,
        /// The names of the named ones (`secret/key`), never their values.
        names: Vec<String>,
    },
    /// Any other failure of the storage.
    #[error("the log archive failed: {0}")]
    Storage(String),
}

fn names_suffix(names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!(" ({})", names.join(", "))
    }
}

/// The credentials of the archive's storage: an access key and its secret.
/// `Debug` shows neither.
#[derive(Clone)]
pub struct Credentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

impl Credentials {
    /// An access key id and its secret access key.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
        }
    }

    /// Adds a session token (temporary credentials).
    #[must_use]
    pub fn with_session_token(mut self, token: impl Into<String>) -> Self {
        self.session_token = Some(token.into());
        self
    }

    /// Reads the credentials from a Secret's data: [`SECRET_ACCESS_KEY_ID`],
    /// [`SECRET_SECRET_ACCESS_KEY`] and, when present,
    /// [`SECRET_SESSION_TOKEN`]. A missing key or a value that is not UTF-8
    /// is an [`ArchiveError::Settings`] naming the key, never the value.
    pub fn from_secret(secret: &k8s_openapi::api::core::v1::Secret) -> Result<Self, ArchiveError> {
        let name = secret.metadata.name.as_deref().unwrap_or("");
        let data = secret.data.as_ref();
        let read = |key: &str| -> Result<Option<String>, ArchiveError> {
            match data.and_then(|d| d.get(key)) {
                None => Ok(None),
                Some(value) => String::from_utf8(value.0.clone())
                    .map(Some)
                    .map_err(|_| ArchiveError::Settings(format!("the value of {name}/{key} is not UTF-8"))),
            }
        };
        let required = |key: &str| -> Result<String, ArchiveError> {
            read(key)?.ok_or_else(|| ArchiveError::Settings(format!("the Secret {name:?} has no key {key}")))
        };
        let mut credentials = Self::new(
            required(SECRET_ACCESS_KEY_ID)?,
            required(SECRET_SECRET_ACCESS_KEY)?,
        );
        credentials.session_token = read(SECRET_SESSION_TOKEN)?;
        Ok(credentials)
    }

    /// The values that must never appear in a message.
    fn secrets(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.secret_access_key.as_str())
            .chain(self.session_token.as_deref())
            .filter(|s| !s.is_empty())
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &"<redacted>")
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// How transient failures are retried: bounded exponential backoff.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ArchiveRetry {
    /// Retries of one request after its first try.
    pub max_retries: usize,
    /// The first backoff; each next one is twice as long (object_store adds
    /// jitter).
    pub initial_backoff: Duration,
    /// The longest backoff.
    pub max_backoff: Duration,
    /// No retry starts later than this after a request's first try.
    pub retry_timeout: Duration,
    /// How long one request may take.
    pub request_timeout: Duration,
    /// How long connecting may take.
    pub connect_timeout: Duration,
}

impl Default for ArchiveRetry {
    /// 5 retries, backoff from 200 ms to 5 s, no retry after 60 s; 120 s a
    /// request (a part is 8 MiB), 5 s to connect.
    fn default() -> Self {
        Self {
            max_retries: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            retry_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Where and how logs are archived: one per installation.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ArchiveSettings {
    /// The storage's URL (`http://minio.storage:9000`); `None` for AWS S3's
    /// regional endpoint. An `http://` endpoint is allowed as given.
    pub endpoint: Option<String>,
    /// The bucket; it must exist.
    pub bucket: String,
    /// The first part of every key (may hold `/`); empty for none.
    pub prefix: String,
    /// The region requests are signed for (`us-east-1` by default).
    pub region: String,
    /// Path-style requests (`<endpoint>/<bucket>/<key>`) rather than
    /// virtual-hosted ones (`<bucket>.<host>/<key>`). Most self-hosted
    /// servers (MinIO, SeaweedFS, Ceph) want path-style: the default.
    pub path_style: bool,
    /// The access key and its secret.
    pub credentials: Credentials,
    /// A log above this size goes as a multipart upload, in parts of this
    /// size; at least [`MIN_PART_SIZE`].
    pub part_size: usize,
    /// Retries of transient failures.
    pub retry: ArchiveRetry,
}

impl ArchiveSettings {
    /// Settings for `bucket` with `credentials`: AWS's endpoint, region
    /// `us-east-1`, path-style, no prefix, [`DEFAULT_PART_SIZE`], the default
    /// [`ArchiveRetry`].
    pub fn new(bucket: impl Into<String>, credentials: Credentials) -> Self {
        Self {
            endpoint: None,
            bucket: bucket.into(),
            prefix: String::new(),
            region: "us-east-1".into(),
            path_style: true,
            credentials,
            part_size: DEFAULT_PART_SIZE,
            retry: ArchiveRetry::default(),
        }
    }

    /// The endpoint requests go to, with the bucket in the host for
    /// virtual-hosted requests.
    fn request_endpoint(&self) -> Result<Url, ArchiveError> {
        let base = match &self.endpoint {
            Some(endpoint) => endpoint.trim_end_matches('/').to_string(),
            // https://docs.aws.amazon.com/general/latest/gr/s3.html
            None => format!("https://s3.{}.amazonaws.com", self.region),
        };
        let mut url = Url::parse(&base)
            .map_err(|e| ArchiveError::Settings(format!("the endpoint {base:?} is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ArchiveError::Settings(format!(
                "the endpoint {base:?} is not http(s)"
            )));
        }
        if !self.path_style {
            let host = url
                .host_str()
                .ok_or_else(|| ArchiveError::Settings(format!("the endpoint {base:?} has no host")))?;
            let virtual_host = format!("{}.{host}", self.bucket);
            url.set_host(Some(&virtual_host)).map_err(|e| {
                ArchiveError::Settings(format!("bucket {:?} in a host name: {e}", self.bucket))
            })?;
        }
        Ok(url)
    }
}

/// Whose log an object is: the parts of its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogKey {
    /// The run's namespace.
    pub namespace: String,
    /// The run's id.
    pub run: String,
    /// The step's name.
    pub step: String,
    /// The attempt, 0-based.
    pub attempt: u32,
    /// The container's name.
    pub container: String,
}

impl LogKey {
    /// The log of `container` in `step`'s attempt `attempt` of `run` in `namespace`.
    pub fn new(
        namespace: impl Into<String>,
        run: impl Into<String>,
        step: impl Into<String>,
        attempt: u32,
        container: impl Into<String>,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            run: run.into(),
            step: step.into(),
            attempt,
            container: container.into(),
        }
    }

    /// `<prefix>/<namespace>/<run>/<step>/<attempt>/<container>.log`, each
    /// part sanitized (see the [module docs](self)); an empty prefix is left out.
    pub fn object_key(&self, prefix: &str) -> String {
        let mut parts: Vec<String> = prefix
            .split('/')
            .filter(|p| !p.is_empty())
            .map(sanitize)
            .collect();
        parts.push(sanitize(&self.namespace));
        parts.push(sanitize(&self.run));
        parts.push(sanitize(&self.step));
        parts.push(self.attempt.to_string());
        parts.push(format!("{}.log", sanitize(&self.container)));
        parts.join("/")
    }
}

/// One part of a key: only `A-Z a-z 0-9 . _ -` stay, anything else
/// (`/`, spaces, non-ASCII) becomes `_`; an empty part or one of dots only
/// (`.`, `..`) becomes underscores, so a key never walks up.
pub fn sanitize(part: &str) -> String {
    let cleaned: String = part
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.chars().all(|c| c == '.') {
        "_".repeat(cleaned.len().max(1))
    } else {
        cleaned
    }
}

/// A log stored in the archive.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArchivedLog {
    /// The object's key in the bucket.
    pub key: String,
    /// The object's URL, path-style or virtual-hosted as configured;
    /// fetching it needs the credentials (see [`Archive::presigned_url`]).
    pub url: String,
    /// The bytes stored.
    pub size: u64,
    /// How many parts the upload had: 1 for a single PUT.
    pub parts: usize,
}

/// An S3-compatible bucket that logs are archived in. Cheap to clone.
#[derive(Clone)]
pub struct Archive {
    store: Arc<AmazonS3>,
    settings: Arc<ArchiveSettings>,
    /// The endpoint, with the bucket in the host when virtual-hosted.
    endpoint: Url,
}

impl fmt::Debug for Archive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Archive")
            .field("endpoint", &self.endpoint.as_str())
            .field("bucket", &self.settings.bucket)
            .field("prefix", &self.settings.prefix)
            .finish_non_exhaustive()
    }
}

/// What a request was doing, for reading its error.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Upload,
    Fetch,
}

impl Archive {
    /// An archive with `settings`. Checks them (nothing is sent yet).
    pub fn new(settings: ArchiveSettings) -> Result<Self, ArchiveError> {
        if settings.bucket.is_empty() {
            return Err(ArchiveError::Settings("the bucket is empty".into()));
        }
        if settings.credentials.access_key_id.is_empty() || settings.credentials.secret_access_key.is_empty()
        {
            return Err(ArchiveError::Settings(
                "the access key id or the secret access key is empty".into(),
            ));
        }
        if settings.part_size < MIN_PART_SIZE {
            return Err(ArchiveError::Settings(format!(
                "the part size {} is below S3's minimum of {MIN_PART_SIZE} bytes",
                settings.part_size
            )));
        }
        let endpoint = settings.request_endpoint()?;
        ensure_crypto_provider();
        let retry = &settings.retry;
        let client = ClientOptions::new()
            .with_allow_http(endpoint.scheme() == "http")
            .with_timeout(retry.request_timeout)
            .with_connect_timeout(retry.connect_timeout);
        let credentials = &settings.credentials;
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region)
            .with_endpoint(endpoint.as_str().trim_end_matches('/'))
            .with_virtual_hosted_style_request(!settings.path_style)
            .with_access_key_id(&credentials.access_key_id)
            .with_secret_access_key(&credentials.secret_access_key)
            .with_client_options(client)
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: retry.initial_backoff,
                    max_backoff: retry.max_backoff,
                    base: 2.0,
                },
                max_retries: retry.max_retries,
                retry_timeout: retry.retry_timeout,
            });
        if let Some(token) = &credentials.session_token {
            builder = builder.with_token(token);
        }
        let store = builder
            .build()
            .map_err(|e| ArchiveError::Settings(scrub(&e.to_string(), credentials)))?;
        Ok(Self {
            store: Arc::new(store),
            settings: Arc::new(settings),
            endpoint,
        })
    }

    /// The settings this archive was made with.
    pub fn settings(&self) -> &ArchiveSettings {
        &self.settings
    }

    /// The object key of `log` (with the configured prefix).
    pub fn key(&self, log: &LogKey) -> String {
        log.object_key(&self.settings.prefix)
    }

    /// The plain URL of the object at `key`: `<endpoint>/<bucket>/<key>`
    /// path-style, `<scheme>://<bucket>.<host>/<key>` virtual-hosted.
    pub fn url(&self, key: &str) -> String {
        let base = self.endpoint.as_str().trim_end_matches('/');
        if self.settings.path_style {
            format!("{base}/{}/{key}", self.settings.bucket)
        } else {
            format!("{base}/{key}")
        }
    }

    /// A presigned GET URL of the object at `key` (AWS SigV4 query
    /// authentication, valid for `expires_in`, at most 7 days:
    /// <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html>).
    /// Anyone holding it can read the log until it expires.
    pub async fn presigned_url(&self, key: &str, expires_in: Duration) -> Result<String, ArchiveError> {
        let path = Path::from(key);
        let url = self
            .store
            .signed_url(Method::GET, &path, expires_in)
            .await
            .map_err(|e| self.error(e, Op::Fetch, key))?;
        Ok(url.to_string())
    }

    /// Stores `bytes` (already masked) as the log of `log`; a log above
    /// [`ArchiveSettings::part_size`] goes as a multipart upload. Transient
    /// failures are retried per [`ArchiveRetry`].
    pub async fn upload(&self, log: &LogKey, bytes: impl Into<Bytes>) -> Result<ArchivedLog, ArchiveError> {
        let key = self.key(log);
        let bytes: Bytes = bytes.into();
        let size = bytes.len() as u64;
        let parts = if bytes.len() <= self.settings.part_size {
            self.store
                .put(&Path::from(key.as_str()), PutPayload::from_bytes(bytes))
                .await
                .map_err(|e| self.error(e, Op::Upload, &key))?;
            1
        } else {
            self.upload_multipart(&key, bytes).await?
        };
        tracing::debug!(key, size, parts, "archived a log");
        Ok(ArchivedLog {
            url: self.url(&key),
            key,
            size,
            parts,
        })
    }

    /// Uploads `bytes` in parts of `part_size`, one after the other; a
    /// failed upload is aborted so no parts are left behind
    /// (<https://docs.aws.amazon.com/AmazonS3/latest/API/API_AbortMultipartUpload.html>).
    async fn upload_multipart(&self, key: &str, bytes: Bytes) -> Result<usize, ArchiveError> {
        let path = Path::from(key);
        let mut upload = self
            .store
            .put_multipart(&path)
            .await
            .map_err(|e| self.error(e, Op::Upload, key))?;
        let part_size = self.settings.part_size;
        let mut parts = 0;
        let mut offset = 0;
        let mut sent: Result<(), object_store::Error> = Ok(());
        while offset < bytes.len() {
            let end = (offset + part_size).min(bytes.len());
            sent = upload
                .put_part(PutPayload::from_bytes(bytes.slice(offset..end)))
                .await;
            if sent.is_err() {
                break;
            }
            parts += 1;
            offset = end;
        }
        let completed = match sent {
            Ok(()) => upload.complete().await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = completed {
            if let Err(abort) = upload.abort().await {
                tracing::debug!(key, error = %scrub(&abort.to_string(), &self.settings.credentials), "could not abort a multipart upload");
            }
            return Err(self.error(e, Op::Upload, key));
        }
        Ok(parts)
    }

    /// Masks `raw` with `masker` (a fresh one, built for the run's secrets)
    /// and uploads the result; the raw bytes are never sent. Refuses with
    /// [`ArchiveError::Unmaskable`], uploading nothing, when some secret
    /// values are too short to mask (`SecretMasker::ignored_values`).
    pub async fn upload_masked(
        &self,
        log: &LogKey,
        raw: &[u8],
        mut masker: SecretMasker,
    ) -> Result<ArchivedLog, ArchiveError> {
        if masker.ignored_values() > 0 {
            return Err(ArchiveError::Unmaskable {
                key: self.key(log),
                count: masker.ignored_values(),
                names: masker.short_values().to_vec(),
            });
        }
        let mut masked = Vec::with_capacity(raw.len());
        masker.feed_into(raw, &mut masked);
        masker.finish_into(&mut masked);
        self.upload(log, masked).await
    }

    /// The stored bytes of the object at `key` (as [`ArchivedLog::key`] says).
    pub async fn fetch(&self, key: &str) -> Result<Bytes, ArchiveError> {
        let path = Path::from(key);
        let got = self
            .store
            .get(&path)
            .await
            .map_err(|e| self.error(e, Op::Fetch, key))?;
        got.bytes().await.map_err(|e| self.error(e, Op::Fetch, key))
    }

    /// Reads object_store's error into an [`ArchiveError`], without
    /// credentials in its text.
    fn error(&self, error: object_store::Error, op: Op, key: &str) -> ArchiveError {
        let settings = &self.settings;
        let text = scrub(&error_chain(&error), &settings.credentials);
        let bucket = settings.bucket.clone();
        let endpoint = self.endpoint_display();
        match error {
            object_store::Error::NotFound { .. } if op == Op::Fetch && !text.contains("NoSuchBucket") => {
                ArchiveError::NotFound {
                    bucket,
                    key: key.to_string(),
                }
            }
            // A part of a multipart upload that is gone (aborted meanwhile).
            object_store::Error::NotFound { .. } if text.contains("NoSuchUpload") => {
                ArchiveError::Storage(text)
            }
            // Otherwise an upload's 404 is the bucket: S3 answers NoSuchBucket
            // (https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html).
            object_store::Error::NotFound { .. } => ArchiveError::NoSuchBucket { bucket, endpoint },
            object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
                ArchiveError::AccessDenied {
                    bucket,
                    endpoint,
                    code: s3_code(&text).unwrap_or("HTTP 401/403").to_string(),
                }
            }
            ref e if is_transient(e, &text) => ArchiveError::Unavailable {
                endpoint,
                detail: text,
            },
            _ => ArchiveError::Storage(text),
        }
    }

    /// The endpoint as errors name it: scheme, host and port.
    fn endpoint_display(&self) -> String {
        self.endpoint.as_str().trim_end_matches('/').to_string()
    }
}

/// Installs rustls's ring provider as the process default when none is
/// installed: reqwest (built without a provider) takes the default one.
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Another thread may have installed one meanwhile: that one is used.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// A failure object_store gave up on after retrying, or one of connecting
/// or of a timeout (its `HttpError`).
fn is_transient(error: &object_store::Error, text: &str) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(http) = e.downcast_ref::<object_store::client::HttpError>() {
            use object_store::client::HttpErrorKind as K;
            return matches!(http.kind(), K::Connect | K::Request | K::Timeout | K::Interrupted);
        }
        source = e.source();
    }
    // object_store retries only transient failures and says so.
    text.contains(" retries") || text.contains("status code: 5")
}

/// The error and its sources, one message.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let next = e.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = e.source();
    }
    text
}

/// `text` with every credential value replaced by `***`.
fn scrub(text: &str, credentials: &Credentials) -> String {
    credentials
        .secrets()
        .fold(text.to_string(), |text, secret| text.replace(secret, "***"))
}

/// The `<Code>` of an S3 error response in `text`
/// (<https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html>).
fn s3_code(text: &str) -> Option<&str> {
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text.get(start..)?.find("</Code>")?;
    text.get(start..start + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_laid_out_and_sanitized() {
        let log = LogKey::new("team-a", "orders-b42", "unit", 2, "main");
        assert_eq!(
            log.object_key("c8s/logs/"),
            "c8s/logs/team-a/orders-b42/unit/2/main.log"
        );
        assert_eq!(log.object_key(""), "team-a/orders-b42/unit/2/main.log");
        let evil = LogKey::new("..", "a/../b", ".", 0, "x y/é");
        assert_eq!(evil.object_key("/p/../q"), "p/__/q/__/a_.._b/_/0/x_y__.log");
        assert_eq!(sanitize(""), "_");
    }

    #[test]
    fn debug_and_errors_hold_no_secret() {
        let credentials = Credentials::new("AKID1234", "s3cr3t-value").with_session_token("t0ken-value");
        let debug = format!("{credentials:?}");
        assert!(!debug.contains("s3cr3t") && !debug.contains("AKID1234") && !debug.contains("t0ken"));
        let settings = ArchiveSettings::new("b", credentials.clone());
        assert!(!format!("{settings:?}").contains("s3cr3t"));
        assert_eq!(
            scrub("sig for s3cr3t-value and t0ken-value", &credentials),
            "sig for *** and ***"
        );
    }

    #[test]
    fn urls_follow_the_addressing_style() -> Result<(), ArchiveError> {
        let mut settings = ArchiveSettings::new("logs", Credentials::new("a", "b"));
        settings.endpoint = Some("http://127.0.0.1:9000/".into());
        let path_style = Archive::new(settings.clone())?;
        assert_eq!(path_style.url("k/x.log"), "http://127.0.0.1:9000/logs/k/x.log");
        settings.endpoint = Some("https://storage.example".into());
        settings.path_style = false;
        assert_eq!(
            Archive::new(settings.clone())?.url("k"),
            "https://logs.storage.example/k"
        );
        settings.endpoint = None;
        settings.region = "eu-west-1".into();
        assert_eq!(
            Archive::new(settings)?.url("k"),
            "https://logs.s3.eu-west-1.amazonaws.com/k"
        );
        Ok(())
    }

    #[test]
    fn bad_settings_are_refused() {
        let mut settings = ArchiveSettings::new("logs", Credentials::new("a", "b"));
        settings.part_size = 1024;
        assert!(matches!(
            Archive::new(settings.clone()),
            Err(ArchiveError::Settings(_))
        ));
        settings.part_size = DEFAULT_PART_SIZE;
        settings.endpoint = Some("ftp://x".into());
        assert!(matches!(Archive::new(settings), Err(ArchiveError::Settings(_))));
    }

    #[test]
    fn credentials_come_from_a_secret_and_errors_name_keys_only() {
        use k8s_openapi::ByteString;
        use k8s_openapi::api::core::v1::Secret;
        let secret = |pairs: &[(&str, &str)]| Secret {
            metadata: kube::api::ObjectMeta {
                name: Some("archive-credentials".into()),
                ..Default::default()
            },
            data: Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Default::default()
        };
        let full = secret(&[
            (SECRET_ACCESS_KEY_ID, "AKID1234"),
            (SECRET_SECRET_ACCESS_KEY, "s3cr3t-value"),
        ]);
        let credentials = Credentials::from_secret(&full).expect("complete");
        assert_eq!(credentials.secrets().collect::<Vec<_>>(), ["s3cr3t-value"]);
        assert_eq!(credentials.access_key_id, "AKID1234");
        let partial = secret(&[(SECRET_ACCESS_KEY_ID, "AKID1234")]);
        let message = Credentials::from_secret(&partial)
            .map(|_| ())
            .expect_err("incomplete")
            .to_string();
        assert!(message.contains("archive-credentials") && message.contains(SECRET_SECRET_ACCESS_KEY));
        assert!(!message.contains("AKID1234"), "{message}");
    }

    #[test]
    fn s3_codes_are_read() {
        let body = "403: <Error><Code>InvalidAccessKeyId</Code><Message>no</Message></Error>";
        assert_eq!(s3_code(body), Some("InvalidAccessKeyId"));
        assert_eq!(s3_code("nothing"), None);
    }
}
