//! The script that says what each simulated container does: read from the
//! ConfigMap `c8s-node-sim` (key `script.yaml`) in the pod's namespace.
//!
//! ```yaml
//! containers:
//!   - step: build          # label c8s.dev/step of the pod; omitted = any
//!     labels: {k: v}       # other pod labels that must match; omitted = any
//!     pod: some-substring  # substring of the pod name; omitted = any
//!     container: main      # container name; omitted = any
//!     exitCode: 0
//!     runSeconds: 0.3
//!     reason: OOMKilled
//!     message: "..."
//!     logs: ["line one", "line two"]
//!     ready: false
//!     waiting: { reason: ImagePullBackOff, message: "..." }
//! ```
//!
//! The first matching rule wins; no rule matching means exit 0 after
//! [`DEFAULT_RUN`], no logs.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

/// The ConfigMap that holds the script, in the pod's namespace.
pub const CONFIG_MAP: &str = "c8s-node-sim";
/// The ConfigMap key that holds the script.
pub const CONFIG_KEY: &str = "script.yaml";
/// The pod label that `step:` matches.
pub const STEP_LABEL: &str = "c8s.dev/step";
/// How long a container runs when no rule says otherwise.
pub const DEFAULT_RUN: Duration = Duration::from_millis(200);
/// The longest run: a longer `runSeconds` is taken as this (a year, "forever" in a test).
pub const MAX_RUN: Duration = Duration::from_secs(365 * 24 * 3600);

/// A whole script: rules tried in order.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Script {
    /// The rules, first match wins.
    #[serde(default)]
    pub containers: Vec<Rule>,
}

/// One rule: which containers it matches and what they do.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rule {
    /// Matches the pod label `c8s.dev/step`.
    #[serde(default)]
    pub step: Option<String>,
    /// Pod labels that must all be present with these values.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// A substring of the pod name.
    #[serde(default)]
    pub pod: Option<String>,
    /// The container name.
    #[serde(default)]
    pub container: Option<String>,
    /// The exit code (default 0).
    #[serde(default)]
    pub exit_code: i32,
    /// Seconds the container runs before it terminates (default 0.2).
    #[serde(default)]
    pub run_seconds: Option<f64>,
    /// The terminated reason (default `Completed` for exit 0, else `Error`).
    #[serde(default)]
    pub reason: Option<String>,
    /// The termination message.
    #[serde(default)]
    pub message: Option<String>,
    /// Lines the container writes to its log.
    #[serde(default)]
    pub logs: Vec<String>,
    /// Whether a probed container's probes pass (default true).
    #[serde(default)]
    pub ready: Option<bool>,
    /// The container never starts and stays waiting with this reason.
    #[serde(default)]
    pub waiting: Option<Waiting>,
}

/// A waiting state that a container never leaves.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Waiting {
    /// E.g. `ImagePullBackOff`.
    pub reason: String,
    /// The waiting message.
    #[serde(default)]
    pub message: Option<String>,
}

/// What one container does, the matching rule resolved with its defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Behaviour {
    /// The exit code.
    pub exit_code: i32,
    /// How long it runs (regular and init containers; sidecars run until the pod ends).
    pub run: Duration,
    /// The terminated reason.
    pub reason: String,
    /// The termination message.
    pub message: Option<String>,
    /// Log lines.
    pub logs: Vec<String>,
    /// Whether its startup/readiness probes pass.
    pub ready: bool,
    /// Stays waiting with this reason, never starts.
    pub waiting: Option<Waiting>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            exit_code: 0,
            run: DEFAULT_RUN,
            reason: "Completed".to_owned(),
            message: None,
            logs: Vec::new(),
            ready: true,
            waiting: None,
        }
    }
}

/// The kubelet's terminated reason for an exit code with no script reason.
pub fn default_reason(exit_code: i32) -> &'static str {
    if exit_code == 0 { "Completed" } else { "Error" }
}

impl Script {
    /// Parses `script.yaml`, checking every `runSeconds`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let script: Self = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        for (i, rule) in script.containers.iter().enumerate() {
            if let Some(seconds) = rule.run_seconds
                && !(seconds.is_finite() && seconds >= 0.0)
            {
                return Err(format!(
                    "containers[{i}].runSeconds: {seconds} is not a duration in seconds"
                ));
            }
        }
        Ok(script)
    }

    /// The first rule matching this container, with defaults filled in.
    pub fn behaviour(&self, pod: &str, labels: &BTreeMap<String, String>, container: &str) -> Behaviour {
        self.containers
            .iter()
            .find(|rule| rule.matches(pod, labels, container))
            .map(Rule::behaviour)
            .unwrap_or_default()
    }
}

impl Rule {
    /// Whether the rule applies to this container of this pod.
    pub fn matches(&self, pod: &str, labels: &BTreeMap<String, String>, container: &str) -> bool {
        let step_ok = self
            .step
            .as_ref()
            .is_none_or(|step| labels.get(STEP_LABEL) == Some(step));
        let labels_ok = self.labels.iter().all(|(k, v)| labels.get(k) == Some(v));
        let pod_ok = self.pod.as_ref().is_none_or(|part| pod.contains(part.as_str()));
        let container_ok = self.container.as_ref().is_none_or(|c| c == container);
        step_ok && labels_ok && pod_ok && container_ok
    }

    /// The rule with its defaults filled in (a run is at most [`MAX_RUN`]).
    pub fn behaviour(&self) -> Behaviour {
        Behaviour {
            exit_code: self.exit_code,
            run: self
                .run_seconds
                // Too long for a Duration (parse let it through): the longest.
                .map_or(DEFAULT_RUN, |s| Duration::try_from_secs_f64(s).unwrap_or(MAX_RUN))
                .min(MAX_RUN),
            reason: self
                .reason
                .clone()
                .unwrap_or_else(|| default_reason(self.exit_code).to_owned()),
            message: self.message.clone(),
            logs: self.logs.clone(),
            ready: self.ready.unwrap_or(true),
            waiting: self.waiting.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const SCRIPT: &str = r#"
containers:
  - step: build
    container: main
    exitCode: 3
    runSeconds: 0.5
    logs: ["compiling", "failed"]
    message: "boom"
  - labels: {team: infra}
    pod: special
    reason: OOMKilled
    exitCode: 137
  - container: redis
    ready: false
  - pod: pull
    waiting: { reason: ImagePullBackOff, message: "Back-off pulling image" }
"#;

    #[test]
    fn parses_every_field() {
        let script = Script::parse(SCRIPT).expect("script parses");
        assert_eq!(script.containers.len(), 4);
        let first = &script.containers[0];
        assert_eq!(first.step.as_deref(), Some("build"));
        assert_eq!(first.exit_code, 3);
        assert_eq!(first.run_seconds, Some(0.5));
        assert_eq!(first.logs, vec!["compiling", "failed"]);
        assert_eq!(
            script.containers[3].waiting,
            Some(Waiting {
                reason: "ImagePullBackOff".to_owned(),
                message: Some("Back-off pulling image".to_owned())
            })
        );
    }

    #[test]
    fn first_match_wins_and_defaults_fill_in() {
        let script = Script::parse(SCRIPT).expect("script parses");
        let build = labels(&[("c8s.dev/step", "build")]);
        let main = script.behaviour("run-build-abc", &build, "main");
        assert_eq!(main.exit_code, 3);
        assert_eq!(main.reason, "Error");
        assert_eq!(main.run, Duration::from_millis(500));
        assert_eq!(main.message.as_deref(), Some("boom"));
        // Another container of the same pod: no rule, the default.
        assert_eq!(
            script.behaviour("run-build-abc", &build, "helper"),
            Behaviour::default()
        );
        // A step that is not build does not match the first rule.
        let test = labels(&[("c8s.dev/step", "test")]);
        assert_eq!(script.behaviour("run-test", &test, "main"), Behaviour::default());
        // Labels and pod substring must both match.
        let infra = labels(&[("team", "infra")]);
        let oom = script.behaviour("a-special-pod", &infra, "main");
        assert_eq!((oom.exit_code, oom.reason.as_str()), (137, "OOMKilled"));
        assert_eq!(
            script.behaviour("a-plain-pod", &infra, "main"),
            Behaviour::default()
        );
        assert!(!script.behaviour("x", &BTreeMap::new(), "redis").ready);
        let pull = script.behaviour("pull-1", &BTreeMap::new(), "main");
        assert_eq!(
            pull.waiting.map(|w| w.reason).as_deref(),
            Some("ImagePullBackOff")
        );
    }

    #[test]
    fn empty_and_bad_scripts() {
        assert_eq!(Script::parse("").expect("empty is fine"), Script::default());
        assert_eq!(
            Script::parse("containers: []").expect("no rules"),
            Script::default()
        );
        assert!(Script::parse("containers:\n  - runSeconds: -1\n").is_err());
        assert!(Script::parse("containers:\n  - runSeconds: .nan\n").is_err());
        assert!(
            Script::parse("containers:\n  - exitcode: 1\n").is_err(),
            "unknown field"
        );
        assert!(Script::parse("containers: 3").is_err());
        let zero = Script::parse("containers:\n  - exitCode: 0\n    runSeconds: 0\n").expect("zero run");
        assert_eq!(zero.behaviour("p", &BTreeMap::new(), "c").run, Duration::ZERO);
        let long = Script::parse("containers:\n  - runSeconds: 1e18\n").expect("a long run");
        assert_eq!(long.behaviour("p", &BTreeMap::new(), "c").run, MAX_RUN);
    }
}
