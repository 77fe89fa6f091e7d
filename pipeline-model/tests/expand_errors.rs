//! What `Pipeline::expand` can fail on, reported at the step (file, line,
//! column, field) even when the failure is found after parsing: a pipeline
//! changed in code after `parse_pipeline`, or expanded with a smaller matrix cap.

use c8s_pipeline_model::{
    Error, MemorySource, Pipeline, PipelineOptions, Problem, Step, parse_pipeline, parse_pipeline_with,
};

const TEXT: &str = "\
name: shop
repository: https://example.com/shop.git
matrix:
  dimensions: { go: [\"1.22\", \"1.23\", \"1.24\"], db: [pg, mysql] }
steps:
  - name: build
    image: golang:${{ matrix.go }}
    dependsOn: []
  - name: test
    image: alpine:3
    dependsOn: [build]
";

fn parsed() -> Pipeline {
    match parse_pipeline(".c8s.yaml", TEXT, &MemorySource::new()) {
        Ok(p) => p,
        Err(e) => panic!("the pipeline is valid: {e}"),
    }
}

fn expand_error(pipeline: &Pipeline, options: &PipelineOptions) -> Error {
    match pipeline.expand_with(None, options) {
        Ok(_) => panic!("expand must fail"),
        Err(errors) => {
            assert_eq!(errors.len(), 1, "{errors}");
            errors.into_vec().remove(0)
        }
    }
}

#[test]
fn a_cycle_made_after_parsing_points_at_the_dependson_of_its_first_step() {
    let mut pipeline = parsed();
    pipeline.steps[0].depends_on.push("test".into());
    let error = expand_error(&pipeline, &PipelineOptions::default());
    assert_eq!(
        error.to_string(),
        ".c8s.yaml:8:5: step \"build\": dependsOn: dependency cycle: build -> test -> build"
    );
    assert!(matches!(error.problem(), Some(Problem::Cycle { .. })));
    assert_eq!(error.position().line, 8);
}

#[test]
fn an_unknown_dependency_found_late_points_at_its_step() {
    let mut pipeline = parsed();
    pipeline.steps[1].depends_on.push("deploy".into());
    let error = expand_error(&pipeline, &PipelineOptions::default());
    assert_eq!(
        error.to_string(),
        ".c8s.yaml:11:5: step \"test\": dependsOn[1]: step \"deploy\" is not defined"
    );
    assert!(matches!(error.problem(), Some(Problem::UnknownStep { name }) if name == "deploy"));
}

#[test]
fn a_matrix_too_large_for_the_expand_options_points_at_the_matrix() {
    let roomy = PipelineOptions::default().with_max_combinations(100);
    let pipeline = match parse_pipeline_with(".c8s.yaml", TEXT, &MemorySource::new(), &roomy) {
        Ok(p) => p,
        Err(e) => panic!("six combinations fit: {e}"),
    };
    let tight = PipelineOptions::default().with_max_combinations(4);
    let error = expand_error(&pipeline, &tight);
    assert_eq!(
        error.to_string(),
        ".c8s.yaml:3:1: matrix: the matrix expands to 6 combinations; the limit is 4"
    );
    assert!(matches!(
        error.problem(),
        Some(Problem::MatrixTooLarge {
            combinations: 6,
            limit: 4
        })
    ));
}

#[test]
fn a_bad_matrix_reference_made_after_parsing_points_at_the_field() {
    let mut pipeline = parsed();
    pipeline.steps[1].image = "alpine:${{ matrix.os }}".into();
    let error = expand_error(&pipeline, &PipelineOptions::default());
    assert_eq!(error.position().to_string(), ".c8s.yaml:10:5");
    assert!(matches!(error.problem(), Some(Problem::UnknownDimension { name, .. }) if name == "os"));
}

#[test]
fn a_pipeline_built_in_code_names_input_and_the_field_path() {
    let pipeline = Pipeline::new(
        "shop",
        "https://example.com/shop.git",
        vec![
            Step::new("a", "alpine:3").depends_on(["b"]),
            Step::new("b", "alpine:3").depends_on(["a"]),
        ],
    );
    let error = expand_error(&pipeline, &PipelineOptions::default());
    assert_eq!(
        error.to_string(),
        "<input>: step \"a\": dependsOn: dependency cycle: a -> b -> a"
    );
    assert_eq!(
        error.path().map(ToString::to_string).as_deref(),
        Some("steps[0].dependsOn")
    );
}
