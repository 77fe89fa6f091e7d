//! Concourse `load_var` values read inside the pod that uses them.
//!
//! A Concourse `load_var` step reads a file of an artifact when the build
//! runs and sets the local var `((.:NAME))` for the steps after it
//! (`atc/exec/load_var_step.go`: the file is `ARTIFACT/PATH`; `format` is
//! `json`, `yaml`/`yml`, `trim` or `raw`, else taken from the file's
//! extension, else `trim`, which is Go's `strings.TrimSpace`).
//!
//! c8s renders every pod before the run, so the value cannot be written into
//! the pod spec. It does not need to be: a task param that uses it keeps
//! `((.:NAME))` in its env value, the pod unpacks that one file of the
//! producing step's artifact before `main` (under [`LOCAL_VARS_DIR`]), and
//! `main`'s wrapper replaces `((.:NAME))` in the env values that hold it
//! before the command runs. The pod spec stays a pure function of the
//! pipeline, and every runner (the CLI, the controller, Helm) runs it alike.
//!
//! Values are text: `trim` and `raw`. A `json` or `yaml` value (a structure,
//! read field by field as `((.:NAME.field))`) would need a parser in the
//! step's image, so a step using one is refused, located.

use serde_derive::{Deserialize, Serialize};

/// Where a pod finds the file of local var `NAME`: `<this>/NAME/<file>`,
/// relative to the workspace.
pub const LOCAL_VARS_DIR: &str = ".c8s/vars";

/// How a local var's file becomes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LoadFormat {
    /// The file's text without leading and trailing whitespace.
    Trim,
    /// The file's text as it is.
    Raw,
}

impl LoadFormat {
    /// The word the pod's wrapper reads (`trim`, `raw`).
    pub fn word(self) -> &'static str {
        match self {
            Self::Trim => "trim",
            Self::Raw => "raw",
        }
    }
}

/// A local var some env values of `main` use: file `file` of output
/// `output` of step `step`, read as `format`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct LocalVar {
    /// The var's name: env values hold `((.:NAME))`.
    pub name: String,
    /// The step whose artifact holds the file (a transitive dependency).
    pub step: String,
    /// That step's output directory.
    pub output: String,
    /// The file, relative to the artifact.
    pub file: String,
    /// How the file becomes the value.
    pub format: LoadFormat,
}

impl LocalVar {
    /// Local var `name`, file `file` of output `output` of step `step`.
    pub fn new(
        name: impl Into<String>,
        step: impl Into<String>,
        output: impl Into<String>,
        file: impl Into<String>,
        format: LoadFormat,
    ) -> Self {
        Self {
            name: name.into(),
            step: step.into(),
            output: output.into(),
            file: file.into(),
            format,
        }
    }

    /// The text env values hold in its place: `((.:NAME))`.
    pub fn placeholder(&self) -> String {
        format!("((.:{}))", self.name)
    }
}

/// Whether `name` may name a local var: a letter or `_`, then letters,
/// digits, `_` or `-`, at most 63 characters (it is a directory name and a
/// word of a list).
pub fn check_local_var_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    if !bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_') {
        return Err("a load_var name c8s reads starts with a letter or `_`".to_owned());
    }
    if !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err("a load_var name c8s reads has only letters, digits, `_` and `-`".to_owned());
    }
    if name.len() > 63 {
        return Err("a load_var name has at most 63 characters".to_owned());
    }
    Ok(())
}

/// Whether `file` may be read as a local var's file: relative, without `..`
/// or whitespace (it is a word of a list), not empty.
pub fn check_local_var_file(file: &str) -> Result<(), String> {
    if file.is_empty() || file.starts_with('/') {
        return Err("the file is a path inside the artifact, like `ARTIFACT/version`".to_owned());
    }
    if file.split('/').any(|segment| segment == "..") {
        return Err("the file may not leave its artifact (`..`)".to_owned());
    }
    if file.chars().any(char::is_whitespace) {
        return Err("c8s reads a load_var file whose path has no whitespace".to_owned());
    }
    Ok(())
}

/// Whether env var `name` can carry a local var: the wrapper sets it from a
/// shell, so it is a shell name (a letter or `_`, then letters, digits, `_`),
/// and not `c8s_*`, the names of the wrapper's own variables.
pub fn check_shell_name(name: &str) -> Result<(), String> {
    if name.starts_with("c8s_") {
        return Err("`c8s_` names are the wrapper's own shell variables".to_owned());
    }
    let mut bytes = name.bytes();
    let first = bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    if first && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(())
    } else {
        Err(
            "a param holding a load_var value is a shell name (letters, digits, `_`, not first a digit)"
                .to_owned(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_files_and_env_names_are_checked() {
        assert!(check_local_var_name("buildkit-version").is_ok());
        assert!(check_local_var_name("_v2").is_ok());
        assert!(check_local_var_name("2v").is_err());
        assert!(check_local_var_name("a b").is_err());
        assert!(check_local_var_name(&"a".repeat(64)).is_err());
        assert!(check_local_var_file("golang/.git/tag").is_ok());
        assert!(check_local_var_file("../etc/passwd").is_err());
        assert!(check_local_var_file("a/b c").is_err());
        assert!(check_local_var_file("/abs").is_err());
        assert!(check_shell_name("BUILD_ARG_go").is_ok());
        assert!(check_shell_name("build-arg").is_err());
        assert!(check_shell_name("1X").is_err());
        assert!(check_shell_name("c8s_value").is_err(), "the wrapper's own");
        assert!(check_shell_name("C8S_VALUE").is_ok());
    }

    #[test]
    fn the_input_unpacks_only_the_file_under_the_vars_directory() {
        let var = LocalVar::new(
            "go_version",
            "build.golang",
            "golang",
            ".git/tag",
            LoadFormat::Trim,
        );
        let input = var.input();
        assert_eq!(input.path, ".c8s/vars/go_version");
        assert_eq!(input.member.as_deref(), Some(".git/tag"));
        assert_eq!(var.placeholder(), "((.:go_version))");
    }
}
