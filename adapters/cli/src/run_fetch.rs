//! Task files read from artifacts while `c8s run` runs a Concourse job.
//!
//! Concourse reads a task's `file:` when the step starts, from the artifact
//! an earlier step of the build made (`atc/exec/task_step.go` loads the
//! config through the artifact's source when `file:` is set); a pipeline
//! whose CI scripts live in the repository a `get` fetches depends on it.
//! c8s renders every pod before it creates one, so `c8s run` runs such a job
//! in parts under one run id: first the steps that make those artifacts
//! (and every step before them), each followed by a reader pod that unpacks
//! just that file from the artifact store and prints it; then, with the
//! files read, the job is lowered again and the run resumed, so the steps
//! that ran are not run again and the deferred tasks render as if the file
//! had been beside the pipeline. A file in an artifact that a deferred task
//! makes is read by a later part the same way.

use std::collections::{BTreeMap, BTreeSet};

use c8s_pipeline_model::TaskPlan;
use c8s_pipeline_model::concourse::FetchFile;
use c8s_pipeline_model::scheduler::Condition;

use crate::render::LoadedPlans;

/// A part of a run: the steps that make the artifacts holding the task
/// files, the steps before them, and one reader per file.
pub struct Part {
    /// Every plan of the part, the readers last.
    pub plans: Vec<TaskPlan>,
    /// Each plan's dependencies, by step.
    pub depends_on: BTreeMap<String, Vec<String>>,
    /// The conditions of the job's steps in the part.
    pub conditions: BTreeMap<String, Condition>,
    /// Each file and the step (`identity.step`) of its reader.
    pub readers: Vec<(FetchFile, String)>,
    /// The values kept out of the part's step logs (the job's, as read so far).
    pub redact: Vec<(String, String)>,
}

/// The part of `loaded` that makes its fetchable task files: each file's
/// producer and every step it depends on, and a reader per file that runs
/// `image` (which needs `cat`: the helper image does) after its producer.
/// `tag` makes the readers' names new in each part and each `c8s run`, so a
/// resumed run reads a file again instead of finding its reader done.
pub fn part(loaded: &LoadedPlans, image: &str, tag: &str) -> Part {
    let mut wanted: BTreeSet<String> = BTreeSet::new();
    let mut next: Vec<String> = loaded.fetch.iter().map(|f| f.producer.clone()).collect();
    while let Some(step) = next.pop() {
        if wanted.insert(step.clone()) {
            next.extend(loaded.depends_on.get(&step).into_iter().flatten().cloned());
        }
    }
    let mut out = Part {
        plans: Vec::new(),
        depends_on: BTreeMap::new(),
        conditions: BTreeMap::new(),
        readers: Vec::new(),
        redact: loaded.redact.clone(),
    };
    for plan in loaded.plans.iter().filter(|p| wanted.contains(&p.identity.step)) {
        let step = &plan.identity.step;
        if let Some(after) = loaded.depends_on.get(step) {
            out.depends_on.insert(step.clone(), after.clone());
        }
        if let Some(condition) = loaded.conditions.get(step) {
            out.conditions.insert(step.clone(), condition.clone());
        }
        out.plans.push(plan.clone());
    }
    for (index, fetch) in loaded.fetch.iter().enumerate() {
        let producer = out.plans.iter().find(|p| p.identity.step == fetch.producer);
        let pipeline = producer.map(|p| p.identity.pipeline.clone()).unwrap_or_default();
        let reader = fetch.reader_plan(&pipeline, image, &format!("{tag}{index}"));
        let step = reader.identity.step.clone();
        out.depends_on.insert(step.clone(), vec![fetch.producer.clone()]);
        out.readers.push((fetch.clone(), step));
        out.plans.push(reader);
    }
    out
}

/// The files the readers of `part` printed, by `ARTIFACT/PATH`, from
/// `printed` (a reader's object name → what its `main` printed, `None` when
/// its log is not there whole); the first file that could not be read, as a
/// message, is the error.
pub fn read_files(
    part: &Part,
    object_name: impl Fn(&str) -> Option<String>,
    printed: impl Fn(&str) -> Result<Vec<u8>, String>,
) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut files = BTreeMap::new();
    for (fetch, step) in &part.readers {
        let object = object_name(step).ok_or_else(|| format!("no object for reader {step}"))?;
        let bytes = printed(&object).map_err(|why| format!("{}: {why}", what(fetch)))?;
        files.insert(fetch.key.clone(), bytes);
    }
    Ok(files)
}

/// A new tag for the readers of one `c8s run`: 6 characters, random per
/// process (a reader of an earlier, killed `c8s run` of the same run is done
/// in its record, and its log is gone with its pod).
pub fn tag() -> String {
    format!("{:06x}", random_bits() & 0xff_ffff)
}

/// 64 bits that differ between calls and processes: a randomly keyed hash
/// (per call) of the clock and the pid.
pub(crate) fn random_bits() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    hasher.write_u128(now.map(|d| d.as_nanos()).unwrap_or_default());
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// The command of [`UNREADABLE_TASK`], by which its steps are found.
const UNREADABLE_COMMAND: &str = "c8s-task-file-not-read";

/// What stands for a task file its reader could not read, so that the job
/// lowers whole: the steps it makes never run (they end errored, as
/// Concourse's task step errors when its file cannot be read, and the job's
/// `on_error` and `ensure` hooks run).
pub const UNREADABLE_TASK: &str = "platform: linux\nimage_resource: { type: registry-image, source: { repository: busybox } }\nrun: { path: c8s-task-file-not-read }\n";

/// The plans (their steps) made from [`UNREADABLE_TASK`], and those whose
/// params read a var whose `load_var` file could not be read
/// ([`FetchFile::UNREADABLE_VAR`]).
pub fn unreadable_steps(plans: &[TaskPlan]) -> Vec<String> {
    let reads_unreadable_var = |p: &TaskPlan| {
        p.env
            .iter()
            .filter_map(|e| e.value.as_deref())
            .any(|v| v.contains(FetchFile::UNREADABLE_VAR))
    };
    plans
        .iter()
        .filter(|p| {
            p.command.iter().chain(&p.args).any(|c| c == UNREADABLE_COMMAND) || reads_unreadable_var(p)
        })
        .map(|p| p.identity.step.clone())
        .collect()
}

/// Why the reader of `fetch` failed, for a person: the file is not in the
/// artifact its producer made.
pub fn unreadable(fetch: &FetchFile) -> String {
    let artifact = fetch.file.split('/').next().unwrap_or_default();
    format!(
        "{}: {:?} is not in artifact `{artifact}` as step `{}` made it",
        what(fetch),
        fetch.path,
        fetch.producer
    )
}

/// What `fetch` reads, for a person.
fn what(fetch: &FetchFile) -> String {
    if fetch.key.starts_with(FetchFile::VAR_PREFIX) {
        format!("load_var `{}`: cannot read its file {:?}", fetch.step, fetch.file)
    } else {
        format!("step `{}`: cannot read task file {:?}", fetch.step, fetch.file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use c8s_pipeline_model::PlanIdentity;

    fn loaded() -> LoadedPlans {
        let plan = |step: &str| TaskPlan::new(PlanIdentity::new("ci", step), "img");
        let fetch = FetchFile::new(
            "unit",
            "repo/ci/unit.yml",
            "ci/unit.yml",
            "build.repo",
            ".c8s-get/repo",
        );
        LoadedPlans {
            plans: vec![
                plan("build.tools"),
                plan("build.repo"),
                plan("build.lint"),
                plan("build.other"),
            ],
            repository: String::new(),
            depends_on: BTreeMap::from([
                ("build.repo".to_owned(), vec!["build.tools".to_owned()]),
                ("build.lint".to_owned(), vec!["build.repo".to_owned()]),
            ]),
            conditions: BTreeMap::from([("build.repo".to_owned(), Condition::True)]),
            outcome: None,
            timeout_seconds: None,
            warnings: Vec::new(),
            deferred: vec!["ci.yml:9:5: step `unit` deferred".to_owned()],
            fetch: vec![fetch],
            puts: BTreeMap::new(),
            redact: Vec::new(),
        }
    }

    #[test]
    fn a_part_is_the_producer_what_it_waits_for_and_a_reader_of_the_one_file() {
        let part = part(&loaded(), "busybox:1.37.0", "x");
        let steps: Vec<&str> = part.plans.iter().map(|p| p.identity.step.as_str()).collect();
        // Not the step after the producer, nor the unrelated one.
        assert_eq!(steps, ["build.tools", "build.repo", "read-unit-x0"]);
        assert_eq!(part.depends_on["read-unit-x0"], ["build.repo"]);
        assert_eq!(part.depends_on["build.repo"], ["build.tools"]);
        assert_eq!(part.conditions.len(), 1);
        let reader = &part.plans[2];
        assert_eq!(reader.image, "busybox:1.37.0");
        assert_eq!(reader.command, ["cat", ".c8s/fetch/ci/unit.yml"]);
        let input = &reader.inputs[0];
        assert_eq!(
            (input.step.as_str(), input.output.as_str(), input.path.as_str()),
            ("build.repo", ".c8s-get/repo", ".c8s/fetch")
        );
        assert_eq!(input.member.as_deref(), Some("ci/unit.yml"));
        assert!(reader.skip_checkout);
    }

    #[test]
    fn the_files_are_what_the_readers_printed_and_a_missing_log_names_the_file() {
        let part = part(&loaded(), "busybox", "t");
        let name = |step: &str| Some(format!("obj-{step}"));
        let files = read_files(&part, name, |object| {
            assert_eq!(object, "obj-read-unit-t0");
            Ok(b"platform: linux\n".to_vec())
        })
        .expect("read");
        assert_eq!(files["repo/ci/unit.yml"], b"platform: linux\n");
        let error =
            read_files(&part, name, |_| Err("its logs are withheld".to_owned())).expect_err("no file");
        assert_eq!(
            error,
            "step `unit`: cannot read task file \"repo/ci/unit.yml\": its logs are withheld"
        );
        assert!(unreadable(&part.readers[0].0).contains("\"ci/unit.yml\" is not in artifact `repo`"));
    }

    #[test]
    fn the_steps_made_from_a_placeholder_or_reading_an_unreadable_var_are_found() {
        let plan = |step: &str| TaskPlan::new(PlanIdentity::new("ci", step), "img");
        let mut reads = plan("show");
        reads.env = vec![
            c8s_sidecar_core::EnvVar::value("OTHER", "x"),
            c8s_sidecar_core::EnvVar::value("TITLE", format!("{} by ann", FetchFile::UNREADABLE_VAR)),
        ];
        let mut placeholder = plan("unit");
        placeholder.command = vec![UNREADABLE_COMMAND.to_owned()];
        let mut other = plan("lint");
        other.env = vec![c8s_sidecar_core::EnvVar::value("TITLE", "c8s-load-var")];
        assert_eq!(unreadable_steps(&[reads, other, placeholder]), ["show", "unit"]);
    }
}
