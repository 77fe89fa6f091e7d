//! Images stand in as host tools. A container runs on the host's root
//! filesystem in its own mount namespace; its image only chooses what an
//! image would have put there: an entrypoint and default args (when the pod
//! gives no `command`), a working directory, and the directories first on
//! PATH, and (for the few that tests need) directories at fixed paths.
//! Images' other files, users and passwd entries are not imitated.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

/// What an image contributes to a container.
#[derive(Debug, Clone, Default)]
pub struct Image {
    /// The image's ENTRYPOINT.
    pub entrypoint: Vec<String>,
    /// The image's CMD (default args).
    pub cmd: Vec<String>,
    /// The image's WORKDIR.
    pub workdir: Option<String>,
    /// Directories put before the host's PATH.
    pub path: Vec<PathBuf>,
    /// Files the image has at fixed paths (a resource type's
    /// `/opt/resource`): host directories bound read-only there.
    pub files: Vec<super::volumes::Mount>,
}

/// The host PATH every container starts from.
pub const HOST_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Images by repository (the reference without tag or digest).
#[derive(Debug, Clone)]
pub struct Images {
    by_repository: BTreeMap<String, Image>,
}

/// A directory of busybox applet links: containers of busybox-based images
/// (`busybox`, `alpine/git`) get busybox's `sh`, `tar`, `sleep`…, not GNU's.
pub fn busybox_bin() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = super::scratch_root().join("kubelet-busybox-bin");
        let busybox = super::process::host_tool("busybox");
        let list = std::process::Command::new(&busybox)
            .arg("--list")
            .output()
            .expect("busybox --list");
        std::fs::create_dir_all(&dir).expect("busybox bin dir");
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            let link = dir.join(applet);
            if !link.exists() {
                let _ = std::os::unix::fs::symlink(&busybox, &link);
            }
        }
        dir
    })
    .clone()
}

/// Where the host's postgres binaries are (`/usr/lib/postgresql/<major>/bin`
/// for the Debian package, else on PATH).
pub fn postgres_bin() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("postgres").is_file())
        .collect();
    dirs.sort();
    dirs.reverse();
    dirs
}

/// The `postgres` image's entrypoint, reduced to what a sidecar needs:
/// initdb into an empty PGDATA (with POSTGRES_PASSWORD / POSTGRES_DB), then
/// exec the args; a UID without passwd entry gets one through nss_wrapper
/// (docker-library/postgres docker-entrypoint.sh, `docker_setup_env` and
/// `docker_init_database_dir`). The image's passwd names UID 999 `postgres`;
/// here no UID has an entry, so every UID goes through nss_wrapper.
const POSTGRES_ENTRYPOINT: &str = r#"
set -e
: "${PGDATA:=/var/lib/postgresql/data}"
if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  wrapper="$(ls /usr/lib/*/libnss_wrapper.so | head -n1)"
  export LD_PRELOAD="$wrapper" NSS_WRAPPER_PASSWD="$(mktemp)" NSS_WRAPPER_GROUP="$(mktemp)"
  echo "postgres:x:$(id -u):$(id -g):PostgreSQL:$PGDATA:/bin/false" > "$NSS_WRAPPER_PASSWD"
  echo "postgres:x:$(id -g):" > "$NSS_WRAPPER_GROUP"
  mkdir -p "$PGDATA"; chmod 700 "$PGDATA"
  pw="$(mktemp)"; printf '%s\n' "${POSTGRES_PASSWORD:-postgres}" > "$pw"
  initdb -U "${POSTGRES_USER:-postgres}" --pwfile="$pw" -A trust -D "$PGDATA" >/dev/null
  rm -f "$pw"
  if [ -n "$POSTGRES_DB" ] && [ "$POSTGRES_DB" != postgres ]; then
    "$@" -c listen_addresses='' -k /tmp -p 5432 & p=$!
    until pg_isready -q -h /tmp; do sleep 0.2; done
    createdb -h /tmp -U "${POSTGRES_USER:-postgres}" "$POSTGRES_DB"
    kill -INT "$p"; wait "$p" || true
  fi
  unset LD_PRELOAD NSS_WRAPPER_PASSWD NSS_WRAPPER_GROUP
fi
exec "$@"
"#;

fn words(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

impl Default for Images {
    /// Every image the repository's examples and scripts name.
    fn default() -> Self {
        let mut by_repository = BTreeMap::new();
        let busybox = Image {
            path: vec![busybox_bin()],
            ..Image::default()
        };
        by_repository.insert("busybox".into(), busybox.clone());
        by_repository.insert("alpine/git".into(), busybox);
        by_repository.insert(
            "postgres".into(),
            Image {
                entrypoint: words(&["sh", "-c", POSTGRES_ENTRYPOINT, "docker-entrypoint.sh"]),
                cmd: words(&["postgres"]),
                path: postgres_bin(),
                ..Image::default()
            },
        );
        by_repository.insert(
            "redis".into(),
            Image {
                cmd: words(&["redis-server"]),
                workdir: Some("/data".into()),
                ..Image::default()
            },
        );
        Images { by_repository }
    }
}

impl Images {
    /// Adds or replaces the image for `repository`.
    pub fn with(mut self, repository: &str, image: Image) -> Self {
        self.by_repository.insert(repository.into(), image);
        self
    }

    /// The image for a reference; an image not in the table is a plain
    /// host-tools image without entrypoint.
    pub fn get(&self, reference: &str) -> Image {
        let no_digest = reference.split('@').next().unwrap_or(reference);
        let repository = match no_digest.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => repo,
            _ => no_digest,
        };
        let short = repository.strip_prefix("docker.io/").unwrap_or(repository);
        let short = short.strip_prefix("library/").unwrap_or(short);
        self.by_repository.get(short).cloned().unwrap_or_default()
    }
}
