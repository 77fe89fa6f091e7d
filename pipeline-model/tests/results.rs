//! Step results in `.c8s.yaml`: `results: [..]` on the producer, env values
//! `${{ steps.S.results.R }}` on readers, allowed only from (transitive)
//! dependencies, every mistake located at its file, line, column and field.

use c8s_pipeline_model::results::{RESULTS_DIR, RESULTS_OF_DIR};
use c8s_pipeline_model::{ContainerRole, MemorySource, ResultEnv, parse_pipeline, pod_layout};

const HEAD: &str = "name: shop\nrepository: https://example.com/shop.git\nsteps:\n";

fn errors_of(steps: &str) -> String {
    let text = format!("{HEAD}{steps}");
    match parse_pipeline("ci.yaml", &text, &MemorySource::new()) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(errors) => errors.to_string(),
    }
}

const BUILD: &str =
    "  - name: build\n    image: alpine:3\n    results: [digest, version]\n    commands: [\"true\"]\n";

#[test]
fn the_release_example_lowers_results_to_plans() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/pipelines/release.c8s.yaml"
    ))
    .expect("the example");
    let pipeline = parse_pipeline("release.c8s.yaml", &text, &MemorySource::new()).expect("parses");
    let run = pipeline.expand(Some("main")).expect("expands");
    let plan = |step: &str| run.plans.iter().find(|p| p.identity.step == step).expect("plan");
    assert_eq!(plan("image").results, ["digest", "url"]);
    assert_eq!(
        plan("image").result_env,
        [ResultEnv::new("VERSION", "version", "version")]
    );
    let announce = plan("announce");
    assert_eq!(
        announce.result_env,
        [
            ResultEnv::new("VERSION", "version", "version"),
            ResultEnv::new("DIGEST", "image", "digest"),
            ResultEnv::new("IMAGE", "image", "url"),
        ]
    );
    assert!(
        announce
            .env
            .iter()
            .all(|e| !e.name.starts_with("VERSION") && e.name != "DIGEST")
    );
    // One input per producing step, unpacked under results-of/<step>; the
    // producer saves its results directory as one more output.
    let inputs = announce.artifact_inputs();
    let paths: Vec<(&str, &str, &str)> = inputs
        .iter()
        .map(|i| (i.step.as_str(), i.output.as_str(), i.path.as_str()))
        .collect();
    assert_eq!(
        paths,
        [
            ("version", RESULTS_DIR, &*format!("{RESULTS_OF_DIR}/version")),
            ("image", RESULTS_DIR, &*format!("{RESULTS_OF_DIR}/image")),
        ]
    );
    assert_eq!(&*plan("image").saved_outputs(), [RESULTS_DIR]);
    assert!(plan("announce").saved_outputs().is_empty());
    // The layout (and so the resource arithmetic) counts those containers.
    let names: Vec<String> = pod_layout(announce)
        .into_iter()
        .filter(|c| c.role == ContainerRole::Init)
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["git-clone", "c8s-input-0", "c8s-input-1"]);
    assert!(
        pod_layout(plan("version"))
            .iter()
            .any(|c| c.name == "artifact-helper")
    );
}

#[test]
fn a_result_of_a_step_that_is_not_a_dependency_is_refused_where_it_is_read() {
    let errors = errors_of(&format!(
        "{BUILD}  - name: ship\n    image: alpine:3\n    commands: [\"true\"]\n    env:\n      DIGEST: ${{{{ steps.build.results.digest }}}}\n"
    ));
    assert!(
        errors.contains("ci.yaml:12:7: step \"ship\": env.DIGEST: step \"build\" is not a dependency of this step; add it to dependsOn"),
        "{errors}"
    );
}

#[test]
fn a_transitive_dependency_may_be_read() {
    let text = format!(
        "{HEAD}{BUILD}  - name: test\n    image: alpine:3\n    dependsOn: [build]\n    commands: [\"true\"]\n  - name: ship\n    image: alpine:3\n    dependsOn: [test]\n    commands: [\"true\"]\n    env: {{ V: \"${{{{ steps.build.results.version }}}}\" }}\n"
    );
    parse_pipeline("ci.yaml", &text, &MemorySource::new()).expect("a transitive dependency's result");
}

#[test]
fn undeclared_unknown_and_malformed_references_are_located_errors() {
    let errors = errors_of(&format!(
        "{BUILD}  - name: ship\n    image: alpine:3\n    dependsOn: [build]\n    commands: [\"true\"]\n    env:\n      A: ${{{{ steps.build.results.sha }}}}\n      B: ${{{{ steps.nope.results.x }}}}\n      C: ${{{{ steps.build.digest }}}}\n"
    ));
    assert!(
        errors.contains("ci.yaml:13:7: step \"ship\": env.A: \"${{ steps.build.results.sha }}\" is not a valid expression: step \"build\" declares no result \"sha\" (it declares digest, version; add it to its `results`)"),
        "{errors}"
    );
    assert!(
        errors.contains("ci.yaml:14:7: step \"ship\": env.B: step \"nope\" is not defined"),
        "{errors}"
    );
    assert!(
        errors.contains("ci.yaml:15:7: step \"ship\": env.C: \"${{ steps.build.digest }}\" is not a valid expression: a step result is written ${{ steps.STEP.results.NAME }}"),
        "{errors}"
    );
}

#[test]
fn a_reference_spliced_into_text_or_a_command_is_refused_with_the_way_to_read_it() {
    let errors = errors_of(&format!(
        "{BUILD}  - name: ship\n    image: alpine:3\n    dependsOn: [build]\n    commands: [\"echo ${{{{ steps.build.results.digest }}}}\"]\n    env: {{ IMAGE: \"x@${{{{ steps.build.results.digest }}}}\" }}\n"
    ));
    assert!(
        errors.contains("ci.yaml:11:16: step \"ship\": commands[0]: \"${{ steps.build.results.digest }}\" is not a valid expression: a step result is read as the whole value of an env var"),
        "{errors}"
    );
    assert!(errors.contains("ci.yaml:12:12: step \"ship\": env.IMAGE: \"${{ steps.build.results.digest }}\" is not a valid expression"), "{errors}");
}

#[test]
fn result_names_are_checked_and_unique() {
    let errors = errors_of(
        "  - name: build\n    image: alpine:3\n    commands: [\"true\"]\n    results: [digest, 9lives, \"a b\", digest]\n",
    );
    assert!(
        errors.contains("ci.yaml:7:23: step \"build\": results[1]: \"9lives\" is not a valid name: a result name starts with a letter"),
        "{errors}"
    );
    assert!(
        errors.contains("ci.yaml:7:31: step \"build\": results[2]: \"a b\" is not a valid name"),
        "{errors}"
    );
    assert!(
        errors.contains(
            "ci.yaml:7:38: step \"build\": results[3]: result \"digest\" is already defined at ci.yaml:7:15"
        ),
        "{errors}"
    );
}
