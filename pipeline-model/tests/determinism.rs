//! The same pipeline with its steps listed in any order gives the same plans.

use c8s_pipeline_model::{MemorySource, parse_pipeline};

const STEPS: [&str; 4] = [
    "  - name: unit\n    image: golang:${{ matrix.go }}\n    commands: [\"go test ./...\"]\n",
    "  - name: build\n    image: golang:${{ matrix.go }}\n    dependsOn: [unit]\n    outputs: [dist]\n",
    "  - name: lint\n    image: golangci/golangci-lint:v1\n",
    "  - name: publish\n    image: alpine:3\n    dependsOn: [build, lint]\n    inputs: [{ step: build, output: dist }]\n    conditional: { branches: [main] }\n",
];

fn pipeline(order: &[usize]) -> String {
    let mut text = String::from(
        "name: demo\nrepository: https://example.com/demo.git\nmatrix:\n  dimensions:\n    go: [\"1.22\", \"1.23\"]\nsteps:\n",
    );
    for &i in order {
        text.push_str(STEPS[i]);
    }
    text
}

#[test]
fn step_order_in_the_file_does_not_matter() {
    let expand = |order: &[usize]| {
        let p =
            parse_pipeline("p.yml", &pipeline(order), &MemorySource::new()).unwrap_or_else(|e| panic!("{e}"));
        let run = p.expand(Some("main")).unwrap_or_else(|e| panic!("{e}"));
        serde_json::to_string(&run).unwrap_or_default()
    };
    let first = expand(&[0, 1, 2, 3]);
    for order in [[3, 2, 1, 0], [2, 0, 3, 1], [1, 3, 0, 2]] {
        assert_eq!(expand(&order), first);
    }
}

#[test]
fn a_pipeline_round_trips_through_json() {
    let p = parse_pipeline("p.yml", &pipeline(&[0, 1, 2, 3]), &MemorySource::new())
        .unwrap_or_else(|e| panic!("{e}"));
    let json = serde_json::to_string(&p).unwrap_or_default();
    let back: c8s_pipeline_model::Pipeline = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back, p);
    assert_eq!(back.expand(Some("dev")), p.expand(Some("dev")));
}

#[test]
fn pipelines_built_in_code_are_validated_before_expansion() {
    use c8s_pipeline_model::{Pipeline, Step};
    let pipeline = Pipeline::new(
        "demo",
        "https://example.com/demo.git",
        vec![
            Step::new("a", "alpine:3").depends_on(["b"]),
            Step::new("b", "alpine:${{ matrix.v }}").depends_on(["a"]),
        ],
    );
    let errors = pipeline
        .expand(None)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert_eq!(
        errors,
        "<input>: step \"a\": dependsOn: dependency cycle: a -> b -> a\n\
         <input>: step \"b\": image: matrix dimension \"v\" is not defined (the pipeline has no matrix)"
    );
}

#[test]
fn the_pipeline_timeout_caps_every_step() {
    use c8s_pipeline_model::{Pipeline, Step};
    let mut long = Step::new("long", "alpine:3");
    long.timeout = Some("2h".into());
    let mut short = Step::new("short", "alpine:3");
    short.timeout = Some("10m".into());
    let open = Step::new("open", "alpine:3");
    let mut pipeline = Pipeline::new("demo", "https://example.com/demo.git", vec![long, short, open]);
    pipeline.timeout = Some("1h".into());
    let run = pipeline.expand(None).unwrap_or_else(|e| panic!("{e}"));
    let timeouts: Vec<(&str, Option<u64>)> = run
        .plans
        .iter()
        .map(|p| (p.identity.step.as_str(), p.timeout_seconds))
        .collect();
    assert_eq!(
        timeouts,
        [("long", Some(3600)), ("open", Some(3600)), ("short", Some(600))]
    );
}
