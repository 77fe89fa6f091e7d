//! The log archive's flags, shared by `c8s run` and `c8s controller`: an
//! S3-compatible bucket, with the credentials AWS's SDKs read from the
//! environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, optionally
//! `AWS_SESSION_TOKEN`), so a Secret mounted with `envFrom` supplies them.

use c8s_kube::archive::{
    Archive, ArchiveSettings, Credentials, SECRET_ACCESS_KEY_ID, SECRET_SECRET_ACCESS_KEY,
    SECRET_SESSION_TOKEN,
};
use clap::Args;

/// Where step logs are archived; off without `--log-archive-bucket` (and
/// so by `Default`).
#[derive(Clone, Debug, Default, Args)]
pub struct ArchiveArgs {
    /// Archive each step's masked logs in this S3 bucket when the step ends
    /// (it must exist); the step's status records each log's key and URL.
    #[arg(long)]
    pub log_archive_bucket: Option<String>,
    /// The first part of every archived log's key.
    #[arg(long, default_value = "c8s", requires = "log_archive_bucket")]
    pub log_archive_prefix: String,
    /// The storage's URL (`http://minio.storage:9000`); default: AWS S3.
    #[arg(long, requires = "log_archive_bucket")]
    pub log_archive_endpoint: Option<String>,
    /// The region requests are signed for.
    #[arg(long, default_value = "us-east-1", requires = "log_archive_bucket")]
    pub log_archive_region: String,
    /// Virtual-hosted requests (`<bucket>.<host>/<key>`) instead of
    /// path-style ones (`<endpoint>/<bucket>/<key>`, the default, which
    /// MinIO, SeaweedFS and Ceph want).
    #[arg(long, requires = "log_archive_bucket")]
    pub log_archive_virtual_hosted: bool,
}

impl ArchiveArgs {
    /// The archive the flags name, with credentials from the environment;
    /// `Ok(None)` without `--log-archive-bucket`.
    pub fn archive(&self) -> Result<Option<Archive>, String> {
        self.archive_with(|name| std::env::var(name).ok())
    }

    /// [`ArchiveArgs::archive`] reading variables through `var`.
    fn archive_with(&self, var: impl Fn(&str) -> Option<String>) -> Result<Option<Archive>, String> {
        let Some(bucket) = &self.log_archive_bucket else {
            return Ok(None);
        };
        let (Some(id), Some(secret)) = (var(SECRET_ACCESS_KEY_ID), var(SECRET_SECRET_ACCESS_KEY)) else {
            return Err(format!(
                "--log-archive-bucket needs the archive's credentials in {SECRET_ACCESS_KEY_ID} and {SECRET_SECRET_ACCESS_KEY}"
            ));
        };
        let mut credentials = Credentials::new(id, secret);
        if let Some(token) = var(SECRET_SESSION_TOKEN) {
            credentials = credentials.with_session_token(token);
        }
        let mut settings = ArchiveSettings::new(bucket, credentials);
        settings.prefix.clone_from(&self.log_archive_prefix);
        settings.endpoint.clone_from(&self.log_archive_endpoint);
        settings.region.clone_from(&self.log_archive_region);
        settings.path_style = !self.log_archive_virtual_hosted;
        Archive::new(settings)
            .map(Some)
            .map_err(|e| format!("the log archive: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        archive: ArchiveArgs,
    }

    fn args(flags: &[&str]) -> ArchiveArgs {
        let mut all = vec!["c8s"];
        all.extend(flags);
        Cli::try_parse_from(all).unwrap_or_else(|e| panic!("{e}")).archive
    }

    #[test]
    fn no_bucket_is_no_archive_and_the_other_flags_need_one() {
        assert!(matches!(args(&[]).archive_with(|_| None), Ok(None)));
        assert!(Cli::try_parse_from(["c8s", "--log-archive-prefix", "x"]).is_err());
    }

    #[test]
    fn the_flags_and_the_environment_make_the_settings() {
        let flags = args(&[
            "--log-archive-bucket",
            "ci-logs",
            "--log-archive-endpoint",
            "http://127.0.0.1:9000",
            "--log-archive-prefix",
            "team/a",
        ]);
        let env = |name: &str| match name {
            "AWS_ACCESS_KEY_ID" => Some("AKID".to_owned()),
            "AWS_SECRET_ACCESS_KEY" => Some("s3cr3t-value".to_owned()),
            _ => None,
        };
        let archive = flags.archive_with(env).unwrap_or_else(|e| panic!("{e}"));
        let archive = archive.unwrap_or_else(|| panic!("an archive"));
        let settings = archive.settings();
        assert_eq!(settings.bucket, "ci-logs");
        assert_eq!(settings.prefix, "team/a");
        assert_eq!(settings.region, "us-east-1");
        assert!(settings.path_style);
        assert_eq!(archive.url("k"), "http://127.0.0.1:9000/ci-logs/k");
        assert!(!format!("{archive:?}").contains("s3cr3t"));
    }

    #[test]
    fn a_bucket_without_credentials_is_refused_naming_the_variables() {
        let error = args(&["--log-archive-bucket", "ci-logs"])
            .archive_with(|_| None)
            .err()
            .unwrap_or_default();
        assert!(error.contains("AWS_ACCESS_KEY_ID"), "{error}");
    }
}
