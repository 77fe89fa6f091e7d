//! `image_resource` (and `registry-image`/`docker-image` resources used as a
//! step's `image:`): where the image is, and how credentials become an
//! `imagePullSecrets` reference instead of text in the pod.

use c8s_sidecar_core::FieldPath;
use serde_derive::{Deserialize, Serialize};

use super::fields::Fields;
use super::node::{Node, Report};

/// Resource types that name a container image in a registry.
pub const REGISTRY_TYPES: [&str; 2] = ["registry-image", "docker-image"];

/// `source` keys of the registry types that hold credentials: kept out of
/// every pod, the kubelet pulls with an `imagePullSecrets` Secret instead.
pub const CREDENTIAL_KEYS: [&str; 5] = [
    "username",
    "password",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
];

/// `source` keys that only tune how Concourse's resource talks to the
/// registry (TLS, debug, concurrency); the kubelet's own settings apply.
const TUNING_KEYS: [&str; 10] = [
    "aws_region",
    "aws_role_arn",
    "ca_certs",
    "client_certs",
    "content_trust",
    "debug",
    "insecure",
    "insecure_registries",
    "max_concurrent_downloads",
    "platform",
];

/// `image_resource`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ImageResource {
    /// `registry-image` or `docker-image`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Where the image is.
    pub source: ImageSource,
    /// A pinned digest (`version: { digest: sha256:… }`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// `image_resource.source`, as far as a pod needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ImageSource {
    /// The image repository, e.g. `golang` or `ghcr.io/org/app`.
    pub repository: String,
    /// The tag as written (`1.10` stays `1.10`); default `latest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// `registry_mirror` host: Docker Hub images are pulled through it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_mirror: Option<String>,
    /// Whether `source` carries credentials (their values are never kept).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub credentials: bool,
}

impl ImageResource {
    /// A `registry-image` of `repository[:tag]` without credentials.
    pub fn registry(repository: impl Into<String>, tag: Option<String>) -> Self {
        Self {
            kind: "registry-image".to_owned(),
            source: ImageSource {
                repository: repository.into(),
                tag,
                registry_mirror: None,
                credentials: false,
            },
            digest: None,
        }
    }

    /// The image reference the pod pulls.
    pub fn reference(&self) -> String {
        let source = &self.source;
        let mut repository = source.repository.clone();
        if let Some(mirror) = &source.registry_mirror
            && is_docker_hub(&repository)
        {
            let path = if repository.contains('/') {
                repository.trim_start_matches("docker.io/").to_owned()
            } else {
                format!("library/{repository}")
            };
            repository = format!("{mirror}/{path}");
        }
        match (&self.digest, &source.tag) {
            (Some(digest), _) => format!("{repository}@{digest}"),
            (None, Some(tag)) => format!("{repository}:{tag}"),
            (None, None) => repository,
        }
    }

    /// The registry host the image comes from (`docker.io` for Docker Hub).
    pub fn registry_host(&self) -> String {
        if let Some(mirror) = &self.source.registry_mirror
            && is_docker_hub(&self.source.repository)
        {
            return mirror.clone();
        }
        registry_of(&self.source.repository)
    }

    /// The `imagePullSecrets` Secret c8s names for this image's credentials.
    pub fn pull_secret(&self) -> Option<String> {
        self.source
            .credentials
            .then(|| format!("c8s-pull-{}", secret_suffix(&self.registry_host())))
    }

    /// Reads an `image_resource` mapping (or a registry resource's `type`,
    /// `source` and `version`) at `path`.
    pub fn read(node: &Node, path: &FieldPath, report: &mut Report<'_>) -> Option<Self> {
        let allowed = ["type", "source", "params", "version", "name", "tags"];
        let fields = Fields::new(node, path.clone(), &allowed, report)?;
        let kind = fields.required("type", report)?;
        let digest = fields
            .get("version")
            .and_then(|v| v.get("digest"))
            .and_then(Node::scalar);
        Self::from_parts(&kind, fields.get("source"), digest, path, report)
    }

    /// Builds the image from a registry type's `source` (and a pinned digest).
    pub fn from_parts(
        kind: &str,
        source: Option<&Node>,
        digest: Option<&str>,
        path: &FieldPath,
        report: &mut Report<'_>,
    ) -> Option<Self> {
        let type_path = path.key("type");
        if !REGISTRY_TYPES.contains(&kind) {
            let at = source.map_or((0, 0), |s| s.at);
            report.error(
                at,
                &type_path,
                format!(
                    "image type `{kind}` is not a registry image type c8s can pull ({})",
                    REGISTRY_TYPES.join(", ")
                ),
            );
            return None;
        }
        let source_path = path.key("source");
        let empty = Node {
            value: super::node::Value::Null,
            at: (0, 0),
        };
        let source_node = source.unwrap_or(&empty);
        let mut allowed = vec![
            "repository",
            "tag",
            "variant",
            "registry_mirror",
            "semver_constraint",
        ];
        allowed.extend(CREDENTIAL_KEYS);
        allowed.extend(TUNING_KEYS);
        let fields = Fields::new(source_node, source_path.clone(), &allowed, report)?;
        let repository = fields.required("repository", report)?;
        if fields.has("semver_constraint") {
            report.error(
                source_node.at,
                &source_path.key("semver_constraint"),
                "c8s does not list registry tags to pick one by semver: pin `tag` or a digest",
            );
        }
        let mut tag = fields.string("tag", report);
        if let Some(variant) = fields.string("variant", report) {
            tag = Some(match tag {
                Some(tag) => format!("{tag}-{variant}"),
                None => variant,
            });
        }
        let registry_mirror = fields
            .get("registry_mirror")
            .and_then(|mirror| match mirror.scalar() {
                // docker-image: a URL; registry-image: { host, username, password }.
                Some(url) => Some(
                    url.trim_start_matches("https://")
                        .trim_start_matches("http://")
                        .trim_end_matches('/')
                        .to_owned(),
                ),
                None => mirror.get("host").and_then(Node::scalar).map(str::to_owned),
            });
        let mirror_credentials = fields
            .get("registry_mirror")
            .is_some_and(|m| m.get("username").is_some() || m.get("password").is_some());
        let credentials = CREDENTIAL_KEYS.iter().any(|k| fields.has(k)) || mirror_credentials;
        Some(Self {
            kind: kind.to_owned(),
            source: ImageSource {
                repository,
                tag,
                registry_mirror,
                credentials,
            },
            digest: digest.map(str::to_owned),
        })
    }
}

fn is_docker_hub(repository: &str) -> bool {
    registry_of(repository) == "docker.io"
}

/// The registry part of a repository: its first segment when it looks like a host.
fn registry_of(repository: &str) -> String {
    match repository.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first.to_owned(),
        _ => "docker.io".to_owned(),
    }
}

/// A DNS-label-safe rendering of `text` (for Secret names c8s chooses).
pub fn secret_suffix(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    out.truncate(50);
    out.trim_matches('-').to_owned()
}

/// The file form of `image_resource` (the type keeps only what a pod needs:
/// credentials become a flag, `version.digest` the digest).
#[cfg(feature = "schema")]
impl schemars::JsonSchema for ImageResource {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ImageResource".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let scalar = serde_json::json!({ "type": "string" });
        let mut source = serde_json::Map::new();
        for key in ["repository", "tag", "variant"]
            .into_iter()
            .chain(CREDENTIAL_KEYS)
        {
            source.insert(key.to_owned(), scalar.clone());
        }
        for key in TUNING_KEYS {
            source.insert(key.to_owned(), serde_json::json!({}));
        }
        source.insert(
            "registry_mirror".to_owned(),
            serde_json::json!({
                "description": "docker-image: a URL; registry-image: { host, username, password }",
                "anyOf": [
                    { "type": "string" },
                    { "type": "object", "properties": { "host": { "type": "string" }, "username": { "type": "string" }, "password": { "type": "string" } }, "additionalProperties": false }
                ]
            }),
        );
        schemars::json_schema!({
            "description": "The image the task runs in: a registry image (`registry-image` or `docker-image`).",
            "type": "object",
            "required": ["type", "source"],
            "properties": {
                "type": { "enum": REGISTRY_TYPES },
                "source": {
                    "description": "Where the image is; credentials become an imagePullSecrets reference.",
                    "type": "object",
                    "required": ["repository"],
                    "properties": source,
                    "additionalProperties": false
                },
                "version": {
                    "description": "A pinned version: `{ digest: sha256:... }`.",
                    "type": "object",
                    "properties": { "digest": { "type": "string" } }
                },
                "params": {},
                "name": { "type": "string" },
                "tags": {}
            },
            "additionalProperties": false
        })
    }
}

/// Concourse's core resource types and the images that implement them.
pub fn builtin_image(kind: &str) -> Option<String> {
    const CORE: [&str; 15] = [
        "git",
        "registry-image",
        "docker-image",
        "s3",
        "time",
        "semver",
        "github-release",
        "pool",
        "bosh-io-release",
        "bosh-io-stemcell",
        "cf",
        "hg",
        "mock",
        "tracker",
        "concourse-pipeline",
    ];
    CORE.contains(&kind).then(|| format!("concourse/{kind}-resource"))
}
