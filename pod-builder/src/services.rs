//! Well-known service images under the restricted profile: the UID each
//! image's entrypoint expects and the paths it writes, applied to a sidecar
//! that says nothing about them (an explicit `runAsUser`, `runAsRoot` or
//! `scratch` wins). Facts from the docker-library Dockerfiles.

use c8s_sidecar_core::{EnvVar, SidecarConfig};

/// What a well-known image needs to start as non-root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceImage {
    /// The UID its entrypoint expects.
    pub uid: i64,
    /// Directories it writes (each becomes an emptyDir).
    pub writable: &'static [&'static str],
    /// Env it needs so that it writes inside those directories.
    pub env: &'static [(&'static str, &'static str)],
}

// docker-library/postgres Dockerfile-debian: `useradd -r -g postgres --uid=999`;
// Dockerfile-alpine: uid 70 ("the standard uid/gid for postgres in Alpine").
// PGDATA in a subdirectory: initdb refuses a data directory it does not own,
// and an emptyDir's root belongs to root.
const POSTGRES_PATHS: &[&str] = &["/var/lib/postgresql/data", "/var/run/postgresql"];
const POSTGRES_ENV: &[(&str, &str)] = &[("PGDATA", "/var/lib/postgresql/data/pgdata")];
// docker-library/redis: `useradd -r -g redis -u 999 redis` (debian),
// `adduser -S -G redis -u 999 redis` (alpine); WORKDIR and VOLUME /data.
const REDIS_PATHS: &[&str] = &["/data"];
// docker-library/mongo: `useradd --uid 999 --system --gid mongodb --home-dir /data/db`;
// VOLUME /data/db /data/configdb.
const MONGO_PATHS: &[&str] = &["/data/db", "/data/configdb"];

/// The table entry for `image` (`postgres:16`, `docker.io/library/redis:7-alpine`), if any.
///
/// ```
/// use c8s_pod_builder::services::service_image;
/// assert_eq!(service_image("postgres:16").map(|s| s.uid), Some(999));
/// assert_eq!(service_image("postgres:16-alpine").map(|s| s.uid), Some(70));
/// assert!(service_image("ghcr.io/acme/postgres:16").is_none());
/// ```
pub fn service_image(image: &str) -> Option<ServiceImage> {
    let name = image.split('@').next().unwrap_or(image);
    let (repository, tag) = match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (name, "latest"),
    };
    let repository = repository.strip_prefix("docker.io/").unwrap_or(repository);
    let repository = repository.strip_prefix("library/").unwrap_or(repository);
    let alpine = tag.contains("alpine");
    match repository {
        "postgres" => Some(ServiceImage {
            uid: if alpine { 70 } else { 999 },
            writable: POSTGRES_PATHS,
            env: POSTGRES_ENV,
        }),
        "redis" => Some(ServiceImage {
            uid: 999,
            writable: REDIS_PATHS,
            env: &[],
        }),
        "mongo" => Some(ServiceImage {
            uid: 999,
            writable: MONGO_PATHS,
            env: &[],
        }),
        _ => None,
    }
}

/// The table entry whose defaults apply to `sidecar`: a known image, and the
/// sidecar says nothing about its UID, root or scratch directories.
fn defaults_for(sidecar: &SidecarConfig) -> Option<ServiceImage> {
    let known = service_image(&sidecar.image)?;
    let silent = sidecar.run_as_user.is_none() && !sidecar.run_as_root && sidecar.scratch.is_empty();
    silent.then_some(known)
}

/// How many scratch directories `sidecar` has once [`with_defaults`] applied.
pub(crate) fn scratch_count(sidecar: &SidecarConfig) -> usize {
    defaults_for(sidecar).map_or(sidecar.scratch.len(), |known| known.writable.len())
}

/// `sidecar` with the table's defaults filled in where it says nothing.
pub fn with_defaults(sidecar: &SidecarConfig) -> std::borrow::Cow<'_, SidecarConfig> {
    let Some(known) = defaults_for(sidecar) else {
        return std::borrow::Cow::Borrowed(sidecar);
    };
    let mut out = sidecar.clone();
    out.run_as_user = Some(known.uid);
    out.scratch = known.writable.iter().map(|p| (*p).to_owned()).collect();
    for (name, value) in known.env {
        if !out.env.iter().any(|v| v.name == *name) {
            out.env.push(EnvVar::value(*name, *value));
        }
    }
    std::borrow::Cow::Owned(out)
}

/// What `c8s validate` should tell the user about `sidecar` that c8s cannot
/// check: an image c8s does not know that says nothing about its UID or the
/// paths it writes (it runs as the pod's non-root UID), and ports that get no
/// default readiness check (UDP/SCTP only: `main` does not wait).
///
/// ```
/// use c8s_pod_builder::model::sidecar::SidecarConfig;
/// use c8s_pod_builder::services::warnings;
/// assert!(warnings(&SidecarConfig::new("db", "postgres:16")).is_empty());
/// assert_eq!(warnings(&SidecarConfig::new("x", "ghcr.io/acme/x:1")).len(), 1);
/// ```
pub fn warnings(sidecar: &SidecarConfig) -> Vec<String> {
    let mut out = Vec::new();
    let silent = sidecar.run_as_user.is_none() && !sidecar.run_as_root && sidecar.scratch.is_empty();
    if silent && service_image(&sidecar.image).is_none() {
        out.push(format!(
            "image {} is not one c8s knows: under the restricted profile it runs as the pod's non-root UID; \
             if it needs another UID or writes outside /tmp, set runAsUser and scratch",
            sidecar.image
        ));
    }
    if sidecar.readiness.is_default() && !sidecar.ports.is_empty() && sidecar.effective_readiness().is_none()
    {
        out.push(
            "no TCP port, so no default readiness check: main starts without waiting (add readiness: exec)"
                .to_owned(),
        );
    }
    out
}
