//! Files the kubelet itself puts into containers, beside the pod's volumes:
//!
//! - `/etc/hosts`, one file per pod bind-mounted into every container that
//!   does not use hostNetwork, with the loopback entries and then the pod's
//!   `hostAliases` (pkg/kubelet/kubelet_pods.go `managedHostsFileContent`,
//!   `hostsEntriesFromHostAliases`; the pod-IP line is left out: the check
//!   has no pod IP);
//! - the service account token at `/var/run/secrets/kubernetes.io/serviceaccount`
//!   (`token`, `ca.crt`, `namespace`) in every container that does not mount
//!   that path itself, unless `automountServiceAccountToken: false`: the
//!   ServiceAccount admission plugin adds the `kube-api-access-*` projected
//!   volume, whose token is `0644`, or `0600` owned by the pods' `runAsUser`
//!   when every container has the same one, group fsGroup and `0640` with an
//!   fsGroup (https://kubernetes.io/docs/concepts/storage/projected-volumes/).
//!   The token is a fake: nothing here is an API server.

use std::os::unix::fs::{PermissionsExt, chown};
use std::path::Path;

use k8s_openapi::api::core::v1::Pod;

use super::volumes::Mount;

/// Where the service account's credentials are mounted.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The fake token the check projects (tests assert a container can read it).
pub const FAKE_TOKEN: &str = "c8s-runtime-check-fake-service-account-token";

/// The kubelet-managed mounts of the pod, set up under `dir`; each container
/// gets those whose destination it does not mount itself.
pub fn prepare(pod: &Pod, dir: &Path) -> Result<Vec<Mount>, String> {
    let spec = pod.spec.clone().unwrap_or_default();
    let mut mounts = Vec::new();
    if spec.host_network != Some(true) {
        let mut hosts = String::from(
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
        );
        let aliases = spec.host_aliases.clone().unwrap_or_default();
        if !aliases.is_empty() {
            hosts += "\n# Entries added by HostAliases.\n";
            for alias in aliases {
                let names = alias.hostnames.unwrap_or_default().join("\t");
                hosts += &format!("{}\t{names}\n", alias.ip);
            }
        }
        let path = dir.join("etc-hosts");
        write(&path, &hosts, 0o644)?;
        mounts.push(Mount {
            source: path,
            destination: "/etc/hosts".into(),
            read_only: false,
        });
    }
    if spec.automount_service_account_token != Some(false) {
        let account = dir.join("serviceaccount");
        std::fs::create_dir_all(&account).map_err(|e| e.to_string())?;
        let namespace = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
        write(&account.join("namespace"), &namespace, 0o644)?;
        write(&account.join("ca.crt"), "fake CA of the runtime check\n", 0o644)?;
        let token = account.join("token");
        write(&token, FAKE_TOKEN, 0o644)?;
        let pod_sc = spec.security_context.clone().unwrap_or_default();
        let users: Vec<Option<i64>> = spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
            .map(|c| {
                c.security_context
                    .as_ref()
                    .and_then(|s| s.run_as_user)
                    .or(pod_sc.run_as_user)
            })
            .collect();
        let same_user = match users.first() {
            Some(Some(u)) if users.iter().all(|x| *x == Some(*u)) => Some(*u),
            _ => None,
        };
        if same_user.is_some() || pod_sc.fs_group.is_some() {
            let owner = same_user.map(|u| u as u32);
            chown(&token, owner, pod_sc.fs_group.map(|g| g as u32)).map_err(|e| e.to_string())?;
            let mode = if pod_sc.fs_group.is_some() { 0o640 } else { 0o600 };
            set_mode(&token, mode)?;
        }
        mounts.push(Mount {
            source: account,
            destination: SERVICE_ACCOUNT_DIR.into(),
            read_only: true,
        });
    }
    Ok(mounts)
}

fn write(path: &Path, text: &str, mode: u32) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    set_mode(path, mode)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", path.display()))
}
